/*
 * train/models_internal.h — what the files of the models object share.  Not a
 * public interface: the rest of featd uses train/models.h.
 *
 *   models.c    the object: its conf, new/destroy, metrics, names
 *   registry.c  store keys and records, loading, serving handles, list,
 *               promote, rollback and the one swap that changes what a model
 *               serves (registry_swap)
 *   meta.c      a version's metadata: the struct a run fills, its JSON, and
 *               the summary list reports
 *   engine.c    the retrain engine: requests, triggers, runs
 *   quality.c   live quality: prediction/label joins, rolling metric, alerts
 *   audit.c     the registry consistency audit (featd-inspect models)
 *
 * Store layout:
 *   models      model \0 "v" \0 version(BE64) → 0x01 | u32 json length | json | model blob
 *   models      model \0 "a"                 → aliases: 0x01 | champion | challenger | next | n | history...
 *   references  "model" \0 model \0 version(BE64) \0 feature → kind (0 KLL, 1 categories) | sketch
 * A version's record, its references and the aliases change in one batch.
 *
 * Locks, per model (mstate_t); order reg_lock → lock; q.lock and the
 * engine's qlock are never held with another:
 *   reg_lock  serialises changes to the registry (promote, rollback, a new
 *             version) and is held across their store write; list holds it
 *             too.  Predict never takes it.
 *   lock      guards the served handles; Predict takes it in
 *             feat_models_acquire.  Held for pointer loads, stores and
 *             reference counts only: never across I/O, training or a
 *             callback.
 * Fields marked [both] are written with both held and may be read with
 * either; [lock] with lock; [reg] with reg_lock.
 */
#ifndef FEAT_TRAIN_MODELS_INTERNAL_H
#define FEAT_TRAIN_MODELS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "common/buf.h"
#include "train/core/metrics.h"
#include "train/core/types.h"
#include "train/models.h"

#define FEAT_MODELS_MAX_RUNS 64  /* run statuses remembered */
#define FEAT_MODELS_PINNED 4     /* versions pinned by requests, kept loaded per model */

/* A served version: immutable once made, freed by its last release. */
struct feat_loaded {
    _Atomic int refs;
    uint32_t midx;
    uint64_t version;
    feat_model_t *m;
    const feat_table_t *t;
    uint16_t *fidx;             /* [nf] feature index in the feature's own table */
    size_t nf;
    int binary;
    int multi;                  /* some feature is in another table than t */
    feat_loaded_group_t *groups;
    size_t ngroups;
    size_t *pos;                /* [nf] backing store of groups[].pos; fidx backs groups[].fidx */
};

/* A model's aliases record (see the store layout). */
typedef struct aliases {
    uint64_t champion, challenger;  /* versions; 0 = none */
    uint64_t next;                  /* the next version's number */
    uint64_t *hist;                 /* earlier champions, newest last; malloc'd */
    size_t nhist;
} aliases_t;

/* A version's summary: what list reports, parsed from the stored metadata
 * (or filled from a new version's vmeta_t). */
typedef struct vinfo {
    uint64_t version;
    int64_t created_ms;
    char trigger[16], task[16], device[8], table[FEAT_MAX_NAME + 1], reason[128];
    feat_eval_t train, valid;
    uint64_t n_train, n_valid;
    int64_t from_ms, to_ms;
    double seconds;
    char *json;             /* the whole metadata document */
    char **features;        /* names, in the model's order */
    size_t nfeatures;
    char *params;           /* the "params" object's text */
} vinfo_t;

/* A new version's metadata, filled by a run and written once as the JSON
 * document of its record (feat_meta_json). */
typedef struct vmeta {
    const char *model;
    uint64_t version;
    int64_t created_ms;
    int trigger;                       /* feat_trigger_t */
    const char *reason;
    const char *task, *table;
    const feat_feature_def_t *features; /* in the model's order */
    size_t nfeatures;
    feat_hyper_t hyper;                /* the configuration that won */
    size_t configs_tried;
    size_t input_dim;                  /* dense columns after preprocessing */
    int64_t top_k;
    feat_eval_t train, valid, champion; /* champion: on the same validation rows (NaN: not comparable) */
    uint64_t champion_version;         /* 0 = none */
    int beats_champion;                /* 1, 0, or -1: not comparable */
    int64_t from_ms, to_ms;            /* label-time range */
    size_t rows, train_rows, validation_rows;
    uint64_t missing_values;
    const char *device;                /* "cpu" or "gpu": what trained it */
    const char *device_note;
    double train_seconds, rows_per_second, run_seconds;
} vmeta_t;

typedef struct quality {
    pthread_mutex_t lock;
    struct qslot *slots;    /* remembered predictions, in buckets by entity */
    double *p, *y;          /* ring of the last window pairs */
    size_t n, head, cap;
    uint64_t pairs;
    double value;           /* last AUC or RMSE; NaN before enough pairs */
    int below;
    uint64_t version;       /* the version whose predictions it holds (0: any; the champion's, live[0]) */
} quality_t;

typedef struct mstate {
    const feat_model_conf_t *conf;
    uint32_t idx;
    const feat_table_t *t;
    int binary;
    pthread_mutex_t reg_lock;
    pthread_mutex_t lock;
    aliases_t al;                                  /* [both] */
    feat_loaded_t *champion, *challenger;          /* [both]: the handles of al.champion, al.challenger */
    feat_loaded_t *pinned[FEAT_MODELS_PINNED];     /* [lock] */
    vinfo_t *v;                                    /* [both] oldest first */
    size_t nv, capv;                               /* [both] */
    uint64_t pub_seq;                              /* [reg] aliases records this instance published */
    feat_buf_t pending_key, pending_val;           /* [reg] an aliases record naming a version not received yet */
    _Atomic uint64_t labels_since;
    int64_t last_run_ms;                           /* the engine thread's */
    quality_t q;                                   /* the champion's (and any version's served before it) */
    quality_t qc;                                  /* the challenger's: shadow, canary and alias traffic */
    feat_metric_t *m_pred_quality;
} mstate_t;

#define FEAT_IMPORT_MAX (256u << 20) /* bytes of one imported model file */

typedef struct run {
    feat_run_status_t st;
    uint32_t midx;
    char reason[128];
    feat_model_t *imported;     /* an import's model until the run takes it (feat_models_import_file) */
    int64_t not_before_ms;      /* a drift run waits this long: see enqueue() */
} run_t;

struct feat_models {
    feat_models_conf_t conf;
    feat_store_t *st;
    feat_alert_bus_t *bus;
    feat_metrics_t *metrics;
    mstate_t *mstates;       /* conf.nmodels of them */
    size_t n;
    /* the engine */
    pthread_t thr;
    int started;
    pthread_mutex_t qlock;   /* guards the runs, next_run and stop */
    pthread_cond_t qcond;
    run_t runs[FEAT_MODELS_MAX_RUNS]; /* ring of runs, queued ones included */
    size_t nruns, rhead;
    uint64_t next_run;
    int stop;
    atomic_int cancel;
    feat_metric_t *m_runs_ok, *m_runs_fail, *m_coalesced, *m_swaps;
    feat_models_cluster_t cl; /* cl.trainer NULL: single mode */
};

mstate_t *feat_models_find(feat_models_t *models, const char *model);

/* ---- registry.c ---- */

/* Keys of the store layout; feat_reg_rkey returns 0 when it does not fit cap. */
size_t feat_reg_vkey(char *k, const char *model, uint64_t version); /* k: FEAT_MAX_NAME + 16 */
size_t feat_reg_vprefix(char *k, const char *model);                /* model's versions; k: FEAT_MAX_NAME + 4 */
size_t feat_reg_akey(char *k, const char *model);                   /* k: FEAT_MAX_NAME + 4 */
size_t feat_reg_rkey(char *k, size_t cap, const char *model, uint64_t version, const char *feature);
void feat_aliases_encode(const aliases_t *a, feat_buf_t *b);
/* a->hist malloc'd.  FEAT_ERR_CORRUPT (champion, challenger and next may be set), FEAT_ERR_NOMEM. */
feat_err_t feat_aliases_decode(aliases_t *a, const unsigned char *p, size_t n);

/* Loads s's aliases, versions, champion and challenger (at start-up). */
feat_err_t feat_reg_open(feat_models_t *models, mstate_t *s, char *errstr, size_t errlen);
void feat_reg_close(mstate_t *s);

/* Registers version (s's next) of s in one store write: wb holds its record
 * and references, the aliases are added.  It becomes the champion when s has
 * none or beats_champion is set, else the challenger (*promoted says which).
 * model and info's contents are the registry's whatever the outcome.  Runs
 * on the engine thread (the only one that numbers versions). */
/* The serving model of an xgboost-json file for s (import.c; the checks
 * feat_models_import_file lists).  FEAT_OK with *out, else err. */
feat_err_t feat_import_xgboost(feat_models_t *models, const mstate_t *s, const void *data, size_t len,
                               const char *const *features, size_t nfeatures, feat_model_t **out, char *err,
                               size_t errlen);

feat_err_t feat_reg_install(feat_models_t *models, mstate_t *s, uint64_t version, feat_model_t *model,
                            vinfo_t *info, feat_wb_t *wb, int beats_champion, int *promoted, char *err,
                            size_t errlen);

feat_loaded_t *feat_loaded_ref(feat_loaded_t *l);

/* In a cluster: publishes version of s (0: none) and then s's aliases.
 * Caller holds s->reg_lock (the records go out in the order of the changes). */
void feat_reg_publish(feat_models_t *models, mstate_t *s, uint64_t version);
/* Reports what s serves to cl.served.  Any thread, no lock held. */
void feat_reg_served(feat_models_t *models, mstate_t *s);

/* ---- meta.c ---- */

void feat_meta_json(const vmeta_t *m, feat_buf_t *b);
void feat_meta_params_json(const vmeta_t *m, feat_buf_t *b); /* the "params" object */
/* v's summary from m and its document json (copied).  FEAT_ERR_NOMEM. */
feat_err_t feat_vinfo_from_meta(vinfo_t *v, const vmeta_t *m, const char *json, size_t len);
/* v's summary from the stored document v->json.  FEAT_ERR_CORRUPT when it is not JSON. */
feat_err_t feat_vinfo_parse(vinfo_t *v);
void feat_vinfo_free(vinfo_t *v);

/* ---- quality.c ---- */

feat_err_t feat_quality_init(quality_t *q, size_t window);
void feat_quality_free(quality_t *q);
double feat_quality_value(quality_t *q);
/* The window's AUC or RMSE (NaN before enough pairs), pairs joined since its version began, pairs in the window,
 * and that version. */
void feat_quality_get(quality_t *q, double *value, uint64_t *pairs, size_t *window, uint64_t *version);

#endif
