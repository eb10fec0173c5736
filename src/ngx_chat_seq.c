
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_seq.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_transcript.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_worker.h"


/*
 * A message gets its number in Redis: one script (send.lua) numbers,
 * keeps and publishes it, and appends it to the durable stream and the
 * notification stream.  A seq key that is gone (a Redis restart without
 * its data, a FLUSHALL) is seeded again from Postgres first, so that no
 * seq is ever given twice; the sends that find it gone wait, in their
 * order.
 */

/* a send in flight: what the script needs, kept for its retries */

typedef struct {
    ngx_str_t                   head;         /* the event up to its seq */
    ngx_str_t                   tail;         /* and after it */
    ngx_str_t                   user;
    uint64_t                    ts;
    u_char                      msg_id[NGX_CHAT_MSG_ID_LEN];
    ngx_uint_t                  ticket;       /* the order of the sends */
    unsigned                    reseeded:1;
} ngx_chat_seq_send_t;


static void ngx_chat_seq_sent(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_seq_reseed(ngx_chat_store_op_t *op);
static void ngx_chat_seq_wait(ngx_chat_channel_t *rr,
    ngx_chat_store_op_t *op);
static void ngx_chat_seq_reseed_max(PGresult *res, void *data);
static void ngx_chat_seq_seeded(redisAsyncContext *ac, void *r,
    void *privdata);


static ngx_uint_t  ngx_chat_seq_tickets;
static ngx_uint_t  ngx_chat_seq_keep;
static ngx_uint_t  ngx_chat_seq_notify;     /* chat_notify_max, 0: off */


void
ngx_chat_seq_init_process(ngx_cycle_t *cycle)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_chat_seq_keep = cmcf->history_cache;
    ngx_chat_seq_notify = cmcf->notify ? cmcf->notify_max : 0;
}


/* the event is encoded once, with seq 0: the script puts the real one in */

ngx_int_t
ngx_chat_seq_prepare(ngx_chat_store_op_t *op, ngx_chat_msg_t *msg)
{
    u_char               *p;
    size_t                at, len;
    ngx_chat_frame_t     *f;
    ngx_chat_seq_send_t  *send;

    msg->seq = 0;
    msg->ts = ngx_chat_worker_now();
    ngx_chat_store_msg_id(msg->msg_id);

    f = ngx_chat_encode_message(msg, op->log);
    if (f == NULL) {
        return NGX_ERROR;
    }

    at = ngx_chat_encode_message_seq_at(msg);
    len = f->last - f->payload;

    send = ngx_alloc(sizeof(ngx_chat_seq_send_t) + len + msg->user.len,
                     op->log);
    if (send == NULL) {
        ngx_chat_frame_unref(f);
        return NGX_ERROR;
    }

    p = (u_char *) (send + 1);

    send->head.data = p;
    send->head.len = at;
    send->tail.data = p + at + 1;
    send->tail.len = len - at - 1;
    p = ngx_cpymem(p, f->payload, len);

    ngx_chat_frame_unref(f);

    /* resends of one "id" by one user in one room map to one message */

    send->user.data = p;
    send->user.len = msg->user.len;
    ngx_memcpy(p, msg->user.data, msg->user.len);

    /* the notification stream has the fields apart, the text unescaped */

    send->ts = msg->ts;
    ngx_memcpy(send->msg_id, msg->msg_id, NGX_CHAT_MSG_ID_LEN);

    send->reseeded = 0;
    send->ticket = ++ngx_chat_seq_tickets;

    op->store_data = send;

    return NGX_OK;
}


/* behind the sends waiting for the room's seq, in order */

void
ngx_chat_seq_send(ngx_chat_store_op_t *op)
{
    ngx_chat_channel_t   *rr;
    ngx_chat_seq_send_t  *send;

    rr = op->room->store;
    send = op->store_data;

    if (rr && (rr->seeding || !ngx_queue_empty(&rr->seeds))) {
        send->reseeded = 1;
        ngx_chat_seq_wait(rr, op);
        return;
    }

    ngx_chat_seq_eval(op);
}


/* see src/lua/send.lua */

void
ngx_chat_seq_eval(ngx_chat_store_op_t *op)
{
    ngx_str_t            *room, msg_id;
    ngx_uint_t            durable;
    ngx_chat_cmd_t        cmd;
    ngx_chat_seq_send_t  *send;

    send = op->store_data;
    room = &op->room->node.str;
    durable = ngx_chat_pg_configured();

    ngx_chat_cmd_eval(&cmd, NGX_CHAT_SCRIPT_SEND, 5);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_SEQ, room, NULL, NULL);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_RECENT, room, NULL, NULL);

    /* a key of its own when not durable, so the script has four */

    ngx_chat_cmd_key(&cmd, durable ? NGX_CHAT_KEY_STREAM : NGX_CHAT_KEY_SEQ,
                     room, NULL, NULL);

    if (op->id.data) {
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_RESEND, room, &send->user,
                         &op->id);

    } else {
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_SEQ, room, NULL, NULL);
    }

    ngx_chat_cmd_key(&cmd, ngx_chat_seq_notify ? NGX_CHAT_KEY_NOTIFY
                                               : NGX_CHAT_KEY_SEQ,
                     room, NULL, NULL);

    ngx_chat_cmd_str(&cmd, &send->head);
    ngx_chat_cmd_str(&cmd, &send->tail);
    ngx_chat_cmd_num(&cmd, ngx_chat_seq_keep);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_ROOM, room, NULL, NULL);
    ngx_chat_cmd_add(&cmd, durable ? "1" : "0");
    ngx_chat_cmd_add(&cmd, op->id.data ? "1" : "0");
    ngx_chat_cmd_num(&cmd, ngx_chat_seq_notify);

    if (ngx_chat_seq_notify) {
        msg_id.data = send->msg_id;
        msg_id.len = NGX_CHAT_MSG_ID_LEN;

        ngx_chat_cmd_str(&cmd, room);
        ngx_chat_cmd_str(&cmd, &msg_id);
        ngx_chat_cmd_str(&cmd, &send->user);
        ngx_chat_cmd_num(&cmd, send->ts);
        ngx_chat_cmd_str(&cmd, &op->text);
    }

    if (ngx_chat_cmd_send(&cmd, NULL, ngx_chat_seq_sent, op) != NGX_OK) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


static void
ngx_chat_seq_sent(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    int64_t               seq;
    redisReply           *reply = r;
    ngx_chat_seq_send_t  *send;

    send = op->store_data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, op->log, 0,
                          "chat: room \"%V\": message not stored: %s",
                          &op->room->node.str, reply->str);
        }

        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    seq = reply->element[0]->integer;

    if (seq < 0 && !send->reseeded) {
        send->reseeded = 1;
        ngx_chat_seq_reseed(op);
        return;
    }

    if (seq <= 0) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, op->log, 0,
                   "chat: room \"%V\": message %L stored%s",
                   &op->room->node.str, seq,
                   reply->element[1]->integer ? ", a resend" : "");

    op->seq = (uint64_t) seq;

    ngx_chat_store_op_done(op);
}


/* the room's seq key is gone: it goes on from the last one Postgres has */

static void
ngx_chat_seq_reseed(ngx_chat_store_op_t *op)
{
    ngx_chat_room_t     *room;
    ngx_chat_channel_t  *rr;

    room = op->room;

    rr = ngx_chat_channel_get(room);
    if (rr == NULL) {
        ngx_chat_store_op_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    ngx_chat_seq_wait(rr, op);

    if (rr->seeding) {
        return;
    }

    if (ngx_chat_transcript_max(&room->node.str, ngx_chat_seq_reseed_max,
                                room)
        != NGX_OK)
    {
        ngx_chat_seq_seeded(NULL, NULL, room);
        return;
    }

    rr->seeding = 1;
    room->refs++;
}


/*
 * In the order the sends came: a send whose "seq missing" answer comes
 * after later sends were already held goes in front of them.
 */

static void
ngx_chat_seq_wait(ngx_chat_channel_t *rr, ngx_chat_store_op_t *op)
{
    ngx_queue_t          *q;
    ngx_chat_store_op_t  *other;
    ngx_chat_seq_send_t  *send;

    send = op->store_data;

    for (q = ngx_queue_last(&rr->seeds);
         q != ngx_queue_sentinel(&rr->seeds);
         q = ngx_queue_prev(q))
    {
        other = ngx_queue_data(q, ngx_chat_store_op_t, wait);

        if (((ngx_chat_seq_send_t *) other->store_data)->ticket
            < send->ticket)
        {
            break;
        }
    }

    /* after q, which is the sentinel when op goes first */

    ngx_queue_insert_after(q, &op->wait);
}


static void
ngx_chat_seq_reseed_max(PGresult *res, void *data)
{
    ngx_chat_room_t *room = data;

    uint64_t  max;

    room->refs--;

    if (ngx_chat_transcript_seq(res, &room->node.str, &max) != NGX_OK) {
        ngx_chat_seq_seeded(NULL, NULL, room);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "chat: room \"%V\": seq missing in Redis, going on from "
                  "%uL", &room->node.str, max);

    if (ngx_chat_channel_seed(&room->node.str, max, ngx_chat_seq_seeded, room)
        != NGX_OK)
    {
        ngx_chat_seq_seeded(NULL, NULL, room);
        return;
    }

    room->refs++;
}


/* r NULL with ac NULL: seeding failed before Redis was asked */

static void
ngx_chat_seq_seeded(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_room_t *room = privdata;

    redisReply           *reply = r;
    ngx_uint_t            ok;
    ngx_queue_t          *q;
    ngx_chat_store_op_t  *op;
    ngx_chat_channel_t   *rr;

    if (ac) {
        room->refs--;
    }

    rr = room->store;
    rr->seeding = 0;

    ok = (reply && reply->type != REDIS_REPLY_ERROR);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: room \"%V\": seq seeded%s, the waiting sends go",
                   &room->node.str, ok ? "" : " failed");

    while (!ngx_queue_empty(&rr->seeds)) {
        q = ngx_queue_head(&rr->seeds);
        ngx_queue_remove(q);
        ngx_queue_init(q);

        op = ngx_queue_data(q, ngx_chat_store_op_t, wait);

        if (ok) {
            ngx_chat_seq_eval(op);

        } else {
            ngx_chat_store_op_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        }
    }

    ngx_chat_channel_sync(room);
}
