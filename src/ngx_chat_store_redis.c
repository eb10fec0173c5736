
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_sha1.h>
#include "ngx_chat_store_redis.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_redis.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_pg.h"
#include "ngx_chat_writer.h"


/*
 * Rooms in Redis (PROTOCOL.md section 2).  One script numbers, keeps and
 * publishes a message atomically, so a room's channel carries its
 * messages in seq order.  Each worker subscribes to the rooms its clients
 * are in and delivers what the channel brings in seq order, filling any
 * gap (a lost connection, a reconnect) from the recent messages first.
 */

#define NGX_CHAT_REDIS_UNSUBSCRIBED  0
#define NGX_CHAT_REDIS_SUBSCRIBED    1

#define NGX_CHAT_REDIS_REPLAY_MAX    1000
#define NGX_CHAT_REDIS_BACKLOG_MAX   10000
#define NGX_CHAT_REDIS_KEY_MAX       (NGX_CHAT_ROOM_MAX + 256)

#define NGX_CHAT_REDIS_HOLD          3000
#define NGX_CHAT_REDIS_HELD_MAX      10000

#define NGX_CHAT_REDIS_PG_MAX        1
#define NGX_CHAT_REDIS_PG_RANGE      2
#define NGX_CHAT_REDIS_SEQ_MAX       9007199254740992ULL


typedef struct {
    ngx_queue_t                 queue;        /* all rooms with state */
    ngx_chat_room_t            *room;
    ngx_queue_t                 joins;        /* waiting for SUBSCRIBE */
    ngx_queue_t                 seeds;        /* sends waiting for a seq */
    ngx_chat_frame_t          **backlog;      /* arrived during a fill */
    ngx_uint_t                  nbacklog;
    ngx_uint_t                  backlog_size;
    ngx_uint_t                  state;
    unsigned                    busy:1;       /* (UN)SUBSCRIBE under way */
    unsigned                    known:1;      /* room->seq is meaningful */
    unsigned                    filling:1;
    unsigned                    seeding:1;
} ngx_chat_redis_room_t;


typedef struct {
    ngx_chat_room_t            *room;
    uint64_t                    to;
} ngx_chat_redis_fill_t;


/* a send in flight: what the script needs, kept for its retries */

typedef struct {
    ngx_str_t                   head;
    ngx_str_t                   tail;
    ngx_str_t                   idem;
    ngx_uint_t                  ticket;       /* the order of the sends */
    unsigned                    noscript:1;
    unsigned                    reseeded:1;
} ngx_chat_redis_send_t;


static ngx_int_t ngx_chat_store_redis_init_process(ngx_cycle_t *cycle);
static void ngx_chat_store_redis_exit_process(ngx_cycle_t *cycle);
static void ngx_chat_store_redis_join(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_leave(ngx_chat_room_t *room);
static void ngx_chat_store_redis_publish(ngx_chat_store_op_t *op,
    ngx_chat_msg_t *msg);
static void ngx_chat_store_redis_history(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_online(ngx_chat_store_op_t *op);
static void ngx_chat_store_redis_typing(ngx_chat_room_t *room,
    ngx_chat_frame_t *f, ngx_str_t *user);
static void ngx_chat_store_redis_presence(ngx_str_t *user, ngx_str_t *conn,
    ngx_uint_t event, ngx_msec_t ttl);
static void ngx_chat_redis_online_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_store_redis_presence_room(ngx_chat_room_t *room,
    ngx_str_t *user, ngx_uint_t join);
static void ngx_chat_store_redis_members(ngx_chat_store_op_t *op);
static void ngx_chat_redis_members_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_registry_handler(ngx_event_t *ev);
static void ngx_chat_redis_registry_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_str_t *ngx_chat_redis_dead(char *id, size_t len);
static void ngx_chat_redis_claimed(redisAsyncContext *ac, void *r,
    void *privdata);

static void ngx_chat_redis_cmd_ready(ngx_chat_redis_t *rd);
static void ngx_chat_redis_sub_ready(ngx_chat_redis_t *rd);
static void ngx_chat_redis_sub_down(ngx_chat_redis_t *rd);
static void ngx_chat_redis_hold(ngx_chat_store_op_t *op,
    ngx_chat_store_done_pt next);
static void ngx_chat_redis_release_held(void);
static void ngx_chat_redis_hold_handler(ngx_event_t *ev);
static ngx_chat_redis_room_t *ngx_chat_redis_room(ngx_chat_room_t *room);
static void ngx_chat_redis_sync(ngx_chat_room_t *room);
static void ngx_chat_redis_subscription(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_subscribed(ngx_chat_room_t *room);
static void ngx_chat_redis_join_query(ngx_chat_store_op_t *op);
static void ngx_chat_redis_join_seq(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_join_replay(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_join_pg(ngx_chat_store_op_t *op);
static ngx_int_t ngx_chat_redis_pg_query(ngx_chat_store_op_t *op,
    ngx_uint_t kind, uint64_t from, uint64_t below, ngx_uint_t limit);
static void ngx_chat_redis_pg_result(PGresult *res, void *data);
static void ngx_chat_redis_catch_up(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_message(ngx_chat_room_t *room,
    ngx_chat_frame_t *f);
static void ngx_chat_redis_verify(ngx_chat_room_t *room,
    ngx_chat_frame_t *f);
static void ngx_chat_redis_verified(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_fill(ngx_chat_room_t *room, uint64_t to);
static void ngx_chat_redis_filled(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_drain(ngx_chat_room_t *room);
static void ngx_chat_redis_rewind(ngx_chat_room_t *room, uint64_t seq);
static void ngx_chat_redis_eval(ngx_chat_store_op_t *op);
static void ngx_chat_redis_published(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_reseed(ngx_chat_store_op_t *op);
static void ngx_chat_redis_seed_wait(ngx_chat_redis_room_t *rr,
    ngx_chat_store_op_t *op);
static void ngx_chat_redis_reseed_max(PGresult *res, void *data);
static ngx_int_t ngx_chat_redis_seed_key(ngx_str_t *room, char *seq,
    size_t len, redisCallbackFn *fn, void *data);
static void ngx_chat_redis_seeded(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_history_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_chat_redis_frames(ngx_chat_store_op_t *op,
    redisReply *reply, ngx_uint_t reverse);
static size_t ngx_chat_redis_key(u_char *buf, ngx_str_t *room,
    char *suffix);
static ngx_int_t ngx_chat_redis_uint(redisReply *reply, uint64_t *n);
static void ngx_chat_redis_fail(ngx_chat_store_op_t *op, ngx_uint_t error);


ngx_chat_store_t  ngx_chat_store_redis = {
    "redis",
    ngx_chat_store_redis_init_process,
    ngx_chat_store_redis_exit_process,
    ngx_chat_store_redis_join,
    ngx_chat_store_redis_leave,
    ngx_chat_store_redis_publish,
    ngx_chat_store_redis_history,
    ngx_chat_store_redis_online,
    ngx_chat_store_redis_typing,
    ngx_chat_store_redis_presence_room,
    ngx_chat_store_redis_members,
    ngx_chat_store_redis_presence
};


/*
 * Room presence: per room, the users' connection counts, and the same per
 * worker, so that what a dead worker held can be taken away.  Workers
 * announce themselves in a registry with an expiry; a live worker that
 * finds a dead one claims it (once) and sweeps only that worker's rooms.
 * KEYS: the room's counts, the room's counts per worker; ARGV: user,
 * "worker\nuser", channel, room, chat_presence_events_max.
 */

static ngx_str_t  ngx_chat_redis_pjoin = ngx_string(
    "redis.call('HINCRBY', KEYS[2], ARGV[2], 1)\n"
    "if redis.call('HINCRBY', KEYS[1], ARGV[1], 1) == 1\n"
    "   and (ARGV[5] == '0'\n"
    "        or redis.call('HLEN', KEYS[1]) <= tonumber(ARGV[5])) then\n"
    "  redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'presence',\n"
    "    room = ARGV[4], user = ARGV[1], event = 'join'}))\n"
    "end\n");


static ngx_str_t  ngx_chat_redis_pleave = ngx_string(
    "local c = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)\n"
    "if c <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end\n"
    "if c < 0 then return end\n"
    "if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "  if ARGV[5] == '0'\n"
    "     or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[5]) then\n"
    "    redis.call('PUBLISH', ARGV[3], cjson.encode({type = 'presence',\n"
    "      room = ARGV[4], user = ARGV[1], event = 'leave'}))\n"
    "  end\n"
    "end\n");


/* ARGV: "worker\n", channel, room, chat_presence_events_max */

static ngx_str_t  ngx_chat_redis_psweep = ngx_string(
    "local all = redis.call('HGETALL', KEYS[2])\n"
    "local p = ARGV[1]\n"
    "for i = 1, #all, 2 do\n"
    "  local f = all[i]\n"
    "  if string.sub(f, 1, #p) == p then\n"
    "    local user = string.sub(f, #p + 1)\n"
    "    local c = tonumber(all[i + 1])\n"
    "    redis.call('HDEL', KEYS[2], f)\n"
    "    if c > 0 and redis.call('HINCRBY', KEYS[1], user, -c) <= 0 then\n"
    "      redis.call('HDEL', KEYS[1], user)\n"
    "      if ARGV[4] == '0'\n"
    "         or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[4]) then\n"
    "        redis.call('PUBLISH', ARGV[2],\n"
    "          cjson.encode({type = 'presence', room = ARGV[3],\n"
    "                        user = user, event = 'leave'}))\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n");


/* KEYS: the registry; ARGV: this worker, ttl: returns dead workers */

static ngx_str_t  ngx_chat_redis_pregistry = ngx_string(
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "redis.call('ZADD', KEYS[1], now + ARGV[2], ARGV[1])\n"
    "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,\n"
    "                  'LIMIT', 0, 5)\n");


/* KEYS: the registry, the dead worker's rooms; ARGV: the dead worker */

static ngx_str_t  ngx_chat_redis_pclaim = ngx_string(
    "if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return {} end\n"
    "local rooms = redis.call('SMEMBERS', KEYS[2])\n"
    "redis.call('DEL', KEYS[2])\n"
    "return rooms\n");


/*
 * A user's presence key lives while a connection of the user refreshes
 * it.  Beside it, the user's connections with their own expiry: the last
 * one to close deletes the key, and a connection whose worker died
 * without closing it stops counting once it expires.
 */

static ngx_str_t  ngx_chat_redis_presence_scripts[] = {
    ngx_null_string,

    ngx_string("local t = redis.call('TIME')\n"
               "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
               "redis.call('ZADD', KEYS[2], now + ARGV[1], ARGV[2])\n"
               "redis.call('PEXPIRE', KEYS[2], ARGV[1])\n"
               "redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])\n"),

    ngx_null_string,

    ngx_string("local t = redis.call('TIME')\n"
               "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
               "redis.call('ZREM', KEYS[2], ARGV[2])\n"
               "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
               "if redis.call('ZCARD', KEYS[2]) == 0 then\n"
               "  redis.call('DEL', KEYS[1], KEYS[2])\n"
               "end\n")
};


static ngx_str_t  ngx_chat_redis_script = ngx_string(
    "if ARGV[6] == '1' then\n"
    "  local seq = redis.call('GET', KEYS[4])\n"
    "  if seq then return {tonumber(seq), 1} end\n"
    "end\n"
    "if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  return {-1, 0}\n"
    "end\n"
    "local seq = redis.call('INCR', KEYS[1])\n"
    "local msg = ARGV[1] .. seq .. ARGV[2]\n"
    "local keep = tonumber(ARGV[3])\n"
    "if keep > 0 then\n"
    "  redis.call('ZADD', KEYS[2], seq, msg)\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -keep - 1)\n"
    "end\n"
    "if ARGV[5] == '1' then\n"
    "  redis.call('XADD', KEYS[3], '*', 'm', msg)\n"
    "end\n"
    "if ARGV[6] == '1' then\n"
    "  redis.call('SET', KEYS[4], seq, 'EX', 600)\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[4], msg)\n"
    "return {seq, 0}\n");


/* never lower: another worker may have seeded and sent meanwhile */

static ngx_str_t  ngx_chat_redis_seed = ngx_string(
    "local seq = tonumber(ARGV[1])\n"
    "local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
    "if top[2] then seq = math.max(seq, tonumber(top[2])) end\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur then seq = math.max(seq, tonumber(cur)) end\n"
    "redis.call('SET', KEYS[1], seq)\n"
    "return seq\n");


static ngx_chat_redis_t  ngx_chat_redis_cmd;
static ngx_chat_redis_t  ngx_chat_redis_sub;
static ngx_queue_t       ngx_chat_redis_rooms;
static ngx_uint_t        ngx_chat_redis_tickets;
static ngx_queue_t       ngx_chat_redis_held;
static ngx_uint_t        ngx_chat_redis_nheld;
static ngx_uint_t        ngx_chat_redis_started;
static ngx_event_t       ngx_chat_redis_hold_timer;
static ngx_event_t       ngx_chat_redis_registry;
static ngx_msec_t        ngx_chat_redis_presence_ttl;
static ngx_str_t         ngx_chat_redis_prefix;
static ngx_uint_t        ngx_chat_redis_cache;
static u_char            ngx_chat_redis_sha[41];
static u_char            ngx_chat_redis_keep[NGX_INT_T_LEN];
static size_t            ngx_chat_redis_keep_len;
static u_char            ngx_chat_redis_pmax[NGX_INT_T_LEN];
static size_t            ngx_chat_redis_pmax_len;


static ngx_int_t
ngx_chat_store_redis_init_process(ngx_cycle_t *cycle)
{
    u_char                 hash[20], *p;
    ngx_uint_t             i;
    ngx_sha1_t             sha1;
    ngx_chat_main_conf_t  *cmcf;

    static u_char  hex[] = "0123456789abcdef";

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_chat_redis_prefix = cmcf->key_prefix;
    ngx_chat_redis_cache = cmcf->history_cache;
    ngx_chat_redis_keep_len = ngx_sprintf(ngx_chat_redis_keep, "%ui",
                                          ngx_chat_redis_cache)
                              - ngx_chat_redis_keep;
    ngx_chat_redis_pmax_len = ngx_sprintf(ngx_chat_redis_pmax, "%ui",
                                          cmcf->presence_events_max)
                              - ngx_chat_redis_pmax;

    ngx_queue_init(&ngx_chat_redis_rooms);

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, ngx_chat_redis_script.data,
                    ngx_chat_redis_script.len);
    ngx_sha1_final(hash, &sha1);

    for (p = ngx_chat_redis_sha, i = 0; i < 20; i++) {
        *p++ = hex[hash[i] >> 4];
        *p++ = hex[hash[i] & 0xf];
    }

    ngx_chat_redis_cmd.conf = cmcf->redis;
    ngx_chat_redis_cmd.log = cycle->log;
    ngx_chat_redis_cmd.name = "commands";
    ngx_chat_redis_cmd.on_ready = ngx_chat_redis_cmd_ready;

    ngx_chat_redis_sub.conf = cmcf->redis;
    ngx_chat_redis_sub.log = cycle->log;
    ngx_chat_redis_sub.name = "subscriber";
    ngx_chat_redis_sub.on_ready = ngx_chat_redis_sub_ready;
    ngx_chat_redis_sub.on_down = ngx_chat_redis_sub_down;

    ngx_queue_init(&ngx_chat_redis_held);

    ngx_chat_redis_presence_ttl = cmcf->registry_ttl;

    ngx_chat_redis_registry.handler = ngx_chat_redis_registry_handler;
    ngx_chat_redis_registry.log = cycle->log;
    ngx_chat_redis_registry.cancelable = 1;
    ngx_add_timer(&ngx_chat_redis_registry, 500);

    ngx_chat_redis_hold_timer.handler = ngx_chat_redis_hold_handler;
    ngx_chat_redis_hold_timer.log = cycle->log;
    ngx_chat_redis_hold_timer.cancelable = 1;
    ngx_add_timer(&ngx_chat_redis_hold_timer, NGX_CHAT_REDIS_HOLD);

    ngx_chat_redis_connect(&ngx_chat_redis_cmd);
    ngx_chat_redis_connect(&ngx_chat_redis_sub);

    if (cmcf->postgres.len) {
        return ngx_chat_writer_init(cycle, cmcf);
    }

    return NGX_OK;
}


static void
ngx_chat_store_redis_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_chat_redis_registry.timer_set) {
        ngx_del_timer(&ngx_chat_redis_registry);
    }

    ngx_chat_redis_close(&ngx_chat_redis_sub);
    ngx_chat_redis_close(&ngx_chat_redis_cmd);

    if (ngx_chat_writer_durable()) {
        ngx_chat_writer_exit();
    }
}


static void
ngx_chat_redis_cmd_ready(ngx_chat_redis_t *rd)
{
    const char  *argv[3];
    size_t       argvlen[3];

    argv[0] = "SCRIPT";
    argvlen[0] = 6;
    argv[1] = "LOAD";
    argvlen[1] = 4;
    argv[2] = (char *) ngx_chat_redis_script.data;
    argvlen[2] = ngx_chat_redis_script.len;

    (void) ngx_chat_redis_command(rd, NULL, NULL, 3, argv, argvlen);

    if (ngx_chat_redis_sub.ready && !ngx_chat_redis_started) {
        ngx_chat_redis_release_held();
    }
}


/* (re)connected: subscribe again to every room that has members here */

static void
ngx_chat_redis_sub_ready(ngx_chat_redis_t *rd)
{
    ngx_queue_t            *q, *next;
    ngx_chat_redis_room_t  *rr;

    if (ngx_chat_redis_cmd.ready && !ngx_chat_redis_started) {
        ngx_chat_redis_release_held();
    }

    for (q = ngx_queue_head(&ngx_chat_redis_rooms);
         q != ngx_queue_sentinel(&ngx_chat_redis_rooms);
         q = next)
    {
        next = ngx_queue_next(q);
        rr = ngx_queue_data(q, ngx_chat_redis_room_t, queue);

        ngx_chat_redis_sync(rr->room);
    }
}


static void
ngx_chat_redis_sub_down(ngx_chat_redis_t *rd)
{
    ngx_queue_t            *q;
    ngx_chat_store_op_t    *op;
    ngx_chat_redis_room_t  *rr;

    for (q = ngx_queue_head(&ngx_chat_redis_rooms);
         q != ngx_queue_sentinel(&ngx_chat_redis_rooms);
         q = ngx_queue_next(q))
    {
        rr = ngx_queue_data(q, ngx_chat_redis_room_t, queue);

        rr->state = NGX_CHAT_REDIS_UNSUBSCRIBED;
        rr->busy = 0;

        while (!ngx_queue_empty(&rr->joins)) {
            op = ngx_queue_data(ngx_queue_head(&rr->joins),
                                ngx_chat_store_op_t, wait);
            ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        }
    }
}


/*
 * A worker just started (a reload, a restart) gets its clients back at
 * once: until its connections to Redis are up for the first time, or for
 * NGX_CHAT_REDIS_HOLD ms, requests wait instead of failing.
 */

static void
ngx_chat_redis_hold(ngx_chat_store_op_t *op, ngx_chat_store_done_pt next)
{
    if (ngx_chat_redis_started
        || ngx_chat_redis_nheld >= NGX_CHAT_REDIS_HELD_MAX)
    {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    op->next = next;
    ngx_queue_insert_tail(&ngx_chat_redis_held, &op->wait);
    ngx_chat_redis_nheld++;
}


static void
ngx_chat_redis_release_held(void)
{
    ngx_queue_t          *q;
    ngx_chat_store_op_t  *op;

    ngx_chat_redis_started = 1;

    if (ngx_chat_redis_hold_timer.timer_set) {
        ngx_del_timer(&ngx_chat_redis_hold_timer);
    }

    while (!ngx_queue_empty(&ngx_chat_redis_held)) {
        q = ngx_queue_head(&ngx_chat_redis_held);
        ngx_queue_remove(q);
        ngx_queue_init(q);
        ngx_chat_redis_nheld--;

        op = ngx_queue_data(q, ngx_chat_store_op_t, wait);
        op->next(op);
    }
}


static void
ngx_chat_redis_hold_handler(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                  "chat: redis not reachable %M ms after the start, "
                  "requests get \"unavailable\"", NGX_CHAT_REDIS_HOLD);

    ngx_chat_redis_release_held();
}


static ngx_chat_redis_room_t *
ngx_chat_redis_room(ngx_chat_room_t *room)
{
    ngx_chat_redis_room_t  *rr;

    if (room->store) {
        return room->store;
    }

    rr = ngx_calloc(sizeof(ngx_chat_redis_room_t), ngx_cycle->log);
    if (rr == NULL) {
        return NULL;
    }

    rr->room = room;
    ngx_queue_init(&rr->joins);
    ngx_queue_init(&rr->seeds);
    ngx_queue_insert_tail(&ngx_chat_redis_rooms, &rr->queue);

    room->store = rr;

    return rr;
}


/*
 * Brings the subscription in line with the room's local members; frees
 * the room's state once nobody here is in it and nothing is under way.
 */

static void
ngx_chat_redis_sync(ngx_chat_room_t *room)
{
    u_char                  channel[NGX_CHAT_REDIS_KEY_MAX];
    const char             *argv[2];
    size_t                  argvlen[2];
    ngx_chat_redis_room_t  *rr;

    rr = room->store;

    if (rr->busy) {
        return;
    }

    if (room->nmembers == 0 && rr->state == NGX_CHAT_REDIS_UNSUBSCRIBED
        && !rr->filling && !rr->seeding && ngx_queue_empty(&rr->seeds))
    {
        /* joins whose members left before the subscription came */

        while (!ngx_queue_empty(&rr->joins)) {
            ngx_chat_redis_fail(ngx_queue_data(ngx_queue_head(&rr->joins),
                                               ngx_chat_store_op_t, wait),
                                NGX_CHAT_ERR_UNAVAILABLE);
        }

        while (rr->nbacklog) {
            ngx_chat_frame_unref(rr->backlog[--rr->nbacklog]);
        }

        if (rr->backlog) {
            ngx_free(rr->backlog);
        }

        ngx_queue_remove(&rr->queue);
        ngx_free(rr);

        room->store = NULL;
        ngx_chat_hub_release(room);
        return;
    }

    if ((room->nmembers > 0) == (rr->state == NGX_CHAT_REDIS_SUBSCRIBED)) {
        return;
    }

    argv[0] = room->nmembers ? "SUBSCRIBE" : "UNSUBSCRIBE";
    argvlen[0] = ngx_strlen(argv[0]);
    argv[1] = (char *) channel;
    argvlen[1] = ngx_chat_redis_key(channel, &room->node.str, "");

    if (ngx_chat_redis_command(&ngx_chat_redis_sub,
                               ngx_chat_redis_subscription, NULL,
                               2, argv, argvlen)
        == NGX_OK)
    {
        rr->busy = 1;
    }
}


/* every reply of the subscriber connection comes here */

static void
ngx_chat_redis_subscription(redisAsyncContext *ac, void *r, void *privdata)
{
    u_char            user[NGX_CHAT_USER_MAX];
    redisReply       *reply = r;
    ngx_str_t         kind, channel, name, typer;
    ngx_chat_room_t  *room;
    ngx_chat_frame_t *f;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    kind.data = (u_char *) reply->element[0]->str;
    kind.len = reply->element[0]->len;
    channel.data = (u_char *) reply->element[1]->str;
    channel.len = reply->element[1]->len;

    /* the channel is "prefix:{room}" */

    if (channel.len < ngx_chat_redis_prefix.len + 4
        || ngx_strncmp(channel.data, ngx_chat_redis_prefix.data,
                       ngx_chat_redis_prefix.len) != 0
        || channel.data[ngx_chat_redis_prefix.len] != ':'
        || channel.data[ngx_chat_redis_prefix.len + 1] != '{'
        || channel.data[channel.len - 1] != '}')
    {
        return;
    }

    name.data = channel.data + ngx_chat_redis_prefix.len + 2;
    name.len = channel.len - ngx_chat_redis_prefix.len - 3;

    room = ngx_chat_hub_find(&name);

    if (room == NULL || room->store == NULL) {
        return;
    }

    if (kind.len == 7 && ngx_strncmp(kind.data, "message", 7) == 0) {

        if (reply->element[2]->type != REDIS_REPLY_STRING) {
            return;
        }

        f = ngx_chat_decode_stored(&name, (u_char *) reply->element[2]->str,
                                     reply->element[2]->len, ngx_cycle->log);

        if (f == NULL) {
            typer.data = user;

            f = ngx_chat_decode_typing(&name,
                                  (u_char *) reply->element[2]->str,
                                  reply->element[2]->len, &typer,
                                  ngx_cycle->log);
            if (f) {
                ngx_chat_hub_signal(room, f, &typer);
                ngx_chat_frame_unref(f);
                return;
            }

            f = ngx_chat_decode_presence(&name,
                                  (u_char *) reply->element[2]->str,
                                  reply->element[2]->len, &typer,
                                  ngx_cycle->log);
            if (f) {
                /* to the others: a user knows of its own comings */
                ngx_chat_hub_signal(room, f, &typer);
                ngx_chat_frame_unref(f);
                return;
            }
        }

        if (f == NULL) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "chat: dropped a malformed message of %uz bytes "
                          "on channel \"%V\"",
                          (size_t) reply->element[2]->len, &channel);
            return;
        }

        ngx_chat_redis_message(room, f);
        ngx_chat_frame_unref(f);
        return;
    }

    if (kind.len == 9 && ngx_strncmp(kind.data, "subscribe", 9) == 0) {
        ngx_chat_redis_subscribed(room);
        return;
    }

    if (kind.len == 11 && ngx_strncmp(kind.data, "unsubscribe", 11) == 0) {
        ((ngx_chat_redis_room_t *) room->store)->state =
                                                NGX_CHAT_REDIS_UNSUBSCRIBED;
        ((ngx_chat_redis_room_t *) room->store)->busy = 0;
        ((ngx_chat_redis_room_t *) room->store)->known = 0;

        ngx_chat_redis_sync(room);
    }
}


/*
 * From now on the channel brings every message: the joins that waited
 * for this go on, and a room this worker knew catches up with what was
 * published while it was not subscribed.
 */

static void
ngx_chat_redis_subscribed(ngx_chat_room_t *room)
{
    u_char                  key[NGX_CHAT_REDIS_KEY_MAX];
    const char             *argv[2];
    size_t                  argvlen[2];
    ngx_queue_t            *q;
    ngx_chat_store_op_t    *op;
    ngx_chat_redis_room_t  *rr;

    rr = room->store;
    rr->state = NGX_CHAT_REDIS_SUBSCRIBED;
    rr->busy = 0;

    if (rr->known) {
        argv[0] = "GET";
        argvlen[0] = 3;
        argv[1] = (char *) key;
        argvlen[1] = ngx_chat_redis_key(key, &room->node.str, ":seq");

        if (ngx_chat_redis_command(&ngx_chat_redis_cmd,
                                   ngx_chat_redis_catch_up, room,
                                   2, argv, argvlen)
            == NGX_OK)
        {
            room->refs++;
        }
    }

    while (!ngx_queue_empty(&rr->joins)) {
        q = ngx_queue_head(&rr->joins);
        op = ngx_queue_data(q, ngx_chat_store_op_t, wait);

        ngx_queue_remove(q);
        ngx_queue_init(q);

        ngx_chat_redis_join_query(op);
    }

    ngx_chat_redis_sync(room);
}


static void
ngx_chat_redis_catch_up(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_room_t *room = privdata;

    uint64_t                last;
    ngx_chat_redis_room_t  *rr;

    room->refs--;
    rr = room->store;

    if (rr && rr->known && ngx_chat_redis_uint(r, &last) == NGX_OK) {

        if (last < room->seq) {
            ngx_chat_redis_rewind(room, last);

        } else if (last > room->seq && !rr->filling) {
            ngx_chat_redis_fill(room, last);
        }
    }

    ngx_chat_hub_release(room);
}


static void
ngx_chat_store_redis_join(ngx_chat_store_op_t *op)
{
    ngx_chat_redis_room_t  *rr;

    if (!ngx_chat_redis_cmd.ready || !ngx_chat_redis_sub.ready) {
        ngx_chat_redis_hold(op, ngx_chat_store_redis_join);
        return;
    }

    rr = ngx_chat_redis_room(op->room);
    if (rr == NULL) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    if (rr->state == NGX_CHAT_REDIS_SUBSCRIBED) {
        ngx_chat_redis_join_query(op);
        return;
    }

    ngx_queue_insert_tail(&rr->joins, &op->wait);
    ngx_chat_redis_sync(op->room);
}


/* the room's last seq, then what followed "since" */

static void
ngx_chat_redis_join_query(ngx_chat_store_op_t *op)
{
    u_char       key[NGX_CHAT_REDIS_KEY_MAX], min[NGX_INT64_LEN + 1];
    u_char       count[NGX_INT_T_LEN];
    const char  *argv[7];
    size_t       argvlen[7];

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = (char *) key;
    argvlen[1] = ngx_chat_redis_key(key, &op->room->node.str, ":seq");

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd, ngx_chat_redis_join_seq,
                               op, 2, argv, argvlen)
        != NGX_OK)
    {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    if (!op->has_since) {
        return;
    }

    /* the latest, so that live messages follow without a gap */

    argv[0] = "ZREVRANGEBYSCORE";
    argvlen[0] = 16;
    argvlen[1] = ngx_chat_redis_key(key, &op->room->node.str, ":recent");
    argv[2] = "+inf";
    argvlen[2] = 4;
    argv[3] = (char *) min;
    argvlen[3] = ngx_sprintf(min, "(%uL", op->since) - min;
    argv[4] = "LIMIT";
    argvlen[4] = 5;
    argv[5] = "0";
    argvlen[5] = 1;
    argv[6] = (char *) count;
    argvlen[6] = ngx_sprintf(count, "%ui", NGX_CHAT_REDIS_REPLAY_MAX) - count;

    /* the GET's reply comes first: the replay's completes the op */

    op->waiting = 1;

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd,
                               ngx_chat_redis_join_replay, op,
                               7, argv, argvlen)
        != NGX_OK)
    {
        op->waiting = 0;
        op->error = NGX_CHAT_ERR_UNAVAILABLE;
    }
}


static void
ngx_chat_redis_join_seq(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    redisReply  *reply = r;

    if (reply == NULL || ngx_chat_redis_uint(reply, &op->seq) != NGX_OK) {
        op->error = NGX_CHAT_ERR_UNAVAILABLE;
    }

    /* gone from Redis: Postgres knows the last seq */

    op->pg_seq = (reply && reply->type == REDIS_REPLY_NIL
                  && ngx_chat_writer_durable());

    if (op->waiting) {
        op->waiting = 0;
        return;
    }

    ngx_chat_redis_join_pg(op);
}


static void
ngx_chat_redis_join_replay(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    if (!op->error && ngx_chat_redis_frames(op, r, 1) != NGX_OK) {
        op->error = NGX_CHAT_ERR_UNAVAILABLE;
    }

    ngx_chat_redis_join_pg(op);
}


/* what Redis does not have any more, Postgres does */

static void
ngx_chat_redis_join_pg(ngx_chat_store_op_t *op)
{
    uint64_t             below;
    ngx_chat_room_t     *room;
    ngx_chat_redis_room_t  *rr;

    if (op->error) {
        ngx_chat_store_op_done(op);
        return;
    }

    op->next = ngx_chat_redis_join_pg;

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

        if (ngx_chat_redis_pg_query(op, NGX_CHAT_REDIS_PG_MAX, 0, 0, 0)
            != NGX_OK)
        {
            ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        }

        return;
    }

    if (rr && !rr->known) {
        rr->known = 1;

        if (op->seq > room->seq) {
            room->seq = op->seq;
        }
    }

    if (op->has_since && !op->pg_done && ngx_chat_writer_durable()
        && op->nframes < NGX_CHAT_REDIS_REPLAY_MAX)
    {
        below = op->nframes ? op->frames[0]->seq : op->seq + 1;

        if (below > op->since + 1) {
            op->pg_done = 1;

            if (ngx_chat_redis_pg_query(op, NGX_CHAT_REDIS_PG_RANGE,
                                        op->since, below,
                                        NGX_CHAT_REDIS_REPLAY_MAX
                                        - op->nframes)
                != NGX_OK)
            {
                ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
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
 * A read from Postgres for an operation: the room's last seq, or the
 * messages with from < seq < below, the latest "limit" of them, put in
 * front of what the op already has from Redis.  op->next goes on after.
 */

static ngx_int_t
ngx_chat_redis_pg_query(ngx_chat_store_op_t *op, ngx_uint_t kind,
    uint64_t from, uint64_t below, ngx_uint_t limit)
{
    u_char       a[NGX_INT64_LEN], b[NGX_INT64_LEN], c[NGX_INT64_LEN];
    const char  *values[4];
    int          lengths[4];

    values[0] = (char *) op->room->node.str.data;
    lengths[0] = op->room->node.str.len;

    op->pg_kind = kind;

    if (kind == NGX_CHAT_REDIS_PG_MAX) {
        return ngx_chat_pg_query("SELECT coalesce(max(seq), 0) "
                                 "FROM chat_messages WHERE room = $1",
                                 1, values, lengths,
                                 ngx_chat_redis_pg_result, op);
    }

    values[1] = (char *) a;
    lengths[1] = ngx_sprintf(a, "%uL", from) - a;
    values[2] = (char *) b;
    lengths[2] = ngx_sprintf(b, "%uL", below) - b;
    values[3] = (char *) c;
    lengths[3] = ngx_sprintf(c, "%ui", limit) - c;

    return ngx_chat_pg_query("SELECT seq, msg_id, user_id, body, "
                             "round(extract(epoch FROM created_at) * 1000)"
                             "::bigint FROM chat_messages "
                             "WHERE room = $1 AND seq > $2 AND seq < $3 "
                             "ORDER BY seq DESC LIMIT $4",
                             4, values, lengths,
                             ngx_chat_redis_pg_result, op);
}


static void
ngx_chat_redis_pg_result(PGresult *res, void *data)
{
    ngx_chat_store_op_t *op = data;

    int                 i, n;
    char               *v;
    ngx_uint_t          k;
    ngx_chat_msg_t      msg;
    ngx_chat_frame_t  **frames, *f;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res) {
            ngx_log_error(NGX_LOG_ERR, op->log, 0,
                          "chat: room \"%V\": reading postgres failed: %s",
                          &op->room->node.str, PQresultErrorMessage(res));
        }

        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    n = PQntuples(res);

    if (op->pg_kind == NGX_CHAT_REDIS_PG_MAX) {
        op->seq = (n == 1) ? (uint64_t) ngx_atoof((u_char *) PQgetvalue(res,
                                   0, 0), PQgetlength(res, 0, 0))
                           : 0;

        /*
         * What Postgres said goes back into Redis, so that the room's
         * joins on other workers need not ask again; never lowers it.
         */

        if (n == 1) {
            (void) ngx_chat_redis_seed_key(&op->room->node.str,
                                           PQgetvalue(res, 0, 0),
                                           PQgetlength(res, 0, 0), NULL,
                                           NULL);
        }

        op->next(op);
        return;
    }

    frames = ngx_alloc((n + op->nframes) * sizeof(ngx_chat_frame_t *),
                       op->log);
    if (frames == NULL) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_INTERNAL);
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


/* a message from the channel, in the order Redis published them */

static void
ngx_chat_redis_message(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    ngx_uint_t              size;
    ngx_chat_frame_t      **backlog;
    ngx_chat_redis_room_t  *rr;

    rr = room->store;

    if (rr->filling) {

        if (rr->nbacklog == rr->backlog_size) {
            size = rr->backlog_size ? 2 * rr->backlog_size : 64;

            if (size > NGX_CHAT_REDIS_BACKLOG_MAX) {
                ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                              "chat: room \"%V\": backlog full, message "
                              "%uL dropped", &room->node.str, f->seq);
                return;
            }

            backlog = ngx_alloc(size * sizeof(ngx_chat_frame_t *),
                                ngx_cycle->log);
            if (backlog == NULL) {
                return;
            }

            if (rr->backlog) {
                ngx_memcpy(backlog, rr->backlog,
                           rr->nbacklog * sizeof(ngx_chat_frame_t *));
                ngx_free(rr->backlog);
            }

            rr->backlog = backlog;
            rr->backlog_size = size;
        }

        rr->backlog[rr->nbacklog++] = ngx_chat_frame_ref(f);
        return;
    }

    if (rr->known) {

        if (f->seq <= room->seq) {

            /*
             * seq 1 again is a duplicate, or Redis has lost the room's
             * data and counts from 1: ask Redis, holding what comes
             */

            if (f->seq == 1) {
                ngx_chat_redis_verify(room, f);
            }

            return;
        }

        if (f->seq > room->seq + 1) {
            ngx_chat_redis_fill(room, f->seq - 1);

            if (rr->filling) {
                rr->backlog[rr->nbacklog++] = ngx_chat_frame_ref(f);
                return;
            }
        }
    }

    rr->known = 1;

    (void) ngx_chat_hub_deliver(room, f);
}


static void
ngx_chat_redis_verify(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    u_char                  key[NGX_CHAT_REDIS_KEY_MAX];
    const char             *argv[2];
    size_t                  argvlen[2];
    ngx_chat_redis_room_t  *rr;

    rr = room->store;

    if (rr->backlog == NULL) {
        rr->backlog = ngx_alloc(64 * sizeof(ngx_chat_frame_t *),
                                ngx_cycle->log);
        if (rr->backlog == NULL) {
            return;
        }

        rr->backlog_size = 64;
    }

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = (char *) key;
    argvlen[1] = ngx_chat_redis_key(key, &room->node.str, ":seq");

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd, ngx_chat_redis_verified,
                               room, 2, argv, argvlen)
        != NGX_OK)
    {
        return;
    }

    rr->filling = 1;
    rr->backlog[rr->nbacklog++] = ngx_chat_frame_ref(f);
    room->refs++;
}


static void
ngx_chat_redis_verified(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_room_t *room = privdata;

    uint64_t                last;
    ngx_chat_redis_room_t  *rr;

    room->refs--;
    rr = room->store;

    if (rr == NULL) {
        ngx_chat_hub_release(room);
        return;
    }

    rr->filling = 0;

    if (ngx_chat_redis_uint(r, &last) == NGX_OK && last < room->seq) {
        ngx_chat_redis_rewind(room, 0);
    }

    ngx_chat_redis_drain(room);
}


/* fetches what is missing up to "to" from the recent messages */

static void
ngx_chat_redis_fill(ngx_chat_room_t *room, uint64_t to)
{
    u_char                  key[NGX_CHAT_REDIS_KEY_MAX];
    u_char                  min[NGX_INT64_LEN + 1], max[NGX_INT64_LEN];
    const char             *argv[4];
    size_t                  argvlen[4];
    ngx_chat_redis_room_t  *rr;
    ngx_chat_redis_fill_t  *fill;

    rr = room->store;

    /* room for the message that revealed the gap */

    if (rr->backlog == NULL) {
        rr->backlog = ngx_alloc(64 * sizeof(ngx_chat_frame_t *),
                                ngx_cycle->log);
        if (rr->backlog == NULL) {
            return;
        }

        rr->backlog_size = 64;
    }

    fill = ngx_alloc(sizeof(ngx_chat_redis_fill_t), ngx_cycle->log);
    if (fill == NULL) {
        return;
    }

    fill->room = room;
    fill->to = to;

    argv[0] = "ZRANGEBYSCORE";
    argvlen[0] = 13;
    argv[1] = (char *) key;
    argvlen[1] = ngx_chat_redis_key(key, &room->node.str, ":recent");
    argv[2] = (char *) min;
    argvlen[2] = ngx_sprintf(min, "(%uL", room->seq) - min;
    argv[3] = (char *) max;
    argvlen[3] = ngx_sprintf(max, "%uL", to) - max;

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd, ngx_chat_redis_filled,
                               fill, 4, argv, argvlen)
        != NGX_OK)
    {
        ngx_free(fill);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "chat: room \"%V\": fetching messages %uL to %uL",
                  &room->node.str, room->seq + 1, to);

    rr->filling = 1;
    room->refs++;
}


static void
ngx_chat_redis_filled(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_redis_fill_t *fill = privdata;

    uint64_t                to;
    ngx_uint_t              i;
    ngx_chat_room_t        *room;
    ngx_chat_store_op_t     op;
    ngx_chat_redis_room_t  *rr;

    room = fill->room;
    to = fill->to;
    ngx_free(fill);

    room->refs--;
    rr = room->store;

    if (rr == NULL) {
        ngx_chat_hub_release(room);
        return;
    }

    rr->filling = 0;

    ngx_memzero(&op, sizeof(ngx_chat_store_op_t));
    op.room = room;
    op.log = ngx_cycle->log;

    if (r && ngx_chat_redis_frames(&op, r, 0) == NGX_OK) {
        for (i = 0; i < op.nframes; i++) {
            if (op.frames[i]->seq > room->seq) {
                (void) ngx_chat_hub_deliver(room, op.frames[i]);
            }
        }
    }

    for (i = 0; i < op.nframes; i++) {
        ngx_chat_frame_unref(op.frames[i]);
    }

    if (op.frames) {
        ngx_free(op.frames);
    }

    if (room->seq < to) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: room \"%V\": messages %uL to %uL are no longer "
                      "in Redis, clients will not get them",
                      &room->node.str, room->seq + 1, to);
        room->seq = to;
    }

    /* what came meanwhile, through the same checks */

    ngx_chat_redis_drain(room);
}


/* what was held during a fill or a check goes on, through the same checks */

static void
ngx_chat_redis_drain(ngx_chat_room_t *room)
{
    ngx_uint_t              i, n;
    ngx_chat_frame_t      **backlog;
    ngx_chat_redis_room_t  *rr;

    rr = room->store;

    backlog = rr->backlog;
    n = rr->nbacklog;

    rr->backlog = NULL;
    rr->nbacklog = 0;
    rr->backlog_size = 0;

    for (i = 0; i < n; i++) {
        if (room->store && backlog[i]->seq > room->seq) {
            ngx_chat_redis_message(room, backlog[i]);
        }

        ngx_chat_frame_unref(backlog[i]);
    }

    if (backlog) {
        ngx_free(backlog);
    }

    if (room->store) {
        ngx_chat_redis_sync(room);

    } else {
        ngx_chat_hub_release(room);
    }
}


/*
 * The room's seq went back: Redis lost its data.  Counting goes on from
 * where Redis is, or nothing would be delivered until it caught up.
 */

static void
ngx_chat_redis_rewind(ngx_chat_room_t *room, uint64_t seq)
{
    ngx_queue_t        *q;
    ngx_chat_member_t  *m;

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "chat: room \"%V\": seq went back from %uL to %uL, "
                  "Redis lost its data", &room->node.str, room->seq, seq);

    room->seq = seq;

    for (q = ngx_queue_head(&room->members);
         q != ngx_queue_sentinel(&room->members);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_chat_member_t, room_link);

        if (m->seq > seq) {
            m->seq = seq;
        }
    }
}


static void
ngx_chat_store_redis_leave(ngx_chat_room_t *room)
{
    if (room->store) {
        ngx_chat_redis_sync(room);

    } else {
        ngx_chat_hub_release(room);
    }
}


static void
ngx_chat_store_redis_publish(ngx_chat_store_op_t *op, ngx_chat_msg_t *msg)
{
    u_char                 *p;
    size_t                  at, len;
    ngx_chat_frame_t       *f;
    ngx_chat_redis_room_t  *rr;
    ngx_chat_redis_send_t  *send;

    msg->seq = 0;
    msg->ts = ngx_chat_worker_now();
    ngx_chat_store_msg_id(msg->msg_id);

    /* the event with seq 0: the script puts the real one in its place */

    f = ngx_chat_encode_message(msg, op->log);
    if (f == NULL) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    at = ngx_chat_encode_message_seq_at(msg);
    len = f->last - f->payload;

    send = ngx_alloc(sizeof(ngx_chat_redis_send_t) + len
                     + NGX_CHAT_REDIS_KEY_MAX + NGX_CHAT_USER_MAX
                     + NGX_CHAT_ID_MAX + 2 * NGX_INT_T_LEN, op->log);
    if (send == NULL) {
        ngx_chat_frame_unref(f);
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    p = (u_char *) (send + 1);

    send->head.data = p;
    send->head.len = at;
    send->tail.data = p + at + 1;
    send->tail.len = len - at - 1;
    p = ngx_cpymem(p, f->payload, len);

    ngx_chat_frame_unref(f);

    /* resends of one "id" by one user in one room map to one message */

    send->idem.data = p;
    send->idem.len = 0;

    if (op->id.data) {
        p = send->idem.data + ngx_chat_redis_key(p, &op->room->node.str,
                                                 ":id:");
        p = ngx_sprintf(p, "%uz:%V:%V", msg->user.len, &msg->user, &op->id);
        send->idem.len = p - send->idem.data;
    }

    send->reseeded = 0;
    send->noscript = 0;

    op->store_data = send;

    /* behind the sends waiting for the room's seq, in order */

    rr = op->room->store;

    send->ticket = ++ngx_chat_redis_tickets;

    if (!ngx_chat_redis_cmd.ready) {
        ngx_chat_redis_hold(op, ngx_chat_redis_eval);
        return;
    }

    if (rr && (rr->seeding || !ngx_queue_empty(&rr->seeds))) {
        send->reseeded = 1;
        ngx_chat_redis_seed_wait(rr, op);
        return;
    }

    ngx_chat_redis_eval(op);
}


/*
 * KEYS: seq, recent, stream, the resend key; ARGV: the event around its
 * seq, how many to keep, the channel, "1" if durable, "1" with a resend
 * key.  Returns {seq, 1 if a resend} or {-1, 0}: seq to be seeded first.
 */

static void
ngx_chat_redis_eval(ngx_chat_store_op_t *op)
{
    u_char                 *p, seq_key[NGX_CHAT_REDIS_KEY_MAX];
    u_char                  recent[NGX_CHAT_REDIS_KEY_MAX];
    u_char                  channel[NGX_CHAT_REDIS_KEY_MAX];
    const char             *argv[13];
    size_t                  argvlen[13];
    ngx_str_t              *stream;
    ngx_chat_redis_send_t  *send;

    send = op->store_data;
    stream = ngx_chat_writer_stream_key();

    if (send->noscript) {
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = (char *) ngx_chat_redis_script.data;
        argvlen[1] = ngx_chat_redis_script.len;

    } else {
        argv[0] = "EVALSHA";
        argvlen[0] = 7;
        argv[1] = (char *) ngx_chat_redis_sha;
        argvlen[1] = 40;
    }

    argv[2] = "4";
    argvlen[2] = 1;
    argv[3] = (char *) seq_key;
    argvlen[3] = ngx_chat_redis_key(seq_key, &op->room->node.str, ":seq");
    argv[4] = (char *) recent;
    argvlen[4] = ngx_chat_redis_key(recent, &op->room->node.str, ":recent");

    /* a key of its own when not durable, so the script has four */

    p = stream->len ? stream->data : seq_key;
    argv[5] = (char *) p;
    argvlen[5] = stream->len ? stream->len : argvlen[3];

    argv[6] = (char *) (send->idem.len ? send->idem.data : seq_key);
    argvlen[6] = send->idem.len ? send->idem.len : argvlen[3];

    argv[7] = (char *) send->head.data;
    argvlen[7] = send->head.len;
    argv[8] = (char *) send->tail.data;
    argvlen[8] = send->tail.len;
    argv[9] = (char *) ngx_chat_redis_keep;
    argvlen[9] = ngx_chat_redis_keep_len;
    argv[10] = (char *) channel;
    argvlen[10] = ngx_chat_redis_key(channel, &op->room->node.str, "");
    argv[11] = stream->len ? "1" : "0";
    argvlen[11] = 1;
    argv[12] = send->idem.len ? "1" : "0";
    argvlen[12] = 1;

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd, ngx_chat_redis_published,
                               op, 13, argv, argvlen)
        != NGX_OK)
    {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


static void
ngx_chat_redis_published(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    int64_t                 seq;
    redisReply             *reply = r;
    ngx_chat_redis_send_t  *send;

    send = op->store_data;

    if (reply && reply->type == REDIS_REPLY_ERROR
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0 && !send->noscript)
    {
        /* once: EVAL with the script itself, which loads it again */
        send->noscript = 1;
        ngx_chat_redis_eval(op);
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        if (reply && reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, op->log, 0,
                          "chat: room \"%V\": message not stored: %s",
                          &op->room->node.str, reply->str);
        }

        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    seq = reply->element[0]->integer;

    if (seq < 0 && !send->reseeded) {
        send->reseeded = 1;
        ngx_chat_redis_reseed(op);
        return;
    }

    if (seq <= 0) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    op->seq = (uint64_t) seq;

    ngx_chat_store_op_done(op);
}


/*
 * The room's seq is gone from Redis (a restart without its data, a
 * FLUSHALL): it goes on from the last one Postgres has, so that no seq
 * is ever given twice.  The sends that find it gone wait, in the order
 * Redis answered them, and go again in that order once it is back.
 */

static void
ngx_chat_redis_reseed(ngx_chat_store_op_t *op)
{
    const char             *values[1];
    int                     lengths[1];
    ngx_chat_room_t        *room;
    ngx_chat_redis_room_t  *rr;

    room = op->room;

    rr = ngx_chat_redis_room(room);
    if (rr == NULL) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    ngx_chat_redis_seed_wait(rr, op);

    if (rr->seeding) {
        return;
    }

    values[0] = (char *) room->node.str.data;
    lengths[0] = room->node.str.len;

    if (ngx_chat_pg_query("SELECT coalesce(max(seq), 0) FROM chat_messages "
                          "WHERE room = $1", 1, values, lengths,
                          ngx_chat_redis_reseed_max, room)
        != NGX_OK)
    {
        ngx_chat_redis_seeded(NULL, NULL, room);
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
ngx_chat_redis_seed_wait(ngx_chat_redis_room_t *rr, ngx_chat_store_op_t *op)
{
    ngx_queue_t            *q;
    ngx_chat_store_op_t    *other;
    ngx_chat_redis_send_t  *send;

    send = op->store_data;

    for (q = ngx_queue_last(&rr->seeds);
         q != ngx_queue_sentinel(&rr->seeds);
         q = ngx_queue_prev(q))
    {
        other = ngx_queue_data(q, ngx_chat_store_op_t, wait);

        if (((ngx_chat_redis_send_t *) other->store_data)->ticket
            < send->ticket)
        {
            break;
        }
    }

    /* after q, which is the sentinel when op goes first */

    ngx_queue_insert_after(q, &op->wait);
}


static void
ngx_chat_redis_reseed_max(PGresult *res, void *data)
{
    ngx_chat_room_t *room = data;

    char  *max;

    room->refs--;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1)
    {
        ngx_chat_redis_seeded(NULL, NULL, room);
        return;
    }

    max = PQgetvalue(res, 0, 0);

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "chat: room \"%V\": seq missing in Redis, going on from "
                  "%s", &room->node.str, max);

    if (ngx_chat_redis_seed_key(&room->node.str, max, ngx_strlen(max),
                                ngx_chat_redis_seeded, room)
        != NGX_OK)
    {
        ngx_chat_redis_seeded(NULL, NULL, room);
        return;
    }

    room->refs++;
}


/* sets a room's seq key to at least seq (Postgres' last) */

static ngx_int_t
ngx_chat_redis_seed_key(ngx_str_t *room, char *seq, size_t len,
    redisCallbackFn *fn, void *data)
{
    u_char       seq_key[NGX_CHAT_REDIS_KEY_MAX];
    u_char       recent[NGX_CHAT_REDIS_KEY_MAX];
    const char  *argv[6];
    size_t       argvlen[6];

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = (char *) ngx_chat_redis_seed.data;
    argvlen[1] = ngx_chat_redis_seed.len;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (char *) seq_key;
    argvlen[3] = ngx_chat_redis_key(seq_key, room, ":seq");
    argv[4] = (char *) recent;
    argvlen[4] = ngx_chat_redis_key(recent, room, ":recent");
    argv[5] = seq;
    argvlen[5] = len;

    return ngx_chat_redis_command(&ngx_chat_redis_cmd, fn, data, 6, argv,
                                  argvlen);
}


/* r NULL with ac NULL: seeding failed before Redis was asked */

static void
ngx_chat_redis_seeded(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_room_t *room = privdata;

    redisReply             *reply = r;
    ngx_uint_t              ok;
    ngx_queue_t            *q;
    ngx_chat_store_op_t    *op;
    ngx_chat_redis_room_t  *rr;

    if (ac) {
        room->refs--;
    }

    rr = room->store;
    rr->seeding = 0;

    ok = (reply && reply->type != REDIS_REPLY_ERROR);

    while (!ngx_queue_empty(&rr->seeds)) {
        q = ngx_queue_head(&rr->seeds);
        ngx_queue_remove(q);
        ngx_queue_init(q);

        op = ngx_queue_data(q, ngx_chat_store_op_t, wait);

        if (ok) {
            ngx_chat_redis_eval(op);

        } else {
            ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        }
    }

    ngx_chat_redis_sync(room);
}


static void
ngx_chat_store_redis_history(ngx_chat_store_op_t *op)
{
    u_char       key[NGX_CHAT_REDIS_KEY_MAX], max[NGX_INT64_LEN + 1];
    u_char       count[NGX_INT_T_LEN];
    const char  *argv[7];
    size_t       argvlen[7];

    if (op->has_before && op->before == 0) {
        ngx_chat_store_op_done(op);
        return;
    }

    if (!ngx_chat_redis_cmd.ready) {
        ngx_chat_redis_hold(op, ngx_chat_store_redis_history);
        return;
    }

    argv[0] = "ZREVRANGEBYSCORE";
    argvlen[0] = 16;
    argv[1] = (char *) key;
    argvlen[1] = ngx_chat_redis_key(key, &op->room->node.str, ":recent");
    argv[2] = (char *) max;

    if (op->has_before) {
        argvlen[2] = ngx_sprintf(max, "(%uL", op->before) - max;

    } else {
        argvlen[2] = ngx_cpymem(max, "+inf", 4) - max;
    }

    argv[3] = "-inf";
    argvlen[3] = 4;
    argv[4] = "LIMIT";
    argvlen[4] = 5;
    argv[5] = "0";
    argvlen[5] = 1;
    argv[6] = (char *) count;
    argvlen[6] = ngx_sprintf(count, "%ui", op->limit) - count;

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd,
                               ngx_chat_redis_history_reply, op,
                               7, argv, argvlen)
        != NGX_OK)
    {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


static void
ngx_chat_redis_history_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    uint64_t  below;

    if (ngx_chat_redis_frames(op, r, 1) != NGX_OK) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    /* older than the cache: from Postgres */

    if (ngx_chat_writer_durable() && op->nframes < op->limit) {

        below = op->nframes ? op->frames[0]->seq
                            : (op->has_before ? op->before
                                              : NGX_CHAT_REDIS_SEQ_MAX);

        if (below > 1) {
            op->next = ngx_chat_store_op_done;

            if (ngx_chat_redis_pg_query(op, NGX_CHAT_REDIS_PG_RANGE, 0,
                                        below, op->limit - op->nframes)
                != NGX_OK)
            {
                ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
            }

            return;
        }
    }

    ngx_chat_store_op_done(op);
}


static void
ngx_chat_store_redis_online(ngx_chat_store_op_t *op)
{
    u_char       *p, *keys;
    size_t        size;
    ngx_uint_t    i;
    const char  **argv;
    size_t       *argvlen;

    if (!ngx_chat_redis_cmd.ready) {
        ngx_chat_redis_hold(op, ngx_chat_store_redis_online);
        return;
    }

    if (op->nusers == 0) {
        ngx_chat_store_op_done(op);
        return;
    }

    size = (op->nusers + 1) * (sizeof(char *) + sizeof(size_t));

    for (i = 0; i < op->nusers; i++) {
        size += ngx_chat_redis_prefix.len + sizeof(":presence:user:")
                + op->users[i].len;
    }

    argv = ngx_alloc(size, op->log);
    if (argv == NULL) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    argvlen = (size_t *) (argv + op->nusers + 1);
    keys = (u_char *) (argvlen + op->nusers + 1);

    argv[0] = "MGET";
    argvlen[0] = 4;

    for (p = keys, i = 0; i < op->nusers; i++) {
        argv[i + 1] = (char *) p;
        p = ngx_sprintf(p, "%V:presence:user:%V", &ngx_chat_redis_prefix,
                        &op->users[i]);
        argvlen[i + 1] = p - (u_char *) argv[i + 1];
    }

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd,
                               ngx_chat_redis_online_reply, op,
                               op->nusers + 1, argv, argvlen)
        != NGX_OK)
    {
        ngx_free(argv);
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    ngx_free(argv);
}


static void
ngx_chat_redis_online_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    ngx_uint_t   i;
    redisReply  *reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != op->nusers)
    {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    for (i = 0; i < op->nusers; i++) {
        op->present[i] = (reply->element[i]->type == REDIS_REPLY_STRING);
    }

    ngx_chat_store_op_done(op);
}


/* typing goes through the room's channel, not stored, not numbered */

static void
ngx_chat_store_redis_typing(ngx_chat_room_t *room, ngx_chat_frame_t *f,
    ngx_str_t *user)
{
    u_char       channel[NGX_CHAT_REDIS_KEY_MAX];
    const char  *argv[3];
    size_t       argvlen[3];

    argv[0] = "PUBLISH";
    argvlen[0] = 7;
    argv[1] = (char *) channel;
    argvlen[1] = ngx_chat_redis_key(channel, &room->node.str, "");
    argv[2] = (char *) f->payload;
    argvlen[2] = f->last - f->payload;

    (void) ngx_chat_redis_command(&ngx_chat_redis_cmd, NULL, NULL,
                                  3, argv, argvlen);
}


static void
ngx_chat_store_redis_presence(ngx_str_t *user, ngx_str_t *conn,
    ngx_uint_t event, ngx_msec_t ttl)
{
    u_char       key[NGX_CHAT_PREFIX_MAX + NGX_CHAT_USER_MAX + 16];
    u_char       conns[NGX_CHAT_PREFIX_MAX + NGX_CHAT_USER_MAX + 16];
    u_char       ms[NGX_INT_T_LEN];
    ngx_str_t   *script;
    const char  *argv[7];
    size_t       argvlen[7];

    /* a refresh is a connect again */

    script = &ngx_chat_redis_presence_scripts[
                 event == NGX_CHAT_PRESENCE_DISCONNECT
                 ? NGX_CHAT_PRESENCE_DISCONNECT : NGX_CHAT_PRESENCE_CONNECT];

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = (char *) script->data;
    argvlen[1] = script->len;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (char *) key;
    argvlen[3] = ngx_sprintf(key, "%V:presence:user:%V",
                             &ngx_chat_redis_prefix, user) - key;
    argv[4] = (char *) conns;
    argvlen[4] = ngx_sprintf(conns, "%V:presence:conns:%V",
                             &ngx_chat_redis_prefix, user) - conns;
    argv[5] = (char *) ms;
    argvlen[5] = ngx_sprintf(ms, "%M", ttl) - ms;
    argv[6] = (char *) conn->data;
    argvlen[6] = conn->len;

    (void) ngx_chat_redis_command(&ngx_chat_redis_cmd, NULL, NULL,
                                  7, argv, argvlen);
}


static void
ngx_chat_store_redis_presence_room(ngx_chat_room_t *room, ngx_str_t *user,
    ngx_uint_t join)
{
    u_char       counts[NGX_CHAT_REDIS_KEY_MAX];
    u_char       workers[NGX_CHAT_REDIS_KEY_MAX];
    u_char       channel[NGX_CHAT_REDIS_KEY_MAX];
    u_char       field[NGX_CHAT_WORKER_ID_LEN + 1 + NGX_CHAT_USER_MAX];
    u_char       set[NGX_CHAT_PREFIX_MAX + NGX_CHAT_WORKER_ID_LEN + 16];
    ngx_str_t   *script;
    const char  *argv[10];
    size_t       argvlen[10];

    script = join ? &ngx_chat_redis_pjoin : &ngx_chat_redis_pleave;

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = (char *) script->data;
    argvlen[1] = script->len;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (char *) counts;
    argvlen[3] = ngx_chat_redis_key(counts, &room->node.str, ":presence");
    argv[4] = (char *) workers;
    argvlen[4] = ngx_chat_redis_key(workers, &room->node.str,
                                    ":presence:w");
    argv[5] = (char *) user->data;
    argvlen[5] = user->len;
    argv[6] = (char *) field;
    argvlen[6] = ngx_sprintf(field, "%V\n%V", &ngx_chat_worker_id, user)
                 - field;
    argv[7] = (char *) channel;
    argvlen[7] = ngx_chat_redis_key(channel, &room->node.str, "");
    argv[8] = (char *) room->node.str.data;
    argvlen[8] = room->node.str.len;
    argv[9] = (char *) ngx_chat_redis_pmax;
    argvlen[9] = ngx_chat_redis_pmax_len;

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd, NULL, NULL, 10, argv,
                               argvlen)
        != NGX_OK
        || !join)
    {
        return;
    }

    /* the rooms this worker holds presence in, for its sweeper */

    argv[0] = "SADD";
    argvlen[0] = 4;
    argv[1] = (char *) set;
    argvlen[1] = ngx_sprintf(set, "%V:worker:%V:rooms",
                             &ngx_chat_redis_prefix, &ngx_chat_worker_id)
                 - set;
    argv[2] = (char *) room->node.str.data;
    argvlen[2] = room->node.str.len;

    (void) ngx_chat_redis_command(&ngx_chat_redis_cmd, NULL, NULL, 3, argv,
                                  argvlen);
}


static void
ngx_chat_store_redis_members(ngx_chat_store_op_t *op)
{
    u_char       key[NGX_CHAT_REDIS_KEY_MAX];
    const char  *argv[2];
    size_t       argvlen[2];

    if (!ngx_chat_redis_cmd.ready) {
        ngx_chat_redis_hold(op, ngx_chat_store_redis_members);
        return;
    }

    argv[0] = "HKEYS";
    argvlen[0] = 5;
    argv[1] = (char *) key;
    argvlen[1] = ngx_chat_redis_key(key, &op->room->node.str, ":presence");

    if (ngx_chat_redis_command(&ngx_chat_redis_cmd,
                               ngx_chat_redis_members_reply, op,
                               2, argv, argvlen)
        != NGX_OK)
    {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
    }
}


/* the users point into the reply: the op is answered before it is freed */

static void
ngx_chat_redis_members_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_chat_store_op_t *op = privdata;

    size_t       i;
    ngx_str_t   *users;
    redisReply  *reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_UNAVAILABLE);
        return;
    }

    users = ngx_alloc((reply->elements + 1) * sizeof(ngx_str_t), op->log);
    if (users == NULL) {
        ngx_chat_redis_fail(op, NGX_CHAT_ERR_INTERNAL);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_STRING) {
            users[op->nusers].data = (u_char *) reply->element[i]->str;
            users[op->nusers++].len = reply->element[i]->len;
        }
    }

    op->users = users;
    op->store_data = users;

    ngx_chat_store_op_done(op);
}


/* this worker is alive; and is any other one dead */

static void
ngx_chat_redis_registry_handler(ngx_event_t *ev)
{
    u_char       key[NGX_CHAT_PREFIX_MAX + 16], ms[NGX_INT_T_LEN];
    const char  *argv[6];
    size_t       argvlen[6];

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = (char *) ngx_chat_redis_pregistry.data;
    argvlen[1] = ngx_chat_redis_pregistry.len;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (char *) key;
    argvlen[3] = ngx_sprintf(key, "%V:workers", &ngx_chat_redis_prefix)
                 - key;
    argv[4] = (char *) ngx_chat_worker_id.data;
    argvlen[4] = ngx_chat_worker_id.len;
    argv[5] = (char *) ms;
    argvlen[5] = ngx_sprintf(ms, "%M", ngx_chat_redis_presence_ttl) - ms;

    (void) ngx_chat_redis_command(&ngx_chat_redis_cmd,
                                  ngx_chat_redis_registry_reply, NULL,
                                  6, argv, argvlen);

    ngx_add_timer(ev, ngx_chat_redis_presence_ttl / 3);
}


static void
ngx_chat_redis_registry_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    u_char       key[NGX_CHAT_PREFIX_MAX + 16];
    u_char       set[NGX_CHAT_PREFIX_MAX + NGX_CHAT_WORKER_ID_LEN + 16];
    size_t       i;
    redisReply  *reply = r, *e;
    const char  *argv[6];
    size_t       argvlen[6];

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING
            || e->len > NGX_CHAT_WORKER_ID_LEN)
        {
            continue;
        }

        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = (char *) ngx_chat_redis_pclaim.data;
        argvlen[1] = ngx_chat_redis_pclaim.len;
        argv[2] = "2";
        argvlen[2] = 1;
        argv[3] = (char *) key;
        argvlen[3] = ngx_sprintf(key, "%V:workers", &ngx_chat_redis_prefix)
                     - key;
        argv[4] = (char *) set;
        argvlen[4] = ngx_sprintf(set, "%V:worker:%*s:rooms",
                                 &ngx_chat_redis_prefix, e->len, e->str)
                     - set;
        argv[5] = e->str;
        argvlen[5] = e->len;

        /* the dead worker's id goes along, for the sweep */

        (void) ngx_chat_redis_command(&ngx_chat_redis_cmd,
                                      ngx_chat_redis_claimed,
                                      ngx_chat_redis_dead(e->str, e->len),
                                      6, argv, argvlen);
    }
}


static ngx_str_t *
ngx_chat_redis_dead(char *id, size_t len)
{
    ngx_str_t  *w;

    w = ngx_alloc(sizeof(ngx_str_t) + len, ngx_cycle->log);
    if (w == NULL) {
        return NULL;
    }

    w->data = (u_char *) (w + 1);
    w->len = len;
    ngx_memcpy(w->data, id, len);

    return w;
}


/* this worker claimed a dead one: its rooms lose its users */

static void
ngx_chat_redis_claimed(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_str_t *dead = privdata;

    u_char       counts[NGX_CHAT_REDIS_KEY_MAX];
    u_char       workers[NGX_CHAT_REDIS_KEY_MAX];
    u_char       channel[NGX_CHAT_REDIS_KEY_MAX];
    u_char       prefix[NGX_CHAT_WORKER_ID_LEN + 1];
    size_t       i;
    ngx_str_t    room;
    redisReply  *reply = r, *e;
    const char  *argv[9];
    size_t       argvlen[9];

    if (dead == NULL) {
        return;
    }

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat: worker \"%V\" is gone, its users leave %uz "
                      "rooms", dead, (size_t) reply->elements);
    }

    for (i = 0; reply && reply->type == REDIS_REPLY_ARRAY
                && i < reply->elements; i++)
    {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        room.data = (u_char *) e->str;
        room.len = e->len;

        if (!ngx_chat_decode_room_valid(&room)) {
            continue;
        }

        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = (char *) ngx_chat_redis_psweep.data;
        argvlen[1] = ngx_chat_redis_psweep.len;
        argv[2] = "2";
        argvlen[2] = 1;
        argv[3] = (char *) counts;
        argvlen[3] = ngx_chat_redis_key(counts, &room, ":presence");
        argv[4] = (char *) workers;
        argvlen[4] = ngx_chat_redis_key(workers, &room, ":presence:w");
        argv[5] = (char *) prefix;
        argvlen[5] = ngx_sprintf(prefix, "%V\n", dead) - prefix;
        argv[6] = (char *) channel;
        argvlen[6] = ngx_chat_redis_key(channel, &room, "");
        argv[7] = (char *) room.data;
        argvlen[7] = room.len;
        argv[8] = (char *) ngx_chat_redis_pmax;
        argvlen[8] = ngx_chat_redis_pmax_len;

        (void) ngx_chat_redis_command(&ngx_chat_redis_cmd, NULL, NULL,
                                      9, argv, argvlen);
    }

    ngx_free(dead);
}


/* the stored message events of a reply, checked, ascending by seq */

static ngx_int_t
ngx_chat_redis_frames(ngx_chat_store_op_t *op, redisReply *reply,
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


/* "prefix:{room}" + suffix: every key of a room in one cluster slot */

static size_t
ngx_chat_redis_key(u_char *buf, ngx_str_t *room, char *suffix)
{
    u_char  *p;

    p = ngx_cpymem(buf, ngx_chat_redis_prefix.data,
                   ngx_chat_redis_prefix.len);
    *p++ = ':';
    *p++ = '{';
    p = ngx_cpymem(p, room->data, room->len);
    *p++ = '}';
    p = ngx_cpymem(p, suffix, ngx_strlen(suffix));

    return p - buf;
}


/* an integer reply, or a string of digits, or nil (0) */

static ngx_int_t
ngx_chat_redis_uint(redisReply *reply, uint64_t *n)
{
    size_t    i;
    uint64_t  v;

    if (reply == NULL) {
        return NGX_ERROR;
    }

    switch (reply->type) {

    case REDIS_REPLY_INTEGER:
        if (reply->integer < 0) {
            return NGX_ERROR;
        }

        *n = (uint64_t) reply->integer;
        return NGX_OK;

    case REDIS_REPLY_NIL:
        *n = 0;
        return NGX_OK;

    case REDIS_REPLY_STRING:
        if (reply->len == 0 || reply->len > 18) {
            return NGX_ERROR;
        }

        for (v = 0, i = 0; i < reply->len; i++) {
            if (reply->str[i] < '0' || reply->str[i] > '9') {
                return NGX_ERROR;
            }

            v = v * 10 + (reply->str[i] - '0');
        }

        *n = v;
        return NGX_OK;

    default:
        return NGX_ERROR;
    }
}


static void
ngx_chat_redis_fail(ngx_chat_store_op_t *op, ngx_uint_t error)
{
    op->error = error;
    ngx_chat_store_op_done(op);
}
