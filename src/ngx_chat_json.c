
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_utf8.h"
#include "ngx_chat_json.h"


#define NGX_CHAT_JSON_REPLACEMENT  "\\ufffd"


static u_char  ngx_chat_json_hex[] = "0123456789abcdef";


size_t
ngx_chat_json_escape_len(u_char *src, size_t len)
{
    u_char  *p, *last;
    size_t   n, size;

    if (len == 0) {
        return 0;
    }

    size = 0;
    last = src + len;

    for (p = src; p < last; /* void */) {

        if (*p >= 0x80) {
            n = ngx_chat_utf8_seq(p, last);

            if (n == 0) {
                size += sizeof(NGX_CHAT_JSON_REPLACEMENT) - 1;
                p++;

            } else {
                size += n;
                p += n;
            }

            continue;
        }

        switch (*p) {

        case '"':
        case '\\':
        case '\b':
        case '\f':
        case '\n':
        case '\r':
        case '\t':
            size += 2;
            break;

        default:
            size += (*p < 0x20) ? sizeof("\\u0000") - 1 : 1;
        }

        p++;
    }

    return size;
}


u_char *
ngx_chat_json_escape(u_char *dst, u_char *src, size_t len)
{
    u_char  c, *p, *last;
    size_t  n;

    if (len == 0) {
        return dst;
    }

    last = src + len;

    for (p = src; p < last; /* void */) {
        c = *p;

        if (c >= 0x80) {
            n = ngx_chat_utf8_seq(p, last);

            if (n == 0) {
                dst = ngx_cpymem(dst, NGX_CHAT_JSON_REPLACEMENT,
                                 sizeof(NGX_CHAT_JSON_REPLACEMENT) - 1);
                p++;

            } else {
                dst = ngx_cpymem(dst, p, n);
                p += n;
            }

            continue;
        }

        p++;

        switch (c) {

        case '"':
        case '\\':
            *dst++ = '\\';
            *dst++ = c;
            break;

        case '\b':
            *dst++ = '\\';
            *dst++ = 'b';
            break;

        case '\f':
            *dst++ = '\\';
            *dst++ = 'f';
            break;

        case '\n':
            *dst++ = '\\';
            *dst++ = 'n';
            break;

        case '\r':
            *dst++ = '\\';
            *dst++ = 'r';
            break;

        case '\t':
            *dst++ = '\\';
            *dst++ = 't';
            break;

        default:
            if (c < 0x20) {
                *dst++ = '\\';
                *dst++ = 'u';
                *dst++ = '0';
                *dst++ = '0';
                *dst++ = ngx_chat_json_hex[c >> 4];
                *dst++ = ngx_chat_json_hex[c & 0xf];

            } else {
                *dst++ = c;
            }
        }
    }

    return dst;
}


u_char *
ngx_chat_json_str(u_char *dst, ngx_str_t *s)
{
    *dst++ = '"';
    dst = ngx_chat_json_escape(dst, s->data, s->len);
    *dst++ = '"';

    return dst;
}
