/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_ws.h"
#include "ngx_chat_ws_close.h"


/*
 * The end of a WebSocket connection: the close frame, the drain of what
 * the client still sends until it closes too, and the release.
 */

#define NGX_CHAT_WS_DISCARD   4096


static void ngx_chat_ws_drain_handler(ngx_event_t *rev);
static void ngx_chat_ws_cleanup(ngx_chat_ws_t *ws);


static u_char  ngx_chat_ws_discard[NGX_CHAT_WS_DISCARD];


void
ngx_chat_ws_close(ngx_chat_ws_t *ws, ngx_uint_t code, char *reason)
{
    ngx_chat_frame_t  *f;
    ngx_connection_t  *c;

    if (ws->closing) {
        return;
    }

    c = ws->connection;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "chat: close %ui \"%s\"", code, reason);

    if (ws->sse) {
        f = ngx_chat_sse_close(code, reason, c->log);

    } else if (code == NGX_CHAT_CLOSE_NO_STATUS) {
        f = ngx_chat_frame_control(NGX_CHAT_OP_CLOSE, NULL, 0, c->log);

    } else {
        f = ngx_chat_frame_close(code, reason, c->log);
    }

    if (f && ngx_chat_out_push(&ws->out, f, 1, c->log) != NGX_OK) {
        c->error = 1;
    }

    ws->closing = 1;

    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


/*
 * Everything queued went out after a close frame: stop writing and read
 * until the client closes too, so that unread input does not turn our
 * close into a reset that could destroy the close frame on its way.
 */

void
ngx_chat_ws_shutdown(ngx_chat_ws_t *ws)
{
    ngx_connection_t  *c;

    c = ws->connection;

    if (ws->shut) {
        return;
    }

    ws->shut = 1;

    if (c->ssl || shutdown(c->fd, SHUT_WR) == -1) {
        ngx_chat_ws_finalize(ws);
        return;
    }

    c->read->handler = ngx_chat_ws_drain_handler;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    ngx_add_timer(c->read, NGX_CHAT_WS_LINGER);

    ngx_chat_ws_drain_handler(c->read);
}


static void
ngx_chat_ws_drain_handler(ngx_event_t *rev)
{
    ssize_t            n;
    ngx_chat_ws_t     *ws;
    ngx_connection_t  *c;

    c = rev->data;
    ws = c->data;

    if (rev->timedout || c->close) {
        ngx_chat_ws_finalize(ws);
        return;
    }

    do {
        n = c->recv(c, ngx_chat_ws_discard, sizeof(ngx_chat_ws_discard));

        if (n == 0 || n == NGX_ERROR) {
            ngx_chat_ws_finalize(ws);
            return;
        }

    } while (n > 0);

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_chat_ws_finalize(ws);
    }
}


void
ngx_chat_ws_finalize(ngx_chat_ws_t *ws)
{
    ngx_connection_t  *c;

    c = ws->connection;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "chat: finalize websocket");

    c->log->action = "closing websocket";

    ngx_chat_ws_cleanup(ws);
    ngx_http_close_connection(c);
}


void
ngx_chat_ws_request_cleanup(void *data)
{
    ngx_chat_ws_t *ws = data;

    /* the request went before the upgrade was complete */

    if (ws->request) {
        ngx_chat_ws_cleanup(ws);
    }
}


static void
ngx_chat_ws_cleanup(ngx_chat_ws_t *ws)
{
    if (ws->on_cleanup) {
        ws->on_cleanup(ws);
        ws->on_cleanup = NULL;
    }

    ngx_chat_out_free(&ws->out);

    if (ws->msg) {
        ngx_free(ws->msg);
        ws->msg = NULL;
    }

    if (ws->early) {
        ngx_free(ws->early);
        ws->early = NULL;
    }
}
