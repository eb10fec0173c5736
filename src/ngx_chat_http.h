
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_HTTP_H_INCLUDED_
#define _NGX_CHAT_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_frame.h"
#include "ngx_chat_store.h"


ngx_int_t ngx_chat_http_post(ngx_http_request_t *r, size_t max,
    ngx_http_client_body_handler_pt handler);
ngx_int_t ngx_chat_http_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body);
void ngx_chat_http_failed(ngx_http_request_t *r);
ngx_chat_store_op_t *ngx_chat_http_op(ngx_http_request_t *r,
    ngx_chat_room_t *room, ngx_chat_request_t *req,
    ngx_chat_store_done_pt done);
ngx_http_request_t *ngx_chat_http_op_request(ngx_chat_store_op_t *op);
ngx_uint_t ngx_chat_http_status(ngx_uint_t code);
ngx_int_t ngx_chat_http_error(ngx_http_request_t *r, ngx_uint_t status,
    ngx_uint_t code, char *message, ngx_str_t *id);
ngx_int_t ngx_chat_http_reply(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chat_frame_t *f);


#endif /* _NGX_CHAT_HTTP_H_INCLUDED_ */
