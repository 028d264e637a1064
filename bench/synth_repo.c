/* synth_repo - write a synthetic repository of many backups, for the scale
 * benchmarks of list, catalog, verify and purge (bench/repo_scale.py).
 *
 *   synth_repo --repo DIR --backups N --files M [--hosts H] [--new-fraction F]
 *              [--start EPOCH] [--interval SECONDS] [--incomplete K] [--seed S]
 *              [--object-size BYTES] [--tables T] [--jobs J]
 *
 * Creates a new unencrypted posix repository (cs_repo_init) and writes N
 * backups of each of H nodes, named "h-YYYYMMDD-HHMMSS" (UTC) from
 * START + i * INTERVAL: the nodes of one time slot share the backup name,
 * as a cluster-wide backup does. Each backup is what `cassette backup`
 * would write: a start mark, then the new objects, then the manifest and
 * its summary (cs_repo_mark_started, cs_repo_put_manifest). A node holds M
 * files: SSTables of 8 components (nb-<gen>-big-Data.db, Index.db, ...,
 * TOC.txt) spread over T tables (default 100: 10 keyspaces of 10 tables,
 * fewer when there are fewer SSTables). Like hourly backups: backup 0
 * stores every file; each next one keeps the previous backup's files (same
 * name, size, mtime, hash and object) except about F*M of them (default
 * F = 0.02), whole SSTables replaced by new ones as compaction would.
 * Every new file is a real object: BYTES (default 64) of plaintext derived
 * from the seed, the node and the file, stored through the chain backup
 * uses (hash -> zstd -> count -> repository writer), so that a deep verify
 * passes. K backups per node that only have a start mark (interrupted) come
 * after the N complete ones. Output is deterministic from the options except
 * object ids (random, as in real repositories).
 *
 * Memory: one manifest at a time plus each node's current file list.
 * Prints one summary line. Bad arguments: one line on stderr, exit 2;
 * failures: one line, exit 1. */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/parallel.h"
#include "io/filters.h"
#include "io/sink.h"
#include "repo/manifest.h"
#include "repo/repo.h"

#define N_COMP 8
#define N_KEYSPACES 10
#define TABLES_PER_KS 10
#define MAX_TABLES (N_KEYSPACES * TABLES_PER_KS)
#define N_TOKENS 16
#define CHUNK 65536

static const char *const components[N_COMP] = { "Data.db",       "Index.db",          "Summary.db",   "Filter.db",
                                                "Statistics.db", "CompressionInfo.db", "Digest.crc32", "TOC.txt" };
static const char *const keyspace_names[N_KEYSPACES] = { "chat",    "shop",  "auth",  "telemetry", "billing",
                                                         "search",  "notify", "media", "social",    "analytics" };
static const char *const table_names[TABLES_PER_KS] = { "users",  "messages", "channels", "sessions", "events",
                                                        "devices", "orders",  "payments", "audit_log", "metrics" };

typedef struct opts {
    const char *repo;
    uint64_t backups, files, hosts, incomplete, seed, object_size, tables, jobs;
    double new_fraction;
    int64_t start, interval;
} opts;

/* One file of a node as the latest backup has it. */
typedef struct sfile {
    uint64_t content; /* which plaintext: derived from (seed, host, content) */
    uint64_t stored;
    int64_t mtime_ns;
    char hash[CS_CONTENT_HASH_LEN]; /* the content hash's recorded form (io/filters.h) */
    char object[CS_OBJECT_ID_HEX];
    bool is_new;
} sfile;

typedef struct sstable {
    uint32_t gen;
    uint32_t table;
    uint32_t ncomp; /* components: the first ncomp of components[] */
} sstable;

typedef struct host {
    char host_id[40];
    char address[32];
    cs_strlist tokens;
    size_t n_sst;
    sstable *sst;      /* n_sst */
    sfile *files;      /* n_sst * N_COMP, file c of SSTable s at s * N_COMP + c */
    uint32_t *perm;    /* a permutation of the SSTables, for choosing replacements */
    uint32_t *gen;     /* next generation per table */
    uint64_t next_content;
    double budget;     /* files owed to replacement (fractions carry over) */
    uint64_t rng;
} host;

typedef struct table_info {
    char keyspace[32];
    char name[32];
    char id[CS_OBJECT_ID_HEX];
    char *schema_cql;
    uint32_t *ssts; /* SSTables of this table (same indexes on every node) */
    size_t n_ssts;
} table_info;

typedef struct store_ctx {
    cs_repo *repo;
    const opts *o;
    uint32_t host_index;
    sfile **jobs;
    uint8_t *is_data; /* per job: a Data.db file (stored at zstd's fast level) */
    size_t n_jobs;
} store_ctx;

/* ---- deterministic numbers ---- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = a ^ 0x5851f42d4c957f2dULL;
    uint64_t x = splitmix64(&s);
    s ^= b * 0xd1342543de82ef95ULL;
    x ^= splitmix64(&s);
    s ^= c * 0x2545f4914f6cdd1dULL;
    return x ^ splitmix64(&s);
}

static uint64_t below(uint64_t *rng, uint64_t n)
{
    return n ? splitmix64(rng) % n : 0;
}

/* ---- arguments ---- */

#define USAGE                                                                                          \
    "usage: synth_repo --repo DIR --backups N --files M [--hosts H] [--new-fraction F] [--start EPOCH] " \
    "[--interval SECONDS] [--incomplete K] [--seed S] [--object-size BYTES] [--tables T] [--jobs J]"

static void usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "synth_repo: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (" USAGE ")\n");
    exit(2);
}

static uint64_t parse_u64(const char *name, const char *v, uint64_t min, uint64_t max)
{
    char *end = NULL;
    errno = 0;
    if (!v || !*v || *v == '-' || *v == '+')
        usage_fail("%s needs a whole number", name);
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x < min || x > max)
        usage_fail("%s must be a whole number from %" PRIu64 " to %" PRIu64 ", not \"%s\"", name, min, max, v);
    return (uint64_t)x;
}

static void parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    bool have_backups = false, have_files = false;
    o->hosts = 1;
    o->new_fraction = 0.02;
    o->start = 1793491200; /* 2026-11-01 00:00:00 UTC */
    o->interval = 3600;
    o->seed = 1;
    o->object_size = 64;
    o->tables = MAX_TABLES;
    o->jobs = 8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf(USAGE "\n(see the top of bench/synth_repo.c)\n");
            exit(0);
        }
        if (strncmp(a, "--", 2))
            usage_fail("unexpected argument \"%s\"", a);
        char name[64];
        const char *v = NULL;
        const char *eq = strchr(a, '=');
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
            if (i + 1 >= argc)
                usage_fail("%s needs a value", name);
            v = argv[++i];
        }
        if (!strcmp(name, "--repo")) {
            if (!*v)
                usage_fail("%s needs a directory", name);
            o->repo = v;
        } else if (!strcmp(name, "--backups")) {
            o->backups = parse_u64(name, v, 0, 10000000);
            have_backups = true;
        } else if (!strcmp(name, "--files")) {
            o->files = parse_u64(name, v, 1, 10000000);
            have_files = true;
        } else if (!strcmp(name, "--hosts")) {
            o->hosts = parse_u64(name, v, 1, 1000);
        } else if (!strcmp(name, "--incomplete")) {
            o->incomplete = parse_u64(name, v, 0, 10000000);
        } else if (!strcmp(name, "--seed")) {
            o->seed = parse_u64(name, v, 0, UINT64_MAX);
        } else if (!strcmp(name, "--object-size")) {
            o->object_size = parse_u64(name, v, 1, 64u << 20);
        } else if (!strcmp(name, "--tables")) {
            o->tables = parse_u64(name, v, 1, MAX_TABLES);
        } else if (!strcmp(name, "--jobs")) {
            o->jobs = parse_u64(name, v, 1, 64);
        } else if (!strcmp(name, "--start")) {
            o->start = (int64_t)parse_u64(name, v, 0, 253402300799 /* 9999-12-31 */);
        } else if (!strcmp(name, "--interval")) {
            o->interval = (int64_t)parse_u64(name, v, 1, 10LL * 366 * 86400);
        } else if (!strcmp(name, "--new-fraction")) {
            char *end = NULL;
            errno = 0;
            double f = strtod(v, &end);
            if (!*v || errno || *end || !(f >= 0.0 && f <= 1.0))
                usage_fail("--new-fraction must be a number from 0 to 1, not \"%s\"", v);
            o->new_fraction = f;
        } else {
            usage_fail("unknown option %s", name);
        }
    }
    if (!o->repo)
        usage_fail("%s is required", "--repo DIR");
    if (!have_backups)
        usage_fail("%s is required", "--backups N");
    if (!have_files)
        usage_fail("%s is required", "--files M");
    uint64_t slots = o->backups + o->incomplete;
    if (slots && (uint64_t)o->start + (slots - 1) * (uint64_t)o->interval > 253402300799ULL)
        usage_fail("%s: the last backup would start after the year 9999", "--start/--interval");
}

/* ---- the cluster's tables and schema ---- */

static void setup_tables(const opts *o, size_t n_sst, table_info **out, size_t *n_out, json_t **schema)
{
    size_t n = o->tables < n_sst ? (size_t)o->tables : n_sst;
    table_info *t = cs_calloc(n, sizeof *t);
    *schema = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t ks = i / TABLES_PER_KS;
        snprintf(t[i].keyspace, sizeof t[i].keyspace, "%s", keyspace_names[ks]);
        snprintf(t[i].name, sizeof t[i].name, "%s", table_names[i % TABLES_PER_KS]);
        uint64_t r = mix3(o->seed, 0x7ab1e, i);
        uint64_t s = mix3(o->seed, 0x7ab1f, i);
        snprintf(t[i].id, sizeof t[i].id, "%016" PRIx64 "%016" PRIx64, r, s);
        char uuid[40];
        snprintf(uuid, sizeof uuid, "%.8s-%.4s-%.4s-%.4s-%.12s", t[i].id, t[i].id + 8, t[i].id + 12, t[i].id + 16,
                 t[i].id + 20);
        char *cql = cs_sprintf(
            "CREATE TABLE %s.%s (\n    id uuid,\n    bucket int,\n    ts timeuuid,\n    author text,\n"
            "    body text,\n    attrs map<text, text>,\n    PRIMARY KEY ((id, bucket), ts)\n) WITH ID = %s\n"
            "    AND CLUSTERING ORDER BY (ts DESC)\n    AND compaction = {'class': "
            "'org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy', 'max_threshold': '32', "
            "'min_threshold': '4'}\n    AND compression = {'chunk_length_in_kb': '16', 'class': "
            "'org.apache.cassandra.io.compress.LZ4Compressor'}\n    AND gc_grace_seconds = 864000\n"
            "    AND default_time_to_live = 0;",
            t[i].keyspace, t[i].name, uuid);
        t[i].schema_cql = cs_sprintf("CREATE TABLE IF NOT EXISTS %s", cql + strlen("CREATE TABLE "));
        if (i % TABLES_PER_KS == 0) {
            char *kcql = cs_sprintf("CREATE KEYSPACE %s WITH replication = {'class': "
                                    "'org.apache.cassandra.locator.NetworkTopologyStrategy', 'dc1': '3'} "
                                    " AND durable_writes = true;",
                                    t[i].keyspace);
            json_array_append_new(*schema, json_pack("{s:s, s:s, s:s, s:s}", "keyspace", t[i].keyspace, "type",
                                                     "keyspace", "name", t[i].keyspace, "cql", kcql));
            free(kcql);
        }
        json_array_append_new(*schema, json_pack("{s:s, s:s, s:s, s:s}", "keyspace", t[i].keyspace, "type", "table",
                                                 "name", t[i].name, "cql", cql));
        free(cql);
    }
    /* SSTable s belongs to table s % n on every node. */
    for (size_t s = 0; s < n_sst; s++) {
        table_info *ti = &t[s % n];
        ti->ssts = cs_realloc(ti->ssts, (ti->n_ssts + 1) * sizeof *ti->ssts);
        ti->ssts[ti->n_ssts++] = (uint32_t)s;
    }
    *out = t;
    *n_out = n;
}

static void free_tables(table_info *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(t[i].schema_cql);
        free(t[i].ssts);
    }
    free(t);
}

/* ---- nodes ---- */

static void setup_host(const opts *o, uint32_t h, size_t n_tables, host *hs)
{
    memset(hs, 0, sizeof *hs);
    snprintf(hs->host_id, sizeof hs->host_id, "5e7d0000-0000-4000-8000-%012" PRIx32, h + 1);
    snprintf(hs->address, sizeof hs->address, "10.0.%u.%u", (unsigned)((h + 1) / 250), (unsigned)((h + 1) % 250));
    uint64_t trng = mix3(o->seed, 0x70c3, h);
    for (int i = 0; i < N_TOKENS; i++) {
        char tok[32];
        snprintf(tok, sizeof tok, "%" PRId64, (int64_t)splitmix64(&trng));
        cs_strlist_add(&hs->tokens, tok);
    }
    hs->n_sst = (size_t)((o->files + N_COMP - 1) / N_COMP);
    hs->sst = cs_calloc(hs->n_sst, sizeof *hs->sst);
    hs->files = cs_calloc(hs->n_sst * N_COMP, sizeof *hs->files);
    hs->perm = cs_calloc(hs->n_sst, sizeof *hs->perm);
    hs->gen = cs_calloc(n_tables, sizeof *hs->gen);
    for (size_t s = 0; s < hs->n_sst; s++) {
        hs->perm[s] = (uint32_t)s;
        hs->sst[s].table = (uint32_t)(s % n_tables);
        uint64_t left = o->files - (uint64_t)s * N_COMP;
        hs->sst[s].ncomp = left < N_COMP ? (uint32_t)left : N_COMP;
    }
    hs->rng = mix3(o->seed, 0x5e1ec7, h);
}

static void free_host(host *hs)
{
    cs_strlist_free(&hs->tokens);
    free(hs->sst);
    free(hs->files);
    free(hs->perm);
    free(hs->gen);
}

/* SSTable s gets a new generation, written within the interval before the
 * backup starts; its files are new. */
static void renew_sstable(host *hs, size_t s, int64_t started, int64_t interval)
{
    sstable *t = &hs->sst[s];
    t->gen = ++hs->gen[t->table];
    int64_t mtime_ns = (started - 1 - (int64_t)below(&hs->rng, (uint64_t)interval)) * 1000000000LL +
                       (int64_t)below(&hs->rng, 1000000000ULL);
    for (uint32_t c = 0; c < t->ncomp; c++) {
        sfile *f = &hs->files[s * N_COMP + c];
        f->content = hs->next_content++;
        f->mtime_ns = mtime_ns + c * 1000; /* written one after the other */
        f->is_new = true;
    }
}

/* Decide which files of this backup are new: all of them for the first
 * backup, then whole SSTables worth about fraction * files. */
static void choose_new(const opts *o, host *hs, bool first, int64_t started)
{
    for (size_t i = 0; i < hs->n_sst * N_COMP; i++)
        hs->files[i].is_new = false;
    if (first) {
        for (size_t s = 0; s < hs->n_sst; s++)
            renew_sstable(hs, s, started, o->interval);
        return;
    }
    hs->budget += o->new_fraction * (double)o->files;
    for (size_t k = 0; k < hs->n_sst; k++) {
        size_t j = k + (size_t)below(&hs->rng, hs->n_sst - k);
        uint32_t tmp = hs->perm[k];
        hs->perm[k] = hs->perm[j];
        hs->perm[j] = tmp;
        size_t s = hs->perm[k];
        if ((double)hs->sst[s].ncomp > hs->budget + 1e-6)
            break;
        hs->budget -= hs->sst[s].ncomp;
        renew_sstable(hs, s, started, o->interval);
    }
    if (hs->budget < 0)
        hs->budget = 0;
}

/* ---- storing objects ---- */

static int store_one(void *arg, size_t i, cs_err *e)
{
    store_ctx *c = arg;
    sfile *f = c->jobs[i];
    uint64_t rng = mix3(c->o->seed, ((uint64_t)c->host_index << 40) ^ 0xc0ffee, f->content);
    cs_repo_new_object_id(f->object);
    char *key = cs_repo_object_key(f->object);
    cs_sink *head = NULL;
    cs_hash_result hash;
    int rc = cs_repo_writer(c->repo, key, 0, &head, e);
    if (rc)
        goto out;
    head = cs_count_filter_new(head, &f->stored);
    head = cs_zstd_compress_new(head, c->is_data[i] ? CS_ZSTD_LEVEL_STORE : 1, 0, e);
    if (!head) {
        rc = e->code;
        goto out;
    }
    head = cs_hash_filter_new(head, &hash);
    uint8_t buf[CHUNK];
    uint64_t left = c->o->object_size;
    while (!rc && left) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        for (size_t k = 0; k < n; k += 8) {
            uint64_t x = splitmix64(&rng);
            memcpy(buf + k, &x, n - k < 8 ? n - k : 8);
        }
        rc = cs_sink_write(head, buf, n, e);
        left -= n;
    }
    if (!rc)
        rc = cs_sink_close(head, e);
    if (!rc)
        memcpy(f->hash, hash.id, sizeof f->hash);
out:
    cs_sink_free(head);
    if (rc)
        cs_err_prefix(e, "storing object %s", key);
    free(key);
    return rc;
}

static int store_new(cs_repo *repo, const opts *o, uint32_t h, host *hs, uint64_t *n_new, cs_err *e)
{
    store_ctx c = { .repo = repo, .o = o, .host_index = h };
    size_t cap = hs->n_sst * N_COMP;
    c.jobs = cs_calloc(cap ? cap : 1, sizeof *c.jobs);
    c.is_data = cs_calloc(cap ? cap : 1, 1);
    for (size_t s = 0; s < hs->n_sst; s++)
        for (uint32_t k = 0; k < hs->sst[s].ncomp; k++) {
            sfile *f = &hs->files[s * N_COMP + k];
            if (f->is_new) {
                c.is_data[c.n_jobs] = k == 0;
                c.jobs[c.n_jobs++] = f;
            }
        }
    int rc = cs_parallel_for(c.n_jobs, (unsigned)o->jobs, store_one, &c, e);
    *n_new += c.n_jobs;
    free(c.jobs);
    free(c.is_data);
    return rc;
}

/* ---- manifests ---- */

static void backup_name(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char stamp[24];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(out, 32, "h-%s", stamp);
}

static void manifest_head(cs_manifest *m, const char *name, const host *hs, double started, json_t *schema)
{
    memset(m, 0, sizeof *m);
    m->backup = cs_strdup(name);
    m->host_id = cs_strdup(hs->host_id);
    m->address = cs_strdup(hs->address);
    m->cluster_name = cs_strdup("bench");
    m->datacenter = cs_strdup("dc1");
    m->rack = cs_strdup("rack1");
    m->release_version = cs_strdup("5.0.2");
    m->partitioner = cs_strdup("org.apache.cassandra.dht.Murmur3Partitioner");
    for (size_t i = 0; i < hs->tokens.n; i++)
        cs_strlist_add(&m->tokens, hs->tokens.items[i]);
    cs_strlist_add(&m->data_dirs, "/var/lib/cassandra/data");
    m->commitlog_dir = cs_strdup("/var/lib/cassandra/commitlog");
    m->hints_dir = cs_strdup("/var/lib/cassandra/hints");
    m->saved_caches_dir = cs_strdup("/var/lib/cassandra/saved_caches");
    m->started = started;
    m->schema = json_incref(schema);
}

static void manifest_files(cs_manifest *m, const host *hs, const table_info *tables, size_t n_tables,
                           uint64_t object_size)
{
    char name[64];
    for (size_t i = 0; i < n_tables; i++) {
        const table_info *ti = &tables[i];
        cs_mtable *t = cs_manifest_add_table(m, ti->keyspace, ti->name, ti->id);
        free(t->schema_cql);
        t->schema_cql = cs_strdup(ti->schema_cql);
        size_t n = 0;
        for (size_t k = 0; k < ti->n_ssts; k++)
            n += hs->sst[ti->ssts[k]].ncomp;
        t->files = cs_calloc(n ? n : 1, sizeof *t->files);
        for (size_t k = 0; k < ti->n_ssts; k++) {
            const sstable *st = &hs->sst[ti->ssts[k]];
            for (uint32_t c = 0; c < st->ncomp; c++) {
                const sfile *sf = &hs->files[(size_t)ti->ssts[k] * N_COMP + c];
                snprintf(name, sizeof name, "nb-%" PRIu32 "-big-%s", st->gen, components[c]);
                cs_mfile *f = &t->files[t->n_files++];
                f->name = cs_strdup(name);
                f->size = object_size;
                f->mtime_ns = sf->mtime_ns;
                f->data_dir = 0;
                memcpy(f->hash, sf->hash, sizeof f->hash);
                memcpy(f->object, sf->object, CS_OBJECT_ID_HEX);
                f->stored = sf->stored;
                f->is_new = sf->is_new;
            }
        }
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    opts o;
    parse_args(argc, argv, &o);
    if (sodium_init() < 0) {
        fprintf(stderr, "synth_repo: libsodium cannot start\n");
        return 1;
    }
    double t0 = now_s();
    cs_err e;
    cs_err_clear(&e);
    cs_repo *repo = NULL;
    cs_storage *st = NULL;
    int rc = cs_storage_open(o.repo, NULL, true, &st, &e);
    if (!rc)
        rc = cs_repo_init(st, NULL, &repo, &e);
    if (rc) {
        fprintf(stderr, "synth_repo: %s\n", e.msg);
        return 1;
    }
    size_t n_sst = (size_t)((o.files + N_COMP - 1) / N_COMP);
    table_info *tables = NULL;
    size_t n_tables = 0;
    json_t *schema = NULL;
    setup_tables(&o, n_sst, &tables, &n_tables, &schema);
    host *hosts = cs_calloc((size_t)o.hosts, sizeof *hosts);
    for (uint32_t h = 0; h < o.hosts; h++)
        setup_host(&o, h, n_tables, &hosts[h]);

    uint64_t n_objects = 0, n_file_entries = 0;
    double last_report = t0;
    for (uint64_t i = 0; !rc && i < o.backups + o.incomplete; i++) {
        int64_t slot = o.start + (int64_t)i * o.interval;
        char name[32];
        backup_name(slot, name);
        bool complete = i < o.backups;
        for (uint32_t h = 0; !rc && h < o.hosts; h++) {
            host *hs = &hosts[h];
            /* Nodes start a few seconds apart, as a cron job on each would. */
            double started = (double)slot + 0.25 * h + (double)below(&hs->rng, 200) / 1000.0;
            cs_manifest m;
            manifest_head(&m, name, hs, started, schema);
            rc = cs_repo_mark_started(repo, &m, &e);
            if (!rc && complete) {
                uint64_t before = n_objects;
                choose_new(&o, hs, i == 0, slot);
                rc = store_new(repo, &o, h, hs, &n_objects, &e);
                if (!rc) {
                    manifest_files(&m, hs, tables, n_tables, o.object_size);
                    m.finished = started + 3.0 + 0.002 * (double)(n_objects - before);
                    rc = cs_repo_put_manifest(repo, &m, &e);
                    n_file_entries += o.files;
                }
            }
            cs_manifest_free(&m);
            if (rc)
                cs_err_prefix(&e, "backup %s of %s", name, hs->host_id);
        }
        double now = now_s();
        if (!rc && now - last_report >= 30.0) {
            fprintf(stderr, "synth_repo: %" PRIu64 " of %" PRIu64 " backups, %" PRIu64 " objects, %.0f s\n", i + 1,
                    o.backups + o.incomplete, n_objects, now - t0);
            last_report = now;
        }
    }
    for (uint32_t h = 0; h < o.hosts; h++)
        free_host(&hosts[h]);
    free(hosts);
    free_tables(tables, n_tables);
    json_decref(schema);
    cs_repo_free(repo);
    if (rc) {
        fprintf(stderr, "synth_repo: %s\n", e.msg);
        return 1;
    }
    printf("synth_repo: %s: %" PRIu64 " backups x %" PRIu64 " hosts (+%" PRIu64 " incomplete), %" PRIu64
           " files each, %" PRIu64 " file entries, %" PRIu64 " distinct objects, %.1f s\n",
           o.repo, o.backups, o.hosts, o.incomplete, o.files, n_file_entries, n_objects, now_s() - t0);
    return 0;
}
