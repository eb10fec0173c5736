
/*
 * Copyright (C) ngx_chat authors
 */


/*
 * For the targets that link nginx's own ngx_string.c: each message is
 * formatted as ngx_log.c would, into a buffer of the same size, so a
 * format that does not match its arguments shows up under ASan.
 */

#include <ngx_config.h>
#include <ngx_core.h>


void ngx_cdecl
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    u_char   errstr[NGX_MAX_ERROR_STR];
    va_list  args;

    va_start(args, fmt);
    (void) ngx_vslprintf(errstr, errstr + NGX_MAX_ERROR_STR, fmt, args);
    va_end(args);
}
