/*
 * serve/models_rpc.c — Predict and the model registry's admin methods.
 *
 * Predict by entity_rows (one key per entity kind, models over several
 * tables) reads each table's features with its entity's key, without the
 * score cache.  Predict by entity keys: for each key the cache may hold the score this
 * model version computed from the entity's current row (see cache.h); the
 * rest are read with feat_online_lookup() — the same code and cache
 * GetOnlineFeatures uses — turned into raw rows (a feature that is not
 * PRESENT is missing and imputed by the model's preprocessing), scored in one
 * batch, and cached.  Predict by raw rows checks each value's type against
 * the model's schema.  Either way the reply names the one version that
 * produced every score (the handler holds a reference to it for the whole
 * call, so a concurrent promote never mixes versions or frees a model in
 * use), and the predictions go to the prediction log (predlog.h) unless the
 * request is a batch scoring job.
 */
#include "common/clock.h"
#include "common/hash.h"
#include "featd/v1/admin.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"
#include "ingest/cluster.h"
#include "serve/cache.h"
#include "serve/lookup.h"
#include "serve/predlog.h"
#include "serve/forward.h"
#include "serve/svc.h"
#include "train/models.h"
#include "train/trainset.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The model version a request names, or NULL with the status and message. */
static feat_loaded_t *acquire(feat_serve_t *sv, feat_rpc_call_t *call, const char *model, const char *alias,
                              uint64_t version, feat_err_t *err) {
    if (!model || !*model) {
        *err = ERR(call, FEAT_ERR_INVALID, "model is required");
        return NULL;
    }
    const feat_model_conf_t *mc = feat_serve_model(sv, model);
    if (!mc) {
        *err = ERR(call, FEAT_ERR_NOT_FOUND, "unknown model \"%.64s\"", model);
        return NULL;
    }
    feat_loaded_t *l = feat_models_acquire(sv->models, model, alias, version, err);
    if (l) return l;
    if (*err == FEAT_ERR_INVALID)
        *err = ERR(call, FEAT_ERR_INVALID, "alias must be \"champion\" or \"challenger\", not \"%.32s\"", alias);
    else if (version)
        *err = ERR(call, FEAT_ERR_NOT_FOUND, "model %s has no version %llu", mc->name, (unsigned long long)version);
    else
        *err = ERR(call, FEAT_ERR_NOT_FOUND, "model %s has no %s yet (train one: featctl retrain %s)", mc->name,
                   alias && *alias ? alias : "champion", mc->name);
    return NULL;
}

/* ---- Predict ----------------------------------------------------------------------------------- */

/* Raw rows of the keys cache misses need, read from the online table. */
/* A row with a feature no instance could read (FEAT_ST_UNAVAILABLE or
 * FEAT_ST_RESTORING) is not scored: that status, else 0. */
static uint8_t row_status(const feat_value_t *row, size_t nf) {
    uint8_t st = 0;
    for (size_t j = 0; j < nf; j++)
        if (row[j].status == FEAT_ST_UNAVAILABLE || (row[j].status == FEAT_ST_RESTORING && !st)) st = row[j].status;
    return st;
}

static feat_err_t score_keys(feat_serve_t *sv, feat_rpc_call_t *call, const feat_loaded_t *l, char **keys, size_t n,
                             int64_t now, double *scores, uint32_t *missing, size_t *klens, uint8_t *status) {
    const feat_model_t *m = feat_loaded_model(l);
    const feat_table_t *t = feat_loaded_table(l);
    uint32_t midx = feat_loaded_index(l);
    uint64_t ver = feat_loaded_version(l);
    size_t nf = feat_loaded_nfeatures(l);
    int64_t ttl = t->conf->ttl_ms;
    size_t *todo = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    uint64_t *tickets = feat_arena_alloc(call->arena, n * sizeof(uint64_t) + 1);
    int *put = feat_arena_alloc(call->arena, n * sizeof(int) + 1);
    const char **tkeys = feat_arena_alloc(call->arena, n * sizeof(char *) + 1);
    size_t *tlens = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    if (!todo || !tickets || !put || !tkeys || !tlens) return FEAT_ERR_NOMEM;
    /* a score over aggregated features moves with the clock: not cached (the
     * aggregates themselves are, per tile, by feat_online_lookup) */
    /* nor in a cluster: another instance's writes do not reach this cache, and a
     * partition restoring here gives rows that are not scored */
    int cached = sv->cache != NULL && feat_cluster_mode(sv->cluster) == FEAT_CLUSTER_SINGLE;
    for (size_t j = 0; cached && j < nf; j++)
        if (feat_feature_is_agg(t->conf, feat_loaded_fidx(l)[j])) cached = 0;
    size_t nt = 0;
    for (size_t k = 0; k < n; k++) {
        klens[k] = strlen(keys[k]);
        int r = cached ? feat_cache_get_score(sv->cache, t, keys[k], klens[k], midx, ver, now, &scores[k],
                                                 &missing[k], &tickets[nt])
                          : FEAT_CACHE_BYPASS;
        if (r == FEAT_CACHE_HIT) continue;
        put[nt] = r == FEAT_CACHE_MISS;
        tkeys[nt] = keys[k];
        tlens[nt] = klens[k];
        todo[nt++] = k;
    }
    if (!nt) return FEAT_OK;
    feat_value_t *vals = feat_arena_alloc(call->arena, nt * nf * sizeof(feat_value_t) + 1);
    feat_raw_t *raw = feat_arena_alloc(call->arena, nt * nf * sizeof(feat_raw_t) + 1);
    double *out = feat_arena_alloc(call->arena, nt * sizeof(double));
    int64_t *until = feat_arena_alloc(call->arena, nt * sizeof(int64_t));
    size_t scratch_len = feat_model_scratch_size(m);
    void *scratch = feat_arena_alloc(call->arena, scratch_len + 1);
    if (!vals || !raw || !out || !until || !scratch) return FEAT_ERR_NOMEM;
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT;
    feat_err_t rc =
        featd_svc_online_lookup(sv, call, t, nt, tkeys, tlens, feat_loaded_fidx(l), nf, now, vals, &ls, sv->peer);
    if (rc) {
        feat_lookup_scratch_free(&ls);
        return ERR(call, rc, "online read failed: %s", feat_err_str(rc));
    }
    for (size_t i = 0; i < nt; i++) {
        uint32_t miss = 0;
        int64_t u = INT64_MAX;
        for (size_t j = 0; j < nf; j++) {
            const feat_value_t *v = &vals[i * nf + j];
            raw[i * nf + j] = feat_raw_from_value(v);
            if (v->status != FEAT_ST_PRESENT) miss++;
            else if (ttl > 0 && v->ts + ttl < u) u = v->ts + ttl; /* the score changes when this value expires */
        }
        missing[todo[i]] = miss;
        status[todo[i]] = row_status(&vals[i * nf], nf);
        until[i] = u;
    }
    rc = feat_model_predict_batch(m, raw, nt, scratch, scratch_len, out);
    feat_lookup_scratch_free(&ls); /* string values point into it: predict first */
    if (rc) return ERR(call, FEAT_ERR_CORRUPT, "prediction failed: %s", feat_err_str(rc));
    for (size_t i = 0; i < nt; i++) {
        scores[todo[i]] = status[todo[i]] ? 0.0 : out[i];
        if (cached && put[i] && !status[todo[i]])
            feat_cache_put_score(sv->cache, t, tkeys[i], tlens[i], midx, ver, out[i], missing[todo[i]], until[i],
                                 tickets[i]);
    }
    return FEAT_OK;
}

/* Scores by entity_rows: each group of the version's features (one table,
 * one entity) is read with that entity's key from every row.  No score
 * cache: a cached score is keyed by one entity only.  keys/klens get each
 * row's key of the model's own table's entity (the Prediction's entity_key). */
static feat_err_t score_entity_rows(feat_serve_t *sv, feat_rpc_call_t *call, const feat_loaded_t *l,
                                    Featd__V1__EntityKeys *const *rows, size_t n, int64_t now, double *scores,
                                    uint32_t *missing, const char **keys, size_t *klens, uint8_t *status) {
    const feat_model_t *m = feat_loaded_model(l);
    size_t nf = feat_loaded_nfeatures(l), ng = feat_loaded_ngroups(l);
    const feat_loaded_group_t *groups = feat_loaded_groups(l);
    feat_err_t rc = featd_svc_row_keys(sv, call, rows, n, feat_loaded_table(l)->conf->entity, keys, klens);
    if (rc) return rc;
    const char **gk = feat_arena_alloc(call->arena, n * sizeof(char *) + 1);
    size_t *gl = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    feat_value_t *vals = feat_arena_alloc(call->arena, n * nf * sizeof(feat_value_t) + 1);
    feat_raw_t *raw = feat_arena_alloc(call->arena, n * nf * sizeof(feat_raw_t) + 1);
    feat_lookup_scratch_t *ls = feat_arena_calloc(call->arena, (ng + 1) * sizeof(feat_lookup_scratch_t));
    size_t scratch_len = feat_model_scratch_size(m);
    void *scratch = feat_arena_alloc(call->arena, scratch_len + 1);
    if (!gk || !gl || !vals || !raw || !ls || !scratch) return FEAT_ERR_NOMEM;
    for (size_t g = 0; g < ng && !rc; g++) { /* every key checked before any read */
        if (strcmp(groups[g].entity, feat_loaded_table(l)->conf->entity))
            rc = featd_svc_row_keys(sv, call, rows, n, groups[g].entity, gk, gl);
    }
    for (size_t g = 0; g < ng && !rc; g++) {
        const feat_loaded_group_t *gr = &groups[g];
        if (strcmp(gr->entity, feat_loaded_table(l)->conf->entity) == 0) {
            memcpy(gk, keys, n * sizeof(char *));
            memcpy(gl, klens, n * sizeof(size_t));
        } else if ((rc = featd_svc_row_keys(sv, call, rows, n, gr->entity, gk, gl))) {
            break;
        }
        rc = featd_svc_lookup_rows(sv, call, gr->t, n, gk, gl, gr->fidx, gr->pos, gr->n, nf, now, vals, &ls[g],
                                   sv->peer);
    }
    for (size_t i = 0; !rc && i < n; i++) {
        uint32_t miss = 0;
        for (size_t j = 0; j < nf; j++) {
            raw[i * nf + j] = feat_raw_from_value(&vals[i * nf + j]);
            miss += vals[i * nf + j].status != FEAT_ST_PRESENT;
        }
        missing[i] = miss;
        status[i] = row_status(&vals[i * nf], nf);
    }
    if (!rc && (rc = feat_model_predict_batch(m, raw, n, scratch, scratch_len, scores)))
        rc = ERR(call, FEAT_ERR_CORRUPT, "prediction failed: %s", feat_err_str(rc));
    for (size_t i = 0; !rc && i < n; i++)
        if (status[i]) scores[i] = 0.0;
    for (size_t g = 0; g < ng; g++) feat_lookup_scratch_free(&ls[g]); /* string values point into them */
    return rc;
}

static const char *value_kind(const Featd__V1__Value *v) {
    switch (v->kind_case) {
    case FEATD__V1__VALUE__KIND_DOUBLE_VALUE: return "double";
    case FEATD__V1__VALUE__KIND_INT64_VALUE: return "int64";
    case FEATD__V1__VALUE__KIND_BOOL_VALUE: return "bool";
    case FEATD__V1__VALUE__KIND_STRING_VALUE: return "string";
    default: return "unset";
    }
}

/* Raw rows from the request, checked against the model's schema. */
static feat_err_t score_rows(feat_serve_t *sv, feat_rpc_call_t *call, const feat_loaded_t *l,
                             Featd__V1__RawRow **rows, size_t n, double *scores, uint32_t *missing) {
    const feat_model_t *m = feat_loaded_model(l);
    size_t nf = feat_loaded_nfeatures(l);
    feat_raw_t *raw = feat_arena_alloc(call->arena, n * nf * sizeof(feat_raw_t) + 1);
    size_t scratch_len = feat_model_scratch_size(m);
    void *scratch = feat_arena_alloc(call->arena, scratch_len + 1);
    if (!raw || !scratch) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        feat_raw_t *row = raw + i * nf;
        for (size_t j = 0; j < nf; j++) row[j] = feat_raw_missing();
        for (size_t e = 0; e < rows[i]->n_features; e++) {
            const Featd__V1__RawRow__FeaturesEntry *fe = rows[i]->features[e];
            long j = feat_model_feature_index(m, fe->key);
            if (j < 0)
                return ERR(call, FEAT_ERR_INVALID, "row %zu: model %s v%llu has no feature \"%.64s\"", i,
                           sv->conf.models[feat_loaded_index(l)].name, (unsigned long long)feat_loaded_version(l), fe->key);
            const Featd__V1__Value *v = fe->value;
            if (!v || v->kind_case == FEATD__V1__VALUE__KIND__NOT_SET) continue; /* missing */
            feat_ftype_t want = feat_model_feature_type(m, (size_t)j);
            int ok = 1;
            switch (want) {
            case FEAT_FT_DOUBLE:
                if (v->kind_case == FEATD__V1__VALUE__KIND_DOUBLE_VALUE) row[j] = feat_raw_double(v->double_value);
                else if (v->kind_case == FEATD__V1__VALUE__KIND_INT64_VALUE) row[j] = feat_raw_double((double)v->int64_value);
                else ok = 0;
                break;
            case FEAT_FT_INT64:
                if (v->kind_case == FEATD__V1__VALUE__KIND_INT64_VALUE) row[j] = feat_raw_int64(v->int64_value);
                else ok = 0;
                break;
            case FEAT_FT_BOOL:
                if (v->kind_case == FEATD__V1__VALUE__KIND_BOOL_VALUE) row[j] = feat_raw_bool(v->bool_value);
                else ok = 0;
                break;
            case FEAT_FT_STRING:
                if (v->kind_case == FEATD__V1__VALUE__KIND_STRING_VALUE)
                    row[j] = feat_raw_string(v->string_value, strlen(v->string_value));
                else ok = 0;
                break;
            default: ok = 0; break;
            }
            if (!ok)
                return ERR(call, FEAT_ERR_INVALID, "row %zu: feature %s is %s, got a %s value", i, fe->key,
                           feat_ftype_name(want), value_kind(v));
            if (want == FEAT_FT_DOUBLE && !isfinite(row[j].v.f64))
                return ERR(call, FEAT_ERR_INVALID, "row %zu: feature %s is not a finite number", i, fe->key);
        }
        uint32_t miss = 0;
        for (size_t j = 0; j < nf; j++) miss += row[j].type == FEAT_V_MISSING;
        missing[i] = miss;
    }
    feat_err_t rc = feat_model_predict_batch(m, raw, n, scratch, scratch_len, scores);
    if (rc) return ERR(call, FEAT_ERR_CORRUPT, "prediction failed: %s", feat_err_str(rc));
    return FEAT_OK;
}

/* 1 when the entity falls in the canary's share: by a hash of its key, so
 * that an entity stays on one side whatever else a request holds. */
static int in_canary(const char *key, size_t klen, double percent) {
    return (double)(feat_hash_mix(feat_hash64(key, klen)) % 10000u) < percent * 100.0;
}

/* Scores the canary's two sides of a request by entity keys or raw rows:
 * l the rest, lc the rows where side[i] is 1 (n_c of them), scattered back
 * into request order. */
static feat_err_t score_canary(feat_serve_t *sv, feat_rpc_call_t *call, const Featd__V1__PredictRequest *req,
                               const feat_loaded_t *l, const feat_loaded_t *lc, const uint8_t *side, size_t n,
                               size_t n_c, int64_t now, double *scores, uint32_t *missing, size_t *klens,
                               uint8_t *status) {
    size_t cnt[2] = {n - n_c, n_c};
    feat_err_t err = FEAT_OK;
    for (int s = 0; s < 2 && !err; s++) {
        size_t m = cnt[s], k = 0;
        if (!m) continue;
        char **keys = feat_arena_alloc(call->arena, m * sizeof(char *));
        Featd__V1__RawRow **rows = feat_arena_alloc(call->arena, m * sizeof(*rows));
        size_t *pos = feat_arena_alloc(call->arena, m * sizeof(size_t));
        double *sc = feat_arena_alloc(call->arena, m * sizeof(double));
        uint32_t *mi = feat_arena_alloc(call->arena, m * sizeof(uint32_t));
        size_t *kl = feat_arena_alloc(call->arena, m * sizeof(size_t));
        uint8_t *st = feat_arena_calloc(call->arena, m + 1);
        if (!keys || !rows || !pos || !sc || !mi || !kl || !st) return FEAT_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            if (side[i] != s) continue;
            if (req->n_entity_keys) keys[k] = req->entity_keys[i];
            else rows[k] = req->rows[i];
            pos[k++] = i;
        }
        const feat_loaded_t *v = s ? lc : l;
        err = req->n_entity_keys ? score_keys(sv, call, v, keys, m, now, sc, mi, kl, st)
                                 : score_rows(sv, call, v, rows, m, sc, mi);
        for (size_t j = 0; !err && j < m; j++) {
            scores[pos[j]] = sc[j], missing[pos[j]] = mi[j], status[pos[j]] = st[j];
            if (req->n_entity_keys) klens[pos[j]] = kl[j];
        }
    }
    return err;
}

feat_err_t featd_svc_predict(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__PredictRequest *req = featd_svc_unpack(call, &featd__v1__predict_request__descriptor, &err);
    if (!req) return err;
    if (!!req->n_entity_keys + !!req->n_rows + !!req->n_entity_rows > 1)
        return ERR(call, FEAT_ERR_INVALID, "give one of entity_keys, entity_rows or rows");
    if (!req->n_entity_keys && !req->n_rows && !req->n_entity_rows)
        return ERR(call, FEAT_ERR_INVALID, "entity_keys, entity_rows and rows are all empty");
    size_t n = req->n_entity_keys ? req->n_entity_keys : req->n_rows ? req->n_rows : req->n_entity_rows;
    if ((int64_t)n > sv->conf.max_keys)
        return ERR(call, FEAT_ERR_INVALID, "too many %s: %zu > serve.max_keys = %lld",
                   req->n_rows ? "rows" : req->n_entity_rows ? "entity rows" : "entity keys", n,
                   (long long)sv->conf.max_keys);
    if (req->n_entity_keys && (err = featd_svc_check_keys(sv, call, req->entity_keys, n))) return err;
    feat_loaded_t *l = acquire(sv, call, req->model, req->alias, req->version, &err);
    if (!l) return err;
    Featd__V1__EntityKeys **own_rows = NULL; /* entity_keys as rows, for a model whose tables share its entity */
    if (req->n_entity_keys && feat_loaded_multi(l)) { /* name an entity entity_keys cannot give */
        const feat_loaded_group_t *g = feat_loaded_groups(l);
        const char *own = feat_loaded_table(l)->conf->entity, *other = own;
        for (size_t k = 0; k < feat_loaded_ngroups(l) && other == own; k++)
            if (strcmp(g[k].entity, own)) other = g[k].entity;
        if (other == own) { /* every table is keyed by the model's entity: the key reaches them all */
            own_rows = feat_arena_alloc(call->arena, n * sizeof(*own_rows));
            Featd__V1__EntityKeys *r = feat_arena_alloc(call->arena, n * sizeof(*r));
            Featd__V1__EntityKeys__KeysEntry *e = feat_arena_alloc(call->arena, n * sizeof(*e));
            Featd__V1__EntityKeys__KeysEntry **ep = feat_arena_alloc(call->arena, n * sizeof(*ep));
            if (!own_rows || !r || !e || !ep) {
                feat_loaded_release(l);
                return FEAT_ERR_NOMEM;
            }
            for (size_t i = 0; i < n; i++) {
                featd__v1__entity_keys__init(&r[i]);
                featd__v1__entity_keys__keys_entry__init(&e[i]);
                e[i].key = (char *)own;
                e[i].value = req->entity_keys[i];
                ep[i] = &e[i];
                r[i].n_keys = 1;
                r[i].keys = &ep[i];
                own_rows[i] = &r[i];
            }
        }
    }
    if (req->n_entity_keys && feat_loaded_multi(l) && !own_rows) {
        const feat_loaded_group_t *g = feat_loaded_groups(l);
        const char *own = feat_loaded_table(l)->conf->entity, *other = own;
        for (size_t k = 0; k < feat_loaded_ngroups(l) && other == own; k++)
            if (strcmp(g[k].entity, own)) other = g[k].entity;
        err = ERR(call, FEAT_ERR_INVALID,
                  "model %s reads tables keyed by %s and %s: give entity_rows with a key for entity \"%s\" "
                  "(entity_keys hold %s keys only)", req->model, own, other, other, own);
        feat_loaded_release(l);
        return err;
    }
    int64_t now = feat_now_ms();
    double *scores = feat_arena_alloc(call->arena, n * sizeof(double));
    uint32_t *missing = feat_arena_alloc(call->arena, n * sizeof(uint32_t));
    size_t *klens = feat_arena_alloc(call->arena, n * sizeof(size_t));
    const char **keys = feat_arena_alloc(call->arena, n * sizeof(char *));
    uint8_t *status = feat_arena_calloc(call->arena, n + 1);
    /* the champion asked for, live: a canary may answer some entities, and shadow traffic follows */
    const feat_model_conf_t *mc = &sv->conf.models[feat_loaded_index(l)];
    int live = !req->version && (!req->alias || !*req->alias || !strcmp(req->alias, "champion")) && !req->batch;
    feat_loaded_t *lc = NULL;
    uint8_t *side = NULL;
    size_t n_c = 0;
    /* by entity keys only: raw rows are written for the champion's schema, and need not carry a key */
    if (live && mc->canary_percent > 0 && !own_rows && req->n_entity_keys &&
        (side = feat_arena_calloc(call->arena, n + 1))) {
        for (size_t i = 0; i < n; i++) {
            const char *k = req->entity_keys[i];
            side[i] = (uint8_t)in_canary(k, strlen(k), mc->canary_percent);
            n_c += side[i];
        }
        feat_err_t e2;
        if (n_c && (lc = feat_models_acquire(sv->models, mc->name, "challenger", 0, &e2)) && feat_loaded_multi(lc)) {
            feat_loaded_release(lc); /* a challenger over several tables takes entity_rows: no canary */
            lc = NULL;
        }
        if (!lc) n_c = 0;
    }
    if (!scores || !missing || !klens || !keys || !status) err = FEAT_ERR_NOMEM;
    else if (lc) err = score_canary(sv, call, req, l, lc, side, n, n_c, now, scores, missing, klens, status);
    else if (own_rows) err = score_entity_rows(sv, call, l, own_rows, n, now, scores, missing, keys, klens, status);
    else if (req->n_entity_keys)
        err = score_keys(sv, call, l, req->entity_keys, n, now, scores, missing, klens, status);
    else if (req->n_entity_rows)
        err = score_entity_rows(sv, call, l, req->entity_rows, n, now, scores, missing, keys, klens, status);
    else err = score_rows(sv, call, l, req->rows, n, scores, missing);
    Featd__V1__PredictResponse res = FEATD__V1__PREDICT_RESPONSE__INIT;
    res.model = req->model;
    uint64_t ver = feat_loaded_version(l), ver_c = lc ? feat_loaded_version(lc) : 0;
    res.version = n_c == 0 ? ver : n_c == n ? ver_c : 0; /* 0: split by the canary (see each Prediction) */
    res.n_predictions = n;
    res.predictions = err ? NULL : feat_arena_alloc(call->arena, n * sizeof(void *));
    Featd__V1__Prediction *pv = err ? NULL : feat_arena_alloc(call->arena, n * sizeof(Featd__V1__Prediction));
    if (!err && (!res.predictions || !pv)) err = FEAT_ERR_NOMEM;
    for (size_t i = 0; !err && i < n; i++) {
        featd__v1__prediction__init(&pv[i]);
        if (req->n_entity_keys) keys[i] = req->entity_keys[i];
        else if (req->n_rows) keys[i] = req->rows[i]->entity_key, klens[i] = strlen(keys[i]);
        pv[i].entity_key = (char *)keys[i];
        pv[i].score = scores[i];
        pv[i].missing_features = missing[i];
        pv[i].version = n_c && side[i] ? ver_c : ver;
        pv[i].status = status[i] == FEAT_ST_UNAVAILABLE ? FEATD__V1__FEATURE_STATUS__UNAVAILABLE
                       : status[i] == FEAT_ST_RESTORING ? FEATD__V1__FEATURE_STATUS__RESTORING
                                                        : FEATD__V1__FEATURE_STATUS__FEATURE_STATUS_UNSPECIFIED;
        res.predictions[i] = &pv[i];
    }
    if (!err) err = featd_svc_pack(resp, &res.base);
    unsigned flags = live && req->n_entity_keys && !strcmp(mc->shadow, "challenger") ? FEAT_PREDLOG_SHADOW : 0;
    const char **lk = n_c ? feat_arena_alloc(call->arena, n * sizeof(char *)) : keys;
    size_t *ll = n_c ? feat_arena_alloc(call->arena, n * sizeof(size_t)) : klens;
    double *lsc = n_c ? feat_arena_alloc(call->arena, n * sizeof(double)) : scores;
    if (!err && (!lk || !ll || !lsc)) err = FEAT_ERR_NOMEM;
    for (int s = 0; s < (n_c ? 2 : 1) && !err && !req->batch; s++) { /* the champion's rows, then the canary's */
        size_t nlog = 0;
        for (size_t i = 0; i < n; i++) /* rows not scored are not logged */
            if (!status[i] && (!n_c || side[i] == s)) lk[nlog] = keys[i], ll[nlog] = klens[i], lsc[nlog++] = scores[i];
        if (nlog)
            feat_predlog_add(sv->predlog, feat_loaded_index(l), s ? ver_c : ver, now, nlog, lk, ll, lsc,
                             s ? FEAT_PREDLOG_NO_DRIFT : flags); /* drift of scores is judged on the champion's */
    }
    feat_loaded_release(lc);
    feat_loaded_release(l);
    return err;
}

feat_err_t feat_serve_shadow(void *serve, uint32_t model, int64_t ts, size_t n, const char *const *keys,
                             const size_t *klens, double *scores, uint64_t *version) {
    feat_serve_t *sv = serve;
    feat_err_t rc;
    feat_loaded_t *l = feat_models_acquire(sv->models, sv->conf.models[model].name, "challenger", 0, &rc);
    if (!l) return FEAT_ERR_NOT_FOUND;
    if (feat_loaded_multi(l)) {
        feat_loaded_release(l);
        return FEAT_ERR_UNIMPLEMENTED;
    }
    *version = feat_loaded_version(l);
    const feat_model_t *m = feat_loaded_model(l);
    const feat_table_t *t = feat_loaded_table(l);
    size_t nf = feat_loaded_nfeatures(l), k = 0, scratch_len = feat_model_scratch_size(m);
    const char **lk = malloc(n * sizeof(char *));
    size_t *ll = malloc(n * sizeof(size_t)), *pos = malloc(n * sizeof(size_t));
    feat_value_t *vals = malloc(n * nf * sizeof(feat_value_t) + 1);
    feat_raw_t *raw = malloc(n * nf * sizeof(feat_raw_t) + 1);
    double *out = malloc(n * sizeof(double));
    void *scratch = malloc(scratch_len + 1);
    rc = lk && ll && pos && vals && raw && out && scratch ? FEAT_OK : FEAT_ERR_NOMEM;
    feat_cluster_view_t *v = !rc && feat_cluster_mode(sv->cluster) != FEAT_CLUSTER_SINGLE
                                 ? feat_cluster_view_acquire(sv->cluster) : NULL;
    for (size_t i = 0; !rc && i < n; i++) {
        scores[i] = NAN;
        if (v && feat_cluster_route(sv->cluster, v, t->index, keys[i], klens[i], 1) != FEAT_ROUTE_LOCAL) continue;
        lk[k] = keys[i], ll[k] = klens[i], pos[k++] = i;
    }
    if (v) feat_cluster_view_release(sv->cluster, v);
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT;
    if (!rc && k) rc = feat_online_lookup(sv->st, sv->cache, t, k, lk, ll, feat_loaded_fidx(l), nf, ts, vals, &ls);
    if (!rc && k) {
        for (size_t i = 0; i < k * nf; i++) raw[i] = feat_raw_from_value(&vals[i]);
        rc = feat_model_predict_batch(m, raw, k, scratch, scratch_len, out);
        for (size_t i = 0; !rc && i < k; i++) /* as Predict: a row with a feature no instance could read is not scored */
            if (!row_status(&vals[i * nf], nf)) scores[pos[i]] = out[i];
    }
    feat_lookup_scratch_free(&ls);
    free(lk), free(ll), free(pos), free(vals), free(raw), free(out), free(scratch);
    feat_loaded_release(l);
    return rc;
}

/* ---- the registry ------------------------------------------------------------------------------- */

static Featd__V1__ModelMetrics *metrics_pb(feat_arena_t *a, const feat_eval_t *e, uint64_t rows) {
    Featd__V1__ModelMetrics *m = feat_arena_alloc(a, sizeof(*m));
    if (!m) return NULL;
    featd__v1__model_metrics__init(m);
    m->auc = e->auc;
    m->log_loss = e->logloss;
    m->accuracy = e->accuracy;
    m->rmse = e->rmse;
    m->mae = e->mae;
    m->rows = rows;
    return m;
}

static char *adup(feat_arena_t *a, const char *s) { return feat_arena_strndup(a, s ? s : "", s ? strlen(s) : 0); }

static Featd__V1__ModelVersion *version_pb(feat_arena_t *a, const feat_version_info_t *v) {
    Featd__V1__ModelVersion *p = feat_arena_alloc(a, sizeof(*p));
    if (!p) return NULL;
    featd__v1__model_version__init(p);
    p->model = adup(a, v->model);
    p->version = v->version;
    p->stage = (char *)feat_stage_name(v->stage);
    p->task = adup(a, v->task);
    p->table = adup(a, v->table);
    p->created_ms = v->created_ms;
    p->trigger = adup(a, v->trigger);
    p->reason = adup(a, v->reason);
    p->n_features = v->nfeatures;
    p->features = feat_arena_alloc(a, v->nfeatures * sizeof(char *) + 1);
    for (size_t i = 0; p->features && i < v->nfeatures; i++) p->features[i] = adup(a, v->features[i]);
    p->params_json = adup(a, v->params);
    p->train_metrics = metrics_pb(a, &v->train, v->n_train);
    p->validation_metrics = metrics_pb(a, &v->valid, v->n_valid);
    p->data_from_ms = v->from_ms;
    p->data_to_ms = v->to_ms;
    p->train_rows = v->n_train;
    p->validation_rows = v->n_valid;
    p->device = adup(a, v->device);
    p->train_seconds = v->train_seconds;
    if (v->has_live) {
        feat_eval_t e;
        feat_eval_clear(&e);
        if (!strcmp(v->task, "linreg") || !strcmp(v->task, "gbdt_regressor")) e.rmse = v->live;
        else e.auc = v->live;
        p->live_metrics = metrics_pb(a, &e, v->live_window);
        p->live_pairs = v->live_pairs;
    }
    if (!p->model || !p->features || !p->params_json || !p->train_metrics || !p->validation_metrics) return NULL;
    return p;
}

typedef struct list_ctx {
    feat_arena_t *a;
    Featd__V1__ModelVersion **out;
    size_t n, cap;
    uint64_t only;          /* non-zero: just this version */
    int nomem;
} list_ctx_t;

static void on_version(void *arg, const feat_version_info_t *v) {
    list_ctx_t *c = arg;
    if (c->only && v->version != c->only) return;
    Featd__V1__ModelVersion **out = featd_svc_room(c->a, c->out, c->n, &c->cap, 16);
    if (!out) { c->nomem = 1; return; }
    c->out = out;
    if (!(c->out[c->n] = version_pb(c->a, v))) c->nomem = 1;
    else c->n++;
}

feat_err_t featd_svc_list_models(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__ListModelsRequest *req = featd_svc_unpack(call, &featd__v1__list_models_request__descriptor, &err);
    if (!req) return err;
    list_ctx_t c = {call->arena, NULL, 0, 0, 0, 0};
    if (feat_models_list(sv->models, req->model, on_version, &c) == FEAT_ERR_NOT_FOUND)
        return ERR(call, FEAT_ERR_NOT_FOUND, "unknown model \"%.64s\"", req->model);
    if (c.nomem) return FEAT_ERR_NOMEM;
    Featd__V1__ListModelsResponse res = FEATD__V1__LIST_MODELS_RESPONSE__INIT;
    res.n_versions = c.n;
    res.versions = c.out;
    return featd_svc_pack(resp, &res.base);
}

/* The champion's registry entry, for Promote and Rollback replies. */
static Featd__V1__ModelVersion *one_version(feat_serve_t *sv, feat_arena_t *a, const char *model, uint64_t version) {
    list_ctx_t c = {a, NULL, 0, 0, version, 0};
    feat_models_list(sv->models, model, on_version, &c);
    return c.n ? c.out[0] : NULL;
}

feat_err_t featd_svc_promote(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__PromoteRequest *req = featd_svc_unpack(call, &featd__v1__promote_request__descriptor, &err);
    if (!req) return err;
    if (!req->model || !*req->model) return ERR(call, FEAT_ERR_INVALID, "model is required");
    uint64_t champion = 0;
    feat_err_t rc = feat_models_promote(sv->models, req->model, req->version, &champion, call->msg, sizeof(call->msg));
    if (rc) return rc;
    Featd__V1__PromoteResponse res = FEATD__V1__PROMOTE_RESPONSE__INIT;
    res.champion = one_version(sv, call->arena, req->model, champion);
    return featd_svc_pack(resp, &res.base);
}

feat_err_t featd_svc_rollback(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__RollbackRequest *req = featd_svc_unpack(call, &featd__v1__rollback_request__descriptor, &err);
    if (!req) return err;
    if (!req->model || !*req->model) return ERR(call, FEAT_ERR_INVALID, "model is required");
    uint64_t champion = 0;
    feat_err_t rc = feat_models_rollback(sv->models, req->model, &champion, call->msg, sizeof(call->msg));
    if (rc) return rc;
    Featd__V1__RollbackResponse res = FEATD__V1__ROLLBACK_RESPONSE__INIT;
    res.champion = one_version(sv, call->arena, req->model, champion);
    return featd_svc_pack(resp, &res.base);
}

/* In a cluster, a retrain of model belongs to its trainer: 1 when this
 * call was answered by forwarding it there (*rc its outcome, resp its
 * reply), 0 when this instance answers.  Replica mode names the trainer
 * instead (replicas need no listener of their own). */
static int to_trainer(feat_serve_t *sv, feat_rpc_call_t *call, const char *model, const char *method, feat_buf_t *resp,
                      feat_err_t *rc) {
    const feat_model_conf_t *mc = feat_serve_model(sv, model);
    if (!mc || feat_cluster_mode(sv->cluster) == FEAT_CLUSTER_SINGLE) return 0;
    char who[256];
    int t = feat_cluster_trainer(sv->cluster, (size_t)(mc - sv->conf.models), who, sizeof(who));
    if (t == 1) return 0;
    if (t < 0 || !sv->forward || sv->peer) { /* a peer's call is never forwarded again */
        *rc = t < 0 ? ERR(call, FEAT_ERR_UNAVAILABLE, "no instance holds partition 0 of %.100s yet; its owner trains "
                                                      "model %s", mc->label_topic, mc->name)
                    : ERR(call, FEAT_ERR_STATE, "instance %.100s trains model %s; ask it", who, mc->name);
        return 1;
    }
    char msg[256] = "";
    int code = feat_forward_call(sv->forward, who, method, call->token, call->deadline_ms, call->req, call->req_len,
                                 resp, msg, sizeof(msg));
    *rc = code ? ERR(call, FEAT_ERR_UNAVAILABLE, "the trainer of model %s (%.100s) answered %s: %.100s", mc->name, who,
                     feat_grpc_code_name(code), msg)
               : FEAT_OK;
    return 1;
}

feat_err_t featd_svc_retrain(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__TriggerRetrainRequest *req = featd_svc_unpack(call, &featd__v1__trigger_retrain_request__descriptor, &err);
    if (!req) return err;
    if (!req->model || !*req->model) return ERR(call, FEAT_ERR_INVALID, "model is required");
    if (to_trainer(sv, call, req->model, "/featd.v1.AdminService/TriggerRetrain", resp, &err)) return err;
    uint64_t id = 0;
    int co = 0;
    feat_err_t rc = feat_models_request(sv->models, req->model, FEAT_TRIGGER_OPERATOR, req->reason, &id, &co);
    if (rc == FEAT_ERR_NOT_FOUND) return ERR(call, FEAT_ERR_NOT_FOUND, "unknown model \"%.64s\"", req->model);
    if (rc) return ERR(call, rc, "too many retrain runs queued or running; try again when some have finished");
    Featd__V1__TriggerRetrainResponse res = FEATD__V1__TRIGGER_RETRAIN_RESPONSE__INIT;
    res.run_id = id;
    res.coalesced = co != 0;
    return featd_svc_pack(resp, &res.base);
}

feat_err_t featd_svc_import_model(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__ImportModelRequest *req = featd_svc_unpack(call, &featd__v1__import_model_request__descriptor, &err);
    if (!req) return err;
    if (!req->model || !*req->model) return ERR(call, FEAT_ERR_INVALID, "model is required");
    if (!feat_serve_model(sv, req->model)) return ERR(call, FEAT_ERR_NOT_FOUND, "unknown model \"%.64s\"", req->model);
    if (to_trainer(sv, call, req->model, "/featd.v1.AdminService/ImportModel", resp, &err)) return err;
    uint64_t id = 0;
    char msg[256] = "";
    feat_err_t rc = feat_models_import_file(sv->models, req->model, req->format, req->data.data, req->data.len,
                                            (const char *const *)req->features, req->n_features, req->source, &id, msg,
                                            sizeof(msg));
    if (rc) return ERR(call, rc, "%s", msg);
    Featd__V1__ImportModelResponse res = FEATD__V1__IMPORT_MODEL_RESPONSE__INIT;
    res.run_id = id;
    return featd_svc_pack(resp, &res.base);
}

feat_err_t featd_svc_retrain_status(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__GetRetrainStatusRequest *req = featd_svc_unpack(call, &featd__v1__get_retrain_status_request__descriptor, &err);
    if (!req) return err;
    if (req->model && *req->model && !feat_serve_model(sv, req->model))
        return ERR(call, FEAT_ERR_NOT_FOUND, "unknown model \"%.64s\"", req->model);
    if (req->model && *req->model &&
        to_trainer(sv, call, req->model, "/featd.v1.AdminService/GetRetrainStatus", resp, &err))
        return err;
    feat_run_status_t st;
    if (feat_models_run_status(sv->models, req->model, req->run_id, &st) != FEAT_OK) {
        if (req->run_id) return ERR(call, FEAT_ERR_NOT_FOUND, "no retrain run %llu", (unsigned long long)req->run_id);
        return ERR(call, FEAT_ERR_NOT_FOUND, "no retrain run for %s yet", req->model && *req->model ? req->model : "any model");
    }
    Featd__V1__RetrainStatus res = FEATD__V1__RETRAIN_STATUS__INIT;
    res.run_id = st.run_id;
    res.state = adup(call->arena, feat_run_state_name(st.state));
    res.progress = st.progress;
    res.phase = adup(call->arena, st.phase);
    res.error = adup(call->arena, st.error);
    res.version = st.version;
    return featd_svc_pack(resp, &res.base);
}
