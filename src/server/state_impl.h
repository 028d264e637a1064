/* state_impl.h - the back-end interface of the server's state store
 * (internal to src/server/state*.c; everything else uses state.h).
 *
 * Owns: the table of functions a back end fills (cs_state_ops) and the
 * part of a cs_state that state.c keeps (struct cs_server_state), so that state.h
 * has one implementation of its rules that hold for every back end:
 *   - state.c checks every argument before forwarding it: documents are
 *     objects, ids (a record's "id", a task's "cluster", an owner) are
 *     non-empty strings of at most CS_STATE_ID_MAX bytes, a run's "state"
 *     and a cas's `from` are one of the six run states, a run filter's
 *     state is one of them or "open", limits are 1..CS_STATE_LIMIT_MAX
 *     (0 becomes 100, more becomes the maximum). A back end gets only
 *     checked input and checks again only what its own storage needs;
 *   - state.c makes export and import out of the other functions and
 *     ops->export_runs, so a back end does not write them.
 * A back end allocates a struct whose first member is a cs_state, fills
 * ops, and returns &that.base from its open function; ops->close frees it.
 * The back ends: state_sqlite.c (cs_state_sqlite_open) and state_cql.c
 * (cs_state_cql_open).
 * Every function of ops may be called from several threads at once.
 * Must not: be included outside src/server/state*.c. */
#ifndef CS_SERVER_STATE_IMPL_H
#define CS_SERVER_STATE_IMPL_H

#include "server/state.h"

#define CS_STATE_ID_MAX 128     /* bytes of an id */
#define CS_STATE_LIMIT_DEFAULT 100
#define CS_STATE_LIMIT_MAX 1000 /* records one list call returns at most */

typedef struct cs_state_ops {
    const char *kind; /* "sqlite", "cassandra" */
    void (*close)(cs_state *s);

    /* As state.h, with checked arguments (see above). */
    int (*cluster_put)(cs_state *s, const json_t *doc, bool create, cs_err *e);
    int (*cluster_get)(cs_state *s, const char *id, json_t **out, cs_err *e);
    int (*cluster_list)(cs_state *s, json_t **out, cs_err *e);
    int (*cluster_delete)(cs_state *s, const char *id, cs_err *e);

    int (*task_put)(cs_state *s, const json_t *doc, bool create, cs_err *e);
    int (*task_get)(cs_state *s, const char *id, json_t **out, cs_err *e);
    int (*task_list)(cs_state *s, const char *cluster, json_t **out, cs_err *e);
    int (*task_delete)(cs_state *s, const char *id, cs_err *e);

    int (*run_add)(cs_state *s, const json_t *doc, cs_err *e);
    int (*run_update)(cs_state *s, const json_t *doc, cs_err *e);
    int (*run_cas)(cs_state *s, const char *from, const json_t *doc, bool *applied, cs_err *e);
    int (*run_get)(cs_state *s, const char *id, json_t **out, cs_err *e);
    /* f->limit is already 1..CS_STATE_LIMIT_MAX. */
    int (*run_list)(cs_state *s, const cs_run_filter *f, json_t **out, cs_err *e);
    int (*run_cancel)(cs_state *s, const char *id, char state_out[16], cs_err *e);
    int (*run_cancel_asked)(cs_state *s, const char *id, bool *asked, cs_err *e);
    /* Append to the array out every final run queued at or after since
     * (export; any order, however many there are). */
    int (*export_runs)(cs_state *s, double since, json_t *out, cs_err *e);

    int (*prune)(cs_state *s, double before, cs_err *e);

    /* entry["at"] is a number. */
    int (*audit_add)(cs_state *s, const json_t *entry, cs_err *e);
    /* limit is already 1..CS_STATE_LIMIT_MAX. */
    int (*audit_list)(cs_state *s, size_t limit, json_t **out, cs_err *e);

    /* ttl > 0. */
    int (*lease)(cs_state *s, const char *owner, double ttl, bool *held, uint64_t *epoch, cs_err *e);
    int (*lease_release)(cs_state *s, const char *owner, cs_err *e);
    int (*lease_get)(cs_state *s, json_t **out, cs_err *e);
} cs_state_ops;

/* The head of every back end's handle. */
struct cs_server_state {
    const cs_state_ops *ops;
    double history_seconds; /* set by cs_state_open from the options (30 days by default) */
};

/* The back ends' open functions: url is what follows "sqlite:" (a path)
 * for sqlite, the whole "cassandra://..." url for cassandra. */
int cs_state_sqlite_open(const char *path, const cs_state_opts *o, cs_state **out, cs_err *e);
int cs_state_cql_open(const char *url, const cs_state_opts *o, cs_state **out, cs_err *e);

/* Shared checks for the back ends (times: cs_now of common/fs.h). */
/* Whether name is one of the six run states. */
/* The epoch a lease taken now gets after prev: prev + 1, and never below
 * the time in milliseconds, so that the first lease of a new store (a
 * server moved to another machine, a store rebuilt from an export)
 * outranks every epoch an older store gave out and the agents it fenced
 * still serve it (state.h, the lease). */
uint64_t cs_state_epoch_after(uint64_t prev, double now);
/* lease_get's document from the lease row: {"owner", "epoch", "expires"},
 * owner null (and no expires) when nobody holds it at now. */
json_t *cs_state_lease_doc(const char *owner, uint64_t epoch, double expires, double now);
bool cs_state_known(const char *name);
/* Whether name is a final run state (done, failed, cancelled, interrupted). */
bool cs_state_final(const char *name);
/* doc[key] as a checked id (what names the record in errors: "cluster",
 * "task", ...; CS_E_INVAL with e->field = key when it is missing or bad). */
int cs_state_doc_id(const json_t *doc, const char *key, const char *what, const char **id, cs_err *e);
#endif
