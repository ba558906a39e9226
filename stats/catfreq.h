/*
 * stats/catfreq.h — bounded category frequencies for string features.
 *
 * A fixed-memory summary of a stream of categories (strings, identified by a
 * 64-bit hash), to be compared with a reference category distribution by
 * chi-square and KL.  Two kinds of counters:
 *
 *  - pinned counters (at most max_pins): exact counts for categories named in
 *    advance — normally the reference's categories, pinned once when a live
 *    window is set up; never evicted;
 *  - capacity Space-Saving counters (Metwally, Agrawal, El Abbadi 2005) for
 *    everything else: when all are in use, a new category replaces the one
 *    with the smallest count c_min and starts at c_min + w with overcount
 *    c_min.  Deterministic (ties broken by heap order, which depends only on
 *    the input sequence).
 *
 * Guarantees, with N_u the weight of updates that did not go to a pinned
 * category: a tracked category's true count lies in [count, count +
 * overcount] (count = guaranteed part); every category with a true count >
 * N_u / capacity is tracked; overcount <= N_u / capacity.  The "other" bucket
 * is total - sum of the guaranteed counts: it holds untracked categories and
 * the uncertain part of tracked ones, so the buckets always add up to the
 * total and nothing is dropped.
 *
 * Memory: everything is allocated by feat_catfreq_new() — slots, a hash index
 * and capacity + max_pins label buffers of label_cap bytes (labels are kept,
 * truncated, only for reports).  Update is allocation-free: O(1) expected
 * hash lookup plus O(log capacity) heap maintenance.  Hash collisions between
 * different strings (probability ~ slots^2 / 2^64) merge the two categories.
 *
 * Threads: no internal locking; serialize calls on one structure.
 */
#ifndef FEAT_STATS_CATFREQ_H
#define FEAT_STATS_CATFREQ_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct feat_catfreq feat_catfreq_t;

#define FEAT_CATFREQ_MAX_SLOTS (1u << 20)   /* capacity + max_pins */
#define FEAT_CATFREQ_MAX_LABEL 4096u        /* label_cap limit */
#define FEAT_CATFREQ_FORMAT_VERSION 1u

/* A new empty structure with `capacity` Space-Saving counters, room for
 * max_pins pinned ones (capacity + max_pins in 1..FEAT_CATFREQ_MAX_SLOTS) and
 * labels of up to label_cap - 1 bytes (0 keeps no labels).  NULL on failure
 * with *err (if not NULL) set to FEAT_ERR_INVALID or FEAT_ERR_NOMEM.  The
 * caller owns it; free with feat_catfreq_destroy(). */
feat_catfreq_t *feat_catfreq_new(uint32_t capacity, uint32_t max_pins, uint32_t label_cap,
                                 feat_err_t *err);
void feat_catfreq_destroy(feat_catfreq_t *cf);   /* NULL is fine */

/* Zeroes every count and forgets unpinned categories; pins stay (tumbling
 * windows). */
void feat_catfreq_reset(feat_catfreq_t *cf);

/* The hash used for strings (stable across platforms and releases). */
uint64_t feat_catfreq_hash(const char *s, size_t len);

/* Pins a category (an exact counter from now on).  label may be NULL.  If the
 * category is already tracked unpinned, its guaranteed count carries over.
 * FEAT_ERR_EXISTS if already pinned (harmless), FEAT_ERR_TOO_LARGE when
 * max_pins are in use. */
feat_err_t feat_catfreq_pin(feat_catfreq_t *cf, uint64_t hash, const char *label, size_t len);

/* Adds weight w >= 1 to a category given by its hash (label unknown, or kept
 * from earlier) or by its string.  Allocation-free.  FEAT_ERR_INVALID for
 * w == 0 or NULL; FEAT_ERR_TOO_LARGE if the total would overflow. */
feat_err_t feat_catfreq_add_hash(feat_catfreq_t *cf, uint64_t hash, uint64_t w);
feat_err_t feat_catfreq_add(feat_catfreq_t *cf, const char *s, size_t len, uint64_t w);

uint64_t feat_catfreq_total(const feat_catfreq_t *cf);   /* all weight added */
uint64_t feat_catfreq_other(const feat_catfreq_t *cf);   /* total - guaranteed */
uint32_t feat_catfreq_size(const feat_catfreq_t *cf);    /* tracked categories */
uint32_t feat_catfreq_capacity(const feat_catfreq_t *cf);
size_t   feat_catfreq_footprint(const feat_catfreq_t *cf);  /* bytes allocated */

/* Guaranteed count and overcount of a category; FEAT_ERR_NOT_FOUND (and 0s)
 * when it is not tracked. */
feat_err_t feat_catfreq_get(const feat_catfreq_t *cf, uint64_t hash, uint64_t *count,
                            uint64_t *overcount);

typedef struct feat_catfreq_entry {
    uint64_t hash;
    uint64_t count;        /* guaranteed occurrences */
    uint64_t overcount;    /* true count <= count + overcount; 0 when pinned */
    int pinned;
    const char *label;     /* NUL-terminated, maybe truncated; "" if unknown;
                              valid until the structure is next modified */
} feat_catfreq_entry_t;

/* The i-th tracked category, 0 <= i < feat_catfreq_size(), pinned ones first
 * (in pin order).  The order of unpinned ones changes with updates.
 * FEAT_ERR_INVALID when i is out of range. */
feat_err_t feat_catfreq_entry(const feat_catfreq_t *cf, uint32_t i, feat_catfreq_entry_t *e);

/* Adds src to dst: each of src's tracked categories with its guaranteed
 * count (src's pinned ones pinned in dst too, room permitting), the rest of
 * src's weight to dst's other bucket.  Totals add up exactly; a category
 * pinned on both sides stays exact; any other count is a lower bound (the
 * uncertain part, and categories src did not track, go to other).
 * FEAT_OK, FEAT_ERR_TOO_LARGE (overflow). */
feat_err_t feat_catfreq_merge(feat_catfreq_t *dst, const feat_catfreq_t *src);

/* Comparison of a live window with a reference.  Categories are the
 * reference's tracked ones plus one "other" bucket (reference: its other;
 * live: everything not counted under a reference category — categories
 * unseen in the reference land here and are counted, not dropped).
 * Categories empty on both sides are left out.  For exact live counts pin the
 * reference's categories in the live structure. */
typedef struct feat_catfreq_cmp {
    uint32_t ncat;             /* categories compared (incl. other if non-empty) */
    double chi2;               /* homogeneity statistic (feat_chi2_homogeneity) */
    double chi2_pvalue;
    double chi2_dof;
    double kl;                 /* KL(live || ref), nats, smoothed with eps */
    double psi;                /* smoothed with eps */
    double js;                 /* JS distance, base 2 */
    double live_unseen;        /* fraction of live weight outside reference categories */
} feat_catfreq_cmp_t;

/* Allocation-free.  eps >= 0 as in divergence.h (FEAT_DRIFT_EPS).
 * FEAT_ERR_STATE when either side is empty; FEAT_ERR_INVALID on bad args. */
feat_err_t feat_catfreq_compare(const feat_catfreq_t *live, const feat_catfreq_t *ref,
                                double eps, feat_catfreq_cmp_t *out);

/* The aligned count vectors behind feat_catfreq_compare(): ref_counts[i] and
 * live_counts[i] for the reference's i-th entry, then the other bucket last
 * (no category is left out here).  cap is the room in each array; *ncat gets
 * feat_catfreq_size(ref) + 1; FEAT_ERR_TOO_LARGE if cap is smaller. */
feat_err_t feat_catfreq_align(const feat_catfreq_t *live, const feat_catfreq_t *ref,
                              double *ref_counts, double *live_counts, size_t cap,
                              uint32_t *ncat);

/* Serialization (references are stored as blobs): little-endian, versioned,
 * CRC-32 trailer.  Same conventions as feat_kll_serialize/deserialize:
 * deserialize never reads outside buf[0..len), returns FEAT_ERR_CORRUPT for
 * bad input (CRC checked first), FEAT_ERR_UNIMPLEMENTED for an intact blob of
 * an unknown version, and a new
 * structure (caller owns) on success. */
size_t     feat_catfreq_serialized_size(const feat_catfreq_t *cf);
feat_err_t feat_catfreq_serialize(const feat_catfreq_t *cf, void *buf, size_t cap,
                                  size_t *written);
feat_err_t feat_catfreq_deserialize(const void *buf, size_t len, feat_catfreq_t **out);

#ifdef __cplusplus
}
#endif
#endif
