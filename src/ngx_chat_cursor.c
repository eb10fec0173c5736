
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_cursor.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_hub.h"


/*
 * The cursors HTTP clients carry from one request to the next, since any
 * worker of any host may answer the next one: "R1,R2" (the rooms of a
 * stream), "R1:5,R2:" (a seq per room, the separator being the last
 * colon: room names may hold colons, never commas) and a Last-Event-ID,
 * "5,,9", the seqs alone in the order of the stream's rooms.
 */


static ngx_int_t ngx_chat_cursor_unescape(ngx_pool_t *pool, ngx_str_t *value,
    ngx_str_t *out);
static ngx_int_t ngx_chat_cursor_seq(u_char *p, u_char *last,
    ngx_chat_cursor_t *cur);
static ngx_chat_cursor_t *ngx_chat_cursor_find(ngx_array_t *list,
    u_char *p, size_t len);


/* the rooms of ?rooms=, in their order, each once; list: of cursors */

ngx_int_t
ngx_chat_cursor_rooms(ngx_pool_t *pool, ngx_str_t *value, ngx_uint_t max,
    ngx_array_t *list, char **reason)
{
    u_char             *p, *last, *start;
    ngx_str_t           v;
    ngx_chat_cursor_t  *cur;

    if (ngx_chat_cursor_unescape(pool, value, &v) != NGX_OK) {
        *reason = "rooms: bad escape";
        return NGX_DECLINED;
    }

    p = v.data;
    last = p + v.len;

    while (p < last || list->nelts == 0) {
        start = p;
        p = ngx_strlchr(p, last, ',');

        if (p == NULL) {
            p = last;
        }

        if (!ngx_chat_rooms_name(start, p - start)) {
            *reason = "rooms: each must be 1 to 128 of A-Z a-z 0-9 _ . : @ -";
            return NGX_DECLINED;
        }

        if (ngx_chat_cursor_find(list, start, p - start)) {
            *reason = "rooms: a room is named twice";
            return NGX_DECLINED;
        }

        if (list->nelts == max) {
            *reason = "rooms: more than chat_max_rooms";
            return NGX_DECLINED;
        }

        cur = ngx_array_push(list);
        if (cur == NULL) {
            return NGX_ERROR;
        }

        cur->room.data = start;
        cur->room.len = p - start;
        cur->seq = 0;
        cur->has_seq = 0;

        if (p < last) {
            p++;

            if (p == last) {
                *reason = "rooms: empty room name";
                return NGX_DECLINED;
            }
        }
    }

    return NGX_OK;
}


/*
 * "R1:5,R2:9": the seqs of rooms of the list, or, with add, the list
 * itself (a long poll's cursor), each room once
 */

ngx_int_t
ngx_chat_cursor_since(ngx_pool_t *pool, ngx_str_t *value, ngx_uint_t max,
    ngx_array_t *list, ngx_uint_t add, char **reason)
{
    u_char             *p, *last, *start, *end, *colon;
    ngx_str_t           v;
    ngx_chat_cursor_t  *cur;

    if (ngx_chat_cursor_unescape(pool, value, &v) != NGX_OK) {
        *reason = "cursor: bad escape";
        return NGX_DECLINED;
    }

    p = v.data;
    last = p + v.len;

    while (p < last) {
        start = p;
        end = ngx_strlchr(p, last, ',');

        if (end == NULL) {
            end = last;
        }

        for (colon = end; colon > start && colon[-1] != ':'; colon--) {
            /* void */
        }

        if (colon == start) {
            /* no colon: a room without a seq */
            colon = end + 1;
        }

        if (!ngx_chat_rooms_name(start, colon - 1 - start)) {
            *reason = "cursor: each item must be ROOM:SEQ";
            return NGX_DECLINED;
        }

        cur = ngx_chat_cursor_find(list, start, colon - 1 - start);

        if (cur && add) {
            *reason = "cursor: a room is named twice";
            return NGX_DECLINED;
        }

        if (cur == NULL) {
            if (!add) {
                *reason = "since: a room the stream is not in";
                return NGX_DECLINED;
            }

            if (list->nelts == max) {
                *reason = "cursor: more rooms than chat_max_rooms";
                return NGX_DECLINED;
            }

            cur = ngx_array_push(list);
            if (cur == NULL) {
                return NGX_ERROR;
            }

            cur->room.data = start;
            cur->room.len = colon - 1 - start;
            cur->seq = 0;
            cur->has_seq = 0;
        }

        if (colon <= end && ngx_chat_cursor_seq(colon, end, cur) != NGX_OK) {
            *reason = "cursor: a seq must be an integer of at most 19 digits";
            return NGX_DECLINED;
        }

        p = end + 1;

        if (p == last) {
            *reason = "cursor: empty item";
            return NGX_DECLINED;
        }
    }

    if (add && list->nelts == 0) {
        *reason = "cursor: no room";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* a Last-Event-ID: one seq per room of the list, in its order */

ngx_int_t
ngx_chat_cursor_positions(ngx_str_t *value, ngx_array_t *list, char **reason)
{
    u_char             *p, *last, *end;
    ngx_uint_t          i;
    ngx_chat_cursor_t  *cur;

    /* each room's at most: the header may not make us scan more */

    if (value->len > list->nelts * NGX_CHAT_CURSOR_SEQ_LEN) {
        *reason = "Last-Event-ID: too long for the stream's rooms";
        return NGX_DECLINED;
    }

    cur = list->elts;
    p = value->data;
    last = p + value->len;

    for (i = 0; p <= last; i++) {
        end = ngx_strlchr(p, last, ',');

        if (end == NULL) {
            end = last;
        }

        if (i == list->nelts) {
            *reason = "Last-Event-ID: more seqs than the stream has rooms";
            return NGX_DECLINED;
        }

        if (ngx_chat_cursor_seq(p, end, &cur[i]) != NGX_OK) {
            *reason = "Last-Event-ID: not a list of seqs";
            return NGX_DECLINED;
        }

        p = end + 1;
    }

    return NGX_OK;
}


/*
 * Each room's seq from the member of it among members (a session's
 * rooms, joined in the list's order, less those refused): one that has
 * had a message, or whose join is answered, knows where it is.
 */

void
ngx_chat_cursor_update(ngx_array_t *list, ngx_queue_t *members)
{
    ngx_uint_t          i;
    ngx_queue_t        *q;
    ngx_chat_member_t  *m;
    ngx_chat_cursor_t  *cur;

    cur = list->elts;
    q = ngx_queue_head(members);

    for (i = 0; i < list->nelts && q != ngx_queue_sentinel(members); i++) {
        m = ngx_queue_data(q, ngx_chat_member_t, owner_link);

        if (m->room->node.str.len != cur[i].room.len
            || ngx_strncmp(m->room->node.str.data, cur[i].room.data,
                           cur[i].room.len) != 0)
        {
            continue;
        }

        if (m->ready || m->seq) {
            cur[i].seq = m->seq;
            cur[i].has_seq = 1;
        }

        q = ngx_queue_next(q);
    }
}


size_t
ngx_chat_cursor_len(ngx_array_t *list)
{
    size_t              len;
    ngx_uint_t          i;
    ngx_chat_cursor_t  *cur;

    cur = list->elts;
    len = 0;

    for (i = 0; i < list->nelts; i++) {
        len += cur[i].room.len + sizeof(":,") - 1 + NGX_INT64_LEN;
    }

    return len;
}


/* "R1:7,R2:9", at most ngx_chat_cursor_len() bytes */

u_char *
ngx_chat_cursor_write(u_char *p, ngx_array_t *list)
{
    ngx_uint_t          i;
    ngx_chat_cursor_t  *cur;

    cur = list->elts;

    for (i = 0; i < list->nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, cur[i].room.data, cur[i].room.len);
        *p++ = ':';

        if (cur[i].has_seq) {
            p = ngx_sprintf(p, "%uL", cur[i].seq);
        }
    }

    return p;
}


static ngx_int_t
ngx_chat_cursor_unescape(ngx_pool_t *pool, ngx_str_t *value, ngx_str_t *out)
{
    u_char  *dst, *src;

    if (ngx_strlchr(value->data, value->data + value->len, '%') == NULL) {
        *out = *value;
        return NGX_OK;
    }

    dst = ngx_pnalloc(pool, value->len);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    out->data = dst;
    src = value->data;

    ngx_unescape_uri(&dst, &src, value->len, 0);

    out->len = dst - out->data;

    return NGX_OK;
}


/* empty: no seq */

static ngx_int_t
ngx_chat_cursor_seq(u_char *p, u_char *last, ngx_chat_cursor_t *cur)
{
    uint64_t  seq;

    if (p == last) {
        cur->has_seq = 0;
        cur->seq = 0;
        return NGX_OK;
    }

    /* 19 digits cannot overflow */

    if ((size_t) (last - p) > NGX_INT64_LEN - 1) {
        return NGX_ERROR;
    }

    for (seq = 0; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        seq = seq * 10 + (*p - '0');
    }

    cur->seq = seq;
    cur->has_seq = 1;

    return NGX_OK;
}


static ngx_chat_cursor_t *
ngx_chat_cursor_find(ngx_array_t *list, u_char *p, size_t len)
{
    ngx_uint_t          i;
    ngx_chat_cursor_t  *cur;

    cur = list->elts;

    for (i = 0; i < list->nelts; i++) {
        if (cur[i].room.len == len
            && ngx_strncmp(cur[i].room.data, p, len) == 0)
        {
            return &cur[i];
        }
    }

    return NULL;
}
