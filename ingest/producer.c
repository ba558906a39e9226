/* ingest/producer.c — see producer.h. */
#include "ingest/producer.h"
#include "ingest/kconf.h"
#include "common/err.h"
#include "common/log.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct feat_producer {
    rd_kafka_t *rk;
    _Atomic uint64_t failed;
    feat_metric_t *m_sent, *m_failed;
};

/* One feat_producer_send_wait call: freed by whoever drops the last
 * reference (the caller and each message still in flight hold one). */
typedef struct waitset {
    _Atomic size_t refs, left;
    _Atomic int *res;            /* [n]: the rd_kafka_resp_err_t of each delivery (0: delivered); NO_ANSWER until then */
    struct wslot { struct waitset *w; size_t i; } *slots;
} waitset_t;

static void waitset_unref(waitset_t *w) {
    if (atomic_fetch_sub(&w->refs, 1) == 1) {
        free((void *)w->res);
        free(w->slots);
        free(w);
    }
}

#define NO_ANSWER INT_MIN

/* Records message i's outcome and drops its reference. */
static void slot_done(waitset_t *w, size_t i, rd_kafka_resp_err_t err) {
    atomic_store(&w->res[i], (int)err);
    atomic_fetch_sub(&w->left, 1);
    waitset_unref(w);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    feat_producer_t *p = opaque;
    if (m->_private) { /* a feat_producer_send_wait message */
        struct wslot *sl = m->_private;
        feat_metric_add(m->err ? p->m_failed : p->m_sent, 1);
        if (m->err) atomic_fetch_add(&p->failed, 1);
        slot_done(sl->w, sl->i, m->err);
        return;
    }
    if (m->err) {
        atomic_fetch_add(&p->failed, 1);
        feat_metric_add(p->m_failed, 1);
        feat_log(FEAT_LOG_WARN, "producer", "delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                 rd_kafka_err2str(m->err));
    } else {
        feat_metric_add(p->m_sent, 1);
    }
}

feat_producer_t *feat_producer_new(const feat_producer_conf_t *conf, feat_metrics_t *metrics, char *errstr,
                                   size_t errlen) {
    feat_producer_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(errstr, errlen, "producer: out of memory");
        return NULL;
    }
    if (!metrics) metrics = feat_metrics_global();
    p->m_sent = feat_counter(metrics, "featd_produced_total", "Messages featd produced (alerts, logs), delivered.", "result=\"ok\"");
    p->m_failed = feat_counter(metrics, "featd_produced_total", "Messages featd produced (alerts, logs), delivered.", "result=\"failed\"");
    char linger[16];
    snprintf(linger, sizeof(linger), "%d", conf->linger_ms > 0 ? conf->linger_ms : 5);
    const char *set[] = {"linger.ms", linger, conf->partitioner ? "partitioner" : NULL, conf->partitioner, NULL};
    p->rk = feat_kafka_new(RD_KAFKA_PRODUCER,
                           &(feat_kafka_conf_t){.props = conf->kafka, .nprops = conf->nkafka, .bootstrap = conf->bootstrap,
                                                .set = set, .opaque = p, .dr_msg_cb = dr_cb, .what = "producer"},
                           errstr, errlen);
    if (!p->rk) {
        free(p);
        return NULL;
    }
    return p;
}

feat_err_t feat_producer_send(feat_producer_t *p, const char *topic, const void *key, size_t klen, const void *val,
                              size_t vlen, const char *content_type) {
    rd_kafka_headers_t *h = NULL;
    if (content_type) {
        h = rd_kafka_headers_new(1);
        rd_kafka_header_add(h, "content-type", -1, content_type, -1);
    }
    rd_kafka_resp_err_t e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY((void *)key, klen),
                                              RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                              RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    rd_kafka_poll(p->rk, 0); /* delivery reports */
    if (e) {
        if (h) rd_kafka_headers_destroy(h);
        atomic_fetch_add(&p->failed, 1);
        feat_metric_add(p->m_failed, 1);
        return FEAT_ERR_TOO_LARGE;
    }
    return FEAT_OK;
}

void feat_producer_send_wait(feat_producer_t *p, size_t n, const char *const *topics, const char *const *keys,
                             const size_t *klens, const void *const *vals, const size_t *vlens,
                             const char *content_type, int timeout_ms, feat_err_t *results, const char **why) {
    waitset_t *w = calloc(1, sizeof(*w));
    if (w) {
        w->res = calloc(n ? n : 1, sizeof(*w->res));
        w->slots = calloc(n ? n : 1, sizeof(*w->slots));
    }
    if (!w || !w->res || !w->slots) {
        if (w) free((void *)w->res), free(w->slots);
        free(w);
        for (size_t i = 0; i < n; i++) {
            results[i] = FEAT_ERR_KAFKA;
            if (why) why[i] = "out of memory";
        }
        return;
    }
    atomic_init(&w->refs, n + 1);
    atomic_init(&w->left, n);
    for (size_t i = 0; i < n; i++) atomic_init(&w->res[i], NO_ANSWER);
    for (size_t i = 0; i < n; i++) {
        w->slots[i] = (struct wslot){w, i};
        rd_kafka_headers_t *h = NULL;
        if (content_type) {
            h = rd_kafka_headers_new(1);
            rd_kafka_header_add(h, "content-type", -1, content_type, -1);
        }
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topics[i]), RD_KAFKA_V_KEY((void *)keys[i], klens[i]),
            RD_KAFKA_V_VALUE((void *)vals[i], vlens[i]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(&w->slots[i]), RD_KAFKA_V_END);
        if (e) { /* not queued: no delivery report will come */
            if (h) rd_kafka_headers_destroy(h);
            atomic_fetch_add(&p->failed, 1);
            feat_metric_add(p->m_failed, 1);
            slot_done(w, i, e);
        }
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) { /* any thread's poll may serve our reports: watch the count */
        if (!atomic_load(&w->left)) break;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long ms = (long)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= timeout_ms) break;
        rd_kafka_poll(p->rk, timeout_ms - ms < 5 ? (int)(timeout_ms - ms) : 5);
    }
    for (size_t i = 0; i < n; i++) {
        int v = atomic_load(&w->res[i]);
        results[i] = v == NO_ANSWER ? FEAT_ERR_TIMEOUT : v == 0 ? FEAT_OK : FEAT_ERR_KAFKA;
        if (why)
            why[i] = v == NO_ANSWER ? "no acknowledgement in time" : v == 0 ? "" : rd_kafka_err2str((rd_kafka_resp_err_t)v);
    }
    waitset_unref(w);
}

uint64_t feat_producer_failed(const feat_producer_t *p) { return atomic_load(&((feat_producer_t *)p)->failed); }

void feat_producer_destroy(feat_producer_t *p) {
    if (!p) return;
    rd_kafka_flush(p->rk, 2000);
    rd_kafka_destroy(p->rk);
    free(p);
}
