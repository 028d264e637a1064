/* drill.h - the checks of a restore drill: a table restored into a scratch
 * keyspace compared with the live table it came from.
 *
 * Owns: the scratch keyspaces' names (cassette_drill_<id>_<ks>), the
 * comparison of one restored table with its live source over CQL (row
 * counts per token range, a sample of rows by content, what changed since
 * the backup told apart from what the backup lost), the report of one
 * table as a JSON object, and the verdict a set of reports amounts to.
 * Memory stays bounded: every read is one token range or a LIMIT, never a
 * whole table. Used by the node drill (ops/drill.c's cs_op_drill) and by
 * the cluster drill.
 * Must not: restore, create or drop anything (the callers do), or print. */
#ifndef CS_OPS_DRILL_H
#define CS_OPS_DRILL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cassandra/cql.h"
#include "common/err.h"
#include "common/job.h"
#include "common/strlist.h"

#define CS_DRILL_PREFIX "cassette_drill_"
#define CS_DRILL_KS_MAX 48 /* Cassandra's limit on a keyspace name */

typedef struct cs_drill_opts {
    size_t sample_rows;        /* rows compared by content per table (default 100) */
    uint16_t consistency;      /* CQL consistency of every read (node: ONE; cluster: QUORUM or ALL) */
    int64_t backup_start_us;   /* rows written (writetime) at or before this are in the backup */
} cs_drill_opts;

/* A new drill id: 8 lowercase hex characters, random. */
void cs_drill_new_id(char out[9]);

/* "cassette_drill_<id>_<ks>", cut to 48 characters; id is 8 lowercase hex
 * characters. CS_E_USAGE for a bad id, CS_E_INVAL when out is too small. */
int cs_drill_scratch_name(const char *drill_id, const char *ks, char *out, size_t cap, cs_err *e);

/* want of the tables in all ("ks.table"), picked at random, added to out
 * (0, or as many as there are or more: every one, in a random order); all's
 * order changes. Used by the node and the cluster drill. */
void cs_drill_pick_tables(cs_strlist *all, size_t want, cs_strlist *out);

/* For the tables ("ks.table") of drill drill_id: each keyspace's scratch
 * keyspace added to scratch once, and the restore's keyspace_map entry
 * "ks=scratch" to map. CS_E_INVAL when two keyspaces get the same scratch
 * name (48 characters at most). */
int cs_drill_scratch_map(const char *drill_id, const cs_strlist *tables, cs_strlist *map, cs_strlist *scratch,
                         cs_err *e);

/* Is ks.table in the schema over conn (a drill compares only live tables)? */
bool cs_drill_table_is_live(cql_conn *conn, const char *ks, const char *table);

/* The scratch keyspaces (CS_DRILL_PREFIX) in the schema over conn, added
 * to out: what earlier drills left (killed, or kept). */
int cs_drill_find_scratch(cql_conn *conn, cs_strlist *out, cs_err *e);

/* Compare scratch_ks.table (restored) with ks.table (live) over conn;
 * *report = a new JSON object for the table:
 *   "table" ("ks.table"), "scratch" ("scratch_ks.table"), "restored": true;
 *   row counts over the token ring: "rows_backup", "rows_live", "ranges" (64,
 *   or more for a big table: about 50000 partitions each by the node's
 *   size estimates);
 *   keys compared range by range, "keys_compared" rows in all (every range
 *   whose counts differ, halved until it holds at most 2000 rows a side;
 *   ranges whose counts agree too, while fewer than a million rows have
 *   been compared so, since a lost row may hide behind a new one):
 *   "new_since" (live rows written after the backup started), "deleted_since"
 *   (restored rows no longer live), "lost" (live rows written before the
 *   backup that the restored table lacks: damage), "unknown_since" (missing
 *   rows without a writetime to tell);
 *   the sample ("sampled" rows of the restored table by random token, each
 *   looked up live by its primary key): "matched", "changed_since" (a cell
 *   written after the backup started, or deleted since), "gone_since" (no
 *   longer live), "mismatched" (a column differs: damage);
 *   "writetimes" (false: no regular column shows one, counted only) and
 *   "problems" (at most 5 one-line sentences naming table, key and column).
 * An error return is a failure to check (CQL down, a table missing), not a
 * difference: differences are in the report. Reports progress through job
 * (may be NULL): one item per range and per sampled row, one file done per
 * table (the caller sets the phase, e.g. "check" with its tables). */
int cs_drill_check_table(cql_conn *conn, const char *ks, const char *table, const char *scratch_ks,
                         const cs_drill_opts *o, cs_job *job, json_t **report, cs_err *e);

/* The error the reports (a JSON array of cs_drill_check_table's reports)
 * amount to: CS_E_CORRUPT naming the first table with lost or mismatched
 * rows and its first problem, or 0. */
int cs_drill_reports_verdict(const json_t *reports, cs_err *e);

#endif
