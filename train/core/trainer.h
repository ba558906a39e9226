/*
 * train/core/trainer.h — fitting models: preprocessing, mini-batch Adam on
 * the CPU or a GPU, grid search, validation.
 *
 * feat_train() takes time-ordered raw rows with labels, keeps the newest
 * valid_fraction of them for validation, fits the preprocessing (prep.h) on
 * the older rows, trains each configuration of the grid on them, scores each
 * on the validation rows and returns the best as a feat_model_t (model.h)
 * carrying its preprocessing, weights and metrics.
 *
 * Objective: mean loss over the batch + λ/2·‖w‖² (weights only, not biases);
 * log loss on the logit for binary tasks, ½(z − y)² on standardised targets
 * for regression.  Optimiser: Adam with bias correction, one step per
 * mini-batch of batch_size rows (the last batch of an epoch may be shorter),
 * rows reshuffled every epoch by a seeded PRNG.  Linear weights start at 0;
 * MLP weights He-uniform (ReLU) or Glorot-uniform (tanh), biases 0.
 *
 * Precision: the dense inputs are float (prep.h says why); every training
 * operation on them — dot products, activations, gradients, Adam moments,
 * weights — is double.  Double keeps thousands of Adam steps free of
 * accumulated rounding and lets the CPU and GPU agree closely.  Validation
 * and training metrics are computed with the model runtime's own forward
 * pass (model.h: double, except the MLP hidden layer in float), so they
 * describe exactly what the model serves.
 *
 * Determinism and CPU/GPU agreement: given the same data, configuration and
 * seed, a backend gives bit-identical weights on every run (the CPU trainer
 * is single-threaded; the GPU runs one block in a fixed order).  The CPU and
 * the CUDA kernels perform the same double operations in the same order
 * (shared code in kern.h and kern_epoch.h, FMA contraction off on both
 * sides; tests/test_gpu_emul.c runs the kernels' phases on the CPU and gets
 * the CPU trainer's weights bit for bit).  They differ only where CUDA's
 * exp() and tanh() round differently from libm (≤ 2 ulp), which the
 * following steps carry along, so the documented tolerance is
 *   |w_cpu − w_gpu| ≤ 1e-6·(1 + |w|) for logreg and linreg, and
 *   |p_cpu − p_gpu| ≤ 1e-5 on predictions for the MLP
 * (checked on a GPU by tests/test_gpu.c, label gpu).
 *
 * The CPU trainer is single-threaded on purpose: it is deterministic and
 * leaves the other cores to serving.  All calls are reentrant; training state
 * lives in the call.
 */
#ifndef FEAT_TRAIN_CORE_TRAINER_H
#define FEAT_TRAIN_CORE_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "train/core/metrics.h"
#include "train/core/model.h"
#include "train/core/prep.h"
#include "train/core/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Dense training rows: preprocessed inputs and their targets. */
typedef struct feat_dense {
    const float *x;           /* n × d row-major (NaN = missing, in the raw mode of prep.h) */
    const double *y;          /* n labels (0/1, or targets: standardised except for trees) */
    size_t n;
    uint32_t d;
} feat_dense_t;

/* What trains FEAT_MODEL_TREES.  This core has no tree learner of its own:
 * train/ supplies one backed by libxgboost (train/gbdt.h), so that the core
 * stays free of it.  fit() boosts h->trees rounds of depth h->max_depth
 * (h->learning_rate the shrinkage, h->l2 the leaf penalty, h->subsample,
 * h->min_child_weight, seeded by h->seed) on train, labels 0/1 (BINARY,
 * logistic ensemble) or raw targets (REGRESSION, identity); with
 * h->early_stopping and validation rows, it stops after that many rounds
 * without a better validation AUC (RMSE) and keeps the best rounds.  cancel
 * is polled between rounds (non-zero: stop with FEAT_ERR_UNAVAILABLE).
 * FEAT_OK with *out, else an error with err. */
typedef struct feat_tree_learner {
    feat_err_t (*fit)(void *arg, const feat_dense_t *train, const feat_dense_t *valid, feat_task_t task,
                      const feat_hyper_t *h, int (*cancel)(void *), void *cancel_arg, feat_trees_t **out,
                      char *err, size_t errlen);
    void *arg;
} feat_tree_learner_t;

/* Candidate values for a grid search.  An empty list (n = 0) means "the value
 * in feat_train_conf_t.hyper".  Configurations are enumerated with
 * learning_rate outermost, then l2, hidden, epochs, max_depth, trees; each list at most 64
 * long and at most 4096 configurations in all.  Borrowed for the call. */
typedef struct feat_grid {
    const double *learning_rate;  size_t n_learning_rate;
    const double *l2;             size_t n_l2;
    const uint32_t *hidden;       size_t n_hidden;
    const uint32_t *epochs;       size_t n_epochs;
    const uint32_t *trees;        size_t n_trees;      /* trees: innermost, after epochs */
    const uint32_t *max_depth;    size_t n_max_depth;
} feat_grid_t;

typedef struct feat_train_conf {
    feat_model_kind_t kind;   /* default FEAT_MODEL_LOGREG */
    feat_task_t task;         /* default AUTO: logreg → BINARY, linreg → REGRESSION,
                                 mlp and trees → BINARY when every label is 0 or 1, else REGRESSION */
    const feat_tree_learner_t *learner; /* FEAT_MODEL_TREES: required (borrowed); trees train on the CPU,
                                 over raw-mode preprocessing (prep.h), whatever prep.raw says */
    feat_hyper_t hyper;       /* defaults from feat_hyper_init() */
    feat_grid_t grid;         /* default empty: train hyper alone */
    feat_prep_conf_t prep;    /* defaults from feat_prep_conf_init() */
    double valid_fraction;    /* newest rows that validate: floor(n_rows·f); default 0.25; [0, 0.9] */
    feat_backend_t backend;   /* default AUTO */
    const char *label_name;   /* stored in the model; NULL or ≤ FEAT_TRAIN_MAX_NAME bytes; borrowed */
    /* Optional: polled between epochs; a non-zero return stops training with
     * FEAT_ERR_UNAVAILABLE.  Called on the training thread. */
    int (*cancel)(void *arg);
    void *cancel_arg;
} feat_train_conf_t;

/* Fills c with the defaults above. */
void feat_train_conf_init(feat_train_conf_t *c);

/* The training set.  All borrowed for the call. */
typedef struct feat_train_data {
    const feat_feature_def_t *features;  /* schema, n_features long */
    size_t n_features;
    const feat_raw_t *rows;            /* n_rows × n_features, row-major, oldest row first */
    const double *labels;                /* n_rows; 0/1 for binary tasks, finite for regression */
    size_t n_rows;                       /* ≤ FEAT_TRAIN_MAX_ROWS */
} feat_train_data_t;

/* One configuration of a grid search. */
typedef struct feat_grid_result {
    feat_hyper_t hyper;          /* what was tried */
    feat_eval_t valid;        /* its validation metrics (all NaN if it diverged) */
    double seconds;              /* its training time */
    int diverged;                /* 1 when its weights or validation predictions became
                                    non-finite (never chosen) */
} feat_grid_result_t;

/* What feat_train() did.  Zero it, optionally point results at an array of
 * results_cap entries, and pass it in; everything else is written. */
typedef struct feat_train_report {
    feat_backend_t backend;      /* CPU or GPU: what trained the returned model */
    char note[160];              /* why the GPU was not used or fell back; "" otherwise */
    size_t n_train, n_valid;     /* split sizes */
    size_t input_dim;            /* dense columns */
    size_t n_configs;            /* configurations trained */
    size_t best;                 /* index of the chosen one (enumeration order) */
    double prep_seconds;         /* fitting and applying preprocessing */
    double train_seconds;        /* training and validating all configurations, GPU set-up included */
    double rows_per_second;      /* Σ n_train·epochs over configurations / train_seconds */
    feat_eval_t train, valid; /* of the chosen model, as stored in it */
    feat_grid_result_t *results; /* in: optional array; out: first min(n_configs, results_cap) */
    size_t results_cap;
} feat_train_report_t;

/* Trains a model (see top of file).  The best configuration is the one with
 * the highest validation AUC (binary; log loss breaks a NaN AUC) or lowest
 * validation RMSE (regression); earlier in enumeration order wins a tie.
 * On success *out owns the model (feat_model_destroy()); on failure *out is
 * NULL.  report (may be NULL) and errstr (may be NULL; one line) are filled
 * either way where something is known.
 * FEAT_ERR_INVALID: NULL argument, a value out of range, a bad label, a
 * schema error, no training rows, a grid of several configurations with no
 * validation rows, or every configuration diverged;
 * FEAT_ERR_NO_DEVICE: backend GPU and no usable GPU;
 * FEAT_ERR_UNAVAILABLE: cancelled, or the GPU failed with backend GPU;
 * FEAT_ERR_NOMEM. */
feat_err_t feat_train(const feat_train_conf_t *conf, const feat_train_data_t *data,
                      feat_model_t **out, feat_train_report_t *report,
                      char *errstr, size_t errstr_size);

#ifdef __cplusplus
}
#endif
#endif
