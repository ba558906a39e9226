/*
 * train/core/kern.h — arithmetic shared by the CPU trainer, the CUDA kernels
 * and the model runtime.  Private to train/core.
 *
 * Every function here is compiled for the host and, under nvcc, for the
 * device, so both backends perform the same double operations in the same
 * order.  Both sides are built without FMA contraction (-ffp-contract=off,
 * nvcc --fmad=false): IEEE +, −, ×, ÷ and sqrt then round identically, and
 * only exp()/tanh()/log1p() may differ by an ulp between libm and CUDA.
 * Change an expression here and both backends change with it.
 */
#ifndef FEAT_TRAIN_CORE_KERN_H
#define FEAT_TRAIN_CORE_KERN_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define FEAT_HD __host__ __device__ static inline
#else
#define FEAT_HD static inline
#endif

#define FEAT_ACT_RELU_ 1
#define FEAT_ACT_TANH_ 2

/* w·x for n elements, as four interleaved partial sums (j mod 4) combined as
 * (s0 + s1) + (s2 + s3); the tail goes to s0.  The four independent chains
 * give the CPU instruction-level parallelism (and vector lanes) while fixing
 * the order for both backends. */
FEAT_HD double feat_dot4(const double *w, const float *x, uint32_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += w[j] * (double)x[j];
        s1 += w[j + 1] * (double)x[j + 1];
        s2 += w[j + 2] * (double)x[j + 2];
        s3 += w[j + 3] * (double)x[j + 3];
    }
    for (; j < n; j++)
        s0 += w[j] * (double)x[j];
    return (s0 + s1) + (s2 + s3);
}

/* Same as feat_dot4 with double inputs (the MLP's hidden activations). */
FEAT_HD double feat_dot4d(const double *w, const double *x, uint32_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    uint32_t j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += w[j] * x[j];
        s1 += w[j + 1] * x[j + 1];
        s2 += w[j + 2] * x[j + 2];
        s3 += w[j + 3] * x[j + 3];
    }
    for (; j < n; j++)
        s0 += w[j] * x[j];
    return (s0 + s1) + (s2 + s3);
}

/* 1 / (1 + e^−z) without overflow. */
FEAT_HD double feat_sigmoid(double z) {
    if (z >= 0.0)
        return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* ln(1 + e^z) without overflow. */
FEAT_HD double feat_softplus(double z) {
    if (z > 0.0)
        return z + log1p(exp(-z));
    return log1p(exp(z));
}

/* Hidden activation and its derivative (given pre-activation a and h = act(a)). */
FEAT_HD double feat_act(double a, int act) {
    if (act == FEAT_ACT_TANH_)
        return tanh(a);
    return a > 0.0 ? a : 0.0;
}
FEAT_HD double feat_dact(double a, double h, int act) {
    if (act == FEAT_ACT_TANH_)
        return 1.0 - h * h;
    return a > 0.0 ? 1.0 : 0.0;
}

/* dLoss/dz for one row before the 1/batch factor: sigmoid(z) − y for log
 * loss, z − y for squared error. */
FEAT_HD double feat_out_err(double z, double y, int binary) {
    return binary ? feat_sigmoid(z) - y : z - y;
}

/* Back-propagated error at hidden unit k: (e·w2[k])·act'(a). */
FEAT_HD double feat_mlp_delta(double e, double w2k, double a, double h, int act) {
    return (e * w2k) * feat_dact(a, h, act);
}

/* One Adam update of a parameter w with gradient g.  c1 = 1 − β1^t and
 * c2 = 1 − β2^t are the bias corrections of step t (t from 1). */
FEAT_HD void feat_adam_step(double *w, double *m, double *v, double g, double lr, double b1,
                            double b2, double eps, double c1, double c2) {
    double mm = b1 * *m + (1.0 - b1) * g;
    double vv = b2 * *v + (1.0 - b2) * (g * g);
    *m = mm;
    *v = vv;
    *w = *w - lr * (mm / c1) / (sqrt(vv / c2) + eps);
}

/* splitmix64: the PRNG of weight initialisation and shuffling (host only in
 * practice; both backends shuffle on the host). */
FEAT_HD uint64_t feat_rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform double in [0, 1) with 53 random bits. */
FEAT_HD double feat_rng_unit(uint64_t *s) {
    return (double)(feat_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
