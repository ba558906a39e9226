/*
 * tests/unit/test_drift_divergence.c — bins at reference quantiles, KL, PSI,
 * JS, chi-square and the incomplete gamma function (drift/divergence.h),
 * against values computed by hand or from closed forms.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "stats/divergence.h"
#include "stats/kll.h"

static int close_rel(double a, double b, double rel) {
    return fabs(a - b) <= rel * fabs(b);
}

START_TEST(test_edges_sample) {
    double x[100], e[16];
    uint32_t ne = 99;
    for (int i = 0; i < 100; i++) x[i] = i;
    /* quartiles of 0..99: x[ceil(i*100/4) - 1] = 24, 49, 74 */
    ck_assert_int_eq(feat_bins_edges_sorted(x, 100, 4, e, &ne), FEAT_OK);
    ck_assert_uint_eq(ne, 3);
    ck_assert(e[0] == 24 && e[1] == 49 && e[2] == 74);
    /* n not a multiple: 10 values, 3 bins: ceil(10/3) = 4 -> x[3]; ceil(20/3) = 7 -> x[6] */
    ck_assert_int_eq(feat_bins_edges_sorted(x, 10, 3, e, &ne), FEAT_OK);
    ck_assert_uint_eq(ne, 2);
    ck_assert(e[0] == 3 && e[1] == 6);
    /* heavy ties: 70 zeros and 30 ones, 10 bins -> quantiles 0 (x7) and 1 (x3);
     * equal edges merge and the edge at the maximum is dropped: one edge */
    double t[100];
    for (int i = 0; i < 100; i++) t[i] = i < 70 ? 0.0 : 1.0;
    ck_assert_int_eq(feat_bins_edges_sorted(t, 100, 10, e, &ne), FEAT_OK);
    ck_assert_uint_eq(ne, 1);
    ck_assert(e[0] == 0.0);
    /* constant reference: no edges, one bin */
    for (int i = 0; i < 100; i++) t[i] = 5.0;
    ck_assert_int_eq(feat_bins_edges_sorted(t, 100, 10, e, &ne), FEAT_OK);
    ck_assert_uint_eq(ne, 0);
    /* n = 1 */
    ck_assert_int_eq(feat_bins_edges_sorted(x, 1, 10, e, &ne), FEAT_OK);
    ck_assert_uint_eq(ne, 0);
    /* invalid */
    ck_assert_int_eq(feat_bins_edges_sorted(x, 0, 4, e, &ne), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_bins_edges_sorted(x, 10, 1, e, &ne), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_bins_edges_sorted(x, 10, FEAT_BINS_MAX + 1, e, &ne), FEAT_ERR_INVALID);
}
END_TEST

START_TEST(test_counts) {
    double e[3] = {1.0, 2.0, 3.0}, c[4];
    /* right-closed bins: (-inf,1], (1,2], (2,3], (3,inf) */
    double x[8] = {0.5, 1.0, 1.5, 2.0, 2.0, 2.5, 3.5, 100};
    ck_assert_int_eq(feat_bins_count_sample(x, 8, e, 3, c), FEAT_OK);
    ck_assert(c[0] == 2 && c[1] == 3 && c[2] == 1 && c[3] == 2);
    ck_assert_uint_eq(feat_bins_index(e, 3, 1.0), 0);
    ck_assert_uint_eq(feat_bins_index(e, 3, 1.0000001), 1);
    ck_assert_uint_eq(feat_bins_index(e, 3, -INFINITY), 0);
    ck_assert_uint_eq(feat_bins_index(e, 3, INFINITY), 3);
    ck_assert_uint_eq(feat_bins_index(e, 0, 5.0), 0);
    double bad[2] = {1.0, NAN}, cb[4];
    ck_assert_int_eq(feat_bins_count_sample(bad, 2, e, 3, cb), FEAT_ERR_INVALID);
    /* an exact sketch gives the same counts; a big one sums to n */
    feat_kll_t *s = feat_kll_new(200, 3, NULL);
    for (int i = 0; i < 8; i++) feat_kll_update(s, x[i]);
    double cs[4];
    ck_assert_int_eq(feat_bins_count_kll(s, e, 3, cs), FEAT_OK);
    for (int i = 0; i < 4; i++) ck_assert(cs[i] == c[i]);
    /* sketch edges of 0..999 (exact while n <= k: n = 150 here) */
    feat_kll_reset(s);
    for (int i = 0; i < 150; i++) feat_kll_update(s, i);
    double ek[8];
    uint32_t ne;
    ck_assert_int_eq(feat_bins_edges_kll(s, 3, ek, &ne), FEAT_OK);
    ck_assert_uint_eq(ne, 2);
    ck_assert(ek[0] == 49 && ek[1] == 99);
    feat_kll_reset(s);
    for (int i = 0; i < 100000; i++) feat_kll_update(s, i % 977);
    ck_assert_int_eq(feat_bins_edges_kll(s, 4, ek, &ne), FEAT_OK);
    ck_assert_uint_eq(ne, 3);
    double ck[4], tot = 0;
    ck_assert_int_eq(feat_bins_count_kll(s, ek, 3, ck), FEAT_OK);
    for (int i = 0; i < 4; i++) {
        tot += ck[i];
        ck_assert_msg(fabs(ck[i] / 100000 - 0.25) < 0.05, "bin %d %g", i, ck[i]);
    }
    ck_assert(tot == 100000);
    feat_kll_reset(s);
    ck_assert_int_eq(feat_bins_edges_kll(s, 4, ek, &ne), FEAT_ERR_STATE);
    feat_kll_destroy(s);
}
END_TEST

START_TEST(test_kl_psi_js) {
    double p[2] = {1, 1}, q[2] = {1, 3}, v;
    /* KL(p||q) = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) */
    ck_assert_int_eq(feat_kl_divergence(p, q, 2, 0.0, &v), FEAT_OK);
    ck_assert(close_rel(v, 0.5 * log(2.0) + 0.5 * log(2.0 / 3.0), 1e-14));
    /* PSI = (0.75-0.5) ln(0.75/0.5) + (0.25-0.5) ln(0.25/0.5), ref = p, live = q */
    ck_assert_int_eq(feat_psi(p, q, 2, 0.0, &v), FEAT_OK);
    ck_assert(close_rel(v, 0.25 * log(1.5) + 0.25 * log(2.0), 1e-14));
    /* smoothing: (p + eps) / (1 + B eps) */
    double eps = 0.01;
    double a0 = (0.5 + eps) / (1 + 2 * eps), b0 = (0.25 + eps) / (1 + 2 * eps);
    double a1 = (0.5 + eps) / (1 + 2 * eps), b1 = (0.75 + eps) / (1 + 2 * eps);
    ck_assert_int_eq(feat_kl_divergence(p, q, 2, eps, &v), FEAT_OK);
    ck_assert(close_rel(v, a0 * log(a0 / b0) + a1 * log(a1 / b1), 1e-14));
    /* an empty reference bin: infinite without eps, finite with */
    double r[3] = {5, 5, 0}, l[3] = {4, 4, 2};
    ck_assert_int_eq(feat_kl_divergence(l, r, 3, 0.0, &v), FEAT_OK);
    ck_assert(isinf(v));
    ck_assert_int_eq(feat_psi(r, l, 3, 0.0, &v), FEAT_OK);
    ck_assert(isinf(v));
    ck_assert_int_eq(feat_kl_divergence(l, r, 3, FEAT_DRIFT_EPS, &v), FEAT_OK);
    ck_assert(isfinite(v) && v > 0 && v < 2.0);
    ck_assert_int_eq(feat_psi(r, l, 3, FEAT_DRIFT_EPS, &v), FEAT_OK);
    ck_assert(isfinite(v) && v > 0);
    /* identical: 0 */
    ck_assert_int_eq(feat_psi(r, r, 3, FEAT_DRIFT_EPS, &v), FEAT_OK);
    ck_assert(v == 0.0);
    ck_assert_int_eq(feat_kl_divergence(l, l, 3, FEAT_DRIFT_EPS, &v), FEAT_OK);
    ck_assert(v == 0.0);
    /* JS: identical 0, disjoint 1 (base 2), and a hand value */
    double d1[2] = {1, 0}, d2[2] = {0, 1};
    ck_assert_int_eq(feat_js_distance(d1, d2, 2, &v), FEAT_OK);
    ck_assert(close_rel(v, 1.0, 1e-15));
    ck_assert_int_eq(feat_js_distance(p, p, 2, &v), FEAT_OK);
    ck_assert(v == 0.0);
    /* p = (1/2,1/2), q = (1/4,3/4), m = (3/8,5/8) */
    double js = 0.5 * (0.5 * log2(0.5 / 0.375) + 0.5 * log2(0.5 / 0.625)) +
                0.5 * (0.25 * log2(0.25 / 0.375) + 0.75 * log2(0.75 / 0.625));
    ck_assert_int_eq(feat_js_distance(p, q, 2, &v), FEAT_OK);
    ck_assert(close_rel(v, sqrt(js), 1e-14));
    /* invalid input */
    double neg[2] = {1, -1}, zero[2] = {0, 0};
    ck_assert_int_eq(feat_kl_divergence(neg, q, 2, 0.0, &v), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_kl_divergence(zero, q, 2, 0.0, &v), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_kl_divergence(p, q, 2, -1.0, &v), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_psi(p, q, 0, 0.0, &v), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_js_distance(p, zero, 2, &v), FEAT_ERR_INVALID);
}
END_TEST

/* feat_divergences: the monitor's directions.  ref = (1/2, 1/2), live =
 * (1/4, 3/4): KL(live || ref) = 1/4 ln(1/2) + 3/4 ln(3/2), which is not
 * KL(ref || live) = 1/2 ln 2 + 1/2 ln(2/3). */
START_TEST(test_divergences_direction) {
    double ref[2] = {1, 1}, live[2] = {1, 3}, v;
    feat_divergences_t d;
    ck_assert_int_eq(feat_divergences(ref, live, 2, 0.0, &d), FEAT_OK);
    ck_assert(close_rel(d.kl, 0.25 * log(0.5) + 0.75 * log(1.5), 1e-14));
    ck_assert(!close_rel(d.kl, 0.5 * log(2.0) + 0.5 * log(2.0 / 3.0), 1e-3));
    ck_assert_int_eq(feat_psi(ref, live, 2, 0.0, &v), FEAT_OK);
    ck_assert(d.psi == v);
    ck_assert_int_eq(feat_js_distance(ref, live, 2, &v), FEAT_OK);
    ck_assert(close_rel(d.js, v, 1e-15));            /* symmetric */
    /* with eps, each as the single functions give it */
    ck_assert_int_eq(feat_divergences(ref, live, 2, FEAT_DRIFT_EPS, &d), FEAT_OK);
    ck_assert_int_eq(feat_kl_divergence(live, ref, 2, FEAT_DRIFT_EPS, &v), FEAT_OK);
    ck_assert(d.kl == v);
    /* errors leave *out alone */
    double zero[2] = {0, 0};
    d.kl = d.psi = d.js = -7.0;
    ck_assert_int_eq(feat_divergences(ref, zero, 2, FEAT_DRIFT_EPS, &d), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_divergences(ref, live, 2, -1.0, &d), FEAT_ERR_INVALID);
    ck_assert(d.kl == -7.0 && d.psi == -7.0 && d.js == -7.0);
    ck_assert_int_eq(feat_divergences(ref, live, 2, 0.0, NULL), FEAT_ERR_INVALID);
}
END_TEST

START_TEST(test_gamma_chi2) {
    /* P(1, x) = 1 - e^-x; Q(1/2, x) = erfc(sqrt x); Q(2, x) = e^-x (1 + x) */
    double xs[] = {1e-8, 0.01, 0.5, 1, 2, 5, 20, 100, 700};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        double x = xs[i];
        ck_assert(close_rel(feat_gamma_p(1, x), -expm1(-x), 1e-13));
        ck_assert(close_rel(feat_gamma_q(1, x), exp(-x), 1e-13));
        ck_assert_msg(close_rel(feat_gamma_q(0.5, x), erfc(sqrt(x)), 1e-12), "x %g", x);
        ck_assert(close_rel(feat_gamma_q(2, x), exp(-x) * (1 + x), 1e-12));
        ck_assert(fabs(feat_gamma_p(3.7, x) + feat_gamma_q(3.7, x) - 1) < 1e-14);
    }
    ck_assert(feat_gamma_q(3, 0) == 1.0 && feat_gamma_p(3, 0) == 0.0);
    ck_assert(feat_gamma_q(3, INFINITY) == 0.0);
    ck_assert(isnan(feat_gamma_q(0, 1)) && isnan(feat_gamma_q(1, -1)));
    /* chi-square: dof 2 -> e^{-x/2}; the 5% point of dof 1 */
    ck_assert(close_rel(feat_chi2_sf(2.0, 2), exp(-1.0), 1e-14));
    ck_assert(close_rel(feat_chi2_sf(3.841458820694124, 1), 0.05, 1e-12));
    ck_assert(feat_chi2_sf(0.0, 3) == 1.0);
    ck_assert(isnan(feat_chi2_sf(1.0, 0)));
    /* large a: the median of Gamma(a) is about a - 1/3, so
     * Q(a, a) = 1/2 - 1/(3 sqrt(2 pi a)) + O(1/a^(3/2)) */
    double a = 1e6;
    ck_assert(fabs(feat_gamma_q(a, a) - (0.5 - 1.0 / (3 * sqrt(2 * M_PI * a)))) < 1e-9);
}
END_TEST

START_TEST(test_chi2_tests) {
    feat_chi2_result_t r;
    /* [[10,20],[20,10]]: expected 15 everywhere, stat = 4 * 25/15, dof 1 */
    double ref[2] = {10, 20}, live[2] = {20, 10};
    ck_assert_int_eq(feat_chi2_homogeneity(ref, live, 2, &r), FEAT_OK);
    ck_assert(close_rel(r.statistic, 100.0 / 15.0, 1e-14));
    ck_assert(r.dof == 1 && r.ncat == 2);
    ck_assert(close_rel(r.pvalue, erfc(sqrt(100.0 / 15.0 / 2)), 1e-12));
    /* a category absent from the reference counts; a column empty on both
     * sides is dropped */
    double ref3[4] = {10, 10, 0, 0}, live3[4] = {10, 5, 5, 0};
    ck_assert_int_eq(feat_chi2_homogeneity(ref3, live3, 4, &r), FEAT_OK);
    ck_assert_uint_eq(r.ncat, 3);
    ck_assert(r.dof == 2);
    /* totals 20/20, columns 20,15,5: expected 10,7.5,2.5 on both sides */
    double st = 0 + 2 * (2.5 * 2.5 / 7.5) + 2 * (2.5 * 2.5 / 2.5);
    ck_assert(close_rel(r.statistic, st, 1e-14));
    ck_assert(close_rel(r.pvalue, exp(-st / 2), 1e-12));
    /* fewer than 2 categories: 0 and 1 */
    double one[2] = {3, 0}, one2[2] = {5, 0};
    ck_assert_int_eq(feat_chi2_homogeneity(one, one2, 2, &r), FEAT_OK);
    ck_assert(r.statistic == 0 && r.pvalue == 1 && r.dof == 0);
    /* goodness of fit: obs (30, 10) against ref (1, 1): E = 20, 20 */
    double obs[2] = {30, 10}, rp[2] = {1, 1};
    ck_assert_int_eq(feat_chi2_gof(obs, rp, 2, 0.0, &r), FEAT_OK);
    ck_assert(close_rel(r.statistic, 10.0, 1e-14));
    ck_assert(close_rel(r.pvalue, erfc(sqrt(5.0)), 1e-12));
    /* an unseen category needs eps */
    double obs3[3] = {10, 10, 1}, rp3[3] = {1, 1, 0};
    ck_assert_int_eq(feat_chi2_gof(obs3, rp3, 3, 0.0, &r), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_chi2_gof(obs3, rp3, 3, FEAT_DRIFT_EPS, &r), FEAT_OK);
    double e3 = 21 * FEAT_DRIFT_EPS / (1 + 3 * FEAT_DRIFT_EPS);
    ck_assert(r.statistic > (1 - e3) * (1 - e3) / e3);
}
END_TEST

static Suite *div_suite(void) {
    Suite *s = suite_create("drift_divergence");
    TCase *tc = tcase_create("divergence");
    tcase_add_test(tc, test_edges_sample);
    tcase_add_test(tc, test_counts);
    tcase_add_test(tc, test_kl_psi_js);
    tcase_add_test(tc, test_divergences_direction);
    tcase_add_test(tc, test_gamma_chi2);
    tcase_add_test(tc, test_chi2_tests);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(div_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
