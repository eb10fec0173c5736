
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_session.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_handshake.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_store.h"
#include "ngx_chat_status.h"


/* consecutive rate_limited refusals tolerated before the close with 1008 */
#define NGX_CHAT_SESSION_REFUSALS  10


static void ngx_chat_session_message(ngx_chat_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_chat_session_cleanup(ngx_chat_ws_t *ws);
static void ngx_chat_session_join(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
static void ngx_chat_session_join_done(ngx_chat_store_op_t *op);
static void ngx_chat_session_leave(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
static void ngx_chat_session_send(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
static void ngx_chat_session_send_done(ngx_chat_store_op_t *op);
static void ngx_chat_session_history(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
static void ngx_chat_session_history_done(ngx_chat_store_op_t *op);
static void ngx_chat_session_typing(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
static void ngx_chat_session_presence(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
static void ngx_chat_session_presence_done(ngx_chat_store_op_t *op);
static void ngx_chat_session_online(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
static void ngx_chat_session_online_done(ngx_chat_store_op_t *op);
static ngx_chat_store_op_t *ngx_chat_session_op(ngx_chat_session_t *s,
    ngx_chat_room_t *room, ngx_chat_request_t *req,
    ngx_chat_store_done_pt done);
static ngx_chat_member_t *ngx_chat_session_member(ngx_chat_session_t *s,
    ngx_str_t *room);
static ngx_uint_t ngx_chat_session_allow(ngx_chat_session_t *s);
static void ngx_chat_session_reply(ngx_chat_session_t *s,
    ngx_chat_frame_t *f);
static void ngx_chat_session_error(ngx_chat_session_t *s, ngx_uint_t code,
    char *message, ngx_str_t *id);


ngx_int_t
ngx_chat_session_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_str_t             user;
    ngx_chat_ws_t        *ws;
    ngx_chat_session_t   *s;
    ngx_chat_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    rc = ngx_chat_handshake_check(r, lcf);
    if (rc != NGX_OK) {
        return rc;
    }

    if (lcf->user == NULL
        || ngx_http_complex_value(r, lcf->user, &user) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (user.len == 0) {
        return NGX_HTTP_UNAUTHORIZED;
    }

    if (user.len > NGX_CHAT_USER_MAX) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: user id of %uz bytes is too long", user.len);
        return NGX_HTTP_BAD_REQUEST;
    }

    ws = ngx_chat_ws_create(r, lcf);
    if (ws == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* what outlives the request lives on the connection's pool */

    s = ngx_pcalloc(r->connection->pool, sizeof(ngx_chat_session_t)
                                         + user.len + ngx_chat_worker_id.len
                                         + 1 + NGX_ATOMIC_T_LEN);
    if (s == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    s->ws = ws;
    s->user.data = (u_char *) (s + 1);
    s->user.len = user.len;
    ngx_memcpy(s->user.data, user.data, user.len);
    s->tokens = lcf->burst;
    s->tokens_time = ngx_current_msec;
    ngx_queue_init(&s->rooms);
    ngx_queue_init(&s->ops);

    ws->data = s;
    ws->on_message = ngx_chat_session_message;

    if (ngx_chat_ws_start(ws) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ws->on_cleanup = ngx_chat_session_cleanup;
    ngx_chat_stat_inc(connections);

    /* this connection among all of the user's: worker and number */

    s->conn.data = s->user.data + s->user.len;
    s->conn.len = ngx_sprintf(s->conn.data, "%V#%uA", &ngx_chat_worker_id,
                              r->connection->number)
                  - s->conn.data;

    s->presence = ngx_current_msec;
    ngx_chat_store->presence(&s->user, &s->conn, NGX_CHAT_PRESENCE_CONNECT,
                             lcf->presence_ttl);

    ngx_chat_session_reply(s, ngx_chat_encode_welcome(&s->user,
                                                r->connection->number,
                                                &ngx_chat_worker_id,
                                                r->connection->log));

    return NGX_DONE;
}


static void
ngx_chat_session_cleanup(ngx_chat_ws_t *ws)
{
    ngx_queue_t         *q;
    ngx_chat_session_t  *s;

    s = ws->data;

    while (!ngx_queue_empty(&s->ops)) {
        ngx_chat_store_op_cancel(ngx_queue_data(ngx_queue_head(&s->ops),
                                                ngx_chat_store_op_t, queue));
    }

    while (!ngx_queue_empty(&s->rooms)) {
        q = ngx_queue_head(&s->rooms);
        ngx_chat_hub_leave(ngx_queue_data(q, ngx_chat_member_t,
                                          session_link));
    }

    ngx_chat_store->presence(&s->user, &s->conn,
                             NGX_CHAT_PRESENCE_DISCONNECT,
                             ws->conf->presence_ttl);

    ngx_chat_stat_dec(connections);
}


static void
ngx_chat_session_message(ngx_chat_ws_t *ws, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    ngx_chat_session_t  *s;
    ngx_chat_request_t   req;

    s = ws->data;

    /* any request says the client is there: at most once per TTL/3 */

    if (ngx_current_msec - s->presence >= ws->conf->presence_ttl / 3) {
        s->presence = ngx_current_msec;
        ngx_chat_store->presence(&s->user, &s->conn,
                                 NGX_CHAT_PRESENCE_REFRESH,
                                 ws->conf->presence_ttl);
    }

    if (ngx_chat_decode_request(data, len, &req, 0) != NGX_OK) {
        ngx_chat_session_error(s, req.error, req.reason, &req.id);
        ngx_chat_decode_free(&req);
        return;
    }

    switch (req.op) {

    case NGX_CHAT_REQ_JOIN:
        ngx_chat_session_join(s, &req);
        break;

    case NGX_CHAT_REQ_LEAVE:
        ngx_chat_session_leave(s, &req);
        break;

    case NGX_CHAT_REQ_SEND:
        ngx_chat_session_send(s, &req);
        break;

    case NGX_CHAT_REQ_HISTORY:
        ngx_chat_session_history(s, &req);
        break;

    case NGX_CHAT_REQ_HEARTBEAT:
        ngx_chat_session_reply(s, ngx_chat_encode_heartbeat(&req.id,
                                                    ws->connection->log));
        break;

    case NGX_CHAT_REQ_TYPING:
        ngx_chat_session_typing(s, &req);
        break;

    case NGX_CHAT_REQ_ONLINE:
        ngx_chat_session_online(s, &req);
        break;

    default: /* NGX_CHAT_REQ_PRESENCE */
        ngx_chat_session_presence(s, &req);
    }

    ngx_chat_decode_free(&req);
}


static void
ngx_chat_session_join(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_room_t      *room;
    ngx_chat_member_t    *m;
    ngx_chat_store_op_t  *op;

    m = ngx_chat_session_member(s, &req->room);

    if (m) {
        room = m->room;

    } else {
        if (s->nrooms >= s->ws->conf->max_rooms) {
            ngx_chat_session_error(s, NGX_CHAT_ERR_TOO_MANY_ROOMS,
                                   "chat_max_rooms reached", &req->id);
            return;
        }

        room = ngx_chat_hub_room(&req->room, s->ws->connection->log);

        if (room == NULL
            || ngx_chat_hub_join(room, s, s->ws->connection->log) == NULL)
        {
            if (room) {
                ngx_chat_hub_release(room);
            }

            ngx_chat_session_error(s, NGX_CHAT_ERR_INTERNAL,
                                   "out of memory", &req->id);
            return;
        }
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
        ngx_chat_session_error(s, op->error, "join failed", &op->id);

        if (!m->ready) {
            ngx_chat_hub_leave(m);
        }

        return;
    }

    ngx_chat_session_reply(s, ngx_chat_encode_joined(&op->room->node.str,
                                                op->seq, op->truncated,
                                                &op->id,
                                                s->ws->connection->log));

    if (m->ready) {
        /* joined again: the replay asked for, live messages go on */

        for (n = 0, i = 0; i < op->nframes; i++) {
            if (ngx_chat_ws_send(s->ws, op->frames[i]) == NGX_OK) {
                n++;
            }
        }

        ngx_chat_stat_add(messages_delivered, n);
        return;
    }

    for (n = 0, i = 0; i < op->nframes; i++) {
        if (ngx_chat_hub_send(m, op->frames[i]) == NGX_OK) {
            n++;
        }
    }

    ngx_chat_stat_add(messages_delivered, n);

    if (op->seq > m->seq) {
        m->seq = op->seq;
    }

    ngx_chat_hub_ready(m);

    ngx_chat_store->presence_room(m->room, &s->user, 1);
    m->announced = 1;
}


static void
ngx_chat_session_leave(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_member_t  *m;

    m = ngx_chat_session_member(s, &req->room);

    if (m == NULL) {
        ngx_chat_session_error(s, NGX_CHAT_ERR_NOT_JOINED,
                               "not in this room", &req->id);
        return;
    }

    ngx_chat_hub_leave(m);

    ngx_chat_session_reply(s, ngx_chat_encode_left(&req->room, &req->id,
                                                s->ws->connection->log));
}


static void
ngx_chat_session_send(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_msg_t        msg;
    ngx_chat_member_t    *m;
    ngx_chat_store_op_t  *op;

    m = ngx_chat_session_member(s, &req->room);

    if (m == NULL) {
        ngx_chat_session_error(s, NGX_CHAT_ERR_NOT_JOINED,
                               "not in this room", &req->id);
        return;
    }

    if (!ngx_chat_session_allow(s)) {

        if (++s->refusals > NGX_CHAT_SESSION_REFUSALS) {
            ngx_log_error(NGX_LOG_INFO, s->ws->connection->log, 0,
                          "chat: client keeps flooding, closing");
            ngx_chat_ws_close(s->ws, NGX_CHAT_CLOSE_POLICY, "rate limit");
            return;
        }

        ngx_chat_session_error(s, NGX_CHAT_ERR_RATE_LIMITED,
                               "chat_rate exceeded", &req->id);
        return;
    }

    s->refusals = 0;

    op = ngx_chat_session_op(s, m->room, req, ngx_chat_session_send_done);
    if (op == NULL) {
        return;
    }

    ngx_memzero(&msg, sizeof(ngx_chat_msg_t));
    msg.room = m->room->node.str;
    msg.user = s->user;
    msg.text = req->text;

    ngx_chat_store->publish(op, &msg);
}


static void
ngx_chat_session_send_done(ngx_chat_store_op_t *op)
{
    ngx_chat_session_t  *s;

    s = op->data;

    if (op->error) {
        ngx_chat_session_error(s, op->error, "message not stored", &op->id);
        return;
    }

    ngx_chat_stat_inc(messages_received);

    ngx_chat_session_reply(s, ngx_chat_encode_ack(&op->room->node.str,
                                                op->seq, &op->id,
                                                s->ws->connection->log));
}


static void
ngx_chat_session_history(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_member_t    *m;
    ngx_chat_store_op_t  *op;

    m = ngx_chat_session_member(s, &req->room);

    if (m == NULL) {
        ngx_chat_session_error(s, NGX_CHAT_ERR_NOT_JOINED,
                               "not in this room", &req->id);
        return;
    }

    op = ngx_chat_session_op(s, m->room, req, ngx_chat_session_history_done);
    if (op == NULL) {
        return;
    }

    ngx_chat_store->history(op);
}


static void
ngx_chat_session_history_done(ngx_chat_store_op_t *op)
{
    ngx_chat_session_t  *s;

    s = op->data;

    if (op->error) {
        ngx_chat_session_error(s, op->error, "history not available",
                               &op->id);
        return;
    }

    ngx_chat_session_reply(s, ngx_chat_encode_history(&op->room->node.str,
                                                op->frames, op->nframes,
                                                &op->id,
                                                s->ws->connection->log));
}


/* at most one a second per connection and room; no reply */

static void
ngx_chat_session_typing(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_frame_t   *f;
    ngx_chat_member_t  *m;

    m = ngx_chat_session_member(s, &req->room);

    if (m == NULL) {
        ngx_chat_session_error(s, NGX_CHAT_ERR_NOT_JOINED,
                               "not in this room", &req->id);
        return;
    }

    if (m->typing && ngx_current_msec - m->typing < 1000) {
        return;
    }

    m->typing = ngx_current_msec;

    f = ngx_chat_encode_typing(&m->room->node.str, &s->user,
                                 s->ws->connection->log);
    if (f == NULL) {
        return;
    }

    ngx_chat_store->typing(m->room, f, &s->user);
    ngx_chat_frame_unref(f);
}


static void
ngx_chat_session_presence(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_member_t    *m;
    ngx_chat_store_op_t  *op;

    m = ngx_chat_session_member(s, &req->room);

    if (m == NULL) {
        ngx_chat_session_error(s, NGX_CHAT_ERR_NOT_JOINED,
                               "not in this room", &req->id);
        return;
    }

    op = ngx_chat_session_op(s, m->room, req, ngx_chat_session_presence_done);
    if (op == NULL) {
        return;
    }

    ngx_chat_store->members(op);
}


static void
ngx_chat_session_presence_done(ngx_chat_store_op_t *op)
{
    ngx_chat_session_t  *s;

    s = op->data;

    if (op->error) {
        ngx_chat_session_error(s, op->error, "presence not available",
                               &op->id);
        return;
    }

    ngx_chat_session_reply(s, ngx_chat_encode_presence(&op->room->node.str,
                                                op->users, op->nusers,
                                                &op->id,
                                                s->ws->connection->log));
}


static void
ngx_chat_session_online(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_session_op(s, NULL, req, ngx_chat_session_online_done);
    if (op == NULL) {
        return;
    }

    ngx_chat_store->online(op);
}


static void
ngx_chat_session_online_done(ngx_chat_store_op_t *op)
{
    ngx_chat_session_t  *s;

    s = op->data;

    if (op->error) {
        ngx_chat_session_error(s, op->error, "presence not available",
                               &op->id);
        return;
    }

    ngx_chat_session_reply(s, ngx_chat_encode_online(op->users,
                                                op->present, op->nusers,
                                                &op->id,
                                                s->ws->connection->log));
}


static ngx_chat_store_op_t *
ngx_chat_session_op(ngx_chat_session_t *s, ngx_chat_room_t *room,
    ngx_chat_request_t *req, ngx_chat_store_done_pt done)
{
    ngx_chat_store_op_t  *op;

    op = ngx_chat_store_op(room, req, s->ws->connection->log);
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
        m = ngx_queue_data(q, ngx_chat_member_t, session_link);

        if (m->room->node.str.len == room->len
            && ngx_strncmp(m->room->node.str.data, room->data, room->len)
               == 0)
        {
            return m;
        }
    }

    return NULL;
}


/* a token bucket: chat_rate refills it, chat_rate's burst is its size */

static ngx_uint_t
ngx_chat_session_allow(ngx_chat_session_t *s)
{
    ngx_msec_t            elapsed;
    ngx_chat_loc_conf_t  *lcf;

    lcf = s->ws->conf;

    elapsed = ngx_current_msec - s->tokens_time;
    s->tokens_time = ngx_current_msec;

    s->tokens += elapsed * lcf->rate / 1000;

    if (s->tokens > lcf->burst) {
        s->tokens = lcf->burst;
    }

    if (s->tokens < 1000) {
        return 0;
    }

    s->tokens -= 1000;

    return 1;
}


static void
ngx_chat_session_reply(ngx_chat_session_t *s, ngx_chat_frame_t *f)
{
    if (f == NULL) {
        s->ws->connection->error = 1;
        return;
    }

    (void) ngx_chat_ws_send(s->ws, f);
    ngx_chat_frame_unref(f);
}


static void
ngx_chat_session_error(ngx_chat_session_t *s, ngx_uint_t code, char *message,
    ngx_str_t *id)
{
    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->ws->connection->log, 0,
                   "chat: request refused: %ui \"%s\"", code, message);

    ngx_chat_session_reply(s, ngx_chat_encode_error(code, message, id,
                                                s->ws->connection->log));
}
