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
    size_t shown;         /* tty: lines on the screen (0: none; 1: the one line) */
    cs_rate bytes, files;
    /* the job's parts as last read, each with its rate */
    cs_progress_part *parts;
    cs_rate *part_samples;
    double *part_rates;
    size_t n_parts, parts_cap;
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
                  { "list objects", "objects" }, { "read", "objects" }, { "sweep", "objects" },
                  { "check", "tables" }, { "clean up", "keyspaces" } };
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

char *cs_progress_event_parts(const char *kind, const cs_progress *p, double byte_rate, double file_rate,
                              const cs_progress_part *parts, const double *part_rates, size_t n)
{
    json_t *ev = json_object();
    json_object_set_new(ev, "event", json_string(kind));
    json_t *record = cs_progress_json(p, byte_rate, file_rate);
    json_object_update(ev, record);
    json_decref(record);
    if (n) {
        json_t *nodes = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(nodes, cs_progress_part_json(&parts[i], part_rates ? part_rates[i] : 0, 0));
        json_object_set_new(ev, "nodes", nodes);
    }
    char *text = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(ev);
    if (!text)
        abort(); /* out of memory */
    return text;
}

char *cs_progress_event(const char *kind, const cs_progress *p, double byte_rate, double file_rate)
{
    return cs_progress_event_parts(kind, p, byte_rate, file_rate, NULL, NULL, 0);
}

/* ---- the block of a job with parts ---- */

enum { C_NAME, C_PHASE, C_AMOUNT, C_PERCENT, C_RATE, C_ETA, C_STATE, N_COLS };

typedef struct row {
    char cell[N_COLS][72];
} row;

static void __attribute__((format(printf, 3, 4))) cell(row *r, int c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->cell[c], sizeof r->cell[c], fmt, ap);
    va_end(ap);
}

/* Done of total: bytes when any are counted, else files (in the phase's noun). */
static void amount_cells(row *r, const char *phase, uint64_t fd, uint64_t ft, uint64_t bd, uint64_t bt)
{
    char done[32], total[32];
    cs_human_size(bd, done, sizeof done);
    cs_human_size(bt, total, sizeof total);
    if (bt) {
        cell(r, C_AMOUNT, "%s/%s", done, total);
        cell(r, C_PERCENT, "%u%%", percent(bd, bt));
    } else if (bd) {
        cell(r, C_AMOUNT, "%s", done);
    } else if (ft) {
        cell(r, C_AMOUNT, "%llu/%llu %s", (unsigned long long)fd, (unsigned long long)ft, cs_progress_noun(phase));
        cell(r, C_PERCENT, "%u%%", percent(fd, ft));
    } else if (fd) {
        cell(r, C_AMOUNT, "%llu %s", (unsigned long long)fd, cs_progress_noun(phase));
    } else {
        cell(r, C_AMOUNT, "-");
    }
}

static void rate_cells(row *r, double rate, double eta)
{
    char text[32];
    cs_human_size((uint64_t)(rate > 0 ? rate : 0), text, sizeof text);
    cell(r, C_RATE, rate > 0 ? "%s/s" : "-", text);
    cs_human_duration(eta, text, sizeof text);
    cell(r, C_ETA, eta >= 0 ? "ETA %s" : "-", text);
}

static void part_row(row *r, const cs_progress_part *part, double rate)
{
    memset(r, 0, sizeof *r);
    cell(r, C_NAME, "%s", part->name);
    cell(r, C_PHASE, "%s", part->phase[0] ? part->phase : "-");
    amount_cells(r, part->phase, part->files_done, part->files_total, part->bytes_done, part->bytes_total);
    bool running = part->state == CS_PART_RUNNING;
    rate_cells(r, running ? rate : 0, running ? cs_progress_part_eta(part, rate, 0) : -1);
    cell(r, C_STATE, "%s", cs_part_state_name(part->state));
}

static void overall_row(row *r, const cs_progress *p, double byte_rate, double file_rate,
                        const cs_progress_part *parts, size_t n)
{
    memset(r, 0, sizeof *r);
    size_t done = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        done += parts[i].state == CS_PART_DONE;
        failed += parts[i].state == CS_PART_FAILED;
    }
    cell(r, C_NAME, "overall");
    cell(r, C_PHASE, "%s", p->phase[0] ? p->phase : "starting");
    amount_cells(r, p->phase, p->files_done, p->files_total, p->bytes_done, p->bytes_total);
    double eta = cs_progress_eta_of(p, byte_rate, file_rate);
    rate_cells(r, p->bytes_done || p->bytes_total ? byte_rate : 0, p->ended ? -1 : eta);
    if (failed)
        cell(r, C_STATE, "%zu/%zu done, %zu failed", done, n, failed);
    else
        cell(r, C_STATE, "%zu/%zu done", done, n);
    if (p->canceled)
        cell(r, C_STATE, "stopping");
}

/* How much a part wants a line: running first, then failed, waiting, done. */
static int part_class(const cs_progress_part *part)
{
    static const int rank[] = { [CS_PART_RUNNING] = 0, [CS_PART_FAILED] = 1, [CS_PART_WAITING] = 2,
                                [CS_PART_DONE] = 3 };
    return (unsigned)part->state < sizeof rank / sizeof rank[0] ? rank[part->state] : 4;
}

/* Mark the k busiest of n parts in chosen. */
static void choose_busiest(const cs_progress_part *parts, const double *rates, size_t n, size_t k, bool *chosen)
{
    for (size_t round = 0; round < k && round < n; round++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (chosen[i])
                continue;
            double ri = rates ? rates[i] : 0, rb = best < n && rates ? rates[best] : 0;
            if (best == n || part_class(&parts[i]) < part_class(&parts[best]) ||
                (part_class(&parts[i]) == part_class(&parts[best]) && ri > rb))
                best = i;
        }
        chosen[best] = true;
    }
}

/* "... 5 more (3 running, 2 done)" for the parts not chosen. */
static void more_line(char *buf, size_t cap, const cs_progress_part *parts, size_t n, const bool *chosen)
{
    size_t by_state[4] = { 0 }, more = 0;
    for (size_t i = 0; i < n; i++)
        if (!chosen[i] && (unsigned)parts[i].state < 4) {
            by_state[parts[i].state]++;
            more++;
        }
    size_t len = 0;
    const char *sep = "";
    part(buf, cap, &len, &sep, "... %zu more (", more);
    sep = "";
    static const cs_part_state order[] = { CS_PART_RUNNING, CS_PART_FAILED, CS_PART_WAITING, CS_PART_DONE };
    for (size_t k = 0; k < 4; k++)
        if (by_state[order[k]])
            part(buf, cap, &len, &sep, "%zu %s", by_state[order[k]], cs_part_state_name(order[k]));
    sep = "";
    part(buf, cap, &len, &sep, ")");
}

/* One row as a line, its cells padded to widths (the percent to the right). */
static size_t row_line(char *buf, size_t cap, const row *r, const size_t *widths)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int c = 0; c < N_COLS && len + 1 < cap; c++) {
        int w = (int)widths[c];
        int k = snprintf(buf + len, cap - len, c == C_PERCENT ? "%s%*s" : "%s%-*s", c ? "  " : "", w, r->cell[c]);
        len += k > 0 ? (size_t)k : 0;
        if (len >= cap)
            len = cap - 1;
    }
    while (len && buf[len - 1] == ' ')
        buf[--len] = '\0';
    sanitize(buf);
    return len;
}

/* The block of parts that are all shown (none skipped). */
static size_t block_of(char *buf, size_t cap, const cs_progress *p, double byte_rate, double file_rate,
                       const cs_progress_part *parts, const double *part_rates, size_t n, size_t max_parts,
                       size_t width)
{
    if (max_parts < 2)
        max_parts = 2;
    bool *chosen = cs_calloc(n, sizeof *chosen);
    bool too_many = n > max_parts;
    if (too_many)
        choose_busiest(parts, part_rates, n, max_parts - 1, chosen);
    else
        memset(chosen, 1, n * sizeof *chosen);
    size_t shown = too_many ? max_parts - 1 : n;
    row *rows = cs_calloc(shown + 1, sizeof *rows);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (chosen[i])
            part_row(&rows[k++], &parts[i], part_rates ? part_rates[i] : 0);
    overall_row(&rows[k++], p, byte_rate, file_rate, parts, n);
    size_t widths[N_COLS] = { 0 };
    for (size_t i = 0; i < k; i++)
        for (int c = 0; c < N_COLS; c++)
            if (strlen(rows[i].cell[c]) > widths[c])
                widths[c] = strlen(rows[i].cell[c]);
    size_t len = 0, lines = 0;
    bool fits = true;
    char line[N_COLS * 80];
    for (size_t i = 0; i < k && fits; i++) {
        if (i == k - 1 && too_many) {
            more_line(line, sizeof line, parts, n, chosen);
            fits = !width || strlen(line) <= width;
            len += (size_t)snprintf(buf + len, cap - len, "%s\n", line);
            lines++;
            if (len >= cap)
                break;
        }
        fits = fits && (row_line(line, sizeof line, &rows[i], widths) <= width || !width);
        if (fits && len < cap) {
            len += (size_t)snprintf(buf + len, cap - len, i + 1 < k ? "%s\n" : "%s", line);
            lines++;
        }
    }
    free(rows);
    free(chosen);
    if (!fits || len >= cap) {
        buf[0] = '\0';
        return 0;
    }
    return lines;
}

size_t cs_progress_block(char *buf, size_t cap, const cs_progress *p, double byte_rate, double file_rate,
                         const cs_progress_part *parts, const double *part_rates, size_t n, size_t max_parts,
                         size_t width)
{
    if (!cap)
        return 0;
    buf[0] = '\0';
    /* The parts a phase leaves out are not shown, nor counted in "k/n done". */
    cs_progress_part *shown = cs_calloc(n ? n : 1, sizeof *shown);
    double *rates = cs_calloc(n ? n : 1, sizeof *rates);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (parts[i].state != CS_PART_SKIPPED) {
            rates[k] = part_rates ? part_rates[i] : 0;
            shown[k++] = parts[i];
        }
    size_t lines = k ? block_of(buf, cap, p, byte_rate, file_rate, shown, rates, k, max_parts, width) : 0;
    free(shown);
    free(rates);
    return lines;
}

/* ---- drawing (mu held) ---- */

static void terminal_size(size_t *cols, size_t *rows)
{
    struct winsize ws;
    *cols = DEFAULT_WIDTH;
    *rows = 0;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0) {
        if (ws.ws_col > 0)
            *cols = ws.ws_col;
        *rows = ws.ws_row;
    }
}

/* Back to the first line of a block on the screen, at its start. */
static void block_home(const cs_cli_progress *p)
{
    if (p->shown > 1)
        fprintf(stderr, "\r\033[%zuA", p->shown - 1);
}

static void clear_line(cs_cli_progress *p)
{
    if (!p->shown)
        return;
    if (p->shown > 1) {
        block_home(p);
        fputs("\r\033[J", stderr);
    } else {
        fputs("\r\033[K", stderr);
    }
    fflush(stderr);
    p->shown = 0;
}

/* The job's record and its parts now, their rates sampled. */
static void sample(cs_cli_progress *p, const cs_progress *pr);

static void fetch(cs_cli_progress *p, cs_progress *pr)
{
    size_t n = cs_job_progress_parts(p->job, pr, p->parts, p->parts_cap);
    while (pr->n_parts > p->parts_cap) { /* parts came: room for them, and read again */
        p->parts_cap = pr->n_parts;
        p->parts = cs_realloc(p->parts, p->parts_cap * sizeof *p->parts);
        n = cs_job_progress_parts(p->job, pr, p->parts, p->parts_cap);
    }
    if (n != p->n_parts) { /* other parts: their rates start again */
        p->part_samples = cs_realloc(p->part_samples, (n ? n : 1) * sizeof *p->part_samples);
        p->part_rates = cs_realloc(p->part_rates, (n ? n : 1) * sizeof *p->part_rates);
        for (size_t i = 0; i < n; i++) {
            memset(&p->part_samples[i], 0, sizeof p->part_samples[i]);
            p->part_rates[i] = 0;
        }
        p->n_parts = n;
    }
    sample(p, pr);
}

/* What a callback was handed, with the parts as they are now when the job
 * is still in that phase (else none: they belong to another). */
static void fetch_for(cs_cli_progress *p, const cs_progress *given, cs_progress *out)
{
    fetch(p, out);
    if (strcmp(out->phase, given->phase)) {
        *out = *given;
        p->n_parts = 0; /* read again (and their rates reset) at the next tick */
        return;
    }
    out->final = given->final;
    out->ended = given->ended;
}

/* Are parts at work (a block to show)? */
static bool parts_at_work(const cs_cli_progress *p)
{
    for (size_t i = 0; i < p->n_parts; i++)
        if (p->parts[i].state != CS_PART_WAITING && p->parts[i].state != CS_PART_SKIPPED)
            return true;
    return false;
}

static bool draw_block(cs_cli_progress *p, const cs_progress *pr, size_t width, size_t rows)
{
    if (!parts_at_work(p) || (rows && rows < 4))
        return false;
    size_t max_parts = rows && rows - 2 < CS_PROGRESS_MAX_PARTS ? rows - 2 : CS_PROGRESS_MAX_PARTS;
    size_t cap = (max_parts + 2) * 600;
    char *text = cs_malloc(cap);
    size_t lines = cs_progress_block(text, cap, pr, cs_rate_per_second(&p->bytes), cs_rate_per_second(&p->files),
                                     p->parts, p->part_rates, p->n_parts, max_parts, width > 1 ? width - 1 : width);
    if (lines) {
        cs_buf out = CS_BUF_INIT;
        if (p->shown > 1)
            cs_buf_printf(&out, "\r\033[%zuA", p->shown - 1);
        cs_buf_addstr(&out, "\r");
        for (char *line = text, *nl; line; line = nl) {
            nl = strchr(line, '\n');
            if (nl)
                *nl++ = '\0';
            cs_buf_printf(&out, nl ? "%s\033[K\n" : "%s\033[K\033[J", line);
        }
        fwrite(out.data, 1, out.len, stderr);
        fflush(stderr);
        cs_buf_free(&out);
        p->shown = lines;
    }
    free(text);
    return lines > 0;
}

static void draw(cs_cli_progress *p, const cs_progress *pr)
{
    size_t width, rows;
    terminal_size(&width, &rows);
    if (draw_block(p, pr, width, rows))
        return;
    if (p->shown > 1)
        clear_line(p); /* a block was there: the one line takes its place */
    char line[512], out[600];
    /* One column short of the width: a full line would wrap on some terminals. */
    cs_progress_line(line, sizeof line, pr, cs_rate_per_second(&p->bytes), cs_rate_per_second(&p->files),
                     width > 1 ? width - 1 : width);
    int n = snprintf(out, sizeof out, "\r%s\033[K", line);
    fwrite(out, 1, n > 0 ? (size_t)n : 0, stderr);
    fflush(stderr);
    p->shown = 1;
}

static void plain_line(cs_cli_progress *p, const cs_progress *pr)
{
    char line[1024];
    cs_progress_line(line, sizeof line, pr, cs_rate_per_second(&p->bytes), cs_rate_per_second(&p->files), 0);
    fprintf(stderr, "cassette: %s\n", line);
    if (parts_at_work(p)) {
        size_t cap = (p->n_parts + 2) * 600;
        char *text = cs_malloc(cap);
        if (cs_progress_block(text, cap, pr, cs_rate_per_second(&p->bytes), cs_rate_per_second(&p->files), p->parts,
                              p->part_rates, p->n_parts, p->n_parts + 1, 0)) {
            *strrchr(text, '\n') = '\0'; /* the overall line: said above */
            for (char *l = text, *nl; l; l = nl) {
                nl = strchr(l, '\n');
                if (nl)
                    *nl++ = '\0';
                fprintf(stderr, "cassette:   %s\n", l);
            }
        }
        free(text);
    }
    p->last_emit = mono_now();
}

static void emit(cs_cli_progress *p, const char *kind, const cs_progress *pr)
{
    char *text = cs_progress_event_parts(kind, pr, cs_rate_per_second(&p->bytes), cs_rate_per_second(&p->files),
                                         p->parts, p->part_rates, p->n_parts);
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
    for (size_t i = 0; i < p->n_parts; i++) {
        cs_rate_add(&p->part_samples[i], now, p->parts[i].bytes_done);
        p->part_rates[i] = cs_rate_per_second(&p->part_samples[i]);
    }
}

/* ---- the job's callbacks (on the job's threads) ---- */

/* A phase that ends: its last counters (a plain line, a "progress" event;
 * the live line goes on to the next phase). */
static void phase_over(cs_cli_progress *p, const cs_progress *pr)
{
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
    for (size_t i = 0; i < p->n_parts; i++)
        cs_rate_reset(&p->part_samples[i]);
    sample(p, pr);
    p->last_emit = mono_now(); /* plain: the next line 10 s into the phase */
    if (p->mode == CS_PROGRESS_TTY)
        draw(p, pr);
    else if (p->mode == CS_PROGRESS_JSON)
        emit(p, "phase", pr);
}

static void on_progress(void *arg, const cs_progress *given, bool phase_changed)
{
    cs_cli_progress *p = arg;
    if (!phase_changed && !given->final)
        return; /* the redraw thread shows the counters at its own pace */
    pthread_mutex_lock(&p->mu);
    cs_progress pr;
    fetch_for(p, given, &pr);
    if (!p->ended && pr.final)
        phase_over(p, &pr);
    if (pr.ended) {
        p->ended = true;
        clear_line(p); /* before the result is printed */
    } else if (!p->ended && phase_changed) {
        phase_begins(p, &pr);
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
    fetch(p, &pr);
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
    free(p->parts);
    free(p->part_samples);
    free(p->part_rates);
    free(p);
}
