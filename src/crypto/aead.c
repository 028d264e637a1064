/* aead.c - ChaCha20-Poly1305 over OpenSSL's EVP (see the header).
 *
 * A context is initialised once with the cipher and the key; each message
 * then only sets its nonce (EVP_CipherInit_ex with no cipher and no key
 * keeps both and restarts the Poly1305 state), runs one update over the
 * whole message and the final, which gives (sealing) or checks (opening)
 * the tag. OpenSSL's provider wipes its state when the context is freed. */
#include "crypto/aead.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/buf.h"

struct aead {
    EVP_CIPHER_CTX *ctx;
};

static void ossl_fail(const char *what)
{
    fprintf(stderr, "cassette: OpenSSL ChaCha20-Poly1305: %s failed\n", what);
    abort();
}

aead *aead_new(const uint8_t key[AEAD_KEY_LEN])
{
    aead *a = cs_calloc(1, sizeof *a);
    a->ctx = EVP_CIPHER_CTX_new();
    if (!a->ctx || EVP_CipherInit_ex(a->ctx, EVP_chacha20_poly1305(), NULL, key, NULL, 1) != 1)
        ossl_fail("key setup");
    return a;
}

void aead_free(aead *a)
{
    if (!a)
        return;
    EVP_CIPHER_CTX_free(a->ctx);
    free(a);
}

/* Start a message: the nonce, the direction. */
static void start(aead *a, const uint8_t nonce[AEAD_NONCE_LEN], int enc)
{
    if (EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, nonce, enc) != 1)
        ossl_fail("nonce setup");
}

void aead_seal(aead *a, uint8_t *out, const uint8_t *in, size_t n,
               const uint8_t nonce[AEAD_NONCE_LEN])
{
    aead_seal_gather(a, out, &in, &n, 1, nonce);
}

/* The stream cipher's update gives back as many bytes as it takes, so each
 * piece's ciphertext lands right after the previous one's. */
void aead_seal_gather(aead *a, uint8_t *out, const uint8_t *const *in, const size_t *len, size_t k,
                      const uint8_t nonce[AEAD_NONCE_LEN])
{
    size_t n = 0;
    int got = 0;
    for (size_t i = 0; i < k; i++) {
        if (len[i] > AEAD_MAX_MSG - n)
            ossl_fail("a message too long");
        n += len[i];
    }
    start(a, nonce, 1);
    for (size_t i = 0, at = 0; i < k; at += len[i], i++)
        if (len[i] > 0 && (EVP_CipherUpdate(a->ctx, out + at, &got, in[i], (int)len[i]) != 1 ||
                           (size_t)got != len[i]))
            ossl_fail("encryption");
    if (EVP_CipherFinal_ex(a->ctx, out + n, &got) != 1 || got != 0 ||
        EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG_LEN, out + n) != 1)
        ossl_fail("the tag");
}

int aead_open(aead *a, uint8_t *out, const uint8_t *in, size_t n,
              const uint8_t nonce[AEAD_NONCE_LEN])
{
    uint8_t tag[AEAD_TAG_LEN];
    int len = 0;
    if (n < AEAD_TAG_LEN || n - AEAD_TAG_LEN > AEAD_MAX_MSG)
        return -1;
    size_t m = n - AEAD_TAG_LEN;
    memcpy(tag, in + m, AEAD_TAG_LEN); /* in and out may overlap */
    start(a, nonce, 0);
    if (m > 0 && (EVP_CipherUpdate(a->ctx, out, &len, in, (int)m) != 1 || (size_t)len != m))
        ossl_fail("decryption");
    if (EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG_LEN, tag) != 1)
        ossl_fail("the tag");
    if (EVP_CipherFinal_ex(a->ctx, out + m, &len) != 1 || len != 0) {
        OPENSSL_cleanse(out, m); /* never leave unauthenticated plaintext */
        return -1;
    }
    return 0;
}

void aead_seal_once(const uint8_t key[AEAD_KEY_LEN], uint8_t *out, const uint8_t *in, size_t n,
                    const uint8_t nonce[AEAD_NONCE_LEN])
{
    aead *a = aead_new(key);
    aead_seal(a, out, in, n, nonce);
    aead_free(a);
}

int aead_open_once(const uint8_t key[AEAD_KEY_LEN], uint8_t *out, const uint8_t *in, size_t n,
                   const uint8_t nonce[AEAD_NONCE_LEN])
{
    aead *a = aead_new(key);
    int rc = aead_open(a, out, in, n, nonce);
    aead_free(a);
    return rc;
}
