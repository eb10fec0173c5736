
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_sse.h"
#include "ngx_chat_cursor.h"
#include "ngx_chat_handshake.h"
#include "ngx_chat_request.h"
#include "ngx_chat_encode.h"


/*
 * What a Server-Sent Events stream sends, written for the WebSocket
 * connection code that carries it (ngx_chat_ws.c): the response head,
 * each event as "data: JSON" built once per frame and shared by every
 * stream, and after a message the stream's own "id:", the seq of each of
 * its rooms in the order of ?rooms=, from which any worker of any host
 * resumes every room when the browser reconnects with Last-Event-ID.
 */


static ngx_chat_frame_t *ngx_chat_sse_static(ngx_chat_frame_t **f,
    char *text, ngx_log_t *log);


/* frames every stream sends alike: one per worker, never freed */
static ngx_chat_frame_t  *ngx_chat_sse_end_frame;
static ngx_chat_frame_t  *ngx_chat_sse_ping_frame;


/*
 * ?rooms=R1,R2, &since=R1:5 and Last-Event-ID, which wins over since (it
 * is newer: the browser's EventSource sends the URL it was opened with)
 */

ngx_chat_sse_t *
ngx_chat_sse_create(ngx_http_request_t *r, ngx_chat_loc_conf_t *lcf,
    ngx_uint_t *status, char **reason)
{
    u_char             *p;
    size_t              size;
    ngx_str_t           value;
    ngx_uint_t          i;
    ngx_array_t         list;
    ngx_chat_sse_t     *sse;
    ngx_table_elt_t    *h;
    ngx_chat_cursor_t  *cur, *copy;

    *status = NGX_HTTP_BAD_REQUEST;

    if (ngx_array_init(&list, r->pool, 4, sizeof(ngx_chat_cursor_t))
        != NGX_OK)
    {
        goto failed;
    }

    if (ngx_http_arg(r, (u_char *) "rooms", 5, &value) != NGX_OK) {
        *reason = "rooms: missing";
        return NULL;
    }

    switch (ngx_chat_cursor_rooms(r->pool, &value, lcf->max_rooms, &list,
                                  reason))
    {
    case NGX_OK:
        break;
    case NGX_DECLINED:
        return NULL;
    default:
        goto failed;
    }

    if (ngx_http_arg(r, (u_char *) "since", 5, &value) == NGX_OK) {

        switch (ngx_chat_cursor_since(r->pool, &value, lcf->max_rooms, &list,
                                      0, reason))
        {
        case NGX_OK:
            break;
        case NGX_DECLINED:
            return NULL;
        default:
            goto failed;
        }
    }

    h = ngx_chat_handshake_header(r, "Last-Event-ID");

    if (h && h->value.len
        && ngx_chat_cursor_positions(&h->value, &list, reason) != NGX_OK)
    {
        return NULL;
    }

    /* on the connection's pool: the request's is freed once it streams */

    cur = list.elts;
    size = sizeof(ngx_chat_sse_t) + list.nelts * sizeof(ngx_chat_cursor_t);

    for (i = 0; i < list.nelts; i++) {
        size += cur[i].room.len;
    }

    sse = ngx_palloc(r->connection->pool, size);
    if (sse == NULL) {
        goto failed;
    }

    copy = (ngx_chat_cursor_t *) (sse + 1);
    p = (u_char *) (copy + list.nelts);

    for (i = 0; i < list.nelts; i++) {
        copy[i] = cur[i];
        copy[i].room.data = p;
        p = ngx_cpymem(p, cur[i].room.data, cur[i].room.len);
    }

    sse->rooms.elts = copy;
    sse->rooms.nelts = list.nelts;
    sse->rooms.size = sizeof(ngx_chat_cursor_t);
    sse->rooms.nalloc = list.nelts;
    sse->rooms.pool = r->connection->pool;

    return sse;

failed:

    *status = NGX_HTTP_INTERNAL_SERVER_ERROR;
    *reason = "internal error";

    return NULL;
}


/*
 * Written as it is, like a 101: no length and no chunks, the stream ends
 * with the connection.  No-cache and X-Accel-Buffering make proxies (a
 * front nginx among them) pass each event at once.
 */

ngx_chat_frame_t *
ngx_chat_sse_head(ngx_http_request_t *r)
{
    size_t             len;
    u_char            *p;
    ngx_table_elt_t   *origin;
    ngx_chat_frame_t  *f;

    static u_char  head[] = "HTTP/1.1 200 OK" CRLF
                            "Content-Type: text/event-stream; charset=utf-8"
                            CRLF
                            "Cache-Control: no-cache, no-transform" CRLF
                            "X-Accel-Buffering: no" CRLF
                            "Connection: close" CRLF;
    static u_char  cors[] = "Access-Control-Allow-Origin: ";
    static u_char  cred[] = CRLF "Access-Control-Allow-Credentials: true"
                            CRLF "Vary: Origin" CRLF;

    /* the handshake has refused an Origin chat_allowed_origins does not */

    origin = ngx_chat_handshake_header(r, "Origin");

    len = sizeof(head) - 1 + sizeof(CRLF) - 1;

    if (origin) {
        len += sizeof(cors) - 1 + origin->value.len + sizeof(cred) - 1;
    }

    f = ngx_chat_frame_alloc(len, r->connection->log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, head, sizeof(head) - 1);

    if (origin) {
        p = ngx_cpymem(p, cors, sizeof(cors) - 1);
        p = ngx_cpymem(p, origin->value.data, origin->value.len);
        p = ngx_cpymem(p, cred, sizeof(cred) - 1);
    }

    f->last = ngx_cpymem(p, CRLF, sizeof(CRLF) - 1);

    return f;
}


/*
 * "data: JSON\n" of a sealed event, made at its first SSE stream and kept
 * with it for the others.  The JSON holds no raw line break: every string
 * in it is escaped.
 */

ngx_chat_frame_t *
ngx_chat_sse_event(ngx_chat_frame_t *f, ngx_log_t *log)
{
    size_t             len;
    u_char            *p;
    ngx_chat_frame_t  *e;

    if (f->alt) {
        return f->alt;
    }

    len = f->last - f->payload;

    e = ngx_chat_frame_alloc(sizeof("data: \n") - 1 + len, log);
    if (e == NULL) {
        return NULL;
    }

    p = ngx_cpymem(e->payload, "data: ", sizeof("data: ") - 1);
    p = ngx_cpymem(p, f->payload, len);
    *p++ = LF;
    e->last = p;
    e->seq = f->seq;

    f->alt = e;

    return e;
}


/*
 * The id of a stream of one room is the message's seq: one frame, kept
 * with the shared event, for every such stream.
 */

ngx_chat_frame_t *
ngx_chat_sse_id_shared(ngx_chat_frame_t *e, ngx_log_t *log)
{
    ngx_chat_frame_t  *f;

    if (e->alt == NULL) {
        f = ngx_chat_frame_alloc(sizeof("id: \n\n") - 1 + NGX_INT64_LEN, log);
        if (f == NULL) {
            return NULL;
        }

        f->last = ngx_sprintf(f->payload, "id: %uL\n\n", e->seq);
        e->alt = f;
    }

    return ngx_chat_frame_ref(e->alt);
}


/*
 * "id: 5,,9" and the end of the event: per room of the stream, the last
 * seq it has had, or, before its join is answered, the one it came with
 * (empty: none)
 */

ngx_chat_frame_t *
ngx_chat_sse_id(ngx_chat_sse_t *sse, ngx_chat_session_t *s, ngx_log_t *log)
{
    u_char             *p;
    ngx_uint_t          i;
    ngx_chat_frame_t   *f;
    ngx_chat_cursor_t  *cur;

    f = ngx_chat_frame_alloc(sizeof("id: \n\n") - 1
                             + sse->rooms.nelts * NGX_CHAT_CURSOR_SEQ_LEN,
                             log);
    if (f == NULL) {
        return NULL;
    }

    ngx_chat_cursor_update(&sse->rooms, &s->rooms);

    p = ngx_cpymem(f->payload, "id: ", sizeof("id: ") - 1);
    cur = sse->rooms.elts;

    for (i = 0; i < sse->rooms.nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        if (cur[i].has_seq) {
            p = ngx_sprintf(p, "%uL", cur[i].seq);
        }
    }

    *p++ = LF;
    *p++ = LF;
    f->last = p;

    return f;
}


/* the blank line that ends an event without an id */

ngx_chat_frame_t *
ngx_chat_sse_end(ngx_log_t *log)
{
    return ngx_chat_sse_static(&ngx_chat_sse_end_frame, "\n", log);
}


/* a comment: proxies and the browser see the stream is alive */

ngx_chat_frame_t *
ngx_chat_sse_ping(ngx_log_t *log)
{
    return ngx_chat_sse_static(&ngx_chat_sse_ping_frame, ": ping\n\n", log);
}


/* the last event of a stream the server ends: data: {"type":"close",...} */

ngx_chat_frame_t *
ngx_chat_sse_close(ngx_uint_t code, char *reason, ngx_log_t *log)
{
    ngx_chat_frame_t  *c, *e, *f;

    c = ngx_chat_encode_close(code, reason, log);
    if (c == NULL) {
        return NULL;
    }

    e = ngx_chat_sse_event(c, log);

    f = e ? ngx_chat_frame_alloc(e->last - e->pos + 1, log) : NULL;

    if (f) {
        f->last = ngx_cpymem(f->payload, e->pos, e->last - e->pos);
        *f->last++ = LF;
    }

    ngx_chat_frame_unref(c);

    return f;
}


static ngx_chat_frame_t *
ngx_chat_sse_static(ngx_chat_frame_t **f, char *text, ngx_log_t *log)
{
    size_t  len;

    if (*f == NULL) {
        len = ngx_strlen(text);

        *f = ngx_chat_frame_alloc(len, log);
        if (*f == NULL) {
            return NULL;
        }

        (*f)->last = ngx_cpymem((*f)->payload, text, len);
    }

    return ngx_chat_frame_ref(*f);
}
