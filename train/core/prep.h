/*
 * train/core/prep.h — preprocessing: raw typed rows → dense model input.
 *
 * A feat_prep_t is fitted once on the training split and then stored inside
 * the model (model.h), so serving applies exactly what training applied.
 * It maps a raw row (one feat_raw_t per feature, schema order) to
 * feat_prep_dim() floats, feature by feature, in schema order:
 *
 *   numeric feature (double, int64, bool) — 1 column, plus 1 when it has an
 *     indicator:   x' = (x − mean) / std, clipped to ±1e6;  missing → 0 (the
 *     training mean) and indicator 1.  mean and std (population, ddof 0) are
 *     taken over the training rows where the value is present; a std below
 *     1e-12·max(1, |mean|) (constant feature) is stored as 1; a feature never
 *     present has mean 0, std 1.
 *   string feature — K one-hot columns for the K most frequent training
 *     categories (count ≥ min_count; K ≤ top_k; ties in count go to the
 *     bytewise smaller string), then hash_buckets columns: any other string,
 *     seen or unseen in training, sets column  fnv1a64(bytes) mod hash_buckets
 *     (feat_fnv1a64, common/hash.h),
 *     then the indicator column when it has one.  Missing → all zeros and
 *     indicator 1.  One-hot and bucket columns are not standardised.
 *
 * With conf.raw, a numeric feature is instead (float)x, and NaN when
 * missing, without an indicator column (string features are unchanged):
 * trees split on raw values and send a missing one its own way.
 *
 * A feature has an indicator column when conf.missing_indicators is set and
 * at least one training row lacked it.  Which raw types count as missing for
 * which feature type is written in types.h (feat_raw_t).
 *
 * Columns are float: inputs are standardised to O(1), where float's 24-bit
 * mantissa is far below the data's noise, and float halves the memory traffic
 * of training (see trainer.h for the precision of the arithmetic).
 *
 * A fitted feat_prep_t is immutable: apply it from any number of threads.
 */
#ifndef FEAT_TRAIN_CORE_PREP_H
#define FEAT_TRAIN_CORE_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "train/core/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct feat_prep feat_prep_t;

typedef struct feat_prep_conf {
    uint32_t top_k;              /* one-hot categories per string feature; default 16; 0..FEAT_TRAIN_MAX_TOP_K */
    uint32_t hash_buckets;       /* hashed columns per string feature; default 8; 0..FEAT_TRAIN_MAX_BUCKETS
                                    (0: strings outside the top K set no column) */
    uint32_t min_count;          /* training rows a category needs for a one-hot column; default 1 */
    uint32_t missing_indicators; /* 1 (default): add an is-missing column where training had missing values */
    uint32_t raw;                /* 1: numeric features pass through as float (no centring, scaling or
                                    clipping) and a missing one is NaN, with no indicator column: what
                                    trees take (default 0) */
} feat_prep_conf_t;

/* Fills c with the defaults above. */
void feat_prep_conf_init(feat_prep_conf_t *c);

/* Fits preprocessing on rows (n_rows × n_features values, row-major, schema
 * order).  features, rows and their strings are borrowed for the call only;
 * names and categories are copied.  n_rows may be 0 (every feature then looks
 * never-present).  On success *out owns a new feat_prep_t (free with
 * feat_prep_destroy()); on failure *out is NULL.
 * FEAT_ERR_INVALID: NULL pointer, conf out of range, 0 or too many features, a
 * bad or duplicate name or type, or an input width over FEAT_TRAIN_MAX_INPUT_DIM;
 * FEAT_ERR_NOMEM. */
feat_err_t feat_prep_fit(const feat_prep_conf_t *conf, const feat_feature_def_t *features,
                         size_t n_features, const feat_raw_t *rows, size_t n_rows,
                         feat_prep_t **out);

/* Number of features (raw values per row) and of dense columns. */
size_t feat_prep_n_features(const feat_prep_t *p);
size_t feat_prep_dim(const feat_prep_t *p);

/* Writes the feat_prep_dim() columns of row (feat_prep_n_features() values)
 * to out (NaN only in the raw mode).  Never fails and never allocates; any value that does not fit its
 * feature counts as missing. */
void feat_prep_apply(const feat_prep_t *p, const feat_raw_t *row, float *out);

/* What was fitted for feature i, for reports and tests. */
typedef struct feat_prep_info {
    const char *name;        /* NUL-terminated, owned by the feat_prep_t */
    feat_ftype_t type;
    uint32_t offset;         /* first dense column */
    uint32_t width;          /* dense columns */
    uint32_t indicator;      /* 1 when the last of them is an is-missing column */
    double mean, std;        /* numeric features; 0 and 1 for strings */
    uint32_t n_categories;   /* string features: one-hot columns (K) */
    uint32_t hash_buckets;   /* string features: hashed columns */
} feat_prep_info_t;

/* FEAT_ERR_INVALID when p or info is NULL or i is out of range. */
feat_err_t feat_prep_info(const feat_prep_t *p, size_t i, feat_prep_info_t *info);

/* Category k (0 = most frequent) of string feature i: its bytes (owned by p,
 * NUL-terminated, may contain NUL) and length; NULL when out of range. */
const char *feat_prep_category(const feat_prep_t *p, size_t i, size_t k, size_t *len);

/* NULL is fine. */
void feat_prep_destroy(feat_prep_t *p);

#ifdef __cplusplus
}
#endif
#endif
