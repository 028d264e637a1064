/* test_lock.c - repo/lock: shared and exclusive locks, stale locks, waiting,
 * refreshing and checking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "repo/lock.h"
#include "storage/storage.h"

typedef struct fixture {
    char dir[64];
    char *root;
    cs_storage *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-lock-XXXXXX");
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

/* ---- helpers ------------------------------------------------------------ */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int take(fixture *f, cs_lock_kind kind, double wait, const char *purpose, cs_lock **out, cs_err *e)
{
    cs_lock_opts o = { 0, wait, purpose, false };
    cs_err_clear(e);
    return cs_lock_acquire(f->st, kind, &o, out, e);
}

typedef struct keys {
    char *v[16];
    size_t n;
} keys;

static int collect_key(const char *key, const cs_storage_stat *ss, void *arg)
{
    (void)ss;
    keys *k = arg;
    assert_true(k->n < 16);
    k->v[k->n++] = cs_strdup(key);
    return 0;
}

static void keys_free(keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i]);
    k->n = 0;
}

static size_t count_locks(fixture *f)
{
    keys k = { { 0 }, 0 };
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_list(f->st, "locks/", collect_key, &k, &e), 0);
    size_t n = k.n;
    keys_free(&k);
    return n;
}

/* The key of the one lock object there is (caller frees). */
static char *only_lock_key(fixture *f)
{
    keys k = { { 0 }, 0 };
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_list(f->st, "locks/", collect_key, &k, &e), 0);
    assert_int_equal(k.n, 1);
    char *key = k.v[0];
    k.v[0] = NULL;
    return key;
}

static bool exists(fixture *f, const char *key)
{
    cs_err e;
    cs_err_clear(&e);
    cs_storage_stat ss;
    int rc = cs_storage_stat(f->st, key, &ss, &e);
    assert_true(rc == 0 || rc == CS_E_NOTFOUND);
    return rc == 0;
}

static char *host_name(void)
{
    char name[256];
    assert_int_equal(gethostname(name, sizeof name), 0);
    name[sizeof name - 1] = '\0';
    return cs_strdup(name);
}

/* A lock object written by hand, as another process would. */
static void put_lock(fixture *f, const char *key, const char *kind, const char *host, long pid, double refreshed,
                     const char *purpose)
{
    json_t *root = json_pack("{s:s, s:s, s:I, s:f, s:f, s:s}", "kind", kind, "host", host, "pid", (json_int_t)pid,
                             "created", refreshed - 60, "refreshed", refreshed, "purpose", purpose);
    assert_non_null(root);
    char *text = json_dumps(root, 0);
    json_decref(root);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_put_bytes(f->st, key, 0, text, strlen(text), &e), 0);
    free(text);
}

/* Set the storage mtime of key (the posix driver: a file under root). */
static void set_mtime(fixture *f, const char *key, double t)
{
    char *path = cs_path_join(f->root, key);
    struct timespec ts[2] = { { (time_t)t, 0 }, { (time_t)t, 0 } };
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    free(path);
}

/* A pid that ran on this host and does not any more. */
static long dead_pid(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return (long)pid;
}

static double refreshed_of(fixture *f, const char *key)
{
    cs_buf text = CS_BUF_INIT;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_storage_get_bytes(f->st, key, 1 << 16, &text, &e), 0);
    json_t *root = json_loadb(text.data, text.len, 0, NULL);
    assert_non_null(root);
    double t = json_number_value(json_object_get(root, "refreshed"));
    json_decref(root);
    cs_buf_free(&text);
    return t;
}

/* ---- tests -------------------------------------------------------------- */

static void test_shared_coexist(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *a = NULL, *b = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup one", &a, &e), 0);
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup two", &b, &e), 0);
    assert_int_equal(count_locks(f), 2);
    assert_int_equal(cs_lock_check(a, &e), 0);
    assert_int_equal(cs_lock_check(b, &e), 0);
    cs_lock_release(a);
    cs_lock_release(b);
    assert_int_equal(count_locks(f), 0);
    cs_lock_release(NULL);
}

static void test_lock_content(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *l = NULL;
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, "purge", &l, &e), 0);
    char *key = only_lock_key(f);
    assert_int_equal(strncmp(key, "locks/", 6), 0);
    assert_int_equal(strlen(key), strlen("locks/") + 32 + strlen(".lock"));
    assert_string_equal(key + strlen(key) - 5, ".lock");
    cs_buf text = CS_BUF_INIT;
    assert_int_equal(cs_storage_get_bytes(f->st, key, 1 << 16, &text, &e), 0);
    json_t *root = json_loadb(text.data, text.len, 0, NULL);
    assert_non_null(root);
    char *host = host_name();
    assert_string_equal(json_string_value(json_object_get(root, "kind")), "exclusive");
    assert_string_equal(json_string_value(json_object_get(root, "host")), host);
    assert_string_equal(json_string_value(json_object_get(root, "purpose")), "purge");
    assert_int_equal(json_integer_value(json_object_get(root, "pid")), getpid());
    double created = json_number_value(json_object_get(root, "created"));
    double refreshed = json_number_value(json_object_get(root, "refreshed"));
    assert_true(created > cs_now() - 60 && created <= refreshed);
    json_decref(root);
    cs_buf_free(&text);
    free(host);
    free(key);
    cs_lock_release(l);
}

static void test_exclusive_refused_while_shared(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *s = NULL, *x = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup 20261122-010000", &s, &e), 0);
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, "purge", &x, &e), CS_E_LOCKED);
    assert_null(x);
    assert_non_null(strstr(e.msg, "repository is locked by backup 20261122-010000 on host "));
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld,", (long)getpid());
    assert_non_null(strstr(e.msg, pid));
    assert_non_null(strstr(e.msg, " UTC"));
    assert_null(strchr(e.msg, '\n'));
    assert_int_equal(count_locks(f), 1); /* the refused one left nothing behind */
    /* After the release, the exclusive lock is free to take. */
    cs_lock_release(s);
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, "purge", &x, &e), 0);
    cs_lock_release(x);
    assert_int_equal(count_locks(f), 0);
}

static void test_shared_refused_while_exclusive(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *s = NULL, *x = NULL, *x2 = NULL;
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, "purge", &x, &e), 0);
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s, &e), CS_E_LOCKED);
    assert_non_null(strstr(e.msg, "locked by purge on host"));
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, NULL, &x2, &e), CS_E_LOCKED);
    cs_lock_release(x);
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s, &e), 0);
    cs_lock_release(s);
}

static void test_no_purpose(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *x = NULL, *s = NULL;
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, NULL, &x, &e), 0);
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, NULL, &s, &e), CS_E_LOCKED);
    assert_non_null(strstr(e.msg, "locked by an exclusive lock on host"));
    cs_lock_release(x);
}

static void test_dead_pid_broken(void **state)
{
    fixture *f = *state;
    cs_err e;
    char *host = host_name();
    const char *key = "locks/00000000000000000000000000000001.lock";
    put_lock(f, key, "shared", host, dead_pid(), cs_now(), "backup gone");
    cs_lock *x = NULL;
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, "purge", &x, &e), 0);
    assert_false(exists(f, key));
    cs_lock_release(x);
    free(host);
}

static void test_live_pid_kept(void **state)
{
    fixture *f = *state;
    cs_err e;
    char *host = host_name();
    const char *key = "locks/00000000000000000000000000000002.lock";
    put_lock(f, key, "exclusive", host, (long)getppid(), cs_now(), "purge elsewhere");
    cs_lock *s = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s, &e), CS_E_LOCKED);
    assert_non_null(strstr(e.msg, "purge elsewhere"));
    assert_true(exists(f, key));
    free(host);
}

/* A stale lock that does not conflict is left alone: it is not in the way. */
static void test_stale_shared_left_to_shared(void **state)
{
    fixture *f = *state;
    cs_err e;
    char *host = host_name();
    const char *key = "locks/00000000000000000000000000000003.lock";
    put_lock(f, key, "shared", host, dead_pid(), cs_now(), "backup gone");
    cs_lock *s = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s, &e), 0);
    assert_true(exists(f, key));
    cs_lock_release(s);
    free(host);
}

/* A backup sweeps what killed processes of this host left, conflicting or
 * not; a live holder's lock and other hosts' locks stay. */
static void test_sweep_dead_here(void **state)
{
    fixture *f = *state;
    cs_err e;
    char *host = host_name();
    const char *dead = "locks/00000000000000000000000000000004.lock";
    const char *live = "locks/00000000000000000000000000000005.lock";
    const char *other = "locks/00000000000000000000000000000006.lock";
    put_lock(f, dead, "shared", host, dead_pid(), cs_now(), "backup killed");
    put_lock(f, live, "shared", host, (long)getppid(), cs_now(), "backup running");
    put_lock(f, other, "shared", "elsewhere.example", dead_pid(), cs_now(), "backup on another host");
    cs_lock_opts o = { 0, 0, "backup", true };
    cs_lock *s = NULL;
    cs_err_clear(&e);
    assert_int_equal(cs_lock_acquire(f->st, CS_LOCK_SHARED, &o, &s, &e), 0);
    assert_false(exists(f, dead));
    assert_true(exists(f, live));
    assert_true(exists(f, other));
    cs_lock_release(s);
    free(host);
}

/* A lock whose pid now runs a process that started at another time than
 * the lock recorded is the lock of a process that is gone (pid reused). */
static void test_reused_pid_broken(void **state)
{
    fixture *f = *state;
    cs_err e;
    char *host = host_name();
    const char *key = "locks/00000000000000000000000000000007.lock";
    json_t *root = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:s}", "kind", "exclusive", "host", host, "pid",
                             (json_int_t)getppid(), "pidstart", (json_int_t)1, "created", cs_now() - 60, "refreshed",
                             cs_now(), "purpose", "purge before a reboot");
    char *text = json_dumps(root, 0);
    json_decref(root);
    assert_int_equal(cs_storage_put_bytes(f->st, key, 0, text, strlen(text), &e), 0);
    free(text);
    cs_lock *s = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s, &e), 0);
    assert_false(exists(f, key));
    cs_lock_release(s);

    /* Our own lock records our start time, and so stays while we run. */
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, "purge", &s, &e), 0);
    char *own = only_lock_key(f);
    cs_buf body = CS_BUF_INIT;
    assert_int_equal(cs_storage_get_bytes(f->st, own, 1 << 16, &body, &e), 0);
    root = json_loadb(body.data, body.len, 0, NULL);
    assert_true(json_integer_value(json_object_get(root, "pidstart")) > 0);
    json_decref(root);
    cs_lock *s2 = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s2, &e), CS_E_LOCKED);
    cs_lock_release(s);
    cs_buf_free(&body);
    free(own);
    free(host);
}

static void test_other_host_old_broken(void **state)
{
    fixture *f = *state;
    cs_err e;
    const char *key = "locks/00000000000000000000000000000004.lock";
    double long_ago = cs_now() - 7200;
    put_lock(f, key, "exclusive", "elsewhere.invalid", 123, long_ago, "purge");
    set_mtime(f, key, long_ago);
    cs_lock *s = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s, &e), 0);
    assert_false(exists(f, key));
    cs_lock_release(s);
}

/* Old by the holder's clock, just written by the storage's: the newer one
 * counts, so the lock is alive. */
static void test_other_host_old_clock_fresh_mtime(void **state)
{
    fixture *f = *state;
    cs_err e;
    const char *key = "locks/00000000000000000000000000000005.lock";
    put_lock(f, key, "exclusive", "elsewhere.invalid", 123, cs_now() - 7200, "purge");
    cs_lock *s = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s, &e), CS_E_LOCKED);
    assert_non_null(strstr(e.msg, "purge on host elsewhere.invalid, pid 123, since "));
    assert_true(exists(f, key));
}

static void test_other_host_fresh_kept(void **state)
{
    fixture *f = *state;
    cs_err e;
    const char *key = "locks/00000000000000000000000000000006.lock";
    put_lock(f, key, "shared", "elsewhere.invalid", 4242, cs_now(), "backup 20261122-010000");
    set_mtime(f, key, cs_now() - 7200); /* the holder's clock is newer */
    cs_lock *x = NULL;
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, "purge", &x, &e), CS_E_LOCKED);
    assert_non_null(strstr(e.msg, "backup 20261122-010000 on host elsewhere.invalid, pid 4242, since "));
    assert_true(exists(f, key));
    /* A shared lock does not mind it. */
    cs_lock *s = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &s, &e), 0);
    cs_lock_release(s);
}

static void test_damaged(void **state)
{
    fixture *f = *state;
    cs_err e;
    const char *key = "locks/00000000000000000000000000000007.lock";
    assert_int_equal(cs_storage_put_bytes(f->st, key, 0, "{\"kind\": \"sha", 13, &e), 0);
    /* Fresh: it may be anyone's, so it conflicts even with a shared lock. */
    cs_lock *l = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &l, &e), CS_E_LOCKED);
    assert_non_null(strstr(e.msg, "unreadable lock object locks/00000000000000000000000000000007.lock"));
    assert_true(exists(f, key));
    /* Old: stale like any other. */
    set_mtime(f, key, cs_now() - 7200);
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0, "purge", &l, &e), 0);
    assert_false(exists(f, key));
    cs_lock_release(l);
}

static void test_bad_opts(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *l = NULL;
    cs_lock_opts neg_wait = { 0, -1, NULL, false }, neg_stale = { -5, 0, NULL, false };
    cs_err_clear(&e);
    assert_int_equal(cs_lock_acquire(f->st, CS_LOCK_SHARED, &neg_wait, &l, &e), CS_E_INVAL);
    assert_int_equal(cs_lock_acquire(f->st, CS_LOCK_SHARED, &neg_stale, &l, &e), CS_E_INVAL);
    assert_null(l);
    assert_int_equal(count_locks(f), 0);
    /* NULL options are the defaults. */
    assert_int_equal(cs_lock_acquire(f->st, CS_LOCK_SHARED, NULL, &l, &e), 0);
    cs_lock_release(l);
}

typedef struct releaser {
    cs_lock *lock;
    long after_ms;
} releaser;

static void *release_later(void *arg)
{
    releaser *r = arg;
    pause_ms(r->after_ms);
    cs_lock_release(r->lock);
    return NULL;
}

static void test_wait_for_release(void **state)
{
    fixture *f = *state;
    cs_err e;
    releaser r = { NULL, 300 };
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &r.lock, &e), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_later, &r), 0);
    double start = mono();
    cs_lock *x = NULL;
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 5, "purge", &x, &e), 0);
    double took = mono() - start;
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(took >= 0.25 && took < 5);
    assert_int_equal(count_locks(f), 1);
    cs_lock_release(x);
}

static void test_wait_gives_up(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *s = NULL, *x = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup 7", &s, &e), 0);
    double start = mono();
    assert_int_equal(take(f, CS_LOCK_EXCLUSIVE, 0.5, "purge", &x, &e), CS_E_LOCKED);
    double took = mono() - start;
    assert_true(took >= 0.5 && took < 3);
    assert_non_null(strstr(e.msg, "locked by backup 7 on host"));
    assert_non_null(strstr(e.msg, "still held after waiting 0.5s"));
    assert_int_equal(count_locks(f), 1);
    cs_lock_release(s);
}

/* Two exclusive takers racing, each several times: never both inside. */
typedef struct racer {
    fixture *f;
    atomic_int *inside;
    int failures;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < 3; i++) {
        cs_lock *l = NULL;
        cs_err e;
        if (take(r->f, CS_LOCK_EXCLUSIVE, 20, "racer", &l, &e) != 0) {
            r->failures++;
            continue;
        }
        if (atomic_fetch_add(r->inside, 1) != 0)
            r->failures++;
        pause_ms(20);
        atomic_fetch_sub(r->inside, 1);
        cs_lock_release(l);
    }
    return NULL;
}

static void test_exclusive_race(void **state)
{
    fixture *f = *state;
    atomic_int inside = 0;
    racer r[2] = { { f, &inside, 0 }, { f, &inside, 0 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(r[0].failures + r[1].failures, 0);
    assert_int_equal(count_locks(f), 0);
}

static void test_check_broken(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *l = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &l, &e), 0);
    assert_int_equal(cs_lock_check(l, &e), 0);
    char *key = only_lock_key(f);
    assert_int_equal(cs_storage_del(f->st, key, &e), 0);
    assert_int_equal(cs_lock_check(l, &e), CS_E_EXISTS);
    assert_non_null(strstr(e.msg, "was broken by another process"));
    assert_non_null(strstr(e.msg, key));
    cs_lock_release(l); /* deleting what is gone is fine */
    free(key);
}

static void test_refresh(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *l = NULL;
    cs_lock_opts o = { 0.4, 0, "backup", false };
    cs_err_clear(&e);
    assert_int_equal(cs_lock_acquire(f->st, CS_LOCK_SHARED, &o, &l, &e), 0);
    char *key = only_lock_key(f);
    double first = refreshed_of(f, key), now = first;
    double deadline = mono() + 5;
    while (now == first && mono() < deadline) {
        pause_ms(20);
        now = refreshed_of(f, key);
    }
    assert_true(now > first);
    assert_int_equal(cs_lock_check(l, &e), 0);
    /* Broken by hand: the refresh must not bring it back. */
    assert_int_equal(cs_storage_del(f->st, key, &e), 0);
    pause_ms(400); /* four refresh periods */
    assert_false(exists(f, key));
    assert_int_equal(cs_lock_check(l, &e), CS_E_EXISTS);
    cs_lock_release(l);
    free(key);
}

/* Release wakes the refresh thread at once instead of waiting out its period. */
static void test_release_is_prompt(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_lock *l = NULL;
    assert_int_equal(take(f, CS_LOCK_SHARED, 0, "backup", &l, &e), 0); /* refresh period 450 s */
    double start = mono();
    cs_lock_release(l);
    assert_true(mono() - start < 2);
    assert_int_equal(count_locks(f), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shared_coexist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusive_refused_while_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_refused_while_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_purpose, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_pid_broken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_pid_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_shared_left_to_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_dead_here, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_pid_broken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_host_old_broken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_host_old_clock_fresh_mtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_host_fresh_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_opts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_for_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_gives_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusive_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_broken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_is_prompt, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
