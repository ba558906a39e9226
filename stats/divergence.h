/*
 * stats/divergence.h — binning at reference quantiles, KL divergence, PSI,
 * Jensen–Shannon distance, chi-square tests and the regularized incomplete
 * gamma function.
 *
 * Bins.  n_bins bins are cut at the reference's quantiles i/n_bins,
 * i = 1..n_bins-1 ("inverted CDF" quantiles: the smallest value v with
 * F(v) >= i/n_bins, as numpy.quantile(method='inverted_cdf')).  Bins are
 * closed on the right: bin 0 = (-inf, e_0], bin i = (e_{i-1}, e_i], last bin
 * = (e_last, +inf).  Equal edges (heavy ties in the reference) are merged,
 * and edges >= the reference's maximum are dropped (such a bin could hold no
 * reference mass), so a constant reference yields one bin and a boolean one
 * two.  So there are nedges + 1 <= n_bins bins; live values outside the
 * reference's range fall in the first or last bin.
 *
 * Numeric features in the monitor (drift/monitor.c): n_bins = drift.bins
 * (default 10).  When a reference is set, the edges are taken from the
 * reference's KLL sketch (feat_bins_edges_kll: its quantiles, exact while
 * the sketch holds every value, else within its rank error) and kept; the
 * reference's bin masses are that sketch's ranks at the edges
 * (feat_bins_count_kll).  At each window close the live window's sketch is
 * counted at the same edges the same way.  Categorical features are not
 * cut: a bin is a category (drift/catfreq.h: the reference's tracked
 * categories plus one "other" bucket that also takes live categories the
 * reference never saw; categories empty on both sides are left out).
 *
 * Empty bins (the documented epsilon).  KL and PSI are infinite when a bin is
 * empty on one side.  Both distributions are therefore smoothed additively:
 *     p~_i = (p_i + eps) / (1 + B eps),   p_i = count_i / sum(count),
 * B = number of bins (for categories: those compared), with eps =
 * FEAT_DRIFT_EPS = 1e-4 in the monitor.  Why
 * additive smoothing with that eps: it keeps proper distributions (so
 * KL >= 0 and PSI >= 0 still hold), is continuous in the counts, treats both
 * sides alike, and bounds the contribution of one bin empty in the
 * reference to about p_i ln(p_i / 1e-4) (at most ln(1e4) = 9.2 nats for KL),
 * while it changes non-empty bins by a relative 1e-4 / p_i + B 1e-4 — below
 * 0.1% for 10 equal-mass bins, far under the sampling noise of any window
 * that is worth testing.  eps = 0 disables smoothing (infinite results are
 * then possible and returned as +inf).  JS is not smoothed: it is finite
 * with empty bins.
 *
 * Directions (feat_divergences, the monitor, feat_catfreq_compare):
 *   KL  = KL(live || ref) = sum live~ ln(live~ / ref~): not symmetric; large
 *         when the live window puts mass where the reference had little;
 *   PSI = sum (live~ - ref~) ln(live~ / ref~) = KL(live||ref) + KL(ref||live):
 *         symmetric;
 *   JS  = Jensen–Shannon distance sqrt(JSD(live, ref)): symmetric.
 * The single functions take the direction from their argument order.
 *
 * Logarithms: KL and PSI in nats (natural log); JS distance in base 2, so it
 * lies in [0, 1] (scipy.spatial.distance.jensenshannon(p, q, base=2), which
 * also returns the distance, the square root of the divergence).
 * docs/DRIFT.md has the same in prose, with how each is tested.
 *
 * Every function here is reentrant and allocation-free unless it says
 * otherwise.  Count arrays hold non-negative finite numbers (counts or
 * weights; only proportions matter); their sums must be positive.
 */
#ifndef FEAT_STATS_DIVERGENCE_H
#define FEAT_STATS_DIVERGENCE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "stats/kll.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FEAT_DRIFT_EPS 1e-4          /* additive smoothing for KL and PSI */
#define FEAT_BINS_MAX 1024u          /* most bins any helper accepts */

/* ---- bins ---- */

/* Edges for n_bins (2..FEAT_BINS_MAX) bins at the quantiles of the sorted
 * reference x[0..n) (ascending, no NaN, n >= 1).  edges must have room for
 * n_bins - 1 values; *nedges receives how many were written (0 when the
 * reference is constant).  FEAT_ERR_INVALID on bad arguments. */
feat_err_t feat_bins_edges_sorted(const double *x, size_t n, uint32_t n_bins,
                                  double *edges, uint32_t *nedges);

/* The same from a reference sketch (its quantiles; may sort its level 0).
 * FEAT_ERR_STATE for an empty sketch. */
feat_err_t feat_bins_edges_kll(feat_kll_t *ref, uint32_t n_bins, double *edges,
                               uint32_t *nedges);

/* Index of the bin holding x: the number of edges < x (0..nedges).  edges
 * ascending.  NaN is placed in the last bin (callers should not pass it). */
uint32_t feat_bins_index(const double *edges, uint32_t nedges, double x);

/* counts[0..nedges] = number of x[0..n) in each bin (any order).  NaN values
 * give FEAT_ERR_INVALID and leave counts unspecified. */
feat_err_t feat_bins_count_sample(const double *x, size_t n, const double *edges,
                                  uint32_t nedges, double *counts);

/* counts[0..nedges] = estimated weight of the sketch's stream in each bin
 * (from its ranks at the edges; the counts sum to feat_kll_count()). */
feat_err_t feat_bins_count_kll(const feat_kll_t *s, const double *edges, uint32_t nedges,
                               double *counts);

/* ---- divergences between two binned distributions of nbins >= 1 bins ---- */

/* KL(P || Q) = sum p~ ln(p~ / q~), nats, p and q smoothed with eps >= 0.
 * Monitoring uses P = live, Q = reference. */
feat_err_t feat_kl_divergence(const double *p, const double *q, size_t nbins, double eps,
                              double *out);

/* PSI = sum (l~ - r~) ln(l~ / r~), nats, both smoothed with eps >= 0. */
feat_err_t feat_psi(const double *ref, const double *live, size_t nbins, double eps,
                    double *out);

/* Jensen–Shannon distance sqrt(JSD) with base-2 logs, in [0, 1]; no
 * smoothing.  Symmetric.  JSD(P, Q) = (KL(P || M) + KL(Q || M)) / 2 with
 * M = (P + Q) / 2; the distance, not JSD, is returned (as
 * scipy.spatial.distance.jensenshannon(p, q, base=2)); square it for JSD in
 * bits. */
feat_err_t feat_js_distance(const double *p, const double *q, size_t nbins, double *out);

/* The three divergences of a live window against its reference over the
 * same bins, in the directions the drift monitor reports them. */
typedef struct feat_divergences {
    double kl;      /* KL(live || ref), nats, both smoothed with eps */
    double psi;     /* sum (live~ - ref~) ln(live~ / ref~), nats, smoothed */
    double js;      /* JS distance, base 2, in [0, 1], unsmoothed */
} feat_divergences_t;

/* feat_kl_divergence(live, ref), feat_psi(ref, live) and
 * feat_js_distance(live, ref) over ref[0..nbins) and live[0..nbins) (counts
 * or fractions, aligned bin by bin).  FEAT_ERR_INVALID as those; *out is
 * untouched on error. */
feat_err_t feat_divergences(const double *ref, const double *live, size_t nbins, double eps,
                            feat_divergences_t *out);

/* ---- chi-square ---- */

typedef struct feat_chi2_result {
    double statistic;
    double pvalue;
    double dof;
    uint32_t ncat;        /* categories that entered the test */
} feat_chi2_result_t;

/* Pearson chi-square test of homogeneity of two count vectors (a 2 x ncat
 * contingency table, no Yates correction): categories empty on both sides are
 * dropped, dof = used categories - 1; with fewer than two categories the
 * statistic is 0 and the p-value 1.  Equals
 * scipy.stats.chi2_contingency([ref, live], correction=False) on the
 * non-empty columns.  A category absent from the reference is counted (its
 * expected count comes from the pooled table).  Counts must be >= 0; each
 * side's total must be > 0. */
feat_err_t feat_chi2_homogeneity(const double *ref, const double *live, size_t ncat,
                                 feat_chi2_result_t *out);

/* Pearson goodness-of-fit of observed counts against the reference's
 * proportions, smoothed with eps as above (so a category unseen in the
 * reference has expected count n eps / (1 + ncat eps), and counts hugely):
 * statistic = sum (obs - E)^2 / E with E = sum(obs) * ref~, dof = ncat - 1;
 * equals scipy.stats.chisquare(obs, E), except that one category (dof 0)
 * gives p = 1 where SciPy gives NaN.  eps must be > 0 unless every reference
 * count is positive. */
feat_err_t feat_chi2_gof(const double *obs, const double *ref, size_t ncat, double eps,
                         feat_chi2_result_t *out);

/* P(X >= x) for X chi-square with dof > 0 degrees of freedom
 * (= feat_gamma_q(dof/2, x/2)); 1 for x <= 0; NaN for bad arguments. */
double feat_chi2_sf(double x, double dof);

/* Regularized incomplete gamma functions, a > 0, x >= 0:
 * P(a, x) = gamma(a, x) / Gamma(a) (lower) and Q = 1 - P (upper), each
 * computed directly (series or continued fraction) so that small values keep
 * their relative precision.  NaN for bad arguments. */
double feat_gamma_p(double a, double x);
double feat_gamma_q(double a, double x);

#ifdef __cplusplus
}
#endif
#endif
