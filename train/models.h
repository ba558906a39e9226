/*
 * train/models.h — featd's models: the registry, the retrain engine and live
 * quality.
 *
 * Registry.  Every training run registers a version (1, 2, ...) of a model:
 * the trained model (train/core's blob), its parameters, preprocessing,
 * feature list, metrics, data range, trigger, and the reference
 * distributions of its training set (one sketch per feature and one of its
 * predictions) that drift monitoring compares live traffic against.  All of
 * it is one store write, so a crash never leaves half a version.  Each model
 * has a champion and a challenger; the rest are archived.  Promote makes a
 * version the champion (the old one is remembered); rollback returns to the
 * previous champion.  Served versions are reference-counted: a swap never
 * frees a model a request is still using.
 *
 * Engine.  One worker thread runs retrains one at a time.  A request for a
 * model that already has a run queued or running joins it (coalesces).
 * Triggers: an operator (TriggerRetrain), the model's schedule
 * (retrain_every), new labels (retrain_after_labels), or a drift alert that
 * asks for one.  Runs read a store snapshot and never block ingest or serving.
 *
 * Live quality.  Served predictions are remembered per entity; a label that
 * arrives later joins the entity's latest prediction made at most
 * quality_horizon before it.  The rolling AUC (or RMSE) of the last
 * quality_window pairs is a metric, and crossing quality_floor publishes an
 * alert on the alert bus.
 */
#ifndef FEAT_TRAIN_MODELS_H
#define FEAT_TRAIN_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"
#include "drift/monitor.h"
#include "store/store.h"
#include "train/core/model.h"

typedef struct feat_models feat_models_t;
typedef struct feat_loaded feat_loaded_t;

typedef enum feat_trigger {
    FEAT_TRIGGER_OPERATOR = 0,
    FEAT_TRIGGER_SCHEDULE = 1,
    FEAT_TRIGGER_LABELS = 2,
    FEAT_TRIGGER_DRIFT = 3
} feat_trigger_t;
const char *feat_trigger_name(int t);

typedef enum feat_stage { FEAT_STAGE_ARCHIVED = 0, FEAT_STAGE_CHAMPION = 1, FEAT_STAGE_CHALLENGER = 2 } feat_stage_t;
const char *feat_stage_name(int s);

/* st, cfg borrowed; drift may be NULL (no references handed over); alerts
 * (borrowed, may be NULL) receives live-quality alerts.  Loads the registry
 * and the champions and challengers. */
feat_models_t *feat_models_new(const feat_config_t *cfg, feat_store_t *st, feat_drift_t *drift,
                               feat_alert_bus_t *alerts, feat_metrics_t *metrics, char *errstr, size_t errlen);
int feat_models_start(feat_models_t *ms);   /* the engine thread */
void feat_models_stop(feat_models_t *ms);   /* cancels a run in progress, joins */
void feat_models_destroy(feat_models_t *ms); /* NULL is fine */

/* ---- serving ---- */

/* The version to serve: version != 0 pins one (loaded on demand), else alias
 * "champion" (default, NULL or "") or "challenger".  A reference the caller
 * releases.  NULL with *err: FEAT_ERR_NOT_FOUND (no such model, or no version
 * in that stage), FEAT_ERR_INVALID (bad alias). */
feat_loaded_t *feat_models_acquire(feat_models_t *ms, const char *model, const char *alias, uint64_t version, int *err);
void feat_loaded_release(feat_loaded_t *l);
const feat_model_t *feat_loaded_model(const feat_loaded_t *l);
uint64_t feat_loaded_version(const feat_loaded_t *l);
uint32_t feat_loaded_index(const feat_loaded_t *l);       /* model index in cfg->models */
const feat_table_t *feat_loaded_table(const feat_loaded_t *l);
const uint16_t *feat_loaded_fidx(const feat_loaded_t *l); /* table feature index per model feature */
size_t feat_loaded_nfeatures(const feat_loaded_t *l);
int feat_loaded_binary(const feat_loaded_t *l);

/* ---- registry ---- */

typedef struct feat_version_info {
    const char *model;
    uint64_t version;
    int stage;
    int64_t created_ms;
    const char *trigger;       /* operator, schedule, labels, drift */
    const char *reason;
    const char *task;          /* logreg, linreg, mlp */
    const char *table;
    const char *device;        /* cpu, gpu */
    feat_eval_t train, valid;  /* metrics on the training and validation splits */
    uint64_t n_train, n_valid;
    int64_t from_ms, to_ms;    /* label-time range of the training set */
    double train_seconds;
    const char *json;          /* the whole metadata document: also preprocessing, champion comparison */
    const char *const *features;
    size_t nfeatures;
    const char *params;        /* JSON object: the hyper-parameters that won */
} feat_version_info_t;
typedef void feat_version_fn(void *arg, const feat_version_info_t *v);
/* Versions of model (NULL = all models), newest first.  FEAT_ERR_NOT_FOUND for an unknown model. */
int feat_models_list(feat_models_t *ms, const char *model, feat_version_fn *fn, void *arg);
/* version 0 = the challenger.  On success *champion gets the new champion. */
int feat_models_promote(feat_models_t *ms, const char *model, uint64_t version, uint64_t *champion, char *msg, size_t msglen);
int feat_models_rollback(feat_models_t *ms, const char *model, uint64_t *champion, char *msg, size_t msglen);

/* ---- retraining ---- */

int feat_models_request(feat_models_t *ms, const char *model, feat_trigger_t trigger, const char *reason,
                        uint64_t *run_id, int *coalesced);

typedef struct feat_run_status {
    uint64_t run_id;
    char model[FEAT_MAX_NAME + 1];
    char state[16];      /* queued, running, succeeded, failed */
    char phase[48];
    double progress;     /* 0..1 */
    char error[256];
    uint64_t version;    /* registered version when succeeded */
    int trigger;
} feat_run_status_t;
/* run_id 0 = the model's latest run.  FEAT_ERR_NOT_FOUND when none. */
int feat_models_run_status(feat_models_t *ms, const char *model, uint64_t run_id, feat_run_status_t *out);

/* ---- feeds (from ingest and serve) ---- */

/* A label was applied (counts toward retrain_after_labels; joins live quality). */
void feat_models_on_label(feat_models_t *ms, uint32_t model, const char *key, size_t klen, int64_t ts, double label);
/* A prediction was served (live quality). */
void feat_models_on_prediction(feat_models_t *ms, uint32_t model, const char *key, size_t klen, int64_t ts,
                               double score);
/* The drift sink: alerts that ask for a retrain request one. */
void feat_models_drift_sink(void *models, const feat_alert_t *a);

/* ---- audit (featd-inspect, crash tests) ---- */

/* Checks the registry in st without serving it: every version record decodes
 * (metadata JSON, a model blob whose CRC matches) and has its reference
 * distributions; each model's aliases name existing versions and a next
 * version above them all.  line() gets one JSON object per version and per
 * model.  Returns the number of problems (0 = consistent). */
typedef void feat_models_line_fn(void *arg, const char *json, size_t len);
int feat_models_audit(feat_store_t *st, const feat_config_t *cfg, feat_models_line_fn *line, void *arg);

#endif
