/*
 * train/trainset.h — point-in-time-correct training sets.
 *
 * For every label of a model (in label-time order) the row holds, for each of
 * the model's features, the latest value with event time <= the label time
 * and within the table's TTL — read with feat_pit_read(), the same code that
 * answers GetHistoricalFeatures, so training and serving never disagree.
 * Values with no such event are missing (and counted); the model's
 * preprocessing imputes them.
 */
#ifndef FEAT_TRAIN_TRAINSET_H
#define FEAT_TRAIN_TRAINSET_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/config.h"
#include "store/store.h"
#include "train/core/types.h"

typedef struct feat_trainset {
    feat_feature_def_t *defs;   /* model features, in the model's order */
    size_t nf;
    feat_raw_t *rows;           /* n x nf, oldest label first */
    double *labels;
    int64_t *ts;                /* label times */
    char **keys;                /* entity keys (in the arena) */
    size_t n, cap;
    uint64_t missing;           /* feature values with nothing within TTL */
    int64_t from_ms, to_ms;     /* label-time range actually used */
    feat_arena_t arena;         /* strings */
} feat_trainset_t;

/* progress(arg, done, total) is called now and then; cancel(arg) non-zero
 * stops the build with FEAT_ERR_UNAVAILABLE. */
typedef struct feat_trainset_cb {
    void (*progress)(void *arg, uint64_t done, uint64_t total);
    int (*cancel)(void *arg);
    void *arg;
    /* NULL, or 0 for a label key whose row this build leaves out (in a
     * cluster: labels of partitions another instance holds) */
    int (*keep)(void *keep_arg, const char *key, size_t klen);
    void *keep_arg;
} feat_trainset_cb_t;

/* Builds the set for model m from labels with from_ms <= ts <= to_ms (its
 * table is st's).  Binary tasks (logreg, mlp) need labels 0 or 1: any other
 * value fails the build with FEAT_ERR_INVALID naming it.  On failure errstr
 * says why and *out holds nothing to free. */
feat_err_t feat_trainset_build(feat_store_t *st, const feat_model_conf_t *m, int64_t from_ms, int64_t to_ms,
                               const feat_trainset_cb_t *cb, feat_trainset_t *out, char *errstr, size_t errlen);
void feat_trainset_free(feat_trainset_t *ts);

/* Room for one more row (rows, labels, ts, keys).  FEAT_OK or FEAT_ERR_NOMEM. */
feat_err_t feat_trainset_reserve(feat_trainset_t *ts);
/* Sorts the rows by label time, then entity key: the order one store's
 * build gives, so rows gathered from several stores train the same model. */
feat_err_t feat_trainset_sort(feat_trainset_t *ts); /* FEAT_OK or FEAT_ERR_NOMEM (ts unchanged) */

/* Raw value of a stored one (PRESENT) or missing. */
feat_raw_t feat_raw_from_value(const feat_value_t *v);

#endif
