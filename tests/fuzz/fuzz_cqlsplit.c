/* fuzz_cqlsplit.c - libFuzzer target for the CQL script splitter.
 *
 * Every input is split with cql_split. On success each statement is checked:
 * non-empty text with no blank at either end and no \r (line breaks come
 * out as \n), a line >= 1, never before the previous statement's line and
 * never past the script's last line; and splitting a statement's text again
 * must give back exactly that one statement at line 1 (a statement holds no
 * top-level ';' unless it is a batch, and its own text is a complete batch).
 * On failure nothing may be returned and the error must be CS_E_INVAL with
 * a one-line "line N: ..." message. Everything is freed, so a leak on any
 * path shows up under LeakSanitizer. The seed corpus in
 * tests/fuzz/corpus/cqlsplit/ holds small scripts (Fluxer's example among
 * them).
 *
 * Build and run: `make fuzz-build`, then
 *   build/fuzz/fuzz_cqlsplit -max_total_time=60 build/fuzz/cqlsplit.work tests/fuzz/corpus/cqlsplit
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cassandra/cqlsplit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void check_error(int rc, const cql_statement *s, size_t n, const cs_err *e)
{
    if (rc != CS_E_INVAL || e->code != CS_E_INVAL || s || n)
        abort();
    if (strncmp(e->msg, "line ", 5) || e->msg[5] < '1' || e->msg[5] > '9' || strchr(e->msg, '\n'))
        abort();
}

/* A statement's own text splits back into itself. */
static void check_resplit(const cql_statement *st)
{
    size_t len = strlen(st->text);
    if (len >= 3 && !memcmp(st->text, "\xEF\xBB\xBF", 3))
        return; /* a BOM at the start of the text would be skipped */
    cql_statement *s = NULL;
    size_t n = 0;
    cs_err e;
    cs_err_clear(&e);
    if (cql_split(st->text, len, &s, &n, &e))
        abort();
    if (n != 1 || s[0].line != 1 || strcmp(s[0].text, st->text))
        abort();
    cql_statements_free(s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    cql_statement *s = NULL;
    size_t n = 0;
    cs_err e;
    cs_err_clear(&e);
    int rc = cql_split(text, size, &s, &n, &e);
    if (rc) {
        check_error(rc, s, n, &e);
        return 0;
    }
    if ((n == 0) != (s == NULL))
        abort();

    size_t lines = 1;
    for (size_t k = 0; k < size; k++)
        if (text[k] == '\n' || (text[k] == '\r' && (k + 1 >= size || text[k + 1] != '\n')))
            lines++;

    size_t prev = 1, total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = s[i].text;
        if (!t)
            abort();
        size_t len = strlen(t);
        if (len == 0 || is_space(t[0]) || is_space(t[len - 1]) || strchr(t, '\r'))
            abort();
        if (s[i].line < prev || s[i].line > lines)
            abort();
        prev = s[i].line;
        total += len;
        check_resplit(&s[i]);
    }
    if (total > size) /* statements are disjoint pieces of the script */
        abort();
    cql_statements_free(s, n);
    return 0;
}
