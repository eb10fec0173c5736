
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
#include "ngx_chat_utf8.h"


/*
 * chat_publish: POST {"room":R,"text":T,"id":C} stores and broadcasts a
 * message exactly as a WebSocket "send" does, for application back ends.
 */

static void ngx_chat_publish_body(ngx_http_request_t *r);
static void ngx_chat_publish_done(ngx_chat_store_op_t *op);
static void ngx_chat_publish_cleanup(void *data);
static void ngx_chat_publish_failed(ngx_http_request_t *r);
static ngx_int_t ngx_chat_publish_error(ngx_http_request_t *r,
    ngx_uint_t status, ngx_uint_t code, char *message, ngx_str_t *id);
static ngx_int_t ngx_chat_publish_reply(ngx_http_request_t *r,
    ngx_uint_t status, ngx_chat_frame_t *f);


static ngx_uint_t  ngx_chat_publish_status[] = {
    NGX_HTTP_OK,
    NGX_HTTP_BAD_REQUEST,                  /* bad_request */
    NGX_HTTP_BAD_REQUEST,                  /* not_joined */
    NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,     /* too_large */
    NGX_HTTP_TOO_MANY_REQUESTS,            /* rate_limited */
    NGX_HTTP_BAD_REQUEST,                  /* too_many_rooms */
    NGX_HTTP_FORBIDDEN,                    /* forbidden */
    NGX_HTTP_SERVICE_UNAVAILABLE,          /* unavailable */
    NGX_HTTP_INTERNAL_SERVER_ERROR         /* internal */
};


ngx_int_t
ngx_chat_publish_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;

    ngx_table_elt_t      *h;
    ngx_chat_loc_conf_t  *lcf;

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");
        ngx_str_set(&h->value, "POST");

        return ngx_chat_publish_error(r, NGX_HTTP_NOT_ALLOWED,
                                      NGX_CHAT_ERR_BAD_REQUEST,
                                      "POST only", NULL);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (r->headers_in.content_length_n > (off_t) lcf->max_message_size) {
        r->keepalive = 0;

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_chat_publish_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      NGX_CHAT_ERR_TOO_LARGE,
                                      "message too large", NULL);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_chat_publish_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_chat_publish_body(ngx_http_request_t *r)
{
    u_char                *p;
    size_t                 len;
    ssize_t                n;
    ngx_int_t              rc;
    ngx_str_t              user;
    ngx_buf_t             *b;
    ngx_chain_t           *cl;
    ngx_chat_msg_t         msg;
    ngx_chat_room_t       *room;
    ngx_chat_utf8_t        utf8;
    ngx_pool_cleanup_t    *cln;
    ngx_chat_request_t     req;
    ngx_chat_loc_conf_t   *lcf;
    ngx_chat_store_op_t   *op;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    if (lcf->user == NULL
        || ngx_http_complex_value(r, lcf->user, &user) != NGX_OK)
    {
        ngx_chat_publish_failed(r);
        return;
    }

    rc = ngx_chat_decode_user(&user);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc == NGX_DECLINED
            ? ngx_chat_publish_error(r, NGX_HTTP_UNAUTHORIZED,
                                     NGX_CHAT_ERR_FORBIDDEN,
                                     "no user: chat_user is empty", NULL)
            : ngx_chat_publish_error(r, NGX_HTTP_BAD_REQUEST,
                                     NGX_CHAT_ERR_BAD_REQUEST,
                                     "invalid user id", NULL));
        return;
    }

    /*
     * the body in one piece; a part nginx wrote to a temporary file (past
     * client_body_buffer_size) is read back: it is chat_max_message_size
     * at most, just written, in the page cache
     */

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len > lcf->max_message_size) {
        ngx_http_finalize_request(r,
                  ngx_chat_publish_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         NGX_CHAT_ERR_TOO_LARGE,
                                         "message too large", NULL));
        return;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        ngx_chat_publish_failed(r);
        return;
    }

    b = ngx_create_temp_buf(r->pool, 0);
    if (b == NULL) {
        ngx_chat_publish_failed(r);
        return;
    }

    b->pos = p;
    b->last = p;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {

            if (!cl->buf->in_file) {
                if (cl->buf->last > cl->buf->pos) {
                    b->last = ngx_cpymem(b->last, cl->buf->pos,
                                         cl->buf->last - cl->buf->pos);
                }

                continue;
            }

            n = ngx_read_file(cl->buf->file, b->last,
                              cl->buf->file_last - cl->buf->file_pos,
                              cl->buf->file_pos);

            if (n != cl->buf->file_last - cl->buf->file_pos) {
                ngx_chat_publish_failed(r);
                return;
            }

            b->last += n;
        }
    }

    ngx_memzero(&utf8, sizeof(ngx_chat_utf8_t));

    if (ngx_chat_utf8_validate(&utf8, b->pos, len) != NGX_OK
        || ngx_chat_utf8_complete(&utf8) != NGX_OK)
    {
        ngx_http_finalize_request(r,
                  ngx_chat_publish_error(r, NGX_HTTP_BAD_REQUEST,
                                         NGX_CHAT_ERR_BAD_REQUEST,
                                         "body is not UTF-8", NULL));
        return;
    }

    if (ngx_chat_decode_request(b->pos, len, &req, NGX_CHAT_REQ_SEND)
        != NGX_OK)
    {
        ngx_http_finalize_request(r,
                  ngx_chat_publish_error(r, ngx_chat_publish_status[req.error],
                                         req.error, req.reason, &req.id));
        ngx_chat_decode_free(&req);
        return;
    }

    room = ngx_chat_hub_room(&req.room, r->connection->log);
    op = room ? ngx_chat_store_op(room, &req, r->connection->log) : NULL;
    cln = op ? ngx_pool_cleanup_add(r->pool, 0) : NULL;

    if (cln == NULL) {
        if (op) {
            ngx_chat_store_op_done(op);

        } else if (room) {
            ngx_chat_hub_release(room);
        }

        ngx_chat_decode_free(&req);
        ngx_chat_publish_failed(r);
        return;
    }

    cln->handler = ngx_chat_publish_cleanup;
    cln->data = op;

    op->data = r;
    op->done = ngx_chat_publish_done;

    ngx_memzero(&msg, sizeof(ngx_chat_msg_t));
    msg.room = room->node.str;
    msg.user = user;
    msg.text = req.text;

    /* the request waits for the store, which may answer right away */

    r->main->count++;

    ngx_chat_store->publish(op, &msg);

    ngx_chat_decode_free(&req);

    ngx_http_finalize_request(r, NGX_DONE);
}


static void
ngx_chat_publish_done(ngx_chat_store_op_t *op)
{
    ngx_http_request_t  *r;
    ngx_pool_cleanup_t  *cln;

    r = op->data;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_chat_publish_cleanup && cln->data == op) {
            cln->data = NULL;
        }
    }

    if (op->error) {
        ngx_http_finalize_request(r,
                  ngx_chat_publish_error(r, ngx_chat_publish_status[op->error],
                                         op->error, "message not stored",
                                         &op->id));
        return;
    }

    ngx_chat_stat_inc(messages_received);

    ngx_http_finalize_request(r,
              ngx_chat_publish_reply(r, NGX_HTTP_OK,
                  ngx_chat_encode_ack(&op->room->node.str, op->seq,
                                      &op->id, r->connection->log)));
}


/* the request went away first: the store finishes without telling it */

static void
ngx_chat_publish_cleanup(void *data)
{
    ngx_chat_store_op_t *op = data;

    if (op) {
        op->data = NULL;
    }
}


static void
ngx_chat_publish_failed(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r,
              ngx_chat_publish_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     NGX_CHAT_ERR_INTERNAL, "internal error",
                                     NULL));
}


/* every answer of chat_publish is JSON: the error object for an error */

static ngx_int_t
ngx_chat_publish_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t code, char *message, ngx_str_t *id)
{
    return ngx_chat_publish_reply(r, status,
                                  ngx_chat_encode_error(code, message, id,
                                                        r->connection->log));
}


static ngx_int_t
ngx_chat_publish_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chat_frame_t *f)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (f == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, f->last - f->payload + 1);
    if (b == NULL) {
        ngx_chat_frame_unref(f);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, f->payload, f->last - f->payload);
    *b->last++ = '\n';
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_chat_frame_unref(f);

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
