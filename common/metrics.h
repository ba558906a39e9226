/*
 * common/metrics.h — a registry of counters, gauges and histograms rendered in
 * Prometheus text format (version 0.0.4).
 *
 * Registration (feat_counter, feat_gauge, feat_histogram) takes the registry
 * lock and is meant for start-up; it returns a series pointer owned by the
 * registry and valid until feat_metrics_destroy.  Updating a series is a
 * relaxed atomic operation, safe from any thread and free of locks and
 * allocation.  Registering the same name + labels twice returns the same
 * series.  Values that live elsewhere (per-partition lag, RocksDB size) are
 * produced at scrape time by collectors.
 *
 * Names must match [a-zA-Z_:][a-zA-Z0-9_:]*; labels are given pre-rendered
 * without braces, e.g. "reason=\"bad_json\"" (values escaped by the caller
 * with feat_metrics_label_escape when they come from input).
 *
 * Every module constructor that takes a registry (feat_X_new(..., metrics,
 * ...)) reads NULL as the process-wide registry, feat_metrics_global(): a
 * module always counts; a test that wants its own numbers passes its own
 * registry.  The functions below take the registry they are given (NULL
 * there registers nothing).
 */
#ifndef FEAT_COMMON_METRICS_H
#define FEAT_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct feat_metrics feat_metrics_t;
typedef struct feat_metric feat_metric_t;

typedef enum feat_metric_type {
    FEAT_METRIC_COUNTER = 0,
    FEAT_METRIC_GAUGE = 1,
    FEAT_METRIC_HISTOGRAM = 2
} feat_metric_type_t;

feat_metrics_t *feat_metrics_new(void);
void feat_metrics_destroy(feat_metrics_t *reg); /* NULL is fine */
/* The process-wide registry that /metrics renders. */
feat_metrics_t *feat_metrics_global(void);

/* NULL on allocation failure, bad name, or a name registered with another type. */
feat_metric_t *feat_counter(feat_metrics_t *reg, const char *name, const char *help, const char *labels);
feat_metric_t *feat_gauge(feat_metrics_t *reg, const char *name, const char *help, const char *labels);
/* bounds: ascending upper bounds, +Inf implied; copied. */
feat_metric_t *feat_histogram(feat_metrics_t *reg, const char *name, const char *help,
                              const char *labels, const double *bounds, size_t nbounds);

void feat_metric_add(feat_metric_t *m, uint64_t n);  /* counter += n  (m may be NULL) */
void feat_metric_set(feat_metric_t *m, double v);    /* gauge = v     (m may be NULL) */
void feat_metric_gauge_add(feat_metric_t *m, double d);
void feat_metric_observe(feat_metric_t *m, double v); /* histogram     (m may be NULL) */
uint64_t feat_metric_count(const feat_metric_t *m);   /* counter value / histogram count */
double feat_metric_value(const feat_metric_t *m);     /* gauge value / histogram sum */
/* Histogram quantile estimate by linear interpolation inside buckets. */
double feat_metric_quantile(const feat_metric_t *m, double q);

/* A collector appends whole families at scrape time with the emit helpers. */
typedef struct feat_metrics_emit feat_metrics_emit_t;
typedef void feat_metrics_collect_fn(feat_metrics_emit_t *em, void *arg);
/* FEAT_OK or FEAT_ERR_NOMEM. */
feat_err_t feat_metrics_add_collector(feat_metrics_t *reg, feat_metrics_collect_fn *fn, void *arg);
void feat_metrics_remove_collector(feat_metrics_t *reg, feat_metrics_collect_fn *fn, void *arg);
void feat_metrics_emit_family(feat_metrics_emit_t *em, const char *name, const char *help,
                              feat_metric_type_t type);
void feat_metrics_emit_sample(feat_metrics_emit_t *em, const char *labels, double value);

/* Renders every family (sorted by name) in Prometheus text format. */
void feat_metrics_render(feat_metrics_t *reg, feat_buf_t *out);

/* Escapes a label value (\\, \", \n) into out (cap bytes, NUL-terminated, truncated). */
void feat_metrics_label_escape(const char *in, char *out, size_t cap);

/* Standard latency buckets in seconds, 50 µs … 10 s. */
extern const double feat_latency_buckets[];
extern const size_t feat_latency_nbuckets;

#endif
