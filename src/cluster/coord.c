/* coord.c - what the cluster operations share (see the header). */
#include "cluster/coord.h"

#include <stdlib.h>
#include <string.h>

#include "cassandra/node.h"
#include "common/buf.h"
#include "common/cancel.h"
#include "common/fs.h"
#include "common/job.h"
#include "common/log.h"
#include "common/parallel.h"
#include "ops/nodeopts.h"
#include "repo/set.h"

/* ---- node records ---- */

void cs_cluster_node_free(cs_cluster_node *n)
{
    free(n->host_id);
    free(n->address);
    free(n->rpc_address);
    free(n->datacenter);
    free(n->rack);
    free(n->agent);
    free(n->reason);
    cs_strlist_free(&n->tokens);
    json_decref(n->facts);
    json_decref(n->result);
    memset(n, 0, sizeof *n);
}

static char *dup_or_null(const char *s)
{
    return s ? cs_strdup(s) : NULL;
}

void cs_cluster_node_copy(cs_cluster_node *to, const cs_cluster_node *from)
{
    memset(to, 0, sizeof *to);
    to->host_id = dup_or_null(from->host_id);
    to->address = dup_or_null(from->address);
    to->rpc_address = dup_or_null(from->rpc_address);
    to->datacenter = dup_or_null(from->datacenter);
    to->rack = dup_or_null(from->rack);
    to->agent = dup_or_null(from->agent);
    for (size_t i = 0; i < from->tokens.n; i++)
        cs_strlist_add(&to->tokens, from->tokens.items[i]);
    to->ok = from->ok;
    to->stopped = from->stopped;
    to->reason = dup_or_null(from->reason);
    to->code = from->code;
    to->snapshot_started = from->snapshot_started;
    to->snapshot_finished = from->snapshot_finished;
}

void cs_cluster_node_fail(cs_cluster_node *n, const cs_err *e)
{
    n->ok = false;
    free(n->reason);
    n->reason = cs_strdup(e->msg[0] ? e->msg : "failed");
    n->code = e->code ? e->code : CS_E_EXTERNAL;
}

const char *cs_cluster_node_name(const cs_cluster_node *n)
{
    return n->address && n->address[0] ? n->address : n->host_id ? n->host_id : "?";
}

static json_t *text_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *cs_cluster_node_json(const cs_cluster_node *n)
{
    json_t *o = json_object();
    json_object_set_new(o, "host_id", text_or_null(n->host_id));
    json_object_set_new(o, "address", text_or_null(n->address));
    json_object_set_new(o, "rpc_address", text_or_null(n->rpc_address));
    json_object_set_new(o, "datacenter", text_or_null(n->datacenter));
    json_object_set_new(o, "rack", text_or_null(n->rack));
    json_t *tokens = json_array();
    for (size_t i = 0; i < n->tokens.n; i++)
        json_array_append_new(tokens, json_string(n->tokens.items[i]));
    json_object_set_new(o, "tokens", tokens);
    json_object_set_new(o, "agent", text_or_null(n->agent));
    json_object_set_new(o, "ok", json_boolean(n->ok));
    json_object_set_new(o, "reason", text_or_null(n->reason));
    return o;
}

/* ---- the repository's sets ---- */

int cs_coord_read_sets(cs_repo *repo, const char *cluster, cs_coord_sets *out, cs_err *e)
{
    memset(out, 0, sizeof *out);
    cs_set_entry *sets = NULL;
    size_t n_sets = 0, n_entries = 0;
    cs_backup_entry *entries = NULL;
    int rc = cs_repo_list_sets(repo, &sets, &n_sets, e);
    if (!rc)
        rc = cs_repo_list_backups(repo, &entries, &n_entries, e);
    double now = cs_now();
    for (size_t i = 0; !rc && i < n_sets; i++) {
        const cs_backup_set *s = &sets[i].set;
        if (sets[i].damage || (cluster && s->cluster && strcmp(s->cluster, cluster)))
            continue;
        cs_set_info info;
        memset(&info, 0, sizeof info);
        cs_set_state_of(s, entries, n_entries, now, CS_SET_RUNNING_GRACE, &info);
        out->sets++;
        if (info.complete) {
            out->complete++;
            if (s->finished >= out->newest_finished) {
                free(out->newest);
                out->newest = cs_strdup(s->name);
                out->newest_started = s->started;
                out->newest_finished = s->finished;
            }
        }
        cs_set_info_clear(&info);
    }
    cs_backup_entries_free(entries, n_entries);
    cs_set_entries_free(sets, n_sets);
    return rc;
}

void cs_coord_sets_free(cs_coord_sets *s)
{
    free(s->newest);
    memset(s, 0, sizeof *s);
}

/* ---- the agents ---- */

int cs_coord_agents_new(const cs_host *host, cs_agentc **out, cs_err *e)
{
    cs_agentc_opts o = {
        .token_file = host->agent_token_file,
        .ca_file = host->agent_ca_file,
        .cert_file = host->agent_cert,
        .key_file = host->agent_key,
        .timeout_s = 30,
        .fence = cs_job_fence(cs_job_current()), /* the server's lease epoch; 0 from the CLI */
    };
    return cs_agentc_new(&o, out, e);
}

static const char *json_text(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static void tokens_of(const json_t *doc, cs_strlist *out)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(doc, "tokens"), i, t)
        if (json_is_string(t))
            cs_strlist_add(out, json_string_value(t));
}

/* A node as its agent describes it (GET /v1/node). */
static void node_from_doc(cs_cluster_node *n, const char *agent, const json_t *doc)
{
    memset(n, 0, sizeof *n);
    n->host_id = dup_or_null(json_text(doc, "host_id"));
    n->address = dup_or_null(json_text(doc, "address"));
    n->rpc_address = dup_or_null(json_text(doc, "rpc_address"));
    n->datacenter = dup_or_null(json_text(doc, "datacenter"));
    n->rack = dup_or_null(json_text(doc, "rack"));
    n->agent = cs_strdup(agent);
    tokens_of(doc, &n->tokens);
    n->ok = true;
    n->facts = json_incref((json_t *)doc);
}

/* What a node says of itself (system.local, through its agent) wins over
 * what a peer says of it: system.peers_v2 may lack a peer's tokens while
 * gossip settles. */
static void adopt_own_view(cs_cluster_node *n, const json_t *doc)
{
    cs_strlist tokens = { NULL, 0 };
    tokens_of(doc, &tokens);
    if (tokens.n) {
        cs_strlist_free(&n->tokens);
        n->tokens = tokens;
    }
    const char *dc = json_text(doc, "datacenter"), *rack = json_text(doc, "rack");
    if (dc && *dc) {
        free(n->datacenter);
        n->datacenter = cs_strdup(dc);
    }
    if (rack && *rack) {
        free(n->rack);
        n->rack = cs_strdup(rack);
    }
}

/* Is the node behind this /v1/node document up? Agents that cannot reach
 * their node answer from what they last saw, with "live": false. */
static bool node_live(const json_t *doc)
{
    json_t *live = json_object_get(doc, "live");
    return !json_is_false(live);
}

typedef struct probe {
    cs_coord *c;
    char **urls;
    json_t **docs;
    cs_err *errs;
} probe;

static int probe_one(void *arg, size_t i, cs_err *e)
{
    (void)e;
    probe *p = arg;
    cs_err_clear(&p->errs[i]);
    if (p->urls[i])
        cs_agentc_node(p->c->agents, p->urls[i], &p->docs[i], &p->errs[i]);
    return 0; /* every agent is asked, whatever the others answer */
}

/* GET /v1/node of every URL at once. */
static void probe_all(cs_coord *c, char **urls, size_t n, json_t **docs, cs_err *errs)
{
    probe p = { c, urls, docs, errs };
    cs_err ignored;
    cs_err_clear(&ignored);
    cs_parallel_for(n, n > 32 ? 32 : (unsigned)(n ? n : 1), probe_one, &p, &ignored);
}

static int connect_contact(const cs_host *host, const char *contact, cql_conn **conn, cs_err *e)
{
    cs_cql_opts o;
    cs_ops_cql_opts(host, "cluster", &o);
    if (contact && *contact)
        o.hosts = contact;
    return cs_cluster_connect(&o, conn, e);
}

int cs_coord_schema_agreement(cs_coord *c, const char *contact, cs_err *e)
{
    cql_conn *conn = NULL;
    int rc = connect_contact(c->host, contact, &conn, e);
    if (!rc)
        rc = cs_node_wait_schema_agreement(conn, 60, e);
    cql_close(conn);
    return rc;
}

static int read_ring(cs_coord *c, const cs_coord_target *t, cs_ring *ring, cs_err *e)
{
    cql_conn *conn = NULL;
    int rc = connect_contact(c->host, t->contact, &conn, e);
    if (!rc)
        rc = cs_node_read_ring(conn, ring, e);
    if (!rc && t->need_schema)
        rc = cs_node_read_schema(conn, &c->schema, e);
    cql_close(conn);
    return rc;
}

static void add_node(cs_coord *c, cs_cluster_node *n /* taken */)
{
    c->nodes = cs_realloc(c->nodes, (c->n + 1) * sizeof *c->nodes);
    c->nodes[c->n++] = *n;
    memset(n, 0, sizeof *n);
}

static void node_from_ring(cs_cluster_node *n, const cs_ring_node *r)
{
    memset(n, 0, sizeof *n);
    n->host_id = cs_strdup(r->host_id);
    n->address = cs_strdup(r->address);
    n->rpc_address = cs_strdup(r->rpc_address && r->rpc_address[0] ? r->rpc_address : r->address);
    n->datacenter = cs_strdup(r->datacenter);
    n->rack = cs_strdup(r->rack);
    for (size_t i = 0; i < r->tokens.n; i++)
        cs_strlist_add(&n->tokens, r->tokens.items[i]);
}

/* Listed agents: each says which node it serves. */
static int open_listed(cs_coord *c, const cs_strlist *agents, const cs_ring *ring, cs_err *e)
{
    json_t **docs = cs_calloc(agents->n, sizeof *docs);
    cs_err *errs = cs_calloc(agents->n, sizeof *errs);
    probe_all(c, agents->items, agents->n, docs, errs);
    int rc = 0;
    for (size_t i = 0; i < agents->n && !rc; i++) {
        cs_cluster_node n;
        if (!docs[i]) {
            /* An agent that does not answer serves a node we cannot name
             * but by its URL. */
            memset(&n, 0, sizeof n);
            n.agent = cs_strdup(agents->items[i]);
            n.address = cs_strdup(agents->items[i]);
            cs_cluster_node_fail(&n, &errs[i]);
        } else if (!json_text(docs[i], "host_id")) {
            rc = cs_err_set(e, CS_E_PROTO, "agent %s: its node has no host id", agents->items[i]);
            continue;
        } else {
            node_from_doc(&n, agents->items[i], docs[i]);
        }
        for (size_t k = 0; k < c->n && !rc; k++)
            if (n.host_id && c->nodes[k].host_id && !strcmp(n.host_id, c->nodes[k].host_id))
                rc = cs_err_set(e, CS_E_USAGE, "{agents}: %s and %s serve the same node %s", c->nodes[k].agent,
                                n.agent, n.host_id);
        if (rc) {
            cs_cluster_node_free(&n);
            continue;
        }
        add_node(c, &n);
    }
    /* Every node of the ring needs its agent. */
    for (size_t r = 0; ring && r < ring->n && !rc; r++) {
        bool found = false;
        for (size_t k = 0; k < c->n && !found; k++)
            found = c->nodes[k].host_id && !strcmp(c->nodes[k].host_id, ring->nodes[r].host_id);
        if (!found) {
            cs_cluster_node n;
            node_from_ring(&n, &ring->nodes[r]);
            cs_err why;
            cs_err_set(&why, CS_E_USAGE, "no agent listed for this node (host id %s)", n.host_id);
            cs_cluster_node_fail(&n, &why);
            add_node(c, &n);
        }
    }
    for (size_t i = 0; i < agents->n; i++)
        json_decref(docs[i]);
    free(docs);
    free(errs);
    return rc;
}

/* The template over known nodes: each agent must serve the node it was
 * made for. */
static int open_templated(cs_coord *c, const char *tmpl, cs_cluster_node *nodes /* taken */, size_t n,
                          cs_err *e)
{
    char **urls = cs_calloc(n ? n : 1, sizeof *urls);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const cs_cluster_node *k = &nodes[i];
        urls[i] = cs_agentc_expand(tmpl, k->rpc_address ? k->rpc_address : k->address,
                                   k->address ? k->address : "", k->host_id, e);
        if (!urls[i])
            rc = e->code;
    }
    json_t **docs = cs_calloc(n ? n : 1, sizeof *docs);
    cs_err *errs = cs_calloc(n ? n : 1, sizeof *errs);
    if (!rc)
        probe_all(c, urls, n, docs, errs);
    for (size_t i = 0; i < n; i++) {
        cs_cluster_node *k = &nodes[i];
        if (!rc) {
            k->agent = cs_strdup(urls[i]);
            const char *id = docs[i] ? json_text(docs[i], "host_id") : NULL;
            if (!docs[i]) {
                cs_cluster_node_fail(k, &errs[i]);
            } else if (!id || strcmp(id, k->host_id)) {
                cs_err why;
                cs_err_set(&why, CS_E_USAGE, "agent %s serves host %s, not %s", urls[i], id ? id : "(none)",
                           k->host_id);
                cs_cluster_node_fail(k, &why);
            } else {
                k->ok = true;
                k->facts = json_incref(docs[i]);
                adopt_own_view(k, docs[i]);
            }
            add_node(c, k);
        } else {
            cs_cluster_node_free(k);
        }
        free(urls[i]);
        json_decref(docs[i]);
    }
    free(urls);
    free(docs);
    free(errs);
    free(nodes);
    return rc;
}

/* The job's parts: one per node, named as messages name it. */
static void name_parts(cs_coord *c)
{
    const char **names = cs_calloc(c->n ? c->n : 1, sizeof *names);
    for (size_t i = 0; i < c->n; i++)
        names[i] = cs_cluster_node_name(&c->nodes[i]);
    cs_job_set_parts(c->job, names, c->n);
    free(names);
}

int cs_coord_open(cs_coord *c, cs_job *job, const cs_host *host, const cs_coord_target *t, cs_err *e)
{
    memset(c, 0, sizeof *c);
    c->host = host;
    c->job = job;
    int rc = cs_coord_agents_new(host, &c->agents, e);
    if (rc)
        return rc;
    cs_ring ring;
    memset(&ring, 0, sizeof ring);
    cs_err ring_err;
    cs_err_clear(&ring_err);
    bool have_ring = read_ring(c, t, &ring, &ring_err) == 0;
    if (!have_ring && ring_err.code != CS_E_UNAVAIL && ring_err.code != CS_E_IO)
        return cs_err_set(e, ring_err.code, "%s", ring_err.msg); /* a login or setting to fix */
    if (!have_ring && !t->agents->n && !t->n_known)
        return cs_err_set(e, ring_err.code, "%s (list the agents with {agents} when the cluster is down)",
                          ring_err.msg);
    if (!have_ring)
        cs_debug("no contact point answered (%s): the agents say which node they serve", ring_err.msg);
    if (have_ring) {
        c->cluster = cs_strdup(ring.cluster_name);
        c->partitioner = cs_strdup(ring.partitioner);
    }
    if (t->agents->n) {
        rc = open_listed(c, t->agents, have_ring ? &ring : NULL, e);
    } else {
        size_t n = have_ring ? ring.n : t->n_known;
        cs_cluster_node *nodes = cs_calloc(n ? n : 1, sizeof *nodes);
        for (size_t i = 0; i < n; i++)
            if (have_ring)
                node_from_ring(&nodes[i], &ring.nodes[i]);
            else
                cs_cluster_node_copy(&nodes[i], &t->known[i]);
        rc = open_templated(c, t->agent_template && *t->agent_template ? t->agent_template
                                                                        : CS_CLUSTER_AGENT_TEMPLATE,
                            nodes, n, e);
    }
    cs_ring_free(&ring);
    /* The cluster's name from an agent when no contact point answered. */
    for (size_t i = 0; !rc && !c->cluster && i < c->n; i++)
        if (c->nodes[i].facts && json_text(c->nodes[i].facts, "cluster_name"))
            c->cluster = cs_strdup(json_text(c->nodes[i].facts, "cluster_name"));
    for (size_t i = 0; !rc && i < c->n; i++) {
        cs_cluster_node *n = &c->nodes[i];
        if (n->ok && n->facts && !node_live(n->facts)) {
            /* Kept ok: a stopped node is what a replace restore wants. */
            n->stopped = true;
            n->code = CS_E_UNAVAIL;
            free(n->reason);
            n->reason = cs_sprintf("Cassandra is not running on %s (its agent answers)", cs_cluster_node_name(n));
        }
    }
    if (!rc)
        name_parts(c);
    return rc;
}

void cs_coord_close(cs_coord *c)
{
    for (size_t i = 0; i < c->n; i++)
        cs_cluster_node_free(&c->nodes[i]);
    free(c->nodes);
    free(c->cluster);
    free(c->partitioner);
    json_decref(c->schema);
    cs_agentc_free(c->agents);
    memset(c, 0, sizeof *c);
}

/* ---- running node operations ---- */

/* Node i's part is running, done or failed. */
static void part_state(cs_coord *c, size_t i, cs_part_state state)
{
    cs_progress_part part;
    if (!cs_job_part(c->job, i, &part))
        return;
    part.state = state;
    cs_job_part_set(c->job, i, &part);
}

void cs_coord_phase(cs_coord *c, const char *phase)
{
    cs_job_phase(c->job, phase, 0, 0);
    for (size_t i = 0; i < c->n; i++)
        if (!c->nodes[i].ok) /* left out (its agent, an earlier phase): not waiting for anything */
            part_state(c, i, CS_PART_FAILED);
}

void cs_coord_skip(cs_coord *c, size_t i)
{
    part_state(c, i, CS_PART_SKIPPED);
}

static uint64_t counter(const json_t *p, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(p, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* Node i's part as its agent's job reports it: the agent's phase, and the
 * counters of the last of its phases that counted them (its manifest and
 * cleanup count nothing: the node's line keeps the bytes it uploaded, an
 * import's tables do not hide the bytes it downloaded). */
void cs_coord_part_from(cs_progress_part *part, const json_t *progress)
{
    const char *phase = json_text(progress, "phase");
    if (phase && *phase)
        snprintf(part->phase, sizeof part->phase, "%s", phase);
    uint64_t fd = counter(progress, "files_done"), ft = counter(progress, "files_total");
    uint64_t bd = counter(progress, "bytes_done"), bt = counter(progress, "bytes_total");
    if (fd || ft) {
        part->files_done = fd;
        part->files_total = ft;
    }
    if (bd || bt) {
        part->bytes_done = bd;
        part->bytes_total = bt;
    }
}

/* What node i's agent says of its job, into its part of the job. */
static void report(cs_coord *c, size_t i, const json_t *job)
{
    const json_t *p = json_object_get(job, "progress");
    if (!p)
        return;
    cs_progress_part part;
    cs_job_part(c->job, i, &part); /* only this thread writes part i */
    cs_coord_part_from(&part, p);
    cs_job_part_set(c->job, i, &part);
    if (part.phase[0]) {
        char item[256];
        snprintf(item, sizeof item, "%s: %s", cs_cluster_node_name(&c->nodes[i]), part.phase);
        cs_job_item(c->job, item);
    }
}

/* Interrupted: the agent's job is canceled and waited for (cluster/agentc.h),
 * so that the job does not outlive the command that started it unnoticed. */
static void stop_job(cs_coord *c, const cs_cluster_node *n, uint64_t id)
{
    cs_err err;
    cs_err_clear(&err);
    if (cs_agentc_stop_job(c->agents, n->agent, id, CS_COORD_STOP_WAIT_S, &err))
        cs_warn("node %s: %s", cs_cluster_node_name(n), err.msg);
}

int cs_coord_run(cs_coord *c, size_t i, const char *op, json_t *request, json_t **result, cs_err *e)
{
    return cs_coord_run_kept(c, i, op, request, result, NULL, e);
}

int cs_coord_run_kept(cs_coord *c, size_t i, const char *op, json_t *request, json_t **result, json_t **failed,
                      cs_err *e)
{
    *result = NULL;
    if (failed)
        *failed = NULL;
    cs_cluster_node *n = &c->nodes[i];
    uint64_t id = 0;
    part_state(c, i, CS_PART_RUNNING);
    int rc = cs_agentc_start(c->agents, n->agent, op, request, &id, e);
    json_decref(request);
    if (rc) {
        part_state(c, i, CS_PART_FAILED);
        return rc;
    }
    json_t *job = NULL;
    double wait = 0.05;
    for (;;) {
        json_decref(job);
        job = NULL;
        rc = cs_agentc_job(c->agents, n->agent, id, &job, e);
        if (rc)
            break; /* the agent stopped answering (after the transport's retries) */
        report(c, i, job);
        if (!cs_agentc_job_running(job))
            break;
        if (cs_cancel_sleep(wait, e)) {
            stop_job(c, n, id);
            rc = CS_E_CANCELED;
            break;
        }
        wait = wait < 0.5 ? wait * 2 : 0.5;
    }
    if (!rc) {
        rc = cs_agentc_job_error(job, e);
        if (rc && failed)
            *failed = json_incref(json_object_get(job, "result")); /* NULL when there is none */
    }
    if (!rc)
        *result = json_incref(json_object_get(job, "result"));
    json_decref(job);
    if (!rc && !*result)
        rc = cs_err_set(e, CS_E_PROTO, "the agent's %s job ended without a result", op);
    part_state(c, i, rc ? CS_PART_FAILED : CS_PART_DONE);
    return rc;
}
