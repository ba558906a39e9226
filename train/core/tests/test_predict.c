/*
 * test_predict.c — the model runtime and feat_train()'s contract:
 * single, batch and dense predictions agree bit for bit; stored validation
 * metrics are what the runtime's predictions give; scratch handling; feature
 * lookup; robustness to missing and mistyped values; determinism per seed;
 * the time split; cancellation; argument and label errors; the GPU backend
 * refused when there is no GPU.
 */
#include "train/core/gpu.h"
#include "train/core/model.h"
#include "train/core/trainer.h"
#include "train/core/tests/tc.h"

enum { N = 2000, F = 3 };

static feat_feature_def_t defs[F] = {
    {"x", FEAT_FT_DOUBLE}, {"city", FEAT_FT_STRING}, {"n", FEAT_FT_INT64}};
static feat_raw_t rows[N * F];
static double y[N];
static const char *cities[4] = {"Berlin", "Paris", "Tokyo", "Lima"};

static void make_data(void) {
    uint64_t s = 31;
    for (int i = 0; i < N; i++) {
        double x = tc_gauss(&s);
        int c = (int)(tc_unif(&s) * 4);
        int64_t n = (int64_t)(tc_unif(&s) * 8);
        rows[i * F] = i % 9 == 0 ? feat_raw_missing() : feat_raw_double(x);
        rows[i * F + 1] = feat_raw_string(cities[c], strlen(cities[c]));
        rows[i * F + 2] = feat_raw_int64(n);
        double z = x * x - 1.0 + (c == 1 ? 1.0 : 0.0) + 0.2 * (double)n - 0.7;
        y[i] = tc_unif(&s) < 1.0 / (1.0 + exp(-z)) ? 1.0 : 0.0;
    }
}

static feat_train_conf_t conf(feat_model_kind_t kind) {
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.kind = kind;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.epochs = 4;
    c.hyper.hidden = 8;
    return c;
}

static feat_model_t *train(const feat_train_conf_t *c) {
    feat_train_data_t data = {defs, F, rows, y, N};
    feat_model_t *m = NULL;
    CHECK_OK(feat_train(c, &data, &m, NULL, NULL, 0));
    return m;
}

static void test_paths_agree(void) {
    feat_train_conf_t c = conf(FEAT_MODEL_MLP);
    feat_model_t *m = train(&c);
    if (!m)
        return;
    const feat_model_info_t *info = feat_model_info(m);
    CHECK(info->n_train == 1500 && info->n_valid == 500);
    CHECK(info->backend == FEAT_BACKEND_CPU);
    size_t d = info->input_dim;
    size_t ss = feat_model_scratch_size(m);
    CHECK(ss > d * sizeof(float));
    static double pb[N], p1[N], pd[N];
    float *X = (float *)tc_xmalloc(N * d * sizeof(float));
    char *scratch = (char *)tc_xmalloc(ss + 3);
    /* batch with caller scratch at an odd address */
    CHECK_OK(feat_model_predict_batch(m, rows, N, scratch + 3, ss, pb));
    for (int i = 0; i < N; i++) {
        CHECK_OK(feat_model_predict(m, rows + i * F, scratch, ss, &p1[i]));
        feat_prep_apply(feat_model_prep(m), rows + i * F, X + (size_t)i * d);
    }
    CHECK_OK(feat_model_predict_dense(m, X, N, NULL, 0, pd));
    CHECK(memcmp(pb, p1, sizeof(pb)) == 0);
    CHECK(memcmp(pb, pd, sizeof(pb)) == 0);
    for (int i = 0; i < N; i++)
        CHECK(pb[i] > 0.0 && pb[i] < 1.0);
    /* the stored metrics are the runtime's */
    feat_eval_t mv, mt;
    CHECK_OK(feat_eval_compute(FEAT_TASK_BINARY, pb + 1500, y + 1500, 500, &mv));
    CHECK(mv.auc == info->valid.auc && mv.logloss == info->valid.logloss &&
          mv.accuracy == info->valid.accuracy);
    CHECK_OK(feat_eval_compute(FEAT_TASK_BINARY, pb, y, 1500, &mt));
    CHECK(mt.auc == info->train.auc && mt.logloss == info->train.logloss);
    /* scratch too small */
    double p;
    CHECK_ERR(feat_model_predict(m, rows, scratch, ss - 1, &p), FEAT_ERR_INVALID);
    CHECK_ERR(feat_model_predict(NULL, rows, NULL, 0, &p), FEAT_ERR_INVALID);
    CHECK_ERR(feat_model_predict(m, NULL, NULL, 0, &p), FEAT_ERR_INVALID);
    CHECK_ERR(feat_model_predict(m, rows, NULL, 0, NULL), FEAT_ERR_INVALID);
    CHECK_OK(feat_model_predict_batch(m, rows, 0, NULL, 0, NULL));
    free(X);
    free(scratch);
    feat_model_destroy(m);
}

static void test_features_and_robustness(void) {
    feat_train_conf_t c = conf(FEAT_MODEL_LOGREG);
    c.label_name = "clicked";
    feat_model_t *m = train(&c);
    if (!m)
        return;
    CHECK(strcmp(feat_model_info(m)->label, "clicked") == 0);
    CHECK(feat_model_info(m)->n_features == F);
    CHECK(feat_model_feature_index(m, "city") == 1);
    CHECK(feat_model_feature_index(m, "nope") == -1);
    CHECK(feat_model_feature_index(m, NULL) == -1);
    CHECK(strcmp(feat_model_feature_name(m, 2), "n") == 0);
    CHECK(feat_model_feature_name(m, 3) == NULL);
    CHECK(feat_model_feature_type(m, 1) == FEAT_FT_STRING);
    /* all missing, unseen city, wrong types, empty and NULL strings: finite predictions */
    feat_raw_t odd[5][F] = {
        {feat_raw_missing(), feat_raw_missing(), feat_raw_missing()},
        {feat_raw_double(0.5), feat_raw_string("Atlantis", 8), feat_raw_int64(3)},
        {feat_raw_string("1.5", 3), feat_raw_double(2.0), feat_raw_bool(1)},
        {feat_raw_int64(-4), feat_raw_string("", 0), feat_raw_double(3.5)},
        {feat_raw_double(NAN), feat_raw_string(NULL, 0), feat_raw_double(-INFINITY)},
    };
    for (int i = 0; i < 5; i++) {
        double p = -1;
        CHECK_OK(feat_model_predict(m, odd[i], NULL, 0, &p));
        CHECK(isfinite(p) && p > 0 && p < 1);
    }
    /* a bad type tag counts as missing */
    feat_raw_t bad[F] = {feat_raw_double(1), feat_raw_missing(), feat_raw_int64(1)};
    bad[0].type = 99;
    double pb, pm;
    CHECK_OK(feat_model_predict(m, bad, NULL, 0, &pb));
    bad[0] = feat_raw_missing();
    CHECK_OK(feat_model_predict(m, bad, NULL, 0, &pm));
    CHECK(pb == pm);
    feat_model_destroy(m);
}

static void test_determinism(void) {
    feat_train_conf_t c = conf(FEAT_MODEL_MLP);
    feat_model_t *a = train(&c), *b = train(&c);
    c.hyper.seed = 2;
    feat_model_t *d = train(&c);
    if (a && b && d) {
        size_t na, nb, nd;
        const double *wa = feat_model_params(a, &na), *wb = feat_model_params(b, &nb);
        const double *wd = feat_model_params(d, &nd);
        CHECK(na == nb && memcmp(wa, wb, na * sizeof(double)) == 0);
        CHECK(na == nd && memcmp(wa, wd, na * sizeof(double)) != 0);
    }
    feat_model_destroy(a);
    feat_model_destroy(b);
    feat_model_destroy(d);
    /* no shuffling: still deterministic, and different from shuffled */
    c.hyper.seed = 1;
    c.hyper.shuffle = 0;
    feat_model_t *e = train(&c), *f = train(&c);
    if (e && f) {
        size_t n;
        CHECK(memcmp(feat_model_params(e, &n), feat_model_params(f, NULL), n * sizeof(double)) == 0);
    }
    feat_model_destroy(e);
    feat_model_destroy(f);
}

static int cancel_calls;
static int cancel_after_two(void *arg) {
    (void)arg;
    return ++cancel_calls > 2;
}

static void test_errors(void) {
    feat_train_conf_t c = conf(FEAT_MODEL_LOGREG);
    feat_train_data_t data = {defs, F, rows, y, N};
    feat_model_t *m = (feat_model_t *)1;
    char err[200];
    /* cancellation between epochs */
    c.cancel = cancel_after_two;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_UNAVAILABLE);
    CHECK(m == NULL && cancel_calls == 3);
    c.cancel = NULL;
    /* labels */
    double yb[N];
    memcpy(yb, y, sizeof(yb));
    yb[17] = 2.0;
    data.labels = yb;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    CHECK(strstr(err, "row 17") != NULL);
    c.kind = FEAT_MODEL_LINREG;
    yb[17] = NAN;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    c.kind = FEAT_MODEL_MLP;
    yb[17] = 2.0; /* AUTO task: regression */
    CHECK_OK(feat_train(&c, &data, &m, NULL, err, sizeof(err)));
    CHECK(m && feat_model_info(m)->task == FEAT_TASK_REGRESSION);
    CHECK(m && isnan(feat_model_info(m)->valid.auc) && !isnan(feat_model_info(m)->valid.rmse));
    feat_model_destroy(m);
    c.task = FEAT_TASK_BINARY;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    data.labels = y;
    c.kind = FEAT_MODEL_LOGREG;
    c.task = FEAT_TASK_REGRESSION;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    c.task = FEAT_TASK_AUTO;
    /* configuration ranges */
    c.hyper.batch_size = 0;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    c.hyper.batch_size = 256;
    c.valid_fraction = 0.95;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    c.valid_fraction = 0.25;
    data.n_rows = 0;
    CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    data.n_rows = 1; /* one row: trains, no validation */
    CHECK_OK(feat_train(&c, &data, &m, NULL, err, sizeof(err)));
    CHECK(m && feat_model_info(m)->n_valid == 0 && isnan(feat_model_info(m)->valid.auc));
    feat_model_destroy(m);
    data.n_rows = N;
    CHECK_ERR(feat_train(NULL, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    CHECK_ERR(feat_train(&c, NULL, &m, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    CHECK_ERR(feat_train(&c, &data, NULL, NULL, err, sizeof(err)), FEAT_ERR_INVALID);
    /* the GPU backend without a GPU */
    char why[160];
    if (!feat_gpu_available(why, sizeof(why))) {
        printf("  no GPU here (%s): backend GPU must refuse, AUTO must fall back\n", why);
        c.backend = FEAT_BACKEND_GPU;
        CHECK_ERR(feat_train(&c, &data, &m, NULL, err, sizeof(err)), FEAT_ERR_NO_DEVICE);
        c.backend = FEAT_BACKEND_AUTO;
        feat_train_report_t rep;
        memset(&rep, 0, sizeof(rep));
        CHECK_OK(feat_train(&c, &data, &m, &rep, err, sizeof(err)));
        CHECK(rep.backend == FEAT_BACKEND_CPU && strstr(rep.note, "no GPU") != NULL);
        feat_model_destroy(m);
    }
}

int main(void) {
    make_data();
    TC_RUN(test_paths_agree);
    TC_RUN(test_features_and_robustness);
    TC_RUN(test_determinism);
    TC_RUN(test_errors);
    return tc_result();
}
