
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_OUT_H_INCLUDED_
#define _NGX_CHAT_OUT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_frame.h"


/*
 * A connection's outgoing frames, each shared with every other connection
 * it goes to: queued by reference, written with one send() or sendmsg()
 * per event loop pass.  An answer (to the client's own request) is
 * counted apart from the events the server sends on its own.
 */

typedef struct ngx_chat_out_link_s  ngx_chat_out_link_t;

struct ngx_chat_out_link_s {
    ngx_chat_out_link_t        *next;
    ngx_chat_frame_t           *frame;
    ngx_uint_t                  answer;
};


typedef struct {
    ngx_chat_out_link_t        *head;
    ngx_chat_out_link_t       **last;
    size_t                      sent;         /* of the first frame */
    size_t                      bytes;        /* not yet written */
    size_t                      answers;      /* of them, in answers */
} ngx_chat_out_t;


#define ngx_chat_out_init(out)                                                \
    (out)->head = NULL; (out)->last = &(out)->head;                           \
    (out)->sent = 0; (out)->bytes = 0; (out)->answers = 0

#define ngx_chat_out_empty(out)  ((out)->head == NULL)


ngx_int_t ngx_chat_out_push(ngx_chat_out_t *out, ngx_chat_frame_t *f,
    ngx_uint_t answer, ngx_log_t *log);
ngx_int_t ngx_chat_out_flush(ngx_chat_out_t *out, ngx_connection_t *c);
void ngx_chat_out_drop(ngx_chat_out_t *out);
void ngx_chat_out_free(ngx_chat_out_t *out);


#endif /* _NGX_CHAT_OUT_H_INCLUDED_ */
