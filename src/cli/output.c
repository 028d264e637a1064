/* output.c - results as text and JSON (see the header). Every text
 * formatter reads the result's JSON document only. */
#include "cli/output.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/strlist.h"
#include "common/units.h"
#include "crypto/age.h"
#include "ops/ops.h"

/* ---- reading the document ---- */

static const char *js(const json_t *o, const char *key) /* NULL for null or missing */
{
    return json_string_value(json_object_get(o, key));
}

static const char *js0(const json_t *o, const char *key) /* "" for null or missing */
{
    const char *s = js(o, key);
    return s ? s : "";
}

static unsigned long long ju(const json_t *o, const char *key)
{
    return (unsigned long long)json_integer_value(json_object_get(o, key));
}

static size_t jz(const json_t *o, const char *key)
{
    return (size_t)json_integer_value(json_object_get(o, key));
}

static double jd(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

static bool jb(const json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key));
}

static bool jnull(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return !v || json_is_null(v);
}

static void human_size(const json_t *o, const char *key, char *buf, size_t cap)
{
    cs_human_size((uint64_t)ju(o, key), buf, cap);
}

static void print_json(FILE *out, const json_t *j)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    if (text) {
        fprintf(out, "%s\n", text);
        free(text);
    }
}

/* The node of a backup entry as messages name it: its address, else its host id. */
static const char *node_of(const json_t *b)
{
    return *js0(b, "address") ? js0(b, "address") : js0(b, "host_id");
}

/* What the formatters get. */
typedef struct fmt_ctx {
    FILE *out, *err;
    const cs_op_def *op;
    const void *req, *res;
    const json_t *doc;
    bool json;
} fmt_ctx;

/* ---- init, backup ---- */

static void fmt_init(const fmt_ctx *c)
{
    fprintf(c->out, "initialised repository %s (id %s)\n", js0(c->doc, "repository"), js0(c->doc, "id"));
}

static void fmt_backup(const fmt_ctx *c)
{
    const json_t *d = c->doc;
    char read[32], stored[32], size[32];
    human_size(d, "bytes_read", read, sizeof read);
    human_size(d, "bytes_stored", stored, sizeof stored);
    human_size(d, "size", size, sizeof size);
    fprintf(c->out,
            "backup %s complete: %llu files (%llu new, %llu unchanged), %s in total; read %s, stored %s; %.1f s\n",
            js0(d, "name"), ju(d, "files"), ju(d, "files_new"), ju(d, "files_unchanged"), size, read, stored,
            jd(d, "seconds"));
    if (!jb(d, "encrypted"))
        fprintf(c->out, "the repository is not encrypted: these files are stored in plaintext\n");
}

/* ---- list ---- */

/* What the SCOPE column shows. */
static void scope_text(const json_t *b, char *out, size_t cap)
{
    const char *scope = js(b, "scope");
    const json_t *names = json_object_get(b, "scope_names");
    if (!scope) {
        snprintf(out, cap, "-");
    } else if (strcmp(scope, "partial")) {
        snprintf(out, cap, "all");
    } else if (json_is_array(names)) {
        cs_buf joined = CS_BUF_INIT;
        size_t i;
        const json_t *name;
        json_array_foreach(names, i, name)
            cs_buf_printf(&joined, "%s%s", i ? "," : "", json_string_value(name));
        const char *s = cs_buf_str(&joined);
        snprintf(out, cap, "%.*s%s", (int)(cap > 4 ? cap - 4 : 0), s, strlen(s) > cap - 4 ? "..." : "");
        cs_buf_free(&joined);
    } else {
        snprintf(out, cap, "partial:%.8s", js0(b, "scope_id"));
    }
}

static const char *state_text(const json_t *b)
{
    return jb(b, "damaged") ? "DAMAGED" : jb(b, "complete") ? "complete" : "INCOMPLETE";
}

/* "damaged: backup NAME of node ADDR: why", for each damaged entry of a. */
static void print_damaged(FILE *out, const json_t *a)
{
    size_t i;
    const json_t *b;
    json_array_foreach(a, i, b)
        if (jb(b, "damaged"))
            fprintf(out, "damaged: backup %s of node %s: %s\n", js0(b, "name"), node_of(b), js0(b, "damage"));
}

/* A set's STATE: "complete 3/3", or "incomplete 2/3 (node ADDR: why; ...)". */
static void set_state_text(const json_t *set, cs_buf *out)
{
    const json_t *missing = json_object_get(set, "missing");
    cs_buf_printf(out, "%s %zu/%zu", jb(set, "complete") ? "complete" : "incomplete", jz(set, "complete_hosts"),
                  jz(set, "expected"));
    size_t i;
    const json_t *m;
    json_array_foreach(missing, i, m)
        cs_buf_printf(out, "%snode %s: %s%s", i ? "; " : " (", *js0(m, "address") ? js0(m, "address") : js0(m, "host_id"),
                      js0(m, "reason"), i + 1 == json_array_size(missing) ? ")" : "");
}

/* One row of the list: a node backup, or a set (its nodes' totals, the
 * cluster in the NODE column) at the first entry of its name. */
static void list_row(FILE *out, const json_t *doc, size_t at, const json_t *b)
{
    const json_t *set = json_object_get(b, "set");
    char size[32], stored[32], added[32] = "-", dedup[16] = "-", duration[24] = "-", scope[20];
    uint64_t files = ju(b, "files"), sz = ju(b, "size"), st = ju(b, "stored_size"), nsz = ju(b, "new_size"),
             nst = ju(b, "new_stored");
    bool has_new = !jnull(b, "new_stored");
    double dur = jnull(b, "duration_s") ? -1 : jd(b, "duration_s");
    cs_buf state = CS_BUF_INIT;
    if (json_is_object(set)) {
        files = sz = st = nsz = nst = 0;
        has_new = true;
        size_t i;
        const json_t *o;
        json_array_foreach(doc, i, o) {
            if (i < at || strcmp(js0(o, "name"), js0(b, "name")))
                continue;
            files += ju(o, "files");
            sz += ju(o, "size");
            st += ju(o, "stored_size");
            nsz += ju(o, "new_size");
            nst += ju(o, "new_stored");
            has_new &= !jnull(o, "new_stored");
            if (!jnull(o, "duration_s") && jd(o, "duration_s") > dur)
                dur = jd(o, "duration_s");
        }
        set_state_text(set, &state);
    } else {
        cs_buf_addstr(&state, state_text(b));
    }
    cs_human_size(sz, size, sizeof size);
    cs_human_size(st, stored, sizeof stored);
    scope_text(b, scope, sizeof scope);
    if (has_new)
        cs_human_size(nst, added, sizeof added);
    if (has_new && nsz)
        snprintf(dedup, sizeof dedup, "%.1fx", (double)sz / (double)nsz);
    if (dur >= 0)
        snprintf(duration, sizeof duration, "%.1fs", dur);
    fprintf(out, "%-24s %-15s %-20s %-16s %8s %8llu %10s %10s %10s %7s  %s\n", js0(b, "name"),
            json_is_object(set) ? js0(set, "cluster") : js0(b, "address"), js0(b, "started"), scope, duration,
            (unsigned long long)files, size, stored, added, dedup, cs_buf_str(&state));
    cs_buf_free(&state);
}

static void fmt_list(const fmt_ctx *c)
{
    FILE *out = c->out;
    if (!json_array_size(c->doc)) {
        fprintf(out, "no backups\n");
        return;
    }
    fprintf(out, "%-24s %-15s %-20s %-16s %8s %8s %10s %10s %10s %7s  %s\n", "NAME", "NODE", "STARTED", "SCOPE",
            "DURATION", "FILES", "SIZE", "STORED", "NEW", "DEDUP", "STATE");
    size_t i;
    const json_t *b;
    cs_strlist sets_seen = { NULL, 0 };
    json_array_foreach(c->doc, i, b) {
        if (json_is_object(json_object_get(b, "set"))) {
            if (cs_strlist_has(&sets_seen, js0(b, "name")))
                continue; /* each set once */
            cs_strlist_add(&sets_seen, js0(b, "name"));
        }
        list_row(out, c->doc, i, b);
    }
    cs_strlist_free(&sets_seen);
    print_damaged(out, c->doc);
}

static void fmt_catalog_rebuild(const fmt_ctx *c)
{
    fprintf(c->out, "catalog rebuilt: %zu backups\n", json_array_size(c->doc));
}

/* ---- delete, purge ---- */

static void fmt_delete(const fmt_ctx *c)
{
    const json_t *d = c->doc, *items = json_object_get(d, "backups");
    bool dry_run = jb(d, "dry_run"), freed_known = false;
    unsigned long long objects = 0, stored = 0;
    size_t i;
    const json_t *it;
    json_array_foreach(items, i, it) {
        fprintf(c->out, "%s backup %s of node %s (%s, started %s)\n", dry_run ? "would delete" : "deleted",
                js0(it, "name"), node_of(it), jb(it, "damaged") ? "damaged" : jb(it, "complete") ? "complete" : "incomplete",
                js0(it, "started"));
        freed_known = !jnull(it, "objects_freed");
        objects += ju(it, "objects_freed");
        stored += ju(it, "stored_freed");
    }
    if (jb(d, "set"))
        fprintf(c->out, "%s backup set %s whole (its record, commit and cluster manifest)\n",
                dry_run ? "would delete" : "deleted", js0(d, "name"));
    char grace[24], bytes[32];
    cs_format_duration(jd(d, "grace_s"), grace);
    cs_human_size((uint64_t)stored, bytes, sizeof bytes);
    if (freed_known)
        fprintf(c->out, "%llu objects (%s) that no other backup uses %s deleted by the next purge once older than "
                        "the grace period (%s)\n",
                objects, bytes, dry_run ? "would be" : "will be", grace);
    else
        fprintf(c->out, "objects that no other backup uses %s deleted by the next purge once older than the grace "
                        "period (%s)\n",
                dry_run ? "would be" : "will be", grace);
}

static void fmt_purge(const fmt_ctx *c)
{
    FILE *out = c->out;
    const json_t *d = c->doc;
    bool dry_run = jb(d, "dry_run");
    size_t i;
    const json_t *it;
    json_array_foreach(json_object_get(d, "backups"), i, it) {
        if (!jb(it, "remove") && !dry_run && !jb(it, "damaged"))
            continue;
        fprintf(out, "%-6s %-24s %-15s %-20s %s\n", jb(it, "remove") ? "remove" : "keep", js0(it, "name"),
                js0(it, "address"), js0(it, "started"), js0(it, "reason"));
    }
    char bytes[32];
    human_size(d, "bytes_deleted", bytes, sizeof bytes);
    fprintf(out, "%s %zu backups and %zu incomplete ones; %s %llu unreferenced objects (%s); %.1f s\n",
            dry_run ? "would remove" : "removed", jz(d, "removed"), jz(d, "removed_incomplete"),
            dry_run ? "would delete" : "deleted", ju(d, "objects_deleted"), bytes, jd(d, "seconds"));
    if (ju(d, "sets_removed"))
        fprintf(out, "%s %zu backup sets whole\n", dry_run ? "would remove" : "removed", jz(d, "sets_removed"));
    if (ju(d, "objects_waiting")) {
        human_size(d, "bytes_waiting", bytes, sizeof bytes);
        fprintf(out, "%llu unreferenced objects (%s) wait for the grace period (--grace) or an incomplete backup; "
                     "a later purge deletes them\n",
                ju(d, "objects_waiting"), bytes);
    }
    if (ju(d, "leftovers_deleted"))
        fprintf(out, "%s %zu files left by an interrupted removal\n", dry_run ? "would delete" : "deleted",
                jz(d, "leftovers_deleted"));
    if (ju(d, "damaged"))
        fprintf(out, "kept %zu damaged backups (cassette verify names the damage; cassette delete --backup NAME "
                     "removes one)\n",
                jz(d, "damaged"));
    if (js(d, "sweep_skipped"))
        fprintf(out, "no object deleted: %s\n", js(d, "sweep_skipped"));
}

/* ---- what restores left: status, cleanup ---- */

/* "/x (moved aside by a replace restore; 1.2 GiB, 3.0 h old)" */
static void print_aside_line(FILE *out, const char *verb, const json_t *a)
{
    char size[32], age[32];
    human_size(a, "bytes", size, sizeof size);
    cs_human_duration(jd(a, "age_s"), age, sizeof age);
    bool staging = !strcmp(js0(a, "kind"), "staging");
    fprintf(out, "%s %s (%s; %s, %s old)\n", verb, js0(a, "path"),
            jb(a, "in_use") ? "its restore is running"
            : staging       ? "copies left by an interrupted restore"
                            : "moved aside by a replace restore",
            size, age);
}

static void print_aside_status(FILE *out, const json_t *aside)
{
    uint64_t bytes = 0;
    size_t i;
    const json_t *a;
    json_array_foreach(aside, i, a) {
        print_aside_line(out, "aside:", a);
        bytes += (uint64_t)ju(a, "bytes");
    }
    if (json_array_size(aside)) {
        char size[32];
        cs_human_size(bytes, size, sizeof size);
        fprintf(out, "%zu directories left by restores hold %s; once the restore is trusted, "
                     "cassette cleanup --aside removes them\n",
                json_array_size(aside), size);
    }
}

static void fmt_status(const fmt_ctx *c)
{
    FILE *out = c->out;
    const json_t *d = c->doc, *nodes = json_object_get(d, "nodes"), *locks = json_object_get(d, "locks");
    char stored[32];
    human_size(d, "stored_new", stored, sizeof stored);
    fprintf(out, "repository %s (id %s, %s)\n%zu backups of %zu nodes; the backups hold %s of new data\n",
            js0(d, "repository"), js0(d, "id"), jb(d, "encrypted") ? "encrypted" : "not encrypted", jz(d, "backups"),
            json_array_size(nodes), stored);
    size_t i;
    const json_t *n;
    json_array_foreach(nodes, i, n) {
        const json_t *newest = json_object_get(n, "newest"), *oldest = json_object_get(n, "oldest");
        bool has_newest = json_is_object(newest), has_oldest = json_is_object(oldest);
        char age[48] = "";
        if (has_newest) {
            char dur[32];
            cs_human_duration(jd(n, "newest_age_seconds"), dur, sizeof dur);
            snprintf(age, sizeof age, " (%s ago)", dur);
        }
        char damaged[32] = "";
        if (ju(n, "damaged"))
            snprintf(damaged, sizeof damaged, ", %zu DAMAGED", jz(n, "damaged"));
        fprintf(out, "node %s (%s): %zu complete, %zu incomplete%s; newest %s %s%s, oldest %s\n", js0(n, "address"),
                js0(n, "host_id"), jz(n, "complete"), jz(n, "incomplete"), damaged,
                has_newest ? js0(newest, "name") : "-", has_newest ? js0(newest, "started") : "none", age,
                has_oldest ? js0(oldest, "started") : "none");
    }
    const json_t *set;
    json_array_foreach(json_object_get(d, "sets"), i, set) {
        cs_buf state = CS_BUF_INIT;
        const json_t *info = json_object_get(set, "set");
        set_state_text(info, &state);
        fprintf(out, "set %s (cluster %s, started %s): %s\n", js0(set, "name"), js0(info, "cluster"),
                js0(set, "started"), cs_buf_str(&state));
        cs_buf_free(&state);
    }
    print_damaged(out, json_object_get(d, "damaged"));
    const json_t *l;
    json_array_foreach(locks, i, l)
        fprintf(out, "lock: %s\n", json_string_value(l));
    if (!json_array_size(locks))
        fprintf(out, "no locks held\n");
    print_aside_status(out, json_object_get(d, "aside"));
}

static void fmt_cleanup(const fmt_ctx *c)
{
    const json_t *d = c->doc;
    bool dry_run = jb(d, "dry_run");
    size_t i;
    const json_t *a;
    json_array_foreach(json_object_get(d, "removed"), i, a)
        print_aside_line(c->out, dry_run ? "would remove" : "removed", a);
    json_array_foreach(json_object_get(d, "kept"), i, a)
        print_aside_line(c->out, "kept", a);
    char size[32];
    human_size(d, "bytes", size, sizeof size);
    fprintf(c->out, "%s %zu directories left by restores (%s)\n", dry_run ? "would remove" : "removed",
            json_array_size(json_object_get(d, "removed")), size);
}

/* ---- snapshots ---- */

static void fmt_snapshot(const fmt_ctx *c)
{
    const json_t *d = c->doc;
    fprintf(c->out, "snapshot %s taken on %s (%s) in %.1fs\n", js0(d, "tag"), js0(d, "address"), js0(d, "host_id"),
            jd(d, "finished") - jd(d, "started"));
}

/* "a, b, c" of a list of strings, or "none". */
static void print_tags(FILE *out, const json_t *tags)
{
    const json_t *t;
    size_t i;
    if (!json_array_size(tags))
        fputs("none", out);
    json_array_foreach(tags, i, t)
        fprintf(out, "%s%s", i ? ", " : "", json_string_value(t));
}

static void fmt_snapshot_clear(const fmt_ctx *c)
{
    const json_t *d = c->doc;
    if (json_object_get(d, "cleared_tags")) {
        fprintf(c->out, "snapshots \"%s*\" older than %.0f s cleared on %s (%s): ", js0(d, "prefix"),
                jd(d, "older_than"), js0(d, "address"), js0(d, "host_id"));
        print_tags(c->out, json_object_get(d, "cleared_tags"));
        fprintf(c->out, " (%zu younger kept)\n", json_array_size(json_object_get(d, "kept_tags")));
    } else if (jb(d, "cleared"))
        fprintf(c->out, "snapshot %s cleared on %s\n", js0(d, "tag"), js0(d, "host_id"));
    else
        fprintf(c->out, "no snapshot %s on %s: nothing to clear\n", js0(d, "tag"), js0(d, "host_id"));
}

/* ---- restore, verify ---- */

static bool same_strings(const json_t *a, const json_t *b)
{
    if (json_array_size(a) != json_array_size(b))
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (strcmp(json_string_value(json_array_get(a, i)), json_string_value(json_array_get(b, i))))
            return false;
    return true;
}

static void fmt_restore(const fmt_ctx *c)
{
    FILE *out = c->out;
    const json_t *d = c->doc, *dirs = json_object_get(d, "data_dirs"), *theirs = json_object_get(d, "backup_data_dirs");
    char size[32];
    human_size(d, "bytes", size, sizeof size);
    fprintf(out, "restored %s (%s): %zu tables, %llu files, %s; %.1f s\n", js0(d, "backup"), js0(d, "mode"),
            jz(d, "tables"), ju(d, "files"), size, jd(d, "seconds"));
    size_t k;
    const json_t *into;
    json_array_foreach(json_object_get(d, "restored_into"), k, into)
        fprintf(out, "  %s into %s\n", js0(into, "table"), js0(into, "into"));
    json_array_foreach(json_object_get(d, "not_created"), k, into)
        fprintf(out, "  %s not made in the target keyspace\n", json_string_value(into));
    if (json_array_size(dirs) && json_array_size(theirs) && !same_strings(dirs, theirs))
        fprintf(out, "into the node's own data directory %s%s (the backed-up node kept its data in %s%s: "
                     "information only)\n",
                json_string_value(json_array_get(dirs, 0)), json_array_size(dirs) > 1 ? " and more" : "",
                json_string_value(json_array_get(theirs, 0)), json_array_size(theirs) > 1 ? " and more" : "");
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(d, "moved_aside"), i, v)
        fprintf(out, "previous files kept in %s\n", json_string_value(v));
    json_array_foreach(json_object_get(d, "not_restored"), i, v)
        fprintf(out, "NOT restored: %s: %s\n", js0(v, "table"), js0(v, "reason"));
    if (!strcmp(js0(d, "mode"), "replace"))
        fprintf(out, "the node is ready to start\n");
}

/* A load: totals, each table loaded with its time, each one not with why.
 * A repair should follow: the loader streams to the replicas that own each
 * row, but loads one source node's copy only. */
static void fmt_load(const fmt_ctx *c)
{
    FILE *out = c->out;
    const json_t *d = c->doc;
    char size[32];
    human_size(d, "bytes", size, sizeof size);
    fprintf(out, "loaded %s of host %s: %zu tables, %llu files, %s; %.1f s\n", js0(d, "backup"),
            js0(d, "source_host"), jz(d, "tables"), ju(d, "files"), size, jd(d, "seconds"));
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(d, "per_table"), i, v) {
        if (jb(v, "loaded"))
            fprintf(out, "  %s: %llu files in %.1f s\n", js0(v, "table"), ju(v, "files"), jd(v, "seconds"));
        else
            fprintf(out, "NOT loaded: %s: %s\n", js0(v, "table"), js0(v, "reason"));
    }
}

/* One line after the damage: which backups are damaged, and, when objects
 * are lost (missing or cut short), that the next backup stores those files
 * again (a backup reuses only objects it has seen in the repository). */
/* A short table per table, then the RTO. */
/* A drill's tables (node or cluster): a short row per table, its problems
 * below it; then the scratch keyspaces it kept. */
static void print_drill_tables(FILE *out, const json_t *d)
{
    fprintf(out, "%-40s %10s %10s %8s %8s %8s %6s %10s\n", "TABLE", "BACKUP", "LIVE", "SAMPLED", "MATCHED", "CHANGED",
            "LOST", "DIFFERENT");
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(d, "tables"), i, t) {
        if (!jb(t, "restored") || json_is_false(json_object_get(t, "checked"))) {
            fprintf(out, "%-40s not %s: %s\n", js0(t, "table"), jb(t, "restored") ? "checked" : "restored",
                    js0(t, "reason"));
            continue;
        }
        fprintf(out, "%-40s %10llu %10llu %8llu %8llu %8llu %6llu %10llu\n", js0(t, "table"), ju(t, "rows_backup"),
                ju(t, "rows_live"), ju(t, "sampled"), ju(t, "matched"), ju(t, "changed_since") + ju(t, "gone_since"),
                ju(t, "lost"), ju(t, "mismatched"));
        size_t k;
        const json_t *p;
        json_array_foreach(json_object_get(t, "problems"), k, p)
            fprintf(out, "  %s\n", json_string_value(p));
    }
    const json_t *ks = json_object_get(d, "scratch_keyspaces");
    if (jb(d, "kept") && json_array_size(ks))
        fprintf(out, "kept scratch keyspace %s%s (the next drill drops it)\n", json_string_value(json_array_get(ks, 0)),
                json_array_size(ks) > 1 ? " and more" : "");
}

static void fmt_drill(const fmt_ctx *c)
{
    const json_t *d = c->doc;
    fprintf(c->out, "drill %s of backup %s: restored in %.1f s (RTO), %.1f s in all\n", js0(d, "drill_id"),
            js0(d, "backup"), jd(d, "rto_seconds"), jd(d, "seconds"));
    print_drill_tables(c->out, d);
}

static void print_verify_hint(FILE *err, const json_t *problems)
{
    cs_buf names = CS_BUF_INIT;
    cs_strlist seen = { NULL, 0 };
    bool lost = false;
    size_t i;
    const json_t *p;
    json_array_foreach(problems, i, p) {
        const char *r = js0(p, "reason"), *backup = js0(p, "backup");
        lost = lost || !strncmp(r, "object is missing", 17) || !strncmp(r, "object holds", 12);
        if (cs_strlist_has(&seen, backup))
            continue;
        cs_strlist_add(&seen, backup);
        cs_buf_printf(&names, "%s%s", names.len ? ", " : "", backup);
    }
    cs_strlist_free(&seen);
    fprintf(err, "cassette: verify: damaged backups: %s%s\n", cs_buf_str(&names),
            lost ? "; the next backup of each node stores the lost files again (if the node still has them), "
                   "the damaged backups stay so"
                 : "");
    cs_buf_free(&names);
}

static void fmt_verify(const fmt_ctx *c)
{
    const json_t *d = c->doc, *problems = json_object_get(d, "problems");
    const cs_verify_req *req = c->req;
    if (c->json)
        print_json(c->out, d);
    size_t i;
    const json_t *p;
    json_array_foreach(problems, i, p) {
        if (jnull(p, "object"))
            fprintf(c->err, "cassette: verify: backup %s: %s\n", js0(p, "backup"), js0(p, "reason"));
        else
            fprintf(c->err, "cassette: verify: backup %s: %s (object %s): %s\n", js0(p, "backup"), js0(p, "file"),
                    js0(p, "object"), js0(p, "reason"));
    }
    if (json_array_size(problems))
        print_verify_hint(c->err, problems);
    const json_t *set;
    json_array_foreach(json_object_get(d, "sets"), i, set) {
        if (c->json)
            break;
        cs_buf state = CS_BUF_INIT;
        set_state_text(json_object_get(set, "set"), &state);
        fprintf(c->out, "set %s: %s; %s\n", js0(set, "name"), cs_buf_str(&state),
                ju(set, "problems") ? "damaged (see above)" : "its backups are good");
        cs_buf_free(&state);
    }
    if (c->json || json_array_size(problems))
        return;
    bool deep = !strcmp(js0(d, "mode"), "deep");
    uint64_t bytes = (uint64_t)ju(d, "bytes");
    char size[32];
    cs_human_size(deep || bytes ? bytes : (uint64_t)ju(d, "stored_bytes"), size, sizeof size);
    if (!deep && !bytes)
        snprintf(size + strlen(size), sizeof size - strlen(size), " stored");
    char sample[48] = "";
    /* Said only when one was asked for (the document says 100 for all). */
    if (req && !isnan(req->sample))
        snprintf(sample, sizeof sample, " (a %g%% sample)", jd(d, "sample_pct"));
    fprintf(c->out, "verified %zu backups (%s): %llu files, %llu objects%s, %s; all good\n", jz(d, "backups"),
            deep ? "read back whole" : "every object present with its size", ju(d, "files"), ju(d, "objects"), sample,
            size);
}

/* ---- migrate, schema, keys ---- */

static const char *migration_state(const json_t *m, bool dry_run)
{
    if (jb(m, "applied_now"))
        return "applied now";
    if (jb(m, "applied") && jb(m, "changed"))
        return "CHANGED since applied";
    if (jb(m, "applied"))
        return "applied";
    return dry_run ? "would apply" : "pending";
}

static void fmt_migrate(const fmt_ctx *c)
{
    FILE *out = c->out;
    const json_t *d = c->doc, *items = json_object_get(d, "migrations");
    bool dry_run = jb(d, "dry_run"), status_only = c->op->sub && !strcmp(c->op->sub, "status");
    size_t pending = 0, i;
    const json_t *m;
    json_array_foreach(items, i, m) {
        pending += !jb(m, "applied");
        fprintf(out, "%-22s %-50s %3zu statements  %s\n", migration_state(m, dry_run), js0(m, "file"),
                jz(m, "statements"), jb(m, "applied") ? js0(m, "applied_at") : "");
    }
    json_array_foreach(json_object_get(d, "applied_without_file"), i, m)
        fprintf(out, "%-22s %s (recorded in the tracking table, no such file)\n", "applied, no file",
                json_string_value(m));
    if (status_only || dry_run)
        fprintf(out, "%zu migrations, %zu pending\n", json_array_size(items), pending);
    else
        fprintf(out, "applied %zu migrations; %zu in all, none pending\n", jz(d, "applied_now"),
                json_array_size(items));
}

static void fmt_schema(const fmt_ctx *c)
{
    fputs(js0(c->doc, "schema"), c->out);
}

/* The identity's text is a secret: it never goes into a document, so it
 * comes from the result, and only when it was not written to a file. */
static void fmt_key_generate(const fmt_ctx *c)
{
    const cs_key_result *res = c->res;
    if (!jnull(c->doc, "file") || !res)
        fprintf(c->out, "%s\n", js0(c->doc, "public_key"));
    else
        fputs(cs_buf_str(&res->identity_text), c->out);
}

static void fmt_key_public(const fmt_ctx *c)
{
    size_t i;
    const json_t *k;
    json_array_foreach(json_object_get(c->doc, "public_keys"), i, k)
        fprintf(c->out, "%s\n", json_string_value(k));
}

/* ---- cluster ---- */

static void fmt_cluster_backup(const fmt_ctx *c)
{
    const json_t *d = c->doc, *n;
    size_t i;
    json_array_foreach(json_object_get(d, "nodes"), i, n) {
        const json_t *b = json_object_get(n, "backup");
        if (jb(n, "ok") && b) {
            char size[32], stored[32];
            human_size(b, "size", size, sizeof size);
            human_size(b, "bytes_stored", stored, sizeof stored);
            fprintf(c->out, "  %-16s %-8s %llu files (%llu new), %s, stored %s; %.1f s\n", js0(n, "address"), "ok",
                    ju(b, "files"), ju(b, "files_new"), size, stored, jd(b, "seconds"));
        } else {
            fprintf(c->out, "  %-16s %-8s %s\n", js0(n, "address"), "FAILED", js0(n, "reason"));
        }
    }
    size_t done = jz(d, "nodes_complete"), all = jz(d, "nodes_expected");
    fprintf(c->out, "cluster backup %s of %s: %s %zu/%zu; snapshots within %.3f s", js0(d, "name"),
            js0(d, "cluster"), done == all ? "complete" : "incomplete", done, all, jd(d, "snapshot_spread"));
    if (!jnull(d, "pause_seconds"))
        fprintf(c->out, "; application paused %.3f s", jd(d, "pause_seconds"));
    fprintf(c->out, "; %.1f s\n", jd(d, "seconds"));
    if (done != all && jb(d, "allow_partial"))
        fprintf(c->out, "incomplete on purpose (--allow-partial): the nodes above marked FAILED are not in it\n");
}

static void fmt_cluster_restore(const fmt_ctx *c)
{
    const json_t *d = c->doc, *m;
    size_t i;
    bool plan = jb(d, "planned_only");
    fprintf(c->out, "%s of cluster backup %s (%s, %s): %s\n", plan ? "plan of the restore" : "restore",
            js0(d, "backup"), js0(d, "cluster"), jb(d, "in_place") ? "in place" : "into another cluster",
            js0(d, "mode"));
    bool load = !strcmp(js0(d, "mode"), "load");
    json_array_foreach(json_object_get(d, "nodes"), i, m) {
        const json_t *src = json_object_get(m, "source"), *dst = json_object_get(m, "target");
        char size[32];
        human_size(m, "bytes", size, sizeof size);
        const char *state = plan ? "" : jb(dst, "ok") ? (load ? "  loaded" : "  restored") : "  FAILED: ";
        fprintf(c->out, "  %s (%.8s) %s %s (%.8s): %llu files, %s", js0(src, "address"), js0(src, "host_id"),
                load ? "streamed by" : "->", js0(dst, "address"), js0(dst, "host_id"), ju(m, "files"), size);
        if (load) {
            const json_t *k;
            size_t n;
            fprintf(c->out, " of which keyspaces");
            json_array_foreach(json_object_get(m, "keyspaces"), n, k)
                fprintf(c->out, "%s%s", n ? ", " : " ", json_string_value(k));
        }
        fprintf(c->out, "%s%s\n", state, plan || jb(dst, "ok") ? "" : js0(dst, "reason"));
    }
    if (plan) {
        fprintf(c->out, "nothing was changed; run it with --yes\n");
        return;
    }
    fprintf(c->out, "restored %zu of %zu nodes; %.1f s\n", jz(d, "nodes_restored"),
            json_array_size(json_object_get(d, "nodes")), jd(d, "seconds"));
    if (!strcmp(js0(d, "mode"), "replace"))
        fprintf(c->out, "start the nodes now; what was in their directories is moved aside (cassette status)\n");
    if (load)
        fprintf(c->out, "each range was streamed from one replica: run a full repair on the target cluster now "
                        "(nodetool repair -full)\n");
}

static void fmt_cluster_status(const fmt_ctx *c)
{
    const json_t *d = c->doc, *n;
    size_t i;
    fprintf(c->out, "cluster %s: %zu of %zu agents reachable\n", js0(d, "cluster"), jz(d, "reachable"),
            json_array_size(json_object_get(d, "nodes")));
    json_array_foreach(json_object_get(d, "nodes"), i, n) {
        const char *state = !jb(n, "reachable") ? "UNREACHABLE" : jb(n, "cassandra_up") ? "up" : "node down";
        fprintf(c->out, "  %-16s %-36s %-12s %s%s%s\n", js0(n, "address"), js0(n, "host_id"), state,
                js0(n, "agent"), jb(n, "reachable") ? "" : ": ", jb(n, "reachable") ? "" : js0(n, "reason"));
    }
    const json_t *r = json_object_get(d, "repository");
    if (r && !jnull(r, "newest_complete"))
        fprintf(c->out, "newest complete cluster backup: %s, %.0f s old (%zu of %zu cluster backups complete)\n",
                js0(r, "newest_complete"), jd(r, "newest_age"), jz(r, "sets_complete"), jz(r, "sets"));
    else if (r)
        fprintf(c->out, "no complete cluster backup in the repository\n");
}

static void fmt_cluster_tokens(const fmt_ctx *c)
{
    const json_t *d = c->doc, *n;
    size_t i;
    fprintf(c->out, "# cluster backup %s of %s: give each new node its source node's tokens before its first start\n",
            js0(d, "backup"), js0(d, "cluster"));
    json_array_foreach(json_object_get(d, "nodes"), i, n)
        fprintf(c->out, "# %s (host %s, %s/%s)\nnum_tokens: %llu\n%s\n", js0(n, "address"), js0(n, "host_id"),
                js0(n, "datacenter"), js0(n, "rack"), ju(n, "num_tokens"), js0(n, "initial_token"));
}

static void fmt_cluster_snapshot_cleanup(const fmt_ctx *c)
{
    const json_t *d = c->doc, *n;
    size_t i;
    json_array_foreach(json_object_get(d, "nodes"), i, n) {
        if (jb(n, "ok")) {
            fprintf(c->out, "  %-16s %-8s cleared ", js0(n, "address"), "ok");
            print_tags(c->out, json_object_get(n, "cleared_tags"));
            fprintf(c->out, " (%zu younger kept)\n", json_array_size(json_object_get(n, "kept_tags")));
        } else {
            fprintf(c->out, "  %-16s %-8s %s\n", js0(n, "address"), "FAILED", js0(n, "reason"));
        }
    }
    size_t all = json_array_size(json_object_get(d, "nodes")), failed = jz(d, "nodes_failed");
    fprintf(c->out, "snapshot cleanup of %s (prefix \"%s\", older than %.0f s): %zu snapshots cleared on %zu of %zu "
                    "nodes; %.1f s\n",
            js0(d, "cluster"), js0(d, "prefix"), jd(d, "older_than"), jz(d, "cleared"), all - failed, all,
            jd(d, "seconds"));
}

static void fmt_cluster_drill(const fmt_ctx *c)
{
    const json_t *d = c->doc, *m;
    size_t i;
    fprintf(c->out, "drill %s of cluster backup %s (%s): restored on %zu of %zu nodes in %.1f s (RTO), %.1f s in all\n",
            js0(d, "drill_id"), js0(d, "backup"), js0(d, "cluster"), jz(d, "nodes_restored"),
            json_array_size(json_object_get(d, "nodes")), jd(d, "rto_seconds"), jd(d, "seconds"));
    json_array_foreach(json_object_get(d, "nodes"), i, m) {
        const json_t *dst = json_object_get(m, "target"), *r = json_object_get(dst, "restore");
        char size[32];
        human_size(r, "bytes", size, sizeof size);
        fprintf(c->out, "  %s (%.8s): %zu tables, %llu files, %s%s%s\n", js0(dst, "address"), js0(dst, "host_id"),
                jz(r, "tables"), ju(r, "files"), size, jb(dst, "ok") ? "" : "  FAILED: ",
                jb(dst, "ok") ? "" : js0(dst, "reason"));
    }
    print_drill_tables(c->out, d);
    if (!jb(d, "kept") && json_array_size(json_object_get(d, "scratch_keyspaces")))
        fprintf(c->out, "scratch keyspaces dropped, %zu of their snapshots cleared\n", jz(d, "snapshots_cleared"));
    json_array_foreach(json_object_get(d, "cleanup_problems"), i, m)
        fprintf(c->out, "clean up: %s\n", json_string_value(m));
}

/* ---- by operation ---- */

static const struct {
    const char *op;
    void (*text)(const fmt_ctx *c);
    bool own_json; /* prints its document itself (it adds to stderr either way) */
} formatters[] = {
    { "init", fmt_init, false },
    { "backup", fmt_backup, false },
    { "list", fmt_list, false },
    { "restore", fmt_restore, false },
    { "verify", fmt_verify, true },
    { "purge", fmt_purge, false },
    { "status", fmt_status, false },
    { "delete", fmt_delete, false },
    { "catalog rebuild", fmt_catalog_rebuild, false },
    { "migrate", fmt_migrate, false },
    { "migrate status", fmt_migrate, false },
    { "schema dump", fmt_schema, false },
    { "key generate", fmt_key_generate, false },
    { "key public", fmt_key_public, false },
    { "cleanup", fmt_cleanup, false },
    { "cluster backup", fmt_cluster_backup, false },
    { "cluster restore", fmt_cluster_restore, false },
    { "cluster status", fmt_cluster_status, false },
    { "cluster tokens", fmt_cluster_tokens, false },
    { "cluster snapshot-cleanup", fmt_cluster_snapshot_cleanup, false },
    { "cluster drill", fmt_cluster_drill, false },
    { "snapshot", fmt_snapshot, false },
    { "snapshot clear", fmt_snapshot_clear, false },
    { "load", fmt_load, false },
    { "drill", fmt_drill, false },
};
#define N_FORMATTERS (sizeof formatters / sizeof formatters[0])

static size_t formatter_of(const cs_op_def *op)
{
    for (size_t i = 0; i < N_FORMATTERS; i++)
        if (!strcmp(formatters[i].op, op->name))
            return i;
    return N_FORMATTERS;
}

bool cs_output_has_formatter(const cs_op_def *op)
{
    return formatter_of(op) < N_FORMATTERS;
}

void cs_print_result(FILE *out, FILE *err, const cs_op_def *op, const void *req, const void *res, const json_t *doc,
                     bool json)
{
    size_t i = formatter_of(op);
    fmt_ctx c = { out, err, op, req, res, doc, json };
    if (json && (i == N_FORMATTERS || !formatters[i].own_json)) {
        print_json(out, doc);
        return;
    }
    if (i < N_FORMATTERS)
        formatters[i].text(&c);
}
