/* job.h - the context of one running operation: cancel, progress, log.
 *
 * Owns: cs_job, made by whoever starts an operation (the CLI today; the
 * agent and the server tomorrow, several jobs in one process) and handed to
 * the operation. It carries
 *   - a cancel flag, set from any thread (cs_job_cancel; async-signal-safe)
 *     and read at the operation's safe points through cs_cancel_requested(),
 *     which also sees the process-wide SIGINT/SIGTERM flag;
 *   - the one progress record of the operation: phase, files and bytes done
 *     of total, the current item. Workers add to it from any thread; every
 *     consumer (the terminal line, --progress=json, an API, /metrics) reads
 *     it from here, through the observer's callback or cs_job_progress();
 *     there is never a second counter of the same thing;
 *   - its named parts (a cluster operation: one per node), each with its
 *     own phase, state and counters; the job's counters are then computed
 *     from them (the sum of its parts' plus what is added to the job
 *     itself), never kept beside them;
 *   - the log sink: cs_log() lines of a thread attached to a job go to the
 *     job's observer (so concurrent jobs keep their lines apart) instead of
 *     stderr.
 * A thread works for at most one job at a time: cs_job_attach() binds the
 * job to the calling thread (the operation's own thread and each worker it
 * starts), cs_job_current() finds it again where passing it down would
 * reach into layers that must not know about jobs (the byte pump's cancel
 * checks, the logger).
 * Must not: format anything for a user (consumers do), or block on an
 * observer for long (callbacks run on the working threads). */
#ifndef CS_JOB_H
#define CS_JOB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cs_job cs_job;

/* A copy of a job's progress at one moment. Totals of 0 mean "not known
 * yet" (a phase that has not counted its work). */
typedef struct cs_progress {
    char op[24];          /* "backup", "restore", ... */
    char phase[32];       /* "snapshot", "upload", "download", ... ("" before the first) */
    char item[256];       /* what is being worked on, "" when nothing in particular */
    uint64_t files_done, files_total;
    uint64_t bytes_done, bytes_total;
    double started;       /* seconds since the epoch (CLOCK_REALTIME) */
    double phase_started; /* when the current phase began */
    double elapsed;       /* seconds since started (monotonic) */
    bool canceled;        /* a stop was asked for */
    bool final;           /* the phase is over: its counters as it left them */
    bool ended;           /* the operation has returned (cs_job_end): the last report */
    size_t n_parts;       /* the job's parts (cs_job_progress_parts copies them) */
} cs_progress;

/* A part of a job: one node of a cluster operation. Its counters are those
 * its worker reports (its own phase's); the job's counters include them. */
typedef enum cs_part_state {
    CS_PART_WAITING,
    CS_PART_RUNNING,
    CS_PART_DONE,
    CS_PART_FAILED,
    CS_PART_SKIPPED /* takes no part in this phase (a node a restore leaves alone): not shown */
} cs_part_state;

typedef struct cs_progress_part {
    char name[64];        /* the node's address or host id */
    char phase[32];       /* the part's own phase ("" before its first) */
    cs_part_state state;
    uint64_t files_done, files_total;
    uint64_t bytes_done, bytes_total;
} cs_progress_part;

/* "waiting", "running", "done", "failed", "skipped". */
const char *cs_part_state_name(cs_part_state s);

/* What a consumer of a job wants to hear. Every callback may be NULL; they
 * run on the job's threads (several at once: serialise yourself), so they
 * must be quick. on_progress runs on each phase change (first once more
 * for the phase that ends, with p->final set and phase_changed false, then
 * for the new one with phase_changed), and at most every
 * `progress_interval` seconds otherwise (0: 0.2 s). */
typedef struct cs_job_observer {
    void (*on_progress)(void *arg, const cs_progress *p, bool phase_changed);
    void (*on_log)(void *arg, int level, const char *line);
    void *arg;
    double progress_interval;
} cs_job_observer;

/* A job for operation op ("backup"), reporting to obs (copied; NULL: no
 * observer: progress is only kept, log lines go to stderr). */
cs_job *cs_job_new(const char *op, const cs_job_observer *obs);
void cs_job_free(cs_job *job);

/* Bind job to the calling thread (NULL unbinds); returns the previous one. */
cs_job *cs_job_attach(cs_job *job);
/* The job of the calling thread, or NULL. */
cs_job *cs_job_current(void);

/* pthread_create for the threads an operation starts (workers, a lock's
 * refresher, a storage writer's part uploads): the new thread works for
 * the calling thread's job (cs_job_current() there is the same, so its
 * cancel checks and log lines are the job's). Layers that must not know
 * about jobs use it as they would pthread_create. The job must outlive the
 * thread (threads are joined before the operation returns). Returns
 * pthread_create's result. */
int cs_job_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg);

/* Ask the job to stop at its next safe point. Safe from any thread and
 * from a signal handler. */
void cs_job_cancel(cs_job *job);
/* Has a stop been asked of this job (or of the whole process)? job may be
 * NULL: then only the process flag counts. */
bool cs_job_canceled(const cs_job *job);

/* Progress reports. job may be NULL (then they do nothing), so that code
 * run outside any job needs no special case. */
/* A new phase; its totals (0: unknown yet). Done counters start at 0. */
void cs_job_phase(cs_job *job, const char *phase, uint64_t files_total, uint64_t bytes_total);
/* Raise the totals as work is discovered. */
void cs_job_add_total(cs_job *job, uint64_t files, uint64_t bytes);
/* Work done: bytes as they stream, files when they finish. */
void cs_job_add_bytes(cs_job *job, uint64_t bytes);
void cs_job_add_files(cs_job *job, uint64_t files);
/* The item being worked on (copied; NULL clears it). */
void cs_job_item(cs_job *job, const char *item);

/* Parts. The job gets n parts named names[i] (replacing those it had),
 * each waiting, with no phase and no counters. A new phase of the job
 * (cs_job_phase) puts every part back so. */
void cs_job_set_parts(cs_job *job, const char *const *names, size_t n);
/* Part i now: its phase, state and counters (absolute; p->name is not
 * read). Out of range: nothing. The job's counters follow by
 * construction (they are computed from the parts when read). */
void cs_job_part_set(cs_job *job, size_t i, const cs_progress_part *p);
/* Part i's record (zeroed when out of range); false when out of range. */
bool cs_job_part(const cs_job *job, size_t i, cs_progress_part *out);

/* The operation has returned (its runner says so, before it prints the
 * result): observers hear one last on_progress with p->ended and p->final
 * set (the last phase's counters; a terminal line is cleared then), and
 * later reports are not passed on. */
void cs_job_end(cs_job *job);

/* A copy of the job's progress now (for pollers: an API, /metrics). */
void cs_job_progress(const cs_job *job, cs_progress *out);
/* The same, with its parts taken at the same moment (so that out's
 * counters are the sum of theirs): up to cap into parts; returns how many
 * were copied (out->n_parts says how many there are). */
size_t cs_job_progress_parts(const cs_job *job, cs_progress *out, cs_progress_part *parts, size_t cap);

/* The fencing token a job's agent commands carry (the server's lease
 * epoch; cluster/coord.c sends it to every agent as X-Cassette-Epoch).
 * 0: none (the CLI's jobs). job may be NULL for cs_job_fence (0). */
void cs_job_set_fence(cs_job *job, uint64_t fence);
uint64_t cs_job_fence(const cs_job *job);

/* For the logger: hand a formatted line to the current job's observer.
 * Returns false when the calling thread has no job or its observer takes
 * no log lines (the caller prints the line itself then). */
bool cs_job_log(int level, const char *line);

#endif
