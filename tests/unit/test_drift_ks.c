/*
 * tests/unit/test_drift_ks.c — two-sample KS (drift/ks.h): hand-computed
 * statistics and exact p-values (lattice-path counts), edge cases, the
 * exact -> asymptotic switch and fallback, closed forms of the one-sample
 * distributions, and KS between sketches within its documented bound.
 * SciPy agreement over many random samples is checked by
 * tests/integration/drift_stats.py.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats/kll.h"
#include "stats/ks.h"
#include "stats/stats_util.h"

#define TWO FEAT_KS_TWO_SIDED

static int close_rel(double a, double b, double rel) {
    return fabs(a - b) <= rel * fabs(b);
}

static feat_ks_result_t ks(const double *a, size_t n1, const double *b, size_t n2,
                           feat_ks_alt_t alt, feat_ks_method_t m) {
    feat_ks_result_t r;
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(feat_ks_2samp(a, n1, b, n2, alt, m, &r), FEAT_OK);
    return r;
}

START_TEST(test_invalid) {
    double a[3] = {1, 2, 3}, nan[2] = {1, NAN};
    feat_ks_result_t r;
    ck_assert_int_eq(feat_ks_2samp(a, 0, a, 3, TWO, FEAT_KS_AUTO, &r), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_ks_2samp(a, 3, a, 0, TWO, FEAT_KS_AUTO, &r), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_ks_2samp(NULL, 3, a, 3, TWO, FEAT_KS_AUTO, &r), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_ks_2samp(a, 3, a, 3, TWO, FEAT_KS_AUTO, NULL), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_ks_2samp(nan, 2, a, 3, TWO, FEAT_KS_AUTO, &r), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_ks_2samp(a, 3, a, 3, (feat_ks_alt_t)7, FEAT_KS_AUTO, &r), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_ks_2samp(a, 3, a, 3, TWO, (feat_ks_method_t)4, &r), FEAT_ERR_INVALID);
    double p;
    ck_assert_int_eq(feat_ks_pvalue(1.5, 3, 3, TWO, FEAT_KS_AUTO, &p, NULL, NULL), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_ks_pvalue(0.5, 0, 3, TWO, FEAT_KS_AUTO, &p, NULL, NULL), FEAT_ERR_INVALID);
}
END_TEST

START_TEST(test_identical_and_ties) {
    double a[5] = {3, 1, 2, 5, 4};
    feat_ks_result_t r = ks(a, 5, a, 5, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 0.0 && r.pvalue == 1.0);
    ck_assert_int_eq(r.method, FEAT_KS_EXACT);
    /* all ties, same value: D = 0, p = 1 */
    double c[4] = {7, 7, 7, 7}, d[6] = {7, 7, 7, 7, 7, 7};
    r = ks(c, 4, d, 6, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 0.0 && r.pvalue == 1.0);
    /* all ties, different values: D = 1; P(D_{3,3} = 1) = 2 / C(6,3) = 0.1 */
    double z[3] = {0, 0, 0}, o[3] = {1, 1, 1};
    r = ks(z, 3, o, 3, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 1.0);
    ck_assert(close_rel(r.pvalue, 0.1, 1e-14));
    ck_assert_int_eq(r.sign, 1);
    ck_assert(r.location == 0.0);
    /* one-sided: only the all-x-first path, 1 / C(6,3) = 0.05 */
    r = ks(z, 3, o, 3, FEAT_KS_GREATER, FEAT_KS_AUTO);
    ck_assert(r.statistic == 1.0 && close_rel(r.pvalue, 0.05, 1e-14));
    r = ks(z, 3, o, 3, FEAT_KS_LESS, FEAT_KS_AUTO);
    ck_assert(r.statistic == 0.0 && r.pvalue == 1.0);
}
END_TEST

START_TEST(test_hand_cases) {
    /* n = 1 each: D = 1 and P(D_{1,1} >= 1) = 1 */
    double x1 = 0, y1 = 1;
    feat_ks_result_t r = ks(&x1, 1, &y1, 1, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 1.0 && r.pvalue == 1.0);
    /* {1,2,3} vs {4,5}: D = 1, separated only by the 2 extreme orderings of
     * C(5,2) = 10: p = 0.2 */
    double a[3] = {1, 2, 3}, b[2] = {4, 5};
    r = ks(a, 3, b, 2, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 1.0 && close_rel(r.pvalue, 0.2, 1e-14));
    ck_assert(r.location == 3.0 && r.sign == 1);
    /* ties across samples: {1,2,2,3} vs {2,3,3,4}
     *   F1 - F2 at 1: 1/4, at 2: 3/4 - 1/4 = 1/2, at 3: 1 - 3/4, at 4: 0
     * D = 1/2 at 2; P(D_{4,4} >= 1/2) = 2 (C(8,2) - C(8,0)) / C(8,4) = 54/70 */
    double c[4] = {1, 2, 2, 3}, d[4] = {2, 3, 3, 4};
    r = ks(c, 4, d, 4, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 0.5);
    ck_assert(close_rel(r.pvalue, 54.0 / 70.0, 1e-14));
    ck_assert(r.location == 2.0 && r.sign == 1);
    /* the sign: swap the samples */
    r = ks(d, 4, c, 4, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 0.5 && r.sign == -1 && r.location == 2.0);
    /* unequal sizes (exact inside method): {0} vs {1,2}.  Of the 3 equally
     * likely positions of the lone x among the y's, D = 1 when x is first or
     * last: P(D >= 1) = 2/3 */
    double e1 = 0, e2[2] = {1, 2};
    r = ks(&e1, 1, e2, 2, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 1.0 && close_rel(r.pvalue, 2.0 / 3.0, 1e-14));
    /* one-sided (path counting): D+ = 1 only with x first: 1/3 */
    r = ks(&e1, 1, e2, 2, FEAT_KS_GREATER, FEAT_KS_AUTO);
    ck_assert(r.statistic == 1.0 && close_rel(r.pvalue, 1.0 / 3.0, 1e-14));
}
END_TEST

/* SciPy's exact path for n1 == n2 = 5, h = 1 gives 1.0000000000000002, not a
 * probability: ks_2samp then falls back to the asymptotic method, whose
 * support starts at 0.5/round(5*5/10) = 0.25 > 0.2, so p = 1. */
START_TEST(test_exact_fallback) {
    double a[5] = {0, 1, 2, 3, 4}, b[5] = {0.5, 1.5, 2.5, 3.5, 4.5};
    feat_ks_result_t r = ks(a, 5, b, 5, TWO, FEAT_KS_AUTO);
    ck_assert(r.statistic == 0.2);
    ck_assert_int_eq(r.method, FEAT_KS_ASYMP);
    ck_assert(r.pvalue == 1.0);
}
END_TEST

/* One-sided EXACT with n1 != n2 counts paths and divides by C(n1+n2, n1),
 * which overflows a double past n1 + n2 of about 1030: C(1029, 514) fits,
 * C(1030, 520) does not.  Beyond, SciPy falls back to Hodges' asymptotic
 * formula and so does featd (at once: the count is never formed). */
static double hodges(double d, double n1, double n2) {
    double m = n1 > n2 ? n1 : n2, n = n1 > n2 ? n2 : n1;
    double z = sqrt(m * n / (m + n)) * d;
    return exp(-2 * z * z - 2 * z * (m + 2 * n) / sqrt(m * n * (m + n)) / 3.0);
}

START_TEST(test_one_sided_overflow_fallback) {
    double p, du;
    feat_ks_method_t m;
    ck_assert_int_eq(feat_ks_pvalue(0.05, 515, 514, FEAT_KS_GREATER, FEAT_KS_EXACT, &p, &du, &m),
                     FEAT_OK);
    ck_assert_int_eq(m, FEAT_KS_EXACT);
    ck_assert(p > 0.0 && p < 1.0);
    const uint64_t sizes[][2] = {{520, 510}, {1000, 999}, {10000, 9999}, {5000, 10000}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int alt = FEAT_KS_LESS; alt <= FEAT_KS_GREATER; alt++) {
            ck_assert_int_eq(feat_ks_pvalue(0.02, sizes[i][0], sizes[i][1], (feat_ks_alt_t)alt,
                                            FEAT_KS_EXACT, &p, &du, &m), FEAT_OK);
            ck_assert_int_eq(m, FEAT_KS_ASYMP);
            ck_assert(close_rel(p, hodges(du, (double)sizes[i][0], (double)sizes[i][1]), 1e-15));
        }
    }
}
END_TEST

/* AUTO: exact up to max(n1, n2) = 10000, asymptotic above. */
START_TEST(test_auto_switch) {
    double p, du;
    feat_ks_method_t m;
    ck_assert_int_eq(feat_ks_pvalue(0.05, 10000, 10000, TWO, FEAT_KS_AUTO, &p, &du, &m), FEAT_OK);
    ck_assert_int_eq(m, FEAT_KS_EXACT);
    ck_assert_int_eq(feat_ks_pvalue(0.05, 10001, 10000, TWO, FEAT_KS_AUTO, &p, &du, &m), FEAT_OK);
    ck_assert_int_eq(m, FEAT_KS_ASYMP);
    /* large-sample limit: P(D >= z / sqrt(en)) -> Kolmogorov's Q(z);
     * Q(1) = 2 sum (-1)^(k-1) exp(-2 k^2) */
    double q1 = 0;
    for (int k = 1; k < 20; k++) q1 += 2 * ((k % 2) ? 1 : -1) * exp(-2.0 * k * k);
    ck_assert(fabs(q1 - 0.26999967167735456) < 1e-15);
    ck_assert_int_eq(feat_ks_pvalue(1.0 / sqrt(2e6), 4000000, 4000000, TWO, FEAT_KS_AUTO, &p,
                                    &du, &m), FEAT_OK);
    ck_assert_msg(fabs(p - q1) < 2e-3, "p %g", p);
    /* LIMIT: Kolmogorov's Q(sqrt(en) D), O(1), for any sizes */
    ck_assert(fabs(feat_ks_kolmogorov_sf(1.0) - q1) < 1e-15);
    ck_assert(feat_ks_kolmogorov_sf(0.0) == 1.0 && feat_ks_kolmogorov_sf(40.0) == 0.0);
    double q05 = 0;      /* small z: the other theta series, 3 terms suffice */
    for (int k = 1; k < 4; k++)
        q05 += exp(-(2.0 * k - 1) * (2.0 * k - 1) * M_PI * M_PI / (8 * 0.25));
    q05 = 1 - sqrt(2 * M_PI) / 0.5 * q05;
    ck_assert(fabs(feat_ks_kolmogorov_sf(0.5) - q05) < 1e-15);
    ck_assert_int_eq(feat_ks_pvalue(0.05, 300, 200, TWO, FEAT_KS_LIMIT, &p, &du, &m), FEAT_OK);
    ck_assert_int_eq(m, FEAT_KS_LIMIT);
    ck_assert(du == 0.05 && fabs(p - feat_ks_kolmogorov_sf(sqrt(120.0) * 0.05)) < 1e-16);
    /* EXACT with an lcm beyond 31 bits switches to ASYMP */
    ck_assert_int_eq(feat_ks_pvalue(0.01, 100003, 100019, TWO, FEAT_KS_EXACT, &p, &du, &m), FEAT_OK);
    ck_assert_int_eq(m, FEAT_KS_ASYMP);
    /* the exact method rounds D onto the lattice h / lcm */
    ck_assert_int_eq(feat_ks_pvalue(0.3333, 3, 6, TWO, FEAT_KS_EXACT, &p, &du, &m), FEAT_OK);
    ck_assert(du == 2.0 / 6.0);
}
END_TEST

/* Closed forms of the one-sample distributions. */
START_TEST(test_one_sample_closed_forms) {
    /* Ruben–Gambino, t = n x >= n - 1: P(D_n >= x) = 2 (1 - x)^n */
    ck_assert(close_rel(feat_ks_kstwo_sf(1, 0.75), 0.5, 1e-15));
    ck_assert(close_rel(feat_ks_kstwo_sf(2, 0.6), 2 * 0.4 * 0.4, 1e-15));
    /* 1/(2n) < x <= 1/n: P(D_n <= x) = n!/n^n (2 n x - 1)^n */
    ck_assert(close_rel(feat_ks_kstwo_sf(2, 0.4), 1 - 0.5 * 0.6 * 0.6, 1e-15));
    ck_assert(close_rel(feat_ks_kstwo_sf(3, 0.3), 1 - 6.0 / 27.0 * pow(0.8, 3), 1e-14));
    ck_assert(feat_ks_kstwo_sf(5, 0.1) == 1.0);    /* x <= 1/(2n) */
    ck_assert(feat_ks_kstwo_sf(5, 1.0) == 0.0);
    ck_assert(isnan(feat_ks_kstwo_sf(0, 0.3)));
    /* x >= 1/2: P(D_n >= x) = 2 P(D_n^+ >= x) */
    ck_assert(close_rel(feat_ks_kstwo_sf(10, 0.6), 2 * feat_ks_smirnov_sf(10, 0.6), 1e-15));
    /* Smirnov: n = 1: 1 - x; x <= 1/n: 1 - x (1 + x)^(n-1); x >= 1 - 1/n:
     * (1 - x)^n; and Birnbaum–Tingey for n = 3, x = 0.5:
     * x sum_{v=0}^{1} C(3,v) (x + v/3)^(v-1) (1 - x - v/3)^(3-v)
     *   = 0.5 (0.5^3/0.5 + 3 (1/6)^2) = 0.5 (0.25 + 1/12) = 1/6 */
    ck_assert(close_rel(feat_ks_smirnov_sf(1, 0.3), 0.7, 1e-15));
    ck_assert(close_rel(feat_ks_smirnov_sf(4, 0.2), 1 - 0.2 * pow(1.2, 3), 1e-15));
    ck_assert(close_rel(feat_ks_smirnov_sf(4, 0.9), pow(0.1, 4), 1e-13));
    ck_assert(close_rel(feat_ks_smirnov_sf(3, 0.5), 1.0 / 6.0, 1e-14));
    ck_assert(isnan(feat_ks_smirnov_sf(3, 1.5)));
    /* Smirnov's limit: P(D_n^+ >= z/sqrt(n)) -> exp(-2 z^2) */
    ck_assert(fabs(feat_ks_smirnov_sf(500000, 1.0 / sqrt(500000.0)) - exp(-2.0)) < 2e-3);
}
END_TEST

static uint64_t rs;
static double nrand(void) {
    double u = (double)(feat_splitmix64(&rs) >> 11) * 0x1.0p-53 + 1e-300;
    double v = (double)(feat_splitmix64(&rs) >> 11) * 0x1.0p-53;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* KS from two sketches: within the documented bound of the exact statistic;
 * p-value at the true sizes; exact when both sketches are exact. */
START_TEST(test_sketch_ks) {
    const size_t n1 = 50000, n2 = 30000;
    double *a = malloc(n1 * sizeof(double)), *b = malloc(n2 * sizeof(double));
    ck_assert(a && b);
    double shifts[] = {0.0, 0.05, 0.5};
    for (int t = 0; t < 3; t++) {
        feat_kll_t *s1 = feat_kll_new(200, 11 + t, NULL), *s2 = feat_kll_new(200, 99 + t, NULL);
        rs = 5 + t;
        for (size_t i = 0; i < n1; i++) { a[i] = nrand(); feat_kll_update(s1, a[i]); }
        for (size_t i = 0; i < n2; i++) { b[i] = nrand() + shifts[t]; feat_kll_update(s2, b[i]); }
        feat_ks_result_t ex = ks(a, n1, b, n2, TWO, FEAT_KS_AUTO);
        feat_ks_sketch_result_t sk;
        ck_assert_int_eq(feat_ks_kll(s1, s2, TWO, FEAT_KS_AUTO, 0.01, &sk), FEAT_OK);
        ck_assert_uint_eq(sk.n1, n1);
        ck_assert_uint_eq(sk.n2, n2);
        ck_assert(sk.error_bound > 0 && sk.error_bound < 0.1);
        ck_assert_msg(fabs(sk.statistic - ex.statistic) <= sk.error_bound,
                      "D sketch %g exact %g bound %g", sk.statistic, ex.statistic, sk.error_bound);
        double p;
        feat_ks_pvalue(sk.statistic, n1, n2, TWO, FEAT_KS_AUTO, &p, NULL, NULL);
        ck_assert(p == sk.pvalue);
        ck_assert_int_eq(sk.method, FEAT_KS_ASYMP);     /* 50000 > 10000 */
        feat_ks_sketch_result_t sl;
        ck_assert_int_eq(feat_ks_kll(s1, s2, TWO, FEAT_KS_LIMIT, 0.01, &sl), FEAT_OK);
        ck_assert(sl.statistic == sk.statistic && sl.method == FEAT_KS_LIMIT);
        double en = (double)n1 * n2 / (n1 + n2);
        ck_assert(sl.pvalue == feat_ks_kolmogorov_sf(sqrt(en) * sl.statistic));
        feat_kll_destroy(s1);
        feat_kll_destroy(s2);
    }
    /* exact sketches (n <= k): the statistic equals the sample one */
    feat_kll_t *s1 = feat_kll_new(200, 1, NULL), *s2 = feat_kll_new(200, 2, NULL);
    double c[4] = {1, 2, 2, 3}, d[4] = {2, 3, 3, 4};
    for (int i = 0; i < 4; i++) { feat_kll_update(s1, c[i]); feat_kll_update(s2, d[i]); }
    feat_ks_sketch_result_t sk;
    ck_assert_int_eq(feat_ks_kll(s1, s2, TWO, FEAT_KS_AUTO, 0.01, &sk), FEAT_OK);
    ck_assert(sk.statistic == 0.5 && sk.error_bound == 0.0);
    ck_assert(close_rel(sk.pvalue, 54.0 / 70.0, 1e-14));
    ck_assert(sk.location == 2.0 && sk.sign == 1);
    ck_assert_int_eq(feat_ks_kll(s1, s1, TWO, FEAT_KS_AUTO, 0.01, &sk), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_ks_kll(s1, s2, TWO, FEAT_KS_AUTO, 0.0, &sk), FEAT_ERR_INVALID);
    feat_kll_reset(s2);
    ck_assert_int_eq(feat_ks_kll(s1, s2, TWO, FEAT_KS_AUTO, 0.01, &sk), FEAT_ERR_STATE);
    feat_kll_destroy(s1);
    feat_kll_destroy(s2);
    free(a);
    free(b);
}
END_TEST

static Suite *ks_suite(void) {
    Suite *s = suite_create("drift_ks");
    TCase *tc = tcase_create("ks");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_invalid);
    tcase_add_test(tc, test_identical_and_ties);
    tcase_add_test(tc, test_hand_cases);
    tcase_add_test(tc, test_exact_fallback);
    tcase_add_test(tc, test_one_sided_overflow_fallback);
    tcase_add_test(tc, test_auto_switch);
    tcase_add_test(tc, test_one_sample_closed_forms);
    tcase_add_test(tc, test_sketch_ks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(ks_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
