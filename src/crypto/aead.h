/* aead.h - ChaCha20-Poly1305 (RFC 8439, 12-byte nonce, 16-byte tag) with a
 * reusable context, over OpenSSL's EVP AEAD interface.
 *
 * Owns: the one AEAD implementation of the age format (crypto/age.c): the
 * 64 KiB STREAM chunks of the payload and the file key wrapped in each
 * stanza. A context is keyed once and then seals or opens any number of
 * messages, each with its own nonce, without allocating: the age sinks keep
 * one per thread that works on their chunks. The output is the standard
 * construction, byte for byte what libsodium's
 * crypto_aead_chacha20poly1305_ietf_* give (tests/unit/test_aead.c checks).
 *
 * Must not: release plaintext that did not authenticate (aead_open wipes its
 * output when the tag does not match), log or keep key material outside the
 * context (which is wiped when freed), or share a context between threads. */
#ifndef CS_CRYPTO_AEAD_H
#define CS_CRYPTO_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_LEN 32
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16
#define AEAD_MAX_MSG (1u << 30) /* longest message one call takes */

typedef struct aead aead;

/* A context keyed with key (copied into OpenSSL's state). Never NULL: like
 * cs_malloc it aborts when OpenSSL cannot make one (out of memory). */
aead *aead_new(const uint8_t key[AEAD_KEY_LEN]);

/* Wipes and frees. NULL is fine. */
void aead_free(aead *a);

/* Seal n bytes of in (n <= AEAD_MAX_MSG, no associated data) into out:
 * n bytes of ciphertext, then the 16-byte tag. out may equal in. */
void aead_seal(aead *a, uint8_t *out, const uint8_t *in, size_t n,
               const uint8_t nonce[AEAD_NONCE_LEN]);

/* aead_seal of the k pieces in[i] (len[i] bytes each) taken as one message
 * of their total length (<= AEAD_MAX_MSG): the same bytes as sealing them
 * gathered into one buffer. out must not overlap them. */
void aead_seal_gather(aead *a, uint8_t *out, const uint8_t *const *in, const size_t *len, size_t k,
                      const uint8_t nonce[AEAD_NONCE_LEN]);

/* Open n bytes of in (ciphertext then tag; AEAD_TAG_LEN <= n <= AEAD_MAX_MSG +
 * AEAD_TAG_LEN) into out (n - AEAD_TAG_LEN bytes). 0 when the tag matches;
 * -1 otherwise, and then out holds zeros, never unauthenticated plaintext. */
int aead_open(aead *a, uint8_t *out, const uint8_t *in, size_t n,
              const uint8_t nonce[AEAD_NONCE_LEN]);

/* One message with a key used once (a context made and freed here). */
void aead_seal_once(const uint8_t key[AEAD_KEY_LEN], uint8_t *out, const uint8_t *in, size_t n,
                    const uint8_t nonce[AEAD_NONCE_LEN]);
int aead_open_once(const uint8_t key[AEAD_KEY_LEN], uint8_t *out, const uint8_t *in, size_t n,
                   const uint8_t nonce[AEAD_NONCE_LEN]);

#endif
