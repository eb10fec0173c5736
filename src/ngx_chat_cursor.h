
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_CURSOR_H_INCLUDED_
#define _NGX_CHAT_CURSOR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"


/* the widest cursor of one room in a Last-Event-ID: 20 digits and ',' */
#define NGX_CHAT_CURSOR_SEQ_LEN   (NGX_INT64_LEN + 1)


/* where a client of an HTTP transport is in one room */

typedef struct {
    ngx_str_t                   room;
    uint64_t                    seq;
    unsigned                    has_seq:1;
} ngx_chat_cursor_t;


ngx_int_t ngx_chat_cursor_rooms(ngx_pool_t *pool, ngx_str_t *value,
    ngx_uint_t max, ngx_array_t *list, char **reason);
ngx_int_t ngx_chat_cursor_since(ngx_pool_t *pool, ngx_str_t *value,
    ngx_uint_t max, ngx_array_t *list, ngx_uint_t add, char **reason);
ngx_int_t ngx_chat_cursor_positions(ngx_str_t *value, ngx_array_t *list,
    char **reason);
void ngx_chat_cursor_update(ngx_array_t *list, ngx_queue_t *members);
size_t ngx_chat_cursor_len(ngx_array_t *list);
u_char *ngx_chat_cursor_write(u_char *p, ngx_array_t *list);


#endif /* _NGX_CHAT_CURSOR_H_INCLUDED_ */
