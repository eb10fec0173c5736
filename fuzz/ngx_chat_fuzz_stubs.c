
/*
 * Copyright (C) ngx_chat authors
 */


/*
 * The few nginx core functions the fuzzed files call, for a fuzzer that
 * links no nginx: nginx-dev ships headers only.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_fuzz_stubs.h"


void *
ngx_alloc(size_t size, ngx_log_t *log)
{
    return malloc(size);
}


/*
 * The pool hands out exact-size heap blocks, so ASan sees an overrun of
 * any one of them, and keeps them until ngx_chat_fuzz_pool_free().
 */

#define NGX_CHAT_FUZZ_POOL_MAX  64

static void        *ngx_chat_fuzz_pool[NGX_CHAT_FUZZ_POOL_MAX];
static ngx_uint_t   ngx_chat_fuzz_pool_n;


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    void  *p;

    if (ngx_chat_fuzz_pool_n == NGX_CHAT_FUZZ_POOL_MAX) {
        abort();
    }

    /* malloc(0) may return NULL, which the caller would take for failure */

    p = malloc(size ? size : 1);
    if (p == NULL) {
        abort();
    }

    ngx_chat_fuzz_pool[ngx_chat_fuzz_pool_n++] = p;

    return p;
}


void *
ngx_palloc(ngx_pool_t *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


void
ngx_chat_fuzz_pool_free(void)
{
    while (ngx_chat_fuzz_pool_n) {
        free(ngx_chat_fuzz_pool[--ngx_chat_fuzz_pool_n]);
    }
}


/* ngx_time() is NGX_CHAT_FUZZ_NOW; ngx_string.c names ngx_cycle */

static ngx_time_t  ngx_chat_fuzz_time = { NGX_CHAT_FUZZ_NOW, 0, 0 };

volatile ngx_time_t   *ngx_cached_time = &ngx_chat_fuzz_time;
volatile ngx_cycle_t  *ngx_cycle;
