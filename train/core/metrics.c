/*
 * train/core/metrics.c — AUC, log loss, accuracy, RMSE, MAE (metrics.h).
 */
#include <math.h>
#include <stdlib.h>

#include "train/core/metrics.h"

#define LOGLOSS_EPS 1e-15

void feat_eval_clear(feat_eval_t *m) {
    if (!m)
        return;
    m->auc = m->logloss = m->accuracy = m->rmse = m->mae = NAN;
}

typedef struct scored {
    double s;
    int pos;
} scored_t;

static int scored_order(const void *a, const void *b) {
    double x = ((const scored_t *)a)->s, y = ((const scored_t *)b)->s;
    return x < y ? -1 : x > y ? 1 : 0;
}

feat_err_t feat_eval_auc(const double *score, const double *label, size_t n, double *out) {
    if (!out || (n && (!score || !label)))
        return FEAT_ERR_INVALID;
    *out = NAN;
    size_t npos = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(score[i]))
            return FEAT_ERR_INVALID;
        npos += label[i] > 0.5;
    }
    size_t nneg = n - npos;
    if (npos == 0 || nneg == 0)
        return FEAT_OK;
    scored_t *v = (scored_t *)malloc(n * sizeof(*v));
    if (!v)
        return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i].s = score[i];
        v[i].pos = label[i] > 0.5;
    }
    qsort(v, n, sizeof(*v), scored_order);
    /* Sum of the (1-based, mid-ranked) ranks of the positives. */
    double rank_sum = 0.0;
    size_t i = 0;
    while (i < n) {
        size_t j = i + 1, pos = (size_t)v[i].pos;
        while (j < n && v[j].s == v[i].s)
            pos += (size_t)v[j++].pos;
        double mid = ((double)(i + 1) + (double)j) / 2.0; /* mean of ranks i+1 .. j */
        rank_sum += mid * (double)pos;
        i = j;
    }
    free(v);
    double p = (double)npos, q = (double)nneg;
    *out = (rank_sum - p * (p + 1.0) / 2.0) / (p * q);
    return FEAT_OK;
}

double feat_eval_logloss(const double *p, const double *label, size_t n) {
    if (n == 0 || !p || !label)
        return NAN;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double q = p[i];
        if (q < LOGLOSS_EPS)
            q = LOGLOSS_EPS;
        else if (q > 1.0 - LOGLOSS_EPS)
            q = 1.0 - LOGLOSS_EPS;
        s -= label[i] > 0.5 ? log(q) : log1p(-q);
    }
    return s / (double)n;
}

double feat_eval_accuracy(const double *p, const double *label, size_t n) {
    if (n == 0 || !p || !label)
        return NAN;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += (p[i] > 0.5) == (label[i] > 0.5);
    return (double)ok / (double)n;
}

double feat_eval_rmse(const double *pred, const double *label, size_t n) {
    if (n == 0 || !pred || !label)
        return NAN;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = pred[i] - label[i];
        s += d * d;
    }
    return sqrt(s / (double)n);
}

double feat_eval_mae(const double *pred, const double *label, size_t n) {
    if (n == 0 || !pred || !label)
        return NAN;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += fabs(pred[i] - label[i]);
    return s / (double)n;
}

feat_err_t feat_eval_compute(feat_task_t task, const double *pred, const double *label,
                                size_t n, feat_eval_t *m) {
    if (!m)
        return FEAT_ERR_INVALID;
    feat_eval_clear(m);
    if (n && (!pred || !label))
        return FEAT_ERR_INVALID;
    if (task == FEAT_TASK_BINARY) {
        feat_err_t e = feat_eval_auc(pred, label, n, &m->auc);
        if (e != FEAT_OK)
            return e;
        m->logloss = feat_eval_logloss(pred, label, n);
        m->accuracy = feat_eval_accuracy(pred, label, n);
        return FEAT_OK;
    }
    if (task == FEAT_TASK_REGRESSION) {
        m->rmse = feat_eval_rmse(pred, label, n);
        m->mae = feat_eval_mae(pred, label, n);
        return FEAT_OK;
    }
    return FEAT_ERR_INVALID;
}
