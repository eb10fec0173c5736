
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_ENCODE_H_INCLUDED_
#define _NGX_CHAT_ENCODE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_protocol.h"


/*
 * Replies and events, built straight into the frame that goes out with
 * every string escaped, whatever bytes came in.
 */

/* the replies of the JSON protocol */
extern ngx_chat_codec_t  ngx_chat_encode_codec;


ngx_chat_frame_t *ngx_chat_encode_welcome(ngx_str_t *user,
    ngx_atomic_uint_t conn, ngx_str_t *worker, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_joined(ngx_str_t *room, uint64_t seq,
    ngx_uint_t truncated, ngx_str_t *id, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_left(ngx_str_t *room, ngx_str_t *id,
    char *reason, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_ack(ngx_str_t *room, uint64_t seq,
    ngx_str_t *id, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_message(ngx_chat_msg_t *msg,
    ngx_log_t *log);
size_t ngx_chat_encode_message_seq_at(ngx_chat_msg_t *msg);
ngx_chat_frame_t *ngx_chat_encode_typing(ngx_str_t *room, ngx_str_t *user,
    ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_online(ngx_str_t *users, u_char *present,
    ngx_uint_t n, ngx_str_t *id, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_presence_event(ngx_str_t *room,
    ngx_str_t *user, ngx_uint_t join, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_presence(ngx_str_t *room,
    ngx_str_t *users, ngx_uint_t n, ngx_str_t *id, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_history(ngx_str_t *room,
    ngx_chat_frame_t **msgs, ngx_uint_t n, ngx_str_t *id, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_heartbeat(ngx_str_t *id, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_close(ngx_uint_t code, char *reason,
    ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_done(char *op, ngx_int_t connections,
    ngx_str_t *id, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_encode_error(ngx_uint_t code, char *message,
    ngx_str_t *id, ngx_log_t *log);


#endif /* _NGX_CHAT_ENCODE_H_INCLUDED_ */
