/*
 * stats/ks.c — two-sample KS statistic and p-value (port of
 * scipy.stats.ks_2samp from SciPy 1.10.1: _stats_py.py and the pythran
 * _compute_outer_prob_inside_method), and KS between two KLL sketches.
 * See ks.h for the contract.
 */
#include "stats/ks.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats_util.h"

#define KS_MAX_AUTO_N 10000u

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ------------------------------------------------------------ statistic */

/* Extremes of cdf1 - cdf2 as SciPy finds them: np.argmax/argmin over the
 * concatenation of sorted data1 and sorted data2 return the first index, so
 * the location is the smallest data1 value attaining the extreme if there is
 * one, else the smallest data2 value. */
typedef struct ks_ext {
    double maxS, minS, loc_max, loc_min;
} ks_ext_t;

static void ks_extremes(const double *a, size_t n1, const double *b, size_t n2, ks_ext_t *e) {
    double max1 = -INFINITY, max2 = -INFINITY, min1 = INFINITY, min2 = INFINITY;
    double lmax1 = 0, lmax2 = 0, lmin1 = 0, lmin2 = 0;
    int have1 = 0, have2 = 0;
    size_t i = 0, j = 0;
    double dn1 = (double)n1, dn2 = (double)n2;
    while (i < n1 || j < n2) {
        double v;
        if (j >= n2 || (i < n1 && a[i] <= b[j])) v = a[i];
        else v = b[j];
        int in1 = 0, in2 = 0;
        while (i < n1 && a[i] == v) { i++; in1 = 1; }
        while (j < n2 && b[j] == v) { j++; in2 = 1; }
        double diff = (double)i / dn1 - (double)j / dn2;
        if (in1) {
            if (!have1 || diff > max1) { max1 = diff; lmax1 = v; }
            if (!have1 || diff < min1) { min1 = diff; lmin1 = v; }
            have1 = 1;
        }
        if (in2) {
            if (!have2 || diff > max2) { max2 = diff; lmax2 = v; }
            if (!have2 || diff < min2) { min2 = diff; lmin2 = v; }
            have2 = 1;
        }
    }
    /* data1 part comes first in data_all: ties go to it */
    if (max1 >= max2) { e->maxS = max1; e->loc_max = lmax1; }
    else { e->maxS = max2; e->loc_max = lmax2; }
    double mn;
    if (min1 <= min2) { mn = min1; e->loc_min = lmin1; }
    else { mn = min2; e->loc_min = lmin2; }
    double m = -mn;                              /* np.clip(-min, 0, 1) */
    e->minS = m < 0.0 ? 0.0 : (m > 1.0 ? 1.0 : m);
}

/* ------------------------------------------------------ exact p-values */

/* Pr(D_{n,n} >= h/n): _compute_prob_outside_square */
static double prob_outside_square(uint64_t n, uint64_t h) {
    double P = 0.0;
    int64_t k = (int64_t)floor((double)n / (double)h);
    while (k >= 0) {
        double p1 = 1.0;
        for (uint64_t j = 0; j < h; j++)
            p1 = (double)((int64_t)n - k * (int64_t)h - (int64_t)j) * p1 /
                 (double)((int64_t)n + k * (int64_t)h + (int64_t)j + 1);
        P = p1 * (1.0 - P);
        k--;
    }
    return 2 * P;
}

/* 1 - Pr(paths stay strictly inside |x/m - y/n| < h/lcm):
 * _compute_outer_prob_inside_method (Hodges 1958; Viehmann 2021 for the
 * recursion on 1 - p).  Returns NaN and sets *nomem on allocation failure. */
static double outer_prob_inside(int64_t m, int64_t n, int64_t g, int64_t h, int *nomem) {
    if (m < n) { int64_t t = m; m = n; n = t; }
    int64_t mg = m / g, ng = n / g;
    int64_t minj = 0, maxj = (int64_t)ceil((double)h / (double)mg);
    if (maxj > n + 1) maxj = n + 1;
    int64_t curlen = maxj - minj;
    int64_t lenA = 2 * maxj + 2;
    if (lenA > n + 1) lenA = n + 1;
    double *A = (double *)malloc((size_t)lenA * sizeof(double));
    if (!A) { *nomem = 1; return NAN; }
    for (int64_t q = 0; q < lenA; q++) A[q] = 1.0;
    for (int64_t q = minj; q < maxj && q < lenA; q++) A[q] = 0.0;
    for (int64_t i = 1; i <= m; i++) {
        int64_t lastminj = minj, lastlen = curlen;
        minj = (int64_t)floor((double)(ng * i - h) / (double)mg) + 1;
        if (minj < 0) minj = 0;
        if (minj > n) minj = n;
        maxj = (int64_t)ceil((double)(ng * i + h) / (double)mg);
        if (maxj > n + 1) maxj = n + 1;
        if (maxj <= minj) { free(A); return 1.0; }
        double val = minj == 0 ? 0.0 : 1.0;
        double di = (double)i;
        for (int64_t jj = 0; jj < maxj - minj; jj++) {
            int64_t j = jj + minj;
            int64_t src = jj + minj - lastminj;
            double prev = src < lenA ? A[src] : 1.0;   /* never past lenA in practice */
            val = (prev * di + val * (double)j) / (di + (double)j);
            A[jj] = val;
        }
        curlen = maxj - minj;
        if (lastlen > curlen) {
            for (int64_t q = maxj - minj; q < maxj - minj + (lastlen - curlen) && q < lenA; q++)
                A[q] = 1.0;
        }
    }
    double r = A[maxj - minj - 1];
    free(A);
    return r;
}

/* Binomial coefficient C(n, k) for integers 0 <= k <= n, as a double
 * (cephes binom: multiplication formula for min(k, n-k) < 20; otherwise from
 * log-gamma in long double).  +inf on overflow. */
static double binom_int(double n, double k) {
    double kx = k;
    if (kx > n / 2 && n > 0) kx = n - kx;
    if (kx >= 0 && kx < 20) {
        double num = 1.0, den = 1.0;
        for (int i = 1; i < 1 + (int)kx; i++) {
            num *= i + n - kx;
            den *= i;
            if (fabs(num) > 1e50) {
                num /= den;
                den = 1.0;
            }
        }
        return num / den;
    }
    long double l = lgammal((long double)n + 1) - lgammal((long double)kx + 1) -
                    lgammal((long double)(n - kx) + 1);
    if (l > (long double)709.782712893384) return INFINITY;
    return (double)expl(l);
}

/* Hodges' sums over the crossing points x_j = xj[0..lxj) (B[] is scratch of
 * lxj values): B(x_j, j) = paths to (x_j, j) that touch the boundary there
 * first, then the paths on to (m, n).  Returns NaN at the first value that
 * is not finite. */
static double sum_paths_outside(int64_t m, int64_t n, const int64_t *xj, int64_t lxj,
                                double *B) {
    B[0] = 1.0;
    for (int64_t j = 1; j < lxj; j++) {
        double Bj = binom_int((double)(xj[j] + j), (double)j);
        if (!isfinite(Bj)) return NAN;
        for (int64_t i = 0; i < j; i++) {
            double t = binom_int((double)(xj[j] - xj[i] + j - i), (double)(j - i)) * B[i];
            if (!isfinite(t)) return NAN;
            Bj -= t;
        }
        if (!isfinite(Bj)) return NAN;
        B[j] = Bj;
    }
    double num_paths = 0.0;
    for (int64_t j = 0; j < lxj; j++) {
        double term = B[j] * binom_int((double)((m - xj[j]) + (n - j)), (double)(n - j));
        if (!isfinite(term)) return NAN;
        num_paths += term;
    }
    return isfinite(num_paths) ? num_paths : NAN;
}

/* Number of lattice paths from (0,0) to (m,n) that reach m y <= n x - h g:
 * _count_paths_outside_method.  Sets *bad when a value is not finite; the
 * count stops there (the caller then falls back to ASYMP, as SciPy does: its
 * errstate turns the first overflow into FloatingPointError).  Counting on
 * past it, as this did, cost O(n^2) binomials (12 s at n = 10^4) for a
 * result that was thrown away. */
static double count_paths_outside(int64_t m, int64_t n, int64_t g, int64_t h, int *bad,
                                  int *nomem) {
    if (m < n) { int64_t t = m; m = n; n = t; }
    int64_t mg = m / g, ng = n / g;
    /* Python floor division */
    int64_t num = mg - h;
    int64_t fd = num / mg;
    if ((num % mg != 0) && ((num < 0) != (mg < 0))) fd--;
    int64_t lxj = n + fd;
    if (lxj <= 0) {
        double r = binom_int((double)(m + n), (double)n);
        if (!isfinite(r)) *bad = 1;
        return r;
    }
    int64_t *xj = (int64_t *)malloc((size_t)lxj * sizeof(int64_t));
    double *B = (double *)malloc((size_t)lxj * sizeof(double));
    if (!xj || !B) {
        free(xj);
        free(B);
        *nomem = 1;
        return NAN;
    }
    for (int64_t j = 0; j < lxj; j++) xj[j] = (h + mg * j + ng - 1) / ng;
    double num_paths = sum_paths_outside(m, n, xj, lxj, B);
    if (isnan(num_paths)) *bad = 1;
    free(xj);
    free(B);
    return num_paths;
}

/* _attempt_exact_2kssamp: returns 1 on success.  *d becomes h/lcm. */
static int attempt_exact(uint64_t n1, uint64_t n2, uint64_t g, double *d, feat_ks_alt_t alt,
                         double *prob, int *nomem) {
    uint64_t lcm = (n1 / g) * n2;
    double dl = (double)lcm;
    double hd = rint(*d * dl);
    int64_t h = (int64_t)hd;
    *d = hd * 1.0 / dl;
    if (h == 0) {
        *prob = 1.0;
        return 1;
    }
    double p = NAN;
    int bad = 0;
    if (alt == FEAT_KS_TWO_SIDED) {
        if (n1 == n2) p = prob_outside_square(n1, (uint64_t)h);
        else p = outer_prob_inside((int64_t)n1, (int64_t)n2, (int64_t)g, h, nomem);
    } else {
        if (n1 == n2) {
            p = 1.0;
            for (int64_t j = 0; j < h; j++)
                p *= ((double)n1 - (double)j) / ((double)n1 + (double)j + 1.0);
        } else {
            /* C(n1+n2, n1) overflows a double from n1 + n2 of about 1030:
             * then the ratio cannot be formed and SciPy falls back to ASYMP
             * whatever the count; so do we, without counting (O(1)). */
            double bin = binom_int((double)(n1 + n2), (double)n1);
            double num_paths = NAN;
            if (isinf(bin)) bad = 1;
            else num_paths = count_paths_outside((int64_t)n1, (int64_t)n2, (int64_t)g, h,
                                                 &bad, nomem);
            if (bad || num_paths > bin) bad = 1;
            else p = num_paths / bin;
        }
    }
    if (*nomem) return 0;
    *prob = p;
    if (bad) return 0;
    if (!(p >= 0.0 && p <= 1.0)) return 0;
    return 1;
}

static double asymp_pvalue(double d, uint64_t n1, uint64_t n2, feat_ks_alt_t alt, int limit) {
    double m = (double)n1, n = (double)n2;
    if (m < n) { double t = m; m = n; n = t; }
    double en = m * n / (m + n);
    if (alt == FEAT_KS_TWO_SIDED && limit) return feat_ks_kolmogorov_sf(sqrt(en) * d);
    if (alt == FEAT_KS_TWO_SIDED) {
        double N = rint(en);
        if (N < 1.0) return NAN;
        return feat_ks_kstwo_sf((uint64_t)N, d);
    }
    double z = sqrt(en) * d;
    double expt = -2 * z * z - 2 * z * (m + 2 * n) / sqrt(m * n * (m + n)) / 3.0;
    return exp(expt);
}

static double clip_prob(double p) {
    if (p < 0.0) return 0.0;
    if (p > 1.0) return 1.0;
    return p;
}

feat_err_t feat_ks_pvalue(double d, uint64_t n1, uint64_t n2, feat_ks_alt_t alt,
                          feat_ks_method_t method, double *pvalue, double *d_used,
                          feat_ks_method_t *method_used) {
    if (n1 == 0 || n2 == 0 || !pvalue || !(d >= 0.0 && d <= 1.0)) return FEAT_ERR_INVALID;
    if ((unsigned)alt > FEAT_KS_GREATER || (unsigned)method > FEAT_KS_LIMIT) return FEAT_ERR_INVALID;
    uint64_t g = gcd_u64(n1, n2);
    uint64_t n1g = n1 / g, n2g = n2 / g;
    feat_ks_method_t mode = method;
    if (mode == FEAT_KS_AUTO) {
        mode = (n1 > n2 ? n1 : n2) <= KS_MAX_AUTO_N ? FEAT_KS_EXACT : FEAT_KS_ASYMP;
    } else if (mode == FEAT_KS_EXACT) {
        if ((double)n1g >= 2147483647.0 / (double)n2g) mode = FEAT_KS_ASYMP;
    }
    double prob = NAN;
    if (mode == FEAT_KS_EXACT) {
        int nomem = 0;
        if (!attempt_exact(n1, n2, g, &d, alt, &prob, &nomem)) {
            if (nomem) return FEAT_ERR_NOMEM;
            mode = FEAT_KS_ASYMP;
        }
    }
    if (mode == FEAT_KS_ASYMP || mode == FEAT_KS_LIMIT)
        prob = asymp_pvalue(d, n1, n2, alt, mode == FEAT_KS_LIMIT);
    *pvalue = clip_prob(prob);
    if (d_used) *d_used = d;
    if (method_used) *method_used = mode;
    return FEAT_OK;
}

/* ------------------------------------------------------------ on samples */

feat_err_t feat_ks_2samp_sorted(const double *x1, size_t n1, const double *x2, size_t n2,
                                feat_ks_alt_t alt, feat_ks_method_t method,
                                feat_ks_result_t *out) {
    if (!x1 || !x2 || !out || n1 == 0 || n2 == 0) return FEAT_ERR_INVALID;
    if ((unsigned)alt > FEAT_KS_GREATER || (unsigned)method > FEAT_KS_LIMIT) return FEAT_ERR_INVALID;
    for (size_t i = 0; i < n1; i++) if (x1[i] != x1[i]) return FEAT_ERR_INVALID;
    for (size_t i = 0; i < n2; i++) if (x2[i] != x2[i]) return FEAT_ERR_INVALID;
    ks_ext_t e;
    ks_extremes(x1, n1, x2, n2, &e);
    double d;
    if (alt == FEAT_KS_LESS || (alt == FEAT_KS_TWO_SIDED && e.minS > e.maxS)) {
        d = e.minS;
        out->location = e.loc_min;
        out->sign = -1;
    } else {
        d = e.maxS;
        out->location = e.loc_max;
        out->sign = 1;
    }
    double p, du;
    feat_ks_method_t mu;
    feat_err_t err = feat_ks_pvalue(d, n1, n2, alt, method, &p, &du, &mu);
    if (err != FEAT_OK) return err;
    out->statistic = du;
    out->pvalue = p;
    out->method = mu;
    return FEAT_OK;
}

feat_err_t feat_ks_2samp(const double *x1, size_t n1, const double *x2, size_t n2,
                         feat_ks_alt_t alt, feat_ks_method_t method, feat_ks_result_t *out) {
    if (!x1 || !x2 || !out || n1 == 0 || n2 == 0) return FEAT_ERR_INVALID;
    if (n1 > SIZE_MAX / sizeof(double) - n2) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < n1; i++) if (x1[i] != x1[i]) return FEAT_ERR_INVALID;
    for (size_t i = 0; i < n2; i++) if (x2[i] != x2[i]) return FEAT_ERR_INVALID;
    double *buf = (double *)malloc((n1 + n2) * sizeof(double));
    if (!buf) return FEAT_ERR_NOMEM;
    memcpy(buf, x1, n1 * sizeof(double));
    memcpy(buf + n1, x2, n2 * sizeof(double));
    feat_sort_f64(buf, n1);
    feat_sort_f64(buf + n1, n2);
    feat_err_t err = feat_ks_2samp_sorted(buf, n1, buf + n1, n2, alt, method, out);
    free(buf);
    return err;
}

/* ------------------------------------------------------------ on sketches */

feat_err_t feat_ks_kll(feat_kll_t *s1, feat_kll_t *s2, feat_ks_alt_t alt,
                       feat_ks_method_t method, double delta, feat_ks_sketch_result_t *out) {
    if (!s1 || !s2 || !out || s1 == s2 || !(delta > 0.0 && delta < 1.0)) return FEAT_ERR_INVALID;
    if ((unsigned)alt > FEAT_KS_GREATER || (unsigned)method > FEAT_KS_LIMIT) return FEAT_ERR_INVALID;
    uint64_t n1 = feat_kll_count(s1), n2 = feat_kll_count(s2);
    if (n1 == 0 || n2 == 0) return FEAT_ERR_STATE;
    feat_kll_iter_t it1, it2;
    feat_kll_iter_begin(s1, &it1);
    feat_kll_iter_begin(s2, &it2);
    double v1, v2;
    uint64_t w1, w2, c1 = 0, c2 = 0;
    int h1 = feat_kll_iter_next(&it1, &v1, &w1);
    int h2 = feat_kll_iter_next(&it2, &v2, &w2);
    double dn1 = (double)n1, dn2 = (double)n2;
    double maxS = 0.0, minS = 0.0, lmax = 0.0, lmin = 0.0;
    int first = 1;
    while (h1 || h2) {
        double v = (!h2 || (h1 && v1 <= v2)) ? v1 : v2;
        while (h1 && v1 == v) { c1 += w1; h1 = feat_kll_iter_next(&it1, &v1, &w1); }
        while (h2 && v2 == v) { c2 += w2; h2 = feat_kll_iter_next(&it2, &v2, &w2); }
        double diff = (double)c1 / dn1 - (double)c2 / dn2;
        if (first || diff > maxS) { maxS = diff; lmax = v; }
        if (first || diff < minS) { minS = diff; lmin = v; }
        first = 0;
    }
    double mS = -minS;
    mS = mS < 0.0 ? 0.0 : (mS > 1.0 ? 1.0 : mS);
    if (maxS < 0.0) maxS = 0.0;
    double d;
    if (alt == FEAT_KS_LESS || (alt == FEAT_KS_TWO_SIDED && mS > maxS)) {
        d = mS;
        out->location = lmin;
        out->sign = -1;
    } else {
        d = maxS;
        out->location = lmax;
        out->sign = 1;
    }
    double p;
    feat_ks_method_t mu;
    feat_err_t err = feat_ks_pvalue(d, n1, n2, alt, method, &p, NULL, &mu);
    if (err != FEAT_OK) return err;
    out->statistic = d;
    out->pvalue = p;
    out->method = mu;
    out->error_bound = feat_kll_rank_error(s1, delta / 2) + feat_kll_rank_error(s2, delta / 2);
    out->n1 = n1;
    out->n2 = n2;
    return FEAT_OK;
}
