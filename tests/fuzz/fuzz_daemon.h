/*
 * tests/fuzz/fuzz_daemon.h — a small featd for the gRPC and admin HTTP
 * fuzzers: the daemon's parts built as daemon/main.c builds them, minus the
 * network and Kafka.  A RocksDB store in a temporary directory holds one
 * table with 200 entities and labels; model "m" has a trained champion
 * (version 1); model "r" has none; the drift monitor has closed windows of
 * every feature; the cache is on.  No ingest (its status accessors take NULL),
 * no prediction log (Predict skips logging when there is none).
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
#include "drift/monitor.h"
#include "serve/cache.h"
#include "daemon/daemon.h"
#include "store/store.h"
#include "train/models.h"

static const char *const fuzz_daemon_cfg =
    "[featd]\nlog_level = error\n"
    "[table t]\nentity = user_id\ntopic = te\n"
    "feature.x = double\nfeature.n = int64\nfeature.c = string\nfeature.b = bool\n"
    "[model m]\ntable = t\nlabel_topic = l\ntask = logreg\nfeatures = x,n,c\nmin_rows = 50\nepochs = 2\n"
    "policy = manual\ndevice = cpu\n"
    "[model r]\ntable = t\nlabel_topic = lr\ntask = linreg\nmin_rows = 50\ndevice = cpu\n"
    "[serve]\nmax_keys = 64\nmax_history_rows = 64\n"
    "[drift]\nwindow_events = 20\nmin_window = 5\nreference_events = 20\n";

static featd_t fuzz_fd;
static char fuzz_dir[4096];

static int fuzz_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void fuzz_daemon_free(void) {
    feat_models_destroy(fuzz_fd.models);
    feat_drift_destroy(fuzz_fd.drift);
    feat_cache_destroy(fuzz_fd.cache);
    feat_store_close(fuzz_fd.st);
    feat_config_free(fuzz_fd.cfg);
    feat_metrics_destroy(fuzz_fd.metrics);
    if (fuzz_dir[0]) nftw(fuzz_dir, fuzz_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t fuzz_rng = 88172645463325252ull;
static double fuzz_unif(void) {
    fuzz_rng ^= fuzz_rng << 13; fuzz_rng ^= fuzz_rng >> 7; fuzz_rng ^= fuzz_rng << 17;
    return (double)(fuzz_rng >> 11) / 9007199254740992.0;
}

/* train hands its champion's references to drift, as daemon/main.c wires it. */
static int fuzz_drift_reference(void *drift, const char *model, const char *feature, const void *blob, size_t len) {
    return feat_drift_set_model_reference(drift, model, feature, blob, len);
}

static void fuzz_sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static featd_t *fuzz_daemon(void) {
    char err[512];
    feat_log_set_level(FEAT_LOG_ERROR);
    const char *tmp = getenv("TMPDIR");
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/featd-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    FUZZ_CHECK(mkdtemp(fuzz_dir) != NULL, "mkdtemp %s", fuzz_dir);
    featd_t *fd = &fuzz_fd;
    fd->cfg = feat_config_parse(fuzz_daemon_cfg, strlen(fuzz_daemon_cfg), err, sizeof(err));
    FUZZ_CHECK(fd->cfg != NULL, "%s", err);
    fd->metrics = feat_metrics_new();
    char path[4200];
    snprintf(path, sizeof(path), "%s/db", fuzz_dir);
    feat_store_conf_t sc = {path, fd->cfg, 0, 8 << 20, 8 << 20, 0, 0};
    fd->st = feat_store_open(&sc, err, sizeof(err));
    FUZZ_CHECK(fd->st != NULL, "%s", err);
    fd->cache = feat_cache_new(1 << 20, 4, fd->metrics);
    fd->drift = feat_drift_new(fd->cfg, fd->st, fd->metrics, err, sizeof(err));
    FUZZ_CHECK(fd->drift != NULL, "%s", err);
    FUZZ_CHECK(feat_drift_start(fd->drift) == FEAT_OK, "drift start");
    fd->started_ms = 1732406400000LL;

    /* 200 entities k0..k199, one event each at 1000 + e; labels of m and r at 5000 + e */
    const feat_table_t *t = feat_store_table(fd->st, "t");
    feat_wb_t *wb = feat_wb_new(fd->st);
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
        feat_drift_observe(fd->drift, 0, fidx, vals, 4, 1000 + e);
        double p = 1 / (1 + exp(-(2 * x + 0.05 * (double)n)));
        FUZZ_CHECK(feat_wb_put_label(wb, "m", key, strlen(key), 5000 + e, fuzz_unif() < p, 0, off++) == FEAT_OK, "label");
        FUZZ_CHECK(feat_wb_put_label(wb, "r", key, strlen(key), 5000 + e, x + (double)n, 0, off++) == FEAT_OK, "label");
    }
    FUZZ_CHECK(feat_store_write(fd->st, wb, err, sizeof(err)) == FEAT_OK, "%s", err);
    feat_wb_destroy(wb);

    feat_models_conf_t mconf;
    feat_models_conf_from_config(fd->cfg, &mconf);
    mconf.reference = fuzz_drift_reference;
    mconf.reference_arg = fd->drift;
    fd->models = feat_models_new(&mconf, fd->st, NULL, fd->metrics, err, sizeof(err));
    FUZZ_CHECK(fd->models != NULL, "%s", err);
    uint64_t run;
    int co;
    FUZZ_CHECK(feat_models_request(fd->models, "m", FEAT_TRIGGER_OPERATOR, "fuzz fixture", &run, &co) == FEAT_OK, "request");
    FUZZ_CHECK(feat_models_start(fd->models) == FEAT_OK, "models start");
    feat_run_status_t rs;
    for (int i = 0;; i++) { /* a limit on a hang, not a speed bound */
        FUZZ_CHECK(feat_models_run_status(fd->models, "m", run, &rs) == FEAT_OK, "run status");
        if (rs.state == FEAT_RUN_SUCCEEDED || rs.state == FEAT_RUN_FAILED) break;
        FUZZ_CHECK(i < 30000, "the fixture's training run did not finish");
        fuzz_sleep_ms(10);
    }
    FUZZ_CHECK(rs.state == FEAT_RUN_SUCCEEDED, "training: %s", rs.error);
    feat_models_stop(fd->models);
    for (int i = 0;; i++) {
        feat_drift_stats_t ds;
        feat_drift_get_stats(fd->drift, &ds);
        if (ds.windows_closed >= 2) break;
        FUZZ_CHECK(i < 30000, "the drift monitor closed no window");
        fuzz_sleep_ms(10);
    }
    feat_drift_stop(fd->drift);
    /* registered last: RocksDB creates statics during the open whose destructors
     * must run after the store is closed */
    atexit(fuzz_daemon_free);
    return fd;
}

#endif
