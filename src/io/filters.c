/* filters.c - hash, count and zstd filters of the byte pipeline. */
#include "io/filters.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
/* ZSTD_d_forceIgnoreChecksum and ZSTD_c_srcSizeHint are "experimental"
 * parameters of libzstd (>= 1.4.7; Debian 12 has 1.5.4): values of the
 * stable ZSTD_[CD]Ctx_setParameter, which a libzstd without them refuses
 * (see cs_zstd_decompress_new and cs_zstd_compress_new). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "common/cancel.h"
#include "crypto/sha256.h"

#define ZSTD_LEVEL_MIN CS_ZSTD_LEVEL_STORE
#define ZSTD_LEVEL_MAX 19

static void sodium_ready(void)
{
    /* Safe to call repeatedly and from several threads; it only fails when
     * the system has no randomness source, which hashing does not need. */
    if (sodium_init() < 0) {
        fputs("cassette: cannot initialise libsodium\n", stderr);
        abort();
    }
}

/* ---- hash --------------------------------------------------------------- */

bool cs_content_hash_parse(const char *s, cs_hash_alg *alg)
{
    if (!s)
        return false;
    cs_hash_alg a = CS_HASH_BLAKE2B;
    size_t tag = strlen(CS_CONTENT_HASH_TAG);
    if (!strncmp(s, CS_CONTENT_HASH_TAG, tag)) {
        a = CS_HASH_SHA256;
        s += tag;
    }
    if (!cs_is_lower_hex(s, CS_HASH_HEX - 1))
        return false;
    if (alg)
        *alg = a;
    return true;
}

/* The recorded form of a digest of alg (see CS_CONTENT_HASH_TAG). */
static void content_id(cs_hash_alg alg, const char *hex, char id[CS_CONTENT_HASH_LEN])
{
    snprintf(id, CS_CONTENT_HASH_LEN, "%s%s", alg == CS_HASH_SHA256 ? CS_CONTENT_HASH_TAG : "", hex);
}

_Static_assert(CS_HASH_BYTES == CS_SHA256_BYTES, "the content hash is a SHA-256");

typedef struct hash_filter {
    crypto_generichash_state st; /* BLAKE2b; needs 64-byte alignment: keep it first */
    cs_sha256_ctx sha;           /* SHA-256 */
    cs_hash_alg alg;
    cs_sink base;
    cs_sink *next;
    cs_hash_result *out;
    uint64_t bytes;
    bool check;                     /* compare against the expectation below */
    bool expect_known;              /* the expectation is of a known form */
    char expect_id[CS_CONTENT_HASH_LEN];
    uint64_t expect_size;
} hash_filter;

static hash_filter *hash_of(cs_sink *s)
{
    return (hash_filter *)(void *)((char *)s - offsetof(hash_filter, base));
}

static int hash_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    hash_filter *h = hash_of(s);
    /* More than expected is damage already: stop before it fills a disk
     * (a small object can decompress to far more than its file was). */
    if (h->check && n > h->expect_size - h->bytes)
        return cs_err_set(e, CS_E_CORRUPT, "content is more than the %llu bytes expected",
                          (unsigned long long)h->expect_size);
    if (h->alg == CS_HASH_SHA256)
        cs_sha256_update(&h->sha, p, n);
    else
        crypto_generichash_update(&h->st, p, n);
    h->bytes += n;
    return h->next ? cs_sink_write(h->next, p, n, e) : 0;
}

static int hash_close(cs_sink *s, cs_err *e)
{
    hash_filter *h = hash_of(s);
    uint8_t digest[CS_HASH_BYTES];
    /* Finalising twice is not allowed: work on a copy so a failed close of
     * next can be retried without corrupting the state. */
    if (h->alg == CS_HASH_SHA256) {
        cs_sha256_digest(&h->sha, digest);
    } else {
        crypto_generichash_state copy = h->st;
        crypto_generichash_final(&copy, digest, sizeof digest);
    }
    char hex[CS_HASH_HEX], id[CS_CONTENT_HASH_LEN];
    cs_hex(digest, sizeof digest, hex);
    content_id(h->alg, hex, id);
    if (h->check) {
        /* Fail before next is closed: nothing unchecked is committed. */
        if (!h->expect_known)
            return cs_err_set(e, CS_E_CORRUPT, "the expected content hash is of no known form");
        if (h->bytes != h->expect_size)
            return cs_err_set(e, CS_E_CORRUPT, "content is %llu bytes, expected %llu",
                              (unsigned long long)h->bytes, (unsigned long long)h->expect_size);
        if (strcmp(id, h->expect_id))
            return cs_err_set(e, CS_E_CORRUPT, "content hash mismatch");
    }
    if (h->next) {
        int rc = cs_sink_close(h->next, e);
        if (rc)
            return rc;
    }
    if (h->out) {
        memcpy(h->out->digest, digest, sizeof digest);
        memcpy(h->out->hex, hex, sizeof hex);
        memcpy(h->out->id, id, sizeof id);
        h->out->bytes = h->bytes;
    }
    return 0;
}

static void hash_free(cs_sink *s)
{
    hash_filter *h = hash_of(s);
    cs_sink_free(h->next);
    cs_sha256_free(&h->sha);
    sodium_memzero(&h->st, sizeof h->st);
    free(h);
}

static const cs_sink_ops hash_ops = { hash_write, hash_close, hash_free };

static cs_sink *hash_new(cs_sink *next, cs_hash_alg alg, cs_hash_result *out)
{
    sodium_ready();
    hash_filter *h = cs_aligned_zalloc(_Alignof(hash_filter), sizeof(hash_filter));
    h->alg = alg;
    if (alg == CS_HASH_SHA256)
        cs_sha256_init(&h->sha);
    else
        crypto_generichash_init(&h->st, NULL, 0, CS_HASH_BYTES);
    h->base.ops = &hash_ops;
    h->next = next;
    h->out = out;
    return &h->base;
}

cs_sink *cs_hash_filter_new(cs_sink *next, cs_hash_result *out)
{
    return hash_new(next, CS_HASH_SHA256, out);
}

cs_sink *cs_hash_verify_new(cs_sink *next, const char *expected_id, uint64_t expected_size)
{
    cs_hash_alg alg = CS_HASH_SHA256;
    bool known = cs_content_hash_parse(expected_id, &alg);
    cs_sink *s = hash_new(next, alg, NULL);
    hash_filter *h = hash_of(s);
    h->check = true;
    h->expect_known = known;
    if (known)
        snprintf(h->expect_id, sizeof h->expect_id, "%s", expected_id);
    h->expect_size = expected_size;
    return s;
}

void cs_hash_bytes(const void *p, size_t n, cs_hash_result *out)
{
    sodium_ready();
    crypto_generichash(out->digest, CS_HASH_BYTES, p, n, NULL, 0);
    cs_hex(out->digest, CS_HASH_BYTES, out->hex);
    content_id(CS_HASH_BLAKE2B, out->hex, out->id);
    out->bytes = n;
}

void cs_content_hash_bytes(const void *p, size_t n, cs_hash_result *out)
{
    cs_sha256(p, n, out->digest);
    cs_hex(out->digest, CS_HASH_BYTES, out->hex);
    content_id(CS_HASH_SHA256, out->hex, out->id);
    out->bytes = n;
}

/* ---- count -------------------------------------------------------------- */

typedef struct count_filter {
    cs_sink base;
    cs_sink *next;
    uint64_t *count;
} count_filter;

static int count_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    count_filter *c = (count_filter *)s;
    *c->count += n;
    return c->next ? cs_sink_write(c->next, p, n, e) : 0;
}

/* Gathered writes pass through as they are (zstd store -> count -> age). */
static int count_writev(cs_sink *s, const cs_iov *v, size_t n, cs_err *e)
{
    count_filter *c = (count_filter *)s;
    for (size_t i = 0; i < n; i++)
        *c->count += v[i].n;
    return c->next ? cs_sink_writev(c->next, v, n, e) : 0;
}

static int count_close(cs_sink *s, cs_err *e)
{
    count_filter *c = (count_filter *)s;
    return c->next ? cs_sink_close(c->next, e) : 0;
}

static void count_free(cs_sink *s)
{
    count_filter *c = (count_filter *)s;
    cs_sink_free(c->next);
    free(c);
}

static const cs_sink_ops count_ops = { count_write, count_close, count_free };
static const cs_sink_opt_ops count_opt = { .writev = count_writev };

cs_sink *cs_count_filter_new(cs_sink *next, uint64_t *count)
{
    count_filter *c = cs_calloc(1, sizeof *c);
    c->base.ops = &count_ops;
    c->base.opt = &count_opt;
    c->next = next;
    c->count = count;
    *count = 0;
    return &c->base;
}

/* ---- progress ----------------------------------------------------------- */

typedef struct progress_filter {
    cs_sink base;
    cs_sink *next;
    cs_job *job;
} progress_filter;

static int progress_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    progress_filter *f = (progress_filter *)s;
    if (cs_job_canceled(f->job)) /* a safe point: between two writes */
        return cs_cancel_error(e);
    int rc = f->next ? cs_sink_write(f->next, p, n, e) : 0;
    if (!rc)
        cs_job_add_bytes(f->job, n);
    return rc;
}

static int progress_close(cs_sink *s, cs_err *e)
{
    progress_filter *f = (progress_filter *)s;
    return f->next ? cs_sink_close(f->next, e) : 0;
}

static void progress_free(cs_sink *s)
{
    progress_filter *f = (progress_filter *)s;
    cs_sink_free(f->next);
    free(f);
}

static const cs_sink_ops progress_ops = { progress_write, progress_close, progress_free };

cs_sink *cs_progress_filter_new(cs_sink *next, cs_job *job)
{
    progress_filter *f = cs_calloc(1, sizeof *f);
    f->base.ops = &progress_ops;
    f->next = next;
    f->job = job;
    return &f->base;
}

/* ---- zstd compress ------------------------------------------------------ */

/* The header of the "store" frames (below): libzstd's frames must never
 * begin with it (window_safe_hint). */
static const uint8_t raw_frame_header[] = {
    0x28, 0xb5, 0x2f, 0xfd, /* magic number */
    0x00,                   /* descriptor: no checksum, no size, no dictionary, not single segment */
    (17 - 10) << 3,         /* window descriptor: 2^17 bytes, one block */
};

typedef struct zc_filter {
    cs_sink base;
    cs_sink *next;
    ZSTD_CStream *zc;
    uint8_t *out;
    size_t out_cap;
    bool started; /* the frame's header went to next */
} zc_filter;

static int zc_run(zc_filter *z, const uint8_t *p, size_t n, ZSTD_EndDirective mode, cs_err *e)
{
    ZSTD_inBuffer in = { p, n, 0 };
    for (;;) {
        ZSTD_outBuffer ob = { z->out, z->out_cap, 0 };
        size_t r = ZSTD_compressStream2(z->zc, &ob, &in, mode);
        if (ZSTD_isError(r))
            return cs_err_set(e, CS_E_IO, "zstd compression failed: %s", ZSTD_getErrorName(r));
        if (ob.pos > 0 && !z->started) {
            /* The header comes whole in the first output (out_cap is
             * libzstd's recommended size). Read back as a store frame, this
             * frame would be refused: stop instead of storing it. */
            if (ob.pos >= sizeof raw_frame_header && !memcmp(z->out, raw_frame_header, sizeof raw_frame_header))
                return cs_err_set(e, CS_E_IO, "zstd wrote a frame header that reads as a stored frame");
            z->started = true;
        }
        if (ob.pos > 0) {
            int rc = cs_sink_write(z->next, z->out, ob.pos, e);
            if (rc)
                return rc;
        }
        if (mode == ZSTD_e_end ? r == 0 : in.pos == in.size)
            return 0;
    }
}

static int zc_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    return zc_run((zc_filter *)s, p, n, ZSTD_e_continue, e);
}

static int zc_close(cs_sink *s, cs_err *e)
{
    zc_filter *z = (zc_filter *)s;
    int rc = zc_run(z, NULL, 0, ZSTD_e_end, e);
    if (rc)
        return rc;
    return cs_sink_close(z->next, e);
}

static void zc_free(cs_sink *s)
{
    zc_filter *z = (zc_filter *)s;
    cs_sink_free(z->next);
    ZSTD_freeCStream(z->zc);
    free(z->out);
    free(z);
}

static const cs_sink_ops zc_ops = { zc_write, zc_close, zc_free };

/* ---- zstd "store": a frame of raw blocks ----------------------------------
 * CS_ZSTD_LEVEL_STORE: for bytes compressed already, where even zstd's
 * fastest level only finds that each block is worth nothing and stores it
 * raw, after copying it twice. This writes that frame itself (RFC 8878):
 * the frame header (no content size, a 128 KiB window, no content
 * checksum: see cs_zstd_compress_new), blocks of type Raw of at most
 * 128 KiB and an empty last block: an ordinary zstd frame that every
 * decoder reads, with no search. The blocks are not copied: each write
 * goes on as one gathered write (io/sink.h) of the whole blocks it brings,
 * each after its header, read where the writer has them (the pump's
 * buffer); only a block that a write leaves unfinished (a file's end) is
 * gathered into buf. The frame's bytes do not depend on how the writes cut
 * the content. */

#define RAW_BLOCK ((size_t)128 << 10)
#define RAW_BLOCKS 8                   /* blocks per gathered write to next */
#define RAW_HDR 3                      /* a block header */

typedef struct zraw_filter {
    cs_sink base;
    cs_sink *next;
    bool started;     /* the frame header went to next */
    uint8_t *buf;     /* a block a write left unfinished: its header, then its bytes */
    size_t len;       /* bytes of buf in use; 0: none */
    uint8_t hdr[RAW_BLOCKS][RAW_HDR]; /* the headers of a gathered write's whole blocks */
    cs_iov v[2 * RAW_BLOCKS + 3];     /* that write: frame header, buf, then header, block, ... */
    size_t nv;
} zraw_filter;

static void raw_put_header(uint8_t *h, size_t size, bool last)
{
    uint32_t v = (uint32_t)size << 3 | (last ? 1u : 0u); /* Block_Type 0: Raw */
    h[0] = (uint8_t)v;
    h[1] = (uint8_t)(v >> 8);
    h[2] = (uint8_t)(v >> 16);
}

static void raw_add(zraw_filter *z, const uint8_t *p, size_t n)
{
    if (!z->started) {
        z->v[z->nv++] = (cs_iov){ raw_frame_header, sizeof raw_frame_header };
        z->started = true;
    }
    z->v[z->nv++] = (cs_iov){ p, n };
}

/* The gathered pieces go to next; buf is free after. */
static int raw_flush(zraw_filter *z, cs_err *e)
{
    int rc = z->nv ? cs_sink_writev(z->next, z->v, z->nv, e) : 0;
    z->nv = 0;
    if (z->len == RAW_HDR + RAW_BLOCK)
        z->len = 0; /* it went as a whole block */
    return rc;
}

static int zraw_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    zraw_filter *z = (zraw_filter *)s;
    size_t nh = 0;
    if (z->len) { /* finish the block begun before */
        size_t k = RAW_HDR + RAW_BLOCK - z->len < n ? RAW_HDR + RAW_BLOCK - z->len : n;
        memcpy(z->buf + z->len, p, k);
        z->len += k;
        p += k;
        n -= k;
        if (z->len < RAW_HDR + RAW_BLOCK)
            return 0;
        raw_put_header(z->buf, RAW_BLOCK, false);
        raw_add(z, z->buf, z->len);
    }
    for (; n >= RAW_BLOCK; p += RAW_BLOCK, n -= RAW_BLOCK) {
        if (nh == RAW_BLOCKS) {
            int rc = raw_flush(z, e);
            if (rc)
                return rc;
            nh = 0;
        }
        raw_put_header(z->hdr[nh], RAW_BLOCK, false);
        raw_add(z, z->hdr[nh++], RAW_HDR);
        raw_add(z, p, RAW_BLOCK);
    }
    int rc = raw_flush(z, e);
    if (rc || n == 0)
        return rc;
    memcpy(z->buf + RAW_HDR, p, n); /* a block begun: its size comes later */
    z->len = RAW_HDR + n;
    return 0;
}

/* The last block: the unfinished one, or an empty one. */
static int zraw_close(cs_sink *s, cs_err *e)
{
    zraw_filter *z = (zraw_filter *)s;
    uint8_t empty[RAW_HDR];
    if (z->len) {
        raw_put_header(z->buf, z->len - RAW_HDR, true);
        raw_add(z, z->buf, z->len);
    } else {
        raw_put_header(empty, 0, true);
        raw_add(z, empty, RAW_HDR);
    }
    int rc = raw_flush(z, e);
    z->len = 0;
    return rc ? rc : cs_sink_close(z->next, e);
}

static void zraw_free(cs_sink *s)
{
    zraw_filter *z = (zraw_filter *)s;
    cs_sink_free(z->next);
    free(z->buf);
    free(z);
}

static const cs_sink_ops zraw_ops = { zraw_write, zraw_close, zraw_free };

static cs_sink *zstd_store_new(cs_sink *next)
{
    zraw_filter *z = cs_calloc(1, sizeof *z);
    z->base.ops = &zraw_ops;
    z->next = next;
    z->buf = cs_malloc(RAW_HDR + RAW_BLOCK);
    return &z->base;
}

/* The size hint given to libzstd for an input of about size bytes. libzstd
 * sizes its window to the hint: 2^10 up to the input's size rounded up to a
 * power of two. A frame with a 2^17 window, no checksum and no content size
 * has raw_frame_header's exact bytes, and every decoder of ours (older
 * cassette versions too) reads such a frame as a "store" frame and refuses
 * its compressed blocks. So an input of 64 KiB to 128 KiB is hinted as
 * just over 128 KiB (a 2^18 window); below, the window is 2^16 at most;
 * above, 2^18 at least (every level's parameters for inputs up to 256 KiB
 * have windowLog 18, and libzstd only shrinks it to the input). zc_run
 * checks each frame's header all the same. */
static int window_safe_hint(uint64_t size)
{
    const uint64_t store_window = (uint64_t)1 << 17;
    if (size > store_window / 2 && size <= store_window)
        size = store_window + 1;
    return size < (uint64_t)ZSTD_SRCSIZEHINT_MAX ? (int)size : ZSTD_SRCSIZEHINT_MAX;
}

cs_sink *cs_zstd_compress_new(cs_sink *next, int level, uint64_t size_hint, cs_err *e)
{
    zc_filter *z = NULL;
    if (!next) {
        cs_err_set(e, CS_E_INVAL, "zstd compression needs a destination");
        goto fail;
    }
    if (level < ZSTD_LEVEL_MIN || level > ZSTD_LEVEL_MAX || level == 0) {
        cs_err_set(e, CS_E_INVAL, "zstd level %d is out of range (%d..%d)", level,
                   ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX);
        goto fail;
    }
    if (level == CS_ZSTD_LEVEL_STORE)
        return zstd_store_new(next);
    z = cs_calloc(1, sizeof *z);
    z->base.ops = &zc_ops;
    z->next = next;
    if (level < ZSTD_minCLevel())
        level = ZSTD_minCLevel(); /* an older libzstd's minimum is higher */
    z->zc = ZSTD_createCStream();
    if (!z->zc) {
        cs_err_set(e, CS_E_NOMEM, "cannot create a zstd compressor");
        goto fail;
    }
    size_t r = ZSTD_CCtx_setParameter(z->zc, ZSTD_c_compressionLevel, level);
    if (!ZSTD_isError(r))
        r = ZSTD_CCtx_setParameter(z->zc, ZSTD_c_checksumFlag, 0); /* see filters.h */
    if (ZSTD_isError(r)) {
        cs_err_set(e, CS_E_INVAL, "cannot set up zstd compression: %s", ZSTD_getErrorName(r));
        goto fail;
    }
    if (size_hint > 0) /* a hint only: a libzstd without it compresses as before */
        (void)ZSTD_CCtx_setParameter(z->zc, ZSTD_c_srcSizeHint, window_safe_hint(size_hint));
    z->out_cap = ZSTD_CStreamOutSize();
    z->out = cs_malloc(z->out_cap);
    return &z->base;
fail:
    if (z)
        zc_free(&z->base);
    else
        cs_sink_free(next);
    return NULL;
}

/* ---- zstd decompress ----------------------------------------------------
 * libzstd decodes every frame, except the "store" frames written above: a
 * frame whose header is raw_frame_header is read here, and the bytes of its
 * raw blocks go on to next where they lie, in the writer's buffer. libzstd
 * would copy each block into its output buffer first: ~0.2 CPU-s per GiB of
 * a restore or a deep verify (bench/README.md). No libzstd frame carries
 * that header (without a content size its window is at least 2^19 bytes,
 * see cs_zstd_compress_new, and every frame of another kind is passed to
 * libzstd), so a store frame holds raw blocks only: any other block in one
 * is refused as corrupt (filters.h). */

enum zd_mode {
    ZD_FRAME, /* between frames: head_len bytes of the next one matched a store frame's header */
    ZD_LIB,   /* libzstd has the current frame */
    ZD_BLOCK, /* a store frame: a block header goes to blk */
    ZD_RAW    /* a store frame: raw_left bytes of a raw block pass through */
};

typedef struct zd_filter {
    cs_sink base;
    cs_sink *next;
    ZSTD_DStream *zd;
    uint8_t *out;
    size_t out_cap;
    size_t last;  /* last ZSTD_decompressStream result: 0 at a frame's end */
    int failed;   /* the input was found corrupt; nothing more is accepted */
    enum zd_mode mode;
    bool any;     /* a whole frame was read (no input at all is not a zstd stream) */
    size_t head_len; /* those bytes are raw_frame_header's first: nothing to keep */
    uint8_t blk[RAW_HDR];
    size_t blk_len;
    size_t raw_left;
    bool raw_last; /* the raw block passing through is the frame's last */
} zd_filter;

static int zd_corrupt(zd_filter *z, const char *why, cs_err *e)
{
    z->failed = 1;
    return cs_err_set(e, CS_E_CORRUPT, "corrupt zstd stream: %s", why);
}

/* Feed libzstd n bytes of the frame it has. Go on while input remains or
 * the output filled up inside a frame (the decoder may hold more to flush;
 * at a frame's end it holds nothing). At a frame's end, the next frame is
 * looked at again: *used says how many bytes were taken. */
static int zd_lib(zd_filter *z, const uint8_t *p, size_t n, size_t *used, cs_err *e)
{
    ZSTD_inBuffer in = { p, n, 0 };
    ZSTD_outBuffer ob = { z->out, z->out_cap, 0 };
    while (in.pos < in.size || (ob.pos == ob.size && z->last != 0)) {
        ob.pos = 0;
        size_t r = ZSTD_decompressStream(z->zd, &ob, &in);
        if (ZSTD_isError(r))
            return zd_corrupt(z, ZSTD_getErrorName(r), e);
        z->last = r;
        if (ob.pos > 0) {
            int rc = cs_sink_write(z->next, z->out, ob.pos, e);
            if (rc)
                return rc;
        }
        if (r == 0) { /* the frame is whole and flushed */
            z->mode = ZD_FRAME;
            z->any = true;
            break;
        }
    }
    *used = in.pos;
    return 0;
}

/* A frame begins: collect its first bytes; a store frame stays here, any
 * other goes to libzstd. libzstd is given the frame as the writes brought
 * it (its streaming decoder checks a frame's content size only when it has
 * the whole frame in one input, so a write is never cut in two for it): the
 * bytes of the frame that came with earlier writes (a prefix of
 * raw_frame_header, as they matched it), then this
 * write whole. */
static int zd_frame(zd_filter *z, const uint8_t *p, size_t n, size_t *used, cs_err *e)
{
    size_t had = z->head_len, k = 0;
    while (k < n && z->head_len < sizeof raw_frame_header && p[k] == raw_frame_header[z->head_len])
        z->head_len++, k++;
    *used = k;
    if (z->head_len == sizeof raw_frame_header) {
        z->head_len = 0;
        z->mode = ZD_BLOCK;
        return 0;
    }
    if (k == n)
        return 0; /* still a store frame's header, as far as it goes */
    z->mode = ZD_LIB;
    z->last = 1;
    z->head_len = 0;
    *used = 0; /* this write goes to libzstd whole, from its first byte */
    size_t took = 0;
    int rc = had ? zd_lib(z, raw_frame_header, had, &took, e) : 0;
    if (!rc && took < had)
        rc = zd_corrupt(z, "a frame ends inside another's header", e); /* cannot happen: no frame is that short */
    return rc;
}

/* RLE: one byte, repeated. */
static int zd_rle(zd_filter *z, uint8_t byte, size_t size, cs_err *e)
{
    memset(z->out, byte, size < z->out_cap ? size : z->out_cap);
    for (size_t k; size > 0; size -= k) {
        k = size < z->out_cap ? size : z->out_cap;
        int rc = cs_sink_write(z->next, z->out, k, e);
        if (rc)
            return rc;
    }
    return 0;
}

static void zd_block_done(zd_filter *z, bool last)
{
    z->mode = last ? ZD_FRAME : ZD_BLOCK;
    if (last)
        z->any = true;
}

/* A store frame's block header, then its RLE byte when it has one. */
static int zd_block(zd_filter *z, const uint8_t *p, size_t n, size_t *used, cs_err *e)
{
    size_t k = 0;
    while (k < n && z->blk_len < RAW_HDR)
        z->blk[z->blk_len++] = p[k++];
    *used = k;
    if (z->blk_len < RAW_HDR)
        return 0;
    uint32_t v = (uint32_t)z->blk[0] | (uint32_t)z->blk[1] << 8 | (uint32_t)z->blk[2] << 16;
    bool last = v & 1;
    unsigned type = (v >> 1) & 3;
    size_t size = v >> 3;
    if (size > RAW_BLOCK) /* the frame's window, 2^17 bytes, bounds a block */
        return zd_corrupt(z, "a block larger than its frame's window", e);
    if (type == 0) {
        z->blk_len = 0;
        z->raw_left = size;
        z->raw_last = last;
        if (size == 0)
            zd_block_done(z, last);
        else
            z->mode = ZD_RAW;
        return 0;
    }
    if (type != 1)
        return zd_corrupt(z, "a compressed block in a frame of stored blocks", e);
    if (k == n)
        return 0; /* the RLE byte comes with the next write */
    z->blk_len = 0;
    *used = k + 1;
    int rc = zd_rle(z, p[k], size, e);
    if (!rc)
        zd_block_done(z, last);
    return rc;
}

static int zd_raw(zd_filter *z, const uint8_t *p, size_t n, size_t *used, cs_err *e)
{
    size_t k = n < z->raw_left ? n : z->raw_left;
    int rc = cs_sink_write(z->next, p, k, e);
    if (rc)
        return rc;
    *used = k;
    z->raw_left -= k;
    if (z->raw_left == 0)
        zd_block_done(z, z->raw_last);
    return 0;
}

static int zd_write(cs_sink *s, const uint8_t *p, size_t n, cs_err *e)
{
    zd_filter *z = (zd_filter *)s;
    if (z->failed)
        return cs_err_set(e, CS_E_CORRUPT, "corrupt zstd stream");
    do {
        size_t used = 0;
        enum zd_mode was = z->mode;
        int rc;
        switch (z->mode) {
        case ZD_FRAME: rc = zd_frame(z, p, n, &used, e); break;
        case ZD_LIB: rc = zd_lib(z, p, n, &used, e); break;
        case ZD_BLOCK: rc = zd_block(z, p, n, &used, e); break;
        default: rc = zd_raw(z, p, n, &used, e); break;
        }
        if (rc)
            return rc;
        if (used == 0 && z->mode == was && n > 0)
            return zd_corrupt(z, "the decoder made no progress", e); /* a bug, not a loop */
        p += used;
        n -= used;
    } while (n > 0);
    return 0;
}

static int zd_close(cs_sink *s, cs_err *e)
{
    zd_filter *z = (zd_filter *)s;
    if (z->failed)
        return cs_err_set(e, CS_E_CORRUPT, "corrupt zstd stream");
    if (z->mode != ZD_FRAME || z->head_len > 0 || !z->any)
        return cs_err_set(e, CS_E_CORRUPT, "truncated zstd stream");
    return cs_sink_close(z->next, e);
}

static void zd_free(cs_sink *s)
{
    zd_filter *z = (zd_filter *)s;
    cs_sink_free(z->next);
    ZSTD_freeDStream(z->zd);
    free(z->out);
    free(z);
}

static const cs_sink_ops zd_ops = { zd_write, zd_close, zd_free };

cs_sink *cs_zstd_decompress_new(cs_sink *next, cs_err *e)
{
    zd_filter *z = NULL;
    if (!next) {
        cs_err_set(e, CS_E_INVAL, "zstd decompression needs a destination");
        goto fail;
    }
    z = cs_calloc(1, sizeof *z);
    z->base.ops = &zd_ops;
    z->next = next;
    z->mode = ZD_FRAME;
    z->zd = ZSTD_createDStream();
    if (!z->zd) {
        cs_err_set(e, CS_E_NOMEM, "cannot create a zstd decompressor");
        goto fail;
    }
    /* Older objects' frames carry an XXH64 content checksum: not computed
     * (see filters.h). A libzstd that lacks the parameter refuses it and
     * checks them: slower, just as safe. */
    (void)ZSTD_DCtx_setParameter(z->zd, ZSTD_d_forceIgnoreChecksum, ZSTD_d_ignoreChecksum);
    z->out_cap = ZSTD_DStreamOutSize();
    z->out = cs_malloc(z->out_cap);
    return &z->base;
fail:
    if (z)
        zd_free(&z->base);
    else
        cs_sink_free(next);
    return NULL;
}
