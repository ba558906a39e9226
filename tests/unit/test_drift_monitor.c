/* Unit tests for drift/monitor.c with synthetic, seeded data: no alert over
 * stationary windows, the alert in the first shifted window for the shifted
 * feature only (numeric and categorical), recovery, persisted references,
 * pinning, a model's reference, and time-based windows. */
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "stats/kll.h"
#include "drift/monitor.h"
#include "store/store.h"

#define W 1000

static const char *cfg_fmt =
    "[drift]\nwindow_events = 1000\nreference_events = 2000\nrecovery_windows = 2\nwindow_time = %s\n"
    "[table t]\ntopic = x\nfeature.x = double\nfeature.y = int64\nfeature.c = string\nfeature.b = bool\n"
    "[table u]\ntopic = y\nfeature.z = double\n"
    "[model m]\ntable = t\nlabel_topic = l\n";

typedef struct alerts {
    pthread_mutex_t lock;
    int n;
    char feature[64][16];
    int drifting[64];
    uint64_t window[64];
} alerts_t;

static void sink(void *arg, const feat_alert_t *a) {
    alerts_t *al = arg;
    pthread_mutex_lock(&al->lock);
    if (al->n < 64) {
        snprintf(al->feature[al->n], 16, "%s", a->feature);
        al->drifting[al->n] = a->drifting;
        al->window[al->n] = strtoull(strrchr(a->id, '.') + 1, NULL, 10);
        al->n++;
    }
    pthread_mutex_unlock(&al->lock);
}

typedef struct fx {
    char *dir;
    feat_config_t *cfg;
    feat_store_t *st;
    feat_drift_t *d;
    feat_alert_bus_t *bus;
    feat_metrics_t *reg;
    alerts_t al;
    uint64_t rng;
} fx_t;

static double unif(fx_t *f) {
    f->rng ^= f->rng << 13; f->rng ^= f->rng >> 7; f->rng ^= f->rng << 17;
    return (double)(f->rng >> 11) / 9007199254740992.0;
}
static double gauss(fx_t *f) { return sqrt(-2 * log(unif(f) + 1e-300)) * cos(6.283185307179586 * unif(f)); }

/* The monitor's conf from the parsed config, as daemon/featd.c fills it. */
static feat_drift_conf_t conf_of(const feat_config_t *c) {
    feat_drift_conf_t dc;
    feat_drift_conf_from_config(c, &dc);
    return dc;
}

static void open_all(fx_t *f, const char *window_time) {
    char err[256], path[512], text[1024];
    snprintf(text, sizeof(text), cfg_fmt, window_time);
    f->cfg = feat_config_parse(text, strlen(text), err, sizeof(err));
    ck_assert_msg(f->cfg != NULL, "%s", err);
    snprintf(path, sizeof(path), "%s/db", f->dir);
    feat_store_conf_t sc = {.path = path, .tables = f->cfg->tables, .ntables = f->cfg->ntables,
                            .block_cache_bytes = 8 << 20, .write_buffer_bytes = 8 << 20};
    f->st = feat_store_open(&sc, err, sizeof(err));
    ck_assert_ptr_nonnull(f->st);
    f->reg = feat_metrics_new();
    f->bus = feat_alert_bus_new();
    ck_assert_ptr_nonnull(f->bus);
    pthread_mutex_init(&f->al.lock, NULL);
    f->al.n = 0;
    ck_assert_int_eq(feat_alert_subscribe(f->bus, "test", sink, &f->al), FEAT_OK);
    feat_drift_conf_t dc = conf_of(f->cfg);
    f->d = feat_drift_new(&dc, f->st, f->bus, f->reg, err, sizeof(err));
    ck_assert_msg(f->d != NULL, "%s", err);
    ck_assert_int_eq(feat_drift_start(f->d), FEAT_OK);
}

static void close_all(fx_t *f) {
    feat_drift_destroy(f->d);
    feat_alert_bus_destroy(f->bus);
    feat_metrics_destroy(f->reg);
    feat_store_close(f->st);
    feat_config_free(f->cfg);
}

/* Initializes *f in place: the sink keeps a pointer to f->al. */
static void fx_new(fx_t *f, uint64_t seed, const char *window_time) {
    memset(f, 0, sizeof(*f));
    f->dir = tu_tmpdir();
    f->rng = seed * 2654435761u + 1;
    open_all(f, window_time);
}

static void fx_free(fx_t *f) {
    close_all(f);
    tu_rmrf(f->dir);
    free(f->dir);
}

/* n events; x ~ N(xm, 1), y ~ round(N(50, 10)), c from a weighted set, b Bernoulli(pb) */
static void feed(fx_t *f, int n, double xm, double pc_a, double pb) {
    static const char *cats[] = {"a", "b", "c"};
    for (int i = 0; i < n; i++) {
        feat_value_t v[4];
        memset(v, 0, sizeof(v));
        uint16_t fi[4] = {0, 1, 2, 3};
        v[0].type = FEAT_FT_DOUBLE; v[0].v.d = xm + gauss(f);
        v[1].type = FEAT_FT_INT64; v[1].v.i = (int64_t)round(50 + 10 * gauss(f));
        double u = unif(f);
        const char *c = u < pc_a ? cats[0] : u < pc_a + (1 - pc_a) * 0.6 ? cats[1] : cats[2];
        v[2].type = FEAT_FT_STRING; v[2].v.s = c; v[2].slen = 1;
        v[3].type = FEAT_FT_BOOL; v[3].v.b = unif(f) < pb;
        feat_drift_observe(f->d, 0, fi, v, 4, 0);
    }
}

typedef struct st { int state; uint64_t windows; int source; uint64_t ref_n; } st_t;
static void grab(void *arg, const feat_drift_entry_t *e) { st_t *s = arg; s->state = e->state; s->windows = e->windows; s->source = e->source; s->ref_n = e->reference_size; }
static st_t state_of(fx_t *f, const char *feature) {
    st_t s = {0};
    feat_drift_report(f->d, "t", feature, grab, &s);
    return s;
}

static void wait_windows(fx_t *f, const char *feature, uint64_t n) {
    for (int i = 0; i < 3000 && state_of(f, feature).windows < n; i++) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    ck_assert_uint_ge(state_of(f, feature).windows, n);
}

/* Alerts are emitted just after a window's results are published. */
static int alerts_now(fx_t *f, int want) {
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&f->al.lock);
        int n = f->al.n;
        pthread_mutex_unlock(&f->al.lock);
        if (n >= want) return n;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return f->al.n;
}

/* Feeds n whole windows one at a time, each judged before the next (as a
 * paced ingest would; a burst faster than judging merges windows, see
 * monitor.c). */
static void feed_windows(fx_t *f, int n, double xm, double pc_a, double pb) {
    uint64_t have = state_of(f, "x").windows;
    for (int i = 0; i < n; i++) {
        feed(f, W, xm, pc_a, pb);
        wait_windows(f, "x", have + (uint64_t)i + 1);
    }
}

START_TEST(stationary_windows_raise_nothing) {
    fx_t f;
    fx_new(&f, (uint64_t)_i + 1, "0");
    feed(&f, 2000, 0.0, 0.5, 0.3);
    feed_windows(&f, 20, 0.0, 0.5, 0.3);
    ck_assert_msg(f.al.n == 0, "seed %d: %d alerts on stationary data (first: %s)", _i, f.al.n, f.al.feature[0]);
    const char *fs[] = {"x", "y", "c", "b"};
    for (int i = 0; i < 4; i++) {
        st_t s = state_of(&f, fs[i]);
        ck_assert_int_eq(s.state, FEAT_DRIFT_OK);
        ck_assert_int_eq(s.source, FEAT_REF_FIRST_N);
        ck_assert_uint_eq(s.ref_n, 2000);
    }
    fx_free(&f);
}
END_TEST

START_TEST(numeric_shift_alerts_in_first_window_then_recovers) {
    fx_t f;
    fx_new(&f, 7, "0");
    feed(&f, 2000, 0.0, 0.5, 0.3);
    feed_windows(&f, 5, 0.0, 0.5, 0.3);
    feed_windows(&f, 2, 0.8, 0.5, 0.3);      /* x shifts by 0.8 sd */
    ck_assert_int_eq(alerts_now(&f, 1), 1);
    ck_assert_str_eq(f.al.feature[0], "x");
    ck_assert_int_eq(f.al.drifting[0], 1);
    ck_assert_uint_eq(f.al.window[0], 6);    /* the first shifted window */
    ck_assert_int_eq(state_of(&f, "x").state, FEAT_DRIFT_DRIFTING);
    feed_windows(&f, 1, 0.0, 0.5, 0.3);      /* one clean window: still drifting */
    ck_assert_int_eq(state_of(&f, "x").state, FEAT_DRIFT_DRIFTING);
    ck_assert_int_eq(f.al.n, 1);
    feed_windows(&f, 1, 0.0, 0.5, 0.3);      /* second clean window: recovered */
    ck_assert_int_eq(state_of(&f, "x").state, FEAT_DRIFT_OK);
    ck_assert_int_eq(alerts_now(&f, 2), 2);
    ck_assert_int_eq(f.al.drifting[1], 0);
    ck_assert_uint_eq(f.al.window[1], 9);
    fx_free(&f);
}
END_TEST

START_TEST(categorical_and_bool_shifts) {
    fx_t f;
    fx_new(&f, 11, "0");
    feed(&f, 2000, 0.0, 0.5, 0.3);
    feed_windows(&f, 3, 0.0, 0.5, 0.3);
    feed_windows(&f, 1, 0.0, 0.85, 0.3);     /* "a" from 50% to 85% */
    ck_assert_int_eq(alerts_now(&f, 1), 1);
    ck_assert_str_eq(f.al.feature[0], "c");
    feed_windows(&f, 1, 0.0, 0.5, 0.7);      /* c back; b from 30% to 70% true */
    alerts_now(&f, 2);
    int seen_b = 0;
    for (int i = 0; i < f.al.n; i++) seen_b |= !strcmp(f.al.feature[i], "b") && f.al.drifting[i];
    ck_assert(seen_b);
    ck_assert_int_eq(state_of(&f, "x").state, FEAT_DRIFT_OK);
    fx_free(&f);
}
END_TEST

START_TEST(references_survive_restart_and_pin) {
    fx_t f;
    fx_new(&f, 13, "0");
    feed(&f, 2000, 0.0, 0.5, 0.3);
    feed_windows(&f, 2, 0.0, 0.5, 0.3);
    close_all(&f);
    open_all(&f, "0");                       /* same store: the references come back */
    st_t s = state_of(&f, "x");
    ck_assert_int_eq(s.source, FEAT_REF_FIRST_N);
    ck_assert_uint_eq(s.ref_n, 2000);
    feed_windows(&f, 1, 3.0, 0.5, 0.3);      /* no new reference phase: judged at once */
    ck_assert_int_eq(state_of(&f, "x").state, FEAT_DRIFT_DRIFTING);
    int pinned = 0;
    ck_assert_int_eq(feat_drift_pin(f.d, "t", "x", &pinned), FEAT_OK);
    ck_assert_int_eq(pinned, 1);
    ck_assert_int_eq(feat_drift_pin(f.d, "t", "nope", &pinned), FEAT_ERR_NOT_FOUND);
    ck_assert_int_eq(feat_drift_pin(f.d, "nope", NULL, &pinned), FEAT_ERR_NOT_FOUND);
    feed_windows(&f, 1, 3.0, 0.5, 0.3);      /* the shifted distribution is now normal */
    s = state_of(&f, "x");
    ck_assert_int_eq(s.source, FEAT_REF_PINNED);
    ck_assert_int_eq(s.state, FEAT_DRIFT_OK);
    fx_free(&f);
}
END_TEST

START_TEST(model_reference_and_predictions) {
    fx_t f;
    fx_new(&f, 17, "0");
    /* a "training set" where x ~ N(5, 1): live x ~ N(0, 1) must drift against it */
    feat_err_t e;
    feat_kll_t *k = feat_kll_new(200, 99, &e);
    for (int i = 0; i < 5000; i++) feat_kll_update(k, 5.0 + gauss(&f));
    size_t sz = feat_kll_serialized_size(k), w = 0;
    void *blob = malloc(sz);
    ck_assert_int_eq(feat_kll_serialize(k, blob, sz, &w), FEAT_OK);
    ck_assert_int_eq(feat_drift_set_model_reference(f.d, "m", "x", blob, w), FEAT_OK);
    ck_assert_int_eq(feat_drift_set_model_reference(f.d, "nope", "x", blob, w), FEAT_ERR_NOT_FOUND);
    /* another table's feature (a model over several tables): on that table's stream */
    ck_assert_int_eq(feat_drift_set_model_reference(f.d, "m", "u.z", blob, w), FEAT_OK);
    ck_assert_int_eq(feat_drift_set_model_reference(f.d, "m", "u.x", blob, w), FEAT_ERR_NOT_FOUND);
    ck_assert_int_eq(feat_drift_set_model_reference(f.d, "m", "nope.z", blob, w), FEAT_ERR_NOT_FOUND);
    ck_assert_int_ne(feat_drift_set_model_reference(f.d, "m", "x", "junk", 4), FEAT_OK);
    free(blob);
    feat_kll_destroy(k);
    feed(&f, 2000, 0.0, 0.5, 0.3);
    feed_windows(&f, 1, 0.0, 0.5, 0.3);
    st_t s = state_of(&f, "x");
    ck_assert_int_eq(s.source, FEAT_REF_MODEL);
    ck_assert_int_eq(s.state, FEAT_DRIFT_DRIFTING);
    /* predictions have a stream of their own */
    for (int i = 0; i < 2000 + W; i++) feat_drift_observe_prediction(f.d, 0, unif(&f));
    st_t p = {0};
    for (int i = 0; i < 3000 && p.windows < 1; i++) {
        feat_drift_report(f.d, "m", "prediction", grab, &p);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    ck_assert_uint_ge(p.windows, 1);
    ck_assert_int_eq(p.state, FEAT_DRIFT_OK);
    fx_free(&f);
}
END_TEST

START_TEST(time_windows_close) {
    fx_t f;
    fx_new(&f, 19, "1s");
    feed(&f, 2000 + 300, 0.0, 0.5, 0.3);     /* 300 < window_events, >= min_window */
    for (int i = 0; i < 400 && state_of(&f, "x").windows < 1; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    ck_assert_uint_eq(state_of(&f, "x").windows, 1);
    fx_free(&f);
}
END_TEST

int main(void) {
    feat_log_set_level(FEAT_LOG_ERROR);
    Suite *s = suite_create("drift_monitor");
    TCase *tc = tcase_create("monitor");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, stationary_windows_raise_nothing, 0, 5);
    tcase_add_test(tc, numeric_shift_alerts_in_first_window_then_recovers);
    tcase_add_test(tc, categorical_and_bool_shifts);
    tcase_add_test(tc, references_survive_restart_and_pin);
    tcase_add_test(tc, model_reference_and_predictions);
    tcase_add_test(tc, time_windows_close);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
