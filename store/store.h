/*
 * store/store.h — featd's RocksDB store: online and offline feature tables,
 * labels, consumer offsets, dead letters, model blobs and metadata.
 *
 * Column families (keys → values):
 *   online       table \0 entity                      → row: per feature (id, type, ts, src, value)
 *   offline      table \0 entity \0 ~(ts offset part) → the event's features (newest first)
 *   labels       model \0 ts entity                   → label, src [, extra keys]
 *   predictions  model \0 ts entity                   → version, score        (serve)
 *   offsets      topic \0 partition                   → next offset to read
 *   models       model \0 "v" \0 version              → metadata + model blob (train)
 *                model \0 "a"                         → stage aliases         (train)
 *   references   "model" \0 model \0 version \0 feature
 *                                                     → training distribution (train)
 *                "drift" \0 stream \0 feature         → first-N or pinned reference (drift;
 *                                                        stream: a table or a model's predictions)
 *   dead_letters topic \0 partition offset            → reason, raw key, raw value
 *   meta         name                                 → schema version, table definitions
 *   tiles        table \0 entity \0 be64(size ms) be64(tile ^ sign)
 *                                                      → folded aggregation tile (store/tile.h), one
 *                                                        per tile level; size 0 = the lifetime tile;
 *                                                        written as merge operands, one per event
 * Integers in keys are big-endian (event times with the sign bit flipped) so
 * keys sort in numeric order.
 *
 * Online rows are written with a RocksDB merge operator, never read before a
 * write: per feature, the value with the greater (event time, source offset,
 * source partition) wins, so out-of-order and duplicate events resolve the
 * same way whatever order they are applied in.  Offline rows keep every
 * applied event.  Every write goes through one feat_wb_t committed atomically
 * with the consumer's next offsets: after a crash a batch is wholly applied or
 * not at all.
 *
 * Threads: a feat_store_t is safe to share; feat_wb_t and feat_pit_reader_t
 * belong to one thread at a time.
 */
#ifndef FEAT_STORE_STORE_H
#define FEAT_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"

typedef struct feat_store feat_store_t;
typedef struct feat_wb feat_wb_t;
typedef struct feat_pit_reader feat_pit_reader_t;

typedef enum feat_status {
    FEAT_ST_NOT_FOUND = 0,
    FEAT_ST_PRESENT = 1,
    FEAT_ST_EXPIRED = 2,
    /* never from the store: serve's lookups in a cluster (ingest/cluster.h) */
    FEAT_ST_UNAVAILABLE = 3,  /* the key's owner could not be asked */
    FEAT_ST_RESTORING = 4     /* the key's partition is being restored here */
} feat_status_t;

/* One typed value.  For strings, v.s points at slen bytes (not terminated)
 * owned by whoever filled the struct; each function says how long it lives. */
typedef struct feat_value {
    uint8_t type;     /* feat_ftype_t */
    uint8_t status;   /* feat_status_t, on reads */
    uint32_t slen;    /* string length */
    int64_t ts;       /* event time in ms, on reads */
    union {
        double d;
        int64_t i;
        int b;
        const char *s;
    } v;
} feat_value_t;

/* A table as the store knows it: the config's declaration plus stable
 * feature ids (persisted in meta; never reused, so renaming or dropping a
 * feature never misreads old rows).  Read-only after feat_store_open. */
typedef struct feat_table {
    const feat_table_conf_t *conf;  /* borrowed: an element of feat_store_conf_t.tables */
    uint32_t index;                 /* position in feat_store_conf_t.tables */
    uint16_t *ids;                  /* [conf->nfeatures] stable id per feature */
    int16_t *index_of_id;           /* [max_id + 1] feature index per id, -1 = retired */
    uint16_t max_id;
} feat_table_t;

typedef struct feat_store_conf {
    const char *path;               /* RocksDB directory (created if missing); read during open only */
    const feat_table_conf_t *tables; /* [ntables] the declared tables, in config order; borrowed for the
                                     * store's life (each feat_table_t.conf points into it) */
    size_t ntables;
    int sync;                       /* fsync WAL per write */
    int64_t block_cache_bytes;
    int64_t write_buffer_bytes;
    int read_only;                  /* open for reading only (tools; may run beside featd) */
    int write_buffers;              /* memtables per column family; 0 = 8 */
} feat_store_conf_t;

/* Opens (creating if needed) the store.  Checks the stored table definitions
 * against the config: a feature whose type changed is refused (errstr names
 * it).  NULL on failure with errstr set. */
feat_store_t *feat_store_open(const feat_store_conf_t *conf, char *errstr, size_t errlen);
/* The same, saying why it failed: FEAT_ERR_CONFIG when the config and the
 * stored table definitions disagree (errstr starts with the key,
 * "table.t.feature.a: type changed ..."), FEAT_ERR_STATE for a store a newer
 * featd wrote, FEAT_ERR_IO, FEAT_ERR_CORRUPT or FEAT_ERR_NOMEM.  *out is
 * NULL on failure. */
feat_err_t feat_store_open_rc(const feat_store_conf_t *conf, feat_store_t **out, char *errstr, size_t errlen);
/* Flushes and closes.  NULL is fine.  No other call may be in flight. */
void feat_store_close(feat_store_t *st);

const feat_table_t *feat_store_table(const feat_store_t *st, const char *name);
const feat_table_t *feat_store_table_at(const feat_store_t *st, size_t i);
size_t feat_store_ntables(const feat_store_t *st);

typedef enum feat_cf {
    FEAT_CF_ONLINE = 0, FEAT_CF_OFFLINE, FEAT_CF_LABELS, FEAT_CF_PREDICTIONS, FEAT_CF_OFFSETS,
    FEAT_CF_MODELS, FEAT_CF_REFERENCES, FEAT_CF_DEAD_LETTERS, FEAT_CF_META, FEAT_CF_TILES, FEAT_CF_COUNT
} feat_cf_t;

/* ---- writing ------------------------------------------------------------ */

/* A batch that will be written to st. */
feat_wb_t *feat_wb_new(feat_store_t *st);
void feat_wb_clear(feat_wb_t *wb);    /* keeps capacity */
void feat_wb_destroy(feat_wb_t *wb);  /* NULL is fine */
size_t feat_wb_count(const feat_wb_t *wb); /* events + labels + dead letters */

/* The feat_wb_put_* and feat_wb_set_offset calls return FEAT_OK or
 * FEAT_ERR_NOMEM, and more where a function says so.
 *
 * One feature event: an online merge operand and an offline row, and, when
 * t has aggregations and the event carries an input of one, a tile operand
 * for the event's tile (and the lifetime tile).  vals[i]
 * is feature fidx[i] of t (config index); strings are copied.  Also
 * FEAT_ERR_INVALID when n is 0 or over FEAT_MAX_FEATURES, FEAT_ERR_TOO_LARGE
 * when the batch would pass 4 GiB; after a failure the batch may hold half
 * of the event: clear it, do not commit it. */
feat_err_t feat_wb_put_event(feat_wb_t *wb, const feat_table_t *t, const char *key, size_t klen,
                             int64_t ts, int32_t partition, int64_t offset,
                             const uint16_t *fidx, const feat_value_t *vals, size_t n);
/* The same for an event too late to aggregate (table.agg_lateness): online
 * and history as usual, no tile operand, and its history row is marked so
 * point-in-time aggregations skip it as online ones do. */
feat_err_t feat_wb_put_late_event(feat_wb_t *wb, const feat_table_t *t, const char *key, size_t klen,
                                  int64_t ts, int32_t partition, int64_t offset,
                                  const uint16_t *fidx, const feat_value_t *vals, size_t n);
feat_err_t feat_wb_put_label(feat_wb_t *wb, const char *model, const char *key, size_t klen,
                             int64_t ts, double label, int32_t partition, int64_t offset);
/* The same with the label's extra entity keys (model.label_keys, in that
 * order): appended to the 20-byte value as (le32 length, bytes) each.  nx = 0
 * writes exactly what feat_wb_put_label writes. */
feat_err_t feat_wb_put_label_keys(feat_wb_t *wb, const char *model, const char *key, size_t klen, int64_t ts,
                                  double label, const char *const *xnames, const char *const *xkeys,
                                  const size_t *xlens, size_t nx,
                                  int32_t partition, int64_t offset);
/* reason: a short code ("bad_json"); detail: one human line. */
feat_err_t feat_wb_put_dead_letter(feat_wb_t *wb, const char *topic, int32_t partition, int64_t offset,
                                   const char *reason, const char *detail, const void *key, size_t klen,
                                   const void *value, size_t vlen, int64_t received_ms);
/* The partition's next offset and the running count of messages applied from
 * it (an exactly-once audit: it equals the number of distinct offsets stored
 * unless something was applied twice). */
feat_err_t feat_wb_set_offset(feat_wb_t *wb, const char *topic, int32_t partition, int64_t next_offset,
                              uint64_t applied);
/* A prediction log row (serve). */
feat_err_t feat_wb_put_prediction(feat_wb_t *wb, const char *model, const char *key, size_t klen,
                                  int64_t ts, uint64_t version, double score);

/* A blob put or delete in the models, references or meta family, committed
 * with the rest of the batch (registering a model version is one batch).
 * FEAT_OK, or FEAT_ERR_INVALID for another family. */
feat_err_t feat_wb_put_blob(feat_wb_t *wb, feat_cf_t cf, const char *key, size_t klen, const void *val, size_t vlen);
feat_err_t feat_wb_delete_blob(feat_wb_t *wb, feat_cf_t cf, const char *key, size_t klen);

/* Online keys a batch touches, for cache invalidation by write hooks. */
size_t feat_wb_online_count(const feat_wb_t *wb);
void feat_wb_online_at(const feat_wb_t *wb, size_t i, const feat_table_t **t, const char **key, size_t *klen);

/* Called on the writing thread just before (phase 0) and just after
 * (phase 1, only when the write succeeded) each feat_store_write.  Must not
 * call back into the store's write path. */
typedef void feat_write_hook_fn(void *arg, const feat_wb_t *wb, int phase);
void feat_store_set_write_hook(feat_store_t *st, feat_write_hook_fn *fn, void *arg);

/* Does the CPU work of committing wb (sorting its rows by key and laying
 * them out as a RocksDB batch) on the calling thread, so a pipelined writer
 * thread only pays for RocksDB's own work.  Optional; feat_store_write seals
 * whatever is left.  Rows added after a seal are sealed by the next one. */
void feat_wb_seal(feat_wb_t *wb);

/* Commits wb atomically (WAL on; fsync when conf->sync).  FEAT_OK or
 * FEAT_ERR_IO (errstr set); on failure nothing of wb is applied.  Either way
 * call feat_wb_clear before reusing wb. */
feat_err_t feat_store_write(feat_store_t *st, feat_wb_t *wb, char *errstr, size_t errlen);

/* ---- scans ---------------------------------------------------------------
 * Every feat_*_fn callback below is called once per row and returns non-zero
 * to stop the scan early (not an error: the scan still returns FEAT_OK).  A
 * scan returns FEAT_OK, FEAT_ERR_IO (RocksDB failed), FEAT_ERR_CORRUPT (a row
 * or key does not decode; the scan stops there) or FEAT_ERR_NOMEM. */

/* ---- offsets -------------------------------------------------------------- */

/* Next offset to read for (topic, partition) and the applied count (may be
 * NULL); FEAT_OK, FEAT_ERR_NOT_FOUND when none stored, FEAT_ERR_CORRUPT or
 * FEAT_ERR_IO. */
feat_err_t feat_store_get_offset(feat_store_t *st, const char *topic, int32_t partition, int64_t *next,
                                 uint64_t *applied);
typedef int feat_offset_fn(void *arg, const char *topic, int32_t partition, int64_t next, uint64_t applied);
feat_err_t feat_store_offsets(feat_store_t *st, feat_offset_fn *fn, void *arg);

/* Forgets every stored offset (the embedded broker starts with empty logs),
 * in one write: FEAT_OK with *removed = how many there were, or
 * FEAT_ERR_IO (logged) with nothing removed and *removed = 0. */
feat_err_t feat_store_clear_offsets(feat_store_t *st, uint64_t *removed);
/* Forgets the stored offset of one partition.  FEAT_OK (also when there was
 * none), FEAT_ERR_NOMEM or FEAT_ERR_IO. */
feat_err_t feat_store_clear_offset(feat_store_t *st, const char *topic, int32_t partition);

/* ---- online reads ------------------------------------------------------- */

/* Reads the encoded online row of (t, key) into out (replacing its contents).
 * FEAT_OK, FEAT_ERR_NOT_FOUND (no row), or FEAT_ERR_IO. */
feat_err_t feat_store_get_row(feat_store_t *st, const feat_table_t *t, const char *key, size_t klen, feat_buf_t *out);

/* Reads many rows at once (one RocksDB MultiGet).  rows[i] receives key i's
 * row, found[i] 1 or 0.  FEAT_OK or FEAT_ERR_IO. */
feat_err_t feat_store_get_rows(feat_store_t *st, const feat_table_t *t, size_t nkeys, const char *const *keys,
                               const size_t *klens, feat_buf_t *rows, int *found);

/* Decodes the requested features of an encoded row.  out[i] gets feature
 * fidx[i] with status PRESENT, EXPIRED (now − ts > TTL; value kept) or
 * NOT_FOUND.  Strings point into row, valid while row is.  row may be NULL
 * (all NOT_FOUND).  FEAT_ERR_CORRUPT when the bytes do not decode. */
feat_err_t feat_row_decode(const feat_table_t *t, const char *row, size_t len, const uint16_t *fidx,
                           size_t n, int64_t now_ms, feat_value_t *out);

/* Convenience: get_row + decode.  Strings live in *scratch.  A missing row is
 * FEAT_OK with every feature NOT_FOUND; else as get_row and decode. */
feat_err_t feat_store_get_online(feat_store_t *st, const feat_table_t *t, const char *key, size_t klen,
                                 const uint16_t *fidx, size_t n, int64_t now_ms, feat_value_t *out,
                                 feat_buf_t *scratch);

/* Visits every online row (t->index order is not guaranteed). */
typedef int feat_online_fn(void *arg, const feat_table_t *t, const char *key, size_t klen, const char *row, size_t len);
feat_err_t feat_store_scan_online(feat_store_t *st, feat_online_fn *fn, void *arg);
/* Visits every offline row of every entity of table t, ordered by entity then
 * newest first; vals as for feat_history_fn. */
typedef int feat_offline_fn(void *arg, const char *key, size_t klen, int64_t ts, int32_t partition, int64_t offset,
                            const feat_value_t *vals, size_t n);
feat_err_t feat_store_scan_offline(feat_store_t *st, const feat_table_t *t, feat_offline_fn *fn, void *arg);

/* ---- history and point-in-time reads ---------------------------------- */

/* Called once per offline row of an entity, newest first: descending (ts,
 * offset, partition) order.  vals is indexed by feature index (t->conf->nfeatures
 * entries; absent features have status NOT_FOUND, present ones PRESENT);
 * strings valid during the call.  Return non-zero to stop the scan. */
typedef int feat_history_fn(void *arg, int64_t ts, int32_t partition, int64_t offset,
                            const feat_value_t *vals, size_t n);
/* Scans rows with from_ms <= ts <= to_ms (a scan: see above). */
feat_err_t feat_store_history(feat_store_t *st, const feat_table_t *t, const char *key, size_t klen,
                              int64_t from_ms, int64_t to_ms, feat_history_fn *fn, void *arg);

/* A point-in-time reader over a consistent snapshot; reuse it for many reads. */
feat_pit_reader_t *feat_pit_reader_new(feat_store_t *st);
void feat_pit_reader_destroy(feat_pit_reader_t *r); /* NULL is fine */
/* Features of entity key as of time as_of: for each plain fidx[i], the latest
 * value with ts <= as_of and as_of − ts <= TTL → PRESENT; each aggregated
 * one folded from the history rows its windows cover (see "aggregations").  With
 * report_expired, a feature whose latest value at or before as_of is older
 * than the TTL reads EXPIRED (this scans further back); otherwise NOT_FOUND.
 * Strings are copied into *strings (reset by the call) and valid until the
 * next read.  FEAT_OK, FEAT_ERR_IO, FEAT_ERR_CORRUPT or FEAT_ERR_NOMEM. */
feat_err_t feat_pit_read(feat_pit_reader_t *r, const feat_table_t *t, const char *key, size_t klen,
                         int64_t as_of, const uint16_t *fidx, size_t n, int report_expired,
                         feat_value_t *out, feat_buf_t *strings);

/* ---- aggregations ----------------------------------------------------------
 * Aggregated features (feat_feature_is_agg) are computed from tiles
 * (store/tile.h; semantics in docs/ARCHITECTURE.md "Aggregations").  Online,
 * feat_store_get_aggs folds the stored tiles of the windows as of as_of;
 * feat_pit_read rebuilds the tiles from history with the same fold and
 * reader, so both give the same bits for the same events.  A reader holds
 * the per-feature accumulators; reuse it (one per thread). */
typedef struct feat_agg_reader feat_agg_reader_t;
feat_agg_reader_t *feat_agg_reader_new(void);        /* NULL when out of memory */
void feat_agg_reader_destroy(feat_agg_reader_t *r); /* NULL is fine */
/* out[i] = aggregated feature fidx[i] of (t, key) as of as_of from the
 * stored tiles (every fidx aggregated).  Strings are appended to *strings
 * (not reset) and valid while it is not modified.  FEAT_OK, FEAT_ERR_INVALID
 * (a plain fidx), FEAT_ERR_IO, FEAT_ERR_CORRUPT or FEAT_ERR_NOMEM. */
feat_err_t feat_store_get_aggs(feat_store_t *st, const feat_table_t *t, const char *key, size_t klen,
                               int64_t as_of, const uint16_t *fidx, size_t n, feat_agg_reader_t *r,
                               feat_value_t *out, feat_buf_t *strings);

/* ---- labels, dead letters, blobs, stats ----------------------------------- */

typedef int feat_label_fn(void *arg, int64_t ts, const char *key, size_t klen, double label);
typedef int feat_label_src_fn(void *arg, const char *model, int64_t ts, const char *key, size_t klen, double label,
                              int32_t partition, int64_t offset);
/* Every label of every model with its source position (audits, tools). */
feat_err_t feat_store_all_labels(feat_store_t *st, feat_label_src_fn *fn, void *arg);
/* Labels of model with from_ms <= ts <= to_ms in ts order. */
feat_err_t feat_store_labels(feat_store_t *st, const char *model, int64_t from_ms, int64_t to_ms,
                             feat_label_fn *fn, void *arg);
/* The same with each label's extra keys: entity xnames[i] (xnlens[i] bytes)
 * has key xkeys[i] (xlens[i] bytes), i < nx; pointers into the scan, valid
 * during the call; nx = 0 for labels stored without any, such as every label
 * written before model.label_keys existed.  Keys are stored with their
 * entity's name, so reordering or editing model.label_keys never joins a
 * stored label with the wrong key. */
typedef int feat_label_keys_fn(void *arg, int64_t ts, const char *key, size_t klen, double label,
                               const char *const *xnames, const size_t *xnlens, const char *const *xkeys,
                               const size_t *xlens, size_t nx);
feat_err_t feat_store_labels_keys(feat_store_t *st, const char *model, int64_t from_ms, int64_t to_ms,
                                  feat_label_keys_fn *fn, void *arg);

typedef int feat_dead_letter_fn(void *arg, const char *topic, int32_t partition, int64_t offset,
                                const char *reason, const char *detail, const char *key, size_t klen,
                                const char *value, size_t vlen);
feat_err_t feat_store_dead_letters(feat_store_t *st, feat_dead_letter_fn *fn, void *arg);


/* Generic blob access for the models, references and meta families.  put and
 * delete: FEAT_OK or FEAT_ERR_IO; get: FEAT_OK, FEAT_ERR_NOT_FOUND,
 * FEAT_ERR_IO or FEAT_ERR_NOMEM. */
feat_err_t feat_store_put_blob(feat_store_t *st, feat_cf_t cf, const char *key, size_t klen, const void *val,
                               size_t vlen);
feat_err_t feat_store_get_blob(feat_store_t *st, feat_cf_t cf, const char *key, size_t klen, feat_buf_t *out);
feat_err_t feat_store_delete_blob(feat_store_t *st, feat_cf_t cf, const char *key, size_t klen);
typedef int feat_blob_fn(void *arg, const char *key, size_t klen, const char *val, size_t vlen);
/* Visits keys starting with prefix in order. */
feat_err_t feat_store_scan_blobs(feat_store_t *st, feat_cf_t cf, const char *prefix, size_t plen, feat_blob_fn *fn,
                                 void *arg);

/* Logged predictions of model with from_ms <= ts <= to_ms, in time order. */
typedef int feat_prediction_fn(void *arg, int64_t ts, const char *key, size_t klen, uint64_t version, double score);
feat_err_t feat_store_predictions(feat_store_t *st, const char *model, int64_t from_ms, int64_t to_ms,
                                  feat_prediction_fn *fn, void *arg);

/* Approximate bytes on disk plus memtables. */
uint64_t feat_store_size_bytes(feat_store_t *st);

/* Memory RocksDB holds for the store: memtables of every family (each is
 * bounded by store.write_buffer, store.write_buffers per family), the block cache
 * (bounded by store.block_cache; index and filter blocks are charged to it)
 * and table readers outside the cache. */
typedef struct feat_store_memory {
    uint64_t memtables, block_cache, block_cache_pinned, table_readers;
    /* write stalls: RocksDB's delayed write rate (bytes/s; 0 = writes not
     * delayed) and 1 while writes are stopped (too many L0 files or
     * memtables waiting for flush/compaction) */
    uint64_t delayed_write_rate, write_stopped;
} feat_store_memory_t;
void feat_store_memory(feat_store_t *st, feat_store_memory_t *m);
/* RocksDB's estimate of the keys in one column family. */
uint64_t feat_store_estimate_keys(feat_store_t *st, feat_cf_t cf);
/* Bytes of one column family's SST files in the current version of the
 * store (RocksDB's "rocksdb.live-sst-files-size"): on disk, after
 * compression; memtables are not counted (feat_store_flush first).  0 when
 * RocksDB does not report it.  Benchmarks: state per entity (bench_aggs). */
uint64_t feat_store_cf_bytes(feat_store_t *st, feat_cf_t cf);
/* Flushes memtables (tests and benchmarks).  FEAT_OK or FEAT_ERR_IO. */
feat_err_t feat_store_flush(feat_store_t *st);
/* Compacts the whole store (tests: forces merge operands to be resolved, and
 * expired tiles to be dropped: the tiles family is compacted twice).
 * Always FEAT_OK (RocksDB's C API reports no error for it). */
feat_err_t feat_store_compact(feat_store_t *st);

/* ---- backup ------------------------------------------------------------- */

typedef struct feat_checkpoint_info {
    uint64_t bytes;         /* sum of the checkpoint's file sizes */
    uint64_t files;
    uint64_t linked_files;  /* of those, hard links shared with the live store (no extra disk) */
} feat_checkpoint_info_t;

/* A consistent online backup (RocksDB checkpoint) of the whole store into
 * dir, a complete RocksDB directory that feat_store_open (and featd-inspect)
 * can open.  Memtables are flushed first; SST files are hard-linked when dir
 * is on the store's file system and copied otherwise; the live WAL is copied.
 * Every WriteBatch is in it wholly or not at all, so data and Kafka offsets
 * agree.  Runs beside writers and readers (it does not block ingest except
 * for the flush).  dir must not exist; its parent must.  FEAT_OK (*info
 * filled when info is not NULL), FEAT_ERR_EXISTS, FEAT_ERR_INVALID (parent
 * missing) or FEAT_ERR_IO, with errstr set.  RocksDB builds the checkpoint
 * in dir.tmp and renames it, so a failure leaves no dir behind. */
feat_err_t feat_store_checkpoint(feat_store_t *st, const char *dir, feat_checkpoint_info_t *info, char *errstr,
                                 size_t errlen);

#endif
