/* train/trainset.c — see trainset.h. */
#include "train/trainset.h"
#include "common/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

feat_raw_t feat_raw_from_value(const feat_value_t *v) {
    if (v->status != FEAT_ST_PRESENT) return feat_raw_missing();
    switch (v->type) {
    case FEAT_FT_DOUBLE: return feat_raw_double(v->v.d);
    case FEAT_FT_INT64: return feat_raw_int64(v->v.i);
    case FEAT_FT_BOOL: return feat_raw_bool(v->v.b);
    case FEAT_FT_STRING: return feat_raw_string(v->v.s, v->slen);
    default: return feat_raw_missing();
    }
}

/* The model's features of one table, read with one point-in-time read. */
typedef struct group {
    const feat_table_t *t;
    int32_t key;                /* -1 = the label's key, else its extra key */
    size_t n;
    uint16_t *fidx;             /* [n] table feature indexes */
    size_t *pos;                /* [n] positions in the model's feature list */
} group_t;

typedef struct build {
    feat_store_t *st;
    const feat_model_conf_t *m;
    group_t *groups;
    size_t ngroups;
    feat_pit_reader_t *reader;
    feat_value_t *vals;
    feat_buf_t strings;
    feat_trainset_t *out;
    const feat_trainset_cb_t *cb;
    uint64_t total, done;
    int binary;
    feat_err_t rc;
    char *err;
    size_t errlen;
} build_t;

static int count_label(void *arg, int64_t ts, const char *key, size_t klen, double label, const char *const *xnames,
                       const size_t *xnlens, const char *const *xkeys, const size_t *xlens, size_t nx) {
    (void)ts; (void)label; (void)xnames; (void)xnlens; (void)xkeys; (void)xlens; (void)nx;
    build_t *b = arg;
    if (!b->cb || !b->cb->keep || b->cb->keep(b->cb->keep_arg, key, klen)) b->total++;
    return 0;
}

feat_err_t feat_trainset_reserve(feat_trainset_t *o) {
    if (o->n < o->cap) return FEAT_OK;
    size_t nc = o->cap ? o->cap * 2 : 1024;
    feat_raw_t *r = realloc(o->rows, nc * o->nf * sizeof(feat_raw_t));
    if (r) o->rows = r;
    double *l = realloc(o->labels, nc * sizeof(double));
    if (l) o->labels = l;
    int64_t *t = realloc(o->ts, nc * sizeof(int64_t));
    if (t) o->ts = t;
    char **k = realloc(o->keys, nc * sizeof(char *));
    if (k) o->keys = k;
    if (!r || !l || !t || !k) return FEAT_ERR_NOMEM;
    o->cap = nc;
    return FEAT_OK;
}

static int on_label(void *arg, int64_t ts, const char *key, size_t klen, double label, const char *const *xnames,
                    const size_t *xnlens, const char *const *xkeys, const size_t *xlens, size_t nx) {
    build_t *b = arg;
    feat_trainset_t *o = b->out;
    if (b->cb && b->cb->keep && !b->cb->keep(b->cb->keep_arg, key, klen)) return 0; /* another instance's */
    if (b->binary && label != 0 && label != 1) {
        snprintf(b->err, b->errlen, "model %s: label %g of entity \"%.*s\" at %lld is not 0 or 1 (task %s)",
                 b->m->name, label, (int)(klen > 64 ? 64 : klen), key, (long long)ts, b->m->task);
        b->rc = FEAT_ERR_INVALID;
        return 1;
    }
    if (!isfinite(label)) return 0; /* ingest refuses these; be safe */
    if (feat_trainset_reserve(o)) {
        b->rc = FEAT_ERR_NOMEM;
        return 1;
    }
    feat_raw_t *row = o->rows + o->n * o->nf;
    for (size_t g = 0; g < b->ngroups; g++) {
        const group_t *gr = &b->groups[g];
        /* the label's key for this table's entity, found by the entity's name */
        size_t x = nx;
        if (gr->key >= 0) {
            const char *ent = b->m->label_keys[gr->key];
            size_t el = strlen(ent);
            for (x = 0; x < nx && !(xnlens[x] == el && memcmp(xnames[x], ent, el) == 0); x++) {}
        }
        if (gr->key >= 0 && x == nx) {
            /* a label stored without this entity's key (before label_keys named it): its features are missing */
            for (size_t j = 0; j < gr->n; j++) row[gr->pos[j]] = feat_raw_missing();
            o->missing += gr->n;
            continue;
        }
        const char *k = gr->key < 0 ? key : xkeys[x];
        size_t kl = gr->key < 0 ? klen : xlens[x];
        feat_err_t rc = feat_pit_read(b->reader, gr->t, k, kl, ts, gr->fidx, gr->n, 0, b->vals, &b->strings);
        if (rc) {
            snprintf(b->err, b->errlen, "point-in-time read failed: %s", feat_err_str(rc));
            b->rc = rc;
            return 1;
        }
        for (size_t j = 0; j < gr->n; j++) {
            feat_raw_t *r = &row[gr->pos[j]];
            *r = feat_raw_from_value(&b->vals[j]);
            if (r->type == FEAT_V_MISSING) o->missing++;
            if (r->type == FEAT_V_STRING) { /* keep the bytes: the reader's buffer is reused */
                char *s = feat_arena_strndup(&o->arena, r->v.str, r->len);
                if (!s) {
                    b->rc = FEAT_ERR_NOMEM;
                    return 1;
                }
                r->v.str = s;
            }
        }
    }
    o->labels[o->n] = label;
    o->ts[o->n] = ts;
    o->keys[o->n] = feat_arena_strndup(&o->arena, key, klen);
    if (!o->keys[o->n]) {
        b->rc = FEAT_ERR_NOMEM;
        return 1;
    }
    if (o->n == 0) o->from_ms = ts;
    o->to_ms = ts;
    o->n++;
    if ((++b->done & 1023) == 0) {
        if (b->cb && b->cb->progress) b->cb->progress(b->cb->arg, b->done, b->total);
        if (b->cb && b->cb->cancel && b->cb->cancel(b->cb->arg)) {
            snprintf(b->err, b->errlen, "cancelled");
            b->rc = FEAT_ERR_UNAVAILABLE;
            return 1;
        }
    }
    return 0;
}

/* Groups m's features by table (in first-use order) into b->groups. */
static feat_err_t make_groups(feat_store_t *st, const feat_model_conf_t *m, const feat_table_t *primary, build_t *b,
                              feat_trainset_t *out, char *errstr, size_t errlen) {
    b->groups = calloc(m->nfeatures ? m->nfeatures : 1, sizeof(group_t));
    if (!b->groups) return FEAT_ERR_NOMEM;
    for (size_t j = 0; j < m->nfeatures; j++) {
        const feat_table_t *t = primary;
        const char *fname = m->features[j];
        const char *dot = strchr(fname, '.');
        if (dot) { /* TABLE.FEATURE (common/config.h) */
            char tn[FEAT_MAX_NAME + 1];
            snprintf(tn, sizeof(tn), "%.*s", (int)(dot - fname), fname);
            t = feat_store_table(st, tn);
            fname = dot + 1;
        }
        int f = t ? feat_table_feature_index(t->conf, fname, strlen(fname)) : -1;
        if (f < 0) {
            snprintf(errstr, errlen, "model %s: no feature %s in the store's tables", m->name, m->features[j]);
            return FEAT_ERR_NOT_FOUND;
        }
        size_t g;
        for (g = 0; g < b->ngroups && b->groups[g].t != t; g++) {}
        if (g == b->ngroups) {
            b->groups[g].t = t;
            b->groups[g].key = m->feats ? m->feats[j].key : -1;
            b->groups[g].fidx = calloc(m->nfeatures, sizeof(uint16_t));
            b->groups[g].pos = calloc(m->nfeatures, sizeof(size_t));
            b->ngroups++;
            if (!b->groups[g].fidx || !b->groups[g].pos) return FEAT_ERR_NOMEM;
        }
        group_t *gr = &b->groups[g];
        gr->fidx[gr->n] = (uint16_t)f;
        gr->pos[gr->n++] = j;
        out->defs[j].name = m->features[j]; /* the model's (qualified) name */
        out->defs[j].type = t->conf->features[f].type;
    }
    return FEAT_OK;
}

feat_err_t feat_trainset_build(feat_store_t *st, const feat_model_conf_t *m, int64_t from_ms, int64_t to_ms,
                               const feat_trainset_cb_t *cb, feat_trainset_t *out, char *errstr, size_t errlen) {
    memset(out, 0, sizeof(*out));
    if (errlen) errstr[0] = 0;
    feat_arena_init(&out->arena, 65536);
    const feat_table_t *t = feat_store_table(st, m->table);
    if (!t) {
        snprintf(errstr, errlen, "model %s: no table %s", m->name, m->table);
        return FEAT_ERR_NOT_FOUND;
    }
    out->nf = m->nfeatures;
    out->defs = calloc(out->nf ? out->nf : 1, sizeof(feat_feature_def_t));
    feat_value_t *vals = calloc(out->nf ? out->nf : 1, sizeof(feat_value_t));
    build_t b = {st, m, NULL, 0, NULL, vals, FEAT_BUF_INIT, out, cb, 0, 0, 0, FEAT_OK, errstr, errlen};
    b.binary = feat_model_conf_binary(m);
    feat_err_t rc = !out->defs || !vals ? FEAT_ERR_NOMEM : make_groups(st, m, t, &b, out, errstr, errlen);
    if (!rc) rc = feat_store_labels_keys(st, m->name, from_ms, to_ms, count_label, &b);
    if (!rc) {
        b.reader = feat_pit_reader_new(st);
        if (!b.reader) rc = FEAT_ERR_NOMEM;
    }
    if (!rc) rc = feat_store_labels_keys(st, m->name, from_ms, to_ms, on_label, &b);
    if (!rc) rc = b.rc;
    if (rc && !*errstr) snprintf(errstr, errlen, "building the training set: %s", feat_err_str(rc));
    if (cb && cb->progress && !rc) cb->progress(cb->arg, b.done, b.total);
    feat_pit_reader_destroy(b.reader);
    feat_buf_free(&b.strings);
    for (size_t g = 0; b.groups && g < b.ngroups; g++) {
        free(b.groups[g].fidx);
        free(b.groups[g].pos);
    }
    free(b.groups);
    free(vals);
    if (rc) feat_trainset_free(out);
    return rc;
}

void feat_trainset_free(feat_trainset_t *ts) {
    free(ts->defs);
    free(ts->rows);
    free(ts->labels);
    free(ts->ts);
    free(ts->keys);
    feat_arena_free(&ts->arena);
    memset(ts, 0, sizeof(*ts));
}

/* A row's sort key for feat_trainset_sort. */
typedef struct row_ord {
    int64_t ts;
    const char *key;
    size_t i;
} row_ord_t;

static int row_cmp(const void *a, const void *b) {
    const row_ord_t *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->i < y->i ? -1 : x->i > y->i);
}

feat_err_t feat_trainset_sort(feat_trainset_t *o) {
    if (o->n) {
        o->from_ms = o->ts[0]; /* rows gathered from peers: the range is set here */
        o->to_ms = o->ts[0];
    }
    if (o->n < 2) return FEAT_OK;
    row_ord_t *ix = malloc(o->n * sizeof(row_ord_t));
    feat_raw_t *rows = malloc(o->n * (o->nf ? o->nf : 1) * sizeof(feat_raw_t));
    double *labels = malloc(o->n * sizeof(double));
    int64_t *ts = malloc(o->n * sizeof(int64_t));
    char **keys = malloc(o->n * sizeof(char *));
    feat_err_t rc = ix && rows && labels && ts && keys ? FEAT_OK : FEAT_ERR_NOMEM;
    if (!rc) {
        for (size_t i = 0; i < o->n; i++) ix[i] = (row_ord_t){o->ts[i], o->keys[i], i};
        qsort(ix, o->n, sizeof(row_ord_t), row_cmp);
        for (size_t i = 0; i < o->n; i++) {
            size_t k = ix[i].i;
            memcpy(rows + i * o->nf, o->rows + k * o->nf, o->nf * sizeof(feat_raw_t));
            labels[i] = o->labels[k];
            ts[i] = o->ts[k];
            keys[i] = o->keys[k];
        }
        free(o->rows), o->rows = rows, rows = NULL;
        free(o->labels), o->labels = labels, labels = NULL;
        free(o->ts), o->ts = ts, ts = NULL;
        free(o->keys), o->keys = keys, keys = NULL;
        o->cap = o->n;
        o->from_ms = o->ts[0];
        o->to_ms = o->ts[o->n - 1];
    }
    free(ix);
    free(rows);
    free(labels);
    free(ts);
    free(keys);
    return rc;
}
