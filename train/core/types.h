/*
 * train/core/types.h — values, schemas and knobs shared by featd's math core.
 *
 * train/core is the dependency-free part of train/: preprocessing (prep.h),
 * metrics (metrics.h), trainers (trainer.h), the model runtime (model.h) and
 * the GPU probe (gpu.h).  It builds with a C11 compiler and libm alone, plus
 * nvcc when CUDA kernels are wanted.  Every header here is valid C and C++.
 *
 * A raw input row is an array of feat_raw_t, one per feature of the schema,
 * in schema order.  Values are small (16 bytes) and never own memory: a string
 * value borrows its bytes from the caller for the duration of the call that
 * receives it.
 */
#ifndef FEAT_TRAIN_CORE_TYPES_H
#define FEAT_TRAIN_CORE_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/ftype.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits enforced by every entry point (and by the blob decoder). */
#define FEAT_TRAIN_MAX_FEATURES   65536u   /* features in a schema */
#define FEAT_TRAIN_MAX_NAME       1024u    /* bytes in a feature or label name */
#define FEAT_TRAIN_MAX_CATEGORY   65535u   /* bytes in one stored category string */
#define FEAT_TRAIN_MAX_TOP_K      4096u    /* one-hot categories per string feature */
#define FEAT_TRAIN_MAX_BUCKETS    65536u   /* hash buckets per string feature */
#define FEAT_TRAIN_MAX_INPUT_DIM  (1u << 22) /* dense model input width */
#define FEAT_TRAIN_MAX_HIDDEN     4096u    /* MLP hidden units */
#define FEAT_TRAIN_MAX_BATCH      65536u   /* rows per Adam step */
#define FEAT_TRAIN_MAX_EPOCHS     100000u  /* passes over the training split */
#define FEAT_TRAIN_MAX_ROWS       4294967295u /* rows in one training set (row ids are 32-bit) */

/* Declared type of a feature (common/ftype.h): strings are categorical, the
 * rest numeric. */

/* Type of one raw value.  FEAT_V_MISSING means absent (not found, expired). */
typedef enum feat_vtype {
    FEAT_V_MISSING = 0,
    FEAT_V_DOUBLE = 1,
    FEAT_V_INT64 = 2,
    FEAT_V_BOOL = 3,
    FEAT_V_STRING = 4
} feat_vtype_t;

/* One raw typed value.  How a value meets a feature of another type:
 *  - numeric features (double, int64, bool) take DOUBLE, INT64 (converted to
 *    double) and BOOL (0/1); a NaN or infinite double, a STRING or MISSING is
 *    missing;
 *  - string features take STRING, INT64 (as its decimal text) and BOOL (as
 *    "true"/"false"); DOUBLE and MISSING are missing. */
typedef struct feat_raw {
    union {
        double f64;        /* FEAT_V_DOUBLE */
        int64_t i64;       /* FEAT_V_INT64 */
        int b;             /* FEAT_V_BOOL: 0 false, anything else true */
        const char *str;   /* FEAT_V_STRING: len bytes, not necessarily NUL-terminated; borrowed */
    } v;
    uint32_t len;          /* FEAT_V_STRING: byte length; 0 for other types */
    uint32_t type;         /* a feat_vtype_t */
} feat_raw_t;

static inline feat_raw_t feat_raw_missing(void) {
    feat_raw_t x; x.v.i64 = 0; x.len = 0; x.type = FEAT_V_MISSING; return x;
}
static inline feat_raw_t feat_raw_double(double d) {
    feat_raw_t x; x.v.f64 = d; x.len = 0; x.type = FEAT_V_DOUBLE; return x;
}
static inline feat_raw_t feat_raw_int64(int64_t i) {
    feat_raw_t x; x.v.i64 = i; x.len = 0; x.type = FEAT_V_INT64; return x;
}
static inline feat_raw_t feat_raw_bool(int b) {
    feat_raw_t x; x.v.i64 = 0; x.v.b = b != 0; x.len = 0; x.type = FEAT_V_BOOL; return x;
}
/* s is borrowed; len must be below 2^32 (longer strings are cut to 2^32-1). */
static inline feat_raw_t feat_raw_string(const char *s, size_t len) {
    feat_raw_t x; x.v.str = s; x.len = len > 0xffffffffu ? 0xffffffffu : (uint32_t)len;
    x.type = FEAT_V_STRING; return x;
}

/* One feature of a schema.  name is NUL-terminated, 1..FEAT_TRAIN_MAX_NAME bytes,
 * unique within the schema; borrowed by every call that receives it. */
typedef struct feat_feature_def {
    const char *name;
    feat_ftype_t type;
} feat_feature_def_t;

typedef enum feat_model_kind {
    FEAT_MODEL_LOGREG = 1,   /* logistic regression, binary labels */
    FEAT_MODEL_LINREG = 2,   /* linear regression */
    FEAT_MODEL_MLP = 3,      /* one hidden layer; binary or regression */
    FEAT_MODEL_TREES = 4     /* a tree ensemble (trees.h): gradient-boosted trees trained by a
                                feat_tree_learner_t (trainer.h), or a model imported from XGBoost */
} feat_model_kind_t;

typedef enum feat_task {
    FEAT_TASK_AUTO = 0,        /* only in feat_train_conf_t: derive from kind and labels */
    FEAT_TASK_BINARY = 1,      /* labels 0/1; predictions are P(label = 1) */
    FEAT_TASK_REGRESSION = 2   /* finite labels; predictions in label units */
} feat_task_t;

typedef enum feat_activation {
    FEAT_ACT_RELU = 1,
    FEAT_ACT_TANH = 2
} feat_activation_t;

/* Where training runs.  AUTO: the GPU when feat_gpu_available() says one is
 * usable, else the CPU (and the CPU when the GPU fails mid-way). */
typedef enum feat_backend {
    FEAT_BACKEND_AUTO = 0,
    FEAT_BACKEND_CPU = 1,
    FEAT_BACKEND_GPU = 2
} feat_backend_t;

/* Training hyper-parameters (stored in the model blob).  Defaults from
 * feat_hyper_init(); ranges are checked by feat_train(). */
typedef struct feat_hyper {
    double learning_rate;    /* Adam step size; default 0.01; (0, 10] */
    double l2;               /* L2 penalty λ of λ/2·‖w‖² (biases exempt); default 1e-4; [0, 1e4] */
    double beta1;            /* Adam first-moment decay; default 0.9; [0, 1) */
    double beta2;            /* Adam second-moment decay; default 0.999; [0, 1) */
    double epsilon;          /* Adam denominator guard; default 1e-8; (0, 1] */
    uint32_t hidden;         /* MLP hidden units; default 32; 1..FEAT_TRAIN_MAX_HIDDEN (ignored by linear models) */
    uint32_t epochs;         /* passes over the training split; default 10; 1..FEAT_TRAIN_MAX_EPOCHS */
    uint32_t batch_size;     /* rows per Adam step; default 256; 1..FEAT_TRAIN_MAX_BATCH */
    uint32_t activation;     /* feat_activation_t of the MLP hidden layer; default FEAT_ACT_RELU */
    uint32_t shuffle;        /* 1: reshuffle the training rows every epoch (default); 0: keep time order */
    uint64_t seed;           /* seeds weight initialisation and shuffling; default 1 */
    /* trees (FEAT_MODEL_TREES): learning_rate is the shrinkage (eta) and l2 the leaf
     * weights' L2 penalty (lambda) there */
    uint32_t trees;          /* boosting rounds; default 100; 1..10000 */
    uint32_t max_depth;      /* default 6; 1..16 */
    double subsample;        /* rows sampled per tree; default 1; (0, 1] */
    double min_child_weight; /* hessian a leaf needs; default 1; [0, 1e6] */
    uint32_t early_stopping; /* stop after this many rounds without a better validation
                                metric, keeping the best; default 10; 0 = off */
} feat_hyper_t;

/* Fills h with the defaults above. */
void feat_hyper_init(feat_hyper_t *h);

/* Static English names ("logreg", "binary", "relu", "cpu", ...); "?" when unknown. */
const char *feat_model_kind_name(feat_model_kind_t k);
const char *feat_task_name(feat_task_t t);
const char *feat_activation_name(feat_activation_t a);
const char *feat_backend_name(feat_backend_t b);

#ifdef __cplusplus
}
#endif
#endif
