
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_ROOMS_H_INCLUDED_
#define _NGX_CHAT_ROOMS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"


/* the longest chat_rooms value a connection may carry */
#define NGX_CHAT_ROOMS_MAX        16384


ngx_uint_t ngx_chat_rooms_name(u_char *p, size_t len);
ngx_uint_t ngx_chat_rooms_pattern(u_char *p, size_t len);
ngx_uint_t ngx_chat_rooms_check(ngx_str_t *list, ngx_log_t *log);
ngx_uint_t ngx_chat_rooms_allow(ngx_str_t *list, ngx_str_t *room);


#endif /* _NGX_CHAT_ROOMS_H_INCLUDED_ */
