
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_bans.h"


/*
 * Users banned from rooms by chat_admin's kick, in embedded mode (the
 * Redis store keeps them as keys with a TTL): by "room\nuser", each
 * until it expires, at most NGX_CHAT_BANS_MAX of them.
 */

typedef struct {
    ngx_str_node_t              node;
    ngx_queue_t                 queue;        /* oldest first */
    time_t                      expires;
} ngx_chat_ban_t;


static ngx_chat_ban_t *ngx_chat_bans_lookup(ngx_str_t *room,
    ngx_str_t *user, u_char *buf, ngx_str_t *key);
static void ngx_chat_bans_remove(ngx_chat_ban_t *ban);


static ngx_rbtree_t       ngx_chat_bans;
static ngx_rbtree_node_t  ngx_chat_bans_sentinel;
static ngx_queue_t        ngx_chat_bans_queue;
static ngx_uint_t         ngx_chat_bans_n;


ngx_int_t
ngx_chat_bans_add(ngx_str_t *room, ngx_str_t *user, uint64_t seconds)
{
    u_char          buf[NGX_CHAT_ROOM_MAX + 1 + NGX_CHAT_USER_MAX];
    ngx_str_t       key;
    ngx_queue_t    *q;
    ngx_chat_ban_t *ban;

    ban = ngx_chat_bans_lookup(room, user, buf, &key);

    if (ban) {
        ngx_chat_bans_remove(ban);
    }

    if (ngx_chat_bans_n == NGX_CHAT_BANS_MAX) {
        q = ngx_queue_head(&ngx_chat_bans_queue);
        ngx_chat_bans_remove(ngx_queue_data(q, ngx_chat_ban_t, queue));
    }

    ban = ngx_alloc(sizeof(ngx_chat_ban_t) + key.len, ngx_cycle->log);
    if (ban == NULL) {
        return NGX_ERROR;
    }

    ban->node.str.data = (u_char *) (ban + 1);
    ban->node.str.len = key.len;
    ngx_memcpy(ban->node.str.data, key.data, key.len);
    ban->node.node.key = ngx_crc32_short(key.data, key.len);
    ban->expires = ngx_time() + (time_t) seconds;

    ngx_rbtree_insert(&ngx_chat_bans, &ban->node.node);
    ngx_queue_insert_tail(&ngx_chat_bans_queue, &ban->queue);
    ngx_chat_bans_n++;

    return NGX_OK;
}


ngx_uint_t
ngx_chat_bans_find(ngx_str_t *room, ngx_str_t *user)
{
    u_char          buf[NGX_CHAT_ROOM_MAX + 1 + NGX_CHAT_USER_MAX];
    ngx_str_t       key;
    ngx_chat_ban_t *ban;

    ban = ngx_chat_bans_lookup(room, user, buf, &key);

    if (ban == NULL) {
        return 0;
    }

    if (ban->expires <= ngx_time()) {
        ngx_chat_bans_remove(ban);
        return 0;
    }

    return 1;
}


static ngx_chat_ban_t *
ngx_chat_bans_lookup(ngx_str_t *room, ngx_str_t *user, u_char *buf,
    ngx_str_t *key)
{
    ngx_str_node_t  *node;

    if (ngx_chat_bans.root == NULL) {
        ngx_rbtree_init(&ngx_chat_bans, &ngx_chat_bans_sentinel,
                        ngx_str_rbtree_insert_value);
        ngx_queue_init(&ngx_chat_bans_queue);
    }

    key->data = buf;
    key->len = ngx_sprintf(buf, "%V\n%V", room, user) - buf;

    node = ngx_str_rbtree_lookup(&ngx_chat_bans, key,
                                 ngx_crc32_short(key->data, key->len));

    return (ngx_chat_ban_t *) node;
}


static void
ngx_chat_bans_remove(ngx_chat_ban_t *ban)
{
    ngx_rbtree_delete(&ngx_chat_bans, &ban->node.node);
    ngx_queue_remove(&ban->queue);
    ngx_chat_bans_n--;
    ngx_free(ban);
}
