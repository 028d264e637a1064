/* log.h - diagnostic messages on stderr.
 *
 * Owns: the log verbosity (set once from the config at start-up) and the
 * format of log lines. Never log secrets: passwords, keys and identities are
 * passed around, never formatted into messages. */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <stdio.h>

enum cs_log_level { CS_LOG_ERROR = 0, CS_LOG_WARN, CS_LOG_INFO, CS_LOG_DEBUG };

void cs_log_set_level(int level);
int cs_log_get_level(void);
void cs_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "error", "warning", "info" or "debug". */
const char *cs_log_level_name(int level);
/* Write one line as the logger does ("cassette: warning: ...\n"): for a
 * job's observer that prints the lines it is handed (common/job.h). */
void cs_log_write(FILE *out, int level, const char *line);

#define cs_warn(...) cs_log(CS_LOG_WARN, __VA_ARGS__)
#define cs_info(...) cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_debug(...) cs_log(CS_LOG_DEBUG, __VA_ARGS__)

#endif
