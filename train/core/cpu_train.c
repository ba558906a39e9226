/*
 * train/core/cpu_train.c — weights, shuffling and the CPU trainer.
 *
 * One mini-batch step = gradient over the batch's rows (visited in shuffled
 * order), then one Adam update of every weight.  The arithmetic comes from
 * kern.h and the summation order is the one gpu_train.cu reproduces: every
 * gradient entry is a sum over the batch's rows in visiting order, started
 * from 0.0, with the L2 term added last.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/core/internal.h"
#include "train/core/kern.h"

#define MAX_PARAMS ((size_t)1 << 27) /* 1 GiB of doubles */

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

/* Rows are visited in shuffled order, so each one is a cache miss: fetch
 * the row (and its label) this many rows ahead. */
#define AHEAD 8

static inline void prefetch_row(const float *X, const double *Y, uint32_t r, uint32_t d) {
    const char *p = (const char *)(X + (size_t)r * d);
    const size_t bytes = (size_t)d * sizeof(float);
    for (size_t off = 0; off < bytes; off += 64)
        PREFETCH(p + off);
    PREFETCH(p + bytes - 1);
    PREFETCH(Y + r);
}

/* feat_dot4() with its four partial sums as the lanes of one vector: the
 * same operations in the same order (lane l sums j ≡ l mod 4, the tail goes
 * to lane 0, then (s0 + s1) + (s2 + s3)), so results are bit-identical to
 * the GPU's scalar feat_dot4(), but one AVX2 instruction does four lanes. */
#if defined(__GNUC__) && !defined(__clang__)
typedef double v4d_t __attribute__((vector_size(32), aligned(8), may_alias));
typedef float v4f_t __attribute__((vector_size(16), aligned(4), may_alias));

static inline double cpu_dot4(const double *w, const float *x, uint32_t n) {
    v4d_t s = {0.0, 0.0, 0.0, 0.0};
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4)
        s += *(const v4d_t *)(w + j) * __builtin_convertvector(*(const v4f_t *)(x + j), v4d_t);
    double s0 = s[0];
    for (; j < n; j++)
        s0 += w[j] * (double)x[j];
    return (s0 + s[1]) + (s[2] + s[3]);
}

/* Four cpu_dot4()s of the rows w[0], w[ld], w[2·ld], w[3·ld] with the same
 * x, interleaved so that the four accumulator chains overlap. */
static inline void cpu_dot4x4(const double *w, size_t ld, const float *x, uint32_t n,
                              double *out) {
    v4d_t s[4] = {{0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0}, {0.0, 0.0, 0.0, 0.0},
                  {0.0, 0.0, 0.0, 0.0}};
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const v4d_t xv = __builtin_convertvector(*(const v4f_t *)(x + j), v4d_t);
        for (int q = 0; q < 4; q++)
            s[q] += *(const v4d_t *)(w + q * ld + j) * xv;
    }
    for (int q = 0; q < 4; q++) {
        double s0 = s[q][0];
        for (uint32_t t = j; t < n; t++)
            s0 += w[q * ld + t] * (double)x[t];
        out[q] = (s0 + s[q][1]) + (s[q][2] + s[q][3]);
    }
}
#else
#define cpu_dot4 feat_dot4
static inline void cpu_dot4x4(const double *w, size_t ld, const float *x, uint32_t n,
                              double *out) {
    for (int q = 0; q < 4; q++)
        out[q] = feat_dot4(w + q * ld, x, n);
}
#endif

/* ---- weights ---------------------------------------------------------- */

size_t feat_params_count(feat_model_kind_t kind, uint32_t d, uint32_t h) {
    if (d == 0 || d > FEAT_TRAIN_MAX_INPUT_DIM)
        return 0;
    if (kind == FEAT_MODEL_LOGREG || kind == FEAT_MODEL_LINREG)
        return (size_t)d + 1;
    if (kind != FEAT_MODEL_MLP || h == 0 || h > FEAT_TRAIN_MAX_HIDDEN)
        return 0;
    size_t n = (size_t)h * d + 2 * (size_t)h + 1;
    return n > MAX_PARAMS ? 0 : n;
}

feat_err_t feat_params_init(feat_params_t *p, feat_model_kind_t kind, feat_task_t task,
                            uint32_t act, uint32_t d, uint32_t h, uint64_t seed) {
    memset(p, 0, sizeof(*p));
    if (kind != FEAT_MODEL_MLP)
        h = 0;
    size_t n = feat_params_count(kind, d, h);
    if (n == 0 || (task != FEAT_TASK_BINARY && task != FEAT_TASK_REGRESSION) ||
        (kind == FEAT_MODEL_MLP && act != FEAT_ACT_RELU && act != FEAT_ACT_TANH))
        return FEAT_ERR_INVALID;
    double *w = (double *)calloc(n, sizeof(double));
    if (!w)
        return FEAT_ERR_NOMEM;
    if (kind == FEAT_MODEL_MLP) {
        uint64_t s = seed;
        double a = act == FEAT_ACT_RELU ? sqrt(6.0 / (double)d) : sqrt(6.0 / ((double)d + (double)h));
        size_t nw1 = (size_t)h * d;
        for (size_t i = 0; i < nw1; i++)
            w[i] = (2.0 * feat_rng_unit(&s) - 1.0) * a;
        double c = sqrt(6.0 / ((double)h + 1.0));
        double *w2 = w + nw1 + h;
        for (uint32_t k = 0; k < h; k++)
            w2[k] = (2.0 * feat_rng_unit(&s) - 1.0) * c;
    }
    p->kind = kind;
    p->task = task;
    p->act = kind == FEAT_MODEL_MLP ? act : 0;
    p->d = d;
    p->h = h;
    p->n = n;
    p->w = w;
    return FEAT_OK;
}

void feat_params_free(feat_params_t *p) {
    if (!p)
        return;
    free(p->w);
    memset(p, 0, sizeof(*p));
}

int feat_params_is_weight(const feat_params_t *p, size_t i) {
    if (p->kind != FEAT_MODEL_MLP)
        return i < p->d;
    size_t nw1 = (size_t)p->h * p->d;
    if (i < nw1)
        return 1;
    return i >= nw1 + p->h && i < nw1 + 2 * (size_t)p->h; /* w2 */
}

/* ---- shuffling -------------------------------------------------------- */

uint64_t feat_shuffle_state(uint64_t seed) { return seed ^ 0x5851f42d4c957f2dULL; }

void feat_shuffle(uint32_t *perm, size_t n, uint64_t *s) {
    for (size_t i = n; i > 1; i--) {
        /* j uniform in [0, i): top 32 random bits scaled by i (i < 2^32). */
        size_t j = (size_t)(((feat_rng_next(s) >> 32) * (uint64_t)i) >> 32);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

/* ---- gradients -------------------------------------------------------- */

size_t feat_cpu_work_size(const feat_params_t *p) {
    return p->kind == FEAT_MODEL_MLP ? 3 * (size_t)p->h : 1;
}

/* Gradient (and, when loss is non-NULL, the mean data loss) over a batch. */
FEAT_CLONES
static void batch_grad(const feat_params_t *p, const feat_dense_t *data, const uint32_t *idx,
                       size_t nb, double l2, double *grad, double *work, double *loss) {
    const uint32_t d = p->d;
    const int binary = p->task == FEAT_TASK_BINARY;
    const double inv_b = 1.0 / (double)nb;
    const double *w = p->w;
    const float *X = data->x;
    const double *Y = data->y;
    double lsum = 0.0;
    memset(grad, 0, p->n * sizeof(double));
    for (size_t t = 0; t < nb && t < AHEAD; t++)
        prefetch_row(X, Y, idx[t], d);

    if (p->kind != FEAT_MODEL_MLP) {
        double *gb = &grad[d];
        for (size_t t = 0; t < nb; t++) {
            if (t + AHEAD < nb)
                prefetch_row(X, Y, idx[t + AHEAD], d);
            const uint32_t r = idx[t];
            const float *x = X + (size_t)r * d;
            const double z = w[d] + cpu_dot4(w, x, d);
            if (loss)
                lsum += binary ? feat_softplus(z) - Y[r] * z : 0.5 * (z - Y[r]) * (z - Y[r]);
            const double e = feat_out_err(z, Y[r], binary) * inv_b;
            for (uint32_t j = 0; j < d; j++)
                grad[j] += e * (double)x[j];
            *gb += e;
        }
        for (uint32_t j = 0; j < d; j++)
            grad[j] += l2 * w[j];
    } else {
        const uint32_t h = p->h;
        const int act = (int)p->act;
        const size_t nw1 = (size_t)h * d;
        const double *W1 = w, *b1 = w + nw1, *w2 = b1 + h, b2 = w2[h];
        double *gW1 = grad, *gb1 = grad + nw1, *gw2 = gb1 + h, *gb2 = gw2 + h;
        double *a = work, *hh = work + h;
        for (size_t t = 0; t < nb; t++) {
            if (t + AHEAD < nb)
                prefetch_row(X, Y, idx[t + AHEAD], d);
            const uint32_t r = idx[t];
            const float *x = X + (size_t)r * d;
            uint32_t k = 0;
            for (; k + 4 <= h; k += 4) {
                double dots[4];
                cpu_dot4x4(W1 + (size_t)k * d, d, x, d, dots);
                for (int q = 0; q < 4; q++)
                    a[k + q] = b1[k + q] + dots[q];
            }
            for (; k < h; k++)
                a[k] = b1[k] + cpu_dot4(W1 + (size_t)k * d, x, d);
            if (act == FEAT_ACT_RELU) { /* feat_act(), as a loop that vectorises */
                for (k = 0; k < h; k++)
                    hh[k] = a[k] > 0.0 ? a[k] : 0.0;
            } else {
                for (k = 0; k < h; k++)
                    hh[k] = feat_act(a[k], act);
            }
            const double z = b2 + feat_dot4d(w2, hh, h);
            if (loss)
                lsum += binary ? feat_softplus(z) - Y[r] * z : 0.5 * (z - Y[r]) * (z - Y[r]);
            const double e = feat_out_err(z, Y[r], binary) * inv_b;
            *gb2 += e;
            /* the deltas first (a loop without branches), then the rows of
             * the W1 gradient; a zero delta is not skipped, as a branch on it
             * would be mispredicted half the time under ReLU */
            double *dl = work + 2 * (size_t)h;
            for (k = 0; k < h; k++) {
                gw2[k] += e * hh[k];
                dl[k] = feat_mlp_delta(e, w2[k], a[k], hh[k], act);
                gb1[k] += dl[k];
            }
            for (k = 0; k < h; k++) {
                const double dk = dl[k];
                double *g = gW1 + (size_t)k * d;
                for (uint32_t j = 0; j < d; j++)
                    g[j] += dk * (double)x[j];
            }
        }
        for (size_t i = 0; i < nw1; i++)
            gW1[i] += l2 * W1[i];
        for (uint32_t k = 0; k < h; k++)
            gw2[k] += l2 * w2[k];
    }
    if (loss)
        *loss = lsum * inv_b;
}

double feat_cpu_loss_grad(const feat_params_t *p, const feat_dense_t *data, const uint32_t *idx,
                          size_t nb, double l2, double *grad, double *work) {
    double loss = 0.0, reg = 0.0;
    batch_grad(p, data, idx, nb, l2, grad, work, &loss);
    for (size_t i = 0; i < p->n; i++)
        if (feat_params_is_weight(p, i))
            reg += p->w[i] * p->w[i];
    return loss + 0.5 * l2 * reg;
}

/* ---- training --------------------------------------------------------- */

feat_err_t feat_cpu_fit(feat_params_t *p, const feat_dense_t *data, const feat_hyper_t *hp,
                        int (*cancel)(void *), void *cancel_arg) {
    const size_t n = data->n, P = p->n;
    const size_t B = hp->batch_size;
    uint32_t *perm = (uint32_t *)malloc((n ? n : 1) * sizeof(uint32_t));
    double *grad = (double *)malloc(P * sizeof(double));
    double *m = (double *)calloc(P, sizeof(double));
    double *v = (double *)calloc(P, sizeof(double));
    double *work = (double *)malloc(feat_cpu_work_size(p) * sizeof(double));
    feat_err_t err = FEAT_OK;
    if (!perm || !grad || !m || !v || !work) {
        err = FEAT_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    uint64_t s = feat_shuffle_state(hp->seed);
    const double lr = hp->learning_rate, b1 = hp->beta1, b2 = hp->beta2, eps = hp->epsilon;
    double b1t = 1.0, b2t = 1.0;
    for (uint32_t ep = 0; ep < hp->epochs; ep++) {
        if (cancel && cancel(cancel_arg)) {
            err = FEAT_ERR_UNAVAILABLE;
            goto out;
        }
        if (hp->shuffle)
            feat_shuffle(perm, n, &s);
        for (size_t st = 0; st < n; st += B) {
            const size_t nb = n - st < B ? n - st : B;
            batch_grad(p, data, perm + st, nb, hp->l2, grad, work, NULL);
            b1t *= b1;
            b2t *= b2;
            const double c1 = 1.0 - b1t, c2 = 1.0 - b2t;
            double *w = p->w;
            for (size_t i = 0; i < P; i++)
                feat_adam_step(&w[i], &m[i], &v[i], grad[i], lr, b1, b2, eps, c1, c2);
        }
    }
out:
    free(perm);
    free(grad);
    free(m);
    free(v);
    free(work);
    return err;
}
