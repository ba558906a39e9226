/*
 * tests/unit/test_hll.c — HyperLogLog (stats/hll.h): the estimate within 3
 * standard errors at several cardinalities, near-exact small range, merge
 * equal to the union, order and duplicate independence, the sparse and
 * dense forms (the byte-level insert agrees with the in-memory sketch) and
 * rejection of damaged bytes.  Inputs are distinct integers hashed with
 * FNV-1a 64 (what tiles do), so the expected count is known exactly.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "stats/hll.h"

static uint64_t h_of(uint64_t i) {
    unsigned char w[8];
    for (int b = 0; b < 8; b++) w[b] = (unsigned char)(i >> (8 * b));
    return feat_fnv1a64(w, 8);
}

static feat_hll_t *mk(void) {
    feat_hll_t *h = malloc(sizeof(*h));
    ck_assert_ptr_nonnull(h);
    feat_hll_clear(h);
    return h;
}

START_TEST(test_empty) {
    feat_hll_t *h = mk();
    ck_assert(feat_hll_estimate(h) == 0);
    unsigned char buf[FEAT_HLL_MAX_BYTES];
    size_t n = feat_hll_serialize(h, buf);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(buf[0], FEAT_HLL_SPARSE);
    ck_assert_int_eq(feat_hll_check(buf, n), FEAT_OK);
    ck_assert_int_eq(feat_hll_check(NULL, 0), FEAT_OK);
    ck_assert_int_eq(feat_hll_merge_bytes(h, NULL, 0), FEAT_OK);
    free(h);
}
END_TEST

/* Estimates within 3 standard errors (and small counts near-exact), for
 * several seeds of distinct values. */
START_TEST(test_error_bound) {
    static const uint64_t card[] = {1, 10, 100, 1000, 5000, 10000, 12000, 20000, 100000, 300000};
    feat_hll_t *h = mk();
    for (size_t c = 0; c < sizeof(card) / sizeof(card[0]); c++) {
        for (uint64_t base = 0; base < 3; base++) {
            feat_hll_clear(h);
            uint64_t start = base * 1000000007ull;
            for (uint64_t i = 0; i < card[c]; i++) feat_hll_add(h, h_of(start + i));
            double e = feat_hll_estimate(h), rel = fabs(e - (double)card[c]) / (double)card[c];
            if (card[c] <= 100) {
                /* linear counting: collisions among <= 100 of 4096 registers are rare */
                ck_assert_msg(fabs(e - (double)card[c]) <= 2.0, "n=%llu est %.3f", (unsigned long long)card[c], e);
            }
            ck_assert_msg(rel <= 3 * FEAT_HLL_STDERR, "n=%llu est %.1f rel %.4f", (unsigned long long)card[c], e, rel);
        }
    }
    free(h);
}
END_TEST

START_TEST(test_duplicates_order_merge) {
    feat_hll_t *a = mk(), *b = mk(), *u = mk(), *r = mk();
    for (uint64_t i = 0; i < 30000; i++) {
        feat_hll_add(u, h_of(i));
        if (i < 20000) feat_hll_add(a, h_of(i));
        if (i >= 10000) feat_hll_add(b, h_of(i));
    }
    for (uint64_t i = 30000; i-- > 0;) feat_hll_add(r, h_of(i));  /* reverse order */
    for (uint64_t i = 0; i < 30000; i += 7) feat_hll_add(r, h_of(i)); /* duplicates */
    ck_assert(memcmp(u->reg, r->reg, FEAT_HLL_M) == 0);
    feat_hll_merge(a, b);
    ck_assert(memcmp(a->reg, u->reg, FEAT_HLL_M) == 0);
    ck_assert(feat_hll_estimate(a) == feat_hll_estimate(u));
    free(a); free(b); free(u); free(r);
}
END_TEST

/* The byte-level insert builds the same registers as the in-memory sketch,
 * sparse until the dense form is smaller, and serialize/merge_bytes round
 * trip. */
START_TEST(test_bytes_forms) {
    static unsigned char x[2][FEAT_HLL_MAX_BYTES], s[FEAT_HLL_MAX_BYTES];
    size_t len = 0;
    int cur = 0;
    feat_hll_t *h = mk(), *back = mk();
    int went_dense = 0;
    for (uint64_t i = 0; i < 5000; i++) {
        size_t ol;
        ck_assert_int_eq(feat_hll_insert(i ? x[cur] : NULL, len, h_of(i), x[cur ^ 1], &ol), FEAT_OK);
        cur ^= 1;
        len = ol;
        feat_hll_add(h, h_of(i));
        if (i % 97 == 0 || i == 4999) {
            size_t sl = feat_hll_serialize(h, s);
            ck_assert_uint_eq(sl, len);
            ck_assert(memcmp(s, x[cur], len) == 0);
            uint32_t nz = 0;
            for (uint32_t j = 0; j < FEAT_HLL_M; j++) nz += h->reg[j] != 0;
            if (nz <= FEAT_HLL_SPARSE_MAX) {
                ck_assert_int_eq(s[0], FEAT_HLL_SPARSE);
                ck_assert_uint_eq(sl, 3 + 4 * (size_t)nz);
            } else {
                ck_assert_int_eq(s[0], FEAT_HLL_DENSE);
                ck_assert_uint_eq(sl, FEAT_HLL_MAX_BYTES);
                went_dense = 1;
            }
            feat_hll_clear(back);
            ck_assert_int_eq(feat_hll_merge_bytes(back, s, sl), FEAT_OK);
            ck_assert(memcmp(back->reg, h->reg, FEAT_HLL_M) == 0);
        }
    }
    ck_assert(went_dense);
    free(h);
    free(back);
}
END_TEST

START_TEST(test_corrupt) {
    unsigned char b[FEAT_HLL_MAX_BYTES + 8], o[FEAT_HLL_MAX_BYTES];
    size_t ol;
    feat_hll_t *h = mk();
    for (uint64_t i = 0; i < 5; i++) feat_hll_add(h, h_of(i));
    size_t n = feat_hll_serialize(h, b);
    ck_assert_uint_eq(n, 3 + 4 * 5);
    ck_assert_int_eq(feat_hll_check(b, n), FEAT_OK);
    /* every truncation */
    for (size_t k = 1; k < n; k++) {
        ck_assert_int_eq(feat_hll_check(b, k), FEAT_ERR_CORRUPT);
        ck_assert_int_eq(feat_hll_insert(b, k, 1, o, &ol), FEAT_ERR_CORRUPT);
        ck_assert_uint_eq(ol, 0);
    }
    unsigned char c[64];
    memcpy(c, b, n);
    c[0] = 7; /* unknown form */
    ck_assert_int_eq(feat_hll_check(c, n), FEAT_ERR_CORRUPT);
    memcpy(c, b, n);
    c[1] = 6; /* count says more than there is */
    ck_assert_int_eq(feat_hll_check(c, n), FEAT_ERR_CORRUPT);
    memcpy(c, b, n);
    memcpy(c + 7, c + 3, 4); /* two entries for one register: not ascending */
    ck_assert_int_eq(feat_hll_check(c, n), FEAT_ERR_CORRUPT);
    memcpy(c, b, n);
    c[3] = (unsigned char)((c[3] & ~63) | 0); /* value 0 */
    ck_assert_int_eq(feat_hll_check(c, n), FEAT_ERR_CORRUPT);
    memcpy(c, b, n);
    c[3] = (unsigned char)((c[3] & ~63) | 60); /* value over 53 */
    ck_assert_int_eq(feat_hll_check(c, n), FEAT_ERR_CORRUPT);
    /* dense: wrong length, a register over 53 */
    b[0] = FEAT_HLL_DENSE;
    memset(b + 1, 3, FEAT_HLL_M);
    ck_assert_int_eq(feat_hll_check(b, FEAT_HLL_MAX_BYTES), FEAT_OK);
    ck_assert_int_eq(feat_hll_check(b, FEAT_HLL_MAX_BYTES - 1), FEAT_ERR_CORRUPT);
    ck_assert_int_eq(feat_hll_check(b, FEAT_HLL_MAX_BYTES + 1), FEAT_ERR_CORRUPT);
    b[100] = 54;
    memcpy(o, h->reg, 16);
    ck_assert_int_eq(feat_hll_merge_bytes(h, b, FEAT_HLL_MAX_BYTES), FEAT_ERR_CORRUPT);
    ck_assert(memcmp(o, h->reg, 16) == 0); /* unchanged */
    free(h);
}
END_TEST

static Suite *hll_suite(void) {
    Suite *s = suite_create("hll");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_error_bound);
    tcase_add_test(tc, test_duplicates_order_merge);
    tcase_add_test(tc, test_bytes_forms);
    tcase_add_test(tc, test_corrupt);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(hll_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
