
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_ADMIN_H_INCLUDED_
#define _NGX_CHAT_ADMIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"


ngx_int_t ngx_chat_admin_handler(ngx_http_request_t *r);


#endif /* _NGX_CHAT_ADMIN_H_INCLUDED_ */
