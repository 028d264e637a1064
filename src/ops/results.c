/* results.c - the results as JSON documents (see the header). */
#include "ops/results.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/fs.h"

/* ISO 8601 UTC, "" for no time. */
static json_t *iso_json(double t)
{
    char buf[21] = "";
    if (t > 0)
        cs_iso8601((int64_t)t, buf);
    return json_string(buf);
}

static json_t *opt_string(const char *s)
{
    return s ? json_string(s) : json_null();
}


/* ---- backups ---- */

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

json_t *cs_set_info_json(const cs_set_info *s)
{
    json_t *missing = json_array();
    for (size_t i = 0; i < s->n_missing; i++)
        json_array_append_new(missing, json_pack("{s:s, s:s, s:s}", "host_id", s->missing[i].host_id, "address",
                                                 s->missing[i].address, "reason", s->missing[i].reason));
    return json_pack("{s:s, s:s, s:I, s:I, s:b, s:o}", "id", s->id, "cluster", s->cluster, "expected",
                     (json_int_t)s->expected, "complete_hosts", (json_int_t)s->complete_hosts, "complete", s->complete,
                     "missing", missing);
}

json_t *cs_backup_entry_json(const cs_backup_entry *b)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:b}", "name", b->name,
                          "host_id", b->host_id, "address", b->address, "started", iso_json(b->started), "finished",
                          iso_json(b->finished), "duration_s",
                          b->complete ? json_real(b->finished - b->started) : json_null(), "files",
                          (json_int_t)b->files, "size", (json_int_t)b->size, "stored_size", (json_int_t)b->stored,
                          "new_files", new_json(b, b->files_new), "new_size", new_json(b, b->size_new), "new_stored",
                          new_json(b, b->stored_new), "dedup_ratio", dedup_json(b), "complete", b->complete);
    /* scope: "all", "partial" (names only when readable in the clear), or
     * null when the backup predates scopes (then counted as all). */
    json_object_set_new(j, "scope", opt_string(b->scope));
    json_object_set_new(j, "scope_names", names_json(b->scope_names));
    json_object_set_new(j, "scope_id", opt_string(b->scope_id));
    json_object_set_new(j, "damaged", json_boolean(b->damage != NULL));
    json_object_set_new(j, "damage", opt_string(b->damage));
    json_object_set_new(j, "set", b->set ? cs_set_info_json(b->set) : json_null());
    return j;
}

static json_t *entries_json(const cs_backup_entry *entries, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, cs_backup_entry_json(&entries[i]));
    return a;
}

json_t *cs_list_result_json(const cs_list_req *req, const cs_list_result *res)
{
    (void)req;
    return entries_json(res->entries, res->n);
}

json_t *cs_init_result_json(const cs_init_req *req, const cs_init_result *res)
{
    (void)req;
    return json_pack("{s:s, s:s}", "repository", res->location, "id", res->id);
}

json_t *cs_backup_result_json(const cs_backup_req *req, const cs_backup_result *res)
{
    (void)req;
    const cs_manifest *m = &res->manifest;
    cs_manifest_totals t;
    cs_manifest_totals_of(m, &t);
    json_t *new_files = json_array();
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++)
            if (m->tables[i].files[j].is_new) {
                char *name = cs_sprintf("%s/%s/%s", m->tables[i].keyspace, m->tables[i].table,
                                        m->tables[i].files[j].name);
                json_array_append_new(new_files, json_string(name));
                free(name);
            }
    json_t *doc = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:b}", "name", m->backup, "host_id",
                            m->host_id, "files", (json_int_t)t.files, "files_new", (json_int_t)t.files_new,
                            "files_unchanged", (json_int_t)(t.files - t.files_new), "bytes_read",
                            (json_int_t)res->bytes_read, "bytes_stored", (json_int_t)t.stored_new, "size",
                            (json_int_t)t.size, "seconds", res->seconds, "new_files", new_files, "complete", 1);
    json_object_set_new(doc, "encrypted", json_boolean(res->encrypted));
    /* Stored bytes an interrupted backup had sent already: not sent again. */
    json_object_set_new(doc, "bytes_resumed", json_integer((json_int_t)res->bytes_resumed));
    /* Bytes of the files stored by this backup (size - size_new: what dedup saved). */
    json_object_set_new(doc, "size_new", json_integer((json_int_t)t.size_new));
    return doc;
}

json_t *cs_delete_result_json(const cs_delete_req *req, const cs_delete_result *res)
{
    (void)req;
    json_t *items = json_array();
    for (size_t i = 0; i < res->n_items; i++) {
        const cs_delete_item *it = &res->items[i];
        json_t *j = cs_backup_entry_json(&it->entry);
        json_object_set_new(j, "objects_freed", res->freed_known ? json_integer((json_int_t)it->objects) : json_null());
        json_object_set_new(j, "stored_freed", res->freed_known ? json_integer((json_int_t)it->stored) : json_null());
        json_array_append_new(items, j);
    }
    json_t *doc = json_pack("{s:b, s:b, s:f, s:o}", "dry_run", res->dry_run, "forced", res->forced, "grace_s",
                            res->grace, "backups", items);
    json_object_set_new(doc, "name", json_string(req->backup));
    json_object_set_new(doc, "set", json_boolean(res->set));
    return doc;
}

json_t *cs_purge_result_json(const cs_purge_req *req, const cs_purge_result *res)
{
    (void)req;
    json_t *items = json_array();
    for (size_t i = 0; i < res->n_items; i++) {
        const cs_purge_item *it = &res->items[i];
        json_t *j = cs_backup_entry_json(&it->entry);
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
    json_object_set_new(root, "sets_removed", json_integer((json_int_t)res->removed_sets));
    json_object_set_new(root, "sweep_skipped", opt_string(res->sweep_skipped));
    return root;
}

/* ---- what restores left ---- */

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

json_t *cs_cleanup_result_json(const cs_cleanup_req *req, const cs_cleanup_result *res)
{
    (void)req;
    return json_pack("{s:b, s:o, s:o, s:I}", "dry_run", res->dry_run, "removed", aside_json(res->removed, res->n_removed),
                     "kept", aside_json(res->kept, res->n_kept), "bytes", (json_int_t)res->bytes);
}

json_t *cs_status_result_json(const cs_status_req *req, const cs_status_result *res)
{
    (void)req;
    json_t *nodes = json_array(), *locks = json_array();
    for (size_t i = 0; i < res->n_nodes; i++) {
        const cs_status_node *n = &res->nodes[i];
        json_t *node = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o}", "host_id", n->host_id, "address", n->address,
                                 "complete", (json_int_t)n->complete, "incomplete", (json_int_t)n->incomplete,
                                 "newest", n->newest ? cs_backup_entry_json(n->newest) : json_null(), "oldest",
                                 n->oldest ? cs_backup_entry_json(n->oldest) : json_null());
        json_object_set_new(node, "damaged", json_integer((json_int_t)n->damaged));
        /* Seconds since the newest complete backup started: what max_age compares. */
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
            json_array_append_new(damaged, cs_backup_entry_json(&res->entries[i]));
    /* Each set once (oldest first), with its state. */
    json_t *sets = json_array();
    size_t placeholders = 0;
    for (size_t i = 0; i < res->n_entries; i++) {
        const cs_backup_entry *b = &res->entries[i];
        placeholders += !*b->host_id;
        bool first = b->set != NULL;
        for (size_t k = 0; first && k < i; k++)
            first = strcmp(res->entries[k].name, b->name) != 0;
        if (first)
            json_array_append_new(sets, json_pack("{s:s, s:o, s:o}", "name", b->name, "started",
                                                  iso_json(b->started), "set", cs_set_info_json(b->set)));
    }
    json_t *j = json_pack("{s:s, s:s, s:b, s:I, s:I, s:o, s:o}", "repository", res->location, "id", res->id,
                          "encrypted", res->encrypted, "backups", (json_int_t)(res->n_entries - placeholders),
                          "stored_new",
                          (json_int_t)res->stored_new, "nodes", nodes, "locks", locks);
    json_object_set_new(j, "damaged", damaged);
    json_object_set_new(j, "sets", sets);
    json_object_set_new(j, "aside", aside_json(res->aside, res->n_aside));
    return j;
}

/* ---- restore, verify ---- */

json_t *cs_restore_result_json(const cs_restore_req *req, const cs_restore_result *res)
{
    json_t *failed = json_array();
    for (size_t i = 0; i < res->n_failed; i++)
        json_array_append_new(failed,
                              json_pack("{s:s, s:s}", "table", res->failed[i].table, "reason", res->failed[i].reason));
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:o}", "backup", req->backup, "mode", res->mode, "tables",
                          (json_int_t)res->tables, "files", (json_int_t)res->files, "bytes", (json_int_t)res->bytes,
                          "seconds", res->seconds, "moved_aside", cs_strlist_json(&res->moved_aside));
    json_object_set_new(j, "data_dirs", cs_strlist_json(&res->data_dirs));
    json_object_set_new(j, "backup_data_dirs", cs_strlist_json(&res->backup_data_dirs));
    json_object_set_new(j, "not_restored", failed);
    json_object_set_new(j, "complete", json_boolean(res->n_failed == 0));
    if (req->keyspace_map.n) { /* where each table went, and what was not made there */
        json_t *into = json_array();
        for (size_t i = 0; i < res->restored.n && i < res->restored_into.n; i++) {
            const char *dst = res->restored_into.items[i];
            json_array_append_new(into, json_pack("{s:s, s:s%, s:s}", "table", res->restored.items[i], "keyspace",
                                                  dst, strcspn(dst, "."), "into", dst));
        }
        json_object_set_new(j, "keyspace_map", cs_strlist_json(&req->keyspace_map));
        json_object_set_new(j, "restored_into", into);
        json_object_set_new(j, "not_created", cs_strlist_json(&res->not_created));
    }
    return j;
}

json_t *cs_drill_result_json(const cs_drill_req *req, const cs_drill_result *res)
{
    (void)req;
    json_t *tables = res->tables ? json_incref(res->tables) : json_array();
    return json_pack("{s:o, s:s, s:o, s:f, s:f, s:o, s:b}", "backup", opt_string(res->backup), "drill_id",
                     res->drill_id, "tables", tables, "rto_seconds",
                     res->rto_seconds, "seconds", res->seconds, "scratch_keyspaces",
                     cs_strlist_json(&res->scratch_keyspaces), "kept", res->kept);
}

/* Per table the loader's outcome: loaded, or the reason it was not. */
json_t *cs_load_result_json(const cs_load_req *req, const cs_load_result *res)
{
    json_t *tables = json_array();
    for (size_t i = 0; i < res->n_tables; i++) {
        const cs_load_table *t = &res->per_table[i];
        json_array_append_new(tables, json_pack("{s:s, s:b, s:I, s:I, s:f, s:o}", "table", t->table, "loaded",
                                                t->loaded, "files", (json_int_t)t->files, "bytes",
                                                (json_int_t)t->bytes, "seconds", t->seconds, "reason",
                                                opt_string(t->reason)));
    }
    return json_pack("{s:s, s:o, s:o, s:I, s:I, s:I, s:f, s:o, s:b}", "backup", req->backup, "source_host",
                     opt_string(res->source_host), "targets", cs_strlist_json(&res->targets), "tables",
                     (json_int_t)res->tables, "files", (json_int_t)res->files, "bytes", (json_int_t)res->bytes,
                     "seconds", res->seconds, "per_table", tables, "complete", res->tables == res->n_tables);
}

json_t *cs_verify_result_json(const cs_verify_req *req, const cs_verify_result *res)
{
    (void)req;
    json_t *problems = json_array();
    for (size_t i = 0; i < res->n_problems; i++)
        json_array_append_new(problems,
                              json_pack("{s:s, s:o, s:o, s:s}", "backup", res->problems[i].backup, "file",
                                        opt_string(res->problems[i].file), "object",
                                        opt_string(res->problems[i].object), "reason", res->problems[i].reason));
    json_t *j = json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:o}", "mode", res->deep ? "deep" : "fast", "sample_pct",
                          res->sample_pct ? res->sample_pct : 100.0, "backups", (json_int_t)res->backups, "files",
                          (json_int_t)res->files, "objects", (json_int_t)res->objects, "bytes",
                          (json_int_t)res->bytes, "problems", problems);
    json_object_set_new(j, "stored_bytes", json_integer((json_int_t)res->stored_bytes));
    json_object_set_new(j, "damaged_backups", json_integer((json_int_t)res->damaged_backups));
    json_t *sets = json_array();
    for (size_t i = 0; i < res->n_sets; i++) {
        size_t found = 0;
        for (size_t k = 0; k < res->n_problems; k++)
            found += !strcmp(res->problems[k].backup, res->sets[i].name);
        json_array_append_new(sets, json_pack("{s:s, s:o, s:I}", "name", res->sets[i].name, "set",
                                              cs_set_info_json(res->sets[i].set), "problems", (json_int_t)found));
    }
    json_object_set_new(j, "sets", sets);
    return j;
}

/* ---- migrate, schema, keys ---- */

json_t *cs_migrate_result_json(const cs_migrate_req *req, const cs_migrate_result *res)
{
    (void)req;
    json_t *a = json_array(), *unknown = json_array();
    for (size_t i = 0; i < res->n; i++) {
        const cs_migration *m = &res->items[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:b, s:o, s:I}", "version", m->version,
                                           "name", m->name, "file", m->file, "checksum", m->checksum, "statements",
                                           (json_int_t)m->n_stmts, "applied", m->applied, "applied_now",
                                           m->applied_now, "changed", m->changed, "applied_at",
                                           iso_json((double)m->applied_at_ms / 1000.0), "duration_ms",
                                           (json_int_t)m->duration_ms));
    }
    for (size_t i = 0; i < res->unknown.n; i++)
        json_array_append_new(unknown, json_string(res->unknown.items[i]));
    return json_pack("{s:b, s:I, s:o, s:o}", "dry_run", res->dry_run, "applied_now", (json_int_t)res->applied_now,
                     "migrations", a, "applied_without_file", unknown);
}

json_t *cs_schema_result_json(const cs_schema_req *req, const cs_schema_result *res)
{
    (void)req;
    return json_pack("{s:s}", "schema", cs_buf_str(&res->text));
}

json_t *cs_key_result_json(const cs_key_generate_req *req, const cs_key_result *res)
{
    (void)req;
    return json_pack("{s:s, s:o}", "public_key", cs_buf_str(&res->public_key), "file",
                     opt_string(res->file));
}

json_t *cs_key_public_result_json(const cs_key_public_req *req, const cs_key_public_result *res)
{
    (void)req;
    return json_pack("{s:o}", "public_keys", cs_strlist_json(&res->keys));
}

/* ---- snapshots ---- */

/* Times as epoch seconds (ms): a coordinator lines up the nodes' snapshots. */
json_t *cs_snapshot_result_json(const cs_snapshot_req *req, const cs_snapshot_result *res)
{
    (void)req;
    return json_pack("{s:o, s:o, s:o, s:f, s:f}", "tag", opt_string(res->tag), "host_id", opt_string(res->host_id),
                     "address", opt_string(res->address), "started", res->started, "finished", res->finished);
}

/* With a tag: that tag and whether it was there; with older_than: the
 * tags cleared and the younger ones kept. */
json_t *cs_snapshot_clear_result_json(const cs_snapshot_req *req, const cs_snapshot_result *res)
{
    if (!req->tag)
        return json_pack("{s:o, s:o, s:f, s:s, s:o, s:o}", "host_id", opt_string(res->host_id), "address",
                         opt_string(res->address), "older_than", req->older_than, "prefix",
                         req->prefix ? req->prefix : "", "cleared_tags", cs_strlist_json(&res->cleared_tags),
                         "kept_tags", cs_strlist_json(&res->kept_tags));
    return json_pack("{s:o, s:o, s:b}", "tag", opt_string(res->tag), "host_id", opt_string(res->host_id), "cleared",
                     res->cleared);
}
