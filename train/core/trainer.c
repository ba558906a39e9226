/*
 * train/core/trainer.c — feat_train(): split, preprocess, pick a backend,
 * train every grid configuration, validate, keep the best (trainer.h).
 */
#include <math.h>
#include <stdio.h>
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
    size_t nl2 = g->n_l2 ? g->n_l2 : 1, nt = g->n_trees ? g->n_trees : 1, nd = g->n_max_depth ? g->n_max_depth : 1;
    if (g->n_trees)
        h.trees = g->trees[i % nt];
    i /= nt;
    if (g->n_max_depth)
        h.max_depth = g->max_depth[i % nd];
    i /= nd;
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

/* Checks the configuration and every grid configuration; *n_configs receives the grid's size. */
static feat_err_t check_conf(const feat_train_conf_t *c, size_t *n_configs, char *errstr,
                             size_t errsz) {
    if (c->kind != FEAT_MODEL_LOGREG && c->kind != FEAT_MODEL_LINREG && c->kind != FEAT_MODEL_MLP &&
        c->kind != FEAT_MODEL_TREES) {
        feat_errf(errstr, errsz, "unknown model kind %d", (int)c->kind);
        return FEAT_ERR_INVALID;
    }
    if (c->kind == FEAT_MODEL_TREES && (!c->learner || !c->learner->fit)) {
        feat_errf(errstr, errsz, "trees need a tree learner");
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
        g->n_hidden > GRID_MAX_LIST || g->n_epochs > GRID_MAX_LIST || g->n_trees > GRID_MAX_LIST ||
        g->n_max_depth > GRID_MAX_LIST || (g->n_learning_rate && !g->learning_rate) || (g->n_l2 && !g->l2) ||
        (g->n_hidden && !g->hidden) || (g->n_epochs && !g->epochs) || (g->n_trees && !g->trees) ||
        (g->n_max_depth && !g->max_depth)) {
        feat_errf(errstr, errsz, "grid lists must be non-NULL and at most %u long", GRID_MAX_LIST);
        return FEAT_ERR_INVALID;
    }
    size_t n = (g->n_learning_rate ? g->n_learning_rate : 1) * (g->n_l2 ? g->n_l2 : 1) *
               (g->n_hidden ? g->n_hidden : 1) * (g->n_epochs ? g->n_epochs : 1) *
               (g->n_trees ? g->n_trees : 1) * (g->n_max_depth ? g->n_max_depth : 1);
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

/* One feat_train() call, shared by its steps: the call's arguments, what the
 * steps work out (each field set by the step named), and everything the call
 * allocates, freed in one place by run_free(). */
typedef struct run {
    /* arguments, borrowed */
    const feat_train_conf_t *conf;
    const feat_train_data_t *data;
    feat_train_report_t *report;  /* never NULL */
    char *errstr;                 /* NULL is fine (feat_errf) */
    size_t errsz;

    size_t n_configs;             /* check_conf(): 1..GRID_MAX_CONFIGS */
    feat_task_t task;             /* pick_task(): BINARY or REGRESSION */
    size_t n_train, n_valid;      /* split_rows(): the oldest n_train rows train */
    uint32_t dim;                 /* fit_prep(): dense columns */
    uint32_t max_hidden;          /* fit_prep(): the grid's largest MLP hidden layer; else 1 */
    double y_mean, y_std;         /* fill_matrix(): regression target scaling; 0 and 1 for binary */
    feat_dense_t train, valid;    /* fill_matrix(): views of x and the targets */
    feat_backend_t backend;       /* pick_backend(); the GPU may hand over to the CPU mid-grid */
    cancel_wrap_t cancel;
    double work_rows;             /* Σ n_train·epochs over the configurations trained */

    /* the best configuration so far (train_config()); meaningful once have_best */
    int have_best;
    feat_eval_t best_valid;
    feat_hyper_t best_hyper;
    double best_seconds;
    feat_backend_t best_backend;
    feat_eval_t best_train;       /* train_metrics() */

    /* owned */
    feat_prep_t *prep;
    float *x;                 /* n_rows × dim */
    double *ytrain;           /* n_train training targets (standardised for regression) */
    double *pred;             /* max(n_train, n_valid) predictions */
    double *hbuf;             /* forward work space for the largest configuration */
    feat_params_t best, cur;
    feat_trees_t *best_trees, *cur_trees; /* FEAT_MODEL_TREES */
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
    feat_trees_free(r->best_trees);
    feat_trees_free(r->cur_trees);
    feat_gpu_ctx_destroy(r->gpu);
}

/* Zeroes *report for a new call, keeping the caller's results array. */
static void report_reset(feat_train_report_t *report) {
    feat_grid_result_t *res = report->results;
    size_t cap = report->results_cap;
    memset(report, 0, sizeof(*report));
    report->results = res;
    report->results_cap = res ? cap : 0;
    feat_eval_clear(&report->train);
    feat_eval_clear(&report->valid);
}

/* Checks that there are rows, labels and a schema to train on. */
static feat_err_t check_rows(const run_t *r) {
    const feat_train_data_t *data = r->data;
    const size_t n = data->n_rows;
    if (n == 0 || n > FEAT_TRAIN_MAX_ROWS || !data->rows || !data->labels || !data->features) {
        feat_errf(r->errstr, r->errsz,
                  n ? "NULL rows, labels or features" : "no rows to train on");
        return FEAT_ERR_INVALID;
    }
    return FEAT_OK;
}

/* Settles the task (trainer.h, feat_train_conf_t.task) and checks every label against it. */
static feat_err_t pick_task(run_t *r) {
    const feat_train_conf_t *conf = r->conf;
    const double *labels = r->data->labels;
    const size_t n = r->data->n_rows;
    feat_task_t task = conf->task;
    if (conf->kind == FEAT_MODEL_LOGREG)
        task = FEAT_TASK_BINARY;
    else if (conf->kind == FEAT_MODEL_LINREG)
        task = FEAT_TASK_REGRESSION;
    else if (task == FEAT_TASK_AUTO) {
        task = FEAT_TASK_BINARY;
        for (size_t i = 0; i < n; i++)
            if (labels[i] != 0.0 && labels[i] != 1.0) {
                task = FEAT_TASK_REGRESSION;
                break;
            }
    }
    for (size_t i = 0; i < n; i++) {
        double y = labels[i];
        if (task == FEAT_TASK_BINARY ? (y != 0.0 && y != 1.0) : !isfinite(y)) {
            feat_errf(r->errstr, r->errsz, "label of row %zu is %g; %s", i, y,
                      task == FEAT_TASK_BINARY ? "binary labels must be 0 or 1"
                                               : "regression labels must be finite");
            return FEAT_ERR_INVALID;
        }
    }
    r->task = task;
    return FEAT_OK;
}

/* Splits the time-ordered rows: the newest floor(n·valid_fraction) validate, the rest train. */
static feat_err_t split_rows(run_t *r) {
    const size_t n = r->data->n_rows;
    const size_t n_valid = (size_t)floor((double)n * r->conf->valid_fraction);
    const size_t n_train = n - n_valid;
    if (n_train == 0) {
        feat_errf(r->errstr, r->errsz, "no training rows after the validation split");
        return FEAT_ERR_INVALID;
    }
    if (r->n_configs > 1 && n_valid == 0) {
        feat_errf(r->errstr, r->errsz, "a grid search needs validation rows (valid_fraction > 0)");
        return FEAT_ERR_INVALID;
    }
    r->n_train = n_train;
    r->n_valid = n_valid;
    r->report->n_train = n_train;
    r->report->n_valid = n_valid;
    return FEAT_OK;
}

/* Fits the preprocessing on the training rows and checks that every configuration's model fits. */
static feat_err_t fit_prep(run_t *r) {
    const feat_train_conf_t *conf = r->conf;
    const feat_train_data_t *data = r->data;
    feat_prep_conf_t pc = conf->prep;
    pc.raw = conf->kind == FEAT_MODEL_TREES;
    feat_err_t e = feat_prep_fit(&pc, data->features, data->n_features, data->rows,
                                 r->n_train, &r->prep);
    if (e == FEAT_ERR_NOMEM) {
        feat_errf(r->errstr, r->errsz, "out of memory fitting preprocessing");
        return e;
    }
    if (e != FEAT_OK) {
        feat_errf(r->errstr, r->errsz,
                  "bad schema (1..%u features with unique non-empty names and "
                  "known types) or input wider than %u columns",
                  FEAT_TRAIN_MAX_FEATURES, FEAT_TRAIN_MAX_INPUT_DIM);
        return e;
    }
    const uint32_t dim = (uint32_t)feat_prep_dim(r->prep);
    r->dim = dim;
    r->report->input_dim = dim;
    r->max_hidden = 1;
    for (size_t c = 0; c < r->n_configs; c++) {
        feat_hyper_t h = grid_config(conf, c);
        if (conf->kind == FEAT_MODEL_MLP && h.hidden > r->max_hidden)
            r->max_hidden = h.hidden;
        if (conf->kind != FEAT_MODEL_TREES &&
            feat_params_count(conf->kind, dim, conf->kind == FEAT_MODEL_MLP ? h.hidden : 0) == 0) {
            feat_errf(r->errstr, r->errsz, "model too large: %u inputs × %u hidden units", dim,
                      h.hidden);
            return FEAT_ERR_INVALID;
        }
    }
    return FEAT_OK;
}

/* Allocates the dense matrix, the training targets, the predictions and the forward work space. */
static feat_err_t alloc_matrix(run_t *r) {
    const size_t n = r->data->n_rows, n_train = r->n_train, n_valid = r->n_valid;
    const uint32_t dim = r->dim;
    if ((double)n * (double)dim * sizeof(float) > (double)SIZE_MAX / 2) {
        feat_errf(r->errstr, r->errsz, "training matrix too large");
        return FEAT_ERR_NOMEM;
    }
    r->x = (float *)feat_alloc_big(n * (size_t)dim * sizeof(float));
    r->ytrain = (double *)feat_alloc_big(n_train * sizeof(double));
    r->pred = (double *)malloc((n_train > n_valid ? n_train : n_valid) * sizeof(double));
    feat_params_t shape; /* only its dimensions matter here */
    memset(&shape, 0, sizeof(shape));
    shape.kind = r->conf->kind;
    shape.d = dim;
    shape.h = r->conf->kind == FEAT_MODEL_MLP ? r->max_hidden : 0;
    r->hbuf = (double *)malloc((feat_fwd_work_size(&shape) + 1) * sizeof(double));
    if (!r->x || !r->ytrain || !r->pred || !r->hbuf) {
        feat_errf(r->errstr, r->errsz, "out of memory for a %zu × %u training matrix", n, dim);
        return FEAT_ERR_NOMEM;
    }
    return FEAT_OK;
}

/* Preprocesses every row into x and sets the training targets (standardised for regression). */
static feat_err_t fill_matrix(run_t *r) {
    const feat_train_data_t *data = r->data;
    const size_t n = data->n_rows, nf = data->n_features, n_train = r->n_train;
    const uint32_t dim = r->dim;
    for (size_t i = 0; i < n; i++)
        feat_prep_apply(r->prep, data->rows + i * nf, r->x + i * (size_t)dim);
    double y_mean = 0.0, y_std = 1.0;
    if (r->task == FEAT_TASK_REGRESSION && r->conf->kind != FEAT_MODEL_TREES) { /* trees take raw targets */
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
            feat_errf(r->errstr, r->errsz, "labels too large to standardise");
            return FEAT_ERR_INVALID;
        }
        for (size_t i = 0; i < n_train; i++)
            r->ytrain[i] = (data->labels[i] - y_mean) / y_std;
    } else {
        memcpy(r->ytrain, data->labels, n_train * sizeof(double));
    }
    r->y_mean = y_mean;
    r->y_std = y_std;
    r->train = (feat_dense_t){r->x, r->ytrain, n_train, dim};
    r->valid =
        (feat_dense_t){r->x + n_train * (size_t)dim, data->labels + n_train, r->n_valid, dim};
    return FEAT_OK;
}

/* Fits the preprocessing and builds the dense training and validation matrices; times it. */
static feat_err_t preprocess(run_t *r) {
    const double t0 = feat_now();
    feat_err_t e = fit_prep(r);
    if (e == FEAT_OK)
        e = alloc_matrix(r);
    if (e == FEAT_OK)
        e = fill_matrix(r);
    if (e == FEAT_OK)
        r->report->prep_seconds = feat_now() - t0;
    return e;
}

/* Chooses the CPU or the GPU (uploading the training rows); the note says why not the GPU. */
static feat_err_t pick_backend(run_t *r) {
    const feat_backend_t want = r->conf->backend;
    r->backend = FEAT_BACKEND_CPU;
    if (want == FEAT_BACKEND_CPU)
        return FEAT_OK;
    if (r->conf->kind == FEAT_MODEL_TREES) {
        if (want == FEAT_BACKEND_GPU) {
            feat_errf(r->errstr, r->errsz, "trees train on the CPU only (device = gpu)");
            return FEAT_ERR_NO_DEVICE;
        }
        return FEAT_OK;
    }
    char why[160];
    if (!feat_gpu_available(why, sizeof(why))) {
        if (want == FEAT_BACKEND_GPU) {
            feat_errf(r->errstr, r->errsz, "GPU requested: %s", why);
            return FEAT_ERR_NO_DEVICE;
        }
        feat_errf(r->report->note, sizeof(r->report->note), "no GPU: %s", why);
        return FEAT_OK;
    }
    char gerr[160] = "";
    feat_err_t e = feat_gpu_ctx_new(&r->train, r->conf->hyper.batch_size, r->max_hidden, &r->gpu,
                                    gerr, sizeof(gerr));
    if (e == FEAT_OK) {
        r->backend = FEAT_BACKEND_GPU;
    } else if (want == FEAT_BACKEND_GPU) {
        feat_errf(r->errstr, r->errsz, "GPU: %s", gerr);
        return e;
    } else {
        feat_errf(r->report->note, sizeof(r->report->note), "GPU failed, trained on CPU: %s", gerr);
    }
    return FEAT_OK;
}

/* Fresh weights for configuration h in r->cur. */
static feat_err_t init_weights(run_t *r, const feat_hyper_t *h) {
    feat_err_t e = feat_params_init(&r->cur, r->conf->kind, r->task, h->activation, r->dim,
                                    h->hidden, h->seed);
    if (e != FEAT_OK)
        feat_errf(r->errstr, r->errsz, "cannot initialise weights: %s", feat_err_str(e));
    return e;
}

/* Trains r->cur with h on the current backend; under AUTO a failing GPU hands over to the CPU. */
static feat_err_t fit_config(run_t *r, const feat_hyper_t *h) {
    feat_err_t e;
    if (r->backend == FEAT_BACKEND_GPU) {
        char gerr[160] = "";
        e = feat_gpu_fit(r->gpu, &r->cur, h, cancel_check, &r->cancel, gerr, sizeof(gerr));
        if (e != FEAT_OK && !r->cancel.fired && r->conf->backend == FEAT_BACKEND_AUTO) {
            /* GPU broke mid-way: the CPU takes over from scratch */
            feat_errf(r->report->note, sizeof(r->report->note), "GPU failed, trained on CPU: %s",
                      gerr);
            feat_gpu_ctx_destroy(r->gpu);
            r->gpu = NULL;
            r->backend = FEAT_BACKEND_CPU;
            feat_params_free(&r->cur);
            e = feat_params_init(&r->cur, r->conf->kind, r->task, h->activation, r->dim, h->hidden,
                                 h->seed);
            if (e == FEAT_OK)
                e = feat_cpu_fit(&r->cur, &r->train, h, cancel_check, &r->cancel);
        } else if (e != FEAT_OK && !r->cancel.fired) {
            feat_errf(r->errstr, r->errsz, "GPU: %s", gerr);
        }
    } else {
        e = feat_cpu_fit(&r->cur, &r->train, h, cancel_check, &r->cancel);
    }
    if (e != FEAT_OK) {
        if (r->cancel.fired) {
            e = FEAT_ERR_UNAVAILABLE;
            feat_errf(r->errstr, r->errsz, "training cancelled");
        } else if (r->errstr && !r->errstr[0]) {
            feat_errf(r->errstr, r->errsz, "training failed: %s", feat_err_str(e));
        }
    }
    return e;
}

/* Metrics against labels of p's predictions for n dense rows x, made by the model runtime's
 * own forward pass; FEAT_ERR_INVALID when a prediction is NaN. */
static feat_err_t score(run_t *r, const feat_params_t *p, const float *x, const double *labels,
                        size_t n, feat_eval_t *out) {
    if (r->conf->kind == FEAT_MODEL_TREES) { /* p unused: the trees are r->cur_trees or r->best_trees */
        feat_trees_predict_f32(p == &r->best ? r->best_trees : r->cur_trees, x, n, r->pred);
        return feat_eval_compute(r->task, r->pred, labels, n, out);
    }
    feat_fwd_t fw;
    feat_err_t e = feat_fwd_init(&fw, p, r->y_mean, r->y_std);
    if (e != FEAT_OK)
        return e;
    feat_fwd_dense(&fw, x, n, r->hbuf, r->pred);
    feat_fwd_free(&fw);
    return feat_eval_compute(r->task, r->pred, labels, n, out);
}

/* Fits r->cur_trees with h through the tree learner. */
static feat_err_t fit_trees(run_t *r, const feat_hyper_t *h) {
    char err[200] = "";
    feat_err_t e = r->conf->learner->fit(r->conf->learner->arg, &r->train, &r->valid, r->task, h, cancel_check,
                                         &r->cancel, &r->cur_trees, err, sizeof(err));
    if (e == FEAT_OK && (!r->cur_trees || feat_trees_nfeatures(r->cur_trees) != r->dim)) {
        feat_trees_free(r->cur_trees);
        r->cur_trees = NULL;
        snprintf(err, sizeof(err), "the learner's trees read another input width");
        e = FEAT_ERR_INVALID;
    }
    if (e != FEAT_OK) {
        if (r->cancel.fired)
            e = FEAT_ERR_UNAVAILABLE;
        feat_errf(r->errstr, r->errsz, "%s", r->cancel.fired ? "training cancelled" : err[0] ? err : feat_err_str(e));
    }
    return e;
}

/* Scores r->cur on the validation rows (if any) into res, or marks it diverged. */
static feat_err_t validate_config(run_t *r, feat_grid_result_t *res) {
    if (!r->cur_trees && !all_finite(&r->cur)) {
        res->diverged = 1;
        return FEAT_OK;
    }
    if (r->n_valid == 0)
        return FEAT_OK;
    feat_err_t e = score(r, &r->cur, r->valid.x, r->valid.y, r->n_valid, &res->valid);
    if (e == FEAT_ERR_INVALID) { /* NaN predictions (overflow inside the MLP) */
        res->diverged = 1;
        feat_eval_clear(&res->valid);
        e = FEAT_OK;
    }
    if (e != FEAT_OK)
        feat_errf(r->errstr, r->errsz, "validation failed: %s", feat_err_str(e));
    return e;
}

/* Trains and validates configuration c, keeps it when it beats the best so far, reports it. */
static feat_err_t train_config(run_t *r, size_t c) {
    feat_train_report_t *report = r->report;
    feat_hyper_t h = grid_config(r->conf, c);
    feat_grid_result_t res;
    memset(&res, 0, sizeof(res));
    res.hyper = h;
    feat_eval_clear(&res.valid);
    feat_err_t e;
    const double t0 = feat_now();
    if (r->conf->kind == FEAT_MODEL_TREES) {
        e = fit_trees(r, &h);
    } else {
        e = init_weights(r, &h);
        if (e == FEAT_OK)
            e = fit_config(r, &h);
    }
    if (e != FEAT_OK)
        return e;
    res.seconds = feat_now() - t0;
    r->work_rows += (double)r->n_train * (double)(r->cur_trees ? feat_trees_ntrees(r->cur_trees) : h.epochs);
    e = validate_config(r, &res);
    if (e != FEAT_OK)
        return e;
    if (!res.diverged && (!r->have_best || better(r->task, &res.valid, &r->best_valid))) {
        feat_params_t t = r->best;
        r->best = r->cur;
        r->cur = t;
        feat_trees_t *tt = r->best_trees;
        r->best_trees = r->cur_trees;
        r->cur_trees = tt;
        r->best_valid = res.valid;
        r->best_hyper = h;
        r->best_seconds = res.seconds;
        r->best_backend = r->backend;
        report->best = c;
        r->have_best = 1;
    }
    feat_params_free(&r->cur);
    feat_trees_free(r->cur_trees);
    r->cur_trees = NULL;
    if (c < report->results_cap)
        report->results[c] = res;
    report->n_configs = c + 1;
    return FEAT_OK;
}

/* Picks the backend and trains every configuration of the grid; times it. */
static feat_err_t train_grid(run_t *r) {
    feat_train_report_t *report = r->report;
    const double t0 = feat_now();
    feat_err_t e = pick_backend(r);
    if (e != FEAT_OK)
        return e;
    feat_eval_clear(&r->best_valid);
    r->best_hyper = r->conf->hyper;
    r->best_backend = r->backend;
    r->cancel = (cancel_wrap_t){r->conf->cancel, r->conf->cancel_arg, 0};
    for (size_t c = 0; c < r->n_configs; c++) {
        e = train_config(r, c);
        if (e != FEAT_OK)
            return e;
    }
    report->train_seconds = feat_now() - t0;
    report->rows_per_second =
        report->train_seconds > 0.0 ? r->work_rows / report->train_seconds : 0.0;
    report->backend = r->best_backend;
    if (!r->have_best) {
        feat_errf(r->errstr, r->errsz,
                  "training diverged (non-finite weights) in every configuration; "
                  "lower the learning rate");
        return FEAT_ERR_INVALID;
    }
    return FEAT_OK;
}

/* Metrics of the chosen model on its training rows (all NaN when a prediction is NaN). */
static feat_err_t train_metrics(run_t *r) {
    feat_err_t e = score(r, &r->best, r->x, r->data->labels, r->n_train, &r->best_train);
    if (e == FEAT_ERR_INVALID) { /* NaN predictions on some training row */
        feat_eval_clear(&r->best_train);
        e = FEAT_OK;
    }
    if (e != FEAT_OK)
        feat_errf(r->errstr, r->errsz, "training metrics failed: %s", feat_err_str(e));
    return e;
}

/* Moves the preprocessing and the best weights into the model *out; completes the report. */
static feat_err_t build_model(run_t *r, feat_model_t **out) {
    feat_model_info_t info;
    memset(&info, 0, sizeof(info));
    info.hyper = r->best_hyper;
    info.n_train = r->n_train;
    info.n_valid = r->n_valid;
    info.train_seconds = r->best_seconds;
    info.backend = r->best_backend;
    info.train = r->best_train;
    info.valid = r->best_valid;
    info.y_mean = r->y_mean;
    info.y_std = r->y_std;
    feat_prep_t *prep = r->prep;
    r->prep = NULL;
    feat_err_t e;
    if (r->best_trees) {
        info.task = r->task;
        info.label = r->conf->label_name;
        feat_trees_t *t = r->best_trees;
        r->best_trees = NULL;
        e = feat_model_from_trees(prep, t, &info, out);
    } else {
        e = feat_model_assemble(prep, &r->best, &info, r->conf->label_name, out);
    }
    if (e != FEAT_OK) {
        feat_errf(r->errstr, r->errsz, "cannot build the model: %s", feat_err_str(e));
        return e;
    }
    r->report->train = r->best_train;
    r->report->valid = r->best_valid;
    return FEAT_OK;
}

feat_err_t feat_train(const feat_train_conf_t *conf, const feat_train_data_t *data,
                      feat_model_t **out, feat_train_report_t *report,
                      char *errstr, size_t errsz) {
    feat_train_report_t dummy;
    if (!report) {
        memset(&dummy, 0, sizeof(dummy));
        report = &dummy;
    }
    report_reset(report);
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
    run_t r = {.conf = conf, .data = data, .report = report, .errstr = errstr, .errsz = errsz};
    feat_err_t e = check_conf(conf, &r.n_configs, errstr, errsz);
    if (e == FEAT_OK)
        e = check_rows(&r);
    if (e == FEAT_OK)
        e = pick_task(&r);
    if (e == FEAT_OK)
        e = split_rows(&r);
    if (e == FEAT_OK)
        e = preprocess(&r);
    if (e == FEAT_OK)
        e = train_grid(&r);
    if (e == FEAT_OK)
        e = train_metrics(&r);
    if (e == FEAT_OK)
        e = build_model(&r, out);
    run_free(&r);
    return e;
}
