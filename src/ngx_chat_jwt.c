
/*
 * Copyright (C) ngx_chat authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#endif
#include "ngx_chat_jwt.h"
#include "ngx_chat_decode.h"
#include "ngx_chat_rooms.h"


/*
 * HS256 JSON Web Tokens (RFC 7519) as the application signs them: the
 * header must say HS256, the signature is checked in constant time before
 * the payload is read, "exp" is required and "nbf" honoured.  A token
 * refused is logged at info with the reason, never with the token.
 */

#define NGX_CHAT_JWT_SIG_LEN  43    /* 32 bytes, unpadded base64url */


static ngx_int_t ngx_chat_jwt_decode(ngx_str_t *part, u_char *buf,
    char **reason);
static cJSON *ngx_chat_jwt_check(ngx_str_t *secret, ngx_str_t *token,
    time_t now, char **reason);
static ngx_int_t ngx_chat_jwt_hmac(ngx_str_t *secret, u_char *data,
    size_t len, u_char *mac);
static ngx_int_t ngx_chat_jwt_time(cJSON *payload, time_t now,
    char **reason);
static ngx_uint_t ngx_chat_jwt_equal(cJSON *payload, char *name,
    ngx_str_t *value);


#if OPENSSL_VERSION_NUMBER >= 0x30000000L

/*
 * HMAC() looks the digest up and keys a context for each token; the
 * worker keys one for its secret once and copies it
 */

static EVP_MAC_CTX  *ngx_chat_jwt_mac;
static ngx_str_t     ngx_chat_jwt_key;

#endif


cJSON *
ngx_chat_jwt_verify(ngx_str_t *secret, ngx_str_t *token, time_t now,
    ngx_log_t *log)
{
    char   *reason;
    cJSON  *payload;

    reason = NULL;
    payload = ngx_chat_jwt_check(secret, token, now, &reason);

    if (payload == NULL) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "chat: token of %uz bytes refused: %s",
                      token->len, reason);
    }

    return payload;
}


static cJSON *
ngx_chat_jwt_check(ngx_str_t *secret, ngx_str_t *token, time_t now,
    char **reason)
{
    u_char        *dot, *last;
    size_t         signed_len;
    u_char         buf[ngx_base64_decoded_length(NGX_CHAT_JWT_MAX)];
    u_char         mac[32];
    cJSON         *json, *alg;
    ngx_str_t      head, body, sig;

    if (token->len > NGX_CHAT_JWT_MAX) {
        *reason = "over 8192 bytes";
        return NULL;
    }

    last = token->data + token->len;

    head.data = token->data;
    dot = ngx_strlchr(head.data, last, '.');

    body.data = dot ? dot + 1 : NULL;
    dot = dot ? ngx_strlchr(body.data, last, '.') : NULL;

    if (dot == NULL || ngx_strlchr(dot + 1, last, '.') != NULL) {
        *reason = "not three parts";
        return NULL;
    }

    head.len = body.data - 1 - head.data;
    body.len = dot - body.data;
    sig.data = dot + 1;
    sig.len = last - sig.data;
    signed_len = dot - token->data;

    if (ngx_chat_jwt_decode(&head, buf, reason) != NGX_OK) {
        return NULL;
    }

    json = ngx_chat_decode_json(head.data, head.len, reason);
    if (json == NULL) {
        return NULL;
    }

    alg = cJSON_GetObjectItemCaseSensitive(json, "alg");

    if (!cJSON_IsString(alg) || ngx_strcmp(alg->valuestring, "HS256") != 0) {
        cJSON_Delete(json);
        *reason = "\"alg\" is not HS256";
        return NULL;
    }

    /* RFC 7515 4.1.11: extensions a verifier does not know are refused */

    if (cJSON_GetObjectItemCaseSensitive(json, "crit")) {
        cJSON_Delete(json);
        *reason = "\"crit\" header";
        return NULL;
    }

    cJSON_Delete(json);

    if (sig.len != NGX_CHAT_JWT_SIG_LEN
        || ngx_chat_jwt_decode(&sig, buf, reason) != NGX_OK)
    {
        *reason = "malformed signature";
        return NULL;
    }

    if (sig.len != 32
        || ngx_chat_jwt_hmac(secret, token->data, signed_len, mac) != NGX_OK
        || CRYPTO_memcmp(mac, sig.data, 32) != 0)
    {
        *reason = "bad signature";
        return NULL;
    }

    if (ngx_chat_jwt_decode(&body, buf, reason) != NGX_OK) {
        return NULL;
    }

    json = ngx_chat_decode_json(body.data, body.len, reason);
    if (json == NULL) {
        return NULL;
    }

    if (ngx_chat_jwt_time(json, now, reason) != NGX_OK) {
        cJSON_Delete(json);
        return NULL;
    }

    return json;
}


static ngx_int_t
ngx_chat_jwt_hmac(ngx_str_t *secret, u_char *data, size_t len, u_char *mac)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L

    size_t        n;
    EVP_MAC      *hmac;
    ngx_int_t     rc;
    OSSL_PARAM    params[2];
    EVP_MAC_CTX  *ctx;

    if (ngx_chat_jwt_mac == NULL || ngx_chat_jwt_key.data != secret->data
        || ngx_chat_jwt_key.len != secret->len)
    {
        EVP_MAC_CTX_free(ngx_chat_jwt_mac);
        ngx_chat_jwt_mac = NULL;

        hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
        if (hmac == NULL) {
            return NGX_ERROR;
        }

        ctx = EVP_MAC_CTX_new(hmac);
        EVP_MAC_free(hmac);

        if (ctx == NULL) {
            return NGX_ERROR;
        }

        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                     (char *) "SHA256", 0);
        params[1] = OSSL_PARAM_construct_end();

        if (!EVP_MAC_init(ctx, secret->data, secret->len, params)) {
            EVP_MAC_CTX_free(ctx);
            return NGX_ERROR;
        }

        ngx_chat_jwt_mac = ctx;
        ngx_chat_jwt_key = *secret;
    }

    ctx = EVP_MAC_CTX_dup(ngx_chat_jwt_mac);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    n = 0;
    rc = (EVP_MAC_update(ctx, data, len)
          && EVP_MAC_final(ctx, mac, &n, 32) && n == 32)
         ? NGX_OK : NGX_ERROR;

    EVP_MAC_CTX_free(ctx);

    return rc;

#else

    unsigned int  n;

    n = 0;

    return (HMAC(EVP_sha256(), secret->data, (int) secret->len, data, len,
                 mac, &n)
            && n == 32)
           ? NGX_OK : NGX_ERROR;

#endif
}


/*
 * One part, base64url without padding (RFC 7515 2), decoded into buf;
 * part is then the decoded bytes.
 */

static ngx_int_t
ngx_chat_jwt_decode(ngx_str_t *part, u_char *buf, char **reason)
{
    u_char     *p, *last;
    ngx_str_t   dec;

    last = part->data + part->len;

    for (p = part->data; p < last; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            *reason = "malformed base64url";
            return NGX_ERROR;
        }
    }

    dec.data = buf;

    if (part->len == 0 || ngx_decode_base64url(&dec, part) != NGX_OK) {
        *reason = "malformed base64url";
        return NGX_ERROR;
    }

    *part = dec;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_jwt_time(cJSON *payload, time_t now, char **reason)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(payload, "exp");

    if (!cJSON_IsNumber(item)) {
        *reason = "no numeric \"exp\"";
        return NGX_ERROR;
    }

    if (item->valuedouble <= (double) now) {
        *reason = "expired";
        return NGX_ERROR;
    }

    item = cJSON_GetObjectItemCaseSensitive(payload, "nbf");

    if (item == NULL) {
        return NGX_OK;
    }

    if (!cJSON_IsNumber(item)) {
        *reason = "\"nbf\" is not a number";
        return NGX_ERROR;
    }

    if (item->valuedouble > (double) now) {
        *reason = "not valid yet (\"nbf\")";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A connection token's claims: "sub" the user, "rooms" (if any) an array
 * of room names and patterns, joined with spaces as chat_rooms takes them.
 */

ngx_int_t
ngx_chat_jwt_claims(cJSON *payload, ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *rooms, ngx_log_t *log)
{
    u_char  *p;
    char    *reason;
    size_t   len, n;
    cJSON   *sub, *list, *item;

    sub = cJSON_GetObjectItemCaseSensitive(payload, "sub");
    list = cJSON_GetObjectItemCaseSensitive(payload, "rooms");

    len = 0;

    if (!cJSON_IsString(sub) || sub->valuestring[0] == '\0') {
        reason = "no \"sub\" string";
        goto refused;
    }

    if (list && !cJSON_IsArray(list)) {
        reason = "\"rooms\" is not an array";
        goto refused;
    }

    for (item = list ? list->child : NULL; item; item = item->next) {

        if (!cJSON_IsString(item)) {
            reason = "\"rooms\" holds a non-string";
            goto refused;
        }

        n = ngx_strlen(item->valuestring);

        if (!ngx_chat_rooms_name((u_char *) item->valuestring, n)
            && !ngx_chat_rooms_pattern((u_char *) item->valuestring, n))
        {
            reason = "\"rooms\" holds an invalid room name or pattern";
            goto refused;
        }

        len += n + 1;
    }

    user->len = ngx_strlen(sub->valuestring);
    user->data = ngx_pnalloc(pool, user->len + len);
    if (user->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(user->data, sub->valuestring, user->len);

    rooms->data = p;

    for (item = list ? list->child : NULL; item; item = item->next) {
        if (p != rooms->data) {
            *p++ = ' ';
        }

        p = ngx_cpymem(p, item->valuestring, ngx_strlen(item->valuestring));
    }

    rooms->len = p - rooms->data;

    return NGX_OK;

refused:

    ngx_log_error(NGX_LOG_INFO, log, 0, "chat: token refused: %s", reason);

    return NGX_DECLINED;
}


/* a join token: signed for this connection's user and this room */

ngx_uint_t
ngx_chat_jwt_join(ngx_str_t *secret, ngx_str_t *token, ngx_str_t *user,
    ngx_str_t *room, ngx_log_t *log)
{
    cJSON       *payload;
    ngx_uint_t   ok;

    payload = ngx_chat_jwt_verify(secret, token, ngx_time(), log);
    if (payload == NULL) {
        return 0;
    }

    ok = ngx_chat_jwt_equal(payload, "sub", user)
         && ngx_chat_jwt_equal(payload, "room", room);

    if (!ok) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "chat: join token refused: for another user or room");
    }

    cJSON_Delete(payload);

    return ok;
}


static ngx_uint_t
ngx_chat_jwt_equal(cJSON *payload, char *name, ngx_str_t *value)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(payload, name);

    return cJSON_IsString(item)
           && ngx_strlen(item->valuestring) == value->len
           && ngx_strncmp(item->valuestring, value->data, value->len) == 0;
}
