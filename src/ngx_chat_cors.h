
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_CORS_H_INCLUDED_
#define _NGX_CHAT_CORS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"


ngx_int_t ngx_chat_cors_headers(ngx_http_request_t *r);
ngx_int_t ngx_chat_cors_preflight(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf);


#endif /* _NGX_CHAT_CORS_H_INCLUDED_ */
