/* state_nocql.c - the stand-in for the cassandra state store in a cassette
 * built without state_cql.c. Weak, and in a file of its own that sorts
 * after state_cql.c, so that a real cs_state_cql_open replaces it (see
 * state_impl.h). */
#include "server/state_impl.h"

__attribute__((weak)) int cs_state_cql_open(const char *url, const cs_state_opts *o, cs_state **out, cs_err *e)
{
    (void)url;
    (void)o;
    *out = NULL;
    return cs_err_set(e, CS_E_USAGE, "this cassette has no cassandra state store");
}
