/*
 * drift/monitor.h — live drift monitoring of every feature and every model's
 * prediction stream.
 *
 * Per table (and per model's predictions) values fill tumbling windows: a
 * window closes after drift.window_events events of its table, or after
 * drift.window_time.  Each feature keeps a bounded sketch per window — KLL for
 * numbers, category frequencies for strings and booleans — so memory per
 * feature is constant however much traffic flows.  A closed window is
 * compared with the feature's reference (a model's training distribution when
 * one is set, an operator-pinned window, or else the feature's first
 * drift.reference_events values): KS (statistic, p-value), PSI and KL over
 * bins cut at the reference's quantiles, JS; chi-square for categories.
 *
 * A window drifts when a test is significant (p < drift.p_value) AND an effect
 * size clears its threshold (KS statistic, KL; JS for categories), or when PSI
 * alone does.  On each change of state an alert is published on the alert bus
 * (common/alert.h): OK → DRIFTING at once, DRIFTING → RECOVERED after
 * drift.recovery_windows clean windows.  The monitor neither logs nor counts
 * alerts itself: the daemon's log and metrics sinks do (admin/alerts.h).
 *
 * Threads: feat_drift_observe() is called by the ingest thread: a mutex per
 * table and a few sketch updates, no allocation, no I/O.  Window evaluation,
 * alerts and reference persistence run on the monitor's own thread.
 * feat_drift_observe_prediction() may be called from any thread.  Reports
 * may be taken from any thread.
 */
#ifndef FEAT_DRIFT_MONITOR_H
#define FEAT_DRIFT_MONITOR_H

#include <stddef.h>
#include <stdint.h>

#include "common/alert.h"
#include "common/config.h"
#include "common/err.h"
#include "common/metrics.h"
#include "store/store.h"

typedef struct feat_drift feat_drift_t;

typedef enum feat_drift_state {
    FEAT_DRIFT_WARMING = 0,    /* no reference yet */
    FEAT_DRIFT_OK = 1,
    FEAT_DRIFT_DRIFTING = 2
} feat_drift_state_t;

typedef enum feat_drift_ref_source {
    FEAT_REF_NONE = 0,
    FEAT_REF_FIRST_N = 1,      /* the feature's first values */
    FEAT_REF_PINNED = 2,       /* an operator pinned a window */
    FEAT_REF_MODEL = 3         /* a model's training set */
} feat_drift_ref_source_t;

const char *feat_drift_state_name(int state);   /* "warming_up", "ok", "drifting" */
const char *feat_drift_source_name(int source); /* "none", "first_n", "pinned", "model" */

/* What the monitor watches and how it judges: filled from the [drift]
 * section, the tables and the models by the daemon (daemon/featd.c). */
typedef struct feat_drift_conf {
    const feat_table_conf_t *tables; /* [ntables]: one stream per table, borrowed for the monitor's life */
    size_t ntables;
    const feat_model_conf_t *models; /* [nmodels]: one prediction stream per model (and the table each
                                      * reads, for retrain requests); borrowed */
    size_t nmodels;
    int64_t window_events;      /* drift.window_events: a window closes after this many events (>= 1)... */
    int64_t window_ms;          /* ...or this long after it opened (drift.window_time; 0 = by count only) */
    int64_t min_window;         /* a feature with fewer values in a window is not judged */
    int64_t reference_events;   /* drift.reference_events: size of a first-N reference (>= 1) */
    int64_t sketch_k;           /* KLL accuracy parameter of every numeric sketch */
    int64_t bins;               /* PSI/KL bins cut at the reference's quantiles (<= 100) */
    int64_t recovery_windows;   /* clean windows before DRIFTING turns RECOVERED (>= 1) */
    int64_t history;            /* windows kept per feature for reports (>= 1) */
    double ks, psi, kl, js, p_value; /* default thresholds; a feature's own drift.* keys override them */
    int retrain_on_drift;       /* a drifting alert asks for a retrain of the models that read the stream */
} feat_drift_conf_t;

/* conf from cfg's tables, models and [drift] keys (the arrays point into cfg). */
void feat_drift_conf_from_config(const feat_config_t *cfg, feat_drift_conf_t *conf);

/* conf is copied (its arrays stay borrowed); st borrowed for the monitor's
 * life; alerts (borrowed, may be NULL: alerts are dropped) receives every
 * alert on the monitor's thread; metrics NULL = the process-wide registry.
 * NULL with errstr on failure. */
feat_drift_t *feat_drift_new(const feat_drift_conf_t *conf, feat_store_t *st, feat_alert_bus_t *alerts,
                             feat_metrics_t *metrics, char *errstr, size_t errlen);
/* Starts the monitor's thread.  FEAT_OK or FEAT_ERR_NOMEM. */
feat_err_t feat_drift_start(feat_drift_t *d);
/* Evaluates windows already closed, then joins the thread.  Idempotent. */
void feat_drift_stop(feat_drift_t *d);
void feat_drift_destroy(feat_drift_t *d); /* stops first; NULL is fine */

/* The ingest observer: one feature event of conf->tables[table]. */
void feat_drift_observe(feat_drift_t *d, uint32_t table, const uint16_t *fidx, const feat_value_t *vals, size_t n,
                        int64_t ts);
/* One served prediction of conf->models[model]. */
void feat_drift_observe_prediction(feat_drift_t *d, uint32_t model, double score);

/* Makes the last closed window of the feature (all features when feature is
 * NULL or empty) its reference.  FEAT_OK with *pinned = how many features
 * the monitor's thread will pin, FEAT_ERR_NOT_FOUND for an unknown table or
 * feature, FEAT_ERR_STATE when no window has closed. */
feat_err_t feat_drift_pin(feat_drift_t *d, const char *table, const char *feature, int *pinned);

/* Installs a model's reference for one of its features ("prediction" for its
 * scores; "TABLE.FEATURE" for another table's, config.h): blob is a
 * serialized KLL sketch (numbers) or category frequencies (strings,
 * booleans), as train/ stores them.  FEAT_OK, FEAT_ERR_NOT_FOUND for a model
 * or feature the monitor does not watch (aggregated features are not
 * watched: they are functions of watched ones), the deserializer's
 * error for a blob it refuses (FEAT_ERR_CORRUPT, FEAT_ERR_UNIMPLEMENTED for
 * an unknown version), or FEAT_ERR_NOMEM. */
feat_err_t feat_drift_set_model_reference(feat_drift_t *d, const char *model, const char *feature, const void *blob,
                                          size_t len);

/* One monitored stream, copied out for reports. */
#define FEAT_DRIFT_REPORT_BINS 100
#define FEAT_DRIFT_REPORT_HISTORY 100
typedef struct feat_drift_entry {
    const char *table;         /* NULL for a model's predictions */
    const char *feature;
    const char *model;
    int categorical;
    int state;
    int source;
    uint64_t window_size, reference_size, windows;
    int64_t window_end_ms;
    double ks, ks_p, psi, kl, js, chi2, chi2_p;
    double th_ks, th_psi, th_kl, th_js, th_p;
    /* histogram of the reference and the last window over the same bins */
    uint32_t nbins;
    double edges[FEAT_DRIFT_REPORT_BINS + 1];  /* numeric: nbins + 1 edges (first/last = min/max) */
    char labels[FEAT_DRIFT_REPORT_BINS][32];   /* categorical: bin names */
    double ref_frac[FEAT_DRIFT_REPORT_BINS], live_frac[FEAT_DRIFT_REPORT_BINS];
    /* the statistic over recent windows, oldest first */
    uint32_t nhist;
    double hist_ks[FEAT_DRIFT_REPORT_HISTORY], hist_psi[FEAT_DRIFT_REPORT_HISTORY];
    uint8_t hist_drift[FEAT_DRIFT_REPORT_HISTORY];
    uint32_t instances;         /* feat_drift_judge_merged: how many sketches were merged; else 0 */
} feat_drift_entry_t;

/* Calls fn for each monitored stream matching table/feature (NULL or "" =
 * all).  Returns the number of entries. */
typedef void feat_drift_report_fn(void *arg, const feat_drift_entry_t *e);
size_t feat_drift_report(feat_drift_t *d, const char *table, const char *feature, feat_drift_report_fn *fn, void *arg);

/* ---- a cluster's merged report ----
 * In a cluster each instance judges the windows of its own partitions, and
 * its alerts are its own.  The cluster-wide view merges every instance's
 * last judged window of a feature into one sketch (KLL merge; category
 * frequencies with feat_catfreq_merge) and compares it with the merged
 * references (a model's reference, the same everywhere, is taken once). */
typedef struct feat_drift_sketch {
    const char *table;          /* NULL for a model's predictions */
    const char *model;          /* the model of a prediction stream */
    const char *feature;
    int categorical, source;    /* source: the reference's (FEAT_REF_NONE: none yet) */
    const void *window;         /* the last judged window, serialized (KLL or category frequencies) */
    size_t wlen;
    uint64_t window_n;
    const void *ref;            /* the reference, serialized; NULL when none */
    size_t rlen;
    uint64_t ref_n;
    int64_t window_end_ms;
} feat_drift_sketch_t;
/* Calls fn for each watched feature matching table/feature (NULL or "" =
 * all), with pointers valid during the call.  Returns how many. */
typedef void feat_drift_sketch_fn(void *arg, const feat_drift_sketch_t *s);
size_t feat_drift_sketches(feat_drift_t *d, const char *table, const char *feature, feat_drift_sketch_fn *fn,
                           void *arg);
/* Judges sk[0..n) (one feature, from several instances) merged, with this
 * instance's thresholds and bin count: e gets the statistics, the bins, the
 * sizes and the state (ok or drifting; warming_up without a window of
 * drift.min_window values or a reference).  e->windows and the history are
 * not filled.  FEAT_OK, FEAT_ERR_NOT_FOUND (a feature this instance does not
 * watch), FEAT_ERR_CORRUPT (a sketch that does not decode, or another
 * sketch_k), FEAT_ERR_NOMEM. */
feat_err_t feat_drift_judge_merged(feat_drift_t *d, const feat_drift_sketch_t *sk, size_t n, feat_drift_entry_t *e);

typedef struct feat_drift_stats {
    uint64_t windows_closed, windows_delayed;
    uint64_t alerts, recoveries;    /* published by this monitor (not live-quality alerts) */
} feat_drift_stats_t;
void feat_drift_get_stats(feat_drift_t *d, feat_drift_stats_t *s);

#endif
