/*
 * train/meta.c — a version's metadata: the struct a training run fills
 * (vmeta_t), the JSON document stored in the version's record, and the
 * summary list reports (vinfo_t), parsed from a stored document or filled
 * from a new version's struct.  The document's keys are an on-disk format:
 * stores written by earlier featd load unchanged.
 */
#include "train/models_internal.h"

#include "common/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ---------------------------------------------------------------------------------- */

static const char *const eval_names[5] = {"auc", "log_loss", "accuracy", "rmse", "mae"};

static void eval_values(const feat_eval_t *e, double v[5]) {
    v[0] = e->auc;
    v[1] = e->logloss;
    v[2] = e->accuracy;
    v[3] = e->rmse;
    v[4] = e->mae;
}

/* "key":{...} with the finite metrics only. */
static void put_eval(feat_buf_t *b, const char *key, const feat_eval_t *e) {
    double v[5];
    eval_values(e, v);
    feat_buf_printf(b, "\"%s\":{", key);
    int first = 1;
    for (int i = 0; i < 5; i++) {
        if (!isfinite(v[i])) continue;
        feat_buf_printf(b, "%s\"%s\":%.10g", first ? "" : ",", eval_names[i], v[i]);
        first = 0;
    }
    feat_buf_putc(b, '}');
}

void feat_meta_params_json(const vmeta_t *m, feat_buf_t *b) {
    if (!strncmp(m->task, "gbdt_", 5)) {
        feat_buf_printf(b, "{\"learning_rate\":%g,\"l2\":%g,\"trees\":%u,\"max_depth\":%u,\"subsample\":%g,"
                           "\"min_child_weight\":%g,\"early_stopping_rounds\":%u,\"seed\":%llu,\"configs_tried\":%zu}",
                        m->hyper.learning_rate, m->hyper.l2, m->hyper.trees, m->hyper.max_depth, m->hyper.subsample,
                        m->hyper.min_child_weight, m->hyper.early_stopping, (unsigned long long)m->hyper.seed,
                        m->configs_tried);
        return;
    }
    feat_buf_printf(b, "{\"learning_rate\":%g,\"l2\":%g,\"epochs\":%u,\"hidden\":%u,\"batch_size\":%u,"
                       "\"activation\":\"%s\",\"seed\":%llu,\"configs_tried\":%zu}",
                    m->hyper.learning_rate, m->hyper.l2, m->hyper.epochs, m->hyper.hidden, m->hyper.batch_size,
                    feat_activation_name((feat_activation_t)m->hyper.activation), (unsigned long long)m->hyper.seed,
                    m->configs_tried);
}

void feat_meta_json(const vmeta_t *m, feat_buf_t *b) {
    feat_buf_printf(b, "{\"model\":\"%s\",\"version\":%llu,\"created_ms\":%lld,\"trigger\":\"%s\",\"reason\":",
                    m->model, (unsigned long long)m->version, (long long)m->created_ms, feat_trigger_name(m->trigger));
    feat_buf_json_str(b, m->reason, strlen(m->reason));
    feat_buf_printf(b, ",\"task\":\"%s\",\"table\":\"%s\",\"features\":[", m->task, m->table);
    for (size_t j = 0; j < m->nfeatures; j++)
        feat_buf_printf(b, "%s{\"name\":\"%s\",\"type\":\"%s\"}", j ? "," : "", m->features[j].name,
                        feat_ftype_name(m->features[j].type));
    feat_buf_puts(b, "],\"params\":");
    feat_meta_params_json(m, b);
    int trees = !strncmp(m->task, "gbdt_", 5);
    feat_buf_printf(b, ",\"preprocessing\":{\"input_dim\":%zu,\"top_k\":%lld,\"standardize\":%s,"
                       "\"impute\":\"%s\"},",
                    m->input_dim, (long long)m->top_k, trees ? "false" : "true",
                    trees ? "none: a missing value takes each split's default direction"
                          : "training mean + missing indicator");
    put_eval(b, "train_metrics", &m->train);
    feat_buf_putc(b, ',');
    put_eval(b, "validation_metrics", &m->valid);
    feat_buf_putc(b, ',');
    put_eval(b, "champion_validation_metrics", &m->champion);
    feat_buf_printf(b, ",\"champion_version\":%llu,\"beats_champion\":%s,"
                       "\"data\":{\"from_ms\":%lld,\"to_ms\":%lld,\"rows\":%zu,\"train_rows\":%zu,\"validation_rows\":%zu,"
                       "\"missing_values\":%llu},\"device\":\"%s\",\"device_note\":",
                    (unsigned long long)m->champion_version,
                    m->beats_champion < 0 ? "null" : m->beats_champion ? "true" : "false", (long long)m->from_ms,
                    (long long)m->to_ms, m->rows, m->train_rows, m->validation_rows,
                    (unsigned long long)m->missing_values, m->device);
    feat_buf_json_str(b, m->device_note, strlen(m->device_note));
    feat_buf_printf(b, ",\"train_seconds\":%.6g,\"rows_per_second\":%.6g,\"run_seconds\":%.6g}", m->train_seconds,
                    m->rows_per_second, m->run_seconds);
}

/* ---- the summary ---------------------------------------------------------------------------- */

/* x as the document holds it (printed with digits significant digits, read
 * back), so a new version lists what it will list after a restart. */
static double as_stored(double x, int digits) {
    if (!isfinite(x)) return NAN;
    char s[40];
    snprintf(s, sizeof(s), "%.*g", digits, x);
    return strtod(s, NULL);
}

static void eval_as_stored(feat_eval_t *out, const feat_eval_t *e) {
    out->auc = as_stored(e->auc, 10);
    out->logloss = as_stored(e->logloss, 10);
    out->accuracy = as_stored(e->accuracy, 10);
    out->rmse = as_stored(e->rmse, 10);
    out->mae = as_stored(e->mae, 10);
}

feat_err_t feat_vinfo_from_meta(vinfo_t *v, const vmeta_t *m, const char *json, size_t len) {
    memset(v, 0, sizeof(*v));
    v->version = m->version;
    v->created_ms = m->created_ms;
    snprintf(v->trigger, sizeof(v->trigger), "%s", feat_trigger_name(m->trigger));
    snprintf(v->task, sizeof(v->task), "%s", m->task);
    snprintf(v->device, sizeof(v->device), "%s", m->device);
    snprintf(v->table, sizeof(v->table), "%s", m->table);
    snprintf(v->reason, sizeof(v->reason), "%s", m->reason);
    eval_as_stored(&v->train, &m->train);
    eval_as_stored(&v->valid, &m->valid);
    v->n_train = m->train_rows;
    v->n_valid = m->validation_rows;
    v->from_ms = m->from_ms;
    v->to_ms = m->to_ms;
    v->seconds = as_stored(m->train_seconds, 6);
    feat_buf_t p = FEAT_BUF_INIT;
    feat_meta_params_json(m, &p);
    v->params = p.oom ? NULL : strndup(p.data, p.len);
    feat_buf_free(&p);
    v->json = strndup(json, len);
    v->features = m->nfeatures ? calloc(m->nfeatures, sizeof(char *)) : NULL;
    int nomem = !v->params || !v->json || (m->nfeatures && !v->features);
    for (size_t j = 0; !nomem && j < m->nfeatures; j++)
        if ((v->features[v->nfeatures] = strdup(m->features[j].name))) v->nfeatures++;
        else nomem = 1;
    if (nomem) feat_vinfo_free(v);
    return nomem ? FEAT_ERR_NOMEM : FEAT_OK;
}

/* ---- reading a stored document ----------------------------------------------------------------- */

static double jnum(const char *s, const feat_json_tok_t *t, int obj, const char *k) {
    int i = feat_json_obj_get(s, t, obj, k);
    double d;
    return i > 0 && feat_json_double(s, &t[i], &d) == FEAT_OK ? d : NAN;
}

static void jstr(const char *s, const feat_json_tok_t *t, int obj, const char *k, char *out, size_t cap) {
    int i = feat_json_obj_get(s, t, obj, k);
    out[0] = 0;
    if (i > 0 && t[i].type == FEAT_JSON_STRING) {
        size_t n;
        out[feat_json_unescape(s, &t[i], out, cap - 1, &n) == FEAT_OK ? n : 0] = 0;
    }
}

static void jeval(const char *s, const feat_json_tok_t *t, int obj, const char *k, feat_eval_t *e) {
    int i = feat_json_obj_get(s, t, obj, k);
    double v[5];
    for (int j = 0; j < 5; j++) v[j] = jnum(s, t, i, eval_names[j]);
    e->auc = v[0];
    e->logloss = v[1];
    e->accuracy = v[2];
    e->rmse = v[3];
    e->mae = v[4];
}

feat_err_t feat_vinfo_parse(vinfo_t *v) {
    size_t len = strlen(v->json);
    feat_json_tok_t *t = malloc(4096 * sizeof(*t));
    if (!t) return FEAT_ERR_NOMEM;
    if (feat_json_parse(v->json, len, t, 4096, 16, NULL, NULL) != FEAT_OK) {
        free(t);
        return FEAT_ERR_CORRUPT;
    }
    v->created_ms = (int64_t)jnum(v->json, t, 0, "created_ms");
    jstr(v->json, t, 0, "trigger", v->trigger, sizeof(v->trigger));
    jstr(v->json, t, 0, "task", v->task, sizeof(v->task));
    jstr(v->json, t, 0, "table", v->table, sizeof(v->table));
    jstr(v->json, t, 0, "reason", v->reason, sizeof(v->reason));
    jstr(v->json, t, 0, "device", v->device, sizeof(v->device));
    jeval(v->json, t, 0, "train_metrics", &v->train);
    jeval(v->json, t, 0, "validation_metrics", &v->valid);
    int d = feat_json_obj_get(v->json, t, 0, "data");
    v->n_train = (uint64_t)jnum(v->json, t, d, "train_rows");
    v->n_valid = (uint64_t)jnum(v->json, t, d, "validation_rows");
    v->from_ms = (int64_t)jnum(v->json, t, d, "from_ms");
    v->to_ms = (int64_t)jnum(v->json, t, d, "to_ms");
    v->seconds = jnum(v->json, t, 0, "train_seconds");
    int p = feat_json_obj_get(v->json, t, 0, "params");
    if (p > 0 && t[p].type == FEAT_JSON_OBJECT) v->params = strndup(v->json + t[p].start, t[p].end - t[p].start);
    int f = feat_json_obj_get(v->json, t, 0, "features");
    if (f > 0 && t[f].type == FEAT_JSON_ARRAY && t[f].size) {
        v->features = calloc(t[f].size, sizeof(char *));
        for (int i = f + 1, k = 0; v->features && k < (int)t[f].size; k++, i = (int)t[i].next) {
            char name[FEAT_MAX_NAME + 1];
            jstr(v->json, t, i, "name", name, sizeof(name));
            if ((v->features[v->nfeatures] = strdup(name))) v->nfeatures++;
        }
    }
    free(t);
    return FEAT_OK;
}

void feat_vinfo_free(vinfo_t *v) {
    free(v->json);
    free(v->params);
    for (size_t i = 0; i < v->nfeatures; i++) free(v->features[i]);
    free(v->features);
    memset(v, 0, sizeof(*v));
}
