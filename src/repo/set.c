/* set.c - backup sets (see set.h): the record, the commit, the cluster
 * manifest, and what a set's state is. */
#include "repo/set.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define SET_TYPE "cassette-set"
#define COMMIT_TYPE "cassette-set-commit"
#define TEXT_MAX 255    /* cluster, datacenter, rack, address */
#define REASON_MAX 512
#define TIME_MAX 1e11   /* seconds since the epoch: year 5138 */

const char *const cs_set_delete_order[3] = { "manifest", "commit", "set" };

char *cs_repo_set_new_id(void)
{
    char *id = cs_malloc(CS_OBJECT_ID_HEX);
    cs_repo_new_object_id(id);
    return id;
}

char *cs_repo_set_key(const char *name, const char *suffix)
{
    return cs_sprintf("sets/%s.%s", name, suffix);
}

/* ---- validation ---- */

/* Shown on terminals and written in plaintext: printable ASCII only. */
static bool is_text(const char *s, size_t max, bool empty_ok)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n > max || (!n && !empty_ok))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* A host name or an IPv4/IPv6 address, as the index allows. */
static bool is_address(const char *s)
{
    if (!s || strlen(s) > TEXT_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(".:-_%[]", *p)))
            return false;
    return true;
}

static bool is_time(double t)
{
    return isfinite(t) && t >= 0 && t < TIME_MAX;
}

bool cs_set_is_valid(const cs_backup_set *s, const char **why)
{
    const char *w = NULL;
    if (!s->name || !cs_repo_is_valid_backup_name(s->name))
        w = "bad set name";
    else if (!cs_is_hex32(s->set_id))
        w = "bad set id (32 hex digits)";
    else if (!is_text(s->cluster, TEXT_MAX, true))
        w = "bad cluster name";
    else if (!is_address(s->coordinator))
        w = "bad coordinator";
    else if (!is_time(s->started) || !is_time(s->finished))
        w = "bad time";
    else if (s->n_hosts == 0 || s->n_hosts > CS_SET_MAX_HOSTS)
        w = "no expected hosts, or too many";
    for (size_t i = 0; !w && i < s->n_hosts; i++) {
        const cs_set_host *h = &s->hosts[i];
        if (!h->host_id || !cs_repo_is_valid_backup_name(h->host_id))
            w = "bad host id";
        else if (!is_address(h->address))
            w = "bad host address";
        else if (!is_text(h->datacenter, TEXT_MAX, true) || !is_text(h->rack, TEXT_MAX, true))
            w = "bad datacenter or rack";
        else if (h->reason && !is_text(h->reason, REASON_MAX, false))
            w = "bad reason";
        for (size_t j = 0; !w && j < i; j++)
            if (!strcmp(s->hosts[j].host_id, h->host_id))
                w = "a host is listed twice";
    }
    if (why)
        *why = w;
    return w == NULL;
}

const cs_set_host *cs_set_find_host(const cs_backup_set *s, const char *host_id)
{
    for (size_t i = 0; i < s->n_hosts; i++)
        if (!strcmp(s->hosts[i].host_id, host_id))
            return &s->hosts[i];
    return NULL;
}

/* ---- documents ---- */

char *cs_set_record_to_json(const cs_backup_set *s)
{
    json_t *hosts = json_array();
    for (size_t i = 0; i < s->n_hosts; i++) {
        const cs_set_host *h = &s->hosts[i];
        json_array_append_new(hosts, json_pack("{s:s, s:s, s:s, s:s}", "host_id", h->host_id, "address", h->address,
                                               "datacenter", h->datacenter ? h->datacenter : "", "rack",
                                               h->rack ? h->rack : ""));
    }
    json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:f, s:o}", "type", SET_TYPE, "format", CS_SET_FORMAT,
                          "name", s->name, "set_id", s->set_id, "cluster", s->cluster ? s->cluster : "",
                          "coordinator", s->coordinator, "started", s->started, "hosts", hosts);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

char *cs_set_commit_to_json(const cs_backup_set *s)
{
    json_t *hosts = json_array();
    for (size_t i = 0; i < s->n_hosts; i++) {
        const cs_set_host *h = &s->hosts[i];
        json_array_append_new(hosts, json_pack("{s:s, s:b, s:o}", "host_id", h->host_id, "ok", h->ok, "reason",
                                               h->ok || !h->reason ? json_null() : json_string(h->reason)));
    }
    json_t *j = json_pack("{s:s, s:i, s:s, s:s, s:f, s:o}", "type", COMMIT_TYPE, "format", CS_SET_FORMAT, "name",
                          s->name, "set_id", s->set_id, "finished", s->finished, "hosts", hosts);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static json_t *load_doc(const char *text, size_t len, const char *type, cs_err *e)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        cs_err_set(e, CS_E_CORRUPT, "not valid JSON (line %d)", jerr.line);
        return NULL;
    }
    const char *t = json_string_value(json_object_get(doc, "type"));
    json_t *format = json_object_get(doc, "format");
    if (!json_is_object(doc) || !t || strcmp(t, type))
        cs_err_set(e, CS_E_CORRUPT, "not a %s document", type);
    else if (!json_is_integer(format) || json_integer_value(format) != CS_SET_FORMAT)
        cs_err_set(e, CS_E_CORRUPT, "unsupported format");
    else
        return doc;
    json_decref(doc);
    return NULL;
}

/* A string member, or NULL (checked by cs_set_is_valid afterwards). */
static char *dup_member(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? cs_strdup(s) : NULL;
}

static bool get_time(json_t *obj, const char *key, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return is_time(*out);
}

static int parse_record(json_t *doc, cs_backup_set *s, cs_err *e)
{
    s->name = dup_member(doc, "name");
    s->set_id = dup_member(doc, "set_id");
    s->cluster = dup_member(doc, "cluster");
    s->coordinator = dup_member(doc, "coordinator");
    if (!get_time(doc, "started", &s->started))
        return cs_err_set(e, CS_E_CORRUPT, "bad start time");
    json_t *hosts = json_object_get(doc, "hosts");
    if (!json_is_array(hosts) || json_array_size(hosts) > CS_SET_MAX_HOSTS)
        return cs_err_set(e, CS_E_CORRUPT, "\"hosts\" is not a list of at most %d hosts", CS_SET_MAX_HOSTS);
    size_t n = json_array_size(hosts);
    s->hosts = cs_calloc(n ? n : 1, sizeof *s->hosts);
    for (size_t i = 0; i < n; i++) {
        json_t *h = json_array_get(hosts, i);
        if (!json_is_object(h))
            return cs_err_set(e, CS_E_CORRUPT, "host %zu is not an object", i + 1);
        cs_set_host *out = &s->hosts[s->n_hosts++];
        out->host_id = dup_member(h, "host_id");
        out->address = dup_member(h, "address");
        out->datacenter = dup_member(h, "datacenter");
        out->rack = dup_member(h, "rack");
    }
    const char *why = NULL;
    if (!cs_set_is_valid(s, &why))
        return cs_err_set(e, CS_E_CORRUPT, "%s", why);
    return 0;
}

int cs_set_record_from_json(const char *text, size_t len, cs_backup_set *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    json_t *doc = load_doc(text, len, SET_TYPE, e);
    int rc = doc ? parse_record(doc, out, e) : e->code;
    json_decref(doc);
    if (rc) {
        cs_backup_set_free(out);
        return cs_err_prefix(e, "invalid set record");
    }
    return 0;
}

static int parse_commit_host(json_t *h, cs_backup_set *s, bool *seen, cs_err *e)
{
    const char *id = json_string_value(json_object_get(h, "host_id"));
    json_t *ok = json_object_get(h, "ok");
    json_t *reason = json_object_get(h, "reason");
    const char *why = json_string_value(reason);
    if (!id || !json_is_boolean(ok) || !(json_is_null(reason) || (why && is_text(why, REASON_MAX, false))))
        return cs_err_set(e, CS_E_CORRUPT, "a host is not {host_id, ok, reason}");
    if (json_is_true(ok) && why)
        return cs_err_set(e, CS_E_CORRUPT, "a host that is ok has a reason");
    for (size_t i = 0; i < s->n_hosts; i++) {
        if (strcmp(s->hosts[i].host_id, id))
            continue;
        if (seen[i])
            return cs_err_set(e, CS_E_CORRUPT, "a host is listed twice");
        seen[i] = true;
        s->hosts[i].ok = json_is_true(ok);
        free(s->hosts[i].reason);
        s->hosts[i].reason = why ? cs_strdup(why) : NULL;
        return 0;
    }
    return cs_err_set(e, CS_E_CORRUPT, "it names a host the set does not expect");
}

static int parse_commit(json_t *doc, cs_backup_set *s, cs_err *e)
{
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *id = json_string_value(json_object_get(doc, "set_id"));
    if (!name || !id || strcmp(name, s->name) || strcmp(id, s->set_id))
        return cs_err_set(e, CS_E_CORRUPT, "it names another set");
    double finished = 0;
    if (!get_time(doc, "finished", &finished))
        return cs_err_set(e, CS_E_CORRUPT, "bad finish time");
    json_t *hosts = json_object_get(doc, "hosts");
    if (!json_is_array(hosts) || json_array_size(hosts) > s->n_hosts)
        return cs_err_set(e, CS_E_CORRUPT, "\"hosts\" is not a list of the expected hosts");
    bool *seen = cs_calloc(s->n_hosts, sizeof *seen);
    int rc = 0;
    size_t i;
    json_t *h;
    json_array_foreach(hosts, i, h) {
        rc = parse_commit_host(h, s, seen, e);
        if (rc)
            break;
    }
    for (size_t k = 0; !rc && k < s->n_hosts; k++)
        if (!seen[k]) { /* left out of the commit: it did not complete */
            s->hosts[k].ok = false;
            free(s->hosts[k].reason);
            s->hosts[k].reason = NULL;
        }
    free(seen);
    if (!rc) {
        s->finished = finished;
        s->committed = true;
    }
    return rc;
}

int cs_set_commit_from_json(const char *text, size_t len, cs_backup_set *s, cs_err *e)
{
    json_t *doc = load_doc(text, len, COMMIT_TYPE, e);
    int rc = doc ? parse_commit(doc, s, e) : e->code;
    json_decref(doc);
    if (rc) {
        for (size_t i = 0; i < s->n_hosts; i++) { /* the record stands, uncommitted */
            s->hosts[i].ok = false;
            free(s->hosts[i].reason);
            s->hosts[i].reason = NULL;
        }
        s->committed = false;
        s->finished = 0;
        return cs_err_prefix(e, "invalid set commit");
    }
    return 0;
}

void cs_backup_set_free(cs_backup_set *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->set_id);
    free(s->cluster);
    free(s->coordinator);
    for (size_t i = 0; i < s->n_hosts; i++) {
        free(s->hosts[i].host_id);
        free(s->hosts[i].address);
        free(s->hosts[i].datacenter);
        free(s->hosts[i].rack);
        free(s->hosts[i].reason);
    }
    free(s->hosts);
    memset(s, 0, sizeof *s);
}

/* ---- the repository ---- */

int cs_repo_set_begin(cs_repo *r, const cs_backup_set *s, cs_err *e)
{
    const char *why = NULL;
    if (!cs_set_is_valid(s, &why))
        return cs_err_set(e, CS_E_INVAL, "set %s: %s", s->name ? s->name : "", why);
    int rc = cs_repo_check_name_free(r, s->name, e);
    if (rc)
        return rc;
    char *text = cs_set_record_to_json(s);
    char *key = cs_repo_set_key(s->name, "set");
    rc = cs_storage_put_bytes(r->st, key, CS_PUT_EXCLUSIVE, text, strlen(text), e);
    if (rc == CS_E_EXISTS)
        cs_err_set(e, CS_E_EXISTS, "a backup set named %s already exists", s->name);
    free(key);
    free(text);
    /* A node backup that took the name meanwhile: the set gives way. */
    if (!rc && (rc = cs_repo_check_name_free(r, s->name, e)) == CS_E_EXISTS) {
        cs_err ignored;
        cs_err_clear(&ignored);
        char *k = cs_repo_set_key(s->name, "set");
        cs_storage_del(r->st, k, &ignored);
        free(k);
    }
    return rc;
}

int cs_repo_set_put_manifest(cs_repo *r, const char *name, const char *json, size_t len, cs_err *e)
{
    if (!cs_repo_is_valid_backup_name(name))
        return cs_err_set(e, CS_E_INVAL, "invalid set name \"%s\"", name);
    char *key = cs_repo_set_key(name, "manifest");
    int rc = cs_repo_put_doc(r, key, CS_PUT_EXCLUSIVE, json, len, e);
    if (rc)
        cs_err_prefix(e, "writing the cluster manifest of %s", name);
    free(key);
    return rc;
}

int cs_repo_set_get_manifest(cs_repo *r, const char *name, cs_buf *out, cs_err *e)
{
    if (!cs_repo_is_valid_backup_name(name))
        return cs_err_set(e, CS_E_NOTFOUND, "no backup set named \"%s\"", name);
    char *key = cs_repo_set_key(name, "manifest");
    int rc = cs_repo_get_doc(r, key, CS_MANIFEST_MAX, out, e);
    free(key);
    return rc;
}

/* A reason as the commit may hold it: one line of printable ASCII, at most
 * REASON_MAX bytes (reasons are error messages: anything may be in them). */
static char *clean_reason(const char *why)
{
    if (!why)
        return NULL;
    char *r = cs_strndup(why, strnlen(why, REASON_MAX));
    for (char *p = r; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    if (!*r) {
        free(r);
        r = cs_strdup("failed");
    }
    return r;
}

static int commit_clean(cs_repo *r, const cs_backup_set *s, cs_err *e);

int cs_repo_set_commit(cs_repo *r, const cs_backup_set *s, cs_err *e)
{
    cs_backup_set c = *s;
    c.hosts = cs_calloc(s->n_hosts ? s->n_hosts : 1, sizeof *c.hosts);
    for (size_t i = 0; i < s->n_hosts; i++) {
        c.hosts[i] = s->hosts[i];
        c.hosts[i].reason = s->hosts[i].ok ? NULL : clean_reason(s->hosts[i].reason);
    }
    int rc = commit_clean(r, &c, e);
    for (size_t i = 0; i < s->n_hosts; i++)
        free(c.hosts[i].reason);
    free(c.hosts);
    return rc;
}

static int commit_clean(cs_repo *r, const cs_backup_set *s, cs_err *e)
{
    const char *why = NULL;
    if (!cs_set_is_valid(s, &why))
        return cs_err_set(e, CS_E_INVAL, "set %s: %s", s->name ? s->name : "", why);
    cs_backup_set stored;
    int rc = cs_repo_read_set(r, s->name, &stored, e);
    if (rc)
        return rc;
    if (strcmp(stored.set_id, s->set_id))
        rc = cs_err_set(e, CS_E_INVAL, "backup set %s has another set id", s->name);
    else if (stored.committed)
        rc = cs_err_set(e, CS_E_EXISTS, "backup set %s is committed already", s->name);
    cs_backup_set_free(&stored);
    if (rc)
        return rc;
    char *text = cs_set_commit_to_json(s);
    char *key = cs_repo_set_key(s->name, "commit");
    rc = cs_storage_put_bytes(r->st, key, CS_PUT_EXCLUSIVE, text, strlen(text), e);
    free(key);
    free(text);
    return rc ? cs_err_prefix(e, "committing backup set %s", s->name) : 0;
}

static int read_doc(cs_repo *r, const char *name, const char *suffix, cs_buf *out, cs_err *e)
{
    char *key = cs_repo_set_key(name, suffix);
    int rc = cs_storage_get_bytes(r->st, key, CS_SET_RECORD_MAX, out, e);
    free(key);
    return rc;
}

int cs_repo_read_set(cs_repo *r, const char *name, cs_backup_set *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    if (!cs_repo_is_valid_backup_name(name))
        return cs_err_set(e, CS_E_NOTFOUND, "no backup set named \"%s\"", name);
    cs_buf text = CS_BUF_INIT;
    int rc = read_doc(r, name, "set", &text, e);
    if (rc == CS_E_NOTFOUND)
        rc = cs_err_set(e, CS_E_NOTFOUND, "no backup set named %s", name);
    else if (!rc)
        rc = cs_set_record_from_json(text.data, text.len, out, e);
    if (!rc && strcmp(out->name, name)) {
        cs_backup_set_free(out);
        rc = cs_err_set(e, CS_E_CORRUPT, "it names another set");
    }
    if (!rc) {
        rc = read_doc(r, name, "commit", &text, e);
        if (rc == CS_E_NOTFOUND) {
            cs_err_clear(e); /* not committed (yet) */
            rc = 0;
        } else if (!rc) {
            rc = cs_set_commit_from_json(text.data, text.len, out, e);
        }
        if (rc)
            cs_backup_set_free(out);
    }
    if (rc && rc != CS_E_NOTFOUND)
        cs_err_prefix(e, "backup set %s", name);
    cs_buf_free(&text);
    return rc;
}

/* ---- listing ---- */

typedef struct sets_scan {
    cs_set_entry *items;
    size_t n;
} sets_scan;

static cs_set_entry *entry_named(sets_scan *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->items[i].files.name) == len && !strncmp(s->items[i].files.name, name, len))
            return &s->items[i];
    s->items = cs_realloc(s->items, (s->n + 1) * sizeof *s->items);
    cs_set_entry *x = &s->items[s->n++];
    memset(x, 0, sizeof *x);
    x->files.name = cs_strndup(name, len);
    return x;
}

static int scan_set_key(const char *key, const cs_storage_stat *st, void *arg)
{
    sets_scan *s = arg;
    const char *file = key + strlen("sets/");
    const char *dot = strrchr(file, '.');
    if (!dot || strchr(file, '/') || dot == file)
        return 0;
    char *name = cs_strndup(file, (size_t)(dot - file));
    bool ours = cs_repo_is_valid_backup_name(name) &&
                (!strcmp(dot, ".set") || !strcmp(dot, ".manifest") || !strcmp(dot, ".commit"));
    free(name);
    if (!ours)
        return 0;
    cs_set_entry *x = entry_named(s, file, (size_t)(dot - file));
    if (!strcmp(dot, ".set")) {
        x->files.has_record = true;
        x->files.mtime = st->mtime;
    } else {
        if (!x->files.has_record && !x->files.mtime)
            x->files.mtime = st->mtime;
        if (!strcmp(dot, ".manifest"))
            x->files.has_manifest = true;
        else
            x->files.has_commit = true;
    }
    return 0;
}

static int compare_sets(const void *a, const void *b)
{
    const cs_set_entry *x = a, *y = b;
    return strcmp(x->files.name, y->files.name);
}

static bool is_damage(int rc)
{
    return rc == CS_E_CORRUPT || rc == CS_E_INVAL || rc == CS_E_PROTO;
}

/* Damage is not an error: it is said in x->damage. A damaged commit
 * leaves the record standing, uncommitted (the set is incomplete). */
static int load_set(cs_repo *r, cs_set_entry *x, cs_err *e)
{
    if (!x->files.has_record)
        return 0; /* leftovers of a removal: the record goes last */
    cs_buf text = CS_BUF_INIT;
    cs_backup_set *s = &x->set;
    int rc = read_doc(r, x->files.name, "set", &text, e);
    if (!rc)
        rc = cs_set_record_from_json(text.data, text.len, s, e);
    if (!rc && strcmp(s->name, x->files.name)) {
        cs_backup_set_free(s);
        rc = cs_err_set(e, CS_E_CORRUPT, "invalid set record: it names another set");
    }
    if (!rc && x->files.has_commit) {
        rc = read_doc(r, x->files.name, "commit", &text, e);
        if (!rc)
            rc = cs_set_commit_from_json(text.data, text.len, s, e);
        if (rc && !is_damage(rc) && rc != CS_E_NOTFOUND)
            cs_backup_set_free(s);
    }
    cs_buf_free(&text);
    if (rc == CS_E_NOTFOUND) { /* removed since the listing */
        cs_err_clear(e);
        x->files.has_record = x->set.name != NULL;
        return 0;
    }
    if (is_damage(rc)) {
        x->damage = cs_sprintf("sets/%s: %s", x->files.name, e->msg);
        for (char *p = x->damage; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                *p = '?';
        cs_err_clear(e);
        return 0;
    }
    return rc;
}

int cs_repo_list_sets(cs_repo *r, cs_set_entry **out, size_t *n, cs_err *e)
{
    sets_scan s = { NULL, 0 };
    int rc = cs_storage_list(r->st, "sets/", scan_set_key, &s, e);
    if (rc > 0)
        rc = e->code;
    for (size_t i = 0; !rc && i < s.n; i++)
        rc = load_set(r, &s.items[i], e);
    if (rc) {
        cs_set_entries_free(s.items, s.n);
        return cs_err_prefix(e, "listing backup sets");
    }
    if (s.n)
        qsort(s.items, s.n, sizeof *s.items, compare_sets);
    *out = s.items;
    *n = s.n;
    return 0;
}

void cs_set_entries_free(cs_set_entry *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].files.name);
        cs_backup_set_free(&s[i].set);
        free(s[i].damage);
    }
    free(s);
}

const cs_set_entry *cs_set_entries_find(const cs_set_entry *s, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s[i].files.name, name))
            return &s[i];
    return NULL;
}

/* ---- state ---- */

static const cs_backup_entry *entry_of(const cs_backup_entry *entries, size_t n, const char *name,
                                       const char *host_id)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(entries[i].name, name) && !strcmp(entries[i].host_id, host_id))
            return &entries[i];
    return NULL;
}

static char *missing_reason(const cs_backup_set *s, const cs_set_host *h, const cs_backup_entry *b, double now,
                            double grace)
{
    if (b && b->damage)
        return cs_sprintf("damaged: %s", b->damage);
    if (s->committed && h->reason)
        return cs_strdup(h->reason);
    if (!s->committed && now - s->started < grace)
        return cs_strdup("running");
    return cs_strdup("no manifest");
}

void cs_set_state_of(const cs_backup_set *s, const cs_backup_entry *entries, size_t n, double now, double grace,
                     cs_set_info *out)
{
    memset(out, 0, sizeof *out);
    out->id = cs_strdup(s->set_id);
    out->cluster = cs_strdup(s->cluster ? s->cluster : "");
    out->expected = s->n_hosts;
    out->missing = cs_calloc(s->n_hosts ? s->n_hosts : 1, sizeof *out->missing);
    for (size_t i = 0; i < s->n_hosts; i++) {
        const cs_set_host *h = &s->hosts[i];
        const cs_backup_entry *b = entry_of(entries, n, s->name, h->host_id);
        if (b && b->complete && !b->damage) {
            out->complete_hosts++;
            continue;
        }
        cs_set_missing *m = &out->missing[out->n_missing++];
        m->host_id = cs_strdup(h->host_id);
        m->address = cs_strdup(h->address);
        m->reason = missing_reason(s, h, b, now, grace);
    }
    out->complete = s->committed && out->complete_hosts == s->n_hosts;
}

cs_set_info *cs_set_info_dup(const cs_set_info *info)
{
    cs_set_info *c = cs_calloc(1, sizeof *c);
    c->id = cs_strdup(info->id);
    c->cluster = cs_strdup(info->cluster);
    c->expected = info->expected;
    c->complete_hosts = info->complete_hosts;
    c->complete = info->complete;
    c->n_missing = info->n_missing;
    c->missing = cs_calloc(info->n_missing ? info->n_missing : 1, sizeof *c->missing);
    for (size_t i = 0; i < info->n_missing; i++) {
        c->missing[i].host_id = cs_strdup(info->missing[i].host_id);
        c->missing[i].address = cs_strdup(info->missing[i].address);
        c->missing[i].reason = cs_strdup(info->missing[i].reason);
    }
    return c;
}

void cs_set_info_free(cs_set_info *info)
{
    cs_set_info_clear(info);
    free(info);
}

void cs_set_info_clear(cs_set_info *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->n_missing; i++) {
        free(info->missing[i].host_id);
        free(info->missing[i].address);
        free(info->missing[i].reason);
    }
    free(info->missing);
    free(info->id);
    free(info->cluster);
    memset(info, 0, sizeof *info);
}

/* ---- retention ---- */

int cs_set_retention_apply(const cs_retention *policy, cs_retention_item *items, size_t n, cs_err *e)
{
    cs_retention_item *group = cs_calloc(n ? n : 1, sizeof *group);
    size_t *where = cs_calloc(n ? n : 1, sizeof *where);
    bool *done = cs_calloc(n ? n : 1, sizeof *done);
    int rc = 0;
    for (size_t first = 0; !rc && first < n; first++) {
        if (done[first])
            continue;
        const char *cluster = items[first].group ? items[first].group : "";
        size_t k = 0;
        for (size_t i = first; i < n; i++) {
            if (done[i] || strcmp(items[i].group ? items[i].group : "", cluster))
                continue;
            done[i] = true;
            group[k] = items[i];
            group[k].group = NULL; /* one cluster: the reasons are those of a node's backups */
            where[k++] = i;
        }
        rc = cs_retention_apply(policy, group, k, e);
        for (size_t i = 0; !rc && i < k; i++) {
            items[where[i]].keep = group[i].keep;
            memcpy(items[where[i]].reason, group[i].reason, sizeof group[i].reason);
        }
    }
    free(group);
    free(where);
    free(done);
    return rc;
}
