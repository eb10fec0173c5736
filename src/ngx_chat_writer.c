
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_chat_writer.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_pg.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_status.h"


/*
 * The durable transcript.  The send script appends every message to one
 * Redis stream; each worker reads it in one consumer group, writes what
 * it read to Postgres in one multi-row INSERT, and XACKs after the
 * commit.  Entries a dead worker read but never acknowledged are claimed
 * by the others once they have been idle for a while, and the stream is
 * trimmed up to the oldest entry not yet acknowledged.
 */

#define NGX_CHAT_WRITER_GROUP       "writers"
#define NGX_CHAT_WRITER_BATCH       "500"
#define NGX_CHAT_WRITER_BLOCK       "1000"
#define NGX_CHAT_WRITER_BLOCK_MS    1000
#define NGX_CHAT_WRITER_CLAIM_IDLE  "15000"
#define NGX_CHAT_WRITER_PERIOD      5000
#define NGX_CHAT_WRITER_RETRY       1000
#define NGX_CHAT_WRITER_COLUMNS     6
#define NGX_CHAT_WRITER_HOLDS       50


typedef struct {
    ngx_uint_t                  nids;
    char                      **ids;
    size_t                     *idlens;
    ngx_uint_t                  nrows;
    char                       *sql;
    const char                **values;
    int                        *lengths;
} ngx_chat_writer_batch_t;


static void ngx_chat_writer_ready(ngx_chat_redis_t *rd);
static void ngx_chat_writer_group_create(void);
static void ngx_chat_writer_down(ngx_chat_redis_t *rd);
static void ngx_chat_writer_group(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_writer_next(void);
static void ngx_chat_writer_entries(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_chat_writer_batch_t *ngx_chat_writer_batch(redisReply *entries);
static u_char *ngx_chat_writer_value(ngx_chat_writer_batch_t *b,
    ngx_uint_t k, u_char *p, u_char *data, uint64_t len);
static void ngx_chat_writer_write(void);
static void ngx_chat_writer_written(PGresult *res, void *data);
static void ngx_chat_writer_acked(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_writer_trimmed(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_writer_trim_stream(void);
static void ngx_chat_writer_timer_handler(ngx_event_t *ev);
static void ngx_chat_writer_free(ngx_chat_writer_batch_t *b);


static ngx_chat_redis_t          ngx_chat_writer_link;
static ngx_event_t               ngx_chat_writer_timer;
static ngx_chat_writer_batch_t  *ngx_chat_writer_pending;
static ngx_msec_t                ngx_chat_writer_claimed;
static ngx_msec_t                ngx_chat_writer_trimmed_at;
static ngx_uint_t                ngx_chat_writer_busy;
static ngx_uint_t                ngx_chat_writer_holds;


/* the Postgres pool is up (ngx_chat_pg_init()), and the Redis commands */

ngx_int_t
ngx_chat_writer_init(ngx_cycle_t *cycle, ngx_chat_main_conf_t *cmcf)
{
    ngx_chat_worker_timer(&ngx_chat_writer_timer,
                          ngx_chat_writer_timer_handler, cycle->log);

    ngx_chat_writer_link.conf = cmcf->redis;
    ngx_chat_writer_link.log = cycle->log;
    ngx_chat_writer_link.name = "stream";
    ngx_chat_writer_link.on_ready = ngx_chat_writer_ready;
    ngx_chat_writer_link.on_down = ngx_chat_writer_down;

    ngx_chat_redis_connect(&ngx_chat_writer_link);

    ngx_add_timer(&ngx_chat_writer_timer, NGX_CHAT_WRITER_PERIOD);

    return NGX_OK;
}


void
ngx_chat_writer_exit(void)
{
    if (ngx_chat_writer_timer.timer_set) {
        ngx_del_timer(&ngx_chat_writer_timer);
    }

    ngx_chat_redis_close(&ngx_chat_writer_link);

    if (ngx_chat_writer_pending) {
        ngx_chat_writer_free(ngx_chat_writer_pending);
        ngx_chat_writer_pending = NULL;
    }
}


/* the stream connection is up: for chat_status */

ngx_uint_t
ngx_chat_writer_link_ready(void)
{
    return ngx_chat_writer_link.ready;
}


static void
ngx_chat_writer_ready(ngx_chat_redis_t *rd)
{
    ngx_chat_cmd_load(rd);
    ngx_chat_writer_group_create();
}


/* from the stream's start: rewriting a row is harmless */

static void
ngx_chat_writer_group_create(void)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_start(&cmd, "XGROUP");
    ngx_chat_cmd_add(&cmd, "CREATE");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_STREAM, NULL, NULL, NULL);
    ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_GROUP);
    ngx_chat_cmd_add(&cmd, "0");
    ngx_chat_cmd_add(&cmd, "MKSTREAM");

    if (ngx_chat_cmd_send(&cmd, &ngx_chat_writer_link, ngx_chat_writer_group,
                          NULL)
        == NGX_OK)
    {
        ngx_chat_writer_busy = 1;
    }
}


static void
ngx_chat_writer_down(ngx_chat_redis_t *rd)
{
    ngx_chat_writer_busy = 0;
}


static void
ngx_chat_writer_group(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply = r;

    ngx_chat_writer_busy = 0;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR
        && ngx_strncmp(reply->str, "BUSYGROUP", 9) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_writer_link.log, 0,
                      "chat: cannot create the stream's consumer group: %s",
                      reply->str);
        return;
    }

    ngx_chat_writer_next();
}


/*
 * One step at a time: a batch that is not yet written is retried; when
 * it is time, entries left by dead workers are claimed; else new ones
 * are read.  The housekeeping goes on while a batch waits for Postgres:
 * it measures the backlog that chat_status shows.
 */

static void
ngx_chat_writer_next(void)
{
    uintptr_t       claim;
    ngx_chat_cmd_t  cmd;

    if (ngx_chat_writer_busy || !ngx_chat_writer_link.ready) {
        return;
    }

    if (!ngx_exiting
        && ngx_current_msec - ngx_chat_writer_trimmed_at
           >= 2 * NGX_CHAT_WRITER_PERIOD)
    {
        ngx_chat_writer_trimmed_at = ngx_current_msec;
        ngx_chat_writer_trim_stream();
    }

    if (ngx_chat_writer_pending) {
        ngx_chat_writer_write();
        return;
    }

    /* an exiting worker takes no more: the others will */

    if (ngx_exiting) {
        return;
    }

    claim = 0;

    if (ngx_current_msec - ngx_chat_writer_claimed
        >= NGX_CHAT_WRITER_PERIOD)
    {
        ngx_chat_writer_claimed = ngx_current_msec;
        claim = 1;

        ngx_chat_cmd_start(&cmd, "XAUTOCLAIM");
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_STREAM, NULL, NULL, NULL);
        ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_GROUP);
        ngx_chat_cmd_str(&cmd, &ngx_chat_worker_id);
        ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_CLAIM_IDLE);
        ngx_chat_cmd_add(&cmd, "0-0");
        ngx_chat_cmd_add(&cmd, "COUNT");
        ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_BATCH);

    } else {
        ngx_chat_cmd_start(&cmd, "XREADGROUP");
        ngx_chat_cmd_add(&cmd, "GROUP");
        ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_GROUP);
        ngx_chat_cmd_str(&cmd, &ngx_chat_worker_id);
        ngx_chat_cmd_add(&cmd, "COUNT");
        ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_BATCH);
        ngx_chat_cmd_add(&cmd, "BLOCK");
        ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_BLOCK);
        ngx_chat_cmd_add(&cmd, "STREAMS");
        ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_STREAM, NULL, NULL, NULL);
        ngx_chat_cmd_add(&cmd, ">");

        cmd.wait = NGX_CHAT_WRITER_BLOCK_MS;
    }

    if (ngx_chat_cmd_send(&cmd, &ngx_chat_writer_link,
                          ngx_chat_writer_entries, (void *) claim)
        == NGX_OK)
    {
        ngx_chat_writer_busy = 1;
    }
}


static void
ngx_chat_writer_entries(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply   *reply = r, *entries;
    ngx_uint_t    claim;

    ngx_chat_writer_busy = 0;
    claim = (uintptr_t) privdata;

    if (reply == NULL) {
        return;
    }

    entries = NULL;

    if (reply->type == REDIS_REPLY_ERROR) {

        /* the stream went away with its group (FLUSHALL): make both again */

        if (ngx_strncmp(reply->str, "NOGROUP", 7) == 0
            || ngx_strncmp(reply->str, "UNBLOCKED", 9) == 0)
        {
            ngx_chat_writer_group_create();
            return;
        }

        /* the timer tries again: no loop of failing commands */

        ngx_log_error(NGX_LOG_ERR, ngx_chat_writer_link.log, 0,
                      "chat: reading the stream failed: %s", reply->str);
        return;

    } else if (claim) {

        /* XAUTOCLAIM: [next id, [entries], [deleted ids]] */

        if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 2) {
            entries = reply->element[1];
        }

    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
               && reply->element[0]->type == REDIS_REPLY_ARRAY
               && reply->element[0]->elements == 2)
    {
        /* XREADGROUP: [[stream, [entries]]] */

        entries = reply->element[0]->element[1];
    }

    if (entries && entries->type == REDIS_REPLY_ARRAY
        && entries->elements > 0)
    {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_chat_writer_link.log, 0,
                       "chat: %uz stream entries %s", entries->elements,
                       claim ? "claimed from a gone worker" : "read");

        ngx_chat_writer_pending = ngx_chat_writer_batch(entries);
    }

    ngx_chat_writer_next();
}


/*
 * The rows of a batch, with everything copied out of the reply: a batch
 * outlives it when Postgres is away and the INSERT has to be retried.
 */

static ngx_chat_writer_batch_t *
ngx_chat_writer_batch(redisReply *entries)
{
    u_char                   *p;
    size_t                    n, i, k, size;
    cJSON                   **json;
    redisReply               *e, *fields;
    ngx_chat_msg_t           *msg;
    ngx_chat_writer_batch_t  *b;

    static char  head[] = "INSERT INTO chat_messages (room, seq, msg_id, "
                          "user_id, body, created_at) VALUES ";
    static char  tail[] = " ON CONFLICT DO NOTHING";
    static char  row[] = ",($000000,$000000::bigint,$000000::uuid,$000000,"
                         "$000000,to_timestamp($000000::float8/1000))";

    n = entries->elements;

    json = ngx_calloc(n * (sizeof(cJSON *) + sizeof(ngx_chat_msg_t)),
                      ngx_chat_writer_link.log);
    if (json == NULL) {
        return NULL;
    }

    msg = (ngx_chat_msg_t *) (json + n);

    size = sizeof(ngx_chat_writer_batch_t) + sizeof(head) + sizeof(tail)
           + n * (sizeof(char *) + sizeof(size_t)
                  + NGX_CHAT_WRITER_COLUMNS * (sizeof(char *) + sizeof(int))
                  + sizeof(row));

    for (i = 0; i < n; i++) {
        e = entries->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        size += e->element[0]->len + 1;
        fields = e->element[1];

        for (k = 0; fields->type == REDIS_REPLY_ARRAY
                    && k + 1 < fields->elements; k += 2)
        {
            if (fields->element[k]->type == REDIS_REPLY_STRING
                && fields->element[k]->len == 1
                && fields->element[k]->str[0] == 'm'
                && fields->element[k + 1]->type == REDIS_REPLY_STRING)
            {
                json[i] = ngx_chat_decode_message(NULL,
                                  (u_char *) fields->element[k + 1]->str,
                                  fields->element[k + 1]->len, &msg[i]);
                break;
            }
        }

        if (json[i] == NULL) {
            ngx_log_error(NGX_LOG_WARN, ngx_chat_writer_link.log, 0,
                          "chat: skipped a malformed stream entry");
            continue;
        }

        size += msg[i].room.len + msg[i].user.len + msg[i].text.len
                + NGX_CHAT_MSG_ID_LEN + 2 * NGX_INT64_LEN
                + NGX_CHAT_WRITER_COLUMNS;
    }

    b = ngx_calloc(size, ngx_chat_writer_link.log);

    if (b) {
        b->ids = (char **) (b + 1);
        b->idlens = (size_t *) (b->ids + n);
        b->values = (const char **) (b->idlens + n);
        b->lengths = (int *) (b->values + n * NGX_CHAT_WRITER_COLUMNS);

        b->sql = (char *) (b->lengths + n * NGX_CHAT_WRITER_COLUMNS);
        p = ngx_cpymem(b->sql, head, sizeof(head) - 1);

        for (i = 0; i < n; i++) {
            e = entries->element[i];

            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
                || e->element[0]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            if (json[i]) {
                k = b->nrows++ * NGX_CHAT_WRITER_COLUMNS;

                p = ngx_sprintf(p, "%s($%uz,$%uz::bigint,$%uz::uuid,$%uz,"
                                "$%uz,to_timestamp($%uz::float8/1000))",
                                k ? "," : "", k + 1, k + 2, k + 3, k + 4,
                                k + 5, k + 6);
            }
        }

        p = ngx_cpymem(p, tail, sizeof(tail));

        for (i = 0; i < n; i++) {
            e = entries->element[i];

            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
                || e->element[0]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            b->ids[b->nids] = (char *) p;
            b->idlens[b->nids++] = e->element[0]->len;
            p = ngx_cpymem(p, e->element[0]->str, e->element[0]->len);
            *p++ = '\0';
        }

        for (k = 0, i = 0; i < n; i++) {
            if (json[i] == NULL) {
                continue;
            }

            p = ngx_chat_writer_value(b, k++, p, msg[i].room.data,
                                      msg[i].room.len);
            p = ngx_chat_writer_value(b, k++, p, NULL, msg[i].seq);
            p = ngx_chat_writer_value(b, k++, p, msg[i].msg_id,
                                      NGX_CHAT_MSG_ID_LEN);
            p = ngx_chat_writer_value(b, k++, p, msg[i].user.data,
                                      msg[i].user.len);
            p = ngx_chat_writer_value(b, k++, p, msg[i].text.data,
                                      msg[i].text.len);
            p = ngx_chat_writer_value(b, k++, p, NULL, msg[i].ts);
        }
    }

    for (i = 0; i < n; i++) {
        if (json[i]) {
            cJSON_Delete(json[i]);
        }
    }

    ngx_free(json);

    return b;
}


/* a copied text value, or a number written out when data is NULL */

static u_char *
ngx_chat_writer_value(ngx_chat_writer_batch_t *b, ngx_uint_t k, u_char *p,
    u_char *data, uint64_t len)
{
    u_char  *start;

    start = p;

    if (data) {
        p = ngx_cpymem(p, data, (size_t) len);

    } else {
        p = ngx_sprintf(p, "%uL", len);
    }

    b->values[k] = (char *) start;
    b->lengths[k] = p - start;
    *p++ = '\0';

    return p;
}


static void
ngx_chat_writer_write(void)
{
    ngx_chat_writer_batch_t  *b;

    b = ngx_chat_writer_pending;

    if (b->nrows == 0) {
        ngx_chat_writer_written(NULL, b);
        return;
    }

    /* the worker may not exit with a batch in hand: see the timer */

    ngx_chat_writer_timer.cancelable = 0;

    if (ngx_chat_pg_query(b->sql, b->nrows * NGX_CHAT_WRITER_COLUMNS,
                          b->values, b->lengths, ngx_chat_writer_written, b)
        != NGX_OK)
    {
        /* Postgres is away: the timer tries again */
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_chat_writer_link.log, 0,
                   "chat: inserting %ui messages", b->nrows);

    ngx_chat_writer_busy = 1;
}


static void
ngx_chat_writer_written(PGresult *res, void *data)
{
    ngx_chat_writer_batch_t *b = data;

    ngx_str_t       id;
    ngx_uint_t      i;
    ngx_chat_cmd_t  cmd;

    ngx_chat_writer_busy = 0;

    if (b->nrows
        && (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK))
    {
        if (res) {
            ngx_log_error(NGX_LOG_ERR, ngx_chat_writer_link.log, 0,
                          "chat: writing %ui messages to postgres failed: %s",
                          b->nrows, PQresultErrorMessage(res));
        }

        /* the batch stays; the timer retries it */
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_chat_writer_link.log, 0,
                   "chat: %ui messages written to postgres, acking",
                   b->nrows);

    ngx_chat_cmd_start(&cmd, "XACK");
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_STREAM, NULL, NULL, NULL);
    ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_GROUP);

    for (i = 0; i < b->nids; i++) {
        id.data = (u_char *) b->ids[i];
        id.len = b->idlens[i];
        ngx_chat_cmd_str(&cmd, &id);
    }

    if (ngx_chat_cmd_send(&cmd, &ngx_chat_writer_link, ngx_chat_writer_acked,
                          b)
        == NGX_OK)
    {
        ngx_chat_writer_busy = 1;
    }
}


static void
ngx_chat_writer_acked(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_writer_batch_t *b = privdata;

    ngx_chat_writer_busy = 0;

    if (r == NULL) {
        /* the link went down: the rows are in, the entries will be
         * claimed and written again, harmlessly */
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_chat_writer_link.log, 0,
                   "chat: %ui stream entries acknowledged", b->nids);

    if (ngx_chat_writer_pending == b) {
        ngx_chat_writer_pending = NULL;
        ngx_chat_writer_timer.cancelable = 1;
    }

    ngx_chat_writer_free(b);
    ngx_chat_writer_next();
}


/* {trimmed, backlog, the oldest unwritten entry's age in ms} */

static void
ngx_chat_writer_trimmed(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply  *reply = r;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_writer_link.log, 0,
                      "chat: trimming the stream failed: %s", reply->str);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[1]->type != REDIS_REPLY_INTEGER
        || reply->element[2]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->integer < 0
        || reply->element[2]->integer < 0)
    {
        /* no consumer group (yet): nothing known */
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_chat_writer_link.log, 0,
                   "chat: stream backlog %L, the oldest %L ms old",
                   reply->element[1]->integer, reply->element[2]->integer);

    ngx_chat_status_stream((uint64_t) reply->element[1]->integer,
                           (uint64_t) reply->element[2]->integer);
}


/*
 * Every 2 periods: the consumers of gone workers are deleted, the stream
 * is trimmed up to the oldest entry not yet acknowledged, and what is not
 * yet written is measured; see src/lua/stream_trim.lua.
 */

static void
ngx_chat_writer_trim_stream(void)
{
    ngx_chat_cmd_t  cmd;

    ngx_chat_cmd_eval(&cmd, NGX_CHAT_SCRIPT_STREAM_TRIM, 2);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_STREAM, NULL, NULL, NULL);
    ngx_chat_cmd_key(&cmd, NGX_CHAT_KEY_WORKERS, NULL, NULL, NULL);
    ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_GROUP);
    ngx_chat_cmd_add(&cmd, NGX_CHAT_WRITER_CLAIM_IDLE);

    (void) ngx_chat_cmd_send(&cmd, &ngx_chat_writer_link,
                             ngx_chat_writer_trimmed, NULL);
}


/* retries a batch that Postgres could not take */

static void
ngx_chat_writer_timer_handler(ngx_event_t *ev)
{
    ngx_chat_writer_next();

    if (ngx_exiting) {

        /* a batch in hand is written before the worker goes, for a while */

        if (ngx_chat_writer_pending == NULL
            || ++ngx_chat_writer_holds > NGX_CHAT_WRITER_HOLDS)
        {
            return;
        }

        ev->cancelable = 0;
        ngx_add_timer(ev, 100);
        return;
    }

    ngx_add_timer(ev, ngx_chat_writer_pending ? NGX_CHAT_WRITER_RETRY
                                              : NGX_CHAT_WRITER_PERIOD);
}


static void
ngx_chat_writer_free(ngx_chat_writer_batch_t *b)
{
    ngx_free(b);
}
