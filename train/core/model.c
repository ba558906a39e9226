/*
 * train/core/model.c — model runtime: assembly, accessors and prediction
 * (model.h).  The blob codec is in blob.c.
 *
 * Prediction never builds the dense input: feat_prep_apply_sparse() lists
 * the row's non-zero columns (one-hot and indicator columns are mostly zero)
 * and the forward pass works on those.  The MLP's hidden layer runs input by
 * input across all units, 8 float lanes per AVX2 vector, from a transposed
 * float copy of W1 (see feat_fwd_t for why float there); all else is double.
 * Dense inputs (feat_model_predict_dense(), and the trainer's scoring of
 * validation rows) are compacted to the same list first, so a model predicts
 * bit for bit what its stored metrics were computed from.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/core/internal.h"
#include "train/core/kern.h"
#include "train/core/model.h"

/* The forward pass must be inlined into each FEAT_CLONES variant to get its
 * instruction set. */
#if defined(__GNUC__)
#define FEAT_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FEAT_ALWAYS_INLINE inline
#endif

feat_err_t feat_model_assemble(feat_prep_t *prep, feat_params_t *params,
                               const feat_model_info_t *info, const char *label,
                               feat_model_t **out) {
    *out = NULL;
    feat_err_t e = FEAT_ERR_INVALID;
    feat_model_t *m = NULL;
    if (!prep || !params || !params->w || !info || prep->dim != params->d ||
        params->n != feat_params_count(params->kind, params->d, params->h) ||
        (params->task != FEAT_TASK_BINARY && params->task != FEAT_TASK_REGRESSION) ||
        (params->kind == FEAT_MODEL_LOGREG && params->task != FEAT_TASK_BINARY) ||
        (params->kind == FEAT_MODEL_LINREG && params->task != FEAT_TASK_REGRESSION))
        goto fail;
    e = FEAT_ERR_NOMEM;
    m = (feat_model_t *)calloc(1, sizeof(*m));
    if (!m)
        goto fail;
    m->label = strdup(label ? label : "");
    if (!m->label)
        goto fail;
    m->info = *info;
    m->info.label = m->label;
    m->info.kind = params->kind;
    m->info.task = params->task;
    m->info.n_features = prep->nf;
    m->info.input_dim = prep->dim;
    m->prep = prep;
    m->params = *params;
    memset(params, 0, sizeof(*params));
    prep = NULL;
    if (feat_fwd_init(&m->fwd, &m->params, m->info.y_mean, m->info.y_std) != FEAT_OK)
        goto fail;
    m->scratch = 8 + feat_fwd_work_size(&m->params) * sizeof(double);
    *out = m;
    return FEAT_OK;
fail:
    if (m) {
        free(m->label);
        feat_prep_destroy(m->prep);
        feat_params_free(&m->params);
        feat_fwd_free(&m->fwd);
    }
    free(m);
    feat_prep_destroy(prep);
    feat_params_free(params);
    return e;
}

feat_err_t feat_model_from_trees(feat_prep_t *prep, feat_trees_t *trees, const feat_model_info_t *info,
                                 feat_model_t **out) {
    feat_model_t *m = NULL;
    feat_err_t e = FEAT_ERR_INVALID;
    if (out)
        *out = NULL;
    if (!out || !prep || !trees || !info || !prep->conf.raw || feat_trees_nfeatures(trees) != prep->dim ||
        !((info->task == FEAT_TASK_BINARY && feat_trees_link(trees) == FEAT_TREES_LOGISTIC) ||
          (info->task == FEAT_TASK_REGRESSION && feat_trees_link(trees) == FEAT_TREES_IDENTITY)))
        goto fail;
    e = FEAT_ERR_NOMEM;
    if (!(m = (feat_model_t *)calloc(1, sizeof(*m))) || !(m->label = strdup(info->label ? info->label : "")))
        goto fail;
    m->info = *info;
    m->info.label = m->label;
    m->info.kind = FEAT_MODEL_TREES;
    m->info.n_features = prep->nf;
    m->info.input_dim = prep->dim;
    m->info.y_mean = 0.0;
    m->info.y_std = 1.0;
    m->params.kind = FEAT_MODEL_TREES;
    m->params.task = info->task;
    m->params.d = prep->dim;
    m->prep = prep;
    m->trees = trees;
    m->scratch = 8 + (size_t)prep->dim * sizeof(float); /* one preprocessed row */
    *out = m;
    return FEAT_OK;
fail:
    if (m)
        free(m->label);
    free(m);
    feat_prep_destroy(prep);
    feat_trees_free(trees);
    return e;
}

const feat_trees_t *feat_model_trees(const feat_model_t *m) { return m ? m->trees : NULL; }

void feat_model_destroy(feat_model_t *m) {
    if (!m)
        return;
    feat_trees_free(m->trees);
    feat_prep_destroy(m->prep);
    feat_params_free(&m->params);
    feat_fwd_free(&m->fwd);
    free(m->label);
    free(m);
}

const feat_model_info_t *feat_model_info(const feat_model_t *m) { return m ? &m->info : NULL; }
const feat_prep_t *feat_model_prep(const feat_model_t *m) { return m ? m->prep : NULL; }

const char *feat_model_feature_name(const feat_model_t *m, size_t i) {
    return m && i < m->prep->nf ? m->prep->f[i].name : NULL;
}

feat_ftype_t feat_model_feature_type(const feat_model_t *m, size_t i) {
    return m && i < m->prep->nf ? m->prep->f[i].type : (feat_ftype_t)0;
}

long feat_model_feature_index(const feat_model_t *m, const char *name) {
    if (!m || !name)
        return -1;
    for (size_t i = 0; i < m->prep->nf; i++)
        if (strcmp(m->prep->f[i].name, name) == 0)
            return (long)i;
    return -1;
}

const double *feat_model_params(const feat_model_t *m, size_t *n_params) {
    if (!m)
        return NULL;
    if (n_params)
        *n_params = m->params.n;
    return m->params.w;
}

size_t feat_model_scratch_size(const feat_model_t *m) { return m ? m->scratch : 0; }

/* ---- prediction ------------------------------------------------------- */

feat_err_t feat_fwd_init(feat_fwd_t *f, const feat_params_t *p, double y_mean, double y_std) {
    f->p = p;
    f->w1t = NULL;
    f->y_mean = y_mean;
    f->y_std = y_std;
    if (p->kind != FEAT_MODEL_MLP)
        return FEAT_OK;
    const size_t d = p->d, h = p->h;
    f->w1t = (float *)malloc((d + 1) * h * sizeof(float));
    if (!f->w1t)
        return FEAT_ERR_NOMEM;
    for (size_t k = 0; k < h; k++)
        for (size_t j = 0; j < d; j++)
            f->w1t[j * h + k] = (float)p->w[k * d + j];
    for (size_t k = 0; k < h; k++)
        f->w1t[d * h + k] = (float)p->w[h * d + k]; /* b1 */
    return FEAT_OK;
}

void feat_fwd_free(feat_fwd_t *f) {
    if (!f)
        return;
    free(f->w1t);
    f->w1t = NULL;
}

size_t feat_fwd_work_size(const feat_params_t *p) {
    /* non-zero inputs' values (d doubles) and indices (d uint32); for the
     * MLP, hidden units (h doubles) and their float sums (h floats) */
    size_t n = (size_t)p->d + ((size_t)p->d + 1) / 2;
    if (p->kind == FEAT_MODEL_MLP)
        n += (size_t)p->h + ((size_t)p->h + 1) / 2;
    return n;
}

/* Work space layout: val[d] doubles, hid[h] doubles, idx[d] uint32, sum[h] floats. */
typedef struct work {
    double *val, *hid;
    uint32_t *idx;
    float *sum;
} work_t;

static FEAT_ALWAYS_INLINE work_t work_carve(const feat_params_t *p, double *w) {
    work_t k;
    const size_t h = p->kind == FEAT_MODEL_MLP ? p->h : 0;
    k.val = w;
    k.hid = w + p->d;
    k.idx = (uint32_t *)(w + p->d + h);
    k.sum = (float *)(k.idx + p->d);
    return k;
}

/* The non-zero columns of a dense row, ascending (what
 * feat_prep_apply_sparse() gives for the same row). */
static FEAT_ALWAYS_INLINE uint32_t compact(const float *restrict x, uint32_t d,
                                           uint32_t *restrict idx, double *restrict val) {
    uint32_t n = 0;
    for (uint32_t j = 0; j < d; j++) {
        const float xj = x[j];
        idx[n] = j;
        val[n] = (double)xj;
        n += xj != 0.0f;
    }
    return n;
}

#if defined(__GNUC__)
/* Eight floats, loadable from any 4-byte-aligned address. */
typedef float v8f_t __attribute__((vector_size(32), aligned(4), may_alias));

/* Units k .. k + 8·NV in vector registers, inputs in the inner loop. */
#define BLOCK(NV)                                                                  \
    for (; k + 8 * (NV) <= h; k += 8 * (NV)) {                                     \
        v8f_t a[NV], c[NV];                                                        \
        for (int u = 0; u < (NV); u++) {                                           \
            a[u] = *(const v8f_t *)(b1 + k + 8 * u);                               \
            c[u] = a[u] * 0.0f;                                                    \
        }                                                                          \
        uint32_t t = 0;                                                            \
        for (; t + 2 <= nnz; t += 2) {                                             \
            const float v0 = (float)val[t], v1 = (float)val[t + 1];                \
            const v8f_t *w0 = (const v8f_t *)(w1t + (size_t)idx[t] * h + k);       \
            const v8f_t *w1 = (const v8f_t *)(w1t + (size_t)idx[t + 1] * h + k);   \
            for (int u = 0; u < (NV); u++) {                                       \
                a[u] += v0 * w0[u];                                                \
                c[u] += v1 * w1[u];                                                \
            }                                                                      \
        }                                                                          \
        if (t < nnz) {                                                             \
            const float v0 = (float)val[t];                                        \
            const v8f_t *w0 = (const v8f_t *)(w1t + (size_t)idx[t] * h + k);       \
            for (int u = 0; u < (NV); u++)                                         \
                a[u] += v0 * w0[u];                                                \
        }                                                                          \
        for (int u = 0; u < (NV); u++)                                             \
            *(v8f_t *)(sum + k + 8 * u) = a[u] + c[u];                             \
    }
#endif

/* sum[k] = b1[k] + Σ_t val[t]·W1[k][idx[t]] in float (the values are
 * float-rounded inputs, so (float)val[t] is exact), as two running sums —
 * b1 plus the even t, and the odd t — added at the end.  Units go in blocks
 * of 32, 16 and 8 held in vector registers (GCC vector extensions; the two
 * sums double the independent chains that hide the adder's latency), then
 * one by one; every variant adds in the same order. */
static FEAT_ALWAYS_INLINE void mlp_hidden(const float *restrict w1t, const float *restrict b1,
                                          uint32_t h, uint32_t nnz,
                                          const uint32_t *restrict idx,
                                          const double *restrict val, float *restrict sum) {
    uint32_t k = 0;
#if defined(__GNUC__)
    BLOCK(4)
    BLOCK(2)
    BLOCK(1)
#endif
    for (; k < h; k++) {
        float a = b1[k], c = 0.0f;
        uint32_t t = 0;
        for (; t + 2 <= nnz; t += 2) {
            a += (float)val[t] * w1t[(size_t)idx[t] * h + k];
            c += (float)val[t + 1] * w1t[(size_t)idx[t + 1] * h + k];
        }
        if (t < nnz)
            a += (float)val[t] * w1t[(size_t)idx[t] * h + k];
        sum[k] = a + c;
    }
}

static FEAT_ALWAYS_INLINE double forward(const feat_fwd_t *f, uint32_t nnz, const uint32_t *idx,
                                         const double *val, double *hid, float *sum) {
    const feat_params_t *p = f->p;
    const uint32_t d = p->d;
    double z;
    if (p->kind != FEAT_MODEL_MLP) {
        /* bias + four interleaved partial sums over the non-zero inputs */
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        uint32_t t = 0;
        for (; t + 4 <= nnz; t += 4) {
            s0 += p->w[idx[t]] * val[t];
            s1 += p->w[idx[t + 1]] * val[t + 1];
            s2 += p->w[idx[t + 2]] * val[t + 2];
            s3 += p->w[idx[t + 3]] * val[t + 3];
        }
        for (; t < nnz; t++)
            s0 += p->w[idx[t]] * val[t];
        z = p->w[d] + ((s0 + s1) + (s2 + s3));
    } else {
        const uint32_t h = p->h;
        const double *w2 = p->w + (size_t)h * d + h;
        mlp_hidden(f->w1t, f->w1t + (size_t)d * h, h, nnz, idx, val, sum);
        if (p->act == FEAT_ACT_RELU) {
            /* two plain loops, so that both vectorise (no data-dependent branch) */
            for (uint32_t k = 0; k < h; k++)
                sum[k] = sum[k] > 0.0f ? sum[k] : 0.0f;
            for (uint32_t k = 0; k < h; k++)
                hid[k] = (double)sum[k];
        } else {
            for (uint32_t k = 0; k < h; k++)
                hid[k] = feat_act((double)sum[k], (int)p->act);
        }
        z = w2[h] + feat_dot4d(w2, hid, h);
    }
    if (p->task == FEAT_TASK_BINARY)
        return feat_sigmoid(z);
    return z * f->y_std + f->y_mean;
}

/* Raw rows → predictions, compiled for AVX2 and the baseline (FEAT_CLONES). */
FEAT_CLONES
static void predict_rows(const feat_model_t *m, const feat_raw_t *rows, size_t n, double *work,
                         double *out) {
    const work_t k = work_carve(&m->params, work);
    const size_t nf = m->prep->nf;
    for (size_t r = 0; r < n; r++) {
        uint32_t nnz = feat_prep_apply_sparse(m->prep, rows + r * nf, k.idx, k.val);
        out[r] = forward(&m->fwd, nnz, k.idx, k.val, k.hid, k.sum);
    }
}

FEAT_CLONES
void feat_fwd_dense(const feat_fwd_t *f, const float *x, size_t n, double *work, double *out) {
    const work_t k = work_carve(f->p, work);
    const uint32_t d = f->p->d;
    for (size_t r = 0; r < n; r++) {
        uint32_t nnz = compact(x + r * d, d, k.idx, k.val);
        out[r] = forward(f, nnz, k.idx, k.val, k.hid, k.sum);
    }
}

#define STACK_DOUBLES (FEAT_MODEL_STACK_SCRATCH / sizeof(double))

/* The 8-aligned work space inside scratch, or NULL when it is too small. */
static double *carve(const feat_model_t *m, void *scratch, size_t size) {
    if (size < m->scratch)
        return NULL;
    return (double *)(((uintptr_t)scratch + 7) & ~(uintptr_t)7);
}

feat_err_t feat_model_predict_batch(const feat_model_t *m, const feat_raw_t *rows,
                                    size_t n_rows, void *scratch, size_t scratch_size,
                                    double *out) {
    double stackbuf[STACK_DOUBLES];
    if (!m || (n_rows && (!rows || !out)))
        return FEAT_ERR_INVALID;
    if (!scratch) {
        scratch = stackbuf;
        scratch_size = sizeof(stackbuf);
    }
    double *work = carve(m, scratch, scratch_size);
    if (!work)
        return FEAT_ERR_INVALID;
    if (m->trees) { /* row by row: one preprocessed row of scratch */
        for (size_t r = 0; r < n_rows; r++) {
            feat_prep_apply(m->prep, rows + r * m->prep->nf, (float *)work);
            feat_trees_predict_f32(m->trees, (const float *)work, 1, out + r);
        }
        return FEAT_OK;
    }
    predict_rows(m, rows, n_rows, work, out);
    return FEAT_OK;
}

feat_err_t feat_model_predict(const feat_model_t *m, const feat_raw_t *row, void *scratch,
                              size_t scratch_size, double *out) {
    if (!row || !out)
        return FEAT_ERR_INVALID;
    return feat_model_predict_batch(m, row, 1, scratch, scratch_size, out);
}

feat_err_t feat_model_predict_dense(const feat_model_t *m, const float *xs, size_t n_rows,
                                    void *scratch, size_t scratch_size, double *out) {
    double stackbuf[STACK_DOUBLES];
    if (!m || (n_rows && (!xs || !out)))
        return FEAT_ERR_INVALID;
    if (!scratch) {
        scratch = stackbuf;
        scratch_size = sizeof(stackbuf);
    }
    double *work = carve(m, scratch, scratch_size);
    if (!work)
        return FEAT_ERR_INVALID;
    if (m->trees) {
        feat_trees_predict_f32(m->trees, xs, n_rows, out);
        return FEAT_OK;
    }
    feat_fwd_dense(&m->fwd, xs, n_rows, work, out);
    return FEAT_OK;
}
