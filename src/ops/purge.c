/* purge.c - remove what retention does not keep: mark and sweep.
 *
 * Under the repository's exclusive lock:
 *   1. bring the catalog in line with the repository, with every complete
 *      backup's references (purge must know every object still needed);
 *   2. decide per node with the retention policy; incomplete backups older
 *      than the grace period are removed too (no backup can be running:
 *      backups hold shared locks);
 *   3. delete the chosen backups: start marks and summaries first, the
 *      manifests last, so that a backup is complete until its very last
 *      key goes, and an interrupted purge leaves only backups that are
 *      whole (or, at worst, a start mark the next purge cleans);
 *   4. sweep: list objects/ and delete, in batches, those no remaining
 *      complete backup references and that are older than the grace period
 *      and than every incomplete backup that remains (it may have written or
 *      reused them). Object deletes come after the manifests are gone, so an
 *      object is never missing while a manifest names it;
 *   5. drop the unfinished uploads of objects (interrupted backups that no
 *      later backup resumed) older than that same cutoff.
 * Everything is recomputed from the repository each run, so the next purge
 * finishes what an interrupted one started. --dry-run does the same in a
 * catalog transaction that is rolled back, and deletes nothing. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "ops/ops.h"

#define SWEEP_BATCH 1000 /* keys per delete request (the S3 limit) */

typedef struct purge_ctx {
    const cs_config *cfg;
    cs_repo *repo;
    cs_catalog *cat;
    cs_lock *lock;
    cs_retention policy;
    double grace;
    double now;
    cs_purge_result *res;
} purge_ctx;

static void policy_of(const cs_config *cfg, cs_retention *p)
{
    memset(p, 0, sizeof *p);
    p->last = cfg->keep_last;
    p->hourly = cfg->keep_hourly;
    p->daily = cfg->keep_daily;
    p->weekly = cfg->keep_weekly;
    p->monthly = cfg->keep_monthly;
    p->within = cfg->keep_within;
}

/* "24h", "7d", "90m", "45s" for a reason line. */
static void format_duration(double s, char out[24])
{
    long v = (long)s;
    if (v && v % 86400 == 0)
        snprintf(out, 24, "%ldd", v / 86400);
    else if (v && v % 3600 == 0)
        snprintf(out, 24, "%ldh", v / 3600);
    else if (v && v % 60 == 0)
        snprintf(out, 24, "%ldm", v / 60);
    else
        snprintf(out, 24, "%lds", v);
}

/* ---- deciding ---- */

static int compare_host_then_time(const void *a, const void *b)
{
    const cs_purge_item *x = a, *y = b;
    int c = strcmp(x->entry.host_id, y->entry.host_id);
    if (c)
        return c;
    if (x->entry.started != y->entry.started)
        return x->entry.started < y->entry.started ? -1 : 1;
    return strcmp(x->entry.name, y->entry.name);
}

/* Retention for the backups items[first..last) of one node. */
static int decide_node(purge_ctx *c, cs_purge_item *items, size_t n, cs_err *e)
{
    cs_retention_item *r = cs_calloc(n, sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i] = (cs_retention_item){ items[i].entry.name, items[i].entry.started, items[i].entry.complete, false, "" };
    int rc = cs_retention_apply(&c->policy, r, n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        cs_purge_item *it = &items[i];
        bool stale = !it->entry.complete && it->entry.started < c->now - c->grace;
        it->remove = it->entry.complete ? !r[i].keep : stale;
        char grace[24];
        format_duration(c->grace, grace);
        if (stale)
            snprintf(it->reason, sizeof it->reason, "incomplete, older than the grace period (%s)", grace);
        else
            snprintf(it->reason, sizeof it->reason, "%s", r[i].reason);
    }
    free(r);
    return rc;
}

static int decide(purge_ctx *c, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_catalog_backups(c->cat, &entries, &n, e);
    if (rc)
        return rc;
    cs_purge_result *res = c->res;
    res->items = cs_calloc(n ? n : 1, sizeof *res->items);
    for (size_t i = 0; i < n; i++)
        res->items[i].entry = entries[i]; /* the strings move over */
    free(entries);
    res->n_items = n;
    if (n)
        qsort(res->items, n, sizeof *res->items, compare_host_then_time);
    for (size_t first = 0; !rc && first < n;) {
        size_t last = first + 1;
        while (last < n && !strcmp(res->items[last].entry.host_id, res->items[first].entry.host_id))
            last++;
        rc = decide_node(c, res->items + first, last - first, e);
        first = last;
    }
    return rc;
}

/* ---- removing backups ---- */

/* Delete one kind of key of every backup being removed. */
static int delete_keys(purge_ctx *c, const char *suffix, cs_err *e)
{
    cs_purge_result *res = c->res;
    char **keys = cs_calloc(res->n_items ? res->n_items : 1, sizeof *keys);
    size_t n = 0;
    for (size_t i = 0; i < res->n_items; i++)
        if (res->items[i].remove)
            keys[n++] = cs_repo_backup_key(res->items[i].entry.name, res->items[i].entry.host_id, suffix);
    int rc = 0;
    for (size_t done = 0; !rc && done < n; done += SWEEP_BATCH) {
        size_t k = n - done < SWEEP_BATCH ? n - done : SWEEP_BATCH;
        rc = cs_storage_del_many(c->repo->st, (const char *const *)keys + done, k, e);
    }
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    return rc;
}

static int remove_backups(purge_ctx *c, cs_err *e)
{
    cs_purge_result *res = c->res;
    int rc = 0;
    if (!res->dry_run) {
        static const char *const order[] = { "started", "summary", "manifest" };
        rc = cs_lock_check(c->lock, e);
        for (size_t k = 0; !rc && k < sizeof order / sizeof order[0]; k++)
            rc = delete_keys(c, order[k], e);
        if (rc)
            return cs_err_prefix(e, "removing backups");
    }
    for (size_t i = 0; !rc && i < res->n_items; i++) {
        cs_purge_item *it = &res->items[i];
        if (!it->remove)
            continue;
        if (it->entry.complete)
            res->removed++;
        else
            res->removed_incomplete++;
        if (!res->dry_run)
            cs_info("removed backup %s of node %s: %s", it->entry.name, it->entry.address, it->reason);
        rc = cs_catalog_forget(c->cat, it->entry.name, it->entry.host_id, e);
    }
    return rc;
}

/* ---- sweeping objects ---- */

static int list_object(const char *key, const cs_storage_stat *st, void *arg)
{
    void **a = arg;
    purge_ctx *c = a[0];
    cs_err *e = a[1];
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (!cs_is_hex32(base))
        return 0; /* not an object of ours: leave it alone */
    return cs_catalog_listing_add(c->cat, base, st->size, st->mtime, e) ? 1 : 0;
}

/* Objects older than this may go: the grace period, and the start of the
 * oldest incomplete backup that stays (it may have written or reused any
 * object younger than itself). */
static double sweep_cutoff(const purge_ctx *c)
{
    double cutoff = c->now - c->grace;
    const cs_purge_result *res = c->res;
    for (size_t i = 0; i < res->n_items; i++) {
        const cs_purge_item *it = &res->items[i];
        if (!it->entry.complete && !it->remove && it->entry.started - 60 < cutoff)
            cutoff = it->entry.started - 60; /* a minute for clocks that disagree */
    }
    return cutoff;
}

static int sweep(purge_ctx *c, cs_err *e)
{
    void *arg[2] = { c, e };
    int rc = cs_catalog_listing_begin(c->cat, e);
    if (!rc) {
        rc = cs_storage_list(c->repo->st, "objects/", list_object, arg, e);
        if (rc > 0)
            rc = e->code;
        int end = cs_catalog_listing_end(c->cat, rc ? NULL : e);
        rc = rc ? rc : end;
    }
    if (rc)
        return cs_err_prefix(e, "listing objects");
    int64_t cutoff = (int64_t)sweep_cutoff(c);
    char(*ids)[CS_OBJECT_ID_HEX] = cs_calloc(SWEEP_BATCH, sizeof *ids);
    char **keys = cs_calloc(SWEEP_BATCH, sizeof *keys);
    int64_t *rows = cs_calloc(SWEEP_BATCH, sizeof *rows);
    int64_t after = 0;
    for (;;) {
        size_t n = 0;
        rc = cs_catalog_unreferenced(c->cat, cutoff, after, ids, rows, SWEEP_BATCH, &n, &c->res->bytes, e);
        if (rc || !n)
            break;
        after = rows[n - 1];
        c->res->objects += n;
        if (c->res->dry_run)
            continue;
        for (size_t i = 0; i < n; i++)
            keys[i] = cs_repo_object_key(ids[i]);
        rc = cs_lock_check(c->lock, e);
        if (!rc)
            rc = cs_storage_del_many(c->repo->st, (const char *const *)keys, n, e);
        for (size_t i = 0; i < n; i++)
            free(keys[i]);
        if (rc)
            break;
        cs_info("deleted %llu unreferenced objects so far", (unsigned long long)c->res->objects);
    }
    free(ids);
    free(keys);
    free(rows);
    return rc ? cs_err_prefix(e, "deleting objects") : 0;
}

/* Multipart uploads no backup finished (interrupted, and not resumed by a
 * later backup of the node: see ops/uploads.h) cost storage: dropped once
 * older than the objects' cutoff. None can be in use: we hold the
 * exclusive lock. A failure is a warning: the next purge tries again. */
typedef struct stale_uploads {
    purge_ctx *c;
    int64_t cutoff;
    size_t n;
    cs_err *e;
} stale_uploads;

static int stale_upload(const char *key, const char *token, int64_t initiated, void *arg)
{
    stale_uploads *u = arg;
    if (strncmp(key, "objects/", 8) || initiated <= 0 || initiated >= u->cutoff)
        return 0;
    u->n++;
    if (u->c->res->dry_run)
        return 0;
    return cs_storage_abort_resumable(u->c->repo->st, key, token, u->e) ? 1 : 0;
}

static void drop_stale_uploads(purge_ctx *c)
{
    cs_err err;
    cs_err_clear(&err);
    stale_uploads u = { c, (int64_t)sweep_cutoff(c), 0, &err };
    if (cs_storage_list_resumable(c->repo->st, "objects/", stale_upload, &u, &err))
        cs_warn("could not drop unfinished uploads: %s", err.msg);
    else if (u.n)
        cs_info("%s %zu unfinished uploads older than the grace period", c->res->dry_run ? "would drop" : "dropped",
                u.n);
}

/* ---- the op ---- */

static int run(purge_ctx *c, cs_err *e)
{
    int rc = cs_catalog_sync(c->cat, c->repo, true, e);
    if (!rc)
        rc = decide(c, e);
    if (rc)
        return rc;
    rc = cs_catalog_begin(c->cat, e);
    if (!rc)
        rc = remove_backups(c, e);
    if (!rc)
        rc = sweep(c, e);
    if (!rc)
        drop_stale_uploads(c);
    if (rc || c->res->dry_run) {
        cs_catalog_rollback(c->cat); /* a dry run changes nothing, not even the cache */
        return rc;
    }
    return cs_catalog_commit(c->cat, e);
}

int cs_op_purge(const cs_config *cfg, cs_purge_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    res->dry_run = cfg->dry_run;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    purge_ctx c = { .cfg = cfg, .res = res, .now = (double)time(NULL), .grace = cfg->grace };
    policy_of(cfg, &c.policy);
    int rc = cs_ops_open_repo(cfg, false, &c.repo, e);
    /* Which objects are still needed is written in the manifests. */
    if (!rc)
        rc = cs_ops_require_identity(c.repo, e);
    if (!rc)
        rc = cs_ops_lock(cfg, c.repo, cfg->dry_run ? CS_LOCK_SHARED : CS_LOCK_EXCLUSIVE,
                         cfg->dry_run ? "purge --dry-run" : "purge", &c.lock, e);
    if (!rc)
        rc = cs_ops_open_catalog(cfg, c.repo, &c.cat, e);
    if (!rc)
        rc = run(&c, e);
    cs_catalog_close(c.cat);
    cs_lock_release(c.lock);
    cs_repo_free(c.repo);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    return rc ? cs_err_prefix(e, "purge") : 0;
}

void cs_purge_result_free(cs_purge_result *res)
{
    for (size_t i = 0; i < res->n_items; i++) {
        free(res->items[i].entry.name);
        free(res->items[i].entry.host_id);
        free(res->items[i].entry.address);
    }
    free(res->items);
    memset(res, 0, sizeof *res);
}
