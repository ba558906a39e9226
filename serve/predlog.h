/*
 * serve/predlog.h — the prediction log.
 *
 * Predict hands every served prediction to the log and returns; a writer
 * thread drains the log every 50 ms (sooner when it fills) and, per batch,
 * writes the predictions to the store's predictions family (model, time,
 * entity → version, score: what later joins with labels read), feeds live
 * quality (feat_models_on_prediction) and drift monitoring of the
 * prediction stream, and publishes them to the model's prediction_topic when
 * it has one.  The serving path takes one mutex per request and copies the
 * keys; it never waits for I/O.  When the writer falls behind by
 * FEAT_PREDLOG_MAX predictions, new ones are dropped and counted
 * (featd_predictions_dropped_total) rather than slowing serving down.
 *
 * Shadow traffic: predictions logged with FEAT_PREDLOG_SHADOW (the champion
 * answered them, for a model with shadow = challenger) are scored again by
 * the shadow function (feat_predlog_set_shadow: the challenger, reading the
 * same entities' features) off the reply path, on a thread of their own that
 * runs at a lower priority (nice +10) so that it yields to serving and ingest
 * on a busy machine; what it cannot keep up with (FEAT_PREDLOG_MAX queued) is
 * dropped and counted in featd_shadow_skipped_total.  Those
 * scores are logged apart: in the store as model "NAME@shadow", on
 * prediction_topic with "shadow":true; they feed live quality under the
 * challenger's version and never drift monitoring of the prediction stream.
 *
 * Two predictions of one entity by one model in the same millisecond share a
 * store key: the later one is kept.
 */
#ifndef FEAT_SERVE_PREDLOG_H
#define FEAT_SERVE_PREDLOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/metrics.h"
#include "store/store.h"

#define FEAT_PREDLOG_MAX 131072

struct feat_models;
struct feat_drift;
struct feat_producer;
typedef struct feat_predlog feat_predlog_t;

typedef struct feat_predlog_conf {
    const feat_model_conf_t *models; /* [nmodels]: names and prediction_topic; borrowed for the log's life */
    size_t nmodels;
} feat_predlog_conf_t;

/* conf copied (its array borrowed).  st, models, drift and producer are
 * borrowed and outlive the log; models, drift and producer may be NULL (not
 * fed).  metrics NULL = the process-wide registry.  NULL with errstr on
 * failure. */
feat_predlog_t *feat_predlog_new(const feat_predlog_conf_t *conf, feat_store_t *st, struct feat_models *models,
                                 struct feat_drift *drift, struct feat_producer *producer, feat_metrics_t *metrics,
                                 char *errstr, size_t errlen);
/* Scores n keys of conf->models[model] with its challenger as of ts:
 * FEAT_OK with *version and scores[i] (NaN: key not scored, e.g. another
 * instance's in a cluster), or an error (none scored: no challenger). */
typedef feat_err_t feat_predlog_shadow_fn(void *arg, uint32_t model, int64_t ts, size_t n, const char *const *keys,
                                          const size_t *klens, double *scores, uint64_t *version);
/* Sets the shadow function (any time; NULL: shadow traffic is not scored). */
void feat_predlog_set_shadow(feat_predlog_t *pl, feat_predlog_shadow_fn *fn, void *arg);

#define FEAT_PREDLOG_SHADOW 1u    /* feat_predlog_add flag: also score these keys with the shadow function */
#define FEAT_PREDLOG_NO_DRIFT 2u  /* ...: not fed to drift monitoring of the score stream (a canary's challenger) */

/* Starts the writer thread, and the shadow thread when a model has shadow
 * on.  FEAT_OK or FEAT_ERR_NOMEM. */
feat_err_t feat_predlog_start(feat_predlog_t *pl);
/* Logs n predictions of conf->models[model] made at ts by version.  keys[i]
 * of length klens[i]; a row with an empty key feeds drift monitoring only.
 * flags: FEAT_PREDLOG_SHADOW, FEAT_PREDLOG_NO_DRIFT or 0.  pl NULL: nothing
 * is logged. */
void feat_predlog_add(feat_predlog_t *pl, uint32_t model, uint64_t version, int64_t ts, size_t n,
                      const char *const *keys, const size_t *klens, const double *scores, unsigned flags);
/* Writes what is queued, then stops the writer.  Idempotent. */
void feat_predlog_stop(feat_predlog_t *pl);
void feat_predlog_destroy(feat_predlog_t *pl); /* stops first; NULL is fine */

/* Predictions written to the store so far (tests, status). */
uint64_t feat_predlog_written(feat_predlog_t *pl);

#endif
