
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_sha1.h>
#include <sys/random.h>
#include "ngx_chat_worker.h"


/* 64 bits: unique among all the workers that ever share a Redis */
#define NGX_CHAT_WORKER_ID_BYTES  8


ngx_str_t  ngx_chat_worker_id;

static u_char  ngx_chat_worker_id_data[NGX_CHAT_WORKER_ID_LEN];

/* what the timers of the worker's own stand for, in nginx's debug log */
static ngx_connection_t  ngx_chat_worker_dumb;


/*
 * The worker's id is opaque: a hash of the host, the pid, the time and
 * random bits, so that clients and other hosts learn nothing of the
 * machine from it.
 */

void
ngx_chat_worker_init(ngx_cycle_t *cycle)
{
    u_char      seed[NGX_CHAT_WORKER_ID_BYTES], hash[20], *p;
    ngx_sha1_t  sha1;

    if (getrandom(seed, sizeof(seed), 0) != (ssize_t) sizeof(seed)) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "chat: getrandom() failed");
    }

    p = ngx_snprintf(ngx_chat_worker_id_data, NGX_CHAT_WORKER_ID_LEN,
                     "%V/%P/%uL", &cycle->hostname, ngx_pid,
                     ngx_chat_worker_now());

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, ngx_chat_worker_id_data,
                    p - ngx_chat_worker_id_data);
    ngx_sha1_update(&sha1, seed, sizeof(seed));
    ngx_sha1_final(hash, &sha1);

    p = ngx_hex_dump(ngx_chat_worker_id_data, hash,
                     NGX_CHAT_WORKER_ID_BYTES);

    ngx_chat_worker_id.data = ngx_chat_worker_id_data;
    ngx_chat_worker_id.len = p - ngx_chat_worker_id_data;

    ngx_chat_worker_dumb.fd = (ngx_socket_t) -1;
}


/*
 * A timer of no connection.  nginx's debug log takes every timer's data
 * for a connection (its fd): it must be one.  A timer never keeps an
 * exiting worker waiting.
 */

void
ngx_chat_worker_timer(ngx_event_t *ev, ngx_event_handler_pt handler,
    ngx_log_t *log)
{
    ev->handler = handler;
    ev->data = &ngx_chat_worker_dumb;
    ev->log = log;
    ev->cancelable = 1;
}


/* milliseconds since the Unix epoch, as of this event loop pass */

uint64_t
ngx_chat_worker_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/* level-triggered: what a library leaves unread raises the event again */

void
ngx_chat_worker_watch(ngx_event_t *ev, ngx_uint_t event, ngx_uint_t on)
{
    if (on && !ev->active) {
        (void) ngx_add_event(ev, event, NGX_LEVEL_EVENT);

    } else if (!on && ev->active) {
        (void) ngx_del_event(ev, event, NGX_LEVEL_EVENT);
    }
}


/* the library closes the socket itself: nginx only lets go of it */

void
ngx_chat_worker_forget(ngx_connection_t *c)
{
    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}
