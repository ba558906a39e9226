/*
 * store/tile.h — aggregation tiles: their byte formats, and the one fold and
 * window code that online reads (tiles kept in the `tiles` family) and
 * point-in-time reads (tiles rebuilt from history) share, so training and
 * serving compute an aggregation with the same instructions in the same
 * order and agree to the bit.  Internal to store/ (exposed for unit tests and
 * the fuzzers), like row.h.
 *
 * Tiles.  Event time is cut into tiles of T = conf->agg_tile_ms ms; tile k
 * holds the events with k*T < ts <= (k+1)*T (right-closed, like a window),
 * so feat_tile_index(ts, T) = floor((ts - 1) / T).  The lifetime tile
 * (index FEAT_TILE_LIFETIME) holds every event of the entity.  A window W as
 * of t reads the tiles floor((t - W) / T) .. feat_tile_index(t, T): the
 * events with floor_T(t - W) < ts <= t, where floor_T(x) = floor(x / T) * T.
 * That is (t - W, t] exactly when t - W is a multiple of T, and otherwise
 * also the events of (floor_T(t - W), t - W]: at most one tile's worth (less
 * than T ms) of extra events at the old edge, never a missing one.
 *
 * Operand (ingest writes one per event to the event's block, see Blocks
 * below, and one to the lifetime tile when the table has a lifetime
 * aggregation; RocksDB's merge operator folds them in write order):
 *   u8 0x01 | i64 ts | i64 offset | i32 partition | entries
 * where each entry is  u32 input key | u16 0 | u8 type | value  (row.h's
 * entry bytes) for an event's feature that is the input of some
 * aggregation; the input key is a 32-bit FNV-1a hash of the feature's name
 * (not its stable id: the merge operator then needs only the config, and
 * may run while the store is still opening).
 *
 * Tile state (the folded value):
 *   u8 0x01 | u16 nacc | nacc x (u32 spec id | u8 fn | u32 len | payload[len])
 * one accumulator per spec (feat_agg_spec_t) that has seen a value, in the
 * table's spec order.  Every payload starts with  u64 n (values folded) |
 * i64 max_ts (newest event time folded), then, all little-endian:
 *   COUNT            nothing more
 *   SUM, MEAN        u8 type (FEAT_FT_INT64: i64 sum, wrapping like two's
 *                    complement; FEAT_FT_DOUBLE: f64 sum) | 8 bytes
 *   MIN, MAX         u8 type | 8 bytes (i64 or f64)
 *   STDDEV           f64 mean | f64 m2 (Welford per value; tiles merge by
 *                    Chan et al.'s pairwise formula)
 *   LAST, FIRST      i64 ts | i64 offset | i32 partition | u8 type | value
 *                    (row.h value bytes); order: (ts, offset, partition)
 *   LAST_N           u16 count | count x (i64 ts | i64 offset | i32 partition
 *                    | u8 type | value), newest first, count <= N
 *   APPROX_DISTINCT  stats/hll.h bytes (FNV-1a 64 of the value's bytes: the
 *                    8 little-endian bytes of a number, 1 of a bool, the
 *                    string's bytes; hll.h mixes it further)
 *   APPROX_QUANTILE  stats/kll.h serialized sketch, k = FEAT_TILE_KLL_K,
 *                    seed = (u64) spec id ^ (u64) tile index; its count is n
 * An accumulator whose spec id (with its fn) the table no longer declares is
 * dropped by the next fold and ignored by the reader; so is one whose stored
 * value type is not the input's declared type (a feature dropped and
 * declared again with another type).  Values of the wrong type for a spec
 * are skipped (the config makes them impossible; old operands after a type
 * change are not), and so are non-finite doubles (ingest dead-letters them).
 * A LAST_N list must be newest first (else FEAT_ERR_CORRUPT); entries past N
 * are ignored.
 *
 * Threads: every function is reentrant; a feat_agg_reader_t belongs to one
 * thread at a time.
 */
#ifndef FEAT_STORE_TILE_H
#define FEAT_STORE_TILE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "store/store.h"

#define FEAT_TILE_V1 0x01
#define FEAT_TILE_LIFETIME INT64_MAX
#define FEAT_TILE_KLL_K 200u

/* Levels.  Besides tiles of T (level 0), a table with long windows keeps
 * coarser tiles, conf->agg_level_ms[1] and [2] (whole multiples of T), each
 * event folded into its tile of every level.  A window's range of level-0
 * tiles is then covered exactly by whole coarse tiles in its middle and
 * finer ones toward its edges, so its value is the same set of events
 * whatever the levels (only the order in which partial results are merged
 * differs, which is why both read paths use the same cover and order). */
#define FEAT_TILE_LEVELS 3
/* The identity of tile k of a level, for seeding its sketches (level 0: k). */
int64_t feat_tile_id(int level, int64_t k);

/* Blocks.  The tiles family keeps one key per entity and tile of the
 * table's top level (the coarsest it keeps, feat_tile_top_level), a block,
 * whose value holds that tile and every finer tile inside it:
 *   u8 0x02 | nsub x (u8 level | i64 k | u32 len | state[len])
 * ordered by level, coarsest first, then k ascending; each state is a tile
 * state as above.  Ingest writes an event's operand once, to its block, and
 * the merge operator folds it into the block's tile of every level
 * (feat_tile_block_fold): an event is one key however many levels there
 * are, and each tile's state is the one feat_tile_fold_many gives for its
 * events in write order, as point-in-time reads rebuild it. */
#define FEAT_TILE_BLOCK 0x02
int feat_tile_top_level(const feat_table_conf_t *c);         /* 0 .. FEAT_TILE_LEVELS - 1 */
int64_t feat_tile_level_ms(const feat_table_conf_t *c, int level);
/* 1 if tile k of level is inside block b (a block's bytes name their tiles:
 * one that is not inside is damage, skipped by readers, dropped by folds). */
int feat_tile_in_block(const feat_table_conf_t *c, int level, int64_t k, int64_t b);

/* Folds the operands ops[0..nops) (write order) into block b (index of its
 * top-level tile; block NULL/0 = empty): out (reset first) gets the new
 * block.  Operands that do not decode, or whose event is not in block b,
 * are skipped, and so are the block's tiles that are not inside it.  FEAT_OK, FEAT_ERR_CORRUPT (the block or one of the tiles
 * the operands touch does not decode; out reset), NOMEM or TOO_LARGE. */
feat_err_t feat_tile_block_fold(const feat_table_t *t, int64_t b, const char *block, size_t blen,
                                const char *const *ops, const size_t *lens, size_t nops, feat_buf_t *out);

/* Walks a block's tiles in their order:
 *   feat_block_iter_t it;  feat_block_iter_init(&it, block, len);
 *   while ((r = feat_block_iter_next(&it)) == 1) use it.level, it.k, it.state, it.slen;
 * r 0 at the end, -1 when the bytes are not a block (a short or unknown
 * header, a level out of range, tiles out of order).  An empty value (len
 * 0) is an empty block, and so is a tile state (0x01: a key of the layout
 * before blocks, which held one tile per key; its aggregates start over).
 * it.state points into the block. */
typedef struct feat_block_iter {
    const char *b;
    size_t len, pos;
    int level;
    int64_t k;
    const char *state;
    size_t slen;
} feat_block_iter_t;
void feat_block_iter_init(feat_block_iter_t *it, const char *block, size_t len);
int feat_block_iter_next(feat_block_iter_t *it);

/* floor((ts - 1) / T) with floor division (ts may be 0 or negative). */
int64_t feat_tile_index(int64_t ts, int64_t tile_ms);

/* First tile of window w as of t: floor((t - w) / T). */
int64_t feat_tile_window_start(int64_t t, int64_t w, int64_t tile_ms);

/* Appends to out (reset first) the operand of one event: its values vals[i]
 * of features fidx[i] (table indices) that are inputs of t's aggregations.
 * Returns 1 when there is at least one such value (write it), else 0 (out
 * holds nothing useful).  out->oom reports allocation failure. */
int feat_tile_operand(const feat_table_t *t, int64_t ts, int64_t offset, int32_t partition, const uint16_t *fidx,
                      const feat_value_t *vals, size_t n, feat_buf_t *out);

/* Folds one operand into a tile state: out (reset first) receives the new
 * state.  state may be NULL/0 (an empty tile).  k is the tile's index (the
 * KLL seed).  FEAT_OK, FEAT_ERR_CORRUPT (state or operand does not decode;
 * out untouched-but-reset), FEAT_ERR_NOMEM, or FEAT_ERR_TOO_LARGE (an
 * accumulator over 4 GiB; out reset).  Every accumulator of a current spec
 * is decoded and checked (a damaged one is FEAT_ERR_CORRUPT even when the
 * operand does not touch it), so a state this returns always reads back.
 * The result depends only on (t's specs, k, state, operand): the same bytes
 * on every host.  This is the merge operator's whole work and the
 * point-in-time path's fold. */
feat_err_t feat_tile_fold(const feat_table_t *t, int64_t k, const char *state, size_t slen, const char *op,
                          size_t oplen, feat_buf_t *out);

/* Folds ops[0..nops) in order: the same bytes as nops feat_tile_fold calls
 * (each accumulator is decoded once and encoded once, which is what makes a
 * read or compaction over many pending operands cheap).  An operand that
 * does not decode is skipped, as the merge operator skips it.  FEAT_OK,
 * FEAT_ERR_CORRUPT (the state), FEAT_ERR_NOMEM or FEAT_ERR_TOO_LARGE. */
feat_err_t feat_tile_fold_many(const feat_table_t *t, int64_t k, const char *state, size_t slen,
                               const char *const *ops, const size_t *lens, size_t nops, feat_buf_t *out);

/* ts of an operand (its first field), for routing; FEAT_ERR_CORRUPT if short. */
feat_err_t feat_tile_operand_ts(const char *op, size_t oplen, int64_t *ts);

/* Reads aggregated features out of tiles.
 *   feat_agg_reader_t *r = feat_agg_reader_new();
 *   feat_agg_begin(r, t, as_of, fidx, n);        fidx: aggregated features of t
 *   feat_agg_range(r, &kfrom, &kto, &lifetime);  the tiles to visit
 *   feat_agg_add(r, k, state, len) ...           ascending k, each k at most once; lifetime last
 *   feat_agg_finish(r, out, strings);            out[i] for fidx[i]
 * A tile outside every requested window is ignored (each feature takes only
 * the tiles of its own window, or only the lifetime tile); a missing tile is
 * an empty one.  The reader does not look at event times: tile
 * feat_tile_index(as_of) is read whole, so events in it newer than as_of
 * count when the tiles hold them (the point-in-time path folds only events
 * up to as_of; online, only events stamped after "now" could).  range: kfrom
 * = the least window start, kto = feat_tile_index(as_of); kfrom > kto (0, -1)
 * when no requested feature has a window.  Floating results depend on the
 * order of the adds; the order above makes them the same bits everywhere
 * (the reader's quantile sketch is seeded from the spec and the window).
 * Values: PRESENT with ts = the newest event time included, or
 * the function's empty value (count, sum, approx_distinct: 0; last_n: "[]";
 * PRESENT with ts 0), or NOT_FOUND (mean, min, max, first, last,
 * approx_quantile with no value; stddev with fewer than 2).  out[i].type is
 * the function's output type (config.h's feat_agg_fn_t), also for
 * NOT_FOUND; approx_distinct is the estimate rounded to the nearest integer.
 * Strings (string last/first, last_n's JSON) are appended to *strings (not
 * reset) and out's pointers are set after the last append, valid while
 * *strings is not modified.  begin: FEAT_ERR_INVALID also for an
 * aggregated feature whose spec cannot be computed (its input no plain
 * feature, a numeric function over a bool or string); after a failed begin
 * or add, begin again before the next add or finish.  A reader keeps its
 * arrays, sketches and string buffers between reads (no allocation once
 * warm, except one KLL sketch decoded per approx_quantile tile). */
typedef struct feat_agg_reader feat_agg_reader_t;
feat_agg_reader_t *feat_agg_reader_new(void);                 /* NULL when out of memory */
void feat_agg_reader_destroy(feat_agg_reader_t *r);           /* NULL is fine */
feat_err_t feat_agg_begin(feat_agg_reader_t *r, const feat_table_t *t, int64_t as_of, const uint16_t *fidx,
                          size_t n);                           /* FEAT_OK, FEAT_ERR_INVALID (a plain fidx), NOMEM */
void feat_agg_range(const feat_agg_reader_t *r, int64_t *kfrom, int64_t *kto, int *lifetime);
feat_err_t feat_agg_add(feat_agg_reader_t *r, int64_t k, const char *state, size_t len); /* OK, CORRUPT, NOMEM */
/* With levels: feat_agg_ranges gives, per level, the disjoint ascending
 * index ranges [lo[i], hi[i]] of the tiles to read (arrays the reader owns,
 * valid until its next call; 0 ranges also when out of memory); feed
 * them with feat_agg_add_level in the one canonical order: level 0
 * ascending, then level 1 ascending, then level 2, then the lifetime tile
 * (feat_agg_add(r, FEAT_TILE_LIFETIME, ...)).  feat_agg_range's kfrom..kto
 * stays the window's span in level-0 tiles.  feat_agg_add = level 0. */
size_t feat_agg_ranges(feat_agg_reader_t *r, int level, const int64_t **lo, const int64_t **hi);
feat_err_t feat_agg_add_level(feat_agg_reader_t *r, int level, int64_t k, const char *state, size_t len);
feat_err_t feat_agg_finish(feat_agg_reader_t *r, feat_value_t *out, feat_buf_t *strings);

#endif
