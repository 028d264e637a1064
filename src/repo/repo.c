#include "repo/repo.h"

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

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
    } else if (json_integer_value(format) != CS_REPO_FORMAT) {
        rc = cs_err_set(e, CS_E_INVAL, "%s: repository format %lld is not supported by this cassette",
                        r->location, (long long)json_integer_value(format));
    } else {
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

static int open_storage(const char *location, bool create, const cs_repo_opts *opts, cs_repo **out, cs_err *e)
{
    cs_repo *r = cs_calloc(1, sizeof *r);
    r->location = cs_strdup(location);
    int rc = cs_storage_open_s3(location, opts ? opts->s3 : NULL, create, &r->st, e);
    if (rc) {
        cs_repo_free(r);
        return cs_err_prefix(e, "cannot open repository %s", location);
    }
    *out = r;
    return 0;
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

int cs_repo_open(const char *location, bool create, const cs_repo_opts *opts, cs_repo **out, cs_err *e)
{
    cs_repo *r = NULL;
    const cs_strlist *recipients = opts ? opts->recipients : NULL;
    int rc = open_storage(location, create, opts, &r, e);
    if (rc)
        return rc;
    rc = read_repo_file(r, e);
    if (rc == CS_E_NOTFOUND) {
        bool empty = false;
        cs_err_clear(e);
        rc = location_is_empty(r, &empty, e);
        if (!rc && !(create && empty))
            rc = empty ? cs_err_set(e, CS_E_NOTFOUND, "%s is not a cassette repository (it is empty; run cassette init)", location)
                       : cs_err_set(e, CS_E_INVAL, "%s is not a cassette repository (no %s)", location, REPO_FILE);
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

int cs_repo_init(const char *location, const cs_repo_opts *opts, cs_repo **out, cs_err *e)
{
    cs_repo *r = NULL;
    const cs_strlist *recipients = opts ? opts->recipients : NULL;
    int rc = open_storage(location, true, opts, &r, e);
    if (rc)
        return rc;
    bool empty = false;
    rc = location_is_empty(r, &empty, e);
    if (!rc && !empty)
        rc = cs_err_set(e, CS_E_EXISTS, "%s is not empty; a new repository needs an empty location", location);
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
                          "repository %s is encrypted: give an identity file with --identity (or CASSETTE_IDENTITY)",
                          r->location);
    }
    *head = age_decrypt_new(dst, r->identities, r->n_identities, e);
    return *head ? 0 : e->code;
}

/* Small sealed objects (manifests): whole in memory, through the writer
 * and reader so they are encrypted like the objects. */
static int put_sealed(cs_repo *r, const char *key, int flags, const char *text, cs_err *e)
{
    cs_sink *w = NULL;
    int rc = cs_repo_writer(r, key, flags, &w, e);
    if (!rc)
        rc = cs_sink_write(w, text, strlen(text), e);
    if (!rc)
        rc = cs_sink_close(w, e);
    cs_sink_free(w);
    return rc;
}

static int get_sealed(cs_repo *r, const char *key, size_t max, cs_buf *out, cs_err *e)
{
    cs_buf_reset(out);
    cs_sink *head = NULL;
    int rc = cs_repo_reader(r, cs_buf_sink_new(out, max), &head, e);
    if (!rc)
        rc = cs_storage_get(r->st, key, head, e);
    if (!rc)
        rc = cs_sink_close(head, e);
    cs_sink_free(head);
    if (rc)
        cs_err_prefix(e, "%s", key);
    return rc;
}

/* ---- backups ---- */

char *cs_repo_backup_key(const char *name, const char *host_id, const char *suffix)
{
    return cs_sprintf("backups/%s/%s.%s", name, host_id, suffix);
}

static json_t *summary_json(const cs_manifest *m, bool complete)
{
    cs_manifest_totals t;
    cs_manifest_totals_of(m, &t);
    return json_pack("{s:s, s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "name", m->backup, "host_id",
                     m->host_id, "address", m->address ? m->address : "", "started", m->started, "finished",
                     complete ? m->finished : 0.0, "files", (json_int_t)t.files, "size", (json_int_t)t.size,
                     "stored", (json_int_t)t.stored, "files_new", (json_int_t)t.files_new, "size_new",
                     (json_int_t)t.size_new, "stored_new", (json_int_t)t.stored_new, "complete", complete);
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
    int rc = put_json(r, key, CS_PUT_EXCLUSIVE, summary_json(m, false), e);
    if (rc == CS_E_EXISTS)
        cs_err_set(e, CS_E_EXISTS, "a backup named %s already exists", m->backup);
    free(key);
    return rc;
}

int cs_repo_put_manifest(cs_repo *r, const cs_manifest *m, cs_err *e)
{
    char *key = cs_repo_backup_key(m->backup, m->host_id, "manifest");
    char *text = NULL;
    int rc = cs_manifest_to_json(m, &text, e);
    if (!rc)
        rc = put_sealed(r, key, CS_PUT_EXCLUSIVE, text, e);
    free(text);
    free(key);
    if (rc)
        return cs_err_prefix(e, "writing the manifest of %s", m->backup);
    key = cs_repo_backup_key(m->backup, m->host_id, "summary");
    rc = put_json(r, key, 0, summary_json(m, true), e);
    free(key);
    return rc;
}

typedef struct host_scan {
    const char *prefix;
    cs_strlist manifests; /* host ids with a manifest */
    cs_strlist started;   /* host ids with a start mark */
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
    free(host);
    return 0;
}

int cs_repo_read_manifest(cs_repo *r, const char *name, const char *host_id, cs_manifest *out, cs_err *e)
{
    if (!cs_repo_is_valid_backup_name(name))
        return cs_err_set(e, CS_E_NOTFOUND, "no backup named \"%s\" in %s", name, r->location);
    host_scan s = { .prefix = NULL };
    char *prefix = cs_sprintf("backups/%s/", name);
    s.prefix = prefix;
    char *key = NULL;
    cs_buf text = CS_BUF_INIT;
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
    key = cs_repo_backup_key(name, host_id ? host_id : s.manifests.items[0], "manifest");
    rc = get_sealed(r, key, CS_MANIFEST_MAX, &text, e);
    if (!rc)
        rc = cs_manifest_from_json(text.data, text.len, out, e);
    if (!rc && strcmp(out->backup, name)) {
        cs_manifest_free(out);
        rc = cs_err_set(e, CS_E_CORRUPT, "manifest %s names another backup", key);
    }
    if (rc)
        cs_err_prefix(e, "backup %s", name);
out:
    cs_strlist_free(&s.manifests);
    cs_strlist_free(&s.started);
    cs_buf_free(&text);
    free(prefix);
    free(key);
    return rc;
}

/* ---- listing ---- */

typedef struct list_scan {
    cs_strlist summaries; /* keys of .summary files */
    cs_strlist started;   /* keys of .started files */
    cs_strlist manifests; /* keys of .manifest files */
} list_scan;

static int scan_backups(const char *key, const cs_storage_stat *st, void *arg)
{
    (void)st;
    list_scan *s = arg;
    const char *dot = strrchr(key, '.');
    if (!dot)
        return 0;
    if (!strcmp(dot, ".summary"))
        cs_strlist_add(&s->summaries, key);
    else if (!strcmp(dot, ".started"))
        cs_strlist_add(&s->started, key);
    else if (!strcmp(dot, ".manifest"))
        cs_strlist_add(&s->manifests, key);
    return 0;
}

static char *with_suffix(const char *key, const char *suffix)
{
    const char *dot = strrchr(key, '.');
    return cs_sprintf("%.*s.%s", (int)(dot - key), key, suffix);
}

static int read_summary(cs_repo *r, const char *key, cs_backup_entry *out, cs_err *e)
{
    cs_buf text = CS_BUF_INIT;
    int rc = cs_storage_get_bytes(r->st, key, 1 << 20, &text, e);
    if (rc) {
        cs_buf_free(&text);
        return rc;
    }
    json_t *j = json_loadb(text.data, text.len, 0, NULL);
    cs_buf_free(&text);
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *host = json_string_value(json_object_get(j, "host_id"));
    if (!name || !host) {
        json_decref(j);
        return cs_err_set(e, CS_E_CORRUPT, "%s is damaged", key);
    }
    memset(out, 0, sizeof *out);
    out->name = cs_strdup(name);
    out->host_id = cs_strdup(host);
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
    json_decref(j);
    return 0;
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
}

/* A manifest whose summary was not written (crash between the two): the
 * backup is complete; take the totals from the manifest itself. */
static int entry_from_manifest(cs_repo *r, const char *key, cs_backup_entry *out, cs_err *e)
{
    cs_buf text = CS_BUF_INIT;
    cs_manifest m;
    int rc = get_sealed(r, key, CS_MANIFEST_MAX, &text, e);
    if (!rc)
        rc = cs_manifest_from_json(text.data, text.len, &m, e);
    cs_buf_free(&text);
    if (rc)
        return rc;
    cs_repo_entry_of_manifest(&m, out);
    cs_manifest_free(&m);
    return 0;
}

int cs_repo_read_entry(cs_repo *r, const char *key, cs_backup_entry *out, cs_err *e)
{
    const char *dot = strrchr(key, '.');
    if (dot && !strcmp(dot, ".manifest"))
        return entry_from_manifest(r, key, out, e);
    int rc = read_summary(r, key, out, e);
    if (!rc)
        out->complete = dot && !strcmp(dot, ".summary");
    return rc;
}

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
    list_scan s = { { NULL, 0 }, { NULL, 0 }, { NULL, 0 } };
    cs_backup_entry *entries = NULL;
    size_t count = 0;
    int rc = cs_storage_list(r->st, "backups/", scan_backups, &s, e);
    for (size_t i = 0; !rc && i < s.manifests.n; i++) {
        char *summary = with_suffix(s.manifests.items[i], "summary");
        entries = cs_realloc(entries, (count + 1) * sizeof *entries);
        /* The summary is only a shortcut: if it is missing or damaged the
         * manifest itself says the same. */
        rc = cs_strlist_has(&s.summaries, summary) ? read_summary(r, summary, &entries[count], e) : -1;
        if (rc) {
            cs_err_clear(e);
            rc = entry_from_manifest(r, s.manifests.items[i], &entries[count], e);
        }
        free(summary);
        if (!rc)
            entries[count++].complete = true;
    }
    for (size_t i = 0; !rc && i < s.started.n; i++) {
        char *manifest = with_suffix(s.started.items[i], "manifest");
        bool done = cs_strlist_has(&s.manifests, manifest);
        free(manifest);
        if (done)
            continue;
        entries = cs_realloc(entries, (count + 1) * sizeof *entries);
        /* A damaged start mark hides nothing: that backup is incomplete
         * either way, so it is left out of the list with a warning. */
        cs_err mark_err;
        cs_err_clear(&mark_err);
        if (read_summary(r, s.started.items[i], &entries[count], &mark_err) == 0)
            entries[count++].complete = false;
        else
            cs_warn("%s", mark_err.msg);
    }
    cs_strlist_free(&s.summaries);
    cs_strlist_free(&s.started);
    cs_strlist_free(&s.manifests);
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

void cs_backup_entries_free(cs_backup_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(entries[i].name);
        free(entries[i].host_id);
        free(entries[i].address);
    }
    free(entries);
}
