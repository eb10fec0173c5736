
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_STATUS_H_INCLUDED_
#define _NGX_CHAT_STATUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"


typedef struct {
    ngx_atomic_t                connections;
    ngx_atomic_t                rooms;
    ngx_atomic_t                messages_received;
    ngx_atomic_t                messages_delivered;
    ngx_atomic_t                slow_consumers;
} ngx_chat_counters_t;


/* this worker's counters, in shared memory; written by this worker only */
extern ngx_chat_counters_t     *ngx_chat_stats;


#define ngx_chat_stat_inc(name)     ngx_chat_stats->name++
#define ngx_chat_stat_dec(name)     ngx_chat_stats->name--
#define ngx_chat_stat_add(name, n)  ngx_chat_stats->name += (n)


ngx_int_t ngx_chat_status_init_conf(ngx_conf_t *cf);
ngx_int_t ngx_chat_status_init_process(ngx_cycle_t *cycle);
void ngx_chat_status_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_chat_status_handler(ngx_http_request_t *r);
void ngx_chat_status_stream(uint64_t backlog, uint64_t age);


#endif /* _NGX_CHAT_STATUS_H_INCLUDED_ */
