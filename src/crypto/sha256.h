/* sha256.h - SHA-256 through OpenSSL's EVP API (its assembly uses the CPU's
 * SHA extensions where there are some).
 *
 * Owns: SHA-256 of bytes, in one call or incrementally, raw or as lowercase
 * hex: the one place cassette computes it. Users: the content hash of files
 * (io/filters), SigV4's payload and request hashes and the S3 delete
 * checksum (storage/sigv4, storage/s3).
 * OpenSSL fails a digest only when out of memory (or when its library is
 * broken): like cs_malloc, that ends the process with a message, so no
 * function here returns an error.
 * Must not: know what it hashes, keep or log the bytes. Not for secrets'
 * MACs (HMAC is sigv4's, HKDF is crypto/hkdf's). */
#ifndef CS_CRYPTO_SHA256_H
#define CS_CRYPTO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CS_SHA256_BYTES 32
#define CS_SHA256_HEX (CS_SHA256_BYTES * 2 + 1) /* lowercase hex and its NUL */

/* One call: the digest of n bytes at p (p may be NULL when n is 0). */
void cs_sha256(const void *p, size_t n, uint8_t out[CS_SHA256_BYTES]);
void cs_sha256_hex(const void *p, size_t n, char out[CS_SHA256_HEX]);

/* Incrementally: init, any number of updates, then the digest (as often as
 * wanted: it finishes a copy, so updates may follow), and free (always,
 * once per init; freeing a zeroed struct does nothing). */
typedef struct cs_sha256_ctx {
    struct evp_md_ctx_st *md; /* OpenSSL's EVP_MD_CTX */
} cs_sha256_ctx;

void cs_sha256_init(cs_sha256_ctx *h);
void cs_sha256_update(cs_sha256_ctx *h, const void *p, size_t n);
void cs_sha256_digest(const cs_sha256_ctx *h, uint8_t out[CS_SHA256_BYTES]);
void cs_sha256_free(cs_sha256_ctx *h);

#endif
