
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_LIMIT_H_INCLUDED_
#define _NGX_CHAT_LIMIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"


/* the longest key chat_limit_conn counts; a longer one is refused, 400 */
#define NGX_CHAT_LIMIT_KEY_MAX    256


char *ngx_chat_limit_conn(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_chat_limit_init_conf(ngx_conf_t *cf);
void ngx_chat_limit_init_process(ngx_cycle_t *cycle);
void ngx_chat_limit_exit_process(ngx_cycle_t *cycle);

ngx_int_t ngx_chat_limit_take(ngx_http_request_t *r, ngx_array_t *limits,
    ngx_chat_limit_held_t **held);
void ngx_chat_limit_release(ngx_chat_limit_held_t *held);


#endif /* _NGX_CHAT_LIMIT_H_INCLUDED_ */
