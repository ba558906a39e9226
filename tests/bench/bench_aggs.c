/*
 * bench_aggs — aggregation state per entity as history grows (issue 11).
 *
 * One table with 10 double features and 10 aggregated ones (count, sum,
 * mean, min, max over 1h and 7d; agg_tile 1m, the default).  For each history
 * length (1, 2 and 4 weeks ending now) a fresh store receives, through
 * feat_wb_put_event, events for N entities every --every minutes each (with
 * jitter, interleaved across entities in event-time order as a stream would
 * bring them), is flushed and compacted (the tiles' expiry filter uses the
 * wall clock, as in featd), and the bytes of the tiles family (the
 * aggregation state) and of the offline family (history) per entity are
 * reported.  Tiles must stay flat: at most 7d over the block size (the top
 * level's tile, store/tile.h), + 2, blocks per entity, each holding the finer
 * tiles inside it; history grows with the weeks.
 * It also reads entity 0's 7d count back (feat_store_get_aggs), which must
 * not depend on the history's length.
 *
 * With --reads R (default 3) it also times, over every entity,
 * feat_store_get_aggs of the 5 aggregated features over 7d and, as the
 * baseline in the same run, feat_store_get_online of the 10 plain features:
 * one pass before the flush and compaction (tiles still merge operands,
 * folded by every read) and R passes after (one folded value per tile).
 *
 *   bench_aggs [--entities N] [--every MINUTES] [--weeks W,W,...] [--reads R] [--quick]
 *
 * --quick (ctest's smoke pass): 20 entities, 1 and 2 weeks.  It checks
 * nothing about time; it exits 1 only when the 7d count differs between
 * history lengths or the blocks held per entity pass the bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/testutil.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "store/store.h"

#define NF 10
#define WEEK_MS (7LL * 24 * 3600 * 1000)

static int N = 200, EVERY = 15;

typedef struct result {
    int weeks;
    uint64_t events, tiles_bytes, tiles_keys, history_bytes, online_bytes;
    int64_t count_7d;
    double write_s;
    double read_us[2], plain_us[2]; /* per entity: before compaction, after */
} result_t;

static int READS = 3;

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* us per entity to read the 10 aggregated features over 7d (and, as a
 * baseline, the 10 plain features) of every entity, READS passes. */
static void time_reads(feat_store_t *st, const feat_table_t *t, int reads, double *agg_us, double *plain_us) {
    const feat_table_conf_t *c = t->conf;
    uint16_t af[NF], pf[NF];
    size_t na = 0;
    for (size_t f = 0; f < c->nfeatures; f++) {
        size_t l = strlen(c->features[f].name);
        if (l > 3 && !strcmp(c->features[f].name + l - 3, "_7d") && na < NF) af[na++] = (uint16_t)f;
    }
    for (int f = 0; f < NF; f++) pf[f] = (uint16_t)f;
    feat_agg_reader_t *r = feat_agg_reader_new();
    feat_value_t out[NF];
    feat_buf_t strs = FEAT_BUF_INIT;
    char key[24];
    uint64_t t0 = feat_mono_ns();
    for (int p = 0; p < reads; p++)
        for (int e = 0; e < N; e++) {
            int kl = snprintf(key, sizeof(key), "u%d", e);
            feat_buf_reset(&strs);
            feat_store_get_aggs(st, t, key, (size_t)kl, feat_now_ms(), af, na, r, out, &strs);
        }
    uint64_t t1 = feat_mono_ns();
    for (int p = 0; p < reads; p++)
        for (int e = 0; e < N; e++) {
            int kl = snprintf(key, sizeof(key), "u%d", e);
            feat_store_get_online(st, t, key, (size_t)kl, pf, NF, feat_now_ms(), out, &strs);
        }
    uint64_t t2 = feat_mono_ns();
    *agg_us = (double)(t1 - t0) / 1e3 / ((double)reads * N);
    *plain_us = (double)(t2 - t1) / 1e3 / ((double)reads * N);
    feat_buf_free(&strs);
    feat_agg_reader_destroy(r);
}

static int run(feat_config_t *cfg, int weeks, result_t *res) {
    char *dir = tu_tmpdir(), path[512], err[256];
    snprintf(path, sizeof(path), "%s/db", dir);
    feat_store_conf_t sc = {.path = path, .tables = cfg->tables, .ntables = cfg->ntables,
                            .block_cache_bytes = cfg->store_block_cache, .write_buffer_bytes = cfg->store_write_buffer,
                            .write_buffers = (int)cfg->store_write_buffers};
    feat_store_t *st = feat_store_open(&sc, err, sizeof(err));
    if (!st) { fprintf(stderr, "store: %s\n", err); return 1; }
    const feat_table_t *t = feat_store_table(st, "txn");
    uint16_t fidx[NF];
    feat_value_t vals[NF];
    for (int f = 0; f < NF; f++) {
        fidx[f] = (uint16_t)f;
        memset(&vals[f], 0, sizeof(vals[f]));
        vals[f].type = FEAT_FT_DOUBLE;
    }
    /* each entity's next event time; events go out in time order (a stream) */
    int64_t now = feat_now_ms(), start = now - (int64_t)weeks * WEEK_MS, step = (int64_t)EVERY * 60000;
    int64_t *next = malloc((size_t)N * sizeof(int64_t)), offsets[8] = {0};
    for (int e = 0; e < N; e++) next[e] = start + (int64_t)(next_rand() % (uint64_t)step);
    feat_wb_t *wb = feat_wb_new(st);
    memset(res, 0, sizeof(*res));
    res->weeks = weeks;
    double t0 = (double)feat_mono_ns() / 1e9;
    /* a slot per minute: the entities whose next event falls in it (N is
     * small; a linear pass per minute is cheap enough for a benchmark) */
    for (int64_t m = start; m <= now; m += 60000) {
        for (int e = 0; e < N; e++) {
            while (next[e] < m + 60000 && next[e] <= now) {
                char key[24];
                int kl = snprintf(key, sizeof(key), "u%d", e);
                for (int f = 0; f < NF; f++) vals[f].v.d = (double)(next_rand() % 100000) / 100.0;
                int32_t part = e % 8;
                if (feat_wb_put_event(wb, t, key, (size_t)kl, next[e], part, offsets[part]++, fidx, vals, NF)) {
                    fprintf(stderr, "put_event failed\n");
                    return 1;
                }
                res->events++;
                /* every EVERY minutes on average: uniform in [EVERY/2, 3*EVERY/2) */
                next[e] += step / 2 + (int64_t)(next_rand() % (uint64_t)step);
            }
        }
        if (feat_wb_count(wb) >= 10000 || m + 60000 > now) {
            for (int p = 0; p < 8; p++) feat_wb_set_offset(wb, "txn", p, offsets[p], (uint64_t)offsets[p]);
            if (feat_store_write(st, wb, err, sizeof(err))) { fprintf(stderr, "write: %s\n", err); return 1; }
            feat_wb_clear(wb);
        }
    }
    res->write_s = (double)feat_mono_ns() / 1e9 - t0;
    feat_wb_destroy(wb);
    free(next);
    if (READS) time_reads(st, t, 1, &res->read_us[0], &res->plain_us[0]);
    if (feat_store_flush(st) || feat_store_compact(st)) { fprintf(stderr, "flush/compact failed\n"); return 1; }
    if (READS) time_reads(st, t, READS, &res->read_us[1], &res->plain_us[1]);
    res->tiles_bytes = feat_store_cf_bytes(st, FEAT_CF_TILES);
    res->tiles_keys = feat_store_estimate_keys(st, FEAT_CF_TILES);
    res->history_bytes = feat_store_cf_bytes(st, FEAT_CF_OFFLINE);
    res->online_bytes = feat_store_cf_bytes(st, FEAT_CF_ONLINE);
    /* entity 0's count over 7d, as an online read would give it now */
    const feat_table_conf_t *c = t->conf;
    uint16_t af = 0;
    for (size_t f = 0; f < c->nfeatures; f++)
        if (!strcmp(c->features[f].name, "n_7d")) af = (uint16_t)f;
    feat_agg_reader_t *r = feat_agg_reader_new();
    feat_value_t out;
    feat_buf_t strs = FEAT_BUF_INIT;
    feat_err_t rc = feat_store_get_aggs(st, t, "u0", 2, feat_now_ms(), &af, 1, r, &out, &strs);
    res->count_7d = rc == FEAT_OK && out.status == FEAT_ST_PRESENT ? out.v.i : -1;
    feat_buf_free(&strs);
    feat_agg_reader_destroy(r);
    feat_store_close(st);
    tu_rmrf(dir);
    free(dir);
    return 0;
}

int main(int argc, char **argv) {
    char weeks_arg[64] = "1,2,4";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--entities") && i + 1 < argc) N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--every") && i + 1 < argc) EVERY = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--weeks") && i + 1 < argc) snprintf(weeks_arg, sizeof(weeks_arg), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--reads") && i + 1 < argc) READS = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) { N = 20; READS = 1; snprintf(weeks_arg, sizeof(weeks_arg), "1,2"); }
        else {
            fprintf(stderr, "usage: bench_aggs [--entities N] [--every MINUTES] [--weeks W,W,...] [--reads R] [--quick]\n");
            return 2;
        }
    }
    if (N < 1 || EVERY < 1) return 2;
    feat_log_set_level(FEAT_LOG_WARN);
    char cfgtext[1024], err[256];
    int o = snprintf(cfgtext, sizeof(cfgtext), "[kafka]\nembedded = false\nbootstrap.servers = none:9092\n"
                                               "[table txn]\ntopic = txn\n");
    for (int f = 0; f < NF; f++) o += snprintf(cfgtext + o, sizeof(cfgtext) - (size_t)o, "feature.f%d = double\n", f);
    snprintf(cfgtext + o, sizeof(cfgtext) - (size_t)o,
             "agg.n = count(f0) over 1h, 7d\nagg.s = sum(f1) over 1h, 7d\nagg.m = mean(f2) over 1h, 7d\n"
             "agg.lo = min(f3) over 1h, 7d\nagg.hi = max(f4) over 1h, 7d\n");
    feat_config_t *cfg = feat_config_parse(cfgtext, strlen(cfgtext), err, sizeof(err));
    if (!cfg) { fprintf(stderr, "config: %s\n", err); return 1; }
    printf("%d entities, an event every ~%d min each; 10 aggregations (5 over 1h, 5 over 7d), agg_tile 1m\n", N, EVERY);
    printf("%6s %10s %9s %13s %15s %16s %15s %9s\n", "weeks", "events", "write s", "blocks/entity",
           "tile B/entity", "history B/entity", "online B/entity", "n_7d(u0)");
    result_t res[8];
    int nr = 0, fail = 0;
    for (char *w = strtok(weeks_arg, ","); w && nr < 8; w = strtok(NULL, ",")) {
        if (run(cfg, atoi(w), &res[nr])) return 1;
        result_t *r = &res[nr++];
        printf("%6d %10llu %9.2f %13.1f %15.0f %16.0f %15.0f %9lld\n", r->weeks, (unsigned long long)r->events,
               r->write_s, (double)r->tiles_keys / N, (double)r->tiles_bytes / N, (double)r->history_bytes / N,
               (double)r->online_bytes / N, (long long)r->count_7d);
        fflush(stdout);
        if (READS)
            printf("       read us/entity: 5 aggregates over 7d %.1f before compaction, %.1f after; "
                   "10 plain features %.1f, %.1f\n", r->read_us[0], r->read_us[1], r->plain_us[0], r->plain_us[1]);
        /* the blocks of the 7d window, two of slack, and the lifetime tile
         * (docs/ARCHITECTURE.md, "Aggregations") */
        int64_t block_ms = 0;
        for (int l = 0; l < 3; l++)
            if (cfg->tables[0].agg_level_ms[l] > 0) block_ms = cfg->tables[0].agg_level_ms[l];
        double bound = (double)(7 * 86400000LL) / (double)block_ms + 2;
        if ((double)r->tiles_keys / N > bound + 1) fail = 1;
    }
    if (nr > 1)
        printf("last / first history length: tiles %.2fx, history %.2fx (history is %.1fx longer)\n",
               (double)res[nr - 1].tiles_bytes / (double)res[0].tiles_bytes,
               (double)res[nr - 1].history_bytes / (double)res[0].history_bytes,
               (double)res[nr - 1].weeks / res[0].weeks);
    /* every history ends with the same 7 days of density but not the same
     * draws; the count must not grow with the length of the history */
    for (int i = 1; i < nr; i++)
        if (res[i].count_7d < 0 || res[i].count_7d > res[0].count_7d * 3 / 2 + 10) fail = 1;
    feat_config_free(cfg);
    if (fail) fprintf(stderr, "bench_aggs: state not bounded by the 7d window\n");
    return fail;
}
