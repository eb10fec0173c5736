
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_chat_metrics.h"
#include "ngx_chat_status.h"


/*
 * chat_status: the counters of ngx_chat_status.c as JSON, or in
 * Prometheus' text format when the client asks for it (?format= first,
 * then Accept).
 */

#define NGX_CHAT_METRICS_TEXT_TYPE  "text/plain; version=0.0.4; charset=utf-8"


/* the best match of a media type in Accept, RFC 9110 12.5.1 */

typedef struct {
    ngx_str_t                   type;
    ngx_str_t                   subtype;
    ngx_uint_t                  level;       /* 3 type/sub, 2 type/x, 1 */
    ngx_uint_t                  q;           /* 0 to 1000 */
} ngx_chat_metrics_media_t;


static ngx_uint_t ngx_chat_metrics_wants_text(ngx_http_request_t *r);
static void ngx_chat_metrics_accept(ngx_str_t *value,
    ngx_chat_metrics_media_t *media, ngx_uint_t n);
static ngx_uint_t ngx_chat_metrics_qvalue(u_char **pos, u_char *last);
static ngx_buf_t *ngx_chat_metrics_json(ngx_http_request_t *r,
    ngx_chat_status_snap_t *snap);
static ngx_buf_t *ngx_chat_metrics_prometheus(ngx_http_request_t *r,
    ngx_chat_status_snap_t *snap);
static u_char *ngx_chat_metrics_family(u_char *p, char *metric, char *type,
    char *help);


/* the Redis links of a slot, as labels */

static struct {
    char                       *name;
    ngx_uint_t                  configured;
    ngx_uint_t                  up;
} ngx_chat_metrics_links[] = {
    { "commands", NGX_CHAT_STATUS_REDIS, NGX_CHAT_STATUS_COMMANDS },
    { "subscriber", NGX_CHAT_STATUS_REDIS, NGX_CHAT_STATUS_SUBSCRIBER },
    { "stream", NGX_CHAT_STATUS_WRITER, NGX_CHAT_STATUS_STREAM },
    { NULL, 0, 0 }
};


ngx_int_t
ngx_chat_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_str_t                format;
    ngx_buf_t               *b;
    ngx_uint_t               text;
    ngx_chain_t              out;
    ngx_table_elt_t         *vary;
    ngx_chat_status_snap_t   snap;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* ?format= first, then what the client accepts */

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) != NGX_OK) {
        format.len = 0;
    }

    if (format.len == 10 && ngx_strncmp(format.data, "prometheus", 10) == 0) {
        text = 1;

    } else if (format.len == 4 && ngx_strncmp(format.data, "json", 4) == 0) {
        text = 0;

    } else {
        text = ngx_chat_metrics_wants_text(r);
    }

    ngx_chat_status_refresh();

    rc = ngx_chat_status_snapshot(r, &snap);

    if (rc == NGX_DECLINED) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (text) {
        b = ngx_chat_metrics_prometheus(r, &snap);
        ngx_str_set(&r->headers_out.content_type, NGX_CHAT_METRICS_TEXT_TYPE);

    } else {
        b = ngx_chat_metrics_json(r, &snap);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    vary = ngx_list_push(&r->headers_out.headers);
    if (vary == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(vary, sizeof(ngx_table_elt_t));
    vary->hash = 1;
    ngx_str_set(&vary->key, "Vary");
    ngx_str_set(&vary->value, "Accept");

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Whether the Accept headers rank the text format above JSON.  Each
 * type gets the quality of the most specific media range that matches
 * it; the text format is text/plain or application/openmetrics-text
 * (what a Prometheus scraper asks for first: it reads the text format
 * too).  A tie, or no Accept at all, is JSON's.
 */

static ngx_uint_t
ngx_chat_metrics_wants_text(ngx_http_request_t *r)
{
    ngx_uint_t                i;
    ngx_list_part_t          *part;
    ngx_table_elt_t          *h;
    ngx_chat_metrics_media_t   media[3] = {
        { ngx_string("text"), ngx_string("plain"), 0, 0 },
        { ngx_string("application"), ngx_string("openmetrics-text"), 0, 0 },
        { ngx_string("application"), ngx_string("json"), 0, 0 }
    };

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Accept") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Accept",
                               sizeof("Accept") - 1)
               == 0)
        {
            ngx_chat_metrics_accept(&h[i].value, media, 3);
        }
    }

    return ngx_max(media[0].q, media[1].q) > media[2].q;
}


/* one Accept value: media ranges, each with parameters; q is the one */

static void
ngx_chat_metrics_accept(ngx_str_t *value, ngx_chat_metrics_media_t *media,
    ngx_uint_t n)
{
    u_char                    *p, *last, *type, *sub;
    size_t                     tlen, slen;
    ngx_uint_t                 i, q, level;
    ngx_chat_metrics_media_t  *m;

    p = value->data;
    last = p + value->len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        if (p == last) {
            break;
        }

        type = p;

        while (p < last && *p != '/' && *p != ',' && *p != ';'
               && *p != ' ' && *p != '\t')
        {
            p++;
        }

        tlen = p - type;
        sub = NULL;
        slen = 0;

        if (p < last && *p == '/') {
            sub = ++p;

            while (p < last && *p != ',' && *p != ';'
                   && *p != ' ' && *p != '\t')
            {
                p++;
            }

            slen = p - sub;
        }

        q = 1000;

        while (p < last && *p != ',') {

            if (*p == '"') {
                for (p++; p < last && *p != '"'; p++) {
                    if (*p == '\\' && p + 1 < last) {
                        p++;
                    }
                }

                if (p < last) {
                    p++;
                }

                continue;
            }

            if (*p++ != ';') {
                continue;
            }

            while (p < last && (*p == ' ' || *p == '\t')) {
                p++;
            }

            if (last - p >= 2 && (*p == 'q' || *p == 'Q') && p[1] == '=') {
                p += 2;
                q = ngx_chat_metrics_qvalue(&p, last);
            }
        }

        if (sub == NULL || tlen == 0 || slen == 0) {
            continue;
        }

        for (i = 0; i < n; i++) {
            m = &media[i];

            if (tlen == 1 && type[0] == '*') {
                level = (slen == 1 && sub[0] == '*') ? 1 : 0;

            } else if (tlen == m->type.len
                       && ngx_strncasecmp(type, m->type.data, tlen) == 0)
            {
                if (slen == 1 && sub[0] == '*') {
                    level = 2;

                } else if (slen == m->subtype.len
                           && ngx_strncasecmp(sub, m->subtype.data, slen)
                              == 0)
                {
                    level = 3;

                } else {
                    level = 0;
                }

            } else {
                level = 0;
            }

            if (level > m->level) {
                m->level = level;
                m->q = q;

            } else if (level && level == m->level && q > m->q) {
                m->q = q;
            }
        }
    }
}


/* "0", "0.5", "1.000": thousandths; anything else is 0 */

static ngx_uint_t
ngx_chat_metrics_qvalue(u_char **pos, u_char *last)
{
    u_char      *p;
    ngx_uint_t   q, scale;

    p = *pos;

    if (p == last || *p < '0' || *p > '9') {
        return 0;
    }

    q = (*p++ - '0') * 1000;

    if (p < last && *p == '.') {
        for (p++, scale = 100; p < last && *p >= '0' && *p <= '9'; p++) {
            q += (*p - '0') * scale;
            scale /= 10;
        }
    }

    *pos = p;

    return ngx_min(q, 1000);
}


static ngx_buf_t *
ngx_chat_metrics_json(ngx_http_request_t *r, ngx_chat_status_snap_t *snap)
{
    u_char                   *p;
    size_t                    len;
    ngx_buf_t                *b;
    ngx_uint_t                i, k, links;
    ngx_chat_status_slot_t   *proc;
    ngx_chat_status_field_t  *f;

    len = sizeof("{\"version\":\"" NGX_CHAT_VERSION "\",") - 1
          + NGX_CHAT_STATUS_NFIELDS * (32 + NGX_ATOMIC_T_LEN)
          + sizeof("\"stream\":{\"backlog\":,\"oldest_age\":.000},") - 1
          + 2 * NGX_ATOMIC_T_LEN
          + sizeof("\"workers\":[]}\n") - 1
          + snap->nprocs
            * (sizeof("{\"worker\":\"\",\"pid\":,\"slot\":},") - 1
               + 6 * NGX_CHAT_WORKER_ID_LEN + 2 * NGX_ATOMIC_T_LEN
               + NGX_CHAT_STATUS_NFIELDS * (32 + NGX_ATOMIC_T_LEN)
               + sizeof(",\"redis\":{\"commands\":false,"
                        "\"subscriber\":false,\"stream\":false}") - 1
               + sizeof(",\"postgres\":{\"pool\":,\"up\":}") - 1
               + 2 * NGX_ATOMIC_T_LEN);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_cpymem(b->last, "{\"version\":\"" NGX_CHAT_VERSION "\",",
                   sizeof("{\"version\":\"" NGX_CHAT_VERSION "\",") - 1);

    for (f = ngx_chat_status_fields; f->name; f++) {
        p = ngx_sprintf(p, "\"%s\":%uA,", f->name,
                        ngx_chat_status_value(&snap->total, f));
    }

    if (snap->stream) {
        p = ngx_sprintf(p, "\"stream\":{\"backlog\":%uA,"
                        "\"oldest_age\":%uA.%03uA},",
                        snap->backlog, snap->age / 1000, snap->age % 1000);
    }

    p = ngx_cpymem(p, "\"workers\":[", sizeof("\"workers\":[") - 1);

    for (i = 0; i < snap->nprocs; i++) {
        proc = &snap->procs[i];

        /* worker ids are built from the host name: escape them */

        p = ngx_sprintf(p, "%s{\"worker\":\"", i ? "," : "");
        p = (u_char *) ngx_escape_json(p, proc->worker, proc->worker_len);
        p = ngx_sprintf(p, "\",\"pid\":%uA,\"slot\":%ui", proc->pid,
                        proc->number);

        for (f = ngx_chat_status_fields; f->name; f++) {
            p = ngx_sprintf(p, ",\"%s\":%uA", f->name,
                            ngx_chat_status_value(&proc->counters, f));
        }

        links = proc->links;

        if (links & NGX_CHAT_STATUS_REDIS) {
            p = ngx_cpymem(p, ",\"redis\":{", sizeof(",\"redis\":{") - 1);

            for (k = 0; ngx_chat_metrics_links[k].name; k++) {
                if (links & ngx_chat_metrics_links[k].configured) {
                    p = ngx_sprintf(p, "%s\"%s\":%s", k ? "," : "",
                                    ngx_chat_metrics_links[k].name,
                                    (links & ngx_chat_metrics_links[k].up)
                                    ? "true" : "false");
                }
            }

            *p++ = '}';
        }

        if (proc->pg_pool) {
            p = ngx_sprintf(p, ",\"postgres\":{\"pool\":%uA,\"up\":%uA}",
                            proc->pg_pool, proc->pg_up);
        }

        *p++ = '}';
    }

    p = ngx_cpymem(p, "]}\n", 3);
    b->last = p;

    return b;
}


/*
 * The text format: one family per metric, each sample labelled with the
 * worker number; the sums are left to PromQL.  Counters are shown for
 * every number a process has had, gauges for the numbers with a live
 * process, the link states of its newest process.
 */

static ngx_buf_t *
ngx_chat_metrics_prometheus(ngx_http_request_t *r,
    ngx_chat_status_snap_t *snap)
{
    u_char                    *p;
    size_t                     len;
    ngx_buf_t                 *b;
    ngx_uint_t                 n, k, redis, pg;
    ngx_chat_status_slot_t    *cur;
    ngx_chat_status_field_t   *f;
    ngx_chat_status_series_t  *s;

    len = 4096 + snap->nseries * (NGX_CHAT_STATUS_NFIELDS + 8)
                 * (96 + NGX_ATOMIC_T_LEN);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    p = ngx_chat_metrics_family(b->last, "ngx_chat_build_info", "gauge",
                               "The ngx_chat version, as a label.");
    p = ngx_cpymem(p, "ngx_chat_build_info{version=\"" NGX_CHAT_VERSION
                   "\"} 1\n",
                   sizeof("ngx_chat_build_info{version=\"" NGX_CHAT_VERSION
                          "\"} 1\n") - 1);

    for (f = ngx_chat_status_fields; f->name; f++) {

        if (f->help) {
            p = ngx_chat_metrics_family(p, f->metric, f->type, f->help);
        }

        for (n = 0; n < snap->nseries; n++) {
            s = &snap->series[n];

            if (f->counter ? !s->seen : s->current == NULL) {
                continue;
            }

            p = ngx_sprintf(p, "%s{worker=\"%ui\"%s%s} %uA\n", f->metric, n,
                            f->label ? "," : "", f->label ? f->label : "",
                            ngx_chat_status_value(&s->counters, f));
        }
    }

    redis = 0;
    pg = 0;

    for (n = 0; n < snap->nseries; n++) {
        cur = snap->series[n].current;

        if (cur) {
            redis |= cur->links & NGX_CHAT_STATUS_REDIS;
            pg |= (cur->pg_pool != 0);
        }
    }

    if (redis) {
        p = ngx_chat_metrics_family(p, "ngx_chat_redis_up", "gauge",
                "Whether the worker's connection to Redis is up (1) or "
                "not (0), by link.");

        for (n = 0; n < snap->nseries; n++) {
            cur = snap->series[n].current;

            if (cur == NULL || !(cur->links & NGX_CHAT_STATUS_REDIS)) {
                continue;
            }

            for (k = 0; ngx_chat_metrics_links[k].name; k++) {
                if (cur->links & ngx_chat_metrics_links[k].configured) {
                    p = ngx_sprintf(p, "ngx_chat_redis_up{worker=\"%ui\","
                                    "link=\"%s\"} %d\n", n,
                                    ngx_chat_metrics_links[k].name,
                                    (cur->links & ngx_chat_metrics_links[k].up)
                                    ? 1 : 0);
                }
            }
        }
    }

    if (pg) {
        p = ngx_chat_metrics_family(p, "ngx_chat_postgres_connections",
                "gauge", "Postgres connections of the worker's pool.");

        for (n = 0; n < snap->nseries; n++) {
            cur = snap->series[n].current;

            if (cur && cur->pg_pool) {
                p = ngx_sprintf(p, "ngx_chat_postgres_connections"
                                "{worker=\"%ui\"} %uA\n", n, cur->pg_pool);
            }
        }

        p = ngx_chat_metrics_family(p, "ngx_chat_postgres_connections_up",
                "gauge", "Postgres connections of the worker that are up.");

        for (n = 0; n < snap->nseries; n++) {
            cur = snap->series[n].current;

            if (cur && cur->pg_pool) {
                p = ngx_sprintf(p, "ngx_chat_postgres_connections_up"
                                "{worker=\"%ui\"} %uA\n", n, cur->pg_up);
            }
        }
    }

    if (snap->stream) {
        p = ngx_chat_metrics_family(p, "ngx_chat_stream_backlog", "gauge",
                "Entries of the durable stream not yet written to "
                "Postgres.");
        p = ngx_sprintf(p, "ngx_chat_stream_backlog %uA\n", snap->backlog);

        p = ngx_chat_metrics_family(p, "ngx_chat_stream_oldest_age_seconds",
                "gauge", "Age of the oldest entry of the durable stream "
                "not yet written to Postgres.");
        p = ngx_sprintf(p, "ngx_chat_stream_oldest_age_seconds %uA.%03uA\n",
                        snap->age / 1000, snap->age % 1000);
    }

    b->last = p;

    return b;
}


static u_char *
ngx_chat_metrics_family(u_char *p, char *metric, char *type, char *help)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", metric, help,
                       metric, type);
}
