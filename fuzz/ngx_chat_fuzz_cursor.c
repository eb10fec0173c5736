
/*
 * Copyright (C) ngx_chat authors
 */


/*
 * The cursors HTTP clients send, on hostile input: the first byte picks
 * the form (a stream's ?rooms=, a poll's cursor, a stream's rooms and a
 * Last-Event-ID after a newline), the rest is the value, percent-escapes
 * and all.  What is accepted holds at most chat_max_rooms rooms, each a
 * valid name named once; a poll's cursor written back is parsed again to
 * the same rooms and seqs, within the length ngx_chat_cursor_len() said.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_cursor.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_fuzz_stubs.h"


#define NGX_CHAT_FUZZ_MAX_ROOMS  100


static void ngx_chat_fuzz_check(ngx_array_t *list);


static ngx_pool_t  ngx_chat_fuzz_pool_struct;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         *reason;
    u_char       *copy, *nl, *out, *last;
    ngx_int_t     rc;
    ngx_str_t     value, id;
    ngx_uint_t    i;
    ngx_array_t   list, again;
    ngx_chat_cursor_t  *a, *b;

    if (size < 1) {
        return 0;
    }

    /* an exact-size copy: ASan sees a read past the value */

    copy = malloc(size - 1 ? size - 1 : 1);
    if (copy == NULL) {
        abort();
    }

    ngx_memcpy(copy, data + 1, size - 1);
    value.data = copy;
    value.len = size - 1;

    if (ngx_array_init(&list, &ngx_chat_fuzz_pool_struct, 4,
                       sizeof(ngx_chat_cursor_t))
        != NGX_OK)
    {
        abort();
    }

    switch (data[0] % 3) {

    case 0:
        rc = ngx_chat_cursor_rooms(&ngx_chat_fuzz_pool_struct, &value,
                                   NGX_CHAT_FUZZ_MAX_ROOMS, &list, &reason);
        break;

    case 1:
        rc = ngx_chat_cursor_since(&ngx_chat_fuzz_pool_struct, &value,
                                   NGX_CHAT_FUZZ_MAX_ROOMS, &list, 1,
                                   &reason);
        break;

    default:
        nl = memchr(copy, '\n', value.len);
        if (nl == NULL) {
            rc = NGX_DECLINED;
            break;
        }

        id.data = nl + 1;
        id.len = copy + value.len - id.data;
        value.len = nl - copy;

        rc = ngx_chat_cursor_rooms(&ngx_chat_fuzz_pool_struct, &value,
                                   NGX_CHAT_FUZZ_MAX_ROOMS, &list, &reason);
        if (rc == NGX_OK) {
            rc = ngx_chat_cursor_positions(&id, &list, &reason);
        }
    }

    if (rc == NGX_ERROR) {
        abort();
    }

    if (rc == NGX_OK) {
        ngx_chat_fuzz_check(&list);

        /* written, and read again: the same cursor */

        out = malloc(ngx_chat_cursor_len(&list) + 1);
        if (out == NULL) {
            abort();
        }

        last = ngx_chat_cursor_write(out, &list);

        if ((size_t) (last - out) > ngx_chat_cursor_len(&list)) {
            abort();
        }

        value.data = out;
        value.len = last - out;

        if (ngx_array_init(&again, &ngx_chat_fuzz_pool_struct, 4,
                           sizeof(ngx_chat_cursor_t))
            != NGX_OK
            || ngx_chat_cursor_since(&ngx_chat_fuzz_pool_struct, &value,
                                     NGX_CHAT_FUZZ_MAX_ROOMS, &again, 1,
                                     &reason)
               != NGX_OK
            || again.nelts != list.nelts)
        {
            abort();
        }

        a = list.elts;
        b = again.elts;

        for (i = 0; i < list.nelts; i++) {
            if (a[i].room.len != b[i].room.len
                || ngx_memcmp(a[i].room.data, b[i].room.data, a[i].room.len)
                || a[i].has_seq != b[i].has_seq
                || a[i].seq != b[i].seq)
            {
                abort();
            }
        }

        free(out);
    }

    free(copy);
    ngx_chat_fuzz_pool_free();

    return 0;
}


static void
ngx_chat_fuzz_check(ngx_array_t *list)
{
    ngx_uint_t          i, j;
    ngx_chat_cursor_t  *cur;

    if (list->nelts == 0 || list->nelts > NGX_CHAT_FUZZ_MAX_ROOMS) {
        abort();
    }

    cur = list->elts;

    for (i = 0; i < list->nelts; i++) {
        if (!ngx_chat_rooms_name(cur[i].room.data, cur[i].room.len)
            || (!cur[i].has_seq && cur[i].seq)
            || cur[i].seq > 9999999999999999999ULL)
        {
            abort();
        }

        for (j = 0; j < i; j++) {
            if (cur[j].room.len == cur[i].room.len
                && ngx_memcmp(cur[j].room.data, cur[i].room.data,
                              cur[i].room.len) == 0)
            {
                abort();
            }
        }
    }
}
