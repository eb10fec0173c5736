
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_STATUS_H_INCLUDED_
#define _NGX_CHAT_STATUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_worker.h"


typedef struct {
    ngx_atomic_t                connections;
    ngx_atomic_t                rooms;
    ngx_atomic_t                messages_received;
    ngx_atomic_t                messages_delivered;
    ngx_atomic_t                slow_consumers;
    ngx_atomic_t                rate_limited;
    ngx_atomic_t                forbidden;
    ngx_atomic_t                refused_origin;
    ngx_atomic_t                refused_token;
    ngx_atomic_t                refused_limit;
    ngx_atomic_t                kicks;
    ngx_atomic_t                disconnects;
    ngx_atomic_t                streams;
    ngx_atomic_t                polls;
    ngx_atomic_t                http_requests;
} ngx_chat_counters_t;


/* the links of a slot: what is configured, what is up */
#define NGX_CHAT_STATUS_REDIS       0x01
#define NGX_CHAT_STATUS_COMMANDS    0x02
#define NGX_CHAT_STATUS_SUBSCRIBER  0x04
#define NGX_CHAT_STATUS_WRITER      0x08
#define NGX_CHAT_STATUS_STREAM      0x10


/* the links that are up (of what is configured), and the Postgres ones */
typedef ngx_uint_t (*ngx_chat_status_probe_pt)(ngx_uint_t *pg_up);


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


/* fields of one Prometheus family follow each other, told by their label */

typedef struct {
    char                       *name;
    char                       *metric;
    char                       *label;       /* NULL, or name="value" */
    char                       *type;
    char                       *help;
    size_t                      offset;
    ngx_uint_t                  counter;
} ngx_chat_status_field_t;


/* this worker's counters, in shared memory; written by this worker only */
extern ngx_chat_counters_t     *ngx_chat_stats;


/* the fields of the counters, in their order, NULL-ended */
extern ngx_chat_status_field_t  ngx_chat_status_fields[];

#define NGX_CHAT_STATUS_NFIELDS                                               \
    (sizeof(ngx_chat_counters_t) / sizeof(ngx_atomic_t))


#define ngx_chat_status_value(counters, field)                               \
    *(ngx_atomic_t *) ((u_char *) (counters) + (field)->offset)

#define ngx_chat_stat_inc(name)     ngx_chat_stats->name++
#define ngx_chat_stat_dec(name)     ngx_chat_stats->name--
#define ngx_chat_stat_add(name, n)  ngx_chat_stats->name += (n)


ngx_int_t ngx_chat_status_init_conf(ngx_conf_t *cf);
ngx_int_t ngx_chat_status_init_process(ngx_cycle_t *cycle,
    ngx_chat_status_probe_pt probe);
void ngx_chat_status_exit_process(ngx_cycle_t *cycle);
void ngx_chat_status_refresh(void);
ngx_int_t ngx_chat_status_snapshot(ngx_http_request_t *r,
    ngx_chat_status_snap_t *snap);
void ngx_chat_status_stream(uint64_t backlog, uint64_t age);


#endif /* _NGX_CHAT_STATUS_H_INCLUDED_ */
