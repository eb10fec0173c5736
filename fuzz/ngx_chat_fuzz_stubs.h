
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_FUZZ_STUBS_H_INCLUDED_
#define _NGX_CHAT_FUZZ_STUBS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* 2023-11-14T22:13:20Z */
#define NGX_CHAT_FUZZ_NOW  1700000000


void ngx_chat_fuzz_pool_free(void);


#endif /* _NGX_CHAT_FUZZ_STUBS_H_INCLUDED_ */
