/* cql_segment.h - the v5 segment layer of the CQL client (internal to
 * cassandra/cql*.c; the pure entry points the tests and the fuzzer use,
 * cql_crc24, cql_crc32 and cql_segments_*, are declared in cql.h).
 *
 * Owns: protocol v5 segments (the spec's "frames"; what v4 called frames
 * are the "envelopes" inside them): CRC24 and CRC32, encoding envelopes
 * into segments, and a reader that cuts a stream of segments back into
 * envelope bytes, enforcing where envelopes may begin and end. Uncompressed
 * only: cassette never asks for compression.
 * Must not: know about sockets or what the envelopes say. */
#ifndef CS_CQL_SEGMENT_H
#define CS_CQL_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Reads exactly n bytes from src into buf, or fails with e set. */
typedef int (*cql_seg_read_fn)(void *src, uint8_t *buf, size_t n, cs_err *e);

/* Cuts a stream of v5 segments back into envelope bytes. Only one segment
 * payload is held at a time; the parts of a large envelope that fill whole
 * segments are read straight into the caller's buffer. */
typedef struct cql_seg_reader {
    cql_seg_read_fn read;
    void *src;
    uint8_t *buf; /* the current segment's payload, CQL_SEGMENT_MAX_PAYLOAD bytes */
    size_t pos, len;
    bool sc;  /* the current segment is self-contained */
    bool mid; /* part of an envelope was delivered, the rest is still to come */
} cql_seg_reader;

/* The next n bytes of the envelope stream into dst: whole segments of a
 * large envelope straight into dst, others through sr->buf (allocated here,
 * freed by the owner of sr). Every CRC is checked. */
int cql_seg_read(cql_seg_reader *sr, uint8_t *dst, size_t n, cs_err *e);
/* An envelope was read whole: a segment that is not self-contained must not
 * hold anything after it. */
int cql_seg_envelope_done(cql_seg_reader *sr, cs_err *e);

#endif
