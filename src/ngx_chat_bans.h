
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_BANS_H_INCLUDED_
#define _NGX_CHAT_BANS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"


/* the bans a worker keeps in embedded mode: past it, the oldest goes */
#define NGX_CHAT_BANS_MAX  10000


ngx_int_t ngx_chat_bans_add(ngx_str_t *room, ngx_str_t *user,
    uint64_t seconds);
ngx_uint_t ngx_chat_bans_find(ngx_str_t *room, ngx_str_t *user);


#endif /* _NGX_CHAT_BANS_H_INCLUDED_ */
