
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_presence.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_worker.h"


/*
 * Presence in Redis.  A user's presence key lives while a connection of
 * the user refreshes it (user_seen.lua, user_gone.lua).  Per room, the
 * users' connection counts, and the same per worker, so that what a dead
 * worker held can be taken away (room_join.lua, room_leave.lua).
 * Workers announce themselves in a registry with an expiry; a live
 * worker that finds a dead one claims it, once, and sweeps only that
 * worker's rooms (registry.lua, claim.lua, room_sweep.lua).
 */

static void ngx_chat_presence_members_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_presence_online_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_presence_registry(ngx_event_t *ev);
static void ngx_chat_presence_dead(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_presence_claimed(redisAsyncContext *ac, void *r,
    void *privdata);


static ngx_event_t  ngx_chat_presence_timer;
static ngx_msec_t   ngx_chat_presence_ttl;
static ngx_uint_t   ngx_chat_presence_max;


void
ngx_chat_presence_init_process(ngx_cycle_t *cycle)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_chat_presence_ttl = cmcf->registry_ttl;
    ngx_chat_presence_max = cmcf->presence_events_max;

    ngx_chat_worker_timer(&ngx_chat_presence_timer,
                          ngx_chat_presence_registry, cycle->log);
    ngx_add_timer(&ngx_chat_presence_timer, 500);
}


/*
 * A worker that exits cleanly leaves the registry, so that nobody takes
 * it for dead; what its users' leaves left queued goes out first.  When
 * the socket takes not all of it, the worker stays in the registry and
 * the others sweep its rooms once its entry expires.
 */

void
ngx_chat_presence_exit_process(void)
{
    ngx_chat_cmd_t  cmd;

    if (ngx_chat_presence_timer.timer_set) {
        ngx_del_timer(&ngx_chat_presence_timer);
    }

    ngx_chat_cmd_start(&cmd, "DEL");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_WORKER_ROOMS, &ngx_chat_worker_id,
                     NULL, NULL);

    if (ngx_chat_cmd_send(&cmd, NULL, NULL, NULL) != NGX_OK) {
        return;
    }

    ngx_chat_cmd_start(&cmd, "ZREM");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_WORKERS, NULL, NULL, NULL);
    ngx_chat_cmd_str(&cmd, &ngx_chat_worker_id);

    if (ngx_chat_cmd_send(&cmd, NULL, NULL, NULL) != NGX_OK) {
        return;
    }

    if (ngx_chat_cmd_flush() == NGX_OK) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "chat: left the workers' registry");
    }
}


/* connection conn of user opened, is alive (a refresh), or closed */

void
ngx_chat_presence_user(ngx_str_t *user, ngx_str_t *conn, ngx_uint_t event,
    ngx_msec_t ttl)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_eval(&cmd, event == NGX_CHAT_PRESENCE_DISCONNECT
                            ? NGX_CHAT_SCRIPT_USER_GONE
                            : NGX_CHAT_SCRIPT_USER_SEEN, 2);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_USER, user, NULL, NULL);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_CONNS, user, NULL, NULL);
    ngx_chat_cmd_num(&cmd, ttl);
    ngx_chat_cmd_str(&cmd, conn);

    (void) ngx_chat_cmd_send(&cmd, NULL, NULL, NULL);
}


void
ngx_chat_presence_room(ngx_chat_room_t *room, ngx_str_t *user,
    ngx_uint_t join)
{
    ngx_str_t       *name;
    ngx_chat_cmd_t   cmd;

    name = &room->node.str;

    ngx_chat_cmd_eval(&cmd, join ? NGX_CHAT_SCRIPT_ROOM_JOIN
                                 : NGX_CHAT_SCRIPT_ROOM_LEAVE, 2);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_PRESENCE, name, NULL, NULL);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_PRESENCE_W, name, NULL, NULL);
    ngx_chat_cmd_str(&cmd, user);
    ngx_chat_cmd_fmt(&cmd, "%V\n%V", &ngx_chat_worker_id, user);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_ROOM, name, NULL, NULL);
    ngx_chat_cmd_str(&cmd, name);
    ngx_chat_cmd_num(&cmd, ngx_chat_presence_max);

    if (ngx_chat_cmd_send(&cmd, NULL, NULL, NULL) != NGX_OK || !join) {
        return;
    }

    /* the rooms this worker holds presence in, for its sweeper */

    ngx_chat_cmd_start(&cmd, "SADD");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_WORKER_ROOMS, &ngx_chat_worker_id,
                     NULL, NULL);
    ngx_chat_cmd_str(&cmd, name);

    (void) ngx_chat_cmd_send(&cmd, NULL, NULL, NULL);
}


/* the room's last local member has left: the sweeper need not look at it */

void
ngx_chat_presence_released(ngx_chat_room_t *room)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_start(&cmd, "SREM");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_WORKER_ROOMS, &ngx_chat_worker_id,
                     NULL, NULL);
    ngx_chat_cmd_str(&cmd, &room->node.str);

    (void) ngx_chat_cmd_send(&cmd, NULL, NULL, NULL);
}


void
ngx_chat_presence_members(ngx_chat_store_op_t *op)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_start(&cmd, "HKEYS");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_PRESENCE, &op->room->node.str, NULL,
                     NULL);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_presence_members_reply, op)
        != NGX_OK)
    {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


/* the users point into the reply: the op is answered before it is freed */

static void
ngx_chat_presence_members_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    size_t       i;
    ngx_str_t   *users;
    redisReply  *reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    users = ngx_alloc((reply->elements + 1) * sizeof(ngx_str_t), op->log);
    if (users == NULL) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_STRING) {
            users[op->nusers].data = (u_char *) reply->element[i]->str;
            users[op->nusers++].len = reply->element[i]->len;
        }
    }

    op->users = users;
    op->store_data = users;

    ngx_chat_store_op_done(op);
}


/* one MGET of the users' presence keys */

void
ngx_chat_presence_online(ngx_chat_store_op_t *op)
{
    ngx_uint_t      i;
    ngx_chat_cmd_t  cmd;

    if (op->nusers == 0) {
        ngx_chat_store_op_done(op);
        return;
    }

    ngx_chat_cmd_start(&cmd, "MGET");

    for (i = 0; i < op->nusers; i++) {
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_USER, &op->users[i], NULL, NULL);
    }

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_presence_online_reply, op)
        != NGX_OK)
    {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


static void
ngx_chat_presence_online_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    ngx_uint_t   i;
    redisReply  *reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != op->nusers)
    {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    for (i = 0; i < op->nusers; i++) {
        op->present[i] = (reply->element[i]->type == REDIS_REPLY_STRING);
    }

    ngx_chat_store_op_done(op);
}


/* this worker is alive; and is any other one dead */

static void
ngx_chat_presence_registry(ngx_event_t *ev)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_eval(&cmd, NGX_CHAT_SCRIPT_REGISTRY, 1);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_WORKERS, NULL, NULL, NULL);
    ngx_chat_cmd_str(&cmd, &ngx_chat_worker_id);
    ngx_chat_cmd_num(&cmd, ngx_chat_presence_ttl);

    (void) ngx_chat_cmd_send(&cmd, NULL, ngx_chat_presence_dead, NULL);

    ngx_add_timer(ev, ngx_chat_presence_ttl / 3);
}


static void
ngx_chat_presence_dead(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t          i;
    ngx_str_t       id, *dead;
    redisReply     *reply = r, *e;
    ngx_chat_cmd_t  cmd;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING
            || e->len > NGX_CHAT_WORKER_ID_LEN)
        {
            continue;
        }

        /* the dead worker's id goes along, for the sweep */

        dead = ngx_alloc(sizeof(ngx_str_t) + e->len, ngx_cycle->log);
        if (dead == NULL) {
            return;
        }

        dead->data = (u_char *) (dead + 1);
        dead->len = e->len;
        ngx_memcpy(dead->data, e->str, e->len);

        id = *dead;

        ngx_chat_cmd_eval(&cmd, NGX_CHAT_SCRIPT_CLAIM, 2);
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_WORKERS, NULL, NULL, NULL);
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_WORKER_ROOMS, &id, NULL, NULL);
        ngx_chat_cmd_str(&cmd, &id);

        if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_presence_claimed, dead)
            != NGX_OK)
        {
            ngx_free(dead);
        }
    }
}


/* this worker claimed a dead one: its rooms lose its users */

static void
ngx_chat_presence_claimed(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_str_t *dead = privdata;

    size_t          i;
    ngx_str_t       room;
    redisReply     *reply = r, *e;
    ngx_chat_cmd_t  cmd;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: worker \"%V\" died without leaving the "
                      "registry, its users leave %uz rooms", dead,
                      (size_t) reply->elements);
    }

    for (i = 0; reply && reply->type == REDIS_REPLY_ARRAY
                && i < reply->elements; i++)
    {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        room.data = (u_char *) e->str;
        room.len = e->len;

        if (!ngx_chat_rooms_name(room.data, room.len)) {
            continue;
        }

        ngx_chat_cmd_eval(&cmd, NGX_CHAT_SCRIPT_ROOM_SWEEP, 2);
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_PRESENCE, &room, NULL, NULL);
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_PRESENCE_W, &room, NULL, NULL);
        ngx_chat_cmd_fmt(&cmd, "%V\n", dead);
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_ROOM, &room, NULL, NULL);
        ngx_chat_cmd_str(&cmd, &room);
        ngx_chat_cmd_num(&cmd, ngx_chat_presence_max);

        (void) ngx_chat_cmd_send(&cmd, NULL, NULL, NULL);
    }

    ngx_free(dead);
}
