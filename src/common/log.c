#include "common/log.h"
#include "common/job.h"

#include <stdarg.h>
#include <stdio.h>

/* Part of the configuration: written once by the CLI before any work starts. */
static int log_level = CS_LOG_WARN;

void cs_log_set_level(int level) { log_level = level; }
int cs_log_get_level(void) { return log_level; }

const char *cs_log_level_name(int level)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    return names[level < 0 ? 0 : level > 3 ? 3 : level];
}

void cs_log_write(FILE *out, int level, const char *line)
{
    fprintf(out, "cassette: %s: %s\n", cs_log_level_name(level), line);
}

void cs_log(int level, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (cs_job_log(level, line)) /* the job's observer keeps its lines apart */
        return;
    cs_log_write(stderr, level, line);
}
