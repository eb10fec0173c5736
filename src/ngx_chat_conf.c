
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat.h"
#include "ngx_chat_conf.h"
#include "ngx_chat_redis_url.h"
#include "ngx_chat_handler.h"
#include "ngx_chat_echo.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_publish.h"
#include "ngx_chat_admin.h"


#define NGX_CHAT_JWT_SECRET_MIN  32    /* RFC 7518 3.2: the hash's size */


void *
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


char *
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


void *
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
    lcf->limits = NGX_CONF_UNSET_PTR;

    return lcf;
}


char *
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
    ngx_conf_merge_ptr_value(conf->limits, prev->limits, NULL);

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


char *
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


char *
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

char *
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


char *
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


char *
ngx_chat_jwt_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    ngx_str_t  *value;

    if (cmcf->jwt_secret.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len < NGX_CHAT_JWT_SECRET_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_jwt_secret\" must be at least %d bytes "
                           "(RFC 7518: an HS256 key is no shorter than its "
                           "hash)", NGX_CHAT_JWT_SECRET_MIN);
        return NGX_CONF_ERROR;
    }

    cmcf->jwt_secret = value[1];

    return NGX_CONF_OK;
}
