/* verify.c - re-read every stored object of complete backups and check it
 * against the manifest (size and BLAKE2b-256 of the plaintext). An object
 * that several backups share is read once. */
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/parallel.h"
#include "io/sink.h"
#include "ops/ops.h"

typedef struct ref {
    const char *backup;   /* borrowed from the manifest */
    const cs_mtable *table;
    const cs_mfile *file;
} ref;

typedef struct verify_ctx {
    cs_repo *repo;
    cs_manifest *manifests;
    size_t n_manifests;
    ref *refs;
    size_t n_refs;
    struct obj_group *groups;
    size_t n_groups;
    cs_verify_result *res;
} verify_ctx;

static int load_manifests(verify_ctx *c, const char *only, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = 0;
    if (only) {
        c->manifests = cs_calloc(1, sizeof *c->manifests);
        rc = cs_repo_read_manifest(c->repo, only, NULL, &c->manifests[0], e);
        if (!rc)
            c->n_manifests = 1;
        return rc;
    }
    rc = cs_repo_list_backups(c->repo, &entries, &n, e);
    if (rc)
        return rc;
    c->manifests = cs_calloc(n ? n : 1, sizeof *c->manifests);
    for (size_t i = 0; !rc && i < n; i++) {
        if (!entries[i].complete)
            continue; /* an interrupted backup promises nothing */
        rc = cs_repo_read_manifest(c->repo, entries[i].name, entries[i].host_id, &c->manifests[c->n_manifests], e);
        if (!rc)
            c->n_manifests++;
    }
    cs_backup_entries_free(entries, n);
    return rc;
}

static int compare_refs(const void *a, const void *b)
{
    return strcmp(((const ref *)a)->file->object, ((const ref *)b)->file->object);
}

static void collect_refs(verify_ctx *c)
{
    for (size_t i = 0; i < c->n_manifests; i++)
        for (size_t t = 0; t < c->manifests[i].n_tables; t++) {
            const cs_mtable *table = &c->manifests[i].tables[t];
            for (size_t f = 0; f < table->n_files; f++) {
                c->refs = cs_realloc(c->refs, (c->n_refs + 1) * sizeof *c->refs);
                c->refs[c->n_refs++] = (ref){ c->manifests[i].backup, table, &table->files[f] };
            }
        }
    if (c->n_refs)
        qsort(c->refs, c->n_refs, sizeof *c->refs, compare_refs);
}

static void add_problem(cs_verify_result *res, const ref *r, const char *reason)
{
    res->problems = cs_realloc(res->problems, (res->n_problems + 1) * sizeof *res->problems);
    cs_verify_problem *p = &res->problems[res->n_problems++];
    p->backup = cs_strdup(r->backup);
    p->file = cs_sprintf("%s.%s/%s", r->table->keyspace, r->table->table, r->file->name);
    p->object = cs_strdup(r->file->object);
    p->reason = cs_strdup(reason);
}

/* refs[first..last) share one object: it is read once. */
typedef struct obj_group {
    size_t first, last;
    int rc;
    cs_err err;
} obj_group;

/* Runs on a worker thread: reads the object, records the outcome in g. A
 * damaged object is a finding, not a reason to stop: always returns 0. */
static int read_group(void *arg, size_t i, cs_err *e)
{
    verify_ctx *c = arg;
    obj_group *g = &c->groups[i];
    cs_err_clear(&g->err);
    cs_sink *null = cs_null_sink_new();
    g->rc = cs_ops_fetch_object(c->repo, c->refs[g->first].file, null, &g->err);
    if (g->rc)
        cs_debug("verify: %s", g->err.msg);
    (void)e;
    return 0;
}

/* Two manifests that disagree about an object's content are a problem of
 * their own. */
static void report_group(verify_ctx *c, const obj_group *g)
{
    const cs_mfile *f = c->refs[g->first].file;
    c->res->objects++;
    c->res->bytes += f->size;
    for (size_t i = g->first; i < g->last; i++) {
        const cs_mfile *other = c->refs[i].file;
        c->res->files++;
        if (g->rc)
            add_problem(c->res, &c->refs[i], g->err.msg);
        else if (other->size != f->size || strcmp(other->hash, f->hash))
            add_problem(c->res, &c->refs[i], "manifests disagree about this object's content");
    }
}

static void group_refs(verify_ctx *c)
{
    for (size_t i = 0; i < c->n_refs;) {
        size_t j = i + 1;
        while (j < c->n_refs && !strcmp(c->refs[j].file->object, c->refs[i].file->object))
            j++;
        c->groups = cs_realloc(c->groups, (c->n_groups + 1) * sizeof *c->groups);
        c->groups[c->n_groups++] = (obj_group){ i, j, 0, { 0 } };
        i = j;
    }
}

int cs_op_verify(const cs_config *cfg, cs_verify_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    verify_ctx c;
    memset(&c, 0, sizeof c);
    c.res = res;
    if (!cfg->repo)
        return cs_err_set(e, CS_E_INVAL, "verify needs --repo");
    if (cfg->jobs < 1 || cfg->jobs > 64)
        return cs_err_set(e, CS_E_INVAL, "--jobs must be between 1 and 64");
    int rc = cs_ops_open_repo(cfg, false, &c.repo, e);
    if (!rc)
        rc = cs_ops_require_identity(c.repo, e);
    if (!rc)
        rc = load_manifests(&c, cfg->backup, e);
    if (!rc) {
        res->backups = c.n_manifests;
        collect_refs(&c);
        group_refs(&c);
        cs_parallel_for(c.n_groups, (unsigned)cfg->jobs, read_group, &c, e);
        for (size_t i = 0; i < c.n_groups; i++)
            report_group(&c, &c.groups[i]);
    }
    free(c.groups);
    free(c.refs);
    for (size_t i = 0; i < c.n_manifests; i++)
        cs_manifest_free(&c.manifests[i]);
    free(c.manifests);
    cs_repo_free(c.repo);
    if (rc)
        cs_err_prefix(e, "verify");
    return rc;
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
    memset(res, 0, sizeof *res);
}
