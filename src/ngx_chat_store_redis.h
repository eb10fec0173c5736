
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_STORE_REDIS_H_INCLUDED_
#define _NGX_CHAT_STORE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_store.h"


/* rooms in Redis: chat_redis, any number of workers and hosts */
extern ngx_chat_store_t  ngx_chat_store_redis;


#endif /* _NGX_CHAT_STORE_REDIS_H_INCLUDED_ */
