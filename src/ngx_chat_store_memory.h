
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_STORE_MEMORY_H_INCLUDED_
#define _NGX_CHAT_STORE_MEMORY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_store.h"


/* rooms in this worker's memory: no chat_redis, one worker */
extern ngx_chat_store_t  ngx_chat_store_memory;


#endif /* _NGX_CHAT_STORE_MEMORY_H_INCLUDED_ */
