
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_SESSION_H_INCLUDED_
#define _NGX_CHAT_SESSION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_ws.h"


/* one chat client: its user, its rooms, its send allowance */

struct ngx_chat_session_s {
    ngx_chat_ws_t              *ws;
    ngx_str_t                   user;
    ngx_str_t                   conn;         /* worker#number */
    ngx_queue_t                 rooms;        /* of ngx_chat_member_t */
    ngx_uint_t                  nrooms;
    ngx_queue_t                 ops;          /* store operations */

    ngx_msec_t                  presence;     /* last refreshed */

    ngx_uint_t                  tokens;       /* x1000 */
    ngx_msec_t                  tokens_time;
    ngx_uint_t                  refusals;
};


ngx_int_t ngx_chat_session_handler(ngx_http_request_t *r);


#endif /* _NGX_CHAT_SESSION_H_INCLUDED_ */
