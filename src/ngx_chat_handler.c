
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_handler.h"
#include "ngx_chat_handshake.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_ws_sse.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_client.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_session.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_status.h"
#include "ngx_chat_variables.h"
#include "ngx_chat_limit.h"
#include "ngx_chat_sse.h"
#include "ngx_chat_cursor.h"
#include "ngx_chat_http.h"
#include "ngx_chat_post.h"
#include "ngx_chat_cors.h"
#include "ngx_chat_poll.h"


/*
 * The chat location: the transport the request asks for (a WebSocket, a
 * Server-Sent Events stream, a POSTed request), and for a connection
 * that stays, the client's user and a session over it, speaking the JSON
 * protocol.
 */

static ngx_int_t ngx_chat_handler_session(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf, ngx_chat_sse_t *sse);
static void ngx_chat_handler_message(ngx_chat_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
static void ngx_chat_handler_cleanup(ngx_chat_ws_t *ws);


ngx_int_t
ngx_chat_handler(ngx_http_request_t *r)
{
    char                 *reason;
    ngx_int_t             rc;
    ngx_str_t             value;
    ngx_uint_t            status;
    ngx_chat_sse_t       *sse;
    ngx_chat_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    /* a WebSocket handshake, right or wrong, is checked as one */

    if (ngx_chat_handshake_has(r, "Upgrade", "websocket")) {
        goto websocket;
    }

    if (r->method == NGX_HTTP_POST) {
        return ngx_chat_post_handler(r, lcf);
    }

    if (r->method == NGX_HTTP_OPTIONS) {
        return ngx_chat_cors_preflight(r, lcf);
    }

    if (r->method == NGX_HTTP_GET
        && ngx_http_arg(r, (u_char *) "poll", 4, &value) == NGX_OK)
    {
        return ngx_chat_poll_handler(r, lcf);
    }

    if (r->method != NGX_HTTP_GET
        || !ngx_chat_handshake_has(r, "Accept", "text/event-stream"))
    {
        goto websocket;
    }

    /* an event stream: the connection becomes it, as it would a WebSocket */

    r->keepalive = 0;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_handshake_origin_check(r, lcf);
    if (rc != NGX_OK) {
        return rc;
    }

    if (r->http_version > NGX_HTTP_VERSION_11) {
        return ngx_chat_http_error(r, NGX_HTTP_VERSION_NOT_SUPPORTED,
                                   NGX_CHAT_ERR_BAD_REQUEST,
                                   "event streams need HTTP/1.x", NULL);
    }

    sse = ngx_chat_sse_create(r, lcf, &status, &reason);
    if (sse == NULL) {
        return ngx_chat_http_error(r, status, NGX_CHAT_ERR_BAD_REQUEST,
                                   reason, NULL);
    }

    return ngx_chat_handler_session(r, lcf, sse);

websocket:

    rc = ngx_chat_handshake_check(r, lcf);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_chat_handler_session(r, lcf, NULL);
}


static ngx_int_t
ngx_chat_handler_session(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf,
    ngx_chat_sse_t *sse)
{
    ngx_int_t               rc;
    ngx_str_t               user, *rooms;
    ngx_uint_t              i;
    ngx_chat_ws_t          *ws;
    ngx_chat_cursor_t      *cur;
    ngx_chat_session_t     *s;
    ngx_chat_limit_held_t  *limit;

    rc = ngx_chat_client_user(r, lcf, &user, &rooms);
    if (rc != NGX_OK) {
        r->keepalive = 0;
        return rc;
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

    ws->sse = sse;

    s = ngx_chat_session_create(r->connection->pool, &user, rooms,
                                r->connection->number, lcf,
                                sse ? &ngx_chat_ws_sse_transport
                                    : &ngx_chat_ws_transport,
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

    if (sse) {
        ngx_chat_stat_inc(streams);

        cur = sse->rooms.elts;

        for (i = 0; i < sse->rooms.nelts; i++) {
            ngx_chat_session_join(s, &cur[i].room, cur[i].has_seq,
                                  cur[i].seq);
        }
    }

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
    if (ws->sse) {
        ngx_chat_stat_dec(streams);
    }

    ngx_chat_session_close(ws->data);
}
