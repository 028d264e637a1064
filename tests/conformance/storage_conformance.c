/* storage_conformance.c - the checks of the storage contract (see the
 * header). A check returns SC_PASS, or fails at its first broken rule with
 * the line and what was seen. */
#include "storage_conformance.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/strlist.h"
#include "io/filters.h"

#define MIB ((size_t)1 << 20)

typedef struct sc_ctx {
    cs_storage *st;
    char *dir;         /* "BASE/NAME/": every key of the check starts so */
    cs_err e;
    char *why;
    size_t why_size;
    cs_strlist names;  /* the keys made by key(), owned here */
} sc_ctx;

static enum sc_result sc_fail(sc_ctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum sc_result sc_fail(sc_ctx *c, int line, const char *fmt, ...)
{
    int n = snprintf(c->why, c->why_size, "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < c->why_size)
        vsnprintf(c->why + n, c->why_size - (size_t)n, fmt, ap);
    va_end(ap);
    return SC_FAIL;
}

/* Fail the check unless cond holds. */
#define EXPECT(c, cond, ...)                                                                                          \
    do {                                                                                                              \
        if (!(cond))                                                                                                  \
            return sc_fail((c), __LINE__, __VA_ARGS__);                                                               \
    } while (0)

/* Fail the check unless call (which reports into c->e) returns want. */
#define RC_IS(c, want, call)                                                                                          \
    do {                                                                                                              \
        cs_err_clear(&(c)->e);                                                                                        \
        int rc_ = (call);                                                                                             \
        if (rc_ != (want))                                                                                            \
            return sc_fail((c), __LINE__, "%s gave %d (%s: %s), wanted %d (%s)", #call, rc_, cs_err_name(rc_),        \
                           (c)->e.msg, (want), cs_err_name(want));                                                    \
    } while (0)
#define OK(c, call) RC_IS(c, 0, call)

/* dir + name, kept until the check ends. */
static const char *key(sc_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *key(sc_ctx *c, const char *fmt, ...)
{
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, c->dir);
    va_list ap;
    va_start(ap, fmt);
    cs_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    cs_strlist_add(&c->names, cs_buf_str(&b));
    cs_buf_free(&b);
    return c->names.items[c->names.n - 1];
}

/* ---- data: a pattern any chunking reproduces ------------------------------ */

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The bytes [at, at + n) of pattern seed. */
static void pattern(uint64_t seed, uint64_t at, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t pos = at + i;
        out[i] = (uint8_t)(splitmix(seed ^ (pos >> 3)) >> (8 * (pos & 7)));
    }
}

/* Write size bytes of pattern seed into w in chunks of odd sizes (the
 * driver must not depend on how writes are cut); digest gets their hash. */
static int write_pattern(cs_sink *w, uint64_t seed, size_t size, uint8_t digest[CS_HASH_BYTES], cs_err *e)
{
    static const size_t chunks[] = { 1, 100003, 65536, 7, MIB + 3, 4096, 333333 };
    uint8_t *buf = cs_malloc(MIB + 3);
    cs_hash_result res; /* the same content hash get_hash takes */
    cs_sink *h = cs_hash_filter_new(NULL, &res);
    int rc = 0;
    for (size_t at = 0, i = 0; !rc && at < size; i++) {
        size_t n = chunks[i % (sizeof chunks / sizeof chunks[0])];
        n = n < size - at ? n : size - at;
        pattern(seed, at, buf, n);
        rc = cs_sink_write(h, buf, n, e);
        if (!rc)
            rc = cs_sink_write(w, buf, n, e);
        at += n;
    }
    if (!rc)
        rc = cs_sink_close(h, e);
    if (!rc)
        memcpy(digest, res.digest, CS_HASH_BYTES);
    cs_sink_free(h);
    free(buf);
    return rc;
}

/* Store size bytes of pattern seed at k. */
static int put_pattern(sc_ctx *c, const char *k, uint64_t seed, size_t size, uint8_t digest[CS_HASH_BYTES])
{
    cs_sink *w = NULL;
    int rc = cs_storage_put(c->st, k, 0, &w, &c->e);
    if (!rc)
        rc = write_pattern(w, seed, size, digest, &c->e);
    if (!rc)
        rc = cs_sink_close(w, &c->e);
    cs_sink_free(w);
    return rc;
}

/* The hash and size of what get streams. */
static int get_hash(sc_ctx *c, const char *k, cs_hash_result *res)
{
    cs_sink *h = cs_hash_filter_new(NULL, res);
    int rc = cs_storage_get(c->st, k, h, &c->e);
    if (!rc)
        rc = cs_sink_close(h, &c->e);
    cs_sink_free(h);
    return rc;
}

static int put_str(sc_ctx *c, const char *k, int flags, const char *text)
{
    return cs_storage_put_bytes(c->st, k, flags, text, strlen(text), &c->e);
}

static bool content_is(sc_ctx *c, const char *k, const char *text)
{
    cs_buf b = CS_BUF_INIT;
    cs_err e;
    cs_err_clear(&e);
    bool same = cs_storage_get_bytes(c->st, k, MIB, &b, &e) == 0 && b.len == strlen(text) &&
                !memcmp(cs_buf_str(&b), text, b.len);
    cs_buf_free(&b);
    return same;
}

/* ---- listings -------------------------------------------------------------- */

typedef struct listing {
    cs_strlist keys;
    cs_storage_stat *stats; /* by index of keys */
    int stop_after;         /* > 0: the callback returns 7 after so many keys */
} listing;

static int collect(const char *k, const cs_storage_stat *st, void *arg)
{
    listing *l = arg;
    cs_strlist_add(&l->keys, k);
    l->stats = cs_realloc(l->stats, l->keys.n * sizeof *l->stats);
    l->stats[l->keys.n - 1] = *st;
    return l->stop_after > 0 && (int)l->keys.n >= l->stop_after ? 7 : 0;
}

static void listing_free(listing *l)
{
    cs_strlist_free(&l->keys);
    free(l->stats);
    memset(l, 0, sizeof *l);
}

static int list_into(sc_ctx *c, const char *prefix, listing *l)
{
    listing_free(l);
    return cs_storage_list(c->st, prefix, collect, l, &c->e);
}

/* The index of k in l, or -1. */
static long listed(const listing *l, const char *k)
{
    for (size_t i = 0; i < l->keys.n; i++)
        if (!strcmp(l->keys.items[i], k))
            return (long)i;
    return -1;
}

/* Does the listing of prefix hold exactly the n keys? */
static enum sc_result expect_listing(sc_ctx *c, int line, const char *prefix, const char *const *keys, size_t n)
{
    listing l = { 0 };
    cs_err_clear(&c->e);
    int rc = list_into(c, prefix, &l);
    enum sc_result r = SC_PASS;
    if (rc)
        r = sc_fail(c, line, "list %s: %s", prefix, c->e.msg);
    else if (l.keys.n != n)
        r = sc_fail(c, line, "list %s gave %zu keys (first %s), wanted %zu", prefix, l.keys.n,
                    l.keys.n ? l.keys.items[0] : "-", n);
    for (size_t i = 0; r == SC_PASS && i < n; i++)
        if (listed(&l, keys[i]) < 0)
            r = sc_fail(c, line, "list %s misses %s", prefix, keys[i]);
    listing_free(&l);
    return r;
}

#define EXPECT_LISTING(c, prefix, ...)                                                                                \
    do {                                                                                                              \
        const char *const want_[] = { __VA_ARGS__ };                                                                  \
        enum sc_result r_ = expect_listing((c), __LINE__, (prefix), want_, sizeof want_ / sizeof want_[0]);           \
        if (r_ != SC_PASS)                                                                                            \
            return r_;                                                                                                \
    } while (0)
#define EXPECT_EMPTY(c, prefix)                                                                                       \
    do {                                                                                                              \
        enum sc_result r_ = expect_listing((c), __LINE__, (prefix), NULL, 0);                                         \
        if (r_ != SC_PASS)                                                                                            \
            return r_;                                                                                                \
    } while (0)

/* ---- the checks ------------------------------------------------------------ */

/* Locks rely on it: an exclusive put creates a key at most once. */
static enum sc_result check_exclusive_create(sc_ctx *c)
{
    const char *k = key(c, "lock");
    OK(c, put_str(c, k, CS_PUT_EXCLUSIVE, "first"));
    RC_IS(c, CS_E_EXISTS, put_str(c, k, CS_PUT_EXCLUSIVE, "second"));
    EXPECT(c, content_is(c, k, "first"), "a failed exclusive put changed the object");
    OK(c, put_str(c, k, 0, "third"));
    EXPECT(c, content_is(c, k, "third"), "a plain put did not replace the object");
    OK(c, cs_storage_del(c->st, k, &c->e));
    OK(c, put_str(c, k, CS_PUT_EXCLUSIVE, "fourth"));
    EXPECT(c, content_is(c, k, "fourth"), "an exclusive put after a delete stored something else");
    /* An exclusive writer freed without close takes nothing. */
    const char *k2 = key(c, "lock2");
    cs_sink *w = NULL;
    OK(c, cs_storage_put(c->st, k2, CS_PUT_EXCLUSIVE, &w, &c->e));
    OK(c, cs_sink_write(w, "x", 1, &c->e));
    cs_sink_free(w);
    OK(c, put_str(c, k2, CS_PUT_EXCLUSIVE, "after"));
    return SC_PASS;
}

static enum sc_result expect_missing(sc_ctx *c, int line, const char *k)
{
    cs_storage_stat st;
    cs_err_clear(&c->e);
    int rc = cs_storage_stat(c->st, k, &st, &c->e);
    if (rc != CS_E_NOTFOUND)
        return sc_fail(c, line, "stat %s gave %d (%s), wanted not found", k, rc, c->e.msg);
    cs_sink *null = cs_null_sink_new();
    cs_err_clear(&c->e);
    rc = cs_storage_get(c->st, k, null, &c->e);
    cs_sink_free(null);
    if (rc != CS_E_NOTFOUND)
        return sc_fail(c, line, "get %s gave %d (%s), wanted not found", k, rc, c->e.msg);
    return SC_PASS;
}

#define EXPECT_MISSING(c, k)                                                                                          \
    do {                                                                                                              \
        enum sc_result r_ = expect_missing((c), __LINE__, (k));                                                       \
        if (r_ != SC_PASS)                                                                                            \
            return r_;                                                                                                \
    } while (0)

/* Nothing of an object shows (get, stat, list) until its writer closes. */
static enum sc_result check_invisible_until_close(sc_ctx *c)
{
    const char *small = key(c, "small"), *large = key(c, "large");
    uint8_t digest[CS_HASH_BYTES];
    cs_sink *w = NULL, *big = NULL;
    OK(c, cs_storage_put(c->st, small, 0, &w, &c->e));
    OK(c, cs_sink_write(w, "abc", 3, &c->e));
    OK(c, cs_storage_put(c->st, large, 0, &big, &c->e));
    int rc = write_pattern(big, 1, SC_LARGE_SIZE - 1, digest, &c->e); /* parts in flight, the last one held */
    enum sc_result r = rc ? sc_fail(c, __LINE__, "writing %s: %s", large, c->e.msg) : SC_PASS;
    if (r == SC_PASS)
        r = expect_missing(c, __LINE__, small);
    if (r == SC_PASS)
        r = expect_missing(c, __LINE__, large);
    if (r == SC_PASS)
        r = expect_listing(c, __LINE__, c->dir, NULL, 0);
    cs_err_clear(&c->e);
    if (r == SC_PASS && (cs_sink_close(w, &c->e) || cs_sink_close(big, &c->e)))
        r = sc_fail(c, __LINE__, "close: %s", c->e.msg);
    cs_sink_free(w);
    cs_sink_free(big);
    if (r != SC_PASS)
        return r;
    cs_storage_stat st;
    OK(c, cs_storage_stat(c->st, small, &st, &c->e));
    EXPECT(c, st.size == 3, "%s has %llu bytes, wanted 3", small, (unsigned long long)st.size);
    OK(c, cs_storage_stat(c->st, large, &st, &c->e));
    EXPECT(c, st.size == SC_LARGE_SIZE - 1, "%s has %llu bytes", large, (unsigned long long)st.size);
    EXPECT_LISTING(c, c->dir, small, large);
    return SC_PASS;
}

static int count_upload(const char *k, const char *token, int64_t initiated, void *arg)
{
    (void)k;
    (void)token;
    (void)initiated;
    (*(size_t *)arg)++;
    return 0;
}

/* A writer freed without close leaves nothing: no object, no upload. */
static enum sc_result check_free_without_close(sc_ctx *c)
{
    const char *small = key(c, "small"), *large = key(c, "large");
    uint8_t digest[CS_HASH_BYTES];
    cs_sink *w = NULL;
    OK(c, cs_storage_put(c->st, small, 0, &w, &c->e));
    OK(c, cs_sink_write(w, "abc", 3, &c->e));
    cs_sink_free(w);
    w = NULL;
    OK(c, cs_storage_put(c->st, large, 0, &w, &c->e));
    cs_err_clear(&c->e);
    int rc = write_pattern(w, 2, SC_LARGE_SIZE, digest, &c->e);
    cs_sink_free(w);
    EXPECT(c, rc == 0, "writing %s: %s", large, c->e.msg);
    EXPECT_MISSING(c, small);
    EXPECT_MISSING(c, large);
    EXPECT_EMPTY(c, c->dir);
    size_t uploads = 0;
    OK(c, cs_storage_list_resumable(c->st, c->dir, count_upload, &uploads, &c->e));
    EXPECT(c, uploads == 0, "an ordinary writer freed without close left %zu unfinished uploads", uploads);
    return SC_PASS;
}

/* While writers are open, list shows the committed keys only. */
static enum sc_result check_list_hides_partial_writes(sc_ctx *c)
{
    const char *done[] = { key(c, "done-1"), key(c, "done-2"), key(c, "sub/done-3") };
    for (size_t i = 0; i < 3; i++)
        OK(c, put_str(c, done[i], 0, "committed"));
    cs_sink *open_writers[3] = { NULL, NULL, NULL };
    const char *partial[] = { key(c, "partial-1"), key(c, "sub/partial-2"), key(c, "partial-3") };
    uint8_t digest[CS_HASH_BYTES];
    enum sc_result r = SC_PASS;
    for (size_t i = 0; r == SC_PASS && i < 3; i++) {
        cs_err_clear(&c->e);
        int rc = cs_storage_put(c->st, partial[i], i == 2 ? CS_PUT_EXCLUSIVE : 0, &open_writers[i], &c->e);
        if (!rc)
            rc = write_pattern(open_writers[i], 3 + i, i == 0 ? SC_LARGE_SIZE : 1000 * (i + 1), digest, &c->e);
        if (rc)
            r = sc_fail(c, __LINE__, "writing %s: %s", partial[i], c->e.msg);
    }
    if (r == SC_PASS)
        r = expect_listing(c, __LINE__, c->dir, done, 3);
    if (r == SC_PASS)
        r = expect_listing(c, __LINE__, key(c, "sub/"), done + 2, 1);
    for (size_t i = 0; i < 3; i++)
        cs_sink_free(open_writers[i]);
    if (r != SC_PASS)
        return r;
    EXPECT_LISTING(c, c->dir, done[0], done[1], done[2]);
    return SC_PASS;
}

/* Prefixes select keys by their beginning, across '/' and within names. */
static enum sc_result check_list_prefixes(sc_ctx *c)
{
    const char *abc1 = key(c, "a/b/c1"), *abc2 = key(c, "a/b/c2"), *abc = key(c, "a/bc"), *axy = key(c, "a/x/y"),
               *ab = key(c, "ab"), *b = key(c, "b");
    const char *all[] = { abc1, abc2, abc, axy, ab, b };
    for (size_t i = 0; i < 6; i++) {
        char text[8];
        snprintf(text, sizeof text, "%zu", i * 11); /* sizes 1 or 2: each its own */
        OK(c, put_str(c, all[i], 0, text));
    }
    EXPECT_LISTING(c, c->dir, abc1, abc2, abc, axy, ab, b);
    EXPECT_LISTING(c, key(c, "a/"), abc1, abc2, abc, axy);
    EXPECT_LISTING(c, key(c, "a"), abc1, abc2, abc, axy, ab);
    EXPECT_LISTING(c, key(c, "a/b"), abc1, abc2, abc);
    EXPECT_LISTING(c, key(c, "a/b/"), abc1, abc2);
    EXPECT_LISTING(c, abc1, abc1);
    EXPECT_EMPTY(c, key(c, "zz"));
    EXPECT_EMPTY(c, key(c, "a/b/c3"));

    listing l = { 0 };
    cs_err_clear(&c->e);
    int rc = list_into(c, c->dir, &l);
    bool sizes_ok = rc == 0 && l.keys.n == 6;
    for (size_t i = 0; sizes_ok && i < 6; i++) {
        long at = listed(&l, all[i]);
        sizes_ok = at >= 0 && l.stats[at].size == (i == 0 ? 1u : 2u);
    }
    listing_free(&l);
    EXPECT(c, sizes_ok, "list reports wrong sizes (rc %d %s)", rc, c->e.msg);

    /* A callback's non-zero stops the listing and is what list returns. */
    l.stop_after = 2;
    cs_err_clear(&c->e);
    rc = cs_storage_list(c->st, c->dir, collect, &l, &c->e);
    size_t seen = l.keys.n;
    listing_free(&l);
    EXPECT(c, rc == 7 && seen == 2, "a stopped listing returned %d after %zu keys, wanted 7 after 2", rc, seen);
    return SC_PASS;
}

static int strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define MANY 1100 /* more than one page of an S3 listing or batch delete (1000) */

/* Listing many keys pages through them all; del_many batches. */
static enum sc_result check_list_many_keys(sc_ctx *c)
{
    const char **keys = cs_calloc(MANY + 4, sizeof *keys);
    const char *x = "xxxxxx";
    for (size_t i = 0; i < MANY; i++)
        keys[i] = key(c, "many/k%05zu", i);
    keys[MANY] = key(c, "many-other/k");
    for (size_t i = 0; i <= MANY; i++) {
        cs_err_clear(&c->e);
        if (cs_storage_put_bytes(c->st, keys[i], 0, x, i % 7, &c->e)) {
            const char *k = keys[i]; /* owned by c */
            free(keys);
            return sc_fail(c, __LINE__, "put %s: %s", k, c->e.msg);
        }
    }
    listing l = { 0 };
    cs_err_clear(&c->e);
    int rc = list_into(c, key(c, "many/"), &l);
    size_t n = l.keys.n, bad = SIZE_MAX;
    for (size_t i = 0; !rc && i < l.keys.n && bad == SIZE_MAX; i++) {
        const char *k = l.keys.items[i];
        size_t dl = strlen(c->dir);
        unsigned long idx = strtoul(k + dl + strlen("many/k"), NULL, 10);
        if (strncmp(k, keys[0], dl + strlen("many/k")) != 0 || idx >= MANY || strcmp(k, keys[idx]) != 0 ||
            l.stats[i].size != idx % 7)
            bad = i;
    }
    /* Every key once: count distinct names (sorted copy). */
    if (l.keys.n)
        qsort(l.keys.items, l.keys.n, sizeof *l.keys.items, strcmp_ptr);
    size_t dup = 0;
    for (size_t i = 1; i < l.keys.n; i++)
        dup += !strcmp(l.keys.items[i - 1], l.keys.items[i]);
    listing_free(&l);
    if (rc || n != MANY || bad != SIZE_MAX || dup) {
        free(keys);
        return sc_fail(c, __LINE__, "list of %d keys gave rc %d (%s), %zu keys, %zu repeated, first wrong at %zu", MANY,
                       rc, c->e.msg, n, dup, bad);
    }
    keys[MANY + 1] = key(c, "many/missing-1");
    keys[MANY + 2] = key(c, "many/missing-2");
    keys[MANY + 3] = key(c, "nowhere/missing-3");
    cs_err_clear(&c->e);
    rc = cs_storage_del_many(c->st, keys, MANY + 4, &c->e);
    free(keys);
    EXPECT(c, rc == 0, "del_many of %d keys (3 missing): %s", MANY + 4, c->e.msg);
    EXPECT_EMPTY(c, c->dir);
    return SC_PASS;
}

/* Deleting what is not there is fine; what is deleted is gone. */
static enum sc_result check_delete(sc_ctx *c)
{
    const char *k = key(c, "k"), *missing = key(c, "no/such/key");
    OK(c, cs_storage_del(c->st, missing, &c->e));
    OK(c, put_str(c, k, 0, "x"));
    OK(c, cs_storage_del(c->st, k, &c->e));
    EXPECT_MISSING(c, k);
    OK(c, cs_storage_del(c->st, k, &c->e));
    OK(c, cs_storage_del_many(c->st, NULL, 0, &c->e));
    const char *gone[] = { k, missing };
    OK(c, cs_storage_del_many(c->st, gone, 2, &c->e));
    EXPECT_EMPTY(c, c->dir);
    return SC_PASS;
}

/* stat gives the size and a modification time near now; list agrees. */
static enum sc_result check_stat_size_mtime(sc_ctx *c)
{
    const char *k0 = key(c, "empty"), *k1 = key(c, "one"), *k2 = key(c, "thousand");
    int64_t t0 = (int64_t)time(NULL);
    char thousand[1001];
    memset(thousand, 'k', 1000);
    thousand[1000] = '\0';
    OK(c, put_str(c, k0, 0, ""));
    OK(c, put_str(c, k1, 0, "1"));
    OK(c, put_str(c, k2, 0, thousand));
    int64_t t1 = (int64_t)time(NULL);
    const char *keys[] = { k0, k1, k2 };
    const uint64_t sizes[] = { 0, 1, 1000 };
    listing l = { 0 };
    OK(c, list_into(c, c->dir, &l));
    for (size_t i = 0; i < 3; i++) {
        cs_storage_stat st;
        cs_err_clear(&c->e);
        int rc = cs_storage_stat(c->st, keys[i], &st, &c->e);
        long at = listed(&l, keys[i]);
        bool good = rc == 0 && st.size == sizes[i] && st.mtime >= t0 - 60 && st.mtime <= t1 + 60 && at >= 0 &&
                    l.stats[at].size == sizes[i] && l.stats[at].mtime - st.mtime <= 1 &&
                    st.mtime - l.stats[at].mtime <= 1;
        if (!good) {
            enum sc_result r = sc_fail(c, __LINE__, "%s: stat rc %d (%s) size %llu mtime %lld (now %lld), listed %s "
                                                    "size %llu mtime %lld; wanted size %llu",
                                       keys[i], rc, c->e.msg, (unsigned long long)st.size, (long long)st.mtime,
                                       (long long)t1, at >= 0 ? "with" : "without",
                                       at >= 0 ? (unsigned long long)l.stats[at].size : 0ull,
                                       at >= 0 ? (long long)l.stats[at].mtime : 0ll, (unsigned long long)sizes[i]);
            listing_free(&l);
            return r;
        }
    }
    listing_free(&l);
    EXPECT(c, content_is(c, k0, ""), "the empty object does not read back empty");
    return SC_PASS;
}

/* A key that is not there is CS_E_NOTFOUND to get, stat and get_bytes;
 * so is the beginning of a key ("dir" of "dir/x"). */
static enum sc_result check_missing_keys(sc_ctx *c)
{
    const char *k = key(c, "nothing"), *inner = key(c, "d/x"), *outer = key(c, "d");
    EXPECT_MISSING(c, k);
    cs_buf b = CS_BUF_INIT;
    cs_err_clear(&c->e);
    int rc = cs_storage_get_bytes(c->st, k, 100, &b, &c->e);
    cs_buf_free(&b);
    EXPECT(c, rc == CS_E_NOTFOUND, "get_bytes of a missing key gave %d (%s)", rc, c->e.msg);
    OK(c, put_str(c, inner, 0, "x"));
    EXPECT_MISSING(c, outer);
    return SC_PASS;
}

/* An object of several parts comes back byte for byte, however it was cut
 * into writes. */
static enum sc_result check_large_object(sc_ctx *c)
{
    const char *k = key(c, "large");
    uint8_t digest[CS_HASH_BYTES];
    OK(c, put_pattern(c, k, 4, SC_LARGE_SIZE, digest));
    cs_storage_stat st;
    OK(c, cs_storage_stat(c->st, k, &st, &c->e));
    EXPECT(c, st.size == SC_LARGE_SIZE, "stat says %llu bytes, wanted %zu", (unsigned long long)st.size, SC_LARGE_SIZE);
    cs_hash_result res;
    OK(c, get_hash(c, k, &res));
    EXPECT(c, res.bytes == SC_LARGE_SIZE && !memcmp(res.digest, digest, CS_HASH_BYTES),
           "get gave %llu bytes with another hash", (unsigned long long)res.bytes);
    return SC_PASS;
}

/* put_bytes and get_bytes, with get_bytes' limit. */
static enum sc_result check_small_objects(sc_ctx *c)
{
    const char *k = key(c, "hundred"), *empty = key(c, "empty");
    char text[101];
    for (size_t i = 0; i < 100; i++)
        text[i] = (char)('a' + i % 26);
    text[100] = '\0';
    OK(c, put_str(c, k, 0, text));
    cs_buf b = CS_BUF_INIT;
    cs_err_clear(&c->e);
    int rc = cs_storage_get_bytes(c->st, k, 100, &b, &c->e);
    bool same = rc == 0 && b.len == 100 && !memcmp(b.data, text, 100);
    cs_err_clear(&c->e);
    int over = cs_storage_get_bytes(c->st, k, 99, &b, &c->e);
    bool reset = b.len == 0;
    bool says = strstr(c->e.msg, "larger than 99") != NULL;
    cs_buf_free(&b);
    EXPECT(c, same, "get_bytes with max 100 gave rc %d, %zu bytes", rc, b.len);
    EXPECT(c, over == CS_E_INVAL && reset && says, "get_bytes of 100 bytes with max 99 gave %d (%s)", over, c->e.msg);
    OK(c, cs_storage_put_bytes(c->st, empty, 0, "", 0, &c->e));
    OK(c, cs_storage_get_bytes(c->st, empty, 0, &b, &c->e));
    EXPECT(c, b.len == 0, "the empty object read back %zu bytes", b.len);
    cs_buf_free(&b);
    return SC_PASS;
}

/* Keys that are not safe relative paths never reach the driver. */
static enum sc_result check_invalid_keys(sc_ctx *c)
{
    const char *bad[] = { "", "/abs", "../up", "a/../../up", "a//b", "./a" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cs_sink *w = NULL;
        cs_storage_stat st;
        RC_IS(c, CS_E_INVAL, cs_storage_put(c->st, bad[i], 0, &w, &c->e));
        RC_IS(c, CS_E_INVAL, cs_storage_stat(c->st, bad[i], &st, &c->e));
        RC_IS(c, CS_E_INVAL, cs_storage_del(c->st, bad[i], &c->e));
        EXPECT(c, w == NULL, "a writer for the bad key \"%s\"", bad[i]);
    }
    RC_IS(c, CS_E_INVAL, cs_storage_list(c->st, "../", collect, NULL, &c->e));
    return SC_PASS;
}

/* ---- resumable writers ---------------------------------------------------- */

/* What a resumable writer reports, as the caller would record it (the
 * callbacks run on the writer's threads). */
typedef struct recorder {
    pthread_mutex_t lock;
    char *token;
    cs_put_part *parts;
    size_t n;
} recorder;

static void on_token(void *arg, const char *token)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->lock);
    free(r->token);
    r->token = cs_strdup(token);
    r->n = 0;
    pthread_mutex_unlock(&r->lock);
}

static void on_part(void *arg, const cs_put_part *part)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->lock);
    r->parts = cs_realloc(r->parts, (r->n + 1) * sizeof *r->parts);
    r->parts[r->n++] = *part;
    pthread_mutex_unlock(&r->lock);
}

static int by_number(const void *a, const void *b)
{
    const cs_put_part *x = a, *y = b;
    return x->number < y->number ? -1 : x->number > y->number;
}

static void recorder_free(recorder *r)
{
    free(r->token);
    free(r->parts);
    pthread_mutex_destroy(&r->lock);
}

/* Write size bytes of pattern seed through a resumable writer (resuming
 * from rec when it holds a token), then close it or, with abandon, free it
 * unclosed. Reports into rec; res gets what the writer kept. */
static int put_resumable_pattern(sc_ctx *c, const char *k, uint64_t seed, recorder *rec, bool abandon,
                                 cs_put_resume *res, uint8_t digest[CS_HASH_BYTES])
{
    if (rec->n)
        qsort(rec->parts, rec->n, sizeof *rec->parts, by_number);
    memset(res, 0, sizeof *res);
    res->n_parts = rec->n;
    res->on_token = on_token;
    res->on_part = on_part;
    res->arg = rec;
    /* The writer reports into rec while res points at a copy of what it
     * held before (rec's array may move). */
    char *old_token = rec->token ? cs_strdup(rec->token) : NULL;
    cs_put_part *old_parts = rec->n ? cs_malloc(rec->n * sizeof *old_parts) : NULL;
    if (old_parts)
        memcpy(old_parts, rec->parts, rec->n * sizeof *old_parts);
    res->token = old_token;
    res->parts = old_parts;
    cs_sink *w = NULL;
    int rc = cs_storage_put_resumable(c->st, k, res, &w, &c->e);
    if (!rc)
        rc = write_pattern(w, seed, SC_LARGE_SIZE, digest, &c->e);
    if (!rc && !abandon)
        rc = cs_sink_close(w, &c->e);
    cs_sink_free(w);
    res->token = NULL;
    res->parts = NULL;
    free(old_token);
    free(old_parts);
    if (rec->n)
        qsort(rec->parts, rec->n, sizeof *rec->parts, by_number);
    return rc;
}

typedef struct upload_find {
    const char *key, *token;
    bool found;
} upload_find;

static int find_upload(const char *k, const char *token, int64_t initiated, void *arg)
{
    (void)initiated;
    upload_find *f = arg;
    f->found = f->found || (!strcmp(k, f->key) && !strcmp(token, f->token));
    return 0;
}

/* Is the upload of k with token among the unfinished ones? */
static int upload_listed(sc_ctx *c, const char *k, const char *token, bool *found)
{
    upload_find f = { k, token, false };
    int rc = cs_storage_list_resumable(c->st, c->dir, find_upload, &f, &c->e);
    *found = f.found;
    return rc;
}

/* A driver without resumable writers gives an ordinary one: nothing kept,
 * nothing reported, no unfinished uploads. */
static enum sc_result check_resumable_fallback(sc_ctx *c, recorder *rec)
{
    const char *k = key(c, "plain");
    cs_put_resume res;
    uint8_t digest[CS_HASH_BYTES];
    OK(c, put_resumable_pattern(c, k, 5, rec, false, &res, digest));
    EXPECT(c, res.kept == 0 && res.resumed == 0 && !rec->token && rec->n == 0,
           "a driver without resumable writers kept or reported parts");
    cs_hash_result got;
    OK(c, get_hash(c, k, &got));
    EXPECT(c, !memcmp(got.digest, digest, CS_HASH_BYTES), "the object reads back other bytes");
    size_t uploads = 0;
    OK(c, cs_storage_list_resumable(c->st, c->dir, count_upload, &uploads, &c->e));
    EXPECT(c, uploads == 0, "%zu unfinished uploads listed", uploads);
    OK(c, cs_storage_abort_resumable(c->st, k, "no-such-token", &c->e));
    /* A driver may have no resumable writers (the contract allows it): the
     * ordinary writer that stands in did all that is asked, so it passes
     * (a skip would count as a failure in CI). */
    return SC_PASS;
}

static enum sc_result resumable_steps(sc_ctx *c, recorder *rec, recorder *other)
{
    const char *k = key(c, "resumed"), *k2 = key(c, "diverged");
    cs_put_resume res;
    uint8_t digest[CS_HASH_BYTES], digest2[CS_HASH_BYTES];
    /* 1. Interrupted: the parts stored so far stay in an unfinished upload. */
    OK(c, put_resumable_pattern(c, k, 6, rec, true, &res, digest));
    if (!rec->token || !rec->n) {
        snprintf(c->why, c->why_size, "no part was stored before the writer was freed (a part size above %zu?)",
                 SC_LARGE_SIZE / 2);
        return SC_SKIP;
    }
    EXPECT_MISSING(c, k);
    bool found = false;
    OK(c, upload_listed(c, k, rec->token, &found));
    EXPECT(c, found, "the unfinished upload of %s is not listed", k);
    /* 2. Resumed: the recorded parts are kept, the same bytes complete it. */
    size_t recorded = rec->n;
    uint64_t recorded_bytes = 0;
    for (size_t i = 0; i < recorded; i++)
        recorded_bytes += rec->parts[i].size;
    OK(c, put_resumable_pattern(c, k, 6, rec, false, &res, digest2));
    EXPECT(c, res.kept == recorded && res.resumed == recorded_bytes && !res.diverged,
           "resuming kept %zu parts (%llu bytes) of %zu recorded (%llu bytes)", res.kept,
           (unsigned long long)res.resumed, recorded, (unsigned long long)recorded_bytes);
    cs_hash_result got;
    OK(c, get_hash(c, k, &got));
    EXPECT(c, got.bytes == SC_LARGE_SIZE && !memcmp(got.digest, digest, CS_HASH_BYTES),
           "the resumed object reads back %llu other bytes", (unsigned long long)got.bytes);
    OK(c, upload_listed(c, k, rec->token, &found));
    EXPECT(c, !found, "the completed upload is still listed as unfinished");
    /* 3. Other bytes than the kept parts: the writer refuses them. */
    OK(c, put_resumable_pattern(c, k2, 7, other, true, &res, digest));
    EXPECT(c, other->token && other->n, "the second upload stored no part");
    cs_err_clear(&c->e);
    int rc = put_resumable_pattern(c, k2, 8, other, false, &res, digest2);
    EXPECT(c, rc == CS_E_CORRUPT && res.diverged, "writing other bytes over kept parts gave %d (%s), diverged %d", rc,
           c->e.msg, res.diverged);
    EXPECT_MISSING(c, k2);
    /* 4. Aborted: gone from the list; aborting again is fine. */
    OK(c, cs_storage_abort_resumable(c->st, k2, other->token, &c->e));
    OK(c, upload_listed(c, k2, other->token, &found));
    EXPECT(c, !found, "an aborted upload is still listed");
    OK(c, cs_storage_abort_resumable(c->st, k2, other->token, &c->e));
    return SC_PASS;
}

/* Resumable writers keep their upload when freed, take it up again from
 * the recorded parts, and refuse bytes that differ from the kept ones. */
static enum sc_result check_resumable(sc_ctx *c)
{
    recorder rec = { .token = NULL }, other = { .token = NULL };
    pthread_mutex_init(&rec.lock, NULL);
    pthread_mutex_init(&other.lock, NULL);
    enum sc_result r = c->st->ops->put_resumable ? resumable_steps(c, &rec, &other) : check_resumable_fallback(c, &rec);
    recorder_free(&rec);
    recorder_free(&other);
    return r;
}

/* ---- writers in parallel --------------------------------------------------- */

#define WRITERS 4
#define WRITER_OBJECTS 10

typedef struct writer_job {
    sc_ctx *c;
    size_t t;
    int rc;
    cs_err e;
} writer_job;

static void *write_objects(void *arg)
{
    writer_job *j = arg;
    for (size_t i = 0; !j->rc && i <= WRITER_OBJECTS; i++) {
        char *k = cs_sprintf("%st%zu/o%02zu", j->c->dir, j->t, i);
        size_t size = i == WRITER_OBJECTS ? 6 * MIB + j->t : 1000 * i + j->t;
        uint8_t digest[CS_HASH_BYTES];
        cs_sink *w = NULL;
        j->rc = cs_storage_put(j->c->st, k, 0, &w, &j->e);
        if (!j->rc)
            j->rc = write_pattern(w, 100 + j->t, size, digest, &j->e);
        if (!j->rc)
            j->rc = cs_sink_close(w, &j->e);
        cs_sink_free(w);
        free(k);
    }
    return NULL;
}

/* Several threads write through one handle at once (a backup does). */
static enum sc_result check_parallel_writers(sc_ctx *c)
{
    pthread_t threads[WRITERS];
    writer_job jobs[WRITERS];
    for (size_t t = 0; t < WRITERS; t++) {
        jobs[t] = (writer_job){ c, t, 0, { 0, "", "" } };
        pthread_create(&threads[t], NULL, write_objects, &jobs[t]);
    }
    for (size_t t = 0; t < WRITERS; t++)
        pthread_join(threads[t], NULL);
    for (size_t t = 0; t < WRITERS; t++)
        EXPECT(c, jobs[t].rc == 0, "writer thread %zu: %s", t, jobs[t].e.msg);
    listing l = { 0 };
    OK(c, list_into(c, c->dir, &l));
    size_t n = l.keys.n, wrong = 0;
    for (size_t i = 0; i < l.keys.n; i++) {
        size_t t = 0, o = 0;
        if (sscanf(l.keys.items[i] + strlen(c->dir), "t%zu/o%zu", &t, &o) != 2 ||
            l.stats[i].size != (o == WRITER_OBJECTS ? 6 * MIB + t : 1000 * o + t))
            wrong++;
    }
    listing_free(&l);
    EXPECT(c, n == WRITERS * (WRITER_OBJECTS + 1) && !wrong, "%zu keys listed (%zu with a wrong size), wanted %d", n,
           wrong, WRITERS * (WRITER_OBJECTS + 1));
    return SC_PASS;
}

/* ---- the table and the runs ----------------------------------------------- */

typedef enum sc_result (*sc_fn)(sc_ctx *c);

static const sc_fn check_fns[] = {
    check_exclusive_create, check_invisible_until_close, check_free_without_close, check_list_hides_partial_writes,
    check_list_prefixes,    check_list_many_keys,        check_delete,             check_stat_size_mtime,
    check_missing_keys,     check_large_object,          check_small_objects,      check_invalid_keys,
    check_resumable,        check_parallel_writers,
};

const sc_check sc_checks[] = {
    { "exclusive_create", "a second exclusive put of a key fails with CS_E_EXISTS and changes nothing" },
    { "invisible_until_close", "get, stat and list see nothing of an object until its writer closes" },
    { "free_without_close", "a writer freed without close leaves no object and no upload" },
    { "list_hides_partial_writes", "list shows committed keys only while writers are open" },
    { "list_prefixes", "list selects keys by prefix, across '/' and inside names, with sizes; a callback stops it" },
    { "list_many_keys", "list pages through more than 1000 keys; del_many removes them (missing ones too)" },
    { "delete", "deleting a missing key is fine; a deleted key is gone" },
    { "stat_size_mtime", "stat and list give the size and a modification time of now" },
    { "missing_keys", "get, stat and get_bytes of a missing key (or a key's beginning) are CS_E_NOTFOUND" },
    { "large_object", "an object of several parts comes back byte for byte" },
    { "small_objects", "put_bytes and get_bytes round trip; get_bytes refuses an object above its limit" },
    { "invalid_keys", "unsafe keys are refused with CS_E_INVAL" },
    { "resumable", "a resumable writer's upload survives free, resumes from recorded parts, refuses other bytes" },
    { "parallel_writers", "writers in several threads on one handle all land" },
};
const size_t sc_n_checks = sizeof sc_checks / sizeof sc_checks[0];

_Static_assert(sizeof check_fns / sizeof check_fns[0] == sizeof sc_checks / sizeof sc_checks[0],
               "one function per check");

/* Remove what a check left: its objects and its unfinished uploads. */
static int abort_upload(const char *k, const char *token, int64_t initiated, void *arg)
{
    (void)initiated;
    cs_err e;
    cs_err_clear(&e);
    cs_storage_abort_resumable(arg, k, token, &e);
    return 0;
}

static void clean_up(cs_storage *st, const char *dir)
{
    listing l = { 0 };
    cs_err e;
    cs_err_clear(&e);
    if (cs_storage_list(st, dir, collect, &l, &e) == 0)
        cs_storage_del_many(st, (const char *const *)l.keys.items, l.keys.n, &e);
    listing_free(&l);
    cs_err_clear(&e);
    cs_storage_list_resumable(st, dir, abort_upload, st, &e);
}

enum sc_result sc_run_check(cs_storage *st, const char *base, size_t i, char *why, size_t why_size)
{
    sc_ctx c = { .st = st, .why = why, .why_size = why_size };
    c.dir = cs_sprintf("%s/%s/", base, sc_checks[i].name);
    why[0] = '\0';
    clean_up(st, c.dir); /* an earlier run that was killed */
    enum sc_result r = check_fns[i](&c);
    clean_up(st, c.dir);
    cs_strlist_free(&c.names);
    free(c.dir);
    return r;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool wanted(const char *name, const char *const *only, size_t n_only)
{
    for (size_t i = 0; i < n_only; i++)
        if (!strcmp(only[i], name))
            return true;
    return !only;
}

size_t sc_run(cs_storage *st, const char *base, const char *const *only, size_t n_only, FILE *report)
{
    size_t failures = 0;
    for (size_t k = 0; k < n_only; k++) {
        size_t i = 0;
        while (i < sc_n_checks && strcmp(sc_checks[i].name, only[k]))
            i++;
        if (i == sc_n_checks) {
            fprintf(report, "FAIL %s: no such check\n", only[k]);
            failures++;
        }
    }
    for (size_t i = 0; i < sc_n_checks; i++) {
        if (!wanted(sc_checks[i].name, only, n_only))
            continue;
        char why[1024];
        double t0 = now_s();
        enum sc_result r = sc_run_check(st, base, i, why, sizeof why);
        if (r == SC_PASS)
            fprintf(report, "ok %s (%.1f s)\n", sc_checks[i].name, now_s() - t0);
        else
            fprintf(report, "%s %s: %s\n", r == SC_FAIL ? "FAIL" : "skip", sc_checks[i].name, why);
        fflush(report);
        failures += r == SC_FAIL;
    }
    return failures;
}
