/*
 * train/gbdt.c — the libxgboost tree learner (gbdt.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xgboost/c_api.h>

#include "train/gbdt.h"
#include "train/xgb_json.h"

/* The booster's last error, as err. */
static feat_err_t xgb_fail(const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "xgboost %s: %s", what, XGBGetLastError());
    return FEAT_ERR_INVALID;
}

static int set_param(BoosterHandle b, const char *name, const char *fmt, double v) {
    char buf[64];
    snprintf(buf, sizeof(buf), fmt, v);
    return XGBoosterSetParam(b, name, buf);
}

/* The validation metric after one round, from "[i]\tvalid-auc:0.81": NaN if absent. */
static double eval_metric(BoosterHandle b, int iter, DMatrixHandle valid) {
    const char *names[1] = {"valid"};
    const char *out = NULL;
    if (XGBoosterEvalOneIter(b, iter, &valid, names, 1, &out) != 0 || !out)
        return NAN;
    const char *colon = strrchr(out, ':');
    return colon ? strtod(colon + 1, NULL) : NAN;
}

static DMatrixHandle matrix(const feat_dense_t *d) {
    DMatrixHandle m = NULL;
    if (XGDMatrixCreateFromMat_omp(d->x, (bst_ulong)d->n, d->d, NAN, &m, 1) != 0)
        return NULL;
    float *y = malloc((d->n ? d->n : 1) * sizeof(float));
    int rc = y ? 0 : -1;
    for (size_t i = 0; y && i < d->n; i++) y[i] = (float)d->y[i];
    if (rc == 0) rc = XGDMatrixSetFloatInfo(m, "label", y, (bst_ulong)d->n);
    free(y);
    if (rc != 0) {
        XGDMatrixFree(m);
        return NULL;
    }
    return m;
}

/* Saves b (its first rounds rounds) as JSON and reads it back as trees. */
static feat_err_t to_trees(BoosterHandle b, int rounds, int total, feat_trees_t **out, char *err, size_t errlen) {
    BoosterHandle keep = b, sliced = NULL;
    if (rounds < total) {
        if (XGBoosterSlice(b, 0, rounds, 1, &sliced) != 0) return xgb_fail("slice", err, errlen);
        keep = sliced;
    }
    bst_ulong len = 0;
    const char *json = NULL;
    feat_err_t rc = FEAT_OK;
    if (XGBoosterSaveModelToBuffer(keep, "{\"format\": \"json\"}", &len, &json) != 0) {
        rc = xgb_fail("save", err, errlen);
    } else {
        feat_xgb_model_t m;
        rc = feat_xgb_json_load(json, (size_t)len, &m, err, errlen);
        if (rc == FEAT_OK) {
            *out = m.trees;
            m.trees = NULL;
            feat_xgb_model_free(&m);
        }
    }
    if (sliced) XGBoosterFree(sliced);
    return rc;
}

static feat_err_t fit(void *arg, const feat_dense_t *train, const feat_dense_t *valid, feat_task_t task,
                      const feat_hyper_t *h, int (*cancel)(void *), void *cancel_arg, feat_trees_t **out,
                      char *err, size_t errlen) {
    (void)arg;
    *out = NULL;
    DMatrixHandle dtrain = matrix(train), dvalid = NULL;
    BoosterHandle b = NULL;
    feat_err_t rc = FEAT_OK;
    int binary = task == FEAT_TASK_BINARY;
    int stop_early = h->early_stopping > 0 && valid && valid->n > 0;
    if (!dtrain || (stop_early && !(dvalid = matrix(valid)))) {
        rc = xgb_fail("matrix", err, errlen);
        goto done;
    }
    DMatrixHandle cache[2] = {dtrain, dvalid};
    if (XGBoosterCreate(cache, dvalid ? 2 : 1, &b) != 0 ||
        XGBoosterSetParam(b, "objective", binary ? "binary:logistic" : "reg:squarederror") != 0 ||
        XGBoosterSetParam(b, "eval_metric", binary ? "auc" : "rmse") != 0 ||
        XGBoosterSetParam(b, "tree_method", "hist") != 0 || XGBoosterSetParam(b, "nthread", "1") != 0 ||
        XGBoosterSetParam(b, "verbosity", "0") != 0 || set_param(b, "eta", "%.17g", h->learning_rate) != 0 ||
        set_param(b, "lambda", "%.17g", h->l2) != 0 || set_param(b, "max_depth", "%.0f", h->max_depth) != 0 ||
        set_param(b, "subsample", "%.17g", h->subsample) != 0 ||
        set_param(b, "min_child_weight", "%.17g", h->min_child_weight) != 0 ||
        set_param(b, "seed", "%.0f", (double)(h->seed % 2147483647u)) != 0) {
        rc = xgb_fail("parameters", err, errlen);
        goto done;
    }
    double best = NAN;
    int best_round = 0, rounds = 0;
    for (int i = 0; i < (int)h->trees; i++) {
        if (cancel && cancel(cancel_arg)) {
            snprintf(err, errlen, "training cancelled");
            rc = FEAT_ERR_UNAVAILABLE;
            goto done;
        }
        if (XGBoosterUpdateOneIter(b, i, dtrain) != 0) {
            rc = xgb_fail("update", err, errlen);
            goto done;
        }
        rounds = i + 1;
        if (!stop_early) continue;
        double v = eval_metric(b, i, dvalid);
        if (isnan(best) || (binary ? v > best : v < best)) {
            best = v;
            best_round = i;
        } else if (i - best_round >= (int)h->early_stopping) {
            break;
        }
    }
    rc = to_trees(b, stop_early && !isnan(best) ? best_round + 1 : rounds, rounds, out, err, errlen);
done:
    if (b) XGBoosterFree(b);
    if (dtrain) XGDMatrixFree(dtrain);
    if (dvalid) XGDMatrixFree(dvalid);
    return rc;
}

static const feat_tree_learner_t learner = {fit, NULL};

const feat_tree_learner_t *feat_gbdt_learner(void) { return &learner; }
