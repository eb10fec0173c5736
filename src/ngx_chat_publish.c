
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_publish.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_store.h"
#include "ngx_chat_status.h"
#include "ngx_chat_http.h"


/*
 * chat_publish: POST {"room":R,"text":T,"id":C} stores and broadcasts a
 * message exactly as a WebSocket "send" does, for application back ends.
 */

static void ngx_chat_publish_body(ngx_http_request_t *r);
static void ngx_chat_publish_done(ngx_chat_store_op_t *op);


ngx_int_t
ngx_chat_publish_handler(ngx_http_request_t *r)
{
    ngx_chat_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    return ngx_chat_http_post(r, lcf->max_message_size,
                              ngx_chat_publish_body);
}


static void
ngx_chat_publish_body(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_str_t              user, body;
    ngx_chat_msg_t         msg;
    ngx_chat_room_t       *room;
    ngx_chat_request_t     req;
    ngx_chat_loc_conf_t   *lcf;
    ngx_chat_store_op_t   *op;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (lcf->user == NULL
        || ngx_http_complex_value(r, lcf->user, &user) != NGX_OK)
    {
        ngx_chat_http_failed(r);
        return;
    }

    rc = ngx_chat_decode_user(&user);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc == NGX_DECLINED
            ? ngx_chat_http_error(r, NGX_HTTP_UNAUTHORIZED,
                                  NGX_CHAT_ERR_FORBIDDEN,
                                  "no user: chat_user is empty", NULL)
            : ngx_chat_http_error(r, NGX_HTTP_BAD_REQUEST,
                                  NGX_CHAT_ERR_BAD_REQUEST,
                                  "invalid user id", NULL));
        return;
    }

    if (ngx_chat_http_body(r, lcf->max_message_size, &body) != NGX_OK) {
        return;
    }

    if (ngx_chat_decode_request(body.data, body.len, &req,
                                NGX_CHAT_REQ_SEND)
        != NGX_OK)
    {
        ngx_http_finalize_request(r,
                  ngx_chat_http_error(r, ngx_chat_http_status(req.error),
                                      req.error, req.reason, &req.id));
        ngx_chat_decode_free(&req);
        return;
    }

    room = ngx_chat_hub_room(&req.room, r->connection->log);
    op = room ? ngx_chat_http_op(r, room, &req, ngx_chat_publish_done) : NULL;

    if (op == NULL) {
        if (room == NULL) {
            ngx_chat_http_failed(r);
        }

        ngx_chat_decode_free(&req);
        return;
    }

    ngx_memzero(&msg, sizeof(ngx_chat_msg_t));
    msg.room = room->node.str;
    msg.user = user;
    msg.text = req.text;

    ngx_chat_store->publish(op, &msg);

    ngx_chat_decode_free(&req);

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_chat_publish_done(ngx_chat_store_op_t *op)
{
    ngx_http_request_t  *r;

    r = ngx_chat_http_op_request(op);

    if (op->error) {
        ngx_http_finalize_request(r,
                  ngx_chat_http_error(r, ngx_chat_http_status(op->error),
                                      op->error, "message not stored",
                                      &op->id));
        return;
    }

    ngx_chat_stat_inc(messages_received);

    ngx_http_finalize_request(r,
              ngx_chat_http_reply(r, NGX_HTTP_OK,
                  ngx_chat_encode_ack(&op->room->node.str, op->seq,
                                      &op->id, r->connection->log)));
}
