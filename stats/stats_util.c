/*
 * stats/stats_util.c — an allocation-free sort of doubles for the
 * statistics library (see stats_util.h).
 */
#include "stats/stats_util.h"

#include <math.h>

/* Batcher's odd-even merge sort network for 16 inputs (63 comparators,
 * checked over all 2^16 0/1 inputs when generated).  Unrolled with constant
 * indices so the values stay in registers; each compare-exchange compiles to
 * minsd/maxsd, so random data causes no branch mispredictions. */
#if defined(__SSE2__)
#include <emmintrin.h>
/* minsd/maxsd: (u < v) ? u : v and (v > u) ? v : u, exactly the portable
 * form below (no NaN reaches a sort) */
#define CE(i, j)                                        \
    do {                                                \
        __m128d u_ = _mm_set_sd(x[i]), v_ = _mm_set_sd(x[j]); \
        x[i] = _mm_cvtsd_f64(_mm_min_sd(u_, v_));       \
        x[j] = _mm_cvtsd_f64(_mm_max_sd(v_, u_));       \
    } while (0)
#else
#define CE(i, j)                                        \
    do {                                                \
        double u_ = x[i], v_ = x[j];                    \
        x[i] = u_ < v_ ? u_ : v_;                       \
        x[j] = u_ < v_ ? v_ : u_;                       \
    } while (0)
#endif

static void network_sort16(double *a, size_t n) {
    double x[16];
    for (size_t i = 0; i < 16; i++) x[i] = i < n ? a[i] : INFINITY;
    CE(0, 1);
    CE(2, 3);
    CE(0, 2);
    CE(1, 3);
    CE(1, 2);
    CE(4, 5);
    CE(6, 7);
    CE(4, 6);
    CE(5, 7);
    CE(5, 6);
    CE(0, 4);
    CE(2, 6);
    CE(2, 4);
    CE(1, 5);
    CE(3, 7);
    CE(3, 5);
    CE(1, 2);
    CE(3, 4);
    CE(5, 6);
    CE(8, 9);
    CE(10, 11);
    CE(8, 10);
    CE(9, 11);
    CE(9, 10);
    CE(12, 13);
    CE(14, 15);
    CE(12, 14);
    CE(13, 15);
    CE(13, 14);
    CE(8, 12);
    CE(10, 14);
    CE(10, 12);
    CE(9, 13);
    CE(11, 15);
    CE(11, 13);
    CE(9, 10);
    CE(11, 12);
    CE(13, 14);
    CE(0, 8);
    CE(4, 12);
    CE(4, 8);
    CE(2, 10);
    CE(6, 14);
    CE(6, 10);
    CE(2, 4);
    CE(6, 8);
    CE(10, 12);
    CE(1, 9);
    CE(5, 13);
    CE(5, 9);
    CE(3, 11);
    CE(7, 15);
    CE(7, 11);
    CE(3, 5);
    CE(7, 9);
    CE(11, 13);
    CE(1, 2);
    CE(3, 4);
    CE(5, 6);
    CE(7, 8);
    CE(9, 10);
    CE(11, 12);
    CE(13, 14);
    for (size_t i = 0; i < n; i++) a[i] = x[i];
}
#undef CE

static void insertion_sort(double *a, size_t n) {
    for (size_t i = 1; i < n; i++) {
        double v = a[i];
        size_t j = i;
        while (j > 0 && a[j - 1] > v) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

static void sift_down(double *a, size_t root, size_t n) {
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && a[child + 1] > a[child]) child++;
        if (!(a[child] > a[root])) return;
        double t = a[root]; a[root] = a[child]; a[child] = t;
        root = child;
    }
}

static void heap_sort(double *a, size_t n) {
    for (size_t i = n / 2; i-- > 0;) sift_down(a, i, n);
    for (size_t i = n; i-- > 1;) {
        double t = a[0]; a[0] = a[i]; a[i] = t;
        sift_down(a, 0, i);
    }
}

/* Introsort: quicksort (median of three, recursion on the smaller part, loop
 * on the larger), heap sort when too deep, insertion sort for short runs. */
static void intro_sort(double *a, size_t n, int depth) {
    while (n > 24) {
        if (depth-- == 0) {
            heap_sort(a, n);
            return;
        }
        size_t mid = n / 2;
        double x = a[0], y = a[mid], z = a[n - 1], pivot;
        if (x < y) pivot = (y < z) ? y : ((x < z) ? z : x);
        else       pivot = (x < z) ? x : ((y < z) ? z : y);
        size_t i = 0, j = n - 1;
        for (;;) {                       /* Hoare partition */
            while (a[i] < pivot) i++;
            while (pivot < a[j]) j--;
            if (i >= j) break;
            double t = a[i]; a[i] = a[j]; a[j] = t;
            i++;
            j--;
        }
        size_t left = j + 1;             /* a[0..left) <= pivot <= a[left..n) */
        if (left < n - left) {
            intro_sort(a, left, depth);
            a += left;
            n -= left;
        } else {
            intro_sort(a + left, n - left, depth);
            n = left;
        }
    }
    if (n <= 16) network_sort16(a, n);
    else insertion_sort(a, n);
}

void feat_sort_f64(double *a, size_t n) {
    int depth = 0;
    for (size_t m = n; m > 1; m >>= 1) depth += 2;
    intro_sort(a, n, depth);
}
