/* purge.c - remove what retention does not keep: mark and sweep.
 *
 * Under the repository's exclusive lock:
 *   1. bring the catalog in line with the repository, with every committed
 *      backup's references (purge must know every object still needed):
 *      from the manifests with an identity, else from the plaintext
 *      indexes, so that a backup host with only the public key can purge;
 *   2. decide per node and scope with the retention policy; incomplete
 *      backups older than the grace period are removed too (no backup can
 *      be running: backups hold shared locks); damaged backups are kept and
 *      reported (`cassette delete` removes one on purpose);
 *   3. delete the chosen backups: start marks and summaries first, then
 *      the manifests, the indexes last, so that a backup is complete until
 *      its manifest goes and a manifest never lacks its index; an
 *      interrupted purge leaves only backups that are whole, or leftovers
 *      (an index or summary alone) that the next purge deletes;
 *   4. sweep: list objects/ and delete, in batches, those no remaining
 *      committed backup references and that are older than the grace period
 *      and than every incomplete backup that remains (it may have written or
 *      reused them). Object deletes come after the manifests are gone, so an
 *      object is never missing while a manifest names it. A damaged backup
 *      whose references are unknown (index and manifest both unreadable)
 *      stops the sweep, never the rest: its objects cannot be told apart
 *      until it is deleted;
 *   5. drop the unfinished uploads of objects (interrupted backups that no
 *      later backup resumed) older than that same cutoff.
 * Everything is recomputed from the repository each run, so the next purge
 * finishes what an interrupted one started. --dry-run does the same in a
 * catalog transaction that is rolled back, and deletes nothing. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/cancel.h"
#include "common/log.h"
#include "common/units.h"
#include "ops/ops.h"
#include "repo/set.h"

#define SWEEP_BATCH 1000 /* keys per delete request (the S3 limit) */

typedef struct purge_ctx {
    cs_job *job;   /* progress: keys and objects deleted of those to delete */
    const cs_purge_req *req;
    cs_repo *repo;
    cs_catalog *cat;
    cs_lock *lock;
    cs_retention policy;
    double grace;
    double now;
    cs_purge_result *res;
    size_t unknown_undamaged; /* committed, not damaged, references unknown */
    cs_set_entry *sets;       /* every backup set of the repository */
    size_t n_sets;
    cs_strlist removed_sets;  /* names of the sets removed whole */
} purge_ctx;

static void policy_of(const cs_purge_req *req, cs_retention *p)
{
    memset(p, 0, sizeof *p);
    p->last = req->keep_last;
    p->hourly = req->keep_hourly;
    p->daily = req->keep_daily;
    p->weekly = req->keep_weekly;
    p->monthly = req->keep_monthly;
    p->within = req->keep_within;
}

/* ---- deciding ---- */

/* Node backups taken alone first, by node then time; then the backups of
 * sets (decided per set, below). */
static int compare_host_then_time(const void *a, const void *b)
{
    const cs_purge_item *x = a, *y = b;
    if ((x->entry.set != NULL) != (y->entry.set != NULL))
        return x->entry.set ? 1 : -1;
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
    char **groups = cs_calloc(n, sizeof *groups);
    for (size_t i = 0; i < n; i++) {
        groups[i] = cs_backup_entry_group(&items[i].entry);
        r[i].name = items[i].entry.name;
        r[i].started = items[i].entry.started;
        r[i].complete = items[i].entry.complete;
        r[i].group = groups[i];
    }
    int rc = cs_retention_apply(&c->policy, r, n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        cs_purge_item *it = &items[i];
        bool damaged = it->entry.damage != NULL;
        bool stale = !it->entry.complete && !damaged && it->entry.started < c->now - c->grace;
        it->remove = it->entry.complete ? !r[i].keep : stale;
        char grace[24];
        cs_format_duration(c->grace, grace);
        if (damaged)
            snprintf(it->reason, sizeof it->reason, "DAMAGED: not retention's to remove (cassette delete)");
        else if (stale)
            snprintf(it->reason, sizeof it->reason, "incomplete, older than the grace period (%s)", grace);
        else
            snprintf(it->reason, sizeof it->reason, "%s", r[i].reason);
        c->res->damaged += damaged;
    }
    for (size_t i = 0; i < n; i++)
        free(groups[i]);
    free(groups);
    free(r);
    return rc;
}

/* ---- deciding for sets: each name whole ---- */

typedef struct set_verdict {
    const cs_backup_set *set;
    cs_set_info info;
    bool damaged;   /* a node's backup of the set is damaged */
    bool remove;
    char reason[96];
} set_verdict;

/* Retention over the sets (per cluster, see cs_set_retention_apply); an
 * incomplete set goes once older than the grace period, a set with a
 * damaged node backup stays (cassette delete removes it). */
static int judge_sets(purge_ctx *c, const cs_purge_item *items, size_t n, set_verdict *v, size_t n_v, cs_err *e)
{
    cs_backup_entry *entries = cs_calloc(n ? n : 1, sizeof *entries);
    for (size_t i = 0; i < n; i++)
        entries[i] = items[i].entry; /* a view: nothing is freed through it */
    cs_retention_item *r = cs_calloc(n_v ? n_v : 1, sizeof *r);
    for (size_t k = 0; k < n_v; k++) {
        cs_set_state_of(v[k].set, entries, n, c->now, c->grace, &v[k].info);
        for (size_t i = 0; i < n; i++)
            v[k].damaged |= !strcmp(items[i].entry.name, v[k].set->name) && items[i].entry.damage;
        r[k].name = v[k].set->name;
        r[k].started = v[k].set->started;
        r[k].complete = v[k].info.complete && !v[k].damaged;
        r[k].group = v[k].set->cluster;
    }
    int rc = cs_set_retention_apply(&c->policy, r, n_v, e);
    char grace[24];
    cs_format_duration(c->grace, grace);
    for (size_t k = 0; !rc && k < n_v; k++) {
        set_verdict *x = &v[k];
        bool stale = !x->damaged && !x->info.complete && x->set->started < c->now - c->grace;
        x->remove = r[k].complete ? !r[k].keep : stale;
        if (x->damaged)
            snprintf(x->reason, sizeof x->reason, "DAMAGED: a node's backup of the set (cassette delete)");
        else if (r[k].complete)
            snprintf(x->reason, sizeof x->reason, "set: %s", r[k].reason);
        else
            snprintf(x->reason, sizeof x->reason, "incomplete set %zu/%zu%s%s%s", x->info.complete_hosts,
                     x->info.expected, stale ? ", older than the grace period (" : ": not retention's to remove yet",
                     stale ? grace : "", stale ? ")" : "");
    }
    free(r);
    free(entries);
    return rc;
}

/* items[0..n): the node backups of sets. Each follows its set. */
static int decide_sets(purge_ctx *c, cs_purge_item *items, size_t n, cs_err *e)
{
    set_verdict *v = cs_calloc(c->n_sets ? c->n_sets : 1, sizeof *v);
    size_t n_v = 0;
    for (size_t k = 0; k < c->n_sets; k++)
        if (c->sets[k].set.name && !c->sets[k].damage)
            v[n_v++].set = &c->sets[k].set;
    int rc = judge_sets(c, items, n, v, n_v, e);
    for (size_t k = 0; !rc && k < n_v; k++) {
        for (size_t i = 0; i < n; i++) {
            cs_purge_item *it = &items[i];
            if (strcmp(it->entry.name, v[k].set->name))
                continue;
            bool damaged = it->entry.damage != NULL;
            it->remove = v[k].remove;
            snprintf(it->reason, sizeof it->reason, "%s", damaged ? "DAMAGED: not retention's to remove (cassette delete)"
                                                                  : v[k].reason);
            c->res->damaged += damaged;
        }
        if (v[k].remove)
            cs_strlist_add(&c->removed_sets, v[k].set->name);
    }
    for (size_t k = 0; k < n_v; k++)
        cs_set_info_clear(&v[k].info);
    free(v);
    return rc;
}

static int decide(purge_ctx *c, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_catalog_backups(c->cat, &entries, &n, e);
    if (!rc)
        rc = cs_ops_attach_sets(c->repo, &entries, &n, c->grace, false, &c->sets, &c->n_sets, e);
    if (rc) {
        cs_backup_entries_free(entries, n);
        return rc;
    }
    cs_purge_result *res = c->res;
    res->items = cs_calloc(n ? n : 1, sizeof *res->items);
    for (size_t i = 0; i < n; i++)
        res->items[i].entry = entries[i]; /* the strings move over */
    free(entries);
    res->n_items = n;
    if (n)
        qsort(res->items, n, sizeof *res->items, compare_host_then_time);
    size_t alone = 0; /* items[0..alone): node backups taken alone */
    while (alone < n && !res->items[alone].entry.set)
        alone++;
    for (size_t first = 0; !rc && first < alone;) {
        size_t last = first + 1;
        while (last < alone && !strcmp(res->items[last].entry.host_id, res->items[first].entry.host_id))
            last++;
        rc = decide_node(c, res->items + first, last - first, e);
        first = last;
    }
    if (!rc)
        rc = decide_sets(c, res->items + alone, n - alone, e);
    return rc;
}

/* ---- removing backups ---- */

/* Delete one kind of key of every backup being removed. */
static int delete_keys(purge_ctx *c, int kind, cs_err *e)
{
    cs_purge_result *res = c->res;
    char **keys = cs_calloc(res->n_items ? res->n_items : 1, sizeof *keys);
    size_t n = 0;
    for (size_t i = 0; i < res->n_items; i++)
        if (res->items[i].remove)
            keys[n++] = cs_repo_backup_key(res->items[i].entry.name, res->items[i].entry.host_id, cs_backup_suffix[kind]);
    int rc = 0;
    for (size_t done = 0; !rc && done < n; done += SWEEP_BATCH) {
        size_t k = n - done < SWEEP_BATCH ? n - done : SWEEP_BATCH;
        if (cs_job_canceled(c->job)) /* a safe point: between two batches */
            rc = cs_cancel_error(e);
        if (!rc)
            rc = cs_storage_del_many(c->repo->st, (const char *const *)keys + done, k, e);
        if (!rc)
            cs_job_add_files(c->job, k);
    }
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    return rc;
}

/* The files of sets, after their node backups: cluster manifest, commit,
 * the record last (set.h): a purge killed in between leaves an incomplete
 * set (or leftovers) that the next one finds. */
static int remove_set_files(purge_ctx *c, const cs_strlist *names, cs_err *e)
{
    int rc = 0;
    for (size_t k = 0; !rc && k < 3; k++)
        for (size_t i = 0; !rc && i < names->n; i++) {
            char *key = cs_repo_set_key(names->items[i], cs_set_delete_order[k]);
            rc = cs_storage_del(c->repo->st, key, e);
            free(key);
        }
    return rc;
}

static int remove_backups(purge_ctx *c, cs_err *e)
{
    cs_purge_result *res = c->res;
    int rc = 0;
    size_t n_remove = 0;
    for (size_t i = 0; i < res->n_items; i++)
        n_remove += res->items[i].remove;
    cs_job_phase(c->job, "delete", res->dry_run ? 0 : n_remove * CS_BK_KINDS, 0); /* files: a backup's keys */
    if (!res->dry_run) {
        rc = cs_lock_check(c->lock, e);
        for (size_t k = 0; !rc && k < CS_BK_KINDS; k++)
            rc = delete_keys(c, cs_backup_delete_order[k], e);
        if (!rc)
            rc = remove_set_files(c, &c->removed_sets, e);
        if (rc)
            return cs_err_prefix(e, "removing backups");
    }
    res->removed_sets = c->removed_sets.n;
    for (size_t i = 0; !res->dry_run && i < c->removed_sets.n; i++)
        cs_info("removed backup set %s", c->removed_sets.items[i]);
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
    cs_job_add_files(c->job, 1);
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
        if (!it->entry.complete && !it->entry.damage && !it->remove && it->entry.started - 60 < cutoff)
            cutoff = it->entry.started - 60; /* a minute for clocks that disagree */
    }
    return cutoff;
}

/* Unreferenced objects that stay only because they are young (the grace
 * period, or an incomplete backup that may use them): said, so that a purge
 * that freed little is understood. Call after the sweep at cutoff. */
static int count_waiting(purge_ctx *c, char (*ids)[CS_OBJECT_ID_HEX], int64_t *rows, cs_err *e)
{
    uint64_t all = 0, all_bytes = 0;
    int64_t after = 0;
    for (;;) {
        size_t n = 0;
        int rc = cs_catalog_unreferenced(c->cat, INT64_MAX, after, ids, rows, SWEEP_BATCH, &n, &all_bytes, e);
        if (rc || !n)
            return rc;
        after = rows[n - 1];
        all += n;
        c->res->waiting = all - c->res->objects;
        c->res->waiting_bytes = all_bytes - c->res->bytes;
    }
}

/* How many objects the sweep at cutoff deletes, and their bytes (for its
 * progress: the totals are known before the first delete). */
static int count_unreferenced(purge_ctx *c, int64_t cutoff, char (*ids)[CS_OBJECT_ID_HEX], int64_t *rows,
                              uint64_t *objects, uint64_t *bytes, cs_err *e)
{
    int64_t after = 0;
    *objects = *bytes = 0;
    for (;;) {
        size_t n = 0;
        int rc = cs_catalog_unreferenced(c->cat, cutoff, after, ids, rows, SWEEP_BATCH, &n, bytes, e);
        if (rc || !n)
            return rc;
        after = rows[n - 1];
        *objects += n;
    }
}

/* Committed backups whose references are unknown: damaged ones stop the
 * sweep (said in the result); any other is a bug of the sync, an error. */
static int note_unknown_refs(const char *name, const char *host, const char *damage, void *arg)
{
    purge_ctx *c = arg;
    if (!damage) {
        c->unknown_undamaged++;
        return 0;
    }
    if (!c->res->sweep_skipped)
        c->res->sweep_skipped = cs_sprintf("the objects of damaged backup %s (node %s) are unknown (%s): remove it "
                                           "with cassette delete --backup %s, and the next purge sweeps",
                                           name, host, damage, name);
    return 0;
}

static int sweep(purge_ctx *c, cs_err *e)
{
    int unknown = cs_catalog_without_refs(c->cat, note_unknown_refs, c, e);
    if (unknown)
        return unknown;
    if (c->unknown_undamaged)
        return cs_err_set(e, CS_E_INVAL, "the catalog does not know the objects of %zu backups: cannot sweep",
                          c->unknown_undamaged);
    if (c->res->sweep_skipped) {
        cs_warn("not deleting unreferenced objects: %s", c->res->sweep_skipped);
        return 0;
    }
    void *arg[2] = { c, e };
    cs_job_phase(c->job, "list objects", 0, 0);
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
    uint64_t to_delete = 0, to_free = 0;
    if (!c->res->dry_run)
        rc = count_unreferenced(c, cutoff, ids, rows, &to_delete, &to_free, e);
    cs_job_phase(c->job, "sweep", to_delete, to_free);
    for (; !rc;) {
        size_t n = 0;
        uint64_t bytes_before = c->res->bytes;
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
        cs_job_add_files(c->job, n);
        cs_job_add_bytes(c->job, c->res->bytes - bytes_before);
        cs_info("deleted %llu unreferenced objects so far", (unsigned long long)c->res->objects);
    }
    if (!rc)
        rc = count_waiting(c, ids, rows, e);
    free(ids);
    free(keys);
    free(rows);
    return rc ? cs_err_prefix(e, "deleting objects") : 0;
}

/* ---- leftovers ---- */

/* Index and summary files whose backup is gone (a purge or delete killed
 * between its deletes): nothing refers to them, they go now. */
static int remove_leftovers(purge_ctx *c, cs_err *e)
{
    cs_backup_files *files = NULL;
    size_t n = 0;
    int rc = cs_repo_scan_backups(c->repo, &files, &n, e);
    cs_strlist keys = { NULL, 0 };
    for (size_t i = 0; !rc && i < n; i++) {
        if (!cs_backup_files_is_leftover(&files[i]))
            continue;
        for (int k = 0; k < CS_BK_KINDS; k++)
            if (files[i].has[k]) {
                char *key = cs_repo_backup_key(files[i].name, files[i].host, cs_backup_suffix[k]);
                cs_strlist_add(&keys, key);
                free(key);
            }
    }
    for (size_t i = 0; !rc && i < c->n_sets; i++) /* a set's files without its record */
        for (size_t k = 0; !c->sets[i].files.has_record && k < 3; k++) {
            bool has = k == 0 ? c->sets[i].files.has_manifest : k == 1 ? c->sets[i].files.has_commit : false;
            char *key = cs_repo_set_key(c->sets[i].files.name, cs_set_delete_order[k]);
            if (has)
                cs_strlist_add(&keys, key);
            free(key);
        }
    c->res->leftovers = keys.n;
    if (!rc && keys.n && !c->res->dry_run)
        rc = cs_lock_check(c->lock, e);
    for (size_t done = 0; !rc && !c->res->dry_run && done < keys.n; done += SWEEP_BATCH) {
        size_t k = keys.n - done < SWEEP_BATCH ? keys.n - done : SWEEP_BATCH;
        rc = cs_storage_del_many(c->repo->st, (const char *const *)keys.items + done, k, e);
    }
    cs_strlist_free(&keys);
    cs_backup_files_free(files, n);
    return rc ? cs_err_prefix(e, "removing leftovers of removed backups") : 0;
}

/* ---- unfinished uploads ---- */

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
    cs_job_phase(c->job, "sync", 0, 0); /* the catalog learns the repository's backups */
    int rc = cs_catalog_sync(c->cat, c->repo, CS_LOAD_REFS, e);
    if (!rc)
        cs_job_phase(c->job, "decide", 0, 0);
    if (!rc)
        rc = decide(c, e);
    if (rc)
        return rc;
    rc = cs_catalog_begin(c->cat, e);
    if (!rc)
        rc = remove_backups(c, e);
    if (!rc)
        rc = remove_leftovers(c, e);
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

int cs_op_purge(cs_job *job, const cs_host *host, const cs_purge_req *req, cs_purge_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    res->dry_run = req->dry_run;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    purge_ctx c = { .job = job, .req = req, .res = res, .now = (double)time(NULL), .grace = req->grace };
    policy_of(req, &c.policy);
    cs_ops_lock_opts lo = { req->lock_wait, req->lock_stale, false };
    int rc = cs_ops_open_repo(host, req->repo, NULL, false, &c.repo, e);
    if (!rc)
        cs_job_phase(job, "lock", 0, 0);
    if (!rc)
        rc = cs_ops_lock(&lo, c.repo, req->dry_run ? CS_LOCK_SHARED : CS_LOCK_EXCLUSIVE,
                         req->dry_run ? "purge --dry-run" : "purge", &c.lock, e);
    if (!rc)
        rc = cs_ops_open_catalog(host, c.repo, &c.cat, e);
    if (!rc)
        rc = run(&c, e);
    cs_catalog_close(c.cat);
    cs_lock_release(c.lock);
    cs_repo_free(c.repo);
    cs_set_entries_free(c.sets, c.n_sets);
    cs_strlist_free(&c.removed_sets);
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* A cancel (SIGINT or SIGTERM in the CLI) stops between two deletes, as
     * a crash would: the deletion order leaves only whole backups, and the
     * next purge finishes from the repository alone. */
    if (rc && cs_job_canceled(job))
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted; the backups left are whole, run purge again to finish");
    return rc ? cs_err_prefix(e, "purge") : 0;
}

void cs_purge_result_free(cs_purge_result *res)
{
    for (size_t i = 0; i < res->n_items; i++)
        cs_backup_entry_clear(&res->items[i].entry);
    free(res->items);
    free(res->sweep_skipped);
    memset(res, 0, sizeof *res);
}
