
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_CHANNEL_H_INCLUDED_
#define _NGX_CHAT_CHANNEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_redis.h"
#include "ngx_chat_store.h"


#define NGX_CHAT_CHANNEL_UNSUBSCRIBED  0
#define NGX_CHAT_CHANNEL_SUBSCRIBED    1


typedef void (*ngx_chat_channel_frame_pt)(ngx_chat_room_t *room,
    ngx_chat_frame_t *f);
typedef void (*ngx_chat_channel_room_pt)(ngx_chat_room_t *room);


/* a room's state in the Redis store, on room->store */

typedef struct {
    ngx_queue_t                 queue;        /* all rooms with state */
    ngx_chat_room_t            *room;
    ngx_queue_t                 joins;        /* waiting for SUBSCRIBE */
    ngx_chat_frame_t          **backlog;      /* arrived during a fill */
    ngx_uint_t                  nbacklog;
    ngx_uint_t                  backlog_size;
    ngx_uint_t                  state;
    unsigned                    busy:1;       /* (UN)SUBSCRIBE under way */

    /* ngx_chat_order.c's: room->seq is meaningful; a fill or check is on */
    unsigned                    known:1;
    unsigned                    filling:1;

    /* ngx_chat_seq.c's: sends waiting for the room's seq to be seeded */
    ngx_queue_t                 seeds;
    unsigned                    seeding:1;
} ngx_chat_channel_t;


ngx_int_t ngx_chat_channel_init_process(ngx_cycle_t *cycle,
    ngx_chat_redis_pt on_ready, ngx_chat_channel_frame_pt on_message,
    ngx_chat_channel_room_pt on_catch_up);
void ngx_chat_channel_exit_process(void);
ngx_uint_t ngx_chat_channel_ready(void);
void ngx_chat_channel_catch_up(void);

ngx_chat_channel_t *ngx_chat_channel_get(ngx_chat_room_t *room);
void ngx_chat_channel_wait(ngx_chat_store_op_t *op,
    ngx_chat_store_done_pt next);
void ngx_chat_channel_sync(ngx_chat_room_t *room);
void ngx_chat_channel_typing(ngx_chat_room_t *room, ngx_chat_frame_t *f);
ngx_int_t ngx_chat_channel_seed(ngx_str_t *room, uint64_t seq,
    redisCallbackFn *fn, void *data);


#endif /* _NGX_CHAT_CHANNEL_H_INCLUDED_ */
