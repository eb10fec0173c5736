
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_TRANSCRIPT_H_INCLUDED_
#define _NGX_CHAT_TRANSCRIPT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_pg.h"
#include "ngx_chat_redis.h"
#include "ngx_chat_store.h"


/*
 * A room's stored messages read back, into frames: the recent ones from
 * a Redis reply, older ones from Postgres (chat_messages); never a write.
 */

ngx_int_t ngx_chat_transcript_frames(ngx_chat_store_op_t *op,
    redisReply *reply, ngx_uint_t reverse);
ngx_int_t ngx_chat_transcript_max(ngx_str_t *room,
    ngx_chat_pg_handler_pt handler, void *data);
ngx_int_t ngx_chat_transcript_seq(PGresult *res, ngx_str_t *room,
    uint64_t *seq);
ngx_int_t ngx_chat_transcript_range(ngx_chat_store_op_t *op, uint64_t from,
    uint64_t below, ngx_uint_t limit);


#endif /* _NGX_CHAT_TRANSCRIPT_H_INCLUDED_ */
