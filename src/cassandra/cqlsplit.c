/* cqlsplit.c - split a CQL script into statements (see the header).
 *
 * One pass over the script. Blanks and comments are skipped between tokens;
 * every other token (a string, quoted identifier, $$ body, word or single
 * punctuation byte) extends the current statement. A ';' ends the statement
 * unless the statement is a batch that has not yet reached APPLY BATCH, in
 * which case the ';' is a token of it (what follows APPLY BATCH up to the
 * next ';' stays in the statement, as with cqlsh, for the server to reject). Only the words that matter for
 * batches are told apart; the rest of CQL is left to the server. */
#include "cassandra/cqlsplit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"

/* The words a batch is recognised by; anything else is KW_OTHER. */
enum kw { KW_OTHER, KW_BEGIN, KW_UNLOGGED, KW_COUNTER, KW_BATCH, KW_APPLY };

typedef struct splitter {
    const char *p;
    size_t len;
    size_t i;      /* next byte */
    size_t line;   /* line of p[i] */
    /* the statement being read */
    size_t ntok;   /* tokens so far; 0: none yet */
    size_t start;  /* offset of its first token */
    size_t sline;  /* line of its first token */
    size_t end;    /* offset just past its last token */
    enum kw first[3]; /* kinds of its first three tokens */
    enum kw prev1, prev2; /* kinds of its last two tokens (prev1 the last) */
    bool batch;    /* it opened with BEGIN [UNLOGGED | COUNTER] BATCH */
    bool applied;  /* ... and has since reached APPLY BATCH */
    /* the result */
    cql_statement *out;
    size_t n, cap;
} splitter;

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

static enum kw classify(const char *w, size_t n)
{
    static const struct { const char *word; enum kw kw; } kws[] = {
        { "BEGIN", KW_BEGIN }, { "UNLOGGED", KW_UNLOGGED }, { "COUNTER", KW_COUNTER },
        { "BATCH", KW_BATCH }, { "APPLY", KW_APPLY },
    };
    for (size_t k = 0; k < sizeof kws / sizeof kws[0]; k++)
        if (strlen(kws[k].word) == n && !strncasecmp(w, kws[k].word, n))
            return kws[k].kw;
    return KW_OTHER;
}

/* Advance s->i to `to`, counting the line breaks passed: \n, and a \r not
 * followed by \n. */
static void advance(splitter *s, size_t to)
{
    for (size_t k = s->i; k < to; k++)
        if (s->p[k] == '\n' || (s->p[k] == '\r' && (k + 1 >= s->len || s->p[k + 1] != '\n')))
            s->line++;
    s->i = to;
}

/* Offset of the first `a` `b` pair at or after `from`, or len when none. */
static size_t find_pair(const splitter *s, size_t from, char a, char b)
{
    for (size_t k = from; k + 1 < s->len; k++)
        if (s->p[k] == a && s->p[k + 1] == b)
            return k;
    return s->len;
}

/* Offset just past the quote closing a q-quoted token opened at `from`
 * (a doubled q is an escaped q), or len when it is unterminated. */
static size_t find_close_quote(const splitter *s, size_t from, char q)
{
    for (size_t k = from + 1; k < s->len; k++) {
        if (s->p[k] != q)
            continue;
        if (k + 1 < s->len && s->p[k + 1] == q) {
            k++;
            continue;
        }
        return k + 1;
    }
    return s->len + 1;
}

/* Copy p[start, end) with every line break written as \n. */
static char *copy_text(const char *p, size_t start, size_t end)
{
    char *t = cs_malloc(end - start + 1);
    size_t o = 0;
    for (size_t k = start; k < end; k++) {
        if (p[k] == '\r') {
            if (k + 1 < end && p[k + 1] == '\n')
                k++;
            t[o++] = '\n';
        } else {
            t[o++] = p[k];
        }
    }
    t[o] = '\0';
    return t;
}

static void emit(splitter *s)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->out = cs_realloc(s->out, s->cap * sizeof *s->out);
    }
    s->out[s->n].text = copy_text(s->p, s->start, s->end);
    s->out[s->n].line = s->sline;
    s->n++;
    s->ntok = 0;
    s->prev1 = s->prev2 = KW_OTHER;
    s->batch = s->applied = false;
}

/* Record a token p[from, s->i) of kind k in the current statement. */
static void token(splitter *s, size_t from, size_t from_line, enum kw k)
{
    if (s->ntok == 0) {
        s->start = from;
        s->sline = from_line;
    }
    if (s->ntok < 3)
        s->first[s->ntok] = k;
    s->ntok++;
    s->end = s->i;
    s->prev2 = s->prev1;
    s->prev1 = k;
    /* BEGIN [UNLOGGED | COUNTER] BATCH */
    if (s->ntok == 2 && s->first[0] == KW_BEGIN && k == KW_BATCH)
        s->batch = true;
    if (s->ntok == 3 && s->first[0] == KW_BEGIN && k == KW_BATCH &&
        (s->first[1] == KW_UNLOGGED || s->first[1] == KW_COUNTER))
        s->batch = true;
    /* APPLY and BATCH are reserved words: unquoted, they can only end it */
    if (s->batch && s->prev2 == KW_APPLY && k == KW_BATCH)
        s->applied = true;
}

/* Inside a batch that has not reached APPLY BATCH a ';' ends an inner
 * statement, not this one. */
static bool batch_open(const splitter *s)
{
    return s->batch && !s->applied;
}

static size_t line_of(const char *p, size_t len, size_t off)
{
    size_t line = 1;
    for (size_t k = 0; k < off && k < len; k++)
        if (p[k] == '\n' || (p[k] == '\r' && (k + 1 >= len || p[k + 1] != '\n')))
            line++;
    return line;
}

static int split(splitter *s, cs_err *e)
{
    const char *p = s->p;
    size_t len = s->len;
    while (s->i < len) {
        size_t i = s->i, line = s->line;
        char c = p[i];
        char d = i + 1 < len ? p[i + 1] : '\0';
        if (is_blank(c) || c == '\n' || c == '\r') {
            advance(s, i + 1);
        } else if ((c == '-' && d == '-') || (c == '/' && d == '/')) {
            size_t k = i + 2;
            while (k < len && p[k] != '\n' && p[k] != '\r')
                k++;
            advance(s, k); /* the line break itself is a blank */
        } else if (c == '/' && d == '*') {
            size_t k = find_pair(s, i + 2, '*', '/');
            if (k >= len)
                return cs_err_set(e, CS_E_INVAL, "line %zu: unterminated block comment", line);
            advance(s, k + 2);
        } else if (c == ';') {
            advance(s, i + 1);
            if (s->ntok == 0)
                continue; /* an empty statement */
            if (batch_open(s))
                token(s, i, line, KW_OTHER);
            else
                emit(s);
        } else if (c == '\'' || c == '"') {
            size_t k = find_close_quote(s, i, c);
            if (k > len)
                return cs_err_set(e, CS_E_INVAL, "line %zu: unterminated %s", line,
                                  c == '\'' ? "string" : "quoted identifier");
            advance(s, k);
            token(s, i, line, KW_OTHER);
        } else if (c == '$' && d == '$') {
            size_t k = find_pair(s, i + 2, '$', '$');
            if (k >= len)
                return cs_err_set(e, CS_E_INVAL, "line %zu: unterminated $$ string", line);
            advance(s, k + 2);
            token(s, i, line, KW_OTHER);
        } else if (is_word(c)) {
            size_t k = i + 1;
            while (k < len && is_word(p[k]))
                k++;
            advance(s, k);
            token(s, i, line, classify(p + i, k - i));
        } else {
            advance(s, i + 1);
            token(s, i, line, KW_OTHER);
        }
    }
    if (s->ntok) {
        if (batch_open(s))
            return cs_err_set(e, CS_E_INVAL, "line %zu: BEGIN BATCH without APPLY BATCH", s->sline);
        emit(s);
    }
    return 0;
}

int cql_split(const char *text, size_t len, cql_statement **out, size_t *n, cs_err *e)
{
    *out = NULL;
    *n = 0;
    if (len == 0)
        return 0;
    const char *nul = memchr(text, '\0', len);
    if (nul)
        return cs_err_set(e, CS_E_INVAL, "line %zu: NUL byte in the script", line_of(text, len, (size_t)(nul - text)));

    splitter s;
    memset(&s, 0, sizeof s);
    s.p = text;
    s.len = len;
    s.line = 1;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        s.i = 3;
    int rc = split(&s, e);
    if (rc) {
        cql_statements_free(s.out, s.n);
        return rc;
    }
    *out = s.out;
    *n = s.n;
    return 0;
}

void cql_statements_free(cql_statement *s, size_t n)
{
    if (!s)
        return;
    for (size_t i = 0; i < n; i++)
        free(s[i].text);
    free(s);
}
