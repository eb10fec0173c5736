
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <sys/random.h>
#include "ngx_chat_store.h"
#include "ngx_chat_worker.h"


/*
 * What every store shares: its operations, which outlive their clients,
 * and message ids.
 */


/* the module's choice: ngx_chat_store_memory or ngx_chat_store_redis */
ngx_chat_store_t           *ngx_chat_store;

/* the module's: what runs a command of the application on this worker */
ngx_chat_store_command_pt   ngx_chat_store_command;

static uint64_t             ngx_chat_store_rand[2];


ngx_int_t
ngx_chat_store_init_process(ngx_cycle_t *cycle)
{
    if (getrandom(ngx_chat_store_rand, sizeof(ngx_chat_store_rand), 0)
        != sizeof(ngx_chat_store_rand))
    {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "chat: getrandom() failed");
        return NGX_ERROR;
    }

    ngx_chat_store_rand[0] |= 1;

    return ngx_chat_store->init_process(cycle);
}


void
ngx_chat_store_exit_process(ngx_cycle_t *cycle)
{
    ngx_chat_store->exit_process(cycle);
}


/*
 * An operation on a room for a request: it copies what it needs from the
 * request, which is gone once the request's handler returns.
 */

ngx_chat_store_op_t *
ngx_chat_store_op(ngx_chat_room_t *room, ngx_chat_request_t *req,
    ngx_log_t *log)
{
    u_char               *p;
    size_t                size;
    cJSON                *u;
    ngx_uint_t            i;
    ngx_chat_store_op_t  *op;

    size = sizeof(ngx_chat_store_op_t) + req->text.len + req->user.len;

    for (u = req->users ? req->users->child : NULL; u; u = u->next) {
        size += sizeof(ngx_str_t) + 1 + ngx_strlen(u->valuestring);
    }

    op = ngx_calloc(size, log);
    if (op == NULL) {
        return NULL;
    }

    ngx_queue_init(&op->queue);
    ngx_queue_init(&op->wait);
    op->log = log;
    op->op = req->op;
    op->room = room;

    if (room) {
        room->refs++;
    }

    if (req->id.data) {
        op->id.data = op->id_data;
        op->id.len = ngx_min(req->id.len, NGX_CHAT_ID_MAX);
        ngx_memcpy(op->id_data, req->id.data, op->id.len);
    }

    op->since = req->since;
    op->has_since = req->has_since;
    op->before = req->before;
    op->has_before = req->has_before;
    op->limit = req->limit;
    op->ban = req->ban;

    p = (u_char *) (op + 1);

    if (req->users) {
        op->nusers = cJSON_GetArraySize(req->users);
        op->users = (ngx_str_t *) p;
        op->present = (u_char *) (op->users + op->nusers);
        p = op->present + op->nusers;

        for (i = 0, u = req->users->child; u; u = u->next, i++) {
            op->users[i].data = p;
            op->users[i].len = ngx_strlen(u->valuestring);
            p = ngx_cpymem(p, u->valuestring, op->users[i].len);
        }
    }

    /* a send may wait for its room's join */

    if (req->text.len) {
        op->text.data = p;
        op->text.len = req->text.len;
        p = ngx_cpymem(p, req->text.data, req->text.len);
    }

    op->user.data = p;
    op->user.len = req->user.len;

    if (req->user.len) {
        ngx_memcpy(p, req->user.data, req->user.len);
    }

    return op;
}


/* the store has finished: tell the owner if it is still there, and free */

void
ngx_chat_store_op_done(ngx_chat_store_op_t *op)
{
    ngx_uint_t        i;
    ngx_chat_room_t  *room;

    ngx_queue_remove(&op->queue);
    ngx_queue_remove(&op->wait);

    if (op->data) {
        op->done(op);
    }

    if (op->store_data) {
        ngx_free(op->store_data);
    }

    if (op->frames) {
        if (op->frames_owned) {
            for (i = 0; i < op->nframes; i++) {
                ngx_chat_frame_unref(op->frames[i]);
            }
        }

        ngx_free(op->frames);
    }

    room = op->room;

    if (room) {
        room->refs--;
        ngx_chat_hub_release(room);
    }

    ngx_free(op);
}


void
ngx_chat_store_op_fail(ngx_chat_store_op_t *op, ngx_uint_t error)
{
    op->error = error;
    ngx_chat_store_op_done(op);
}


void
ngx_chat_store_op_cancel(ngx_chat_store_op_t *op)
{
    ngx_queue_remove(&op->queue);
    ngx_queue_init(&op->queue);
    op->data = NULL;
}


static uint64_t
ngx_chat_store_random(void)
{
    uint64_t  x, y;

    x = ngx_chat_store_rand[0];
    y = ngx_chat_store_rand[1];

    ngx_chat_store_rand[0] = y;
    x ^= x << 23;
    ngx_chat_store_rand[1] = x ^ y ^ (x >> 17) ^ (y >> 26);

    return ngx_chat_store_rand[1] + y;
}


/*
 * A UUIDv7 (RFC 9562): 48 bits of Unix time in ms and 74 random bits from
 * a xorshift128+ stream seeded by the kernel, so ids sort by time and do
 * not collide across workers and hosts.
 */

void
ngx_chat_store_msg_id(u_char *buf)
{
    u_char      b[16];
    uint64_t    ms, ra, rb;
    ngx_uint_t  i;

    static u_char  hex[] = "0123456789abcdef";

    ms = ngx_chat_worker_now();
    ra = ngx_chat_store_random();
    rb = ngx_chat_store_random();

    for (i = 0; i < 6; i++) {
        b[i] = (u_char) (ms >> (40 - 8 * i));
    }

    b[6] = (u_char) (0x70 | (ra & 0x0f));
    b[7] = (u_char) (ra >> 4);
    b[8] = (u_char) (0x80 | (rb & 0x3f));

    for (i = 9; i < 16; i++) {
        b[i] = (u_char) (rb >> (8 * (i - 8)));
    }

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *buf++ = '-';
        }

        *buf++ = hex[b[i] >> 4];
        *buf++ = hex[b[i] & 0xf];
    }
}
