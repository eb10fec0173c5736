
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_ws.h"
#include "ngx_chat_ws_close.h"
#include "ngx_chat_handshake.h"
#include "ngx_chat_status.h"


/*
 * A WebSocket connection once the handshake is accepted: it takes the
 * connection over from the HTTP state machine, parses frames as they
 * arrive, pings a quiet client, closes an idle one, and writes a queue
 * of shared frames.  A Server-Sent Events stream is carried the same way,
 * its events written by ngx_chat_sse.c and queued by ngx_chat_ws_sse.c;
 * what its client sends is read only to see it close.
 */

#define NGX_CHAT_WS_READ      65536
#define NGX_CHAT_WS_READS     16


static void ngx_chat_ws_detach_handler(ngx_event_t *ev);
static ngx_int_t ngx_chat_ws_detach(ngx_chat_ws_t *ws);
static void ngx_chat_ws_read_handler(ngx_event_t *rev);
static void ngx_chat_ws_process(ngx_chat_ws_t *ws, u_char *p, u_char *last);
static ngx_int_t ngx_chat_ws_data(ngx_chat_ws_t *ws,
    ngx_chat_frame_event_t *ev);
static void ngx_chat_ws_control(ngx_chat_ws_t *ws,
    ngx_chat_frame_event_t *ev);
static ngx_msec_t ngx_chat_ws_ping_after(ngx_chat_ws_t *ws);
static void ngx_chat_ws_timer(ngx_chat_ws_t *ws);
static void ngx_chat_ws_write_handler(ngx_event_t *wev);
static ngx_int_t ngx_chat_ws_transport_send(void *conn, ngx_chat_frame_t *f);
static ngx_int_t ngx_chat_ws_transport_answer(void *conn,
    ngx_chat_frame_t *f);
static void ngx_chat_ws_transport_close(void *conn, ngx_uint_t code,
    char *reason);
static size_t ngx_chat_ws_transport_backlog(void *conn);
static void ngx_chat_ws_sse_timer(ngx_chat_ws_t *ws);


/* one read buffer per worker: messages are handled before the next read */
static u_char  ngx_chat_ws_buf[NGX_CHAT_WS_READ];

/* every ping is the same two bytes: one frame per worker, never freed */
static ngx_chat_frame_t  *ngx_chat_ws_ping;


/* a session's transport */

ngx_chat_transport_t  ngx_chat_ws_transport = {
    ngx_chat_ws_transport_send,
    ngx_chat_ws_transport_answer,
    ngx_chat_ws_transport_close,
    ngx_chat_ws_transport_backlog
};


ngx_chat_ws_t *
ngx_chat_ws_create(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf)
{
    ngx_chat_ws_t       *ws;
    ngx_pool_cleanup_t  *cln;

    /* on the connection's pool: the request's is freed after the upgrade */

    ws = ngx_pcalloc(r->connection->pool, sizeof(ngx_chat_ws_t));
    if (ws == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_chat_ws_request_cleanup;
    cln->data = ws;

    ws->request = r;
    ws->connection = r->connection;
    ws->conf = lcf;
    ngx_chat_out_init(&ws->out);
    ws->parser.max_size = lcf->max_message_size;

    ngx_http_set_ctx(r, ws, ngx_chat_module);

    return ws;
}


/*
 * Queues the 101 response and takes the connection over from the HTTP
 * state machine.  The request itself goes in the first event after the
 * handler has returned, when nginx no longer looks at it.
 */

ngx_int_t
ngx_chat_ws_start(ngx_chat_ws_t *ws)
{
    ngx_connection_t          *c;
    ngx_chat_frame_t          *f;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = ws->request;
    c = ws->connection;

    f = ws->sse ? ngx_chat_sse_head(r) : ngx_chat_handshake_response(r);
    if (f == NULL) {
        return NGX_ERROR;
    }

    ngx_chat_ws_queue(ws, f, 1);

    /*
     * Small frames, each wanted at once: without this, Nagle holds a frame
     * behind an unacknowledged one until the client's delayed ACK, up to
     * 40 ms.  nginx does the same for upgraded proxied connections.
     */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return NGX_ERROR;
    }

    r->headers_out.status = ws->sse ? NGX_HTTP_OK
                                    : NGX_HTTP_SWITCHING_PROTOCOLS;
    r->header_sent = 1;
    r->keepalive = 0;
    r->lingering_close = 0;
    r->main->count++;

    c->log->action = ws->sse ? "streaming events" : "handling websocket";
    c->idle = 1;
    c->read->handler = ngx_chat_ws_detach_handler;
    c->write->handler = ngx_chat_ws_detach_handler;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    ws->last_read = ngx_current_msec;
    ngx_add_timer(c->read, ngx_min(ngx_chat_ws_ping_after(ws),
                                   ws->conf->idle_timeout));

    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_OK;
}


static void
ngx_chat_ws_detach_handler(ngx_event_t *ev)
{
    ngx_chat_ws_t       *ws;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    c = ev->data;
    r = c->data;
    ws = ngx_http_get_module_ctx(r, ngx_chat_module);

    if (ngx_chat_ws_detach(ws) != NGX_OK) {
        ngx_chat_ws_finalize(ws);
        return;
    }

    ev->handler(ev);
}


/*
 * A kept HTTP request costs several KB (its pool, the header buffers);
 * what the WebSocket needs of it has been copied, so it is freed the way
 * nginx frees one for keep-alive.  The access log line is written now.
 */

static ngx_int_t
ngx_chat_ws_detach(ngx_chat_ws_t *ws)
{
    size_t                  n;
    ngx_int_t               rc;
    ngx_buf_t              *b;
    ngx_chain_t            *cl;
    ngx_connection_t       *c;
    ngx_http_request_t     *r;
    ngx_http_connection_t  *hc;

    r = ws->request;
    c = ws->connection;
    hc = r->http_connection;
    rc = NGX_OK;

    /* frames the client sent along with its request */

    b = r->header_in;
    n = b->last - b->pos;

    if (n && ws->sse == NULL) {
        ws->early = ngx_alloc(n, c->log);

        if (ws->early) {
            ws->early_len = n;
            ngx_memcpy(ws->early, b->pos, n);

        } else {
            rc = NGX_ERROR;
        }
    }

    ws->request = NULL;

    ngx_http_free_request(r, 0);

    c->destroyed = 0;
    c->data = ws;
    c->log->action = ws->sse ? "streaming events" : "handling websocket";

    if (c->buffer && ngx_pfree(c->pool, c->buffer->start) == NGX_OK) {
        c->buffer = NULL;
    }

    for (cl = hc->busy; cl; cl = cl->next) {
        (void) ngx_pfree(c->pool, cl->buf->start);
    }

    for (cl = hc->free; cl; cl = cl->next) {
        (void) ngx_pfree(c->pool, cl->buf->start);
    }

    hc->busy = NULL;
    hc->nbusy = 0;
    hc->free = NULL;

    c->read->handler = ngx_chat_ws_read_handler;
    c->write->handler = ngx_chat_ws_write_handler;

    return rc;
}


/*
 * Queues an event the server sends on its own (a room's message, a
 * presence or typing event).  chat_send_buffer bounds what such events
 * leave undrained: a client that lets more than that wait is closed with
 * 1013.  A frame always fits into a queue within the bound, whatever its
 * size.  Never closes the connection from here: the caller may be
 * walking a room's member list.
 */

ngx_int_t
ngx_chat_ws_send(ngx_chat_ws_t *ws, ngx_chat_frame_t *f)
{
    size_t  backlog;

    if (ws->closing) {
        return NGX_DECLINED;
    }

    backlog = ws->out.bytes - ws->out.answers;

    if (backlog > ws->conf->send_buffer) {
        ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                      "chat: client is too slow, %uz bytes queued",
                      backlog);

        ngx_chat_stat_inc(slow_consumers);

        ngx_chat_out_drop(&ws->out);
        ngx_chat_ws_close(ws, NGX_CHAT_CLOSE_TRY_LATER, "slow consumer");

        return NGX_DECLINED;
    }

    ngx_chat_ws_queue(ws, ngx_chat_frame_ref(f), 0);

    return NGX_OK;
}


/*
 * Queues an answer to the client's own request: a reply, a replay, an
 * echo, a pong.  It is never refused for its size; while answers wait
 * undrained past chat_send_buffer, the client's next requests wait too
 * (ngx_chat_ws_paused()), so that it cannot make the queue grow.
 */

ngx_int_t
ngx_chat_ws_answer(ngx_chat_ws_t *ws, ngx_chat_frame_t *f)
{
    if (ws->closing) {
        return NGX_DECLINED;
    }

    ngx_chat_ws_queue(ws, ngx_chat_frame_ref(f), 1);

    return NGX_OK;
}


/* queues f, whose reference the queue takes over */

void
ngx_chat_ws_queue(ngx_chat_ws_t *ws, ngx_chat_frame_t *f, ngx_uint_t answer)
{
    ngx_event_t  *wev;

    if (ngx_chat_out_push(&ws->out, f, answer, ws->connection->log)
        != NGX_OK)
    {
        ws->connection->error = 1;
        return;
    }

    /* one write per connection per event loop pass, whatever was queued */

    wev = ws->connection->write;

    if (wev->ready && !wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


static void
ngx_chat_ws_read_handler(ngx_event_t *rev)
{
    u_char            *early;
    ssize_t            n;
    ngx_uint_t         i;
    ngx_chat_ws_t     *ws;
    ngx_connection_t  *c;

    c = rev->data;
    ws = c->data;

    if (c->close) {
        /* graceful shutdown or reload */
        c->close = 0;
        c->idle = 0;
        ngx_chat_ws_close(ws, NGX_CHAT_CLOSE_GOING_AWAY, "server shutdown");
        ngx_chat_ws_write_handler(c->write);
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;
        ngx_chat_ws_timer(ws);
    }

    if (ws->early) {
        early = ws->early;
        ws->early = NULL;

        ngx_chat_ws_process(ws, early, early + ws->early_len);
        ngx_free(early);

        if (c->error) {
            ngx_chat_ws_finalize(ws);
            return;
        }
    }

    for (i = 0; i < NGX_CHAT_WS_READS && !ws->closing; i++) {

        if (ngx_chat_ws_paused(ws)) {
            ws->read_waits = 1;
            return;
        }

        n = c->recv(c, ngx_chat_ws_buf, NGX_CHAT_WS_READ);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            c->error = 1;
            ngx_chat_ws_finalize(ws);
            return;
        }

        if (ws->sse) {
            continue;
        }

        ws->last_read = ngx_current_msec;
        ws->ping_sent = 0;

        ngx_chat_ws_process(ws, ngx_chat_ws_buf, ngx_chat_ws_buf + n);

        if (c->error) {
            ngx_chat_ws_finalize(ws);
            return;
        }
    }

    if (ws->closing) {
        ngx_chat_ws_write_handler(c->write);
        return;
    }

    if (i == NGX_CHAT_WS_READS && rev->ready) {
        ngx_post_event(rev, &ngx_posted_next_events);
        return;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_chat_ws_finalize(ws);
    }
}


/*
 * Handles what was read; when the client's answers wait undrained, the
 * rest is kept, and read again once they have gone out.
 */

static void
ngx_chat_ws_process(ngx_chat_ws_t *ws, u_char *p, u_char *last)
{
    ngx_int_t               rc;
    ngx_chat_frame_event_t  ev;

    while (!ws->closing) {

        if (ngx_chat_ws_paused(ws) && p < last) {
            ws->early = ngx_alloc(last - p, ws->connection->log);

            if (ws->early == NULL) {
                ws->connection->error = 1;
                return;
            }

            ws->early_len = last - p;
            ngx_memcpy(ws->early, p, ws->early_len);
            ws->read_waits = 1;
            return;
        }

        rc = ngx_chat_frame_parse(&ws->parser, &p, last, &ev);

        if (rc == NGX_AGAIN) {
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                          "chat: websocket protocol error, closing with %ui",
                          ev.close_code);

            ngx_chat_ws_close(ws, ev.close_code, "");
            return;
        }

        if (ev.type == NGX_CHAT_FRAME_CONTROL) {
            ngx_chat_ws_control(ws, &ev);
            continue;
        }

        if (ngx_chat_ws_data(ws, &ev) != NGX_OK) {
            ws->connection->error = 1;
            return;
        }
    }
}


static ngx_int_t
ngx_chat_ws_data(ngx_chat_ws_t *ws, ngx_chat_frame_event_t *ev)
{
    u_char  *msg;
    size_t   size;

    if (ev->first && ev->last) {
        /* the common case: a whole message in one read, no copy */
        ws->on_message(ws, ev->opcode, ev->data, ev->len);
        return NGX_OK;
    }

    if (ws->msg_len + ev->len > ws->msg_size) {

        /* the parser has checked the size against chat_max_message_size */

        size = ngx_max(ws->parser.msg_len, 2 * ws->msg_size);
        size = ngx_min(size, ws->conf->max_message_size);

        msg = ngx_alloc(size, ws->connection->log);
        if (msg == NULL) {
            return NGX_ERROR;
        }

        if (ws->msg) {
            ngx_memcpy(msg, ws->msg, ws->msg_len);
            ngx_free(ws->msg);
        }

        ws->msg = msg;
        ws->msg_size = size;
    }

    if (ev->len) {
        ngx_memcpy(ws->msg + ws->msg_len, ev->data, ev->len);
        ws->msg_len += ev->len;
    }

    if (!ev->last) {
        return NGX_OK;
    }

    /* a message of empty fragments has no buffer */

    ws->on_message(ws, ev->opcode, ws->msg ? ws->msg : (u_char *) "",
                   ws->msg_len);

    ngx_free(ws->msg);
    ws->msg = NULL;
    ws->msg_len = 0;
    ws->msg_size = 0;

    return NGX_OK;
}


static void
ngx_chat_ws_control(ngx_chat_ws_t *ws, ngx_chat_frame_event_t *ev)
{
    ngx_uint_t         code, fail;
    ngx_chat_frame_t  *f;

    switch (ev->opcode) {

    case NGX_CHAT_OP_PING:
        f = ngx_chat_frame_control(NGX_CHAT_OP_PONG, ev->data, ev->len,
                                   ws->connection->log);
        if (f == NULL) {
            ws->connection->error = 1;
            return;
        }

        (void) ngx_chat_ws_answer(ws, f);
        ngx_chat_frame_unref(f);
        return;

    case NGX_CHAT_OP_PONG:
        return;

    default: /* NGX_CHAT_OP_CLOSE */
        fail = ngx_chat_frame_close_check(ev->data, ev->len, &code);

        if (fail) {
            ngx_chat_ws_close(ws, fail, "");
            return;
        }

        ngx_chat_ws_close(ws, ev->len ? code : NGX_CHAT_CLOSE_NO_STATUS, "");
        return;
    }
}


/*
 * Clients that connected together (after a restart, say) would be pinged
 * together, every interval, for as long as they stay: the first ping of a
 * connection comes up to half an interval early, spread by its number.
 */

static ngx_msec_t
ngx_chat_ws_ping_after(ngx_chat_ws_t *ws)
{
    ngx_msec_t  ping;

    ping = ws->conf->ping_interval;

    if (ws->pinged) {
        return ping;
    }

    return ping - (ngx_msec_t) ((ws->connection->number * 2654435761u)
                                % (ping / 2 + 1));
}


static void
ngx_chat_ws_timer(ngx_chat_ws_t *ws)
{
    ngx_msec_t  silent, next, ping;

    if (ws->sse) {
        ngx_chat_ws_sse_timer(ws);
        return;
    }

    silent = ngx_current_msec - ws->last_read;
    ping = ngx_chat_ws_ping_after(ws);

    if (silent >= ws->conf->idle_timeout) {
        ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                      "chat: client silent for %Mms, closing", silent);
        ngx_chat_ws_close(ws, NGX_CHAT_CLOSE_NORMAL, "idle timeout");
        return;
    }

    if (silent >= ping && !ws->ping_sent) {

        if (ngx_chat_ws_ping == NULL) {
            ngx_chat_ws_ping = ngx_chat_frame_control(NGX_CHAT_OP_PING, NULL,
                                                      0, ngx_cycle->log);
        }

        if (ngx_chat_ws_ping) {
            (void) ngx_chat_ws_send(ws, ngx_chat_ws_ping);
        }

        ws->ping_sent = 1;
        ws->pinged = 1;
    }

    next = ws->conf->idle_timeout - silent;

    if (!ws->ping_sent && ping - silent < next) {
        next = ping - silent;
    }

    ngx_add_timer(ws->connection->read, next);
}


static void
ngx_chat_ws_write_handler(ngx_event_t *wev)
{
    ngx_chat_ws_t     *ws;
    ngx_connection_t  *c;

    c = wev->data;
    ws = c->data;

    if (wev->timedout) {
        /* the client did not take the close frame in time */
        c->timedout = 1;
        ngx_chat_ws_finalize(ws);
        return;
    }

    if (ngx_chat_out_flush(&ws->out, c) != NGX_OK) {
        c->error = 1;
        ngx_chat_ws_finalize(ws);
        return;
    }

    if (ws->read_waits && !ngx_chat_ws_paused(ws) && !ws->closing) {
        ws->read_waits = 0;
        ngx_post_event(c->read, &ngx_posted_events);
    }

    if (!ngx_chat_out_empty(&ws->out)) {
        if (ws->closing && !wev->timer_set) {
            ngx_add_timer(wev, NGX_CHAT_WS_LINGER);
        }

        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_chat_ws_finalize(ws);
        }

        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    if (ws->closing) {
        ngx_chat_ws_shutdown(ws);
    }
}


static ngx_int_t
ngx_chat_ws_transport_send(void *conn, ngx_chat_frame_t *f)
{
    return ngx_chat_ws_send(conn, f);
}


static ngx_int_t
ngx_chat_ws_transport_answer(void *conn, ngx_chat_frame_t *f)
{
    return ngx_chat_ws_answer(conn, f);
}


static void
ngx_chat_ws_transport_close(void *conn, ngx_uint_t code, char *reason)
{
    ngx_chat_ws_close(conn, code, reason);
}


static size_t
ngx_chat_ws_transport_backlog(void *conn)
{
    ngx_chat_ws_t *ws = conn;

    return ws->out.bytes - ws->out.answers;
}


/*
 * An SSE client says nothing: a comment every chat_ping_interval keeps
 * the stream alive through proxies, and chat_idle_timeout is how long
 * the stream may stay with events queued that it does not drain.
 */

static void
ngx_chat_ws_sse_timer(ngx_chat_ws_t *ws)
{
    ngx_chat_frame_t  *f;

    if (!ngx_chat_out_empty(&ws->out)) {

        if (ngx_current_msec - ws->last_read >= ws->conf->idle_timeout) {
            ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                          "chat: event stream not drained for %Mms, closing",
                          ngx_current_msec - ws->last_read);
            ngx_chat_ws_close(ws, NGX_CHAT_CLOSE_NORMAL, "idle timeout");
            return;
        }

    } else {
        ws->last_read = ngx_current_msec;

        f = ngx_chat_sse_ping(ws->connection->log);

        if (f) {
            ngx_chat_ws_queue(ws, f, 0);
        }
    }

    ws->pinged = 1;

    ngx_add_timer(ws->connection->read,
                  ngx_min(ws->conf->ping_interval, ws->conf->idle_timeout));
}
