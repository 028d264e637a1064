/* index.c - the plaintext index of one backup (see index.h). */
#include "repo/index.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "repo/repo.h"

#define INDEX_TYPE "cassette-index"
#define MAX_COUNT ((json_int_t)1 << 53) /* sizes and counts: what a double holds exactly */

/* ---- building ---- */

static int compare_objects(const void *a, const void *b)
{
    return strcmp(((const cs_index_object *)a)->id, ((const cs_index_object *)b)->id);
}

void cs_index_of_manifest(const cs_manifest *m, const void *sealed, size_t len, cs_index *out)
{
    memset(out, 0, sizeof *out);
    out->backup = cs_strdup(m->backup);
    out->host_id = cs_strdup(m->host_id);
    out->address = cs_strdup(m->address ? m->address : "");
    out->started_ms = (int64_t)(m->started * 1000.0);
    out->finished_ms = (int64_t)(m->finished * 1000.0);
    out->scope_recorded = m->scope.recorded;
    out->scope_all = !m->scope.recorded || m->scope.all;
    if (!out->scope_all)
        memcpy(out->scope_id, m->scope.id, CS_OBJECT_ID_HEX);
    cs_manifest_totals t;
    cs_manifest_totals_of(m, &t);
    out->files = t.files;
    out->size = t.size;
    out->stored = t.stored;
    out->files_new = t.files_new;
    out->size_new = t.size_new;
    out->stored_new = t.stored_new;
    out->manifest_size = len;
    cs_hash_result h;
    cs_hash_bytes(sealed, len, &h);
    memcpy(out->manifest_hash, h.hex, CS_HASH_HEX);
    out->objects = cs_calloc(t.files ? t.files : 1, sizeof *out->objects);
    size_t n = 0;
    for (size_t i = 0; i < m->n_tables; i++)
        for (size_t j = 0; j < m->tables[i].n_files; j++) {
            const cs_mfile *f = &m->tables[i].files[j];
            memcpy(out->objects[n].id, f->object, CS_OBJECT_ID_HEX);
            out->objects[n++].stored = f->stored;
        }
    if (n)
        qsort(out->objects, n, sizeof *out->objects, compare_objects);
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (!w || strcmp(out->objects[w - 1].id, out->objects[i].id))
            out->objects[w++] = out->objects[i]; /* two files, one object: listed once */
    out->n_objects = w;
}

bool cs_index_matches_manifest(const cs_index *ix, const void *sealed, size_t len)
{
    if (ix->manifest_size != len)
        return false;
    cs_hash_result h;
    cs_hash_bytes(sealed, len, &h);
    return !strcmp(h.hex, ix->manifest_hash);
}

/* ---- the document ---- */

static json_t *body_json(const cs_index *ix)
{
    json_t *objects = json_array();
    for (size_t i = 0; i < ix->n_objects; i++)
        json_array_append_new(objects, json_pack("[s, I]", ix->objects[i].id, (json_int_t)ix->objects[i].stored));
    json_t *totals = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "files", (json_int_t)ix->files, "size",
                               (json_int_t)ix->size, "stored", (json_int_t)ix->stored, "files_new",
                               (json_int_t)ix->files_new, "size_new", (json_int_t)ix->size_new, "stored_new",
                               (json_int_t)ix->stored_new);
    json_t *scope = !ix->scope_recorded ? json_null() : json_string(ix->scope_all ? "all" : "partial");
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:o, s:s, s:o, s:{s:I, s:s}, s:o}", "backup", ix->backup, "host_id",
                     ix->host_id, "address", ix->address ? ix->address : "", "started_ms", (json_int_t)ix->started_ms, "finished_ms",
                     (json_int_t)ix->finished_ms, "scope", scope, "scope_id", ix->scope_id, "totals", totals,
                     "manifest", "size", (json_int_t)ix->manifest_size, "blake2b", ix->manifest_hash, "objects",
                     objects);
}

/* The checksum of a body: BLAKE2b-256 of its canonical text. */
static void body_checksum(const json_t *body, char out[CS_HASH_HEX])
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (!text)
        abort(); /* jansson fails only without memory */
    cs_hash_result h;
    cs_hash_bytes(text, strlen(text), &h);
    memcpy(out, h.hex, CS_HASH_HEX);
    free(text);
}

char *cs_index_to_json(const cs_index *ix)
{
    json_t *body = body_json(ix);
    char sum[CS_HASH_HEX];
    body_checksum(body, sum);
    json_t *doc = json_pack("{s:s, s:i, s:s, s:o}", "type", INDEX_TYPE, "format", CS_INDEX_FORMAT, "blake2b", sum,
                            "body", body);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(doc);
    if (!text)
        abort();
    char *out = cs_sprintf("%s\n", text);
    free(text);
    return out;
}

/* ---- parsing ---- */

static bool is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* A host name or an IPv4/IPv6 address (it is shown on a terminal). */
static bool is_address(const char *s)
{
    size_t n = strlen(s);
    if (n > 255)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              strchr(".:-_%[]", s[i])))
            return false;
    return true;
}

static int get_count(json_t *obj, const char *key, uint64_t *out, cs_err *e)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_COUNT)
        return cs_err_set(e, CS_E_CORRUPT, "\"%s\" is missing or out of range", key);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_time(json_t *obj, const char *key, int64_t *out, cs_err *e)
{
    uint64_t v = 0;
    int rc = get_count(obj, key, &v, e);
    *out = (int64_t)v;
    return rc;
}

static int parse_objects(json_t *list, cs_index *ix, cs_err *e)
{
    if (!json_is_array(list))
        return cs_err_set(e, CS_E_CORRUPT, "\"objects\" is not a list");
    size_t n = json_array_size(list);
    ix->objects = cs_calloc(n ? n : 1, sizeof *ix->objects);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        const char *id = json_string_value(json_array_get(o, 0));
        json_t *stored = json_array_get(o, 1);
        if (json_array_size(o) != 2 || !cs_is_hex32(id) || !json_is_integer(stored) ||
            json_integer_value(stored) < 0 || json_integer_value(stored) > MAX_COUNT)
            return cs_err_set(e, CS_E_CORRUPT, "object %zu is not [id, stored size]", i + 1);
        if (i && strcmp(ix->objects[i - 1].id, id) >= 0)
            return cs_err_set(e, CS_E_CORRUPT, "objects are not sorted, or one is listed twice");
        memcpy(ix->objects[i].id, id, CS_OBJECT_ID_HEX);
        ix->objects[i].stored = (uint64_t)json_integer_value(stored);
        ix->n_objects = i + 1;
    }
    return 0;
}

static int parse_scope(json_t *body, cs_index *ix, cs_err *e)
{
    json_t *scope = json_object_get(body, "scope");
    const char *kind = json_string_value(scope);
    const char *id = json_string_value(json_object_get(body, "scope_id"));
    if (!id)
        return cs_err_set(e, CS_E_CORRUPT, "\"scope_id\" is missing");
    if (json_is_null(scope) || (kind && !strcmp(kind, "all"))) {
        ix->scope_recorded = !json_is_null(scope);
        ix->scope_all = true;
        return *id ? cs_err_set(e, CS_E_CORRUPT, "a scope of all has no id") : 0;
    }
    if (!kind || strcmp(kind, "partial") || !cs_is_hex32(id))
        return cs_err_set(e, CS_E_CORRUPT, "\"scope\" is neither all nor partial with an id");
    ix->scope_recorded = true;
    memcpy(ix->scope_id, id, CS_OBJECT_ID_HEX);
    return 0;
}

static int parse_body(json_t *body, cs_index *ix, cs_err *e)
{
    const char *backup = json_string_value(json_object_get(body, "backup"));
    const char *host = json_string_value(json_object_get(body, "host_id"));
    if (!backup || !cs_repo_is_valid_backup_name(backup) || !host || !cs_repo_is_valid_backup_name(host))
        return cs_err_set(e, CS_E_CORRUPT, "bad backup name or host id");
    const char *address = json_string_value(json_object_get(body, "address"));
    if (!address || !is_address(address))
        return cs_err_set(e, CS_E_CORRUPT, "bad address");
    ix->backup = cs_strdup(backup);
    ix->host_id = cs_strdup(host);
    ix->address = cs_strdup(address);
    json_t *totals = json_object_get(body, "totals");
    json_t *manifest = json_object_get(body, "manifest");
    const char *hash = json_string_value(json_object_get(manifest, "blake2b"));
    int rc = get_time(body, "started_ms", &ix->started_ms, e);
    if (!rc) rc = get_time(body, "finished_ms", &ix->finished_ms, e);
    if (!rc) rc = parse_scope(body, ix, e);
    if (!rc) rc = get_count(totals, "files", &ix->files, e);
    if (!rc) rc = get_count(totals, "size", &ix->size, e);
    if (!rc) rc = get_count(totals, "stored", &ix->stored, e);
    if (!rc) rc = get_count(totals, "files_new", &ix->files_new, e);
    if (!rc) rc = get_count(totals, "size_new", &ix->size_new, e);
    if (!rc) rc = get_count(totals, "stored_new", &ix->stored_new, e);
    if (!rc) rc = get_count(manifest, "size", &ix->manifest_size, e);
    if (!rc && !is_hex(hash, CS_HASH_HEX - 1))
        rc = cs_err_set(e, CS_E_CORRUPT, "the manifest's checksum is missing");
    if (rc)
        return rc;
    memcpy(ix->manifest_hash, hash, CS_HASH_HEX);
    rc = parse_objects(json_object_get(body, "objects"), ix, e);
    if (!rc && (ix->n_objects > ix->files || ix->files_new > ix->files))
        rc = cs_err_set(e, CS_E_CORRUPT, "the totals do not match the objects");
    return rc;
}

static int parse_doc(json_t *doc, cs_index *ix, cs_err *e)
{
    json_t *format = json_object_get(doc, "format");
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *sum = json_string_value(json_object_get(doc, "blake2b"));
    json_t *body = json_object_get(doc, "body");
    if (!json_is_object(doc) || !type || strcmp(type, INDEX_TYPE))
        return cs_err_set(e, CS_E_CORRUPT, "not a cassette index");
    if (!json_is_integer(format) || json_integer_value(format) != CS_INDEX_FORMAT)
        return cs_err_set(e, CS_E_CORRUPT, "unsupported index format");
    if (!json_is_object(body) || !is_hex(sum, CS_HASH_HEX - 1))
        return cs_err_set(e, CS_E_CORRUPT, "no body or no checksum");
    char actual[CS_HASH_HEX];
    body_checksum(body, actual);
    if (strcmp(actual, sum))
        return cs_err_set(e, CS_E_CORRUPT, "checksum mismatch (the index is damaged)");
    return parse_body(body, ix, e);
}

int cs_index_from_json(const char *text, size_t len, cs_index *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc)
        return cs_err_set(e, CS_E_CORRUPT, "invalid index: not valid JSON (line %d: %s)", jerr.line, jerr.text);
    int rc = parse_doc(doc, out, e);
    json_decref(doc);
    if (rc) {
        cs_index_free(out);
        return cs_err_prefix(e, "invalid index");
    }
    return 0;
}

void cs_index_free(cs_index *ix)
{
    free(ix->backup);
    free(ix->host_id);
    free(ix->address);
    free(ix->objects);
    memset(ix, 0, sizeof *ix);
}
