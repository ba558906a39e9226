/* serve/predlog.c — see predlog.h. */
#include "serve/predlog.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/worker.h"
#include "drift/monitor.h"
#include "ingest/producer.h"
#include "train/models.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pent {
    uint32_t model;
    uint32_t klen;
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
    int stop, started;
    pthread_t thr;
    uint64_t written;
    feat_metric_t *m_logged, *m_dropped, *m_failed;
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
    return pl;
}

void feat_predlog_add(feat_predlog_t *pl, uint32_t model, uint64_t version, int64_t ts, size_t n,
                      const char *const *keys, const size_t *klens, const double *scores) {
    if (!pl || !n) return;
    size_t dropped = 0;
    pthread_mutex_lock(&pl->lock);
    side_t *f = &pl->front;
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
        f->e[f->n++] = (pent_t){model, (uint32_t)klens[i], version, ts, scores[i], off};
    }
    if (f->n >= FEAT_PREDLOG_MAX / 2) pthread_cond_signal(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
    if (dropped) feat_metric_add(pl->m_dropped, dropped);
}

/* Writes one drained side: store batch, live quality, drift, Kafka. */
static void drain(feat_predlog_t *pl, side_t *s, feat_buf_t *json) {
    feat_wb_t *wb = feat_wb_new(pl->st);
    size_t stored = 0;
    for (size_t i = 0; i < s->n; i++) {
        const pent_t *e = &s->e[i];
        const char *key = s->keys.data + e->koff;
        const feat_model_conf_t *mc = &pl->conf.models[e->model];
        feat_drift_observe_prediction(pl->drift, e->model, e->score);
        if (!e->klen) continue;
        feat_models_on_prediction(pl->models, e->model, key, e->klen, e->ts, e->score);
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

static void *writer(void *arg) {
    feat_predlog_t *pl = arg;
    feat_buf_t json = FEAT_BUF_INIT;
    pthread_mutex_lock(&pl->lock);
    for (;;) {
        if (!pl->stop && pl->front.n < FEAT_PREDLOG_MAX / 2) {
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
        side_t tmp = pl->front;
        pl->front = pl->back;
        pl->back = tmp;
        pthread_mutex_unlock(&pl->lock);
        if (pl->back.n) drain(pl, &pl->back, &json);
        pthread_mutex_lock(&pl->lock);
        if (stop && !pl->front.n) break;
    }
    pthread_mutex_unlock(&pl->lock);
    feat_buf_free(&json);
    return NULL;
}

feat_err_t feat_predlog_start(feat_predlog_t *pl) {
    if (feat_worker_start(&pl->thr, "predlog", writer, pl)) return FEAT_ERR_NOMEM;
    pl->started = 1;
    return FEAT_OK;
}

void feat_predlog_stop(feat_predlog_t *pl) {
    if (!pl || !pl->started) return;
    pthread_mutex_lock(&pl->lock);
    pl->stop = 1;
    pthread_cond_signal(&pl->cond);
    pthread_mutex_unlock(&pl->lock);
    feat_worker_join(pl->thr);
    pl->started = 0;
}

void feat_predlog_destroy(feat_predlog_t *pl) {
    if (!pl) return;
    feat_predlog_stop(pl);
    free(pl->front.e);
    free(pl->back.e);
    feat_buf_free(&pl->front.keys);
    feat_buf_free(&pl->back.keys);
    pthread_mutex_destroy(&pl->lock);
    pthread_cond_destroy(&pl->cond);
    free(pl);
}

uint64_t feat_predlog_written(feat_predlog_t *pl) { return __atomic_load_n(&pl->written, __ATOMIC_RELAXED); }
