/* units.c - reading sizes from text. */
#include "common/units.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

bool cs_parse_size(const char *text, uint64_t *out)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    uint64_t mult = 1;
    if (*end && !end[1]) {
        switch (*end) {
        case 'k': case 'K': mult = 1ull << 10; end++; break;
        case 'm': case 'M': mult = 1ull << 20; end++; break;
        case 'g': case 'G': mult = 1ull << 30; end++; break;
        default: break;
        }
    }
    if (errno || *end || v > (UINT64_MAX >> 30))
        return false;
    *out = (uint64_t)v * mult;
    return true;
}
