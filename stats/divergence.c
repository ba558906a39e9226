/*
 * stats/divergence.c — bins at reference quantiles, KL, PSI, JS distance,
 * chi-square tests and the regularized incomplete gamma function.
 * See divergence.h for the contract and the choice of epsilon.
 */
#include "stats/divergence.h"

#include <float.h>
#include <math.h>

/* ------------------------------------------------------------------ bins */

/* appends e unless it equals the previous edge or is >= the maximum */
static void push_edge(double *edges, uint32_t *ne, double e, double maxv) {
    if (!(e < maxv)) return;
    if (*ne > 0 && edges[*ne - 1] == e) return;
    edges[(*ne)++] = e;
}

feat_err_t feat_bins_edges_sorted(const double *x, size_t n, uint32_t n_bins,
                                  double *edges, uint32_t *nedges) {
    if (!x || !edges || !nedges || n == 0 || n_bins < 2 || n_bins > FEAT_BINS_MAX)
        return FEAT_ERR_INVALID;
    if (x[0] != x[0] || x[n - 1] != x[n - 1]) return FEAT_ERR_INVALID;
    size_t q = n / n_bins, r = n % n_bins;
    uint32_t ne = 0;
    double maxv = x[n - 1];
    for (uint32_t i = 1; i < n_bins; i++) {
        /* ceil(i n / n_bins) - 1, without overflow */
        size_t c = (size_t)i * q + ((size_t)i * r + n_bins - 1) / n_bins;
        push_edge(edges, &ne, x[c - 1], maxv);
    }
    *nedges = ne;
    return FEAT_OK;
}

feat_err_t feat_bins_edges_kll(feat_kll_t *ref, uint32_t n_bins, double *edges,
                               uint32_t *nedges) {
    if (!ref || !edges || !nedges || n_bins < 2 || n_bins > FEAT_BINS_MAX)
        return FEAT_ERR_INVALID;
    if (feat_kll_is_empty(ref)) return FEAT_ERR_STATE;
    uint32_t ne = 0;
    double maxv = feat_kll_max(ref);
    for (uint32_t i = 1; i < n_bins; i++) {
        double e;
        feat_err_t err = feat_kll_quantile(ref, (double)i / (double)n_bins, &e);
        if (err != FEAT_OK) return err;
        push_edge(edges, &ne, e, maxv);
    }
    *nedges = ne;
    return FEAT_OK;
}

uint32_t feat_bins_index(const double *edges, uint32_t nedges, double x) {
    if (x != x) return nedges;
    uint32_t lo = 0, hi = nedges;             /* first edge >= x */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (edges[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

feat_err_t feat_bins_count_sample(const double *x, size_t n, const double *edges,
                                  uint32_t nedges, double *counts) {
    if ((!x && n) || (!edges && nedges) || !counts || nedges >= FEAT_BINS_MAX)
        return FEAT_ERR_INVALID;
    for (uint32_t i = 0; i <= nedges; i++) counts[i] = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != x[i]) return FEAT_ERR_INVALID;
        counts[feat_bins_index(edges, nedges, x[i])] += 1.0;
    }
    return FEAT_OK;
}

feat_err_t feat_bins_count_kll(const feat_kll_t *s, const double *edges, uint32_t nedges,
                               double *counts) {
    if (!s || (!edges && nedges) || !counts || nedges >= FEAT_BINS_MAX) return FEAT_ERR_INVALID;
    uint64_t prev = 0, n = feat_kll_count(s);
    for (uint32_t i = 0; i < nedges; i++) {
        uint64_t r = feat_kll_rank(s, edges[i], 1);
        if (r < prev) r = prev;               /* edges must ascend; stay monotone */
        counts[i] = (double)(r - prev);
        prev = r;
    }
    counts[nedges] = (double)(n - prev);
    return FEAT_OK;
}

/* ------------------------------------------------------------ divergences */

static feat_err_t total_of(const double *c, size_t n, double *sum) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(c[i] >= 0.0) || isinf(c[i])) return FEAT_ERR_INVALID;
        s += c[i];
    }
    if (!(s > 0.0) || isinf(s)) return FEAT_ERR_INVALID;
    *sum = s;
    return FEAT_OK;
}

/* p log(p/q) with 0 log 0 = 0 and p log(p/0) = +inf */
static double xlogxy(double p, double q) {
    if (p == 0.0) return 0.0;
    if (q == 0.0) return INFINITY;
    return p * log(p / q);
}

feat_err_t feat_kl_divergence(const double *p, const double *q, size_t nbins, double eps,
                              double *out) {
    double sp, sq;
    if (!p || !q || !out || nbins == 0 || !(eps >= 0.0) || isinf(eps)) return FEAT_ERR_INVALID;
    if (total_of(p, nbins, &sp) || total_of(q, nbins, &sq)) return FEAT_ERR_INVALID;
    double norm = 1.0 + (double)nbins * eps, kl = 0.0;
    for (size_t i = 0; i < nbins; i++) {
        double a = (p[i] / sp + eps) / norm, b = (q[i] / sq + eps) / norm;
        kl += xlogxy(a, b);
    }
    *out = kl < 0.0 ? 0.0 : kl;               /* rounding can give -1e-17 */
    return FEAT_OK;
}

feat_err_t feat_psi(const double *ref, const double *live, size_t nbins, double eps,
                    double *out) {
    double sr, sl;
    if (!ref || !live || !out || nbins == 0 || !(eps >= 0.0) || isinf(eps)) return FEAT_ERR_INVALID;
    if (total_of(ref, nbins, &sr) || total_of(live, nbins, &sl)) return FEAT_ERR_INVALID;
    double norm = 1.0 + (double)nbins * eps, psi = 0.0;
    for (size_t i = 0; i < nbins; i++) {
        double r = (ref[i] / sr + eps) / norm, l = (live[i] / sl + eps) / norm;
        if (r == l) continue;
        if (r == 0.0 || l == 0.0) {
            psi = INFINITY;
            continue;
        }
        psi += (l - r) * log(l / r);
    }
    *out = psi;
    return FEAT_OK;
}

feat_err_t feat_js_distance(const double *p, const double *q, size_t nbins, double *out) {
    double sp, sq;
    if (!p || !q || !out || nbins == 0) return FEAT_ERR_INVALID;
    if (total_of(p, nbins, &sp) || total_of(q, nbins, &sq)) return FEAT_ERR_INVALID;
    double left = 0.0, right = 0.0;
    for (size_t i = 0; i < nbins; i++) {
        double a = p[i] / sp, b = q[i] / sq, m = (a + b) / 2.0;
        left += xlogxy(a, m);
        right += xlogxy(b, m);
    }
    double js = (left + right) / 2.0 / log(2.0);
    *out = js > 0.0 ? sqrt(js) : 0.0;
    return FEAT_OK;
}

feat_err_t feat_divergences(const double *ref, const double *live, size_t nbins, double eps,
                            feat_divergences_t *out) {
    feat_divergences_t d;
    if (!out) return FEAT_ERR_INVALID;
    feat_err_t err = feat_kl_divergence(live, ref, nbins, eps, &d.kl);
    if (err == FEAT_OK) err = feat_psi(ref, live, nbins, eps, &d.psi);
    if (err == FEAT_OK) err = feat_js_distance(live, ref, nbins, &d.js);
    if (err != FEAT_OK) return err;
    *out = d;
    return FEAT_OK;
}

/* -------------------------------------------------------- incomplete gamma */

#define IG_MAXITER 1000000
#define IG_EPS 1e-17

/* log(x^a e^-x / Gamma(a)) in long double (absolute error ~1e-19 |terms|) */
static long double ig_logfac(double a, double x) {
    return (long double)a * logl((long double)x) - (long double)x - lgammal((long double)a);
}

/* P(a,x) by the series sum x^n / (a (a+1) ... (a+n)); good for x < a + 1 */
static double ig_series_p(double a, double x) {
    long double sum = 1.0L / a, term = sum, ap = a;
    for (int i = 0; i < IG_MAXITER; i++) {
        ap += 1.0L;
        term *= (long double)x / ap;
        sum += term;
        if (term < sum * (long double)IG_EPS) break;
    }
    return (double)(sum * expl(ig_logfac(a, x)));
}

/* Q(a,x) by the continued fraction (modified Lentz); good for x >= a + 1 */
static double ig_cf_q(double a, double x) {
    const long double tiny = 1e-300L;
    long double b = (long double)x + 1.0L - a, c = 1.0L / tiny, d = 1.0L / b, h = d;
    for (int i = 1; i < IG_MAXITER; i++) {
        long double an = -(long double)i * ((long double)i - a);
        b += 2.0L;
        d = an * d + b;
        if (fabsl(d) < tiny) d = tiny;
        c = b + an / c;
        if (fabsl(c) < tiny) c = tiny;
        d = 1.0L / d;
        long double del = d * c;
        h *= del;
        if (fabsl(del - 1.0L) < (long double)IG_EPS) break;
    }
    return (double)(expl(ig_logfac(a, x)) * h);
}

double feat_gamma_p(double a, double x) {
    if (!(a > 0.0) || !(x >= 0.0) || isinf(a)) return NAN;
    if (x == 0.0) return 0.0;
    if (isinf(x)) return 1.0;
    if (x < a + 1.0) return ig_series_p(a, x);
    return 1.0 - ig_cf_q(a, x);
}

double feat_gamma_q(double a, double x) {
    if (!(a > 0.0) || !(x >= 0.0) || isinf(a)) return NAN;
    if (x == 0.0) return 1.0;
    if (isinf(x)) return 0.0;
    if (x < a + 1.0) return 1.0 - ig_series_p(a, x);
    return ig_cf_q(a, x);
}

double feat_chi2_sf(double x, double dof) {
    if (!(dof > 0.0) || x != x) return NAN;
    if (x <= 0.0) return 1.0;
    return feat_gamma_q(dof / 2.0, x / 2.0);
}

/* ------------------------------------------------------------ chi-square */

feat_err_t feat_chi2_homogeneity(const double *ref, const double *live, size_t ncat,
                                 feat_chi2_result_t *out) {
    double sr, sl;
    if (!ref || !live || !out || ncat == 0) return FEAT_ERR_INVALID;
    if (total_of(ref, ncat, &sr) || total_of(live, ncat, &sl)) return FEAT_ERR_INVALID;
    double total = sr + sl, stat = 0.0;
    uint32_t used = 0;
    for (size_t i = 0; i < ncat; i++) {
        double col = ref[i] + live[i];
        if (col == 0.0) continue;
        used++;
        double er = sr * col / total, el = sl * col / total;
        stat += (ref[i] - er) * (ref[i] - er) / er + (live[i] - el) * (live[i] - el) / el;
    }
    out->ncat = used;
    if (used < 2) {
        out->statistic = 0.0;
        out->pvalue = 1.0;
        out->dof = 0.0;
        return FEAT_OK;
    }
    out->statistic = stat;
    out->dof = (double)(used - 1);
    out->pvalue = feat_chi2_sf(stat, out->dof);
    return FEAT_OK;
}

feat_err_t feat_chi2_gof(const double *obs, const double *ref, size_t ncat, double eps,
                         feat_chi2_result_t *out) {
    double so, sr;
    if (!obs || !ref || !out || ncat == 0 || !(eps >= 0.0) || isinf(eps)) return FEAT_ERR_INVALID;
    if (total_of(obs, ncat, &so) || total_of(ref, ncat, &sr)) return FEAT_ERR_INVALID;
    double norm = 1.0 + (double)ncat * eps, stat = 0.0;
    for (size_t i = 0; i < ncat; i++) {
        double e = so * ((ref[i] / sr + eps) / norm);
        if (e == 0.0) return FEAT_ERR_INVALID;          /* eps = 0 and an empty category */
        stat += (obs[i] - e) * (obs[i] - e) / e;
    }
    out->ncat = (uint32_t)ncat;
    out->statistic = stat;
    out->dof = (double)(ncat - 1);
    out->pvalue = ncat > 1 ? feat_chi2_sf(stat, out->dof) : 1.0;
    return FEAT_OK;
}
