/* serve/predlog.c — see predlog.h. */
#include "serve/predlog.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/worker.h"
#include "drift/monitor.h"
#include "ingest/producer.h"
#include "train/models.h"

#include <errno.h>
#include <math.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pent {
    uint32_t model;
    uint32_t klen : 30;
    uint32_t shadow : 1;    /* FEAT_PREDLOG_SHADOW */
    uint32_t no_drift : 1;  /* FEAT_PREDLOG_NO_DRIFT */
    uint64_t version;
    int64_t ts;
    double score;
    size_t koff;            /* into the side's keys */
} pent_t;

typedef struct side {
    pent_t *e;
    size_t n;
    feat_buf_t keys;
} side_t;

struct feat_predlog {
    feat_predlog_conf_t conf;
    feat_store_t *st;
    feat_models_t *models;
    feat_drift_t *drift;
    feat_producer_t *producer;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    side_t front, back;     /* requests fill front; the writer swaps and drains back */
    side_t sfront, sback;   /* shadow traffic, likewise, for the shadow thread (allocated when a model has shadow on) */
    int stop, started, shadow_started;
    pthread_t thr, sthr;
    uint64_t written;
    feat_metric_t *m_logged, *m_dropped, *m_failed, *m_shadow, *m_shadow_skipped;
    feat_predlog_shadow_fn *shadow;  /* [lock] */
    void *shadow_arg;
};

feat_predlog_t *feat_predlog_new(const feat_predlog_conf_t *conf, feat_store_t *st, feat_models_t *models,
                                 feat_drift_t *drift, feat_producer_t *producer, feat_metrics_t *metrics,
                                 char *errstr, size_t errlen) {
    feat_predlog_t *pl = calloc(1, sizeof(*pl));
    if (pl) {
        pl->front.e = malloc(FEAT_PREDLOG_MAX * sizeof(pent_t));
        pl->back.e = malloc(FEAT_PREDLOG_MAX * sizeof(pent_t));
    }
    if (!pl || !pl->front.e || !pl->back.e) {
        if (pl) {
            free(pl->front.e);
            free(pl->back.e);
        }
        free(pl);
        snprintf(errstr, errlen, "prediction log: out of memory");
        return NULL;
    }
    int any_shadow = 0;
    for (size_t i = 0; i < conf->nmodels; i++) any_shadow |= !strcmp(conf->models[i].shadow, "challenger");
    if (any_shadow && (!(pl->sfront.e = malloc(FEAT_PREDLOG_MAX * sizeof(pent_t))) ||
                       !(pl->sback.e = malloc(FEAT_PREDLOG_MAX * sizeof(pent_t))))) {
        free(pl->sfront.e);
        free(pl->front.e);
        free(pl->back.e);
        free(pl);
        snprintf(errstr, errlen, "prediction log: out of memory");
        return NULL;
    }
    pl->conf = *conf;
    pl->st = st;
    pl->models = models;
    pl->drift = drift;
    pl->producer = producer;
    pthread_mutex_init(&pl->lock, NULL);
    pthread_cond_init(&pl->cond, NULL);
    if (!metrics) metrics = feat_metrics_global();
    pl->m_logged = feat_counter(metrics, "featd_predictions_logged_total", "Served predictions written to the store.", NULL);
    pl->m_dropped = feat_counter(metrics, "featd_predictions_dropped_total",
                                 "Served predictions not logged because the log writer fell behind.", NULL);
    pl->m_failed = feat_counter(metrics, "featd_prediction_log_errors_total", "Failed prediction log writes.", NULL);
    pl->m_shadow = feat_counter(metrics, "featd_shadow_predictions_total",
                                "Predictions the challenger made on shadow traffic (logged apart).", NULL);
    pl->m_shadow_skipped = feat_counter(metrics, "featd_shadow_skipped_total",
                                        "Shadow traffic not scored (no challenger, or another instance's key).", NULL);
    return pl;
}

void feat_predlog_add(feat_predlog_t *pl, uint32_t model, uint64_t version, int64_t ts, size_t n,
                      const char *const *keys, const size_t *klens, const double *scores, unsigned flags) {
    if (!pl || !n) return;
    size_t dropped = 0, sdropped = 0;
    pthread_mutex_lock(&pl->lock);
    side_t *f = &pl->front, *sf = &pl->sfront;
    for (size_t i = 0; (flags & FEAT_PREDLOG_SHADOW) && sf->e && i < n; i++) { /* the shadow thread's share */
        size_t off = sf->keys.len;
        if (!klens[i]) continue;
        if (sf->n == FEAT_PREDLOG_MAX || (feat_buf_append(&sf->keys, keys[i], klens[i]), sf->keys.oom)) {
            sf->keys.oom = 0;
            sf->keys.len = off;
            sdropped = n - i;
            break;
        }
        sf->e[sf->n++] = (pent_t){model, (uint32_t)klens[i], 1u, 1u, version, ts, scores[i], off};
    }
    for (size_t i = 0; i < n; i++) {
        if (f->n == FEAT_PREDLOG_MAX) {
            dropped = n - i;
            break;
        }
        size_t off = f->keys.len;
        feat_buf_append(&f->keys, keys[i], klens[i]);
        if (f->keys.oom) {
            f->keys.oom = 0;
            f->keys.len = off;
            dropped = n - i;
            break;
        }
        f->e[f->n++] = (pent_t){model, (uint32_t)klens[i], 0u, (flags & FEAT_PREDLOG_NO_DRIFT) ? 1u : 0u, version,
                                ts, scores[i], off};
    }
    if (f->n >= FEAT_PREDLOG_MAX / 2 || sf->n >= FEAT_PREDLOG_MAX / 2) pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
    if (dropped) feat_metric_add(pl->m_dropped, dropped);
    if (sdropped) feat_metric_add(pl->m_shadow_skipped, sdropped);
}

void feat_predlog_set_shadow(feat_predlog_t *pl, feat_predlog_shadow_fn *fn, void *arg) {
    if (!pl) return;
    pthread_mutex_lock(&pl->lock);
    pl->shadow = fn;
    pl->shadow_arg = arg;
    pthread_mutex_unlock(&pl->lock);
}

#define SHADOW_CHUNK 512

/* The side's shadow traffic, model by model in chunks: the challenger's
 * scores, into wb (as MODEL@shadow), live quality and Kafka. */
static size_t shadow(feat_predlog_t *pl, side_t *s, feat_wb_t *wb, feat_buf_t *json) {
    pthread_mutex_lock(&pl->lock);
    feat_predlog_shadow_fn *fn = pl->shadow;
    void *arg = pl->shadow_arg;
    pthread_mutex_unlock(&pl->lock);
    const char *keys[SHADOW_CHUNK];
    size_t klens[SHADOW_CHUNK], idx[SHADOW_CHUNK], stored = 0, skipped = 0, scored = 0;
    double scores[SHADOW_CHUNK];
    char name[FEAT_MAX_NAME + 16];
    for (size_t m = 0; m < pl->conf.nmodels; m++) {
        const feat_model_conf_t *mc = &pl->conf.models[m];
        snprintf(name, sizeof(name), "%s@shadow", mc->name);
        size_t i = 0;
        while (i < s->n) {
            size_t k = 0;
            int64_t ts = 0;
            for (; i < s->n && k < SHADOW_CHUNK; i++) {
                const pent_t *e = &s->e[i];
                if (e->model != m || !e->shadow) continue;
                keys[k] = s->keys.data + e->koff, klens[k] = e->klen, idx[k++] = i;
                if (e->ts > ts) ts = e->ts;
            }
            if (!k) break;
            uint64_t ver = 0;
            if (!fn || fn(arg, (uint32_t)m, ts, k, keys, klens, scores, &ver) != FEAT_OK) {
                skipped += k;
                continue;
            }
            for (size_t j = 0; j < k; j++) {
                if (isnan(scores[j])) {
                    skipped++;
                    continue;
                }
                const pent_t *e = &s->e[idx[j]];
                scored++;
                feat_models_on_prediction(pl->models, e->model, ver, keys[j], klens[j], e->ts, scores[j]);
                if (wb && feat_wb_put_prediction(wb, name, keys[j], klens[j], e->ts, ver, scores[j]) == FEAT_OK) stored++;
                if (pl->producer && *mc->prediction_topic) {
                    feat_buf_reset(json);
                    feat_buf_printf(json, "{\"model\":\"%s\",\"version\":%llu,\"shadow\":true,\"key\":", mc->name,
                                    (unsigned long long)ver);
                    feat_buf_json_str(json, keys[j], klens[j]);
                    feat_buf_printf(json, ",\"ts\":%lld,\"score\":%.17g}", (long long)e->ts, scores[j]);
                    if (!json->oom)
                        feat_producer_send(pl->producer, mc->prediction_topic, keys[j], klens[j], json->data, json->len,
                                           "application/json");
                }
            }
        }
    }
    if (scored) feat_metric_add(pl->m_shadow, scored);
    if (skipped) feat_metric_add(pl->m_shadow_skipped, skipped);
    return stored;
}

/* Writes one drained side: store batch, live quality, drift, Kafka. */
static void drain(feat_predlog_t *pl, side_t *s, feat_buf_t *json) {
    feat_wb_t *wb = feat_wb_new(pl->st);
    size_t stored = 0;
    for (size_t i = 0; i < s->n; i++) {
        const pent_t *e = &s->e[i];
        const char *key = s->keys.data + e->koff;
        const feat_model_conf_t *mc = &pl->conf.models[e->model];
        if (!e->no_drift) feat_drift_observe_prediction(pl->drift, e->model, e->score);
        if (!e->klen) continue;
        feat_models_on_prediction(pl->models, e->model, e->version, key, e->klen, e->ts, e->score);
        if (wb && feat_wb_put_prediction(wb, mc->name, key, e->klen, e->ts, e->version, e->score) == FEAT_OK) stored++;
        if (pl->producer && *mc->prediction_topic) {
            feat_buf_reset(json);
            feat_buf_printf(json, "{\"model\":\"%s\",\"version\":%llu,\"key\":", mc->name, (unsigned long long)e->version);
            feat_buf_json_str(json, key, e->klen);
            feat_buf_printf(json, ",\"ts\":%lld,\"score\":%.17g}", (long long)e->ts, e->score);
            if (!json->oom)
                feat_producer_send(pl->producer, mc->prediction_topic, key, e->klen, json->data, json->len,
                                   "application/json");
        }
    }
    char err[256];
    if (stored && (!wb || feat_store_write(pl->st, wb, err, sizeof(err)) != FEAT_OK)) {
        feat_metric_add(pl->m_failed, 1);
        feat_log(FEAT_LOG_WARN, "predlog", "cannot log %zu predictions: %s", stored, wb ? err : "out of memory");
    } else if (stored) {
        feat_metric_add(pl->m_logged, stored);
        __atomic_add_fetch(&pl->written, stored, __ATOMIC_RELAXED);
    }
    feat_wb_destroy(wb);
    s->n = 0;
    feat_buf_reset(&s->keys);
}

/* The shadow thread's drain: the challenger's scores, in a store batch of their own. */
static void drain_shadow(feat_predlog_t *pl, side_t *s, feat_buf_t *json) {
    feat_wb_t *wb = feat_wb_new(pl->st);
    size_t stored = shadow(pl, s, wb, json);
    char err[256];
    if (stored && (!wb || feat_store_write(pl->st, wb, err, sizeof(err)) != FEAT_OK)) {
        feat_metric_add(pl->m_failed, 1);
        feat_log(FEAT_LOG_WARN, "predlog", "cannot log %zu shadow predictions: %s", stored, wb ? err : "out of memory");
    }
    feat_wb_destroy(wb);
    s->n = 0;
    feat_buf_reset(&s->keys);
}

/* Both threads: every 50 ms (sooner when front is half full) swap front and
 * back and drain back, until stopped with front empty. */
static void run_sides(feat_predlog_t *pl, side_t *front, side_t *back, void (*drain_fn)(feat_predlog_t *, side_t *,
                                                                                        feat_buf_t *)) {
    feat_buf_t json = FEAT_BUF_INIT;
    pthread_mutex_lock(&pl->lock);
    for (;;) {
        if (!pl->stop && front->n < FEAT_PREDLOG_MAX / 2) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 50 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&pl->cond, &pl->lock, &until);
        }
        int stop = pl->stop;
        side_t tmp = *front;
        *front = *back;
        *back = tmp;
        pthread_mutex_unlock(&pl->lock);
        if (back->n) drain_fn(pl, back, &json);
        pthread_mutex_lock(&pl->lock);
        if (stop && !front->n) break;
    }
    pthread_mutex_unlock(&pl->lock);
    feat_buf_free(&json);
}

static void *writer(void *arg) {
    feat_predlog_t *pl = arg;
    run_sides(pl, &pl->front, &pl->back, drain);
    return NULL;
}

/* Shadow scoring is background work: its thread runs at a lower priority
 * (nice +10), so that on a busy machine it yields to serving and ingest
 * rather than slowing them down; what it cannot keep up with is dropped and
 * counted (featd_shadow_skipped_total). */
static void *shadow_thread(void *arg) {
    feat_predlog_t *pl = arg;
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        feat_log(FEAT_LOG_DEBUG, "predlog", "shadow thread keeps its priority: %s", strerror(errno));
    run_sides(pl, &pl->sfront, &pl->sback, drain_shadow);
    return NULL;
}

feat_err_t feat_predlog_start(feat_predlog_t *pl) {
    if (feat_worker_start(&pl->thr, "predlog", writer, pl)) return FEAT_ERR_NOMEM;
    pl->started = 1;
    if (pl->sfront.e) {
        if (feat_worker_start(&pl->sthr, "shadow", shadow_thread, pl)) return FEAT_ERR_NOMEM;
        pl->shadow_started = 1;
    }
    return FEAT_OK;
}

void feat_predlog_stop(feat_predlog_t *pl) {
    if (!pl || !pl->started) return;
    pthread_mutex_lock(&pl->lock);
    pl->stop = 1;
    pthread_cond_broadcast(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
    feat_worker_join(pl->thr);
    if (pl->shadow_started) feat_worker_join(pl->sthr);
    pl->started = pl->shadow_started = 0;
}

void feat_predlog_destroy(feat_predlog_t *pl) {
    if (!pl) return;
    feat_predlog_stop(pl);
    free(pl->front.e);
    free(pl->back.e);
    free(pl->sfront.e);
    free(pl->sback.e);
    feat_buf_free(&pl->front.keys);
    feat_buf_free(&pl->back.keys);
    feat_buf_free(&pl->sfront.keys);
    feat_buf_free(&pl->sback.keys);
    pthread_mutex_destroy(&pl->lock);
    pthread_cond_destroy(&pl->cond);
    free(pl);
}

uint64_t feat_predlog_written(feat_predlog_t *pl) { return __atomic_load_n(&pl->written, __ATOMIC_RELAXED); }
