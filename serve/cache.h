/*
 * serve/cache.h — read-through cache of decoded online rows.
 *
 * Sharded (a mutex per shard), bounded in bytes (LRU per shard), keyed by
 * (table, entity).  An entry holds the row decoded per feature index, so a
 * hit copies out just the requested features; rows that do not exist are
 * cached too (as all-absent), so repeated lookups of unknown entities do not
 * reach RocksDB.
 *
 * Consistency with ingest: feat_cache_write_hook() is installed as the
 * store's write hook.  Before a batch commits it marks every entity the batch
 * touches as pending and drops its entry; after the commit it clears the
 * marks.  A lookup of a pending entity reads the store and does not cache
 * what it read; a miss caches its read only if no write touched the shard
 * meanwhile.  So once a batch's commit returns, no lookup returns a value
 * older than it.
 *
 * Threads: all functions are safe to call from any thread.
 */
#ifndef FEAT_SERVE_CACHE_H
#define FEAT_SERVE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"
#include "store/store.h"

typedef struct feat_cache feat_cache_t;

typedef struct feat_cache_conf {
    size_t max_bytes;           /* serve.cache; 0 disables caching (every lookup misses) */
    size_t nshards;             /* shards, each with its mutex and LRU: rounded up to a power of two, 1..4096 */
} feat_cache_conf_t;

/* metrics NULL = the process-wide registry (the cache adds a collector:
 * featd_cache_*).  NULL with errstr when out of memory.  No thread: nothing
 * to start or stop. */
feat_cache_t *feat_cache_new(const feat_cache_conf_t *conf, feat_metrics_t *metrics, char *errstr, size_t errlen);
void feat_cache_destroy(feat_cache_t *c); /* NULL is fine */

enum { FEAT_CACHE_HIT = 0, FEAT_CACHE_MISS = 1, FEAT_CACHE_BYPASS = 2 };

/* Looks up (t, key); returns FEAT_CACHE_HIT, FEAT_CACHE_MISS or
 * FEAT_CACHE_BYPASS (an outcome, never an error).  On HIT fills out[i] for
 * feature fidx[i] (status PRESENT/EXPIRED by t's TTL at now_ms, or
 * NOT_FOUND) with string bytes appended to *strings; a string value's v.s
 * holds its offset in *strings until feat_cache_fix_strings() turns offsets
 * into pointers, once every lookup that appends to *strings is done
 * (appending may move it).  On MISS fills *ticket for feat_cache_put; on
 * BYPASS the caller reads the store and must not put. */
int feat_cache_get(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen,
                   const uint16_t *fidx, size_t n, int64_t now_ms, feat_value_t *out,
                   feat_buf_t *strings, uint64_t *ticket);

void feat_cache_fix_strings(feat_value_t *vals, size_t n, const feat_buf_t *strings);

/* Caches the encoded online row of (t, key) (row NULL = entity absent), if
 * the ticket from the miss is still valid.  Decodes once; the hit path never
 * decodes again. */
void feat_cache_put(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen,
                    const char *row, size_t len, uint64_t ticket);

/* Prediction results ride on the cached row of their entity: a write to the
 * entity drops them with the row, a model swap changes the version, and a
 * score expires when the first feature it read passes its TTL, so a stale
 * score is never returned.
 * get returns an outcome, never an error: FEAT_CACHE_HIT with *score and
 * *missing; MISS with *ticket for put; BYPASS while a write is pending (do
 * not put).
 * put: stored only if the row is cached and no write touched its shard since
 * the ticket; at most 4 (model, version) per row. */
int feat_cache_get_score(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen, uint32_t model,
                         uint64_t version, int64_t now_ms, double *score, uint32_t *missing, uint64_t *ticket);
void feat_cache_put_score(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen, uint32_t model,
                          uint64_t version, double score, uint32_t missing, int64_t valid_until, uint64_t ticket);

/* Aggregated features (store/tile.h) are cached in an entry of their own
 * beside the entity's row, keyed and dropped with it: a write to the entity
 * drops both.  An aggregate read as of t depends on t only through the tile
 * pair (floor(t / T), floor((t - 1) / T)), T the table's agg_tile (window
 * edges move at tile boundaries; the tile holding t is read whole), so a
 * value computed at t answers every request whose time has the same pair,
 * and none after the next tile edge.
 * get_aggs: FEAT_CACHE_HIT only when every fidx[i] was computed for now_ms's
 * pair (out[i] as the reader gave it, strings as in feat_cache_get); MISS
 * with *ticket; BYPASS while a write to the entity is pending.
 * put_aggs: caches vals[i] (as feat_store_get_aggs returned them as of
 * now_ms) of features fidx[i], keeping other features already cached for the
 * same pair, unless a write touched the shard since the ticket. */
int feat_cache_get_aggs(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen,
                        const uint16_t *fidx, size_t n, int64_t now_ms, feat_value_t *out,
                        feat_buf_t *strings, uint64_t *ticket);
void feat_cache_put_aggs(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen,
                         const uint16_t *fidx, size_t n, int64_t now_ms, const feat_value_t *vals,
                         uint64_t ticket);

/* The store write hook (feat_store_set_write_hook(st, feat_cache_write_hook, c)). */
void feat_cache_write_hook(void *cache, const feat_wb_t *wb, int phase);

typedef struct feat_cache_stats {
    uint64_t hits, misses, bypasses, evictions, invalidations;
    uint64_t score_hits, score_misses;
    uint64_t agg_hits, agg_misses, agg_bypasses;
    uint64_t entries, bytes, max_bytes;
} feat_cache_stats_t;
void feat_cache_get_stats(feat_cache_t *c, feat_cache_stats_t *s);

#endif
