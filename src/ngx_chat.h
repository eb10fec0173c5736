
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_H_INCLUDED_
#define _NGX_CHAT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_CHAT_VERSION          "0.1.0"


#define NGX_CHAT_MODE_CHAT        1
#define NGX_CHAT_MODE_ECHO        2
#define NGX_CHAT_MODE_STATUS      3
#define NGX_CHAT_MODE_PUBLISH     4
#define NGX_CHAT_MODE_ADMIN       5

#define NGX_CHAT_ROOM_MAX         128
#define NGX_CHAT_USER_MAX         256
#define NGX_CHAT_ID_MAX           64
#define NGX_CHAT_JWT_MAX          8192
#define NGX_CHAT_WORKER_ID_LEN    64
#define NGX_CHAT_PREFIX_MAX       64

#define NGX_CHAT_PRESENCE_TTL     30000
#define NGX_CHAT_RATE_MAX         1000000


typedef struct ngx_chat_session_s  ngx_chat_session_t;
typedef struct ngx_chat_room_s     ngx_chat_room_t;
typedef struct ngx_chat_ws_s       ngx_chat_ws_t;
typedef struct ngx_chat_frame_s    ngx_chat_frame_t;
typedef struct ngx_chat_limit_held_s  ngx_chat_limit_held_t;


typedef struct ngx_chat_redis_conf_s  ngx_chat_redis_conf_t;


typedef struct {
    ngx_chat_redis_conf_t      *redis;
    ngx_msec_t                  redis_timeout;
    ngx_uint_t                  redis_max_pending;
    ngx_str_t                   postgres;
    ngx_uint_t                  postgres_pool;
    ngx_msec_t                  postgres_timeout;
    ngx_uint_t                  history_cache;
    ngx_uint_t                  presence_events_max;
    ngx_uint_t                  memory_rooms;
    ngx_msec_t                  registry_ttl; /* http's chat_presence_ttl */
    ngx_str_t                   key_prefix;
    ngx_flag_t                  notify;
    ngx_uint_t                  notify_max;
    ngx_uint_t                  endpoints;
    ngx_str_t                   jwt_secret;
} ngx_chat_main_conf_t;


/* a token bucket's: refilled at rate per 1000 s, holding burst x 1000 */

typedef struct {
    ngx_uint_t                  rate;
    ngx_uint_t                  burst;
} ngx_chat_rate_t;


typedef struct {
    ngx_uint_t                  mode;
    ngx_http_complex_value_t   *user;
    ngx_http_complex_value_t   *rooms;       /* NULL: every room */
    ngx_msec_t                  presence_ttl;
    ngx_msec_t                  ping_interval;
    ngx_msec_t                  idle_timeout;
    size_t                      max_message_size;
    size_t                      send_buffer;
    ngx_uint_t                  max_rooms;
    ngx_chat_rate_t             send_rate;
    ngx_chat_rate_t             request_rate; /* every request but send */
    ngx_uint_t                  max_pending;
    ngx_array_t                *origins;     /* of ngx_str_t */
    ngx_array_t                *limits;      /* chat_limit_conn's lines */
} ngx_chat_loc_conf_t;


/*
 * How a client is reached, whatever carries it (a WebSocket today):
 * deliver one shared event the server sends on its own (bounded by
 * chat_send_buffer: a client that leaves more undrained is closed),
 * answer the client's own request (a reply, a replay: never refused for
 * its size, but the client's next requests wait while answers pile up),
 * close with a code and a reason, and the bytes of events still waiting
 * to go out.  deliver and reply never close the connection themselves:
 * the caller may be walking a room's members.
 */

typedef struct {
    ngx_int_t                 (*deliver)(void *conn, ngx_chat_frame_t *f);
    ngx_int_t                 (*reply)(void *conn, ngx_chat_frame_t *f);
    void                      (*close)(void *conn, ngx_uint_t code,
                                       char *reason);
    size_t                    (*backlog)(void *conn);
} ngx_chat_transport_t;


/* a client connection as the rooms see it: its user and how to reach it */

typedef struct {
    ngx_str_t                   user;
    ngx_chat_transport_t       *transport;
    void                       *conn;
} ngx_chat_peer_t;


extern ngx_module_t  ngx_chat_module;


#endif /* _NGX_CHAT_H_INCLUDED_ */
