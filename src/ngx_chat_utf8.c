
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_utf8.h"


static ngx_int_t ngx_chat_utf8_lead(ngx_chat_utf8_t *st, u_char c);


/*
 * Returns NGX_OK while the bytes seen so far are a valid prefix of UTF-8
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF),
 * NGX_ERROR as soon as they cannot be.
 */

ngx_int_t
ngx_chat_utf8_validate(ngx_chat_utf8_t *st, u_char *p, size_t len)
{
    u_char  c, *last;

    last = p + len;

    while (p < last) {

        if (st->need == 0) {

            while (p < last && *p < 0x80) {
                p++;
            }

            if (p == last) {
                break;
            }

            if (ngx_chat_utf8_lead(st, *p++) != NGX_OK) {
                return NGX_ERROR;
            }

            continue;
        }

        c = *p++;

        if (c < st->lo || c > st->hi) {
            return NGX_ERROR;
        }

        st->need--;
        st->lo = 0x80;
        st->hi = 0xbf;
    }

    return NGX_OK;
}


ngx_int_t
ngx_chat_utf8_complete(ngx_chat_utf8_t *st)
{
    return st->need == 0 ? NGX_OK : NGX_ERROR;
}


/* the length of the valid multi-byte sequence at p, 0 if there is none */

size_t
ngx_chat_utf8_seq(u_char *p, u_char *last)
{
    size_t           n;
    ngx_chat_utf8_t  st;

    if (ngx_chat_utf8_lead(&st, *p) != NGX_OK
        || (size_t) (last - p) <= st.need)
    {
        return 0;
    }

    n = st.need + 1;

    if (ngx_chat_utf8_validate(&st, p + 1, st.need) != NGX_OK) {
        return 0;
    }

    return n;
}


static ngx_int_t
ngx_chat_utf8_lead(ngx_chat_utf8_t *st, u_char c)
{
    if (c >= 0xc2 && c <= 0xdf) {
        st->need = 1;
        st->lo = 0x80;
        st->hi = 0xbf;

    } else if (c >= 0xe0 && c <= 0xef) {
        st->need = 2;
        st->lo = (c == 0xe0) ? 0xa0 : 0x80;
        st->hi = (c == 0xed) ? 0x9f : 0xbf;

    } else if (c >= 0xf0 && c <= 0xf4) {
        st->need = 3;
        st->lo = (c == 0xf0) ? 0x90 : 0x80;
        st->hi = (c == 0xf4) ? 0x8f : 0xbf;

    } else {
        return NGX_ERROR;
    }

    return NGX_OK;
}
