/*
 * train/core/prep.c — fitting and applying preprocessing (see prep.h).
 *
 * Fitting counts categories in an open-addressing hash table keyed by
 * FNV-1a; applying looks a string up in a small per-feature table of the K
 * kept categories (hash, then bytes), so the serving path never allocates.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "train/core/internal.h"
#include "train/core/prep.h"

#define CLIP 1e6

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* t clipped to [−CLIP, CLIP] without branches (minsd/maxsd on x86). */
static inline double clip(double t) {
#if defined(__SSE2__)
    __m128d v = _mm_set_sd(t);
    v = _mm_min_sd(v, _mm_set_sd(CLIP));
    v = _mm_max_sd(v, _mm_set_sd(-CLIP));
    return _mm_cvtsd_f64(v);
#else
    t = t < CLIP ? t : CLIP;
    return t > -CLIP ? t : -CLIP;
#endif
}

void feat_prep_conf_init(feat_prep_conf_t *c) {
    if (!c)
        return;
    c->top_k = 16;
    c->hash_buckets = 8;
    c->min_count = 1;
    c->missing_indicators = 1;
    c->raw = 0;
}

/* ---- value conversion ------------------------------------------------- */

/* 1 and *x when v is a present numeric value. */
static inline int num_value(const feat_raw_t *v, double *x) {
    switch (v->type) {
    case FEAT_V_DOUBLE:
        if (!isfinite(v->v.f64))
            return 0;
        *x = v->v.f64;
        return 1;
    case FEAT_V_INT64:
        *x = (double)v->v.i64;
        return 1;
    case FEAT_V_BOOL:
        *x = v->v.b ? 1.0 : 0.0;
        return 1;
    default:
        return 0;
    }
}

/* 1 and the bytes of v as a category (buf: 24 bytes for int64 text). */
static inline int str_value(const feat_raw_t *v, char *buf, const char **s, uint32_t *len) {
    switch (v->type) {
    case FEAT_V_STRING:
        if (!v->v.str && v->len)
            return 0;
        *s = v->v.str ? v->v.str : "";
        *len = v->len;
        return 1;
    case FEAT_V_BOOL:
        *s = v->v.b ? "true" : "false";
        *len = v->v.b ? 4u : 5u;
        return 1;
    case FEAT_V_INT64: {
        int64_t i = v->v.i64;
        uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
        char *e = buf + 24, *p = e;
        do {
            *--p = (char)('0' + (int)(u % 10));
            u /= 10;
        } while (u);
        if (i < 0)
            *--p = '-';
        *s = p;
        *len = (uint32_t)(e - p);
        return 1;
    }
    default:
        return 0;
    }
}

/* ---- category lookup -------------------------------------------------- */

/* Equal bytes?  Inline: categories are short, a libc call costs more. */
static inline int bytes_eq(const char *a, const char *b, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static inline long cat_lookup(const feat_prep_feat_t *f, uint64_t h, const char *s, uint32_t len) {
    if (!f->tab)
        return -1;
    uint32_t i = (uint32_t)h & f->tab_mask;
    for (;;) {
        const feat_cat_slot_t *sl = &f->tab[i];
        if (!sl->idx1)
            return -1;
        if (sl->hash == h) {
            uint32_t k = sl->idx1 - 1;
            if (f->cat_len[k] == len && bytes_eq(f->cats[k], s, len))
                return (long)k;
        }
        i = (i + 1) & f->tab_mask;
    }
}

static feat_err_t build_table(feat_prep_feat_t *f) {
    free(f->tab);
    f->tab = NULL;
    f->tab_mask = 0;
    if (f->n_cats == 0)
        return FEAT_OK;
    uint32_t cap = 4;
    while (cap < 2 * f->n_cats)
        cap <<= 1;
    f->tab = (feat_cat_slot_t *)calloc(cap, sizeof(*f->tab));
    if (!f->tab)
        return FEAT_ERR_NOMEM;
    f->tab_mask = cap - 1;
    for (uint32_t k = 0; k < f->n_cats; k++) {
        uint64_t h = feat_fnv1a64(f->cats[k], f->cat_len[k]);
        if (cat_lookup(f, h, f->cats[k], f->cat_len[k]) >= 0)
            return FEAT_ERR_INVALID; /* duplicate category */
        uint32_t i = (uint32_t)h & f->tab_mask;
        while (f->tab[i].idx1)
            i = (i + 1) & f->tab_mask;
        f->tab[i].hash = h;
        f->tab[i].idx1 = k + 1;
    }
    return FEAT_OK;
}

/* ---- allocation ------------------------------------------------------- */

feat_err_t feat_prep_alloc(const feat_prep_conf_t *conf, size_t nf, feat_prep_t **out) {
    *out = NULL;
    feat_prep_t *p = (feat_prep_t *)calloc(1, sizeof(*p));
    if (!p)
        return FEAT_ERR_NOMEM;
    p->conf = *conf;
    p->nf = nf;
    p->f = (feat_prep_feat_t *)calloc(nf ? nf : 1, sizeof(*p->f));
    if (!p->f) {
        free(p);
        return FEAT_ERR_NOMEM;
    }
    *out = p;
    return FEAT_OK;
}

void feat_prep_destroy(feat_prep_t *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->nf; i++) {
        feat_prep_feat_t *f = &p->f[i];
        free(f->name);
        if (f->cats)
            for (uint32_t k = 0; k < f->n_cats; k++)
                free(f->cats[k]);
        free(f->cats);
        free(f->cat_len);
        free(f->tab);
    }
    free(p->f);
    free(p->ops);
    free(p);
}

feat_err_t feat_prep_finish(feat_prep_t *p) {
    uint64_t off = 0;
    free(p->ops);
    p->ops = (feat_prep_op_t *)calloc(p->nf ? p->nf : 1, sizeof(*p->ops));
    if (!p->ops)
        return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < p->nf; i++) {
        feat_prep_feat_t *f = &p->f[i];
        f->offset = (uint32_t)off;
        if (feat_ftype_numeric(f->type)) {
            if (p->conf.raw)
                f->indicator = 0; /* raw: a missing number is NaN, never an indicator column */
            f->width = 1 + (f->indicator ? 1u : 0u);
            f->inv_std = 1.0 / f->std;
        } else {
            f->width = f->n_cats + f->buckets + (f->indicator ? 1u : 0u);
            feat_err_t e = build_table(f);
            if (e != FEAT_OK)
                return e;
        }
        off += f->width;
        if (off > FEAT_TRAIN_MAX_INPUT_DIM)
            return FEAT_ERR_INVALID;
        feat_prep_op_t *op = &p->ops[i];
        op->off = f->offset;
        op->is_string = feat_ftype_numeric(f->type) ? 0 : 1;
        op->fast_type = op->is_string ? 0xffffffffu : (uint32_t)FEAT_V_DOUBLE;
        op->indicator = (uint16_t)(op->is_string ? 0 : f->indicator);
        op->mean = f->mean;
        op->inv_std = f->inv_std;
    }
    if (off == 0)
        return FEAT_ERR_INVALID;
    p->dim = (uint32_t)off;
    return FEAT_OK;
}

/* ---- fitting ---------------------------------------------------------- */

typedef struct count_ent {
    uint64_t hash;
    uint64_t count;
    char *key;                /* NULL = empty slot */
    uint32_t len;
} count_ent_t;

typedef struct count_map {
    count_ent_t *e;
    size_t cap, used;
} count_map_t;

static void count_map_free(count_map_t *m) {
    for (size_t i = 0; i < m->cap; i++)
        free(m->e[i].key);
    free(m->e);
    m->e = NULL;
    m->cap = m->used = 0;
}

static count_ent_t *count_slot(count_ent_t *e, size_t cap, uint64_t h, const char *s, uint32_t len) {
    size_t i = (size_t)h & (cap - 1);
    for (;;) {
        if (!e[i].key)
            return &e[i];
        if (e[i].hash == h && e[i].len == len && memcmp(e[i].key, s, len) == 0)
            return &e[i];
        i = (i + 1) & (cap - 1);
    }
}

static feat_err_t count_add(count_map_t *m, const char *s, uint32_t len) {
    if ((m->used + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 64;
        count_ent_t *ne = (count_ent_t *)calloc(ncap, sizeof(*ne));
        if (!ne)
            return FEAT_ERR_NOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->e[i].key)
                *count_slot(ne, ncap, m->e[i].hash, m->e[i].key, m->e[i].len) = m->e[i];
        free(m->e);
        m->e = ne;
        m->cap = ncap;
    }
    uint64_t h = feat_fnv1a64(s, len);
    count_ent_t *sl = count_slot(m->e, m->cap, h, s, len);
    if (!sl->key) {
        sl->key = (char *)malloc((size_t)len + 1);
        if (!sl->key)
            return FEAT_ERR_NOMEM;
        if (len)
            memcpy(sl->key, s, len);
        sl->key[len] = '\0';
        sl->len = len;
        sl->hash = h;
        sl->count = 0;
        m->used++;
    }
    sl->count++;
    return FEAT_OK;
}

static int bytes_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen) {
    uint32_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int ent_order(const void *pa, const void *pb) {
    const count_ent_t *a = *(const count_ent_t *const *)pa;
    const count_ent_t *b = *(const count_ent_t *const *)pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return bytes_cmp(a->key, a->len, b->key, b->len);
}

static feat_err_t fit_string(feat_prep_feat_t *f, const feat_prep_conf_t *c, const feat_raw_t *rows,
                             size_t nf, size_t col, size_t n_rows) {
    count_map_t m = {NULL, 0, 0};
    feat_err_t e = FEAT_OK;
    size_t missing = 0;
    char buf[24];
    for (size_t r = 0; r < n_rows; r++) {
        const char *s;
        uint32_t len;
        if (!str_value(&rows[r * nf + col], buf, &s, &len)) {
            missing++;
            continue;
        }
        if (len > FEAT_TRAIN_MAX_CATEGORY)
            continue; /* present, but too long to store: never one-hot, still hashed */
        if ((e = count_add(&m, s, len)) != FEAT_OK)
            goto out;
    }
    f->indicator = (c->missing_indicators && missing > 0) ? 1u : 0u;
    f->buckets = c->hash_buckets;
    f->mean = 0.0;
    f->std = 1.0;
    if (m.used && c->top_k) {
        count_ent_t **v = (count_ent_t **)malloc(m.used * sizeof(*v));
        if (!v) {
            e = FEAT_ERR_NOMEM;
            goto out;
        }
        size_t nv = 0;
        uint64_t minc = c->min_count ? c->min_count : 1;
        for (size_t i = 0; i < m.cap; i++)
            if (m.e[i].key && m.e[i].count >= minc)
                v[nv++] = &m.e[i];
        qsort(v, nv, sizeof(*v), ent_order);
        uint32_t k = nv < c->top_k ? (uint32_t)nv : c->top_k;
        f->cats = (char **)calloc(k ? k : 1, sizeof(*f->cats));
        f->cat_len = (uint32_t *)calloc(k ? k : 1, sizeof(*f->cat_len));
        if (!f->cats || !f->cat_len) {
            free(v);
            e = FEAT_ERR_NOMEM;
            goto out;
        }
        for (uint32_t i = 0; i < k; i++) {
            f->cats[i] = v[i]->key; /* move the key out of the map */
            f->cat_len[i] = v[i]->len;
            v[i]->key = NULL;
            f->n_cats = i + 1;
        }
        free(v);
    }
out:
    count_map_free(&m);
    return e;
}

static void fit_numeric(feat_prep_feat_t *f, const feat_prep_conf_t *c, const feat_raw_t *rows,
                        size_t nf, size_t col, size_t n_rows) {
    size_t n = 0;
    double sum = 0.0, x;
    for (size_t r = 0; r < n_rows; r++)
        if (num_value(&rows[r * nf + col], &x)) {
            sum += x;
            n++;
        }
    double mean = n ? sum / (double)n : 0.0;
    double ss = 0.0;
    for (size_t r = 0; r < n_rows; r++)
        if (num_value(&rows[r * nf + col], &x))
            ss += (x - mean) * (x - mean);
    double sd = n ? sqrt(ss / (double)n) : 1.0;
    double floor_ = 1e-12 * (fabs(mean) > 1.0 ? fabs(mean) : 1.0);
    if (!(sd >= floor_) || !isfinite(sd))
        sd = 1.0;
    if (!isfinite(mean)) { /* sums overflowed: give up on centring */
        mean = 0.0;
        sd = 1.0;
    }
    f->mean = mean;
    f->std = sd;
    f->indicator = (c->missing_indicators && !c->raw && n < n_rows) ? 1u : 0u;
}

static int name_order(const void *a, const void *b) {
    const feat_feature_def_t *x = *(const feat_feature_def_t *const *)a;
    const feat_feature_def_t *y = *(const feat_feature_def_t *const *)b;
    return strcmp(x->name, y->name);
}

feat_err_t feat_prep_fit(const feat_prep_conf_t *conf, const feat_feature_def_t *features,
                         size_t n_features, const feat_raw_t *rows, size_t n_rows,
                         feat_prep_t **out) {
    if (!out)
        return FEAT_ERR_INVALID;
    *out = NULL;
    if (!conf || !features || (!rows && n_rows) || n_features == 0 ||
        n_features > FEAT_TRAIN_MAX_FEATURES || conf->top_k > FEAT_TRAIN_MAX_TOP_K ||
        conf->hash_buckets > FEAT_TRAIN_MAX_BUCKETS)
        return FEAT_ERR_INVALID;
    for (size_t i = 0; i < n_features; i++) {
        const char *nm = features[i].name;
        if (!nm || !nm[0] || strlen(nm) > FEAT_TRAIN_MAX_NAME ||
            features[i].type < FEAT_FT_DOUBLE || features[i].type > FEAT_FT_STRING)
            return FEAT_ERR_INVALID;
    }
    /* duplicate names */
    const feat_feature_def_t **byname =
        (const feat_feature_def_t **)malloc(n_features * sizeof(*byname));
    if (!byname)
        return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < n_features; i++)
        byname[i] = &features[i];
    qsort(byname, n_features, sizeof(*byname), name_order);
    for (size_t i = 1; i < n_features; i++)
        if (strcmp(byname[i - 1]->name, byname[i]->name) == 0) {
            free(byname);
            return FEAT_ERR_INVALID;
        }
    free(byname);

    feat_prep_conf_t c = *conf;
    c.missing_indicators = c.missing_indicators ? 1u : 0u;
    c.raw = c.raw ? 1u : 0u;
    if (c.min_count == 0)
        c.min_count = 1;
    feat_prep_t *p;
    feat_err_t e = feat_prep_alloc(&c, n_features, &p);
    if (e != FEAT_OK)
        return e;
    for (size_t i = 0; i < n_features; i++) {
        feat_prep_feat_t *f = &p->f[i];
        f->type = features[i].type;
        f->name = strdup(features[i].name);
        if (!f->name) {
            e = FEAT_ERR_NOMEM;
            goto fail;
        }
        if (feat_ftype_numeric(f->type))
            fit_numeric(f, &c, rows, n_features, i, n_rows);
        else if ((e = fit_string(f, &c, rows, n_features, i, n_rows)) != FEAT_OK)
            goto fail;
    }
    if ((e = feat_prep_finish(p)) != FEAT_OK)
        goto fail;
    *out = p;
    return FEAT_OK;
fail:
    feat_prep_destroy(p);
    return e;
}

/* ---- applying --------------------------------------------------------- */

size_t feat_prep_n_features(const feat_prep_t *p) { return p ? p->nf : 0; }
size_t feat_prep_dim(const feat_prep_t *p) { return p ? p->dim : 0; }

/* One string feature: zeros, then the one-hot, bucket or indicator column. */
static void apply_string(const feat_prep_feat_t *f, const feat_raw_t *v, float *o) {
    char buf[24];
    for (uint32_t k = 0; k < f->width; k++)
        o[k] = 0.0f;
    const char *s;
    uint32_t len;
    if (!str_value(v, buf, &s, &len)) {
        if (f->indicator)
            o[f->width - 1] = 1.0f;
        return;
    }
    uint64_t h = feat_fnv1a64(s, len);
    long k = cat_lookup(f, h, s, len);
    if (k >= 0)
        o[k] = 1.0f;
    else if (f->buckets)
        o[f->n_cats + (uint32_t)(h % f->buckets)] = 1.0f;
}

void feat_prep_apply(const feat_prep_t *p, const feat_raw_t *row, float *out) {
    const feat_prep_op_t *ops = p->ops;
    for (size_t i = 0; i < p->nf; i++) {
        const feat_prep_op_t *op = &ops[i];
        const feat_raw_t *v = &row[i];
        float *o = out + op->off;
        if (op->is_string) {
            apply_string(&p->f[i], v, o);
            continue;
        }
        double x = v->v.f64;
        int present;
        if (v->type == FEAT_V_DOUBLE) /* the common case, without a switch */
            present = fabs(x) <= DBL_MAX;
        else
            present = num_value(v, &x);
        if (p->conf.raw) {
            o[0] = present ? (float)x : NAN;
            continue;
        }
        const double t = clip((x - op->mean) * op->inv_std);
        o[0] = present ? (float)t : 0.0f;
        if (op->indicator)
            o[1] = present ? 0.0f : 1.0f;
    }
}

uint32_t feat_prep_apply_sparse(const feat_prep_t *p, const feat_raw_t *row, uint32_t *idx,
                                double *val) {
    const feat_prep_op_t *ops = p->ops;
    uint32_t n = 0;
    char buf[24];
    for (size_t i = 0; i < p->nf; i++) {
        const feat_prep_op_t *op = &ops[i];
        const feat_raw_t *v = &row[i];
        double x = v->v.f64;
        /* fast path: a numeric feature holding a finite double */
        if (v->type == op->fast_type && fabs(x) <= DBL_MAX) {
            const float z = (float)clip((x - op->mean) * op->inv_std);
            uint32_t bits;
            memcpy(&bits, &z, sizeof(bits));
            idx[n] = op->off;
            val[n] = (double)z;
            n += (bits << 1) != 0; /* z != 0 (z is never NaN), as integer ops */
            continue;
        }
        if (op->is_string) {
            const feat_prep_feat_t *f = &p->f[i];
            const char *s;
            uint32_t len;
            if (!str_value(v, buf, &s, &len)) {
                if (f->indicator) {
                    idx[n] = op->off + f->width - 1;
                    val[n++] = 1.0;
                }
                continue;
            }
            uint64_t h = feat_fnv1a64(s, len);
            long k = cat_lookup(f, h, s, len);
            if (k >= 0) {
                idx[n] = op->off + (uint32_t)k;
                val[n++] = 1.0;
            } else if (f->buckets) {
                idx[n] = op->off + f->n_cats + (uint32_t)(h % f->buckets);
                val[n++] = 1.0;
            }
            continue;
        }
        if (num_value(v, &x)) {
            const float z = (float)clip((x - op->mean) * op->inv_std);
            idx[n] = op->off;
            val[n] = (double)z;
            n += z != 0.0f;
        } else if (op->indicator) {
            idx[n] = op->off + 1;
            val[n++] = 1.0;
        }
    }
    return n;
}

feat_err_t feat_prep_info(const feat_prep_t *p, size_t i, feat_prep_info_t *info) {
    if (!p || !info || i >= p->nf)
        return FEAT_ERR_INVALID;
    const feat_prep_feat_t *f = &p->f[i];
    info->name = f->name;
    info->type = f->type;
    info->offset = f->offset;
    info->width = f->width;
    info->indicator = f->indicator;
    info->mean = feat_ftype_numeric(f->type) ? f->mean : 0.0;
    info->std = feat_ftype_numeric(f->type) ? f->std : 1.0;
    info->n_categories = f->n_cats;
    info->hash_buckets = feat_ftype_numeric(f->type) ? 0u : f->buckets;
    return FEAT_OK;
}

const char *feat_prep_category(const feat_prep_t *p, size_t i, size_t k, size_t *len) {
    if (!p || i >= p->nf || k >= p->f[i].n_cats)
        return NULL;
    if (len)
        *len = p->f[i].cat_len[k];
    return p->f[i].cats[k];
}
