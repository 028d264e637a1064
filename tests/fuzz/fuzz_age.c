/* fuzz_age.c - libFuzzer target for the age decryptor (crypto/age).
 *
 * Every input is decrypted twice with the same identities: a fixed X25519
 * key (the one the seed corpus is encrypted to) and a passphrase
 * ("password") whose work factor limit is 4, so scrypt stanzas cost
 * microseconds. Once in one write, once in pieces of input-derived sizes
 * (1 byte to past a chunk). Both runs must agree exactly: same error code,
 * same plaintext released (streaming must not depend on how the bytes
 * arrive), and the error must be one of the documented kinds; the next
 * sink is closed if and only if decryption succeeded. The input is also fed
 * to the identity-file and recipient parsers. Leaks show up under
 * LeakSanitizer. Seeds: tests/fuzz/corpus/age/ (valid, armored, scrypt,
 * tampered and truncated files, hand-made headers).
 *
 * Build and run: make fuzz-build; build/fuzz/fuzz_age build/fuzz/age.work
 * tests/fuzz/corpus/age -max_total_time=60 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/err.h"
#include "crypto/age.h"
#include "crypto/bech32.h"
#include "io/sink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char FUZZ_IDENTITY[] =
    "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0";

static age_identity *ids[2];

/* A sink that hashes what it gets and remembers whether it was closed. */
typedef struct result {
    crypto_generichash_state st;
    size_t bytes;
    int closed;
} result;

typedef struct rsink {
    cs_sink base;
    result *r;
} rsink;

static int r_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    (void)e;
    rsink *k = (rsink *)s;
    crypto_generichash_update(&k->r->st, p, n);
    k->r->bytes += n;
    return 0;
}

static int r_close(cs_sink *s, cs_err *e)
{
    (void)e;
    ((rsink *)s)->r->closed = 1;
    return 0;
}

static void r_free(cs_sink *s)
{
    free(s);
}

static const cs_sink_ops r_ops = { r_write, r_close, r_free };

static int starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int decrypt(const uint8_t *data, size_t size, int pieces, result *res,
                   uint8_t digest[32])
{
    cs_err e;
    cs_err_clear(&e);
    memset(res, 0, sizeof *res);
    crypto_generichash_init(&res->st, NULL, 0, 32);
    rsink *k = calloc(1, sizeof *k);
    if (!k)
        abort();
    k->base.ops = &r_ops;
    k->r = res;
    cs_sink *s = age_decrypt_new(&k->base, ids, 2, &e);
    if (!s)
        abort();
    uint32_t x = (uint32_t)size * 2654435761u + 1u;
    size_t off = 0;
    int rc = 0;
    while (off < size && rc == 0) {
        size_t c = size - off;
        if (pieces) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            switch (x % 4) {
            case 0: c = 1 + x % 16; break;
            case 1: c = 1 + x % 300; break;
            case 2: c = 65552 - 2 + x % 5; break;
            default: c = 1 + x % 70000; break;
            }
            if (c > size - off)
                c = size - off;
        }
        rc = cs_sink_write(s, data + off, c, &e);
        off += c;
    }
    if (rc == 0)
        rc = cs_sink_close(s, &e);
    cs_sink_free(s);
    crypto_generichash_final(&res->st, digest, 32);

    /* Documented outcomes only, each with its sentence. */
    if (rc == 0) {
        if (!res->closed)
            abort();
    } else {
        if (res->closed)
            abort(); /* nothing is committed after a failure */
        if (rc == CS_E_NOKEY) {
            if (strcmp(e.msg, "no identity matches") || res->bytes)
                abort();
        } else if (rc == CS_E_CORRUPT) {
            if (!starts(e.msg, "age header: ") && !starts(e.msg, "age payload: ") &&
                !starts(e.msg, "age armor: "))
                abort();
            if (starts(e.msg, "age header: ") && res->bytes)
                abort(); /* no plaintext before the header verified */
        } else if (rc != CS_E_NOMEM) {
            abort();
        }
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ids[0]) {
        cs_err e;
        if (sodium_init() < 0 || age_identity_parse(FUZZ_IDENTITY, &ids[0], &e) ||
            age_identity_scrypt_new("password", 4, &ids[1], &e))
            abort();
    }

    result a, b;
    uint8_t da[32], db[32];
    int ra = decrypt(data, size, 0, &a, da);
    int rb = decrypt(data, size, 1, &b, db);
    if (ra != rb || a.bytes != b.bytes || memcmp(da, db, sizeof da) || a.closed != b.closed)
        abort(); /* the result must not depend on how the input was split */

    /* The key parsers on the same bytes. */
    age_identity **list = NULL;
    size_t n = 0;
    cs_err e;
    if (age_identities_parse((const char *)data, size, &list, &n, &e) == 0) {
        if (n == 0 || !list)
            abort();
        age_identities_free(list, n);
    } else if (list || n || !e.msg[0]) {
        abort();
    }
    if (size < 4096) {
        char *s = malloc(size + 1);
        if (!s)
            abort();
        memcpy(s, data, size);
        s[size] = '\0';
        age_recipient *r = NULL;
        if (age_recipient_parse(s, &r, &e) == 0) {
            cs_buf back = CS_BUF_INIT;
            if (age_recipient_string(r, &back, &e) || strcmp(cs_buf_str(&back), s))
                abort(); /* a parsed recipient prints back to what it was */
            cs_buf_free(&back);
            age_recipient_free(r);
        }
        char hrp[128];
        uint8_t out[4096];
        size_t olen = 0;
        (void)bech32_decode(s, size, hrp, sizeof hrp, out, sizeof out, &olen);
        free(s);
    }
    return 0;
}
