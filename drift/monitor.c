/*
 * drift/monitor.c — see monitor.h.
 *
 * Layout: one stream per table and one per model's predictions; a stream
 * holds one fmon per feature.  Each fmon has a reference, a ring of SLOTS
 * window buffers (ingest fills the live slot; closed slots wait, oldest
 * first, for the monitor thread) and the last judged window (kept for pinning
 * and reports).  A burst that closes windows faster than they are judged
 * fills the ring; only when the ring is full does a window keep filling past
 * its size (counted as delayed).  Buffers swap; they are never copied or
 * reallocated after start-up.
 *
 * Locking: stream->lock guards the slot indexes, the counts, the live slot,
 * the reference while it is being collected, and every field reports read.
 * Closed slots and the last window belong to the monitor thread.
 */
#include "drift/monitor.h"
#include "stats/catfreq.h"
#include "stats/divergence.h"
#include "stats/kll.h"
#include "stats/ks.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/worker.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXB FEAT_DRIFT_REPORT_BINS
#define CAT_CAP 64        /* unpinned categories tracked per window */
#define CAT_PINS 64       /* reference categories pinned in windows */
#define CAT_LABEL 32
#define SLOTS 4           /* window buffers per feature: one filling, up to 3 waiting to be judged */

typedef struct hrec {
    double ks, psi;
    uint8_t drift;
} hrec_t;

typedef struct fmon {
    const char *feature;
    int categorical, is_bool, enabled;
    double th_ks, th_psi, th_kl, th_js, th_p;
    /* reference */
    int source;
    const char *ref_model;
    feat_kll_t *ref_kll;
    feat_catfreq_t *ref_cat;
    uint64_t ref_n;
    int ref_ready;          /* set under lock; then only the monitor thread changes the reference */
    int ref_fresh;          /* just completed: prepare and persist */
    int pin_req;
    /* a model's reference waiting to be installed by the monitor thread */
    feat_kll_t *staged_kll;
    feat_catfreq_t *staged_cat;
    const char *staged_model;
    double edges[MAXB];
    uint32_t nedges;
    double ref_bins[MAXB + 1];
    /* windows: a ring of SLOTS buffers, see smon_t */
    feat_kll_t *kll[SLOTS], *last_kll;
    feat_catfreq_t *cat[SLOTS], *last_cat;
    uint64_t wn[SLOTS], last_n;
    /* state and last results (written by the monitor thread under lock) */
    int state, clean;
    uint64_t windows;
    int64_t window_end_ms;
    double ks, ks_p, psi, kl, js, chi2, chi2_p;
    hrec_t *hist;
    uint32_t hhead, hn;
    uint32_t nbins;
    double ref_frac[MAXB], live_frac[MAXB];
    char labels[MAXB][CAT_LABEL];
} fmon_t;

typedef struct smon {
    pthread_mutex_t lock;
    const char *name;       /* table or model name */
    int model;              /* index of the model for prediction streams, else -1 */
    const char *table;      /* NULL for prediction streams */
    fmon_t *f;
    size_t nf;
    int live;               /* slot being filled */
    int oldest;             /* oldest closed slot, when nclosed > 0 */
    int nclosed;            /* closed slots waiting to be judged (<= SLOTS - 1) */
    uint64_t count;
    int64_t opened_ms;
    int64_t end_ms[SLOTS];
} smon_t;

struct feat_drift {
    feat_drift_conf_t conf;
    feat_store_t *st;
    feat_alert_bus_t *alerts;   /* NULL: alerts dropped */
    feat_metrics_t *metrics;
    smon_t *s;
    size_t ns;
    pthread_t thr;
    int started;
    pthread_mutex_t wlock;
    pthread_cond_t wcond;
    int stop, pending;
    _Atomic uint64_t windows_closed, windows_delayed, nalerts, recoveries;
    feat_metric_t *m_windows, *m_delayed;
};

const char *feat_drift_state_name(int s) {
    return s == FEAT_DRIFT_OK ? "ok" : s == FEAT_DRIFT_DRIFTING ? "drifting" : "warming_up";
}

const char *feat_drift_source_name(int s) {
    static const char *const n[] = {"none", "first_n", "pinned", "model"};
    return s >= 0 && s <= 3 ? n[s] : "none";
}

static double pick(double v, double dflt) { return isnan(v) ? dflt : v; }

/* ---- set-up -------------------------------------------------------------------- */

static feat_err_t fmon_init(feat_drift_t *d, fmon_t *f, const char *stream, const char *feature, feat_ftype_t type,
                            const feat_drift_thresh_t *th) {
    const feat_drift_conf_t *c = &d->conf;
    memset(f, 0, sizeof(*f));
    f->feature = feature;
    f->categorical = type == FEAT_FT_STRING || type == FEAT_FT_BOOL;
    f->is_bool = type == FEAT_FT_BOOL;
    f->enabled = th && th->enabled >= 0 ? th->enabled : 1;
    f->th_ks = pick(th ? th->ks : NAN, c->ks);
    f->th_psi = pick(th ? th->psi : NAN, c->psi);
    f->th_kl = pick(th ? th->kl : NAN, c->kl);
    f->th_js = pick(th ? th->js : NAN, c->js);
    f->th_p = pick(th ? th->p_value : NAN, c->p_value);
    f->hist = calloc((size_t)c->history, sizeof(hrec_t));
    if (!f->hist) return FEAT_ERR_NOMEM;
    uint64_t seed = feat_hash_mix(feat_hash64_more(feat_hash64(stream, strlen(stream)), feature, strlen(feature)));
    feat_err_t e = FEAT_OK;
    if (f->categorical) {
        f->ref_cat = feat_catfreq_new(CAT_PINS, 0, CAT_LABEL, &e);
        for (int i = 0; i < SLOTS && !e; i++) f->cat[i] = feat_catfreq_new(CAT_CAP, CAT_PINS, CAT_LABEL, &e);
        if (!e) f->last_cat = feat_catfreq_new(CAT_CAP, CAT_PINS, CAT_LABEL, &e);
        if (!e && f->is_bool) { /* both values are the categories, from the start */
            for (int i = 0; i < SLOTS; i++) {
                feat_catfreq_pin(f->cat[i], feat_catfreq_hash("false", 5), "false", 5);
                feat_catfreq_pin(f->cat[i], feat_catfreq_hash("true", 4), "true", 4);
            }
            feat_catfreq_pin(f->last_cat, feat_catfreq_hash("false", 5), "false", 5);
            feat_catfreq_pin(f->last_cat, feat_catfreq_hash("true", 4), "true", 4);
        }
    } else {
        uint32_t k = (uint32_t)c->sketch_k;
        f->ref_kll = feat_kll_new(k, seed, &e);
        for (int i = 0; i < SLOTS && !e; i++) f->kll[i] = feat_kll_new(k, seed + 1 + (uint64_t)i, &e);
        if (!e) f->last_kll = feat_kll_new(k, seed + SLOTS + 1, &e);
    }
    return e;
}

static void fmon_free(fmon_t *f) {
    feat_kll_destroy(f->staged_kll);
    feat_catfreq_destroy(f->staged_cat);
    feat_kll_destroy(f->ref_kll);
    feat_catfreq_destroy(f->ref_cat);
    for (int i = 0; i < SLOTS; i++) {
        feat_kll_destroy(f->kll[i]);
        feat_catfreq_destroy(f->cat[i]);
    }
    feat_kll_destroy(f->last_kll);
    feat_catfreq_destroy(f->last_cat);
    free(f->hist);
}

/* key of a persisted reference: "drift" \0 stream \0 feature */
static size_t ref_key(char *buf, size_t cap, const char *stream, const char *feature) {
    int n = snprintf(buf, cap, "drift%c%s%c%s", 0, stream, 0, feature);
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap;
}

/* Prepares a reference for use: bins (numbers) or pins in the windows
 * (categories).  Caller holds the stream lock. */
static void cut_bins(feat_drift_t *d, fmon_t *f);

static void prepare_reference(feat_drift_t *d, fmon_t *f) {
    if (f->categorical) {
        uint32_t n = feat_catfreq_size(f->ref_cat);
        for (uint32_t i = 0; i < n; i++) {
            feat_catfreq_entry_t e;
            if (feat_catfreq_entry(f->ref_cat, i, &e)) continue;
            for (int b = 0; b < SLOTS; b++) feat_catfreq_pin(f->cat[b], e.hash, e.label, strlen(e.label));
            feat_catfreq_pin(f->last_cat, e.hash, e.label, strlen(e.label));
        }
        return;
    }
    cut_bins(d, f);
}

/* f's bins: edges at its reference's quantiles, and the reference's share of each. */
static void cut_bins(feat_drift_t *d, fmon_t *f) {
    uint32_t nb = (uint32_t)d->conf.bins;
    if (feat_bins_edges_kll(f->ref_kll, nb, f->edges, &f->nedges) != FEAT_OK) f->nedges = 0;
    double counts[MAXB + 1];
    if (feat_bins_count_kll(f->ref_kll, f->edges, f->nedges, counts) == FEAT_OK) {
        double tot = 0;
        for (uint32_t i = 0; i <= f->nedges; i++) tot += counts[i];
        for (uint32_t i = 0; i <= f->nedges; i++) f->ref_bins[i] = tot > 0 ? counts[i] / tot : 0;
    }
}

static void persist_reference(feat_drift_t *d, const char *stream, fmon_t *f) {
    size_t blen = f->categorical ? feat_catfreq_serialized_size(f->ref_cat) : feat_kll_serialized_size(f->ref_kll);
    unsigned char *buf = malloc(blen + 16);
    if (!buf) return;
    buf[0] = 1;
    buf[1] = (unsigned char)f->source;
    buf[2] = (unsigned char)f->categorical;
    feat_put_le64(buf + 3, f->ref_n);
    size_t w = 0;
    feat_err_t e = f->categorical ? feat_catfreq_serialize(f->ref_cat, buf + 11, blen, &w)
                                  : feat_kll_serialize(f->ref_kll, buf + 11, blen, &w);
    char key[256];
    size_t kl = ref_key(key, sizeof(key), stream, f->feature);
    if (!e && feat_store_put_blob(d->st, FEAT_CF_REFERENCES, key, kl, buf, 11 + w) != FEAT_OK)
        feat_log(FEAT_LOG_WARN, "drift", "cannot persist the reference of %s.%s", stream, f->feature);
    free(buf);
}

/* Loads a persisted first-N or pinned reference.  Start-up only. */
static void load_reference(feat_drift_t *d, const char *stream, fmon_t *f) {
    char key[256];
    size_t kl = ref_key(key, sizeof(key), stream, f->feature);
    feat_buf_t b = FEAT_BUF_INIT;
    if (feat_store_get_blob(d->st, FEAT_CF_REFERENCES, key, kl, &b) != FEAT_OK) {
        feat_buf_free(&b);
        return;
    }
    const unsigned char *p = (const unsigned char *)b.data;
    if (b.len < 11 || p[0] != 1 || p[2] != (unsigned char)f->categorical) {
        feat_log(FEAT_LOG_WARN, "drift", "ignoring an unreadable stored reference for %s.%s", stream, f->feature);
        feat_buf_free(&b);
        return;
    }
    if (f->categorical) {
        feat_catfreq_t *c = NULL;
        if (feat_catfreq_deserialize(p + 11, b.len - 11, &c) == FEAT_OK) {
            feat_catfreq_destroy(f->ref_cat);
            f->ref_cat = c;
        } else goto bad;
    } else {
        feat_kll_t *k = NULL;
        if (feat_kll_deserialize(p + 11, b.len - 11, &k) == FEAT_OK && feat_kll_k(k) == feat_kll_k(f->kll[0])) {
            feat_kll_destroy(f->ref_kll);
            f->ref_kll = k;
        } else {
            feat_kll_destroy(k);
            goto bad;
        }
    }
    f->source = p[1];
    f->ref_n = feat_get_le64(p + 3);
    f->ref_ready = 1;
    f->state = FEAT_DRIFT_OK;
    prepare_reference(d, f);
    feat_buf_free(&b);
    return;
bad:
    feat_log(FEAT_LOG_WARN, "drift", "ignoring a corrupt stored reference for %s.%s", stream, f->feature);
    feat_buf_free(&b);
}

static void collect(feat_metrics_emit_t *em, void *arg);

void feat_drift_conf_from_config(const feat_config_t *c, feat_drift_conf_t *conf) {
    *conf = (feat_drift_conf_t){
        .tables = c->tables, .ntables = c->ntables, .models = c->models, .nmodels = c->nmodels,
        .window_events = c->drift_window_events, .window_ms = c->drift_window_ms, .min_window = c->drift_min_window,
        .reference_events = c->drift_reference_events, .sketch_k = c->drift_sketch_k, .bins = c->drift_bins,
        .recovery_windows = c->drift_recovery_windows, .history = c->drift_history, .ks = c->drift_ks,
        .psi = c->drift_psi, .kl = c->drift_kl, .js = c->drift_js, .p_value = c->drift_p_value,
        .retrain_on_drift = c->drift_retrain_on_drift,
    };
}

feat_drift_t *feat_drift_new(const feat_drift_conf_t *conf, feat_store_t *st, feat_alert_bus_t *alerts,
                             feat_metrics_t *metrics, char *errstr, size_t errlen) {
    feat_drift_t *d = calloc(1, sizeof(*d));
    if (!d) goto nomem;
    d->conf = *conf;
    const feat_drift_conf_t *cfg = &d->conf;
    d->st = st;
    d->alerts = alerts;
    d->metrics = metrics ? metrics : feat_metrics_global();
    pthread_mutex_init(&d->wlock, NULL);
    pthread_cond_init(&d->wcond, NULL);
    d->ns = cfg->ntables + cfg->nmodels;
    d->s = calloc(d->ns ? d->ns : 1, sizeof(smon_t));
    if (!d->s) goto nomem;
    for (size_t i = 0; i < d->ns; i++) {
        smon_t *s = &d->s[i];
        pthread_mutex_init(&s->lock, NULL);
        if (i < cfg->ntables) {
            const feat_table_conf_t *t = &cfg->tables[i];
            s->name = s->table = t->name;
            s->model = -1;
            s->nf = t->nfeatures;
            s->f = calloc(s->nf, sizeof(fmon_t));
            if (!s->f) goto nomem;
            for (size_t k = 0; k < s->nf; k++)
                if (fmon_init(d, &s->f[k], t->name, t->features[k].name, t->features[k].type, &t->features[k].drift))
                    goto nomem;
        } else {
            const feat_model_conf_t *m = &cfg->models[i - cfg->ntables];
            s->name = m->name;
            s->model = (int)(i - cfg->ntables);
            s->nf = 1;
            s->f = calloc(1, sizeof(fmon_t));
            if (!s->f || fmon_init(d, &s->f[0], m->name, "prediction", FEAT_FT_DOUBLE, NULL)) goto nomem;
        }
        for (size_t k = 0; k < s->nf; k++) load_reference(d, s->name, &s->f[k]);
    }
    d->m_windows = feat_counter(d->metrics, "featd_drift_windows_total", "Drift windows closed and judged.", NULL);
    d->m_delayed = feat_counter(d->metrics, "featd_drift_windows_delayed_total",
                                "Windows that kept filling because the previous one was still being judged.", NULL);
    feat_metrics_add_collector(d->metrics, collect, d);
    return d;
nomem:
    snprintf(errstr, errlen, "drift: out of memory");
    feat_drift_destroy(d);
    return NULL;
}

/* ---- the hot path -------------------------------------------------------------------- */

static void signal_monitor(feat_drift_t *d) {
    pthread_mutex_lock(&d->wlock);
    d->pending = 1;
    pthread_cond_signal(&d->wcond);
    pthread_mutex_unlock(&d->wlock);
}

/* Closes the live window of s: caller holds s->lock. */
static void close_locked(feat_drift_t *d, smon_t *s) {
    if (s->nclosed == SLOTS - 1) { /* every other slot still waits to be judged: keep filling */
        atomic_fetch_add(&d->windows_delayed, 1);
        feat_metric_add(d->m_delayed, 1);
        return;
    }
    if (s->nclosed == 0) s->oldest = s->live;
    s->end_ms[s->live] = feat_now_ms();
    s->nclosed++;
    s->live = (s->live + 1) % SLOTS;
    s->count = 0;
    s->opened_ms = 0;
    signal_monitor(d);
}

static void add_value(feat_drift_t *d, smon_t *s, fmon_t *f, const feat_value_t *v) {
    if (!f->enabled) return;
    const char *str = NULL;
    size_t slen = 0;
    double x = 0;
    switch (v->type) {
    case FEAT_FT_DOUBLE: x = v->v.d; break;
    case FEAT_FT_INT64: x = (double)v->v.i; break;
    case FEAT_FT_BOOL: str = v->v.b ? "true" : "false"; slen = v->v.b ? 4 : 5; break;
    case FEAT_FT_STRING: str = v->v.s; slen = v->slen; break;
    default: return;
    }
    if (!f->ref_ready) { /* collecting the first-N reference */
        if (f->categorical) feat_catfreq_add(f->ref_cat, str, slen, 1);
        else if (feat_kll_update(f->ref_kll, x) != FEAT_OK) return;
        if (++f->ref_n >= (uint64_t)d->conf.reference_events) {
            f->ref_ready = 1;
            f->ref_fresh = 1;
            f->source = FEAT_REF_FIRST_N; /* the monitor prepares it on its next pass (within 1 s) */
        }
        return;
    }
    int b = s->live;
    if (f->categorical) feat_catfreq_add(f->cat[b], str, slen, 1);
    else if (feat_kll_update(f->kll[b], x) != FEAT_OK) return;
    f->wn[b]++;
}

void feat_drift_observe(feat_drift_t *d, uint32_t table, const uint16_t *fidx, const feat_value_t *vals, size_t n,
                        int64_t ts) {
    (void)ts;
    if (!d || table >= d->conf.ntables) return;
    smon_t *s = &d->s[table];
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++)
        if (fidx[i] < s->nf) add_value(d, s, &s->f[fidx[i]], &vals[i]);
    if (s->count++ == 0) s->opened_ms = feat_now_ms();
    if (s->count >= (uint64_t)d->conf.window_events) close_locked(d, s);
    pthread_mutex_unlock(&s->lock);
}

void feat_drift_observe_prediction(feat_drift_t *d, uint32_t model, double score) {
    if (!d || model >= d->conf.nmodels || !isfinite(score)) return;
    smon_t *s = &d->s[d->conf.ntables + model];
    feat_value_t v;
    memset(&v, 0, sizeof(v));
    v.type = FEAT_FT_DOUBLE;
    v.v.d = score;
    pthread_mutex_lock(&s->lock);
    add_value(d, s, &s->f[0], &v);
    if (s->count++ == 0) s->opened_ms = feat_now_ms();
    if (s->count >= (uint64_t)d->conf.window_events) close_locked(d, s);
    pthread_mutex_unlock(&s->lock);
}

/* ---- judging a window ------------------------------------------------------------------ */

/* Publishes a change of state of f on the alert bus (the monitor thread). */
static void emit(feat_drift_t *d, smon_t *s, fmon_t *f, int drifting, const char *stat, double value, double th,
                 double p) {
    feat_alert_t a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%.16s.%.16s.%llu", s->name, f->feature, (unsigned long long)f->windows);
    a.time_ms = f->window_end_ms;
    a.drifting = drifting;
    a.table = s->table;
    a.feature = f->feature;
    a.model = s->model >= 0 ? d->conf.models[s->model].name : f->ref_model;
    a.statistic = stat;
    a.value = value;
    a.threshold = th;
    a.p_value = p;
    a.ks = f->ks;
    a.psi = f->psi;
    a.kl = f->kl;
    a.window_size = f->last_n;
    a.reference_size = f->ref_n;
    if (drifting && d->conf.retrain_on_drift) {
        if (s->model >= 0) a.retrain_requested = 1;
        for (size_t m = 0; s->table && m < d->conf.nmodels; m++)
            if (!strcmp(d->conf.models[m].table, s->table)) a.retrain_requested = 1;
    }
    atomic_fetch_add(drifting ? &d->nalerts : &d->recoveries, 1);
    feat_alert_publish(d->alerts, &a);
}

/* Judges buffer b of f against its reference.  Runs on the monitor thread;
 * the buffer and the reference are not touched by anyone else meanwhile. */
/* A window compared with a reference: the statistics, the bins, the verdict. */
typedef struct verdict {
    double ks, ks_p, psi, kl, js, chi2, chi2_p;
    double live_frac[MAXB + 1], ref_frac[MAXB + 1];
    char labels[MAXB][CAT_LABEL];
    uint32_t nbins;
    int drift;
    const char *stat;
    double value, th;
} verdict_t;

/* Compares window wk (numbers) or wc (categories) with f's reference
 * (ref_kll or ref_cat, and the bins prepare_reference cut) under f's
 * thresholds.  0, or -1 when the two cannot be compared. */
static int evaluate(const fmon_t *f, feat_kll_t *wk, const feat_catfreq_t *wc, verdict_t *v) {
    memset(v, 0, sizeof(*v));
    v->ks_p = 1;
    v->chi2_p = 1;
    v->stat = "ks";
    if (f->categorical) {
        feat_catfreq_cmp_t c;
        if (feat_catfreq_compare(wc, f->ref_cat, FEAT_DRIFT_EPS, &c) != FEAT_OK) return -1;
        v->chi2 = c.chi2;
        v->chi2_p = c.chi2_pvalue;
        v->kl = c.kl;
        v->psi = c.psi;
        v->js = c.js;
        int sig = v->chi2_p < f->th_p;
        if (sig && v->js >= f->th_js) { v->drift = 1; v->stat = "js"; v->value = v->js; v->th = f->th_js; }
        else if (sig && v->kl >= f->th_kl) { v->drift = 1; v->stat = "kl"; v->value = v->kl; v->th = f->th_kl; }
        else if (v->psi >= f->th_psi) { v->drift = 1; v->stat = "psi"; v->value = v->psi; v->th = f->th_psi; }
        double rc[MAXB + 1], lc[MAXB + 1];
        uint32_t nc = 0;
        if (feat_catfreq_align(wc, f->ref_cat, rc, lc, MAXB, &nc) == FEAT_OK) {
            double rt = 0, lt = 0;
            for (uint32_t i = 0; i < nc; i++) { rt += rc[i]; lt += lc[i]; }
            for (uint32_t i = 0; i < nc; i++) {
                v->ref_frac[i] = rt > 0 ? rc[i] / rt : 0;
                v->live_frac[i] = lt > 0 ? lc[i] / lt : 0;
                feat_catfreq_entry_t e;
                if (i + 1 < nc && feat_catfreq_entry(f->ref_cat, i, &e) == FEAT_OK)
                    snprintf(v->labels[i], CAT_LABEL, "%s", e.label[0] ? e.label : "?");
                else
                    snprintf(v->labels[i], CAT_LABEL, "(other)");
            }
            v->nbins = nc;
        }
        return 0;
    }
    feat_ks_sketch_result_t r;
    if (feat_ks_kll(f->ref_kll, wk, FEAT_KS_TWO_SIDED, FEAT_KS_LIMIT, 0.01, &r) != FEAT_OK) return -1;
    v->ks = r.statistic;
    v->ks_p = r.pvalue;
    double lc[MAXB + 1];
    v->nbins = f->nedges + 1;
    if (feat_bins_count_kll(wk, f->edges, f->nedges, lc) != FEAT_OK) return -1;
    double lt = 0;
    for (uint32_t i = 0; i < v->nbins; i++) lt += lc[i];
    for (uint32_t i = 0; i < v->nbins; i++) {
        v->live_frac[i] = lt > 0 ? lc[i] / lt : 0;
        v->ref_frac[i] = f->ref_bins[i];
    }
    feat_divergences_t dv;
    if (v->nbins > 1 && feat_divergences(v->ref_frac, v->live_frac, v->nbins, FEAT_DRIFT_EPS, &dv) == FEAT_OK) {
        v->kl = dv.kl;
        v->psi = dv.psi;
        v->js = dv.js;
    }
    int sig = v->ks_p < f->th_p;
    if (sig && v->ks >= f->th_ks) { v->drift = 1; v->stat = "ks"; v->value = v->ks; v->th = f->th_ks; }
    else if (sig && v->kl >= f->th_kl) { v->drift = 1; v->stat = "kl"; v->value = v->kl; v->th = f->th_kl; }
    else if (v->psi >= f->th_psi) { v->drift = 1; v->stat = "psi"; v->value = v->psi; v->th = f->th_psi; }
    return 0;
}

static void judge(feat_drift_t *d, smon_t *s, fmon_t *f, int b, int64_t end_ms) {
    uint64_t n = f->wn[b];
    if (!f->enabled || !f->ref_ready || n < (uint64_t)d->conf.min_window) return;
    verdict_t *v = malloc(sizeof(*v));
    if (!v || evaluate(f, f->kll[b], f->cat[b], v)) {
        free(v);
        return;
    }
    double ks = v->ks, ks_p = v->ks_p, psi = v->psi, kl = v->kl, js = v->js, chi2 = v->chi2, chi2_p = v->chi2_p;
    uint32_t nbins = v->nbins;
    int drift = v->drift;
    const char *stat = v->stat;
    double value = v->value, th = v->th;
    pthread_mutex_lock(&s->lock);
    f->windows++;
    f->window_end_ms = end_ms;
    f->ks = ks; f->ks_p = ks_p; f->psi = psi; f->kl = kl; f->js = js; f->chi2 = chi2; f->chi2_p = chi2_p;
    f->nbins = nbins > MAXB ? MAXB : nbins;
    memcpy(f->live_frac, v->live_frac, f->nbins * sizeof(double));
    memcpy(f->ref_frac, v->ref_frac, f->nbins * sizeof(double));
    if (f->categorical) memcpy(f->labels, v->labels, f->nbins * CAT_LABEL);
    uint32_t H = (uint32_t)d->conf.history;
    f->hist[f->hhead] = (hrec_t){ks, psi, (uint8_t)drift};
    f->hhead = (f->hhead + 1) % H;
    if (f->hn < H) f->hn++;
    int before = f->state;
    if (drift) {
        f->state = FEAT_DRIFT_DRIFTING;
        f->clean = 0;
    } else if (f->state == FEAT_DRIFT_DRIFTING) {
        if (++f->clean >= (int)d->conf.recovery_windows) f->state = FEAT_DRIFT_OK;
    } else {
        f->state = FEAT_DRIFT_OK;
    }
    int after = f->state;
    pthread_mutex_unlock(&s->lock);
    free(v);
    if (after == FEAT_DRIFT_DRIFTING && before != FEAT_DRIFT_DRIFTING) emit(d, s, f, 1, stat, value, th, f->categorical ? chi2_p : ks_p);
    if (before == FEAT_DRIFT_DRIFTING && after == FEAT_DRIFT_OK) emit(d, s, f, 0, "recovered", 0, 0, 1);
}

/* Applies pins, prepares fresh references, judges a closed window. */
static void service_stream(feat_drift_t *d, smon_t *s) {
    int64_t now = feat_now_ms();
    pthread_mutex_lock(&s->lock);
    if (d->conf.window_ms > 0 && s->count > 0 && now - s->opened_ms >= d->conf.window_ms)
        close_locked(d, s);
    int fresh[FEAT_MAX_FEATURES + 1];
    size_t nfresh = 0;
    for (size_t k = 0; k < s->nf; k++) {
        fmon_t *f = &s->f[k];
        if (f->pin_req && f->last_n) {
            /* the last judged window becomes the reference */
            if (f->categorical) {
                size_t sz = feat_catfreq_serialized_size(f->last_cat);
                void *tmp = malloc(sz);
                size_t w = 0;
                feat_catfreq_t *c = NULL;
                if (tmp && !feat_catfreq_serialize(f->last_cat, tmp, sz, &w) && !feat_catfreq_deserialize(tmp, w, &c)) {
                    feat_catfreq_destroy(f->ref_cat);
                    f->ref_cat = c;
                }
                free(tmp);
            } else {
                feat_kll_reset(f->ref_kll);
                feat_kll_merge(f->ref_kll, f->last_kll);
            }
            f->ref_n = f->last_n;
            f->source = FEAT_REF_PINNED;
            f->ref_model = NULL;
            f->ref_ready = 1;
            f->ref_fresh = 1;
            f->state = FEAT_DRIFT_OK;
            f->clean = 0;
        }
        f->pin_req = 0;
        if (f->staged_kll || f->staged_cat) { /* judge() never runs during this: we are its thread */
            if (f->categorical) {
                feat_catfreq_destroy(f->ref_cat);
                f->ref_cat = f->staged_cat;
                f->ref_n = feat_catfreq_total(f->ref_cat);
            } else {
                feat_kll_destroy(f->ref_kll);
                f->ref_kll = f->staged_kll;
                f->ref_n = feat_kll_count(f->ref_kll);
            }
            f->staged_kll = NULL;
            f->staged_cat = NULL;
            f->source = FEAT_REF_MODEL;
            f->ref_model = f->staged_model;
            f->ref_ready = 1;
            f->ref_fresh = 1;
            f->state = FEAT_DRIFT_OK;
            f->clean = 0;
        }
        if (f->ref_fresh) {
            prepare_reference(d, f);
            f->ref_fresh = 0;
            fresh[nfresh++] = (int)k;
        }
    }
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < nfresh; i++) {
        fmon_t *f = &s->f[fresh[i]];
        persist_reference(d, s->name, f);
        feat_log(FEAT_LOG_INFO, "drift", "%s.%s: reference ready (%s, %llu values)", s->name, f->feature,
                 feat_drift_source_name(f->source), (unsigned long long)f->ref_n);
    }
    /* judge closed windows oldest first; ingest keeps filling the live slot */
    for (;;) {
        pthread_mutex_lock(&s->lock);
        if (s->nclosed == 0) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        int b = s->oldest;
        int64_t end = s->end_ms[b];
        pthread_mutex_unlock(&s->lock);
        for (size_t k = 0; k < s->nf; k++) {
            fmon_t *f = &s->f[k];
            judge(d, s, f, b, end);
            /* keep the judged window as "last" (for pins and reports) by swapping buffers */
            pthread_mutex_lock(&s->lock);
            if (f->categorical && f->wn[b]) { /* a window without values leaves "last" as it was */
                feat_catfreq_t *t = f->last_cat;
                f->last_cat = f->cat[b];
                f->cat[b] = t;
            } else if (f->wn[b]) {
                feat_kll_t *t = f->last_kll;
                f->last_kll = f->kll[b];
                f->kll[b] = t;
            }
            if (f->categorical) feat_catfreq_reset(f->cat[b]);
            else feat_kll_reset(f->kll[b]);
            if (f->wn[b]) f->last_n = f->wn[b];
            f->wn[b] = 0;
            pthread_mutex_unlock(&s->lock);
        }
        atomic_fetch_add(&d->windows_closed, 1);
        feat_metric_add(d->m_windows, 1);
        pthread_mutex_lock(&s->lock);
        s->oldest = (s->oldest + 1) % SLOTS;
        s->nclosed--;
        pthread_mutex_unlock(&s->lock);
    }
}

static void *run(void *arg) {
    feat_drift_t *d = arg;
    pthread_mutex_lock(&d->wlock);
    for (;;) {
        if (!d->pending && !d->stop) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1; /* time windows, and references completed on the hot path */
            pthread_cond_timedwait(&d->wcond, &d->wlock, &until);
        }
        int stop = d->stop;
        d->pending = 0;
        pthread_mutex_unlock(&d->wlock);
        for (size_t i = 0; i < d->ns; i++) service_stream(d, &d->s[i]);
        pthread_mutex_lock(&d->wlock);
        if (stop) break;
    }
    pthread_mutex_unlock(&d->wlock);
    return NULL;
}

feat_err_t feat_drift_start(feat_drift_t *d) {
    if (feat_worker_start(&d->thr, "drift", run, d) != FEAT_OK) return FEAT_ERR_NOMEM;
    d->started = 1;
    return FEAT_OK;
}

void feat_drift_stop(feat_drift_t *d) {
    if (!d || !d->started) return;
    pthread_mutex_lock(&d->wlock);
    d->stop = 1;
    pthread_cond_signal(&d->wcond);
    pthread_mutex_unlock(&d->wlock);
    feat_worker_join(d->thr);
    d->started = 0;
}

void feat_drift_destroy(feat_drift_t *d) {
    if (!d) return;
    feat_drift_stop(d);
    feat_metrics_remove_collector(d->metrics, collect, d);
    for (size_t i = 0; d->s && i < d->ns; i++) {
        for (size_t k = 0; d->s[i].f && k < d->s[i].nf; k++) fmon_free(&d->s[i].f[k]);
        free(d->s[i].f);
        pthread_mutex_destroy(&d->s[i].lock);
    }
    free(d->s);
    pthread_mutex_destroy(&d->wlock);
    pthread_cond_destroy(&d->wcond);
    free(d);
}

/* ---- operator and training hooks ---------------------------------------------------------- */

static smon_t *find_stream(feat_drift_t *d, const char *name, int models) {
    for (size_t i = models ? d->conf.ntables : 0; i < (models ? d->ns : d->conf.ntables); i++)
        if (!strcmp(d->s[i].name, name)) return &d->s[i];
    return NULL;
}

feat_err_t feat_drift_pin(feat_drift_t *d, const char *table, const char *feature, int *pinned) {
    *pinned = 0;
    smon_t *s = table ? find_stream(d, table, 0) : NULL;
    if (!s) return FEAT_ERR_NOT_FOUND;
    int any = 0, found = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t k = 0; k < s->nf; k++) {
        fmon_t *f = &s->f[k];
        if (feature && *feature && strcmp(f->feature, feature)) continue;
        found = 1;
        if (!f->last_n || !f->enabled) continue;
        f->pin_req = 1;
        any++;
    }
    pthread_mutex_unlock(&s->lock);
    if (!found) return FEAT_ERR_NOT_FOUND;
    if (!any) return FEAT_ERR_STATE;
    *pinned = any;
    signal_monitor(d);
    return FEAT_OK;
}

feat_err_t feat_drift_set_model_reference(feat_drift_t *d, const char *model, const char *feature, const void *blob,
                                          size_t len) {
    const feat_model_conf_t *mc = NULL;
    for (size_t m = 0; m < d->conf.nmodels && !mc; m++)
        if (!strcmp(d->conf.models[m].name, model)) mc = &d->conf.models[m];
    if (!mc) return FEAT_ERR_NOT_FOUND;
    smon_t *s;
    const char *dot = strchr(feature, '.');
    if (!strcmp(feature, "prediction")) {
        s = find_stream(d, model, 1);
    } else if (dot) { /* TABLE.FEATURE: another table's feature, watched on that table's stream */
        char table[FEAT_MAX_NAME + 1];
        size_t tl = (size_t)(dot - feature);
        if (tl > FEAT_MAX_NAME) return FEAT_ERR_NOT_FOUND;
        memcpy(table, feature, tl);
        table[tl] = 0;
        s = find_stream(d, table, 0);
        feature = dot + 1;
    } else {
        s = find_stream(d, mc->table, 0);
    }
    if (!s) return FEAT_ERR_NOT_FOUND;
    fmon_t *f = NULL;
    for (size_t k = 0; k < s->nf; k++)
        if (!strcmp(s->f[k].feature, feature)) f = &s->f[k];
    if (!f) return FEAT_ERR_NOT_FOUND;
    feat_kll_t *k = NULL;
    feat_catfreq_t *c = NULL;
    feat_err_t rc = f->categorical ? feat_catfreq_deserialize(blob, len, &c) : feat_kll_deserialize(blob, len, &k);
    if (rc) return rc;
    if (k && feat_kll_k(k) != feat_kll_k(f->kll[0])) {
        /* re-sketch at this monitor's k so the KS comparison is like for like */
        feat_err_t e;
        feat_kll_t *k2 = feat_kll_new(feat_kll_k(f->kll[0]), 77, &e);
        if (!k2) { feat_kll_destroy(k); return FEAT_ERR_NOMEM; }
        feat_kll_iter_t it;
        double v;
        uint64_t w;
        feat_kll_iter_begin(k, &it);
        while (feat_kll_iter_next(&it, &v, &w))
            for (uint64_t i = 0; i < w && i < 1000000; i++) feat_kll_update(k2, v);
        feat_kll_destroy(k);
        k = k2;
    }
    pthread_mutex_lock(&s->lock);
    feat_kll_destroy(f->staged_kll);
    feat_catfreq_destroy(f->staged_cat);
    f->staged_kll = k;
    f->staged_cat = c;
    f->staged_model = mc->name;
    if (!f->ref_ready) { /* stop collecting a first-N reference: the model's replaces it */
        f->ref_ready = 1;
        f->state = FEAT_DRIFT_WARMING;
    }
    pthread_mutex_unlock(&s->lock);
    signal_monitor(d);
    return FEAT_OK;
}

/* ---- reports and metrics ---------------------------------------------------------------------- */

static void fill_entry(feat_drift_t *d, smon_t *s, fmon_t *f, feat_drift_entry_t *e) {
    memset(e, 0, sizeof(*e));
    e->table = s->table;
    e->feature = f->feature;
    e->model = s->model >= 0 ? d->conf.models[s->model].name : f->ref_model;
    e->categorical = f->categorical;
    e->state = f->enabled ? (f->ref_ready ? f->state : FEAT_DRIFT_WARMING) : FEAT_DRIFT_WARMING;
    e->source = f->source;
    e->window_size = f->last_n;
    e->reference_size = f->ref_n;
    e->windows = f->windows;
    e->window_end_ms = f->window_end_ms;
    e->ks = f->ks; e->ks_p = f->ks_p; e->psi = f->psi; e->kl = f->kl; e->js = f->js;
    e->chi2 = f->chi2; e->chi2_p = f->chi2_p;
    e->th_ks = f->th_ks; e->th_psi = f->th_psi; e->th_kl = f->th_kl; e->th_js = f->th_js; e->th_p = f->th_p;
    e->nbins = f->nbins;
    memcpy(e->ref_frac, f->ref_frac, f->nbins * sizeof(double));
    memcpy(e->live_frac, f->live_frac, f->nbins * sizeof(double));
    if (f->categorical) {
        memcpy(e->labels, f->labels, f->nbins * sizeof(e->labels[0]));
    } else if (f->nbins) {
        e->edges[0] = f->ref_ready ? feat_kll_min(f->ref_kll) : 0;
        for (uint32_t i = 0; i + 1 < f->nbins && i < f->nedges; i++) e->edges[i + 1] = f->edges[i];
        e->edges[f->nbins] = f->ref_ready ? feat_kll_max(f->ref_kll) : 0;
    }
    uint32_t H = (uint32_t)d->conf.history;
    uint32_t n = f->hn < FEAT_DRIFT_REPORT_HISTORY ? f->hn : FEAT_DRIFT_REPORT_HISTORY;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = (f->hhead + H - n + i) % H;
        e->hist_ks[i] = f->hist[idx].ks;
        e->hist_psi[i] = f->hist[idx].psi;
        e->hist_drift[i] = f->hist[idx].drift;
    }
    e->nhist = n;
}

size_t feat_drift_report(feat_drift_t *d, const char *table, const char *feature, feat_drift_report_fn *fn, void *arg) {
    size_t n = 0;
    feat_drift_entry_t *e = malloc(sizeof(*e));
    if (!e) return 0;
    for (size_t i = 0; i < d->ns; i++) {
        smon_t *s = &d->s[i];
        if (table && *table && strcmp(s->name, table)) continue;
        for (size_t k = 0; k < s->nf; k++) {
            if (feature && *feature && strcmp(s->f[k].feature, feature)) continue;
            pthread_mutex_lock(&s->lock);
            fill_entry(d, s, &s->f[k], e);
            pthread_mutex_unlock(&s->lock);
            fn(arg, e);
            n++;
        }
    }
    free(e);
    return n;
}

void feat_drift_get_stats(feat_drift_t *d, feat_drift_stats_t *st) {
    st->windows_closed = atomic_load(&d->windows_closed);
    st->windows_delayed = atomic_load(&d->windows_delayed);
    st->alerts = atomic_load(&d->nalerts);
    st->recoveries = atomic_load(&d->recoveries);
}

static void collect(feat_metrics_emit_t *em, void *arg) {
    feat_drift_t *d = arg;
    static const struct { const char *name, *help; } fams[] = {
        {"featd_drift_state", "Drift state per feature: 0 warming up, 1 ok, 2 drifting."},
        {"featd_drift_ks", "KS statistic of the last window against the reference."},
        {"featd_drift_psi", "PSI of the last window against the reference."},
        {"featd_drift_kl", "KL(live || reference) of the last window, nats."},
    };
    char labels[300], t[140], f[140];
    for (int m = 0; m < 4; m++) {
        feat_metrics_emit_family(em, fams[m].name, fams[m].help, FEAT_METRIC_GAUGE);
        for (size_t i = 0; i < d->ns; i++) {
            smon_t *s = &d->s[i];
            pthread_mutex_lock(&s->lock);
            for (size_t k = 0; k < s->nf; k++) {
                fmon_t *x = &s->f[k];
                feat_metrics_label_escape(s->name, t, sizeof(t));
                feat_metrics_label_escape(x->feature, f, sizeof(f));
                snprintf(labels, sizeof(labels), "%s=\"%s\",feature=\"%s\"", s->table ? "table" : "model", t, f);
                double v = m == 0 ? (x->ref_ready ? x->state : 0) : m == 1 ? x->ks : m == 2 ? x->psi : x->kl;
                feat_metrics_emit_sample(em, labels, v);
            }
            pthread_mutex_unlock(&s->lock);
        }
    }
}

/* ---- a cluster's merged report ---------------------------------------------------------------- */

/* A sketch's bytes appended to b: feat_kll_serialize or feat_catfreq_serialize. */
static feat_err_t put_sketch(feat_buf_t *b, const feat_kll_t *k, const feat_catfreq_t *c, size_t *at, size_t *len) {
    size_t n = k ? feat_kll_serialized_size(k) : feat_catfreq_serialized_size(c), w = 0;
    feat_err_t rc = feat_buf_grow(b, n);
    if (rc) return rc;
    rc = k ? feat_kll_serialize(k, b->data + b->len, n, &w) : feat_catfreq_serialize(c, b->data + b->len, n, &w);
    if (rc) return rc;
    *at = b->len;
    *len = w;
    b->len += w;
    return FEAT_OK;
}

size_t feat_drift_sketches(feat_drift_t *d, const char *table, const char *feature, feat_drift_sketch_fn *fn,
                           void *arg) {
    size_t n = 0;
    feat_buf_t b = FEAT_BUF_INIT;
    for (size_t i = 0; i < d->ns; i++) {
        smon_t *s = &d->s[i];
        if (table && *table && strcmp(s->name, table)) continue;
        for (size_t k = 0; k < s->nf; k++) {
            fmon_t *f = &s->f[k];
            if (feature && *feature && strcmp(f->feature, feature)) continue;
            feat_drift_sketch_t sk = {.table = s->table, .feature = f->feature,
                                      .model = s->model >= 0 ? d->conf.models[s->model].name : NULL,
                                      .categorical = f->categorical};
            size_t wat = 0, rat = 0;
            b.len = 0;
            pthread_mutex_lock(&s->lock);
            sk.source = f->ref_ready ? f->source : FEAT_REF_NONE;
            sk.window_n = f->last_n;
            sk.ref_n = f->ref_ready ? f->ref_n : 0;
            sk.window_end_ms = f->window_end_ms;
            feat_err_t rc = !f->enabled ? FEAT_ERR_STATE
                          : put_sketch(&b, f->categorical ? NULL : f->last_kll, f->last_cat, &wat, &sk.wlen);
            if (!rc && f->ref_ready)
                rc = put_sketch(&b, f->categorical ? NULL : f->ref_kll, f->ref_cat, &rat, &sk.rlen);
            pthread_mutex_unlock(&s->lock);
            if (rc) continue;
            sk.window = b.data + wat;
            sk.ref = sk.rlen ? b.data + rat : NULL;
            fn(arg, &sk);
            n++;
        }
    }
    feat_buf_free(&b);
    return n;
}

/* A category-frequency blob from a peer small enough to decode: its
 * header may ask for up to 2^20 slots of 4 KiB labels (catfreq.c's layout:
 * capacity, max_pins and label_cap at bytes 8, 12 and 16). */
static int cat_blob_ok(const unsigned char *p, size_t len) {
    if (len < 20 || memcmp(p, "FCAT", 4)) return 0;
    uint64_t slots = (uint64_t)feat_get_le32(p + 8) + feat_get_le32(p + 12);
    return slots <= 4096 && feat_get_le32(p + 16) <= 256;
}

/* sk[0..n)'s windows (ref 0) or references (ref 1) of one feature merged
 * into one sketch (*k or *c); *total gets the values merged (counted in the
 * sketches, not as declared) and *used how many sketches went in.  A sketch
 * that does not decode, or has another k, is left out with a warning.  The
 * references: a model's (one, the same everywhere) when any instance has
 * it, else all merged.  FEAT_OK or FEAT_ERR_NOMEM. */
static feat_err_t merge_sketches(const feat_drift_sketch_t *sk, size_t n, int categorical, int ref, feat_kll_t **k,
                                 feat_catfreq_t **c, uint64_t *total, size_t *used) {
    *total = 0;
    *used = 0;
    int model = 0;
    for (size_t i = 0; ref && i < n; i++) model |= sk[i].source == FEAT_REF_MODEL && sk[i].rlen;
    for (size_t i = 0; i < n; i++) {
        const void *p = ref ? sk[i].ref : sk[i].window;
        size_t len = ref ? sk[i].rlen : sk[i].wlen;
        if (!len || sk[i].categorical != categorical) continue;
        if (ref && model && (sk[i].source != FEAT_REF_MODEL || *k || *c)) continue;
        feat_kll_t *one = NULL;
        feat_catfreq_t *cone = NULL;
        feat_err_t rc = categorical ? (cat_blob_ok(p, len) ? feat_catfreq_deserialize(p, len, &cone) : FEAT_ERR_CORRUPT)
                                    : feat_kll_deserialize(p, len, &one);
        uint64_t got = categorical ? (cone ? feat_catfreq_total(cone) : 0) : (one ? feat_kll_count(one) : 0);
        if (!rc && categorical) {
            if (!*c) *c = cone, cone = NULL;
            else rc = feat_catfreq_merge(*c, cone);
        } else if (!rc) {
            if (!*k) *k = one, one = NULL;
            else rc = feat_kll_k(one) == feat_kll_k(*k) ? feat_kll_merge(*k, one) : FEAT_ERR_CORRUPT;
        }
        feat_kll_destroy(one);
        feat_catfreq_destroy(cone);
        if (rc == FEAT_ERR_NOMEM) return rc;
        if (rc) {
            feat_log(FEAT_LOG_WARN, "drift", "merged report: a %s of %s left out: %s", ref ? "reference" : "window",
                     sk[i].feature, feat_err_str(rc));
            continue;
        }
        *total += got;
        if (got) ++*used;
    }
    return FEAT_OK;
}

feat_err_t feat_drift_judge_merged(feat_drift_t *d, const feat_drift_sketch_t *sk, size_t n, feat_drift_entry_t *e) {
    if (!n) return FEAT_ERR_NOT_FOUND;
    smon_t *s = sk[0].table ? find_stream(d, sk[0].table, 0) : sk[0].model ? find_stream(d, sk[0].model, 1) : NULL;
    fmon_t *f = NULL;
    for (size_t k = 0; s && k < s->nf && !f; k++)
        if (!strcmp(s->f[k].feature, sk[0].feature)) f = &s->f[k];
    if (!f || !f->enabled) return FEAT_ERR_NOT_FOUND;
    /* a private copy of f: its thresholds, the merged reference and its bins */
    fmon_t *t = malloc(sizeof(*t));
    verdict_t *v = malloc(sizeof(*v));
    feat_kll_t *wk = NULL;
    feat_catfreq_t *wc = NULL;
    uint64_t wn = 0, rn = 0;
    size_t nused = 0, rused = 0;
    feat_err_t rc = t && v ? FEAT_OK : FEAT_ERR_NOMEM;
    if (!rc) {
        pthread_mutex_lock(&s->lock);
        *t = *f;
        pthread_mutex_unlock(&s->lock);
        t->ref_kll = NULL;
        t->ref_cat = NULL;
        rc = merge_sketches(sk, n, t->categorical, 1, &t->ref_kll, &t->ref_cat, &rn, &rused);
    }
    if (!rc) rc = merge_sketches(sk, n, t->categorical, 0, &wk, &wc, &wn, &nused);
    if (!rc) {
        memset(e, 0, sizeof(*e));
        e->table = s->table;
        e->feature = f->feature;
        e->model = s->model >= 0 ? d->conf.models[s->model].name : t->ref_model;
        e->categorical = f->categorical;
        e->source = sk[0].source;
        for (size_t i = 1; i < n; i++)
            if (sk[i].source != e->source) e->source = FEAT_REF_NONE; /* mixed: say so */
        e->window_size = wn;
        e->reference_size = rn;
        e->instances = (uint32_t)nused;
        for (size_t i = 0; i < n; i++)
            if (sk[i].window_end_ms > e->window_end_ms) e->window_end_ms = sk[i].window_end_ms;
        e->th_ks = f->th_ks; e->th_psi = f->th_psi; e->th_kl = f->th_kl; e->th_js = f->th_js; e->th_p = f->th_p;
        e->state = FEAT_DRIFT_WARMING;
        int have = f->categorical ? wc && t->ref_cat : wk && t->ref_kll;
        if (have && wn >= (uint64_t)d->conf.min_window) {
            if (!f->categorical) cut_bins(d, t);
            if (evaluate(t, wk, wc, v) == 0) {
                e->state = v->drift ? FEAT_DRIFT_DRIFTING : FEAT_DRIFT_OK;
                e->ks = v->ks; e->ks_p = v->ks_p; e->psi = v->psi; e->kl = v->kl; e->js = v->js;
                e->chi2 = v->chi2; e->chi2_p = v->chi2_p;
                e->nbins = v->nbins > MAXB ? MAXB : v->nbins;
                memcpy(e->ref_frac, v->ref_frac, e->nbins * sizeof(double));
                memcpy(e->live_frac, v->live_frac, e->nbins * sizeof(double));
                if (f->categorical) memcpy(e->labels, v->labels, e->nbins * sizeof(e->labels[0]));
            }
        }
    }
    if (t) {
        feat_kll_destroy(t->ref_kll);
        feat_catfreq_destroy(t->ref_cat);
    }
    feat_kll_destroy(wk);
    feat_catfreq_destroy(wc);
    free(t);
    free(v);
    return rc;
}
