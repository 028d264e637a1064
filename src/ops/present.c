#include "ops/present.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/job.h"
#include "common/log.h"
#include "common/parallel.h"

#define LIST_PAGE 1000 /* keys per listing request (S3's maximum) */

typedef struct wanted {
    char object[CS_OBJECT_ID_HEX];
    uint64_t stored;  /* payload bytes */
    uint64_t expect;  /* bytes in the storage (set by the check) */
    int64_t found;    /* bytes the repository holds; -1: not there */
} wanted;

struct cs_present {
    wanted *v;
    size_t n;
    bool listed;
    size_t missing;
    cs_repo *repo; /* during the check only */
};

cs_present *cs_present_new(void)
{
    return cs_calloc(1, sizeof(cs_present));
}

void cs_present_free(cs_present *p)
{
    if (!p)
        return;
    free(p->v);
    free(p);
}

void cs_present_want(cs_present *p, const char *object, uint64_t stored)
{
    p->v = cs_realloc(p->v, (p->n + 1) * sizeof *p->v);
    wanted *w = &p->v[p->n++];
    memset(w, 0, sizeof *w);
    snprintf(w->object, sizeof w->object, "%s", object);
    w->stored = stored;
    w->found = -1;
}

static int compare_wanted(const void *a, const void *b)
{
    const wanted *x = a, *y = b;
    int c = strcmp(x->object, y->object);
    return c ? c : x->stored < y->stored ? -1 : x->stored > y->stored ? 1 : 0;
}

static void sort_unique(cs_present *p)
{
    if (p->n > 1)
        qsort(p->v, p->n, sizeof *p->v, compare_wanted);
    size_t kept = 0;
    for (size_t i = 0; i < p->n; i++)
        if (!kept || compare_wanted(&p->v[kept - 1], &p->v[i]))
            p->v[kept++] = p->v[i];
    p->n = kept;
}

/* The first wanted entry of object (entries of one object are adjacent),
 * or p->n. */
static size_t lower_bound(const cs_present *p, const char *object)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(p->v[mid].object, object) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool cs_present_should_list(size_t wanted_n, uint64_t repo_objects, unsigned jobs)
{
    uint64_t pages = repo_objects ? (repo_objects + LIST_PAGE - 1) / LIST_PAGE : 1;
    uint64_t rounds = ((uint64_t)wanted_n + (jobs ? jobs : 1) - 1) / (jobs ? jobs : 1);
    return rounds > pages;
}

/* ---- one listing ---- */

static int listed_key(const char *key, const cs_storage_stat *st, void *arg)
{
    cs_present *p = arg;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    if (!cs_is_hex32(base))
        return 0;
    for (size_t i = lower_bound(p, base); i < p->n && !strcmp(p->v[i].object, base); i++)
        p->v[i].found = (int64_t)st->size;
    return 0;
}

/* ---- a stat per object ---- */

/* Runs on a worker thread: writes only its own entry. */
static int stat_one(void *arg, size_t i, cs_err *e)
{
    cs_present *p = arg;
    wanted *w = &p->v[i];
    char *key = cs_repo_object_key(w->object);
    cs_storage_stat st;
    int rc = cs_storage_stat(p->repo->st, key, &st, e);
    if (rc == CS_E_NOTFOUND) {
        cs_err_clear(e);
        rc = 0;
    } else if (!rc) {
        w->found = (int64_t)st.size;
    } else {
        cs_err_prefix(e, "object %s", w->object);
    }
    free(key);
    if (!rc)
        cs_job_add_files(cs_job_current(), 1); /* the worker works for the caller's job */
    return rc;
}

int cs_present_check(cs_present *p, cs_repo *repo, uint64_t repo_objects, unsigned jobs, cs_err *e)
{
    sort_unique(p);
    p->missing = 0;
    for (size_t i = 0; i < p->n; i++) {
        p->v[i].expect = cs_repo_stored_size(repo, p->v[i].stored);
        p->v[i].found = -1;
    }
    if (!p->n)
        return 0;
    p->listed = cs_present_should_list(p->n, repo_objects, jobs);
    p->repo = repo;
    cs_job_add_total(cs_job_current(), p->n, 0);
    int rc = p->listed ? cs_storage_list(repo->st, "objects/", listed_key, p, e)
                       : cs_parallel_for(p->n, jobs ? jobs : 1, stat_one, p, e);
    p->repo = NULL;
    if (!rc && p->listed)
        cs_job_add_files(cs_job_current(), p->n); /* one listing answered for all */
    if (rc) {
        for (size_t i = 0; i < p->n; i++)
            p->v[i].found = -1;
        return cs_err_prefix(e, "checking the objects to reuse");
    }
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].found < 0 || (uint64_t)p->v[i].found != p->v[i].expect) {
            p->missing++;
            cs_debug("object %s is %s: its files are stored again", p->v[i].object,
                     p->v[i].found < 0 ? "missing" : "not of the size its manifest says");
        }
    cs_info("checked %zu objects to reuse with %s: %zu missing", p->n,
            p->listed ? "one listing of objects/" : "a stat each", p->missing);
    return 0;
}

bool cs_present_has(const cs_present *p, const char *object, uint64_t stored)
{
    for (size_t i = lower_bound(p, object); i < p->n && !strcmp(p->v[i].object, object); i++)
        if (p->v[i].stored == stored)
            return p->v[i].found >= 0 && (uint64_t)p->v[i].found == p->v[i].expect;
    return false;
}

void cs_present_get_stats(const cs_present *p, cs_present_stats *out)
{
    out->wanted = p->n;
    out->missing = p->missing;
    out->listed = p->listed;
}
