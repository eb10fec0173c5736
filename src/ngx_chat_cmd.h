
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_CMD_H_INCLUDED_
#define _NGX_CHAT_CMD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_redis.h"
#include "ngx_chat_scripts.h"


/*
 * Redis commands: the worker's command connection, one builder for their
 * arguments, the names of every key, and the Lua scripts of src/lua/,
 * loaded on every connect and always called by their SHA1.
 */

/* the keys, each under chat_key_prefix ("chat" below) */

#define NGX_CHAT_KEY_ROOM          0   /* chat:{R}, the room's channel */
#define NGX_CHAT_KEY_SEQ           1   /* chat:{R}:seq */
#define NGX_CHAT_KEY_RECENT        2   /* chat:{R}:recent */
#define NGX_CHAT_KEY_PRESENCE      3   /* chat:{R}:presence */
#define NGX_CHAT_KEY_PRESENCE_W    4   /* chat:{R}:presence:w */
#define NGX_CHAT_KEY_RESEND        5   /* chat:{R}:id:LEN:U:ID (R, U, ID) */
#define NGX_CHAT_KEY_USER          6   /* chat:presence:user:U */
#define NGX_CHAT_KEY_CONNS         7   /* chat:presence:conns:U */
#define NGX_CHAT_KEY_WORKERS       8   /* chat:workers */
#define NGX_CHAT_KEY_WORKER_ROOMS  9   /* chat:worker:W:rooms */
#define NGX_CHAT_KEY_STREAM        10  /* chat:stream */
#define NGX_CHAT_KEY_BAN           11  /* chat:{R}:ban:U (R, U) */
#define NGX_CHAT_KEY_CONTROL       12  /* chat:control, a channel */
#define NGX_CHAT_KEY_NOTIFY        13  /* chat:notify */
#define NGX_CHAT_KEY_PING          14  /* chat:worker:W:ping, a channel */

#define NGX_CHAT_CMD_ARGS          20  /* a send with chat_notify */
#define NGX_CHAT_CMD_BUF           1024


typedef struct ngx_chat_cmd_chunk_s  ngx_chat_cmd_chunk_t;


/*
 * One command being built, on the caller's stack.  An argument is either
 * referred to (it must live until the command is sent) or written into
 * the command; hiredis copies everything when the command is sent.
 */

typedef struct {
    ngx_uint_t                  argc;
    ngx_uint_t                  nalloc;
    const char                **argv;
    size_t                     *argvlen;
    ngx_int_t                   script;       /* NGX_CHAT_SCRIPT_*, or -1 */
    ngx_msec_t                  wait;         /* blocks in Redis so long */
    u_char                     *pos;          /* where written args go */
    u_char                     *end;
    ngx_chat_cmd_chunk_t       *chunks;       /* on the heap, if any */
    unsigned                    failed:1;

    const char                 *args[NGX_CHAT_CMD_ARGS];
    size_t                      lens[NGX_CHAT_CMD_ARGS];
    u_char                      buf[NGX_CHAT_CMD_BUF];
} ngx_chat_cmd_t;


ngx_int_t ngx_chat_cmd_init_process(ngx_cycle_t *cycle,
    ngx_chat_redis_pt on_ready);
void ngx_chat_cmd_exit_process(void);
ngx_uint_t ngx_chat_cmd_ready(void);
ngx_uint_t ngx_chat_cmd_busy(void);
void ngx_chat_cmd_load(ngx_chat_redis_t *rd);

void ngx_chat_cmd_start(ngx_chat_cmd_t *cmd, char *name);
void ngx_chat_cmd_eval(ngx_chat_cmd_t *cmd, ngx_uint_t script,
    ngx_uint_t nkeys);
void ngx_chat_cmd_add(ngx_chat_cmd_t *cmd, char *literal);
void ngx_chat_cmd_str(ngx_chat_cmd_t *cmd, ngx_str_t *s);
void ngx_chat_cmd_num(ngx_chat_cmd_t *cmd, uint64_t n);
void ngx_chat_cmd_fmt(ngx_chat_cmd_t *cmd, const char *fmt, ...);
void ngx_chat_cmd_key(ngx_chat_cmd_t *cmd, ngx_uint_t key, ngx_str_t *a,
    ngx_str_t *b, ngx_str_t *c);
ngx_int_t ngx_chat_cmd_send(ngx_chat_cmd_t *cmd, ngx_chat_redis_t *rd,
    redisCallbackFn *fn, void *data);

ngx_int_t ngx_chat_cmd_flush(void);
ngx_int_t ngx_chat_cmd_room(ngx_str_t *channel, ngx_str_t *room);
ngx_uint_t ngx_chat_cmd_control(ngx_str_t *channel);
ngx_int_t ngx_chat_cmd_uint(redisReply *reply, uint64_t *n);


#endif /* _NGX_CHAT_CMD_H_INCLUDED_ */
