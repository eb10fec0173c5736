
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_COMMAND_H_INCLUDED_
#define _NGX_CHAT_COMMAND_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_store.h"


void ngx_chat_command_kick(ngx_chat_store_op_t *op);
void ngx_chat_command_disconnect(ngx_chat_store_op_t *op);
void ngx_chat_command_arrived(u_char *data, size_t len);


#endif /* _NGX_CHAT_COMMAND_H_INCLUDED_ */
