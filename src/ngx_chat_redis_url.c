
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat_redis_url.h"


char *
ngx_chat_redis_parse_url(ngx_conf_t *cf, ngx_str_t *url,
    ngx_chat_redis_conf_t *rc)
{
    u_char     *p, *last, *at, *colon, *slash;
    size_t      len;
    ngx_int_t   db;
    ngx_str_t   path;
    ngx_url_t   u;

    rc->url = *url;
    p = url->data;
    last = p + url->len;

    if (url->len > 5 && ngx_strncmp(p, "unix:", 5) == 0) {

        /* a relative path is relative to the prefix, as nginx's are */

        path.data = p + 5;
        path.len = url->len - 5;

        if (ngx_conf_full_name(cf->cycle, &path, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        rc->path = ngx_pnalloc(cf->pool, path.len + 1);
        if (rc->path == NULL) {
            return NGX_CONF_ERROR;
        }

        (void) ngx_cpystrn(rc->path, path.data, path.len + 1);
        return NGX_CONF_OK;
    }

    if (url->len < 9 || ngx_strncmp(p, "redis://", 8) != 0) {
        return "has an invalid URL: use redis://host:port/db or unix:/path";
    }

    p += 8;

    at = ngx_strlchr(p, last, '@');

    if (at) {
        colon = ngx_strlchr(p, at, ':');

        if (colon == NULL) {
            return "has an invalid URL: use redis://:password@host";
        }

        rc->user.data = p;
        rc->user.len = colon - p;
        rc->password.data = colon + 1;
        rc->password.len = at - colon - 1;

        p = at + 1;
    }

    slash = ngx_strlchr(p, last, '/');

    if (slash) {
        if (slash + 1 < last) {
            db = ngx_atoi(slash + 1, last - slash - 1);
            if (db == NGX_ERROR) {
                return "has an invalid database number";
            }

            rc->db = db;
        }

        last = slash;
    }

    /* hiredis resolves names synchronously: resolve them here, once */

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = p;
    u.url.len = last - p;
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in chat_redis \"%V\"", u.err, url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        return "has a host that does not resolve";
    }

    rc->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (rc->host == NULL) {
        return NGX_CONF_ERROR;
    }

    len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, rc->host,
                        NGX_SOCKADDR_STRLEN, 0);
    rc->host[len] = '\0';
    rc->port = u.port;

    return NGX_CONF_OK;
}
