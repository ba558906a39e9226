/*
 * tests/fuzz/fuzz_tile.c — libFuzzer target: aggregation tiles (store/tile.c)
 * on bytes as a damaged store or a foreign writer could hold them.
 *
 * Input: byte 0 = flags (bit 0: the lifetime tile, else tile 0; bit 1: the
 * state is a block, store/tile.h, of a table with levels of 10, 20 and 40
 * ms, and block 0 takes the operand), bytes 1-2 = the state's length (u16
 * little-endian, capped by what follows), then the state's bytes, then the
 * operand's.  The table declares every function
 * (its spec ids are 1..20, so small ids in the input hit them) over four
 * plain features of every type, ids 1..4, each with a 10 ms window and the
 * lifetime window; tiles are 10 ms.
 *
 * Invariants: nothing reads outside the given bytes (they are copied to
 * exact-size buffers for ASan); the fold returns FEAT_OK, FEAT_ERR_CORRUPT
 * or FEAT_ERR_NOMEM, and FEAT_ERR_CORRUPT whenever the operand's header does
 * not decode; a state the fold returns reads back (every feature's add and
 * finish succeed, a last_n value is a bracketed list) and takes the same
 * operand again; the reader, fed the raw state, either reports
 * FEAT_ERR_CORRUPT or finishes.  Blocks: the fold returns the same codes, a
 * block it returns walks to its end with every tile inside block 0 (tile 0
 * of level 0 reads back) and takes the operand again; walking the raw bytes
 * ends.
 */
#include "fuzz_util.h"

#include "store/tile.h"

enum { NPLAIN = 4 };

static const feat_agg_spec_t SPECS[] = {
    {1, FEAT_AGG_COUNT, 0, 0, 0},           {2, FEAT_AGG_SUM, 0, 0, 0},
    {3, FEAT_AGG_SUM, 2, 0, 0},             {4, FEAT_AGG_MEAN, 0, 0, 0},
    {5, FEAT_AGG_MIN, 2, 0, 0},             {6, FEAT_AGG_MAX, 0, 0, 0},
    {7, FEAT_AGG_STDDEV, 0, 0, 0},          {8, FEAT_AGG_LAST, 1, 0, 0},
    {9, FEAT_AGG_FIRST, 3, 0, 0},           {10, FEAT_AGG_LAST_N, 1, 3, 0},
    {11, FEAT_AGG_APPROX_DISTINCT, 1, 0, 0}, {12, FEAT_AGG_APPROX_QUANTILE, 0, 0, 0.9},
    {13, FEAT_AGG_LAST_N, 0, 2, 0},         {14, FEAT_AGG_MEAN, 2, 0, 0},
    {15, FEAT_AGG_MAX, 2, 0, 0},            {16, FEAT_AGG_MIN, 0, 0, 0},
    {17, FEAT_AGG_LAST, 3, 0, 0},           {18, FEAT_AGG_LAST_N, 3, 2, 0},
    {19, FEAT_AGG_APPROX_DISTINCT, 2, 0, 0}, {20, FEAT_AGG_STDDEV, 2, 0, 0},
};
#define NSPECS (sizeof(SPECS) / sizeof(SPECS[0]))
#define NFEAT (NPLAIN + 2 * NSPECS)

static feat_agg_spec_t specs[NSPECS];
static feat_feature_conf_t feats[NFEAT];
static feat_table_conf_t conf;
static uint16_t ids[NFEAT];
static int16_t index_of_id[NFEAT + 1];
static feat_table_t table;
static uint16_t agg_window[NSPECS], agg_life[NSPECS];
static feat_agg_reader_t *reader;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    memcpy(specs, SPECS, sizeof(specs));
    static const feat_ftype_t pt[NPLAIN] = {FEAT_FT_DOUBLE, FEAT_FT_STRING, FEAT_FT_INT64, FEAT_FT_BOOL};
    for (int i = 0; i < NPLAIN; i++) {
        feats[i].type = pt[i];
        feats[i].agg = -1;
    }
    for (size_t j = 0; j < NSPECS; j++) {
        agg_window[j] = (uint16_t)(NPLAIN + 2 * j);
        agg_life[j] = (uint16_t)(NPLAIN + 2 * j + 1);
        feats[agg_window[j]].agg = feats[agg_life[j]].agg = (int32_t)j;
        feats[agg_window[j]].window_ms = 10;
        feats[agg_life[j]].window_ms = 0;
        feats[agg_window[j]].type = feats[agg_life[j]].type = FEAT_FT_INT64;
    }
    conf.nfeatures = NFEAT;
    conf.features = feats;
    conf.nplain = NPLAIN;
    conf.naggs = NSPECS;
    conf.aggs = specs;
    conf.agg_tile_ms = 10;
    conf.agg_lifetime = 1;
    index_of_id[0] = -1;
    for (size_t i = 0; i < NFEAT; i++) {
        ids[i] = (uint16_t)(i + 1);
        index_of_id[i + 1] = (int16_t)i;
    }
    table.conf = &conf;
    table.ids = ids;
    table.index_of_id = index_of_id;
    table.max_id = NFEAT;
    reader = feat_agg_reader_new();
    return reader ? 0 : 1;
}

/* Reads every aggregated feature of tile k (as of 10: the 10 ms windows read
 * tile 0) from state.  Returns add's result; on FEAT_OK checks finish. */
static feat_err_t read_state(int64_t k, const char *state, size_t len) {
    static feat_value_t out[NSPECS];
    const uint16_t *fidx = k == FEAT_TILE_LIFETIME ? agg_life : agg_window;
    FUZZ_CHECK(feat_agg_begin(reader, &table, 10, fidx, NSPECS) == FEAT_OK, "begin failed");
    int64_t kfrom, kto;
    int life;
    feat_agg_range(reader, &kfrom, &kto, &life);
    FUZZ_CHECK(k == FEAT_TILE_LIFETIME ? life : (kfrom == 0 && kto == 0), "range [%lld, %lld] life %d",
               (long long)kfrom, (long long)kto, life);
    feat_err_t rc = feat_agg_add(reader, k, state, len);
    FUZZ_CHECK(rc == FEAT_OK || rc == FEAT_ERR_CORRUPT || rc == FEAT_ERR_NOMEM, "add returned %d", rc);
    if (rc != FEAT_OK) return rc;
    feat_buf_t strings = FEAT_BUF_INIT;
    feat_err_t fr = feat_agg_finish(reader, out, &strings);
    FUZZ_CHECK(fr == FEAT_OK || fr == FEAT_ERR_NOMEM, "finish returned %d", fr);
    if (fr == FEAT_OK) {
        for (size_t j = 0; j < NSPECS; j++) {
            const feat_value_t *v = &out[j];
            FUZZ_CHECK(v->status == FEAT_ST_PRESENT || v->status == FEAT_ST_NOT_FOUND, "status %d", v->status);
            if (v->status != FEAT_ST_PRESENT || v->type != FEAT_FT_STRING) continue;
            FUZZ_CHECK(v->v.s >= strings.data && v->v.s + v->slen <= strings.data + strings.len,
                       "string %zu outside the strings buffer", j);
            if (SPECS[j].fn == FEAT_AGG_LAST_N)
                FUZZ_CHECK(v->slen >= 2 && v->v.s[0] == '[' && v->v.s[v->slen - 1] == ']', "last_n not a list");
        }
    }
    feat_buf_free(&strings);
    return rc;
}

/* Bit 1: the state is a block. */
static void fuzz_block(const char *st, size_t sl, const char *op, size_t ol) {
    conf.agg_level_ms[0] = 10;
    conf.agg_level_ms[1] = 20;
    conf.agg_level_ms[2] = 40;
    feat_block_iter_t it;
    feat_block_iter_init(&it, st, sl);
    int r;
    while ((r = feat_block_iter_next(&it)) == 1) FUZZ_CHECK(it.state >= st && it.state + it.slen <= st + sl, "tile outside");
    feat_buf_t out = FEAT_BUF_INIT, again = FEAT_BUF_INIT;
    feat_err_t rc = feat_tile_block_fold(&table, 0, st, sl, &op, &ol, 1, &out);
    FUZZ_CHECK(rc == FEAT_OK || rc == FEAT_ERR_CORRUPT || rc == FEAT_ERR_NOMEM, "block fold returned %d", rc);
    if (r < 0) FUZZ_CHECK(rc != FEAT_OK, "the fold took a block its walk refuses");
    if (rc != FEAT_OK) {
        FUZZ_CHECK(out.len == 0, "a failed block fold left %zu bytes", out.len);
    } else {
        char *o = malloc(out.len);
        memcpy(o, out.data, out.len);
        FUZZ_CHECK(out.len >= 1 && (unsigned char)o[0] == FEAT_TILE_BLOCK, "no block");
        feat_block_iter_init(&it, o, out.len);
        while ((r = feat_block_iter_next(&it)) == 1) {
            int64_t per = 40 / conf.agg_level_ms[it.level];
            FUZZ_CHECK(it.k >= 0 && it.k < per, "level %d tile %lld outside block 0", it.level, (long long)it.k);
            if (it.level == 0 && it.k == 0) {
                feat_err_t rr = read_state(0, it.state, it.slen);
                FUZZ_CHECK(rr == FEAT_OK || rr == FEAT_ERR_NOMEM || rr == FEAT_ERR_CORRUPT, "read %d", rr);
            }
        }
        FUZZ_CHECK(r == 0, "a folded block does not walk");
        feat_err_t r2 = feat_tile_block_fold(&table, 0, o, out.len, &op, &ol, 1, &again);
        FUZZ_CHECK(r2 == FEAT_OK || r2 == FEAT_ERR_NOMEM || r2 == FEAT_ERR_CORRUPT, "block fold again: %d", r2);
        free(o);
    }
    feat_buf_free(&out);
    feat_buf_free(&again);
    memset(conf.agg_level_ms, 0, sizeof(conf.agg_level_ms));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int64_t k = (data[0] & 1) ? FEAT_TILE_LIFETIME : 0;
    size_t sl = (size_t)data[1] | ((size_t)data[2] << 8);
    if (sl > size - 3) sl = size - 3;
    size_t ol = size - 3 - sl;
    /* copies, so ASan sees reads past either */
    char *st = malloc(sl ? sl : 1), *op = malloc(ol ? ol : 1);
    memcpy(st, data + 3, sl);
    memcpy(op, data + 3 + sl, ol);

    if (data[0] & 2) {
        fuzz_block(st, sl, op, ol);
        free(st);
        free(op);
        return 0;
    }
    feat_buf_t out = FEAT_BUF_INIT, again = FEAT_BUF_INIT;
    int64_t ts;
    feat_err_t hdr = feat_tile_operand_ts(op, ol, &ts);
    feat_err_t rc = feat_tile_fold(&table, k, st, sl, op, ol, &out);
    FUZZ_CHECK(rc == FEAT_OK || rc == FEAT_ERR_CORRUPT || rc == FEAT_ERR_NOMEM, "fold returned %d", rc);
    if (hdr != FEAT_OK) FUZZ_CHECK(rc == FEAT_ERR_CORRUPT, "fold took an operand without a header");
    if (rc != FEAT_OK) {
        FUZZ_CHECK(out.len == 0, "a failed fold left %zu bytes", out.len);
    } else {
        FUZZ_CHECK(out.len >= 3 && (unsigned char)out.data[0] == FEAT_TILE_V1, "fold wrote no version 1 state");
        char *o = malloc(out.len);
        memcpy(o, out.data, out.len);
        feat_err_t rr = read_state(k, o, out.len);
        FUZZ_CHECK(rr == FEAT_OK || rr == FEAT_ERR_NOMEM, "a folded state does not read back: %d", rr);
        feat_err_t r2 = feat_tile_fold(&table, k, o, out.len, op, ol, &again);
        FUZZ_CHECK(r2 == FEAT_OK || r2 == FEAT_ERR_NOMEM, "a folded state does not fold again: %d", r2);
        free(o);
    }
    (void)read_state(k, st, sl);
    feat_buf_free(&out);
    feat_buf_free(&again);
    free(st);
    free(op);
    return 0;
}
