
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_frame.h"


enum {
    ngx_chat_fp_start = 0,
    ngx_chat_fp_len,
    ngx_chat_fp_ext_len,
    ngx_chat_fp_mask,
    ngx_chat_fp_payload
};


static ngx_int_t ngx_chat_frame_header(ngx_chat_frame_parser_t *fp,
    ngx_chat_frame_event_t *ev);
static ngx_int_t ngx_chat_frame_payload(ngx_chat_frame_parser_t *fp,
    u_char **pos, u_char *last, ngx_chat_frame_event_t *ev);


#define ngx_chat_frame_fail(ev, code)                                         \
    (ev)->close_code = code;                                                  \
    return NGX_ERROR


/*
 * Consumes bytes from *pos up to last.  NGX_OK: *ev holds a chunk of a data
 * message (unmasked in place) or a whole control frame; NGX_AGAIN: all input
 * consumed; NGX_ERROR: ev->close_code says why the connection must close.
 * The parser keeps no payload except that of control frames, so memory per
 * connection does not depend on the size of the frames it is sent.
 */

ngx_int_t
ngx_chat_frame_parse(ngx_chat_frame_parser_t *fp, u_char **pos, u_char *last,
    ngx_chat_frame_event_t *ev)
{
    u_char  c, *p;

    p = *pos;

    while (p < last || fp->state == ngx_chat_fp_payload) {

        switch (fp->state) {

        case ngx_chat_fp_start:
            c = *p++;

            if (c & 0x70) {
                ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
            }

            fp->fin = (c & 0x80) ? 1 : 0;
            fp->opcode = c & 0x0f;

            switch (fp->opcode) {

            case NGX_CHAT_OP_CLOSE:
            case NGX_CHAT_OP_PING:
            case NGX_CHAT_OP_PONG:
                if (!fp->fin) {
                    ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
                }
                break;

            case NGX_CHAT_OP_CONT:
                if (fp->msg_opcode == 0) {
                    ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
                }
                break;

            case NGX_CHAT_OP_TEXT:
            case NGX_CHAT_OP_BINARY:
                if (fp->msg_opcode != 0) {
                    ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
                }

                if (fp->opcode == NGX_CHAT_OP_BINARY && !fp->allow_binary) {
                    ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_DATA);
                }

                fp->msg_opcode = fp->opcode;
                fp->msg_len = 0;
                fp->first = 1;
                ngx_memzero(&fp->utf8, sizeof(ngx_chat_utf8_t));
                break;

            default:
                ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
            }

            fp->state = ngx_chat_fp_len;
            break;

        case ngx_chat_fp_len:
            c = *p++;

            if (!(c & 0x80)) {
                ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
            }

            c &= 0x7f;

            if (fp->opcode & 0x08) {
                if (c > NGX_CHAT_CONTROL_MAX) {
                    ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
                }

                fp->ctl_len = 0;
            }

            fp->left = 0;
            fp->mask_pos = 0;

            if (c == 126) {
                fp->len_bytes = 2;
                fp->ext_len = 2;
                fp->state = ngx_chat_fp_ext_len;
                break;
            }

            if (c == 127) {
                fp->len_bytes = 8;
                fp->ext_len = 8;
                fp->state = ngx_chat_fp_ext_len;
                break;
            }

            fp->left = c;

            if (ngx_chat_frame_header(fp, ev) != NGX_OK) {
                return NGX_ERROR;
            }

            break;

        case ngx_chat_fp_ext_len:
            c = *p++;

            if (fp->len_bytes == 8 && (c & 0x80)) {
                ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
            }

            fp->left = (fp->left << 8) | c;

            if (--fp->len_bytes) {
                break;
            }

            /* RFC 6455 5.2: the minimal number of bytes must be used */

            if (fp->left < 126 || (fp->ext_len == 8 && fp->left <= 0xffff)) {
                ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_PROTOCOL);
            }

            if (ngx_chat_frame_header(fp, ev) != NGX_OK) {
                return NGX_ERROR;
            }

            break;

        case ngx_chat_fp_mask:
            fp->mask[fp->mask_pos++] = *p++;

            if (fp->mask_pos == 4) {
                fp->mask_pos = 0;
                fp->state = ngx_chat_fp_payload;
            }

            break;

        default: /* ngx_chat_fp_payload */
            *pos = p;
            return ngx_chat_frame_payload(fp, pos, last, ev);
        }
    }

    *pos = p;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_chat_frame_header(ngx_chat_frame_parser_t *fp, ngx_chat_frame_event_t *ev)
{
    if (!(fp->opcode & 0x08)) {

        /* refuse an oversized message before any of its payload arrives */

        if (fp->left > fp->max_size
            || fp->msg_len + fp->left > fp->max_size)
        {
            ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_TOO_BIG);
        }

        fp->msg_len += fp->left;
    }

    fp->state = ngx_chat_fp_mask;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_frame_payload(ngx_chat_frame_parser_t *fp, u_char **pos,
    u_char *last, ngx_chat_frame_event_t *ev)
{
    u_char  *p, *start;
    size_t   n, i;

    start = *pos;
    n = (size_t) ngx_min((uint64_t) (last - start), fp->left);

    for (p = start, i = 0; i < n; i++, p++) {
        *p ^= fp->mask[(fp->mask_pos + i) & 3];
    }

    fp->mask_pos = (fp->mask_pos + n) & 3;
    fp->left -= n;
    *pos = start + n;

    if (fp->opcode & 0x08) {
        ngx_memcpy(fp->ctl + fp->ctl_len, start, n);
        fp->ctl_len += n;

        if (fp->left) {
            return NGX_AGAIN;
        }

        fp->state = ngx_chat_fp_start;

        ev->type = NGX_CHAT_FRAME_CONTROL;
        ev->opcode = fp->opcode;
        ev->data = fp->ctl;
        ev->len = fp->ctl_len;

        return NGX_OK;
    }

    if (n == 0 && fp->left) {
        return NGX_AGAIN;
    }

    if (fp->msg_opcode == NGX_CHAT_OP_TEXT
        && ngx_chat_utf8_validate(&fp->utf8, start, n) != NGX_OK)
    {
        ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_UTF8);
    }

    ev->type = NGX_CHAT_FRAME_DATA;
    ev->opcode = fp->msg_opcode;
    ev->data = start;
    ev->len = n;
    ev->first = fp->first;
    ev->last = (fp->left == 0 && fp->fin);

    fp->first = 0;

    if (fp->left == 0) {
        fp->state = ngx_chat_fp_start;

        if (fp->fin) {
            fp->msg_opcode = 0;

            if (ev->opcode == NGX_CHAT_OP_TEXT
                && ngx_chat_utf8_complete(&fp->utf8) != NGX_OK)
            {
                ngx_chat_frame_fail(ev, NGX_CHAT_CLOSE_UTF8);
            }
        }
    }

    return NGX_OK;
}


/*
 * Checks the payload of a received close frame.  Returns 0 when it is
 * valid, with *code set to the status to echo, or the close code to fail
 * the connection with.
 */

ngx_uint_t
ngx_chat_frame_close_check(u_char *data, size_t len, ngx_uint_t *code)
{
    ngx_uint_t       c;
    ngx_chat_utf8_t  utf8;

    *code = NGX_CHAT_CLOSE_NORMAL;

    if (len == 0) {
        return 0;
    }

    if (len == 1) {
        return NGX_CHAT_CLOSE_PROTOCOL;
    }

    c = (data[0] << 8) | data[1];

    if (c < 1000 || c >= 5000
        || c == 1004 || c == 1005 || c == 1006
        || (c > 1011 && c < 3000))
    {
        return NGX_CHAT_CLOSE_PROTOCOL;
    }

    ngx_memzero(&utf8, sizeof(ngx_chat_utf8_t));

    if (ngx_chat_utf8_validate(&utf8, data + 2, len - 2) != NGX_OK
        || ngx_chat_utf8_complete(&utf8) != NGX_OK)
    {
        return NGX_CHAT_CLOSE_UTF8;
    }

    *code = c;

    return 0;
}


ngx_chat_frame_t *
ngx_chat_frame_alloc(size_t size, ngx_log_t *log)
{
    ngx_chat_frame_t  *f;

    f = ngx_alloc(offsetof(ngx_chat_frame_t, data) + NGX_CHAT_HEADER_MAX
                  + size, log);
    if (f == NULL) {
        return NULL;
    }

    f->refs = 1;
    f->seq = 0;
    f->alt = NULL;
    f->event = NGX_CHAT_EVENT_OTHER;
    f->error = 0;
    f->payload = f->data + NGX_CHAT_HEADER_MAX;
    f->pos = f->payload;
    f->last = f->payload;

    return f;
}


void
ngx_chat_frame_free(ngx_chat_frame_t *f)
{
    if (f->alt) {
        ngx_chat_frame_unref(f->alt);
    }

    ngx_free(f);
}


/* writes the header in front of the payload built at f->payload */

void
ngx_chat_frame_seal(ngx_chat_frame_t *f, ngx_uint_t opcode)
{
    u_char  *p;
    size_t   len;

    len = f->last - f->payload;

    if (len < 126) {
        p = f->payload - 2;
        p[1] = (u_char) len;

    } else if (len <= 0xffff) {
        p = f->payload - 4;
        p[1] = 126;
        p[2] = (u_char) (len >> 8);
        p[3] = (u_char) len;

    } else {
        p = f->payload - 10;
        p[1] = 127;
        p[2] = 0;
        p[3] = 0;
        p[4] = 0;
        p[5] = 0;
        p[6] = (u_char) (len >> 24);
        p[7] = (u_char) (len >> 16);
        p[8] = (u_char) (len >> 8);
        p[9] = (u_char) len;
    }

    p[0] = (u_char) (0x80 | opcode);
    f->pos = p;
}


ngx_chat_frame_t *
ngx_chat_frame_control(ngx_uint_t opcode, u_char *data, size_t len,
    ngx_log_t *log)
{
    ngx_chat_frame_t  *f;

    f = ngx_chat_frame_alloc(len, log);
    if (f == NULL) {
        return NULL;
    }

    f->last = f->payload;

    if (len) {
        f->last = ngx_cpymem(f->payload, data, len);
    }

    ngx_chat_frame_seal(f, opcode);

    return f;
}


ngx_chat_frame_t *
ngx_chat_frame_close(ngx_uint_t code, char *reason, ngx_log_t *log)
{
    size_t             len;
    ngx_chat_frame_t  *f;

    len = ngx_min(ngx_strlen(reason), NGX_CHAT_CONTROL_MAX - 2);

    f = ngx_chat_frame_alloc(2 + len, log);
    if (f == NULL) {
        return NULL;
    }

    f->payload[0] = (u_char) (code >> 8);
    f->payload[1] = (u_char) code;
    f->last = ngx_cpymem(f->payload + 2, reason, len);
    ngx_chat_frame_seal(f, NGX_CHAT_OP_CLOSE);

    return f;
}
