
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_chat_redis.h"
#include "ngx_chat_worker.h"


#define NGX_CHAT_REDIS_BACKOFF_MIN  100
#define NGX_CHAT_REDIS_BACKOFF_MAX  2000
#define NGX_CHAT_REDIS_IDLE         1000
#define NGX_CHAT_REDIS_CALLS        64


static void ngx_chat_redis_reconnect(ngx_chat_redis_t *rd);
static void ngx_chat_redis_reconnect_handler(ngx_event_t *ev);
static ngx_int_t ngx_chat_redis_send(ngx_chat_redis_t *rd,
    redisCallbackFn *fn, void *privdata, ngx_msec_t wait, ngx_uint_t argc,
    const char **argv, const size_t *argvlen);
static ngx_int_t ngx_chat_redis_reserve(ngx_chat_redis_t *rd);
static void ngx_chat_redis_push(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, ngx_msec_t wait);
static void ngx_chat_redis_answer(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_uint_t ngx_chat_redis_pushed(redisReply *reply);
static void ngx_chat_redis_timer_handler(ngx_event_t *ev);
static void ngx_chat_redis_stalled(ngx_chat_redis_t *rd);
static ngx_msec_t ngx_chat_redis_idle(ngx_chat_redis_t *rd);
static void ngx_chat_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_chat_redis_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_chat_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_read_handler(ngx_event_t *ev);
static void ngx_chat_redis_write_handler(ngx_event_t *ev);
static void ngx_chat_redis_add_read(void *privdata);
static void ngx_chat_redis_del_read(void *privdata);
static void ngx_chat_redis_add_write(void *privdata);
static void ngx_chat_redis_del_write(void *privdata);
static void ngx_chat_redis_cleanup(void *privdata);


void
ngx_chat_redis_connect(ngx_chat_redis_t *rd)
{
    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    ngx_chat_worker_timer(&rd->reconnect, ngx_chat_redis_reconnect_handler,
                          rd->log);
    ngx_chat_worker_timer(&rd->timer, ngx_chat_redis_timer_handler,
                          rd->log);

    if (rd->conf->path) {
        ac = redisAsyncConnectUnix((char *) rd->conf->path);

    } else {
        ac = redisAsyncConnect((char *) rd->conf->host, rd->conf->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                      "chat: redis %s: out of memory", rd->name);
        ngx_chat_redis_reconnect(rd);
        return;
    }

    if (ac->err) {
        if (!rd->down_logged) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "chat: redis %s: cannot connect to \"%V\": %s",
                          rd->name, &rd->conf->url, ac->errstr);
            rd->down_logged = 1;
        }

        redisAsyncFree(ac);
        ngx_chat_redis_reconnect(rd);
        return;
    }

    c = ngx_get_connection(ac->c.fd, rd->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_chat_redis_reconnect(rd);
        return;
    }

    c->data = rd;
    c->read->handler = ngx_chat_redis_read_handler;
    c->write->handler = ngx_chat_redis_write_handler;
    c->read->log = rd->log;
    c->write->log = rd->log;

    rd->ac = ac;
    rd->connection = c;

    ac->data = rd;
    ac->ev.data = rd;
    ac->ev.addRead = ngx_chat_redis_add_read;
    ac->ev.delRead = ngx_chat_redis_del_read;
    ac->ev.addWrite = ngx_chat_redis_add_write;
    ac->ev.delWrite = ngx_chat_redis_del_write;
    ac->ev.cleanup = ngx_chat_redis_cleanup;

    (void) redisAsyncSetConnectCallback(ac, ngx_chat_redis_connected);
    (void) redisAsyncSetDisconnectCallback(ac, ngx_chat_redis_disconnected);

    /* the connect completes on the first write event */

    ngx_chat_redis_add_write(rd);

    ngx_add_timer(&rd->timer, rd->conf->timeout);
}


/* the worker is exiting: no reconnect, every waiting callback fails now */

void
ngx_chat_redis_close(ngx_chat_redis_t *rd)
{
    rd->closing = 1;
    rd->ready = 0;

    if (rd->reconnect.timer_set) {
        ngx_del_timer(&rd->reconnect);
    }

    if (rd->ac) {
        redisAsyncFree(rd->ac);
    }

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    if (rd->calls) {
        ngx_free(rd->calls);
        rd->calls = NULL;
        rd->nalloc = 0;
    }
}


/*
 * A command waits for its answer at most conf->timeout, and wait ms more
 * when it blocks in Redis on purpose.  NGX_DECLINED: the connection is not
 * up; NGX_BUSY: rd->max commands are in flight.
 */

ngx_int_t
ngx_chat_redis_command(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, ngx_msec_t wait, ngx_uint_t argc, const char **argv,
    const size_t *argvlen)
{
    if (!rd->ready || rd->ac == NULL) {
        return NGX_DECLINED;
    }

    return ngx_chat_redis_send(rd, fn, privdata, wait, argc, argv, argvlen);
}


/* a command hiredis has formatted already (redisFormatCommandArgv) */

ngx_int_t
ngx_chat_redis_formatted(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, char *command, size_t len)
{
    ngx_int_t  rc;

    if (!rd->ready || rd->ac == NULL) {
        return NGX_DECLINED;
    }

    rc = ngx_chat_redis_reserve(rd);
    if (rc != NGX_OK) {
        return rc;
    }

    if (redisAsyncFormattedCommand(rd->ac, ngx_chat_redis_answer, NULL,
                                   command, len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_chat_redis_push(rd, fn, privdata, 0);

    return NGX_OK;
}


static ngx_int_t
ngx_chat_redis_send(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, ngx_msec_t wait, ngx_uint_t argc, const char **argv,
    const size_t *argvlen)
{
    ngx_int_t  rc;

    rc = ngx_chat_redis_reserve(rd);
    if (rc != NGX_OK) {
        return rc;
    }

    if (redisAsyncCommandArgv(rd->ac, ngx_chat_redis_answer, NULL,
                              (int) argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_chat_redis_push(rd, fn, privdata, wait);

    return NGX_OK;
}


/* room in the ring for one more command, before hiredis takes it */

static ngx_int_t
ngx_chat_redis_reserve(ngx_chat_redis_t *rd)
{
    ngx_uint_t              i, n;
    ngx_chat_redis_call_t  *calls;

    if (rd->max && rd->ncalls >= rd->max) {
        return NGX_BUSY;
    }

    if (rd->ncalls < rd->nalloc) {
        return NGX_OK;
    }

    n = rd->nalloc ? 2 * rd->nalloc : NGX_CHAT_REDIS_CALLS;

    calls = ngx_alloc(n * sizeof(ngx_chat_redis_call_t), rd->log);
    if (calls == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < rd->ncalls; i++) {
        calls[i] = rd->calls[(rd->first + i) & (rd->nalloc - 1)];
    }

    if (rd->calls) {
        ngx_free(rd->calls);
    }

    rd->calls = calls;
    rd->first = 0;
    rd->nalloc = n;

    return NGX_OK;
}


static void
ngx_chat_redis_push(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, ngx_msec_t wait)
{
    ngx_chat_redis_call_t  *call;

    call = &rd->calls[(rd->first + rd->ncalls) & (rd->nalloc - 1)];
    rd->ncalls++;

    call->fn = fn;
    call->data = privdata;
    call->deadline = ngx_current_msec + rd->conf->timeout + wait;

    if (!rd->timer.timer_set) {
        ngx_add_timer(&rd->timer, rd->conf->timeout + wait);
    }
}


/*
 * Every answer and every pushed message of the connection comes here;
 * hiredis fails what is in flight with NULL, in order, when the context
 * goes (and calls a subscription's callback with NULL once more).
 */

static void
ngx_chat_redis_answer(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_redis_t       *rd;
    ngx_chat_redis_call_t   call;

    rd = ac->data;

    if (r && rd->on_message && ngx_chat_redis_pushed(r)) {
        rd->on_message(ac, r, NULL);
        return;
    }

    if (rd->ncalls == 0) {
        return;
    }

    call = rd->calls[rd->first];
    rd->first = (rd->first + 1) & (rd->nalloc - 1);
    rd->ncalls--;

    if (call.fn) {
        call.fn(ac, r, call.data);
    }
}


static ngx_uint_t
ngx_chat_redis_pushed(redisReply *reply)
{
    redisReply  *kind;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return 0;
    }

    kind = reply->element[0];

    return (kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0)
           || (kind->len == 8 && ngx_strncmp(kind->str, "pmessage", 8) == 0);
}


/*
 * The connect's deadline, then the oldest command's; on an idle link
 * with on_idle, a heartbeat.  The oldest command in flight is the first,
 * and the others cannot be answered before it.
 */

static void
ngx_chat_redis_timer_handler(ngx_event_t *ev)
{
    ngx_msec_t         left, idle;
    ngx_msec_int_t     d;
    ngx_chat_redis_t  *rd;

    rd = (ngx_chat_redis_t *) ((u_char *) ev
                               - offsetof(ngx_chat_redis_t, timer));

    if (rd->ac == NULL) {
        return;
    }

    if (!(rd->ac->c.flags & REDIS_CONNECTED)) {
        ngx_chat_redis_stalled(rd);
        return;
    }

    left = 0;

    if (rd->ncalls) {
        d = (ngx_msec_int_t) (rd->calls[rd->first].deadline
                              - ngx_current_msec);

        if (d <= 0) {
            ngx_chat_redis_stalled(rd);
            return;
        }

        left = (ngx_msec_t) d;

    } else if (rd->ready && rd->on_idle) {
        rd->on_idle(rd);
    }

    if (rd->on_idle && rd->ac) {
        idle = ngx_chat_redis_idle(rd);

        if (left == 0 || left > idle) {
            left = idle;
        }
    }

    if (left) {
        ngx_add_timer(ev, left);
    }
}


/*
 * Redis keeps the socket open but does not answer (stopped, a long
 * script, a partition without a reset): what waits fails now, and the
 * connection is made again.
 */

static void
ngx_chat_redis_stalled(ngx_chat_redis_t *rd)
{
    ngx_uint_t          connected;
    redisAsyncContext  *ac;

    ac = rd->ac;
    connected = (ac->c.flags & REDIS_CONNECTED) ? 1 : 0;

    if (rd->ready || !rd->down_logged) {
        if (connected) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "chat: redis %s: no answer from \"%V\" in %M ms, "
                          "reconnecting", rd->name, &rd->conf->url,
                          rd->conf->timeout);

        } else {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "chat: redis %s: cannot connect to \"%V\" "
                          "within %M ms", rd->name, &rd->conf->url,
                          rd->conf->timeout);
        }

        rd->down_logged = 1;
    }

    rd->ready = 0;

    /* connected, hiredis calls ngx_chat_redis_disconnected() on its way */

    redisAsyncFree(ac);

    if (!connected) {
        rd->ac = NULL;
        ngx_chat_redis_reconnect(rd);
    }
}


/* a heartbeat every second, more often for a timeout under 2 s */

static ngx_msec_t
ngx_chat_redis_idle(ngx_chat_redis_t *rd)
{
    ngx_msec_t  idle;

    idle = ngx_min(rd->conf->timeout / 2, NGX_CHAT_REDIS_IDLE);

    return idle ? idle : 1;
}


static void
ngx_chat_redis_reconnect(ngx_chat_redis_t *rd)
{
    if (rd->closing || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rd->backoff == 0) {
        rd->backoff = NGX_CHAT_REDIS_BACKOFF_MIN;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "chat: redis %s: reconnecting in %M ms", rd->name,
                   rd->backoff);

    ngx_add_timer(&rd->reconnect, rd->backoff);

    rd->backoff = ngx_min(2 * rd->backoff, NGX_CHAT_REDIS_BACKOFF_MAX);
}


static void
ngx_chat_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_chat_redis_connect((ngx_chat_redis_t *)
                           ((u_char *) ev
                            - offsetof(ngx_chat_redis_t, reconnect)));
}


static void
ngx_chat_redis_connected(const redisAsyncContext *cac, int status)
{
    u_char               db[NGX_INT_T_LEN];
    const char          *argv[3];
    size_t               argvlen[3];
    ngx_uint_t           argc;
    ngx_chat_redis_t    *rd;
    redisAsyncContext   *ac;

    ac = (redisAsyncContext *) cac;
    rd = ac->data;

    if (status != REDIS_OK) {
        if (!rd->down_logged) {
            ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                          "chat: redis %s: cannot connect to \"%V\": %s",
                          rd->name, &rd->conf->url, ac->errstr);
            rd->down_logged = 1;
        }

        /* hiredis frees the context once this returns */

        rd->ac = NULL;
        ngx_chat_redis_reconnect(rd);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "chat: redis %s: connected to \"%V\"",
                  rd->name, &rd->conf->url);

    if (rd->conf->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (rd->conf->user.len) {
            argv[argc] = (char *) rd->conf->user.data;
            argvlen[argc++] = rd->conf->user.len;
        }

        argv[argc] = (char *) rd->conf->password.data;
        argvlen[argc++] = rd->conf->password.len;

        (void) ngx_chat_redis_send(rd, ngx_chat_redis_setup_reply, "AUTH", 0,
                                   argc, argv, argvlen);
    }

    /* SELECT even for 0: its reply says the connection is usable */

    argv[0] = "SELECT";
    argvlen[0] = 6;
    argv[1] = (char *) db;
    argvlen[1] = ngx_sprintf(db, "%ui", rd->conf->db) - db;

    (void) ngx_chat_redis_send(rd, ngx_chat_redis_setup_reply, "SELECT", 0,
                               2, argv, argvlen);
}


static void
ngx_chat_redis_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply        *reply = r;
    ngx_chat_redis_t  *rd;

    rd = ac->data;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "chat: redis %s: %s failed: %s",
                      rd->name, (char *) privdata, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }

    if (ngx_strcmp(privdata, "SELECT") != 0) {
        return;
    }

    if (rd->down_logged) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "chat: redis %s: \"%V\" is reachable again",
                      rd->name, &rd->conf->url);
    }

    rd->ready = 1;
    rd->down_logged = 0;
    rd->backoff = 0;

    if (rd->on_idle) {
        ngx_add_timer(&rd->timer, ngx_chat_redis_idle(rd));
    }

    if (rd->on_ready) {
        rd->on_ready(rd);
    }
}


static void
ngx_chat_redis_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_uint_t         was_ready;
    ngx_chat_redis_t  *rd;

    rd = ac->data;

    was_ready = rd->ready;
    rd->ready = 0;
    rd->ac = NULL;

    if (rd->closing) {
        return;
    }

    if (was_ready || !rd->down_logged) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "chat: redis %s: connection to \"%V\" lost: %s",
                      rd->name, &rd->conf->url,
                      ac->errstr[0] ? ac->errstr : "closed");
        rd->down_logged = 1;
    }

    if (rd->on_down) {
        rd->on_down(rd);
    }

    ngx_chat_redis_reconnect(rd);
}


static void
ngx_chat_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;
    ngx_chat_redis_t  *rd;

    c = ev->data;
    rd = c->data;

    /* level-triggered: what hiredis leaves unread raises the event again */

    if (rd->ac) {
        redisAsyncHandleRead(rd->ac);
    }
}


static void
ngx_chat_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c;
    ngx_chat_redis_t  *rd;

    c = ev->data;
    rd = c->data;

    if (rd->ac) {
        redisAsyncHandleWrite(rd->ac);
    }
}


static void
ngx_chat_redis_add_read(void *privdata)
{
    ngx_chat_redis_t *rd = privdata;

    ngx_chat_worker_watch(rd->connection->read, NGX_READ_EVENT, 1);
}


static void
ngx_chat_redis_del_read(void *privdata)
{
    ngx_chat_redis_t *rd = privdata;

    ngx_chat_worker_watch(rd->connection->read, NGX_READ_EVENT, 0);
}


static void
ngx_chat_redis_add_write(void *privdata)
{
    ngx_chat_redis_t *rd = privdata;

    ngx_chat_worker_watch(rd->connection->write, NGX_WRITE_EVENT, 1);
}


static void
ngx_chat_redis_del_write(void *privdata)
{
    ngx_chat_redis_t *rd = privdata;

    ngx_chat_worker_watch(rd->connection->write, NGX_WRITE_EVENT, 0);
}


/* hiredis closes the socket itself, right after this */

static void
ngx_chat_redis_cleanup(void *privdata)
{
    ngx_chat_redis_t *rd = privdata;

    ngx_connection_t  *c;

    c = rd->connection;

    if (c == NULL) {
        return;
    }

    ngx_chat_worker_forget(c);

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    rd->connection = NULL;
    rd->ac = NULL;
    rd->ready = 0;
    rd->first = 0;
    rd->ncalls = 0;
}
