
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_WORKER_H_INCLUDED_
#define _NGX_CHAT_WORKER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_chat.h"


/*
 * What every part of a worker process shares: its id, its clock, and the
 * sockets that hiredis and libpq own, which nginx's event loop only
 * watches.
 */

/* this worker's opaque id, unique across processes and hosts */
extern ngx_str_t  ngx_chat_worker_id;


void ngx_chat_worker_init(ngx_cycle_t *cycle);
void ngx_chat_worker_timer(ngx_event_t *ev, ngx_event_handler_pt handler,
    ngx_log_t *log);
uint64_t ngx_chat_worker_now(void);
void ngx_chat_worker_watch(ngx_event_t *ev, ngx_uint_t event, ngx_uint_t on);
void ngx_chat_worker_forget(ngx_connection_t *c);


#endif /* _NGX_CHAT_WORKER_H_INCLUDED_ */
