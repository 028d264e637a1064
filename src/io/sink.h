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
 * upload. Must not: know about repositories, Cassandra or storage drivers.
 *
 * Optional operations (cs_sink_opt_ops), each the same as plain writes
 * for the stream's bytes and for what the sink does with them (parts,
 * their boundaries, errors, cancel), so that bytes are copied less:
 * - reserve/commit: a sink that gathers bytes into a buffer of its own
 *   anyway (the S3 part, the Azure block) lends the caller room in it, so
 *   that a stage producing bytes (the age encryptor) writes them there
 *   itself instead of into its own buffer and then a copy;
 * - a gathered write: pieces given at once (the zstd store frame's block
 *   headers between the blocks of the read buffer), which a stage that
 *   works on whole units (age's 64 KiB chunks) takes without gathering
 *   them into one buffer first. */
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

/* A piece of a gathered write. */
typedef struct cs_iov {
    const uint8_t *p;
    size_t n;
} cs_iov;

/* A table of its own, not fields of cs_sink_ops, so that the sinks without
 * them need no change; give it with designated initializers: a NULL entry
 * is not supported (the wrappers below fall back to plain writes). */
typedef struct cs_sink_opt_ops {
    /* 1 <= want; sets *p and 1 <= *got <= want. */
    int (*reserve)(cs_sink *s, size_t want, uint8_t **p, size_t *got, cs_err *e);
    int (*commit)(cs_sink *s, size_t n, cs_err *e); /* n <= the reservation's got */
    int (*writev)(cs_sink *s, const cs_iov *v, size_t n, cs_err *e);
} cs_sink_opt_ops;

struct cs_sink {
    const cs_sink_ops *ops;
    const cs_sink_opt_ops *opt; /* NULL (a zeroed sink): none */
    int closed; /* set by cs_sink_close on success */
};

int cs_sink_write(cs_sink *s, const void *p, size_t n, cs_err *e);
/* The n pieces of v in order, as one cs_sink_write each would (empty
 * pieces are fine). */
int cs_sink_writev(cs_sink *s, const cs_iov *v, size_t n, cs_err *e);
int cs_sink_close(cs_sink *s, cs_err *e);
void cs_sink_free(cs_sink *s); /* NULL is fine */

/* Room for the next bytes of the stream in s's own buffer: *p and *got with
 * 1 <= *got <= want (want >= 1), valid until the commit. Returns 0 with
 * *p = NULL and *got = 0 when s lends no buffer (the caller writes
 * instead). The room may be less than want (the end of a part): the caller
 * commits what fits and reserves again, or writes. A reservation announces
 * more bytes: like a write that brings them, it may first pass on what the
 * sink holds (a full part goes up), and so may wait for a part buffer, fail
 * like a write (also with CS_E_CANCELED) or a later write or close may
 * report its failure. Memory stays the sink's own, bounded as its writes'.
 * Errors: those of a write; a closed sink is CS_E_INVAL. */
int cs_sink_reserve(cs_sink *s, size_t want, uint8_t **p, size_t *got, cs_err *e);

/* The first n (<= *got) bytes of the last reservation are the stream's next
 * bytes, as if written; the rest of the room is not part of the stream
 * (n = 0 commits nothing). Exactly one commit follows each successful
 * reservation that lent room, with no other call on s between the two;
 * free without commit drops the reservation with everything else. */
int cs_sink_commit(cs_sink *s, size_t n, cs_err *e);

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

/* Writes go to side and then to next. side is borrowed: it is written to,
 * never closed or freed here (a pack's writer sees several members' chains
 * in turn); next is owned, and may be NULL (then the tee only lends side).
 * Close closes next. */
cs_sink *cs_tee_new(cs_sink *side, cs_sink *next);

/* One piece of a stream: its bytes [at, at + len) go to out. */
typedef struct cs_split_range {
    uint64_t at, len;
    cs_sink *out;       /* owned by the split sink */
    const char *name;   /* for its errors (borrowed) */
} cs_split_range;

/* Split a stream into pieces (the files of a pack): bytes outside every
 * range are dropped, bytes in several go to each (two files of one content
 * may share a frame); each out is closed as soon as its range has passed
 * (its errors prefixed with its name), and close fails with CS_E_CORRUPT
 * when the stream ended before a range did. Ranges must be sorted by at,
 * each non-empty: otherwise NULL with CS_E_CORRUPT (every out freed).
 * Takes the outs (also on failure). */
cs_sink *cs_split_new(cs_split_range *ranges, size_t n, cs_err *e);

#endif
