/*
 * train/core/blob.c — the model blob: a versioned little-endian encoding of
 * a feat_model_t (format in model.h).
 *
 * The decoder treats its input as hostile: every read is bounds-checked,
 * every count is checked against the bytes left before anything is sized
 * from it, and every value is range-checked, so corrupt or truncated bytes
 * give FEAT_ERR_CORRUPT and never a crash or a huge allocation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "train/core/internal.h"
#include "train/core/model.h"

#define MAGIC "FTMB"
#define HEADER 16u

/* ---- writer ----------------------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} wbuf_t;

static void put(wbuf_t *w, const void *src, size_t n) {
    if (w->oom)
        return;
    if (w->len + n > w->cap) {
        size_t nc = w->cap ? w->cap : 256;
        while (nc < w->len + n)
            nc *= 2;
        uint8_t *np = (uint8_t *)realloc(w->p, nc);
        if (!np) {
            w->oom = 1;
            return;
        }
        w->p = np;
        w->cap = nc;
    }
    if (n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_u32(wbuf_t *w, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(w, b, 4);
}

static void put_u64(wbuf_t *w, uint64_t v) {
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_f64(wbuf_t *w, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64(w, u);
}

static void put_str(wbuf_t *w, const char *s, size_t n) {
    put_u32(w, (uint32_t)n);
    put(w, s, n);
}

static void put_metrics(wbuf_t *w, const feat_eval_t *m) {
    put_f64(w, m->auc);
    put_f64(w, m->logloss);
    put_f64(w, m->accuracy);
    put_f64(w, m->rmse);
    put_f64(w, m->mae);
}

static void put_trees(wbuf_t *w, const feat_trees_t *t) {
    size_t nt = feat_trees_ntrees(t), nn = feat_trees_nnodes(t);
    uint32_t *counts = (uint32_t *)malloc(nt * sizeof(*counts));
    feat_tree_node_t *nodes = (feat_tree_node_t *)malloc(nn * sizeof(*nodes));
    if (!counts || !nodes) {
        w->oom = 1;
    } else {
        feat_trees_export(t, counts, nodes);
        float base = feat_trees_base_margin(t);
        uint32_t bits;
        memcpy(&bits, &base, 4);
        put_u32(w, (uint32_t)feat_trees_link(t));
        put_u32(w, bits);
        put_u32(w, (uint32_t)nt);
        for (size_t i = 0; i < nt; i++)
            put_u32(w, counts[i]);
        for (size_t i = 0; i < nn; i++) {
            memcpy(&bits, &nodes[i].value, 4);
            put_u32(w, bits);
            put_u32(w, (uint32_t)nodes[i].feature);
            put_u32(w, nodes[i].left);
            put_u32(w, nodes[i].right);
            put_u32(w, nodes[i].default_left);
        }
    }
    free(counts);
    free(nodes);
}

static void write_u32_at(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

feat_err_t feat_model_serialize(const feat_model_t *m, void **out, size_t *out_len) {
    if (!out || !out_len)
        return FEAT_ERR_INVALID;
    *out = NULL;
    *out_len = 0;
    if (!m)
        return FEAT_ERR_INVALID;
    wbuf_t w = {NULL, 0, 0, 0};
    const feat_model_info_t *in = &m->info;
    const feat_hyper_t *h = &in->hyper;
    const feat_prep_t *p = m->prep;

    /* version 1 unless the model needs version 2 (trees): an instance not
     * upgraded yet still reads every other model (rolling upgrades, the
     * cluster's models topic) */
    const uint32_t version = m->trees ? FEAT_MODEL_BLOB_VERSION : 1u;
    put(&w, MAGIC, 4);
    put_u32(&w, version);
    put_u32(&w, 0); /* payload length, patched below */
    put_u32(&w, 0); /* CRC, patched below */

    put_u32(&w, (uint32_t)in->kind);
    put_u32(&w, (uint32_t)in->task);
    put_f64(&w, h->learning_rate);
    put_f64(&w, h->l2);
    put_f64(&w, h->beta1);
    put_f64(&w, h->beta2);
    put_f64(&w, h->epsilon);
    put_u32(&w, h->hidden);
    put_u32(&w, h->epochs);
    put_u32(&w, h->batch_size);
    put_u32(&w, h->activation);
    put_u32(&w, h->shuffle);
    put_u64(&w, h->seed);
    if (version >= 2) {
        put_u32(&w, h->trees);
        put_u32(&w, h->max_depth);
        put_u32(&w, h->early_stopping);
        put_f64(&w, h->subsample);
        put_f64(&w, h->min_child_weight);
    }
    put_str(&w, m->label, strlen(m->label));

    put_u32(&w, p->conf.top_k);
    put_u32(&w, p->conf.hash_buckets);
    put_u32(&w, p->conf.min_count);
    put_u32(&w, p->conf.missing_indicators);
    if (version >= 2)
        put_u32(&w, p->conf.raw);
    put_u32(&w, (uint32_t)p->nf);
    for (size_t i = 0; i < p->nf; i++) {
        const feat_prep_feat_t *f = &p->f[i];
        put_str(&w, f->name, strlen(f->name));
        put_u32(&w, (uint32_t)f->type);
        put_u32(&w, f->indicator);
        if (feat_ftype_numeric(f->type)) {
            put_f64(&w, f->mean);
            put_f64(&w, f->std);
        } else {
            put_u32(&w, f->n_cats);
            for (uint32_t k = 0; k < f->n_cats; k++)
                put_str(&w, f->cats[k], f->cat_len[k]);
            put_u32(&w, f->buckets);
        }
    }
    put_f64(&w, in->y_mean);
    put_f64(&w, in->y_std);

    put_u32(&w, m->params.d);
    put_u32(&w, m->params.h);
    put_u32(&w, (uint32_t)m->params.n);
    for (size_t i = 0; i < m->params.n; i++)
        put_f64(&w, m->params.w[i]);
    if (m->trees)
        put_trees(&w, m->trees);

    put_u64(&w, in->n_train);
    put_u64(&w, in->n_valid);
    put_f64(&w, in->train_seconds);
    put_u32(&w, (uint32_t)in->backend);
    put_metrics(&w, &in->train);
    put_metrics(&w, &in->valid);

    if (w.oom || w.len - HEADER > 0xffffffffu) {
        free(w.p);
        return w.oom ? FEAT_ERR_NOMEM : FEAT_ERR_TOO_LARGE;
    }
    write_u32_at(w.p + 8, (uint32_t)(w.len - HEADER));
    write_u32_at(w.p + 12, feat_crc32(0, w.p + HEADER, w.len - HEADER));
    *out = w.p;
    *out_len = w.len;
    return FEAT_OK;
}

/* ---- reader ----------------------------------------------------------- */

typedef struct rbuf {
    const uint8_t *p;
    size_t len, pos;
    const char *bad;          /* first problem, NULL while fine */
} rbuf_t;

static void fail(rbuf_t *r, const char *why) {
    if (!r->bad)
        r->bad = why;
}

static size_t left(const rbuf_t *r) { return r->bad ? 0 : r->len - r->pos; }

static const uint8_t *take(rbuf_t *r, size_t n) {
    if (r->bad)
        return NULL;
    if (n > r->len - r->pos) {
        fail(r, "truncated");
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

static uint32_t get_u32(rbuf_t *r) {
    const uint8_t *b = take(r, 4);
    if (!b)
        return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(rbuf_t *r) {
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

static double get_f64(rbuf_t *r) {
    uint64_t u = get_u64(r);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* A string of at most max bytes with no NUL (when nonul): a malloc'd
 * NUL-terminated copy, or NULL (with r->bad set, or on ENOMEM with *oom). */
static char *get_str(rbuf_t *r, uint32_t max, int nonul, uint32_t *len_out, int *oom) {
    uint32_t n = get_u32(r);
    if (r->bad)
        return NULL;
    if (n > max) {
        fail(r, "string too long");
        return NULL;
    }
    const uint8_t *b = take(r, n);
    if (!b)
        return NULL;
    if (nonul && n && memchr(b, 0, n)) {
        fail(r, "NUL inside a name");
        return NULL;
    }
    char *s = (char *)malloc((size_t)n + 1);
    if (!s) {
        *oom = 1;
        fail(r, "out of memory");
        return NULL;
    }
    if (n)
        memcpy(s, b, n);
    s[n] = '\0';
    if (len_out)
        *len_out = n;
    return s;
}

static void get_metrics(rbuf_t *r, feat_eval_t *m) {
    m->auc = get_f64(r);
    m->logloss = get_f64(r);
    m->accuracy = get_f64(r);
    m->rmse = get_f64(r);
    m->mae = get_f64(r);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The trees section of a blob for inputs of width d (feat_trees_new checks the rest). */
static feat_trees_t *get_trees(rbuf_t *r, uint32_t d, int *oom) {
    feat_trees_spec_t spec;
    memset(&spec, 0, sizeof(spec));
    spec.nfeatures = d;
    spec.link = (feat_trees_link_t)get_u32(r);
    uint32_t bits = get_u32(r);
    memcpy(&spec.base_margin, &bits, 4);
    uint32_t nt = get_u32(r);
    if (spec.link != FEAT_TREES_IDENTITY && spec.link != FEAT_TREES_LOGISTIC)
        fail(r, "unknown tree link");
    if (nt < 1 || (size_t)nt > left(r) / 4)
        fail(r, "bad tree count");
    if (r->bad)
        return NULL;
    uint32_t *counts = (uint32_t *)malloc((size_t)nt * sizeof(*counts));
    feat_tree_node_t *nodes = NULL;
    uint64_t total = 0;
    if (!counts)
        goto nomem;
    for (uint32_t t = 0; t < nt; t++) {
        counts[t] = get_u32(r);
        total += counts[t];
    }
    if (!r->bad && total > (uint64_t)(left(r) / 20))  /* 20 bytes a node */
        fail(r, "truncated");
    if (r->bad) {
        free(counts);
        return NULL;
    }
    if (!(nodes = (feat_tree_node_t *)malloc((size_t)(total ? total : 1) * sizeof(*nodes))))
        goto nomem;
    for (uint64_t i = 0; i < total; i++) {
        bits = get_u32(r);
        memcpy(&nodes[i].value, &bits, 4);
        nodes[i].feature = (int32_t)get_u32(r);
        nodes[i].left = get_u32(r);
        nodes[i].right = get_u32(r);
        uint32_t dl = get_u32(r);
        if (dl > 1)
            fail(r, "bad default direction");
        nodes[i].default_left = (uint8_t)dl;
    }
    feat_trees_t *t = NULL;
    if (!r->bad) {
        spec.ntrees = nt;
        spec.tree_nodes = counts;
        spec.nodes = nodes;
        char why[160];
        feat_err_t e = feat_trees_new(&spec, &t, why, sizeof(why));
        if (e == FEAT_ERR_NOMEM)
            goto nomem;
        if (e != FEAT_OK)
            fail(r, "bad trees");
    }
    free(counts);
    free(nodes);
    return t;
nomem:
    free(counts);
    free(nodes);
    *oom = 1;
    fail(r, "out of memory");
    return NULL;
}

feat_err_t feat_model_deserialize(const void *buf, size_t len, feat_model_t **out,
                                  char *errstr, size_t errstr_size) {
    if (!out) {
        feat_errf(errstr, errstr_size, "NULL output pointer");
        return FEAT_ERR_INVALID;
    }
    *out = NULL;
    if (!buf && len) {
        feat_errf(errstr, errstr_size, "NULL buffer");
        return FEAT_ERR_INVALID;
    }
    const uint8_t *b = (const uint8_t *)buf;
    if (len < HEADER || memcmp(b, MAGIC, 4) != 0) {
        feat_errf(errstr, errstr_size, "model blob: %s", len < HEADER ? "shorter than its header" : "bad magic");
        return FEAT_ERR_CORRUPT;
    }
    rbuf_t r = {b, len, 4, NULL};
    uint32_t version = get_u32(&r), plen = get_u32(&r), crc = get_u32(&r);
    if (version != 1 && version != FEAT_MODEL_BLOB_VERSION) {
        feat_errf(errstr, errstr_size, "model blob: unsupported version %u (this build reads 1 to %u)",
                  version, FEAT_MODEL_BLOB_VERSION);
        return FEAT_ERR_CORRUPT;
    }
    if ((uint64_t)plen != (uint64_t)(len - HEADER)) {
        feat_errf(errstr, errstr_size, "model blob: %zu payload bytes, header says %u",
                  len - HEADER, plen);
        return FEAT_ERR_CORRUPT;
    }
    if (feat_crc32(0, b + HEADER, len - HEADER) != crc) {
        feat_errf(errstr, errstr_size, "model blob: checksum mismatch");
        return FEAT_ERR_CORRUPT;
    }

    int oom = 0;
    feat_prep_t *prep = NULL;
    feat_params_t params;
    memset(&params, 0, sizeof(params));
    char *label = NULL;
    feat_model_info_t info;
    memset(&info, 0, sizeof(info));
    feat_err_t e;

    uint32_t kind = get_u32(&r), task = get_u32(&r);
    if (kind < FEAT_MODEL_LOGREG || kind > (version >= 2 ? FEAT_MODEL_TREES : FEAT_MODEL_MLP))
        fail(&r, "unknown model kind");
    if (task != FEAT_TASK_BINARY && task != FEAT_TASK_REGRESSION)
        fail(&r, "unknown task");
    if ((kind == FEAT_MODEL_LOGREG && task != FEAT_TASK_BINARY) ||
        (kind == FEAT_MODEL_LINREG && task != FEAT_TASK_REGRESSION))
        fail(&r, "task does not match the model kind");
    feat_hyper_t *h = &info.hyper;
    feat_hyper_init(h); /* a version-1 blob leaves the tree fields at their defaults */
    h->learning_rate = get_f64(&r);
    h->l2 = get_f64(&r);
    h->beta1 = get_f64(&r);
    h->beta2 = get_f64(&r);
    h->epsilon = get_f64(&r);
    h->hidden = get_u32(&r);
    h->epochs = get_u32(&r);
    h->batch_size = get_u32(&r);
    h->activation = get_u32(&r);
    h->shuffle = get_u32(&r);
    h->seed = get_u64(&r);
    if (version >= 2) {
        h->trees = get_u32(&r);
        h->max_depth = get_u32(&r);
        h->early_stopping = get_u32(&r);
        h->subsample = get_f64(&r);
        h->min_child_weight = get_f64(&r);
    }
    if (!r.bad && feat_hyper_check(h))
        fail(&r, feat_hyper_check(h));
    label = get_str(&r, FEAT_TRAIN_MAX_NAME, 1, NULL, &oom);

    feat_prep_conf_t pc;
    pc.top_k = get_u32(&r);
    pc.hash_buckets = get_u32(&r);
    pc.min_count = get_u32(&r);
    pc.missing_indicators = get_u32(&r);
    pc.raw = version >= 2 ? get_u32(&r) : 0;
    if (pc.top_k > FEAT_TRAIN_MAX_TOP_K || pc.hash_buckets > FEAT_TRAIN_MAX_BUCKETS || pc.min_count < 1 ||
        pc.missing_indicators > 1 || pc.raw > 1 || (pc.raw != 0) != (kind == FEAT_MODEL_TREES))
        fail(&r, "preprocessing configuration out of range");
    uint32_t nf = get_u32(&r);
    /* each feature takes at least 4 (name) + 1 + 4 + 4 + 8 bytes */
    if (nf < 1 || nf > FEAT_TRAIN_MAX_FEATURES || (size_t)nf > left(&r) / 21)
        fail(&r, "bad feature count");
    if (!r.bad && feat_prep_alloc(&pc, nf, &prep) != FEAT_OK) {
        oom = 1;
        fail(&r, "out of memory");
    }
    for (uint32_t i = 0; i < nf && !r.bad; i++) {
        feat_prep_feat_t *f = &prep->f[i];
        uint32_t nlen = 0;
        f->name = get_str(&r, FEAT_TRAIN_MAX_NAME, 1, &nlen, &oom);
        if (f->name && nlen == 0)
            fail(&r, "empty feature name");
        uint32_t type = get_u32(&r);
        if (type < FEAT_FT_DOUBLE || type > FEAT_FT_STRING)
            fail(&r, "unknown feature type");
        f->type = (feat_ftype_t)type;
        f->indicator = get_u32(&r);
        if (f->indicator > 1 || (pc.raw && f->indicator && feat_ftype_numeric(f->type)))
            fail(&r, "bad indicator flag");
        if (r.bad)
            break;
        if (feat_ftype_numeric(f->type)) {
            f->mean = get_f64(&r);
            f->std = get_f64(&r);
            if (!isfinite(f->mean) || !isfinite(f->std) || !(f->std > 0.0))
                fail(&r, "bad mean or standard deviation");
            continue;
        }
        f->mean = 0.0;
        f->std = 1.0;
        uint32_t k = get_u32(&r);
        if (k > FEAT_TRAIN_MAX_TOP_K || (size_t)k > left(&r) / 4) {
            fail(&r, "bad category count");
            break;
        }
        f->cats = (char **)calloc(k ? k : 1, sizeof(char *));
        f->cat_len = (uint32_t *)calloc(k ? k : 1, sizeof(uint32_t));
        if (!f->cats || !f->cat_len) {
            oom = 1;
            fail(&r, "out of memory");
            break;
        }
        for (uint32_t c = 0; c < k && !r.bad; c++) {
            f->cats[c] = get_str(&r, FEAT_TRAIN_MAX_CATEGORY, 0, &f->cat_len[c], &oom);
            if (f->cats[c])
                f->n_cats = c + 1;
        }
        f->buckets = get_u32(&r);
        if (f->buckets > FEAT_TRAIN_MAX_BUCKETS)
            fail(&r, "bad bucket count");
    }
    if (!r.bad) {
        char **names = (char **)malloc((size_t)nf * sizeof(char *));
        if (!names) {
            oom = 1;
            fail(&r, "out of memory");
        } else {
            for (uint32_t i = 0; i < nf; i++)
                names[i] = prep->f[i].name;
            qsort(names, nf, sizeof(char *), name_cmp);
            for (uint32_t i = 1; i < nf; i++)
                if (strcmp(names[i - 1], names[i]) == 0)
                    fail(&r, "duplicate feature name");
            free(names);
        }
    }
    if (!r.bad) {
        e = feat_prep_finish(prep);
        if (e == FEAT_ERR_NOMEM) {
            oom = 1;
            fail(&r, "out of memory");
        } else if (e != FEAT_OK) {
            fail(&r, "bad preprocessing (input too wide or duplicate category)");
        }
    }
    info.y_mean = get_f64(&r);
    info.y_std = get_f64(&r);
    if (!isfinite(info.y_mean) || !isfinite(info.y_std) || !(info.y_std > 0.0))
        fail(&r, "bad target scaling");

    uint32_t d = get_u32(&r), hid = get_u32(&r), nw = get_u32(&r);
    if (!r.bad) {
        if (d != prep->dim)
            fail(&r, "input width does not match the preprocessing");
        else if ((kind == FEAT_MODEL_MLP) != (hid != 0))
            fail(&r, "hidden units do not match the model kind");
        else if (kind == FEAT_MODEL_TREES ? nw != 0 : nw == 0 || nw != feat_params_count((feat_model_kind_t)kind, d, hid))
            fail(&r, "weight count does not match the dimensions");
        else if ((size_t)nw > left(&r) / 8)
            fail(&r, "truncated");
    }
    feat_trees_t *trees = NULL;
    if (!r.bad && kind == FEAT_MODEL_TREES)
        trees = get_trees(&r, d, &oom);
    if (!r.bad && kind != FEAT_MODEL_TREES) {
        params.w = (double *)malloc((size_t)nw * sizeof(double));
        if (!params.w) {
            oom = 1;
            fail(&r, "out of memory");
        }
    }
    if (!r.bad && kind != FEAT_MODEL_TREES) {
        params.kind = (feat_model_kind_t)kind;
        params.task = (feat_task_t)task;
        params.act = kind == FEAT_MODEL_MLP ? h->activation : 0;
        params.d = d;
        params.h = hid;
        params.n = nw;
        for (uint32_t i = 0; i < nw; i++) {
            params.w[i] = get_f64(&r);
            if (!isfinite(params.w[i])) {
                fail(&r, "non-finite weight");
                break;
            }
        }
    }
    info.n_train = get_u64(&r);
    info.n_valid = get_u64(&r);
    info.train_seconds = get_f64(&r);
    uint32_t backend = get_u32(&r);
    if (!r.bad && !(info.train_seconds >= 0.0 && isfinite(info.train_seconds)))
        fail(&r, "bad training time");
    if (backend != FEAT_BACKEND_CPU && backend != FEAT_BACKEND_GPU)
        fail(&r, "unknown backend");
    info.backend = (feat_backend_t)backend;
    get_metrics(&r, &info.train);
    get_metrics(&r, &info.valid);
    if (!r.bad && r.pos != r.len)
        fail(&r, "trailing bytes");

    if (r.bad) {
        feat_errf(errstr, errstr_size, "model blob: %s", r.bad);
        free(label);
        feat_prep_destroy(prep);
        feat_params_free(&params);
        feat_trees_free(trees);
        return oom ? FEAT_ERR_NOMEM : FEAT_ERR_CORRUPT;
    }
    if (trees) {
        info.task = (feat_task_t)task;
        info.label = label;
        e = feat_model_from_trees(prep, trees, &info, out);
    } else {
        e = feat_model_assemble(prep, &params, &info, label, out);
    }
    free(label);
    if (e != FEAT_OK) {
        feat_errf(errstr, errstr_size, "model blob: %s", feat_err_str(e));
        return e == FEAT_ERR_NOMEM ? e : FEAT_ERR_CORRUPT;
    }
    return FEAT_OK;
}
