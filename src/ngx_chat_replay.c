
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_replay.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_transcript.h"


/*
 * A room's messages read back: a join's last seq and what followed its
 * "since", and history.  The recent messages in Redis come first; what
 * they no longer have, Postgres does.
 */

#define NGX_CHAT_REPLAY_MAX  1000
#define NGX_CHAT_REPLAY_TOP  9007199254740992ULL


static void ngx_chat_replay_seq(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_replay_recent(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_replay_older(ngx_chat_store_op_t *op);
static void ngx_chat_replay_last(PGresult *res, void *data);
static void ngx_chat_replay_history_recent(redisAsyncContext *ac, void *r,
    void *privdata);


/* the room is subscribed: its last seq, then what followed "since" */

void
ngx_chat_replay_join(ngx_chat_store_op_t *op)
{
    ngx_str_t       *room;
    ngx_chat_cmd_t   cmd;

    room = &op->room->node.str;

    /* and whether the user is banned from the room */

    ngx_chat_cmd_start(&cmd, "MGET");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_SEQ, room, NULL, NULL);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_BAN, room, &op->user, NULL);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_replay_seq, op) != NGX_OK) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (!op->has_since) {
        return;
    }

    /* the latest, so that live messages follow without a gap */

    ngx_chat_cmd_start(&cmd, "ZREVRANGEBYSCORE");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_RECENT, room, NULL, NULL);
    ngx_chat_cmd_add(&cmd, "+inf");
    ngx_chat_cmd_fmt(&cmd, "(%uL", op->since);
    ngx_chat_cmd_add(&cmd, "LIMIT");
    ngx_chat_cmd_add(&cmd, "0");
    ngx_chat_cmd_num(&cmd, NGX_CHAT_REPLAY_MAX);

    /* the GET's reply comes first: the replay's completes the op */

    op->waiting = 1;

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_replay_recent, op) != NGX_OK)
    {
        op->waiting = 0;
        op->error = NGX_CHAT_ERR_UNAVAILABLE;
    }
}


static void
ngx_chat_replay_seq(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    redisReply  *reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2)
    {
        op->error = NGX_CHAT_ERR_UNAVAILABLE;
        reply = NULL;

    } else if (reply->element[1]->type != REDIS_REPLY_NIL) {
        op->error = NGX_CHAT_ERR_FORBIDDEN;
        reply = NULL;

    } else {
        reply = reply->element[0];

        if (ngx_chat_cmd_uint(reply, &op->seq) != NGX_OK) {
            op->error = NGX_CHAT_ERR_UNAVAILABLE;
        }
    }

    /* gone from Redis: Postgres knows the last seq */

    op->pg_seq = (reply && reply->type == REDIS_REPLY_NIL
                  && ngx_chat_pg_configured());

    if (op->waiting) {
        op->waiting = 0;
        return;
    }

    ngx_chat_replay_older(op);
}


static void
ngx_chat_replay_recent(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    if (!op->error && ngx_chat_transcript_frames(op, r, 1) != NGX_OK) {
        op->error = NGX_CHAT_ERR_UNAVAILABLE;
    }

    ngx_chat_replay_older(op);
}


/* what Redis does not have any more, Postgres does */

static void
ngx_chat_replay_older(ngx_chat_store_op_t *op)
{
    uint64_t             below;
    ngx_chat_room_t     *room;
    ngx_chat_channel_t  *rr;

    if (op->error) {
        ngx_chat_store_op_done(op);
        return;
    }

    op->next = ngx_chat_replay_older;

    room = op->room;
    rr = room->store;

    /*
     * The seq key is missing.  Postgres knows the last seq; but a worker
     * that holds the room has learned it already and has seen every later
     * message, so only a room's first join here asks (a room nobody has
     * written to yet would otherwise send every join to Postgres).
     */

    if (op->pg_seq && rr && rr->known) {
        op->pg_seq = 0;
        op->seq = room->seq;
    }

    if (op->pg_seq) {
        op->pg_seq = 0;

        if (ngx_chat_transcript_max(&room->node.str, ngx_chat_replay_last,
                                    op)
            != NGX_OK)
        {
            ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        }

        return;
    }

    if (rr && !rr->known) {
        rr->known = 1;

        if (op->seq > room->seq) {
            room->seq = op->seq;
        }
    }

    if (op->has_since && !op->pg_done && ngx_chat_pg_configured()
        && op->nframes < NGX_CHAT_REPLAY_MAX)
    {
        below = op->nframes ? op->frames[0]->seq : op->seq + 1;

        if (below > op->since + 1) {
            op->pg_done = 1;

            if (ngx_chat_transcript_range(op, op->since, below,
                                          NGX_CHAT_REPLAY_MAX - op->nframes)
                != NGX_OK)
            {
                ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
            }

            return;
        }
    }

    if (op->has_since && op->seq > op->since) {
        below = op->nframes ? op->frames[0]->seq : op->seq + 1;
        op->truncated = (below > op->since + 1);
    }

    ngx_chat_store_op_done(op);
}


/*
 * The last seq Postgres has goes back into Redis, so that the room's
 * joins on other workers need not ask again; the seed never lowers it.
 * A room without stored messages gets no key: nothing a join writes
 * outlives the room's use (its first send seeds the key).
 */

static void
ngx_chat_replay_last(PGresult *res, void *data)
{
    ngx_chat_store_op_t *op = data;

    if (ngx_chat_transcript_seq(res, &op->room->node.str, &op->seq)
        != NGX_OK)
    {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (op->seq) {
        (void) ngx_chat_channel_seed(&op->room->node.str, op->seq, NULL, NULL);
    }

    op->next(op);
}


void
ngx_chat_replay_history(ngx_chat_store_op_t *op)
{
    ngx_chat_cmd_t  cmd;

    if (op->has_before && op->before == 0) {
        ngx_chat_store_op_done(op);
        return;
    }

    ngx_chat_cmd_start(&cmd, "ZREVRANGEBYSCORE");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_RECENT, &op->room->node.str, NULL,
                     NULL);

    if (op->has_before) {
        ngx_chat_cmd_fmt(&cmd, "(%uL", op->before);

    } else {
        ngx_chat_cmd_add(&cmd, "+inf");
    }

    ngx_chat_cmd_add(&cmd, "-inf");
    ngx_chat_cmd_add(&cmd, "LIMIT");
    ngx_chat_cmd_add(&cmd, "0");
    ngx_chat_cmd_num(&cmd, op->limit);

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_replay_history_recent, op)
        != NGX_OK)
    {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


static void
ngx_chat_replay_history_recent(redisAsyncContext *ac, void *r,
    void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    uint64_t  below;

    if (ngx_chat_transcript_frames(op, r, 1) != NGX_OK) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    /* older than the cache: from Postgres */

    if (ngx_chat_pg_configured() && op->nframes < op->limit) {

        below = op->nframes ? op->frames[0]->seq
                            : (op->has_before ? op->before
                                              : NGX_CHAT_REPLAY_TOP);

        if (below > 1) {
            op->next = ngx_chat_store_op_done;

            if (ngx_chat_transcript_range(op, 0, below,
                                          op->limit - op->nframes)
                != NGX_OK)
            {
                ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
            }

            return;
        }
    }

    ngx_chat_store_op_done(op);
}
