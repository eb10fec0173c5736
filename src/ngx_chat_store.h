
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_STORE_H_INCLUDED_
#define _NGX_CHAT_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_frame.h"
#include "ngx_chat_protocol.h"


/*
 * Where rooms live: sequence numbers, recent messages, fan-out beyond this
 * worker.  The embedded store keeps all of it in worker memory; a Redis
 * store plugs in beside it with the same operations.  An operation ends
 * with op->done(op), from inside the call or later.
 */

typedef struct ngx_chat_store_op_s  ngx_chat_store_op_t;

typedef void (*ngx_chat_store_done_pt)(ngx_chat_store_op_t *op);


struct ngx_chat_store_op_s {
    ngx_chat_session_t         *session;
    ngx_chat_room_t            *room;
    ngx_chat_request_t         *req;

    ngx_uint_t                  error;        /* NGX_CHAT_ERR_* */
    uint64_t                    seq;
    ngx_chat_frame_t          **frames;       /* message events, by seq */
    ngx_uint_t                  nframes;
    unsigned                    truncated:1;

    ngx_chat_store_done_pt      done;
};


typedef struct {
    char                       *name;
    ngx_int_t                 (*init_process)(ngx_cycle_t *cycle);
    void                      (*exit_process)(ngx_cycle_t *cycle);

    /* join: op->seq is the last seq, op->frames what followed req->since */
    void                      (*join)(ngx_chat_store_op_t *op);
    /* the last local member of the room has left */
    void                      (*leave)(ngx_chat_room_t *room);
    void                      (*publish)(ngx_chat_store_op_t *op,
                                         ngx_chat_msg_t *msg);
    void                      (*history)(ngx_chat_store_op_t *op);
} ngx_chat_store_t;


extern ngx_chat_store_t  *ngx_chat_store;


ngx_int_t ngx_chat_store_init_process(ngx_cycle_t *cycle);
void ngx_chat_store_exit_process(ngx_cycle_t *cycle);
void ngx_chat_store_msg_id(u_char *buf);


#endif /* _NGX_CHAT_STORE_H_INCLUDED_ */
