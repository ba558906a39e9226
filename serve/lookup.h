/*
 * serve/lookup.h — online feature lookup: the cache first, then one RocksDB
 * MultiGet for the misses, filling the cache on the way (GetOnlineFeatures
 * and Predict both use it).
 */
#ifndef FEAT_SERVE_LOOKUP_H
#define FEAT_SERVE_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "serve/cache.h"
#include "store/store.h"

/* Scratch that holds the strings the values point to; free after use. */
typedef struct feat_lookup_scratch {
    feat_buf_t strings;   /* strings copied out of cache hits */
    feat_buf_t *rows;     /* rows read for misses (values point into them) */
    size_t nrows, caprows;
    size_t *miss;
    uint64_t *tickets;
    int *put;
    const char **mkeys;
    size_t *mlens;
    int *found;
    size_t capkeys;
    /* aggregated features (from the cache, else computed from tiles) */
    feat_agg_reader_t *agg;
    feat_buf_t aggstr;    /* their strings */
    feat_value_t *tmp;    /* [n * nf] one part's values before they are interleaved */
    size_t captmp;
} feat_lookup_scratch_t;

#define FEAT_LOOKUP_SCRATCH_INIT {FEAT_BUF_INIT, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, FEAT_BUF_INIT, NULL, 0}

/* Reads features fidx[0..nf) of n entity keys into vals[k * nf + j].
 * Plain features come from the cache or the online row; aggregated ones
 * (feat_feature_is_agg) from the entity's tiles as of now_ms, every time
 * (their value moves with the clock).
 * cache may be NULL.  String values stay valid until the scratch is freed or
 * reused.  FEAT_OK, FEAT_ERR_NOMEM, FEAT_ERR_IO or FEAT_ERR_CORRUPT. */
feat_err_t feat_online_lookup(feat_store_t *st, feat_cache_t *cache, const feat_table_t *t, size_t n,
                              const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                              int64_t now_ms, feat_value_t *vals, feat_lookup_scratch_t *ls);
void feat_lookup_scratch_free(feat_lookup_scratch_t *ls);

#endif
