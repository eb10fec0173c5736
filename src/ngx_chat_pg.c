
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_chat.h"
#include "ngx_chat_pg.h"
#include "ngx_chat_worker.h"


#define NGX_CHAT_PG_QUEUE_MAX    4096
#define NGX_CHAT_PG_BACKOFF_MIN  100
#define NGX_CHAT_PG_BACKOFF_MAX  2000


typedef struct {
    ngx_queue_t                 queue;
    const char                 *sql;
    ngx_uint_t                  nparams;
    char                      **values;
    int                        *lengths;
    ngx_chat_pg_handler_pt      handler;
    void                       *data;
    ngx_msec_t                  deadline;
} ngx_chat_pg_query_t;


typedef struct {
    PGconn                     *conn;
    ngx_connection_t           *connection;
    ngx_event_t                 reconnect;
    ngx_event_t                 timer;        /* the connect's, the query's */
    ngx_msec_t                  backoff;
    ngx_chat_pg_query_t        *query;        /* in flight */
    PGresult                   *result;
    unsigned                    connecting:1;
    unsigned                    ready:1;
    unsigned                    down_logged:1;
} ngx_chat_pg_conn_t;


static void ngx_chat_pg_connect(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_reconnect_handler(ngx_event_t *ev);
static ngx_int_t ngx_chat_pg_attach(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_detach(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_close(ngx_chat_pg_conn_t *pc, ngx_uint_t again);
static void ngx_chat_pg_poll(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_events(ngx_chat_pg_conn_t *pc, ngx_uint_t rd,
    ngx_uint_t wr);
static void ngx_chat_pg_read_handler(ngx_event_t *ev);
static void ngx_chat_pg_write_handler(ngx_event_t *ev);
static void ngx_chat_pg_run(void);
static void ngx_chat_pg_send(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_finish(ngx_chat_pg_conn_t *pc, PGresult *res);
static void ngx_chat_pg_timer_handler(ngx_event_t *ev);
static void ngx_chat_pg_expire(ngx_event_t *ev);


static ngx_chat_pg_conn_t  *ngx_chat_pg_conns;
static ngx_uint_t           ngx_chat_pg_nconns;
static ngx_queue_t          ngx_chat_pg_queue;
static ngx_uint_t           ngx_chat_pg_nqueued;
static char                *ngx_chat_pg_conninfo;
static ngx_log_t           *ngx_chat_pg_log;
static ngx_uint_t           ngx_chat_pg_closing;
static ngx_msec_t           ngx_chat_pg_timeout;
static ngx_event_t          ngx_chat_pg_queue_timer;


ngx_int_t
ngx_chat_pg_init(ngx_str_t *conninfo, ngx_uint_t size, ngx_msec_t timeout,
    ngx_log_t *log)
{
    ngx_uint_t  i;

    ngx_chat_pg_log = log;
    ngx_chat_pg_timeout = timeout;
    ngx_queue_init(&ngx_chat_pg_queue);

    ngx_chat_worker_timer(&ngx_chat_pg_queue_timer, ngx_chat_pg_expire, log);

    ngx_chat_pg_conninfo = ngx_alloc(conninfo->len + 1, log);
    if (ngx_chat_pg_conninfo == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn((u_char *) ngx_chat_pg_conninfo, conninfo->data,
                       conninfo->len + 1);

    ngx_chat_pg_conns = ngx_calloc(size * sizeof(ngx_chat_pg_conn_t), log);
    if (ngx_chat_pg_conns == NULL) {
        return NGX_ERROR;
    }

    ngx_chat_pg_nconns = size;

    for (i = 0; i < size; i++) {
        ngx_chat_worker_timer(&ngx_chat_pg_conns[i].reconnect,
                              ngx_chat_pg_reconnect_handler, log);
        ngx_chat_worker_timer(&ngx_chat_pg_conns[i].timer,
                              ngx_chat_pg_timer_handler, log);

        ngx_chat_pg_connect(&ngx_chat_pg_conns[i]);
    }

    return NGX_OK;
}


void
ngx_chat_pg_done(void)
{
    ngx_uint_t            i;
    ngx_queue_t          *q;
    ngx_chat_pg_query_t  *query;

    ngx_chat_pg_closing = 1;

    if (ngx_chat_pg_queue_timer.timer_set) {
        ngx_del_timer(&ngx_chat_pg_queue_timer);
    }

    for (i = 0; i < ngx_chat_pg_nconns; i++) {
        ngx_chat_pg_close(&ngx_chat_pg_conns[i], 0);
    }

    while (!ngx_queue_empty(&ngx_chat_pg_queue)) {
        q = ngx_queue_head(&ngx_chat_pg_queue);
        ngx_queue_remove(q);

        query = ngx_queue_data(q, ngx_chat_pg_query_t, queue);
        query->handler(NULL, query->data);
        ngx_free(query);
    }

    ngx_chat_pg_nqueued = 0;
}


/* chat_postgres is set: the transcript is kept */

ngx_uint_t
ngx_chat_pg_configured(void)
{
    return ngx_chat_pg_nconns != 0;
}


ngx_uint_t
ngx_chat_pg_ready(void)
{
    ngx_uint_t  i;

    for (i = 0; i < ngx_chat_pg_nconns; i++) {
        if (ngx_chat_pg_conns[i].ready) {
            return 1;
        }
    }

    return 0;
}


/* how many of the pool's connections are up */

ngx_uint_t
ngx_chat_pg_up(void)
{
    ngx_uint_t  i, n;

    for (n = 0, i = 0; i < ngx_chat_pg_nconns; i++) {
        n += ngx_chat_pg_conns[i].ready;
    }

    return n;
}


/*
 * Queues a query; the parameters are copied.  NGX_DECLINED: Postgres is
 * not reachable now, or too much is waiting for it.  A query not answered
 * within chat_postgres_timeout of this call gets NULL, waiting or sent.
 */

ngx_int_t
ngx_chat_pg_query(const char *sql, ngx_uint_t nparams, const char **values,
    const int *lengths, ngx_chat_pg_handler_pt handler, void *data)
{
    u_char               *p;
    size_t                size;
    ngx_uint_t            i;
    ngx_chat_pg_query_t  *query;

    if (!ngx_chat_pg_ready()
        || ngx_chat_pg_nqueued >= NGX_CHAT_PG_QUEUE_MAX)
    {
        return NGX_DECLINED;
    }

    size = sizeof(ngx_chat_pg_query_t)
           + nparams * (sizeof(char *) + sizeof(int) + 1);

    for (i = 0; i < nparams; i++) {
        size += lengths[i];
    }

    query = ngx_alloc(size, ngx_chat_pg_log);
    if (query == NULL) {
        return NGX_ERROR;
    }

    query->sql = sql;
    query->nparams = nparams;
    query->handler = handler;
    query->data = data;
    query->deadline = ngx_current_msec + ngx_chat_pg_timeout;
    query->values = (char **) (query + 1);
    query->lengths = (int *) (query->values + nparams);

    p = (u_char *) (query->lengths + nparams);

    for (i = 0; i < nparams; i++) {
        query->values[i] = (char *) p;
        query->lengths[i] = lengths[i];
        p = ngx_cpymem(p, values[i], lengths[i]);
        *p++ = '\0';
    }

    ngx_queue_insert_tail(&ngx_chat_pg_queue, &query->queue);
    ngx_chat_pg_nqueued++;

    if (!ngx_chat_pg_queue_timer.timer_set) {
        ngx_add_timer(&ngx_chat_pg_queue_timer, ngx_chat_pg_timeout);
    }

    ngx_chat_pg_run();

    return NGX_OK;
}


/* the queries that waited in the queue for the timeout, oldest first */

static void
ngx_chat_pg_expire(ngx_event_t *ev)
{
    ngx_uint_t            n;
    ngx_queue_t          *q;
    ngx_msec_int_t        left;
    ngx_chat_pg_query_t  *query;

    for (n = 0; !ngx_queue_empty(&ngx_chat_pg_queue); n++) {
        q = ngx_queue_head(&ngx_chat_pg_queue);
        query = ngx_queue_data(q, ngx_chat_pg_query_t, queue);

        left = (ngx_msec_int_t) (query->deadline - ngx_current_msec);

        if (left > 0) {
            ngx_add_timer(ev, (ngx_msec_t) left);
            break;
        }

        ngx_queue_remove(q);
        ngx_chat_pg_nqueued--;

        query->handler(NULL, query->data);
        ngx_free(query);
    }

    if (n) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_pg_log, 0,
                      "chat: postgres: %ui queries waited %M ms for a "
                      "connection, failed", n, ngx_chat_pg_timeout);
    }
}


/* a connect or a query without an answer: the connection goes */

static void
ngx_chat_pg_timer_handler(ngx_event_t *ev)
{
    ngx_chat_pg_conn_t  *pc;

    pc = (ngx_chat_pg_conn_t *) ((u_char *) ev
                                 - offsetof(ngx_chat_pg_conn_t, timer));

    if (pc->connecting) {
        if (!pc->down_logged) {
            ngx_log_error(NGX_LOG_ERR, ngx_chat_pg_log, 0,
                          "chat: postgres: cannot connect within %M ms",
                          ngx_chat_pg_timeout);
            pc->down_logged = 1;
        }

    } else if (pc->query) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_pg_log, 0,
                      "chat: postgres: no answer in %M ms, reconnecting",
                      ngx_chat_pg_timeout);
        pc->down_logged = 1;

    } else {
        return;
    }

    ngx_chat_pg_close(pc, 1);
    ngx_chat_pg_run();
}


static void
ngx_chat_pg_connect(ngx_chat_pg_conn_t *pc)
{
    pc->conn = PQconnectStart(ngx_chat_pg_conninfo);

    if (pc->conn == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_chat_pg_log, 0,
                      "chat: postgres: out of memory");
        ngx_chat_pg_close(pc, 1);
        return;
    }

    if (PQstatus(pc->conn) == CONNECTION_BAD
        || PQsetnonblocking(pc->conn, 1) != 0
        || ngx_chat_pg_attach(pc) != NGX_OK)
    {
        if (!pc->down_logged) {
            ngx_log_error(NGX_LOG_ERR, ngx_chat_pg_log, 0,
                          "chat: postgres: cannot connect: %s",
                          PQerrorMessage(pc->conn));
            pc->down_logged = 1;
        }

        ngx_chat_pg_close(pc, 1);
        return;
    }

    pc->connecting = 1;

    /* libpq's connect_timeout is not for PQconnectPoll() */

    ngx_add_timer(&pc->timer, ngx_chat_pg_timeout);

    /* PQconnectStart: poll as if PQconnectPoll had asked to write */

    ngx_chat_pg_events(pc, 0, 1);
}


static void
ngx_chat_pg_reconnect_handler(ngx_event_t *ev)
{
    ngx_chat_pg_connect((ngx_chat_pg_conn_t *)
                        ((u_char *) ev
                         - offsetof(ngx_chat_pg_conn_t, reconnect)));
}


static ngx_int_t
ngx_chat_pg_attach(ngx_chat_pg_conn_t *pc)
{
    ngx_connection_t  *c;

    c = ngx_get_connection(PQsocket(pc->conn), ngx_chat_pg_log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = pc;
    c->read->handler = ngx_chat_pg_read_handler;
    c->write->handler = ngx_chat_pg_write_handler;
    c->read->log = ngx_chat_pg_log;
    c->write->log = ngx_chat_pg_log;

    pc->connection = c;

    return NGX_OK;
}


/* libpq owns the socket: nginx only forgets it */

static void
ngx_chat_pg_detach(ngx_chat_pg_conn_t *pc)
{
    ngx_connection_t  *c;

    c = pc->connection;

    if (c == NULL) {
        return;
    }

    ngx_chat_worker_forget(c);

    pc->connection = NULL;
}


static void
ngx_chat_pg_close(ngx_chat_pg_conn_t *pc, ngx_uint_t again)
{
    ngx_chat_pg_detach(pc);

    if (pc->conn) {
        PQfinish(pc->conn);
        pc->conn = NULL;
    }

    pc->connecting = 0;
    pc->ready = 0;

    if (pc->result) {
        PQclear(pc->result);
        pc->result = NULL;
    }

    if (pc->query) {
        ngx_chat_pg_finish(pc, NULL);
    }

    if (pc->reconnect.timer_set) {
        ngx_del_timer(&pc->reconnect);
    }

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    if (!again || ngx_chat_pg_closing || ngx_exiting || ngx_terminate
        || ngx_quit)
    {
        return;
    }

    pc->backoff = pc->backoff ? ngx_min(2 * pc->backoff,
                                        NGX_CHAT_PG_BACKOFF_MAX)
                              : NGX_CHAT_PG_BACKOFF_MIN;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_chat_pg_log, 0,
                   "chat: postgres: reconnecting in %M ms", pc->backoff);

    ngx_add_timer(&pc->reconnect, pc->backoff);
}


static void
ngx_chat_pg_poll(ngx_chat_pg_conn_t *pc)
{
    PostgresPollingStatusType  rc;

    rc = PQconnectPoll(pc->conn);

    switch (rc) {

    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:

        /* libpq may have moved on to another address, another socket */

        if (PQsocket(pc->conn) != pc->connection->fd) {
            ngx_chat_pg_detach(pc);

            if (ngx_chat_pg_attach(pc) != NGX_OK) {
                ngx_chat_pg_close(pc, 1);
                return;
            }
        }

        ngx_chat_pg_events(pc, rc == PGRES_POLLING_READING,
                           rc == PGRES_POLLING_WRITING);
        return;

    case PGRES_POLLING_OK:
        pc->connecting = 0;
        pc->ready = 1;
        pc->backoff = 0;

        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        if (pc->down_logged) {
            ngx_log_error(NGX_LOG_WARN, ngx_chat_pg_log, 0,
                          "chat: postgres: reachable again");
        }

        pc->down_logged = 0;

        ngx_chat_pg_events(pc, 1, 0);
        ngx_chat_pg_run();
        return;

    default:
        break;
    }

    if (!pc->down_logged) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_pg_log, 0,
                      "chat: postgres: cannot connect: %s",
                      PQerrorMessage(pc->conn));
        pc->down_logged = 1;
    }

    ngx_chat_pg_close(pc, 1);
}


/* level-triggered, as libpq reads and writes the socket itself */

static void
ngx_chat_pg_events(ngx_chat_pg_conn_t *pc, ngx_uint_t rd, ngx_uint_t wr)
{
    ngx_chat_worker_watch(pc->connection->read, NGX_READ_EVENT, rd);
    ngx_chat_worker_watch(pc->connection->write, NGX_WRITE_EVENT, wr);
}


static void
ngx_chat_pg_read_handler(ngx_event_t *ev)
{
    PGresult            *res;
    ngx_connection_t    *c;
    ngx_chat_pg_conn_t  *pc;

    c = ev->data;
    pc = c->data;

    if (pc->connecting) {
        ngx_chat_pg_poll(pc);
        return;
    }

    if (!PQconsumeInput(pc->conn)) {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_pg_log, 0,
                      "chat: postgres: connection lost: %s",
                      PQerrorMessage(pc->conn));
        pc->down_logged = 1;
        ngx_chat_pg_close(pc, 1);
        return;
    }

    while (pc->query && !PQisBusy(pc->conn)) {
        res = PQgetResult(pc->conn);

        if (res == NULL) {
            res = pc->result;
            pc->result = NULL;

            ngx_chat_pg_finish(pc, res);

            if (res) {
                PQclear(res);
            }

            ngx_chat_pg_run();
            return;
        }

        if (pc->result) {
            PQclear(pc->result);
        }

        pc->result = res;
    }

    if (PQstatus(pc->conn) == CONNECTION_BAD) {
        ngx_chat_pg_close(pc, 1);
    }
}


static void
ngx_chat_pg_write_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_chat_pg_conn_t  *pc;

    c = ev->data;
    pc = c->data;

    if (pc->connecting) {
        ngx_chat_pg_poll(pc);
        return;
    }

    switch (PQflush(pc->conn)) {

    case 0:
        ngx_chat_pg_events(pc, 1, 0);
        return;

    case 1:
        return;

    default:
        ngx_chat_pg_close(pc, 1);
    }
}


static void
ngx_chat_pg_run(void)
{
    ngx_uint_t           i;
    ngx_chat_pg_conn_t  *pc;

    for (i = 0; i < ngx_chat_pg_nconns; i++) {

        if (ngx_queue_empty(&ngx_chat_pg_queue)) {
            return;
        }

        pc = &ngx_chat_pg_conns[i];

        while (pc->ready && pc->query == NULL
               && !ngx_queue_empty(&ngx_chat_pg_queue))
        {
            ngx_chat_pg_send(pc);
        }
    }
}


static void
ngx_chat_pg_send(ngx_chat_pg_conn_t *pc)
{
    ngx_queue_t          *q;
    ngx_msec_int_t        left;
    ngx_chat_pg_query_t  *query;

    q = ngx_queue_head(&ngx_chat_pg_queue);
    ngx_queue_remove(q);
    ngx_chat_pg_nqueued--;

    query = ngx_queue_data(q, ngx_chat_pg_query_t, queue);

    left = (ngx_msec_int_t) (query->deadline - ngx_current_msec);

    if (left <= 0) {
        /* its time went by in the queue: not the connection's fault */
        query->handler(NULL, query->data);
        ngx_free(query);
        return;
    }

    pc->query = query;

    ngx_add_timer(&pc->timer, (ngx_msec_t) left);

    if (!PQsendQueryParams(pc->conn, query->sql, (int) query->nparams, NULL,
                           (const char * const *) query->values,
                           query->lengths, NULL, 0))
    {
        ngx_log_error(NGX_LOG_ERR, ngx_chat_pg_log, 0,
                      "chat: postgres: cannot send a query: %s",
                      PQerrorMessage(pc->conn));
        ngx_chat_pg_close(pc, 1);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_chat_pg_log, 0,
                   "chat: postgres: query sent, %ui waiting: %*s...",
                   ngx_chat_pg_nqueued,
                   ngx_min(ngx_strlen(query->sql), 40), query->sql);

    switch (PQflush(pc->conn)) {

    case 0:
        return;

    case 1:
        ngx_chat_pg_events(pc, 1, 1);
        return;

    default:
        ngx_chat_pg_close(pc, 1);
    }
}


static void
ngx_chat_pg_finish(ngx_chat_pg_conn_t *pc, PGresult *res)
{
    ngx_chat_pg_query_t  *query;

    query = pc->query;
    pc->query = NULL;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    query->handler(res, query->data);

    ngx_free(query);
}
