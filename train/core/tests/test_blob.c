/*
 * test_blob.c — the model blob: round trip (every field, every weight and
 * every prediction bit-identical; re-encoding gives the same bytes) and
 * rejection of corrupt input: every truncation, every single-bit flip,
 * crafted payloads with a valid checksum (bad version, huge counts,
 * non-finite weight, trailing bytes), and random mutations with the checksum
 * repaired — all must fail with FEAT_ERR_CORRUPT or decode into a usable
 * model, never crash (run it under ASan: -DFEATD_SANITIZE=ON).
 */
#include "train/core/model.h"
#include "train/core/trainer.h"
#include "train/core/tests/tc.h"

enum { N = 600, F = 4 };

static feat_feature_def_t defs[F] = {
    {"amount", FEAT_FT_DOUBLE}, {"country", FEAT_FT_STRING}, {"visits", FEAT_FT_INT64},
    {"member", FEAT_FT_BOOL}};
static feat_raw_t rows[N * F];
static double ybin[N], yreg[N];
static const char *countries[5] = {"DE", "FR", "US", "JP", "BR"};

static void make_data(void) {
    uint64_t s = 77;
    for (int i = 0; i < N; i++) {
        double a = tc_gauss(&s);
        int c = (int)(tc_unif(&s) * 5);
        int64_t v = (int64_t)(tc_unif(&s) * 20);
        int mem = tc_unif(&s) < 0.3;
        rows[i * F] = i % 7 == 0 ? feat_raw_missing() : feat_raw_double(a);
        rows[i * F + 1] = i % 11 == 0 ? feat_raw_missing()
                                      : feat_raw_string(countries[c], 2);
        rows[i * F + 2] = feat_raw_int64(v);
        rows[i * F + 3] = feat_raw_bool(mem);
        double z = a + (c == 2 ? 1.0 : -0.5) + 0.1 * (double)v - 1.0 + (mem ? 0.7 : 0);
        ybin[i] = tc_unif(&s) < 1.0 / (1.0 + exp(-z)) ? 1.0 : 0.0;
        yreg[i] = 3.0 * z + 10.0 + tc_gauss(&s);
    }
}

/* A learner that ignores the rows: two fixed trees over the dense columns
 * (column 0 is amount, raw; the last column a one-hot or bucket of country),
 * enough to carry a tree model through feat_train and the blob. */
static feat_err_t fixed_trees(void *arg, const feat_dense_t *train, const feat_dense_t *valid, feat_task_t task,
                              const feat_hyper_t *h, int (*cancel)(void *), void *cancel_arg,
                              feat_trees_t **out, char *err, size_t errlen) {
    (void)arg, (void)valid, (void)h, (void)cancel, (void)cancel_arg;
    const feat_tree_node_t nodes[] = {
        {0.25f, 0, 1, 2, 1}, {-0.5f, -1, 0, 0, 0}, {0.75f, -1, 0, 0, 0},
        {0.5f, (int32_t)train->d - 1, 1, 2, 0}, {0.125f, -1, 0, 0, 0}, {-1.5f, -1, 0, 0, 0}};
    const uint32_t counts[] = {3, 3};
    feat_trees_spec_t spec = {train->d, task == FEAT_TASK_BINARY ? FEAT_TREES_LOGISTIC : FEAT_TREES_IDENTITY,
                              0.5f, 2, counts, nodes};
    return feat_trees_new(&spec, out, err, errlen);
}
static const feat_tree_learner_t fixed_learner = {fixed_trees, NULL};

static feat_model_t *train(feat_model_kind_t kind, const double *y, feat_task_t task) {
    feat_train_conf_t c;
    feat_train_conf_init(&c);
    c.kind = kind;
    c.learner = &fixed_learner;
    c.task = task;
    c.backend = FEAT_BACKEND_CPU;
    c.hyper.epochs = 5;
    c.hyper.hidden = 6;
    c.hyper.activation = FEAT_ACT_TANH;
    c.prep.top_k = 3;
    c.prep.hash_buckets = 2;
    c.label_name = "churned";
    feat_train_data_t data = {defs, F, rows, y, N};
    feat_model_t *m = NULL;
    CHECK_OK(feat_train(&c, &data, &m, NULL, NULL, 0));
    return m;
}

static uint32_t crc_ref(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void fix_crc(uint8_t *b, size_t len) {
    uint32_t c = crc_ref(b + 16, len - 16);
    b[12] = (uint8_t)c;
    b[13] = (uint8_t)(c >> 8);
    b[14] = (uint8_t)(c >> 16);
    b[15] = (uint8_t)(c >> 24);
}

static int same_double(double a, double b) { return memcmp(&a, &b, sizeof(a)) == 0; }

static void round_trip(feat_model_t *m) {
    void *blob = NULL;
    size_t len = 0;
    CHECK_OK(feat_model_serialize(m, &blob, &len));
    if (!blob)
        return;
    const uint8_t *b = (const uint8_t *)blob;
    CHECK(len > 16 && memcmp(b, "FTMB", 4) == 0);
    /* version 2 for trees, 1 for the rest (readable by a featd from before trees) */
    CHECK(b[4] == (feat_model_trees(m) ? 2 : 1) && b[5] == 0 && b[6] == 0 && b[7] == 0);
    CHECK((size_t)(b[8] | b[9] << 8 | b[10] << 16 | (uint32_t)b[11] << 24) == len - 16);
    CHECK((b[12] | b[13] << 8 | b[14] << 16 | (uint32_t)b[15] << 24) == crc_ref(b + 16, len - 16));

    feat_model_t *m2 = NULL;
    char err[200] = "";
    CHECK_OK(feat_model_deserialize(blob, len, &m2, err, sizeof(err)));
    if (!m2) {
        fprintf(stderr, "deserialize: %s\n", err);
        free(blob);
        return;
    }
    const feat_model_info_t *a = feat_model_info(m), *c = feat_model_info(m2);
    CHECK(a->kind == c->kind && a->task == c->task);
    /* field by field: memcmp would compare the struct's padding, which
     * nothing sets (it differed under one compiler's -O3) */
    const feat_hyper_t *ha = &a->hyper, *hc = &c->hyper;
    CHECK(same_double(ha->learning_rate, hc->learning_rate) && same_double(ha->l2, hc->l2) &&
          same_double(ha->beta1, hc->beta1) && same_double(ha->beta2, hc->beta2) &&
          same_double(ha->epsilon, hc->epsilon));
    CHECK(ha->hidden == hc->hidden && ha->epochs == hc->epochs && ha->batch_size == hc->batch_size &&
          ha->activation == hc->activation && ha->shuffle == hc->shuffle && ha->seed == hc->seed);
    CHECK(strcmp(a->label, c->label) == 0 && strcmp(c->label, "churned") == 0);
    CHECK(a->n_features == c->n_features && a->input_dim == c->input_dim);
    CHECK(a->n_train == c->n_train && a->n_valid == c->n_valid);
    CHECK(same_double(a->train_seconds, c->train_seconds) && a->backend == c->backend);
    CHECK(memcmp(&a->train, &c->train, sizeof(a->train)) == 0);
    CHECK(memcmp(&a->valid, &c->valid, sizeof(a->valid)) == 0);
    CHECK(same_double(a->y_mean, c->y_mean) && same_double(a->y_std, c->y_std));
    CHECK(!feat_model_trees(m) == !feat_model_trees(m2));
    if (feat_model_trees(m)) {
        const feat_trees_t *t1 = feat_model_trees(m), *t2 = feat_model_trees(m2);
        CHECK(feat_trees_ntrees(t1) == feat_trees_ntrees(t2) && feat_trees_nnodes(t1) == feat_trees_nnodes(t2));
        CHECK(feat_trees_link(t1) == feat_trees_link(t2) && feat_trees_base_margin(t1) == feat_trees_base_margin(t2));
        CHECK(ha->trees == hc->trees && ha->max_depth == hc->max_depth && ha->early_stopping == hc->early_stopping &&
              same_double(ha->subsample, hc->subsample) && same_double(ha->min_child_weight, hc->min_child_weight));
    }
    size_t n1, n2;
    const double *w1 = feat_model_params(m, &n1), *w2 = feat_model_params(m2, &n2);
    CHECK(n1 == n2 && (n1 == 0 || memcmp(w1, w2, n1 * sizeof(double)) == 0));
    for (size_t i = 0; i < F; i++) {
        CHECK(strcmp(feat_model_feature_name(m, i), feat_model_feature_name(m2, i)) == 0);
        CHECK(feat_model_feature_type(m, i) == feat_model_feature_type(m2, i));
        feat_prep_info_t p1, p2;
        CHECK_OK(feat_prep_info(feat_model_prep(m), i, &p1));
        CHECK_OK(feat_prep_info(feat_model_prep(m2), i, &p2));
        CHECK(p1.offset == p2.offset && p1.width == p2.width && p1.indicator == p2.indicator);
        CHECK(same_double(p1.mean, p2.mean) && same_double(p1.std, p2.std));
        CHECK(p1.n_categories == p2.n_categories && p1.hash_buckets == p2.hash_buckets);
        for (size_t k = 0; k < p1.n_categories; k++) {
            size_t l1, l2;
            const char *c1 = feat_prep_category(feat_model_prep(m), i, k, &l1);
            const char *c2 = feat_prep_category(feat_model_prep(m2), i, k, &l2);
            CHECK(l1 == l2 && memcmp(c1, c2, l1) == 0);
        }
    }
    static double p1[N], p2[N];
    CHECK_OK(feat_model_predict_batch(m, rows, N, NULL, 0, p1));
    CHECK_OK(feat_model_predict_batch(m2, rows, N, NULL, 0, p2));
    CHECK(memcmp(p1, p2, sizeof(p1)) == 0);
    /* re-encoding is byte-identical */
    void *blob2 = NULL;
    size_t len2 = 0;
    CHECK_OK(feat_model_serialize(m2, &blob2, &len2));
    CHECK(len2 == len && blob2 && memcmp(blob, blob2, len) == 0);
    free(blob2);
    feat_model_destroy(m2);
    free(blob);
}

static void test_round_trip(void) {
    feat_model_t *m[6] = {train(FEAT_MODEL_LOGREG, ybin, FEAT_TASK_AUTO),
                          train(FEAT_MODEL_LINREG, yreg, FEAT_TASK_AUTO),
                          train(FEAT_MODEL_MLP, ybin, FEAT_TASK_BINARY),
                          train(FEAT_MODEL_MLP, yreg, FEAT_TASK_REGRESSION),
                          train(FEAT_MODEL_TREES, ybin, FEAT_TASK_AUTO),
                          train(FEAT_MODEL_TREES, yreg, FEAT_TASK_AUTO)};
    /* the tree model reads amount raw: a row's score is what the two trees say */
    if (m[4]) {
        double p;
        feat_raw_t row[F] = {feat_raw_double(0.2), feat_raw_missing(), feat_raw_int64(3), feat_raw_bool(1)};
        CHECK_OK(feat_model_predict(m[4], row, NULL, 0, &p));
        /* country missing: its last column, the indicator, is 1 (>= 0.5: right, -1.5) */
        CHECK(p == (double)(1.0f / (1.0f + expf(-(0.5f + -0.5f + -1.5f)))));
        row[0] = feat_raw_missing(); /* default left */
        CHECK_OK(feat_model_predict(m[4], row, NULL, 0, &p));
        CHECK(p == (double)(1.0f / (1.0f + expf(-(0.5f + -0.5f + -1.5f)))));
        row[0] = feat_raw_double(0.3);
        CHECK_OK(feat_model_predict(m[4], row, NULL, 0, &p));
        CHECK(p == (double)(1.0f / (1.0f + expf(-(0.5f + 0.75f + -1.5f)))));
    }
    for (int i = 0; i < 6; i++) {
        if (m[i])
            round_trip(m[i]);
        feat_model_destroy(m[i]);
    }
}

static feat_err_t decode(const uint8_t *b, size_t len) {
    feat_model_t *m = NULL;
    char err[200];
    feat_err_t e = feat_model_deserialize(b, len, &m, err, sizeof(err));
    if (e == FEAT_OK) {
        /* whatever decoded must be usable */
        double p;
        CHECK(m != NULL);
        CHECK_OK(feat_model_predict(m, rows, NULL, 0, &p));
        feat_model_destroy(m);
    } else {
        CHECK(m == NULL);
    }
    return e;
}

static void test_corrupt(void) {
    feat_model_t *m = train(FEAT_MODEL_MLP, ybin, FEAT_TASK_BINARY);
    if (!m)
        return;
    void *blob = NULL;
    size_t len = 0;
    CHECK_OK(feat_model_serialize(m, &blob, &len));
    feat_model_destroy(m);
    uint8_t *b = (uint8_t *)blob, *t = (uint8_t *)tc_xmalloc(len + 16);

    /* every truncation (the heap copy is exactly len bytes, so ASan sees overreads) */
    for (size_t n = 0; n < len; n++) {
        uint8_t *exact = (uint8_t *)tc_xmalloc(n);
        memcpy(exact, b, n);
        feat_err_t e = decode(exact, n);
        if (e != FEAT_ERR_CORRUPT) {
            fprintf(stderr, "truncated to %zu bytes: %s\n", n, feat_err_str(e));
            CHECK(e == FEAT_ERR_CORRUPT);
        }
        free(exact);
    }
    /* every single-bit flip */
    int flips_ok = 1;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(t, b, len);
            t[i] ^= (uint8_t)(1u << bit);
            if (decode(t, len) != FEAT_ERR_CORRUPT)
                flips_ok = 0;
        }
    CHECK(flips_ok);
    /* an extra byte */
    memcpy(t, b, len);
    t[len] = 0;
    CHECK_ERR(decode(t, len + 1), FEAT_ERR_CORRUPT);

    /* crafted payloads with a valid checksum */
    char err[200];
    feat_model_t *out = NULL;
    memcpy(t, b, len);
    t[4] = 3; /* version 3 */
    fix_crc(t, len);
    CHECK_ERR(feat_model_deserialize(t, len, &out, err, sizeof(err)), FEAT_ERR_CORRUPT);
    CHECK(strstr(err, "version") != NULL);
    memcpy(t, b, len);
    memcpy(t, "XXXX", 4);
    CHECK_ERR(decode(t, len), FEAT_ERR_CORRUPT);
    /* (an MLP's blob is version 1) the feature count sits after kind, task, hyper (5 f64 + 5 u32 +
     * u64), label, prep conf (4 u32) */
    size_t off = 16 + 8 + 40 + 20 + 8;
    uint32_t label_len = t[off] | t[off + 1] << 8 | t[off + 2] << 16 | (uint32_t)t[off + 3] << 24;
    CHECK(label_len == 7); /* "churned" */
    size_t nf_off = off + 4 + label_len + 16;
    memcpy(t, b, len);
    CHECK(t[nf_off] == F && t[nf_off + 1] == 0);
    t[nf_off] = t[nf_off + 1] = t[nf_off + 2] = t[nf_off + 3] = 0xff; /* 4 billion features */
    fix_crc(t, len);
    CHECK_ERR(feat_model_deserialize(t, len, &out, err, sizeof(err)), FEAT_ERR_CORRUPT);
    /* the last weight is followed by 2 u64 + f64 + u32 + 10 f64 = 108 bytes */
    memcpy(t, b, len);
    double nan = NAN;
    memcpy(t + len - 108 - 8, &nan, 8);
    fix_crc(t, len);
    CHECK_ERR(feat_model_deserialize(t, len, &out, err, sizeof(err)), FEAT_ERR_CORRUPT);
    CHECK(strstr(err, "weight") != NULL);
    /* a trailing byte inside a correctly framed payload */
    memcpy(t, b, len);
    t[len] = 0;
    {
        uint32_t pl = (uint32_t)(len + 1 - 16);
        t[8] = (uint8_t)pl;
        t[9] = (uint8_t)(pl >> 8);
        t[10] = (uint8_t)(pl >> 16);
        t[11] = (uint8_t)(pl >> 24);
    }
    fix_crc(t, len + 1);
    CHECK_ERR(feat_model_deserialize(t, len + 1, &out, err, sizeof(err)), FEAT_ERR_CORRUPT);
    CHECK(strstr(err, "trailing") != NULL);
    CHECK(out == NULL);

    /* random mutations past the header, checksum repaired: decode or reject, never crash */
    uint64_t s = 1;
    int decoded = 0, rejected = 0;
    for (int trial = 0; trial < 20000; trial++) {
        memcpy(t, b, len);
        int k = 1 + (int)(tc_unif(&s) * 4);
        for (int j = 0; j < k; j++) {
            size_t pos = 16 + (size_t)(tc_unif(&s) * (double)(len - 16));
            uint64_t r = tc_rng(&s);
            t[pos] = (r & 3) == 0 ? 0xff : (r & 3) == 1 ? 0 : (uint8_t)(r >> 8);
        }
        fix_crc(t, len);
        feat_err_t e = decode(t, len);
        CHECK(e == FEAT_OK || e == FEAT_ERR_CORRUPT);
        if (e == FEAT_OK)
            decoded++;
        else
            rejected++;
    }
    printf("  random mutations: %d decoded, %d rejected\n", decoded, rejected);
    CHECK(rejected > 0);

    /* argument errors */
    CHECK_ERR(feat_model_deserialize(b, len, NULL, NULL, 0), FEAT_ERR_INVALID);
    CHECK_ERR(feat_model_deserialize(NULL, 5, &out, NULL, 0), FEAT_ERR_INVALID);
    CHECK_ERR(feat_model_deserialize(NULL, 0, &out, NULL, 0), FEAT_ERR_CORRUPT);
    CHECK_ERR(feat_model_serialize(NULL, &blob, &len), FEAT_ERR_INVALID);
    free(t);
    free(b);
}

/* A tree model's blob: every truncation and bit flip rejected, random
 * mutations (checksum repaired) decode to something that predicts or are
 * rejected, and crafted trees (a cycle, a child out of range, a split on a
 * column past the input) are rejected although the checksum is right. */
static void test_corrupt_trees(void) {
    feat_model_t *m = train(FEAT_MODEL_TREES, ybin, FEAT_TASK_AUTO);
    if (!m)
        return;
    void *blob = NULL;
    size_t len = 0;
    CHECK_OK(feat_model_serialize(m, &blob, &len));
    feat_model_destroy(m);
    uint8_t *b = (uint8_t *)blob, *t = (uint8_t *)tc_xmalloc(len + 16);
    for (size_t n = 0; n < len; n++) {
        uint8_t *exact = (uint8_t *)tc_xmalloc(n);
        memcpy(exact, b, n);
        CHECK_ERR(decode(exact, n), FEAT_ERR_CORRUPT);
        free(exact);
    }
    int flips_ok = 1;
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            memcpy(t, b, len);
            t[i] ^= (uint8_t)(1u << bit);
            if (decode(t, len) != FEAT_ERR_CORRUPT)
                flips_ok = 0;
        }
    CHECK(flips_ok);
    /* the nodes are the last 6 × 20 bytes before the 2 u64 + f64 + u32 + 10 f64 = 108 trailing bytes;
     * node k of tree 0 at first + 20k: f32 value, i32 feature, u32 left, u32 right, u32 default_left */
    size_t first = len - 108 - 6 * 20;
    char err[200];
    feat_model_t *out = NULL;
    /* fixed_trees' root: feature 0, children 1 and 2, missing values left */
    CHECK(b[first + 4] == 0 && b[first + 8] == 1 && b[first + 12] == 2 && b[first + 16] == 1);
    struct { size_t at; uint32_t v; const char *what; } bad[] = {
        {first + 8, 0, "a cycle: the root's left child is the root"},
        {first + 12, 7, "a child out of range"},
        {first + 4, 100000, "a split on a column past the input"},
        {first + 16, 2, "a default direction neither 0 nor 1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(t, b, len);
        t[bad[i].at] = (uint8_t)bad[i].v, t[bad[i].at + 1] = (uint8_t)(bad[i].v >> 8);
        t[bad[i].at + 2] = (uint8_t)(bad[i].v >> 16), t[bad[i].at + 3] = (uint8_t)(bad[i].v >> 24);
        fix_crc(t, len);
        feat_err_t e = feat_model_deserialize(t, len, &out, err, sizeof(err));
        if (e != FEAT_ERR_CORRUPT) fprintf(stderr, "%s: accepted\n", bad[i].what);
        CHECK(e == FEAT_ERR_CORRUPT && out == NULL);
    }
    /* raw preprocessing never has an indicator column on a number: a blob that claims one for
     * "amount" (feature 0) is refused, not decoded into a column nothing writes */
    {
        size_t nf_off = 16 + 8 + 40 + 20 + 8 + 12 + 16 + 4 + 7 + 20, ind = nf_off + 4 + 4 + 6 + 4;
        CHECK(memcmp(b + nf_off + 8, "amount", 6) == 0 && b[ind] == 0);
        memcpy(t, b, len);
        t[ind] = 1;
        fix_crc(t, len);
        CHECK_ERR(feat_model_deserialize(t, len, &out, err, sizeof(err)), FEAT_ERR_CORRUPT);
        CHECK(strstr(err, "indicator") != NULL);
    }
    uint64_t s = 7;
    int rejected = 0;
    for (int trial = 0; trial < 20000; trial++) {
        memcpy(t, b, len);
        int k = 1 + (int)(tc_unif(&s) * 4);
        for (int j = 0; j < k; j++) {
            size_t pos = 16 + (size_t)(tc_unif(&s) * (double)(len - 16));
            uint64_t r = tc_rng(&s);
            t[pos] = (r & 3) == 0 ? 0xff : (r & 3) == 1 ? 0 : (uint8_t)(r >> 8);
        }
        fix_crc(t, len);
        feat_err_t e = decode(t, len);
        CHECK(e == FEAT_OK || e == FEAT_ERR_CORRUPT);
        rejected += e != FEAT_OK;
    }
    CHECK(rejected > 0);
    free(t);
    free(b);
}

int main(void) {
    make_data();
    TC_RUN(test_round_trip);
    TC_RUN(test_corrupt);
    TC_RUN(test_corrupt_trees);
    return tc_result();
}
