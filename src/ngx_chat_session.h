
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_SESSION_H_INCLUDED_
#define _NGX_CHAT_SESSION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_protocol.h"


/*
 * One chat client, whatever carries it: its user, its rooms, its limits,
 * its requests and what they are answered with.  It reaches the client
 * through a transport and writes its replies with a codec.
 */

ngx_chat_session_t *ngx_chat_session_create(ngx_pool_t *pool,
    ngx_str_t *user, ngx_str_t *rooms, ngx_atomic_uint_t number,
    ngx_chat_loc_conf_t *conf, ngx_chat_transport_t *transport,
    ngx_chat_codec_t *codec, void *conn, ngx_log_t *log);
void ngx_chat_session_start(ngx_chat_session_t *s,
    ngx_chat_limit_held_t *limit);
void ngx_chat_session_request(ngx_chat_session_t *s,
    ngx_chat_request_t *req);
void ngx_chat_session_join(ngx_chat_session_t *s, ngx_str_t *room,
    ngx_uint_t has_since, uint64_t since);
void ngx_chat_session_close(ngx_chat_session_t *s);
ngx_uint_t ngx_chat_session_command(ngx_uint_t op, ngx_str_t *user,
    ngx_str_t *room);
ngx_uint_t ngx_chat_session_kick(ngx_str_t *user, ngx_str_t *room);
ngx_uint_t ngx_chat_session_disconnect(ngx_str_t *user);


#endif /* _NGX_CHAT_SESSION_H_INCLUDED_ */
