/* hkdf.h - HKDF-SHA-256 (RFC 5869) over libsodium's HMAC-SHA-256.
 *
 * Owns: the extract-then-expand key derivation age uses for its header MAC
 * key, payload key and X25519 wrap keys (libsodium 1.0.18 has no HKDF).
 * Must not: keep or log key material; its HMAC states and the
 * pseudo-random key are wiped before returning. */
#ifndef CS_CRYPTO_HKDF_H
#define CS_CRYPTO_HKDF_H

#include <stddef.h>
#include <stdint.h>

#define HKDF_SHA256_LEN 32
#define HKDF_SHA256_MAX_OUT (255 * HKDF_SHA256_LEN)

/* HKDF-Extract(salt, ikm) into prk (32 bytes). An empty salt (salt_len 0,
 * salt may be NULL) means 32 zero bytes, as RFC 5869 says. */
void hkdf_sha256_extract(uint8_t prk[HKDF_SHA256_LEN], const uint8_t *salt, size_t salt_len,
                         const uint8_t *ikm, size_t ikm_len);

/* HKDF-Expand(prk, info, out_len) into out. Returns -1 (writing nothing)
 * when out_len is above HKDF_SHA256_MAX_OUT, else 0. */
int hkdf_sha256_expand(uint8_t *out, size_t out_len, const uint8_t prk[HKDF_SHA256_LEN],
                       const uint8_t *info, size_t info_len);

/* Extract then expand: out_len bytes of HKDF-SHA-256(ikm, salt, info).
 * Returns -1 when out_len is above HKDF_SHA256_MAX_OUT, else 0. */
int hkdf_sha256(uint8_t *out, size_t out_len, const uint8_t *ikm, size_t ikm_len,
                const uint8_t *salt, size_t salt_len, const uint8_t *info, size_t info_len);

#endif
