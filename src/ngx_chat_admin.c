
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_admin.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_store.h"
#include "ngx_chat_http.h"


/*
 * chat_admin: the application's control of its users, one POSTed JSON
 * command each: kick a user out of a room (and ban it from the room for a
 * while), disconnect a user, ask a room's presence or who is online.
 * Kicks and disconnects reach every worker of every host.
 */

/* 100 user ids of 256 bytes, each escaped at worst */
#define NGX_CHAT_ADMIN_BODY_MAX  (100 * (6 * NGX_CHAT_USER_MAX + 3) + 1024)


static void ngx_chat_admin_body(ngx_http_request_t *r);
static void ngx_chat_admin_done(ngx_chat_store_op_t *op);


ngx_int_t
ngx_chat_admin_handler(ngx_http_request_t *r)
{
    return ngx_chat_http_post(r, NGX_CHAT_ADMIN_BODY_MAX,
                              ngx_chat_admin_body);
}


static void
ngx_chat_admin_body(ngx_http_request_t *r)
{
    ngx_str_t             body;
    ngx_chat_room_t      *room;
    ngx_chat_request_t    req;
    ngx_chat_store_op_t  *op;

    if (ngx_chat_http_body(r, NGX_CHAT_ADMIN_BODY_MAX, &body) != NGX_OK) {
        return;
    }

    if (ngx_chat_decode_command(body.data, body.len, &req) != NGX_OK) {
        ngx_http_finalize_request(r,
                  ngx_chat_http_error(r, ngx_chat_http_status(req.error),
                                      req.error, req.reason, &req.id));
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

    op = ngx_chat_http_op(r, room, &req, ngx_chat_admin_done);

    ngx_chat_decode_free(&req);

    if (op == NULL) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "chat: admin %ui \"%V\"", op->op, &op->user);

    switch (op->op) {

    case NGX_CHAT_REQ_KICK:
        ngx_chat_store->kick(op);
        break;

    case NGX_CHAT_REQ_DISCONNECT:
        ngx_chat_store->disconnect(op);
        break;

    case NGX_CHAT_REQ_PRESENCE:
        ngx_chat_store->members(op);
        break;

    default: /* NGX_CHAT_REQ_ONLINE */
        ngx_chat_store->online(op);
    }

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_chat_admin_done(ngx_chat_store_op_t *op)
{
    ngx_log_t           *log;
    ngx_chat_frame_t    *f;
    ngx_http_request_t  *r;

    r = ngx_chat_http_op_request(op);
    log = r->connection->log;

    if (op->error) {
        ngx_http_finalize_request(r,
                  ngx_chat_http_error(r, ngx_chat_http_status(op->error),
                                      op->error, "command failed",
                                      &op->id));
        return;
    }

    switch (op->op) {

    case NGX_CHAT_REQ_KICK:
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "chat: \"%V\" kicked from \"%V\" (%ui connections), "
                      "banned for %uL s", &op->user, &op->room->node.str,
                      op->count, op->ban);

        f = ngx_chat_encode_done("kick", op->count, &op->id, log);
        break;

    case NGX_CHAT_REQ_DISCONNECT:
        ngx_log_error(NGX_LOG_INFO, log, 0, "chat: \"%V\" disconnected",
                      &op->user);

        f = ngx_chat_encode_done("disconnect", -1, &op->id, log);
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
