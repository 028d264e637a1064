/* cql_segment.c - protocol v5 segments (see cql_segment.h).
 *
 * Once STARTUP is answered, all v5 traffic is segments: a 6-byte header (3
 * bytes little-endian holding a 17-bit payload length, a self-contained
 * flag and 6 bits of padding, then a CRC24 of those 3 bytes), the payload,
 * and a CRC32 of the payload, little-endian. A self-contained segment holds
 * one or more whole envelopes; a larger envelope is cut into segments that
 * are not self-contained and carry nothing else.
 *
 * Pure and fuzzed (tests/fuzz/fuzz_cql.c): the reader holds one segment's
 * payload at most, and no envelope is allocated before its length is
 * checked against the protocol's limit (and, from memory, the input). */
#include "cassandra/cql_segment.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/cql.h"
#include "cassandra/cql_codec.h"
#include "cassandra/cql_wire.h"
#include "common/buf.h"

#define CRC24_INIT 0x875060u
#define CRC24_POLY 0x1974F0Bu /* x^24 included: it clears the bit shifted out */

uint32_t cql_crc24(const uint8_t *p, size_t n)
{
    uint32_t crc = CRC24_INIT;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint32_t)p[i] << 16;
        for (int bit = 0; bit < 8; bit++) {
            crc <<= 1;
            if (crc & 0x1000000u)
                crc ^= CRC24_POLY;
        }
    }
    return crc & 0xFFFFFFu;
}

/* The reflected CRC-32 of zlib and java.util.zip.CRC32 (polynomial
 * 0xEDB88320), four bits at a time: a 16-entry table is small enough to be
 * a constant, and CQL traffic needs no more speed than this gives. */
static const uint32_t crc32_nibble[16] = {
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4,
    0x4DB26158, 0x5005713C, 0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C,
    0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
};

uint32_t cql_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc32_nibble[crc & 15];
        crc = (crc >> 4) ^ crc32_nibble[crc & 15];
    }
    return ~crc;
}

/* Cassandra's payload CRC32 runs over four fixed bytes first
 * (org.apache.cassandra.net.Crc), then the payload. */
static uint32_t seg_payload_crc(const uint8_t *p, size_t n)
{
    static const uint8_t seed[4] = { 0xFA, 0x2D, 0x55, 0xCA };
    return cql_crc32(cql_crc32(0, seed, sizeof seed), p, n);
}

static uint32_t le24(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

static void put_le24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
}

static uint32_t le32(const uint8_t *p)
{
    return le24(p) | (uint32_t)p[3] << 24;
}

size_t cql_segments_size(size_t n)
{
    size_t segs = n <= CQL_SEGMENT_MAX_PAYLOAD
                      ? 1
                      : (n + CQL_SEGMENT_MAX_PAYLOAD - 1) / CQL_SEGMENT_MAX_PAYLOAD;
    return n + segs * (CQL_SEGMENT_HEADER_LEN + CQL_SEGMENT_TRAILER_LEN);
}

/* One segment of n <= CQL_SEGMENT_MAX_PAYLOAD bytes at out; returns the
 * end of what was written. */
static uint8_t *seg_put(uint8_t *out, const uint8_t *p, size_t n, bool self_contained)
{
    put_le24(out, (uint32_t)n | (self_contained ? 1u << 17 : 0));
    put_le24(out + 3, cql_crc24(out, 3));
    out += CQL_SEGMENT_HEADER_LEN;
    if (n)
        memcpy(out, p, n);
    uint32_t crc = seg_payload_crc(p, n);
    put_le24(out + n, crc);
    out[n + 3] = (uint8_t)(crc >> 24);
    return out + n + CQL_SEGMENT_TRAILER_LEN;
}

void cql_segments_encode(const uint8_t *p, size_t n, uint8_t *out)
{
    if (n <= CQL_SEGMENT_MAX_PAYLOAD) {
        seg_put(out, p, n, true);
        return;
    }
    while (n) {
        size_t k = n < CQL_SEGMENT_MAX_PAYLOAD ? n : CQL_SEGMENT_MAX_PAYLOAD;
        out = seg_put(out, p, k, false);
        p += k;
        n -= k;
    }
}

int cql_segment_header_decode(const uint8_t *h, size_t *payload_len, bool *self_contained,
                              cs_err *e)
{
    uint32_t want = le24(h + 3), got = cql_crc24(h, 3);
    if (want != got)
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL v5 segment: header CRC24 mismatch (read 0x%06" PRIx32
                          ", computed 0x%06" PRIx32 ")",
                          want, got);
    uint32_t v = le24(h);
    *payload_len = v & CQL_SEGMENT_MAX_PAYLOAD; /* the padding bits above are ignored */
    *self_contained = (v >> 17) & 1;
    return 0;
}

int cql_segment_payload_check(const uint8_t *p, size_t n, const uint8_t *trailer, cs_err *e)
{
    uint32_t want = le32(trailer), got = seg_payload_crc(p, n);
    if (want != got)
        return cs_err_set(e, CS_E_PROTO,
                          "malformed CQL v5 segment: payload CRC32 mismatch (read 0x%08" PRIx32
                          ", computed 0x%08" PRIx32 ")",
                          want, got);
    return 0;
}

/* The next segment's header, checked against where envelopes may end: an
 * envelope begun in a self-contained segment must end there, and one begun
 * in a segment that is not must go on in segments that are not. */
static int seg_header(cql_seg_reader *sr, size_t *plen, cs_err *e)
{
    uint8_t h[CQL_SEGMENT_HEADER_LEN];
    bool sc;
    int rc = sr->read(sr->src, h, sizeof h, e);
    if (rc || (rc = cql_segment_header_decode(h, plen, &sc, e)))
        return rc;
    if (sr->mid && sr->sc)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: an envelope runs past the "
                                         "end of its self-contained segment");
    if (sr->mid && sc)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: a self-contained segment "
                                         "starts inside an unfinished envelope");
    sr->sc = sc;
    return 0;
}

/* A payload of n bytes into dst, and its trailer checked. */
static int seg_payload(cql_seg_reader *sr, uint8_t *dst, size_t n, cs_err *e)
{
    uint8_t t[CQL_SEGMENT_TRAILER_LEN];
    int rc = sr->read(sr->src, dst, n, e);
    if (rc || (rc = sr->read(sr->src, t, sizeof t, e)))
        return rc;
    return cql_segment_payload_check(dst, n, t, e);
}

/* The next n bytes of the envelope stream into dst. */
int cql_seg_read(cql_seg_reader *sr, uint8_t *dst, size_t n, cs_err *e)
{
    int rc;
    size_t plen;
    while (n) {
        if (sr->pos < sr->len) {
            size_t k = n < sr->len - sr->pos ? n : sr->len - sr->pos;
            memcpy(dst, sr->buf + sr->pos, k);
            sr->pos += k;
            dst += k;
            n -= k;
            sr->mid = true;
            continue;
        }
        if ((rc = seg_header(sr, &plen, e)))
            return rc;
        sr->pos = sr->len = 0;
        if (!sr->sc && plen <= n) {
            /* A whole segment of a large envelope: no copy through buf. */
            if ((rc = seg_payload(sr, dst, plen, e)))
                return rc;
            dst += plen;
            n -= plen;
            sr->mid = sr->mid || plen > 0;
            continue;
        }
        if (!sr->buf)
            sr->buf = cs_malloc(CQL_SEGMENT_MAX_PAYLOAD);
        if ((rc = seg_payload(sr, sr->buf, plen, e)))
            return rc;
        sr->len = plen;
    }
    return 0;
}

/* An envelope was read whole: a segment that is not self-contained must
 * not hold anything after it. */
int cql_seg_envelope_done(cql_seg_reader *sr, cs_err *e)
{
    sr->mid = false;
    if (!sr->sc && sr->pos < sr->len)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: a segment that is not "
                                         "self-contained holds more than one envelope");
    return 0;
}

typedef struct mem_src {
    const uint8_t *p;
    size_t left;
} mem_src;

static int mem_read(void *src, uint8_t *buf, size_t n, cs_err *e)
{
    mem_src *m = src;
    if (m->left < n)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: the input stops inside "
                                         "a segment");
    if (n)
        memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    return 0;
}

int cql_segments_decode(const uint8_t *in, size_t len, cql_envelope_fn fn, void *arg,
                        cs_err *e)
{
    mem_src m = { in, len };
    cql_seg_reader sr = { .read = mem_read, .src = &m };
    uint8_t h[CQL_HEADER_LEN];
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = 0;
    while (!rc && (m.left || sr.pos < sr.len)) {
        if ((rc = cql_seg_read(&sr, h, sizeof h, e)) || (rc = cql_envelope_len(h, &blen, e)))
            break;
        /* No envelope is longer than the input: say so before allocating. */
        if (blen > len) {
            rc = cs_err_set(e, CS_E_PROTO, "malformed CQL v5 segment: an envelope of %zu "
                            "bytes in %zu bytes of input", blen, len);
            break;
        }
        body = cs_malloc(blen ? blen : 1);
        if ((rc = cql_seg_read(&sr, body, blen, e)) || (rc = cql_seg_envelope_done(&sr, e)))
            break;
        rc = fn(arg, h, body, blen);
        free(body);
        body = NULL;
    }
    free(body);
    free(sr.buf);
    return rc;
}

