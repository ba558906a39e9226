/*
 * ingest/producer.h — a small Kafka producer for featd's own messages:
 * drift alerts and prediction logs (feat_producer_send: never blocks; when
 * librdkafka's queue is full the message is dropped and counted), and the
 * events FeatureService.Push writes (feat_producer_send_wait: returns once
 * the broker acknowledged each message, or the time is up).
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
    const char *partitioner;    /* NULL = librdkafka's default (or the pass-through's); else its
                                 * partitioner property, e.g. murmur2_random (cluster.partitioner) */
    int linger_ms;              /* 0 = featd's default for its own messages (5) */
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
/* Sends n messages (topics[i], keys[i] of klens[i], vals[i] of vlens[i];
 * copied; content_type on each) and waits until the broker acknowledged
 * every one (acks per the producer's configuration; librdkafka's default is
 * all in-sync replicas) or timeout_ms passed.  results[i]: FEAT_OK
 * (acknowledged), FEAT_ERR_KAFKA (refused, failed or not queued: why[i],
 * when why is not NULL, names librdkafka's error) or FEAT_ERR_TIMEOUT (no
 * answer yet: it may still be delivered).  Any thread, several at once. */
void feat_producer_send_wait(feat_producer_t *p, size_t n, const char *const *topics, const char *const *keys,
                             const size_t *klens, const void *const *vals, const size_t *vlens,
                             const char *content_type, int timeout_ms, feat_err_t *results, const char **why);
/* Messages dropped or not delivered so far. */
uint64_t feat_producer_failed(const feat_producer_t *p);
/* Flushes for up to 2 s, then destroys.  NULL is fine. */
void feat_producer_destroy(feat_producer_t *p);

#endif
