/* fuzz_manifest.c - libFuzzer target for the manifest parser.
 *
 * A manifest comes from the repository, which may be damaged or tampered
 * with, so cs_manifest_from_json must reject anything unsafe without
 * crashing or leaking. Every input is parsed; an accepted manifest is
 * checked against the promises of manifest.h (names are identifiers, file
 * names are safe relative paths, ids are hex, data directory indexes are in
 * range, data directories are absolute, a file of a pack lies inside its
 * object) and must survive a round trip
 * through cs_manifest_to_json unchanged. Any broken promise aborts.
 * The seed corpus in tests/fuzz/corpus/manifest/ holds small valid and
 * slightly broken manifests.
 *
 * Build and run (clang with libFuzzer), or `make fuzz`:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -Isrc -fsanitize=fuzzer,address,undefined \
 *     -fno-sanitize-recover=all -o build/fuzz_manifest tests/fuzz/fuzz_manifest.c \
 *     $(find src -name '*.c' ! -path src/cli/main.c) -lzstd -lxxhash -lsodium -ljansson -lpthread
 *   mkdir -p build/fuzz-corpus-manifest && build/fuzz_manifest build/fuzz-corpus-manifest \
 *     tests/fuzz/corpus/manifest -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/node.h"
#include "common/fs.h"
#include "repo/manifest.h"

/* cs_manifest_to_json, which must succeed for these manifests. */
static char *manifest_json(const cs_manifest *m)
{
    char *text = NULL;
    cs_err err;
    cs_err_clear(&err);
    if (cs_manifest_to_json(m, &text, &err) != 0)
        abort();
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void check(const cs_manifest *m)
{
    if (!m->backup || !m->host_id || !m->schema)
        abort();
    for (size_t i = 0; i < m->data_dirs.n; i++)
        if (m->data_dirs.items[i][0] != '/')
            abort();
    for (size_t i = 0; i < m->n_tables; i++) {
        const cs_mtable *t = &m->tables[i];
        if (!cs_node_is_valid_name(t->keyspace) || !cs_node_is_valid_name(t->table) || !cs_is_hex32(t->id))
            abort();
        if (cs_manifest_find_table(m, t->keyspace, t->table) != t)
            abort(); /* listed twice */
        for (size_t j = 0; j < t->n_files; j++) {
            const cs_mfile *f = &t->files[j];
            if (!cs_path_is_safe_relative(f->name) || f->data_dir >= m->data_dirs.n)
                abort();
            cs_hash_alg alg;
            if (!cs_content_hash_parse(f->hash, &alg) || !cs_is_hex32(f->object) || f->mtime_ns < 0)
                abort();
            /* The hash itself, whatever its form: 64 lowercase hex at the end. */
            size_t n = strlen(f->hash);
            if (n < CS_HASH_HEX - 1 || !is_hex(f->hash + n - (CS_HASH_HEX - 1), CS_HASH_HEX - 1))
                abort();
            /* A file of a pack: its frame inside the object, the pack's hash of a known form. */
            if (cs_mfile_packed(f) && (f->pack.at > f->stored || f->pack.len > f->stored - f->pack.at ||
                                       f->size > f->pack.size || !cs_content_hash_parse(f->pack.hash, &alg)))
                abort();
        }
    }
    cs_manifest_totals tot;
    cs_manifest_totals_of(m, &tot);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_manifest m;
    cs_err e;
    cs_err_clear(&e);
    if (cs_manifest_from_json((const char *)data, size, &m, &e) != 0) {
        /* A rejection is one line with a code. */
        if (e.code == CS_OK || !e.msg[0] || strchr(e.msg, '\n'))
            abort();
        cs_manifest_free(&m);
        return 0;
    }
    check(&m);

    /* What was accepted serializes, parses back, and serializes the same. */
    char *text = manifest_json(&m);
    cs_manifest back;
    if (cs_manifest_from_json(text, strlen(text), &back, &e) != 0)
        abort();
    check(&back);
    char *again = manifest_json(&back);
    if (strcmp(text, again) != 0)
        abort();
    free(again);
    free(text);
    cs_manifest_free(&back);
    cs_manifest_free(&m);
    return 0;
}
