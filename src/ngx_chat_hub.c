
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_hub.h"
#include "ngx_chat_status.h"


/*
 * The worker's rooms: found by name, freed when nothing holds them; a
 * message goes to each member once, in seq order, as one shared frame.
 */


/* messages a joining member may miss before it is closed as too slow */
#define NGX_CHAT_HUB_PENDING_MAX  4096


static ngx_int_t ngx_chat_hub_pend(ngx_chat_member_t *m, ngx_chat_frame_t *f);


static ngx_rbtree_t       ngx_chat_hub_rooms;
static ngx_rbtree_node_t  ngx_chat_hub_sentinel;


void
ngx_chat_hub_init(void)
{
    ngx_rbtree_init(&ngx_chat_hub_rooms, &ngx_chat_hub_sentinel,
                    ngx_str_rbtree_insert_value);
}


ngx_chat_room_t *
ngx_chat_hub_find(ngx_str_t *name)
{
    return (ngx_chat_room_t *) ngx_str_rbtree_lookup(&ngx_chat_hub_rooms,
                                    name, ngx_crc32_short(name->data,
                                                          name->len));
}


/* finds the room, or creates it */

ngx_chat_room_t *
ngx_chat_hub_room(ngx_str_t *name, ngx_log_t *log)
{
    uint32_t          hash;
    ngx_chat_room_t  *room;

    room = ngx_chat_hub_find(name);
    if (room) {
        return room;
    }

    hash = ngx_crc32_short(name->data, name->len);

    room = ngx_calloc(sizeof(ngx_chat_room_t) + name->len, log);
    if (room == NULL) {
        return NULL;
    }

    room->node.str.data = (u_char *) room + sizeof(ngx_chat_room_t);
    room->node.str.len = name->len;
    ngx_memcpy(room->node.str.data, name->data, name->len);

    room->node.node.key = hash;
    ngx_queue_init(&room->members);

    ngx_rbtree_insert(&ngx_chat_hub_rooms, &room->node.node);

    return room;
}


ngx_chat_member_t *
ngx_chat_hub_join(ngx_chat_room_t *room, ngx_chat_peer_t *peer,
    ngx_log_t *log)
{
    ngx_chat_member_t  *m;

    m = ngx_calloc(sizeof(ngx_chat_member_t), log);
    if (m == NULL) {
        return NULL;
    }

    m->room = room;
    m->peer = peer;

    ngx_queue_insert_tail(&room->members, &m->room_link);

    if (room->nmembers++ == 0) {
        ngx_chat_stat_inc(rooms);
    }

    return m;
}


/*
 * The member goes; its room stays, even with nobody in it: the caller
 * tells the store, which releases the room when it is done with it.
 */

void
ngx_chat_hub_leave(ngx_chat_member_t *m)
{
    ngx_chat_room_t  *room;

    room = m->room;

    ngx_queue_remove(&m->room_link);

    while (m->npending) {
        ngx_chat_frame_unref(m->pending[--m->npending]);
    }

    if (m->pending) {
        ngx_free(m->pending);
    }

    ngx_free(m);

    if (--room->nmembers == 0) {
        ngx_chat_stat_dec(rooms);
    }
}


/* frees a room nobody is in, unless the store still keeps state in it */

void
ngx_chat_hub_release(ngx_chat_room_t *room)
{
    if (room->nmembers || room->refs || room->store) {
        return;
    }

    ngx_rbtree_delete(&ngx_chat_hub_rooms, &room->node.node);
    ngx_free(room);
}


/*
 * A message for the room: every member that has finished joining gets it
 * unless it already has it (a replay may have overlapped live messages);
 * a member still joining keeps it until its join is answered.
 */

ngx_uint_t
ngx_chat_hub_deliver(ngx_chat_room_t *room, ngx_chat_frame_t *f)
{
    ngx_uint_t          n;
    ngx_queue_t        *q;
    ngx_chat_member_t  *m;

    n = 0;

    if (f->seq > room->seq) {
        room->seq = f->seq;
    }

    for (q = ngx_queue_head(&room->members);
         q != ngx_queue_sentinel(&room->members);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_chat_member_t, room_link);

        if (!m->ready) {
            (void) ngx_chat_hub_pend(m, f);
            continue;
        }

        if (ngx_chat_hub_send(m, f, 0) == NGX_OK) {
            n++;
        }
    }

    ngx_chat_stat_add(messages_delivered, n);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: room \"%V\": message %uL to %ui members",
                   &room->node.str, f->seq, n);

    return n;
}


/*
 * Sends a message event to one member, once; as an answer when it is
 * part of the member's join (a replay, what arrived meanwhile).
 */

ngx_int_t
ngx_chat_hub_send(ngx_chat_member_t *m, ngx_chat_frame_t *f,
    ngx_uint_t answer)
{
    if (f->seq <= m->seq) {
        return NGX_DECLINED;
    }

    m->seq = f->seq;

    if (answer) {
        return m->peer->transport->reply(m->peer->conn, f);
    }

    return m->peer->transport->deliver(m->peer->conn, f);
}


/* the member's join is answered: what waited goes out, in order */

void
ngx_chat_hub_ready(ngx_chat_member_t *m)
{
    ngx_uint_t  i, n;

    m->ready = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: room \"%V\": joined, %ui held messages follow",
                   &m->room->node.str, m->npending);

    for (n = 0, i = 0; i < m->npending; i++) {
        if (ngx_chat_hub_send(m, m->pending[i], 1) == NGX_OK) {
            n++;
        }

        ngx_chat_frame_unref(m->pending[i]);
    }

    ngx_chat_stat_add(messages_delivered, n);

    m->npending = 0;
}


static ngx_int_t
ngx_chat_hub_pend(ngx_chat_member_t *m, ngx_chat_frame_t *f)
{
    ngx_uint_t          size;
    ngx_chat_frame_t  **pending;

    if (m->npending == m->pending_size) {

        if (m->pending_size == NGX_CHAT_HUB_PENDING_MAX) {
            m->peer->transport->close(m->peer->conn,
                                      NGX_CHAT_CLOSE_TRY_LATER,
                                      "too slow to join");
            return NGX_ERROR;
        }

        size = m->pending_size ? 2 * m->pending_size : 16;

        pending = ngx_alloc(size * sizeof(ngx_chat_frame_t *),
                            ngx_cycle->log);
        if (pending == NULL) {
            return NGX_ERROR;
        }

        if (m->pending) {
            ngx_memcpy(pending, m->pending,
                       m->npending * sizeof(ngx_chat_frame_t *));
            ngx_free(m->pending);
        }

        m->pending = pending;
        m->pending_size = size;
    }

    m->pending[m->npending++] = ngx_chat_frame_ref(f);

    return NGX_OK;
}


/* an event that is not a message: no seq, to members of other users */

void
ngx_chat_hub_signal(ngx_chat_room_t *room, ngx_chat_frame_t *f,
    ngx_str_t *except)
{
    ngx_queue_t         *q;
    ngx_str_t           *user;
    ngx_chat_member_t   *m;

    for (q = ngx_queue_head(&room->members);
         q != ngx_queue_sentinel(&room->members);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_chat_member_t, room_link);
        user = &m->peer->user;

        if (!m->ready
            || (except && user->len == except->len
                && ngx_strncmp(user->data, except->data, user->len) == 0))
        {
            continue;
        }

        (void) m->peer->transport->deliver(m->peer->conn, f);
    }
}


/* does another member of the room, announced, belong to user */

ngx_uint_t
ngx_chat_hub_user_in_room(ngx_chat_room_t *room, ngx_str_t *user,
    ngx_chat_member_t *except)
{
    ngx_queue_t        *q;
    ngx_chat_member_t  *m;

    for (q = ngx_queue_head(&room->members);
         q != ngx_queue_sentinel(&room->members);
         q = ngx_queue_next(q))
    {
        m = ngx_queue_data(q, ngx_chat_member_t, room_link);

        if (m != except && m->announced
            && m->peer->user.len == user->len
            && ngx_strncmp(m->peer->user.data, user->data, user->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}
