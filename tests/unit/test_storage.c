/* test_storage.c - storage interface and the posix driver. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "io/filters.h"
#include "io/sink.h"
#include "storage/storage.h"

typedef struct fixture {
    char dir[64];
    char *root;
    cs_storage *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-storage-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    f->root = cs_path_join(f->dir, "repo");
    cs_err e;
    cs_err_clear(&e);
    if (cs_storage_open(f->root, NULL, true, &f->st, &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    cs_storage_free(f->st);
    int rc = cs_remove_tree(f->dir, &e);
    free(f->root);
    free(f);
    return rc;
}

/* ---- list helpers ------------------------------------------------------- */

typedef struct listing {
    char *keys[64];
    uint64_t sizes[64];
    size_t n;
    size_t stop_after; /* 0: never stop */
} listing;

static int collect(const char *key, const cs_storage_stat *st, void *arg)
{
    listing *l = arg;
    assert_true(l->n < 64);
    l->keys[l->n] = cs_strdup(key);
    l->sizes[l->n] = st->size;
    l->n++;
    if (l->stop_after && l->n >= l->stop_after)
        return 42;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List prefix and return the keys sorted and joined by ',' (caller frees). */
static char *list_joined(cs_storage *st, const char *prefix)
{
    listing l;
    memset(&l, 0, sizeof l);
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_storage_list(st, prefix, collect, &l, &e);
    if (rc)
        fprintf(stderr, "list: %s\n", e.msg);
    assert_int_equal(rc, 0);
    qsort(l.keys, l.n, sizeof l.keys[0], cmp_str);
    cs_buf b = CS_BUF_INIT;
    for (size_t i = 0; i < l.n; i++) {
        if (i)
            cs_buf_addch(&b, ',');
        cs_buf_addstr(&b, l.keys[i]);
        free(l.keys[i]);
    }
    return cs_buf_detach(&b);
}

static void assert_list(cs_storage *st, const char *prefix, const char *expect)
{
    char *got = list_joined(st, prefix);
    assert_string_equal(got, expect);
    free(got);
}

static void put_str(cs_storage *st, const char *key, const char *s)
{
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_storage_put_bytes(st, key, 0, s, strlen(s), &e);
    if (rc)
        fprintf(stderr, "put %s: %s\n", key, e.msg);
    assert_int_equal(rc, 0);
}

static size_t count_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *p = cs_path_join(dir, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            n += count_tree(p);
        else
            n++;
        free(p);
    }
    closedir(d);
    return n;
}

/* ---- tests -------------------------------------------------------------- */

static void test_open(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_storage *st = NULL;

    cs_err_clear(&e);
    assert_int_equal(cs_storage_open(f->root, NULL, false, &st, &e), 0);
    assert_string_equal(st->ops->name, "posix");
    assert_string_equal(st->location, f->root);
    cs_storage_free(st);

    char *url = cs_sprintf("file://%s/", f->root);
    assert_int_equal(cs_storage_open(url, NULL, false, &st, &e), 0);
    assert_string_equal(st->location, url); /* as given, for messages */
    put_str(st, "via-url", "x");
    cs_storage_free(st);
    free(url);
    assert_list(f->st, "", "via-url");

    cs_err_clear(&e);
    assert_int_equal(cs_storage_open("ftp://user:pw@host/path", NULL, false, &st, &e), CS_E_INVAL);
    assert_null(st);
    assert_non_null(strstr(e.msg, "unsupported storage location"));
    assert_non_null(strstr(e.msg, "file://, s3://")); /* the known schemes, from the registry */
    assert_null(strstr(e.msg, "pw")); /* URLs may carry secrets */

    /* s3:// without credentials: one clear sentence, no request made. */
    cs_err_clear(&e);
    assert_int_equal(cs_storage_open("s3://bucket/path", NULL, false, &st, &e), CS_E_INVAL);
    assert_null(st);
    assert_non_null(strstr(e.msg, "no S3 credentials"));

    char *missing = cs_path_join(f->dir, "nope/deeper");
    assert_int_equal(cs_storage_open(missing, NULL, false, &st, &e), CS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, missing));
    assert_int_equal(cs_storage_open(missing, NULL, true, &st, &e), 0);
    assert_true(cs_is_dir(missing));
    cs_storage_free(st);
    free(missing);

    char *file = cs_path_join(f->root, "via-url");
    assert_int_equal(cs_storage_open(file, NULL, false, &st, &e), CS_E_INVAL);
    free(file);
    assert_int_equal(cs_storage_open("", NULL, false, &st, &e), CS_E_INVAL);
    cs_storage_free(NULL);
}

/* Drivers own their options: names are checked against the registry, the
 * values by the driver, each error naming the option. */
static void expect_open_error(const char *location, cs_storage_opts *o, int code, const char *want)
{
    cs_storage *st = NULL;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_storage_open(location, o, false, &st, &e);
    if (rc != code || !strstr(e.msg, want))
        fail_msg("%s: rc %d \"%s\", wanted %d \"%s\"", location, rc, e.msg, code, want);
    assert_null(st);
    cs_kvlist_free(o);
}

static void test_options(void **state)
{
    fixture *f = *state;
    cs_storage_opts o = CS_KVLIST_INIT;

    /* Options of another driver are left to it: a posix location opens. */
    cs_kvlist_set(&o, "s3.part_size", "not a size");
    cs_kvlist_set(&o, "storage.rate_limit", "1M");
    cs_storage *st = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_open(f->root, &o, false, &st, &e), 0);
    cs_storage_free(st);
    cs_kvlist_free(&o);

    cs_kvlist_set(&o, "ftp.user", "x");
    expect_open_error(f->root, &o, CS_E_USAGE, "unknown storage option ftp.user");
    cs_kvlist_set(&o, "storage.colour", "x");
    expect_open_error(f->root, &o, CS_E_USAGE, "unknown storage option storage.colour");
    cs_kvlist_set(&o, "file.root", "x");
    expect_open_error(f->root, &o, CS_E_USAGE, "unknown storage option file.root");
    cs_kvlist_set(&o, "s3.colour", "x");
    expect_open_error("s3://b/p", &o, CS_E_USAGE, "unknown storage option s3.colour");

    /* The s3 driver checks its values before it connects anywhere. */
    cs_kvlist_set(&o, "s3.part_size", "8X");
    expect_open_error("s3://b/p", &o, CS_E_USAGE, "{s3.part_size} wants a size such as 64M, not \"8X\"");
    cs_kvlist_set(&o, "s3.part_size", "1M");
    expect_open_error("s3://b/p", &o, CS_E_USAGE, "{s3.part_size} must be from 5M to 5G, not 1M");
    cs_kvlist_set(&o, "s3.concurrency", "65");
    expect_open_error("s3://b/p", &o, CS_E_USAGE, "{s3.concurrency} wants a whole number from 0 to 64, not \"65\"");
    cs_kvlist_set(&o, "s3.timeout", "-1");
    expect_open_error("s3://b/p", &o, CS_E_USAGE, "{s3.timeout} wants a whole number");
    cs_kvlist_set(&o, "s3.addressing", "sideways");
    expect_open_error("s3://b/p", &o, CS_E_USAGE, "{s3.addressing} must be path, virtual or auto, not \"sideways\"");
    cs_kvlist_set(&o, "s3.sign_payload", "maybe");
    expect_open_error("s3://b/p", &o, CS_E_USAGE, "{s3.sign_payload} must be yes, no or auto");
    cs_kvlist_set(&o, "storage.rate_limit", "fast");
    expect_open_error("s3://b/p", &o, CS_E_USAGE, "{storage.rate_limit} wants a size");

    /* Good values, no credentials: the credentials are what is missing. */
    cs_kvlist_set(&o, "s3.part_size", "5M");
    cs_kvlist_set(&o, "s3.addressing", "path");
    cs_kvlist_set(&o, "s3.region", "");
    expect_open_error("s3://b/p", &o, CS_E_INVAL, "no S3 credentials");

    /* A secret never shows in a message. */
    cs_kvlist_set(&o, "s3.access_key_id", "AKID");
    cs_kvlist_set(&o, "s3.secret_access_key", "sekrit");
    cs_kvlist_set(&o, "s3.endpoint", "ftp://host");
    cs_storage *none = NULL;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_open("s3://b/p", &o, false, &none, &e), CS_E_INVAL);
    assert_null(strstr(e.msg, "sekrit"));
    cs_kvlist_free(&o);
}

static void test_put_get_stat_del(void **state)
{
    fixture *f = *state;
    cs_storage *st = f->st;
    cs_err e;
    cs_err_clear(&e);

    put_str(st, "objects/ab/abcdef", "hello object");
    cs_buf b = CS_BUF_INIT;
    assert_int_equal(cs_storage_get_bytes(st, "objects/ab/abcdef", 1024, &b, &e), 0);
    assert_string_equal(cs_buf_str(&b), "hello object");

    cs_storage_stat ss;
    assert_int_equal(cs_storage_stat(st, "objects/ab/abcdef", &ss, &e), 0);
    assert_int_equal(ss.size, 12);
    assert_true(ss.mtime > 1600000000);

    /* Overwrite (non-exclusive) replaces. */
    put_str(st, "objects/ab/abcdef", "v2");
    assert_int_equal(cs_storage_get_bytes(st, "objects/ab/abcdef", 1024, &b, &e), 0);
    assert_string_equal(cs_buf_str(&b), "v2");

    /* Too large for max. */
    put_str(st, "big", "0123456789");
    cs_err_clear(&e);
    assert_int_equal(cs_storage_get_bytes(st, "big", 9, &b, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "big"));
    assert_int_equal(b.len, 0);
    assert_int_equal(cs_storage_get_bytes(st, "big", 10, &b, &e), 0);
    assert_int_equal(b.len, 10);

    /* Empty object. */
    assert_int_equal(cs_storage_put_bytes(st, "empty", 0, "", 0, &e), 0);
    assert_int_equal(cs_storage_get_bytes(st, "empty", 10, &b, &e), 0);
    assert_int_equal(b.len, 0);

    /* Missing objects. */
    cs_err_clear(&e);
    assert_int_equal(cs_storage_get_bytes(st, "objects/zz/missing", 10, &b, &e), CS_E_NOTFOUND);
    assert_non_null(strstr(e.msg, "objects/zz/missing"));
    assert_int_equal(cs_storage_stat(st, "objects/zz/missing", &ss, &e), CS_E_NOTFOUND);
    assert_int_equal(cs_storage_stat(st, "big/under-a-file", &ss, &e), CS_E_NOTFOUND);
    assert_int_equal(cs_storage_stat(st, "objects", &ss, &e), CS_E_NOTFOUND); /* a directory */
    assert_int_equal(cs_storage_get_bytes(st, "objects/ab", 10, &b, &e), CS_E_NOTFOUND);

    /* Delete; deleting again is fine. */
    assert_int_equal(cs_storage_del(st, "objects/ab/abcdef", &e), 0);
    assert_int_equal(cs_storage_stat(st, "objects/ab/abcdef", &ss, &e), CS_E_NOTFOUND);
    assert_int_equal(cs_storage_del(st, "objects/ab/abcdef", &e), 0);
    assert_int_equal(cs_storage_del(st, "never/was", &e), 0);
    cs_buf_free(&b);
}

static void test_stream_large(void **state)
{
    fixture *f = *state;
    cs_storage *st = f->st;
    cs_err e;
    cs_err_clear(&e);
    size_t n = 3 * 1024 * 1024 + 7;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);

    cs_sink *w = NULL;
    cs_hash_result wh, rh;
    assert_int_equal(cs_storage_put(st, "objects/12/large", 0, &w, &e), 0);
    cs_sink *chain = cs_hash_filter_new(cs_zstd_compress_new(w, 3, 0, &e), &wh);
    for (size_t off = 0; off < n; off += 100000)
        assert_int_equal(cs_sink_write(chain, data + off, n - off < 100000 ? n - off : 100000, &e), 0);
    assert_list(st, "objects/", ""); /* invisible until closed */
    assert_int_equal(cs_sink_close(chain, &e), 0);
    cs_sink_free(chain);
    assert_list(st, "objects/", "objects/12/large");

    cs_buf back = CS_BUF_INIT;
    cs_sink *r = cs_zstd_decompress_new(cs_hash_filter_new(cs_buf_sink_new(&back, n), &rh), &e);
    assert_int_equal(cs_storage_get(st, "objects/12/large", r, &e), 0);
    assert_int_equal(cs_sink_close(r, &e), 0);
    cs_sink_free(r);
    assert_int_equal(back.len, n);
    assert_memory_equal(back.data, data, n);
    assert_string_equal(rh.hex, wh.hex);

    /* A sink error during get comes back as is. */
    cs_buf small = CS_BUF_INIT;
    r = cs_buf_sink_new(&small, 10);
    assert_int_equal(cs_storage_get(st, "objects/12/large", r, &e), CS_E_INVAL);
    cs_sink_free(r);
    cs_buf_free(&small);
    cs_buf_free(&back);
    free(data);
}

static void test_exclusive(void **state)
{
    fixture *f = *state;
    cs_storage *st = f->st;
    cs_err e;
    cs_err_clear(&e);

    assert_int_equal(cs_storage_put_bytes(st, "locks/exclusive", CS_PUT_EXCLUSIVE, "me", 2, &e), 0);
    cs_err_clear(&e);
    assert_int_equal(cs_storage_put_bytes(st, "locks/exclusive", CS_PUT_EXCLUSIVE, "you", 3, &e), CS_E_EXISTS);
    assert_non_null(strstr(e.msg, "locks/exclusive"));
    assert_non_null(strstr(e.msg, "already exists"));

    /* Two writers racing: the first to close wins, the second sees EXISTS
     * at close and leaves nothing behind. */
    cs_sink *a = NULL, *b = NULL;
    assert_int_equal(cs_storage_put(st, "locks/race", CS_PUT_EXCLUSIVE, &a, &e), 0);
    assert_int_equal(cs_storage_put(st, "locks/race", CS_PUT_EXCLUSIVE, &b, &e), 0);
    assert_int_equal(cs_sink_write(a, "a", 1, &e), 0);
    assert_int_equal(cs_sink_write(b, "b", 1, &e), 0);
    assert_int_equal(cs_sink_close(a, &e), 0);
    cs_err_clear(&e);
    assert_int_equal(cs_sink_close(b, &e), CS_E_EXISTS);
    cs_sink_free(a);
    cs_sink_free(b);
    cs_buf got = CS_BUF_INIT;
    assert_int_equal(cs_storage_get_bytes(st, "locks/race", 10, &got, &e), 0);
    assert_string_equal(cs_buf_str(&got), "a");
    cs_buf_free(&got);
    assert_list(st, "locks/", "locks/exclusive,locks/race");
    char *locks = cs_path_join(f->root, "locks");
    assert_int_equal(count_tree(locks), 2); /* no temporary files left */
    free(locks);
}

static void test_invalid_keys(void **state)
{
    fixture *f = *state;
    cs_storage *st = f->st;
    const char *bad[] = { "../x", "/abs", "a//b", "a/./b", "", "a/", "a/../b", "..", "a\\b" };
    cs_buf b = CS_BUF_INIT;
    cs_storage_stat ss;
    listing l;
    memset(&l, 0, sizeof l);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cs_err e;
        cs_sink *w = (cs_sink *)&l; /* must be reset to NULL */
        cs_err_clear(&e);
        assert_int_equal(cs_storage_put(st, bad[i], 0, &w, &e), CS_E_INVAL);
        assert_null(w);
        assert_non_null(strstr(e.msg, "invalid storage key"));
        assert_int_equal(cs_storage_put_bytes(st, bad[i], 0, "x", 1, &e), CS_E_INVAL);
        assert_int_equal(cs_storage_get_bytes(st, bad[i], 10, &b, &e), CS_E_INVAL);
        cs_sink *n = cs_null_sink_new();
        assert_int_equal(cs_storage_get(st, bad[i], n, &e), CS_E_INVAL);
        cs_sink_free(n);
        assert_int_equal(cs_storage_stat(st, bad[i], &ss, &e), CS_E_INVAL);
        assert_int_equal(cs_storage_del(st, bad[i], &e), CS_E_INVAL);
    }
    const char *bad_prefix[] = { "../", "/abs", "a//", "a/./", "./" };
    for (size_t i = 0; i < sizeof bad_prefix / sizeof bad_prefix[0]; i++) {
        cs_err e;
        cs_err_clear(&e);
        assert_int_equal(cs_storage_list(st, bad_prefix[i], collect, &l, &e), CS_E_INVAL);
    }
    assert_int_equal(l.n, 0);
    assert_int_equal(count_tree(f->root), 0);
    cs_buf_free(&b);
}

static void test_list(void **state)
{
    fixture *f = *state;
    cs_storage *st = f->st;
    cs_err e;
    cs_err_clear(&e);

    put_str(st, "cassette.repo", "{}");
    put_str(st, "objects/ab/ab01", "1");
    put_str(st, "objects/ab/ab02", "22");
    put_str(st, "objects/cd/cd01", "333");
    put_str(st, "backups/b1/host1.manifest", "m");
    put_str(st, "backups/b10/host1.manifest", "m");
    put_str(st, "backups/b2/host2.manifest", "m");

    assert_list(st, "", "backups/b1/host1.manifest,backups/b10/host1.manifest,"
                        "backups/b2/host2.manifest,cassette.repo,objects/ab/ab01,"
                        "objects/ab/ab02,objects/cd/cd01");
    assert_list(st, "objects/", "objects/ab/ab01,objects/ab/ab02,objects/cd/cd01");
    assert_list(st, "objects", "objects/ab/ab01,objects/ab/ab02,objects/cd/cd01");
    assert_list(st, "objects/ab/", "objects/ab/ab01,objects/ab/ab02");
    assert_list(st, "objects/ab/ab0", "objects/ab/ab01,objects/ab/ab02");
    assert_list(st, "objects/ab/ab02", "objects/ab/ab02");
    assert_list(st, "objects/a", "objects/ab/ab01,objects/ab/ab02");
    assert_list(st, "backups/b1", "backups/b1/host1.manifest,backups/b10/host1.manifest");
    assert_list(st, "backups/b1/", "backups/b1/host1.manifest");
    assert_list(st, "cass", "cassette.repo");
    assert_list(st, "missing/", "");
    assert_list(st, "missing/deeper/x", "");
    assert_list(st, "cassette.repo/x", ""); /* a file where a directory would be */
    assert_list(st, "objects/zz", "");

    /* Sizes come with the keys. */
    listing l;
    memset(&l, 0, sizeof l);
    assert_int_equal(cs_storage_list(st, "objects/cd/", collect, &l, &e), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.sizes[0], 3);
    free(l.keys[0]);

    /* The callback can stop the walk; its value comes back. */
    memset(&l, 0, sizeof l);
    l.stop_after = 2;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_list(st, "", collect, &l, &e), 42);
    assert_int_equal(l.n, 2);
    assert_int_equal(e.code, CS_OK);
    for (size_t i = 0; i < l.n; i++)
        free(l.keys[i]);

    /* Temporary files, open writers and symlinks are not listed. */
    char *tmp = cs_path_join(f->root, "objects/ab/.tmp-ab03-1-00");
    assert_int_equal(cs_write_file_atomic(tmp, "x", 1, 0600, &e), 0);
    free(tmp);
    char *tmpdir = cs_path_join(f->root, "objects/.tmp-dir");
    assert_int_equal(cs_mkdirs(tmpdir, 0700, &e), 0);
    free(tmpdir);
    cs_sink *w = NULL;
    assert_int_equal(cs_storage_put(st, "objects/ab/ab04", 0, &w, &e), 0);
    assert_int_equal(cs_sink_write(w, "pending", 7, &e), 0);
    char *link_path = cs_path_join(f->root, "objects/link");
    assert_int_equal(symlink(f->dir, link_path), 0);
    free(link_path);
    char *flink = cs_path_join(f->root, "objects/cd/flink");
    assert_int_equal(symlink("cd01", flink), 0);
    free(flink);
    assert_list(st, "objects/", "objects/ab/ab01,objects/ab/ab02,objects/cd/cd01");

    /* A writer freed without close leaves nothing, listed or not. */
    size_t before = count_tree(f->root);
    cs_sink_free(w);
    assert_int_equal(count_tree(f->root), before - 1);
    assert_list(st, "objects/ab/", "objects/ab/ab01,objects/ab/ab02");
    cs_storage_stat ss;
    assert_int_equal(cs_storage_stat(st, "objects/ab/ab04", &ss, &e), CS_E_NOTFOUND);
}

static void hex16(const unsigned char h[CS_PUT_HASH_BYTES], char out[33])
{
    for (int i = 0; i < CS_PUT_HASH_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* The part hash is recorded in upload journals: it must not change with the
 * code path that computes it (the library's SSE2 code wrote the journals of
 * earlier versions; AVX2/AVX-512 code may read them), and a part given in
 * pieces must hash as the part given whole. */
static void test_put_hash(void **state)
{
    (void)state;
    size_t n = ((size_t)1 << 20) + 7;
    unsigned char *b = cs_malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31 + 7);
    unsigned char whole[CS_PUT_HASH_BYTES], pieces[CS_PUT_HASH_BYTES];
    char hex[33];
    cs_put_hash(b, n, whole);
    hex16(whole, hex);
    assert_string_equal(hex, "80dbfe05a83d5592e5306223e2cb11e2"); /* XXH3-128, libxxhash's scalar code */
    cs_put_hash(b, 100, whole);
    hex16(whole, hex);
    assert_string_equal(hex, "7f5a1f03462e52b4d61d8dbff22d515f");

    cs_put_hasher *h = cs_put_hasher_new();
    size_t sizes[] = { 1, 15, 64, 65537, 100, 4096, 3 };
    size_t at = 0;
    for (size_t k = 0; at < n; k++) {
        size_t take = sizes[k % (sizeof sizes / sizeof *sizes)];
        take = take < n - at ? take : n - at;
        cs_put_hasher_add(h, b + at, take);
        at += take;
    }
    cs_put_hasher_end(h, pieces);
    cs_put_hash(b, n, whole);
    assert_memory_equal(pieces, whole, sizeof whole);
    /* The next part starts afresh. */
    cs_put_hasher_add(h, b + 5, 1000);
    cs_put_hasher_end(h, pieces);
    cs_put_hash(b + 5, 1000, whole);
    assert_memory_equal(pieces, whole, sizeof whole);
    cs_put_hasher_end(h, pieces); /* an empty part */
    cs_put_hash(b, 0, whole);
    assert_memory_equal(pieces, whole, sizeof whole);
    cs_put_hasher_free(h);
    free(b);
}

static void test_writer_abort(void **state)
{
    fixture *f = *state;
    cs_storage *st = f->st;
    cs_err e;
    cs_err_clear(&e);
    cs_sink *w = NULL;
    assert_int_equal(cs_storage_put(st, "a/b/c", 0, &w, &e), 0);
    cs_sink *chain = cs_zstd_compress_new(w, 3, 0, &e);
    assert_int_equal(cs_sink_write(chain, "data", 4, &e), 0);
    assert_int_equal(count_tree(f->root), 1);
    cs_sink_free(chain);
    assert_int_equal(count_tree(f->root), 0);
    assert_list(st, "", "");

    /* An exclusive writer aborted does not block a later one. */
    assert_int_equal(cs_storage_put(st, "locks/x", CS_PUT_EXCLUSIVE, &w, &e), 0);
    cs_sink_free(w);
    assert_int_equal(cs_storage_put_bytes(st, "locks/x", CS_PUT_EXCLUSIVE, "1", 1, &e), 0);
    assert_list(st, "", "locks/x");

    /* Putting over a directory fails at close and names the key. */
    put_str(st, "dir/child", "c");
    assert_int_equal(cs_storage_put(st, "dir", 0, &w, &e), 0);
    cs_err_clear(&e);
    assert_int_equal(cs_sink_close(w, &e), CS_E_IO);
    assert_non_null(strstr(e.msg, "object dir"));
    cs_sink_free(w);
    /* Putting under a file fails at open. */
    cs_err_clear(&e);
    assert_int_equal(cs_storage_put(st, "locks/x/y", 0, &w, &e), CS_E_IO);
    assert_null(w);
    assert_non_null(strstr(e.msg, "locks/x/y"));
    assert_list(st, "", "dir/child,locks/x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_options, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get_stat_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_abort, setup, teardown),
        cmocka_unit_test(test_put_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
