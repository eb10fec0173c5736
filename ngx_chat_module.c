
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_conf.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_store.h"
#include "ngx_chat_status.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_store_memory.h"
#include "ngx_chat_store_redis.h"
#include "ngx_chat_pg.h"
#include "ngx_chat_writer.h"
#include "ngx_chat_session.h"
#include "ngx_chat_variables.h"
#include "ngx_chat_limit.h"


static ngx_int_t ngx_chat_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_chat_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_chat_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_chat_init_process(ngx_cycle_t *cycle);
static ngx_uint_t ngx_chat_links(ngx_uint_t *pg_up);
static void ngx_chat_exit_process(ngx_cycle_t *cycle);


static ngx_conf_num_bounds_t  ngx_chat_positive = {
    ngx_conf_check_num_bounds, 1, -1
};

static ngx_conf_num_bounds_t  ngx_chat_pool_bounds = {
    ngx_conf_check_num_bounds, 1, 64
};

static ngx_conf_num_bounds_t  ngx_chat_history_bounds = {
    ngx_conf_check_num_bounds, 0, 100000
};

static ngx_conf_num_bounds_t  ngx_chat_pending_bounds = {
    ngx_conf_check_num_bounds, 1, 4096
};


static ngx_command_t  ngx_chat_commands[] = {

    { ngx_string("chat"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_echo"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_publish"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, user),
      NULL },

    { ngx_string("chat_jwt_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_jwt_secret,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_rooms"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, rooms),
      NULL },

    { ngx_string("chat_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("chat_redis_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, redis_max_pending),
      &ngx_chat_positive },

    { ngx_string("chat_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, postgres),
      NULL },

    { ngx_string("chat_postgres_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, postgres_pool),
      &ngx_chat_pool_bounds },

    { ngx_string("chat_postgres_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, postgres_timeout),
      NULL },

    { ngx_string("chat_key_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, key_prefix),
      NULL },

    { ngx_string("chat_notify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, notify),
      NULL },

    { ngx_string("chat_notify_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, notify_max),
      &ngx_chat_positive },

    { ngx_string("chat_history_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, history_cache),
      &ngx_chat_history_bounds },

    { ngx_string("chat_memory_rooms"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, memory_rooms),
      &ngx_chat_positive },

    { ngx_string("chat_presence_events_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, presence_events_max),
      NULL },

    { ngx_string("chat_presence_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, presence_ttl),
      NULL },

    { ngx_string("chat_ping_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ping_interval),
      NULL },

    { ngx_string("chat_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, idle_timeout),
      NULL },

    { ngx_string("chat_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, max_message_size),
      NULL },

    { ngx_string("chat_send_buffer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, send_buffer),
      NULL },

    { ngx_string("chat_max_rooms"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, max_rooms),
      &ngx_chat_positive },

    { ngx_string("chat_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_chat_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, send_rate),
      NULL },

    { ngx_string("chat_request_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_chat_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, request_rate),
      NULL },

    { ngx_string("chat_max_pending"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, max_pending),
      &ngx_chat_pending_bounds },

    { ngx_string("chat_allowed_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_chat_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_limit_conn"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE23,
      ngx_chat_limit_conn,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_chat_module_ctx = {
    ngx_chat_preconfiguration,             /* preconfiguration */
    ngx_chat_postconfiguration,            /* postconfiguration */

    ngx_chat_create_main_conf,             /* create main configuration */
    ngx_chat_init_main_conf,               /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_chat_create_loc_conf,              /* create location configuration */
    ngx_chat_merge_loc_conf                /* merge location configuration */
};


ngx_module_t  ngx_chat_module = {
    NGX_MODULE_V1,
    &ngx_chat_module_ctx,                  /* module context */
    ngx_chat_commands,                     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_chat_init_module,                  /* init module */
    ngx_chat_init_process,                 /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_chat_exit_process,                 /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_chat_preconfiguration(ngx_conf_t *cf)
{
    return ngx_chat_variables_add(cf);
}


static ngx_int_t
ngx_chat_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_chat_limit_init_conf(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_chat_status_init_conf(cf);
}


static ngx_int_t
ngx_chat_init_module(ngx_cycle_t *cycle)
{
    ngx_core_conf_t       *ccf;
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);
    if (cmcf == NULL) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (cmcf->endpoints && cmcf->redis == NULL
        && ccf->worker_processes > 1)
    {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "chat: worker_processes is %i but chat_redis is not "
                      "set: each worker keeps its own rooms, so clients on "
                      "different workers will not see each other",
                      ccf->worker_processes);

        /* the error_log may be set above "warn": "nginx -t" says it anyway */

        if (ngx_test_config) {
            ngx_log_stderr(0, "[warn] chat: worker_processes is %i but "
                           "chat_redis is not set: each worker keeps its own "
                           "rooms, so clients on different workers will not "
                           "see each other", ccf->worker_processes);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_init_process(ngx_cycle_t *cycle)
{
    ngx_chat_main_conf_t  *cmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);
    if (cmcf == NULL) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "chat: ngx_chat " NGX_CHAT_VERSION ", worker %ui",
                  ngx_worker);

    ngx_chat_worker_init(cycle);
    ngx_chat_hub_init();

    if (ngx_chat_status_init_process(cycle, ngx_chat_links) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_chat_limit_init_process(cycle);

    /* the transcript's pool first: the store reads it, the writer fills it */

    if (cmcf->postgres.len
        && ngx_chat_pg_init(&cmcf->postgres, cmcf->postgres_pool,
                            cmcf->postgres_timeout, cycle->log)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_chat_store = cmcf->redis ? &ngx_chat_store_redis
                                 : &ngx_chat_store_memory;
    ngx_chat_store_command = ngx_chat_session_command;

    if (ngx_chat_store_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cmcf->postgres.len) {
        return ngx_chat_writer_init(cycle, cmcf);
    }

    return NGX_OK;
}


/* what the status shows of the worker's links, every second */

static ngx_uint_t
ngx_chat_links(ngx_uint_t *pg_up)
{
    ngx_uint_t  links;

    links = 0;

    if (ngx_chat_store == &ngx_chat_store_redis) {
        if (ngx_chat_cmd_ready()) {
            links |= NGX_CHAT_STATUS_COMMANDS;
        }

        if (ngx_chat_channel_ready()) {
            links |= NGX_CHAT_STATUS_SUBSCRIBER;
        }
    }

    if (ngx_chat_pg_configured()) {
        if (ngx_chat_writer_link_ready()) {
            links |= NGX_CHAT_STATUS_STREAM;
        }

        *pg_up = ngx_chat_pg_up();
    }

    return links;
}


static void
ngx_chat_exit_process(ngx_cycle_t *cycle)
{
    ngx_chat_main_conf_t  *cmcf;

    if (ngx_chat_worker_id.len == 0) {
        return;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_chat_module);

    ngx_chat_store_exit_process(cycle);

    if (cmcf->postgres.len) {
        ngx_chat_writer_exit();
        ngx_chat_pg_done();
    }

    ngx_chat_limit_exit_process(cycle);
    ngx_chat_status_exit_process(cycle);
}
