#include "cli/output.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/fs.h"

static void print_json(FILE *out, json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    if (text) {
        fprintf(out, "%s\n", text);
        free(text);
    }
    json_decref(j);
}

static char *iso(double t)
{
    char buf[21];
    if (t <= 0)
        return strdup("");
    cs_iso8601((int64_t)t, buf);
    return strdup(buf);
}

void cs_print_backup(FILE *out, const cs_backup_result *res, bool json)
{
    const cs_manifest *m = &res->manifest;
    cs_manifest_totals t;
    cs_manifest_totals_of(m, &t);
    if (json) {
        json_t *new_files = json_array();
        for (size_t i = 0; i < m->n_tables; i++)
            for (size_t j = 0; j < m->tables[i].n_files; j++)
                if (m->tables[i].files[j].is_new) {
                    char *name = NULL;
                    size_t len = strlen(m->tables[i].keyspace) + strlen(m->tables[i].table) +
                                 strlen(m->tables[i].files[j].name) + 3;
                    name = malloc(len);
                    if (!name)
                        continue;
                    snprintf(name, len, "%s/%s/%s", m->tables[i].keyspace, m->tables[i].table,
                             m->tables[i].files[j].name);
                    json_array_append_new(new_files, json_string(name));
                    free(name);
                }
        json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:b}", "name", m->backup,
                                  "host_id", m->host_id, "files", (json_int_t)t.files, "files_new",
                                  (json_int_t)t.files_new, "files_unchanged", (json_int_t)(t.files - t.files_new),
                                  "bytes_read", (json_int_t)res->bytes_read, "bytes_stored",
                                  (json_int_t)t.stored_new, "size", (json_int_t)t.size, "seconds", res->seconds,
                                  "new_files", new_files, "complete", 1);
        json_object_set_new(doc, "encrypted", json_boolean(res->encrypted));
        /* Stored bytes an interrupted backup had sent already: not sent again. */
        json_object_set_new(doc, "bytes_resumed", json_integer((json_int_t)res->bytes_resumed));
        print_json(out, doc);
        return;
    }
    char read[32], stored[32], size[32];
    cs_human_size(res->bytes_read, read, sizeof read);
    cs_human_size(t.stored_new, stored, sizeof stored);
    cs_human_size(t.size, size, sizeof size);
    fprintf(out,
            "backup %s complete: %llu files (%llu new, %llu unchanged), %s in total; read %s, stored %s; %.1f s\n",
            m->backup, (unsigned long long)t.files, (unsigned long long)t.files_new,
            (unsigned long long)(t.files - t.files_new), size, read, stored, res->seconds);
    if (!res->encrypted)
        fprintf(out, "the repository is not encrypted: these files are stored in plaintext\n");
}

/* Logical bytes per byte this backup added: how much dedup saved (null
 * when nothing new was stored, or not known). */
static json_t *dedup_json(const cs_backup_entry *b)
{
    return b->has_new && b->size_new ? json_real((double)b->size / (double)b->size_new) : json_null();
}

static json_t *new_json(const cs_backup_entry *b, uint64_t v)
{
    return b->has_new ? json_integer((json_int_t)v) : json_null();
}

/* "ks1,ks2,ks.t" -> ["ks1", "ks2", "ks.t"] (null when not readable). */
static json_t *names_json(const char *names)
{
    if (!names)
        return json_null();
    json_t *a = json_array();
    const char *p = names;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        json_array_append_new(a, json_stringn(p, n));
        p += n + (comma ? 1 : 0);
    }
    return a;
}

static json_t *opt_json_string(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *entry_json(const cs_backup_entry *b)
{
    char *started = iso(b->started), *finished = iso(b->finished);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:b}", "name", b->name,
                          "host_id", b->host_id, "address", b->address, "started", started, "finished", finished,
                          "duration_s", b->complete ? json_real(b->finished - b->started) : json_null(), "files",
                          (json_int_t)b->files, "size", (json_int_t)b->size, "stored_size", (json_int_t)b->stored,
                          "new_files", new_json(b, b->files_new), "new_size", new_json(b, b->size_new), "new_stored",
                          new_json(b, b->stored_new), "dedup_ratio", dedup_json(b), "complete", b->complete);
    /* scope: "all", "partial" (names only when readable in the clear), or
     * null when the backup predates scopes (then counted as all). */
    json_object_set_new(j, "scope", opt_json_string(b->scope));
    json_object_set_new(j, "scope_names", names_json(b->scope_names));
    json_object_set_new(j, "scope_id", opt_json_string(b->scope_id));
    json_object_set_new(j, "damaged", json_boolean(b->damage != NULL));
    json_object_set_new(j, "damage", opt_json_string(b->damage));
    free(started);
    free(finished);
    return j;
}

/* What the SCOPE column shows. */
static void scope_text(const cs_backup_entry *b, char *out, size_t cap)
{
    if (!b->scope)
        snprintf(out, cap, "-");
    else if (strcmp(b->scope, "partial"))
        snprintf(out, cap, "all");
    else if (b->scope_names)
        snprintf(out, cap, "%.*s%s", (int)(cap > 4 ? cap - 4 : 0), b->scope_names,
                 strlen(b->scope_names) > cap - 4 ? "..." : "");
    else
        snprintf(out, cap, "partial:%.8s", b->scope_id ? b->scope_id : "");
}

static const char *state_text(const cs_backup_entry *b)
{
    return b->damage ? "DAMAGED" : b->complete ? "complete" : "INCOMPLETE";
}

void cs_print_list(FILE *out, const cs_backup_entry *entries, size_t n, bool json)
{
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, entry_json(&entries[i]));
        print_json(out, a);
        return;
    }
    if (n == 0) {
        fprintf(out, "no backups\n");
        return;
    }
    fprintf(out, "%-24s %-15s %-20s %-16s %8s %8s %10s %10s %10s %7s  %s\n", "NAME", "NODE", "STARTED", "SCOPE",
            "DURATION", "FILES", "SIZE", "STORED", "NEW", "DEDUP", "STATE");
    size_t damaged = 0;
    for (size_t i = 0; i < n; i++) {
        const cs_backup_entry *b = &entries[i];
        char *started = iso(b->started);
        char size[32], stored[32], added[32] = "-", dedup[16] = "-", duration[24] = "-", scope[20];
        cs_human_size(b->size, size, sizeof size);
        cs_human_size(b->stored, stored, sizeof stored);
        scope_text(b, scope, sizeof scope);
        if (b->has_new)
            cs_human_size(b->stored_new, added, sizeof added);
        if (b->has_new && b->size_new)
            snprintf(dedup, sizeof dedup, "%.1fx", (double)b->size / (double)b->size_new);
        if (b->complete)
            snprintf(duration, sizeof duration, "%.1fs", b->finished - b->started);
        fprintf(out, "%-24s %-15s %-20s %-16s %8s %8llu %10s %10s %10s %7s  %s\n", b->name, b->address, started, scope,
                duration, (unsigned long long)b->files, size, stored, added, dedup, state_text(b));
        free(started);
        damaged += b->damage != NULL;
    }
    for (size_t i = 0; damaged && i < n; i++)
        if (entries[i].damage)
            fprintf(out, "damaged: backup %s of node %s: %s\n", entries[i].name,
                    *entries[i].address ? entries[i].address : entries[i].host_id, entries[i].damage);
}

void cs_print_delete(FILE *out, const cs_delete_result *res, bool json)
{
    if (json) {
        json_t *items = json_array();
        for (size_t i = 0; i < res->n_items; i++) {
            const cs_delete_item *it = &res->items[i];
            json_t *j = entry_json(&it->entry);
            json_object_set_new(j, "objects_freed", res->freed_known ? json_integer((json_int_t)it->objects) : json_null());
            json_object_set_new(j, "stored_freed", res->freed_known ? json_integer((json_int_t)it->stored) : json_null());
            json_array_append_new(items, j);
        }
        print_json(out, json_pack("{s:b, s:b, s:f, s:o}", "dry_run", res->dry_run, "forced", res->forced,
                                  "grace_s", res->grace, "backups", items));
        return;
    }
    uint64_t objects = 0, stored = 0;
    for (size_t i = 0; i < res->n_items; i++) {
        const cs_delete_item *it = &res->items[i];
        char *started = iso(it->entry.started);
        fprintf(out, "%s backup %s of node %s (%s, started %s)\n", res->dry_run ? "would delete" : "deleted",
                it->entry.name, *it->entry.address ? it->entry.address : it->entry.host_id,
                it->entry.damage ? "damaged" : it->entry.complete ? "complete" : "incomplete", started);
        free(started);
        objects += it->objects;
        stored += it->stored;
    }
    char grace[24], bytes[32];
    cs_format_duration(res->grace, grace);
    cs_human_size(stored, bytes, sizeof bytes);
    if (res->freed_known)
        fprintf(out, "%llu objects (%s) that no other backup uses %s deleted by the next purge once older than "
                     "the grace period (%s)\n",
                (unsigned long long)objects, bytes, res->dry_run ? "would be" : "will be", grace);
    else
        fprintf(out, "objects that no other backup uses %s deleted by the next purge once older than the grace "
                     "period (%s)\n",
                res->dry_run ? "would be" : "will be", grace);
}

void cs_print_purge(FILE *out, const cs_purge_result *res, bool json)
{
    const char *verb = res->dry_run ? "would remove" : "removed";
    if (json) {
        json_t *items = json_array();
        for (size_t i = 0; i < res->n_items; i++) {
            const cs_purge_item *it = &res->items[i];
            json_t *j = entry_json(&it->entry);
            json_object_set_new(j, "remove", json_boolean(it->remove));
            json_object_set_new(j, "reason", json_string(it->reason));
            json_array_append_new(items, j);
        }
        json_t *root = json_pack("{s:b, s:I, s:I, s:I, s:I, s:f, s:o}", "dry_run", res->dry_run, "removed",
                                  (json_int_t)res->removed, "removed_incomplete", (json_int_t)res->removed_incomplete,
                                  "objects_deleted", (json_int_t)res->objects, "bytes_deleted", (json_int_t)res->bytes,
                                  "seconds", res->seconds, "backups", items);
        json_object_set_new(root, "objects_waiting", json_integer((json_int_t)res->waiting));
        json_object_set_new(root, "bytes_waiting", json_integer((json_int_t)res->waiting_bytes));
        json_object_set_new(root, "damaged", json_integer((json_int_t)res->damaged));
        json_object_set_new(root, "leftovers_deleted", json_integer((json_int_t)res->leftovers));
        json_object_set_new(root, "sweep_skipped", opt_json_string(res->sweep_skipped));
        print_json(out, root);
        return;
    }
    for (size_t i = 0; i < res->n_items; i++) {
        const cs_purge_item *it = &res->items[i];
        if (!it->remove && !res->dry_run && !it->entry.damage)
            continue;
        char *started = iso(it->entry.started);
        fprintf(out, "%-6s %-24s %-15s %-20s %s\n", it->remove ? "remove" : "keep", it->entry.name,
                it->entry.address, started, it->reason);
        free(started);
    }
    char bytes[32];
    cs_human_size(res->bytes, bytes, sizeof bytes);
    fprintf(out, "%s %zu backups and %zu incomplete ones; %s %llu unreferenced objects (%s); %.1f s\n",
            verb, res->removed, res->removed_incomplete, res->dry_run ? "would delete" : "deleted",
            (unsigned long long)res->objects, bytes, res->seconds);
    if (res->waiting) {
        cs_human_size(res->waiting_bytes, bytes, sizeof bytes);
        fprintf(out, "%llu unreferenced objects (%s) wait for the grace period (--grace) or an incomplete backup; "
                     "a later purge deletes them\n",
                (unsigned long long)res->waiting, bytes);
    }
    if (res->leftovers)
        fprintf(out, "%s %zu files left by an interrupted removal\n", res->dry_run ? "would delete" : "deleted",
                res->leftovers);
    if (res->damaged)
        fprintf(out, "kept %zu damaged backups (cassette verify names the damage; cassette delete --backup NAME "
                     "removes one)\n",
                res->damaged);
    if (res->sweep_skipped)
        fprintf(out, "no object deleted: %s\n", res->sweep_skipped);
}

static json_t *aside_json(const cs_aside_entry *a, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:I, s:I, s:f, s:b}", "path", a[i].path, "kind",
                                             a[i].staging ? "staging" : "aside", "bytes", (json_int_t)a[i].bytes,
                                             "files", (json_int_t)a[i].files, "age_s", a[i].age_s, "in_use",
                                             a[i].in_use));
    return arr;
}

/* "/x (moved aside by a replace restore; 1.2 GiB, 3.0 h old)" */
static void print_aside_line(FILE *out, const char *verb, const cs_aside_entry *a)
{
    char size[32], age[32];
    cs_human_size(a->bytes, size, sizeof size);
    cs_human_duration(a->age_s, age, sizeof age);
    fprintf(out, "%s %s (%s; %s, %s old)\n", verb, a->path,
            a->in_use ? "its restore is running" : a->staging ? "copies left by an interrupted restore"
                                                                : "moved aside by a replace restore",
            size, age);
}

static void print_aside_status(FILE *out, const cs_aside_entry *a, size_t n)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        print_aside_line(out, "aside:", &a[i]);
        bytes += a[i].bytes;
    }
    if (n) {
        char size[32];
        cs_human_size(bytes, size, sizeof size);
        fprintf(out, "%zu directories left by restores hold %s; once the restore is trusted, "
                     "cassette cleanup --aside removes them\n", n, size);
    }
}

void cs_print_status(FILE *out, const cs_status_result *res, bool json)
{
    if (json) {
        json_t *nodes = json_array(), *locks = json_array();
        for (size_t i = 0; i < res->n_nodes; i++) {
            const cs_status_node *n = &res->nodes[i];
            json_t *node = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "host_id", n->host_id, "address", n->address,
                                     "complete", (json_int_t)n->complete, "incomplete", (json_int_t)n->incomplete,
                                     "newest", n->newest ? entry_json(n->newest) : json_null(), "oldest",
                                     n->oldest ? entry_json(n->oldest) : json_null());
            json_object_set_new(node, "damaged", json_integer((json_int_t)n->damaged));
            /* Seconds since the newest complete backup started: what --max-age compares. */
            json_object_set_new(node, "newest_age_seconds",
                                n->newest ? json_integer((json_int_t)((double)time(NULL) - n->newest->started))
                                          : json_null());
            json_array_append_new(nodes, node);
        }
        for (size_t i = 0; i < res->locks.n; i++)
            json_array_append_new(locks, json_string(res->locks.items[i]));
        json_t *damaged = json_array();
        for (size_t i = 0; i < res->n_entries; i++)
            if (res->entries[i].damage)
                json_array_append_new(damaged, entry_json(&res->entries[i]));
        json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:o, s:o}", "repository", res->location, "id", res->id,
                              "encrypted", res->encrypted, "backups", (json_int_t)res->n_entries, "stored_new",
                              (json_int_t)res->stored_new, "nodes", nodes, "locks", locks);
        json_object_set_new(j, "damaged", damaged);
        json_object_set_new(j, "aside", aside_json(res->aside, res->n_aside));
        print_json(out, j);
        return;
    }
    char stored[32];
    cs_human_size(res->stored_new, stored, sizeof stored);
    fprintf(out, "repository %s (id %s, %s)\n%zu backups of %zu nodes; the backups hold %s of new data\n",
            res->location, res->id, res->encrypted ? "encrypted" : "not encrypted", res->n_entries, res->n_nodes,
            stored);
    for (size_t i = 0; i < res->n_nodes; i++) {
        const cs_status_node *n = &res->nodes[i];
        char *newest = n->newest ? iso(n->newest->started) : strdup("none");
        char *oldest = n->oldest ? iso(n->oldest->started) : strdup("none");
        char age[48] = "";
        if (n->newest) {
            char d[32];
            cs_human_duration((double)time(NULL) - n->newest->started, d, sizeof d);
            snprintf(age, sizeof age, " (%s ago)", d);
        }
        char damaged[32] = "";
        if (n->damaged)
            snprintf(damaged, sizeof damaged, ", %zu DAMAGED", n->damaged);
        fprintf(out, "node %s (%s): %zu complete, %zu incomplete%s; newest %s %s%s, oldest %s\n", n->address,
                n->host_id, n->complete, n->incomplete, damaged, n->newest ? n->newest->name : "-", newest, age,
                oldest);
        free(newest);
        free(oldest);
    }
    for (size_t i = 0; i < res->n_entries; i++)
        if (res->entries[i].damage)
            fprintf(out, "damaged: backup %s of node %s: %s\n", res->entries[i].name,
                    *res->entries[i].address ? res->entries[i].address : res->entries[i].host_id,
                    res->entries[i].damage);
    for (size_t i = 0; i < res->locks.n; i++)
        fprintf(out, "lock: %s\n", res->locks.items[i]);
    if (!res->locks.n)
        fprintf(out, "no locks held\n");
    print_aside_status(out, res->aside, res->n_aside);
}

static const char *migration_state(const cs_migration *m, bool dry_run)
{
    if (m->applied_now)
        return "applied now";
    if (m->applied && m->changed)
        return "CHANGED since applied";
    if (m->applied)
        return "applied";
    return dry_run ? "would apply" : "pending";
}

void cs_print_migrate(FILE *out, const cs_migrate_result *res, bool json)
{
    if (json) {
        json_t *a = json_array(), *unknown = json_array();
        for (size_t i = 0; i < res->n; i++) {
            const cs_migration *m = &res->items[i];
            char *at = iso((double)m->applied_at_ms / 1000.0);
            json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:b, s:s, s:I}", "version",
                                               m->version, "name", m->name, "file", m->file, "checksum", m->checksum,
                                               "statements", (json_int_t)m->n_stmts, "applied", m->applied, "applied_now",
                                               m->applied_now, "changed", m->changed, "applied_at", at, "duration_ms",
                                               (json_int_t)m->duration_ms));
            free(at);
        }
        for (size_t i = 0; i < res->unknown.n; i++)
            json_array_append_new(unknown, json_string(res->unknown.items[i]));
        print_json(out, json_pack("{s:b, s:I, s:o, s:o}", "dry_run", res->dry_run, "applied_now",
                                  (json_int_t)res->applied_now, "migrations", a, "applied_without_file", unknown));
        return;
    }
    size_t pending = 0;
    for (size_t i = 0; i < res->n; i++) {
        const cs_migration *m = &res->items[i];
        pending += !m->applied;
        char *at = m->applied ? iso((double)m->applied_at_ms / 1000.0) : strdup("");
        fprintf(out, "%-22s %-50s %3zu statements  %s\n", migration_state(m, res->dry_run), m->file, m->n_stmts, at);
        free(at);
    }
    for (size_t i = 0; i < res->unknown.n; i++)
        fprintf(out, "%-22s %s (recorded in the tracking table, no such file)\n", "applied, no file",
                res->unknown.items[i]);
    if (res->status_only || res->dry_run)
        fprintf(out, "%zu migrations, %zu pending\n", res->n, pending);
    else
        fprintf(out, "applied %zu migrations; %zu in all, none pending\n", res->applied_now, res->n);
}

static json_t *strlist_json(const cs_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(a, json_string(l->items[i]));
    return a;
}

static bool same_dirs(const cs_strlist *a, const cs_strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i], b->items[i]))
            return false;
    return true;
}

void cs_print_restore(FILE *out, const char *backup, const cs_restore_result *res, bool json)
{
    if (json) {
        json_t *failed = json_array();
        for (size_t i = 0; i < res->n_failed; i++)
            json_array_append_new(failed, json_pack("{s:s, s:s}", "table", res->failed[i].table, "reason",
                                                    res->failed[i].reason));
        json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:o}", "backup", backup, "mode", res->mode, "tables",
                              (json_int_t)res->tables, "files", (json_int_t)res->files, "bytes",
                              (json_int_t)res->bytes, "seconds", res->seconds, "moved_aside",
                              strlist_json(&res->moved_aside));
        json_object_set_new(j, "data_dirs", strlist_json(&res->data_dirs));
        json_object_set_new(j, "backup_data_dirs", strlist_json(&res->backup_data_dirs));
        json_object_set_new(j, "not_restored", failed);
        json_object_set_new(j, "complete", json_boolean(res->n_failed == 0));
        print_json(out, j);
        return;
    }
    char size[32];
    cs_human_size(res->bytes, size, sizeof size);
    fprintf(out, "restored %s (%s): %zu tables, %llu files, %s; %.1f s\n", backup, res->mode, res->tables,
            (unsigned long long)res->files, size, res->seconds);
    if (res->data_dirs.n && res->backup_data_dirs.n && !same_dirs(&res->data_dirs, &res->backup_data_dirs))
        fprintf(out, "into the node's own data directory %s%s (the backed-up node kept its data in %s%s: "
                     "information only)\n", res->data_dirs.items[0], res->data_dirs.n > 1 ? " and more" : "",
                res->backup_data_dirs.items[0], res->backup_data_dirs.n > 1 ? " and more" : "");
    for (size_t i = 0; i < res->moved_aside.n; i++)
        fprintf(out, "previous files kept in %s\n", res->moved_aside.items[i]);
    for (size_t i = 0; i < res->n_failed; i++)
        fprintf(out, "NOT restored: %s: %s\n", res->failed[i].table, res->failed[i].reason);
    if (!strcmp(res->mode, "replace"))
        fprintf(out, "the node is ready to start\n");
}

/* One line after the damage: which backups are damaged, and, when objects
 * are lost (missing or cut short), that the next backup stores those files
 * again (a backup reuses only objects it has seen in the repository). */
static void print_verify_hint(FILE *err, const cs_verify_result *res)
{
    cs_buf names = CS_BUF_INIT;
    cs_strlist seen = { NULL, 0 };
    bool lost = false;
    for (size_t i = 0; i < res->n_problems; i++) {
        const char *r = res->problems[i].reason;
        lost = lost || !strncmp(r, "object is missing", 17) || !strncmp(r, "object holds", 12);
        if (cs_strlist_has(&seen, res->problems[i].backup))
            continue;
        cs_strlist_add(&seen, res->problems[i].backup);
        cs_buf_printf(&names, "%s%s", names.len ? ", " : "", res->problems[i].backup);
    }
    cs_strlist_free(&seen);
    fprintf(err, "cassette: verify: damaged backups: %s%s\n", cs_buf_str(&names),
            lost ? "; the next backup of each node stores the lost files again (if the node still has them), "
                   "the damaged backups stay so"
                 : "");
    cs_buf_free(&names);
}

void cs_print_cleanup(FILE *out, const cs_cleanup_result *res, bool json)
{
    if (json) {
        print_json(out, json_pack("{s:b, s:o, s:o, s:I}", "dry_run", res->dry_run, "removed",
                                  aside_json(res->removed, res->n_removed), "kept",
                                  aside_json(res->kept, res->n_kept), "bytes", (json_int_t)res->bytes));
        return;
    }
    for (size_t i = 0; i < res->n_removed; i++)
        print_aside_line(out, res->dry_run ? "would remove" : "removed", &res->removed[i]);
    for (size_t i = 0; i < res->n_kept; i++)
        print_aside_line(out, "kept", &res->kept[i]);
    char size[32];
    cs_human_size(res->bytes, size, sizeof size);
    fprintf(out, "%s %zu directories left by restores (%s)\n", res->dry_run ? "would remove" : "removed",
            res->n_removed, size);
}

void cs_print_verify(FILE *out, FILE *err, const cs_verify_result *res, bool json)
{
    if (json) {
        json_t *problems = json_array();
        for (size_t i = 0; i < res->n_problems; i++)
            json_array_append_new(problems, json_pack("{s:s, s:o, s:o, s:s}", "backup", res->problems[i].backup,
                                                      "file", opt_json_string(res->problems[i].file), "object",
                                                      opt_json_string(res->problems[i].object), "reason",
                                                      res->problems[i].reason));
        json_t *j = json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:o}", "mode", res->deep ? "deep" : "fast",
                              "sample_pct", res->sample_pct ? res->sample_pct : 100.0, "backups",
                              (json_int_t)res->backups, "files", (json_int_t)res->files, "objects",
                              (json_int_t)res->objects, "bytes", (json_int_t)res->bytes, "problems", problems);
        json_object_set_new(j, "stored_bytes", json_integer((json_int_t)res->stored_bytes));
        json_object_set_new(j, "damaged_backups", json_integer((json_int_t)res->damaged_backups));
        print_json(out, j);
    }
    for (size_t i = 0; i < res->n_problems; i++) {
        const cs_verify_problem *p = &res->problems[i];
        if (!p->object)
            fprintf(err, "cassette: verify: backup %s: %s\n", p->backup, p->reason);
        else
            fprintf(err, "cassette: verify: backup %s: %s (object %s): %s\n", p->backup, p->file, p->object,
                    p->reason);
    }
    if (res->n_problems)
        print_verify_hint(err, res);
    if (!json && !res->n_problems) {
        char size[32];
        cs_human_size(res->deep || res->bytes ? res->bytes : res->stored_bytes, size, sizeof size);
        if (!res->deep && !res->bytes)
            snprintf(size + strlen(size), sizeof size - strlen(size), " stored");
        char sample[48] = "";
        if (res->sample_pct)
            snprintf(sample, sizeof sample, " (a %g%% sample)", res->sample_pct);
        fprintf(out, "verified %zu backups (%s): %llu files, %llu objects%s, %s; all good\n", res->backups,
                res->deep ? "read back whole" : "every object present with its size", (unsigned long long)res->files,
                (unsigned long long)res->objects, sample, size);
    }
}
