/* filters.h - the pipeline's transforming sinks.
 *
 * Owns: hash (BLAKE2b-256 through libsodium's crypto_generichash), byte
 * count, progress (a job's bytes done), and zstd compression/decompression (libzstd streaming API). Each
 * filter takes ownership of `next` (also on failure: it frees next) and
 * pushes its output there; close finishes its own work and then closes next.
 * Results land in caller-owned structs when close succeeds. */
#ifndef CS_IO_FILTERS_H
#define CS_IO_FILTERS_H

#include <stdint.h>

#include "common/job.h"
#include "io/sink.h"

#define CS_HASH_BYTES 32
#define CS_HASH_HEX (CS_HASH_BYTES * 2 + 1)

typedef struct cs_hash_result {
    uint8_t digest[CS_HASH_BYTES];
    char hex[CS_HASH_HEX]; /* lowercase hex of digest */
    uint64_t bytes;        /* bytes that passed through */
} cs_hash_result;

/* Hash what passes through; out is filled when close succeeds. next may be
 * NULL: then the filter is a terminal sink that only hashes. */
cs_sink *cs_hash_filter_new(cs_sink *next, cs_hash_result *out);

/* Like the hash filter, but close fails with CS_E_CORRUPT (before closing
 * next, so nothing is committed) unless exactly expected_size bytes with
 * the expected hash passed through. */
cs_sink *cs_hash_verify_new(cs_sink *next, const char *expected_hex, uint64_t expected_size);

/* Count what passes through into *count (updated as bytes pass). */
cs_sink *cs_count_filter_new(cs_sink *next, uint64_t *count);

/* Add what passes through to job's bytes done (common/job.h) as it flows:
 * the one place progress bytes come from. Also a cancel safe point: a
 * write fails with CS_E_CANCELED, before passing anything on, once the job
 * (or the process) is asked to stop. job may be NULL (nothing is counted;
 * the process's cancel still counts). */
cs_sink *cs_progress_filter_new(cs_sink *next, cs_job *job);

/* zstd's fastest level, its minimum (ZSTD_minCLevel(), -131072 since zstd
 * 1.4; the CLI's --fast=131072): for data that is compressed already, where
 * level 1 saves nothing and costs ~7x the CPU. On the bench's LZ4-compressed
 * Data.db: 0.37 CPU-s per GiB against 0.60 at --fast=7 (which cassette used
 * before), both ratio 1.000. Still an ordinary zstd stream that any zstd
 * decoder reads. With an older libzstd whose minimum is higher, its minimum
 * is used. */
#define CS_ZSTD_LEVEL_STORE (-131072)

/* zstd compress at level (CS_ZSTD_LEVEL_STORE..-1 or 1..19). */
cs_sink *cs_zstd_compress_new(cs_sink *next, int level, cs_err *e);

/* zstd decompress; close fails with CS_E_CORRUPT when the input ends in the
 * middle of a frame (a truncated object is an error, never a short file). */
cs_sink *cs_zstd_decompress_new(cs_sink *next, cs_err *e);

/* One-shot hash of a memory block, for small things (tests, manifests). */
void cs_hash_bytes(const void *p, size_t n, cs_hash_result *out);

#endif
