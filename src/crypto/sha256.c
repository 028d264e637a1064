/* sha256.c - SHA-256 through OpenSSL (see sha256.h for what it owns). */
#include "crypto/sha256.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "common/buf.h"

static void sha256_failed(const char *what)
{
    fprintf(stderr, "cassette: OpenSSL SHA-256 %s failed (out of memory?)\n", what);
    abort();
}

void cs_sha256(const void *p, size_t n, uint8_t out[CS_SHA256_BYTES])
{
    unsigned len = 0;
    if (EVP_Digest(n ? p : "", n, out, &len, EVP_sha256(), NULL) != 1 || len != CS_SHA256_BYTES)
        sha256_failed("digest");
}

void cs_sha256_hex(const void *p, size_t n, char out[CS_SHA256_HEX])
{
    uint8_t d[CS_SHA256_BYTES];
    cs_sha256(p, n, d);
    cs_hex(d, sizeof d, out);
}

void cs_sha256_init(cs_sha256_ctx *h)
{
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
        sha256_failed("start");
}

void cs_sha256_update(cs_sha256_ctx *h, const void *p, size_t n)
{
    /* It only fails on a context that was never started. */
    if (n && EVP_DigestUpdate(h->md, p, n) != 1)
        sha256_failed("update");
}

void cs_sha256_digest(const cs_sha256_ctx *h, uint8_t out[CS_SHA256_BYTES])
{
    /* Finishing twice is not allowed: finish a copy. */
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    unsigned len = 0;
    if (!copy || EVP_MD_CTX_copy_ex(copy, h->md) != 1 || EVP_DigestFinal_ex(copy, out, &len) != 1 ||
        len != CS_SHA256_BYTES)
        sha256_failed("finish");
    EVP_MD_CTX_free(copy);
}

void cs_sha256_free(cs_sha256_ctx *h)
{
    EVP_MD_CTX_free(h->md);
    h->md = NULL;
}
