/* uploads.c - the journal of uploads in progress, and resuming them. */
#include "ops/uploads.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fs.h"
#include "common/log.h"
#include "io/filters.h"

#define JOURNAL_MAX (64u << 20)
#define KEY_HEX (AGE_FILE_KEY_LEN * 2)
#define KEY_PREFIX "{\"k\":\""

/* One upload: what its begin line says, and the parts recorded since. */
typedef struct entry {
    char *data_dir, *table_id, *name, *live_path;
    uint64_t size;
    int64_t mtime_ns;
    int level;
    bool part_hash;      /* its parts' hashes are CS_PUT_HASH_NAME (false: an older kind, never compared) */
    char recipients[CS_HASH_HEX];
    char object[CS_OBJECT_ID_HEX];
    char *token;
    age_seal seal;       /* header.len == 0: the repository is not encrypted */
    cs_put_part *parts;  /* ascending numbers, one part per number */
    size_t n_parts;
    bool superseded;     /* a later upload of the same file began */
    bool taken;          /* a file of this backup took it */
} entry;

typedef struct entry_list {
    entry *v;
    size_t n;
} entry_list;

struct cs_uploads {
    pthread_mutex_t mu;  /* guards fd and list (workers open and record) */
    cs_repo *repo;
    char *path;
    int fd;              /* O_APPEND; -1: not recording */
    entry_list list;     /* the uploads open when loaded */
    char recipients[CS_HASH_HEX];
};

struct cs_upload {
    cs_uploads *u;
    entry e;             /* the upload this writer continues or begins */
    char *key;           /* its storage key */
    cs_put_resume res;
    bool recorded;       /* the journal knows the upload: it may stay open */
};

/* ---- entries ---- */

static void entry_clear(entry *en)
{
    free(en->data_dir);
    free(en->table_id);
    free(en->name);
    free(en->live_path);
    free(en->token);
    free(en->parts);
    age_seal_wipe(&en->seal);
    memset(en, 0, sizeof *en);
}

static void list_clear(entry_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        entry_clear(&l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static entry *find_object(entry_list *l, const char *object)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].object, object))
            return &l->v[i];
    return NULL;
}

static bool same_file(const entry *a, const char *data_dir, const char *table_id, const char *name)
{
    return !strcmp(a->data_dir, data_dir) && !strcmp(a->table_id, table_id) && !strcmp(a->name, name);
}

/* Record a part: replaces one of the same number (sent again). */
static void add_part(entry *en, const cs_put_part *p)
{
    size_t i = 0;
    while (i < en->n_parts && en->parts[i].number < p->number)
        i++;
    if (i < en->n_parts && en->parts[i].number == p->number) {
        en->parts[i] = *p;
        return;
    }
    en->parts = cs_realloc(en->parts, (en->n_parts + 1) * sizeof *en->parts);
    memmove(en->parts + i + 1, en->parts + i, (en->n_parts - i) * sizeof *en->parts);
    en->parts[i] = *p;
    en->n_parts++;
}

static void copy_entry(entry *dst, const entry *src)
{
    *dst = *src;
    dst->data_dir = cs_strdup(src->data_dir);
    dst->table_id = cs_strdup(src->table_id);
    dst->name = cs_strdup(src->name);
    dst->live_path = cs_strdup(src->live_path);
    dst->token = src->token ? cs_strdup(src->token) : NULL;
    dst->parts = NULL;
    if (src->n_parts) {
        dst->parts = cs_calloc(src->n_parts, sizeof *dst->parts);
        memcpy(dst->parts, src->parts, src->n_parts * sizeof *dst->parts);
    }
    memset(&dst->seal, 0, sizeof dst->seal);
    memcpy(dst->seal.file_key, src->seal.file_key, sizeof dst->seal.file_key);
    if (src->seal.header.len)
        cs_buf_add(&dst->seal.header, src->seal.header.data, src->seal.header.len);
}

/* ---- lines ---- */

static void add_json_line(cs_buf *out, const char *tag, json_t *body)
{
    json_t *root = json_pack("{s:o}", tag, body);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    if (text) {
        cs_buf_addstr(out, text);
        cs_buf_addch(out, '\n');
    }
    free(text);
    json_decref(root);
}

/* The file key goes first on its line, written and read by hand, so that
 * only buffers this module wipes ever hold it (never the JSON library's). */
static void add_begin_line(cs_buf *out, const entry *en)
{
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:i, s:s, s:s, s:s}", "data_dir", en->data_dir,
                          "table_id", en->table_id, "name", en->name, "path", en->live_path, "size",
                          (json_int_t)en->size, "mtime", (json_int_t)en->mtime_ns, "level", en->level,
                          "recipients", en->recipients, "object", en->object, "token", en->token);
    if (b && en->seal.header.len) {
        size_t cap = sodium_base64_ENCODED_LEN(en->seal.header.len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = cs_malloc(cap);
        sodium_bin2base64(b64, cap, (const unsigned char *)en->seal.header.data, en->seal.header.len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_object_set_new(b, "header", json_string(b64));
        free(b64);
    }
    if (b && en->part_hash)
        json_object_set_new(b, "part_hash", json_string(CS_PUT_HASH_NAME));
    char *text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!text)
        return; /* a name that is not UTF-8: the manifest could not hold it either */
    if (en->seal.header.len) {
        char hex[KEY_HEX + 1];
        cs_hex(en->seal.file_key, AGE_FILE_KEY_LEN, hex);
        cs_buf_printf(out, KEY_PREFIX "%s\",\"begin\":%s}\n", hex, text);
        sodium_memzero(hex, sizeof hex);
    } else {
        cs_buf_printf(out, "{\"begin\":%s}\n", text);
    }
    free(text);
}

static void add_part_line(cs_buf *out, const char *object, const cs_put_part *p)
{
    char hash[CS_PUT_HASH_BYTES * 2 + 1];
    cs_hex(p->hash, sizeof p->hash, hash);
    add_json_line(out, "part",
                  json_pack("{s:s, s:I, s:I, s:s}", "object", object, "n", (json_int_t)p->number, "size",
                            (json_int_t)p->size, "hash", hash));
}

static void add_end_line(cs_buf *out, const char *object)
{
    add_json_line(out, "end", json_pack("{s:s}", "object", object));
}

static bool is_hex(const char *s, size_t n)
{
    return s && strlen(s) == n && strspn(s, "0123456789abcdef") == n;
}

static const char *str_of(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static bool count_of(const json_t *o, const char *k, uint64_t *out)
{
    const json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* A begin line's body into en (fk: the key read off the line, or NULL). */
static bool parse_begin(const json_t *b, const unsigned char *fk, entry *en)
{
    const char *dd = str_of(b, "data_dir"), *tid = str_of(b, "table_id"), *name = str_of(b, "name");
    const char *path = str_of(b, "path"), *rcpt = str_of(b, "recipients"), *obj = str_of(b, "object");
    const char *token = str_of(b, "token"), *header = str_of(b, "header");
    const json_t *mtime = json_object_get(b, "mtime"), *level = json_object_get(b, "level");
    uint64_t size = 0;
    if (!dd || !tid || !name || !path || !token || !*token || !is_hex(rcpt, CS_HASH_HEX - 1) ||
        !cs_is_hex32(obj) || !count_of(b, "size", &size) || !json_is_integer(mtime) || !json_is_integer(level) ||
        (header != NULL) != (fk != NULL))
        return false;
    memset(en, 0, sizeof *en);
    if (header) {
        size_t n = strlen(header), got = 0;
        cs_buf_reserve(&en->seal.header, n);
        if (sodium_base642bin((unsigned char *)en->seal.header.data, n, header, n, NULL, &got, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 || got == 0) {
            cs_buf_free(&en->seal.header);
            return false;
        }
        en->seal.header.len = got;
        memcpy(en->seal.file_key, fk, AGE_FILE_KEY_LEN);
    }
    en->data_dir = cs_strdup(dd);
    en->table_id = cs_strdup(tid);
    en->name = cs_strdup(name);
    en->live_path = cs_strdup(path);
    en->token = cs_strdup(token);
    en->size = size;
    en->mtime_ns = (int64_t)json_integer_value(mtime);
    en->level = (int)json_integer_value(level);
    /* Written before the part hash was named (BLAKE2b-256), or by another
     * kind: kept as it is, and never resumed (cannot_resume). */
    const char *ph = str_of(b, "part_hash");
    en->part_hash = ph && !strcmp(ph, CS_PUT_HASH_NAME);
    memcpy(en->recipients, rcpt, CS_HASH_HEX);
    memcpy(en->object, obj, CS_OBJECT_ID_HEX);
    return true;
}

static void apply_begin(entry_list *l, entry *en)
{
    entry *old = find_object(l, en->object);
    if (old) {
        entry_clear(old); /* the same object's upload began anew */
        *old = *en;
        return;
    }
    for (size_t i = 0; i < l->n; i++)
        if (same_file(&l->v[i], en->data_dir, en->table_id, en->name))
            l->v[i].superseded = true;
    l->v = cs_realloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = *en;
}

static bool apply_part(entry_list *l, const json_t *p)
{
    const char *obj = str_of(p, "object"), *hash = str_of(p, "hash");
    uint64_t n = 0, size = 0;
    if (!cs_is_hex32(obj) || !is_hex(hash, CS_PUT_HASH_BYTES * 2) || !count_of(p, "n", &n) || n < 1 ||
        n > 10000 || !count_of(p, "size", &size))
        return false;
    entry *en = find_object(l, obj);
    if (!en)
        return true; /* of an upload that ended: nothing to keep */
    cs_put_part part = { (unsigned)n, size, { 0 } };
    sodium_hex2bin(part.hash, sizeof part.hash, hash, strlen(hash), NULL, NULL, NULL);
    add_part(en, &part);
    return true;
}

static bool apply_end(entry_list *l, const json_t *p)
{
    const char *obj = str_of(p, "object");
    if (!cs_is_hex32(obj))
        return false;
    entry *en = find_object(l, obj);
    if (en) {
        entry_clear(en);
        *en = l->v[--l->n];
    }
    return true;
}

/* One line (modified: the file key's digits are overwritten once read). */
static bool apply_line(entry_list *l, char *line, size_t len)
{
    unsigned char fk[AGE_FILE_KEY_LEN];
    bool has_key = false, ok = false;
    size_t pl = sizeof KEY_PREFIX - 1;
    if (len > pl + KEY_HEX && !memcmp(line, KEY_PREFIX, pl)) {
        has_key = sodium_hex2bin(fk, sizeof fk, line + pl, KEY_HEX, NULL, NULL, NULL) == 0 &&
                  line[pl + KEY_HEX] == '"';
        sodium_memzero(line + pl, KEY_HEX);
        memset(line + pl, '0', KEY_HEX);
        if (!has_key)
            return false;
    }
    json_t *root = json_loadb(line, len, 0, NULL);
    const json_t *v;
    entry en;
    if ((v = json_object_get(root, "begin")) != NULL) {
        ok = parse_begin(v, has_key ? fk : NULL, &en);
        if (ok)
            apply_begin(l, &en);
    } else if (!has_key && (v = json_object_get(root, "part")) != NULL) {
        ok = apply_part(l, v);
    } else if (!has_key && (v = json_object_get(root, "end")) != NULL) {
        ok = apply_end(l, v);
    }
    json_decref(root);
    sodium_memzero(fk, sizeof fk);
    return ok;
}

/* Read the journal at path into l: whole valid lines, in order; a torn or
 * bad line is skipped (what it said is lost: at worst an upload starts
 * over, or stays until a purge). A missing file is an empty journal. */
static void read_journal(const char *path, entry_list *l)
{
    char *text = NULL;
    size_t len = 0;
    cs_err err;
    cs_err_clear(&err);
    int rc = cs_read_file(path, JOURNAL_MAX, &text, &len, &err);
    if (rc) {
        if (rc != CS_E_NOTFOUND)
            cs_warn("upload journal: %s: interrupted uploads start over", err.msg);
        return;
    }
    size_t lineno = 0;
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        lineno++;
        if (!nl) {
            cs_debug("upload journal %s: line %zu is torn: ignored", path, lineno);
            break;
        }
        if (!apply_line(l, p, (size_t)(nl - p)))
            cs_debug("upload journal %s: line %zu is not valid: ignored", path, lineno);
        p = nl + 1;
    }
    sodium_memzero(text, len);
    free(text);
}

/* Rewrite the journal with only the open uploads of l (remove it when
 * there are none). */
static int write_journal(const char *path, const entry_list *l, cs_err *e)
{
    if (l->n == 0) {
        if (unlink(path) != 0 && errno != ENOENT)
            return cs_err_sys(e, CS_E_IO, errno, "cannot remove %s", path);
        return 0;
    }
    cs_buf text = CS_BUF_INIT;
    cs_buf_reserve(&text, 4096 * l->n); /* few reallocations: fewer stray copies of the keys */
    for (size_t i = 0; i < l->n; i++) {
        add_begin_line(&text, &l->v[i]);
        for (size_t j = 0; j < l->v[i].n_parts; j++)
            add_part_line(&text, l->v[i].object, &l->v[i].parts[j]);
    }
    char *dir = cs_dirname(path);
    int rc = cs_mkdirs(dir, 0700, e);
    if (!rc)
        rc = cs_write_file_atomic(path, text.data, text.len, 0600, e);
    free(dir);
    age_buf_wipe(&text);
    return rc;
}

/* ---- the journal ---- */

char *cs_uploads_path(const cs_host *host, const cs_repo *repo, const char *host_id)
{
    char *dir = cs_state_dir(host);
    char *path = cs_sprintf("%s/%s/%s.uploads", dir, repo->id, host_id);
    free(dir);
    return path;
}

static void recipients_fingerprint(const cs_repo *repo, char out[CS_HASH_HEX])
{
    cs_buf all = CS_BUF_INIT;
    for (size_t i = 0; i < repo->recipient_keys.n; i++) {
        cs_buf_addstr(&all, repo->recipient_keys.items[i]);
        cs_buf_addch(&all, '\n');
    }
    cs_hash_result h;
    cs_hash_bytes(all.data ? all.data : "", all.len, &h);
    memcpy(out, h.hex, CS_HASH_HEX);
    cs_buf_free(&all);
}

cs_uploads *cs_uploads_load(const char *path, cs_repo *repo)
{
    cs_uploads *u = cs_calloc(1, sizeof *u);
    pthread_mutex_init(&u->mu, NULL);
    u->repo = repo;
    u->path = cs_strdup(path);
    u->fd = -1;
    recipients_fingerprint(repo, u->recipients);
    read_journal(path, &u->list);
    cs_err err;
    cs_err_clear(&err);
    char *dir = cs_dirname(path);
    int rc = cs_mkdirs(dir, 0700, &err);
    free(dir);
    if (!rc)
        rc = write_journal(path, &u->list, &err);
    if (!rc) {
        u->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (u->fd < 0)
            rc = cs_err_sys(&err, CS_E_IO, errno, "cannot open %s", path);
    }
    if (rc)
        cs_warn("upload journal: %s: uploads interrupted from now on will start over", err.msg);
    return u;
}

/* Append text (whole lines) with one write(2); wipes text. False when it
 * was not recorded. */
static bool append(cs_uploads *u, cs_buf *text)
{
    bool ok = false;
    pthread_mutex_lock(&u->mu);
    if (u->fd >= 0 && text->len) {
        ssize_t n;
        do
            n = write(u->fd, text->data, text->len);
        while (n < 0 && errno == EINTR);
        if (n < 0 || (size_t)n != text->len) {
            /* A torn line: stop recording, lines after it would be lost. */
            cs_warn("upload journal: cannot write %s: %s: uploads interrupted from now on will start over",
                    u->path, n < 0 ? strerror(errno) : "short write");
            close(u->fd);
            u->fd = -1;
        } else {
            ok = true;
        }
    }
    pthread_mutex_unlock(&u->mu);
    age_buf_wipe(text);
    return ok;
}

static bool recording(cs_uploads *u)
{
    pthread_mutex_lock(&u->mu);
    bool yes = u->fd >= 0;
    pthread_mutex_unlock(&u->mu);
    return yes;
}

static void record_end(cs_uploads *u, const char *object)
{
    cs_buf line = CS_BUF_INIT;
    add_end_line(&line, object);
    append(u, &line);
}

static void abort_upload(cs_uploads *u, const entry *en, const char *why)
{
    char *key = cs_repo_object_key(en->object);
    cs_err err;
    cs_err_clear(&err);
    cs_info("dropping the unfinished upload of %s: %s", en->name, why);
    if (cs_storage_abort_resumable(u->repo->st, key, en->token, &err))
        cs_warn("could not drop the unfinished upload of %s (%s): %s", en->name, key, err.msg);
    else
        record_end(u, en->object);
    free(key);
}

/* ---- one upload ---- */

static void on_token(void *arg, const char *token)
{
    cs_upload *up = arg;
    free(up->e.token);
    up->e.token = cs_strdup(token);
    cs_buf line = CS_BUF_INIT;
    add_begin_line(&line, &up->e);
    up->recorded = append(up->u, &line);
}

static void on_part(void *arg, const cs_put_part *part)
{
    cs_upload *up = arg;
    cs_buf line = CS_BUF_INIT;
    add_part_line(&line, up->e.object, part);
    append(up->u, &line);
}

/* Take the journal's open upload of f, if any (then *found). */
static void take_entry(cs_uploads *u, const cs_upload_file *f, entry *out, bool *found)
{
    *found = false;
    pthread_mutex_lock(&u->mu);
    for (size_t i = u->list.n; i-- > 0;) {
        entry *en = &u->list.v[i];
        if (!en->taken && !en->superseded && same_file(en, f->data_dir, f->table_id, f->name)) {
            en->taken = true;
            copy_entry(out, en);
            *found = true;
            break;
        }
    }
    pthread_mutex_unlock(&u->mu);
}

/* Why the journal's upload of f cannot be resumed (NULL: it can). */
static const char *cannot_resume(const cs_uploads *u, const entry *en, const cs_upload_file *f)
{
    if (!en->part_hash)
        return "its parts were recorded with an older kind of hash";
    if (en->size != f->size || en->mtime_ns != f->mtime_ns)
        return "the file changed";
    if (en->level != f->zstd_level)
        return "the compression level changed";
    if (strcmp(en->recipients, u->recipients) || (en->seal.header.len != 0) != cs_repo_is_encrypted(u->repo))
        return "the repository's recipients changed";
    return NULL;
}

static void fill_new(cs_upload *up, const cs_upload_file *f)
{
    entry *en = &up->e;
    en->data_dir = cs_strdup(f->data_dir);
    en->table_id = cs_strdup(f->table_id);
    en->name = cs_strdup(f->name);
    en->live_path = cs_strdup(f->live_path);
    en->size = f->size;
    en->mtime_ns = f->mtime_ns;
    en->level = f->zstd_level;
    en->part_hash = true;
    memcpy(en->recipients, up->u->recipients, CS_HASH_HEX);
    cs_repo_new_object_id(en->object);
}

static void upload_free(cs_upload *up)
{
    entry_clear(&up->e);
    free(up->key);
    free(up);
}

int cs_upload_open(cs_uploads *u, const cs_upload_file *f, cs_upload **out, cs_sink **writer, cs_err *e)
{
    *out = NULL;
    *writer = NULL;
    cs_upload *up = cs_calloc(1, sizeof *up);
    up->u = u;
    bool found = false;
    take_entry(u, f, &up->e, &found);
    const char *why = found ? cannot_resume(u, &up->e, f) : NULL;
    if (why) {
        abort_upload(u, &up->e, why);
        entry_clear(&up->e);
        found = false;
    }
    if (!found)
        fill_new(up, f);
    up->recorded = found;
    up->key = cs_repo_object_key(up->e.object);
    up->res = (cs_put_resume){ up->e.token, up->e.parts, up->e.n_parts, on_token, on_part, up, 0, 0, false };
    int rc;
    if (recording(u))
        rc = cs_repo_resumable_writer(u->repo, up->key, &up->res, &up->e.seal, writer, e);
    else /* an upload nobody would know of must not outlive its writer */
        rc = cs_repo_writer(u->repo, up->key, 0, writer, e);
    if (rc) {
        /* A journal's upload stays for the next try (S3 unreachable, say). */
        upload_free(up);
        return rc;
    }
    if (found && up->res.resumed)
        cs_info("resuming the upload of %s: %llu of its stored bytes are there already", f->name,
                (unsigned long long)up->res.resumed);
    else if (found)
        cs_info("the unfinished upload of %s holds nothing to keep (or is gone): storing it from its start",
                f->name);
    *out = up;
    return 0;
}

const char *cs_upload_object(const cs_upload *up)
{
    return up->e.object;
}

uint64_t cs_upload_resumed(const cs_upload *up)
{
    return up->res.resumed;
}

bool cs_upload_diverged(const cs_upload *up)
{
    return up->res.diverged;
}

void cs_upload_finish(cs_upload *up, bool stored, bool discard)
{
    if (!up)
        return;
    if (up->e.token && stored)
        record_end(up->u, up->e.object);
    else if (up->e.token && (up->res.diverged || discard || !up->recorded))
        abort_upload(up->u, &up->e,
                     up->res.diverged ? "its bytes differ from those stored before"
                     : discard        ? "the file changed"
                                      : "the upload journal could not record it");
    upload_free(up);
}

/* ---- sweep and free ---- */

static const char *sweep_reason(const entry *en, const cs_state *state)
{
    if (en->superseded)
        return "a later upload of the file began";
    if (cs_state_find(state, en->data_dir, en->table_id, en->name, en->size, en->mtime_ns))
        return "the file is stored";
    struct stat st;
    if (stat(en->live_path, &st) != 0)
        return "the file is gone";
    int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if ((uint64_t)st.st_size != en->size || mtime != en->mtime_ns)
        return "the file changed";
    return NULL;
}

void cs_uploads_sweep(cs_uploads *u, const cs_state *state)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->list.n; i++) {
        entry *en = &u->list.v[i];
        const char *why = en->taken ? NULL : sweep_reason(en, state);
        if (why) {
            abort_upload(u, en, why);
            en->taken = true;
        }
    }
}

void cs_uploads_free(cs_uploads *u)
{
    if (!u)
        return;
    if (u->fd >= 0) {
        close(u->fd);
        /* Compact: what ended goes, with its file key. */
        entry_list now = { NULL, 0 };
        cs_err err;
        cs_err_clear(&err);
        read_journal(u->path, &now);
        if (write_journal(u->path, &now, &err))
            cs_warn("upload journal: %s", err.msg);
        list_clear(&now);
    }
    list_clear(&u->list);
    pthread_mutex_destroy(&u->mu);
    free(u->path);
    free(u);
}
