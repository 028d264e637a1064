#include "repo/repo.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "io/filters.h"

#define REPO_FILE "cassette.repo"

void cs_repo_new_object_id(char out[CS_OBJECT_ID_HEX])
{
    uint8_t raw[16];
    if (sodium_init() < 0)
        abort(); /* no randomness source: nothing safe to do */
    randombytes_buf(raw, sizeof raw);
    cs_hex(raw, sizeof raw, out);
}

char *cs_repo_object_key(const char *id)
{
    return cs_sprintf("objects/%.2s/%s", id, id);
}

bool cs_repo_is_valid_backup_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 128 || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int count_key(const char *key, const cs_storage_stat *st, void *arg)
{
    (void)key;
    (void)st;
    (*(size_t *)arg)++;
    return 1; /* one is enough to know the location is not empty */
}

/* The size of an empty age file to these recipients: its header (with the
 * stanzas, whose size depends on the recipients' types), the nonce and one
 * empty chunk. Fast verify compares listed sizes with what this predicts. */
static int measure_age_overhead(cs_repo *r, cs_err *e)
{
    if (!r->recipient_keys.n)
        return 0;
    uint64_t n = 0;
    cs_sink *s = age_encrypt_new(cs_count_filter_new(cs_null_sink_new(), &n), r->recipients, r->recipient_keys.n, e);
    int rc = s ? cs_sink_close(s, e) : e->code;
    cs_sink_free(s);
    r->age_empty_size = n;
    return rc;
}

uint64_t cs_repo_stored_size(const cs_repo *r, uint64_t payload)
{
    if (!cs_repo_is_encrypted(r))
        return payload;
    uint64_t chunks = payload ? (payload + AGE_CHUNK_SIZE - 1) / AGE_CHUNK_SIZE : 1;
    return r->age_empty_size + payload + (chunks - 1) * 16; /* 16: a Poly1305 tag per chunk */
}

static int parse_recipients(cs_repo *r, cs_err *e)
{
    r->recipients = cs_calloc(r->recipient_keys.n + 1, sizeof *r->recipients);
    for (size_t i = 0; i < r->recipient_keys.n; i++) {
        int rc = age_recipient_parse(r->recipient_keys.items[i], &r->recipients[i], e);
        if (rc)
            return cs_err_prefix(e, "recipient %zu", i + 1);
    }
    return measure_age_overhead(r, e);
}

static json_t *encryption_json(const cs_repo *r)
{
    if (!r->recipient_keys.n)
        return json_null();
    json_t *keys = json_array();
    for (size_t i = 0; i < r->recipient_keys.n; i++)
        json_array_append_new(keys, json_string(r->recipient_keys.items[i]));
    return json_pack("{s:s, s:o}", "type", "age", "recipients", keys);
}

static int write_repo_file(cs_repo *r, const cs_strlist *recipients, cs_err *e)
{
    for (size_t i = 0; recipients && i < recipients->n; i++)
        cs_strlist_add(&r->recipient_keys, recipients->items[i]);
    int rc = parse_recipients(r, e);
    if (rc)
        return rc;
    cs_repo_new_object_id(r->id);
    r->format = CS_REPO_FORMAT;
    json_t *root = json_pack("{s:i, s:s, s:s, s:o}", "format", CS_REPO_FORMAT, "id", r->id, "compression",
                             "zstd", "encryption", encryption_json(r));
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    cs_buf file = CS_BUF_INIT;
    cs_buf_printf(&file, "%s\n", text);
    rc = cs_storage_put_bytes(r->st, REPO_FILE, CS_PUT_EXCLUSIVE, file.data, file.len, e);
    cs_buf_free(&file);
    free(text);
    return rc;
}

static int read_repo_file(cs_repo *r, cs_err *e)
{
    cs_buf text = CS_BUF_INIT;
    int rc = cs_storage_get_bytes(r->st, REPO_FILE, 1 << 20, &text, e);
    if (rc)
        goto out;
    json_t *root = json_loadb(text.data, text.len, 0, NULL);
    json_t *format = json_object_get(root, "format");
    const char *id = json_string_value(json_object_get(root, "id"));
    json_t *enc = json_object_get(root, "encryption");
    json_t *keys = json_object_get(enc, "recipients");
    const char *type = json_string_value(json_object_get(enc, "type"));
    bool enc_ok = !enc || json_is_null(enc) ||
                  (type && !strcmp(type, "age") && json_is_array(keys) && json_array_size(keys) > 0);
    if (!json_is_integer(format) || !cs_is_hex32(id) || !enc_ok) {
        rc = cs_err_set(e, CS_E_CORRUPT, "%s: %s is damaged", r->location, REPO_FILE);
    } else if (json_integer_value(format) < CS_REPO_FORMAT_MIN || json_integer_value(format) > CS_REPO_FORMAT) {
        rc = cs_err_set(e, CS_E_INVAL, "%s: repository format %lld is not supported by this cassette",
                        r->location, (long long)json_integer_value(format));
    } else {
        r->format = (int)json_integer_value(format);
        memcpy(r->id, id, CS_OBJECT_ID_HEX);
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k) {
            if (!json_is_string(k)) {
                rc = cs_err_set(e, CS_E_CORRUPT, "%s: %s lists a recipient that is not a string", r->location, REPO_FILE);
                break;
            }
            cs_strlist_add(&r->recipient_keys, json_string_value(k));
        }
        if (!rc)
            rc = parse_recipients(r, e);
        if (rc)
            cs_err_prefix(e, "%s", REPO_FILE);
    }
    json_decref(root);
out:
    cs_buf_free(&text);
    return rc;
}

/* A repository around st (taken over). */
static cs_repo *repo_new(cs_storage *st)
{
    cs_repo *r = cs_calloc(1, sizeof *r);
    r->st = st;
    r->location = cs_strdup(st->location);
    return r;
}

static int location_is_empty(cs_repo *r, bool *empty, cs_err *e)
{
    size_t n = 0;
    int rc = cs_storage_list(r->st, "", count_key, &n, e);
    if (rc < 0)
        return rc;
    *empty = n == 0;
    return 0;
}

int cs_repo_open(cs_storage *st, bool create, const cs_repo_opts *opts, cs_repo **out, cs_err *e)
{
    cs_repo *r = repo_new(st);
    const cs_strlist *recipients = opts ? opts->recipients : NULL;
    int rc = read_repo_file(r, e);
    if (rc == CS_E_NOTFOUND) {
        bool empty = false;
        cs_err_clear(e);
        rc = location_is_empty(r, &empty, e);
        if (!rc && !(create && empty))
            rc = empty ? cs_err_set(e, CS_E_NOTFOUND, "%s is not a cassette repository (it is empty): %s", r->location,
                                    CS_REPO_NO_REPO_HINT)
                       : cs_err_set(e, CS_E_INVAL, "%s is not a cassette repository (no %s)", r->location, REPO_FILE);
        else if (!rc)
            rc = write_repo_file(r, recipients, e);
    }
    if (rc) {
        cs_repo_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int cs_repo_init(cs_storage *st, const cs_repo_opts *opts, cs_repo **out, cs_err *e)
{
    cs_repo *r = repo_new(st);
    const cs_strlist *recipients = opts ? opts->recipients : NULL;
    bool empty = false;
    int rc = location_is_empty(r, &empty, e);
    if (!rc && !empty)
        rc = cs_err_set(e, CS_E_EXISTS, "%s is not empty; a new repository needs an empty location", r->location);
    if (!rc)
        rc = write_repo_file(r, recipients, e);
    if (rc) {
        cs_repo_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void cs_repo_free(cs_repo *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->recipients && i < r->recipient_keys.n; i++)
        age_recipient_free(r->recipients[i]);
    free(r->recipients);
    cs_strlist_free(&r->recipient_keys);
    age_identities_free(r->identities, r->n_identities);
    cs_storage_free(r->st);
    free(r->location);
    free(r);
}

/* ---- encryption ---- */

bool cs_repo_is_encrypted(const cs_repo *r)
{
    return r->recipient_keys.n > 0;
}

int cs_repo_load_identities(cs_repo *r, const char *path, cs_err *e)
{
    age_identities_free(r->identities, r->n_identities);
    r->identities = NULL;
    r->n_identities = 0;
    int rc = age_identities_load(path, &r->identities, &r->n_identities, e);
    if (rc)
        return cs_err_prefix(e, "identity file %s", path);
    return 0;
}

int cs_repo_writer(cs_repo *r, const char *key, int flags, cs_sink **out, cs_err *e)
{
    cs_sink *w = NULL;
    int rc = cs_storage_put(r->st, key, flags, &w, e);
    if (rc || !cs_repo_is_encrypted(r)) {
        *out = w;
        return rc;
    }
    *out = age_encrypt_new(w, r->recipients, r->recipient_keys.n, e);
    return *out ? 0 : e->code;
}

int cs_repo_resumable_writer(cs_repo *r, const char *key, cs_put_resume *res, age_seal *seal, cs_sink **out,
                             cs_err *e)
{
    cs_sink *w = NULL;
    int rc = cs_storage_put_resumable(r->st, key, res, &w, e);
    if (rc || !cs_repo_is_encrypted(r)) {
        *out = w;
        return rc;
    }
    *out = age_encrypt_new_seal(w, r->recipients, r->recipient_keys.n, seal, e);
    return *out ? 0 : e->code;
}

int cs_repo_reader(cs_repo *r, cs_sink *dst, cs_sink **head, cs_err *e)
{
    *head = NULL;
    if (!cs_repo_is_encrypted(r)) {
        *head = dst;
        return 0;
    }
    if (!r->n_identities) {
        cs_sink_free(dst);
        return cs_err_set(e, CS_E_NOKEY,
                          "repository %s is encrypted: give an identity file with {identity}",
                          r->location);
    }
    *head = age_decrypt_new(dst, r->identities, r->n_identities, e);
    return *head ? 0 : e->code;
}


int cs_repo_put_doc(cs_repo *r, const char *key, int flags, const char *text, size_t len, cs_err *e)
{
    cs_sink *w = NULL;
    int rc = cs_repo_writer(r, key, flags, &w, e);
    if (!rc)
        rc = cs_sink_write(w, text, len, e);
    if (!rc)
        rc = cs_sink_close(w, e);
    cs_sink_free(w);
    return rc ? cs_err_prefix(e, "writing %s", key) : 0;
}

int cs_repo_get_doc(cs_repo *r, const char *key, size_t max, cs_buf *out, cs_err *e)
{
    cs_buf sealed = CS_BUF_INIT;
    cs_buf_reset(out);
    int rc = cs_storage_get_bytes(r->st, key, max + (max >> 8) + 4096, &sealed, e);
    cs_sink *head = NULL;
    if (!rc)
        rc = cs_repo_reader(r, cs_buf_sink_new(out, max), &head, e);
    if (!rc && sealed.len)
        rc = cs_sink_write(head, sealed.data, sealed.len, e);
    if (!rc)
        rc = cs_sink_close(head, e);
    cs_sink_free(head);
    if (rc)
        cs_err_prefix(e, "%s", key);
    cs_buf_free(&sealed);
    return rc;
}

/* ---- sealed files (manifests) ---- */

/* Stored manifests are at most this big (a CS_MANIFEST_MAX text, encrypted). */
#define SEALED_MAX ((size_t)CS_MANIFEST_MAX + (CS_MANIFEST_MAX >> 8))

/* The stored form of a manifest: its text, encrypted like the objects when
 * the repository is encrypted. Made in memory so that its index, written
 * first, can name its size and checksum. */
static int seal(cs_repo *r, const char *text, cs_buf *out, cs_err *e)
{
    cs_buf_reset(out);
    cs_sink *s = cs_buf_sink_new(out, SEALED_MAX);
    if (cs_repo_is_encrypted(r))
        s = age_encrypt_new(s, r->recipients, r->recipient_keys.n, e);
    int rc = s ? cs_sink_write(s, text, strlen(text), e) : e->code;
    if (!rc)
        rc = cs_sink_close(s, e);
    cs_sink_free(s);
    return rc;
}

/* The text of a stored manifest (decrypted when needed). */
static int unseal(cs_repo *r, const cs_buf *sealed, cs_buf *out, cs_err *e)
{
    cs_buf_reset(out);
    cs_sink *head = NULL;
    int rc = cs_repo_reader(r, cs_buf_sink_new(out, CS_MANIFEST_MAX), &head, e);
    if (!rc && sealed->len)
        rc = cs_sink_write(head, sealed->data, sealed->len, e);
    if (!rc)
        rc = cs_sink_close(head, e);
    cs_sink_free(head);
    return rc;
}

/* A manifest from its stored bytes: checked against its index when there
 * is one (before decrypting, so that damage is named as such, even with a
 * wrong identity), then decrypted, parsed, and checked to be the manifest
 * of this backup of this host. */
static int manifest_of_bytes(cs_repo *r, const char *name, const char *host, const cs_buf *sealed,
                             const cs_index *ix, cs_manifest *out, cs_err *e)
{
    if (ix && !cs_index_matches_manifest(ix, sealed->data, sealed->len))
        return cs_err_set(e, CS_E_CORRUPT,
                          "the manifest (%zu bytes) does not match its index (%llu bytes, checksum %.12s...): it is "
                          "damaged or was replaced",
                          sealed->len, (unsigned long long)ix->manifest_size, ix->manifest_hash);
    cs_buf text = CS_BUF_INIT;
    int rc = unseal(r, sealed, &text, e);
    if (!rc)
        rc = cs_manifest_from_json(text.data, text.len, out, e);
    cs_buf_free(&text);
    if (!rc && (strcmp(out->backup, name) || strcmp(out->host_id, host))) {
        cs_manifest_free(out);
        rc = cs_err_set(e, CS_E_CORRUPT, "the manifest names another backup or host");
    }
    return rc;
}

/* Damage (a file that fails its checks), as opposed to a failure to reach
 * the repository or a missing key, which say nothing about the backup. */
static bool is_damage(int rc)
{
    return rc == CS_E_CORRUPT || rc == CS_E_INVAL || rc == CS_E_PROTO;
}

/* ---- backups ---- */

const char *const cs_backup_suffix[CS_BK_KINDS] = { "started", "index", "manifest", "summary" };
const int cs_backup_delete_order[CS_BK_KINDS] = { CS_BK_STARTED, CS_BK_SUMMARY, CS_BK_MANIFEST, CS_BK_INDEX };

char *cs_repo_backup_key(const char *name, const char *host_id, const char *suffix)
{
    return cs_sprintf("backups/%s/%s.%s", name, host_id, suffix);
}


/* Start marks and summaries: plaintext, so no keyspace or table name
 * when the repository is encrypted ("partial" and the opaque id then). */
static json_t *summary_json(const cs_repo *r, const cs_manifest *m, bool complete, uint64_t manifest_size)
{
    cs_manifest_totals t;
    cs_manifest_totals_of(m, &t);
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "format", CS_REPO_FORMAT,
                          "name", m->backup, "host_id", m->host_id, "address", m->address ? m->address : "",
                          "started", m->started, "finished", complete ? m->finished : 0.0, "files",
                          (json_int_t)t.files, "size", (json_int_t)t.size, "stored", (json_int_t)t.stored, "files_new",
                          (json_int_t)t.files_new, "size_new", (json_int_t)t.size_new, "stored_new",
                          (json_int_t)t.stored_new, "complete", complete);
    const cs_scope *s = &m->scope;
    if (s->recorded) {
        json_object_set_new(j, "scope", json_string(s->all ? "all" : "partial"));
        if (!s->all)
            json_object_set_new(j, "scope_id", json_string(s->id));
        if (!s->all && !cs_repo_is_encrypted(r)) {
            json_object_set_new(j, "scope_keyspaces", cs_strlist_json(&s->keyspaces));
            json_object_set_new(j, "scope_tables", cs_strlist_json(&s->tables));
        }
    }
    if (complete)
        json_object_set_new(j, "manifest_size", json_integer((json_int_t)manifest_size));
    return j;
}

static int put_json(cs_repo *r, const char *key, int flags, json_t *j, cs_err *e)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int rc = cs_storage_put_bytes(r->st, key, flags, text, strlen(text), e);
    free(text);
    return rc;
}

int cs_repo_check_name_free(cs_repo *r, const char *name, cs_err *e)
{
    char *prefix = cs_sprintf("backups/%s/", name);
    size_t n = 0;
    int rc = cs_storage_list(r->st, prefix, count_key, &n, e);
    free(prefix);
    if (rc < 0)
        return rc;
    return n ? cs_err_set(e, CS_E_EXISTS, "a backup named %s already exists", name) : 0;
}

int cs_repo_mark_started(cs_repo *r, const cs_manifest *m, cs_err *e)
{
    char *key = cs_repo_backup_key(m->backup, m->host_id, "started");
    int rc = put_json(r, key, CS_PUT_EXCLUSIVE, summary_json(r, m, false, 0), e);
    if (rc == CS_E_EXISTS)
        cs_err_set(e, CS_E_EXISTS, "a backup named %s already exists", m->backup);
    free(key);
    return rc;
}

/* The index first: a manifest (the commit point) never exists without
 * it, and a crash in between leaves an incomplete backup like any other. */
int cs_repo_put_manifest(cs_repo *r, const cs_manifest *m, cs_err *e)
{
    char *text = NULL, *index_text = NULL;
    char *key = NULL;
    cs_buf sealed = CS_BUF_INIT;
    cs_index ix;
    memset(&ix, 0, sizeof ix);
    int rc = cs_manifest_to_json(m, &text, e);
    if (!rc)
        rc = seal(r, text, &sealed, e);
    if (rc)
        goto out;
    cs_index_of_manifest(m, sealed.data, sealed.len, &ix);
    index_text = cs_index_to_json(&ix);
    key = cs_repo_backup_key(m->backup, m->host_id, "index");
    rc = cs_storage_put_bytes(r->st, key, CS_PUT_EXCLUSIVE, index_text, strlen(index_text), e);
    free(key);
    key = cs_repo_backup_key(m->backup, m->host_id, "manifest");
    if (!rc)
        rc = cs_storage_put_bytes(r->st, key, CS_PUT_EXCLUSIVE, sealed.data, sealed.len, e);
    if (rc)
        goto out;
    free(key);
    key = cs_repo_backup_key(m->backup, m->host_id, "summary");
    rc = put_json(r, key, 0, summary_json(r, m, true, sealed.len), e);
    if (rc)
        cs_err_prefix(e, "writing the summary of %s", m->backup);
out:
    if (rc && !strstr(e->msg, "writing the summary"))
        cs_err_prefix(e, "writing the manifest of %s", m->backup);
    cs_index_free(&ix);
    cs_buf_free(&sealed);
    free(index_text);
    free(text);
    free(key);
    return rc;
}

int cs_repo_read_index(cs_repo *r, const char *name, const char *host_id, cs_index *out, cs_err *e)
{
    char *key = cs_repo_backup_key(name, host_id, "index");
    cs_buf text = CS_BUF_INIT;
    memset(out, 0, sizeof *out);
    int rc = cs_storage_get_bytes(r->st, key, CS_INDEX_MAX, &text, e);
    if (!rc)
        rc = cs_index_from_json(text.data, text.len, out, e);
    if (!rc && (strcmp(out->backup, name) || strcmp(out->host_id, host_id))) {
        cs_index_free(out);
        rc = cs_err_set(e, CS_E_CORRUPT, "it names another backup or host");
    }
    if (rc)
        cs_err_prefix(e, "%s", key);
    cs_buf_free(&text);
    free(key);
    return rc;
}

typedef struct host_scan {
    const char *prefix;
    cs_strlist manifests; /* host ids with a manifest */
    cs_strlist started;   /* host ids with a start mark */
    cs_strlist indexes;   /* host ids with an index */
} host_scan;

static int scan_host(const char *key, const cs_storage_stat *st, void *arg)
{
    (void)st;
    host_scan *s = arg;
    const char *file = key + strlen(s->prefix);
    const char *dot = strrchr(file, '.');
    if (!dot || strchr(file, '/'))
        return 0;
    char *host = cs_strndup(file, (size_t)(dot - file));
    if (!strcmp(dot, ".manifest"))
        cs_strlist_add(&s->manifests, host);
    else if (!strcmp(dot, ".started"))
        cs_strlist_add(&s->started, host);
    else if (!strcmp(dot, ".index"))
        cs_strlist_add(&s->indexes, host);
    free(host);
    return 0;
}

/* The manifest of one host, checked against its index when that is
 * sound. A damaged index does not stop a restore: the manifest, which
 * authenticates itself when encrypted and is validated anyway, is enough. */
static int read_checked_manifest(cs_repo *r, const char *name, const char *host, bool has_index, cs_manifest *out,
                                 cs_err *e)
{
    cs_index ix;
    bool index_ok = false;
    if (has_index) {
        cs_err ix_err;
        cs_err_clear(&ix_err);
        int rc = cs_repo_read_index(r, name, host, &ix, &ix_err);
        if (rc && !is_damage(rc)) {
            *e = ix_err;
            return rc;
        }
        index_ok = rc == 0;
        if (rc)
            cs_debug("%s (the manifest is checked without it)", ix_err.msg);
    }
    char *key = cs_repo_backup_key(name, host, "manifest");
    cs_buf sealed = CS_BUF_INIT;
    int rc = cs_storage_get_bytes(r->st, key, SEALED_MAX, &sealed, e);
    if (!rc)
        rc = manifest_of_bytes(r, name, host, &sealed, index_ok ? &ix : NULL, out, e);
    if (rc)
        cs_err_prefix(e, "%s", key);
    if (index_ok)
        cs_index_free(&ix);
    cs_buf_free(&sealed);
    free(key);
    return rc;
}

int cs_repo_read_manifest(cs_repo *r, const char *name, const char *host_id, cs_manifest *out, cs_err *e)
{
    if (!cs_repo_is_valid_backup_name(name))
        return cs_err_set(e, CS_E_NOTFOUND, "no backup named \"%s\" in %s", name, r->location);
    host_scan s = { .prefix = NULL };
    char *prefix = cs_sprintf("backups/%s/", name);
    s.prefix = prefix;
    int rc = cs_storage_list(r->st, prefix, scan_host, &s, e);
    if (rc)
        goto out;
    if (host_id && !cs_strlist_has(&s.manifests, host_id))
        rc = cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no node with host id %s", name, host_id);
    else if (!s.manifests.n && s.started.n)
        rc = cs_err_set(e, CS_E_INVAL, "backup %s is incomplete (it was interrupted); choose another", name);
    else if (!s.manifests.n)
        rc = cs_err_set(e, CS_E_NOTFOUND, "no backup named %s in %s", name, r->location);
    else if (!host_id && s.manifests.n > 1)
        rc = cs_err_set(e, CS_E_INVAL, "backup %s holds %zu nodes; name the host", name, s.manifests.n);
    if (rc)
        goto out;
    const char *host = host_id ? host_id : s.manifests.items[0];
    rc = read_checked_manifest(r, name, host, cs_strlist_has(&s.indexes, host), out, e);
    if (rc)
        cs_err_prefix(e, "backup %s", name);
out:
    cs_strlist_free(&s.manifests);
    cs_strlist_free(&s.started);
    cs_strlist_free(&s.indexes);
    free(prefix);
    return rc;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cs_repo_backup_hosts(cs_repo *r, const char *name, cs_strlist *out, cs_err *e)
{
    if (!cs_repo_is_valid_backup_name(name))
        return 0;
    host_scan s = { .prefix = NULL };
    char *prefix = cs_sprintf("backups/%s/", name);
    s.prefix = prefix;
    int rc = cs_storage_list(r->st, prefix, scan_host, &s, e);
    if (s.manifests.n)
        qsort(s.manifests.items, s.manifests.n, sizeof *s.manifests.items, compare_strings);
    for (size_t i = 0; !rc && i < s.manifests.n; i++)
        cs_strlist_add(out, s.manifests.items[i]);
    cs_strlist_free(&s.manifests);
    cs_strlist_free(&s.started);
    cs_strlist_free(&s.indexes);
    free(prefix);
    return rc;
}

/* ---- scope ---- */

static int create_scope_key(const char *path, cs_err *e)
{
    uint8_t raw[32];
    char hex[65];
    randombytes_buf(raw, sizeof raw);
    cs_hex(raw, sizeof raw, hex);
    sodium_memzero(raw, sizeof raw);
    hex[64] = '\n';
    char *tmp = cs_sprintf("%s.%ld.tmp", path, (long)getpid());
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot create %s", tmp);
    if (!rc && (write(fd, hex, sizeof hex) != (ssize_t)sizeof hex || fsync(fd) != 0))
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot write %s", tmp);
    if (fd >= 0)
        close(fd);
    /* link, not rename: two first backups at once agree on one key. */
    if (!rc && link(tmp, path) != 0 && errno != EEXIST)
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot create %s", path);
    if (fd >= 0)
        unlink(tmp);
    sodium_memzero(hex, sizeof hex);
    free(tmp);
    return rc;
}

static int read_scope_key(const char *path, uint8_t key[32], cs_err *e)
{
    char *text = NULL;
    size_t len = 0;
    int rc = cs_read_file(path, 256, &text, &len, e);
    if (rc)
        return rc;
    size_t got = 0;
    if (len < 64 || sodium_hex2bin(key, 32, text, 64, NULL, &got, NULL) != 0 || got != 32)
        rc = cs_err_set(e, CS_E_CORRUPT,
                        "scope key %s is damaged (remove it: partial backups then start a new retention group)", path);
    sodium_memzero(text, len);
    free(text);
    return rc;
}

int cs_repo_scope_of(cs_repo *r, const char *key_dir, const cs_strlist *keyspaces, const cs_strlist *tables,
                     cs_scope *out, cs_err *e)
{
    cs_scope_set(out, keyspaces, tables);
    if (out->all)
        return 0;
    uint8_t key[32];
    size_t key_len = 0;
    int rc = 0;
    if (sodium_init() < 0)
        abort(); /* no randomness source: nothing safe to do */
    if (cs_repo_is_encrypted(r)) {
        char *dir = cs_sprintf("%s/%s", key_dir, r->id);
        char *path = cs_sprintf("%s/scope.key", dir);
        rc = cs_mkdirs(dir, 0700, e);
        if (!rc && !cs_exists(path))
            rc = create_scope_key(path, e);
        if (!rc)
            rc = read_scope_key(path, key, e);
        free(dir);
        free(path);
        key_len = sizeof key;
    }
    if (rc)
        return cs_err_prefix(e, "the scope of the backup");
    char *text = cs_scope_canonical(out);
    uint8_t id[16];
    crypto_generichash(id, sizeof id, (const uint8_t *)text, strlen(text), key_len ? key : NULL, key_len);
    cs_hex(id, sizeof id, out->id);
    sodium_memzero(key, sizeof key);
    free(text);
    return 0;
}

/* ---- the files of every backup ---- */

typedef struct files_scan {
    cs_backup_files *items;
    size_t n;
} files_scan;

static int kind_of(const char *suffix)
{
    for (int k = 0; k < CS_BK_KINDS; k++)
        if (suffix[0] == '.' && !strcmp(suffix + 1, cs_backup_suffix[k]))
            return k;
    return -1;
}

static int scan_key(const char *key, const cs_storage_stat *st, void *arg)
{
    files_scan *s = arg;
    const char *name = key + strlen("backups/");
    const char *slash = strchr(name, '/');
    const char *dot = slash ? strrchr(slash, '.') : NULL;
    int kind = dot ? kind_of(dot) : -1;
    if (kind < 0 || strchr(slash + 1, '/') || dot == slash + 1)
        return 0; /* not a backup's file: nothing of ours */
    char *bname = cs_strndup(name, (size_t)(slash - name));
    char *host = cs_strndup(slash + 1, (size_t)(dot - slash - 1));
    if (!cs_repo_is_valid_backup_name(bname) || !cs_repo_is_valid_backup_name(host)) {
        free(bname);
        free(host);
        return 0; /* no key of ours looks like this */
    }
    s->items = cs_realloc(s->items, (s->n + 1) * sizeof *s->items);
    cs_backup_files *b = &s->items[s->n++];
    memset(b, 0, sizeof *b);
    b->name = bname;
    b->host = host;
    b->has[kind] = true;
    b->size[kind] = st->size;
    b->mtime[kind] = st->mtime;
    return 0;
}

static int compare_files(const void *a, const void *b)
{
    const cs_backup_files *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->host, y->host);
}

/* One entry per (name, host), sorted, with the kinds merged. */
static void merge_scan(files_scan *s)
{
    if (!s->n)
        return;
    qsort(s->items, s->n, sizeof *s->items, compare_files);
    size_t w = 0;
    for (size_t i = 1; i < s->n; i++) {
        cs_backup_files *into = &s->items[w], *b = &s->items[i];
        if (!compare_files(into, b)) {
            for (int k = 0; k < CS_BK_KINDS; k++)
                if (b->has[k]) {
                    into->has[k] = true;
                    into->size[k] = b->size[k];
                    into->mtime[k] = b->mtime[k];
                }
            free(b->name);
            free(b->host);
        } else {
            s->items[++w] = *b;
        }
    }
    s->n = w + 1;
}

int cs_repo_scan_backups(cs_repo *r, cs_backup_files **out, size_t *n, cs_err *e)
{
    files_scan s = { NULL, 0 };
    int rc = cs_storage_list(r->st, "backups/", scan_key, &s, e);
    if (rc) {
        cs_backup_files_free(s.items, s.n);
        return rc;
    }
    merge_scan(&s);
    *out = s.items;
    *n = s.n;
    return 0;
}

void cs_backup_files_free(cs_backup_files *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].name);
        free(b[i].host);
    }
    free(b);
}

bool cs_backup_files_is_leftover(const cs_backup_files *f)
{
    return !f->has[CS_BK_STARTED] && !f->has[CS_BK_MANIFEST];
}

/* ---- entries ---- */

void cs_backup_entry_clear(cs_backup_entry *b)
{
    free(b->name);
    free(b->host_id);
    free(b->address);
    free(b->scope);
    free(b->scope_names);
    free(b->scope_id);
    free(b->damage);
    cs_set_info_free(b->set);
    memset(b, 0, sizeof *b);
}

void cs_backup_entries_free(cs_backup_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cs_backup_entry_clear(&entries[i]);
    free(entries);
}

char *cs_backup_entry_group(const cs_backup_entry *b)
{
    if (b->scope && !strcmp(b->scope, "partial"))
        return cs_sprintf("partial:%s", b->scope_id ? b->scope_id : "");
    return cs_strdup("all");
}

static bool is_table_name(const char *s)
{
    const char *dot = strchr(s, '.');
    if (!dot)
        return false;
    char *ks = cs_strndup(s, (size_t)(dot - s));
    bool ok = cs_repo_is_valid_backup_name(ks) && !strchr(dot + 1, '.') && cs_repo_is_valid_backup_name(dot + 1);
    free(ks);
    return ok;
}

/* "ks1,ks2,ks.t" from a summary's lists, or NULL when they are missing or
 * hold anything but names (they are shown on a terminal). */
static char *names_of(json_t *keyspaces, json_t *tables)
{
    cs_buf b = CS_BUF_INIT;
    json_t *lists[2] = { keyspaces, tables };
    bool ok = json_is_array(keyspaces);
    for (size_t l = 0; ok && l < 2; l++) {
        size_t i;
        json_t *v;
        json_array_foreach(lists[l], i, v) {
            const char *s = json_string_value(v);
            if (!s || !(l ? is_table_name(s) : cs_repo_is_valid_backup_name(s))) {
                ok = false;
                break;
            }
            if (b.len)
                cs_buf_addch(&b, ',');
            cs_buf_addstr(&b, s);
        }
    }
    if (!ok || !b.len) {
        cs_buf_free(&b);
        return NULL;
    }
    return cs_buf_detach(&b);
}

static void scope_of_summary(json_t *j, cs_backup_entry *out)
{
    const char *scope = json_string_value(json_object_get(j, "scope"));
    const char *id = json_string_value(json_object_get(j, "scope_id"));
    if (scope && !strcmp(scope, "all")) {
        out->scope = cs_strdup("all");
    } else if (scope && !strcmp(scope, "partial") && cs_is_hex32(id)) {
        out->scope = cs_strdup("partial");
        out->scope_id = cs_strdup(id);
        out->scope_names = names_of(json_object_get(j, "scope_keyspaces"), json_object_get(j, "scope_tables"));
    }
}

/* A start mark or summary (small plaintext JSON). *manifest_size: what a
 * summary says its manifest holds (0: not said, as before format 2). */
static int read_summary(cs_repo *r, const cs_backup_files *f, int kind, cs_backup_entry *out,
                        uint64_t *manifest_size, cs_err *e)
{
    char *key = cs_repo_backup_key(f->name, f->host, cs_backup_suffix[kind]);
    cs_buf text = CS_BUF_INIT;
    int rc = cs_storage_get_bytes(r->st, key, 1 << 20, &text, e);
    json_t *j = rc ? NULL : json_loadb(text.data, text.len, 0, NULL);
    cs_buf_free(&text);
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *host = json_string_value(json_object_get(j, "host_id"));
    if (!rc && (!name || !host || strcmp(name, f->name) || strcmp(host, f->host)))
        rc = cs_err_set(e, CS_E_CORRUPT, "%s is damaged", key);
    free(key);
    if (rc) {
        json_decref(j);
        return rc;
    }
    memset(out, 0, sizeof *out);
    out->name = cs_strdup(f->name);
    out->host_id = cs_strdup(f->host);
    const char *addr = json_string_value(json_object_get(j, "address"));
    out->address = cs_strdup(addr ? addr : "");
    out->started = json_number_value(json_object_get(j, "started"));
    out->finished = json_number_value(json_object_get(j, "finished"));
    out->files = (uint64_t)json_integer_value(json_object_get(j, "files"));
    out->size = (uint64_t)json_integer_value(json_object_get(j, "size"));
    out->stored = (uint64_t)json_integer_value(json_object_get(j, "stored"));
    json_t *stored_new = json_object_get(j, "stored_new");
    out->has_new = json_is_integer(stored_new);
    out->files_new = (uint64_t)json_integer_value(json_object_get(j, "files_new"));
    out->size_new = (uint64_t)json_integer_value(json_object_get(j, "size_new"));
    out->stored_new = (uint64_t)json_integer_value(stored_new);
    scope_of_summary(j, out);
    json_t *ms = json_object_get(j, "manifest_size");
    *manifest_size = json_is_integer(ms) && json_integer_value(ms) > 0 ? (uint64_t)json_integer_value(ms) : 0;
    json_decref(j);
    return 0;
}

static void scope_of_manifest(const cs_manifest *m, cs_backup_entry *out)
{
    if (!m->scope.recorded)
        return;
    out->scope = cs_strdup(m->scope.all ? "all" : "partial");
    if (!m->scope.all) {
        out->scope_id = cs_strdup(m->scope.id);
        out->scope_names = cs_scope_describe(&m->scope);
    }
}

/* With an identity, an encrypted repository's partial scope gets its names. */
static void scope_names_of_manifest(const cs_manifest *m, cs_backup_entry *out)
{
    if (m->scope.recorded && !m->scope.all && !out->scope_names)
        out->scope_names = cs_scope_describe(&m->scope);
}

void cs_repo_entry_of_manifest(const cs_manifest *m, cs_backup_entry *out)
{
    cs_manifest_totals t;
    cs_manifest_totals_of(m, &t);
    memset(out, 0, sizeof *out);
    out->name = cs_strdup(m->backup);
    out->host_id = cs_strdup(m->host_id);
    out->address = cs_strdup(m->address ? m->address : "");
    out->started = m->started;
    out->finished = m->finished;
    out->files = t.files;
    out->size = t.size;
    out->stored = t.stored;
    out->files_new = t.files_new;
    out->size_new = t.size_new;
    out->stored_new = t.stored_new;
    out->has_new = true;
    out->complete = true;
    scope_of_manifest(m, out);
}

static void entry_of_index(const cs_index *ix, cs_backup_entry *out)
{
    memset(out, 0, sizeof *out);
    out->name = cs_strdup(ix->backup);
    out->host_id = cs_strdup(ix->host_id);
    out->address = cs_strdup(ix->address ? ix->address : "");
    out->started = (double)ix->started_ms / 1000.0;
    out->finished = (double)ix->finished_ms / 1000.0;
    out->files = ix->files;
    out->size = ix->size;
    out->stored = ix->stored;
    out->files_new = ix->files_new;
    out->size_new = ix->size_new;
    out->stored_new = ix->stored_new;
    out->has_new = true;
    if (ix->scope_recorded)
        out->scope = cs_strdup(ix->scope_all ? "all" : "partial");
    if (!ix->scope_all)
        out->scope_id = cs_strdup(ix->scope_id);
}

/* Only what the listing knows: name, host and a time. */
static void bare_entry(const cs_backup_files *f, int kind, cs_backup_entry *out)
{
    memset(out, 0, sizeof *out);
    out->name = cs_strdup(f->name);
    out->host_id = cs_strdup(f->host);
    out->address = cs_strdup("");
    out->started = (double)f->mtime[kind];
}

/* The first reason found is the one reported. */
static void note_damage(char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_damage(char **why, const char *fmt, ...)
{
    if (*why)
        return;
    va_list ap;
    va_start(ap, fmt);
    cs_buf b = CS_BUF_INIT;
    cs_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    /* Parser messages quote the damaged bytes: shown on a terminal, so
     * only printable ASCII goes through. */
    for (size_t i = 0; i < b.len; i++)
        if ((unsigned char)b.data[i] < 0x20 || (unsigned char)b.data[i] >= 0x7f)
            b.data[i] = '?';
    *why = cs_buf_detach(&b);
}

/* A start mark without a manifest: a backup under way or interrupted. A
 * damaged mark hides nothing (that backup is incomplete either way): it is
 * listed with the mark's time, so that purge still cleans it up. */
static int load_incomplete(cs_repo *r, const cs_backup_files *f, cs_backup_info *out, cs_err *e)
{
    uint64_t unused = 0;
    int rc = read_summary(r, f, CS_BK_STARTED, &out->entry, &unused, e);
    if (rc && is_damage(rc)) {
        cs_debug("%s", e->msg);
        cs_err_clear(e);
        bare_entry(f, CS_BK_STARTED, &out->entry);
        rc = 0;
    }
    out->entry.complete = false;
    return rc;
}

typedef struct load_ctx {
    cs_repo *r;
    const cs_backup_files *f;
    cs_load_level level;
    cs_backup_info *out;
    bool have_entry;
    bool index_ok;
    char *why;     /* the damage found, if any */
} load_ctx;

static int load_summary(load_ctx *c, cs_err *e)
{
    const cs_backup_files *f = c->f;
    uint64_t claim = 0;
    if (!f->has[CS_BK_SUMMARY])
        return 0;
    int rc = read_summary(c->r, f, CS_BK_SUMMARY, &c->out->entry, &claim, e);
    if (rc && (is_damage(rc) || rc == CS_E_NOTFOUND)) {
        cs_err_clear(e); /* a summary is only a shortcut: the index or manifest says the same */
        return 0;
    }
    if (rc)
        return rc;
    c->have_entry = true;
    if (claim && claim != f->size[CS_BK_MANIFEST])
        note_damage(&c->why, "its manifest holds %llu bytes, its summary says %llu (truncated or replaced)",
                    (unsigned long long)f->size[CS_BK_MANIFEST], (unsigned long long)claim);
    return 0;
}

static int load_index(load_ctx *c, cs_err *e)
{
    const cs_backup_files *f = c->f;
    if (!f->has[CS_BK_INDEX]) {
        if (c->r->format >= 2)
            note_damage(&c->why, "its index is missing");
        return 0;
    }
    if (c->level == CS_LOAD_ENTRY && c->have_entry)
        return 0; /* list stays cheap: the summary said enough */
    int rc = cs_repo_read_index(c->r, f->name, f->host, &c->out->index, e);
    if (rc && (is_damage(rc) || rc == CS_E_NOTFOUND)) {
        note_damage(&c->why, "%s", rc == CS_E_NOTFOUND ? "its index is missing" : e->msg);
        cs_err_clear(e);
        return 0;
    }
    if (rc)
        return rc;
    c->index_ok = true;
    const cs_index *ix = &c->out->index;
    if (ix->manifest_size != f->size[CS_BK_MANIFEST])
        note_damage(&c->why, "its manifest holds %llu bytes, its index says %llu (truncated or replaced)",
                    (unsigned long long)f->size[CS_BK_MANIFEST], (unsigned long long)ix->manifest_size);
    if (!c->have_entry) {
        entry_of_index(ix, &c->out->entry);
        c->have_entry = true;
    }
    return 0;
}

/* Read the manifest when the level wants its references or nothing else
 * gave an entry; without an identity, only check its bytes against the
 * index. */
static int load_manifest(load_ctx *c, cs_err *e)
{
    cs_repo *r = c->r;
    const cs_backup_files *f = c->f;
    bool readable = !cs_repo_is_encrypted(r) || r->n_identities;
    bool want_refs = c->level == CS_LOAD_MANIFEST || (c->level == CS_LOAD_REFS && (readable || !c->index_ok));
    if (!want_refs && c->have_entry && !(c->level == CS_LOAD_REFS && c->index_ok))
        return 0;
    if (!readable && (want_refs || !c->have_entry)) {
        if (!c->have_entry) {
            note_damage(&c->why, "its summary and index are damaged, and its manifest needs an identity (--identity)");
            return 0;
        }
        if (c->why)
            return 0; /* its index is damaged or missing: noted already */
        return cs_err_set(e, CS_E_NOKEY,
                          "backup %s of %s has no index (it was written before repository format 2): give an "
                          "identity file with {identity}",
                          f->name, f->host);
    }
    char *key = cs_repo_backup_key(f->name, f->host, "manifest");
    cs_buf sealed = CS_BUF_INIT;
    int rc = cs_storage_get_bytes(r->st, key, SEALED_MAX, &sealed, e);
    if (!rc && readable)
        rc = manifest_of_bytes(r, f->name, f->host, &sealed, c->index_ok ? &c->out->index : NULL, &c->out->manifest, e);
    else if (!rc && !cs_index_matches_manifest(&c->out->index, sealed.data, sealed.len))
        rc = cs_err_set(e, CS_E_CORRUPT, "the manifest does not match its index: it is damaged or was replaced");
    if (rc && is_damage(rc)) {
        note_damage(&c->why, "%s: %s", key, e->msg);
        cs_err_clear(e);
        rc = 0;
    } else if (!rc && readable) {
        c->out->refs = 2;
        if (!c->have_entry)
            cs_repo_entry_of_manifest(&c->out->manifest, &c->out->entry);
        else
            scope_names_of_manifest(&c->out->manifest, &c->out->entry);
        c->have_entry = true;
    }
    cs_buf_free(&sealed);
    free(key);
    return rc;
}

int cs_repo_load_backup(cs_repo *r, const cs_backup_files *f, cs_load_level level, cs_backup_info *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    if (!f->has[CS_BK_MANIFEST]) {
        if (!f->has[CS_BK_STARTED])
            return cs_err_set(e, CS_E_NOTFOUND, "backup %s of %s: only leftovers of a removal", f->name, f->host);
        return load_incomplete(r, f, out, e);
    }
    load_ctx c = { r, f, level, out, false, false, NULL };
    int rc = load_summary(&c, e);
    if (!rc)
        rc = load_index(&c, e);
    if (!rc)
        rc = load_manifest(&c, e);
    if (rc) {
        free(c.why);
        cs_backup_info_free(out);
        return rc;
    }
    if (out->refs == 0 && c.index_ok && level >= CS_LOAD_REFS)
        out->refs = 1;
    if (!c.have_entry)
        bare_entry(f, CS_BK_MANIFEST, &out->entry);
    out->entry.complete = !c.why;
    out->entry.damage = c.why;
    return 0;
}

void cs_backup_info_free(cs_backup_info *info)
{
    cs_backup_entry_clear(&info->entry);
    cs_index_free(&info->index);
    cs_manifest_free(&info->manifest);
    info->refs = 0;
}

/* ---- listing ---- */

static int compare_entries(const void *a, const void *b)
{
    const cs_backup_entry *x = a, *y = b;
    if (x->started != y->started)
        return x->started < y->started ? -1 : 1;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->host_id, y->host_id);
}

int cs_repo_list_backups(cs_repo *r, cs_backup_entry **out, size_t *n, cs_err *e)
{
    cs_backup_files *files = NULL;
    size_t n_files = 0;
    cs_backup_entry *entries = NULL;
    size_t count = 0;
    int rc = cs_repo_scan_backups(r, &files, &n_files, e);
    for (size_t i = 0; !rc && i < n_files; i++) {
        cs_backup_info info;
        rc = cs_repo_load_backup(r, &files[i], CS_LOAD_ENTRY, &info, e);
        if (rc == CS_E_NOTFOUND) {
            cs_err_clear(e); /* leftovers, or removed since the listing */
            rc = 0;
            continue;
        }
        if (rc)
            break;
        entries = cs_realloc(entries, (count + 1) * sizeof *entries);
        entries[count++] = info.entry; /* the strings move over */
        memset(&info.entry, 0, sizeof info.entry);
        cs_backup_info_free(&info);
    }
    cs_backup_files_free(files, n_files);
    if (rc) {
        cs_backup_entries_free(entries, count);
        return rc;
    }
    if (count)
        qsort(entries, count, sizeof *entries, compare_entries);
    *out = entries;
    *n = count;
    return 0;
}
