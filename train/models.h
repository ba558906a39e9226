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
 * model that already has a run queued or running joins it (coalesces; a
 * queued run's reason lists every reason that joined it).  A run asked for
 * by a drift alert starts a second after it: the alert is raised while
 * ingest builds the batch that closed the window, and the run's training
 * set must hold that batch.
 * Triggers: an operator (TriggerRetrain), the model's schedule
 * (retrain_every), new labels (retrain_after_labels), or an alert that asks
 * for one (feat_models_alert_sink).  Runs read a store snapshot and never
 * block ingest or serving.
 *
 * Live quality.  Served predictions are remembered per entity; a label that
 * arrives later joins the entity's latest prediction made at most
 * quality_horizon before it.  The rolling AUC (or RMSE) of the last
 * quality_window pairs is a metric, and crossing quality_floor publishes an
 * alert on the alert bus (common/alert.h).
 *
 * Threads and locks — what a caller may rely on:
 *  - Predict's calls (feat_models_acquire, feat_loaded_*, feat_loaded_release)
 *    take only a per-model mutex, held for a few pointer loads and stores.
 *    No store write, no training and no callback ever runs under it: a
 *    promote, a rollback or a new version writes the store first and then
 *    swaps the served pointers under that mutex, so a slow store write never
 *    holds Predict up (test_train: slow_registry_write_does_not_stall_predict).
 *  - Promote, rollback and the registration of a new version are serialised
 *    per model by a second mutex, held across their store write;
 *    feat_models_list takes that one, so a list waits for a write in
 *    progress and Predict does not.
 *  - feat_models_on_label / feat_models_on_prediction: any thread (a
 *    per-model mutex of their own).  Quality alerts are published on the
 *    thread that calls feat_models_on_label, after its locks are released.
 *  - conf->reference runs on the thread that changed a champion (feat_models_new's,
 *    an RPC's, the engine's), with no lock of this module held.
 */
#ifndef FEAT_TRAIN_MODELS_H
#define FEAT_TRAIN_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "common/alert.h"
#include "common/config.h"
#include "common/metrics.h"
#include "store/store.h"
#include "train/core/model.h"
#include "train/trainset.h"

typedef struct feat_models feat_models_t;
typedef struct feat_loaded feat_loaded_t;

typedef enum feat_trigger {
    FEAT_TRIGGER_OPERATOR = 0,
    FEAT_TRIGGER_SCHEDULE = 1,
    FEAT_TRIGGER_LABELS = 2,
    FEAT_TRIGGER_DRIFT = 3,
    FEAT_TRIGGER_IMPORT = 4    /* a model trained elsewhere (feat_models_import_file) */
} feat_trigger_t;
const char *feat_trigger_name(int t);

typedef enum feat_stage { FEAT_STAGE_ARCHIVED = 0, FEAT_STAGE_CHAMPION = 1, FEAT_STAGE_CHALLENGER = 2 } feat_stage_t;
const char *feat_stage_name(int s);

/* Hands one reference distribution of a champion to drift monitoring.
 * feature is one of the model's features or "prediction" (its scores); blob
 * is a serialized KLL sketch (numbers) or category frequencies (strings,
 * booleans), as drift's feat_drift_set_model_reference takes them.  FEAT_OK
 * when accepted; a refusal is logged and changes nothing here.  Called with
 * no lock of this module held, at start-up and after each champion change. */
typedef feat_err_t feat_models_reference_fn(void *arg, const char *model, const char *feature, const void *blob,
                                            size_t len);

/* What the models need from the configuration; the daemon fills it (see
 * feat_models_conf_from_config). */
typedef struct feat_models_conf {
    const feat_model_conf_t *models;    /* the [model NAME] sections; borrowed for the object's life */
    size_t nmodels;
    uint32_t sketch_k;                  /* drift.sketch_k: size of the KLL reference sketches */
    int retrain_on_quality;             /* a live quality alert asks for a retrain (drift.retrain_on_drift,
                                           when drift monitoring is on) */
    feat_models_reference_fn *reference; /* NULL: references stay in the store only */
    void *reference_arg;
} feat_models_conf_t;

/* conf from cfg: its models, drift.sketch_k and drift.retrain_on_drift (off
 * when drift.enabled is off); reference NULL.  conf->models points into cfg. */
void feat_models_conf_from_config(const feat_config_t *cfg, feat_models_conf_t *conf);

/* conf is copied (conf->models borrowed); st and bus borrowed for the
 * object's life.  bus NULL: quality alerts are logged only.  metrics NULL:
 * the process-wide registry, feat_metrics_global().  Loads the registry and
 * the champions and challengers, and hands the champions' references to
 * conf->reference.  NULL with errstr on failure (a corrupt registry record,
 * out of memory). */
feat_models_t *feat_models_new(const feat_models_conf_t *conf, feat_store_t *st, feat_alert_bus_t *bus,
                               feat_metrics_t *metrics, char *errstr, size_t errlen);
feat_err_t feat_models_start(feat_models_t *models);    /* the engine thread */
void feat_models_stop(feat_models_t *models);    /* cancels a run in progress, joins; NULL is fine */
void feat_models_destroy(feat_models_t *models); /* stops first; NULL is fine */

/* ---- serving ---- */

/* The version to serve: version != 0 pins one (loaded on demand), else alias
 * "champion" (default, NULL or "") or "challenger".  A reference the caller
 * releases.  NULL with *err: FEAT_ERR_NOT_FOUND (no such model, or no version
 * in that stage), FEAT_ERR_INVALID (bad alias). */
feat_loaded_t *feat_models_acquire(feat_models_t *models, const char *model, const char *alias, uint64_t version,
                                   feat_err_t *err);
void feat_loaded_release(feat_loaded_t *l);
const feat_model_t *feat_loaded_model(const feat_loaded_t *l);
uint64_t feat_loaded_version(const feat_loaded_t *l);
uint32_t feat_loaded_index(const feat_loaded_t *l);       /* model index in conf->models */
const feat_table_t *feat_loaded_table(const feat_loaded_t *l);
const uint16_t *feat_loaded_fidx(const feat_loaded_t *l); /* table feature index per model feature (by group when multi) */
size_t feat_loaded_nfeatures(const feat_loaded_t *l);
int feat_loaded_binary(const feat_loaded_t *l);           /* 1 for a binary task (logreg, mlp, gbdt_classifier) */
/* A version's features of one table, read with one key (models over several
 * tables: a feature named TABLE.FEATURE, common/config.h). */
typedef struct feat_loaded_group {
    const feat_table_t *t;
    const char *entity;         /* the key's entity name (t's entity) */
    int32_t key;                /* -1 = the primary key (the label's "key"), else an index into
                                 * the model's label_keys */
    size_t n;
    const uint16_t *fidx;       /* [n] feature index in t */
    const size_t *pos;          /* [n] position in the model's features */
} feat_loaded_group_t;
/* The groups, primary table's first when it has features; one group (the
 * table, key -1, every feature in order) for a single-table version, whose
 * fidx is feat_loaded_fidx. */
size_t feat_loaded_ngroups(const feat_loaded_t *l);
const feat_loaded_group_t *feat_loaded_groups(const feat_loaded_t *l);
/* 1 when the version reads a table other than the model's own (then
 * feat_loaded_table/fidx do not describe every feature: use the groups). */
int feat_loaded_multi(const feat_loaded_t *l);

/* ---- registry ---- */

typedef struct feat_version_info {
    const char *model;
    uint64_t version;
    int stage;
    int64_t created_ms;
    const char *trigger;       /* operator, schedule, labels, drift, import */
    const char *reason;
    const char *task;          /* logreg, linreg, mlp, gbdt_classifier, gbdt_regressor */
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
    /* champion and challenger: live quality of the version (feat_models_on_prediction) */
    int has_live;
    double live;               /* AUC (binary) or RMSE over the last live_window pairs; NaN before enough */
    size_t live_window;
    uint64_t live_pairs;       /* since the version took its alias */
} feat_version_info_t;
/* Called with the model's registry mutex held (not Predict's): fn must not
 * call back into the registry. */
typedef void feat_version_fn(void *arg, const feat_version_info_t *v);
/* Versions of model (NULL = all models), newest first.  FEAT_ERR_NOT_FOUND for an unknown model. */
feat_err_t feat_models_list(feat_models_t *models, const char *model, feat_version_fn *fn, void *arg);
/* version 0 = the challenger.  On success *champion gets the new champion.
 * Failure: msg says why; FEAT_ERR_NOT_FOUND (model, version), FEAT_ERR_STATE
 * (no challenger, a version that cannot be loaded), FEAT_ERR_NOMEM, or the
 * store's error (nothing changed). */
feat_err_t feat_models_promote(feat_models_t *models, const char *model, uint64_t version, uint64_t *champion,
                               char *msg, size_t msglen);
/* Makes the previous champion the champion again (the current one is
 * archived).  Errors as for promote; FEAT_ERR_STATE also when there is no
 * previous champion. */
feat_err_t feat_models_rollback(feat_models_t *models, const char *model, uint64_t *champion, char *msg,
                                size_t msglen);

/* ---- retraining ---- */

/* Queues a retrain of model (reason may be NULL).  *run_id gets the run's id;
 * *coalesced is 1 when a run of the model was already queued or running (its
 * id is returned), else 0; a drift request joins only a queued run.  FEAT_OK,
 * FEAT_ERR_NOT_FOUND for an unknown model, or FEAT_ERR_UNAVAILABLE when
 * 64 runs (FEAT_MODELS_MAX_RUNS) are queued or running. */
feat_err_t feat_models_request(feat_models_t *models, const char *model, feat_trigger_t trigger, const char *reason,
                               uint64_t *run_id, int *coalesced);

/* Registers a model trained elsewhere as model's next version, through the
 * same run a retrain takes (so the same trainer in a cluster, the same
 * registry, promotion policy, references and drift monitoring): the run
 * builds the model's training set (any number of rows, min_rows does not
 * apply), scores the file's model on its time split for the train and
 * validation metrics and the champion comparison, and registers it with
 * trigger "import".  Checked here, before anything is queued:
 *   format "xgboost-json": an XGBoost JSON model (train/xgb_json.h), whose
 *     objective gives the task (binary:logistic, reg:logistic: a classifier;
 *     reg:squarederror: regression; binary:logitraw is refused, it scores
 *     margins) and must match the model's (model.NAME.task);
 *   features: the model's inputs in column order, nfeatures equal to the
 *     file's feature count; NULL / 0: the file's own feature_names.  Each
 *     must be one of the model's features (model.NAME.features, TABLE.FEATURE
 *     for another table's) and numeric (double, int64, bool: 0/1).
 * A missing value reaches the trees as NaN and takes each split's default
 * direction, as in XGBoost.  source (may be NULL) names the file in the
 * run's reason.  FEAT_OK with *run_id (feat_models_run_status follows it);
 * FEAT_ERR_NOT_FOUND (model), FEAT_ERR_INVALID (the file or the features;
 * err says what, and nothing is registered), FEAT_ERR_TOO_LARGE (over
 * 256 MiB), FEAT_ERR_UNAVAILABLE (64 runs queued or
 * running), FEAT_ERR_NOMEM.  An import whose time split leaves no
 * validation rows is never promoted by the auto policy (a model's first
 * version still becomes its champion). */
feat_err_t feat_models_import_file(feat_models_t *models, const char *model, const char *format, const void *data,
                                   size_t len, const char *const *features, size_t nfeatures, const char *source,
                                   uint64_t *run_id, char *err, size_t errlen);

typedef enum feat_run_state {
    FEAT_RUN_QUEUED = 0,
    FEAT_RUN_RUNNING = 1,
    FEAT_RUN_SUCCEEDED = 2,
    FEAT_RUN_FAILED = 3
} feat_run_state_t;
/* "queued", "running", "succeeded", "failed": the names GetRetrainStatus sends. */
const char *feat_run_state_name(int state);

typedef struct feat_run_status {
    uint64_t run_id;
    char model[FEAT_MAX_NAME + 1];
    feat_run_state_t state;
    char phase[48];
    double progress;     /* 0..1 */
    char error[256];
    uint64_t version;    /* registered version when succeeded */
    int trigger;
} feat_run_status_t;
/* run_id 0 = the model's latest run.  FEAT_ERR_NOT_FOUND when none. */
feat_err_t feat_models_run_status(feat_models_t *models, const char *model, uint64_t run_id, feat_run_status_t *out);

/* ---- feeds (from ingest, serve and the alert bus) ---- */

/* A label was applied (counts toward retrain_after_labels; joins live quality). */
void feat_models_on_label(feat_models_t *models, uint32_t model, const char *key, size_t klen, int64_t ts,
                          double label);
/* A prediction was served (live quality) by version: the champion's
 * join the champion's window, the challenger's (shadow, canary, or asked
 * for by alias) the challenger's; other versions' are not counted.  Each
 * window starts over when its alias names a new version.  version 0: the
 * champion's window, whatever version. */
void feat_models_on_prediction(feat_models_t *models, uint32_t model, uint64_t version, const char *key, size_t klen,
                               int64_t ts, double score);
/* The retrain-request sink (a feat_alert_sink_fn; models is the
 * feat_models_t): an alert that started drifting and asks for a retrain
 * requests one for each model that reads its table's feature (a->table set)
 * or for a->model (a model's predictions or quality).  Queues and returns. */
void feat_models_alert_sink(void *models, const feat_alert_t *a);

/* ---- in a cluster (cluster.mode partitioned or replica; ingest/cluster.h) ----
 *
 * One instance trains each model: a run asked of another fails naming the
 * trainer, and schedule and label triggers fire only on the trainer.  The
 * trainer's training set holds its own labels of the partitions it holds
 * and every other owner's (build), sorted as one store's would be.
 * Every change to the registry here (a new version, promote, rollback) is
 * handed to publish as records for cluster.models_topic; every instance
 * applies those records (its own included) in the topic's order with
 * feat_models_import, so all serve the same versions.  An instance's own
 * aliases record is skipped when a newer one of its own follows (it holds
 * that state already): concurrent changes on two instances end, everywhere,
 * as the topic orders them. */
typedef struct feat_models_cluster {
    void *arg;
    const char *self;    /* this instance's id (borrowed) */
    /* feat_cluster_trainer's contract, for model (an index into conf->models) */
    int (*trainer)(void *arg, uint32_t model, char *who, size_t cap);
    /* Builds model's training set from every instance that holds labels:
     * this one's (feat_trainset_build with cb, keeping the labels of the
     * partitions it holds) and every other owner's, each label partition
     * covered exactly once.  FEAT_OK, or an error with err (the run fails:
     * never a partial set).  feat_trainset_build's contract otherwise. */
    feat_err_t (*build)(void *arg, uint32_t model, int64_t from_ms, int64_t to_ms, const feat_trainset_cb_t *cb,
                        feat_trainset_t *out, char *err, size_t errlen);
    /* a record for cluster.models_topic (copied by the callee): FEAT_OK when queued */
    feat_err_t (*publish)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);
    /* the versions model serves now */
    void (*served)(void *arg, uint32_t model, uint64_t champion, uint64_t challenger);
} feat_models_cluster_t;

/* Before feat_models_start; cl copied.  Reports every model's served versions. */
void feat_models_set_cluster(feat_models_t *models, const feat_models_cluster_t *cl);
/* Applies one cluster.models_topic record: a version (stored and listed, if
 * new; never numbered again here) or a model's aliases (swapped in as
 * promote does).  FEAT_OK when applied or already held; FEAT_ERR_CORRUPT for
 * a record that is not featd's; FEAT_ERR_NOT_FOUND for a model this
 * configuration does not have; FEAT_ERR_STATE for aliases that name a
 * version not received yet (kept, and applied when it arrives, unless newer
 * aliases come first); err says why.  A version whose number is held here
 * with other bytes (two trainers at once) is logged as an ERROR and the one
 * held is kept. */
feat_err_t feat_models_import(feat_models_t *models, const void *key, size_t klen, const void *val, size_t vlen,
                              char *err, size_t errlen);
/* Checks a cluster.models_topic record without applying it: 1 when it
 * decodes (a fuzz target; pure). */
int feat_models_record_ok(const void *key, size_t klen, const void *val, size_t vlen);

/* ---- audit (featd-inspect, crash tests) ---- */

/* Checks the registry of conf's models in st without serving it: every
 * version record decodes (metadata JSON, a model blob whose CRC matches) and
 * has its reference distributions; each model's aliases name existing
 * versions and a next version above them all.  line() gets one JSON object
 * per version and per model.  Returns the number of problems (0 =
 * consistent). */
typedef void feat_models_line_fn(void *arg, const char *json, size_t len);
int feat_models_audit(feat_store_t *st, const feat_models_conf_t *conf, feat_models_line_fn *line, void *arg);

#endif
