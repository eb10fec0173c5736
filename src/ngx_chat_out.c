
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_chat_out.h"


/*
 * A connection's queue of shared frames: a frame is queued by reference
 * and written with the others in one socket call per event loop pass.
 */


#define NGX_CHAT_OUT_IOVS  64


static void ngx_chat_out_unlink(ngx_chat_out_t *out,
    ngx_chat_out_link_t *link);


/* the links of all connections, reused */
static ngx_chat_out_link_t  *ngx_chat_out_free_links;


/* queues f, whose reference the queue takes over */

ngx_int_t
ngx_chat_out_push(ngx_chat_out_t *out, ngx_chat_frame_t *f,
    ngx_uint_t answer, ngx_log_t *log)
{
    ngx_chat_out_link_t  *link;

    link = ngx_chat_out_free_links;

    if (link) {
        ngx_chat_out_free_links = link->next;

    } else {
        link = ngx_alloc(sizeof(ngx_chat_out_link_t), log);
        if (link == NULL) {
            ngx_chat_frame_unref(f);
            return NGX_ERROR;
        }
    }

    link->frame = f;
    link->next = NULL;
    link->answer = answer;
    *out->last = link;
    out->last = &link->next;
    out->bytes += ngx_chat_frame_size(f);

    if (answer) {
        out->answers += ngx_chat_frame_size(f);
    }

    return NGX_OK;
}


/*
 * Writes what the socket takes.  NGX_OK: all of it went, or the socket is
 * full (c->write->ready is 0); NGX_ERROR: the connection is broken.
 */

ngx_int_t
ngx_chat_out_flush(ngx_chat_out_t *out, ngx_connection_t *c)
{
    size_t                size, sent;
    ssize_t               n;
    ngx_err_t             err;
    ngx_uint_t            niov;
    struct iovec          iov[NGX_CHAT_OUT_IOVS];
    struct msghdr         msg;
    ngx_chat_frame_t     *f;
    ngx_chat_out_link_t  *link;

    while (out->head) {

        if (!c->write->ready) {
            return NGX_OK;
        }

        size = 0;
        niov = 0;

        for (link = out->head;
             link && niov < NGX_CHAT_OUT_IOVS;
             link = link->next)
        {
            f = link->frame;
            iov[niov].iov_base = f->pos;
            iov[niov].iov_len = ngx_chat_frame_size(f);

            if (niov == 0) {
                iov[0].iov_base = f->pos + out->sent;
                iov[0].iov_len -= out->sent;
            }

            size += iov[niov].iov_len;
            niov++;

            if (c->ssl) {
                break;
            }
        }

        if (c->ssl) {
            n = c->send(c, iov[0].iov_base, iov[0].iov_len);

            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (n == NGX_AGAIN) {
                return NGX_OK;
            }

        } else {

            /* a socket call: write() and writev() pay for the VFS layer */

            if (niov == 1) {
                n = send(c->fd, iov[0].iov_base, iov[0].iov_len, 0);

            } else {
                ngx_memzero(&msg, sizeof(struct msghdr));
                msg.msg_iov = iov;
                msg.msg_iovlen = niov;

                n = sendmsg(c->fd, &msg, 0);
            }

            if (n == -1) {
                err = ngx_socket_errno;

                if (err == NGX_EAGAIN) {
                    c->write->ready = 0;
                    return NGX_OK;
                }

                if (err == NGX_EINTR) {
                    continue;
                }

                ngx_connection_error(c, err, "sendmsg() failed");
                return NGX_ERROR;
            }

            if ((size_t) n < size) {
                c->write->ready = 0;
            }
        }

        c->sent += n;
        out->bytes -= n;
        sent = n;

        while (sent) {
            link = out->head;
            size = ngx_chat_frame_size(link->frame) - out->sent;

            if (sent < size) {
                out->sent += sent;
                break;
            }

            sent -= size;
            out->sent = 0;
            out->head = link->next;

            ngx_chat_out_unlink(out, link);
        }

        if (out->head == NULL) {
            out->last = &out->head;
        }
    }

    return NGX_OK;
}


/* drops what is queued but a frame partly written, or the stream breaks */

void
ngx_chat_out_drop(ngx_chat_out_t *out)
{
    ngx_chat_out_link_t  *link, *next;

    for (link = out->head; link; link = next) {
        next = link->next;

        if (link == out->head && out->sent) {
            continue;
        }

        ngx_chat_out_unlink(out, link);
    }

    if (out->head && out->sent) {
        out->head->next = NULL;
        out->last = &out->head->next;
        out->bytes = ngx_chat_frame_size(out->head->frame) - out->sent;
        out->answers = out->head->answer
                       ? ngx_chat_frame_size(out->head->frame) : 0;
        return;
    }

    ngx_chat_out_init(out);
}


/* the connection is going: everything goes */

void
ngx_chat_out_free(ngx_chat_out_t *out)
{
    ngx_chat_out_drop(out);

    if (out->head) {
        ngx_chat_out_unlink(out, out->head);
        ngx_chat_out_init(out);
    }
}


static void
ngx_chat_out_unlink(ngx_chat_out_t *out, ngx_chat_out_link_t *link)
{
    if (link->answer) {
        out->answers -= ngx_chat_frame_size(link->frame);
    }

    ngx_chat_frame_unref(link->frame);

    link->next = ngx_chat_out_free_links;
    ngx_chat_out_free_links = link;
}
