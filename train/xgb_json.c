/*
 * train/xgb_json.c — XGBoost's JSON model format into the tree runtime.
 * See xgb_json.h.
 *
 * The parts read:
 *   learner.learner_model_param  base_score, num_feature, num_class,
 *                                num_target (strings holding numbers)
 *   learner.objective.name
 *   learner.feature_names        optional
 *   learner.gradient_booster     name "gbtree"; model.trees[], model.tree_info[]
 *   each tree                    left_children, right_children, split_indices,
 *                                split_conditions (a leaf's value at a leaf),
 *                                default_left, split_type (all 0: numeric)
 */
#include "train/xgb_json.h"
#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

typedef struct rd {
    const char *text;
    const feat_json_tok_t *tok;
    char *err;
    size_t errlen;
} rd_t;

/* The value of obj's member key, or -1 when absent, or -2 (err set) when
 * the key is there twice (readers differ on which one counts). */
static int get(rd_t *r, int obj, const char *key) {
    int found = -1;
    size_t klen = strlen(key);
    for (uint32_t k = 0, i = (uint32_t)obj + 1; k < r->tok[obj].size; k++) {
        const feat_json_tok_t *kt = &r->tok[i];
        if (feat_json_str_eq(r->text, kt, key, klen)) {
            if (found >= 0) {
                snprintf(r->err, r->errlen, "\"%s\" is given twice in one object", key);
                return -2;
            }
            found = (int)i + 1;
        }
        i = r->tok[i + 1].next; /* past the value */
    }
    return found;
}

/* The value of obj's member key, of type want; -1 with err set when absent, twice, or of another type. */
static int member(rd_t *r, int obj, const char *key, int want, const char *where) {
    int i = get(r, obj, key);
    if (i == -2) return -1;
    if (i < 0) {
        snprintf(r->err, r->errlen, "%s: no \"%s\"", where, key);
        return -1;
    }
    if (r->tok[i].type != want) {
        snprintf(r->err, r->errlen, "%s.%s: not %s", where, key,
                 want == FEAT_JSON_OBJECT ? "an object" : want == FEAT_JSON_ARRAY ? "an array" : "a string");
        return -1;
    }
    return i;
}

/* A number token, or a string holding one (learner_model_param's values). */
static int number(rd_t *r, int i, double *out) {
    const feat_json_tok_t *t = &r->tok[i];
    if (t->type == FEAT_JSON_NUMBER) return feat_json_double(r->text, t, out) == FEAT_OK;
    if (t->type != FEAT_JSON_STRING || t->escaped || t->end - t->start == 0 || t->end - t->start >= 64) return 0;
    char buf[64], *end;
    memcpy(buf, r->text + t->start, t->end - t->start);
    buf[t->end - t->start] = 0;
    *out = strtod(buf, &end);
    return *end == 0 && isfinite(*out);
}

/* learner_model_param's key as a number; def when absent. */
static int param(rd_t *r, int obj, const char *key, double def, double *out) {
    int i = get(r, obj, key);
    if (i == -2) return 0;
    if (i < 0) {
        *out = def;
        return 1;
    }
    if (number(r, i, out)) return 1;
    snprintf(r->err, r->errlen, "learner.learner_model_param.%s: not a number%s", key,
             r->tok[i].type == FEAT_JSON_STRING && r->text[r->tok[i].start] == '[' ? " (a vector: XGBoost 3's "
             "multi-output base score is not read)" : "");
    return 0;
}

/* Array member key of tree t, of exactly n elements (n = 0: any; *n set). */
static int tree_array(rd_t *r, int tree, const char *key, size_t t, uint32_t *n) {
    char where[48];
    snprintf(where, sizeof(where), "trees[%zu]", t);
    int a = member(r, tree, key, FEAT_JSON_ARRAY, where);
    if (a < 0) return -1;
    if (*n && r->tok[a].size != *n) {
        snprintf(r->err, r->errlen, "trees[%zu].%s: %u elements, where left_children has %u", t, key, r->tok[a].size,
                 *n);
        return -1;
    }
    *n = r->tok[a].size;
    return a;
}

/* Element k of array a, as an integer in [lo, hi]. */
static int int_elem(rd_t *r, int a, uint32_t k, int64_t lo, int64_t hi, int64_t *out) {
    const feat_json_tok_t *t = &r->tok[a + 1 + (int)k]; /* number arrays: one token per element */
    if (t->type == FEAT_JSON_TRUE || t->type == FEAT_JSON_FALSE) { /* default_left, some versions */
        *out = t->type == FEAT_JSON_TRUE;
    } else if (t->type != FEAT_JSON_NUMBER || feat_json_int64(r->text, t, out) != FEAT_OK) {
        return 0;
    }
    return *out >= lo && *out <= hi;
}

/* Every element of array a is a scalar (one token each): the layout int_elem relies on. */
static int flat(rd_t *r, int a) { return r->tok[a].next == (uint32_t)a + 1 + r->tok[a].size; }

static feat_err_t nomem(rd_t *r) {
    snprintf(r->err, r->errlen, "out of memory");
    return FEAT_ERR_NOMEM;
}

/* XGBoost before 1.4 put a binary:logitraw model's base score through the
 * logit (dmlc/xgboost#6517 made it the margin itself): such a file, by its
 * "version", is refused rather than scored 0.5 off. */
static int old_logitraw(rd_t *r) {
    int v = get(r, 0, "version");
    int64_t major = 0, minor = 0;
    if (v == -2) return 1;
    if (v >= 0 && r->tok[v].type == FEAT_JSON_ARRAY && r->tok[v].size >= 2 && flat(r, v) &&
        int_elem(r, v, 0, 0, 1000, &major) && int_elem(r, v, 1, 0, 1000, &minor) &&
        (major > 1 || (major == 1 && minor >= 4)))
        return 0;
    snprintf(r->err, r->errlen, "a binary:logitraw model saved by XGBoost before 1.4 (or with no \"version\"), "
             "whose base score meant something else: save it again with XGBoost 1.4 or later");
    return 1;
}

static feat_err_t load(rd_t *r, feat_xgb_model_t *out) {
    if (r->tok[0].type != FEAT_JSON_OBJECT) {
        snprintf(r->err, r->errlen, "not a JSON object");
        return FEAT_ERR_INVALID;
    }
    int learner = member(r, 0, "learner", FEAT_JSON_OBJECT, "the model");
    if (learner < 0) return FEAT_ERR_INVALID;
    int mp = member(r, learner, "learner_model_param", FEAT_JSON_OBJECT, "learner");
    int obj = mp < 0 ? -1 : member(r, learner, "objective", FEAT_JSON_OBJECT, "learner");
    int oname = obj < 0 ? -1 : member(r, obj, "name", FEAT_JSON_STRING, "learner.objective");
    int gb = oname < 0 ? -1 : member(r, learner, "gradient_booster", FEAT_JSON_OBJECT, "learner");
    int gbname = gb < 0 ? -1 : member(r, gb, "name", FEAT_JSON_STRING, "learner.gradient_booster");
    if (gbname < 0) return FEAT_ERR_INVALID;
    double base = 0.5, nfeat = 0, nclass = 0, ntarget = 1;
    if (!param(r, mp, "base_score", 0.5, &base) || !param(r, mp, "num_feature", 0, &nfeat) ||
        !param(r, mp, "num_class", 0, &nclass) || !param(r, mp, "num_target", 1, &ntarget))
        return FEAT_ERR_INVALID;
    if (nfeat < 1 || nfeat > 1e6 || nfeat != floor(nfeat)) {
        snprintf(r->err, r->errlen, "learner.learner_model_param.num_feature: %g is not a feature count", nfeat);
        return FEAT_ERR_INVALID;
    }
    if (nclass > 1 || ntarget != 1) {
        snprintf(r->err, r->errlen, "the model has %g classes and %g targets: only one output is served", nclass,
                 ntarget);
        return FEAT_ERR_INVALID;
    }
    const feat_json_tok_t *on = &r->tok[oname];
    size_t olen = on->end - on->start;
    if (on->escaped || olen >= sizeof(out->objective)) {
        snprintf(r->err, r->errlen, "learner.objective.name: not an objective featd serves");
        return FEAT_ERR_INVALID;
    }
    memcpy(out->objective, r->text + on->start, olen);
    out->objective[olen] = 0;
    feat_trees_link_t link;
    float margin;
    if (!strcmp(out->objective, "binary:logistic") || !strcmp(out->objective, "reg:logistic") ||
        !strcmp(out->objective, "binary:logitraw")) {
        if (strcmp(out->objective, "binary:logitraw") && !(base > 0 && base < 1)) {
            snprintf(r->err, r->errlen, "learner.learner_model_param.base_score: %g is not a probability", base);
            return FEAT_ERR_INVALID;
        }
        int raw = !strcmp(out->objective, "binary:logitraw");
        if (raw && old_logitraw(r)) return FEAT_ERR_INVALID;
        link = raw ? FEAT_TREES_IDENTITY : FEAT_TREES_LOGISTIC;
        /* XGBoost's ProbToMargin, in float; logitraw's base score is a margin already */
        margin = raw ? (float)base : -logf(1.0f / (float)base - 1.0f);
    } else if (!strcmp(out->objective, "reg:squarederror")) {
        link = FEAT_TREES_IDENTITY;
        margin = (float)base;
    } else {
        snprintf(r->err, r->errlen, "learner.objective.name: \"%s\" is not served (binary:logistic, reg:logistic, "
                 "binary:logitraw and reg:squarederror are)", out->objective);
        return FEAT_ERR_INVALID;
    }
    if (!feat_json_str_eq(r->text, &r->tok[gbname], "gbtree", 6)) {
        snprintf(r->err, r->errlen, "learner.gradient_booster.name: only gbtree models are served (dart weighs its "
                 "trees at prediction; gblinear has none)");
        return FEAT_ERR_INVALID;
    }
    int model = member(r, gb, "model", FEAT_JSON_OBJECT, "learner.gradient_booster");
    int trees = model < 0 ? -1 : member(r, model, "trees", FEAT_JSON_ARRAY, "learner.gradient_booster.model");
    if (trees < 0) return FEAT_ERR_INVALID;
    size_t ntrees = r->tok[trees].size;
    int info = get(r, model, "tree_info");
    if (info == -2) return FEAT_ERR_INVALID;
    if (info >= 0) {
        int64_t g;
        if (r->tok[info].type != FEAT_JSON_ARRAY || r->tok[info].size != ntrees || !flat(r, info)) {
            snprintf(r->err, r->errlen, "learner.gradient_booster.model.tree_info: not one group per tree");
            return FEAT_ERR_INVALID;
        }
        for (uint32_t k = 0; k < ntrees; k++)
            if (!int_elem(r, info, k, 0, 0, &g)) {
                snprintf(r->err, r->errlen, "learner.gradient_booster.model.tree_info[%u]: a tree of another output "
                         "than the first", k);
                return FEAT_ERR_INVALID;
            }
    }
    /* names (optional) */
    int names = get(r, learner, "feature_names");
    if (names == -2) return FEAT_ERR_INVALID;
    if (names >= 0 && r->tok[names].type == FEAT_JSON_ARRAY && r->tok[names].size) {
        if (r->tok[names].size != (uint32_t)nfeat || !flat(r, names)) {
            if (!flat(r, names)) snprintf(r->err, r->errlen, "learner.feature_names: not an array of strings");
            else snprintf(r->err, r->errlen, "learner.feature_names: %u names for %g features", r->tok[names].size, nfeat);
            return FEAT_ERR_INVALID;
        }
        out->names = calloc(r->tok[names].size, sizeof(char *));
        if (!out->names) return nomem(r);
        out->nnames = r->tok[names].size;
        for (uint32_t k = 0; k < r->tok[names].size; k++) {
            const feat_json_tok_t *t = &r->tok[names + 1 + (int)k];
            size_t n = t->end - t->start, got = 0;
            if (t->type != FEAT_JSON_STRING) {
                snprintf(r->err, r->errlen, "learner.feature_names[%u]: not a string", k);
                return FEAT_ERR_INVALID;
            }
            if (!(out->names[k] = malloc(n + 1))) return nomem(r);
            if (feat_json_unescape(r->text, t, out->names[k], n + 1, &got) != FEAT_OK) got = 0;
            out->names[k][got] = 0;
        }
    }
    /* the trees */
    uint32_t *sizes = calloc(ntrees + 1, sizeof(*sizes));
    size_t total = 0;
    if (!sizes) return nomem(r);
    feat_err_t rc = FEAT_ERR_INVALID;
    feat_tree_node_t *nodes = NULL;
    int *tok_tree = calloc(ntrees + 1, sizeof(int));
    if (!tok_tree) {
        free(sizes);
        return nomem(r);
    }
    int t_i = trees + 1;
    for (size_t t = 0; t < ntrees; t++, t_i = (int)r->tok[t_i].next) {
        if (r->tok[t_i].type != FEAT_JSON_OBJECT) {
            snprintf(r->err, r->errlen, "trees[%zu]: not an object", t);
            goto done;
        }
        tok_tree[t] = t_i;
        uint32_t n = 0;
        if (tree_array(r, t_i, "left_children", t, &n) < 0) goto done;
        if (!n) {
            snprintf(r->err, r->errlen, "trees[%zu]: no nodes", t);
            goto done;
        }
        sizes[t] = n;
        total += n;
        if (total > 100000000) {
            snprintf(r->err, r->errlen, "more than 100,000,000 nodes");
            goto done;
        }
    }
    nodes = malloc((total + 1) * sizeof(*nodes));
    if (!nodes) {
        rc = nomem(r);
        goto done;
    }
    size_t at = 0;
    for (size_t t = 0; t < ntrees; t++) {
        uint32_t n = sizes[t];
        int lc = tree_array(r, tok_tree[t], "left_children", t, &n);
        int rch = lc < 0 ? -1 : tree_array(r, tok_tree[t], "right_children", t, &n);
        int si = rch < 0 ? -1 : tree_array(r, tok_tree[t], "split_indices", t, &n);
        int sc = si < 0 ? -1 : tree_array(r, tok_tree[t], "split_conditions", t, &n);
        int dl = sc < 0 ? -1 : tree_array(r, tok_tree[t], "default_left", t, &n);
        if (dl < 0) goto done;
        if (!flat(r, lc) || !flat(r, rch) || !flat(r, si) || !flat(r, sc) || !flat(r, dl)) {
            snprintf(r->err, r->errlen, "trees[%zu]: an array holds something other than numbers", t);
            goto done;
        }
        int st = get(r, tok_tree[t], "split_type");
        if (st == -2) goto done;
        if (st >= 0 && (r->tok[st].type != FEAT_JSON_ARRAY || !flat(r, st) || r->tok[st].size != n)) {
            snprintf(r->err, r->errlen, "trees[%zu].split_type: not one number per node", t);
            goto done;
        }
        for (uint32_t k = 0; k < n; k++) {
            int64_t l, rr, f, d, ty = 0;
            double c;
            if (st >= 0 && (!int_elem(r, st, k, 0, 1, &ty) || ty != 0)) {
                snprintf(r->err, r->errlen, "trees[%zu]: node %u is a categorical split (not served)", t, k);
                goto done;
            }
            /* XGBoost goes to left + 1 for a value not below the condition and never reads right_children:
             * a split whose right child is anything else would score differently here */
            if (!int_elem(r, lc, k, -1, (int64_t)n - 1, &l) || !int_elem(r, rch, k, -1, (int64_t)n - 1, &rr) ||
                !int_elem(r, si, k, 0, l < 0 ? INT32_MAX : (int64_t)nfeat - 1, &f) || !int_elem(r, dl, k, 0, 1, &d) ||
                !number(r, sc + 1 + (int)k, &c) || (l < 0) != (rr < 0) || (l >= 0 && rr != l + 1)) {
                snprintf(r->err, r->errlen, "trees[%zu]: node %u: a child, the feature index, the condition or the "
                         "default direction is out of range", t, k);
                goto done;
            }
            feat_tree_node_t *nd = &nodes[at + k];
            nd->value = (float)c;
            nd->feature = l < 0 ? -1 : (int32_t)f;
            nd->left = l < 0 ? 0 : (uint32_t)l;
            nd->right = rr < 0 ? 0 : (uint32_t)rr;
            nd->default_left = (uint8_t)d;
        }
        at += n;
    }
    feat_trees_spec_t spec = {.nfeatures = (uint32_t)nfeat, .link = link, .base_margin = margin, .ntrees = ntrees,
                              .tree_nodes = sizes, .nodes = nodes};
    rc = ntrees ? feat_trees_new(&spec, &out->trees, r->err, r->errlen) : FEAT_ERR_INVALID;
    if (!ntrees) snprintf(r->err, r->errlen, "the model has no trees");
done:
    free(sizes);
    free(tok_tree);
    free(nodes);
    return rc;
}

feat_err_t feat_xgb_json_load(const char *text, size_t len, feat_xgb_model_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (len >= UINT32_MAX) {
        snprintf(err, errlen, "a %zu-byte model: larger than 4 GiB", len);
        return FEAT_ERR_INVALID;
    }
    size_t ntoks = len / 2 + 64, ntok = 0, off = 0;
    feat_json_tok_t *tok = malloc(ntoks * sizeof(*tok));
    if (!tok) {
        snprintf(err, errlen, "out of memory for a %zu-byte model", len);
        return FEAT_ERR_NOMEM;
    }
    feat_err_t rc = feat_json_parse(text, len, tok, ntoks, MAX_DEPTH, &ntok, &off);
    if (rc) {
        snprintf(err, errlen, "not JSON%s (at byte %zu)", rc == FEAT_ERR_TOO_LARGE ? ", or nested too deep" : "", off);
        free(tok);
        return FEAT_ERR_INVALID;
    }
    rd_t r = {text, tok, err, errlen};
    rc = load(&r, out);
    free(tok);
    if (rc) feat_xgb_model_free(out);
    return rc;
}

void feat_xgb_model_free(feat_xgb_model_t *m) {
    if (!m) return;
    feat_trees_free(m->trees);
    for (size_t i = 0; i < m->nnames; i++) free(m->names[i]);
    free(m->names);
    memset(m, 0, sizeof(*m));
}
