/* sink.h - the streaming byte pipeline: one sink interface for every stage.
 *
 * Owns: cs_sink, a push-style byte consumer, and the generic sinks that are
 * not filters (file, buffer, null) plus the pump that feeds a sink from a
 * file descriptor. Filters (hash, count, zstd; later age, rate limit) are
 * sinks that transform bytes and push them into the next sink, which they
 * own. A chain is built from the end: storage writer <- zstd <- hash, and a
 * source pushes into its head. Memory is bounded: no stage ever holds a
 * whole file.
 *
 * Life cycle: write* then close (flushes, checks, commits, and closes the
 * rest of the chain), then free. Free without a successful close aborts:
 * a file sink removes its partial file, a storage writer discards the
 * upload. Must not: know about repositories, Cassandra or storage drivers. */
#ifndef CS_IO_SINK_H
#define CS_IO_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct cs_sink cs_sink;

typedef struct cs_sink_ops {
    int (*write)(cs_sink *s, const uint8_t *p, size_t n, cs_err *e);
    int (*close)(cs_sink *s, cs_err *e);
    void (*free)(cs_sink *s); /* frees s itself and the sink it owns */
} cs_sink_ops;

struct cs_sink {
    const cs_sink_ops *ops;
    int closed; /* set by cs_sink_close on success */
};

int cs_sink_write(cs_sink *s, const void *p, size_t n, cs_err *e);
int cs_sink_close(cs_sink *s, cs_err *e);
void cs_sink_free(cs_sink *s); /* NULL is fine */

/* Open path for one sequential read by cs_pump_fd, with direct I/O where the
 * file system has it: the bytes go from the disk into the pump's buffer,
 * not through the page cache. A backup reads each SSTable once; through the
 * page cache that read cost a copy per byte (the kernel's _copy_to_iter was
 * 8% of a 2 GiB backup's CPU and half of a 10 GiB one's on the bench
 * machine, where the page cache's fresh pages are costly) and pushed the
 * node's hot pages out. Falls back to a plain open where O_DIRECT is
 * refused. Returns the fd or -1 (e set). */
int cs_open_stream(const char *path, cs_err *e);

/* Feed everything readable from fd into s (does not close s). The byte count
 * read is added to *nread when nread is not NULL. Stops with CS_E_CANCELED
 * between two reads once a cancel is requested (common/cancel.h). */
int cs_pump_fd(int fd, cs_sink *s, uint64_t *nread, cs_err *e);

/* Write to path atomically: bytes go to "<path>.partial"; close fsyncs and
 * renames it over path (and fsyncs the directory); free without close
 * unlinks the partial file. Fails if path's directory does not exist. */
cs_sink *cs_file_sink_new(const char *path, mode_t mode, cs_err *e);
/* cs_file_sink_open's flags. */
#define CS_FILE_NO_DIR_SYNC 1 /* close fsyncs the file only: the caller syncs the directory, once for
                                 many files, before it relies on their names */
#define CS_FILE_DIRECT 2 /* direct I/O where the file system has it: the bytes go from a 1 MiB aligned
                            buffer to the disk, not through the page cache (the file's last bytes that
                            are not a whole 4096-byte block do); the page cache otherwise, or from the
                            first write it refuses. For files written once and not read back soon (a
                            restore's SSTables): a fresh page-cache page is costly on the bench machine,
                            and the dirty pages' writeback slowed the node's own fsyncs. Same
                            atomicity and syncs as without. */
/* cs_file_sink_new with flags. */
cs_sink *cs_file_sink_open(const char *path, mode_t mode, int flags, cs_err *e);

/* Append into a caller-owned cs_buf; fails with CS_E_INVAL past max bytes. */
cs_sink *cs_buf_sink_new(cs_buf *dst, size_t max);

/* Discard everything (verify reads through a chain into it). */
cs_sink *cs_null_sink_new(void);

#endif
