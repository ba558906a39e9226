/* ingest/producer.c — see producer.h. */
#include "ingest/producer.h"
#include "ingest/kconf.h"
#include "common/err.h"
#include "common/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct feat_producer {
    rd_kafka_t *rk;
    _Atomic uint64_t failed;
    feat_metric_t *m_sent, *m_failed;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    feat_producer_t *p = opaque;
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
    static const char *const set[] = {"linger.ms", "5", NULL};
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

uint64_t feat_producer_failed(const feat_producer_t *p) { return atomic_load(&((feat_producer_t *)p)->failed); }

void feat_producer_destroy(feat_producer_t *p) {
    if (!p) return;
    rd_kafka_flush(p->rk, 2000);
    rd_kafka_destroy(p->rk);
    free(p);
}
