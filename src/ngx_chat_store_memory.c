
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_store_memory.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_bans.h"


/*
 * Rooms in this worker's memory (no chat_redis): a room's seq and its
 * recent messages, presence from the worker's own members.
 */


/* the users with connections on this worker, for "online" */

typedef struct {
    ngx_str_node_t              node;
    ngx_uint_t                  connections;
} ngx_chat_memory_user_t;


/*
 * The last chat_history_cache message frames of a room.  A room with
 * messages and no member is kept for whoever joins next, at most
 * chat_memory_rooms of them: the one left longest ago goes first, its
 * history and its seq with it.
 */

typedef struct {
    ngx_queue_t                 idle;         /* rooms without members */
    ngx_chat_room_t            *room;
    unsigned                    is_idle:1;
    ngx_chat_frame_t          **frames;
    ngx_uint_t                  size;
    ngx_uint_t                  n;
    ngx_uint_t                  head;         /* the oldest */
} ngx_chat_memory_ring_t;


static ngx_int_t ngx_chat_memory_init_process(ngx_cycle_t *cycle);
static void ngx_chat_memory_exit_process(ngx_cycle_t *cycle);
static void ngx_chat_memory_join(ngx_chat_store_op_t *op);
static void ngx_chat_memory_leave(ngx_chat_room_t *room);
static void ngx_chat_memory_publish(ngx_chat_store_op_t *op,
    ngx_chat_msg_t *msg);
static void ngx_chat_memory_history(ngx_chat_store_op_t *op);
static void ngx_chat_memory_online(ngx_chat_store_op_t *op);
static void ngx_chat_memory_presence_room(ngx_chat_room_t *room,
    ngx_str_t *user, ngx_uint_t join);
static void ngx_chat_memory_members(ngx_chat_store_op_t *op);
static int ngx_libc_cdecl ngx_chat_memory_cmp(const void *one,
    const void *two);
static void ngx_chat_memory_typing(ngx_chat_room_t *room, ngx_chat_frame_t *f,
    ngx_str_t *user);
static void ngx_chat_memory_presence(ngx_str_t *user, ngx_str_t *conn,
    ngx_uint_t event, ngx_msec_t ttl);
static void ngx_chat_memory_kick(ngx_chat_store_op_t *op);
static void ngx_chat_memory_disconnect(ngx_chat_store_op_t *op);
static ngx_chat_memory_user_t *ngx_chat_memory_user(ngx_str_t *user);
static void ngx_chat_memory_range(ngx_chat_store_op_t *op, uint64_t from,
    uint64_t to);
static ngx_int_t ngx_chat_memory_push(ngx_chat_room_t *room,
    ngx_chat_frame_t *f);
static void ngx_chat_memory_idle(ngx_chat_memory_ring_t *ring);
static void ngx_chat_memory_evict(void);


ngx_chat_store_t  ngx_chat_store_memory = {
    "memory",
    ngx_chat_memory_init_process,
    ngx_chat_memory_exit_process,
    ngx_chat_memory_join,
    ngx_chat_memory_leave,
    ngx_chat_memory_publish,
    ngx_chat_memory_history,
    ngx_chat_memory_online,
    ngx_chat_memory_typing,
    ngx_chat_memory_presence_room,
    ngx_chat_memory_members,
    ngx_chat_memory_presence,
    ngx_chat_memory_kick,
    ngx_chat_memory_disconnect
};


static ngx_uint_t         ngx_chat_memory_cache;
static ngx_uint_t         ngx_chat_memory_presence_max;
static ngx_log_t         *ngx_chat_memory_log;
static ngx_rbtree_t       ngx_chat_memory_users;
static ngx_rbtree_node_t  ngx_chat_memory_users_sentinel;
static ngx_queue_t        ngx_chat_memory_idle_rooms;
static ngx_uint_t         ngx_chat_memory_rooms;
static ngx_uint_t         ngx_chat_memory_rooms_max;


static ngx_int_t
ngx_chat_memory_init_process(ngx_cycle_t *cycle)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_chat_memory_cache = cmcf->history_cache;
    ngx_chat_memory_presence_max = cmcf->presence_events_max;
    ngx_chat_memory_log = cycle->log;

    ngx_rbtree_init(&ngx_chat_memory_users, &ngx_chat_memory_users_sentinel,
                    ngx_str_rbtree_insert_value);

    ngx_queue_init(&ngx_chat_memory_idle_rooms);
    ngx_chat_memory_rooms_max = cmcf->memory_rooms;

    return NGX_OK;
}


static void
ngx_chat_memory_exit_process(ngx_cycle_t *cycle)
{
    /* worker memory goes with the process */
}


static void
ngx_chat_memory_join(ngx_chat_store_op_t *op)
{
    uint64_t                 since;
    ngx_chat_room_t         *room;
    ngx_chat_memory_ring_t  *ring;

    room = op->room;

    if (ngx_chat_bans_find(&room->node.str, &op->user)) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_FORBIDDEN);
        return;
    }

    op->seq = room->seq;
    ring = room->store;

    if (ring && ring->is_idle) {
        ngx_queue_remove(&ring->idle);
        ring->is_idle = 0;
    }

    if (op->has_since && op->since < room->seq) {
        since = op->since;

        /* messages older than the ring are gone */

        if (ring == NULL || room->seq - since > ring->n) {
            op->truncated = 1;
        }

        ngx_chat_memory_range(op, since + 1, room->seq);
    }

    ngx_chat_store_op_done(op);
}


/* one worker: the command runs here, and nowhere else */

static void
ngx_chat_memory_kick(ngx_chat_store_op_t *op)
{
    if (op->ban
        && ngx_chat_bans_add(&op->room->node.str, &op->user, op->ban)
           != NGX_OK)
    {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    op->count = ngx_chat_store_command(NGX_CHAT_REQ_KICK, &op->user,
                                       &op->room->node.str);

    ngx_chat_store_op_done(op);
}


static void
ngx_chat_memory_disconnect(ngx_chat_store_op_t *op)
{
    op->count = ngx_chat_store_command(NGX_CHAT_REQ_DISCONNECT, &op->user,
                                       NULL);

    ngx_chat_store_op_done(op);
}


static void
ngx_chat_memory_leave(ngx_chat_room_t *room)
{
    /* a room with messages keeps them for whoever joins next */

    if (room->store) {
        ngx_chat_memory_idle(room->store);
        return;
    }

    ngx_chat_hub_release(room);
}


static void
ngx_chat_memory_publish(ngx_chat_store_op_t *op, ngx_chat_msg_t *msg)
{
    ngx_chat_room_t   *room;
    ngx_chat_frame_t  *f;

    room = op->room;

    msg->seq = room->seq + 1;
    msg->ts = ngx_chat_worker_now();
    ngx_chat_store_msg_id(msg->msg_id);

    f = ngx_chat_encode_message(msg, ngx_chat_memory_log);

    if (f == NULL || ngx_chat_memory_push(room, f) != NGX_OK) {
        if (f) {
            ngx_chat_frame_unref(f);
        }

        op->error = NGX_CHAT_ERR_INTERNAL;
        ngx_chat_store_op_done(op);
        return;
    }

    op->seq = msg->seq;

    (void) ngx_chat_hub_deliver(room, f);
    ngx_chat_frame_unref(f);

    ngx_chat_store_op_done(op);
}


static void
ngx_chat_memory_history(ngx_chat_store_op_t *op)
{
    uint64_t          to;
    ngx_chat_room_t  *room;

    room = op->room;
    to = room->seq;

    if (op->has_before) {
        if (op->before == 0) {
            ngx_chat_store_op_done(op);
            return;
        }

        to = ngx_min(to, op->before - 1);
    }

    if (to >= 1) {
        ngx_chat_memory_range(op, to > op->limit ? to - op->limit + 1 : 1,
                              to);
    }

    ngx_chat_store_op_done(op);
}


static void
ngx_chat_memory_online(ngx_chat_store_op_t *op)
{
    ngx_uint_t  i;

    for (i = 0; i < op->nusers; i++) {
        op->present[i] = (ngx_chat_memory_user(&op->users[i]) != NULL);
    }

    ngx_chat_store_op_done(op);
}


/*
 * The user's first connection into the room, or last out: tell it.  A
 * joining member is in the room already, a leaving one is not any more.
 */

static void
ngx_chat_memory_presence_room(ngx_chat_room_t *room, ngx_str_t *user,
    ngx_uint_t join)
{
    ngx_chat_frame_t  *f;

    /* in a big room every join would go to every member: N^2 */

    if (ngx_chat_memory_presence_max
        && room->nmembers + !join > ngx_chat_memory_presence_max)
    {
        return;
    }

    if (ngx_chat_hub_user_in_room(room, user, NULL)) {
        return;
    }

    f = ngx_chat_encode_presence_event(&room->node.str, user, join,
                                         ngx_chat_memory_log);
    if (f == NULL) {
        return;
    }

    /* to the others: a user knows of its own comings */

    ngx_chat_hub_signal(room, f, user);
    ngx_chat_frame_unref(f);
}


static void
ngx_chat_memory_members(ngx_chat_store_op_t *op)
{
    ngx_uint_t          i, n;
    ngx_str_t          *users;
    ngx_queue_t        *q;
    ngx_chat_room_t    *room;
    ngx_chat_member_t  *m;

    room = op->room;

    users = ngx_alloc((room->nmembers + 1) * sizeof(ngx_str_t), op->log);
    if (users == NULL) {
        op->error = NGX_CHAT_ERR_INTERNAL;
        ngx_chat_store_op_done(op);
        return;
    }

    n = 0;

    for (q = ngx_queue_head(&room->members);
         q != ngx_queue_sentinel(&room->members);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_chat_member_t, room_link);

        if (m->announced) {
            users[n++] = m->peer->user;
        }
    }

    /* one entry per user: sorted, then the repeats dropped */

    ngx_qsort(users, n, sizeof(ngx_str_t), ngx_chat_memory_cmp);

    for (op->nusers = 0, i = 0; i < n; i++) {
        if (op->nusers == 0
            || ngx_chat_memory_cmp(&users[op->nusers - 1], &users[i]) != 0)
        {
            users[op->nusers++] = users[i];
        }
    }

    op->users = users;
    op->store_data = users;

    ngx_chat_store_op_done(op);
}


static int ngx_libc_cdecl
ngx_chat_memory_cmp(const void *one, const void *two)
{
    ngx_int_t   rc;
    ngx_str_t  *a, *b;

    a = (ngx_str_t *) one;
    b = (ngx_str_t *) two;

    rc = ngx_memn2cmp(a->data, b->data, a->len, b->len);

    return rc < 0 ? -1 : (rc > 0);
}


static void
ngx_chat_memory_typing(ngx_chat_room_t *room, ngx_chat_frame_t *f,
    ngx_str_t *user)
{
    ngx_chat_hub_signal(room, f, user);
}


static void
ngx_chat_memory_presence(ngx_str_t *user, ngx_str_t *conn, ngx_uint_t event,
    ngx_msec_t ttl)
{
    ngx_chat_memory_user_t  *u;

    if (event == NGX_CHAT_PRESENCE_REFRESH) {
        return;
    }

    u = ngx_chat_memory_user(user);

    if (event == NGX_CHAT_PRESENCE_DISCONNECT) {

        if (u && --u->connections == 0) {
            ngx_rbtree_delete(&ngx_chat_memory_users, &u->node.node);
            ngx_free(u);
        }

        return;
    }

    if (u == NULL) {
        u = ngx_alloc(sizeof(ngx_chat_memory_user_t) + user->len,
                      ngx_chat_memory_log);
        if (u == NULL) {
            return;
        }

        u->node.str.data = (u_char *) (u + 1);
        u->node.str.len = user->len;
        ngx_memcpy(u->node.str.data, user->data, user->len);
        u->node.node.key = ngx_crc32_short(user->data, user->len);
        u->connections = 0;

        ngx_rbtree_insert(&ngx_chat_memory_users, &u->node.node);
    }

    u->connections++;
}


static ngx_chat_memory_user_t *
ngx_chat_memory_user(ngx_str_t *user)
{
    return (ngx_chat_memory_user_t *) ngx_str_rbtree_lookup(
                                        &ngx_chat_memory_users, user,
                                        ngx_crc32_short(user->data,
                                                        user->len));
}


/* points op->frames at the ring's messages with seqs from..to */

static void
ngx_chat_memory_range(ngx_chat_store_op_t *op, uint64_t from, uint64_t to)
{
    uint64_t                 oldest, seq;
    ngx_uint_t               i;
    ngx_chat_room_t         *room;
    ngx_chat_memory_ring_t  *ring;

    room = op->room;
    ring = room->store;

    if (ring == NULL || ring->n == 0) {
        return;
    }

    oldest = room->seq - ring->n + 1;
    from = ngx_max(from, oldest);

    if (from > to) {
        return;
    }

    op->frames = ngx_alloc((to - from + 1) * sizeof(ngx_chat_frame_t *),
                           ngx_chat_memory_log);
    if (op->frames == NULL) {
        op->error = NGX_CHAT_ERR_INTERNAL;
        return;
    }

    for (seq = from; seq <= to; seq++) {
        i = (ring->head + (seq - oldest)) % ring->size;
        op->frames[op->nframes++] = ring->frames[i];
    }
}


static ngx_int_t
ngx_chat_memory_push(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    ngx_uint_t               i, size;
    ngx_chat_frame_t       **frames;
    ngx_chat_memory_ring_t  *ring;

    if (ngx_chat_memory_cache == 0) {
        return NGX_OK;
    }

    ring = room->store;

    if (ring == NULL) {
        ring = ngx_calloc(sizeof(ngx_chat_memory_ring_t),
                          ngx_chat_memory_log);
        if (ring == NULL) {
            return NGX_ERROR;
        }

        ring->room = room;
        room->store = ring;
        ngx_chat_memory_rooms++;

        if (room->nmembers == 0) {
            /* a publish into a room nobody here is in */
            ngx_chat_memory_idle(ring);
        }
    }

    if (ring->n == ring->size && ring->size < ngx_chat_memory_cache) {

        /* grow: small rooms keep small rings */

        size = ngx_min(ngx_max(2 * ring->size, 16), ngx_chat_memory_cache);

        frames = ngx_alloc(size * sizeof(ngx_chat_frame_t *),
                           ngx_chat_memory_log);
        if (frames == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < ring->n; i++) {
            frames[i] = ring->frames[(ring->head + i) % ring->size];
        }

        if (ring->frames) {
            ngx_free(ring->frames);
        }

        ring->frames = frames;
        ring->size = size;
        ring->head = 0;
    }

    if (ring->n == ring->size) {
        ngx_chat_frame_unref(ring->frames[ring->head]);
        ring->frames[ring->head] = ngx_chat_frame_ref(f);
        ring->head = (ring->head + 1) % ring->size;
        return NGX_OK;
    }

    ring->frames[(ring->head + ring->n) % ring->size] = ngx_chat_frame_ref(f);
    ring->n++;

    return NGX_OK;
}


static void
ngx_chat_memory_idle(ngx_chat_memory_ring_t *ring)
{
    if (!ring->is_idle) {
        ngx_queue_insert_tail(&ngx_chat_memory_idle_rooms, &ring->idle);
        ring->is_idle = 1;
    }

    ngx_chat_memory_evict();
}


/* over chat_memory_rooms: the rooms without members left longest ago go */

static void
ngx_chat_memory_evict(void)
{
    ngx_uint_t               i;
    ngx_queue_t             *q;
    ngx_chat_room_t         *room;
    ngx_chat_memory_ring_t  *ring;

    while (ngx_chat_memory_rooms > ngx_chat_memory_rooms_max
           && !ngx_queue_empty(&ngx_chat_memory_idle_rooms))
    {
        q = ngx_queue_head(&ngx_chat_memory_idle_rooms);
        ngx_queue_remove(q);

        ring = ngx_queue_data(q, ngx_chat_memory_ring_t, idle);
        room = ring->room;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_chat_memory_log, 0,
                       "chat: room \"%V\": forgotten, chat_memory_rooms "
                       "reached", &room->node.str);

        for (i = 0; i < ring->n; i++) {
            ngx_chat_frame_unref(ring->frames[(ring->head + i) % ring->size]);
        }

        if (ring->frames) {
            ngx_free(ring->frames);
        }

        ngx_free(ring);
        ngx_chat_memory_rooms--;

        room->store = NULL;
        ngx_chat_hub_release(room);
    }
}
