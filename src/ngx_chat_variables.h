
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_VARIABLES_H_INCLUDED_
#define _NGX_CHAT_VARIABLES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_chat_variables_add(ngx_conf_t *cf);
ngx_uint_t ngx_chat_variables_token(ngx_http_request_t *r);


#endif /* _NGX_CHAT_VARIABLES_H_INCLUDED_ */
