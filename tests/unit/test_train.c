/* Unit tests for train/ against a real store: point-in-time training sets
 * compared with an independent scan of the events the test wrote (TTL
 * included); the registry's life cycle (first version champion, challenger,
 * promote, rollback, reload, audit), request coalescing, the auto policy's
 * margin; the version metadata document byte for byte; Predict going on
 * while a registry write is held; retrain triggers (labels, schedule, alerts
 * through feat_models_alert_sink); and live quality (rolling AUC equal to an
 * independently computed one, the floor alert on the alert bus). */
#include "testutil.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/alert.h"
#include "store/store.h"
#include "train/models.h"
#include "train/models_internal.h" /* the metadata codec, tested directly */
#include "train/trainset.h"

static uint64_t rng = 88172645463325252ull;
static double unif(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2 * log(unif() + 1e-300)) * cos(6.283185307179586 * unif()); }

typedef struct fx {
    char *dir;
    feat_config_t *cfg;
    feat_store_t *st;
    const feat_table_t *t;
    feat_wb_t *wb;
    int64_t offset;
} fx_t;

static void fx_open(fx_t *f, const char *cfgtext) {
    char err[256], path[512];
    f->cfg = feat_config_parse(cfgtext, strlen(cfgtext), err, sizeof(err));
    ck_assert_msg(f->cfg != NULL, "%s", err);
    snprintf(path, sizeof(path), "%s/db", f->dir);
    feat_store_conf_t sc = {.path = path, .tables = f->cfg->tables, .ntables = f->cfg->ntables,
                            .block_cache_bytes = 8 << 20, .write_buffer_bytes = 8 << 20};
    f->st = feat_store_open(&sc, err, sizeof(err));
    ck_assert_msg(f->st != NULL, "%s", err);
    f->t = feat_store_table(f->st, "t");
    f->wb = feat_wb_new(f->st);
}

static void fx_close(fx_t *f) {
    feat_wb_destroy(f->wb);
    feat_store_close(f->st);
    feat_config_free(f->cfg);
}

static void fx_new(fx_t *f, const char *cfgtext) {
    memset(f, 0, sizeof(*f));
    f->dir = tu_tmpdir();
    fx_open(f, cfgtext);
}

static void fx_free(fx_t *f) {
    fx_close(f);
    tu_rmrf(f->dir);
    free(f->dir);
}

static void flush(fx_t *f) {
    char err[256];
    ck_assert_msg(feat_store_write(f->st, f->wb, err, sizeof(err)) == FEAT_OK, "%s", err);
    feat_wb_clear(f->wb);
}

static void put_label(fx_t *f, const char *model, const char *key, int64_t ts, double y) {
    ck_assert_int_eq(feat_wb_put_label(f->wb, model, key, strlen(key), ts, y, 0, f->offset++), FEAT_OK);
}

/* ---- point-in-time training sets ----------------------------------------------------------------- */

#define NE 40
#define MAXEV 12

typedef struct ev {
    int64_t ts;
    int has[3];
    double x;
    int64_t n;
    char c[8];
} ev_t;

static const char *pit_cfg =
    "[table t]\ntopic = te\nttl = 1s\nfeature.x = double\nfeature.n = int64\nfeature.c = string\n"
    "[model m]\ntable = t\nlabel_topic = l\ntask = logreg\nmin_rows = 2\n";

/* A model over three tables: t and a keyed by user_id (the label's key), mer
 * by merchant_id (the label's extra key).  Each row reads each table as of
 * the label's time with its own key; a label stored without the extra key
 * (before label_keys) has the merchant's feature missing. */
START_TEST(trainset_joins_several_tables) {
    fx_t f;
    fx_new(&f, "[table t]\nentity = user_id\ntopic = te\nfeature.x = double\n"
               "[table a]\nentity = user_id\ntopic = ae\nfeature.n = int64\n"
               "[table mer]\nentity = merchant_id\ntopic = me\nfeature.r = double\n"
               "[model m]\ntable = t\nlabel_topic = l\ntask = linreg\nmin_rows = 2\n"
               "features = mer.r, x, a.n\nlabel_keys = merchant_id\n");
    const feat_table_t *ta = feat_store_table(f.st, "a"), *tm = feat_store_table(f.st, "mer");
    uint16_t f0 = 0;
    struct { const feat_table_t *t; const char *key; int64_t ts; feat_value_t v; } evs[] = {
        {f.t, "u1", 100, {.type = FEAT_FT_DOUBLE, .v.d = 1}},  {f.t, "u1", 300, {.type = FEAT_FT_DOUBLE, .v.d = 2}},
        {ta, "u1", 150, {.type = FEAT_FT_INT64, .v.i = 5}},    {tm, "m1", 50, {.type = FEAT_FT_DOUBLE, .v.d = 0.1}},
        {tm, "m1", 250, {.type = FEAT_FT_DOUBLE, .v.d = 0.9}}, {tm, "m2", 400, {.type = FEAT_FT_DOUBLE, .v.d = 0.5}},
        {tm, "u1", 10, {.type = FEAT_FT_DOUBLE, .v.d = 7}},    /* a merchant named like the user: never read */
    };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        ck_assert_int_eq(feat_wb_put_event(f.wb, evs[i].t, evs[i].key, strlen(evs[i].key), evs[i].ts, 0, f.offset++, &f0,
                                           &evs[i].v, 1), FEAT_OK);
    struct { int64_t ts; const char *mk; } labs[] = {{200, "m1"}, {260, "m1"}, {350, "m2"}, {120, "m9"}};
    for (size_t i = 0; i < 4; i++) {
        /* keys go with their entity's name: an unknown entity first, then merchant_id */
        const char *xn[2] = {"shop_id", "merchant_id"}, *xk[2] = {"m1", labs[i].mk};
        size_t xl[2] = {2, strlen(labs[i].mk)};
        ck_assert_int_eq(feat_wb_put_label_keys(f.wb, "m", "u1", 2, labs[i].ts, (double)i, xn, xk, xl, 2, 0,
                                                f.offset++), FEAT_OK);
    }
    put_label(&f, "m", "u1", 500, 9); /* the old 20-byte value: no extra keys */
    flush(&f);
    feat_trainset_t ts;
    char err[256];
    ck_assert_msg(feat_trainset_build(f.st, &f.cfg->models[0], INT64_MIN, INT64_MAX, NULL, &ts, err, sizeof(err)) ==
                      FEAT_OK, "%s", err);
    ck_assert_uint_eq(ts.nf, 3);
    ck_assert_str_eq(ts.defs[0].name, "mer.r");
    ck_assert_str_eq(ts.defs[1].name, "x");
    ck_assert_str_eq(ts.defs[2].name, "a.n");
    ck_assert_uint_eq(ts.n, 5);
    /* by label time: 120 (m9), 200 (m1), 260 (m1), 350 (m2), 500 (none); NAN = missing */
    static const struct { int64_t ts; double r, x; double n; double y; } want[] = {
        {120, NAN, 1, NAN, 3}, {200, 0.1, 1, 5, 0}, {260, 0.9, 1, 5, 1}, {350, NAN, 2, 5, 2}, {500, NAN, 2, 5, 9}};
    for (size_t i = 0; i < 5; i++) {
        const feat_raw_t *row = ts.rows + i * 3;
        ck_assert_int_eq(ts.ts[i], want[i].ts);
        ck_assert_double_eq(ts.labels[i], want[i].y);
        ck_assert_str_eq(ts.keys[i], "u1");
        if (isnan(want[i].r)) ck_assert_int_eq(row[0].type, FEAT_V_MISSING);
        else ck_assert(row[0].type == FEAT_V_DOUBLE && row[0].v.f64 == want[i].r);
        ck_assert(row[1].type == FEAT_V_DOUBLE && row[1].v.f64 == want[i].x);
        if (isnan(want[i].n)) ck_assert_int_eq(row[2].type, FEAT_V_MISSING);
        else ck_assert(row[2].type == FEAT_V_INT64 && row[2].v.i64 == (int64_t)want[i].n);
    }
    ck_assert_uint_eq(ts.missing, 4);
    feat_trainset_free(&ts);
    fx_free(&f);
}
END_TEST

START_TEST(trainset_is_point_in_time_with_ttl) {
    fx_t f;
    fx_new(&f, pit_cfg);
    static ev_t evs[NE][MAXEV];
    int nev[NE];
    for (int e = 0; e < NE; e++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", e);
        nev[e] = 1 + (int)(unif() * MAXEV);
        if (nev[e] > MAXEV) nev[e] = MAXEV;
        int64_t ts = (int64_t)(unif() * 500);
        for (int i = 0; i < nev[e]; i++) {
            ev_t *v = &evs[e][i];
            ts += 1 + (int64_t)(unif() * 900); /* unique, increasing: gaps sometimes beyond the 1 s TTL... */
            if (unif() < 0.2) ts += 1500;      /* ...and sometimes well beyond it */
            v->ts = ts;
            v->has[0] = 1;
            v->has[1] = unif() < 0.6;
            v->has[2] = unif() < 0.5;
            v->x = gauss();
            v->n = (int64_t)(unif() * 100) - 50;
            snprintf(v->c, sizeof(v->c), "c%d", (int)(unif() * 4));
            feat_value_t vals[3];
            uint16_t fidx[3];
            size_t nv = 0;
            if (v->has[0]) { vals[nv] = (feat_value_t){.type = FEAT_FT_DOUBLE, .v.d = v->x}; fidx[nv++] = 0; }
            if (v->has[1]) { vals[nv] = (feat_value_t){.type = FEAT_FT_INT64, .v.i = v->n}; fidx[nv++] = 1; }
            if (v->has[2]) {
                vals[nv] = (feat_value_t){.type = FEAT_FT_STRING, .slen = (uint32_t)strlen(v->c), .v.s = v->c};
                fidx[nv++] = 2;
            }
            ck_assert_int_eq(feat_wb_put_event(f.wb, f.t, key, strlen(key), v->ts, 0, f.offset++, fidx, vals, nv), FEAT_OK);
        }
    }
    flush(&f);
    /* labels at random times, some before an entity's first event */
    enum { NL = 400 };
    static struct { int e; int64_t ts; double y; } lab[NL];
    for (int i = 0; i < NL; i++) {
        lab[i].e = (int)(unif() * NE);
        lab[i].ts = 100000 + i; /* placeholder, replaced below */
        lab[i].ts = (int64_t)(unif() * (double)(evs[lab[i].e][nev[lab[i].e] - 1].ts + 2000));
        lab[i].y = unif() < 0.5;
        char key[16];
        snprintf(key, sizeof(key), "k%d", lab[i].e);
        put_label(&f, "m", key, lab[i].ts, lab[i].y);
    }
    flush(&f);

    feat_trainset_t ts;
    char err[256];
    ck_assert_msg(feat_trainset_build(f.st, &f.cfg->models[0], INT64_MIN, INT64_MAX, NULL, &ts, err, sizeof(err)) ==
                      FEAT_OK, "%s", err);
    ck_assert_uint_eq(ts.nf, 3);
    ck_assert_str_eq(ts.defs[0].name, "x");
    ck_assert_str_eq(ts.defs[2].name, "c");
    /* labels that share (ts, key) collapse to one store key: count distinct */
    size_t distinct = 0;
    for (int i = 0; i < NL; i++) {
        int dup = 0;
        for (int j = i + 1; j < NL && !dup; j++) dup = lab[j].e == lab[i].e && lab[j].ts == lab[i].ts;
        distinct += !dup;
    }
    ck_assert_uint_eq(ts.n, distinct);
    uint64_t missing = 0;
    int64_t prev = INT64_MIN;
    for (size_t r = 0; r < ts.n; r++) {
        ck_assert_int_ge(ts.ts[r], prev); /* oldest label first */
        prev = ts.ts[r];
        int e = atoi(ts.keys[r] + 1);
        /* the last label written for (e, ts) is the one stored */
        int li = -1;
        for (int i = 0; i < NL; i++)
            if (lab[i].e == e && lab[i].ts == ts.ts[r]) li = i;
        ck_assert_int_ge(li, 0);
        ck_assert_double_eq(ts.labels[r], lab[li].y);
        for (int j = 0; j < 3; j++) {
            /* independent: the newest event with this feature at or before the label, within 1 s */
            const ev_t *best = NULL;
            for (int i = 0; i < nev[e]; i++)
                if (evs[e][i].has[j] && evs[e][i].ts <= ts.ts[r]) best = &evs[e][i];
            if (best && ts.ts[r] - best->ts > 1000) best = NULL;
            const feat_raw_t *v = &ts.rows[r * 3 + j];
            if (!best) {
                ck_assert_msg(v->type == FEAT_V_MISSING, "row %zu feature %d: expected missing", r, j);
                missing++;
                continue;
            }
            switch (j) {
            case 0: ck_assert_int_eq(v->type, FEAT_V_DOUBLE); ck_assert_double_eq(v->v.f64, best->x); break;
            case 1: ck_assert_int_eq(v->type, FEAT_V_INT64); ck_assert_int_eq(v->v.i64, best->n); break;
            default:
                ck_assert_int_eq(v->type, FEAT_V_STRING);
                ck_assert_uint_eq(v->len, strlen(best->c));
                ck_assert_int_eq(memcmp(v->v.str, best->c, v->len), 0);
            }
        }
    }
    ck_assert_uint_eq(ts.missing, missing);
    ck_assert_uint_gt(missing, 0); /* the data exercises TTL and "before the first event" */
    ck_assert_uint_lt(missing, ts.n * 3);
    feat_trainset_free(&ts);

    /* a time range keeps only labels inside it */
    ck_assert_int_eq(feat_trainset_build(f.st, &f.cfg->models[0], 1000, 2000, NULL, &ts, err, sizeof(err)), FEAT_OK);
    for (size_t r = 0; r < ts.n; r++) ck_assert(ts.ts[r] >= 1000 && ts.ts[r] <= 2000);
    feat_trainset_free(&ts);

    /* a binary model refuses a label that is not 0 or 1, naming it */
    put_label(&f, "m", "k1", 5, 0.5);
    flush(&f);
    ck_assert_int_eq(feat_trainset_build(f.st, &f.cfg->models[0], INT64_MIN, INT64_MAX, NULL, &ts, err, sizeof(err)),
                     FEAT_ERR_INVALID);
    ck_assert_msg(strstr(err, "0.5") != NULL, "%s", err);
    fx_free(&f);
}
END_TEST

/* ---- the registry --------------------------------------------------------------------------------- */

static const char *reg_cfg =
    "[table t]\ntopic = te\nfeature.x = double\nfeature.n = int64\nfeature.c = string\nfeature.unused = double\n"
    "[model m]\ntable = t\nlabel_topic = l\ntask = logreg\nfeatures = x,n,c\nmin_rows = 50\nepochs = 3\n"
    "policy = manual\ndevice = cpu\n"
    "[model a]\ntable = t\nlabel_topic = la\ntask = logreg\nfeatures = x,n,c\nmin_rows = 50\nepochs = 3\n"
    "policy = auto\npromote_margin = 1\ndevice = cpu\n"
    "[model tiny]\ntable = t\nlabel_topic = lt\ntask = logreg\nmin_rows = 100000\n";

/* 400 entities, one event each; labels for m and a from P(y) = sigmoid(2x + 0.05 n) */
static void fill_registry_data(fx_t *f) {
    for (int e = 0; e < 400; e++) {
        char key[16], c[4];
        snprintf(key, sizeof(key), "k%d", e);
        snprintf(c, sizeof(c), "c%d", e % 3);
        double x = gauss();
        int64_t n = (int64_t)(unif() * 20) - 10;
        feat_value_t vals[3] = {{.type = FEAT_FT_DOUBLE, .v.d = x}, {.type = FEAT_FT_INT64, .v.i = n},
                                {.type = FEAT_FT_STRING, .slen = 2, .v.s = c}};
        uint16_t fidx[3] = {0, 1, 2};
        ck_assert_int_eq(feat_wb_put_event(f->wb, f->t, key, strlen(key), 1000 + e, 0, f->offset++, fidx, vals, 3), FEAT_OK);
        double p = 1 / (1 + exp(-(2 * x + 0.05 * (double)n)));
        put_label(f, "m", key, 5000 + e, unif() < p);
        put_label(f, "a", key, 5000 + e, unif() < p);
    }
    flush(f);
}

/* The models of f's config, built as the daemon builds them (bus may be NULL). */
static feat_models_t *models_new(fx_t *f, feat_alert_bus_t *bus, feat_metrics_t *reg) {
    char err[256];
    feat_models_conf_t conf;
    feat_models_conf_from_config(f->cfg, &conf);
    feat_models_t *models = feat_models_new(&conf, f->st, bus, reg, err, sizeof(err));
    ck_assert_msg(models != NULL, "%s", err);
    return models;
}

static feat_run_status_t wait_run(feat_models_t *models, const char *model, uint64_t run) {
    feat_run_status_t st;
    for (int i = 0; i < 6000; i++) { /* a generous limit on a hang, not a speed bound */
        ck_assert_int_eq(feat_models_run_status(models, model, run, &st), FEAT_OK);
        if (st.state == FEAT_RUN_SUCCEEDED || st.state == FEAT_RUN_FAILED) return st;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ck_abort_msg("run %llu of %s did not finish", (unsigned long long)run, model);
    return st;
}

typedef struct vlist {
    int n;
    uint64_t version[16];
    int stage[16];
    char trigger[16][16];
    feat_version_info_t first; /* the newest (strings not kept) */
    uint64_t n_train, n_valid;
    int64_t from_ms, to_ms;
    double auc;
    size_t nfeatures;
    char features[3][8];
    char table[8];
} vlist_t;

static void on_v(void *arg, const feat_version_info_t *v) {
    vlist_t *l = arg;
    if (l->n < 16) {
        l->version[l->n] = v->version;
        l->stage[l->n] = v->stage;
        snprintf(l->trigger[l->n], 16, "%s", v->trigger);
    }
    if (l->n == 0) {
        l->n_train = v->n_train;
        l->n_valid = v->n_valid;
        l->from_ms = v->from_ms;
        l->to_ms = v->to_ms;
        l->auc = v->valid.auc;
        l->nfeatures = v->nfeatures;
        for (size_t i = 0; i < v->nfeatures && i < 3; i++) snprintf(l->features[i], 8, "%s", v->features[i]);
        snprintf(l->table, sizeof(l->table), "%s", v->table);
    }
    l->n++;
}

static vlist_t versions(feat_models_t *models, const char *model) {
    vlist_t l;
    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(feat_models_list(models, model, on_v, &l), FEAT_OK);
    return l;
}

static int stage_of(const vlist_t *l, uint64_t v) {
    for (int i = 0; i < l->n; i++)
        if (l->version[i] == v) return l->stage[i];
    return -1;
}

static void count_line(void *arg, const char *json, size_t len) {
    (void)json; (void)len;
    (*(int *)arg)++;
}

START_TEST(registry_life_cycle) {
    fx_t f;
    fx_new(&f, reg_cfg);
    fill_registry_data(&f);
    char msg[256];
    feat_metrics_t *reg = feat_metrics_new();
    feat_models_t *models = models_new(&f, NULL, reg);
    int e;
    ck_assert_ptr_null(feat_models_acquire(models, "m", NULL, 0, &e));
    ck_assert_int_eq(e, FEAT_ERR_NOT_FOUND);
    ck_assert_ptr_null(feat_models_acquire(models, "nope", NULL, 0, &e));
    ck_assert_int_eq(e, FEAT_ERR_NOT_FOUND);

    /* requests before the engine runs: the second joins the first */
    uint64_t r1, r2;
    int co;
    ck_assert_int_eq(feat_models_request(models, "m", FEAT_TRIGGER_OPERATOR, "test", &r1, &co), FEAT_OK);
    ck_assert_int_eq(co, 0);
    ck_assert_int_eq(feat_models_request(models, "m", FEAT_TRIGGER_SCHEDULE, "again", &r2, &co), FEAT_OK);
    ck_assert_int_eq(co, 1);
    ck_assert_uint_eq(r1, r2);
    ck_assert_int_eq(feat_models_request(models, "nope", FEAT_TRIGGER_OPERATOR, "", &r2, &co), FEAT_ERR_NOT_FOUND);
    ck_assert_int_eq(feat_models_start(models), FEAT_OK);
    feat_run_status_t st = wait_run(models, "m", r1);
    ck_assert_msg(st.state == FEAT_RUN_SUCCEEDED, "%s", st.error);
    ck_assert_uint_eq(st.version, 1);
    ck_assert_int_eq(st.trigger, FEAT_TRIGGER_OPERATOR);

    /* the first version is the champion even under the manual policy */
    vlist_t l = versions(models, "m");
    ck_assert_int_eq(l.n, 1);
    ck_assert_int_eq(l.stage[0], FEAT_STAGE_CHAMPION);
    ck_assert_str_eq(l.trigger[0], "operator");
    ck_assert_uint_eq(l.n_train + l.n_valid, 400);
    ck_assert_uint_eq(l.n_valid, 100); /* the newest quarter */
    ck_assert_int_eq(l.from_ms, 5000);
    ck_assert_int_eq(l.to_ms, 5399);
    ck_assert_uint_eq(l.nfeatures, 3);
    ck_assert_str_eq(l.features[0], "x");
    ck_assert_str_eq(l.features[2], "c");
    ck_assert_str_eq(l.table, "t");
    ck_assert_msg(l.auc > 0.7 && l.auc <= 1, "validation AUC %g", l.auc);

    feat_loaded_t *v1 = feat_models_acquire(models, "m", "champion", 0, &e);
    ck_assert_ptr_nonnull(v1);
    ck_assert_uint_eq(feat_loaded_version(v1), 1);
    ck_assert_uint_eq(feat_loaded_nfeatures(v1), 3);
    ck_assert_uint_eq(feat_loaded_fidx(v1)[1], 1);
    ck_assert_ptr_null(feat_models_acquire(models, "m", "challenger", 0, &e));
    ck_assert_int_eq(e, FEAT_ERR_NOT_FOUND);
    ck_assert_ptr_null(feat_models_acquire(models, "m", "bogus", 0, &e));
    ck_assert_int_eq(e, FEAT_ERR_INVALID);

    /* a second run: the challenger */
    ck_assert_int_eq(feat_models_request(models, "m", FEAT_TRIGGER_OPERATOR, "", &r2, &co), FEAT_OK);
    st = wait_run(models, "m", r2);
    ck_assert_int_eq(st.state, FEAT_RUN_SUCCEEDED);
    ck_assert_uint_eq(st.version, 2);
    l = versions(models, "m");
    ck_assert_int_eq(stage_of(&l, 2), FEAT_STAGE_CHALLENGER);
    ck_assert_int_eq(stage_of(&l, 1), FEAT_STAGE_CHAMPION);
    feat_loaded_t *c2 = feat_models_acquire(models, "m", "challenger", 0, &e);
    ck_assert_uint_eq(feat_loaded_version(c2), 2);
    feat_loaded_release(c2);

    /* promote the challenger; the old champion's handle stays usable */
    uint64_t champ = 0;
    ck_assert_int_eq(feat_models_promote(models, "m", 99, &champ, msg, sizeof(msg)), FEAT_ERR_NOT_FOUND);
    ck_assert_int_eq(feat_models_promote(models, "m", 0, &champ, msg, sizeof(msg)), FEAT_OK);
    ck_assert_uint_eq(champ, 2);
    feat_raw_t row[3] = {feat_raw_double(0.5), feat_raw_int64(3), feat_raw_string("c1", 2)};
    double p1;
    ck_assert_int_eq(feat_model_predict(feat_loaded_model(v1), row, NULL, 0, &p1), FEAT_OK);
    ck_assert(p1 > 0 && p1 < 1);
    feat_loaded_release(v1);
    feat_loaded_t *c = feat_models_acquire(models, "m", NULL, 0, &e);
    ck_assert_uint_eq(feat_loaded_version(c), 2);
    feat_loaded_release(c);
    ck_assert_int_eq(feat_models_promote(models, "m", 0, &champ, msg, sizeof(msg)), FEAT_ERR_STATE); /* no challenger now */

    /* rollback, once */
    ck_assert_int_eq(feat_models_rollback(models, "m", &champ, msg, sizeof(msg)), FEAT_OK);
    ck_assert_uint_eq(champ, 1);
    ck_assert_int_eq(feat_models_rollback(models, "m", &champ, msg, sizeof(msg)), FEAT_ERR_STATE);
    /* a pinned version is served on demand */
    feat_loaded_t *p2 = feat_models_acquire(models, "m", NULL, 2, &e);
    ck_assert_ptr_nonnull(p2);
    ck_assert_uint_eq(feat_loaded_version(p2), 2);
    feat_loaded_release(p2);
    ck_assert_ptr_null(feat_models_acquire(models, "m", NULL, 7, &e));
    ck_assert_int_eq(e, FEAT_ERR_NOT_FOUND);

    /* too few rows: the run fails and names the key */
    ck_assert_int_eq(feat_models_request(models, "tiny", FEAT_TRIGGER_OPERATOR, "", &r2, &co), FEAT_OK);
    st = wait_run(models, "tiny", r2);
    ck_assert_int_eq(st.state, FEAT_RUN_FAILED);
    ck_assert_msg(strstr(st.error, "model.tiny.min_rows") != NULL, "%s", st.error);

    /* auto policy with margin 1: the first version is champion, the second cannot beat it by 1 AUC */
    ck_assert_int_eq(feat_models_request(models, "a", FEAT_TRIGGER_OPERATOR, "", &r2, &co), FEAT_OK);
    ck_assert_int_eq(wait_run(models, "a", r2).state, FEAT_RUN_SUCCEEDED);
    ck_assert_int_eq(feat_models_request(models, "a", FEAT_TRIGGER_OPERATOR, "", &r2, &co), FEAT_OK);
    ck_assert_int_eq(wait_run(models, "a", r2).state, FEAT_RUN_SUCCEEDED);
    l = versions(models, "a");
    ck_assert_int_eq(stage_of(&l, 1), FEAT_STAGE_CHAMPION);
    ck_assert_int_eq(stage_of(&l, 2), FEAT_STAGE_CHALLENGER);
    feat_models_destroy(models);

    /* reload: aliases and versions persist */
    models = models_new(&f, NULL, reg);
    l = versions(models, "m");
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(stage_of(&l, 1), FEAT_STAGE_CHAMPION);
    ck_assert_int_eq(stage_of(&l, 2), FEAT_STAGE_ARCHIVED);
    c = feat_models_acquire(models, "m", NULL, 0, &e);
    ck_assert_ptr_nonnull(c);
    double p1b;
    ck_assert_int_eq(feat_model_predict(feat_loaded_model(c), row, NULL, 0, &p1b), FEAT_OK);
    ck_assert_double_eq(p1, p1b); /* the stored model predicts exactly what it did before */
    feat_loaded_release(c);
    /* the next run continues the numbering */
    ck_assert_int_eq(feat_models_start(models), FEAT_OK);
    ck_assert_int_eq(feat_models_request(models, "m", FEAT_TRIGGER_OPERATOR, "", &r2, &co), FEAT_OK);
    ck_assert_uint_eq(wait_run(models, "m", r2).version, 3);
    feat_models_destroy(models);
    int lines = 0;
    feat_models_conf_t conf;
    feat_models_conf_from_config(f.cfg, &conf);
    ck_assert_int_eq(feat_models_audit(f.st, &conf, count_line, &lines), 0);
    ck_assert_int_eq(lines, 3 + 1 + 2 + 1); /* m: 3 versions + aliases; a: 2 + aliases; tiny: none */
    feat_metrics_destroy(reg);
    fx_free(&f);
}
END_TEST

/* ---- version metadata ------------------------------------------------------------------------------ */

/* The document a version's record holds is an on-disk format: this one is
 * byte for byte what featd wrote before the metadata became a struct (the
 * old do_run's format strings fed the same values). */
static const char *const meta_golden =
    "{\"model\":\"m\",\"version\":3,\"created_ms\":1732406400123,\"trigger\":\"drift\","
    "\"reason\":\"drift on t.x (ks 0.41) \\\"quoted\\\"\\n\",\"task\":\"mlp\",\"table\":\"t\","
    "\"features\":[{\"name\":\"x\",\"type\":\"double\"},{\"name\":\"n\",\"type\":\"int64\"},"
    "{\"name\":\"c\",\"type\":\"string\"}],"
    "\"params\":{\"learning_rate\":0.003,\"l2\":1e-05,\"epochs\":7,\"hidden\":16,\"batch_size\":256,"
    "\"activation\":\"tanh\",\"seed\":99,\"configs_tried\":4},"
    "\"preprocessing\":{\"input_dim\":9,\"top_k\":20,\"standardize\":true,"
    "\"impute\":\"training mean + missing indicator\"},"
    "\"train_metrics\":{\"auc\":0.9123456789,\"log_loss\":0.3,\"accuracy\":0.8},"
    "\"validation_metrics\":{\"auc\":0.8765,\"log_loss\":0.35,\"accuracy\":0.79},"
    "\"champion_validation_metrics\":{\"auc\":0.86,\"log_loss\":0.36,\"accuracy\":0.78},"
    "\"champion_version\":2,\"beats_champion\":false,"
    "\"data\":{\"from_ms\":5000,\"to_ms\":5399,\"rows\":400,\"train_rows\":300,\"validation_rows\":100,"
    "\"missing_values\":17},\"device\":\"gpu\",\"device_note\":\"GPU \\\"fallback\\\"\","
    "\"train_seconds\":0.0123457,\"rows_per_second\":1.23457e+06,\"run_seconds\":1.5}";

static void eval_eq(const feat_eval_t *a, const feat_eval_t *b) {
    const double x[5] = {a->auc, a->logloss, a->accuracy, a->rmse, a->mae};
    const double y[5] = {b->auc, b->logloss, b->accuracy, b->rmse, b->mae};
    for (int i = 0; i < 5; i++) ck_assert_msg((isnan(x[i]) && isnan(y[i])) || x[i] == y[i], "metric %d: %.17g vs %.17g", i, x[i], y[i]);
}

START_TEST(version_metadata_is_the_stored_format) {
    feat_feature_def_t defs[3] = {{"x", FEAT_FT_DOUBLE}, {"n", FEAT_FT_INT64}, {"c", FEAT_FT_STRING}};
    vmeta_t m = {.model = "m", .version = 3, .created_ms = 1732406400123LL, .trigger = FEAT_TRIGGER_DRIFT,
                 .reason = "drift on t.x (ks 0.41) \"quoted\"\n", .task = "mlp", .table = "t", .features = defs,
                 .nfeatures = 3, .configs_tried = 4, .input_dim = 9, .top_k = 20, .champion_version = 2,
                 .beats_champion = 0, .from_ms = 5000, .to_ms = 5399, .rows = 400, .train_rows = 300,
                 .validation_rows = 100, .missing_values = 17, .device = "gpu", .device_note = "GPU \"fallback\"",
                 .train_seconds = 0.0123456789, .rows_per_second = 1234567.891, .run_seconds = 1.5};
    feat_hyper_init(&m.hyper);
    m.hyper.learning_rate = 0.003;
    m.hyper.l2 = 1e-5;
    m.hyper.hidden = 16;
    m.hyper.epochs = 7;
    m.hyper.activation = FEAT_ACT_TANH;
    m.hyper.seed = 99;
    m.train = (feat_eval_t){0.91234567891234, 0.3, 0.8, NAN, NAN};
    m.valid = (feat_eval_t){0.8765, 0.35, 0.79, INFINITY, NAN}; /* not finite: left out */
    m.champion = (feat_eval_t){0.86, 0.36, 0.78, NAN, NAN};
    feat_buf_t doc = FEAT_BUF_INIT;
    feat_meta_json(&m, &doc);
    ck_assert_uint_eq(doc.len, strlen(meta_golden));
    ck_assert_msg(!memcmp(doc.data, meta_golden, doc.len), "%.*s", (int)doc.len, doc.data);

    /* a new version lists exactly what it will list when read back after a restart */
    vinfo_t fresh, stored;
    ck_assert_int_eq(feat_vinfo_from_meta(&fresh, &m, doc.data, doc.len), FEAT_OK);
    memset(&stored, 0, sizeof(stored));
    stored.json = strndup(doc.data, doc.len);
    ck_assert_int_eq(feat_vinfo_parse(&stored), FEAT_OK);
    ck_assert_int_eq(fresh.created_ms, stored.created_ms);
    ck_assert_str_eq(fresh.trigger, stored.trigger);
    ck_assert_str_eq(fresh.task, stored.task);
    ck_assert_str_eq(fresh.device, stored.device);
    ck_assert_str_eq(fresh.table, stored.table);
    ck_assert_str_eq(fresh.reason, stored.reason);
    ck_assert_str_eq(fresh.reason, m.reason);
    eval_eq(&fresh.train, &stored.train);
    eval_eq(&fresh.valid, &stored.valid);
    ck_assert_uint_eq(fresh.n_train, stored.n_train);
    ck_assert_uint_eq(fresh.n_valid, stored.n_valid);
    ck_assert_int_eq(fresh.from_ms, stored.from_ms);
    ck_assert_int_eq(fresh.to_ms, stored.to_ms);
    ck_assert_double_eq(fresh.seconds, stored.seconds);
    ck_assert_str_eq(fresh.params, stored.params);
    ck_assert_str_eq(fresh.json, stored.json);
    ck_assert_uint_eq(fresh.nfeatures, stored.nfeatures);
    for (size_t j = 0; j < fresh.nfeatures; j++) ck_assert_str_eq(fresh.features[j], stored.features[j]);
    feat_vinfo_free(&fresh);
    feat_vinfo_free(&stored);
    feat_buf_free(&doc);
}
END_TEST

/* ---- Predict and a slow store write ------------------------------------------------------------------ */

/* A store write hook that holds the next registry write (phase 0: before it
 * reaches RocksDB) until the test has acquired and scored the champion.  If
 * acquire were stalled by the write, the hook would wait its whole timeout
 * (a limit on a hang, far above any scheduling delay) and say so. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int armed;              /* the next write is held */
    int writing;            /* a write is held in the hook now */
    int released;           /* the test's acquire and score returned */
    int timed_out;          /* ...did not, within the hook's timeout */
} gate_t;

static void gate_hook(void *arg, const feat_wb_t *wb, int phase) {
    (void)wb;
    gate_t *g = arg;
    if (phase != 0) return;
    pthread_mutex_lock(&g->lock);
    if (g->armed) {
        g->armed = 0;
        g->writing = 1;
        pthread_cond_broadcast(&g->cond);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 60;
        while (!g->released && !g->timed_out)
            if (pthread_cond_timedwait(&g->cond, &g->lock, &until) != 0) g->timed_out = 1;
        g->writing = 0;
    }
    pthread_mutex_unlock(&g->lock);
}

typedef struct op {
    feat_models_t *models;
    int kind;               /* 0 promote v2, 1 rollback */
    int rc;
    uint64_t champion;
} op_t;

static void *run_op(void *arg) {
    op_t *o = arg;
    char msg[256];
    o->rc = o->kind == 0 ? feat_models_promote(o->models, "m", 2, &o->champion, msg, sizeof(msg))
                         : feat_models_rollback(o->models, "m", &o->champion, msg, sizeof(msg));
    return NULL;
}

/* Arms the gate, waits until a registry write is held in it, then acquires
 * and scores the champion (Predict's path) and releases the write.
 * Returns the version served while the write was held. */
static uint64_t predict_during_write(gate_t *g, feat_models_t *models) {
    pthread_mutex_lock(&g->lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 600; /* a limit on a hang: the run must reach its write */
    while (!g->writing) ck_assert_int_eq(pthread_cond_timedwait(&g->cond, &g->lock, &until), 0);
    pthread_mutex_unlock(&g->lock);
    int e;
    feat_loaded_t *l = feat_models_acquire(models, "m", NULL, 0, &e);
    ck_assert_ptr_nonnull(l);
    feat_raw_t row[3] = {feat_raw_double(0.5), feat_raw_int64(3), feat_raw_string("c1", 2)};
    double p;
    ck_assert_int_eq(feat_model_predict(feat_loaded_model(l), row, NULL, 0, &p), FEAT_OK);
    uint64_t served = feat_loaded_version(l);
    feat_loaded_release(l);
    pthread_mutex_lock(&g->lock);
    g->released = 1;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    return served;
}

static void gate_arm(gate_t *g) {
    pthread_mutex_lock(&g->lock);
    ck_assert(!g->timed_out);
    g->armed = 1;
    g->released = 0;
    pthread_mutex_unlock(&g->lock);
}

START_TEST(slow_registry_write_does_not_stall_predict) {
    fx_t f;
    fx_new(&f, reg_cfg);
    fill_registry_data(&f);
    feat_metrics_t *reg = feat_metrics_new();
    feat_models_t *models = models_new(&f, NULL, reg);
    gate_t g = {.armed = 0};
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    uint64_t r;
    int co;
    ck_assert_int_eq(feat_models_start(models), FEAT_OK);
    ck_assert_int_eq(feat_models_request(models, "m", FEAT_TRIGGER_OPERATOR, "", &r, &co), FEAT_OK);
    ck_assert_int_eq(wait_run(models, "m", r).state, FEAT_RUN_SUCCEEDED);
    feat_store_set_write_hook(f.st, gate_hook, &g);

    /* a new version (the challenger, v2), written by the engine thread */
    gate_arm(&g);
    ck_assert_int_eq(feat_models_request(models, "m", FEAT_TRIGGER_OPERATOR, "", &r, &co), FEAT_OK);
    ck_assert_uint_eq(predict_during_write(&g, models), 1);
    feat_run_status_t st = wait_run(models, "m", r);
    ck_assert_msg(st.state == FEAT_RUN_SUCCEEDED, "%s", st.error);
    ck_assert_uint_eq(st.version, 2);
    ck_assert_msg(!g.timed_out, "acquire waited for the store write of a new version");

    /* promote v2, then roll back: while each write is held, v1 is still served */
    for (int kind = 0; kind < 2; kind++) {
        gate_arm(&g);
        op_t o = {models, kind, -1, 0};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, run_op, &o), 0);
        ck_assert_uint_eq(predict_during_write(&g, models), kind == 0 ? 1 : 2);
        pthread_join(t, NULL);
        ck_assert_int_eq(o.rc, FEAT_OK);
        ck_assert_uint_eq(o.champion, kind == 0 ? 2 : 1);
        ck_assert_msg(!g.timed_out, "acquire waited for the store write of a %s", kind == 0 ? "promote" : "rollback");
    }
    feat_store_set_write_hook(f.st, NULL, NULL);
    feat_models_destroy(models);
    pthread_cond_destroy(&g.cond);
    pthread_mutex_destroy(&g.lock);
    feat_metrics_destroy(reg);
    fx_free(&f);
}
END_TEST

/* ---- triggers ------------------------------------------------------------------------------------ */

static const char *trig_cfg =
    "[table t]\ntopic = te\nfeature.x = double\nfeature.n = int64\nfeature.c = string\nfeature.unused = double\n"
    "[model m]\ntable = t\nlabel_topic = l\ntask = logreg\nfeatures = x,n,c\nmin_rows = 50\nepochs = 2\n"
    "retrain_after_labels = 10\ndevice = cpu\n"
    "[model a]\ntable = t\nlabel_topic = la\ntask = logreg\nfeatures = x,n,c\nmin_rows = 50\nepochs = 2\n"
    "retrain_every = 1s\ndevice = cpu\n"
    "[model tiny]\ntable = t\nlabel_topic = lt\ntask = logreg\nfeatures = unused\n";

static int has_run(feat_models_t *models, const char *model, int trigger) {
    feat_run_status_t st;
    return feat_models_run_status(models, model, 0, &st) == FEAT_OK && st.trigger == trigger;
}

START_TEST(triggers_labels_schedule_drift) {
    fx_t f;
    fx_new(&f, trig_cfg);
    fill_registry_data(&f);
    feat_metrics_t *reg = feat_metrics_new();
    feat_models_t *models = models_new(&f, NULL, reg);
    /* drift: an alert on a feature m reads asks for m (and a), not tiny */
    feat_alert_t a;
    memset(&a, 0, sizeof(a));
    a.drifting = 1;
    a.retrain_requested = 1;
    a.table = "t";
    a.feature = "x";
    a.statistic = "ks";
    feat_models_alert_sink(models, &a);
    ck_assert(has_run(models, "m", FEAT_TRIGGER_DRIFT));
    ck_assert(!has_run(models, "tiny", FEAT_TRIGGER_DRIFT));
    a.feature = "unused"; /* only tiny reads it */
    feat_models_alert_sink(models, &a);
    ck_assert(has_run(models, "tiny", FEAT_TRIGGER_DRIFT));
    a.drifting = 0; /* a recovery asks for nothing */
    a.feature = "x";
    uint64_t before = 0;
    feat_run_status_t st;
    feat_models_run_status(models, "a", 0, &st);
    before = st.run_id;
    feat_models_alert_sink(models, &a);
    feat_models_run_status(models, "a", 0, &st);
    ck_assert_uint_eq(st.run_id, before);
    ck_assert_int_eq(feat_models_start(models), FEAT_OK);
    /* labels: 10 new ones for m */
    wait_run(models, "m", 0);
    for (int i = 0; i < 10; i++) feat_models_on_label(models, 0, "k1", 2, 9000 + i, 1);
    int seen = 0;
    for (int i = 0; i < 1000 && !seen; i++) {
        seen = has_run(models, "m", FEAT_TRIGGER_LABELS);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(seen, "10 labels did not request a retrain");
    ck_assert_int_eq(wait_run(models, "m", 0).state, FEAT_RUN_SUCCEEDED);
    /* schedule: a retrains every second */
    seen = 0;
    for (int i = 0; i < 1000 && !seen; i++) {
        seen = has_run(models, "a", FEAT_TRIGGER_SCHEDULE);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(seen, "retrain_every = 1s requested nothing");
    feat_models_destroy(models);
    feat_metrics_destroy(reg);
    fx_free(&f);
}
END_TEST

/* ---- live quality ------------------------------------------------------------------------------- */

static const char *q_cfg =
    "[drift]\nwindow_events = 100000\nretrain_on_drift = true\n"
    "[table t]\ntopic = te\nfeature.x = double\n"
    "[model m]\ntable = t\nlabel_topic = l\ntask = logreg\nquality_window = 200\nquality_floor = 0.9\n"
    "quality_horizon = 1h\n";

typedef struct qalerts {
    pthread_mutex_t lock;
    int n, drifting, retrain_requested, has_table;
    char feature[16], model[16], stat[8];
    double value;
} qalerts_t;

static void qsink(void *arg, const feat_alert_t *a) {
    qalerts_t *q = arg;
    pthread_mutex_lock(&q->lock);
    q->n++;
    q->drifting = a->drifting;
    q->retrain_requested = a->retrain_requested;
    q->has_table = a->table != NULL;
    snprintf(q->feature, sizeof(q->feature), "%s", a->feature);
    snprintf(q->model, sizeof(q->model), "%s", a->model ? a->model : "");
    snprintf(q->stat, sizeof(q->stat), "%s", a->statistic);
    q->value = a->value;
    pthread_mutex_unlock(&q->lock);
}

/* AUC by pairs (ties count one half): independent of train/core/metrics.c */
static double pair_auc(const double *p, const double *y, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (y[i] == 1 && y[j] == 0) {
                den++;
                num += p[i] > p[j] ? 1 : p[i] == p[j] ? 0.5 : 0;
            }
    return num / den;
}

static double metric_value(feat_metrics_t *reg, const char *needle) {
    feat_buf_t b = FEAT_BUF_INIT;
    feat_metrics_render(reg, &b);
    feat_buf_putc(&b, 0);
    const char *p = strstr(b.data, needle);
    double v = p ? strtod(p + strlen(needle), NULL) : -1;
    feat_buf_free(&b);
    return v;
}

START_TEST(live_quality_joins_labels_and_alerts) {
    fx_t f;
    fx_new(&f, q_cfg);
    feat_metrics_t *reg = feat_metrics_new();
    feat_alert_bus_t *bus = feat_alert_bus_new();
    ck_assert_ptr_nonnull(bus);
    qalerts_t q;
    memset(&q, 0, sizeof(q));
    pthread_mutex_init(&q.lock, NULL);
    ck_assert_int_eq(feat_alert_subscribe(bus, "test", qsink, &q), FEAT_OK);
    feat_models_t *models = models_new(&f, bus, reg);
    ck_assert_int_eq(feat_alert_subscribe(bus, "retrain", feat_models_alert_sink, models), FEAT_OK); /* as the daemon */
    enum { N = 200 };
    double p[N], y[N];
    char key[16];
    /* predictions, then labels within the horizon: a weak model (AUC well under the 0.9 floor) */
    for (int i = 0; i < N; i++) {
        y[i] = unif() < 0.5;
        p[i] = 1 / (1 + exp(-(0.6 * (y[i] - 0.5) + gauss())));
        snprintf(key, sizeof(key), "e%d", i);
        feat_models_on_prediction(models, 0, 0, key, strlen(key), 1000000 + i, p[i]);
    }
    /* a label outside the horizon, and one for an entity never predicted, join nothing */
    feat_models_on_label(models, 0, "e0", 2, 1000000 + 3600001, 1);
    feat_models_on_label(models, 0, "zz", 2, 1000500, 1);
    ck_assert_double_eq(metric_value(reg, "featd_model_quality_pairs_total{model=\"m\"} "), 0);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "e%d", i);
        feat_models_on_label(models, 0, key, strlen(key), 1000000 + i + 60000, y[i]);
    }
    ck_assert_double_eq(metric_value(reg, "featd_model_quality_pairs_total{model=\"m\"} "), N);
    double want = pair_auc(p, y, N);
    double got = metric_value(reg, "featd_model_quality{model=\"m\",metric=\"auc\"} ");
    ck_assert_msg(fabs(got - want) < 1e-9, "live AUC %.12g, independent %.12g", got, want);
    ck_assert(want < 0.9);
    pthread_mutex_lock(&q.lock);
    ck_assert_int_eq(q.n, 1);
    ck_assert_int_eq(q.drifting, 1);
    ck_assert_str_eq(q.feature, "quality");
    ck_assert_str_eq(q.model, "m");
    ck_assert_str_eq(q.stat, "auc");
    ck_assert_int_eq(q.has_table, 0);
    ck_assert_int_eq(q.retrain_requested, 1); /* drift.retrain_on_drift: the alert asks for a retrain... */
    /* raised by the first evaluation, over the first 100 pairs */
    double want100 = pair_auc(p, y, 100);
    ck_assert_msg(fabs(q.value - want100) < 1e-9, "alert value %.12g, independent %.12g", q.value, want100);
    pthread_mutex_unlock(&q.lock);
    ck_assert(has_run(models, "m", FEAT_TRIGGER_DRIFT)); /* ...and the retrain sink on the bus requested it */
    feat_models_destroy(models);
    feat_alert_bus_destroy(bus);
    feat_metrics_destroy(reg);
    fx_free(&f);
}
END_TEST

/* 3000 entities in flight: a direct-mapped table of 65536 would lose ~70 of
 * them to collisions (the birthday bound); the 4-way buckets lose none. */
START_TEST(live_quality_joins_every_prediction_once) {
    fx_t f;
    fx_new(&f, q_cfg);
    feat_metrics_t *reg = feat_metrics_new();
    feat_models_t *models = models_new(&f, NULL, reg);
    enum { N = 3000 };
    char key[16];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "ent-%d", i);
        feat_models_on_prediction(models, 0, 0, key, strlen(key), 5000 + i, 0.5);
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "ent-%d", i);
        feat_models_on_label(models, 0, key, strlen(key), 9000 + i, i & 1);
    }
    ck_assert_double_eq(metric_value(reg, "featd_model_quality_pairs_total{model=\"m\"} "), N);
    feat_models_on_label(models, 0, "ent-7", 5, 9999, 1); /* a second label for a joined prediction */
    ck_assert_double_eq(metric_value(reg, "featd_model_quality_pairs_total{model=\"m\"} "), N);
    feat_models_on_prediction(models, 0, 0, "ent-7", 5, 20000, 0.9); /* a new prediction joins again */
    feat_models_on_label(models, 0, "ent-7", 5, 20001, 1);
    ck_assert_double_eq(metric_value(reg, "featd_model_quality_pairs_total{model=\"m\"} "), N + 1);
    feat_models_destroy(models);
    feat_metrics_destroy(reg);
    fx_free(&f);
}
END_TEST

/* ---- the registry between instances (train/models.h, "in a cluster") ------------------------------- */

#define MAXREC 32

/* A models topic in memory: what publish hooks produced, in order. */
typedef struct topic {
    feat_buf_t key[MAXREC], val[MAXREC];
    int n;
} topic_t;

typedef struct inst {
    const char *self;
    int trains;
    topic_t *topic;
} inst_t;

static int t_trainer(void *arg, uint32_t model, char *who, size_t cap) {
    (void)model;
    snprintf(who, cap, "the other");
    return ((inst_t *)arg)->trains;
}

static feat_err_t t_publish(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    topic_t *t = ((inst_t *)arg)->topic;
    ck_assert_int_lt(t->n, MAXREC);
    feat_buf_append(&t->key[t->n], key, klen);
    feat_buf_append(&t->val[t->n], val, vlen);
    t->n++;
    return FEAT_OK;
}

static void t_join(feat_models_t *models, inst_t *in) {
    feat_models_cluster_t cl = {.arg = in, .self = in->self, .trainer = t_trainer, .publish = t_publish};
    feat_models_set_cluster(models, &cl);
}

/* Applies topic records [from, to) to models; the result of the last. */
static feat_err_t t_apply(feat_models_t *models, topic_t *t, int from, int to) {
    char err[256];
    feat_err_t rc = FEAT_OK;
    for (int i = from; i < to; i++)
        rc = feat_models_import(models, t->key[i].data, t->key[i].len, t->val[i].data, t->val[i].len, err,
                                sizeof(err));
    return rc;
}

static uint64_t champion_of(feat_models_t *models) {
    int e;
    feat_loaded_t *l = feat_models_acquire(models, "m", NULL, 0, &e);
    uint64_t v = l ? feat_loaded_version(l) : 0;
    feat_loaded_release(l);
    return v;
}

/* One instance trains and publishes; another with an empty store applies
 * the records and serves the same versions; an instance skips its own
 * aliases records that a newer one of its own follows (so replaying the
 * topic does not undo its latest change), and applies everyone else's in
 * the topic's order, so two instances that change the aliases at once end
 * the same; aliases ahead of their versions wait for them; a version
 * received is never numbered again. */
START_TEST(registry_records_converge) {
    fx_t fa, fb, fc;
    fx_new(&fa, reg_cfg);
    fx_new(&fb, reg_cfg);
    fx_new(&fc, reg_cfg);
    fill_registry_data(&fa);
    feat_metrics_t *ra = feat_metrics_new(), *rb = feat_metrics_new(), *rc_ = feat_metrics_new();
    feat_models_t *a = models_new(&fa, NULL, ra), *b = models_new(&fb, NULL, rb), *c = models_new(&fc, NULL, rc_);
    topic_t *topic = calloc(1, sizeof(*topic));
    inst_t ia = {"a", 1, topic}, ib = {"b", 0, topic}, ic = {"c", 0, topic};
    t_join(a, &ia);
    t_join(b, &ib);
    t_join(c, &ic);
    ck_assert_int_eq(feat_models_start(a), FEAT_OK);
    ck_assert_int_eq(feat_models_start(b), FEAT_OK);
    uint64_t run;
    int co;
    feat_run_status_t st;
    /* b does not train: its run fails naming the trainer */
    ck_assert_int_eq(feat_models_request(b, "m", FEAT_TRIGGER_OPERATOR, "t", &run, &co), FEAT_OK);
    st = wait_run(b, "m", run);
    ck_assert_int_eq(st.state, FEAT_RUN_FAILED);
    ck_assert_msg(strstr(st.error, "the other trains model m"), "%s", st.error);
    for (int k = 1; k <= 2; k++) {
        ck_assert_int_eq(feat_models_request(a, "m", FEAT_TRIGGER_OPERATOR, "t", &run, &co), FEAT_OK);
        st = wait_run(a, "m", run);
        ck_assert_msg(st.state == FEAT_RUN_SUCCEEDED, "%s", st.error);
        ck_assert_uint_eq(st.version, (uint64_t)k);
    }
    /* v1, aliases, v2, aliases */
    ck_assert_int_eq(topic->n, 4);
    ck_assert_int_eq(((char *)topic->key[0].data)[0], 'v');
    ck_assert_int_eq(((char *)topic->key[1].data)[0], 'a');
    for (int i = 0; i < topic->n; i++)
        ck_assert(feat_models_record_ok(topic->key[i].data, topic->key[i].len, topic->val[i].data, topic->val[i].len));

    /* c gets the aliases before the versions they name: they wait */
    ck_assert_int_eq(t_apply(c, topic, 3, 4), FEAT_ERR_STATE);
    ck_assert_uint_eq(champion_of(c), 0);
    ck_assert_int_eq(t_apply(c, topic, 0, 1), FEAT_OK);
    ck_assert_int_eq(t_apply(c, topic, 2, 3), FEAT_OK);
    ck_assert_uint_eq(champion_of(c), 1);
    vlist_t lc = versions(c, "m");
    ck_assert_int_eq(lc.n, 2);
    ck_assert_int_eq(stage_of(&lc, 2), FEAT_STAGE_CHALLENGER);

    /* b applies the records in order: the same versions, stages and model */
    ck_assert_int_eq(t_apply(b, topic, 0, topic->n), FEAT_OK);
    vlist_t la = versions(a, "m"), lb = versions(b, "m");
    ck_assert_int_eq(lb.n, 2);
    for (uint64_t v = 1; v <= 2; v++) ck_assert_int_eq(stage_of(&lb, v), stage_of(&la, v));
    ck_assert_uint_eq(lb.n_train, la.n_train);
    ck_assert_double_eq(lb.auc, la.auc);
    ck_assert_uint_eq(champion_of(b), 1);
    /* a applies its own echoes: nothing changes */
    ck_assert_int_eq(t_apply(a, topic, 0, topic->n), FEAT_OK);
    ck_assert_uint_eq(champion_of(a), 1);

    /* a promotes v2 then rolls back: replaying its promote must not undo the rollback */
    char msg[256];
    uint64_t ch;
    int from = topic->n;
    ck_assert_int_eq(feat_models_promote(a, "m", 2, &ch, msg, sizeof(msg)), FEAT_OK);
    ck_assert_int_eq(feat_models_rollback(a, "m", &ch, msg, sizeof(msg)), FEAT_OK);
    ck_assert_int_eq(topic->n, from + 2);
    ck_assert_int_eq(t_apply(a, topic, from, from + 1), FEAT_OK);
    ck_assert_uint_eq(champion_of(a), 1); /* its older record skipped */
    ck_assert_int_eq(t_apply(a, topic, from + 1, from + 2), FEAT_OK);
    ck_assert_uint_eq(champion_of(a), 1);
    /* b sees both, in order */
    ck_assert_int_eq(t_apply(b, topic, from, from + 1), FEAT_OK);
    ck_assert_uint_eq(champion_of(b), 2);
    ck_assert_int_eq(t_apply(b, topic, from + 1, from + 2), FEAT_OK);
    ck_assert_uint_eq(champion_of(b), 1);

    /* a and b change the aliases at once: both end as the topic orders the records */
    from = topic->n;
    ck_assert_int_eq(feat_models_promote(b, "m", 2, &ch, msg, sizeof(msg)), FEAT_OK); /* b's first */
    ck_assert_int_eq(feat_models_promote(a, "m", 2, &ch, msg, sizeof(msg)), FEAT_OK);
    ck_assert_int_eq(feat_models_rollback(a, "m", &ch, msg, sizeof(msg)), FEAT_OK); /* then a's two */
    ck_assert_int_eq(topic->n, from + 3);
    ck_assert_int_eq(t_apply(a, topic, from, topic->n), FEAT_OK);
    ck_assert_int_eq(t_apply(b, topic, from, topic->n), FEAT_OK);
    ck_assert_uint_eq(champion_of(a), 1);
    ck_assert_uint_eq(champion_of(b), 1);

    /* a version received is never numbered again: c takes over training, its next is v3 */
    ck_assert_int_eq(t_apply(c, topic, 4, topic->n), FEAT_OK);
    ck_assert_uint_eq(champion_of(c), 1);
    feat_models_stop(c);
    ic.trains = 1;
    fill_registry_data(&fc);
    ck_assert_int_eq(feat_models_start(c), FEAT_OK);
    ck_assert_int_eq(feat_models_request(c, "m", FEAT_TRIGGER_OPERATOR, "t", &run, &co), FEAT_OK);
    st = wait_run(c, "m", run);
    ck_assert_msg(st.state == FEAT_RUN_SUCCEEDED, "%s", st.error);
    ck_assert_uint_eq(st.version, 3);

    feat_models_destroy(a);
    feat_models_destroy(b);
    feat_models_destroy(c);
    for (int i = 0; i < topic->n; i++) {
        feat_buf_free(&topic->key[i]);
        feat_buf_free(&topic->val[i]);
    }
    free(topic);
    feat_metrics_destroy(ra);
    feat_metrics_destroy(rb);
    feat_metrics_destroy(rc_);
    fx_free(&fa);
    fx_free(&fb);
    fx_free(&fc);
}
END_TEST

int main(void) {
    feat_log_set_level(FEAT_LOG_WARN);
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, trainset_is_point_in_time_with_ttl);
    tcase_add_test(tc, trainset_joins_several_tables);
    tcase_add_test(tc, registry_life_cycle);
    tcase_add_test(tc, version_metadata_is_the_stored_format);
    tcase_add_test(tc, slow_registry_write_does_not_stall_predict);
    tcase_add_test(tc, triggers_labels_schedule_drift);
    tcase_add_test(tc, live_quality_joins_labels_and_alerts);
    tcase_add_test(tc, live_quality_joins_every_prediction_once);
    tcase_add_test(tc, registry_records_converge);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
