/*
 * tests/unit/test_drift_catfreq.c — category frequencies (drift/catfreq.h):
 * exact counting while categories fit, the Space-Saving guarantees against
 * brute-force counts, pins, reset, comparison with a reference (unseen
 * categories counted), serialization and corrupt blobs.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/catfreq.h"
#include "stats/divergence.h"
#include "stats/stats_util.h"

static feat_catfreq_t *mk(uint32_t cap, uint32_t pins, uint32_t lcap) {
    feat_err_t e;
    feat_catfreq_t *cf = feat_catfreq_new(cap, pins, lcap, &e);
    ck_assert_ptr_nonnull(cf);
    ck_assert_int_eq(e, FEAT_OK);
    return cf;
}

static void add_str(feat_catfreq_t *cf, const char *s, uint64_t w) {
    ck_assert_int_eq(feat_catfreq_add(cf, s, strlen(s), w), FEAT_OK);
}

static uint64_t count_of(const feat_catfreq_t *cf, const char *s) {
    uint64_t c = 0;
    feat_catfreq_get(cf, feat_catfreq_hash(s, strlen(s)), &c, NULL);
    return c;
}

START_TEST(test_new_invalid) {
    feat_err_t e = FEAT_OK;
    ck_assert_ptr_null(feat_catfreq_new(0, 0, 16, &e));
    ck_assert_int_eq(e, FEAT_ERR_INVALID);
    ck_assert_ptr_null(feat_catfreq_new(FEAT_CATFREQ_MAX_SLOTS, 1, 16, &e));
    ck_assert_ptr_null(feat_catfreq_new(10, 0, FEAT_CATFREQ_MAX_LABEL + 1, &e));
    feat_catfreq_destroy(NULL);
}
END_TEST

START_TEST(test_exact_when_fits) {
    feat_catfreq_t *cf = mk(8, 0, 8);
    add_str(cf, "DE", 1);
    add_str(cf, "FR", 2);
    add_str(cf, "DE", 3);
    add_str(cf, "a-very-long-label", 1);
    ck_assert_uint_eq(feat_catfreq_total(cf), 7);
    ck_assert_uint_eq(feat_catfreq_other(cf), 0);
    ck_assert_uint_eq(feat_catfreq_size(cf), 3);
    ck_assert_uint_eq(count_of(cf, "DE"), 4);
    ck_assert_uint_eq(count_of(cf, "FR"), 2);
    ck_assert_int_eq(feat_catfreq_get(cf, feat_catfreq_hash("IT", 2), NULL, NULL),
                     FEAT_ERR_NOT_FOUND);
    ck_assert_int_eq(feat_catfreq_add(cf, "x", 1, 0), FEAT_ERR_INVALID);
    /* labels are kept, truncated to label_cap - 1 bytes */
    int seen_long = 0;
    for (uint32_t i = 0; i < feat_catfreq_size(cf); i++) {
        feat_catfreq_entry_t en;
        ck_assert_int_eq(feat_catfreq_entry(cf, i, &en), FEAT_OK);
        ck_assert_uint_eq(en.overcount, 0);
        if (en.hash == feat_catfreq_hash("a-very-long-label", 17)) {
            ck_assert_str_eq(en.label, "a-very-");
            seen_long = 1;
        }
    }
    ck_assert(seen_long);
    feat_catfreq_entry_t en;
    ck_assert_int_eq(feat_catfreq_entry(cf, 3, &en), FEAT_ERR_INVALID);
    /* the empty string is a category too */
    add_str(cf, "", 1);
    ck_assert_uint_eq(count_of(cf, ""), 1);
    feat_catfreq_destroy(cf);
}
END_TEST

/* Zipf-like stream over 2000 categories into 50 counters: every guarantee of
 * catfreq.h is checked against exact counts. */
START_TEST(test_space_saving_guarantees) {
    enum { NCAT = 2000, CAP = 50 };
    static uint64_t truth[NCAT];
    memset(truth, 0, sizeof truth);
    feat_catfreq_t *cf = mk(CAP, 0, 0);
    uint64_t rs = 12345, n = 0;
    for (int i = 0; i < 300000; i++) {
        /* P(c) ~ 1/(c+1): inverse transform on a harmonic-ish law */
        double u = (double)(feat_splitmix64(&rs) >> 11) * 0x1.0p-53;
        int c = (int)floor(exp(u * log((double)NCAT + 1))) - 1;
        if (c < 0) c = 0;
        if (c >= NCAT) c = NCAT - 1;
        uint64_t w = 1 + (feat_splitmix64(&rs) % 3);
        truth[c] += w;
        n += w;
        ck_assert_int_eq(feat_catfreq_add_hash(cf, (uint64_t)c * 0x9E3779B97F4A7C15ull + 1, w), FEAT_OK);
    }
    ck_assert_uint_eq(feat_catfreq_total(cf), n);
    ck_assert_uint_eq(feat_catfreq_size(cf), CAP);
    uint64_t guaranteed = 0;
    for (int c = 0; c < NCAT; c++) {
        uint64_t cnt, over;
        feat_err_t e = feat_catfreq_get(cf, (uint64_t)c * 0x9E3779B97F4A7C15ull + 1, &cnt, &over);
        if (e == FEAT_OK) {
            ck_assert_uint_le(cnt, truth[c]);
            ck_assert_uint_ge(cnt + over, truth[c]);
            ck_assert_uint_le(over, n / CAP);
            guaranteed += cnt;
        } else {
            ck_assert_int_eq(e, FEAT_ERR_NOT_FOUND);
            ck_assert_msg(truth[c] <= n / CAP, "heavy category %d (%llu) untracked", c,
                          (unsigned long long)truth[c]);
        }
    }
    ck_assert_uint_eq(guaranteed + feat_catfreq_other(cf), n);
    /* deterministic: the same stream gives the same entries */
    feat_catfreq_t *cf2 = mk(CAP, 0, 0);
    rs = 12345;
    for (int i = 0; i < 300000; i++) {
        double u = (double)(feat_splitmix64(&rs) >> 11) * 0x1.0p-53;
        int c = (int)floor(exp(u * log((double)NCAT + 1))) - 1;
        if (c < 0) c = 0;
        if (c >= NCAT) c = NCAT - 1;
        uint64_t w = 1 + (feat_splitmix64(&rs) % 3);
        feat_catfreq_add_hash(cf2, (uint64_t)c * 0x9E3779B97F4A7C15ull + 1, w);
    }
    for (uint32_t i = 0; i < CAP; i++) {
        feat_catfreq_entry_t a, b;
        feat_catfreq_entry(cf, i, &a);
        feat_catfreq_entry(cf2, i, &b);
        ck_assert(a.hash == b.hash && a.count == b.count && a.overcount == b.overcount);
    }
    /* footprint constant */
    ck_assert_uint_eq(feat_catfreq_footprint(cf), feat_catfreq_footprint(cf2));
    feat_catfreq_destroy(cf);
    feat_catfreq_destroy(cf2);
}
END_TEST

START_TEST(test_pins_and_reset) {
    feat_catfreq_t *cf = mk(2, 3, 16);
    uint64_t h_de = feat_catfreq_hash("DE", 2), h_fr = feat_catfreq_hash("FR", 2);
    ck_assert_int_eq(feat_catfreq_pin(cf, h_de, "DE", 2), FEAT_OK);
    ck_assert_int_eq(feat_catfreq_pin(cf, h_de, "DE", 2), FEAT_ERR_EXISTS);
    /* many distinct unpinned categories churn the 2 counters; pins stay exact */
    char buf[32];
    for (int i = 0; i < 1000; i++) {
        add_str(cf, "DE", 1);
        snprintf(buf, sizeof buf, "c%d", i);
        add_str(cf, buf, 1);
    }
    ck_assert_uint_eq(count_of(cf, "DE"), 1000);
    ck_assert_uint_eq(feat_catfreq_total(cf), 2000);
    /* a tracked unpinned category keeps its guaranteed count when pinned */
    add_str(cf, "FR", 5);
    uint64_t before = count_of(cf, "FR");
    ck_assert_uint_ge(before, 5);
    ck_assert_int_eq(feat_catfreq_pin(cf, h_fr, NULL, 0), FEAT_OK);
    ck_assert_uint_eq(count_of(cf, "FR"), before);
    uint64_t over = 1;
    feat_catfreq_get(cf, h_fr, NULL, &over);
    ck_assert_uint_eq(over, 0);
    ck_assert_uint_eq(feat_catfreq_size(cf), 2 + 1);    /* 2 pins + 1 counter left */
    feat_catfreq_entry_t en;
    ck_assert_int_eq(feat_catfreq_entry(cf, 1, &en), FEAT_OK);   /* pins first, pin order */
    ck_assert(en.hash == h_fr && en.pinned);
    ck_assert_str_eq(en.label, "FR");
    ck_assert_int_eq(feat_catfreq_pin(cf, 42, "x", 1), FEAT_OK);
    ck_assert_int_eq(feat_catfreq_pin(cf, 43, "y", 1), FEAT_ERR_TOO_LARGE);
    /* reset: counts gone, pins kept */
    feat_catfreq_reset(cf);
    ck_assert_uint_eq(feat_catfreq_total(cf), 0);
    ck_assert_uint_eq(feat_catfreq_size(cf), 3);
    ck_assert_uint_eq(count_of(cf, "DE"), 0);
    ck_assert_int_eq(feat_catfreq_get(cf, h_de, NULL, NULL), FEAT_OK);
    add_str(cf, "DE", 2);
    add_str(cf, "zz", 1);
    ck_assert_uint_eq(count_of(cf, "DE"), 2);
    ck_assert_uint_eq(count_of(cf, "zz"), 1);
    feat_catfreq_destroy(cf);
    /* only pins: everything else is "other" */
    cf = mk(0, 1, 0);
    ck_assert_int_eq(feat_catfreq_pin(cf, h_de, NULL, 0), FEAT_OK);
    add_str(cf, "DE", 3);
    add_str(cf, "IT", 4);
    ck_assert_uint_eq(feat_catfreq_other(cf), 4);
    ck_assert_uint_eq(count_of(cf, "DE"), 3);
    feat_catfreq_destroy(cf);
}
END_TEST

/* reference {A: 50, B: 30, C: 20}; live {A: 20, B: 30, C: 30, NEW: 20} with
 * the reference pinned: categories A, B, C and "other" (= NEW, unseen in the
 * reference, counted). */
START_TEST(test_compare) {
    feat_catfreq_t *ref = mk(16, 0, 8), *live = mk(16, 8, 8);
    add_str(ref, "A", 50);
    add_str(ref, "B", 30);
    add_str(ref, "C", 20);
    for (uint32_t i = 0; i < feat_catfreq_size(ref); i++) {
        feat_catfreq_entry_t en;
        feat_catfreq_entry(ref, i, &en);
        ck_assert_int_eq(feat_catfreq_pin(live, en.hash, en.label, strlen(en.label)), FEAT_OK);
    }
    add_str(live, "A", 20);
    add_str(live, "B", 30);
    add_str(live, "C", 30);
    add_str(live, "NEW", 20);
    feat_catfreq_cmp_t c;
    ck_assert_int_eq(feat_catfreq_compare(live, ref, FEAT_DRIFT_EPS, &c), FEAT_OK);
    ck_assert_uint_eq(c.ncat, 4);
    ck_assert(fabs(c.live_unseen - 0.2) < 1e-15);
    /* the same through the aligned vectors and the generic functions */
    double rc[8], lc[8];
    uint32_t nc;
    ck_assert_int_eq(feat_catfreq_align(live, ref, rc, lc, 8, &nc), FEAT_OK);
    ck_assert_uint_eq(nc, 4);
    ck_assert(rc[3] == 0 && lc[3] == 20);
    double sr = 0, sl = 0;
    for (int i = 0; i < 4; i++) { sr += rc[i]; sl += lc[i]; }
    ck_assert(sr == 100 && sl == 100);
    feat_chi2_result_t r;
    ck_assert_int_eq(feat_chi2_homogeneity(rc, lc, 4, &r), FEAT_OK);
    ck_assert(fabs(c.chi2 - r.statistic) <= 1e-12 * r.statistic);
    ck_assert(fabs(c.chi2_pvalue - r.pvalue) <= 1e-12 * r.pvalue);
    ck_assert(c.chi2_dof == 3);
    /* hand value: totals 100/100, so expected = column / 2 and
     * chi2 = sum (r - l)^2 / (r + l) = 900/70 + 0 + 100/50 + 400/20 */
    ck_assert(fabs(c.chi2 - (900.0 / 70 + 100.0 / 50 + 400.0 / 20)) < 1e-12);
    double kl, psi, js;
    feat_kl_divergence(lc, rc, 4, FEAT_DRIFT_EPS, &kl);
    feat_psi(rc, lc, 4, FEAT_DRIFT_EPS, &psi);
    feat_js_distance(rc, lc, 4, &js);
    ck_assert(fabs(c.kl - kl) <= 1e-12 * kl);
    ck_assert(fabs(c.psi - psi) <= 1e-12 * psi);
    ck_assert(fabs(c.js - js) <= 1e-12 * js);
    ck_assert(isfinite(c.kl) && c.kl > 0.5);   /* 0.2 ln(0.2 / ~1e-4) alone is 1.5 */
    /* empty side */
    feat_catfreq_reset(live);
    ck_assert_int_eq(feat_catfreq_compare(live, ref, FEAT_DRIFT_EPS, &c), FEAT_ERR_STATE);
    ck_assert_int_eq(feat_catfreq_align(live, ref, rc, lc, 3, &nc), FEAT_ERR_TOO_LARGE);
    feat_catfreq_destroy(ref);
    feat_catfreq_destroy(live);
}
END_TEST

static void fix_crc(unsigned char *b, size_t len) {
    uint32_t c = feat_crc32(0, b, len - 4);
    for (int i = 0; i < 4; i++) b[len - 4 + i] = (unsigned char)(c >> (8 * i));
}

START_TEST(test_serialize) {
    feat_catfreq_t *cf = mk(20, 4, 12);
    char buf[32];
    ck_assert_int_eq(feat_catfreq_pin(cf, feat_catfreq_hash("pinned", 6), "pinned", 6), FEAT_OK);
    for (int i = 0; i < 5000; i++) {
        snprintf(buf, sizeof buf, "cat%d", (i * 37) % (1 + i % 97));
        add_str(cf, buf, 1);
        if (i % 10 == 0) add_str(cf, "pinned", 1);
    }
    size_t len = feat_catfreq_serialized_size(cf), w;
    unsigned char *b = malloc(len), *t = malloc(len);
    ck_assert(b && t);
    ck_assert_int_eq(feat_catfreq_serialize(cf, b, len - 1, &w), FEAT_ERR_TOO_LARGE);
    ck_assert_int_eq(feat_catfreq_serialize(cf, b, len, &w), FEAT_OK);
    ck_assert_uint_eq(w, len);
    feat_catfreq_t *c2 = NULL;
    ck_assert_int_eq(feat_catfreq_deserialize(b, len, &c2), FEAT_OK);
    ck_assert_uint_eq(feat_catfreq_total(c2), feat_catfreq_total(cf));
    ck_assert_uint_eq(feat_catfreq_other(c2), feat_catfreq_other(cf));
    ck_assert_uint_eq(feat_catfreq_size(c2), feat_catfreq_size(cf));
    for (uint32_t i = 0; i < feat_catfreq_size(cf); i++) {
        feat_catfreq_entry_t a, e2;
        feat_catfreq_entry(cf, i, &a);
        uint64_t cnt, over;
        ck_assert_int_eq(feat_catfreq_get(c2, a.hash, &cnt, &over), FEAT_OK);
        ck_assert(cnt == a.count && over == a.overcount);
        feat_catfreq_entry(c2, i, &e2);
        if (i == 0) ck_assert_str_eq(e2.label, "pinned");
    }
    /* both continue identically */
    for (int i = 0; i < 3000; i++) {
        snprintf(buf, sizeof buf, "x%d", i % 41);
        add_str(cf, buf, 1);
        add_str(c2, buf, 1);
    }
    size_t l1 = feat_catfreq_serialized_size(cf), l2 = feat_catfreq_serialized_size(c2);
    ck_assert_uint_eq(l1, l2);
    unsigned char *b1 = malloc(l1), *b2 = malloc(l2);
    feat_catfreq_serialize(cf, b1, l1, &w);
    feat_catfreq_serialize(c2, b2, l2, &w);
    ck_assert(memcmp(b1, b2, l1) == 0);
    free(b1);
    free(b2);
    /* truncations, bit flips, garbage with a valid CRC */
    feat_catfreq_t *o = (feat_catfreq_t *)(uintptr_t)1;
    for (size_t l = 0; l < len; l++) {
        unsigned char *tr = malloc(l ? l : 1);
        memcpy(tr, b, l);
        ck_assert_int_eq(feat_catfreq_deserialize(tr, l, &o), FEAT_ERR_CORRUPT);
        ck_assert_ptr_null(o);
        free(tr);
    }
    for (size_t i = 0; i < len; i++) {
        memcpy(t, b, len);
        t[i] ^= 0x10;
        ck_assert_int_eq(feat_catfreq_deserialize(t, len, &o), FEAT_ERR_CORRUPT);
    }
    memcpy(t, b, len);
    t[4] = 2;                                   /* intact, future version */
    fix_crc(t, len);
    ck_assert_int_eq(feat_catfreq_deserialize(t, len, &o), FEAT_ERR_UNIMPLEMENTED);
    uint64_t rs = 9;
    for (int trial = 0; trial < 20000; trial++) {
        memcpy(t, b, len);
        for (int f = 0; f < 3; f++) {
            size_t pos = 5 + feat_splitmix64(&rs) % (len - 9);
            t[pos] = (unsigned char)feat_splitmix64(&rs);
        }
        fix_crc(t, len);
        feat_catfreq_t *x = NULL;
        feat_err_t e = feat_catfreq_deserialize(t, len, &x);
        if (e == FEAT_OK) {
            ck_assert_uint_ge(feat_catfreq_total(x), feat_catfreq_total(x) - feat_catfreq_other(x));
            add_str(x, "still-works", 1);
            feat_catfreq_destroy(x);
        } else {
            ck_assert_int_eq(e, FEAT_ERR_CORRUPT);
            ck_assert_ptr_null(x);
        }
    }
    /* a header claiming a huge capacity is refused before allocating */
    memcpy(t, b, len);
    t[8] = t[9] = t[10] = 0xff;
    t[11] = 0x7f;
    fix_crc(t, len);
    ck_assert_int_eq(feat_catfreq_deserialize(t, len, &o), FEAT_ERR_CORRUPT);
    free(b);
    free(t);
    feat_catfreq_destroy(cf);
    feat_catfreq_destroy(c2);
}
END_TEST

/* Merging: totals add up; pinned categories stay exact and are pinned in
 * the result; categories that fit are exact; what one side had beyond its
 * capacity (its other bucket) stays in other, and the brute-force counts
 * lie within the merged bounds. */
START_TEST(test_merge) {
    feat_catfreq_t *a = mk(4, 2, 16), *b = mk(4, 2, 16);
    ck_assert_int_eq(feat_catfreq_pin(a, feat_catfreq_hash("p", 1), "p", 1), FEAT_OK);
    ck_assert_int_eq(feat_catfreq_pin(b, feat_catfreq_hash("p", 1), "p", 1), FEAT_OK);
    ck_assert_int_eq(feat_catfreq_pin(b, feat_catfreq_hash("q", 1), "q", 1), FEAT_OK);
    const char *names[] = {"p", "q", "x", "y", "z", "w", "v", "u"};
    uint64_t truth[8] = {0};
    uint64_t seed = 5;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int k = (int)((seed >> 33) % 8);
        feat_catfreq_t *to = (seed >> 20) & 1 ? a : b;
        add_str(to, names[k], 1);
        truth[k]++;
    }
    uint64_t ta = feat_catfreq_total(a), tb = feat_catfreq_total(b);
    ck_assert_int_eq(feat_catfreq_merge(a, b), FEAT_OK);
    ck_assert_uint_eq(feat_catfreq_total(a), ta + tb);
    ck_assert_uint_eq(count_of(a, "p"), truth[0]);  /* pinned on both sides: exact */
    uint64_t c, over, guaranteed = 0;
    feat_catfreq_entry_t e;
    for (uint32_t i = 0; i < feat_catfreq_size(a); i++) {
        ck_assert_int_eq(feat_catfreq_entry(a, i, &e), FEAT_OK);
        guaranteed += e.count;
        int k = 0;
        while (k < 8 && strcmp(names[k], e.label)) k++;
        ck_assert_int_lt(k, 8);
        ck_assert_uint_le(e.count, truth[k]); /* a lower bound, never more than the truth */
        if (!strcmp(e.label, "q")) ck_assert(e.pinned);
    }
    ck_assert_uint_eq(feat_catfreq_other(a), feat_catfreq_total(a) - guaranteed);
    ck_assert_int_eq(feat_catfreq_get(a, feat_catfreq_hash("q", 1), &c, &over), FEAT_OK);
    ck_assert_uint_eq(over, 0);
    feat_catfreq_destroy(a);
    feat_catfreq_destroy(b);
}
END_TEST

static Suite *cf_suite(void) {
    Suite *s = suite_create("drift_catfreq");
    TCase *tc = tcase_create("catfreq");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_new_invalid);
    tcase_add_test(tc, test_exact_when_fits);
    tcase_add_test(tc, test_space_saving_guarantees);
    tcase_add_test(tc, test_pins_and_reset);
    tcase_add_test(tc, test_compare);
    tcase_add_test(tc, test_serialize);
    tcase_add_test(tc, test_merge);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(cf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
