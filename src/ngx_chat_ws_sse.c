
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_ws_sse.h"
#include "ngx_chat_ws_close.h"


/*
 * A session's transport over an SSE stream: each event as the shared
 * "data:" frame, then the stream's end of it, queued on the connection
 * that carries the stream (ngx_chat_ws.c).
 */

static ngx_int_t ngx_chat_ws_sse_send(void *conn, ngx_chat_frame_t *f);
static ngx_int_t ngx_chat_ws_sse_answer(void *conn, ngx_chat_frame_t *f);
static ngx_int_t ngx_chat_ws_sse_event(ngx_chat_ws_t *ws, ngx_chat_frame_t *f,
    ngx_uint_t answer);
static void ngx_chat_ws_sse_close(void *conn, ngx_uint_t code, char *reason);
static size_t ngx_chat_ws_sse_backlog(void *conn);


ngx_chat_transport_t  ngx_chat_ws_sse_transport = {
    ngx_chat_ws_sse_send,
    ngx_chat_ws_sse_answer,
    ngx_chat_ws_sse_close,
    ngx_chat_ws_sse_backlog
};


static ngx_int_t
ngx_chat_ws_sse_send(void *conn, ngx_chat_frame_t *f)
{
    return ngx_chat_ws_sse_event(conn, f, 0);
}


static ngx_int_t
ngx_chat_ws_sse_answer(void *conn, ngx_chat_frame_t *f)
{
    return ngx_chat_ws_sse_event(conn, f, 1);
}


/* the event shared by every stream, then this stream's end of it */

static ngx_int_t
ngx_chat_ws_sse_event(ngx_chat_ws_t *ws, ngx_chat_frame_t *f,
    ngx_uint_t answer)
{
    ngx_int_t          rc;
    ngx_log_t         *log;
    ngx_chat_frame_t  *e, *end;

    if (ws->closing) {
        return NGX_DECLINED;
    }

    log = ws->connection->log;

    e = ngx_chat_sse_event(f, log);

    if (e == NULL) {
        end = NULL;

    } else if (f->seq == 0) {
        end = ngx_chat_sse_end(log);

    } else if (ws->sse->rooms.nelts == 1) {
        end = ngx_chat_sse_id_shared(e, log);

    } else {
        end = ngx_chat_sse_id(ws->sse, ws->data, log);
    }

    if (end == NULL) {
        ws->connection->error = 1;
        return NGX_ERROR;
    }

    rc = answer ? ngx_chat_ws_answer(ws, e) : ngx_chat_ws_send(ws, e);

    if (rc != NGX_OK) {
        ngx_chat_frame_unref(end);
        return rc;
    }

    ngx_chat_ws_queue(ws, end, answer);

    return NGX_OK;
}


static void
ngx_chat_ws_sse_close(void *conn, ngx_uint_t code, char *reason)
{
    ngx_chat_ws_close(conn, code, reason);
}


static size_t
ngx_chat_ws_sse_backlog(void *conn)
{
    ngx_chat_ws_t *ws = conn;

    return ws->out.bytes - ws->out.answers;
}
