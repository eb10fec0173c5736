
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_variables.h"
#include "ngx_chat_jwt.h"


/*
 * $chat_jwt_user and $chat_jwt_rooms, from the connection token of the
 * request.  nginx evaluates a variable again for each complex value that
 * names it (chat_user, chat_rooms, chat_limit_conn): the claims of the
 * request the worker verified last are kept, so a handshake verifies its
 * token once.
 */

typedef struct {
    ngx_http_request_t         *r;
    ngx_atomic_uint_t           number;     /* the connection's */
    ngx_uint_t                  requests;   /* its requests so far */
    ngx_str_t                   claim[2];   /* in r's pool */
} ngx_chat_variables_last_t;

static ngx_int_t ngx_chat_variable_jwt(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_chat_variables_find(ngx_http_request_t *r,
    ngx_str_t *token);


static ngx_chat_variables_last_t  ngx_chat_variables_last;


static ngx_http_variable_t  ngx_chat_vars[] = {

    { ngx_string("chat_jwt_user"), NULL, ngx_chat_variable_jwt, 0, 0, 0 },

    { ngx_string("chat_jwt_rooms"), NULL, ngx_chat_variable_jwt, 1, 0, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_chat_variables_add(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_chat_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_variable_jwt(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    cJSON                      *payload;
    ngx_int_t                   rc;
    ngx_str_t                   token, *claim;
    ngx_chat_main_conf_t       *cmcf;
    ngx_chat_variables_last_t  *last;

    last = &ngx_chat_variables_last;
    claim = last->claim;

    if (last->r == r && last->number == r->connection->number
        && last->requests == r->connection->requests)
    {
        goto done;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_chat_module);

    last->r = NULL;

    ngx_str_null(&claim[0]);
    ngx_str_null(&claim[1]);

    if (cmcf->jwt_secret.len && ngx_chat_variables_find(r, &token) == NGX_OK)
    {
        payload = ngx_chat_jwt_verify(&cmcf->jwt_secret, &token, ngx_time(),
                                      r->connection->log);
        rc = NGX_DECLINED;

        if (payload) {
            rc = ngx_chat_jwt_claims(payload, r->pool, &claim[0], &claim[1],
                                     r->connection->log);
            cJSON_Delete(payload);
        }

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc != NGX_OK) {
            ngx_str_null(&claim[0]);
            ngx_str_null(&claim[1]);
        }
    }

    last->r = r;
    last->number = r->connection->number;
    last->requests = r->connection->requests;

done:

    v->data = claim[data].data;
    v->len = claim[data].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* did the request carry a token: the handshake counts it when refused */

ngx_uint_t
ngx_chat_variables_token(ngx_http_request_t *r)
{
    ngx_str_t  token;

    return ngx_chat_variables_find(r, &token) == NGX_OK;
}


/*
 * "Authorization: Bearer", else ?token= (a browser's WebSocket cannot
 * send headers), else ?access_token= (what SignalR clients send).
 */

static ngx_int_t
ngx_chat_variables_find(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char           *p, *last;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h && h->value.len > 7
        && ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) == 0)
    {
        p = h->value.data + 7;
        last = h->value.data + h->value.len;

        while (p < last && *p == ' ') {
            p++;
        }

        while (last > p && last[-1] == ' ') {
            last--;
        }

        token->data = p;
        token->len = last - p;

        return token->len ? NGX_OK : NGX_DECLINED;
    }

    if (ngx_http_arg(r, (u_char *) "token", 5, token) == NGX_OK
        && token->len)
    {
        return NGX_OK;
    }

    if (ngx_http_arg(r, (u_char *) "access_token", 12, token) == NGX_OK
        && token->len)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}

