/* Unit tests for store/: merge semantics, TTL, point-in-time reads, history,
 * schema evolution, offsets, labels and dead letters. */
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "common/clock.h"
#include "common/config.h"
#include "store/row.h"
#include "store/store.h"

static const char *base_cfg =
    "[table user]\n"
    "topic = user_events\n"
    "ttl = 1s\n"
    "feature.a = int64\n"
    "feature.b = double\n"
    "feature.c = string\n"
    "feature.d = bool\n"
    "[table item]\n"
    "topic = item_events\n"
    "feature.price = double\n";

typedef struct fixture {
    char *dir;
    feat_config_t *cfg;
    feat_store_t *st;
    const feat_table_t *user;
} fixture_t;

static void fx_open_cfg(fixture_t *fx, const char *cfgtext) {
    char err[512];
    fx->cfg = feat_config_parse(cfgtext, strlen(cfgtext), err, sizeof(err));
    ck_assert_msg(fx->cfg != NULL, "config: %s", err);
    char path[512];
    snprintf(path, sizeof(path), "%s/db", fx->dir);
    feat_store_conf_t sc = {.path = path, .tables = fx->cfg->tables, .ntables = fx->cfg->ntables,
                            .block_cache_bytes = 8 << 20, .write_buffer_bytes = 4 << 20};
    fx->st = feat_store_open(&sc, err, sizeof(err));
    ck_assert_msg(fx->st != NULL, "open: %s", err);
    fx->user = feat_store_table(fx->st, "user");
}

static void fx_close(fixture_t *fx) {
    feat_store_close(fx->st);
    feat_config_free(fx->cfg);
    fx->st = NULL;
    fx->cfg = NULL;
}

static fixture_t fx_new(void) {
    fixture_t fx = {0};
    fx.dir = tu_tmpdir();
    ck_assert_ptr_nonnull(fx.dir);
    fx_open_cfg(&fx, base_cfg);
    return fx;
}

static void fx_free(fixture_t *fx) {
    fx_close(fx);
    tu_rmrf(fx->dir);
    free(fx->dir);
}

static feat_value_t vint(int64_t i) { feat_value_t v = {0}; v.type = FEAT_FT_INT64; v.v.i = i; return v; }
static feat_value_t vdbl(double d) { feat_value_t v = {0}; v.type = FEAT_FT_DOUBLE; v.v.d = d; return v; }
static feat_value_t vstr(const char *s) { feat_value_t v = {0}; v.type = FEAT_FT_STRING; v.v.s = s; v.slen = (uint32_t)strlen(s); return v; }

/* Writes one event with a single feature in its own batch. */
static void put1(fixture_t *fx, const char *key, int64_t ts, int32_t part, int64_t off, uint16_t f, feat_value_t v) {
    char err[256];
    feat_wb_t *wb = feat_wb_new(fx->st);
    ck_assert_int_eq(feat_wb_put_event(wb, fx->user, key, strlen(key), ts, part, off, &f, &v, 1), FEAT_OK);
    ck_assert_int_eq(feat_store_write(fx->st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);
}

static feat_value_t get1(fixture_t *fx, const char *key, uint16_t f, int64_t now) {
    feat_value_t out;
    feat_buf_t scratch = FEAT_BUF_INIT;
    ck_assert_int_eq(feat_store_get_online(fx->st, fx->user, key, strlen(key), &f, 1, now, &out, &scratch), FEAT_OK);
    static char sbuf[256];
    if (out.type == FEAT_FT_STRING && out.status != FEAT_ST_NOT_FOUND) {
        memcpy(sbuf, out.v.s, out.slen);
        sbuf[out.slen] = 0;
        out.v.s = sbuf;
    }
    feat_buf_free(&scratch);
    return out;
}

/* Aggregations through the store: tiles written with each event, read
 * online (feat_store_get_aggs) and point in time (feat_pit_read, from
 * history) with the same bits; a late event kept in history but in neither;
 * tiles out of every window dropped by compaction while history keeps them. */
static const char *agg_cfg =
    "[table tx]\n"
    "topic = tx\n"
    "feature.amount = double\n"
    "feature.shop = string\n"
    "agg_tile = 1m\n"
    "agg.s = sum(amount) over 10m, 1h, lifetime\n"
    "agg.m = mean(amount) over 1h\n"
    "agg.sd = stddev(amount) over 1h\n"
    "agg.n = count(shop) over 10m\n"
    "agg.q = approx_quantile(amount, 0.5) over 1h\n"
    "agg.recent = last_n(shop, 2) over 1h\n";

static int same_value(const feat_value_t *a, const feat_value_t *b) {
    if (a->status != b->status || a->type != b->type || a->ts != b->ts) return 0;
    if (a->status == FEAT_ST_NOT_FOUND) return 1;
    if (a->type == FEAT_FT_STRING) return a->slen == b->slen && memcmp(a->v.s, b->v.s, a->slen) == 0;
    return memcmp(&a->v, &b->v, 8) == 0; /* bits, not ==: training and serving agree to the bit */
}

/* negative: event times around 0 (before 1970 and after), so block and tile
 * indices are negative and floor division matters; else five hours ago. */
static void agg_online_vs_pit(int negative) {
    fixture_t fx = {0};
    fx.dir = tu_tmpdir();
    fx_open_cfg(&fx, agg_cfg);
    const feat_table_t *t = feat_store_table(fx.st, "tx");
    const feat_table_conf_t *tc = t->conf;
    const int64_t T = 60000;
    int64_t now = feat_now_ms();
    int64_t base = negative ? -2 * 3600000 - 7 * T /* 4 h of events across 0, tile-aligned */
                            : (now - 5 * 3600000) / T * T;  /* five hours of events, tile-aligned start */
    uint64_t seed = 7;
    const char *shops[] = {"a", "b", "c"};
    int64_t off = 0;
    int64_t last_ts = base;
    /* three entities, out of order within a batch, bursts and a quiet hour */
    for (int b = 0; b < 40; b++) {
        feat_wb_t *wb = feat_wb_new(fx.st);
        for (int i = 0; i < 25; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            int64_t ts = base + (int64_t)((seed >> 20) % (uint64_t)(4 * 3600000));
            if (ts > base + 2 * 3600000 && ts < base + 3 * 3600000) continue; /* the quiet hour */
            char key[8];
            snprintf(key, sizeof(key), "k%d", (int)(seed >> 60) % 3);
            uint16_t fi[2] = {0, 1};
            feat_value_t v[2] = {vdbl((double)((seed >> 33) % 1000) / 7.0), vstr(shops[(seed >> 40) % 3])};
            ck_assert_int_eq(feat_wb_put_event(wb, t, key, strlen(key), ts, 0, off++, fi, v, 2), FEAT_OK);
            if (ts > last_ts) last_ts = ts;
        }
        char err[256];
        ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
        feat_wb_destroy(wb);
    }
    uint16_t fidx[16];
    size_t nf = 0;
    for (size_t f = tc->nplain; f < tc->nfeatures; f++) fidx[nf++] = (uint16_t)f;
    feat_agg_reader_t *ar = feat_agg_reader_new();
    feat_pit_reader_t *pr = feat_pit_reader_new(fx.st);
    feat_buf_t s1 = FEAT_BUF_INIT, s2 = FEAT_BUF_INIT;
    int compared = 0, present = 0;
    /* as of the end of a tile (no event of the head tile lies after it), every 7 minutes */
    for (int64_t at = base + T; at <= last_ts / T * T + T; at += 7 * T) {
        for (int k = 0; k < 3; k++) {
            char key[8];
            snprintf(key, sizeof(key), "k%d", k);
            feat_value_t on[16], pit[16];
            feat_buf_reset(&s1);
            ck_assert_int_eq(feat_store_get_aggs(fx.st, t, key, 2, at, fidx, nf, ar, on, &s1), FEAT_OK);
            ck_assert_int_eq(feat_pit_read(pr, t, key, 2, at, fidx, nf, 0, pit, &s2), FEAT_OK);
            for (size_t j = 0; j < nf; j++) {
                /* the stored lifetime tile holds every event so far: as of a
                 * past time only point in time can leave later ones out */
                if (tc->features[fidx[j]].window_ms == 0 && at < last_ts) continue;
                ck_assert_msg(same_value(&on[j], &pit[j]), "%s as of %lld: %s online and point in time differ",
                              key, (long long)(at - base), tc->features[fidx[j]].name);
                present += on[j].status == FEAT_ST_PRESENT;
            }
            compared++;
        }
    }
    ck_assert_int_gt(compared, 100);
    ck_assert_int_gt(present, 500);
    /* the quiet hour: 10-minute windows inside it are empty (count 0 and sum 0 present, ts 0) */
    feat_value_t q[16];
    ck_assert_int_eq(feat_pit_read(pr, t, "k0", 2, base + 2 * 3600000 + 30 * T, fidx, nf, 0, q, &s2), FEAT_OK);
    ck_assert_int_eq(q[0].status, FEAT_ST_PRESENT); /* s_10m */
    ck_assert(q[0].v.d == 0 && q[0].ts == 0);
    feat_pit_reader_destroy(pr);

    /* a late event: history, not tiles; point in time skips it too */
    int64_t lt = last_ts + 1;
    uint16_t fi[2] = {0, 1};
    feat_value_t lv[2] = {vdbl(1e6), vstr("late")};
    feat_wb_t *wb = feat_wb_new(fx.st);
    ck_assert_int_eq(feat_wb_put_late_event(wb, t, "k1", 2, lt, 0, off++, fi, lv, 2), FEAT_OK);
    char err[256];
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);
    pr = feat_pit_reader_new(fx.st);
    feat_value_t on[16], pit[16];
    feat_buf_reset(&s1);
    ck_assert_int_eq(feat_store_get_aggs(fx.st, t, "k1", 2, lt / T * T + T, fidx, nf, ar, on, &s1), FEAT_OK);
    ck_assert_int_eq(feat_pit_read(pr, t, "k1", 2, lt / T * T + T, fidx, nf, 0, pit, &s2), FEAT_OK);
    for (size_t j = 0; j < nf; j++) ck_assert(same_value(&on[j], &pit[j]));
    ck_assert(on[2].v.d < 1e6);          /* s_lifetime did not take it */
    ck_assert_int_lt(on[0].ts, lt);
    uint16_t f0 = 0;
    feat_value_t plain;
    ck_assert_int_eq(feat_pit_read(pr, t, "k1", 2, lt, &f0, 1, 0, &plain, &s2), FEAT_OK);
    ck_assert(plain.status == FEAT_ST_PRESENT && plain.v.d == 1e6); /* history has it */
    feat_pit_reader_destroy(pr);

    /* expiry: every block but the last hour's is out of the 1h window as of
     * now; the events end an hour ago, so each entity keeps at most the two
     * 16-minute blocks (levels of 1, 4, 16 min) around that edge and its
     * lifetime tile, of about 15 blocks each before */
    uint64_t before = feat_store_estimate_keys(fx.st, FEAT_CF_TILES);
    ck_assert_int_eq(feat_store_flush(fx.st), FEAT_OK);
    ck_assert_int_eq(feat_store_compact(fx.st), FEAT_OK);
    uint64_t keys = feat_store_estimate_keys(fx.st, FEAT_CF_TILES);
    ck_assert_msg(keys <= 3 * 2 + 3, "%llu blocks left after compaction (%llu before)", (unsigned long long)keys,
                  (unsigned long long)before);
    pr = feat_pit_reader_new(fx.st);
    feat_value_t again[16];
    ck_assert_int_eq(feat_pit_read(pr, t, "k2", 2, base + 30 * T, fidx, nf, 0, again, &s2), FEAT_OK);
    ck_assert_int_eq(again[1].status, FEAT_ST_PRESENT); /* s_1h from history, five hours back */
    ck_assert(again[1].v.d > 0);
    feat_pit_reader_destroy(pr);
    feat_agg_reader_destroy(ar);
    feat_buf_free(&s1);
    feat_buf_free(&s2);
    fx_free(&fx);
}

START_TEST(aggregations_online_equal_point_in_time) { agg_online_vs_pit(0); }
END_TEST

START_TEST(aggregations_at_negative_times) { agg_online_vs_pit(1); }
END_TEST

START_TEST(out_of_order_never_overwrites_newer) {
    fixture_t fx = fx_new();
    put1(&fx, "u1", 2000, 0, 10, 0, vint(2));
    put1(&fx, "u1", 1000, 0, 11, 0, vint(1)); /* older event arrives later */
    feat_value_t v = get1(&fx, "u1", 0, 2100);
    ck_assert_int_eq(v.status, FEAT_ST_PRESENT);
    ck_assert_int_eq(v.v.i, 2);
    ck_assert_int_eq(v.ts, 2000);
    fx_free(&fx);
}
END_TEST

START_TEST(equal_times_higher_offset_wins_any_order) {
    fixture_t fx = fx_new();
    put1(&fx, "x", 1000, 0, 5, 1, vdbl(5.0));
    put1(&fx, "x", 1000, 0, 7, 1, vdbl(7.0));
    put1(&fx, "y", 1000, 0, 7, 1, vdbl(7.0));
    put1(&fx, "y", 1000, 0, 5, 1, vdbl(5.0));
    /* same offset, different partitions: higher partition wins */
    put1(&fx, "z", 1000, 3, 9, 1, vdbl(3.0));
    put1(&fx, "z", 1000, 1, 9, 1, vdbl(1.0));
    ck_assert_double_eq(get1(&fx, "x", 1, 1000).v.d, 7.0);
    ck_assert_double_eq(get1(&fx, "y", 1, 1000).v.d, 7.0);
    ck_assert_double_eq(get1(&fx, "z", 1, 1000).v.d, 3.0);
    fx_free(&fx);
}
END_TEST

static int count_rows(void *arg, int64_t ts, int32_t p, int64_t o, const feat_value_t *v, size_t n) {
    (void)ts; (void)p; (void)o; (void)v; (void)n;
    (*(int *)arg)++;
    return 0;
}

START_TEST(duplicate_event_applied_once) {
    fixture_t fx = fx_new();
    put1(&fx, "d", 1000, 0, 3, 2, vstr("first"));
    put1(&fx, "d", 1000, 0, 3, 2, vstr("first")); /* redelivered */
    feat_value_t v = get1(&fx, "d", 2, 1000);
    ck_assert_str_eq(v.v.s, "first");
    int rows = 0;
    ck_assert_int_eq(feat_store_history(fx.st, fx.user, "d", 1, INT64_MIN, INT64_MAX, count_rows, &rows), FEAT_OK);
    ck_assert_int_eq(rows, 1);
    fx_free(&fx);
}
END_TEST

START_TEST(per_feature_merge) {
    fixture_t fx = fx_new();
    char err[256];
    feat_wb_t *wb = feat_wb_new(fx.st);
    uint16_t f2[2] = {0, 1};
    feat_value_t v2[2] = {vint(1), vdbl(1.5)};
    ck_assert_int_eq(feat_wb_put_event(wb, fx.user, "p", 1, 100, 0, 1, f2, v2, 2), FEAT_OK);
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);
    put1(&fx, "p", 200, 0, 2, 0, vint(2));     /* newer a */
    put1(&fx, "p", 50, 0, 3, 1, vdbl(9.0));    /* older b: ignored online */
    feat_value_t a = get1(&fx, "p", 0, 200), b = get1(&fx, "p", 1, 200);
    ck_assert_int_eq(a.v.i, 2);
    ck_assert_int_eq(a.ts, 200);
    ck_assert_double_eq(b.v.d, 1.5);
    ck_assert_int_eq(b.ts, 100);
    ck_assert_int_eq(get1(&fx, "p", 3, 200).status, FEAT_ST_NOT_FOUND);
    ck_assert_int_eq(get1(&fx, "nobody", 0, 200).status, FEAT_ST_NOT_FOUND);
    fx_free(&fx);
}
END_TEST

/* Random events, applied in random batches, some flushed and compacted
 * midway (exercising partial and full merges), against a model computed
 * here by brute force. */
START_TEST(random_merge_matches_model) {
    fixture_t fx = fx_new();
    enum { NE = 7, NF = 2, NEV = 3000 };
    struct { int64_t ts, off; int32_t part; int64_t val; int set; } best[NE][NF];
    memset(best, 0, sizeof(best));
    srand(12345);
    char err[256];
    feat_wb_t *wb = feat_wb_new(fx.st);
    for (int i = 0; i < NEV; i++) {
        int e = rand() % NE;
        int64_t ts = 1000 + rand() % 50; /* many equal times */
        int32_t part = rand() % 3;
        int64_t off = rand() % 40;       /* many equal offsets */
        int nf = 1 + rand() % NF;
        uint16_t f[NF];
        feat_value_t v[NF];
        int first = rand() % NF;
        for (int k = 0; k < nf; k++) {
            f[k] = (uint16_t)((first + k) % NF);
            /* value is a function of the source, as for a real event */
            int64_t val = ts * 1000000 + off * 100 + part * 10 + f[k];
            v[k] = vint(val);
            if (f[k] == 1) { v[k] = vdbl((double)val); }
            int fi = f[k];
            int newer = !best[e][fi].set || ts > best[e][fi].ts ||
                        (ts == best[e][fi].ts && (off > best[e][fi].off ||
                                                  (off == best[e][fi].off && part > best[e][fi].part)));
            if (newer) {
                best[e][fi].ts = ts; best[e][fi].off = off; best[e][fi].part = part;
                best[e][fi].val = val; best[e][fi].set = 1;
            }
        }
        char key[8];
        snprintf(key, sizeof(key), "e%d", e);
        ck_assert_int_eq(feat_wb_put_event(wb, fx.user, key, strlen(key), ts, part, off, f, v, (size_t)nf), FEAT_OK);
        if (rand() % 50 == 0) {
            ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
            feat_wb_clear(wb);
        }
        if (i == NEV / 3) feat_store_flush(fx.st);
        if (i == 2 * NEV / 3) { feat_store_flush(fx.st); feat_store_compact(fx.st); }
    }
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);
    for (int pass = 0; pass < 2; pass++) {
        for (int e = 0; e < NE; e++) {
            char key[8];
            snprintf(key, sizeof(key), "e%d", e);
            for (int fi = 0; fi < NF; fi++) {
                feat_value_t got = get1(&fx, key, (uint16_t)fi, 1000);
                ck_assert(best[e][fi].set);
                ck_assert_int_eq(got.ts, best[e][fi].ts);
                if (fi == 0) ck_assert_int_eq(got.v.i, best[e][fi].val);
                else ck_assert_double_eq(got.v.d, (double)best[e][fi].val);
            }
        }
        feat_store_flush(fx.st);
        feat_store_compact(fx.st);
    }
    fx_free(&fx);
}
END_TEST

START_TEST(ttl_statuses) {
    fixture_t fx = fx_new(); /* user ttl = 1s */
    put1(&fx, "t", 10000, 0, 1, 0, vint(1));
    ck_assert_int_eq(get1(&fx, "t", 0, 10500).status, FEAT_ST_PRESENT);
    ck_assert_int_eq(get1(&fx, "t", 0, 11000).status, FEAT_ST_PRESENT); /* exactly TTL old */
    feat_value_t v = get1(&fx, "t", 0, 11001);
    ck_assert_int_eq(v.status, FEAT_ST_EXPIRED);
    ck_assert_int_eq(v.ts, 10000);
    ck_assert_int_eq(v.v.i, 1);
    ck_assert_int_eq(get1(&fx, "t", 1, 10500).status, FEAT_ST_NOT_FOUND);
    /* a table without TTL never expires */
    const feat_table_t *item = feat_store_table(fx.st, "item");
    char err[256];
    feat_wb_t *wb = feat_wb_new(fx.st);
    uint16_t f = 0;
    feat_value_t p = vdbl(3.5);
    ck_assert_int_eq(feat_wb_put_event(wb, item, "i", 1, 1, 0, 1, &f, &p, 1), FEAT_OK);
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);
    feat_value_t out;
    feat_buf_t s = FEAT_BUF_INIT;
    ck_assert_int_eq(feat_store_get_online(fx.st, item, "i", 1, &f, 1, INT64_MAX / 2, &out, &s), FEAT_OK);
    ck_assert_int_eq(out.status, FEAT_ST_PRESENT);
    feat_buf_free(&s);
    fx_free(&fx);
}
END_TEST

START_TEST(point_in_time_reads) {
    fixture_t fx = fx_new(); /* ttl 1s = 1000 ms */
    put1(&fx, "k", 10000, 0, 1, 0, vint(1));
    put1(&fx, "k", 10200, 0, 2, 0, vint(2));
    put1(&fx, "k", 10200, 0, 3, 2, vstr("s2"));
    put1(&fx, "k", 10300, 0, 4, 0, vint(3));
    put1(&fx, "k", 10250, 0, 5, 0, vint(99)); /* out of order, lands in history */
    put1(&fx, "kk", 10210, 0, 6, 0, vint(777)); /* another entity sharing a prefix */
    feat_pit_reader_t *r = feat_pit_reader_new(fx.st);
    feat_buf_t strs = FEAT_BUF_INIT;
    uint16_t f[3] = {0, 2, 1};
    feat_value_t out[3];
    /* as of 10220: a = 2 (10200), c = s2, b never set */
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 10220, f, 3, 0, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[0].status, FEAT_ST_PRESENT);
    ck_assert_int_eq(out[0].v.i, 2);
    ck_assert_int_eq(out[0].ts, 10200);
    ck_assert_int_eq(out[1].status, FEAT_ST_PRESENT);
    ck_assert_int_eq(out[1].slen, 2);
    ck_assert(memcmp(out[1].v.s, "s2", 2) == 0);
    ck_assert_int_eq(out[2].status, FEAT_ST_NOT_FOUND);
    /* boundary: ts <= as_of inclusive */
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 10250, f, 1, 0, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[0].v.i, 99);
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 10249, f, 1, 0, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[0].v.i, 2);
    /* before anything */
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 9999, f, 2, 0, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[0].status, FEAT_ST_NOT_FOUND);
    ck_assert_int_eq(out[1].status, FEAT_ST_NOT_FOUND);
    /* TTL: as of 11250, c (10200) is 1050 ms old > 1000 → missing; a (10300) is present */
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 11250, f, 2, 0, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[0].status, FEAT_ST_PRESENT);
    ck_assert_int_eq(out[0].v.i, 3);
    ck_assert_int_eq(out[1].status, FEAT_ST_NOT_FOUND);
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 11250, f, 2, 1, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[1].status, FEAT_ST_EXPIRED);
    ck_assert(memcmp(out[1].v.s, "s2", 2) == 0);
    /* exactly TTL old is still present */
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 11200, f, 2, 0, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[1].status, FEAT_ST_PRESENT);
    /* the snapshot: writes after the reader was made are invisible to it */
    put1(&fx, "k", 10210, 0, 7, 0, vint(555));
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 10220, f, 1, 0, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[0].v.i, 2);
    feat_pit_reader_destroy(r);
    r = feat_pit_reader_new(fx.st);
    ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 10220, f, 1, 0, out, &strs), FEAT_OK);
    ck_assert_int_eq(out[0].v.i, 555);
    feat_pit_reader_destroy(r);
    /* the same answers from SST files (prefix blooms, other iterators) */
    for (int pass = 0; pass < 2; pass++) {
        feat_store_flush(fx.st);
        if (pass) feat_store_compact(fx.st);
        r = feat_pit_reader_new(fx.st);
        ck_assert_int_eq(feat_pit_read(r, fx.user, "kk", 2, 10500, f, 1, 0, out, &strs), FEAT_OK);
        ck_assert_int_eq(out[0].v.i, 777);
        ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 10220, f, 3, 0, out, &strs), FEAT_OK);
        ck_assert_int_eq(out[0].v.i, 555);
        ck_assert(memcmp(out[1].v.s, "s2", 2) == 0);
        ck_assert_int_eq(out[2].status, FEAT_ST_NOT_FOUND);
        ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 11250, f, 2, 1, out, &strs), FEAT_OK);
        ck_assert_int_eq(out[0].v.i, 3);
        ck_assert_int_eq(out[1].status, FEAT_ST_EXPIRED);
        ck_assert_int_eq(feat_pit_read(r, fx.user, "k", 1, 9999, f, 1, 0, out, &strs), FEAT_OK);
        ck_assert_int_eq(out[0].status, FEAT_ST_NOT_FOUND);
        ck_assert_int_eq(feat_pit_read(r, fx.user, "nobody", 6, 99999, f, 1, 1, out, &strs), FEAT_OK);
        ck_assert_int_eq(out[0].status, FEAT_ST_NOT_FOUND);
        feat_pit_reader_destroy(r);
    }
    feat_buf_free(&strs);
    fx_free(&fx);
}
END_TEST

typedef struct hist { int n; int64_t ts[16]; int64_t a[16]; } hist_t;
static int collect(void *arg, int64_t ts, int32_t p, int64_t o, const feat_value_t *v, size_t n) {
    (void)p; (void)o; (void)n;
    hist_t *h = arg;
    h->ts[h->n] = ts;
    h->a[h->n] = v[0].status == FEAT_ST_PRESENT ? v[0].v.i : -1;
    h->n++;
    return 0;
}

START_TEST(history_range_newest_first) {
    fixture_t fx = fx_new();
    put1(&fx, "h", 300, 0, 1, 0, vint(3));
    put1(&fx, "h", 100, 0, 2, 0, vint(1));
    put1(&fx, "h", -50, 0, 3, 0, vint(-1)); /* negative times sort first */
    put1(&fx, "h", 200, 0, 4, 1, vdbl(2.0));
    put1(&fx, "h2", 150, 0, 5, 0, vint(42));
    hist_t h = {0};
    ck_assert_int_eq(feat_store_history(fx.st, fx.user, "h", 1, INT64_MIN, INT64_MAX, collect, &h), FEAT_OK);
    ck_assert_int_eq(h.n, 4);
    int64_t want_ts[] = {300, 200, 100, -50}, want_a[] = {3, -1, 1, -1}; /* newest first */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(h.ts[i], want_ts[i]);
        ck_assert_int_eq(h.a[i], want_a[i]);
    }
    memset(&h, 0, sizeof(h));
    ck_assert_int_eq(feat_store_history(fx.st, fx.user, "h", 1, 100, 200, collect, &h), FEAT_OK);
    ck_assert_int_eq(h.n, 2);
    ck_assert_int_eq(h.ts[0], 200);
    ck_assert_int_eq(h.ts[1], 100);
    /* equal times: higher offset first */
    put1(&fx, "eq", 500, 0, 7, 0, vint(7));
    put1(&fx, "eq", 500, 0, 9, 0, vint(9));
    put1(&fx, "eq", 500, 1, 8, 0, vint(8));
    memset(&h, 0, sizeof(h));
    ck_assert_int_eq(feat_store_history(fx.st, fx.user, "eq", 2, 500, 500, collect, &h), FEAT_OK);
    ck_assert_int_eq(h.n, 3);
    ck_assert_int_eq(h.a[0], 9);
    ck_assert_int_eq(h.a[1], 8);
    ck_assert_int_eq(h.a[2], 7);
    fx_free(&fx);
}
END_TEST

/* feat_wb_seal (the ingest thread's share of a commit) may run several times
 * while a batch is built: every row is written exactly once, whichever side
 * of a seal it was added on. */
START_TEST(sealed_batch_writes_every_row_once) {
    fixture_t fx = fx_new();
    char err[256];
    feat_wb_t *wb = feat_wb_new(fx.st);
    enum { NE = 5, PER = 12 };
    int64_t off = 0;
    for (int i = 0; i < PER; i++) {
        for (int e = 0; e < NE; e++) {
            char key[8];
            snprintf(key, sizeof(key), "s%d", e);
            uint16_t f = 0;
            feat_value_t v = vint(100 * e + i);
            /* times descend for odd entities: their newest is the first event */
            int64_t ts = e % 2 ? 1000 - i : 1000 + i;
            ck_assert_int_eq(feat_wb_put_event(wb, fx.user, key, strlen(key), ts, 0, off++, &f, &v, 1), FEAT_OK);
        }
        if (i == 3 || i == 4 || i == 9) feat_wb_seal(wb); /* twice in a row: nothing new the second time */
    }
    ck_assert_uint_eq(feat_wb_online_count(wb), NE * PER);
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);
    for (int e = 0; e < NE; e++) {
        char key[8];
        snprintf(key, sizeof(key), "s%d", e);
        hist_t h = {0};
        ck_assert_int_eq(feat_store_history(fx.st, fx.user, key, strlen(key), INT64_MIN, INT64_MAX, collect, &h),
                         FEAT_OK);
        ck_assert_int_eq(h.n, PER);
        feat_value_t got = get1(&fx, key, 0, 2000);
        ck_assert_int_eq(got.status, FEAT_ST_PRESENT);
        ck_assert_int_eq(got.v.i, 100 * e + (e % 2 ? 0 : PER - 1));
    }
    fx_free(&fx);
}
END_TEST

START_TEST(schema_ids_stable_and_type_change_refused) {
    fixture_t fx = fx_new();
    put1(&fx, "s", 100, 0, 1, 1, vdbl(1.25)); /* feature b */
    fx_close(&fx);
    /* reorder, add a feature, drop one: b keeps its id */
    fx_open_cfg(&fx, "[table user]\ntopic = user_events\nfeature.new = int64\nfeature.b = double\n");
    uint16_t f = 1; /* b is now at index 1 */
    feat_value_t out;
    feat_buf_t s = FEAT_BUF_INIT;
    ck_assert_int_eq(feat_store_get_online(fx.st, fx.user, "s", 1, &f, 1, 100, &out, &s), FEAT_OK);
    ck_assert_int_eq(out.status, FEAT_ST_PRESENT);
    ck_assert_double_eq(out.v.d, 1.25);
    f = 0;
    ck_assert_int_eq(feat_store_get_online(fx.st, fx.user, "s", 1, &f, 1, 100, &out, &s), FEAT_OK);
    ck_assert_int_eq(out.status, FEAT_ST_NOT_FOUND); /* new id, not a's old id */
    feat_buf_free(&s);
    fx_close(&fx);
    char err[512];
    const char *bad = "[table user]\ntopic = user_events\nfeature.b = string\n";
    fx.cfg = feat_config_parse(bad, strlen(bad), err, sizeof(err));
    ck_assert_ptr_nonnull(fx.cfg);
    char path[512];
    snprintf(path, sizeof(path), "%s/db", fx.dir);
    feat_store_conf_t sc = {.path = path, .tables = fx.cfg->tables, .ntables = fx.cfg->ntables,
                            .block_cache_bytes = 8 << 20, .write_buffer_bytes = 4 << 20};
    ck_assert_ptr_null(feat_store_open(&sc, err, sizeof(err)));
    ck_assert_msg(strstr(err, "table.user.feature.b") != NULL, "%s", err);
    feat_config_free(fx.cfg);
    /* a store marked by a newer featd is refused, one marked 1 opens */
    fx_open_cfg(&fx, "[table user]\ntopic = user_events\nfeature.b = double\n");
    feat_buf_t v = FEAT_BUF_INIT;
    ck_assert_int_eq(feat_store_get_blob(fx.st, FEAT_CF_META, "schema_version", 14, &v), FEAT_OK);
    ck_assert_uint_eq(v.len, 1);
    ck_assert_int_eq(v.data[0], '2');
    feat_buf_free(&v);
    ck_assert_int_eq(feat_store_put_blob(fx.st, FEAT_CF_META, "schema_version", 14, "1", 1), FEAT_OK);
    fx_close(&fx);
    fx_open_cfg(&fx, "[table user]\ntopic = user_events\nfeature.b = double\n");
    ck_assert_int_eq(feat_store_get_blob(fx.st, FEAT_CF_META, "schema_version", 14, &v), FEAT_OK);
    ck_assert_int_eq(v.data[0], '2'); /* version 1 opened and marked 2 */
    feat_buf_free(&v);
    ck_assert_int_eq(feat_store_put_blob(fx.st, FEAT_CF_META, "schema_version", 14, "3", 1), FEAT_OK);
    fx_close(&fx);
    const char *good = "[table user]\ntopic = user_events\nfeature.b = double\n";
    fx.cfg = feat_config_parse(good, strlen(good), err, sizeof(err));
    ck_assert_ptr_nonnull(fx.cfg);
    sc.tables = fx.cfg->tables;
    sc.ntables = fx.cfg->ntables;
    ck_assert_ptr_null(feat_store_open(&sc, err, sizeof(err)));
    ck_assert_msg(strstr(err, "schema_version \"3\"") != NULL, "%s", err);
    feat_config_free(fx.cfg);
    fx.cfg = NULL;
    tu_rmrf(fx.dir);
    free(fx.dir);
}
END_TEST

typedef struct lab { int n; int64_t ts[8]; char key[8][8]; double v[8]; } lab_t;
static int on_label(void *arg, int64_t ts, const char *k, size_t kl, double label) {
    lab_t *l = arg;
    l->ts[l->n] = ts;
    memcpy(l->key[l->n], k, kl);
    l->key[l->n][kl] = 0;
    l->v[l->n++] = label;
    return 0;
}

typedef struct dl { int n; char reason[32]; char val[32]; int64_t off; } dl_t;
static int on_dl(void *arg, const char *topic, int32_t p, int64_t off, const char *reason, const char *detail,
                 const char *key, size_t kl, const char *val, size_t vl) {
    (void)topic; (void)p; (void)detail; (void)key; (void)kl;
    dl_t *d = arg;
    d->n++;
    snprintf(d->reason, sizeof(d->reason), "%s", reason);
    snprintf(d->val, sizeof(d->val), "%.*s", (int)vl, val);
    d->off = off;
    return 0;
}

static int hook_calls[3];
static size_t hook_keys;
static void hook(void *arg, const feat_wb_t *wb, int phase) {
    (void)arg;
    hook_calls[phase]++;
    if (phase == 1) hook_keys = feat_wb_online_count(wb);
}

START_TEST(offsets_labels_dead_letters_and_hooks) {
    fixture_t fx = fx_new();
    char err[256];
    int64_t next = 0;
    ck_assert_int_eq(feat_store_get_offset(fx.st, "user_events", 0, &next, NULL), FEAT_ERR_NOT_FOUND);
    feat_store_set_write_hook(fx.st, hook, NULL);
    feat_wb_t *wb = feat_wb_new(fx.st);
    uint16_t f = 0;
    feat_value_t v = vint(1);
    ck_assert_int_eq(feat_wb_put_event(wb, fx.user, "a", 1, 5, 2, 10, &f, &v, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_event(wb, fx.user, "b", 1, 5, 2, 11, &f, &v, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_label(wb, "churn", "a", 1, 300, 1.0, 0, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_label(wb, "churn", "b", 1, 100, 0.0, 0, 2), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_label(wb, "other", "c", 1, 200, 0.5, 0, 3), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_dead_letter(wb, "user_events", 2, 12, "bad_json", "expected '{'", "k", 1,
                                             "garbage", 7, 1234), FEAT_OK);
    ck_assert_int_eq(feat_wb_set_offset(wb, "user_events", 2, 13, 7), FEAT_OK);
    ck_assert_int_eq(feat_wb_count(wb), 6);
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);
    ck_assert_int_eq(hook_calls[0], 1);
    ck_assert_int_eq(hook_calls[1], 1);
    ck_assert_int_eq(hook_keys, 2);
    uint64_t applied = 0;
    ck_assert_int_eq(feat_store_get_offset(fx.st, "user_events", 2, &next, &applied), FEAT_OK);
    ck_assert_int_eq(next, 13);
    ck_assert_int_eq(applied, 7);
    lab_t l = {0};
    ck_assert_int_eq(feat_store_labels(fx.st, "churn", INT64_MIN, INT64_MAX, on_label, &l), FEAT_OK);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(l.ts[0], 100);
    ck_assert_str_eq(l.key[0], "b");
    ck_assert_double_eq(l.v[1], 1.0);
    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(feat_store_labels(fx.st, "churn", 101, 300, on_label, &l), FEAT_OK);
    ck_assert_int_eq(l.n, 1);
    dl_t d = {0};
    ck_assert_int_eq(feat_store_dead_letters(fx.st, on_dl, &d), FEAT_OK);
    ck_assert_int_eq(d.n, 1);
    ck_assert_str_eq(d.reason, "bad_json");
    ck_assert_str_eq(d.val, "garbage");
    ck_assert_int_eq(d.off, 12);
    fx_free(&fx);
}
END_TEST

START_TEST(row_codec_rejects_corrupt_bytes) {
    feat_buf_t b = FEAT_BUF_INIT, out = FEAT_BUF_INIT;
    feat_buf_putc(&b, FEAT_ROW_V1);
    feat_value_t s = vstr("hello");
    feat_row_put(&b, 1, 3, &s, 1, 2, 3);
    /* every truncation is rejected, never read past the end */
    for (size_t cut = 2; cut < b.len; cut++) { /* cut 1 = empty row, valid */
        size_t pos = 0;
        feat_row_entry_t e;
        int has;
        ck_assert_int_eq(feat_row_next(b.data, cut, &pos, 1, &e, &has), FEAT_ERR_CORRUPT);
        ck_assert_int_eq(has, 0);
        ck_assert_int_eq(feat_row_merge(b.data, cut, b.data, b.len, &out), FEAT_ERR_CORRUPT);
    }
    b.data[0] = 7; /* unknown version */
    size_t pos = 0;
    feat_row_entry_t e;
    int has;
    ck_assert_int_eq(feat_row_next(b.data, b.len, &pos, 1, &e, &has), FEAT_ERR_CORRUPT);
    feat_buf_free(&b);
    feat_buf_free(&out);
}
END_TEST

/* Online rows, version 2: an event's operand states its source once; rows
 * of version 1 (stores written before) still read and merge the same. */
typedef struct { int set; int64_t ts, off; int32_t part; int64_t val; } mentry_t;
enum { MID = 12 };

/* a row holding the entries of m, in version 1 or 2 (source: m[first]'s) */
static void enc_row(feat_buf_t *b, const mentry_t *m, int version) {
    feat_buf_reset(b);
    int first = -1;
    for (int id = 0; id < MID && first < 0; id++)
        if (m[id].set) first = id;
    if (version == 1) feat_buf_putc(b, FEAT_ROW_V1);
    else if (first < 0) feat_buf_putc(b, FEAT_ROW_V2);
    else feat_row_begin(b, 1, m[first].ts, m[first].off, m[first].part);
    for (int id = 0; id < MID; id++) {
        if (!m[id].set) continue;
        feat_value_t v = id % 2 ? vdbl((double)m[id].val) : vint(m[id].val);
        feat_row_put(b, 1, (uint16_t)id, &v, m[id].ts, m[id].off, m[id].part);
    }
    ck_assert(!b->oom);
}

static void check_row(const feat_buf_t *b, const mentry_t *m) {
    size_t pos = 0;
    feat_row_entry_t e;
    int has, prev = -1, n = 0, want = 0;
    feat_err_t r;
    for (int id = 0; id < MID; id++) want += m[id].set;
    while ((r = feat_row_next(b->data, b->len, &pos, 1, &e, &has)) == FEAT_OK && has) {
        ck_assert_int_gt(e.id, prev);
        ck_assert(e.id < MID && m[e.id].set);
        ck_assert_int_eq(e.ts, m[e.id].ts);
        ck_assert_int_eq(e.offset, m[e.id].off);
        ck_assert_int_eq(e.partition, m[e.id].part);
        if (e.id % 2) ck_assert_double_eq(e.val.v.d, (double)m[e.id].val);
        else ck_assert_int_eq(e.val.v.i, m[e.id].val);
        prev = e.id;
        n++;
    }
    ck_assert_int_eq(r, FEAT_OK);
    ck_assert_int_eq(n, want);
}

START_TEST(row_v2_is_compact_and_merges_like_v1) {
    feat_buf_t b = FEAT_BUF_INIT, a1 = FEAT_BUF_INIT, b1 = FEAT_BUF_INIT, out = FEAT_BUF_INIT;
    /* one event, 10 doubles: 1 + 20 source bytes, then 2 + 1 + 8 per feature
     * (version 1: 1, then 2 + 1 + 20 + 8 per feature) */
    mentry_t ev[MID];
    memset(ev, 0, sizeof(ev));
    for (int id = 1; id <= 10; id++) ev[id] = (mentry_t){1, 5000, 77, 3, id * 11};
    enc_row(&b, ev, 2);
    ck_assert_uint_eq(b.len, 1 + 20 + 10 * (2 + 1 + 8));
    check_row(&b, ev);
    enc_row(&b, ev, 1);
    ck_assert_uint_eq(b.len, 1 + 10 * (2 + 1 + 20 + 8));
    check_row(&b, ev);

    /* random rows, each with a few sources, merged in every pair of versions:
     * the result holds, per id, the entry with the greatest source */
    srand(4242);
    for (int iter = 0; iter < 2000; iter++) {
        mentry_t ma[MID], mb[MID], want[MID];
        memset(ma, 0, sizeof(ma));
        memset(mb, 0, sizeof(mb));
        for (int id = 0; id < MID; id++) {
            mentry_t *m[2] = {ma, mb};
            for (int k = 0; k < 2; k++) {
                if (rand() % 3 == 0) continue;
                int src = rand() % 4; /* few sources: equal and shared ones */
                m[k][id] = (mentry_t){1, 100 + src / 2, src % 3, src % 2, iter * 1000 + id * 10 + src};
            }
        }
        for (int id = 0; id < MID; id++) {
            const mentry_t *x = &ma[id], *y = &mb[id];
            int ynewer = y->set && (!x->set || y->ts > x->ts ||
                                    (y->ts == x->ts && (y->off > x->off || (y->off == x->off && y->part > x->part))));
            want[id] = ynewer ? *y : *x;
        }
        for (int va = 1; va <= 2; va++)
            for (int vb = 1; vb <= 2; vb++) {
                enc_row(&a1, ma, va);
                enc_row(&b1, mb, vb);
                check_row(&a1, ma);
                ck_assert_int_eq(feat_row_merge(a1.data, a1.len, b1.data, b1.len, &out), FEAT_OK);
                ck_assert_uint_eq((unsigned char)out.data[0], FEAT_ROW_V2);
                check_row(&out, want);
                /* merging the result again changes nothing */
                ck_assert_int_eq(feat_row_merge(out.data, out.len, b1.data, b1.len, &b), FEAT_OK);
                ck_assert_uint_eq(b.len, out.len);
                ck_assert_mem_eq(b.data, out.data, out.len);
            }
    }
    feat_buf_free(&b);
    feat_buf_free(&a1);
    feat_buf_free(&b1);
    feat_buf_free(&out);
}
END_TEST

START_TEST(row_v2_rejects_corrupt_bytes) {
    feat_buf_t b = FEAT_BUF_INIT, out = FEAT_BUF_INIT;
    feat_value_t s = vstr("hello");
    feat_row_begin(&b, 1, 1, 2, 3);
    feat_row_put(&b, 1, 3, &s, 9, 2, 3); /* its own source */
    ck_assert_uint_eq(b.len, 1 + 20 + 3 + 20 + 4 + 5);
    for (size_t cut = 2; cut < b.len; cut++) {
        size_t pos = 0;
        feat_row_entry_t e;
        int has;
        /* cut 21: the row's source and no entries, a valid empty row */
        ck_assert_int_eq(feat_row_next(b.data, cut, &pos, 1, &e, &has), cut == 21 ? FEAT_OK : FEAT_ERR_CORRUPT);
        ck_assert_int_eq(has, 0);
        if (cut != 21) ck_assert_int_eq(feat_row_merge(b.data, cut, b.data, b.len, &out), FEAT_ERR_CORRUPT);
    }
    /* the own-source flag is not a version 1 type */
    feat_buf_reset(&b);
    feat_buf_putc(&b, FEAT_ROW_V1);
    feat_row_put(&b, 1, 3, &s, 1, 2, 3);
    b.data[3] |= (char)0x80;
    size_t pos = 0;
    feat_row_entry_t e;
    int has;
    ck_assert_int_eq(feat_row_next(b.data, b.len, &pos, 1, &e, &has), FEAT_ERR_CORRUPT);
    /* offline rows have no version 2 */
    feat_buf_reset(&b);
    feat_row_begin(&b, 1, 1, 2, 3);
    feat_row_put(&b, 1, 3, &s, 1, 2, 3);
    pos = 0;
    ck_assert_int_eq(feat_row_next(b.data, b.len, &pos, 0, &e, &has), FEAT_ERR_CORRUPT);
    feat_buf_free(&b);
    feat_buf_free(&out);
}
END_TEST

/* store.write_buffer's smallest allowed value (1 MiB): the store opens and
 * survives memtable switches and flushes (RocksDB used to abort: the hash
 * memtable's bucket array alone outgrew a small write buffer). */
START_TEST(smallest_write_buffer_works) {
    fixture_t fx = {0};
    fx.dir = tu_tmpdir();
    ck_assert_ptr_nonnull(fx.dir);
    char err[512], path[512];
    fx.cfg = feat_config_parse(base_cfg, strlen(base_cfg), err, sizeof(err));
    ck_assert_msg(fx.cfg != NULL, "config: %s", err);
    snprintf(path, sizeof(path), "%s/db", fx.dir);
    feat_store_conf_t sc = {.path = path, .tables = fx.cfg->tables, .ntables = fx.cfg->ntables,
                            .block_cache_bytes = 8 << 20, .write_buffer_bytes = 1 << 20};
    fx.st = feat_store_open(&sc, err, sizeof(err));
    ck_assert_msg(fx.st != NULL, "open: %s", err);
    fx.user = feat_store_table(fx.st, "user");
    static char big[1025];
    memset(big, 'x', 1024);
    feat_wb_t *wb = feat_wb_new(fx.st);
    uint16_t f = 2;
    for (int b = 0; b < 40; b++) { /* 40 batches of 100 1-KiB events: ~8 MiB through 1 MiB memtables */
        for (int i = 0; i < 100; i++) {
            char key[32];
            int n = b * 100 + i;
            snprintf(key, sizeof(key), "k%d", n % 50);
            big[0] = (char)('a' + n % 26);
            feat_value_t v = vstr(big);
            ck_assert_int_eq(feat_wb_put_event(wb, fx.user, key, strlen(key), 1000 + n, 0, n, &f, &v, 1), FEAT_OK);
        }
        ck_assert_int_eq(feat_wb_set_offset(wb, "user_events", 0, (b + 1) * 100, (uint64_t)(b + 1) * 100), FEAT_OK);
        ck_assert_msg(feat_store_write(fx.st, wb, err, sizeof(err)) == FEAT_OK, "write: %s", err);
        feat_wb_clear(wb);
    }
    feat_wb_destroy(wb);
    /* k7 was last written by event 3957 (3957 % 50 == 7) */
    feat_value_t v;
    feat_buf_t scratch = FEAT_BUF_INIT;
    ck_assert_int_eq(feat_store_get_online(fx.st, fx.user, "k7", 2, &f, 1, 1000 + 3957, &v, &scratch), FEAT_OK);
    ck_assert_int_eq(v.status, FEAT_ST_PRESENT);
    ck_assert_int_eq(v.slen, 1024);
    ck_assert_int_eq(v.v.s[0], 'a' + 3957 % 26);
    feat_buf_free(&scratch);
    int rows = 0;
    ck_assert_int_eq(feat_store_history(fx.st, fx.user, "k7", 2, INT64_MIN, INT64_MAX, count_rows, &rows), FEAT_OK);
    ck_assert_int_eq(rows, 80);
    int64_t next = 0;
    ck_assert_int_eq(feat_store_get_offset(fx.st, "user_events", 0, &next, NULL), FEAT_OK);
    ck_assert_int_eq(next, 4000);
    fx_free(&fx);
}
END_TEST

/* feat_store_checkpoint: refuses an existing target and a missing parent;
 * the checkpoint opens as a store holding the data and offsets as of the
 * call, and writes after it reach only the live store. */
START_TEST(checkpoint_is_a_consistent_copy) {
    fixture_t fx = fx_new();
    char err[512], bk[512], db[600];
    put1(&fx, "k1", 1000, 0, 0, 0, vint(1));
    put1(&fx, "k2", 1000, 0, 1, 2, vstr("before"));
    feat_wb_t *wb = feat_wb_new(fx.st);
    ck_assert_int_eq(feat_wb_set_offset(wb, "user_events", 0, 2, 2), FEAT_OK);
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_clear(wb);
    snprintf(bk, sizeof(bk), "%s/bk", fx.dir);
    snprintf(db, sizeof(db), "%s/db", bk);
    ck_assert_int_eq(feat_store_checkpoint(fx.st, db, NULL, err, sizeof(err)), FEAT_ERR_INVALID); /* no bk/ */
    ck_assert_int_eq(mkdir(bk, 0700), 0);
    feat_checkpoint_info_t info;
    ck_assert_msg(feat_store_checkpoint(fx.st, db, &info, err, sizeof(err)) == FEAT_OK, "checkpoint: %s", err);
    ck_assert_uint_gt(info.files, 0);
    ck_assert_uint_gt(info.bytes, 0);
    ck_assert_uint_le(info.linked_files, info.files);
    ck_assert_int_eq(feat_store_checkpoint(fx.st, db, NULL, err, sizeof(err)), FEAT_ERR_EXISTS);
    /* after the checkpoint: a newer value and a later offset, live only */
    put1(&fx, "k1", 2000, 0, 2, 0, vint(2));
    ck_assert_int_eq(feat_wb_set_offset(wb, "user_events", 0, 3, 3), FEAT_OK);
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);
    ck_assert_int_eq(get1(&fx, "k1", 0, 2000).v.i, 2);

    feat_store_conf_t sc = {.path = db, .tables = fx.cfg->tables, .ntables = fx.cfg->ntables,
                            .block_cache_bytes = 8 << 20, .write_buffer_bytes = 4 << 20, .read_only = 1};
    feat_store_t *copy = feat_store_open(&sc, err, sizeof(err));
    ck_assert_msg(copy != NULL, "open checkpoint: %s", err);
    const feat_table_t *u = feat_store_table(copy, "user");
    feat_value_t out;
    feat_buf_t scratch = FEAT_BUF_INIT;
    uint16_t f = 0;
    ck_assert_int_eq(feat_store_get_online(copy, u, "k1", 2, &f, 1, 1000, &out, &scratch), FEAT_OK);
    ck_assert_int_eq(out.status, FEAT_ST_PRESENT);
    ck_assert_int_eq(out.v.i, 1);
    f = 2;
    ck_assert_int_eq(feat_store_get_online(copy, u, "k2", 2, &f, 1, 1000, &out, &scratch), FEAT_OK);
    ck_assert_int_eq(out.slen, 6);
    ck_assert_int_eq(memcmp(out.v.s, "before", 6), 0);
    int64_t next = 0;
    uint64_t applied = 0;
    ck_assert_int_eq(feat_store_get_offset(copy, "user_events", 0, &next, &applied), FEAT_OK);
    ck_assert_int_eq(next, 2);
    ck_assert_uint_eq(applied, 2);
    int rows = 0;
    ck_assert_int_eq(feat_store_history(copy, u, "k1", 2, INT64_MIN, INT64_MAX, count_rows, &rows), FEAT_OK);
    ck_assert_int_eq(rows, 1);
    feat_buf_free(&scratch);
    feat_store_close(copy);
    fx_free(&fx);
}
END_TEST

/* ---- every scan: order, bounds, early stop, corrupt rows ------------------ */

typedef struct visits {
    char log[2048];
    int n, stop_at; /* stop_at > 0: the callback asks to stop on that visit */
} visits_t;

static int visit(visits_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int visit(visits_t *v, const char *fmt, ...) {
    size_t len = strlen(v->log);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->log + len, sizeof(v->log) - len, fmt, ap);
    va_end(ap);
    strncat(v->log, ";", sizeof(v->log) - strlen(v->log) - 1);
    return ++v->n == v->stop_at;
}

static int on_offset_v(void *arg, const char *topic, int32_t part, int64_t next, uint64_t applied) {
    return visit(arg, "%s/%d=%lld,%llu", topic, part, (long long)next, (unsigned long long)applied);
}
static int on_online_v(void *arg, const feat_table_t *t, const char *key, size_t klen, const char *row, size_t len) {
    (void)row;
    return visit(arg, "%s/%.*s:%d", t->conf->name, (int)klen, key, len > 0);
}
static int on_offline_v(void *arg, const char *key, size_t klen, int64_t ts, int32_t part, int64_t off,
                        const feat_value_t *vals, size_t n) {
    (void)n;
    return visit(arg, "%.*s@%lld/%d/%lld=%lld", (int)klen, key, (long long)ts, part, (long long)off,
                 vals[0].status == FEAT_ST_NOT_FOUND && vals[0].ts == 0 ? -1LL : (long long)vals[0].v.i);
}
static int on_label_src_v(void *arg, const char *model, int64_t ts, const char *key, size_t klen, double label,
                          int32_t part, int64_t off) {
    return visit(arg, "%s@%lld/%.*s=%g(%d:%lld)", model, (long long)ts, (int)klen, key, label, part, (long long)off);
}
static int on_label_v(void *arg, int64_t ts, const char *key, size_t klen, double label) {
    return visit(arg, "%lld/%.*s=%g", (long long)ts, (int)klen, key, label);
}
static int on_pred_v(void *arg, int64_t ts, const char *key, size_t klen, uint64_t version, double score) {
    return visit(arg, "%lld/%.*s=v%llu:%g", (long long)ts, (int)klen, key, (unsigned long long)version, score);
}
static int on_blob_v(void *arg, const char *key, size_t klen, const char *val, size_t vlen) {
    return visit(arg, "%.*s=%.*s", (int)klen, key, (int)vlen, val);
}
static int on_dl_v(void *arg, const char *topic, int32_t part, int64_t off, const char *reason, const char *detail,
                   const char *key, size_t klen, const char *value, size_t vlen) {
    (void)detail; (void)key; (void)klen;
    return visit(arg, "%s/%d/%lld:%s:%.*s", topic, part, (long long)off, reason, (int)vlen, value);
}
static int on_hist_v(void *arg, int64_t ts, int32_t part, int64_t off, const feat_value_t *vals, size_t n) {
    (void)n;
    return visit(arg, "%lld/%d/%lld=%lld", (long long)ts, part, (long long)off, (long long)vals[0].v.i);
}

#define VISITS(stop) (visits_t){.stop_at = (stop)}

START_TEST(every_scan_orders_bounds_and_stops) {
    fixture_t fx = fx_new();
    char err[256];
    put1(&fx, "b", 20, 0, 1, 0, vint(1));
    put1(&fx, "a", 10, 1, 2, 0, vint(2));
    put1(&fx, "a", 30, 1, 3, 0, vint(3));
    put1(&fx, "a", 25, 1, 4, 1, vdbl(0.5)); /* a row without feature a */
    const feat_table_t *item = feat_store_table(fx.st, "item");
    feat_wb_t *wb = feat_wb_new(fx.st);
    uint16_t f = 0;
    feat_value_t p = vdbl(9);
    ck_assert_int_eq(feat_wb_put_event(wb, item, "i1", 2, 5, 0, 9, &f, &p, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_set_offset(wb, "user_events", 1, 5, 3), FEAT_OK);
    ck_assert_int_eq(feat_wb_set_offset(wb, "user_events", 0, 2, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_set_offset(wb, "item_events", 0, 10, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_label(wb, "m", "x", 1, 100, 1.0, 0, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_label(wb, "m", "y", 1, 200, 0.0, 0, 2), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_label(wb, "m", "z", 1, 300, 1.0, 0, 3), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_label(wb, "l", "w", 1, 50, 0.5, 1, 4), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_prediction(wb, "m", "x", 1, 100, 1, 0.25), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_prediction(wb, "m", "y", 1, 200, 2, 0.5), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_prediction(wb, "m", "z", 1, INT64_MAX - 1, 3, 0.75), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_prediction(wb, "mm", "q", 1, 150, 4, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_dead_letter(wb, "t", 1, 7, "bad_json", "d", "k", 1, "v1", 2, 1), FEAT_OK);
    ck_assert_int_eq(feat_wb_put_dead_letter(wb, "t", 0, 9, "too_old", NULL, "k", 1, "v2", 2, 1), FEAT_OK);
    static const char *const blobs[] = {"ab", "abc", "abd", "ac", "a"};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(feat_wb_put_blob(wb, FEAT_CF_META, blobs[i], strlen(blobs[i]), "x", 1), FEAT_OK);
    ck_assert_int_eq(feat_store_write(fx.st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_destroy(wb);

    visits_t v = VISITS(0);
    ck_assert_int_eq(feat_store_offsets(fx.st, on_offset_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "item_events/0=10,1;user_events/0=2,1;user_events/1=5,3;");
    v = VISITS(2);
    ck_assert_int_eq(feat_store_offsets(fx.st, on_offset_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "item_events/0=10,1;user_events/0=2,1;");

    v = VISITS(0);
    ck_assert_int_eq(feat_store_scan_online(fx.st, on_online_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "item/i1:1;user/a:1;user/b:1;");
    v = VISITS(1);
    ck_assert_int_eq(feat_store_scan_online(fx.st, on_online_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "item/i1:1;");

    /* entity order, newest first within an entity; item's rows are not visited */
    v = VISITS(0);
    ck_assert_int_eq(feat_store_scan_offline(fx.st, fx.user, on_offline_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "a@30/1/3=3;a@25/1/4=-1;a@10/1/2=2;b@20/0/1=1;");
    v = VISITS(2);
    ck_assert_int_eq(feat_store_scan_offline(fx.st, fx.user, on_offline_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "a@30/1/3=3;a@25/1/4=-1;");

    v = VISITS(0);
    ck_assert_int_eq(feat_store_history(fx.st, fx.user, "a", 1, 10, 29, on_hist_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "25/1/4=0;10/1/2=2;");
    v = VISITS(1);
    ck_assert_int_eq(feat_store_history(fx.st, fx.user, "a", 1, INT64_MIN, INT64_MAX, on_hist_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "30/1/3=3;");

    v = VISITS(0);
    ck_assert_int_eq(feat_store_all_labels(fx.st, on_label_src_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "l@50/w=0.5(1:4);m@100/x=1(0:1);m@200/y=0(0:2);m@300/z=1(0:3);");
    v = VISITS(3);
    ck_assert_int_eq(feat_store_all_labels(fx.st, on_label_src_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "l@50/w=0.5(1:4);m@100/x=1(0:1);m@200/y=0(0:2);");

    v = VISITS(0);
    ck_assert_int_eq(feat_store_labels(fx.st, "m", 100, 200, on_label_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "100/x=1;200/y=0;");
    v = VISITS(1);
    ck_assert_int_eq(feat_store_labels(fx.st, "m", INT64_MIN, INT64_MAX, on_label_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "100/x=1;");

    /* bounds inclusive; INT64_MAX reaches the last possible time; "mm" is another model */
    v = VISITS(0);
    ck_assert_int_eq(feat_store_predictions(fx.st, "m", 101, INT64_MAX, on_pred_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "200/y=v2:0.5;9223372036854775806/z=v3:0.75;");
    v = VISITS(0);
    ck_assert_int_eq(feat_store_predictions(fx.st, "m", 100, 200, on_pred_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "100/x=v1:0.25;200/y=v2:0.5;");
    v = VISITS(1);
    ck_assert_int_eq(feat_store_predictions(fx.st, "m", INT64_MIN, INT64_MAX, on_pred_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "100/x=v1:0.25;");

    v = VISITS(0);
    ck_assert_int_eq(feat_store_scan_blobs(fx.st, FEAT_CF_META, "ab", 2, on_blob_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "ab=x;abc=x;abd=x;");
    v = VISITS(2);
    ck_assert_int_eq(feat_store_scan_blobs(fx.st, FEAT_CF_META, "ab", 2, on_blob_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "ab=x;abc=x;");

    v = VISITS(0);
    ck_assert_int_eq(feat_store_dead_letters(fx.st, on_dl_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "t/0/9:too_old:v2;t/1/7:bad_json:v1;");
    v = VISITS(1);
    ck_assert_int_eq(feat_store_dead_letters(fx.st, on_dl_v, &v), FEAT_OK);
    ck_assert_str_eq(v.log, "t/0/9:too_old:v2;");

    /* a row that does not decode ends a scan with FEAT_ERR_CORRUPT after the rows before it */
    ck_assert_int_eq(feat_store_put_blob(fx.st, FEAT_CF_OFFSETS, "zz", 2, "x", 1), FEAT_OK);
    v = VISITS(0);
    ck_assert_int_eq(feat_store_offsets(fx.st, on_offset_v, &v), FEAT_ERR_CORRUPT);
    ck_assert_int_eq(v.n, 3);
    ck_assert_int_eq(feat_store_put_blob(fx.st, FEAT_CF_PREDICTIONS, "m\0\xff\xff\xff\xff\xff\xff\xff\xff", 10, "x", 1), FEAT_OK);
    v = VISITS(0);
    ck_assert_int_eq(feat_store_predictions(fx.st, "m", INT64_MIN, INT64_MAX, on_pred_v, &v), FEAT_ERR_CORRUPT);
    ck_assert_int_eq(v.n, 3);

    /* clearing offsets removes every key, decodable or not */
    uint64_t removed = 99;
    ck_assert_int_eq(feat_store_clear_offsets(fx.st, &removed), FEAT_OK);
    ck_assert_uint_eq(removed, 4);
    v = VISITS(0);
    ck_assert_int_eq(feat_store_offsets(fx.st, on_offset_v, &v), FEAT_OK);
    ck_assert_int_eq(v.n, 0);
    ck_assert_int_eq(feat_store_clear_offsets(fx.st, &removed), FEAT_OK);
    ck_assert_uint_eq(removed, 0);
    fx_free(&fx);
}
END_TEST

int main(void) {
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, out_of_order_never_overwrites_newer);
    tcase_add_test(tc, equal_times_higher_offset_wins_any_order);
    tcase_add_test(tc, duplicate_event_applied_once);
    tcase_add_test(tc, per_feature_merge);
    tcase_add_test(tc, random_merge_matches_model);
    tcase_add_test(tc, ttl_statuses);
    tcase_add_test(tc, point_in_time_reads);
    tcase_add_test(tc, history_range_newest_first);
    tcase_add_test(tc, sealed_batch_writes_every_row_once);
    tcase_add_test(tc, schema_ids_stable_and_type_change_refused);
    tcase_add_test(tc, offsets_labels_dead_letters_and_hooks);
    tcase_add_test(tc, row_codec_rejects_corrupt_bytes);
    tcase_add_test(tc, row_v2_is_compact_and_merges_like_v1);
    tcase_add_test(tc, row_v2_rejects_corrupt_bytes);
    tcase_add_test(tc, smallest_write_buffer_works);
    tcase_add_test(tc, checkpoint_is_a_consistent_copy);
    tcase_add_test(tc, every_scan_orders_bounds_and_stops);
    tcase_add_test(tc, aggregations_online_equal_point_in_time);
    tcase_add_test(tc, aggregations_at_negative_times);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
