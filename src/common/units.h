/* units.h - reading sizes from text ("64M", "1G", "512K", "4096"), for the
 * option table and for the modules that parse their own options (storage
 * drivers). Binary units. Must not: report errors itself (callers name the
 * option in their message). */
#ifndef CS_UNITS_H
#define CS_UNITS_H

#include <stdbool.h>
#include <stdint.h>

/* Bytes, with an optional K, M or G (either case); false for anything
 * else (signs, blanks, other units, more than 2^34 G). */
bool cs_parse_size(const char *text, uint64_t *out);

#endif
