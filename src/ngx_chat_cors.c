
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_cors.h"
#include "ngx_chat_handshake.h"


/*
 * Cross-origin pages: an HTTP answer to an Origin chat_allowed_origins
 * allows (the handshake's check refuses the others with 403) says so,
 * credentials included, and preflights are answered.
 */


static ngx_int_t ngx_chat_cors_add(ngx_http_request_t *r, char *key,
    ngx_str_t *value);


ngx_int_t
ngx_chat_cors_headers(ngx_http_request_t *r)
{
    ngx_str_t         value;
    ngx_table_elt_t  *origin;

    origin = ngx_chat_handshake_header(r, "Origin");

    if (origin == NULL) {
        return NGX_OK;
    }

    ngx_str_set(&value, "true");

    if (ngx_chat_cors_add(r, "Access-Control-Allow-Origin", &origin->value)
        != NGX_OK
        || ngx_chat_cors_add(r, "Access-Control-Allow-Credentials", &value)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&value, "Origin");

    return ngx_chat_cors_add(r, "Vary", &value);
}


ngx_int_t
ngx_chat_cors_preflight(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf)
{
    ngx_int_t  rc;
    ngx_str_t  value;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_handshake_origin_check(r, lcf);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_chat_cors_headers(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&value, "GET, POST, OPTIONS");

    if (ngx_chat_cors_add(r, "Access-Control-Allow-Methods", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&value, "Authorization, Content-Type, Last-Event-ID");

    if (ngx_chat_cors_add(r, "Access-Control-Allow-Headers", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_str_set(&value, "600");

    if (ngx_chat_cors_add(r, "Access-Control-Max-Age", &value) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);
}


static ngx_int_t
ngx_chat_cors_add(ngx_http_request_t *r, char *key, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;

    return NGX_OK;
}
