
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_transcript.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_decode.h"


/*
 * Stored messages read back into frames: from Redis' recent messages,
 * and from Postgres for what is older.
 */


static void ngx_chat_transcript_rows(PGresult *res, void *data);
static ngx_int_t ngx_chat_transcript_failed(PGresult *res, ngx_str_t *room);


/*
 * The stored message events of a Redis reply (the recent messages),
 * checked, ascending by seq.
 */

ngx_int_t
ngx_chat_transcript_frames(ngx_chat_store_op_t *op, redisReply *reply,
    ngx_uint_t reverse)
{
    size_t             i, n;
    redisReply        *e;
    ngx_chat_frame_t  *f;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    if (reply->elements == 0) {
        return NGX_OK;
    }

    op->frames = ngx_alloc(reply->elements * sizeof(ngx_chat_frame_t *),
                           op->log);
    if (op->frames == NULL) {
        return NGX_ERROR;
    }

    op->frames_owned = 1;

    for (n = 0; n < reply->elements; n++) {
        e = reply->element[reverse ? reply->elements - 1 - n : n];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        f = ngx_chat_decode_stored(&op->room->node.str, (u_char *) e->str,
                                     e->len, op->log);
        if (f == NULL) {
            ngx_log_error(NGX_LOG_WARN, op->log, 0,
                          "chat: room \"%V\": skipped a malformed stored "
                          "message", &op->room->node.str);
            continue;
        }

        /* ascending and one per seq, whatever was written into the set */

        for (i = op->nframes; i && op->frames[i - 1]->seq > f->seq; i--) {
            /* void */
        }

        if (i && op->frames[i - 1]->seq == f->seq) {
            ngx_chat_frame_unref(f);
            continue;
        }

        ngx_memmove(&op->frames[i + 1], &op->frames[i],
                    (op->nframes - i) * sizeof(ngx_chat_frame_t *));
        op->frames[i] = f;
        op->nframes++;
    }

    return NGX_OK;
}


/* the room's last seq: handler gets it, see ngx_chat_transcript_seq() */

ngx_int_t
ngx_chat_transcript_max(ngx_str_t *room, ngx_chat_pg_handler_pt handler,
    void *data)
{
    const char  *values[1];
    int          lengths[1];

    values[0] = (char *) room->data;
    lengths[0] = room->len;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: room \"%V\": asking postgres for its last seq",
                   room);

    return ngx_chat_pg_query("SELECT coalesce(max(seq), 0) "
                             "FROM chat_messages WHERE room = $1",
                             1, values, lengths, handler, data);
}


ngx_int_t
ngx_chat_transcript_seq(PGresult *res, ngx_str_t *room, uint64_t *seq)
{
    off_t  n;

    if (ngx_chat_transcript_failed(res, room) || PQntuples(res) != 1) {
        return NGX_ERROR;
    }

    n = ngx_atoof((u_char *) PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));
    if (n < 0) {
        return NGX_ERROR;
    }

    *seq = (uint64_t) n;

    return NGX_OK;
}


/*
 * The messages with from < seq < below, the latest "limit" of them, put
 * in front of what the op already has from Redis; op->next goes on.
 */

ngx_int_t
ngx_chat_transcript_range(ngx_chat_store_op_t *op, uint64_t from,
    uint64_t below, ngx_uint_t limit)
{
    u_char       a[NGX_INT64_LEN], b[NGX_INT64_LEN], c[NGX_INT64_LEN];
    const char  *values[4];
    int          lengths[4];

    values[0] = (char *) op->room->node.str.data;
    lengths[0] = op->room->node.str.len;
    values[1] = (char *) a;
    lengths[1] = ngx_sprintf(a, "%uL", from) - a;
    values[2] = (char *) b;
    lengths[2] = ngx_sprintf(b, "%uL", below) - b;
    values[3] = (char *) c;
    lengths[3] = ngx_sprintf(c, "%ui", limit) - c;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "chat: room \"%V\": reading messages %uL to %uL from "
                   "postgres, %ui at most", &op->room->node.str, from + 1,
                   below - 1, limit);

    return ngx_chat_pg_query("SELECT seq, msg_id, user_id, body, "
                             "round(extract(epoch FROM created_at) * 1000)"
                             "::bigint FROM chat_messages "
                             "WHERE room = $1 AND seq > $2 AND seq < $3 "
                             "ORDER BY seq DESC LIMIT $4",
                             4, values, lengths,
                             ngx_chat_transcript_rows, op);
}


static void
ngx_chat_transcript_rows(PGresult *res, void *data)
{
    ngx_chat_store_op_t *op = data;

    int                 i, n;
    char               *v;
    ngx_uint_t          k;
    ngx_chat_msg_t      msg;
    ngx_chat_frame_t  **frames, *f;

    if (ngx_chat_transcript_failed(res, &op->room->node.str)) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    n = PQntuples(res);

    frames = ngx_alloc((n + op->nframes) * sizeof(ngx_chat_frame_t *),
                       op->log);
    if (frames == NULL) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    /* rows come newest first */

    for (k = 0, i = n - 1; i >= 0; i--) {
        ngx_memzero(&msg, sizeof(ngx_chat_msg_t));

        msg.room = op->room->node.str;
        msg.seq = ngx_atoof((u_char *) PQgetvalue(res, i, 0),
                            PQgetlength(res, i, 0));

        v = PQgetvalue(res, i, 1);

        if (PQgetlength(res, i, 1) != NGX_CHAT_MSG_ID_LEN
            || (off_t) msg.seq <= 0)
        {
            continue;
        }

        ngx_memcpy(msg.msg_id, v, NGX_CHAT_MSG_ID_LEN);

        msg.user.data = (u_char *) PQgetvalue(res, i, 2);
        msg.user.len = PQgetlength(res, i, 2);
        msg.text.data = (u_char *) PQgetvalue(res, i, 3);
        msg.text.len = PQgetlength(res, i, 3);
        msg.ts = ngx_atoof((u_char *) PQgetvalue(res, i, 4),
                           PQgetlength(res, i, 4));

        f = ngx_chat_encode_message(&msg, op->log);
        if (f == NULL) {
            continue;
        }

        frames[k++] = f;
    }

    if (op->nframes) {
        ngx_memcpy(&frames[k], op->frames,
                   op->nframes * sizeof(ngx_chat_frame_t *));
    }

    if (op->frames) {
        ngx_free(op->frames);
    }

    op->frames = frames;
    op->nframes += k;
    op->frames_owned = 1;

    op->next(op);
}


/* res NULL: the query did not run (Postgres went away) */

static ngx_int_t
ngx_chat_transcript_failed(PGresult *res, ngx_str_t *room)
{
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
        return 0;
    }

    if (res) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: room \"%V\": reading postgres failed: %s",
                      room, PQresultErrorMessage(res));
    }

    return 1;
}
