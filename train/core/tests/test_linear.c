/*
 * test_linear.c — linear models against known optima.
 *  - logistic regression vs the optimum of the same penalised objective,
 *    found independently by Newton's method on the model's own design matrix;
 *  - logistic regression on one categorical feature, whose optimum (l2 = 0)
 *    predicts each category's empirical positive rate exactly;
 *  - linear regression recovers the coefficients that generated the data.
 */
#include "train/core/model.h"
#include "train/core/trainer.h"
#include "train/core/tests/tc.h"

/* Solves A x = b (n ≤ 8) by Gaussian elimination with partial pivoting. */
static void solve(int n, double A[8][8], double *b, double *x) {
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r][c]) > fabs(A[piv][c]))
                piv = r;
        for (int k = 0; k < n; k++) {
            double t = A[c][k];
            A[c][k] = A[piv][k];
            A[piv][k] = t;
        }
        double t = b[c];
        b[c] = b[piv];
        b[piv] = t;
        for (int r = c + 1; r < n; r++) {
            double f = A[r][c] / A[c][c];
            for (int k = c; k < n; k++)
                A[r][k] -= f * A[c][k];
            b[r] -= f * b[c];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double s = b[r];
        for (int k = r + 1; k < n; k++)
            s -= A[r][k] * x[k];
        x[r] = s / A[r][r];
    }
}

static void test_logreg_newton(void) {
    enum { N = 5000, F = 3 };
    feat_feature_def_t defs[F] = {{"a", FEAT_FT_DOUBLE}, {"b", FEAT_FT_DOUBLE}, {"k", FEAT_FT_INT64}};
    feat_raw_t *rows = (feat_raw_t *)tc_xmalloc(N * F * sizeof(feat_raw_t));
    double *y = (double *)tc_xmalloc(N * sizeof(double));
    uint64_t s = 42;
    for (int i = 0; i < N; i++) {
        double a = 1.0 + 2.0 * tc_gauss(&s), b = tc_gauss(&s);
        int64_t k = (int64_t)(tc_unif(&s) * 5);
        double z = 0.5 + 1.0 * a - 2.0 * b + 0.3 * (double)k;
        y[i] = tc_unif(&s) < 1.0 / (1.0 + exp(-z)) ? 1.0 : 0.0;
        rows[i * F] = feat_raw_double(a);
        rows[i * F + 1] = feat_raw_double(b);
        rows[i * F + 2] = feat_raw_int64(k);
    }
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.kind = FEAT_MODEL_LOGREG;
    c.valid_fraction = 0.0;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.batch_size = N; /* full batch: deterministic gradient, converges */
    c.hyper.epochs = 4000;
    c.hyper.learning_rate = 0.02;
    c.hyper.l2 = 1e-3;
    feat_train_data_t data = {defs, F, rows, y, N};
    feat_model_t *m = NULL;
    char err[200];
    CHECK_OK(feat_train(&c, &data, &m, NULL, err, sizeof(err)));
    if (!m) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    /* The design matrix the model sees (d = 3: no missing values). */
    const feat_prep_t *prep = feat_model_prep(m);
    CHECK(feat_prep_dim(prep) == 3);
    static double Xd[N][4];
    for (int i = 0; i < N; i++) {
        float x[3];
        feat_prep_apply(prep, rows + i * F, x);
        for (int j = 0; j < 3; j++)
            Xd[i][j] = x[j];
        Xd[i][3] = 1.0;
    }
    /* Newton on (1/N)Σ softplus(z) − y z + l2/2·|w[0..3)|² */
    double w[4] = {0, 0, 0, 0};
    for (int it = 0; it < 50; it++) {
        double A[8][8] = {{0}}, g[4] = {0};
        for (int i = 0; i < N; i++) {
            double z = 0;
            for (int j = 0; j < 4; j++)
                z += w[j] * Xd[i][j];
            double p = 1.0 / (1.0 + exp(-z)), sw = p * (1 - p);
            for (int j = 0; j < 4; j++) {
                g[j] += (p - y[i]) * Xd[i][j] / N;
                for (int k = 0; k < 4; k++)
                    A[j][k] += sw * Xd[i][j] * Xd[i][k] / N;
            }
        }
        for (int j = 0; j < 3; j++) {
            g[j] += c.hyper.l2 * w[j];
            A[j][j] += c.hyper.l2;
        }
        double step[4];
        solve(4, A, g, step);
        for (int j = 0; j < 4; j++)
            w[j] -= step[j];
    }
    size_t np = 0;
    const double *pw = feat_model_params(m, &np);
    CHECK(np == 4);
    double worst = 0;
    for (int j = 0; j < 4; j++) {
        CHECK_NEAR(pw[j], w[j], 2e-4);
        if (fabs(pw[j] - w[j]) > worst)
            worst = fabs(pw[j] - w[j]);
    }
    printf("  logreg vs Newton: weights %.5f %.5f %.5f bias %.5f; worst |diff| %.2e\n", w[0],
           w[1], w[2], w[3], worst);
    /* the generating logit, converted to standardised units, is close too */
    feat_prep_info_t in;
    CHECK_OK(feat_prep_info(prep, 0, &in));
    CHECK_NEAR(pw[0] / in.std, 1.0, 0.15);
    CHECK_OK(feat_prep_info(prep, 1, &in));
    CHECK_NEAR(pw[1] / in.std, -2.0, 0.2);
    feat_model_destroy(m);
    free(rows);
    free(y);
}

static void test_logreg_category_rates(void) {
    enum { PER = 1000, N = 3 * PER };
    const char *cats[3] = {"red", "green", "blue"};
    const double rate[3] = {0.2, 0.5, 0.8};
    feat_feature_def_t defs[1] = {{"colour", FEAT_FT_STRING}};
    feat_raw_t *rows = (feat_raw_t *)tc_xmalloc(N * sizeof(feat_raw_t));
    double *y = (double *)tc_xmalloc(N * sizeof(double));
    for (int i = 0; i < N; i++) {
        int c = i % 3, j = i / 3;
        rows[i] = feat_raw_string(cats[c], strlen(cats[c]));
        y[i] = j < (int)(rate[c] * PER) ? 1.0 : 0.0;
    }
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.valid_fraction = 0.0;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.batch_size = N;
    c.hyper.epochs = 3000;
    c.hyper.learning_rate = 0.02;
    c.hyper.l2 = 0.0;
    c.prep.top_k = 3;
    c.prep.hash_buckets = 0;
    feat_train_data_t data = {defs, 1, rows, y, N};
    feat_model_t *m = NULL;
    CHECK_OK(feat_train(&c, &data, &m, NULL, NULL, 0));
    if (!m)
        return;
    for (int k = 0; k < 3; k++) {
        double p;
        CHECK_OK(feat_model_predict(m, &rows[k], NULL, 0, &p));
        CHECK_NEAR(p, rate[k], 1e-3);
    }
    /* an unseen colour has no column: it gets the bias alone */
    feat_raw_t other = feat_raw_string("mauve", 5);
    double p;
    CHECK_OK(feat_model_predict(m, &other, NULL, 0, &p));
    CHECK(p > 0.0 && p < 1.0);
    feat_model_destroy(m);
    free(rows);
    free(y);
}

static void test_linreg_coefficients(void) {
    enum { N = 20000, F = 3 };
    feat_feature_def_t defs[F] = {{"x1", FEAT_FT_DOUBLE}, {"x2", FEAT_FT_DOUBLE}, {"x3", FEAT_FT_INT64}};
    feat_raw_t *rows = (feat_raw_t *)tc_xmalloc(N * F * sizeof(feat_raw_t));
    double *y = (double *)tc_xmalloc(N * sizeof(double));
    uint64_t s = 9;
    const double beta[4] = {2.0, 3.0, -1.5, 0.5}; /* intercept, x1, x2, x3 */
    for (int i = 0; i < N; i++) {
        double x1 = 5.0 + 2.0 * tc_gauss(&s), x2 = 10.0 * tc_unif(&s);
        int64_t x3 = (int64_t)(tc_unif(&s) * 10);
        y[i] = beta[0] + beta[1] * x1 + beta[2] * x2 + beta[3] * (double)x3 + 0.1 * tc_gauss(&s);
        rows[i * F] = feat_raw_double(x1);
        rows[i * F + 1] = feat_raw_double(x2);
        rows[i * F + 2] = feat_raw_int64(x3);
    }
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.kind = FEAT_MODEL_LINREG;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.l2 = 0.0;
    c.hyper.epochs = 30;
    c.hyper.batch_size = 512;
    c.hyper.learning_rate = 0.003;
    feat_train_data_t data = {defs, F, rows, y, N};
    feat_model_t *m = NULL;
    feat_train_report_t rep;
    memset(&rep, 0, sizeof(rep));
    CHECK_OK(feat_train(&c, &data, &m, &rep, NULL, 0));
    if (!m)
        return;
    const feat_model_info_t *info = feat_model_info(m);
    CHECK(info->task == FEAT_TASK_REGRESSION && info->kind == FEAT_MODEL_LINREG);
    CHECK(rep.n_train == 15000 && rep.n_valid == 5000);
    /* raw-unit coefficient j = w_j · y_std / std_j */
    size_t np;
    const double *w = feat_model_params(m, &np);
    CHECK(np == 4);
    double intercept = info->y_mean + info->y_std * w[3];
    for (int j = 0; j < 3; j++) {
        feat_prep_info_t in;
        CHECK_OK(feat_prep_info(feat_model_prep(m), (size_t)j, &in));
        double coef = w[j] * info->y_std / in.std;
        intercept -= coef * in.mean;
        printf("  linreg coefficient %d: %.4f (true %.2f)\n", j + 1, coef, beta[j + 1]);
        CHECK_NEAR(coef, beta[j + 1], 0.01);
    }
    printf("  linreg intercept: %.4f (true %.2f); valid RMSE %.4f (noise 0.1)\n", intercept,
           beta[0], info->valid.rmse);
    CHECK_NEAR(intercept, beta[0], 0.05);
    CHECK(info->valid.rmse < 0.12 && info->valid.rmse > 0.08);
    CHECK(isnan(info->valid.auc));
    /* a probe row predicts the generating function */
    feat_raw_t probe[F] = {feat_raw_double(4.0), feat_raw_double(2.5), feat_raw_int64(7)};
    double p;
    CHECK_OK(feat_model_predict(m, probe, NULL, 0, &p));
    CHECK_NEAR(p, 2.0 + 12.0 - 3.75 + 3.5, 0.05);
    feat_model_destroy(m);
    free(rows);
    free(y);
}

int main(void) {
    TC_RUN(test_logreg_newton);
    TC_RUN(test_logreg_category_rates);
    TC_RUN(test_linreg_coefficients);
    return tc_result();
}
