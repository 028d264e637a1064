/* test_sha256.c - crypto/sha256: one call and incremental, raw and hex. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "crypto/sha256.h"

/* FIPS 180-2 test vectors. */
static const char EMPTY[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
static const char ABC[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char TWO_BLOCKS[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
static const char TWO_BLOCKS_MSG[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

static void hex_of(const uint8_t d[CS_SHA256_BYTES], char out[CS_SHA256_HEX])
{
    cs_hex(d, CS_SHA256_BYTES, out);
}

static void test_vectors(void **state)
{
    (void)state;
    char a[CS_SHA256_HEX];
    uint8_t d[CS_SHA256_BYTES];
    cs_sha256_hex("", 0, a);
    assert_string_equal(a, EMPTY);
    cs_sha256_hex(NULL, 0, a); /* nothing at all: the same */
    assert_string_equal(a, EMPTY);
    cs_sha256_hex("abc", 3, a);
    assert_string_equal(a, ABC);
    cs_sha256(TWO_BLOCKS_MSG, strlen(TWO_BLOCKS_MSG), d);
    hex_of(d, a);
    assert_string_equal(a, TWO_BLOCKS);
}

/* Pieces of every size give what one call gives; a digest on the way is
 * the digest of what came so far and does not disturb what follows. */
static void test_incremental(void **state)
{
    (void)state;
    enum { N = 300000 };
    uint8_t *big = malloc(N);
    assert_non_null(big);
    for (size_t i = 0; i < N; i++)
        big[i] = (uint8_t)(i * 7 + (i >> 9));
    char a[CS_SHA256_HEX], b[CS_SHA256_HEX];
    uint8_t d[CS_SHA256_BYTES];
    cs_sha256_hex(big, N, a);

    cs_sha256_ctx h;
    cs_sha256_init(&h);
    size_t off = 0, step = 1;
    while (off < N) {
        size_t c = step < N - off ? step : N - off;
        cs_sha256_update(&h, big + off, c);
        cs_sha256_update(&h, big + off, 0); /* nothing: no change */
        off += c;
        if (off == 3) { /* "abc"'s length: a digest mid-way */
            char part[CS_SHA256_HEX];
            cs_sha256_hex(big, 3, part);
            cs_sha256_digest(&h, d);
            hex_of(d, b);
            assert_string_equal(b, part);
        }
        step = step * 3 + 1;
    }
    cs_sha256_digest(&h, d);
    hex_of(d, b);
    assert_string_equal(a, b);
    cs_sha256_digest(&h, d); /* again: the same */
    hex_of(d, b);
    assert_string_equal(a, b);
    cs_sha256_free(&h);
    assert_null(h.md);
    cs_sha256_free(&h); /* freed twice: nothing */

    cs_sha256_init(&h);
    cs_sha256_digest(&h, d);
    hex_of(d, b);
    assert_string_equal(b, EMPTY);
    cs_sha256_free(&h);

    cs_sha256_ctx zero = { NULL };
    cs_sha256_free(&zero);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_incremental),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
