/* test_age_vectors.c - the C2SP/CCTV age test vectors against crypto/age.
 *
 * Every file of the vectors directory (${CASSETTE_AGE_VECTORS}, else
 * ../shared/testdata/age-cctv from the repository root, from this source
 * file, or from the test binary's directory upwards) is one cmocka test: a
 * textual header (expect, payload, identity, passphrase, armored,
 * compressed, ...), an empty line, then an age file,
 * maybe zlib-compressed (inflated here: RFC 1950/1951, no libz needed).
 * Each file is decrypted twice, in one write and in uneven pieces, and the
 * outcome is compared with its expectation:
 *   success         -> no error, next closed, SHA-256 of the plaintext = payload
 *   payload failure -> CS_E_CORRUPT "age payload: ...", next never closed, and
 *                      the plaintext released before the error hashes to payload
 *   header failure  -> CS_E_CORRUPT "age header: ..."
 *   HMAC failure    -> CS_E_CORRUPT "age header: MAC ..."
 *   armor failure   -> CS_E_CORRUPT "age armor: ..."
 *   no match        -> CS_E_NOKEY
 * Vectors that need what crypto/age does not implement (post-quantum hybrid
 * identities, to unwrap an mlkem768x25519 stanza) are skipped, counted and
 * reported; hybrid vectors whose expected failure needs no unwrapping (a
 * malformed stanza, no match) are checked. A missing directory fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/err.h"
#include "crypto/age.h"
#include "io/sink.h"

/* ---- a small inflater (RFC 1950 zlib stream, RFC 1951 deflate) --------- */

typedef struct bitreader {
    const uint8_t *p;
    size_t n, pos;
    uint32_t buf;
    int cnt;
} bitreader;

static int getbits(bitreader *b, int need, uint32_t *out)
{
    while (b->cnt < need) {
        if (b->pos == b->n)
            return -1;
        b->buf |= (uint32_t)b->p[b->pos++] << b->cnt;
        b->cnt += 8;
    }
    *out = b->buf & ((1u << need) - 1u);
    b->buf >>= need;
    b->cnt -= need;
    return 0;
}

#define MAXBITS 15

typedef struct huffman {
    uint16_t count[MAXBITS + 1]; /* codes of each length */
    uint16_t symbol[320];        /* symbols ordered by code */
} huffman;

/* Canonical Huffman table from code lengths; -1 if over-subscribed. */
static int huff_build(huffman *h, const uint8_t *len, int n)
{
    uint16_t offs[MAXBITS + 1];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++)
        h->count[len[i]]++;
    int left = 1;
    for (int l = 1; l <= MAXBITS; l++) {
        left = left * 2 - h->count[l];
        if (left < 0)
            return -1;
    }
    offs[1] = 0;
    for (int l = 1; l < MAXBITS; l++)
        offs[l + 1] = (uint16_t)(offs[l] + h->count[l]);
    for (int i = 0; i < n; i++)
        if (len[i])
            h->symbol[offs[len[i]]++] = (uint16_t)i;
    return 0;
}

static int huff_decode(bitreader *b, const huffman *h)
{
    int code = 0, first = 0, index = 0;
    for (int l = 1; l <= MAXBITS; l++) {
        uint32_t bit;
        if (getbits(b, 1, &bit))
            return -1;
        code |= (int)bit;
        int count = h->count[l];
        if (code - first < count)
            return h->symbol[index + code - first];
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

static const uint16_t LBASE[29] = { 3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                    31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
static const uint8_t LEXTRA[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                    2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
static const uint16_t DBASE[30] = { 1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                    33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 };
static const uint8_t DEXTRA[30] = { 0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                    6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };

static int inflate_codes(bitreader *b, cs_buf *out, const huffman *lit, const huffman *dist)
{
    for (;;) {
        int sym = huff_decode(b, lit);
        if (sym < 0)
            return -1;
        if (sym < 256) {
            cs_buf_addch(out, (char)sym);
            continue;
        }
        if (sym == 256)
            return 0;
        sym -= 257;
        if (sym >= 29)
            return -1;
        uint32_t extra;
        if (getbits(b, LEXTRA[sym], &extra))
            return -1;
        size_t len = LBASE[sym] + extra;
        int ds = huff_decode(b, dist);
        if (ds < 0 || ds >= 30)
            return -1;
        if (getbits(b, DEXTRA[ds], &extra))
            return -1;
        size_t d = DBASE[ds] + extra;
        if (d > out->len)
            return -1;
        for (size_t i = 0; i < len; i++)
            cs_buf_addch(out, out->data[out->len - d]);
    }
}

static int zlib_inflate(const uint8_t *in, size_t n, cs_buf *out)
{
    static const uint8_t order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                       11, 4,  12, 3, 13, 2, 14, 1, 15 };
    if (n < 6 || (in[0] & 0x0f) != 8 || ((in[0] << 8) | in[1]) % 31 != 0 || (in[1] & 0x20))
        return -1;
    bitreader b = { in, n - 4, 2, 0, 0 };
    huffman lit, dist;
    uint32_t last = 0, type;
    while (!last) {
        if (getbits(&b, 1, &last) || getbits(&b, 2, &type))
            return -1;
        if (type == 0) {
            b.buf = 0;
            b.cnt = 0;
            if (b.pos + 4 > b.n)
                return -1;
            size_t len = (size_t)b.p[b.pos] | (size_t)b.p[b.pos + 1] << 8;
            size_t nlen = (size_t)b.p[b.pos + 2] | (size_t)b.p[b.pos + 3] << 8;
            b.pos += 4;
            if (len != (~nlen & 0xffff) || len > b.n - b.pos)
                return -1;
            cs_buf_add(out, b.p + b.pos, len);
            b.pos += len;
            continue;
        }
        uint8_t lens[320];
        if (type == 1) {
            int i = 0;
            for (; i < 144; i++) lens[i] = 8;
            for (; i < 256; i++) lens[i] = 9;
            for (; i < 280; i++) lens[i] = 7;
            for (; i < 288; i++) lens[i] = 8;
            huff_build(&lit, lens, 288);
            for (i = 0; i < 30; i++) lens[i] = 5;
            huff_build(&dist, lens, 30);
        } else if (type == 2) {
            uint32_t hlit, hdist, hclen, v;
            if (getbits(&b, 5, &hlit) || getbits(&b, 5, &hdist) || getbits(&b, 4, &hclen))
                return -1;
            hlit += 257;
            hdist += 1;
            hclen += 4;
            if (hlit > 286 || hdist > 30)
                return -1;
            memset(lens, 0, 19);
            for (uint32_t i = 0; i < hclen; i++) {
                if (getbits(&b, 3, &v))
                    return -1;
                lens[order[i]] = (uint8_t)v;
            }
            huffman cl;
            if (huff_build(&cl, lens, 19))
                return -1;
            uint32_t i = 0;
            while (i < hlit + hdist) {
                int sym = huff_decode(&b, &cl);
                uint32_t rep = 0;
                uint8_t val = 0;
                if (sym < 0)
                    return -1;
                if (sym < 16) {
                    lens[i++] = (uint8_t)sym;
                    continue;
                }
                if (sym == 16) {
                    if (i == 0 || getbits(&b, 2, &rep))
                        return -1;
                    val = lens[i - 1];
                    rep += 3;
                } else if (sym == 17) {
                    if (getbits(&b, 3, &rep))
                        return -1;
                    rep += 3;
                } else {
                    if (getbits(&b, 7, &rep))
                        return -1;
                    rep += 11;
                }
                if (i + rep > hlit + hdist)
                    return -1;
                while (rep--)
                    lens[i++] = val;
            }
            if (huff_build(&lit, lens, (int)hlit) || huff_build(&dist, lens + hlit, (int)hdist))
                return -1;
        } else {
            return -1;
        }
        if (inflate_codes(&b, out, &lit, &dist))
            return -1;
    }
    /* Adler-32 of the output, big endian, after the deflate data. */
    const uint8_t *a = in + n - 4;
    uint32_t want = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    uint32_t s1 = 1, s2 = 0;
    for (size_t i = 0; i < out->len; i++) {
        s1 = (s1 + (uint8_t)out->data[i]) % 65521;
        s2 = (s2 + s1) % 65521;
    }
    return (s2 << 16 | s1) == want ? 0 : -1;
}

/* ---- a sink that hashes what it gets (SHA-256) ------------------------- */

typedef struct hash_out {
    crypto_hash_sha256_state st;
    size_t bytes;
    int closed;
} hash_out;

typedef struct hash_sink {
    cs_sink base;
    hash_out *out;
} hash_sink;

static int hs_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    (void)e;
    hash_sink *h = (hash_sink *)s;
    crypto_hash_sha256_update(&h->out->st, p, n);
    h->out->bytes += n;
    return 0;
}

static int hs_close(cs_sink *s, cs_err *e)
{
    (void)e;
    ((hash_sink *)s)->out->closed = 1;
    return 0;
}

static void hs_free(cs_sink *s)
{
    free(s);
}

static const cs_sink_ops hs_ops = { hs_write, hs_close, hs_free };

static cs_sink *hash_sink_new(hash_out *out)
{
    hash_sink *h = calloc(1, sizeof *h);
    h->base.ops = &hs_ops;
    h->out = out;
    memset(out, 0, sizeof *out);
    crypto_hash_sha256_init(&out->st);
    return &h->base;
}

/* ---- vectors ------------------------------------------------------------ */

typedef struct vector {
    char *name;
    char *path;
    char expect[32];
    char payload[65];
    char **identities;
    size_t nidentities;
    char **passphrases;
    size_t npassphrases;
    int armored;
    int compressed;
    int unknown_key;
    cs_buf body; /* the age file, inflated */
} vector;

static char *vectors_dir;
static vector *vectors;
static size_t nvectors;

static char *find_dir(void)
{
    const char *env = getenv("CASSETTE_AGE_VECTORS");
    if (env && *env)
        return strdup(env);
    const char *rel = "../shared/testdata/age-cctv";
    struct stat st;
    if (stat(rel, &st) == 0 && S_ISDIR(st.st_mode))
        return strdup(rel);
    /* Relative to this source file: tests/unit/ -> repository root -> .. */
    char *src = cs_strdup(__FILE__);
    char *slash = strrchr(src, '/');
    char *p = slash ? (*slash = '\0', cs_sprintf("%s/../../%s", src, rel))
                    : cs_sprintf("../../%s", rel);
    free(src);
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
        return p;
    free(p);
    /* Relative to the binary (build/tests/ or build/asan/tests/): walk up. */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    for (int up = 0; up < 6; up++) {
        char *slash2 = strrchr(exe, '/');
        if (!slash2 || slash2 == exe)
            break;
        *slash2 = '\0';
        p = cs_sprintf("%s/%s", exe, rel);
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            return p;
        free(p);
    }
    return NULL;
}

static int read_all(const char *path, cs_buf *out)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    char tmp[65536];
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        cs_buf_add(out, tmp, (size_t)r);
    }
    close(fd);
    return 0;
}

static void push(char ***list, size_t *n, const char *s, size_t len)
{
    *list = realloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = cs_strndup(s, len);
}

/* Parse the textual header and the age file of a vector. */
static int load_vector(vector *v)
{
    cs_buf raw = CS_BUF_INIT;
    int rc = -1;
    if (read_all(v->path, &raw) != 0)
        goto out;
    size_t pos = 0;
    for (;;) {
        const char *line = raw.data + pos;
        const char *nl = memchr(line, '\n', raw.len - pos);
        if (!nl)
            goto out;
        size_t n = (size_t)(nl - line);
        pos += n + 1;
        if (n == 0)
            break;
        const char *colon = memchr(line, ':', n);
        if (!colon || colon + 1 >= line + n || colon[1] != ' ')
            goto out;
        size_t klen = (size_t)(colon - line);
        const char *val = colon + 2;
        size_t vlen = n - klen - 2;
#define KEY(k) (klen == strlen(k) && memcmp(line, k, klen) == 0)
        if (KEY("expect"))
            snprintf(v->expect, sizeof v->expect, "%.*s", (int)vlen, val);
        else if (KEY("payload"))
            snprintf(v->payload, sizeof v->payload, "%.*s", (int)vlen, val);
        else if (KEY("identity"))
            push(&v->identities, &v->nidentities, val, vlen);
        else if (KEY("passphrase"))
            push(&v->passphrases, &v->npassphrases, val, vlen);
        else if (KEY("armored"))
            v->armored = vlen == 3 && memcmp(val, "yes", 3) == 0;
        else if (KEY("compressed")) {
            if (vlen == 4 && memcmp(val, "zlib", 4) == 0)
                v->compressed = 1;
            else
                v->unknown_key = 1;
        } else if (!KEY("file key") && !KEY("comment"))
            v->unknown_key = 1;
#undef KEY
    }
    if (v->compressed) {
        if (zlib_inflate((const uint8_t *)raw.data + pos, raw.len - pos, &v->body) != 0)
            goto out;
    } else {
        cs_buf_add(&v->body, raw.data + pos, raw.len - pos);
    }
    rc = 0;
out:
    cs_buf_free(&raw);
    return rc;
}

static void free_vector(vector *v)
{
    for (size_t i = 0; i < v->nidentities; i++)
        free(v->identities[i]);
    for (size_t i = 0; i < v->npassphrases; i++)
        free(v->passphrases[i]);
    free(v->identities);
    free(v->passphrases);
    cs_buf_free(&v->body);
    free(v->name);
    free(v->path);
}

/* Decrypt v->body, in one write (pieces == 0) or in uneven pieces. */
static int decrypt(const vector *v, age_identity *const *ids, size_t nids, int pieces,
                   hash_out *out, cs_err *e)
{
    static const size_t sizes[] = { 1, 13, 4096, 65552, 7, 65553, 100000, 2 };
    cs_sink *s = age_decrypt_new(hash_sink_new(out), ids, nids, e);
    assert_non_null(s);
    const uint8_t *p = (const uint8_t *)v->body.data;
    size_t n = v->body.len, off = 0, i = 0;
    int rc = 0;
    while (off < n && rc == 0) {
        size_t c = pieces ? sizes[i++ % (sizeof sizes / sizeof sizes[0])] : n;
        if (c > n - off)
            c = n - off;
        rc = cs_sink_write(s, p + off, c, e);
        off += c;
    }
    if (rc == 0)
        rc = cs_sink_close(s, e);
    cs_sink_free(s);
    return rc;
}

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static void check_outcome(const vector *v, int rc, const cs_err *e, hash_out *out,
                          const char *how)
{
    uint8_t digest[crypto_hash_sha256_BYTES];
    char hex[2 * sizeof digest + 1];
    crypto_hash_sha256_final(&out->st, digest);
    cs_hex(digest, sizeof digest, hex);
    const char *exp = v->expect;
    int ok;
    if (!strcmp(exp, "success"))
        ok = rc == 0 && out->closed && !strcmp(hex, v->payload);
    else if (!strcmp(exp, "payload failure"))
        ok = rc == CS_E_CORRUPT && has_prefix(e->msg, "age payload: ") && !out->closed &&
             (!v->payload[0] || !strcmp(hex, v->payload));
    else if (!strcmp(exp, "header failure"))
        ok = rc == CS_E_CORRUPT && has_prefix(e->msg, "age header: ") && out->bytes == 0;
    else if (!strcmp(exp, "HMAC failure"))
        ok = rc == CS_E_CORRUPT && has_prefix(e->msg, "age header: MAC") && out->bytes == 0;
    else if (!strcmp(exp, "armor failure"))
        ok = rc == CS_E_CORRUPT && has_prefix(e->msg, "age armor: ") && out->bytes == 0;
    else if (!strcmp(exp, "no match"))
        ok = rc == CS_E_NOKEY && !strcmp(e->msg, "no identity matches") && out->bytes == 0;
    else
        ok = 0;
    if (!ok)
        fail_msg("%s (%s): expected %s, got rc %d (%s) \"%s\", %zu plaintext bytes %s, hash %s",
                 v->name, how, exp, rc, cs_err_name(rc), rc ? e->msg : "", out->bytes,
                 out->closed ? "committed" : "not committed", hex);
}

/* Why a vector cannot be checked, or NULL. */
static const char *skip_reason(const vector *v, int pq)
{
    if (v->unknown_key)
        return "unknown header key (the README says to ignore such files)";
    if (pq && (!strcmp(v->expect, "success") || !strcmp(v->expect, "payload failure") ||
               !strcmp(v->expect, "HMAC failure")))
        return "post-quantum hybrid identities (mlkem768x25519) are not implemented";
    return NULL;
}

static void run_vector(void **state)
{
    vector *v = *state;
    age_identity **ids = calloc(v->nidentities + v->npassphrases + 1, sizeof *ids);
    size_t nids = 0;
    cs_err e;
    for (size_t i = 0; i < v->nidentities; i++) {
        cs_err_clear(&e);
        age_identity *id = NULL;
        if (age_identity_parse(v->identities[i], &id, &e) == 0)
            ids[nids++] = id;
        else if (!has_prefix(v->identities[i], "AGE-SECRET-KEY-PQ-1"))
            fail_msg("%s: identity does not parse: %s", v->name, e.msg);
    }
    for (size_t i = 0; i < v->npassphrases; i++) {
        age_identity *id = NULL;
        assert_int_equal(age_identity_scrypt_new(v->passphrases[i], 0, &id, &e), 0);
        ids[nids++] = id;
    }
    for (int pieces = 0; pieces <= 1; pieces++) {
        hash_out out;
        cs_err_clear(&e);
        int rc = decrypt(v, ids, nids, pieces, &out, &e);
        check_outcome(v, rc, &e, &out, pieces ? "uneven pieces" : "one write");
    }
    for (size_t i = 0; i < nids; i++)
        age_identity_free(ids[i]);
    free(ids);
}

static void test_vectors_present(void **state)
{
    (void)state;
    if (!vectors_dir)
        fail_msg("age test vectors not found: set CASSETTE_AGE_VECTORS or provide "
                 "../shared/testdata/age-cctv (relative to the repository root)");
    assert_true(nvectors > 100);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    vectors_dir = find_dir();
    struct dirent **ents = NULL;
    int nents = vectors_dir ? scandir(vectors_dir, &ents, NULL, by_name) : 0;
    if (nents < 0)
        nents = 0;
    vectors = calloc((size_t)nents + 1, sizeof *vectors);
    struct CMUnitTest *tests = calloc((size_t)nents + 2, sizeof *tests);
    size_t ntests = 0, skipped = 0, nbad = 0;
    tests[ntests++] = (struct CMUnitTest)cmocka_unit_test(test_vectors_present);
    cs_buf reasons = CS_BUF_INIT;
    for (int i = 0; i < nents; i++) {
        const char *name = ents[i]->d_name;
        if (name[0] == '.' || !strcmp(name, "README.md") || !strcmp(name, "LICENSE")) {
            free(ents[i]);
            continue;
        }
        vector *v = &vectors[nvectors++];
        v->name = strdup(name);
        v->path = cs_sprintf("%s/%s", vectors_dir, name);
        free(ents[i]);
        if (load_vector(v) != 0) {
            fprintf(stderr, "test_age_vectors: cannot read vector %s\n", v->name);
            nbad++;
            continue;
        }
        int pq = 0;
        for (size_t k = 0; k < v->nidentities; k++)
            pq |= has_prefix(v->identities[k], "AGE-SECRET-KEY-PQ-1");
        const char *why = skip_reason(v, pq);
        if (why) {
            skipped++;
            cs_buf_printf(&reasons, "#   %s: %s\n", v->name, why);
            continue;
        }
        tests[ntests].name = v->name;
        tests[ntests].test_func = run_vector;
        tests[ntests].initial_state = v;
        ntests++;
    }
    free(ents);
    printf("# age vectors in %s: %zu files, %zu checked, %zu skipped, %zu unreadable\n",
           vectors_dir ? vectors_dir : "(not found)", nvectors, ntests - 1, skipped, nbad);
    if (reasons.len)
        printf("# skipped %zu vectors:\n%s", skipped, cs_buf_str(&reasons));
    fflush(stdout);
    cs_buf_free(&reasons);
    int failed = _cmocka_run_group_tests("age_vectors", tests, ntests, NULL, NULL);
    for (size_t i = 0; i < nvectors; i++)
        free_vector(&vectors[i]);
    free(vectors);
    free(tests);
    free(vectors_dir);
    return failed || nbad ? 1 : 0;
}
