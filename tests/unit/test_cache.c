/* Unit tests for serve/cache.c and serve/lookup.c: hits and misses, cached
 * absences, TTL evaluated at read time, the byte bound, aggregated features
 * cached per tile (equal to an uncached read at every time), and — with a
 * writer and readers racing — that no lookup starting after a batch
 * committed ever returns an older value, of a row or of an aggregate. */
#include "testutil.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/config.h"
#include "serve/cache.h"
#include "serve/lookup.h"
#include "store/store.h"

static const char *cfg_text = "[table t]\ntopic = x\nttl = 10s\nfeature.v = int64\nfeature.s = string\n"
                              "agg_tile = 1m\nagg.n = count(v) over 2m, lifetime\nagg.l = last(s) over 2m\n";

typedef struct fx {
    char *dir;
    feat_config_t *cfg;
    feat_store_t *st;
    feat_cache_t *cache;
    const feat_table_t *t;
} fx_t;

static fx_t fx_new(size_t cache_bytes) {
    fx_t f = {0};
    char err[256], path[512];
    f.dir = tu_tmpdir();
    f.cfg = feat_config_parse(cfg_text, strlen(cfg_text), err, sizeof(err));
    ck_assert_ptr_nonnull(f.cfg);
    snprintf(path, sizeof(path), "%s/db", f.dir);
    feat_store_conf_t sc = {.path = path, .tables = f.cfg->tables, .ntables = f.cfg->ntables,
                            .block_cache_bytes = 8 << 20, .write_buffer_bytes = 8 << 20};
    f.st = feat_store_open(&sc, err, sizeof(err));
    ck_assert_msg(f.st != NULL, "%s", err);
    feat_cache_conf_t cc = {.max_bytes = cache_bytes, .nshards = 8};
    f.cache = feat_cache_new(&cc, NULL, err, sizeof(err));
    ck_assert_msg(f.cache != NULL, "%s", err);
    feat_store_set_write_hook(f.st, feat_cache_write_hook, f.cache);
    f.t = feat_store_table(f.st, "t");
    return f;
}

static uint16_t fidx_of(const fx_t *f, const char *name) {
    int i = feat_table_feature_index(f->t->conf, name, strlen(name));
    ck_assert_msg(i >= 0, "no feature %s", name);
    return (uint16_t)i;
}

static void fx_free(fx_t *f) {
    feat_store_set_write_hook(f->st, NULL, NULL);
    feat_cache_destroy(f->cache);
    feat_store_close(f->st);
    feat_config_free(f->cfg);
    tu_rmrf(f->dir);
    free(f->dir);
}

static void put(fx_t *f, feat_wb_t *wb, const char *key, int64_t ts, int64_t v, int64_t off) {
    uint16_t fi[2] = {0, 1};
    char s[32];
    snprintf(s, sizeof(s), "s%lld", (long long)v);
    feat_value_t vals[2] = {{0}};
    vals[0].type = FEAT_FT_INT64;
    vals[0].v.i = v;
    vals[1].type = FEAT_FT_STRING;
    vals[1].v.s = s;
    vals[1].slen = (uint32_t)strlen(s);
    ck_assert_int_eq(feat_wb_put_event(wb, f->t, key, strlen(key), ts, 0, off, fi, vals, 2), FEAT_OK);
}

static void commit(fx_t *f, feat_wb_t *wb) {
    char err[256];
    ck_assert_int_eq(feat_store_write(f->st, wb, err, sizeof(err)), FEAT_OK);
    feat_wb_clear(wb);
}

START_TEST(hits_misses_absences_ttl) {
    fx_t f = fx_new(1 << 20);
    feat_wb_t *wb = feat_wb_new(f.st);
    put(&f, wb, "a", 1000, 7, 1);
    commit(&f, wb);
    const char *keys[2] = {"a", "ghost"};
    size_t lens[2] = {1, 5};
    uint16_t fi[2] = {0, 1};
    feat_value_t vals[4];
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT;
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(feat_online_lookup(f.st, f.cache, f.t, 2, keys, lens, fi, 2, 2000, vals, &ls), FEAT_OK);
        ck_assert_int_eq(vals[0].status, FEAT_ST_PRESENT);
        ck_assert_int_eq(vals[0].v.i, 7);
        ck_assert_int_eq(vals[1].slen, 2);
        ck_assert(memcmp(vals[1].v.s, "s7", 2) == 0);
        ck_assert_int_eq(vals[2].status, FEAT_ST_NOT_FOUND);
        ck_assert_int_eq(vals[3].status, FEAT_ST_NOT_FOUND);
        feat_lookup_scratch_free(&ls);
    }
    feat_cache_stats_t s;
    feat_cache_get_stats(f.cache, &s);
    ck_assert_uint_eq(s.misses, 2);  /* first round only: the absence is cached too */
    ck_assert_uint_eq(s.hits, 4);
    ck_assert_uint_eq(s.entries, 2);
    /* TTL is judged when read, from the cached event time */
    ck_assert_int_eq(feat_online_lookup(f.st, f.cache, f.t, 1, keys, lens, fi, 1, 1000 + 10001, vals, &ls), FEAT_OK);
    ck_assert_int_eq(vals[0].status, FEAT_ST_EXPIRED);
    ck_assert_int_eq(vals[0].v.i, 7);
    feat_lookup_scratch_free(&ls);
    /* a write drops the entry and the next read sees the new value */
    put(&f, wb, "a", 1500, 8, 2);
    put(&f, wb, "ghost", 1500, 9, 3);
    commit(&f, wb);
    ck_assert_int_eq(feat_online_lookup(f.st, f.cache, f.t, 2, keys, lens, fi, 1, 2000, vals, &ls), FEAT_OK);
    ck_assert_int_eq(vals[0].v.i, 8);
    ck_assert_int_eq(vals[1].status, FEAT_ST_PRESENT);
    ck_assert_int_eq(vals[1].v.i, 9);
    feat_lookup_scratch_free(&ls);
    feat_cache_get_stats(f.cache, &s);
    ck_assert_uint_eq(s.invalidations, 2);
    feat_wb_destroy(wb);
    fx_free(&f);
}
END_TEST

/* Regression: many cached strings in one lookup (the strings buffer grows
 * and moves while hits are copied; every value must still point at its own
 * bytes), mixed with misses. */
START_TEST(many_string_hits_in_one_lookup) {
    fx_t f = fx_new(8 << 20);
    feat_wb_t *wb = feat_wb_new(f.st);
    enum { N = 600 };
    static char names[N][16];
    const char *keys[N];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "k%d", i);
        keys[i] = names[i];
        lens[i] = strlen(names[i]);
        put(&f, wb, names[i], 1000, 100000 + i, i + 1);
    }
    commit(&f, wb);
    uint16_t fi[2] = {1, 0};
    static feat_value_t vals[2 * N];
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT;
    /* warm every other key, then read all: hits and misses interleaved */
    for (int i = 0; i < N; i += 2)
        ck_assert_int_eq(feat_online_lookup(f.st, f.cache, f.t, 1, &keys[i], &lens[i], fi, 2, 2000, vals, &ls), FEAT_OK);
    feat_lookup_scratch_free(&ls);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(feat_online_lookup(f.st, f.cache, f.t, N, keys, lens, fi, 2, 2000, vals, &ls), FEAT_OK);
        for (int i = 0; i < N; i++) {
            char want[32];
            snprintf(want, sizeof(want), "s%d", 100000 + i);
            ck_assert_int_eq(vals[2 * i].slen, strlen(want));
            ck_assert_msg(memcmp(vals[2 * i].v.s, want, strlen(want)) == 0, "key %d round %d", i, round);
            ck_assert_int_eq(vals[2 * i + 1].v.i, 100000 + i);
        }
        feat_lookup_scratch_free(&ls);
    }
    feat_wb_destroy(wb);
    fx_free(&f);
}
END_TEST

START_TEST(byte_bound_holds) {
    fx_t f = fx_new(64 * 1024);
    feat_wb_t *wb = feat_wb_new(f.st);
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        put(&f, wb, key, 1000, i, i);
    }
    commit(&f, wb);
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT;
    uint16_t fi = 0;
    feat_value_t v;
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        const char *k = key;
        size_t l = strlen(key);
        ck_assert_int_eq(feat_online_lookup(f.st, f.cache, f.t, 1, &k, &l, &fi, 1, 2000, &v, &ls), FEAT_OK);
        ck_assert_int_eq(v.v.i, i);
    }
    feat_lookup_scratch_free(&ls);
    feat_cache_stats_t s;
    feat_cache_get_stats(f.cache, &s);
    ck_assert_msg(s.bytes <= 64 * 1024, "cache holds %llu bytes", (unsigned long long)s.bytes);
    ck_assert_uint_gt(s.evictions, 0);
    ck_assert_uint_gt(s.entries, 0);
    feat_wb_destroy(wb);
    fx_free(&f);
}
END_TEST

/* Aggregated features are cached per tile: every answer equals an uncached
 * read at the same time, a new tile recomputes (the window's old edge moved),
 * a write to the entity drops them, and features asked for separately
 * accumulate in one entry. */
static void agg_expect(fx_t *f, const char *key, int64_t now, const uint16_t *fi, size_t n, int want_hit) {
    size_t kl = strlen(key);
    feat_value_t got[4], ref[4];
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT, lr = FEAT_LOOKUP_SCRATCH_INIT;
    feat_cache_stats_t a, b;
    feat_cache_get_stats(f->cache, &a);
    ck_assert_int_eq(feat_online_lookup(f->st, f->cache, f->t, 1, &key, &kl, fi, n, now, got, &ls), FEAT_OK);
    feat_cache_get_stats(f->cache, &b);
    ck_assert_int_eq(feat_online_lookup(f->st, NULL, f->t, 1, &key, &kl, fi, n, now, ref, &lr), FEAT_OK);
    ck_assert_msg(b.agg_hits - a.agg_hits == (uint64_t)want_hit, "%s at %lld: hit %d expected",
                  key, (long long)now, want_hit);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(got[i].status, ref[i].status);
        ck_assert_int_eq(got[i].type, ref[i].type);
        if (ref[i].status == FEAT_ST_NOT_FOUND) continue;
        ck_assert_int_eq(got[i].ts, ref[i].ts);
        if (ref[i].type == FEAT_FT_STRING) {
            ck_assert_uint_eq(got[i].slen, ref[i].slen);
            ck_assert(memcmp(got[i].v.s, ref[i].v.s, ref[i].slen) == 0);
        } else {
            ck_assert_int_eq(got[i].v.i, ref[i].v.i);
        }
    }
    feat_lookup_scratch_free(&ls);
    feat_lookup_scratch_free(&lr);
}

static int64_t agg_count(fx_t *f, const char *key, int64_t now) {
    size_t kl = strlen(key);
    uint16_t fi = fidx_of(f, "n_2m");
    feat_value_t v;
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT;
    ck_assert_int_eq(feat_online_lookup(f->st, f->cache, f->t, 1, &key, &kl, &fi, 1, now, &v, &ls), FEAT_OK);
    feat_lookup_scratch_free(&ls);
    return v.v.i;
}

START_TEST(aggregates_cached_per_tile) {
    fx_t f = fx_new(1 << 20);
    feat_wb_t *wb = feat_wb_new(f.st);
    put(&f, wb, "a", 1000, 1, 1);      /* tile 0 */
    put(&f, wb, "a", 61000, 2, 2);     /* tile 1 */
    commit(&f, wb);
    uint16_t all[4] = {fidx_of(&f, "n_2m"), fidx_of(&f, "l_2m"), fidx_of(&f, "n_lifetime"), fidx_of(&f, "v")};
    /* as of 100 s: the 2m window reads tiles -1..1, both events */
    agg_expect(&f, "a", 100000, all, 4, 0);
    ck_assert_int_eq(agg_count(&f, "a", 100000), 2);
    agg_expect(&f, "a", 100000, all, 4, 1);
    agg_expect(&f, "a", 119999, all, 4, 1); /* same tile pair */
    /* 120 s is a tile edge: the window starts a tile later (0..1), tile
     * floor((t - 1) / T) is still 1: another pair, recomputed */
    agg_expect(&f, "a", 120000, all, 4, 0);
    agg_expect(&f, "a", 120001, all, 4, 0);
    ck_assert_int_eq(agg_count(&f, "a", 150000), 2);
    /* 190 s: tiles 1..3, the first event has left the window */
    ck_assert_int_eq(agg_count(&f, "a", 190000), 1);
    agg_expect(&f, "a", 190000, all, 4, 0); /* n_2m alone was cached */
    agg_expect(&f, "a", 190000, all, 4, 1);
    /* a write drops the entity's aggregates */
    put(&f, wb, "a", 185000, 3, 3);
    commit(&f, wb);
    ck_assert_int_eq(agg_count(&f, "a", 190000), 2);
    agg_expect(&f, "a", 190000, all, 4, 0);
    agg_expect(&f, "a", 190000, all, 4, 1);
    /* features asked for separately accumulate in one entry */
    uint16_t one = all[1], other = all[2], two[2] = {all[2], all[1]};
    agg_expect(&f, "b", 190000, &one, 1, 0);     /* an absent entity: NOT_FOUND / 0, cached */
    agg_expect(&f, "b", 190000, &one, 1, 1);
    agg_expect(&f, "b", 190000, &other, 1, 0);   /* n_lifetime not known yet: added to the entry */
    agg_expect(&f, "b", 190000, two, 2, 1);      /* both, from one entry */
    agg_expect(&f, "b", 190000, &one, 1, 1);
    feat_cache_stats_t s;
    feat_cache_get_stats(f.cache, &s);
    ck_assert_uint_gt(s.agg_misses, 0);
    ck_assert_uint_gt(s.invalidations, 0);
    feat_wb_destroy(wb);
    fx_free(&f);
}
END_TEST

/* ---- writer vs readers ---------------------------------------------------- */

enum { NKEYS = 40, VERSIONS = 1500, READERS = 3 };
static fx_t rf;
static atomic_llong committed;   /* highest version whose write returned */
static atomic_int done;
static atomic_llong violations, reads;
static int read_aggs;            /* readers read n_lifetime (a count of the key's writes) instead of v */

static void *writer(void *arg) {
    (void)arg;
    feat_wb_t *wb = feat_wb_new(rf.st);
    char key[16];
    for (int64_t v = 1; v <= VERSIONS; v++) {
        /* each batch touches a rotating half of the keys: others stay cached */
        for (int k = 0; k < NKEYS; k++) {
            if ((k + v) % 2) continue;
            snprintf(key, sizeof(key), "e%d", k);
            put(&rf, wb, key, 1000 + v, v, v * NKEYS + k);
        }
        commit(&rf, wb);
        atomic_store(&committed, v);
    }
    feat_wb_destroy(wb);
    atomic_store(&done, 1);
    return NULL;
}

static void *reader(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT;
    int64_t last[NKEYS] = {0};
    char keys[NKEYS][16];
    const char *kp[NKEYS];
    size_t kl[NKEYS];
    for (int k = 0; k < NKEYS; k++) {
        snprintf(keys[k], sizeof(keys[k]), "e%d", k);
        kp[k] = keys[k];
        kl[k] = strlen(keys[k]);
    }
    uint16_t fi = read_aggs ? fidx_of(&rf, "n_lifetime") : 0;
    feat_value_t v[NKEYS];
    while (!atomic_load(&done)) {
        int64_t c = atomic_load(&committed); /* read before the lookup starts */
        int first = (int)(rand_r(&seed) % NKEYS), n = 1 + (int)(rand_r(&seed) % 8);
        if (first + n > NKEYS) n = NKEYS - first;
        if (feat_online_lookup(rf.st, rf.cache, rf.t, (size_t)n, kp + first, kl + first, &fi, 1, 5000, v, &ls)) {
            atomic_fetch_add(&violations, 1);
            break;
        }
        for (int i = 0; i < n; i++) {
            int k = first + i;
            int64_t got = v[i].status == FEAT_ST_NOT_FOUND ? 0 : v[i].v.i;
            /* the newest version written for key k at or before c */
            int64_t want = c;
            while (want > 0 && (k + want) % 2) want--;
            if (read_aggs) want = k % 2 ? (c + 1) / 2 : c / 2; /* the writes of key k up to c */
            if (got < want || got < last[k]) atomic_fetch_add(&violations, 1);
            last[k] = got;
        }
        atomic_fetch_add(&reads, 1);
        feat_lookup_scratch_free(&ls);
    }
    feat_lookup_scratch_free(&ls);
    return NULL;
}

static void race(int aggs) {
    read_aggs = aggs;
    rf = fx_new(1 << 20);
    atomic_store(&committed, 0);
    atomic_store(&done, 0);
    atomic_store(&violations, 0);
    atomic_store(&reads, 0);
    pthread_t w, r[READERS];
    for (int i = 0; i < READERS; i++) pthread_create(&r[i], NULL, reader, (void *)(uintptr_t)(i + 1));
    pthread_create(&w, NULL, writer, NULL);
    pthread_join(w, NULL);
    for (int i = 0; i < READERS; i++) pthread_join(r[i], NULL);
    feat_cache_stats_t s;
    feat_cache_get_stats(rf.cache, &s);
    ck_assert_msg(atomic_load(&violations) == 0, "%lld stale or failed reads out of %lld",
                  (long long)atomic_load(&violations), (long long)atomic_load(&reads));
    ck_assert_int_gt(atomic_load(&reads), 100);
    ck_assert_uint_gt(aggs ? s.agg_hits : s.hits, 0); /* the race was with a working cache */
    fx_free(&rf);
}

START_TEST(no_stale_read_after_commit) { race(0); }
END_TEST

START_TEST(no_stale_aggregate_after_commit) { race(1); }
END_TEST

int main(void) {
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("cache");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, hits_misses_absences_ttl);
    tcase_add_test(tc, many_string_hits_in_one_lookup);
    tcase_add_test(tc, byte_bound_holds);
    tcase_add_test(tc, aggregates_cached_per_tile);
    tcase_add_test(tc, no_stale_read_after_commit);
    tcase_add_test(tc, no_stale_aggregate_after_commit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
