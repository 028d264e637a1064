/* filters.h - the pipeline's transforming sinks.
 *
 * Owns: the content hash of files (SHA-256, crypto/sha256, for
 * what is hashed now; BLAKE2b-256 through libsodium's crypto_generichash to
 * check the files of older backups) and the form a manifest records it in,
 * the small-things hash (BLAKE2b-256: index, fingerprints), byte count, progress (a job's bytes done), and zstd compression/decompression (libzstd streaming API). Each
 * filter takes ownership of `next` (also on failure: it frees next) and
 * pushes its output there; close finishes its own work and then closes next.
 * Results land in caller-owned structs when close succeeds. */
#ifndef CS_IO_FILTERS_H
#define CS_IO_FILTERS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/job.h"
#include "io/sink.h"

#define CS_HASH_BYTES 32
#define CS_HASH_HEX (CS_HASH_BYTES * 2 + 1)

/* A file's content hash as a manifest, the state and the catalog record it
 * (a string; the algorithm is part of it):
 *   "sha256:" + 64 lowercase hex   SHA-256, every file hashed since manifest format 2;
 *   64 lowercase hex (no tag)      BLAKE2b-256, files hashed by older versions
 *                                  (still valid: a reused file is never re-read).
 * Hashes of different algorithms never compare equal as strings. */
#define CS_CONTENT_HASH_TAG "sha256:"
#define CS_CONTENT_HASH_LEN (sizeof CS_CONTENT_HASH_TAG - 1 + CS_HASH_HEX) /* longest form + NUL */

typedef enum cs_hash_alg { CS_HASH_BLAKE2B, CS_HASH_SHA256 } cs_hash_alg;

typedef struct cs_hash_result {
    uint8_t digest[CS_HASH_BYTES];
    char hex[CS_HASH_HEX];         /* lowercase hex of digest */
    char id[CS_CONTENT_HASH_LEN];  /* the content hash's recorded form (above) */
    uint64_t bytes;                /* bytes that passed through */
} cs_hash_result;

/* Whether s is a content hash of a known form (above); if so *alg (may be
 * NULL) is its algorithm. Anything else (wrong length, upper case, unknown
 * tag) is not. */
bool cs_content_hash_parse(const char *s, cs_hash_alg *alg);

/* Hash what passes through with the content hash of new files (SHA-256);
 * out is filled when close succeeds. next may be NULL: then the filter is
 * a terminal sink that only hashes. */
cs_sink *cs_hash_filter_new(cs_sink *next, cs_hash_result *out);

/* Like the hash filter, with the algorithm expected_id names (a content
 * hash of either form), but close fails with CS_E_CORRUPT (before closing
 * next, so nothing is committed) unless exactly expected_size bytes with
 * that hash passed through; also when expected_id is of no known form. */
cs_sink *cs_hash_verify_new(cs_sink *next, const char *expected_id, uint64_t expected_size);

/* Count what passes through into *count (updated as bytes pass). */
cs_sink *cs_count_filter_new(cs_sink *next, uint64_t *count);

/* Add what passes through to job's bytes done (common/job.h) as it flows:
 * the one place progress bytes come from. Also a cancel safe point: a
 * write fails with CS_E_CANCELED, before passing anything on, once the job
 * (or the process) is asked to stop. job may be NULL (nothing is counted;
 * the process's cancel still counts). */
cs_sink *cs_progress_filter_new(cs_sink *next, cs_job *job);

/* "Store": for data that is compressed already, where level 1 saves
 * nothing and costs ~7x the CPU, and where even zstd's fastest level
 * (its minimum, -131072) only stores every block raw after searching it.
 * This level writes that zstd frame itself: raw blocks (filters.c), an
 * ordinary zstd stream that any zstd decoder and older cassette versions
 * read. On the bench's LZ4-compressed Data.db:
 * see the commit that made it for the figures. Levels between it and -1
 * are zstd's own (an older libzstd's minimum is used below it). */
#define CS_ZSTD_LEVEL_STORE (-131072)

/* zstd compress at level (CS_ZSTD_LEVEL_STORE..-1 or 1..19), frames
 * without zstd's own content checksum (XXH64): the plaintext of every
 * object is checked against its content hash anyway (cs_hash_verify_new,
 * in cs_ops_fetch_object), so that checksum was a second hash of every
 * byte, backup and restore each (about 0.1 CPU-s per GiB each way).
 * Objects written before carry it; both kinds are ordinary zstd frames.
 * size_hint: the size the input is expected to have, 0 if unknown. zstd
 * sizes its window and tables to it (a 4 KiB file: an 86 KB context, not
 * the 1.4 MB of level 1's default), which keeps a backup's ~1000 small
 * files from churning the allocator (bench/README.md, "Memory"). Only a
 * hint: any size of input is compressed whole, and the frames are
 * ordinary, with a window no larger than the input needs. */
cs_sink *cs_zstd_compress_new(cs_sink *next, int level, uint64_t size_hint, cs_err *e);

/* zstd decompress; close fails with CS_E_CORRUPT when the input ends in the
 * middle of a frame (a truncated object is an error, never a short file).
 * The "store" frames (CS_ZSTD_LEVEL_STORE) are read here, their raw blocks
 * passed on without a copy; a frame with their header and a compressed
 * block is refused as corrupt (no writer of ours, nor libzstd, makes one:
 * filters.c). Every other frame is libzstd's.
 * A frame's content checksum (older objects have one) is not verified: a
 * damaged frame is an error only where libzstd's block decoding notices,
 * so whoever uses this must check what comes out against its content hash
 * (cs_hash_verify_new after it, which fails before its next is closed), as
 * cs_ops_fetch_object, the one reader of objects, does. */
cs_sink *cs_zstd_decompress_new(cs_sink *next, cs_err *e);

/* One-shot BLAKE2b-256 of a memory block, for small things (the index's
 * manifest hashes and checksums, fingerprints): not the content hash. */
void cs_hash_bytes(const void *p, size_t n, cs_hash_result *out);

/* One-shot content hash (SHA-256) of a memory block: what the hash filter
 * gives for the same bytes. */
void cs_content_hash_bytes(const void *p, size_t n, cs_hash_result *out);

#endif
