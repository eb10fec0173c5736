
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_status.h"
#include "ngx_chat_worker.h"


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


static ngx_int_t ngx_chat_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_chat_status_retire(ngx_chat_status_shm_t *shm,
    ngx_chat_status_slot_t *slot);
static ngx_uint_t ngx_chat_status_alive(ngx_chat_status_slot_t *slot);
static void ngx_chat_status_timer_handler(ngx_event_t *ev);


ngx_chat_status_field_t  ngx_chat_status_fields[] = {

    { "connections", "ngx_chat_connections", NULL, "gauge",
      "Open chat connections: WebSockets, SSE streams, waiting polls.",
      offsetof(ngx_chat_counters_t, connections), 0 },

    { "rooms", "ngx_chat_rooms", NULL, "gauge",
      "Rooms with at least one member on the worker.",
      offsetof(ngx_chat_counters_t, rooms), 0 },

    { "messages_received", "ngx_chat_messages_received_total", NULL,
      "counter", "Messages accepted from clients.",
      offsetof(ngx_chat_counters_t, messages_received), 1 },

    { "messages_delivered", "ngx_chat_messages_delivered_total", NULL,
      "counter", "Message events queued to connections.",
      offsetof(ngx_chat_counters_t, messages_delivered), 1 },

    { "slow_consumers", "ngx_chat_slow_consumers_total", NULL, "counter",
      "Connections closed because their send buffer overflowed.",
      offsetof(ngx_chat_counters_t, slow_consumers), 1 },

    { "rate_limited", "ngx_chat_rate_limited_total", NULL, "counter",
      "Requests refused with rate_limited.",
      offsetof(ngx_chat_counters_t, rate_limited), 1 },

    { "forbidden", "ngx_chat_forbidden_total", NULL, "counter",
      "Joins refused with forbidden.",
      offsetof(ngx_chat_counters_t, forbidden), 1 },

    { "refused_origin", "ngx_chat_handshakes_refused_total",
      "cause=\"origin\"", "counter",
      "Handshakes refused, by cause.",
      offsetof(ngx_chat_counters_t, refused_origin), 1 },

    { "refused_token", "ngx_chat_handshakes_refused_total",
      "cause=\"token\"", "counter", NULL,
      offsetof(ngx_chat_counters_t, refused_token), 1 },

    { "refused_limit", "ngx_chat_handshakes_refused_total",
      "cause=\"limit\"", "counter", NULL,
      offsetof(ngx_chat_counters_t, refused_limit), 1 },

    { "kicks", "ngx_chat_kicks_total", NULL, "counter",
      "Connections removed from a room by chat_admin.",
      offsetof(ngx_chat_counters_t, kicks), 1 },

    { "disconnects", "ngx_chat_disconnects_total", NULL, "counter",
      "Connections closed by chat_admin.",
      offsetof(ngx_chat_counters_t, disconnects), 1 },

    { "streams", "ngx_chat_sse_streams", NULL, "gauge",
      "Open Server-Sent Events streams.",
      offsetof(ngx_chat_counters_t, streams), 0 },

    { "polls", "ngx_chat_polls", NULL, "gauge",
      "Long polls waiting for their answer.",
      offsetof(ngx_chat_counters_t, polls), 0 },

    { "http_requests", "ngx_chat_http_requests_total", NULL, "counter",
      "Protocol requests POSTed to chat locations.",
      offsetof(ngx_chat_counters_t, http_requests), 1 },

    { NULL, NULL, NULL, NULL, NULL, 0, 0 }
};



static ngx_chat_counters_t      ngx_chat_stats_dummy;
ngx_chat_counters_t            *ngx_chat_stats = &ngx_chat_stats_dummy;

static ngx_shm_zone_t          *ngx_chat_status_zone;
static ngx_chat_status_slot_t  *ngx_chat_status_slot;
static ngx_event_t              ngx_chat_status_timer;
static ngx_uint_t               ngx_chat_status_redis;
static ngx_uint_t               ngx_chat_status_pg_pool;
static ngx_chat_status_probe_pt ngx_chat_status_probe;


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


/* probe: the state of the worker's Redis and Postgres links, polled */

ngx_int_t
ngx_chat_status_init_process(ngx_cycle_t *cycle,
    ngx_chat_status_probe_pt probe)
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

    ngx_chat_status_probe = probe;
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

void
ngx_chat_status_refresh(void)
{
    ngx_uint_t               links, pg_up;
    ngx_chat_status_slot_t  *slot;

    slot = ngx_chat_status_slot;

    if (slot == NULL) {
        return;
    }

    pg_up = 0;
    links = ngx_chat_status_probe ? ngx_chat_status_probe(&pg_up) : 0;

    if (ngx_chat_status_redis) {
        links |= NGX_CHAT_STATUS_REDIS;
    }

    if (ngx_chat_status_pg_pool) {
        links |= NGX_CHAT_STATUS_WRITER;
    }

    slot->links = links;
    slot->pg_pool = ngx_chat_status_pg_pool;
    slot->pg_up = ngx_chat_status_pg_pool ? pg_up : 0;
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


/* what the zone holds, copied; NGX_DECLINED: there is no zone */

ngx_int_t
ngx_chat_status_snapshot(ngx_http_request_t *r, ngx_chat_status_snap_t *snap)
{
    time_t                     t;
    ngx_uint_t                 i, n;
    ngx_slab_pool_t           *shpool;
    ngx_chat_status_shm_t     *shm;
    ngx_chat_status_slot_t    *slot, *proc;
    ngx_chat_status_field_t   *f;
    ngx_chat_status_series_t  *s;

    if (ngx_chat_status_zone == NULL || ngx_chat_status_zone->data == NULL) {
        return NGX_DECLINED;
    }

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
