/* output.h - how results look on the command line.
 *
 * Owns: printing an operation's result: --json prints its JSON document
 * (ops/results.h) as it is; the text for people is made from that same
 * document (one formatter per operation), so that it cannot say what the
 * document does not, and a result that came back from a server prints the
 * same. The one exception is key generate's identity, a secret that never
 * goes into a document: its text comes from the result itself.
 * Must not: run ops, or compute what the document should hold. */
#ifndef CS_OUTPUT_H
#define CS_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "ops/optable.h"

/* Print the result of op: doc on out (--json) or its text; notes meant
 * for stderr (verify's damage) go to err either way. req and res are the
 * request and result doc was made from (res may be NULL: a remote answer). */
void cs_print_result(FILE *out, FILE *err, const cs_op_def *op, const void *req, const void *res, const json_t *doc,
                     bool json);

/* Does op have a text formatter? (a unit test checks every op does) */
bool cs_output_has_formatter(const cs_op_def *op);

#endif
