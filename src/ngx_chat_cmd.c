
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_sha1.h>
#include "ngx_chat_cmd.h"


/*
 * Every Redis command of the module is built here, its keys named here,
 * and every script called by its SHA1 from here.
 */


/* the longest argument written into a command: a resend key */
#define NGX_CHAT_CMD_ARG_MAX  (NGX_CHAT_PREFIX_MAX + NGX_CHAT_ROOM_MAX       \
                               + NGX_CHAT_USER_MAX + NGX_CHAT_ID_MAX + 64)

#define NGX_CHAT_CMD_CHUNK    4096


struct ngx_chat_cmd_chunk_s {
    ngx_chat_cmd_chunk_t       *next;
};


/* a script call in flight: what is needed to send it again */

typedef struct {
    redisCallbackFn            *fn;
    void                       *data;
    char                       *command;      /* as hiredis formatted it */
    int                         len;
    ngx_uint_t                  script;
    unsigned                    retried:1;
} ngx_chat_cmd_call_t;


static void ngx_chat_cmd_ready_handler(ngx_chat_redis_t *rd);
static ngx_int_t ngx_chat_cmd_load_script(ngx_chat_redis_t *rd,
    ngx_uint_t script);
static void ngx_chat_cmd_loaded(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_cmd_called(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_chat_cmd_call(ngx_chat_cmd_t *cmd, ngx_chat_redis_t *rd,
    redisCallbackFn *fn, void *data);
static u_char *ngx_chat_cmd_space(ngx_chat_cmd_t *cmd);
static void ngx_chat_cmd_push(ngx_chat_cmd_t *cmd, const char *arg,
    size_t len);
static void ngx_chat_cmd_free(ngx_chat_cmd_t *cmd);


static char  *ngx_chat_cmd_keys[] = {
    "%V:{%V}",
    "%V:{%V}:seq",
    "%V:{%V}:recent",
    "%V:{%V}:presence",
    "%V:{%V}:presence:w",
    NULL,
    "%V:presence:user:%V",
    "%V:presence:conns:%V",
    "%V:workers",
    "%V:worker:%V:rooms",
    "%V:stream",
    "%V:{%V}:ban:%V",
    "%V:control",
    "%V:notify",
    "%V:worker:%V:ping"
};


static ngx_chat_redis_t   ngx_chat_cmd_link;
static ngx_chat_redis_pt  ngx_chat_cmd_on_ready;
static ngx_str_t          ngx_chat_cmd_prefix;
static ngx_uint_t         ngx_chat_cmd_max;
static ngx_uint_t         ngx_chat_cmd_full;
static u_char             ngx_chat_cmd_sha[NGX_CHAT_SCRIPTS][40];


/* the command connection: on_ready once it is up and the scripts loaded */

ngx_int_t
ngx_chat_cmd_init_process(ngx_cycle_t *cycle, ngx_chat_redis_pt on_ready)
{
    u_char                 hash[20];
    ngx_uint_t             i;
    ngx_sha1_t             sha1;
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_chat_cmd_prefix = cmcf->key_prefix;

    for (i = 0; i < NGX_CHAT_SCRIPTS; i++) {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, ngx_chat_scripts[i].data,
                        ngx_chat_scripts[i].len);
        ngx_sha1_final(hash, &sha1);

        (void) ngx_hex_dump(ngx_chat_cmd_sha[i], hash, 20);
    }

    ngx_chat_cmd_on_ready = on_ready;
    ngx_chat_cmd_max = cmcf->redis_max_pending;

    /* past the requests' bound, room for what keeps presence right */

    ngx_chat_cmd_link.max = 2 * cmcf->redis_max_pending;
    ngx_chat_cmd_link.conf = cmcf->redis;
    ngx_chat_cmd_link.log = cycle->log;
    ngx_chat_cmd_link.name = "commands";
    ngx_chat_cmd_link.on_ready = ngx_chat_cmd_ready_handler;

    ngx_chat_redis_connect(&ngx_chat_cmd_link);

    return NGX_OK;
}


void
ngx_chat_cmd_exit_process(void)
{
    ngx_chat_redis_close(&ngx_chat_cmd_link);
}


ngx_uint_t
ngx_chat_cmd_ready(void)
{
    return ngx_chat_cmd_link.ready;
}


/*
 * chat_redis_max_pending commands are in flight on the command
 * connection: a new request gets "unavailable" before anything is
 * allocated for it.
 */

ngx_uint_t
ngx_chat_cmd_busy(void)
{
    if (ngx_chat_cmd_link.ncalls < ngx_chat_cmd_max) {

        if (ngx_chat_cmd_full && ngx_chat_cmd_link.ncalls
                                 < ngx_chat_cmd_max / 2)
        {
            ngx_chat_cmd_full = 0;
        }

        return 0;
    }

    if (!ngx_chat_cmd_full) {
        ngx_log_error(NGX_LOG_WARN, ngx_chat_cmd_link.log, 0,
                      "chat: redis commands: %ui in flight, new requests "
                      "get \"unavailable\" (chat_redis_max_pending)",
                      ngx_chat_cmd_link.ncalls);
        ngx_chat_cmd_full = 1;
    }

    return 1;
}


static void
ngx_chat_cmd_ready_handler(ngx_chat_redis_t *rd)
{
    ngx_chat_cmd_load(rd);

    if (ngx_chat_cmd_on_ready) {
        ngx_chat_cmd_on_ready(rd);
    }
}


/*
 * On every (re)connect: a restarted Redis has no scripts.  What is sent
 * on the connection afterwards runs after them.
 */

void
ngx_chat_cmd_load(ngx_chat_redis_t *rd)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_CHAT_SCRIPTS; i++) {
        (void) ngx_chat_cmd_load_script(rd, i);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "chat: redis %s: scripts loaded", rd->name);
}


static ngx_int_t
ngx_chat_cmd_load_script(ngx_chat_redis_t *rd, ngx_uint_t script)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_start(&cmd, "SCRIPT");
    ngx_chat_cmd_add(&cmd, "LOAD");
    ngx_chat_cmd_str(&cmd, &ngx_chat_scripts[script]);

    return ngx_chat_cmd_send(&cmd, rd, ngx_chat_cmd_loaded,
                             (void *) (uintptr_t) script);
}


static void
ngx_chat_cmd_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_uint_t         i;
    redisReply        *reply = r;
    ngx_chat_redis_t  *rd;

    i = (uintptr_t) privdata;
    rd = ac->data;

    if (reply == NULL) {
        return;
    }

    /* a script Redis cannot compile, or a SHA1 of ours it does not share */

    if (reply->type != REDIS_REPLY_STRING || reply->len != 40
        || ngx_strncmp(reply->str, ngx_chat_cmd_sha[i], 40) != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, rd->log, 0,
                      "chat: redis %s: SCRIPT LOAD of script %ui failed: "
                      "%*s", rd->name, i, (size_t) reply->len,
                      reply->str ? reply->str : "");
    }
}


void
ngx_chat_cmd_start(ngx_chat_cmd_t *cmd, char *name)
{
    cmd->argc = 0;
    cmd->nalloc = NGX_CHAT_CMD_ARGS;
    cmd->argv = cmd->args;
    cmd->argvlen = cmd->lens;
    cmd->script = -1;
    cmd->wait = 0;
    cmd->pos = cmd->buf;
    cmd->end = cmd->buf + NGX_CHAT_CMD_BUF;
    cmd->chunks = NULL;
    cmd->failed = 0;

    if (name) {
        ngx_chat_cmd_add(cmd, name);
    }
}


/* EVALSHA of a script with its first nkeys arguments as KEYS */

void
ngx_chat_cmd_eval(ngx_chat_cmd_t *cmd, ngx_uint_t script, ngx_uint_t nkeys)
{
    ngx_chat_cmd_start(cmd, "EVALSHA");
    ngx_chat_cmd_push(cmd, (char *) ngx_chat_cmd_sha[script], 40);
    ngx_chat_cmd_num(cmd, nkeys);

    cmd->script = script;
}


void
ngx_chat_cmd_add(ngx_chat_cmd_t *cmd, char *literal)
{
    ngx_chat_cmd_push(cmd, literal, ngx_strlen(literal));
}


void
ngx_chat_cmd_str(ngx_chat_cmd_t *cmd, ngx_str_t *s)
{
    ngx_chat_cmd_push(cmd, (char *) s->data, s->len);
}


void
ngx_chat_cmd_num(ngx_chat_cmd_t *cmd, uint64_t n)
{
    ngx_chat_cmd_fmt(cmd, "%uL", n);
}


void
ngx_chat_cmd_fmt(ngx_chat_cmd_t *cmd, const char *fmt, ...)
{
    u_char   *p, *last;
    va_list   args;

    p = ngx_chat_cmd_space(cmd);
    if (p == NULL) {
        return;
    }

    va_start(args, fmt);
    last = ngx_vslprintf(p, p + NGX_CHAT_CMD_ARG_MAX, fmt, args);
    va_end(args);

    cmd->pos = last;
    ngx_chat_cmd_push(cmd, (char *) p, last - p);
}


/* a key name: a is the room or the user or the worker, b, c see above */

void
ngx_chat_cmd_key(ngx_chat_cmd_t *cmd, ngx_uint_t key, ngx_str_t *a,
    ngx_str_t *b, ngx_str_t *c)
{
    if (key == NGX_CHAT_KEY_RESEND) {
        ngx_chat_cmd_fmt(cmd, "%V:{%V}:id:%uz:%V:%V", &ngx_chat_cmd_prefix,
                         a, b->len, b, c);
        return;
    }

    ngx_chat_cmd_fmt(cmd, ngx_chat_cmd_keys[key], &ngx_chat_cmd_prefix, a, b);
}


/*
 * Sends the command on rd (the command connection if NULL) and frees it,
 * sent or not.  NGX_DECLINED: the connection is not up; NGX_BUSY: too
 * many commands are in flight on it.
 */

ngx_int_t
ngx_chat_cmd_send(ngx_chat_cmd_t *cmd, ngx_chat_redis_t *rd,
    redisCallbackFn *fn, void *data)
{
    ngx_int_t  rc;

    if (rd == NULL) {
        rd = &ngx_chat_cmd_link;
    }

    if (cmd->failed) {
        rc = NGX_ERROR;

    } else if (cmd->script >= 0) {
        rc = ngx_chat_cmd_call(cmd, rd, fn, data);

    } else {
        rc = ngx_chat_redis_command(rd, fn, data, cmd->wait, cmd->argc,
                                    cmd->argv, cmd->argvlen);
    }

    ngx_chat_cmd_free(cmd);

    return rc;
}


/* a script call keeps its command, to send it again after a NOSCRIPT */

static ngx_int_t
ngx_chat_cmd_call(ngx_chat_cmd_t *cmd, ngx_chat_redis_t *rd,
    redisCallbackFn *fn, void *data)
{
    int                   len;
    char                 *command;
    ngx_int_t             rc;
    ngx_chat_cmd_call_t  *call;

    if (!rd->ready || rd->ac == NULL) {
        return NGX_DECLINED;
    }

    call = ngx_alloc(sizeof(ngx_chat_cmd_call_t), rd->log);
    if (call == NULL) {
        return NGX_ERROR;
    }

    len = redisFormatCommandArgv(&command, (int) cmd->argc, cmd->argv,
                                 cmd->argvlen);
    if (len < 0) {
        ngx_free(call);
        return NGX_ERROR;
    }

    call->fn = fn;
    call->data = data;
    call->command = command;
    call->len = len;
    call->script = cmd->script;
    call->retried = 0;

    rc = ngx_chat_redis_formatted(rd, ngx_chat_cmd_called, call, command,
                                  len);

    if (rc != NGX_OK) {
        redisFreeCommand(command);
        ngx_free(call);
    }

    return rc;
}


static void
ngx_chat_cmd_called(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_cmd_call_t *call = privdata;

    redisReply        *reply = r;
    ngx_chat_redis_t  *rd;

    rd = ac->data;

    /* Redis lost its scripts (SCRIPT FLUSH, a failover): once more */

    if (reply && reply->type == REDIS_REPLY_ERROR && !call->retried
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "chat: redis %s: script %ui was not loaded, "
                      "loading it again", rd->name, call->script);

        call->retried = 1;

        if (ngx_chat_cmd_load_script(rd, call->script) == NGX_OK
            && ngx_chat_redis_formatted(rd, ngx_chat_cmd_called, call,
                                        call->command, call->len)
               == NGX_OK)
        {
            return;
        }
    }

    if (call->fn) {
        call->fn(ac, r, call->data);
    }

    redisFreeCommand(call->command);
    ngx_free(call);
}


/*
 * The worker is exiting: what is queued for the command connection is
 * written now, without waiting for the event loop.  NGX_OK: all of it.
 */

ngx_int_t
ngx_chat_cmd_flush(void)
{
    redisAsyncContext  *ac;

    ac = ngx_chat_cmd_link.ac;

    if (ac == NULL || !ngx_chat_cmd_link.ready) {
        return NGX_DECLINED;
    }

    redisAsyncHandleWrite(ac);

    if (ngx_chat_cmd_link.ac == NULL || sdslen(ac->c.obuf) != 0) {
        return NGX_AGAIN;
    }

    return NGX_OK;
}


/* "prefix:{room}", the inverse of NGX_CHAT_KEY_ROOM */

ngx_int_t
ngx_chat_cmd_room(ngx_str_t *channel, ngx_str_t *room)
{
    size_t  n;

    n = ngx_chat_cmd_prefix.len;

    if (channel->len < n + 4
        || ngx_strncmp(channel->data, ngx_chat_cmd_prefix.data, n) != 0
        || channel->data[n] != ':'
        || channel->data[n + 1] != '{'
        || channel->data[channel->len - 1] != '}')
    {
        return NGX_DECLINED;
    }

    room->data = channel->data + n + 2;
    room->len = channel->len - n - 3;

    return NGX_OK;
}


/* "prefix:control": the channel of the application's commands */

ngx_uint_t
ngx_chat_cmd_control(ngx_str_t *channel)
{
    size_t  n;

    n = ngx_chat_cmd_prefix.len;

    return channel->len == n + sizeof(":control") - 1
           && ngx_strncmp(channel->data, ngx_chat_cmd_prefix.data, n) == 0
           && ngx_strncmp(channel->data + n, ":control",
                          sizeof(":control") - 1) == 0;
}


/* an integer reply, or a string of digits, or nil (0) */

ngx_int_t
ngx_chat_cmd_uint(redisReply *reply, uint64_t *n)
{
    size_t    i;
    uint64_t  v;

    if (reply == NULL) {
        return NGX_ERROR;
    }

    switch (reply->type) {

    case REDIS_REPLY_INTEGER:
        if (reply->integer < 0) {
            return NGX_ERROR;
        }

        *n = (uint64_t) reply->integer;
        return NGX_OK;

    case REDIS_REPLY_NIL:
        *n = 0;
        return NGX_OK;

    case REDIS_REPLY_STRING:
        if (reply->len == 0 || reply->len > 18) {
            return NGX_ERROR;
        }

        for (v = 0, i = 0; i < reply->len; i++) {
            if (reply->str[i] < '0' || reply->str[i] > '9') {
                return NGX_ERROR;
            }

            v = v * 10 + (reply->str[i] - '0');
        }

        *n = v;
        return NGX_OK;

    default:
        return NGX_ERROR;
    }
}


/* room for one written argument: in the command, or in a chunk */

static u_char *
ngx_chat_cmd_space(ngx_chat_cmd_t *cmd)
{
    ngx_chat_cmd_chunk_t  *chunk;

    if (cmd->failed) {
        return NULL;
    }

    if ((size_t) (cmd->end - cmd->pos) >= NGX_CHAT_CMD_ARG_MAX) {
        return cmd->pos;
    }

    chunk = ngx_alloc(sizeof(ngx_chat_cmd_chunk_t) + NGX_CHAT_CMD_CHUNK,
                      ngx_cycle->log);
    if (chunk == NULL) {
        cmd->failed = 1;
        return NULL;
    }

    chunk->next = cmd->chunks;
    cmd->chunks = chunk;

    cmd->pos = (u_char *) (chunk + 1);
    cmd->end = cmd->pos + NGX_CHAT_CMD_CHUNK;

    return cmd->pos;
}


static void
ngx_chat_cmd_push(ngx_chat_cmd_t *cmd, const char *arg, size_t len)
{
    size_t        *argvlen;
    ngx_uint_t     n;
    const char   **argv;

    if (cmd->failed) {
        return;
    }

    if (cmd->argc == cmd->nalloc) {
        n = 2 * cmd->nalloc;

        argv = ngx_alloc(n * (sizeof(char *) + sizeof(size_t)),
                         ngx_cycle->log);
        if (argv == NULL) {
            cmd->failed = 1;
            return;
        }

        argvlen = (size_t *) (argv + n);

        ngx_memcpy(argv, cmd->argv, cmd->argc * sizeof(char *));
        ngx_memcpy(argvlen, cmd->argvlen, cmd->argc * sizeof(size_t));

        if (cmd->argv != cmd->args) {
            ngx_free(cmd->argv);
        }

        cmd->argv = argv;
        cmd->argvlen = argvlen;
        cmd->nalloc = n;
    }

    cmd->argv[cmd->argc] = arg;
    cmd->argvlen[cmd->argc++] = len;
}


static void
ngx_chat_cmd_free(ngx_chat_cmd_t *cmd)
{
    ngx_chat_cmd_chunk_t  *chunk;

    if (cmd->argv != cmd->args) {
        ngx_free(cmd->argv);
        cmd->argv = cmd->args;
    }

    while (cmd->chunks) {
        chunk = cmd->chunks;
        cmd->chunks = chunk->next;
        ngx_free(chunk);
    }
}
