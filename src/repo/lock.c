/* lock.c - repository locks: the protocol is described in lock.h. */
#include "repo/lock.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/job.h"
#include "common/log.h"

#define LOCK_PREFIX "locks/"
#define LOCK_SUFFIX ".lock"
#define LOCK_MAX_BYTES 65536
#define DEFAULT_STALE_AFTER 1800.0
#define BACKOFF_FIRST_LO 0.2 /* seconds: the first back-off is 0.2 .. 1.0 s */
#define BACKOFF_FIRST_HI 1.0
#define BACKOFF_GROWTH 1.5   /* per attempt, for both bounds */
#define BACKOFF_MAX 5.0
#define REFRESH_MIN 0.01     /* seconds between refreshes at the least */

struct cs_lock {
    cs_storage *st;    /* borrowed */
    char *key;         /* "locks/<32 hex>.lock" */
    cs_lock_kind kind;
    char *host;        /* "" when the host name is unknown */
    char *pidns;       /* "pid:[4026531836]", NULL when unknown */
    char *purpose;     /* NULL: none */
    long pid;
    long long pidstart; /* our start time in clock ticks after boot; -1 unknown */
    double created;
    double stale_after;
    bool sweep_dead;   /* also break non-conflicting locks of dead processes here */
    /* The refresh thread; stop and lost are shared with it under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool lost;
    bool thread_running;
    pthread_t thread;
};

/* Another lock object found in the listing, and what it says. */
typedef struct lock_info {
    char *key;
    int64_t mtime;  /* from the listing */
    bool gone;      /* deleted between the listing and the read */
    bool damaged;   /* not readable as a lock: none of the fields below is set */
    cs_lock_kind kind;
    char *host, *pidns, *purpose;
    long pid;
    long long pidstart; /* -1: not recorded (older cassette, or not Linux) */
    double created, refreshed;
} lock_info;

typedef struct lock_list {
    const char *own;
    lock_info *v;
    size_t n, cap;
} lock_list;

/* ---- small helpers ------------------------------------------------------ */

static const char *kind_name(cs_lock_kind k)
{
    return k == CS_LOCK_EXCLUSIVE ? "exclusive" : "shared";
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec to_timespec(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* "2026-11-22 07:30:00" in UTC. */
static void fmt_utc(double t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!isfinite(t) || !gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(out, 32, "an unknown time");
}

/* "4.2s", "12m05s", "3h20m", "2d04h". */
static void fmt_duration(double s, char out[32])
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long n = s < (double)LONG_MAX ? (long)s : LONG_MAX;
    if (s < 60)
        snprintf(out, 32, "%.1fs", s);
    else if (n < 3600)
        snprintf(out, 32, "%ldm%02lds", n / 60, n % 60);
    else if (n < 86400)
        snprintf(out, 32, "%ldh%02ldm", n / 3600, n % 3600 / 60);
    else
        snprintf(out, 32, "%ldd%02ldh", n / 86400, n % 86400 / 3600);
}

static char *own_host_name(void)
{
    char name[256];
    if (gethostname(name, sizeof name) != 0)
        return cs_strdup("");
    name[sizeof name - 1] = '\0'; /* gethostname may truncate without a NUL */
    return cs_strdup(name);
}

/* The pid namespace: a container with the host's network (and so its host
 * name) has pids of its own, and a pid of another namespace must not be
 * judged by kill(). */
static char *own_pid_namespace(void)
{
    char link[128];
    ssize_t n = readlink("/proc/self/ns/pid", link, sizeof link - 1);
    if (n <= 0)
        return NULL;
    return cs_strndup(link, (size_t)n);
}

/* When process pid started, in clock ticks after boot (field 22 of
 * /proc/PID/stat); -1 when it cannot be told. With the pid it names one
 * process: a pid reused by another process has another start time. */
static long long process_start_time(long pid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    /* The command name (field 2) may hold spaces and ')': fields 3.. follow the last ')'. */
    char *p = strrchr(text, ')');
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (!p)
        return -1;
    char *end = NULL;
    long long v = strtoll(p + 1, &end, 10);
    return end != p + 1 && v >= 0 ? v : -1;
}

static char *new_lock_key(void)
{
    uint8_t raw[16];
    char hex[33];
    if (sodium_init() < 0)
        abort(); /* no randomness source: nothing safe to do */
    randombytes_buf(raw, sizeof raw);
    cs_hex(raw, sizeof raw, hex);
    return cs_sprintf(LOCK_PREFIX "%s" LOCK_SUFFIX, hex);
}

/* ---- our own lock object ------------------------------------------------ */

static int write_own(cs_lock *l, cs_err *e)
{
    json_t *root = json_pack("{s:s, s:s, s:I, s:f, s:f, s:s?}", "kind", kind_name(l->kind), "host", l->host, "pid",
                             (json_int_t)l->pid, "created", l->created, "refreshed", cs_now(), "purpose", l->purpose);
    if (!root) /* json_pack refuses strings that are not UTF-8 */
        return cs_err_set(e, CS_E_INVAL, "cannot write lock %s: host name or purpose is not UTF-8", l->key);
    if (l->pidns)
        json_object_set_new(root, "pidns", json_string(l->pidns));
    if (l->pidstart >= 0)
        json_object_set_new(root, "pidstart", json_integer((json_int_t)l->pidstart));
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (!text)
        abort(); /* out of memory, as cs_buf does */
    cs_buf file = CS_BUF_INIT;
    cs_buf_printf(&file, "%s\n", text);
    free(text);
    /* Not CS_PUT_EXCLUSIVE: the key is random and the refresh overwrites it. */
    int rc = cs_storage_put_bytes(l->st, l->key, 0, file.data, file.len, e);
    cs_buf_free(&file);
    return rc;
}

static void delete_own(cs_lock *l)
{
    cs_err e;
    cs_err_clear(&e);
    /* Info, not a warning: it happens when the storage is gone, which the
     * command's own error already says in its one line; a left-over lock
     * of a dead pid on this host is broken at once, elsewhere it goes stale. */
    if (cs_storage_del(l->st, l->key, &e) != 0)
        cs_info("cannot remove repository lock %s (it will become stale): %s", l->key, e.msg);
}

/* ---- reading the other locks -------------------------------------------- */

static void info_clear(lock_info *in)
{
    free(in->host);
    free(in->pidns);
    free(in->purpose);
    in->host = in->pidns = in->purpose = NULL;
}

static void list_free(lock_list *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        info_clear(&ls->v[i]);
        free(ls->v[i].key);
    }
    free(ls->v);
}

/* Only "locks/<name>.lock" directly under locks/; anything else there is
 * not ours to judge. */
static bool is_lock_key(const char *key)
{
    size_t n = strlen(key), p = strlen(LOCK_PREFIX), s = strlen(LOCK_SUFFIX);
    return n > p + s && !strncmp(key, LOCK_PREFIX, p) && !strcmp(key + n - s, LOCK_SUFFIX) &&
           !strchr(key + p, '/');
}

static int collect(const char *key, const cs_storage_stat *ss, void *arg)
{
    lock_list *ls = arg;
    if (!is_lock_key(key) || !strcmp(key, ls->own))
        return 0;
    if (ls->n == ls->cap) {
        ls->cap = ls->cap ? 2 * ls->cap : 8;
        ls->v = cs_realloc(ls->v, ls->cap * sizeof *ls->v);
    }
    lock_info *in = &ls->v[ls->n++];
    memset(in, 0, sizeof *in);
    in->key = cs_strdup(key);
    in->mtime = ss->mtime;
    return 0;
}

static bool json_time(json_t *v, double *out)
{
    *out = json_number_value(v);
    return json_is_number(v) && isfinite(*out);
}

/* Fill in from the JSON text; false if it is not a lock object. */
static bool parse_lock(const char *text, size_t len, lock_info *in)
{
    json_t *root = json_loadb(text, len, 0, NULL);
    const char *kind = json_string_value(json_object_get(root, "kind"));
    const char *host = json_string_value(json_object_get(root, "host"));
    const char *pidns = json_string_value(json_object_get(root, "pidns"));
    const char *purpose = json_string_value(json_object_get(root, "purpose"));
    json_t *pid = json_object_get(root, "pid");
    bool ok = kind && (!strcmp(kind, "shared") || !strcmp(kind, "exclusive")) && host && json_is_integer(pid) &&
              json_integer_value(pid) > 0 && json_integer_value(pid) <= INT_MAX &&
              json_time(json_object_get(root, "created"), &in->created) &&
              json_time(json_object_get(root, "refreshed"), &in->refreshed);
    if (ok) {
        in->kind = !strcmp(kind, "exclusive") ? CS_LOCK_EXCLUSIVE : CS_LOCK_SHARED;
        in->host = cs_strdup(host);
        in->pidns = pidns ? cs_strdup(pidns) : NULL;
        in->purpose = purpose && *purpose ? cs_strdup(purpose) : NULL;
        in->pid = (long)json_integer_value(pid);
        json_t *start = json_object_get(root, "pidstart");
        in->pidstart = json_is_integer(start) && json_integer_value(start) >= 0
                           ? (long long)json_integer_value(start)
                           : -1;
    }
    json_decref(root);
    return ok;
}

static int read_lock(cs_storage *st, lock_info *in, cs_err *e)
{
    cs_buf text = CS_BUF_INIT;
    int rc = cs_storage_get_bytes(st, in->key, LOCK_MAX_BYTES, &text, e);
    if (rc == CS_E_NOTFOUND) {
        in->gone = true; /* released while we looked */
        rc = 0;
    } else if (rc == CS_E_INVAL) {
        in->damaged = true; /* too large to be a lock */
        rc = 0;
    } else if (!rc) {
        in->damaged = !parse_lock(cs_buf_str(&text), text.len, in);
    }
    cs_buf_free(&text);
    return rc;
}

/* ---- judging them ------------------------------------------------------- */

static bool conflicts(cs_lock_kind mine, const lock_info *in)
{
    /* A damaged lock may be anyone's: count it as exclusive (the safe side). */
    return in->damaged || mine == CS_LOCK_EXCLUSIVE || in->kind == CS_LOCK_EXCLUSIVE;
}

/* kill(pid, 0) sends nothing; only ESRCH says there is no such process
 * (EPERM means it exists but belongs to someone else). */
static bool process_is_dead(long pid)
{
    return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Provably gone: a lock of this host (and pid namespace) whose pid is not
 * running, or runs a process that started at another time than the one
 * the lock recorded (the pid was reused). */
static bool dead_here(const char *host, const char *pidns, const lock_info *in)
{
    if (in->damaged || !*host || strcmp(in->host, host) != 0)
        return false;
    if (pidns && in->pidns && strcmp(pidns, in->pidns) != 0)
        return false; /* same host name, other pid namespace: cannot tell */
    if (process_is_dead(in->pid))
        return true;
    long long started = in->pidstart >= 0 ? process_start_time(in->pid) : -1;
    return started >= 0 && started != in->pidstart;
}

static bool holder_is_dead(const cs_lock *l, const lock_info *in)
{
    return dead_here(l->host, l->pidns, in);
}

/* The newest sign of life: the holder's own clock or the storage's. The
 * listing's mtime is whole seconds, truncated; + 1 keeps it on the late
 * (safe) side. */
static double last_seen(const lock_info *in)
{
    double mtime = (double)in->mtime + 1;
    return !in->damaged && in->refreshed > mtime ? in->refreshed : mtime;
}

/* "purge on host h, pid 123, since 2026-11-22 07:30:00 UTC" */
static char *describe(const lock_info *in)
{
    char when[32];
    if (in->damaged) {
        fmt_utc((double)in->mtime, when);
        return cs_sprintf("an unreadable lock object %s written %s UTC", in->key, when);
    }
    fmt_utc(in->created, when);
    const char *who = in->purpose ? in->purpose : in->kind == CS_LOCK_EXCLUSIVE ? "an exclusive lock" : "a shared lock";
    return cs_sprintf("%s on host %s, pid %ld, since %s UTC", who, in->host, in->pid, when);
}

/* If in is stale, delete it with a warning and set *broken. */
static int break_if_stale(const cs_lock *l, const lock_info *in, double now, bool *broken, cs_err *e)
{
    double age = now - last_seen(in);
    const char *why;
    if (holder_is_dead(l, in))
        why = "its process is no longer running on this host";
    else if (age > l->stale_after)
        why = "it was not refreshed in time";
    else
        return 0;
    char ago[32];
    fmt_duration(age, ago);
    if (in->damaged) {
        cs_warn("breaking stale lock %s: it cannot be read and was last written %s ago", in->key, ago);
    } else {
        char *who = describe(in);
        cs_warn("breaking stale lock %s held by %s, last refreshed %s ago: %s", in->key, who, ago, why);
        free(who);
    }
    *broken = true;
    int rc = cs_storage_del(l->st, in->key, e);
    return rc ? cs_err_prefix(e, "breaking stale lock %s", in->key) : 0;
}

/* List every other lock, break the stale conflicting ones, and describe in
 * *holder (caller frees) the first live conflicting one, if any. Locks that
 * do not conflict are left alone, stale or not: they are not in our way. */
static int scan(cs_lock *l, char **holder, cs_err *e)
{
    lock_list ls = { l->key, NULL, 0, 0 };
    *holder = NULL;
    int rc = cs_storage_list(l->st, LOCK_PREFIX, collect, &ls, e);
    double now = cs_now();
    for (size_t i = 0; !rc && i < ls.n; i++) {
        lock_info *in = &ls.v[i];
        bool broken = false;
        rc = read_lock(l->st, in, e);
        if (!rc && !in->gone && conflicts(l->kind, in))
            rc = break_if_stale(l, in, now, &broken, e);
        else if (!rc && !in->gone && l->sweep_dead && holder_is_dead(l, in))
            rc = break_if_stale(l, in, now, &broken, e); /* not in our way, but provably left behind */
        if (!rc && !in->gone && conflicts(l->kind, in) && !broken && !*holder)
            *holder = describe(in);
    }
    list_free(&ls);
    if (rc) {
        free(*holder);
        *holder = NULL;
        cs_err_prefix(e, "checking the repository locks");
    }
    return rc;
}

/* ---- refreshing --------------------------------------------------------- */

/* Rewrite our lock with a new "refreshed" time; false once it was broken.
 * Looking first keeps us from recreating a lock someone broke (which would
 * hide that from cs_lock_check); a break between the look and the write
 * still slips through, which is the price of storages without
 * conditional writes. */
static bool refresh_once(cs_lock *l)
{
    cs_err e;
    cs_err_clear(&e);
    cs_storage_stat ss;
    int rc = cs_storage_stat(l->st, l->key, &ss, &e);
    if (rc == CS_E_NOTFOUND) {
        cs_warn("repository lock %s was broken by another process; no longer refreshing it", l->key);
        return false;
    }
    if (!rc)
        rc = write_own(l, &e);
    if (rc)
        cs_warn("cannot refresh repository lock %s: %s", l->key, e.msg);
    return true;
}

/* Wait on the condition until the deadline or until stop; true if stopped.
 * Called with mu held. */
static bool wait_or_stop(cs_lock *l, const struct timespec *deadline)
{
    while (!l->stop)
        if (pthread_cond_timedwait(&l->cv, &l->mu, deadline) != 0)
            break; /* ETIMEDOUT (or an error): time to refresh */
    return l->stop;
}

static void *refresh_main(void *arg)
{
    cs_lock *l = arg;
    double interval = l->stale_after / 4 > REFRESH_MIN ? l->stale_after / 4 : REFRESH_MIN;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        struct timespec deadline = to_timespec(mono_now() + interval);
        if (wait_or_stop(l, &deadline))
            break;
        pthread_mutex_unlock(&l->mu); /* no storage I/O under the mutex: release must not wait for it */
        bool alive = refresh_once(l);
        pthread_mutex_lock(&l->mu);
        if (!alive) {
            l->lost = true;
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static int start_refresh(cs_lock *l, cs_err *e)
{
    int rc = cs_job_thread_create(&l->thread, refresh_main, l);
    if (rc)
        return cs_err_sys(e, CS_E_IO, rc, "cannot start the lock refresh thread");
    l->thread_running = true;
    return 0;
}

/* ---- the handle --------------------------------------------------------- */

static cs_lock *lock_new(cs_storage *st, cs_lock_kind kind, const cs_lock_opts *o)
{
    cs_lock *l = cs_calloc(1, sizeof *l);
    l->st = st;
    l->kind = kind;
    l->key = new_lock_key();
    l->host = own_host_name();
    l->pidns = own_pid_namespace();
    l->purpose = o->purpose && *o->purpose ? cs_strdup(o->purpose) : NULL;
    l->pid = (long)getpid();
    l->pidstart = process_start_time(l->pid);
    l->sweep_dead = o->sweep_dead;
    l->created = cs_now();
    l->stale_after = o->stale_after > 0 ? o->stale_after : DEFAULT_STALE_AFTER;
    pthread_mutex_init(&l->mu, NULL);
    /* The refresh waits on CLOCK_MONOTONIC: a wall clock set back must not
     * delay it past stale_after. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    return l;
}

static void lock_free(cs_lock *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l->key);
    free(l->host);
    free(l->pidns);
    free(l->purpose);
    free(l);
}

static int check_opts(const cs_lock_opts *o, cs_err *e)
{
    if (!isfinite(o->stale_after) || o->stale_after < 0)
        return cs_err_set(e, CS_E_INVAL, "lock stale time must be a positive number of seconds");
    if (!isfinite(o->wait) || o->wait < 0)
        return cs_err_set(e, CS_E_INVAL, "lock wait time must be a non-negative number of seconds");
    return 0;
}

/* A random pause, so that two takers who saw each other do not retry in
 * step; it grows with the attempts, up to BACKOFF_MAX. */
static double backoff(unsigned attempt)
{
    double lo = BACKOFF_FIRST_LO, hi = BACKOFF_FIRST_HI;
    for (unsigned i = 0; i < attempt && hi < BACKOFF_MAX; i++) {
        lo *= BACKOFF_GROWTH;
        hi *= BACKOFF_GROWTH;
    }
    if (hi > BACKOFF_MAX)
        hi = BACKOFF_MAX;
    if (lo > hi)
        lo = hi;
    return lo + (hi - lo) * (double)randombytes_uniform(1000001) / 1e6;
}

/* Tell whoever waits what for, once per holder rather than once per
 * attempt: an info line, and the current item of the calling thread's job
 * (a live progress line shows it while the command stands still). */
static void note_waiting(const cs_lock *l, double wait, char **last, const char *holder)
{
    if (*last && !strcmp(*last, holder))
        return;
    char limit[32];
    fmt_duration(wait, limit);
    char *what = cs_sprintf("waiting for lock held by %s: %s needs %s lock (giving up after %s)", holder,
                            l->purpose ? l->purpose : "this command",
                            l->kind == CS_LOCK_EXCLUSIVE ? "an exclusive" : "a shared", limit);
    cs_info("%s", what);
    cs_job_item(cs_job_current(), what);
    free(what);
    free(*last);
    *last = cs_strdup(holder);
}

int cs_lock_acquire(cs_storage *st, cs_lock_kind kind, const cs_lock_opts *o, cs_lock **out, cs_err *e)
{
    static const cs_lock_opts defaults = { 0, 0, NULL, false };
    *out = NULL;
    if (!o)
        o = &defaults;
    int rc = check_opts(o, e);
    if (rc)
        return rc;
    cs_lock *l = lock_new(st, kind, o);
    double deadline = mono_now() + o->wait;
    char *holder = NULL, *last = NULL;
    bool written = false;
    for (unsigned attempt = 0;; attempt++) {
        /* Write before looking: of two conflicting takers, at least one sees the other. */
        rc = write_own(l, e);
        written = !rc;
        if (!rc)
            rc = scan(l, &holder, e);
        if (rc || !holder)
            break;
        delete_own(l);
        double left = deadline - mono_now();
        if (left <= 0) {
            char waited[32];
            fmt_duration(o->wait, waited);
            rc = o->wait > 0 ? cs_err_set(e, CS_E_LOCKED, "repository is locked by %s (still held after waiting %s)",
                                          holder, waited)
                             : cs_err_set(e, CS_E_LOCKED, "repository is locked by %s", holder);
            goto out;
        }
        note_waiting(l, o->wait, &last, holder);
        if (cs_cancel_requested()) { /* SIGINT while waiting: stop waiting */
            rc = cs_cancel_error(e);
            goto out;
        }
        free(holder);
        holder = NULL;
        double pause = backoff(attempt);
        cs_sleep(pause < left ? pause : left);
    }
    if (!rc)
        rc = start_refresh(l, e);
    if (rc) {
        if (written)
            delete_own(l);
        goto out;
    }
    *out = l;
    l = NULL;
out:
    free(holder);
    free(last);
    if (l)
        lock_free(l);
    return rc;
}

int cs_lock_check(cs_lock *l, cs_err *e)
{
    if (cs_cancel_requested()) /* a safe point of the operation (common/cancel.h) */
        return cs_cancel_error(e);
    pthread_mutex_lock(&l->mu);
    bool lost = l->lost;
    pthread_mutex_unlock(&l->mu);
    cs_storage_stat ss;
    int rc = lost ? CS_E_NOTFOUND : cs_storage_stat(l->st, l->key, &ss, e);
    if (rc == CS_E_NOTFOUND)
        return cs_err_set(e, CS_E_EXISTS, "the repository lock %s was broken by another process", l->key);
    return rc ? cs_err_prefix(e, "checking the repository lock %s", l->key) : 0;
}

void cs_lock_release(cs_lock *l)
{
    if (!l)
        return;
    if (l->thread_running) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
    }
    delete_own(l);
    lock_free(l);
}

/* ---- for status --------------------------------------------------------- */

char *cs_lock_describe(const cs_lock_info *l)
{
    char since[32], ago[32];
    fmt_utc(l->created, since);
    fmt_duration((double)time(NULL) - l->refreshed, ago);
    return cs_sprintf("%s lock by %s on host %s, pid %ld, since %s UTC, refreshed %s ago%s", l->kind,
                      *l->purpose ? l->purpose : "an unnamed process", l->host, l->pid, since, ago,
                      l->dead ? " (its process is gone: the next backup or purge on this host breaks it)" : "");
}

int cs_lock_list(cs_storage *st, cs_lock_list_cb cb, void *arg, cs_err *e)
{
    lock_list ls = { "", NULL, 0, 0 };
    char *host = own_host_name(), *pidns = own_pid_namespace();
    int rc = cs_storage_list(st, LOCK_PREFIX, collect, &ls, e);
    for (size_t i = 0; !rc && i < ls.n; i++) {
        lock_info *in = &ls.v[i];
        rc = read_lock(st, in, e);
        if (rc || in->gone || in->damaged)
            continue;
        cs_lock_info out = { in->key, kind_name(in->kind), in->host, in->purpose ? in->purpose : "",
                             in->pid, in->created, in->refreshed, dead_here(host, pidns, in) };
        if (cb(&out, arg))
            break;
    }
    free(host);
    free(pidns);
    list_free(&ls);
    return rc;
}
