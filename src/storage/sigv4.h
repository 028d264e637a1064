/* sigv4.h - AWS Signature Version 4 for the S3 driver (header-based auth).
 *
 * Owns: the canonical request, string to sign and Authorization header of
 * AWS SigV4 (AWS4-HMAC-SHA256), as S3 wants them: every path segment
 * URI-encoded once (no double encoding, no "." / ".." normalisation), query
 * parameters encoded and sorted, header names lowercased and values trimmed
 * with inner runs of spaces collapsed. Built on OpenSSL's SHA-256: the
 * hashes (payloads, the canonical request) are crypto/sha256's, the HMACs
 * OpenSSL's HMAC-SHA256. Over http every uploaded byte is hashed for the
 * payload signature, and OpenSSL's SHA-256 uses the CPU's SHA extensions
 * where libsodium's does not (1.39 against 0.4 GB/s on the bench machine).
 * Must not: do I/O, read the clock (the caller passes the time), log, or
 * put the secret key, the derived keys or any signature input into an error
 * message. The derived signing key is wiped before returning.
 *
 * Typical use in the driver:
 *     cs_sigv4_pair q[] = { { "uploads", "" } };
 *     cs_sigv4_request r = { "POST", "s3.example.com:9000", "/bucket/a b",
 *                            q, 1, NULL, 0, CS_SIGV4_EMPTY_SHA256, time(NULL) };
 *     cs_sigv4_sent s;  cs_sigv4_headers(&creds, &r, &s, e);
 *     url = scheme://host + cs_sigv4_uri_encode(path, keep '/') + "?" +
 *           cs_sigv4_query_string(q)   -- exactly what was signed
 *     for each s.lines[i]: curl_slist_append(list, s.lines[i]);
 */
#ifndef CS_STORAGE_SIGV4_H
#define CS_STORAGE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "crypto/sha256.h"

/* SHA-256 of nothing, the payload hash of every request without a body. */
#define CS_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* The payload hash that tells S3 the body is not covered by the signature. */
#define CS_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

#define CS_SIGV4_HEX CS_SHA256_HEX /* 64 lowercase hex digits and a NUL */
#define CS_SIGV4_AMZ_DATE 17 /* "YYYYMMDDTHHMMSSZ" and a NUL */

/* Who signs, and for what. All strings are borrowed and must outlive the
 * call. session_token is NULL (or "") for long-term keys; otherwise the
 * request must carry it as x-amz-security-token (cs_sigv4_headers adds it).
 * region ("us-east-1") and service ("s3") are lowercase [a-z0-9-]. */
typedef struct cs_sigv4_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    const char *region;
    const char *service;
} cs_sigv4_creds;

/* A query parameter or a header, as given (unencoded, any case). */
typedef struct cs_sigv4_pair {
    const char *name;
    const char *value; /* "" for a parameter without a value ("uploads") */
} cs_sigv4_pair;

/* One request. path is the UNENCODED absolute path ("/bucket/a b/c"); the
 * signer encodes it. host includes ":port" when the port is not the
 * scheme's default. payload_hash is 64 lowercase hex digits (the SHA-256 of
 * the body) or CS_SIGV4_UNSIGNED_PAYLOAD. when is the signing time (UTC). */
typedef struct cs_sigv4_request {
    const char *method;            /* "GET", "PUT", ... */
    const char *host;              /* see cs_sigv4_sign and cs_sigv4_headers */
    const char *path;
    const cs_sigv4_pair *query;    /* nquery parameters, any order */
    size_t nquery;
    const cs_sigv4_pair *headers;  /* nheaders headers to sign, any order */
    size_t nheaders;
    const char *payload_hash;
    time_t when;
} cs_sigv4_request;

/* What cs_sigv4_sign produces. Initialise with CS_SIGV4_RESULT_INIT (or
 * zero it); cs_sigv4_result_free releases it. */
typedef struct cs_sigv4_result {
    cs_buf authorization;     /* the Authorization header's value */
    cs_buf canonical_request; /* for tests and debugging; holds no secret */
    cs_buf string_to_sign;    /* idem */
    cs_buf signed_headers;    /* "host;range;x-amz-content-sha256;x-amz-date" */
    char signature[CS_SIGV4_HEX];
    char amz_date[CS_SIGV4_AMZ_DATE];
} cs_sigv4_result;

#define CS_SIGV4_RESULT_INIT { CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT, "", "" }

/* Sign r->headers exactly as given: every header listed is signed. They
 * must include host (equal to r->host when r->host is not NULL) and
 * x-amz-date (equal to r->when formatted); x-amz-content-sha256 equal to
 * r->payload_hash when the service is "s3"; x-amz-security-token equal to
 * the session token when there is one. A header named twice is signed as
 * one with the values joined by ',' in the order given (as HTTP combines
 * them). Names must be HTTP tokens and values must not hold control
 * characters other than tab. Returns 0, or CS_E_INVAL with a sentence that
 * never quotes the secret key. out is reset first; free it in all cases. */
int cs_sigv4_sign(const cs_sigv4_creds *c, const cs_sigv4_request *r, cs_sigv4_result *out,
                  cs_err *e);
void cs_sigv4_result_free(cs_sigv4_result *res);

/* The headers to send, "Name: value" each, ready for curl_slist_append:
 * r->headers as given (they are signed too), then Host (from r->host),
 * x-amz-date, x-amz-content-sha256 (r->payload_hash),
 * x-amz-security-token (when there is a session token) and Authorization.
 * r->headers must not contain any of those five (CS_E_INVAL). */
typedef struct cs_sigv4_sent {
    char **lines; /* n heap strings, owned by the struct */
    size_t n;
} cs_sigv4_sent;

int cs_sigv4_headers(const cs_sigv4_creds *c, const cs_sigv4_request *r, cs_sigv4_sent *out,
                     cs_err *e);
void cs_sigv4_sent_free(cs_sigv4_sent *s);

/* Append the SigV4 URI encoding of s[0..n) to out: A-Z a-z 0-9 - . _ ~ are
 * kept, every other byte becomes %XX (uppercase hex); '/' is kept when
 * keep_slash (paths) and encoded otherwise (query names and values). */
void cs_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, cs_buf *out);

/* Append the canonical query string of q (each name and value encoded,
 * sorted by name then value, joined "a=1&b=&c=3"); the driver puts the same
 * string in the URL after '?' so that what is sent is what was signed. */
void cs_sigv4_query_string(const cs_sigv4_pair *q, size_t n, cs_buf *out);

/* The two date forms of t (UTC): "20130524T000000Z" and "20130524".
 * CS_E_INVAL when t is outside years 1970..9999. */
int cs_sigv4_format_time(time_t t, char amz_date[CS_SIGV4_AMZ_DATE], char date[9], cs_err *e);

#endif
