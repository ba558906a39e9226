/*
 * train/core/kern_epoch.h — one training epoch as the GPU runs it: phases
 * of a mini-batch step, each written for "thread tid of nt".  Private to
 * train/core.
 *
 * gpu_train.cu runs every phase in one CUDA block, with __syncthreads()
 * between phases.  Within a phase each thread writes its own outputs and
 * reads only what earlier phases wrote, so running the threads one after
 * another gives the same result: tests/test_gpu_emul.c does exactly that on
 * the CPU and checks the outcome bit for bit against feat_cpu_fit(), which
 * pins down the kernels' order of operations without a GPU.
 *
 * Order (the CPU's, cpu_train.c): each gradient entry is a sum over the
 * batch's rows in visiting order starting from 0.0, plus the L2 term last;
 * then one Adam update per weight.
 */
#ifndef FEAT_TRAIN_CORE_KERN_EPOCH_H
#define FEAT_TRAIN_CORE_KERN_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "train/core/kern.h"

typedef struct feat_epoch_args {
    const float *X;           /* n × d inputs */
    const double *Y;          /* n targets */
    const uint32_t *perm;     /* this epoch's row order */
    uint32_t n, d, h, B;      /* rows, inputs, hidden units (MLP), batch size */
    int binary, act;
    double lr, l2, b1, b2, eps;
    double *w, *m, *v;        /* weights (layout in model.h), Adam moments */
    double *e;                /* B output errors */
    double *A, *H, *D;        /* B × h: pre-activations, activations, deltas (MLP) */
} feat_epoch_args_t;

typedef struct feat_step {
    uint32_t st, nb;          /* first position in perm, rows in the batch */
    double inv_b, c1, c2;     /* 1/nb, Adam bias corrections */
} feat_step_t;

/* Starts the step at position st: advances β1^t, β2^t (*b1t, *b2t). */
FEAT_HD feat_step_t feat_step_begin(const feat_epoch_args_t *a, uint32_t st, double *b1t,
                                    double *b2t) {
    feat_step_t s;
    s.st = st;
    s.nb = a->n - st < a->B ? a->n - st : a->B;
    s.inv_b = 1.0 / (double)s.nb;
    *b1t *= a->b1;
    *b2t *= a->b2;
    s.c1 = 1.0 - *b1t;
    s.c2 = 1.0 - *b2t;
    return s;
}

/* ---- linear models: w[0..d) weights, w[d] bias -------------------------- */

/* Phase 1, a thread per row: output errors. */
FEAT_HD void feat_lin_phase1(const feat_epoch_args_t *a, const feat_step_t *s, uint32_t tid,
                             uint32_t nt) {
    const uint32_t *idx = a->perm + s->st;
    for (uint32_t i = tid; i < s->nb; i += nt) {
        const uint32_t r = idx[i];
        const double z = a->w[a->d] + feat_dot4(a->w, a->X + (size_t)r * a->d, a->d);
        a->e[i] = feat_out_err(z, a->Y[r], a->binary) * s->inv_b;
    }
}

/* Phase 2, a thread per weight (the bias last): gradient and Adam update. */
FEAT_HD void feat_lin_phase2(const feat_epoch_args_t *a, const feat_step_t *s, uint32_t tid,
                             uint32_t nt) {
    const uint32_t *idx = a->perm + s->st;
    const uint32_t d = a->d;
    for (uint32_t j = tid; j <= d; j += nt) {
        double g = 0.0;
        if (j < d) {
            for (uint32_t i = 0; i < s->nb; i++)
                g += a->e[i] * (double)a->X[(size_t)idx[i] * d + j];
            g += a->l2 * a->w[j];
        } else {
            for (uint32_t i = 0; i < s->nb; i++)
                g += a->e[i];
        }
        feat_adam_step(&a->w[j], &a->m[j], &a->v[j], g, a->lr, a->b1, a->b2, a->eps, s->c1,
                       s->c2);
    }
}

/* ---- MLP: W1[h][d], b1[h], w2[h], b2 ------------------------------------ */

/* Phase 1, a thread per (row, unit): hidden pre-activations and activations. */
FEAT_HD void feat_mlp_phase1(const feat_epoch_args_t *a, const feat_step_t *s, uint32_t tid,
                             uint32_t nt) {
    const uint32_t *idx = a->perm + s->st;
    const uint32_t d = a->d, h = a->h, nbh = s->nb * h;
    const double *W1 = a->w, *b1 = a->w + (size_t)h * d;
    for (uint32_t t = tid; t < nbh; t += nt) {
        const uint32_t i = t / h, k = t - i * h;
        const double pre = b1[k] + feat_dot4(W1 + (size_t)k * d, a->X + (size_t)idx[i] * d, d);
        a->A[t] = pre;
        a->H[t] = feat_act(pre, a->act);
    }
}

/* Phase 2, a thread per row: output errors. */
FEAT_HD void feat_mlp_phase2(const feat_epoch_args_t *a, const feat_step_t *s, uint32_t tid,
                             uint32_t nt) {
    const uint32_t *idx = a->perm + s->st;
    const uint32_t h = a->h;
    const double *w2 = a->w + (size_t)h * a->d + h;
    for (uint32_t i = tid; i < s->nb; i += nt) {
        const double z = w2[h] + feat_dot4d(w2, a->H + (size_t)i * h, h);
        a->e[i] = feat_out_err(z, a->Y[idx[i]], a->binary) * s->inv_b;
    }
}

/* Phase 3, a thread per (row, unit): back-propagated errors. */
FEAT_HD void feat_mlp_phase3(const feat_epoch_args_t *a, const feat_step_t *s, uint32_t tid,
                             uint32_t nt) {
    const uint32_t h = a->h, nbh = s->nb * h;
    const double *w2 = a->w + (size_t)h * a->d + h;
    for (uint32_t t = tid; t < nbh; t += nt) {
        const uint32_t i = t / h, k = t - i * h;
        a->D[t] = feat_mlp_delta(a->e[i], w2[k], a->A[t], a->H[t], a->act);
    }
}

/* Phase 4, a thread per W1 weight, per unit (b1 and w2), and one for b2:
 * gradients and Adam updates.  Reads only phase 1–3 outputs and the weight
 * it updates. */
FEAT_HD void feat_mlp_phase4(const feat_epoch_args_t *a, const feat_step_t *s, uint32_t tid,
                             uint32_t nt) {
    const uint32_t *idx = a->perm + s->st;
    const uint32_t d = a->d, h = a->h, nb = s->nb;
    const size_t nw1 = (size_t)h * d;
    double *W1 = a->w, *b1 = a->w + nw1, *w2 = b1 + h;
    for (size_t q = tid; q < nw1 + h + 1; q += nt) {
        if (q < nw1) {
            const uint32_t k = (uint32_t)(q / d), j = (uint32_t)(q - (size_t)k * d);
            double g = 0.0;
            for (uint32_t i = 0; i < nb; i++)
                g += a->D[(size_t)i * h + k] * (double)a->X[(size_t)idx[i] * d + j];
            g += a->l2 * W1[q];
            feat_adam_step(&W1[q], &a->m[q], &a->v[q], g, a->lr, a->b1, a->b2, a->eps, s->c1,
                           s->c2);
        } else if (q < nw1 + h) {
            const uint32_t k = (uint32_t)(q - nw1);
            double gw = 0.0, gb = 0.0;
            for (uint32_t i = 0; i < nb; i++)
                gw += a->e[i] * a->H[(size_t)i * h + k];
            for (uint32_t i = 0; i < nb; i++)
                gb += a->D[(size_t)i * h + k];
            gw += a->l2 * w2[k];
            const size_t qb = nw1 + k, qw = nw1 + h + k;
            feat_adam_step(&b1[k], &a->m[qb], &a->v[qb], gb, a->lr, a->b1, a->b2, a->eps, s->c1,
                           s->c2);
            feat_adam_step(&w2[k], &a->m[qw], &a->v[qw], gw, a->lr, a->b1, a->b2, a->eps, s->c1,
                           s->c2);
        } else {
            double g = 0.0;
            for (uint32_t i = 0; i < nb; i++)
                g += a->e[i];
            const size_t qb2 = nw1 + 2 * (size_t)h;
            feat_adam_step(&w2[h], &a->m[qb2], &a->v[qb2], g, a->lr, a->b1, a->b2, a->eps, s->c1,
                           s->c2);
        }
    }
}

#endif
