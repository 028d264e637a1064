/* test_age.c - crypto/age: keys, Bech32, streaming encrypt/decrypt, tampering,
 * truncation, identity files, armor, and interop with the age CLI
 * (/usr/bin/age, age-keygen; run with fork/exec, files under mkdtemp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "crypto/age.h"
#include "crypto/bech32.h"
#include "crypto/hkdf.h"
#include "io/sink.h"

#define CHUNK AGE_CHUNK_SIZE
#define ENC (AGE_CHUNK_SIZE + 16)

static const char SPEC_SECRET[] =
    "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX";
static const char SPEC_PUBLIC[] = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj";

/* ---- helpers -------------------------------------------------------------- */

static uint8_t *make_data(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

/* A sink appending into a cs_buf that records whether it was closed. */
typedef struct track {
    cs_buf data;
    int closed;
} track;

typedef struct track_sink {
    cs_sink base;
    track *t;
} track_sink;

static int tr_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    (void)e;
    cs_buf_add(&((track_sink *)s)->t->data, p, n);
    return 0;
}

static int tr_close(cs_sink *s, cs_err *e)
{
    (void)e;
    ((track_sink *)s)->t->closed = 1;
    return 0;
}

static void tr_free(cs_sink *s)
{
    free(s);
}

static const cs_sink_ops tr_ops = { tr_write, tr_close, tr_free };

static cs_sink *track_new(track *t)
{
    track_sink *s = calloc(1, sizeof *s);
    s->base.ops = &tr_ops;
    s->t = t;
    memset(t, 0, sizeof *t);
    return &s->base;
}

/* Write p in pieces: 0 = one write, 1 = uneven sizes, 2 = byte by byte. */
/* Write p in writes whose sizes cycle through sizes[]. */
static int write_cycle(cs_sink *s, const uint8_t *p, size_t n, const size_t *sizes, size_t ns,
                       cs_err *e)
{
    size_t off = 0, i = 0;
    while (off < n) {
        size_t c = sizes[i++ % ns];
        if (c > n - off)
            c = n - off;
        int rc = cs_sink_write(s, p + off, c, e);
        if (rc)
            return rc;
        off += c;
    }
    return 0;
}

static int write_pieces(cs_sink *s, const uint8_t *p, size_t n, int mode, cs_err *e)
{
    static const size_t uneven[] = { 1, 7777, 65536, 3, 65553, 300000, 65552, 16 };
    const size_t whole[] = { n ? n : 1 }, bytes[] = { 1 };
    if (mode == 0)
        return write_cycle(s, p, n, whole, 1, e);
    return mode == 2 ? write_cycle(s, p, n, bytes, 1, e) : write_cycle(s, p, n, uneven, 8, e);
}

static void encrypt_buf(age_recipient *const *r, size_t nr, const uint8_t *p, size_t n, int mode,
                        cs_buf *out)
{
    cs_err e;
    cs_err_clear(&e);
    cs_sink *s = age_encrypt_new(cs_buf_sink_new(out, SIZE_MAX), r, nr, &e);
    if (!s)
        fail_msg("age_encrypt_new: %s", e.msg);
    assert_int_equal(write_pieces(s, p, n, mode, &e), 0);
    assert_int_equal(cs_sink_close(s, &e), 0);
    cs_sink_free(s);
}

/* Decrypt into t; returns the first error of the writes or the close. */
static int decrypt_buf(age_identity *const *ids, size_t nids, const void *c, size_t n, int mode,
                       track *t, cs_err *e)
{
    cs_err_clear(e);
    cs_sink *s = age_decrypt_new(track_new(t), ids, nids, e);
    assert_non_null(s);
    int rc = write_pieces(s, c, n, mode, e);
    if (rc == 0)
        rc = cs_sink_close(s, e);
    cs_sink_free(s);
    return rc;
}

static size_t header_len(const cs_buf *ct)
{
    const char *mac = memmem(ct->data, ct->len, "\n--- ", 5);
    assert_non_null(mac);
    const char *nl = memchr(mac + 1, '\n', ct->len - (size_t)(mac + 1 - ct->data));
    assert_non_null(nl);
    return (size_t)(nl + 1 - ct->data);
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- Bech32 and keys ------------------------------------------------------- */

static void test_bech32_bip173(void **state)
{
    (void)state;
    static const char *valid[] = {
        "A12UEL5L",
        "a12uel5l",
        "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
        "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    };
    static const char *invalid[] = {
        " 1nwldj5",   /* hrp character out of range */
        ("\x7f" "1axkwrx"), /* DEL in the hrp */
        "pzry9x0s0muk", /* no separator */
        "1pzry9x0s0muk", /* empty hrp */
        "x1b4n0q5v",  /* invalid data character */
        "li1dgmt3",   /* checksum too short */
        "de1lg7wt\xff", /* invalid character in checksum */
        "A1G7SGD8",   /* checksum computed with an uppercase hrp */
        "10a06t8",    /* empty hrp */
        "1qzzfhee",   /* empty hrp */
        "A12uEL5L",   /* mixed case */
        "a12uel5m",   /* bad checksum */
    };
    char hrp[100];
    uint8_t data[128];
    size_t n;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++)
        if (bech32_decode(valid[i], strlen(valid[i]), hrp, sizeof hrp, data, sizeof data, &n))
            fail_msg("valid bech32 %s rejected", valid[i]);
    /* A valid checksum over 89 five-bit groups: 5 bits left over, which
     * is not a whole number of bytes (age keys are bytes), so rejected. */
    const char *odd = "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
                      "qqqqqqqqqqqqqqqqqqc8247j";
    assert_int_equal(bech32_decode(odd, strlen(odd), hrp, sizeof hrp, data, sizeof data, &n), -1);
    assert_int_equal(bech32_decode("A12UEL5L", 8, hrp, sizeof hrp, data, sizeof data, &n), 0);
    assert_string_equal(hrp, "A"); /* case preserved */
    assert_int_equal(n, 0);
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        if (!bech32_decode(invalid[i], strlen(invalid[i]), hrp, sizeof hrp, data, sizeof data, &n))
            fail_msg("invalid bech32 #%zu accepted", i);
    /* The buffers are bounds: a too small hrp or data buffer is an error. */
    assert_int_equal(bech32_decode(valid[3], strlen(valid[3]), hrp, 6, data, sizeof data, &n), -1);
    assert_int_equal(bech32_decode(valid[3], strlen(valid[3]), hrp, sizeof hrp, data, 19, &n), -1);
    assert_int_equal(bech32_decode(valid[3], strlen(valid[3]), hrp, sizeof hrp, data, 20, &n), 0);
    assert_int_equal(n, 20);
}

static void test_bech32_roundtrip(void **state)
{
    (void)state;
    cs_buf s = CS_BUF_INIT;
    char hrp[32];
    uint8_t back[128];
    size_t n;
    for (size_t len = 0; len <= 100; len++) {
        uint8_t *data = make_data(len, (uint32_t)len + 1);
        for (int up = 0; up <= 1; up++) {
            cs_buf_reset(&s);
            assert_int_equal(bech32_encode(&s, up ? "age-secret-key-" : "age", data, len, up), 0);
            assert_int_equal(bech32_decode(s.data, s.len, hrp, sizeof hrp, back, sizeof back, &n), 0);
            assert_string_equal(hrp, up ? "AGE-SECRET-KEY-" : "age");
            assert_int_equal(n, len);
            if (len)
                assert_memory_equal(back, data, len);
            /* Any single changed character is caught by the checksum. */
            size_t sep = strlen(hrp);
            for (size_t i = sep + 1; i < s.len; i++) {
                char saved = s.data[i];
                s.data[i] = saved == 'q' || saved == 'Q' ? (up ? 'P' : 'p') : (up ? 'Q' : 'q');
                assert_int_equal(
                    bech32_decode(s.data, s.len, hrp, sizeof hrp, back, sizeof back, &n), -1);
                s.data[i] = saved;
            }
        }
        free(data);
    }
    /* An uppercase or empty hrp cannot be encoded. */
    assert_int_equal(bech32_encode(&s, "AGE", back, 1, 0), -1);
    assert_int_equal(bech32_encode(&s, "", back, 1, 0), -1);
    cs_buf_free(&s);
}

static void test_keys(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    age_identity *id = NULL;
    age_recipient *r = NULL;
    cs_buf s = CS_BUF_INIT;

    /* The spec's example pair. */
    assert_int_equal(age_identity_parse(SPEC_SECRET, &id, &e), 0);
    assert_int_equal(age_identity_public_string(id, &s, &e), 0);
    assert_string_equal(cs_buf_str(&s), SPEC_PUBLIC);
    cs_buf_reset(&s);
    assert_int_equal(age_identity_secret_string(id, &s, &e), 0);
    assert_string_equal(cs_buf_str(&s), SPEC_SECRET);
    age_buf_wipe(&s);
    assert_int_equal(age_identity_recipient(id, &r, &e), 0);
    assert_int_equal(age_recipient_string(r, &s, &e), 0);
    assert_string_equal(cs_buf_str(&s), SPEC_PUBLIC);
    cs_buf_reset(&s);
    age_recipient_free(r);
    age_identity_free(id);
    assert_int_equal(age_recipient_parse(SPEC_PUBLIC, &r, &e), 0);
    age_recipient_free(r);

    /* Rejections, with messages that never echo the key. */
    char lower[sizeof SPEC_SECRET];
    for (size_t i = 0; i < sizeof SPEC_SECRET; i++)
        lower[i] = (char)((SPEC_SECRET[i] >= 'A' && SPEC_SECRET[i] <= 'Z') ? SPEC_SECRET[i] + 32
                                                                             : SPEC_SECRET[i]);
    const char *bad_ids[] = {
        lower,
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEY",
        "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAE",
        " AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX",
        SPEC_PUBLIC,
        "",
    };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        cs_err_clear(&e);
        assert_int_equal(age_identity_parse(bad_ids[i], &id, &e), CS_E_INVAL);
        assert_null(id);
        assert_null(strstr(e.msg, "GFPYYSJZ"));
        assert_null(strstr(e.msg, "gfpyysjz"));
    }
    assert_int_equal(age_identity_parse("AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR", &id, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "post-quantum"));
    const char *bad_rcpts[] = {
        "AGE1ZVKYG2LQZRAA2LNJVQEJ32NKUU0UES2S82HZRYE869XEEXVN73EQUNUJWJ",
        "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwk",
        SPEC_SECRET,
        "age1",
    };
    for (size_t i = 0; i < sizeof bad_rcpts / sizeof bad_rcpts[0]; i++) {
        assert_int_equal(age_recipient_parse(bad_rcpts[i], &r, &e), CS_E_INVAL);
        assert_null(r);
        assert_null(strstr(e.msg, "GFPYYSJZ"));
    }
    /* Wrong length, and a low-order point (all zero). */
    uint8_t zero[32] = { 0 };
    cs_buf_reset(&s);
    bech32_encode(&s, "age", zero, 31, 0);
    assert_int_equal(age_recipient_parse(cs_buf_str(&s), &r, &e), CS_E_INVAL);
    cs_buf_reset(&s);
    bech32_encode(&s, "age", zero, 32, 0);
    assert_int_equal(age_recipient_parse(cs_buf_str(&s), &r, &e), CS_E_INVAL);
    assert_int_equal(age_recipient_parse("age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y", &r, &e),
                     CS_E_INVAL);
    assert_non_null(strstr(e.msg, "post-quantum"));
    cs_buf_free(&s);

    /* Passphrase keys have no strings. */
    assert_int_equal(age_identity_scrypt_new("pw", 0, &id, &e), 0);
    assert_int_equal(age_identity_secret_string(id, &s, &e), CS_E_INVAL);
    assert_int_equal(age_identity_public_string(id, &s, &e), CS_E_INVAL);
    assert_int_equal(age_identity_recipient(id, &r, &e), CS_E_INVAL);
    age_identity_free(id);
    assert_int_equal(age_recipient_scrypt_new("pw", 0, &r, &e), 0);
    assert_int_equal(age_recipient_string(r, &s, &e), CS_E_INVAL);
    age_recipient_free(r);
    assert_int_equal(age_recipient_scrypt_new("", 10, &r, &e), CS_E_INVAL);
    assert_int_equal(age_recipient_scrypt_new("pw", 31, &r, &e), CS_E_INVAL);
    assert_int_equal(age_recipient_scrypt_new("pw", -1, &r, &e), CS_E_INVAL);
    assert_int_equal(age_identity_scrypt_new("pw", 31, &id, &e), CS_E_INVAL);
    assert_int_equal(age_identity_scrypt_new("", 0, &id, &e), CS_E_INVAL);
    cs_buf_free(&s);
}

static void test_keygen(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    age_identity *a = age_keygen(), *b = age_keygen(), *back = NULL;
    cs_buf sa = CS_BUF_INIT, sb = CS_BUF_INIT, pa = CS_BUF_INIT, pback = CS_BUF_INIT;
    assert_int_equal(age_identity_secret_string(a, &sa, &e), 0);
    assert_int_equal(age_identity_secret_string(b, &sb, &e), 0);
    assert_true(starts(cs_buf_str(&sa), "AGE-SECRET-KEY-1"));
    assert_int_equal(sa.len, 74);
    assert_string_not_equal(cs_buf_str(&sa), cs_buf_str(&sb));
    assert_int_equal(age_identity_public_string(a, &pa, &e), 0);
    assert_true(starts(cs_buf_str(&pa), "age1"));
    assert_int_equal(pa.len, 62);
    assert_int_equal(age_identity_parse(cs_buf_str(&sa), &back, &e), 0);
    assert_int_equal(age_identity_public_string(back, &pback, &e), 0);
    assert_string_equal(cs_buf_str(&pa), cs_buf_str(&pback));
    age_recipient *r = NULL;
    assert_int_equal(age_recipient_parse(cs_buf_str(&pa), &r, &e), 0);

    /* What is encrypted to the public key opens with the secret one only. */
    cs_buf ct = CS_BUF_INIT;
    track t;
    encrypt_buf(&r, 1, (const uint8_t *)"hello", 5, 0, &ct);
    assert_int_equal(decrypt_buf(&back, 1, ct.data, ct.len, 0, &t, &e), 0);
    assert_int_equal(t.data.len, 5);
    assert_memory_equal(t.data.data, "hello", 5);
    cs_buf_free(&t.data);
    assert_int_equal(decrypt_buf(&b, 1, ct.data, ct.len, 0, &t, &e), CS_E_NOKEY);
    assert_string_equal(e.msg, "no identity matches");
    assert_int_equal(t.data.len, 0);
    assert_false(t.closed);
    cs_buf_free(&t.data);

    cs_buf_free(&ct);
    age_recipient_free(r);
    age_buf_wipe(&sa);
    age_buf_wipe(&sb);
    cs_buf_free(&pa);
    cs_buf_free(&pback);
    age_identity_free(a);
    age_identity_free(b);
    age_identity_free(back);
}

static void test_hkdf_rfc5869(void **state)
{
    (void)state;
    /* RFC 5869 test case 1. */
    uint8_t ikm[22], salt[13], info[10], okm[42];
    memset(ikm, 0x0b, sizeof ikm);
    for (size_t i = 0; i < sizeof salt; i++)
        salt[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof info; i++)
        info[i] = (uint8_t)(0xf0 + i);
    assert_int_equal(hkdf_sha256(okm, sizeof okm, ikm, sizeof ikm, salt, sizeof salt, info,
                                 sizeof info), 0);
    char hex[2 * sizeof okm + 1];
    cs_hex(okm, sizeof okm, hex);
    assert_string_equal(hex, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
                             "34007208d5b887185865");
    /* Test case 3: empty salt and info. */
    assert_int_equal(hkdf_sha256(okm, sizeof okm, ikm, sizeof ikm, NULL, 0, NULL, 0), 0);
    cs_hex(okm, sizeof okm, hex);
    assert_string_equal(hex, "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
                             "9d201395faa4b61a96c8");
    assert_int_equal(hkdf_sha256(okm, 255 * 32 + 1, ikm, sizeof ikm, NULL, 0, NULL, 0), -1);
}

/* ---- round trips ------------------------------------------------------------ */

static void roundtrip(size_t n, size_t nrcpt)
{
    cs_err e;
    cs_err_clear(&e);
    age_identity *ids[3];
    age_recipient *rs[3];
    for (size_t i = 0; i < nrcpt; i++) {
        ids[i] = age_keygen();
        assert_int_equal(age_identity_recipient(ids[i], &rs[i], &e), 0);
    }
    uint8_t *data = make_data(n, (uint32_t)(n * 31 + nrcpt));
    cs_buf ct = CS_BUF_INIT;
    encrypt_buf(rs, nrcpt, data, n, n < 300000 ? 1 : 0, &ct);

    /* Size: header, nonce, then every chunk's tag (an empty file has one). */
    size_t chunks = n == 0 ? 1 : (n + CHUNK - 1) / CHUNK;
    size_t hl = header_len(&ct);
    assert_int_equal(ct.len, hl + 16 + n + 16 * chunks);
    assert_true(starts(ct.data, "age-encryption.org/v1\n-> X25519 "));

    for (size_t i = 0; i < nrcpt; i++) {
        for (int mode = 0; mode <= 1; mode++) {
            track t;
            if (decrypt_buf(&ids[i], 1, ct.data, ct.len, mode, &t, &e) != 0)
                fail_msg("decrypt %zu bytes, identity %zu: %s", n, i, e.msg);
            assert_true(t.closed);
            assert_int_equal(t.data.len, n);
            if (n)
                assert_memory_equal(t.data.data, data, n);
            cs_buf_free(&t.data);
        }
    }
    /* All identities at once, the matching one last. */
    age_identity *other = age_keygen();
    age_identity *list[2] = { other, ids[nrcpt - 1] };
    track t;
    assert_int_equal(decrypt_buf(list, 2, ct.data, ct.len, 0, &t, &e), 0);
    assert_int_equal(t.data.len, n);
    cs_buf_free(&t.data);
    assert_int_equal(decrypt_buf(&other, 1, ct.data, ct.len, 1, &t, &e), CS_E_NOKEY);
    assert_int_equal(t.data.len, 0);
    cs_buf_free(&t.data);

    age_identity_free(other);
    cs_buf_free(&ct);
    free(data);
    for (size_t i = 0; i < nrcpt; i++) {
        age_identity_free(ids[i]);
        age_recipient_free(rs[i]);
    }
}

static void test_roundtrip_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = { 0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17,
                                    (3u << 20) + 5 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        roundtrip(sizes[i], 1);
        roundtrip(sizes[i], 3);
    }
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    cs_err e;
    age_identity *id = age_keygen();
    age_recipient *r = NULL;
    assert_int_equal(age_identity_recipient(id, &r, &e), 0);
    size_t n = 2 * CHUNK + 100;
    uint8_t *data = make_data(n, 99);
    cs_buf ct = CS_BUF_INIT;
    encrypt_buf(&r, 1, data, n, 2, &ct);
    track t;
    assert_int_equal(decrypt_buf(&id, 1, ct.data, ct.len, 2, &t, &e), 0);
    assert_int_equal(t.data.len, n);
    assert_memory_equal(t.data.data, data, n);
    cs_buf_free(&t.data);
    cs_buf_free(&ct);
    free(data);
    age_recipient_free(r);
    age_identity_free(id);
}

static void test_scrypt(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    age_recipient *r = NULL;
    age_identity *id = NULL, *wrong = NULL, *low = NULL, *x = age_keygen();
    assert_int_equal(age_recipient_scrypt_new("correct horse", 10, &r, &e), 0);
    assert_int_equal(age_identity_scrypt_new("correct horse", 0, &id, &e), 0);
    assert_int_equal(age_identity_scrypt_new("battery staple", 0, &wrong, &e), 0);
    assert_int_equal(age_identity_scrypt_new("correct horse", 9, &low, &e), 0);
    size_t n = CHUNK + 1000;
    uint8_t *data = make_data(n, 5);
    cs_buf ct = CS_BUF_INIT;
    encrypt_buf(&r, 1, data, n, 1, &ct);
    assert_true(starts(ct.data, "age-encryption.org/v1\n-> scrypt "));
    assert_non_null(memmem(ct.data, header_len(&ct), " 10\n", 4));

    track t;
    assert_int_equal(decrypt_buf(&id, 1, ct.data, ct.len, 1, &t, &e), 0);
    assert_int_equal(t.data.len, n);
    assert_memory_equal(t.data.data, data, n);
    cs_buf_free(&t.data);
    assert_int_equal(decrypt_buf(&wrong, 1, ct.data, ct.len, 0, &t, &e), CS_E_NOKEY);
    cs_buf_free(&t.data);
    assert_int_equal(decrypt_buf(&x, 1, ct.data, ct.len, 0, &t, &e), CS_E_NOKEY);
    cs_buf_free(&t.data);
    /* Above the identity's work factor limit: refused before any work. */
    assert_int_equal(decrypt_buf(&low, 1, ct.data, ct.len, 0, &t, &e), CS_E_CORRUPT);
    assert_true(starts(e.msg, "age header: scrypt work factor 10"));
    cs_buf_free(&t.data);

    /* A passphrase cannot be mixed with other recipients; next is freed. */
    age_recipient *xr = NULL;
    assert_int_equal(age_identity_recipient(x, &xr, &e), 0);
    age_recipient *mix[2] = { xr, r };
    cs_buf out = CS_BUF_INIT;
    cs_err_clear(&e);
    assert_null(age_encrypt_new(cs_buf_sink_new(&out, SIZE_MAX), mix, 2, &e));
    assert_int_equal(e.code, CS_E_INVAL);
    assert_null(age_encrypt_new(cs_buf_sink_new(&out, SIZE_MAX), mix, 0, &e));
    assert_int_equal(e.code, CS_E_INVAL);
    assert_int_equal(out.len, 0);

    /* Passphrase never appears in the header. */
    assert_null(memmem(ct.data, ct.len, "correct horse", 13));

    cs_buf_free(&ct);
    free(data);
    age_recipient_free(r);
    age_recipient_free(xr);
    age_identity_free(id);
    age_identity_free(wrong);
    age_identity_free(low);
    age_identity_free(x);
}

/* ---- tampering and truncation -------------------------------------------- */

typedef struct fixture {
    age_identity *id, *id2;
    age_recipient *r, *r2;
    uint8_t *data;
    size_t n;
    cs_buf ct; /* data for r then r2 */
    size_t hl;
} fixture;

static int setup(void **state)
{
    cs_err e;
    fixture *f = calloc(1, sizeof *f);
    f->id = age_keygen();
    f->id2 = age_keygen();
    if (age_identity_recipient(f->id, &f->r, &e) || age_identity_recipient(f->id2, &f->r2, &e))
        return -1;
    f->n = 3 * CHUNK + 1000;
    f->data = make_data(f->n, 1234);
    age_recipient *rs[2] = { f->r, f->r2 };
    encrypt_buf(rs, 2, f->data, f->n, 0, &f->ct);
    f->hl = header_len(&f->ct);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    age_identity_free(f->id);
    age_identity_free(f->id2);
    age_recipient_free(f->r);
    age_recipient_free(f->r2);
    free(f->data);
    cs_buf_free(&f->ct);
    free(f);
    return 0;
}

static void test_header_tamper(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_buf c = CS_BUF_INIT;
    cs_buf_add(&c, f->ct.data, f->ct.len);
    size_t header_errors = 0;
    for (size_t i = 0; i < f->hl; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            c.data[i] ^= (char)(1 << bit);
            track t;
            int rc = decrypt_buf(&f->id, 1, c.data, c.len, 0, &t, &e);
            c.data[i] ^= (char)(1 << bit);
            /* A first byte other than 'a' reads as (bad) armor. */
            if (!((rc == CS_E_CORRUPT && starts(e.msg, i ? "age header: " : "age armor: ")) ||
                  rc == CS_E_NOKEY))
                fail_msg("flip at header byte %zu bit %d: rc %d %s", i, bit, rc, e.msg);
            assert_int_equal(t.data.len, 0);
            assert_false(t.closed);
            header_errors += rc == CS_E_CORRUPT;
            cs_buf_free(&t.data);
        }
    }
    assert_true(header_errors > f->hl);

    /* The second recipient's share, still canonical base64, changed: the
     * first identity unwraps its own stanza, and the MAC catches it. */
    const char *second = memmem(c.data, f->hl, "-> X25519 ", 10);
    second = memmem(second + 1, f->hl - (size_t)(second + 1 - c.data), "-> X25519 ", 10);
    assert_non_null(second);
    size_t pos = (size_t)(second - c.data) + 10 + 5;
    c.data[pos] = c.data[pos] == 'A' ? 'B' : 'A';
    track t;
    assert_int_equal(decrypt_buf(&f->id, 1, c.data, c.len, 1, &t, &e), CS_E_CORRUPT);
    assert_true(starts(e.msg, "age header: MAC mismatch"));
    assert_int_equal(t.data.len, 0);
    cs_buf_free(&t.data);
    /* The version line. */
    memcpy(c.data, f->ct.data, f->ct.len);
    c.data[20] = '2';
    assert_int_equal(decrypt_buf(&f->id, 1, c.data, c.len, 0, &t, &e), CS_E_CORRUPT);
    assert_true(starts(e.msg, "age header: "));
    cs_buf_free(&t.data);
    cs_buf_free(&c);
}

static void test_payload_tamper(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_buf c = CS_BUF_INIT;
    cs_buf_add(&c, f->ct.data, f->ct.len);
    size_t body = f->hl + 16;
    struct {
        size_t pos;
        size_t released; /* authenticated plaintext before the bad chunk */
    } cases[] = {
        { f->hl, 0 },                         /* nonce */
        { f->hl + 15, 0 },                    /* nonce, last byte */
        { body, 0 },                          /* chunk 0, first byte */
        { body + ENC - 1, 0 },                /* chunk 0, tag */
        { body + ENC, CHUNK },                /* chunk 1 */
        { body + 2 * ENC + 500, 2 * CHUNK },  /* chunk 2 */
        { body + 3 * ENC + 3, 3 * CHUNK },    /* final chunk */
        { f->ct.len - 1, 3 * CHUNK },         /* final chunk's tag */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int mode = 0; mode <= 1; mode++) {
            c.data[cases[k].pos] ^= 0x40;
            track t;
            int rc = decrypt_buf(&f->id, 1, c.data, c.len, mode, &t, &e);
            c.data[cases[k].pos] ^= 0x40;
            if (rc != CS_E_CORRUPT || !starts(e.msg, "age payload: "))
                fail_msg("flip at %zu: rc %d %s", cases[k].pos, rc, e.msg);
            assert_false(t.closed);
            assert_int_equal(t.data.len, cases[k].released);
            if (t.data.len)
                assert_memory_equal(t.data.data, f->data, t.data.len);
            cs_buf_free(&t.data);
        }
    }
    /* Chunks swapped. */
    memcpy(c.data + body, f->ct.data + body + ENC, ENC);
    memcpy(c.data + body + ENC, f->ct.data + body, ENC);
    track t;
    assert_int_equal(decrypt_buf(&f->id, 1, c.data, c.len, 0, &t, &e), CS_E_CORRUPT);
    assert_int_equal(t.data.len, 0);
    cs_buf_free(&t.data);
    /* One extra byte after the final chunk. */
    memcpy(c.data, f->ct.data, f->ct.len);
    cs_buf_addch(&c, 'x');
    assert_int_equal(decrypt_buf(&f->id, 1, c.data, c.len, 1, &t, &e), CS_E_CORRUPT);
    assert_true(starts(e.msg, "age payload: "));
    assert_false(t.closed);
    cs_buf_free(&t.data);
    cs_buf_free(&c);
}

static void test_truncation(void **state)
{
    fixture *f = *state;
    cs_err e;
    size_t body = f->hl + 16;
    struct {
        size_t len;
        const char *prefix;
        size_t released;
    } cases[] = {
        { 0, "age header: empty file", 0 },
        { 10, "age header: ", 0 },
        { f->hl - 1, "age header: ", 0 },
        { f->hl, "age header: ", 0 },
        { f->hl + 7, "age header: ", 0 },
        { body, "age payload: ", 0 },
        { body + 10, "age payload: ", 0 },
        { body + ENC - 1, "age payload: ", 0 },
        { body + ENC, "age payload: ", CHUNK }, /* chunk boundary: no final chunk */
        { body + 2 * ENC, "age payload: ", 2 * CHUNK },
        { body + 3 * ENC, "age payload: ", 3 * CHUNK },
        { f->ct.len - 1, "age payload: ", 3 * CHUNK },
        { f->ct.len - 16, "age payload: ", 3 * CHUNK },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int mode = 0; mode <= 1; mode++) {
            cs_err_clear(&e);
            track t;
            cs_sink *s = age_decrypt_new(track_new(&t), &f->id, 1, &e);
            /* The writes succeed: a short input is only known at close. */
            assert_int_equal(write_pieces(s, (const uint8_t *)f->ct.data, cases[k].len, mode, &e),
                             0);
            int rc = cs_sink_close(s, &e);
            if (rc != CS_E_CORRUPT || !starts(e.msg, cases[k].prefix))
                fail_msg("cut at %zu: rc %d %s", cases[k].len, rc, e.msg);
            assert_false(t.closed);
            assert_int_equal(t.data.len, cases[k].released);
            if (t.data.len)
                assert_memory_equal(t.data.data, f->data, t.data.len);
            /* The filter stays failed. */
            assert_int_equal(cs_sink_close(s, &e), CS_E_CORRUPT);
            assert_int_equal(cs_sink_write(s, "x", 1, &e), CS_E_CORRUPT);
            cs_sink_free(s);
            cs_buf_free(&t.data);
        }
    }
}

static void test_garbage(void **state)
{
    (void)state;
    cs_err e;
    age_identity *id = age_keygen();
    static const char *inputs[] = {
        "hello world",
        "age-encryption.org/v2\n-> X25519 abc\n\n--- x\n",
        "age-encryption.org/v1\n--- AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
        "AGE-ENCRYPTION.ORG/V1\n",
        "-----BEGIN AGE ENCRYPTED FILE-----\nnot base64!\n-----END AGE ENCRYPTED FILE-----\n",
        "   \n",
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        track t;
        int rc = decrypt_buf(&id, 1, inputs[i], strlen(inputs[i]), 0, &t, &e);
        if (rc != CS_E_CORRUPT)
            fail_msg("garbage %zu: rc %d %s", i, rc, e.msg);
        assert_false(t.closed);
        cs_buf_free(&t.data);
    }
    /* A header that never ends is refused at the limit, not buffered. */
    cs_sink *s = age_decrypt_new(cs_null_sink_new(), &id, 1, &e);
    assert_int_equal(cs_sink_write(s, "age-encryption.org/v1\n-> a\n", 27, &e), 0);
    char *big = malloc(AGE_HEADER_MAX);
    memset(big, 'A', AGE_HEADER_MAX);
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = cs_sink_write(s, big, AGE_HEADER_MAX, &e);
    assert_int_equal(rc, CS_E_CORRUPT);
    assert_true(starts(e.msg, "age header: longer than"));
    free(big);
    cs_sink_free(s);
    age_identity_free(id);
}

/* ---- armor ------------------------------------------------------------------ */

static void armor(const cs_buf *in, const char *eol, cs_buf *out)
{
    cs_buf_printf(out, "-----BEGIN AGE ENCRYPTED FILE-----%s", eol);
    for (size_t off = 0; off < in->len; off += 48) {
        size_t n = in->len - off < 48 ? in->len - off : 48;
        char line[80];
        sodium_bin2base64(line, sizeof line, (const uint8_t *)in->data + off, n,
                          sodium_base64_VARIANT_ORIGINAL);
        cs_buf_printf(out, "%s%s", line, eol);
    }
    cs_buf_printf(out, "-----END AGE ENCRYPTED FILE-----%s", eol);
}

static void test_armor(void **state)
{
    fixture *f = *state;
    cs_err e;
    const char *eols[] = { "\n", "\r\n" };
    for (int k = 0; k < 2; k++) {
        cs_buf a = CS_BUF_INIT;
        armor(&f->ct, eols[k], &a);
        for (int mode = 0; mode <= 2; mode += 1) {
            track t;
            if (decrypt_buf(&f->id2, 1, a.data, a.len, mode, &t, &e) != 0)
                fail_msg("armored (%s): %s", k ? "CRLF" : "LF", e.msg);
            assert_true(t.closed);
            assert_int_equal(t.data.len, f->n);
            assert_memory_equal(t.data.data, f->data, f->n);
            cs_buf_free(&t.data);
        }
        /* Cut before the END line: an armor error at close. */
        track t;
        size_t cut = a.len - strlen("-----END AGE ENCRYPTED FILE-----") - strlen(eols[k]);
        assert_int_equal(decrypt_buf(&f->id2, 1, a.data, cut, 1, &t, &e), CS_E_CORRUPT);
        assert_true(starts(e.msg, "age armor: "));
        assert_false(t.closed);
        cs_buf_free(&t.data);
        cs_buf_free(&a);
    }
}

/* ---- identity files -------------------------------------------------------- */

static void test_identity_file(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    age_identity *a = age_keygen(), *b = age_keygen();
    cs_buf sa = CS_BUF_INIT, sb = CS_BUF_INIT, text = CS_BUF_INIT;
    age_identity_secret_string(a, &sa, &e);
    age_identity_secret_string(b, &sb, &e);
    cs_buf_printf(&text, "# created: 2024-01-01T00:00:00Z\n# public key: age1xyz\n%s\r\n\n"
                         "   \t\n  %s  \n# trailing comment", cs_buf_str(&sa), cs_buf_str(&sb));
    age_identity **ids = NULL;
    size_t n = 0;
    assert_int_equal(age_identities_parse(text.data, text.len, &ids, &n, &e), 0);
    assert_int_equal(n, 2);

    /* A file for b opens with the list. */
    age_recipient *rb = NULL;
    assert_int_equal(age_identity_recipient(b, &rb, &e), 0);
    cs_buf ct = CS_BUF_INIT;
    encrypt_buf(&rb, 1, (const uint8_t *)"x", 1, 0, &ct);
    track t;
    assert_int_equal(decrypt_buf(ids, n, ct.data, ct.len, 0, &t, &e), 0);
    assert_int_equal(t.data.len, 1);
    cs_buf_free(&t.data);
    age_identities_free(ids, n);

    /* Through a file. */
    char dir[] = "/tmp/cassette-test-age-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = cs_sprintf("%s/keys.txt", dir);
    FILE *fp = fopen(path, "w");
    fwrite(text.data, 1, text.len, fp);
    fclose(fp);
    assert_int_equal(age_identities_load(path, &ids, &n, &e), 0);
    assert_int_equal(n, 2);
    age_identities_free(ids, n);

    /* A bad line is named, its content is not. */
    cs_buf_reset(&text);
    cs_buf_printf(&text, "# comment\n%s\nAGE-SECRET-KEY-1NOTAKEYATALLQQQQQQQ\n", cs_buf_str(&sa));
    assert_int_equal(age_identities_parse(text.data, text.len, &ids, &n, &e), CS_E_INVAL);
    assert_null(ids);
    assert_true(starts(e.msg, "line 3: "));
    assert_null(strstr(e.msg, "NOTAKEY"));
    fp = fopen(path, "w");
    fwrite(text.data, 1, text.len, fp);
    fclose(fp);
    assert_int_equal(age_identities_load(path, &ids, &n, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "line 3"));
    /* Nothing but comments. */
    assert_int_equal(age_identities_parse("# only\n\n", 8, &ids, &n, &e), CS_E_INVAL);
    assert_int_equal(age_identities_parse("", 0, &ids, &n, &e), CS_E_INVAL);
    /* A NUL byte inside a line. */
    cs_buf_reset(&text);
    cs_buf_add(&text, sa.data, sa.len);
    cs_buf_add(&text, "\0x\n", 3);
    assert_int_equal(age_identities_parse(text.data, text.len, &ids, &n, &e), CS_E_INVAL);
    unlink(path);
    assert_int_equal(age_identities_load(path, &ids, &n, &e), CS_E_NOTFOUND);
    assert_int_equal(age_identities_load(dir, &ids, &n, &e), CS_E_INVAL);
    rmdir(dir);

    free(path);
    cs_buf_free(&ct);
    age_recipient_free(rb);
    age_buf_wipe(&sa);
    age_buf_wipe(&sb);
    age_buf_wipe(&text);
    age_identity_free(a);
    age_identity_free(b);
}

/* ---- parallel batches -------------------------------------------------------- */


typedef struct outcome {
    int rc;
    int code;
    char msg[sizeof ((cs_err *)0)->msg];
    track t;
} outcome;

/* Decrypt c in writes cycling through sizes[] (ns 0: one write) with the
 * pool size threads ("1": serial). */
static void decrypt_with(const char *threads, age_identity *id, const uint8_t *c, size_t n,
                         const size_t *sizes, size_t ns, outcome *o)
{
    cs_err e;
    cs_err_clear(&e);
    setenv("CASSETTE_AGE_THREADS", threads, 1);
    cs_sink *s = age_decrypt_new(track_new(&o->t), &id, 1, &e);
    unsetenv("CASSETTE_AGE_THREADS");
    assert_non_null(s);
    int rc = ns ? write_cycle(s, c, n, sizes, ns, &e) : cs_sink_write(s, c, n, &e);
    if (rc == 0)
        rc = cs_sink_close(s, &e);
    cs_sink_free(s);
    o->rc = rc;
    o->code = e.code;
    memcpy(o->msg, e.msg, sizeof o->msg);
    if (rc == 0)
        o->msg[0] = '\0';
}

static void same_outcome(const outcome *a, const outcome *b, const char *what)
{
    if (a->rc != b->rc || strcmp(a->msg, b->msg) != 0 || a->t.closed != b->t.closed ||
        a->t.data.len != b->t.data.len ||
        (a->t.data.len && memcmp(a->t.data.data, b->t.data.data, a->t.data.len) != 0))
        fail_msg("%s: parallel rc %d \"%s\" %zu bytes%s, serial rc %d \"%s\" %zu bytes%s", what,
                 a->rc, a->msg, a->t.data.len, a->t.closed ? " closed" : "", b->rc, b->msg,
                 b->t.data.len, b->t.closed ? " closed" : "");
}

/* Large writes are sealed and opened in batches of chunks on several
 * threads: the result must be what one chunk at a time gives. The serial
 * references: a decryptor fed byte by byte (it never sees a whole chunk in
 * one write) and the pool size 1. Pool sizes 2 to 4 (more threads than CPUs
 * included), writes of 1 byte, around a chunk, and 3 MiB. */
static void test_parallel(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    static const size_t sizes[] = { 1, CHUNK - 1, CHUNK, CHUNK + 1, 3u << 20 };
    static const size_t big[] = { 3u << 20 };
    static const char *pools[] = { "2", "3", "4" };
    age_identity *id = age_keygen();
    age_recipient *r = NULL;
    assert_int_equal(age_identity_recipient(id, &r, &e), 0);
    size_t n = (7u << 20) + 12345;
    uint8_t *data = make_data(n, 4242);

    for (size_t k = 0; k < sizeof pools / sizeof pools[0]; k++) {
        for (int how = 0; how < 3; how++) {
            /* Encrypt in parallel: cycling sizes, 3 MiB writes, one write. */
            cs_buf ct = CS_BUF_INIT;
            setenv("CASSETTE_AGE_THREADS", pools[k], 1);
            cs_sink *s = age_encrypt_new(cs_buf_sink_new(&ct, SIZE_MAX), &r, 1, &e);
            unsetenv("CASSETTE_AGE_THREADS");
            assert_non_null(s);
            int rc = how == 0   ? write_cycle(s, data, n, sizes, 5, &e)
                     : how == 1 ? write_cycle(s, data, n, big, 1, &e)
                                : cs_sink_write(s, data, n, &e);
            assert_int_equal(rc, 0);
            assert_int_equal(cs_sink_close(s, &e), 0);
            cs_sink_free(s);
            size_t chunks = (n + CHUNK - 1) / CHUNK;
            assert_int_equal(ct.len, header_len(&ct) + 16 + n + 16 * chunks);

            /* Every chunk has the nonce and flag of the serial stream. */
            track t;
            assert_int_equal(decrypt_buf(&id, 1, ct.data, ct.len, 2, &t, &e), 0);
            assert_true(t.closed);
            assert_int_equal(t.data.len, n);
            assert_memory_equal(t.data.data, data, n);
            cs_buf_free(&t.data);

            /* Decrypt in parallel the same three ways. */
            outcome o;
            decrypt_with(pools[k], id, (const uint8_t *)ct.data, ct.len,
                         how == 0 ? sizes : big, how == 2 ? 0 : how == 0 ? 5 : 1, &o);
            if (o.rc)
                fail_msg("parallel decryption (pool %s, writes %d): %s", pools[k], how, o.msg);
            assert_true(o.t.closed);
            assert_int_equal(o.t.data.len, n);
            assert_memory_equal(o.t.data.data, data, n);
            cs_buf_free(&o.t.data);
            cs_buf_free(&ct);
        }
    }

    /* Damage inside a batch: the chunks before the bad one are released,
     * nothing after it, with the serial path's error. A whole number of
     * chunks, so the final chunk is a full one. */
    size_t m = 40 * (size_t)CHUNK;
    cs_buf ct = CS_BUF_INIT;
    encrypt_buf(&r, 1, data, m, 0, &ct);
    size_t body = header_len(&ct) + 16;
    static const size_t bad[] = { 0, 1, 5, 30, 31, 32, 33, 38, 39 };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        for (int where = 0; where < 2; where++) {
            size_t pos = body + bad[b] * ENC + (where ? ENC - 1 : 100);
            ct.data[pos] ^= 0x10;
            for (int w = 0; w < 2; w++) {
                outcome par, ser;
                decrypt_with("2", id, (const uint8_t *)ct.data, ct.len, w ? big : NULL, w, &par);
                decrypt_with("1", id, (const uint8_t *)ct.data, ct.len, w ? big : NULL, w, &ser);
                same_outcome(&par, &ser, "flipped byte");
                assert_int_equal(par.rc, CS_E_CORRUPT);
                assert_int_equal(par.t.data.len, bad[b] * (size_t)CHUNK);
                assert_memory_equal(par.t.data.data, data, par.t.data.len);
                cs_buf_free(&par.t.data);
                cs_buf_free(&ser.t.data);
            }
            ct.data[pos] ^= 0x10;
        }
    }
    /* Data after the final (full) chunk: it is released, then the error. */
    size_t full = ct.len;
    cs_buf_add(&ct, "junk", 4);
    for (size_t extra = 1; extra <= 4; extra += 3) {
        outcome par, ser;
        decrypt_with("2", id, (const uint8_t *)ct.data, full + extra, NULL, 0, &par);
        decrypt_with("1", id, (const uint8_t *)ct.data, full + extra, NULL, 0, &ser);
        same_outcome(&par, &ser, "data after the final chunk");
        assert_int_equal(par.rc, CS_E_CORRUPT);
        assert_int_equal(par.t.data.len, m);
        cs_buf_free(&par.t.data);
        cs_buf_free(&ser.t.data);
    }
    /* Cut at a chunk boundary: the last whole chunk is held back, then found
     * not final at close; chunks swapped inside a batch. */
    for (int k = 0; k < 2; k++) {
        cs_buf c = CS_BUF_INIT;
        cs_buf_add(&c, ct.data, full);
        size_t len = full;
        if (k == 0) {
            len = body + 35 * ENC;
        } else {
            memcpy(c.data + body + 10 * ENC, ct.data + body + 11 * ENC, ENC);
            memcpy(c.data + body + 11 * ENC, ct.data + body + 10 * ENC, ENC);
        }
        outcome par, ser;
        decrypt_with("2", id, (const uint8_t *)c.data, len, NULL, 0, &par);
        decrypt_with("1", id, (const uint8_t *)c.data, len, NULL, 0, &ser);
        same_outcome(&par, &ser, k ? "swapped chunks" : "cut at a boundary");
        assert_int_equal(par.rc, CS_E_CORRUPT);
        assert_int_equal(par.t.data.len, (k ? 10 : 35) * (size_t)CHUNK);
        cs_buf_free(&par.t.data);
        cs_buf_free(&ser.t.data);
        cs_buf_free(&c);
    }
    /* A failing next sink stops the stream at the write that failed. */
    cs_buf small = CS_BUF_INIT;
    setenv("CASSETTE_AGE_THREADS", "2", 1);
    cs_sink *s = age_decrypt_new(cs_buf_sink_new(&small, 5 * (size_t)CHUNK), &id, 1, &e);
    unsetenv("CASSETTE_AGE_THREADS");
    int rc = cs_sink_write(s, ct.data, full, &e);
    assert_int_equal(rc, CS_E_INVAL);
    assert_int_equal(cs_sink_write(s, ct.data, 1, &e), CS_E_INVAL);
    cs_sink_free(s);
    cs_buf_free(&small);

    cs_buf_free(&ct);
    free(data);
    age_recipient_free(r);
    age_identity_free(id);
}

/* ---- reserve/commit: sealing into the next sink's buffer ------------------ */

/* A sink that lends room in "parts" like the S3 writer (io/sink.h): a part
 * of part bytes is passed on (appended to out) when it is full and more
 * bytes come, by a write or a reservation; a reservation lends at most the
 * part's room and at most lend bytes. It checks the protocol: one commit
 * of at most the lent room after each reservation, nothing in between. */
typedef struct lend_sink {
    cs_sink base;
    cs_buf *out;
    size_t part, lend;
    uint8_t *buf;
    size_t len;
    size_t lent;        /* the open reservation's room; 0: none */
    int open;           /* a reservation is open */
    size_t committed;   /* bytes that came by commit */
    size_t written;     /* bytes that came by write */
} lend_sink;

static void lend_pass_full(lend_sink *l)
{
    if (l->len == l->part) {
        cs_buf_add(l->out, l->buf, l->len);
        l->len = 0;
    }
}

static int lend_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    (void)e;
    lend_sink *l = (lend_sink *)s;
    assert_false(l->open);
    l->written += n;
    while (n > 0) {
        lend_pass_full(l);
        size_t k = l->part - l->len < n ? l->part - l->len : n;
        memcpy(l->buf + l->len, p, k);
        l->len += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int lend_reserve(cs_sink *s, size_t want, uint8_t **p, size_t *got, cs_err *e)
{
    (void)e;
    lend_sink *l = (lend_sink *)s;
    assert_false(l->open);
    assert_true(want > 0);
    lend_pass_full(l);
    size_t room = l->part - l->len;
    room = room < l->lend ? room : l->lend;
    *got = want < room ? want : room;
    *p = l->buf + l->len;
    memset(*p, 0xa5, *got); /* what is not sealed there shows */
    l->lent = *got;
    l->open = 1;
    return 0;
}

static int lend_commit(cs_sink *s, size_t n, cs_err *e)
{
    (void)e;
    lend_sink *l = (lend_sink *)s;
    assert_true(l->open);
    assert_true(n <= l->lent);
    l->len += n;
    l->committed += n;
    l->open = 0;
    l->lent = 0;
    return 0;
}

static int lend_close(cs_sink *s, cs_err *e)
{
    (void)e;
    lend_sink *l = (lend_sink *)s;
    assert_false(l->open);
    cs_buf_add(l->out, l->buf, l->len);
    l->len = 0;
    return 0;
}

static void lend_free(cs_sink *s)
{
    free(((lend_sink *)s)->buf);
    free(s);
}

static const cs_sink_ops lend_ops = { lend_write, lend_close, lend_free };
static const cs_sink_opt_ops lend_opt = { .reserve = lend_reserve, .commit = lend_commit };

static lend_sink *lend_new(cs_buf *out, size_t part, size_t lend)
{
    lend_sink *l = calloc(1, sizeof *l);
    l->base.ops = &lend_ops;
    l->base.opt = &lend_opt;
    l->out = out;
    l->part = part;
    l->lend = lend;
    l->buf = malloc(part);
    return l;
}

/* Encrypt data[0..n) with seal into next in writes of the given kind
 * (0: one write, 1: cycling sizes, 2: 1 MiB writes) on pool threads. */
static void encrypt_sealed(cs_sink *next, age_recipient *r, age_seal *seal, const char *threads,
                           const uint8_t *data, size_t n, int how)
{
    static const size_t sizes[] = { 1, CHUNK - 1, CHUNK, CHUNK + 1, 3u << 20, 77777 };
    static const size_t mib[] = { 1u << 20 };
    cs_err e;
    cs_err_clear(&e);
    setenv("CASSETTE_AGE_THREADS", threads, 1);
    cs_sink *s = age_encrypt_new_seal(next, &r, 1, seal, &e);
    unsetenv("CASSETTE_AGE_THREADS");
    assert_non_null(s);
    int rc = how == 0   ? cs_sink_write(s, data, n, &e)
             : how == 1 ? write_cycle(s, data, n, sizes, 6, &e)
                        : write_cycle(s, data, n, mib, 1, &e);
    if (rc || cs_sink_close(s, &e))
        fail_msg("encrypting %zu bytes: %s", n, e.msg);
    cs_sink_free(s);
}

/* The encryptor seals into the room its next sink lends (reserve/commit)
 * and writes otherwise: the file is the same bytes either way, for lengths
 * around chunk and batch boundaries, parts whose ends fall anywhere in a
 * chunk (also parts smaller than a sealed chunk), lent room smaller than a
 * part, serial and parallel, whatever the writes. */
static void test_reserve_commit(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    static const size_t lens[] = {
        0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 4 * CHUNK - 1, 4 * CHUNK, 4 * CHUNK + 1,
        32 * CHUNK - 1, 32 * CHUNK, 32 * CHUNK + 1, 33 * CHUNK + 1, 70 * CHUNK + 12345,
    };
    struct { size_t part, lend; } shapes[] = {
        { 3 * ENC, SIZE_MAX },             /* parts of whole sealed chunks (after the header) */
        { (1u << 20) + 7, SIZE_MAX },      /* part ends anywhere */
        { 5u << 20, SIZE_MAX },            /* S3's smallest part */
        { ENC - 1, SIZE_MAX },             /* no sealed chunk ever fits a part */
        { 2u << 20, 3 * ENC - 5 },         /* room lent short of a part */
        { 2u << 20, ENC },
    };
    static const char *pools[] = { "1", "2" };
    age_identity *id = age_keygen();
    age_recipient *r = NULL;
    assert_int_equal(age_identity_recipient(id, &r, &e), 0);
    age_seal seal = { { 0 }, CS_BUF_INIT };
    size_t maxn = 6u << 20;
    uint8_t *data = make_data(maxn, 777);

    /* The reference: the write path, serial; it also fills the seal. */
    cs_buf ref[sizeof lens / sizeof lens[0]];
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        ref[i] = (cs_buf)CS_BUF_INIT;
        encrypt_sealed(cs_buf_sink_new(&ref[i], SIZE_MAX), r, &seal, "1", data, lens[i], 0);
    }
    size_t hdr = seal.header.len; /* with the payload nonce */
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            for (size_t k = 0; k < 2; k++) {
                for (int how = 0; how < 3; how++) {
                    cs_buf out = CS_BUF_INIT;
                    lend_sink *l = lend_new(&out, shapes[sh].part, shapes[sh].lend);
                    encrypt_sealed(&l->base, r, &seal, pools[k], data, lens[i], how);
                    if (out.len != ref[i].len || memcmp(out.data, ref[i].data, out.len))
                        fail_msg("reserve/commit differs: %zu bytes, part %zu, lend %zu, pool %s, writes %d",
                                 lens[i], shapes[sh].part, shapes[sh].lend, pools[k], how);
                    cs_buf_free(&out);
                }
            }
        }
        /* Around the first part's end: the file ends 1 byte short of it, on it, 1 byte past it. */
        size_t part = shapes[sh].part;
        for (long d = -1; d <= 1 && part > hdr + 32 + 1; d++) {
            size_t body = part - hdr + (size_t)d; /* the sealed chunks */
            size_t chunks = (body + ENC - 1) / ENC;
            size_t n = body - 16 * chunks;
            if (n > maxn || (n + CHUNK - 1) / CHUNK != chunks)
                continue; /* no file has that length */
            cs_buf want = CS_BUF_INIT, out = CS_BUF_INIT;
            encrypt_sealed(cs_buf_sink_new(&want, SIZE_MAX), r, &seal, "1", data, n, 0);
            assert_int_equal(want.len, part + (size_t)d);
            for (size_t k = 0; k < 2; k++) {
                cs_buf_reset(&out);
                lend_sink *l = lend_new(&out, part, shapes[sh].lend);
                encrypt_sealed(&l->base, r, &seal, pools[k], data, n, 2);
                assert_int_equal(out.len, want.len);
                assert_memory_equal(out.data, want.data, want.len);
            }
            cs_buf_free(&want);
            cs_buf_free(&out);
        }
    }
    /* Most bytes come by commit when there is room; by write when a sealed chunk never fits. */
    for (int sh = 0; sh < 2; sh++) {
        cs_buf out = CS_BUF_INIT;
        lend_sink *l = lend_new(&out, sh ? ENC - 1 : (1u << 20) + 7, SIZE_MAX);
        size_t n = 70 * CHUNK + 12345;
        /* The counts are read before the sink is freed with the chain. */
        setenv("CASSETTE_AGE_THREADS", "2", 1);
        cs_sink *s = age_encrypt_new_seal(&l->base, &r, 1, &seal, &e);
        unsetenv("CASSETTE_AGE_THREADS");
        assert_non_null(s);
        assert_int_equal(write_cycle(s, data, n, (const size_t[]){ 1u << 20 }, 1, &e), 0);
        assert_int_equal(cs_sink_close(s, &e), 0);
        if (sh == 0)
            assert_true(l->committed > out.len * 9 / 10);
        else /* only the short final chunk fits */
            assert_int_equal(l->committed, 12345 + 16);
        assert_int_equal(l->committed + l->written, out.len);
        cs_sink_free(s);
        cs_buf_free(&out);
    }
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
        cs_buf_free(&ref[i]);
    age_seal_wipe(&seal);
    free(data);
    age_recipient_free(r);
    age_identity_free(id);
}

/* Write data[0..n) to s as gathered writes of g pieces each, the pieces'
 * sizes cycling through sizes[] (0 included). */
static int writev_cycle(cs_sink *s, const uint8_t *data, size_t n, const size_t *sizes, size_t ns,
                        size_t g, cs_err *e)
{
    cs_iov v[64];
    size_t off = 0, i = 0;
    while (off < n) {
        size_t k = 0;
        for (; k < g && off < n; k++) {
            size_t c = sizes[i++ % ns];
            c = c < n - off ? c : n - off;
            v[k] = (cs_iov){ data + off, c };
            off += c;
        }
        int rc = cs_sink_writev(s, v, k, e);
        if (rc)
            return rc;
    }
    return 0;
}

/* Gathered writes (cs_sink_writev) give the file that one buffer gives:
 * pieces as the zstd store frame gives them (a 3-byte block header, a
 * 128 KiB block), pieces so small that a chunk spans more than the
 * encryptor takes at once, empty ones; into a plain sink and one that
 * lends room; serial and parallel. */
static void test_gathered_writes(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    static const size_t lens[] = { 0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 4 * CHUNK + 3, 33 * CHUNK + 1,
                                   (3u << 20) + 77 };
    static const size_t zraw[] = { 3, 131072 }, tiny[] = { 1, 2, 3, 0, 5, 4000 },
                        mixed[] = { 65533, 5, 7, 65536, 0, 1, 200000, 3 };
    static const struct { const size_t *sizes; size_t ns, g; } ways[] = {
        { zraw, 2, 16 }, { zraw, 2, 1 }, { tiny, 6, 60 }, { mixed, 8, 8 }, { mixed, 8, 3 },
    };
    static const char *pools[] = { "1", "2" };
    age_identity *id = age_keygen();
    age_recipient *r = NULL;
    assert_int_equal(age_identity_recipient(id, &r, &e), 0);
    age_seal seal = { { 0 }, CS_BUF_INIT };
    uint8_t *data = make_data((3u << 20) + 77, 99);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        cs_buf want = CS_BUF_INIT;
        encrypt_sealed(cs_buf_sink_new(&want, SIZE_MAX), r, &seal, "1", data, lens[i], 0);
        for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
            for (size_t k = 0; k < 2; k++) {
                for (int lend = 0; lend < 2; lend++) {
                    cs_buf out = CS_BUF_INIT;
                    cs_sink *next = lend ? &lend_new(&out, (1u << 20) + 7, SIZE_MAX)->base
                                         : cs_buf_sink_new(&out, SIZE_MAX);
                    setenv("CASSETTE_AGE_THREADS", pools[k], 1);
                    cs_sink *s = age_encrypt_new_seal(next, &r, 1, &seal, &e);
                    unsetenv("CASSETTE_AGE_THREADS");
                    assert_non_null(s);
                    int rc = writev_cycle(s, data, lens[i], ways[w].sizes, ways[w].ns, ways[w].g, &e);
                    if (rc || cs_sink_close(s, &e))
                        fail_msg("gathered writes: %s", e.msg);
                    cs_sink_free(s);
                    if (out.len != want.len || memcmp(out.data, want.data, out.len))
                        fail_msg("gathered writes differ: %zu bytes, way %zu, pool %s, lend %d", lens[i], w,
                                 pools[k], lend);
                    cs_buf_free(&out);
                }
            }
        }
        cs_buf_free(&want);
    }
    age_seal_wipe(&seal);
    free(data);
    age_recipient_free(r);
    age_identity_free(id);
}

/* ---- interop with the age CLI ---------------------------------------------- */

/* Run argv with stdout into out_path (NULL: /dev/null); the exit code. */
static int run(char *const argv[], const char *out_path)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int devnull = open("/dev/null", O_RDWR);
        if (fd < 0 || devnull < 0)
            _exit(126);
        dup2(devnull, 0);
        dup2(fd, 1);
        if (!getenv("CASSETTE_TEST_VERBOSE"))
            dup2(devnull, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n)
        assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Read path into out; a missing file reads as empty (age creates its
 * output file only when it writes something). */
static void read_file(const char *path, cs_buf *out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp && errno == ENOENT)
        return;
    assert_non_null(fp);
    char tmp[65536];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, fp)) > 0)
        cs_buf_add(out, tmp, r);
    fclose(fp);
}

static void test_interop_cli(void **state)
{
    (void)state;
    const char *age = "age", *keygen = "age-keygen";
    char *const probe[] = { (char *)age, (char *)"--version", NULL };
    if (run(probe, NULL) != 0)
        fail_msg("the age CLI is not installed (scripts/install-deps.sh installs it)");
    cs_err e;
    cs_err_clear(&e);
    char dir[] = "/tmp/cassette-test-age-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *ours_key = cs_sprintf("%s/ours.txt", dir);
    char *theirs_key = cs_sprintf("%s/theirs.txt", dir);
    char *plain = cs_sprintf("%s/plain", dir);
    char *ct = cs_sprintf("%s/ct.age", dir);
    char *out = cs_sprintf("%s/out", dir);
    char *pub = cs_sprintf("%s/pub", dir);

    /* Our key, in a file age reads. */
    age_identity *ours = age_keygen();
    cs_buf s = CS_BUF_INIT;
    cs_buf_addstr(&s, "# created by test_age\n");
    age_identity_secret_string(ours, &s, &e);
    cs_buf_addch(&s, '\n');
    write_file(ours_key, s.data, s.len);
    age_buf_wipe(&s);
    /* age-keygen -y agrees on our public key. */
    char *const y[] = { (char *)keygen, (char *)"-y", ours_key, NULL };
    assert_int_equal(run(y, pub), 0);
    cs_buf pubtext = CS_BUF_INIT, ourpub = CS_BUF_INIT;
    read_file(pub, &pubtext);
    age_identity_public_string(ours, &ourpub, &e);
    cs_buf_addch(&ourpub, '\n');
    assert_string_equal(cs_buf_str(&pubtext), cs_buf_str(&ourpub));
    cs_buf_free(&pubtext);

    /* Their key from age-keygen, loaded by us. */
    char *const gen[] = { (char *)keygen, (char *)"-o", theirs_key, NULL };
    assert_int_equal(run(gen, NULL), 0);
    age_identity **theirs = NULL;
    size_t ntheirs = 0;
    assert_int_equal(age_identities_load(theirs_key, &theirs, &ntheirs, &e), 0);
    assert_int_equal(ntheirs, 1);
    char *const y2[] = { (char *)keygen, (char *)"-y", theirs_key, NULL };
    assert_int_equal(run(y2, pub), 0);
    read_file(pub, &pubtext);
    while (pubtext.len && pubtext.data[pubtext.len - 1] == '\n')
        pubtext.data[--pubtext.len] = '\0';
    age_recipient *their_r = NULL;
    assert_int_equal(age_recipient_parse(cs_buf_str(&pubtext), &their_r, &e), 0);
    cs_buf check = CS_BUF_INIT;
    age_identity_public_string(theirs[0], &check, &e);
    assert_string_equal(cs_buf_str(&check), cs_buf_str(&pubtext));
    cs_buf_free(&check);

    age_recipient *our_r = NULL, *other = NULL;
    age_identity *stranger = age_keygen();
    assert_int_equal(age_identity_recipient(ours, &our_r, &e), 0);
    assert_int_equal(age_identity_recipient(stranger, &other, &e), 0);

    static const size_t sizes[] = { 0, 1, CHUNK, CHUNK + 1, (1u << 20) + 3 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *data = make_data(n, (uint32_t)n + 77);
        write_file(plain, data, n);

        /* Ours -> age -d, with one and with three recipients. */
        for (int three = 0; three <= 1; three++) {
            age_recipient *rs[3] = { our_r, other, their_r };
            age_recipient *one[1] = { our_r };
            cs_buf c = CS_BUF_INIT;
            encrypt_buf(three ? rs : one, three ? 3 : 1, data, n, 1, &c);
            write_file(ct, c.data, c.len);
            cs_buf_free(&c);
            char *const d[] = { (char *)age, (char *)"-d", (char *)"-i", ours_key,
                                (char *)"-o", out, ct, NULL };
            unlink(out);
            if (run(d, NULL) != 0)
                fail_msg("age -d failed on our %zu-byte file", n);
            cs_buf back = CS_BUF_INIT;
            read_file(out, &back);
            assert_int_equal(back.len, n);
            if (n)
                assert_memory_equal(back.data, data, n);
            cs_buf_free(&back);
            if (three) {
                char *const d2[] = { (char *)age, (char *)"-d", (char *)"-i", theirs_key,
                                     (char *)"-o", out, ct, NULL };
                assert_int_equal(run(d2, NULL), 0);
            }
        }

        /* age -e (binary and armored) -> ours. */
        for (int armored = 0; armored <= 1; armored++) {
            char *const enc[] = { (char *)age, (char *)"-e", (char *)"-r", pubtext.data,
                                  (char *)"-o", ct, armored ? (char *)"-a" : plain,
                                  armored ? plain : NULL, NULL };
            assert_int_equal(run(enc, NULL), 0);
            cs_buf c = CS_BUF_INIT;
            read_file(ct, &c);
            track t;
            if (decrypt_buf(theirs, ntheirs, c.data, c.len, 1, &t, &e) != 0)
                fail_msg("decrypting age's %s %zu-byte file: %s", armored ? "armored" : "binary",
                         n, e.msg);
            assert_true(t.closed);
            assert_int_equal(t.data.len, n);
            if (n)
                assert_memory_equal(t.data.data, data, n);
            cs_buf_free(&t.data);
            cs_buf_free(&c);
        }
        free(data);
    }

    /* age -d refuses our file for a key it is not addressed to. */
    cs_buf c = CS_BUF_INIT;
    encrypt_buf(&other, 1, (const uint8_t *)"secret", 6, 0, &c);
    write_file(ct, c.data, c.len);
    cs_buf_free(&c);
    char *const d[] = { (char *)age, (char *)"-d", (char *)"-i", ours_key, (char *)"-o", out, ct,
                        NULL };
    assert_int_not_equal(run(d, NULL), 0);

    cs_remove_tree(dir, &e);
    cs_buf_free(&pubtext);
    cs_buf_free(&ourpub);
    age_identities_free(theirs, ntheirs);
    age_recipient_free(their_r);
    age_recipient_free(our_r);
    age_recipient_free(other);
    age_identity_free(ours);
    age_identity_free(stranger);
    free(ours_key);
    free(theirs_key);
    free(plain);
    free(ct);
    free(out);
    free(pub);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bech32_bip173),
        cmocka_unit_test(test_bech32_roundtrip),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_keygen),
        cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_roundtrip_sizes),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_scrypt),
        cmocka_unit_test_setup_teardown(test_header_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payload_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test_setup_teardown(test_armor, setup, teardown),
        cmocka_unit_test(test_identity_file),
        cmocka_unit_test(test_parallel),
        cmocka_unit_test(test_reserve_commit),
        cmocka_unit_test(test_gathered_writes),
        cmocka_unit_test(test_interop_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
