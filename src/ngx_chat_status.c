
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_status.h"
#include "ngx_chat_worker.h"


#define NGX_CHAT_STATUS_SLOTS  256


typedef struct {
    ngx_atomic_t                pid;         /* 0: the slot is free */
    u_char                      worker[NGX_CHAT_WORKER_ID_LEN];
    size_t                      worker_len;
    ngx_chat_counters_t         counters;
} ngx_chat_status_slot_t;


typedef struct {
    /* counters of workers that have exited, so that sums never go back */
    ngx_chat_counters_t         retired;
    ngx_chat_status_slot_t      slots[NGX_CHAT_STATUS_SLOTS];
} ngx_chat_status_shm_t;


typedef struct {
    char                       *name;
    char                       *metric;
    char                       *type;
    char                       *help;
    size_t                      offset;
    ngx_uint_t                  counter;
} ngx_chat_status_field_t;


static ngx_int_t ngx_chat_status_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_chat_status_retire(ngx_chat_status_shm_t *shm,
    ngx_chat_status_slot_t *slot);
static ngx_uint_t ngx_chat_status_alive(ngx_chat_status_slot_t *slot);
static ngx_buf_t *ngx_chat_status_json(ngx_http_request_t *r,
    ngx_chat_status_shm_t *shm);
static ngx_buf_t *ngx_chat_status_prometheus(ngx_http_request_t *r,
    ngx_chat_status_shm_t *shm);
static void ngx_chat_status_sum(ngx_chat_status_shm_t *shm,
    ngx_atomic_uint_t *sum);


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


static ngx_chat_counters_t      ngx_chat_stats_dummy;
ngx_chat_counters_t            *ngx_chat_stats = &ngx_chat_stats_dummy;

static ngx_shm_zone_t          *ngx_chat_status_zone;
static ngx_chat_status_slot_t  *ngx_chat_status_slot;


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
    ngx_atomic_uint_t        pid;
    ngx_chat_status_shm_t   *shm;
    ngx_chat_status_slot_t  *slot;

    if (ngx_chat_status_zone == NULL || ngx_chat_status_zone->data == NULL) {
        return NGX_OK;
    }

    shm = ngx_chat_status_zone->data;

    for (i = 0; i < NGX_CHAT_STATUS_SLOTS; i++) {
        slot = &shm->slots[i];
        pid = slot->pid;

        /* a worker killed without its exit_process leaves its slot behind */

        if (pid && !ngx_chat_status_alive(slot)
            && ngx_atomic_cmp_set(&slot->pid, pid, ngx_pid))
        {
            ngx_chat_status_retire(shm, slot);
        }

        if (ngx_chat_status_slot == NULL
            && ngx_atomic_cmp_set(&slot->pid, 0, ngx_pid))
        {
            ngx_memzero(&slot->counters, sizeof(ngx_chat_counters_t));
            slot->worker_len = ngx_min(ngx_chat_worker_id.len,
                                       NGX_CHAT_WORKER_ID_LEN);
            ngx_memcpy(slot->worker, ngx_chat_worker_id.data,
                       slot->worker_len);

            ngx_chat_status_slot = slot;
            ngx_chat_stats = &slot->counters;
        }
    }

    if (ngx_chat_status_slot == NULL) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "chat: no free status slot, this worker is not counted");
    }

    return NGX_OK;
}


void
ngx_chat_status_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_chat_status_slot == NULL) {
        return;
    }

    ngx_chat_status_retire(ngx_chat_status_zone->data, ngx_chat_status_slot);

    ngx_chat_stats = &ngx_chat_stats_dummy;
    ngx_chat_status_slot = NULL;
}


static void
ngx_chat_status_retire(ngx_chat_status_shm_t *shm,
    ngx_chat_status_slot_t *slot)
{
    ngx_atomic_uint_t         v;
    ngx_chat_status_field_t  *f;

    for (f = ngx_chat_status_fields; f->name; f++) {
        if (f->counter) {
            v = ngx_chat_status_value(&slot->counters, f);
            (void) ngx_atomic_fetch_add(
                                &ngx_chat_status_value(&shm->retired, f), v);
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


ngx_int_t
ngx_chat_status_handler(ngx_http_request_t *r)
{
    ngx_int_t               rc;
    ngx_str_t               format;
    ngx_buf_t              *b;
    ngx_chain_t             out;
    ngx_chat_status_shm_t  *shm;

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

    shm = ngx_chat_status_zone->data;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
        && format.len == 10
        && ngx_strncmp(format.data, "prometheus", 10) == 0)
    {
        b = ngx_chat_status_prometheus(r, shm);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");

    } else {
        b = ngx_chat_status_json(r, shm);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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


static void
ngx_chat_status_sum(ngx_chat_status_shm_t *shm, ngx_atomic_uint_t *sum)
{
    ngx_uint_t                i, k;
    ngx_chat_status_slot_t   *slot;
    ngx_chat_status_field_t  *f;

    for (k = 0, f = ngx_chat_status_fields; f->name; f++, k++) {
        sum[k] = ngx_chat_status_value(&shm->retired, f);
    }

    for (i = 0; i < NGX_CHAT_STATUS_SLOTS; i++) {
        slot = &shm->slots[i];

        if (!ngx_chat_status_alive(slot)) {
            continue;
        }

        for (k = 0, f = ngx_chat_status_fields; f->name; f++, k++) {
            sum[k] += ngx_chat_status_value(&slot->counters, f);
        }
    }
}


static ngx_buf_t *
ngx_chat_status_json(ngx_http_request_t *r, ngx_chat_status_shm_t *shm)
{
    u_char                   *p;
    size_t                    len;
    ngx_buf_t                *b;
    ngx_uint_t                i, k, n;
    ngx_atomic_uint_t         sum[NGX_CHAT_STATUS_NFIELDS];
    ngx_chat_status_slot_t   *slot;
    ngx_chat_status_field_t  *f;

    ngx_chat_status_sum(shm, sum);

    len = sizeof("{\"workers\":[]}\n") - 1
          + NGX_CHAT_STATUS_NFIELDS * (32 + NGX_ATOMIC_T_LEN)
          + NGX_CHAT_STATUS_SLOTS
            * (sizeof("{\"worker\":\"\",\"pid\":},") - 1
               + 6 * NGX_CHAT_WORKER_ID_LEN + NGX_INT_T_LEN
               + NGX_CHAT_STATUS_NFIELDS * (32 + NGX_ATOMIC_T_LEN));

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;
    *p++ = '{';

    for (k = 0, f = ngx_chat_status_fields; f->name; f++, k++) {
        p = ngx_sprintf(p, "\"%s\":%uA,", f->name, sum[k]);
    }

    p = ngx_cpymem(p, "\"workers\":[", sizeof("\"workers\":[") - 1);

    for (n = 0, i = 0; i < NGX_CHAT_STATUS_SLOTS; i++) {
        slot = &shm->slots[i];

        if (!ngx_chat_status_alive(slot)) {
            continue;
        }

        /* worker ids are built from the host name: escape them */

        p = ngx_sprintf(p, "%s{\"worker\":\"", n++ ? "," : "");
        p = (u_char *) ngx_escape_json(p, slot->worker, slot->worker_len);
        p = ngx_sprintf(p, "\",\"pid\":%uA", slot->pid);

        for (f = ngx_chat_status_fields; f->name; f++) {
            p = ngx_sprintf(p, ",\"%s\":%uA", f->name,
                            ngx_chat_status_value(&slot->counters, f));
        }

        *p++ = '}';
    }

    p = ngx_cpymem(p, "]}\n", 3);
    b->last = p;

    return b;
}


static ngx_buf_t *
ngx_chat_status_prometheus(ngx_http_request_t *r, ngx_chat_status_shm_t *shm)
{
    u_char                   *p;
    size_t                    len;
    ngx_buf_t                *b;
    ngx_uint_t                i, k;
    ngx_atomic_uint_t         sum[NGX_CHAT_STATUS_NFIELDS];
    ngx_chat_status_slot_t   *slot;
    ngx_chat_status_field_t  *f;

    ngx_chat_status_sum(shm, sum);

    len = NGX_CHAT_STATUS_NFIELDS
          * (256 + NGX_ATOMIC_T_LEN
             + NGX_CHAT_STATUS_SLOTS
               * (64 + 4 * NGX_CHAT_WORKER_ID_LEN + NGX_ATOMIC_T_LEN));

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = b->last;

    for (k = 0, f = ngx_chat_status_fields; f->name; f++, k++) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n%s %uA\n",
                        f->metric, f->help, f->metric, f->type,
                        f->metric, sum[k]);

        for (i = 0; i < NGX_CHAT_STATUS_SLOTS; i++) {
            slot = &shm->slots[i];

            if (!ngx_chat_status_alive(slot)) {
                continue;
            }

            p = ngx_sprintf(p, "%s{worker=\"", f->metric);
            p = (u_char *) ngx_escape_json(p, slot->worker, slot->worker_len);
            p = ngx_sprintf(p, "\"} %uA\n",
                            ngx_chat_status_value(&slot->counters, f));
        }
    }

    b->last = p;

    return b;
}
