
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_worker.h"
#include "ngx_chat_echo.h"
#include "ngx_chat_hub.h"
#include "ngx_chat_handler.h"
#include "ngx_chat_store.h"
#include "ngx_chat_status.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_cmd.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_redis.h"
#include "ngx_chat_store_memory.h"
#include "ngx_chat_store_redis.h"
#include "ngx_chat_pg.h"
#include "ngx_chat_writer.h"
#include "ngx_chat_publish.h"
#include "ngx_chat_admin.h"
#include "ngx_chat_session.h"


static void *ngx_chat_create_main_conf(ngx_conf_t *cf);
static char *ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_chat_create_loc_conf(ngx_conf_t *cf);
static char *ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_chat_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_chat_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_chat_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
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

      ngx_null_command
};


static ngx_http_module_t  ngx_chat_module_ctx = {
    NULL,                                  /* preconfiguration */
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


static void *
ngx_chat_create_main_conf(ngx_conf_t *cf)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_chat_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     cmcf->redis = NULL;
     *     cmcf->postgres = { 0, NULL };
     *     cmcf->key_prefix = { 0, NULL };
     *     cmcf->endpoints = 0;
     */

    cmcf->history_cache = NGX_CONF_UNSET_UINT;
    cmcf->presence_events_max = NGX_CONF_UNSET_UINT;
    cmcf->memory_rooms = NGX_CONF_UNSET_UINT;
    cmcf->postgres_pool = NGX_CONF_UNSET_UINT;
    cmcf->notify = NGX_CONF_UNSET;
    cmcf->notify_max = NGX_CONF_UNSET_UINT;
    cmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->redis_max_pending = NGX_CONF_UNSET_UINT;
    cmcf->postgres_timeout = NGX_CONF_UNSET_MSEC;

    return cmcf;
}


static char *
ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    ngx_chat_loc_conf_t  *lcf;

    ngx_conf_init_uint_value(cmcf->history_cache, 1000);
    ngx_conf_init_uint_value(cmcf->presence_events_max, 1000);
    ngx_conf_init_uint_value(cmcf->memory_rooms, 1000);
    ngx_conf_init_uint_value(cmcf->postgres_pool, 2);
    ngx_conf_init_value(cmcf->notify, 0);
    ngx_conf_init_uint_value(cmcf->notify_max, 100000);
    ngx_conf_init_msec_value(cmcf->redis_timeout, 5000);
    ngx_conf_init_uint_value(cmcf->redis_max_pending, 4096);
    ngx_conf_init_msec_value(cmcf->postgres_timeout, 10000);

    if (cmcf->redis_timeout == 0 || cmcf->postgres_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_redis_timeout and chat_postgres_timeout "
                           "must not be zero");
        return NGX_CONF_ERROR;
    }

    if (cmcf->redis) {
        cmcf->redis->timeout = cmcf->redis_timeout;
    }

    if (cmcf->postgres.len && cmcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_postgres\" requires \"chat_redis\": "
                           "messages reach Postgres through a Redis stream");
        return NGX_CONF_ERROR;
    }

    if (cmcf->notify && cmcf->redis == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_notify\" requires \"chat_redis\": "
                           "the notification stream is a Redis stream");
        return NGX_CONF_ERROR;
    }

    /* a worker's entry in the presence registry lives as long as a user's */

    lcf = ngx_http_conf_get_module_loc_conf(cf, ngx_chat_module);

    cmcf->registry_ttl = (lcf->presence_ttl == NGX_CONF_UNSET_MSEC)
                         ? NGX_CHAT_PRESENCE_TTL : lcf->presence_ttl;

    if (cmcf->key_prefix.data == NULL) {
        ngx_str_set(&cmcf->key_prefix, "chat");
    }

    if (cmcf->key_prefix.len == 0
        || cmcf->key_prefix.len > NGX_CHAT_PREFIX_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_key_prefix must be 1 to %d bytes",
                           NGX_CHAT_PREFIX_MAX);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_chat_create_loc_conf(ngx_conf_t *cf)
{
    ngx_chat_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_chat_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lcf->mode = 0;
     */

    lcf->user = NGX_CONF_UNSET_PTR;
    lcf->rooms = NGX_CONF_UNSET_PTR;
    lcf->presence_ttl = NGX_CONF_UNSET_MSEC;
    lcf->ping_interval = NGX_CONF_UNSET_MSEC;
    lcf->idle_timeout = NGX_CONF_UNSET_MSEC;
    lcf->max_message_size = NGX_CONF_UNSET_SIZE;
    lcf->send_buffer = NGX_CONF_UNSET_SIZE;
    lcf->max_rooms = NGX_CONF_UNSET_UINT;
    lcf->send_rate.rate = NGX_CONF_UNSET_UINT;
    lcf->send_rate.burst = NGX_CONF_UNSET_UINT;
    lcf->request_rate.rate = NGX_CONF_UNSET_UINT;
    lcf->request_rate.burst = NGX_CONF_UNSET_UINT;
    lcf->max_pending = NGX_CONF_UNSET_UINT;
    lcf->origins = NGX_CONF_UNSET_PTR;

    return lcf;
}


static char *
ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_chat_loc_conf_t *prev = parent;
    ngx_chat_loc_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->user, prev->user, NULL);
    ngx_conf_merge_ptr_value(conf->rooms, prev->rooms, NULL);
    ngx_conf_merge_msec_value(conf->presence_ttl, prev->presence_ttl,
                              NGX_CHAT_PRESENCE_TTL);
    ngx_conf_merge_msec_value(conf->ping_interval, prev->ping_interval,
                              20000);
    ngx_conf_merge_msec_value(conf->idle_timeout, prev->idle_timeout, 60000);
    ngx_conf_merge_size_value(conf->max_message_size, prev->max_message_size,
                              8192);
    ngx_conf_merge_size_value(conf->send_buffer, prev->send_buffer,
                              512 * 1024);
    ngx_conf_merge_uint_value(conf->max_rooms, prev->max_rooms, 100);
    ngx_conf_merge_uint_value(conf->send_rate.rate, prev->send_rate.rate,
                              20000);
    ngx_conf_merge_uint_value(conf->send_rate.burst, prev->send_rate.burst,
                              40000);
    ngx_conf_merge_uint_value(conf->request_rate.rate,
                              prev->request_rate.rate, 10000);
    ngx_conf_merge_uint_value(conf->request_rate.burst,
                              prev->request_rate.burst, 50000);
    ngx_conf_merge_uint_value(conf->max_pending, prev->max_pending, 32);
    ngx_conf_merge_ptr_value(conf->origins, prev->origins, NULL);

    if (conf->ping_interval == 0 || conf->idle_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_ping_interval and chat_idle_timeout "
                           "must not be zero");
        return NGX_CONF_ERROR;
    }

    if (conf->max_message_size == 0 || conf->send_buffer == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_max_message_size and chat_send_buffer "
                           "must not be zero");
        return NGX_CONF_ERROR;
    }

    if ((conf->mode == NGX_CHAT_MODE_CHAT
         || conf->mode == NGX_CHAT_MODE_PUBLISH)
        && conf->user == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat\" and \"chat_publish\" require "
                           "\"chat_user\"");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_chat_endpoint(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ngx_chat_main_conf_t      *cmcf;
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->mode) {
        return "is duplicate: a location is one chat endpoint";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_chat_module);

    switch (cmd->name.len) {

    case sizeof("chat") - 1:
        lcf->mode = NGX_CHAT_MODE_CHAT;
        clcf->handler = ngx_chat_handler;
        cmcf->endpoints++;
        break;

    case sizeof("chat_echo") - 1:
        lcf->mode = NGX_CHAT_MODE_ECHO;
        clcf->handler = ngx_chat_echo_handler;
        break;

    case sizeof("chat_status") - 1:
        lcf->mode = NGX_CHAT_MODE_STATUS;
        clcf->handler = ngx_chat_metrics_handler;
        break;

    case sizeof("chat_admin") - 1:
        lcf->mode = NGX_CHAT_MODE_ADMIN;
        clcf->handler = ngx_chat_admin_handler;
        break;

    default: /* chat_publish */
        lcf->mode = NGX_CHAT_MODE_PUBLISH;
        clcf->handler = ngx_chat_publish_handler;
    }

    return NGX_CONF_OK;
}


static char *
ngx_chat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    ngx_str_t  *value;

    if (cmcf->redis) {
        return "is duplicate";
    }

    cmcf->redis = ngx_pcalloc(cf->pool, sizeof(ngx_chat_redis_conf_t));
    if (cmcf->redis == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    return ngx_chat_redis_parse_url(cf, &value[1], cmcf->redis);
}


/* chat_rate 20r/s [burst=40] */

static char *
ngx_chat_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    size_t            len;
    ngx_int_t         rate, scale, burst;
    ngx_str_t        *value;
    ngx_chat_rate_t  *r;

    r = (ngx_chat_rate_t *) ((u_char *) conf + cmd->offset);

    if (r->rate != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    len = value[1].len;
    scale = 1;

    if (len > 3 && ngx_strncmp(value[1].data + len - 3, "r/s", 3) == 0) {
        len -= 3;

    } else if (len > 3
               && ngx_strncmp(value[1].data + len - 3, "r/m", 3) == 0)
    {
        len -= 3;
        scale = 60;

    } else {
        return "has an invalid rate: use \"Nr/s\" or \"Nr/m\"";
    }

    rate = ngx_atoi(value[1].data, len);
    if (rate <= 0 || rate > NGX_CHAT_RATE_MAX) {
        return "has an invalid rate: use \"Nr/s\" or \"Nr/m\", N from 1 "
               "to 1000000";
    }

    r->rate = rate * 1000 / scale;
    burst = rate;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "burst=", 6) != 0) {
            return "has an invalid parameter: expected \"burst=N\"";
        }

        burst = ngx_atoi(value[2].data + 6, value[2].len - 6);
        if (burst <= 0 || burst > NGX_CHAT_RATE_MAX) {
            return "has an invalid burst: from 1 to 1000000";
        }
    }

    r->burst = burst * 1000;

    return NGX_CONF_OK;
}


static char *
ngx_chat_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ngx_str_t   *value, *origin;
    ngx_uint_t   i;

    if (lcf->origins != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    lcf->origins = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                    sizeof(ngx_str_t));
    if (lcf->origins == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        origin = ngx_array_push(lcf->origins);
        if (origin == NULL) {
            return NGX_CONF_ERROR;
        }

        *origin = value[i];
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_chat_postconfiguration(ngx_conf_t *cf)
{
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

    ngx_chat_status_exit_process(cycle);
}
