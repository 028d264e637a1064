#include "common/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(void)
{
    fputs("cassette: out of memory\n", stderr);
    abort();
}

void *cs_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *cs_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory();
    return p;
}

void *cs_aligned_zalloc(size_t align, size_t size)
{
    if (align < sizeof(void *))
        align = sizeof(void *);
    size = (size + align - 1) / align * align; /* aligned_alloc wants a multiple */
    void *p = aligned_alloc(align, size ? size : align);
    if (!p)
        out_of_memory();
    memset(p, 0, size);
    return p;
}

void *cs_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        out_of_memory();
    return q;
}

char *cs_strdup(const char *s)
{
    return cs_strndup(s, strlen(s));
}

char *cs_strndup(const char *s, size_t n)
{
    char *p = cs_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *cs_sprintf(const char *fmt, ...)
{
    cs_buf b = CS_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    cs_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    return cs_buf_detach(&b);
}

void cs_buf_free(cs_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void cs_buf_reset(cs_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void cs_buf_reserve(cs_buf *b, size_t extra)
{
    if (extra >= SIZE_MAX - b->len - 1)
        out_of_memory();
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = cs_realloc(b->data, cap);
    b->cap = cap;
}

void cs_buf_add(cs_buf *b, const void *p, size_t n)
{
    cs_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void cs_buf_addstr(cs_buf *b, const char *s)
{
    cs_buf_add(b, s, strlen(s));
}

void cs_buf_addch(cs_buf *b, char c)
{
    cs_buf_add(b, &c, 1);
}

void cs_buf_vprintf(cs_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    cs_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void cs_buf_printf(cs_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cs_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

const char *cs_buf_str(const cs_buf *b)
{
    return b->data ? b->data : "";
}

char *cs_buf_detach(cs_buf *b)
{
    char *p = b->data ? b->data : cs_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void cs_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

bool cs_is_lower_hex(const char *s, size_t n)
{
    if (!s)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false; /* also at a NUL before n */
    return s[n] == '\0';
}
