/*
 * tests/fuzz/fuzz_xgb_json.c — libFuzzer target: the reader of XGBoost JSON
 * models (feat_xgb_json_load, train/xgb_json.c), which `featctl models
 * import` hands files from outside.
 *
 * Checks: no crash, sanitizer finding or endless walk on any input; a model
 * it accepts has trees and features, names for every feature or none, and
 * scores a row of missing values, a row of zeros and rows of the input's own
 * bytes to a number (a logistic model: within [0, 1]), the same alone as in a
 * batch.
 */
#include "fuzz_util.h"

#include <math.h>

#include "train/xgb_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    feat_xgb_model_t m;
    char err[256];
    if (feat_xgb_json_load((const char *)data, size, &m, err, sizeof(err)) != FEAT_OK) {
        FUZZ_CHECK(err[0] != 0, "refused without a message");
        return 0;
    }
    uint32_t nf = feat_trees_nfeatures(m.trees);
    FUZZ_CHECK(nf >= 1 && feat_trees_ntrees(m.trees) >= 1, "accepted an empty model");
    FUZZ_CHECK(m.nnames == 0 || m.nnames == nf, "%zu names for %u features", m.nnames, nf);
    double *x = malloc(3 * (size_t)nf * sizeof(double)), batch[3];
    if (!x) return 0;
    int logistic = strcmp(m.objective, "binary:logistic") == 0 || strcmp(m.objective, "reg:logistic") == 0;
    for (int row = 0; row < 3; row++)
        for (uint32_t j = 0; j < nf; j++)
            x[(size_t)row * nf + j] = row == 0 ? NAN : row == 1 ? 0.0 : (double)(int8_t)data[(j * 7 + 3) % size] / 8.0;
    feat_trees_predict_batch(m.trees, x, 3, batch);
    for (int row = 0; row < 3; row++) {
        double y = feat_trees_predict(m.trees, x + (size_t)row * nf);
        FUZZ_CHECK(!isnan(y), "a prediction is NaN");
        FUZZ_CHECK(!logistic || (y >= 0 && y <= 1), "probability %g", y);
        FUZZ_CHECK(y == batch[row], "row %d: %g alone, %g in a batch", row, y, batch[row]);
    }
    free(x);
    feat_xgb_model_free(&m);
    return 0;
}
