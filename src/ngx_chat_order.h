
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_ORDER_H_INCLUDED_
#define _NGX_CHAT_ORDER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_frame.h"


void ngx_chat_order_message(ngx_chat_room_t *room, ngx_chat_frame_t *f);
void ngx_chat_order_catch_up(ngx_chat_room_t *room);


#endif /* _NGX_CHAT_ORDER_H_INCLUDED_ */
