/*
 * train/core/trees.c — the tree-ensemble runtime.  See trees.h.
 *
 * Layout: every tree's nodes in one array, the roots' offsets in another;
 * a node's children are made absolute at load, so scoring a tree is a walk
 * over one array with no per-tree arithmetic.
 */
#include "train/core/trees.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct feat_trees {
    uint32_t nfeatures;
    feat_trees_link_t link;
    float base_margin;
    size_t ntrees, nnodes;
    uint32_t *root;            /* [ntrees]: index of each tree's root in node */
    feat_tree_node_t *node;    /* children absolute */
};

/* Tree t (nodes nd[0..n)) is a tree: from node 0 every node is reached
 * exactly once.  visited and stack: caller scratch of n entries. */
static int check_tree(const feat_tree_node_t *nd, uint32_t n, uint32_t nfeat, uint8_t *visited, uint32_t *stack,
                      size_t t, char *err, size_t errlen) {
    memset(visited, 0, n);
    uint32_t sp = 0;
    stack[sp++] = 0;
    while (sp) {
        uint32_t i = stack[--sp];
        if (visited[i]) {
            snprintf(err, errlen, "tree %zu: node %u is reached twice (not a tree)", t, i);
            return 0;
        }
        visited[i] = 1;
        if (!isfinite(nd[i].value)) {
            snprintf(err, errlen, "tree %zu: node %u has a value that is not a finite number", t, i);
            return 0;
        }
        if (nd[i].feature < 0) continue;
        if ((uint32_t)nd[i].feature >= nfeat) {
            snprintf(err, errlen, "tree %zu: node %u splits on feature %d; the model has %u", t, i, nd[i].feature,
                     nfeat);
            return 0;
        }
        if (nd[i].left >= n || nd[i].right >= n || nd[i].left == nd[i].right) {
            snprintf(err, errlen, "tree %zu: node %u has children %u and %u; the tree has %u nodes", t, i, nd[i].left,
                     nd[i].right, n);
            return 0;
        }
        if (sp + 2 > n) { /* more pending than nodes: some node is reached twice */
            snprintf(err, errlen, "tree %zu: a node below node %u is reached twice (not a tree)", t, i);
            return 0;
        }
        stack[sp++] = nd[i].left;
        stack[sp++] = nd[i].right;
    }
    return 1; /* nodes a pruned tree left behind are never reached, and harmless */
}

feat_err_t feat_trees_new(const feat_trees_spec_t *spec, feat_trees_t **out, char *err, size_t errlen) {
    *out = NULL;
    if (!spec->ntrees || !spec->nfeatures) {
        snprintf(err, errlen, "a model needs at least one tree and one feature");
        return FEAT_ERR_INVALID;
    }
    if (!isfinite(spec->base_margin)) {
        snprintf(err, errlen, "the base margin is not a finite number");
        return FEAT_ERR_INVALID;
    }
    size_t total = 0;
    uint32_t widest = 0;
    for (size_t t = 0; t < spec->ntrees; t++) {
        if (!spec->tree_nodes[t]) {
            snprintf(err, errlen, "tree %zu has no nodes", t);
            return FEAT_ERR_INVALID;
        }
        total += spec->tree_nodes[t];
        if (spec->tree_nodes[t] > widest) widest = spec->tree_nodes[t];
    }
    if (total > UINT32_MAX) {
        snprintf(err, errlen, "%zu nodes: too many", total);
        return FEAT_ERR_INVALID;
    }
    feat_trees_t *m = calloc(1, sizeof(*m));
    uint8_t *visited = malloc(widest);
    uint32_t *stack = malloc((size_t)widest * sizeof(*stack));
    if (m) {
        m->root = malloc(spec->ntrees * sizeof(*m->root));
        m->node = malloc(total * sizeof(*m->node));
    }
    if (!m || !visited || !stack || !m->root || !m->node) {
        free(visited);
        free(stack);
        feat_trees_free(m);
        snprintf(err, errlen, "out of memory for %zu nodes", total);
        return FEAT_ERR_NOMEM;
    }
    m->nfeatures = spec->nfeatures;
    m->link = spec->link;
    m->base_margin = spec->base_margin;
    m->ntrees = spec->ntrees;
    m->nnodes = total;
    size_t at = 0;
    feat_err_t rc = FEAT_OK;
    for (size_t t = 0; t < spec->ntrees && rc == FEAT_OK; t++) {
        const feat_tree_node_t *nd = spec->nodes + at;
        uint32_t n = spec->tree_nodes[t];
        if (!check_tree(nd, n, spec->nfeatures, visited, stack, t, err, errlen)) {
            rc = FEAT_ERR_INVALID;
            break;
        }
        m->root[t] = (uint32_t)at;
        for (uint32_t i = 0; i < n; i++) {
            m->node[at + i] = nd[i];
            if (nd[i].feature >= 0) {
                m->node[at + i].left += (uint32_t)at;
                m->node[at + i].right += (uint32_t)at;
            }
        }
        at += n;
    }
    free(visited);
    free(stack);
    if (rc) {
        feat_trees_free(m);
        return rc;
    }
    *out = m;
    return FEAT_OK;
}

void feat_trees_free(feat_trees_t *m) {
    if (!m) return;
    free(m->root);
    free(m->node);
    free(m);
}

uint32_t feat_trees_nfeatures(const feat_trees_t *m) { return m->nfeatures; }
size_t feat_trees_ntrees(const feat_trees_t *m) { return m->ntrees; }
size_t feat_trees_nnodes(const feat_trees_t *m) { return m->nnodes; }
feat_trees_link_t feat_trees_link(const feat_trees_t *m) { return m->link; }
float feat_trees_base_margin(const feat_trees_t *m) { return m->base_margin; }

void feat_trees_export(const feat_trees_t *m, uint32_t *tree_nodes, feat_tree_node_t *nodes) {
    for (size_t t = 0; t < m->ntrees; t++) {
        uint32_t root = m->root[t], end = t + 1 < m->ntrees ? m->root[t + 1] : (uint32_t)m->nnodes;
        tree_nodes[t] = end - root;
        for (uint32_t i = root; i < end; i++) {
            nodes[i] = m->node[i];
            if (nodes[i].feature >= 0) {
                nodes[i].left -= root;
                nodes[i].right -= root;
            }
        }
    }
}

/* The leaf row x reaches in the tree rooted at root. */
static inline float leaf(const feat_tree_node_t *node, uint32_t root, const double *x) {
    const feat_tree_node_t *nd = &node[root];
    while (nd->feature >= 0) {
        double v = x[nd->feature];
        uint32_t next = isnan(v) ? (nd->default_left ? nd->left : nd->right)
                                 : ((float)v < nd->value ? nd->left : nd->right);
        nd = &node[next];
    }
    return nd->value;
}

static inline double output(const feat_trees_t *m, float margin) {
    if (m->link == FEAT_TREES_LOGISTIC) return 1.0f / (1.0f + expf(-margin));
    return margin;
}

double feat_trees_predict(const feat_trees_t *m, const double *x) {
    float margin = m->base_margin;
    for (size_t t = 0; t < m->ntrees; t++) margin += leaf(m->node, m->root[t], x);
    return output(m, margin);
}

/* The same walk over a row already in float (NaN stays NaN): what a block
 * converts once instead of at every node. */
static inline float leaf_f(const feat_tree_node_t *node, uint32_t root, const float *x) {
    const feat_tree_node_t *nd = &node[root];
    while (nd->feature >= 0) {
        float v = x[nd->feature];
        uint32_t next = isnan(v) ? (nd->default_left ? nd->left : nd->right) : (v < nd->value ? nd->left : nd->right);
        nd = &node[next];
    }
    return nd->value;
}

#define BLOCK 64                /* rows walked through one tree before the next: its nodes stay in cache */
#define BLOCK_FLOATS 4096        /* the block's values in float, on the stack (16 KiB) */

/* Rows [b, b + k) of x, already float, each margin summed in tree order. */
static void block_f32(const feat_trees_t *m, const float *xf, size_t k, double *out) {
    float margin[BLOCK];
    for (size_t i = 0; i < k; i++) margin[i] = m->base_margin;
    for (size_t t = 0; t < m->ntrees; t++) /* per row, the same sum in the same order as one row alone */
        for (size_t i = 0; i < k; i++) margin[i] += leaf_f(m->node, m->root[t], xf + i * m->nfeatures);
    for (size_t i = 0; i < k; i++) out[i] = output(m, margin[i]);
}

void feat_trees_predict_f32(const feat_trees_t *m, const float *x, size_t n, double *out) {
    for (size_t b = 0; b < n; b += BLOCK) {
        size_t k = n - b < BLOCK ? n - b : BLOCK;
        block_f32(m, x + b * m->nfeatures, k, out + b);
    }
}

void feat_trees_predict_batch(const feat_trees_t *m, const double *x, size_t n, double *out) {
    size_t nf = m->nfeatures, rows = BLOCK_FLOATS / nf < BLOCK ? BLOCK_FLOATS / nf : BLOCK;
    if (!rows) { /* rows wider than the block: one at a time */
        for (size_t i = 0; i < n; i++) out[i] = feat_trees_predict(m, x + i * nf);
        return;
    }
    float xf[BLOCK_FLOATS];
    for (size_t b = 0; b < n; b += rows) {
        size_t k = n - b < rows ? n - b : rows;
        const double *xb = x + b * nf;
        for (size_t j = 0; j < k * nf; j++) xf[j] = (float)xb[j]; /* as the single-row walk compares */
        block_f32(m, xf, k, out + b);
    }
}
