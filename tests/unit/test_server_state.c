/* test_server_state.c - server/state with its SQLite back end: every
 * function, conflicts, the cas race between threads and handles, cancel,
 * run filters and order, prune, export -> import, the lease across two
 * handles on one file, files and urls the store cannot open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "server/state.h"
#include "server/state_impl.h"

typedef struct fixture {
    char dir[64];
    char *db;
    cs_state *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-sstate-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->db = cs_path_join(f->dir, "state.db");
    char *url = cs_sprintf("sqlite:%s", f->db);
    cs_err e;
    int rc = cs_state_open(url, NULL, &f->s, &e);
    free(url);
    if (rc)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_state_close(f->s);
    int rc = cs_remove_tree(f->dir, &e);
    free(f->db);
    free(f);
    return rc;
}

static json_t *cluster_doc(const char *id, const char *contact)
{
    return json_pack("{s:s, s:s, s:s}", "id", id, "contact", contact, "repo", "s3://bucket/x");
}

static json_t *task_doc(const char *id, const char *cluster)
{
    return json_pack("{s:s, s:s, s:s, s:{s:i}}", "id", id, "cluster", cluster, "kind", "backup", "params", "jobs", 2);
}

static json_t *run_doc(const char *id, const char *task, const char *cluster, const char *kind, const char *state,
                       double queued_at)
{
    return json_pack("{s:s, s:s?, s:s, s:s, s:s, s:f, s:s}", "id", id, "task", task, "cluster", cluster, "kind", kind,
                     "state", state, "queued_at", queued_at, "trigger", "manual");
}

static void put_cluster(cs_state *s, const char *id)
{
    cs_err e;
    json_t *c = cluster_doc(id, "10.0.0.1");
    assert_int_equal(cs_state_cluster_put(s, c, true, &e), 0);
    json_decref(c);
}

static void add_run(cs_state *s, const char *id, const char *task, const char *cluster, const char *kind,
                    const char *state, double queued_at)
{
    cs_err e;
    json_t *r = run_doc(id, task, cluster, kind, state, queued_at);
    assert_int_equal(cs_state_run_add(s, r, &e), 0);
    json_decref(r);
}

static const char *str(const json_t *doc, const char *key)
{
    return json_string_value(json_object_get(doc, key));
}

static void check_state(cs_state *s, const char *id, const char *want)
{
    cs_err e;
    json_t *r;
    assert_int_equal(cs_state_run_get(s, id, &r, &e), 0);
    assert_string_equal(str(r, "state"), want);
    json_decref(r);
}

static void expect_count(cs_state *s, const char *state, size_t want)
{
    cs_err e;
    json_t *list;
    assert_int_equal(cs_state_run_list(s, &(cs_run_filter){ .state = state, .limit = 1000 }, &list, &e), 0);
    assert_int_equal(json_array_size(list), want);
    json_decref(list);
}

/* ---- opening ---- */

static void test_open_urls(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_state *s = NULL;
    assert_string_equal(cs_state_kind(f->s), "sqlite");
    /* a plain path is the same store */
    assert_int_equal(cs_state_open(f->db, NULL, &s, &e), 0);
    assert_string_equal(cs_state_kind(s), "sqlite");
    cs_state_close(s);
    cs_state_close(NULL);

    static const char *const bad[] = { "", "sqlite:", "http://host/x", "s3://bucket/state.db" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = (cs_state *)&e;
        assert_int_equal(cs_state_open(bad[i], NULL, &s, &e), CS_E_USAGE);
        assert_null(s);
        assert_null(strchr(e.msg, '\n'));
    }
    assert_int_equal(cs_state_open(NULL, NULL, &s, &e), CS_E_USAGE);
    /* The cassandra back end is chosen by its scheme; nothing listens on
     * port 1, so whichever back end is linked in, it is one error. */
    assert_int_not_equal(cs_state_open("cassandra://127.0.0.1:1/cassette", NULL, &s, &e), 0);
    assert_null(s);
    assert_true(e.msg[0] != '\0');
}

static void test_open_missing_directory(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_state *s = NULL;
    char *path = cs_sprintf("%s/no/such/dir/state.db", f->dir);
    assert_int_equal(cs_state_open(path, NULL, &s, &e), CS_E_IO);
    assert_null(s);
    assert_non_null(strstr(e.msg, path));
    assert_null(strchr(e.msg, '\n'));
    /* nothing was made on the way */
    char *dir = cs_sprintf("%s/no", f->dir);
    assert_int_not_equal(access(dir, F_OK), 0);
    free(dir);
    free(path);
}

static void test_open_not_a_store(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_state *s = NULL;
    /* not SQLite at all */
    char *junk = cs_path_join(f->dir, "junk.db");
    FILE *fp = fopen(junk, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is no database, only text that fills a page or two\n", fp);
    fclose(fp);
    assert_int_equal(cs_state_open(junk, NULL, &s, &e), CS_E_IO);
    assert_null(s);
    assert_non_null(strstr(e.msg, junk));
    assert_non_null(strstr(e.msg, "not a database"));
    assert_null(strchr(e.msg, '\n'));

    /* SQLite, but another program's: refused, and left as it was */
    char *other = cs_path_join(f->dir, "other.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE things(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(cs_state_open(other, NULL, &s, &e), CS_E_INVAL);
    assert_null(s);
    assert_non_null(strstr(e.msg, "not a cassette state store"));
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "SELECT * FROM clusters", NULL, NULL, NULL), SQLITE_ERROR);
    sqlite3_close(db);
    free(junk);
    free(other);
}

/* ---- clusters and tasks ---- */

static void test_clusters(void **state)
{
    fixture *f = *state;
    cs_err e;
    json_t *got, *list;
    put_cluster(f->s, "prod");
    put_cluster(f->s, "dev");
    json_t *c = cluster_doc("prod", "10.0.0.2");
    assert_int_equal(cs_state_cluster_put(f->s, c, true, &e), CS_E_EXISTS);
    assert_int_equal(cs_state_cluster_put(f->s, c, false, &e), 0);
    assert_int_equal(cs_state_cluster_get(f->s, "prod", &got, &e), 0);
    assert_true(json_equal(got, c));
    json_decref(got);
    json_decref(c);

    c = cluster_doc("nope", "10.0.0.3");
    assert_int_equal(cs_state_cluster_put(f->s, c, false, &e), CS_E_NOTFOUND);
    json_decref(c);
    assert_int_equal(cs_state_cluster_get(f->s, "nope", &got, &e), CS_E_NOTFOUND);
    assert_null(got);

    assert_int_equal(cs_state_cluster_list(f->s, &list, &e), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(str(json_array_get(list, 0), "id"), "dev");
    assert_string_equal(str(json_array_get(list, 1), "id"), "prod");
    json_decref(list);

    assert_int_equal(cs_state_cluster_delete(f->s, "dev", &e), 0);
    assert_int_equal(cs_state_cluster_delete(f->s, "dev", &e), CS_E_NOTFOUND);
    assert_int_equal(cs_state_cluster_list(f->s, &list, &e), 0);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
}

static void test_bad_documents(void **state)
{
    fixture *f = *state;
    cs_err e;
    json_t *got;
    char long_id[200];
    memset(long_id, 'x', 129);
    long_id[129] = '\0';
    json_t *docs[] = {
        json_string("prod"),
        json_object(),
        json_pack("{s:s}", "id", ""),
        json_pack("{s:i}", "id", 7),
        json_pack("{s:s}", "id", long_id),
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        assert_int_equal(cs_state_cluster_put(f->s, docs[i], true, &e), CS_E_INVAL);
        assert_int_equal(cs_state_task_put(f->s, docs[i], true, &e), CS_E_INVAL);
        assert_int_equal(cs_state_run_add(f->s, docs[i], &e), CS_E_INVAL);
        json_decref(docs[i]);
    }
    assert_int_equal(cs_state_cluster_get(f->s, long_id, &got, &e), CS_E_INVAL);
    assert_string_equal(e.field, "id");
    long_id[128] = '\0'; /* 128 bytes: allowed */
    assert_int_equal(cs_state_cluster_get(f->s, long_id, &got, &e), CS_E_NOTFOUND);
    assert_int_equal(cs_state_cluster_get(f->s, "", &got, &e), CS_E_INVAL);
    assert_int_equal(cs_state_run_get(f->s, NULL, &got, &e), CS_E_INVAL);

    /* runs: a state of the six, typed index fields */
    put_cluster(f->s, "prod");
    json_t *r = run_doc("r-1", NULL, "prod", "backup", "sleeping", 1);
    assert_int_equal(cs_state_run_add(f->s, r, &e), CS_E_INVAL);
    assert_string_equal(e.field, "state");
    json_object_set_new(r, "state", json_string("queued"));
    json_object_set_new(r, "cluster", json_integer(3));
    assert_int_equal(cs_state_run_add(f->s, r, &e), CS_E_INVAL);
    assert_string_equal(e.field, "cluster");
    json_object_set_new(r, "cluster", json_string("prod"));
    json_object_set_new(r, "queued_at", json_string("yesterday"));
    assert_int_equal(cs_state_run_add(f->s, r, &e), CS_E_INVAL);
    assert_string_equal(e.field, "queued_at");
    json_object_set_new(r, "queued_at", json_real(5));
    json_object_set_new(r, "task", json_null()); /* an API one-off */
    assert_int_equal(cs_state_run_add(f->s, r, &e), 0);
    json_decref(r);

    bool applied = true;
    r = run_doc("r-1", NULL, "prod", "backup", "running", 5);
    assert_int_equal(cs_state_run_cas(f->s, "asleep", r, &applied, &e), CS_E_INVAL);
    assert_false(applied);
    json_decref(r);
    cs_run_filter filter = { .state = "asleep" };
    json_t *list;
    assert_int_equal(cs_state_run_list(f->s, &filter, &list, &e), CS_E_INVAL);
    assert_null(list);
    bool held = true;
    uint64_t epoch = 9;
    assert_int_equal(cs_state_lease(f->s, "", 10, &held, &epoch, &e), CS_E_INVAL);
    assert_int_equal(cs_state_lease(f->s, "me", 0, &held, &epoch, &e), CS_E_INVAL);
    assert_false(held);
    assert_int_equal(cs_state_audit_add(f->s, json_null(), &e), CS_E_INVAL);
}

static void test_tasks(void **state)
{
    fixture *f = *state;
    cs_err e;
    json_t *got, *list;
    json_t *t = task_doc("t-1", "prod");
    assert_int_equal(cs_state_task_put(f->s, t, true, &e), CS_E_NOTFOUND);
    assert_string_equal(e.field, "cluster");
    assert_non_null(strstr(e.msg, "prod"));
    put_cluster(f->s, "prod");
    put_cluster(f->s, "dev");
    assert_int_equal(cs_state_task_put(f->s, t, true, &e), 0);
    assert_int_equal(cs_state_task_put(f->s, t, true, &e), CS_E_EXISTS);
    json_decref(t);
    t = task_doc("t-2", "dev");
    assert_int_equal(cs_state_task_put(f->s, t, true, &e), 0);
    json_decref(t);
    t = task_doc("t-0", "prod");
    assert_int_equal(cs_state_task_put(f->s, t, true, &e), 0);
    json_decref(t);
    t = json_pack("{s:s}", "id", "t-3");
    assert_int_equal(cs_state_task_put(f->s, t, true, &e), CS_E_INVAL);
    assert_string_equal(e.field, "cluster");
    json_decref(t);

    /* update: of a missing task, to an unknown cluster, then for real */
    t = task_doc("t-9", "prod");
    assert_int_equal(cs_state_task_put(f->s, t, false, &e), CS_E_NOTFOUND);
    json_decref(t);
    t = task_doc("t-1", "gone");
    assert_int_equal(cs_state_task_put(f->s, t, false, &e), CS_E_NOTFOUND);
    assert_string_equal(e.field, "cluster");
    json_decref(t);
    t = task_doc("t-1", "prod");
    json_object_set_new(t, "enabled", json_false());
    assert_int_equal(cs_state_task_put(f->s, t, false, &e), 0);
    assert_int_equal(cs_state_task_get(f->s, "t-1", &got, &e), 0);
    assert_true(json_equal(got, t));
    json_decref(got);
    json_decref(t);

    assert_int_equal(cs_state_task_list(f->s, "prod", &list, &e), 0);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(str(json_array_get(list, 0), "id"), "t-0");
    assert_string_equal(str(json_array_get(list, 1), "id"), "t-1");
    json_decref(list);
    assert_int_equal(cs_state_task_list(f->s, NULL, &list, &e), 0);
    assert_int_equal(json_array_size(list), 3);
    json_decref(list);
    assert_int_equal(cs_state_task_list(f->s, "none", &list, &e), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);

    assert_int_equal(cs_state_task_delete(f->s, "t-0", &e), 0);
    assert_int_equal(cs_state_task_delete(f->s, "t-0", &e), CS_E_NOTFOUND);
    assert_int_equal(cs_state_task_get(f->s, "t-0", &got, &e), CS_E_NOTFOUND);

    /* removing a cluster removes its tasks; its runs stay as history */
    add_run(f->s, "r-1", "t-1", "prod", "backup", "done", 10);
    assert_int_equal(cs_state_cluster_delete(f->s, "prod", &e), 0);
    assert_int_equal(cs_state_task_get(f->s, "t-1", &got, &e), CS_E_NOTFOUND);
    assert_int_equal(cs_state_task_get(f->s, "t-2", &got, &e), 0);
    json_decref(got);
    check_state(f->s, "r-1", "done");
}

/* ---- runs ---- */

static void test_run_add_update(void **state)
{
    fixture *f = *state;
    cs_err e;
    json_t *got;
    add_run(f->s, "r-1", "t-1", "prod", "backup", "queued", 100);
    json_t *r = run_doc("r-1", "t-1", "prod", "backup", "queued", 100);
    assert_int_equal(cs_state_run_add(f->s, r, &e), CS_E_EXISTS);

    /* progress without a state change */
    json_object_set_new(r, "progress", json_pack("{s:s, s:i}", "phase", "upload", "files_done", 3));
    assert_int_equal(cs_state_run_update(f->s, r, &e), 0);
    assert_int_equal(cs_state_run_get(f->s, "r-1", &got, &e), 0);
    assert_true(json_equal(got, r));
    json_decref(got);

    /* an update cannot move the state */
    json_object_set_new(r, "state", json_string("done"));
    assert_int_equal(cs_state_run_update(f->s, r, &e), CS_E_EXISTS);
    assert_non_null(strstr(e.msg, "conflict"));
    check_state(f->s, "r-1", "queued");
    json_decref(r);

    r = run_doc("r-2", "t-1", "prod", "backup", "queued", 100);
    assert_int_equal(cs_state_run_update(f->s, r, &e), CS_E_NOTFOUND);
    json_decref(r);
    assert_int_equal(cs_state_run_get(f->s, "r-2", &got, &e), CS_E_NOTFOUND);
}

static void test_run_cas(void **state)
{
    fixture *f = *state;
    cs_err e;
    bool applied;
    add_run(f->s, "r-1", "t-1", "prod", "backup", "queued", 100);
    json_t *r = run_doc("r-1", "t-1", "prod", "backup", "running", 100);
    json_object_set_new(r, "started", json_real(101));
    json_object_set_new(r, "epoch", json_integer(3));
    assert_int_equal(cs_state_run_cas(f->s, "queued", r, &applied, &e), 0);
    assert_true(applied);
    assert_int_equal(cs_state_run_cas(f->s, "queued", r, &applied, &e), 0);
    assert_false(applied);
    json_t *got;
    assert_int_equal(cs_state_run_get(f->s, "r-1", &got, &e), 0);
    assert_true(json_equal(got, r));
    json_decref(got);
    json_decref(r);

    r = run_doc("r-1", "t-1", "prod", "backup", "done", 100);
    assert_int_equal(cs_state_run_cas(f->s, "running", r, &applied, &e), 0);
    assert_true(applied);
    check_state(f->s, "r-1", "done");
    json_decref(r);

    r = run_doc("r-9", "t-1", "prod", "backup", "running", 100);
    applied = true;
    assert_int_equal(cs_state_run_cas(f->s, "queued", r, &applied, &e), CS_E_NOTFOUND);
    assert_false(applied);
    json_decref(r);
}

/* Threads taking the same queued runs, half through a second handle on
 * the same file (another server process would hold one). */
#define RACERS 6
#define RACE_RUNS 20

typedef struct racer {
    cs_state *s;
    pthread_barrier_t *go;
    int wins[RACE_RUNS];
    int errors;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < RACE_RUNS; i++) {
        char id[32];
        snprintf(id, sizeof id, "r-%02d", i);
        json_t *doc = run_doc(id, "t-1", "prod", "backup", "running", 100 + i);
        pthread_barrier_wait(r->go);
        bool applied = false;
        cs_err e;
        if (cs_state_run_cas(r->s, "queued", doc, &applied, &e))
            r->errors++;
        r->wins[i] = applied;
        json_decref(doc);
    }
    return NULL;
}

static void test_run_cas_race(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_state *other;
    assert_int_equal(cs_state_open(f->db, NULL, &other, &e), 0);
    for (int i = 0; i < RACE_RUNS; i++) {
        char id[32];
        snprintf(id, sizeof id, "r-%02d", i);
        add_run(f->s, id, "t-1", "prod", "backup", "queued", 100 + i);
    }
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACERS);
    racer racers[RACERS];
    pthread_t threads[RACERS];
    for (int t = 0; t < RACERS; t++) {
        racers[t] = (racer){ .s = t % 2 ? other : f->s, .go = &go };
        assert_int_equal(pthread_create(&threads[t], NULL, race, &racers[t]), 0);
    }
    for (int t = 0; t < RACERS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < RACE_RUNS; i++) {
        int wins = 0;
        for (int t = 0; t < RACERS; t++)
            wins += racers[t].wins[i];
        assert_int_equal(wins, 1);
    }
    for (int t = 0; t < RACERS; t++)
        assert_int_equal(racers[t].errors, 0);
    expect_count(f->s, "running", RACE_RUNS);
    expect_count(f->s, "queued", 0);
    cs_state_close(other);
}

/* Two processes, each with its own handle on the file, take the same
 * queued runs: each run is taken once. */
static void take_all(const char *db, int out_fd)
{
    cs_err e;
    cs_state *s;
    if (cs_state_open(db, NULL, &s, &e))
        _exit(2);
    for (int i = 0; i < RACE_RUNS; i++) {
        char id[32];
        snprintf(id, sizeof id, "r-%02d", i);
        json_t *doc = run_doc(id, "t-1", "prod", "backup", "running", 100 + i);
        bool applied = false;
        char won;
        if (cs_state_run_cas(s, "queued", doc, &applied, &e))
            _exit(3);
        won = applied ? '1' : '0';
        if (write(out_fd, &won, 1) != 1)
            _exit(4);
        json_decref(doc);
    }
    cs_state_close(s);
}

static void test_run_cas_processes(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < RACE_RUNS; i++) {
        char id[32];
        snprintf(id, sizeof id, "r-%02d", i);
        add_run(f->s, id, "t-1", "prod", "backup", "queued", 100 + i);
    }
    int fds[2][2];
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        assert_int_equal(pipe(fds[p]), 0);
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            close(fds[p][0]);
            take_all(f->db, fds[p][1]);
            _exit(0);
        }
        close(fds[p][1]);
    }
    char wins[2][RACE_RUNS];
    for (int p = 0; p < 2; p++) {
        size_t got = 0;
        ssize_t n;
        while (got < RACE_RUNS && (n = read(fds[p][0], wins[p] + got, RACE_RUNS - got)) > 0)
            got += (size_t)n;
        assert_int_equal(got, RACE_RUNS);
        close(fds[p][0]);
        int status;
        assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    for (int i = 0; i < RACE_RUNS; i++)
        assert_int_equal((wins[0][i] == '1') + (wins[1][i] == '1'), 1);
    expect_count(f->s, "running", RACE_RUNS);
}

static void test_run_cancel(void **state)
{
    fixture *f = *state;
    cs_err e;
    char st[16];
    bool asked = true, applied;
    add_run(f->s, "r-q", "t-1", "prod", "backup", "queued", 100);
    add_run(f->s, "r-r", "t-1", "prod", "backup", "running", 101);
    add_run(f->s, "r-d", "t-1", "prod", "backup", "done", 102);

    /* queued: cancelled at once, with its end */
    assert_int_equal(cs_state_run_cancel_asked(f->s, "r-q", &asked, &e), 0);
    assert_false(asked);
    assert_int_equal(cs_state_run_cancel(f->s, "r-q", st, &e), 0);
    assert_string_equal(st, "cancelled");
    json_t *got;
    assert_int_equal(cs_state_run_get(f->s, "r-q", &got, &e), 0);
    assert_string_equal(str(got, "state"), "cancelled");
    assert_true(json_is_number(json_object_get(got, "ended")));
    assert_string_equal(str(got, "trigger"), "manual");
    json_decref(got);
    /* ... so nobody takes it any more */
    json_t *r = run_doc("r-q", "t-1", "prod", "backup", "running", 100);
    assert_int_equal(cs_state_run_cas(f->s, "queued", r, &applied, &e), 0);
    assert_false(applied);
    json_decref(r);

    /* running: marked for its owner, who ends it */
    assert_int_equal(cs_state_run_cancel(f->s, "r-r", st, &e), 0);
    assert_string_equal(st, "running");
    check_state(f->s, "r-r", "running");
    assert_int_equal(cs_state_run_cancel_asked(f->s, "r-r", &asked, &e), 0);
    assert_true(asked);
    r = run_doc("r-r", "t-1", "prod", "backup", "running", 101);
    json_object_set_new(r, "progress", json_object());
    assert_int_equal(cs_state_run_update(f->s, r, &e), 0); /* the mark survives the owner's writes */
    assert_int_equal(cs_state_run_cancel_asked(f->s, "r-r", &asked, &e), 0);
    assert_true(asked);
    json_object_set_new(r, "state", json_string("cancelled"));
    assert_int_equal(cs_state_run_cas(f->s, "running", r, &applied, &e), 0);
    assert_true(applied);
    json_decref(r);

    /* final: left as it is */
    assert_int_equal(cs_state_run_cancel(f->s, "r-d", st, &e), 0);
    assert_string_equal(st, "done");
    check_state(f->s, "r-d", "done");
    assert_int_equal(cs_state_run_cancel(f->s, "r-r", st, &e), 0);
    assert_string_equal(st, "cancelled");

    assert_int_equal(cs_state_run_cancel(f->s, "r-x", st, &e), CS_E_NOTFOUND);
    assert_int_equal(cs_state_run_cancel_asked(f->s, "r-x", &asked, &e), CS_E_NOTFOUND);
    assert_false(asked);
}

/* The ids of list, joined by ",". */
static char *ids(const json_t *list)
{
    cs_buf b = { 0 };
    size_t i;
    const json_t *r;
    json_array_foreach(list, i, r) cs_buf_printf(&b, "%s%s", i ? "," : "", str(r, "id"));
    return cs_buf_detach(&b);
}

static void expect_list(cs_state *s, cs_run_filter filter, const char *want)
{
    cs_err e;
    json_t *list;
    assert_int_equal(cs_state_run_list(s, &filter, &list, &e), 0);
    char *got = ids(list);
    assert_string_equal(got, want);
    free(got);
    json_decref(list);
}

static void test_run_list(void **state)
{
    fixture *f = *state;
    add_run(f->s, "r-1", "t-1", "prod", "backup", "done", 10);
    add_run(f->s, "r-2", "t-2", "prod", "purge", "failed", 20);
    add_run(f->s, "r-3", "t-1", "prod", "backup", "running", 30);
    add_run(f->s, "r-4", NULL, "dev", "restore", "queued", 40);
    add_run(f->s, "r-5", "t-3", "dev", "backup", "queued", 30); /* same time as r-3: by id */
    add_run(f->s, "r-6", "t-1", "prod", "backup", "interrupted", 50);

    expect_list(f->s, (cs_run_filter){ 0 }, "r-6,r-4,r-5,r-3,r-2,r-1");
    expect_list(f->s, (cs_run_filter){ .oldest_first = true }, "r-1,r-2,r-3,r-5,r-4,r-6");
    expect_list(f->s, (cs_run_filter){ .cluster = "prod" }, "r-6,r-3,r-2,r-1");
    expect_list(f->s, (cs_run_filter){ .task = "t-1" }, "r-6,r-3,r-1");
    expect_list(f->s, (cs_run_filter){ .kind = "backup" }, "r-6,r-5,r-3,r-1");
    expect_list(f->s, (cs_run_filter){ .state = "queued" }, "r-4,r-5");
    expect_list(f->s, (cs_run_filter){ .state = "open", .oldest_first = true }, "r-3,r-5,r-4");
    expect_list(f->s, (cs_run_filter){ .state = "open", .cluster = "dev", .oldest_first = true }, "r-5,r-4");
    expect_list(f->s, (cs_run_filter){ .since = 30 }, "r-6,r-4,r-5,r-3");
    expect_list(f->s, (cs_run_filter){ .limit = 2 }, "r-6,r-4");
    expect_list(f->s, (cs_run_filter){ .cluster = "prod", .task = "t-1", .kind = "backup", .state = "done" }, "r-1");
    expect_list(f->s, (cs_run_filter){ .cluster = "none" }, "");

    cs_err e;
    json_t *list;
    assert_int_equal(cs_state_run_list(f->s, NULL, &list, &e), 0);
    assert_int_equal(json_array_size(list), 6);
    json_decref(list);
}

/* Limits: 100 by default, never more than 1000 in one answer. */
static void test_run_list_limits(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_state *s = f->s;
    /* 1200 runs written straight into the file in one transaction (one
     * cs_state_run_add each would cost 1200 fsyncs) */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    assert_int_equal(sqlite3_exec(db,
                                  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200)"
                                  " INSERT INTO runs(id, task, cluster, kind, state, queued_at, doc)"
                                  " SELECT printf('r-%04d', i), 't-1', 'prod', 'backup', 'done', i,"
                                  " printf('{\"id\":\"r-%04d\",\"state\":\"done\"}', i) FROM n",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    json_t *list;
    assert_int_equal(cs_state_run_list(s, &(cs_run_filter){ 0 }, &list, &e), 0);
    assert_int_equal(json_array_size(list), 100);
    assert_string_equal(str(json_array_get(list, 0), "id"), "r-1200");
    json_decref(list);
    assert_int_equal(cs_state_run_list(s, &(cs_run_filter){ .limit = 5000 }, &list, &e), 0);
    assert_int_equal(json_array_size(list), 1000);
    json_decref(list);
}

static void test_prune(void **state)
{
    fixture *f = *state;
    cs_err e;
    json_t *list, *got;
    add_run(f->s, "r-1", "t-1", "prod", "backup", "done", 10);
    add_run(f->s, "r-2", "t-1", "prod", "backup", "cancelled", 20);
    add_run(f->s, "r-3", "t-1", "prod", "backup", "queued", 20);   /* open: kept */
    add_run(f->s, "r-4", "t-1", "prod", "backup", "running", 20);  /* open: kept */
    add_run(f->s, "r-5", "t-1", "prod", "backup", "failed", 100); /* recent */
    for (int i = 0; i < 3; i++) {
        json_t *a = json_pack("{s:f, s:s, s:s, s:i}", "at", 10.0 + 50 * i, "who", "admin", "method", "POST", "status",
                              201);
        assert_int_equal(cs_state_audit_add(f->s, a, &e), 0);
        json_decref(a);
    }
    assert_int_equal(cs_state_prune(f->s, 50, &e), 0);
    expect_list(f->s, (cs_run_filter){ .oldest_first = true }, "r-3,r-4,r-5");
    assert_int_equal(cs_state_run_get(f->s, "r-1", &got, &e), CS_E_NOTFOUND);
    assert_int_equal(cs_state_audit_list(f->s, 0, &list, &e), 0);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
}

static void test_audit(void **state)
{
    fixture *f = *state;
    cs_err e;
    json_t *list;
    double before = cs_now();
    for (int i = 0; i < 5; i++) {
        char what[32];
        snprintf(what, sizeof what, "task t-%d created", i);
        json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "who", "ops", "role", "admin", "method", "POST",
                              "path", "/v1/tasks", "status", 201, "what", what);
        assert_int_equal(cs_state_audit_add(f->s, a, &e), 0);
        json_decref(a);
    }
    assert_int_equal(cs_state_audit_list(f->s, 3, &list, &e), 0);
    assert_int_equal(json_array_size(list), 3);
    assert_string_equal(str(json_array_get(list, 0), "what"), "task t-4 created");
    assert_string_equal(str(json_array_get(list, 2), "what"), "task t-2 created");
    /* the store stamped them */
    double at = json_number_value(json_object_get(json_array_get(list, 0), "at"));
    assert_true(at >= before && at <= cs_now());
    json_decref(list);
    assert_int_equal(cs_state_audit_list(f->s, 0, &list, &e), 0);
    assert_int_equal(json_array_size(list), 5);
    json_decref(list);
}

/* ---- the lease ---- */

/* Ask for the lease until owner holds it (it lapses on its own). */
static uint64_t wait_lease(cs_state *s, const char *owner, double ttl)
{
    double deadline = cs_now() + 10;
    for (;;) {
        bool held;
        uint64_t epoch;
        cs_err e;
        assert_int_equal(cs_state_lease(s, owner, ttl, &held, &epoch, &e), 0);
        if (held)
            return epoch;
        assert_true(cs_now() < deadline);
        nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
    }
}

static void test_lease(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_state *b;
    assert_int_equal(cs_state_open(f->db, NULL, &b, &e), 0);
    bool held;
    uint64_t epoch;
    json_t *got;

    assert_int_equal(cs_state_lease_get(f->s, &got, &e), 0);
    assert_true(json_is_null(json_object_get(got, "owner")));
    assert_int_equal(json_integer_value(json_object_get(got, "epoch")), 0);
    json_decref(got);

    /* A takes it; B cannot while it is live; A renews under the same epoch.
     * An epoch is at least the time in milliseconds (cs_state_lease). */
    double t0 = cs_now();
    assert_int_equal(cs_state_lease(f->s, "server-a", 30, &held, &epoch, &e), 0);
    assert_true(held);
    uint64_t e1 = epoch;
    assert_true(e1 >= (uint64_t)(t0 * 1000));
    assert_int_equal(cs_state_lease(b, "server-b", 30, &held, &epoch, &e), 0);
    assert_false(held);
    assert_int_equal(epoch, e1);
    assert_int_equal(cs_state_lease(f->s, "server-a", 60, &held, &epoch, &e), 0);
    assert_true(held);
    assert_int_equal(epoch, e1);
    assert_int_equal(cs_state_lease_get(b, &got, &e), 0);
    assert_string_equal(str(got, "owner"), "server-a");
    assert_int_equal(json_integer_value(json_object_get(got, "epoch")), e1);
    assert_true(json_number_value(json_object_get(got, "expires")) > cs_now() + 30);
    json_decref(got);

    /* release hands it over at once; a release by another is nothing */
    assert_int_equal(cs_state_lease_release(b, "server-b", &e), 0);
    assert_int_equal(cs_state_lease(b, "server-b", 0.3, &held, &epoch, &e), 0);
    assert_false(held);
    assert_int_equal(cs_state_lease_release(f->s, "server-a", &e), 0);
    assert_int_equal(cs_state_lease_get(b, &got, &e), 0);
    assert_true(json_is_null(json_object_get(got, "owner")));
    assert_int_equal(json_integer_value(json_object_get(got, "epoch")), e1);
    json_decref(got);
    assert_int_equal(cs_state_lease(b, "server-b", 1, &held, &epoch, &e), 0);
    assert_true(held);
    uint64_t e2 = epoch;
    assert_true(e2 > e1);

    /* B's lapses: A takes it with a newer epoch */
    assert_int_equal(cs_state_lease(f->s, "server-a", 30, &held, &epoch, &e), 0);
    assert_false(held);
    assert_int_equal(epoch, e2);
    uint64_t e3 = wait_lease(f->s, "server-a", 30);
    assert_true(e3 > e2);
    assert_int_equal(cs_state_lease(b, "server-b", 30, &held, &epoch, &e), 0);
    assert_false(held);
    assert_int_equal(epoch, e3);

    /* A's own lapsed lease taken again by A is a new epoch too */
    assert_int_equal(cs_state_lease(f->s, "server-a", 0.2, &held, &epoch, &e), 0);
    assert_true(held);
    assert_int_equal(epoch, e3);
    double deadline = cs_now() + 10;
    for (;;) {
        assert_int_equal(cs_state_lease_get(b, &got, &e), 0);
        bool free_now = json_is_null(json_object_get(got, "owner"));
        json_decref(got);
        if (free_now)
            break;
        assert_true(cs_now() < deadline);
        nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
    }
    uint64_t e4 = wait_lease(f->s, "server-a", 30);
    assert_true(e4 > e3);

    /* the epoch is kept by the file */
    cs_state_close(b);
    assert_int_equal(cs_state_lease_release(f->s, "server-a", &e), 0);
    cs_state_close(f->s);
    assert_int_equal(cs_state_open(f->db, NULL, &f->s, &e), 0);
    assert_true(wait_lease(f->s, "server-c", 30) > e4);
}

/* The next epoch: one more than the last, and never below the time in
 * milliseconds, so a new store's first lease outranks old ones. */
static void test_epoch_after(void **state)
{
    (void)state;
    assert_int_equal(cs_state_epoch_after(0, 1000.5), 1000500);
    assert_int_equal(cs_state_epoch_after(1000500, 1000.5), 1000501);
    assert_int_equal(cs_state_epoch_after(5000000, 1000.5), 5000001);
}

/* ---- export / import ---- */

static void test_export_import(void **state)
{
    fixture *f = *state;
    cs_err e;
    put_cluster(f->s, "prod");
    put_cluster(f->s, "dev");
    json_t *t = task_doc("t-1", "prod");
    assert_int_equal(cs_state_task_put(f->s, t, true, &e), 0);
    json_decref(t);
    double now = cs_now();
    add_run(f->s, "r-old", "t-1", "prod", "backup", "done", now - 40 * 86400.0); /* beyond the history */
    add_run(f->s, "r-1", "t-1", "prod", "backup", "done", now - 100);
    add_run(f->s, "r-2", "t-1", "prod", "backup", "failed", now - 50);
    add_run(f->s, "r-3", "t-1", "prod", "backup", "running", now - 10); /* open: not exported */

    json_t *doc;
    assert_int_equal(cs_state_export(f->s, &doc, &e), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "format")), 1);
    assert_true(json_number_value(json_object_get(doc, "exported")) >= now);
    assert_int_equal(json_array_size(json_object_get(doc, "clusters")), 2);
    assert_int_equal(json_array_size(json_object_get(doc, "tasks")), 1);
    char *got = ids(json_object_get(doc, "runs"));
    assert_string_equal(got, "r-1,r-2");
    free(got);

    /* an export that holds an open run (an older server's) */
    json_t *open = run_doc("r-4", "t-1", "prod", "backup", "running", now - 5);
    json_array_append_new(json_object_get(doc, "runs"), open);

    char *path = cs_path_join(f->dir, "fresh.db");
    cs_state *fresh;
    assert_int_equal(cs_state_open(path, NULL, &fresh, &e), 0);
    size_t added;
    assert_int_equal(cs_state_import(fresh, doc, &added, &e), 0);
    assert_int_equal(added, 2 + 1 + 3);
    json_t *again;
    assert_int_equal(cs_state_export(fresh, &again, &e), 0);
    assert_true(json_equal(json_object_get(again, "clusters"), json_object_get(doc, "clusters")));
    assert_true(json_equal(json_object_get(again, "tasks"), json_object_get(doc, "tasks")));
    json_t *r;
    assert_int_equal(cs_state_run_get(fresh, "r-1", &r, &e), 0);
    assert_true(json_equal(r, json_array_get(json_object_get(doc, "runs"), 0)));
    json_decref(r);
    check_state(fresh, "r-4", "interrupted");
    json_decref(again);

    /* again: nothing new; what the store holds already is left alone */
    json_t *c = cluster_doc("prod", "10.9.9.9");
    assert_int_equal(cs_state_cluster_put(fresh, c, false, &e), 0);
    assert_int_equal(cs_state_import(fresh, doc, &added, &e), 0);
    assert_int_equal(added, 0);
    assert_int_equal(cs_state_cluster_get(fresh, "prod", &r, &e), 0);
    assert_true(json_equal(r, c));
    json_decref(r);
    json_decref(c);

    /* not an export */
    json_t *bad = json_pack("{s:i}", "format", 2);
    assert_int_equal(cs_state_import(fresh, bad, &added, &e), CS_E_INVAL);
    json_decref(bad);
    bad = json_pack("{s:i, s:s}", "format", 1, "clusters", "prod");
    assert_int_equal(cs_state_import(fresh, bad, &added, &e), CS_E_INVAL);
    json_decref(bad);
    assert_int_equal(cs_state_import(fresh, json_null(), &added, &e), CS_E_INVAL);

    cs_state_close(fresh);
    free(path);
    json_decref(doc);
}

/* Several threads on one handle: every write lands. */
#define WRITERS 4
#define WRITES 25

typedef struct writer {
    cs_state *s;
    int n;
    int errors;
} writer;

static void *write_runs(void *arg)
{
    writer *w = arg;
    for (int i = 0; i < WRITES; i++) {
        char id[32];
        snprintf(id, sizeof id, "r-%d-%02d", w->n, i);
        json_t *r = run_doc(id, "t-1", "prod", "backup", "queued", i);
        cs_err e;
        json_t *got = NULL, *list = NULL;
        if (cs_state_run_add(w->s, r, &e) || cs_state_run_get(w->s, id, &got, &e) ||
            cs_state_run_list(w->s, &(cs_run_filter){ .limit = 5 }, &list, &e))
            w->errors++;
        json_decref(got);
        json_decref(list);
        json_decref(r);
    }
    return NULL;
}

static void test_threads(void **state)
{
    fixture *f = *state;
    writer writers[WRITERS];
    pthread_t threads[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        writers[i] = (writer){ .s = f->s, .n = i };
        assert_int_equal(pthread_create(&threads[i], NULL, write_runs, &writers[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(writers[i].errors, 0);
    }
    cs_err e;
    json_t *list;
    assert_int_equal(cs_state_run_list(f->s, &(cs_run_filter){ .limit = 1000 }, &list, &e), 0);
    assert_int_equal(json_array_size(list), WRITERS * WRITES);
    json_decref(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_missing_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_not_a_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clusters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_add_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_cas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_cas_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_cas_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_list_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
        cmocka_unit_test(test_epoch_after),
        cmocka_unit_test_setup_teardown(test_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_export_import, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
