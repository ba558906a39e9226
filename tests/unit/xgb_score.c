/*
 * tests/unit/xgb_score.c — scores rows with a model read by
 * feat_xgb_json_load, for test_trees.py to compare with XGBoost itself.
 *
 *   xgb_score MODEL.json < rows.csv     one row per line, comma-separated,
 *                                       an empty field or "nan" = missing
 * Prints "features N trees T nodes K objective O names a,b,..." and then one
 * prediction per row (%.9g).  A model featd refuses: its message on stderr,
 * exit 2.
 */
#include "train/xgb_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t k; buf && (k = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) { free(buf); buf = NULL; }
            buf = nb;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: xgb_score MODEL.json < rows.csv\n");
        return 2;
    }
    size_t len = 0;
    char *text = slurp(argv[1], &len);
    if (!text) {
        fprintf(stderr, "xgb_score: cannot read %s\n", argv[1]);
        return 2;
    }
    feat_xgb_model_t m;
    char err[256];
    if (feat_xgb_json_load(text, len, &m, err, sizeof(err))) {
        fprintf(stderr, "xgb_score: %s\n", err);
        free(text);
        return 2;
    }
    free(text);
    uint32_t nf = feat_trees_nfeatures(m.trees);
    printf("features %u trees %zu nodes %zu objective %s names ", nf, feat_trees_ntrees(m.trees),
           feat_trees_nnodes(m.trees), m.objective);
    for (size_t i = 0; i < m.nnames; i++) printf("%s%s", i ? "," : "", m.names[i]);
    printf("\n");
    size_t n = 0, cap = 1024;
    double *x = malloc(cap * nf * sizeof(double));
    char line[1 << 16];
    while (x && fgets(line, sizeof(line), stdin)) {
        if (n == cap) {
            double *nx = realloc(x, (cap *= 2) * nf * sizeof(double));
            if (!nx) break;
            x = nx;
        }
        char *p = line;
        for (uint32_t j = 0; j < nf; j++) {
            char *end = p;
            double v = strtod(p, &end);
            x[n * nf + j] = end == p ? NAN : v; /* empty field, "nan" parse as NaN too */
            p = strchr(end, ',');
            p = p ? p + 1 : end;
        }
        n++;
    }
    /* the batch (blocks of rows, tree by tree) must give each row what it gets alone */
    double *out = malloc((n + 1) * sizeof(double));
    if (x && out) feat_trees_predict_batch(m.trees, x, n, out);
    for (size_t i = 0; x && out && i < n; i++) {
        double one = feat_trees_predict(m.trees, x + i * nf);
        if (one != out[i]) {
            fprintf(stderr, "xgb_score: row %zu: %.9g alone, %.9g in a batch\n", i, one, out[i]);
            return 3;
        }
        printf("%.9g\n", out[i]);
    }
    free(out);
    free(x);
    feat_xgb_model_free(&m);
    return 0;
}
