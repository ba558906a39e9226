/*
 * train/quality.c — live quality of served models (see models.h): served
 * predictions remembered per entity, joined with labels that arrive later,
 * the rolling AUC or RMSE of the last quality_window pairs, and an alert on
 * the alert bus when it crosses quality_floor.
 *
 * Threads: on_prediction (the prediction log's thread) and on_label (ingest's)
 * share the model's quality mutex; the alert is published after it is
 * released.
 */
#include "train/models_internal.h"

#include "common/clock.h"
#include "common/hash.h"
#include "common/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QSLOTS 65536       /* remembered predictions per model */
#define QWAYS 4            /* ...in 4-way buckets by entity; a full bucket forgets its oldest */

typedef struct qslot {
    uint64_t h;            /* the entity's hash; 0 = empty (or joined already) */
    int64_t ts;
    double score;
} qslot_t;

feat_err_t feat_quality_init(quality_t *q, size_t window) {
    pthread_mutex_init(&q->lock, NULL);
    q->slots = calloc(QSLOTS, sizeof(qslot_t));
    q->cap = window;
    q->p = calloc(window, sizeof(double));
    q->y = calloc(window, sizeof(double));
    q->value = NAN;
    return q->slots && q->p && q->y ? FEAT_OK : FEAT_ERR_NOMEM;
}

void feat_quality_free(quality_t *q) {
    free(q->slots);
    free(q->p);
    free(q->y);
    pthread_mutex_destroy(&q->lock);
}

double feat_quality_value(quality_t *q) {
    pthread_mutex_lock(&q->lock);
    double v = q->value;
    pthread_mutex_unlock(&q->lock);
    return v;
}

static uint64_t khash(const char *key, size_t klen) { return feat_hash_mix(feat_hash64(key, klen)) | 1; }

static qslot_t *qbucket(quality_t *q, uint64_t h) { return &q->slots[(h >> 32) % (QSLOTS / QWAYS) * QWAYS]; }

/* Empties q for the predictions of version (its labels-joined window too). */
static void quality_restart(quality_t *q, uint64_t version) {
    memset(q->slots, 0, QSLOTS * sizeof(qslot_t));
    q->n = q->head = 0;
    q->pairs = 0;
    q->value = NAN;
    q->version = version;
}

void feat_models_on_prediction(feat_models_t *models, uint32_t model, uint64_t version, const char *key, size_t klen,
                               int64_t ts, double score) {
    if (!models || model >= models->n) return;
    mstate_t *s = &models->mstates[model];
    quality_t *q = &s->q;
    if (version) { /* the challenger's go apart; a version neither serves (pinned) is not counted */
        pthread_mutex_lock(&s->lock);
        uint64_t champion = s->al.champion, challenger = s->al.challenger;
        pthread_mutex_unlock(&s->lock);
        if (version != champion && version != challenger) return;
        q = version == champion ? &s->q : &s->qc;
    }
    uint64_t h = khash(key, klen);
    pthread_mutex_lock(&q->lock);
    if (version && q->version != version) quality_restart(q, version);
    qslot_t *b = qbucket(q, h), *sl = b;
    for (int i = 0; i < QWAYS; i++) {
        if (b[i].h == h || b[i].h == 0) {
            sl = &b[i];
            break;
        }
        if (b[i].ts < sl->ts) sl = &b[i];
    }
    sl->h = h;
    sl->ts = ts;
    sl->score = score;
    pthread_mutex_unlock(&q->lock);
}

/* Logs and publishes a crossing of quality_floor (below = 1: worse than it). */
static void quality_alert(feat_models_t *models, mstate_t *s, int below, double value, size_t window,
                          uint64_t pairs) {
    feat_log(below ? FEAT_LOG_WARN : FEAT_LOG_INFO, "models", "%s: live %s %.4f over the last %zu predictions is %s "
             "model.%s.quality_floor %.4g", s->conf->name, s->binary ? "AUC" : "RMSE", value, window,
             below ? "worse than" : "back within", s->conf->name, s->conf->quality_floor);
    if (!models->bus) return;
    feat_alert_t a = {
        .time_ms = feat_now_ms(),
        .drifting = below,
        .feature = "quality",
        .model = s->conf->name,
        .statistic = s->binary ? "auc" : "rmse",
        .value = value,
        .threshold = s->conf->quality_floor,
        .p_value = NAN,
        .window_size = window,
        .retrain_requested = below && models->conf.retrain_on_quality,
    };
    snprintf(a.id, sizeof(a.id), "%.24s.quality.%llu", s->conf->name, (unsigned long long)pairs);
    feat_alert_publish(models->bus, &a);
}

/* Joins a label with q's prediction of the entity; 1 with value when the
 * quality_floor alert changes state (the champion's window only). */
static int join_label(mstate_t *s, quality_t *q, uint64_t h, int64_t ts, double label, int floor, double *value,
                      size_t *window, uint64_t *pairs);

void feat_models_on_label(feat_models_t *models, uint32_t model, const char *key, size_t klen, int64_t ts,
                          double label) {
    if (!models || model >= models->n) return;
    mstate_t *s = &models->mstates[model];
    atomic_fetch_add(&s->labels_since, 1);
    uint64_t h = khash(key, klen);
    double value = NAN, v2;
    size_t window = 0, w2;
    uint64_t pairs = 0, p2;
    int alert = join_label(s, &s->q, h, ts, label, 1, &value, &window, &pairs);
    join_label(s, &s->qc, h, ts, label, 0, &v2, &w2, &p2);
    if (alert >= 0) quality_alert(models, s, alert, value, window, pairs);
}

static int join_label(mstate_t *s, quality_t *q, uint64_t h, int64_t ts, double label, int floor, double *value_out,
                      size_t *window_out, uint64_t *pairs_out) {
    int alert = -1;
    pthread_mutex_lock(&q->lock);
    qslot_t *b = qbucket(q, h), *sl = NULL;
    for (int i = 0; i < QWAYS && !sl; i++)
        if (b[i].h == h) sl = &b[i];
    if (sl && ts >= sl->ts && ts - sl->ts <= s->conf->quality_horizon_ms) {
        sl->h = 0; /* a prediction joins one label */
        q->p[q->head] = sl->score;
        q->y[q->head] = label;
        q->head = (q->head + 1) % q->cap;
        if (q->n < q->cap) q->n++;
        q->pairs++;
        if (floor) feat_metric_add(s->m_pred_quality, 1);
        size_t need = q->cap < 100 ? q->cap : 100;
        feat_eval_t e;
        if (q->n >= need && q->pairs % 25 == 0 && /* every 25 pairs once the window has 100 (or all) */
            feat_eval_compute(s->binary ? FEAT_TASK_BINARY : FEAT_TASK_REGRESSION, q->p, q->y, q->n, &e) == FEAT_OK) {
            q->value = s->binary ? e.auc : e.rmse;
            int below = s->binary ? q->value < s->conf->quality_floor : q->value > s->conf->quality_floor;
            if (floor && s->conf->quality_floor > 0 && !isnan(q->value) && below != q->below) {
                q->below = below;
                alert = below;
                *value_out = q->value;
                *window_out = q->n;
                *pairs_out = q->pairs;
            }
        }
    }
    pthread_mutex_unlock(&q->lock);
    return alert;
}

void feat_quality_get(quality_t *q, double *value, uint64_t *pairs, size_t *window, uint64_t *version) {
    pthread_mutex_lock(&q->lock);
    *value = q->value;
    *pairs = q->pairs;
    *window = q->n;
    *version = q->version;
    pthread_mutex_unlock(&q->lock);
}
