/*
 * tests/unit/test_tile.c — aggregation tiles (store/tile.h): tile arithmetic
 * (ts <= 0, boundaries), operands, the fold and the window reader against an
 * independent computation over the raw events (every function, window
 * edges, lifetime), empty values and NOT_FOUND, stddev against a two-pass
 * formula, last/first/last_n ordering and ties, approx_distinct and
 * approx_quantile within their bounds, folding order against merging,
 * damaged bytes (FEAT_ERR_CORRUPT, never a read outside them) and an
 * accumulator of an unknown spec id (dropped).
 *
 * The table is built by hand: plain features amount (double), merchant
 * (string), items (int64), flag (bool) with stable ids 1..4, then one
 * aggregated feature per spec and window (50 ms, 10 ms, lifetime), T = 10 ms.
 * Tiles are rebuilt per as_of from the events with ts <= as_of, as the
 * point-in-time path does.
 */
#include <check.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "stats/kll.h"
#include "store/row.h"
#include "store/tile.h"

enum { F_AMOUNT, F_MERCHANT, F_ITEMS, F_FLAG, NPLAIN };
#define T_MS 10
static const int64_t WINDOWS[] = {50, 10, 0};
#define NWIN 3

static const feat_agg_spec_t SPECS[] = {
    {101, FEAT_AGG_COUNT, F_AMOUNT, 0, 0},
    {102, FEAT_AGG_SUM, F_AMOUNT, 0, 0},
    {103, FEAT_AGG_SUM, F_ITEMS, 0, 0},
    {104, FEAT_AGG_MEAN, F_AMOUNT, 0, 0},
    {105, FEAT_AGG_MIN, F_ITEMS, 0, 0},
    {106, FEAT_AGG_MAX, F_AMOUNT, 0, 0},
    {107, FEAT_AGG_STDDEV, F_AMOUNT, 0, 0},
    {108, FEAT_AGG_LAST, F_MERCHANT, 0, 0},
    {109, FEAT_AGG_FIRST, F_MERCHANT, 0, 0},
    {110, FEAT_AGG_LAST_N, F_MERCHANT, 3, 0},
    {111, FEAT_AGG_APPROX_DISTINCT, F_MERCHANT, 0, 0},
    {112, FEAT_AGG_APPROX_QUANTILE, F_AMOUNT, 0, 0.5},
    {113, FEAT_AGG_LAST_N, F_AMOUNT, 4, 0},
    {114, FEAT_AGG_MEAN, F_ITEMS, 0, 0},
    {115, FEAT_AGG_MAX, F_ITEMS, 0, 0},
    {116, FEAT_AGG_MIN, F_AMOUNT, 0, 0},
    {117, FEAT_AGG_LAST, F_FLAG, 0, 0},
    {118, FEAT_AGG_LAST_N, F_FLAG, 2, 0},
    {119, FEAT_AGG_LAST_N, F_ITEMS, 2, 0},
    {120, FEAT_AGG_COUNT, F_FLAG, 0, 0},
};
#define NSPECS (sizeof(SPECS) / sizeof(SPECS[0]))
#define NFEAT (NPLAIN + NSPECS * NWIN)

static feat_agg_spec_t specs[NSPECS];
static feat_feature_conf_t feats[NFEAT];
static feat_table_conf_t conf;
static uint16_t ids[NFEAT];
static int16_t index_of_id[NFEAT + 1];
static feat_table_t table;

static void setup(void) {
    memcpy(specs, SPECS, sizeof(specs));
    memset(feats, 0, sizeof(feats));
    static const feat_ftype_t pt[NPLAIN] = {FEAT_FT_DOUBLE, FEAT_FT_STRING, FEAT_FT_INT64, FEAT_FT_BOOL};
    for (int i = 0; i < NPLAIN; i++) {
        feats[i].type = pt[i];
        feats[i].agg = -1;
    }
    for (size_t j = 0; j < NSPECS; j++)
        for (int w = 0; w < NWIN; w++) {
            feat_feature_conf_t *f = &feats[NPLAIN + j * NWIN + (size_t)w];
            f->agg = (int32_t)j;
            f->window_ms = WINDOWS[w];
            f->type = FEAT_FT_INT64; /* not read by tile.c */
        }
    memset(&conf, 0, sizeof(conf));
    conf.nfeatures = NFEAT;
    conf.features = feats;
    conf.nplain = NPLAIN;
    conf.naggs = NSPECS;
    conf.aggs = specs;
    conf.agg_tile_ms = T_MS;
    conf.agg_max_tiles = 100;
    conf.agg_lifetime = 1;
    for (size_t i = 0; i < NFEAT; i++) {
        ids[i] = (uint16_t)(i + 1);
        index_of_id[i + 1] = (int16_t)i;
    }
    index_of_id[0] = -1;
    table.conf = &conf;
    table.index = 0;
    table.ids = ids;
    table.index_of_id = index_of_id;
    table.max_id = NFEAT;
}

static uint16_t agg_feature(size_t spec, int win) { return (uint16_t)(NPLAIN + spec * NWIN + (size_t)win); }

/* ---- events and tiles ---------------------------------------------------- */

typedef struct ev {
    int64_t ts, off;
    int32_t part;
    int has[NPLAIN];
    double amount;
    char merchant[24];
    int64_t items;
    int flag;
} ev_t;

static size_t ev_values(const ev_t *e, uint16_t *fidx, feat_value_t *v) {
    size_t n = 0;
    memset(v, 0, NPLAIN * sizeof(*v));
    if (e->has[F_AMOUNT]) { fidx[n] = F_AMOUNT; v[n].type = FEAT_FT_DOUBLE; v[n].v.d = e->amount; n++; }
    if (e->has[F_MERCHANT]) {
        fidx[n] = F_MERCHANT; v[n].type = FEAT_FT_STRING; v[n].v.s = e->merchant;
        v[n].slen = (uint32_t)strlen(e->merchant); n++;
    }
    if (e->has[F_ITEMS]) { fidx[n] = F_ITEMS; v[n].type = FEAT_FT_INT64; v[n].v.i = e->items; n++; }
    if (e->has[F_FLAG]) { fidx[n] = F_FLAG; v[n].type = FEAT_FT_BOOL; v[n].v.b = e->flag; n++; }
    return n;
}

typedef struct tile {
    int level;              /* 0 .. FEAT_TILE_LEVELS - 1; the lifetime tile: 0 */
    int64_t k;
    feat_buf_t st;
} tile_t;

typedef struct tiles {
    tile_t t[256];
    size_t n;
} tiles_t;

static feat_buf_t *tile_get_level(tiles_t *ts, int level, int64_t k) {
    for (size_t i = 0; i < ts->n; i++)
        if (ts->t[i].k == k && ts->t[i].level == level) return &ts->t[i].st;
    ck_assert_uint_lt(ts->n, 256);
    ts->t[ts->n].level = level;
    ts->t[ts->n].k = k;
    feat_buf_t z = FEAT_BUF_INIT;
    ts->t[ts->n].st = z;
    return &ts->t[ts->n++].st;
}

static feat_buf_t *tile_get(tiles_t *ts, int64_t k) { return tile_get_level(ts, 0, k); }

static void tiles_free(tiles_t *ts) {
    for (size_t i = 0; i < ts->n; i++) feat_buf_free(&ts->t[i].st);
    ts->n = 0;
}

static void fold_into(feat_buf_t *st, int64_t k, const feat_buf_t *op) {
    feat_buf_t out = FEAT_BUF_INIT;
    ck_assert_int_eq(feat_tile_fold(&table, k, st->data, st->len, op->data, op->len, &out), FEAT_OK);
    feat_buf_free(st);
    *st = out;
}

/* Folds every event with ts <= as_of (in array order = write order) into
 * its tile and the lifetime tile. */
static void build(tiles_t *ts, const ev_t *evs, size_t n, int64_t as_of) {
    feat_buf_t op = FEAT_BUF_INIT;
    uint16_t fidx[NPLAIN];
    feat_value_t v[NPLAIN];
    for (size_t i = 0; i < n; i++) {
        if (evs[i].ts > as_of) continue;
        size_t nv = ev_values(&evs[i], fidx, v);
        if (!feat_tile_operand(&table, evs[i].ts, evs[i].off, evs[i].part, fidx, v, nv, &op)) continue;
        int64_t k = feat_tile_index(evs[i].ts, T_MS);
        fold_into(tile_get(ts, k), k, &op);
        for (int l = 1; l < FEAT_TILE_LEVELS; l++) { /* coarse levels, when the table keeps them */
            if (conf.agg_level_ms[l] <= 0) continue;
            int64_t kl = feat_tile_index(evs[i].ts, conf.agg_level_ms[l]);
            fold_into(tile_get_level(ts, l, kl), feat_tile_id(l, kl), &op);
        }
        fold_into(tile_get(ts, FEAT_TILE_LIFETIME), FEAT_TILE_LIFETIME, &op);
    }
    feat_buf_free(&op);
}

static int cmp_tile(const void *a, const void *b) {
    const tile_t *p = a, *q = b;
    if (p->level != q->level) return p->level - q->level;
    return (p->k > q->k) - (p->k < q->k);
}

/* Reads features fidx as of as_of from the tiles (visited ascending). */
static void read_tiles(feat_agg_reader_t *r, tiles_t *ts, int64_t as_of, const uint16_t *fidx, size_t n,
                       feat_value_t *out, feat_buf_t *strings) {
    qsort(ts->t, ts->n, sizeof(tile_t), cmp_tile);
    ck_assert_int_eq(feat_agg_begin(r, &table, as_of, fidx, n), FEAT_OK);
    int64_t kfrom, kto;
    int life;
    feat_agg_range(r, &kfrom, &kto, &life);
    /* as the store does: each level's ranges, level by level, ascending (the
     * tiles are sorted so), then the lifetime tile */
    const tile_t *lifetime = NULL;
    for (size_t i = 0; i < ts->n; i++) {
        int64_t k = ts->t[i].k;
        const int64_t *lo, *hi;
        if (k == FEAT_TILE_LIFETIME) { lifetime = &ts->t[i]; continue; }
        size_t nr = feat_agg_ranges(r, ts->t[i].level, &lo, &hi), g = 0;
        while (g < nr && !(k >= lo[g] && k <= hi[g])) g++;
        if (g < nr)
            ck_assert_int_eq(feat_agg_add_level(r, ts->t[i].level, k, ts->t[i].st.data, ts->t[i].st.len), FEAT_OK);
    }
    if (life && lifetime)
        ck_assert_int_eq(feat_agg_add(r, FEAT_TILE_LIFETIME, lifetime->st.data, lifetime->st.len), FEAT_OK);
    ck_assert_int_eq(feat_agg_finish(r, out, strings), FEAT_OK);
}

/* ---- the independent computation ---------------------------------------- */

static int64_t floordiv(int64_t a, int64_t b) { return a / b - (a % b < 0); }

static int in_window(const ev_t *e, int64_t as_of, int64_t w) {
    if (e->ts > as_of) return 0;
    if (w == 0) return 1;
    return e->ts > floordiv(as_of - w, T_MS) * T_MS;
}

static int ev_newer(const ev_t *a, const ev_t *b) {
    if (a->ts != b->ts) return a->ts > b->ts;
    if (a->off != b->off) return a->off > b->off;
    return a->part > b->part;
}

static void ref_json(feat_buf_t *b, const ev_t *e, int input) {
    if (input == F_AMOUNT) feat_buf_printf(b, "%.17g", e->amount);
    else if (input == F_ITEMS) feat_buf_printf(b, "%" PRId64, e->items);
    else if (input == F_FLAG) feat_buf_puts(b, e->flag ? "true" : "false");
    else feat_buf_json_str(b, e->merchant, strlen(e->merchant));
}

/* Checks one read value of spec j against the events in its window. */
static void check_value(size_t j, const ev_t *evs, size_t n, int64_t as_of, int64_t w, const feat_value_t *v) {
    const feat_agg_spec_t *s = &SPECS[j];
    int in = (int)s->input;
    size_t cnt = 0;
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    int64_t isum = 0, imin = INT64_MAX, imax = INT64_MIN, max_ts = 0;
    const ev_t *last = NULL, *first = NULL;
    static double vals[100000];
    for (size_t i = 0; i < n; i++) {
        const ev_t *e = &evs[i];
        if (!e->has[in] || !in_window(e, as_of, w)) continue;
        double x = in == F_ITEMS ? (double)e->items : e->amount;
        if (cnt == 0 || e->ts > max_ts) max_ts = e->ts;
        vals[cnt++] = x;
        sum += x;
        if (x < mn) mn = x;
        if (x > mx) mx = x;
        isum += e->items;
        if (e->items < imin) imin = e->items;
        if (e->items > imax) imax = e->items;
        if (!last || ev_newer(e, last)) last = e;
        if (!first || ev_newer(first, e)) first = e;
    }
    char what[96];
    snprintf(what, sizeof(what), "spec %u (fn %d) as of %" PRId64 " window %" PRId64 " n %zu", s->id, s->fn,
             as_of, w, cnt);
    int natural = s->fn == FEAT_AGG_COUNT || s->fn == FEAT_AGG_SUM || s->fn == FEAT_AGG_LAST_N ||
                  s->fn == FEAT_AGG_APPROX_DISTINCT;
    size_t need = s->fn == FEAT_AGG_STDDEV ? 2 : 1;
    if (cnt < need && !natural) {
        ck_assert_msg(v->status == FEAT_ST_NOT_FOUND, "%s: want NOT_FOUND, got status %d", what, v->status);
        return;
    }
    ck_assert_msg(v->status == FEAT_ST_PRESENT, "%s: not present", what);
    ck_assert_msg(v->ts == (cnt ? max_ts : 0), "%s: ts %" PRId64 " want %" PRId64, what, v->ts, max_ts);
    double tol = 1e-9 * (fabs(sum) + 1);
    switch (s->fn) {
    case FEAT_AGG_COUNT:
        ck_assert_int_eq(v->type, FEAT_FT_INT64);
        ck_assert_msg(v->v.i == (int64_t)cnt, "%s: count %" PRId64, what, v->v.i);
        break;
    case FEAT_AGG_SUM:
        if (in == F_ITEMS) {
            ck_assert_int_eq(v->type, FEAT_FT_INT64);
            ck_assert_msg(v->v.i == isum, "%s: sum %" PRId64 " want %" PRId64, what, v->v.i, isum);
        } else {
            ck_assert_int_eq(v->type, FEAT_FT_DOUBLE);
            ck_assert_msg(fabs(v->v.d - sum) <= tol, "%s: sum %.17g want %.17g", what, v->v.d, sum);
        }
        break;
    case FEAT_AGG_MEAN:
        ck_assert_int_eq(v->type, FEAT_FT_DOUBLE);
        ck_assert_msg(fabs(v->v.d - sum / (double)cnt) <= tol / (double)cnt, "%s: mean %.17g want %.17g", what,
                      v->v.d, sum / (double)cnt);
        break;
    case FEAT_AGG_MIN:
    case FEAT_AGG_MAX:
        if (in == F_ITEMS) {
            ck_assert_int_eq(v->type, FEAT_FT_INT64);
            ck_assert_msg(v->v.i == (s->fn == FEAT_AGG_MIN ? imin : imax), "%s: %" PRId64, what, v->v.i);
        } else {
            ck_assert_int_eq(v->type, FEAT_FT_DOUBLE);
            ck_assert_msg(v->v.d == (s->fn == FEAT_AGG_MIN ? mn : mx), "%s: %.17g", what, v->v.d);
        }
        break;
    case FEAT_AGG_STDDEV: {
        double mean = sum / (double)cnt, ss = 0;
        for (size_t i = 0; i < cnt; i++) ss += (vals[i] - mean) * (vals[i] - mean);
        double sd = sqrt(ss / (double)(cnt - 1));
        ck_assert_int_eq(v->type, FEAT_FT_DOUBLE);
        ck_assert_msg(fabs(v->v.d - sd) <= 1e-9 * (sd + 1), "%s: stddev %.17g want %.17g", what, v->v.d, sd);
        break;
    }
    case FEAT_AGG_LAST:
    case FEAT_AGG_FIRST: {
        const ev_t *e = s->fn == FEAT_AGG_LAST ? last : first;
        if (in == F_FLAG) {
            ck_assert_int_eq(v->type, FEAT_FT_BOOL);
            ck_assert_msg(v->v.b == e->flag, "%s", what);
        } else {
            ck_assert_int_eq(v->type, FEAT_FT_STRING);
            ck_assert_msg(v->slen == strlen(e->merchant) && memcmp(v->v.s, e->merchant, v->slen) == 0,
                          "%s: %.*s want %s", what, (int)v->slen, v->v.s, e->merchant);
        }
        break;
    }
    case FEAT_AGG_LAST_N: {
        /* selection of the N newest by (ts, offset, partition) */
        const ev_t *pick[100];
        size_t np = 0;
        for (size_t r = 0; r < s->n; r++) {
            const ev_t *best = NULL;
            for (size_t i = 0; i < n; i++) {
                const ev_t *e = &evs[i];
                if (!e->has[in] || !in_window(e, as_of, w)) continue;
                int taken = 0;
                for (size_t q = 0; q < np; q++) taken |= pick[q] == e;
                if (!taken && (!best || ev_newer(e, best))) best = e;
            }
            if (!best) break;
            pick[np++] = best;
        }
        feat_buf_t b = FEAT_BUF_INIT;
        feat_buf_putc(&b, '[');
        for (size_t q = 0; q < np; q++) {
            if (q) feat_buf_putc(&b, ',');
            ref_json(&b, pick[q], in);
        }
        feat_buf_putc(&b, ']');
        ck_assert_int_eq(v->type, FEAT_FT_STRING);
        ck_assert_msg(v->slen == b.len && memcmp(v->v.s, b.data, b.len) == 0, "%s: %.*s want %.*s", what,
                      (int)v->slen, v->v.s, (int)b.len, b.data);
        feat_buf_free(&b);
        break;
    }
    case FEAT_AGG_APPROX_DISTINCT: {
        size_t d = 0;
        for (size_t i = 0; i < n; i++) {
            const ev_t *e = &evs[i];
            if (!e->has[in] || !in_window(e, as_of, w)) continue;
            int seen = 0;
            for (size_t q = 0; q < i && !seen; q++)
                seen = evs[q].has[in] && in_window(&evs[q], as_of, w) && strcmp(evs[q].merchant, e->merchant) == 0;
            d += !seen;
        }
        ck_assert_int_eq(v->type, FEAT_FT_INT64);
        ck_assert_msg(llabs(v->v.i - (int64_t)d) <= 1, "%s: distinct %" PRId64 " want %zu", what, v->v.i, d);
        break;
    }
    case FEAT_AGG_APPROX_QUANTILE: {
        size_t le = 0, lt = 0;
        for (size_t i = 0; i < cnt; i++) {
            le += vals[i] <= v->v.d;
            lt += vals[i] < v->v.d;
        }
        /* the returned value holds the q-quantile's rank within the error */
        double eps = 0.05;
        ck_assert_int_eq(v->type, FEAT_FT_DOUBLE);
        ck_assert_msg((double)le / (double)cnt >= s->q - eps && (double)lt / (double)cnt <= s->q + eps,
                      "%s: quantile %.17g has rank [%zu, %zu] of %zu", what, v->v.d, lt, le, cnt);
        break;
    }
    default:
        ck_abort_msg("unknown fn");
    }
}

/* Reads every aggregated feature as of as_of and checks each. */
static void check_all(feat_agg_reader_t *r, const ev_t *evs, size_t n, int64_t as_of) {
    tiles_t *ts = calloc(1, sizeof(*ts));
    build(ts, evs, n, as_of);
    uint16_t fidx[NFEAT];
    feat_value_t out[NFEAT];
    size_t m = 0;
    for (size_t j = 0; j < NSPECS; j++)
        for (int w = 0; w < NWIN; w++) fidx[m++] = agg_feature(j, w);
    feat_buf_t strings = FEAT_BUF_INIT;
    read_tiles(r, ts, as_of, fidx, m, out, &strings);
    for (size_t j = 0, i = 0; j < NSPECS; j++)
        for (int w = 0; w < NWIN; w++, i++) check_value(j, evs, n, as_of, WINDOWS[w], &out[i]);
    feat_buf_free(&strings);
    tiles_free(ts);
    free(ts);
}

static uint64_t rng = 42;
static uint64_t rnd(void) { return feat_splitmix64_mix(rng++); }

static void random_events(ev_t *evs, size_t n, int64_t lo, int64_t hi, int nmerch) {
    int64_t off[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        ev_t *e = &evs[i];
        memset(e, 0, sizeof(*e));
        e->ts = lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
        e->part = (int32_t)(rnd() % 2);
        e->off = off[e->part]++;
        for (int f = 0; f < NPLAIN; f++) e->has[f] = rnd() % 5 != 0;
        e->amount = (double)(int64_t)(rnd() % 200000) / 100.0 - 500.0;
        snprintf(e->merchant, sizeof(e->merchant), "m\"%d\\", (int)(rnd() % (uint64_t)nmerch));
        e->items = (int64_t)(rnd() % 1000) - 300;
        e->flag = (int)(rnd() % 2);
    }
}

/* ---- tests ----------------------------------------------------------------- */

START_TEST(test_tile_index) {
    /* tile k holds k*T < ts <= (k+1)*T */
    ck_assert_int_eq(feat_tile_index(1, 10), 0);
    ck_assert_int_eq(feat_tile_index(10, 10), 0);
    ck_assert_int_eq(feat_tile_index(11, 10), 1);
    ck_assert_int_eq(feat_tile_index(0, 10), -1);
    ck_assert_int_eq(feat_tile_index(-9, 10), -1);
    ck_assert_int_eq(feat_tile_index(-10, 10), -2);
    ck_assert_int_eq(feat_tile_index(-11, 10), -2);
    ck_assert_int_eq(feat_tile_index(-1, 1), -2);
    ck_assert_int_eq(feat_tile_index(INT64_MAX, 10), (INT64_MAX - 1) / 10);
    ck_assert(feat_tile_index(INT64_MIN, 1) == INT64_MIN);   /* saturates, no overflow */
    ck_assert(feat_tile_index(INT64_MIN, 10) == INT64_MIN / 10 - 1);
    for (int64_t ts = -1000; ts <= 1000; ts++) {
        int64_t k = feat_tile_index(ts, 60);
        ck_assert(k * 60 < ts && ts <= (k + 1) * 60);
    }
    /* floor((t - w) / T) */
    ck_assert_int_eq(feat_tile_window_start(100, 50, 10), 5);
    ck_assert_int_eq(feat_tile_window_start(105, 50, 10), 5);
    ck_assert_int_eq(feat_tile_window_start(0, 50, 10), -5);
    ck_assert_int_eq(feat_tile_window_start(-1, 50, 10), -6);
    ck_assert_int_eq(feat_tile_window_start(-55, 50, 10), -11);
    ck_assert(feat_tile_window_start(INT64_MIN + 5, 50, 10) == floordiv(INT64_MIN, 10));
}
END_TEST

START_TEST(test_operand) {
    feat_buf_t op = FEAT_BUF_INIT;
    ev_t e;
    memset(&e, 0, sizeof(e));
    e.ts = -7; e.off = 99; e.part = 3;
    e.has[F_AMOUNT] = e.has[F_ITEMS] = 1;
    e.amount = 2.5; e.items = -4;
    uint16_t fidx[NPLAIN];
    feat_value_t v[NPLAIN];
    size_t n = ev_values(&e, fidx, v);
    ck_assert_int_eq(feat_tile_operand(&table, e.ts, e.off, e.part, fidx, v, n, &op), 1);
    int64_t ts = 0;
    ck_assert_int_eq(feat_tile_operand_ts(op.data, op.len, &ts), FEAT_OK);
    ck_assert(ts == -7);
    ck_assert_int_eq(op.len, 21 + 4 + 11 + 4 + 11);
    ck_assert_int_eq((unsigned char)op.data[0], FEAT_TILE_V1);
    ck_assert_int_eq(feat_tile_operand_ts(op.data, 20, &ts), FEAT_ERR_CORRUPT);
    /* entries: the input's key (unnamed features here: their index), then
     * an offline row's entry with id 0: amount (0), items (2) */
    feat_row_entry_t re;
    int has;
    size_t pos = 21;
    ck_assert_uint_eq(feat_get_le32((const unsigned char *)op.data + pos), F_AMOUNT);
    pos += 4;
    ck_assert_int_eq(feat_row_next(op.data, op.len, &pos, 0, &re, &has), FEAT_OK);
    ck_assert(has && re.id == 0 && re.val.v.d == 2.5);
    ck_assert_uint_eq(feat_get_le32((const unsigned char *)op.data + pos), F_ITEMS);
    pos += 4;
    ck_assert_int_eq(feat_row_next(op.data, op.len, &pos, 0, &re, &has), FEAT_OK);
    ck_assert(has && re.id == 0 && re.val.v.i == -4);
    /* a value of the wrong type, or of a feature no aggregation reads: nothing */
    v[0].type = FEAT_FT_INT64;
    ck_assert_int_eq(feat_tile_operand(&table, 1, 1, 0, fidx, v, 1, &op), 0);
    conf.naggs = 1; /* only count(amount) */
    fidx[0] = F_ITEMS;
    v[0].type = FEAT_FT_INT64;
    ck_assert_int_eq(feat_tile_operand(&table, 1, 1, 0, fidx, v, 1, &op), 0);
    conf.naggs = NSPECS;
    feat_buf_free(&op);
}
END_TEST

/* Every function and window against the events, for as_of values on and
 * off tile boundaries, at and below 0. */
/* With coarse levels (2 and 6 tiles of 10 ms, and 3 and 9): the reader
 * covers each window with whole coarse tiles inside and fine ones at the
 * edges; every value still equals the independent computation. */
START_TEST(test_levels_against_events) {
    static ev_t evs[600];
    random_events(evs, 600, -400, 400, 40);
    feat_agg_reader_t *r = feat_agg_reader_new();
    static const int64_t levels[][2] = {{2 * T_MS, 6 * T_MS}, {3 * T_MS, 9 * T_MS}, {5 * T_MS, 0}};
    static const int64_t as_of[] = {-500, -401, -400, -395, -120, -100, -1, 0, 1, 9, 10, 55, 399, 400, 1000};
    for (size_t l = 0; l < 3; l++) {
        conf.agg_level_ms[0] = T_MS;
        conf.agg_level_ms[1] = levels[l][0];
        conf.agg_level_ms[2] = levels[l][1];
        for (size_t i = 0; i < sizeof(as_of) / sizeof(as_of[0]); i++) check_all(r, evs, 600, as_of[i]);
        /* a 50 ms window as of 55 (tiles 1..5) reads coarse tiles, not only fine ones */
        uint16_t f = agg_feature(0, 0);
        ck_assert_int_eq(feat_agg_begin(r, &table, 55, &f, 1), FEAT_OK);
        const int64_t *lo, *hi;
        ck_assert_uint_gt(feat_agg_ranges(r, 1, &lo, &hi) + feat_agg_ranges(r, 2, &lo, &hi), 0);
    }
    memset(conf.agg_level_ms, 0, sizeof(conf.agg_level_ms));
    feat_agg_reader_destroy(r);
}
END_TEST

START_TEST(test_against_events) {
    static ev_t evs[600];
    random_events(evs, 600, -400, 400, 40);
    feat_agg_reader_t *r = feat_agg_reader_new();
    ck_assert_ptr_nonnull(r);
    static const int64_t as_of[] = {-500, -401, -400, -395, -120, -100, -1, 0, 1, 9, 10, 55, 399, 400, 1000};
    for (size_t i = 0; i < sizeof(as_of) / sizeof(as_of[0]); i++) check_all(r, evs, 600, as_of[i]);
    feat_agg_reader_destroy(r);
}
END_TEST

/* Events exactly at the window's edges. */
START_TEST(test_window_edges) {
    /* as_of 100, W 50, T 10: floor_T(50) = 50, so (50, 100] */
    static const int64_t tss[] = {49, 50, 51, 60, 61, 99, 100, 101};
    ev_t evs[8];
    memset(evs, 0, sizeof(evs));
    for (int i = 0; i < 8; i++) {
        evs[i].ts = tss[i];
        evs[i].off = i;
        evs[i].has[F_AMOUNT] = 1;
        evs[i].amount = 1 << i;
    }
    feat_agg_reader_t *r = feat_agg_reader_new();
    tiles_t *ts = calloc(1, sizeof(*ts));
    /* tiles from every event (an online read as of 100, before 101 arrived) */
    build(ts, evs, 7, 1000);
    uint16_t f[2] = {agg_feature(1, 0), agg_feature(1, 1)}; /* sum(amount) 50, 10 */
    feat_value_t out[2];
    feat_buf_t strings = FEAT_BUF_INIT;
    read_tiles(r, ts, 100, f, 2, out, &strings);
    ck_assert(out[0].v.d == 4 + 8 + 16 + 32 + 64);  /* 51 .. 100 */
    ck_assert(out[1].v.d == 32 + 64);                /* (90, 100]: 99, 100 */
    ck_assert(out[0].ts == 100 && out[1].ts == 100);
    /* as of 105 (t - W = 55 is inside tile 5): (50, 105]; the tile of 101 is read too */
    tiles_free(ts);
    build(ts, evs, 8, 1000);
    read_tiles(r, ts, 105, f, 2, out, &strings);
    ck_assert(out[0].v.d == 4 + 8 + 16 + 32 + 64 + 128);
    ck_assert(out[0].ts == 101);
    /* as of 50: (0, 50] holds 49 and 50 */
    read_tiles(r, ts, 50, f, 2, out, &strings);
    ck_assert(out[0].v.d == 1 + 2);
    ck_assert(out[1].v.d == 1 + 2);  /* (40, 50] */
    /* as of 0 and -1: nothing, sum 0 PRESENT with ts 0 */
    read_tiles(r, ts, 0, f, 2, out, &strings);
    ck_assert(out[0].status == FEAT_ST_PRESENT && out[0].v.d == 0 && out[0].ts == 0);
    int64_t kf, kt;
    int life;
    feat_agg_range(r, &kf, &kt, &life);
    ck_assert(kf == -5 && kt == -1 && !life);
    feat_buf_free(&strings);
    tiles_free(ts);
    free(ts);
    feat_agg_reader_destroy(r);
}
END_TEST

/* No tile at all: each function's empty value or NOT_FOUND; stddev of one
 * value NOT_FOUND; a plain feature is refused. */
START_TEST(test_empty) {
    feat_agg_reader_t *r = feat_agg_reader_new();
    uint16_t fidx[NSPECS];
    feat_value_t out[NSPECS];
    for (size_t j = 0; j < NSPECS; j++) fidx[j] = agg_feature(j, 0);
    ck_assert_int_eq(feat_agg_begin(r, &table, 1000, fidx, NSPECS), FEAT_OK);
    feat_buf_t strings = FEAT_BUF_INIT;
    feat_buf_puts(&strings, "before");
    ck_assert_int_eq(feat_agg_finish(r, out, &strings), FEAT_OK);
    for (size_t j = 0; j < NSPECS; j++) {
        feat_agg_fn_t fn = SPECS[j].fn;
        ck_assert(out[j].ts == 0);
        switch (fn) {
        case FEAT_AGG_COUNT:
        case FEAT_AGG_APPROX_DISTINCT:
            ck_assert(out[j].status == FEAT_ST_PRESENT && out[j].type == FEAT_FT_INT64 && out[j].v.i == 0);
            break;
        case FEAT_AGG_SUM:
            ck_assert(out[j].status == FEAT_ST_PRESENT);
            if (SPECS[j].input == F_ITEMS) ck_assert(out[j].type == FEAT_FT_INT64 && out[j].v.i == 0);
            else ck_assert(out[j].type == FEAT_FT_DOUBLE && out[j].v.d == 0);
            break;
        case FEAT_AGG_LAST_N:
            ck_assert(out[j].status == FEAT_ST_PRESENT && out[j].type == FEAT_FT_STRING);
            ck_assert(out[j].slen == 2 && memcmp(out[j].v.s, "[]", 2) == 0);
            break;
        default:
            ck_assert_msg(out[j].status == FEAT_ST_NOT_FOUND, "fn %d", fn);
        }
    }
    ck_assert(memcmp(strings.data, "before", 6) == 0); /* appended, not reset */
    /* one value: stddev NOT_FOUND, mean present */
    ev_t e;
    memset(&e, 0, sizeof(e));
    e.ts = 5;
    e.has[F_AMOUNT] = 1;
    e.amount = 3;
    tiles_t *ts = calloc(1, sizeof(*ts));
    build(ts, &e, 1, 5);
    uint16_t f2[2] = {agg_feature(6, 0), agg_feature(3, 0)};
    read_tiles(r, ts, 5, f2, 2, out, &strings);
    ck_assert(out[0].status == FEAT_ST_NOT_FOUND);
    ck_assert(out[1].status == FEAT_ST_PRESENT && out[1].v.d == 3 && out[1].ts == 5);
    /* a plain feature, an index past the table */
    uint16_t bad = F_AMOUNT;
    ck_assert_int_eq(feat_agg_begin(r, &table, 0, &bad, 1), FEAT_ERR_INVALID);
    bad = NFEAT;
    ck_assert_int_eq(feat_agg_begin(r, &table, 0, &bad, 1), FEAT_ERR_INVALID);
    feat_buf_free(&strings);
    tiles_free(ts);
    free(ts);
    feat_agg_reader_destroy(r);
    feat_agg_reader_destroy(NULL);
}
END_TEST

/* last, first, last_n: (ts, offset, partition) order whatever the write
 * order; ties on ts broken by offset, then partition. */
START_TEST(test_order_ties) {
    ev_t evs[6];
    memset(evs, 0, sizeof(evs));
    static const struct { int64_t ts, off; int32_t part; const char *m; } d[6] = {
        {20, 5, 0, "c"}, {20, 7, 0, "e"}, {20, 5, 1, "d"}, {15, 9, 0, "b"}, {21, 1, 0, "f"}, {12, 100, 0, "a"},
    };
    for (int i = 0; i < 6; i++) {
        evs[i].ts = d[i].ts;
        evs[i].off = d[i].off;
        evs[i].part = d[i].part;
        evs[i].has[F_MERCHANT] = 1;
        snprintf(evs[i].merchant, sizeof(evs[i].merchant), "%s", d[i].m);
    }
    feat_agg_reader_t *r = feat_agg_reader_new();
    uint16_t f[3] = {agg_feature(7, 2), agg_feature(8, 2), agg_feature(9, 2)}; /* lifetime last, first, last_n 3 */
    feat_value_t out[3];
    feat_buf_t strings = FEAT_BUF_INIT;
    for (int perm = 0; perm < 6; perm++) { /* rotate the write order */
        ev_t w[6];
        for (int i = 0; i < 6; i++) w[i] = evs[(i + perm) % 6];
        tiles_t *ts = calloc(1, sizeof(*ts));
        build(ts, w, 6, 100);
        read_tiles(r, ts, 100, f, 3, out, &strings);
        ck_assert(out[0].slen == 1 && out[0].v.s[0] == 'f');
        ck_assert(out[1].slen == 1 && out[1].v.s[0] == 'a');
        ck_assert_msg(out[2].slen == 13 && memcmp(out[2].v.s, "[\"f\",\"e\",\"d\"]", 13) == 0, "%.*s",
                      (int)out[2].slen, out[2].v.s);
        ck_assert(out[0].ts == 21 && out[2].ts == 21);
        /* windowed: (10, 20] as of 20 → e, d, c */
        uint16_t g = agg_feature(9, 1);
        read_tiles(r, ts, 20, &g, 1, out, &strings);
        ck_assert_msg(out[0].slen == 13 && memcmp(out[0].v.s, "[\"e\",\"d\",\"c\"]", 13) == 0, "%.*s",
                      (int)out[0].slen, out[0].v.s);
        tiles_free(ts);
        free(ts);
    }
    feat_buf_free(&strings);
    feat_agg_reader_destroy(r);
}
END_TEST

/* One tile holding every event against the same events spread over many
 * tiles: integer functions agree exactly, floating ones to rounding; folding
 * is deterministic to the byte. */
START_TEST(test_fold_vs_merge) {
    static ev_t evs[300];
    random_events(evs, 300, 1, 10, 25); /* all in tile 0 */
    tiles_t *one = calloc(1, sizeof(*one)), *again = calloc(1, sizeof(*again));
    build(one, evs, 300, 10);
    build(again, evs, 300, 10);
    for (size_t i = 0; i < one->n; i++)
        ck_assert(one->t[i].st.len == again->t[i].st.len &&
                  memcmp(one->t[i].st.data, again->t[i].st.data, one->t[i].st.len) == 0);
    static ev_t spread[300];
    memcpy(spread, evs, sizeof(evs));
    for (size_t i = 0; i < 300; i++) spread[i].ts = evs[i].ts * 10 - 100; /* ts -90..0: tiles -10..-1 */
    tiles_t *many = calloc(1, sizeof(*many));
    build(many, spread, 300, 0);
    uint16_t f1[NSPECS], f2[NSPECS];
    for (size_t j = 0; j < NSPECS; j++) {
        f1[j] = agg_feature(j, 1); /* 10 ms: the one tile 0 as of 10 */
        f2[j] = agg_feature(j, 2); /* lifetime */
    }
    feat_value_t a[NSPECS], b[NSPECS];
    feat_buf_t sa = FEAT_BUF_INIT, sb = FEAT_BUF_INIT;
    feat_agg_reader_t *r = feat_agg_reader_new(), *r2 = feat_agg_reader_new();
    read_tiles(r, one, 10, f1, NSPECS, a, &sa);
    read_tiles(r2, many, 0, f2, NSPECS, b, &sb);
    for (size_t j = 0; j < NSPECS; j++) {
        feat_agg_fn_t fn = SPECS[j].fn;
        ck_assert(a[j].status == b[j].status && a[j].type == b[j].type);
        if (fn == FEAT_AGG_LAST || fn == FEAT_AGG_FIRST || fn == FEAT_AGG_LAST_N || fn == FEAT_AGG_APPROX_QUANTILE)
            continue; /* ts changed the order; quantiles are checked elsewhere */
        if (a[j].type == FEAT_FT_DOUBLE)
            ck_assert_msg(fabs(a[j].v.d - b[j].v.d) <= 1e-9 * (fabs(a[j].v.d) + 1), "spec %u: %.17g vs %.17g",
                          SPECS[j].id, a[j].v.d, b[j].v.d);
        else
            ck_assert_msg(a[j].v.i == b[j].v.i, "spec %u: %" PRId64 " vs %" PRId64, SPECS[j].id, a[j].v.i, b[j].v.i);
    }
    feat_buf_free(&sa);
    feat_buf_free(&sb);
    tiles_free(one); tiles_free(again); tiles_free(many);
    free(one); free(again); free(many);
    feat_agg_reader_destroy(r);
    feat_agg_reader_destroy(r2);
}
END_TEST

/* Many values: approx_distinct within 3 standard errors, approx_quantile
 * within the sketch's rank error, stddev against two passes. */
/* feat_tile_fold_many (the merge operator's and point in time's call) gives
 * the bytes of folding the same operands one at a time, from an empty tile
 * and from a folded one, with a damaged operand skipped in both; every
 * function, sketches included (the KLL compacts: 3000 values). */
START_TEST(test_fold_many_equals_one_by_one) {
    enum { N = 3000 };
    ev_t *evs = calloc(N, sizeof(ev_t));
    random_events(evs, N, 1, 9, 500);       /* one tile: 1 ms .. 9 ms */
    feat_buf_t *ops = calloc(N + 1, sizeof(feat_buf_t));
    const char **p = calloc(N + 1, sizeof(char *));
    size_t *l = calloc(N + 1, sizeof(size_t));
    size_t n = 0;
    for (size_t i = 0; i < N; i++) {
        uint16_t fidx[NPLAIN];
        feat_value_t v[NPLAIN];
        size_t nv = ev_values(&evs[i], fidx, v);
        if (!feat_tile_operand(&table, evs[i].ts, evs[i].off, evs[i].part, fidx, v, nv, &ops[n])) continue;
        if (n == 100) { /* a damaged operand among them: cut in its last entry, after others decoded */
            feat_buf_append(&ops[N], ops[n].data, ops[n].len - 1);
            p[n] = ops[N].data; l[n] = ops[N].len; n++;
            feat_buf_t z = FEAT_BUF_INIT;
            ops[n] = z;
            feat_tile_operand(&table, evs[i].ts, evs[i].off, evs[i].part, fidx, v, nv, &ops[n]);
        }
        p[n] = ops[n].data;
        l[n] = ops[n].len;
        n++;
    }
    ck_assert_uint_gt(n, 2000);
    for (size_t split = 0; split <= n; split += n / 3) {
        feat_buf_t one = FEAT_BUF_INIT, many = FEAT_BUF_INIT, head = FEAT_BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            feat_buf_t out = FEAT_BUF_INIT;
            feat_err_t rc = feat_tile_fold(&table, 0, one.data, one.len, p[i], l[i], &out);
            if (rc == FEAT_ERR_CORRUPT) { feat_buf_free(&out); continue; }
            ck_assert_int_eq(rc, FEAT_OK);
            feat_buf_free(&one);
            one = out;
        }
        /* the first split operands folded into a tile, then the rest onto it */
        ck_assert_int_eq(feat_tile_fold_many(&table, 0, NULL, 0, p, l, split, &head), FEAT_OK);
        ck_assert_int_eq(feat_tile_fold_many(&table, 0, head.len > 3 ? head.data : NULL, head.len > 3 ? head.len : 0,
                                             p + split, l + split, n - split, &many), FEAT_OK);
        if (one.len != many.len || memcmp(one.data, many.data, one.len) != 0) {
            size_t pos = 3;
            while (pos + 9 <= one.len && pos + 9 <= many.len) {
                uint32_t pl = feat_get_le32((const unsigned char *)one.data + pos + 5);
                uint32_t ml = feat_get_le32((const unsigned char *)many.data + pos + 5);
                if (pl != ml || memcmp(one.data + pos, many.data + pos, 9 + pl) != 0)
                    ck_abort_msg("split %zu: accumulator fn %d differs (%u vs %u bytes)", split,
                                 (int)(unsigned char)one.data[pos + 4], pl, ml);
                pos += 9 + pl;
            }
            ck_abort_msg("split %zu: lengths %zu vs %zu", split, one.len, many.len);
        }
        feat_buf_free(&one);
        feat_buf_free(&many);
        feat_buf_free(&head);
    }
    for (size_t i = 0; i <= N; i++) feat_buf_free(&ops[i]);
    free(ops);
    free(p);
    free(l);
    free(evs);
}
END_TEST

/* Blocks: folding events' operands into blocks, a few operands per merge
 * as RocksDB hands them over, gives in every block exactly the tiles of
 * every level that folding each event into each of its tiles one by one
 * gives (byte for byte); an operand of another block or a damaged one is
 * skipped; damaged blocks are refused. */
START_TEST(test_blocks) {
    enum { N = 700 };
    static ev_t evs[N];
    random_events(evs, N, -400, 400, 30);
    conf.agg_level_ms[0] = T_MS;
    conf.agg_level_ms[1] = 3 * T_MS;
    conf.agg_level_ms[2] = 9 * T_MS;
    ck_assert_int_eq(feat_tile_top_level(&conf), 2);
    int64_t S = feat_tile_level_ms(&conf, 2);
    tiles_t *ref = calloc(1, sizeof(tiles_t));
    /* the reference: every event folded into each level's tile, one by one */
    feat_buf_t op = FEAT_BUF_INIT;
    static feat_buf_t ops[N];
    static int64_t blk[N];
    size_t nops = 0;
    for (size_t i = 0; i < N; i++) {
        uint16_t fidx[NPLAIN];
        feat_value_t v[NPLAIN];
        size_t nv = ev_values(&evs[i], fidx, v);
        if (!feat_tile_operand(&table, evs[i].ts, evs[i].off, evs[i].part, fidx, v, nv, &op)) continue;
        for (int l = 0; l < FEAT_TILE_LEVELS; l++) {
            int64_t kl = feat_tile_index(evs[i].ts, feat_tile_level_ms(&conf, l));
            fold_into(tile_get_level(ref, l, kl), feat_tile_id(l, kl), &op);
        }
        feat_buf_t z = FEAT_BUF_INIT;
        ops[nops] = z;
        feat_buf_append(&ops[nops], op.data, op.len);
        blk[nops++] = feat_tile_index(evs[i].ts, S);
    }
    ck_assert_uint_lt(ref->n, 256);
    /* the blocks: each block's operands in write order, merged a few at a time */
    int64_t bmin = feat_tile_index(-400, S), bmax = feat_tile_index(400, S);
    size_t seen = 0;
    for (int64_t b = bmin; b <= bmax; b++) {
        feat_buf_t cur = FEAT_BUF_INIT, nxt = FEAT_BUF_INIT, bad = FEAT_BUF_INIT;
        const char *p[8];
        size_t l[8], np = 0;
        for (size_t i = 0; i <= nops; i++) {
            if (i < nops && blk[i] != b && blk[i] != b + 1) continue;
            if (i < nops) { /* the next block's operands ride along: skipped */
                p[np] = ops[i].data;
                l[np++] = ops[i].len;
            }
            if (i == nops / 2 && np < 8) { /* a damaged operand */
                feat_buf_reset(&bad);
                feat_buf_append(&bad, ops[i].data, 7);
                p[np] = bad.data;
                l[np++] = bad.len;
            }
            if (np == 8 || (i == nops && np) || (np && rnd() % 3 == 0)) {
                ck_assert_int_eq(feat_tile_block_fold(&table, b, cur.data, cur.len, p, l, np, &nxt), FEAT_OK);
                feat_buf_t t = cur;
                cur = nxt;
                nxt = t;
                np = 0;
            }
        }
        /* every tile in the block is the reference's, byte for byte */
        feat_block_iter_t it;
        feat_block_iter_init(&it, cur.data, cur.len);
        int r;
        while ((r = feat_block_iter_next(&it)) == 1) {
            int64_t span = S / feat_tile_level_ms(&conf, it.level);
            ck_assert_int_eq(floordiv(it.k, span), b);
            feat_buf_t *want = tile_get_level(ref, it.level, it.k);
            ck_assert_msg(want->len == it.slen && memcmp(want->data, it.state, it.slen) == 0,
                          "block %lld: level %d tile %lld differs", (long long)b, it.level, (long long)it.k);
            seen++;
        }
        ck_assert_int_eq(r, 0);
        /* damaged blocks: refused by the fold and the walk */
        if (cur.len > 20) {
            const char *q = ops[0].data;
            size_t ql = ops[0].len;
            ck_assert_int_eq(feat_tile_block_fold(&table, b, cur.data, cur.len - 1, &q, &ql, 1, &nxt), FEAT_ERR_CORRUPT);
            ck_assert_uint_eq(nxt.len, 0);
            feat_buf_t sw = FEAT_BUF_INIT; /* the first two tiles swapped: out of order */
            feat_block_iter_init(&it, cur.data, cur.len);
            ck_assert_int_eq(feat_block_iter_next(&it), 1);
            size_t a0 = 1, a1 = it.pos;
            ck_assert_int_eq(feat_block_iter_next(&it), 1);
            feat_buf_putc(&sw, FEAT_TILE_BLOCK);
            feat_buf_append(&sw, cur.data + a1, it.pos - a1);
            feat_buf_append(&sw, cur.data + a0, a1 - a0);
            feat_buf_append(&sw, cur.data + it.pos, cur.len - it.pos);
            feat_block_iter_init(&it, sw.data, sw.len);
            while ((r = feat_block_iter_next(&it)) == 1) {}
            ck_assert_int_eq(r, -1);
            sw.data[0] = 0x07; /* an unknown version */
            feat_block_iter_init(&it, sw.data, sw.len);
            ck_assert_int_eq(feat_block_iter_next(&it), -1);
            sw.data[0] = FEAT_TILE_V1; /* a tile of the layout before blocks: an empty block */
            feat_block_iter_init(&it, sw.data, sw.len);
            ck_assert_int_eq(feat_block_iter_next(&it), 0);
            feat_buf_free(&sw);
        }
        feat_buf_free(&cur);
        feat_buf_free(&nxt);
        feat_buf_free(&bad);
    }
    ck_assert_uint_eq(seen, ref->n); /* and no tile is missing */
    for (size_t i = 0; i < nops; i++) feat_buf_free(&ops[i]);
    feat_buf_free(&op);
    tiles_free(ref);
    free(ref);
    memset(conf.agg_level_ms, 0, sizeof(conf.agg_level_ms));
}
END_TEST

START_TEST(test_sketches) {
    enum { N = 20000 };
    ev_t *evs = calloc(N, sizeof(ev_t));
    static double sorted[N];
    double sum = 0;
    for (size_t i = 0; i < N; i++) {
        evs[i].ts = (int64_t)(i % 45) + 1;       /* tiles 0..4 */
        evs[i].off = (int64_t)i;
        evs[i].has[F_AMOUNT] = evs[i].has[F_MERCHANT] = 1;
        evs[i].amount = (double)(feat_splitmix64_mix(i) >> 11) * 0x1.0p-53 * 1e6;
        snprintf(evs[i].merchant, sizeof(evs[i].merchant), "u%zu", i % 7000);
        sorted[i] = evs[i].amount;
        sum += sorted[i];
    }
    tiles_t *ts = calloc(1, sizeof(*ts));
    build(ts, evs, N, 50);
    uint16_t f[3] = {agg_feature(10, 0), agg_feature(11, 0), agg_feature(6, 0)};
    feat_value_t out[3];
    feat_buf_t strings = FEAT_BUF_INIT;
    feat_agg_reader_t *r = feat_agg_reader_new();
    read_tiles(r, ts, 50, f, 3, out, &strings);
    ck_assert_msg(fabs((double)out[0].v.i - 7000) <= 3 * 0.01625 * 7000, "distinct %" PRId64, out[0].v.i);
    size_t le = 0;
    for (size_t i = 0; i < N; i++) le += sorted[i] <= out[1].v.d;
    ck_assert_msg(fabs((double)le / N - 0.5) <= feat_kll_rank_error_apriori(FEAT_TILE_KLL_K, 1e-6),
                  "median rank %zu of %d", le, N);
    double mean = sum / N, ss = 0;
    for (size_t i = 0; i < N; i++) ss += (sorted[i] - mean) * (sorted[i] - mean);
    double sd = sqrt(ss / (N - 1));
    ck_assert_msg(fabs(out[2].v.d - sd) <= 1e-9 * sd, "stddev %.17g want %.17g", out[2].v.d, sd);
    /* the same read twice gives the same bits (the reader's sketch is re-seeded) */
    feat_value_t again[3];
    read_tiles(r, ts, 50, f, 3, again, &strings);
    ck_assert(memcmp(&again[1].v.d, &out[1].v.d, 8) == 0 && again[0].v.i == out[0].v.i);
    feat_buf_free(&strings);
    tiles_free(ts);
    free(ts);
    free(evs);
    feat_agg_reader_destroy(r);
}
END_TEST

/* Builds a tile state by hand: one accumulator. */
static void put_acc(feat_buf_t *b, uint32_t id, uint8_t fn, const void *pay, uint32_t plen) {
    unsigned char h[9];
    feat_put_le32(h, id);
    h[4] = fn;
    feat_put_le32(h + 5, plen);
    feat_buf_append(b, h, 9);
    feat_buf_append(b, pay, plen);
}

START_TEST(test_unknown_spec_dropped) {
    /* a state: an accumulator of spec 999 (not declared), then count(amount) n = 2 */
    unsigned char pay[16];
    feat_put_le64(pay, 2);
    feat_put_le64(pay + 8, 7);
    feat_buf_t st = FEAT_BUF_INIT, out = FEAT_BUF_INIT, op = FEAT_BUF_INIT;
    unsigned char hdr[3] = {FEAT_TILE_V1, 2, 0};
    feat_buf_append(&st, hdr, 3);
    put_acc(&st, 999, FEAT_AGG_COUNT, pay, 16);
    put_acc(&st, 101, FEAT_AGG_COUNT, pay, 16);
    /* the reader ignores 999 and reads 101 */
    feat_agg_reader_t *r = feat_agg_reader_new();
    uint16_t f = agg_feature(0, 1);
    ck_assert_int_eq(feat_agg_begin(r, &table, 10, &f, 1), FEAT_OK);
    ck_assert_int_eq(feat_agg_add(r, 0, st.data, st.len), FEAT_OK);
    feat_value_t v;
    feat_buf_t strings = FEAT_BUF_INIT;
    ck_assert_int_eq(feat_agg_finish(r, &v, &strings), FEAT_OK);
    ck_assert(v.v.i == 2 && v.ts == 7);
    /* a fold drops 999 and counts one more under 101 */
    ev_t e;
    memset(&e, 0, sizeof(e));
    e.ts = 3; e.has[F_AMOUNT] = 1; e.amount = 1;
    uint16_t fidx[NPLAIN];
    feat_value_t vals[NPLAIN];
    size_t n = ev_values(&e, fidx, vals);
    ck_assert_int_eq(feat_tile_operand(&table, e.ts, 0, 0, fidx, vals, n, &op), 1);
    ck_assert_int_eq(feat_tile_fold(&table, 0, st.data, st.len, op.data, op.len, &out), FEAT_OK);
    int found999 = 0;
    for (size_t i = 0; i + 4 <= out.len; i++) found999 |= feat_get_le32((unsigned char *)out.data + i) == 999;
    ck_assert(!found999);
    ck_assert_int_eq(feat_agg_begin(r, &table, 10, &f, 1), FEAT_OK);
    ck_assert_int_eq(feat_agg_add(r, 0, out.data, out.len), FEAT_OK);
    ck_assert_int_eq(feat_agg_finish(r, &v, &strings), FEAT_OK);
    ck_assert(v.v.i == 3 && v.ts == 7);
    /* an accumulator whose stored type is not the input's (a type change) is dropped */
    feat_buf_reset(&st);
    hdr[1] = 1;
    feat_buf_append(&st, hdr, 3);
    unsigned char sp[25];
    feat_put_le64(sp, 4);
    feat_put_le64(sp + 8, 7);
    sp[16] = FEAT_FT_INT64; /* sum(amount) is over a double */
    feat_put_le64(sp + 17, 40);
    put_acc(&st, 102, FEAT_AGG_SUM, sp, 25);
    f = agg_feature(1, 1);
    ck_assert_int_eq(feat_agg_begin(r, &table, 10, &f, 1), FEAT_OK);
    ck_assert_int_eq(feat_agg_add(r, 0, st.data, st.len), FEAT_OK);
    ck_assert_int_eq(feat_agg_finish(r, &v, &strings), FEAT_OK);
    ck_assert(v.status == FEAT_ST_PRESENT && v.type == FEAT_FT_DOUBLE && v.v.d == 0);
    ck_assert_int_eq(feat_tile_fold(&table, 0, st.data, st.len, op.data, op.len, &out), FEAT_OK);
    ck_assert_int_eq(feat_agg_begin(r, &table, 10, &f, 1), FEAT_OK);
    ck_assert_int_eq(feat_agg_add(r, 0, out.data, out.len), FEAT_OK);
    ck_assert_int_eq(feat_agg_finish(r, &v, &strings), FEAT_OK);
    ck_assert(v.v.d == 1 && v.ts == 3);
    feat_buf_free(&st);
    feat_buf_free(&out);
    feat_buf_free(&op);
    feat_buf_free(&strings);
    feat_agg_reader_destroy(r);
}
END_TEST

/* Damaged states and operands: FEAT_ERR_CORRUPT, out reset; copies of
 * exactly the given length so a sanitizer build sees any read past them. */
START_TEST(test_corrupt) {
    static ev_t evs[40];
    random_events(evs, 40, 1, 10, 5);
    tiles_t *ts = calloc(1, sizeof(*ts));
    build(ts, evs, 40, 10);
    feat_buf_t *st = tile_get(ts, 0);
    feat_buf_t op = FEAT_BUF_INIT, out = FEAT_BUF_INIT, strings = FEAT_BUF_INIT;
    uint16_t fidx[NPLAIN];
    feat_value_t vals[NPLAIN];
    ev_t e = evs[0];
    for (int f = 0; f < NPLAIN; f++) e.has[f] = 1;
    size_t nv = ev_values(&e, fidx, vals);
    ck_assert_int_eq(feat_tile_operand(&table, e.ts, 1000, 0, fidx, vals, nv, &op), 1);
    uint16_t all[NSPECS];
    for (size_t j = 0; j < NSPECS; j++) all[j] = agg_feature(j, 1);
    feat_agg_reader_t *r = feat_agg_reader_new();
    feat_value_t v[NSPECS];
    /* every truncation of the state */
    for (size_t k = 1; k < st->len; k++) {
        char *c = malloc(k);
        memcpy(c, st->data, k);
        feat_buf_putc(&out, 'x');
        ck_assert_int_eq(feat_tile_fold(&table, 0, c, k, op.data, op.len, &out), FEAT_ERR_CORRUPT);
        ck_assert_uint_eq(out.len, 0);
        ck_assert_int_eq(feat_agg_begin(r, &table, 10, all, NSPECS), FEAT_OK);
        ck_assert_int_eq(feat_agg_add(r, 0, c, k), FEAT_ERR_CORRUPT);
        free(c);
    }
    /* every truncation of the operand: corrupt, or (cut at an entry's end) fine */
    for (size_t k = 0; k < op.len; k++) {
        char *c = malloc(k ? k : 1);
        memcpy(c, op.data, k);
        feat_err_t rc = feat_tile_fold(&table, 0, st->data, st->len, c, k, &out);
        ck_assert(rc == FEAT_ERR_CORRUPT || (rc == FEAT_OK && k >= 21));
        free(c);
    }
    /* every single-byte change: never a crash; a fold that succeeds reads back */
    char *c = malloc(st->len);
    for (size_t i = 0; i < st->len; i++) {
        for (int x = 1; x < 256; x <<= 1) {
            memcpy(c, st->data, st->len);
            c[i] ^= (char)x;
            if (feat_tile_fold(&table, 0, c, st->len, op.data, op.len, &out) == FEAT_OK) {
                ck_assert_int_eq(feat_agg_begin(r, &table, 10, all, NSPECS), FEAT_OK);
                ck_assert_int_eq(feat_agg_add(r, 0, out.data, out.len), FEAT_OK);
                ck_assert_int_eq(feat_agg_finish(r, v, &strings), FEAT_OK);
            }
            ck_assert_int_eq(feat_agg_begin(r, &table, 10, all, NSPECS), FEAT_OK);
            if (feat_agg_add(r, 0, c, st->len) == FEAT_OK) ck_assert_int_eq(feat_agg_finish(r, v, &strings), FEAT_OK);
            feat_buf_reset(&strings);
        }
    }
    free(c);
    /* specific damage: a bad version, a value type out of range */
    feat_buf_t bad = FEAT_BUF_INIT;
    feat_buf_append(&bad, st->data, st->len);
    bad.data[0] = 2;
    ck_assert_int_eq(feat_tile_fold(&table, 0, bad.data, bad.len, op.data, op.len, &out), FEAT_ERR_CORRUPT);
    op.data[0] = 2;
    ck_assert_int_eq(feat_tile_fold(&table, 0, st->data, st->len, op.data, op.len, &out), FEAT_ERR_CORRUPT);
    feat_buf_free(&bad);
    feat_buf_free(&op);
    feat_buf_free(&out);
    feat_buf_free(&strings);
    tiles_free(ts);
    free(ts);
    feat_agg_reader_destroy(r);
}
END_TEST

/* The state of an empty tile and of operands without aggregated inputs. */
START_TEST(test_fold_empty) {
    feat_buf_t out = FEAT_BUF_INIT;
    unsigned char op[21] = {FEAT_TILE_V1};
    ck_assert_int_eq(feat_tile_fold(&table, 0, NULL, 0, (char *)op, 21, &out), FEAT_OK);
    ck_assert_uint_eq(out.len, 3);
    ck_assert(out.data[0] == FEAT_TILE_V1 && out.data[1] == 0 && out.data[2] == 0);
    feat_agg_reader_t *r = feat_agg_reader_new();
    uint16_t f = agg_feature(0, 0);
    ck_assert_int_eq(feat_agg_begin(r, &table, 0, &f, 1), FEAT_OK);
    ck_assert_int_eq(feat_agg_add(r, 0, out.data, out.len), FEAT_OK);
    ck_assert_int_eq(feat_agg_add(r, 1, NULL, 0), FEAT_OK);
    feat_buf_free(&out);
    feat_agg_reader_destroy(r);
}
END_TEST

static Suite *tile_suite(void) {
    Suite *s = suite_create("tile");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_levels_against_events);
    tcase_add_test(tc, test_fold_many_equals_one_by_one);
    tcase_add_test(tc, test_blocks);
    tcase_add_test(tc, test_tile_index);
    tcase_add_test(tc, test_operand);
    tcase_add_test(tc, test_against_events);
    tcase_add_test(tc, test_window_edges);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_order_ties);
    tcase_add_test(tc, test_fold_vs_merge);
    tcase_add_test(tc, test_sketches);
    tcase_add_test(tc, test_unknown_spec_dropped);
    tcase_add_test(tc, test_corrupt);
    tcase_add_test(tc, test_fold_empty);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(tile_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
