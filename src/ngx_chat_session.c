
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_session.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_store.h"
#include "ngx_chat_status.h"
#include "ngx_chat_rooms.h"


/*
 * A client's requests, whatever carried them: checked against its rooms
 * and its rate, run against the hub and the store, answered through its
 * codec and its transport.
 */


/* consecutive rate_limited refusals tolerated before the close with 1008 */
#define NGX_CHAT_SESSION_REFUSALS  10

/* the request names a room the session must have joined */
#define NGX_CHAT_SESSION_MEMBER    1
/* the request counts against chat_rate */
#define NGX_CHAT_SESSION_RATED     2

/* sends that may wait for their room's join to be answered */
#define NGX_CHAT_SESSION_HELD_MAX  32


struct ngx_chat_session_s {
    ngx_chat_peer_t             peer;         /* user, transport */
    ngx_chat_codec_t           *codec;
    ngx_chat_loc_conf_t        *conf;
    ngx_str_t                  *allowed;      /* NULL: every room */
    ngx_log_t                  *log;
    ngx_atomic_uint_t           number;       /* nginx's connection number */

    ngx_queue_t                 rooms;        /* of ngx_chat_member_t */
    ngx_uint_t                  nrooms;
    ngx_queue_t                 ops;          /* store operations */
    ngx_queue_t                 held;         /* sends waiting for a join */
    ngx_uint_t                  nheld;

    ngx_msec_t                  presence;     /* last refreshed */

    ngx_uint_t                  tokens;       /* x1000 */
    ngx_msec_t                  tokens_time;
    ngx_uint_t                  refusals;
};


typedef void (*ngx_chat_session_start_pt)(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
typedef ngx_chat_frame_t *(*ngx_chat_session_reply_pt)(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);


/*
 * What a request does: checked by the flags, started, and, for the
 * requests the store answers, replied to from what the store found, or
 * refused with "failed".
 */

typedef struct {
    char                       *name;
    ngx_uint_t                  flags;
    ngx_chat_session_start_pt   start;
    ngx_chat_session_reply_pt   reply;
    char                       *failed;
} ngx_chat_session_op_t;


static void ngx_chat_session_join(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_session_join_done(ngx_chat_store_op_t *op);
static void ngx_chat_session_release(ngx_chat_session_t *s,
    ngx_chat_room_t *room, ngx_uint_t error);
static void ngx_chat_session_leave(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_session_send(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_session_publish(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static void ngx_chat_session_history(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_session_presence(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_session_online(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_session_heartbeat(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_session_typing(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static ngx_chat_frame_t *ngx_chat_session_acked(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static ngx_chat_frame_t *ngx_chat_session_messages(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static ngx_chat_frame_t *ngx_chat_session_users(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static ngx_chat_frame_t *ngx_chat_session_present(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static void ngx_chat_session_done(ngx_chat_store_op_t *op);
static ngx_chat_store_op_t *ngx_chat_session_op(ngx_chat_session_t *s,
    ngx_chat_room_t *room, ngx_chat_request_t *req,
    ngx_chat_store_done_pt done);
static ngx_chat_member_t *ngx_chat_session_member(ngx_chat_session_t *s,
    ngx_str_t *room);
static void ngx_chat_session_part(ngx_chat_session_t *s,
    ngx_chat_member_t *m);
static ngx_uint_t ngx_chat_session_allow(ngx_chat_session_t *s);
static void ngx_chat_session_presence_key(ngx_chat_session_t *s,
    ngx_uint_t event);
static void ngx_chat_session_reply(ngx_chat_session_t *s,
    ngx_chat_frame_t *f);
static void ngx_chat_session_error(ngx_chat_session_t *s, ngx_uint_t code,
    char *message, ngx_str_t *id);


/* by NGX_CHAT_REQ_* */

static ngx_chat_session_op_t  ngx_chat_session_ops[] = {

    { NULL, 0, NULL, NULL, NULL },

    { "join", 0,
      ngx_chat_session_join, NULL, "join failed" },

    { "leave", NGX_CHAT_SESSION_MEMBER,
      ngx_chat_session_leave, NULL, NULL },

    { "send", NGX_CHAT_SESSION_MEMBER|NGX_CHAT_SESSION_RATED,
      ngx_chat_session_send, ngx_chat_session_acked, "message not stored" },

    { "history", NGX_CHAT_SESSION_MEMBER,
      ngx_chat_session_history, ngx_chat_session_messages,
      "history not available" },

    { "presence", NGX_CHAT_SESSION_MEMBER,
      ngx_chat_session_presence, ngx_chat_session_users,
      "presence not available" },

    { "online", 0,
      ngx_chat_session_online, ngx_chat_session_present,
      "presence not available" },

    { "heartbeat", 0,
      ngx_chat_session_heartbeat, NULL, NULL },

    { "typing", NGX_CHAT_SESSION_MEMBER,
      ngx_chat_session_typing, NULL, NULL }
};


/* what outlives the request lives on the connection's pool */

ngx_chat_session_t *
ngx_chat_session_create(ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *rooms,
    ngx_atomic_uint_t number, ngx_chat_loc_conf_t *conf,
    ngx_chat_transport_t *transport, ngx_chat_codec_t *codec, void *conn,
    ngx_log_t *log)
{
    size_t               size;
    ngx_chat_session_t  *s;

    size = sizeof(ngx_chat_session_t) + user->len;

    if (rooms) {
        size += sizeof(ngx_str_t) + rooms->len;
    }

    s = ngx_pcalloc(pool, size);
    if (s == NULL) {
        return NULL;
    }

    if (rooms) {
        s->allowed = (ngx_str_t *) (s + 1);
        s->allowed->data = (u_char *) (s->allowed + 1);
        s->allowed->len = rooms->len;
        ngx_memcpy(s->allowed->data, rooms->data, rooms->len);
        s->peer.user.data = s->allowed->data + rooms->len;

    } else {
        s->peer.user.data = (u_char *) (s + 1);
    }

    s->peer.user.len = user->len;
    ngx_memcpy(s->peer.user.data, user->data, user->len);
    s->peer.transport = transport;
    s->peer.conn = conn;

    s->codec = codec;
    s->conf = conf;
    s->log = log;
    s->number = number;
    s->tokens = conf->burst;
    s->tokens_time = ngx_current_msec;
    ngx_queue_init(&s->rooms);
    ngx_queue_init(&s->ops);
    ngx_queue_init(&s->held);

    return s;
}


/* the transport is up: the client is online, and welcomed */

void
ngx_chat_session_start(ngx_chat_session_t *s)
{
    ngx_chat_stat_inc(connections);

    s->presence = ngx_current_msec;
    ngx_chat_session_presence_key(s, NGX_CHAT_PRESENCE_CONNECT);

    ngx_chat_session_reply(s, s->codec->welcome(&s->peer.user, s->number,
                                                &ngx_chat_worker_id,
                                                s->log));
}


/* the transport is gone: nothing of the session may be used after this */

void
ngx_chat_session_close(ngx_chat_session_t *s)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&s->ops)) {
        ngx_chat_store_op_cancel(ngx_queue_data(ngx_queue_head(&s->ops),
                                                ngx_chat_store_op_t, queue));
    }

    while (!ngx_queue_empty(&s->rooms)) {
        q = ngx_queue_head(&s->rooms);
        ngx_chat_session_part(s, ngx_queue_data(q, ngx_chat_member_t,
                                                owner_link));
    }

    ngx_chat_session_presence_key(s, NGX_CHAT_PRESENCE_DISCONNECT);

    ngx_chat_stat_dec(connections);
}


/* a request as the codec decoded it; req->error set: it was refused */

void
ngx_chat_session_request(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_member_t      *m;
    ngx_chat_session_op_t  *o;

    /* any request says the client is there: at most once per TTL/3 */

    if (ngx_current_msec - s->presence >= s->conf->presence_ttl / 3) {
        s->presence = ngx_current_msec;
        ngx_chat_session_presence_key(s, NGX_CHAT_PRESENCE_REFRESH);
    }

    if (req->error) {
        ngx_chat_session_error(s, req->error, req->reason, &req->id);
        return;
    }

    o = &ngx_chat_session_ops[req->op];
    m = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat: request \"%s\" \"%V\"", o->name, &req->room);

    if (o->flags & NGX_CHAT_SESSION_MEMBER) {
        m = ngx_chat_session_member(s, &req->room);

        if (m == NULL) {
            ngx_chat_session_error(s, NGX_CHAT_ERR_NOT_JOINED,
                                   "not in this room", &req->id);
            return;
        }
    }

    if (o->flags & NGX_CHAT_SESSION_RATED) {

        if (!ngx_chat_session_allow(s)) {

            if (++s->refusals > NGX_CHAT_SESSION_REFUSALS) {
                ngx_log_error(NGX_LOG_INFO, s->log, 0,
                              "chat: client keeps flooding, closing");
                s->peer.transport->close(s->peer.conn, NGX_CHAT_CLOSE_POLICY,
                                         "rate limit");
                return;
            }

            ngx_chat_stat_inc(rate_limited);
            ngx_chat_session_error(s, NGX_CHAT_ERR_RATE_LIMITED,
                                   "chat_rate exceeded", &req->id);
            return;
        }

        s->refusals = 0;
    }

    o->start(s, req, m);
}


static void
ngx_chat_session_join(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_room_t      *room;
    ngx_chat_store_op_t  *op;

    m = ngx_chat_session_member(s, &req->room);

    if (m) {
        room = m->room;

    } else {
        if (s->allowed && !ngx_chat_rooms_allow(s->allowed, &req->room)) {
            ngx_log_error(NGX_LOG_INFO, s->log, 0,
                          "chat: join of \"%V\" forbidden by chat_rooms",
                          &req->room);

            ngx_chat_stat_inc(forbidden);
            ngx_chat_session_error(s, NGX_CHAT_ERR_FORBIDDEN,
                                   "not allowed in this room", &req->id);
            return;
        }

        if (s->nrooms >= s->conf->max_rooms) {
            ngx_chat_session_error(s, NGX_CHAT_ERR_TOO_MANY_ROOMS,
                                   "chat_max_rooms reached", &req->id);
            return;
        }

        room = ngx_chat_hub_room(&req->room, s->log);
        m = room ? ngx_chat_hub_join(room, &s->peer, s->log) : NULL;

        if (m == NULL) {
            if (room) {
                ngx_chat_hub_release(room);
            }

            ngx_chat_session_error(s, NGX_CHAT_ERR_INTERNAL,
                                   "out of memory", &req->id);
            return;
        }

        ngx_queue_insert_tail(&s->rooms, &m->owner_link);
        s->nrooms++;
    }

    op = ngx_chat_session_op(s, room, req, ngx_chat_session_join_done);
    if (op == NULL) {
        return;
    }

    ngx_chat_store->join(op);
}


/*
 * The store knows the room's last seq and has what followed "since":
 * "joined" goes out, then the replay, then what arrived meanwhile.
 */

static void
ngx_chat_session_join_done(ngx_chat_store_op_t *op)
{
    ngx_uint_t           i, n;
    ngx_chat_member_t   *m;
    ngx_chat_session_t  *s;

    s = op->data;
    m = ngx_chat_session_member(s, &op->room->node.str);

    if (m == NULL) {
        /* left while joining: "left" has been sent */
        return;
    }

    if (op->error) {
        ngx_chat_session_error(s, op->error,
                               ngx_chat_session_ops[NGX_CHAT_REQ_JOIN].failed,
                               &op->id);

        if (!m->ready) {
            ngx_chat_session_part(s, m);
        }

        return;
    }

    ngx_chat_session_reply(s, s->codec->joined(&op->room->node.str, op->seq,
                                               op->truncated, &op->id,
                                               s->log));

    if (m->ready) {
        /* joined again: the replay asked for, live messages go on */

        for (n = 0, i = 0; i < op->nframes; i++) {
            if (s->peer.transport->reply(s->peer.conn, op->frames[i])
                == NGX_OK)
            {
                n++;
            }
        }

        ngx_chat_stat_add(messages_delivered, n);
        return;
    }

    for (n = 0, i = 0; i < op->nframes; i++) {
        if (ngx_chat_hub_send(m, op->frames[i], 1) == NGX_OK) {
            n++;
        }
    }

    ngx_chat_stat_add(messages_delivered, n);

    if (op->seq > m->seq) {
        m->seq = op->seq;
    }

    ngx_chat_hub_ready(m);

    ngx_chat_store->presence_room(m->room, &s->peer.user, 1);
    m->announced = 1;

    ngx_chat_session_release(s, m->room, 0);
}


static void
ngx_chat_session_leave(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_session_part(s, m);

    ngx_chat_session_reply(s, s->codec->left(&req->room, &req->id, s->log));
}


/*
 * A send on a join not yet answered waits for it: numbered before the
 * worker has the room's channel, it would never reach the sender, whose
 * "joined" would count it already.
 */

static void
ngx_chat_session_send(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_store_op_t  *op;

    if (!m->ready && s->nheld >= NGX_CHAT_SESSION_HELD_MAX) {
        ngx_chat_session_error(s, NGX_CHAT_ERR_NOT_JOINED,
                               "the join is not answered yet", &req->id);
        return;
    }

    op = ngx_chat_session_op(s, m->room, req, ngx_chat_session_done);
    if (op == NULL) {
        return;
    }

    if (!m->ready) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->log, 0,
                       "chat: room \"%V\": send waits for the join",
                       &m->room->node.str);

        ngx_queue_insert_tail(&s->held, &op->wait);
        s->nheld++;
        return;
    }

    ngx_chat_session_publish(s, op);
}


static void
ngx_chat_session_publish(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    ngx_chat_msg_t  msg;

    ngx_memzero(&msg, sizeof(ngx_chat_msg_t));
    msg.room = op->room->node.str;
    msg.user = s->peer.user;
    msg.text = op->text;

    ngx_chat_store->publish(op, &msg);
}


/* the sends that waited for the room's join go, or fail with it */

static void
ngx_chat_session_release(ngx_chat_session_t *s, ngx_chat_room_t *room,
    ngx_uint_t error)
{
    ngx_queue_t          *q, *next;
    ngx_chat_store_op_t  *op;

    for (q = ngx_queue_head(&s->held);
         q != ngx_queue_sentinel(&s->held);
         q = next)
    {
        next = ngx_queue_next(q);
        op = ngx_queue_data(q, ngx_chat_store_op_t, wait);

        if (op->room != room) {
            continue;
        }

        ngx_queue_remove(q);
        ngx_queue_init(q);
        s->nheld--;

        if (error) {
            ngx_chat_store_op_fail(op, error);

        } else {
            ngx_chat_session_publish(s, op);
        }
    }
}


static void
ngx_chat_session_history(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_session_op(s, m->room, req, ngx_chat_session_done);

    if (op) {
        ngx_chat_store->history(op);
    }
}


static void
ngx_chat_session_presence(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_session_op(s, m->room, req, ngx_chat_session_done);

    if (op) {
        ngx_chat_store->members(op);
    }
}


static void
ngx_chat_session_online(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_session_op(s, NULL, req, ngx_chat_session_done);

    if (op) {
        ngx_chat_store->online(op);
    }
}


static void
ngx_chat_session_heartbeat(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_session_reply(s, s->codec->heartbeat(&req->id, s->log));
}


/* at most one a second per connection and room; no reply */

static void
ngx_chat_session_typing(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_frame_t  *f;

    if (m->typing && ngx_current_msec - m->typing < 1000) {
        return;
    }

    m->typing = ngx_current_msec;

    f = ngx_chat_encode_typing(&m->room->node.str, &s->peer.user, s->log);
    if (f == NULL) {
        return;
    }

    ngx_chat_store->typing(m->room, f, &s->peer.user);
    ngx_chat_frame_unref(f);
}


static ngx_chat_frame_t *
ngx_chat_session_acked(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    ngx_chat_stat_inc(messages_received);

    return s->codec->ack(&op->room->node.str, op->seq, &op->id, s->log);
}


static ngx_chat_frame_t *
ngx_chat_session_messages(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    return s->codec->history(&op->room->node.str, op->frames, op->nframes,
                             &op->id, s->log);
}


static ngx_chat_frame_t *
ngx_chat_session_users(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    return s->codec->presence(&op->room->node.str, op->users, op->nusers,
                              &op->id, s->log);
}


static ngx_chat_frame_t *
ngx_chat_session_present(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    return s->codec->online(op->users, op->present, op->nusers, &op->id,
                            s->log);
}


/* the store has answered a request that is nothing but its answer */

static void
ngx_chat_session_done(ngx_chat_store_op_t *op)
{
    ngx_chat_session_t     *s;
    ngx_chat_session_op_t  *o;

    s = op->data;
    o = &ngx_chat_session_ops[op->op];

    if (op->error) {
        ngx_chat_session_error(s, op->error, o->failed, &op->id);
        return;
    }

    ngx_chat_session_reply(s, o->reply(s, op));
}


static ngx_chat_store_op_t *
ngx_chat_session_op(ngx_chat_session_t *s, ngx_chat_room_t *room,
    ngx_chat_request_t *req, ngx_chat_store_done_pt done)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_store_op(room, req, s->log);
    if (op == NULL) {
        ngx_chat_session_error(s, NGX_CHAT_ERR_INTERNAL, "out of memory",
                               &req->id);
        return NULL;
    }

    op->data = s;
    op->done = done;
    ngx_queue_insert_tail(&s->ops, &op->queue);

    return op;
}


static ngx_chat_member_t *
ngx_chat_session_member(ngx_chat_session_t *s, ngx_str_t *room)
{
    ngx_queue_t        *q;
    ngx_chat_member_t  *m;

    for (q = ngx_queue_head(&s->rooms);
         q != ngx_queue_sentinel(&s->rooms);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_chat_member_t, owner_link);

        if (m->room->node.str.len == room->len
            && ngx_strncmp(m->room->node.str.data, room->data, room->len)
               == 0)
        {
            return m;
        }
    }

    return NULL;
}


/* out of the room; the store hears of the leave, and of an empty room */

static void
ngx_chat_session_part(ngx_chat_session_t *s, ngx_chat_member_t *m)
{
    ngx_uint_t        announced;
    ngx_chat_room_t  *room;

    room = m->room;
    announced = m->announced;

    if (!m->ready) {
        ngx_chat_session_release(s, room, NGX_CHAT_ERR_NOT_JOINED);
    }

    ngx_queue_remove(&m->owner_link);
    s->nrooms--;

    ngx_chat_hub_leave(m);

    if (announced) {
        ngx_chat_store->presence_room(room, &s->peer.user, 0);
    }

    if (room->nmembers == 0) {
        /* the store releases the room, now or once it is done with it */
        ngx_chat_store->leave(room);
    }
}


/* a token bucket: chat_rate refills it, chat_rate's burst is its size */

static ngx_uint_t
ngx_chat_session_allow(ngx_chat_session_t *s)
{
    ngx_msec_t  elapsed;

    elapsed = ngx_current_msec - s->tokens_time;
    s->tokens_time = ngx_current_msec;

    s->tokens += elapsed * s->conf->rate / 1000;

    if (s->tokens > s->conf->burst) {
        s->tokens = s->conf->burst;
    }

    if (s->tokens < 1000) {
        return 0;
    }

    s->tokens -= 1000;

    return 1;
}


/* this connection among all of the user's: its worker and its number */

static void
ngx_chat_session_presence_key(ngx_chat_session_t *s, ngx_uint_t event)
{
    u_char     buf[NGX_CHAT_WORKER_ID_LEN + 1 + NGX_ATOMIC_T_LEN];
    ngx_str_t  conn;

    conn.data = buf;
    conn.len = ngx_sprintf(buf, "%V#%uA", &ngx_chat_worker_id, s->number)
               - buf;

    ngx_chat_store->presence(&s->peer.user, &conn, event,
                             s->conf->presence_ttl);
}


static void
ngx_chat_session_reply(ngx_chat_session_t *s, ngx_chat_frame_t *f)
{
    if (f == NULL) {
        s->peer.transport->close(s->peer.conn, NGX_CHAT_CLOSE_INTERNAL,
                                 "out of memory");
        return;
    }

    (void) s->peer.transport->reply(s->peer.conn, f);
    ngx_chat_frame_unref(f);
}


static void
ngx_chat_session_error(ngx_chat_session_t *s, ngx_uint_t code, char *message,
    ngx_str_t *id)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat: request refused: %ui \"%s\"", code, message);

    ngx_chat_session_reply(s, s->codec->error(code, message, id, s->log));
}
