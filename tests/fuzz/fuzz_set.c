/* fuzz_set.c - libFuzzer target for the backup set record and commit parsers.
 *
 * sets/<name>.set and sets/<name>.commit are plaintext in the repository,
 * read by list, purge and delete without any key: they may be damaged or
 * written by anyone who can write to the bucket, so cs_set_record_from_json
 * and cs_set_commit_from_json must reject anything invalid in one line
 * without crashing or leaking. The input is parsed as a record; an
 * accepted record is checked against the promises of set.h (names and host
 * ids as repo.h allows, a 32-hex set id, printable texts, hosts unique) and
 * must survive a round trip unchanged. The input is also parsed as a
 * commit of a fixed record: accepted or not, the record must stay valid,
 * and a rejected commit leaves it uncommitted. Any broken promise aborts.
 * The seed corpus in tests/fuzz/corpus/set/ holds small valid and slightly
 * broken records and commits.
 *
 * Build and run (clang with libFuzzer), or `make fuzz`:
 *   make fuzz-build && build/fuzz/fuzz_set tests/fuzz/corpus/set -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/set.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char FIXED[] =
    "{\"type\":\"cassette-set\",\"format\":1,\"name\":\"n\",\"set_id\":\"0123456789abcdef0123456789abcdef\","
    "\"cluster\":\"c\",\"coordinator\":\"h\",\"started\":1,\"hosts\":[{\"host_id\":\"h1\",\"address\":\"a\","
    "\"datacenter\":\"\",\"rack\":\"\"},{\"host_id\":\"h2\",\"address\":\"b\",\"datacenter\":\"\",\"rack\":\"\"}]}";

static void check_rejection(const cs_err *e)
{
    if (e->code == CS_OK || !e->msg[0] || strchr(e->msg, '\n'))
        abort();
}

static void check(const cs_backup_set *s)
{
    const char *why = NULL;
    if (!cs_set_is_valid(s, &why))
        abort();
    for (size_t i = 0; i < s->n_hosts; i++)
        if (s->hosts[i].ok && s->hosts[i].reason)
            abort();
}

static void as_record(const uint8_t *data, size_t size)
{
    cs_backup_set s;
    cs_err e;
    cs_err_clear(&e);
    if (cs_set_record_from_json((const char *)data, size, &s, &e) != 0) {
        check_rejection(&e);
        return;
    }
    check(&s);
    char *text = cs_set_record_to_json(&s);
    cs_backup_set back;
    if (cs_set_record_from_json(text, strlen(text), &back, &e) != 0)
        abort();
    char *again = cs_set_record_to_json(&back);
    if (strcmp(text, again))
        abort();
    free(text);
    free(again);
    cs_backup_set_free(&back);
    cs_backup_set_free(&s);
}

static void as_commit(const uint8_t *data, size_t size)
{
    cs_backup_set s;
    cs_err e;
    cs_err_clear(&e);
    if (cs_set_record_from_json(FIXED, strlen(FIXED), &s, &e) != 0)
        abort();
    if (cs_set_commit_from_json((const char *)data, size, &s, &e) != 0) {
        check_rejection(&e);
        if (s.committed)
            abort();
    } else {
        if (!s.committed)
            abort();
        /* the commit serializes and parses back the same */
        char *text = cs_set_commit_to_json(&s);
        cs_backup_set t;
        if (cs_set_record_from_json(FIXED, strlen(FIXED), &t, &e) != 0 ||
            cs_set_commit_from_json(text, strlen(text), &t, &e) != 0)
            abort();
        char *again = cs_set_commit_to_json(&t);
        if (strcmp(text, again))
            abort();
        free(text);
        free(again);
        cs_backup_set_free(&t);
    }
    check(&s);
    cs_backup_set_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    as_record(data, size);
    as_commit(data, size);
    return 0;
}
