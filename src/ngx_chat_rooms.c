
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_rooms.h"


/*
 * What a room name is, and the lists of names and prefix patterns that
 * say which rooms a connection may join ("team-42 dm:alice:*", "*"),
 * separated by spaces or commas.  A list is matched as it is, at each
 * join: nothing is built per connection.
 */

static ngx_uint_t ngx_chat_rooms_next(u_char **p, u_char *last,
    ngx_str_t *item);


/* 1 to 128 of A-Z a-z 0-9 _ . : @ - */

ngx_uint_t
ngx_chat_rooms_name(u_char *p, size_t len)
{
    u_char  c, *last;

    if (len == 0 || len > NGX_CHAT_ROOM_MAX) {
        return 0;
    }

    for (last = p + len; p < last; p++) {
        c = *p;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || c == '_' || c == '.' || c == ':' || c == '@' || c == '-')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


/* a name, or the start of one followed by "*" ("*" alone: every room) */

ngx_uint_t
ngx_chat_rooms_pattern(u_char *p, size_t len)
{
    if (len && p[len - 1] == '*') {
        return len == 1 || ngx_chat_rooms_name(p, len - 1);
    }

    return ngx_chat_rooms_name(p, len);
}


/* logs the items that can match no room; 0 when the list is too long */

ngx_uint_t
ngx_chat_rooms_check(ngx_str_t *list, ngx_log_t *log)
{
    u_char     *p;
    ngx_str_t   item;

    if (list->len > NGX_CHAT_ROOMS_MAX) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "chat: chat_rooms value of %uz bytes, over %d",
                      list->len, NGX_CHAT_ROOMS_MAX);
        return 0;
    }

    p = list->data;

    while (ngx_chat_rooms_next(&p, list->data + list->len, &item)) {

        if (!ngx_chat_rooms_pattern(item.data, item.len)) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "chat: chat_rooms: \"%*s\" is not a room name or "
                          "pattern, ignored", ngx_min(item.len, 128),
                          item.data);
        }
    }

    return 1;
}


/*
 * The room is a valid name: an item that is not a name or a pattern
 * matches nothing by itself, a prefix of a name being one.
 */

ngx_uint_t
ngx_chat_rooms_allow(ngx_str_t *list, ngx_str_t *room)
{
    u_char     *p;
    ngx_str_t   item;

    p = list->data;

    while (ngx_chat_rooms_next(&p, list->data + list->len, &item)) {

        if (item.data[item.len - 1] == '*') {
            item.len--;

            if (room->len >= item.len
                && ngx_memcmp(room->data, item.data, item.len) == 0)
            {
                return 1;
            }

            continue;
        }

        if (item.len == room->len
            && ngx_memcmp(item.data, room->data, item.len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_chat_rooms_next(u_char **p, u_char *last, ngx_str_t *item)
{
    u_char  *s;

    s = *p;

    while (s < last && (*s == ' ' || *s == ',' || *s == '\t')) {
        s++;
    }

    if (s == last) {
        *p = s;
        return 0;
    }

    item->data = s;

    while (s < last && *s != ' ' && *s != ',' && *s != '\t') {
        s++;
    }

    item->len = s - item->data;
    *p = s;

    return 1;
}
