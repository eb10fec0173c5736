
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_PG_H_INCLUDED_
#define _NGX_CHAT_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <libpq-fe.h>


/*
 * A pool of libpq connections driven by nginx's event loop: no call
 * blocks.  A query goes to an idle connection or waits in a bounded
 * queue; its handler gets the result (NULL: the query did not run, or
 * got no answer within the timeout, and its connection was dropped).
 */

typedef void (*ngx_chat_pg_handler_pt)(PGresult *res, void *data);


ngx_int_t ngx_chat_pg_init(ngx_str_t *conninfo, ngx_uint_t size,
    ngx_msec_t timeout, ngx_log_t *log);
void ngx_chat_pg_done(void);
ngx_uint_t ngx_chat_pg_configured(void);
ngx_uint_t ngx_chat_pg_ready(void);
ngx_uint_t ngx_chat_pg_up(void);
ngx_int_t ngx_chat_pg_query(const char *sql, ngx_uint_t nparams,
    const char **values, const int *lengths, ngx_chat_pg_handler_pt handler,
    void *data);


#endif /* _NGX_CHAT_PG_H_INCLUDED_ */
