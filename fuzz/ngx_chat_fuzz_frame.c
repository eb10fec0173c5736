
/*
 * Copyright (C) ngx_chat authors
 */


/*
 * The WebSocket frame parser on hostile input: the input is split at a
 * point taken from its first byte, as if it came in two reads; every
 * event must lie inside the input, and the parse of the whole must match
 * the parse of the halves: the same outcome and, when no error ends it,
 * the same data bytes and control frames.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_frame.h"


static ngx_uint_t ngx_chat_fuzz_run(u_char *data, size_t len, size_t split,
    uint64_t *total);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *a, *b;
    size_t       split;
    uint64_t     ta, tb;
    ngx_uint_t   ca, cb;

    if (size < 1) {
        return 0;
    }

    split = data[0] % size;
    data++;
    size--;

    /* the parser unmasks in place: give each run its own copy */

    a = malloc(size + 1);
    b = malloc(size + 1);
    memcpy(a, data, size);
    memcpy(b, data, size);

    ca = ngx_chat_fuzz_run(a, size, size, &ta);
    cb = ngx_chat_fuzz_run(b, size, split, &tb);

    /* a failing message may have handed out its valid first pieces */

    if (ca != cb || (ca == 0 && ta != tb)) {
        abort();
    }

    free(a);
    free(b);

    return 0;
}


static ngx_uint_t
ngx_chat_fuzz_run(u_char *data, size_t len, size_t split, uint64_t *total)
{
    u_char                  *p, *last, *end;
    ngx_int_t                rc;
    ngx_uint_t               code;
    ngx_chat_frame_event_t   ev;
    ngx_chat_frame_parser_t  fp;

    memset(&fp, 0, sizeof(fp));
    fp.max_size = 4096;
    fp.allow_binary = len & 1;

    *total = 0;
    p = data;
    end = data + len;
    last = data + split;

    for ( ;; ) {
        rc = ngx_chat_frame_parse(&fp, &p, last, &ev);

        if (rc == NGX_ERROR) {
            return ev.close_code;
        }

        if (rc == NGX_AGAIN) {
            if (last == end) {
                return 0;
            }

            last = end;
            continue;
        }

        if (ev.type == NGX_CHAT_FRAME_CONTROL) {
            if (ev.len > NGX_CHAT_CONTROL_MAX) {
                abort();
            }

            if (ev.opcode == NGX_CHAT_OP_CLOSE) {
                (void) ngx_chat_frame_close_check(ev.data, ev.len, &code);
            }

        } else if (ev.data < data || ev.data + ev.len > last) {
            abort();
        }

        *total += (ev.type == NGX_CHAT_FRAME_CONTROL) ? 1ULL << 32 : ev.len;
    }
}
