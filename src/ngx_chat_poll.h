
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_POLL_H_INCLUDED_
#define _NGX_CHAT_POLL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"


/* how long a poll waits, at most and when it does not say */
#define NGX_CHAT_POLL_TIMEOUT     25


ngx_int_t ngx_chat_poll_handler(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf);


#endif /* _NGX_CHAT_POLL_H_INCLUDED_ */
