/*
 * train/core/types.c — defaults, names and small helpers of the math core.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "train/core/internal.h"
#include "train/core/types.h"

void feat_hyper_init(feat_hyper_t *h) {
    if (!h)
        return;
    h->learning_rate = 0.01;
    h->l2 = 1e-4;
    h->beta1 = 0.9;
    h->beta2 = 0.999;
    h->epsilon = 1e-8;
    h->hidden = 32;
    h->epochs = 10;
    h->batch_size = 256;
    h->activation = FEAT_ACT_RELU;
    h->shuffle = 1;
    h->seed = 1;
    h->trees = 100;
    h->max_depth = 6;
    h->subsample = 1.0;
    h->min_child_weight = 1.0;
    h->early_stopping = 10;
}

const char *feat_hyper_check(const feat_hyper_t *h) {
    if (!(h->learning_rate > 0.0 && h->learning_rate <= 10.0))
        return "learning_rate out of (0, 10]";
    if (!(h->l2 >= 0.0 && h->l2 <= 1e4))
        return "l2 out of [0, 1e4]";
    if (!(h->beta1 >= 0.0 && h->beta1 < 1.0))
        return "beta1 out of [0, 1)";
    if (!(h->beta2 >= 0.0 && h->beta2 < 1.0))
        return "beta2 out of [0, 1)";
    if (!(h->epsilon > 0.0 && h->epsilon <= 1.0))
        return "epsilon out of (0, 1]";
    if (h->hidden < 1 || h->hidden > FEAT_TRAIN_MAX_HIDDEN)
        return "hidden out of [1, 4096]";
    if (h->epochs < 1 || h->epochs > FEAT_TRAIN_MAX_EPOCHS)
        return "epochs out of [1, 100000]";
    if (h->batch_size < 1 || h->batch_size > FEAT_TRAIN_MAX_BATCH)
        return "batch_size out of [1, 65536]";
    if (h->activation != FEAT_ACT_RELU && h->activation != FEAT_ACT_TANH)
        return "activation is neither relu nor tanh";
    if (h->shuffle > 1)
        return "shuffle is neither 0 nor 1";
    if (h->trees < 1 || h->trees > 10000)
        return "trees out of [1, 10000]";
    if (h->max_depth < 1 || h->max_depth > 16)
        return "max_depth out of [1, 16]";
    if (!(h->subsample > 0.0 && h->subsample <= 1.0))
        return "subsample out of (0, 1]";
    if (!(h->min_child_weight >= 0.0 && h->min_child_weight <= 1e6))
        return "min_child_weight out of [0, 1e6]";
    if (h->early_stopping > 10000)
        return "early_stopping out of [0, 10000]";
    return NULL;
}

const char *feat_model_kind_name(feat_model_kind_t k) {
    switch (k) {
    case FEAT_MODEL_LOGREG: return "logreg";
    case FEAT_MODEL_LINREG: return "linreg";
    case FEAT_MODEL_MLP: return "mlp";
    case FEAT_MODEL_TREES: return "trees";
    }
    return "?";
}

const char *feat_task_name(feat_task_t t) {
    switch (t) {
    case FEAT_TASK_AUTO: return "auto";
    case FEAT_TASK_BINARY: return "binary";
    case FEAT_TASK_REGRESSION: return "regression";
    }
    return "?";
}

const char *feat_activation_name(feat_activation_t a) {
    switch (a) {
    case FEAT_ACT_RELU: return "relu";
    case FEAT_ACT_TANH: return "tanh";
    }
    return "?";
}

const char *feat_backend_name(feat_backend_t b) {
    switch (b) {
    case FEAT_BACKEND_AUTO: return "auto";
    case FEAT_BACKEND_CPU: return "cpu";
    case FEAT_BACKEND_GPU: return "gpu";
    }
    return "?";
}


double feat_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void *feat_alloc_big(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge)
        return malloc(bytes ? bytes : 1);
    void *p = NULL;
    if (posix_memalign(&p, huge, bytes) != 0)
        return NULL;
#if defined(MADV_HUGEPAGE)
    (void)madvise(p, (bytes + huge - 1) & ~(huge - 1), MADV_HUGEPAGE); /* a hint; failure is fine */
#endif
    return p;
}
