/* restore.c - cluster restore: a backup set back into a cluster (see cluster.h).
 *
 * The plan first: which source node's backup goes to which target node
 * (same host ids: in place; else a host map, given or made by DC and rack
 * in token order, and then every target must own its source's tokens),
 * with bytes and files per node. It runs only when confirmed (--yes); --plan
 * prints it and stops. Then each target's agent restores its source node's
 * files with the node restore (import into a running node, replace on a
 * stopped one), --parallel-nodes at a time. Into another cluster, the first
 * node restores alone so that the schema is created once, then the others.
 * Every safety rule of the node restore holds on each node (nothing live is
 * deleted; what is replaced is moved aside; files are checked before they
 * are placed). */
#include "cluster/cluster.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/coord.h"
#include "cluster/cover.h"
#include "cassandra/node.h"
#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/parallel.h"
#include "ops/ops.h"
#include "repo/set.h"

typedef struct crestore {
    cs_coord coord;
    const cs_cluster_restore_req *req;
    cs_cluster_restore_result *res;
    size_t *target_of;      /* per move: the coordinator's node index */
    json_t *schema;         /* the cluster manifest's (DESCRIBE SCHEMA rows) */
} crestore;

static char *text_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? cs_strdup(s) : NULL;
}

/* The source nodes: the cluster manifest's nodes whose backup completed. */
static int read_sources(cs_repo *repo, const char *name, crestore *r, cs_err *e)
{
    cs_cluster_restore_result *res = r->res;
    json_t *m = NULL;
    int rc = cs_cluster_read_manifest(repo, name, &m, e);
    if (rc)
        return rc;
    r->schema = json_incref(json_object_get(m, "schema"));
    res->cluster = text_of(m, "cluster");
    res->set_id = text_of(m, "set_id");
    json_t *nodes = json_object_get(m, "nodes"), *o;
    size_t i;
    res->moves = cs_calloc(json_array_size(nodes) + 1, sizeof *res->moves);
    json_array_foreach(nodes, i, o) {
        if (!json_is_true(json_object_get(o, "ok")))
            continue; /* a node the backup missed has nothing to restore */
        cs_cluster_node *n = &res->moves[res->n_moves++].source;
        n->host_id = text_of(o, "host_id");
        n->address = text_of(o, "address");
        n->rpc_address = text_of(o, "rpc_address");
        n->datacenter = text_of(o, "datacenter");
        n->rack = text_of(o, "rack");
        n->ok = true;
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(o, "tokens"), k, t)
            if (json_is_string(t))
                cs_strlist_add(&n->tokens, json_string_value(t));
        if (!n->host_id) {
            json_decref(m);
            return cs_err_set(e, CS_E_CORRUPT, "the cluster manifest of %s names a node without a host id", name);
        }
    }
    json_decref(m);
    if (!res->n_moves)
        return cs_err_set(e, CS_E_NOTFOUND, "backup %s holds no complete node backup", name);
    return 0;
}

/* Bytes and files of each source node's backup, from the list entries. */
static int size_sources(cs_repo *repo, cs_cluster_restore_result *res, cs_err *e)
{
    cs_backup_entry *entries = NULL;
    size_t n = 0;
    int rc = cs_repo_list_backups(repo, &entries, &n, e);
    for (size_t i = 0; !rc && i < res->n_moves; i++) {
        cs_cluster_move *mv = &res->moves[i];
        bool found = false;
        for (size_t k = 0; k < n && !found; k++)
            if (!strcmp(entries[k].name, res->backup) && !strcmp(entries[k].host_id, mv->source.host_id) &&
                entries[k].complete) {
                found = true;
                mv->bytes = entries[k].size;
                mv->files = entries[k].files;
            }
        if (!found)
            rc = cs_err_set(e, CS_E_NOTFOUND, "backup %s of node %s (%s) is not complete in the repository",
                            res->backup, mv->source.address ? mv->source.address : "?", mv->source.host_id);
    }
    cs_backup_entries_free(entries, n);
    return rc;
}

/* ---- the host map ---- */

static bool names(const cs_cluster_node *n, const char *what)
{
    return (n->host_id && !strcmp(n->host_id, what)) || (n->address && !strcmp(n->address, what)) ||
           (n->rpc_address && !strcmp(n->rpc_address, what)) || (n->agent && !strcmp(n->agent, what));
}

static ssize_t find_target(const cs_coord *c, const char *what)
{
    for (size_t i = 0; i < c->n; i++)
        if (names(&c->nodes[i], what))
            return (ssize_t)i;
    return -1;
}

static int map_given(crestore *r, cs_err *e)
{
    cs_cluster_restore_result *res = r->res;
    for (size_t i = 0; i < r->req->host_map.n; i++) {
        const char *item = r->req->host_map.items[i];
        const char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1])
            return cs_err_set(e, CS_E_USAGE, "{host_map} \"%s\": want SOURCE=TARGET (host ids or addresses)", item);
        char *src = cs_strndup(item, (size_t)(eq - item));
        ssize_t t = find_target(&r->coord, eq + 1);
        size_t m = res->n_moves;
        for (size_t k = 0; k < res->n_moves; k++)
            if (names(&res->moves[k].source, src))
                m = k;
        int rc = 0;
        if (m == res->n_moves)
            rc = cs_err_set(e, CS_E_USAGE, "{host_map} \"%s\": backup %s has no node %s", item, res->backup, src);
        else if (t < 0)
            rc = cs_err_set(e, CS_E_USAGE, "{host_map} \"%s\": no agent serves %s", item, eq + 1);
        else
            r->target_of[m] = (size_t)t;
        free(src);
        if (rc)
            return rc;
    }
    for (size_t k = 0; k < res->n_moves; k++)
        if (r->target_of[k] == SIZE_MAX)
            return cs_err_set(e, CS_E_USAGE, "{host_map} gives no target for node %s (%s)",
                              cs_cluster_node_name(&res->moves[k].source), res->moves[k].source.host_id);
    return 0;
}

static const char *first_token(const cs_cluster_node *n)
{
    return n->tokens.n ? n->tokens.items[0] : "";
}

/* Murmur3 tokens are signed 64-bit decimals: compare them as numbers. */
static int token_cmp(const char *a, const char *b)
{
    long long x = strtoll(a, NULL, 10), y = strtoll(b, NULL, 10);
    return (x > y) - (x < y);
}

static bool same_place(const cs_cluster_node *a, const cs_cluster_node *b)
{
    return !strcmp(a->datacenter ? a->datacenter : "", b->datacenter ? b->datacenter : "") &&
           !strcmp(a->rack ? a->rack : "", b->rack ? b->rack : "");
}

/* Pair sources and targets of the same DC and rack, each side in token
 * order (a new cluster started with the printed initial_token lines pairs
 * every node with its source). */
static int map_by_place(crestore *r, cs_err *e)
{
    cs_cluster_restore_result *res = r->res;
    cs_coord *c = &r->coord;
    bool *taken = cs_calloc(c->n ? c->n : 1, sizeof *taken);
    int rc = 0;
    /* sources in token order */
    size_t *order = cs_calloc(res->n_moves, sizeof *order);
    for (size_t i = 0; i < res->n_moves; i++)
        order[i] = i;
    for (size_t i = 1; i < res->n_moves; i++)
        for (size_t k = i; k > 0 && token_cmp(first_token(&res->moves[order[k - 1]].source),
                                              first_token(&res->moves[order[k]].source)) > 0; k--) {
            size_t t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
    for (size_t oi = 0; oi < res->n_moves && !rc; oi++) {
        size_t m = order[oi];
        const cs_cluster_node *s = &res->moves[m].source;
        ssize_t best = -1;
        for (size_t t = 0; t < c->n; t++) {
            if (taken[t] || !c->nodes[t].ok || !same_place(s, &c->nodes[t]))
                continue;
            if (best < 0 || token_cmp(first_token(&c->nodes[t]), first_token(&c->nodes[best])) < 0)
                best = (ssize_t)t;
        }
        if (best < 0)
            rc = cs_err_set(e, CS_E_USAGE, "no target node left in DC %s, rack %s for node %s: the target cluster "
                            "has another topology (map the nodes with {host_map})",
                            s->datacenter ? s->datacenter : "?", s->rack ? s->rack : "?", cs_cluster_node_name(s));
        else {
            taken[best] = true;
            r->target_of[m] = (size_t)best;
        }
    }
    free(order);
    free(taken);
    return rc;
}

static bool same_tokens(const cs_strlist *a, const cs_strlist *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!cs_strlist_has(b, a->items[i]))
            return false;
    return true;
}

static int make_map(crestore *r, cs_err *e)
{
    cs_cluster_restore_result *res = r->res;
    cs_coord *c = &r->coord;
    r->target_of = cs_calloc(res->n_moves, sizeof *r->target_of);
    for (size_t i = 0; i < res->n_moves; i++)
        r->target_of[i] = SIZE_MAX;
    /* In place when every source host id is a target's. */
    res->same_cluster = true;
    for (size_t i = 0; i < res->n_moves; i++) {
        ssize_t t = -1;
        for (size_t k = 0; k < c->n && t < 0; k++)
            if (c->nodes[k].host_id && !strcmp(c->nodes[k].host_id, res->moves[i].source.host_id))
                t = (ssize_t)k;
        if (t < 0)
            res->same_cluster = false;
        else
            r->target_of[i] = (size_t)t;
    }
    if (r->req->keyspace_map.n && !res->same_cluster)
        return cs_err_set(e, CS_E_USAGE, "backup %s was taken of other nodes: a restore into other keyspaces "
                          "(a drill) restores every node's backup into the same node", res->backup);
    int rc = 0;
    if (r->req->host_map.n) {
        for (size_t i = 0; i < res->n_moves; i++)
            r->target_of[i] = SIZE_MAX;
        rc = map_given(r, e);
    } else if (!res->same_cluster) {
        for (size_t i = 0; i < res->n_moves; i++)
            r->target_of[i] = SIZE_MAX;
        if (c->n != res->n_moves)
            return cs_err_set(e, CS_E_USAGE, "backup %s holds %zu nodes and the target cluster has %zu: restoring "
                              "into another topology (through the bulk loader) is not built yet",
                              res->backup, res->n_moves, c->n);
        rc = map_by_place(r, e);
    }
    for (size_t i = 0; !rc && i < res->n_moves; i++) {
        const cs_cluster_node *t = &c->nodes[r->target_of[i]];
        for (size_t k = 0; !rc && k < i; k++)
            if (r->target_of[k] == r->target_of[i])
                rc = cs_err_set(e, CS_E_USAGE, "two source nodes map to %s", cs_cluster_node_name(t));
        /* Another node's files are only right where the same ranges live. */
        bool same_host = t->host_id && !strcmp(t->host_id, res->moves[i].source.host_id);
        if (!rc && !same_host && !same_tokens(&t->tokens, &res->moves[i].source.tokens))
            rc = cs_err_set(e, CS_E_USAGE, "node %s does not own the tokens of node %s: start it with the "
                            "initial_token that `cassette cluster tokens --backup %s` prints",
                            cs_cluster_node_name(t), cs_cluster_node_name(&res->moves[i].source), res->backup);
    }
    return rc;
}

/* ---- another topology: the bulk loader ---- */

static bool is_load(const crestore *r)
{
    return !strcmp(r->res->mode, "load");
}

/* The default import becomes a load when the target is another cluster
 * whose nodes cannot each take one source node's files: another node
 * count, or tokens that are none of the sources'. */
static void choose_load(crestore *r)
{
    const cs_cluster_restore_result *res = r->res;
    const cs_coord *c = &r->coord;
    if (strcmp(res->mode, "import") || r->req->host_map.n || r->req->keyspace_map.n)
        return;
    bool other_topology = c->n != res->n_moves;
    for (size_t k = 0; k < c->n && !other_topology; k++) {
        bool owned = false;
        for (size_t i = 0; i < res->n_moves && !owned; i++)
            owned = (c->nodes[k].host_id && !strcmp(c->nodes[k].host_id, res->moves[i].source.host_id)) ||
                    same_tokens(&c->nodes[k].tokens, &res->moves[i].source.tokens);
        other_topology = !owned;
    }
    if (other_topology) {
        free(r->res->mode);
        r->res->mode = cs_strdup("load");
    }
}

static bool keyspace_wanted(const crestore *r, const char *ks)
{
    if (cs_node_is_system_keyspace(ks))
        return false;
    if (!r->req->keyspaces.n && !r->req->tables.n)
        return true;
    if (cs_strlist_has(&r->req->keyspaces, ks))
        return true;
    size_t n = strlen(ks);
    for (size_t i = 0; i < r->req->tables.n; i++)
        if (!strncmp(r->req->tables.items[i], ks, n) && r->req->tables.items[i][n] == '.')
            return true;
    return false;
}

/* Can placement be told from the tokens (one per node, one DC and rack)? */
static bool placement_known(const cs_cluster_restore_result *res)
{
    for (size_t i = 0; i < res->n_moves; i++) {
        const cs_cluster_node *a = &res->moves[i].source, *b = &res->moves[0].source;
        if (a->tokens.n != 1 || strcmp(a->datacenter ? a->datacenter : "", b->datacenter ? b->datacenter : "") ||
            strcmp(a->rack ? a->rack : "", b->rack ? b->rack : ""))
            return false;
    }
    return true;
}

static int by_first_token(const void *a, const void *b)
{
    const cs_cluster_move *x = a, *y = b;
    return token_cmp(first_token(&x->source), first_token(&y->source));
}

/* Which source nodes stream which keyspaces, and through which target
 * agent: a replica cover per keyspace (or every node with
 * {all_replicas}), spread over the targets. */
static int plan_load(crestore *r, cs_err *e)
{
    cs_cluster_restore_result *res = r->res;
    cs_coord *c = &r->coord;
    qsort(res->moves, res->n_moves, sizeof *res->moves, by_first_token);
    bool known = placement_known(res) && !r->req->all_replicas;
    bool *chosen = cs_calloc(res->n_moves, sizeof *chosen);
    size_t i;
    json_t *row;
    json_array_foreach(r->schema, i, row) {
        const char *type = json_string_value(json_object_get(row, "type"));
        const char *ks = json_string_value(json_object_get(row, "keyspace"));
        if (!type || strcmp(type, "keyspace") || !ks || !keyspace_wanted(r, ks))
            continue;
        int rf = known ? cs_cover_replication_factor(json_string_value(json_object_get(row, "cql"))) : 0;
        cs_cover_choose(res->n_moves, rf, chosen);
        for (size_t k = 0; k < res->n_moves; k++)
            if (chosen[k])
                cs_strlist_add(&res->moves[k].keyspaces, ks);
    }
    free(chosen);
    /* Sources with nothing to stream drop out. */
    size_t kept = 0;
    for (size_t k = 0; k < res->n_moves; k++) {
        if (res->moves[k].keyspaces.n)
            res->moves[kept++] = res->moves[k];
        else
            cs_cluster_node_free(&res->moves[k].source);
    }
    res->n_moves = kept;
    if (!kept)
        return cs_err_set(e, CS_E_USAGE, "backup %s holds no keyspace to load (only system keyspaces, or none of "
                          "{keyspaces})", res->backup);
    r->target_of = cs_calloc(kept, sizeof *r->target_of);
    size_t next = 0, live = 0;
    for (size_t k = 0; k < c->n; k++)
        live += c->nodes[k].ok && !c->nodes[k].stopped;
    if (!live)
        return cs_err_set(e, CS_E_UNAVAIL, "no node of the target cluster is up: a load streams into running "
                          "nodes");
    for (size_t k = 0; k < kept; k++) {
        while (!c->nodes[next % c->n].ok || c->nodes[next % c->n].stopped)
            next++;
        r->target_of[k] = next++ % c->n;
    }
    return 0;
}

static json_t *load_request(const crestore *r, const cs_cluster_move *mv)
{
    const cs_cluster_restore_req *req = r->req;
    json_t *o = json_object();
    json_object_set_new(o, "repo", json_string(req->repo));
    json_object_set_new(o, "backup", json_string(req->backup));
    json_object_set_new(o, "source_host", json_string(mv->source.host_id));
    /* The load op takes a table when its keyspace is in keyspaces OR it is
     * in tables (restore's filters): a keyspace this source covers goes
     * whole only when the operator asked for it whole, and a table named
     * with --table only from the source that covers its keyspace. */
    json_t *ks = json_array(), *tables = json_array(), *targets = json_array();
    bool whole = !req->keyspaces.n && !req->tables.n;
    for (size_t i = 0; i < mv->keyspaces.n; i++)
        if (whole || cs_strlist_has(&req->keyspaces, mv->keyspaces.items[i]))
            json_array_append_new(ks, json_string(mv->keyspaces.items[i]));
    for (size_t i = 0; i < req->tables.n; i++) {
        const char *t = req->tables.items[i], *dot = strchr(t, '.');
        char *tks = dot ? cs_strndup(t, (size_t)(dot - t)) : NULL;
        if (tks && cs_strlist_has(&mv->keyspaces, tks) && !cs_strlist_has(&req->keyspaces, tks))
            json_array_append_new(tables, json_string(t));
        free(tks);
    }
    for (size_t i = 0; i < r->coord.n; i++) {
        const cs_cluster_node *t = &r->coord.nodes[i];
        const char *addr = t->rpc_address && *t->rpc_address ? t->rpc_address : t->address;
        if (t->ok && addr && *addr)
            json_array_append_new(targets, json_string(addr));
    }
    json_object_set_new(o, "keyspaces", ks);
    json_object_set_new(o, "tables", tables);
    json_object_set_new(o, "targets", targets);
    json_object_set_new(o, "jobs", json_integer(req->jobs));
    json_object_set_new(o, "lock_wait", json_real(req->lock_wait));
    json_object_set_new(o, "lock_stale", json_real(req->lock_stale));
    return o;
}

/* --nodes: only the targets named. */
static bool wanted(const crestore *r, const cs_cluster_node *t)
{
    if (!r->req->nodes.n)
        return true;
    for (size_t i = 0; i < r->req->nodes.n; i++)
        if (names(t, r->req->nodes.items[i]))
            return true;
    return false;
}

static void fill_targets(crestore *r)
{
    cs_cluster_restore_result *res = r->res;
    size_t kept = 0;
    for (size_t i = 0; i < res->n_moves; i++) {
        cs_cluster_move mv = res->moves[i];
        const cs_cluster_node *t = &r->coord.nodes[r->target_of[i]];
        if (!wanted(r, t)) {
            cs_cluster_node_free(&mv.source);
            continue;
        }
        cs_cluster_node_copy(&mv.target, t);
        mv.target.ok = false;
        free(mv.target.reason);
        mv.target.reason = NULL;
        r->target_of[kept] = r->target_of[i];
        res->moves[kept++] = mv;
    }
    res->n_moves = kept;
}

/* ---- running ---- */

static json_t *restore_request(const crestore *r, const cs_cluster_move *mv)
{
    const cs_cluster_restore_req *req = r->req;
    json_t *o = json_object();
    json_object_set_new(o, "repo", json_string(req->repo));
    json_object_set_new(o, "backup", json_string(req->backup));
    json_object_set_new(o, "source_host", json_string(mv->source.host_id));
    json_object_set_new(o, "mode", json_string(req->mode ? req->mode : "import"));
    json_t *ks = json_array(), *tables = json_array();
    for (size_t i = 0; i < req->keyspaces.n; i++)
        json_array_append_new(ks, json_string(req->keyspaces.items[i]));
    for (size_t i = 0; i < req->tables.n; i++)
        json_array_append_new(tables, json_string(req->tables.items[i]));
    json_object_set_new(o, "keyspaces", ks);
    json_object_set_new(o, "tables", tables);
    if (req->keyspace_map.n) {
        json_t *map = json_array();
        for (size_t i = 0; i < req->keyspace_map.n; i++)
            json_array_append_new(map, json_string(req->keyspace_map.items[i]));
        json_object_set_new(o, "keyspace_map", map);
    }
    json_object_set_new(o, "jobs", json_integer(req->jobs));
    json_object_set_new(o, "lock_wait", json_real(req->lock_wait));
    json_object_set_new(o, "lock_stale", json_real(req->lock_stale));
    return o;
}

static int restore_one(void *arg, size_t i, cs_err *e)
{
    (void)e;
    crestore *r = arg;
    cs_cluster_move *mv = &r->res->moves[i];
    json_t *doc = NULL, *failed = NULL;
    cs_err err;
    cs_err_clear(&err);
    mv->target.attempts = 1;
    int rc = is_load(r) ? cs_coord_run_kept(&r->coord, r->target_of[i], "load", load_request(r, mv), &doc, &failed,
                                            &err)
                        : cs_coord_run_kept(&r->coord, r->target_of[i], "restore", restore_request(r, mv), &doc,
                                            &failed, &err);
    if (rc) {
        cs_cluster_node_fail(&mv->target, &err);
        mv->target.result = failed; /* what it did restore, and which tables not and why */
        json_decref(doc);
        return rc == CS_E_CANCELED ? rc : 0;
    }
    mv->target.result = doc;
    mv->target.ok = true;
    return 0;
}

typedef struct slice {
    crestore *r;
    size_t from;
} slice;

static int restore_rest(void *arg, size_t i, cs_err *e)
{
    slice *s = arg;
    return restore_one(s->r, s->from + i, e);
}

static int run_moves(crestore *r, cs_err *e)
{
    cs_coord_phase(&r->coord, "restore");
    for (size_t i = 0; i < r->coord.n; i++) { /* nodes no move restores into: not shown */
        bool target = false;
        for (size_t m = 0; m < r->res->n_moves && !target; m++)
            target = r->target_of[m] == i;
        if (!target)
            cs_coord_skip(&r->coord, i);
    }
    cs_cluster_restore_result *res = r->res;
    unsigned k = (unsigned)(r->req->parallel_nodes > 0 ? r->req->parallel_nodes : 1);
    size_t first = 0;
    /* Into another cluster, or into other keyspaces, the schema does not
     * exist yet: the first node makes it alone, and every node has it
     * before the others look for it (else each would create its own). */
    if ((!res->same_cluster || r->req->keyspace_map.n) && res->n_moves > 1 && !strcmp(res->mode, "import")) {
        int rc = restore_one(r, 0, e);
        if (rc)
            return rc;
        if (!res->moves[0].target.ok)
            return 0; /* the others would fail the same way */
        rc = cs_coord_schema_agreement(&r->coord, r->req->contact, e);
        if (rc)
            return rc;
        first = 1;
    }
    slice s = { r, first };
    return cs_parallel_for(res->n_moves - first, k, restore_rest, &s, e);
}

static int check_mode(const crestore *r, cs_err *e)
{
    bool replace = !strcmp(r->res->mode, "replace");
    for (size_t i = 0; i < r->res->n_moves; i++) {
        const cs_cluster_node *t = &r->res->moves[i].target;
        const cs_cluster_node *probe = &r->coord.nodes[r->target_of[i]];
        if (!probe->ok)
            return cs_err_set(e, probe->code ? probe->code : CS_E_UNAVAIL, "node %s: %s", cs_cluster_node_name(t),
                              probe->reason ? probe->reason : "its agent cannot be reached");
        bool down = probe->stopped;
        if (replace && !down)
            return cs_err_set(e, CS_E_USAGE, "node %s is running: a replace restore wants every target node "
                              "stopped ({mode} import restores into running nodes)", cs_cluster_node_name(t));
        if (!replace && down)
            return cs_err_set(e, CS_E_USAGE, "node %s is not running: an %s restore wants every target node "
                              "up ({mode} replace restores into stopped nodes)", cs_cluster_node_name(t), r->res->mode);
    }
    return 0;
}

int cs_op_cluster_restore(cs_job *job, const cs_host *host, const cs_cluster_restore_req *req,
                          cs_cluster_restore_result *res, cs_err *e)
{
    memset(res, 0, sizeof *res);
    double t0 = cs_now();
    res->backup = cs_strdup(req->backup);
    res->mode = cs_strdup(req->mode ? req->mode : "import");
    crestore r = { .req = req, .res = res };
    cs_repo *repo = NULL;
    cs_job_phase(job, "plan", 0, 0);
    int rc = cs_ops_open_repo(host, req->repo, NULL, false, &repo, e);
    if (!rc)
        rc = read_sources(repo, req->backup, &r, e);
    if (!rc)
        rc = size_sources(repo, res, e);
    cs_repo_free(repo);
    /* The targets: a cluster that is down is found through the agents at
     * the addresses the backup recorded (or the listed ones). */
    cs_cluster_node *known = NULL;
    size_t n_known = res->n_moves;
    if (!rc) {
        known = cs_calloc(n_known ? n_known : 1, sizeof *known);
        for (size_t i = 0; i < n_known; i++)
            cs_cluster_node_copy(&known[i], &res->moves[i].source);
        cs_coord_target t = { req->contact, &req->agents, req->agent_template, known, n_known, false };
        rc = cs_coord_open(&r.coord, job, host, &t, e);
    }
    for (size_t i = 0; i < n_known && known; i++)
        cs_cluster_node_free(&known[i]);
    free(known);
    if (!rc)
        choose_load(&r);
    if (!rc)
        rc = is_load(&r) ? plan_load(&r, e) : make_map(&r, e);
    if (!rc) {
        fill_targets(&r);
        if (!res->n_moves)
            rc = cs_err_set(e, CS_E_USAGE, "{nodes} names none of the target nodes");
    }
    if (!rc)
        rc = check_mode(&r, e);
    if (!rc && (req->plan || !req->yes)) {
        res->planned_only = true;
        if (!req->plan)
            rc = cs_err_set(e, CS_E_USAGE, "this restore changes %zu node%s: review the plan with {plan}, run it "
                            "with {yes}", res->n_moves, res->n_moves == 1 ? "" : "s");
    }
    if (!rc && !res->planned_only)
        rc = run_moves(&r, e);
    for (size_t i = 0; i < res->n_moves; i++)
        res->restored += res->moves[i].target.ok;
    res->seconds = cs_now() - t0;
    if (rc && cs_cancel_requested())
        rc = cs_err_set(e, CS_E_CANCELED, "interrupted; run the restore again to finish it");
    if (rc)
        cs_err_prefix(e, "cluster restore %s", req->backup);
    free(r.target_of);
    json_decref(r.schema);
    cs_coord_close(&r.coord);
    return rc;
}

int cs_op_cluster_restore_verdict(const cs_cluster_restore_req *req, const cs_cluster_restore_result *res,
                                  cs_err *e)
{
    (void)req;
    if (res->planned_only || res->restored == res->n_moves)
        return 0;
    const cs_cluster_move *first = NULL;
    for (size_t i = 0; i < res->n_moves && !first; i++)
        if (!res->moves[i].target.ok)
            first = &res->moves[i];
    return cs_err_set(e, first && first->target.code ? first->target.code : CS_E_EXTERNAL,
                      "cluster restore %s: %zu of %zu nodes restored (node %s: %s)", res->backup, res->restored,
                      res->n_moves, first ? cs_cluster_node_name(&first->target) : "?",
                      first && first->target.reason ? first->target.reason : "failed");
}

json_t *cs_cluster_restore_result_json(const cs_cluster_restore_req *req, const cs_cluster_restore_result *res)
{
    (void)req;
    json_t *d = json_object();
    json_object_set_new(d, "backup", json_string(res->backup));
    json_object_set_new(d, "set_id", res->set_id ? json_string(res->set_id) : json_null());
    json_object_set_new(d, "cluster", res->cluster ? json_string(res->cluster) : json_null());
    json_object_set_new(d, "mode", json_string(res->mode));
    json_object_set_new(d, "in_place", json_boolean(res->same_cluster));
    json_object_set_new(d, "planned_only", json_boolean(res->planned_only));
    json_object_set_new(d, "nodes_restored", json_integer((json_int_t)res->restored));
    json_object_set_new(d, "seconds", json_real(res->seconds));
    json_t *moves = json_array();
    uint64_t bytes = 0;
    for (size_t i = 0; i < res->n_moves; i++) {
        const cs_cluster_move *mv = &res->moves[i];
        json_t *src = cs_cluster_node_json(&mv->source);
        json_object_del(src, "agent");
        json_object_del(src, "ok");
        json_object_del(src, "reason");
        json_t *dst = cs_cluster_node_json(&mv->target);
        json_object_set_new(dst, "restore", mv->target.result ? json_incref(mv->target.result) : json_null());
        json_t *ks = json_array();
        for (size_t k = 0; k < mv->keyspaces.n; k++)
            json_array_append_new(ks, json_string(mv->keyspaces.items[k]));
        json_array_append_new(moves, json_pack("{s:o, s:o, s:I, s:I, s:o}", "source", src, "target", dst, "bytes",
                                               (json_int_t)mv->bytes, "files", (json_int_t)mv->files, "keyspaces",
                                               ks));
        bytes += mv->bytes;
    }
    json_object_set_new(d, "nodes", moves);
    json_object_set_new(d, "bytes", json_integer((json_int_t)bytes));
    return d;
}

void cs_cluster_restore_result_free(cs_cluster_restore_result *res)
{
    for (size_t i = 0; i < res->n_moves; i++) {
        cs_cluster_node_free(&res->moves[i].source);
        cs_cluster_node_free(&res->moves[i].target);
        cs_strlist_free(&res->moves[i].keyspaces);
    }
    free(res->moves);
    free(res->backup);
    free(res->set_id);
    free(res->cluster);
    free(res->mode);
    memset(res, 0, sizeof *res);
}
