
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_poll.h"
#include "ngx_chat_client.h"
#include "ngx_chat_cors.h"
#include "ngx_chat_cursor.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_handshake.h"
#include "ngx_chat_http.h"
#include "ngx_chat_limit.h"
#include "ngx_chat_post.h"
#include "ngx_chat_request.h"
#include "ngx_chat_session.h"
#include "ngx_chat_status.h"


/*
 * A long poll, GET ?poll=1&cursor=R1:5,R2:&timeout=S: a session of the
 * request's own joins the rooms of the cursor from their seqs, as "join
 * since" does (the recent cache, then Postgres), and the request is
 * answered once the joins are and something past the cursor exists, or
 * at the first event after, or at the timeout, with the events and the
 * cursor to come back with.  While it waits it is a member of its rooms
 * on this worker's subscriptions: no Redis command.  It announces no
 * presence in its rooms; its user is online while polls come.
 */


typedef struct {
    ngx_http_request_t         *request;
    ngx_chat_session_t         *session;
    ngx_array_t                 cursor;       /* of ngx_chat_cursor_t */

    ngx_chat_frame_t          **events;
    ngx_uint_t                  nevents;
    ngx_uint_t                  size;
    size_t                      bytes;        /* of events but messages */

    ngx_uint_t                  joining;      /* joins not answered yet */
    ngx_chat_frame_t           *error;        /* a join's: answered alone */
    ngx_chat_frame_t           *closed;       /* the session's end */

    ngx_event_t                 answer;       /* posted, or the timeout */
    ngx_msec_t                  timeout;
    unsigned                    done:1;
} ngx_chat_poll_t;


static ngx_int_t ngx_chat_poll_parse(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf, ngx_chat_poll_t *p, ngx_msec_t *timeout,
    char **reason);
static ngx_int_t ngx_chat_poll_deliver(void *conn, ngx_chat_frame_t *f);
static ngx_int_t ngx_chat_poll_reply(void *conn, ngx_chat_frame_t *f);
static void ngx_chat_poll_close(void *conn, ngx_uint_t code, char *reason);
static size_t ngx_chat_poll_backlog(void *conn);
static ngx_int_t ngx_chat_poll_keep(ngx_chat_poll_t *p, ngx_chat_frame_t *f);
static void ngx_chat_poll_joined(ngx_chat_poll_t *p);
static void ngx_chat_poll_ready(ngx_chat_poll_t *p);
static void ngx_chat_poll_answer(ngx_event_t *ev);
static ngx_chat_frame_t *ngx_chat_poll_body(ngx_chat_poll_t *p);
static void ngx_chat_poll_end(ngx_chat_poll_t *p);
static void ngx_chat_poll_cleanup(void *data);


static ngx_chat_transport_t  ngx_chat_poll_transport = {
    ngx_chat_poll_deliver,
    ngx_chat_poll_reply,
    ngx_chat_poll_close,
    ngx_chat_poll_backlog
};


ngx_int_t
ngx_chat_poll_handler(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf)
{
    char                   *reason;
    ngx_int_t               rc;
    ngx_str_t               user, *rooms;
    ngx_uint_t              i;
    ngx_msec_t              timeout;
    ngx_chat_poll_t        *p;
    ngx_chat_cursor_t      *cur;
    ngx_pool_cleanup_t     *cln;
    ngx_chat_session_t     *s;
    ngx_chat_limit_held_t  *limit;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_handshake_origin_check(r, lcf);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_chat_cors_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_client_user(r, lcf, &user, &rooms);
    if (rc != NGX_OK) {
        return ngx_chat_client_refused(r, rc);
    }

    p = ngx_pcalloc(r->pool, sizeof(ngx_chat_poll_t));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_poll_parse(r, lcf, p, &timeout, &reason);

    if (rc == NGX_DECLINED) {
        return ngx_chat_http_error(r, NGX_HTTP_BAD_REQUEST,
                                   NGX_CHAT_ERR_BAD_REQUEST, reason, NULL);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the last check: a poll refused for anything else takes none */

    rc = ngx_chat_limit_take(r, lcf->limits, &limit);
    if (rc != NGX_OK) {
        return rc;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    s = cln ? ngx_chat_session_create(r->pool, &user, rooms,
                                      r->connection->number, lcf,
                                      &ngx_chat_poll_transport,
                                      &ngx_chat_encode_codec, p,
                                      r->connection->log)
            : NULL;

    if (s == NULL) {
        ngx_chat_limit_release(limit);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p->request = r;
    p->session = s;
    p->joining = p->cursor.nelts;
    p->answer.handler = ngx_chat_poll_answer;
    p->answer.data = p;
    p->answer.log = r->connection->log;

    cln->handler = ngx_chat_poll_cleanup;
    cln->data = p;

    s->transient = 1;
    ngx_chat_session_start(s, limit);
    ngx_chat_stat_inc(polls);

    ngx_chat_post_seen(&user, lcf);

    p->timeout = timeout;

    /* a reload or shutdown closes it, the client polls the new workers */

    r->connection->idle = 1;
    r->read_event_handler = ngx_http_test_reading;
    r->main->count++;

    cur = p->cursor.elts;

    for (i = 0; i < p->cursor.nelts && !p->done; i++) {
        ngx_chat_session_join(s, &cur[i].room, cur[i].has_seq, cur[i].seq);
    }

    return NGX_DONE;
}


/* NGX_DECLINED: the request is refused for *reason */

static ngx_int_t
ngx_chat_poll_parse(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf,
    ngx_chat_poll_t *p, ngx_msec_t *timeout, char **reason)
{
    ngx_int_t  n;
    ngx_str_t  value;

    if (ngx_array_init(&p->cursor, r->pool, 4, sizeof(ngx_chat_cursor_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    *timeout = NGX_CHAT_POLL_TIMEOUT * 1000;

    if (ngx_http_arg(r, (u_char *) "timeout", 7, &value) == NGX_OK) {
        n = ngx_atoi(value.data, value.len);

        if (n < 0 || n > NGX_CHAT_POLL_TIMEOUT) {
            *reason = "timeout: 0 to 25 seconds";
            return NGX_DECLINED;
        }

        *timeout = n * 1000;
    }

    if (ngx_http_arg(r, (u_char *) "cursor", 6, &value) != NGX_OK) {
        *reason = "cursor: missing";
        return NGX_DECLINED;
    }

    return ngx_chat_cursor_since(r->pool, &value, lcf->max_rooms,
                                 &p->cursor, 1, reason);
}


/* an event of a room: kept; the poll is answered once its joins are */

static ngx_int_t
ngx_chat_poll_deliver(void *conn, ngx_chat_frame_t *f)
{
    ngx_chat_poll_t *p = conn;

    if (p->done) {
        return NGX_DECLINED;
    }

    if (ngx_chat_poll_keep(p, f) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (p->joining == 0) {
        ngx_chat_poll_ready(p);
    }

    return NGX_OK;
}


/* the session's answers: its joins', and what they replay */

static ngx_int_t
ngx_chat_poll_reply(void *conn, ngx_chat_frame_t *f)
{
    ngx_chat_poll_t *p = conn;

    if (p->done) {
        return NGX_DECLINED;
    }

    switch (f->event) {

    case NGX_CHAT_EVENT_WELCOME:
        return NGX_OK;

    case NGX_CHAT_EVENT_ERROR:
        if (p->error == NULL) {
            p->error = ngx_chat_frame_ref(f);
        }

        if (p->joining) {
            p->joining--;
        }

        ngx_chat_poll_ready(p);
        return NGX_OK;

    case NGX_CHAT_EVENT_JOINED:
        if (p->joining && --p->joining == 0) {
            ngx_chat_poll_joined(p);
        }

        return NGX_OK;

    default:
        return ngx_chat_poll_deliver(conn, f);
    }
}


/* kicked, disconnected, flooding: the poll ends, saying so */

static void
ngx_chat_poll_close(void *conn, ngx_uint_t code, char *reason)
{
    ngx_chat_poll_t *p = conn;

    if (p->done || p->closed) {
        return;
    }

    p->closed = ngx_chat_encode_close(code, reason,
                                      p->request->connection->log);

    ngx_chat_poll_ready(p);
}


static size_t
ngx_chat_poll_backlog(void *conn)
{
    ngx_chat_poll_t *p = conn;

    return p->bytes;
}


/*
 * Messages are all kept: the poll answers in the pass that brought them,
 * and its cursor counts every one.  Other events (presence, typing) are
 * dropped past chat_send_buffer.
 */

static ngx_int_t
ngx_chat_poll_keep(ngx_chat_poll_t *p, ngx_chat_frame_t *f)
{
    size_t              size;
    ngx_uint_t          n;
    ngx_chat_frame_t  **events;

    size = f->last - f->payload;

    if (f->seq == 0) {
        if (p->bytes + size > p->session->conf->send_buffer) {
            return NGX_DECLINED;
        }

        p->bytes += size;
    }

    if (p->nevents == p->size) {
        n = p->size ? 2 * p->size : 8;

        events = ngx_palloc(p->request->pool, n * sizeof(ngx_chat_frame_t *));
        if (events == NULL) {
            return NGX_ERROR;
        }

        if (p->nevents) {
            ngx_memcpy(events, p->events,
                       p->nevents * sizeof(ngx_chat_frame_t *));
        }

        p->events = events;
        p->size = n;
    }

    p->events[p->nevents++] = ngx_chat_frame_ref(f);

    return NGX_OK;
}


/*
 * Every room joined, and what the cursor missed replayed: answered now
 * if anything came, else at the first event or the timeout.
 */

static void
ngx_chat_poll_joined(ngx_chat_poll_t *p)
{
    if (p->nevents || p->timeout == 0) {
        ngx_chat_poll_ready(p);
        return;
    }

    ngx_add_timer(&p->answer, p->timeout);
}


/* answered after what is being delivered now, never from inside it */

static void
ngx_chat_poll_ready(ngx_chat_poll_t *p)
{
    if (!p->answer.posted) {
        ngx_post_event(&p->answer, &ngx_posted_events);
    }
}


static void
ngx_chat_poll_answer(ngx_event_t *ev)
{
    ngx_uint_t           status;
    ngx_chat_poll_t     *p;
    ngx_chat_frame_t    *f;
    ngx_http_request_t  *r;

    p = ev->data;
    r = p->request;

    /* a refused join: the client's cursor must change, nothing else goes */

    if (p->error) {
        status = ngx_chat_http_status(p->error->error);
        f = ngx_chat_frame_ref(p->error);

    } else {
        status = NGX_HTTP_OK;
        f = ngx_chat_poll_body(p);
    }

    ngx_chat_poll_end(p);

    r->connection->idle = 0;

    ngx_http_finalize_request(r, ngx_chat_http_reply(r, status, f));
}


/*
 * {"type":"poll","events":[...],"cursor":"R1:7,R2:9"}: per room, the
 * last seq its member has had, or the one the poll came with (the
 * session's rooms are in the cursor's order, less those refused)
 */

static ngx_chat_frame_t *
ngx_chat_poll_body(ngx_chat_poll_t *p)
{
    u_char            *b;
    size_t             len;
    ngx_uint_t         i;
    ngx_chat_frame_t  *f, *e;

    ngx_chat_cursor_update(&p->cursor, &p->session->rooms);

    len = sizeof("{\"type\":\"poll\",\"events\":[],\"cursor\":\"\"}") - 1
          + ngx_chat_cursor_len(&p->cursor);

    for (i = 0; i < p->nevents; i++) {
        len += p->events[i]->last - p->events[i]->payload + 1;
    }

    if (p->closed) {
        len += p->closed->last - p->closed->payload + 1;
    }

    f = ngx_chat_frame_alloc(len, p->request->connection->log);
    if (f == NULL) {
        return NULL;
    }

    b = ngx_cpymem(f->payload, "{\"type\":\"poll\",\"events\":[",
                   sizeof("{\"type\":\"poll\",\"events\":[") - 1);

    for (i = 0; i <= p->nevents; i++) {
        e = (i < p->nevents) ? p->events[i] : p->closed;

        if (e == NULL) {
            break;
        }

        if (i) {
            *b++ = ',';
        }

        b = ngx_cpymem(b, e->payload, e->last - e->payload);
    }

    b = ngx_cpymem(b, "],\"cursor\":\"", sizeof("],\"cursor\":\"") - 1);
    b = ngx_chat_cursor_write(b, &p->cursor);
    *b++ = '"';
    *b++ = '}';

    f->last = b;

    return f;
}


/* out of its rooms; what it kept goes */

static void
ngx_chat_poll_end(ngx_chat_poll_t *p)
{
    ngx_uint_t  i;

    if (p->done) {
        return;
    }

    p->done = 1;
    ngx_chat_stat_dec(polls);

    if (p->answer.timer_set) {
        ngx_del_timer(&p->answer);
    }

    if (p->answer.posted) {
        ngx_delete_posted_event(&p->answer);
    }

    ngx_chat_session_close(p->session);

    for (i = 0; i < p->nevents; i++) {
        ngx_chat_frame_unref(p->events[i]);
    }

    p->nevents = 0;

    if (p->error) {
        ngx_chat_frame_unref(p->error);
        p->error = NULL;
    }

    if (p->closed) {
        ngx_chat_frame_unref(p->closed);
        p->closed = NULL;
    }
}


/* the request went first: the client closed, or the worker is exiting */

static void
ngx_chat_poll_cleanup(void *data)
{
    ngx_chat_poll_end(data);
}
