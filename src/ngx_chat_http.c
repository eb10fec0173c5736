
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_http.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_utf8.h"


/*
 * The JSON over HTTP of the locations application back ends call
 * (chat_publish, chat_admin): one POSTed body, read whole, and every
 * answer a JSON object, the error object for an error.
 */

static void ngx_chat_http_op_cleanup(void *data);


static ngx_uint_t  ngx_chat_http_statuses[] = {
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


/* starts reading a POST's body of at most max bytes into handler */

ngx_int_t
ngx_chat_http_post(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

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

        return ngx_chat_http_error(r, NGX_HTTP_NOT_ALLOWED,
                                   NGX_CHAT_ERR_BAD_REQUEST, "POST only",
                                   NULL);
    }

    if (r->headers_in.content_length_n > (off_t) max) {
        r->keepalive = 0;

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_chat_http_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   NGX_CHAT_ERR_TOO_LARGE,
                                   "message too large", NULL);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/*
 * The body in one piece, valid UTF-8; a part nginx wrote to a temporary
 * file (past client_body_buffer_size) is read back: it is max bytes at
 * most, just written, in the page cache.  Not NGX_OK: the request has
 * been answered.
 */

ngx_int_t
ngx_chat_http_body(ngx_http_request_t *r, size_t max, ngx_str_t *body)
{
    u_char           *p, *last;
    size_t            len;
    ssize_t           n;
    ngx_chain_t      *cl;
    ngx_chat_utf8_t   utf8;

    len = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len > max) {
        ngx_http_finalize_request(r,
                  ngx_chat_http_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                      NGX_CHAT_ERR_TOO_LARGE,
                                      "message too large", NULL));
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        goto failed;
    }

    last = p;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {

            if (!cl->buf->in_file) {
                if (cl->buf->last > cl->buf->pos) {
                    last = ngx_cpymem(last, cl->buf->pos,
                                      cl->buf->last - cl->buf->pos);
                }

                continue;
            }

            n = ngx_read_file(cl->buf->file, last,
                              cl->buf->file_last - cl->buf->file_pos,
                              cl->buf->file_pos);

            if (n != cl->buf->file_last - cl->buf->file_pos) {
                goto failed;
            }

            last += n;
        }
    }

    ngx_memzero(&utf8, sizeof(ngx_chat_utf8_t));

    if (ngx_chat_utf8_validate(&utf8, p, len) != NGX_OK
        || ngx_chat_utf8_complete(&utf8) != NGX_OK)
    {
        ngx_http_finalize_request(r,
                  ngx_chat_http_error(r, NGX_HTTP_BAD_REQUEST,
                                      NGX_CHAT_ERR_BAD_REQUEST,
                                      "body is not UTF-8", NULL));
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    return NGX_OK;

failed:

    ngx_chat_http_failed(r);

    return NGX_ERROR;
}


void
ngx_chat_http_failed(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r,
              ngx_chat_http_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  NGX_CHAT_ERR_INTERNAL, "internal error",
                                  NULL));
}


/*
 * A store operation for the request, which waits for it: the store may
 * answer at once, or after the request has gone.  NULL: the request has
 * been answered.
 */

ngx_chat_store_op_t *
ngx_chat_http_op(ngx_http_request_t *r, ngx_chat_room_t *room,
    ngx_chat_request_t *req, ngx_chat_store_done_pt done)
{
    ngx_pool_cleanup_t   *cln;
    ngx_chat_store_op_t  *op;

    op = ngx_chat_store_op(room, req, r->connection->log);
    cln = op ? ngx_pool_cleanup_add(r->pool, 0) : NULL;

    if (cln == NULL) {
        if (op) {
            ngx_chat_store_op_done(op);

        } else if (room) {
            ngx_chat_hub_release(room);
        }

        ngx_chat_http_failed(r);
        return NULL;
    }

    cln->handler = ngx_chat_http_op_cleanup;
    cln->data = op;

    op->data = r;
    op->done = done;

    r->main->count++;

    return op;
}


/* the store has answered: the request, which no longer waits */

ngx_http_request_t *
ngx_chat_http_op_request(ngx_chat_store_op_t *op)
{
    ngx_http_request_t  *r;
    ngx_pool_cleanup_t  *cln;

    r = op->data;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_chat_http_op_cleanup && cln->data == op) {
            cln->data = NULL;
        }
    }

    return r;
}


/* the request went away first: the store finishes without telling it */

static void
ngx_chat_http_op_cleanup(void *data)
{
    ngx_chat_store_op_t *op = data;

    if (op) {
        op->data = NULL;

        /* the request's log goes with its connection */
        op->log = ngx_cycle->log;
    }
}


ngx_uint_t
ngx_chat_http_status(ngx_uint_t code)
{
    if (code >= sizeof(ngx_chat_http_statuses) / sizeof(ngx_uint_t)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_http_statuses[code];
}


ngx_int_t
ngx_chat_http_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t code, char *message, ngx_str_t *id)
{
    return ngx_chat_http_reply(r, status,
                               ngx_chat_encode_error(code, message, id,
                                                     r->connection->log));
}


ngx_int_t
ngx_chat_http_reply(ngx_http_request_t *r, ngx_uint_t status,
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
