/*
 * test_grid.c — grid search: enumeration order, selection of the best
 * validation metric (AUC up, RMSE down), and that the chosen model is the
 * one the same configuration trains alone (weights bit-identical).
 */
#include "train/core/model.h"
#include "train/core/trainer.h"
#include "train/core/tests/tc.h"

enum { N = 6000, F = 4 };

static feat_feature_def_t defs[F] = {
    {"a", FEAT_FT_DOUBLE}, {"b", FEAT_FT_DOUBLE}, {"c", FEAT_FT_DOUBLE}, {"d", FEAT_FT_DOUBLE}};
static feat_raw_t rows[N * F];
static double ybin[N], yreg[N], yxor[N];

static void make_data(void) {
    uint64_t s = 5;
    for (int i = 0; i < N; i++) {
        double x[F];
        for (int j = 0; j < F; j++) {
            x[j] = tc_gauss(&s);
            rows[i * F + j] = feat_raw_double(x[j]);
        }
        double z = 1.5 * x[0] - x[1] + 0.5 * x[2];
        ybin[i] = tc_unif(&s) < 1.0 / (1.0 + exp(-z)) ? 1.0 : 0.0;
        yreg[i] = 4.0 * z + 2.0 * tc_gauss(&s);
        yxor[i] = x[0] * x[1] > 0 ? 1.0 : 0.0;
    }
}

static feat_model_t *run(const feat_train_conf_t *c, const double *y, feat_train_report_t *rep) {
    feat_train_data_t data = {defs, F, rows, y, N};
    feat_model_t *m = NULL;
    char err[200] = "";
    CHECK_OK(feat_train(c, &data, &m, rep, err, sizeof(err)));
    if (!m)
        fprintf(stderr, "train: %s\n", err);
    return m;
}

static void test_classification_grid(void) {
    const double lrs[2] = {1e-5, 0.05};
    const uint32_t epochs[2] = {1, 4};
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.backend = FEAT_BACKEND_CPU;
    c.grid.learning_rate = lrs;
    c.grid.n_learning_rate = 2;
    c.grid.epochs = epochs;
    c.grid.n_epochs = 2;
    feat_grid_result_t res[4];
    feat_train_report_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.results = res;
    rep.results_cap = 4;
    feat_model_t *m = run(&c, ybin, &rep);
    if (!m)
        return;
    CHECK(rep.n_configs == 4);
    /* learning_rate outermost, epochs innermost */
    CHECK(res[0].hyper.learning_rate == 1e-5 && res[0].hyper.epochs == 1);
    CHECK(res[1].hyper.learning_rate == 1e-5 && res[1].hyper.epochs == 4);
    CHECK(res[2].hyper.learning_rate == 0.05 && res[2].hyper.epochs == 1);
    CHECK(res[3].hyper.learning_rate == 0.05 && res[3].hyper.epochs == 4);
    size_t arg = 0;
    for (size_t i = 0; i < 4; i++) {
        printf("  config %zu: lr %g epochs %u → valid AUC %.5f\n", i, res[i].hyper.learning_rate,
               res[i].hyper.epochs, res[i].valid.auc);
        CHECK(!res[i].diverged && !isnan(res[i].valid.auc));
        if (res[i].valid.auc > res[arg].valid.auc)
            arg = i;
    }
    CHECK(rep.best == arg);
    CHECK(res[arg].hyper.learning_rate == 0.05);
    CHECK(res[0].valid.auc < res[arg].valid.auc);
    const feat_model_info_t *info = feat_model_info(m);
    CHECK(info->hyper.learning_rate == res[arg].hyper.learning_rate);
    CHECK(info->hyper.epochs == res[arg].hyper.epochs);
    CHECK(info->valid.auc == res[arg].valid.auc && rep.valid.auc == info->valid.auc);

    /* the same configuration alone gives the same weights */
    feat_train_conf_t one;
    feat_train_conf_init(&one);
    one.backend = FEAT_BACKEND_CPU;
    one.hyper = res[arg].hyper;
    feat_model_t *m1 = run(&one, ybin, NULL);
    if (m1) {
        size_t n0, n1;
        const double *w0 = feat_model_params(m, &n0), *w1 = feat_model_params(m1, &n1);
        CHECK(n0 == n1 && memcmp(w0, w1, n0 * sizeof(double)) == 0);
        CHECK(feat_model_info(m1)->valid.auc == info->valid.auc);
    }
    feat_model_destroy(m1);
    feat_model_destroy(m);
}

static void test_regression_grid(void) {
    const double l2s[3] = {300.0, 0.0, 10.0};
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.kind = FEAT_MODEL_LINREG;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.epochs = 5;
    c.grid.l2 = l2s;
    c.grid.n_l2 = 3;
    feat_grid_result_t res[2]; /* fewer slots than configurations: only two are written */
    memset(res, 0, sizeof(res));
    feat_train_report_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.results = res;
    rep.results_cap = 2;
    feat_model_t *m = run(&c, yreg, &rep);
    if (!m)
        return;
    CHECK(rep.n_configs == 3 && rep.best == 1);
    CHECK(feat_model_info(m)->hyper.l2 == 0.0);
    CHECK(res[0].valid.rmse > res[1].valid.rmse);
    printf("  l2 300 → RMSE %.4f, l2 0 → RMSE %.4f (chosen %.4f)\n", res[0].valid.rmse,
           res[1].valid.rmse, feat_model_info(m)->valid.rmse);
    CHECK(feat_model_info(m)->valid.rmse == res[1].valid.rmse);
    feat_model_destroy(m);
}

static void test_hidden_grid(void) {
    const uint32_t hidden[2] = {1, 16};
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.kind = FEAT_MODEL_MLP;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.epochs = 20;
    c.grid.hidden = hidden;
    c.grid.n_hidden = 2;
    feat_train_report_t rep;
    memset(&rep, 0, sizeof(rep));
    feat_model_t *m = run(&c, yxor, &rep);
    if (!m)
        return;
    CHECK(rep.best == 1 && feat_model_info(m)->hyper.hidden == 16);
    CHECK(feat_model_info(m)->valid.auc > 0.95);
    feat_model_destroy(m);
}

static void test_grid_errors(void) {
    const double lrs[2] = {0.01, 0.02};
    const double bad[1] = {-1.0};
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.backend = FEAT_BACKEND_CPU;
    c.grid.learning_rate = lrs;
    c.grid.n_learning_rate = 2;
    c.valid_fraction = 0.0; /* nothing to choose by */
    feat_train_data_t data = {defs, F, rows, ybin, N};
    feat_model_t *m = NULL;
    char err[200];
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    CHECK(m == NULL && strstr(err, "validation") != NULL);
    c.valid_fraction = 0.25;
    c.grid.learning_rate = bad;
    c.grid.n_learning_rate = 1;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    CHECK(strstr(err, "learning_rate") != NULL);
    c.grid.learning_rate = NULL;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    /* a wild learning rate (Adam without momentum: ±10 per step) loses to a sane one */
    const double huge[2] = {10.0, 0.01};
    feat_train_conf_t d;
    feat_train_conf_init(&d);
    d.kind = FEAT_MODEL_LINREG;
    d.backend = FEAT_BACKEND_CPU;
    d.hyper.epochs = 3;
    d.hyper.beta1 = 0.0;
    d.hyper.beta2 = 0.0;
    d.hyper.epsilon = 1e-300;
    d.grid.learning_rate = huge;
    d.grid.n_learning_rate = 2;
    feat_grid_result_t res[2];
    feat_train_report_t rep;
    memset(&rep, 0, sizeof(rep));
    rep.results = res;
    rep.results_cap = 2;
    feat_model_t *mm = run(&d, yreg, &rep);
    if (mm) {
        CHECK(feat_model_info(mm)->hyper.learning_rate == 0.01);
        CHECK(rep.best == 1 && (res[0].diverged || res[0].valid.rmse > res[1].valid.rmse));
    }
    feat_model_destroy(mm);
}

int main(void) {
    make_data();
    TC_RUN(test_classification_grid);
    TC_RUN(test_regression_grid);
    TC_RUN(test_hidden_grid);
    TC_RUN(test_grid_errors);
    return tc_result();
}
