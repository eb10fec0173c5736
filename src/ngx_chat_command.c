
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_command.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_json.h"


/*
 * The application's commands for every worker of every host (chat_admin's
 * kick and disconnect), through the control channel in Redis: each
 * worker subscribes to it and runs what it brings on its own sessions.
 * A worker whose subscriber is down when a command is published misses
 * it; a kick's ban is in Redis, and holds for every join.
 */

#define NGX_CHAT_COMMAND_LEN                                                  \
    (sizeof("{\"op\":\"disconnect\",\"user\":,\"room\":}") - 1                \
     + 2 + 6 * NGX_CHAT_USER_MAX + 2 + 6 * NGX_CHAT_ROOM_MAX)


static void ngx_chat_command_kicked(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_command_sent(redisAsyncContext *ac, void *r,
    void *privdata);
static size_t ngx_chat_command_json(u_char *buf, char *op, ngx_str_t *user,
    ngx_str_t *room);


void
ngx_chat_command_kick(ngx_chat_store_op_t *op)
{
    u_char          buf[NGX_CHAT_COMMAND_LEN];
    ngx_str_t       json;
    ngx_chat_cmd_t  cmd;

    json.data = buf;
    json.len = ngx_chat_command_json(buf, "kick", &op->user,
                                     &op->room->node.str);

    ngx_chat_cmd_eval(&cmd, NGX_CHAT_SCRIPT_KICK, 2);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_BAN, &op->room->node.str, &op->user,
                     NULL);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_PRESENCE, &op->room->node.str, NULL,
                     NULL);
    ngx_chat_cmd_str(&cmd, &op->user);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_CONTROL, NULL, NULL, NULL);
    ngx_chat_cmd_num(&cmd, op->ban);
    ngx_chat_cmd_str(&cmd, &json);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_command_kicked, op)
        != NGX_OK)
    {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


static void
ngx_chat_command_kicked(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    uint64_t  n;

    if (ngx_chat_cmd_uint(r, &n) != NGX_OK) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    op->count = (ngx_uint_t) n;

    ngx_chat_store_op_done(op);
}


void
ngx_chat_command_disconnect(ngx_chat_store_op_t *op)
{
    u_char          buf[NGX_CHAT_COMMAND_LEN];
    ngx_str_t       json;
    ngx_chat_cmd_t  cmd;

    json.data = buf;
    json.len = ngx_chat_command_json(buf, "disconnect", &op->user, NULL);

    ngx_chat_cmd_start(&cmd, "PUBLISH");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_CONTROL, NULL, NULL, NULL);
    ngx_chat_cmd_str(&cmd, &json);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_command_sent, op) != NGX_OK) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


static void
ngx_chat_command_sent(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    uint64_t  n;

    if (ngx_chat_cmd_uint(r, &n) != NGX_OK) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    ngx_chat_store_op_done(op);
}


/*
 * What the control channel brought: anyone with access to Redis could
 * have written it, so it is decoded as a chat_admin command is.
 */

void
ngx_chat_command_arrived(u_char *data, size_t len)
{
    ngx_uint_t          n;
    ngx_chat_request_t  req;

    if (ngx_chat_decode_command(data, len, &req) != NGX_OK
        || (req.op != NGX_CHAT_REQ_KICK && req.op != NGX_CHAT_REQ_DISCONNECT))
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat: dropped a malformed command of %uz bytes on "
                      "the control channel", len);
        ngx_chat_decode_free(&req);
        return;
    }

    n = ngx_chat_store_command(req.op, &req.user, &req.room);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: command %ui for \"%V\": %ui connections",
                   req.op, &req.user, n);

    ngx_chat_decode_free(&req);
}


static size_t
ngx_chat_command_json(u_char *buf, char *op, ngx_str_t *user,
    ngx_str_t *room)
{
    u_char  *p;

    p = ngx_sprintf(buf, "{\"op\":\"%s\",\"user\":", op);
    p = ngx_chat_json_str(p, user);

    if (room) {
        p = ngx_cpymem(p, ",\"room\":", sizeof(",\"room\":") - 1);
        p = ngx_chat_json_str(p, room);
    }

    *p++ = '}';

    return p - buf;
}
