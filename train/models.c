/*
 * train/models.c — the models object (see models.h): its conf, construction
 * and teardown, its metrics, and the names of its enums.  The registry,
 * engine, live quality and audit have files of their own; what they share is
 * in train/models_internal.h, with the store layout and the locks.
 */
#include "train/models_internal.h"

#include "common/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *feat_trigger_name(int t) {
    static const char *const n[] = {"operator", "schedule", "labels", "drift", "import"};
    return t >= 0 && t <= 4 ? n[t] : "operator";
}

const char *feat_stage_name(int s) {
    return s == FEAT_STAGE_CHAMPION ? "champion" : s == FEAT_STAGE_CHALLENGER ? "challenger" : "archived";
}

void feat_models_conf_from_config(const feat_config_t *cfg, feat_models_conf_t *conf) {
    *conf = (feat_models_conf_t){
        .models = cfg->models,
        .nmodels = cfg->nmodels,
        .sketch_k = (uint32_t)cfg->drift_sketch_k,
        .retrain_on_quality = cfg->drift_enabled && cfg->drift_retrain_on_drift,
    };
}

mstate_t *feat_models_find(feat_models_t *models, const char *model) {
    for (size_t i = 0; model && i < models->n; i++)
        if (!strcmp(models->mstates[i].conf->name, model)) return &models->mstates[i];
    return NULL;
}

/* The gauges: live quality and the champion's version, per model. */
static void collect(feat_metrics_emit_t *em, void *arg) {
    feat_models_t *models = arg;
    char labels[200];
    feat_metrics_emit_family(em, "featd_model_quality", "Live quality of served predictions joined with later labels "
                             "(AUC for classification, RMSE for regression); NaN before enough pairs.", FEAT_METRIC_GAUGE);
    for (size_t i = 0; i < models->n; i++) {
        mstate_t *s = &models->mstates[i];
        snprintf(labels, sizeof(labels), "model=\"%s\",metric=\"%s\"", s->conf->name, s->binary ? "auc" : "rmse");
        feat_metrics_emit_sample(em, labels, feat_quality_value(&s->q));
    }
    feat_metrics_emit_family(em, "featd_model_live_quality", "Live quality per alias: the champion's served "
                             "predictions, and the challenger's (shadow, canary or asked for) joined with later labels; "
                             "NaN before enough pairs.", FEAT_METRIC_GAUGE);
    for (size_t i = 0; i < models->n; i++) {
        mstate_t *s = &models->mstates[i];
        for (int a = 0; a < 2; a++) {
            snprintf(labels, sizeof(labels), "model=\"%s\",alias=\"%s\",metric=\"%s\"", s->conf->name,
                     a ? "challenger" : "champion", s->binary ? "auc" : "rmse");
            feat_metrics_emit_sample(em, labels, feat_quality_value(a ? &s->qc : &s->q));
        }
    }
    feat_metrics_emit_family(em, "featd_model_champion_version", "Version each model serves (0 = none).", FEAT_METRIC_GAUGE);
    for (size_t i = 0; i < models->n; i++) {
        mstate_t *s = &models->mstates[i];
        pthread_mutex_lock(&s->lock);
        double v = (double)s->al.champion;
        pthread_mutex_unlock(&s->lock);
        snprintf(labels, sizeof(labels), "model=\"%s\"", s->conf->name);
        feat_metrics_emit_sample(em, labels, v);
    }
}

/* One model's state, its registry loaded. */
static feat_err_t mstate_init(feat_models_t *models, size_t i, char *errstr, size_t errlen) {
    mstate_t *s = &models->mstates[i];
    s->conf = &models->conf.models[i];
    s->idx = (uint32_t)i;
    s->t = feat_store_table(models->st, s->conf->table);
    s->binary = feat_model_conf_binary(s->conf);
    pthread_mutex_init(&s->reg_lock, NULL);
    pthread_mutex_init(&s->lock, NULL);
    s->last_run_ms = feat_now_ms();
    char labels[100];
    snprintf(labels, sizeof(labels), "model=\"%s\"", s->conf->name);
    s->m_pred_quality = feat_counter(models->metrics, "featd_model_quality_pairs_total",
                                     "Served predictions joined with a later label.", labels);
    if (feat_quality_init(&s->q, (size_t)s->conf->quality_window) != FEAT_OK ||
        feat_quality_init(&s->qc, (size_t)s->conf->quality_window) != FEAT_OK) {
        snprintf(errstr, errlen, "models: out of memory");
        return FEAT_ERR_NOMEM;
    }
    return feat_reg_open(models, s, errstr, errlen);
}

feat_models_t *feat_models_new(const feat_models_conf_t *conf, feat_store_t *st, feat_alert_bus_t *bus,
                               feat_metrics_t *metrics, char *errstr, size_t errlen) {
    feat_models_t *models = calloc(1, sizeof(*models));
    if (!models || !(models->mstates = calloc(conf->nmodels ? conf->nmodels : 1, sizeof(mstate_t)))) {
        free(models);
        snprintf(errstr, errlen, "models: out of memory");
        return NULL;
    }
    models->conf = *conf;
    models->st = st;
    models->bus = bus;
    models->metrics = metrics ? metrics : feat_metrics_global();
    models->next_run = 1;
    pthread_mutex_init(&models->qlock, NULL);
    pthread_cond_init(&models->qcond, NULL);
    for (size_t i = 0; i < conf->nmodels; i++) {
        models->n = i + 1; /* destroy tears down the ones begun */
        if (mstate_init(models, i, errstr, errlen) != FEAT_OK) {
            feat_models_destroy(models);
            return NULL;
        }
    }
    models->m_runs_ok = feat_counter(models->metrics, "featd_training_runs_total", "Training runs by result.",
                                     "result=\"succeeded\"");
    models->m_runs_fail = feat_counter(models->metrics, "featd_training_runs_total", "Training runs by result.",
                                       "result=\"failed\"");
    models->m_coalesced = feat_counter(models->metrics, "featd_training_requests_coalesced_total",
                                       "Retrain requests that joined a run already queued or running.", NULL);
    models->m_swaps = feat_counter(models->metrics, "featd_model_swaps_total",
                                   "Champion changes (promote, rollback, auto).", NULL);
    feat_metrics_add_collector(models->metrics, collect, models);
    return models;
}

void feat_models_destroy(feat_models_t *models) {
    if (!models) return;
    feat_models_stop(models);
    feat_metrics_remove_collector(models->metrics, collect, models);
    for (size_t i = 0; i < models->n; i++) {
        mstate_t *s = &models->mstates[i];
        feat_reg_close(s);
        feat_quality_free(&s->q);
        feat_quality_free(&s->qc);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->reg_lock);
    }
    free(models->mstates);
    for (size_t i = 0; i < FEAT_MODELS_MAX_RUNS; i++) feat_model_destroy(models->runs[i].imported); /* queued imports */
    pthread_mutex_destroy(&models->qlock);
    pthread_cond_destroy(&models->qcond);
    free(models);
}
