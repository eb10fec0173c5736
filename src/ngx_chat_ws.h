
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_WS_H_INCLUDED_
#define _NGX_CHAT_WS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_frame.h"
#include "ngx_chat_out.h"
#include "ngx_chat_sse.h"


typedef void (*ngx_chat_ws_message_pt)(ngx_chat_ws_t *ws, ngx_uint_t opcode,
    u_char *data, size_t len);
typedef void (*ngx_chat_ws_cleanup_pt)(ngx_chat_ws_t *ws);


struct ngx_chat_ws_s {
    ngx_http_request_t         *request;      /* until the upgrade is done */
    ngx_connection_t           *connection;
    ngx_chat_loc_conf_t        *conf;
    ngx_chat_sse_t             *sse;          /* an SSE stream, not a ws */

    ngx_chat_ws_message_pt      on_message;
    ngx_chat_ws_cleanup_pt      on_cleanup;
    void                       *data;

    ngx_chat_out_t              out;

    u_char                     *msg;          /* a message in pieces */
    size_t                      msg_len;
    size_t                      msg_size;

    u_char                     *early;        /* sent with the handshake */
    size_t                      early_len;

    ngx_msec_t                  last_read;    /* SSE: last drained */

    unsigned                    read_waits:1; /* for answers to drain */
    unsigned                    closing:1;    /* close frame queued */
    unsigned                    shut:1;       /* writes shut down */
    unsigned                    ping_sent:1;
    unsigned                    pinged:1;     /* the first ping went */

    ngx_chat_frame_parser_t     parser;
};


extern ngx_chat_transport_t  ngx_chat_ws_transport;


/* the client's answers wait undrained: its next requests wait too */
#define ngx_chat_ws_paused(ws)                                                \
    ((ws)->out.answers > (ws)->conf->send_buffer)


ngx_chat_ws_t *ngx_chat_ws_create(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf);
ngx_int_t ngx_chat_ws_start(ngx_chat_ws_t *ws);
ngx_int_t ngx_chat_ws_send(ngx_chat_ws_t *ws, ngx_chat_frame_t *f);
ngx_int_t ngx_chat_ws_answer(ngx_chat_ws_t *ws, ngx_chat_frame_t *f);
void ngx_chat_ws_queue(ngx_chat_ws_t *ws, ngx_chat_frame_t *f,
    ngx_uint_t answer);


#endif /* _NGX_CHAT_WS_H_INCLUDED_ */
