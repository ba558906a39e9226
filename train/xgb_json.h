/*
 * train/xgb_json.h — a model trained elsewhere with XGBoost, read from its
 * JSON format (Booster.save_model("model.json"), XGBoost 1.x and 2.x) into
 * the tree runtime (train/core/trees.h).
 *
 * Accepted: booster gbtree (boosted trees; a random forest is gbtree with
 * num_parallel_tree > 1), one output (num_class 0 or 1, num_target 1),
 * numeric splits, and the objectives binary:logistic and reg:logistic
 * (probability), binary:logitraw (margin) and reg:squarederror (value).
 * Anything else (dart, multi-class, categorical splits, other objectives,
 * a file that is not such a model, truncated or inconsistent, a key given
 * twice) is refused with a message naming what, and nothing is returned.
 * Every tree in the file is scored, as Booster.predict does: a model saved
 * after early stopping keeps the rounds past its best_iteration unless it
 * is sliced before saving (booster[: best_iteration + 1]).  Nodes a pruned
 * tree left unreachable are kept and never visited.  Scores equal
 * XGBoost 1.7's bit for bit in float.
 */
#ifndef FEAT_TRAIN_XGB_JSON_H
#define FEAT_TRAIN_XGB_JSON_H

#include <stddef.h>

#include "common/err.h"
#include "train/core/trees.h"

typedef struct feat_xgb_model {
    feat_trees_t *trees;
    char objective[32];   /* as the file names it */
    size_t nnames;        /* learner.feature_names: 0, or feat_trees_nfeatures(trees) */
    char **names;         /* UTF-8, NUL-terminated */
} feat_xgb_model_t;

/* Parses text[0..len).  FEAT_OK with *out filled (free it with
 * feat_xgb_model_free), else FEAT_ERR_INVALID (err says what is wrong
 * and where) or FEAT_ERR_NOMEM; *out is then empty. */
feat_err_t feat_xgb_json_load(const char *text, size_t len, feat_xgb_model_t *out, char *err, size_t errlen);
void feat_xgb_model_free(feat_xgb_model_t *m);

#endif
