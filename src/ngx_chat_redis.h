
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
#include "ngx_chat_redis_url.h"


typedef struct ngx_chat_redis_s  ngx_chat_redis_t;

typedef void (*ngx_chat_redis_pt)(ngx_chat_redis_t *rd);


/* a command sent, waiting for its answer */

typedef struct {
    redisCallbackFn            *fn;
    void                       *data;
    ngx_msec_t                  deadline;
} ngx_chat_redis_call_t;


/*
 * One hiredis async context in nginx's event loop, reconnected from a
 * timer with capped backoff.  on_ready runs once AUTH and SELECT are done,
 * on_down when the connection is lost, after hiredis has failed every
 * command still waiting for a reply.
 *
 * Answers come in the order of the commands, so the commands in flight
 * are a queue whose oldest has the nearest deadline: a connect or a
 * command unanswered for conf->timeout drops the connection.  A link
 * with on_idle (the subscriber, which may wait for nothing for long) is
 * given it to send something every second or so while nothing is in
 * flight; pushed messages (on a subscribed link) go to on_message and
 * answer nothing.  max, if set, bounds the commands in flight.
 */

struct ngx_chat_redis_s {
    redisAsyncContext          *ac;
    ngx_connection_t           *connection;
    ngx_event_t                 reconnect;
    ngx_event_t                 timer;        /* deadlines, heartbeat */
    ngx_msec_t                  backoff;
    ngx_chat_redis_conf_t      *conf;
    ngx_log_t                  *log;
    char                       *name;

    ngx_chat_redis_call_t      *calls;        /* a ring of nalloc */
    ngx_uint_t                  first;
    ngx_uint_t                  ncalls;
    ngx_uint_t                  nalloc;
    ngx_uint_t                  max;

    ngx_chat_redis_pt           on_ready;
    ngx_chat_redis_pt           on_down;
    ngx_chat_redis_pt           on_idle;
    redisCallbackFn            *on_message;
    void                       *data;

    unsigned                    ready:1;
    unsigned                    closing:1;
    unsigned                    down_logged:1;
};


void ngx_chat_redis_connect(ngx_chat_redis_t *rd);
void ngx_chat_redis_close(ngx_chat_redis_t *rd);
ngx_int_t ngx_chat_redis_command(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, ngx_msec_t wait, ngx_uint_t argc, const char **argv,
    const size_t *argvlen);
ngx_int_t ngx_chat_redis_formatted(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, char *command, size_t len);


#endif /* _NGX_CHAT_REDIS_H_INCLUDED_ */
