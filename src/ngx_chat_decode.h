
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_DECODE_H_INCLUDED_
#define _NGX_CHAT_DECODE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_protocol.h"


ngx_int_t ngx_chat_decode_request(u_char *data, size_t len,
    ngx_chat_request_t *req, ngx_uint_t op);
ngx_int_t ngx_chat_decode_command(u_char *data, size_t len,
    ngx_chat_request_t *req);
void ngx_chat_decode_free(ngx_chat_request_t *req);
ngx_int_t ngx_chat_decode_user(ngx_str_t *user);
cJSON *ngx_chat_decode_json(u_char *data, size_t len, char **reason);

cJSON *ngx_chat_decode_message(ngx_str_t *room, u_char *data, size_t len,
    ngx_chat_msg_t *msg);
ngx_chat_frame_t *ngx_chat_decode_stored(ngx_str_t *room, u_char *data,
    size_t len, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_decode_typing(ngx_str_t *room, u_char *data,
    size_t len, ngx_str_t *user, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_decode_presence(ngx_str_t *room, u_char *data,
    size_t len, ngx_str_t *user, ngx_log_t *log);


#endif /* _NGX_CHAT_DECODE_H_INCLUDED_ */
