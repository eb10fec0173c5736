
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_CLIENT_H_INCLUDED_
#define _NGX_CHAT_CLIENT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"


ngx_int_t ngx_chat_client_user(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf, ngx_str_t *user, ngx_str_t **rooms);
ngx_int_t ngx_chat_client_refused(ngx_http_request_t *r, ngx_int_t rc);


#endif /* _NGX_CHAT_CLIENT_H_INCLUDED_ */
