/* test_io.c - the byte pipeline: sinks, hash, count and zstd filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <xxhash.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/fs.h"
#include "io/filters.h"
#include "io/sink.h"

/* BLAKE2b-256 (cs_hash_bytes; the content hash before manifest format 2). */
static const char EMPTY_HASH[] = "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8";
static const char ABC_HASH[] = "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319";
/* SHA-256 (FIPS 180-2 test vectors): the content hash now. */
static const char EMPTY_SHA256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char ABC_SHA256[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char ABC_SHA256_ID[] = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cassette-test-io-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    int rc = cs_remove_tree(f->dir, &e);
    free(f);
    return rc;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Random-ish data: runs of repeated bytes mixed with noise, so zstd has
 * something to do but cannot shrink it to nothing. */
static uint8_t *make_data(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (i / 512) % 3 == 0 ? (uint8_t)(i / 512) : (uint8_t)x;
    }
    return p;
}

/* Feed p into s in uneven chunks. */
static int write_chunked(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    size_t sizes[] = { 1, 7777, 65536, 3, 300000 };
    size_t i = 0, off = 0;
    while (off < n) {
        size_t c = sizes[i++ % 5];
        if (c > n - off)
            c = n - off;
        int rc = cs_sink_write(s, p + off, c, e);
        if (rc)
            return rc;
        off += c;
    }
    return 0;
}

static void compress_to_buf(const void *p, size_t n, cs_buf *out)
{
    cs_err e;
    cs_err_clear(&e);
    cs_sink *s = cs_zstd_compress_new(cs_buf_sink_new(out, SIZE_MAX), 3, 0, &e);
    assert_non_null(s);
    assert_int_equal(cs_sink_write(s, p, n, &e), 0);
    assert_int_equal(cs_sink_close(s, &e), 0);
    cs_sink_free(s);
}

static void test_hash_vectors(void **state)
{
    (void)state;
    cs_hash_result r;
    cs_hash_bytes("", 0, &r);
    assert_string_equal(r.hex, EMPTY_HASH);
    assert_int_equal(r.bytes, 0);
    cs_hash_bytes("abc", 3, &r);
    assert_string_equal(r.hex, ABC_HASH);
    assert_string_equal(r.id, ABC_HASH); /* BLAKE2b's recorded form is untagged */
    assert_int_equal(r.bytes, 3);

    cs_content_hash_bytes("", 0, &r);
    assert_string_equal(r.hex, EMPTY_SHA256);
    cs_content_hash_bytes("abc", 3, &r);
    assert_string_equal(r.hex, ABC_SHA256);
    assert_string_equal(r.id, ABC_SHA256_ID);
    assert_int_equal(r.bytes, 3);

    /* The filter (SHA-256) as a terminal sink, fed byte by byte. */
    cs_err e;
    cs_err_clear(&e);
    cs_hash_result fr;
    memset(&fr, 0, sizeof fr);
    cs_sink *h = cs_hash_filter_new(NULL, &fr);
    assert_int_equal(cs_sink_write(h, "a", 1, &e), 0);
    assert_int_equal(cs_sink_write(h, "b", 1, &e), 0);
    assert_int_equal(cs_sink_write(h, "", 0, &e), 0);
    assert_int_equal(cs_sink_write(h, "c", 1, &e), 0);
    assert_int_equal(cs_sink_close(h, &e), 0);
    assert_string_equal(fr.hex, ABC_SHA256);
    assert_string_equal(fr.id, ABC_SHA256_ID);
    assert_memory_equal(fr.digest, r.digest, CS_HASH_BYTES);
    assert_int_equal(fr.bytes, 3);
    cs_sink_free(h);

    /* Empty stream through the filter. */
    h = cs_hash_filter_new(cs_null_sink_new(), &fr);
    assert_int_equal(cs_sink_close(h, &e), 0);
    assert_string_equal(fr.hex, EMPTY_SHA256);
    cs_sink_free(h);
}

static void test_content_hash_forms(void **state)
{
    (void)state;
    cs_hash_alg alg = CS_HASH_SHA256;
    assert_true(cs_content_hash_parse(ABC_HASH, &alg));
    assert_int_equal(alg, CS_HASH_BLAKE2B);
    assert_true(cs_content_hash_parse(ABC_SHA256_ID, &alg));
    assert_int_equal(alg, CS_HASH_SHA256);
    assert_true(cs_content_hash_parse(ABC_SHA256_ID, NULL));
    const char *bad[] = {
        "", "sha256:", "abc", ABC_SHA256 + 1, /* 63 hex */
        "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d523190", /* 65 hex */
        "BDDD813C634239723171EF3FEE98579B94964E3BB1CB3E427262C8C068D52319", /* upper case */
        "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d5231g", /* not hex */
        "sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", /* unknown tag */
        "SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "blake2b:bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319",
        "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a", /* 63 hex */
        "sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
        "sha256:sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(cs_content_hash_parse(bad[i], &alg));
    assert_false(cs_content_hash_parse(NULL, &alg));
}

/* Feed "abc" through a verify filter expecting (expected, size); the close's result. */
static int verify_abc(const char *expected, uint64_t size, cs_err *e)
{
    cs_buf out = CS_BUF_INIT;
    cs_sink *s = cs_hash_verify_new(cs_buf_sink_new(&out, SIZE_MAX), expected, size);
    int rc = cs_sink_write(s, "abc", 3, e);
    if (!rc)
        rc = cs_sink_close(s, e);
    cs_sink_free(s);
    cs_buf_free(&out);
    return rc;
}

static void test_hash_verify_kinds(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    /* Each kind picked from the expected string. */
    assert_int_equal(verify_abc(ABC_HASH, 3, &e), 0);
    assert_int_equal(verify_abc(ABC_SHA256_ID, 3, &e), 0);
    /* Wrong hash, each kind. */
    assert_int_equal(verify_abc(EMPTY_HASH, 3, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "hash mismatch"));
    assert_int_equal(verify_abc("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 3, &e),
                     CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "hash mismatch"));
    /* The right digest under the other algorithm's form is no match. */
    assert_int_equal(verify_abc(ABC_SHA256, 3, &e), CS_E_CORRUPT);
    assert_int_equal(verify_abc("sha256:bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319", 3, &e),
                     CS_E_CORRUPT);
    /* Wrong size, each kind: fewer bytes than expected. */
    assert_int_equal(verify_abc(ABC_HASH, 4, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "3 bytes, expected 4"));
    assert_int_equal(verify_abc(ABC_SHA256_ID, 4, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "3 bytes, expected 4"));
    assert_int_equal(verify_abc(ABC_SHA256_ID, 2, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "more than the 2 bytes"));
    /* An expectation of no known form never passes. */
    assert_int_equal(verify_abc("sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", 3, &e),
                     CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "no known form"));
    assert_int_equal(verify_abc("", 3, &e), CS_E_CORRUPT);
}

static void roundtrip(const char *dir, size_t n, int level)
{
    cs_err e;
    cs_err_clear(&e);
    uint8_t *data = make_data(n, (uint32_t)n + 17);
    char *path = cs_path_join(dir, "obj.zst");
    char *partial = cs_sprintf("%s.partial", path);

    cs_hash_result wh;
    uint64_t compressed = 0;
    cs_sink *file = cs_file_sink_new(path, 0600, &e);
    assert_non_null(file);
    cs_sink *chain = cs_hash_filter_new(
        cs_zstd_compress_new(cs_count_filter_new(file, &compressed), level, 0, &e), &wh);
    assert_int_equal(write_chunked(chain, data, n, &e), 0);
    assert_true(cs_exists(partial));
    assert_false(cs_exists(path));
    assert_int_equal(cs_sink_close(chain, &e), 0);
    assert_true(chain->closed);
    cs_sink_free(chain);
    assert_false(cs_exists(partial));
    assert_true(cs_exists(path));
    assert_int_equal(wh.bytes, n);
    assert_true(compressed > 0);

    cs_hash_result one;
    cs_content_hash_bytes(data, n, &one);
    assert_string_equal(wh.id, one.id);

    /* Back: file -> zstd -d -> hash -> buffer. */
    cs_buf back = CS_BUF_INIT;
    cs_hash_result rh;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    cs_sink *rchain = cs_zstd_decompress_new(cs_hash_filter_new(cs_buf_sink_new(&back, n), &rh), &e);
    assert_non_null(rchain);
    uint64_t nread = 0;
    if (cs_pump_fd(fd, rchain, &nread, &e))
        fail_msg("decompress %zu at level %d: %s", n, level, e.msg);
    close(fd);
    assert_int_equal(nread, compressed);
    if (cs_sink_close(rchain, &e))
        fail_msg("decompress %zu at level %d: %s", n, level, e.msg);
    cs_sink_free(rchain);
    assert_int_equal(back.len, n);
    if (n)
        assert_memory_equal(back.data, data, n);
    assert_string_equal(rh.hex, wh.hex);
    assert_int_equal(rh.bytes, n);

    cs_buf_free(&back);
    unlink(path);
    free(partial);
    free(path);
    free(data);
}

static void test_roundtrip_sizes(void **state)
{
    fixture *f = *state;
    roundtrip(f->dir, 0, 3);
    roundtrip(f->dir, 1, 3);
    roundtrip(f->dir, 65536, 3);
    roundtrip(f->dir, 3 * 1024 * 1024 + 123, 3);
    roundtrip(f->dir, 200000, 1);
    roundtrip(f->dir, 200000, 19);
    roundtrip(f->dir, 3 * 1024 * 1024 + 123, CS_ZSTD_LEVEL_STORE);
    roundtrip(f->dir, 128 * 1024, 3); /* the last output fills the decoder's buffer exactly */
    roundtrip(f->dir, 0, CS_ZSTD_LEVEL_STORE);
    roundtrip(f->dir, 128 * 1024, CS_ZSTD_LEVEL_STORE);
    roundtrip(f->dir, 128 * 1024, 3); /* the last output fills the decoder's buffer exactly */
    roundtrip(f->dir, 8 * (128 * 1024) + 1, CS_ZSTD_LEVEL_STORE);
}

/* libzstd's one-shot decoder (what the zstd CLI uses: a frame's checksum,
 * if any, checked) reads the frame z whole, as the n bytes of data. */
static void assert_one_shot(const cs_buf *z, const uint8_t *data, size_t n)
{
    assert_int_equal(ZSTD_findFrameCompressedSize(z->data, z->len), z->len);
    uint8_t *back = malloc(n + 1);
    size_t r = ZSTD_decompress(back, n + 1, z->data, z->len);
    assert_false(ZSTD_isError(r));
    assert_int_equal(r, n);
    if (n)
        assert_memory_equal(back, data, n);
    free(back);
}

/* The "store" level writes its zstd frame itself: one frame that libzstd's
 * one-shot decoder reads whole, raw blocks only, no content checksum, the
 * size of the input plus its headers; a flipped content byte is for the
 * content hash to catch (test_frame_checksums). */
static void test_zstd_store_frame(void **state)
{
    (void)state;
    size_t sizes[] = { 0, 5, 128 * 1024, 128 * 1024 + 1, 8 * 128 * 1024, 8 * 128 * 1024 + 7, 2500000 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *data = make_data(n, (uint32_t)i + 3);
        cs_buf z = CS_BUF_INIT;
        cs_err e;
        cs_err_clear(&e);
        cs_sink *s = cs_zstd_compress_new(cs_buf_sink_new(&z, SIZE_MAX), CS_ZSTD_LEVEL_STORE, 0, &e);
        assert_non_null(s);
        assert_int_equal(write_chunked(s, data, n, &e), 0);
        assert_int_equal(cs_sink_close(s, &e), 0);
        cs_sink_free(s);
        size_t blocks = n / (128 * 1024) + 1; /* full ones, then a partial or empty last one */
        assert_int_equal(z.len, 6 + n + 3 * blocks);
        assert_int_equal(z.data[4] & 0x04, 0); /* Content_Checksum_flag */
        assert_one_shot(&z, data, n);
        cs_buf_free(&z);
        free(data);
    }
}

/* The store frame as RFC 8878 lays it out, built here byte by byte: the
 * frame header as the filter wrote it (out's first 6 bytes), blocks of
 * 128 KiB, the last one partial or empty with the last flag, then the low
 * 32 bits of XXH64 when the header says there is a checksum. */
static void store_reference(const uint8_t *hdr6, const uint8_t *p, size_t n, cs_buf *ref)
{
    const size_t block = 128 * 1024;
    cs_buf_add(ref, hdr6, 6);
    for (size_t at = 0;; at += block) {
        size_t k = n - at < block ? n - at : block;
        int last = n - at < block;
        uint32_t v = (uint32_t)k << 3 | (uint32_t)last;
        uint8_t h[3] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16) };
        cs_buf_add(ref, h, 3);
        cs_buf_add(ref, p + at, k);
        if (last)
            break;
    }
    if (hdr6[4] & 0x04) {
        uint32_t sum = (uint32_t)XXH64(p, n, 0);
        uint8_t t[4] = { (uint8_t)sum, (uint8_t)(sum >> 8), (uint8_t)(sum >> 16), (uint8_t)(sum >> 24) };
        cs_buf_add(ref, t, 4);
    }
}

/* The store frame's bytes do not depend on how the writes cut the content
 * (its blocks go on as gathered writes, the one a write leaves unfinished
 * is gathered in the filter): the same frame, byte for byte, as the
 * reference layout, for one write, the pump's 1 MiB writes, cuts next to
 * block boundaries, byte by byte; into a sink that takes gathered writes
 * (count) and one that does not. */
static void test_zstd_store_cuts(void **state)
{
    (void)state;
    const size_t B = 128 * 1024;
    size_t sizes[] = { 0, 1, B - 1, B, B + 1, 8 * B, 8 * B + 1, 9 * B - 1, 20 * B + 12345 };
    size_t one[] = { SIZE_MAX }, mib[] = { 1 << 20 }, near[] = { B - 1, 2, B + 1, 3, 5 * B }, bytes[] = { 1 };
    struct { const size_t *c; size_t n; } cuts[] = { { one, 1 }, { mib, 1 }, { near, 5 }, { bytes, 1 } };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *data = make_data(n, (uint32_t)i + 11);
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            if (cuts[c].c == bytes && n > 2 * B + 1)
                continue;
            for (int counted = 0; counted < 2; counted++) {
                cs_buf z = CS_BUF_INIT, ref = CS_BUF_INIT;
                cs_err e;
                cs_err_clear(&e);
                uint64_t count = 0;
                cs_sink *next = cs_buf_sink_new(&z, SIZE_MAX);
                if (counted)
                    next = cs_count_filter_new(next, &count);
                cs_sink *s = cs_zstd_compress_new(next, CS_ZSTD_LEVEL_STORE, 0, &e);
                assert_non_null(s);
                for (size_t off = 0, k = 0; off < n; k++) {
                    size_t w = cuts[c].c[k % cuts[c].n] < n - off ? cuts[c].c[k % cuts[c].n] : n - off;
                    assert_int_equal(cs_sink_write(s, data + off, w, &e), 0);
                    off += w;
                }
                assert_int_equal(cs_sink_close(s, &e), 0);
                cs_sink_free(s);
                assert_true(z.len >= 6);
                store_reference((const uint8_t *)z.data, data, n, &ref);
                if (z.len != ref.len || memcmp(z.data, ref.data, z.len))
                    fail_msg("store frame of %zu bytes, cut %zu, counted %d: not the reference layout", n, c,
                             counted);
                if (counted)
                    assert_int_equal(count, z.len);
                cs_buf_free(&z);
                cs_buf_free(&ref);
            }
        }
        free(data);
    }
}

/* A sink that keeps what it is given and notes whether every piece lay
 * inside [lo, hi): the store frames' raw blocks are passed on where they
 * lie, never copied. */
typedef struct where_sink {
    cs_sink base;
    cs_buf *out;
    const uint8_t *lo, *hi;
    size_t outside; /* bytes given from elsewhere */
} where_sink;

static int where_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    (void)e;
    where_sink *w = (where_sink *)s;
    if (n && !(p >= w->lo && p + n <= w->hi))
        w->outside += n;
    cs_buf_add(w->out, p, n);
    return 0;
}
static int where_close(cs_sink *s, cs_err *e)
{
    (void)s;
    (void)e;
    return 0;
}
static void where_free(cs_sink *s)
{
    free(s);
}
static const cs_sink_ops where_ops = { where_write, where_close, where_free };

static void store_block(cs_buf *b, size_t size, unsigned type, int last)
{
    uint32_t v = (uint32_t)size << 3 | type << 1 | (uint32_t)last;
    uint8_t h[3] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16) };
    cs_buf_add(b, h, 3);
}

static const uint8_t store_header[6] = { 0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38 };

/* Decode z in writes of cut bytes (SIZE_MAX: one write); the result code. */
static int decode_cut(const cs_buf *z, size_t cut, cs_buf *out, size_t *outside, cs_err *e)
{
    where_sink *w = cs_calloc(1, sizeof *w);
    w->base.ops = &where_ops;
    w->out = out;
    w->lo = (const uint8_t *)z->data;
    w->hi = (const uint8_t *)z->data + z->len;
    cs_sink *d = cs_zstd_decompress_new(&w->base, e);
    assert_non_null(d);
    int rc = 0;
    for (size_t off = 0; !rc && off < z->len; off += cut < z->len - off ? cut : z->len - off)
        rc = cs_sink_write(d, z->data + off, cut < z->len - off ? cut : z->len - off, e);
    if (!rc)
        rc = cs_sink_close(d, e);
    *outside = w->outside;
    cs_sink_free(d);
    return rc;
}

/* The decoder reads the store frames itself: their raw blocks go on where
 * they lie in the input (nothing copied), RLE blocks are spelled out, and
 * libzstd's frames before and after them are libzstd's; however the writes
 * cut the input, the same bytes come out. A store frame cut short anywhere
 * is truncated; a store header before a compressed or reserved block, or a
 * block larger than its window, is corrupt. */
static void test_zstd_store_decode(void **state)
{
    (void)state;
    const size_t B = 128 * 1024;
    size_t n = 8 * B + 1;
    uint8_t *data = make_data(n, 41);
    cs_buf z = CS_BUF_INIT, want = CS_BUF_INIT, lib = CS_BUF_INIT;
    cs_err e;
    cs_err_clear(&e);
    cs_sink *s = cs_zstd_compress_new(cs_buf_sink_new(&z, SIZE_MAX), CS_ZSTD_LEVEL_STORE, 0, &e);
    assert_int_equal(write_chunked(s, data, n, &e), 0);
    assert_int_equal(cs_sink_close(s, &e), 0);
    cs_sink_free(s);
    size_t store_len = z.len;
    cs_buf_add(&want, data, n);
    compress_to_buf(data, 5000, &lib); /* a libzstd frame, then a store frame with an RLE block */
    cs_buf_add(&z, lib.data, lib.len);
    cs_buf_add(&want, data, 5000);
    cs_buf_add(&z, store_header, 6);
    store_block(&z, 3, 0, 0);
    cs_buf_add(&z, "abc", 3);
    cs_buf_add(&want, "abc", 3);
    store_block(&z, 200000 % B, 1, 0);
    cs_buf_add(&z, "r", 1);
    for (size_t i = 0; i < 200000 % B; i++)
        cs_buf_add(&want, "r", 1);
    store_block(&z, 0, 0, 1);

    size_t cuts[] = { SIZE_MAX, 1, 2, 5, 6, 7, B - 1, B + 3, 65536 + 16 };
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        cs_buf out = CS_BUF_INIT;
        size_t outside = 0;
        cs_err_clear(&e);
        if (decode_cut(&z, cuts[c], &out, &outside, &e))
            fail_msg("cut %zu: %s", cuts[c], e.msg);
        assert_int_equal(out.len, want.len);
        assert_memory_equal(out.data, want.data, want.len);
        /* Only libzstd's frame and the RLE run were written from elsewhere. */
        assert_int_equal(outside, 5000 + 200000 % B);
        cs_buf_free(&out);
    }
    /* Cut short anywhere inside the store frame: truncated, never a short success. */
    for (size_t cut = 1; cut < store_len; cut += cut < 16 ? 1 : 65521) {
        cs_buf part = CS_BUF_INIT, out = CS_BUF_INIT;
        cs_buf_add(&part, z.data, cut);
        size_t outside = 0;
        cs_err_clear(&e);
        assert_int_equal(decode_cut(&part, 4096, &out, &outside, &e), CS_E_CORRUPT);
        assert_non_null(strstr(e.msg, "truncated"));
        cs_buf_free(&part);
        cs_buf_free(&out);
    }
    /* What a store frame may not hold. */
    struct { size_t size; unsigned type; const char *msg; } bad[] = {
        { 10, 2, "a compressed block in a frame of stored blocks" },
        { 10, 3, "a compressed block in a frame of stored blocks" },
        { B + 1, 0, "larger than its frame's window" },
        { B + 1, 1, "larger than its frame's window" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_buf b = CS_BUF_INIT, out = CS_BUF_INIT;
        cs_buf_add(&b, store_header, 6);
        store_block(&b, bad[i].size, bad[i].type, 1);
        for (size_t k = 0; k < 16; k++)
            cs_buf_add(&b, "x", 1);
        size_t outside = 0;
        cs_err_clear(&e);
        assert_int_equal(decode_cut(&b, SIZE_MAX, &out, &outside, &e), CS_E_CORRUPT);
        assert_non_null(strstr(e.msg, bad[i].msg));
        cs_buf_free(&b);
        cs_buf_free(&out);
    }
    cs_buf_free(&z);
    cs_buf_free(&want);
    cs_buf_free(&lib);
    free(data);
}

static void test_truncated_zstd(void **state)
{
    (void)state;
    cs_err e;
    size_t n = 300000;
    uint8_t *data = make_data(n, 5);
    cs_buf z = CS_BUF_INIT;
    compress_to_buf(data, n, &z);
    assert_true(z.len > 10);

    size_t cuts[] = { z.len - 1, z.len / 2, 4, 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        cs_err_clear(&e);
        cs_sink *d = cs_zstd_decompress_new(cs_null_sink_new(), &e);
        assert_int_equal(cs_sink_write(d, z.data, cuts[i], &e), 0);
        assert_int_equal(cs_sink_close(d, &e), CS_E_CORRUPT);
        assert_int_equal(e.code, CS_E_CORRUPT);
        assert_non_null(strstr(e.msg, "truncated zstd stream"));
        assert_false(d->closed);
        cs_sink_free(d);
    }

    /* No input at all is not a stream either. */
    cs_err_clear(&e);
    cs_sink *d = cs_zstd_decompress_new(cs_null_sink_new(), &e);
    assert_int_equal(cs_sink_close(d, &e), CS_E_CORRUPT);
    cs_sink_free(d);

    /* The whole thing is fine. */
    d = cs_zstd_decompress_new(cs_null_sink_new(), &e);
    assert_int_equal(write_chunked(d, (const uint8_t *)z.data, z.len, &e), 0);
    assert_int_equal(cs_sink_close(d, &e), 0);
    cs_sink_free(d);

    cs_buf_free(&z);
    free(data);
}

static void test_corrupt_zstd(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    const char garbage[] = "this is certainly not a zstd frame";
    cs_sink *d = cs_zstd_decompress_new(cs_null_sink_new(), &e);
    assert_int_equal(cs_sink_write(d, garbage, sizeof garbage, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "corrupt zstd stream"));
    /* It stays failed. */
    assert_int_equal(cs_sink_write(d, garbage, 1, &e), CS_E_CORRUPT);
    assert_int_equal(cs_sink_close(d, &e), CS_E_CORRUPT);
    cs_sink_free(d);

    /* A flipped byte inside the payload: the block decoder or the content
     * hash after it notices, at write or at close. */
    size_t n = 100000;
    uint8_t *data = make_data(n, 9);
    cs_buf z = CS_BUF_INIT;
    compress_to_buf(data, n, &z);
    z.data[z.len / 2] ^= 0x5a;
    cs_err_clear(&e);
    cs_hash_result want;
    cs_content_hash_bytes(data, n, &want);
    d = cs_zstd_decompress_new(cs_hash_verify_new(cs_null_sink_new(), want.id, n), &e);
    int rc = cs_sink_write(d, z.data, z.len, &e);
    if (rc == 0)
        rc = cs_sink_close(d, &e);
    assert_int_equal(rc, CS_E_CORRUPT);
    cs_sink_free(d);
    cs_buf_free(&z);
    free(data);
}

/* ---- frames with and without zstd's content checksum ---- */

static void new_frame(const uint8_t *data, size_t n, int level, cs_buf *out)
{
    cs_err e;
    cs_err_clear(&e);
    cs_sink *s = cs_zstd_compress_new(cs_buf_sink_new(out, SIZE_MAX), level, 0, &e);
    assert_non_null(s);
    assert_int_equal(write_chunked(s, data, n, &e), 0);
    assert_int_equal(cs_sink_close(s, &e), 0);
    cs_sink_free(s);
}

/* A frame of data as a cassette before issue 22 wrote it: with the XXH64
 * content checksum (libzstd's frames: ZSTD_c_checksumFlag 1; "store"
 * frames: descriptor bit 2 and the low 32 bits of XXH64 after the last
 * block). */
static void old_frame(const uint8_t *data, size_t n, int level, cs_buf *out)
{
    if (level != CS_ZSTD_LEVEL_STORE) {
        ZSTD_CCtx *c = ZSTD_createCCtx();
        assert_non_null(c);
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)));
        assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
        size_t cap = ZSTD_compressBound(n);
        cs_buf_reserve(out, cap);
        size_t r = ZSTD_compress2(c, out->data, cap, data, n);
        assert_false(ZSTD_isError(r));
        out->len = r;
        ZSTD_freeCCtx(c);
        return;
    }
    new_frame(data, n, level, out);
    out->data[4] |= 0x04;
    uint32_t sum = (uint32_t)XXH64(data, n, 0);
    for (int i = 0; i < 4; i++)
        cs_buf_addch(out, (char)(uint8_t)(sum >> (8 * i)));
}

/* What restore and verify --deep do with an object's bytes (ops/common.c,
 * cs_ops_fetch_object): zstd -d, then the plaintext checked against its
 * content hash and size. */
static int fetch_checked(const cs_buf *z, const cs_hash_result *want, cs_buf *back, cs_err *e)
{
    cs_err_clear(e);
    cs_sink *s = cs_zstd_decompress_new(cs_hash_verify_new(cs_buf_sink_new(back, SIZE_MAX), want->id, want->bytes), e);
    assert_non_null(s);
    int rc = write_chunked(s, (const uint8_t *)z->data, z->len, e);
    if (!rc)
        rc = cs_sink_close(s, e);
    cs_sink_free(s);
    return rc;
}

/* New frames have no checksum, old ones have one; the zstd CLI's decoder
 * (libzstd's one-shot, checksum checked) reads both, and so does the
 * object reader, which checks the content hash. A flipped content byte
 * in an old frame is caught by the content hash (the frame's checksum is
 * not what catches it any more: in a raw block nothing else would); a
 * flipped checksum byte alone damages nothing the manifest vouches for. */
static void test_frame_checksums(void **state)
{
    (void)state;
    const int levels[] = { CS_ZSTD_LEVEL_STORE, 1, 3 };
    const size_t sizes[] = { 0, 1, 128 * 1024, 300000 };
    for (size_t li = 0; li < sizeof levels / sizeof levels[0]; li++) {
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            int level = levels[li];
            uint8_t *data = make_data(n, (uint32_t)(li * 10 + si));
            cs_hash_result want;
            cs_content_hash_bytes(data, n, &want);
            for (int old = 0; old < 2; old++) {
                cs_buf z = CS_BUF_INIT, back = CS_BUF_INIT;
                cs_err e;
                if (old)
                    old_frame(data, n, level, &z);
                else
                    new_frame(data, n, level, &z);
                assert_int_equal(z.data[4] & 0x04, old ? 0x04 : 0);
                assert_one_shot(&z, data, n);
                if (fetch_checked(&z, &want, &back, &e))
                    fail_msg("level %d, %zu bytes, old %d: %s", level, n, old, e.msg);
                assert_int_equal(back.len, n);
                if (n)
                    assert_memory_equal(back.data, data, n);

                if (old) { /* the checksum's own bytes: not checked */
                    z.data[z.len - 2] ^= 0x10;
                    back.len = 0;
                    assert_int_equal(fetch_checked(&z, &want, &back, &e), 0);
                    z.data[z.len - 2] ^= 0x10;
                }
                if (n && level == CS_ZSTD_LEVEL_STORE) {
                    z.data[6 + 3 + n / 2] ^= 1; /* a content byte of the first raw block */
                    back.len = 0;
                    assert_int_equal(fetch_checked(&z, &want, &back, &e), CS_E_CORRUPT);
                    assert_non_null(strstr(e.msg, "content hash mismatch"));
                    if (old) { /* the frame's checksum does say so, to a decoder that checks it */
                        uint8_t *again = malloc(n);
                        assert_true(ZSTD_isError(ZSTD_decompress(again, n, z.data, z.len)));
                        free(again);
                    }
                } else if (n > 1000) {
                    z.data[z.len / 2] ^= 0x5a; /* somewhere in a compressed block */
                    back.len = 0;
                    assert_int_equal(fetch_checked(&z, &want, &back, &e), CS_E_CORRUPT);
                }
                cs_buf_free(&back);
                cs_buf_free(&z);
            }
            free(data);
        }
    }
}

static void test_concatenated_frames(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_buf z = CS_BUF_INIT, out = CS_BUF_INIT;
    compress_to_buf("hello ", 6, &z);
    compress_to_buf("", 0, &z);
    compress_to_buf("world", 5, &z);
    cs_sink *d = cs_zstd_decompress_new(cs_buf_sink_new(&out, 100), &e);
    assert_int_equal(write_chunked(d, (const uint8_t *)z.data, z.len, &e), 0);
    assert_int_equal(cs_sink_close(d, &e), 0);
    cs_sink_free(d);
    assert_string_equal(cs_buf_str(&out), "hello world");
    cs_buf_free(&z);
    cs_buf_free(&out);
}

static void test_file_sink_abort(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    char *path = cs_path_join(f->dir, "aborted");
    cs_sink *s = cs_zstd_compress_new(cs_file_sink_new(path, 0600, &e), 3, 0, &e);
    assert_non_null(s);
    assert_int_equal(cs_sink_write(s, "some bytes", 10, &e), 0);
    assert_int_equal(count_entries(f->dir), 1);
    cs_sink_free(s);
    assert_int_equal(count_entries(f->dir), 0);
    assert_false(cs_exists(path));

    /* A file sink over an existing file leaves it alone when aborted. */
    assert_int_equal(cs_write_file_atomic(path, "old", 3, 0600, &e), 0);
    s = cs_file_sink_new(path, 0600, &e);
    assert_int_equal(cs_sink_write(s, "new", 3, &e), 0);
    cs_sink_free(s);
    char *content = NULL;
    size_t len = 0;
    assert_int_equal(cs_read_file(path, 100, &content, &len, &e), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(content, "old", 3);
    free(content);
    assert_int_equal(count_entries(f->dir), 1);

    /* A missing directory fails at creation. */
    char *bad = cs_path_join(f->dir, "no/such/dir/file");
    cs_err_clear(&e);
    assert_null(cs_file_sink_new(bad, 0600, &e));
    assert_int_equal(e.code, CS_E_IO);
    assert_non_null(strstr(e.msg, "no/such/dir/file.partial"));
    free(bad);
    free(path);
}

/* The tee writes to its side (borrowed: never closed or freed) and to next. */
static void test_tee(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_buf side_buf = CS_BUF_INIT, next_buf = CS_BUF_INIT;
    cs_sink *side = cs_buf_sink_new(&side_buf, 100);
    for (int round = 0; round < 2; round++) { /* one side, two tees in turn (a pack's members) */
        cs_sink *t = cs_tee_new(side, cs_buf_sink_new(&next_buf, 100));
        assert_int_equal(cs_sink_write(t, "ab", 2, &e), 0);
        assert_int_equal(cs_sink_write(t, "c", 1, &e), 0);
        assert_int_equal(cs_sink_close(t, &e), 0);
        cs_sink_free(t);
        assert_int_equal(side->closed, 0);
    }
    assert_string_equal(cs_buf_str(&side_buf), "abcabc");
    assert_string_equal(cs_buf_str(&next_buf), "abcabc");
    cs_sink *lend = cs_tee_new(side, NULL); /* only lends side */
    assert_int_equal(cs_sink_write(lend, "d", 1, &e), 0);
    assert_int_equal(cs_sink_close(lend, &e), 0);
    cs_sink_free(lend);
    assert_string_equal(cs_buf_str(&side_buf), "abcabcd");
    /* A failure of the side stops the write. */
    cs_sink *small = cs_buf_sink_new(&side_buf, 2);
    cs_sink *t = cs_tee_new(small, cs_buf_sink_new(&next_buf, 100));
    assert_int_equal(cs_sink_write(t, "xyz", 3, &e), CS_E_INVAL);
    assert_string_equal(cs_buf_str(&next_buf), "abcabc");
    cs_sink_free(t);
    cs_sink_free(small);
    cs_sink_free(side);
    cs_buf_free(&side_buf);
    cs_buf_free(&next_buf);
}

/* Close the split sink, compare its three outs' buffers with want, free all. */
static void close_split(cs_sink *sp, cs_buf b[3], const char *const want[3])
{
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_sink_close(sp, &e), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(cs_buf_str(&b[i]), want[i]);
        cs_buf_free(&b[i]);
    }
    cs_sink_free(sp);
}

/* The split sink gives each range its bytes whatever the writes' sizes,
 * closes each out as its range ends, and fails when the stream ends early. */
static void test_split(void **state)
{
    (void)state;
    static const char stream[] = "0123456789abcdefghij";
    const size_t len = sizeof stream - 1;
    for (size_t cut = 1; cut <= len; cut++) {
        cs_err e;
        cs_err_clear(&e);
        cs_buf b[3] = { CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT };
        cs_split_range r[3] = {
            { 2, 3, cs_buf_sink_new(&b[0], 100), "first" },
            { 5, 4, cs_buf_sink_new(&b[1], 100), "second" },
            { 12, 8, cs_buf_sink_new(&b[2], 100), "third" },
        };
        cs_sink *outs[3] = { r[0].out, r[1].out, r[2].out };
        cs_sink *sp = cs_split_new(r, 3, &e);
        assert_non_null(sp);
        for (size_t at = 0; at < len; at += cut) {
            size_t n = len - at < cut ? len - at : cut;
            assert_int_equal(cs_sink_write(sp, stream + at, n, &e), 0);
            /* Each out is closed once the stream has passed its end. */
            assert_int_equal(outs[0]->closed, at + n >= 5);
            assert_int_equal(outs[1]->closed, at + n >= 9);
            assert_int_equal(outs[2]->closed, at + n >= 20);
        }
        close_split(sp, b, (const char *const[]){ "234", "5678", "cdefghij" });
    }

    /* The stream ends inside a range: close names it. */
    cs_err e;
    cs_err_clear(&e);
    cs_buf b = CS_BUF_INIT;
    cs_split_range one = { 4, 10, cs_buf_sink_new(&b, 100), "nb-1-big-Index.db" };
    cs_sink *sp = cs_split_new(&one, 1, &e);
    assert_int_equal(cs_sink_write(sp, stream, 8, &e), 0);
    assert_int_equal(cs_sink_close(sp, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "nb-1-big-Index.db"));
    assert_string_equal(cs_buf_str(&b), "4567");
    cs_sink_free(sp);
    cs_buf_free(&b);

    /* An out's failure is the write's, with its name. */
    cs_err_clear(&e);
    cs_split_range tiny = { 0, 10, cs_buf_sink_new(&b, 3), "nb-1-big-TOC.txt" };
    sp = cs_split_new(&tiny, 1, &e);
    assert_int_equal(cs_sink_write(sp, stream, 10, &e), CS_E_INVAL);
    assert_non_null(strstr(e.msg, "nb-1-big-TOC.txt"));
    cs_sink_free(sp);
    cs_buf_free(&b);

    /* Ranges that overlap: each gets its bytes (a frame two files of one content share). */
    for (size_t cut = 1; cut <= len; cut++) {
        cs_err_clear(&e);
        cs_buf o[3] = { CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT };
        cs_split_range same[3] = { { 3, 4, cs_buf_sink_new(&o[0], 100), "a" },
                                   { 3, 4, cs_buf_sink_new(&o[1], 100), "b" },
                                   { 5, 6, cs_buf_sink_new(&o[2], 100), "c" } };
        sp = cs_split_new(same, 3, &e);
        assert_non_null(sp);
        for (size_t at = 0; at < len; at += cut)
            assert_int_equal(cs_sink_write(sp, stream + at, len - at < cut ? len - at : cut, &e), 0);
        close_split(sp, o, (const char *const[]){ "3456", "3456", "56789a" });
    }

    /* Unsorted or empty ranges are refused (the outs freed). */
    static const uint64_t bad[][4] = { { 6, 2, 0, 2 }, { 0, 0, 4, 2 }, { UINT64_MAX, 2, 0, 0 } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cs_err_clear(&e);
        cs_split_range two[2] = { { bad[i][0], bad[i][1], cs_null_sink_new(), "a" },
                                  { bad[i][2], bad[i][3], cs_null_sink_new(), "b" } };
        assert_null(cs_split_new(two, bad[i][3] ? 2 : 1, &e));
        if (!bad[i][3])
            cs_sink_free(two[1].out);
        assert_int_equal(e.code, CS_E_CORRUPT);
    }

    /* No range: everything is dropped. */
    cs_err_clear(&e);
    sp = cs_split_new(NULL, 0, &e);
    assert_non_null(sp);
    assert_int_equal(cs_sink_write(sp, stream, len, &e), 0);
    assert_int_equal(cs_sink_close(sp, &e), 0);
    cs_sink_free(sp);
}

static void test_buf_null_count(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_buf b = CS_BUF_INIT;
    cs_sink *s = cs_buf_sink_new(&b, 5);
    assert_int_equal(cs_sink_write(s, "abc", 3, &e), 0);
    assert_int_equal(cs_sink_write(s, "de", 2, &e), 0);
    assert_int_equal(cs_sink_write(s, "f", 1, &e), CS_E_INVAL);
    assert_int_equal(e.code, CS_E_INVAL);
    assert_string_equal(cs_buf_str(&b), "abcde");
    assert_int_equal(cs_sink_close(s, &e), 0);
    assert_int_equal(cs_sink_write(s, "x", 1, &e), CS_E_INVAL); /* after close */
    cs_sink_free(s);
    cs_buf_free(&b);

    uint64_t count = 99;
    s = cs_count_filter_new(cs_null_sink_new(), &count);
    assert_int_equal(count, 0);
    assert_int_equal(cs_sink_write(s, "abc", 3, &e), 0);
    assert_int_equal(count, 3);
    assert_int_equal(cs_sink_write(s, "defg", 4, &e), 0);
    assert_int_equal(count, 7);
    assert_int_equal(cs_sink_close(s, &e), 0);
    assert_int_equal(cs_sink_close(s, &e), 0); /* closing twice is harmless */
    cs_sink_free(s);
    cs_sink_free(NULL);

    /* A bad level fails and frees next (the leak checkers would see it). */
    cs_err_clear(&e);
    assert_null(cs_zstd_compress_new(cs_null_sink_new(), 0, 0, &e));
    assert_int_equal(e.code, CS_E_INVAL);
    assert_null(cs_zstd_compress_new(cs_null_sink_new(), 20, 0, &e));
    assert_null(cs_zstd_compress_new(cs_null_sink_new(), CS_ZSTD_LEVEL_STORE - 1, 0, &e));
    assert_null(cs_zstd_compress_new(NULL, 3, 0, &e));
    assert_null(cs_zstd_decompress_new(NULL, &e));
}

/* A verifying hash stops at the first byte beyond the expected size: a
 * small object that decompresses to much more never fills a disk. */
/* The progress filter counts what passes into the job, and is a cancel
 * safe point: nothing more passes once the job is asked to stop. */
static void test_progress_filter(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    cs_job *job = cs_job_new("backup", NULL);
    cs_job_phase(job, "upload", 1, 7);
    cs_buf b = CS_BUF_INIT;
    cs_sink *s = cs_progress_filter_new(cs_buf_sink_new(&b, 100), job);
    assert_int_equal(cs_sink_write(s, "abc", 3, &e), 0);
    assert_int_equal(cs_sink_write(s, "defg", 4, &e), 0);
    cs_progress p;
    cs_job_progress(job, &p);
    assert_int_equal(p.bytes_done, 7);
    assert_string_equal(cs_buf_str(&b), "abcdefg");
    cs_job_cancel(job);
    assert_int_equal(cs_sink_write(s, "h", 1, &e), CS_E_CANCELED);
    assert_string_equal(cs_buf_str(&b), "abcdefg");
    cs_job_progress(job, &p);
    assert_int_equal(p.bytes_done, 7);
    /* A failure downstream is not counted. */
    cs_job *other = cs_job_new("restore", NULL);
    cs_sink *full = cs_progress_filter_new(cs_buf_sink_new(&b, 1), other);
    assert_int_equal(cs_sink_write(full, "xy", 2, &e), CS_E_INVAL);
    cs_job_progress(other, &p);
    assert_int_equal(p.bytes_done, 0);
    /* No job: bytes pass, nothing is counted. */
    cs_sink *none = cs_progress_filter_new(cs_null_sink_new(), NULL);
    assert_int_equal(cs_sink_write(none, "z", 1, &e), 0);
    assert_int_equal(cs_sink_close(none, &e), 0);
    cs_sink_free(none);
    cs_sink_free(full);
    cs_sink_free(s);
    cs_buf_free(&b);
    cs_job_free(other);
    cs_job_free(job);
}

static void test_hash_verify_stops_at_excess(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    uint64_t count = 0;
    cs_sink *s = cs_hash_verify_new(cs_count_filter_new(cs_null_sink_new(), &count), ABC_HASH, 3);
    assert_int_equal(cs_sink_write(s, "ab", 2, &e), 0);
    assert_int_equal(cs_sink_write(s, "cd", 2, &e), CS_E_CORRUPT);
    assert_non_null(strstr(e.msg, "more than the 3 bytes"));
    assert_int_equal(count, 2); /* nothing of the excess went on */
    cs_sink_free(s);

    s = cs_hash_verify_new(cs_null_sink_new(), ABC_HASH, 3);
    assert_int_equal(cs_sink_write(s, "abc", 3, &e), 0);
    assert_int_equal(cs_sink_close(s, &e), 0);
    cs_sink_free(s);
}

static void test_pump_errors(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    /* A failing sink stops the pump with its error. */
    char *path = cs_path_join(f->dir, "in");
    uint8_t *data = make_data(3000000, 3);
    assert_int_equal(cs_write_file_atomic(path, data, 3000000, 0600, &e), 0);
    int fd = open(path, O_RDONLY);
    cs_buf b = CS_BUF_INIT;
    cs_sink *s = cs_buf_sink_new(&b, 1000);
    uint64_t n = 0;
    assert_int_equal(cs_pump_fd(fd, s, &n, &e), CS_E_INVAL);
    close(fd);
    cs_sink_free(s);
    cs_buf_free(&b);
    /* Reading a directory fails with an I/O error. */
    fd = open(f->dir, O_RDONLY | O_DIRECTORY);
    s = cs_null_sink_new();
    assert_int_equal(cs_pump_fd(fd, s, NULL, &e), CS_E_IO);
    close(fd);
    cs_sink_free(s);
    free(data);
    free(path);
}

/* The pump reads a small file with a buffer sized to it (io_chunk_size):
 * every size around the aligned block edges and IO_CHUNK comes through
 * whole, read with direct I/O (cs_open_stream) where the file system has it. */
static void test_pump_sizes(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    static const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 8191, 65536, (1u << 20) - 1, 1u << 20,
                                    (1u << 20) + 1, (3u << 20) + 5 };
    char *path = cs_path_join(f->dir, "in");
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        uint8_t *data = make_data(n, (uint32_t)n);
        assert_int_equal(cs_write_file_atomic(path, data, n, 0600, &e), 0);
        int fd = cs_open_stream(path, &e);
        assert_true(fd >= 0);
        cs_buf b = CS_BUF_INIT;
        cs_sink *s = cs_buf_sink_new(&b, SIZE_MAX);
        uint64_t nread = 0;
        if (cs_pump_fd(fd, s, &nread, &e))
            fail_msg("pump of %zu bytes: %s", n, e.msg);
        close(fd);
        assert_int_equal(nread, n);
        assert_int_equal(b.len, n);
        if (n)
            assert_memory_equal(b.data, data, n);
        cs_sink_free(s);
        cs_buf_free(&b);
        free(data);
    }
    free(path);
}

/* A sink that appends to a file the first time it is written to: the file
 * grows while the pump reads it. */
typedef struct grow_sink {
    cs_sink base;
    cs_buf *out;
    const char *path;
    const uint8_t *more;
    size_t more_n;
} grow_sink;

static int grow_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    (void)e;
    grow_sink *g = (grow_sink *)s;
    cs_buf_add(g->out, p, n);
    if (g->more) {
        FILE *fp = fopen(g->path, "ab");
        assert_non_null(fp);
        assert_int_equal(fwrite(g->more, 1, g->more_n, fp), g->more_n);
        fclose(fp);
        g->more = NULL;
    }
    return 0;
}
static const cs_sink_ops grow_ops = { grow_write, where_close, where_free };

/* A file that grows after the pump sized its buffer is still read whole. */
static void test_pump_growing_file(void **state)
{
    fixture *f = *state;
    cs_err e;
    cs_err_clear(&e);
    uint8_t *data = make_data(300000, 11);
    char *path = cs_path_join(f->dir, "grows");
    assert_int_equal(cs_write_file_atomic(path, data, 5000, 0600, &e), 0);
    int fd = open(path, O_RDONLY); /* through the page cache: the appends show at once */
    assert_true(fd >= 0);
    cs_buf b = CS_BUF_INIT;
    grow_sink *g = calloc(1, sizeof *g);
    *g = (grow_sink){ .base.ops = &grow_ops, .out = &b, .path = path, .more = data + 5000, .more_n = 300000 - 5000 };
    uint64_t nread = 0;
    assert_int_equal(cs_pump_fd(fd, &g->base, &nread, &e), 0);
    close(fd);
    assert_int_equal(nread, 300000);
    assert_int_equal(b.len, 300000);
    assert_memory_equal(b.data, data, 300000);
    cs_sink_free(&g->base);
    cs_buf_free(&b);
    free(path);
    free(data);
}

/* zstd's size hint: frames of small input get a window no larger than it
 * needs; input larger or smaller than the hint is compressed whole. */
static void test_zstd_size_hint(void **state)
{
    (void)state;
    cs_err e;
    cs_err_clear(&e);
    static const struct { size_t n; uint64_t hint; } cases[] = {
        { 4000, 4000 }, { 4000, 0 }, { 300000, 4000 }, { 4000, 1u << 20 }, { 0, 4000 }, { 2000000, 2000000 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].n;
        uint8_t *data = make_data(n, (uint32_t)i + 5);
        cs_buf z = CS_BUF_INIT, back = CS_BUF_INIT;
        cs_sink *s = cs_zstd_compress_new(cs_buf_sink_new(&z, SIZE_MAX), 1, cases[i].hint, &e);
        assert_non_null(s);
        assert_int_equal(write_chunked(s, data, n, &e), 0);
        assert_int_equal(cs_sink_close(s, &e), 0);
        cs_sink_free(s);
        ZSTD_frameHeader h;
        assert_int_equal(ZSTD_getFrameHeader(&h, z.data, z.len), 0);
        if (cases[i].hint == 4000 && n <= 4000)
            assert_true(h.windowSize <= 4096); /* level 1's default: 512 KiB */
        cs_sink *d = cs_zstd_decompress_new(cs_buf_sink_new(&back, SIZE_MAX), &e);
        assert_int_equal(cs_sink_write(d, z.data, z.len, &e), 0);
        assert_int_equal(cs_sink_close(d, &e), 0);
        cs_sink_free(d);
        assert_int_equal(back.len, n);
        if (n)
            assert_memory_equal(back.data, data, n);
        cs_buf_free(&z);
        cs_buf_free(&back);
        free(data);
    }
}

/* No size hint makes libzstd write the header of a "store" frame (a 2^17
 * window, no checksum, no content size), which every decoder of ours reads
 * as stored blocks and then refuses: sizes at every power-of-two edge, at
 * the levels a backup may use; each frame reads back whole, through our
 * decoder and through libzstd's. */
static void test_zstd_hint_never_store_header(void **state)
{
    (void)state;
    static const int levels[] = { -5, -1, 1, 2, 3, 6, 9, 19 };
    uint8_t *data = make_data(300000, 9);
    for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
        for (unsigned k = 0; k <= 21; k++) {
            for (int d = -1; d <= 1; d++) {
                uint64_t hint = ((uint64_t)1 << k) + (uint64_t)(int64_t)d;
                if (hint == 0)
                    continue;
                size_t n = hint < 300000 ? (size_t)hint : 300000;
                cs_err e;
                cs_err_clear(&e);
                cs_buf z = CS_BUF_INIT, back = CS_BUF_INIT;
                cs_sink *s = cs_zstd_compress_new(cs_buf_sink_new(&z, SIZE_MAX), levels[l], hint, &e);
                assert_non_null(s);
                if (cs_sink_write(s, data, n, &e) || cs_sink_close(s, &e))
                    fail_msg("level %d, hint %llu: %s", levels[l], (unsigned long long)hint, e.msg);
                cs_sink_free(s);
                assert_true(z.len >= sizeof store_header);
                if (!memcmp(z.data, store_header, sizeof store_header))
                    fail_msg("level %d, hint %llu: a store frame's header", levels[l], (unsigned long long)hint);
                cs_sink *dz = cs_zstd_decompress_new(cs_buf_sink_new(&back, SIZE_MAX), &e);
                if (cs_sink_write(dz, z.data, z.len, &e) || cs_sink_close(dz, &e))
                    fail_msg("level %d, hint %llu: read back: %s", levels[l], (unsigned long long)hint, e.msg);
                cs_sink_free(dz);
                assert_int_equal(back.len, n);
                assert_memory_equal(back.data, data, n);
                uint8_t *lib = malloc(n + 1);
                assert_int_equal(ZSTD_decompress(lib, n + 1, z.data, z.len), n);
                assert_memory_equal(lib, data, n);
                free(lib);
                cs_buf_free(&z);
                cs_buf_free(&back);
            }
        }
    }
    free(data);
}

/* Pages of path from byte 256 KiB on in the page cache (mincore), without
 * reading them. Not the first ones: valgrind reads a mapped file's start. */
#define RESIDENT_FROM ((size_t)256 << 10)
static size_t resident_pages(const char *path, size_t n)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0 && n > RESIDENT_FROM);
    size_t len = n - RESIDENT_FROM, page = (size_t)sysconf(_SC_PAGESIZE), resident = 0;
    size_t pages = (len + page - 1) / page;
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)RESIDENT_FROM);
    assert_true(map != MAP_FAILED);
    unsigned char *vec = malloc(pages);
    assert_int_equal(mincore(map, len, vec), 0);
    for (size_t i = 0; i < pages; i++)
        resident += vec[i] & 1;
    free(vec);
    munmap(map, len);
    close(fd);
    return resident;
}

/* CS_FILE_DIRECT writes exactly the bytes given, whatever their sizes: in
 * uneven pieces or in one write, a file of no, less than one, exactly one
 * and more than one block, and several buffers and an odd tail. */
static void direct_sizes(const char *dir, bool direct_io)
{
    static const size_t sizes[] = { 0, 1, 4095, 4096, 4097, (1u << 20), (3u << 20) + 12345, (2u << 20) + 4096 };
    char *path = cs_path_join(dir, "direct");
    char *partial = cs_sprintf("%s.partial", path);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int whole = 0; whole < 2; whole++) {
            cs_err e;
            cs_err_clear(&e);
            size_t n = sizes[i];
            uint8_t *data = make_data(n, (uint32_t)(n + 5));
            cs_sink *s = cs_file_sink_open(path, 0600, CS_FILE_DIRECT | CS_FILE_NO_DIR_SYNC, &e);
            assert_non_null(s);
            assert_int_equal(whole ? cs_sink_write(s, data, n, &e) : write_chunked(s, data, n, &e), 0);
            assert_false(cs_exists(path));
            assert_int_equal(cs_sink_close(s, &e), 0);
            cs_sink_free(s);
            assert_false(cs_exists(partial));
            /* The whole blocks went around the page cache (where the file
             * system does direct I/O): at most the tail's page is there. */
            if (direct_io && n > RESIDENT_FROM)
                assert_true(resident_pages(path, n) <= 1);
            char *back = NULL;
            size_t len = 0;
            assert_int_equal(cs_read_file(path, n + 1, &back, &len, &e), 0);
            assert_int_equal(len, n);
            if (n)
                assert_memory_equal(back, data, n);
            free(back);
            free(data);
            assert_int_equal(unlink(path), 0);
        }
    /* Aborted: the partial file goes, as without the flag. */
    cs_err e;
    cs_err_clear(&e);
    cs_sink *s = cs_file_sink_open(path, 0600, CS_FILE_DIRECT, &e);
    uint8_t *data = make_data(5000000, 9);
    assert_int_equal(cs_sink_write(s, data, 5000000, &e), 0);
    assert_true(cs_exists(partial));
    cs_sink_free(s);
    assert_false(cs_exists(partial));
    assert_false(cs_exists(path));
    free(data);
    free(partial);
    free(path);
}

static void test_file_sink_direct(void **state)
{
    fixture *f = *state;
    struct statfs fs;
    assert_int_equal(statfs(f->dir, &fs), 0);
    /* ext4 and XFS write O_DIRECT around the page cache (/tmp on the test
     * machines); elsewhere only the bytes are checked. */
    direct_sizes(f->dir, fs.f_type == EXT4_SUPER_MAGIC || fs.f_type == XFS_SUPER_MAGIC);
    /* tmpfs: no direct I/O (older kernels refuse O_DIRECT), the page cache. */
    char shm[] = "/dev/shm/cassette-test-io-XXXXXX";
    assert_non_null(mkdtemp(shm));
    direct_sizes(shm, false);
    cs_err e;
    cs_err_clear(&e);
    assert_int_equal(cs_remove_tree(shm, &e), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_zstd_store_frame),
        cmocka_unit_test(test_zstd_store_cuts),
        cmocka_unit_test(test_zstd_store_decode),
        cmocka_unit_test(test_content_hash_forms),
        cmocka_unit_test(test_hash_verify_kinds),
        cmocka_unit_test_setup_teardown(test_roundtrip_sizes, setup, teardown),
        cmocka_unit_test(test_truncated_zstd),
        cmocka_unit_test(test_corrupt_zstd),
        cmocka_unit_test(test_concatenated_frames),
        cmocka_unit_test(test_frame_checksums),
        cmocka_unit_test_setup_teardown(test_file_sink_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_sink_direct, setup, teardown),
        cmocka_unit_test(test_buf_null_count),
        cmocka_unit_test(test_tee),
        cmocka_unit_test(test_split),
        cmocka_unit_test_setup_teardown(test_pump_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pump_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pump_growing_file, setup, teardown),
        cmocka_unit_test(test_zstd_size_hint),
        cmocka_unit_test(test_zstd_hint_never_store_header),
        cmocka_unit_test(test_hash_verify_stops_at_excess),
        cmocka_unit_test(test_progress_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
