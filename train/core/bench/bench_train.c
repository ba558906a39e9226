/*
 * bench_train — training throughput and prediction latency of train/core.
 *
 *   bench_train [--rows N] [--features F] [--epochs E] [--batch B] [--hidden H]
 *               [--models logreg,linreg,mlp] [--no-gpu] [--predict-only]
 *
 * Training: dense float inputs (N × F, default 1M × 32), mini-batch Adam;
 * rows/s = N·E / wall time of the fit (weights in and out included), for the
 * CPU and, when feat_gpu_available() says so, the GPU ("GPU: none (why)"
 * otherwise), plus the CPU/GPU weight difference.  The GPU time excludes the
 * one-off upload of the matrix, which is printed separately.
 * Prediction: feat_model_predict_batch() of 1 and of 100 raw rows (F typed
 * values: 2 strings, 2 int64s, doubles with 5% missing) through the model
 * runtime, preprocessing included; median and p99 of single calls, with
 * caller scratch (no allocation on the path).  "hot": the same rows every
 * call (a request's freshly decoded rows are in cache); "cold": rows spread
 * over 10 MB.
 * Numbers go to stdout; nothing is asserted.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/core/gpu.h"
#include "train/core/internal.h"
#include "train/core/model.h"
#include "train/core/trainer.h"

static uint64_t rng_state = 12345;

static double unif(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

static double gauss(void) {
    double u = unif(), v = unif();
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_train: out of memory\n");
        exit(2);
    }
    return p;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- training throughput ---------------------------------------------- */

static void bench_fit(const char *name, feat_model_kind_t kind, const float *X, const double *y01,
                      const double *yr, size_t n, uint32_t d, uint32_t epochs, uint32_t batch,
                      uint32_t hidden, feat_gpu_ctx_t *g01, feat_gpu_ctx_t *gr) {
    feat_task_t task = kind == FEAT_MODEL_LINREG ? FEAT_TASK_REGRESSION : FEAT_TASK_BINARY;
    const feat_dense_t data = {X, task == FEAT_TASK_BINARY ? y01 : yr, n, d};
    feat_hyper_t hp;
    feat_hyper_init(&hp);
    hp.epochs = epochs;
    hp.batch_size = batch;
    hp.hidden = hidden;
    uint32_t h = kind == FEAT_MODEL_MLP ? hidden : 0;
    feat_params_t pc, pg;
    if (feat_params_init(&pc, kind, task, FEAT_ACT_RELU, d, h, 1) != FEAT_OK ||
        feat_params_init(&pg, kind, task, FEAT_ACT_RELU, d, h, 1) != FEAT_OK) {
        fprintf(stderr, "bench_train: bad model size\n");
        exit(2);
    }
    double t = feat_now();
    feat_err_t e = feat_cpu_fit(&pc, &data, &hp, NULL, NULL);
    double sec = feat_now() - t;
    if (e != FEAT_OK) {
        fprintf(stderr, "bench_train: CPU fit: %s\n", feat_err_str(e));
        exit(1);
    }
    char label[64];
    snprintf(label, sizeof(label), "%s%s", name, kind == FEAT_MODEL_MLP ? "" : "");
    if (kind == FEAT_MODEL_MLP)
        snprintf(label, sizeof(label), "%s(h=%u)", name, hidden);
    printf("train %-10s CPU: %7.3f s for %u epoch(s) = %8.3f s/epoch, %12.0f rows/s\n", label, sec,
           epochs, sec / epochs, (double)n * epochs / sec);
    feat_gpu_ctx_t *ctx = task == FEAT_TASK_BINARY ? g01 : gr;
    if (ctx) {
        char err[200] = "";
        /* one short warm-up fit (kernel load, allocator) before timing */
        feat_hyper_t warm = hp;
        warm.epochs = 1;
        feat_params_t pw;
        feat_params_init(&pw, kind, task, FEAT_ACT_RELU, d, h, 1);
        (void)feat_gpu_fit(ctx, &pw, &warm, NULL, NULL, err, sizeof(err));
        feat_params_free(&pw);
        t = feat_now();
        e = feat_gpu_fit(ctx, &pg, &hp, NULL, NULL, err, sizeof(err));
        sec = feat_now() - t;
        if (e != FEAT_OK) {
            printf("train %-10s GPU: failed: %s\n", label, err);
        } else {
            double dmax = 0;
            for (size_t i = 0; i < pc.n; i++) {
                double dl = fabs(pc.w[i] - pg.w[i]) / (1 + fabs(pc.w[i]));
                if (!(dl <= dmax))
                    dmax = dl;
            }
            printf("train %-10s GPU: %7.3f s for %u epoch(s) = %8.3f s/epoch, %12.0f rows/s"
                   "  (max CPU/GPU weight diff %.1e)\n",
                   label, sec, epochs, sec / epochs, (double)n * epochs / sec, dmax);
        }
    }
    feat_params_free(&pc);
    feat_params_free(&pg);
}

/* ---- prediction latency ----------------------------------------------- */

static void bench_predict(feat_model_kind_t kind, uint32_t nfeat, uint32_t hidden) {
    enum { NTRAIN = 20000, NPRED = 100 };
    static const char *cities[6] = {"Berlin", "Paris", "Tokyo", "Lima", "Oslo", "Accra"};
    const uint32_t nstr = 2, nint = 2;
    feat_feature_def_t *defs = (feat_feature_def_t *)xmalloc(nfeat * sizeof(*defs));
    char (*names)[16] = xmalloc(nfeat * sizeof(*names));
    for (uint32_t j = 0; j < nfeat; j++) {
        snprintf(names[j], sizeof(names[j]), "f%u", j);
        defs[j].name = names[j];
        defs[j].type = j < nstr ? FEAT_FT_STRING : j < nstr + nint ? FEAT_FT_INT64 : FEAT_FT_DOUBLE;
    }
    feat_raw_t *rows = (feat_raw_t *)xmalloc((size_t)NTRAIN * nfeat * sizeof(feat_raw_t));
    double *y = (double *)xmalloc(NTRAIN * sizeof(double));
    for (size_t i = 0; i < NTRAIN; i++) {
        double z = 0;
        for (uint32_t j = 0; j < nfeat; j++) {
            feat_raw_t *v = &rows[i * nfeat + j];
            if (j < nstr) {
                int c = (int)(unif() * 6);
                *v = feat_raw_string(cities[c], strlen(cities[c]));
                z += c == 1 ? 0.5 : -0.1;
            } else if (j < nstr + nint) {
                int64_t k = (int64_t)(unif() * 10);
                *v = feat_raw_int64(k);
                z += 0.05 * (double)k;
            } else {
                double x = gauss();
                *v = unif() < 0.05 ? feat_raw_missing() : feat_raw_double(x);
                z += (j % 2 ? 0.3 : -0.2) * x;
            }
        }
        y[i] = unif() < 1.0 / (1.0 + exp(-z)) ? 1.0 : 0.0;
    }
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.kind = kind;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.epochs = 2;
    c.hyper.hidden = hidden;
    feat_train_data_t data = {defs, nfeat, rows, y, NTRAIN};
    feat_model_t *m = NULL;
    char err[200];
    if (feat_train(&c, &data, &m, NULL, err, sizeof(err)) != FEAT_OK) {
        fprintf(stderr, "bench_train: %s\n", err);
        exit(1);
    }
    size_t ss = feat_model_scratch_size(m);
    void *scratch = xmalloc(ss);
    double out[NPRED], sink = 0;
    enum { REPS = 20000 };
    double *lat = (double *)xmalloc(REPS * sizeof(double));
    /* hot: the same rows every call, as a request's freshly decoded rows
     * are; cold: rows drawn from all over a 20k-row (10 MB) array */
    for (int cold = 0; cold < 2; cold++)
        for (int batch = 1; batch <= NPRED; batch += NPRED - 1) {
            for (int r = 0; r < 1000; r++) /* warm up */
                feat_model_predict_batch(m, rows, (size_t)batch, scratch, ss, out);
            for (int r = 0; r < REPS; r++) {
                const feat_raw_t *src =
                    cold ? rows + (size_t)((r * 7919) % (NTRAIN - NPRED)) * nfeat : rows;
                double t = feat_now();
                feat_model_predict_batch(m, src, (size_t)batch, scratch, ss, out);
                lat[r] = feat_now() - t;
                sink += out[0];
            }
            qsort(lat, REPS, sizeof(double), cmp_double);
            char label[64];
            if (kind == FEAT_MODEL_MLP)
                snprintf(label, sizeof(label), "mlp(h=%u)", hidden);
            else
                snprintf(label, sizeof(label), "%s", feat_model_kind_name(kind));
            printf("predict %-10s %3d row(s) %s, %u features -> %zu inputs: median %7.2f us, "
                   "p99 %7.2f us (%.0f ns/row)\n",
                   label, batch, cold ? "cold" : "hot ", nfeat, feat_model_info(m)->input_dim,
                   lat[REPS / 2] * 1e6, lat[REPS * 99 / 100] * 1e6, lat[REPS / 2] * 1e9 / batch);
        }
    if (sink == 12345.678)
        printf("(unlikely)\n");
    free(lat);
    free(scratch);
    feat_model_destroy(m);
    free(rows);
    free(y);
    free(defs);
    free(names);
}

int main(int argc, char **argv) {
    size_t n = 1000000;
    uint32_t d = 32, epochs = 3, batch = 256, hidden = 32;
    int use_gpu = 1, predict_only = 0;
    const char *models = "logreg,linreg,mlp";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--rows")) n = (size_t)strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--features")) d = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--epochs")) epochs = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--batch")) batch = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--hidden")) hidden = (uint32_t)strtoul(v, NULL, 10), i++;
        else if (!strcmp(a, "--models")) models = v, i++;
        else if (!strcmp(a, "--no-gpu")) use_gpu = 0;
        else if (!strcmp(a, "--predict-only")) predict_only = 1;
        else {
            fprintf(stderr, "usage: bench_train [--rows N] [--features F] [--epochs E] [--batch B]"
                            " [--hidden H] [--models logreg,linreg,mlp] [--no-gpu] [--predict-only]\n");
            return 2;
        }
    }
    if (n == 0 || n > FEAT_TRAIN_MAX_ROWS || d == 0 || epochs == 0 || batch == 0 || batch > FEAT_TRAIN_MAX_BATCH ||
        hidden == 0 || hidden > FEAT_TRAIN_MAX_HIDDEN) {
        fprintf(stderr, "bench_train: argument out of range\n");
        return 2;
    }
    char why[200];
    int gpu = use_gpu && feat_gpu_available(why, sizeof(why));
    printf("train/core benchmark: %zu rows x %u features, %u epoch(s), batch %u; float inputs, "
           "double arithmetic; CPU trainer single-threaded\n", n, d, epochs, batch);
    if (gpu)
        printf("GPU: %s\n", why);
    else
        printf("GPU: none (%s)\n", use_gpu ? why : "--no-gpu");

    if (!predict_only) {
        float *X = (float *)feat_alloc_big(n * d * sizeof(float)); /* as feat_train() does */
        if (!X) {
            fprintf(stderr, "bench_train: out of memory\n");
            return 2;
        }
        double *y01 = (double *)feat_alloc_big(n * sizeof(double));
        double *yr = (double *)feat_alloc_big(n * sizeof(double));
        if (!y01 || !yr) {
            fprintf(stderr, "bench_train: out of memory\n");
            return 2;
        }
        for (size_t i = 0; i < n; i++) {
            double z = 0;
            for (uint32_t j = 0; j < d; j++) {
                float x = (float)gauss();
                X[i * d + j] = x;
                z += (j % 3 ? 0.2 : -0.4) * x;
            }
            y01[i] = unif() < 1.0 / (1.0 + exp(-z)) ? 1.0 : 0.0;
            yr[i] = z + 0.5 * gauss();
        }
        feat_gpu_ctx_t *g01 = NULL, *gr = NULL;
        if (gpu) {
            char err[200] = "";
            const feat_dense_t d01 = {X, y01, n, d}, dr = {X, yr, n, d};
            double t = feat_now();
            feat_err_t e = feat_gpu_ctx_new(&d01, batch, hidden, &g01, err, sizeof(err));
            double up = feat_now() - t;
            if (e == FEAT_OK)
                e = feat_gpu_ctx_new(&dr, batch, hidden, &gr, err, sizeof(err));
            if (e != FEAT_OK)
                printf("GPU: context failed: %s\n", err);
            else
                printf("GPU: upload of %zu x %u floats + labels: %.3f s\n", n, d, up);
        }
        if (strstr(models, "logreg"))
            bench_fit("logreg", FEAT_MODEL_LOGREG, X, y01, yr, n, d, epochs, batch, hidden, g01, gr);
        if (strstr(models, "linreg"))
            bench_fit("linreg", FEAT_MODEL_LINREG, X, y01, yr, n, d, epochs, batch, hidden, g01, gr);
        if (strstr(models, "mlp"))
            bench_fit("mlp", FEAT_MODEL_MLP, X, y01, yr, n, d, epochs, batch, hidden, g01, gr);
        feat_gpu_ctx_destroy(g01);
        feat_gpu_ctx_destroy(gr);
        free(X);
        free(y01);
        free(yr);
    }
    bench_predict(FEAT_MODEL_LOGREG, d, hidden);
    bench_predict(FEAT_MODEL_MLP, d, hidden);
    return 0;
}
