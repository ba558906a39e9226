/*
 * train/engine.c — the retrain engine (see models.h): requests and their
 * coalescing, the triggers (schedule, new labels, alerts), and the runs, one
 * at a time on the engine thread: training set, training, evaluation against
 * the champion, and registration of the new version (registry.c).
 *
 * Threads: requests and status reads come from any thread and take
 * models->qlock; a run's status is written under it too.  Everything else of
 * a run (and last_run_ms, and the version numbering) belongs to the engine
 * thread.
 */
#include "train/gbdt.h"
#include "train/models_internal.h"
#include "train/trainset.h"

#include "common/clock.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/worker.h"
#include "stats/catfreq.h"
#include "stats/kll.h"
#include "train/core/metrics.h"
#include "train/core/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *feat_run_state_name(int state) {
    static const char *const n[] = {"queued", "running", "succeeded", "failed"};
    return state >= 0 && state <= FEAT_RUN_FAILED ? n[state] : "queued";
}

/* ---- requests and statuses ------------------------------------------------------------------ */

static run_t *run_at(feat_models_t *models, size_t i) {
    return &models->runs[(models->rhead + i) % FEAT_MODELS_MAX_RUNS];
}

/* Queues a run of s (qlock held); imported: an import's model (the run owns
 * it once queued).  0 when the ring is full of runs not finished. */
static uint64_t enqueue(feat_models_t *models, mstate_t *s, feat_trigger_t trigger, const char *reason,
                        feat_model_t *imported) {
    if (models->nruns == FEAT_MODELS_MAX_RUNS) { /* forget the oldest run, if it finished */
        int st = run_at(models, 0)->st.state;
        if (st == FEAT_RUN_QUEUED || st == FEAT_RUN_RUNNING) return 0;
        models->rhead = (models->rhead + 1) % FEAT_MODELS_MAX_RUNS;
        models->nruns--;
    }
    run_t *r = run_at(models, models->nruns++);
    memset(r, 0, sizeof(*r));
    r->midx = s->idx;
    r->st.run_id = models->next_run++;
    r->st.state = FEAT_RUN_QUEUED;
    snprintf(r->st.model, sizeof(r->st.model), "%s", s->conf->name);
    snprintf(r->st.phase, sizeof(r->st.phase), "waiting");
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
    r->st.trigger = trigger;
    r->imported = imported;
    /* A drift alert is raised while ingest builds the batch that closed the
     * window, before that batch is committed: the run starts a second later,
     * so that its training set holds the data that drifted. */
    r->not_before_ms = trigger == FEAT_TRIGGER_DRIFT ? feat_now_ms() + 1000 : 0;
    pthread_cond_signal(&models->qcond);
    return r->st.run_id;
}

feat_err_t feat_models_import_file(feat_models_t *models, const char *model, const char *format, const void *data,
                                   size_t len, const char *const *features, size_t nfeatures, const char *source,
                                   uint64_t *run_id, char *err, size_t errlen) {
    mstate_t *s = feat_models_find(models, model);
    if (!s) {
        snprintf(err, errlen, "unknown model \"%.64s\"", model ? model : "");
        return FEAT_ERR_NOT_FOUND;
    }
    if (!format || strcmp(format, "xgboost-json")) {
        snprintf(err, errlen, "unknown format \"%.32s\" (featd imports xgboost-json)", format ? format : "");
        return FEAT_ERR_INVALID;
    }
    if (len > FEAT_IMPORT_MAX) { /* the JSON reader needs about 12 bytes of tokens a byte */
        snprintf(err, errlen, "a model file of %zu bytes; featd imports at most %u MiB", len, FEAT_IMPORT_MAX >> 20);
        return FEAT_ERR_TOO_LARGE;
    }
    feat_model_t *m = NULL;
    feat_err_t rc = feat_import_xgboost(models, s, data, len, features, nfeatures, &m, err, errlen);
    if (rc) return rc;
    char why[128];
    snprintf(why, sizeof(why), "%.70s (xgboost-json, %zu trees)", source && *source ? source : "a file",
             feat_trees_ntrees(feat_model_trees(m)));
    pthread_mutex_lock(&models->qlock);
    *run_id = enqueue(models, s, FEAT_TRIGGER_IMPORT, why, m);
    pthread_mutex_unlock(&models->qlock);
    if (!*run_id) {
        feat_model_destroy(m);
        snprintf(err, errlen, "%d runs are queued or running; try again when some have finished",
                 FEAT_MODELS_MAX_RUNS);
        return FEAT_ERR_UNAVAILABLE;
    }
    feat_log(FEAT_LOG_INFO, "models", "%s: import of %s queued (run %llu)", s->conf->name, why,
             (unsigned long long)*run_id);
    return FEAT_OK;
}

feat_err_t feat_models_request(feat_models_t *models, const char *model, feat_trigger_t trigger, const char *reason,
                               uint64_t *run_id, int *coalesced) {
    mstate_t *s = feat_models_find(models, model);
    if (!s) return FEAT_ERR_NOT_FOUND;
    pthread_mutex_lock(&models->qlock);
    for (size_t i = 0; i < models->nruns; i++) {
        run_t *r = run_at(models, i);
        /* a drift request never joins a run already running: that run's set lacks the data that drifted */
        if (r->midx == s->idx && r->st.trigger != FEAT_TRIGGER_IMPORT &&
            (r->st.state == FEAT_RUN_QUEUED || (r->st.state == FEAT_RUN_RUNNING && trigger != FEAT_TRIGGER_DRIFT))) {
            if (trigger == FEAT_TRIGGER_DRIFT && r->not_before_ms < feat_now_ms() + 1000)
                r->not_before_ms = feat_now_ms() + 1000; /* see enqueue() */
            *run_id = r->st.run_id;
            *coalesced = 1;
            size_t have = strlen(r->reason); /* a run not started yet names every reason that joined it */
            if (r->st.state == FEAT_RUN_QUEUED && reason && *reason && !strstr(r->reason, reason) &&
                have + 2 + strlen(reason) < sizeof(r->reason))
                snprintf(r->reason + have, sizeof(r->reason) - have, "%s%s", have ? "; " : "", reason);
            pthread_mutex_unlock(&models->qlock);
            feat_metric_add(models->m_coalesced, 1);
            return FEAT_OK;
        }
    }
    *run_id = enqueue(models, s, trigger, reason, NULL);
    *coalesced = 0;
    pthread_mutex_unlock(&models->qlock);
    if (!*run_id) {
        feat_log(FEAT_LOG_WARN, "models", "%s: retrain asked for by %s not queued: %d runs are queued or running",
                 s->conf->name, feat_trigger_name(trigger), FEAT_MODELS_MAX_RUNS);
        return FEAT_ERR_UNAVAILABLE;
    }
    feat_log(FEAT_LOG_INFO, "models", "%s: retrain requested by %s%s%s (run %llu)", s->conf->name,
             feat_trigger_name(trigger), reason && *reason ? ": " : "", reason ? reason : "", (unsigned long long)*run_id);
    return FEAT_OK;
}

feat_err_t feat_models_run_status(feat_models_t *models, const char *model, uint64_t run_id, feat_run_status_t *out) {
    feat_err_t rc = FEAT_ERR_NOT_FOUND;
    pthread_mutex_lock(&models->qlock);
    for (size_t i = models->nruns; i-- > 0;) {
        run_t *r = run_at(models, i);
        if ((model && *model && strcmp(r->st.model, model)) || (run_id && r->st.run_id != run_id)) continue;
        *out = r->st;
        rc = FEAT_OK;
        break;
    }
    pthread_mutex_unlock(&models->qlock);
    return rc;
}

void feat_models_alert_sink(void *arg, const feat_alert_t *a) {
    feat_models_t *models = arg;
    if (!a->retrain_requested || !a->drifting) return;
    char why[128];
    snprintf(why, sizeof(why), "drift on %s.%s (%s %.3g)", a->table ? a->table : (a->model ? a->model : ""), a->feature,
             a->statistic, a->value);
    for (size_t i = 0; i < models->n; i++) {
        const feat_model_conf_t *mc = models->mstates[i].conf;
        int uses = a->table ? !strcmp(mc->table, a->table) : a->model && !strcmp(mc->name, a->model);
        if (uses && a->table) { /* a table's feature: only models that read it */
            uses = 0;
            for (size_t j = 0; j < mc->nfeatures && !uses; j++) uses = !strcmp(mc->features[j], a->feature);
        }
        if (!uses) continue;
        uint64_t id;
        int co;
        feat_models_request(models, mc->name, FEAT_TRIGGER_DRIFT, why, &id, &co);
    }
}

/* ---- a run ---------------------------------------------------------------------------------- */

typedef struct run_ctx {
    feat_models_t *models;
    run_t *r;               /* its status is guarded by models->qlock */
    mstate_t *s;
    int64_t now;            /* when it started (ms since the epoch) */
    uint64_t t0;            /* ...on the monotonic clock (ns) */
    uint64_t epochs_done, epochs_total;
    char err[256];          /* why it failed ("" = feat_err_str of the code) */
} run_ctx_t;

/* What a run learned about its model, for the metadata and the log. */
typedef struct outcome {
    feat_train_report_t rep;
    feat_eval_t champ;      /* the champion on the same validation rows */
    double champ_metric;    /* its AUC or RMSE there; NaN: not comparable */
    double mine;            /* the new model's */
    int better;             /* beats the champion by model.*.promote_margin (or there is none comparable) */
    feat_feature_def_t *defs; /* an import's features (malloc'd; names borrowed from its model), else NULL */
} outcome_t;

static void set_phase(run_ctx_t *c, const char *phase, double progress) {
    pthread_mutex_lock(&c->models->qlock);
    snprintf(c->r->st.phase, sizeof(c->r->st.phase), "%s", phase);
    c->r->st.progress = progress;
    pthread_mutex_unlock(&c->models->qlock);
}

static void ts_progress(void *arg, uint64_t done, uint64_t total) {
    run_ctx_t *c = arg;
    pthread_mutex_lock(&c->models->qlock);
    c->r->st.progress = total ? 0.3 * (double)done / (double)total : 0;
    pthread_mutex_unlock(&c->models->qlock);
}

static int cancelled(void *arg) { return atomic_load(&((run_ctx_t *)arg)->models->cancel); }

/* Called by the trainer between epochs: progress through training. */
static int epoch_tick(void *arg) {
    run_ctx_t *c = arg;
    c->epochs_done++;
    pthread_mutex_lock(&c->models->qlock);
    double f = c->epochs_total ? (double)c->epochs_done / (double)c->epochs_total : 1;
    c->r->st.progress = 0.3 + 0.55 * (f > 1 ? 1 : f);
    pthread_mutex_unlock(&c->models->qlock);
    return cancelled(arg);
}

/* 1 when this instance trains s (always outside a cluster), else 0 with
 * why set. */
static int is_trainer(feat_models_t *models, mstate_t *s, char *why, size_t len) {
    if (!models->cl.trainer) return 1;
    char who[256];
    int r = models->cl.trainer(models->cl.arg, s->idx, who, sizeof(who));
    if (r == 1) return 1;
    if (r == 0) snprintf(why, len, "instance %.100s trains model %s in this cluster; ask it", who, s->conf->name);
    else snprintf(why, len, "no instance holds partition 0 of %.80s yet (its owner trains model %s)",
                  s->conf->label_topic, s->conf->name);
    return 0;
}

/* The model's labelled rows within train_window, at least min_rows of them. */
static feat_err_t build_set(run_ctx_t *c, feat_trainset_t *tset, int any_rows) {
    const feat_model_conf_t *mc = c->s->conf;
    set_phase(c, "building training set", 0);
    feat_models_t *models = c->models;
    feat_trainset_cb_t cb = {ts_progress, cancelled, c, NULL, NULL};
    int64_t from = mc->train_window_ms ? c->now - mc->train_window_ms : INT64_MIN;
    feat_err_t rc = models->cl.build
                        ? models->cl.build(models->cl.arg, c->s->idx, from, c->now, &cb, tset, c->err, sizeof(c->err))
                        : feat_trainset_build(models->st, mc, from, c->now, &cb, tset, c->err, sizeof(c->err));
    if (rc) return rc;
    if (models->cl.build && feat_trainset_sort(tset)) { /* rows of several stores: one store's order */
        snprintf(c->err, sizeof(c->err), "out of memory sorting the training set");
        feat_trainset_free(tset);
        return FEAT_ERR_NOMEM;
    }
    if (!any_rows && (int64_t)tset->n < mc->min_rows) {
        snprintf(c->err, sizeof(c->err), "only %zu labelled rows; model.%s.min_rows is %lld", tset->n, mc->name,
                 (long long)mc->min_rows);
        feat_trainset_free(tset);
        return FEAT_ERR_STATE;
    }
    return FEAT_OK;
}

/* The trainer's configuration from the model's section: a grid where a list
 * has more than one value. */
static void train_conf(run_ctx_t *c, feat_train_conf_t *tc) {
    const feat_model_conf_t *mc = c->s->conf;
    feat_train_conf_init(tc);
    tc->kind = !strcmp(mc->task, "linreg") ? FEAT_MODEL_LINREG
               : !strcmp(mc->task, "mlp")  ? FEAT_MODEL_MLP
               : feat_model_conf_trees(mc) ? FEAT_MODEL_TREES
                                           : FEAT_MODEL_LOGREG;
    tc->learner = feat_gbdt_learner();
    tc->task = c->s->binary ? FEAT_TASK_BINARY : FEAT_TASK_REGRESSION;
    tc->hyper.learning_rate = mc->lr[0];
    tc->hyper.l2 = mc->l2[0];
    tc->hyper.epochs = mc->epochs[0];
    tc->hyper.hidden = mc->hidden[0];
    tc->hyper.batch_size = (uint32_t)mc->batch_size;
    tc->hyper.trees = mc->trees[0];
    tc->hyper.max_depth = mc->max_depth[0];
    tc->hyper.subsample = mc->subsample;
    tc->hyper.min_child_weight = mc->min_child_weight;
    tc->hyper.early_stopping = (uint32_t)mc->early_stopping;
    int mlp = tc->kind == FEAT_MODEL_MLP;
    if (mc->nlr > 1) { tc->grid.learning_rate = mc->lr; tc->grid.n_learning_rate = mc->nlr; }
    if (mc->nl2 > 1) { tc->grid.l2 = mc->l2; tc->grid.n_l2 = mc->nl2; }
    if (mc->nepochs > 1) { tc->grid.epochs = mc->epochs; tc->grid.n_epochs = mc->nepochs; }
    if (mc->nhidden > 1 && mlp) { tc->grid.hidden = mc->hidden; tc->grid.n_hidden = mc->nhidden; }
    int trees = tc->kind == FEAT_MODEL_TREES;
    if (trees) { /* epochs mean nothing to trees; rounds and depth make their grid */
        tc->grid.epochs = NULL;
        tc->grid.n_epochs = 0;
        if (mc->ntrees > 1) { tc->grid.trees = mc->trees; tc->grid.n_trees = mc->ntrees; }
        if (mc->nmax_depth > 1) { tc->grid.max_depth = mc->max_depth; tc->grid.n_max_depth = mc->nmax_depth; }
    }
    tc->prep.top_k = (uint32_t)mc->top_k;
    tc->valid_fraction = mc->valid_fraction;
    tc->backend = !strcmp(mc->device, "cpu") ? FEAT_BACKEND_CPU : !strcmp(mc->device, "gpu") ? FEAT_BACKEND_GPU : FEAT_BACKEND_AUTO;
    tc->label_name = mc->name;
    tc->cancel = epoch_tick;
    tc->cancel_arg = c;
    /* epochs over every configuration, for progress */
    uint64_t configs = (mc->nlr > 1 ? mc->nlr : 1) * (mc->nl2 > 1 ? mc->nl2 : 1) * (mc->nhidden > 1 && mlp ? mc->nhidden : 1);
    uint64_t ep = 0;
    for (size_t i = 0; i < mc->nepochs; i++) ep += mc->epochs[i];
    c->epochs_total = configs * (mc->nepochs > 1 ? ep : mc->epochs[0]);
    if (trees) { /* rounds (at most) over every configuration: the learner polls once a round */
        uint64_t rounds = 0;
        for (size_t i = 0; i < mc->ntrees; i++) rounds += mc->trees[i];
        c->epochs_total = configs * (mc->nmax_depth > 1 ? mc->nmax_depth : 1) * rounds;
    }
}

static feat_err_t train(run_ctx_t *c, const feat_trainset_t *tset, feat_model_t **model, feat_train_report_t *rep) {
    set_phase(c, "training", 0.3);
    feat_train_conf_t tc;
    train_conf(c, &tc);
    memset(rep, 0, sizeof(*rep));
    feat_train_data_t td = {tset->defs, tset->nf, tset->rows, tset->labels, tset->n};
    return feat_train(&tc, &td, model, rep, c->err, sizeof(c->err));
}

/* tset's rows [first, first + n) in m's feature order: tset's own rows when
 * m reads tset's features in order, else a copy in *own (free it); NULL when
 * m reads a feature tset lacks, or out of memory. */
static const feat_raw_t *rows_for(const feat_trainset_t *tset, const feat_model_t *m, size_t first, size_t n,
                                  feat_raw_t **own) {
    *own = NULL;
    size_t mf = feat_model_info(m)->n_features;
    int same = mf == tset->nf;
    for (size_t j = 0; same && j < mf; j++) same = !strcmp(feat_model_feature_name(m, j), tset->defs[j].name);
    if (same) return tset->rows + first * tset->nf;
    size_t *col = malloc((mf ? mf : 1) * sizeof(size_t));
    if (!col) return NULL;
    for (size_t j = 0; j < mf; j++) {
        for (col[j] = 0; col[j] < tset->nf && strcmp(tset->defs[col[j]].name, feat_model_feature_name(m, j)); col[j]++) {}
        if (col[j] == tset->nf) {
            free(col);
            return NULL;
        }
    }
    if ((*own = malloc((n * mf + 1) * sizeof(feat_raw_t))))
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < mf; j++) (*own)[i * mf + j] = tset->rows[(first + i) * tset->nf + col[j]];
    free(col);
    return *own;
}

/* m's predictions of tset's rows [first, first + n) into pred. */
static feat_err_t predict_rows(const feat_trainset_t *tset, const feat_model_t *m, size_t first, size_t n,
                               double *pred) {
    if (!n) return FEAT_OK;
    feat_raw_t *own;
    const feat_raw_t *rows = rows_for(tset, m, first, n, &own);
    feat_err_t rc = rows ? feat_model_predict_batch(m, rows, n, NULL, 0, pred) : FEAT_ERR_INVALID;
    free(own);
    return rc;
}

/* An import's report, as training would have written it: its metrics on the
 * set's time split (what the champion comparison uses) and its features. */
static feat_err_t score_import(run_ctx_t *c, const feat_trainset_t *tset, const feat_model_t *m, outcome_t *o) {
    set_phase(c, "scoring the imported model", 0.5);
    feat_train_report_t *rep = &o->rep;
    memset(rep, 0, sizeof(*rep));
    feat_eval_clear(&rep->train);
    feat_eval_clear(&rep->valid);
    const feat_model_info_t *in = feat_model_info(m);
    size_t nv = (size_t)floor((double)tset->n * c->s->conf->valid_fraction), nt = tset->n - nv;
    rep->backend = FEAT_BACKEND_CPU;
    rep->n_train = nt;
    rep->n_valid = nv;
    rep->input_dim = in->input_dim;
    snprintf(rep->note, sizeof(rep->note), "imported: trained outside featd");
    if (!(o->defs = malloc(in->n_features * sizeof(*o->defs)))) return FEAT_ERR_NOMEM;
    for (size_t j = 0; j < in->n_features; j++)
        o->defs[j] = (feat_feature_def_t){feat_model_feature_name(m, j), feat_model_feature_type(m, j)};
    double *pred = malloc((tset->n ? tset->n : 1) * sizeof(double));
    feat_err_t rc = pred ? predict_rows(tset, m, 0, tset->n, pred) : FEAT_ERR_NOMEM;
    feat_task_t task = c->s->binary ? FEAT_TASK_BINARY : FEAT_TASK_REGRESSION;
    if (!rc && nt) feat_eval_compute(task, pred, tset->labels, nt, &rep->train);
    if (!rc && nv) feat_eval_compute(task, pred + nt, tset->labels + nt, nv, &rep->valid);
    free(pred);
    if (rc) snprintf(c->err, sizeof(c->err), "scoring the imported model: %s", feat_err_str(rc));
    return rc;
}

/* The champion's metric on rows (the challenger's validation window), if
 * the champion reads features the set has.  NaN when not comparable. */
static double champion_metric(mstate_t *s, const feat_trainset_t *tset, size_t first, size_t n, feat_eval_t *out) {
    feat_eval_clear(out);
    pthread_mutex_lock(&s->lock);
    feat_loaded_t *ch = feat_loaded_ref(s->champion);
    pthread_mutex_unlock(&s->lock);
    if (!ch || !n) {
        feat_loaded_release(ch);
        return NAN;
    }
    double v = NAN;
    const feat_model_t *m = ch->m;
    double *pred = malloc(n * sizeof(double));
    if (pred && predict_rows(tset, m, first, n, pred) == FEAT_OK &&
        feat_eval_compute(s->binary ? FEAT_TASK_BINARY : FEAT_TASK_REGRESSION, pred, tset->labels + first, n, out) == FEAT_OK)
        v = s->binary ? out->auc : out->rmse;
    free(pred);
    feat_loaded_release(ch);
    return v;
}

/* The model's predictions on the whole set (*pred, for the prediction
 * reference) and its comparison with the champion. */
static feat_err_t evaluate(run_ctx_t *c, const feat_trainset_t *tset, const feat_model_t *model, outcome_t *o,
                           double **pred) {
    mstate_t *s = c->s;
    set_phase(c, "evaluating", 0.85);
    if (!(*pred = malloc((tset->n ? tset->n : 1) * sizeof(double)))) return FEAT_ERR_NOMEM;
    feat_err_t rc = predict_rows(tset, model, 0, tset->n, *pred);
    if (rc) {
        snprintf(c->err, sizeof(c->err), "predicting the training set: %s", feat_err_str(rc));
        return rc;
    }
    o->champ_metric = champion_metric(s, tset, o->rep.n_train, o->rep.n_valid, &o->champ);
    o->mine = s->binary ? o->rep.valid.auc : o->rep.valid.rmse;
    double margin = s->conf->promote_margin;
    o->better = isnan(o->mine)         ? 0 /* an import scored on no validation rows wins nothing */
                : isnan(o->champ_metric) ? 1
                : s->binary            ? o->mine >= o->champ_metric + margin
                                       : o->mine <= o->champ_metric * (1 - margin);
    return FEAT_OK;
}

/* Sketches of the training set, per feature and of the predictions, into wb. */
static feat_err_t build_references(feat_models_t *models, mstate_t *s, uint64_t version, const feat_trainset_t *tset,
                                   const double *pred, feat_wb_t *wb) {
    char key[512];
    for (size_t j = 0; j <= tset->nf; j++) {
        int categorical = j < tset->nf && (tset->defs[j].type == FEAT_FT_STRING || tset->defs[j].type == FEAT_FT_BOOL);
        const char *fname = j < tset->nf ? tset->defs[j].name : "prediction";
        feat_err_t e = FEAT_OK;
        feat_kll_t *kll = NULL;
        feat_catfreq_t *cf = NULL;
        if (categorical) cf = feat_catfreq_new(64, 0, 32, &e);
        else kll = feat_kll_new(models->conf.sketch_k, feat_hash64(fname, strlen(fname)) ^ version, &e);
        if (e) return e;
        size_t nonempty = 0;
        for (size_t i = 0; i < tset->n; i++) {
            if (j == tset->nf) {
                feat_kll_update(kll, pred[i]);
                nonempty++;
                continue;
            }
            const feat_raw_t *v = &tset->rows[i * tset->nf + j];
            switch (v->type) {
            case FEAT_V_DOUBLE: if (kll && isfinite(v->v.f64)) { feat_kll_update(kll, v->v.f64); nonempty++; } break;
            case FEAT_V_INT64: if (kll) { feat_kll_update(kll, (double)v->v.i64); nonempty++; } break;
            case FEAT_V_BOOL: if (cf) { feat_catfreq_add(cf, v->v.b ? "true" : "false", v->v.b ? 4 : 5, 1); nonempty++; } break;
            case FEAT_V_STRING: if (cf) { feat_catfreq_add(cf, v->v.str, v->len, 1); nonempty++; } break;
            default: break;
            }
        }
        if (nonempty) {
            size_t sz = categorical ? feat_catfreq_serialized_size(cf) : feat_kll_serialized_size(kll), w = 0;
            unsigned char *buf = malloc(sz + 1);
            if (!buf) e = FEAT_ERR_NOMEM;
            else {
                buf[0] = (unsigned char)categorical;
                e = categorical ? feat_catfreq_serialize(cf, buf + 1, sz, &w) : feat_kll_serialize(kll, buf + 1, sz, &w);
                size_t kl = feat_reg_rkey(key, sizeof(key), s->conf->name, version, fname);
                if (!e && kl) e = feat_wb_put_blob(wb, FEAT_CF_REFERENCES, key, kl, buf, w + 1);
                free(buf);
            }
        }
        feat_kll_destroy(kll);
        feat_catfreq_destroy(cf);
        if (e) return e;
    }
    return FEAT_OK;
}

/* The new version's metadata. */
static void fill_meta(run_ctx_t *c, const feat_trainset_t *tset, const feat_model_t *model, const outcome_t *o,
                      uint64_t version, uint64_t champion, vmeta_t *m) {
    const feat_model_conf_t *mc = c->s->conf;
    const feat_train_report_t *rep = &o->rep;
    *m = (vmeta_t){
        .model = mc->name,
        .version = version,
        .created_ms = c->now,
        .trigger = c->r->st.trigger,
        .reason = c->r->reason,
        .task = !o->defs ? mc->task : c->s->binary ? "gbdt_classifier" : "gbdt_regressor",
        .table = mc->table,
        .features = o->defs ? o->defs : tset->defs,
        .nfeatures = o->defs ? feat_model_info(model)->n_features : tset->nf,
        .hyper = feat_model_info(model)->hyper,
        .configs_tried = rep->n_configs,
        .input_dim = rep->input_dim,
        .top_k = mc->top_k,
        .train = rep->train,
        .valid = rep->valid,
        .champion = o->champ,
        .champion_version = champion,
        .beats_champion = isnan(o->champ_metric) ? -1 : o->better,
        .from_ms = tset->from_ms,
        .to_ms = tset->to_ms,
        .rows = tset->n,
        .train_rows = rep->n_train,
        .validation_rows = rep->n_valid,
        .missing_values = tset->missing,
        .device = rep->backend == FEAT_BACKEND_GPU ? "gpu" : "cpu",
        .device_note = rep->note,
        .train_seconds = rep->train_seconds,
        .rows_per_second = rep->rows_per_second,
        .run_seconds = (double)(feat_mono_ns() - c->t0) / 1e9,
    };
}

/* The version's record (header, metadata document, model blob) and its
 * references, into wb. */
static feat_err_t build_batch(run_ctx_t *c, const feat_trainset_t *tset, const double *pred, const feat_model_t *model,
                              const feat_buf_t *doc, uint64_t version, feat_wb_t *wb) {
    void *blob = NULL;
    size_t blen = 0;
    feat_err_t rc = doc->oom ? FEAT_ERR_NOMEM : feat_model_serialize(model, &blob, &blen);
    feat_buf_t rec = FEAT_BUF_INIT;
    if (!rc) {
        unsigned char h[5] = {1};
        feat_put_le32(h + 1, (uint32_t)doc->len);
        feat_buf_append(&rec, h, 5);
        feat_buf_append(&rec, doc->data, doc->len);
        feat_buf_append(&rec, blob, blen);
        char key[FEAT_MAX_NAME + 16];
        rc = rec.oom ? FEAT_ERR_NOMEM
                     : feat_wb_put_blob(wb, FEAT_CF_MODELS, key, feat_reg_vkey(key, c->s->conf->name, version), rec.data,
                                        rec.len);
    }
    free(blob);
    feat_buf_free(&rec);
    if (!rc) rc = build_references(c->models, c->s, version, tset, pred, wb);
    return rc;
}

/* Registers model (consumed) as the model's next version: one batch of its
 * record, references and the aliases. */
static feat_err_t register_version(run_ctx_t *c, const feat_trainset_t *tset, const double *pred, feat_model_t *model,
                                   const outcome_t *o, uint64_t *version, int *promoted) {
    mstate_t *s = c->s;
    set_phase(c, "registering", 0.92);
    pthread_mutex_lock(&s->reg_lock);
    *version = s->al.next; /* only this thread numbers versions: it stays the next */
    uint64_t champion = s->al.champion;
    pthread_mutex_unlock(&s->reg_lock);
    vmeta_t meta;
    fill_meta(c, tset, model, o, *version, champion, &meta);
    feat_buf_t doc = FEAT_BUF_INIT;
    feat_meta_json(&meta, &doc);
    feat_wb_t *wb = feat_wb_new(c->models->st);
    feat_err_t rc = wb ? build_batch(c, tset, pred, model, &doc, *version, wb) : FEAT_ERR_NOMEM;
    vinfo_t info;
    if (!rc) rc = feat_vinfo_from_meta(&info, &meta, doc.data, doc.len);
    feat_buf_free(&doc);
    if (rc) {
        snprintf(c->err, sizeof(c->err), "registering: %s", feat_err_str(rc));
        feat_model_destroy(model);
    } else {
        /* promote_on live or both: the challenger waits for live labels (check_live) */
        int beats = !strcmp(s->conf->policy, "auto") && !strcmp(s->conf->promote_on, "validation") && o->better;
        rc = feat_reg_install(c->models, s, *version, model, &info, wb, beats, promoted, c->err, sizeof(c->err));
    }
    feat_wb_destroy(wb);
    return rc;
}

/* Records the run's end: its status, counters and a log line. */
static void finish(run_ctx_t *c, feat_err_t rc, uint64_t version, int promoted, const outcome_t *o) {
    feat_models_t *models = c->models;
    mstate_t *s = c->s;
    const char *why = c->err[0] ? c->err : feat_err_str(rc);
    s->last_run_ms = c->now;
    if (rc) {
        feat_metric_add(models->m_runs_fail, 1);
        feat_log(FEAT_LOG_WARN, "models", "%s: training run %llu failed: %s", s->conf->name,
                 (unsigned long long)c->r->st.run_id, why);
    } else {
        atomic_store(&s->labels_since, 0);
        feat_metric_add(models->m_runs_ok, 1);
        int none = isnan(o->champ_metric);
        feat_log(FEAT_LOG_INFO, "models", "%s v%llu registered as %s: validation %s %.4f on %zu rows (%s %.4f), %zu "
                 "training rows, %.2f s on %s", s->conf->name, (unsigned long long)version,
                 promoted ? "champion" : "challenger", s->binary ? "AUC" : "RMSE", o->mine, o->rep.n_valid,
                 none ? "no comparable champion" : "champion", none ? 0.0 : o->champ_metric, o->rep.n_train,
                 o->rep.train_seconds, o->rep.backend == FEAT_BACKEND_GPU ? "GPU" : "CPU");
    }
    pthread_mutex_lock(&models->qlock);
    run_t *r = c->r;
    if (rc) {
        r->st.state = FEAT_RUN_FAILED;
        snprintf(r->st.error, sizeof(r->st.error), "%s", why);
    } else {
        r->st.state = FEAT_RUN_SUCCEEDED;
        snprintf(r->st.phase, sizeof(r->st.phase), "done");
        r->st.progress = 1;
        r->st.version = version;
    }
    pthread_mutex_unlock(&models->qlock);
}

static void do_run(feat_models_t *models, run_t *r) {
    run_ctx_t c = {.models = models, .r = r, .s = &models->mstates[r->midx], .now = feat_now_ms(), .t0 = feat_mono_ns()};
    feat_trainset_t tset;
    feat_model_t *model = NULL;
    outcome_t o;
    memset(&o, 0, sizeof(o));
    double *pred = NULL;
    uint64_t version = 0;
    int promoted = 0;
    pthread_mutex_lock(&models->qlock);
    feat_model_t *imported = r->imported; /* the run owns it from here */
    r->imported = NULL;
    pthread_mutex_unlock(&models->qlock);
    feat_err_t rc = is_trainer(models, c.s, c.err, sizeof(c.err)) ? build_set(&c, &tset, imported != NULL)
                                                                  : FEAT_ERR_STATE;
    if (rc) feat_model_destroy(imported);
    if (!rc) {
        if (imported) {
            model = imported;
            rc = score_import(&c, &tset, model, &o);
        } else {
            rc = train(&c, &tset, &model, &o.rep);
        }
        if (!rc) rc = evaluate(&c, &tset, model, &o, &pred);
        if (!rc && !is_trainer(models, c.s, c.err, sizeof(c.err))) { /* the map changed during the run */
            feat_model_destroy(model);
            rc = FEAT_ERR_STATE;
        } else if (!rc) {
            rc = register_version(&c, &tset, pred, model, &o, &version, &promoted); /* consumes model */
        }
        else feat_model_destroy(model);
        free(pred);
        feat_trainset_free(&tset);
    }
    finish(&c, rc, version, promoted, &o);
    free(o.defs);
}

/* ---- the engine thread ------------------------------------------------------------------------ */

/* 1 when the challenger's registration found it better than the champion on
 * its validation rows (its metadata's beats_champion). */
static int beat_on_validation(mstate_t *s, uint64_t challenger) {
    int yes = 0;
    pthread_mutex_lock(&s->reg_lock);
    for (size_t i = 0; i < s->nv; i++)
        if (s->v[i].version == challenger) yes = s->v[i].json && strstr(s->v[i].json, "\"beats_champion\":true") != NULL;
    pthread_mutex_unlock(&s->reg_lock);
    return yes;
}

/* promote_on live or both (policy auto): promotes the challenger once both
 * aliases have promote_min_labels labelled predictions of their own versions
 * and the challenger's live AUC (RMSE) beats the champion's by promote_margin. */
static void check_live(feat_models_t *models, mstate_t *s) {
    const feat_model_conf_t *mc = s->conf;
    if (strcmp(mc->policy, "auto") || !strcmp(mc->promote_on, "validation")) return;
    pthread_mutex_lock(&s->lock);
    uint64_t champion = s->al.champion, challenger = s->al.challenger;
    pthread_mutex_unlock(&s->lock);
    if (!champion || !challenger) return;
    double vc, vh;
    uint64_t pc, ph, verc, verh;
    size_t wc, wh;
    feat_quality_get(&s->q, &vc, &pc, &wc, &verc);
    feat_quality_get(&s->qc, &vh, &ph, &wh, &verh);
    uint64_t need = (uint64_t)mc->promote_min_labels;
    if (verc != champion || verh != challenger || pc < need || ph < need || isnan(vc) || isnan(vh)) return;
    double m = mc->promote_margin;
    int better = s->binary ? vh >= vc + m : vh <= vc * (1 - m);
    if (!better || (!strcmp(mc->promote_on, "both") && !beat_on_validation(s, challenger))) return;
    uint64_t now_champion;
    char msg[256];
    if (feat_models_promote(models, mc->name, challenger, &now_champion, msg, sizeof(msg)) == FEAT_OK)
        feat_log(FEAT_LOG_INFO, "models", "%s: v%llu promoted on live labels: %s %.4f over %zu labelled predictions "
                 "against the champion v%llu's %.4f over %zu", mc->name, (unsigned long long)challenger,
                 s->binary ? "AUC" : "RMSE", vh, wh, (unsigned long long)champion, vc, wc);
    else
        feat_log(FEAT_LOG_WARN, "models", "%s: promoting v%llu on live labels failed: %s", mc->name,
                 (unsigned long long)challenger, msg);
}

static void check_triggers(feat_models_t *models) {
    int64_t now = feat_now_ms();
    for (size_t i = 0; i < models->n; i++) {
        mstate_t *s = &models->mstates[i];
        const feat_model_conf_t *mc = s->conf;
        uint64_t id;
        int co;
        char skip[256];
        if (!is_trainer(models, s, skip, sizeof(skip))) { /* the trainer's triggers fire, not ours */
            s->last_run_ms = now;
            atomic_store(&s->labels_since, 0);
            continue;
        }
        check_live(models, s);
        if (mc->retrain_every_ms > 0 && now - s->last_run_ms >= mc->retrain_every_ms) {
            s->last_run_ms = now; /* one request per period, whatever its outcome */
            feat_models_request(models, mc->name, FEAT_TRIGGER_SCHEDULE, "retrain_every", &id, &co);
        }
        if (mc->retrain_after_labels > 0 && atomic_load(&s->labels_since) >= (uint64_t)mc->retrain_after_labels) {
            atomic_store(&s->labels_since, 0);
            char why[64];
            snprintf(why, sizeof(why), "%lld new labels", (long long)mc->retrain_after_labels);
            feat_models_request(models, mc->name, FEAT_TRIGGER_LABELS, why, &id, &co);
        }
    }
}

static void *engine(void *arg) {
    feat_models_t *models = arg;
    pthread_mutex_lock(&models->qlock);
    while (!models->stop) {
        run_t *next = NULL;
        int64_t now = feat_now_ms();
        for (size_t i = 0; i < models->nruns && !next; i++)
            if (run_at(models, i)->st.state == FEAT_RUN_QUEUED && run_at(models, i)->not_before_ms <= now)
                next = run_at(models, i);
        if (!next) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&models->qcond, &models->qlock, &until);
            pthread_mutex_unlock(&models->qlock);
            check_triggers(models);
            pthread_mutex_lock(&models->qlock);
            continue;
        }
        next->st.state = FEAT_RUN_RUNNING;
        pthread_mutex_unlock(&models->qlock);
        do_run(models, next); /* next stays valid: only queued-or-finished runs are ever recycled, and this one is running */
        pthread_mutex_lock(&models->qlock);
    }
    pthread_mutex_unlock(&models->qlock);
    return NULL;
}

feat_err_t feat_models_start(feat_models_t *models) {
    if (feat_worker_start(&models->thr, "retrain", engine, models)) return FEAT_ERR_NOMEM;
    models->started = 1;
    return FEAT_OK;
}

void feat_models_stop(feat_models_t *models) {
    if (!models || !models->started) return;
    atomic_store(&models->cancel, 1);
    pthread_mutex_lock(&models->qlock);
    models->stop = 1;
    pthread_cond_signal(&models->qcond);
    pthread_mutex_unlock(&models->qlock);
    feat_worker_join(models->thr);
    models->started = 0;
}
