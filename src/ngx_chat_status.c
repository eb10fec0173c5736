
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_status.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_writer.h"
#include "ngx_chat_pg.h"


/*
 * Statistics in one shared-memory zone.  Every worker process takes a
 * slot, is the only writer of its counters, and copies the state of its
 * Redis and Postgres links there every second.  A series of the output
 * is a worker number (nginx's ngx_worker: the replacement of a reloaded
 * or crashed worker takes the number over), not a process: the counters
 * of processes that have exited stay with their number, so that a
 * series never goes back while the master runs.  The durable stream's
 * figures are the host's, written by the last worker whose housekeeping
 * ran.  Slots are taken, given back and read under the zone's mutex.
 */

#define NGX_CHAT_STATUS_SLOTS       256
#define NGX_CHAT_STATUS_REFRESH     1000

/* the stream's figures are not shown once no housekeeping renewed them */
#define NGX_CHAT_STATUS_STALE       30

/* the links of a slot: what is configured, what is up */
#define NGX_CHAT_STATUS_REDIS       0x01
#define NGX_CHAT_STATUS_COMMANDS    0x02
#define NGX_CHAT_STATUS_SUBSCRIBER  0x04
#define NGX_CHAT_STATUS_WRITER      0x08
#define NGX_CHAT_STATUS_STREAM      0x10

#define NGX_CHAT_STATUS_TEXT_TYPE   "text/plain; version=0.0.4; charset=utf-8"


typedef struct {
    ngx_atomic_t                pid;         /* 0: the slot is free */
    ngx_uint_t                  number;      /* ngx_worker */
    ngx_uint_t                  generation;  /* higher: started later */
    u_char                      worker[NGX_CHAT_WORKER_ID_LEN];
    size_t                      worker_len;
    ngx_chat_counters_t         counters;
    ngx_atomic_t                links;       /* NGX_CHAT_STATUS_* bits */
    ngx_atomic_t                pg_pool;     /* 0: no chat_postgres */
    ngx_atomic_t                pg_up;
} ngx_chat_status_slot_t;


typedef struct {
    ngx_uint_t                  seen;        /* a process had the number */
    ngx_chat_counters_t         retired;     /* of its exited processes */
} ngx_chat_status_number_t;


typedef struct {
    ngx_uint_t                  generation;
    ngx_uint_t                  numbers;     /* the highest seen, + 1 */
    ngx_atomic_t                stream_backlog;
    ngx_atomic_t                stream_age;  /* ms */
    ngx_atomic_t                stream_time; /* of the figures; 0: none */
    ngx_chat_status_number_t    number[NGX_MAX_PROCESSES];
    ngx_chat_status_slot_t      slots[NGX_CHAT_STATUS_SLOTS];
} ngx_chat_status_shm_t;


/* a worker number as one request sees it */

typedef struct {
    ngx_uint_t                  seen;
    ngx_chat_status_slot_t     *current;     /* its newest live process */
    ngx_chat_counters_t         counters;    /* gauges: of live ones */
} ngx_chat_status_series_t;


/* what the zone held, copied under its mutex */

typedef struct {
    ngx_uint_t                  nprocs;
    ngx_chat_status_slot_t     *procs;       /* the live processes */
    ngx_uint_t                  nseries;
    ngx_chat_status_series_t   *series;      /* by worker number */
    ngx_chat_counters_t         total;
    ngx_uint_t                  stream;      /* the figures are known */
    ngx_atomic_uint_t           backlog;
    ngx_atomic_uint_t           age;
} ngx_chat_status_snap_t;


typedef struct {
    char                       *name;
    char                       *metric;
    char                       *type;
    char                       *help;
    size_t                      offset;
    ngx_uint_t                  counter;
} ngx_chat_status_field_t;


/* the best match of a media type in Accept, RFC 9110 12.5.1 */

typedef struct {
    ngx_str_t                   type;
    ngx_str_t                   subtype;
    ngx_uint_t                  level;       /* 3 type/sub, 2 type/x, 1 */
    ngx_uint_t                  q;           /* 0 to 1000 */
} ngx_chat_status_media_t;


static ngx_int_t ngx_chat_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_chat_status_retire(ngx_chat_status_shm_t *shm,
    ngx_chat_status_slot_t *slot);
static ngx_uint_t ngx_chat_status_alive(ngx_chat_status_slot_t *slot);
static void ngx_chat_status_refresh(void);
static void ngx_chat_status_timer_handler(ngx_event_t *ev);
static ngx_uint_t ngx_chat_status_wants_text(ngx_http_request_t *r);
static void ngx_chat_status_accept(ngx_str_t *value,
    ngx_chat_status_media_t *media, ngx_uint_t n);
static ngx_uint_t ngx_chat_status_qvalue(u_char **pos, u_char *last);
static ngx_int_t ngx_chat_status_snapshot(ngx_http_request_t *r,
    ngx_chat_status_snap_t *snap);
static ngx_buf_t *ngx_chat_status_json(ngx_http_request_t *r,
    ngx_chat_status_snap_t *snap);
static ngx_buf_t *ngx_chat_status_prometheus(ngx_http_request_t *r,
    ngx_chat_status_snap_t *snap);
static u_char *ngx_chat_status_family(u_char *p, char *metric, char *type,
    char *help);


#define ngx_chat_status_value(counters, field)                               \
    *(ngx_atomic_t *) ((u_char *) (counters) + (field)->offset)


static ngx_chat_status_field_t  ngx_chat_status_fields[] = {

    { "connections", "ngx_chat_connections", "gauge",
      "Open WebSocket connections.",
      offsetof(ngx_chat_counters_t, connections), 0 },

    { "rooms", "ngx_chat_rooms", "gauge",
      "Rooms with at least one member on the worker.",
      offsetof(ngx_chat_counters_t, rooms), 0 },

    { "messages_received", "ngx_chat_messages_received_total", "counter",
      "Messages accepted from clients.",
      offsetof(ngx_chat_counters_t, messages_received), 1 },

    { "messages_delivered", "ngx_chat_messages_delivered_total", "counter",
      "Message events queued to connections.",
      offsetof(ngx_chat_counters_t, messages_delivered), 1 },

    { "slow_consumers", "ngx_chat_slow_consumers_total", "counter",
      "Connections closed because their send buffer overflowed.",
      offsetof(ngx_chat_counters_t, slow_consumers), 1 },

    { NULL, NULL, NULL, NULL, 0, 0 }
};

#define NGX_CHAT_STATUS_NFIELDS                                               \
    (sizeof(ngx_chat_status_fields) / sizeof(ngx_chat_status_field_t) - 1)


/* the Redis links of a slot, as labels */

static struct {
    char                       *name;
    ngx_uint_t                  configured;
    ngx_uint_t                  up;
} ngx_chat_status_links[] = {
    { "commands", NGX_CHAT_STATUS_REDIS, NGX_CHAT_STATUS_COMMANDS },
    { "subscriber", NGX_CHAT_STATUS_REDIS, NGX_CHAT_STATUS_SUBSCRIBER },
    { "stream", NGX_CHAT_STATUS_WRITER, NGX_CHAT_STATUS_STREAM },
    { NULL, 0, 0 }
};


static ngx_chat_counters_t      ngx_chat_stats_dummy;
ngx_chat_counters_t            *ngx_chat_stats = &ngx_chat_stats_dummy;

static ngx_shm_zone_t          *ngx_chat_status_zone;
static ngx_chat_status_slot_t  *ngx_chat_status_slot;
static ngx_event_t              ngx_chat_status_timer;
static ngx_uint_t               ngx_chat_status_redis;
static ngx_uint_t               ngx_chat_status_pg_pool;


ngx_int_t
ngx_chat_status_init_conf(ngx_conf_t *cf)
{
    ngx_str_t  name = ngx_string("ngx_chat_status");

    ngx_chat_status_zone = ngx_shared_memory_add(cf, &name,
                               2 * sizeof(ngx_chat_status_shm_t)
                               + 8 * ngx_pagesize,
                               &ngx_chat_module);
    if (ngx_chat_status_zone == NULL) {
        return NGX_ERROR;
    }

    ngx_chat_status_zone->init = ngx_chat_status_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_status_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t        *shpool;
    ngx_chat_status_shm_t  *shm;

    if (data) {
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    shm = ngx_slab_calloc(shpool, sizeof(ngx_chat_status_shm_t));
    if (shm == NULL) {
        return NGX_ERROR;
    }

    shpool->data = shm;
    shm_zone->data = shm;

    return NGX_OK;
}


ngx_int_t
ngx_chat_status_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t               i;
    ngx_slab_pool_t         *shpool;
    ngx_chat_main_conf_t    *cmcf;
    ngx_chat_status_shm_t   *shm;
    ngx_chat_status_slot_t  *slot;

    if (ngx_chat_status_zone == NULL || ngx_chat_status_zone->data == NULL
        || ngx_worker >= NGX_MAX_PROCESSES)
    {
        return NGX_OK;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_chat_status_redis = (cmcf->redis != NULL);
    ngx_chat_status_pg_pool = cmcf->postgres.len ? cmcf->postgres_pool : 0;

    shm = ngx_chat_status_zone->data;
    shpool = (ngx_slab_pool_t *) ngx_chat_status_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    for (i = 0; i < NGX_CHAT_STATUS_SLOTS; i++) {
        slot = &shm->slots[i];

        /*
         * a worker killed without its exit_process leaves its slot
         * behind, and one with this worker's pid is a dead one's
         */

        if (slot->pid
            && (slot->pid == (ngx_atomic_uint_t) ngx_pid
                || !ngx_chat_status_alive(slot)))
        {
            ngx_chat_status_retire(shm, slot);
        }

        if (ngx_chat_status_slot == NULL && slot->pid == 0) {
            ngx_memzero(slot, sizeof(ngx_chat_status_slot_t));

            slot->number = ngx_worker;
            slot->generation = ++shm->generation;
            slot->worker_len = ngx_min(ngx_chat_worker_id.len,
                                       NGX_CHAT_WORKER_ID_LEN);
            ngx_memcpy(slot->worker, ngx_chat_worker_id.data,
                       slot->worker_len);
            slot->pid = ngx_pid;

            shm->number[ngx_worker].seen = 1;
            shm->numbers = ngx_max(shm->numbers, ngx_worker + 1);

            ngx_chat_status_slot = slot;
            ngx_chat_stats = &slot->counters;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (ngx_chat_status_slot == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "chat: no free status slot, this worker is not counted");
        return NGX_OK;
    }

    ngx_chat_worker_timer(&ngx_chat_status_timer,
                          ngx_chat_status_timer_handler, cycle->log);
    ngx_add_timer(&ngx_chat_status_timer, NGX_CHAT_STATUS_REFRESH);

    ngx_chat_status_refresh();

    return NGX_OK;
}


void
ngx_chat_status_exit_process(ngx_cycle_t *cycle)
{
    ngx_slab_pool_t  *shpool;

    if (ngx_chat_status_slot == NULL) {
        return;
    }

    if (ngx_chat_status_timer.timer_set) {
        ngx_del_timer(&ngx_chat_status_timer);
    }

    shpool = (ngx_slab_pool_t *) ngx_chat_status_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);
    ngx_chat_status_retire(ngx_chat_status_zone->data, ngx_chat_status_slot);
    ngx_shmtx_unlock(&shpool->mutex);

    ngx_chat_stats = &ngx_chat_stats_dummy;
    ngx_chat_status_slot = NULL;
}


/* under the mutex: the counters go to the slot's worker number */

static void
ngx_chat_status_retire(ngx_chat_status_shm_t *shm,
    ngx_chat_status_slot_t *slot)
{
    ngx_chat_counters_t      *retired;
    ngx_chat_status_field_t  *f;

    retired = &shm->number[slot->number].retired;

    for (f = ngx_chat_status_fields; f->name; f++) {
        if (f->counter) {
            ngx_chat_status_value(retired, f)
                += ngx_chat_status_value(&slot->counters, f);
        }
    }

    ngx_memzero(&slot->counters, sizeof(ngx_chat_counters_t));
    slot->pid = 0;
}


static ngx_uint_t
ngx_chat_status_alive(ngx_chat_status_slot_t *slot)
{
    ngx_pid_t  pid;

    pid = (ngx_pid_t) slot->pid;

    return pid && (kill(pid, 0) == 0 || ngx_errno != NGX_ESRCH);
}


/* this worker's links, into its slot */

static void
ngx_chat_status_refresh(void)
{
    ngx_uint_t               links;
    ngx_chat_status_slot_t  *slot;

    slot = ngx_chat_status_slot;

    if (slot == NULL) {
        return;
    }

    links = 0;

    if (ngx_chat_status_redis) {
        links |= NGX_CHAT_STATUS_REDIS;

        if (ngx_chat_cmd_ready()) {
            links |= NGX_CHAT_STATUS_COMMANDS;
        }

        if (ngx_chat_channel_ready()) {
            links |= NGX_CHAT_STATUS_SUBSCRIBER;
        }
    }

    if (ngx_chat_status_pg_pool) {
        links |= NGX_CHAT_STATUS_WRITER;

        if (ngx_chat_writer_link_ready()) {
            links |= NGX_CHAT_STATUS_STREAM;
        }
    }

    slot->links = links;
    slot->pg_pool = ngx_chat_status_pg_pool;
    slot->pg_up = ngx_chat_status_pg_pool ? ngx_chat_pg_up() : 0;
}


static void
ngx_chat_status_timer_handler(ngx_event_t *ev)
{
    ngx_chat_status_refresh();
    ngx_add_timer(ev, NGX_CHAT_STATUS_REFRESH);
}


/* the writer's housekeeping: entries not yet written, the oldest's age */

void
ngx_chat_status_stream(uint64_t backlog, uint64_t age)
{
    ngx_slab_pool_t        *shpool;
    ngx_chat_status_shm_t  *shm;

    if (ngx_chat_status_zone == NULL || ngx_chat_status_zone->data == NULL) {
        return;
    }

    shm = ngx_chat_status_zone->data;
    shpool = (ngx_slab_pool_t *) ngx_chat_status_zone->shm.addr;

    ngx_shmtx_lock(&shpool->mutex);

    shm->stream_backlog = (ngx_atomic_uint_t) backlog;
    shm->stream_age = (ngx_atomic_uint_t) age;
    shm->stream_time = ngx_time();

    ngx_shmtx_unlock(&shpool->mutex);
}


ngx_int_t
ngx_chat_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_str_t                format;
    ngx_buf_t               *b;
    ngx_uint_t               text;
    ngx_chain_t              out;
    ngx_table_elt_t         *vary;
    ngx_chat_status_snap_t   snap;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_chat_status_zone == NULL || ngx_chat_status_zone->data == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    /* ?format= first, then what the client accepts */

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) != NGX_OK) {
        format.len = 0;
    }

    if (format.len == 10 && ngx_strncmp(format.data, "prometheus", 10) == 0) {
        text = 1;

    } else if (format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0) {
        text = 0;

    } else {
        text = ngx_chat_status_wants_text(r);
    }

    ngx_chat_status_refresh();

    if (ngx_chat_status_snapshot(r, &snap) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (text) {
        b = ngx_chat_status_prometheus(r, &snap);
        ngx_str_set(&r->headers_out.content_type, NGX_CHAT_STATUS_TEXT_TYPE);

    } else {
        b = ngx_chat_status_json(r, &snap);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    vary = ngx_list_push(&r->headers_out.headers);
    if (vary == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(vary, sizeof(ngx_table_elt_t));
    vary->hash = 1;
    ngx_str_set(&vary->key, "Vary");
    ngx_str_set(&vary->value, "Accept");

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Whether the Accept headers rank the text format above JSON.  Each
 * type gets the quality of the most specific media range that matches
 * it; the text format is text/plain or application/openmetrics-text
 * (what a Prometheus scraper asks for first: it reads the text format
 * too).  A tie, or no Accept at all, is JSON's.
 */

static ngx_uint_t
ngx_chat_status_wants_text(ngx_http_request_t *r)
{
    ngx_uint_t                i;
    ngx_list_part_t          *part;
    ngx_table_elt_t          *h;
    ngx_chat_status_media_t   media[3] = {
        { ngx_string("text"), ngx_string("plain"), 0, 0 },
        { ngx_string("application"), ngx_string("openmetrics-text"), 0, 0 },
        { ngx_string("application"), ngx_string("json"), 0, 0 }
    };

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Accept") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Accept",
                               sizeof("Accept") - 1)
               == 0)
        {
            ngx_chat_status_accept(&h[i].value, media, 3);
        }
    }

    return ngx_max(media[0].q, media[1].q) > media[2].q;
}


/* one Accept value: media ranges, each with parameters; q is the one */

static void
ngx_chat_status_accept(ngx_str_t *value, ngx_chat_status_media_t *media,
    ngx_uint_t n)
{
    u_char                   *p, *last, *type, *sub;
    size_t                    tlen, slen;
    ngx_uint_t                i, q, level;
    ngx_chat_status_media_t  *m;

    p = value->data;
    last = p + value->len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        if (p == last) {
            break;
        }

        type = p;

        while (p < last && *p != '/' && *p != ',' && *p != ';'
               && *p != ' ' && *p != '\t')
        {
            p++;
        }

        tlen = p - type;
        sub = NULL;
        slen = 0;

        if (p < last && *p == '/') {
            sub = ++p;

            while (p < last && *p != ',' && *p != ';'
                   && *p != ' ' && *p != '\t')
            {
                p++;
            }

            slen = p - sub;
        }

        q = 1000;

        while (p < last && *p != ',') {

            if (*p == '"') {
                for (p++; p < last && *p != '"'; p++) {
                    if (*p == '\\' && p + 1 < last) {
                        p++;
                    }
                }

                if (p < last) {
                    p++;
                }

                continue;
            }

            if (*p++ != ';') {
                continue;
            }

            while (p < last && (*p == ' ' || *p == '\t')) {
                p++;
            }

            if (last - p >= 2 && (*p == 'q' || *p == 'Q') && p[1] == '=') {
                p += 2;
                q = ngx_chat_status_qvalue(&p, last);
            }
        }

        if (sub == NULL || tlen == 0 || slen == 0) {
            continue;
        }

        for (i = 0; i < n; i++) {
            m = &media[i];

            if (tlen == 1 && type[0] == '*') {
                level = (slen == 1 && sub[0] == '*') ? 1 : 0;

            } else if (tlen == m->type.len
                       && ngx_strncasecmp(type, m->type.data, tlen) == 0)
            {
                if (slen == 1 && sub[0] == '*') {
                    level = 2;

                } else if (slen == m->subtype.len
                           && ngx_strncasecmp(sub, m->subtype.data, slen)
                              == 0)
                {
                    level = 3;

                } else {
                    level = 0;
                }

            } else {
                level = 0;
            }

            if (level > m->level) {
                m->level = level;
                m->q = q;

            } else if (level && level == m->level && q > m->q) {
                m->q = q;
            }
        }
    }
}


/* "0", "0.5", "1.000": thousandths; anything else is 0 */

static ngx_uint_t
ngx_chat_status_qvalue(u_char **pos, u_char *last)
{
    u_char      *p;
    ngx_uint_t   q, scale;

    p = *pos;

    if (p == last || *p < '0' || *p > '9') {
        return 0;
    }

    q = (*p++ - '0') * 1000;

    if (p < last && *p == '.') {
        for (p++, scale = 100; p < last && *p >= '0' && *p <= '9'; p++) {
            q += (*p - '0') * scale;
            scale /= 10;
        }
    }

    *pos = p;

    return ngx_min(q, 1000);
}


static ngx_int_t
ngx_chat_status_snapshot(ngx_http_request_t *r, ngx_chat_status_snap_t *snap)
{
    time_t                     t;
    ngx_uint_t                 i, n;
    ngx_slab_pool_t           *shpool;
    ngx_chat_status_shm_t     *shm;
    ngx_chat_status_slot_t    *slot, *proc;
    ngx_chat_status_field_t   *f;
    ngx_chat_status_series_t  *s;

    shm = ngx_chat_status_zone->data;
    shpool = (ngx_slab_pool_t *) ngx_chat_status_zone->shm.addr;

    ngx_memzero(snap, sizeof(ngx_chat_status_snap_t));

    ngx_shmtx_lock(&shpool->mutex);

    snap->nseries = shm->numbers;

    for (n = 0, i = 0; i < NGX_CHAT_STATUS_SLOTS; i++) {
        n += (shm->slots[i].pid != 0);
    }

    snap->procs = ngx_palloc(r->pool,
                             (n + 1) * sizeof(ngx_chat_status_slot_t));
    snap->series = ngx_pcalloc(r->pool, (snap->nseries + 1)
                                        * sizeof(ngx_chat_status_series_t));

    if (snap->procs == NULL || snap->series == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_ERROR;
    }

    for (n = 0; n < snap->nseries; n++) {
        s = &snap->series[n];
        s->seen = shm->number[n].seen;
        s->counters = shm->number[n].retired;
    }

    for (i = 0; i < NGX_CHAT_STATUS_SLOTS; i++) {
        slot = &shm->slots[i];

        if (slot->pid == 0 || slot->number >= snap->nseries) {
            continue;
        }

        s = &snap->series[slot->number];

        /* the counters of a dead process not yet retired count too */

        if (!ngx_chat_status_alive(slot)) {
            for (f = ngx_chat_status_fields; f->name; f++) {
                if (f->counter) {
                    ngx_chat_status_value(&s->counters, f)
                        += ngx_chat_status_value(&slot->counters, f);
                }
            }

            continue;
        }

        proc = &snap->procs[snap->nprocs++];
        *proc = *slot;

        for (f = ngx_chat_status_fields; f->name; f++) {
            ngx_chat_status_value(&s->counters, f)
                += ngx_chat_status_value(&proc->counters, f);
        }

        if (s->current == NULL
            || s->current->generation < proc->generation)
        {
            s->current = proc;
        }
    }

    t = (time_t) shm->stream_time;

    if (t && ngx_time() - t <= NGX_CHAT_STATUS_STALE) {
        snap->stream = 1;
        snap->backlog = shm->stream_backlog;
        snap->age = shm->stream_age;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    for (n = 0; n < snap->nseries; n++) {
        for (f = ngx_chat_status_fields; f->name; f++) {
            ngx_chat_status_value(&snap->total, f)
                += ngx_chat_status_value(&snap->series[n].counters, f);
        }
    }

    return NGX_OK;
}


static ngx_buf_t *
ngx_chat_status_json(ngx_http_request_t *r, ngx_chat_status_snap_t *snap)
{
    u_char                   *p;
    size_t                    len;
    ngx_buf_t                *b;
    ngx_uint_t                i, k, links;
    ngx_chat_status_slot_t   *proc;
    ngx_chat_status_field_t  *f;

    len = sizeof("{\"version\":\"" NGX_CHAT_VERSION "\",") - 1
          + NGX_CHAT_STATUS_NFIELDS * (32 + NGX_ATOMIC_T_LEN)
          + sizeof("\"stream\":{\"backlog\":,\"oldest_age\":.000},") - 1
          + 2 * NGX_ATOMIC_T_LEN
          + sizeof("\"workers\":[]}\n") - 1
          + snap->nprocs
            * (sizeof("{\"worker\":\"\",\"pid\":,\"slot\":},") - 1
               + 6 * NGX_CHAT_WORKER_ID_LEN + 2 * NGX_ATOMIC_T_LEN
               + NGX_CHAT_STATUS_NFIELDS * (32 + NGX_ATOMIC_T_LEN)
               + sizeof(",\"redis\":{\"commands\":false,"
                        "\"subscriber\":false,\"stream\":false}") - 1
               + sizeof(",\"postgres\":{\"pool\":,\"up\":}") - 1
               + 2 * NGX_ATOMIC_T_LEN);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_cpymem(b->last, "{\"version\":\"" NGX_CHAT_VERSION "\",",
                   sizeof("{\"version\":\"" NGX_CHAT_VERSION "\",") - 1);

    for (f = ngx_chat_status_fields; f->name; f++) {
        p = ngx_sprintf(p, "\"%s\":%uA,", f->name,
                        ngx_chat_status_value(&snap->total, f));
    }

    if (snap->stream) {
        p = ngx_sprintf(p, "\"stream\":{\"backlog\":%uA,"
                        "\"oldest_age\":%uA.%03uA},",
                        snap->backlog, snap->age / 1000, snap->age % 1000);
    }

    p = ngx_cpymem(p, "\"workers\":[", sizeof("\"workers\":[") - 1);

    for (i = 0; i < snap->nprocs; i++) {
        proc = &snap->procs[i];

        /* worker ids are built from the host name: escape them */

        p = ngx_sprintf(p, "%s{\"worker\":\"", i ? "," : "");
        p = (u_char *) ngx_escape_json(p, proc->worker, proc->worker_len);
        p = ngx_sprintf(p, "\",\"pid\":%uA,\"slot\":%ui", proc->pid,
                        proc->number);

        for (f = ngx_chat_status_fields; f->name; f++) {
            p = ngx_sprintf(p, ",\"%s\":%uA", f->name,
                            ngx_chat_status_value(&proc->counters, f));
        }

        links = proc->links;

        if (links & NGX_CHAT_STATUS_REDIS) {
            p = ngx_cpymem(p, ",\"redis\":{", sizeof(",\"redis\":{") - 1);

            for (k = 0; ngx_chat_status_links[k].name; k++) {
                if (links & ngx_chat_status_links[k].configured) {
                    p = ngx_sprintf(p, "%s\"%s\":%s", k ? "," : "",
                                    ngx_chat_status_links[k].name,
                                    (links & ngx_chat_status_links[k].up)
                                    ? "true" : "false");
                }
            }

            *p++ = '}';
        }

        if (proc->pg_pool) {
            p = ngx_sprintf(p, ",\"postgres\":{\"pool\":%uA,\"up\":%uA}",
                            proc->pg_pool, proc->pg_up);
        }

        *p++ = '}';
    }

    p = ngx_cpymem(p, "]}\n", 3);
    b->last = p;

    return b;
}


/*
 * The text format: one family per metric, each sample labelled with the
 * worker number; the sums are left to PromQL.  Counters are shown for
 * every number a process has had, gauges for the numbers with a live
 * process, the link states of its newest process.
 */

static ngx_buf_t *
ngx_chat_status_prometheus(ngx_http_request_t *r,
    ngx_chat_status_snap_t *snap)
{
    u_char                    *p;
    size_t                     len;
    ngx_buf_t                 *b;
    ngx_uint_t                 n, k, redis, pg;
    ngx_chat_status_slot_t    *cur;
    ngx_chat_status_field_t   *f;
    ngx_chat_status_series_t  *s;

    len = 4096 + snap->nseries * 16 * (64 + NGX_ATOMIC_T_LEN);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_chat_status_family(b->last, "ngx_chat_build_info", "gauge",
                               "The ngx_chat version, as a label.");
    p = ngx_cpymem(p, "ngx_chat_build_info{version=\"" NGX_CHAT_VERSION
                   "\"} 1\n",
                   sizeof("ngx_chat_build_info{version=\"" NGX_CHAT_VERSION
                          "\"} 1\n") - 1);

    for (f = ngx_chat_status_fields; f->name; f++) {
        p = ngx_chat_status_family(p, f->metric, f->type, f->help);

        for (n = 0; n < snap->nseries; n++) {
            s = &snap->series[n];

            if (f->counter ? !s->seen : s->current == NULL) {
                continue;
            }

            p = ngx_sprintf(p, "%s{worker=\"%ui\"} %uA\n", f->metric, n,
                            ngx_chat_status_value(&s->counters, f));
        }
    }

    redis = 0;
    pg = 0;

    for (n = 0; n < snap->nseries; n++) {
        cur = snap->series[n].current;

        if (cur) {
            redis |= cur->links & NGX_CHAT_STATUS_REDIS;
            pg |= (cur->pg_pool != 0);
        }
    }

    if (redis) {
        p = ngx_chat_status_family(p, "ngx_chat_redis_up", "gauge",
                "Whether the worker's connection to Redis is up (1) or "
                "not (0), by link.");

        for (n = 0; n < snap->nseries; n++) {
            cur = snap->series[n].current;

            if (cur == NULL || !(cur->links & NGX_CHAT_STATUS_REDIS)) {
                continue;
            }

            for (k = 0; ngx_chat_status_links[k].name; k++) {
                if (cur->links & ngx_chat_status_links[k].configured) {
                    p = ngx_sprintf(p, "ngx_chat_redis_up{worker=\"%ui\","
                                    "link=\"%s\"} %d\n", n,
                                    ngx_chat_status_links[k].name,
                                    (cur->links & ngx_chat_status_links[k].up)
                                    ? 1 : 0);
                }
            }
        }
    }

    if (pg) {
        p = ngx_chat_status_family(p, "ngx_chat_postgres_connections",
                "gauge", "Postgres connections of the worker's pool.");

        for (n = 0; n < snap->nseries; n++) {
            cur = snap->series[n].current;

            if (cur && cur->pg_pool) {
                p = ngx_sprintf(p, "ngx_chat_postgres_connections"
                                "{worker=\"%ui\"} %uA\n", n, cur->pg_pool);
            }
        }

        p = ngx_chat_status_family(p, "ngx_chat_postgres_connections_up",
                "gauge", "Postgres connections of the worker that are up.");

        for (n = 0; n < snap->nseries; n++) {
            cur = snap->series[n].current;

            if (cur && cur->pg_pool) {
                p = ngx_sprintf(p, "ngx_chat_postgres_connections_up"
                                "{worker=\"%ui\"} %uA\n", n, cur->pg_up);
            }
        }
    }

    if (snap->stream) {
        p = ngx_chat_status_family(p, "ngx_chat_stream_backlog", "gauge",
                "Entries of the durable stream not yet written to "
                "Postgres.");
        p = ngx_sprintf(p, "ngx_chat_stream_backlog %uA\n", snap->backlog);

        p = ngx_chat_status_family(p, "ngx_chat_stream_oldest_age_seconds",
                "gauge", "Age of the oldest entry of the durable stream "
                "not yet written to Postgres.");
        p = ngx_sprintf(p, "ngx_chat_stream_oldest_age_seconds %uA.%03uA\n",
                        snap->age / 1000, snap->age % 1000);
    }

    b->last = p;

    return b;
}


static u_char *
ngx_chat_status_family(u_char *p, char *metric, char *type, char *help)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", metric, help,
                       metric, type);
}
