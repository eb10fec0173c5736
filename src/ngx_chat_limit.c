
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_limit.h"
#include "ngx_chat_status.h"


/*
 * chat_limit_conn: the open chat connections of a key, counted for the
 * host in one shared-memory zone, whichever worker holds them.  A node of
 * the zone's rbtree is a (directive, key) pair: its total, checked
 * against the limit in O(log n), and the processes that hold it with
 * their counts, a list as long as the workers holding the key (old ones
 * too while a reload drains).  A connection keeps the nodes it counted
 * in: its own count keeps their total above 0, so they stay.  The counts
 * of a process that died without giving them back (SIGKILL) are dropped
 * by the next worker to start.
 */

#define NGX_CHAT_LIMIT_ZONE_DEFAULT  (1024 * 1024)
#define NGX_CHAT_LIMIT_ZONE_MIN      (32 * 1024)


typedef struct ngx_chat_limit_pid_s  ngx_chat_limit_pid_t;

struct ngx_chat_limit_pid_s {
    ngx_chat_limit_pid_t       *next;
    ngx_pid_t                   pid;
    ngx_uint_t                  count;
};


typedef struct {
    ngx_rbtree_node_t           node;         /* key: crc32 of index, key */
    ngx_chat_limit_pid_t       *pids;
    ngx_uint_t                  index;        /* the directive's */
    ngx_uint_t                  total;
    u_short                     len;
    u_char                      data[1];
} ngx_chat_limit_node_t;


typedef struct {
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
} ngx_chat_limit_sh_t;


typedef struct {
    ngx_chat_limit_sh_t        *sh;
    ngx_slab_pool_t            *shpool;
    ngx_uint_t                  nlimits;      /* directives read so far */
} ngx_chat_limit_ctx_t;


/* one chat_limit_conn line; a location's are an array of them */

typedef struct {
    ngx_http_complex_value_t    key;
    ngx_uint_t                  conn;
    ngx_uint_t                  index;
    ngx_shm_zone_t             *zone;
    ngx_str_t                   file;
    ngx_uint_t                  line;
} ngx_chat_limit_t;


/* on the connection's pool: the nodes a connection counts in */

struct ngx_chat_limit_held_s {
    ngx_slab_pool_t            *shpool;
    ngx_uint_t                  n;
    ngx_chat_limit_node_t      *node[1];
};


static ngx_int_t ngx_chat_limit_init_zone(ngx_shm_zone_t *zone, void *data);
static ngx_shm_zone_t *ngx_chat_limit_zone(ngx_cycle_t *cycle);
static ngx_int_t ngx_chat_limit_count(ngx_chat_limit_ctx_t *ctx,
    ngx_chat_limit_t *limit, ngx_str_t *key, ngx_chat_limit_node_t **found);
static void ngx_chat_limit_uncount(ngx_slab_pool_t *shpool,
    ngx_chat_limit_node_t *ln);
static ngx_uint_t ngx_chat_limit_sweep(ngx_slab_pool_t *shpool,
    ngx_uint_t exiting);
static ngx_uint_t ngx_chat_limit_alive(ngx_pid_t pid);
static uint32_t ngx_chat_limit_hash(ngx_uint_t index, ngx_str_t *key);
static ngx_int_t ngx_chat_limit_cmp(ngx_rbtree_key_t hash, ngx_uint_t index,
    u_char *data, size_t len, ngx_chat_limit_node_t *ln);
static ngx_chat_limit_node_t *ngx_chat_limit_lookup(ngx_rbtree_t *tree,
    uint32_t hash, ngx_uint_t index, ngx_str_t *key);
static void ngx_chat_limit_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);


/* set once the worker's exit gave its counts back */
static ngx_uint_t  ngx_chat_limit_gone;


/* chat_limit_conn key number [zone=size] */

char *
ngx_chat_limit_conn(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ssize_t                            size;
    ngx_int_t                          n;
    ngx_str_t                         *value, s;
    ngx_shm_zone_t                    *zone;
    ngx_chat_limit_t                  *limit;
    ngx_chat_limit_ctx_t              *ctx;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;

    n = ngx_atoi(value[2].data, value[2].len);
    if (n <= 0) {
        return "has an invalid number of connections: use a positive "
               "integer";
    }

    size = 0;

    if (cf->args->nelts == 4) {
        if (value[3].len <= 5
            || ngx_strncmp(value[3].data, "zone=", 5) != 0)
        {
            return "has an invalid parameter: expected \"zone=size\"";
        }

        s.data = value[3].data + 5;
        s.len = value[3].len - 5;

        size = ngx_parse_size(&s);
        if (size == NGX_ERROR) {
            return "has an invalid zone size";
        }

        if (size < NGX_CHAT_LIMIT_ZONE_MIN) {
            return "has a zone size under 32k";
        }
    }

    ngx_str_set(&s, "chat_limit_conn");

    zone = ngx_shared_memory_add(cf, &s, 0, &ngx_chat_module);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->data == NULL) {
        ctx = ngx_pcalloc(cf->pool, sizeof(ngx_chat_limit_ctx_t));
        if (ctx == NULL) {
            return NGX_CONF_ERROR;
        }

        zone->init = ngx_chat_limit_init_zone;
        zone->data = ctx;
    }

    ctx = zone->data;

    /* the default size is set once every directive has been read */

    if (size) {
        if (zone->shm.size && zone->shm.size != (size_t) size) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "conflicting zone sizes of "
                               "\"chat_limit_conn\": %z here, %uz before: "
                               "all its lines share one zone",
                               size, zone->shm.size);
            return NGX_CONF_ERROR;
        }

        zone->shm.size = size;
    }

    if (lcf->limits == NGX_CONF_UNSET_PTR) {
        lcf->limits = ngx_array_create(cf->pool, 2, sizeof(ngx_chat_limit_t));
        if (lcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    limit = ngx_array_push(lcf->limits);
    if (limit == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(limit, sizeof(ngx_chat_limit_t));

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = &limit->key;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    limit->conn = n;
    limit->index = ctx->nlimits++;
    limit->zone = zone;
    limit->file = cf->conf_file->file.name;
    limit->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* postconfiguration: the zone's default size, if no line gave one */

ngx_int_t
ngx_chat_limit_init_conf(ngx_conf_t *cf)
{
    ngx_shm_zone_t  *zone;

    zone = ngx_chat_limit_zone(cf->cycle);

    if (zone && zone->shm.size == 0) {
        zone->shm.size = NGX_CHAT_LIMIT_ZONE_DEFAULT;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_limit_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_chat_limit_ctx_t *octx = data;

    ngx_slab_pool_t       *shpool;
    ngx_chat_limit_ctx_t  *ctx;

    ctx = zone->data;

    /* a reload with the same size: the old workers' counts go on */

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    ctx->shpool = shpool;

    if (zone->shm.exists) {
        ctx->sh = shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_alloc(shpool, sizeof(ngx_chat_limit_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_chat_limit_insert);

    shpool->log_ctx = ngx_slab_alloc(shpool,
                                     sizeof(" in chat_limit_conn zone"));
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in chat_limit_conn zone%Z");

    /* a full zone is the refusal's to log, at "error" */

    shpool->log_nomem = 0;

    return NGX_OK;
}


/* the cycle's zone: the one of this init handler */

static ngx_shm_zone_t *
ngx_chat_limit_zone(ngx_cycle_t *cycle)
{
    ngx_uint_t        i;
    ngx_shm_zone_t   *zone;
    ngx_list_part_t  *part;

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == &ngx_chat_module
            && zone[i].init == ngx_chat_limit_init_zone)
        {
            return &zone[i];
        }
    }
}


/*
 * NGX_HTTP_BAD_REQUEST: a key over NGX_CHAT_LIMIT_KEY_MAX bytes;
 * NGX_HTTP_TOO_MANY_REQUESTS: over a limit, or the zone is full.  An
 * empty key is not counted.  *held is NULL when nothing was counted.
 */

ngx_int_t
ngx_chat_limit_take(ngx_http_request_t *r, ngx_array_t *limits,
    ngx_chat_limit_held_t **held)
{
    ngx_int_t               rc;
    ngx_str_t              *keys;
    ngx_uint_t              i, n;
    ngx_slab_pool_t        *shpool;
    ngx_chat_limit_t       *limit;
    ngx_chat_limit_ctx_t   *ctx;
    ngx_chat_limit_held_t  *h;

    *held = NULL;

    if (limits == NULL) {
        return NGX_OK;
    }

    limit = limits->elts;

    keys = ngx_palloc(r->pool, limits->nelts * sizeof(ngx_str_t));
    if (keys == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    n = 0;

    for (i = 0; i < limits->nelts; i++) {
        if (ngx_http_complex_value(r, &limit[i].key, &keys[i]) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (keys[i].len > NGX_CHAT_LIMIT_KEY_MAX) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "chat: chat_limit_conn key of %uz bytes, over %d "
                          "(%V:%ui)", keys[i].len, NGX_CHAT_LIMIT_KEY_MAX,
                          &limit[i].file, limit[i].line);
            return NGX_HTTP_BAD_REQUEST;
        }

        n += (keys[i].len != 0);
    }

    if (n == 0) {
        return NGX_OK;
    }

    /* the request's pool goes at the upgrade, the connection's stays */

    h = ngx_palloc(r->connection->pool, sizeof(ngx_chat_limit_held_t)
                                        + (n - 1)
                                          * sizeof(ngx_chat_limit_node_t *));
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = limit[0].zone->data;
    shpool = ctx->shpool;

    h->shpool = shpool;
    h->n = 0;

    rc = NGX_OK;

    ngx_shmtx_lock(&shpool->mutex);

    /*
     * the tree in the zone may outlive this cycle's code (a reload reuses
     * the zone): the insert function is this process's
     */

    ctx->sh->rbtree.insert = ngx_chat_limit_insert;

    for (i = 0; i < limits->nelts; i++) {
        if (keys[i].len == 0) {
            continue;
        }

        rc = ngx_chat_limit_count(ctx, &limit[i], &keys[i], &h->node[h->n]);
        if (rc != NGX_OK) {
            break;
        }

        h->n++;
    }

    if (rc != NGX_OK) {
        while (h->n) {
            ngx_chat_limit_uncount(shpool, h->node[--h->n]);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (rc == NGX_OK) {
        *held = h;
        return NGX_OK;
    }

    ngx_chat_stat_inc(refused_limit);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "chat: over chat_limit_conn of %ui (%V:%ui), "
                      "a key of %uz bytes: 429", limit[i].conn,
                      &limit[i].file, limit[i].line, keys[i].len);

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "chat: chat_limit_conn zone is full (%V:%ui, a key "
                      "of %uz bytes): 429", &limit[i].file, limit[i].line,
                      keys[i].len);
    }

    return NGX_HTTP_TOO_MANY_REQUESTS;
}


/* the session is over: exactly once, whatever closed it */

void
ngx_chat_limit_release(ngx_chat_limit_held_t *held)
{
    if (held == NULL || held->n == 0 || ngx_chat_limit_gone) {
        return;
    }

    ngx_shmtx_lock(&held->shpool->mutex);

    while (held->n) {
        ngx_chat_limit_uncount(held->shpool, held->node[--held->n]);
    }

    ngx_shmtx_unlock(&held->shpool->mutex);
}


/*
 * Under the mutex: one more connection of the key.  NGX_DECLINED: the
 * key is at its limit; NGX_BUSY: the zone is full.
 */

static ngx_int_t
ngx_chat_limit_count(ngx_chat_limit_ctx_t *ctx, ngx_chat_limit_t *limit,
    ngx_str_t *key, ngx_chat_limit_node_t **found)
{
    uint32_t                hash;
    ngx_chat_limit_pid_t   *p;
    ngx_chat_limit_node_t  *ln;

    hash = ngx_chat_limit_hash(limit->index, key);
    ln = ngx_chat_limit_lookup(&ctx->sh->rbtree, hash, limit->index, key);

    if (ln == NULL) {
        ln = ngx_slab_alloc_locked(ctx->shpool,
                                   offsetof(ngx_chat_limit_node_t, data)
                                   + key->len);
        if (ln == NULL) {
            return NGX_BUSY;
        }

        ln->node.key = hash;
        ln->pids = NULL;
        ln->index = limit->index;
        ln->total = 0;
        ln->len = (u_short) key->len;
        ngx_memcpy(ln->data, key->data, key->len);

        ngx_rbtree_insert(&ctx->sh->rbtree, &ln->node);

    } else if (ln->total >= limit->conn) {
        return NGX_DECLINED;
    }

    for (p = ln->pids; p; p = p->next) {
        if (p->pid == ngx_pid) {
            break;
        }
    }

    if (p == NULL) {
        p = ngx_slab_alloc_locked(ctx->shpool, sizeof(ngx_chat_limit_pid_t));
        if (p == NULL) {
            if (ln->total == 0) {
                ngx_rbtree_delete(&ctx->sh->rbtree, &ln->node);
                ngx_slab_free_locked(ctx->shpool, ln);
            }

            return NGX_BUSY;
        }

        p->pid = ngx_pid;
        p->count = 0;
        p->next = ln->pids;
        ln->pids = p;
    }

    p->count++;
    ln->total++;

    *found = ln;

    return NGX_OK;
}


/* under the mutex: one connection of this process less */

static void
ngx_chat_limit_uncount(ngx_slab_pool_t *shpool, ngx_chat_limit_node_t *ln)
{
    ngx_chat_limit_sh_t    *sh;
    ngx_chat_limit_pid_t   *p, **pp;

    for (pp = &ln->pids; *pp; pp = &(*pp)->next) {
        if ((*pp)->pid == ngx_pid) {
            break;
        }
    }

    p = *pp;

    if (p == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "chat: chat_limit_conn node without this process");
        return;
    }

    if (--p->count == 0) {
        *pp = p->next;
        ngx_slab_free_locked(shpool, p);
    }

    if (--ln->total == 0) {
        sh = shpool->data;
        ngx_rbtree_delete(&sh->rbtree, &ln->node);
        ngx_slab_free_locked(shpool, ln);
    }
}


/*
 * A worker starts: the counts of processes that are gone, and of one that
 * had this pid before, are dropped; nothing else holds them.
 */

void
ngx_chat_limit_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t             n;
    ngx_shm_zone_t        *zone;
    ngx_chat_limit_ctx_t  *ctx;

    zone = ngx_chat_limit_zone(cycle);
    if (zone == NULL) {
        return;
    }

    ctx = zone->data;

    ngx_shmtx_lock(&ctx->shpool->mutex);
    n = ngx_chat_limit_sweep(ctx->shpool, 0);
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "chat: chat_limit_conn: dropped %ui connections "
                      "counted by exited workers", n);
    }
}


/* the worker's connections are closed by now: whatever is left goes */

void
ngx_chat_limit_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t             n;
    ngx_shm_zone_t        *zone;
    ngx_chat_limit_ctx_t  *ctx;

    zone = ngx_chat_limit_zone(cycle);
    if (zone == NULL || zone->data == NULL) {
        return;
    }

    ctx = zone->data;

    if (ctx->shpool == NULL) {
        return;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);
    n = ngx_chat_limit_sweep(ctx->shpool, 1);
    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_chat_limit_gone = 1;

    if (n) {
        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "chat: chat_limit_conn: dropped %ui connections "
                      "still counted at the exit", n);
    }
}


/* under the mutex: this pid's counts, and (not exiting) the dead's */

static ngx_uint_t
ngx_chat_limit_sweep(ngx_slab_pool_t *shpool, ngx_uint_t exiting)
{
    ngx_uint_t              n;
    ngx_rbtree_t           *tree;
    ngx_rbtree_node_t      *node, *next;
    ngx_chat_limit_sh_t    *sh;
    ngx_chat_limit_pid_t   *p, **pp;
    ngx_chat_limit_node_t  *ln;

    sh = shpool->data;
    tree = &sh->rbtree;

    if (tree->root == tree->sentinel) {
        return 0;
    }

    n = 0;

    for (node = ngx_rbtree_min(tree->root, tree->sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(tree, node);
        ln = (ngx_chat_limit_node_t *) node;

        pp = &ln->pids;

        while (*pp) {
            p = *pp;

            if (p->pid != ngx_pid
                && (exiting || ngx_chat_limit_alive(p->pid)))
            {
                pp = &p->next;
                continue;
            }

            n += p->count;
            ln->total -= p->count;
            *pp = p->next;
            ngx_slab_free_locked(shpool, p);
        }

        /* nginx's delete moves no other node: next stays valid */

        if (ln->total == 0) {
            ngx_rbtree_delete(tree, node);
            ngx_slab_free_locked(shpool, ln);
        }
    }

    return n;
}


static ngx_uint_t
ngx_chat_limit_alive(ngx_pid_t pid)
{
    return kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH;
}


static uint32_t
ngx_chat_limit_hash(ngx_uint_t index, ngx_str_t *key)
{
    uint32_t  hash;

    ngx_crc32_init(hash);
    ngx_crc32_update(&hash, (u_char *) &index, sizeof(ngx_uint_t));
    ngx_crc32_update(&hash, key->data, key->len);
    ngx_crc32_final(hash);

    return hash;
}


static ngx_int_t
ngx_chat_limit_cmp(ngx_rbtree_key_t hash, ngx_uint_t index, u_char *data,
    size_t len, ngx_chat_limit_node_t *ln)
{
    if (hash != ln->node.key) {
        return (hash < ln->node.key) ? -1 : 1;
    }

    if (index != ln->index) {
        return (index < ln->index) ? -1 : 1;
    }

    if (len != ln->len) {
        return (len < ln->len) ? -1 : 1;
    }

    return ngx_memcmp(data, ln->data, len);
}


static ngx_chat_limit_node_t *
ngx_chat_limit_lookup(ngx_rbtree_t *tree, uint32_t hash, ngx_uint_t index,
    ngx_str_t *key)
{
    ngx_int_t           rc;
    ngx_rbtree_node_t  *node, *sentinel;

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {
        rc = ngx_chat_limit_cmp(hash, index, key->data, key->len,
                                (ngx_chat_limit_node_t *) node);

        if (rc == 0) {
            return (ngx_chat_limit_node_t *) node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_chat_limit_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t     **p;
    ngx_chat_limit_node_t  *ln;

    ln = (ngx_chat_limit_node_t *) node;

    for ( ;; ) {

        p = (ngx_chat_limit_cmp(node->key, ln->index, ln->data, ln->len,
                                (ngx_chat_limit_node_t *) temp)
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
