/* output.h - how results look: text for people, JSON for programs.
 *
 * Owns: the formatting of every op's result. Must not: run ops. */
#ifndef CS_OUTPUT_H
#define CS_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "common/units.h"
#include "ops/ops.h"

void cs_print_backup(FILE *out, const cs_backup_result *res, bool json);
void cs_print_list(FILE *out, const cs_backup_entry *entries, size_t n, bool json);
void cs_print_delete(FILE *out, const cs_delete_result *res, bool json);
void cs_print_purge(FILE *out, const cs_purge_result *res, bool json);
void cs_print_status(FILE *out, const cs_status_result *res, bool json);
void cs_print_migrate(FILE *out, const cs_migrate_result *res, bool json);
void cs_print_restore(FILE *out, const char *backup, const cs_restore_result *res, bool json);
void cs_print_cleanup(FILE *out, const cs_cleanup_result *res, bool json);
/* Problems go to err one per line (text) or into the JSON on out. */
void cs_print_verify(FILE *out, FILE *err, const cs_verify_result *res, bool json);

#endif
