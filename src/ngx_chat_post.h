
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_POST_H_INCLUDED_
#define _NGX_CHAT_POST_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"


ngx_int_t ngx_chat_post_handler(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf);
void ngx_chat_post_seen(ngx_str_t *user, ngx_chat_loc_conf_t *lcf);


#endif /* _NGX_CHAT_POST_H_INCLUDED_ */
