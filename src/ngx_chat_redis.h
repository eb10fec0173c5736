
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_REDIS_H_INCLUDED_
#define _NGX_CHAT_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
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
};


typedef struct ngx_chat_redis_s  ngx_chat_redis_t;

typedef void (*ngx_chat_redis_pt)(ngx_chat_redis_t *rd);


/*
 * One hiredis async context in nginx's event loop, reconnected from a
 * timer with capped backoff.  on_ready runs once AUTH and SELECT are done,
 * on_down when the connection is lost, after hiredis has failed every
 * command still waiting for a reply.
 */

struct ngx_chat_redis_s {
    redisAsyncContext          *ac;
    ngx_connection_t           *connection;
    ngx_event_t                 reconnect;
    ngx_msec_t                  backoff;
    ngx_chat_redis_conf_t      *conf;
    ngx_log_t                  *log;
    char                       *name;

    ngx_chat_redis_pt           on_ready;
    ngx_chat_redis_pt           on_down;
    void                       *data;

    unsigned                    ready:1;
    unsigned                    closing:1;
    unsigned                    down_logged:1;
};


char *ngx_chat_redis_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_chat_redis_conf_t *rc);
void ngx_chat_redis_connect(ngx_chat_redis_t *rd);
void ngx_chat_redis_close(ngx_chat_redis_t *rd);
ngx_int_t ngx_chat_redis_command(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, ngx_uint_t argc, const char **argv,
    const size_t *argvlen);


#endif /* _NGX_CHAT_REDIS_H_INCLUDED_ */
