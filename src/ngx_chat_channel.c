
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_channel.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_command.h"
#include "ngx_chat_worker.h"


/*
 * A room's channel in Redis.  Each worker subscribes to the rooms its
 * clients are in, on a connection of its own: a join goes on once the
 * subscription is confirmed, and what the channel brings goes to the
 * hub (typing, presence) or, a message, to the handler that keeps the
 * room's order (ngx_chat_order.c).
 */

static void ngx_chat_channel_ready_handler(ngx_chat_redis_t *rd);
static void ngx_chat_channel_down(ngx_chat_redis_t *rd);
static void ngx_chat_channel_ping(ngx_chat_redis_t *rd);
static void ngx_chat_channel_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_channel_subscribed(ngx_chat_room_t *room);


static ngx_chat_redis_t          ngx_chat_channel_link;
static ngx_chat_redis_pt         ngx_chat_channel_on_ready;
static ngx_chat_channel_room_pt  ngx_chat_channel_on_catch_up;
static ngx_chat_channel_frame_pt ngx_chat_channel_on_message;
static ngx_queue_t               ngx_chat_channel_rooms;


/*
 * on_ready: the connection is up; on_message: a message event of a room
 * with members here; on_catch_up: a room this worker knew is subscribed
 * again, and may have missed messages.
 */

ngx_int_t
ngx_chat_channel_init_process(ngx_cycle_t *cycle, ngx_chat_redis_pt on_ready,
    ngx_chat_channel_frame_pt on_message, ngx_chat_channel_room_pt on_catch_up)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_queue_init(&ngx_chat_channel_rooms);

    ngx_chat_channel_on_ready = on_ready;
    ngx_chat_channel_on_message = on_message;
    ngx_chat_channel_on_catch_up = on_catch_up;

    ngx_chat_channel_link.conf = cmcf->redis;
    ngx_chat_channel_link.log = cycle->log;
    ngx_chat_channel_link.name = "subscriber";
    ngx_chat_channel_link.on_ready = ngx_chat_channel_ready_handler;
    ngx_chat_channel_link.on_down = ngx_chat_channel_down;
    ngx_chat_channel_link.on_idle = ngx_chat_channel_ping;
    ngx_chat_channel_link.on_message = ngx_chat_channel_reply;

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


/*
 * The command connection is up again: a room subscribed meanwhile could
 * not ask for the seq it may have missed (Redis restarted, and the
 * subscriber came back first), so every known room asks now; asking twice
 * costs one GET.
 */

void
ngx_chat_channel_catch_up(void)
{
    ngx_queue_t         *q;
    ngx_chat_channel_t  *rr;

    for (q = ngx_queue_head(&ngx_chat_channel_rooms);
         q != ngx_queue_sentinel(&ngx_chat_channel_rooms);
         q = ngx_queue_next(q))
    {
        rr = ngx_queue_data(q, ngx_chat_channel_t, queue);

        if (rr->state == NGX_CHAT_CHANNEL_SUBSCRIBED && rr->known) {
            ngx_chat_channel_on_catch_up(rr->room);
        }
    }
}


/* op->next goes on once the room's channel brings every message */

void
ngx_chat_channel_wait(ngx_chat_store_op_t *op, ngx_chat_store_done_pt next)
{
    ngx_chat_channel_t  *rr;

    rr = op->room->store;
    op->next = next;

    /*
     * subscribed and busy: the last member here has left and the
     * UNSUBSCRIBE is on its way; what is published once it is done would
     * never come, so the join waits for the SUBSCRIBE that follows it
     */

    if (rr->state == NGX_CHAT_CHANNEL_SUBSCRIBED && !rr->busy) {
        next(op);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "chat: room \"%V\": join waits for the subscription",
                   &op->room->node.str);

    ngx_queue_insert_tail(&rr->joins, &op->wait);
    ngx_chat_channel_sync(op->room);
}


/* sets a room's seq key to at least seq; see src/lua/seed.lua */

ngx_int_t
ngx_chat_channel_seed(ngx_str_t *room, uint64_t seq, redisCallbackFn *fn,
    void *data)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_eval(&cmd, NGX_CHAT_SCRIPT_SEED, 2);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_SEQ, room, NULL, NULL);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_RECENT, room, NULL, NULL);
    ngx_chat_cmd_num(&cmd, seq);

    return ngx_chat_cmd_send(&cmd, NULL, fn, data);
}


/*
 * (re)connected: subscribe to the control channel, and again to every
 * room that has members here
 */

static void
ngx_chat_channel_ready_handler(ngx_chat_redis_t *rd)
{
    ngx_queue_t         *q, *next;
    ngx_chat_cmd_t       cmd;
    ngx_chat_channel_t  *rr;

    ngx_chat_cmd_start(&cmd, "SUBSCRIBE");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_CONTROL, NULL, NULL, NULL);

    (void) ngx_chat_cmd_send(&cmd, &ngx_chat_channel_link,
                             ngx_chat_channel_reply, NULL);

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


/*
 * The link waits for nothing while no (UN)SUBSCRIBE is under way: a
 * stalled Redis is noticed by a heartbeat.  On a subscribed connection
 * PING's answer would not reach hiredis' callbacks, a SUBSCRIBE's does:
 * the worker's own channel, which nobody publishes to.
 */

static void
ngx_chat_channel_ping(ngx_chat_redis_t *rd)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_start(&cmd, "SUBSCRIBE");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_PING, &ngx_chat_worker_id, NULL,
                     NULL);

    (void) ngx_chat_cmd_send(&cmd, rd, NULL, NULL);
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

    if (ngx_chat_cmd_control(&channel)) {

        if (kind.len == 7 && ngx_strncmp(kind.data, "message", 7) == 0
            && reply->element[2]->type == REDIS_REPLY_STRING)
        {
            ngx_chat_command_arrived((u_char *) reply->element[2]->str,
                                     reply->element[2]->len);
        }

        return;
    }

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

        ngx_chat_channel_on_message(room, f);
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
    ngx_chat_store_op_t  *op;
    ngx_chat_channel_t   *rr;

    rr = room->store;
    rr->state = NGX_CHAT_CHANNEL_SUBSCRIBED;
    rr->busy = 0;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: room \"%V\": subscribed", &room->node.str);

    if (rr->known) {
        ngx_chat_channel_on_catch_up(room);
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
