/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_WS_CLOSE_H_INCLUDED_
#define _NGX_CHAT_WS_CLOSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_ws.h"


/* how long a closing client has to take the close frame, then to close */
#define NGX_CHAT_WS_LINGER    2000


void ngx_chat_ws_close(ngx_chat_ws_t *ws, ngx_uint_t code, char *reason);
void ngx_chat_ws_shutdown(ngx_chat_ws_t *ws);
void ngx_chat_ws_finalize(ngx_chat_ws_t *ws);
void ngx_chat_ws_request_cleanup(void *data);


#endif /* _NGX_CHAT_WS_CLOSE_H_INCLUDED_ */
