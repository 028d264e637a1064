#include "repo/manifest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/node.h"
#include "common/buf.h"
#include "common/fs.h"

bool cs_is_hex32(const char *s)
{
    return cs_is_lower_hex(s, 32);
}

/* A file's content hash as a manifest of that format may record it
 * (io/filters.h): format 1 knew BLAKE2b-256 only (64 hex); format 2 adds
 * "sha256:" + 64 hex. Anything else is a corrupt manifest. */
static bool is_file_hash(const char *s, json_int_t format)
{
    cs_hash_alg alg;
    return cs_content_hash_parse(s, &alg) && (format >= 2 || alg == CS_HASH_BLAKE2B);
}

cs_mtable *cs_manifest_add_table(cs_manifest *m, const char *ks, const char *table, const char *id)
{
    m->tables = cs_realloc(m->tables, (m->n_tables + 1) * sizeof *m->tables);
    cs_mtable *t = &m->tables[m->n_tables++];
    memset(t, 0, sizeof *t);
    t->keyspace = cs_strdup(ks);
    t->table = cs_strdup(table);
    t->id = cs_strdup(id);
    t->schema_cql = cs_strdup("");
    return t;
}

cs_mfile *cs_mtable_add_file(cs_mtable *t, const char *name)
{
    t->files = cs_realloc(t->files, (t->n_files + 1) * sizeof *t->files);
    cs_mfile *f = &t->files[t->n_files++];
    memset(f, 0, sizeof *f);
    f->name = cs_strdup(name);
    return f;
}

const cs_mfile **cs_manifest_files(const cs_manifest *m, int (*cmp)(const void *, const void *), size_t *n)
{
    size_t count = 0;
    for (size_t i = 0; i < m->n_tables; i++)
        count += m->tables[i].n_files;
    const cs_mfile **v = cs_calloc(count ? count : 1, sizeof *v);
    count = 0;
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++)
            v[count++] = &m->tables[i].files[j];
    if (cmp && count > 1)
        qsort(v, count, sizeof *v, cmp);
    *n = count;
    return v;
}

cs_mtable *cs_manifest_find_table(const cs_manifest *m, const char *ks, const char *table)
{
    for (size_t i = 0; i < m->n_tables; i++)
        if (!strcmp(m->tables[i].keyspace, ks) && !strcmp(m->tables[i].table, table))
            return &m->tables[i];
    return NULL;
}

void cs_manifest_totals_of(const cs_manifest *m, cs_manifest_totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++) {
            const cs_mfile *f = &m->tables[i].files[j];
            t->files++;
            t->size += f->size;
            t->stored += cs_mfile_own_stored(f);
            if (f->is_new) {
                t->files_new++;
                t->size_new += f->size;
                t->stored_new += cs_mfile_own_stored(f);
            }
        }
}

/* ---- scope ---- */

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dst = the items of src, sorted, each once. */
static void sorted_unique(cs_strlist *dst, const cs_strlist *src)
{
    cs_strlist tmp = { NULL, 0 };
    for (size_t i = 0; src && i < src->n; i++)
        cs_strlist_add(&tmp, src->items[i]);
    if (tmp.n)
        qsort(tmp.items, tmp.n, sizeof *tmp.items, compare_strings);
    for (size_t i = 0; i < tmp.n; i++)
        if (!i || strcmp(tmp.items[i], tmp.items[i - 1]))
            cs_strlist_add(dst, tmp.items[i]);
    cs_strlist_free(&tmp);
}

void cs_scope_set(cs_scope *s, const cs_strlist *keyspaces, const cs_strlist *tables)
{
    cs_scope_free(s);
    s->recorded = true;
    sorted_unique(&s->keyspaces, keyspaces);
    sorted_unique(&s->tables, tables);
    s->all = !s->keyspaces.n && !s->tables.n;
}

static void join(cs_buf *b, const cs_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        if (i)
            cs_buf_addch(b, ',');
        cs_buf_addstr(b, l->items[i]);
    }
}

char *cs_scope_canonical(const cs_scope *s)
{
    cs_buf b = CS_BUF_INIT;
    cs_buf_addstr(&b, "keyspaces=");
    join(&b, &s->keyspaces);
    cs_buf_addstr(&b, ";tables=");
    join(&b, &s->tables);
    return cs_buf_detach(&b);
}

char *cs_scope_describe(const cs_scope *s)
{
    if (!s->recorded || s->all)
        return cs_strdup("all");
    cs_buf b = CS_BUF_INIT;
    join(&b, &s->keyspaces);
    if (s->keyspaces.n && s->tables.n)
        cs_buf_addch(&b, ',');
    join(&b, &s->tables);
    return cs_buf_detach(&b);
}

void cs_scope_free(cs_scope *s)
{
    cs_strlist_free(&s->keyspaces);
    cs_strlist_free(&s->tables);
    memset(s, 0, sizeof *s);
}

/* ---- to JSON ---- */


static json_t *opt_string(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *cs_pack_ref_json(const cs_pack_ref *p)
{
    return json_pack("[I, I, I, s]", (json_int_t)p->at, (json_int_t)p->len, (json_int_t)p->size, p->hash);
}

int cs_pack_ref_parse(const json_t *j, uint64_t stored, uint64_t file_size, cs_pack_ref *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    json_int_t v[3];
    const char *hash = json_string_value(json_array_get(j, 3));
    cs_hash_alg alg;
    bool ok = json_is_array(j) && json_array_size(j) == 4 && hash && cs_content_hash_parse(hash, &alg);
    for (size_t i = 0; ok && i < 3; i++) {
        const json_t *x = json_array_get(j, i);
        v[i] = json_is_integer(x) ? json_integer_value(x) : -1;
        ok = v[i] >= 0;
    }
    /* A frame holds at least its header; the pack holds the file. */
    ok = ok && v[1] > 0 && (uint64_t)v[0] <= stored && (uint64_t)v[1] <= stored - (uint64_t)v[0] &&
         file_size <= (uint64_t)v[2];
    if (!ok)
        return cs_err_set(e, CS_E_CORRUPT, "bad pack reference");
    out->at = (uint64_t)v[0];
    out->len = (uint64_t)v[1];
    out->size = (uint64_t)v[2];
    snprintf(out->hash, sizeof out->hash, "%s", hash);
    return 0;
}

static json_t *table_json(const cs_mtable *t)
{
    json_t *files = json_array();
    for (size_t j = 0; j < t->n_files; j++) {
        const cs_mfile *f = &t->files[j];
        json_t *jf = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:I, s:b}", "name", f->name, "size",
                               (json_int_t)f->size, "mtime_ns", (json_int_t)f->mtime_ns, "data_dir",
                               (json_int_t)f->data_dir, "hash", f->hash, "object", f->object, "stored",
                               (json_int_t)f->stored, "new", f->is_new);
        if (cs_mfile_packed(f))
            json_object_set_new(jf, "pack", cs_pack_ref_json(&f->pack));
        json_array_append_new(files, jf);
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "keyspace", t->keyspace, "table", t->table, "id", t->id,
                     "schema_cql", t->schema_cql ? t->schema_cql : "", "files", files);
}

/* Strict UTF-8 (what JSON needs): no overlongs, surrogates or > U+10FFFF. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned c = *p;
        size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
        if (n == 9)
            return false;
        unsigned cp = n == 0 ? c : n == 1 ? (c & 0x1f) : n == 2 ? (c & 0x0f) : (c & 0x07);
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

static bool strlist_valid(const cs_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (!utf8_valid(l->items[i]))
            return false;
    return true;
}

/* Name of the first text that JSON cannot carry, or NULL. */
static const char *first_invalid_text(const cs_manifest *m)
{
    const char *node[] = { m->backup, m->host_id, m->address, m->cluster_name, m->datacenter, m->rack,
                           m->release_version, m->partitioner, m->commitlog_dir, m->hints_dir, m->saved_caches_dir };
    for (size_t i = 0; i < sizeof node / sizeof node[0]; i++)
        if (!utf8_valid(node[i]))
            return "a node property";
    if (!strlist_valid(&m->tokens) || !strlist_valid(&m->data_dirs))
        return "a token or data directory";
    if (!strlist_valid(&m->scope.keyspaces) || !strlist_valid(&m->scope.tables) || !utf8_valid(m->scope.id))
        return "the scope";
    for (size_t i = 0; i < m->n_tables; i++) {
        const cs_mtable *t = &m->tables[i];
        if (!utf8_valid(t->keyspace) || !utf8_valid(t->table) || !utf8_valid(t->id) || !utf8_valid(t->schema_cql))
            return "a table's name or schema";
        for (size_t j = 0; j < t->n_files; j++)
            if (!utf8_valid(t->files[j].name))
                return "a file name";
    }
    return NULL;
}

static json_t *scope_json(const cs_scope *s)
{
    if (s->all)
        return json_pack("{s:b}", "all", 1);
    return json_pack("{s:o, s:o, s:s}", "keyspaces", cs_strlist_json(&s->keyspaces), "tables", cs_strlist_json(&s->tables),
                     "id", s->id);
}

int cs_manifest_to_json(const cs_manifest *m, char **out, cs_err *e)
{
    *out = NULL;
    const char *bad = first_invalid_text(m);
    if (bad)
        return cs_err_set(e, CS_E_INVAL, "%s is not valid UTF-8 and cannot be recorded", bad);
    json_t *tables = json_array();
    for (size_t i = 0; i < m->n_tables; i++)
        json_array_append_new(tables, table_json(&m->tables[i]));
    json_t *root = json_object();
    json_object_set_new(root, "format", json_integer(CS_MANIFEST_FORMAT));
    json_object_set_new(root, "backup", json_string(m->backup));
    json_object_set_new(root, "host_id", json_string(m->host_id));
    json_object_set_new(root, "address", opt_string(m->address));
    json_object_set_new(root, "cluster_name", opt_string(m->cluster_name));
    json_object_set_new(root, "datacenter", opt_string(m->datacenter));
    json_object_set_new(root, "rack", opt_string(m->rack));
    json_object_set_new(root, "release_version", opt_string(m->release_version));
    json_object_set_new(root, "partitioner", opt_string(m->partitioner));
    json_object_set_new(root, "tokens", cs_strlist_json(&m->tokens));
    json_object_set_new(root, "data_dirs", cs_strlist_json(&m->data_dirs));
    json_object_set_new(root, "commitlog_dir", opt_string(m->commitlog_dir));
    json_object_set_new(root, "hints_dir", opt_string(m->hints_dir));
    json_object_set_new(root, "saved_caches_dir", opt_string(m->saved_caches_dir));
    json_object_set_new(root, "started", json_real(m->started));
    json_object_set_new(root, "finished", json_real(m->finished));
    json_object_set(root, "schema", m->schema ? m->schema : json_array());
    if (!m->schema)
        json_decref(json_object_get(root, "schema"));
    json_object_set_new(root, "tables", tables);
    if (m->scope.recorded)
        json_object_set_new(root, "scope", scope_json(&m->scope));
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return cs_err_set(e, CS_E_NOMEM, "cannot serialise the manifest");
    *out = cs_strdup(text);
    free(text);
    return 0;
}

/* ---- from JSON, validating ---- */

static int get_str(json_t *obj, const char *key, bool required, char **out, cs_err *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return cs_err_set(e, CS_E_CORRUPT, "missing \"%s\"", key);
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return cs_err_set(e, CS_E_CORRUPT, "\"%s\" is not a string", key);
    *out = cs_strdup(json_string_value(v));
    return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *out, cs_err *e)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return cs_err_set(e, CS_E_CORRUPT, "\"%s\" is missing or out of range", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_strlist(json_t *obj, const char *key, cs_strlist *out, cs_err *e)
{
    json_t *a = json_object_get(obj, key);
    if (!a)
        return 0;
    if (!json_is_array(a))
        return cs_err_set(e, CS_E_CORRUPT, "\"%s\" is not a list", key);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (!json_is_string(v))
            return cs_err_set(e, CS_E_CORRUPT, "\"%s\" holds a non-string", key);
        cs_strlist_add(out, json_string_value(v));
    }
    return 0;
}

static int parse_file(json_t *jf, cs_mtable *t, size_t n_dirs, json_int_t format, cs_err *e)
{
    json_t *name = json_object_get(jf, "name");
    if (!json_is_string(name) || !cs_path_is_safe_relative(json_string_value(name)))
        return cs_err_set(e, CS_E_CORRUPT, "table %s.%s: unsafe or missing file name", t->keyspace, t->table);
    cs_mfile *f = cs_mtable_add_file(t, json_string_value(name));
    uint64_t mtime = 0, dir = 0;
    const char *hash = json_string_value(json_object_get(jf, "hash"));
    const char *object = json_string_value(json_object_get(jf, "object"));
    int rc = get_uint(jf, "size", UINT64_MAX >> 1, &f->size, e);
    if (!rc)
        rc = get_uint(jf, "mtime_ns", UINT64_MAX >> 1, &mtime, e);
    if (!rc)
        rc = n_dirs ? get_uint(jf, "data_dir", n_dirs - 1, &dir, e)
                    : cs_err_set(e, CS_E_CORRUPT, "\"data_dir\" is out of range (no data directories)");
    if (!rc)
        rc = get_uint(jf, "stored", UINT64_MAX >> 1, &f->stored, e);
    if (!rc && (!is_file_hash(hash, format) || !cs_is_hex32(object)))
        rc = cs_err_set(e, CS_E_CORRUPT, "bad hash or object id");
    json_t *pack = json_object_get(jf, "pack");
    if (!rc && pack && format < 3)
        rc = cs_err_set(e, CS_E_CORRUPT, "a pack reference in a manifest of format %d", (int)format);
    if (!rc && pack)
        rc = cs_pack_ref_parse(pack, f->stored, f->size, &f->pack, e);
    if (rc)
        return cs_err_prefix(e, "table %s.%s file %s", t->keyspace, t->table, f->name);
    f->mtime_ns = (int64_t)mtime;
    f->data_dir = (unsigned)dir;
    snprintf(f->hash, sizeof f->hash, "%s", hash);
    memcpy(f->object, object, CS_OBJECT_ID_HEX);
    f->is_new = json_is_true(json_object_get(jf, "new"));
    return 0;
}

static int parse_table(json_t *jt, cs_manifest *m, json_int_t format, cs_err *e)
{
    const char *ks = json_string_value(json_object_get(jt, "keyspace"));
    const char *name = json_string_value(json_object_get(jt, "table"));
    const char *id = json_string_value(json_object_get(jt, "id"));
    if (!ks || !name || !cs_node_is_valid_name(ks) || !cs_node_is_valid_name(name))
        return cs_err_set(e, CS_E_CORRUPT, "a table has a missing or invalid keyspace or table name");
    if (!cs_is_hex32(id))
        return cs_err_set(e, CS_E_CORRUPT, "table %s.%s has an invalid id", ks, name);
    if (cs_manifest_find_table(m, ks, name))
        return cs_err_set(e, CS_E_CORRUPT, "table %s.%s is listed twice", ks, name);
    cs_mtable *t = cs_manifest_add_table(m, ks, name, id);
    const char *schema = json_string_value(json_object_get(jt, "schema_cql"));
    free(t->schema_cql);
    t->schema_cql = cs_strdup(schema ? schema : "");
    json_t *files = json_object_get(jt, "files");
    if (!json_is_array(files))
        return cs_err_set(e, CS_E_CORRUPT, "table %s.%s has no file list", ks, name);
    size_t i;
    json_t *jf;
    json_array_foreach(files, i, jf) {
        if (!json_is_object(jf))
            return cs_err_set(e, CS_E_CORRUPT, "table %s.%s: a file entry is not an object", ks, name);
        int rc = parse_file(jf, t, m->data_dirs.n, format, e);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_dirs_and_schema(json_t *root, cs_manifest *m, cs_err *e)
{
    int rc = get_strlist(root, "tokens", &m->tokens, e);
    if (!rc)
        rc = get_strlist(root, "data_dirs", &m->data_dirs, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < m->data_dirs.n; i++)
        if (m->data_dirs.items[i][0] != '/')
            return cs_err_set(e, CS_E_CORRUPT, "data directory \"%s\" is not absolute", m->data_dirs.items[i]);
    json_t *schema = json_object_get(root, "schema");
    if (schema && !json_is_array(schema))
        return cs_err_set(e, CS_E_CORRUPT, "\"schema\" is not a list");
    m->schema = schema ? json_incref(schema) : json_array();
    json_t *started = json_object_get(root, "started"), *finished = json_object_get(root, "finished");
    m->started = json_is_number(started) ? json_number_value(started) : 0;
    m->finished = json_is_number(finished) ? json_number_value(finished) : 0;
    if (!isfinite(m->started) || !isfinite(m->finished))
        return cs_err_set(e, CS_E_CORRUPT, "bad start or finish time");
    return 0;
}

static bool is_table_name(const char *s)
{
    const char *dot = strchr(s, '.');
    if (!dot)
        return false;
    char *ks = cs_strndup(s, (size_t)(dot - s));
    bool ok = cs_node_is_valid_name(ks) && cs_node_is_valid_name(dot + 1);
    free(ks);
    return ok;
}

/* The scope is outside input like the rest: names must be identifiers
 * (they are shown, and compared with the node's), lists sorted and each
 * once (as cs_scope_set makes them, so that one scope has one text). */
static int parse_scope(json_t *root, cs_scope *s, cs_err *e)
{
    json_t *js = json_object_get(root, "scope");
    if (!js || json_is_null(js))
        return 0;
    if (!json_is_object(js))
        return cs_err_set(e, CS_E_CORRUPT, "\"scope\" is not an object");
    s->recorded = true;
    if (json_is_true(json_object_get(js, "all"))) {
        s->all = true;
        return 0;
    }
    const char *id = json_string_value(json_object_get(js, "id"));
    int rc = get_strlist(js, "keyspaces", &s->keyspaces, e);
    if (!rc)
        rc = get_strlist(js, "tables", &s->tables, e);
    if (rc)
        return cs_err_prefix(e, "scope");
    if (!cs_is_hex32(id) || (!s->keyspaces.n && !s->tables.n))
        return cs_err_set(e, CS_E_CORRUPT, "scope: a partial scope needs names and an id");
    for (size_t i = 0; i < s->keyspaces.n; i++)
        if (!cs_node_is_valid_name(s->keyspaces.items[i]) || (i && strcmp(s->keyspaces.items[i - 1], s->keyspaces.items[i]) >= 0))
            return cs_err_set(e, CS_E_CORRUPT, "scope: keyspaces must be valid names, sorted, each once");
    for (size_t i = 0; i < s->tables.n; i++)
        if (!is_table_name(s->tables.items[i]) || (i && strcmp(s->tables.items[i - 1], s->tables.items[i]) >= 0))
            return cs_err_set(e, CS_E_CORRUPT, "scope: tables must be KEYSPACE.TABLE, sorted, each once");
    memcpy(s->id, id, CS_OBJECT_ID_HEX);
    return 0;
}

static int by_object_then_offset(const void *a, const void *b)
{
    const cs_mfile *x = *(const cs_mfile *const *)a, *y = *(const cs_mfile *const *)b;
    int c = strcmp(x->object, y->object);
    if (c)
        return c;
    return x->pack.at < y->pack.at ? -1 : x->pack.at > y->pack.at ? 1 : 0;
}

/* The files of one pack agree about it (stored size, plaintext size and
 * hash) and their frames do not overlap (one frame may serve two files of
 * the same content); an object is a pack for all of its files or none. */
static int check_packs(const cs_manifest *m, cs_err *e)
{
    size_t n = 0;
    const cs_mfile **v = cs_manifest_files(m, by_object_then_offset, &n);
    int rc = 0;
    for (size_t i = 1; !rc && i < n; i++) {
        const cs_mfile *a = v[i - 1], *b = v[i];
        if (strcmp(a->object, b->object))
            continue;
        bool same_frame = a->pack.at == b->pack.at && a->pack.len == b->pack.len;
        bool agree = cs_mfile_packed(a) == cs_mfile_packed(b) && a->stored == b->stored &&
                     (!cs_mfile_packed(a) || (a->pack.size == b->pack.size && !strcmp(a->pack.hash, b->pack.hash) &&
                                              (same_frame || a->pack.at + a->pack.len <= b->pack.at)));
        if (!agree)
            rc = cs_err_set(e, CS_E_CORRUPT, "files %s and %s disagree about their object %s", a->name, b->name,
                            a->object);
    }
    free(v);
    return rc;
}

static int parse_root(json_t *root, cs_manifest *m, cs_err *e)
{
    if (!json_is_object(root))
        return cs_err_set(e, CS_E_CORRUPT, "not a JSON object");
    json_t *format = json_object_get(root, "format");
    if (!json_is_integer(format) || json_integer_value(format) < CS_MANIFEST_FORMAT_MIN ||
        json_integer_value(format) > CS_MANIFEST_FORMAT)
        return cs_err_set(e, CS_E_CORRUPT, "unsupported manifest format");
    int rc = get_str(root, "backup", true, &m->backup, e);
    if (!rc) rc = get_str(root, "host_id", true, &m->host_id, e);
    if (!rc) rc = get_str(root, "address", false, &m->address, e);
    if (!rc) rc = get_str(root, "cluster_name", false, &m->cluster_name, e);
    if (!rc) rc = get_str(root, "datacenter", false, &m->datacenter, e);
    if (!rc) rc = get_str(root, "rack", false, &m->rack, e);
    if (!rc) rc = get_str(root, "release_version", false, &m->release_version, e);
    if (!rc) rc = get_str(root, "partitioner", false, &m->partitioner, e);
    if (!rc) rc = get_str(root, "commitlog_dir", false, &m->commitlog_dir, e);
    if (!rc) rc = get_str(root, "hints_dir", false, &m->hints_dir, e);
    if (!rc) rc = get_str(root, "saved_caches_dir", false, &m->saved_caches_dir, e);
    if (!rc) rc = parse_dirs_and_schema(root, m, e);
    if (!rc) rc = parse_scope(root, &m->scope, e);
    if (rc)
        return rc;
    json_t *tables = json_object_get(root, "tables");
    if (!json_is_array(tables))
        return cs_err_set(e, CS_E_CORRUPT, "no table list");
    size_t i;
    json_t *jt;
    json_array_foreach(tables, i, jt) {
        if (!json_is_object(jt))
            return cs_err_set(e, CS_E_CORRUPT, "a table entry is not an object");
        rc = parse_table(jt, m, json_integer_value(format), e);
        if (rc)
            return rc;
    }
    return check_packs(m, e);
}

int cs_manifest_from_json(const char *text, size_t len, cs_manifest *m, cs_err *e)
{
    memset(m, 0, sizeof *m);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return cs_err_set(e, CS_E_CORRUPT, "manifest is not valid JSON (line %d: %s)", jerr.line, jerr.text);
    int rc = parse_root(root, m, e);
    json_decref(root);
    if (rc) {
        cs_manifest_free(m);
        return cs_err_prefix(e, "invalid manifest");
    }
    return 0;
}

void cs_manifest_free(cs_manifest *m)
{
    for (size_t i = 0; i < m->n_tables; i++) {
        cs_mtable *t = &m->tables[i];
        for (size_t j = 0; j < t->n_files; j++)
            free(t->files[j].name);
        free(t->files);
        free(t->keyspace);
        free(t->table);
        free(t->id);
        free(t->schema_cql);
    }
    free(m->tables);
    free(m->backup);
    free(m->host_id);
    free(m->address);
    free(m->cluster_name);
    free(m->datacenter);
    free(m->rack);
    free(m->release_version);
    free(m->partitioner);
    cs_strlist_free(&m->tokens);
    cs_strlist_free(&m->data_dirs);
    free(m->commitlog_dir);
    free(m->hints_dir);
    free(m->saved_caches_dir);
    if (m->schema)
        json_decref(m->schema);
    cs_scope_free(&m->scope);
    memset(m, 0, sizeof *m);
}
