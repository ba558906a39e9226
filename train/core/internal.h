/*
 * train/core/internal.h — structures and functions shared by train/core's
 * sources, its tests and its benchmark.  Not a public interface: other
 * modules use types.h, prep.h, metrics.h, model.h, trainer.h and gpu.h.
 */
#ifndef FEAT_TRAIN_CORE_INTERNAL_H
#define FEAT_TRAIN_CORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "train/core/metrics.h"
#include "train/core/model.h"
#include "train/core/trainer.h"
#include "train/core/trees.h"
#include "train/core/prep.h"
#include "train/core/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- preprocessing ---------------------------------------------------- */

typedef struct feat_cat_slot {
    uint64_t hash;            /* feat_fnv1a64 of the category */
    uint32_t idx1;            /* category index + 1; 0 = empty slot */
    uint32_t pad_;
} feat_cat_slot_t;

typedef struct feat_prep_feat {
    char *name;               /* NUL-terminated copy */
    feat_ftype_t type;
    uint32_t offset, width;   /* dense columns [offset, offset + width) */
    uint32_t indicator;       /* 1: last column is is-missing */
    double mean, std;         /* numeric: fitted; std > 0 */
    double inv_std;           /* 1 / std */
    uint32_t n_cats;          /* string: one-hot columns */
    uint32_t buckets;         /* string: hashed columns */
    char **cats;              /* n_cats copies, each NUL-terminated */
    uint32_t *cat_len;        /* their lengths */
    uint32_t tab_mask;        /* lookup table of (hash → index), size tab_mask + 1 (power of 2) */
    feat_cat_slot_t *tab;
} feat_prep_feat_t;

/* The serving path's compact view of one feature (32 bytes, built by
 * feat_prep_finish()). */
typedef struct feat_prep_op {
    uint32_t off;             /* first dense column */
    uint32_t fast_type;       /* FEAT_V_DOUBLE for numeric features (the fast path's
                                 value type), 0xffffffff for strings (never matches) */
    uint16_t is_string;       /* 0 numeric, 1 string */
    uint16_t indicator;       /* 1: numeric with an is-missing column */
    double mean, inv_std;     /* numeric */
} feat_prep_op_t;

struct feat_prep {
    feat_prep_conf_t conf;    /* the configuration that fitted it */
    size_t nf;
    uint32_t dim;
    feat_prep_feat_t *f;      /* nf entries */
    feat_prep_op_t *ops;      /* nf entries */
};

/* 1 for the numeric types (double, int64, bool), else 0. */
static inline int feat_ftype_numeric(feat_ftype_t t) {
    return t == FEAT_FT_DOUBLE || t == FEAT_FT_INT64 || t == FEAT_FT_BOOL;
}

/* The serving path's form of feat_prep_apply(): the non-zero columns of
 * the dense row, in ascending order, as (idx[t], val[t]) with the same
 * float-rounded values; returns their count (at most feat_prep_dim()).
 * Never fails, never allocates.  Not for the raw mode (trees use feat_prep_apply()). */
uint32_t feat_prep_apply_sparse(const feat_prep_t *p, const feat_raw_t *row, uint32_t *idx,
                                double *val);

/* An empty feat_prep_t with nf zeroed features (for the blob decoder). */
feat_err_t feat_prep_alloc(const feat_prep_conf_t *conf, size_t nf, feat_prep_t **out);

/* Computes offsets, widths, dim, inv_std and the lookup tables once every
 * feature's fitted fields are set.  FEAT_ERR_INVALID when the input would be
 * wider than FEAT_TRAIN_MAX_INPUT_DIM or a category is duplicated; FEAT_ERR_NOMEM. */
feat_err_t feat_prep_finish(feat_prep_t *p);

/* ---- weights ---------------------------------------------------------- */

typedef struct feat_params {
    feat_model_kind_t kind;
    feat_task_t task;         /* BINARY or REGRESSION */
    uint32_t act;             /* feat_activation_t (MLP) */
    uint32_t d;               /* input columns */
    uint32_t h;               /* hidden units (MLP), 0 otherwise */
    size_t n;                 /* doubles in w */
    double *w;                /* layout in model.h; owned */
} feat_params_t;

/* Doubles of weights for kind, or 0 when d or h is out of range. */
size_t feat_params_count(feat_model_kind_t kind, uint32_t d, uint32_t h);

/* Allocates and initialises weights (zeros; MLP layers uniform from seed).
 * FEAT_ERR_INVALID / FEAT_ERR_NOMEM; p is zeroed on failure. */
feat_err_t feat_params_init(feat_params_t *p, feat_model_kind_t kind, feat_task_t task,
                            uint32_t act, uint32_t d, uint32_t h, uint64_t seed);

/* Frees p->w and zeroes p; NULL is fine. */
void feat_params_free(feat_params_t *p);

/* 1 when weight i takes the L2 penalty (not a bias). */
int feat_params_is_weight(const feat_params_t *p, size_t i);

/* ---- dense training data ---------------------------------------------- */

/* feat_dense_t: trainer.h */

/* Fisher–Yates shuffle of perm[0..n) driven by the splitmix64 state *s.
 * Shared by both backends so that they visit rows in the same order. */
void feat_shuffle(uint32_t *perm, size_t n, uint64_t *s);

/* The shuffle stream's initial state for a seed (independent of the
 * weight-initialisation stream). */
uint64_t feat_shuffle_state(uint64_t seed);

/* ---- CPU backend (cpu_train.c) ---------------------------------------- */

/* Doubles of work space feat_cpu_loss_grad() needs. */
size_t feat_cpu_work_size(const feat_params_t *p);

/* Objective and gradient over the rows idx[0..nb) of data:
 *   returns (1/nb)·Σ loss_i + l2/2·Σ weights², writes its gradient to
 *   grad[0..p->n).  work: feat_cpu_work_size() doubles.  The gradient is
 *   the one feat_cpu_fit() steps with. */
double feat_cpu_loss_grad(const feat_params_t *p, const feat_dense_t *data, const uint32_t *idx,
                          size_t nb, double l2, double *grad, double *work);

/* Trains p in place with mini-batch Adam (trainer.h).  FEAT_ERR_NOMEM;
 * FEAT_ERR_UNAVAILABLE when cancel() asked to stop. */
feat_err_t feat_cpu_fit(feat_params_t *p, const feat_dense_t *data, const feat_hyper_t *hp,
                        int (*cancel)(void *), void *cancel_arg);

/* ---- GPU backend (gpu_train.cu, or gpu_stub.c without nvcc) ------------ */

typedef struct feat_gpu_ctx feat_gpu_ctx_t;

/* Uploads data (copied; data may be freed afterwards) for one or more
 * feat_gpu_fit() calls with batches up to max_batch rows and up to
 * max_hidden hidden units.  FEAT_ERR_NO_DEVICE without a usable GPU;
 * FEAT_ERR_NOMEM when device memory runs out; FEAT_ERR_UNAVAILABLE on other
 * CUDA errors (errstr says which). */
feat_err_t feat_gpu_ctx_new(const feat_dense_t *data, uint32_t max_batch, uint32_t max_hidden,
                            feat_gpu_ctx_t **out, char *errstr, size_t errstr_size);

/* Trains p in place on the uploaded data: the same algorithm, order and
 * arithmetic as feat_cpu_fit().  Errors as feat_gpu_ctx_new(), plus
 * FEAT_ERR_INVALID (batch or hidden over the context's maxima) and
 * FEAT_ERR_UNAVAILABLE when cancel() asked to stop. */
feat_err_t feat_gpu_fit(feat_gpu_ctx_t *ctx, feat_params_t *p, const feat_hyper_t *hp,
                        int (*cancel)(void *), void *cancel_arg, char *errstr,
                        size_t errstr_size);

/* NULL is fine. */
void feat_gpu_ctx_destroy(feat_gpu_ctx_t *ctx);

/* ---- inference (model.c) ---------------------------------------------- */

/* What the runtime predicts with: borrowed weights plus, for the MLP, a
 * float copy of W1 transposed to [d][h] and of b1.  The forward pass works
 * on the non-zero inputs only (one-hot and indicator columns are mostly
 * zero), in ascending order.  The MLP's hidden layer is the one place the
 * runtime computes in float: input by input across all units, 8 units per
 * AVX2 vector, which halves the serving cost of the model's largest layer
 * for a relative error of about 1e-6 in the pre-activations; everything else
 * is double.  The trainer scores validation rows with this same code, so
 * stored metrics are exactly what the runtime predicts. */
typedef struct feat_fwd {
    const feat_params_t *p;   /* borrowed */
    float *w1t;               /* MLP: d × h then b1 (h), owned; NULL for linear models */
    double y_mean, y_std;     /* regression: prediction = z·y_std + y_mean */
} feat_fwd_t;

/* FEAT_ERR_NOMEM; f is usable (and freeable) only on success. */
feat_err_t feat_fwd_init(feat_fwd_t *f, const feat_params_t *p, double y_mean, double y_std);
void feat_fwd_free(feat_fwd_t *f);

/* Doubles of work space the forward pass of p needs (the non-zero inputs'
 * values and indices, and the hidden units). */
size_t feat_fwd_work_size(const feat_params_t *p);

/* Predictions for n dense rows (n × p->d floats).  work:
 * feat_fwd_work_size() doubles, 8-byte aligned. */
void feat_fwd_dense(const feat_fwd_t *f, const float *x, size_t n, double *work, double *out);

/* On x86-64 with GCC, hot loops are compiled twice, for AVX2 and for the
 * baseline, and picked at load time.  Both compute the same IEEE operations
 * in the same order (no FMA, no reassociation), so results do not depend on
 * the CPU. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__CUDACC__)
#define FEAT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FEAT_CLONES
#endif

/* ---- models ----------------------------------------------------------- */

struct feat_model {
    feat_model_info_t info;   /* info.label points at label */
    char *label;
    feat_prep_t *prep;
    feat_params_t params;
    feat_fwd_t fwd;           /* over params */
    feat_trees_t *trees;      /* FEAT_MODEL_TREES (params then empty), else NULL */
    size_t scratch;           /* bytes feat_model_scratch_size() reports */
};

/* A model that takes ownership of prep and of params->w (params is zeroed),
 * with info copied (its label pointer is replaced by a copy of label).
 * Checks that the pieces agree (dimensions, kind, task).  On failure prep
 * and params are still freed.  FEAT_ERR_INVALID / FEAT_ERR_NOMEM. */
feat_err_t feat_model_assemble(feat_prep_t *prep, feat_params_t *params,
                               const feat_model_info_t *info, const char *label,
                               feat_model_t **out);

/* NULL when h is within the ranges of types.h, else a static phrase naming
 * the first field out of range.  Shared by feat_train() and the blob decoder. */
const char *feat_hyper_check(const feat_hyper_t *h);

/* Memory for a large training matrix: 2 MiB-aligned and, on Linux, marked
 * for transparent huge pages (rows are read in shuffled order, and 4 KiB
 * pages would make nearly every row a TLB miss).  NULL on failure; release
 * with free(). */
void *feat_alloc_big(size_t bytes);

/* feat_errf (common/err.h) writes one-line error messages. */

/* Monotonic seconds. */
double feat_now(void);

#ifdef __cplusplus
}
#endif
#endif
