
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_FRAME_H_INCLUDED_
#define _NGX_CHAT_FRAME_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_utf8.h"


#define NGX_CHAT_OP_CONT          0x0
#define NGX_CHAT_OP_TEXT          0x1
#define NGX_CHAT_OP_BINARY        0x2
#define NGX_CHAT_OP_CLOSE         0x8
#define NGX_CHAT_OP_PING          0x9
#define NGX_CHAT_OP_PONG          0xa

#define NGX_CHAT_CLOSE_NORMAL     1000
#define NGX_CHAT_CLOSE_GOING_AWAY 1001
#define NGX_CHAT_CLOSE_PROTOCOL   1002
#define NGX_CHAT_CLOSE_DATA       1003
#define NGX_CHAT_CLOSE_NO_STATUS  1005
#define NGX_CHAT_CLOSE_UTF8       1007
#define NGX_CHAT_CLOSE_POLICY     1008
#define NGX_CHAT_CLOSE_TOO_BIG    1009
#define NGX_CHAT_CLOSE_INTERNAL   1011
#define NGX_CHAT_CLOSE_TRY_LATER  1013

#define NGX_CHAT_CONTROL_MAX      125
#define NGX_CHAT_HEADER_MAX       10


/* what ngx_chat_frame_parse() hands to its caller */

#define NGX_CHAT_FRAME_DATA       1
#define NGX_CHAT_FRAME_CONTROL    2


typedef struct {
    ngx_uint_t          type;
    ngx_uint_t          opcode;
    u_char             *data;
    size_t              len;
    ngx_uint_t          close_code;
    unsigned            first:1;
    unsigned            last:1;
} ngx_chat_frame_event_t;


typedef struct {
    uint64_t            left;
    uint64_t            msg_len;
    size_t              max_size;
    ngx_chat_utf8_t     utf8;
    u_char              state;
    u_char              opcode;
    u_char              msg_opcode;
    u_char              len_bytes;
    u_char              ext_len;
    u_char              mask[4];
    u_char              mask_pos;
    u_char              ctl_len;
    unsigned            fin:1;
    unsigned            first:1;
    unsigned            allow_binary:1;
    u_char              ctl[NGX_CHAT_CONTROL_MAX];
} ngx_chat_frame_parser_t;


/* what an outgoing frame carries, for transports that tell them apart */

#define NGX_CHAT_EVENT_OTHER      0
#define NGX_CHAT_EVENT_WELCOME    1
#define NGX_CHAT_EVENT_JOINED     2
#define NGX_CHAT_EVENT_ERROR      3


/* an outgoing frame, built once and shared by every connection it goes to */

struct ngx_chat_frame_s {
    ngx_uint_t          refs;
    uint64_t            seq;          /* of a message event, else 0 */
    ngx_chat_frame_t   *alt;          /* the same event for SSE streams */
    u_char              event;        /* NGX_CHAT_EVENT_* */
    u_char              error;        /* its code, of an error */
    u_char             *pos;
    u_char             *last;
    u_char             *payload;
    u_char              data[1];
};


ngx_int_t ngx_chat_frame_parse(ngx_chat_frame_parser_t *fp, u_char **pos,
    u_char *last, ngx_chat_frame_event_t *ev);
ngx_uint_t ngx_chat_frame_close_check(u_char *data, size_t len,
    ngx_uint_t *code);

ngx_chat_frame_t *ngx_chat_frame_alloc(size_t size, ngx_log_t *log);
void ngx_chat_frame_free(ngx_chat_frame_t *f);
void ngx_chat_frame_seal(ngx_chat_frame_t *f, ngx_uint_t opcode);
ngx_chat_frame_t *ngx_chat_frame_control(ngx_uint_t opcode, u_char *data,
    size_t len, ngx_log_t *log);
ngx_chat_frame_t *ngx_chat_frame_close(ngx_uint_t code, char *reason,
    ngx_log_t *log);


#define ngx_chat_frame_size(f)    ((size_t) ((f)->last - (f)->pos))
#define ngx_chat_frame_ref(f)     ((f)->refs++, (f))

#define ngx_chat_frame_unref(f)                                               \
    if (--(f)->refs == 0) {                                                   \
        ngx_chat_frame_free(f);                                               \
    }


#endif /* _NGX_CHAT_FRAME_H_INCLUDED_ */
