
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_encode.h"
#include "ngx_chat_json.h"


static size_t ngx_chat_encode_id_len(ngx_str_t *id);
static u_char *ngx_chat_encode_id(u_char *p, ngx_str_t *id);
static ngx_chat_frame_t *ngx_chat_encode_seal(ngx_chat_frame_t *f,
    u_char *p);


static ngx_str_t  ngx_chat_encode_errors[] = {
    ngx_null_string,
    ngx_string("bad_request"),
    ngx_string("not_joined"),
    ngx_string("too_large"),
    ngx_string("rate_limited"),
    ngx_string("too_many_rooms"),
    ngx_string("forbidden"),
    ngx_string("unavailable"),
    ngx_string("internal")
};


ngx_chat_codec_t  ngx_chat_encode_codec = {
    ngx_chat_encode_welcome,
    ngx_chat_encode_joined,
    ngx_chat_encode_left,
    ngx_chat_encode_ack,
    ngx_chat_encode_history,
    ngx_chat_encode_presence,
    ngx_chat_encode_online,
    ngx_chat_encode_heartbeat,
    ngx_chat_encode_error
};


static size_t
ngx_chat_encode_id_len(ngx_str_t *id)
{
    if (id == NULL || id->data == NULL) {
        return 0;
    }

    return sizeof(",\"id\":") - 1 + ngx_chat_json_str_len(id);
}


static u_char *
ngx_chat_encode_id(u_char *p, ngx_str_t *id)
{
    if (id == NULL || id->data == NULL) {
        return p;
    }

    p = ngx_cpymem(p, ",\"id\":", sizeof(",\"id\":") - 1);

    return ngx_chat_json_str(p, id);
}


static ngx_chat_frame_t *
ngx_chat_encode_seal(ngx_chat_frame_t *f, u_char *p)
{
    f->last = p;
    ngx_chat_frame_seal(f, NGX_CHAT_OP_TEXT);

    return f;
}


ngx_chat_frame_t *
ngx_chat_encode_welcome(ngx_str_t *user, ngx_atomic_uint_t conn,
    ngx_str_t *worker, ngx_log_t *log)
{
    u_char            *p;
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"welcome\",\"user\":,"
                                    "\"conn\":,\"worker\":}") - 1
                             + ngx_chat_json_str_len(user)
                             + NGX_ATOMIC_T_LEN
                             + ngx_chat_json_str_len(worker), log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"welcome\",\"user\":",
                   sizeof("{\"type\":\"welcome\",\"user\":") - 1);
    p = ngx_chat_json_str(p, user);
    p = ngx_sprintf(p, ",\"conn\":%uA,\"worker\":", conn);
    p = ngx_chat_json_str(p, worker);
    *p++ = '}';

    f->event = NGX_CHAT_EVENT_WELCOME;

    return ngx_chat_encode_seal(f, p);
}


ngx_chat_frame_t *
ngx_chat_encode_joined(ngx_str_t *room, uint64_t seq, ngx_uint_t truncated,
    ngx_str_t *id, ngx_log_t *log)
{
    u_char            *p;
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"joined\",\"room\":,\"seq\":"
                                    ",\"truncated\":true}") - 1
                             + ngx_chat_json_str_len(room) + NGX_INT64_LEN
                             + ngx_chat_encode_id_len(id), log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"joined\",\"room\":",
                   sizeof("{\"type\":\"joined\",\"room\":") - 1);
    p = ngx_chat_json_str(p, room);
    p = ngx_sprintf(p, ",\"seq\":%uL", seq);

    if (truncated) {
        p = ngx_cpymem(p, ",\"truncated\":true",
                       sizeof(",\"truncated\":true") - 1);
    }

    p = ngx_chat_encode_id(p, id);
    *p++ = '}';

    f->event = NGX_CHAT_EVENT_JOINED;

    return ngx_chat_encode_seal(f, p);
}


/* reason: NULL for a leave the client asked for, "kicked" */

ngx_chat_frame_t *
ngx_chat_encode_left(ngx_str_t *room, ngx_str_t *id, char *reason,
    ngx_log_t *log)
{
    u_char            *p;
    size_t             len;
    ngx_chat_frame_t  *f;

    len = reason ? sizeof(",\"reason\":\"\"") - 1 + ngx_strlen(reason) : 0;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"left\",\"room\":}") - 1
                             + ngx_chat_json_str_len(room)
                             + ngx_chat_encode_id_len(id) + len, log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"left\",\"room\":",
                   sizeof("{\"type\":\"left\",\"room\":") - 1);
    p = ngx_chat_json_str(p, room);
    p = ngx_chat_encode_id(p, id);

    if (reason) {
        p = ngx_sprintf(p, ",\"reason\":\"%s\"", reason);
    }

    *p++ = '}';

    return ngx_chat_encode_seal(f, p);
}


ngx_chat_frame_t *
ngx_chat_encode_ack(ngx_str_t *room, uint64_t seq, ngx_str_t *id,
    ngx_log_t *log)
{
    u_char            *p;
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"ack\",\"room\":,\"seq\":}")
                             - 1 + ngx_chat_json_str_len(room)
                             + NGX_INT64_LEN
                             + ngx_chat_encode_id_len(id), log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"ack\"",
                   sizeof("{\"type\":\"ack\"") - 1);
    p = ngx_chat_encode_id(p, id);
    p = ngx_cpymem(p, ",\"room\":", sizeof(",\"room\":") - 1);
    p = ngx_chat_json_str(p, room);
    p = ngx_sprintf(p, ",\"seq\":%uL}", seq);

    return ngx_chat_encode_seal(f, p);
}


ngx_chat_frame_t *
ngx_chat_encode_message(ngx_chat_msg_t *msg, ngx_log_t *log)
{
    u_char            *p;
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"message\",\"room\":,\"seq\":"
                                    ",\"msg_id\":\"\",\"user\":,\"text\":"
                                    ",\"ts\":}") - 1
                             + ngx_chat_json_str_len(&msg->room)
                             + NGX_INT64_LEN + NGX_CHAT_MSG_ID_LEN
                             + ngx_chat_json_str_len(&msg->user)
                             + ngx_chat_json_str_len(&msg->text)
                             + NGX_INT64_LEN, log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"message\",\"room\":",
                   sizeof("{\"type\":\"message\",\"room\":") - 1);
    p = ngx_chat_json_str(p, &msg->room);
    p = ngx_sprintf(p, ",\"seq\":%uL,\"msg_id\":\"", msg->seq);
    p = ngx_cpymem(p, msg->msg_id, NGX_CHAT_MSG_ID_LEN);
    p = ngx_cpymem(p, "\",\"user\":", sizeof("\",\"user\":") - 1);
    p = ngx_chat_json_str(p, &msg->user);
    p = ngx_cpymem(p, ",\"text\":", sizeof(",\"text\":") - 1);
    p = ngx_chat_json_str(p, &msg->text);
    p = ngx_sprintf(p, ",\"ts\":%uL}", msg->ts);

    f->seq = msg->seq;

    return ngx_chat_encode_seal(f, p);
}


/* where the digits of "seq" start in the payload of a message event */

size_t
ngx_chat_encode_message_seq_at(ngx_chat_msg_t *msg)
{
    return sizeof("{\"type\":\"message\",\"room\":") - 1
           + ngx_chat_json_str_len(&msg->room) + sizeof(",\"seq\":") - 1;
}


ngx_chat_frame_t *
ngx_chat_encode_typing(ngx_str_t *room, ngx_str_t *user, ngx_log_t *log)
{
    u_char            *p;
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"typing\",\"room\":,"
                                    "\"user\":}") - 1
                             + ngx_chat_json_str_len(room)
                             + ngx_chat_json_str_len(user), log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"typing\",\"room\":",
                   sizeof("{\"type\":\"typing\",\"room\":") - 1);
    p = ngx_chat_json_str(p, room);
    p = ngx_cpymem(p, ",\"user\":", sizeof(",\"user\":") - 1);
    p = ngx_chat_json_str(p, user);
    *p++ = '}';

    return ngx_chat_encode_seal(f, p);
}


ngx_chat_frame_t *
ngx_chat_encode_online(ngx_str_t *users, u_char *present, ngx_uint_t n,
    ngx_str_t *id, ngx_log_t *log)
{
    u_char            *p;
    size_t             len;
    ngx_uint_t         i;
    ngx_chat_frame_t  *f;

    len = sizeof("{\"type\":\"online\",\"users\":{}}") - 1
          + ngx_chat_encode_id_len(id);

    for (i = 0; i < n; i++) {
        len += ngx_chat_json_str_len(&users[i]) + sizeof(":false,") - 1;
    }

    f = ngx_chat_frame_alloc(len, log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"online\",\"users\":{",
                   sizeof("{\"type\":\"online\",\"users\":{") - 1);

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_chat_json_str(p, &users[i]);
        p = present[i] ? ngx_cpymem(p, ":true", 5)
                       : ngx_cpymem(p, ":false", 6);
    }

    *p++ = '}';
    p = ngx_chat_encode_id(p, id);
    *p++ = '}';

    return ngx_chat_encode_seal(f, p);
}


ngx_chat_frame_t *
ngx_chat_encode_presence_event(ngx_str_t *room, ngx_str_t *user,
    ngx_uint_t join, ngx_log_t *log)
{
    u_char            *p;
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"presence\",\"room\":,"
                                    "\"user\":,\"event\":\"leave\"}") - 1
                             + ngx_chat_json_str_len(room)
                             + ngx_chat_json_str_len(user), log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"presence\",\"room\":",
                   sizeof("{\"type\":\"presence\",\"room\":") - 1);
    p = ngx_chat_json_str(p, room);
    p = ngx_cpymem(p, ",\"user\":", sizeof(",\"user\":") - 1);
    p = ngx_chat_json_str(p, user);
    p = join ? ngx_cpymem(p, ",\"event\":\"join\"}",
                          sizeof(",\"event\":\"join\"}") - 1)
             : ngx_cpymem(p, ",\"event\":\"leave\"}",
                          sizeof(",\"event\":\"leave\"}") - 1);

    return ngx_chat_encode_seal(f, p);
}


ngx_chat_frame_t *
ngx_chat_encode_presence(ngx_str_t *room, ngx_str_t *users, ngx_uint_t n,
    ngx_str_t *id, ngx_log_t *log)
{
    u_char            *p;
    size_t             len;
    ngx_uint_t         i;
    ngx_chat_frame_t  *f;

    len = sizeof("{\"type\":\"presence\",\"room\":,\"users\":[]}") - 1
          + ngx_chat_json_str_len(room) + ngx_chat_encode_id_len(id);

    for (i = 0; i < n; i++) {
        len += ngx_chat_json_str_len(&users[i]) + 1;
    }

    f = ngx_chat_frame_alloc(len, log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"presence\",\"room\":",
                   sizeof("{\"type\":\"presence\",\"room\":") - 1);
    p = ngx_chat_json_str(p, room);
    p = ngx_cpymem(p, ",\"users\":[", sizeof(",\"users\":[") - 1);

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_chat_json_str(p, &users[i]);
    }

    *p++ = ']';
    p = ngx_chat_encode_id(p, id);
    *p++ = '}';

    return ngx_chat_encode_seal(f, p);
}


/* msgs are message event frames: their payloads are the history entries */

ngx_chat_frame_t *
ngx_chat_encode_history(ngx_str_t *room, ngx_chat_frame_t **msgs,
    ngx_uint_t n, ngx_str_t *id, ngx_log_t *log)
{
    u_char            *p;
    size_t             len;
    ngx_uint_t         i;
    ngx_chat_frame_t  *f;

    len = sizeof("{\"type\":\"history\",\"room\":,\"messages\":[]}") - 1
          + ngx_chat_json_str_len(room) + ngx_chat_encode_id_len(id);

    for (i = 0; i < n; i++) {
        len += msgs[i]->last - msgs[i]->payload + 1;
    }

    f = ngx_chat_frame_alloc(len, log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"history\",\"room\":",
                   sizeof("{\"type\":\"history\",\"room\":") - 1);
    p = ngx_chat_json_str(p, room);
    p = ngx_chat_encode_id(p, id);
    p = ngx_cpymem(p, ",\"messages\":[", sizeof(",\"messages\":[") - 1);

    for (i = 0; i < n; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, msgs[i]->payload, msgs[i]->last - msgs[i]->payload);
    }

    *p++ = ']';
    *p++ = '}';

    return ngx_chat_encode_seal(f, p);
}


ngx_chat_frame_t *
ngx_chat_encode_heartbeat(ngx_str_t *id, ngx_log_t *log)
{
    u_char            *p;
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"heartbeat\"}") - 1
                             + ngx_chat_encode_id_len(id), log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"heartbeat\"",
                   sizeof("{\"type\":\"heartbeat\"") - 1);
    p = ngx_chat_encode_id(p, id);
    *p++ = '}';

    return ngx_chat_encode_seal(f, p);
}


/* chat_admin's answer to a command; connections: -1 if not counted */

ngx_chat_frame_t *
ngx_chat_encode_done(char *op, ngx_int_t connections, ngx_str_t *id,
    ngx_log_t *log)
{
    u_char            *p;
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"done\",\"op\":\"\"") - 1
                             + ngx_strlen(op)
                             + sizeof(",\"connections\":}") - 1
                             + NGX_INT_T_LEN + ngx_chat_encode_id_len(id),
                             log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_sprintf(f->payload, "{\"type\":\"done\",\"op\":\"%s\"", op);

    if (connections >= 0) {
        p = ngx_sprintf(p, ",\"connections\":%i", connections);
    }

    p = ngx_chat_encode_id(p, id);
    *p++ = '}';

    return ngx_chat_encode_seal(f, p);
}


ngx_chat_frame_t *
ngx_chat_encode_error(ngx_uint_t code, char *message, ngx_str_t *id,
    ngx_log_t *log)
{
    u_char            *p;
    ngx_str_t          text, *name;
    ngx_chat_frame_t  *f;

    name = &ngx_chat_encode_errors[code];
    text.data = (u_char *) message;
    text.len = ngx_strlen(message);

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"error\",\"code\":\"\","
                                    "\"message\":}") - 1
                             + name->len + ngx_chat_json_str_len(&text)
                             + ngx_chat_encode_id_len(id), log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_cpymem(f->payload, "{\"type\":\"error\",\"code\":\"",
                   sizeof("{\"type\":\"error\",\"code\":\"") - 1);
    p = ngx_cpymem(p, name->data, name->len);
    p = ngx_cpymem(p, "\",\"message\":", sizeof("\",\"message\":") - 1);
    p = ngx_chat_json_str(p, &text);
    p = ngx_chat_encode_id(p, id);
    *p++ = '}';

    f->event = NGX_CHAT_EVENT_ERROR;
    f->error = (u_char) code;

    return ngx_chat_encode_seal(f, p);
}


/*
 * The end of an HTTP transport's session the server decides, with the
 * code a WebSocket would have closed with: an SSE stream's last event,
 * the last of a poll's events.
 */

ngx_chat_frame_t *
ngx_chat_encode_close(ngx_uint_t code, char *reason, ngx_log_t *log)
{
    u_char            *p;
    ngx_str_t          text;
    ngx_chat_frame_t  *f;

    text.data = (u_char *) reason;
    text.len = ngx_strlen(reason);

    f = ngx_chat_frame_alloc(sizeof("{\"type\":\"close\",\"code\":,"
                                    "\"reason\":}") - 1
                             + NGX_INT_T_LEN + ngx_chat_json_str_len(&text),
                             log);
    if (f == NULL) {
        return NULL;
    }

    p = ngx_sprintf(f->payload, "{\"type\":\"close\",\"code\":%ui,"
                    "\"reason\":", code);
    p = ngx_chat_json_str(p, &text);
    *p++ = '}';

    return ngx_chat_encode_seal(f, p);
}
