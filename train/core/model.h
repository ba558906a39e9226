/*
 * train/core/model.h — the model runtime: a trained model, its predictions
 * and its portable blob.
 *
 * A feat_model_t holds the model kind and task, the hyper-parameters it was
 * trained with, the feature list (names and types) with the fitted
 * preprocessing (prep.h), the weights and the training facts and metrics.  It
 * comes from feat_train() (trainer.h) or feat_model_deserialize(), and is
 * immutable afterwards: any number of threads may predict at once, each with
 * its own scratch.  serve/ reference-counts models; this layer does not.
 *
 * Predictions: P(label = 1) for FEAT_TASK_BINARY, the label's units for
 * FEAT_TASK_REGRESSION.  Arithmetic is double over the float-rounded
 * preprocessed inputs, as in training, except the MLP's hidden layer, which
 * is computed in float from float copies of W1 and b1 (half the cost of the
 * largest layer on the serving path; about 1e-6 relative error in the
 * pre-activations).  The stored metrics were computed by this same code, so
 * a model predicts exactly what its metrics describe.
 * The predict functions never allocate: they work in caller scratch of
 * feat_model_scratch_size() bytes (any batch size), or on the stack when
 * scratch is NULL and that size is at most FEAT_MODEL_STACK_SCRATCH.
 *
 * Weights layout (feat_model_params()), d = input dim, h = hidden units:
 *   logreg/linreg: w[0..d), bias                          (d + 1 doubles)
 *   mlp:           W1[h][d] row-major, b1[h], w2[h], b2   (h·d + 2h + 1 doubles)
 *   trees:         none (feat_model_trees(): the ensemble, over the dense
 *                  columns of a raw-mode preprocessing, prep.h)
 * The output z is mapped to P = sigmoid(z) (binary) or z·y_std + y_mean
 * (regression; targets are standardised while training).  A tree model's
 * output is the ensemble's (trees.h: float, XGBoost's arithmetic).
 *
 * Blob format, version 2 for tree models and version 1 for the others (which
 * lacks the fields marked v2; an older featd reads it).  Integers little-endian, f64 = IEEE-754 binary64
 * bits little-endian, str = u32 byte length + bytes (no NUL).
 *   header  (16 bytes): "FTMB", u32 version (1 or 2), u32 payload length L,
 *                       u32 CRC-32 (IEEE, as zlib's crc32()) of the payload;
 *                       the blob is exactly 16 + L bytes.
 *   payload: u32 kind, u32 task,
 *            hyper: f64 learning_rate, l2, beta1, beta2, epsilon,
 *                   u32 hidden, epochs, batch_size, activation, shuffle, u64 seed,
 *                   v2: u32 trees, max_depth, early_stopping, f64 subsample, min_child_weight,
 *            str label,
 *            prep conf: u32 top_k, hash_buckets, min_count, missing_indicators, v2: u32 raw,
 *            u32 n_features, then per feature: str name, u32 type, u32 indicator,
 *                   numeric: f64 mean, f64 std;
 *                   string:  u32 K, K × str category, u32 hash_buckets,
 *            f64 y_mean, f64 y_std,
 *            u32 d, u32 h (0 for linear models), u32 n_weights, n_weights × f64,
 *            v2, trees only: u32 link, f32 base_margin, u32 ntrees, ntrees × u32 node count,
 *                   then every node: f32 value, i32 feature, u32 left, u32 right,
 *                   u32 default_left (children relative to their tree),
 *            u64 n_train, u64 n_valid, f64 train_seconds, u32 backend,
 *            train metrics then validation metrics: 5 × f64 each
 *                   (auc, logloss, accuracy, rmse, mae; NaN where not applicable).
 * A decoder rejects any other version.  A change to the layout bumps it.
 */
#ifndef FEAT_TRAIN_CORE_MODEL_H
#define FEAT_TRAIN_CORE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "train/core/metrics.h"
#include "train/core/prep.h"
#include "train/core/trees.h"
#include "train/core/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct feat_model feat_model_t;

#define FEAT_MODEL_BLOB_VERSION 2u
#define FEAT_MODEL_STACK_SCRATCH 16384u  /* bytes of stack a predict call may use when scratch is NULL */

/* Facts about a model.  Owned by the model; valid while it lives. */
typedef struct feat_model_info {
    feat_model_kind_t kind;
    feat_task_t task;            /* BINARY or REGRESSION */
    feat_hyper_t hyper;          /* the configuration that trained it */
    const char *label;           /* label name given at training ("" if none); NUL-terminated */
    size_t n_features;           /* raw values per row */
    size_t input_dim;            /* dense columns after preprocessing */
    uint64_t n_train, n_valid;   /* rows in the training and validation splits */
    double train_seconds;        /* wall time of its training run */
    feat_backend_t backend;      /* CPU or GPU: what trained it */
    feat_eval_t train;        /* on the training split */
    feat_eval_t valid;        /* on the validation split (NaN if it had no rows) */
    double y_mean, y_std;        /* regression target scaling (0 and 1 for binary) */
} feat_model_info_t;

/* Never NULL for a valid model. */
const feat_model_info_t *feat_model_info(const feat_model_t *m);

/* The fitted preprocessing, which also holds the feature list (names and
 * types, via feat_prep_info()).  Owned by m. */
const feat_prep_t *feat_model_prep(const feat_model_t *m);

/* Name (owned by m) and type of feature i; NULL / 0 when out of range. */
const char *feat_model_feature_name(const feat_model_t *m, size_t i);
feat_ftype_t feat_model_feature_type(const feat_model_t *m, size_t i);

/* Position of the feature called name, or -1.  Linear in the feature count:
 * resolve names once, not per request. */
long feat_model_feature_index(const feat_model_t *m, const char *name);

/* The weights (layout above) and their count; owned by m. */
const double *feat_model_params(const feat_model_t *m, size_t *n_params);

/* The ensemble of a FEAT_MODEL_TREES model (owned by m), else NULL. */
const feat_trees_t *feat_model_trees(const feat_model_t *m);

/* A tree model: trees score the feat_prep_dim(prep) columns prep writes
 * (prep fitted with conf.raw set).  info gives the task (BINARY with a
 * FEAT_TREES_LOGISTIC ensemble, REGRESSION with FEAT_TREES_IDENTITY), the
 * label, metrics and training facts; kind, n_features and input_dim are set
 * here, y_mean and y_std to 0 and 1.  Takes ownership of prep and trees,
 * also on failure.  FEAT_ERR_INVALID when they do not fit each other or
 * prep is not raw;
 * FEAT_ERR_NOMEM. */
feat_err_t feat_model_from_trees(feat_prep_t *prep, feat_trees_t *trees, const feat_model_info_t *info,
                                 feat_model_t **out);

/* Bytes of scratch one predict call needs, whatever its batch size. */
size_t feat_model_scratch_size(const feat_model_t *m);

/* Predicts one raw row: n_features values in the model's feature order
 * (feat_model_feature_index() maps names; absent features are
 * FEAT_V_MISSING).  scratch: scratch_size ≥ feat_model_scratch_size() bytes,
 * any alignment, or NULL (see above).  FEAT_ERR_INVALID: NULL m/row/out, or
 * scratch too small.  Never allocates. */
feat_err_t feat_model_predict(const feat_model_t *m, const feat_raw_t *row, void *scratch,
                              size_t scratch_size, double *out);

/* Predicts n_rows rows (n_rows × n_features values, row-major) into
 * out[0..n_rows).  Same contract as feat_model_predict(). */
feat_err_t feat_model_predict_batch(const feat_model_t *m, const feat_raw_t *rows,
                                    size_t n_rows, void *scratch, size_t scratch_size,
                                    double *out);

/* Predicts n_rows already-preprocessed rows (n_rows × input_dim floats, as
 * written by feat_prep_apply()).  Same contract as feat_model_predict(). */
feat_err_t feat_model_predict_dense(const feat_model_t *m, const float *x, size_t n_rows,
                                    void *scratch, size_t scratch_size, double *out);

/* Encodes m as a blob (version 2 for trees, else 1).  On success *out is a malloc'd buffer of
 * *out_len bytes that the caller frees with free(); on failure *out is NULL.
 * FEAT_ERR_INVALID: NULL argument; FEAT_ERR_NOMEM. */
feat_err_t feat_model_serialize(const feat_model_t *m, void **out, size_t *out_len);

/* Decodes a blob (borrowed; may be freed after the call).  On success *out
 * owns a new model (feat_model_destroy()).  Never reads outside [buf,
 * buf+len) and never trusts a length or count it has not checked.
 * FEAT_ERR_CORRUPT: bad magic, unsupported version, length or checksum
 * mismatch, truncated or trailing bytes, a value out of range, inconsistent
 * dimensions or a non-finite weight; FEAT_ERR_INVALID: NULL argument;
 * FEAT_ERR_NOMEM.  errstr (may be NULL) receives one line saying what was
 * wrong. */
feat_err_t feat_model_deserialize(const void *buf, size_t len, feat_model_t **out,
                                  char *errstr, size_t errstr_size);

/* NULL is fine. */
void feat_model_destroy(feat_model_t *m);

#ifdef __cplusplus
}
#endif
#endif
