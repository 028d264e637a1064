/* cqlsplit.h - split a CQL script into statements, as cqlsh would.
 *
 * Owns: the lexing a script needs to find its statement boundaries (CQL as
 * Cassandra 5.0 lexes it): '...' strings with '' escapes, "..." quoted
 * identifiers with "" escapes, $$...$$ strings, -- and // line comments,
 * non-nesting block comments, and BEGIN [UNLOGGED | COUNTER] BATCH ...
 * APPLY BATCH as one statement whatever ';' it holds. A UTF-8 BOM at the
 * start is skipped; line breaks (\n, \r\n, a lone \r) count one line each
 * and are written as \n in the statements (cqlsh reads scripts with
 * universal newlines). Besides the lexical errors below, a batch that never
 * reaches APPLY BATCH is CS_E_INVAL. Memory is O(script size).
 * Must not: do I/O, log, or understand statements beyond their boundaries
 * (whether a statement is valid CQL is the server's business). */
#ifndef CS_CQLSPLIT_H
#define CS_CQLSPLIT_H

#include <stddef.h>

#include "common/err.h"

typedef struct cql_statement {
    char *text;   /* the statement without its terminating ';', leading/trailing blanks and
                     comments outside it removed; comments inside are kept as written */
    size_t line;  /* 1-based line of the statement's first character in the script */
} cql_statement;

/* Split text (len bytes, need not be NUL-terminated; NUL bytes inside are an error) into
 * statements. An unterminated string, quoted identifier, $$ body or block comment is
 * CS_E_INVAL with a one-line message naming the line where it starts ("line 12: unterminated
 * string"). A script of only blanks and comments gives n = 0. The last statement may lack its ';'.
 * On success the caller frees *out with cql_statements_free; on failure *out is NULL and *n 0. */
int cql_split(const char *text, size_t len, cql_statement **out, size_t *n, cs_err *e);

/* Free what cql_split returned; NULL is fine. */
void cql_statements_free(cql_statement *s, size_t n);

#endif
