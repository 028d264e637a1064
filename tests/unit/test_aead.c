/* test_aead.c - crypto/aead (ChaCha20-Poly1305 over OpenSSL) against
 * libsodium's crypto_aead_chacha20poly1305_ietf_*, message by message and as
 * the age STREAM payload the age sinks write (serial and parallel), and the
 * failures: a flipped byte in any chunk, a truncated stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/err.h"
#include "crypto/aead.h"
#include "crypto/age.h"
#include "crypto/hkdf.h"
#include "io/sink.h"

#define CHUNK AGE_CHUNK_SIZE
#define ENC (AGE_CHUNK_SIZE + AEAD_TAG_LEN)

static const size_t LENGTHS[] = { 0, 1, 65535, 65536, 65537, 3 * 65536 + 5, 40 * 65536 + 7 };
#define NLENGTHS (sizeof LENGTHS / sizeof LENGTHS[0])

static const char SECRET[] =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";

/* n deterministic pseudo-random bytes (libsodium's seeded generator). */
static uint8_t *make_data(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1), s[randombytes_SEEDBYTES] = { 0 };
    memcpy(s, &seed, sizeof seed);
    randombytes_buf_deterministic(p, n, s);
    return p;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* ---- messages --------------------------------------------------------------- */

/* One context, reused across messages of every length and nonce, gives
 * libsodium's bytes; opening them gives the plaintext back; any flipped
 * byte, a cut tag or another nonce fails with zeros in the output. */
static void test_messages(void **state)
{
    (void)state;
    assert_true(sodium_init() >= 0);
    uint8_t key[AEAD_KEY_LEN], nonce[AEAD_NONCE_LEN];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(0x80 + i);
    aead *a = aead_new(key);
    for (size_t t = 0; t < NLENGTHS; t++) {
        size_t n = LENGTHS[t];
        for (size_t i = 0; i < sizeof nonce; i++)
            nonce[i] = (uint8_t)(t * 13 + i);
        uint8_t *p = make_data(n, (uint32_t)(t + 1));
        uint8_t *want = malloc(n + AEAD_TAG_LEN), *got = malloc(n + AEAD_TAG_LEN);
        uint8_t *back = malloc(n + 1);
        unsigned long long wl = 0;
        crypto_aead_chacha20poly1305_ietf_encrypt(want, &wl, p, n, NULL, 0, NULL, nonce, key);
        assert_int_equal(wl, n + AEAD_TAG_LEN);

        aead_seal(a, got, p, n, nonce);
        assert_memory_equal(got, want, n + AEAD_TAG_LEN);
        memset(got, 0, n + AEAD_TAG_LEN);
        aead_seal_once(key, got, p, n, nonce);
        assert_memory_equal(got, want, n + AEAD_TAG_LEN);
        /* Gathered from pieces: cut at 1, 3 (a zstd block header), 64 (a ChaCha20
         * block) and 16 (a Poly1305 block) bytes, anywhere in the message. */
        static const size_t cuts[] = { 1, 3, 16, 63, 64, 65, 1000 };
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            const uint8_t *in[8];
            size_t len[8], k = 0, at = 0;
            while (at < n && k < 7) {
                len[k] = cuts[(c + k) % (sizeof cuts / sizeof cuts[0])];
                len[k] = len[k] < n - at ? len[k] : n - at;
                in[k] = p + at;
                at += len[k++];
            }
            in[k] = p + at;
            len[k++] = n - at;
            memset(got, 0, n + AEAD_TAG_LEN);
            aead_seal_gather(a, got, in, len, k, nonce);
            assert_memory_equal(got, want, n + AEAD_TAG_LEN);
        }
        memcpy(got, p, n); /* in place */
        aead_seal(a, got, got, n, nonce);
        assert_memory_equal(got, want, n + AEAD_TAG_LEN);

        assert_int_equal(aead_open(a, back, want, n + AEAD_TAG_LEN, nonce), 0);
        assert_memory_equal(back, p, n);
        assert_int_equal(aead_open_once(key, back, want, n + AEAD_TAG_LEN, nonce), 0);
        assert_memory_equal(back, p, n);

        /* A flipped byte anywhere (first, middle, last of the text, the tag). */
        size_t spots[] = { 0, n / 2, n ? n - 1 : 0, n, n + AEAD_TAG_LEN - 1 };
        for (size_t s = 0; s < sizeof spots / sizeof spots[0]; s++) {
            memcpy(got, want, n + AEAD_TAG_LEN);
            got[spots[s]] ^= 0x01;
            memset(back, 0xAA, n + 1);
            assert_int_equal(aead_open(a, back, got, n + AEAD_TAG_LEN, nonce), -1);
            assert_true(all_zero(back, n));
            assert_int_equal(back[n], 0xAA); /* nothing written past the plaintext */
        }
        /* A cut message, another nonce, too short for a tag. */
        if (n > 0) {
            assert_int_equal(aead_open(a, back, want, n + AEAD_TAG_LEN - 1, nonce), -1);
            assert_true(all_zero(back, n - 1));
        }
        nonce[11] ^= 1;
        assert_int_equal(aead_open(a, back, want, n + AEAD_TAG_LEN, nonce), -1);
        assert_int_equal(aead_open(a, back, want, AEAD_TAG_LEN - 1, nonce), -1);
        /* The context still works after failures. */
        nonce[11] ^= 1;
        assert_int_equal(aead_open(a, back, want, n + AEAD_TAG_LEN, nonce), 0);
        assert_memory_equal(back, p, n);
        free(p);
        free(want);
        free(got);
        free(back);
    }
    aead_free(a);
    aead_free(NULL);
}

/* ---- the age payload -------------------------------------------------------- */

/* What an age file with this header and plaintext is, per the spec, sealed
 * chunk by chunk with libsodium. */
static void reference_file(const uint8_t fk[AGE_FILE_KEY_LEN], const cs_buf *hdr,
                           const uint8_t *p, size_t n, cs_buf *out)
{
    uint8_t key[32], nonce[12] = { 0 };
    assert_int_equal(hkdf_sha256(key, sizeof key, fk, AGE_FILE_KEY_LEN,
                                 (const uint8_t *)hdr->data + hdr->len - 16, 16,
                                 (const uint8_t *)"payload", 7),
                     0);
    cs_buf_add(out, hdr->data, hdr->len);
    uint8_t *c = malloc(ENC);
    uint64_t counter = 0;
    size_t off = 0;
    for (;;) {
        size_t take = n - off > CHUNK ? CHUNK : n - off;
        int last = off + take == n;
        for (int i = 0; i < 8; i++)
            nonce[10 - i] = (uint8_t)(counter >> (8 * i));
        nonce[11] = last ? 1 : 0;
        unsigned long long cl = 0;
        crypto_aead_chacha20poly1305_ietf_encrypt(c, &cl, p + off, take, NULL, 0, NULL, nonce,
                                                  key);
        cs_buf_add(out, c, (size_t)cl);
        off += take;
        counter++;
        if (last)
            break;
    }
    free(c);
}

static void with_threads(const char *threads)
{
    if (threads)
        setenv("CASSETTE_AGE_THREADS", threads, 1);
    else
        unsetenv("CASSETTE_AGE_THREADS");
}

/* Encrypt p in one write, or in writes of 1000 bytes (the serial path). */
static void encrypt(age_recipient *r, age_seal *seal, const uint8_t *p, size_t n, int pieces,
                    cs_buf *out)
{
    cs_err e;
    cs_err_clear(&e);
    cs_sink *s = age_encrypt_new_seal(cs_buf_sink_new(out, SIZE_MAX), &r, 1, seal, &e);
    assert_non_null(s);
    for (size_t off = 0; off < n || (n == 0 && off == 0);) {
        size_t take = pieces && n - off > 1000 ? 1000 : n - off;
        assert_int_equal(cs_sink_write(s, p + off, take, &e), 0);
        off += take;
        if (n == 0)
            break;
    }
    assert_int_equal(cs_sink_close(s, &e), 0);
    cs_sink_free(s);
}

/* Decrypt c in one write into out; the error (0: it verified). */
static int decrypt(age_identity *id, const uint8_t *c, size_t n, cs_buf *out)
{
    cs_err e;
    cs_err_clear(&e);
    cs_sink *s = age_decrypt_new(cs_buf_sink_new(out, SIZE_MAX), &id, 1, &e);
    assert_non_null(s);
    int rc = cs_sink_write(s, c, n, &e);
    if (rc == 0)
        rc = cs_sink_close(s, &e);
    cs_sink_free(s);
    return rc;
}

/* The sinks write libsodium's bytes for every length, serial (one thread,
 * small writes) and in parallel batches; they read them back; a flipped
 * byte in any chunk fails with nothing of that chunk or after it
 * released; a stream cut at a chunk boundary or inside a chunk fails. */
static void test_stream(void **state)
{
    (void)state;
    age_identity *id = NULL;
    age_recipient *r = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(age_identity_parse(SECRET, &id, &e), 0);
    assert_int_equal(age_identity_recipient(id, &r, &e), 0);
    static const char *const threads[] = { "1", "2", "4" };
    for (size_t t = 0; t < NLENGTHS; t++) {
        size_t n = LENGTHS[t];
        uint8_t *p = make_data(n, (uint32_t)(t + 7));
        age_seal seal = { { 0 }, CS_BUF_INIT };
        cs_buf first = CS_BUF_INIT, want = CS_BUF_INIT;
        with_threads("1");
        encrypt(r, &seal, p, n, 1, &first);
        reference_file(seal.file_key, &seal.header, p, n, &want);
        assert_int_equal(first.len, want.len);
        assert_memory_equal(first.data, want.data, want.len);
        for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
            cs_buf c = CS_BUF_INIT, back = CS_BUF_INIT;
            with_threads(threads[k]);
            encrypt(r, &seal, p, n, 0, &c);
            assert_int_equal(c.len, want.len);
            assert_memory_equal(c.data, want.data, want.len);
            assert_int_equal(decrypt(id, (const uint8_t *)want.data, want.len, &back), 0);
            assert_int_equal(back.len, n);
            if (n)
                assert_memory_equal(back.data, p, n);
            cs_buf_free(&back);
            cs_buf_free(&c);
        }
        size_t hl = seal.header.len, chunks = (want.len - hl) / ENC + ((want.len - hl) % ENC != 0);
        for (size_t k = 0; k < sizeof threads / sizeof threads[0]; k++) {
            with_threads(threads[k]);
            for (size_t ch = 0; ch < chunks; ch++) {
                size_t start = hl + ch * ENC;
                size_t clen = want.len - start < ENC ? want.len - start : ENC;
                size_t spots[] = { start, start + clen / 2, start + clen - 1 };
                for (size_t s = 0; s < 3; s++) {
                    cs_buf back = CS_BUF_INIT;
                    want.data[spots[s]] ^= 0x20;
                    assert_int_equal(decrypt(id, (const uint8_t *)want.data, want.len, &back),
                                     CS_E_CORRUPT);
                    want.data[spots[s]] ^= 0x20;
                    assert_true(back.len <= ch * CHUNK);
                    if (back.len)
                        assert_memory_equal(back.data, p, back.len);
                    cs_buf_free(&back);
                }
                /* Cut at the start of this chunk (the one before it then is
                 * not final), and inside it. */
                size_t cuts[] = { start, start + clen / 2 };
                for (size_t s = 0; s < 2; s++) {
                    cs_buf back = CS_BUF_INIT;
                    assert_int_equal(decrypt(id, (const uint8_t *)want.data, cuts[s], &back),
                                     CS_E_CORRUPT);
                    assert_true(back.len <= ch * CHUNK);
                    cs_buf_free(&back);
                }
            }
        }
        with_threads(NULL);
        age_seal_wipe(&seal);
        cs_buf_free(&first);
        cs_buf_free(&want);
        free(p);
    }
    age_recipient_free(r);
    age_identity_free(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
