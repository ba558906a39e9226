/*
 * test_grad.c — analytic gradients against central finite differences for
 * every model (logistic, linear, MLP with ReLU and tanh, binary and
 * regression), including the L2 term and the biases; and the first Adam
 * step of the trainer against the closed form lr·g/(|g| + ε).
 */
#include "train/core/internal.h"
#include "train/core/tests/tc.h"

enum { N = 23, D = 6, H = 5 };

static float X[N * D];
static double Y01[N], YR[N];
static uint32_t IDX[N];

static void make_data(void) {
    uint64_t s = 11;
    for (int i = 0; i < N * D; i++)
        X[i] = (float)tc_gauss(&s);
    for (int i = 0; i < N; i++) {
        Y01[i] = tc_unif(&s) < 0.5 ? 0.0 : 1.0;
        YR[i] = tc_gauss(&s) * 1.5 + 0.3;
        IDX[i] = (uint32_t)i;
    }
    /* visit rows in a scrambled order, and only 17 of them */
    uint64_t t = 5;
    feat_shuffle(IDX, N, &t);
}

static void check_model(const char *what, feat_model_kind_t kind, feat_task_t task, uint32_t act) {
    feat_params_t p;
    CHECK_OK(feat_params_init(&p, kind, task, act, D, H, 99));
    if (!p.w)
        return;
    uint64_t s = 3;
    /* linear weights start at 0: move everything somewhere generic */
    for (size_t i = 0; i < p.n; i++)
        p.w[i] += 0.4 * tc_gauss(&s);
    const feat_dense_t data = {X, task == FEAT_TASK_BINARY ? Y01 : YR, N, D};
    const size_t nb = 17;
    const double l2 = 0.3;
    double *g = (double *)tc_xmalloc(p.n * sizeof(double));
    double *g2 = (double *)tc_xmalloc(p.n * sizeof(double));
    double *work = (double *)tc_xmalloc(feat_cpu_work_size(&p) * sizeof(double));
    feat_cpu_loss_grad(&p, &data, IDX, nb, l2, g, work);
    double worst = 0.0;
    for (size_t i = 0; i < p.n; i++) {
        const double w0 = p.w[i], h = 1e-5 * (1.0 + fabs(w0));
        p.w[i] = w0 + h;
        double lp = feat_cpu_loss_grad(&p, &data, IDX, nb, l2, g2, work);
        p.w[i] = w0 - h;
        double lm = feat_cpu_loss_grad(&p, &data, IDX, nb, l2, g2, work);
        p.w[i] = w0;
        double fd = (lp - lm) / (2.0 * h);
        double err = fabs(fd - g[i]) / (1.0 + fabs(g[i]));
        if (err > worst)
            worst = err;
        if (err > 1e-6) {
            fprintf(stderr, "%s: weight %zu: analytic %.12g, finite difference %.12g\n", what, i,
                    g[i], fd);
            CHECK(err <= 1e-6);
        }
    }
    printf("  %-22s %4zu weights, worst relative gradient error %.2e\n", what, p.n, worst);
    /* the gradient is not trivially zero */
    double norm = 0;
    for (size_t i = 0; i < p.n; i++)
        norm += g[i] * g[i];
    CHECK(norm > 1e-6);
    free(g);
    free(g2);
    free(work);
    feat_params_free(&p);
}

static void test_gradients(void) {
    check_model("logreg", FEAT_MODEL_LOGREG, FEAT_TASK_BINARY, 0);
    check_model("linreg", FEAT_MODEL_LINREG, FEAT_TASK_REGRESSION, 0);
    check_model("mlp relu binary", FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_RELU);
    check_model("mlp tanh binary", FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_TANH);
    check_model("mlp relu regression", FEAT_MODEL_MLP, FEAT_TASK_REGRESSION, FEAT_ACT_RELU);
    check_model("mlp tanh regression", FEAT_MODEL_MLP, FEAT_TASK_REGRESSION, FEAT_ACT_TANH);
}

/* The loss itself, by hand, for one linear case: checks the objective that
 * the gradient is checked against. */
static void test_loss_by_hand(void) {
    feat_params_t p;
    CHECK_OK(feat_params_init(&p, FEAT_MODEL_LOGREG, FEAT_TASK_BINARY, 0, D, 0, 1));
    for (size_t i = 0; i < p.n; i++)
        p.w[i] = 0.1 * (double)i - 0.2;
    const feat_dense_t data = {X, Y01, N, D};
    double g[D + 1], work[1];
    double l = feat_cpu_loss_grad(&p, &data, IDX, N, 0.5, g, work);
    double want = 0, reg = 0;
    for (int r = 0; r < N; r++) {
        double z = p.w[D];
        for (int j = 0; j < D; j++)
            z += p.w[j] * X[IDX[r] * D + j];
        double pr = 1.0 / (1.0 + exp(-z));
        want -= Y01[IDX[r]] ? log(pr) : log(1 - pr);
    }
    for (int j = 0; j < D; j++)
        reg += p.w[j] * p.w[j];
    want = want / N + 0.25 * reg;
    CHECK_NEAR(l, want, 1e-12);
    feat_params_free(&p);
}

/* One epoch with one full batch = one Adam step from zero moments:
 * w ← w − lr·g/(|g| + ε) (bias corrections cancel at t = 1). */
static void test_first_adam_step(void) {
    feat_params_t p, q;
    CHECK_OK(feat_params_init(&p, FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_TANH, D, H, 4));
    CHECK_OK(feat_params_init(&q, FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_TANH, D, H, 4));
    const feat_dense_t data = {X, Y01, N, D};
    feat_hyper_t hp;
    feat_hyper_init(&hp);
    hp.batch_size = N;
    hp.epochs = 1;
    hp.shuffle = 0;
    hp.l2 = 0.01;
    hp.learning_rate = 0.05;
    uint32_t ident[N];
    for (int i = 0; i < N; i++)
        ident[i] = (uint32_t)i;
    double *g = (double *)tc_xmalloc(p.n * sizeof(double));
    double work[3 * H];
    feat_cpu_loss_grad(&q, &data, ident, N, hp.l2, g, work);
    CHECK_OK(feat_cpu_fit(&p, &data, &hp, NULL, NULL));
    for (size_t i = 0; i < p.n; i++) {
        double want = q.w[i] - hp.learning_rate * g[i] / (fabs(g[i]) + hp.epsilon);
        CHECK_NEAR(p.w[i], want, 1e-12);
    }
    free(g);
    feat_params_free(&p);
    feat_params_free(&q);
}

static void test_params_layout(void) {
    CHECK(feat_params_count(FEAT_MODEL_LOGREG, 10, 0) == 11);
    CHECK(feat_params_count(FEAT_MODEL_MLP, 10, 4) == 40 + 4 + 4 + 1);
    CHECK(feat_params_count(FEAT_MODEL_MLP, 10, 0) == 0);
    CHECK(feat_params_count(FEAT_MODEL_LINREG, 0, 0) == 0);
    feat_params_t p;
    CHECK_OK(feat_params_init(&p, FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_RELU, 10, 4, 1));
    /* W1 and w2 take L2; b1 and b2 do not */
    for (size_t i = 0; i < p.n; i++) {
        int want = i < 40 || (i >= 44 && i < 48);
        CHECK(feat_params_is_weight(&p, i) == want);
    }
    /* He-uniform W1 within ±sqrt(6/d), biases zero, seed-determined */
    double a = sqrt(6.0 / 10.0);
    for (size_t i = 0; i < 40; i++)
        CHECK(fabs(p.w[i]) <= a);
    for (size_t i = 40; i < 44; i++)
        CHECK(p.w[i] == 0.0);
    CHECK(p.w[48] == 0.0);
    feat_params_t q;
    CHECK_OK(feat_params_init(&q, FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_RELU, 10, 4, 1));
    CHECK(memcmp(p.w, q.w, p.n * sizeof(double)) == 0);
    feat_params_free(&q);
    CHECK_OK(feat_params_init(&q, FEAT_MODEL_MLP, FEAT_TASK_BINARY, FEAT_ACT_RELU, 10, 4, 2));
    CHECK(memcmp(p.w, q.w, p.n * sizeof(double)) != 0);
    feat_params_free(&q);
    feat_params_free(&p);
}

int main(void) {
    make_data();
    TC_RUN(test_gradients);
    TC_RUN(test_loss_by_hand);
    TC_RUN(test_first_adam_step);
    TC_RUN(test_params_layout);
    return tc_result();
}
