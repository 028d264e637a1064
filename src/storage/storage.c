/* storage.c - the driver registry and opening a storage location, option
 * helpers for drivers, key checks, small-object helpers. */
#include "storage/storage.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t by value, in cs_put_hasher */
#include <xxhash.h>
#if defined(__x86_64__) || defined(__i386__)
/* The library's own AVX2/AVX-512 code where the CPU has it, chosen at run
 * time (the plain names are its SSE2 code): 0.025 against 0.065 s per GiB
 * on the bench's VM. The same hash values either way. */
#include <xxh_x86dispatch.h>
#endif

#include "common/fs.h"
#include "common/units.h"

/* ---- the registry -------------------------------------------------------
 * One row per driver: a new driver is one more row here (and its file). The
 * first row is the default for plain paths. */
static const cs_storage_driver *const drivers[] = {
    &cs_posix_driver,
    &cs_s3_driver,
    &cs_az_driver,
};
#define N_DRIVERS (sizeof drivers / sizeof drivers[0])

/* Options every driver may read (see storage.h). */
static const char *const shared_options[] = {
    "storage.rate_limit",
    NULL,
};

/* Length of a URL scheme ("s3" in "s3://...") or 0 when loc has none. */
static size_t scheme_len(const char *loc)
{
    if (!isalpha((unsigned char)loc[0]))
        return 0;
    size_t i = 1;
    while (isalnum((unsigned char)loc[i]) || loc[i] == '+' || loc[i] == '-' || loc[i] == '.')
        i++;
    return strncmp(loc + i, "://", 3) == 0 ? i : 0;
}

static const cs_storage_driver *driver_of_scheme(const char *scheme, size_t n)
{
    for (size_t i = 0; i < N_DRIVERS; i++)
        if (strlen(drivers[i]->scheme) == n && strncasecmp(drivers[i]->scheme, scheme, n) == 0)
            return drivers[i];
    return NULL;
}

static bool in_list(const char *const *names, const char *name)
{
    for (size_t i = 0; names && names[i]; i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

/* The scheme of a location never names a secret, but the rest may
 * ("ftp://user:password@host"): only the scheme goes into the message. */
static int unknown_scheme(const char *location, size_t sl, cs_err *e)
{
    cs_buf known = CS_BUF_INIT;
    for (size_t i = 0; i < N_DRIVERS; i++)
        cs_buf_printf(&known, "%s%s://", i ? ", " : "", drivers[i]->scheme);
    cs_err_set(e, CS_E_INVAL, "unsupported storage location %.*s://... (known: %s, or a local path)", (int)sl,
               location, cs_buf_str(&known));
    cs_buf_free(&known);
    return CS_E_INVAL;
}

/* Every option must belong to a driver of the registry (or be shared);
 * those of the chosen driver and the shared ones must be names it owns. */
static int check_option_names(const cs_storage_driver *d, const cs_storage_opts *opts, cs_err *e)
{
    for (size_t i = 0; opts && i < opts->n; i++) {
        const char *name = opts->items[i].name;
        const char *dot = strchr(name, '.');
        const cs_storage_driver *owner = dot ? driver_of_scheme(name, (size_t)(dot - name)) : NULL;
        bool shared = dot && (size_t)(dot - name) == 7 && !strncmp(name, "storage", 7);
        if ((shared && !in_list(shared_options, name)) || (!shared && !owner) ||
            (owner == d && !in_list(d->options, name)))
            return cs_err_set(e, CS_E_USAGE, "unknown storage option %s", name);
    }
    return 0;
}

int cs_storage_open(const char *location, const cs_storage_opts *opts, bool create, cs_storage **out, cs_err *e)
{
    *out = NULL;
    if (!location || !*location)
        return cs_err_set(e, CS_E_INVAL, "empty storage location");
    size_t sl = scheme_len(location);
    const cs_storage_driver *d = sl ? driver_of_scheme(location, sl) : drivers[0];
    if (!d)
        return unknown_scheme(location, sl, e);
    int rc = check_option_names(d, opts, e);
    if (!rc)
        rc = d->open(location, opts, create, out, e);
    if (rc) {
        *out = NULL;
        return rc;
    }
    free((*out)->location);
    (*out)->location = cs_strdup(location);
    return 0;
}

/* ---- options, for drivers ------------------------------------------------ */

const char *cs_storage_opt(const cs_storage_opts *opts, const char *name)
{
    const char *v = opts ? cs_kvlist_get(opts, name) : NULL;
    return v && *v ? v : NULL;
}

int cs_storage_opt_number(const cs_storage_opts *opts, const char *name, uint64_t def, uint64_t min, uint64_t max,
                          uint64_t *out, cs_err *e)
{
    const char *v = cs_storage_opt(opts, name);
    *out = def;
    if (!v)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || errno || *end || n < min || n > max) {
        cs_err_set(e, CS_E_USAGE, "{%s} wants a whole number from %llu to %llu, not \"%s\"", name,
                   (unsigned long long)min, (unsigned long long)max, v);
        return cs_err_field(e, name);
    }
    *out = n;
    return 0;
}

/* "5M" for 5 << 20: sizes in messages as they would be typed. */
static void size_text(uint64_t n, char out[32])
{
    static const char units[] = "GMK";
    for (int i = 0; i < 3; i++) {
        uint64_t u = 1ull << (10 * (3 - i));
        if (n && n % u == 0) {
            snprintf(out, 32, "%llu%c", (unsigned long long)(n / u), units[i]);
            return;
        }
    }
    snprintf(out, 32, "%llu", (unsigned long long)n);
}

int cs_storage_opt_size(const cs_storage_opts *opts, const char *name, uint64_t def, uint64_t min, uint64_t max,
                        uint64_t *out, cs_err *e)
{
    const char *v = cs_storage_opt(opts, name);
    *out = def;
    if (!v)
        return 0;
    uint64_t n = 0;
    if (cs_parse_size(v, &n, NULL)) {
        cs_err_set(e, CS_E_USAGE, "{%s} wants a size such as 64M, not \"%s\"", name, v);
        return cs_err_field(e, name);
    }
    if (n < min || n > max) {
        char lo[32], hi[32];
        size_text(min, lo);
        size_text(max, hi);
        cs_err_set(e, CS_E_USAGE, "{%s} must be from %s to %s, not %s", name, lo, hi, v);
        return cs_err_field(e, name);
    }
    *out = n;
    return 0;
}

int cs_storage_opt_choice(const cs_storage_opts *opts, const char *name, const char *const *choices, int def,
                          int *out, cs_err *e)
{
    const char *v = cs_storage_opt(opts, name);
    *out = def;
    if (!v)
        return 0;
    cs_buf list = CS_BUF_INIT;
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(choices[i], v)) {
            *out = i;
            cs_buf_free(&list);
            return 0;
        }
        cs_buf_printf(&list, "%s%s", i ? (choices[i + 1] ? ", " : " or ") : "", choices[i]);
    }
    cs_err_set(e, CS_E_USAGE, "{%s} must be %s, not \"%s\"", name, cs_buf_str(&list), v);
    cs_buf_free(&list);
    return cs_err_field(e, name);
}

void cs_storage_free(cs_storage *st)
{
    if (st)
        st->ops->free(st);
}

static int check_key(const char *key, cs_err *e)
{
    if (!cs_path_is_safe_relative(key))
        return cs_err_set(e, CS_E_INVAL, "invalid storage key \"%s\"", key ? key : "(null)");
    return 0;
}

int cs_storage_put(cs_storage *st, const char *key, int flags, cs_sink **out, cs_err *e)
{
    *out = NULL;
    int rc = check_key(key, e);
    if (rc)
        return rc;
    return st->ops->put(st, key, flags, out, e);
}

int cs_storage_get(cs_storage *st, const char *key, cs_sink *dst, cs_err *e)
{
    int rc = check_key(key, e);
    if (rc)
        return rc;
    return st->ops->get(st, key, dst, e);
}

int cs_storage_stat_key(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    int rc = check_key(key, e);
    if (rc)
        return rc;
    return st->ops->stat(st, key, out, e);
}

int cs_storage_list(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e)
{
    if (!prefix)
        prefix = "";
    if (*prefix) {
        /* A prefix is a key, or a key's beginning, possibly ending in '/'. */
        size_t n = strlen(prefix);
        if (prefix[n - 1] == '/')
            n--;
        char *p = cs_strndup(prefix, n);
        bool ok = cs_path_is_safe_relative(p);
        free(p);
        if (!ok)
            return cs_err_set(e, CS_E_INVAL, "invalid storage key \"%s\"", prefix);
    }
    return st->ops->list(st, prefix, cb, arg, e);
}

int cs_storage_del(cs_storage *st, const char *key, cs_err *e)
{
    int rc = check_key(key, e);
    if (rc)
        return rc;
    return st->ops->del(st, key, e);
}

int cs_storage_put_bytes(cs_storage *st, const char *key, int flags, const void *p, size_t n, cs_err *e)
{
    cs_sink *w = NULL;
    int rc = cs_storage_put(st, key, flags, &w, e);
    if (rc)
        goto out;
    rc = cs_sink_write(w, p, n, e);
    if (rc)
        goto out;
    rc = cs_sink_close(w, e);
out:
    cs_sink_free(w);
    return rc;
}

int cs_storage_get_bytes(cs_storage *st, const char *key, size_t max, cs_buf *out, cs_err *e)
{
    cs_buf_reset(out);
    int rc = check_key(key, e);
    if (rc)
        return rc;
    cs_sink *dst = cs_buf_sink_new(out, max);
    rc = st->ops->get(st, key, dst, e);
    if (rc == CS_E_INVAL) /* only the buffer sink says that: the key is valid */
        rc = cs_err_set(e, CS_E_INVAL, "object %s is larger than %zu bytes", key, max);
    if (rc)
        goto out;
    rc = cs_sink_close(dst, e);
out:
    cs_sink_free(dst);
    if (rc)
        cs_buf_reset(out);
    return rc;
}

int cs_storage_del_many(cs_storage *st, const char *const *keys, size_t n, cs_err *e)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_key(keys[i], e);
        if (rc)
            return rc;
    }
    if (st->ops->del_many)
        return st->ops->del_many(st, keys, n, e);
    for (size_t i = 0; i < n; i++) {
        int rc = st->ops->del(st, keys[i], e);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- resumable writers: the check of the kept bytes ---------------------- */

static void put_hash_out(XXH128_hash_t h, unsigned char out[CS_PUT_HASH_BYTES])
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(out, c.digest, CS_PUT_HASH_BYTES);
}

void cs_put_hash(const void *p, size_t n, unsigned char out[CS_PUT_HASH_BYTES])
{
    put_hash_out(XXH3_128bits(n ? p : "", n), out);
}

struct cs_put_hasher {
    XXH3_state_t st;
};

cs_put_hasher *cs_put_hasher_new(void)
{
    cs_put_hasher *h = cs_aligned_zalloc(_Alignof(cs_put_hasher), sizeof(cs_put_hasher));
    XXH3_128bits_reset(&h->st);
    return h;
}

void cs_put_hasher_add(cs_put_hasher *h, const void *p, size_t n)
{
    if (n)
        XXH3_128bits_update(&h->st, p, n);
}

void cs_put_hasher_end(cs_put_hasher *h, unsigned char out[CS_PUT_HASH_BYTES])
{
    put_hash_out(XXH3_128bits_digest(&h->st), out);
    XXH3_128bits_reset(&h->st);
}

void cs_put_hasher_free(cs_put_hasher *h)
{
    free(h);
}

/* In front of a driver's resumable writer: the first r->resumed bytes are
 * hashed part by part and compared with the kept parts' hashes instead of
 * being passed on; the rest goes through. */
typedef struct kept_check {
    cs_sink base;
    cs_sink *next;
    cs_put_resume *r;
    size_t part;       /* the kept part being checked */
    uint64_t in_part;  /* its bytes seen so far */
    uint64_t seen;     /* bytes of all kept parts seen so far */
    cs_put_hasher *h;
} kept_check;

static int kept_diverged(kept_check *k, cs_err *e)
{
    k->r->diverged = true;
    return cs_err_set(e, CS_E_CORRUPT, "the bytes of part %u differ from those stored before",
                      k->r->parts[k->part].number);
}

/* The current part is whole: does its hash match? */
static int kept_part_done(kept_check *k, cs_err *e)
{
    unsigned char got[CS_PUT_HASH_BYTES];
    cs_put_hasher_end(k->h, got);
    if (memcmp(got, k->r->parts[k->part].hash, sizeof got) != 0)
        return kept_diverged(k, e);
    k->part++;
    k->in_part = 0;
    return 0;
}

static int kept_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    kept_check *k = (kept_check *)(void *)s;
    while (n > 0 && k->seen < k->r->resumed) {
        uint64_t room = k->r->parts[k->part].size - k->in_part;
        size_t take = n < room ? n : (size_t)room;
        cs_put_hasher_add(k->h, p, take);
        k->in_part += take;
        k->seen += take;
        p += take;
        n -= take;
        if (k->in_part == k->r->parts[k->part].size) {
            int rc = kept_part_done(k, e);
            if (rc)
                return rc;
        }
    }
    return n ? cs_sink_write(k->next, p, n, e) : 0;
}

static int kept_close(cs_sink *s, cs_err *e)
{
    kept_check *k = (kept_check *)(void *)s;
    if (k->seen < k->r->resumed) {
        k->r->diverged = true;
        return cs_err_set(e, CS_E_CORRUPT, "%llu bytes were written where %llu were stored before",
                          (unsigned long long)k->seen, (unsigned long long)k->r->resumed);
    }
    return cs_sink_close(k->next, e);
}

static void kept_free(cs_sink *s)
{
    kept_check *k = (kept_check *)(void *)s;
    cs_sink_free(k->next);
    cs_put_hasher_free(k->h);
    free(k);
}

static const cs_sink_ops kept_ops = { kept_write, kept_close, kept_free };

int cs_storage_put_resumable(cs_storage *st, const char *key, cs_put_resume *r, cs_sink **out, cs_err *e)
{
    *out = NULL;
    r->kept = 0;
    r->resumed = 0;
    r->diverged = false;
    if (!st->ops->put_resumable)
        return cs_storage_put(st, key, 0, out, e);
    int rc = check_key(key, e);
    if (!rc)
        rc = st->ops->put_resumable(st, key, r, out, e);
    if (rc || r->kept == 0)
        return rc;
    kept_check *k = cs_calloc(1, sizeof *k);
    k->base.ops = &kept_ops;
    k->next = *out;
    k->r = r;
    k->h = cs_put_hasher_new();
    *out = &k->base;
    return 0;
}

int cs_storage_abort_resumable(cs_storage *st, const char *key, const char *token, cs_err *e)
{
    int rc = check_key(key, e);
    if (rc || !st->ops->abort_resumable || !token)
        return rc;
    return st->ops->abort_resumable(st, key, token, e);
}

int cs_storage_list_resumable(cs_storage *st, const char *prefix, cs_storage_upload_cb cb, void *arg, cs_err *e)
{
    if (!st->ops->list_resumable)
        return 0;
    return st->ops->list_resumable(st, prefix ? prefix : "", cb, arg, e);
}
