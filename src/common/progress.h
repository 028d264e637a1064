/* progress.h - what every consumer derives from a job's progress record.
 *
 * Owns: the recent rate of a counter (cs_rate), the ETA, and the record as
 * a JSON object (phase, files and bytes done of total, item, elapsed,
 * rate, ETA): the fields of the CLI's --progress=json events and of an
 * agent's job record, made once so that they cannot differ; likewise a
 * part's (a node's) object, for the events' and the server's "nodes".
 * Must not: read the job itself (callers hand it a cs_progress copy) or
 * format text for a terminal (cli/progress.h does). */
#ifndef CS_COMMON_PROGRESS_H
#define CS_COMMON_PROGRESS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/job.h"

/* Recent throughput: samples of a counter over the last window seconds. */
#define CS_RATE_SAMPLES 64
typedef struct cs_rate {
    double t[CS_RATE_SAMPLES];
    uint64_t v[CS_RATE_SAMPLES];
    size_t n, head;   /* ring: n samples, the oldest at head */
    double window;    /* seconds kept (0: 10) */
} cs_rate;

void cs_rate_reset(cs_rate *r);
/* The counter is at v at time t (seconds, increasing). */
void cs_rate_add(cs_rate *r, double t, uint64_t v);
/* Units per second over the samples kept; 0 until two samples a tenth of
 * a second apart. */
double cs_rate_per_second(const cs_rate *r);

/* Seconds until done reaches total at rate; -1 when it cannot be told
 * (no total, no rate yet). 0 when done. */
double cs_progress_eta(uint64_t done, uint64_t total, double rate);
/* The ETA of p: by bytes when their total is known, else by files. */
double cs_progress_eta_of(const cs_progress *p, double byte_rate, double file_rate);
/* Seconds since the current phase began. */
double cs_progress_phase_elapsed(const cs_progress *p);

/* The record as a JSON object (new reference): op, phase, files_done,
 * files_total, bytes_done, bytes_total, item, elapsed, phase_elapsed,
 * bytes_per_second, eta (null: unknown), final, canceled. */
json_t *cs_progress_json(const cs_progress *p, double byte_rate, double file_rate);

/* The ETA of a part: by bytes when their total is known, else by files
 * (at rate, in the unit it goes by); -1 unknown. */
double cs_progress_part_eta(const cs_progress_part *part, double byte_rate, double file_rate);

/* A part as a JSON object (new reference): name, phase, state, files_done,
 * files_total, bytes_done, bytes_total, and with rates (byte_rate < 0: no
 * rate known to the caller: both left out) bytes_per_second and eta (null:
 * unknown). */
json_t *cs_progress_part_json(const cs_progress_part *part, double byte_rate, double file_rate);

#endif
