/*
 * test_prep.c — preprocessing fit/apply against hand-computed cases: means,
 * population standard deviations, imputation and indicators, top-K one-hot,
 * hash buckets, type coercions, layout and schema errors.
 */
#include "common/hash.h"
#include "train/core/prep.h"
#include "train/core/tests/tc.h"

#define M feat_raw_missing()
#define D(x) feat_raw_double(x)
#define I(x) feat_raw_int64(x)
#define B(x) feat_raw_bool(x)
#define S(x) feat_raw_string((x), strlen(x))

/* An independent FNV-1a 64 (the published algorithm). */
static uint64_t fnv_ref(const char *s) {
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static void test_fnv_vectors(void) {
    /* Test vectors from the FNV reference page. */
    CHECK(feat_fnv1a64("", 0) == 0xcbf29ce484222325ULL);
    CHECK(feat_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
    CHECK(feat_fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
    CHECK(feat_fnv1a64("DE", 2) == fnv_ref("DE"));
}

static void test_numeric(void) {
    feat_feature_def_t defs[4] = {
        {"x", FEAT_FT_DOUBLE}, {"n", FEAT_FT_INT64}, {"b", FEAT_FT_BOOL}, {"c", FEAT_FT_DOUBLE}};
    /* x: 1, 2, 3, NaN, missing → mean 2, std sqrt(2/3), indicator.
     * n: 10, 20, 30, 40 (as int64) → mean 25, std sqrt(125), no indicator.
     * b: T, F, T, T, (int64 1 counts as 1) → over 5: mean 0.8, std 0.4.
     * c: constant 5 → std stored as 1. */
    feat_raw_t rows[5 * 4] = {
        D(1), I(10), B(1), D(5),
        D(2), I(20), B(0), D(5),
        D(3), I(30), B(1), D(5),
        D(NAN), I(40), B(1), D(5),
        M, D(25), I(1), D(5),
    };
    feat_prep_conf_t c;
    feat_prep_conf_init(&c);
    feat_prep_t *p = NULL;
    /* n's 5th value is the double 25.0, which is numeric and present. */
    CHECK_OK(feat_prep_fit(&c, defs, 4, rows, 5, &p));
    if (!p)
        return;
    CHECK(feat_prep_n_features(p) == 4);
    CHECK(feat_prep_dim(p) == 2 + 1 + 1 + 1);
    feat_prep_info_t in;
    CHECK_OK(feat_prep_info(p, 0, &in));
    CHECK(strcmp(in.name, "x") == 0);
    CHECK(in.offset == 0 && in.width == 2 && in.indicator == 1);
    CHECK_NEAR(in.mean, 2.0, 1e-15);
    CHECK_NEAR(in.std, sqrt(2.0 / 3.0), 1e-15);
    CHECK_OK(feat_prep_info(p, 1, &in));
    CHECK(in.offset == 2 && in.width == 1 && in.indicator == 0);
    CHECK_NEAR(in.mean, 25.0, 1e-12);
    CHECK_NEAR(in.std, sqrt(100.0), 1e-12); /* 10,20,30,40,25: deviations²: 225+25+25+225+0 = 500; /5 */
    CHECK_OK(feat_prep_info(p, 2, &in));
    CHECK_NEAR(in.mean, 0.8, 1e-15);
    CHECK_NEAR(in.std, 0.4, 1e-15);
    CHECK_OK(feat_prep_info(p, 3, &in));
    CHECK_NEAR(in.mean, 5.0, 0);
    CHECK_NEAR(in.std, 1.0, 0);
    CHECK(feat_prep_info(p, 4, &in) == FEAT_ERR_INVALID);

    float out[5];
    feat_raw_t r1[4] = {D(4), I(45), B(0), D(7)};
    feat_prep_apply(p, r1, out);
    CHECK_NEAR(out[0], (float)(2.0 / sqrt(2.0 / 3.0)), 1e-6);
    CHECK_NEAR(out[1], 0.0f, 0);
    CHECK_NEAR(out[2], 2.0, 1e-6);
    CHECK_NEAR(out[3], (float)(-0.8 / 0.4), 1e-7);
    CHECK_NEAR(out[4], 2.0f, 0);
    /* missing, strings for numbers and non-finite doubles all impute the mean */
    feat_raw_t r2[4] = {M, S("12"), D(INFINITY), D(NAN)};
    feat_prep_apply(p, r2, out);
    CHECK(out[0] == 0.0f && out[1] == 1.0f);
    CHECK(out[2] == 0.0f);
    CHECK(out[3] == 0.0f);
    CHECK(out[4] == 0.0f);
    /* extreme values are clipped, never inf */
    feat_raw_t r3[4] = {D(1e300), I(INT64_MIN), B(1), D(-1e308)};
    feat_prep_apply(p, r3, out);
    CHECK(out[0] == 1e6f && out[2] == -1e6f && out[4] == -1e6f);
    feat_prep_destroy(p);

    /* no indicators when switched off */
    c.missing_indicators = 0;
    CHECK_OK(feat_prep_fit(&c, defs, 4, rows, 5, &p));
    CHECK(p && feat_prep_dim(p) == 4);
    feat_prep_destroy(p);
}

static void test_strings(void) {
    feat_feature_def_t defs[2] = {{"s", FEAT_FT_STRING}, {"x", FEAT_FT_DOUBLE}};
    /* counts: a 3, b 2, c 2, d 1, one missing.  K = 2 → a, then b (ties go to
     * the bytewise smaller string), c and d hash. */
    const char *vals[9] = {"c", "a", "b", "a", "d", "b", "c", "a", NULL};
    feat_raw_t rows[9 * 2];
    for (int i = 0; i < 9; i++) {
        rows[2 * i] = vals[i] ? S(vals[i]) : M;
        rows[2 * i + 1] = D(i);
    }
    feat_prep_conf_t c;
    feat_prep_conf_init(&c);
    c.top_k = 2;
    c.hash_buckets = 4;
    feat_prep_t *p = NULL;
    CHECK_OK(feat_prep_fit(&c, defs, 2, rows, 9, &p));
    if (!p)
        return;
    feat_prep_info_t in;
    CHECK_OK(feat_prep_info(p, 0, &in));
    CHECK(in.type == FEAT_FT_STRING && in.offset == 0);
    CHECK(in.n_categories == 2 && in.hash_buckets == 4 && in.indicator == 1);
    CHECK(in.width == 2 + 4 + 1);
    size_t len = 0;
    const char *k0 = feat_prep_category(p, 0, 0, &len);
    CHECK(k0 && len == 1 && k0[0] == 'a');
    const char *k1 = feat_prep_category(p, 0, 1, &len);
    CHECK(k1 && len == 1 && k1[0] == 'b');
    CHECK(feat_prep_category(p, 0, 2, &len) == NULL);
    CHECK(feat_prep_category(p, 1, 0, &len) == NULL);
    CHECK_OK(feat_prep_info(p, 1, &in));
    CHECK(in.offset == 7 && in.width == 1); /* x: never missing */
    CHECK(feat_prep_dim(p) == 8);

    struct {
        feat_raw_t v;
        int col;          /* expected hot column within the feature; -1: none */
    } cases[] = {
        {S("a"), 0},
        {S("b"), 1},
        {S("c"), 2 + (int)(fnv_ref("c") % 4)},
        {S("d"), 2 + (int)(fnv_ref("d") % 4)},
        {S("zzz-unseen"), 2 + (int)(fnv_ref("zzz-unseen") % 4)},
        {S(""), 2 + (int)(fnv_ref("") % 4)},
        {I(-42), 2 + (int)(fnv_ref("-42") % 4)},   /* int64 as decimal text */
        {B(1), 2 + (int)(fnv_ref("true") % 4)},    /* bool as true/false */
        {M, 6},                                    /* indicator */
        {D(1.5), 6},                               /* double: missing */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        feat_raw_t row[2] = {cases[i].v, D(0)};
        float out[8];
        feat_prep_apply(p, row, out);
        for (int j = 0; j < 7; j++) {
            float want = j == cases[i].col ? 1.0f : 0.0f;
            if (out[j] != want) {
                fprintf(stderr, "case %zu column %d: %g, want %g\n", i, j, out[j], want);
                CHECK(out[j] == want);
            }
        }
    }
    /* strings need not be NUL-terminated: "ab" cut to 1 byte is "a" */
    {
        feat_raw_t row[2] = {feat_raw_string("ab", 1), D(0)};
        float out[8];
        feat_prep_apply(p, row, out);
        CHECK(out[0] == 1.0f && out[1] == 0.0f);
    }
    feat_prep_destroy(p);

    /* min_count 3 keeps only "a"; top_k 0 hashes everything; 0 buckets drop the rest */
    c.min_count = 3;
    CHECK_OK(feat_prep_fit(&c, defs, 2, rows, 9, &p));
    CHECK_OK(feat_prep_info(p, 0, &in));
    CHECK(in.n_categories == 1);
    feat_prep_destroy(p);
    c.min_count = 1;
    c.top_k = 0;
    CHECK_OK(feat_prep_fit(&c, defs, 2, rows, 9, &p));
    CHECK_OK(feat_prep_info(p, 0, &in));
    CHECK(in.n_categories == 0 && in.width == 5);
    {
        feat_raw_t row[2] = {S("a"), D(0)};
        float out[6];
        feat_prep_apply(p, row, out);
        for (int j = 0; j < 4; j++)
            CHECK(out[j] == (j == (int)(fnv_ref("a") % 4) ? 1.0f : 0.0f));
    }
    feat_prep_destroy(p);
    c.top_k = 2;
    c.hash_buckets = 0;
    CHECK_OK(feat_prep_fit(&c, defs, 2, rows, 9, &p));
    {
        feat_raw_t row[2] = {S("c"), D(0)};
        float out[4];
        feat_prep_apply(p, row, out);
        CHECK(feat_prep_dim(p) == 4);
        CHECK(out[0] == 0.0f && out[1] == 0.0f && out[2] == 0.0f);
    }
    feat_prep_destroy(p);
}

static void test_never_present(void) {
    feat_feature_def_t defs[2] = {{"x", FEAT_FT_DOUBLE}, {"s", FEAT_FT_STRING}};
    feat_raw_t rows[2 * 2] = {M, M, M, M};
    feat_prep_conf_t c;
    feat_prep_conf_init(&c);
    feat_prep_t *p = NULL;
    CHECK_OK(feat_prep_fit(&c, defs, 2, rows, 2, &p));
    feat_prep_info_t in;
    CHECK_OK(feat_prep_info(p, 0, &in));
    CHECK(in.mean == 0.0 && in.std == 1.0 && in.indicator == 1);
    feat_raw_t r[2] = {D(3), M};
    float out[16];
    feat_prep_apply(p, r, out);
    CHECK(out[0] == 3.0f && out[1] == 0.0f);
    feat_prep_destroy(p);
    /* zero rows are allowed too */
    CHECK_OK(feat_prep_fit(&c, defs, 2, NULL, 0, &p));
    feat_prep_destroy(p);
}

static void test_schema_errors(void) {
    feat_prep_conf_t c;
    feat_prep_conf_init(&c);
    feat_prep_t *p = (feat_prep_t *)1;
    feat_raw_t row[2] = {D(1), D(2)};
    feat_feature_def_t dup[2] = {{"x", FEAT_FT_DOUBLE}, {"x", FEAT_FT_INT64}};
    CHECK_ERR(feat_prep_fit(&c, dup, 2, row, 1, &p), FEAT_ERR_INVALID);
    CHECK(p == NULL);
    feat_feature_def_t empty[1] = {{"", FEAT_FT_DOUBLE}};
    CHECK_ERR(feat_prep_fit(&c, empty, 1, row, 1, &p), FEAT_ERR_INVALID);
    feat_feature_def_t noname[1] = {{NULL, FEAT_FT_DOUBLE}};
    CHECK_ERR(feat_prep_fit(&c, noname, 1, row, 1, &p), FEAT_ERR_INVALID);
    feat_feature_def_t badtype[1] = {{"x", (feat_ftype_t)9}};
    CHECK_ERR(feat_prep_fit(&c, badtype, 1, row, 1, &p), FEAT_ERR_INVALID);
    feat_feature_def_t ok[1] = {{"x", FEAT_FT_DOUBLE}};
    CHECK_ERR(feat_prep_fit(&c, ok, 0, row, 1, &p), FEAT_ERR_INVALID);
    CHECK_ERR(feat_prep_fit(NULL, ok, 1, row, 1, &p), FEAT_ERR_INVALID);
    c.top_k = FEAT_TRAIN_MAX_TOP_K + 1;
    CHECK_ERR(feat_prep_fit(&c, ok, 1, row, 1, &p), FEAT_ERR_INVALID);
    feat_prep_destroy(NULL);
}

int main(void) {
    TC_RUN(test_fnv_vectors);
    TC_RUN(test_numeric);
    TC_RUN(test_strings);
    TC_RUN(test_never_present);
    TC_RUN(test_schema_errors);
    return tc_result();
}
