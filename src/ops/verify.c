/* verify.c - check that the objects complete backups need are there.
 *
 * Fast (the default): one listing of objects/ against the catalog: every
 * referenced object must exist with the size its manifest (or, without an
 * identity, its plaintext index) promises. Deep:
 * download, decrypt, decompress and hash every referenced object (or a
 * sample, those read back longest ago first, so that successive runs
 * rotate through the repository). An object that several backups share is
 * checked once; a damaged one is then reported for every file of every
 * backup that uses it (names come from the manifests of those backups
 * only). A damaged backup (its manifest, index or summary fails its
 * checks) is reported as one problem and the others are verified as
 * usual. Memory stays bounded: the objects come from the catalog in
 * chunks. Holds a shared lock, so a purge cannot delete objects under it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/parallel.h"
#include "io/sink.h"
#include "ops/ops.h"
#include "repo/set.h"

#define CHUNK 256 /* objects read from the catalog at a time (deep) */

/* A damaged object and why (kept until the files are named). */
typedef struct damage {
    char object[CS_OBJECT_ID_HEX];
    char *reason;
} damage;

typedef struct verify_ctx {
    cs_job *job;   /* progress: objects listed or read, bytes read (deep) */
    const cs_verify_req *req;
    cs_repo *repo;
    cs_catalog *cat;
    cs_lock *lock;
    cs_verify_result *res;
    damage *damages;
    size_t n_damages;
    /* deep: the current chunk */
    cs_catalog_object *chunk;
    int *chunk_rc;
    cs_err *chunk_err;
} verify_ctx;

static int add_damage(verify_ctx *c, const cs_catalog_object *o, const char *reason, cs_err *e)
{
    c->damages = cs_realloc(c->damages, (c->n_damages + 1) * sizeof *c->damages);
    damage *d = &c->damages[c->n_damages++];
    memcpy(d->object, o->id, CS_OBJECT_ID_HEX);
    d->reason = cs_strdup(reason);
    return cs_catalog_mark_bad(c->cat, o->row, e);
}

/* ---- fast ---- */

static int list_object(const char *key, const cs_storage_stat *st, void *arg)
{
    void **a = arg;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (!cs_is_hex32(base))
        return 0;
    cs_job_add_files(cs_job_current(), 1);
    return cs_catalog_listing_add(a[0], base, st->size, st->mtime, a[1]) ? 1 : 0;
}

typedef struct listed_arg {
    verify_ctx *c;
    cs_err *e;
    int rc;
} listed_arg;

static int check_listed(const cs_catalog_object *o, int64_t listed, void *arg)
{
    listed_arg *a = arg;
    verify_ctx *c = a->c;
    uint64_t expected = cs_repo_stored_size(c->repo, o->stored);
    char reason[128] = "";
    if (listed < 0)
        snprintf(reason, sizeof reason, "object is missing from the repository");
    else if ((uint64_t)listed != expected)
        snprintf(reason, sizeof reason, "object holds %lld bytes, the manifest says %llu", (long long)listed,
                 (unsigned long long)expected);
    else if (o->conflict)
        snprintf(reason, sizeof reason, "manifests disagree about this object's content");
    c->res->objects++;
    c->res->bytes += o->size;
    c->res->stored_bytes += listed > 0 ? (uint64_t)listed : 0;
    if (*reason)
        a->rc = add_damage(c, o, reason, a->e);
    return a->rc;
}

static int verify_fast(verify_ctx *c, cs_err *e)
{
    cs_catalog *cat = c->cat;
    void *arg[2] = { cat, e };
    int rc = cs_catalog_listing_begin(cat, e);
    if (!rc) {
        rc = cs_storage_list(c->repo->st, "objects/", list_object, arg, e);
        if (rc > 0)
            rc = e->code;
        int end = cs_catalog_listing_end(cat, rc ? NULL : e);
        rc = rc ? rc : end;
    }
    if (rc)
        return cs_err_prefix(e, "listing objects");
    listed_arg a = { c, e, 0 };
    rc = cs_catalog_check_listing(cat, check_listed, &a, e);
    return rc ? rc : a.rc;
}

/* ---- deep ---- */

/* Runs on a worker thread: reads one object whole; a damaged object is a
 * finding, recorded for the chunk, not a reason to stop. */
static int read_object(void *arg, size_t i, cs_err *e)
{
    verify_ctx *c = arg;
    const cs_catalog_object *o = &c->chunk[i];
    cs_mfile f;
    memset(&f, 0, sizeof f);
    f.size = o->size;
    f.stored = o->stored;
    memcpy(f.hash, o->hash, sizeof f.hash);
    memcpy(f.object, o->id, CS_OBJECT_ID_HEX);
    cs_err_clear(&c->chunk_err[i]);
    c->chunk_rc[i] = cs_ops_fetch_object(c->repo, &f, cs_null_sink_new(), &c->chunk_err[i]);
    if (c->chunk_rc[i] == CS_E_CANCELED) { /* not the object's fault: stop, record nothing of the chunk */
        *e = c->chunk_err[i];
        return e->code;
    }
    if (c->chunk_rc[i])
        cs_debug("verify: %s", c->chunk_err[i].msg);
    cs_job_add_files(c->job, 1);
    return 0;
}

/* Record one chunk's outcome: good objects are marked as read now. */
static int record_chunk(verify_ctx *c, size_t n, cs_err *e)
{
    cs_catalog_object *good = cs_calloc(n ? n : 1, sizeof *good);
    size_t n_good = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const cs_catalog_object *o = &c->chunk[i];
        c->res->objects++;
        c->res->bytes += o->size;
        if (c->chunk_rc[i] == CS_E_NOKEY || c->chunk_rc[i] == CS_E_UNAVAIL) {
            /* Not the object's fault: the run cannot go on. */
            *e = c->chunk_err[i];
            rc = e->code;
        } else if (c->chunk_rc[i] == CS_E_NOTFOUND) {
            rc = add_damage(c, o, "object is missing from the repository", e);
        } else if (c->chunk_rc[i]) {
            rc = add_damage(c, o, c->chunk_err[i].msg, e);
        } else if (o->conflict) {
            rc = add_damage(c, o, "manifests disagree about this object's content", e);
        } else {
            good[n_good++] = *o;
        }
    }
    if (!rc)
        rc = cs_catalog_mark_verified(c->cat, good, n_good, (double)time(NULL), e);
    free(good);
    return rc;
}

static int verify_deep(verify_ctx *c, cs_err *e)
{
    c->chunk = cs_calloc(CHUNK, sizeof *c->chunk);
    c->chunk_rc = cs_calloc(CHUNK, sizeof *c->chunk_rc);
    c->chunk_err = cs_calloc(CHUNK, sizeof *c->chunk_err);
    int64_t after = 0;
    int rc = 0;
    for (;;) {
        size_t n = 0;
        rc = cs_catalog_selected(c->cat, after, c->chunk, CHUNK, &n, e);
        if (rc || !n)
            break;
        after = c->chunk[n - 1].row;
        rc = cs_parallel_for(n, (unsigned)c->req->jobs, read_object, c, e);
        if (!rc)
            rc = record_chunk(c, n, e);
        if (rc)
            break;
    }
    free(c->chunk);
    free(c->chunk_rc);
    free(c->chunk_err);
    return rc;
}

/* ---- naming the damage ---- */

static int compare_damage(const void *a, const void *b)
{
    return strcmp(((const damage *)a)->object, ((const damage *)b)->object);
}

/* damages are sorted by object when the files are named */
static const damage *find_damage(const verify_ctx *c, const char *object)
{
    damage probe;
    snprintf(probe.object, sizeof probe.object, "%s", object);
    return bsearch(&probe, c->damages, c->n_damages, sizeof *c->damages, compare_damage);
}

/* file and object are NULL for a problem of the whole backup. */
static void add_problem(cs_verify_result *res, const char *backup, char *file, const char *object,
                        const char *reason)
{
    res->problems = cs_realloc(res->problems, (res->n_problems + 1) * sizeof *res->problems);
    cs_verify_problem *p = &res->problems[res->n_problems++];
    p->backup = cs_strdup(backup);
    p->file = file;
    p->object = object ? cs_strdup(object) : NULL;
    p->reason = cs_strdup(reason);
}

typedef struct name_arg {
    verify_ctx *c;
    const char *only;   /* --backup */
    char *name, *host;  /* the manifest loaded */
    cs_manifest m;
    bool loaded;
} name_arg;

/* Called per (backup, damaged object), sorted by backup: one manifest read
 * per damaged backup. */
static int name_files(const char *name, const char *host, const char *object, void *arg)
{
    name_arg *a = arg;
    if (a->only && strcmp(name, a->only))
        return 0;
    const damage *d = find_damage(a->c, object);
    if (!d)
        return 0;
    if (!a->name || strcmp(a->name, name) || strcmp(a->host, host)) {
        if (a->loaded)
            cs_manifest_free(&a->m);
        free(a->name);
        free(a->host);
        a->name = cs_strdup(name);
        a->host = cs_strdup(host);
        cs_err err;
        a->loaded = cs_repo_read_manifest(a->c->repo, name, host, &a->m, &err) == 0;
    }
    if (!a->loaded) {
        add_problem(a->c->res, name, cs_strdup(a->c->repo->n_identities || !cs_repo_is_encrypted(a->c->repo)
                                                   ? "?"
                                                   : "? (give --identity to name the file)"),
                    object, d->reason);
        return 0;
    }
    for (size_t t = 0; t < a->m.n_tables; t++) {
        const cs_mtable *table = &a->m.tables[t];
        for (size_t f = 0; f < table->n_files; f++)
            if (!strcmp(table->files[f].object, object))
                add_problem(a->c->res, name, cs_sprintf("%s.%s/%s", table->keyspace, table->table, table->files[f].name),
                            object, d->reason);
    }
    return 0;
}

static int name_damage(verify_ctx *c, cs_err *e)
{
    if (!c->n_damages)
        return 0;
    qsort(c->damages, c->n_damages, sizeof *c->damages, compare_damage);
    name_arg a = { c, c->req->backup, NULL, NULL, { 0 }, false };
    int rc = cs_catalog_bad_refs(c->cat, name_files, &a, e);
    if (a.loaded)
        cs_manifest_free(&a.m);
    free(a.name);
    free(a.host);
    return rc;
}

/* ---- the op ---- */

/* Each set among the backups verified, once, with its state: verify
 * reports per set too (an incomplete set is said, not a problem: its node
 * backups that are complete are verified like any other). */
static void note_sets(verify_ctx *c, const cs_backup_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cs_backup_entry *b = &entries[i];
        if (!b->set || (c->req->backup && strcmp(b->name, c->req->backup)))
            continue;
        bool seen = false;
        for (size_t k = 0; !seen && k < c->res->n_sets; k++)
            seen = !strcmp(c->res->sets[k].name, b->name);
        if (seen)
            continue;
        c->res->sets = cs_realloc(c->res->sets, (c->res->n_sets + 1) * sizeof *c->res->sets);
        cs_backup_entry *x = &c->res->sets[c->res->n_sets++];
        memset(x, 0, sizeof *x);
        x->name = cs_strdup(b->name);
        x->started = b->started;
        x->set = cs_set_info_dup(b->set);
    }
}

static int count_backups(verify_ctx *c, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_catalog_backups(c->cat, &entries, &n, e);
    if (!rc)
        rc = cs_ops_attach_sets(c->repo, &entries, &n, CS_SET_RUNNING_GRACE, false, NULL, NULL, e);
    note_sets(c, entries, n);
    bool named = false, named_incomplete = false;
    for (size_t i = 0; !rc && i < n; i++) {
        bool match = !c->req->backup || !strcmp(entries[i].name, c->req->backup);
        if (match && entries[i].damage) {
            /* One problem for the whole backup; the others go on. */
            char *why = cs_sprintf("backup is damaged: %s", entries[i].damage);
            add_problem(c->res, entries[i].name, NULL, NULL, why);
            free(why);
            c->res->damaged_backups++;
            named = true;
            continue;
        }
        if (match && !entries[i].complete)
            named_incomplete = true;
        if (!match || !entries[i].complete)
            continue;
        named = true;
        c->res->backups++;
        c->res->files += entries[i].files;
    }
    cs_backup_entries_free(entries, n);
    if (!rc && c->req->backup && !named)
        rc = named_incomplete ? cs_err_set(e, CS_E_INVAL, "backup %s is incomplete (it was interrupted)", c->req->backup)
                              : cs_err_set(e, CS_E_NOTFOUND, "no backup named %s in %s", c->req->backup,
                                           c->repo->location);
    return rc;
}

static int run(verify_ctx *c, cs_err *e)
{
    uint64_t chosen = 0;
    cs_job_phase(c->job, "sync", 0, 0); /* the catalog learns the repository's backups */
    int rc = cs_catalog_sync(c->cat, c->repo, c->res->deep ? CS_LOAD_MANIFEST : CS_LOAD_REFS, e);
    if (!rc)
        rc = count_backups(c, e);
    if (!rc)
        rc = cs_catalog_select(c->cat, c->req->backup, c->res->sample_pct, &chosen, e);
    uint64_t bytes = 0;
    if (!rc && c->res->deep)
        rc = cs_catalog_selected_size(c->cat, &bytes, e);
    if (!rc)
        cs_info("verify: %llu objects to check (%s)", (unsigned long long)chosen, c->res->deep ? "deep" : "fast");
    if (!rc) /* fast: the listing counts objects as they come */
        cs_job_phase(c->job, c->res->deep ? "read" : "list", c->res->deep ? chosen : 0, bytes);
    if (!rc)
        rc = c->res->deep ? verify_deep(c, e) : verify_fast(c, e);
    if (!rc)
        rc = name_damage(c, e);
    return rc;
}

int cs_op_verify(cs_job *job, const cs_host *host, const cs_verify_req *req, cs_verify_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    verify_ctx c;
    memset(&c, 0, sizeof c);
    c.job = job;
    c.req = req;
    c.res = res;
    res->deep = req->deep;
    res->sample_pct = isnan(req->sample) ? 0 : req->sample; /* checked: a percentage given with deep */
    int rc = cs_ops_open_repo(host, req->repo, NULL, false, &c.repo, e);
    /* The deep verify hashes plaintext; the fast one needs no key. */
    if (!rc && req->deep)
        rc = cs_ops_require_identity(c.repo, e);
    cs_ops_lock_opts lo = { req->lock_wait, req->lock_stale, false };
    if (!rc)
        cs_job_phase(job, "lock", 0, 0);
    if (!rc)
        rc = cs_ops_lock(&lo, c.repo, CS_LOCK_SHARED, "verify", &c.lock, e);
    if (!rc)
        rc = cs_ops_open_catalog(host, c.repo, &c.cat, e);
    if (!rc)
        rc = run(&c, e);
    for (size_t i = 0; i < c.n_damages; i++)
        free(c.damages[i].reason);
    free(c.damages);
    cs_catalog_close(c.cat);
    cs_lock_release(c.lock);
    cs_repo_free(c.repo);
    /* A cancel (SIGINT or SIGTERM in the CLI) changes nothing in the
     * repository; the objects of the chunks read whole are remembered as
     * verified, so that a sampled verify goes on where it stopped. */
    if (rc && cs_job_canceled(job))
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted; nothing was changed, run verify again");
    if (rc)
        cs_err_prefix(e, "verify");
    return rc;
}

int cs_op_verify_verdict(const cs_verify_req *req, const cs_verify_result *res, cs_err *e)
{
    (void)req;
    if (res->n_problems > res->damaged_backups)
        return cs_err_set(e, CS_E_CORRUPT, "verify failed: %zu of %llu files are damaged%s",
                          res->n_problems - res->damaged_backups, (unsigned long long)res->files,
                          res->damaged_backups ? ", and backups are damaged" : "");
    if (res->n_problems)
        return cs_err_set(e, CS_E_CORRUPT, "verify failed: %zu damaged backups (the others are good)",
                          res->damaged_backups);
    return 0;
}

void cs_verify_result_free(cs_verify_result *res)
{
    for (size_t i = 0; i < res->n_problems; i++) {
        free(res->problems[i].backup);
        free(res->problems[i].file);
        free(res->problems[i].object);
        free(res->problems[i].reason);
    }
    free(res->problems);
    cs_backup_entries_free(res->sets, res->n_sets);
    memset(res, 0, sizeof *res);
}
