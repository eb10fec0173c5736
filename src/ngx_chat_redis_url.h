
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_REDIS_URL_H_INCLUDED_
#define _NGX_CHAT_REDIS_URL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"


/* chat_redis redis://[[user]:password@]host[:port][/db] | unix:/path */

struct ngx_chat_redis_conf_s {
    ngx_str_t                   url;
    u_char                     *host;         /* an address, NUL-ended */
    int                         port;
    u_char                     *path;         /* unix socket, NUL-ended */
    ngx_str_t                   user;
    ngx_str_t                   password;
    ngx_uint_t                  db;
    ngx_msec_t                  timeout;      /* chat_redis_timeout */
};


char *ngx_chat_redis_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_chat_redis_conf_t *rc);


#endif /* _NGX_CHAT_REDIS_URL_H_INCLUDED_ */
