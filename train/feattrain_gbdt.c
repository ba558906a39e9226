/*
 * train/feattrain_gbdt.c — feattrain (train/core/tools/feattrain.c) with
 * gradient-boosted trees: --task gbdt trains with featd's libxgboost learner
 * (train/gbdt.h).  Built as build/train/feattrain; train/core's own feattrain
 * has no tree learner, since train/core links nothing but libm.
 */
#include "train/gbdt.h"

#define FEAT_WITH_GBDT 1
#include "train/core/tools/feattrain.c"
