
/*
 * Copyright (C) ngx_chat authors
 */


/*
 * The JSON protocol decoder on hostile input, and the encoders on whatever
 * strings it lets through, the raw input itself as a user name included:
 * every reply must be valid UTF-8 and parse back to the same strings.
 * The same input is also checked as a message read back from Redis.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_chat.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_encode.h"


static void ngx_chat_fuzz_check(ngx_chat_frame_t *f, ngx_str_t *text);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char              user[NGX_CHAT_USER_MAX];
    ngx_str_t           raw, id, typer;
    ngx_chat_msg_t      msg;
    ngx_chat_frame_t   *f;
    ngx_chat_utf8_t     utf8;
    ngx_chat_request_t  req;

    /* the WebSocket layer lets only valid UTF-8 through to the decoder */

    memset(&utf8, 0, sizeof(utf8));

    if (ngx_chat_utf8_validate(&utf8, (u_char *) data, size) != NGX_OK
        || ngx_chat_utf8_complete(&utf8) != NGX_OK)
    {
        return 0;
    }

    raw.data = (u_char *) data;
    raw.len = size;

    /* as a message read back from Redis for room "r" */

    ngx_str_set(&id, "r");
    f = ngx_chat_decode_stored(&id, raw.data, raw.len, NULL);

    if (f) {
        ngx_chat_fuzz_check(f, NULL);
    }

    /* and as a typing event from a room's channel */

    typer.data = user;
    f = ngx_chat_decode_typing(&id, raw.data, raw.len, &typer, NULL);

    if (f) {
        ngx_chat_fuzz_check(f, NULL);
    }

    /* and as a presence event */

    f = ngx_chat_decode_presence(&id, raw.data, raw.len, &typer,
                                          NULL);

    if (f) {
        ngx_chat_fuzz_check(f, NULL);
    }

    if (ngx_chat_decode_request((u_char *) data, size, &req,
                                 size & 1 ? NGX_CHAT_REQ_SEND : 0) != NGX_OK) {
        ngx_chat_fuzz_check(ngx_chat_encode_error(req.error, req.reason,
                                                    &req.id, NULL), NULL);
        ngx_chat_decode_free(&req);
        return 0;
    }

    memset(&msg, 0, sizeof(msg));
    msg.room = req.room;
    msg.user = raw;
    msg.text = req.text;
    msg.seq = req.since;
    memset(msg.msg_id, 'a', NGX_CHAT_MSG_ID_LEN);

    ngx_chat_fuzz_check(ngx_chat_encode_message(&msg, NULL), &req.text);

    id = req.id;
    ngx_chat_fuzz_check(ngx_chat_encode_ack(&req.room, req.before, &id,
                                              NULL), NULL);

    ngx_chat_decode_free(&req);

    return 0;
}


static void
ngx_chat_fuzz_check(ngx_chat_frame_t *f, ngx_str_t *text)
{
    cJSON            *json, *item;
    ngx_chat_utf8_t   utf8;

    if (f == NULL) {
        abort();
    }

    memset(&utf8, 0, sizeof(utf8));

    if (ngx_chat_utf8_validate(&utf8, f->payload, f->last - f->payload)
        != NGX_OK
        || ngx_chat_utf8_complete(&utf8) != NGX_OK)
    {
        abort();
    }

    json = cJSON_ParseWithLength((char *) f->payload, f->last - f->payload);

    if (json == NULL) {
        abort();
    }

    /* text that came in as valid UTF-8 must come back unchanged */

    if (text && text->data) {
        item = cJSON_GetObjectItemCaseSensitive(json, "text");

        if (!cJSON_IsString(item)
            || strlen(item->valuestring) != text->len
            || memcmp(item->valuestring, text->data, text->len) != 0)
        {
            abort();
        }
    }

    cJSON_Delete(json);
    free(f);
}
