/* fuzz_index.c - libFuzzer target for the backup index parser.
 *
 * An index is plaintext in the repository, read by purge and the fast
 * verify without any key: it may be damaged or written by anyone who can
 * write to the bucket, so cs_index_from_json must reject anything invalid
 * without crashing or leaking. Every input is parsed; an accepted index is
 * checked against the promises of index.h (names as repo.h allows, object
 * ids hex, sorted and each once, counts in range, a partial scope has an
 * id) and must survive a round trip through cs_index_to_json unchanged.
 * Any broken promise aborts. The seed corpus in tests/fuzz/corpus/index/
 * holds small valid and slightly broken indexes (made with Python's json
 * and hashlib, the reference for the canonical checksum).
 *
 * Build and run (clang with libFuzzer), or `make fuzz`:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=all -o build/fuzz_index tests/fuzz/fuzz_index.c \
 *     $(find src -name '*.c' ! -path src/cli/main.c) -lzstd -lxxhash -lsodium -ljansson -lsqlite3 -lcurl -lpthread
 *   mkdir -p build/fuzz-corpus-index && build/fuzz_index build/fuzz-corpus-index \
 *     tests/fuzz/corpus/index -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/index.h"
#include "repo/repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const cs_index *ix)
{
    if (!ix->backup || !cs_repo_is_valid_backup_name(ix->backup) || !ix->host_id ||
        !cs_repo_is_valid_backup_name(ix->host_id) || !ix->address)
        abort();
    if (ix->n_objects > ix->files || ix->files_new > ix->files)
        abort();
    if (!ix->scope_all && !cs_is_hex32(ix->scope_id))
        abort();
    if (ix->scope_all && ix->scope_id[0])
        abort();
    if (strlen(ix->manifest_hash) != CS_HASH_HEX - 1)
        abort();
    for (size_t i = 0; i < ix->n_objects; i++) {
        if (!cs_is_hex32(ix->objects[i].id))
            abort();
        if (i && strcmp(ix->objects[i - 1].id, ix->objects[i].id) >= 0)
            abort(); /* unsorted or listed twice */
    }
}

static bool same(const cs_index *a, const cs_index *b)
{
    if (strcmp(a->backup, b->backup) || strcmp(a->host_id, b->host_id) || strcmp(a->address, b->address) ||
        a->started_ms != b->started_ms || a->finished_ms != b->finished_ms ||
        a->scope_recorded != b->scope_recorded || a->scope_all != b->scope_all || strcmp(a->scope_id, b->scope_id) ||
        a->files != b->files || a->size != b->size || a->stored != b->stored || a->files_new != b->files_new ||
        a->size_new != b->size_new || a->stored_new != b->stored_new || a->manifest_size != b->manifest_size ||
        strcmp(a->manifest_hash, b->manifest_hash) || a->n_objects != b->n_objects)
        return false;
    for (size_t i = 0; i < a->n_objects; i++)
        if (strcmp(a->objects[i].id, b->objects[i].id) || a->objects[i].stored != b->objects[i].stored)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_index ix;
    cs_err e;
    cs_err_clear(&e);
    if (cs_index_from_json((const char *)data, size, &ix, &e) != 0) {
        /* A rejection is one line with a code, and frees everything. */
        if (e.code == CS_OK || !e.msg[0] || strchr(e.msg, '\n'))
            abort();
        return 0;
    }
    check(&ix);
    (void)cs_index_matches_manifest(&ix, data, size);

    /* What was accepted serializes, parses back the same, and serializes the same. */
    char *text = cs_index_to_json(&ix);
    cs_index back;
    if (cs_index_from_json(text, strlen(text), &back, &e) != 0)
        abort();
    check(&back);
    if (!same(&ix, &back))
        abort();
    char *again = cs_index_to_json(&back);
    if (strcmp(text, again) != 0)
        abort();
    free(again);
    free(text);
    cs_index_free(&back);
    cs_index_free(&ix);
    return 0;
}
