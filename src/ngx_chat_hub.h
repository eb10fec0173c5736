
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_HUB_H_INCLUDED_
#define _NGX_CHAT_HUB_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_frame.h"


/*
 * The rooms of one worker and their local members.  A message reaches
 * the hub once per worker and goes to every member as one shared frame.
 * The hub knows no store: a room lives while it has members, operations
 * (refs) or store state, and the last of them to go releases it.
 */

struct ngx_chat_room_s {
    ngx_str_node_t              node;
    ngx_queue_t                 members;
    ngx_uint_t                  nmembers;
    ngx_uint_t                  refs;         /* store operations */
    uint64_t                    seq;          /* the last one delivered */
    void                       *store;        /* the store's room state */
};


typedef struct {
    ngx_queue_t                 room_link;
    ngx_queue_t                 owner_link;   /* the owner's, not the hub's */
    ngx_chat_room_t            *room;
    ngx_chat_peer_t            *peer;
    uint64_t                    seq;          /* the last one it got */
    ngx_msec_t                  typing;       /* its last typing event */

    /* what arrived while its join was under way */
    ngx_chat_frame_t          **pending;
    ngx_uint_t                  npending;
    ngx_uint_t                  pending_size;
    unsigned                    ready:1;
    unsigned                    announced:1;  /* its presence join went */
} ngx_chat_member_t;


void ngx_chat_hub_init(void);
ngx_chat_room_t *ngx_chat_hub_find(ngx_str_t *name);
ngx_chat_room_t *ngx_chat_hub_room(ngx_str_t *name, ngx_log_t *log);
void ngx_chat_hub_release(ngx_chat_room_t *room);

ngx_chat_member_t *ngx_chat_hub_join(ngx_chat_room_t *room,
    ngx_chat_peer_t *peer, ngx_log_t *log);
void ngx_chat_hub_leave(ngx_chat_member_t *m);
void ngx_chat_hub_ready(ngx_chat_member_t *m);

ngx_int_t ngx_chat_hub_send(ngx_chat_member_t *m, ngx_chat_frame_t *f,
    ngx_uint_t answer);
ngx_uint_t ngx_chat_hub_deliver(ngx_chat_room_t *room, ngx_chat_frame_t *f);
void ngx_chat_hub_signal(ngx_chat_room_t *room, ngx_chat_frame_t *f,
    ngx_str_t *except);
ngx_uint_t ngx_chat_hub_user_in_room(ngx_chat_room_t *room, ngx_str_t *user,
    ngx_chat_member_t *except);


#endif /* _NGX_CHAT_HUB_H_INCLUDED_ */
