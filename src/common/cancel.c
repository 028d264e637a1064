/* cancel.c - the cancel flag and the signal handlers that set it. */
#include "common/cancel.h"
#include "common/job.h"

#include <signal.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

/* Written by the handler, read by every thread: a lock-free atomic would do
 * as well; sig_atomic_t is what C guarantees for a handler, and volatile
 * keeps the loops re-reading it. */
static volatile sig_atomic_t cancel_flag;

static struct sigaction old_int, old_term;
static bool installed;

static void on_signal(int sig)
{
    (void)sig;
    if (cancel_flag) {
        static const char msg[] = "cassette: interrupted again: exiting at once\n";
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)ignored;
        _exit(128 + SIGINT); /* CS_EXIT_INTERRUPTED, the shell's habit */
    }
    cancel_flag = 1;
}

void cs_cancel_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* Restart interrupted system calls: the flag is polled, nothing needs
     * EINTR to notice it, and code that does not expect EINTR stays right. */
    sa.sa_flags = SA_RESTART;
    cancel_flag = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    installed = true;
}

void cs_cancel_uninstall(void)
{
    if (!installed)
        return;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    installed = false;
}

bool cs_cancel_process_requested(void)
{
    return cancel_flag != 0;
}

bool cs_cancel_requested(void)
{
    /* The calling thread's job (per-job cancel: a server's API) or the
     * process (a signal). */
    return cs_job_canceled(cs_job_current());
}

void cs_cancel_request(void)
{
    cancel_flag = 1;
}

void cs_cancel_reset(void)
{
    cancel_flag = 0;
}

int cs_cancel_error(cs_err *e)
{
    return cs_err_set(e, CS_E_CANCELED, "interrupted");
}

int cs_cancel_sleep(double seconds, cs_err *e)
{
    /* Short slices: a stop is seen within 50 ms. */
    while (seconds > 0) {
        if (cs_cancel_requested())
            return cs_cancel_error(e);
        double slice = seconds < 0.05 ? seconds : 0.05;
        struct timespec ts = { 0, (long)(slice * 1e9) };
        nanosleep(&ts, NULL);
        seconds -= slice;
    }
    return cs_cancel_requested() ? cs_cancel_error(e) : 0;
}
