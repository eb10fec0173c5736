
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_PROTOCOL_H_INCLUDED_
#define _NGX_CHAT_PROTOCOL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <cjson/cJSON.h>
#include "ngx_chat.h"
#include "ngx_chat_frame.h"


/*
 * The JSON protocol's vocabulary: requests, error codes, limits, and a
 * message as the stores keep it.  ngx_chat_decode.c reads requests and
 * stored events; ngx_chat_encode.c writes replies and events.
 */

#define NGX_CHAT_REQ_JOIN         1
#define NGX_CHAT_REQ_LEAVE        2
#define NGX_CHAT_REQ_SEND         3
#define NGX_CHAT_REQ_HISTORY      4
#define NGX_CHAT_REQ_PRESENCE     5
#define NGX_CHAT_REQ_ONLINE       6
#define NGX_CHAT_REQ_HEARTBEAT    7
#define NGX_CHAT_REQ_TYPING       8
#define NGX_CHAT_REQ_KICK         9   /* chat_admin's */
#define NGX_CHAT_REQ_DISCONNECT   10

#define NGX_CHAT_ERR_NONE            0
#define NGX_CHAT_ERR_BAD_REQUEST     1
#define NGX_CHAT_ERR_NOT_JOINED      2
#define NGX_CHAT_ERR_TOO_LARGE       3
#define NGX_CHAT_ERR_RATE_LIMITED    4
#define NGX_CHAT_ERR_TOO_MANY_ROOMS  5
#define NGX_CHAT_ERR_FORBIDDEN       6
#define NGX_CHAT_ERR_UNAVAILABLE     7
#define NGX_CHAT_ERR_INTERNAL        8

#define NGX_CHAT_HISTORY_DEFAULT  50
#define NGX_CHAT_HISTORY_MAX      100
#define NGX_CHAT_ONLINE_MAX       100
#define NGX_CHAT_MSG_ID_LEN       36
#define NGX_CHAT_BAN_MAX          315360000   /* seconds: ten years */


typedef struct {
    ngx_uint_t          op;
    ngx_str_t           id;
    ngx_str_t           room;
    ngx_str_t           text;
    ngx_str_t           token;      /* join */
    uint64_t            since;
    uint64_t            before;
    ngx_uint_t          limit;
    cJSON              *users;
    ngx_str_t           user;       /* kick, disconnect */
    uint64_t            ban;        /* kick: seconds */
    unsigned            has_since:1;
    unsigned            has_before:1;

    ngx_uint_t          error;
    char               *reason;

    cJSON              *json;
} ngx_chat_request_t;


typedef struct {
    ngx_str_t           room;
    ngx_str_t           user;
    ngx_str_t           text;
    uint64_t            seq;
    uint64_t            ts;
    u_char              msg_id[NGX_CHAT_MSG_ID_LEN];
} ngx_chat_msg_t;


/*
 * How a session's replies are written: the JSON protocol's own encoders,
 * or those of another wire protocol carrying the same requests.
 */

typedef struct {
    ngx_chat_frame_t         *(*welcome)(ngx_str_t *user,
                                         ngx_atomic_uint_t conn,
                                         ngx_str_t *worker, ngx_log_t *log);
    ngx_chat_frame_t         *(*joined)(ngx_str_t *room, uint64_t seq,
                                        ngx_uint_t truncated, ngx_str_t *id,
                                        ngx_log_t *log);
    ngx_chat_frame_t         *(*left)(ngx_str_t *room, ngx_str_t *id,
                                      char *reason, ngx_log_t *log);
    ngx_chat_frame_t         *(*ack)(ngx_str_t *room, uint64_t seq,
                                     ngx_str_t *id, ngx_log_t *log);
    ngx_chat_frame_t         *(*history)(ngx_str_t *room,
                                         ngx_chat_frame_t **msgs,
                                         ngx_uint_t n, ngx_str_t *id,
                                         ngx_log_t *log);
    ngx_chat_frame_t         *(*presence)(ngx_str_t *room, ngx_str_t *users,
                                          ngx_uint_t n, ngx_str_t *id,
                                          ngx_log_t *log);
    ngx_chat_frame_t         *(*online)(ngx_str_t *users, u_char *present,
                                        ngx_uint_t n, ngx_str_t *id,
                                        ngx_log_t *log);
    ngx_chat_frame_t         *(*heartbeat)(ngx_str_t *id, ngx_log_t *log);
    ngx_chat_frame_t         *(*error)(ngx_uint_t code, char *message,
                                       ngx_str_t *id, ngx_log_t *log);
} ngx_chat_codec_t;


#endif /* _NGX_CHAT_PROTOCOL_H_INCLUDED_ */
