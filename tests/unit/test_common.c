/* test_common.c - common/: errors, buffers, file-system helpers, processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/strlist.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/kvlist.h"
#include "common/proc.h"
#include "common/units.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct tmpdir {
    char path[64];
} tmpdir;

static int setup_tmp(void **state)
{
    tmpdir *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    snprintf(t->path, sizeof t->path, "/tmp/cassette-test-common-XXXXXX");
    if (!mkdtemp(t->path)) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int teardown_tmp(void **state)
{
    tmpdir *t = *state;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_remove_tree(t->path, &e);
    if (rc)
        fprintf(stderr, "teardown: %s\n", e.msg);
    free(t);
    return rc;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void assert_one_line(const char *s)
{
    assert_null(strchr(s, '\n'));
    assert_null(strchr(s, '\r'));
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void write_plain(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* ---- err ---------------------------------------------------------------- */

static void test_err_set_and_clear(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(e.code, CS_OK);
    assert_string_equal(e.msg, "");

    assert_int_equal(cs_err_set(&e, CS_E_NOTFOUND, "no backup named %s (%d)", "b1", 7), CS_E_NOTFOUND);
    assert_int_equal(e.code, CS_E_NOTFOUND);
    assert_string_equal(e.msg, "no backup named b1 (7)");

    /* A second set replaces the first. */
    cs_err_set(&e, CS_E_IO, "other");
    assert_int_equal(e.code, CS_E_IO);
    assert_string_equal(e.msg, "other");

    cs_err_clear(&e);
    assert_int_equal(e.code, CS_OK);
    assert_string_equal(e.msg, "");

    /* NULL error values are allowed: the code is only returned. */
    assert_int_equal(cs_err_set(NULL, CS_E_CORRUPT, "x"), CS_E_CORRUPT);
    assert_int_equal(cs_err_sys(NULL, CS_E_IO, ENOENT, "x"), CS_E_IO);
    assert_int_equal(cs_err_prefix(NULL, "x"), CS_E_INVAL);
    cs_err_clear(NULL);
}

static void test_err_sys(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_err_sys(&e, CS_E_IO, ENOENT, "cannot open %s", "/x/y"), CS_E_IO);
    assert_int_equal(e.code, CS_E_IO);
    char expect[256];
    snprintf(expect, sizeof expect, "cannot open /x/y: %s", strerror(ENOENT));
    assert_string_equal(e.msg, expect);
}

static void test_err_prefix_chain(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_err_set(&e, CS_E_CORRUPT, "hash mismatch");
    assert_int_equal(cs_err_prefix(&e, "object %s", "3f2a"), CS_E_CORRUPT);
    assert_int_equal(cs_err_prefix(&e, "restore %s.%s", "acc", "users"), CS_E_CORRUPT);
    assert_string_equal(e.msg, "restore acc.users: object 3f2a: hash mismatch");
    assert_int_equal(e.code, CS_E_CORRUPT);

    /* Prefixing an empty error gives just the context, and a code. */
    cs_err_clear(&e);
    assert_int_equal(cs_err_prefix(&e, "context only"), CS_E_INVAL);
    assert_string_equal(e.msg, "context only");
    assert_int_equal(e.code, CS_E_INVAL);

    /* The old message may be passed as an argument: it is copied first. */
    cs_err_set(&e, CS_E_IO, "disk full");
    cs_err_prefix(&e, "[%s]", e.msg);
    assert_string_equal(e.msg, "[disk full]: disk full");
}

static void test_err_one_line(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_err_set(&e, CS_E_EXTERNAL, "nodetool said:\nerror: boom\r\nmore");
    assert_string_equal(e.msg, "nodetool said: error: boom  more");
    assert_one_line(e.msg);

    cs_err_set(&e, CS_E_EXTERNAL, "%s", "from\nan argument\n");
    assert_string_equal(e.msg, "from an argument ");

    cs_err_sys(&e, CS_E_IO, EACCES, "path\nwith newline");
    assert_one_line(e.msg);
    assert_non_null(strstr(e.msg, "path with newline: "));

    cs_err_set(&e, CS_E_IO, "inner\nmsg");
    cs_err_prefix(&e, "outer\r\nctx");
    assert_string_equal(e.msg, "outer  ctx: inner msg");
}

static void test_err_truncation(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    char *big = repeat('x', 5000);

    /* A message longer than the buffer is cut, never overflowed. */
    assert_int_equal(cs_err_set(&e, CS_E_INVAL, "%s", big), CS_E_INVAL);
    assert_int_equal(strlen(e.msg), CS_ERR_MSG_MAX - 1);

    /* cs_err_sys on a full message: the errno text is cut off, no overflow. */
    cs_err_sys(&e, CS_E_IO, ENOENT, "%s", big);
    assert_int_equal(strlen(e.msg), CS_ERR_MSG_MAX - 1);
    cs_err_sys(&e, CS_E_IO, ENOENT, "%.*s", CS_ERR_MSG_MAX - 5, big);
    assert_int_equal(strlen(e.msg), CS_ERR_MSG_MAX - 1);
    assert_int_equal(e.msg[CS_ERR_MSG_MAX - 5], ':');

    /* A short prefix on a full message keeps the prefix and cuts the tail. */
    cs_err_set(&e, CS_E_CORRUPT, "%s", big);
    cs_err_prefix(&e, "ctx");
    assert_int_equal(strlen(e.msg), CS_ERR_MSG_MAX - 1);
    assert_memory_equal(e.msg, "ctx: xxx", 8);
    assert_int_equal(e.code, CS_E_CORRUPT);

    /* A huge prefix on a message: the prefix fills the buffer. */
    char *ctx = repeat('c', 3000);
    cs_err_set(&e, CS_E_CORRUPT, "tail");
    cs_err_prefix(&e, "%s", ctx);
    assert_true(strlen(e.msg) <= CS_ERR_MSG_MAX - 1);
    assert_int_equal(e.msg[0], 'c');
    assert_null(strchr(e.msg, 'x'));

    /* Prefixes of every length around the edge. */
    for (size_t n = CS_ERR_MSG_MAX - 6; n < CS_ERR_MSG_MAX + 2; n++) {
        cs_err_set(&e, CS_E_IO, "old message");
        cs_err_prefix(&e, "%.*s", (int)n, ctx);
        assert_true(strlen(e.msg) <= CS_ERR_MSG_MAX - 1);
    }

    /* Chained prefixes never grow past the buffer. */
    cs_err_set(&e, CS_E_IO, "root cause");
    for (int i = 0; i < 200; i++)
        cs_err_prefix(&e, "level %d", i);
    assert_int_equal(strlen(e.msg), CS_ERR_MSG_MAX - 1);
    assert_memory_equal(e.msg, "level 199: level 198: ", 22);
    free(ctx);
    free(big);
}

static void test_err_names(void **state)
{
    (void)state;
    assert_string_equal(cs_err_name(CS_OK), "ok");
    assert_string_equal(cs_err_name(CS_E_NOTFOUND), "not found");
    assert_string_equal(cs_err_name(CS_E_IO), "I/O error");
    int codes[] = { CS_E_INVAL, CS_E_NOMEM, CS_E_IO, CS_E_NOTFOUND, CS_E_PROTO,
                    CS_E_CORRUPT, CS_E_EXTERNAL, CS_E_EXISTS, CS_E_UNAVAIL };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_non_null(cs_err_name(codes[i]));
        assert_string_not_equal(cs_err_name(codes[i]), "error");
    }
    assert_string_equal(cs_err_name(-1000), "error");
}

/* ---- buf ---------------------------------------------------------------- */

/* The kind of a failure, for metrics: the code, then the message's words. */
static void test_err_kind(void **state)
{
    (void)state;
    assert_string_equal(cs_err_kind(CS_E_LOCKED, "repository s3://b/x is locked"), "lock");
    assert_string_equal(cs_err_kind(CS_E_NOKEY, NULL), "crypto");
    assert_string_equal(cs_err_kind(CS_E_NOTFOUND, "/r: not a cassette repository"), "storage");
    assert_string_equal(cs_err_kind(CS_E_UNAVAIL, "cannot reach S3 at http://x: refused"), "storage");
    assert_string_equal(cs_err_kind(CS_E_UNAVAIL, "cannot connect to 127.0.0.1:9042: refused"), "cassandra");
    assert_string_equal(cs_err_kind(CS_E_EXTERNAL, "nodetool snapshot failed: exit 1"), "cassandra");
    assert_string_equal(cs_err_kind(CS_E_CORRUPT, "age: header MAC mismatch"), "crypto");
    assert_string_equal(cs_err_kind(CS_E_EXTERNAL, "agent 10.0.0.1: 502"), "agent");
    assert_string_equal(cs_err_kind(CS_E_IO, "cannot write /x: No space left"), "storage");
    assert_string_equal(cs_err_kind(CS_E_USAGE, "--jobs must be between 1 and 64"), "other");
    assert_string_equal(cs_err_kind(CS_E_CANCELED, "interrupted"), "other");
    assert_string_equal(cs_err_kind(CS_E_INVAL, "a block is bad"), "other"); /* not "lock" */
    /* the earliest word wins: the context comes first */
    assert_string_equal(cs_err_kind(CS_E_IO, "snapshot ks.t: upload of object 3f: timeout"), "cassandra");
}

static void test_buf_add(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    assert_string_equal(cs_buf_str(&b), "");
    assert_int_equal(b.len, 0);

    cs_buf_addstr(&b, "abc");
    cs_buf_addch(&b, '-');
    cs_buf_add(&b, "\0x\0", 3);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "abc-\0x\0", 8); /* NUL-terminated beyond len too */
    assert_true(b.cap > b.len);

    cs_buf_add(&b, "", 0);
    assert_int_equal(b.len, 7);

    size_t cap = b.cap;
    cs_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    assert_string_equal(cs_buf_str(&b), "");

    /* Growth across many reallocations keeps every byte. */
    for (size_t i = 0; i < 100000; i++)
        cs_buf_addch(&b, (char)('a' + i % 26));
    assert_int_equal(b.len, 100000);
    assert_int_equal(b.data[b.len], '\0');
    for (size_t i = 0; i < b.len; i++)
        if (b.data[i] != (char)('a' + i % 26))
            fail_msg("byte %zu differs", i);

    cs_buf_reserve(&b, 1 << 20);
    assert_true(b.cap >= b.len + (1 << 20) + 1);
    cs_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    cs_buf_free(&b); /* twice is fine */

    /* An empty add on a fresh buffer still gives a C string. */
    cs_buf_add(&b, NULL, 0);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    cs_buf_free(&b);
}

static void test_buf_printf(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    cs_buf_printf(&b, "%s=%d", "n", 42);
    assert_string_equal(cs_buf_str(&b), "n=42");
    cs_buf_printf(&b, "%s", "");
    assert_string_equal(cs_buf_str(&b), "n=42");

    /* Appending past the first capacity (64) and far beyond. */
    char *big = repeat('z', 10000);
    cs_buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, 4 + 10002);
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(b.data[4], '[');
    assert_int_equal(b.data[b.len - 1], ']');
    free(big);

    cs_buf_reset(&b);
    cs_buf expect = CS_BUF_INIT;
    for (int i = 0; i < 2000; i++) {
        cs_buf_printf(&b, "%d,", i);
        char tmp[16];
        int n = snprintf(tmp, sizeof tmp, "%d,", i);
        cs_buf_add(&expect, tmp, (size_t)n);
    }
    assert_int_equal(b.len, expect.len);
    assert_string_equal(cs_buf_str(&b), cs_buf_str(&expect));
    assert_int_equal(strlen(cs_buf_str(&b)), b.len);
    cs_buf_free(&expect);
    cs_buf_free(&b);

    char *s = cs_sprintf("%s-%05d-%x", "obj", 42, 255u);
    assert_string_equal(s, "obj-00042-ff");
    free(s);
    s = cs_sprintf("%s", "");
    assert_string_equal(s, "");
    free(s);
}

static void test_buf_detach(void **state)
{
    (void)state;
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, "owned");
    char *p = cs_buf_detach(&b);
    assert_string_equal(p, "owned");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    free(p);

    /* Detaching an empty buffer still hands over a heap string. */
    p = cs_buf_detach(&b);
    assert_non_null(p);
    assert_string_equal(p, "");
    free(p);

    /* The buffer is usable again after a detach. */
    cs_buf_addstr(&b, "again");
    assert_string_equal(cs_buf_str(&b), "again");
    cs_buf_free(&b);

    char *d = cs_strndup("abcdef", 3);
    assert_string_equal(d, "abc");
    free(d);
    d = cs_strdup("");
    assert_string_equal(d, "");
    free(d);
    void *z = cs_calloc(0, 0);
    assert_non_null(z);
    free(z);
    z = cs_malloc(0);
    assert_non_null(z);
    z = cs_realloc(z, 0);
    assert_non_null(z);
    free(z);
}

static void test_hex(void **state)
{
    (void)state;
    const uint8_t raw[] = { 0x00, 0x0f, 0xa5, 0xff, 0x10 };
    char out[2 * sizeof raw + 1];
    memset(out, '#', sizeof out);
    cs_hex(raw, sizeof raw, out);
    assert_string_equal(out, "000fa5ff10");
    char empty[1] = { '#' };
    cs_hex(raw, 0, empty);
    assert_string_equal(empty, "");
    uint8_t all[256];
    char all_hex[513];
    for (size_t i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    cs_hex(all, 256, all_hex);
    assert_int_equal(strlen(all_hex), 512);
    assert_memory_equal(all_hex + 2 * 0xab, "ab", 2);
    assert_memory_equal(all_hex + 2 * 0xfe, "fe", 2);
}

/* ---- fs ----------------------------------------------------------------- */

static void test_path_safe_relative(void **state)
{
    (void)state;
    const char *good[] = { "a", "a/b", ".idx/nb-1-big-Data.db", "nb-1-big-Data.db", "a/b/c/d", ".hidden",
                           "a..b", "...", "a/.b", "x.", "UPPER/lower_1-2" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!cs_path_is_safe_relative(good[i]))
            fail_msg("\"%s\" should be accepted", good[i]);
    const char *bad[] = { "", "/a", "/", "..", "../a", "a/..", "a/../b", "a//b", "a/", "./a", "a/./b", ".",
                          "a\\b", "..\\a", "a\tb", "a\nb", "\x01", "a/\x1f", "a\rb", "//", "a/b/" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (cs_path_is_safe_relative(bad[i]))
            fail_msg("\"%s\" should be rejected", bad[i]);
    assert_false(cs_path_is_safe_relative(NULL));
    /* Bytes above 0x7f (UTF-8) are ordinary characters. */
    assert_true(cs_path_is_safe_relative("caf\xc3\xa9"));
}

static void test_path_join(void **state)
{
    (void)state;
    struct { const char *a, *b, *want; } cases[] = {
        { "a", "b", "a/b" },     { "a/", "b", "a/b" },   { "a", "/b", "a/b" },
        { "a//", "//b", "a/b" }, { "/", "b", "/b" },     { "//", "b", "/b" },
        { "", "b", "b" },        { "", "/b", "b" },      { "/x/y", "z/w", "/x/y/z/w" },
        { "a", "", "a/" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = cs_path_join(cases[i].a, cases[i].b);
        if (strcmp(got, cases[i].want))
            fail_msg("join(\"%s\", \"%s\") = \"%s\", want \"%s\"", cases[i].a, cases[i].b, got, cases[i].want);
        free(got);
    }
}

static void test_dirname(void **state)
{
    (void)state;
    struct { const char *in, *want; } cases[] = {
        { "a/b/c", "a/b" }, { "a", "." }, { "/a", "/" }, { "/", "/" },
        { "/a/b", "/a" },   { "", "." },  { "a/b", "a" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = cs_dirname(cases[i].in);
        if (strcmp(got, cases[i].want))
            fail_msg("dirname(\"%s\") = \"%s\", want \"%s\"", cases[i].in, got, cases[i].want);
        free(got);
    }
}

static void test_mkdirs(void **state)
{
    tmpdir *t = *state;
    cs_err e;
    cs_err_clear(&e);
    char *deep = cs_sprintf("%s/x/y/z", t->path);
    assert_int_equal(cs_mkdirs(deep, 0755, &e), 0);
    assert_true(cs_is_dir(deep));
    /* Again: existing directories are fine. */
    assert_int_equal(cs_mkdirs(deep, 0755, &e), 0);
    /* A trailing slash is fine. */
    char *slash = cs_sprintf("%s/x/y2/", t->path);
    assert_int_equal(cs_mkdirs(slash, 0700, &e), 0);
    assert_true(cs_is_dir(slash));
    struct stat st;
    assert_int_equal(stat(slash, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* A file in the way: the path exists but is not a directory. */
    char *file = cs_sprintf("%s/file", t->path);
    write_plain(file, "x");
    cs_err_clear(&e);
    assert_int_equal(cs_mkdirs(file, 0755, &e), CS_E_IO);
    assert_non_null(strstr(e.msg, "not a directory"));
    /* ... or as a parent. */
    char *under = cs_sprintf("%s/file/sub", t->path);
    cs_err_clear(&e);
    assert_int_equal(cs_mkdirs(under, 0755, &e), CS_E_IO);
    assert_non_null(strstr(e.msg, "cannot create directory"));
    assert_false(cs_exists(under));

    /* An empty path is an error, not a read past the string. */
    cs_err_clear(&e);
    assert_int_equal(cs_mkdirs("", 0755, &e), CS_E_INVAL);

    assert_true(cs_exists(file));
    assert_false(cs_is_dir(file));
    assert_true(cs_is_dir(t->path));
    free(deep);
    free(slash);
    free(file);
    free(under);
}

static void test_write_read_file(void **state)
{
    tmpdir *t = *state;
    cs_err e;
    cs_err_clear(&e);
    char *path = cs_sprintf("%s/data.bin", t->path);
    static const char content[] = "hello\0world";
    assert_int_equal(cs_write_file_atomic(path, content, sizeof content - 1, 0600, &e), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 11);
    assert_int_equal(st.st_mode & 077, 0);
    /* Only the file itself: no temporary left over. */
    assert_int_equal(count_entries(t->path), 1);

    char *got = NULL;
    size_t len = 0;
    assert_int_equal(cs_read_file(path, 11, &got, &len, &e), 0);
    assert_int_equal(len, 11);
    assert_memory_equal(got, content, 11);
    assert_int_equal(got[11], '\0');
    free(got);

    /* One byte over the limit. */
    got = (char *)1;
    cs_err_clear(&e);
    assert_int_equal(cs_read_file(path, 10, &got, &len, &e), CS_E_INVAL);
    assert_null(got);
    assert_non_null(strstr(e.msg, "larger than 10 bytes"));

    /* Replace atomically with other content, out_len optional. */
    assert_int_equal(cs_write_file_atomic(path, "v2", 2, 0600, &e), 0);
    assert_int_equal(cs_read_file(path, 100, &got, NULL, &e), 0);
    assert_string_equal(got, "v2");
    free(got);
    assert_int_equal(count_entries(t->path), 1);

    /* Empty file. */
    assert_int_equal(cs_write_file_atomic(path, "", 0, 0600, &e), 0);
    assert_int_equal(cs_read_file(path, 0, &got, &len, &e), 0);
    assert_int_equal(len, 0);
    assert_string_equal(got, "");
    free(got);

    /* Larger than one read chunk, exactly at the limit. */
    size_t big_n = 200000 + 17;
    char *big = malloc(big_n);
    assert_non_null(big);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (char)(i * 7);
    assert_int_equal(cs_write_file_atomic(path, big, big_n, 0644, &e), 0);
    assert_int_equal(cs_read_file(path, big_n, &got, &len, &e), 0);
    assert_int_equal(len, big_n);
    assert_memory_equal(got, big, big_n);
    free(got);
    assert_int_equal(cs_read_file(path, big_n - 1, &got, &len, &e), CS_E_INVAL);
    assert_null(got);
    free(big);

    /* Missing file: not found, naming the path. */
    char *missing = cs_sprintf("%s/missing", t->path);
    cs_err_clear(&e);
    assert_int_equal(cs_read_file(missing, 100, &got, &len, &e), CS_E_NOTFOUND);
    assert_null(got);
    assert_non_null(strstr(e.msg, missing));
    /* Writing into a missing directory fails cleanly. */
    char *nodir = cs_sprintf("%s/no/such/file", t->path);
    cs_err_clear(&e);
    assert_int_equal(cs_write_file_atomic(nodir, "x", 1, 0600, &e), CS_E_IO);
    assert_non_null(strstr(e.msg, "cannot create"));
    assert_false(cs_exists(nodir));
    /* Reading a directory is an error. */
    assert_int_not_equal(cs_read_file(t->path, 100, &got, &len, &e), 0);
    assert_null(got);
    free(nodir);
    free(missing);
    free(path);
}

static void test_remove_tree(void **state)
{
    tmpdir *t = *state;
    cs_err e;
    cs_err_clear(&e);
    char *tree = cs_sprintf("%s/tree", t->path);
    char *deep = cs_sprintf("%s/a/b/c", tree);
    assert_int_equal(cs_mkdirs(deep, 0755, &e), 0);
    char *f1 = cs_sprintf("%s/a/f1", tree);
    char *f2 = cs_sprintf("%s/a/b/c/f2", tree);
    write_plain(f1, "1");
    write_plain(f2, "2");

    /* A symlink to a directory outside the tree must not be followed. */
    char *outside = cs_sprintf("%s/outside", t->path);
    char *keep = cs_sprintf("%s/outside/keep", t->path);
    assert_int_equal(cs_mkdirs(outside, 0755, &e), 0);
    write_plain(keep, "keep me");
    char *lnk = cs_sprintf("%s/a/b/link", tree);
    assert_int_equal(symlink(outside, lnk), 0);
    /* And a dangling one. */
    char *dangling = cs_sprintf("%s/dangling", tree);
    assert_int_equal(symlink("/nonexistent/cassette", dangling), 0);

    assert_int_equal(cs_remove_tree(tree, &e), 0);
    assert_false(cs_exists(tree));
    assert_true(cs_exists(keep));
    assert_true(cs_is_dir(outside));

    /* Missing is fine; a plain file is removed. */
    assert_int_equal(cs_remove_tree(tree, &e), 0);
    assert_int_equal(cs_remove_tree(keep, &e), 0);
    assert_false(cs_exists(keep));
    /* A symlink given directly is removed, its target kept. */
    char *link2 = cs_sprintf("%s/link2", t->path);
    assert_int_equal(symlink(outside, link2), 0);
    assert_int_equal(cs_remove_tree(link2, &e), 0);
    assert_false(cs_exists(link2));
    assert_true(cs_is_dir(outside));

    free(tree);
    free(deep);
    free(f1);
    free(f2);
    free(outside);
    free(keep);
    free(lnk);
    free(dangling);
    free(link2);
}

static void test_time(void **state)
{
    (void)state;
    char out[21];
    cs_iso8601(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    cs_iso8601(1700000000, out);
    assert_string_equal(out, "2023-11-14T22:13:20Z");
    double now = cs_now();
    assert_true(now > 1.6e9);
    assert_true(now < 1e11);
}

/* ---- proc --------------------------------------------------------------- */

static void assert_split(const char *cmd, size_t n, const char *const *want)
{
    cs_strlist l = { NULL, 0 };
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_split_command(cmd, &l, &e);
    if (rc)
        fail_msg("split(%s): %s", cmd, e.msg);
    if (l.n != n)
        fail_msg("split(%s): %zu words, want %zu", cmd, l.n, n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(l.items[i], want[i]))
            fail_msg("split(%s): word %zu is \"%s\", want \"%s\"", cmd, i, l.items[i], want[i]);
    cs_strlist_free(&l);
}

static void test_split_command(void **state)
{
    (void)state;
    assert_split("nodetool", 1, (const char *const[]){ "nodetool" });
    assert_split("docker exec cassandra nodetool", 4,
                 (const char *const[]){ "docker", "exec", "cassandra", "nodetool" });
    assert_split("  a \t b\n c  ", 3, (const char *const[]){ "a", "b", "c" });
    assert_split("a 'b c' \"d e\"", 3, (const char *const[]){ "a", "b c", "d e" });
    assert_split("a\\ b c", 2, (const char *const[]){ "a b", "c" });
    assert_split("\"x\\\"y\"", 1, (const char *const[]){ "x\"y" });
    assert_split("'x\\y'", 1, (const char *const[]){ "x\\y" });
    assert_split("'it\"s'", 1, (const char *const[]){ "it\"s" });
    assert_split("\"it's\"", 1, (const char *const[]){ "it's" });
    assert_split("a''b", 1, (const char *const[]){ "ab" });
    assert_split("pre'mid dle'post", 1, (const char *const[]){ "premid dlepost" });
    assert_split("'' x", 2, (const char *const[]){ "", "x" });
    assert_split("sh -c 'echo $HOME; exit 3'", 3, (const char *const[]){ "sh", "-c", "echo $HOME; exit 3" });
    assert_split("a\\'b", 1, (const char *const[]){ "a'b" });
    assert_split("trailing\\", 1, (const char *const[]){ "trailing\\" });

    const char *bad[] = { "\"unterminated", "a 'b c", "x\"", "'", "\"a\\\"" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cs_strlist l = { NULL, 0 };
        cs_err e;
        cs_err_clear(&e);
        if (cs_split_command(bad[i], &l, &e) != CS_E_INVAL)
            fail_msg("split(%s) should fail", bad[i]);
        assert_non_null(strstr(e.msg, "unbalanced quote"));
        cs_strlist_free(&l);
    }
    const char *empty[] = { "", "   ", "\t\n" };
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        cs_strlist l = { NULL, 0 };
        cs_err e;
        cs_err_clear(&e);
        assert_int_equal(cs_split_command(empty[i], &l, &e), CS_E_INVAL);
        assert_string_equal(e.msg, "empty command");
        assert_int_equal(l.n, 0);
        cs_strlist_free(&l);
    }
}

static int run_cmd(const char *cmd, cs_proc_result *res, cs_err *e)
{
    cs_strlist argv = { NULL, 0 };
    int rc = cs_split_command(cmd, &argv, e);
    if (!rc)
        rc = cs_proc_run(&argv, res, e);
    cs_strlist_free(&argv);
    return rc;
}

static void test_proc_run(void **state)
{
    (void)state;
    cs_proc_result res;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(run_cmd("sh -c 'echo out; echo err >&2; exit 3'", &res, &e), 0);
    assert_int_equal(res.exit_code, 3);
    assert_string_equal(cs_buf_str(&res.out), "out\n");
    assert_string_equal(cs_buf_str(&res.err), "err\n");
    cs_proc_result_free(&res);

    /* Arguments reach the program as they are: no shell in between. */
    assert_int_equal(run_cmd("printf '%s|' 'a b' '$HOME' ';' '*'", &res, &e), 0);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(cs_buf_str(&res.out), "a b|$HOME|;|*|");
    cs_proc_result_free(&res);

    /* stdin is /dev/null: a program reading it does not hang. */
    assert_int_equal(run_cmd("cat", &res, &e), 0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.out.len, 0);
    cs_proc_result_free(&res);

    /* Killed by a signal: 128 + signal. */
    assert_int_equal(run_cmd("sh -c 'kill -9 $$'", &res, &e), 0);
    assert_int_equal(res.exit_code, 128 + 9);
    cs_proc_result_free(&res);

    /* Lots of output on both streams at once does not dead-lock. */
    assert_int_equal(run_cmd("sh -c 'head -c 300000 /dev/zero >&2; head -c 500000 /dev/zero; echo end'", &res, &e),
                     0);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.err.len, 300000);
    assert_int_equal(res.out.len, 500004);
    assert_string_equal(res.out.data + 500000, "end\n");
    cs_proc_result_free(&res);
}

static void test_proc_missing(void **state)
{
    (void)state;
    cs_proc_result res;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(run_cmd("cassette-no-such-program-4711 --flag", &res, &e), CS_E_EXTERNAL);
    assert_non_null(strstr(e.msg, "not found"));
    assert_non_null(strstr(e.msg, "cassette-no-such-program-4711"));
    cs_proc_result_free(&res);

    /* A path that is not executable. */
    cs_err_clear(&e);
    assert_int_equal(run_cmd("/nonexistent/dir/prog", &res, &e), CS_E_EXTERNAL);
    assert_non_null(strstr(e.msg, "not found"));
    cs_proc_result_free(&res);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* A child that closes stdout early and keeps stderr open must not make the
 * parent spin on the closed pipe while it waits. */
static void test_proc_no_busy_wait(void **state)
{
    (void)state;
    cs_proc_result res;
    cs_err e;
    cs_err_clear(&e);
    double before = cpu_seconds();
    assert_int_equal(run_cmd("sh -c 'exec 1>&-; sleep 1; echo late >&2'", &res, &e), 0);
    double used = cpu_seconds() - before;
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(cs_buf_str(&res.err), "late\n");
    cs_proc_result_free(&res);
    if (used > 0.2)
        fail_msg("cs_proc_run used %.2f s of CPU waiting for a sleeping child", used);
}

static void test_last_line(void **state)
{
    (void)state;
    char out[64];
    cs_last_line("first\nsecond\n\n", out, sizeof out);
    assert_string_equal(out, "second");
    cs_last_line("", out, sizeof out);
    assert_string_equal(out, "");
    cs_last_line("\n\n  \n", out, sizeof out);
    assert_string_equal(out, "");
    cs_last_line("only", out, sizeof out);
    assert_string_equal(out, "only");
    cs_last_line("x\r\nerror: it broke  \r\n", out, sizeof out);
    assert_string_equal(out, "error: it broke");
    cs_last_line("a\n  indented", out, sizeof out);
    assert_string_equal(out, "  indented");
    char small[4];
    cs_last_line("abcdef", small, sizeof small);
    assert_string_equal(small, "abc");
    char one[1];
    cs_last_line("abc", one, sizeof one);
    assert_string_equal(one, "");
}

static void test_strlist(void **state)
{
    (void)state;
    cs_strlist l = { NULL, 0 };
    assert_false(cs_strlist_has(&l, "a"));
    cs_strlist_add(&l, "a");
    cs_strlist_add(&l, "");
    assert_int_equal(l.n, 2);
    assert_true(cs_strlist_has(&l, "a"));
    assert_true(cs_strlist_has(&l, ""));
    assert_false(cs_strlist_has(&l, "b"));
    cs_strlist_free(&l);
    assert_null(l.items);
    assert_int_equal(l.n, 0);
    cs_strlist_free(&l);
}

/* ---- kvlist and units ---- */

static void test_kvlist(void **state)
{
    (void)state;
    cs_kvlist l = CS_KVLIST_INIT;
    assert_null(cs_kvlist_get(&l, "a"));
    assert_null(cs_kvlist_get(NULL, "a"));
    cs_kvlist_set(&l, "s3.region", "eu");
    cs_kvlist_set(&l, "s3.bucket", "b");
    cs_kvlist_set(&l, "s3.region", "us"); /* replaces, keeps its place */
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].name, "s3.region");
    assert_string_equal(cs_kvlist_get(&l, "s3.region"), "us");
    assert_string_equal(cs_kvlist_get(&l, "s3.bucket"), "b");
    cs_kvlist_set(&l, "empty", "");
    assert_string_equal(cs_kvlist_get(&l, "empty"), "");
    cs_kvlist_free(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.items);
    cs_kvlist_free(&l);
}

static void test_parse_size(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_true(!cs_parse_size("0", &v, NULL) && v == 0);
    assert_true(!cs_parse_size("4096", &v, NULL) && v == 4096);
    assert_true(!cs_parse_size("512K", &v, NULL) && v == 512u << 10);
    assert_true(!cs_parse_size("8m", &v, NULL) && v == 8u << 20);
    assert_true(!cs_parse_size("2G", &v, NULL) && v == 2ull << 30);
    const char *bad[] = { "", "M", "-1", "+5", " 5", "5 ", "5MB", "5T", "1.5M", "99999999999999999999", "17179869184G" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        if (!cs_parse_size(bad[i], &v, NULL))
            fail_msg("\"%s\" parsed as %llu", bad[i], (unsigned long long)v);
        assert_int_equal(v, 7);
    }
    assert_true(cs_parse_size(NULL, &v, NULL) != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_set_and_clear),
        cmocka_unit_test(test_err_sys),
        cmocka_unit_test(test_err_prefix_chain),
        cmocka_unit_test(test_err_one_line),
        cmocka_unit_test(test_err_truncation),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_err_kind),
        cmocka_unit_test(test_buf_add),
        cmocka_unit_test(test_buf_printf),
        cmocka_unit_test(test_buf_detach),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_kvlist),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_path_safe_relative),
        cmocka_unit_test(test_path_join),
        cmocka_unit_test(test_dirname),
        cmocka_unit_test_setup_teardown(test_mkdirs, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_write_read_file, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_remove_tree, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_split_command),
        cmocka_unit_test(test_proc_run),
        cmocka_unit_test(test_proc_missing),
        cmocka_unit_test(test_proc_no_busy_wait),
        cmocka_unit_test(test_last_line),
        cmocka_unit_test(test_strlist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
