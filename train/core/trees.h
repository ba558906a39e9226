/*
 * train/core/trees.h — the tree-ensemble runtime: gradient-boosted trees
 * (and random forests, which score the same way) as flattened node arrays,
 * scored without calling any library per request.
 *
 * Semantics are XGBoost's (so that an imported model predicts what XGBoost
 * predicts):
 *   - a split sends a row to its left child when (float)x < threshold, and a
 *     missing value (NaN) to the node's default child;
 *   - the margin is base_margin plus the leaf value of every tree, summed in
 *     float in tree order, as XGBoost's CPU predictor does;
 *   - the output is the margin (FEAT_TREES_IDENTITY) or its logistic
 *     (FEAT_TREES_LOGISTIC), computed in float.
 *
 * A model is immutable after feat_trees_new: any number of threads may
 * predict at once.  Predicting never allocates.
 */
#ifndef FEAT_TRAIN_CORE_TREES_H
#define FEAT_TRAIN_CORE_TREES_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct feat_trees feat_trees_t;

typedef enum feat_trees_link {
    FEAT_TREES_IDENTITY = 0,  /* regression, or a classifier's raw margin */
    FEAT_TREES_LOGISTIC = 1   /* probability of the positive class */
} feat_trees_link_t;

/* One node.  Children are indices within the node's own tree. */
typedef struct feat_tree_node {
    float value;           /* a split's threshold, a leaf's value */
    int32_t feature;       /* a split's feature index; -1: a leaf */
    uint32_t left, right;  /* a split's children */
    uint8_t default_left;  /* where a missing value goes */
} feat_tree_node_t;

typedef struct feat_trees_spec {
    uint32_t nfeatures;               /* a row's width */
    feat_trees_link_t link;
    float base_margin;                /* added to every row's margin */
    size_t ntrees;
    const uint32_t *tree_nodes;       /* [ntrees]: node count of each tree (>= 1) */
    const feat_tree_node_t *nodes;    /* every tree's nodes in tree order, each tree's root first */
} feat_trees_spec_t;

/* Copies spec into a new model after checking it: every tree is a tree
 * (no node reached from its root twice, children in range; nodes not
 * reached at all, as pruning leaves them, are kept and never visited),
 * features < nfeatures, thresholds and leaf values finite.  FEAT_OK with
 * *out set, or FEAT_ERR_INVALID / FEAT_ERR_NOMEM with err saying what. */
feat_err_t feat_trees_new(const feat_trees_spec_t *spec, feat_trees_t **out, char *err, size_t errlen);
void feat_trees_free(feat_trees_t *m); /* NULL is fine */

uint32_t feat_trees_nfeatures(const feat_trees_t *m);
size_t feat_trees_ntrees(const feat_trees_t *m);
size_t feat_trees_nnodes(const feat_trees_t *m);
feat_trees_link_t feat_trees_link(const feat_trees_t *m);
float feat_trees_base_margin(const feat_trees_t *m);

/* Writes m back as a spec's arrays: tree_nodes[feat_trees_ntrees(m)] and
 * nodes[feat_trees_nnodes(m)], children relative to their tree, so that
 * feat_trees_new() of them gives the same model (the blob codec). */
void feat_trees_export(const feat_trees_t *m, uint32_t *tree_nodes, feat_tree_node_t *nodes);

/* The output for one row x[0..nfeatures) (NaN = missing). */
double feat_trees_predict(const feat_trees_t *m, const double *x);
/* n rows, row-major (x[i * nfeatures + j]), into out[0..n). */
void feat_trees_predict_batch(const feat_trees_t *m, const double *x, size_t n, double *out);
/* The same for rows already in float (NaN = missing), as preprocessing
 * writes them: equal to feat_trees_predict_batch() of the same values. */
void feat_trees_predict_f32(const feat_trees_t *m, const float *x, size_t n, double *out);

#endif
