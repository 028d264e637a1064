/* hkdf.c - HKDF-SHA-256 (RFC 5869) from libsodium's HMAC-SHA-256. */
#include "crypto/hkdf.h"

#include <string.h>

#include <sodium.h>

void hkdf_sha256_extract(uint8_t prk[HKDF_SHA256_LEN], const uint8_t *salt, size_t salt_len,
                         const uint8_t *ikm, size_t ikm_len)
{
    static const uint8_t zeros[HKDF_SHA256_LEN];
    crypto_auth_hmacsha256_state st;
    if (salt_len == 0)
        salt = zeros, salt_len = sizeof zeros;
    crypto_auth_hmacsha256_init(&st, salt, salt_len);
    crypto_auth_hmacsha256_update(&st, ikm, ikm_len);
    crypto_auth_hmacsha256_final(&st, prk);
    sodium_memzero(&st, sizeof st);
}

int hkdf_sha256_expand(uint8_t *out, size_t out_len, const uint8_t prk[HKDF_SHA256_LEN],
                       const uint8_t *info, size_t info_len)
{
    if (out_len > HKDF_SHA256_MAX_OUT)
        return -1;
    crypto_auth_hmacsha256_state st;
    uint8_t t[HKDF_SHA256_LEN];
    size_t done = 0;
    for (unsigned i = 1; done < out_len; i++) {
        uint8_t ctr = (uint8_t)i;
        crypto_auth_hmacsha256_init(&st, prk, HKDF_SHA256_LEN);
        if (i > 1)
            crypto_auth_hmacsha256_update(&st, t, sizeof t);
        crypto_auth_hmacsha256_update(&st, info, info_len);
        crypto_auth_hmacsha256_update(&st, &ctr, 1);
        crypto_auth_hmacsha256_final(&st, t);
        size_t take = out_len - done < sizeof t ? out_len - done : sizeof t;
        memcpy(out + done, t, take);
        done += take;
    }
    sodium_memzero(&st, sizeof st);
    sodium_memzero(t, sizeof t);
    return 0;
}

int hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *ikm, size_t ikm_len,
                const uint8_t *salt, size_t salt_len, const uint8_t *info, size_t info_len)
{
    uint8_t prk[HKDF_SHA256_LEN];
    if (out_len > HKDF_SHA256_MAX_OUT)
        return -1;
    hkdf_sha256_extract(prk, salt, salt_len, ikm, ikm_len);
    int rc = hkdf_sha256_expand(out, out_len, prk, info, info_len);
    sodium_memzero(prk, sizeof prk);
    return rc;
}
