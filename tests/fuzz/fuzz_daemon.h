/*
 * tests/fuzz/fuzz_daemon.h — a small featd for the gRPC and admin HTTP
 * fuzzers, built by featd_open() (daemon/featd.h) as the daemon builds
 * itself, minus Kafka, the listeners and the prediction log
 * (FEATD_NO_KAFKA | FEATD_NO_LISTENERS | FEATD_NO_PREDLOG).  A RocksDB store
 * in a temporary data_dir holds one table with 200 entities and labels;
 * model "m" has a trained champion (version 1); model "r" has none; the
 * drift monitor has closed windows of every feature; the cache is on.  No
 * ingest (its status accessors take NULL), no prediction log (Predict skips
 * logging when there is none).
 *
 * Threads: the model engine and the drift monitor run only while the fixture
 * is built and are stopped before fuzzing, so every input sees the same,
 * single-threaded daemon (RocksDB's own background threads aside).  The
 * directory lives under $TMPDIR (tests/fuzz/run_fuzz.sh points it at the
 * run's scratch directory) and is removed at exit.
 */
#ifndef FEAT_TESTS_FUZZ_DAEMON_H
#define FEAT_TESTS_FUZZ_DAEMON_H

#include <ftw.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_util.h"

#include "common/log.h"
#include "common/metrics.h"
#include "daemon/featd.h"

static const char *const fuzz_daemon_cfg =
    "[featd]\nlog_level = error\ndata_dir = %s\n"
    "[store]\nblock_cache = 8MiB\nwrite_buffer = 8MiB\n"
    "[table t]\nentity = user_id\ntopic = te\n"
    "feature.x = double\nfeature.n = int64\nfeature.c = string\nfeature.b = bool\n"
    "agg.sx = sum(x) over 1m, lifetime\nagg.lc = last_n(c, 3) over 1h\nagg.qn = approx_quantile(n, 0.5) over 1d\n"
    "[model m]\ntable = t\nlabel_topic = l\ntask = logreg\nfeatures = x,n,c\nmin_rows = 50\nepochs = 2\n"
    "policy = manual\ndevice = cpu\n"
    "[model r]\ntable = t\nlabel_topic = lr\ntask = linreg\nmin_rows = 50\ndevice = cpu\n"
    "[serve]\nmax_keys = 64\nmax_history_rows = 64\ncache = 1MiB\n"
    "[drift]\nwindow_events = 20\nmin_window = 5\nreference_events = 20\n";

static featd_t *fuzz_d;
static feat_config_t *fuzz_cfg;
static feat_metrics_t *fuzz_metrics;
static char fuzz_dir[4096];

static int fuzz_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void fuzz_daemon_free(void) {
    featd_close(fuzz_d);
    feat_config_free(fuzz_cfg);
    feat_metrics_destroy(fuzz_metrics);
    if (fuzz_dir[0]) nftw(fuzz_dir, fuzz_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t fuzz_rng = 88172645463325252ull;
static double fuzz_unif(void) {
    fuzz_rng ^= fuzz_rng << 13; fuzz_rng ^= fuzz_rng >> 7; fuzz_rng ^= fuzz_rng << 17;
    return (double)(fuzz_rng >> 11) / 9007199254740992.0;
}

static void fuzz_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static featd_t *fuzz_daemon(void) {
    char err[512], text[8192];
    feat_log_set_level(FEAT_LOG_ERROR);
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/featd-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(fuzz_dir) != NULL, "mkdtemp %s", fuzz_dir);
    int tl = snprintf(text, sizeof(text), fuzz_daemon_cfg, fuzz_dir);
    FUZZ_CHECK(tl > 0 && (size_t)tl < sizeof(text), "config text too long");
    fuzz_cfg = feat_config_parse(text, (size_t)tl, err, sizeof(err));
    FUZZ_CHECK(fuzz_cfg != NULL, "%s", err);
    fuzz_metrics = feat_metrics_new();
    featd_opts_t opts = {.flags = FEATD_NO_KAFKA | FEATD_NO_LISTENERS | FEATD_NO_PREDLOG, .metrics = fuzz_metrics};
    FUZZ_CHECK(featd_open(fuzz_cfg, &opts, &fuzz_d, err, sizeof(err)) == FEAT_OK, "%s", err);
    featd_t *d = fuzz_d;
    FUZZ_CHECK(d->drift && d->cache && d->models, "drift, cache and models must be on");

    /* 200 entities k0..k199, one event each at 1000 + e; labels of m and r at 5000 + e */
    const feat_table_t *t = feat_store_table(d->st, "t");
    feat_wb_t *wb = feat_wb_new(d->st);
    int64_t off = 0;
    for (int e = 0; e < 200; e++) {
        char key[16], c[4];
        snprintf(key, sizeof(key), "k%d", e);
        snprintf(c, sizeof(c), "c%d", e % 3);
        double x = fuzz_unif() * 4 - 2;
        int64_t n = (int64_t)(fuzz_unif() * 20) - 10;
        feat_value_t vals[4] = {{.type = FEAT_FT_DOUBLE, .v.d = x}, {.type = FEAT_FT_INT64, .v.i = n},
                                {.type = FEAT_FT_STRING, .slen = 2, .v.s = c}, {.type = FEAT_FT_BOOL, .v.b = e & 1}};
        uint16_t fidx[4] = {0, 1, 2, 3};
        FUZZ_CHECK(feat_wb_put_event(wb, t, key, strlen(key), 1000 + e, 0, off++, fidx, vals, 4) == FEAT_OK, "event");
        feat_drift_observe(d->drift, 0, fidx, vals, 4, 1000 + e);
        double p = 1 / (1 + exp(-(2 * x + 0.05 * (double)n)));
        FUZZ_CHECK(feat_wb_put_label(wb, "m", key, strlen(key), 5000 + e, fuzz_unif() < p, 0, off++) == FEAT_OK, "label");
        FUZZ_CHECK(feat_wb_put_label(wb, "r", key, strlen(key), 5000 + e, x + (double)n, 0, off++) == FEAT_OK, "label");
    }
    FUZZ_CHECK(feat_store_write(d->st, wb, err, sizeof(err)) == FEAT_OK, "%s", err);
    feat_wb_destroy(wb);

    uint64_t run;
    int co;
    FUZZ_CHECK(feat_models_request(d->models, "m", FEAT_TRIGGER_OPERATOR, "fuzz fixture", &run, &co) == FEAT_OK, "request");
    feat_run_status_t rs;
    for (int i = 0;; i++) { /* a limit on a hang, not a speed bound */
        FUZZ_CHECK(feat_models_run_status(d->models, "m", run, &rs) == FEAT_OK, "run status");
        if (rs.state == FEAT_RUN_SUCCEEDED || rs.state == FEAT_RUN_FAILED) break;
        FUZZ_CHECK(i < 30000, "the fixture's training run did not finish");
        fuzz_sleep_ms(10);
    }
    FUZZ_CHECK(rs.state == FEAT_RUN_SUCCEEDED, "training: %s", rs.error);
    feat_models_stop(d->models);
    for (int i = 0;; i++) {
        feat_drift_stats_t ds;
        feat_drift_get_stats(d->drift, &ds);
        if (ds.windows_closed >= 2) break;
        FUZZ_CHECK(i < 30000, "the drift monitor closed no window");
        fuzz_sleep_ms(10);
    }
    feat_drift_stop(d->drift);
    /* registered last: RocksDB creates statics during the open whose destructors
     * must run after the store is closed */
    atexit(fuzz_daemon_free);
    return d;
}

#endif
