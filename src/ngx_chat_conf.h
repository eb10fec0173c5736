
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_CONF_H_INCLUDED_
#define _NGX_CHAT_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the main and location configuration, and the directives of their own */

void *ngx_chat_create_main_conf(ngx_conf_t *cf);
char *ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_chat_create_loc_conf(ngx_conf_t *cf);
char *ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);

char *ngx_chat_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_jwt_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_CHAT_CONF_H_INCLUDED_ */
