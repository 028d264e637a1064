/* fuzz_zstd.c - libFuzzer target for the object reader's zstd decoder.
 *
 * An object comes from the repository, which may be damaged or tampered
 * with (and an unencrypted one has no age tag in front of it), so
 * cs_zstd_decompress_new must turn any input into a clean error or the
 * right bytes, without crashing or leaking. The frames' content checksums
 * are not computed (filters.h: the content hash checks the plaintext), so
 * the filter (fed in pieces of the size the first byte picks, into a sink
 * of at most 1 MiB) is compared with libzstd's streaming decoder told the
 * same and given the whole input at once: when the filter accepts an
 * input, the reference must accept it too and give the same bytes, and
 * the content hash the filter chain reports must be those bytes'; a
 * non-empty input the reference accepts must not be called corrupt, except
 * for the one kind of frame the filter refuses on purpose: the header of a
 * "store" frame with a block that is neither raw nor RLE (filters.c reads
 * store frames itself; no writer makes that). Any broken promise aborts. The seed corpus in tests/fuzz/corpus/zstd/ holds frames with and
 * without checksum, "store" frames of raw blocks, concatenated and
 * skippable frames, store frames with an RLE block or between libzstd's,
 * a store header before a compressed block, and damaged ones (made with
 * tests/unit/test_io.c's writers, the zstd CLI and a few lines of Python).
 *
 * Build and run (clang with libFuzzer), or `make fuzz`:
 *   make build/fuzz/fuzz_zstd && build/fuzz/fuzz_zstd build/fuzz/zstd.work tests/fuzz/corpus/zstd
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_forceIgnoreChecksum, as in filters.c */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "common/buf.h"
#include "io/filters.h"
#include "io/sink.h"

#define OUT_MAX ((size_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libzstd's streaming decoder given the whole input at once (checksums not
 * computed, as in filters.c): the size, or -1 (an error, a truncated
 * stream, or more than OUT_MAX bytes). */
static long long reference(const uint8_t *p, size_t n, uint8_t *out)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d || ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_forceIgnoreChecksum, ZSTD_d_ignoreChecksum)))
        abort();
    ZSTD_inBuffer in = { p, n, 0 };
    ZSTD_outBuffer ob = { out, OUT_MAX, 0 };
    long long got = -1;
    for (;;) {
        size_t r = ZSTD_decompressStream(d, &ob, &in);
        if (ZSTD_isError(r))
            break;
        if (in.pos == in.size && (r == 0 || ob.pos < ob.size)) {
            got = r == 0 ? (long long)ob.pos : -1;
            break;
        }
        if (ob.pos == ob.size)
            break;
    }
    ZSTD_freeDCtx(d);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] * 97 + 1; /* 1 .. 24736 */
    data++;
    size--;

    cs_buf out = CS_BUF_INIT;
    cs_hash_result h;
    memset(&h, 0, sizeof h);
    cs_err e;
    cs_err_clear(&e);
    cs_sink *s = cs_zstd_decompress_new(cs_hash_filter_new(cs_buf_sink_new(&out, OUT_MAX), &h), &e);
    if (!s)
        abort();
    int rc = 0;
    for (size_t off = 0; !rc && off < size; off += piece)
        rc = cs_sink_write(s, data + off, size - off < piece ? size - off : piece, &e);
    if (!rc)
        rc = cs_sink_close(s, &e);
    cs_sink_free(s);
    if (rc && (!e.code || !e.msg[0]))
        abort(); /* an error says what it is */

    uint8_t *ref = malloc(OUT_MAX);
    if (!ref)
        abort();
    long long r = reference(data, size, ref);
    if (!rc) {
        if (r < 0 || (size_t)r != out.len || (out.len && memcmp(ref, out.data, out.len)))
            abort();
        cs_hash_result want;
        cs_content_hash_bytes(out.data, out.len, &want);
        if (h.bytes != out.len || strcmp(h.id, want.id))
            abort();
    } else if (r >= 0 && size > 0 && e.code == CS_E_CORRUPT &&
               !strstr(e.msg, "a compressed block in a frame of stored blocks")) {
        abort(); /* a stream libzstd reads whole was called corrupt */
    }
    free(ref);
    cs_buf_free(&out);
    return 0;
}
