
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


static void ngx_chat_redis_reconnect(ngx_chat_redis_t *rd);
static void ngx_chat_redis_reconnect_handler(ngx_event_t *ev);
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


char *
ngx_chat_redis_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_chat_redis_conf_t *rc)
{
    u_char     *p, *last, *at, *colon, *slash;
    size_t      len;
    ngx_int_t   db;
    ngx_str_t   path;
    ngx_url_t   u;

    rc->url = *url;
    p = url->data;
    last = p + url->len;

    if (url->len > 5 && ngx_strncmp(p, "unix:", 5) == 0) {

        /* a relative path is relative to the prefix, as nginx's are */

        path.data = p + 5;
        path.len = url->len - 5;

        if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        rc->path = ngx_pnalloc(cf->pool, path.len + 1);
        if (rc->path == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn(rc->path, path.data, path.len + 1);
        return NGX_CONF_OK;
    }

    if (url->len < 9 || ngx_strncmp(p, "redis://", 8) != 0) {
        return "has an invalid URL: use redis://host:port/db or unix:/path";
    }

    p += 8;

    at = ngx_strlchr(p, last, '@');

    if (at) {
        colon = ngx_strlchr(p, at, ':');

        if (colon == NULL) {
            return "has an invalid URL: use redis://:password@host";
        }

        rc->user.data = p;
        rc->user.len = colon - p;
        rc->password.data = colon + 1;
        rc->password.len = at - colon - 1;

        p = at + 1;
    }

    slash = ngx_strlchr(p, last, '/');

    if (slash) {
        if (slash + 1 < last) {
            db = ngx_atoi(slash + 1, last - slash - 1);
            if (db == NGX_ERROR) {
                return "has an invalid database number";
            }

            rc->db = db;
        }

        last = slash;
    }

    /* hiredis resolves names synchronously: resolve them here, once */

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = p;
    u.url.len = last - p;
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in chat_redis \"%V\"", u.err, url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        return "has a host that does not resolve";
    }

    rc->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (rc->host == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, rc->host,
                        NGX_SOCKADDR_STRLEN, 0);
    rc->host[len] = '\0';
    rc->port = u.port;

    return NGX_CONF_OK;
}


void
ngx_chat_redis_connect(ngx_chat_redis_t *rd)
{
    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    ngx_chat_worker_timer(&rd->reconnect, ngx_chat_redis_reconnect_handler,
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
}


ngx_int_t
ngx_chat_redis_command(ngx_chat_redis_t *rd, redisCallbackFn *fn,
    void *privdata, ngx_uint_t argc, const char **argv,
    const size_t *argvlen)
{
    if (!rd->ready || rd->ac == NULL) {
        return NGX_DECLINED;
    }

    if (redisAsyncCommandArgv(rd->ac, fn, privdata, (int) argc, argv,
                              argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
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

        (void) redisAsyncCommandArgv(ac, ngx_chat_redis_setup_reply, "AUTH",
                                     argc, argv, argvlen);
    }

    /* SELECT even for 0: its reply says the connection is usable */

    argv[0] = "SELECT";
    argvlen[0] = 6;
    argv[1] = (char *) db;
    argvlen[1] = ngx_sprintf(db, "%ui", rd->conf->db) - db;

    (void) redisAsyncCommandArgv(ac, ngx_chat_redis_setup_reply, "SELECT",
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

    rd->connection = NULL;
    rd->ac = NULL;
    rd->ready = 0;
}
