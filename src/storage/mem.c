/* mem.c - the in-memory storage driver, for tests.
 *
 * A store is a sorted array of objects (key, bytes, mtime) behind one
 * mutex, shared by the handles cs_mem_storage_share gives out and freed
 * with the last of them. It keeps the whole contract of storage.h: an
 * object appears when its writer closes (the writer buffers until then),
 * exclusive puts fail with CS_E_EXISTS, a writer freed without close
 * leaves nothing. Resumable writers store MEM_PART_SIZE parts into an
 * upload as they fill (what S3 multipart does), report them, and keep the
 * upload when freed without close, so the resume logic above the driver can
 * be tested without a server. Objects are immutable: get and list work on
 * snapshots taken under the lock and call back outside it, so a callback may
 * use the store. Not in the scheme registry (a store lives in one process:
 * tests make one with cs_mem_storage_new). Must not: be used for real
 * backups. */
#include "storage/storage.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/cancel.h"

#define MEM_PART_SIZE ((size_t)64 << 10) /* small, so that tests make many parts */
#define MEM_GET_CHUNK ((size_t)1 << 20)   /* get pushes at most this much per write */

/* The bytes of one object, shared by the store and the readers of a
 * snapshot (an object is never changed, only replaced or deleted). */
typedef struct mem_blob {
    size_t refs; /* under the store's lock */
    size_t len;
    uint8_t *data;
} mem_blob;

typedef struct mem_object {
    char *key;
    mem_blob *blob;
    int64_t mtime;
} mem_object;

typedef struct mem_part {
    size_t size;
    unsigned char hash[CS_PUT_HASH_BYTES];
    uint8_t *data;
} mem_part;

/* An unfinished resumable upload: parts 1..n_parts, in order. */
typedef struct mem_upload {
    char *key;
    char *token;
    int64_t initiated;
    mem_part *parts;
    size_t n_parts;
} mem_upload;

typedef struct mem_store {
    pthread_mutex_t lock;
    size_t handles;
    mem_object *objects; /* sorted by key */
    size_t n_objects;
    mem_upload *uploads;
    size_t n_uploads;
    unsigned long next_token;
} mem_store;

typedef struct mem_storage {
    cs_storage base;
    mem_store *store;
} mem_storage;

static mem_store *store_of(cs_storage *st)
{
    return ((mem_storage *)(void *)st)->store;
}

/* ---- the store (callers hold the lock) ----------------------------------- */

static void blob_unref(mem_blob *b)
{
    if (b && --b->refs == 0) {
        free(b->data);
        free(b);
    }
}

/* The index of key, or where it would go (found says which). */
static size_t find_object(const mem_store *s, const char *key, bool *found)
{
    size_t lo = 0, hi = s->n_objects;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->objects[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Store blob (taken over) under key, replacing what was there. */
static void put_object(mem_store *s, const char *key, mem_blob *blob)
{
    bool found;
    size_t i = find_object(s, key, &found);
    if (found) {
        blob_unref(s->objects[i].blob);
    } else {
        s->objects = cs_realloc(s->objects, (s->n_objects + 1) * sizeof *s->objects);
        memmove(&s->objects[i + 1], &s->objects[i], (s->n_objects - i) * sizeof *s->objects);
        s->n_objects++;
        s->objects[i].key = cs_strdup(key);
    }
    s->objects[i].blob = blob;
    s->objects[i].mtime = (int64_t)time(NULL);
}

static void del_object(mem_store *s, const char *key)
{
    bool found;
    size_t i = find_object(s, key, &found);
    if (!found)
        return;
    free(s->objects[i].key);
    blob_unref(s->objects[i].blob);
    memmove(&s->objects[i], &s->objects[i + 1], (s->n_objects - i - 1) * sizeof *s->objects);
    s->n_objects--;
}

static mem_upload *find_upload(mem_store *s, const char *key, const char *token)
{
    for (size_t i = 0; i < s->n_uploads; i++)
        if (!strcmp(s->uploads[i].key, key) && !strcmp(s->uploads[i].token, token))
            return &s->uploads[i];
    return NULL;
}

static void drop_parts_from(mem_upload *u, size_t from)
{
    for (size_t i = from; i < u->n_parts; i++)
        free(u->parts[i].data);
    u->n_parts = from < u->n_parts ? from : u->n_parts;
}

static void del_upload(mem_store *s, mem_upload *u)
{
    drop_parts_from(u, 0);
    free(u->parts);
    free(u->key);
    free(u->token);
    size_t i = (size_t)(u - s->uploads);
    memmove(&s->uploads[i], &s->uploads[i + 1], (s->n_uploads - i - 1) * sizeof *s->uploads);
    s->n_uploads--;
}

/* ---- writer -------------------------------------------------------------- */

typedef struct mem_writer {
    cs_sink base;
    mem_store *store;
    char *key;
    int flags;
    cs_buf buf;          /* the object (ordinary) or the part being filled (resumable) */
    cs_put_resume *res;  /* resumable: parts go into the upload as they fill */
    char *token;         /* of the upload, once it began */
    unsigned parts;      /* parts stored so far */
} mem_writer;

/* Store the full buffer as the next part of the writer's upload, beginning
 * the upload first when it has none; report both. */
static int store_part(mem_writer *w, cs_err *e)
{
    if (cs_cancel_requested())
        return cs_cancel_error(e);
    mem_store *s = w->store;
    cs_put_part done = { w->parts + 1, w->buf.len, { 0 } };
    cs_put_hash(w->buf.data, w->buf.len, done.hash);
    bool began = false;
    pthread_mutex_lock(&s->lock);
    mem_upload *u = w->token ? find_upload(s, w->key, w->token) : NULL;
    if (!u && w->token) { /* aborted meanwhile: its kept parts are gone (S3: NoSuchUpload) */
        pthread_mutex_unlock(&s->lock);
        return cs_err_set(e, CS_E_NOTFOUND, "storing %s: its upload was aborted", w->key);
    }
    if (!u) {
        w->token = cs_sprintf("mem-upload-%lu", ++s->next_token);
        s->uploads = cs_realloc(s->uploads, (s->n_uploads + 1) * sizeof *s->uploads);
        u = &s->uploads[s->n_uploads++];
        memset(u, 0, sizeof *u);
        u->key = cs_strdup(w->key);
        u->token = cs_strdup(w->token);
        u->initiated = (int64_t)time(NULL);
        began = true;
    }
    u->parts = cs_realloc(u->parts, (u->n_parts + 1) * sizeof *u->parts);
    mem_part *p = &u->parts[u->n_parts++];
    p->size = w->buf.len;
    memcpy(p->hash, done.hash, sizeof p->hash);
    p->data = cs_malloc(w->buf.len ? w->buf.len : 1);
    memcpy(p->data, w->buf.data, w->buf.len);
    w->parts++;
    char *token = cs_strdup(w->token);
    pthread_mutex_unlock(&s->lock);
    if (began && w->res->on_token)
        w->res->on_token(w->res->arg, token);
    if (w->res->on_part)
        w->res->on_part(w->res->arg, &done);
    free(token);
    cs_buf_reset(&w->buf);
    return 0;
}

static int mw_write(cs_sink *sink, const uint8_t *p, size_t n, cs_err *e)
{
    mem_writer *w = (mem_writer *)(void *)sink;
    if (!w->res) {
        cs_buf_add(&w->buf, p, n);
        return 0;
    }
    while (n > 0) {
        /* A full part goes out when more bytes follow (the last part may be
         * full too: it is sent by close). */
        if (w->buf.len == MEM_PART_SIZE) {
            int rc = store_part(w, e);
            if (rc)
                return rc;
        }
        size_t take = MEM_PART_SIZE - w->buf.len;
        take = take < n ? take : n;
        cs_buf_add(&w->buf, p, take);
        p += take;
        n -= take;
    }
    return 0;
}

/* The upload's parts and the buffer, as one blob; the upload is gone after. */
static mem_blob *assemble(mem_store *s, mem_writer *w)
{
    mem_upload *u = find_upload(s, w->key, w->token);
    size_t len = w->buf.len;
    for (size_t i = 0; u && i < u->n_parts; i++)
        len += u->parts[i].size;
    mem_blob *b = cs_calloc(1, sizeof *b);
    b->refs = 1;
    b->len = len;
    b->data = cs_malloc(len ? len : 1);
    size_t at = 0;
    for (size_t i = 0; u && i < u->n_parts; i++) {
        memcpy(b->data + at, u->parts[i].data, u->parts[i].size);
        at += u->parts[i].size;
    }
    memcpy(b->data + at, w->buf.data ? w->buf.data : "", w->buf.len);
    if (u)
        del_upload(s, u);
    return b;
}

static int mw_close(cs_sink *sink, cs_err *e)
{
    mem_writer *w = (mem_writer *)(void *)sink;
    mem_store *s = w->store;
    pthread_mutex_lock(&s->lock);
    bool found = false;
    find_object(s, w->key, &found);
    if (found && (w->flags & CS_PUT_EXCLUSIVE)) {
        pthread_mutex_unlock(&s->lock);
        return cs_err_set(e, CS_E_EXISTS, "object %s already exists", w->key);
    }
    if (w->token && !find_upload(s, w->key, w->token)) {
        pthread_mutex_unlock(&s->lock);
        return cs_err_set(e, CS_E_NOTFOUND, "storing %s: its upload was aborted", w->key);
    }
    put_object(s, w->key, assemble(s, w));
    pthread_mutex_unlock(&s->lock);
    free(w->token);
    w->token = NULL;
    cs_buf_free(&w->buf);
    return 0;
}

/* Freed without close: the buffer goes; a resumable writer's upload stays. */
static void mw_free(cs_sink *sink)
{
    mem_writer *w = (mem_writer *)(void *)sink;
    cs_buf_free(&w->buf);
    free(w->token);
    free(w->key);
    free(w);
}

static const cs_sink_ops mem_writer_ops = { mw_write, mw_close, mw_free };

static mem_writer *writer_new(cs_storage *st, const char *key, int flags)
{
    mem_writer *w = cs_calloc(1, sizeof *w);
    w->base.ops = &mem_writer_ops;
    w->store = store_of(st);
    w->key = cs_strdup(key);
    w->flags = flags;
    return w;
}

static int mem_put(cs_storage *st, const char *key, int flags, cs_sink **out, cs_err *e)
{
    (void)e;
    *out = &writer_new(st, key, flags)->base;
    return 0;
}

/* Keep the longest run of recorded parts 1, 2, ... that the upload holds
 * with the recorded size and hash, all full parts; drop the rest of it. */
static void keep_parts(mem_upload *u, cs_put_resume *r)
{
    size_t k = 0;
    while (k < r->n_parts && k < u->n_parts && r->parts[k].number == k + 1 && r->parts[k].size == MEM_PART_SIZE &&
           u->parts[k].size == MEM_PART_SIZE && !memcmp(u->parts[k].hash, r->parts[k].hash, CS_PUT_HASH_BYTES))
        k++;
    drop_parts_from(u, k);
    r->kept = k;
    r->resumed = (uint64_t)k * MEM_PART_SIZE;
}

static int mem_put_resumable(cs_storage *st, const char *key, cs_put_resume *r, cs_sink **out, cs_err *e)
{
    (void)e;
    mem_writer *w = writer_new(st, key, 0);
    w->res = r;
    if (r->token) {
        mem_store *s = w->store;
        pthread_mutex_lock(&s->lock);
        mem_upload *u = find_upload(s, key, r->token);
        if (u) { /* else: completed or aborted since, a new upload begins */
            keep_parts(u, r);
            w->token = cs_strdup(r->token);
            w->parts = (unsigned)r->kept;
        }
        pthread_mutex_unlock(&s->lock);
    }
    *out = &w->base;
    return 0;
}

static int mem_abort_resumable(cs_storage *st, const char *key, const char *token, cs_err *e)
{
    (void)e;
    mem_store *s = store_of(st);
    pthread_mutex_lock(&s->lock);
    mem_upload *u = find_upload(s, key, token);
    if (u)
        del_upload(s, u);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

typedef struct upload_entry {
    char *key, *token;
    int64_t initiated;
} upload_entry;

static int mem_list_resumable(cs_storage *st, const char *prefix, cs_storage_upload_cb cb, void *arg, cs_err *e)
{
    (void)e;
    mem_store *s = store_of(st);
    size_t plen = strlen(prefix), n = 0;
    pthread_mutex_lock(&s->lock);
    upload_entry *snap = cs_calloc(s->n_uploads + 1, sizeof *snap);
    for (size_t i = 0; i < s->n_uploads; i++)
        if (!strncmp(s->uploads[i].key, prefix, plen)) {
            snap[n].key = cs_strdup(s->uploads[i].key);
            snap[n].token = cs_strdup(s->uploads[i].token);
            snap[n++].initiated = s->uploads[i].initiated;
        }
    pthread_mutex_unlock(&s->lock);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = cb(snap[i].key, snap[i].token, snap[i].initiated, arg);
        free(snap[i].key);
        free(snap[i].token);
    }
    free(snap);
    return rc;
}

/* ---- reading, listing, deleting ------------------------------------------ */

static int mem_get(cs_storage *st, const char *key, cs_sink *dst, cs_err *e)
{
    mem_store *s = store_of(st);
    pthread_mutex_lock(&s->lock);
    bool found;
    size_t i = find_object(s, key, &found);
    mem_blob *b = found ? s->objects[i].blob : NULL;
    if (b)
        b->refs++;
    pthread_mutex_unlock(&s->lock);
    if (!b)
        return cs_err_set(e, CS_E_NOTFOUND, "object %s not found", key);
    int rc = 0;
    for (size_t at = 0; !rc && at < b->len; at += MEM_GET_CHUNK) {
        size_t n = b->len - at < MEM_GET_CHUNK ? b->len - at : MEM_GET_CHUNK;
        rc = cs_sink_write(dst, b->data + at, n, e);
    }
    pthread_mutex_lock(&s->lock);
    blob_unref(b);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int mem_stat(cs_storage *st, const char *key, cs_storage_stat *out, cs_err *e)
{
    mem_store *s = store_of(st);
    pthread_mutex_lock(&s->lock);
    bool found;
    size_t i = find_object(s, key, &found);
    if (found) {
        out->size = s->objects[i].blob->len;
        out->mtime = s->objects[i].mtime;
    }
    pthread_mutex_unlock(&s->lock);
    return found ? 0 : cs_err_set(e, CS_E_NOTFOUND, "object %s not found", key);
}

typedef struct list_entry {
    char *key;
    cs_storage_stat st;
} list_entry;

static int mem_list(cs_storage *st, const char *prefix, cs_storage_list_cb cb, void *arg, cs_err *e)
{
    (void)e;
    mem_store *s = store_of(st);
    size_t plen = strlen(prefix), n = 0;
    pthread_mutex_lock(&s->lock);
    bool found;
    size_t first = find_object(s, prefix, &found); /* keys with the prefix sort from here */
    size_t end = first;
    while (end < s->n_objects && !strncmp(s->objects[end].key, prefix, plen))
        end++;
    list_entry *snap = cs_calloc(end - first + 1, sizeof *snap);
    for (size_t i = first; i < end; i++, n++) {
        snap[n].key = cs_strdup(s->objects[i].key);
        snap[n].st.size = s->objects[i].blob->len;
        snap[n].st.mtime = s->objects[i].mtime;
    }
    pthread_mutex_unlock(&s->lock);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rc)
            rc = cb(snap[i].key, &snap[i].st, arg);
        free(snap[i].key);
    }
    free(snap);
    return rc;
}

static int mem_del(cs_storage *st, const char *key, cs_err *e)
{
    (void)e;
    mem_store *s = store_of(st);
    pthread_mutex_lock(&s->lock);
    del_object(s, key);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* ---- handles ------------------------------------------------------------- */

static void mem_free(cs_storage *st)
{
    mem_storage *m = (mem_storage *)(void *)st;
    mem_store *s = m->store;
    pthread_mutex_lock(&s->lock);
    bool last = --s->handles == 0;
    pthread_mutex_unlock(&s->lock);
    if (last) {
        for (size_t i = 0; i < s->n_objects; i++) {
            free(s->objects[i].key);
            blob_unref(s->objects[i].blob);
        }
        free(s->objects);
        while (s->n_uploads)
            del_upload(s, &s->uploads[s->n_uploads - 1]);
        free(s->uploads);
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
    free(m->base.location);
    free(m);
}

static const cs_storage_ops mem_ops = {
    "mem", mem_put, mem_get, mem_stat, mem_list, mem_del, NULL, mem_free, mem_put_resumable, mem_abort_resumable,
    mem_list_resumable,
};

static cs_storage *handle_new(mem_store *s, const char *location)
{
    mem_storage *m = cs_calloc(1, sizeof *m);
    m->base.ops = &mem_ops;
    m->base.location = cs_strdup(location);
    m->store = s;
    return &m->base;
}

cs_storage *cs_mem_storage_new(const char *name)
{
    mem_store *s = cs_calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->handles = 1;
    char *location = cs_sprintf("mem://%s", name ? name : "");
    cs_storage *st = handle_new(s, location);
    free(location);
    return st;
}

cs_storage *cs_mem_storage_share(cs_storage *mem)
{
    mem_store *s = store_of(mem);
    pthread_mutex_lock(&s->lock);
    s->handles++;
    pthread_mutex_unlock(&s->lock);
    return handle_new(s, mem->location);
}
