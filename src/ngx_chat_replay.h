
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_REPLAY_H_INCLUDED_
#define _NGX_CHAT_REPLAY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_store.h"


void ngx_chat_replay_join(ngx_chat_store_op_t *op);
void ngx_chat_replay_history(ngx_chat_store_op_t *op);


#endif /* _NGX_CHAT_REPLAY_H_INCLUDED_ */
