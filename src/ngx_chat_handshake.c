
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>
#include "ngx_chat_handshake.h"
#include "ngx_chat_status.h"


/* the WebSocket opening handshake, RFC 6455 section 4.2 */

#define NGX_CHAT_HANDSHAKE_GUID  "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


static ngx_int_t ngx_chat_handshake_test(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf);
static ngx_int_t ngx_chat_handshake_upgrade(ngx_http_request_t *r,
    char *name, char *value);
static ngx_uint_t ngx_chat_handshake_origin(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf, ngx_str_t *value);


/*
 * A refused upgrade answers with "Connection: close" and closes: the
 * client asked for a WebSocket and waits for nothing else on it.
 */

ngx_int_t
ngx_chat_handshake_check(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf)
{
    ngx_int_t  rc;

    rc = ngx_chat_handshake_test(r, lcf);

    if (rc != NGX_OK) {
        r->keepalive = 0;
    }

    return rc;
}


static ngx_int_t
ngx_chat_handshake_test(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf)
{
    u_char            buf[32];
    ngx_str_t         key, dec;
    ngx_table_elt_t  *h;

    if (r->method != NGX_HTTP_GET) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (r->http_version != NGX_HTTP_VERSION_11
        || !ngx_chat_handshake_has(r, "Upgrade", "websocket")
        || !ngx_chat_handshake_has(r, "Connection", "upgrade"))
    {
        return ngx_chat_handshake_upgrade(r, "Upgrade", "websocket");
    }

    h = ngx_chat_handshake_header(r, "Sec-WebSocket-Version");

    if (h == NULL || h->value.len != 2 || h->value.data[0] != '1'
        || h->value.data[1] != '3')
    {
        return ngx_chat_handshake_upgrade(r, "Sec-WebSocket-Version", "13");
    }

    h = ngx_chat_handshake_header(r, "Sec-WebSocket-Key");
    if (h == NULL) {
        return NGX_HTTP_BAD_REQUEST;
    }

    key = h->value;
    dec.data = buf;

    if (key.len != 24 || key.data[22] != '=' || key.data[23] != '='
        || ngx_decode_base64(&dec, &key) != NGX_OK || dec.len != 16)
    {
        return NGX_HTTP_BAD_REQUEST;
    }

    return ngx_chat_handshake_origin_check(r, lcf);
}


/* whatever the transport: NGX_OK or 403 */

ngx_int_t
ngx_chat_handshake_origin_check(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf)
{
    ngx_table_elt_t  *h;

    h = ngx_chat_handshake_header(r, "Origin");

    if (h && !ngx_chat_handshake_origin(r, lcf, &h->value)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: handshake from origin \"%V\" refused",
                      &h->value);

        ngx_chat_stat_inc(refused_origin);
        return NGX_HTTP_FORBIDDEN;
    }

    return NGX_OK;
}


/*
 * A browser's page may open a WebSocket to any site, and the browser
 * sends that site's cookies along: unless chat_allowed_origins says
 * otherwise, only a page of this site itself, the Origin's host and port
 * being the request's Host, may.
 */

static ngx_uint_t
ngx_chat_handshake_origin(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf,
    ngx_str_t *value)
{
    u_char      *p, *last;
    ngx_str_t   *origin, *host;
    ngx_uint_t   i;

    if (lcf->origins) {
        origin = lcf->origins->elts;

        for (i = 0; i < lcf->origins->nelts; i++) {

            if (origin[i].len == 1 && origin[i].data[0] == '*') {
                return 1;
            }

            if (origin[i].len == value->len
                && ngx_strncasecmp(origin[i].data, value->data, value->len)
                   == 0)
            {
                return 1;
            }
        }

        return 0;
    }

    if (r->headers_in.host == NULL) {
        return 0;
    }

    host = &r->headers_in.host->value;
    last = value->data + value->len;

    p = ngx_strlcasestrn(value->data, last, (u_char *) "://", 3 - 1);
    if (p == NULL) {
        return 0;
    }

    p += 3;

    return (size_t) (last - p) == host->len
           && ngx_strncasecmp(p, host->data, host->len) == 0;
}


/* the 101 as it goes out: not a WebSocket frame, sent as it is */

ngx_chat_frame_t *
ngx_chat_handshake_response(ngx_http_request_t *r)
{
    u_char             hash[20];
    ngx_str_t          src, dst;
    ngx_sha1_t         sha1;
    ngx_table_elt_t   *key;
    ngx_chat_frame_t  *f;

    static u_char  head[] = "HTTP/1.1 101 Switching Protocols" CRLF
                            "Upgrade: websocket" CRLF
                            "Connection: upgrade" CRLF
                            "Sec-WebSocket-Accept: ";

    /* checked by ngx_chat_handshake_check() */

    key = ngx_chat_handshake_header(r, "Sec-WebSocket-Key");

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, key->value.data, key->value.len);
    ngx_sha1_update(&sha1, NGX_CHAT_HANDSHAKE_GUID,
                    sizeof(NGX_CHAT_HANDSHAKE_GUID) - 1);
    ngx_sha1_final(hash, &sha1);

    f = ngx_chat_frame_alloc(sizeof(head) - 1 + ngx_base64_encoded_length(20)
                             + sizeof(CRLF CRLF) - 1, r->connection->log);
    if (f == NULL) {
        return NULL;
    }

    src.data = hash;
    src.len = 20;
    dst.data = ngx_cpymem(f->payload, head, sizeof(head) - 1);

    ngx_encode_base64(&dst, &src);

    f->last = ngx_cpymem(dst.data + dst.len, CRLF CRLF, sizeof(CRLF CRLF) - 1);

    return f;
}


/* 426, with the header that tells the client what to do */

static ngx_int_t
ngx_chat_handshake_upgrade(ngx_http_request_t *r, char *name, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *) value;
    h->value.len = ngx_strlen(value);

    ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");

    return 426;
}


ngx_table_elt_t *
ngx_chat_handshake_header(ngx_http_request_t *r, char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/* does any header "name" hold "token" in its comma separated list */

ngx_uint_t
ngx_chat_handshake_has(ngx_http_request_t *r, char *name, char *token)
{
    u_char           *p, *last, *start;
    size_t            len, tlen;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    tlen = ngx_strlen(token);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != len
            || ngx_strncasecmp(h[i].key.data, (u_char *) name, len) != 0)
        {
            continue;
        }

        p = h[i].value.data;
        last = p + h[i].value.len;

        while (p < last) {

            while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
                p++;
            }

            start = p;

            while (p < last && *p != ',' && *p != ' ' && *p != '\t') {
                p++;
            }

            if ((size_t) (p - start) == tlen
                && ngx_strncasecmp(start, (u_char *) token, tlen) == 0)
            {
                return 1;
            }

            while (p < last && *p != ',') {
                p++;
            }
        }
    }
}
