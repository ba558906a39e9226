/*
 * train/core/tests/tc.h — a tiny assertion kit for train/core's tests.
 *
 * The tests are plain C programs (no Check) so that they also build and run
 * on the bare GPU machine.  A failed CHECK prints file:line and the values
 * and counts a failure; main() returns tc_result() (0 = pass, 1 = fail).
 * Also: deterministic random data helpers shared by the tests.
 */
#ifndef FEAT_TRAIN_CORE_TESTS_TC_H
#define FEAT_TRAIN_CORE_TESTS_TC_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static int tc_failures_;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            tc_failures_++;                                                          \
        }                                                                            \
    } while (0)

/* |a − b| ≤ tol */
#define CHECK_NEAR(a, b, tol)                                                              \
    do {                                                                                   \
        double a_ = (double)(a), b_ = (double)(b), t_ = (double)(tol);                     \
        if (!(fabs(a_ - b_) <= t_)) {                                                      \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.17g, %s = %.17g, |diff| = %.3g > %.3g\n", \
                    __FILE__, __LINE__, #a, a_, #b, b_, fabs(a_ - b_), t_);                \
            tc_failures_++;                                                                \
        }                                                                                  \
    } while (0)

#define CHECK_ERR(expr, want)                                                          \
    do {                                                                               \
        int got_ = (int)(expr), want_ = (int)(want);                                   \
        if (got_ != want_) {                                                           \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %d (%s)\n", __FILE__, \
                    __LINE__, #expr, got_, feat_err_str(got_), want_, feat_err_str(want_)); \
            tc_failures_++;                                                            \
        }                                                                              \
    } while (0)

#define CHECK_OK(expr) CHECK_ERR(expr, FEAT_OK)

/* Runs a test function and reports it. */
#define TC_RUN(fn)                                                  \
    do {                                                            \
        int before_ = tc_failures_;                                 \
        fn();                                                       \
        printf("%-4s %s\n", tc_failures_ == before_ ? "ok" : "FAIL", #fn); \
        fflush(stdout);                                             \
    } while (0)

static inline int tc_result(void) {
    if (tc_failures_)
        printf("%d check(s) failed\n", tc_failures_);
    return tc_failures_ ? 1 : 0;
}

/* ---- deterministic data -------------------------------------------- */

static inline uint64_t tc_rng(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double tc_unif(uint64_t *s) { return (double)(tc_rng(s) >> 11) * 0x1p-53; }

/* Standard normal (Box–Muller). */
static inline double tc_gauss(uint64_t *s) {
    double u = tc_unif(s), v = tc_unif(s);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static inline void *tc_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

#endif
