/*
 * test_mlp.c — the MLP learns nonlinear targets that linear models cannot:
 * an XOR-like classification (label = sign(x1·x2)) and a quadratic
 * regression (y = x1²).
 */
#include "train/core/model.h"
#include "train/core/trainer.h"
#include "train/core/tests/tc.h"

enum { N = 8000, F = 3 };

static feat_feature_def_t defs[F] = {
    {"x1", FEAT_FT_DOUBLE}, {"x2", FEAT_FT_DOUBLE}, {"noise", FEAT_FT_DOUBLE}};
static feat_raw_t rows[N * F];
static double yxor[N], yquad[N];

static void make_data(void) {
    uint64_t s = 2024;
    for (int i = 0; i < N; i++) {
        double x1 = 2.0 * tc_unif(&s) - 1.0, x2 = 2.0 * tc_unif(&s) - 1.0;
        rows[i * F] = feat_raw_double(x1);
        rows[i * F + 1] = feat_raw_double(x2);
        rows[i * F + 2] = feat_raw_double(tc_gauss(&s));
        yxor[i] = x1 * x2 > 0 ? 1.0 : 0.0;
        yquad[i] = x1 * x1 + 0.05 * tc_gauss(&s);
    }
}

static feat_model_t *train(feat_model_kind_t kind, const double *y, uint32_t act) {
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.kind = kind;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.epochs = 60;
    c.hyper.batch_size = 64;
    c.hyper.learning_rate = 0.01;
    c.hyper.hidden = 16;
    c.hyper.activation = act;
    c.hyper.seed = 7;
    feat_train_data_t data = {defs, F, rows, y, N};
    feat_model_t *m = NULL;
    char err[200] = "";
    CHECK_OK(feat_train(&c, &data, &m, NULL, err, sizeof(err)));
    if (!m)
        fprintf(stderr, "train: %s\n", err);
    return m;
}

static void test_xor(void) {
    feat_model_t *lr = train(FEAT_MODEL_LOGREG, yxor, FEAT_ACT_RELU);
    feat_model_t *relu = train(FEAT_MODEL_MLP, yxor, FEAT_ACT_RELU);
    feat_model_t *tanh_ = train(FEAT_MODEL_MLP, yxor, FEAT_ACT_TANH);
    if (!lr || !relu || !tanh_)
        return;
    double a_lr = feat_model_info(lr)->valid.auc, a_relu = feat_model_info(relu)->valid.auc;
    double a_tanh = feat_model_info(tanh_)->valid.auc;
    printf("  XOR validation AUC: logreg %.4f, mlp relu %.4f, mlp tanh %.4f\n", a_lr, a_relu, a_tanh);
    CHECK(feat_model_info(relu)->task == FEAT_TASK_BINARY); /* AUTO: labels are 0/1 */
    CHECK(a_lr < 0.6);
    CHECK(a_relu > 0.97);
    CHECK(a_tanh > 0.97);
    CHECK(feat_model_info(relu)->valid.accuracy > 0.9);
    /* the four quadrants */
    const double q[4][2] = {{0.5, 0.5}, {-0.5, -0.5}, {0.5, -0.5}, {-0.5, 0.5}};
    for (int k = 0; k < 4; k++) {
        feat_raw_t r[F] = {feat_raw_double(q[k][0]), feat_raw_double(q[k][1]),
                             feat_raw_double(0)};
        double p;
        CHECK_OK(feat_model_predict(relu, r, NULL, 0, &p));
        CHECK(k < 2 ? p > 0.8 : p < 0.2);
    }
    feat_model_destroy(lr);
    feat_model_destroy(relu);
    feat_model_destroy(tanh_);
}

static void test_quadratic(void) {
    feat_model_t *lin = train(FEAT_MODEL_LINREG, yquad, FEAT_ACT_RELU);
    feat_model_t *mlp = train(FEAT_MODEL_MLP, yquad, FEAT_ACT_TANH);
    if (!lin || !mlp)
        return;
    double r_lin = feat_model_info(lin)->valid.rmse, r_mlp = feat_model_info(mlp)->valid.rmse;
    printf("  x1² validation RMSE: linreg %.4f, mlp tanh %.4f (noise 0.05)\n", r_lin, r_mlp);
    CHECK(feat_model_info(mlp)->task == FEAT_TASK_REGRESSION);
    CHECK(r_lin > 0.25);       /* sd of x1² on [-1, 1] is ≈ 0.30 */
    CHECK(r_mlp < 0.08);
    feat_model_destroy(lin);
    feat_model_destroy(mlp);
}

int main(void) {
    make_data();
    TC_RUN(test_xor);
    TC_RUN(test_quadratic);
    return tc_result();
}
