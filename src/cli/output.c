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
        print_json(out, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:b}", "name", m->backup,
                                  "host_id", m->host_id, "files", (json_int_t)t.files, "files_new",
                                  (json_int_t)t.files_new, "files_unchanged", (json_int_t)(t.files - t.files_new),
                                  "bytes_read", (json_int_t)res->bytes_read, "bytes_stored",
                                  (json_int_t)t.stored_new, "size", (json_int_t)t.size, "seconds", res->seconds,
                                  "new_files", new_files, "complete", 1));
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

void cs_print_list(FILE *out, const cs_backup_entry *entries, size_t n, bool json)
{
    if (json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++) {
            const cs_backup_entry *b = &entries[i];
            char *started = iso(b->started), *finished = iso(b->finished);
            json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b}", "name", b->name,
                                               "host_id", b->host_id, "address", b->address, "started", started,
                                               "finished", finished, "files", (json_int_t)b->files, "size",
                                               (json_int_t)b->size, "stored_size", (json_int_t)b->stored,
                                               "complete", b->complete));
            free(started);
            free(finished);
        }
        print_json(out, a);
        return;
    }
    if (n == 0) {
        fprintf(out, "no backups\n");
        return;
    }
    fprintf(out, "%-24s %-15s %-20s %-20s %8s %10s %10s  %s\n", "NAME", "NODE", "STARTED", "FINISHED", "FILES",
            "SIZE", "STORED", "STATE");
    for (size_t i = 0; i < n; i++) {
        const cs_backup_entry *b = &entries[i];
        char *started = iso(b->started), *finished = iso(b->finished);
        char size[32], stored[32];
        cs_human_size(b->size, size, sizeof size);
        cs_human_size(b->stored, stored, sizeof stored);
        fprintf(out, "%-24s %-15s %-20s %-20s %8llu %10s %10s  %s\n", b->name, b->address, started,
                b->complete ? finished : "-", (unsigned long long)b->files, size, stored,
                b->complete ? "complete" : "INCOMPLETE");
        free(started);
        free(finished);
    }
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
        print_json(out, json_pack("{s:I, s:I, s:I, s:I, s:o}", "backups", (json_int_t)res->backups, "files",
                                  (json_int_t)res->files, "objects", (json_int_t)res->objects, "bytes",
                                  (json_int_t)res->bytes, "problems", problems));
    }
    for (size_t i = 0; i < res->n_problems; i++)
        fprintf(err, "cassette: verify: backup %s: %s (object %s): %s\n", res->problems[i].backup,
                res->problems[i].file, res->problems[i].object, res->problems[i].reason);
    if (!json && !res->n_problems) {
        char size[32];
        cs_human_size(res->bytes, size, sizeof size);
        fprintf(out, "verified %zu backups: %llu files, %llu objects, %s; all good\n", res->backups,
                (unsigned long long)res->files, (unsigned long long)res->objects, size);
    }
}
