
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_HANDSHAKE_H_INCLUDED_
#define _NGX_CHAT_HANDSHAKE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_frame.h"


ngx_int_t ngx_chat_handshake_check(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf);
ngx_int_t ngx_chat_handshake_origin_check(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf);
ngx_chat_frame_t *ngx_chat_handshake_response(ngx_http_request_t *r);
ngx_table_elt_t *ngx_chat_handshake_header(ngx_http_request_t *r,
    char *name);
ngx_uint_t ngx_chat_handshake_has(ngx_http_request_t *r, char *name,
    char *token);


#endif /* _NGX_CHAT_HANDSHAKE_H_INCLUDED_ */
