#include "common/log.h"
#include "common/job.h"

#include <stdarg.h>
#include <stdio.h>

/* Part of the configuration: written once by the CLI before any work starts. */
static int log_level = CS_LOG_WARN;

void cs_log_set_level(int level) { log_level = level; }
int cs_log_get_level(void) { return log_level; }

void cs_log(int level, const char *fmt, ...)
{
    static const char *names[] = { "error", "warning", "info", "debug" };
    if (level > log_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (cs_job_log(level, line)) /* the job's observer keeps its lines apart */
        return;
    fprintf(stderr, "cassette: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}
