/* sink.c - sink dispatch, the fd pump, and the file, buffer, null, tee and split sinks. */
#include "io/sink.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cancel.h"
#include "common/fs.h"

/* The pump's and CS_FILE_DIRECT's buffer: aligned for direct I/O (the
 * logical block size divides IO_ALIGN), and so is the size of every direct
 * read and write but a file's last. */
#define IO_ALIGN ((size_t)4096)
#define IO_CHUNK ((size_t)1 << 20)

int cs_sink_write(cs_sink *s, const void *p, size_t n, cs_err *e)
{
    if (s->closed)
        return cs_err_set(e, CS_E_INVAL, "write to a closed stream");
    if (n == 0)
        return 0;
    return s->ops->write(s, p, n, e);
}

int cs_sink_writev(cs_sink *s, const cs_iov *v, size_t n, cs_err *e)
{
    if (s->closed)
        return cs_err_set(e, CS_E_INVAL, "write to a closed stream");
    if (s->opt && s->opt->writev)
        return s->opt->writev(s, v, n, e);
    for (size_t i = 0; i < n; i++) {
        int rc = cs_sink_write(s, v[i].p, v[i].n, e);
        if (rc)
            return rc;
    }
    return 0;
}

int cs_sink_close(cs_sink *s, cs_err *e)
{
    if (s->closed)
        return 0;
    int rc = s->ops->close(s, e);
    if (rc == 0)
        s->closed = 1;
    return rc;
}

int cs_sink_reserve(cs_sink *s, size_t want, uint8_t **p, size_t *got, cs_err *e)
{
    *p = NULL;
    *got = 0;
    if (s->closed)
        return cs_err_set(e, CS_E_INVAL, "write to a closed stream");
    if (!s->opt || !s->opt->reserve || want == 0)
        return 0;
    return s->opt->reserve(s, want, p, got, e);
}

int cs_sink_commit(cs_sink *s, size_t n, cs_err *e)
{
    if (s->closed || !s->opt || !s->opt->commit)
        return cs_err_set(e, CS_E_INVAL, "commit without a reservation");
    return s->opt->commit(s, n, e);
}

void cs_sink_free(cs_sink *s)
{
    if (s)
        s->ops->free(s);
}

int cs_open_stream(const char *path, cs_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0 && errno == EINVAL) /* a file system without direct I/O (tmpfs) */
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cs_err_sys(e, CS_E_IO, errno, "cannot open %s", path);
    return fd;
}

/* A read the file system refuses with direct I/O (an offset or size it
 * cannot align) is read through the page cache from then on. */
static bool drop_direct(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags >= 0 && (flags & O_DIRECT) && fcntl(fd, F_SETFL, flags & ~O_DIRECT) == 0;
}

/* A buffer of size bytes (a multiple of IO_ALIGN) aligned for direct I/O,
 * or NULL. */
static uint8_t *io_chunk_new(size_t size)
{
    void *mem = NULL;
    return posix_memalign(&mem, IO_ALIGN, size) == 0 ? mem : NULL;
}

/* The pump's read size for fd: IO_CHUNK, or less for a smaller regular
 * file (its size and one more byte, in whole IO_ALIGN blocks, so that the
 * end shows in the first read). A backup pumps ~1000 files, most of them a
 * few KiB: a 1 MiB buffer each was most of the allocator's churn, and the
 * churn set the process's peak RSS (bench/README.md, "Memory"). A file that
 * grows meanwhile is still read whole, in more reads. */
static size_t io_chunk_size(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size >= IO_CHUNK)
        return IO_CHUNK;
    return ((size_t)st.st_size / IO_ALIGN + 1) * IO_ALIGN;
}

int cs_pump_fd(int fd, cs_sink *s, uint64_t *nread, cs_err *e)
{
    size_t size = io_chunk_size(fd);
    uint8_t *chunk = io_chunk_new(size); /* direct I/O (cs_open_stream) reads into it */
    if (!chunk)
        return cs_err_set(e, CS_E_NOMEM, "out of memory");
    int rc = 0;
    for (;;) {
        if (cs_cancel_requested()) { /* a safe point: between two writes */
            rc = cs_cancel_error(e);
            goto out;
        }
        ssize_t r = read(fd, chunk, size);
        if (r < 0) {
            if (errno == EINTR || (errno == EINVAL && drop_direct(fd)))
                continue;
            rc = cs_err_sys(e, CS_E_IO, errno, "read failed");
            goto out;
        }
        if (r == 0)
            break;
        if (nread)
            *nread += (uint64_t)r;
        rc = cs_sink_write(s, chunk, (size_t)r, e);
        if (rc)
            goto out;
    }
out:
    free(chunk);
    return rc;
}

/* ---- file sink ---------------------------------------------------------- */

typedef struct file_sink {
    cs_sink base;
    int fd;
    char *path;
    char *partial;
    int committed; /* the partial file has been renamed over path */
    int flags;     /* CS_FILE_* */
    uint8_t *buf;  /* CS_FILE_DIRECT (the file opened with O_DIRECT): an IO_CHUNK, made at the first write */
    size_t fill;   /* bytes in buf */
} file_sink;

/* Write all of p; a write the file system refuses with direct I/O (EINVAL:
 * an alignment it cannot take) is written through the page cache, and so is
 * the rest of the file. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR || (errno == EINVAL && drop_direct(fd)))
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Copy into the aligned buffer; each full one goes out as one direct write. */
static int direct_write(file_sink *f, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t c = IO_CHUNK - f->fill < n ? IO_CHUNK - f->fill : n;
        memcpy(f->buf + f->fill, p, c);
        f->fill += c;
        p += c;
        n -= c;
        if (f->fill == IO_CHUNK) {
            if (write_all(f->fd, f->buf, IO_CHUNK) != 0)
                return -1;
            f->fill = 0;
        }
    }
    return 0;
}

/* What is left in the buffer: its whole blocks directly, the tail (not a
 * block) through the page cache, O_DIRECT cleared for it. */
static int direct_flush(file_sink *f)
{
    size_t whole = f->fill & ~(IO_ALIGN - 1);
    if (whole && write_all(f->fd, f->buf, whole) != 0)
        return -1;
    if (f->fill > whole) {
        drop_direct(f->fd); /* not done: the write refused (EINVAL) drops it again or fails */
        if (write_all(f->fd, f->buf + whole, f->fill - whole) != 0)
            return -1;
    }
    f->fill = 0;
    return 0;
}

static int file_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    file_sink *f = (file_sink *)s;
    if (f->fd < 0)
        return cs_err_set(e, CS_E_IO, "cannot write %s: file already closed", f->path);
    if ((f->flags & CS_FILE_DIRECT) && !f->buf && !(f->buf = io_chunk_new(IO_CHUNK)))
        return cs_err_set(e, CS_E_NOMEM, "out of memory");
    int rc = f->flags & CS_FILE_DIRECT ? direct_write(f, p, n) : write_all(f->fd, p, n);
    if (rc != 0)
        return cs_err_sys(e, CS_E_IO, errno, "cannot write %s", f->partial);
    return 0;
}

static int file_close(cs_sink *s, cs_err *e)
{
    file_sink *f = (file_sink *)s;
    int rc = 0;
    char *dir = NULL;
    if (f->fd < 0) {
        rc = cs_err_set(e, CS_E_IO, "cannot close %s: file already closed", f->path);
        goto out;
    }
    if (f->fill && direct_flush(f) != 0) { /* for good: a second close must not commit a short file */
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot write %s", f->partial);
        close(f->fd);
        f->fd = -1;
        goto out;
    }
    if (fsync(f->fd) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot sync %s", f->partial);
        goto out;
    }
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot close %s", f->partial);
        goto out;
    }
    if (rename(f->partial, f->path) != 0) {
        rc = cs_err_sys(e, CS_E_IO, errno, "cannot rename %s to %s", f->partial, f->path);
        goto out;
    }
    f->committed = 1;
    if (f->flags & CS_FILE_NO_DIR_SYNC)
        goto out;
    dir = cs_dirname(f->path);
    rc = cs_fsync_dir(dir, e);
out:
    free(dir);
    return rc;
}

static void file_free(cs_sink *s)
{
    file_sink *f = (file_sink *)s;
    if (f->fd >= 0)
        close(f->fd);
    if (!f->committed)
        unlink(f->partial);
    free(f->buf);
    free(f->path);
    free(f->partial);
    free(f);
}

static const cs_sink_ops file_ops = { file_write, file_close, file_free };

cs_sink *cs_file_sink_new(const char *path, mode_t mode, cs_err *e)
{
    return cs_file_sink_open(path, mode, 0, e);
}

cs_sink *cs_file_sink_open(const char *path, mode_t mode, int flags, cs_err *e)
{
    char *partial = cs_sprintf("%s.partial", path);
    int oflags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW; /* never through a link */
    int fd = open(partial, oflags | (flags & CS_FILE_DIRECT ? O_DIRECT : 0), mode);
    if (fd < 0 && errno == EINVAL && (flags & CS_FILE_DIRECT)) { /* a file system without direct I/O */
        flags &= ~CS_FILE_DIRECT;
        fd = open(partial, oflags, mode);
    }
    if (fd < 0) {
        cs_err_sys(e, CS_E_IO, errno, "cannot create %s", partial);
        free(partial);
        return NULL;
    }
    file_sink *f = cs_calloc(1, sizeof *f);
    f->base.ops = &file_ops;
    f->fd = fd;
    f->path = cs_strdup(path);
    f->partial = partial;
    f->flags = flags;
    return &f->base;
}

/* ---- buffer sink -------------------------------------------------------- */

typedef struct buf_sink {
    cs_sink base;
    cs_buf *dst;
    size_t max;
    size_t written;
} buf_sink;

static int buf_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    buf_sink *b = (buf_sink *)s;
    if (n > b->max - b->written)
        return cs_err_set(e, CS_E_INVAL, "more than %zu bytes", b->max);
    cs_buf_add(b->dst, p, n);
    b->written += n;
    return 0;
}

static int buf_close(cs_sink *s, cs_err *e)
{
    (void)s;
    (void)e;
    return 0;
}

static void buf_free(cs_sink *s)
{
    free(s);
}

static const cs_sink_ops buf_ops = { buf_write, buf_close, buf_free };

cs_sink *cs_buf_sink_new(cs_buf *dst, size_t max)
{
    buf_sink *b = cs_calloc(1, sizeof *b);
    b->base.ops = &buf_ops;
    b->dst = dst;
    b->max = max;
    return &b->base;
}

/* ---- null sink ---------------------------------------------------------- */

static int null_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    (void)s;
    (void)p;
    (void)n;
    (void)e;
    return 0;
}

static const cs_sink_ops null_ops = { null_write, buf_close, buf_free };

cs_sink *cs_null_sink_new(void)
{
    cs_sink *s = cs_calloc(1, sizeof *s);
    s->ops = &null_ops;
    return s;
}

/* ---- tee ---------------------------------------------------------------- */

typedef struct tee_sink {
    cs_sink base;
    cs_sink *side; /* borrowed */
    cs_sink *next; /* owned, may be NULL */
} tee_sink;

static int tee_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    tee_sink *t = (tee_sink *)s;
    int rc = cs_sink_write(t->side, p, n, e);
    return rc || !t->next ? rc : cs_sink_write(t->next, p, n, e);
}

static int tee_close(cs_sink *s, cs_err *e)
{
    tee_sink *t = (tee_sink *)s;
    return t->next ? cs_sink_close(t->next, e) : 0;
}

static void tee_free(cs_sink *s)
{
    tee_sink *t = (tee_sink *)s;
    cs_sink_free(t->next);
    free(t);
}

static const cs_sink_ops tee_ops = { tee_write, tee_close, tee_free };

cs_sink *cs_tee_new(cs_sink *side, cs_sink *next)
{
    tee_sink *t = cs_calloc(1, sizeof *t);
    t->base.ops = &tee_ops;
    t->side = side;
    t->next = next;
    return &t->base;
}

/* ---- split -------------------------------------------------------------- */

typedef struct split_sink {
    cs_sink base;
    cs_split_range *r; /* a copy; outs owned */
    bool *done;        /* r[i].out closed */
    size_t n;
    size_t cur;        /* ranges before it are done */
    uint64_t pos;      /* bytes of the stream seen */
} split_sink;

static void free_ranges(cs_split_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cs_sink_free(r[i].out);
}

/* Every range the write reaches gets its part of it (ranges may overlap:
 * two files of one content share a frame). */
static int split_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    split_sink *sp = (split_sink *)s;
    uint64_t end = sp->pos + n;
    for (size_t i = sp->cur; i < sp->n && sp->r[i].at < end; i++) {
        cs_split_range *r = &sp->r[i];
        uint64_t stop = r->at + r->len;
        if (sp->done[i] || stop <= sp->pos)
            continue;
        uint64_t from = r->at > sp->pos ? r->at : sp->pos;
        uint64_t to = stop < end ? stop : end;
        int rc = cs_sink_write(r->out, p + (from - sp->pos), (size_t)(to - from), e);
        if (!rc && to == stop) {
            rc = cs_sink_close(r->out, e);
            sp->done[i] = true;
        }
        if (rc)
            return cs_err_prefix(e, "%s", r->name);
    }
    while (sp->cur < sp->n && sp->done[sp->cur])
        sp->cur++;
    sp->pos = end;
    return 0;
}

static int split_close(cs_sink *s, cs_err *e)
{
    split_sink *sp = (split_sink *)s;
    if (sp->cur < sp->n)
        return cs_err_set(e, CS_E_CORRUPT, "%s: the object ends %llu bytes into it (it starts at byte %llu)",
                          sp->r[sp->cur].name,
                          (unsigned long long)(sp->pos > sp->r[sp->cur].at ? sp->pos - sp->r[sp->cur].at : 0),
                          (unsigned long long)sp->r[sp->cur].at);
    return 0;
}

static void split_free(cs_sink *s)
{
    split_sink *sp = (split_sink *)s;
    free_ranges(sp->r, sp->n);
    free(sp->r);
    free(sp->done);
    free(sp);
}

static const cs_sink_ops split_ops = { split_write, split_close, split_free };

cs_sink *cs_split_new(cs_split_range *ranges, size_t n, cs_err *e)
{
    for (size_t i = 0; i < n; i++) {
        bool bad = ranges[i].len == 0 || ranges[i].at > UINT64_MAX - ranges[i].len ||
                   (i + 1 < n && ranges[i].at > ranges[i + 1].at);
        if (bad) {
            cs_err_set(e, CS_E_CORRUPT, "%s: its range is empty or out of order", ranges[i].name);
            free_ranges(ranges, n);
            return NULL;
        }
    }
    split_sink *sp = cs_calloc(1, sizeof *sp);
    sp->base.ops = &split_ops;
    sp->r = cs_calloc(n ? n : 1, sizeof *sp->r);
    sp->done = cs_calloc(n ? n : 1, sizeof *sp->done);
    if (n)
        memcpy(sp->r, ranges, n * sizeof *ranges);
    sp->n = n;
    return &sp->base;
}
