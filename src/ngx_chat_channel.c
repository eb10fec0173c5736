
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_channel.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_transcript.h"


/*
 * A room's channel in Redis.  Each worker subscribes to the rooms its
 * clients are in, on a connection of its own, and delivers what a
 * channel brings in seq order: a gap (a lost connection, a resubscribe)
 * is filled from the room's recent messages first, holding later ones
 * meanwhile, and a seq that goes back says Redis lost the room's data.
 */

#define NGX_CHAT_CHANNEL_BACKLOG_MAX  10000


typedef struct {
    ngx_chat_room_t            *room;
    uint64_t                    to;
} ngx_chat_channel_fill_t;


static void ngx_chat_channel_ready_handler(ngx_chat_redis_t *rd);
static void ngx_chat_channel_down(ngx_chat_redis_t *rd);
static void ngx_chat_channel_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_channel_subscribed(ngx_chat_room_t *room);
static void ngx_chat_channel_caught_up(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_channel_message(ngx_chat_room_t *room,
    ngx_chat_frame_t *f);
static void ngx_chat_channel_verify(ngx_chat_room_t *room,
    ngx_chat_frame_t *f);
static void ngx_chat_channel_verified(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_channel_fill(ngx_chat_room_t *room, uint64_t to);
static void ngx_chat_channel_filled(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_chat_channel_reserve(ngx_chat_channel_t *rr);
static void ngx_chat_channel_drain(ngx_chat_room_t *room);
static void ngx_chat_channel_rewind(ngx_chat_room_t *room, uint64_t seq);


static ngx_chat_redis_t   ngx_chat_channel_link;
static ngx_chat_redis_pt  ngx_chat_channel_on_ready;
static ngx_queue_t        ngx_chat_channel_rooms;


ngx_int_t
ngx_chat_channel_init_process(ngx_cycle_t *cycle, ngx_chat_redis_pt on_ready)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_queue_init(&ngx_chat_channel_rooms);

    ngx_chat_channel_on_ready = on_ready;

    ngx_chat_channel_link.conf = cmcf->redis;
    ngx_chat_channel_link.log = cycle->log;
    ngx_chat_channel_link.name = "subscriber";
    ngx_chat_channel_link.on_ready = ngx_chat_channel_ready_handler;
    ngx_chat_channel_link.on_down = ngx_chat_channel_down;

    ngx_chat_redis_connect(&ngx_chat_channel_link);

    return NGX_OK;
}


void
ngx_chat_channel_exit_process(void)
{
    ngx_chat_redis_close(&ngx_chat_channel_link);
}


ngx_uint_t
ngx_chat_channel_ready(void)
{
    return ngx_chat_channel_link.ready;
}


/* op->next goes on once the room's channel brings every message */

void
ngx_chat_channel_wait(ngx_chat_store_op_t *op, ngx_chat_store_done_pt next)
{
    ngx_chat_channel_t  *rr;

    rr = op->room->store;
    op->next = next;

    if (rr->state == NGX_CHAT_CHANNEL_SUBSCRIBED) {
        next(op);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "chat: room \"%V\": join waits for the subscription",
                   &op->room->node.str);

    ngx_queue_insert_tail(&rr->joins, &op->wait);
    ngx_chat_channel_sync(op->room);
}


/* (re)connected: subscribe again to every room that has members here */

static void
ngx_chat_channel_ready_handler(ngx_chat_redis_t *rd)
{
    ngx_queue_t         *q, *next;
    ngx_chat_channel_t  *rr;

    if (ngx_chat_channel_on_ready) {
        ngx_chat_channel_on_ready(rd);
    }

    for (q = ngx_queue_head(&ngx_chat_channel_rooms);
         q != ngx_queue_sentinel(&ngx_chat_channel_rooms);
         q = next)
    {
        next = ngx_queue_next(q);
        rr = ngx_queue_data(q, ngx_chat_channel_t, queue);

        ngx_chat_channel_sync(rr->room);
    }
}


static void
ngx_chat_channel_down(ngx_chat_redis_t *rd)
{
    ngx_queue_t          *q;
    ngx_chat_store_op_t  *op;
    ngx_chat_channel_t   *rr;

    for (q = ngx_queue_head(&ngx_chat_channel_rooms);
         q != ngx_queue_sentinel(&ngx_chat_channel_rooms);
         q = ngx_queue_next(q))
    {
        rr = ngx_queue_data(q, ngx_chat_channel_t, queue);

        rr->state = NGX_CHAT_CHANNEL_UNSUBSCRIBED;
        rr->busy = 0;

        while (!ngx_queue_empty(&rr->joins)) {
            op = ngx_queue_data(ngx_queue_head(&rr->joins),
                                ngx_chat_store_op_t, wait);
            ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        }
    }
}


ngx_chat_channel_t *
ngx_chat_channel_get(ngx_chat_room_t *room)
{
    ngx_chat_channel_t  *rr;

    if (room->store) {
        return room->store;
    }

    rr = ngx_calloc(sizeof(ngx_chat_channel_t), ngx_cycle->log);
    if (rr == NULL) {
        return NULL;
    }

    rr->room = room;
    ngx_queue_init(&rr->joins);
    ngx_queue_init(&rr->seeds);
    ngx_queue_insert_tail(&ngx_chat_channel_rooms, &rr->queue);

    room->store = rr;

    return rr;
}


/*
 * Brings the subscription in line with the room's local members; frees
 * the room's state once nobody here is in it and nothing is under way.
 */

void
ngx_chat_channel_sync(ngx_chat_room_t *room)
{
    ngx_chat_cmd_t       cmd;
    ngx_chat_channel_t  *rr;

    rr = room->store;

    if (rr->busy) {
        return;
    }

    if (room->nmembers == 0 && rr->state == NGX_CHAT_CHANNEL_UNSUBSCRIBED
        && !rr->filling && !rr->seeding && ngx_queue_empty(&rr->seeds))
    {
        /* joins whose members left before the subscription came */

        while (!ngx_queue_empty(&rr->joins)) {
            ngx_chat_store_op_fail(ngx_queue_data(ngx_queue_head(&rr->joins),
                                               ngx_chat_store_op_t, wait),
                                NGX_CHAT_ERR_UNAVAILABLE);
        }

        while (rr->nbacklog) {
            ngx_chat_frame_unref(rr->backlog[--rr->nbacklog]);
        }

        if (rr->backlog) {
            ngx_free(rr->backlog);
        }

        ngx_queue_remove(&rr->queue);
        ngx_free(rr);

        room->store = NULL;
        ngx_chat_hub_release(room);
        return;
    }

    if ((room->nmembers > 0) == (rr->state == NGX_CHAT_CHANNEL_SUBSCRIBED)) {
        return;
    }

    ngx_chat_cmd_start(&cmd, room->nmembers ? "SUBSCRIBE" : "UNSUBSCRIBE");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_ROOM, &room->node.str, NULL, NULL);

    if (ngx_chat_cmd_send(&cmd, &ngx_chat_channel_link,
                          ngx_chat_channel_reply, NULL)
        == NGX_OK)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "chat: room \"%V\": %s", &room->node.str,
                       room->nmembers ? "subscribing" : "unsubscribing");
        rr->busy = 1;
    }
}


/* every reply of the subscriber connection comes here */

static void
ngx_chat_channel_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    u_char               user[NGX_CHAT_USER_MAX];
    redisReply          *reply = r;
    ngx_str_t            kind, channel, name, typer;
    ngx_chat_room_t     *room;
    ngx_chat_frame_t    *f;
    ngx_chat_channel_t  *rr;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    kind.data = (u_char *) reply->element[0]->str;
    kind.len = reply->element[0]->len;
    channel.data = (u_char *) reply->element[1]->str;
    channel.len = reply->element[1]->len;

    if (ngx_chat_cmd_room(&channel, &name) != NGX_OK) {
        return;
    }

    room = ngx_chat_hub_find(&name);

    if (room == NULL || room->store == NULL) {
        return;
    }

    if (kind.len == 7 && ngx_strncmp(kind.data, "message", 7) == 0) {

        if (reply->element[2]->type != REDIS_REPLY_STRING) {
            return;
        }

        f = ngx_chat_decode_stored(&name, (u_char *) reply->element[2]->str,
                                     reply->element[2]->len, ngx_cycle->log);

        if (f == NULL) {
            typer.data = user;

            f = ngx_chat_decode_typing(&name,
                                  (u_char *) reply->element[2]->str,
                                  reply->element[2]->len, &typer,
                                  ngx_cycle->log);
            if (f) {
                ngx_chat_hub_signal(room, f, &typer);
                ngx_chat_frame_unref(f);
                return;
            }

            f = ngx_chat_decode_presence(&name,
                                  (u_char *) reply->element[2]->str,
                                  reply->element[2]->len, &typer,
                                  ngx_cycle->log);
            if (f) {
                /* to the others: a user knows of its own comings */
                ngx_chat_hub_signal(room, f, &typer);
                ngx_chat_frame_unref(f);
                return;
            }
        }

        if (f == NULL) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "chat: dropped a malformed message of %uz bytes "
                          "on channel \"%V\"",
                          (size_t) reply->element[2]->len, &channel);
            return;
        }

        ngx_chat_channel_message(room, f);
        ngx_chat_frame_unref(f);
        return;
    }

    if (kind.len == 9 && ngx_strncmp(kind.data, "subscribe", 9) == 0) {
        ngx_chat_channel_subscribed(room);
        return;
    }

    if (kind.len == 11 && ngx_strncmp(kind.data, "unsubscribe", 11) == 0) {
        rr = room->store;
        rr->state = NGX_CHAT_CHANNEL_UNSUBSCRIBED;
        rr->busy = 0;
        rr->known = 0;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "chat: room \"%V\": unsubscribed", &room->node.str);

        ngx_chat_channel_sync(room);
    }
}


/*
 * From now on the channel brings every message: the joins that waited
 * for this go on, and a room this worker knew catches up with what was
 * published while it was not subscribed.
 */

static void
ngx_chat_channel_subscribed(ngx_chat_room_t *room)
{
    ngx_queue_t          *q;
    ngx_chat_cmd_t        cmd;
    ngx_chat_store_op_t  *op;
    ngx_chat_channel_t   *rr;

    rr = room->store;
    rr->state = NGX_CHAT_CHANNEL_SUBSCRIBED;
    rr->busy = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: room \"%V\": subscribed", &room->node.str);

    if (rr->known) {
        ngx_chat_cmd_start(&cmd, "GET");
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_SEQ, &room->node.str, NULL,
                         NULL);

        if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_channel_caught_up, room)
            == NGX_OK)
        {
            room->refs++;
        }
    }

    while (!ngx_queue_empty(&rr->joins)) {
        q = ngx_queue_head(&rr->joins);
        op = ngx_queue_data(q, ngx_chat_store_op_t, wait);

        ngx_queue_remove(q);
        ngx_queue_init(q);

        op->next(op);
    }

    ngx_chat_channel_sync(room);
}


static void
ngx_chat_channel_caught_up(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_room_t *room = privdata;

    uint64_t             last;
    ngx_chat_channel_t  *rr;

    room->refs--;
    rr = room->store;

    if (rr && rr->known && ngx_chat_cmd_uint(r, &last) == NGX_OK) {

        if (last < room->seq) {
            ngx_chat_channel_rewind(room, last);

        } else if (last > room->seq && !rr->filling) {
            ngx_chat_channel_fill(room, last);
        }
    }

    ngx_chat_hub_release(room);
}


/* a message from the channel, in the order Redis published them */

static void
ngx_chat_channel_message(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    ngx_chat_channel_t  *rr;

    rr = room->store;

    if (rr->filling) {

        if (ngx_chat_channel_reserve(rr) != NGX_OK) {
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
                ngx_chat_channel_verify(room, f);
            }

            return;
        }

        if (f->seq > room->seq + 1) {
            ngx_chat_channel_fill(room, f->seq - 1);

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
ngx_chat_channel_verify(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    ngx_chat_cmd_t       cmd;
    ngx_chat_channel_t  *rr;

    rr = room->store;

    if (ngx_chat_channel_reserve(rr) != NGX_OK) {
        return;
    }

    ngx_chat_cmd_start(&cmd, "GET");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_SEQ, &room->node.str, NULL, NULL);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_channel_verified, room)
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
ngx_chat_channel_verified(redisAsyncContext *ac, void *r, void *privdata)
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
        ngx_chat_channel_rewind(room, 0);
    }

    ngx_chat_channel_drain(room);
}


/* fetches what is missing up to "to" from the recent messages */

static void
ngx_chat_channel_fill(ngx_chat_room_t *room, uint64_t to)
{
    ngx_chat_cmd_t            cmd;
    ngx_chat_channel_t       *rr;
    ngx_chat_channel_fill_t  *fill;

    rr = room->store;

    /* room for the message that revealed the gap */

    if (ngx_chat_channel_reserve(rr) != NGX_OK) {
        return;
    }

    fill = ngx_alloc(sizeof(ngx_chat_channel_fill_t), ngx_cycle->log);
    if (fill == NULL) {
        return;
    }

    fill->room = room;
    fill->to = to;

    ngx_chat_cmd_start(&cmd, "ZRANGEBYSCORE");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_RECENT, &room->node.str, NULL, NULL);
    ngx_chat_cmd_fmt(&cmd, "(%uL", room->seq);
    ngx_chat_cmd_num(&cmd, to);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_channel_filled, fill)
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
ngx_chat_channel_filled(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_channel_fill_t *fill = privdata;

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
                      "in Redis, clients will not get them",
                      &room->node.str, room->seq + 1, to);
        room->seq = to;
    }

    /* what came meanwhile, through the same checks */

    ngx_chat_channel_drain(room);
}


/* room in the backlog for one more message, within its bound */

static ngx_int_t
ngx_chat_channel_reserve(ngx_chat_channel_t *rr)
{
    ngx_uint_t          size;
    ngx_chat_frame_t  **backlog;

    if (rr->nbacklog < rr->backlog_size) {
        return NGX_OK;
    }

    size = rr->backlog_size ? 2 * rr->backlog_size : 64;

    if (size > NGX_CHAT_CHANNEL_BACKLOG_MAX) {
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
ngx_chat_channel_drain(ngx_chat_room_t *room)
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
            ngx_chat_channel_message(room, backlog[i]);
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
 * where Redis is, or nothing would be delivered until it caught up.
 */

static void
ngx_chat_channel_rewind(ngx_chat_room_t *room, uint64_t seq)
{
    ngx_queue_t        *q;
    ngx_chat_member_t  *m;

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "chat: room \"%V\": seq went back from %uL to %uL, "
                  "Redis lost its data", &room->node.str, room->seq, seq);

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


/* typing goes through the room's channel, not stored, not numbered */

void
ngx_chat_channel_typing(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    ngx_str_t       payload;
    ngx_chat_cmd_t  cmd;

    payload.data = f->payload;
    payload.len = f->last - f->payload;

    ngx_chat_cmd_start(&cmd, "PUBLISH");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_ROOM, &room->node.str, NULL, NULL);
    ngx_chat_cmd_str(&cmd, &payload);

    (void) ngx_chat_cmd_send(&cmd, NULL, NULL, NULL);
}
