
/*
 * Copyright (C) ngx_chat authors
 */


/*
 * ngx_sprintf and a silent log, for the targets that link no
 * ngx_string.c (the jwt target links nginx's own, and ngx_chat_fuzz_log.c).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <stdarg.h>
#include <stdio.h>


/* only the conversions the fuzzed code uses: %uA %uL %ui %s */

u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);

    while (*fmt) {

        if (*fmt != '%') {
            *buf++ = *fmt++;
            continue;
        }

        fmt++;

        if (*fmt == 's') {
            buf += sprintf((char *) buf, "%s", va_arg(args, char *));
            fmt++;
            continue;
        }

        if (*fmt == 'u') {
            fmt++;
        }

        switch (*fmt++) {
        case 'A':
            buf += sprintf((char *) buf, "%lu",
                           (unsigned long) va_arg(args, ngx_atomic_uint_t));
            break;

        case 'L':
            buf += sprintf((char *) buf, "%llu",
                           (unsigned long long) va_arg(args, uint64_t));
            break;

        default:
            buf += sprintf((char *) buf, "%lu",
                           (unsigned long) va_arg(args, ngx_uint_t));
        }
    }

    va_end(args);

    return buf;
}


void ngx_cdecl
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
}
