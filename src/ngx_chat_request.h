
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_REQUEST_H_INCLUDED_
#define _NGX_CHAT_REQUEST_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_protocol.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_store.h"


/*
 * The session as its own two files see it: ngx_chat_session.c (its life,
 * the checks every request passes) and ngx_chat_request.c (what each
 * request does).  Nothing else reads these fields.
 */

struct ngx_chat_session_s {
    ngx_rbtree_node_t           node;         /* the worker's, by user */
    ngx_chat_peer_t             peer;         /* user, transport */
    ngx_chat_codec_t           *codec;
    ngx_chat_loc_conf_t        *conf;
    ngx_str_t                  *allowed;      /* NULL: every room */
    ngx_log_t                  *log;
    ngx_atomic_uint_t           number;       /* nginx's connection number */

    ngx_queue_t                 rooms;        /* of ngx_chat_member_t */
    ngx_uint_t                  nrooms;
    ngx_queue_t                 ops;          /* store operations */
    ngx_queue_t                 held;         /* sends waiting for a join */
    ngx_uint_t                  nheld;

    ngx_msec_t                  presence;     /* last refreshed */

    uint32_t                    tokens;       /* chat_rate's, x1000 */
    uint32_t                    rtokens;      /* chat_request_rate's */
    ngx_msec_t                  tokens_time;
    ngx_uint_t                  refusals;

    ngx_chat_limit_held_t      *limit;        /* chat_limit_conn's counts */

    /* a long poll's: no presence of its own, in its rooms or of its user */
    unsigned                    transient:1;
};


/* the request names a room the session must have joined */
#define NGX_CHAT_REQUEST_MEMBER   1
/* the request counts against chat_rate, not chat_request_rate */
#define NGX_CHAT_REQUEST_SEND     2
/* the request waits for the store: chat_max_pending bounds them */
#define NGX_CHAT_REQUEST_STORE    4


typedef void (*ngx_chat_request_start_pt)(ngx_chat_session_t *s,
    ngx_chat_request_t *req, ngx_chat_member_t *m);
typedef ngx_chat_frame_t *(*ngx_chat_request_reply_pt)(ngx_chat_session_t *s,
    ngx_chat_store_op_t *op);


/*
 * What a request does: checked by the flags, started, and, for the
 * requests the store answers, replied to from what the store found, or
 * refused with "failed".
 */

typedef struct {
    char                       *name;
    ngx_uint_t                  flags;
    ngx_chat_request_start_pt   start;
    ngx_chat_request_reply_pt   reply;
    char                       *failed;
} ngx_chat_request_op_t;


/* by NGX_CHAT_REQ_* */
extern ngx_chat_request_op_t  ngx_chat_request_ops[];


ngx_chat_member_t *ngx_chat_request_member(ngx_chat_session_t *s,
    ngx_str_t *room);
void ngx_chat_request_part(ngx_chat_session_t *s, ngx_chat_member_t *m);
void ngx_chat_request_kicked(ngx_chat_session_t *s, ngx_chat_member_t *m);
void ngx_chat_request_reply(ngx_chat_session_t *s, ngx_chat_frame_t *f);
void ngx_chat_request_error(ngx_chat_session_t *s, ngx_uint_t code,
    char *message, ngx_str_t *id);


#endif /* _NGX_CHAT_REQUEST_H_INCLUDED_ */
