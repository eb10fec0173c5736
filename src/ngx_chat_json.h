
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_JSON_H_INCLUDED_
#define _NGX_CHAT_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * JSON string escaping for replies built straight into a frame buffer.
 * Bytes that are not valid UTF-8 come out as U+FFFD, so a reply is always
 * valid UTF-8 and valid JSON whatever bytes went in.
 */

size_t ngx_chat_json_escape_len(u_char *src, size_t len);
u_char *ngx_chat_json_escape(u_char *dst, u_char *src, size_t len);

#define ngx_chat_json_str_len(s)  (ngx_chat_json_escape_len((s)->data,       \
                                                            (s)->len) + 2)
u_char *ngx_chat_json_str(u_char *dst, ngx_str_t *s);


#endif /* _NGX_CHAT_JSON_H_INCLUDED_ */
