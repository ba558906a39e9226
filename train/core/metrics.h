/*
 * train/core/metrics.h — evaluation metrics of featd's models.
 *
 * Binary classification: AUC, log loss, accuracy.  Regression: RMSE, MAE.
 * All functions are pure, reentrant and callable from any thread; only
 * feat_eval_auc() allocates (an index array of n entries, freed before it
 * returns).  Sums run in double in input order.
 */
#ifndef FEAT_TRAIN_CORE_METRICS_H
#define FEAT_TRAIN_CORE_METRICS_H

#include <stddef.h>

#include "train/core/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The metrics of one model on one split.  A metric that does not apply to the
 * task, or cannot be computed (no rows, one class only for AUC), is NaN. */
typedef struct feat_eval {
    double auc;        /* ROC AUC; ties count one half (same as sklearn's roc_auc_score) */
    double logloss;    /* mean −[y·ln p + (1−y)·ln(1−p)], p clipped to [1e-15, 1−1e-15] */
    double accuracy;   /* fraction with (p > 0.5) == (y == 1) */
    double rmse;       /* sqrt(mean((pred − y)²)) */
    double mae;        /* mean |pred − y| */
} feat_eval_t;

/* Sets every field of m to NaN. */
void feat_eval_clear(feat_eval_t *m);

/* ROC AUC of scores against labels (label > 0.5 is positive), computed as the
 * Mann-Whitney statistic with mid-ranks for tied scores: the probability that
 * a random positive outscores a random negative, ties counting 1/2.
 * *out = NaN (and FEAT_OK) when there is no positive or no negative.
 * FEAT_ERR_INVALID: NULL pointer or a NaN score; FEAT_ERR_NOMEM. */
feat_err_t feat_eval_auc(const double *score, const double *label, size_t n, double *out);

/* Mean log loss of probabilities p against 0/1 labels (see feat_eval_t).
 * NaN when n == 0. */
double feat_eval_logloss(const double *p, const double *label, size_t n);

/* Fraction of rows where (p > 0.5) equals (label > 0.5).  NaN when n == 0. */
double feat_eval_accuracy(const double *p, const double *label, size_t n);

/* Root mean squared error and mean absolute error.  NaN when n == 0. */
double feat_eval_rmse(const double *pred, const double *label, size_t n);
double feat_eval_mae(const double *pred, const double *label, size_t n);

/* Fills m with the metrics of task (the others NaN): AUC, log loss, accuracy
 * for FEAT_TASK_BINARY; RMSE, MAE for FEAT_TASK_REGRESSION.
 * Errors as feat_eval_auc(); FEAT_ERR_INVALID for another task. */
feat_err_t feat_eval_compute(feat_task_t task, const double *pred, const double *label,
                                size_t n, feat_eval_t *m);

#ifdef __cplusplus
}
#endif
#endif
