/* progress.h - the command line's side of a job: what a person or a program
 * sees of a long operation while it runs, and SIGINT.
 *
 * Owns: the CLI's consumers of a job's events (common/job.h), chosen with
 * --progress, for the commands that take it (backup, restore, verify,
 * purge: the option table says which):
 *   auto   (the default) tty when stderr is a terminal; plain with -v when
 *          it is not; none with -q or otherwise
 *   tty    one live line on stderr (phase, files and bytes done of total,
 *          rate, ETA, current item), redrawn in place at most 5 times a
 *          second; cleared before any log line and before the result.
 *          A job with parts at work (a cluster command: one per node)
 *          shows a block instead: a line per node (phase, bytes done of
 *          total, %, rate, ETA, state) and an overall line (their sum),
 *          redrawn and cleared alike; the one line again when the
 *          terminal is too narrow, the busiest CS_PROGRESS_MAX_PARTS - 1
 *          nodes and "... N more" when there are too many
 *   plain  a line on stderr as each phase ends and every 10 s, without
 *          any control character (logs, CI); with parts, their lines
 *          under it
 *   json   one JSON object per line on stdout: {"event":"phase"|"progress"
 *          |"log"|"error", ...} (with parts, "phase" and "progress"
 *          events carry them as "nodes"); the last line is the result document that
 *          --json prints (compact), or an "error" event
 *   none   nothing (log lines still go to stderr)
 * and, around those commands, the SIGINT/SIGTERM handlers that stop the
 * job at its next safe point (common/cancel.h: exit 130).
 * The text of the line, the rate and the ETA are pure functions, tested.
 * Must not: run operations, or count anything itself (every number comes
 * from the job's one progress record). */
#ifndef CS_CLI_PROGRESS_H
#define CS_CLI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/config.h"
#include "common/err.h"
#include "common/job.h"
#include "common/progress.h" /* cs_rate, cs_progress_eta: the numbers of the line and events */

typedef enum cs_progress_mode {
    CS_PROGRESS_NONE,
    CS_PROGRESS_TTY,
    CS_PROGRESS_PLAIN,
    CS_PROGRESS_JSON
} cs_progress_mode;

typedef struct cs_cli_progress cs_cli_progress;

/* The consumer for cfg's command and --progress (CS_E_USAGE for a value
 * that is not one of the five). --progress=json implies --json (cfg is
 * changed: the result document is what ends the stream). */
int cs_cli_progress_new(cs_config *cfg, cs_cli_progress **out, cs_err *e);
/* What to give cs_job_new (NULL: no consumer). */
const cs_job_observer *cs_cli_progress_observer(const cs_cli_progress *p);
/* Start following job: the redraw thread, the signal handlers of a
 * long operation, and (json) stdout kept aside until the result. */
void cs_cli_progress_start(cs_cli_progress *p, cs_job *job);
/* The command is over (failure: its error, or NULL): stop, clear the
 * line, (json) print the result document or an error event, put the
 * signal handlers back, free p. Call before printing the error. */
void cs_cli_progress_finish(cs_cli_progress *p, const cs_err *failure);

/* ---- pure parts, for tests ---- */

/* --progress's value and what auto becomes; false for an unknown value. */
bool cs_progress_mode_of(const char *value, bool stderr_tty, int verbose, bool quiet, cs_progress_mode *out);

/* What the counted files of a phase are ("files", "objects", "tables"). */
const char *cs_progress_noun(const char *phase);

/* The line for p, at most width characters (0: no limit), into buf:
 * "backup: upload 12/40 files, 1.2 GiB/3.4 GiB (35%), 80.5 MiB/s, ETA 30s, ks.t/nb-1-big-Data.db".
 * byte_rate and file_rate come from cs_rate_per_second. Never a control
 * character. */
void cs_progress_line(char *buf, size_t cap, const cs_progress *p, double byte_rate, double file_rate, size_t width);

/* A JSON event line (no newline) of kind "phase" or "progress"; the caller
 * frees it. */
char *cs_progress_event(const char *kind, const cs_progress *p, double byte_rate, double file_rate);
/* The same with the job's parts as "nodes" (part_rates[i]: part i's bytes
 * per second; n 0: as cs_progress_event). */
char *cs_progress_event_parts(const char *kind, const cs_progress *p, double byte_rate, double file_rate,
                              const cs_progress_part *parts, const double *part_rates, size_t n);

/* Part lines of a block at most (the "... N more" line included). */
#define CS_PROGRESS_MAX_PARTS 16

/* The block a job with parts shows: a line per part (name, phase, bytes
 * done/total, %, rate, ETA, state: aligned columns) and the overall line
 * (the job's phase and counters, its rate and ETA, how many parts are
 * done), '\n' between lines, none after the last, into buf; skipped parts
 * are left out (of the lines and of the count). More parts
 * than max_parts: the max_parts - 1 busiest (running, fastest first; then
 * failed, waiting, done), in their order, and "... N more (...)". Returns
 * the number of lines; 0 when a line would be wider than width (0: no
 * limit) or there are no parts: the caller shows the one line. Never a
 * control character. */
size_t cs_progress_block(char *buf, size_t cap, const cs_progress *p, double byte_rate, double file_rate,
                         const cs_progress_part *parts, const double *part_rates, size_t n, size_t max_parts,
                         size_t width);

#endif
