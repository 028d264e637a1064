/* azsign.h - Azure Storage authorization for the Azure Blob driver: Shared Key and SAS.
 *
 * Owns: the Shared Key string-to-sign of the Blob service (the scheme of
 * version 2009-09-19 and later: the verb, eleven standard headers with
 * Content-Length empty when zero, the x-ms-* headers canonicalized, then the
 * canonicalized resource "/account/path" with every query parameter on its
 * own line), its HMAC-SHA256 under the base64-decoded account key and the
 * Authorization value "SharedKey account:signature"; the x-ms-date format;
 * the URL encoding of paths and query strings (what is sent is what is
 * signed); and the checks of a SAS token, which the driver appends to every
 * URL as given instead of signing. Built on libsodium.
 * Must not: do I/O, read the clock (the caller passes the time), log, or put
 * the key, a signature, a SAS token or the string-to-sign into an error
 * message. The decoded key is wiped by cs_azsign_key_wipe.
 *
 * Typical use in the driver (Shared Key):
 *     cs_azsign_pair q[] = { { "comp", "block" }, { "blockid", id } };
 *     cs_buf path = "/container/" + cs_azsign_uri_encode(blob, keep '/');
 *     cs_azsign_pair h[] = { { "x-ms-date", date }, { "x-ms-version", ver } };
 *     cs_azsign_request r = { "PUT", path, q, 2, h, 2, body_len };
 *     cs_azsign_authorization(account, &key, &r, &auth, e);
 *     url = endpoint + path + "?" + cs_azsign_query_string(q, 2, NULL)
 *     send h, "Authorization: " auth, and the body (curl adds Content-Length);
 * with a SAS: no Authorization, and cs_azsign_query_string(q, 2, sas). */
#ifndef CS_STORAGE_AZSIGN_H
#define CS_STORAGE_AZSIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"

/* The x-ms-version every request carries: Put Block List, If-None-Match
 * on Put Blob, List Blobs with markers and Blob Batch are all older. */
#define CS_AZSIGN_VERSION "2021-08-06"
#define CS_AZSIGN_DATE 30    /* "Sun, 11 Oct 2009 21:49:13 GMT" and a NUL */
#define CS_AZSIGN_KEY_MAX 128 /* Azure account keys decode to 64 bytes */

/* A query parameter or a header, as given (unencoded, any case). */
typedef struct cs_azsign_pair {
    const char *name;
    const char *value; /* "" for a parameter without a value */
} cs_azsign_pair;

/* The decoded account key. Wipe it when done. */
typedef struct cs_azsign_key {
    uint8_t bytes[CS_AZSIGN_KEY_MAX];
    size_t len;
} cs_azsign_key;

/* Decode the base64 account key (standard alphabet, padded). CS_E_INVAL
 * for anything else, with a sentence that does not quote it. */
int cs_azsign_key_decode(const char *base64, cs_azsign_key *out, cs_err *e);
void cs_azsign_key_wipe(cs_azsign_key *k);

/* One request as it is sent. */
typedef struct cs_azsign_request {
    const char *method;            /* "GET", "PUT", ... */
    const char *path;              /* the ENCODED absolute path as sent: "/container/a%20b",
                                      "/devstoreaccount1/container/a%20b" on the emulator */
    const cs_azsign_pair *query;   /* nquery parameters, any order, unencoded (never the SAS) */
    size_t nquery;
    const cs_azsign_pair *headers; /* every header sent that the signature covers: the
                                      standard ones that are set (Content-Type, Range,
                                      If-None-Match, ...) and every x-ms-* header, x-ms-date
                                      and x-ms-version included */
    size_t nheaders;
    uint64_t content_length;       /* of the body (curl sends the header) */
} cs_azsign_request;

/* The string-to-sign of r for account (appended to out, which is reset
 * first). Header names must be HTTP tokens, each at most once (any case);
 * Content-Length is never among them (it is r->content_length); values and
 * query parameters must not hold control characters but tab. Query names
 * are lowercased; a name given more than once gets its values sorted and
 * joined with ','. CS_E_INVAL otherwise. */
int cs_azsign_string_to_sign(const char *account, const cs_azsign_request *r, cs_buf *out, cs_err *e);

/* The Authorization header's value, "SharedKey account:base64(HMAC)",
 * into out (reset first). The string-to-sign is wiped from memory after use. */
int cs_azsign_authorization(const char *account, const cs_azsign_key *key, const cs_azsign_request *r,
                            cs_buf *out, cs_err *e);

/* The x-ms-date form of t (RFC 1123, always English names, always GMT).
 * CS_E_INVAL when t is outside years 1970..9999. */
int cs_azsign_format_date(time_t t, char out[CS_AZSIGN_DATE], cs_err *e);

/* Append the URL encoding of s[0..n) to out: A-Z a-z 0-9 - . _ ~ are kept,
 * every other byte becomes %XX (uppercase hex); '/' is kept when keep_slash
 * (paths) and encoded otherwise (query names and values). */
void cs_azsign_uri_encode(const char *s, size_t n, bool keep_slash, cs_buf *out);

/* Append "name=value&..." (each encoded, in the order given), then the SAS
 * token (as given, after '&' when parameters precede it) when sas is not
 * NULL. The result holds the SAS: never log a URL built with one. */
void cs_azsign_query_string(const cs_azsign_pair *q, size_t n, const char *sas, cs_buf *out);

/* Check a SAS token and return it without a leading '?' in *out (heap,
 * the caller frees it): a query string of name=value pairs whose names and
 * values hold only URL characters (unreserved, %XX escapes and : , / + =
 * as some tools leave them), with a sig parameter and an sv parameter.
 * CS_E_INVAL otherwise, with a sentence that never quotes the token. */
int cs_azsign_sas_check(const char *sas, char **out, cs_err *e);

#endif
