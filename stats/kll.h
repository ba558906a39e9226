/*
 * stats/kll.h — a mergeable, bounded-memory quantile sketch (KLL).
 *
 * Used for live drift windows and for model references (stored as blobs in
 * the `references` column family).  A sketch summarises a stream of doubles
 * so that ranks (the empirical CDF) and quantiles can be answered with a
 * documented normalized rank error, in memory that does not grow with the
 * stream.
 *
 * Algorithm.  Karnin, Lang, Liberty, "Optimal Quantile Approximation in
 * Streams" (FOCS 2016), in the lazy form used by Apache DataSketches: level h
 * holds items of weight 2^h; level capacities are max(8, round(k (2/3)^d)) for
 * a level d below the top; when the sketch is full the lowest level at or over
 * its capacity is sorted and halved (every other item, with a random offset)
 * into the level above.  All memory — room for FEAT_KLL_MAX_LEVELS levels, so
 * for about k * 2^54 values — is allocated by feat_kll_new():
 * feat_kll_footprint_for_k() bytes (8448 at k = 200, 27400 at k = 1000);
 * nothing is allocated afterwards.  Update is amortized O(1): deep in a long
 * stream, about every 12th update sorts ~12 level-0 items (a sorting network)
 * and merges them upwards; about 15 ns per value at k = 200 on the bench
 * machine (tests/bench/bench_drift.c).  Merge is O(size of both sketches).
 *
 * Error bound (proved in kll.c, above kll_compress()).  Let V be the sum over
 * all compactions performed (including those inside merged-in sketches) of
 * 4^h, h the compacted level; V depends only on the stream length and the
 * merge structure, not on the values or the coins.  For any fixed y the error
 * of the weighted rank, R^(y) - R(y), is a martingale with increments of +-2^h
 * so, by Azuma–Hoeffding,
 *     P(|R^(y) - R(y)| >= t) <= 2 exp(-t^2 / (2 V)).
 * Over all y at once (union over 2M grid queries at the true j/M quantiles):
 *     sup_y |F^(y) - F(y)| <= sqrt(2 V ln(4M/delta)) / n + 1/M
 * with probability >= 1 - delta, for every M >= 1; feat_kll_rank_error()
 * returns the minimum over M (the best M depends on V, n and delta only, not
 * on the data, so taking it is legitimate).  Merges keep the argument valid
 * only if the merged sketches drew independent coins: give every sketch its
 * own seed (e.g. a hash of feature and window number).
 * A priori, for a sketch fed one stream (no merges), V <= (48/7) n^2 / k^2
 * (proof in kll.c), so a single query errs by at most
 * sqrt(13.7 ln(2/delta)) / k: 4.3% at k = 200, delta = 0.01.  In practice V
 * is about 0.6 n^2 / k^2, and the uniform bound computed from it is about
 * 2.1% at k = 200 and 0.43% at k = 1000 (delta = 0.01), while the observed
 * sup error is about 0.75% and 0.17% (1.2% at k = 200 for sorted input;
 * tests/unit/test_drift_kll.c, tests/integration/drift_stats.py).
 * A sketch that never compacted (n <= about k) is exact: V = 0, error 0.
 *
 * Randomness comes from a per-sketch splitmix64 generator seeded at creation,
 * so a sketch is a deterministic function of (k, seed, input order).
 *
 * NaN is rejected (FEAT_ERR_INVALID, not counted); +-inf are ordinary values.
 *
 * Threads: a sketch is not internally locked.  Calls on one sketch must be
 * serialized by the caller; distinct sketches are independent.  Functions that
 * take a non-const sketch only to read it (quantile, sorted iteration) may
 * reorder its unsorted level-0 buffer in place (no allocation, no change of
 * content).
 */
#ifndef FEAT_STATS_KLL_H
#define FEAT_STATS_KLL_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct feat_kll feat_kll_t;

#define FEAT_KLL_K_DEFAULT 200u   /* see the error bound above */
#define FEAT_KLL_K_MIN 8u
#define FEAT_KLL_K_MAX 65535u
#define FEAT_KLL_MAX_LEVELS 56u   /* weight of the top level <= 2^55 */

/* Serialized format version written by feat_kll_serialize(). */
#define FEAT_KLL_FORMAT_VERSION 1u

/* A new empty sketch with top-level capacity k (FEAT_KLL_K_MIN..FEAT_KLL_K_MAX)
 * and RNG seed.  All memory the sketch will ever use is allocated here.
 * On failure returns NULL and, if err is not NULL, sets *err to
 * FEAT_ERR_INVALID (k out of range) or FEAT_ERR_NOMEM.  The caller owns the
 * sketch and frees it with feat_kll_destroy(). */
feat_kll_t *feat_kll_new(uint32_t k, uint64_t seed, feat_err_t *err);

/* Frees the sketch.  NULL is fine. */
void feat_kll_destroy(feat_kll_t *s);

/* Empties the sketch (tumbling windows) without freeing; k is kept and the
 * RNG keeps its current state (so consecutive windows use fresh coins). */
void feat_kll_reset(feat_kll_t *s);

/* Re-seeds the RNG (tests; deterministic replays). */
void feat_kll_seed(feat_kll_t *s, uint64_t seed);

/* Adds one value.  Allocation-free, amortized O(1).  Returns FEAT_OK,
 * FEAT_ERR_INVALID for NaN (the value is not counted), or FEAT_ERR_TOO_LARGE
 * when all FEAT_KLL_MAX_LEVELS levels are full (about k * 2^54 values). */
feat_err_t feat_kll_update(feat_kll_t *s, double x);

/* Adds the contents of src to dst (dst then summarises both streams; its V
 * includes src's).  Both must have the same k (else FEAT_ERR_INVALID); src is
 * unchanged; dst == src is FEAT_ERR_INVALID.  Allocation-free.
 * FEAT_ERR_TOO_LARGE if the count would overflow (dst unchanged) or, in
 * practice never, if dst runs out of levels part-way (dst then holds part of
 * src: reset it). */
feat_err_t feat_kll_merge(feat_kll_t *dst, const feat_kll_t *src);

/* Accessors.  count is the exact number of values added (merges included);
 * min and max are exact (NaN when the sketch is empty). */
uint64_t feat_kll_count(const feat_kll_t *s);
double   feat_kll_min(const feat_kll_t *s);
double   feat_kll_max(const feat_kll_t *s);
uint32_t feat_kll_k(const feat_kll_t *s);
int      feat_kll_is_empty(const feat_kll_t *s);   /* 1 when nothing was added, else 0 */
uint32_t feat_kll_retained(const feat_kll_t *s);   /* items currently stored */
uint32_t feat_kll_num_levels(const feat_kll_t *s);
size_t   feat_kll_footprint(const feat_kll_t *s);  /* bytes allocated, constant */
size_t   feat_kll_footprint_for_k(uint32_t k);     /* the same, before creation */

/* Estimated weight of values <= y (inclusive) or < y (exclusive), in the
 * units of count.  0 for an empty sketch.  y NaN gives 0. */
uint64_t feat_kll_rank(const feat_kll_t *s, double y, int inclusive);

/* Normalized inclusive rank: estimated fraction of values <= y; NaN when the
 * sketch is empty. */
double feat_kll_cdf(const feat_kll_t *s, double y);

/* Quantile: the smallest retained value v with estimated fraction of values
 * <= v at least q (the "inverted CDF" definition; q n within 4 ulp of an
 * integer counts as that integer, so an exact sketch returns the
 * ceil(q n)-th smallest value); q = 0 gives min, q = 1 max.
 * Returns FEAT_ERR_INVALID for q outside [0,1] or NaN, FEAT_ERR_STATE for an
 * empty sketch.  May sort level 0 in place. */
feat_err_t feat_kll_quantile(feat_kll_t *s, double q, double *out);

/* The sum V of 4^h over all compactions (see the bound above). */
double feat_kll_variance_sum(const feat_kll_t *s);

/* Normalized rank error that holds for all queries at once with probability
 * at least 1 - delta (0 < delta < 1): every |F^(y) - F(y)| is at most this.
 * 0 for an exact (never compacted) sketch; NaN for an empty one or a bad
 * delta. */
double feat_kll_rank_error(const feat_kll_t *s, double delta);

/* A priori single-query normalized rank error for a sketch of this k fed one
 * stream: sqrt(2 (48/7) ln(2/delta)) / k.  NaN for a bad delta or k. */
double feat_kll_rank_error_apriori(uint32_t k, double delta);

/* Sorted iteration over the retained items with their weights, ascending.
 * The iterator lives on the caller's stack; it is valid until the sketch is
 * next modified.  Beginning an iteration sorts level 0 in place. */
typedef struct feat_kll_iter {             /* internals; use the functions */
    const double *items;
    uint32_t nheap;                          /* runs not yet exhausted */
    uint32_t heap[FEAT_KLL_MAX_LEVELS];      /* min-heap of runs by head value */
    uint32_t pos[FEAT_KLL_MAX_LEVELS];       /* next index of each run */
    uint32_t end[FEAT_KLL_MAX_LEVELS];       /* end index of each run */
    uint64_t weight[FEAT_KLL_MAX_LEVELS];    /* weight of each run's items */
} feat_kll_iter_t;

void feat_kll_iter_begin(feat_kll_t *s, feat_kll_iter_t *it);
/* Next item in ascending order: returns 1 and sets *value, *weight, or 0 at
 * the end. */
int feat_kll_iter_next(feat_kll_iter_t *it, double *value, uint64_t *weight);

/* Serialization: little-endian, versioned, with a CRC-32 trailer (layout in
 * kll.c; IEEE-754 doubles; portable across hosts).  The blob carries the RNG
 * state, so a deserialized copy draws the same coins as the original: re-seed
 * one of them (feat_kll_seed) before merging the two.
 * feat_kll_serialized_size() gives the exact number of bytes
 * feat_kll_serialize() writes for the sketch's current state.
 * feat_kll_serialize() writes into buf (cap bytes) and sets *written; returns
 * FEAT_ERR_TOO_LARGE (nothing useful written) if cap is too small. */
size_t     feat_kll_serialized_size(const feat_kll_t *s);
feat_err_t feat_kll_serialize(const feat_kll_t *s, void *buf, size_t cap, size_t *written);

/* Decodes a blob into a new sketch (*out, owned by the caller).  Never reads
 * outside buf[0..len).  Rejects truncated, corrupt or inconsistent input with
 * FEAT_ERR_CORRUPT (the CRC is checked first, so any damage reads as that),
 * an intact blob of an unknown version with FEAT_ERR_UNIMPLEMENTED, and fails
 * with FEAT_ERR_NOMEM if allocation fails; *out is NULL on any failure. */
feat_err_t feat_kll_deserialize(const void *buf, size_t len, feat_kll_t **out);

#ifdef __cplusplus
}
#endif
#endif
