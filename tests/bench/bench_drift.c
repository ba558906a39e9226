/*
 * tests/bench/bench_drift.c — costs of the drift statistics core.
 *
 *   1. sketch update cost per value (ns) for several k, and category update
 *      cost (by hash and by string);
 *   2. window close for 100 features (a tenth of them drifting): per
 *      feature, compare the live sketch with the reference sketch — KS
 *      (statistic, p-value by LIMIT and by SciPy's AUTO, error bound) +
 *      bin counts at the reference's cached quantile edges + PSI + KL — then
 *      reset the live sketch;
 *   3. memory per monitored feature (reference + live sketch) at 10^4, 10^6
 *      and 10^8 values: the sketch footprint, the heap in use (glibc
 *      mallinfo2) which must not grow after creation, retained items, levels
 *      and the rank-error bound.
 *
 * Usage: bench_drift [--quick]   (--quick: small sizes, a smoke test for
 * ctest -L bench; the numbers worth recording come from a full run).
 * Prints results; writes no files.
 */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats/catfreq.h"
#include "stats/divergence.h"
#include "stats/kll.h"
#include "stats/ks.h"
#include "stats/stats_util.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static size_t heap_in_use(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

#define POOL (1u << 20)
static double pool[POOL];

static void fill_pool(uint64_t seed) {
    for (uint32_t i = 0; i < POOL; i++) {
        double u = (double)(feat_splitmix64(&seed) >> 11) * 0x1.0p-53 + 1e-300;
        double v = (double)(feat_splitmix64(&seed) >> 11) * 0x1.0p-53;
        pool[i] = sqrt(-2 * log(u)) * cos(2 * M_PI * v);
    }
}

static void die(const char *what, feat_err_t e) {
    fprintf(stderr, "bench_drift: %s: %s\n", what, feat_err_str(e));
    exit(1);
}

static void bench_update(uint64_t n) {
    printf("== sketch update (values from a 2^20 pool of normals) ==\n");
    uint32_t ks[] = {100, 200, 400, 1000};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        feat_kll_t *s = feat_kll_new(ks[t], 1, NULL);
        double t0 = now_s();
        for (uint64_t i = 0; i < n; i++) feat_kll_update(s, pool[i & (POOL - 1)]);
        double dt = now_s() - t0;
        printf("kll k=%-5u %11llu values  %6.2f ns/value  (retained %u, levels %u)\n", ks[t],
               (unsigned long long)n, 1e9 * dt / (double)n, feat_kll_retained(s),
               feat_kll_num_levels(s));
        feat_kll_destroy(s);
    }
    /* categories: Zipf-ish over 10000 names, 64 counters + 32 pins */
    enum { NAMES = 10000 };
    static char names[NAMES][16];
    static uint64_t hashes[NAMES];
    static uint32_t seq[POOL];
    for (int i = 0; i < NAMES; i++) {
        snprintf(names[i], sizeof names[i], "country-%d", i);
        hashes[i] = feat_catfreq_hash(names[i], strlen(names[i]));
    }
    uint64_t rs = 3;
    for (uint32_t i = 0; i < POOL; i++) {
        double u = (double)(feat_splitmix64(&rs) >> 11) * 0x1.0p-53;
        seq[i] = (uint32_t)(exp(u * log((double)NAMES)) - 1);
    }
    feat_catfreq_t *cf = feat_catfreq_new(64, 32, 32, NULL);
    for (int i = 0; i < 32; i++) feat_catfreq_pin(cf, hashes[i], names[i], strlen(names[i]));
    uint64_t m = n / 4;
    double t0 = now_s();
    for (uint64_t i = 0; i < m; i++) feat_catfreq_add_hash(cf, hashes[seq[i & (POOL - 1)]], 1);
    double dt = now_s() - t0;
    printf("catfreq cap=64 pins=32  by hash    %6.2f ns/value\n", 1e9 * dt / (double)m);
    feat_catfreq_reset(cf);
    t0 = now_s();
    for (uint64_t i = 0; i < m; i++) {
        const char *nm = names[seq[i & (POOL - 1)]];
        feat_catfreq_add(cf, nm, strlen(nm), 1);
    }
    dt = now_s() - t0;
    printf("catfreq cap=64 pins=32  by string  %6.2f ns/value (hash + label copy on admission)\n",
           1e9 * dt / (double)m);
    feat_catfreq_destroy(cf);
}

#define NFEAT 100
#define NBINS 10

typedef struct feature {
    feat_kll_t *ref, *live;
    double edges[NBINS - 1];
    uint32_t nedges;
} feature_t;

static void bench_window_close(uint64_t n_ref, uint64_t n_live, uint32_t k, int rounds,
                               feat_ks_method_t method) {
    feature_t *f = calloc(NFEAT, sizeof *f);
    if (!f) die("calloc", FEAT_ERR_NOMEM);
    feat_err_t e;
    double t_setup = 0;
    for (int i = 0; i < NFEAT; i++) {
        f[i].ref = feat_kll_new(k, 1000 + i, &e);
        f[i].live = feat_kll_new(k, 5000 + i, &e);
        if (!f[i].ref || !f[i].live) die("feat_kll_new", e);
        for (uint64_t j = 0; j < n_ref; j++)
            feat_kll_update(f[i].ref, pool[(j * 7 + i) & (POOL - 1)]);
        double t0 = now_s();
        if ((e = feat_bins_edges_kll(f[i].ref, NBINS, f[i].edges, &f[i].nedges)) != FEAT_OK)
            die("edges", e);
        t_setup += now_s() - t0;
    }
    double t_total = 0, t_ks = 0, checksum = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < NFEAT; i++) {
            double shift = (i % 10 == 0) ? 0.1 : 0.0;   /* a tenth of the features drift */
            for (uint64_t j = 0; j < n_live; j++)
                feat_kll_update(f[i].live, pool[(j * 13 + i + r * 7919) & (POOL - 1)] + shift);
        }
        double t0 = now_s();
        for (int i = 0; i < NFEAT; i++) {
            feat_ks_sketch_result_t ks;
            double t1 = now_s();
            if ((e = feat_ks_kll(f[i].live, f[i].ref, FEAT_KS_TWO_SIDED, method, 0.01, &ks)) != FEAT_OK)
                die("ks", e);
            t_ks += now_s() - t1;
            double cr[NBINS], cl[NBINS], psi, kl;
            feat_bins_count_kll(f[i].ref, f[i].edges, f[i].nedges, cr);
            feat_bins_count_kll(f[i].live, f[i].edges, f[i].nedges, cl);
            feat_psi(cr, cl, f[i].nedges + 1, FEAT_DRIFT_EPS, &psi);
            feat_kl_divergence(cl, cr, f[i].nedges + 1, FEAT_DRIFT_EPS, &kl);
            checksum += ks.statistic + ks.pvalue + psi + kl + ks.error_bound;
            feat_kll_reset(f[i].live);
        }
        t_total += now_s() - t0;
    }
    printf("%-5s k=%-4u ref n=%-8llu live n=%-8llu: %8.3f ms / %d features "
           "(%7.1f us/feature, of which KS %7.1f us)  [checksum %.3g]\n",
           method == FEAT_KS_LIMIT ? "LIMIT" : "AUTO", k, (unsigned long long)n_ref,
           (unsigned long long)n_live,
           1e3 * t_total / rounds, NFEAT, 1e6 * t_total / rounds / NFEAT,
           1e6 * t_ks / rounds / NFEAT, checksum);
    (void)t_setup;
    for (int i = 0; i < NFEAT; i++) {
        feat_kll_destroy(f[i].ref);
        feat_kll_destroy(f[i].live);
    }
    free(f);
}

static void bench_memory(uint64_t nmax) {
    printf("== memory per feature (reference + live sketch, k=200) ==\n");
    size_t h0 = heap_in_use();
    feat_kll_t *ref = feat_kll_new(200, 1, NULL), *live = feat_kll_new(200, 2, NULL);
    size_t h1 = heap_in_use();
    printf("footprint: %zu bytes per sketch, %zu per feature; heap after creating both: +%zu\n",
           feat_kll_footprint(ref), 2 * feat_kll_footprint(ref), h1 - h0);
    uint64_t n = 0, checkpoints[] = {10000ull, 1000000ull, 100000000ull};
    for (size_t c = 0; c < 3; c++) {
        if (checkpoints[c] > nmax) break;
        double t0 = now_s();
        for (; n < checkpoints[c]; n++) {
            double v = pool[n & (POOL - 1)] + 1e-9 * (double)(n >> 20);
            feat_kll_update(ref, v);
            feat_kll_update(live, -v);
        }
        double dt = now_s() - t0;
        printf("n=%-10llu heap +%zu bytes (unchanged: %s)  retained %u items, %u levels, "
               "bound(delta=0.01) %.4f  [%.1f s]\n",
               (unsigned long long)n, heap_in_use() - h0, heap_in_use() == h1 ? "yes" : "NO",
               feat_kll_retained(ref), feat_kll_num_levels(ref),
               feat_kll_rank_error(ref, 0.01), dt);
    }
    feat_catfreq_t *cf = feat_catfreq_new(64, 64, 32, NULL);
    printf("catfreq (64 counters + 64 pins, 32-byte labels): %zu bytes\n",
           feat_catfreq_footprint(cf));
    feat_catfreq_destroy(cf);
    feat_kll_destroy(ref);
    feat_kll_destroy(live);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    fill_pool(42);
    bench_update(quick ? 1000000ull : 50000000ull);
    printf("== window close, %d features, %d bins (KS + bin counts + PSI + KL + reset) ==\n",
           NFEAT, NBINS);
    int rounds = quick ? 1 : 5;
    /* LIMIT: O(1) p-value (recommended for sketches); AUTO: SciPy's rules */
    feat_ks_method_t methods[2] = {FEAT_KS_LIMIT, FEAT_KS_AUTO};
    for (int mi = 0; mi < 2; mi++) {
        feat_ks_method_t m = methods[mi];
        bench_window_close(quick ? 20000 : 1000000, 10000, 200, rounds, m);
        if (quick) continue;
        bench_window_close(1000000, 100000, 200, rounds, m);
        bench_window_close(1000000, 1000000, 200, 2, m);
        bench_window_close(5000, 5000, 200, rounds, m);    /* both <= 10000: AUTO is exact */
        bench_window_close(10000, 2000, 200, rounds, m);
        bench_window_close(1000000, 10000, 1000, rounds, m);
    }
    bench_memory(quick ? 1000000ull : 100000000ull);
    return 0;
}
