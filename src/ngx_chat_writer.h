
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_WRITER_H_INCLUDED_
#define _NGX_CHAT_WRITER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_redis.h"


ngx_int_t ngx_chat_writer_init(ngx_cycle_t *cycle,
    ngx_chat_main_conf_t *cmcf);
void ngx_chat_writer_exit(void);
ngx_uint_t ngx_chat_writer_link_ready(void);


#endif /* _NGX_CHAT_WRITER_H_INCLUDED_ */
