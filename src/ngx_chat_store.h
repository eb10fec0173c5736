
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
#include "ngx_chat_hub.h"


/*
 * Where rooms live: sequence numbers, recent messages, fan-out beyond this
 * worker.  The embedded store keeps all of it in worker memory; the Redis
 * store plugs in beside it with the same operations.  An operation ends
 * with ngx_chat_store_op_done(), from inside the call or later; its owner
 * may go away before that (ngx_chat_store_op_cancel()).
 */

typedef struct ngx_chat_store_op_s  ngx_chat_store_op_t;

typedef void (*ngx_chat_store_done_pt)(ngx_chat_store_op_t *op);


struct ngx_chat_store_op_s {
    ngx_queue_t                 queue;        /* the owner's operations */
    void                       *data;         /* the owner, NULL if gone */
    ngx_queue_t                 wait;         /* the store's own queue */
    void                       *store_data;   /* freed with the op */
    ngx_chat_store_done_pt      done;
    ngx_log_t                  *log;

    ngx_uint_t                  op;           /* NGX_CHAT_REQ_* */
    ngx_chat_room_t            *room;         /* held by room->refs */
    ngx_str_t                   id;
    ngx_str_t                   text;         /* send: the message */
    ngx_str_t                   user;         /* join, kick, disconnect */
    uint64_t                    ban;          /* kick: seconds */

    ngx_str_t                  *users;        /* online: who is asked */
    u_char                     *present;      /* online: the answers */
    ngx_uint_t                  nusers;

    uint64_t                    since;
    uint64_t                    before;
    ngx_uint_t                  limit;
    unsigned                    has_since:1;
    unsigned                    has_before:1;

    /* results */
    ngx_uint_t                  error;        /* NGX_CHAT_ERR_* */
    uint64_t                    seq;
    ngx_uint_t                  count;        /* kick: connections */
    ngx_chat_frame_t          **frames;       /* message events, by seq */
    ngx_uint_t                  nframes;
    unsigned                    frames_owned:1;
    unsigned                    truncated:1;

    /* the store's own */
    ngx_chat_store_done_pt      next;         /* what goes on after a wait */
    unsigned                    waiting:1;    /* for the second of 2 replies */
    unsigned                    pg_seq:1;     /* Postgres has the last seq */
    unsigned                    pg_done:1;    /* Postgres was read */

    u_char                      id_data[NGX_CHAT_ID_MAX];
};


typedef struct {
    char                       *name;
    ngx_int_t                 (*init_process)(ngx_cycle_t *cycle);
    void                      (*exit_process)(ngx_cycle_t *cycle);

    /* op->seq: the last seq; op->frames: what followed op->since */
    void                      (*join)(ngx_chat_store_op_t *op);
    /* the last local member of the room has left */
    void                      (*leave)(ngx_chat_room_t *room);
    /* numbers, keeps and fans out msg, encoded before it returns */
    void                      (*publish)(ngx_chat_store_op_t *op,
                                         ngx_chat_msg_t *msg);
    void                      (*history)(ngx_chat_store_op_t *op);
    void                      (*online)(ngx_chat_store_op_t *op);

    /* events that are not stored: f goes to members of other users */
    void                      (*typing)(ngx_chat_room_t *room,
                                        ngx_chat_frame_t *f,
                                        ngx_str_t *user);
    /* a connection of user is in the room now (join) or not any more */
    void                      (*presence_room)(ngx_chat_room_t *room,
                                               ngx_str_t *user,
                                               ngx_uint_t join);
    /* op->users: the users with a connection in op->room */
    void                      (*members)(ngx_chat_store_op_t *op);

    /* connection conn of user opened, is alive, or closed */
    void                      (*presence)(ngx_str_t *user, ngx_str_t *conn,
                                          ngx_uint_t event, ngx_msec_t ttl);

    /*
     * the application's commands, for every worker: op->user's
     * connections leave op->room, joins of it refused for op->ban
     * seconds (op->count: the connections in it); or they are closed
     */
    void                      (*kick)(ngx_chat_store_op_t *op);
    void                      (*disconnect)(ngx_chat_store_op_t *op);
} ngx_chat_store_t;


/* a command reaches a worker: NGX_CHAT_REQ_KICK or _DISCONNECT */
typedef ngx_uint_t (*ngx_chat_store_command_pt)(ngx_uint_t op,
    ngx_str_t *user, ngx_str_t *room);


#define NGX_CHAT_PRESENCE_CONNECT     1
#define NGX_CHAT_PRESENCE_REFRESH     2
#define NGX_CHAT_PRESENCE_DISCONNECT  3


extern ngx_chat_store_t           *ngx_chat_store;
extern ngx_chat_store_command_pt   ngx_chat_store_command;


ngx_int_t ngx_chat_store_init_process(ngx_cycle_t *cycle);
void ngx_chat_store_exit_process(ngx_cycle_t *cycle);

ngx_chat_store_op_t *ngx_chat_store_op(ngx_chat_room_t *room,
    ngx_chat_request_t *req, ngx_log_t *log);
void ngx_chat_store_op_done(ngx_chat_store_op_t *op);
void ngx_chat_store_op_fail(ngx_chat_store_op_t *op, ngx_uint_t error);
void ngx_chat_store_op_cancel(ngx_chat_store_op_t *op);

void ngx_chat_store_msg_id(u_char *buf);


#endif /* _NGX_CHAT_STORE_H_INCLUDED_ */
