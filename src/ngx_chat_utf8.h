
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_UTF8_H_INCLUDED_
#define _NGX_CHAT_UTF8_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Incremental UTF-8 validation: the state survives between calls, so a
 * message may be checked chunk by chunk as its fragments arrive.
 * The state is 0 between complete characters.
 */

typedef struct {
    uint8_t   need;       /* continuation bytes still expected */
    uint8_t   lo;         /* allowed range of the next byte */
    uint8_t   hi;
} ngx_chat_utf8_t;


ngx_int_t ngx_chat_utf8_validate(ngx_chat_utf8_t *st, u_char *p, size_t len);
ngx_int_t ngx_chat_utf8_complete(ngx_chat_utf8_t *st);
size_t ngx_chat_utf8_seq(u_char *p, u_char *last);


#endif /* _NGX_CHAT_UTF8_H_INCLUDED_ */
