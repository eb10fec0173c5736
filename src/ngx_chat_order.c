
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_order.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_transcript.h"


/*
 * What a room's channel brings, delivered in seq order.  Each worker
 * remembers the last seq it delivered per room: a message further ahead
 * (a lost connection, a resubscribe) makes it fetch the gap from the
 * room's recent messages first, holding later ones meanwhile; a seq that
 * goes back says Redis lost the room's data.
 */

#define NGX_CHAT_ORDER_BACKLOG_MAX  10000


typedef struct {
    ngx_chat_room_t            *room;
    uint64_t                    to;
} ngx_chat_order_fill_t;


static void ngx_chat_order_caught_up(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_order_verify(ngx_chat_room_t *room,
    ngx_chat_frame_t *f);
static void ngx_chat_order_verified(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_order_fill(ngx_chat_room_t *room, uint64_t to);
static void ngx_chat_order_filled(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_chat_order_reserve(ngx_chat_channel_t *rr);
static void ngx_chat_order_drain(ngx_chat_room_t *room);
static void ngx_chat_order_rewind(ngx_chat_room_t *room, uint64_t seq);
static void ngx_chat_order_repositioned(PGresult *res, void *data);
static void ngx_chat_order_clamp(ngx_chat_room_t *room, uint64_t seq);


/*
 * The room was subscribed again (the subscriber connection came back):
 * what was published meanwhile is fetched, from the room's current seq.
 */

void
ngx_chat_order_catch_up(ngx_chat_room_t *room)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_start(&cmd, "GET");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_SEQ, &room->node.str, NULL, NULL);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_order_caught_up, room)
        == NGX_OK)
    {
        room->refs++;
    }
}


/* a message from the channel, in the order Redis published them */

void
ngx_chat_order_message(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    ngx_chat_channel_t  *rr;

    rr = room->store;

    if (rr->filling) {

        if (ngx_chat_order_reserve(rr) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "chat: room \"%V\": backlog full, message %uL "
                          "dropped", &room->node.str, f->seq);
            return;
        }

        rr->backlog[rr->nbacklog++] = ngx_chat_frame_ref(f);
        return;
    }

    if (rr->known) {

        if (f->seq <= room->seq) {

            /*
             * seq 1 again is a duplicate, or Redis has lost the room's
             * data and counts from 1: ask Redis, holding what comes
             */

            if (f->seq == 1) {
                ngx_chat_order_verify(room, f);
            }

            return;
        }

        if (f->seq > room->seq + 1) {
            ngx_chat_order_fill(room, f->seq - 1);

            if (rr->filling) {
                rr->backlog[rr->nbacklog++] = ngx_chat_frame_ref(f);
                return;
            }
        }
    }

    rr->known = 1;

    (void) ngx_chat_hub_deliver(room, f);
}


static void
ngx_chat_order_caught_up(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_room_t *room = privdata;

    uint64_t             last;
    ngx_chat_channel_t  *rr;

    room->refs--;
    rr = room->store;

    if (rr && rr->known && ngx_chat_cmd_uint(r, &last) == NGX_OK) {

        if (last < room->seq) {
            ngx_chat_order_rewind(room, last);

        } else if (last > room->seq && !rr->filling) {
            ngx_chat_order_fill(room, last);
        }
    }

    ngx_chat_hub_release(room);
}


static void
ngx_chat_order_verify(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    ngx_chat_cmd_t       cmd;
    ngx_chat_channel_t  *rr;

    rr = room->store;

    if (ngx_chat_order_reserve(rr) != NGX_OK) {
        return;
    }

    ngx_chat_cmd_start(&cmd, "GET");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_SEQ, &room->node.str, NULL, NULL);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_order_verified, room)
        != NGX_OK)
    {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: room \"%V\": seq 1 again, asking Redis",
                   &room->node.str);

    rr->filling = 1;
    rr->backlog[rr->nbacklog++] = ngx_chat_frame_ref(f);
    room->refs++;
}


static void
ngx_chat_order_verified(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_room_t *room = privdata;

    uint64_t             last;
    ngx_chat_channel_t  *rr;

    room->refs--;
    rr = room->store;

    if (rr == NULL) {
        ngx_chat_hub_release(room);
        return;
    }

    rr->filling = 0;

    if (ngx_chat_cmd_uint(r, &last) == NGX_OK && last < room->seq) {
        ngx_chat_order_rewind(room, 0);
    }

    ngx_chat_order_drain(room);
}


/* fetches what is missing up to "to" from the recent messages */

static void
ngx_chat_order_fill(ngx_chat_room_t *room, uint64_t to)
{
    ngx_chat_cmd_t          cmd;
    ngx_chat_channel_t     *rr;
    ngx_chat_order_fill_t  *fill;

    rr = room->store;

    /* room for the message that revealed the gap */

    if (ngx_chat_order_reserve(rr) != NGX_OK) {
        return;
    }

    fill = ngx_alloc(sizeof(ngx_chat_order_fill_t), ngx_cycle->log);
    if (fill == NULL) {
        return;
    }

    fill->room = room;
    fill->to = to;

    ngx_chat_cmd_start(&cmd, "ZRANGEBYSCORE");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_RECENT, &room->node.str, NULL, NULL);
    ngx_chat_cmd_fmt(&cmd, "(%uL", room->seq);
    ngx_chat_cmd_num(&cmd, to);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_order_filled, fill)
        != NGX_OK)
    {
        ngx_free(fill);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "chat: room \"%V\": fetching messages %uL to %uL",
                  &room->node.str, room->seq + 1, to);

    rr->filling = 1;
    room->refs++;
}


static void
ngx_chat_order_filled(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_order_fill_t *fill = privdata;

    uint64_t             to;
    ngx_uint_t           i;
    ngx_chat_room_t     *room;
    ngx_chat_store_op_t  op;
    ngx_chat_channel_t  *rr;

    room = fill->room;
    to = fill->to;
    ngx_free(fill);

    room->refs--;
    rr = room->store;

    if (rr == NULL) {
        ngx_chat_hub_release(room);
        return;
    }

    rr->filling = 0;

    ngx_memzero(&op, sizeof(ngx_chat_store_op_t));
    op.room = room;
    op.log = ngx_cycle->log;

    if (r && ngx_chat_transcript_frames(&op, r, 0) == NGX_OK) {

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "chat: room \"%V\": %ui messages fetched",
                       &room->node.str, op.nframes);

        for (i = 0; i < op.nframes; i++) {
            if (op.frames[i]->seq > room->seq) {
                (void) ngx_chat_hub_deliver(room, op.frames[i]);
            }
        }
    }

    for (i = 0; i < op.nframes; i++) {
        ngx_chat_frame_unref(op.frames[i]);
    }

    if (op.frames) {
        ngx_free(op.frames);
    }

    if (room->seq < to) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: room \"%V\": messages %uL to %uL are no longer "
                      "in Redis, live members skip them%s",
                      &room->node.str, room->seq + 1, to,
                      ngx_chat_pg_configured()
                      ? " (history and join since read them from Postgres)"
                      : "");
        room->seq = to;
    }

    /* what came meanwhile, through the same checks */

    ngx_chat_order_drain(room);
}


/* room in the backlog for one more message, within its bound */

static ngx_int_t
ngx_chat_order_reserve(ngx_chat_channel_t *rr)
{
    ngx_uint_t          size;
    ngx_chat_frame_t  **backlog;

    if (rr->nbacklog < rr->backlog_size) {
        return NGX_OK;
    }

    size = rr->backlog_size ? 2 * rr->backlog_size : 64;

    if (size > NGX_CHAT_ORDER_BACKLOG_MAX) {
        return NGX_DECLINED;
    }

    backlog = ngx_alloc(size * sizeof(ngx_chat_frame_t *), ngx_cycle->log);
    if (backlog == NULL) {
        return NGX_ERROR;
    }

    if (rr->backlog) {
        ngx_memcpy(backlog, rr->backlog,
                   rr->nbacklog * sizeof(ngx_chat_frame_t *));
        ngx_free(rr->backlog);
    }

    rr->backlog = backlog;
    rr->backlog_size = size;

    return NGX_OK;
}


/* what was held during a fill or a check goes on, through the same checks */

static void
ngx_chat_order_drain(ngx_chat_room_t *room)
{
    ngx_uint_t           i, n;
    ngx_chat_frame_t   **backlog;
    ngx_chat_channel_t  *rr;

    rr = room->store;

    backlog = rr->backlog;
    n = rr->nbacklog;

    rr->backlog = NULL;
    rr->nbacklog = 0;
    rr->backlog_size = 0;

    for (i = 0; i < n; i++) {
        if (room->store && backlog[i]->seq > room->seq) {
            ngx_chat_order_message(room, backlog[i]);
        }

        ngx_chat_frame_unref(backlog[i]);
    }

    if (backlog) {
        ngx_free(backlog);
    }

    if (room->store) {
        ngx_chat_channel_sync(room);

    } else {
        ngx_chat_hub_release(room);
    }
}


/*
 * The room's seq went back: Redis lost its data.  Counting goes on from
 * where Redis is, or nothing would be delivered until it caught up; with
 * chat_postgres, from the last seq Postgres has, read again (and written
 * back), while the channel's messages wait.
 */

static void
ngx_chat_order_rewind(ngx_chat_room_t *room, uint64_t seq)
{
    ngx_chat_channel_t  *rr;

    rr = room->store;

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "chat: room \"%V\": seq went back from %uL to %uL, "
                  "Redis lost its data%s", &room->node.str, room->seq, seq,
                  ngx_chat_pg_configured() ? ", its seq comes from Postgres"
                                           : "");

    if (!ngx_chat_pg_configured() || rr->filling) {
        ngx_chat_order_clamp(room, seq);
        return;
    }

    if (ngx_chat_transcript_max(&room->node.str,
                                ngx_chat_order_repositioned, room)
        != NGX_OK)
    {
        ngx_chat_order_clamp(room, seq);
        rr->known = 0;
        return;
    }

    rr->filling = 1;
    room->refs++;
}


static void
ngx_chat_order_repositioned(PGresult *res, void *data)
{
    ngx_chat_room_t *room = data;

    uint64_t             seq;
    ngx_chat_channel_t  *rr;

    room->refs--;
    rr = room->store;
    rr->filling = 0;

    if (ngx_chat_transcript_seq(res, &room->node.str, &seq) != NGX_OK) {

        /* the room's next join asks Postgres again */

        ngx_chat_order_clamp(room, 0);
        rr->known = 0;
        ngx_chat_order_drain(room);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "chat: room \"%V\": going on from seq %uL, the last one "
                  "in Postgres", &room->node.str, seq);

    ngx_chat_order_clamp(room, seq);
    rr->known = 1;

    if (seq) {
        (void) ngx_chat_channel_seed(&room->node.str, seq, NULL, NULL);
    }

    ngx_chat_order_drain(room);
}


/* the room, and its members, at seq: what comes after it is delivered */

static void
ngx_chat_order_clamp(ngx_chat_room_t *room, uint64_t seq)
{
    ngx_queue_t        *q;
    ngx_chat_member_t  *m;

    room->seq = seq;

    for (q = ngx_queue_head(&room->members);
         q != ngx_queue_sentinel(&room->members);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_chat_member_t, room_link);

        if (m->seq > seq) {
            m->seq = seq;
        }
    }
}
