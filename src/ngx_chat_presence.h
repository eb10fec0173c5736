
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_PRESENCE_H_INCLUDED_
#define _NGX_CHAT_PRESENCE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_store.h"


void ngx_chat_presence_init_process(ngx_cycle_t *cycle);
void ngx_chat_presence_exit_process(void);

void ngx_chat_presence_user(ngx_str_t *user, ngx_str_t *conn,
    ngx_uint_t event, ngx_msec_t ttl);
void ngx_chat_presence_room(ngx_chat_room_t *room, ngx_str_t *user,
    ngx_uint_t join);
void ngx_chat_presence_released(ngx_chat_room_t *room);
void ngx_chat_presence_members(ngx_chat_store_op_t *op);
void ngx_chat_presence_online(ngx_chat_store_op_t *op);


#endif /* _NGX_CHAT_PRESENCE_H_INCLUDED_ */
