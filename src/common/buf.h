/* buf.h - the one growable byte/string buffer used everywhere.
 *
 * Owns: cs_buf, a heap buffer that is always NUL-terminated (data[len] == 0)
 * so it can be used as a C string; it may also hold binary bytes.
 * A zeroed cs_buf (CS_BUF_INIT) is valid and empty. Allocation failure
 * aborts: cassette cannot do anything useful without memory, and it keeps
 * every caller free of unreachable error paths. */
#ifndef CS_BUF_H
#define CS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cs_buf {
    char *data;   /* NULL until the first write; use cs_buf_str() for a C string */
    size_t len;
    size_t cap;
} cs_buf;

#define CS_BUF_INIT { NULL, 0, 0 }

void cs_buf_free(cs_buf *b);
void cs_buf_reset(cs_buf *b);                 /* len = 0, keeps the memory */
void cs_buf_reserve(cs_buf *b, size_t extra); /* room for extra more bytes */
void cs_buf_add(cs_buf *b, const void *p, size_t n);
void cs_buf_addstr(cs_buf *b, const char *s);
void cs_buf_addch(cs_buf *b, char c);
void cs_buf_printf(cs_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cs_buf_vprintf(cs_buf *b, const char *fmt, va_list ap);
const char *cs_buf_str(const cs_buf *b);      /* never NULL */
/* Hand the heap string over to the caller (who frees it); b becomes empty. */
char *cs_buf_detach(cs_buf *b);

/* Small allocation helpers that abort on failure (see above). */
void *cs_malloc(size_t n);
void *cs_calloc(size_t n, size_t size);
void *cs_realloc(void *p, size_t n);
/* Zeroed, aligned to align (a power of two; at least that of a pointer is
 * used), for types that ask for more than malloc gives; free() it. */
void *cs_aligned_zalloc(size_t align, size_t size);
char *cs_strdup(const char *s);
char *cs_strndup(const char *s, size_t n);
char *cs_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void cs_hex(const uint8_t *p, size_t n, char *out);

/* Whether s (may be NULL) is exactly n lowercase hex digits. */
bool cs_is_lower_hex(const char *s, size_t n);

#endif
