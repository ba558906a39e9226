/*
 * train/registry.c — the model registry: versions and aliases in the store,
 * the served handles, list, promote, rollback, and registry_swap, the one way
 * what a model serves changes.  The store layout and the locks are described
 * in train/models_internal.h.
 */
#include "train/models_internal.h"

#include "common/hash.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys and records ------------------------------------------------------------------ */

size_t feat_reg_vkey(char *k, const char *model, uint64_t version) {
    size_t n = feat_reg_vprefix(k, model);
    feat_put_be64((unsigned char *)k + n, version);
    return n + 8;
}

size_t feat_reg_vprefix(char *k, const char *model) {
    size_t n = strlen(model);
    memcpy(k, model, n);
    k[n] = 0;
    k[n + 1] = 'v';
    k[n + 2] = 0;
    return n + 3;
}

size_t feat_reg_akey(char *k, const char *model) {
    size_t n = strlen(model);
    memcpy(k, model, n);
    k[n] = 0;
    k[n + 1] = 'a';
    return n + 2;
}

size_t feat_reg_rkey(char *k, size_t cap, const char *model, uint64_t version, const char *feature) {
    size_t ml = strlen(model), fl = strlen(feature);
    if (6 + ml + 1 + 8 + 1 + fl > cap) return 0;
    memcpy(k, "model", 6); /* includes the NUL */
    memcpy(k + 6, model, ml);
    k[6 + ml] = 0;
    feat_put_be64((unsigned char *)k + 7 + ml, version);
    k[15 + ml] = 0;
    memcpy(k + 16 + ml, feature, fl);
    return 16 + ml + fl;
}

void feat_aliases_encode(const aliases_t *a, feat_buf_t *b) {
    unsigned char x[8];
    feat_buf_putc(b, 1);
    feat_put_le64(x, a->champion); feat_buf_append(b, x, 8);
    feat_put_le64(x, a->challenger); feat_buf_append(b, x, 8);
    feat_put_le64(x, a->next); feat_buf_append(b, x, 8);
    feat_put_le64(x, a->nhist); feat_buf_append(b, x, 8);
    for (size_t i = 0; i < a->nhist; i++) {
        feat_put_le64(x, a->hist[i]);
        feat_buf_append(b, x, 8);
    }
}

feat_err_t feat_aliases_decode(aliases_t *a, const unsigned char *p, size_t n) {
    if (n < 33 || p[0] != 1) return FEAT_ERR_CORRUPT;
    a->champion = feat_get_le64(p + 1); /* set even when the history is corrupt: the audit reports them */
    a->challenger = feat_get_le64(p + 9);
    a->next = feat_get_le64(p + 17);
    uint64_t nh = feat_get_le64(p + 25);
    if (nh > (n - 33) / 8) return FEAT_ERR_CORRUPT;
    uint64_t *hist = nh ? malloc(nh * sizeof(uint64_t)) : NULL;
    if (nh && !hist) return FEAT_ERR_NOMEM;
    for (uint64_t i = 0; i < nh; i++) hist[i] = feat_get_le64(p + 33 + 8 * i);
    a->hist = hist;
    a->nhist = (size_t)nh;
    return FEAT_OK;
}

/* ---- served handles --------------------------------------------------------------------- */

static void loaded_free(feat_loaded_t *l) {
    if (!l) return;
    feat_model_destroy(l->m);
    free(l->fidx);
    free(l->pos);
    free(l->groups);
    free(l);
}

/* A handle serving m (owned by it from here on, freed on failure) as
 * version of s: each of m's features must still be in its table (s's, or
 * TABLE's for a TABLE.FEATURE name), with the type it was trained on, and a
 * table keyed by another entity than s's must still have that entity in the
 * model's label_keys.  Features are grouped by table (fidx and pos ordered
 * by group) so serving reads each table once. */
static feat_loaded_t *wrap(feat_models_t *models, mstate_t *s, uint64_t version, feat_model_t *m, char *err,
                           size_t errlen) {
    size_t nf = feat_model_info(m)->n_features;
    feat_loaded_t *l = calloc(1, sizeof(*l));
    const feat_table_t **tab = calloc(nf ? nf : 1, sizeof(*tab));
    uint16_t *fi = calloc(nf ? nf : 1, sizeof(uint16_t));
    if (l) {
        l->m = m;
        l->fidx = calloc(nf ? nf : 1, sizeof(uint16_t));
        l->pos = calloc(nf ? nf : 1, sizeof(size_t));
        l->groups = calloc(nf ? nf : 1, sizeof(feat_loaded_group_t));
    }
    if (!l || !l->fidx || !l->pos || !l->groups || !tab || !fi) {
        if (l) loaded_free(l);
        else feat_model_destroy(m);
        free(tab);
        free(fi);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const feat_model_conf_t *mc = s->conf;
    for (size_t j = 0; j < nf; j++) {
        const char *name = feat_model_feature_name(m, j), *fname = name, *dot = strchr(name, '.');
        const feat_table_t *t = s->t;
        if (dot) {
            char tn[FEAT_MAX_NAME + 1];
            snprintf(tn, sizeof(tn), "%.*s", (int)(dot - name), name);
            t = feat_store_table(models->st, tn);
            fname = dot + 1;
        }
        int f = t ? feat_table_feature_index(t->conf, fname, strlen(fname)) : -1;
        if (f < 0 || t->conf->features[f].type != feat_model_feature_type(m, j)) {
            snprintf(err, errlen, "model %s version %llu uses feature %s, which %s %s no longer has (with that type)",
                     mc->name, (unsigned long long)version, name, t ? "table" : "the store", t ? t->conf->name : "");
            goto fail;
        }
        if (t != s->t) l->multi = 1;
        tab[j] = t;
        fi[j] = (uint16_t)f;
    }
    /* group by table, the primary first */
    size_t at = 0;
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t j = 0; j < nf; j++) {
            if (!tab[j] || (pass == 0) != (tab[j] == s->t)) continue;
            const feat_table_t *t = tab[j];
            feat_loaded_group_t *g = &l->groups[l->ngroups++];
            g->t = t;
            g->entity = t->conf->entity;
            g->key = -1;
            if (strcmp(t->conf->entity, s->t->conf->entity) != 0) {
                size_t k;
                for (k = 0; k < mc->nlabel_keys && strcmp(mc->label_keys[k], t->conf->entity); k++) {}
                if (k == mc->nlabel_keys) {
                    snprintf(err, errlen,
                             "model %s version %llu reads table %s, keyed by %s, which model.%s.label_keys does not name",
                             mc->name, (unsigned long long)version, t->conf->name, t->conf->entity, mc->name);
                    goto fail;
                }
                g->key = (int32_t)k;
            }
            g->fidx = l->fidx + at;
            g->pos = l->pos + at;
            for (size_t i = j; i < nf; i++) {
                if (tab[i] != t) continue;
                l->fidx[at] = fi[i];
                l->pos[at++] = i;
                tab[i] = NULL;
                g->n++;
            }
        }
    }
    free(tab);
    free(fi);
    atomic_init(&l->refs, 1);
    l->midx = s->idx;
    l->version = version;
    l->t = s->t;
    l->nf = nf;
    l->binary = feat_model_info(m)->task == FEAT_TASK_BINARY;
    return l;
fail:
    free(tab);
    free(fi);
    loaded_free(l);
    return NULL;
}

/* Reads version of s from the store.  No lock needed (or held by callers
 * that Predict takes): the store read may be slow. */
static feat_loaded_t *load_version(feat_models_t *models, mstate_t *s, uint64_t version, char *err, size_t errlen) {
    char key[FEAT_MAX_NAME + 16];
    size_t kl = feat_reg_vkey(key, s->conf->name, version);
    feat_buf_t b = FEAT_BUF_INIT;
    if (feat_store_get_blob(models->st, FEAT_CF_MODELS, key, kl, &b) != FEAT_OK) {
        snprintf(err, errlen, "model %s version %llu is not in the store", s->conf->name, (unsigned long long)version);
        feat_buf_free(&b);
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)b.data;
    feat_model_t *m = NULL;
    uint32_t jl = b.len >= 5 ? feat_get_le32(p + 1) : 0;
    if (b.len < 5 || p[0] != 1 || jl > b.len - 5) {
        snprintf(err, errlen, "model %s version %llu: corrupt record", s->conf->name, (unsigned long long)version);
        feat_buf_free(&b);
        return NULL;
    }
    feat_err_t rc = feat_model_deserialize(p + 5 + jl, b.len - 5 - jl, &m, err, errlen);
    feat_buf_free(&b);
    return rc == FEAT_OK ? wrap(models, s, version, m, err, errlen) : NULL;
}

feat_loaded_t *feat_loaded_ref(feat_loaded_t *l) {
    if (l) atomic_fetch_add(&l->refs, 1);
    return l;
}

void feat_loaded_release(feat_loaded_t *l) {
    if (!l) return;
    if (atomic_fetch_sub(&l->refs, 1) == 1) loaded_free(l);
}

const feat_model_t *feat_loaded_model(const feat_loaded_t *l) { return l->m; }
uint64_t feat_loaded_version(const feat_loaded_t *l) { return l->version; }
uint32_t feat_loaded_index(const feat_loaded_t *l) { return l->midx; }
const feat_table_t *feat_loaded_table(const feat_loaded_t *l) { return l->t; }
const uint16_t *feat_loaded_fidx(const feat_loaded_t *l) { return l->fidx; }
size_t feat_loaded_nfeatures(const feat_loaded_t *l) { return l->nf; }
int feat_loaded_binary(const feat_loaded_t *l) { return l->binary; }
size_t feat_loaded_ngroups(const feat_loaded_t *l) { return l->ngroups; }
const feat_loaded_group_t *feat_loaded_groups(const feat_loaded_t *l) { return l->groups; }
int feat_loaded_multi(const feat_loaded_t *l) { return l->multi; }

/* Hands the champion's training distributions to drift monitoring (through
 * conf.reference).  No lock held. */
static void give_references(feat_models_t *models, mstate_t *s, uint64_t version) {
    if (!models->conf.reference || !version) return;
    char key[512];
    feat_buf_t b = FEAT_BUF_INIT;
    for (size_t j = 0; j <= s->conf->nfeatures; j++) {
        const char *f = j < s->conf->nfeatures ? s->conf->features[j] : "prediction";
        size_t kl = feat_reg_rkey(key, sizeof(key), s->conf->name, version, f);
        if (!kl || feat_store_get_blob(models->st, FEAT_CF_REFERENCES, key, kl, &b) != FEAT_OK || b.len < 2) continue;
        feat_err_t rc = models->conf.reference(models->conf.reference_arg, s->conf->name, f, b.data + 1, b.len - 1);
        /* NOT_FOUND: a feature drift does not watch (an aggregated one) */
        if (rc != FEAT_OK && rc != FEAT_ERR_NOT_FOUND)
            feat_log(FEAT_LOG_WARN, "models", "%s v%llu: the reference of %s was not accepted by drift monitoring",
                     s->conf->name, (unsigned long long)version, f);
    }
    feat_buf_free(&b);
}

/* ---- start-up ------------------------------------------------------------------------------ */

/* Room for one more version summary.  Caller holds s->reg_lock; s->lock is
 * taken here (acquire reads the array). */
static feat_err_t grow_versions(mstate_t *s) {
    if (s->nv < s->capv) return FEAT_OK;
    size_t cap = s->capv ? 2 * s->capv : 8;
    pthread_mutex_lock(&s->lock);
    vinfo_t *v = realloc(s->v, cap * sizeof(vinfo_t));
    if (v) {
        s->v = v;
        s->capv = cap;
    }
    pthread_mutex_unlock(&s->lock);
    return v ? FEAT_OK : FEAT_ERR_NOMEM;
}

typedef struct scan_ctx {
    mstate_t *s;
    feat_err_t rc;
} scan_ctx_t;

static int on_version(void *arg, const char *key, size_t klen, const char *val, size_t vlen) {
    scan_ctx_t *c = arg;
    mstate_t *s = c->s;
    size_t ml = strlen(s->conf->name);
    if (klen != ml + 11 || vlen < 5 || (unsigned char)val[0] != 1) return 0;
    uint32_t jl = feat_get_le32((const unsigned char *)val + 1);
    if (jl > vlen - 5) return 0;
    if ((c->rc = grow_versions(s))) return 1;
    vinfo_t *v = &s->v[s->nv];
    memset(v, 0, sizeof(*v));
    v->version = feat_get_be64((const unsigned char *)key + ml + 3);
    if (!(v->json = strndup(val + 5, jl))) {
        c->rc = FEAT_ERR_NOMEM;
        return 1;
    }
    if (feat_vinfo_parse(v) != FEAT_OK)
        feat_log(FEAT_LOG_WARN, "models", "%s v%llu: unreadable metadata", s->conf->name, (unsigned long long)v->version);
    s->nv++;
    return 0;
}

feat_err_t feat_reg_open(feat_models_t *models, mstate_t *s, char *errstr, size_t errlen) {
    char key[FEAT_MAX_NAME + 16];
    feat_buf_t b = FEAT_BUF_INIT;
    s->al.next = 1;
    /* no aliases record (or none readable): a model never trained */
    if (feat_store_get_blob(models->st, FEAT_CF_MODELS, key, feat_reg_akey(key, s->conf->name), &b) == FEAT_OK &&
        feat_aliases_decode(&s->al, (const unsigned char *)b.data, b.len) != FEAT_OK) {
        feat_buf_free(&b);
        snprintf(errstr, errlen, "model %s: corrupt registry record", s->conf->name);
        return FEAT_ERR_CORRUPT;
    }
    feat_buf_free(&b);
    scan_ctx_t sc = {s, FEAT_OK};
    size_t pl = feat_reg_vprefix(key, s->conf->name);
    feat_err_t rc = feat_store_scan_blobs(models->st, FEAT_CF_MODELS, key, pl, on_version, &sc) ? FEAT_ERR_IO : sc.rc;
    if (rc) {
        snprintf(errstr, errlen, "model %s: reading the registry: %s", s->conf->name, feat_err_str(rc));
        return rc;
    }
    for (size_t i = 0; i < s->nv; i++) /* a version received from the cluster is never numbered again */
        if (s->al.next <= s->v[i].version) s->al.next = s->v[i].version + 1;
    char err[256];
    if (s->al.champion && !(s->champion = load_version(models, s, s->al.champion, err, sizeof(err))))
        feat_log(FEAT_LOG_ERROR, "models", "cannot serve the champion: %s", err);
    if (s->al.challenger && !(s->challenger = load_version(models, s, s->al.challenger, err, sizeof(err))))
        feat_log(FEAT_LOG_ERROR, "models", "cannot load the challenger: %s", err);
    if (s->champion) give_references(models, s, s->al.champion);
    if (s->nv)
        feat_log(FEAT_LOG_INFO, "models", "%s: %zu version(s); champion v%llu, challenger %s%llu", s->conf->name, s->nv,
                 (unsigned long long)s->al.champion, s->al.challenger ? "v" : "", (unsigned long long)s->al.challenger);
    return FEAT_OK;
}

void feat_reg_close(mstate_t *s) {
    feat_buf_free(&s->pending_key);
    feat_buf_free(&s->pending_val);
    feat_loaded_release(s->champion);
    feat_loaded_release(s->challenger);
    for (int k = 0; k < FEAT_MODELS_PINNED; k++) feat_loaded_release(s->pinned[k]);
    for (size_t k = 0; k < s->nv; k++) feat_vinfo_free(&s->v[k]);
    free(s->v);
    free(s->al.hist);
}

/* ---- serving -------------------------------------------------------------------------------- */

static int has_version(const mstate_t *s, uint64_t v) {
    for (size_t i = 0; i < s->nv; i++)
        if (s->v[i].version == v) return 1;
    return 0;
}

/* Predict's path: s->lock for a few loads; a pinned version not yet loaded
 * is read from the store with no lock held. */
feat_loaded_t *feat_models_acquire(feat_models_t *models, const char *model, const char *alias, uint64_t version,
                                   feat_err_t *err) {
    mstate_t *s = feat_models_find(models, model);
    *err = FEAT_OK;
    if (!s) {
        *err = FEAT_ERR_NOT_FOUND;
        return NULL;
    }
    feat_loaded_t *l = NULL;
    pthread_mutex_lock(&s->lock);
    if (version) {
        if (version == s->al.champion) l = feat_loaded_ref(s->champion);
        else if (version == s->al.challenger) l = feat_loaded_ref(s->challenger);
        else
            for (int k = 0; k < FEAT_MODELS_PINNED && !l; k++)
                if (s->pinned[k] && s->pinned[k]->version == version) l = feat_loaded_ref(s->pinned[k]);
        int known = has_version(s, version);
        pthread_mutex_unlock(&s->lock);
        if (l) return l;
        if (!known) {
            *err = FEAT_ERR_NOT_FOUND;
            return NULL;
        }
        char e[256];
        feat_loaded_t *nl = load_version(models, s, version, e, sizeof(e));
        if (!nl) {
            *err = FEAT_ERR_NOT_FOUND;
            return NULL;
        }
        pthread_mutex_lock(&s->lock);
        feat_loaded_t *old = s->pinned[FEAT_MODELS_PINNED - 1];
        memmove(s->pinned + 1, s->pinned, (FEAT_MODELS_PINNED - 1) * sizeof(s->pinned[0]));
        s->pinned[0] = nl;
        l = feat_loaded_ref(nl);
        pthread_mutex_unlock(&s->lock);
        feat_loaded_release(old);
        return l;
    }
    if (!alias || !*alias || !strcmp(alias, "champion")) l = feat_loaded_ref(s->champion);
    else if (!strcmp(alias, "challenger")) l = feat_loaded_ref(s->challenger);
    else *err = FEAT_ERR_INVALID;
    pthread_mutex_unlock(&s->lock);
    if (!l && !*err) *err = FEAT_ERR_NOT_FOUND;
    return l;
}

/* ---- list --------------------------------------------------------------------------------------- */

feat_err_t feat_models_list(feat_models_t *models, const char *model, feat_version_fn *fn, void *arg) {
    if (model && *model && !feat_models_find(models, model)) return FEAT_ERR_NOT_FOUND;
    for (size_t i = 0; i < models->n; i++) {
        mstate_t *s = &models->mstates[i];
        if (model && *model && strcmp(s->conf->name, model)) continue;
        pthread_mutex_lock(&s->reg_lock);
        for (size_t k = s->nv; k-- > 0;) {
            const vinfo_t *v = &s->v[k];
            feat_version_info_t vi = {
                .model = s->conf->name,
                .version = v->version,
                .stage = v->version == s->al.champion     ? FEAT_STAGE_CHAMPION
                         : v->version == s->al.challenger ? FEAT_STAGE_CHALLENGER : FEAT_STAGE_ARCHIVED,
                .created_ms = v->created_ms,
                .trigger = v->trigger,
                .reason = v->reason,
                .task = v->task,
                .table = v->table,
                .device = v->device,
                .train = v->train,
                .valid = v->valid,
                .n_train = v->n_train,
                .n_valid = v->n_valid,
                .from_ms = v->from_ms,
                .to_ms = v->to_ms,
                .train_seconds = v->seconds,
                .json = v->json,
                .features = (const char *const *)v->features,
                .nfeatures = v->nfeatures,
                .params = v->params ? v->params : "{}",
            };
            quality_t *q = vi.stage == FEAT_STAGE_CHAMPION ? &s->q : vi.stage == FEAT_STAGE_CHALLENGER ? &s->qc : NULL;
            uint64_t qv = 0;
            if (q) feat_quality_get(q, &vi.live, &vi.live_pairs, &vi.live_window, &qv);
            vi.has_live = q && qv == v->version && vi.live_pairs > 0;
            fn(arg, &vi);
        }
        pthread_mutex_unlock(&s->reg_lock);
    }
    return FEAT_OK;
}

/* ---- the swap ---------------------------------------------------------------------------------- */

/* A change to what a model serves. */
typedef struct swap {
    aliases_t to;               /* the aliases wanted; to.hist malloc'd */
    feat_loaded_t *champion;    /* the handle of to.champion, when that differs from today's */
    feat_loaded_t *challenger;  /* the handle of to.challenger (NULL for none), when that differs */
    vinfo_t *added;             /* a new version's summary, or NULL */
} swap_t;

/* to with version pushed on its history (0: nothing to push). */
static feat_err_t push_hist(aliases_t *to, uint64_t version) {
    if (!version) return FEAT_OK;
    uint64_t *h = realloc(to->hist, (to->nhist + 1) * sizeof(uint64_t));
    if (!h) return FEAT_ERR_NOMEM;
    to->hist = h;
    to->hist[to->nhist++] = version;
    return FEAT_OK;
}

/* A copy of a (its history duplicated) to edit into a swap's target. */
static feat_err_t aliases_copy(aliases_t *to, const aliases_t *a) {
    *to = *a;
    to->hist = NULL;
    if (!a->nhist) return FEAT_OK;
    if (!(to->hist = malloc(a->nhist * sizeof(uint64_t)))) return FEAT_ERR_NOMEM;
    memcpy(to->hist, a->hist, a->nhist * sizeof(uint64_t));
    return FEAT_OK;
}

/* The one way what a model serves changes: promote, rollback and a new
 * version all come here with the aliases they want and the handles of the
 * versions those name.  Caller holds s->reg_lock, so s->al cannot change
 * underneath.
 *
 * Order: the store first, then memory — the reverse of swap-then-undo.  The
 * aliases (added to wb, which may already hold a new version's record and
 * references; NULL: a batch of their own) are written with s->lock NOT
 * held; only once the write has succeeded are the served pointers swapped,
 * under s->lock, with a few stores.  So:
 *  - Predict, which takes s->lock, never waits for the store;
 *  - a request is only ever served a champion the store already records (a
 *    crash between the write and the swap restarts with the new aliases);
 *  - a failed write needs no undo: nothing in memory has changed, and
 *    nothing after the write can fail (the one allocation, room for a new
 *    version's summary, is made before it).
 * sw is consumed either way: on success its handles, history and summary
 * belong to s and the handles they replace are released (after s->lock is
 * dropped); on failure they are freed.  err is set on failure. */
static feat_err_t registry_swap(feat_models_t *models, mstate_t *s, swap_t *sw, feat_wb_t *wb, char *err,
                                size_t errlen) {
    feat_wb_t *own = NULL;
    feat_err_t rc = FEAT_OK;
    if (!wb && !(wb = own = feat_wb_new(models->st))) rc = FEAT_ERR_NOMEM;
    if (!rc && sw->added) rc = grow_versions(s);
    feat_buf_t b = FEAT_BUF_INIT;
    char key[FEAT_MAX_NAME + 4];
    if (!rc) {
        feat_aliases_encode(&sw->to, &b);
        rc = b.oom ? FEAT_ERR_NOMEM
                   : feat_wb_put_blob(wb, FEAT_CF_MODELS, key, feat_reg_akey(key, s->conf->name), b.data, b.len);
    }
    feat_buf_free(&b);
    if (rc) snprintf(err, errlen, "cannot store the new aliases: %s", feat_err_str(rc));
    else rc = feat_store_write(models->st, wb, err, errlen); /* the slow part: s->lock is not held */
    feat_wb_destroy(own);
    feat_loaded_t *old_champion = NULL, *old_challenger = NULL;
    uint64_t *old_hist = sw->to.hist;
    int new_champion = 0;
    if (!rc) {
        pthread_mutex_lock(&s->lock);
        if (sw->to.champion != s->al.champion) {
            new_champion = 1;
            old_champion = s->champion;
            s->champion = sw->champion;
            sw->champion = NULL;
        }
        if (sw->to.challenger != s->al.challenger) {
            old_challenger = s->challenger;
            s->challenger = sw->challenger;
            sw->challenger = NULL;
        }
        old_hist = s->al.hist;
        s->al = sw->to;
        if (sw->added) {
            s->v[s->nv++] = *sw->added;
            sw->added = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        if (new_champion) feat_metric_add(models->m_swaps, 1);
    }
    free(old_hist);
    feat_loaded_release(old_champion);
    feat_loaded_release(old_challenger);
    feat_loaded_release(sw->champion); /* unused or not installed */
    feat_loaded_release(sw->challenger);
    if (sw->added) feat_vinfo_free(sw->added);
    return rc;
}

/* ---- promote, rollback, a new version ------------------------------------------------------------ */

feat_err_t feat_models_promote(feat_models_t *models, const char *model, uint64_t version, uint64_t *champion,
                               char *msg, size_t msglen) {
    mstate_t *s = feat_models_find(models, model);
    if (!s) return snprintf(msg, msglen, "unknown model \"%.64s\"", model ? model : ""), FEAT_ERR_NOT_FOUND;
    swap_t sw = {0};
    feat_err_t rc = FEAT_OK;
    pthread_mutex_lock(&s->reg_lock);
    if (!version) version = s->al.challenger;
    uint64_t was = s->al.champion;
    if (!version) {
        rc = FEAT_ERR_STATE;
        snprintf(msg, msglen, "model %s has no challenger to promote", s->conf->name);
    } else if (!has_version(s, version)) {
        rc = FEAT_ERR_NOT_FOUND;
        snprintf(msg, msglen, "model %s has no version %llu", s->conf->name, (unsigned long long)version);
    } else if (version != was) {
        if (!(sw.champion = load_version(models, s, version, msg, msglen))) {
            rc = FEAT_ERR_STATE;
        } else if ((rc = aliases_copy(&sw.to, &s->al)) || (rc = push_hist(&sw.to, was))) {
            snprintf(msg, msglen, "out of memory");
            feat_loaded_release(sw.champion);
            free(sw.to.hist);
        } else {
            sw.to.champion = version;
            if (sw.to.challenger == version) sw.to.challenger = 0; /* sw.challenger stays NULL: none */
            rc = registry_swap(models, s, &sw, NULL, msg, msglen);
            if (!rc) feat_reg_publish(models, s, 0);
        }
    }
    pthread_mutex_unlock(&s->reg_lock);
    if (rc) return rc;
    if (version != was) {
        feat_reg_served(models, s);
        give_references(models, s, version);
        feat_log(FEAT_LOG_INFO, "models", "%s: v%llu is the champion (was v%llu)", s->conf->name,
                 (unsigned long long)version, (unsigned long long)was);
    }
    *champion = version;
    return FEAT_OK;
}

feat_err_t feat_models_rollback(feat_models_t *models, const char *model, uint64_t *champion, char *msg,
                                size_t msglen) {
    mstate_t *s = feat_models_find(models, model);
    if (!s) return snprintf(msg, msglen, "unknown model \"%.64s\"", model ? model : ""), FEAT_ERR_NOT_FOUND;
    swap_t sw = {0};
    feat_err_t rc = FEAT_OK;
    pthread_mutex_lock(&s->reg_lock);
    uint64_t was = s->al.champion, prev = s->al.nhist ? s->al.hist[s->al.nhist - 1] : 0;
    if (!prev) {
        rc = FEAT_ERR_STATE;
        snprintf(msg, msglen, "model %s has no earlier champion to roll back to", s->conf->name);
    } else if (!(sw.champion = load_version(models, s, prev, msg, msglen))) {
        rc = FEAT_ERR_STATE;
    } else if ((rc = aliases_copy(&sw.to, &s->al))) {
        snprintf(msg, msglen, "out of memory");
        feat_loaded_release(sw.champion);
    } else {
        sw.to.champion = prev;
        sw.to.nhist--; /* was archived, not remembered */
        rc = registry_swap(models, s, &sw, NULL, msg, msglen);
        if (!rc) feat_reg_publish(models, s, 0);
    }
    pthread_mutex_unlock(&s->reg_lock);
    if (rc) return rc;
    feat_reg_served(models, s);
    give_references(models, s, prev);
    feat_log(FEAT_LOG_INFO, "models", "%s: rolled back to v%llu (v%llu archived)", s->conf->name,
             (unsigned long long)prev, (unsigned long long)was);
    *champion = prev;
    return FEAT_OK;
}

feat_err_t feat_reg_install(feat_models_t *models, mstate_t *s, uint64_t version, feat_model_t *model,
                            vinfo_t *info, feat_wb_t *wb, int beats_champion, int *promoted, char *err,
                            size_t errlen) {
    feat_loaded_t *l = wrap(models, s, version, model, err, errlen);
    if (!l) {
        feat_vinfo_free(info);
        return FEAT_ERR_STATE;
    }
    swap_t sw = {.added = info};
    feat_err_t rc = FEAT_OK;
    pthread_mutex_lock(&s->reg_lock);
    int promote = !s->al.champion || beats_champion;
    if (s->al.next != version || has_version(s, version)) {
        rc = FEAT_ERR_STATE;
        snprintf(err, errlen, "version %llu is not the next (%llu)", (unsigned long long)version,
                 (unsigned long long)s->al.next);
    } else if ((rc = aliases_copy(&sw.to, &s->al)) || (promote && (rc = push_hist(&sw.to, s->al.champion)))) {
        snprintf(err, errlen, "out of memory");
    }
    if (rc) {
        feat_loaded_release(l);
        free(sw.to.hist);
        feat_vinfo_free(info);
    } else {
        sw.to.next = version + 1;
        if (promote) {
            sw.to.champion = version;
            sw.champion = l;
        } else {
            sw.to.challenger = version;
            sw.challenger = l;
        }
        rc = registry_swap(models, s, &sw, wb, err, errlen);
        if (!rc) feat_reg_publish(models, s, version);
    }
    pthread_mutex_unlock(&s->reg_lock);
    if (rc) return rc;
    feat_reg_served(models, s);
    *promoted = promote;
    if (promote) give_references(models, s, version);
    return FEAT_OK;
}

/* ---- in a cluster: records of cluster.models_topic -------------------------------------------
 *
 *   key "v" \0 model \0 version(BE64)  value 0x01 | u32 n | version record (n bytes, as stored) |
 *                                            { u32 n | feature | u32 n | reference (as stored) }...
 *   key "a" \0 model                   value 0x01 | u8 n | origin instance id | seq(LE64) |
 *                                            aliases record (as stored)
 */

typedef struct mrec {
    int kind;                   /* 'v' or 'a' */
    char model[FEAT_MAX_NAME + 1];
    uint64_t version;           /* 'v' */
    const unsigned char *rec;   /* the stored record */
    size_t reclen;
    const unsigned char *refs;  /* 'v': the references, reflen bytes */
    size_t reflen;
    const char *origin;         /* 'a' */
    size_t originlen;
    uint64_t seq;
} mrec_t;

/* The next u32-length-prefixed field at *p (end e): 0 when it does not fit. */
static int take_field(const unsigned char **p, const unsigned char *e, const unsigned char **f, size_t *n) {
    if (e - *p < 4) return 0;
    uint32_t l = feat_get_le32(*p);
    if ((size_t)(e - *p - 4) < l) return 0;
    *f = *p + 4;
    *n = l;
    *p += 4 + (size_t)l;
    return 1;
}

static int mrec_decode(mrec_t *r, const unsigned char *k, size_t kl, const unsigned char *v, size_t vl) {
    memset(r, 0, sizeof(*r));
    if (kl < 3 || (k[0] != 'v' && k[0] != 'a') || k[1] != 0 || !vl || v[0] != 1) return 0;
    r->kind = k[0];
    const unsigned char *nul = memchr(k + 2, 0, kl - 2);
    size_t ml = nul ? (size_t)(nul - k - 2) : kl - 2;
    if (!ml || ml > FEAT_MAX_NAME) return 0;
    memcpy(r->model, k + 2, ml);
    const unsigned char *p = v + 1, *e = v + vl;
    if (r->kind == 'v') {
        if (!nul || kl != 2 + ml + 1 + 8) return 0;
        r->version = feat_get_be64(nul + 1);
        if (!r->version || !take_field(&p, e, &r->rec, &r->reclen)) return 0;
        if (r->reclen < 5 || r->rec[0] != 1 || feat_get_le32(r->rec + 1) > r->reclen - 5) return 0;
        r->refs = p;
        r->reflen = (size_t)(e - p);
        for (const unsigned char *f, *b; p < e;) { /* whole reference pairs only */
            size_t fl, bl;
            if (!take_field(&p, e, &f, &fl) || !fl || fl > FEAT_MAX_NAME * 2 + 1 || !take_field(&p, e, &b, &bl))
                return 0;
        }
        return 1;
    }
    if (nul || e - p < 1) return 0;
    size_t ol = *p++;
    if ((size_t)(e - p) < ol + 8) return 0;
    r->origin = (const char *)p;
    r->originlen = ol;
    r->seq = feat_get_le64(p + ol);
    r->rec = p + ol + 8;
    r->reclen = (size_t)(e - r->rec);
    aliases_t a = {0};
    int ok = feat_aliases_decode(&a, r->rec, r->reclen) == FEAT_OK;
    free(a.hist);
    return ok;
}

int feat_models_record_ok(const void *key, size_t klen, const void *val, size_t vlen) {
    mrec_t r;
    return mrec_decode(&r, key, klen, val, vlen);
}

static void put_field(feat_buf_t *b, const void *p, size_t n) {
    unsigned char x[4];
    feat_put_le32(x, (uint32_t)n);
    feat_buf_append(b, x, 4);
    feat_buf_append(b, p, n);
}

void feat_reg_publish(feat_models_t *models, mstate_t *s, uint64_t version) {
    if (!models->cl.publish) return;
    const char *name = s->conf->name;
    size_t ml = strlen(name);
    int published = 0;
    char key[FEAT_MAX_NAME + 16], rkey[512];
    feat_buf_t val = FEAT_BUF_INIT, blob = FEAT_BUF_INIT;
    if (version) {
        key[0] = 'v', key[1] = 0;
        memcpy(key + 2, name, ml);
        key[2 + ml] = 0;
        feat_put_be64((unsigned char *)key + 3 + ml, version);
        size_t kl = feat_reg_vkey(rkey, name, version);
        if (feat_store_get_blob(models->st, FEAT_CF_MODELS, rkey, kl, &blob) == FEAT_OK) {
            feat_buf_putc(&val, 1);
            put_field(&val, blob.data, blob.len);
            for (size_t j = 0; j <= s->conf->nfeatures; j++) {
                const char *f = j < s->conf->nfeatures ? s->conf->features[j] : "prediction";
                kl = feat_reg_rkey(rkey, sizeof(rkey), name, version, f);
                if (!kl || feat_store_get_blob(models->st, FEAT_CF_REFERENCES, rkey, kl, &blob) != FEAT_OK) continue;
                put_field(&val, f, strlen(f));
                put_field(&val, blob.data, blob.len);
            }
            if (!val.oom && models->cl.publish(models->cl.arg, key, 11 + ml, val.data, val.len) == FEAT_OK)
                published = 1;
        }
        if (!published) { /* its aliases would name a version the others never get */
            feat_log(FEAT_LOG_ERROR, "models", "%s v%llu: cannot publish it to the cluster; the other instances "
                     "keep serving what they serve", name, (unsigned long long)version);
            feat_buf_free(&val);
            feat_buf_free(&blob);
            return;
        }
        val.len = 0;
    }
    key[0] = 'a', key[1] = 0;
    memcpy(key + 2, name, ml);
    size_t il = strlen(models->cl.self ? models->cl.self : "");
    if (il > 255) il = 255;
    unsigned char x[8];
    feat_buf_putc(&val, 1);
    feat_buf_putc(&val, (char)il);
    feat_buf_append(&val, models->cl.self, il);
    feat_put_le64(x, s->pub_seq + 1);
    feat_buf_append(&val, x, 8);
    feat_aliases_encode(&s->al, &val);
    /* counted only once queued: the echo rule skips our records older than our newest */
    if (!val.oom && models->cl.publish(models->cl.arg, key, 2 + ml, val.data, val.len) == FEAT_OK) s->pub_seq++;
    feat_buf_free(&val);
    feat_buf_free(&blob);
}

void feat_reg_served(feat_models_t *models, mstate_t *s) {
    if (!models->cl.served) return;
    pthread_mutex_lock(&s->lock);
    uint64_t ch = s->champion ? s->al.champion : 0, cl = s->challenger ? s->al.challenger : 0;
    pthread_mutex_unlock(&s->lock);
    models->cl.served(models->cl.arg, s->idx, ch, cl);
}

void feat_models_set_cluster(feat_models_t *models, const feat_models_cluster_t *cl) {
    models->cl = *cl;
    for (size_t i = 0; i < models->n; i++) feat_reg_served(models, &models->mstates[i]);
}

/* A version record from the cluster: stored with its references in one
 * batch and listed.  Caller holds s->reg_lock. */
static feat_err_t import_version(feat_models_t *models, mstate_t *s, const mrec_t *r, char *err, size_t errlen) {
    char key[512];
    if (has_version(s, r->version)) { /* ours, or seen before: the same bytes, unless two instances trained at once */
        feat_buf_t b = FEAT_BUF_INIT;
        if (feat_store_get_blob(models->st, FEAT_CF_MODELS, key, feat_reg_vkey(key, s->conf->name, r->version), &b) ==
                FEAT_OK &&
            (b.len != r->reclen || memcmp(b.data, r->rec, b.len) != 0))
            feat_log(FEAT_LOG_ERROR, "models", "%s v%llu from the cluster is not the v%llu held here: two instances "
                     "trained the model at once; keeping this one", s->conf->name, (unsigned long long)r->version,
                     (unsigned long long)r->version);
        feat_buf_free(&b);
        return FEAT_OK;
    }
    uint32_t jl = feat_get_le32(r->rec + 1);
    feat_model_t *m = NULL; /* check that it loads before storing it */
    if (feat_model_deserialize(r->rec + 5 + jl, r->reclen - 5 - jl, &m, err, errlen) != FEAT_OK)
        return FEAT_ERR_CORRUPT;
    feat_model_destroy(m);
    vinfo_t v;
    memset(&v, 0, sizeof(v));
    v.version = r->version;
    if (!(v.json = strndup((const char *)r->rec + 5, jl))) return FEAT_ERR_NOMEM;
    if (feat_vinfo_parse(&v) != FEAT_OK) {
        feat_vinfo_free(&v);
        snprintf(err, errlen, "unreadable metadata");
        return FEAT_ERR_CORRUPT;
    }
    feat_wb_t *wb = feat_wb_new(models->st);
    feat_err_t rc = wb ? feat_wb_put_blob(wb, FEAT_CF_MODELS, key, feat_reg_vkey(key, s->conf->name, r->version),
                                          r->rec, r->reclen)
                       : FEAT_ERR_NOMEM;
    for (const unsigned char *p = r->refs, *e = r->refs + r->reflen; !rc && p < e;) {
        const unsigned char *f = NULL, *b = NULL;
        size_t fl = 0, bl = 0;
        if (!take_field(&p, e, &f, &fl) || !take_field(&p, e, &b, &bl)) break; /* checked by mrec_decode */
        char fname[FEAT_MAX_NAME * 2 + 2];
        snprintf(fname, sizeof(fname), "%.*s", (int)fl, (const char *)f);
        size_t kl = feat_reg_rkey(key, sizeof(key), s->conf->name, r->version, fname);
        if (kl) rc = feat_wb_put_blob(wb, FEAT_CF_REFERENCES, key, kl, b, bl);
    }
    if (!rc) rc = grow_versions(s);
    if (!rc) rc = feat_store_write(models->st, wb, err, errlen);
    feat_wb_destroy(wb);
    if (rc) {
        feat_vinfo_free(&v);
        return rc;
    }
    pthread_mutex_lock(&s->lock);
    s->v[s->nv++] = v;
    if (s->al.next <= r->version) s->al.next = r->version + 1; /* never numbered again here */
    pthread_mutex_unlock(&s->lock);
    return FEAT_OK;
}

/* An aliases record from the cluster, swapped in as promote does.  Caller
 * holds s->reg_lock; *changed is 1 when the champion changed. */
static feat_err_t import_aliases(feat_models_t *models, mstate_t *s, const mrec_t *r, int *changed, char *err,
                                 size_t errlen) {
    size_t il = strlen(models->cl.self ? models->cl.self : "");
    if (r->originlen == il && !memcmp(r->origin, models->cl.self, il) && r->seq < s->pub_seq)
        return FEAT_OK; /* ours, and a newer one of ours follows */
    swap_t sw = {0};
    feat_err_t rc = feat_aliases_decode(&sw.to, r->rec, r->reclen);
    if (rc) return rc;
    if (sw.to.next < s->al.next) sw.to.next = s->al.next;
    int same = sw.to.champion == s->al.champion && sw.to.challenger == s->al.challenger &&
               sw.to.next == s->al.next && sw.to.nhist == s->al.nhist &&
               (!sw.to.nhist || !memcmp(sw.to.hist, s->al.hist, sw.to.nhist * sizeof(uint64_t)));
    if (same) {
        free(sw.to.hist);
        return FEAT_OK;
    }
    if ((sw.to.champion && !has_version(s, sw.to.champion)) || (sw.to.challenger && !has_version(s, sw.to.challenger))) {
        snprintf(err, errlen, "model %s: the aliases name v%llu and v%llu, not all received yet; applied when they are",
                 s->conf->name, (unsigned long long)sw.to.champion, (unsigned long long)sw.to.challenger);
        free(sw.to.hist);
        return FEAT_ERR_STATE;
    }
    if (sw.to.champion != s->al.champion && sw.to.champion &&
        !(sw.champion = load_version(models, s, sw.to.champion, err, errlen)))
        rc = FEAT_ERR_STATE;
    if (!rc && sw.to.challenger != s->al.challenger && sw.to.challenger &&
        !(sw.challenger = load_version(models, s, sw.to.challenger, err, errlen)))
        rc = FEAT_ERR_STATE;
    if (rc) {
        feat_loaded_release(sw.champion);
        free(sw.to.hist);
        return rc;
    }
    *changed = sw.to.champion != s->al.champion;
    return registry_swap(models, s, &sw, NULL, err, errlen);
}

feat_err_t feat_models_import(feat_models_t *models, const void *key, size_t klen, const void *val, size_t vlen,
                              char *err, size_t errlen) {
    mrec_t r;
    if (!mrec_decode(&r, key, klen, val, vlen)) {
        snprintf(err, errlen, "not a featd model record");
        return FEAT_ERR_CORRUPT;
    }
    mstate_t *s = feat_models_find(models, r.model);
    if (!s) {
        snprintf(err, errlen, "model %s is not configured here", r.model);
        return FEAT_ERR_NOT_FOUND;
    }
    int changed = 0;
    pthread_mutex_lock(&s->reg_lock);
    uint64_t was = s->al.champion;
    feat_err_t rc;
    int swapped = 0; /* aliases applied: what is served may have changed */
    if (r.kind == 'v') {
        rc = import_version(models, s, &r, err, errlen);
        mrec_t p; /* an aliases record that waited for this version */
        if (!rc && s->pending_key.len &&
            mrec_decode(&p, (const unsigned char *)s->pending_key.data, s->pending_key.len,
                        (const unsigned char *)s->pending_val.data, s->pending_val.len) &&
            import_aliases(models, s, &p, &changed, err, errlen) != FEAT_ERR_STATE) {
            s->pending_key.len = s->pending_val.len = 0;
            swapped = 1;
        }
    } else {
        s->pending_key.len = s->pending_val.len = 0; /* a newer state replaces the one waiting */
        rc = import_aliases(models, s, &r, &changed, err, errlen);
        swapped = !rc;
        if (rc == FEAT_ERR_STATE) { /* a version it names has not arrived: keep it for then */
            feat_buf_append(&s->pending_key, key, klen);
            feat_buf_append(&s->pending_val, val, vlen);
            if (s->pending_key.oom || s->pending_val.oom) s->pending_key.len = s->pending_val.len = 0;
        }
    }
    uint64_t now = s->al.champion;
    pthread_mutex_unlock(&s->reg_lock);
    if (!swapped) return rc;
    feat_reg_served(models, s);
    if (changed) {
        give_references(models, s, now);
        feat_log(FEAT_LOG_INFO, "models", "%s: v%llu is the champion (was v%llu), from the cluster", s->conf->name,
                 (unsigned long long)now, (unsigned long long)was);
    }
    return FEAT_OK;
}
