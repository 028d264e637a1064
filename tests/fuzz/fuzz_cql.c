/* fuzz_cql.c - libFuzzer target for the CQL RESULT and ERROR decoders and
 * the v5 segment reader.
 *
 * The first byte picks the decoder. Below 0x80 (every RESULT and ERROR
 * body starts with a zero byte), the whole input is fed to
 * cql_decode_result and to cql_decode_error as v4 and as v5; a decoded
 * result is walked completely (every cell, every nested item, every column
 * name) so a malformed tree shows up under ASan, then freed, so a leak on
 * any path shows up under LeakSanitizer. From 0x80 up, the rest is a
 * stream of v5 segments for cql_segments_decode, and the body of each
 * envelope it yields goes to the decoders above. Mutations rarely keep a
 * CRC right, so from 0xC0 up the segments are built here with valid CRCs
 * from chunks (a byte: bit 0 self-contained, bits 1-7 the payload length;
 * then the payload), which lets them reach the rules on where envelopes
 * may end. The seed corpus in
 * tests/fuzz/corpus/cql/ holds small hand-made RESULT and ERROR bodies and
 * a few segment streams (seg_*, first byte 0x80).
 *
 * Build and run (clang with libFuzzer):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
 *     -o build/fuzz_cql tests/fuzz/fuzz_cql.c src/cassandra/cql_codec.c \
 *     src/cassandra/cql_value.c src/cassandra/cql_segment.c \
 *     src/common/buf.c src/common/err.c src/common/log.c src/common/job.c \
 *     src/common/cancel.c
 *   mkdir -p build/fuzz-corpus && \
 *     build/fuzz_cql build/fuzz-corpus tests/fuzz/corpus/cql -max_total_time=60
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/cql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results are summed into this so the walks are not optimised away. */
static volatile size_t sink;

/* Touch every byte of a value tree; the sum keeps the reads from being
 * optimised away. */
static size_t walk(const cql_value *v)
{
    size_t sum = (size_t)v->kind;
    if (v->kind == CQL_SCALAR) {
        sum += strlen(v->text);
        if (v->raw == NULL)
            abort(); /* a scalar always carries its raw bytes */
        for (size_t i = 0; i < v->raw_len; i++)
            sum += v->raw[i];
    }
    if (v->kind == CQL_MAP && v->n % 2)
        abort(); /* a map must hold whole pairs */
    for (size_t i = 0; i < v->n; i++)
        sum += walk(&v->items[i]);
    return sum;
}

static size_t walk_result(const cql_result *r)
{
    size_t sum = 0;
    for (size_t c = 0; c < cql_result_cols(r); c++) {
        const char *name = cql_result_colname(r, c);
        sum += strlen(name);
        if (c < 16) /* a linear search: all columns would be quadratic */
            sum += (size_t)(cql_result_col(r, name) + 1);
    }
    for (size_t row = 0; row < cql_result_rows(r); row++)
        for (size_t c = 0; c < cql_result_cols(r); c++) {
            const cql_value *v = cql_result_value(r, row, c);
            if (!v)
                abort(); /* documented: never NULL for a valid row/col */
            sum += walk(v);
        }
    return sum;
}

/* A body through both decoders: failures must leave nothing behind and
 * say why. */
static void decode_body(const uint8_t *data, size_t size)
{
    cql_result *r = NULL;
    uint8_t *ps = NULL;
    size_t ps_len = 0;
    cs_err e;

    cs_err_clear(&e);
    if (cql_decode_result(data, size, &r, &ps, &ps_len, &e) == 0) {
        sink = walk_result(r);
        if (ps && ps_len)
            sink = ps[ps_len - 1];
    } else if (r || ps || e.code != CS_E_PROTO || !e.msg[0]) {
        abort(); /* a failure must leave nothing behind and say why */
    }
    cql_result_free(r);
    free(ps);

    for (int version = 4; version <= 5; version++) {
        cs_err_clear(&e);
        int rc = cql_decode_error(data, size, version, &e);
        if (rc != CS_E_EXTERNAL && rc != CS_E_PROTO)
            abort();
        sink = strlen(e.msg);
    }
    sink = cql_startup_rejects_version(5, 4, data, size);
}

static int on_envelope(void *arg, const uint8_t *header, const uint8_t *body, size_t len)
{
    size_t *count = arg;
    (*count)++;
    sink = header[4];
    decode_body(body, len);
    return 0;
}

static void decode_segments(const uint8_t *data, size_t size)
{
    size_t count = 0;
    cs_err e;
    cs_err_clear(&e);
    int rc = cql_segments_decode(data, size, on_envelope, &count, &e);
    if (rc && (rc != CS_E_PROTO || !e.msg[0]))
        abort(); /* a failure must say why */
}

static void put_le(uint8_t *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Segments with valid CRCs from the chunks in data. */
static void decode_built_segments(const uint8_t *data, size_t size)
{
    static const uint8_t seed[4] = { 0xFA, 0x2D, 0x55, 0xCA };
    uint8_t *out = malloc(size * 10 + 1), *o = out; /* 10 bytes more per chunk */
    while (size) {
        size_t n = data[0] >> 1;
        bool sc = data[0] & 1;
        data++;
        size--;
        if (n > size)
            n = size;
        put_le(o, (uint32_t)n | (sc ? 1u << 17 : 0), 3);
        put_le(o + 3, cql_crc24(o, 3), 3);
        memcpy(o + 6, data, n);
        put_le(o + 6 + n, cql_crc32(cql_crc32(0, seed, 4), data, n), 4);
        o += 10 + n;
        data += n;
        size -= n;
    }
    decode_segments(out, (size_t)(o - out));
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || data[0] < 0x80)
        decode_body(data, size);
    else if (data[0] < 0xC0)
        decode_segments(data + 1, size - 1);
    else
        decode_built_segments(data + 1, size - 1);
    return 0;
}
