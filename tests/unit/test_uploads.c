/* test_uploads.c - ops/uploads: the journal of uploads in progress, and
 * resuming an interrupted upload by regenerating its bytes (zstd, age with
 * the recorded seal) and checking them against the parts stored before
 * (storage.c's check of kept bytes). The storage is a posix repository whose
 * driver gets a resumable writer of this file's own: parts of PART bytes
 * kept in memory, "interrupted" after a given number of parts; what it keeps
 * and lists follows the S3 driver's rules (whole parts 1, 2, ... of one
 * size). The S3 driver itself is tested against a real server
 * (tests/integration/test_resume.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "ops/host.h"
#include "common/err.h"
#include "common/fs.h"
#include "crypto/age.h"
#include "io/filters.h"
#include "ops/state.h"
#include "ops/uploads.h"
#include "repo/repo.h"
#include "repo_at.h"
#include "storage/storage.h"

#define HOST "11111111-2222-3333-4444-555555555555"
#define TABLE_ID "0123456789abcdef0123456789abcdef"
#define PART (64u << 10)
#define MAX_PARTS 256
#define DATA_LEN ((size_t)(1u << 20) + 12345)

/* ---- a resumable driver in memory -------------------------------------- */

typedef struct fake_upload {
    char token[16];
    char *key;
    cs_buf parts[MAX_PARTS]; /* by number - 1 */
    bool has[MAX_PARTS];
    bool open;
} fake_upload;

static struct {
    fake_upload up[16];
    int n;
    int aborts;
    uint64_t sent;      /* part bytes received */
    int stop_after;     /* parts a writer may send before it is "interrupted" (0: no limit) */
} srv;

static const cs_storage_ops *posix_ops;

typedef struct fake_writer {
    cs_sink base;
    cs_storage *st;
    char *key;
    cs_put_resume *r;
    fake_upload *up;
    unsigned parts;     /* parts of the upload so far */
    int sent_now;       /* parts sent by this writer */
    cs_buf cur;
} fake_writer;

static fake_upload *find_upload(const char *key, const char *token)
{
    for (int i = 0; i < srv.n; i++)
        if (srv.up[i].open && !strcmp(srv.up[i].token, token) && !strcmp(srv.up[i].key, key))
            return &srv.up[i];
    return NULL;
}

static int send_part(fake_writer *w, const uint8_t *p, size_t n, cs_err *e)
{
    if (srv.stop_after && w->sent_now >= srv.stop_after)
        return cs_err_set(e, CS_E_CANCELED, "interrupted");
    if (!w->up) {
        assert_true(srv.n < 16);
        w->up = &srv.up[srv.n];
        memset(w->up, 0, sizeof *w->up);
        snprintf(w->up->token, sizeof w->up->token, "t%d", srv.n);
        w->up->key = strdup(w->key);
        w->up->open = true;
        srv.n++;
        w->r->on_token(w->r->arg, w->up->token);
    }
    assert_true(w->parts < MAX_PARTS);
    cs_buf *b = &w->up->parts[w->parts];
    cs_buf_reset(b);
    cs_buf_add(b, p, n);
    w->up->has[w->parts] = true;
    cs_put_part done = { w->parts + 1, n, { 0 } };
    cs_put_hash(p, n, done.hash);
    w->parts++;
    w->sent_now++;
    srv.sent += n;
    w->r->on_part(w->r->arg, &done);
    return 0;
}

static int fw_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    fake_writer *w = (fake_writer *)(void *)s;
    cs_buf_add(&w->cur, p, n);
    while (w->cur.len > PART) { /* a whole part with more after it */
        int rc = send_part(w, (const uint8_t *)w->cur.data, PART, e);
        if (rc)
            return rc;
        memmove(w->cur.data, w->cur.data + PART, w->cur.len - PART);
        w->cur.len -= PART;
    }
    return 0;
}

static int fw_close(cs_sink *s, cs_err *e)
{
    fake_writer *w = (fake_writer *)(void *)s;
    int rc = 0;
    if (w->up && (w->cur.len || !w->parts))
        rc = send_part(w, (const uint8_t *)w->cur.data, w->cur.len, e);
    cs_sink *obj = NULL;
    if (!rc)
        rc = posix_ops->put(w->st, w->key, 0, &obj, e);
    if (!rc && !w->up)
        rc = cs_sink_write(obj, w->cur.data, w->cur.len, e);
    for (unsigned i = 0; !rc && w->up && i < w->parts; i++)
        rc = cs_sink_write(obj, w->up->parts[i].data, w->up->parts[i].len, e);
    if (!rc)
        rc = cs_sink_close(obj, e);
    cs_sink_free(obj);
    if (!rc && w->up)
        w->up->open = false; /* completed */
    return rc;
}

static void fw_free(cs_sink *s)
{
    fake_writer *w = (fake_writer *)(void *)s;
    cs_buf_free(&w->cur);
    free(w->key);
    free(w);
}

static const cs_sink_ops fake_writer_ops = { fw_write, fw_close, fw_free };

static int fake_put_resumable(cs_storage *st, const char *key, cs_put_resume *r, cs_sink **out, cs_err *e)
{
    (void)e;
    fake_writer *w = calloc(1, sizeof *w);
    w->base.ops = &fake_writer_ops;
    w->st = st;
    w->key = strdup(key);
    w->r = r;
    w->up = r->token ? find_upload(key, r->token) : NULL;
    if (w->up) {
        size_t k = 0;
        while (k < r->n_parts && r->parts[k].number == k + 1 && w->up->has[k] &&
               w->up->parts[k].len == r->parts[k].size && r->parts[k].size == PART)
            k++;
        r->kept = k;
        for (size_t i = 0; i < k; i++)
            r->resumed += r->parts[i].size;
        w->parts = (unsigned)k;
    }
    *out = &w->base;
    return 0;
}

static int fake_abort(cs_storage *st, const char *key, const char *token, cs_err *e)
{
    (void)st, (void)e;
    fake_upload *up = find_upload(key, token);
    if (up)
        up->open = false;
    srv.aborts++;
    return 0;
}

static void srv_reset(void)
{
    for (int i = 0; i < srv.n; i++) {
        free(srv.up[i].key);
        for (int j = 0; j < MAX_PARTS; j++)
            cs_buf_free(&srv.up[i].parts[j]);
    }
    memset(&srv, 0, sizeof srv);
}

static int open_uploads(void)
{
    int n = 0;
    for (int i = 0; i < srv.n; i++)
        n += srv.up[i].open;
    return n;
}

/* ---- fixture ------------------------------------------------------------ */

typedef struct fixture {
    char dir[64];
    char *state_dir;
    cs_host cfg;
    cs_repo *repo;
    cs_storage_ops ops;
    char *journal;
    char *live;        /* the "live" data file */
    uint8_t *data;
} fixture;

static int setup_repo(void **state, bool encrypted)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-uploads-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    f->state_dir = cs_path_join(f->dir, "state");
    f->cfg.state_dir = f->state_dir;
    char *root = cs_path_join(f->dir, "repo");
    cs_err e;
    cs_err_clear(&e);
    cs_strlist rcpts = { NULL, 0 };
    age_identity *id = encrypted ? age_keygen() : NULL;
    cs_buf pub = CS_BUF_INIT, sec = CS_BUF_INIT;
    char *idpath = cs_path_join(f->dir, "key.txt");
    if (id) {
        assert_int_equal(age_identity_public_string(id, &pub, &e), 0);
        assert_int_equal(age_identity_secret_string(id, &sec, &e), 0);
        cs_buf_addch(&sec, '\n');
        assert_int_equal(cs_write_file_atomic(idpath, sec.data, sec.len, 0600, &e), 0);
        cs_strlist_add(&rcpts, cs_buf_str(&pub));
    }
    cs_repo_opts opts = { &rcpts };
    int rc = repo_init_at(root, &opts, &f->repo, &e);
    if (!rc && id)
        rc = cs_repo_load_identities(f->repo, idpath, &e);
    if (rc)
        fprintf(stderr, "init: %s\n", e.msg);
    age_identity_free(id);
    age_buf_wipe(&sec);
    cs_buf_free(&pub);
    cs_strlist_free(&rcpts);
    free(idpath);
    free(root);
    if (rc)
        return -1;
    posix_ops = f->repo->st->ops;
    f->ops = *posix_ops;
    f->ops.put_resumable = fake_put_resumable;
    f->ops.abort_resumable = fake_abort;
    f->repo->st->ops = &f->ops;
    f->journal = cs_uploads_path(&f->cfg, f->repo, HOST);
    f->live = cs_path_join(f->dir, "nb-1-big-Data.db");
    f->data = malloc(DATA_LEN);
    randombytes_buf_deterministic(f->data, DATA_LEN, (const unsigned char *)"0123456789abcdef0123456789abcdef");
    assert_int_equal(cs_write_file_atomic(f->live, f->data, DATA_LEN, 0644, &e), 0);
    srv_reset();
    *state = f;
    return 0;
}

static int setup_plain(void **state)
{
    return setup_repo(state, false);
}

static int setup_encrypted(void **state)
{
    return setup_repo(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    f->repo->st->ops = posix_ops;
    cs_repo_free(f->repo);
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_remove_tree(f->dir, &e);
    free(f->state_dir);
    free(f->journal);
    free(f->live);
    free(f->data);
    free(f);
    srv_reset();
    return rc;
}

/* ---- helpers ------------------------------------------------------------ */

static cs_upload_file file_of(const fixture *f, int level)
{
    struct stat st;
    assert_int_equal(stat(f->live, &st), 0);
    cs_upload_file uf = { "/data", TABLE_ID, "nb-1-big-Data.db", f->live, (uint64_t)st.st_size,
                          (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec, level };
    return uf;
}

typedef struct outcome {
    int rc;
    cs_err e;
    char object[CS_OBJECT_ID_HEX];
    uint64_t resumed;
    bool diverged;
} outcome;

/* Store data through zstd and the journal's writer, like backup does; the
 * fake driver stops it after stop_after parts (0: never). */
static outcome store(fixture *f, cs_uploads *u, const cs_upload_file *uf, const uint8_t *data, size_t len,
                     int stop_after)
{
    outcome o;
    memset(&o, 0, sizeof o);
    srv.stop_after = stop_after;
    cs_upload *up = NULL;
    cs_sink *w = NULL, *head = NULL;
    o.rc = cs_upload_open(u, uf, &up, &w, &o.e);
    if (!o.rc) {
        head = cs_zstd_compress_new(w, uf->zstd_level, 0, &o.e);
        o.rc = head ? 0 : o.e.code;
    }
    for (size_t off = 0; !o.rc && off < len; off += 100000)
        o.rc = cs_sink_write(head, data + off, len - off < 100000 ? len - off : 100000, &o.e);
    if (!o.rc)
        o.rc = cs_sink_close(head, &o.e);
    cs_sink_free(head);
    if (up) {
        memcpy(o.object, cs_upload_object(up), CS_OBJECT_ID_HEX);
        o.resumed = cs_upload_resumed(up);
        o.diverged = cs_upload_diverged(up);
    }
    cs_upload_finish(up, o.rc == 0, false);
    srv.stop_after = 0;
    (void)f;
    return o;
}

/* The object's content, decrypted and decompressed, equals data. */
static void assert_object_holds(fixture *f, const char *object, const uint8_t *data, size_t len)
{
    cs_buf out = CS_BUF_INIT;
    cs_err e;
    cs_err_clear(&e);
    cs_sink *head = NULL;
    cs_sink *z = cs_zstd_decompress_new(cs_buf_sink_new(&out, len + 1), &e);
    assert_non_null(z);
    assert_int_equal(cs_repo_reader(f->repo, z, &head, &e), 0);
    char *key = cs_repo_object_key(object);
    int rc = cs_storage_get(f->repo->st, key, head, &e);
    if (!rc)
        rc = cs_sink_close(head, &e);
    if (rc)
        fail_msg("object %s: %s", object, e.msg);
    assert_int_equal(out.len, len);
    assert_memory_equal(out.data, data, len);
    cs_sink_free(head);
    cs_buf_free(&out);
    free(key);
}

static char *journal_text(const fixture *f)
{
    char *text = NULL;
    if (cs_read_file(f->journal, 1 << 24, &text, NULL, NULL))
        return NULL;
    return text;
}

/* ---- tests -------------------------------------------------------------- */

/* Interrupted after 5 parts, then resumed: the 5 parts are not sent again,
 * the object is whole, and the journal is gone once nothing is open. */
static void resume_after_interruption(fixture *f)
{
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    outcome a = store(f, u, &uf, f->data, DATA_LEN, 5);
    assert_int_equal(a.rc, CS_E_CANCELED);
    assert_int_equal(open_uploads(), 1);
    assert_int_equal(srv.sent, 5 * PART);
    cs_uploads_free(u);

    /* The journal holds the upload, only for us to read. */
    struct stat st;
    assert_int_equal(stat(f->journal, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *text = journal_text(f);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"begin\""));
    assert_non_null(strstr(text, a.object));
    assert_int_equal(strstr(text, "{\"k\":\"") != NULL, cs_repo_is_encrypted(f->repo));
    free(text);

    srv.sent = 0;
    u = cs_uploads_load(f->journal, f->repo);
    outcome b = store(f, u, &uf, f->data, DATA_LEN, 0);
    if (b.rc)
        fail_msg("resume: %s", b.e.msg);
    assert_string_equal(b.object, a.object);
    assert_int_equal(b.resumed, 5 * PART);
    assert_false(b.diverged);
    assert_int_equal(srv.aborts, 0);
    assert_int_equal(open_uploads(), 0);
    /* Only the rest was sent: the stored object is larger than the data
     * (age and zstd frames), never by a whole part. */
    char *key = cs_repo_object_key(b.object);
    cs_storage_stat ss;
    cs_err e;
    assert_int_equal(cs_storage_stat(f->repo->st, key, &ss, &e), 0);
    assert_int_equal(srv.sent, ss.size - 5 * PART);
    free(key);
    assert_object_holds(f, b.object, f->data, DATA_LEN);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

static void test_resume_plain(void **state)
{
    resume_after_interruption(*state);
}

static void test_resume_encrypted(void **state)
{
    resume_after_interruption(*state);
}

/* Interrupted twice, then finished: parts add up across runs. */
static void test_resume_twice(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 1);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    outcome a = store(f, u, &uf, f->data, DATA_LEN, 3);
    assert_int_equal(a.rc, CS_E_CANCELED);
    cs_uploads_free(u);
    u = cs_uploads_load(f->journal, f->repo);
    outcome b = store(f, u, &uf, f->data, DATA_LEN, 4);
    assert_int_equal(b.rc, CS_E_CANCELED);
    assert_int_equal(b.resumed, 3 * PART);
    cs_uploads_free(u);
    u = cs_uploads_load(f->journal, f->repo);
    outcome c = store(f, u, &uf, f->data, DATA_LEN, 0);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.resumed, 7 * PART);
    assert_string_equal(c.object, a.object);
    assert_object_holds(f, c.object, f->data, DATA_LEN);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

/* Regenerated bytes that differ (the file changed in place, keeping size
 * and mtime): caught at the first kept part, the upload is aborted, and
 * the next try stores the file from its start as a new object. */
static void test_diverged(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    outcome a = store(f, u, &uf, f->data, DATA_LEN, 4);
    assert_int_equal(a.rc, CS_E_CANCELED);
    cs_uploads_free(u);

    uint8_t *other = malloc(DATA_LEN);
    memcpy(other, f->data, DATA_LEN);
    other[10] ^= 1;
    u = cs_uploads_load(f->journal, f->repo);
    outcome b = store(f, u, &uf, other, DATA_LEN, 0);
    assert_int_equal(b.rc, CS_E_CORRUPT);
    assert_true(b.diverged);
    assert_non_null(strstr(b.e.msg, "part 1 differ"));
    assert_int_equal(srv.aborts, 1);
    assert_int_equal(open_uploads(), 0);
    outcome c = store(f, u, &uf, other, DATA_LEN, 0);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.resumed, 0);
    assert_string_not_equal(c.object, a.object);
    assert_object_holds(f, c.object, other, DATA_LEN);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
    free(other);
}

/* A shorter regenerated stream than what was kept is a divergence too. */
static void test_diverged_short(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    outcome a = store(f, u, &uf, f->data, DATA_LEN, 6);
    assert_int_equal(a.rc, CS_E_CANCELED);
    cs_uploads_free(u);
    u = cs_uploads_load(f->journal, f->repo);
    outcome b = store(f, u, &uf, f->data, 2 * PART, 0);
    assert_int_equal(b.rc, CS_E_CORRUPT);
    assert_true(b.diverged);
    assert_int_equal(srv.aborts, 1);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

/* What shapes the bytes changed: the upload is dropped, a new one made. */
static void test_not_resumable(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    assert_int_equal(store(f, u, &uf, f->data, DATA_LEN, 2).rc, CS_E_CANCELED);
    cs_uploads_free(u);

    cs_upload_file other_level = uf;
    other_level.zstd_level = 5;
    u = cs_uploads_load(f->journal, f->repo);
    outcome b = store(f, u, &other_level, f->data, DATA_LEN, 2);
    assert_int_equal(b.rc, CS_E_CANCELED);
    assert_int_equal(b.resumed, 0);
    assert_int_equal(srv.aborts, 1);
    cs_uploads_free(u);

    cs_upload_file bigger = other_level;
    bigger.size++;
    u = cs_uploads_load(f->journal, f->repo);
    outcome c = store(f, u, &bigger, f->data, DATA_LEN, 0);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.resumed, 0);
    assert_int_equal(srv.aborts, 2);
    assert_int_equal(open_uploads(), 0);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

/* The sweep drops uploads whose file is gone, changed or stored, and keeps
 * those whose file is still there unchanged. */
static void test_sweep(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    assert_int_equal(store(f, u, &uf, f->data, DATA_LEN, 2).rc, CS_E_CANCELED);
    cs_uploads_free(u);

    u = cs_uploads_load(f->journal, f->repo);
    cs_uploads_sweep(u, NULL);
    assert_int_equal(srv.aborts, 0);
    assert_int_equal(open_uploads(), 1);
    cs_uploads_free(u);
    assert_true(cs_exists(f->journal));

    /* Compacted away by Cassandra. */
    assert_int_equal(unlink(f->live), 0);
    u = cs_uploads_load(f->journal, f->repo);
    cs_uploads_sweep(u, NULL);
    assert_int_equal(srv.aborts, 1);
    assert_int_equal(open_uploads(), 0);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

/* A torn last line (SIGKILL in the middle of a write) and garbage lines are
 * ignored; what the whole lines say still resumes. */
static void test_torn_journal(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    assert_int_equal(store(f, u, &uf, f->data, DATA_LEN, 4).rc, CS_E_CANCELED);
    cs_uploads_free(u);
    FILE *fp = fopen(f->journal, "a");
    assert_non_null(fp);
    fputs("not json\n{\"part\":{\"object\":\"zz\"}}\n{\"k\":\"00\",\"begin\":{}}\n{\"part\":{\"obj", fp);
    fclose(fp);
    srv.sent = 0;
    u = cs_uploads_load(f->journal, f->repo);
    outcome b = store(f, u, &uf, f->data, DATA_LEN, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(b.resumed, 4 * PART);
    assert_object_holds(f, b.object, f->data, DATA_LEN);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

/* The storage lost the upload (aborted by hand, expired): a new upload of
 * the same object, from the start. */
static void test_upload_gone(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    outcome a = store(f, u, &uf, f->data, DATA_LEN, 3);
    assert_int_equal(a.rc, CS_E_CANCELED);
    cs_uploads_free(u);
    srv.up[0].open = false;
    u = cs_uploads_load(f->journal, f->repo);
    outcome b = store(f, u, &uf, f->data, DATA_LEN, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(b.resumed, 0);
    assert_object_holds(f, b.object, f->data, DATA_LEN);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

/* Small objects (one part) never make an upload: nothing is journaled. */
static void test_small_object(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 3);
    uf.size = 1000;
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    outcome a = store(f, u, &uf, f->data, 1000, 0);
    assert_int_equal(a.rc, 0);
    assert_int_equal(srv.n, 0);
    assert_object_holds(f, a.object, f->data, 1000);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

/* A journal that cannot be written: ordinary writers, so that no upload
 * stays open that nobody knows of. */
static void test_journal_unwritable(void **state)
{
    fixture *f = *state;
    cs_err e;
    assert_int_equal(cs_mkdirs(f->journal, 0700, &e), 0); /* a directory where the file goes */
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    outcome a = store(f, u, &uf, f->data, DATA_LEN, 2);
    assert_int_equal(a.rc, 0); /* the fake driver was not used */
    assert_int_equal(srv.n, 0);
    assert_object_holds(f, a.object, f->data, DATA_LEN);
    cs_uploads_free(u);
    assert_true(cs_is_dir(f->journal));
}

/* A journal written by a version whose part hashes were BLAKE2b-256 (its
 * begin lines do not name the kind, its part lines hold 64 hex digits):
 * such an upload is never resumed (no old hash is compared with a new
 * one), but aborted and the file stored from its start as a new object;
 * compacting the journal does not relabel it. */
static void test_old_part_hash(void **state)
{
    fixture *f = *state;
    cs_upload_file uf = file_of(f, 3);
    cs_uploads *u = cs_uploads_load(f->journal, f->repo);
    outcome a = store(f, u, &uf, f->data, DATA_LEN, 4);
    assert_int_equal(a.rc, CS_E_CANCELED);
    cs_uploads_free(u);

    /* Rewrite the journal as the older version wrote it. */
    char *text = journal_text(f);
    assert_non_null(text);
    char *marker = strstr(text, ",\"part_hash\":\"xxh3-128\"");
    assert_non_null(marker);
    memmove(marker, marker + strlen(",\"part_hash\":\"xxh3-128\""),
            strlen(marker + strlen(",\"part_hash\":\"xxh3-128\"")) + 1);
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    cs_buf old = CS_BUF_INIT;
    cs_buf_add(&old, text, (size_t)(nl - text) + 1); /* the begin line */
    for (unsigned i = 0; i < 4; i++) {
        unsigned char h[32];
        char hex[65];
        crypto_generichash(h, sizeof h, (const unsigned char *)srv.up[0].parts[i].data, srv.up[0].parts[i].len,
                           NULL, 0);
        cs_hex(h, sizeof h, hex);
        cs_buf_printf(&old, "{\"part\":{\"object\":\"%s\",\"n\":%u,\"size\":%zu,\"hash\":\"%s\"}}\n", a.object,
                      i + 1, srv.up[0].parts[i].len, hex);
    }
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_write_file_atomic(f->journal, old.data, old.len, 0600, &e), 0);
    free(text);
    cs_buf_free(&old);

    srv.sent = 0;
    u = cs_uploads_load(f->journal, f->repo);
    text = journal_text(f); /* compacted: still the old kind */
    assert_non_null(text);
    assert_non_null(strstr(text, a.object));
    assert_null(strstr(text, "part_hash"));
    free(text);
    outcome b = store(f, u, &uf, f->data, DATA_LEN, 0);
    if (b.rc)
        fail_msg("store: %s", b.e.msg);
    assert_int_equal(b.resumed, 0);
    assert_false(b.diverged);
    assert_int_equal(srv.aborts, 1);
    assert_string_not_equal(b.object, a.object);
    assert_int_equal(open_uploads(), 0);
    assert_object_holds(f, b.object, f->data, DATA_LEN);
    cs_uploads_free(u);
    assert_false(cs_exists(f->journal));
}

/* ---- the age seal: the same seal, the same bytes ----------------------- */

static void seal_encrypt(age_recipient *r, age_seal *seal, const uint8_t *p, size_t n, cs_buf *out, int *rc,
                         cs_err *e)
{
    cs_buf_reset(out);
    cs_sink *s = age_encrypt_new_seal(cs_buf_sink_new(out, SIZE_MAX), &r, 1, seal, e);
    *rc = s ? 0 : e->code;
    if (!*rc)
        *rc = cs_sink_write(s, p, n, e);
    if (!*rc)
        *rc = cs_sink_close(s, e);
    cs_sink_free(s);
}

static void test_seal(void **state)
{
    fixture *f = *state;
    age_identity *id = age_keygen();
    age_recipient *r = NULL;
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(age_identity_recipient(id, &r, &e), 0);
    age_seal seal;
    memset(&seal, 0, sizeof seal);
    cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT, c = CS_BUF_INIT;
    int rc;
    /* Big enough for the parallel batches (the same bytes either way). */
    seal_encrypt(r, &seal, f->data, DATA_LEN, &a, &rc, &e);
    assert_int_equal(rc, 0);
    assert_true(seal.header.len > 0);
    seal_encrypt(r, &seal, f->data, DATA_LEN, &b, &rc, &e);
    assert_int_equal(rc, 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    /* A fresh seal: other bytes. */
    age_seal other;
    memset(&other, 0, sizeof other);
    seal_encrypt(r, &other, f->data, DATA_LEN, &c, &rc, &e);
    assert_int_equal(rc, 0);
    assert_memory_not_equal(a.data, c.data, 64);
    /* A file key that does not go with the header is refused. */
    other.file_key[0] ^= 1;
    seal_encrypt(r, &other, f->data, 10, &c, &rc, &e);
    assert_int_equal(rc, CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "age header"));
    cs_buf_reset(&other.header);
    cs_buf_addstr(&other.header, "not an age header at all, but long enough to be looked at closely");
    seal_encrypt(r, &other, f->data, 10, &c, &rc, &e);
    assert_int_equal(rc, CS_E_CORRUPT);
    /* What was sealed decrypts with the identity. */
    cs_buf plain = CS_BUF_INIT;
    cs_sink *d = age_decrypt_new(cs_buf_sink_new(&plain, SIZE_MAX), &id, 1, &e);
    assert_int_equal(cs_sink_write(d, b.data, b.len, &e), 0);
    assert_int_equal(cs_sink_close(d, &e), 0);
    assert_int_equal(plain.len, DATA_LEN);
    assert_memory_equal(plain.data, f->data, DATA_LEN);
    cs_sink_free(d);
    age_seal_wipe(&seal);
    age_seal_wipe(&other);
    for (size_t i = 0; i < sizeof seal.file_key; i++)
        assert_int_equal(seal.file_key[i], 0);
    cs_buf_free(&a);
    cs_buf_free(&b);
    cs_buf_free(&c);
    cs_buf_free(&plain);
    age_recipient_free(r);
    age_identity_free(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resume_plain, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_resume_encrypted, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_resume_twice, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_diverged, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_diverged_short, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_not_resumable, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_torn_journal, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_upload_gone, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_small_object, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_journal_unwritable, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_old_part_hash, setup_encrypted, teardown),
        cmocka_unit_test_setup_teardown(test_seal, setup_plain, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
