
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_echo.h"
#include "ngx_chat_handshake.h"
#include "ngx_chat_ws.h"


/*
 * chat_echo: the WebSocket layer alone, with the limits of a chat
 * location, echoing every text and binary message as one frame, for
 * conformance suites.
 */

static void ngx_chat_echo_message(ngx_chat_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);


ngx_int_t
ngx_chat_echo_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_chat_ws_t        *ws;
    ngx_chat_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_chat_module);

    rc = ngx_chat_handshake_check(r, lcf);
    if (rc != NGX_OK) {
        return rc;
    }

    ws = ngx_chat_ws_create(r, lcf);
    if (ws == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ws->parser.allow_binary = 1;
    ws->on_message = ngx_chat_echo_message;

    if (ngx_chat_ws_start(ws) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DONE;
}


static void
ngx_chat_echo_message(ngx_chat_ws_t *ws, ngx_uint_t opcode, u_char *data,
    size_t len)
{
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(len, ws->connection->log);
    if (f == NULL) {
        ws->connection->error = 1;
        return;
    }

    f->last = ngx_cpymem(f->payload, data, len);
    ngx_chat_frame_seal(f, opcode);

    (void) ngx_chat_ws_answer(ws, f);
    ngx_chat_frame_unref(f);
}
