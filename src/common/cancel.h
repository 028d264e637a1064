/* cancel.h - stopping a long operation at its next safe point.
 *
 * Owns: the process's cancel request (one flag) and the SIGINT/SIGTERM
 * handlers that set it. The handler only sets the flag (async-signal-safe);
 * the work checks cs_cancel_requested() at safe points (between reads of the
 * byte pump, before a part is sent, before a job starts) and returns
 * CS_E_CANCELED, so that what is stored stays stored, locks are released
 * and local state is saved on the way out. A second signal while the first
 * one is being honoured exits at once with status 130 (the operator insists;
 * what a killed process leaves behind is the next run's to clean up).
 * The handlers are installed by the CLI (cli/progress.c) only around the
 * operations that honour the flag (backup, restore, verify, purge: never
 * by an operation itself, which may run beside others in a server); other
 * commands keep the default behaviour (killed at once).
 * One flag per process, and one per job (common/job.h): a daemon running
 * several operations stops one of them with cs_job_cancel.
 * Must not: do anything in the handler but set the flag (or _exit). */
#ifndef CS_CANCEL_H
#define CS_CANCEL_H

#include <stdbool.h>

#include "common/err.h"

/* Install the SIGINT and SIGTERM handlers (and clear the flag); the
 * previous dispositions come back with cs_cancel_uninstall. Not nestable. */
void cs_cancel_install(void);
void cs_cancel_uninstall(void);

/* Has a stop been asked for, of the process (a signal) or of the calling
 * thread's job (see common/job.h)? Cheap: read it in loops. */
bool cs_cancel_requested(void);
/* The process flag alone (what a signal set). */
bool cs_cancel_process_requested(void);
/* Ask for a stop from the program itself (tests, a failing peer). */
void cs_cancel_request(void);
/* Forget a request (tests). */
void cs_cancel_reset(void);

/* Sleep for seconds, waking early on a stop request: then CS_E_CANCELED
 * (as cs_cancel_error), else 0. */
int cs_cancel_sleep(double seconds, cs_err *e);

/* CS_E_CANCELED, "interrupted" (the operation says what to do next). */
int cs_cancel_error(cs_err *e);

#endif
