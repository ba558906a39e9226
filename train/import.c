/*
 * train/import.c — a model trained elsewhere, read into a feat_model_t
 * that featd serves like its own (feat_models_import_file, models.h; the run
 * that registers it is the engine's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/models_internal.h"
#include "train/xgb_json.h"

/* The type of the model's feature called name (TABLE.FEATURE: another
 * table's), 0 with err when it is not one of the model's features. */
static feat_ftype_t feature_type(feat_models_t *models, const mstate_t *s, const char *name, char *err, size_t errlen) {
    const feat_model_conf_t *mc = s->conf;
    size_t i;
    for (i = 0; i < mc->nfeatures && strcmp(mc->features[i], name); i++) {}
    if (i == mc->nfeatures) {
        snprintf(err, errlen, "feature \"%.100s\" is not one of model %s's features (model.%s.features)", name,
                 mc->name, mc->name);
        return 0;
    }
    const feat_table_t *t = s->t;
    const char *fname = name, *dot = strchr(name, '.');
    if (dot) {
        char tn[FEAT_MAX_NAME + 1];
        snprintf(tn, sizeof(tn), "%.*s", (int)(dot - name), name);
        t = feat_store_table(models->st, tn);
        fname = dot + 1;
    }
    int f = t ? feat_table_feature_index(t->conf, fname, strlen(fname)) : -1;
    if (f < 0) {
        snprintf(err, errlen, "feature \"%.100s\" is in no table of this store", name);
        return 0;
    }
    return t->conf->features[f].type;
}

feat_err_t feat_import_xgboost(feat_models_t *models, const mstate_t *s, const void *data, size_t len,
                               const char *const *features, size_t nfeatures, feat_model_t **out, char *err,
                               size_t errlen) {
    *out = NULL;
    feat_xgb_model_t x;
    feat_err_t rc = feat_xgb_json_load(data, len, &x, err, errlen);
    if (rc) return rc;
    const char *obj = x.objective;
    size_t nf = feat_trees_nfeatures(x.trees);
    int binary = !strcmp(obj, "binary:logistic") || !strcmp(obj, "reg:logistic");
    feat_feature_def_t *defs = NULL;
    rc = FEAT_ERR_INVALID;
    if (!strcmp(obj, "binary:logitraw")) {
        snprintf(err, errlen, "objective binary:logitraw scores margins, not probabilities; save the model with "
                              "binary:logistic");
        goto done;
    }
    if (binary != s->binary) {
        snprintf(err, errlen, "the file's objective %s is a %s's; model %s (task %s) is a %s", obj,
                 binary ? "classifier" : "regression", s->conf->name, s->conf->task,
                 s->binary ? "classifier" : "regression");
        goto done;
    }
    if (!nfeatures && !x.nnames) {
        snprintf(err, errlen, "the file names no features (learner.feature_names); give the %zu input features in "
                              "column order", nf);
        goto done;
    }
    if (nfeatures && nfeatures != nf) {
        snprintf(err, errlen, "%zu features given; the model reads %zu", nfeatures, nf);
        goto done;
    }
    if (!(defs = calloc(nf, sizeof(*defs)))) {
        rc = FEAT_ERR_NOMEM;
        goto done;
    }
    for (size_t j = 0; j < nf; j++) {
        defs[j].name = nfeatures ? features[j] : x.names[j];
        defs[j].type = feature_type(models, s, defs[j].name, err, errlen);
        if (!defs[j].type) goto done;
        if (defs[j].type == FEAT_FT_STRING) {
            snprintf(err, errlen, "feature \"%.100s\" is a string; an XGBoost model reads numbers", defs[j].name);
            goto done;
        }
        for (size_t k = 0; k < j; k++)
            if (!strcmp(defs[k].name, defs[j].name)) {
                snprintf(err, errlen, "feature \"%.100s\" is named twice", defs[j].name);
                goto done;
            }
    }
    feat_prep_conf_t pc;
    feat_prep_conf_init(&pc);
    pc.raw = 1;
    pc.missing_indicators = 0;
    feat_prep_t *prep = NULL;
    if ((rc = feat_prep_fit(&pc, defs, nf, NULL, 0, &prep)) != FEAT_OK) { /* numeric only: one column each */
        snprintf(err, errlen, "cannot build the model's inputs: %s", feat_err_str(rc));
        goto done;
    }
    feat_model_info_t info;
    memset(&info, 0, sizeof(info));
    feat_hyper_init(&info.hyper);
    info.hyper.trees = (uint32_t)(feat_trees_ntrees(x.trees) < 10000 ? feat_trees_ntrees(x.trees) : 10000);
    info.task = binary ? FEAT_TASK_BINARY : FEAT_TASK_REGRESSION;
    info.label = s->conf->name;
    info.backend = FEAT_BACKEND_CPU;
    feat_eval_clear(&info.train);
    feat_eval_clear(&info.valid);
    feat_trees_t *trees = x.trees;
    x.trees = NULL;
    rc = feat_model_from_trees(prep, trees, &info, out);
    if (rc) snprintf(err, errlen, "cannot build the model: %s", feat_err_str(rc));
done:
    free(defs);
    feat_xgb_model_free(&x);
    return rc;
}
