/* metrics.c - Prometheus text exposition (see metrics.h). */
#include "common/metrics.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/fs.h"

struct family {
    char *name;
    char *type;
    char *help;
    cs_buf samples; /* its sample lines, in the order written */
};

struct cs_metrics {
    struct family *fam;
    size_t n, cap;
    size_t cur;     /* the current family; n when none yet */
    cs_buf *text;   /* the document, made by cs_metrics_text */
};

cs_metrics *cs_metrics_new(void)
{
    cs_metrics *m = cs_calloc(1, sizeof *m);
    m->text = cs_calloc(1, sizeof *m->text);
    return m;
}

void cs_metrics_free(cs_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        free(m->fam[i].name);
        free(m->fam[i].type);
        free(m->fam[i].help);
        cs_buf_free(&m->fam[i].samples);
    }
    free(m->fam);
    cs_buf_free(m->text);
    free(m->text);
    free(m);
}

void cs_metrics_family(cs_metrics *m, const char *name, const char *type, const char *help)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->fam[i].name, name) == 0) {
            m->cur = i;
            return;
        }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->fam = cs_realloc(m->fam, m->cap * sizeof *m->fam);
    }
    struct family *f = &m->fam[m->n];
    memset(f, 0, sizeof *f);
    f->name = cs_strdup(name);
    f->type = cs_strdup(type ? type : "untyped");
    f->help = cs_strdup(help ? help : "");
    m->cur = m->n++;
}

void cs_metrics_number(double v, char out[32])
{
    if (isnan(v)) {
        snprintf(out, 32, "NaN");
    } else if (isinf(v)) {
        snprintf(out, 32, v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(out, 32, "0"); /* also -0 */
    } else if (v == trunc(v) && fabs(v) < 1e17) {
        snprintf(out, 32, "%.0f", v); /* an integer, every digit */
    } else {
        snprintf(out, 32, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, 32, "%.17g", v); /* the shortest that reads back the same */
    }
}

/* HELP text: backslash and newline escaped. */
static void add_help(cs_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            cs_buf_addstr(b, "\\\\");
        else if (*s == '\n')
            cs_buf_addstr(b, "\\n");
        else
            cs_buf_addch(b, *s);
    }
}

/* A label value: backslash, double quote and newline escaped. */
static void add_label_value(cs_buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\')
            cs_buf_addstr(b, "\\\\");
        else if (*s == '"')
            cs_buf_addstr(b, "\\\"");
        else if (*s == '\n')
            cs_buf_addstr(b, "\\n");
        else
            cs_buf_addch(b, *s);
    }
}

/* name+suffix{l1="v1",...,le="..."}: le is an extra label (NULL: none). */
static void add_series(cs_buf *b, const char *name, const char *suffix, const char *const *labels,
                       const char *le)
{
    cs_buf_addstr(b, name);
    if (suffix)
        cs_buf_addstr(b, suffix);
    size_t n = 0;
    if (labels)
        while (n < 2 * CS_METRICS_MAX_LABELS && labels[n] && labels[n + 1])
            n += 2;
    if (n == 0 && !le)
        return;
    cs_buf_addch(b, '{');
    for (size_t i = 0; i < n; i += 2) {
        if (i)
            cs_buf_addch(b, ',');
        cs_buf_printf(b, "%s=\"", labels[i]);
        add_label_value(b, labels[i + 1]);
        cs_buf_addch(b, '"');
    }
    if (le) {
        if (n)
            cs_buf_addch(b, ',');
        cs_buf_printf(b, "le=\"%s\"", le);
    }
    cs_buf_addch(b, '}');
}

static void add_sample(cs_metrics *m, const char *suffix, const char *const *labels, const char *le,
                       double value)
{
    assert(m->cur < m->n); /* cs_metrics_family first */
    if (m->cur >= m->n)
        return;
    struct family *f = &m->fam[m->cur];
    char num[32];
    cs_metrics_number(value, num);
    add_series(&f->samples, f->name, suffix, labels, le);
    cs_buf_printf(&f->samples, " %s\n", num);
}

void cs_metrics_sample_v(cs_metrics *m, const char *suffix, double value, const char *const *labels)
{
    add_sample(m, suffix, labels, NULL, value);
}

/* Collect NULL-terminated name/value pairs into labels (2 * max + 1). */
static void collect_labels(va_list ap, const char **labels)
{
    size_t n = 0;
    for (;;) {
        const char *name = va_arg(ap, const char *);
        if (!name || n == 2 * CS_METRICS_MAX_LABELS)
            break;
        const char *value = va_arg(ap, const char *);
        labels[n++] = name;
        labels[n++] = value ? value : ""; /* NULL would end an array's pairs */
    }
    labels[n] = NULL;
}

void cs_metrics_sample(cs_metrics *m, double value, ...)
{
    const char *labels[2 * CS_METRICS_MAX_LABELS + 1];
    va_list ap;
    va_start(ap, value);
    collect_labels(ap, labels);
    va_end(ap);
    add_sample(m, NULL, labels, NULL, value);
}

void cs_histogram_init(cs_histogram *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof *h);
    if (n > CS_HISTOGRAM_MAX_BOUNDS)
        n = CS_HISTOGRAM_MAX_BOUNDS;
    h->nbounds = n;
    if (n)
        memcpy(h->bounds, bounds, n * sizeof *bounds);
}

void cs_histogram_observe(cs_histogram *h, double v)
{
    size_t i = 0;
    if (!isnan(v))
        while (i < h->nbounds && v > h->bounds[i])
            i++;
    else
        i = h->nbounds;
    h->counts[i]++;
    h->count++;
    if (!isnan(v))
        h->sum += v;
}

void cs_metrics_histogram_v(cs_metrics *m, const cs_histogram *h, const char *const *labels)
{
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i < h->nbounds; i++) {
        cum += h->counts[i];
        cs_metrics_number(h->bounds[i], le);
        add_sample(m, "_bucket", labels, le, (double)cum);
    }
    add_sample(m, "_bucket", labels, "+Inf", (double)h->count);
    add_sample(m, "_sum", labels, NULL, h->sum);
    add_sample(m, "_count", labels, NULL, (double)h->count);
}

void cs_metrics_histogram(cs_metrics *m, const cs_histogram *h, ...)
{
    const char *labels[2 * CS_METRICS_MAX_LABELS + 1];
    va_list ap;
    va_start(ap, h);
    collect_labels(ap, labels);
    va_end(ap);
    cs_metrics_histogram_v(m, h, labels);
}

const char *cs_metrics_text(const cs_metrics *m, size_t *len)
{
    cs_buf *b = m->text;
    cs_buf_reset(b);
    for (size_t i = 0; i < m->n; i++) {
        const struct family *f = &m->fam[i];
        cs_buf_printf(b, "# HELP %s ", f->name);
        add_help(b, f->help);
        cs_buf_printf(b, "\n# TYPE %s %s\n", f->name, f->type);
        cs_buf_add(b, cs_buf_str(&f->samples), f->samples.len);
    }
    if (len)
        *len = b->len;
    return cs_buf_str(b);
}

int cs_metrics_write_file(const cs_metrics *m, const char *path, cs_err *e)
{
    size_t len = 0;
    const char *text = cs_metrics_text(m, &len);
    return cs_write_file_atomic(path, text, len, 0644, e);
}

int cs_metrics_find(const char *text, const char *name, const char *const *labels, double *out)
{
    if (!text)
        return -1;
    cs_buf key = CS_BUF_INIT;
    add_series(&key, name, NULL, labels, NULL);
    cs_buf_addch(&key, ' ');
    int rc = -1;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n > key.len && strncmp(line, key.data, key.len) == 0) {
            char num[64];
            size_t vn = n - key.len;
            if (vn < sizeof num) {
                memcpy(num, line + key.len, vn);
                num[vn] = '\0';
                char *end = NULL;
                double v = strtod(num, &end);
                if (end != num && (*end == '\0' || *end == ' ' || *end == '\r')) {
                    *out = v;
                    rc = 0;
                    break;
                }
            }
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    cs_buf_free(&key);
    return rc;
}
