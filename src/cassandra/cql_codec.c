/* cql_codec.c - the CQL frame codec (see cql_codec.h): request envelopes,
 * response headers and extras, RESULT and ERROR bodies, result accessors.
 *
 * v4 and v5 share it: the envelope ("frame" in v4) layout and the message
 * bodies are the same but for the few places that test the version (QUERY
 * flags width, the failure count in ERROR bodies).
 *
 * The decoders are pure and fuzzed (tests/fuzz/fuzz_cql.c): every length
 * that comes from the peer is checked against the bytes actually left
 * before it is used, and counts are checked against the remaining input
 * before anything is allocated for them. */
#include "cassandra/cql_codec.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cassandra/cql_value.h"
#include "cassandra/cql_wire.h"
#include "common/log.h"

/* A no_metadata result carries a column count with nothing to check it
 * against; no real table comes near this. */
#define CQL_MAX_COLS 65536

enum cql_frame_flag {
    FRAME_COMPRESSED = 0x01,
    FRAME_TRACING = 0x02,
    FRAME_CUSTOM_PAYLOAD = 0x04,
    FRAME_WARNING = 0x08,
};

enum cql_result_kind {
    RESULT_VOID = 1,
    RESULT_ROWS = 2,
    RESULT_SET_KEYSPACE = 3,
    RESULT_PREPARED = 4,
    RESULT_SCHEMA_CHANGE = 5,
};

enum cql_rows_flag {
    ROWS_GLOBAL_TABLES_SPEC = 0x0001,
    ROWS_HAS_MORE_PAGES = 0x0002,
    ROWS_NO_METADATA = 0x0004,
    ROWS_METADATA_CHANGED = 0x0008, /* v5 */
};

enum cql_query_flag {
    QUERY_PAGE_SIZE = 0x04,
    QUERY_PAGING_STATE = 0x08,
};

struct cql_result {
    size_t ncols;
    char **colnames; /* entries NULL when the server sent no metadata */
    size_t nrows;
    cql_value *cells; /* row-major, nrows * ncols */
    size_t cap_cells;
    bool schema_changed; /* a SCHEMA_CHANGE result: the statement changed the schema */
};

/* ---------------------------------------------------------------------
 * Requests. */

static void put_u8(cs_buf *b, uint8_t v) { cs_buf_add(b, &v, 1); }

static void put_u16(cs_buf *b, uint16_t v)
{
    uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    cs_buf_add(b, p, 2);
}

static void put_u32(cs_buf *b, uint32_t v)
{
    uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    cs_buf_add(b, p, 4);
}

/* [string]; callers only pass short constants. */
static void put_string(cs_buf *b, const char *s)
{
    size_t n = strlen(s);
    put_u16(b, (uint16_t)n);
    cs_buf_add(b, s, n);
}

/* [bytes] / [long string]; n was checked to fit an [int] by the caller. */
static void put_bytes(cs_buf *b, const void *p, size_t n)
{
    put_u32(b, (uint32_t)n);
    cs_buf_add(b, p, n);
}

static void frame_begin(cs_buf *b, int version, int16_t stream, uint8_t opcode)
{
    cs_buf_reset(b);
    put_u8(b, (uint8_t)version);
    put_u8(b, 0); /* no flags: no compression, no tracing, no beta */
    put_u16(b, (uint16_t)stream);
    put_u8(b, opcode);
    put_u32(b, 0); /* patched by frame_finish */
}

static void frame_finish(cs_buf *b)
{
    uint32_t n = (uint32_t)(b->len - CQL_HEADER_LEN);
    uint8_t *p = (uint8_t *)b->data + 5;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
}


void cql_encode_startup(cs_buf *req, int version, int16_t stream)
{
    frame_begin(req, version, stream, OP_STARTUP);
    put_u16(req, 1);
    put_string(req, "CQL_VERSION");
    put_string(req, "3.0.0");
    frame_finish(req);
}

void cql_encode_auth_response(cs_buf *req, int version, int16_t stream, const char *user,
                              const char *password)
{
    size_t ul = strlen(user), pl = strlen(password);
    frame_begin(req, version, stream, OP_AUTH_RESPONSE);
    put_u32(req, (uint32_t)(ul + pl + 2));
    cs_buf_addch(req, '\0');
    cs_buf_add(req, user, ul);
    cs_buf_addch(req, '\0');
    cs_buf_add(req, password, pl);
    frame_finish(req);
}

void cql_encode_query(cs_buf *req, int version, int16_t stream, const char *cql,
                      size_t cql_len, uint16_t consistency, const uint8_t *ps, size_t ps_len)
{
    uint32_t flags = QUERY_PAGE_SIZE | (ps ? QUERY_PAGING_STATE : 0);
    frame_begin(req, version, stream, OP_QUERY);
    put_bytes(req, cql, cql_len);
    put_u16(req, consistency);
    if (version >= CQL_V5)
        put_u32(req, flags); /* v5 widened the flags from a [byte] to an [int] */
    else
        put_u8(req, (uint8_t)flags);
    put_u32(req, CQL_PAGE_SIZE);
    if (ps)
        put_bytes(req, ps, ps_len);
    frame_finish(req);
}

/* ---------------------------------------------------------------------
 * Response envelopes. */

/* The body length in an envelope header, within the protocol's limit. */
int cql_envelope_len(const uint8_t *h, size_t *len, cs_err *e)
{
    int32_t n = (int32_t)be32(h + 5);
    if (n < 0 || (size_t)n > CQL_MAX_BODY)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL response: frame length %" PRId32
                          " is outside 0..256 MiB", n);
    *len = (size_t)n;
    return 0;
}

/* Skip what a response may carry before its message, by header flag. The
 * warnings go to the debug log: they are the server's, never ours. */
static int strip_extras(uint8_t flags, int version, cql_rd *r, cs_err *e)
{
    const uint8_t *s;
    size_t n;
    bool null;
    uint16_t count;
    /* v5 moved compression into the segments and ignores this flag. */
    if ((flags & FRAME_COMPRESSED) && version < CQL_V5)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL response: a compressed frame, but no "
                                         "compression was negotiated");
    if ((flags & FRAME_TRACING) && rd_raw(r, 16, &s, "tracing id", e))
        return CS_E_PROTO;
    if (flags & FRAME_WARNING) {
        if (rd_u16(r, &count, "warning list", e))
            return CS_E_PROTO;
        for (size_t i = 0; i < count; i++) {
            if (rd_string(r, &s, &n, "warning", e))
                return CS_E_PROTO;
            cs_debug("Cassandra warning: %.*s", (int)n, (const char *)s);
        }
    }
    if (flags & FRAME_CUSTOM_PAYLOAD) {
        if (rd_u16(r, &count, "custom payload", e))
            return CS_E_PROTO;
        for (size_t i = 0; i < count; i++)
            if (rd_string(r, &s, &n, "custom payload key", e) ||
                rd_bytes(r, &s, &n, &null, "custom payload value", e))
                return CS_E_PROTO;
    }
    return 0;
}

int cql_response_payload(uint8_t flags, int version, const uint8_t *body, size_t len,
                         const uint8_t **payload, size_t *plen, cs_err *e)
{
    cql_rd r = { body, len, "response" };
    int rc = strip_extras(flags, version, &r, e);
    if (rc)
        return rc;
    *payload = r.p;
    *plen = r.left;
    return 0;
}

/* ---------------------------------------------------------------------
 * RESULT and ERROR bodies. */

/* Column specs: (<ks><table>)?<name><type> each; types[] and names[] are
 * allocated by the caller with ncols zeroed entries. */
static int parse_colspecs(cql_rd *r, bool global, size_t ncols, char **names, cql_type *types,
                          cs_err *e)
{
    const uint8_t *s;
    size_t slen;
    if (global && (rd_string(r, &s, &slen, "keyspace name", e) ||
                   rd_string(r, &s, &slen, "table name", e)))
        return CS_E_PROTO;
    /* A spec is at least a [string] length and an [option] id (plus two
     * [string] lengths without the global spec). */
    if (ncols > r->left / (global ? 4 : 8))
        return rd_fail(r, e, "column specification list");
    for (size_t i = 0; i < ncols; i++) {
        if (!global && (rd_string(r, &s, &slen, "keyspace name", e) ||
                        rd_string(r, &s, &slen, "table name", e)))
            return CS_E_PROTO;
        if (rd_string(r, &s, &slen, "column name", e))
            return CS_E_PROTO;
        names[i] = cs_strndup((const char *)s, slen);
        if (cql_type_parse(r, &types[i], e))
            return CS_E_PROTO;
    }
    return 0;
}

/* The <rows_count><rows_content> part, decoded with the column types. */
static int parse_rows_content(cql_rd *r, cql_result *res, const cql_type *types, cs_err *e)
{
    int32_t nrows;
    if (rd_i32(r, &nrows, "row count", e))
        return CS_E_PROTO;
    if (nrows < 0)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL RESULT: negative row count %" PRId32,
                          nrows);
    if (nrows > 0 && res->ncols == 0)
        return cs_err_set(e, CS_E_PROTO, "malformed CQL RESULT: %" PRId32 " rows without columns",
                          nrows);
    /* Each cell is at least its 4-byte length: check before allocating. */
    if (res->ncols && (size_t)nrows > r->left / 4 / res->ncols)
        return rd_fail(r, e, "row data");
    size_t total = (size_t)nrows * res->ncols;
    res->cells = cs_calloc(total, sizeof *res->cells);
    res->cap_cells = total;
    res->nrows = (size_t)nrows;
    for (size_t i = 0; i < total; i++)
        if (cql_cell_decode(r, &types[i % res->ncols], &res->cells[i], e))
            return CS_E_PROTO;
    return 0;
}

/* Rows: <flags><columns_count>[<paging_state>][specs]<rows_count><rows>.
 * *ps receives a copy of the paging state when more pages follow. */
static int parse_rows(cql_rd *r, cql_result *res, uint8_t **ps, size_t *ps_len, cs_err *e)
{
    int32_t flags, ncols;
    cql_type *types = NULL;
    int rc = CS_E_PROTO;
    if (rd_i32(r, &flags, "row metadata flags", e) || rd_i32(r, &ncols, "column count", e))
        goto out;
    if (ncols < 0 || ncols > CQL_MAX_COLS) {
        rc = cs_err_set(e, CS_E_PROTO, "malformed CQL RESULT: column count %" PRId32
                        " is out of range", ncols);
        goto out;
    }
    if (flags & ROWS_HAS_MORE_PAGES) {
        const uint8_t *p;
        bool null;
        if (rd_bytes(r, &p, ps_len, &null, "paging state", e))
            goto out;
        if (null) {
            rc = cs_err_set(e, CS_E_PROTO,
                            "malformed CQL RESULT: more pages announced without a paging state");
            goto out;
        }
        *ps = cs_malloc(*ps_len);
        if (*ps_len)
            memcpy(*ps, p, *ps_len);
    }
    if (flags & ROWS_METADATA_CHANGED) {
        /* v5: the new result metadata id of a prepared statement, [short
         * bytes]. We never prepare, so it only has to be stepped over. */
        const uint8_t *id;
        size_t id_len;
        if (rd_string(r, &id, &id_len, "new metadata id", e))
            goto out;
    }
    res->ncols = (size_t)ncols;
    res->colnames = cs_calloc(res->ncols, sizeof *res->colnames);
    types = cs_calloc(res->ncols, sizeof *types);
    if (flags & ROWS_NO_METADATA) {
        /* We never ask for this; if it comes anyway, show cells as hex. */
        for (size_t i = 0; i < res->ncols; i++)
            types[i].id = T_BLOB;
    } else if (parse_colspecs(r, (flags & ROWS_GLOBAL_TABLES_SPEC) != 0, res->ncols,
                              res->colnames, types, e)) {
        goto out;
    }
    rc = parse_rows_content(r, res, types, e);
out:
    for (size_t i = 0; types && i < res->ncols; i++)
        cql_type_free(&types[i]);
    free(types);
    return rc;
}

/* Schema_change: <change_type><target><options>, where the options depend
 * on the target. Nothing here is needed (DDL returns an empty result), but
 * the known shapes are checked so a cut-off body is not taken as success. */
static int parse_schema_change(cql_rd *r, cs_err *e)
{
    const uint8_t *s, *target;
    size_t n, tlen;
    uint16_t count;
    if (rd_string(r, &s, &n, "schema change type", e) ||
        rd_string(r, &target, &tlen, "schema change target", e))
        return CS_E_PROTO;
    char t[16] = "";
    if (tlen < sizeof t)
        memcpy(t, target, tlen);
    if (strcmp(t, "KEYSPACE") == 0)
        return rd_string(r, &s, &n, "schema change keyspace", e);
    if (strcmp(t, "TABLE") && strcmp(t, "TYPE") && strcmp(t, "FUNCTION") &&
        strcmp(t, "AGGREGATE"))
        return 0; /* a target newer than v4: its options are ours to ignore */
    if (rd_string(r, &s, &n, "schema change keyspace", e) ||
        rd_string(r, &s, &n, "schema change object name", e))
        return CS_E_PROTO;
    if (strcmp(t, "FUNCTION") && strcmp(t, "AGGREGATE"))
        return 0;
    if (rd_u16(r, &count, "schema change argument types", e))
        return CS_E_PROTO;
    for (size_t i = 0; i < count; i++)
        if (rd_string(r, &s, &n, "schema change argument type", e))
            return CS_E_PROTO;
    return 0;
}

int cql_decode_result(const uint8_t *body, size_t len, cql_result **out,
                      uint8_t **paging_state, size_t *paging_len, cs_err *e)
{
    cql_rd r = { body, len, "RESULT" };
    cql_result *res = cs_calloc(1, sizeof *res);
    uint8_t *ps = NULL;
    size_t ps_len = 0;
    int32_t kind;
    const uint8_t *s;
    size_t slen;
    int rc = CS_E_PROTO;
    *out = NULL;
    if (paging_state)
        *paging_state = NULL;
    if (paging_len)
        *paging_len = 0;
    if (rd_i32(&r, &kind, "result kind", e))
        goto out;
    switch (kind) {
    case RESULT_VOID:
        rc = 0;
        break;
    case RESULT_ROWS:
        rc = parse_rows(&r, res, &ps, &ps_len, e);
        break;
    case RESULT_SET_KEYSPACE:
        rc = rd_string(&r, &s, &slen, "keyspace name", e);
        break;
    case RESULT_SCHEMA_CHANGE:
        rc = parse_schema_change(&r, e);
        if (!rc && res)
            res->schema_changed = true;
        break;
    case RESULT_PREPARED:
        rc = cs_err_set(e, CS_E_PROTO, "unexpected CQL RESULT: a Prepared result, but cassette "
                                       "never prepares statements");
        break;
    default:
        rc = cs_err_set(e, CS_E_PROTO, "malformed CQL RESULT: unknown result kind %" PRId32,
                        kind);
        break;
    }
    /* Extra bytes at the end are allowed: the spec reserves them for
     * future extensions. */
out:
    if (rc) {
        free(ps);
        cql_result_free(res);
        return rc;
    }
    if (paging_state) {
        *paging_state = ps;
        if (paging_len)
            *paging_len = ps_len;
    } else {
        free(ps);
    }
    *out = res;
    return 0;
}

static const char *const consistency_names[] = {
    "ANY", "ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM",
    "SERIAL", "LOCAL_SERIAL", "LOCAL_ONE",
};
#define CQL_N_CONSISTENCY (sizeof consistency_names / sizeof consistency_names[0])

const char *cql_consistency_name(uint16_t consistency)
{
    return consistency < CQL_N_CONSISTENCY ? consistency_names[consistency] : "unknown";
}

bool cql_consistency_valid(uint16_t consistency)
{
    return consistency < CQL_N_CONSISTENCY;
}

int cql_consistency_parse(const char *name, uint16_t *out, cs_err *e)
{
    for (size_t i = 0; name && i < CQL_N_CONSISTENCY; i++) {
        if (strcasecmp(name, consistency_names[i]) == 0) {
            *out = (uint16_t)i;
            return 0;
        }
    }
    return cs_err_set(e, CS_E_INVAL,
                      "unknown consistency level '%.64s' (use ONE, TWO, THREE, QUORUM, ALL, "
                      "LOCAL_QUORUM, EACH_QUORUM, LOCAL_ONE, SERIAL, LOCAL_SERIAL or ANY)",
                      name ? name : "");
}

/* What an ERROR code means, in the words the message starts with. */
static const char *error_kind(int32_t code)
{
    switch (code) {
    case 0x0000: return "server error";
    case 0x000A: return "protocol error";
    case 0x0100: return "bad credentials";
    case 0x1000: return "unavailable";
    case 0x1001: return "overloaded";
    case 0x1002: return "node is bootstrapping";
    case 0x1003: return "truncate error";
    case 0x1100: return "write timeout";
    case 0x1200: return "read timeout";
    case 0x1300: return "read failure";
    case 0x1400: return "function failure";
    case 0x1500: return "write failure";
    case 0x1600: return "CDC write failure";
    case 0x1700: return "CAS write unknown";
    case 0x2000: return "syntax error";
    case 0x2100: return "unauthorized";
    case 0x2200: return "invalid query";
    case 0x2300: return "configuration error";
    case 0x2400: return "already exists";
    case 0x2500: return "unprepared statement";
    default: return NULL;
    }
}

/* The <cl><received|required><blockfor|alive> head shared by Unavailable,
 * the timeouts and the failures. False if the body stops short. */
static bool read_cl_counts(cql_rd *r, uint16_t *cl, int32_t *a, int32_t *b)
{
    return !rd_u16(r, cl, "consistency", NULL) && !rd_i32(r, a, "count", NULL) &&
           !rd_i32(r, b, "count", NULL);
}

/* v5 <reasonmap>: an [int] n, then n pairs of <endpoint> ([inetaddr]: a
 * [byte] size and the address) and <failurecode> ([short]). Only n is
 * kept. False if the body stops short. */
static bool read_reasonmap(cql_rd *r, int32_t *n)
{
    const uint8_t *p;
    uint16_t code;
    if (rd_i32(r, n, "reason map", NULL) || *n < 0)
        return false;
    for (int32_t i = 0; i < *n; i++) {
        if (rd_raw(r, 1, &p, "endpoint", NULL))
            return false;
        size_t alen = p[0];
        if (rd_raw(r, alen, &p, "endpoint", NULL) || rd_u16(r, &code, "failure code", NULL))
            return false;
    }
    return true;
}

/* How many replicas failed, in Read_failure and Write_failure: an [int]
 * <numfailures> in v4, the size of the <reasonmap> that replaced it in v5. */
static bool read_failures(cql_rd *r, int version, int32_t *failures)
{
    if (version >= CQL_V5)
        return read_reasonmap(r, failures);
    return !rd_i32(r, failures, "count", NULL);
}

int cql_decode_error(const uint8_t *body, size_t len, int version, cs_err *e)
{
    cql_rd r = { body, len, "ERROR" };
    int32_t code;
    const uint8_t *msg;
    size_t n;
    if (rd_i32(&r, &code, "error code", e) || rd_string(&r, &msg, &n, "error message", e))
        return CS_E_PROTO;
    const char *kind = error_kind(code);
    if (!kind)
        return cs_err_set(e, CS_E_EXTERNAL, "Cassandra error 0x%04" PRIX32 ": %.*s",
                          (uint32_t)code, (int)n, (const char *)msg);
    /* Where the code carries numbers, they say more than the server's
     * sentence ("Cannot achieve consistency level QUORUM"); details that are
     * cut short are simply left out. */
    uint16_t cl;
    int32_t a, b, failures;
    const uint8_t *s;
    size_t slen;
    uint8_t present;
    switch (code) {
    case 0x1000: /* Unavailable: <cl><required><alive> */
        if (read_cl_counts(&r, &cl, &a, &b))
            return cs_err_set(e, CS_E_EXTERNAL,
                              "unavailable: not enough replicas (required %" PRId32
                              ", alive %" PRId32 ") at %s",
                              a, b, cql_consistency_name(cl));
        break;
    case 0x1100: /* Write_timeout: <cl><received><blockfor><writeType> */
        if (read_cl_counts(&r, &cl, &a, &b) && !rd_string(&r, &s, &slen, "write type", NULL))
            return cs_err_set(e, CS_E_EXTERNAL,
                              "write timeout: %" PRId32 " of %" PRId32
                              " replicas acknowledged the %.*s write at %s in time",
                              a, b, (int)slen, (const char *)s, cql_consistency_name(cl));
        break;
    case 0x1200: /* Read_timeout: <cl><received><blockfor><data_present> */
        if (read_cl_counts(&r, &cl, &a, &b) && r.left >= 1) {
            present = r.p[0];
            return cs_err_set(e, CS_E_EXTERNAL,
                              "read timeout: %" PRId32 " of %" PRId32
                              " replicas answered at %s in time%s",
                              a, b, cql_consistency_name(cl),
                              !present && a >= b ? " (but not the one asked for the data)" : "");
        }
        break;
    case 0x1300: /* Read_failure: <cl><received><blockfor><numfailures|reasonmap><data_present> */
        if (read_cl_counts(&r, &cl, &a, &b) && read_failures(&r, version, &failures))
            return cs_err_set(e, CS_E_EXTERNAL,
                              "read failure: %" PRId32 " of %" PRId32 " replicas answered, %" PRId32
                              " failed, at %s: %.*s",
                              a, b, failures, cql_consistency_name(cl), (int)n, (const char *)msg);
        break;
    case 0x1500: /* Write_failure: <cl><received><blockfor><numfailures|reasonmap><writeType> */
        if (read_cl_counts(&r, &cl, &a, &b) && read_failures(&r, version, &failures) &&
            !rd_string(&r, &s, &slen, "write type", NULL))
            return cs_err_set(e, CS_E_EXTERNAL,
                              "write failure: %" PRId32 " of %" PRId32
                              " replicas acknowledged the %.*s write, %" PRId32 " failed, at %s: %.*s",
                              a, b, (int)slen, (const char *)s, failures,
                              cql_consistency_name(cl), (int)n, (const char *)msg);
        break;
    default:
        break;
    }
    return cs_err_set(e, CS_E_EXTERNAL, "%s: %.*s", kind, (int)n, (const char *)msg);
}

/* True when the ERROR a server sent in answer to a STARTUP at version tried
 * says it does not speak that version, so the client should reconnect at
 * v4. Servers answer a version they do not know with a protocol error
 * (0x000A): in their own, older version (3.x: "Invalid or unsupported
 * protocol version (5); ..."), or in the version asked, naming it (or
 * calling it beta when v5 was still one). Any other error is final. */
bool cql_startup_rejects_version(int tried, int answered, const uint8_t *body, size_t len)
{
    cql_rd r = { body, len, "ERROR" };
    int32_t code;
    const uint8_t *msg;
    size_t n;
    if (tried <= CQL_V4 || rd_i32(&r, &code, "error code", NULL) || code != 0x000A)
        return false;
    if (answered < tried)
        return true;
    if (rd_string(&r, &msg, &n, "error message", NULL))
        return false;
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)n, (const char *)msg);
    return strcasestr(text, "protocol version") || strcasestr(text, "beta");
}

/* ---------------------------------------------------------------------
 * Result accessors. */

bool cql_result_schema_changed(const cql_result *r)
{
    return r && r->schema_changed;
}

size_t cql_result_rows(const cql_result *r) { return r ? r->nrows : 0; }
size_t cql_result_cols(const cql_result *r) { return r ? r->ncols : 0; }

const char *cql_result_colname(const cql_result *r, size_t col)
{
    if (!r || col >= r->ncols)
        return NULL;
    return r->colnames[col] ? r->colnames[col] : "";
}

int cql_result_col(const cql_result *r, const char *name)
{
    for (size_t i = 0; r && name && i < r->ncols && i < INT_MAX; i++)
        if (r->colnames[i] && strcmp(r->colnames[i], name) == 0)
            return (int)i;
    return -1;
}

const cql_value *cql_result_value(const cql_result *r, size_t row, size_t col)
{
    if (!r || row >= r->nrows || col >= r->ncols)
        return NULL;
    return &r->cells[row * r->ncols + col];
}

const char *cql_result_text(const cql_result *r, size_t row, const char *col)
{
    int i = cql_result_col(r, col);
    if (i < 0)
        return NULL;
    const cql_value *v = cql_result_value(r, row, (size_t)i);
    return v && v->kind == CQL_SCALAR ? v->text : NULL;
}

void cql_result_free(cql_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nrows * r->ncols; i++)
        cql_value_free(&r->cells[i]);
    for (size_t i = 0; i < r->ncols; i++)
        free(r->colnames[i]);
    free(r->cells);
    free(r->colnames);
    free(r);
}

int cql_result_append(cql_result *dst, cql_result *src, cs_err *e)
{
    int rc = 0;
    if (src->nrows && src->ncols != dst->ncols) {
        rc = cs_err_set(e, CS_E_PROTO,
                        "malformed CQL RESULT: a later page has %zu columns, the first had %zu",
                        src->ncols, dst->ncols);
        goto out;
    }
    size_t add = src->nrows * src->ncols, have = dst->nrows * dst->ncols;
    if (add > dst->cap_cells - have) {
        size_t cap = dst->cap_cells ? dst->cap_cells : 64;
        while (cap - have < add)
            cap *= 2; /* bounded by memory we already hold, so no overflow */
        dst->cells = cs_realloc(dst->cells, cap * sizeof *dst->cells);
        dst->cap_cells = cap;
    }
    if (add)
        memcpy(dst->cells + have, src->cells, add * sizeof *src->cells);
    dst->nrows += src->nrows;
    src->nrows = 0; /* the values now belong to dst */
out:
    cql_result_free(src);
    return rc;
}

