
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_JWT_H_INCLUDED_
#define _NGX_CHAT_JWT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <cjson/cJSON.h>
#include "ngx_chat.h"


cJSON *ngx_chat_jwt_verify(ngx_str_t *secret, ngx_str_t *token, time_t now,
    ngx_log_t *log);
ngx_int_t ngx_chat_jwt_claims(cJSON *payload, ngx_pool_t *pool,
    ngx_str_t *user, ngx_str_t *rooms, ngx_log_t *log);
ngx_uint_t ngx_chat_jwt_join(ngx_str_t *secret, ngx_str_t *token,
    ngx_str_t *user, ngx_str_t *room, ngx_log_t *log);


#endif /* _NGX_CHAT_JWT_H_INCLUDED_ */
