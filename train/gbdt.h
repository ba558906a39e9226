/*
 * train/gbdt.h — gradient-boosted trees for featd's trainer, learned with
 * libxgboost (its C API), the one place featd links it.
 *
 * feat_gbdt_learner() is the feat_tree_learner_t (train/core/trainer.h)
 * that the retrain engine hands feat_train() for task = gbdt_classifier and
 * gbdt_regressor.  Each fit builds a booster with
 *   objective binary:logistic (BINARY) or reg:squarederror (REGRESSION),
 *   tree_method hist, eta = learning_rate, lambda = l2, max_depth,
 *   subsample, min_child_weight, seed, nthread 1 (training leaves the other
 *   cores to serving, like the CPU trainer),
 * boosts one round at a time (polling cancel), and with early_stopping and
 * validation rows evaluates AUC (RMSE) on them after every round, stopping
 * after early_stopping rounds without a better one — xgboost.train()'s
 * early_stopping_rounds — and keeping rounds up to the best.  The booster
 * is then saved as JSON and read by feat_xgb_json_load (train/xgb_json.h),
 * the same reader `featctl models import` uses, so featd serves exactly
 * what XGBoost would predict.
 */
#ifndef FEAT_TRAIN_GBDT_H
#define FEAT_TRAIN_GBDT_H

#include "train/core/trainer.h"

/* A learner with no state: any number of trainings may use it at once. */
const feat_tree_learner_t *feat_gbdt_learner(void);

#endif
