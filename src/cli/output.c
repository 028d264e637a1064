#include "cli/output.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/fs.h"

void cs_human_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, cap, "%.1f %s", v, units[u]);
}

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
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:b}", "name", m->backup,
                                  "host_id", m->host_id, "files", (json_int_t)t.files, "files_new",
                                  (json_int_t)t.files_new, "files_unchanged", (json_int_t)(t.files - t.files_new),
                                  "bytes_read", (json_int_t)res->bytes_read, "bytes_stored",
                                  (json_int_t)t.stored_new, "size", (json_int_t)t.size, "seconds", res->seconds,
                                  "new_files", new_files, "complete", 1);
        /* Stored bytes an interrupted backup had sent already: not sent again. */
        json_object_set_new(o, "bytes_resumed", json_integer((json_int_t)res->bytes_resumed));
        print_json(out, o);
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

static json_t *entry_json(const cs_backup_entry *b)
{
    char *started = iso(b->started), *finished = iso(b->finished);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:b}", "name", b->name,
                          "host_id", b->host_id, "address", b->address, "started", started, "finished", finished,
                          "duration_s", b->complete ? json_real(b->finished - b->started) : json_null(), "files",
                          (json_int_t)b->files, "size", (json_int_t)b->size, "stored_size", (json_int_t)b->stored,
                          "new_files", new_json(b, b->files_new), "new_size", new_json(b, b->size_new), "new_stored",
                          new_json(b, b->stored_new), "dedup_ratio", dedup_json(b), "complete", b->complete);
    free(started);
    free(finished);
    return j;
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
    fprintf(out, "%-24s %-15s %-20s %8s %8s %10s %10s %10s %7s  %s\n", "NAME", "NODE", "STARTED", "DURATION",
            "FILES", "SIZE", "STORED", "NEW", "DEDUP", "STATE");
    for (size_t i = 0; i < n; i++) {
        const cs_backup_entry *b = &entries[i];
        char *started = iso(b->started);
        char size[32], stored[32], added[32] = "-", dedup[16] = "-", duration[24] = "-";
        cs_human_size(b->size, size, sizeof size);
        cs_human_size(b->stored, stored, sizeof stored);
        if (b->has_new)
            cs_human_size(b->stored_new, added, sizeof added);
        if (b->has_new && b->size_new)
            snprintf(dedup, sizeof dedup, "%.1fx", (double)b->size / (double)b->size_new);
        if (b->complete)
            snprintf(duration, sizeof duration, "%.1fs", b->finished - b->started);
        fprintf(out, "%-24s %-15s %-20s %8s %8llu %10s %10s %10s %7s  %s\n", b->name, b->address, started, duration,
                (unsigned long long)b->files, size, stored, added, dedup, b->complete ? "complete" : "INCOMPLETE");
        free(started);
    }
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
        print_json(out, json_pack("{s:b, s:I, s:I, s:I, s:I, s:f, s:o}", "dry_run", res->dry_run, "removed",
                                  (json_int_t)res->removed, "removed_incomplete", (json_int_t)res->removed_incomplete,
                                  "objects_deleted", (json_int_t)res->objects, "bytes_deleted", (json_int_t)res->bytes,
                                  "seconds", res->seconds, "backups", items));
        return;
    }
    for (size_t i = 0; i < res->n_items; i++) {
        const cs_purge_item *it = &res->items[i];
        if (!it->remove && !res->dry_run)
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
}

void cs_print_status(FILE *out, const cs_status_result *res, bool json)
{
    if (json) {
        json_t *nodes = json_array(), *locks = json_array();
        for (size_t i = 0; i < res->n_nodes; i++) {
            const cs_status_node *n = &res->nodes[i];
            json_array_append_new(nodes, json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "host_id", n->host_id,
                                                   "address", n->address, "complete", (json_int_t)n->complete,
                                                   "incomplete", (json_int_t)n->incomplete, "newest",
                                                   n->newest ? entry_json(n->newest) : json_null(), "oldest",
                                                   n->oldest ? entry_json(n->oldest) : json_null()));
        }
        for (size_t i = 0; i < res->locks.n; i++)
            json_array_append_new(locks, json_string(res->locks.items[i]));
        print_json(out, json_pack("{s:s, s:s, s:b, s:I, s:I, s:o, s:o}", "repository", res->location, "id", res->id,
                                  "encrypted", res->encrypted, "backups", (json_int_t)res->n_entries, "stored_new",
                                  (json_int_t)res->stored_new, "nodes", nodes, "locks", locks));
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
        fprintf(out, "node %s (%s): %zu complete, %zu incomplete; newest %s %s, oldest %s\n", n->address, n->host_id,
                n->complete, n->incomplete, n->newest ? n->newest->name : "-", newest, oldest);
        free(newest);
        free(oldest);
    }
    for (size_t i = 0; i < res->locks.n; i++)
        fprintf(out, "lock: %s\n", res->locks.items[i]);
    if (!res->locks.n)
        fprintf(out, "no locks held\n");
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

void cs_print_restore(FILE *out, const char *backup, const cs_restore_result *res, bool json)
{
    if (json) {
        json_t *aside = json_array();
        for (size_t i = 0; i < res->moved_aside.n; i++)
            json_array_append_new(aside, json_string(res->moved_aside.items[i]));
        print_json(out, json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:o}", "backup", backup, "mode", res->mode,
                                  "tables", (json_int_t)res->tables, "files", (json_int_t)res->files, "bytes",
                                  (json_int_t)res->bytes, "seconds", res->seconds, "moved_aside", aside));
        return;
    }
    char size[32];
    cs_human_size(res->bytes, size, sizeof size);
    fprintf(out, "restored %s (%s): %zu tables, %llu files, %s; %.1f s\n", backup, res->mode, res->tables,
            (unsigned long long)res->files, size, res->seconds);
    for (size_t i = 0; i < res->moved_aside.n; i++)
        fprintf(out, "previous files kept in %s\n", res->moved_aside.items[i]);
    if (!strcmp(res->mode, "replace"))
        fprintf(out, "the node is ready to start\n");
}

void cs_print_verify(FILE *out, FILE *err, const cs_verify_result *res, bool json)
{
    if (json) {
        json_t *problems = json_array();
        for (size_t i = 0; i < res->n_problems; i++)
            json_array_append_new(problems, json_pack("{s:s, s:s, s:s, s:s}", "backup", res->problems[i].backup,
                                                      "file", res->problems[i].file, "object",
                                                      res->problems[i].object, "reason", res->problems[i].reason));
        print_json(out, json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:o}", "mode", res->deep ? "deep" : "fast",
                                  "sample_pct", res->sample_pct ? res->sample_pct : 100.0, "backups",
                                  (json_int_t)res->backups, "files", (json_int_t)res->files, "objects",
                                  (json_int_t)res->objects, "bytes", (json_int_t)res->bytes, "problems", problems));
    }
    for (size_t i = 0; i < res->n_problems; i++)
        fprintf(err, "cassette: verify: backup %s: %s (object %s): %s\n", res->problems[i].backup,
                res->problems[i].file, res->problems[i].object, res->problems[i].reason);
    if (!json && !res->n_problems) {
        char size[32];
        cs_human_size(res->bytes, size, sizeof size);
        char sample[48] = "";
        if (res->sample_pct)
            snprintf(sample, sizeof sample, " (a %g%% sample)", res->sample_pct);
        fprintf(out, "verified %zu backups (%s): %llu files, %llu objects%s, %s; all good\n", res->backups,
                res->deep ? "read back whole" : "every object present with its size", (unsigned long long)res->files,
                (unsigned long long)res->objects, sample, size);
    }
}
