
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_request.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_status.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_jwt.h"


/*
 * What each request of a client does, run against the hub and the store,
 * and its reply, written with the session's codec and sent through its
 * transport.
 */


/* sends that may wait for their room's join to be answered */
#define NGX_CHAT_REQUEST_HELD_MAX  32


static void ngx_chat_request_join(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_request_join_done(ngx_chat_store_op_t *op);
static ngx_uint_t ngx_chat_request_token(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
static void ngx_chat_request_leave(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_request_send(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_request_publish(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static void ngx_chat_request_release(ngx_chat_session_t *s,
    ngx_chat_room_t *room, ngx_uint_t error);
static void ngx_chat_request_history(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_request_presence(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_request_online(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_request_heartbeat(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static void ngx_chat_request_typing(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
static ngx_chat_frame_t *ngx_chat_request_acked(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static ngx_chat_frame_t *ngx_chat_request_messages(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static ngx_chat_frame_t *ngx_chat_request_users(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static ngx_chat_frame_t *ngx_chat_request_present(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);
static void ngx_chat_request_done(ngx_chat_store_op_t *op);
static ngx_chat_store_op_t *ngx_chat_request_op(ngx_chat_session_t *s,
    ngx_chat_room_t *room, ngx_chat_request_t *req,
    ngx_chat_store_done_pt done);


/* by NGX_CHAT_REQ_* */

ngx_chat_request_op_t  ngx_chat_request_ops[] = {

    { NULL, 0, NULL, NULL, NULL },

    { "join", NGX_CHAT_REQUEST_STORE,
      ngx_chat_request_join, NULL, "join failed" },

    { "leave", NGX_CHAT_REQUEST_MEMBER,
      ngx_chat_request_leave, NULL, NULL },

    { "send",
      NGX_CHAT_REQUEST_MEMBER|NGX_CHAT_REQUEST_SEND|NGX_CHAT_REQUEST_STORE,
      ngx_chat_request_send, ngx_chat_request_acked, "message not stored" },

    { "history", NGX_CHAT_REQUEST_MEMBER|NGX_CHAT_REQUEST_STORE,
      ngx_chat_request_history, ngx_chat_request_messages,
      "history not available" },

    { "presence", NGX_CHAT_REQUEST_MEMBER|NGX_CHAT_REQUEST_STORE,
      ngx_chat_request_presence, ngx_chat_request_users,
      "presence not available" },

    { "online", NGX_CHAT_REQUEST_STORE,
      ngx_chat_request_online, ngx_chat_request_present,
      "presence not available" },

    { "heartbeat", 0,
      ngx_chat_request_heartbeat, NULL, NULL },

    { "typing", NGX_CHAT_REQUEST_MEMBER,
      ngx_chat_request_typing, NULL, NULL }
};


static void
ngx_chat_request_join(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_room_t      *room;
    ngx_chat_store_op_t  *op;

    m = ngx_chat_request_member(s, &req->room);

    if (m) {
        room = m->room;

    } else {
        if (s->allowed && !ngx_chat_rooms_allow(s->allowed, &req->room)
            && !ngx_chat_request_token(s, req))
        {
            ngx_log_error(NGX_LOG_INFO, s->log, 0,
                          "chat: join of \"%V\" forbidden by chat_rooms",
                          &req->room);

            ngx_chat_stat_inc(forbidden);
            ngx_chat_request_error(s, NGX_CHAT_ERR_FORBIDDEN,
                                   "not allowed in this room", &req->id);
            return;
        }

        if (s->nrooms >= s->conf->max_rooms) {
            ngx_chat_request_error(s, NGX_CHAT_ERR_TOO_MANY_ROOMS,
                                   "chat_max_rooms reached", &req->id);
            return;
        }

        room = ngx_chat_hub_room(&req->room, s->log);
        m = room ? ngx_chat_hub_join(room, &s->peer, s->log) : NULL;

        if (m == NULL) {
            if (room) {
                ngx_chat_hub_release(room);
            }

            ngx_chat_request_error(s, NGX_CHAT_ERR_INTERNAL,
                                   "out of memory", &req->id);
            return;
        }

        ngx_queue_insert_tail(&s->rooms, &m->owner_link);
        s->nrooms++;
    }

    /* the store refuses a user banned from the room */

    req->user = s->peer.user;

    op = ngx_chat_request_op(s, room, req, ngx_chat_request_join_done);
    if (op == NULL) {
        return;
    }

    ngx_chat_store->join(op);
}


/* a join token lets in one room chat_rooms does not (a ban still wins) */

static ngx_uint_t
ngx_chat_request_token(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_main_conf_t  *cmcf;

    if (req->token.len == 0) {
        return 0;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle, ngx_chat_module);

    if (cmcf->jwt_secret.len == 0) {
        ngx_log_error(NGX_LOG_INFO, s->log, 0,
                      "chat: join token refused: no chat_jwt_secret");
        return 0;
    }

    return ngx_chat_jwt_join(&cmcf->jwt_secret, &req->token, &s->peer.user,
                             &req->room, s->log);
}


/*
 * The store knows the room's last seq and has what followed "since":
 * "joined" goes out, then the replay, then what arrived meanwhile.
 */

static void
ngx_chat_request_join_done(ngx_chat_store_op_t *op)
{
    ngx_uint_t           i, n;
    ngx_chat_member_t   *m;
    ngx_chat_session_t  *s;

    s = op->data;
    m = ngx_chat_request_member(s, &op->room->node.str);

    if (m == NULL) {
        /* left while joining: "left" has been sent */
        return;
    }

    if (op->error == NGX_CHAT_ERR_FORBIDDEN) {
        ngx_log_error(NGX_LOG_INFO, s->log, 0,
                      "chat: join of \"%V\" forbidden: banned",
                      &op->room->node.str);

        ngx_chat_stat_inc(forbidden);
        ngx_chat_request_error(s, op->error, "banned from this room",
                               &op->id);

    } else if (op->error) {
        ngx_chat_request_error(s, op->error,
                               ngx_chat_request_ops[NGX_CHAT_REQ_JOIN].failed,
                               &op->id);
    }

    if (op->error) {

        if (!m->ready) {
            ngx_chat_request_part(s, m);
        }

        return;
    }

    ngx_chat_request_reply(s, s->codec->joined(&op->room->node.str, op->seq,
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

    if (!s->transient) {
        ngx_chat_store->presence_room(m->room, &s->peer.user, 1);
        m->announced = 1;
    }

    ngx_chat_request_release(s, m->room, 0);
}


static void
ngx_chat_request_leave(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_request_part(s, m);

    ngx_chat_request_reply(s, s->codec->left(&req->room, &req->id, NULL,
                                             s->log));
}


/* the application took the client out of the room: chat_admin's kick */

void
ngx_chat_request_kicked(ngx_chat_session_t *s, ngx_chat_member_t *m)
{
    ngx_str_t  room;

    room = m->room->node.str;

    /* the name is the room's, which the part may free */

    ngx_chat_request_reply(s, s->codec->left(&room, NULL, "kicked", s->log));
    ngx_chat_request_part(s, m);
}


/*
 * A send on a join not yet answered waits for it: numbered before the
 * worker has the room's channel, it would never reach the sender, whose
 * "joined" would count it already.
 */

static void
ngx_chat_request_send(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_store_op_t  *op;

    if (!m->ready && s->nheld >= NGX_CHAT_REQUEST_HELD_MAX) {
        ngx_chat_request_error(s, NGX_CHAT_ERR_NOT_JOINED,
                               "the join is not answered yet", &req->id);
        return;
    }

    op = ngx_chat_request_op(s, m->room, req, ngx_chat_request_done);
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

    ngx_chat_request_publish(s, op);
}


static void
ngx_chat_request_publish(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
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
ngx_chat_request_release(ngx_chat_session_t *s, ngx_chat_room_t *room,
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
            ngx_chat_request_publish(s, op);
        }
    }
}


static void
ngx_chat_request_history(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_request_op(s, m->room, req, ngx_chat_request_done);

    if (op) {
        ngx_chat_store->history(op);
    }
}


static void
ngx_chat_request_presence(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_request_op(s, m->room, req, ngx_chat_request_done);

    if (op) {
        ngx_chat_store->members(op);
    }
}


static void
ngx_chat_request_online(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_request_op(s, NULL, req, ngx_chat_request_done);

    if (op) {
        ngx_chat_store->online(op);
    }
}


static void
ngx_chat_request_heartbeat(ngx_chat_session_t *s, ngx_chat_request_t *req,
    ngx_chat_member_t *m)
{
    ngx_chat_request_reply(s, s->codec->heartbeat(&req->id, s->log));
}


/* at most one a second per connection and room; no reply */

static void
ngx_chat_request_typing(ngx_chat_session_t *s, ngx_chat_request_t *req,
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
ngx_chat_request_acked(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    ngx_chat_stat_inc(messages_received);

    return s->codec->ack(&op->room->node.str, op->seq, &op->id, s->log);
}


static ngx_chat_frame_t *
ngx_chat_request_messages(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    return s->codec->history(&op->room->node.str, op->frames, op->nframes,
                             &op->id, s->log);
}


static ngx_chat_frame_t *
ngx_chat_request_users(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    return s->codec->presence(&op->room->node.str, op->users, op->nusers,
                              &op->id, s->log);
}


static ngx_chat_frame_t *
ngx_chat_request_present(ngx_chat_session_t *s, ngx_chat_store_op_t *op)
{
    return s->codec->online(op->users, op->present, op->nusers, &op->id,
                            s->log);
}


/* the store has answered a request that is nothing but its answer */

static void
ngx_chat_request_done(ngx_chat_store_op_t *op)
{
    ngx_chat_session_t     *s;
    ngx_chat_request_op_t  *o;

    s = op->data;
    o = &ngx_chat_request_ops[op->op];

    if (op->error) {
        ngx_chat_request_error(s, op->error, o->failed, &op->id);
        return;
    }

    ngx_chat_request_reply(s, o->reply(s, op));
}


static ngx_chat_store_op_t *
ngx_chat_request_op(ngx_chat_session_t *s, ngx_chat_room_t *room,
    ngx_chat_request_t *req, ngx_chat_store_done_pt done)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_store_op(room, req, s->log);
    if (op == NULL) {
        ngx_chat_request_error(s, NGX_CHAT_ERR_INTERNAL, "out of memory",
                               &req->id);
        return NULL;
    }

    op->data = s;
    op->done = done;
    ngx_queue_insert_tail(&s->ops, &op->queue);

    return op;
}


ngx_chat_member_t *
ngx_chat_request_member(ngx_chat_session_t *s, ngx_str_t *room)
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

void
ngx_chat_request_part(ngx_chat_session_t *s, ngx_chat_member_t *m)
{
    ngx_uint_t        announced;
    ngx_chat_room_t  *room;

    room = m->room;
    announced = m->announced;

    if (!m->ready) {
        ngx_chat_request_release(s, room, NGX_CHAT_ERR_NOT_JOINED);
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


void
ngx_chat_request_reply(ngx_chat_session_t *s, ngx_chat_frame_t *f)
{
    if (f == NULL) {
        s->peer.transport->close(s->peer.conn, NGX_CHAT_CLOSE_INTERNAL,
                                 "out of memory");
        return;
    }

    (void) s->peer.transport->reply(s->peer.conn, f);
    ngx_chat_frame_unref(f);
}


void
ngx_chat_request_error(ngx_chat_session_t *s, ngx_uint_t code, char *message,
    ngx_str_t *id)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat: request refused: %ui \"%s\"", code, message);

    ngx_chat_request_reply(s, s->codec->error(code, message, id, s->log));
}
