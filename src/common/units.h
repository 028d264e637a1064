/* units.h - durations and sizes as people write and read them.
 *
 * Owns: the one parser and formatter of durations ("36h", "7d", "1d12h")
 * and of sizes ("64M"), and the short human forms of both for output
 * ("1.5 GiB", "12m05s"). Every front end (the CLI's flags, JSON requests)
 * and every op that speaks of a duration uses these.
 * Must not: know of options, flags or requests. */
#ifndef CS_UNITS_H
#define CS_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* "90s", "45m", "36h", "7d", "2w", "1y", sums like "1d12h", or "0" ->
 * seconds. CS_E_INVAL with a one-line message for anything else. */
int cs_parse_duration(const char *text, double *seconds, cs_err *e);
/* The inverse, for messages: "24h", "7d", "90m", "45s". */
void cs_format_duration(double seconds, char out[24]);

/* "64M", "1G", "512K" or plain bytes (binary units) -> bytes. CS_E_INVAL
 * (no message beyond the value) for anything else. */
int cs_parse_size(const char *text, uint64_t *bytes, cs_err *e);

/* "1.5 GiB" style size into buf. */
void cs_human_size(uint64_t bytes, char *buf, size_t cap);
/* "45s", "12m05s", "3h20m", "2d04h" style duration into buf. */
void cs_human_duration(double seconds, char *buf, size_t cap);

#endif
