
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_store_redis.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_order.h"
#include "ngx_chat_replay.h"
#include "ngx_chat_seq.h"
#include "ngx_chat_presence.h"
#include "ngx_chat_command.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_worker.h"


/*
 * Rooms in Redis: the store's operations, each in the file of its
 * concern (ngx_chat_channel.c, ngx_chat_order.c, ngx_chat_replay.c,
 * ngx_chat_seq.c, ngx_chat_presence.c), and the wait of a worker that has
 * just started for its connections to come up.
 */

#define NGX_CHAT_STORE_REDIS_HOLD      3000
#define NGX_CHAT_STORE_REDIS_HELD_MAX  10000


static ngx_int_t ngx_chat_store_redis_init_process(ngx_cycle_t *cycle);
static void ngx_chat_store_redis_exit_process(ngx_cycle_t *cycle);
static void ngx_chat_store_redis_join(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_leave(ngx_chat_room_t *room);
static void ngx_chat_store_redis_publish(ngx_chat_store_op_t *op,
    ngx_chat_msg_t *msg);
static void ngx_chat_store_redis_history(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_online(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_typing(ngx_chat_room_t *room,
    ngx_chat_frame_t *f, ngx_str_t *user);
static void ngx_chat_store_redis_members(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_kick(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_disconnect(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_ready(ngx_chat_redis_t *rd);
static void ngx_chat_store_redis_hold(ngx_chat_store_op_t *op,
    ngx_chat_store_done_pt next);
static void ngx_chat_store_redis_release(void);
static void ngx_chat_store_redis_hold_handler(ngx_event_t *ev);


ngx_chat_store_t  ngx_chat_store_redis = {
    "redis",
    ngx_chat_store_redis_init_process,
    ngx_chat_store_redis_exit_process,
    ngx_chat_store_redis_join,
    ngx_chat_store_redis_leave,
    ngx_chat_store_redis_publish,
    ngx_chat_store_redis_history,
    ngx_chat_store_redis_online,
    ngx_chat_store_redis_typing,
    ngx_chat_presence_room,
    ngx_chat_store_redis_members,
    ngx_chat_presence_user,
    ngx_chat_store_redis_kick,
    ngx_chat_store_redis_disconnect
};


static ngx_queue_t  ngx_chat_store_redis_held;
static ngx_uint_t   ngx_chat_store_redis_nheld;
static ngx_uint_t   ngx_chat_store_redis_started;
static ngx_event_t  ngx_chat_store_redis_timer;


static ngx_int_t
ngx_chat_store_redis_init_process(ngx_cycle_t *cycle)
{
    ngx_queue_init(&ngx_chat_store_redis_held);

    ngx_chat_worker_timer(&ngx_chat_store_redis_timer,
                          ngx_chat_store_redis_hold_handler, cycle->log);
    ngx_add_timer(&ngx_chat_store_redis_timer, NGX_CHAT_STORE_REDIS_HOLD);

    ngx_chat_seq_init_process(cycle);
    ngx_chat_presence_init_process(cycle);

    if (ngx_chat_cmd_init_process(cycle, ngx_chat_store_redis_ready)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_chat_channel_init_process(cycle, ngx_chat_store_redis_ready,
                                         ngx_chat_order_message,
                                         ngx_chat_order_catch_up);
}


static void
ngx_chat_store_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_chat_presence_exit_process();
    ngx_chat_channel_exit_process();
    ngx_chat_cmd_exit_process();
}


static void
ngx_chat_store_redis_join(ngx_chat_store_op_t *op)
{
    if (ngx_chat_cmd_busy()) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (!ngx_chat_cmd_ready() || !ngx_chat_channel_ready()) {
        ngx_chat_store_redis_hold(op, ngx_chat_store_redis_join);
        return;
    }

    if (ngx_chat_channel_get(op->room) == NULL) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    ngx_chat_channel_wait(op, ngx_chat_replay_join);
}


static void
ngx_chat_store_redis_leave(ngx_chat_room_t *room)
{
    ngx_chat_presence_released(room);

    if (room->store) {
        ngx_chat_channel_sync(room);

    } else {
        ngx_chat_hub_release(room);
    }
}


static void
ngx_chat_store_redis_publish(ngx_chat_store_op_t *op, ngx_chat_msg_t *msg)
{
    if (ngx_chat_cmd_busy()) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (ngx_chat_seq_prepare(op, msg) != NGX_OK) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    if (!ngx_chat_cmd_ready()) {
        ngx_chat_store_redis_hold(op, ngx_chat_seq_eval);
        return;
    }

    ngx_chat_seq_send(op);
}


static void
ngx_chat_store_redis_history(ngx_chat_store_op_t *op)
{
    if (ngx_chat_cmd_busy()) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (!ngx_chat_cmd_ready()) {
        ngx_chat_store_redis_hold(op, ngx_chat_store_redis_history);
        return;
    }

    ngx_chat_replay_history(op);
}


static void
ngx_chat_store_redis_online(ngx_chat_store_op_t *op)
{
    if (ngx_chat_cmd_busy()) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (!ngx_chat_cmd_ready()) {
        ngx_chat_store_redis_hold(op, ngx_chat_store_redis_online);
        return;
    }

    ngx_chat_presence_online(op);
}


/* typing goes through the room's channel, not stored, not numbered */

static void
ngx_chat_store_redis_typing(ngx_chat_room_t *room, ngx_chat_frame_t *f,
    ngx_str_t *user)
{
    ngx_chat_channel_typing(room, f);
}


static void
ngx_chat_store_redis_members(ngx_chat_store_op_t *op)
{
    if (ngx_chat_cmd_busy()) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (!ngx_chat_cmd_ready()) {
        ngx_chat_store_redis_hold(op, ngx_chat_store_redis_members);
        return;
    }

    ngx_chat_presence_members(op);
}


static void
ngx_chat_store_redis_kick(ngx_chat_store_op_t *op)
{
    if (ngx_chat_cmd_busy()) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (!ngx_chat_cmd_ready()) {
        ngx_chat_store_redis_hold(op, ngx_chat_store_redis_kick);
        return;
    }

    ngx_chat_command_kick(op);
}


static void
ngx_chat_store_redis_disconnect(ngx_chat_store_op_t *op)
{
    if (ngx_chat_cmd_busy()) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (!ngx_chat_cmd_ready()) {
        ngx_chat_store_redis_hold(op, ngx_chat_store_redis_disconnect);
        return;
    }

    ngx_chat_command_disconnect(op);
}


/* a connection is up: with both up for the first time, the held go on */

static void
ngx_chat_store_redis_ready(ngx_chat_redis_t *rd)
{
    if (!ngx_chat_cmd_ready() || !ngx_chat_channel_ready()) {
        return;
    }

    if (!ngx_chat_store_redis_started) {
        ngx_chat_store_redis_release();
    }

    ngx_chat_channel_catch_up();
}


/*
 * A worker just started (a reload, a restart) gets its clients back at
 * once: until its connections to Redis are up for the first time, or for
 * NGX_CHAT_STORE_REDIS_HOLD ms, requests wait instead of failing.
 */

static void
ngx_chat_store_redis_hold(ngx_chat_store_op_t *op,
    ngx_chat_store_done_pt next)
{
    if (ngx_chat_store_redis_started
        || ngx_chat_store_redis_nheld >= NGX_CHAT_STORE_REDIS_HELD_MAX)
    {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "chat: request %ui held until redis is up", op->op);

    op->next = next;
    ngx_queue_insert_tail(&ngx_chat_store_redis_held, &op->wait);
    ngx_chat_store_redis_nheld++;
}


static void
ngx_chat_store_redis_release(void)
{
    ngx_queue_t          *q;
    ngx_chat_store_op_t  *op;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: redis up, %ui requests held go on",
                   ngx_chat_store_redis_nheld);

    ngx_chat_store_redis_started = 1;

    if (ngx_chat_store_redis_timer.timer_set) {
        ngx_del_timer(&ngx_chat_store_redis_timer);
    }

    while (!ngx_queue_empty(&ngx_chat_store_redis_held)) {
        q = ngx_queue_head(&ngx_chat_store_redis_held);
        ngx_queue_remove(q);
        ngx_queue_init(q);
        ngx_chat_store_redis_nheld--;

        op = ngx_queue_data(q, ngx_chat_store_op_t, wait);
        op->next(op);
    }
}


static void
ngx_chat_store_redis_hold_handler(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "chat: redis not reachable %M ms after the start, "
                  "requests get \"unavailable\"", NGX_CHAT_STORE_REDIS_HOLD);

    ngx_chat_store_redis_release();
}
