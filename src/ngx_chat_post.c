
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_post.h"
#include "ngx_chat_client.h"
#include "ngx_chat_cors.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_handshake.h"
#include "ngx_chat_http.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_status.h"
#include "ngx_chat_store.h"


/*
 * A POST to the chat location: one protocol request, answered with its
 * reply, for clients whose events come by an event stream or long polls.
 * Nothing is kept between two of them: a send needs its room allowed,
 * not joined, and any worker of any host may answer.
 */

static void ngx_chat_post_body(ngx_http_request_t *r);
static void ngx_chat_post_done(ngx_chat_store_op_t *op);


/* the connection, in the user's presence, of all its HTTP requests */
static ngx_str_t  ngx_chat_post_conn = ngx_string("http");


ngx_int_t
ngx_chat_post_handler(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf)
{
    ngx_int_t  rc;

    rc = ngx_chat_handshake_origin_check(r, lcf);

    if (rc != NGX_OK) {
        r->keepalive = 0;
        return rc;
    }

    if (ngx_chat_cors_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_http_post(r, lcf->max_message_size, ngx_chat_post_body);
}


/*
 * an HTTP client is online while its requests come within
 * chat_presence_ttl: its polls and its heartbeats say so
 */

void
ngx_chat_post_seen(ngx_str_t *user, ngx_chat_loc_conf_t *lcf)
{
    ngx_chat_store->presence(user, &ngx_chat_post_conn,
                             NGX_CHAT_PRESENCE_REFRESH, lcf->presence_ttl);
}


static void
ngx_chat_post_body(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_str_t              user, body, *rooms;
    ngx_chat_msg_t         msg;
    ngx_chat_room_t       *room;
    ngx_chat_frame_t      *f;
    ngx_chat_request_t     req;
    ngx_chat_loc_conf_t   *lcf;
    ngx_chat_store_op_t   *op;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    ngx_chat_stat_inc(http_requests);

    rc = ngx_chat_client_user(r, lcf, &user, &rooms);
    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, ngx_chat_client_refused(r, rc));
        return;
    }

    if (ngx_chat_http_body(r, lcf->max_message_size, &body) != NGX_OK) {
        return;
    }

    if (ngx_chat_decode_request(body.data, body.len, &req, 0) != NGX_OK) {
        goto refused;
    }

    if (req.op == NGX_CHAT_REQ_JOIN || req.op == NGX_CHAT_REQ_LEAVE) {
        req.error = NGX_CHAT_ERR_BAD_REQUEST;
        req.reason = "over HTTP, the rooms of a stream or a poll are in "
                     "its URL";
        goto refused;
    }

    if (req.room.len && rooms && !ngx_chat_rooms_allow(rooms, &req.room)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: request of \"%V\" forbidden by chat_rooms",
                      &req.room);

        ngx_chat_stat_inc(forbidden);
        req.error = NGX_CHAT_ERR_FORBIDDEN;
        req.reason = "not allowed in this room";
        goto refused;
    }

    if (req.op == NGX_CHAT_REQ_HEARTBEAT) {
        ngx_chat_post_seen(&user, lcf);

        ngx_http_finalize_request(r,
                  ngx_chat_http_reply(r, NGX_HTTP_OK,
                      ngx_chat_encode_heartbeat(&req.id,
                                                r->connection->log)));
        ngx_chat_decode_free(&req);
        return;
    }

    room = NULL;

    if (req.room.len) {
        room = ngx_chat_hub_room(&req.room, r->connection->log);

        if (room == NULL) {
            ngx_chat_decode_free(&req);
            ngx_chat_http_failed(r);
            return;
        }
    }

    if (req.op == NGX_CHAT_REQ_TYPING) {
        f = ngx_chat_encode_typing(&room->node.str, &user,
                                   r->connection->log);
        if (f) {
            ngx_chat_store->typing(room, f, &user);
            ngx_chat_frame_unref(f);
        }

        ngx_chat_hub_release(room);
        ngx_chat_decode_free(&req);

        r->header_only = 1;
        ngx_http_finalize_request(r, NGX_HTTP_NO_CONTENT);
        return;
    }

    req.user = user;

    op = ngx_chat_http_op(r, room, &req, ngx_chat_post_done);
    if (op == NULL) {
        ngx_chat_decode_free(&req);
        return;
    }

    switch (req.op) {

    case NGX_CHAT_REQ_SEND:
        ngx_memzero(&msg, sizeof(ngx_chat_msg_t));
        msg.room = room->node.str;
        msg.user = user;
        msg.text = req.text;

        ngx_chat_store->publish(op, &msg);
        break;

    case NGX_CHAT_REQ_HISTORY:
        ngx_chat_store->history(op);
        break;

    case NGX_CHAT_REQ_PRESENCE:
        ngx_chat_store->members(op);
        break;

    default: /* NGX_CHAT_REQ_ONLINE */
        ngx_chat_store->online(op);
    }

    ngx_chat_decode_free(&req);

    ngx_http_finalize_request(r, NGX_DONE);
    return;

refused:

    ngx_http_finalize_request(r,
              ngx_chat_http_error(r, ngx_chat_http_status(req.error),
                                  req.error, req.reason, &req.id));
    ngx_chat_decode_free(&req);
}


static void
ngx_chat_post_done(ngx_chat_store_op_t *op)
{
    ngx_log_t           *log;
    ngx_chat_frame_t    *f;
    ngx_http_request_t  *r;

    r = ngx_chat_http_op_request(op);
    log = r->connection->log;

    if (op->error) {
        ngx_http_finalize_request(r,
                  ngx_chat_http_error(r, ngx_chat_http_status(op->error),
                                      op->error,
                                      op->op == NGX_CHAT_REQ_SEND
                                      ? "message not stored"
                                      : "not available", &op->id));
        return;
    }

    switch (op->op) {

    case NGX_CHAT_REQ_SEND:
        ngx_chat_stat_inc(messages_received);
        f = ngx_chat_encode_ack(&op->room->node.str, op->seq, &op->id, log);
        break;

    case NGX_CHAT_REQ_HISTORY:
        f = ngx_chat_encode_history(&op->room->node.str, op->frames,
                                    op->nframes, &op->id, log);
        break;

    case NGX_CHAT_REQ_PRESENCE:
        f = ngx_chat_encode_presence(&op->room->node.str, op->users,
                                     op->nusers, &op->id, log);
        break;

    default: /* NGX_CHAT_REQ_ONLINE */
        f = ngx_chat_encode_online(op->users, op->present, op->nusers,
                                   &op->id, log);
    }

    ngx_http_finalize_request(r, ngx_chat_http_reply(r, NGX_HTTP_OK, f));
}
