
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_decode.h"
#include "ngx_chat_encode.h"
#include "ngx_chat_utf8.h"
#include "ngx_chat_rooms.h"


/*
 * What comes in: client requests, checked field by field, and events read
 * back from a shared store (a Redis channel, the recent messages, the
 * stream), which anyone with access to the store could have written.
 */

typedef struct {
    ngx_str_t           name;
    ngx_uint_t          op;
    ngx_uint_t          room;       /* the request names a room */
} ngx_chat_decode_op_t;


static ngx_int_t ngx_chat_decode_fields(ngx_chat_request_t *req,
    ngx_chat_decode_op_t *ops, ngx_uint_t op);
static cJSON *ngx_chat_decode_stored_json(ngx_str_t *room, u_char *data,
    size_t len, char *type, ngx_str_t *name);
static ngx_int_t ngx_chat_decode_string(cJSON *json, char *name,
    ngx_str_t *s);
static ngx_int_t ngx_chat_decode_uint(cJSON *json, char *name, uint64_t *n);
static ngx_int_t ngx_chat_decode_fail(ngx_chat_request_t *req,
    ngx_uint_t error, char *reason);


static ngx_chat_decode_op_t  ngx_chat_decode_ops[] = {
    { ngx_string("join"), NGX_CHAT_REQ_JOIN, 1 },
    { ngx_string("leave"), NGX_CHAT_REQ_LEAVE, 1 },
    { ngx_string("send"), NGX_CHAT_REQ_SEND, 1 },
    { ngx_string("history"), NGX_CHAT_REQ_HISTORY, 1 },
    { ngx_string("presence"), NGX_CHAT_REQ_PRESENCE, 1 },
    { ngx_string("online"), NGX_CHAT_REQ_ONLINE, 0 },
    { ngx_string("heartbeat"), NGX_CHAT_REQ_HEARTBEAT, 0 },
    { ngx_string("typing"), NGX_CHAT_REQ_TYPING, 1 },
    { ngx_null_string, 0, 0 }
};


/* what the application asks of chat_admin, and of every worker */

static ngx_chat_decode_op_t  ngx_chat_decode_commands[] = {
    { ngx_string("kick"), NGX_CHAT_REQ_KICK, 1 },
    { ngx_string("disconnect"), NGX_CHAT_REQ_DISCONNECT, 0 },
    { ngx_string("presence"), NGX_CHAT_REQ_PRESENCE, 1 },
    { ngx_string("online"), NGX_CHAT_REQ_ONLINE, 0 },
    { ngx_null_string, 0, 0 }
};


/* 2^53: larger numbers do not survive a JSON double */
#define NGX_CHAT_DECODE_UINT_MAX  9007199254740992.0


/*
 * Decodes one client message; op, if not 0, is the operation whatever the
 * message says (an HTTP publish).  NGX_OK: req is a well-formed request;
 * NGX_DECLINED: req->error and req->reason say why not, and req->id is set
 * if the request carried a usable one.  Either way the caller frees req.
 */

ngx_int_t
ngx_chat_decode_request(u_char *data, size_t len, ngx_chat_request_t *req,
    ngx_uint_t op)
{
    ngx_memzero(req, sizeof(ngx_chat_request_t));

    req->json = ngx_chat_decode_json(data, len, &req->reason);

    if (req->json == NULL) {
        req->error = NGX_CHAT_ERR_BAD_REQUEST;
        return NGX_DECLINED;
    }

    return ngx_chat_decode_fields(req, ngx_chat_decode_ops, op);
}


/* a chat_admin command, or one that came through the control channel */

ngx_int_t
ngx_chat_decode_command(u_char *data, size_t len, ngx_chat_request_t *req)
{
    ngx_memzero(req, sizeof(ngx_chat_request_t));

    req->json = ngx_chat_decode_json(data, len, &req->reason);

    if (req->json == NULL) {
        req->error = NGX_CHAT_ERR_BAD_REQUEST;
        return NGX_DECLINED;
    }

    return ngx_chat_decode_fields(req, ngx_chat_decode_commands, 0);
}


/*
 * One JSON object and nothing else.  cJSON takes raw control characters
 * in strings, which JSON allows nowhere but as whitespace, and cuts a
 * string short at "\u0000": both are refused first.
 */

cJSON *
ngx_chat_decode_json(u_char *data, size_t len, char **reason)
{
    u_char      *p, *last;
    cJSON       *json;
    const char  *end;

    for (p = data, last = data + len; p < last; p++) {

        if (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n') {
            *reason = "control character in JSON";
            return NULL;
        }

        if (*p == '\\' && ++p < last && *p == 'u' && last - p > 4
            && ngx_strncmp(p + 1, "0000", 4) == 0)
        {
            *reason = "U+0000 in a string";
            return NULL;
        }
    }

    end = NULL;
    json = cJSON_ParseWithLengthOpts((const char *) data, len, &end, 0);

    if (json == NULL) {
        *reason = "invalid JSON";
        return NULL;
    }

    while (end < (const char *) last
           && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
    {
        end++;
    }

    if (end != (const char *) last) {
        cJSON_Delete(json);
        *reason = "trailing data after JSON";
        return NULL;
    }

    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        *reason = "not a JSON object";
        return NULL;
    }

    return json;
}


static ngx_int_t
ngx_chat_decode_fields(ngx_chat_request_t *req, ngx_chat_decode_op_t *ops,
    ngx_uint_t op)
{
    cJSON                 *json, *item;
    uint64_t               limit;
    ngx_str_t              name, id;
    ngx_int_t              rc;
    ngx_chat_decode_op_t  *o;

    json = req->json;

    if (ngx_chat_decode_string(json, "id", &id) == NGX_ERROR
        || id.len > NGX_CHAT_ID_MAX)
    {
        return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                      "\"id\" must be a string of at most "
                                      "64 bytes");
    }

    req->id = id;

    if (op) {
        for (o = ops; o->op != op; o++) { /* void */ }

    } else {
        if (ngx_chat_decode_string(json, "op", &name) != NGX_OK) {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"op\" must be a string");
        }

        for (o = ops; o->name.len; o++) {
            if (o->name.len == name.len
                && ngx_strncmp(o->name.data, name.data, name.len) == 0)
            {
                break;
            }
        }
    }

    if (o->name.len == 0) {
        return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                      "unknown \"op\"");
    }

    req->op = o->op;

    if (o->room) {
        if (ngx_chat_decode_string(json, "room", &req->room) != NGX_OK
            || !ngx_chat_rooms_name(req->room.data, req->room.len))
        {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"room\" must be 1 to 128 of "
                                          "A-Z a-z 0-9 _ . : @ -");
        }
    }

    switch (req->op) {

    case NGX_CHAT_REQ_JOIN:
        rc = ngx_chat_decode_uint(json, "since", &req->since);

        if (rc == NGX_ERROR) {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"since\" must be a non-negative "
                                          "integer");
        }

        req->has_since = (rc == NGX_OK);

        if (ngx_chat_decode_string(json, "token", &req->token) == NGX_ERROR
            || req->token.len > NGX_CHAT_JWT_MAX)
        {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"token\" must be a string of at "
                                          "most 8192 bytes");
        }

        break;

    case NGX_CHAT_REQ_SEND:
        if (ngx_chat_decode_string(json, "text", &req->text) != NGX_OK
            || req->text.len == 0)
        {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"text\" must be a non-empty "
                                          "string");
        }

        break;

    case NGX_CHAT_REQ_HISTORY:
        rc = ngx_chat_decode_uint(json, "before", &req->before);

        if (rc == NGX_ERROR) {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"before\" must be a non-negative "
                                          "integer");
        }

        req->has_before = (rc == NGX_OK);
        req->limit = NGX_CHAT_HISTORY_DEFAULT;

        rc = ngx_chat_decode_uint(json, "limit", &limit);

        if (rc == NGX_ERROR || (rc == NGX_OK && limit == 0)) {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"limit\" must be a positive "
                                          "integer");
        }

        if (rc == NGX_OK) {
            req->limit = ngx_min(limit, NGX_CHAT_HISTORY_MAX);
        }

        break;

    case NGX_CHAT_REQ_ONLINE:
        item = cJSON_GetObjectItemCaseSensitive(json, "users");

        if (!cJSON_IsArray(item)) {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"users\" must be an array");
        }

        if (cJSON_GetArraySize(item) > NGX_CHAT_ONLINE_MAX) {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_TOO_LARGE,
                                          "at most 100 users per request");
        }

        req->users = item;

        for (item = item->child; item; item = item->next) {
            if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
                return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                              "\"users\" must hold "
                                              "non-empty strings");
            }
        }

        break;

    case NGX_CHAT_REQ_KICK:
        if (ngx_chat_decode_uint(json, "ban", &req->ban) == NGX_ERROR
            || req->ban > NGX_CHAT_BAN_MAX)
        {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"ban\" must be 0 to 315360000 "
                                          "seconds");
        }

        /* fall through */

    case NGX_CHAT_REQ_DISCONNECT:
        if (ngx_chat_decode_string(json, "user", &req->user) != NGX_OK
            || ngx_chat_decode_user(&req->user) != NGX_OK)
        {
            return ngx_chat_decode_fail(req, NGX_CHAT_ERR_BAD_REQUEST,
                                          "\"user\" must be a valid user "
                                          "id");
        }

        break;

    default:
        break;
    }

    return NGX_OK;
}


/* NGX_OK: a string; NGX_DECLINED: absent; NGX_ERROR: another type */

static ngx_int_t
ngx_chat_decode_string(cJSON *json, char *name, ngx_str_t *s)
{
    cJSON  *item;

    ngx_str_null(s);

    item = cJSON_GetObjectItemCaseSensitive(json, name);

    if (item == NULL) {
        return NGX_DECLINED;
    }

    if (!cJSON_IsString(item)) {
        return NGX_ERROR;
    }

    s->data = (u_char *) item->valuestring;
    s->len = ngx_strlen(item->valuestring);

    return NGX_OK;
}


static ngx_int_t
ngx_chat_decode_uint(cJSON *json, char *name, uint64_t *n)
{
    cJSON   *item;
    double   d;

    item = cJSON_GetObjectItemCaseSensitive(json, name);

    if (item == NULL) {
        return NGX_DECLINED;
    }

    if (!cJSON_IsNumber(item)) {
        return NGX_ERROR;
    }

    d = item->valuedouble;

    if (!(d >= 0 && d <= NGX_CHAT_DECODE_UINT_MAX)
        || d != (double) (uint64_t) d)
    {
        return NGX_ERROR;
    }

    *n = (uint64_t) d;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_decode_fail(ngx_chat_request_t *req, ngx_uint_t error,
    char *reason)
{
    req->error = error;
    req->reason = reason;

    return NGX_DECLINED;
}


void
ngx_chat_decode_free(ngx_chat_request_t *req)
{
    if (req->json) {
        cJSON_Delete(req->json);
        req->json = NULL;
    }
}


/*
 * A user id as chat_user gives it: NGX_DECLINED when empty, NGX_ERROR
 * when over NGX_CHAT_USER_MAX bytes, not UTF-8, or holding a control
 * character (C0, DEL or C1): it goes into every event and every Redis key
 * of the user, and other clients must see one name for one id.
 */

ngx_int_t
ngx_chat_decode_user(ngx_str_t *user)
{
    u_char           *p, *last;
    ngx_chat_utf8_t   utf8;

    if (user->len == 0) {
        return NGX_DECLINED;
    }

    if (user->len > NGX_CHAT_USER_MAX) {
        return NGX_ERROR;
    }

    ngx_memzero(&utf8, sizeof(ngx_chat_utf8_t));

    if (ngx_chat_utf8_validate(&utf8, user->data, user->len) != NGX_OK
        || ngx_chat_utf8_complete(&utf8) != NGX_OK)
    {
        return NGX_ERROR;
    }

    last = user->data + user->len;

    for (p = user->data; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f
            || (*p == 0xc2 && p + 1 < last && p[1] >= 0x80 && p[1] <= 0x9f))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * What comes back from a shared store (a channel, the recent messages,
 * the stream): anyone with access to it could have written it.  Valid
 * UTF-8, one JSON object of the given type, of the room when room is not
 * NULL; *name is its room.
 */

static cJSON *
ngx_chat_decode_stored_json(ngx_str_t *room, u_char *data, size_t len,
    char *type, ngx_str_t *name)
{
    char             *reason;
    cJSON            *json;
    ngx_str_t         t;
    ngx_chat_utf8_t   utf8;

    ngx_memzero(&utf8, sizeof(ngx_chat_utf8_t));

    if (len == 0
        || ngx_chat_utf8_validate(&utf8, data, len) != NGX_OK
        || ngx_chat_utf8_complete(&utf8) != NGX_OK)
    {
        return NULL;
    }

    json = ngx_chat_decode_json(data, len, &reason);
    if (json == NULL) {
        return NULL;
    }

    if (ngx_chat_decode_string(json, "type", &t) == NGX_OK
        && t.len == ngx_strlen(type)
        && ngx_strncmp(t.data, type, t.len) == 0
        && ngx_chat_decode_string(json, "room", name) == NGX_OK
        && ngx_chat_rooms_name(name->data, name->len)
        && (room == NULL
            || (name->len == room->len
                && ngx_strncmp(name->data, room->data, room->len) == 0)))
    {
        return json;
    }

    cJSON_Delete(json);

    return NULL;
}


/*
 * A message event read back from a shared store, every field checked.
 * On success msg points into the returned cJSON tree, which the caller
 * deletes.
 */

cJSON *
ngx_chat_decode_message(ngx_str_t *room, u_char *data, size_t len,
    ngx_chat_msg_t *msg)
{
    cJSON  *json, *id;

    json = ngx_chat_decode_stored_json(room, data, len, "message",
                                          &msg->room);
    if (json == NULL) {
        return NULL;
    }

    id = cJSON_GetObjectItemCaseSensitive(json, "msg_id");

    if (ngx_chat_decode_uint(json, "seq", &msg->seq) == NGX_OK
        && msg->seq > 0
        && cJSON_IsString(id)
        && ngx_strlen(id->valuestring) == NGX_CHAT_MSG_ID_LEN
        && ngx_chat_decode_string(json, "user", &msg->user) == NGX_OK
        && msg->user.len > 0
        && ngx_chat_decode_string(json, "text", &msg->text) == NGX_OK
        && ngx_chat_decode_uint(json, "ts", &msg->ts) == NGX_OK)
    {
        ngx_memcpy(msg->msg_id, id->valuestring, NGX_CHAT_MSG_ID_LEN);
        return json;
    }

    cJSON_Delete(json);

    return NULL;
}


/* the same, as a frame for clients: the bytes as they were stored */

ngx_chat_frame_t *
ngx_chat_decode_stored(ngx_str_t *room, u_char *data, size_t len,
    ngx_log_t *log)
{
    cJSON             *json;
    ngx_chat_msg_t     msg;
    ngx_chat_frame_t  *f;

    json = ngx_chat_decode_message(room, data, len, &msg);
    if (json == NULL) {
        return NULL;
    }

    cJSON_Delete(json);

    f = ngx_chat_frame_alloc(len, log);
    if (f == NULL) {
        return NULL;
    }

    f->last = ngx_cpymem(f->payload, data, len);
    f->seq = msg.seq;
    ngx_chat_frame_seal(f, NGX_CHAT_OP_TEXT);

    return f;
}


/* a typing event from the room's channel: *user is the typer */

ngx_chat_frame_t *
ngx_chat_decode_typing(ngx_str_t *room, u_char *data, size_t len,
    ngx_str_t *user, ngx_log_t *log)
{
    cJSON             *json;
    ngx_str_t          name, u;
    ngx_chat_frame_t  *f;

    json = ngx_chat_decode_stored_json(room, data, len, "typing", &name);
    if (json == NULL) {
        return NULL;
    }

    f = NULL;

    if (ngx_chat_decode_string(json, "user", &u) == NGX_OK
        && u.len > 0 && u.len <= NGX_CHAT_USER_MAX)
    {
        /* re-encoded: exactly the three fields, whatever else came */

        f = ngx_chat_encode_typing(room, &u, log);

        if (f && user) {
            user->len = u.len;
            ngx_memcpy(user->data, u.data, u.len);
        }
    }

    cJSON_Delete(json);

    return f;
}


/* a presence event from the room's channel, written by the Redis scripts */

ngx_chat_frame_t *
ngx_chat_decode_presence(ngx_str_t *room, u_char *data, size_t len,
    ngx_str_t *who, ngx_log_t *log)
{
    cJSON             *json;
    ngx_str_t          name, user, event;
    ngx_chat_frame_t  *f;

    json = ngx_chat_decode_stored_json(room, data, len, "presence",
                                          &name);
    if (json == NULL) {
        return NULL;
    }

    f = NULL;

    if (ngx_chat_decode_string(json, "user", &user) == NGX_OK
        && user.len > 0 && user.len <= NGX_CHAT_USER_MAX
        && ngx_chat_decode_string(json, "event", &event) == NGX_OK
        && ((event.len == 4 && ngx_strncmp(event.data, "join", 4) == 0)
            || (event.len == 5 && ngx_strncmp(event.data, "leave", 5) == 0)))
    {
        f = ngx_chat_encode_presence_event(room, &user, event.len == 4,
                                             log);

        if (f && who) {
            who->len = user.len;
            ngx_memcpy(who->data, user.data, user.len);
        }
    }

    cJSON_Delete(json);

    return f;
}
