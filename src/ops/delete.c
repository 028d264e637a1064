/* delete.c - remove one backup on purpose: `cassette delete --backup NAME`.
 *
 * For a damaged backup that retention keeps (and that stops the sweep when
 * its references are unknown), or one the operator does not want. Under
 * the repository's exclusive lock, as purge (--dry-run: a shared one), the
 * backup's files go in purge's order: start mark and summary, then the
 * manifest (from then on the backup is gone), its index last; a delete
 * killed half-way leaves leftovers the next purge removes. Objects are not
 * deleted here: those that only this backup used become unreferenced, and
 * the next purge sweeps them once they are older than the grace period, as
 * any other (so a backup started meanwhile that reuses one is safe).
 * Refuses to delete the newest complete backup of a node, or its newest
 * complete full backup, without --force: that is the one a restore wants. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "ops/ops.h"
#include "repo/set.h"

typedef struct delete_ctx {
    const cs_delete_req *req;
    cs_repo *repo;
    cs_catalog *cat;
    cs_lock *lock;
    cs_delete_result *res;
    cs_set_entry *sets;
    size_t n_sets;
    const cs_set_entry *set;   /* the backup is this set's (a sound record), or NULL */
    const char *set_files;     /* the name of set files to delete (even a damaged record's), or NULL */
} delete_ctx;

/* Is b the newest complete backup of its node, or its newest complete full one? */
static const char *protected_as(const cs_backup_entry *entries, size_t n, const cs_backup_entry *b)
{
    if (!b->complete)
        return NULL;
    bool newer = false, newer_full = false;
    bool full = !b->scope || strcmp(b->scope, "partial");
    for (size_t i = 0; i < n; i++) {
        const cs_backup_entry *o = &entries[i];
        if (o == b || !o->complete || strcmp(o->host_id, b->host_id) || o->started < b->started)
            continue;
        if (o->started == b->started && strcmp(o->name, b->name) < 0)
            continue;
        newer = true;
        newer_full |= !o->scope || strcmp(o->scope, "partial");
    }
    if (!newer)
        return "the newest complete backup";
    if (full && !newer_full)
        return "the newest complete full backup";
    return NULL;
}

/* Is the set of name the newest complete one of its cluster? */
static const char *set_protected_as(const delete_ctx *c, const cs_backup_entry *entries, size_t n)
{
    const cs_backup_set *s = &c->set->set;
    double now = (double)time(NULL);
    cs_set_info mine;
    cs_set_state_of(s, entries, n, now, CS_SET_RUNNING_GRACE, &mine);
    bool complete = mine.complete;
    cs_set_info_clear(&mine);
    if (!complete)
        return NULL;
    for (size_t k = 0; k < c->n_sets; k++) {
        const cs_backup_set *o = &c->sets[k].set;
        if (!o->name || c->sets[k].damage || o == s || strcmp(o->cluster, s->cluster) || o->started < s->started)
            continue;
        cs_set_info info;
        cs_set_state_of(o, entries, n, now, CS_SET_RUNNING_GRACE, &info);
        bool newer = info.complete;
        cs_set_info_clear(&info);
        if (newer)
            return NULL;
    }
    return "the newest complete backup set";
}

static int choose(delete_ctx *c, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_catalog_backups(c->cat, &entries, &n, e);
    if (!rc)
        rc = cs_ops_attach_sets(c->repo, &entries, &n, CS_SET_RUNNING_GRACE, false, &c->sets, &c->n_sets, e);
    cs_delete_result *res = c->res;
    const cs_set_entry *x = rc ? NULL : cs_set_entries_find(c->sets, c->n_sets, c->req->backup);
    c->set = x && x->set.name && !x->damage ? x : NULL;
    c->set_files = x ? x->files.name : NULL; /* a damaged set goes on purpose too */
    if (c->set) {
        const char *why = set_protected_as(c, entries, n);
        if (why && !c->req->force)
            rc = cs_err_set(e, CS_E_INVAL, "backup %s is %s of cluster %s: give {force} to delete it anyway",
                            c->req->backup, why, c->set->set.cluster);
        res->forced |= why != NULL;
        res->set = true;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        if (strcmp(entries[i].name, c->req->backup))
            continue;
        const char *why = c->set ? NULL : protected_as(entries, n, &entries[i]);
        if (why && !c->req->force) {
            rc = cs_err_set(e, CS_E_INVAL, "backup %s is %s of node %s: give {force} to delete it anyway",
                            entries[i].name, why,
                            *entries[i].address ? entries[i].address : entries[i].host_id);
            break;
        }
        res->forced |= why != NULL;
        res->items = cs_realloc(res->items, (res->n_items + 1) * sizeof *res->items);
        cs_delete_item *it = &res->items[res->n_items++];
        memset(it, 0, sizeof *it);
        it->entry = entries[i];
        memset(&entries[i], 0, sizeof entries[i]); /* the strings move over */
    }
    cs_backup_entries_free(entries, n);
    res->set = c->set_files != NULL;
    if (!rc && !res->n_items && !c->set_files)
        rc = cs_err_set(e, CS_E_NOTFOUND, "no backup named %s in %s", c->req->backup, c->repo->location);
    return rc;
}

/* What only these backups reference: the next purge's to sweep. */
static int count_freed(delete_ctx *c, cs_err *e)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < c->res->n_items; i++) {
        cs_delete_item *it = &c->res->items[i];
        rc = cs_catalog_only_refs(c->cat, it->entry.name, it->entry.host_id, &it->objects, &it->stored, e);
    }
    return rc;
}

static int remove_files(delete_ctx *c, cs_err *e)
{
    int rc = cs_lock_check(c->lock, e);
    for (size_t k = 0; !rc && k < CS_BK_KINDS; k++)
        for (size_t i = 0; !rc && i < c->res->n_items; i++) {
            const cs_backup_entry *b = &c->res->items[i].entry;
            char *key = cs_repo_backup_key(b->name, b->host_id, cs_backup_suffix[cs_backup_delete_order[k]]);
            rc = cs_storage_del(c->repo->st, key, e);
            free(key);
        }
    for (size_t i = 0; !rc && i < c->res->n_items; i++) {
        const cs_backup_entry *b = &c->res->items[i].entry;
        cs_info("deleted backup %s of node %s", b->name, *b->address ? b->address : b->host_id);
        rc = cs_catalog_forget(c->cat, b->name, b->host_id, e);
    }
    /* A set goes whole: its node backups first, then its own files, the
     * record last (set.h). */
    for (size_t k = 0; !rc && c->set_files && k < 3; k++) {
        char *key = cs_repo_set_key(c->set_files, cs_set_delete_order[k]);
        rc = cs_storage_del(c->repo->st, key, e);
        free(key);
    }
    if (!rc && c->set_files)
        cs_info("deleted backup set %s", c->set_files);
    return rc;
}

/* References are learnt when they can be (an index, or the identity): a
 * format-1 backup without the key leaves the counts unknown, nothing more. */
static int sync(delete_ctx *c, cs_err *e)
{
    int rc = cs_catalog_sync(c->cat, c->repo, CS_LOAD_REFS, e);
    if (rc == CS_E_NOKEY) {
        cs_debug("%s", e->msg);
        cs_err_clear(e);
        rc = cs_catalog_sync(c->cat, c->repo, CS_LOAD_ENTRY, e);
    } else if (!rc) {
        c->res->freed_known = true;
    }
    return rc;
}

int cs_op_delete(cs_job *job, const cs_host *host, const cs_delete_req *req, cs_delete_result *res, cs_err *e)
{
    (void)job;
    memset(res, 0, sizeof *res);
    res->dry_run = req->dry_run;
    res->grace = req->grace;
    delete_ctx c = { .req = req, .res = res };
    int rc = cs_ops_open_repo(host, req->repo, NULL, false, &c.repo, e);
    if (!rc) {
        char *purpose = cs_sprintf("delete %s%s", req->backup, req->dry_run ? " --dry-run" : "");
        cs_ops_lock_opts lo = { req->lock_wait, req->lock_stale, false };
        rc = cs_ops_lock(&lo, c.repo, req->dry_run ? CS_LOCK_SHARED : CS_LOCK_EXCLUSIVE, purpose, &c.lock, e);
        free(purpose);
    }
    if (!rc)
        rc = cs_ops_open_catalog(host, c.repo, &c.cat, e);
    if (!rc)
        rc = sync(&c, e);
    if (!rc)
        rc = choose(&c, e);
    if (!rc && res->freed_known)
        rc = count_freed(&c, e);
    if (!rc && !req->dry_run)
        rc = remove_files(&c, e);
    cs_catalog_close(c.cat);
    cs_lock_release(c.lock);
    cs_repo_free(c.repo);
    cs_set_entries_free(c.sets, c.n_sets);
    return rc ? cs_err_prefix(e, "delete") : 0;
}

void cs_delete_result_free(cs_delete_result *res)
{
    for (size_t i = 0; i < res->n_items; i++)
        cs_backup_entry_clear(&res->items[i].entry);
    free(res->items);
    memset(res, 0, sizeof *res);
}
