/* metrics.h - Prometheus text exposition (format 0.0.4) into a buffer.
 *
 * Owns: cs_metrics, a document of metric families written in the order
 * they were first declared (each family's "# HELP" and "# TYPE" once, all
 * its samples together even when callers interleave families), the
 * escaping of HELP text and label values, the spelling of numbers as
 * Prometheus reads them (integers exactly, NaN, +Inf, -Inf), histograms
 * (cumulative _bucket{le=...} with +Inf, _sum, _count), the atomic write
 * of a node_exporter textfile, and finding one sample's value in such a
 * text again (a textfile carries a value over from its previous run).
 * Must not: know which metrics exist (docs/metrics.md is the contract;
 * the server, the agent and the CLI each say what they expose) or count
 * anything itself: every value comes from the caller's one source.
 *
 * Names (metric and label) are the caller's constants and must be valid
 * Prometheus names; they are not escaped. Label values may be anything
 * (NULL is written as ""). */
#ifndef CS_COMMON_METRICS_H
#define CS_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct cs_metrics cs_metrics;

/* Allocation failure aborts (common/buf.h's rule), so these never fail. */
cs_metrics *cs_metrics_new(void);
void cs_metrics_free(cs_metrics *m);

/* Make the family name current: type is "gauge", "counter", "histogram"
 * (or "untyped"); help is one line of text (escaped here). Declaring a
 * family again makes it current again (its HELP/TYPE are written once,
 * the first declaration's). A family without samples is still written
 * (HELP and TYPE only), which Prometheus accepts. */
void cs_metrics_family(cs_metrics *m, const char *name, const char *type, const char *help);

/* One sample of the current family: value, then label name/value pairs
 * ending with NULL: cs_metrics_sample(m, 3, "op", "backup", NULL).
 * At most CS_METRICS_MAX_LABELS pairs. */
#define CS_METRICS_MAX_LABELS 16
void cs_metrics_sample(cs_metrics *m, double value, ...);
/* The same with the pairs in a NULL-terminated array
 * {"op", "backup", "state", "done", NULL}, and a name suffix ("" or NULL
 * for none, "_sum", ...) after the family's name. */
void cs_metrics_sample_v(cs_metrics *m, const char *suffix, double value, const char *const *labels);

/* A histogram's counts. Bounds are the upper bounds of the buckets,
 * increasing, without +Inf (which is implied). Plain value: init it, observe
 * values, write it; no allocation. */
#define CS_HISTOGRAM_MAX_BOUNDS 32
typedef struct cs_histogram {
    size_t nbounds;
    double bounds[CS_HISTOGRAM_MAX_BOUNDS];
    uint64_t counts[CS_HISTOGRAM_MAX_BOUNDS + 1]; /* per bucket, not cumulative; last: above every bound */
    double sum;
    uint64_t count;
} cs_histogram;

/* n is cut at CS_HISTOGRAM_MAX_BOUNDS. */
void cs_histogram_init(cs_histogram *h, const double *bounds, size_t n);
/* A value v falls into the first bucket whose bound is >= v (NaN counts in
 * _count and +Inf only, and leaves _sum alone). */
void cs_histogram_observe(cs_histogram *h, double v);
/* Write h as samples of the current family (declared "histogram"):
 * NAME_bucket{labels...,le="b"} cumulative for each bound and "+Inf",
 * NAME_sum{labels}, NAME_count{labels}. Labels as cs_metrics_sample's. */
void cs_metrics_histogram(cs_metrics *m, const cs_histogram *h, ...);
void cs_metrics_histogram_v(cs_metrics *m, const cs_histogram *h, const char *const *labels);

/* The whole document (valid until the next change or the free); len may be
 * NULL. Ends with a newline unless empty. */
const char *cs_metrics_text(const cs_metrics *m, size_t *len);

/* Write the document to path atomically (a temporary file beside it that
 * does not end in .prom, then rename), mode 0644: node_exporter's textfile
 * collector never reads half a file. */
int cs_metrics_write_file(const cs_metrics *m, const char *path, cs_err *e);

/* Find the sample name{labels} (labels as cs_metrics_sample_v's, written the
 * way this module writes them) in an exposition text and read its value into
 * *out. Returns 0 when found with a number, -1 otherwise (not there,
 * garbled: never an error worth reporting). */
int cs_metrics_find(const char *text, const char *name, const char *const *labels, double *out);

/* The number as the exposition format spells it, into out (32 bytes). */
void cs_metrics_number(double v, char out[32]);

#endif
