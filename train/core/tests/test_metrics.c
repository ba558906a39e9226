/*
 * test_metrics.c — metrics against hand-computed values and a brute-force
 * pairwise AUC (ties count 1/2, as sklearn's roc_auc_score).
 */
#include "train/core/metrics.h"
#include "train/core/tests/tc.h"

static void test_auc_hand(void) {
    double auc;
    /* sklearn's documented example: 0.75 */
    double y1[4] = {0, 0, 1, 1}, s1[4] = {0.1, 0.4, 0.35, 0.8};
    CHECK_OK(feat_eval_auc(s1, y1, 4, &auc));
    CHECK_NEAR(auc, 0.75, 1e-15);
    /* ties: pairs (pos, neg): (.5,.1)=1 (.5,.5)=½ (.9,.1)=1 (.9,.5)=1 → 3.5/4 */
    double y2[4] = {0, 1, 0, 1}, s2[4] = {0.1, 0.5, 0.5, 0.9};
    CHECK_OK(feat_eval_auc(s2, y2, 4, &auc));
    CHECK_NEAR(auc, 0.875, 1e-15);
    /* everything tied: ½ */
    double s3[4] = {0.3, 0.3, 0.3, 0.3};
    CHECK_OK(feat_eval_auc(s3, y2, 4, &auc));
    CHECK_NEAR(auc, 0.5, 1e-15);
    /* perfect and reversed */
    double s4[4] = {0.1, 0.9, 0.2, 0.8};
    CHECK_OK(feat_eval_auc(s4, y2, 4, &auc));
    CHECK_NEAR(auc, 1.0, 0);
    double s5[4] = {0.9, 0.1, 0.8, 0.2};
    CHECK_OK(feat_eval_auc(s5, y2, 4, &auc));
    CHECK_NEAR(auc, 0.0, 0);
    /* 3 positives, 2 negatives, a tie across classes:
     * s: n .2, p .4, n .4, p .7, p .9 → pairs: (.4,.2)=1 (.4,.4)=½ (.7,*)=2 (.9,*)=2 → 5.5/6 */
    double y6[5] = {0, 1, 0, 1, 1}, s6[5] = {0.2, 0.4, 0.4, 0.7, 0.9};
    CHECK_OK(feat_eval_auc(s6, y6, 5, &auc));
    CHECK_NEAR(auc, 5.5 / 6.0, 1e-15);
    /* one class only: NaN, not an error (sklearn raises) */
    double y7[3] = {1, 1, 1};
    CHECK_OK(feat_eval_auc(s6, y7, 3, &auc));
    CHECK(isnan(auc));
    CHECK_OK(feat_eval_auc(NULL, NULL, 0, &auc));
    CHECK(isnan(auc));
    /* NaN scores are an error */
    double s8[2] = {NAN, 0.1}, y8[2] = {0, 1};
    CHECK_ERR(feat_eval_auc(s8, y8, 2, &auc), FEAT_ERR_INVALID);
    CHECK_ERR(feat_eval_auc(s8, y8, 2, NULL), FEAT_ERR_INVALID);
}

static void test_auc_brute_force(void) {
    enum { N = 600 };
    static double s[N], y[N];
    uint64_t rs = 7;
    for (int rep = 0; rep < 5; rep++) {
        for (int i = 0; i < N; i++) {
            y[i] = tc_unif(&rs) < 0.3 ? 1.0 : 0.0;
            /* coarse scores → many ties, correlated with the label */
            s[i] = floor((tc_unif(&rs) + 0.3 * y[i]) * (rep + 2) * 3) / 10.0;
        }
        double num = 0, pairs = 0;
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                if (y[i] == 1 && y[j] == 0) {
                    pairs += 1;
                    num += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
                }
        double auc;
        CHECK_OK(feat_eval_auc(s, y, N, &auc));
        CHECK_NEAR(auc, num / pairs, 1e-12);
    }
}

static void test_logloss_accuracy(void) {
    double y[4] = {1, 0, 1, 0}, p[4] = {0.9, 0.2, 0.6, 0.5};
    double want = -(log(0.9) + log(0.8) + log(0.6) + log(0.5)) / 4.0;
    CHECK_NEAR(feat_eval_logloss(p, y, 4), want, 1e-15);
    /* clipping at 1e-15 */
    double p0[1] = {0.0}, y1[1] = {1.0};
    CHECK_NEAR(feat_eval_logloss(p0, y1, 1), -log(1e-15), 1e-9);
    double p1[1] = {1.0}, yz[1] = {0.0};
    CHECK_NEAR(feat_eval_logloss(p1, yz, 1), -log1p(-(1.0 - 1e-15)), 1e-6);
    CHECK(isfinite(feat_eval_logloss(p1, yz, 1)));
    /* accuracy: threshold p > 0.5 → predictions 1,0,1,0 → 4/4; then 0.5 counts as 0 */
    CHECK_NEAR(feat_eval_accuracy(p, y, 4), 1.0, 0);
    double y2[4] = {1, 0, 0, 1};
    CHECK_NEAR(feat_eval_accuracy(p, y2, 4), 0.5, 0);
    CHECK(isnan(feat_eval_accuracy(p, y, 0)));
    CHECK(isnan(feat_eval_logloss(p, y, 0)));
}

static void test_regression(void) {
    double pred[3] = {1, 2, 3}, y[3] = {1, 1, 1};
    CHECK_NEAR(feat_eval_rmse(pred, y, 3), sqrt(5.0 / 3.0), 1e-15);
    CHECK_NEAR(feat_eval_mae(pred, y, 3), 1.0, 1e-15);
    double pred2[2] = {-2.5, 4}, y2[2] = {0.5, 0};
    CHECK_NEAR(feat_eval_rmse(pred2, y2, 2), sqrt((9.0 + 16.0) / 2.0), 1e-15);
    CHECK_NEAR(feat_eval_mae(pred2, y2, 2), 3.5, 1e-15);
    CHECK(isnan(feat_eval_rmse(pred, y, 0)));
    CHECK(isnan(feat_eval_mae(pred, y, 0)));
}

static void test_compute(void) {
    feat_eval_t m;
    double y[4] = {0, 0, 1, 1}, s[4] = {0.1, 0.4, 0.35, 0.8};
    CHECK_OK(feat_eval_compute(FEAT_TASK_BINARY, s, y, 4, &m));
    CHECK_NEAR(m.auc, 0.75, 1e-15);
    CHECK_NEAR(m.accuracy, 0.75, 0); /* predictions 0,0,0,1 against 0,0,1,1 */
    CHECK(isnan(m.rmse) && isnan(m.mae));
    CHECK_OK(feat_eval_compute(FEAT_TASK_REGRESSION, s, y, 4, &m));
    CHECK(isnan(m.auc) && isnan(m.logloss) && isnan(m.accuracy));
    CHECK(!isnan(m.rmse) && !isnan(m.mae));
    CHECK_ERR(feat_eval_compute((feat_task_t)7, s, y, 4, &m), FEAT_ERR_INVALID);
}

int main(void) {
    TC_RUN(test_auc_hand);
    TC_RUN(test_auc_brute_force);
    TC_RUN(test_logloss_accuracy);
    TC_RUN(test_regression);
    TC_RUN(test_compute);
    return tc_result();
}
