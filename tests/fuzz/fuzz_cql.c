/* fuzz_cql.c - libFuzzer target for the CQL RESULT and ERROR decoders.
 *
 * Every input is fed to both cql_decode_result and cql_decode_error; a
 * decoded result is walked completely (every cell, every nested item, every
 * column name) so a malformed tree shows up under ASan, then freed, so a
 * leak on any path shows up under LeakSanitizer. The seed corpus in
 * tests/fuzz/corpus/cql/ holds small hand-made RESULT bodies.
 *
 * Build and run (clang with libFuzzer):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
 *     -o build/fuzz_cql tests/fuzz/fuzz_cql.c src/cassandra/cql.c \
 *     src/common/buf.c src/common/err.c src/common/log.c
 *   mkdir -p build/fuzz-corpus && \
 *     build/fuzz_cql build/fuzz-corpus tests/fuzz/corpus/cql -max_total_time=60
 */
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
    if (v->kind == CQL_SCALAR)
        sum += strlen(v->text);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
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

    cs_err_clear(&e);
    int rc = cql_decode_error(data, size, &e);
    if (rc != CS_E_EXTERNAL && rc != CS_E_PROTO)
        abort();
    sink = strlen(e.msg);
    return 0;
}
