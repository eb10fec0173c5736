
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_client.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_status.h"
#include "ngx_chat_variables.h"
#include "ngx_chat_http.h"


/*
 * Who the client of a request is, whatever the transport: its user
 * (chat_user) and the rooms chat_rooms allows it (NULL: every room).
 * Not NGX_OK: the status to refuse the request with.
 */

ngx_int_t
ngx_chat_client_user(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf,
    ngx_str_t *user, ngx_str_t **rooms)
{
    ngx_int_t   rc;
    ngx_str_t  *list;

    if (lcf->user == NULL
        || ngx_http_complex_value(r, lcf->user, user) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_decode_user(user);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            if (ngx_chat_variables_token(r)) {
                ngx_chat_stat_inc(refused_token);
            }

            return NGX_HTTP_UNAUTHORIZED;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: invalid user id of %uz bytes (too long, "
                      "not UTF-8 or a control character)", user->len);
        return NGX_HTTP_BAD_REQUEST;
    }

    *rooms = NULL;

    if (lcf->rooms) {
        list = ngx_palloc(r->pool, sizeof(ngx_str_t));

        if (list == NULL
            || ngx_http_complex_value(r, lcf->rooms, list) != NGX_OK
            || !ngx_chat_rooms_check(list, r->connection->log))
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *rooms = list;
    }

    return NGX_OK;
}


/* a refusal of ngx_chat_client_user() as the HTTP transports answer it */

ngx_int_t
ngx_chat_client_refused(ngx_http_request_t *r, ngx_int_t rc)
{
    switch (rc) {

    case NGX_HTTP_UNAUTHORIZED:
        return ngx_chat_http_error(r, rc, NGX_CHAT_ERR_FORBIDDEN,
                                   "no user: chat_user is empty", NULL);

    case NGX_HTTP_BAD_REQUEST:
        return ngx_chat_http_error(r, rc, NGX_CHAT_ERR_BAD_REQUEST,
                                   "invalid user id", NULL);

    default:
        return ngx_chat_http_error(r, rc, NGX_CHAT_ERR_INTERNAL,
                                   "internal error", NULL);
    }
}
