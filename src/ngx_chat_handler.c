
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_handler.h"
#include "ngx_chat_handshake.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_session.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_status.h"
#include "ngx_chat_variables.h"
#include "ngx_chat_limit.h"


/*
 * The chat location: the client's user, then a session over the
 * transport the request asks for (a WebSocket), speaking the JSON
 * protocol.
 */

static void ngx_chat_handler_message(ngx_chat_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_chat_handler_cleanup(ngx_chat_ws_t *ws);


ngx_int_t
ngx_chat_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_str_t               user, rooms;
    ngx_chat_ws_t          *ws;
    ngx_chat_session_t     *s;
    ngx_chat_loc_conf_t    *lcf;
    ngx_chat_limit_held_t  *limit;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    rc = ngx_chat_handshake_check(r, lcf);
    if (rc != NGX_OK) {
        return rc;
    }

    if (lcf->user == NULL
        || ngx_http_complex_value(r, lcf->user, &user) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_decode_user(&user);

    if (rc != NGX_OK) {
        r->keepalive = 0;

        if (rc == NGX_DECLINED) {
            if (ngx_chat_variables_token(r)) {
                ngx_chat_stat_inc(refused_token);
            }

            return NGX_HTTP_UNAUTHORIZED;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: invalid user id of %uz bytes (too long, "
                      "not UTF-8 or a control character)", user.len);
        return NGX_HTTP_BAD_REQUEST;
    }

    if (lcf->rooms) {
        if (ngx_http_complex_value(r, lcf->rooms, &rooms) != NGX_OK
            || !ngx_chat_rooms_check(&rooms, r->connection->log))
        {
            r->keepalive = 0;
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* the last check: a handshake refused for anything else takes none */

    rc = ngx_chat_limit_take(r, lcf->limits, &limit);
    if (rc != NGX_OK) {
        r->keepalive = 0;
        return rc;
    }

    ws = ngx_chat_ws_create(r, lcf);
    if (ws == NULL) {
        goto failed;
    }

    s = ngx_chat_session_create(r->connection->pool, &user,
                                lcf->rooms ? &rooms : NULL,
                                r->connection->number, lcf,
                                &ngx_chat_ws_transport,
                                &ngx_chat_encode_codec, ws,
                                r->connection->log);
    if (s == NULL) {
        goto failed;
    }

    ws->data = s;
    ws->on_message = ngx_chat_handler_message;

    if (ngx_chat_ws_start(ws) != NGX_OK) {
        goto failed;
    }

    ws->on_cleanup = ngx_chat_handler_cleanup;

    ngx_chat_session_start(s, limit);

    return NGX_DONE;

failed:

    ngx_chat_limit_release(limit);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static void
ngx_chat_handler_message(ngx_chat_ws_t *ws, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    ngx_chat_request_t  req;

    (void) ngx_chat_decode_request(data, len, &req, 0);

    ngx_chat_session_request(ws->data, &req);

    ngx_chat_decode_free(&req);
}


static void
ngx_chat_handler_cleanup(ngx_chat_ws_t *ws)
{
    ngx_chat_session_close(ws->data);
}
