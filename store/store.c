/*
 * store/store.c — RocksDB behind store.h.  The only file that includes
 * RocksDB's header; its errptr strings become feat_err_t + errstr here.
 */
#include "store/store.h"
#include "store/row.h"
#include "common/clock.h"
#include "store/tile.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const cf_names[FEAT_CF_COUNT] = {
    "online", "offline", "labels", "predictions", "offsets", "models", "references",
    "dead_letters", "meta", "tiles"};

/* 2: online rows of version 2 (store/row.h).  A store of version 1 is read
 * as it is and marked 2 on open; a store marked higher is refused (a newer
 * featd wrote rows this one may not read). */
#define SCHEMA_VERSION "2"
#define SCHEMA_VERSION_MAX 2 /* the same, as a number */

struct feat_store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_options_t *cf_opts[FEAT_CF_COUNT];
    rocksdb_column_family_handle_t *cf[FEAT_CF_COUNT + 1]; /* +1: "default" */
    rocksdb_mergeoperator_t *merge;
    rocksdb_mergeoperator_t *tmerge;      /* tiles: folds event operands (tile.h) */
    rocksdb_compactionfilter_t *tfilter;  /* tiles: drops those out of every window */
    rocksdb_cache_t *cache;
    rocksdb_block_based_table_options_t *bbto;
    rocksdb_block_based_table_options_t *bbto_tiles; /* the tiles family's: bbto with bigger data blocks */
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
    rocksdb_readoptions_t *ropts_total; /* total_order_seek: whole-family scans */
    feat_table_t *tables;
    size_t ntables;
    feat_write_hook_fn *hook;
    void *hook_arg;
    int read_only;
    atomic_int write_failed;  /* a write returned an error: RocksDB refuses writes from now on */
};

/* A buffered online merge or offline put: key and value live in wb->arena.
 * They are sorted by key when the batch is committed, so RocksDB's memtable
 * skiplist inserts them in order (it reuses the previous insert's position),
 * which is several times cheaper than random order.  Safe: merges commute and
 * history keys are unique. */
typedef struct op {
    const feat_table_t *t;
    uint32_t koff, klen;    /* full RocksDB key */
    uint32_t voff, vlen;
    uint32_t eoff, elen;    /* entity key inside the arena (online ops) */
} op_t;

typedef struct oplist {
    op_t *v;
    size_t n, cap;
} oplist_t;

struct feat_wb {
    feat_store_t *st;
    rocksdb_writebatch_t *b;
    feat_buf_t key;     /* scratch for one key */
    feat_buf_t val;     /* scratch for one value */
    feat_buf_t val2;
    feat_buf_t arena;   /* keys and values of buffered ops */
    oplist_t on, off;   /* online merges, offline puts */
    oplist_t tl;        /* tile merges: applied in the order buffered per key (a fold is not commutative) */
    feat_buf_t top;     /* scratch: one tile operand */
    size_t on_done, off_done, tl_done; /* how many of each feat_wb_seal has materialized */
    size_t count;
};

/* One history row an aggregation folds (point-in-time reads). */
typedef struct pit_ev {
    int64_t tile, tile0, offset;   /* tile: at the level being folded; tile0: at level 0 */
    int32_t partition;
    uint32_t at, len;   /* its tile operand in feat_pit_reader.evbuf */
} pit_ev_t;

struct feat_pit_reader {
    feat_store_t *st;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro;
    rocksdb_iterator_t *it;
    feat_buf_t key;
    /* aggregations: the rows in range, their operands, the tiles they fold into */
    feat_agg_reader_t *agg;
    pit_ev_t *evs;
    size_t nev, capev;
    feat_buf_t evbuf, op, tile, aggstr;
    const char **ops;     /* [capops] one tile's operands, for feat_tile_fold_many */
    size_t *oplens, capops;
    feat_value_t *vals;   /* [nfeatures of the widest table] */
    uint16_t *fidx;
    size_t capvals;
};

/* ---- tiles: merge operator and expiry ---------------------------------------- */

/* tiles key: table \0 entity \0 be64(tile size ms) be64(index ^ sign); the
 * lifetime tile has size 0 and index 0.  The size is in the key, so tiles
 * of a size the config no longer keeps are never misread (and expire). */
#define TILE_KEY_TAIL 16

static void tile_key(feat_buf_t *k, const feat_table_t *t, const char *key, size_t klen, int64_t size_ms,
                     int64_t tile) {
    feat_buf_reset(k);
    feat_buf_puts(k, t->conf->name);
    feat_buf_putc(k, 0);
    feat_buf_append(k, key, klen);
    feat_buf_putc(k, 0);
    unsigned char b[16];
    feat_put_be64(b, (uint64_t)size_ms);
    feat_put_be64(b + 8, (uint64_t)tile ^ 0x8000000000000000ull);
    feat_buf_append(k, b, 16);
}

/* What a tiles-family key of tile size size_ms holds in t: 1 a block (the
 * top level's size, store/tile.h), 0 the lifetime tile (size 0), -1 a size
 * t does not keep (a config change since it was written). */
static int tile_kind(const feat_table_t *t, int64_t size_ms) {
    if (size_ms == 0) return 0;
    if (t->conf->agg_max_window_ms > 0 && size_ms == feat_tile_level_ms(t->conf, feat_tile_top_level(t->conf)))
        return 1;
    return -1;
}

/* The table, tile size and index of a tiles-family key; NULL for a table
 * the config no longer declares (or a malformed key). */
static const feat_table_t *tile_key_parse(const feat_store_t *st, const char *key, size_t klen, int64_t *size_ms,
                                          int64_t *tile) {
    const char *z = klen > TILE_KEY_TAIL + 1 ? memchr(key, 0, klen - TILE_KEY_TAIL - 1) : NULL;
    if (!z) return NULL;
    *size_ms = (int64_t)feat_get_be64((const unsigned char *)key + klen - 16);
    *tile = (int64_t)(feat_get_be64((const unsigned char *)key + klen - 8) ^ 0x8000000000000000ull);
    for (size_t i = 0; i < st->ntables; i++) {
        const char *n = st->tables[i].conf->name;
        if (strlen(n) == (size_t)(z - key) && memcmp(n, key, (size_t)(z - key)) == 0) return &st->tables[i];
    }
    return NULL;
}

static const char *tmerge_name(void *state) { (void)state; return "featd.tiles.v1"; }

/* Folds the operands into the block (or the lifetime tile) in write order
 * (feat_tile_block_fold, feat_tile_fold_many: the fold point-in-time reads
 * run).  An operand that does not decode is skipped rather than failing the
 * merge: a failed merge fails reads and stops compactions.  A table no
 * longer declared keeps its value as it is. */
static char *tmerge_full(void *state, const char *key, size_t klen, const char *existing, size_t elen,
                         const char *const *ops, const size_t *lens, int nops, unsigned char *success,
                         size_t *out_len) {
    feat_store_t *st = state;
    int64_t size = 0, k = 0;
    const feat_table_t *t = tile_key_parse(st, key, klen, &size, &k);
    int kind = t ? tile_kind(t, size) : -1;
    feat_buf_t cur = FEAT_BUF_INIT;
    feat_err_t rc = kind == 1   ? feat_tile_block_fold(t, k, existing, elen, ops, lens, (size_t)nops, &cur)
                    : kind == 0 ? feat_tile_fold_many(t, FEAT_TILE_LIFETIME, existing, elen, ops, lens, (size_t)nops,
                                                      &cur)
                                : FEAT_ERR_CORRUPT;
    if (rc == FEAT_ERR_NOMEM || cur.oom) {
        feat_buf_free(&cur);
        *success = 0;
        *out_len = 0; /* RocksDB's C wrapper copies out_len bytes even on failure */
        return NULL;
    }
    if (rc) { /* a table no longer declared, or a damaged tile: keep what was there */
        feat_buf_reset(&cur);
        if (existing) feat_buf_append(&cur, existing, elen);
    }
    if (cur.oom) {
        feat_buf_free(&cur);
        *success = 0;
        *out_len = 0; /* RocksDB's C wrapper copies out_len bytes even on failure */
        return NULL;
    }
    if (!cur.data && size == 0) { /* no table and nothing before: an empty lifetime tile */
        feat_buf_putc(&cur, FEAT_TILE_V1);
        feat_buf_putc(&cur, 0);
        feat_buf_putc(&cur, 0);
    } else if (!cur.data) { /* or an empty block */
        feat_buf_putc(&cur, FEAT_TILE_BLOCK);
    }
    *success = 1;
    *out_len = cur.len;
    return cur.data;
}

static char *tmerge_partial(void *state, const char *key, size_t klen, const char *const *ops, const size_t *lens,
                            int nops, unsigned char *success, size_t *out_len) {
    /* folding needs the tile the operands start from: leave them to the full
     * merge.  RocksDB's C wrapper copies out_len bytes even on failure. */
    (void)state; (void)key; (void)klen; (void)ops; (void)lens; (void)nops;
    *success = 0;
    *out_len = 0;
    return NULL;
}

/* A block older than the first tile of the table's longest window as of
 * now is out of every window online reads ask for (they read as of now), so
 * a compaction drops it; history keeps the events for point-in-time reads.
 * So does a key of a size the table no longer keeps.  The lifetime tile
 * stays while the table declares a lifetime aggregation. */
static unsigned char tfilter_fn(void *state, int rlevel, const char *key, size_t klen, const char *val, size_t vlen,
                                char **nv, size_t *nvlen, unsigned char *changed) {
    (void)rlevel; (void)val; (void)vlen; (void)nv; (void)nvlen;
    *changed = 0;
    int64_t size = 0, k = 0;
    const feat_table_t *t = tile_key_parse(state, key, klen, &size, &k);
    if (!t) return 0;
    int kind = tile_kind(t, size);
    if (kind == 0) return t->conf->agg_lifetime == 0; /* the lifetime tile, while a lifetime is declared */
    if (kind < 0) return 1; /* a size no window reads */
    /* the first level-0 tile the longest window reads as of now, less one for clock skew */
    int64_t T = t->conf->agg_tile_ms;
    int64_t first = feat_tile_window_start(feat_now_ms(), t->conf->agg_max_window_ms, T) - 1;
    int64_t r = size / T; /* level-0 tiles per block */
    return (k + 1) * r <= first; /* every level-0 tile it spans is before first */
}
static const char *tfilter_name(void *state) { (void)state; return "featd.tiles.expiry"; }

/* ---- merge operator ------------------------------------------------------ */

static void merge_destroy(void *state) { (void)state; }
static const char *merge_name(void *state) { (void)state; return "featd.online.v1"; }
static void merge_delete(void *state, const char *v, size_t len) { (void)state; (void)len; free((void *)v); }

static char *merge_many(const char *base, size_t blen, const char *const *ops, const size_t *lens,
                        int nops, unsigned char *success, size_t *out_len) {
    feat_buf_t cur = FEAT_BUF_INIT, nxt = FEAT_BUF_INIT;
    if (base) feat_buf_append(&cur, base, blen);
    else feat_buf_putc(&cur, FEAT_ROW_V2);
    for (int i = 0; i < nops; i++) {
        if (feat_row_merge(cur.data, cur.len, ops[i], lens[i], &nxt) != FEAT_OK) {
            feat_buf_free(&cur);
            feat_buf_free(&nxt);
            *success = 0;
            *out_len = 0;
            return NULL;
        }
        feat_buf_t t = cur;
        cur = nxt;
        nxt = t;
    }
    feat_buf_free(&nxt);
    if (cur.oom) {
        feat_buf_free(&cur);
        *success = 0;
        *out_len = 0; /* RocksDB's C wrapper copies out_len bytes even on failure */
        return NULL;
    }
    *success = 1;
    *out_len = cur.len;
    return cur.data;
}

static char *merge_full(void *state, const char *key, size_t klen, const char *existing,
                        size_t elen, const char *const *ops, const size_t *lens, int nops,
                        unsigned char *success, size_t *out_len) {
    (void)state; (void)key; (void)klen;
    return merge_many(existing, elen, ops, lens, nops, success, out_len);
}

static char *merge_partial(void *state, const char *key, size_t klen, const char *const *ops,
                           const size_t *lens, int nops, unsigned char *success, size_t *out_len) {
    (void)state; (void)key; (void)klen;
    if (nops <= 0) { *success = 0; *out_len = 0; return NULL; }
    return merge_many(ops[0], lens[0], ops + 1, lens + 1, nops - 1, success, out_len);
}

/* ---- prefix extractors ----------------------------------------------------
 * Every read of the offline family stays inside one entity's history
 * (history scans, point-in-time reads), and every online read is a point
 * get; every read of the tiles family stays inside one entity's blocks.
 * So the three families hash their memtables by entity: the prefix of an
 * offline or tiles key is "table \0 entity \0", of an online key the whole
 * "table \0 entity".  Inserts then go to a small per-entity skiplist instead
 * of one big one (tests/bench/bench_ingest measures the difference), and SST
 * prefix blooms let per-entity seeks skip files.  Whole-family scans (tools)
 * ask for total_order_seek. */

static const char *nth_nul(const char *k, size_t len, int n) {
    for (size_t i = 0; i < len; i++)
        if (k[i] == 0 && --n == 0) return k + i;
    return NULL;
}

static char *offline_prefix_fn(void *st, const char *key, size_t len, size_t *dlen) {
    (void)st;
    const char *z = nth_nul(key, len, 2);
    *dlen = z ? (size_t)(z - key) + 1 : len;
    return (char *)key;
}
static unsigned char offline_in_domain(void *st, const char *key, size_t len) {
    (void)st;
    return nth_nul(key, len, 2) != NULL;
}
static unsigned char never_in_range(void *st, const char *key, size_t len) {
    (void)st; (void)key; (void)len;
    return 0;
}
static const char *offline_prefix_name(void *st) { (void)st; return "featd.offline.entity.v1"; }

static char *online_prefix_fn(void *st, const char *key, size_t len, size_t *dlen) {
    (void)st;
    *dlen = len;
    return (char *)key;
}
static unsigned char online_in_domain(void *st, const char *key, size_t len) {
    (void)st;
    return nth_nul(key, len, 1) != NULL;
}
static const char *online_prefix_name(void *st) { (void)st; return "featd.online.entity.v1"; }
static void no_destroy(void *st) { (void)st; }

/* ---- helpers -------------------------------------------------------------- */

static feat_err_t io_err(char *errstr, size_t errlen, const char *what, char *rerr) {
    if (errstr && errlen) snprintf(errstr, errlen, "%s: %s", what, rerr ? rerr : "unknown RocksDB error");
    feat_log(FEAT_LOG_ERROR, "store", "%s: %s", what, rerr ? rerr : "?");
    rocksdb_free(rerr);
    return FEAT_ERR_IO;
}

/* The same for a failed write: remembers it, so close does not ask a DB
 * in RocksDB's background-error state to flush. */
static feat_err_t write_err(feat_store_t *st, char *errstr, size_t errlen, const char *what, char *rerr) {
    atomic_store(&st->write_failed, 1);
    return io_err(errstr, errlen, what, rerr);
}

/* table \0 entity */
static void online_key(feat_buf_t *k, const feat_table_t *t, const char *key, size_t klen) {
    feat_buf_reset(k);
    feat_buf_puts(k, t->conf->name);
    feat_buf_putc(k, 0);
    feat_buf_append(k, key, klen);
}

/* table \0 entity \0 */
static void offline_prefix(feat_buf_t *k, const feat_table_t *t, const char *key, size_t klen) {
    online_key(k, t, key, klen);
    feat_buf_putc(k, 0);
}

/* History keys end with (ts, offset, partition) encoded descending: newest
 * first.  Every history read is then a forward seek plus Next, which the
 * hash memtables support (they cannot iterate backwards). */
static void put_ts_src(feat_buf_t *k, int64_t ts, uint64_t offset, uint32_t partition) {
    unsigned char b[20];
    feat_put_ts(b, ts);
    feat_put_be64(b + 8, offset ^ 0x8000000000000000ull);
    feat_put_be32(b + 16, partition ^ 0x80000000u);
    for (int i = 0; i < 20; i++) b[i] = (unsigned char)~b[i];
    feat_buf_append(k, b, 20);
}

/* ---- scans ------------------------------------------------------------------
 * Every walk over a column family is a cursor: cur_begin seeks, cur_next
 * steps forward while keys stay in range, cur_end turns the iterator's error
 * into FEAT_ERR_IO and releases it.  A scan is then
 *     cursor_t c;
 *     cur_begin(&c, st, &(scan_t){...});
 *     while (cur_next(&c)) { decode c.k, c.v; break to stop }
 *     return cur_end(&c, rc);                                               */

typedef struct scan {
    feat_cf_t cf;
    int total_order;                /* whole-family order where a prefix extractor is set (ropts_total) */
    const char *lo; size_t lolen;   /* first key, inclusive; NULL = the family's first */
    const char *hi; size_t hilen;   /* RocksDB's iterate_upper_bound, exclusive; NULL = none */
    const char *prefix; size_t plen;/* the scan ends at the first key without it; NULL = none */
    const char *what;               /* names the scan in the error */
} scan_t;

typedef struct cursor {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;      /* ours to destroy (upper bound set), or NULL */
    int own_it;                     /* cur_end destroys it */
    int started;
    const char *prefix, *what;
    size_t plen;
    const char *k, *v;              /* the current pair: valid until the next cur_next */
    size_t kl, vl;
} cursor_t;

/* Starts s over it, an iterator the caller keeps (its read options carry
 * any snapshot and upper bound; s->cf, s->hi and s->total_order are not
 * looked at). */
static void cur_begin_on(cursor_t *c, rocksdb_iterator_t *it, const scan_t *s) {
    memset(c, 0, sizeof(*c));
    c->it = it;
    c->prefix = s->prefix;
    c->plen = s->plen;
    c->what = s->what;
    if (s->lo) rocksdb_iter_seek(it, s->lo, s->lolen);
    else rocksdb_iter_seek_to_first(it);
}

/* Starts s over a new iterator on the live store (no snapshot). */
static void cur_begin(cursor_t *c, feat_store_t *st, const scan_t *s) {
    rocksdb_readoptions_t *ro = NULL;
    if (s->hi) {
        ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_iterate_upper_bound(ro, s->hi, s->hilen);
        if (s->total_order) rocksdb_readoptions_set_total_order_seek(ro, 1);
    }
    const rocksdb_readoptions_t *use = ro ? ro : s->total_order ? st->ropts_total : st->ropts;
    cur_begin_on(c, rocksdb_create_iterator_cf(st->db, use, st->cf[s->cf]), s);
    c->ro = ro;
    c->own_it = 1;
}

/* 1 with c->k, c->v set to the next pair in range; 0 at the end. */
static int cur_next(cursor_t *c) {
    if (c->started) rocksdb_iter_next(c->it);
    c->started = 1;
    if (!rocksdb_iter_valid(c->it)) return 0;
    c->k = rocksdb_iter_key(c->it, &c->kl);
    if (c->prefix && (c->kl < c->plen || memcmp(c->k, c->prefix, c->plen) != 0)) return 0;
    c->v = rocksdb_iter_value(c->it, &c->vl);
    return 1;
}

/* Ends the scan: rc (the scan's own result) unless it is FEAT_OK and the
 * iterator failed, then FEAT_ERR_IO (logged). */
static feat_err_t cur_end(cursor_t *c, feat_err_t rc) {
    char *rerr = NULL;
    rocksdb_iter_get_error(c->it, &rerr);
    if (rerr && rc == FEAT_OK) rc = io_err(NULL, 0, c->what, rerr);
    else rocksdb_free(rerr);
    if (c->own_it) rocksdb_iter_destroy(c->it);
    if (c->ro) rocksdb_readoptions_destroy(c->ro);
    return rc;
}

/* ---- table definitions in meta ------------------------------------------ */

typedef struct stored_feat {
    uint16_t id;
    uint8_t type;
    char name[FEAT_MAX_NAME + 1];
} stored_feat_t;

static feat_err_t load_table_def(feat_store_t *st, const char *name, stored_feat_t **out, size_t *n, char *errstr,
                                 size_t errlen) {
    char key[FEAT_MAX_NAME + 16];
    snprintf(key, sizeof(key), "table/%s", name);
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[FEAT_CF_META], key, strlen(key), &vlen, &rerr);
    *out = NULL;
    *n = 0;
    if (rerr) return io_err(errstr, errlen, "reading table definitions", rerr);
    if (!v) return FEAT_OK;
    const unsigned char *p = (const unsigned char *)v;
    feat_err_t rc = FEAT_OK;
    if (vlen < 3 || p[0] != 1) { rc = FEAT_ERR_CORRUPT; goto done; }
    size_t cnt = (size_t)(p[1] | (p[2] << 8)), i = 3;
    *out = calloc(cnt ? cnt : 1, sizeof(stored_feat_t));
    if (!*out) { rc = FEAT_ERR_NOMEM; goto done; }
    for (size_t k = 0; k < cnt; k++) {
        if (vlen - i < 4) { rc = FEAT_ERR_CORRUPT; goto done; }
        stored_feat_t *f = &(*out)[k];
        f->id = (uint16_t)(p[i] | (p[i + 1] << 8));
        f->type = p[i + 2];
        size_t nl = p[i + 3];
        i += 4;
        if (nl > FEAT_MAX_NAME || vlen - i < nl) { rc = FEAT_ERR_CORRUPT; goto done; }
        memcpy(f->name, p + i, nl);
        f->name[nl] = 0;
        i += nl;
        (*n)++;
    }
done:
    rocksdb_free(v);
    if (rc == FEAT_ERR_CORRUPT && errstr) snprintf(errstr, errlen, "meta: table/%s: corrupt definition", name);
    return rc;
}

static feat_err_t check_schema(feat_store_t *st, char *errstr, size_t errlen) {
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[FEAT_CF_META], "schema_version", 14, &vlen, &rerr);
    if (rerr) return io_err(errstr, errlen, "reading schema_version", rerr);
    feat_err_t rc = FEAT_OK;
    if (v) {
        char n[16];
        snprintf(n, sizeof(n), "%.*s", (int)(vlen < 15 ? vlen : 15), v);
        char *end;
        long got = strtol(n, &end, 10);
        if (*end || got < 1 || got > SCHEMA_VERSION_MAX) {
            snprintf(errstr, errlen,
                     "schema_version \"%s\" is not one this featd reads (1 to %d): a newer featd "
                     "wrote this store; run that version or restore a backup taken before the upgrade", n,
                     SCHEMA_VERSION_MAX);
            rc = FEAT_ERR_STATE; /* not the config's fault: exit 1, as always */
        }
    }
    rocksdb_free(v);
    return rc;
}

static feat_err_t setup_tables(feat_store_t *st, const feat_store_conf_t *conf, char *errstr, size_t errlen) {
    feat_err_t src = check_schema(st, errstr, errlen);
    if (src) return src;
    /* st->tables[].conf and st->ntables were set before RocksDB opened (the
     * tiles' merge operator and filter read them); the ids are set here */
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    feat_err_t rc = FEAT_OK;
    for (size_t ti = 0; ti < conf->ntables; ti++) {
        const feat_table_conf_t *tc = &conf->tables[ti];
        feat_table_t *t = &st->tables[ti];
        stored_feat_t *sf = NULL;
        size_t nsf = 0;
        rc = load_table_def(st, tc->name, &sf, &nsf, errstr, errlen);
        if (rc) break;
        t->ids = calloc(tc->nfeatures, sizeof(uint16_t));
        if (!t->ids) { free(sf); rc = FEAT_ERR_NOMEM; break; }
        uint16_t next_id = 0;
        for (size_t k = 0; k < nsf; k++)
            if (sf[k].id >= next_id) next_id = (uint16_t)(sf[k].id + 1);
        size_t nnew = 0;
        for (size_t f = 0; f < tc->nfeatures; f++) {
            size_t k;
            for (k = 0; k < nsf; k++)
                if (strcmp(sf[k].name, tc->features[f].name) == 0) break;
            if (k < nsf) {
                /* an aggregated feature has no stored values: its type may change */
                if (sf[k].type != tc->features[f].type && !feat_feature_is_agg(tc, f)) {
                    snprintf(errstr, errlen,
                             "table.%s.feature.%s: type changed from %s to %s; the store holds %s values "
                             "(declare a feature with a new name instead)",
                             tc->name, tc->features[f].name, feat_ftype_name((feat_ftype_t)sf[k].type),
                             feat_ftype_name(tc->features[f].type), feat_ftype_name((feat_ftype_t)sf[k].type));
                    rc = FEAT_ERR_CONFIG;
                    break;
                }
                t->ids[f] = sf[k].id;
            } else {
                if (next_id == UINT16_MAX) {
                    snprintf(errstr, errlen, "table.%s: feature ids exhausted", tc->name);
                    rc = FEAT_ERR_CONFIG;
                    break;
                }
                t->ids[f] = next_id++;
                nnew++;
            }
        }
        if (rc) { free(sf); break; }
        t->max_id = next_id ? (uint16_t)(next_id - 1) : 0;
        t->index_of_id = malloc(((size_t)t->max_id + 1) * sizeof(int16_t));
        if (!t->index_of_id) { free(sf); rc = FEAT_ERR_NOMEM; break; }
        for (size_t i = 0; i <= t->max_id; i++) t->index_of_id[i] = -1;
        for (size_t f = 0; f < tc->nfeatures; f++) t->index_of_id[t->ids[f]] = (int16_t)f;
        if ((nnew || nsf == 0) && !st->read_only) {
            /* persist: every stored feature (retired ones too) plus the new ones */
            feat_buf_t v = FEAT_BUF_INIT;
            size_t total = nsf + nnew;
            feat_buf_putc(&v, 1);
            feat_buf_putc(&v, (char)(total & 0xff));
            feat_buf_putc(&v, (char)(total >> 8));
            for (size_t k = 0; k < nsf; k++) {
                unsigned char h[4] = {(unsigned char)sf[k].id, (unsigned char)(sf[k].id >> 8), sf[k].type,
                                      (unsigned char)strlen(sf[k].name)};
                feat_buf_append(&v, h, 4);
                feat_buf_puts(&v, sf[k].name);
            }
            for (size_t f = 0; f < tc->nfeatures; f++) {
                size_t k;
                for (k = 0; k < nsf; k++)
                    if (strcmp(sf[k].name, tc->features[f].name) == 0) break;
                if (k < nsf) continue;
                unsigned char h[4] = {(unsigned char)t->ids[f], (unsigned char)(t->ids[f] >> 8),
                                      (unsigned char)tc->features[f].type,
                                      (unsigned char)strlen(tc->features[f].name)};
                feat_buf_append(&v, h, 4);
                feat_buf_puts(&v, tc->features[f].name);
            }
            char key[FEAT_MAX_NAME + 16];
            snprintf(key, sizeof(key), "table/%s", tc->name);
            rocksdb_writebatch_put_cf(wb, st->cf[FEAT_CF_META], key, strlen(key), v.data, v.len);
            feat_buf_free(&v);
        }
        free(sf);
    }
    if (!rc && !st->read_only) {
        rocksdb_writebatch_put_cf(wb, st->cf[FEAT_CF_META], "schema_version", 14, SCHEMA_VERSION, 1);
        char *rerr = NULL;
        rocksdb_write(st->db, st->wopts, wb, &rerr);
        if (rerr) rc = io_err(errstr, errlen, "writing table definitions", rerr);
    }
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/* ---- open / close ---------------------------------------------------------- */

feat_store_t *feat_store_open(const feat_store_conf_t *conf, char *errstr, size_t errlen) {
    feat_store_t *st = NULL;
    feat_store_open_rc(conf, &st, errstr, errlen);
    return st;
}

feat_err_t feat_store_open_rc(const feat_store_conf_t *conf, feat_store_t **out, char *errstr, size_t errlen) {
    *out = NULL;
    feat_store_t *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(errstr, errlen, "store: out of memory");
        return FEAT_ERR_NOMEM;
    }
    st->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->opts, 1);
    rocksdb_options_set_create_missing_column_families(st->opts, 1);
    rocksdb_options_increase_parallelism(st->opts, 2);
    rocksdb_options_set_max_background_jobs(st->opts, 2);
    /* Two flushes at once: the online and offline families fill together,
     * and one flush thread (RocksDB's default for 2 jobs) left the second
     * family's memtables full and RocksDB's writes stopped.  Measured in
     * tests/bench/bench_ingest (1.5M events): 122k -> 216k events/s. */
    rocksdb_options_set_max_background_flushes(st->opts, 2);
    rocksdb_options_set_keep_log_file_num(st->opts, 3);
    /* RocksDB's own LOG file (beside the data) gets only fatal messages and
     * its start-up header: Debian's librocksdb 7.8 is built with assertions,
     * and once one LOG write fails (disk full) the next LOG line aborts the
     * process (WritableFileWriter "sync_without_flush_called_") instead of
     * letting featd stop cleanly.  featd logs every store error itself. */
    rocksdb_options_set_info_log_level(st->opts, 4 /* FATAL_LEVEL */);
    rocksdb_options_set_max_total_wal_size(st->opts, 512ull << 20);
    /* hash memtables (below) take one writer at a time; featd has one */
    rocksdb_options_set_allow_concurrent_memtable_write(st->opts, 0);

    st->cache = rocksdb_cache_create_lru((size_t)(conf->block_cache_bytes > 0 ? conf->block_cache_bytes : (128 << 20)));
    st->bbto = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(st->bbto, st->cache);
    rocksdb_block_based_options_set_filter_policy(st->bbto, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(st->bbto, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(st->bbto, 1);
    st->bbto_tiles = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(st->bbto_tiles, st->cache);
    rocksdb_block_based_options_set_filter_policy(st->bbto_tiles, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(st->bbto_tiles, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(st->bbto_tiles, 1);
    /* A read of a long window steps over the blocks of its span (store/tile.h),
     * several KiB each: 32 KiB data blocks hold a few of them, so the read
     * walks a few RocksDB blocks instead of one per key (BENCHMARKS.md:
     * compacted 7d reads 48 -> 28 us; ingest unchanged). */
    rocksdb_block_based_options_set_block_size(st->bbto_tiles, 32 << 10);

    /* The tables' declarations, before RocksDB opens: opening may already
     * flush or compact (recovering the WAL, catching up L0), and the tiles'
     * merge operator and expiry filter find tables here.  They read only
     * t->conf (immutable); setup_tables adds the ids after the open. */
    st->tables = calloc(conf->ntables ? conf->ntables : 1, sizeof(feat_table_t));
    if (!st->tables) {
        feat_store_close(st);
        return FEAT_ERR_NOMEM;
    }
    for (size_t ti = 0; ti < conf->ntables; ti++) {
        st->tables[ti].conf = &conf->tables[ti];
        st->tables[ti].index = (uint32_t)ti;
    }
    st->ntables = conf->ntables;
    st->merge = rocksdb_mergeoperator_create(NULL, merge_destroy, merge_full, merge_partial,
                                             merge_delete, merge_name);
    st->tmerge = rocksdb_mergeoperator_create(st, merge_destroy, tmerge_full, tmerge_partial, merge_delete,
                                              tmerge_name);
    st->tfilter = rocksdb_compactionfilter_create(st, merge_destroy, tfilter_fn, tfilter_name);
    const char *names[FEAT_CF_COUNT + 1];
    const rocksdb_options_t *cfo[FEAT_CF_COUNT + 1];
    for (int i = 0; i < FEAT_CF_COUNT; i++) {
        rocksdb_options_t *o = rocksdb_options_create_copy(st->opts);
        rocksdb_options_set_block_based_table_factory(o, i == FEAT_CF_TILES ? st->bbto_tiles : st->bbto);
        size_t wbuf = (size_t)(conf->write_buffer_bytes > 0 ? conf->write_buffer_bytes : (16 << 20));
        rocksdb_options_set_write_buffer_size(o, wbuf);
        /* several small memtables rather than two big ones: a flush (which
         * sorts a hash memtable's entries) is cheaper per entry when the
         * memtable fits in cache, and a full memtable waits for its flush
         * without stopping writes (BENCHMARKS.md) */
        rocksdb_options_set_max_write_buffer_number(o, conf->write_buffers > 0 ? conf->write_buffers : 8);
        if (i == FEAT_CF_ONLINE || i == FEAT_CF_OFFLINE || i == FEAT_CF_TILES) {
            /* tile keys share the offline family's prefix, "table \0 entity \0" */
            rocksdb_options_set_prefix_extractor(
                o, i == FEAT_CF_ONLINE
                       ? rocksdb_slicetransform_create(NULL, no_destroy, online_prefix_fn, online_in_domain,
                                                       never_in_range, online_prefix_name)
                       : rocksdb_slicetransform_create(NULL, no_destroy, offline_prefix_fn, offline_in_domain,
                                                       never_in_range, offline_prefix_name));
            /* The bucket array (8 bytes a bucket) lives in each memtable's
             * arena: kept to 1/8 of the write buffer, or a small
             * store.write_buffer makes every new memtable "full" at birth
             * (RocksDB asserts on it: 1<<18 buckets aborted featd at 2 MiB). */
            size_t buckets = wbuf / 64 < (1u << 18) ? wbuf / 64 : (1u << 18);
            rocksdb_options_set_hash_skip_list_rep(o, buckets, 4, 4);
        }
        if (i == FEAT_CF_TILES) {
            rocksdb_options_set_merge_operator(o, st->tmerge);
            rocksdb_options_set_compaction_filter(o, st->tfilter);
        }
        if (i == FEAT_CF_ONLINE) {
            rocksdb_options_set_merge_operator(o, st->merge);
            /* bound the operands a read must fold: at most this many per key
             * in a memtable before RocksDB folds them at write time */
            rocksdb_options_set_max_successive_merges(o, 0);
        }
        /* Flushes and L1 stay uncompressed: on a small machine compressing
         * every flush costs ingest throughput (measured: tests/bench); data
         * that settles deeper is compressed. */
        int levels[7] = {rocksdb_no_compression, rocksdb_no_compression, rocksdb_lz4_compression,
                         rocksdb_lz4_compression, rocksdb_lz4_compression, rocksdb_zstd_compression,
                         rocksdb_zstd_compression};
        rocksdb_options_set_num_levels(o, 7);
        rocksdb_options_set_compression_per_level(o, levels, 7);
        st->cf_opts[i] = o;
        names[i] = cf_names[i];
        cfo[i] = o;
    }
    names[FEAT_CF_COUNT] = "default";
    cfo[FEAT_CF_COUNT] = st->opts;
    char *rerr = NULL;
    st->read_only = conf->read_only;
    if (conf->read_only)
        st->db = rocksdb_open_for_read_only_column_families(st->opts, conf->path, FEAT_CF_COUNT + 1, names, cfo,
                                                            st->cf, 0, &rerr);
    else
        st->db = rocksdb_open_column_families(st->opts, conf->path, FEAT_CF_COUNT + 1, names, cfo, st->cf, &rerr);
    if (rerr) {
        int rc = io_err(errstr, errlen, conf->path, rerr);
        feat_store_close(st);
        return rc;
    }
    st->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wopts, conf->sync ? 1 : 0);
    st->ropts = rocksdb_readoptions_create();
    st->ropts_total = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(st->ropts_total, 1);
    int rc = setup_tables(st, conf, errstr, errlen);
    if (rc) {
        feat_store_close(st);
        return rc;
    }
    *out = st;
    return FEAT_OK;
}

void feat_store_close(feat_store_t *st) {
    if (!st) return;
    /* After a failed write (disk full, read-only) the WAL holds everything
     * acknowledged; flushing would only retry the I/O that failed. */
    if (st->db && !st->read_only && !atomic_load(&st->write_failed)) {
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        char *rerr = NULL;
        for (int i = 0; i < FEAT_CF_COUNT; i++) {
            rocksdb_flush_cf(st->db, fo, st->cf[i], &rerr);
            if (rerr) {
                feat_log(FEAT_LOG_WARN, "store", "flush on close: %s", rerr);
                rocksdb_free(rerr);
                rerr = NULL;
            }
        }
        rocksdb_flushoptions_destroy(fo);
    }
    if (st->db) {
        /* After a failed write RocksDB holds a background error; let its
         * flush and compaction jobs end before the column families go (a
         * close that raced one aborted in Debian's assertion-enabled build:
         * ColumnFamilySet::~ColumnFamilySet, last_ref, test_disk_ro) */
        if (!st->read_only && atomic_load(&st->write_failed)) rocksdb_cancel_all_background_work(st->db, 1);
        for (int i = 0; i <= FEAT_CF_COUNT; i++)
            if (st->cf[i]) rocksdb_column_family_handle_destroy(st->cf[i]);
        rocksdb_close(st->db);
    }
    for (int i = 0; i < FEAT_CF_COUNT; i++)
        if (st->cf_opts[i]) rocksdb_options_destroy(st->cf_opts[i]);
    if (st->opts) rocksdb_options_destroy(st->opts);
    /* st->merge and st->tmerge are owned by the column-family options
     * (set_merge_operator); the compaction filter is not */
    if (st->tfilter) rocksdb_compactionfilter_destroy(st->tfilter);
    if (st->bbto) rocksdb_block_based_options_destroy(st->bbto);
    if (st->bbto_tiles) rocksdb_block_based_options_destroy(st->bbto_tiles);
    if (st->cache) rocksdb_cache_destroy(st->cache);
    if (st->wopts) rocksdb_writeoptions_destroy(st->wopts);
    if (st->ropts) rocksdb_readoptions_destroy(st->ropts);
    if (st->ropts_total) rocksdb_readoptions_destroy(st->ropts_total);
    for (size_t i = 0; i < st->ntables; i++) {
        free(st->tables[i].ids);
        free(st->tables[i].index_of_id);
    }
    free(st->tables);
    free(st);
}

const feat_table_t *feat_store_table(const feat_store_t *st, const char *name) {
    for (size_t i = 0; i < st->ntables; i++)
        if (strcmp(st->tables[i].conf->name, name) == 0) return &st->tables[i];
    return NULL;
}

const feat_table_t *feat_store_table_at(const feat_store_t *st, size_t i) {
    return i < st->ntables ? &st->tables[i] : NULL;
}

size_t feat_store_ntables(const feat_store_t *st) { return st->ntables; }

/* ---- write batches ---------------------------------------------------------- */

feat_wb_t *feat_wb_new(feat_store_t *st) {
    feat_wb_t *wb = calloc(1, sizeof(*wb));
    if (!wb) return NULL;
    wb->st = st;
    wb->b = rocksdb_writebatch_create();
    return wb;
}

void feat_wb_clear(feat_wb_t *wb) {
    rocksdb_writebatch_clear(wb->b);
    feat_buf_reset(&wb->arena);
    wb->on.n = wb->off.n = wb->tl.n = 0;
    wb->on_done = wb->off_done = wb->tl_done = 0;
    wb->count = 0;
}

void feat_wb_destroy(feat_wb_t *wb) {
    if (!wb) return;
    rocksdb_writebatch_destroy(wb->b);
    feat_buf_free(&wb->key);
    feat_buf_free(&wb->val);
    feat_buf_free(&wb->val2);
    feat_buf_free(&wb->top);
    feat_buf_free(&wb->arena);
    free(wb->on.v);
    free(wb->off.v);
    free(wb->tl.v);
    free(wb);
}

size_t feat_wb_count(const feat_wb_t *wb) { return wb->count; }

static feat_err_t wb_check(feat_wb_t *wb) {
    return (wb->key.oom || wb->val.oom || wb->arena.oom) ? FEAT_ERR_NOMEM : FEAT_OK;
}

/* Buffers (key, value) as an op; eoff/elen locate the entity inside the key. */
static feat_err_t push_op(feat_wb_t *wb, oplist_t *l, const feat_table_t *t, const feat_buf_t *k, const feat_buf_t *v,
                          size_t ent_at, size_t elen) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1024;
        op_t *nv = realloc(l->v, nc * sizeof(*nv));
        if (!nv) return FEAT_ERR_NOMEM;
        l->v = nv;
        l->cap = nc;
    }
    if (wb->arena.len + k->len + v->len > UINT32_MAX) return FEAT_ERR_TOO_LARGE;
    op_t *o = &l->v[l->n];
    o->t = t;
    o->koff = (uint32_t)wb->arena.len;
    o->klen = (uint32_t)k->len;
    feat_buf_append(&wb->arena, k->data, k->len);
    o->voff = (uint32_t)wb->arena.len;
    o->vlen = (uint32_t)v->len;
    feat_buf_append(&wb->arena, v->data, v->len);
    o->eoff = o->koff + (uint32_t)ent_at;
    o->elen = (uint32_t)elen;
    if (wb->arena.oom) return FEAT_ERR_NOMEM;
    l->n++;
    return FEAT_OK;
}

/* An offline row's entry that marks an event too late to aggregate: an id
 * no feature can have (ids stay below FEAT_MAX_FEATURES), so every reader
 * that maps ids to features skips it. */
#define LATE_MARK_ID 0xffffu

static feat_err_t put_event(feat_wb_t *wb, const feat_table_t *t, const char *key, size_t klen, int64_t ts,
                            int32_t partition, int64_t offset, const uint16_t *fidx, const feat_value_t *vals,
                            size_t n, int late);

feat_err_t feat_wb_put_event(feat_wb_t *wb, const feat_table_t *t, const char *key, size_t klen,
                             int64_t ts, int32_t partition, int64_t offset,
                             const uint16_t *fidx, const feat_value_t *vals, size_t n) {
    return put_event(wb, t, key, klen, ts, partition, offset, fidx, vals, n, 0);
}

feat_err_t feat_wb_put_late_event(feat_wb_t *wb, const feat_table_t *t, const char *key, size_t klen,
                                  int64_t ts, int32_t partition, int64_t offset,
                                  const uint16_t *fidx, const feat_value_t *vals, size_t n) {
    return put_event(wb, t, key, klen, ts, partition, offset, fidx, vals, n, 1);
}

/* The event's tile operand, to its block and to the lifetime tile. */
static feat_err_t put_tiles(feat_wb_t *wb, const feat_table_t *t, const char *key, size_t klen, int64_t ts,
                            int32_t partition, int64_t offset, const uint16_t *fidx, const feat_value_t *vals,
                            size_t n) {
    const feat_table_conf_t *c = t->conf;
    if (!feat_tile_operand(t, ts, offset, partition, fidx, vals, n, &wb->top)) return wb->top.oom ? FEAT_ERR_NOMEM : FEAT_OK;
    for (int l = 0; l < 2; l++) { /* the lifetime tile, then the block */
        int64_t size = l ? feat_tile_level_ms(c, feat_tile_top_level(c)) : 0;
        if (!l ? !c->agg_lifetime : (c->agg_max_window_ms <= 0 || size <= 0)) continue;
        tile_key(&wb->key, t, key, klen, size, l ? feat_tile_index(ts, size) : 0);
        if (wb_check(wb) || wb->top.oom) return FEAT_ERR_NOMEM;
        size_t ent_at = strlen(c->name) + 1;
        feat_err_t rc = push_op(wb, &wb->tl, t, &wb->key, &wb->top, ent_at, klen);
        if (rc) return rc;
    }
    return FEAT_OK;
}

static feat_err_t put_event(feat_wb_t *wb, const feat_table_t *t, const char *key, size_t klen, int64_t ts,
                            int32_t partition, int64_t offset, const uint16_t *fidx, const feat_value_t *vals,
                            size_t n, int late) {
    if (n == 0 || n > FEAT_MAX_FEATURES) return FEAT_ERR_INVALID;
    /* entries sorted by stable id (insertion sort: n is small) */
    uint16_t order[FEAT_MAX_FEATURES];
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0 && t->ids[fidx[order[j - 1]]] > t->ids[fidx[i]]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (uint16_t)i;
    }
    /* the history row's entries are, byte for byte, those of the online
     * operand (row.h): built once, copied behind the operand's source */
    feat_buf_reset(&wb->val);
    feat_buf_reset(&wb->val2);
    feat_row_begin(&wb->val2, 0, ts, offset, partition);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        feat_row_put(&wb->val2, 0, t->ids[fidx[i]], &vals[i], ts, offset, partition);
    }
    if (wb->val2.oom) return FEAT_ERR_NOMEM;
    feat_row_begin(&wb->val, 1, ts, offset, partition);
    feat_buf_append(&wb->val, wb->val2.data + 1, wb->val2.len - 1);
    online_key(&wb->key, t, key, klen);
    if (wb_check(wb)) return FEAT_ERR_NOMEM;
    size_t ent_at = wb->key.len - klen;
    feat_err_t rc = push_op(wb, &wb->on, t, &wb->key, &wb->val, ent_at, klen);
    if (rc) return rc;
    feat_buf_putc(&wb->key, 0);
    put_ts_src(&wb->key, ts, (uint64_t)offset, (uint32_t)partition);
    if (late) {
        feat_value_t mark = {.type = FEAT_FT_BOOL, .v.b = 1};
        feat_row_put(&wb->val2, 0, LATE_MARK_ID, &mark, ts, offset, partition);
    }
    if (wb_check(wb) || wb->val2.oom) return FEAT_ERR_NOMEM;
    rc = push_op(wb, &wb->off, t, &wb->key, &wb->val2, ent_at, klen);
    if (rc) return rc;
    if (t->conf->naggs && !late) {
        rc = put_tiles(wb, t, key, klen, ts, partition, offset, fidx, vals, n);
        if (rc) return rc;
    }
    wb->count++;
    return FEAT_OK;
}

feat_err_t feat_wb_put_label(feat_wb_t *wb, const char *model, const char *key, size_t klen,
                             int64_t ts, double label, int32_t partition, int64_t offset) {
    return feat_wb_put_label_keys(wb, model, key, klen, ts, label, NULL, NULL, NULL, 0, partition, offset);
}

/* A label's value: f64 label | i32 partition | i64 offset, then, when it
 * carries extra keys, u8 1 and per key  u8 entity length | entity | u32 key
 * length | key. */
feat_err_t feat_wb_put_label_keys(feat_wb_t *wb, const char *model, const char *key, size_t klen, int64_t ts,
                                  double label, const char *const *xnames, const char *const *xkeys,
                                  const size_t *xlens, size_t nx, int32_t partition, int64_t offset) {
    feat_buf_reset(&wb->key);
    feat_buf_puts(&wb->key, model);
    feat_buf_putc(&wb->key, 0);
    unsigned char b[20];
    feat_put_ts(b, ts);
    feat_buf_append(&wb->key, b, 8);
    feat_buf_append(&wb->key, key, klen);
    uint64_t u;
    memcpy(&u, &label, 8);
    feat_put_le64(b, u);
    feat_put_le32(b + 8, (uint32_t)partition);
    feat_put_le64(b + 12, (uint64_t)offset);
    feat_buf_reset(&wb->val2);
    feat_buf_append(&wb->val2, b, 20);
    if (nx) feat_buf_putc(&wb->val2, 1);
    for (size_t i = 0; i < nx; i++) {
        size_t nl = strlen(xnames[i]);
        if (nl > 255) return FEAT_ERR_INVALID; /* entity names are at most FEAT_MAX_NAME bytes */
        feat_buf_putc(&wb->val2, (char)nl);
        feat_buf_append(&wb->val2, xnames[i], nl);
        unsigned char l[4];
        feat_put_le32(l, (uint32_t)xlens[i]);
        feat_buf_append(&wb->val2, l, 4);
        feat_buf_append(&wb->val2, xkeys[i], xlens[i]);
    }
    if (wb_check(wb) || wb->val2.oom) return FEAT_ERR_NOMEM;
    rocksdb_writebatch_put_cf(wb->b, wb->st->cf[FEAT_CF_LABELS], wb->key.data, wb->key.len, wb->val2.data,
                              wb->val2.len);
    wb->count++;
    return FEAT_OK;
}

feat_err_t feat_wb_put_prediction(feat_wb_t *wb, const char *model, const char *key, size_t klen,
                                  int64_t ts, uint64_t version, double score) {
    feat_buf_reset(&wb->key);
    feat_buf_puts(&wb->key, model);
    feat_buf_putc(&wb->key, 0);
    unsigned char b[16];
    feat_put_ts(b, ts);
    feat_buf_append(&wb->key, b, 8);
    feat_buf_append(&wb->key, key, klen);
    uint64_t u;
    memcpy(&u, &score, 8);
    feat_put_le64(b, version);
    feat_put_le64(b + 8, u);
    if (wb_check(wb)) return FEAT_ERR_NOMEM;
    rocksdb_writebatch_put_cf(wb->b, wb->st->cf[FEAT_CF_PREDICTIONS], wb->key.data, wb->key.len, (const char *)b, 16);
    return FEAT_OK;
}

static void topic_part_key(feat_buf_t *k, const char *topic, int32_t partition) {
    feat_buf_reset(k);
    feat_buf_puts(k, topic);
    feat_buf_putc(k, 0);
    unsigned char b[4];
    feat_put_be32(b, (uint32_t)partition);
    feat_buf_append(k, b, 4);
}

feat_err_t feat_wb_put_dead_letter(feat_wb_t *wb, const char *topic, int32_t partition, int64_t offset,
                                   const char *reason, const char *detail, const void *key, size_t klen,
                                   const void *value, size_t vlen, int64_t received_ms) {
    topic_part_key(&wb->key, topic, partition);
    unsigned char b[8];
    feat_put_be64(b, (uint64_t)offset);
    feat_buf_append(&wb->key, b, 8);
    feat_buf_t *v = &wb->val;
    feat_buf_reset(v);
    feat_buf_putc(v, 1);
    size_t rl = strlen(reason), dl = detail ? strlen(detail) : 0;
    if (rl > 255) rl = 255;
    if (dl > 65535) dl = 65535;
    feat_buf_putc(v, (char)rl);
    feat_buf_append(v, reason, rl);
    feat_buf_putc(v, (char)(dl & 0xff));
    feat_buf_putc(v, (char)(dl >> 8));
    feat_buf_append(v, detail, dl);
    feat_put_le32(b, (uint32_t)klen);
    feat_buf_append(v, b, 4);
    feat_buf_append(v, key, klen);
    feat_put_le32(b, (uint32_t)vlen);
    feat_buf_append(v, b, 4);
    feat_buf_append(v, value, vlen);
    feat_put_le64(b, (uint64_t)received_ms);
    feat_buf_append(v, b, 8);
    if (wb_check(wb)) return FEAT_ERR_NOMEM;
    rocksdb_writebatch_put_cf(wb->b, wb->st->cf[FEAT_CF_DEAD_LETTERS], wb->key.data, wb->key.len, v->data, v->len);
    wb->count++;
    return FEAT_OK;
}

feat_err_t feat_wb_set_offset(feat_wb_t *wb, const char *topic, int32_t partition, int64_t next_offset,
                              uint64_t applied) {
    topic_part_key(&wb->key, topic, partition);
    unsigned char b[16];
    feat_put_le64(b, (uint64_t)next_offset);
    feat_put_le64(b + 8, applied);
    if (wb_check(wb)) return FEAT_ERR_NOMEM;
    rocksdb_writebatch_put_cf(wb->b, wb->st->cf[FEAT_CF_OFFSETS], wb->key.data, wb->key.len, (const char *)b, 16);
    return FEAT_OK;
}

feat_err_t feat_wb_put_blob(feat_wb_t *wb, feat_cf_t cf, const char *key, size_t klen, const void *val, size_t vlen) {
    if (cf != FEAT_CF_MODELS && cf != FEAT_CF_REFERENCES && cf != FEAT_CF_META) return FEAT_ERR_INVALID;
    rocksdb_writebatch_put_cf(wb->b, wb->st->cf[cf], key, klen, val, vlen);
    return FEAT_OK;
}

feat_err_t feat_wb_delete_blob(feat_wb_t *wb, feat_cf_t cf, const char *key, size_t klen) {
    if (cf != FEAT_CF_MODELS && cf != FEAT_CF_REFERENCES && cf != FEAT_CF_META) return FEAT_ERR_INVALID;
    rocksdb_writebatch_delete_cf(wb->b, wb->st->cf[cf], key, klen);
    return FEAT_OK;
}

size_t feat_wb_online_count(const feat_wb_t *wb) { return wb->on.n; }

void feat_wb_online_at(const feat_wb_t *wb, size_t i, const feat_table_t **t, const char **key, size_t *klen) {
    *t = wb->on.v[i].t;
    *key = wb->arena.data + wb->on.v[i].eoff;
    *klen = wb->on.v[i].elen;
}

void feat_store_set_write_hook(feat_store_t *st, feat_write_hook_fn *fn, void *arg) {
    st->hook = fn;
    st->hook_arg = arg;
}

static int op_cmp(const void *a, const void *b, void *arena) {
    const op_t *x = a, *y = b;
    const char *base = arena;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(base + x->koff, base + y->koff, n);
    if (c) return c;
    return x->klen < y->klen ? -1 : x->klen > y->klen;
}

/* Key order, then buffering order (arena offsets grow): a tile's operands
 * must reach RocksDB in the order the events were read. */
static int op_cmp_stable(const void *a, const void *b, void *arena) {
    int c = op_cmp(a, b, arena);
    if (c) return c;
    const op_t *x = a, *y = b;
    return x->koff < y->koff ? -1 : x->koff > y->koff;
}

/* Sorts the ops buffered since the last seal and copies them into the
 * RocksDB batch (see op_t). */
static void seal_ops(rocksdb_writebatch_t *b, rocksdb_column_family_handle_t *cf, oplist_t *l, size_t *done,
                     const char *a, int merge) {
    if (l->n == *done) return; /* nothing new (l->v may still be NULL) */
    op_t *v = l->v + *done;
    size_t n = l->n - *done;
    if (n > 1) qsort_r(v, n, sizeof(op_t), merge == 2 ? op_cmp_stable : op_cmp, (void *)a);
    for (size_t i = 0; i < n; i++) {
        if (merge) rocksdb_writebatch_merge_cf(b, cf, a + v[i].koff, v[i].klen, a + v[i].voff, v[i].vlen);
        else rocksdb_writebatch_put_cf(b, cf, a + v[i].koff, v[i].klen, a + v[i].voff, v[i].vlen);
    }
    *done = l->n;
}

void feat_wb_seal(feat_wb_t *wb) {
    seal_ops(wb->b, wb->st->cf[FEAT_CF_ONLINE], &wb->on, &wb->on_done, wb->arena.data, 1);
    seal_ops(wb->b, wb->st->cf[FEAT_CF_OFFLINE], &wb->off, &wb->off_done, wb->arena.data, 0);
    seal_ops(wb->b, wb->st->cf[FEAT_CF_TILES], &wb->tl, &wb->tl_done, wb->arena.data, 2);
}

feat_err_t feat_store_write(feat_store_t *st, feat_wb_t *wb, char *errstr, size_t errlen) {
    feat_wb_seal(wb);
    if (st->hook) st->hook(st->hook_arg, wb, 0);
    char *rerr = NULL;
    rocksdb_write(st->db, st->wopts, wb->b, &rerr);
    if (rerr) {
        if (st->hook) st->hook(st->hook_arg, wb, 2); /* 2: failed; release marks */
        return write_err(st, errstr, errlen, "write", rerr);
    }
    if (st->hook) st->hook(st->hook_arg, wb, 1);
    return FEAT_OK;
}

/* ---- offsets ----------------------------------------------------------------- */

feat_err_t feat_store_get_offset(feat_store_t *st, const char *topic, int32_t partition, int64_t *next,
                                 uint64_t *applied) {
    feat_buf_t k = FEAT_BUF_INIT;
    topic_part_key(&k, topic, partition);
    char *rerr = NULL;
    size_t vl = 0;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[FEAT_CF_OFFSETS], k.data, k.len, &vl, &rerr);
    feat_buf_free(&k);
    if (rerr) return io_err(NULL, 0, "reading offset", rerr);
    if (!v) return FEAT_ERR_NOT_FOUND;
    feat_err_t rc = FEAT_OK;
    if (vl != 16) rc = FEAT_ERR_CORRUPT;
    else {
        *next = (int64_t)feat_get_le64((const unsigned char *)v);
        if (applied) *applied = feat_get_le64((const unsigned char *)v + 8);
    }
    rocksdb_free(v);
    return rc;
}

feat_err_t feat_store_offsets(feat_store_t *st, feat_offset_fn *fn, void *arg) {
    cursor_t c;
    cur_begin(&c, st, &(scan_t){.cf = FEAT_CF_OFFSETS, .what = "offset scan"});
    feat_err_t rc = FEAT_OK;
    char topic[256];
    while (cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const unsigned char *k = (const unsigned char *)c.k, *v = (const unsigned char *)c.v;
        const unsigned char *z = memchr(k, 0, kl);
        if (!z || (size_t)(z - k) >= sizeof(topic) || kl != (size_t)(z - k) + 5 || vl != 16) { rc = FEAT_ERR_CORRUPT; break; }
        memcpy(topic, k, (size_t)(z - k));
        topic[z - k] = 0;
        if (fn(arg, topic, (int32_t)feat_get_be32(z + 1), (int64_t)feat_get_le64(v), feat_get_le64(v + 8))) break;
    }
    return cur_end(&c, rc);
}

feat_err_t feat_store_clear_offsets(feat_store_t *st, uint64_t *removed) {
    *removed = 0;
    cursor_t c;
    cur_begin(&c, st, &(scan_t){.cf = FEAT_CF_OFFSETS, .what = "clearing offsets"});
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint64_t n = 0;
    while (cur_next(&c)) {
        rocksdb_writebatch_delete_cf(b, st->cf[FEAT_CF_OFFSETS], c.k, c.kl);
        n++;
    }
    feat_err_t rc = cur_end(&c, FEAT_OK);
    char *rerr = NULL;
    if (rc == FEAT_OK) rocksdb_write(st->db, st->wopts, b, &rerr);
    rocksdb_writebatch_destroy(b);
    if (rc) return rc; /* a partial read: nothing cleared */
    if (rerr) return write_err(st, NULL, 0, "clearing offsets", rerr);
    *removed = n;
    return FEAT_OK;
}

feat_err_t feat_store_clear_offset(feat_store_t *st, const char *topic, int32_t partition) {
    feat_buf_t k = FEAT_BUF_INIT;
    topic_part_key(&k, topic, partition);
    feat_err_t rc = k.oom ? FEAT_ERR_NOMEM : feat_store_delete_blob(st, FEAT_CF_OFFSETS, k.data, k.len);
    feat_buf_free(&k);
    return rc;
}

/* ---- online reads -------------------------------------------------------------- */

feat_err_t feat_store_get_row(feat_store_t *st, const feat_table_t *t, const char *key, size_t klen, feat_buf_t *out) {
    feat_buf_t k = FEAT_BUF_INIT;
    char kbuf[512];
    const char *kp;
    size_t kl = strlen(t->conf->name) + 1 + klen;
    if (kl <= sizeof(kbuf)) {
        size_t nl = kl - 1 - klen;
        memcpy(kbuf, t->conf->name, nl);
        kbuf[nl] = 0;
        memcpy(kbuf + nl + 1, key, klen);
        kp = kbuf;
    } else {
        online_key(&k, t, key, klen);
        if (k.oom) return FEAT_ERR_NOMEM;
        kp = k.data;
    }
    char *rerr = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(st->db, st->ropts, st->cf[FEAT_CF_ONLINE], kp, kl, &rerr);
    feat_buf_free(&k);
    if (rerr) return io_err(NULL, 0, "online get", rerr);
    feat_buf_reset(out);
    if (!ps) return FEAT_ERR_NOT_FOUND;
    size_t vl = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &vl);
    feat_buf_append(out, v, vl);
    rocksdb_pinnableslice_destroy(ps);
    return out->oom ? FEAT_ERR_NOMEM : FEAT_OK;
}

feat_err_t feat_store_get_rows(feat_store_t *st, const feat_table_t *t, size_t nkeys, const char *const *keys,
                               const size_t *klens, feat_buf_t *rows, int *found) {
    if (nkeys == 0) return FEAT_OK;
    size_t nl = strlen(t->conf->name);
    feat_buf_t arena = FEAT_BUF_INIT;
    size_t *offs = malloc(nkeys * sizeof(size_t));
    size_t *lens = malloc(nkeys * sizeof(size_t));
    const char **kp = malloc(nkeys * sizeof(char *));
    const rocksdb_column_family_handle_t **cfs = malloc(nkeys * sizeof(*cfs));
    char **vals = malloc(nkeys * sizeof(char *));
    size_t *vlens = malloc(nkeys * sizeof(size_t));
    char **errs = malloc(nkeys * sizeof(char *));
    feat_err_t rc = FEAT_OK;
    if (!offs || !lens || !kp || !cfs || !vals || !vlens || !errs) { rc = FEAT_ERR_NOMEM; goto out; }
    for (size_t i = 0; i < nkeys; i++) {
        offs[i] = arena.len;
        feat_buf_append(&arena, t->conf->name, nl);
        feat_buf_putc(&arena, 0);
        feat_buf_append(&arena, keys[i], klens[i]);
        lens[i] = nl + 1 + klens[i];
        cfs[i] = st->cf[FEAT_CF_ONLINE];
    }
    if (arena.oom) { rc = FEAT_ERR_NOMEM; goto out; }
    for (size_t i = 0; i < nkeys; i++) kp[i] = arena.data + offs[i];
    rocksdb_multi_get_cf(st->db, st->ropts, cfs, nkeys, kp, lens, vals, vlens, errs);
    for (size_t i = 0; i < nkeys; i++) {
        feat_buf_reset(&rows[i]);
        found[i] = 0;
        if (errs[i]) {
            if (rc == FEAT_OK) rc = io_err(NULL, 0, "online multi-get", errs[i]);
            else rocksdb_free(errs[i]);
            if (vals[i]) rocksdb_free(vals[i]);
            continue;
        }
        if (vals[i]) {
            feat_buf_append(&rows[i], vals[i], vlens[i]);
            found[i] = 1;
            rocksdb_free(vals[i]);
            if (rows[i].oom && rc == FEAT_OK) rc = FEAT_ERR_NOMEM;
        }
    }
out:
    feat_buf_free(&arena);
    free(offs); free(lens); free(kp); free(cfs); free(vals); free(vlens); free(errs);
    return rc;
}

feat_err_t feat_row_decode(const feat_table_t *t, const char *row, size_t len, const uint16_t *fidx,
                           size_t n, int64_t now_ms, feat_value_t *out) {
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].type = (uint8_t)t->conf->features[fidx[i]].type;
        out[i].status = FEAT_ST_NOT_FOUND;
    }
    if (!row) return FEAT_OK;
    int64_t ttl = t->conf->ttl_ms;
    size_t pos = 0;
    feat_row_entry_t e;
    feat_err_t r;
    int has;
    /* Common case: requested features are few; map id → request slots by a
     * scan of fidx per entry (n is small) or a direct index when many. */
    while ((r = feat_row_next(row, len, &pos, 1, &e, &has)) == FEAT_OK && has) {
        if (e.id > t->max_id) continue;
        int f = t->index_of_id[e.id];
        if (f < 0) continue;
        for (size_t i = 0; i < n; i++) {
            if (fidx[i] != (uint16_t)f) continue;
            out[i] = e.val;
            out[i].ts = e.ts;
            out[i].status = (ttl > 0 && now_ms - e.ts > ttl) ? FEAT_ST_EXPIRED : FEAT_ST_PRESENT;
        }
    }
    return r; /* FEAT_OK or FEAT_ERR_CORRUPT */
}

feat_err_t feat_store_get_online(feat_store_t *st, const feat_table_t *t, const char *key, size_t klen,
                                 const uint16_t *fidx, size_t n, int64_t now_ms, feat_value_t *out,
                                 feat_buf_t *scratch) {
    feat_err_t rc = feat_store_get_row(st, t, key, klen, scratch);
    if (rc == FEAT_ERR_NOT_FOUND) return feat_row_decode(t, NULL, 0, fidx, n, now_ms, out);
    if (rc) return rc;
    return feat_row_decode(t, scratch->data, scratch->len, fidx, n, now_ms, out);
}

static feat_err_t decode_offline_key_tail(const char *k, size_t kl, size_t plen, int64_t *ts, int64_t *off,
                                          int32_t *part);

feat_err_t feat_store_scan_online(feat_store_t *st, feat_online_fn *fn, void *arg) {
    cursor_t c;
    cur_begin(&c, st, &(scan_t){.cf = FEAT_CF_ONLINE, .total_order = 1, .what = "online scan"});
    feat_err_t rc = FEAT_OK;
    while (cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const char *k = c.k, *v = c.v;
        const char *z = memchr(k, 0, kl);
        if (!z) { rc = FEAT_ERR_CORRUPT; break; }
        const feat_table_t *t = NULL;
        for (size_t i = 0; i < st->ntables; i++)
            if (strlen(st->tables[i].conf->name) == (size_t)(z - k) && !memcmp(st->tables[i].conf->name, k, (size_t)(z - k)))
                t = &st->tables[i];
        if (!t) continue; /* a table no longer configured */
        if (fn(arg, t, z + 1, kl - (size_t)(z - k) - 1, v, vl)) break;
    }
    return cur_end(&c, rc);
}

feat_err_t feat_store_scan_offline(feat_store_t *st, const feat_table_t *t, feat_offline_fn *fn, void *arg) {
    feat_buf_t pre = FEAT_BUF_INIT;
    feat_buf_puts(&pre, t->conf->name);
    feat_buf_putc(&pre, 0);
    size_t nf = t->conf->nfeatures;
    feat_value_t *vals = calloc(nf ? nf : 1, sizeof(*vals));
    if (!vals || pre.oom) { free(vals); feat_buf_free(&pre); return FEAT_ERR_NOMEM; }
    cursor_t c;
    cur_begin(&c, st,
              &(scan_t){.cf = FEAT_CF_OFFLINE, .total_order = 1, .lo = pre.data, .lolen = pre.len,
                        .prefix = pre.data, .plen = pre.len, .what = "offline scan"});
    feat_err_t rc = FEAT_OK;
    while (cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const char *k = c.k, *v = c.v;
        if (kl < pre.len + 21) { rc = FEAT_ERR_CORRUPT; break; }
        const char *ent = k + pre.len;
        size_t elen = kl - pre.len - 21;
        int64_t ts, off;
        int32_t part;
        decode_offline_key_tail(k, kl, kl - 20, &ts, &off, &part);
        for (size_t i = 0; i < nf; i++) {
            memset(&vals[i], 0, sizeof(vals[i]));
            vals[i].type = (uint8_t)t->conf->features[i].type;
        }
        size_t pos = 0;
        feat_row_entry_t e;
        feat_err_t r;
        int has;
        while ((r = feat_row_next(v, vl, &pos, 0, &e, &has)) == FEAT_OK && has) {
            if (e.id > t->max_id || t->index_of_id[e.id] < 0) continue;
            vals[t->index_of_id[e.id]] = e.val;
            vals[t->index_of_id[e.id]].ts = ts;
        }
        if (r) { rc = r; break; }
        if (fn(arg, ent, elen, ts, part, off, vals, nf)) break;
    }
    rc = cur_end(&c, rc);
    free(vals);
    feat_buf_free(&pre);
    return rc;
}

feat_err_t feat_store_all_labels(feat_store_t *st, feat_label_src_fn *fn, void *arg) {
    cursor_t c;
    cur_begin(&c, st, &(scan_t){.cf = FEAT_CF_LABELS, .what = "label scan"});
    feat_err_t rc = FEAT_OK;
    char model[FEAT_MAX_NAME + 1];
    while (cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const char *k = c.k;
        const unsigned char *v = (const unsigned char *)c.v;
        const char *z = memchr(k, 0, kl);
        if (!z || (size_t)(z - k) > FEAT_MAX_NAME || kl < (size_t)(z - k) + 9 || vl < 20) { rc = FEAT_ERR_CORRUPT; break; }
        memcpy(model, k, (size_t)(z - k));
        model[z - k] = 0;
        int64_t ts = feat_get_ts((const unsigned char *)z + 1);
        uint64_t u = feat_get_le64(v);
        double label;
        memcpy(&label, &u, 8);
        if (fn(arg, model, ts, z + 9, kl - (size_t)(z - k) - 9, label, (int32_t)feat_get_le32(v + 8),
               (int64_t)feat_get_le64(v + 12)))
            break;
    }
    return cur_end(&c, rc);
}

/* ---- history -------------------------------------------------------------------- */

static feat_err_t decode_offline_key_tail(const char *k, size_t kl, size_t plen, int64_t *ts, int64_t *off,
                                          int32_t *part) {
    if (kl != plen + 20) return FEAT_ERR_CORRUPT;
    unsigned char p[20];
    for (int i = 0; i < 20; i++) p[i] = (unsigned char)~(unsigned char)k[plen + (size_t)i];
    *ts = feat_get_ts(p);
    *off = (int64_t)(feat_get_be64(p + 8) ^ 0x8000000000000000ull);
    *part = (int32_t)(feat_get_be32(p + 16) ^ 0x80000000u);
    return FEAT_OK;
}

feat_err_t feat_store_history(feat_store_t *st, const feat_table_t *t, const char *key, size_t klen,
                              int64_t from_ms, int64_t to_ms, feat_history_fn *fn, void *arg) {
    feat_buf_t lo = FEAT_BUF_INIT, hi = FEAT_BUF_INIT;
    offline_prefix(&lo, t, key, klen);
    size_t plen = lo.len;
    feat_buf_append(&hi, lo.data, lo.len);
    /* descending keys: the newest row in range sorts first */
    put_ts_src(&lo, to_ms, 0x7fffffffffffffffull, 0x7fffffffu);
    put_ts_src(&hi, from_ms, 0x8000000000000000ull /* min offset */, 0x80000000u);
    feat_buf_putc(&hi, 0); /* upper bound is exclusive: just past the oldest key */
    size_t nf = t->conf->nfeatures;
    feat_value_t *vals = calloc(nf ? nf : 1, sizeof(*vals));
    if (!vals || lo.oom || hi.oom) {
        free(vals); feat_buf_free(&lo); feat_buf_free(&hi);
        return FEAT_ERR_NOMEM;
    }
    cursor_t c;
    cur_begin(&c, st,
              &(scan_t){.cf = FEAT_CF_OFFLINE, .lo = lo.data, .lolen = lo.len, .hi = hi.data, .hilen = hi.len,
                        .prefix = lo.data, .plen = plen, .what = "history scan"});
    feat_err_t rc = FEAT_OK;
    while (cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const char *k = c.k, *v = c.v;
        int64_t ts, off;
        int32_t part;
        if (decode_offline_key_tail(k, kl, plen, &ts, &off, &part)) { rc = FEAT_ERR_CORRUPT; break; }
        for (size_t i = 0; i < nf; i++) {
            memset(&vals[i], 0, sizeof(vals[i]));
            vals[i].type = (uint8_t)t->conf->features[i].type;
            vals[i].status = FEAT_ST_NOT_FOUND;
        }
        size_t pos = 0;
        feat_row_entry_t e;
        feat_err_t r;
        int has;
        while ((r = feat_row_next(v, vl, &pos, 0, &e, &has)) == FEAT_OK && has) {
            if (e.id > t->max_id || t->index_of_id[e.id] < 0) continue;
            feat_value_t *o = &vals[t->index_of_id[e.id]];
            *o = e.val;
            o->ts = ts;
        }
        if (r) { rc = r; break; }
        if (fn(arg, ts, part, off, vals, nf)) break;
    }
    rc = cur_end(&c, rc);
    free(vals);
    feat_buf_free(&lo);
    feat_buf_free(&hi);
    return rc;
}

/* ---- aggregations ------------------------------------------------------------------ */

/* Times of reads are kept within +-2^60 ms (36 million years), so window
 * arithmetic (t - window, tile * size) cannot overflow on a client's
 * extreme timestamp. */
static int64_t clamp_as_of(int64_t t) {
    const int64_t lim = (int64_t)1 << 60;
    return t < -lim ? -lim : t > lim ? lim : t;
}

/* The tiles a read takes from blocks, copied out of the iterator (its
 * values do not outlive a step), per level in the order met: ascending, as
 * the reader wants them. */
typedef struct agg_pick {
    int64_t k;
    size_t off, len;      /* in the picks' byte buffer */
} agg_pick_t;

/* 1 if tile k is in one of the ranges [lo[i], hi[i]] (ascending, disjoint). */
static int in_ranges(const int64_t *lo, const int64_t *hi, size_t n, int64_t k) {
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (hi[m] < k) a = m + 1;
        else b = m;
    }
    return a < n && lo[a] <= k;
}

/* 1 if some range overlaps [from, to]. */
static int overlaps(const int64_t *lo, const int64_t *hi, size_t n, int64_t from, int64_t to) {
    size_t a = 0, b = n;
    while (a < b) {
        size_t m = (a + b) / 2;
        if (hi[m] < from) a = m + 1;
        else b = m;
    }
    return a < n && lo[a] <= to;
}

feat_err_t feat_store_get_aggs(feat_store_t *st, const feat_table_t *t, const char *key, size_t klen,
                               int64_t as_of, const uint16_t *fidx, size_t n, feat_agg_reader_t *r,
                               feat_value_t *out, feat_buf_t *strings) {
    as_of = clamp_as_of(as_of);
    feat_err_t rc = feat_agg_begin(r, t, as_of, fidx, n);
    if (rc) return rc;
    const feat_table_conf_t *c = t->conf;
    int64_t kfrom, kto;
    int life;
    feat_agg_range(r, &kfrom, &kto, &life);
    int top = feat_tile_top_level(c);
    feat_buf_t k = FEAT_BUF_INIT, rgs = FEAT_BUF_INIT, bytes = FEAT_BUF_INIT, picks[FEAT_TILE_LEVELS];
    for (int l = 0; l < FEAT_TILE_LEVELS; l++) picks[l] = (feat_buf_t)FEAT_BUF_INIT;
    /* each level's ranges, copied (the reader's arrays last until its next call) */
    size_t nr[FEAT_TILE_LEVELS] = {0}, at[FEAT_TILE_LEVELS] = {0};
    int windowed = kfrom <= kto && c->agg_max_window_ms > 0 && c->agg_tile_ms > 0;
    for (int l = 0; windowed && l <= top; l++) {
        const int64_t *lo = NULL, *hi = NULL;
        nr[l] = feat_agg_ranges(r, l, &lo, &hi);
        at[l] = rgs.len;
        if (!nr[l]) continue;
        feat_buf_append(&rgs, lo, nr[l] * sizeof(int64_t));
        feat_buf_append(&rgs, hi, nr[l] * sizeof(int64_t));
    }
    if (rgs.oom) rc = FEAT_ERR_NOMEM;
    /* one iterator, one implicit snapshot: every tile of the answer, the
     * lifetime one included, from the same committed batches */
    rocksdb_iterator_t *it = NULL;
    if (rc == FEAT_OK && windowed) {
        int64_t S = feat_tile_level_ms(c, top), R = S / c->agg_tile_ms; /* level-0 tiles per block */
        int64_t ratio[FEAT_TILE_LEVELS];
        for (int l = 0; l <= top; l++) ratio[l] = feat_tile_level_ms(c, l) / c->agg_tile_ms;
        int64_t bfirst = kfrom >= 0 ? kfrom / R : -((-kfrom + R - 1) / R);
        int64_t blast = kto >= 0 ? kto / R : -((-kto + R - 1) / R);
        tile_key(&k, t, key, klen, S, bfirst);
        it = k.oom ? NULL : rocksdb_create_iterator_cf(st->db, st->ropts, st->cf[FEAT_CF_TILES]);
        if (!it) rc = FEAT_ERR_NOMEM;
        size_t plen = k.len - 8;
        if (it) rocksdb_iter_seek(it, k.data, k.len);
        for (; rc == FEAT_OK && it && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t ikl, ivl;
            const char *ik = rocksdb_iter_key(it, &ikl);
            if (ikl != plen + 8 || memcmp(ik, k.data, plen) != 0) break;
            int64_t b = (int64_t)(feat_get_be64((const unsigned char *)ik + plen) ^ 0x8000000000000000ull);
            if (b > blast) break;
            /* the finer tiles are walked only when a range of a finer level
             * reaches into this block: in the middle of a long window the
             * block's own (first) tile is all a read takes */
            int fine = 0;
            for (int l = 0; l < top && !fine; l++) {
                if (!nr[l]) continue;
                const int64_t *lo = (const int64_t *)(void *)(rgs.data + at[l]), *hi = lo + nr[l];
                fine = overlaps(lo, hi, nr[l], b * (R / ratio[l]), (b + 1) * (R / ratio[l]) - 1);
            }
            const char *iv = rocksdb_iter_value(it, &ivl);
            feat_block_iter_t bi;
            feat_block_iter_init(&bi, iv, ivl);
            int got;
            while ((got = feat_block_iter_next(&bi)) == 1) {
                if (bi.level <= top && nr[bi.level] && feat_tile_in_block(c, bi.level, bi.k, b)) {
                    const int64_t *lo = (const int64_t *)(void *)(rgs.data + at[bi.level]), *hi = lo + nr[bi.level];
                    if (in_ranges(lo, hi, nr[bi.level], bi.k)) {
                        agg_pick_t p = {bi.k, bytes.len, bi.slen};
                        feat_buf_append(&bytes, bi.state, bi.slen);
                        feat_buf_append(&picks[bi.level], &p, sizeof(p));
                    }
                }
                if (!fine && bi.level == top && bi.k >= b) break; /* past this block's own top tile */
            }
            if (got < 0) rc = FEAT_ERR_CORRUPT;
        }
        if (rc == FEAT_OK && bytes.oom) rc = FEAT_ERR_NOMEM;
        for (int l = 0; l < FEAT_TILE_LEVELS && rc == FEAT_OK; l++) {
            if (picks[l].oom) rc = FEAT_ERR_NOMEM;
            const agg_pick_t *p = (const agg_pick_t *)(void *)picks[l].data;
            for (size_t i = 0; rc == FEAT_OK && i < picks[l].len / sizeof(*p); i++)
                rc = feat_agg_add_level(r, l, p[i].k, p[i].len ? bytes.data + p[i].off : NULL, p[i].len);
        }
    }
    if (rc == FEAT_OK && life) { /* the lifetime tile (size 0), through the same iterator */
        tile_key(&k, t, key, klen, 0, 0);
        if (!it) it = rocksdb_create_iterator_cf(st->db, st->ropts, st->cf[FEAT_CF_TILES]);
        if (k.oom || !it) rc = FEAT_ERR_NOMEM;
        else {
            rocksdb_iter_seek(it, k.data, k.len);
            size_t ikl, ivl;
            const char *ik = rocksdb_iter_valid(it) ? rocksdb_iter_key(it, &ikl) : NULL;
            if (ik && ikl == k.len && memcmp(ik, k.data, k.len) == 0) {
                const char *iv = rocksdb_iter_value(it, &ivl);
                rc = feat_agg_add(r, FEAT_TILE_LIFETIME, iv, ivl);
            }
        }
    }
    if (it) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        rocksdb_iter_destroy(it);
        if (rerr && rc == FEAT_OK) rc = io_err(NULL, 0, "reading tiles", rerr);
        else if (rerr) rocksdb_free(rerr);
    }
    feat_buf_free(&k);
    feat_buf_free(&rgs);
    feat_buf_free(&bytes);
    for (int l = 0; l < FEAT_TILE_LEVELS; l++) feat_buf_free(&picks[l]);
    if (rc) return rc;
    return feat_agg_finish(r, out, strings);
}

static int pit_ev_cmp(const void *a, const void *b) {
    const pit_ev_t *x = a, *y = b;
    if (x->tile != y->tile) return x->tile < y->tile ? -1 : 1;
    if (x->partition != y->partition) return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Folds the operands evs[0..n) (sorted) into one tile as of tile index k and
 * hands it to the reader. */
static feat_err_t pit_fold_tile(feat_pit_reader_t *r, const feat_table_t *t, int level, int64_t k,
                                const pit_ev_t *evs, size_t n) {
    if (!n) return FEAT_OK;
    if (r->capops < n) {
        const char **no = realloc((void *)r->ops, n * sizeof(*no));
        size_t *nl = no ? realloc(r->oplens, n * sizeof(*nl)) : NULL;
        if (no) r->ops = no;
        if (nl) r->oplens = nl;
        if (!no || !nl) return FEAT_ERR_NOMEM;
        r->capops = n;
    }
    for (size_t i = 0; i < n; i++) {
        r->ops[i] = r->evbuf.data + evs[i].at;
        r->oplens[i] = evs[i].len;
    }
    /* the merge operator's own call on the same operands in the same order */
    feat_err_t rc = feat_tile_fold_many(t, level < 0 ? FEAT_TILE_LIFETIME : feat_tile_id(level, k), NULL, 0, r->ops,
                                        r->oplens, n, &r->tile);
    if (rc) return rc;
    return level < 0 ? feat_agg_add(r->agg, FEAT_TILE_LIFETIME, r->tile.data, r->tile.len)
                     : feat_agg_add_level(r->agg, level, k, r->tile.data, r->tile.len);
}

/* The aggregated features among fidx as of as_of, from history: the rows
 * the windows cover are turned into tile operands and folded tile by tile,
 * in (partition, offset) order (the order ingest wrote them for an entity
 * whose events share a partition), then read by the reader online reads use. */
static feat_err_t pit_aggs(feat_pit_reader_t *r, const feat_table_t *t, const char *key, size_t klen,
                           int64_t as_of, const uint16_t *fidx, size_t n, feat_value_t *out) {
    const feat_table_conf_t *c = t->conf;
    if (!r->agg && !(r->agg = feat_agg_reader_new())) return FEAT_ERR_NOMEM;
    if (r->capvals < c->nfeatures) {
        free(r->vals);
        free(r->fidx);
        r->vals = malloc(c->nfeatures * sizeof(*r->vals));
        r->fidx = malloc(c->nfeatures * sizeof(*r->fidx));
        r->capvals = r->vals && r->fidx ? c->nfeatures : 0;
        if (!r->capvals) return FEAT_ERR_NOMEM;
    }
    as_of = clamp_as_of(as_of);
    uint16_t afidx[FEAT_MAX_FEATURES];
    size_t na = 0;
    for (size_t i = 0; i < n; i++)
        if (feat_feature_is_agg(c, fidx[i])) afidx[na++] = fidx[i];
    feat_err_t rc = feat_agg_begin(r->agg, t, as_of, afidx, na);
    if (rc) return rc;
    int64_t kfrom, kto;
    int life;
    feat_agg_range(r->agg, &kfrom, &kto, &life);
    /* rows with ts > kfrom * T (all rows when a lifetime is asked), newest first */
    int64_t lo_ts = life ? INT64_MIN : (kfrom <= kto ? kfrom * c->agg_tile_ms : as_of);
    r->nev = 0;
    feat_buf_reset(&r->evbuf);
    offline_prefix(&r->key, t, key, klen);
    size_t plen = r->key.len;
    put_ts_src(&r->key, as_of, 0x7fffffffffffffffull, 0x7fffffffu);
    if (r->key.oom) return FEAT_ERR_NOMEM;
    cursor_t cur;
    cur_begin_on(&cur, r->it,
                 &(scan_t){.lo = r->key.data, .lolen = r->key.len, .prefix = r->key.data, .plen = plen,
                           .what = "point-in-time aggregation"});
    while (cur_next(&cur)) {
        int64_t ts, off;
        int32_t part;
        if (decode_offline_key_tail(cur.k, cur.kl, plen, &ts, &off, &part)) { rc = FEAT_ERR_CORRUPT; break; }
        if (ts <= lo_ts) break;
        size_t pos = 0, nv = 0;
        feat_row_entry_t e;
        feat_err_t res;
        int has, late = 0;
        while ((res = feat_row_next(cur.v, cur.vl, &pos, 0, &e, &has)) == FEAT_OK && has) {
            if (e.id == LATE_MARK_ID) late = 1;
            if (e.id > t->max_id || t->index_of_id[e.id] < 0) continue;
            r->fidx[nv] = (uint16_t)t->index_of_id[e.id];
            r->vals[nv] = e.val;
            nv++;
        }
        if (res) { rc = res; break; }
        if (late || !feat_tile_operand(t, ts, off, part, r->fidx, r->vals, nv, &r->op)) {
            if (r->op.oom) { rc = FEAT_ERR_NOMEM; break; }
            continue;
        }
        if (r->nev == r->capev) {
            size_t nc = r->capev ? r->capev * 2 : 256;
            pit_ev_t *ne = realloc(r->evs, nc * sizeof(*ne));
            if (!ne) { rc = FEAT_ERR_NOMEM; break; }
            r->evs = ne;
            r->capev = nc;
        }
        int64_t k0 = feat_tile_index(ts, c->agg_tile_ms);
        r->evs[r->nev++] = (pit_ev_t){.tile = k0, .tile0 = k0, .offset = off, .partition = part,
                                      .at = (uint32_t)r->evbuf.len, .len = (uint32_t)r->op.len};
        feat_buf_append(&r->evbuf, r->op.data, r->op.len);
        if (r->evbuf.oom) { rc = FEAT_ERR_NOMEM; break; }
    }
    rc = cur_end(&cur, rc);
    if (rc) return rc;
    /* windows: the tiles of each level the reader asks for, in its order:
     * level by level, ascending (a coarse tile's index is its first level-0
     * tile's, divided by the ratio) */
    for (int l = 0; rc == FEAT_OK && l < FEAT_TILE_LEVELS && kfrom <= kto && c->agg_max_window_ms > 0; l++) {
        int64_t size = l ? c->agg_level_ms[l] : c->agg_tile_ms;
        const int64_t *lo = NULL, *hi = NULL;
        size_t nr = size > 0 ? feat_agg_ranges(r->agg, l, &lo, &hi) : 0;
        if (!nr) continue;
        int64_t ratio = size / c->agg_tile_ms;
        for (size_t i = 0; i < r->nev; i++) { /* floor division */
            int64_t a = r->evs[i].tile0;
            r->evs[i].tile = a / ratio - (a % ratio != 0 && a < 0);
        }
        if (r->nev > 1) qsort(r->evs, r->nev, sizeof(*r->evs), pit_ev_cmp);
        size_t i = 0, g = 0;
        while (i < r->nev && rc == FEAT_OK) {
            size_t j = i;
            while (j < r->nev && r->evs[j].tile == r->evs[i].tile) j++;
            int64_t k = r->evs[i].tile;
            while (g < nr && hi[g] < k) g++;
            if (g < nr && k >= lo[g]) rc = pit_fold_tile(r, t, l, k, r->evs + i, j - i);
            i = j;
        }
    }
    /* the lifetime: every row, one tile */
    if (rc == FEAT_OK && life) {
        for (size_t i = 0; i < r->nev; i++) r->evs[i].tile = 0;
        if (r->nev > 1) qsort(r->evs, r->nev, sizeof(*r->evs), pit_ev_cmp);
        rc = pit_fold_tile(r, t, -1, FEAT_TILE_LIFETIME, r->evs, r->nev);
    }
    if (rc) return rc;
    feat_value_t av[FEAT_MAX_FEATURES];
    feat_buf_reset(&r->aggstr);
    rc = feat_agg_finish(r->agg, av, &r->aggstr);
    if (rc) return rc;
    for (size_t i = 0, a = 0; i < n; i++)
        if (feat_feature_is_agg(c, fidx[i])) out[i] = av[a++];
    return FEAT_OK;
}

/* ---- point-in-time reads ------------------------------------------------------------ */

feat_pit_reader_t *feat_pit_reader_new(feat_store_t *st) {
    feat_pit_reader_t *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    r->st = st;
    r->snap = rocksdb_create_snapshot(st->db);
    r->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(r->ro, r->snap);
    r->it = rocksdb_create_iterator_cf(st->db, r->ro, st->cf[FEAT_CF_OFFLINE]);
    return r;
}

void feat_pit_reader_destroy(feat_pit_reader_t *r) {
    if (!r) return;
    feat_agg_reader_destroy(r->agg);
    free(r->evs);
    free(r->vals);
    free(r->fidx);
    feat_buf_free(&r->evbuf);
    feat_buf_free(&r->op);
    feat_buf_free(&r->tile);
    free((void *)r->ops);
    free(r->oplens);
    feat_buf_free(&r->aggstr);
    rocksdb_iter_destroy(r->it);
    rocksdb_readoptions_destroy(r->ro);
    rocksdb_release_snapshot(r->st->db, r->snap);
    feat_buf_free(&r->key);
    free(r);
}

feat_err_t feat_pit_read(feat_pit_reader_t *r, const feat_table_t *t, const char *key, size_t klen,
                         int64_t as_of, const uint16_t *fidx, size_t n, int report_expired,
                         feat_value_t *out, feat_buf_t *strings) {
    int64_t ttl = t->conf->ttl_ms;
    feat_buf_reset(strings);
    size_t unresolved = n, naggs = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].type = (uint8_t)t->conf->features[fidx[i]].type;
        out[i].status = FEAT_ST_NOT_FOUND;
        if (feat_feature_is_agg(t->conf, fidx[i])) naggs++;
    }
    if (n == 0) return FEAT_OK;
    if (naggs) {
        feat_err_t arc = pit_aggs(r, t, key, klen, as_of, fidx, n, out);
        if (arc) return arc;
        unresolved -= naggs;
        if (!unresolved) return FEAT_OK;
    }
    offline_prefix(&r->key, t, key, klen);
    size_t plen = r->key.len;
    put_ts_src(&r->key, as_of, 0x7fffffffffffffffull, 0x7fffffffu);
    if (r->key.oom) return FEAT_ERR_NOMEM;
    /* string values are copied; remember their offsets, fix pointers at the end */
    feat_err_t rc = FEAT_OK;
    /* descending keys: the first key at or after (as_of, max) is the newest
     * row with ts <= as_of; Next walks back in time */
    cursor_t c;
    cur_begin_on(&c, r->it,
                 &(scan_t){.lo = r->key.data, .lolen = r->key.len, .prefix = r->key.data, .plen = plen,
                           .what = "point-in-time read"});
    while (unresolved && cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const char *k = c.k, *v = c.v;
        int64_t ts, off;
        int32_t part;
        if (decode_offline_key_tail(k, kl, plen, &ts, &off, &part)) { rc = FEAT_ERR_CORRUPT; break; }
        int expired = ttl > 0 && as_of - ts > ttl;
        if (expired && !report_expired) break;
        size_t pos = 0;
        feat_row_entry_t e;
        feat_err_t res;
        int has;
        while ((res = feat_row_next(v, vl, &pos, 0, &e, &has)) == FEAT_OK && has) {
            if (e.id > t->max_id) continue;
            int f = t->index_of_id[e.id];
            if (f < 0) continue;
            for (size_t i = 0; i < n; i++) {
                if (fidx[i] != (uint16_t)f || out[i].status != FEAT_ST_NOT_FOUND) continue;
                if (feat_feature_is_agg(t->conf, fidx[i])) continue;
                out[i] = e.val;
                out[i].ts = ts;
                out[i].status = expired ? FEAT_ST_EXPIRED : FEAT_ST_PRESENT;
                if (e.type == FEAT_FT_STRING) {
                    out[i].v.s = (const char *)(uintptr_t)strings->len; /* offset until fix-up */
                    feat_buf_append(strings, e.val.v.s, e.val.slen);
                }
                unresolved--;
            }
        }
        if (res) { rc = res; break; }
    }
    rc = cur_end(&c, rc);
    if (strings->oom) rc = FEAT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (out[i].status == FEAT_ST_NOT_FOUND || out[i].type != FEAT_FT_STRING) continue;
        if (feat_feature_is_agg(t->conf, fidx[i])) continue; /* points into r->aggstr */
        out[i].v.s = rc == FEAT_OK ? strings->data + (uintptr_t)out[i].v.s : "";
    }
    return rc;
}

/* ---- labels, dead letters, blobs ----------------------------------------------------- */

/* Key bounds of "model \0 ts ..." rows with from_ms <= ts <= to_ms (INT64_MAX:
 * no upper bound): lo inclusive, hi exclusive; *plen = the model prefix's
 * length.  Non-zero when a buffer could not grow. */
static int model_range(feat_buf_t *lo, feat_buf_t *hi, const char *model, int64_t from_ms, int64_t to_ms,
                       size_t *plen) {
    unsigned char b[8];
    feat_buf_puts(lo, model);
    feat_buf_putc(lo, 0);
    *plen = lo->len;
    feat_buf_append(hi, lo->data, lo->len);
    feat_put_ts(b, from_ms);
    feat_buf_append(lo, b, 8);
    if (to_ms == INT64_MAX) {
        feat_buf_puts(hi, "\xff\xff\xff\xff\xff\xff\xff\xff\xff");
    } else {
        feat_put_ts(b, to_ms + 1);
        feat_buf_append(hi, b, 8);
    }
    return lo->oom || hi->oom;
}

typedef struct label_adapter {
    feat_label_fn *fn;
    void *arg;
} label_adapter_t;

static int label_no_keys(void *arg, int64_t ts, const char *key, size_t klen, double label,
                         const char *const *xnames, const size_t *xnlens, const char *const *xkeys,
                         const size_t *xlens, size_t nx) {
    (void)xnames; (void)xnlens; (void)xkeys; (void)xlens; (void)nx;
    label_adapter_t *a = arg;
    return a->fn(a->arg, ts, key, klen, label);
}

feat_err_t feat_store_labels(feat_store_t *st, const char *model, int64_t from_ms, int64_t to_ms,
                             feat_label_fn *fn, void *arg) {
    label_adapter_t a = {fn, arg};
    return feat_store_labels_keys(st, model, from_ms, to_ms, label_no_keys, &a);
}

feat_err_t feat_store_labels_keys(feat_store_t *st, const char *model, int64_t from_ms, int64_t to_ms,
                                  feat_label_keys_fn *fn, void *arg) {
    feat_buf_t lo = FEAT_BUF_INIT, hi = FEAT_BUF_INIT;
    size_t plen;
    if (model_range(&lo, &hi, model, from_ms, to_ms, &plen)) { feat_buf_free(&lo); feat_buf_free(&hi); return FEAT_ERR_NOMEM; }
    cursor_t c;
    cur_begin(&c, st,
              &(scan_t){.cf = FEAT_CF_LABELS, .lo = lo.data, .lolen = lo.len, .hi = hi.data, .hilen = hi.len,
                        .what = "label scan"});
    feat_err_t rc = FEAT_OK;
    while (cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const char *k = c.k, *v = c.v;
        if (kl < plen + 8 || vl < 8) { rc = FEAT_ERR_CORRUPT; break; }
        int64_t ts = feat_get_ts((const unsigned char *)k + plen);
        uint64_t u = feat_get_le64((const unsigned char *)v);
        double label;
        memcpy(&label, &u, 8);
        const char *xk[FEAT_MAX_LABEL_KEYS], *xn[FEAT_MAX_LABEL_KEYS];
        size_t xl[FEAT_MAX_LABEL_KEYS], xnl[FEAT_MAX_LABEL_KEYS], nx = 0, p = 21;
        if (vl > 20 && v[20] != 1) { rc = FEAT_ERR_CORRUPT; break; }
        while (vl > 21 && p < vl) { /* extra keys (feat_wb_put_label_keys) */
            size_t nl = (unsigned char)v[p];
            if (nx == FEAT_MAX_LABEL_KEYS || vl - p < 1 + nl + 4) { rc = FEAT_ERR_CORRUPT; break; }
            uint32_t l = feat_get_le32((const unsigned char *)v + p + 1 + nl);
            if (l > vl - p - 1 - nl - 4) { rc = FEAT_ERR_CORRUPT; break; }
            xn[nx] = v + p + 1;
            xnl[nx] = nl;
            xk[nx] = v + p + 1 + nl + 4;
            xl[nx++] = l;
            p += 1 + nl + 4 + (size_t)l;
        }
        if (rc) break;
        if (fn(arg, ts, k + plen + 8, kl - plen - 8, label, xn, xnl, xk, xl, nx)) break;
    }
    rc = cur_end(&c, rc);
    feat_buf_free(&lo);
    feat_buf_free(&hi);
    return rc;
}

feat_err_t feat_store_dead_letters(feat_store_t *st, feat_dead_letter_fn *fn, void *arg) {
    cursor_t c;
    cur_begin(&c, st, &(scan_t){.cf = FEAT_CF_DEAD_LETTERS, .what = "dead-letter scan"});
    feat_err_t rc = FEAT_OK;
    char topic[256];
    while (cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const unsigned char *k = (const unsigned char *)c.k, *v = (const unsigned char *)c.v;
        const unsigned char *z = memchr(k, 0, kl);
        if (!z || (size_t)(z - k) >= sizeof(topic) || kl != (size_t)(z - k) + 13) { rc = FEAT_ERR_CORRUPT; break; }
        size_t tl = (size_t)(z - k);
        memcpy(topic, k, tl);
        topic[tl] = 0;
        int32_t part = (int32_t)feat_get_be32(z + 1);
        int64_t off = (int64_t)feat_get_be64(z + 5);
        size_t i = 1;
        if (vl < 2 || v[0] != 1) { rc = FEAT_ERR_CORRUPT; break; }
        size_t rl = v[i++];
        if (vl - i < rl + 2) { rc = FEAT_ERR_CORRUPT; break; }
        char reason[256], detail[65536];
        memcpy(reason, v + i, rl);
        reason[rl] = 0;
        i += rl;
        size_t dl = (size_t)(v[i] | (v[i + 1] << 8));
        i += 2;
        if (vl - i < dl + 4) { rc = FEAT_ERR_CORRUPT; break; }
        memcpy(detail, v + i, dl);
        detail[dl] = 0;
        i += dl;
        size_t keyl = feat_get_le32(v + i);
        i += 4;
        if (vl - i < keyl + 4) { rc = FEAT_ERR_CORRUPT; break; }
        const char *key = (const char *)v + i;
        i += keyl;
        size_t vall = feat_get_le32(v + i);
        i += 4;
        if (vl - i < vall) { rc = FEAT_ERR_CORRUPT; break; }
        if (fn(arg, topic, part, off, reason, detail, key, keyl, (const char *)v + i, vall)) break;
    }
    return cur_end(&c, rc);
}

feat_err_t feat_store_put_blob(feat_store_t *st, feat_cf_t cf, const char *key, size_t klen, const void *val,
                               size_t vlen) {
    char *rerr = NULL;
    rocksdb_put_cf(st->db, st->wopts, st->cf[cf], key, klen, val, vlen, &rerr);
    return rerr ? write_err(st, NULL, 0, "put", rerr) : FEAT_OK;
}

feat_err_t feat_store_get_blob(feat_store_t *st, feat_cf_t cf, const char *key, size_t klen, feat_buf_t *out) {
    char *rerr = NULL;
    size_t vl = 0;
    char *v = rocksdb_get_cf(st->db, st->ropts, st->cf[cf], key, klen, &vl, &rerr);
    if (rerr) return io_err(NULL, 0, "get", rerr);
    feat_buf_reset(out);
    if (!v) return FEAT_ERR_NOT_FOUND;
    feat_buf_append(out, v, vl);
    rocksdb_free(v);
    return out->oom ? FEAT_ERR_NOMEM : FEAT_OK;
}

feat_err_t feat_store_delete_blob(feat_store_t *st, feat_cf_t cf, const char *key, size_t klen) {
    char *rerr = NULL;
    rocksdb_delete_cf(st->db, st->wopts, st->cf[cf], key, klen, &rerr);
    return rerr ? write_err(st, NULL, 0, "delete", rerr) : FEAT_OK;
}

feat_err_t feat_store_scan_blobs(feat_store_t *st, feat_cf_t cf, const char *prefix, size_t plen, feat_blob_fn *fn,
                                 void *arg) {
    cursor_t c;
    cur_begin(&c, st, &(scan_t){.cf = cf, .lo = prefix, .lolen = plen, .prefix = prefix, .plen = plen, .what = "scan"});
    while (cur_next(&c))
        if (fn(arg, c.k, c.kl, c.v, c.vl)) break;
    return cur_end(&c, FEAT_OK);
}

feat_err_t feat_store_predictions(feat_store_t *st, const char *model, int64_t from_ms, int64_t to_ms,
                                  feat_prediction_fn *fn, void *arg) {
    feat_buf_t lo = FEAT_BUF_INIT, hi = FEAT_BUF_INIT;
    size_t plen;
    if (model_range(&lo, &hi, model, from_ms, to_ms, &plen)) { feat_buf_free(&lo); feat_buf_free(&hi); return FEAT_ERR_NOMEM; }
    cursor_t c;
    cur_begin(&c, st,
              &(scan_t){.cf = FEAT_CF_PREDICTIONS, .lo = lo.data, .lolen = lo.len, .hi = hi.data, .hilen = hi.len,
                        .what = "prediction scan"});
    feat_err_t rc = FEAT_OK;
    while (cur_next(&c)) {
        size_t kl = c.kl, vl = c.vl;
        const char *k = c.k;
        const unsigned char *v = (const unsigned char *)c.v;
        if (kl < plen + 8 || vl != 16) { rc = FEAT_ERR_CORRUPT; break; }
        uint64_t u = feat_get_le64(v + 8);
        double score;
        memcpy(&score, &u, 8);
        if (fn(arg, feat_get_ts((const unsigned char *)k + plen), k + plen + 8, kl - plen - 8, feat_get_le64(v), score))
            break;
    }
    rc = cur_end(&c, rc);
    feat_buf_free(&lo);
    feat_buf_free(&hi);
    return rc;
}

uint64_t feat_store_size_bytes(feat_store_t *st) {
    uint64_t total = 0;
    for (int i = 0; i < FEAT_CF_COUNT; i++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.total-sst-files-size", &v) == 0) total += v;
        if (rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.cur-size-all-mem-tables", &v) == 0) total += v;
    }
    return total;
}

void feat_store_memory(feat_store_t *st, feat_store_memory_t *m) {
    memset(m, 0, sizeof(*m));
    for (int i = 0; i < FEAT_CF_COUNT; i++) {
        uint64_t v = 0;
        if (rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.cur-size-all-mem-tables", &v) == 0) m->memtables += v;
        if (rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.estimate-table-readers-mem", &v) == 0)
            m->table_readers += v;
    }
    uint64_t v = 0;
    if (rocksdb_property_int(st->db, "rocksdb.actual-delayed-write-rate", &v) == 0) m->delayed_write_rate = v;
    if (rocksdb_property_int(st->db, "rocksdb.is-write-stopped", &v) == 0) m->write_stopped = v;
    m->block_cache = rocksdb_cache_get_usage(st->cache);
    m->block_cache_pinned = rocksdb_cache_get_pinned_usage(st->cache);
}

uint64_t feat_store_estimate_keys(feat_store_t *st, feat_cf_t cf) {
    uint64_t v = 0;
    if (rocksdb_property_int_cf(st->db, st->cf[cf], "rocksdb.estimate-num-keys", &v) != 0) v = 0;
    return v;
}

uint64_t feat_store_cf_bytes(feat_store_t *st, feat_cf_t cf) {
    uint64_t v = 0;
    if (rocksdb_property_int_cf(st->db, st->cf[cf], "rocksdb.live-sst-files-size", &v) != 0) v = 0;
    return v;
}

feat_err_t feat_store_flush(feat_store_t *st) {
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    feat_err_t rc = FEAT_OK;
    for (int i = 0; i < FEAT_CF_COUNT && rc == FEAT_OK; i++) {
        char *rerr = NULL;
        rocksdb_flush_cf(st->db, fo, st->cf[i], &rerr);
        if (rerr) rc = io_err(NULL, 0, "flush", rerr);
    }
    rocksdb_flushoptions_destroy(fo);
    return rc;
}

feat_err_t feat_store_compact(feat_store_t *st) {
    for (int i = 0; i < FEAT_CF_COUNT; i++) rocksdb_compact_range_cf(st->db, st->cf[i], NULL, 0, NULL, 0);
    /* RocksDB runs a compaction filter on stored values, not on merge
     * operands: the pass above folded the tiles' operands into values, this
     * one lets the expiry filter see them (in a running store, later
     * compactions of the same key range do it) */
    rocksdb_compact_range_cf(st->db, st->cf[FEAT_CF_TILES], NULL, 0, NULL, 0);
    return FEAT_OK;
}

/* ---- backup ------------------------------------------------------------- */

/* Sums the regular files directly in dir (a checkpoint has no subfolders). */
static feat_err_t checkpoint_stats(const char *dir, feat_checkpoint_info_t *info) {
    memset(info, 0, sizeof(*info));
    DIR *d = opendir(dir);
    if (!d) return FEAT_ERR_IO;
    char path[PATH_MAX];
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        struct stat sb;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path)) continue;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        info->bytes += (uint64_t)sb.st_size;
        info->files++;
        if (sb.st_nlink > 1) info->linked_files++;
    }
    closedir(d);
    return FEAT_OK;
}

feat_err_t feat_store_checkpoint(feat_store_t *st, const char *dir, feat_checkpoint_info_t *info, char *errstr,
                                 size_t errlen) {
    char parent[PATH_MAX];
    size_t n = dir ? strlen(dir) : 0;
    while (n > 1 && dir[n - 1] == '/') n--; /* "a/b/" names a/b */
    if (n == 0 || n >= sizeof(parent)) {
        snprintf(errstr, errlen, "backup directory: empty or longer than %d bytes", PATH_MAX - 1);
        return FEAT_ERR_INVALID;
    }
    memcpy(parent, dir, n);
    parent[n] = 0;
    struct stat sb;
    if (lstat(parent, &sb) == 0) {
        snprintf(errstr, errlen, "%s already exists (a backup needs a new directory)", parent);
        return FEAT_ERR_EXISTS;
    }
    char *slash = strrchr(parent, '/');
    if (slash == parent) slash[1] = 0;       /* "/x": parent "/" */
    else if (slash) *slash = 0;
    else strcpy(parent, ".");
    if (stat(parent, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(errstr, errlen, "%s: no such directory (the backup's parent must exist)", parent);
        return FEAT_ERR_INVALID;
    }
    char *rerr = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(st->db, &rerr);
    if (rerr) return io_err(errstr, errlen, "checkpoint", rerr);
    /* log_size_for_flush 0: flush the memtables first, so the backup is
     * mostly hard-linked SSTs and opens without a long WAL replay */
    rocksdb_checkpoint_create(cp, dir, 0, &rerr);
    rocksdb_checkpoint_object_destroy(cp);
    if (rerr) return io_err(errstr, errlen, dir, rerr);
    feat_checkpoint_info_t tmp;
    checkpoint_stats(dir, info ? info : &tmp);
    return FEAT_OK;
}
