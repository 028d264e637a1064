/* backup.c - snapshot a node and store every new file once. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cassandra/node.h"
#include "cassandra/nodetool.h"
#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parallel.h"
#include "io/filters.h"
#include "ops/nodeopts.h"
#include "ops/ops.h"
#include "repo/set.h"
#include "ops/present.h"
#include "ops/snapshot.h"
#include "ops/state.h"
#include "ops/uploads.h"

/* A file the walk found that the repository does not hold yet under its
 * name. Tables and files are addressed by index: the manifest's arrays grow
 * while walking. */
typedef struct store_job {
    size_t table, file;
    char *path;
    uint64_t size;
    uint64_t bytes_read; /* set by the worker that stored it */
    uint64_t hash_read;  /* read to hash it first (its size is a known content) */
    char hash[CS_CONTENT_HASH_LEN]; /* that hash, when hashed */
    bool hashed;
    bool reused;         /* its content is stored already: nothing to store */
    uint64_t resumed;    /* stored bytes kept from an interrupted backup */
} store_job;

typedef struct backup_ctx {
    cs_job *job;          /* progress: phases, files and bytes as they stream */
    const cs_backup_req *req;
    const cs_host *host;
    cs_repo *repo;
    cs_manifest *m;
    cs_state *state;
    const char *tag;
    uint64_t bytes_read;
    uint64_t bytes_resumed;
    store_job *jobs;
    size_t n_jobs;
    bool snapshot_taken;  /* by this backup (not given): it clears it */
    cs_lock *lock;        /* the shared repository lock */
    cs_present *present;  /* the objects to reuse, checked in the repository */
    cs_uploads *uploads;  /* large uploads in progress, resumed across runs */
    bool again;           /* a set's backup this node began before and did not finish: marked already */
} backup_ctx;

static void default_name(char out[32])
{
    cs_utc_stamp((int64_t)time(NULL), out);
}

/* ---- storing one file ---- */

/* The Data.db of an SSTable with a CompressionInfo.db is compressed by
 * Cassandra already (LZ4 by default): zstd level 1 saves well under 1% of it
 * (bench/RESULTS.md) for most of the CPU of a backup. */
static bool is_compressed_data(const char *path)
{
    static const char suffix[] = "Data.db";
    size_t n = strlen(path), k = sizeof suffix - 1;
    if (n < k || strcmp(path + n - k, suffix))
        return false;
    char *info = cs_sprintf("%.*sCompressionInfo.db", (int)(n - k), path);
    bool yes = access(info, F_OK) == 0;
    free(info);
    return yes;
}

/* The live file behind a snapshot's hard link (".../snapshots/<tag>/x" ->
 * ".../x"): what an interrupted upload's file is checked against later. */
static char *live_path_of(const backup_ctx *c, const char *path)
{
    char *mark = cs_sprintf("/snapshots/%s/", c->tag);
    const char *at = strstr(path, mark);
    char *live = at ? cs_sprintf("%.*s/%s", (int)(at - path), path, at + strlen(mark)) : cs_strdup(path);
    free(mark);
    return live;
}

/* One try of store_file; *diverged: an interrupted upload of the file was
 * resumed, but the bytes made now differ from those it stored (it is
 * dropped: try again). */
static int store_once(const backup_ctx *c, const cs_mtable *t, const char *path, cs_mfile *f, uint64_t *bytes_read,
                      uint64_t *resumed, bool *diverged, cs_err *e)
{
    int level = is_compressed_data(path) ? CS_ZSTD_LEVEL_STORE : (int)c->req->zstd_level;
    char *live = live_path_of(c, path);
    cs_upload_file uf = { c->m->data_dirs.items[f->data_dir], t->id, f->name, live, f->size, f->mtime_ns, level };
    cs_upload *up = NULL;
    cs_sink *writer = NULL, *head = NULL;
    cs_hash_result hash;
    bool changed = false;
    f->stored = 0;
    int fd = cs_open_stream(path, e);
    int rc = fd < 0 ? e->code : 0;
    /* Object ids are 128 random bits: no need to ask whether one exists. */
    if (!rc)
        rc = cs_upload_open(c->uploads, &uf, &up, &writer, e);
    if (rc)
        goto out;
    memcpy(f->object, cs_upload_object(up), CS_OBJECT_ID_HEX);
    head = cs_count_filter_new(writer, &f->stored);
    head = cs_zstd_compress_new(head, level, f->size, e);
    if (!head) {
        rc = e->code;
        goto out;
    }
    head = cs_hash_filter_new(head, &hash);
    head = cs_progress_filter_new(head, c->job);
    uint64_t n = 0;
    rc = cs_pump_fd(fd, head, &n, e);
    if (!rc)
        rc = cs_sink_close(head, e);
    if (rc)
        goto out;
    if (hash.bytes != f->size) {
        rc = cs_err_set(e, CS_E_IO, "%s changed size while it was read", path);
        changed = true;
        goto out;
    }
    memcpy(f->hash, hash.id, sizeof f->hash);
    f->is_new = true;
    *bytes_read = n;
    *resumed = cs_upload_resumed(up);
out:
    cs_sink_free(head); /* first: parts in flight report to up until then */
    *diverged = up && cs_upload_diverged(up);
    cs_upload_finish(up, rc == 0, changed);
    if (fd >= 0)
        close(fd);
    free(live);
    if (rc)
        cs_err_prefix(e, "storing %s", path);
    return rc;
}

/* Runs on a worker thread: reads only shared settings, writes only f and
 * *bytes_read and *resumed. A large object is a resumable upload (see
 * ops/uploads.h): one an interrupted backup left is resumed. */
static int store_file(const backup_ctx *c, const cs_mtable *t, const char *path, cs_mfile *f, uint64_t *bytes_read,
                      uint64_t *resumed, cs_err *e)
{
    bool diverged = false;
    int rc = store_once(c, t, path, f, bytes_read, resumed, &diverged, e);
    if (diverged) {
        cs_warn("%s: storing it again from its start", e->msg);
        cs_err_clear(e);
        rc = store_once(c, t, path, f, bytes_read, resumed, &diverged, e);
    }
    return rc;
}

static void add_job(backup_ctx *c, size_t table, size_t file, char *path /* taken */)
{
    c->jobs = cs_realloc(c->jobs, (c->n_jobs + 1) * sizeof *c->jobs);
    store_job *j = &c->jobs[c->n_jobs++];
    memset(j, 0, sizeof *j);
    j->table = table;
    j->file = file;
    j->path = path;
    j->size = c->m->tables[table].files[file].size;
}

static int add_file(backup_ctx *c, cs_mtable *t, unsigned dir_index, const char *path, const char *rel,
                    const struct stat *st, cs_err *e)
{
    cs_mfile *f = cs_mtable_add_file(t, rel);
    f->size = (uint64_t)st->st_size;
    f->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    f->data_dir = dir_index;
    const cs_state_entry *known =
        cs_state_find(c->state, c->m->data_dirs.items[dir_index], t->id, rel, f->size, f->mtime_ns);
    if (known) {
        /* SSTable components are immutable: same name, size and mtime means
         * the stored object is still this file. Never read it again. */
        memcpy(f->hash, known->hash, sizeof f->hash); /* BLAKE2b stays BLAKE2b: not re-read */
        memcpy(f->object, known->object, CS_OBJECT_ID_HEX);
        f->stored = known->stored;
        f->pack = known->pack;
        return 0;
    }
    add_job(c, (size_t)(t - c->m->tables), t->n_files - 1, cs_strdup(path));
    (void)e;
    return 0;
}

/* ---- storing the new files, --jobs at a time ---- */

/* "ks.table/file" as the job's current item. */
static void report_item(const backup_ctx *c, const cs_mtable *t, const cs_mfile *f)
{
    char *item = cs_sprintf("%s.%s/%s", t->keyspace, t->table, f->name);
    cs_job_item(c->job, item);
    free(item);
}

static int store_one(backup_ctx *c, store_job *j, cs_err *e)
{
    cs_debug("storing %s", j->path);
    const cs_mtable *table = &c->m->tables[j->table];
    cs_mfile *f = &table->files[j->file];
    report_item(c, table, f);
    int rc = store_file(c, table, j->path, f, &j->bytes_read, &j->resumed, e);
    /* Journaled at once: a backup killed later still does not store it again. */
    if (!rc)
        cs_state_record(c->state, c->m->data_dirs.items[f->data_dir], table->id, f);
    if (!rc)
        cs_job_add_files(c->job, 1);
    return rc;
}

/* ---- packs: the small files of one SSTable in one object ---- */

/* One file of a pack: its own zstd frame appended to down (the object's
 * stored stream, *stored bytes so far), its plaintext also into whole (the
 * pack's content hash). */
static int store_member(const backup_ctx *c, store_job *j, cs_mfile *f, cs_sink *down, cs_sink *whole,
                        const uint64_t *stored, cs_err *e)
{
    int level = is_compressed_data(j->path) ? CS_ZSTD_LEVEL_STORE : (int)c->req->zstd_level;
    int fd = cs_open_stream(j->path, e);
    if (fd < 0)
        return cs_err_prefix(e, "storing %s", j->path);
    uint64_t at = *stored, n = 0;
    cs_hash_result hash;
    /* The frame ends when this chain closes; down and whole go on. */
    cs_sink *head = cs_zstd_compress_new(cs_tee_new(down, NULL), level, f->size, e);
    int rc = head ? 0 : e->code;
    if (!rc) {
        head = cs_tee_new(whole, head);
        head = cs_hash_filter_new(head, &hash);
        head = cs_progress_filter_new(head, c->job);
        rc = cs_pump_fd(fd, head, &n, e);
    }
    if (!rc)
        rc = cs_sink_close(head, e);
    cs_sink_free(head);
    close(fd);
    if (!rc && hash.bytes != f->size)
        rc = cs_err_set(e, CS_E_IO, "%s changed size while it was read", j->path);
    if (rc)
        return cs_err_prefix(e, "storing %s", j->path);
    memcpy(f->hash, hash.id, sizeof f->hash);
    f->pack.at = at;
    f->pack.len = *stored - at;
    j->bytes_read = n;
    return 0;
}

/* Store the n files of one SSTable (jobs idx[0..n)) as one object, a pack
 * (repo/manifest.h): one request instead of one per file. Small packs are
 * one PUT; a pack is never resumed (it is rewritten whole, as small files
 * are). */
static int store_pack(backup_ctx *c, const size_t *idx, size_t n, cs_err *e)
{
    const cs_mtable *t = &c->m->tables[c->jobs[idx[0]].table];
    char object[CS_OBJECT_ID_HEX];
    cs_repo_new_object_id(object);
    char *key = cs_repo_object_key(object);
    uint64_t stored = 0;
    cs_hash_result whole_hash;
    cs_sink *writer = NULL, *down = NULL, *whole = NULL;
    int rc = cs_repo_writer(c->repo, key, 0, &writer, e);
    if (!rc) {
        down = cs_count_filter_new(writer, &stored);
        whole = cs_hash_filter_new(NULL, &whole_hash);
    }
    for (size_t k = 0; !rc && k < n; k++) {
        store_job *j = &c->jobs[idx[k]];
        cs_mfile *f = &t->files[j->file];
        cs_debug("storing %s in pack %s", j->path, object);
        report_item(c, t, f);
        rc = store_member(c, j, f, down, whole, &stored, e);
    }
    if (!rc)
        rc = cs_sink_close(whole, e);
    if (!rc)
        rc = cs_sink_close(down, e); /* the object is stored */
    cs_sink_free(whole);
    cs_sink_free(down);
    free(key);
    for (size_t k = 0; !rc && k < n; k++) {
        cs_mfile *f = &t->files[c->jobs[idx[k]].file];
        memcpy(f->object, object, CS_OBJECT_ID_HEX);
        f->stored = stored;
        f->pack.size = whole_hash.bytes;
        memcpy(f->pack.hash, whole_hash.id, sizeof f->pack.hash);
        f->is_new = true;
        cs_state_record(c->state, c->m->data_dirs.items[f->data_dir], t->id, f);
        cs_job_add_files(c->job, 1);
    }
    return rc;
}

/* Files up to this size are stored with the other small files of their
 * SSTable: an SSTable is 8 files or so (Data.db, Index.db, Filter.db,
 * Statistics.db, ...), most of them a few KiB, and each object is a
 * request to the storage, which on the bench cost the S3 server more CPU
 * per request (~0.9 ms) than per MiB (~3.6 ms per MiB). Larger files (a
 * big table's Data.db) stay objects of their own, resumable. */
#define PACK_MEMBER_MAX ((uint64_t)1 << 20)

/* The SSTable a file belongs to: the length of its name up to and with the
 * last '-' of its base name ("nb-14-big-" of ".../nb-14-big-Data.db");
 * 0 when there is none (then it is stored alone). */
static size_t sstable_prefix(const char *name)
{
    const char *dash = strrchr(name, '-');
    const char *slash = strrchr(name, '/');
    return !dash || (slash && dash < slash) ? 0 : (size_t)(dash - name) + 1;
}

static const cs_mfile *job_file(const backup_ctx *c, size_t i)
{
    return &c->m->tables[c->jobs[i].table].files[c->jobs[i].file];
}

static const char *job_name(const backup_ctx *c, size_t i)
{
    return job_file(c, i)->name;
}

static bool packable(const backup_ctx *c, size_t i)
{
    const store_job *j = &c->jobs[i];
    return !j->reused && j->size <= PACK_MEMBER_MAX && sstable_prefix(job_name(c, i)) > 0;
}

/* Table, data directory, then name: the files of one SSTable side by side. */
static int by_sstable(const void *a, const void *b, void *arg)
{
    const backup_ctx *c = arg;
    size_t i = *(const size_t *)a, k = *(const size_t *)b;
    if (c->jobs[i].table != c->jobs[k].table)
        return c->jobs[i].table < c->jobs[k].table ? -1 : 1;
    if (job_file(c, i)->data_dir != job_file(c, k)->data_dir)
        return job_file(c, i)->data_dir < job_file(c, k)->data_dir ? -1 : 1;
    return strcmp(job_name(c, i), job_name(c, k));
}

static bool same_sstable(const backup_ctx *c, size_t i, size_t k)
{
    size_t n = sstable_prefix(job_name(c, i));
    return c->jobs[i].table == c->jobs[k].table && job_file(c, i)->data_dir == job_file(c, k)->data_dir &&
           n == sstable_prefix(job_name(c, k)) && !strncmp(job_name(c, i), job_name(c, k), n);
}

/* Sort the job indexes v[0..n) by SSTable; then sstable_end(c, v, i, n)
 * is where the run of v[i]'s SSTable ends. */
static void sort_by_sstable(backup_ctx *c, size_t *v, size_t n)
{
    qsort_r(v, n, sizeof *v, by_sstable, c);
}

static size_t sstable_end(const backup_ctx *c, const size_t *v, size_t i, size_t n)
{
    size_t k = i + 1;
    while (k < n && same_sstable(c, v[i], v[k]))
        k++;
    return k;
}

/* What one worker stores at once: a file alone, or the files of a pack. */
typedef struct store_unit {
    size_t *jobs; /* indexes into backup_ctx.jobs (borrowed from one array) */
    size_t n;
    uint64_t bytes;
} store_unit;

typedef struct store_plan {
    backup_ctx *c;
    size_t *order;    /* job indexes, each unit's side by side */
    store_unit *units;
    size_t n_units;
} store_plan;

static void add_unit(store_plan *p, size_t first, size_t n)
{
    store_unit *u = &p->units[p->n_units++];
    u->jobs = &p->order[first];
    u->n = n;
    u->bytes = 0;
    for (size_t k = 0; k < n; k++)
        u->bytes += p->c->jobs[p->order[first + k]].size;
}

/* The units of the jobs to store: the packable files of one SSTable
 * together when there are two or more, every other file alone. */
static void plan_units(store_plan *p)
{
    backup_ctx *c = p->c;
    p->order = cs_calloc(c->n_jobs ? c->n_jobs : 1, sizeof *p->order);
    p->units = cs_calloc(c->n_jobs ? c->n_jobs : 1, sizeof *p->units);
    size_t n = 0;
    for (size_t i = 0; i < c->n_jobs; i++)
        if (packable(c, i))
            p->order[n++] = i;
    size_t n_packable = n;
    sort_by_sstable(c, p->order, n_packable);
    for (size_t i = 0; i < c->n_jobs; i++)
        if (!c->jobs[i].reused && !packable(c, i))
            p->order[n++] = i;
    for (size_t i = 0, k; i < n_packable; i = k) {
        k = sstable_end(c, p->order, i, n_packable);
        add_unit(p, i, k - i); /* a file alone, or a pack */
    }
    for (size_t i = n_packable; i < n; i++)
        add_unit(p, i, 1);
}

static int store_unit_run(void *arg, size_t i, cs_err *e)
{
    store_plan *p = arg;
    const store_unit *u = &p->units[i];
    if (cs_cancel_requested())
        return cs_cancel_error(e);
    if (u->n == 1)
        return store_one(p->c, &p->c->jobs[u->jobs[0]], e);
    return store_pack(p->c, u->jobs, u->n, e);
}

static int by_bytes_desc(const void *a, const void *b)
{
    const store_unit *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}

/* The files and bytes the upload phase will read: every new file not
 * reused by content. */
static void report_upload_phase(backup_ctx *c)
{
    uint64_t files = 0, bytes = 0;
    for (size_t i = 0; i < c->n_jobs; i++)
        if (!c->jobs[i].reused) {
            files++;
            bytes += c->jobs[i].size;
        }
    cs_job_phase(c->job, "upload", files, bytes);
}

/* Largest units first, so that the last one to finish is a small one. */
static int store_new_files(backup_ctx *c, cs_err *e)
{
    store_plan p = { c, NULL, NULL, 0 };
    plan_units(&p);
    if (p.n_units > 1)
        qsort(p.units, p.n_units, sizeof *p.units, by_bytes_desc);
    report_upload_phase(c);
    int rc = cs_parallel_for(p.n_units, (unsigned)c->req->jobs, store_unit_run, &p, e);
    for (size_t i = 0; i < c->n_jobs; i++) {
        c->bytes_read += c->jobs[i].bytes_read + c->jobs[i].hash_read;
        c->bytes_resumed += c->jobs[i].resumed;
    }
    free(p.units);
    free(p.order);
    return rc;
}

/* ---- reusing only what the repository holds ---- */

static int hash_file(cs_job *job, const char *path, uint64_t size, char hash[CS_CONTENT_HASH_LEN], uint64_t *bytes_read,
                     cs_err *e)
{
    cs_hash_result res;
    int fd = cs_open_stream(path, e);
    if (fd < 0)
        return e->code;
    cs_sink *sink = cs_hash_filter_new(NULL, &res);
    sink = cs_progress_filter_new(sink, job);
    int rc = cs_pump_fd(fd, sink, bytes_read, e);
    if (!rc)
        rc = cs_sink_close(sink, e);
    cs_sink_free(sink);
    close(fd);
    if (!rc && res.bytes != size)
        rc = cs_err_set(e, CS_E_IO, "%s changed size while it was read", path);
    if (!rc)
        memcpy(hash, res.id, CS_CONTENT_HASH_LEN);
    return rc;
}

/* Whether the state knows a content of that size that a file's hash can
 * match. Dedup by content hashes with the content hash of now (SHA-256,
 * io/filters.h) and compares strings: a known content hashed with BLAKE2b
 * (a file stored before manifest format 2) is never matched, so a file of
 * only such sizes is not read twice for nothing; it is just stored. */
static bool size_is_known_content(const cs_state *s, uint64_t size)
{
    size_t n = 0;
    const cs_state_entry *const *hits = cs_state_contents(s, size, NULL, &n);
    for (size_t h = 0; h < n; h++)
        if (!strncmp(hits[h]->hash, CS_CONTENT_HASH_TAG, strlen(CS_CONTENT_HASH_TAG)))
            return true;
    return false;
}

/* Runs on a worker thread: a file not known by name whose size is a known
 * content is hashed (one read, nothing sent) in case it is that content,
 * e.g. a file an import restore placed under a new name. */
static int hash_job_run(void *arg, size_t i, cs_err *e)
{
    backup_ctx *c = arg;
    store_job *j = &c->jobs[i];
    if (!size_is_known_content(c->state, j->size))
        return 0;
    int rc = hash_file(c->job, j->path, j->size, j->hash, &j->hash_read, e);
    j->hashed = rc == 0;
    if (!rc)
        cs_job_add_files(c->job, 1);
    return rc;
}

static char *snapshot_path(const backup_ctx *c, const cs_mtable *t, const cs_mfile *f)
{
    return cs_sprintf("%s/%s/%s-%s/snapshots/%s/%s", c->m->data_dirs.items[f->data_dir], t->keyspace, t->table,
                      t->id, c->tag, f->name);
}

/* Every object this backup would reuse, by name or by content. */
static void want_reused(backup_ctx *c)
{
    for (size_t i = 0; i < c->m->n_tables; i++)
        for (size_t k = 0; k < c->m->tables[i].n_files; k++) {
            const cs_mfile *f = &c->m->tables[i].files[k];
            if (f->object[0])
                cs_present_want(c->present, f->object, f->stored);
        }
    for (size_t i = 0; i < c->n_jobs; i++) {
        size_t n = 0;
        const cs_state_entry *const *hits =
            c->jobs[i].hashed ? cs_state_contents(c->state, c->jobs[i].size, c->jobs[i].hash, &n) : NULL;
        for (size_t h = 0; h < n; h++)
            cs_present_want(c->present, hits[h]->object, hits[h]->stored);
    }
}

/* Files known by name whose object is not in the repository (lost,
 * deleted, truncated): stored again, as new objects. */
static size_t store_missing_again(backup_ctx *c)
{
    size_t again = 0;
    for (size_t i = 0; i < c->m->n_tables; i++) {
        cs_mtable *t = &c->m->tables[i];
        for (size_t k = 0; k < t->n_files; k++) {
            cs_mfile *f = &t->files[k];
            if (!f->object[0] || cs_present_has(c->present, f->object, f->stored))
                continue;
            cs_debug("%s.%s/%s: object %s is not in the repository: storing the file again", t->keyspace,
                     t->table, f->name, f->object);
            memset(f->hash, 0, sizeof f->hash);
            memset(f->object, 0, sizeof f->object);
            f->stored = 0;
            memset(&f->pack, 0, sizeof f->pack);
            add_job(c, i, k, snapshot_path(c, t, f));
            again++;
        }
    }
    return again;
}

/* A stored object that holds job j's content, present in the repository:
 * in `object` when given, else any that holds it alone (not a pack). */
static const cs_state_entry *stored_content(const backup_ctx *c, const store_job *j, const char *object)
{
    size_t n = 0;
    const cs_state_entry *const *hits = j->hashed ? cs_state_contents(c->state, j->size, j->hash, &n) : NULL;
    for (size_t h = 0; h < n; h++) {
        const cs_state_entry *hit = hits[h];
        bool wanted = object ? !strcmp(hit->object, object) : hit->pack.len == 0;
        if (wanted && cs_present_has(c->present, hit->object, hit->stored))
            return hit;
    }
    return NULL;
}

static void reuse_content(backup_ctx *c, store_job *j, const cs_state_entry *hit)
{
    const cs_mtable *t = &c->m->tables[j->table];
    cs_mfile *f = &t->files[j->file];
    memcpy(f->hash, j->hash, sizeof f->hash);
    memcpy(f->object, hit->object, CS_OBJECT_ID_HEX);
    f->stored = hit->stored;
    f->pack = hit->pack;
    j->reused = true;
    cs_state_record(c->state, c->m->data_dirs.items[f->data_dir], t->id, f);
}

/* The n small files of one SSTable (jobs idx[0..n)) are reused together
 * from one pack that holds every one of them (an SSTable a restore placed
 * under new names), or each from an object that holds it alone; never one
 * of them from another SSTable's pack: a TOC.txt is the same in every
 * SSTable of a table, and reusing it would keep that pack alive, and cost
 * a restore its download, for one small file. */
static size_t reuse_sstable(backup_ctx *c, const size_t *idx, size_t n)
{
    size_t lead_n = 0;
    const store_job *lead = &c->jobs[idx[0]];
    const cs_state_entry *const *lead_hits =
        lead->hashed ? cs_state_contents(c->state, lead->size, lead->hash, &lead_n) : NULL;
    const cs_state_entry **in_pack = cs_calloc(n, sizeof *in_pack);
    for (size_t h = 0; h < lead_n; h++) {
        const char *object = lead_hits[h]->object;
        if (!lead_hits[h]->pack.len || !cs_present_has(c->present, object, lead_hits[h]->stored))
            continue;
        size_t k = 0;
        while (k < n && (in_pack[k] = stored_content(c, &c->jobs[idx[k]], object)) != NULL)
            k++;
        if (k < n)
            continue;
        for (k = 0; k < n; k++)
            reuse_content(c, &c->jobs[idx[k]], in_pack[k]);
        free(in_pack);
        return n;
    }
    free(in_pack);
    size_t reused = 0;
    for (size_t k = 0; k < n; k++) {
        const cs_state_entry *alone = stored_content(c, &c->jobs[idx[k]], NULL);
        if (alone) {
            reuse_content(c, &c->jobs[idx[k]], alone);
            reused++;
        }
    }
    return reused;
}

/* Files whose content the repository holds under another name: reused. */
static size_t reuse_by_content(backup_ctx *c)
{
    size_t reused = 0, n_small = 0;
    size_t *small = cs_calloc(c->n_jobs ? c->n_jobs : 1, sizeof *small);
    for (size_t i = 0; i < c->n_jobs; i++) {
        store_job *j = &c->jobs[i];
        if (packable(c, i)) { /* hashed or not: the SSTable's others count too */
            small[n_small++] = i;
            continue;
        }
        if (!j->hashed)
            continue;
        const cs_state_entry *alone = stored_content(c, j, NULL);
        if (alone) {
            reuse_content(c, j, alone);
            reused++;
        }
    }
    sort_by_sstable(c, small, n_small);
    for (size_t i = 0, k; i < n_small; i = k) {
        k = sstable_end(c, small, i, n_small);
        reused += reuse_sstable(c, &small[i], k - i);
    }
    free(small);
    return reused;
}

/* A backup never references an object it has not seen in the repository
 * during this run: what the state says is stored may have been lost since
 * (deleted by hand, a bucket's lifecycle rule, a restore of the bucket). */
/* The files hash_job_run will read: new names whose size is a known content. */
static void report_hash_phase(backup_ctx *c)
{
    uint64_t files = 0, bytes = 0;
    for (size_t i = 0; i < c->n_jobs; i++) {
        if (size_is_known_content(c->state, c->jobs[i].size)) {
            files++;
            bytes += c->jobs[i].size;
        }
    }
    cs_job_phase(c->job, "hash", files, bytes);
}

static int check_reused(backup_ctx *c, cs_err *e)
{
    report_hash_phase(c);
    int rc = cs_parallel_for(c->n_jobs, (unsigned)c->req->jobs, hash_job_run, c, e);
    if (rc)
        return rc;
    c->present = cs_present_new();
    want_reused(c);
    cs_job_phase(c->job, "check objects", 0, 0); /* cs_present_check counts them */
    rc = cs_present_check(c->present, c->repo, cs_state_repo_objects(c->state), (unsigned)c->req->jobs, e);
    if (rc)
        return rc;
    size_t again = store_missing_again(c);
    if (again)
        cs_warn("%zu file(s) known as stored have no object in the repository (lost since): stored again", again);
    size_t reused = reuse_by_content(c);
    if (reused)
        cs_info("%zu files not known by name hold contents the repository has: reused", reused);
    return 0;
}

/* ---- walking the snapshot ---- */

static int walk_snapshot_dir(backup_ctx *c, cs_mtable *t, unsigned dir_index, const char *dir, const char *rel_prefix,
                             cs_err *e)
{
    DIR *d = opendir(dir);
    if (!d)
        return cs_err_sys(e, CS_E_IO, errno, "cannot read %s", dir);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        bool top = rel_prefix[0] == '\0';
        /* Cassandra's own snapshot manifest is replaced by ours; schema.cql
         * goes into the manifest's table entry. */
        if (top && !strcmp(de->d_name, "manifest.json"))
            continue;
        char *path = cs_path_join(dir, de->d_name);
        char *rel = top ? cs_strdup(de->d_name) : cs_sprintf("%s/%s", rel_prefix, de->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) {
            rc = cs_err_sys(e, CS_E_IO, errno, "cannot stat %s", path);
        } else if (top && !strcmp(de->d_name, "schema.cql") && S_ISREG(st.st_mode)) {
            char *text = NULL;
            rc = cs_read_file(path, 1 << 20, &text, NULL, e);
            if (!rc) {
                free(t->schema_cql);
                t->schema_cql = text;
            }
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk_snapshot_dir(c, t, dir_index, path, rel, e);
        } else if (S_ISREG(st.st_mode)) {
            rc = add_file(c, t, dir_index, path, rel, &st, e);
            cs_job_add_files(c->job, 1);
        }
        free(path);
        free(rel);
    }
    closedir(d);
    return rc;
}

/* "<table>-<32 hex id>" -> table name and id; false for anything else. */
static bool split_table_dir(const char *dirname, char **table, char **id)
{
    const char *dash = strrchr(dirname, '-');
    if (!dash || !cs_is_hex32(dash + 1))
        return false;
    *table = cs_strndup(dirname, (size_t)(dash - dirname));
    *id = cs_strdup(dash + 1);
    if (!cs_node_is_valid_name(*table)) {
        free(*table);
        free(*id);
        return false;
    }
    return true;
}

static int walk_table(backup_ctx *c, unsigned dir_index, const char *ks, const char *ks_dir, const char *tdir,
                      cs_err *e)
{
    char *table = NULL, *id = NULL;
    if (!split_table_dir(tdir, &table, &id))
        return 0;
    char *table_path = cs_path_join(ks_dir, tdir);
    char *snap = cs_sprintf("%s/snapshots/%s", table_path, c->tag);
    int rc = 0;
    if (cs_is_dir(snap)) {
        cs_mtable *t = cs_manifest_find_table(c->m, ks, table);
        if (!t)
            t = cs_manifest_add_table(c->m, ks, table, id);
        if (strcmp(t->id, id))
            rc = cs_err_set(e, CS_E_INVAL, "table %s.%s has two ids on disk (%s and %s)", ks, table, t->id, id);
        else
            rc = walk_snapshot_dir(c, t, dir_index, snap, "", e);
    }
    free(snap);
    free(table_path);
    free(table);
    free(id);
    return rc;
}

static int walk_data_dir(backup_ctx *c, unsigned dir_index, cs_err *e)
{
    const char *root = c->m->data_dirs.items[dir_index];
    DIR *d = opendir(root);
    if (!d)
        return cs_err_sys(e, CS_E_IO, errno, "cannot read data directory %s", root);
    int rc = 0;
    struct dirent *ks;
    while (rc == 0 && (ks = readdir(d)) != NULL) {
        if (!cs_node_is_valid_name(ks->d_name))
            continue;
        if (c->req->keyspaces.n && !cs_strlist_has(&c->req->keyspaces, ks->d_name))
            continue;
        char *ks_dir = cs_path_join(root, ks->d_name);
        DIR *kd = cs_is_dir(ks_dir) ? opendir(ks_dir) : NULL;
        struct dirent *td;
        while (kd && rc == 0 && (td = readdir(kd)) != NULL)
            rc = walk_table(c, dir_index, ks->d_name, ks_dir, td->d_name, e);
        if (kd)
            closedir(kd);
        free(ks_dir);
    }
    closedir(d);
    return rc;
}

/* ---- the whole backup ---- */

static int describe_node(const cs_host *host, const cs_backup_req *req, cs_manifest *m, cs_err *e)
{
    cs_node_info info;
    int rc = cs_ops_read_node(host, "backup", &info, &m->schema, e);
    if (!rc)
        rc = cs_node_check_keyspaces(m->schema, &req->keyspaces, e);
    if (rc) {
        cs_node_info_free(&info);
        return rc;
    }
    m->host_id = info.host_id;
    m->address = info.address;
    m->cluster_name = info.cluster_name;
    m->datacenter = info.datacenter;
    m->rack = info.rack;
    m->release_version = info.release_version;
    m->partitioner = info.partitioner;
    m->tokens = info.tokens;
    m->commitlog_dir = info.commitlog_dir;
    m->hints_dir = info.hints_dir;
    m->saved_caches_dir = info.saved_caches_dir;
    m->data_dirs = info.data_dirs;
    return 0;
}

/* Snapshots of cassette still on disk: left by a backup that was killed
 * (we hold the node's lock, so none of them is running). The one this
 * backup was given (its snapshot field) is not stale: it is why it runs. */
static void clear_stale_snapshots(backup_ctx *c, cs_nodetool *nt)
{
    cs_strlist tags = { NULL, 0 };
    cs_snapshot_find_tags(&c->m->data_dirs, "cassette-", &tags);
    for (size_t i = 0; i < tags.n; i++) {
        if (!strcmp(tags.items[i], c->tag))
            continue;
        cs_err err;
        cs_err_clear(&err);
        bool cleared;
        cs_warn("clearing snapshot %s left by an interrupted backup", tags.items[i]);
        if (cs_snapshot_clear(nt, c->m->release_version, &c->m->data_dirs, tags.items[i], &cleared, &err))
            cs_warn("%s", err.msg);
    }
    cs_strlist_free(&tags);
}

static int snapshot_and_store(backup_ctx *c, cs_nodetool *nt, cs_err *e)
{
    cs_job_phase(c->job, "snapshot", 0, 0); /* nodetool flushes first */
    clear_stale_snapshots(c, nt);
    int rc = 0;
    if (cs_cancel_requested())
        rc = cs_cancel_error(e);
    else if (!c->req->snapshot)
        rc = cs_nodetool_snapshot(nt, c->tag, &c->req->keyspaces, e);
    if (rc)
        return rc;
    c->snapshot_taken = !c->req->snapshot;
    /* Only now does the repository change: a node that cannot snapshot
     * leaves it exactly as it was. The scope goes into every file of the
     * backup (retention counts backups of one scope together). */
    char *key_dir = cs_state_dir(c->host);
    rc = cs_repo_scope_of(c->repo, key_dir, &c->req->keyspaces, NULL, &c->m->scope, e);
    free(key_dir);
    if (!rc && !c->again)
        rc = cs_repo_mark_started(c->repo, c->m, e);
    cs_job_phase(c->job, "scan", 0, 0);
    for (unsigned i = 0; rc == 0 && i < c->m->data_dirs.n; i++)
        rc = walk_data_dir(c, i, e);
    if (!rc)
        rc = check_reused(c, e);
    if (!rc)
        rc = store_new_files(c, e);
    /* Uploads an earlier backup left whose file is gone or changed. */
    if (!rc)
        cs_uploads_sweep(c->uploads, c->state);
    c->m->finished = cs_now();
    /* A lock broken while this process stood still lets a purge run: the
     * objects reused from before may be gone, so commit nothing. */
    if (!rc)
        rc = cs_lock_check(c->lock, e);
    if (!rc)
        cs_job_phase(c->job, "manifest", 0, 0);
    if (!rc)
        rc = cs_repo_put_manifest(c->repo, c->m, e);
    return rc;
}

/* The snapshot pins SSTables that compaction may want to delete: drop it
 * whatever happened. A failure to clear it must not hide a first error. */
static void clear_snapshot(cs_job *job, cs_nodetool *nt, const cs_manifest *m, const char *tag, int rc)
{
    cs_err clear_err;
    cs_err_clear(&clear_err);
    bool cleared;
    cs_job_phase(job, "cleanup", 0, 0);
    if (cs_snapshot_clear(nt, m->release_version, &m->data_dirs, tag, &cleared, &clear_err) && rc == 0)
        cs_warn("backup %s is complete, but its snapshot could not be cleared: %s", m->backup, clear_err.msg);
}

/* Has keyspace a table directory on the node? (An empty keyspace has
 * nothing a snapshot could hold.) */
static bool keyspace_has_tables(const cs_strlist *data_dirs, const char *keyspace)
{
    bool found = false;
    for (size_t i = 0; !found && i < data_dirs->n; i++) {
        char *dir = cs_path_join(data_dirs->items[i], keyspace);
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d && !found && (de = readdir(d)) != NULL)
            found = de->d_name[0] != '.';
        if (d)
            closedir(d);
        free(dir);
    }
    return found;
}

/* A snapshot given to back up must be there, and hold what the backup
 * says it holds (its scope): every keyspace asked for, or, for a backup of
 * everything, the schema (a snapshot of some keyspaces lacks it). One clear
 * error, before the repository changes (the snapshot is cleared all the
 * same: a coordinator takes a new one to try again). */
static int check_given_snapshot(const cs_backup_req *req, const cs_manifest *m, cs_err *e)
{
    const char *tag = req->snapshot;
    if (!tag)
        return 0;
    if (!cs_snapshot_on_disk(&m->data_dirs, tag)) {
        cs_err_set(e, CS_E_NOTFOUND, "snapshot %s is on no data directory of the node (take it with cassette "
                                     "snapshot --tag %s)", tag, tag);
        return cs_err_field(e, "snapshot");
    }
    for (size_t i = 0; i < req->keyspaces.n; i++)
        if (!cs_snapshot_in_keyspace(&m->data_dirs, req->keyspaces.items[i], tag) &&
            keyspace_has_tables(&m->data_dirs, req->keyspaces.items[i])) {
            cs_err_set(e, CS_E_USAGE, "snapshot %s holds no table of keyspace %s: take it with the backup's "
                                      "{keyspaces}", tag, req->keyspaces.items[i]);
            return cs_err_field(e, "snapshot");
        }
    if (!req->keyspaces.n && !cs_snapshot_in_keyspace(&m->data_dirs, "system_schema", tag)) {
        cs_err_set(e, CS_E_USAGE, "snapshot %s was taken of some keyspaces only: name them in {keyspaces}, or back "
                                  "up a snapshot of every keyspace", tag);
        return cs_err_field(e, "snapshot");
    }
    return 0;
}

/* Alone, the name must be free (no node and no set has it). With {set},
 * the name must be that set's (cluster backup began it), the set not yet
 * committed, this node one of its expected hosts, and not complete here: a
 * node whose attempt failed is tried again by the coordinator (*again: its
 * start mark is there already). */
static int check_name(cs_repo *repo, const cs_backup_req *req, const cs_manifest *m, bool *again, cs_err *e)
{
    *again = false;
    cs_backup_set s;
    int rc = cs_repo_read_set(repo, m->backup, &s, e);
    if (rc == CS_E_NOTFOUND) {
        cs_err_clear(e);
        if (req->set)
            return cs_err_set(e, CS_E_NOTFOUND, "there is no backup set named %s ({set} is for the backups a cluster "
                                                "backup begins)", m->backup);
        return cs_repo_check_name_free(repo, m->backup, e);
    }
    if (rc)
        return rc;
    if (!req->set)
        rc = cs_err_set(e, CS_E_EXISTS, "the name %s belongs to a cluster backup set: choose another name", m->backup);
    else if (strcmp(s.set_id, req->set))
        rc = cs_err_set(e, CS_E_INVAL, "backup set %s has another set id than {set} %s", m->backup, req->set);
    else if (s.committed)
        rc = cs_err_set(e, CS_E_INVAL, "backup set %s is committed already: a node can no longer join it", m->backup);
    else if (!cs_set_find_host(&s, m->host_id))
        rc = cs_err_set(e, CS_E_INVAL, "this node (host id %s) is not one of the hosts backup set %s expects",
                        m->host_id, m->backup);
    cs_backup_set_free(&s);
    if (rc)
        return rc;
    char *key = cs_repo_backup_key(m->backup, m->host_id, "started");
    cs_storage_stat st;
    rc = cs_storage_stat_key(repo->st, key, &st, e);
    free(key);
    if (rc == CS_E_NOTFOUND) {
        cs_err_clear(e);
        return 0;
    }
    if (rc)
        return rc;
    key = cs_repo_backup_key(m->backup, m->host_id, "manifest");
    rc = cs_storage_stat_key(repo->st, key, &st, e);
    free(key);
    if (!rc)
        return cs_err_set(e, CS_E_EXISTS, "this node's backup %s of set %s is complete already", m->backup, req->set);
    if (rc == CS_E_NOTFOUND) {
        cs_err_clear(e);
        *again = true;
        return 0;
    }
    return rc;
}

int cs_op_backup(cs_job *job, const cs_host *host, const cs_backup_req *req, cs_backup_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    char name[32];
    cs_manifest *m = &res->manifest;
    cs_repo *repo = NULL;
    cs_nodetool *nt = NULL;
    cs_state *state = NULL;
    char *tag = NULL;
    char *purpose = NULL;
    cs_lock *lock = NULL;
    int lock_fd = -1;
    char *uploads_path = NULL;
    bool clear_tag = false; /* the snapshot is this backup's to clear */
    /* A cancel (SIGINT or SIGTERM in the CLI) stops the backup at its next
     * safe point: what is stored stays (large uploads are resumed by the
     * next backup), the lock is released and the local state saved on the
     * way out. */
    default_name(name);
    m->backup = cs_strdup(req->name ? req->name : name);
    m->started = t0;
    /* Ask the node first: an unreachable node leaves the repository (and
     * a location that is not one yet) untouched. */
    cs_job_phase(job, "schema", 0, 0); /* the node's topology and schema */
    cs_nodetool_opts nodetool_opts;
    cs_ops_nodetool_opts(host, &nodetool_opts);
    int rc = cs_nodetool_new(&nodetool_opts, &nt, e);
    if (!rc)
        rc = describe_node(host, req, m, e);
    if (!rc)
        rc = cs_state_lock(host, m->host_id, &lock_fd, e);
    /* A given snapshot is cleared once it is backed up; not before the
     * node's lock is held (another backup of the node may use it), and not
     * when this backup fails: whoever took it may try again with it (a
     * cluster backup's retries) and clears it in the end. */
    tag = req->snapshot ? cs_strdup(req->snapshot) : cs_sprintf("cassette-%s", m->backup);
    clear_tag = !rc && req->snapshot;
    if (!rc)
        rc = check_given_snapshot(req, m, e);
    if (!rc)
        rc = cs_ops_open_repo(host, req->repo, &req->recipients, req->init, &repo, e);
    /* Shared: backups and restores run side by side, a purge waits. */
    if (!rc) {
        purpose = cs_sprintf("backup %s of %s", m->backup, m->address ? m->address : m->host_id);
        cs_job_phase(job, "lock", 0, 0);
        cs_ops_lock_opts lo = { req->lock_wait, req->lock_stale, true };
        rc = cs_ops_lock(&lo, repo, CS_LOCK_SHARED, purpose, &lock, e);
    }
    bool again = false;
    if (!rc)
        rc = check_name(repo, req, m, &again, e);
    if (!rc)
        rc = cs_state_load(host, repo, m->host_id, &state, e);
    if (rc)
        goto out;
    res->encrypted = cs_repo_is_encrypted(repo);
    uploads_path = cs_uploads_path(host, repo, m->host_id);
    backup_ctx c = { .job = job, .req = req, .host = host, .repo = repo, .m = m, .state = state, .tag = tag,
                     .lock = lock,
                     .uploads = cs_uploads_load(uploads_path, repo), .again = again };
    rc = snapshot_and_store(&c, nt, e);
    clear_tag |= c.snapshot_taken;
    cs_uploads_free(c.uploads);
    res->bytes_read = c.bytes_read;
    cs_present_free(c.present);
    res->bytes_resumed = c.bytes_resumed;
    for (size_t i = 0; i < c.n_jobs; i++)
        free(c.jobs[i].path);
    free(c.jobs);
    /* A lost cache only costs re-reading files: its failure is a warning. */
    cs_err state_err;
    cs_err_clear(&state_err);
    if (rc ? cs_state_save_partial(host, repo, state, m, &state_err) : cs_state_save(host, repo, m, &state_err))
        cs_warn("could not save the local dedup cache: %s", state_err.msg);
out:
    if (clear_tag && (rc == 0 || !req->snapshot))
        clear_snapshot(job, nt, m, tag, rc);
    res->seconds = cs_now() - t0;
    if (rc && cs_cancel_requested())
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted; run backup again to resume"); /* whatever failed then */
    else if (rc)
        cs_err_prefix(e, "backup %s", m->backup ? m->backup : "");
    cs_state_free(state);
    cs_state_unlock(lock_fd);
    cs_lock_release(lock);
    free(purpose);
    cs_nodetool_free(nt);
    cs_repo_free(repo);
    free(tag);
    free(uploads_path);
    return rc;
}

void cs_backup_result_free(cs_backup_result *res)
{
    cs_manifest_free(&res->manifest);
}
