/*
 * train/core/trainer.c — feat_train(): split, preprocess, pick a backend,
 * train every grid configuration, validate, keep the best (trainer.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/core/gpu.h"
#include "train/core/internal.h"
#include "train/core/trainer.h"

#define GRID_MAX_LIST 64u
#define GRID_MAX_CONFIGS 4096u

void feat_train_conf_init(feat_train_conf_t *c) {
    if (!c)
        return;
    memset(c, 0, sizeof(*c));
    c->kind = FEAT_MODEL_LOGREG;
    c->task = FEAT_TASK_AUTO;
    feat_hyper_init(&c->hyper);
    feat_prep_conf_init(&c->prep);
    c->valid_fraction = 0.25;
    c->backend = FEAT_BACKEND_AUTO;
}

/* Configuration i of the grid, in enumeration order (learning_rate outermost). */
static feat_hyper_t grid_config(const feat_train_conf_t *c, size_t i) {
    feat_hyper_t h = c->hyper;
    const feat_grid_t *g = &c->grid;
    size_t ne = g->n_epochs ? g->n_epochs : 1, nh = g->n_hidden ? g->n_hidden : 1;
    size_t nl2 = g->n_l2 ? g->n_l2 : 1;
    if (g->n_epochs)
        h.epochs = g->epochs[i % ne];
    i /= ne;
    if (g->n_hidden)
        h.hidden = g->hidden[i % nh];
    i /= nh;
    if (g->n_l2)
        h.l2 = g->l2[i % nl2];
    i /= nl2;
    if (g->n_learning_rate)
        h.learning_rate = g->learning_rate[i];
    return h;
}

/* 1 when candidate metrics a beat the best so far b (strictly). */
static int better(feat_task_t task, const feat_eval_t *a, const feat_eval_t *b) {
    if (task == FEAT_TASK_BINARY) {
        if (!isnan(a->auc) && !isnan(b->auc))
            return a->auc > b->auc;
        if (!isnan(a->auc) != !isnan(b->auc))
            return !isnan(a->auc);
        if (isnan(b->logloss))
            return !isnan(a->logloss);
        return a->logloss < b->logloss;
    }
    if (isnan(b->rmse))
        return !isnan(a->rmse);
    return a->rmse < b->rmse;
}

static int all_finite(const feat_params_t *p) {
    for (size_t i = 0; i < p->n; i++)
        if (!isfinite(p->w[i]))
            return 0;
    return 1;
}

static feat_err_t check_conf(const feat_train_conf_t *c, size_t *n_configs, char *errstr,
                             size_t errsz) {
    if (c->kind != FEAT_MODEL_LOGREG && c->kind != FEAT_MODEL_LINREG && c->kind != FEAT_MODEL_MLP) {
        feat_errf(errstr, errsz, "unknown model kind %d", (int)c->kind);
        return FEAT_ERR_INVALID;
    }
    if ((c->task != FEAT_TASK_AUTO && c->task != FEAT_TASK_BINARY &&
         c->task != FEAT_TASK_REGRESSION) ||
        (c->kind == FEAT_MODEL_LOGREG && c->task == FEAT_TASK_REGRESSION) ||
        (c->kind == FEAT_MODEL_LINREG && c->task == FEAT_TASK_BINARY)) {
        feat_errf(errstr, errsz, "task %s does not fit model %s", feat_task_name(c->task),
                  feat_model_kind_name(c->kind));
        return FEAT_ERR_INVALID;
    }
    if (!(c->valid_fraction >= 0.0 && c->valid_fraction <= 0.9)) {
        feat_errf(errstr, errsz, "valid_fraction out of [0, 0.9]");
        return FEAT_ERR_INVALID;
    }
    if (c->backend != FEAT_BACKEND_AUTO && c->backend != FEAT_BACKEND_CPU &&
        c->backend != FEAT_BACKEND_GPU) {
        feat_errf(errstr, errsz, "unknown backend %d", (int)c->backend);
        return FEAT_ERR_INVALID;
    }
    if (c->label_name && strlen(c->label_name) > FEAT_TRAIN_MAX_NAME) {
        feat_errf(errstr, errsz, "label name longer than %u bytes", FEAT_TRAIN_MAX_NAME);
        return FEAT_ERR_INVALID;
    }
    if (c->prep.top_k > FEAT_TRAIN_MAX_TOP_K || c->prep.hash_buckets > FEAT_TRAIN_MAX_BUCKETS) {
        feat_errf(errstr, errsz, "top_k or hash_buckets out of range");
        return FEAT_ERR_INVALID;
    }
    const feat_grid_t *g = &c->grid;
    if (g->n_learning_rate > GRID_MAX_LIST || g->n_l2 > GRID_MAX_LIST ||
        g->n_hidden > GRID_MAX_LIST || g->n_epochs > GRID_MAX_LIST ||
        (g->n_learning_rate && !g->learning_rate) || (g->n_l2 && !g->l2) ||
        (g->n_hidden && !g->hidden) || (g->n_epochs && !g->epochs)) {
        feat_errf(errstr, errsz, "grid lists must be non-NULL and at most %u long", GRID_MAX_LIST);
        return FEAT_ERR_INVALID;
    }
    size_t n = (g->n_learning_rate ? g->n_learning_rate : 1) * (g->n_l2 ? g->n_l2 : 1) *
               (g->n_hidden ? g->n_hidden : 1) * (g->n_epochs ? g->n_epochs : 1);
    if (n > GRID_MAX_CONFIGS) {
        feat_errf(errstr, errsz, "grid of %zu configurations (at most %u)", n, GRID_MAX_CONFIGS);
        return FEAT_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        feat_hyper_t h = grid_config(c, i);
        const char *why = feat_hyper_check(&h);
        if (why) {
            feat_errf(errstr, errsz, "%s%s", n > 1 ? "grid: " : "", why);
            return FEAT_ERR_INVALID;
        }
    }
    *n_configs = n;
    return FEAT_OK;
}

/* Wraps the caller's cancel callback to remember that it fired. */
typedef struct cancel_wrap {
    int (*fn)(void *);
    void *arg;
    int fired;
} cancel_wrap_t;

static int cancel_check(void *arg) {
    cancel_wrap_t *w = (cancel_wrap_t *)arg;
    if (!w->fired && w->fn && w->fn(w->arg))
        w->fired = 1;
    return w->fired;
}

/* Everything feat_train() allocates, freed in one place. */
typedef struct run {
    feat_prep_t *prep;
    float *x;                 /* n_rows × dim */
    double *ytrain;           /* n_train training targets (standardised for regression) */
    double *pred;             /* max(n_train, n_valid) predictions */
    double *hbuf;             /* forward work space for the largest configuration */
    feat_params_t best, cur;
    feat_gpu_ctx_t *gpu;
} run_t;

static void run_free(run_t *r) {
    feat_prep_destroy(r->prep);
    free(r->x);
    free(r->ytrain);
    free(r->pred);
    free(r->hbuf);
    feat_params_free(&r->best);
    feat_params_free(&r->cur);
    feat_gpu_ctx_destroy(r->gpu);
}

feat_err_t feat_train(const feat_train_conf_t *conf, const feat_train_data_t *data,
                      feat_model_t **out, feat_train_report_t *report,
                      char *errstr, size_t errsz) {
    feat_train_report_t dummy;
    if (!report) {
        memset(&dummy, 0, sizeof(dummy));
        report = &dummy;
    }
    {
        feat_grid_result_t *res = report->results;
        size_t cap = report->results_cap;
        memset(report, 0, sizeof(*report));
        report->results = res;
        report->results_cap = res ? cap : 0;
        feat_eval_clear(&report->train);
        feat_eval_clear(&report->valid);
    }
    feat_errf(errstr, errsz, "%s", "");
    if (!out) {
        feat_errf(errstr, errsz, "NULL output pointer");
        return FEAT_ERR_INVALID;
    }
    *out = NULL;
    if (!conf || !data) {
        feat_errf(errstr, errsz, "NULL configuration or data");
        return FEAT_ERR_INVALID;
    }
    size_t n_configs = 0;
    feat_err_t e = check_conf(conf, &n_configs, errstr, errsz);
    if (e != FEAT_OK)
        return e;
    const size_t n = data->n_rows, nf = data->n_features;
    if (n == 0 || n > FEAT_TRAIN_MAX_ROWS || !data->rows || !data->labels || !data->features) {
        feat_errf(errstr, errsz, n ? "NULL rows, labels or features" : "no rows to train on");
        return FEAT_ERR_INVALID;
    }

    /* Task and labels. */
    feat_task_t task = conf->task;
    if (conf->kind == FEAT_MODEL_LOGREG)
        task = FEAT_TASK_BINARY;
    else if (conf->kind == FEAT_MODEL_LINREG)
        task = FEAT_TASK_REGRESSION;
    else if (task == FEAT_TASK_AUTO) {
        task = FEAT_TASK_BINARY;
        for (size_t i = 0; i < n; i++)
            if (data->labels[i] != 0.0 && data->labels[i] != 1.0) {
                task = FEAT_TASK_REGRESSION;
                break;
            }
    }
    for (size_t i = 0; i < n; i++) {
        double y = data->labels[i];
        if (task == FEAT_TASK_BINARY ? (y != 0.0 && y != 1.0) : !isfinite(y)) {
            feat_errf(errstr, errsz, "label of row %zu is %g; %s", i, y,
                      task == FEAT_TASK_BINARY ? "binary labels must be 0 or 1"
                                               : "regression labels must be finite");
            return FEAT_ERR_INVALID;
        }
    }
    const size_t n_valid = (size_t)floor((double)n * conf->valid_fraction);
    const size_t n_train = n - n_valid;
    if (n_train == 0) {
        feat_errf(errstr, errsz, "no training rows after the validation split");
        return FEAT_ERR_INVALID;
    }
    if (n_configs > 1 && n_valid == 0) {
        feat_errf(errstr, errsz, "a grid search needs validation rows (valid_fraction > 0)");
        return FEAT_ERR_INVALID;
    }
    report->n_train = n_train;
    report->n_valid = n_valid;

    run_t r;
    memset(&r, 0, sizeof(r));

    /* Preprocessing: fit on the training split, apply to every row. */
    double t0 = feat_now();
    e = feat_prep_fit(&conf->prep, data->features, nf, data->rows, n_train, &r.prep);
    if (e == FEAT_ERR_NOMEM) {
        feat_errf(errstr, errsz, "out of memory fitting preprocessing");
        return e;
    }
    if (e != FEAT_OK) {
        feat_errf(errstr, errsz, "bad schema (1..%u features with unique non-empty names and "
                                 "known types) or input wider than %u columns",
                  FEAT_TRAIN_MAX_FEATURES, FEAT_TRAIN_MAX_INPUT_DIM);
        return e;
    }
    const uint32_t dim = (uint32_t)feat_prep_dim(r.prep);
    report->input_dim = dim;
    uint32_t max_hidden = 1;
    for (size_t c = 0; c < n_configs; c++) {
        feat_hyper_t h = grid_config(conf, c);
        if (conf->kind == FEAT_MODEL_MLP && h.hidden > max_hidden)
            max_hidden = h.hidden;
        if (feat_params_count(conf->kind, dim, conf->kind == FEAT_MODEL_MLP ? h.hidden : 0) == 0) {
            feat_errf(errstr, errsz, "model too large: %u inputs × %u hidden units", dim, h.hidden);
            run_free(&r);
            return FEAT_ERR_INVALID;
        }
    }
    if ((double)n * (double)dim * sizeof(float) > (double)SIZE_MAX / 2) {
        feat_errf(errstr, errsz, "training matrix too large");
        run_free(&r);
        return FEAT_ERR_NOMEM;
    }
    r.x = (float *)feat_alloc_big(n * (size_t)dim * sizeof(float));
    r.ytrain = (double *)feat_alloc_big(n_train * sizeof(double));
    r.pred = (double *)malloc((n_train > n_valid ? n_train : n_valid) * sizeof(double));
    {
        feat_params_t shape; /* only its dimensions matter here */
        memset(&shape, 0, sizeof(shape));
        shape.kind = conf->kind;
        shape.d = dim;
        shape.h = conf->kind == FEAT_MODEL_MLP ? max_hidden : 0;
        r.hbuf = (double *)malloc((feat_fwd_work_size(&shape) + 1) * sizeof(double));
    }
    if (!r.x || !r.ytrain || !r.pred || !r.hbuf) {
        feat_errf(errstr, errsz, "out of memory for a %zu × %u training matrix", n, dim);
        run_free(&r);
        return FEAT_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        feat_prep_apply(r.prep, data->rows + i * nf, r.x + i * (size_t)dim);
    double y_mean = 0.0, y_std = 1.0;
    if (task == FEAT_TASK_REGRESSION) {
        double s = 0.0, ss = 0.0;
        for (size_t i = 0; i < n_train; i++)
            s += data->labels[i];
        y_mean = s / (double)n_train;
        for (size_t i = 0; i < n_train; i++)
            ss += (data->labels[i] - y_mean) * (data->labels[i] - y_mean);
        y_std = sqrt(ss / (double)n_train);
        if (!(y_std >= 1e-12 * (fabs(y_mean) > 1.0 ? fabs(y_mean) : 1.0)) || !isfinite(y_std))
            y_std = 1.0;
        if (!isfinite(y_mean)) {
            feat_errf(errstr, errsz, "labels too large to standardise");
            run_free(&r);
            return FEAT_ERR_INVALID;
        }
        for (size_t i = 0; i < n_train; i++)
            r.ytrain[i] = (data->labels[i] - y_mean) / y_std;
    } else {
        memcpy(r.ytrain, data->labels, n_train * sizeof(double));
    }
    report->prep_seconds = feat_now() - t0;

    /* Backend. */
    const feat_dense_t train = {r.x, r.ytrain, n_train, dim};
    feat_backend_t backend = FEAT_BACKEND_CPU;
    t0 = feat_now();
    if (conf->backend != FEAT_BACKEND_CPU) {
        char why[160];
        if (!feat_gpu_available(why, sizeof(why))) {
            if (conf->backend == FEAT_BACKEND_GPU) {
                feat_errf(errstr, errsz, "GPU requested: %s", why);
                run_free(&r);
                return FEAT_ERR_NO_DEVICE;
            }
            feat_errf(report->note, sizeof(report->note), "no GPU: %s", why);
        } else {
            char gerr[160] = "";
            e = feat_gpu_ctx_new(&train, conf->hyper.batch_size, max_hidden, &r.gpu, gerr,
                                 sizeof(gerr));
            if (e == FEAT_OK) {
                backend = FEAT_BACKEND_GPU;
            } else if (conf->backend == FEAT_BACKEND_GPU) {
                feat_errf(errstr, errsz, "GPU: %s", gerr);
                run_free(&r);
                return e;
            } else {
                feat_errf(report->note, sizeof(report->note), "GPU failed, trained on CPU: %s", gerr);
            }
        }
    }

    /* Train and validate every configuration. */
    const feat_dense_t valid = {r.x + n_train * (size_t)dim, data->labels + n_train, n_valid, dim};
    feat_eval_t best_valid;
    feat_eval_clear(&best_valid);
    feat_hyper_t best_hyper = conf->hyper;
    double best_seconds = 0.0, work_rows = 0.0;
    feat_backend_t best_backend = backend;
    int have_best = 0;
    cancel_wrap_t cw = {conf->cancel, conf->cancel_arg, 0};
    for (size_t c = 0; c < n_configs; c++) {
        feat_hyper_t h = grid_config(conf, c);
        feat_grid_result_t res;
        memset(&res, 0, sizeof(res));
        res.hyper = h;
        feat_eval_clear(&res.valid);
        e = feat_params_init(&r.cur, conf->kind, task, h.activation, dim, h.hidden, h.seed);
        if (e != FEAT_OK) {
            feat_errf(errstr, errsz, "cannot initialise weights: %s", feat_err_str(e));
            run_free(&r);
            return e;
        }
        double tc = feat_now();
        if (backend == FEAT_BACKEND_GPU) {
            char gerr[160] = "";
            e = feat_gpu_fit(r.gpu, &r.cur, &h, cancel_check, &cw, gerr, sizeof(gerr));
            if (e != FEAT_OK && !cw.fired && conf->backend == FEAT_BACKEND_AUTO) {
                /* GPU broke mid-way: the CPU takes over from scratch */
                feat_errf(report->note, sizeof(report->note), "GPU failed, trained on CPU: %s", gerr);
                feat_gpu_ctx_destroy(r.gpu);
                r.gpu = NULL;
                backend = FEAT_BACKEND_CPU;
                feat_params_free(&r.cur);
                e = feat_params_init(&r.cur, conf->kind, task, h.activation, dim, h.hidden, h.seed);
                if (e == FEAT_OK)
                    e = feat_cpu_fit(&r.cur, &train, &h, cancel_check, &cw);
            } else if (e != FEAT_OK && !cw.fired) {
                feat_errf(errstr, errsz, "GPU: %s", gerr);
            }
        } else {
            e = feat_cpu_fit(&r.cur, &train, &h, cancel_check, &cw);
        }
        if (e != FEAT_OK) {
            if (cw.fired) {
                e = FEAT_ERR_UNAVAILABLE;
                feat_errf(errstr, errsz, "training cancelled");
            } else if (errstr && !errstr[0]) {
                feat_errf(errstr, errsz, "training failed: %s", feat_err_str(e));
            }
            run_free(&r);
            return e;
        }
        res.seconds = feat_now() - tc;
        work_rows += (double)n_train * (double)h.epochs;
        if (!all_finite(&r.cur)) {
            res.diverged = 1;
        } else if (n_valid) {
            feat_fwd_t fw;
            e = feat_fwd_init(&fw, &r.cur, y_mean, y_std);
            if (e == FEAT_OK) {
                feat_fwd_dense(&fw, valid.x, n_valid, r.hbuf, r.pred);
                feat_fwd_free(&fw);
                e = feat_eval_compute(task, r.pred, valid.y, n_valid, &res.valid);
                if (e == FEAT_ERR_INVALID) { /* NaN predictions (overflow inside the MLP) */
                    res.diverged = 1;
                    feat_eval_clear(&res.valid);
                    e = FEAT_OK;
                }
            }
            if (e != FEAT_OK) {
                feat_errf(errstr, errsz, "validation failed: %s", feat_err_str(e));
                run_free(&r);
                return e;
            }
        }
        if (!res.diverged && (!have_best || better(task, &res.valid, &best_valid))) {
            feat_params_t t = r.best;
            r.best = r.cur;
            r.cur = t;
            best_valid = res.valid;
            best_hyper = h;
            best_seconds = res.seconds;
            best_backend = backend;
            report->best = c;
            have_best = 1;
        }
        feat_params_free(&r.cur);
        if (c < report->results_cap)
            report->results[c] = res;
        report->n_configs = c + 1;
    }
    report->train_seconds = feat_now() - t0;
    report->rows_per_second =
        report->train_seconds > 0.0 ? work_rows / report->train_seconds : 0.0;
    report->backend = best_backend;
    if (!have_best) {
        feat_errf(errstr, errsz, "training diverged (non-finite weights) in every configuration; "
                                 "lower the learning rate");
        run_free(&r);
        return FEAT_ERR_INVALID;
    }

    /* Metrics of the chosen model on its training split. */
    feat_eval_t train_m;
    feat_fwd_t fw;
    e = feat_fwd_init(&fw, &r.best, y_mean, y_std);
    if (e == FEAT_OK) {
        feat_fwd_dense(&fw, r.x, n_train, r.hbuf, r.pred);
        feat_fwd_free(&fw);
        e = feat_eval_compute(task, r.pred, data->labels, n_train, &train_m);
        if (e == FEAT_ERR_INVALID) { /* NaN predictions on some training row */
            feat_eval_clear(&train_m);
            e = FEAT_OK;
        }
    }
    if (e != FEAT_OK) {
        feat_errf(errstr, errsz, "training metrics failed: %s", feat_err_str(e));
        run_free(&r);
        return e;
    }

    feat_model_info_t info;
    memset(&info, 0, sizeof(info));
    info.hyper = best_hyper;
    info.n_train = n_train;
    info.n_valid = n_valid;
    info.train_seconds = best_seconds;
    info.backend = best_backend;
    info.train = train_m;
    info.valid = best_valid;
    info.y_mean = y_mean;
    info.y_std = y_std;
    feat_prep_t *prep = r.prep;
    r.prep = NULL;
    e = feat_model_assemble(prep, &r.best, &info, conf->label_name, out);
    run_free(&r);
    if (e != FEAT_OK) {
        feat_errf(errstr, errsz, "cannot build the model: %s", feat_err_str(e));
        return e;
    }
    report->train = train_m;
    report->valid = best_valid;
    return FEAT_OK;
}
