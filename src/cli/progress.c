/* progress.c - the live line, plain lines and JSON events of a job, and the
 * signal handlers around a long operation. */
#include "cli/progress.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli/output.h"
#include "common/buf.h"
#include "common/cancel.h"
#include "common/log.h"
#include "common/progress.h"

#define TTY_INTERVAL 0.2    /* redraws of the live line: 5 a second at most */
#define JSON_INTERVAL 1.0   /* "progress" events: one a second at most, when something moved */
#define PLAIN_INTERVAL 10.0 /* plain lines between phases */
#define DEFAULT_WIDTH 80

struct cs_cli_progress {
    cs_progress_mode mode;
    bool long_op;         /* the command takes --progress: it honours a cancel */
    cs_job_observer obs;
    cs_job *job;
    bool signals;         /* the handlers are installed (put back by finish) */
    /* The redraw thread; everything below is shared with it under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool thread_running;
    bool stop;
    bool phase_seen;      /* the operation reported a phase: there is something to show */
    bool ended;           /* cs_job_end: nothing more is drawn */
    bool shown;           /* tty: a line is on the screen */
    cs_rate bytes, files;
    double last_emit;     /* monotonic time of the last plain line or progress event */
    uint64_t emitted_files, emitted_bytes; /* json: what the last event said */
    char emitted_item[256];
    /* json: events go to the real stdout; stdout itself is kept aside in
     * capture until the result document, which ends the stream. */
    FILE *events;
    FILE *capture;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- pure parts ---- */

bool cs_progress_mode_of(const char *value, bool stderr_tty, int verbose, bool quiet, cs_progress_mode *out)
{
    static const struct {
        const char *name;
        cs_progress_mode mode;
    } modes[] = { { "tty", CS_PROGRESS_TTY }, { "plain", CS_PROGRESS_PLAIN }, { "json", CS_PROGRESS_JSON },
                  { "none", CS_PROGRESS_NONE } };
    if (!value || !strcmp(value, "auto")) {
        *out = quiet ? CS_PROGRESS_NONE : stderr_tty ? CS_PROGRESS_TTY : verbose ? CS_PROGRESS_PLAIN : CS_PROGRESS_NONE;
        return true;
    }
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (!strcmp(value, modes[i].name)) {
            *out = modes[i].mode;
            return true;
        }
    return false;
}

const char *cs_progress_noun(const char *phase)
{
    static const struct {
        const char *phase, *noun;
    } nouns[] = { { "import", "tables" }, { "check objects", "objects" }, { "list", "objects" },
                  { "list objects", "objects" }, { "read", "objects" }, { "sweep", "objects" } };
    for (size_t i = 0; phase && i < sizeof nouns / sizeof nouns[0]; i++)
        if (!strcmp(phase, nouns[i].phase))
            return nouns[i].noun;
    return "files";
}

/* Append to buf (NUL-terminated, cap bytes); *sep goes first, then ", ". */
static void __attribute__((format(printf, 5, 6)))
part(char *buf, size_t cap, size_t *len, const char **sep, const char *fmt, ...)
{
    if (*len + 1 >= cap)
        return;
    int n = snprintf(buf + *len, cap - *len, "%s", *sep);
    *len += n > 0 ? (size_t)n : 0;
    if (*len + 1 >= cap) {
        *len = cap - 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    *len += n > 0 ? (size_t)n : 0;
    if (*len >= cap)
        *len = cap - 1;
    *sep = ", ";
}

static unsigned percent(uint64_t done, uint64_t total)
{
    return done >= total ? 100u : (unsigned)((double)done * 100.0 / (double)total);
}

static void counts(char *buf, size_t cap, size_t *len, const char **sep, const cs_progress *p)
{
    const char *noun = cs_progress_noun(p->phase);
    char done[32], total[32];
    if (p->files_total)
        part(buf, cap, len, sep, "%llu/%llu %s", (unsigned long long)p->files_done,
             (unsigned long long)p->files_total, noun);
    else if (p->files_done)
        part(buf, cap, len, sep, "%llu %s", (unsigned long long)p->files_done, noun);
    cs_human_size(p->bytes_done, done, sizeof done);
    cs_human_size(p->bytes_total, total, sizeof total);
    if (p->bytes_total)
        part(buf, cap, len, sep, "%s/%s (%u%%)", done, total, percent(p->bytes_done, p->bytes_total));
    else if (p->bytes_done)
        part(buf, cap, len, sep, "%s", done);
    else if (p->files_total)
        part(buf, cap, len, sep, "%u%%", percent(p->files_done, p->files_total));
}

/* Control characters (from an item's name) would move the cursor. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* Cut s to width bytes, never in the middle of a UTF-8 sequence. */
static void cut(char *s, size_t width)
{
    size_t n = strlen(s);
    if (!width || n <= width)
        return;
    while (width > 0 && ((unsigned char)s[width] & 0xc0) == 0x80)
        width--;
    s[width] = '\0';
}

void cs_progress_line(char *buf, size_t cap, const cs_progress *p, double byte_rate, double file_rate, size_t width)
{
    if (!cap)
        return;
    size_t len = 0;
    const char *sep = "";
    buf[0] = '\0';
    part(buf, cap, &len, &sep, "%s: %s", p->op, p->phase[0] ? p->phase : "starting");
    sep = " ";
    counts(buf, cap, &len, &sep, p);
    char text[32];
    if (byte_rate > 0 && p->bytes_done) {
        cs_human_size((uint64_t)byte_rate, text, sizeof text);
        part(buf, cap, &len, &sep, "%s/s", text);
    } else if (file_rate > 0 && p->files_total) {
        part(buf, cap, &len, &sep, "%.1f %s/s", file_rate, cs_progress_noun(p->phase));
    }
    double eta = cs_progress_eta_of(p, byte_rate, file_rate);
    if (eta >= 0) {
        cs_human_duration(eta, text, sizeof text);
        part(buf, cap, &len, &sep, "ETA %s", text);
    } else {
        cs_human_duration(cs_progress_phase_elapsed(p), text, sizeof text);
        part(buf, cap, &len, &sep, "%s", text);
    }
    if (p->canceled)
        part(buf, cap, &len, &sep, "stopping");
    if (p->item[0])
        part(buf, cap, &len, &sep, "%s", p->item);
    sanitize(buf);
    cut(buf, width);
}

char *cs_progress_event(const char *kind, const cs_progress *p, double byte_rate, double file_rate)
{
    json_t *ev = json_object();
    json_object_set_new(ev, "event", json_string(kind));
    json_t *record = cs_progress_json(p, byte_rate, file_rate);
    json_object_update(ev, record);
    json_decref(record);
    char *text = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(ev);
    if (!text)
        abort(); /* out of memory */
    return text;
}

/* ---- drawing (mu held) ---- */

static size_t terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return DEFAULT_WIDTH;
}

static void clear_line(cs_cli_progress *p)
{
    if (!p->shown)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->shown = false;
}

static void draw(cs_cli_progress *p, const cs_progress *pr)
{
    char line[512], out[600];
    size_t width = terminal_width();
    /* One column short of the width: a full line would wrap on some terminals. */
    cs_progress_line(line, sizeof line, pr, cs_rate_per_second(&p->bytes), cs_rate_per_second(&p->files),
                     width > 1 ? width - 1 : width);
    int n = snprintf(out, sizeof out, "\r%s\033[K", line);
    fwrite(out, 1, n > 0 ? (size_t)n : 0, stderr);
    fflush(stderr);
    p->shown = true;
}

static void plain_line(cs_cli_progress *p, const cs_progress *pr)
{
    char line[1024];
    cs_progress_line(line, sizeof line, pr, cs_rate_per_second(&p->bytes), cs_rate_per_second(&p->files), 0);
    fprintf(stderr, "cassette: %s\n", line);
    p->last_emit = mono_now();
}

static void emit(cs_cli_progress *p, const char *kind, const cs_progress *pr)
{
    char *text = cs_progress_event(kind, pr, cs_rate_per_second(&p->bytes), cs_rate_per_second(&p->files));
    fprintf(p->events, "%s\n", text);
    fflush(p->events);
    free(text);
    p->last_emit = mono_now();
    p->emitted_files = pr->files_done;
    p->emitted_bytes = pr->bytes_done;
    snprintf(p->emitted_item, sizeof p->emitted_item, "%s", pr->item);
}

static void sample(cs_cli_progress *p, const cs_progress *pr)
{
    double now = mono_now();
    cs_rate_add(&p->bytes, now, pr->bytes_done);
    cs_rate_add(&p->files, now, pr->files_done);
}

/* ---- the job's callbacks (on the job's threads) ---- */

/* A phase that ends: its last counters (a plain line, a "progress" event;
 * the live line goes on to the next phase). */
static void phase_over(cs_cli_progress *p, const cs_progress *pr)
{
    sample(p, pr);
    if (p->mode == CS_PROGRESS_PLAIN)
        plain_line(p, pr);
    else if (p->mode == CS_PROGRESS_JSON)
        emit(p, "progress", pr);
}

static void phase_begins(cs_cli_progress *p, const cs_progress *pr)
{
    p->phase_seen = true;
    cs_rate_reset(&p->bytes);
    cs_rate_reset(&p->files);
    sample(p, pr);
    p->last_emit = mono_now(); /* plain: the next line 10 s into the phase */
    if (p->mode == CS_PROGRESS_TTY)
        draw(p, pr);
    else if (p->mode == CS_PROGRESS_JSON)
        emit(p, "phase", pr);
}

static void on_progress(void *arg, const cs_progress *pr, bool phase_changed)
{
    cs_cli_progress *p = arg;
    if (!phase_changed && !pr->final)
        return; /* the redraw thread shows the counters at its own pace */
    pthread_mutex_lock(&p->mu);
    if (!p->ended && pr->final)
        phase_over(p, pr);
    if (pr->ended) {
        p->ended = true;
        clear_line(p); /* before the result is printed */
    } else if (!p->ended && phase_changed) {
        phase_begins(p, pr);
    }
    pthread_mutex_unlock(&p->mu);
}

static void on_log(void *arg, int level, const char *line)
{
    cs_cli_progress *p = arg;
    pthread_mutex_lock(&p->mu);
    if (p->mode == CS_PROGRESS_JSON) {
        json_t *ev = json_pack("{s:s, s:s, s:s}", "event", "log", "level", cs_log_level_name(level), "message", line);
        char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        if (text)
            fprintf(p->events, "%s\n", text);
        fflush(p->events);
        free(text);
        json_decref(ev);
    } else {
        clear_line(p); /* the next redraw puts the line back under it */
        cs_log_write(stderr, level, line);
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- the redraw thread ---- */

static void wait_for(cs_cli_progress *p, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (long)(seconds * 1e9);
    until.tv_sec += ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&p->cv, &p->mu, &until);
}

static void tick(cs_cli_progress *p)
{
    cs_progress pr;
    cs_job_progress(p->job, &pr);
    sample(p, &pr);
    double since = mono_now() - p->last_emit;
    if (p->mode == CS_PROGRESS_TTY)
        draw(p, &pr);
    else if (p->mode == CS_PROGRESS_PLAIN && since >= PLAIN_INTERVAL)
        plain_line(p, &pr);
    else if (p->mode == CS_PROGRESS_JSON && since >= JSON_INTERVAL &&
             (pr.files_done != p->emitted_files || pr.bytes_done != p->emitted_bytes ||
              strcmp(pr.item, p->emitted_item)))
        emit(p, "progress", &pr);
}

static void *redraw_main(void *arg)
{
    cs_cli_progress *p = arg;
    double interval = p->mode == CS_PROGRESS_TTY ? TTY_INTERVAL : 1.0;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        wait_for(p, interval);
        if (!p->stop && p->phase_seen && !p->ended)
            tick(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- json: stdout kept aside until the result ---- */

/* Events go to a copy of the real stdout; stdout itself goes to a
 * temporary file, so that the result document the command prints (with
 * its --json, indented) can end the stream as one compact line. */
static void capture_stdout(cs_cli_progress *p)
{
    fflush(stdout);
    int real = dup(STDOUT_FILENO);
    FILE *tmp = real >= 0 ? tmpfile() : NULL;
    FILE *events = tmp ? fdopen(real, "w") : NULL;
    if (events && dup2(fileno(tmp), STDOUT_FILENO) >= 0) {
        p->events = events;
        p->capture = tmp;
        return;
    }
    /* Cannot keep it aside: events and the result share stdout as it is. */
    if (events)
        fclose(events);
    else if (real >= 0)
        close(real);
    if (tmp)
        fclose(tmp);
    p->events = stdout;
}

/* Put stdout back and print what the command printed: a JSON document as
 * one compact line, anything else as it was. */
static void release_stdout(cs_cli_progress *p)
{
    if (!p->capture)
        return;
    fflush(stdout);
    dup2(fileno(p->events), STDOUT_FILENO);
    cs_buf text = CS_BUF_INIT;
    char chunk[65536];
    size_t n;
    rewind(p->capture);
    while ((n = fread(chunk, 1, sizeof chunk, p->capture)) > 0)
        cs_buf_add(&text, chunk, n);
    fclose(p->capture);
    p->capture = NULL;
    json_error_t je;
    json_t *doc = text.len ? json_loadb(text.data, text.len, 0, &je) : NULL;
    char *line = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (line)
        fprintf(p->events, "%s\n", line);
    else if (text.len)
        fwrite(text.data, 1, text.len, p->events);
    free(line);
    json_decref(doc);
    cs_buf_free(&text);
}

static void error_event(cs_cli_progress *p, const cs_err *failure)
{
    char msg[CS_ERR_MSG_MAX + 256];
    cs_err_render(failure, cs_config_namer, NULL, msg, sizeof msg); /* as the error line says it */
    json_t *ev = json_pack("{s:s, s:s, s:i}", "event", "error", "message", msg, "exit_code",
                           cs_exit_code(failure->code));
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    if (text)
        fprintf(p->events, "%s\n", text);
    free(text);
    json_decref(ev);
}

/* ---- life cycle ---- */

int cs_cli_progress_new(cs_config *cfg, cs_cli_progress **out, cs_err *e)
{
    cs_cli_progress *p = cs_calloc(1, sizeof *p);
    p->long_op = cs_config_takes(cfg->command, "progress");
    if (p->long_op && !cs_progress_mode_of(cfg->progress, isatty(STDERR_FILENO) == 1, cfg->verbose, cfg->quiet,
                                           &p->mode)) {
        free(p);
        *out = NULL;
        return cs_err_set(e, CS_E_USAGE, "--progress must be auto, tty, plain, json or none, not \"%s\"",
                          cfg->progress);
    }
    if (p->mode == CS_PROGRESS_JSON)
        cfg->json = true; /* the result document ends the stream */
    p->obs.on_progress = on_progress;
    p->obs.on_log = p->mode == CS_PROGRESS_NONE || p->mode == CS_PROGRESS_PLAIN ? NULL : on_log;
    p->obs.arg = p;
    p->obs.progress_interval = 3600; /* only phase changes: the redraw thread polls the counters */
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    cs_rate_reset(&p->bytes);
    cs_rate_reset(&p->files);
    *out = p;
    return 0;
}

const cs_job_observer *cs_cli_progress_observer(const cs_cli_progress *p)
{
    return p && p->mode != CS_PROGRESS_NONE ? &p->obs : NULL;
}

void cs_cli_progress_start(cs_cli_progress *p, cs_job *job)
{
    if (!p)
        return;
    p->job = job;
    if (p->long_op) {
        /* SIGINT and SIGTERM stop the operation at its next safe point
         * (exit 130); other commands keep the default (killed at once). */
        cs_cancel_install();
        p->signals = true;
    }
    if (p->mode == CS_PROGRESS_JSON)
        capture_stdout(p);
    if (p->mode != CS_PROGRESS_NONE)
        p->thread_running = pthread_create(&p->thread, NULL, redraw_main, p) == 0;
}

void cs_cli_progress_finish(cs_cli_progress *p, const cs_err *failure)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (p->thread_running)
        pthread_join(p->thread, NULL);
    clear_line(p);
    if (p->mode == CS_PROGRESS_JSON) {
        release_stdout(p);
        if (failure)
            error_event(p, failure);
        fflush(p->events);
        if (p->events != stdout)
            fclose(p->events);
    }
    if (p->signals)
        cs_cancel_uninstall();
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
