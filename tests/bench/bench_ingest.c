/*
 * bench_ingest — featd's end-to-end ingest rate against two baselines measured
 * in the same run, on the same data, from the same broker:
 *   A. raw librdkafka consume rate (assign + consume_batch_queue, no work);
 *   B. raw store write rate for the same rows (already decoded; online merge
 *      operand + history row + offsets per batch; WAL on, sync off);
 *   C. featd's ingest (consumer group, decode, validate, write batch).
 * Events have 10 double features, protobuf (or JSON with --json).
 *
 *   bench_ingest [--events N] [--partitions P] [--rounds R] [--json]
 *   bench_ingest --only aggs [--rounds R]   featd's ingest alternately without and
 *        with 10 aggregations (count, sum, mean, min, max over 1h and 7d) of the
 *        same events: the cost of the tile operands (issue 11)
 *
 * Prints one line per measurement and a summary with the ratios.  The broker
 * is librdkafka's mock cluster in this process (it keeps ~5 MiB per
 * partition, so N / P must stay under ~20k protobuf events).
 */
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../unit/testutil.h"
#include "common/clock.h"
#include "common/log.h"
#include "featd/v1/event.pb-c.h"
#include "ingest/broker.h"
#include "ingest/decode.h"
#include "ingest/ingest.h"
#include "drift/monitor.h"
#include "store/store.h"

#define NF 10

typedef struct row {
    char key[16];
    int64_t ts;
    double v[NF];
    int32_t partition;
    int64_t offset;
} row_t;

static int N = 400000, P = 32, ROUNDS = 3, JSON = 0;
static const char *WRITE_BUFFER = NULL; /* featd's default unless --write-buffer */
static const char *ONLY = NULL; /* consume | store | featd | drift | aggs */
static int TRACE = 0;            /* print featd's progress every 100 ms (shows stalls) */
static char KAFKA_EXTRA[512];    /* --kafka KEY=VALUE lines for featd's [kafka] section */
static const char *AB = NULL;    /* --ab SECTION.KEY=A,B: featd alternately with value A and B */
static const char *TOPIC = "bench_events";

static double now_s(void) { return (double)feat_mono_ns() / 1e9; }

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void produce(const char *bs) {
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bs, err, sizeof(err));
    rd_kafka_conf_set(c, "linger.ms", "50", err, sizeof(err));
    rd_kafka_conf_set(c, "batch.num.messages", "10000", err, sizeof(err));
    rd_kafka_conf_set(c, "queue.buffering.max.messages", "2000000", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    uint64_t s = 88172645463325252ull;
    int64_t t0 = feat_now_ms() - 3600000;
    char *names[NF];
    for (int f = 0; f < NF; f++) {
        names[f] = malloc(8);
        snprintf(names[f], 8, "f%d", f);
    }
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof(key), "e%d", i % 100000);
        uint8_t buf[512];
        size_t len;
        double vals[NF];
        for (int f = 0; f < NF; f++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            vals[f] = (double)(s % 1000000) / 1000.0;
        }
        if (JSON) {
            int o = snprintf((char *)buf, sizeof(buf), "{\"table\":\"bench\",\"ts\":%lld,\"features\":{", (long long)(t0 + i));
            for (int f = 0; f < NF; f++) o += snprintf((char *)buf + o, sizeof(buf) - (size_t)o, "%s\"f%d\":%.3f", f ? "," : "", f, vals[f]);
            o += snprintf((char *)buf + o, sizeof(buf) - (size_t)o, "}}");
            len = (size_t)o;
        } else {
            Featd__V1__FeatureEvent ev = FEATD__V1__FEATURE_EVENT__INIT;
            Featd__V1__FeatureEvent__FeaturesEntry ents[NF], *ptrs[NF];
            Featd__V1__Value v[NF];
            ev.table = "bench";
            ev.ts = t0 + i;
            for (int f = 0; f < NF; f++) {
                featd__v1__feature_event__features_entry__init(&ents[f]);
                featd__v1__value__init(&v[f]);
                v[f].kind_case = FEATD__V1__VALUE__KIND_DOUBLE_VALUE;
                v[f].double_value = vals[f];
                ents[f].key = names[f];
                ents[f].value = &v[f];
                ptrs[f] = &ents[f];
            }
            ev.n_features = NF;
            ev.features = ptrs;
            len = featd__v1__feature_event__pack(&ev, buf);
        }
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                                 RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
    }
    rd_kafka_flush(rk, 60000);
    rd_kafka_destroy(rk);
    for (int f = 0; f < NF; f++) free(names[f]);
}

/* Baseline A, and the source of the rows for baseline B when rows != NULL. */
static double raw_consume(const char *bs, feat_config_t *cfg, row_t *rows) {
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bs, err, sizeof(err));
    rd_kafka_conf_set(c, "group.id", "bench-raw", err, sizeof(err));
    rd_kafka_conf_set(c, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(c, "fetch.wait.max.ms", "10", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(P);
    for (int p = 0; p < P; p++) rd_kafka_topic_partition_list_add(l, TOPIC, p)->offset = 0;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t **msgs = malloc(10000 * sizeof(*msgs));
    feat_decode_conf_t dconf;
    feat_decode_conf_from_config(cfg, &dconf);
    feat_decoder_t *dec = rows ? feat_decoder_new(&dconf) : NULL;
    feat_decoded_t *d = rows ? malloc(sizeof(*d)) : NULL;
    long got = 0;
    double t_first = 0, t_last = 0;
    int first_n = 0;
    while (got < N) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 1000, msgs, 10000);
        if (n <= 0) continue;
        if (!t_first) { t_first = now_s(); first_n = (int)n; }
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (!m->err && rows) {
                feat_decode(dec, TOPIC, m->key, m->key_len, m->payload, m->len, NULL, 0, feat_now_ms(), d);
                row_t *r = &rows[got];
                snprintf(r->key, sizeof(r->key), "%.*s", (int)d->klen, d->key);
                r->ts = d->ts;
                for (int f = 0; f < NF; f++) r->v[d->fidx[f]] = d->vals[f].v.d;
                r->partition = m->partition;
                r->offset = m->offset;
            }
            if (!m->err) got++;
            rd_kafka_message_destroy(m);
        }
        t_last = now_s();
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(msgs);
    free(d);
    feat_decoder_destroy(dec);
    return (double)(N - first_n) / (t_last - t_first);
}

static feat_store_t *open_store(feat_config_t *cfg, const char *dir) {
    char path[512], err[256];
    snprintf(path, sizeof(path), "%s/db", dir);
    feat_store_conf_t sc = {.path = path, .tables = cfg->tables, .ntables = cfg->ntables,
                            .block_cache_bytes = cfg->store_block_cache, .write_buffer_bytes = cfg->store_write_buffer,
                            .write_buffers = (int)cfg->store_write_buffers};
    feat_store_t *st = feat_store_open(&sc, err, sizeof(err));
    if (!st) { fprintf(stderr, "store: %s\n", err); exit(1); }
    return st;
}

static double raw_store(feat_config_t *cfg, const row_t *rows) {
    char *dir = tu_tmpdir();
    feat_store_t *st = open_store(cfg, dir);
    const feat_table_t *t = feat_store_table(st, "bench");
    feat_wb_t *wb = feat_wb_new(st);
    uint16_t fidx[NF];
    feat_value_t vals[NF];
    for (int f = 0; f < NF; f++) { fidx[f] = (uint16_t)f; memset(&vals[f], 0, sizeof(vals[f])); vals[f].type = FEAT_FT_DOUBLE; }
    char err[256];
    double t0 = now_s();
    for (int i = 0; i < N; i += 10000) {
        feat_wb_clear(wb);
        int end = i + 10000 < N ? i + 10000 : N;
        for (int k = i; k < end; k++) {
            for (int f = 0; f < NF; f++) vals[f].v.d = rows[k].v[f];
            feat_wb_put_event(wb, t, rows[k].key, strlen(rows[k].key), rows[k].ts, rows[k].partition, rows[k].offset,
                              fidx, vals, NF);
        }
        for (int p = 0; p < P; p++) feat_wb_set_offset(wb, TOPIC, p, end, (uint64_t)end);
        if (feat_store_write(st, wb, err, sizeof(err))) { fprintf(stderr, "%s\n", err); exit(1); }
    }
    double dt = now_s() - t0;
    feat_wb_destroy(wb);
    feat_store_close(st);
    tu_rmrf(dir);
    free(dir);
    return N / dt;
}

static void observe(void *arg, uint32_t table, const char *key, size_t klen, int64_t ts, const uint16_t *fidx,
                    const feat_value_t *vals, size_t n) {
    (void)key; (void)klen;
    feat_drift_observe(arg, table, fidx, vals, n, ts);
}

static double featd_ingest_with(const char *bs, feat_config_t *cfg, int round, int drift);
static double featd_ingest(const char *bs, feat_config_t *cfg, int round) { return featd_ingest_with(bs, cfg, round, 0); }

static double featd_ingest_with(const char *bs, feat_config_t *cfg, int round, int drift) {
    char *dir = tu_tmpdir();
    feat_store_t *st = open_store(cfg, dir);
    char err[256], group[64];
    snprintf(group, sizeof(group), "bench-featd-%d-%d-%d", (int)getpid(), round, drift);
    feat_config_set(cfg, "kafka.group.id", group, err, sizeof(err));
    feat_ingest_conf_t ic = {.kafka = cfg->kafka, .nkafka = cfg->nkafka, .bootstrap = bs,
                             .batch_max = cfg->ingest_batch_max, .commit_ms = cfg->ingest_commit_ms,
                             .metrics = feat_metrics_new()};
    feat_decode_conf_from_config(cfg, &ic.decode);
    feat_ingest_t *ing = feat_ingest_new(&ic, st, err, sizeof(err));
    feat_drift_t *dm = NULL;
    if (drift) {
        feat_drift_conf_t dc;
        feat_drift_conf_from_config(cfg, &dc);
        dm = feat_drift_new(&dc, st, NULL, ic.metrics, err, sizeof(err));
        if (!dm || feat_drift_start(dm)) { fprintf(stderr, "drift: %s\n", err); exit(1); }
        feat_ingest_set_observer(ing, observe, dm);
    }
    if (!ing || feat_ingest_start(ing, err, sizeof(err))) { fprintf(stderr, "ingest: %s\n", err); exit(1); }
    feat_ingest_stats_t s;
    double t_first = 0;
    uint64_t first_n = 0;
    for (;;) {
        feat_ingest_get_stats(ing, &s);
        if (!t_first && s.events) { t_first = now_s(); first_n = s.events; }
        if (TRACE && t_first) {
            static double last;
            double tn = now_s();
            if (tn - last >= 0.1) {
                last = tn;
                feat_store_memory_t mem;
                feat_store_memory(st, &mem);
                printf("  t=%.2f s events=%llu memtables=%.0f MiB%s\n", tn - t_first, (unsigned long long)s.events,
                       (double)mem.memtables / 1048576, mem.write_stopped ? " (RocksDB writes stopped)" : "");
            }
        }
        if (s.events >= (uint64_t)N) break;
        if (s.failed) { fprintf(stderr, "ingest failed: %s\n", s.error); exit(1); }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    double rate = (double)(N - first_n) / (now_s() - t_first);
    feat_ingest_destroy(ing);
    if (cfg->ntables && cfg->tables[0].naggs && round < 2) /* --only aggs: shows the tiles were written */
        printf("  (aggregations: ~%llu tile keys)\n", (unsigned long long)feat_store_estimate_keys(st, FEAT_CF_TILES));
    if (dm) {
        feat_drift_stats_t ds;
        feat_drift_get_stats(dm, &ds);
        printf("  (drift: %llu windows judged, %llu delayed)\n", (unsigned long long)ds.windows_closed,
               (unsigned long long)ds.windows_delayed);
        feat_drift_destroy(dm);
    }
    feat_metrics_destroy(ic.metrics);
    feat_store_close(st);
    tu_rmrf(dir);
    free(dir);
    return rate;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc) N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--partitions") && i + 1 < argc) P = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) ROUNDS = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) JSON = 1;
        else if (!strcmp(argv[i], "--write-buffer") && i + 1 < argc) WRITE_BUFFER = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) ONLY = argv[++i];
        else if (!strcmp(argv[i], "--trace")) TRACE = 1;
        else if (!strcmp(argv[i], "--ab") && i + 1 < argc) AB = argv[++i];
        else if (!strcmp(argv[i], "--kafka") && i + 1 < argc) {
            size_t l = strlen(KAFKA_EXTRA);
            snprintf(KAFKA_EXTRA + l, sizeof(KAFKA_EXTRA) - l, "%s\n", argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_ingest [--events N] [--partitions P] [--rounds R] [--json] [--write-buffer SIZE]\n"
                            "                    [--only consume|store|featd|drift|aggs] [--kafka KEY=VALUE]... [--trace]\n"
                            "                    [--ab SECTION.KEY=A,B]\n");
            return 2;
        }
    }
    feat_log_set_level(FEAT_LOG_WARN);
    char err[512];
    feat_broker_t *b = feat_broker_new(1, err, sizeof(err));
    if (!b || feat_broker_create_topic(b, TOPIC, P)) { fprintf(stderr, "broker: %s\n", err); return 1; }
    const char *bs = feat_broker_bootstraps(b);
    char cfgtext[2048];
    int o = snprintf(cfgtext, sizeof(cfgtext),
                     "[kafka]\nembedded = false\nbootstrap.servers = %s\nsession.timeout.ms = 6000\n%s"
                     "[store]\n%s%s\n[ingest]\nbatch_max = 10000\n[table bench]\ntopic = %s\n", bs,
                     KAFKA_EXTRA, WRITE_BUFFER ? "write_buffer = " : "", WRITE_BUFFER ? WRITE_BUFFER : "", TOPIC);
    for (int f = 0; f < NF; f++) o += snprintf(cfgtext + o, sizeof(cfgtext) - (size_t)o, "feature.f%d = double\n", f);
    feat_config_t *cfg = feat_config_parse(cfgtext, strlen(cfgtext), err, sizeof(err));
    if (!cfg) { fprintf(stderr, "config: %s\n", err); return 1; }
    /* the same table with 10 aggregated features over its inputs, expanded
     * by the config parser as featd's own config is */
    static const char aggs[] = "agg.n = count(f0) over 1h, 7d\nagg.s = sum(f1) over 1h, 7d\n"
                               "agg.m = mean(f2) over 1h, 7d\nagg.lo = min(f3) over 1h, 7d\n"
                               "agg.hi = max(f4) over 1h, 7d\n";
    snprintf(cfgtext + o, sizeof(cfgtext) - (size_t)o, "%s", aggs);
    feat_config_t *cfga = feat_config_parse(cfgtext, strlen(cfgtext), err, sizeof(err));
    if (!cfga) { fprintf(stderr, "config (aggregations): %s\n", err); return 1; }
    double tp = now_s();
    produce(bs);
    printf("produced %d %s events (10 double features) to %d partitions in %.1f s\n", N, JSON ? "JSON" : "protobuf",
           P, now_s() - tp);
    double a[16], bb[16], c[16], dr[16];
    if (ONLY && !strcmp(ONLY, "aggs")) { /* 10 aggregations vs none, alternating (which goes first too) */
        for (int r = 0; r < ROUNDS && r < 16; r++) {
            if (r % 2 == 0) {
                c[r] = featd_ingest_with(bs, cfg, 2 * r, 0);
                dr[r] = featd_ingest_with(bs, cfga, 2 * r + 1, 0);
            } else {
                dr[r] = featd_ingest_with(bs, cfga, 2 * r + 1, 0);
                c[r] = featd_ingest_with(bs, cfg, 2 * r, 0);
            }
            a[r] = dr[r] / c[r];
            printf("round %d: featd ingest %.0f events/s plain, %.0f with 10 aggregations (%.2f)\n", r + 1, c[r], dr[r],
                   a[r]);
            fflush(stdout);
        }
        int nr = ROUNDS < 16 ? ROUNDS : 16;
        qsort(c, (size_t)nr, sizeof(double), cmpd);
        qsort(dr, (size_t)nr, sizeof(double), cmpd);
        qsort(a, (size_t)nr, sizeof(double), cmpd);
        printf("median: plain %.0f/s, with 10 aggregations %.0f/s: aggregations / plain = %.2f (median of the rounds' "
               "ratios %.2f)\n", c[nr / 2], dr[nr / 2], dr[nr / 2] / c[nr / 2], a[nr / 2]);
        feat_config_free(cfga);
        feat_config_free(cfg);
        feat_broker_destroy(b);
        return 0;
    }
    feat_config_free(cfga);
    row_t *rows = calloc((size_t)N, sizeof(row_t));
    raw_consume(bs, cfg, rows); /* decodes the rows for baseline B (untimed use) */
    if (AB) { /* one setting, two values, alternating rounds: same data, same broker */
        char key[128], va[128], vb[128];
        if (sscanf(AB, "%127[^=]=%127[^,],%127s", key, va, vb) != 3) { fprintf(stderr, "--ab SECTION.KEY=A,B\n"); return 2; }
        for (int r = 0; r < ROUNDS && r < 16; r++) {
            if (feat_config_set(cfg, key, va, err, sizeof(err))) { fprintf(stderr, "%s\n", err); return 2; }
            c[r] = featd_ingest_with(bs, cfg, 2 * r, 0);
            if (feat_config_set(cfg, key, vb, err, sizeof(err))) { fprintf(stderr, "%s\n", err); return 2; }
            dr[r] = featd_ingest_with(bs, cfg, 2 * r + 1, 0);
            printf("round %d: featd ingest %.0f events/s with %s=%s, %.0f with %s=%s\n", r + 1, c[r], key, va, dr[r], key, vb);
            fflush(stdout);
        }
        qsort(c, (size_t)ROUNDS, sizeof(double), cmpd);
        qsort(dr, (size_t)ROUNDS, sizeof(double), cmpd);
        printf("median: %s=%s %.0f/s, %s=%s %.0f/s (ratio %.2f)\n", key, va, c[ROUNDS / 2], key, vb, dr[ROUNDS / 2],
               dr[ROUNDS / 2] / c[ROUNDS / 2]);
        free(rows);
        feat_config_free(cfg);
        feat_broker_destroy(b);
        return 0;
    }
    if (ONLY && !strcmp(ONLY, "drift")) { /* monitoring on vs off, alternating, same data */
        for (int r = 0; r < ROUNDS && r < 16; r++) {
            c[r] = featd_ingest_with(bs, cfg, r, 0);
            dr[r] = featd_ingest_with(bs, cfg, r, 1);
            printf("round %d: featd ingest %.0f events/s without drift monitoring, %.0f with (%.1f%% cost)\n", r + 1,
                   c[r], dr[r], 100.0 * (1 - dr[r] / c[r]));
            fflush(stdout);
        }
        qsort(c, (size_t)ROUNDS, sizeof(double), cmpd);
        qsort(dr, (size_t)ROUNDS, sizeof(double), cmpd);
        printf("median: without %.0f/s, with %.0f/s: monitoring costs %.1f%% of ingest throughput\n", c[ROUNDS / 2],
               dr[ROUNDS / 2], 100.0 * (1 - dr[ROUNDS / 2] / c[ROUNDS / 2]));
        free(rows);
        feat_config_free(cfg);
        feat_broker_destroy(b);
        return 0;
    }
    for (int r = 0; r < ROUNDS && r < 16; r++) {
        a[r] = !ONLY || !strcmp(ONLY, "consume") ? raw_consume(bs, cfg, NULL) : 1;
        bb[r] = !ONLY || !strcmp(ONLY, "store") ? raw_store(cfg, rows) : 1;
        c[r] = !ONLY || !strcmp(ONLY, "featd") ? featd_ingest(bs, cfg, r) : 1;
        printf("round %d: raw consume %.0f msg/s | raw store write %.0f rows/s | featd ingest %.0f events/s\n", r + 1,
               a[r], bb[r], c[r]);
        fflush(stdout);
    }
    qsort(a, (size_t)ROUNDS, sizeof(double), cmpd);
    qsort(bb, (size_t)ROUNDS, sizeof(double), cmpd);
    qsort(c, (size_t)ROUNDS, sizeof(double), cmpd);
    double ma = a[ROUNDS / 2], mb = bb[ROUNDS / 2], mc = c[ROUNDS / 2];
    double slower = ma < mb ? ma : mb;
    printf("median: raw consume %.0f/s, raw store %.0f/s, featd %.0f/s; featd / slower baseline = %.2f\n", ma, mb, mc,
           mc / slower);
    free(rows);
    feat_config_free(cfg);
    feat_broker_destroy(b);
    return 0;
}
