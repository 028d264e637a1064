/* drill.c - the checks of a restore drill (see drill.h). */
#include "ops/drill.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/node.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/strlist.h"
#include "ops/ops.h"

#define RANGES 64          /* token ranges counted on each side, at least */
#define RANGES_MAX 16384   /* ... and at most (a power of two) */
#define RANGE_ROWS 50000   /* partitions per range aimed at (system.size_estimates): counts that finish */
#define LIST_MAX 2000      /* a range of at most this many rows on each side is compared key by key */
#define KEY_BUDGET 1000000 /* rows read key by key per table where the counts agree (where they differ: always) */
#define SPLIT_DEPTH 24     /* a bigger range whose counts differ is halved, at most this often */
#define MAX_PROBLEMS 5     /* sentences kept per table */

void cs_drill_new_id(char out[9])
{
    uint8_t b[4];
    randombytes_buf(b, sizeof b);
    snprintf(out, 9, "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

static bool is_drill_id(const char *id)
{
    if (!id || strlen(id) != 8)
        return false;
    for (const char *p = id; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

int cs_drill_scratch_name(const char *drill_id, const char *ks, char *out, size_t cap, cs_err *e)
{
    if (!is_drill_id(drill_id))
        return cs_err_set(e, CS_E_USAGE, "invalid drill id \"%s\" (8 lowercase hex digits)", drill_id ? drill_id : "");
    if (cap < CS_DRILL_KS_MAX + 1)
        return cs_err_set(e, CS_E_INVAL, "no room for a scratch keyspace name (a bug)");
    snprintf(out, CS_DRILL_KS_MAX + 1, "%s%s_%s", CS_DRILL_PREFIX, drill_id, ks);
    return 0;
}

void cs_drill_pick_tables(cs_strlist *all, size_t want, cs_strlist *out)
{
    if (!want || want > all->n)
        want = all->n;
    for (size_t i = 0; i < want; i++) {
        size_t j = i + randombytes_uniform((uint32_t)(all->n - i));
        char *tmp = all->items[i];
        all->items[i] = all->items[j];
        all->items[j] = tmp;
        cs_strlist_add(out, all->items[i]);
    }
}

int cs_drill_scratch_map(const char *drill_id, const cs_strlist *tables, cs_strlist *map, cs_strlist *scratch,
                         cs_err *e)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < tables->n; i++) {
        char *ks = cs_strndup(tables->items[i], strcspn(tables->items[i], "."));
        char name[CS_DRILL_KS_MAX + 1];
        rc = cs_drill_scratch_name(drill_id, ks, name, sizeof name, e);
        if (!rc && !cs_strlist_has(scratch, name)) {
            char *entry = cs_sprintf("%s=%s", ks, name);
            if (cs_restore_map_lookup(map, ks) == NULL)
                cs_strlist_add(map, entry);
            cs_strlist_add(scratch, name);
            free(entry);
        } else if (!rc && !cs_restore_map_lookup(map, ks)) {
            rc = cs_err_set(e, CS_E_INVAL, "keyspace %s has the scratch name %s of another keyspace (48 characters "
                                           "at most): drill it on its own ({keyspaces})", ks, name);
        }
        free(ks);
    }
    return rc;
}

bool cs_drill_table_is_live(cql_conn *conn, const char *ks, const char *table)
{
    char *q = cs_sprintf("SELECT id FROM system_schema.tables WHERE keyspace_name = '%s' AND table_name = '%s'", ks,
                         table);
    cql_result *r = NULL;
    cs_err err;
    cs_err_clear(&err);
    bool yes = !cql_query(conn, q, &r, &err) && cql_result_rows(r) > 0;
    cql_result_free(r);
    free(q);
    return yes;
}

int cs_drill_find_scratch(cql_conn *conn, cs_strlist *out, cs_err *e)
{
    cql_result *r = NULL;
    int rc = cql_query(conn, "SELECT keyspace_name FROM system_schema.keyspaces", &r, e);
    for (size_t i = 0; !rc && i < cql_result_rows(r); i++) {
        const char *ks = cql_result_text(r, i, "keyspace_name");
        if (ks && !strncmp(ks, CS_DRILL_PREFIX, strlen(CS_DRILL_PREFIX)) && !cs_strlist_has(out, ks))
            cs_strlist_add(out, ks);
    }
    cql_result_free(r);
    return rc;
}

static json_int_t report_int(const json_t *r, const char *key)
{
    return json_integer_value(json_object_get(r, key));
}

int cs_drill_reports_verdict(const json_t *reports, cs_err *e)
{
    size_t i;
    const json_t *r;
    json_array_foreach(reports, i, r) {
        json_int_t lost = report_int(r, "lost"), bad = report_int(r, "mismatched");
        if (!lost && !bad)
            continue;
        const char *table = json_string_value(json_object_get(r, "table"));
        const char *first = json_string_value(json_array_get(json_object_get(r, "problems"), 0));
        return cs_err_set(e, CS_E_CORRUPT, "%s: %lld rows lost and %lld rows different from the live table%s%s",
                          table ? table : "?", (long long)lost, (long long)bad, first ? ": " : "", first ? first : "");
    }
    return 0;
}

/* ---- the table's columns ---- */

typedef struct column {
    char *name;       /* as stored */
    char *quoted;     /* "name" */
    char *type;       /* system_schema.columns' type text */
    int kind;         /* 0 partition key, 1 clustering, 2 regular, 3 static */
    long position;
    bool writetime;   /* a regular cell writetime() reads: not a collection, not a counter */
    bool multicell;   /* a regular non-frozen collection or UDT: maxwritetime() (Cassandra 5.0) */
} column;

typedef struct table_cols {
    column *c;
    size_t n;
    size_t n_pk, n_ck;   /* the first n_pk are the partition key, then n_ck clustering, in order */
    size_t n_wt;         /* columns with writetime */
    bool counter;
} table_cols;

static int kind_of(const char *kind)
{
    return !strcmp(kind, "partition_key") ? 0 : !strcmp(kind, "clustering") ? 1 : !strcmp(kind, "regular") ? 2 : 3;
}

static const char *const native_types[] = { "ascii", "bigint", "blob", "boolean", "date", "decimal", "double",
                                             "duration", "float", "inet", "int", "smallint", "text", "time",
                                             "timestamp", "timeuuid", "tinyint", "uuid", "varchar", "varint", NULL };

static bool is_native(const char *type)
{
    for (const char *const *t = native_types; *t; t++)
        if (!strcmp(type, *t))
            return true;
    return false;
}

static int by_kind_position(const void *a, const void *b)
{
    const column *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    return x->position < y->position ? -1 : x->position > y->position;
}

static void cols_free(table_cols *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->c[i].name);
        free(t->c[i].quoted);
        free(t->c[i].type);
    }
    free(t->c);
    memset(t, 0, sizeof *t);
}

/* The columns of ks.table, keys first; CS_E_NOTFOUND when there is no such table. */
static int read_cols(cql_conn *conn, const char *ks, const char *table, uint16_t cl, table_cols *t, cs_err *e)
{
    memset(t, 0, sizeof *t);
    char *q = cs_sprintf("SELECT column_name, kind, position, type FROM system_schema.columns WHERE keyspace_name = "
                         "'%s' AND table_name = '%s'", ks, table); /* plain names: checked by the callers */
    cql_result *r = NULL;
    int rc = cql_query_at(conn, q, cl, &r, e);
    free(q);
    size_t n = rc ? 0 : cql_result_rows(r);
    if (!rc && !n)
        rc = cs_err_set(e, CS_E_NOTFOUND, "there is no table %s.%s", ks, table);
    t->c = cs_calloc(n + 1, sizeof *t->c);
    for (size_t i = 0; !rc && i < n; i++) {
        const char *name = cql_result_text(r, i, "column_name"), *kind = cql_result_text(r, i, "kind");
        const char *type = cql_result_text(r, i, "type"), *pos = cql_result_text(r, i, "position");
        if (!name || !kind || !type)
            continue;
        column *c = &t->c[t->n++];
        c->name = cs_strdup(name);
        c->quoted = cs_node_quote_name(name);
        c->type = cs_strdup(type);
        c->kind = kind_of(kind);
        c->position = pos ? strtol(pos, NULL, 10) : 0;
        t->counter |= !strcmp(type, "counter");
        c->writetime = c->kind == 2 && (is_native(type) || !strncmp(type, "frozen<", 7));
        c->multicell = c->kind == 2 && !c->writetime && strcmp(type, "counter");
    }
    cql_result_free(r);
    if (rc) {
        cols_free(t);
        return rc;
    }
    qsort(t->c, t->n, sizeof *t->c, by_kind_position);
    for (size_t i = 0; i < t->n; i++) {
        t->n_pk += t->c[i].kind == 0;
        t->n_ck += t->c[i].kind == 1;
        if (t->counter)
            t->c[i].writetime = t->c[i].multicell = false; /* writetime() of a counter table: refused */
        t->n_wt += t->c[i].writetime;
    }
    return 0;
}

static const column *find_col(const table_cols *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->c[i].name, name))
            return &t->c[i];
    return NULL;
}

/* ---- values ---- */

static void value_text(cs_buf *b, const cql_value *v)
{
    if (v->kind == CQL_NULL) {
        cs_buf_printf(b, "null");
    } else if (v->kind == CQL_SCALAR) {
        cs_buf_printf(b, "%s", v->text ? v->text : "");
    } else {
        bool map = v->kind == CQL_MAP;
        cs_buf_printf(b, map ? "{" : "[");
        for (size_t i = 0; i < v->n; i++) {
            cs_buf_printf(b, i == 0 ? "" : map && i % 2 ? ": " : ", ");
            value_text(b, &v->items[i]);
        }
        cs_buf_printf(b, map ? "}" : "]");
    }
}

static bool same_value(const cql_value *a, const cql_value *b)
{
    if (a->kind != b->kind || a->n != b->n)
        return false;
    if (a->kind == CQL_SCALAR)
        return a->raw_len == b->raw_len && (!a->raw_len || !memcmp(a->raw, b->raw, a->raw_len));
    for (size_t i = 0; i < a->n; i++)
        if (!same_value(&a->items[i], &b->items[i]))
            return false;
    return true;
}

/* A key value as a CQL literal, or false: a type the sample does not look up by. */
static bool literal(cs_buf *b, const column *c, const cql_value *v)
{
    if (v->kind != CQL_SCALAR || !v->text || !is_native(c->type) || !strcmp(c->type, "duration"))
        return false;
    bool text = !strcmp(c->type, "text") || !strcmp(c->type, "varchar") || !strcmp(c->type, "ascii");
    bool quoted = text || !strcmp(c->type, "date") || !strcmp(c->type, "time") || !strcmp(c->type, "inet");
    if (!quoted) {
        cs_buf_printf(b, "%s", v->text);
        return true;
    }
    if (text && memchr(v->raw, '\0', v->raw_len))
        return false;
    cs_buf_printf(b, "'");
    for (const char *p = v->text; *p; p++)
        cs_buf_printf(b, *p == '\'' ? "''" : "%c", *p);
    cs_buf_printf(b, "'");
    return true;
}

/* ---- the check ---- */

typedef struct check {
    cql_conn *conn;
    const cs_drill_opts *o;
    cs_job *job;
    const char *ks, *table, *scratch;
    table_cols live, restored;
    char *token;           /* token("a", "b") */
    char *keys;            /* "a", "b", "c": the primary key columns */
    char *wt;              /* , writetime("x"), ...: of the live table's writetime columns (or "") */
    bool murmur3;
    bool has_wt;           /* some column of the live table shows when it was written */
    bool maxwritetime;     /* the node has maxwritetime() (Cassandra 5.0): collections show when they changed */
    int64_t rows_backup, rows_live;
    int64_t ranges, keys_compared, new_since, deleted_since, lost, unknown_since;
    int64_t sampled, matched, changed_since, gone_since, mismatched;
    json_t *problems;
} check;

static void problem(check *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(check *k, const char *fmt, ...)
{
    if (json_array_size(k->problems) >= MAX_PROBLEMS)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(k->problems, json_string(msg));
}

static int query(check *k, const char *q, cql_result **r, cs_err *e)
{
    cs_debug("drill: %s", q);
    return cql_query_at(k->conn, q, k->o->consistency, r, e);
}

/* "(a=1, b='x')": the primary key of row i of r, whose first columns are the key's. */
static char *key_text(const check *k, const cql_result *r, size_t row)
{
    cs_buf b = CS_BUF_INIT;
    size_t n = k->live.n_pk + k->live.n_ck;
    cs_buf_printf(&b, "(");
    for (size_t c = 0; c < n; c++) {
        cs_buf_printf(&b, "%s%s=", c ? ", " : "", k->live.c[c].name);
        value_text(&b, cql_result_value(r, row, c));
    }
    cs_buf_printf(&b, ")");
    char *out = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return out;
}

/* The newest writetime among columns [from, from + n) of row, or -1 (none set). */
static int64_t newest_writetime(const cql_result *r, size_t row, size_t from, size_t n)
{
    int64_t newest = -1;
    for (size_t c = from; c < from + n; c++) {
        const cql_value *v = cql_result_value(r, row, c);
        if (v->kind == CQL_SCALAR && v->text) {
            long long t = strtoll(v->text, NULL, 10);
            if (t > newest)
                newest = t;
        }
    }
    return newest;
}

static char *range_where(const check *k, int64_t lo, int64_t hi, bool first)
{
    if (!k->murmur3)
        return cs_strdup("");
    if (first) /* Murmur3 never gives the smallest token: (lo, hi] from it covers everything */
        return cs_sprintf(" WHERE %s <= %lld", k->token, (long long)hi);
    return cs_sprintf(" WHERE %s > %lld AND %s <= %lld", k->token, (long long)lo, k->token, (long long)hi);
}

static int count_rows(check *k, const char *ks, const char *where, int64_t *n, cs_err *e)
{
    char *q = cs_sprintf("SELECT count(*) FROM \"%s\".\"%s\"%s", ks, k->table, where);
    cql_result *r = NULL;
    int rc = query(k, q, &r, e);
    const char *t = rc ? NULL : cql_result_text(r, 0, "count");
    *n = t ? strtoll(t, NULL, 10) : 0;
    cql_result_free(r);
    free(q);
    return rc;
}

typedef struct keyed {
    char *key;
    int64_t wt;
} keyed;

static int by_key(const void *a, const void *b)
{
    return strcmp(((const keyed *)a)->key, ((const keyed *)b)->key);
}

static int list_keys(check *k, const char *ks, const char *where, bool live, keyed **out, size_t *n, cs_err *e)
{
    char *q = cs_sprintf("SELECT %s%s FROM \"%s\".\"%s\"%s", k->keys, live ? k->wt : "", ks, k->table, where);
    cql_result *r = NULL;
    int rc = query(k, q, &r, e);
    free(q);
    *n = rc ? 0 : cql_result_rows(r);
    *out = cs_calloc(*n + 1, sizeof **out);
    size_t nk = k->live.n_pk + k->live.n_ck;
    for (size_t i = 0; i < *n; i++) {
        (*out)[i].key = key_text(k, r, i);
        (*out)[i].wt = live ? newest_writetime(r, i, nk, cql_result_cols(r) - nk) : -1;
    }
    cql_result_free(r);
    if (*n > 1)
        qsort(*out, *n, sizeof **out, by_key);
    return rc;
}

static void free_keyed(keyed *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(a[i].key);
    free(a);
}

/* A live row the restored table lacks: written since the backup, or lost. */
static void missing_row(check *k, const keyed *row)
{
    if (!k->has_wt || row->wt < 0) {
        k->unknown_since++;
        return;
    }
    if (row->wt > k->o->backup_start_us) {
        k->new_since++;
        return;
    }
    k->lost++;
    problem(k, "%s.%s row %s, written before the backup, is missing from the restored table", k->ks, k->table,
            row->key);
}

/* Both sides' keys of one range, merged. */
static int compare_keys(check *k, const char *where, cs_err *e)
{
    keyed *a = NULL, *b = NULL; /* a: restored, b: live */
    size_t na = 0, nb = 0;
    int rc = list_keys(k, k->scratch, where, false, &a, &na, e);
    if (!rc)
        rc = list_keys(k, k->ks, where, true, &b, &nb, e);
    size_t i = 0, j = 0;
    while (!rc && (i < na || j < nb)) {
        int cmp = i >= na ? 1 : j >= nb ? -1 : strcmp(a[i].key, b[j].key);
        if (cmp == 0) {
            i++;
            j++;
        } else if (cmp < 0) {
            k->deleted_since++; /* deleted (or expired) since the backup */
            i++;
        } else {
            missing_row(k, &b[j++]);
        }
    }
    free_keyed(a, na);
    free_keyed(b, nb);
    return rc;
}

static int compare_range(check *k, int64_t lo, int64_t hi, bool first, int depth, cs_err *e)
{
    char *where = range_where(k, lo, hi, first);
    int64_t na = 0, nb = 0;
    int rc = count_rows(k, k->scratch, where, &na, e);
    if (!rc)
        rc = count_rows(k, k->ks, where, &nb, e);
    if (!rc && depth == 0) {
        k->rows_backup += na;
        k->rows_live += nb;
    }
    bool small = na <= LIST_MAX && nb <= LIST_MAX;
    bool budget = k->keys_compared + na + nb <= KEY_BUDGET; /* equal counts may still hide a lost row */
    if (!rc && small && (na != nb || (k->has_wt && budget))) {
        k->keys_compared += na + nb;
        rc = compare_keys(k, where, e);
    } else if (!rc && na != nb && k->murmur3 && depth < SPLIT_DEPTH && hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        rc = compare_range(k, lo, mid, first, depth + 1, e);
        if (!rc)
            rc = compare_range(k, mid, hi, false, depth + 1, e);
    } else if (!rc && na != nb) {
        problem(k, "%s.%s: %lld rows restored, %lld live in a range too big to compare key by key", k->ks, k->table,
                (long long)na, (long long)nb);
    }
    free(where);
    return rc;
}

/* A cancel (SIGINT in the CLI, a server's cancel) stops the check between reads. */
static int stopped(const check *k, cs_err *e)
{
    return k->job && cs_job_canceled(k->job) ? cs_err_set(e, CS_E_CANCELED, "interrupted") : 0;
}

/* Ranges enough for about RANGE_ROWS partitions each, by the node's
 * estimate of the live table (none: RANGES). A power of two. */
static int ranges_of(check *k)
{
    char *q = cs_sprintf("SELECT partitions_count FROM system.size_estimates WHERE keyspace_name = '%s' AND "
                         "table_name = '%s'", k->ks, k->table);
    cql_result *r = NULL;
    cs_err err;
    cs_err_clear(&err);
    int64_t partitions = 0;
    if (!cql_query(k->conn, q, &r, &err))
        for (size_t i = 0; i < cql_result_rows(r); i++) {
            const char *t = cql_result_text(r, i, "partitions_count");
            partitions += t ? strtoll(t, NULL, 10) : 0;
        }
    cql_result_free(r);
    free(q);
    int n = RANGES;
    while (n < RANGES_MAX && partitions / n > RANGE_ROWS)
        n *= 2;
    return n;
}

static int count_all(check *k, cs_err *e)
{
    int n = k->murmur3 ? ranges_of(k) : 1;
    uint64_t step = n > 1 ? ((uint64_t)1 << 63) / (uint64_t)n * 2 : 0; /* 2^64 / n */
    int rc = 0;
    for (int i = 0; !rc && i < n; i++) {
        int64_t lo = (int64_t)((uint64_t)INT64_MIN + (uint64_t)i * step);
        int64_t hi = i == n - 1 ? INT64_MAX : (int64_t)((uint64_t)INT64_MIN + (uint64_t)(i + 1) * step);
        char item[96];
        snprintf(item, sizeof item, "%s.%s range %d/%d", k->ks, k->table, i + 1, n);
        cs_job_item(k->job, item);
        rc = stopped(k, e);
        if (!rc)
            rc = compare_range(k, lo, hi, i == 0, 0, e);
        k->ranges++;
    }
    return rc;
}

/* ---- the sample ---- */

/* "a", "b", ... of the columns both tables have; their count. */
static char *shared_columns(const check *k, size_t *n)
{
    cs_buf b = CS_BUF_INIT;
    *n = 0;
    for (size_t i = 0; i < k->live.n; i++)
        if (find_col(&k->restored, k->live.c[i].name)) {
            cs_buf_printf(&b, "%s%s", *n ? ", " : "", k->live.c[i].quoted);
            (*n)++;
        }
    char *out = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return out;
}

/* WHERE a = 1 AND b = 'x' for the key of row `row` of r; NULL when a key type cannot be written. */
static char *key_where(const check *k, const cql_result *r, size_t row)
{
    cs_buf b = CS_BUF_INIT;
    bool ok = true;
    for (size_t c = 0; ok && c < k->live.n_pk + k->live.n_ck; c++) {
        cs_buf_printf(&b, "%s%s = ", c ? " AND " : " WHERE ", k->live.c[c].quoted);
        ok = literal(&b, &k->live.c[c], cql_result_value(r, row, c));
    }
    char *out = ok ? cs_strdup(cs_buf_str(&b)) : NULL;
    cs_buf_free(&b);
    return out;
}

/* Compare the restored row (row ai of a) with the live one (row 0 of b,
 * with the writetimes after the n shared columns). */
static void compare_row(check *k, const cql_result *a, size_t ai, const cql_result *b, size_t n)
{
    if (!cql_result_rows(b)) {
        k->gone_since++;
        return;
    }
    if (newest_writetime(b, 0, n, cql_result_cols(b) - n) > k->o->backup_start_us) {
        k->changed_since++;
        return;
    }
    char *key = key_text(k, a, ai);
    bool bad = false, deleted = false;
    for (size_t c = 0; c < n && !bad; c++) {
        const cql_value *x = cql_result_value(a, ai, c), *y = cql_result_value(b, 0, c);
        if (same_value(x, y))
            continue;
        const column *col = find_col(&k->live, cql_result_colname(a, c));
        if (y->kind == CQL_NULL || (col && col->multicell && !k->maxwritetime)) {
            deleted = true; /* a cell deleted or expired since (a tombstone has no writetime), or a collection
                               changed where Cassandra cannot say when */
            continue;
        }
        cs_buf bx = CS_BUF_INIT, by = CS_BUF_INIT;
        value_text(&bx, x);
        value_text(&by, y);
        problem(k, "%s.%s row %s: column %s is %.60s in the backup but %.60s live", k->ks, k->table, key,
                cql_result_colname(a, c), cs_buf_str(&bx), cs_buf_str(&by));
        cs_buf_free(&bx);
        cs_buf_free(&by);
        bad = true;
    }
    free(key);
    if (bad)
        k->mismatched++;
    else if (deleted)
        k->changed_since++;
    else
        k->matched++;
}

/* Read the live row of restored row ai of a by its primary key and compare. */
static int look_up(check *k, const char *cols, size_t n, const char *wt, const cql_result *a, size_t ai, cs_err *e)
{
    char *where = key_where(k, a, ai);
    if (!where)
        return 0;
    char *q = cs_sprintf("SELECT %s%s FROM \"%s\".\"%s\"%s", cols, wt, k->ks, k->table, where);
    cql_result *b = NULL;
    int rc = query(k, q, &b, e);
    if (!rc) {
        k->sampled++;
        compare_row(k, a, ai, b, n);
    }
    cql_result_free(b);
    free(q);
    free(where);
    return rc;
}

static int sample_one(check *k, const char *cols, size_t n, const char *wt, cs_strlist *seen, bool *empty,
                      cs_err *e)
{
    int64_t x;
    randombytes_buf(&x, sizeof x);
    if (!k->murmur3 && x < 0)
        x = -(x + 1);
    char *q = cs_sprintf("SELECT %s FROM \"%s\".\"%s\" WHERE %s >= %lld LIMIT 1", cols, k->scratch, k->table,
                         k->token, (long long)x);
    cql_result *a = NULL;
    int rc = query(k, q, &a, e);
    free(q);
    if (!rc && !cql_result_rows(a)) { /* past the last token: wrap around */
        cql_result_free(a);
        a = NULL;
        q = cs_sprintf("SELECT %s FROM \"%s\".\"%s\" LIMIT 1", cols, k->scratch, k->table);
        rc = query(k, q, &a, e);
        free(q);
        *empty = !rc && !cql_result_rows(a);
    }
    char *key = !rc && !*empty ? key_text(k, a, 0) : NULL;
    if (key && !cs_strlist_has(seen, key)) {
        cs_strlist_add(seen, key);
        rc = look_up(k, cols, n, wt, a, 0, e);
    }
    free(key);
    cql_result_free(a);
    return rc;
}

/* A table with at most sample_rows rows: every one, in one read. */
static int sample_all(check *k, const char *cols, size_t n, const char *wt, cs_err *e)
{
    char *q = cs_sprintf("SELECT %s FROM \"%s\".\"%s\"", cols, k->scratch, k->table);
    cql_result *a = NULL;
    int rc = query(k, q, &a, e);
    free(q);
    for (size_t i = 0; !rc && i < cql_result_rows(a); i++) {
        if (i % 64 == 0) {
            char item[96];
            snprintf(item, sizeof item, "%s.%s row %zu/%zu", k->ks, k->table, i + 1, cql_result_rows(a));
            cs_job_item(k->job, item);
        }
        rc = stopped(k, e);
        if (!rc)
            rc = look_up(k, cols, n, wt, a, i, e);
    }
    cql_result_free(a);
    return rc;
}

/* , writetime("x") for each shared writetime column, maxwritetime("y") for
 * each collection where Cassandra has it (5.0). */
static char *shared_writetimes(const check *k)
{
    cs_buf b = CS_BUF_INIT;
    for (size_t i = 0; i < k->live.n; i++) {
        const column *c = &k->live.c[i];
        if (!find_col(&k->restored, c->name))
            continue;
        if (c->writetime)
            cs_buf_printf(&b, ", writetime(%s)", c->quoted);
        else if (c->multicell && k->maxwritetime)
            cs_buf_printf(&b, ", maxwritetime(%s)", c->quoted);
    }
    char *out = cs_strdup(cs_buf_str(&b));
    cs_buf_free(&b);
    return out;
}

static bool keys_writable(const check *k)
{
    for (size_t c = 0; c < k->live.n_pk + k->live.n_ck; c++) {
        const char *t = k->live.c[c].type;
        if (!is_native(t) || !strcmp(t, "duration"))
            return false;
    }
    return true;
}

static int sample(check *k, cs_err *e)
{
    if (!k->o->sample_rows || !k->has_wt || !keys_writable(k)) {
        if (k->o->sample_rows)
            problem(k, "%s.%s: rows not compared by content (%s): counted only", k->ks, k->table,
                    !k->has_wt ? "no regular column shows a writetime" : "a key of a type the check cannot look up");
        return 0;
    }
    size_t n = 0;
    char *cols = shared_columns(k, &n);
    char *wt = shared_writetimes(k);
    cs_strlist seen = { NULL, 0 };
    bool empty = false;
    int rc = 0;
    if (k->rows_backup <= (int64_t)k->o->sample_rows) { /* small: every row */
        rc = sample_all(k, cols, n, wt, e);
        empty = true;
    }
    /* Random tokens, each row once, with tries to spare. */
    for (size_t i = 0; !rc && !empty && i < k->o->sample_rows * 2 && (size_t)k->sampled < k->o->sample_rows; i++) {
        char item[96];
        snprintf(item, sizeof item, "%s.%s row %zu/%zu", k->ks, k->table, (size_t)k->sampled + 1, k->o->sample_rows);
        cs_job_item(k->job, item);
        rc = stopped(k, e);
        if (!rc)
            rc = sample_one(k, cols, n, wt, &seen, &empty, e);
    }
    cs_strlist_free(&seen);
    free(cols);
    free(wt);
    return rc;
}

/* ---- the report ---- */

static void build_exprs(check *k)
{
    cs_buf tok = CS_BUF_INIT, keys = CS_BUF_INIT;
    for (size_t c = 0; c < k->live.n_pk + k->live.n_ck; c++) {
        if (c < k->live.n_pk)
            cs_buf_printf(&tok, "%s%s", c ? ", " : "token(", k->live.c[c].quoted);
        cs_buf_printf(&keys, "%s%s", c ? ", " : "", k->live.c[c].quoted);
    }
    cs_buf_printf(&tok, ")");
    k->token = cs_strdup(cs_buf_str(&tok));
    k->keys = cs_strdup(cs_buf_str(&keys));
    k->wt = shared_writetimes(k);
    cs_buf_free(&tok);
    cs_buf_free(&keys);
}

/* The partitioner (token ranges only for Murmur3) and the version. */
static void node_facts(check *k)
{
    cql_result *r = NULL;
    cs_err err;
    cs_err_clear(&err);
    k->murmur3 = true;
    if (!cql_query(k->conn, "SELECT partitioner, release_version FROM system.local", &r, &err)) {
        const char *p = cql_result_text(r, 0, "partitioner"), *v = cql_result_text(r, 0, "release_version");
        k->murmur3 = !p || strstr(p, "Murmur3Partitioner") != NULL;
        k->maxwritetime = v && atoi(v) >= 5;
    }
    cql_result_free(r);
}

static json_t *report_of(const check *k)
{
    json_t *j = json_object();
    json_object_set_new(j, "table", json_sprintf("%s.%s", k->ks, k->table));
    json_object_set_new(j, "scratch", json_sprintf("%s.%s", k->scratch, k->table));
    json_object_set_new(j, "restored", json_true());
    json_object_set_new(j, "rows_backup", json_integer(k->rows_backup));
    json_object_set_new(j, "rows_live", json_integer(k->rows_live));
    json_object_set_new(j, "ranges", json_integer(k->ranges));
    json_object_set_new(j, "keys_compared", json_integer(k->keys_compared));
    json_object_set_new(j, "new_since", json_integer(k->new_since));
    json_object_set_new(j, "deleted_since", json_integer(k->deleted_since));
    json_object_set_new(j, "unknown_since", json_integer(k->unknown_since));
    json_object_set_new(j, "lost", json_integer(k->lost));
    json_object_set_new(j, "sampled", json_integer(k->sampled));
    json_object_set_new(j, "matched", json_integer(k->matched));
    json_object_set_new(j, "changed_since", json_integer(k->changed_since));
    json_object_set_new(j, "gone_since", json_integer(k->gone_since));
    json_object_set_new(j, "mismatched", json_integer(k->mismatched));
    json_object_set_new(j, "writetimes", json_boolean(k->has_wt > 0));
    json_object_set_new(j, "problems", json_incref(k->problems));
    return j;
}

int cs_drill_check_table(cql_conn *conn, const char *ks, const char *table, const char *scratch_ks,
                         const cs_drill_opts *o, cs_job *job, json_t **report, cs_err *e)
{
    *report = NULL;
    check k;
    memset(&k, 0, sizeof k);
    k.conn = conn;
    k.o = o;
    k.job = job;
    k.ks = ks;
    k.table = table;
    k.scratch = scratch_ks;
    k.problems = json_array();
    int rc = read_cols(conn, ks, table, o->consistency, &k.live, e);
    if (!rc)
        rc = read_cols(conn, scratch_ks, table, o->consistency, &k.restored, e);
    if (!rc) {
        node_facts(&k);
        build_exprs(&k);
        k.has_wt = k.wt[0] != '\0';
        if (!k.has_wt)
            problem(&k, "%s.%s has no regular column that shows a writetime: rows are counted, not told apart",
                    ks, table);
        rc = count_all(&k, e);
    }
    if (!rc)
        rc = sample(&k, e);
    if (!rc) {
        *report = report_of(&k);
        cs_info("checked %s.%s: %lld rows in the backup, %lld live; %lld sampled, %lld matched, %lld lost, %lld "
                "different", ks, table, (long long)k.rows_backup, (long long)k.rows_live, (long long)k.sampled,
                (long long)k.matched, (long long)k.lost, (long long)k.mismatched);
    } else {
        cs_err_prefix(e, "checking %s.%s against %s.%s", scratch_ks, table, ks, table);
    }
    cs_job_add_files(job, 1);
    cols_free(&k.live);
    cols_free(&k.restored);
    free(k.token);
    free(k.keys);
    free(k.wt);
    json_decref(k.problems);
    return rc;
}
