/*
 * stats/ks.h — two-sample Kolmogorov–Smirnov test on samples and on sketches.
 *
 * feat_ks_2samp() is a port of scipy.stats.ks_2samp (SciPy 1.10.1) and agrees
 * with it: the statistic to the last bit (it is computed the same way), the
 * p-value to about 1e-10 relative (tested at 1e-6).  Same rules:
 *  - method AUTO tries the exact distribution when max(n1, n2) <= 10000 and
 *    uses the asymptotic one otherwise; EXACT switches to ASYMP when
 *    lcm(n1, n2) would not fit in 31 bits;
 *  - the exact path rounds D onto the lattice h / lcm(n1, n2) (the statistic
 *    reported is that rounded value), and falls back to ASYMP when its result
 *    is not a probability (it can exceed 1 by rounding) or cannot be computed;
 *  - two-sided ASYMP is kstwo.sf(D, round(n1 n2 / (n1 + n2))), the
 *    distribution of the one-sample statistic (Simard & L'Ecuyer 2011);
 *    one-sided ASYMP is Hodges' formula 5.3;
 *  - ties are handled (ECDFs are compared at every distinct value).
 * FEAT_KS_LIMIT is not a SciPy ks_2samp method: the two-sided p-value is
 * Kolmogorov's limiting distribution Q(sqrt(en) D) (scipy.stats.kstwobign.sf,
 * en = n1 n2 / (n1 + n2), not rounded), one-sided as ASYMP (Hodges).  It costs
 * O(1) whatever the sizes, and differs from kstwo by O(1/sqrt(en)) relative —
 * far less than the uncertainty of a statistic taken from sketches — so it is
 * the method to use for window-close comparisons of sketches (see the costs
 * below and tests/bench/bench_drift.c).
 * The one-sided exact p-value for n1 != n2 uses path counting with binomial
 * coefficients, whose cancellation makes it (like SciPy's) less precise for
 * large samples.  It needs C(n1+n2, n1) as a double, so it is only tried up
 * to n1 + n2 of about 1030 (beyond, it falls back to ASYMP at once, as SciPy
 * does after its overflow); there it is O(min(n1,n2)^2) binomials,
 * 35-60 ms at worst (515 vs 514 on the dev VM), and it stops at the first
 * count that overflows.
 *
 * Costs: sorting (feat_ks_2samp copies its inputs: one malloc of n1+n2
 * doubles); the exact two-sided p-value is O(n1 + n2) when n1 == n2 and
 * O(max * band) <= O(n1 n2) otherwise (milliseconds at 10^4), with an
 * O(min(n1,n2)) scratch allocation; ASYMP is O(1) except where SciPy sums
 * Smirnov's exact series — en D^2 >= 2.2, i.e. p below about 0.02 — which is
 * O(en) at about 45 ns a term (0.3 ms at en = 7000, 20 ms at en = 5e5), and
 * it may allocate a small matrix (at most about 120 x 120 doubles) when
 * en <= 100000 and D is small.  LIMIT is O(1) and allocation-free.  Nothing
 * here is per-event work.
 *
 * All functions are reentrant and thread-safe (no global state), except that
 * feat_ks_kll() reorders level 0 of its sketches (see kll.h).
 */
#ifndef FEAT_STATS_KS_H
#define FEAT_STATS_KS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "stats/kll.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum feat_ks_alt {
    FEAT_KS_TWO_SIDED = 0,
    FEAT_KS_LESS = 1,     /* alternative: F1(x) < F2(x) somewhere (as SciPy) */
    FEAT_KS_GREATER = 2   /* alternative: F1(x) > F2(x) somewhere */
} feat_ks_alt_t;

typedef enum feat_ks_method {
    FEAT_KS_AUTO = 0,     /* SciPy's rule: EXACT if max(n1, n2) <= 10000, else ASYMP */
    FEAT_KS_EXACT = 1,
    FEAT_KS_ASYMP = 2,    /* SciPy's asymptotic: kstwo.sf(D, round(en)) */
    FEAT_KS_LIMIT = 3     /* not in SciPy's ks_2samp: Kolmogorov's limit, O(1) */
} feat_ks_method_t;

typedef struct feat_ks_result {
    double statistic;          /* D (on the lattice h/lcm when EXACT was tried) */
    double pvalue;             /* in [0,1]; NaN only if round(n1 n2/(n1+n2)) = 0 under ASYMP */
    double location;           /* a value where D is attained (as SciPy chooses) */
    int sign;                  /* +1 if F1 > F2 there, -1 otherwise */
    feat_ks_method_t method;   /* EXACT, ASYMP or LIMIT: what produced pvalue */
} feat_ks_result_t;

/* Two-sample KS test of x1[0..n1) against x2[0..n2) (any order).
 * Returns FEAT_ERR_INVALID for n1 == 0, n2 == 0, NULL pointers, a NaN value
 * or a bad alt/method; FEAT_ERR_NOMEM if scratch allocation fails. */
feat_err_t feat_ks_2samp(const double *x1, size_t n1, const double *x2, size_t n2,
                         feat_ks_alt_t alt, feat_ks_method_t method,
                         feat_ks_result_t *out);

/* The same on inputs already sorted ascending (not checked beyond NaN);
 * nothing is copied. */
feat_err_t feat_ks_2samp_sorted(const double *x1, size_t n1, const double *x2, size_t n2,
                                feat_ks_alt_t alt, feat_ks_method_t method,
                                feat_ks_result_t *out);

/* p-value of a statistic d in [0,1] for sample sizes n1, n2 >= 1, with
 * SciPy's method selection and fallback.  *d_used receives d, or its lattice
 * rounding when the exact method was tried (NULL to ignore); *method_used
 * the method that produced the p-value (NULL to ignore). */
feat_err_t feat_ks_pvalue(double d, uint64_t n1, uint64_t n2, feat_ks_alt_t alt,
                          feat_ks_method_t method, double *pvalue, double *d_used,
                          feat_ks_method_t *method_used);

/* Survival function of the two-sided one-sample KS statistic D_n:
 * P(D_n >= x), as scipy.stats.kstwo.sf(x, n).  NaN for n == 0 or x NaN. */
double feat_ks_kstwo_sf(uint64_t n, double x);

/* Kolmogorov's limiting distribution: P(K >= z) = 2 sum_{k>=1} (-1)^(k-1)
 * exp(-2 k^2 z^2), as scipy.special.kolmogorov(z) (= kstwobign.sf). */
double feat_ks_kolmogorov_sf(double z);

/* Survival function of the one-sided statistic D_n^+: P(D_n^+ >= x), as
 * scipy.special.smirnov(n, x).  NaN outside n >= 1, 0 <= x <= 1. */
double feat_ks_smirnov_sf(uint64_t n, double x);

/* Result of a KS comparison of two sketches. */
typedef struct feat_ks_sketch_result {
    double statistic;      /* sup |F^1 - F^2| over all x, from the sketches */
    double pvalue;         /* p-value of statistic at the true stream sizes */
    double location;       /* smallest value where the statistic is attained */
    int sign;              /* +1 if F^1 > F^2 there */
    feat_ks_method_t method;
    double error_bound;    /* |statistic - D_exact| <= error_bound w.p. >= 1-delta */
    uint64_t n1, n2;       /* stream sizes (exact) */
} feat_ks_sketch_result_t;

/* KS statistic between the streams summarised by two sketches, with a
 * p-value computed at their true sizes (feat_ks_pvalue, same alt/method;
 * FEAT_KS_LIMIT recommended: AUTO/EXACT/ASYMP follow SciPy and can cost
 * milliseconds, see above).
 * error_bound = feat_kll_rank_error(s1, delta/2) + feat_kll_rank_error(s2,
 * delta/2): with probability at least 1 - delta the statistic is within it of
 * the statistic of the full streams (triangle inequality on the sup norm).
 * Two sketches fed one stream each with different seeds are independent; the
 * bound does not need independence.  Sorts level 0 of both sketches in place.
 * FEAT_ERR_INVALID: NULL, s1 == s2, bad delta, alt or method;
 * FEAT_ERR_STATE: an empty sketch. */
feat_err_t feat_ks_kll(feat_kll_t *s1, feat_kll_t *s2, feat_ks_alt_t alt,
                       feat_ks_method_t method, double delta,
                       feat_ks_sketch_result_t *out);

#ifdef __cplusplus
}
#endif
#endif
