/* drill.c - the checks of a restore drill (see drill.h). */
#include "ops/drill.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"

void cs_drill_new_id(char out[9])
{
    uint8_t b[4];
    randombytes_buf(b, sizeof b);
    snprintf(out, 9, "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
}

static bool is_drill_id(const char *id)
{
    if (!id || strlen(id) != 8)
        return false;
    for (const char *p = id; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

int cs_drill_scratch_name(const char *drill_id, const char *ks, char *out, size_t cap, cs_err *e)
{
    if (!is_drill_id(drill_id))
        return cs_err_set(e, CS_E_USAGE, "invalid drill id \"%s\" (8 lowercase hex digits)", drill_id ? drill_id : "");
    if (cap < CS_DRILL_KS_MAX + 1)
        return cs_err_set(e, CS_E_INVAL, "no room for a scratch keyspace name (a bug)");
    snprintf(out, CS_DRILL_KS_MAX + 1, "%s%s_%s", CS_DRILL_PREFIX, drill_id, ks);
    return 0;
}

static json_int_t report_int(const json_t *r, const char *key)
{
    return json_integer_value(json_object_get(r, key));
}

int cs_drill_reports_verdict(const json_t *reports, cs_err *e)
{
    size_t i;
    const json_t *r;
    json_array_foreach(reports, i, r) {
        json_int_t lost = report_int(r, "lost"), bad = report_int(r, "mismatched");
        if (!lost && !bad)
            continue;
        const char *table = json_string_value(json_object_get(r, "table"));
        const char *first = json_string_value(json_array_get(json_object_get(r, "problems"), 0));
        return cs_err_set(e, CS_E_CORRUPT, "%s: %lld rows lost and %lld rows different from the live table%s%s",
                          table ? table : "?", (long long)lost, (long long)bad, first ? ": " : "", first ? first : "");
    }
    return 0;
}

int cs_drill_check_table(cql_conn *conn, const char *ks, const char *table, const char *scratch_ks,
                         const cs_drill_opts *o, cs_job *job, json_t **report, cs_err *e)
{
    (void)conn;
    (void)o;
    (void)job;
    *report = NULL;
    return cs_err_set(e, CS_E_INVAL, "checking %s.%s against %s.%s is not there yet", scratch_ks, table, ks, table);
}
