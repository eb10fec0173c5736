
/*
 * Copyright (C) ngx_chat authors
 */


/*
 * Connection tokens on hostile input.  The input is a token as a client
 * sends it; or, after a first byte 0x01, the JSON of a header and a
 * payload separated by a NUL byte (only a payload: the header is HS256),
 * which the harness encodes and signs with the secret, so that the code
 * behind the signature check is fuzzed too.  A token is accepted only if
 * its signature is the HMAC of what precedes it, at most 8192 bytes long,
 * and a signature changed is refused; the claims of an accepted one are a
 * non-empty user and rooms in the room charset joined by single spaces.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "ngx_chat.h"
#include "ngx_chat_jwt.h"
#include "ngx_chat_rooms.h"
#include "ngx_chat_fuzz_stubs.h"


#define NGX_CHAT_FUZZ_SIGNED  0x01


static u_char *ngx_chat_fuzz_sign(const uint8_t *data, size_t size,
    size_t *len);
static u_char *ngx_chat_fuzz_base64url(u_char *dst, const u_char *src,
    size_t len);
static void ngx_chat_fuzz_mac(u_char *data, size_t len, u_char *sig);
static void ngx_chat_fuzz_claims(cJSON *payload, ngx_str_t *token);


static ngx_str_t  ngx_chat_fuzz_secret =
    ngx_string("ngx_chat fuzz secret, 32 bytes..");

/* every message formatted (ngx_chat_fuzz_log.c) */

static ngx_log_t  ngx_chat_fuzz_log = { NGX_LOG_DEBUG };

static ngx_str_t  ngx_chat_fuzz_header =
    ngx_string("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *dot, sig[43], *copy;
    cJSON      *payload, *again, *sub;
    ngx_str_t   token, user, room;

    if (size && data[0] == NGX_CHAT_FUZZ_SIGNED) {
        token.data = ngx_chat_fuzz_sign(data + 1, size - 1, &token.len);

    } else {
        /* an exact-size copy: ASan sees a read past the token */

        token.len = size;
        token.data = malloc(size ? size : 1);
        if (token.data == NULL) {
            abort();
        }

        ngx_memcpy(token.data, data, size);
    }

    payload = ngx_chat_jwt_verify(&ngx_chat_fuzz_secret, &token,
                                  NGX_CHAT_FUZZ_NOW, &ngx_chat_fuzz_log);

    if (payload) {
        if (token.len > NGX_CHAT_JWT_MAX) {
            abort();
        }

        dot = token.data + token.len;

        while (dot > token.data && dot[-1] != '.') {
            dot--;
        }

        if (dot == token.data || token.data + token.len - dot != 43) {
            abort();
        }

        ngx_chat_fuzz_mac(token.data, dot - 1 - token.data, sig);

        if (ngx_memcmp(sig, dot, 43) != 0) {
            abort();
        }

        ngx_chat_fuzz_claims(payload, &token);
        cJSON_Delete(payload);

        /* the signature's first character carries six bits of the MAC */

        copy = malloc(token.len);
        if (copy == NULL) {
            abort();
        }

        ngx_memcpy(copy, token.data, token.len);
        copy[dot - token.data] = (*dot == 'A') ? 'B' : 'A';

        user.data = copy;
        user.len = token.len;

        again = ngx_chat_jwt_verify(&ngx_chat_fuzz_secret, &user,
                                    NGX_CHAT_FUZZ_NOW, &ngx_chat_fuzz_log);
        if (again) {
            abort();
        }

        free(copy);
    }

    /* a join token, verified at ngx_time() */

    ngx_str_set(&user, "alice");
    ngx_str_set(&room, "r1");

    if (ngx_chat_jwt_join(&ngx_chat_fuzz_secret, &token, &user, &room,
                          &ngx_chat_fuzz_log))
    {
        payload = ngx_chat_jwt_verify(&ngx_chat_fuzz_secret, &token,
                                      NGX_CHAT_FUZZ_NOW, &ngx_chat_fuzz_log);
        if (payload == NULL) {
            abort();
        }

        sub = cJSON_GetObjectItemCaseSensitive(payload, "sub");
        again = cJSON_GetObjectItemCaseSensitive(payload, "room");

        if (!cJSON_IsString(sub) || ngx_strcmp(sub->valuestring, "alice") != 0
            || !cJSON_IsString(again)
            || ngx_strcmp(again->valuestring, "r1") != 0)
        {
            abort();
        }

        cJSON_Delete(payload);
    }

    free(token.data);

    return 0;
}


/* base64url(header) "." base64url(payload) "." base64url(HMAC) */

static u_char *
ngx_chat_fuzz_sign(const uint8_t *data, size_t size, size_t *len)
{
    u_char        *token, *p;
    const u_char  *nul;
    ngx_str_t      head, body;

    nul = memchr(data, '\0', size);

    if (nul) {
        head.data = (u_char *) data;
        head.len = nul - data;
        body.data = (u_char *) nul + 1;
        body.len = size - head.len - 1;

    } else {
        head = ngx_chat_fuzz_header;
        body.data = (u_char *) data;
        body.len = size;
    }

    *len = ngx_base64_encoded_length(head.len) + 1
           + ngx_base64_encoded_length(body.len) + 1 + 43;

    token = malloc(*len);
    if (token == NULL) {
        abort();
    }

    p = ngx_chat_fuzz_base64url(token, head.data, head.len);
    *p++ = '.';
    p = ngx_chat_fuzz_base64url(p, body.data, body.len);

    ngx_chat_fuzz_mac(token, p - token, p + 1);
    *p++ = '.';

    *len = p + 43 - token;

    return token;
}


/* unpadded, the encoder written anew here to check nginx's decoder */

static u_char *
ngx_chat_fuzz_base64url(u_char *dst, const u_char *src, size_t len)
{
    size_t         i;
    uint32_t       n;
    static u_char  abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           "abcdefghijklmnopqrstuvwxyz0123456789-_";

    for (i = 0; i + 3 <= len; i += 3) {
        n = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        *dst++ = abc[n >> 18];
        *dst++ = abc[(n >> 12) & 0x3f];
        *dst++ = abc[(n >> 6) & 0x3f];
        *dst++ = abc[n & 0x3f];
    }

    if (len - i == 1) {
        n = (uint32_t) src[i] << 16;
        *dst++ = abc[n >> 18];
        *dst++ = abc[(n >> 12) & 0x3f];

    } else if (len - i == 2) {
        n = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8;
        *dst++ = abc[n >> 18];
        *dst++ = abc[(n >> 12) & 0x3f];
        *dst++ = abc[(n >> 6) & 0x3f];
    }

    return dst;
}


/* the 43 characters of the HS256 signature of data */

static void
ngx_chat_fuzz_mac(u_char *data, size_t len, u_char *sig)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  n;

    if (HMAC(EVP_sha256(), ngx_chat_fuzz_secret.data,
             (int) ngx_chat_fuzz_secret.len, data, len, mac, &n)
        == NULL
        || n != 32)
    {
        abort();
    }

    if (ngx_chat_fuzz_base64url(sig, mac, 32) != sig + 43) {
        abort();
    }
}


static void
ngx_chat_fuzz_claims(cJSON *payload, ngx_str_t *token)
{
    u_char     *p, *last, *item;
    cJSON      *sub;
    ngx_int_t   rc;
    ngx_str_t   user, rooms;

    rc = ngx_chat_jwt_claims(payload, NULL, &user, &rooms,
                             &ngx_chat_fuzz_log);

    if (rc == NGX_DECLINED) {
        return;
    }

    /* the stub pool never fails */

    if (rc != NGX_OK) {
        abort();
    }

    sub = cJSON_GetObjectItemCaseSensitive(payload, "sub");

    if (user.len == 0
        || !cJSON_IsString(sub)
        || ngx_strlen(sub->valuestring) != user.len
        || ngx_memcmp(sub->valuestring, user.data, user.len) != 0
        || user.len + rooms.len > token->len)
    {
        abort();
    }

    /* names or patterns, each followed by one space but the last */

    p = rooms.data;
    last = rooms.data + rooms.len;

    while (p < last) {
        item = p;

        while (p < last && *p != ' ') {
            p++;
        }

        if (!ngx_chat_rooms_pattern(item, p - item)) {
            abort();
        }

        if (p < last && ++p == last) {
            abort();
        }
    }

    ngx_chat_fuzz_pool_free();
}
