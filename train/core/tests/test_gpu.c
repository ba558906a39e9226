/*
 * test_gpu.c — CPU/GPU agreement (label gpu).  Exits 77 (ctest: Skipped)
 * with the reason when no usable GPU is present.
 *
 * The two backends run the same algorithm in the same order with the same
 * double arithmetic (kern.h); only exp()/tanh() may round differently.  The
 * documented tolerance (trainer.h): weights within 1e-6·(1 + |w|) for the
 * linear models, predictions within 1e-5 for the MLP.  The test prints the
 * differences it saw, which are normally far smaller.
 */
#include "train/core/gpu.h"
#include "train/core/internal.h"
#include "train/core/model.h"
#include "train/core/trainer.h"
#include "train/core/tests/tc.h"

enum { N = 3001, D = 13 };

static float X[N * D];
static double Y01[N], YR[N];

static void make_data(void) {
    uint64_t s = 123;
    for (int i = 0; i < N; i++) {
        double z = 0, q = 0;
        for (int j = 0; j < D; j++) {
            float x = (float)tc_gauss(&s);
            X[i * D + j] = x;
            z += (j % 3 == 0 ? 0.8 : -0.3) * x;
            q += (j % 2 ? 1.0 : -1.0) * x * x * 0.1;
        }
        Y01[i] = tc_unif(&s) < 1.0 / (1.0 + exp(-(z + q))) ? 1.0 : 0.0;
        YR[i] = 0.5 * z + q + 0.3 * tc_gauss(&s);
    }
}

typedef struct gcase {
    const char *name;
    feat_model_kind_t kind;
    feat_task_t task;
    uint32_t act, hidden, batch, epochs, shuffle;
} gcase_t;

static void agree(const gcase_t *g, feat_gpu_ctx_t *ctx) {
    feat_hyper_t hp;
    feat_hyper_init(&hp);
    hp.hidden = g->hidden;
    hp.batch_size = g->batch;
    hp.epochs = g->epochs;
    hp.shuffle = g->shuffle;
    hp.activation = g->act;
    hp.l2 = 1e-3;
    hp.seed = 17;
    feat_params_t pc, pg;
    uint32_t h = g->kind == FEAT_MODEL_MLP ? g->hidden : 0;
    CHECK_OK(feat_params_init(&pc, g->kind, g->task, g->act, D, h, hp.seed));
    CHECK_OK(feat_params_init(&pg, g->kind, g->task, g->act, D, h, hp.seed));
    const feat_dense_t data = {X, g->task == FEAT_TASK_BINARY ? Y01 : YR, N, D};
    CHECK_OK(feat_cpu_fit(&pc, &data, &hp, NULL, NULL));
    char err[200] = "";
    feat_err_t e = feat_gpu_fit(ctx, &pg, &hp, NULL, NULL, err, sizeof(err));
    CHECK_OK(e);
    if (e != FEAT_OK) {
        fprintf(stderr, "%s: GPU: %s\n", g->name, err);
        goto out;
    }
    double wmax = 0, pmax = 0, moved = 0;
    for (size_t i = 0; i < pc.n; i++) {
        double dlt = fabs(pc.w[i] - pg.w[i]) / (1.0 + fabs(pc.w[i]));
        if (!(dlt <= wmax))
            wmax = dlt; /* NaN sticks */
        moved += fabs(pc.w[i]);
    }
    static double yc[N], yg[N];
    double hbuf[64 + 2 * D];
    feat_fwd_t fc, fg;
    CHECK_OK(feat_fwd_init(&fc, &pc, 0.0, 1.0));
    CHECK_OK(feat_fwd_init(&fg, &pg, 0.0, 1.0));
    feat_fwd_dense(&fc, X, N, hbuf, yc);
    feat_fwd_dense(&fg, X, N, hbuf, yg);
    feat_fwd_free(&fc);
    feat_fwd_free(&fg);
    for (int i = 0; i < N; i++) {
        double dlt = fabs(yc[i] - yg[i]);
        if (!(dlt <= pmax))
            pmax = dlt;
    }
    printf("  %-24s max weight diff %.2e (relative), max prediction diff %.2e\n", g->name, wmax,
           pmax);
    CHECK(moved > 0.1); /* training did something */
    if (g->kind == FEAT_MODEL_MLP)
        CHECK(pmax <= 1e-5);
    else
        CHECK(wmax <= 1e-6);
out:
    feat_params_free(&pc);
    feat_params_free(&pg);
}

static void test_dense_agreement(void) {
    static const gcase_t cases[] = {
        {"logreg", FEAT_MODEL_LOGREG, FEAT_TASK_BINARY, 0, 1, 64, 3, 1},
        {"logreg big batch", FEAT_MODEL_LOGREG, FEAT_TASK_BINARY, 0, 1, 1000, 5, 1},
        {"linreg no shuffle", FEAT_MODEL_LINREG, FEAT_TASK_REGRESSION, 0, 1, 100, 3, 0},
        {"mlp relu binary", FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_RELU, 16, 64, 3, 1},
        {"mlp tanh binary", FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_TANH, 16, 256, 3, 1},
        {"mlp relu regression h40", FEAT_MODEL_MLP, FEAT_TASK_REGRESSION, FEAT_ACT_RELU, 40, 700, 2, 1},
        {"mlp tanh regression", FEAT_MODEL_MLP, FEAT_TASK_REGRESSION, FEAT_ACT_TANH, 7, 33, 2, 1},
    };
    const feat_dense_t d01 = {X, Y01, N, D}, dr = {X, YR, N, D};
    feat_gpu_ctx_t *c01 = NULL, *cr = NULL;
    char err[200] = "";
    CHECK_OK(feat_gpu_ctx_new(&d01, 1000, 64, &c01, err, sizeof(err)));
    CHECK_OK(feat_gpu_ctx_new(&dr, 1000, 64, &cr, err, sizeof(err)));
    if (!c01 || !cr) {
        fprintf(stderr, "GPU context: %s\n", err);
        feat_gpu_ctx_destroy(c01);
        feat_gpu_ctx_destroy(cr);
        return;
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        agree(&cases[i], cases[i].task == FEAT_TASK_BINARY ? c01 : cr);
    /* the context refuses what it was not sized for */
    feat_hyper_t hp;
    feat_hyper_init(&hp);
    hp.batch_size = 2000;
    feat_params_t p;
    CHECK_OK(feat_params_init(&p, FEAT_MODEL_LOGREG, FEAT_TASK_BINARY, 0, D, 0, 1));
    CHECK_ERR(feat_gpu_fit(c01, &p, &hp, NULL, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    feat_params_free(&p);
    feat_gpu_ctx_destroy(c01);
    feat_gpu_ctx_destroy(cr);
}

/* Through the public API: raw rows with a categorical feature, a grid, and
 * the GPU backend, against the CPU. */
static void test_train_agreement(void) {
    enum { R = 4000, F = 3 };
    static feat_raw_t rows[R * F];
    static double y[R];
    static const char *cats[3] = {"x", "y", "z"};
    uint64_t s = 8;
    for (int i = 0; i < R; i++) {
        double a = tc_gauss(&s), b = tc_gauss(&s);
        int c = (int)(tc_unif(&s) * 3);
        rows[i * F] = i % 10 == 0 ? feat_raw_missing() : feat_raw_double(a);
        rows[i * F + 1] = feat_raw_double(b);
        rows[i * F + 2] = feat_raw_string(cats[c], 1);
        y[i] = tc_unif(&s) < 1.0 / (1.0 + exp(-(a * b + (c == 1)))) ? 1.0 : 0.0;
    }
    feat_feature_def_t defs[F] = {{"a", FEAT_FT_DOUBLE}, {"b", FEAT_FT_DOUBLE}, {"c", FEAT_FT_STRING}};
    const double lrs[2] = {0.003, 0.02};
    feat_train_conf_t conf;
    feat_train_conf_init(&conf);
    conf.kind = FEAT_MODEL_MLP;
    conf.hyper.hidden = 12;
    conf.hyper.epochs = 4;
    conf.grid.learning_rate = lrs;
    conf.grid.n_learning_rate = 2;
    feat_train_data_t data = {defs, F, rows, y, R};
    feat_model_t *mc = NULL, *mg = NULL;
    feat_train_report_t rc, rg;
    memset(&rc, 0, sizeof(rc));
    memset(&rg, 0, sizeof(rg));
    char err[200] = "";
    conf.backend = FEAT_BACKEND_CPU;
    CHECK_OK(feat_train(&conf, &data, &mc, &rc, err, sizeof(err)));
    conf.backend = FEAT_BACKEND_GPU;
    CHECK_OK(feat_train(&conf, &data, &mg, &rg, err, sizeof(err)));
    if (!mc || !mg) {
        fprintf(stderr, "train: %s\n", err);
        goto out;
    }
    CHECK(rc.backend == FEAT_BACKEND_CPU && rg.backend == FEAT_BACKEND_GPU);
    CHECK(feat_model_info(mg)->backend == FEAT_BACKEND_GPU);
    CHECK(rc.best == rg.best);
    printf("  feat_train: valid AUC cpu %.9f gpu %.9f; rows/s cpu %.3g gpu %.3g\n",
           rc.valid.auc, rg.valid.auc, rc.rows_per_second, rg.rows_per_second);
    /* a pair of near-tied scores swapping order moves the AUC by 1/(P·N) ≈ 4e-6 */
    CHECK_NEAR(rc.valid.auc, rg.valid.auc, 1e-4);
    CHECK_NEAR(rc.valid.logloss, rg.valid.logloss, 1e-6);
    static double pc[R], pg[R];
    CHECK_OK(feat_model_predict_batch(mc, rows, R, NULL, 0, pc));
    CHECK_OK(feat_model_predict_batch(mg, rows, R, NULL, 0, pg));
    double pmax = 0;
    for (int i = 0; i < R; i++)
        if (!(fabs(pc[i] - pg[i]) <= pmax))
            pmax = fabs(pc[i] - pg[i]);
    CHECK(pmax <= 1e-5);
    /* the GPU is deterministic */
    feat_model_t *mg2 = NULL;
    CHECK_OK(feat_train(&conf, &data, &mg2, NULL, err, sizeof(err)));
    if (mg2) {
        size_t n = 0; /* set by the first call, before memcmp reads it (argument order is unspecified) */
        const double *p1 = feat_model_params(mg, &n);
        CHECK(memcmp(p1, feat_model_params(mg2, NULL), n * sizeof(double)) == 0);
    }
    feat_model_destroy(mg2);
out:
    feat_model_destroy(mc);
    feat_model_destroy(mg);
}

int main(void) {
    char why[200];
    if (!feat_gpu_available(why, sizeof(why))) {
        printf("SKIP: no usable GPU: %s\n", why);
        return 77;
    }
    printf("GPU: %s\n", why);
    make_data();
    TC_RUN(test_dense_agreement);
    TC_RUN(test_train_agreement);
    return tc_result();
}
