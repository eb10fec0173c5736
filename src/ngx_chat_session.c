
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_session.h"
#include "ngx_chat_request.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_store.h"
#include "ngx_chat_status.h"
#include "ngx_chat_limit.h"


/*
 * A client, whatever carries it: its life from the transport's start to
 * its end, and the checks each of its requests passes (its rooms, its
 * rate) before ngx_chat_request.c runs it.
 */


/* consecutive rate_limited refusals tolerated before the close with 1008 */
#define NGX_CHAT_SESSION_REFUSALS  10


#define ngx_chat_session_of(n)                                               \
    ((ngx_chat_session_t *) ((u_char *) (n)                                  \
                             - offsetof(ngx_chat_session_t, node)))


static ngx_chat_session_t *ngx_chat_session_first(ngx_str_t *user);
static ngx_chat_session_t *ngx_chat_session_next(ngx_chat_session_t *s);
static ngx_int_t ngx_chat_session_cmp(ngx_rbtree_key_t key, ngx_str_t *user,
    ngx_chat_session_t *s);
static void ngx_chat_session_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_uint_t ngx_chat_session_allow(ngx_chat_session_t *s,
    ngx_uint_t send);
static void ngx_chat_session_refill(uint32_t *tokens, ngx_msec_t elapsed,
    ngx_chat_rate_t *rate);
static ngx_uint_t ngx_chat_session_pending(ngx_chat_session_t *s);
static void ngx_chat_session_presence_key(ngx_chat_session_t *s,
    ngx_uint_t event);


/* the worker's sessions by user, for what the application asks of them */
static ngx_rbtree_t       ngx_chat_session_users;
static ngx_rbtree_node_t  ngx_chat_session_sentinel;


/* what outlives the request lives on the connection's pool */

ngx_chat_session_t *
ngx_chat_session_create(ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *rooms,
    ngx_atomic_uint_t number, ngx_chat_loc_conf_t *conf,
    ngx_chat_transport_t *transport, ngx_chat_codec_t *codec, void *conn,
    ngx_log_t *log)
{
    size_t               size;
    ngx_chat_session_t  *s;

    size = sizeof(ngx_chat_session_t) + user->len;

    if (rooms) {
        size += sizeof(ngx_str_t) + rooms->len;
    }

    s = ngx_pcalloc(pool, size);
    if (s == NULL) {
        return NULL;
    }

    if (rooms) {
        s->allowed = (ngx_str_t *) (s + 1);
        s->allowed->data = (u_char *) (s->allowed + 1);
        s->allowed->len = rooms->len;
        ngx_memcpy(s->allowed->data, rooms->data, rooms->len);
        s->peer.user.data = s->allowed->data + rooms->len;

    } else {
        s->peer.user.data = (u_char *) (s + 1);
    }

    s->peer.user.len = user->len;
    ngx_memcpy(s->peer.user.data, user->data, user->len);
    s->peer.transport = transport;
    s->peer.conn = conn;

    s->codec = codec;
    s->conf = conf;
    s->log = log;
    s->number = number;
    s->tokens = (uint32_t) conf->send_rate.burst;
    s->rtokens = (uint32_t) conf->request_rate.burst;
    s->tokens_time = ngx_current_msec;
    ngx_queue_init(&s->rooms);
    ngx_queue_init(&s->ops);
    ngx_queue_init(&s->held);

    return s;
}


/*
 * the transport is up: the client is online, and welcomed; limit: what
 * it counts in chat_limit_conn, given back at the close
 */

void
ngx_chat_session_start(ngx_chat_session_t *s, ngx_chat_limit_held_t *limit)
{
    s->limit = limit;

    if (ngx_chat_session_users.root == NULL) {
        ngx_rbtree_init(&ngx_chat_session_users, &ngx_chat_session_sentinel,
                        ngx_chat_session_insert);
    }

    s->node.key = ngx_crc32_short(s->peer.user.data, s->peer.user.len);
    ngx_rbtree_insert(&ngx_chat_session_users, &s->node);

    ngx_chat_stat_inc(connections);

    if (s->transient) {
        return;
    }

    s->presence = ngx_current_msec;
    ngx_chat_session_presence_key(s, NGX_CHAT_PRESENCE_CONNECT);

    ngx_chat_request_reply(s, s->codec->welcome(&s->peer.user, s->number,
                                                &ngx_chat_worker_id,
                                                s->log));
}


/* the transport is gone: nothing of the session may be used after this */

void
ngx_chat_session_close(ngx_chat_session_t *s)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&s->ops)) {
        ngx_chat_store_op_cancel(ngx_queue_data(ngx_queue_head(&s->ops),
                                                ngx_chat_store_op_t, queue));
    }

    while (!ngx_queue_empty(&s->rooms)) {
        q = ngx_queue_head(&s->rooms);
        ngx_chat_request_part(s, ngx_queue_data(q, ngx_chat_member_t,
                                                owner_link));
    }

    if (!s->transient) {
        ngx_chat_session_presence_key(s, NGX_CHAT_PRESENCE_DISCONNECT);
    }

    ngx_rbtree_delete(&ngx_chat_session_users, &s->node);

    ngx_chat_stat_dec(connections);

    ngx_chat_limit_release(s->limit);
    s->limit = NULL;
}


/* a command of the application has reached this worker */

ngx_uint_t
ngx_chat_session_command(ngx_uint_t op, ngx_str_t *user, ngx_str_t *room)
{
    if (op == NGX_CHAT_REQ_KICK) {
        return ngx_chat_session_kick(user, room);
    }

    return ngx_chat_session_disconnect(user);
}


/* every connection of the user on this worker leaves the room */

ngx_uint_t
ngx_chat_session_kick(ngx_str_t *user, ngx_str_t *room)
{
    ngx_uint_t           n;
    ngx_chat_member_t   *m;
    ngx_chat_session_t  *s;

    n = 0;

    for (s = ngx_chat_session_first(user); s; s = ngx_chat_session_next(s)) {
        m = ngx_chat_request_member(s, room);

        if (m) {
            ngx_chat_request_kicked(s, m);
            ngx_chat_stat_inc(kicks);
            n++;
        }
    }

    return n;
}


/* every connection of the user on this worker is closed */

ngx_uint_t
ngx_chat_session_disconnect(ngx_str_t *user)
{
    ngx_uint_t           n;
    ngx_chat_session_t  *s;

    n = 0;

    /* a transport's close only starts the close: the sessions stay */

    for (s = ngx_chat_session_first(user); s; s = ngx_chat_session_next(s)) {
        s->peer.transport->close(s->peer.conn, NGX_CHAT_CLOSE_POLICY,
                                 "disconnected");
        ngx_chat_stat_inc(disconnects);
        n++;
    }

    return n;
}


/* the user's first session in the tree: equal ones follow it in order */

static ngx_chat_session_t *
ngx_chat_session_first(ngx_str_t *user)
{
    ngx_int_t           rc;
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel, *found;

    if (ngx_chat_session_users.root == NULL) {
        return NULL;
    }

    key = ngx_crc32_short(user->data, user->len);
    node = ngx_chat_session_users.root;
    sentinel = ngx_chat_session_users.sentinel;
    found = NULL;

    while (node != sentinel) {
        rc = ngx_chat_session_cmp(key, user, ngx_chat_session_of(node));

        if (rc == 0) {
            found = node;
        }

        node = (rc <= 0) ? node->left : node->right;
    }

    return found ? ngx_chat_session_of(found) : NULL;
}


static ngx_chat_session_t *
ngx_chat_session_next(ngx_chat_session_t *s)
{
    ngx_rbtree_node_t  *next;

    next = ngx_rbtree_next(&ngx_chat_session_users, &s->node);

    if (next == NULL
        || ngx_chat_session_cmp(s->node.key, &s->peer.user,
                                ngx_chat_session_of(next))
           != 0)
    {
        return NULL;
    }

    return ngx_chat_session_of(next);
}


static ngx_int_t
ngx_chat_session_cmp(ngx_rbtree_key_t key, ngx_str_t *user,
    ngx_chat_session_t *s)
{
    if (key != s->node.key) {
        return (key < s->node.key) ? -1 : 1;
    }

    if (user->len != s->peer.user.len) {
        return (user->len < s->peer.user.len) ? -1 : 1;
    }

    return ngx_memcmp(user->data, s->peer.user.data, user->len);
}


/* equal ones go right, so that they stay together, oldest first */

static void
ngx_chat_session_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_str_t           *user;
    ngx_rbtree_node_t  **p;

    user = &ngx_chat_session_of(node)->peer.user;

    for ( ;; ) {

        p = (ngx_chat_session_cmp(node->key, user, ngx_chat_session_of(temp))
             < 0)
            ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* a request as the codec decoded it; req->error set: it was refused */

void
ngx_chat_session_request(ngx_chat_session_t *s, ngx_chat_request_t *req)
{
    ngx_chat_member_t      *m;
    ngx_chat_request_op_t  *o;

    /* any request says the client is there: at most once per TTL/3 */

    if (ngx_current_msec - s->presence >= s->conf->presence_ttl / 3) {
        s->presence = ngx_current_msec;
        ngx_chat_session_presence_key(s, NGX_CHAT_PRESENCE_REFRESH);
    }

    if (req->error) {
        ngx_chat_request_error(s, req->error, req->reason, &req->id);
        return;
    }

    o = &ngx_chat_request_ops[req->op];
    m = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, s->log, 0,
                   "chat: request \"%s\" \"%V\"", o->name, &req->room);

    if (o->flags & NGX_CHAT_REQUEST_MEMBER) {
        m = ngx_chat_request_member(s, &req->room);

        if (m == NULL) {
            ngx_chat_request_error(s, NGX_CHAT_ERR_NOT_JOINED,
                                   "not in this room", &req->id);
            return;
        }
    }

    if (!ngx_chat_session_allow(s, o->flags & NGX_CHAT_REQUEST_SEND)) {

        if (++s->refusals > NGX_CHAT_SESSION_REFUSALS) {
            ngx_log_error(NGX_LOG_INFO, s->log, 0,
                          "chat: client keeps flooding, closing");
            s->peer.transport->close(s->peer.conn, NGX_CHAT_CLOSE_POLICY,
                                     "rate limit");
            return;
        }

        ngx_chat_stat_inc(rate_limited);
        ngx_chat_request_error(s, NGX_CHAT_ERR_RATE_LIMITED,
                               (o->flags & NGX_CHAT_REQUEST_SEND)
                               ? "chat_rate exceeded"
                               : "chat_request_rate exceeded", &req->id);
        return;
    }

    s->refusals = 0;

    /* a slow store does not make a client's requests pile up */

    if ((o->flags & NGX_CHAT_REQUEST_STORE)
        && ngx_chat_session_pending(s) >= s->conf->max_pending)
    {
        ngx_chat_stat_inc(rate_limited);
        ngx_chat_request_error(s, NGX_CHAT_ERR_RATE_LIMITED,
                               "too many requests waiting", &req->id);
        return;
    }

    o->start(s, req, m);
}


/*
 * A join the transport makes for its client (the rooms an SSE stream was
 * opened with): no rate applies, chat_max_rooms bounds them.
 */

void
ngx_chat_session_join(ngx_chat_session_t *s, ngx_str_t *room,
    ngx_uint_t has_since, uint64_t since)
{
    ngx_chat_request_t  req;

    ngx_memzero(&req, sizeof(ngx_chat_request_t));

    req.op = NGX_CHAT_REQ_JOIN;
    req.room = *room;
    req.since = since;
    req.has_since = has_since;

    ngx_chat_request_ops[NGX_CHAT_REQ_JOIN].start(s, &req, NULL);
}


/*
 * Two token buckets, chat_rate's for sends, chat_request_rate's for the
 * rest, refilled together; each holds at most its burst.
 */

static ngx_uint_t
ngx_chat_session_allow(ngx_chat_session_t *s, ngx_uint_t send)
{
    uint32_t    *tokens;
    ngx_msec_t   elapsed;

    elapsed = ngx_current_msec - s->tokens_time;
    s->tokens_time = ngx_current_msec;

    ngx_chat_session_refill(&s->tokens, elapsed, &s->conf->send_rate);
    ngx_chat_session_refill(&s->rtokens, elapsed, &s->conf->request_rate);

    tokens = send ? &s->tokens : &s->rtokens;

    if (*tokens < 1000) {
        return 0;
    }

    *tokens -= 1000;

    return 1;
}


static void
ngx_chat_session_refill(uint32_t *tokens, ngx_msec_t elapsed,
    ngx_chat_rate_t *rate)
{
    uint64_t  n;

    n = *tokens + (uint64_t) elapsed * rate->rate / 1000;

    *tokens = (uint32_t) ngx_min(n, rate->burst);
}


/* the requests waiting for the store, counted up to the bound */

static ngx_uint_t
ngx_chat_session_pending(ngx_chat_session_t *s)
{
    ngx_uint_t    n;
    ngx_queue_t  *q;

    n = 0;

    for (q = ngx_queue_head(&s->ops);
         q != ngx_queue_sentinel(&s->ops) && n < s->conf->max_pending;
         q = ngx_queue_next(q))
    {
        n++;
    }

    return n;
}


/* this connection among all of the user's: its worker and its number */

static void
ngx_chat_session_presence_key(ngx_chat_session_t *s, ngx_uint_t event)
{
    u_char     buf[NGX_CHAT_WORKER_ID_LEN + 1 + NGX_ATOMIC_T_LEN];
    ngx_str_t  conn;

    conn.data = buf;
    conn.len = ngx_sprintf(buf, "%V#%uA", &ngx_chat_worker_id, s->number)
               - buf;

    ngx_chat_store->presence(&s->peer.user, &conn, event,
                             s->conf->presence_ttl);
}
