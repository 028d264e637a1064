/* sigv4.c - AWS Signature Version 4 (see sigv4.h for what it owns). */
#include "storage/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALGORITHM "AWS4-HMAC-SHA256"

/* ---- small helpers --------------------------------------------------------- */

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

void cs_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, cs_buf *out)
{
    static const char hexd[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            cs_buf_addch(out, (char)c);
        } else {
            char enc[3] = { '%', hexd[c >> 4], hexd[c & 15] };
            cs_buf_add(out, enc, sizeof enc);
        }
    }
}

/* OpenSSL fails an HMAC only when out of memory (or its library is
 * broken): like cs_malloc, that ends the process. */
static void digest_failed(void)
{
    fputs("cassette: HMAC-SHA256 failed (out of memory?)\n", stderr);
    abort();
}

/* HMAC-SHA256 (OpenSSL wipes its own state). */
static void hmac(const uint8_t *key, size_t klen, const void *msg, size_t mlen,
                 uint8_t out[CS_SHA256_BYTES])
{
    unsigned len = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len) || len != CS_SHA256_BYTES)
        digest_failed();
}

int cs_sigv4_format_time(time_t t, char amz_date[CS_SIGV4_AMZ_DATE], char date[9], cs_err *e)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year < 70 || tm.tm_year > 9999 - 1900)
        return cs_err_set(e, CS_E_INVAL, "sigv4: the signing time is out of range");
    if (strftime(amz_date, CS_SIGV4_AMZ_DATE, "%Y%m%dT%H%M%SZ", &tm) != CS_SIGV4_AMZ_DATE - 1)
        return cs_err_set(e, CS_E_INVAL, "sigv4: cannot format the signing time");
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    return 0;
}

/* ---- input checks ------------------------------------------------------------ */

static bool is_token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool valid_header_name(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!is_token_char((unsigned char)*s))
            return false;
    return true;
}

/* No control characters but tab (they would break the header on the wire). */
static bool valid_header_value(const char *s)
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

/* Region and service names: letters, digits, '-' and '_'. */
static bool valid_scope_part(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Printable ASCII without '/', ',' and spaces: it goes in Credential=. */
static bool valid_access_key(const char *s)
{
    if (!s || !*s || strlen(s) > 256)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == ',')
            return false;
    }
    return true;
}

static bool valid_method(const char *s)
{
    if (!s || !*s || strlen(s) > 16)
        return false;
    for (; *s; s++)
        if (*s < 'A' || *s > 'Z')
            return false;
    return true;
}

static bool valid_payload_hash(const char *s)
{
    if (!s)
        return false;
    if (strcmp(s, CS_SIGV4_UNSIGNED_PAYLOAD) == 0)
        return true;
    if (strlen(s) != 64)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static bool has_session_token(const cs_sigv4_creds *c)
{
    return c->session_token && c->session_token[0];
}

static int check_creds(const cs_sigv4_creds *c, cs_err *e)
{
    if (!c || !valid_access_key(c->access_key_id))
        return cs_err_set(e, CS_E_INVAL, "sigv4: the access key id is missing or malformed");
    if (!c->secret_access_key || !c->secret_access_key[0])
        return cs_err_set(e, CS_E_INVAL, "sigv4: the secret access key is missing");
    if (!valid_scope_part(c->region))
        return cs_err_set(e, CS_E_INVAL, "sigv4: the region is missing or malformed");
    if (!valid_scope_part(c->service))
        return cs_err_set(e, CS_E_INVAL, "sigv4: the service name is missing or malformed");
    if (has_session_token(c) && !valid_header_value(c->session_token))
        return cs_err_set(e, CS_E_INVAL, "sigv4: the session token holds control characters");
    return 0;
}

static int check_request(const cs_sigv4_request *r, cs_err *e)
{
    if (!r || !valid_method(r->method))
        return cs_err_set(e, CS_E_INVAL, "sigv4: the request method is missing or malformed");
    if (!r->path || r->path[0] != '/')
        return cs_err_set(e, CS_E_INVAL, "sigv4: the request path must start with '/'");
    if (!valid_payload_hash(r->payload_hash))
        return cs_err_set(e, CS_E_INVAL,
                          "sigv4: the payload hash must be 64 lowercase hex digits or UNSIGNED-PAYLOAD");
    if (r->host && (!r->host[0] || !valid_header_value(r->host)))
        return cs_err_set(e, CS_E_INVAL, "sigv4: the host is empty or malformed");
    if ((r->nquery && !r->query) || (r->nheaders && !r->headers))
        return cs_err_set(e, CS_E_INVAL, "sigv4: a parameter or header list is missing");
    for (size_t i = 0; i < r->nquery; i++)
        if (!r->query[i].name || !r->query[i].value)
            return cs_err_set(e, CS_E_INVAL, "sigv4: query parameter %zu has no name or value", i + 1);
    for (size_t i = 0; i < r->nheaders; i++) {
        if (!valid_header_name(r->headers[i].name))
            return cs_err_set(e, CS_E_INVAL, "sigv4: header %zu has a malformed name", i + 1);
        if (!valid_header_value(r->headers[i].value))
            return cs_err_set(e, CS_E_INVAL, "sigv4: header %s has a malformed value",
                              r->headers[i].name);
    }
    return 0;
}

/* ---- canonical query --------------------------------------------------------- */

typedef struct qent {
    char *name; /* encoded */
    char *value;
} qent;

static int qent_cmp(const void *a, const void *b)
{
    const qent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

void cs_sigv4_query_string(const cs_sigv4_pair *q, size_t n, cs_buf *out)
{
    qent *v = cs_calloc(n, sizeof *v);
    cs_buf tmp = CS_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        cs_sigv4_uri_encode(q[i].name, strlen(q[i].name), false, &tmp);
        v[i].name = cs_buf_detach(&tmp);
        cs_sigv4_uri_encode(q[i].value, strlen(q[i].value), false, &tmp);
        v[i].value = cs_buf_detach(&tmp);
    }
    qsort(v, n, sizeof *v, qent_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i)
            cs_buf_addch(out, '&');
        cs_buf_addstr(out, v[i].name);
        cs_buf_addch(out, '=');
        cs_buf_addstr(out, v[i].value);
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

/* ---- canonical headers ------------------------------------------------------- */

typedef struct hent {
    char *name;  /* lowercased */
    char *value; /* trimmed, inner runs of blanks collapsed to one space */
    size_t order;
} hent;

static int hent_cmp(const void *a, const void *b)
{
    const hent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static char *lower_dup(const char *s)
{
    char *d = cs_strdup(s);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return d;
}

static char *canonical_value(const char *s)
{
    cs_buf b = CS_BUF_INIT;
    bool blank = false;
    while (*s == ' ' || *s == '\t')
        s++;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t') {
            blank = true;
            continue;
        }
        if (blank)
            cs_buf_addch(&b, ' ');
        blank = false;
        cs_buf_addch(&b, *s);
    }
    if (!b.data)
        return cs_strdup("");
    return cs_buf_detach(&b);
}

/* The sorted, merged header list: names unique, values of repeated names
 * joined with ','. Returns the number of entries left in v. */
static size_t canonical_headers(const cs_sigv4_pair *h, size_t n, hent *v)
{
    for (size_t i = 0; i < n; i++) {
        v[i].name = lower_dup(h[i].name);
        v[i].value = canonical_value(h[i].value);
        v[i].order = i;
    }
    qsort(v, n, sizeof *v, hent_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k && strcmp(v[k - 1].name, v[i].name) == 0) {
            char *joined = cs_sprintf("%s,%s", v[k - 1].value, v[i].value);
            free(v[k - 1].value);
            v[k - 1].value = joined;
            free(v[i].name);
            free(v[i].value);
            continue;
        }
        v[k++] = v[i];
    }
    return k;
}

static const hent *find_header(const hent *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

/* The headers SigV4 and S3 insist on, with the values the request implies. */
static int check_required(const cs_sigv4_creds *c, const cs_sigv4_request *r, const hent *v,
                          size_t n, const char *amz_date, cs_err *e)
{
    const hent *h = find_header(v, n, "host");
    if (!h || !h->value[0])
        return cs_err_set(e, CS_E_INVAL, "sigv4: the request has no host header");
    if (r->host && strcmp(h->value, r->host) != 0)
        return cs_err_set(e, CS_E_INVAL, "sigv4: the host header differs from the request's host");
    h = find_header(v, n, "x-amz-date");
    if (!h || strcmp(h->value, amz_date) != 0)
        return cs_err_set(e, CS_E_INVAL, "sigv4: x-amz-date is missing or differs from the signing time");
    h = find_header(v, n, "x-amz-content-sha256");
    if (strcmp(c->service, "s3") == 0 && !h)
        return cs_err_set(e, CS_E_INVAL, "sigv4: S3 requests must carry x-amz-content-sha256");
    if (h && strcmp(h->value, r->payload_hash) != 0)
        return cs_err_set(e, CS_E_INVAL, "sigv4: x-amz-content-sha256 differs from the payload hash");
    h = find_header(v, n, "x-amz-security-token");
    if (has_session_token(c) && (!h || strcmp(h->value, c->session_token) != 0))
        return cs_err_set(e, CS_E_INVAL,
                          "sigv4: x-amz-security-token is missing or differs from the session token");
    if (!has_session_token(c) && h)
        return cs_err_set(e, CS_E_INVAL, "sigv4: x-amz-security-token given without a session token");
    if (find_header(v, n, "authorization"))
        return cs_err_set(e, CS_E_INVAL, "sigv4: the Authorization header cannot sign itself");
    return 0;
}

/* ---- signing ------------------------------------------------------------------ */

static void build_canonical_request(const cs_sigv4_request *r, const hent *v, size_t n,
                                    cs_sigv4_result *out)
{
    cs_buf *b = &out->canonical_request;
    cs_buf_addstr(b, r->method);
    cs_buf_addch(b, '\n');
    cs_sigv4_uri_encode(r->path, strlen(r->path), true, b);
    cs_buf_addch(b, '\n');
    cs_sigv4_query_string(r->query, r->nquery, b);
    cs_buf_addch(b, '\n');
    for (size_t i = 0; i < n; i++) {
        cs_buf_addstr(b, v[i].name);
        cs_buf_addch(b, ':');
        cs_buf_addstr(b, v[i].value);
        cs_buf_addch(b, '\n');
        if (i)
            cs_buf_addch(&out->signed_headers, ';');
        cs_buf_addstr(&out->signed_headers, v[i].name);
    }
    cs_buf_addch(b, '\n');
    cs_buf_addstr(b, cs_buf_str(&out->signed_headers));
    cs_buf_addch(b, '\n');
    cs_buf_addstr(b, r->payload_hash);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
 * "aws4_request"); the signature is HMAC(kSigning, string to sign). Every
 * intermediate key is wiped. */
static void compute_signature(const cs_sigv4_creds *c, const char *date, const cs_buf *sts,
                              char out[CS_SIGV4_HEX])
{
    size_t slen = strlen(c->secret_access_key);
    uint8_t *k0 = cs_malloc(slen + 4);
    uint8_t k[CS_SHA256_BYTES];
    uint8_t sig[CS_SHA256_BYTES];
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, c->secret_access_key, slen);
    hmac(k0, slen + 4, date, strlen(date), k);
    hmac(k, sizeof k, c->region, strlen(c->region), k);
    hmac(k, sizeof k, c->service, strlen(c->service), k);
    hmac(k, sizeof k, "aws4_request", strlen("aws4_request"), k);
    hmac(k, sizeof k, sts->data, sts->len, sig);
    cs_hex(sig, sizeof sig, out);
    OPENSSL_cleanse(k0, slen + 4);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(sig, sizeof sig);
    free(k0);
}

static void result_reset(cs_sigv4_result *res)
{
    cs_buf_reset(&res->authorization);
    cs_buf_reset(&res->canonical_request);
    cs_buf_reset(&res->string_to_sign);
    cs_buf_reset(&res->signed_headers);
    res->signature[0] = '\0';
    res->amz_date[0] = '\0';
}

void cs_sigv4_result_free(cs_sigv4_result *res)
{
    if (!res)
        return;
    cs_buf_free(&res->authorization);
    cs_buf_free(&res->canonical_request);
    cs_buf_free(&res->string_to_sign);
    cs_buf_free(&res->signed_headers);
    res->signature[0] = '\0';
    res->amz_date[0] = '\0';
}

int cs_sigv4_sign(const cs_sigv4_creds *c, const cs_sigv4_request *r, cs_sigv4_result *out,
                  cs_err *e)
{
    hent *v = NULL;
    size_t n = 0;
    char date[9];
    char crhash[CS_SIGV4_HEX];
    int rc;

    result_reset(out);
    if ((rc = check_creds(c, e)) || (rc = check_request(r, e)) ||
        (rc = cs_sigv4_format_time(r->when, out->amz_date, date, e)))
        goto out;
    v = cs_calloc(r->nheaders, sizeof *v);
    n = canonical_headers(r->headers, r->nheaders, v);
    if ((rc = check_required(c, r, v, n, out->amz_date, e)))
        goto out;

    build_canonical_request(r, v, n, out);
    cs_sha256_hex(out->canonical_request.data, out->canonical_request.len, crhash);
    cs_buf_printf(&out->string_to_sign, ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", out->amz_date,
                  date, c->region, c->service, crhash);
    compute_signature(c, date, &out->string_to_sign, out->signature);
    cs_buf_printf(&out->authorization,
                  ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                  c->access_key_id, date, c->region, c->service, cs_buf_str(&out->signed_headers),
                  out->signature);
out:
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
    if (rc)
        result_reset(out);
    return rc;
}

/* ---- the headers to send ------------------------------------------------------ */

static bool is_reserved_header(const char *name)
{
    static const char *const names[] = { "host", "x-amz-date", "x-amz-content-sha256",
                                         "x-amz-security-token", "authorization" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

/* "Name: value", or "Name;" for an empty value (curl's spelling of an empty
 * header: "Name:" alone would remove the header instead). */
static char *header_line(const char *name, const char *value)
{
    if (!value[0])
        return cs_sprintf("%s;", name);
    return cs_sprintf("%s: %s", name, value);
}

void cs_sigv4_sent_free(cs_sigv4_sent *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->lines[i]);
    free(s->lines);
    s->lines = NULL;
    s->n = 0;
}

int cs_sigv4_headers(const cs_sigv4_creds *c, const cs_sigv4_request *r, cs_sigv4_sent *out,
                     cs_err *e)
{
    cs_sigv4_result res = CS_SIGV4_RESULT_INIT;
    cs_sigv4_pair *all = NULL;
    char amz_date[CS_SIGV4_AMZ_DATE], date[9];
    cs_sigv4_request signed_req;
    size_t n;
    int rc;

    out->lines = NULL;
    out->n = 0;
    if ((rc = check_creds(c, e)) || (rc = check_request(r, e)))
        goto out;
    if (!r->host) {
        rc = cs_err_set(e, CS_E_INVAL, "sigv4: the request has no host");
        goto out;
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        if (is_reserved_header(r->headers[i].name)) {
            rc = cs_err_set(e, CS_E_INVAL, "sigv4: header %s is added by the signer",
                            r->headers[i].name);
            goto out;
        }
    }
    if ((rc = cs_sigv4_format_time(r->when, amz_date, date, e)))
        goto out;

    all = cs_calloc(r->nheaders + 4, sizeof *all);
    n = r->nheaders;
    if (n)
        memcpy(all, r->headers, n * sizeof *all);
    all[n++] = (cs_sigv4_pair){ "Host", r->host };
    all[n++] = (cs_sigv4_pair){ "x-amz-date", amz_date };
    all[n++] = (cs_sigv4_pair){ "x-amz-content-sha256", r->payload_hash };
    if (has_session_token(c))
        all[n++] = (cs_sigv4_pair){ "x-amz-security-token", c->session_token };
    signed_req = *r;
    signed_req.headers = all;
    signed_req.nheaders = n;
    if ((rc = cs_sigv4_sign(c, &signed_req, &res, e)))
        goto out;

    out->lines = cs_calloc(n + 1, sizeof *out->lines);
    for (size_t i = 0; i < n; i++)
        out->lines[i] = header_line(all[i].name, all[i].value);
    out->lines[n] = cs_sprintf("Authorization: %s", cs_buf_str(&res.authorization));
    out->n = n + 1;
out:
    free(all);
    cs_sigv4_result_free(&res);
    return rc;
}
