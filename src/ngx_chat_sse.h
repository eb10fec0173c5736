
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_SSE_H_INCLUDED_
#define _NGX_CHAT_SSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_frame.h"


/* a Server-Sent Events stream: its rooms, in the order of ?rooms= */

typedef struct {
    ngx_array_t                 rooms;        /* of ngx_chat_cursor_t */
} ngx_chat_sse_t;


ngx_chat_sse_t *ngx_chat_sse_create(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *lcf, ngx_uint_t *status, char **reason);
ngx_chat_frame_t *ngx_chat_sse_head(ngx_http_request_t *r);
ngx_chat_frame_t *ngx_chat_sse_event(ngx_chat_frame_t *f, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_sse_id_shared(ngx_chat_frame_t *e,
    ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_sse_id(ngx_chat_sse_t *sse,
    ngx_chat_session_t *s, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_sse_end(ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_sse_ping(ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_sse_close(ngx_uint_t code, char *reason,
    ngx_log_t *log);


#endif /* _NGX_CHAT_SSE_H_INCLUDED_ */
