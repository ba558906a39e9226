/*
 * tests/bench/bench_trees.c — scoring a tree ensemble: featd's runtime
 * (train/core/trees.c, through train/xgb_json.c) against libxgboost's own
 * in-place prediction (XGBoosterPredictFromDense), on the same model file and
 * rows, in one run.  run_trees_bench.py trains the model and writes the rows.
 *
 *   bench_trees MODEL.json ROWS.f64 NFEATURES [ROUNDS]
 *
 * ROWS.f64: rows of NFEATURES doubles (NaN = missing), row-major.  For 1-row
 * and 100-row calls it times each call (clock_gettime around it) over the
 * rows, ROUNDS times, and prints p50 / p99 per call for both and the ratio,
 * after checking that both give the same scores (|d| <= 1e-6) on every row.
 */
#include "train/xgb_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xgboost/c_api.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double q) {
    qsort(v, n, sizeof(*v), cmp);
    return v[(size_t)(q * (double)(n - 1))];
}

#define XGB(call)                                                              \
    do {                                                                       \
        if ((call) != 0) {                                                     \
            fprintf(stderr, "bench_trees: %s: %s\n", #call, XGBGetLastError()); \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* libxgboost's in-place prediction of rows x[0..n) into out (float). */
static const float *xgb_predict(BoosterHandle b, const double *x, size_t n, int nf, char *iface, size_t cap) {
    snprintf(iface, cap, "{\"data\":[%llu,true],\"shape\":[%zu,%d],\"typestr\":\"<f8\",\"version\":3}",
             (unsigned long long)(uintptr_t)x, n, nf);
    const bst_ulong *shape;
    bst_ulong dim;
    const float *res;
    XGB(XGBoosterPredictFromDense(b, iface, "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"cache_id\":0,"
                                  "\"iteration_end\":0,\"strict_shape\":false,\"missing\":NaN}",
                                  NULL, &shape, &dim, &res));
    return res;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_trees MODEL.json ROWS.f64 NFEATURES [ROUNDS]\n");
        return 2;
    }
    int nf = atoi(argv[3]), rounds = argc > 4 ? atoi(argv[4]) : 3;
    size_t mlen, rlen;
    char *model = slurp(argv[1], &mlen), *rows = slurp(argv[2], &rlen);
    if (!model || !rows || nf <= 0) {
        fprintf(stderr, "bench_trees: cannot read the model or the rows\n");
        return 2;
    }
    const double *x = (const double *)rows;
    size_t n = rlen / sizeof(double) / (size_t)nf;
    feat_xgb_model_t m;
    char err[256];
    if (feat_xgb_json_load(model, mlen, &m, err, sizeof(err))) {
        fprintf(stderr, "bench_trees: %s\n", err);
        return 2;
    }
    BoosterHandle b;
    XGB(XGBoosterCreate(NULL, 0, &b));
    XGB(XGBoosterLoadModelFromBuffer(b, model, mlen));
    XGB(XGBoosterSetParam(b, "nthread", "1"));
    char iface[256];
    /* agreement first */
    const float *want = xgb_predict(b, x, n, nf, iface, sizeof(iface));
    double maxd = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(feat_trees_predict(m.trees, x + i * (size_t)nf) - (double)want[i]);
        if (d > maxd) maxd = d;
    }
    printf("model: %zu trees, %zu nodes, %d features; %zu rows; max |featd - xgboost| = %.3g\n",
           feat_trees_ntrees(m.trees), feat_trees_nnodes(m.trees), nf, n, maxd);
    if (maxd > 1e-6) return 1;
    size_t batches[2] = {1, 100};
    double *t_f = malloc(n * sizeof(double)), *t_x = malloc(n * sizeof(double)), *out = malloc(100 * sizeof(double));
    volatile double sink = 0;
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 2; k++) {
            size_t bs = batches[k], calls = n / bs;
            if (!calls) continue;
            for (size_t c = 0; c < calls; c++) {
                const double *xc = x + c * bs * (size_t)nf;
                double t0 = now_ns();
                feat_trees_predict_batch(m.trees, xc, bs, out);
                double t1 = now_ns();
                const float *p = xgb_predict(b, xc, bs, nf, iface, sizeof(iface));
                double t2 = now_ns();
                sink += out[0] + p[0];
                t_f[c] = t1 - t0;
                t_x[c] = t2 - t1;
            }
            double f50 = pct(t_f, calls, 0.5), f99 = pct(t_f, calls, 0.99);
            double x50 = pct(t_x, calls, 0.5), x99 = pct(t_x, calls, 0.99);
            printf("round %d, %3zu row(s) per call, %zu calls: featd p50 %.2f us p99 %.2f us | xgboost p50 %.2f us "
                   "p99 %.2f us | xgboost/featd p50 %.2f\n", r + 1, bs, calls, f50 / 1e3, f99 / 1e3, x50 / 1e3,
                   x99 / 1e3, x50 / f50);
        }
    }
    (void)sink;
    free(t_f);
    free(t_x);
    free(out);
    XGBoosterFree(b);
    feat_xgb_model_free(&m);
    free(model);
    free(rows);
    return 0;
}
