/* sets.c - backup sets as the ops see them (see ops.h, cs_ops_attach_sets). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "ops/ops.h"
#include "repo/set.h"

static bool has_name(const cs_backup_entry *entries, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(entries[i].name, name))
            return true;
    return false;
}

/* The entry that stands for a set none of whose hosts started a backup. */
static void placeholder(const cs_backup_set *s, cs_backup_entry *out)
{
    memset(out, 0, sizeof *out);
    out->name = cs_strdup(s->name);
    out->host_id = cs_strdup("");
    out->address = cs_strdup("");
    out->started = s->started;
}

static int compare_entries(const void *a, const void *b)
{
    const cs_backup_entry *x = a, *y = b;
    if (x->started != y->started)
        return x->started < y->started ? -1 : 1;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->host_id, y->host_id);
}

int cs_ops_attach_sets(cs_repo *repo, cs_backup_entry **entries, size_t *n, double grace, bool placeholders,
                       cs_set_entry **sets_out, size_t *n_sets_out, cs_err *e)
{
    cs_set_entry *sets = NULL;
    size_t n_sets = 0;
    int rc = cs_repo_list_sets(repo, &sets, &n_sets, e);
    if (rc)
        return rc;
    double now = (double)time(NULL);
    size_t added = 0;
    for (size_t k = 0; k < n_sets; k++) {
        const cs_set_entry *x = &sets[k];
        if (x->damage) {
            cs_warn("backup set %s is damaged (its node backups are listed alone): %s", x->files.name, x->damage);
            if (!x->set.name)
                continue;
        }
        if (!x->set.name)
            continue; /* leftovers of a removal */
        if (placeholders && !has_name(*entries, *n, x->set.name)) {
            *entries = cs_realloc(*entries, (*n + 1) * sizeof **entries);
            placeholder(&x->set, &(*entries)[(*n)++]);
            added++;
        }
        cs_set_info info;
        cs_set_state_of(&x->set, *entries, *n, now, grace, &info);
        for (size_t i = 0; i < *n; i++)
            if (!strcmp((*entries)[i].name, x->set.name)) {
                cs_set_info_free((*entries)[i].set);
                (*entries)[i].set = cs_set_info_dup(&info);
            }
        cs_set_info_clear(&info);
    }
    if (added)
        qsort(*entries, *n, sizeof **entries, compare_entries);
    if (sets_out) {
        *sets_out = sets;
        *n_sets_out = n_sets;
    } else {
        cs_set_entries_free(sets, n_sets);
    }
    return 0;
}
