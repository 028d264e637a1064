/* azsign.c - Azure Storage Shared Key signatures and SAS checks (see azsign.h). */
#include "storage/azsign.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The standard headers of the string-to-sign, in its order; Content-Length
 * (third) comes from the request, not from the header list. */
static const char *const standard_headers[] = {
    "Content-Encoding", "Content-Language", "Content-Length", "Content-MD5",         "Content-Type", "Date",
    "If-Modified-Since", "If-Match",        "If-None-Match",  "If-Unmodified-Since", "Range",
};

#define N_STANDARD (sizeof standard_headers / sizeof standard_headers[0])

/* ---- key --------------------------------------------------------------- */

int cs_azsign_key_decode(const char *base64, cs_azsign_key *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    if (!base64 || !*base64)
        return cs_err_set(e, CS_E_INVAL, "the Azure account key is empty");
    size_t len = 0;
    const char *end = NULL;
    if (sodium_base642bin(out->bytes, sizeof out->bytes, base64, strlen(base64), NULL, &len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        *end != '\0' || len == 0) {
        cs_azsign_key_wipe(out);
        return cs_err_set(e, CS_E_INVAL, "the Azure account key is not base64 (or longer than %d bytes)",
                          CS_AZSIGN_KEY_MAX);
    }
    out->len = len;
    return 0;
}

void cs_azsign_key_wipe(cs_azsign_key *k)
{
    sodium_memzero(k, sizeof *k);
}

/* ---- encoding ------------------------------------------------------------ */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

void cs_azsign_uri_encode(const char *s, size_t n, bool keep_slash, cs_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    if (n) /* reserve alone leaves a fresh buffer without its NUL */
        cs_buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            cs_buf_addch(out, (char)c);
        } else {
            char esc[3] = { '%', hex[c >> 4], hex[c & 15] };
            cs_buf_add(out, esc, 3);
        }
    }
}

void cs_azsign_query_string(const cs_azsign_pair *q, size_t n, const char *sas, cs_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            cs_buf_addch(out, '&');
        cs_azsign_uri_encode(q[i].name, strlen(q[i].name), false, out);
        cs_buf_addch(out, '=');
        cs_azsign_uri_encode(q[i].value, strlen(q[i].value), false, out);
    }
    if (sas && *sas) {
        if (n)
            cs_buf_addch(out, '&');
        cs_buf_addstr(out, sas);
    }
}

/* ---- date -------------------------------------------------------------- */

int cs_azsign_format_date(time_t t, char out[CS_AZSIGN_DATE], cs_err *e)
{
    /* Our own names: strftime's %a and %b follow the locale. */
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    if (t < 0 || !gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999)
        return cs_err_set(e, CS_E_INVAL, "time %lld is outside years 1970..9999", (long long)t);
    char wide[64]; /* gcc cannot see that every field fits: format wide, then copy */
    snprintf(wide, sizeof wide, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, wide, CS_AZSIGN_DATE - 1);
    out[CS_AZSIGN_DATE - 1] = '\0';
    return 0;
}

/* ---- string-to-sign ---------------------------------------------------- */

static bool is_token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!is_token_char((unsigned char)*s))
            return false;
    return true;
}

/* No control characters but tab: a line break would forge another line. */
static bool clean_value(const char *s)
{
    if (!s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static bool is_xms(const char *name)
{
    return strncasecmp(name, "x-ms-", 5) == 0;
}

static int check_request(const cs_azsign_request *r, cs_err *e)
{
    if (!is_token(r->method))
        return cs_err_set(e, CS_E_INVAL, "the request method is not an HTTP token");
    if (!r->path || r->path[0] != '/' || !clean_value(r->path))
        return cs_err_set(e, CS_E_INVAL, "the request path must be absolute and hold no control characters");
    for (size_t i = 0; i < r->nheaders; i++) {
        const cs_azsign_pair *h = &r->headers[i];
        if (!is_token(h->name) || !clean_value(h->value))
            return cs_err_set(e, CS_E_INVAL, "bad header to sign (header %zu)", i + 1);
        if (!strcasecmp(h->name, "Content-Length"))
            return cs_err_set(e, CS_E_INVAL, "Content-Length is signed from the body's length, not given");
        for (size_t j = 0; j < i; j++)
            if (!strcasecmp(h->name, r->headers[j].name))
                return cs_err_set(e, CS_E_INVAL, "header %s given twice", h->name);
    }
    for (size_t i = 0; i < r->nquery; i++)
        if (!r->query[i].name || !r->query[i].name[0] || !clean_value(r->query[i].name) ||
            !clean_value(r->query[i].value))
            return cs_err_set(e, CS_E_INVAL, "bad query parameter to sign (parameter %zu)", i + 1);
    return 0;
}

static const char *header_value(const cs_azsign_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return "";
}

static char *lowercase(const char *s)
{
    char *d = cs_strdup(s);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return d;
}

/* A header value with the ends trimmed and each run of white space inside
 * made one space (the "unfolding" Shared Key asks for). */
static void add_unfolded(cs_buf *out, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    bool space = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space)
            cs_buf_addch(out, ' ');
        space = false;
        cs_buf_addch(out, *v);
    }
}

typedef struct lowered {
    char *name; /* lowercased, heap */
    const char *value;
} lowered;

static int by_name_then_value(const void *a, const void *b)
{
    const lowered *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

/* The x-ms-* headers as "name:value\n" lines, by name. */
static void add_canonical_headers(const cs_azsign_request *r, cs_buf *out)
{
    lowered *xs = cs_calloc(r->nheaders ? r->nheaders : 1, sizeof *xs);
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        if (is_xms(r->headers[i].name))
            xs[n++] = (lowered){ lowercase(r->headers[i].name), r->headers[i].value };
    qsort(xs, n, sizeof *xs, by_name_then_value);
    for (size_t i = 0; i < n; i++) {
        cs_buf_printf(out, "%s:", xs[i].name);
        add_unfolded(out, xs[i].value);
        cs_buf_addch(out, '\n');
        free(xs[i].name);
    }
    free(xs);
}

/* "/account/path" then "\nname:v1,v2" per parameter name, names lowercased
 * and sorted, the values of a name sorted. */
static void add_canonical_resource(const char *account, const cs_azsign_request *r, cs_buf *out)
{
    cs_buf_printf(out, "/%s%s", account, r->path);
    lowered *qs = cs_calloc(r->nquery ? r->nquery : 1, sizeof *qs);
    for (size_t i = 0; i < r->nquery; i++)
        qs[i] = (lowered){ lowercase(r->query[i].name), r->query[i].value };
    qsort(qs, r->nquery, sizeof *qs, by_name_then_value);
    for (size_t i = 0; i < r->nquery; i++) {
        if (i && !strcmp(qs[i].name, qs[i - 1].name))
            cs_buf_printf(out, ",%s", qs[i].value);
        else
            cs_buf_printf(out, "\n%s:%s", qs[i].name, qs[i].value);
    }
    for (size_t i = 0; i < r->nquery; i++)
        free(qs[i].name);
    free(qs);
}

int cs_azsign_string_to_sign(const char *account, const cs_azsign_request *r, cs_buf *out, cs_err *e)
{
    cs_buf_reset(out);
    if (!account || !*account || !clean_value(account) || strchr(account, '/'))
        return cs_err_set(e, CS_E_INVAL, "bad Azure account name");
    int rc = check_request(r, e);
    if (rc)
        return rc;
    cs_buf_printf(out, "%s\n", r->method);
    for (size_t i = 0; i < N_STANDARD; i++) {
        if (!strcmp(standard_headers[i], "Content-Length")) {
            /* Empty, not "0", for a request without a body (version 2015-02-21 on). */
            if (r->content_length)
                cs_buf_printf(out, "%llu", (unsigned long long)r->content_length);
        } else {
            cs_buf_addstr(out, header_value(r, standard_headers[i]));
        }
        cs_buf_addch(out, '\n');
    }
    add_canonical_headers(r, out);
    add_canonical_resource(account, r, out);
    return 0;
}

int cs_azsign_authorization(const char *account, const cs_azsign_key *key, const cs_azsign_request *r,
                            cs_buf *out, cs_err *e)
{
    cs_buf_reset(out);
    if (!key || key->len == 0)
        return cs_err_set(e, CS_E_INVAL, "no Azure account key to sign with");
    cs_buf sts = CS_BUF_INIT;
    int rc = cs_azsign_string_to_sign(account, r, &sts, e);
    if (!rc) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, key->bytes, key->len);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)sts.data, sts.len);
        crypto_auth_hmacsha256_final(&st, mac);
        sodium_memzero(&st, sizeof st);
        char b64[sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
        sodium_bin2base64(b64, sizeof b64, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
        cs_buf_printf(out, "SharedKey %s:%s", account, b64);
        sodium_memzero(mac, sizeof mac);
    }
    if (sts.data)
        sodium_memzero(sts.data, sts.cap);
    cs_buf_free(&sts);
    return rc;
}

/* ---- SAS ------------------------------------------------------------------ */

static bool sas_char(unsigned char c)
{
    return unreserved(c) || (c && strchr("%:,/+=", c));
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Checks one "name=value" of a SAS; notes sig and sv. */
static bool sas_param(const char *p, size_t n, bool *sig, bool *sv)
{
    const char *eq = memchr(p, '=', n);
    if (!eq || eq == p)
        return false;
    size_t name_len = (size_t)(eq - p);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!sas_char(c))
            return false;
        if (c == '%' && (i + 2 >= n || !is_hex(p[i + 1]) || !is_hex(p[i + 2])))
            return false;
    }
    bool has_value = eq + 1 < p + n;
    if (name_len == 3 && !strncmp(p, "sig", 3))
        *sig = has_value;
    if (name_len == 2 && !strncmp(p, "sv", 2))
        *sv = has_value;
    return true;
}

int cs_azsign_sas_check(const char *sas, char **out, cs_err *e)
{
    *out = NULL;
    if (!sas)
        sas = "";
    if (*sas == '?')
        sas++;
    if (!*sas)
        return cs_err_set(e, CS_E_INVAL, "the Azure SAS token is empty");
    bool sig = false, sv = false;
    for (const char *p = sas; *p;) {
        size_t n = strcspn(p, "&");
        if (n == 0 || !sas_param(p, n, &sig, &sv))
            return cs_err_set(e, CS_E_INVAL, "the Azure SAS token is not a query string of name=value "
                                             "parameters (as the portal or az CLI give it)");
        p += n;
        if (*p == '&' && !*++p)
            return cs_err_set(e, CS_E_INVAL, "the Azure SAS token ends with '&'");
    }
    if (!sig || !sv)
        return cs_err_set(e, CS_E_INVAL, "the Azure SAS token has no %s parameter", !sig ? "sig" : "sv");
    *out = cs_strdup(sas);
    return 0;
}
