
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_SEQ_H_INCLUDED_
#define _NGX_CHAT_SEQ_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_redis.h"
#include "ngx_chat_store.h"


void ngx_chat_seq_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_chat_seq_prepare(ngx_chat_store_op_t *op,
    ngx_chat_msg_t *msg);
void ngx_chat_seq_send(ngx_chat_store_op_t *op);
void ngx_chat_seq_eval(ngx_chat_store_op_t *op);


#endif /* _NGX_CHAT_SEQ_H_INCLUDED_ */
