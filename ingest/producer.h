/*
 * ingest/producer.h — a small non-blocking Kafka producer for featd's own
 * messages (drift alerts, prediction logs).  Sends never block: when
 * librdkafka's queue is full the message is dropped and counted.
 */
#ifndef FEAT_INGEST_PRODUCER_H
#define FEAT_INGEST_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/metrics.h"

typedef struct feat_producer feat_producer_t;

typedef struct feat_producer_conf {
    const feat_kv_t *kafka;     /* [nkafka] the [kafka] pass-through properties for librdkafka */
    size_t nkafka;
    const char *bootstrap;      /* NULL = the kafka.bootstrap.servers property */
} feat_producer_conf_t;

/* conf is read during the call only.  metrics NULL = the process-wide
 * registry.  NULL with errstr on failure ("kafka.<property>: ..." for a
 * property librdkafka refuses).  No thread of its own to start or stop
 * (librdkafka's run inside the handle). */
feat_producer_t *feat_producer_new(const feat_producer_conf_t *conf, feat_metrics_t *metrics, char *errstr,
                                   size_t errlen);
/* Copies key and value; any thread.  FEAT_OK or FEAT_ERR_TOO_LARGE (queue full, dropped). */
feat_err_t feat_producer_send(feat_producer_t *p, const char *topic, const void *key, size_t klen, const void *val,
                              size_t vlen, const char *content_type);
/* Messages dropped or not delivered so far. */
uint64_t feat_producer_failed(const feat_producer_t *p);
/* Flushes for up to 2 s, then destroys.  NULL is fine. */
void feat_producer_destroy(feat_producer_t *p);

#endif
