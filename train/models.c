/*
 * train/models.c — registry, retrain engine and live quality (see models.h).
 *
 * Store layout:
 *   models      model \0 "v" \0 version(BE64) → 0x01 | u32 json length | json | model blob
 *   models      model \0 "a"                 → aliases: 0x01 | champion | challenger | next | n | history...
 *   references  "model" \0 model \0 version(BE64) \0 feature → kind (0 KLL, 1 categories) | sketch
 * A version's record, its references and the aliases change in one batch.
 *
 * Locking: each model's mutex guards its served handles, aliases and
 * version list; it is held for pointer swaps and reference counts only,
 * never across I/O.  The engine's mutex guards the run queue and statuses.
 */
#include "train/models.h"
#include "train/trainset.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/log.h"
#include "stats/catfreq.h"
#include "stats/kll.h"
#include "train/core/metrics.h"
#include "train/core/prep.h"
#include "train/core/trainer.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 64        /* statuses remembered */
#define QSLOTS 65536       /* remembered predictions per model */
#define QWAYS 4            /* ...in 4-way buckets by entity; a full bucket forgets its oldest */

struct feat_loaded {
    _Atomic int refs;
    uint32_t midx;
    uint64_t version;
    feat_model_t *m;
    const feat_table_t *t;
    uint16_t *fidx;
    size_t nf;
    int binary;
};

typedef struct vinfo {
    uint64_t version;
    int64_t created_ms;
    char trigger[16], task[16], device[8], table[FEAT_MAX_NAME + 1], reason[128];
    feat_eval_t train, valid;
    uint64_t n_train, n_valid;
    int64_t from_ms, to_ms;
    double seconds;
    char *json;
    char **features;        /* names, in the model's order */
    size_t nfeatures;
    char *params;           /* the "params" object's text */
} vinfo_t;

typedef struct qslot {
    uint64_t h;
    int64_t ts;
    double score;
} qslot_t;

typedef struct quality {
    pthread_mutex_t lock;
    qslot_t *slots;
    double *p, *y;          /* ring of the last window pairs */
    size_t n, head, cap;
    uint64_t pairs;
    double value;           /* last AUC or RMSE; NaN before enough pairs */
    int below;
} quality_t;

typedef struct mstate {
    const feat_model_conf_t *conf;
    uint32_t idx;
    const feat_table_t *t;
    int binary;
    pthread_mutex_t lock;
    feat_loaded_t *champion, *challenger, *pinned[4];
    uint64_t champion_v, challenger_v, next_version;
    uint64_t *hist;         /* earlier champions, newest last */
    size_t nhist;
    vinfo_t *v;             /* oldest first */
    size_t nv;
    _Atomic uint64_t labels_since;
    int64_t last_run_ms;
    quality_t q;
    feat_metric_t *m_pred_quality;
} mstate_t;

typedef struct run {
    feat_run_status_t st;
    uint32_t midx;
    char reason[128];
} run_t;

struct feat_models {
    const feat_config_t *cfg;
    feat_store_t *st;
    feat_drift_t *drift;
    feat_alert_bus_t *alerts;
    feat_metrics_t *metrics;
    mstate_t *m;
    size_t n;
    pthread_t thr;
    int started;
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    run_t runs[MAX_RUNS];   /* ring of runs, queued ones included */
    size_t nruns, rhead;
    uint64_t next_run;
    int stop;
    atomic_int cancel;
    feat_metric_t *m_runs_ok, *m_runs_fail, *m_coalesced, *m_swaps;
};

const char *feat_trigger_name(int t) {
    static const char *const n[] = {"operator", "schedule", "labels", "drift"};
    return t >= 0 && t <= 3 ? n[t] : "operator";
}

const char *feat_stage_name(int s) {
    return s == FEAT_STAGE_CHAMPION ? "champion" : s == FEAT_STAGE_CHALLENGER ? "challenger" : "archived";
}

static void collect(feat_metrics_emit_t *em, void *arg);

/* ---- keys and records ------------------------------------------------------------------ */

static size_t vkey(char *k, const char *model, uint64_t v) {
    size_t n = strlen(model);
    memcpy(k, model, n);
    k[n] = 0;
    k[n + 1] = 'v';
    k[n + 2] = 0;
    feat_put_be64((unsigned char *)k + n + 3, v);
    return n + 11;
}

static size_t akey(char *k, const char *model) {
    size_t n = strlen(model);
    memcpy(k, model, n);
    k[n] = 0;
    k[n + 1] = 'a';
    return n + 2;
}

static size_t rkey(char *k, size_t cap, const char *model, uint64_t v, const char *feature) {
    size_t ml = strlen(model), fl = strlen(feature);
    if (6 + ml + 1 + 8 + 1 + fl > cap) return 0;
    memcpy(k, "model", 6); /* includes the NUL */
    memcpy(k + 6, model, ml);
    k[6 + ml] = 0;
    feat_put_be64((unsigned char *)k + 7 + ml, v);
    k[15 + ml] = 0;
    memcpy(k + 16 + ml, feature, fl);
    return 16 + ml + fl;
}

static void aliases_encode(const mstate_t *s, feat_buf_t *b) {
    unsigned char x[8];
    feat_buf_putc(b, 1);
    feat_put_le64(x, s->champion_v); feat_buf_append(b, x, 8);
    feat_put_le64(x, s->challenger_v); feat_buf_append(b, x, 8);
    feat_put_le64(x, s->next_version); feat_buf_append(b, x, 8);
    feat_put_le64(x, s->nhist); feat_buf_append(b, x, 8);
    for (size_t i = 0; i < s->nhist; i++) {
        feat_put_le64(x, s->hist[i]);
        feat_buf_append(b, x, 8);
    }
}

static int aliases_decode(mstate_t *s, const unsigned char *p, size_t n) {
    if (n < 33 || p[0] != 1) return FEAT_ERR_CORRUPT;
    s->champion_v = feat_get_le64(p + 1);
    s->challenger_v = feat_get_le64(p + 9);
    s->next_version = feat_get_le64(p + 17);
    uint64_t nh = feat_get_le64(p + 25);
    if (nh > (n - 33) / 8) return FEAT_ERR_CORRUPT;
    s->hist = nh ? malloc(nh * sizeof(uint64_t)) : NULL;
    if (nh && !s->hist) return FEAT_ERR_NOMEM;
    for (uint64_t i = 0; i < nh; i++) s->hist[i] = feat_get_le64(p + 33 + 8 * i);
    s->nhist = (size_t)nh;
    return FEAT_OK;
}

/* ---- metadata JSON ------------------------------------------------------------------------ */

static void put_eval(feat_buf_t *b, const char *key, const feat_eval_t *e) {
    feat_buf_printf(b, "\"%s\":{", key);
    const char *names[5] = {"auc", "log_loss", "accuracy", "rmse", "mae"};
    double vals[5] = {e->auc, e->logloss, e->accuracy, e->rmse, e->mae};
    int first = 1;
    for (int i = 0; i < 5; i++) {
        if (!isfinite(vals[i])) continue;
        feat_buf_printf(b, "%s\"%s\":%.10g", first ? "" : ",", names[i], vals[i]);
        first = 0;
    }
    feat_buf_putc(b, '}');
}

static double jnum(const char *s, const feat_json_tok_t *t, int obj, const char *k) {
    int i = feat_json_obj_get(s, t, obj, k);
    double d;
    return i > 0 && feat_json_double(s, &t[i], &d) == FEAT_OK ? d : NAN;
}

static void jstr(const char *s, const feat_json_tok_t *t, int obj, const char *k, char *out, size_t cap) {
    int i = feat_json_obj_get(s, t, obj, k);
    out[0] = 0;
    if (i > 0 && t[i].type == FEAT_JSON_STRING) {
        int n = feat_json_unescape(s, &t[i], out, cap - 1);
        out[n > 0 ? n : 0] = 0;
    }
}

static void jeval(const char *s, const feat_json_tok_t *t, int obj, const char *k, feat_eval_t *e) {
    int i = feat_json_obj_get(s, t, obj, k);
    e->auc = jnum(s, t, i, "auc");
    e->logloss = jnum(s, t, i, "log_loss");
    e->accuracy = jnum(s, t, i, "accuracy");
    e->rmse = jnum(s, t, i, "rmse");
    e->mae = jnum(s, t, i, "mae");
}

/* Fills the parsed fields of v from v->json. */
static int vinfo_parse(vinfo_t *v) {
    size_t len = strlen(v->json);
    feat_json_tok_t *t = malloc(4096 * sizeof(*t));
    if (!t) return FEAT_ERR_NOMEM;
    int n = feat_json_parse(v->json, len, t, 4096, 16, NULL);
    if (n < 0) {
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

static void vinfo_free(vinfo_t *v) {
    free(v->json);
    free(v->params);
    for (size_t i = 0; i < v->nfeatures; i++) free(v->features[i]);
    free(v->features);
}

/* ---- loading ------------------------------------------------------------------------------- */

static feat_loaded_t *load_version(feat_models_t *ms, mstate_t *s, uint64_t version, char *err, size_t errlen) {
    char key[FEAT_MAX_NAME + 16];
    size_t kl = vkey(key, s->conf->name, version);
    feat_buf_t b = FEAT_BUF_INIT;
    if (feat_store_get_blob(ms->st, FEAT_CF_MODELS, key, kl, &b) != FEAT_OK) {
        snprintf(err, errlen, "model %s version %llu is not in the store", s->conf->name, (unsigned long long)version);
        feat_buf_free(&b);
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)b.data;
    feat_model_t *m = NULL;
    uint32_t jl = b.len >= 5 ? feat_get_le32(p + 1) : 0;
    if (b.len < 5 || p[0] != 1 || jl > b.len - 5 ||
        feat_model_deserialize(p + 5 + jl, b.len - 5 - jl, &m, err, errlen) != FEAT_OK) {
        if (b.len < 5 || p[0] != 1) snprintf(err, errlen, "model %s version %llu: corrupt record", s->conf->name,
                                             (unsigned long long)version);
        feat_buf_free(&b);
        return NULL;
    }
    feat_buf_free(&b);
    feat_loaded_t *l = calloc(1, sizeof(*l));
    size_t nf = feat_model_info(m)->n_features;
    if (l) l->fidx = calloc(nf ? nf : 1, sizeof(uint16_t));
    if (!l || !l->fidx) {
        if (l) free(l);
        feat_model_destroy(m);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t j = 0; j < nf; j++) {
        const char *name = feat_model_feature_name(m, j);
        int f = feat_table_feature_index(s->t->conf, name, strlen(name));
        if (f < 0 || s->t->conf->features[f].type != feat_model_feature_type(m, j)) {
            snprintf(err, errlen, "model %s version %llu uses feature %s, which table %s no longer has (with that type)",
                     s->conf->name, (unsigned long long)version, name, s->t->conf->name);
            free(l->fidx);
            free(l);
            feat_model_destroy(m);
            return NULL;
        }
        l->fidx[j] = (uint16_t)f;
    }
    atomic_init(&l->refs, 1);
    l->midx = s->idx;
    l->version = version;
    l->m = m;
    l->t = s->t;
    l->nf = nf;
    l->binary = feat_model_info(m)->task == FEAT_TASK_BINARY;
    (void)ms;
    return l;
}

void feat_loaded_release(feat_loaded_t *l) {
    if (!l) return;
    if (atomic_fetch_sub(&l->refs, 1) == 1) {
        feat_model_destroy(l->m);
        free(l->fidx);
        free(l);
    }
}

static feat_loaded_t *ref(feat_loaded_t *l) {
    if (l) atomic_fetch_add(&l->refs, 1);
    return l;
}

const feat_model_t *feat_loaded_model(const feat_loaded_t *l) { return l->m; }
uint64_t feat_loaded_version(const feat_loaded_t *l) { return l->version; }
uint32_t feat_loaded_index(const feat_loaded_t *l) { return l->midx; }
const feat_table_t *feat_loaded_table(const feat_loaded_t *l) { return l->t; }
const uint16_t *feat_loaded_fidx(const feat_loaded_t *l) { return l->fidx; }
size_t feat_loaded_nfeatures(const feat_loaded_t *l) { return l->nf; }
int feat_loaded_binary(const feat_loaded_t *l) { return l->binary; }

/* Hands the champion's training distributions to drift monitoring. */
static void give_references(feat_models_t *ms, mstate_t *s, uint64_t version) {
    if (!ms->drift || !version) return;
    char key[512];
    feat_buf_t b = FEAT_BUF_INIT;
    for (size_t j = 0; j <= s->conf->nfeatures; j++) {
        const char *f = j < s->conf->nfeatures ? s->conf->features[j] : "prediction";
        size_t kl = rkey(key, sizeof(key), s->conf->name, version, f);
        if (!kl || feat_store_get_blob(ms->st, FEAT_CF_REFERENCES, key, kl, &b) != FEAT_OK || b.len < 2) continue;
        if (feat_drift_set_model_reference(ms->drift, s->conf->name, f, b.data + 1, b.len - 1) != FEAT_OK)
            feat_log(FEAT_LOG_WARN, "models", "%s v%llu: the reference of %s was not accepted by drift monitoring",
                     s->conf->name, (unsigned long long)version, f);
    }
    feat_buf_free(&b);
}

typedef struct scan_ctx {
    mstate_t *s;
    int rc;
} scan_ctx_t;

static int on_version(void *arg, const char *key, size_t klen, const char *val, size_t vlen) {
    scan_ctx_t *c = arg;
    mstate_t *s = c->s;
    size_t ml = strlen(s->conf->name);
    if (klen != ml + 11 || vlen < 5 || (unsigned char)val[0] != 1) return 0;
    uint32_t jl = feat_get_le32((const unsigned char *)val + 1);
    if (jl > vlen - 5) return 0;
    vinfo_t *nv = realloc(s->v, (s->nv + 1) * sizeof(vinfo_t));
    if (!nv) { c->rc = FEAT_ERR_NOMEM; return 1; }
    s->v = nv;
    vinfo_t *v = &s->v[s->nv];
    memset(v, 0, sizeof(*v));
    v->version = feat_get_be64((const unsigned char *)key + ml + 3);
    v->json = strndup(val + 5, jl);
    if (!v->json) { c->rc = FEAT_ERR_NOMEM; return 1; }
    if (vinfo_parse(v) != FEAT_OK)
        feat_log(FEAT_LOG_WARN, "models", "%s v%llu: unreadable metadata", s->conf->name, (unsigned long long)v->version);
    s->nv++;
    return 0;
}

static void quality_init(quality_t *q, size_t window) {
    pthread_mutex_init(&q->lock, NULL);
    q->slots = calloc(QSLOTS, sizeof(qslot_t));
    q->cap = window;
    q->p = calloc(window, sizeof(double));
    q->y = calloc(window, sizeof(double));
    q->value = NAN;
}

feat_models_t *feat_models_new(const feat_config_t *cfg, feat_store_t *st, feat_drift_t *drift,
                               feat_alert_bus_t *alerts, feat_metrics_t *metrics, char *errstr, size_t errlen) {
    feat_models_t *ms = calloc(1, sizeof(*ms));
    if (!ms) goto nomem;
    ms->cfg = cfg;
    ms->st = st;
    ms->drift = drift;
    ms->alerts = alerts;
    ms->metrics = metrics ? metrics : feat_metrics_global();
    ms->n = cfg->nmodels;
    ms->next_run = 1;
    pthread_mutex_init(&ms->qlock, NULL);
    pthread_cond_init(&ms->qcond, NULL);
    ms->m = calloc(ms->n ? ms->n : 1, sizeof(mstate_t));
    if (!ms->m) goto nomem;
    for (size_t i = 0; i < ms->n; i++) {
        mstate_t *s = &ms->m[i];
        s->conf = &cfg->models[i];
        s->idx = (uint32_t)i;
        s->t = feat_store_table(st, s->conf->table);
        s->binary = strcmp(s->conf->task, "linreg") != 0;
        s->next_version = 1;
        pthread_mutex_init(&s->lock, NULL);
        quality_init(&s->q, (size_t)s->conf->quality_window);
        if (!s->q.slots || !s->q.p || !s->q.y) goto nomem;
        char key[FEAT_MAX_NAME + 16];
        feat_buf_t b = FEAT_BUF_INIT;
        if (feat_store_get_blob(st, FEAT_CF_MODELS, key, akey(key, s->conf->name), &b) == FEAT_OK &&
            aliases_decode(s, (const unsigned char *)b.data, b.len) != FEAT_OK) {
            feat_buf_free(&b);
            snprintf(errstr, errlen, "model %s: corrupt registry record", s->conf->name);
            feat_models_destroy(ms);
            return NULL;
        }
        feat_buf_free(&b);
        char prefix[FEAT_MAX_NAME + 4];
        size_t pl = strlen(s->conf->name);
        memcpy(prefix, s->conf->name, pl);
        prefix[pl] = 0;
        prefix[pl + 1] = 'v';
        prefix[pl + 2] = 0;
        scan_ctx_t sc = {s, FEAT_OK};
        if (feat_store_scan_blobs(st, FEAT_CF_MODELS, prefix, pl + 3, on_version, &sc) != FEAT_OK || sc.rc) goto nomem;
        char err[256];
        if (s->champion_v && !(s->champion = load_version(ms, s, s->champion_v, err, sizeof(err))))
            feat_log(FEAT_LOG_ERROR, "models", "cannot serve the champion: %s", err);
        if (s->challenger_v && !(s->challenger = load_version(ms, s, s->challenger_v, err, sizeof(err))))
            feat_log(FEAT_LOG_ERROR, "models", "cannot load the challenger: %s", err);
        if (s->champion) give_references(ms, s, s->champion_v);
        if (s->nv)
            feat_log(FEAT_LOG_INFO, "models", "%s: %zu version(s); champion v%llu, challenger %s%llu", s->conf->name,
                     s->nv, (unsigned long long)s->champion_v, s->challenger_v ? "v" : "", (unsigned long long)s->challenger_v);
        char labels[100];
        snprintf(labels, sizeof(labels), "model=\"%s\"", s->conf->name);
        s->m_pred_quality = feat_counter(ms->metrics, "featd_model_quality_pairs_total",
                                         "Served predictions joined with a later label.", labels);
        s->last_run_ms = feat_now_ms();
    }
    ms->m_runs_ok = feat_counter(ms->metrics, "featd_training_runs_total", "Training runs by result.", "result=\"succeeded\"");
    ms->m_runs_fail = feat_counter(ms->metrics, "featd_training_runs_total", "Training runs by result.", "result=\"failed\"");
    ms->m_coalesced = feat_counter(ms->metrics, "featd_training_requests_coalesced_total",
                                   "Retrain requests that joined a run already queued or running.", NULL);
    ms->m_swaps = feat_counter(ms->metrics, "featd_model_swaps_total", "Champion changes (promote, rollback, auto).", NULL);
    feat_metrics_add_collector(ms->metrics, collect, ms);
    return ms;
nomem:
    snprintf(errstr, errlen, "models: out of memory");
    feat_models_destroy(ms);
    return NULL;
}

void feat_models_destroy(feat_models_t *ms) {
    if (!ms) return;
    feat_models_stop(ms);
    feat_metrics_remove_collector(ms->metrics, collect, ms);
    for (size_t i = 0; ms->m && i < ms->n; i++) {
        mstate_t *s = &ms->m[i];
        feat_loaded_release(s->champion);
        feat_loaded_release(s->challenger);
        for (int k = 0; k < 4; k++) feat_loaded_release(s->pinned[k]);
        for (size_t k = 0; k < s->nv; k++) vinfo_free(&s->v[k]);
        free(s->v);
        free(s->hist);
        free(s->q.slots);
        free(s->q.p);
        free(s->q.y);
        pthread_mutex_destroy(&s->q.lock);
        pthread_mutex_destroy(&s->lock);
    }
    free(ms->m);
    pthread_mutex_destroy(&ms->qlock);
    pthread_cond_destroy(&ms->qcond);
    free(ms);
}

static mstate_t *find(feat_models_t *ms, const char *model) {
    for (size_t i = 0; model && i < ms->n; i++)
        if (!strcmp(ms->m[i].conf->name, model)) return &ms->m[i];
    return NULL;
}

static int has_version(mstate_t *s, uint64_t v) {
    for (size_t i = 0; i < s->nv; i++)
        if (s->v[i].version == v) return 1;
    return 0;
}

/* ---- serving -------------------------------------------------------------------------------- */

feat_loaded_t *feat_models_acquire(feat_models_t *ms, const char *model, const char *alias, uint64_t version, int *err) {
    mstate_t *s = find(ms, model);
    *err = FEAT_OK;
    if (!s) {
        *err = FEAT_ERR_NOT_FOUND;
        return NULL;
    }
    feat_loaded_t *l = NULL;
    pthread_mutex_lock(&s->lock);
    if (version) {
        if (version == s->champion_v) l = ref(s->champion);
        else if (version == s->challenger_v) l = ref(s->challenger);
        else
            for (int k = 0; k < 4 && !l; k++)
                if (s->pinned[k] && s->pinned[k]->version == version) l = ref(s->pinned[k]);
        int known = has_version(s, version);
        pthread_mutex_unlock(&s->lock);
        if (l) return l;
        if (!known) {
            *err = FEAT_ERR_NOT_FOUND;
            return NULL;
        }
        char e[256];
        feat_loaded_t *nl = load_version(ms, s, version, e, sizeof(e));
        if (!nl) {
            *err = FEAT_ERR_NOT_FOUND;
            return NULL;
        }
        pthread_mutex_lock(&s->lock);
        feat_loaded_t *old = s->pinned[3];
        memmove(s->pinned + 1, s->pinned, 3 * sizeof(s->pinned[0]));
        s->pinned[0] = nl;
        l = ref(nl);
        pthread_mutex_unlock(&s->lock);
        feat_loaded_release(old);
        return l;
    }
    if (!alias || !*alias || !strcmp(alias, "champion")) l = ref(s->champion);
    else if (!strcmp(alias, "challenger")) l = ref(s->challenger);
    else *err = FEAT_ERR_INVALID;
    pthread_mutex_unlock(&s->lock);
    if (!l && !*err) *err = FEAT_ERR_NOT_FOUND;
    return l;
}

/* ---- registry ----------------------------------------------------------------------------------- */

int feat_models_list(feat_models_t *ms, const char *model, feat_version_fn *fn, void *arg) {
    if (model && *model && !find(ms, model)) return FEAT_ERR_NOT_FOUND;
    for (size_t i = 0; i < ms->n; i++) {
        mstate_t *s = &ms->m[i];
        if (model && *model && strcmp(s->conf->name, model)) continue;
        pthread_mutex_lock(&s->lock);
        for (size_t k = s->nv; k-- > 0;) {
            vinfo_t *v = &s->v[k];
            feat_version_info_t vi = {s->conf->name, v->version,
                                      v->version == s->champion_v     ? FEAT_STAGE_CHAMPION
                                      : v->version == s->challenger_v ? FEAT_STAGE_CHALLENGER : FEAT_STAGE_ARCHIVED,
                                      v->created_ms, v->trigger, v->reason, v->task, v->table, v->device, v->train, v->valid, v->n_train,
                                      v->n_valid, v->from_ms, v->to_ms, v->seconds, v->json,
                                      (const char *const *)v->features, v->nfeatures, v->params ? v->params : "{}"};
            fn(arg, &vi);
        }
        pthread_mutex_unlock(&s->lock);
    }
    return FEAT_OK;
}

/* Persists s's aliases (caller holds s->lock; the write is small). */
static int save_aliases(feat_models_t *ms, mstate_t *s) {
    char key[FEAT_MAX_NAME + 4];
    feat_buf_t b = FEAT_BUF_INIT;
    aliases_encode(s, &b);
    int rc = b.oom ? FEAT_ERR_NOMEM : feat_store_put_blob(ms->st, FEAT_CF_MODELS, key, akey(key, s->conf->name), b.data, b.len);
    feat_buf_free(&b);
    return rc;
}

static int push_hist(mstate_t *s, uint64_t v) {
    if (!v) return FEAT_OK;
    uint64_t *h = realloc(s->hist, (s->nhist + 1) * sizeof(uint64_t));
    if (!h) return FEAT_ERR_NOMEM;
    s->hist = h;
    s->hist[s->nhist++] = v;
    return FEAT_OK;
}

int feat_models_promote(feat_models_t *ms, const char *model, uint64_t version, uint64_t *champion, char *msg,
                        size_t msglen) {
    mstate_t *s = find(ms, model);
    if (!s) return snprintf(msg, msglen, "unknown model \"%.64s\"", model ? model : ""), FEAT_ERR_NOT_FOUND;
    pthread_mutex_lock(&s->lock);
    if (!version) version = s->challenger_v;
    int known = version && has_version(s, version);
    uint64_t cur = s->champion_v;
    pthread_mutex_unlock(&s->lock);
    if (!version) return snprintf(msg, msglen, "model %s has no challenger to promote", s->conf->name), FEAT_ERR_STATE;
    if (!known)
        return snprintf(msg, msglen, "model %s has no version %llu", s->conf->name, (unsigned long long)version),
               FEAT_ERR_NOT_FOUND;
    if (version == cur) {
        *champion = cur;
        return FEAT_OK; /* already */
    }
    feat_loaded_t *nl = load_version(ms, s, version, msg, msglen);
    if (!nl) return FEAT_ERR_STATE;
    pthread_mutex_lock(&s->lock);
    feat_loaded_t *old = s->champion, *oldch = NULL;
    uint64_t old_v = s->champion_v, old_ch_v = s->challenger_v;
    if (push_hist(s, old_v)) {
        pthread_mutex_unlock(&s->lock);
        feat_loaded_release(nl);
        return FEAT_ERR_NOMEM;
    }
    s->champion = nl;
    s->champion_v = version;
    if (s->challenger_v == version) {
        oldch = s->challenger;
        s->challenger = NULL;
        s->challenger_v = 0;
    }
    int rc = save_aliases(ms, s);
    if (rc) { /* undo */
        s->champion = old;
        s->champion_v = old_v;
        s->challenger_v = old_ch_v;
        if (oldch) { s->challenger = oldch; oldch = NULL; }
        s->nhist -= old_v ? 1 : 0;
        pthread_mutex_unlock(&s->lock);
        feat_loaded_release(nl);
        snprintf(msg, msglen, "cannot store the new aliases");
        return rc;
    }
    pthread_mutex_unlock(&s->lock);
    feat_loaded_release(old);
    feat_loaded_release(oldch);
    feat_metric_add(ms->m_swaps, 1);
    give_references(ms, s, version);
    feat_log(FEAT_LOG_INFO, "models", "%s: v%llu is the champion (was v%llu)", s->conf->name,
             (unsigned long long)version, (unsigned long long)old_v);
    *champion = version;
    return FEAT_OK;
}

int feat_models_rollback(feat_models_t *ms, const char *model, uint64_t *champion, char *msg, size_t msglen) {
    mstate_t *s = find(ms, model);
    if (!s) return snprintf(msg, msglen, "unknown model \"%.64s\"", model ? model : ""), FEAT_ERR_NOT_FOUND;
    pthread_mutex_lock(&s->lock);
    uint64_t prev = s->nhist ? s->hist[s->nhist - 1] : 0;
    pthread_mutex_unlock(&s->lock);
    if (!prev) return snprintf(msg, msglen, "model %s has no earlier champion to roll back to", s->conf->name), FEAT_ERR_STATE;
    feat_loaded_t *nl = load_version(ms, s, prev, msg, msglen);
    if (!nl) return FEAT_ERR_STATE;
    pthread_mutex_lock(&s->lock);
    feat_loaded_t *old = s->champion;
    uint64_t old_v = s->champion_v;
    s->champion = nl;
    s->champion_v = prev;
    s->nhist--;
    int rc = save_aliases(ms, s);
    if (rc) {
        s->champion = old;
        s->champion_v = old_v;
        s->nhist++;
        pthread_mutex_unlock(&s->lock);
        feat_loaded_release(nl);
        snprintf(msg, msglen, "cannot store the new aliases");
        return rc;
    }
    pthread_mutex_unlock(&s->lock);
    feat_loaded_release(old);
    feat_metric_add(ms->m_swaps, 1);
    give_references(ms, s, prev);
    feat_log(FEAT_LOG_INFO, "models", "%s: rolled back to v%llu (v%llu archived)", s->conf->name,
             (unsigned long long)prev, (unsigned long long)old_v);
    *champion = prev;
    return FEAT_OK;
}

/* ---- the engine -------------------------------------------------------------------------------- */

static run_t *run_at(feat_models_t *ms, size_t i) { return &ms->runs[(ms->rhead + i) % MAX_RUNS]; }

int feat_models_request(feat_models_t *ms, const char *model, feat_trigger_t trigger, const char *reason,
                        uint64_t *run_id, int *coalesced) {
    mstate_t *s = find(ms, model);
    if (!s) return FEAT_ERR_NOT_FOUND;
    pthread_mutex_lock(&ms->qlock);
    for (size_t i = 0; i < ms->nruns; i++) {
        run_t *r = run_at(ms, i);
        if (r->midx == s->idx && (!strcmp(r->st.state, "queued") || !strcmp(r->st.state, "running"))) {
            *run_id = r->st.run_id;
            *coalesced = 1;
            pthread_mutex_unlock(&ms->qlock);
            feat_metric_add(ms->m_coalesced, 1);
            return FEAT_OK;
        }
    }
    if (ms->nruns == MAX_RUNS) { /* forget the oldest finished run */
        ms->rhead = (ms->rhead + 1) % MAX_RUNS;
        ms->nruns--;
    }
    run_t *r = run_at(ms, ms->nruns++);
    memset(r, 0, sizeof(*r));
    r->midx = s->idx;
    r->st.run_id = ms->next_run++;
    snprintf(r->st.model, sizeof(r->st.model), "%s", s->conf->name);
    snprintf(r->st.state, sizeof(r->st.state), "queued");
    snprintf(r->st.phase, sizeof(r->st.phase), "waiting");
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
    r->st.trigger = trigger;
    *run_id = r->st.run_id;
    *coalesced = 0;
    pthread_cond_signal(&ms->qcond);
    pthread_mutex_unlock(&ms->qlock);
    feat_log(FEAT_LOG_INFO, "models", "%s: retrain requested by %s%s%s (run %llu)", s->conf->name,
             feat_trigger_name(trigger), reason && *reason ? ": " : "", reason ? reason : "", (unsigned long long)*run_id);
    return FEAT_OK;
}

int feat_models_run_status(feat_models_t *ms, const char *model, uint64_t run_id, feat_run_status_t *out) {
    int rc = FEAT_ERR_NOT_FOUND;
    pthread_mutex_lock(&ms->qlock);
    for (size_t i = ms->nruns; i-- > 0;) {
        run_t *r = run_at(ms, i);
        if ((model && *model && strcmp(r->st.model, model)) || (run_id && r->st.run_id != run_id)) continue;
        *out = r->st;
        rc = FEAT_OK;
        break;
    }
    pthread_mutex_unlock(&ms->qlock);
    return rc;
}

typedef struct run_ctx {
    feat_models_t *ms;
    run_t *r;               /* guarded by ms->qlock */
    uint64_t epochs_done, epochs_total;
} run_ctx_t;

static void set_phase(run_ctx_t *c, const char *phase, double progress) {
    pthread_mutex_lock(&c->ms->qlock);
    snprintf(c->r->st.phase, sizeof(c->r->st.phase), "%s", phase);
    c->r->st.progress = progress;
    pthread_mutex_unlock(&c->ms->qlock);
}

static void ts_progress(void *arg, uint64_t done, uint64_t total) {
    run_ctx_t *c = arg;
    pthread_mutex_lock(&c->ms->qlock);
    c->r->st.progress = total ? 0.3 * (double)done / (double)total : 0;
    pthread_mutex_unlock(&c->ms->qlock);
}

static int cancelled(void *arg) { return atomic_load(&((run_ctx_t *)arg)->ms->cancel); }

/* Called by the trainer between epochs: progress through training. */
static int epoch_tick(void *arg) {
    run_ctx_t *c = arg;
    c->epochs_done++;
    pthread_mutex_lock(&c->ms->qlock);
    double f = c->epochs_total ? (double)c->epochs_done / (double)c->epochs_total : 1;
    c->r->st.progress = 0.3 + 0.55 * (f > 1 ? 1 : f);
    pthread_mutex_unlock(&c->ms->qlock);
    return cancelled(arg);
}

/* Sketches of the training set, per feature and of the predictions. */
static int build_references(feat_models_t *ms, mstate_t *s, uint64_t version, const feat_trainset_t *tset,
                            const double *pred, feat_wb_t *wb) {
    uint32_t k = (uint32_t)ms->cfg->drift_sketch_k;
    char key[512];
    for (size_t j = 0; j <= tset->nf; j++) {
        int categorical = j < tset->nf && (tset->defs[j].type == FEAT_FT_STRING || tset->defs[j].type == FEAT_FT_BOOL);
        const char *fname = j < tset->nf ? tset->defs[j].name : "prediction";
        feat_err_t e = FEAT_OK;
        feat_kll_t *kll = NULL;
        feat_catfreq_t *cf = NULL;
        if (categorical) cf = feat_catfreq_new(64, 0, 32, &e);
        else kll = feat_kll_new(k, feat_hash64(fname, strlen(fname)) ^ version, &e);
        if (e) return e;
        size_t nonempty = 0;
        for (size_t i = 0; i < tset->n; i++) {
            if (j == tset->nf) {
                feat_kll_update(kll, pred[i]);
                nonempty++;
                continue;
            }
            const feat_raw_t *v = &tset->rows[i * tset->nf + j];
            switch (v->type) {
            case FEAT_V_DOUBLE: if (kll && isfinite(v->v.f64)) { feat_kll_update(kll, v->v.f64); nonempty++; } break;
            case FEAT_V_INT64: if (kll) { feat_kll_update(kll, (double)v->v.i64); nonempty++; } break;
            case FEAT_V_BOOL: if (cf) { feat_catfreq_add(cf, v->v.b ? "true" : "false", v->v.b ? 4 : 5, 1); nonempty++; } break;
            case FEAT_V_STRING: if (cf) { feat_catfreq_add(cf, v->v.str, v->len, 1); nonempty++; } break;
            default: break;
            }
        }
        if (nonempty) {
            size_t sz = categorical ? feat_catfreq_serialized_size(cf) : feat_kll_serialized_size(kll), w = 0;
            unsigned char *buf = malloc(sz + 1);
            if (!buf) e = FEAT_ERR_NOMEM;
            else {
                buf[0] = (unsigned char)categorical;
                e = categorical ? feat_catfreq_serialize(cf, buf + 1, sz, &w) : feat_kll_serialize(kll, buf + 1, sz, &w);
                size_t kl = rkey(key, sizeof(key), s->conf->name, version, fname);
                if (!e && kl) e = feat_wb_put_blob(wb, FEAT_CF_REFERENCES, key, kl, buf, w + 1);
                free(buf);
            }
        }
        feat_kll_destroy(kll);
        feat_catfreq_destroy(cf);
        if (e) return e;
    }
    return FEAT_OK;
}

/* The champion's metric on rows (the challenger's validation window), if
 * the champion reads the same features.  NaN when not comparable. */
static double champion_metric(mstate_t *s, const feat_trainset_t *tset, size_t first, size_t n, feat_eval_t *out) {
    feat_eval_clear(out);
    pthread_mutex_lock(&s->lock);
    feat_loaded_t *ch = ref(s->champion);
    pthread_mutex_unlock(&s->lock);
    if (!ch || !n) {
        feat_loaded_release(ch);
        return NAN;
    }
    double v = NAN;
    const feat_model_t *m = ch->m;
    int same = feat_model_info(m)->n_features == tset->nf;
    for (size_t j = 0; same && j < tset->nf; j++) same = !strcmp(feat_model_feature_name(m, j), tset->defs[j].name);
    double *pred = same ? malloc(n * sizeof(double)) : NULL;
    if (pred && feat_model_predict_batch(m, tset->rows + first * tset->nf, n, NULL, 0, pred) == FEAT_OK &&
        feat_eval_compute(s->binary ? FEAT_TASK_BINARY : FEAT_TASK_REGRESSION, pred, tset->labels + first, n, out) == FEAT_OK)
        v = s->binary ? out->auc : out->rmse;
    free(pred);
    feat_loaded_release(ch);
    return v;
}

static void do_run(feat_models_t *ms, run_t *r) {
    mstate_t *s = &ms->m[r->midx];
    const feat_model_conf_t *mc = s->conf;
    run_ctx_t c = {ms, r, 0, 0};
    char err[256] = "";
    feat_trainset_t tset;
    feat_model_t *model = NULL;
    double *pred = NULL;
    feat_wb_t *wb = NULL;
    int rc;
    uint64_t t0 = feat_mono_ns();
    int64_t now = feat_now_ms();
    set_phase(&c, "building training set", 0);
    feat_trainset_cb_t cb = {ts_progress, cancelled, &c};
    rc = feat_trainset_build(ms->st, ms->cfg, mc, mc->train_window_ms ? now - mc->train_window_ms : INT64_MIN, now, &cb,
                             &tset, err, sizeof(err));
    if (rc) goto fail_noset;
    if ((int64_t)tset.n < mc->min_rows) {
        snprintf(err, sizeof(err), "only %zu labelled rows; model.%s.min_rows is %lld", tset.n, mc->name,
                 (long long)mc->min_rows);
        rc = FEAT_ERR_STATE;
        goto fail;
    }
    set_phase(&c, "training", 0.3);
    feat_train_conf_t tc;
    feat_train_conf_init(&tc);
    tc.kind = !strcmp(mc->task, "linreg") ? FEAT_MODEL_LINREG : !strcmp(mc->task, "mlp") ? FEAT_MODEL_MLP : FEAT_MODEL_LOGREG;
    tc.task = s->binary ? FEAT_TASK_BINARY : FEAT_TASK_REGRESSION;
    tc.hyper.learning_rate = mc->lr[0];
    tc.hyper.l2 = mc->l2[0];
    tc.hyper.epochs = mc->epochs[0];
    tc.hyper.hidden = mc->hidden[0];
    tc.hyper.batch_size = (uint32_t)mc->batch_size;
    if (mc->nlr > 1) { tc.grid.learning_rate = mc->lr; tc.grid.n_learning_rate = mc->nlr; }
    if (mc->nl2 > 1) { tc.grid.l2 = mc->l2; tc.grid.n_l2 = mc->nl2; }
    if (mc->nepochs > 1) { tc.grid.epochs = mc->epochs; tc.grid.n_epochs = mc->nepochs; }
    if (mc->nhidden > 1 && tc.kind == FEAT_MODEL_MLP) { tc.grid.hidden = mc->hidden; tc.grid.n_hidden = mc->nhidden; }
    tc.prep.top_k = (uint32_t)mc->top_k;
    tc.valid_fraction = mc->valid_fraction;
    tc.backend = !strcmp(mc->device, "cpu") ? FEAT_BACKEND_CPU : !strcmp(mc->device, "gpu") ? FEAT_BACKEND_GPU : FEAT_BACKEND_AUTO;
    tc.label_name = mc->name;
    tc.cancel = epoch_tick;
    tc.cancel_arg = &c;
    uint64_t configs = (mc->nlr > 1 ? mc->nlr : 1) * (mc->nl2 > 1 ? mc->nl2 : 1) *
                       (mc->nhidden > 1 && tc.kind == FEAT_MODEL_MLP ? mc->nhidden : 1);
    uint64_t ep = 0;
    for (size_t i = 0; i < mc->nepochs; i++) ep += mc->epochs[i];
    c.epochs_total = configs * (mc->nepochs > 1 ? ep : mc->epochs[0]);
    feat_train_report_t rep;
    memset(&rep, 0, sizeof(rep));
    feat_train_data_t td = {tset.defs, tset.nf, tset.rows, tset.labels, tset.n};
    rc = feat_train(&tc, &td, &model, &rep, err, sizeof(err));
    if (rc) goto fail;
    set_phase(&c, "evaluating", 0.85);
    pred = malloc(tset.n * sizeof(double));
    if (!pred) { rc = FEAT_ERR_NOMEM; goto fail; }
    rc = feat_model_predict_batch(model, tset.rows, tset.n, NULL, 0, pred);
    if (rc) { snprintf(err, sizeof(err), "predicting the training set: %s", feat_err_str(rc)); goto fail; }
    feat_eval_t champ;
    double champ_metric = champion_metric(s, &tset, rep.n_train, rep.n_valid, &champ);
    double mine = s->binary ? rep.valid.auc : rep.valid.rmse;
    int better = isnan(champ_metric) ? 1
                 : s->binary ? mine >= champ_metric + mc->promote_margin
                             : mine <= champ_metric * (1 - mc->promote_margin);
    set_phase(&c, "registering", 0.92);
    pthread_mutex_lock(&s->lock);
    uint64_t version = s->next_version;
    int has_champion = s->champion_v != 0;
    pthread_mutex_unlock(&s->lock);
    /* a model with no champion serves its first version under either policy */
    int promote = !has_champion || (!strcmp(mc->policy, "auto") && better);
    /* metadata */
    feat_buf_t js = FEAT_BUF_INIT;
    const feat_model_info_t *mi = feat_model_info(model);
    feat_buf_printf(&js, "{\"model\":\"%s\",\"version\":%llu,\"created_ms\":%lld,\"trigger\":\"%s\",\"reason\":", mc->name,
                    (unsigned long long)version, (long long)now, feat_trigger_name(r->st.trigger));
    feat_buf_json_str(&js, r->reason, strlen(r->reason));
    feat_buf_printf(&js, ",\"task\":\"%s\",\"table\":\"%s\",\"features\":[", mc->task, mc->table);
    for (size_t j = 0; j < tset.nf; j++)
        feat_buf_printf(&js, "%s{\"name\":\"%s\",\"type\":\"%s\"}", j ? "," : "", tset.defs[j].name,
                        feat_ftype_name(tset.defs[j].type));
    feat_buf_printf(&js, "],\"params\":{\"learning_rate\":%g,\"l2\":%g,\"epochs\":%u,\"hidden\":%u,\"batch_size\":%u,"
                         "\"activation\":\"%s\",\"seed\":%llu,\"configs_tried\":%zu},"
                         "\"preprocessing\":{\"input_dim\":%zu,\"top_k\":%lld,\"standardize\":true,\"impute\":\"training mean + missing indicator\"},",
                    mi->hyper.learning_rate, mi->hyper.l2, mi->hyper.epochs, mi->hyper.hidden, mi->hyper.batch_size,
                    feat_activation_name((feat_activation_t)mi->hyper.activation), (unsigned long long)mi->hyper.seed,
                    rep.n_configs, rep.input_dim, (long long)mc->top_k);
    put_eval(&js, "train_metrics", &rep.train);
    feat_buf_putc(&js, ',');
    put_eval(&js, "validation_metrics", &rep.valid);
    feat_buf_putc(&js, ',');
    put_eval(&js, "champion_validation_metrics", &champ);
    feat_buf_printf(&js, ",\"champion_version\":%llu,\"beats_champion\":%s,"
                         "\"data\":{\"from_ms\":%lld,\"to_ms\":%lld,\"rows\":%zu,\"train_rows\":%zu,\"validation_rows\":%zu,"
                         "\"missing_values\":%llu},\"device\":\"%s\",\"device_note\":",
                    (unsigned long long)(has_champion ? s->champion_v : 0), isnan(champ_metric) ? "null" : better ? "true" : "false",
                    (long long)tset.from_ms, (long long)tset.to_ms, tset.n, rep.n_train, rep.n_valid,
                    (unsigned long long)tset.missing, rep.backend == FEAT_BACKEND_GPU ? "gpu" : "cpu");
    feat_buf_json_str(&js, rep.note, strlen(rep.note));
    feat_buf_printf(&js, ",\"train_seconds\":%.6g,\"rows_per_second\":%.6g,\"run_seconds\":%.6g}", rep.train_seconds,
                    rep.rows_per_second, (double)(feat_mono_ns() - t0) / 1e9);
    /* one batch: record, references, aliases */
    void *blob = NULL;
    size_t blen = 0;
    wb = feat_wb_new(ms->st);
    rc = wb ? feat_model_serialize(model, &blob, &blen) : FEAT_ERR_NOMEM;
    feat_buf_t rec = FEAT_BUF_INIT;
    if (!rc) {
        unsigned char h[5];
        h[0] = 1;
        feat_put_le32(h + 1, (uint32_t)js.len);
        feat_buf_append(&rec, h, 5);
        feat_buf_append(&rec, js.data, js.len);
        feat_buf_append(&rec, blob, blen);
        char key[FEAT_MAX_NAME + 16];
        rc = rec.oom || js.oom ? FEAT_ERR_NOMEM : feat_wb_put_blob(wb, FEAT_CF_MODELS, key, vkey(key, mc->name, version), rec.data, rec.len);
    }
    free(blob);
    if (!rc) rc = build_references(ms, s, version, &tset, pred, wb);
    feat_loaded_t *nl = NULL;
    if (!rc) {
        nl = calloc(1, sizeof(*nl));
        if (nl) nl->fidx = calloc(tset.nf ? tset.nf : 1, sizeof(uint16_t));
        if (!nl || !nl->fidx) rc = FEAT_ERR_NOMEM;
    }
    if (rc) {
        if (nl) free(nl->fidx);
        free(nl);
        feat_buf_free(&rec);
        feat_buf_free(&js);
        snprintf(err, sizeof(err), "registering: %s", feat_err_str(rc));
        goto fail;
    }
    atomic_init(&nl->refs, 1);
    nl->midx = s->idx;
    nl->version = version;
    nl->m = model;
    nl->t = s->t;
    nl->nf = tset.nf;
    nl->binary = s->binary;
    for (size_t j = 0; j < tset.nf; j++)
        nl->fidx[j] = (uint16_t)feat_table_feature_index(s->t->conf, tset.defs[j].name, strlen(tset.defs[j].name));
    model = NULL; /* owned by nl now */
    pthread_mutex_lock(&s->lock);
    feat_loaded_t *released = NULL;
    uint64_t old_champ = s->champion_v;
    s->next_version = version + 1;
    if (promote) {
        push_hist(s, s->champion_v);
        released = s->champion;
        s->champion = nl;
        s->champion_v = version;
    } else {
        released = s->challenger;
        s->challenger = nl;
        s->challenger_v = version;
    }
    feat_buf_t al = FEAT_BUF_INIT;
    aliases_encode(s, &al);
    char key[FEAT_MAX_NAME + 4];
    feat_wb_put_blob(wb, FEAT_CF_MODELS, key, akey(key, mc->name), al.data, al.len);
    rc = al.oom ? FEAT_ERR_NOMEM : feat_store_write(ms->st, wb, err, sizeof(err));
    feat_buf_free(&al);
    if (rc) { /* nothing was written: put the served versions back */
        if (promote) {
            s->champion = released;
            s->champion_v = old_champ;
            s->nhist -= old_champ ? 1 : 0;
        } else {
            s->challenger = released;
            s->challenger_v = released ? released->version : 0;
        }
        s->next_version = version;
        pthread_mutex_unlock(&s->lock);
        feat_loaded_release(nl);
        feat_buf_free(&rec);
        feat_buf_free(&js);
        goto fail;
    }
    vinfo_t *nv = realloc(s->v, (s->nv + 1) * sizeof(vinfo_t));
    if (nv) {
        s->v = nv;
        memset(&s->v[s->nv], 0, sizeof(vinfo_t));
        s->v[s->nv].version = version;
        s->v[s->nv].json = strndup(js.data, js.len);
        if (s->v[s->nv].json) vinfo_parse(&s->v[s->nv]);
        s->nv++;
    }
    s->last_run_ms = now;
    pthread_mutex_unlock(&s->lock);
    feat_loaded_release(released);
    if (promote) {
        feat_metric_add(ms->m_swaps, 1);
        give_references(ms, s, version);
    }
    feat_buf_free(&rec);
    feat_buf_free(&js);
    feat_wb_destroy(wb);
    free(pred);
    feat_trainset_free(&tset);
    atomic_store(&s->labels_since, 0);
    feat_metric_add(ms->m_runs_ok, 1);
    feat_log(FEAT_LOG_INFO, "models", "%s v%llu registered as %s: validation %s %.4f on %zu rows (%s %.4f), %zu "
             "training rows, %.2f s on %s", mc->name, (unsigned long long)version, promote ? "champion" : "challenger",
             s->binary ? "AUC" : "RMSE", mine, rep.n_valid, isnan(champ_metric) ? "no comparable champion" : "champion",
             isnan(champ_metric) ? 0.0 : champ_metric, rep.n_train, rep.train_seconds,
             rep.backend == FEAT_BACKEND_GPU ? "GPU" : "CPU");
    pthread_mutex_lock(&ms->qlock);
    snprintf(r->st.state, sizeof(r->st.state), "succeeded");
    snprintf(r->st.phase, sizeof(r->st.phase), "done");
    r->st.progress = 1;
    r->st.version = version;
    pthread_mutex_unlock(&ms->qlock);
    return;
fail:
    feat_trainset_free(&tset);
fail_noset:
    feat_model_destroy(model);
    feat_wb_destroy(wb);
    free(pred);
    pthread_mutex_lock(&s->lock);
    s->last_run_ms = now;
    pthread_mutex_unlock(&s->lock);
    feat_metric_add(ms->m_runs_fail, 1);
    feat_log(FEAT_LOG_WARN, "models", "%s: training run %llu failed: %s", mc->name, (unsigned long long)r->st.run_id,
             err[0] ? err : feat_err_str(rc));
    pthread_mutex_lock(&ms->qlock);
    snprintf(r->st.state, sizeof(r->st.state), "failed");
    snprintf(r->st.error, sizeof(r->st.error), "%s", err[0] ? err : feat_err_str(rc));
    pthread_mutex_unlock(&ms->qlock);
}

static void check_triggers(feat_models_t *ms) {
    int64_t now = feat_now_ms();
    for (size_t i = 0; i < ms->n; i++) {
        mstate_t *s = &ms->m[i];
        const feat_model_conf_t *mc = s->conf;
        uint64_t id;
        int co;
        pthread_mutex_lock(&s->lock);
        int64_t last = s->last_run_ms;
        pthread_mutex_unlock(&s->lock);
        if (mc->retrain_every_ms > 0 && now - last >= mc->retrain_every_ms) {
            pthread_mutex_lock(&s->lock);
            s->last_run_ms = now; /* one request per period, whatever its outcome */
            pthread_mutex_unlock(&s->lock);
            feat_models_request(ms, mc->name, FEAT_TRIGGER_SCHEDULE, "retrain_every", &id, &co);
        }
        if (mc->retrain_after_labels > 0 && atomic_load(&s->labels_since) >= (uint64_t)mc->retrain_after_labels) {
            atomic_store(&s->labels_since, 0);
            char why[64];
            snprintf(why, sizeof(why), "%lld new labels", (long long)mc->retrain_after_labels);
            feat_models_request(ms, mc->name, FEAT_TRIGGER_LABELS, why, &id, &co);
        }
    }
}

static void *engine(void *arg) {
    feat_models_t *ms = arg;
    pthread_mutex_lock(&ms->qlock);
    while (!ms->stop) {
        run_t *next = NULL;
        for (size_t i = 0; i < ms->nruns && !next; i++)
            if (!strcmp(run_at(ms, i)->st.state, "queued")) next = run_at(ms, i);
        if (!next) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&ms->qcond, &ms->qlock, &until);
            pthread_mutex_unlock(&ms->qlock);
            check_triggers(ms);
            pthread_mutex_lock(&ms->qlock);
            continue;
        }
        snprintf(next->st.state, sizeof(next->st.state), "running");
        pthread_mutex_unlock(&ms->qlock);
        do_run(ms, next); /* next stays valid: only queued-or-finished runs are ever recycled, and this one is running */
        pthread_mutex_lock(&ms->qlock);
    }
    pthread_mutex_unlock(&ms->qlock);
    return NULL;
}

int feat_models_start(feat_models_t *ms) {
    if (pthread_create(&ms->thr, NULL, engine, ms) != 0) return FEAT_ERR_NOMEM;
    ms->started = 1;
    return FEAT_OK;
}

void feat_models_stop(feat_models_t *ms) {
    if (!ms || !ms->started) return;
    atomic_store(&ms->cancel, 1);
    pthread_mutex_lock(&ms->qlock);
    ms->stop = 1;
    pthread_cond_signal(&ms->qcond);
    pthread_mutex_unlock(&ms->qlock);
    pthread_join(ms->thr, NULL);
    ms->started = 0;
}

/* ---- feeds: labels, predictions, drift --------------------------------------------------------- */

static uint64_t khash(const char *key, size_t klen) { return feat_hash_mix(feat_hash64(key, klen)) | 1; }

static qslot_t *qbucket(quality_t *q, uint64_t h) { return &q->slots[(h >> 32) % (QSLOTS / QWAYS) * QWAYS]; }

void feat_models_on_prediction(feat_models_t *ms, uint32_t model, const char *key, size_t klen, int64_t ts,
                               double score) {
    if (!ms || model >= ms->n) return;
    quality_t *q = &ms->m[model].q;
    uint64_t h = khash(key, klen);
    pthread_mutex_lock(&q->lock);
    qslot_t *b = qbucket(q, h), *sl = b;
    for (int i = 0; i < QWAYS; i++) {
        if (b[i].h == h || b[i].h == 0) {
            sl = &b[i];
            break;
        }
        if (b[i].ts < sl->ts) sl = &b[i];
    }
    sl->h = h;
    sl->ts = ts;
    sl->score = score;
    pthread_mutex_unlock(&q->lock);
}

static void quality_alert(feat_models_t *ms, mstate_t *s, int below, double value) {
    feat_log(below ? FEAT_LOG_WARN : FEAT_LOG_INFO, "models", "%s: live %s %.4f over the last %zu predictions is %s "
             "model.%s.quality_floor %.4g", s->conf->name, s->binary ? "AUC" : "RMSE", value, s->q.n,
             below ? "worse than" : "back within", s->conf->name, s->conf->quality_floor);
    if (!ms->alerts) return;
    feat_alert_t a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%.24s.quality.%llu", s->conf->name, (unsigned long long)s->q.pairs);
    a.time_ms = feat_now_ms();
    a.drifting = below;
    a.feature = "quality";
    a.model = s->conf->name;
    a.statistic = s->binary ? "auc" : "rmse";
    a.value = value;
    a.threshold = s->conf->quality_floor;
    a.p_value = NAN;
    a.window_size = s->q.n;
    a.retrain_requested = below && ms->cfg->drift_retrain_on_drift;
    feat_alert_publish(ms->alerts, &a);
}

void feat_models_on_label(feat_models_t *ms, uint32_t model, const char *key, size_t klen, int64_t ts, double label) {
    if (!ms || model >= ms->n) return;
    mstate_t *s = &ms->m[model];
    atomic_fetch_add(&s->labels_since, 1);
    quality_t *q = &s->q;
    uint64_t h = khash(key, klen);
    int alert = -1;
    double value = NAN;
    pthread_mutex_lock(&q->lock);
    qslot_t *b = qbucket(q, h), *sl = NULL;
    for (int i = 0; i < QWAYS && !sl; i++)
        if (b[i].h == h) sl = &b[i];
    if (sl && ts >= sl->ts && ts - sl->ts <= s->conf->quality_horizon_ms) {
        sl->h = 0; /* a prediction joins one label */
        q->p[q->head] = sl->score;
        q->y[q->head] = label;
        q->head = (q->head + 1) % q->cap;
        if (q->n < q->cap) q->n++;
        q->pairs++;
        feat_metric_add(s->m_pred_quality, 1);
        size_t need = q->cap < 100 ? q->cap : 100;
        if (q->n >= need && q->pairs % 25 == 0) { /* every 25 pairs once the window has 100 (or all) */
            feat_eval_t e;
            if (feat_eval_compute(s->binary ? FEAT_TASK_BINARY : FEAT_TASK_REGRESSION, q->p, q->y, q->n, &e) == FEAT_OK) {
                q->value = s->binary ? e.auc : e.rmse;
                if (s->conf->quality_floor > 0 && !isnan(q->value)) {
                    int below = s->binary ? q->value < s->conf->quality_floor : q->value > s->conf->quality_floor;
                    if (below != q->below) {
                        q->below = below;
                        alert = below;
                        value = q->value;
                    }
                }
            }
        }
    }
    pthread_mutex_unlock(&q->lock);
    if (alert >= 0) quality_alert(ms, s, alert, value);
}

void feat_models_drift_sink(void *arg, const feat_alert_t *a) {
    feat_models_t *ms = arg;
    if (!a->retrain_requested || !a->drifting) return;
    char why[128];
    snprintf(why, sizeof(why), "drift on %s.%s (%s %.3g)", a->table ? a->table : (a->model ? a->model : ""), a->feature,
             a->statistic, a->value);
    for (size_t i = 0; i < ms->n; i++) {
        const feat_model_conf_t *mc = ms->m[i].conf;
        int uses = a->table ? !strcmp(mc->table, a->table) : a->model && !strcmp(mc->name, a->model);
        if (uses && a->table) { /* a table's feature: only models that read it */
            uses = 0;
            for (size_t j = 0; j < mc->nfeatures && !uses; j++) uses = !strcmp(mc->features[j], a->feature);
        }
        if (!uses) continue;
        uint64_t id;
        int co;
        feat_models_request(ms, mc->name, FEAT_TRIGGER_DRIFT, why, &id, &co);
    }
}

static void collect(feat_metrics_emit_t *em, void *arg) {
    feat_models_t *ms = arg;
    char labels[200];
    feat_metrics_emit_family(em, "featd_model_quality", "Live quality of served predictions joined with later labels "
                             "(AUC for classification, RMSE for regression); NaN before enough pairs.", FEAT_METRIC_GAUGE);
    for (size_t i = 0; i < ms->n; i++) {
        mstate_t *s = &ms->m[i];
        pthread_mutex_lock(&s->q.lock);
        double v = s->q.value;
        pthread_mutex_unlock(&s->q.lock);
        snprintf(labels, sizeof(labels), "model=\"%s\",metric=\"%s\"", s->conf->name, s->binary ? "auc" : "rmse");
        feat_metrics_emit_sample(em, labels, v);
    }
    feat_metrics_emit_family(em, "featd_model_champion_version", "Version each model serves (0 = none).", FEAT_METRIC_GAUGE);
    for (size_t i = 0; i < ms->n; i++) {
        mstate_t *s = &ms->m[i];
        pthread_mutex_lock(&s->lock);
        double v = (double)s->champion_v;
        pthread_mutex_unlock(&s->lock);
        snprintf(labels, sizeof(labels), "model=\"%s\"", s->conf->name);
        feat_metrics_emit_sample(em, labels, v);
    }
}

/* ---- audit ---------------------------------------------------------------------------------------- */

typedef struct audit_ctx {
    feat_store_t *st;
    const feat_model_conf_t *mc;
    feat_models_line_fn *line;
    void *arg;
    feat_buf_t out;
    uint64_t *versions;
    size_t nv, capv;
    int problems;
} audit_ctx_t;

static void audit_emit(audit_ctx_t *c) {
    c->line(c->arg, c->out.data, c->out.len);
    feat_buf_reset(&c->out);
}

static int ref_count(void *arg, const char *key, size_t klen, const char *val, size_t vlen) {
    (void)key; (void)klen; (void)val;
    if (vlen >= 2) (*(size_t *)arg)++;
    return 0;
}

static int audit_version(void *arg, const char *key, size_t klen, const char *val, size_t vlen) {
    audit_ctx_t *c = arg;
    size_t ml = strlen(c->mc->name);
    if (klen != ml + 11) return 0;
    uint64_t version = feat_get_be64((const unsigned char *)key + ml + 3);
    char err[256] = "";
    const unsigned char *p = (const unsigned char *)val;
    uint32_t jl = vlen >= 5 ? feat_get_le32(p + 1) : 0;
    feat_model_t *m = NULL;
    feat_json_tok_t *toks = malloc(4096 * sizeof(*toks));
    if (vlen < 5 || p[0] != 1 || jl > vlen - 5) snprintf(err, sizeof(err), "record header is corrupt");
    else if (!toks || feat_json_parse(val + 5, jl, toks, 4096, 16, NULL) < 0) snprintf(err, sizeof(err), "metadata is not JSON");
    else if (feat_model_deserialize(p + 5 + jl, vlen - 5 - jl, &m, err, sizeof(err)) != FEAT_OK && !err[0])
        snprintf(err, sizeof(err), "model blob does not decode");
    free(toks);
    size_t nref = 0;
    if (!err[0]) {
        char prefix[512];
        size_t pl = rkey(prefix, sizeof(prefix), c->mc->name, version, "");
        if (pl) feat_store_scan_blobs(c->st, FEAT_CF_REFERENCES, prefix, pl, ref_count, &nref);
        if (!nref) snprintf(err, sizeof(err), "no reference distributions");
    }
    feat_model_destroy(m);
    if (err[0]) c->problems++;
    if (c->nv == c->capv) {
        size_t nc = c->capv ? c->capv * 2 : 16;
        uint64_t *nvv = realloc(c->versions, nc * sizeof(uint64_t));
        if (nvv) { c->versions = nvv; c->capv = nc; }
    }
    if (c->nv < c->capv) c->versions[c->nv++] = version;
    feat_buf_printf(&c->out, "{\"kind\":\"model_version\",\"model\":\"%s\",\"version\":%llu,\"ok\":%s,\"error\":",
                    c->mc->name, (unsigned long long)version, err[0] ? "false" : "true");
    feat_buf_json_str(&c->out, err, strlen(err));
    feat_buf_printf(&c->out, ",\"bytes\":%zu,\"references\":%zu,\"meta\":", vlen, nref);
    if (err[0]) feat_buf_puts(&c->out, "null");
    else feat_buf_append(&c->out, val + 5, jl);
    feat_buf_putc(&c->out, '}');
    audit_emit(c);
    return 0;
}

int feat_models_audit(feat_store_t *st, const feat_config_t *cfg, feat_models_line_fn *line, void *arg) {
    audit_ctx_t c;
    memset(&c, 0, sizeof(c));
    c.st = st;
    c.line = line;
    c.arg = arg;
    for (size_t i = 0; i < cfg->nmodels; i++) {
        c.mc = &cfg->models[i];
        c.nv = 0;
        char prefix[FEAT_MAX_NAME + 4];
        size_t pl = strlen(c.mc->name);
        memcpy(prefix, c.mc->name, pl);
        prefix[pl] = 0;
        prefix[pl + 1] = 'v';
        prefix[pl + 2] = 0;
        if (feat_store_scan_blobs(st, FEAT_CF_MODELS, prefix, pl + 3, audit_version, &c) != FEAT_OK) c.problems++;
        char key[FEAT_MAX_NAME + 4];
        feat_buf_t b = FEAT_BUF_INIT;
        int have = feat_store_get_blob(st, FEAT_CF_MODELS, key, akey(key, c.mc->name), &b) == FEAT_OK;
        if (!have && !c.nv) {
            feat_buf_free(&b);
            continue;
        }
        mstate_t s;
        memset(&s, 0, sizeof(s));
        char err[160] = "";
        if (!have) snprintf(err, sizeof(err), "versions exist but no aliases record");
        else if (aliases_decode(&s, (const unsigned char *)b.data, b.len) != FEAT_OK) snprintf(err, sizeof(err), "aliases record is corrupt");
        feat_buf_free(&b);
        uint64_t named[2] = {s.champion_v, s.challenger_v}, maxv = 0;
        for (size_t k = 0; k < c.nv; k++) if (c.versions[k] > maxv) maxv = c.versions[k];
        for (int k = 0; k < 2 && !err[0]; k++) {
            int found = !named[k];
            for (size_t j = 0; j < c.nv && !found; j++) found = c.versions[j] == named[k];
            if (!found) snprintf(err, sizeof(err), "%s v%llu has no version record", k ? "challenger" : "champion",
                                 (unsigned long long)named[k]);
        }
        if (!err[0] && have && s.next_version <= maxv)
            snprintf(err, sizeof(err), "next version %llu is not above the newest, %llu", (unsigned long long)s.next_version,
                     (unsigned long long)maxv);
        if (err[0]) c.problems++;
        feat_buf_printf(&c.out, "{\"kind\":\"model_aliases\",\"model\":\"%s\",\"champion\":%llu,\"challenger\":%llu,"
                                "\"next\":%llu,\"history\":[", c.mc->name, (unsigned long long)s.champion_v,
                        (unsigned long long)s.challenger_v, (unsigned long long)s.next_version);
        for (size_t k = 0; k < s.nhist; k++) feat_buf_printf(&c.out, "%s%llu", k ? "," : "", (unsigned long long)s.hist[k]);
        feat_buf_printf(&c.out, "],\"versions\":%zu,\"ok\":%s,\"error\":", c.nv, err[0] ? "false" : "true");
        feat_buf_json_str(&c.out, err, strlen(err));
        feat_buf_putc(&c.out, '}');
        audit_emit(&c);
        free(s.hist);
    }
    feat_buf_free(&c.out);
    free(c.versions);
    return c.problems;
}
