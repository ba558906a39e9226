/*
 * tests/unit/test_drift_kll.c — KLL sketch (drift/kll.h): exactness for small
 * streams, rank error within the documented bound, merge, reset, memory,
 * serialization round trip and rejection of corrupt blobs.  Expected ranks
 * are computed here from the sorted data, independently of the sketch.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats/kll.h"
#include "stats/stats_util.h"

/* ---- helpers ---- */

static uint64_t rng_state;
static double urand(void) { return (double)(feat_splitmix64(&rng_state) >> 11) * 0x1.0p-53; }
static double nrand(void) {
    double u = urand(), v = urand();
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static feat_kll_t *mk(uint32_t k, uint64_t seed) {
    feat_err_t e;
    feat_kll_t *s = feat_kll_new(k, seed, &e);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(e, FEAT_OK);
    return s;
}

/* exact count of sorted[0..n) <= y */
static uint64_t exact_rank(const double *sorted, size_t n, double y) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = lo + (hi - lo) / 2;
        if (sorted[m] <= y) lo = m + 1;
        else hi = m;
    }
    return lo;
}

/* max over all distinct data values of |R^(y) - R(y)| / n; both are step
 * functions that change only at data values, so this is the sup */
static double max_rank_error(const feat_kll_t *s, const double *sorted, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && sorted[i + 1] == sorted[i]) continue;
        double est = (double)feat_kll_rank(s, sorted[i], 1);
        double err = fabs(est - (double)(i + 1)) / (double)n;
        if (err > worst) worst = err;
    }
    return worst;
}

/* ---- tests ---- */

/* the internal sort every sketch and KS call relies on: small-array network,
 * insertion sort, introsort, patterns that defeat naive quicksorts */
START_TEST(test_sort) {
    double a[3000], b[3000];
    rng_state = 4242;
    for (size_t n = 0; n <= 3000; n = n < 40 ? n + 1 : n * 2 + 7) {
        if (n > 3000) break;
        for (int pat = 0; pat < 6; pat++) {
            for (size_t i = 0; i < n; i++) {
                switch (pat) {
                case 0: a[i] = urand(); break;
                case 1: a[i] = (double)(n - i); break;                 /* descending */
                case 2: a[i] = 7.0; break;                             /* all equal */
                case 3: a[i] = (double)(i % 3); break;                 /* few values */
                case 4: a[i] = (i % 2) ? (double)i : -(double)i; break; /* organ pipe-ish */
                default: a[i] = (i % 5 == 0) ? INFINITY : (i % 7 == 0 ? -INFINITY : nrand());
                }
                b[i] = a[i];
            }
            feat_sort_f64(a, n);
            qsort(b, n, sizeof(double), cmp_d);
            ck_assert_msg(n == 0 || memcmp(a, b, n * sizeof(double)) == 0, "n=%zu pattern %d", n, pat);
        }
    }
}
END_TEST

START_TEST(test_new_invalid) {
    feat_err_t e = FEAT_OK;
    ck_assert_ptr_null(feat_kll_new(7, 1, &e));
    ck_assert_int_eq(e, FEAT_ERR_INVALID);
    ck_assert_ptr_null(feat_kll_new(70000, 1, &e));
    ck_assert_int_eq(e, FEAT_ERR_INVALID);
    ck_assert_ptr_null(feat_kll_new(0, 1, NULL));
    feat_kll_destroy(NULL);
}
END_TEST

START_TEST(test_empty) {
    feat_kll_t *s = mk(200, 1);
    double q = 0;
    ck_assert(feat_kll_is_empty(s));
    ck_assert_uint_eq(feat_kll_count(s), 0);
    ck_assert(isnan(feat_kll_min(s)) && isnan(feat_kll_max(s)));
    ck_assert(isnan(feat_kll_cdf(s, 0.0)));
    ck_assert_uint_eq(feat_kll_rank(s, 1.0, 1), 0);
    ck_assert_int_eq(feat_kll_quantile(s, 0.5, &q), FEAT_ERR_STATE);
    ck_assert(isnan(feat_kll_rank_error(s, 0.01)));
    feat_kll_iter_t it;
    double v;
    uint64_t w;
    feat_kll_iter_begin(s, &it);
    ck_assert_int_eq(feat_kll_iter_next(&it, &v, &w), 0);
    feat_kll_destroy(s);
}
END_TEST

START_TEST(test_single_and_nan) {
    feat_kll_t *s = mk(200, 1);
    ck_assert_int_eq(feat_kll_update(s, NAN), FEAT_ERR_INVALID);
    ck_assert_uint_eq(feat_kll_count(s), 0);
    ck_assert_int_eq(feat_kll_update(s, 3.5), FEAT_OK);
    double q;
    for (int i = 0; i <= 10; i++) {
        ck_assert_int_eq(feat_kll_quantile(s, i / 10.0, &q), FEAT_OK);
        ck_assert(q == 3.5);
    }
    ck_assert_int_eq(feat_kll_quantile(s, 1.5, &q), FEAT_ERR_INVALID);
    ck_assert_int_eq(feat_kll_quantile(s, NAN, &q), FEAT_ERR_INVALID);
    ck_assert(feat_kll_cdf(s, 3.5) == 1.0);
    ck_assert(feat_kll_cdf(s, 3.4) == 0.0);
    ck_assert_uint_eq(feat_kll_rank(s, 3.5, 0), 0);
    ck_assert(feat_kll_rank_error(s, 0.01) == 0.0);
    ck_assert(feat_kll_min(s) == 3.5 && feat_kll_max(s) == 3.5);
    /* infinities are ordinary values */
    ck_assert_int_eq(feat_kll_update(s, INFINITY), FEAT_OK);
    ck_assert_int_eq(feat_kll_update(s, -INFINITY), FEAT_OK);
    ck_assert(feat_kll_min(s) == -INFINITY && feat_kll_max(s) == INFINITY);
    ck_assert(feat_kll_cdf(s, 0.0) == 1.0 / 3.0);
    feat_kll_destroy(s);
}
END_TEST

/* While n <= k nothing is compacted: every rank and quantile is exact. */
START_TEST(test_exact_small) {
    feat_kll_t *s = mk(200, 5);
    double x[150];
    rng_state = 11;
    for (int i = 0; i < 150; i++) {
        x[i] = floor(urand() * 40);          /* ties */
        ck_assert_int_eq(feat_kll_update(s, x[i]), FEAT_OK);
    }
    qsort(x, 150, sizeof(double), cmp_d);
    ck_assert(feat_kll_variance_sum(s) == 0.0);
    ck_assert(max_rank_error(s, x, 150) == 0.0);
    for (int i = 1; i <= 150; i++) {
        double q;
        ck_assert_int_eq(feat_kll_quantile(s, i / 150.0, &q), FEAT_OK);
        ck_assert(q == x[i - 1]);           /* inverted CDF: x[ceil(q n) - 1] */
    }
    /* all ties: cdf is a single step */
    feat_kll_reset(s);
    for (int i = 0; i < 100; i++) feat_kll_update(s, 2.0);
    ck_assert(feat_kll_cdf(s, 1.999) == 0.0 && feat_kll_cdf(s, 2.0) == 1.0);
    feat_kll_destroy(s);
}
END_TEST

/* A long stream: the observed uniform rank error stays below the computed
 * bound (delta = 1e-3) and below the a priori one; weights add up to n. */
START_TEST(test_error_bound_stream) {
    const size_t n = 200000;
    double *x = malloc(n * sizeof(double));
    ck_assert_ptr_nonnull(x);
    uint32_t ks[] = {8, 50, 200, 400};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        feat_kll_t *s = mk(ks[t], 100 + t);
        rng_state = 1000 + t;
        for (size_t i = 0; i < n; i++) {
            x[i] = (t % 2) ? nrand() : floor(urand() * 1000);
            ck_assert_int_eq(feat_kll_update(s, x[i]), FEAT_OK);
        }
        qsort(x, n, sizeof(double), cmp_d);
        double err = max_rank_error(s, x, n);
        double bound = feat_kll_rank_error(s, 1e-3);
        ck_assert_msg(err <= bound, "k=%u err %g > bound %g", ks[t], err, bound);
        ck_assert(bound > 0.0 && bound < 1.0);
        /* V within its a priori limit (48/7) n^2 / k^2 */
        double vmax = 48.0 / 7.0 * (double)n * (double)n / ((double)ks[t] * ks[t]);
        ck_assert_msg(feat_kll_variance_sum(s) <= vmax, "V %g > %g", feat_kll_variance_sum(s), vmax);
        /* weights sum to n, items ascend */
        feat_kll_iter_t it;
        double v, prev = -INFINITY;
        uint64_t w, tot = 0;
        feat_kll_iter_begin(s, &it);
        while (feat_kll_iter_next(&it, &v, &w)) {
            ck_assert(v >= prev);
            prev = v;
            tot += w;
        }
        ck_assert_uint_eq(tot, n);
        ck_assert(feat_kll_min(s) == x[0] && feat_kll_max(s) == x[n - 1]);
        /* quantiles have rank within the bound */
        for (int i = 1; i < 20; i++) {
            double q, qv;
            q = i / 20.0;
            ck_assert_int_eq(feat_kll_quantile(s, q, &qv), FEAT_OK);
            double r_hi = (double)exact_rank(x, n, qv) / n;   /* F(qv) */
            ck_assert_msg(r_hi >= q - bound, "quantile %g rank %g", q, r_hi);
        }
        feat_kll_destroy(s);
    }
    free(x);
}
END_TEST

/* Many independent small trials: the uniform bound at delta = 0.05 may fail
 * in at most ~5% of trials by its guarantee; with its slack it should fail in
 * none.  Allow 5 of 200 to keep the test's own false-alarm rate negligible. */
START_TEST(test_error_bound_trials) {
    const size_t n = 5000;
    double x[5000];
    int fails = 0;
    for (int t = 0; t < 200; t++) {
        feat_kll_t *s = mk(32, 7000 + t);
        rng_state = 99 + t;
        for (size_t i = 0; i < n; i++) {
            x[i] = nrand();
            feat_kll_update(s, x[i]);
        }
        qsort(x, n, sizeof(double), cmp_d);
        if (max_rank_error(s, x, n) > feat_kll_rank_error(s, 0.05)) fails++;
        feat_kll_destroy(s);
    }
    ck_assert_int_le(fails, 5);
}
END_TEST

START_TEST(test_merge) {
    const size_t n = 60000;
    double *x = malloc(n * sizeof(double));
    ck_assert_ptr_nonnull(x);
    feat_kll_t *parts[6];
    rng_state = 5;
    size_t off = 0;
    for (int p = 0; p < 6; p++) {
        parts[p] = mk(100, 300 + p);
        size_t len = (p == 0) ? 10 : (p == 1 ? 50 : 14985);   /* exact and compacted parts */
        for (size_t i = 0; i < len; i++, off++) {
            x[off] = nrand() * (p + 1) + p;
            feat_kll_update(parts[p], x[off]);
        }
    }
    ck_assert_uint_eq(off, n);
    feat_kll_t *other = mk(101, 1);
    ck_assert_int_eq(feat_kll_merge(parts[0], other), FEAT_ERR_INVALID);   /* k differs */
    ck_assert_int_eq(feat_kll_merge(parts[0], parts[0]), FEAT_ERR_INVALID); /* self */
    feat_kll_destroy(other);
    feat_kll_t *empty = mk(100, 2);
    ck_assert_int_eq(feat_kll_merge(parts[0], empty), FEAT_OK);            /* no-op */
    ck_assert_uint_eq(feat_kll_count(parts[0]), 10);
    /* merge the empty one with something: a copy */
    ck_assert_int_eq(feat_kll_merge(empty, parts[1]), FEAT_OK);
    ck_assert_uint_eq(feat_kll_count(empty), 50);
    ck_assert(feat_kll_min(empty) == feat_kll_min(parts[1]));
    feat_kll_destroy(empty);
    for (int p = 1; p < 6; p++) ck_assert_int_eq(feat_kll_merge(parts[0], parts[p]), FEAT_OK);
    qsort(x, n, sizeof(double), cmp_d);
    feat_kll_t *m = parts[0];
    ck_assert_uint_eq(feat_kll_count(m), n);
    ck_assert(feat_kll_min(m) == x[0] && feat_kll_max(m) == x[n - 1]);
    ck_assert_uint_le(feat_kll_retained(m), feat_kll_footprint(m) / sizeof(double));
    double err = max_rank_error(m, x, n), bound = feat_kll_rank_error(m, 1e-3);
    ck_assert_msg(err <= bound, "merged err %g > bound %g", err, bound);
    /* merged V contains the parts' V */
    double vparts = 0;
    for (int p = 1; p < 6; p++) vparts += feat_kll_variance_sum(parts[p]);
    ck_assert(feat_kll_variance_sum(m) >= vparts);
    /* and the union sketched directly has a comparable error */
    feat_kll_t *direct = mk(100, 77);
    for (size_t i = 0; i < n; i++) feat_kll_update(direct, x[(i * 7919) % n]);
    ck_assert(max_rank_error(direct, x, n) <= feat_kll_rank_error(direct, 1e-3));
    ck_assert(fabs(feat_kll_cdf(m, 0.0) - feat_kll_cdf(direct, 0.0)) <=
              bound + feat_kll_rank_error(direct, 1e-3));
    feat_kll_destroy(direct);
    for (int p = 0; p < 6; p++) feat_kll_destroy(parts[p]);
    free(x);
}
END_TEST

START_TEST(test_reset_and_memory) {
    feat_kll_t *s = mk(200, 9);
    size_t fp = feat_kll_footprint(s);
    ck_assert_uint_eq(fp, feat_kll_footprint_for_k(200));
    uint32_t max_retained = 0;
    for (uint32_t i = 0; i < 2000000; i++) {
        feat_kll_update(s, (double)(i % 1000));
        if (feat_kll_retained(s) > max_retained) max_retained = feat_kll_retained(s);
    }
    /* retained never exceeds the preallocated slots; levels ~ log2(n/k) */
    ck_assert_uint_le((size_t)max_retained * sizeof(double), fp);
    ck_assert_uint_le(feat_kll_num_levels(s), 20);
    ck_assert_uint_eq(feat_kll_footprint(s), fp);
    feat_kll_reset(s);
    ck_assert_uint_eq(feat_kll_count(s), 0);
    ck_assert_uint_eq(feat_kll_retained(s), 0);
    ck_assert(feat_kll_variance_sum(s) == 0.0);
    feat_kll_update(s, 1.0);
    feat_kll_update(s, 2.0);
    ck_assert(feat_kll_cdf(s, 1.0) == 0.5);
    feat_kll_destroy(s);
    /* the a priori bound sqrt(2 (48/7) ln(2/delta)) / k: 4.26% at k = 200 */
    ck_assert(fabs(feat_kll_rank_error_apriori(200, 0.01) - 0.04261) < 0.0001);
    ck_assert(isnan(feat_kll_rank_error_apriori(200, 0.0)));
}
END_TEST

static unsigned char *ser(const feat_kll_t *s, size_t *len) {
    *len = feat_kll_serialized_size(s);
    unsigned char *b = malloc(*len);
    ck_assert_ptr_nonnull(b);
    size_t w = 0;
    ck_assert_int_eq(feat_kll_serialize(s, b, *len - 1, &w), FEAT_ERR_TOO_LARGE);
    ck_assert_int_eq(feat_kll_serialize(s, b, *len, &w), FEAT_OK);
    ck_assert_uint_eq(w, *len);
    return b;
}

START_TEST(test_determinism_and_roundtrip) {
    feat_kll_t *a = mk(64, 42), *b = mk(64, 42);
    rng_state = 3;
    for (int i = 0; i < 50000; i++) {
        double v = nrand();
        feat_kll_update(a, v);
        feat_kll_update(b, v);
    }
    size_t la, lb;
    unsigned char *ba = ser(a, &la), *bb = ser(b, &lb);
    ck_assert_uint_eq(la, lb);
    ck_assert(memcmp(ba, bb, la) == 0);        /* same seed, same input, same bytes */
    /* header fields at their documented offsets, little-endian */
    ck_assert(memcmp(ba, "FKLL", 4) == 0);
    ck_assert_uint_eq(ba[4], 1);
    ck_assert_uint_eq(ba[6] | (ba[7] << 8), 64);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | ba[16 + i];
    ck_assert_uint_eq(n, 50000);
    ck_assert_uint_eq(feat_crc32(0, ba, la - 4),
                      (uint32_t)ba[la - 4] | ((uint32_t)ba[la - 3] << 8) |
                          ((uint32_t)ba[la - 2] << 16) | ((uint32_t)ba[la - 1] << 24));

    feat_kll_t *c = NULL;
    ck_assert_int_eq(feat_kll_deserialize(ba, la, &c), FEAT_OK);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(feat_kll_count(c), 50000);
    ck_assert(feat_kll_min(c) == feat_kll_min(a) && feat_kll_max(c) == feat_kll_max(a));
    ck_assert(feat_kll_variance_sum(c) == feat_kll_variance_sum(a));
    for (int i = -30; i <= 30; i++)
        ck_assert_uint_eq(feat_kll_rank(c, i / 10.0, 1), feat_kll_rank(a, i / 10.0, 1));
    for (int i = 0; i <= 20; i++) {
        double qa, qc;
        feat_kll_quantile(a, i / 20.0, &qa);
        feat_kll_quantile(c, i / 20.0, &qc);
        ck_assert(qa == qc);
    }
    size_t lc;
    unsigned char *bc = ser(c, &lc);          /* re-serializes to the same bytes */
    ck_assert_uint_eq(lc, la);
    /* level 0 may have been sorted by the quantile calls: compare as sets */
    ck_assert(memcmp(bc, ba, 56) == 0);
    /* the copy keeps working and merges */
    ck_assert_int_eq(feat_kll_merge(c, b), FEAT_OK);
    ck_assert_uint_eq(feat_kll_count(c), 100000);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(feat_kll_update(c, i), FEAT_OK);
    /* empty sketch round trip */
    feat_kll_t *e = mk(8, 1), *e2 = NULL;
    size_t le;
    unsigned char *be = ser(e, &le);
    ck_assert_int_eq(feat_kll_deserialize(be, le, &e2), FEAT_OK);
    ck_assert(feat_kll_is_empty(e2));
    free(be);
    feat_kll_destroy(e);
    feat_kll_destroy(e2);
    free(ba);
    free(bb);
    free(bc);
    feat_kll_destroy(a);
    feat_kll_destroy(b);
    feat_kll_destroy(c);
}
END_TEST

/* recompute the CRC after editing a blob, so structural checks are reached */
static void fix_crc(unsigned char *b, size_t len) {
    uint32_t c = feat_crc32(0, b, len - 4);
    for (int i = 0; i < 4; i++) b[len - 4 + i] = (unsigned char)(c >> (8 * i));
}

START_TEST(test_corrupt_rejected) {
    feat_kll_t *s = mk(16, 8);
    rng_state = 8;
    for (int i = 0; i < 3000; i++) feat_kll_update(s, nrand());
    size_t len;
    unsigned char *b = ser(s, &len);
    unsigned char *t = malloc(len);
    ck_assert_ptr_nonnull(t);
    feat_kll_t *out = (feat_kll_t *)(uintptr_t)1;
    /* every truncation (a fresh buffer of exactly that size, so ASan sees
     * any overread) */
    for (size_t l = 0; l < len; l++) {
        unsigned char *tr = malloc(l ? l : 1);
        memcpy(tr, b, l);
        ck_assert_int_eq(feat_kll_deserialize(tr, l, &out), FEAT_ERR_CORRUPT);
        ck_assert_ptr_null(out);
        free(tr);
    }
    ck_assert_int_eq(feat_kll_deserialize(NULL, 10, &out), FEAT_ERR_CORRUPT);
    ck_assert_int_eq(feat_kll_deserialize(b, len, NULL), FEAT_ERR_INVALID);
    /* trailing garbage */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    ck_assert_int_eq(feat_kll_deserialize(longer, len + 1, &out), FEAT_ERR_CORRUPT);
    free(longer);
    /* every single-bit flip is caught (CRC) */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(t, b, len);
            t[i] ^= (unsigned char)(1u << bit);
            ck_assert_int_eq(feat_kll_deserialize(t, len, &out), FEAT_ERR_CORRUPT);
            ck_assert_ptr_null(out);
        }
    }
    /* an intact blob of a future version */
    memcpy(t, b, len);
    t[4] = 2;
    fix_crc(t, len);
    ck_assert_int_eq(feat_kll_deserialize(t, len, &out), FEAT_ERR_UNIMPLEMENTED);
    ck_assert_ptr_null(out);
    /* random garbage with a valid CRC: structural checks, never a crash */
    rng_state = 77;
    for (int trial = 0; trial < 20000; trial++) {
        memcpy(t, b, len);
        int nflip = 1 + (int)(urand() * 4);
        for (int f = 0; f < nflip; f++) {
            size_t pos = 5 + (size_t)(urand() * (double)(len - 9));
            t[pos] = (unsigned char)(feat_splitmix64(&rng_state) & 0xff);
        }
        fix_crc(t, len);
        feat_kll_t *o = NULL;
        feat_err_t e = feat_kll_deserialize(t, len, &o);
        if (e == FEAT_OK) {
            /* accepted only if self-consistent: it must be usable */
            double q;
            ck_assert_int_eq(feat_kll_quantile(o, 0.5, &q), FEAT_OK);
            ck_assert(q >= feat_kll_min(o) && q <= feat_kll_max(o));
            feat_kll_destroy(o);
        } else {
            ck_assert_int_eq(e, FEAT_ERR_CORRUPT);
            ck_assert_ptr_null(o);
        }
    }
    /* targeted inconsistencies, CRC fixed each time */
    struct { size_t off; unsigned char xor_mask; const char *what; } edits[] = {
        {16, 0x01, "n no longer equals the sum of weights"},
        {8, 0xff, "number of levels 0 or > 56"},
        {6, 0x17, "k below 8 (16 -> 7)"},
        {5, 0x01, "min width not 8"},
        {12, 0x01, "retained disagrees with the level sizes"},
        {9, 0x01, "reserved byte set"},
        {47, 0x80, "negative V"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        memcpy(t, b, len);
        t[edits[i].off] ^= edits[i].xor_mask;
        fix_crc(t, len);
        feat_kll_t *o = NULL;
        feat_err_t e = feat_kll_deserialize(t, len, &o);
        ck_assert_msg(e == FEAT_ERR_CORRUPT, "%s: got %d", edits[i].what, e);
        ck_assert_ptr_null(o);
    }
    /* an unsorted level >= 1 */
    memcpy(t, b, len);
    uint32_t H = t[8], sizes[64], off = 56 + 4 * H, start = 0;
    for (uint32_t h = 0; h < H; h++) sizes[h] = feat_get_u32(t + 56 + 4 * h);
    start = sizes[0];
    int swapped = 0;
    for (uint32_t h = 1; h < H && !swapped; h++) {
        if (sizes[h] >= 2) {
            unsigned char tmp[8];
            unsigned char *p0 = t + off + 8 * start, *p1 = p0 + 8;
            if (memcmp(p0, p1, 8) != 0) {
                memcpy(tmp, p0, 8); memcpy(p0, p1, 8); memcpy(p1, tmp, 8);
                swapped = 1;
            }
        }
        start += sizes[h];
    }
    ck_assert(swapped);
    fix_crc(t, len);
    ck_assert_int_eq(feat_kll_deserialize(t, len, &out), FEAT_ERR_CORRUPT);
    /* a NaN item */
    memcpy(t, b, len);
    feat_put_f64(t + off, NAN);
    fix_crc(t, len);
    ck_assert_int_eq(feat_kll_deserialize(t, len, &out), FEAT_ERR_CORRUPT);
    free(t);
    free(b);
    feat_kll_destroy(s);
}
END_TEST


/* A valid sketch at the top of the range (8 items of weight 2^55, built as a
 * blob): merging copies of it must fail cleanly with FEAT_ERR_TOO_LARGE —
 * out of levels or count overflow — never crash or corrupt memory. */
START_TEST(test_limits) {
    enum { H = 56 };
    size_t len = 56 + 4 * H + 8 * 8 + 4;
    unsigned char *b = calloc(1, len);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "FKLL", 4);
    b[4] = 1;
    b[5] = 8;
    b[6] = 8;                      /* k = 8 */
    b[8] = H;
    feat_put_u32(b + 12, 8);       /* retained */
    feat_put_u64(b + 16, UINT64_C(8) << 55);
    feat_put_f64(b + 24, 0.0);
    feat_put_f64(b + 32, 7.0);
    feat_put_f64(b + 40, 1e30);    /* V */
    feat_put_u64(b + 48, 1);
    feat_put_u32(b + 56 + 4 * (H - 1), 8);
    for (int i = 0; i < 8; i++) feat_put_f64(b + 56 + 4 * H + 8 * i, (double)i);
    uint32_t c = feat_crc32(0, b, len - 4);
    feat_put_u32(b + len - 4, c);
    feat_kll_t *s = NULL, *t = NULL;
    ck_assert_int_eq(feat_kll_deserialize(b, len, &s), FEAT_OK);
    ck_assert_int_eq(feat_kll_deserialize(b, len, &t), FEAT_OK);
    ck_assert_uint_eq(feat_kll_count(s), UINT64_C(8) << 55);
    ck_assert(feat_kll_cdf(s, 3.0) == 0.5);
    feat_err_t e = FEAT_OK;
    for (int i = 0; i < 70 && e == FEAT_OK; i++) e = feat_kll_merge(s, t);
    ck_assert_int_eq(e, FEAT_ERR_TOO_LARGE);
    /* updates keep working or fail cleanly too */
    for (int i = 0; i < 1000; i++) {
        e = feat_kll_update(t, (double)i);
        ck_assert(e == FEAT_OK || e == FEAT_ERR_TOO_LARGE);
    }
    feat_kll_destroy(s);
    feat_kll_destroy(t);
    free(b);
}
END_TEST

static Suite *kll_suite(void) {
    Suite *s = suite_create("drift_kll");
    TCase *tc = tcase_create("kll");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_sort);
    tcase_add_test(tc, test_new_invalid);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_single_and_nan);
    tcase_add_test(tc, test_exact_small);
    tcase_add_test(tc, test_error_bound_stream);
    tcase_add_test(tc, test_error_bound_trials);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_reset_and_memory);
    tcase_add_test(tc, test_determinism_and_roundtrip);
    tcase_add_test(tc, test_corrupt_rejected);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(kll_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
