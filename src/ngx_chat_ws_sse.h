
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_WS_SSE_H_INCLUDED_
#define _NGX_CHAT_WS_SSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_ws.h"


extern ngx_chat_transport_t  ngx_chat_ws_sse_transport;


#endif /* _NGX_CHAT_WS_SSE_H_INCLUDED_ */
