/* results.h - the results of the operations as JSON documents.
 *
 * Owns: the one JSON form of each result: what `--json` prints, what an
 * agent or a server will answer, and what the CLI's text is made from (so
 * the text can never say something the document does not). Field names
 * and types are an interface: tests/data/golden holds them fixed.
 * Must not: hold secrets (an identity's text never goes into a document),
 * or format for people (sizes in bytes, times as ISO 8601 UTC, durations
 * in seconds). */
#ifndef CS_OPS_RESULTS_H
#define CS_OPS_RESULTS_H

#include <jansson.h>

#include "ops/ops.h"

/* One backup of one node, as list, status, purge and delete show it. */
json_t *cs_backup_entry_json(const cs_backup_entry *b);
/* A backup entry's "set": {"id", "cluster", "expected", "complete_hosts",
 * "complete", "missing": [{"host_id", "address", "reason"}]}. */
json_t *cs_set_info_json(const cs_set_info *s);

json_t *cs_init_result_json(const cs_init_req *req, const cs_init_result *res);
json_t *cs_backup_result_json(const cs_backup_req *req, const cs_backup_result *res);
json_t *cs_list_result_json(const cs_list_req *req, const cs_list_result *res);
json_t *cs_status_result_json(const cs_status_req *req, const cs_status_result *res);
json_t *cs_restore_result_json(const cs_restore_req *req, const cs_restore_result *res);
json_t *cs_drill_result_json(const cs_drill_req *req, const cs_drill_result *res);
json_t *cs_load_result_json(const cs_load_req *req, const cs_load_result *res);
json_t *cs_verify_result_json(const cs_verify_req *req, const cs_verify_result *res);
json_t *cs_purge_result_json(const cs_purge_req *req, const cs_purge_result *res);
json_t *cs_delete_result_json(const cs_delete_req *req, const cs_delete_result *res);
json_t *cs_snapshot_result_json(const cs_snapshot_req *req, const cs_snapshot_result *res);
json_t *cs_snapshot_clear_result_json(const cs_snapshot_req *req, const cs_snapshot_result *res);
json_t *cs_cleanup_result_json(const cs_cleanup_req *req, const cs_cleanup_result *res);
json_t *cs_migrate_result_json(const cs_migrate_req *req, const cs_migrate_result *res);
json_t *cs_schema_result_json(const cs_schema_req *req, const cs_schema_result *res);
json_t *cs_key_result_json(const cs_key_generate_req *req, const cs_key_result *res);
json_t *cs_key_public_result_json(const cs_key_public_req *req, const cs_key_public_result *res);

#endif
