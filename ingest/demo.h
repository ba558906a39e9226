/*
 * ingest/demo.h — the built-in demo producer (featd --demo, demo.enabled).
 *
 * A thread that writes synthetic feature events for every table (half JSON,
 * half protobuf), labels for every model, about 1% out-of-order events and
 * about 0.2% malformed ones, at demo.rate events per second, to any
 * Kafka-protocol broker.  Features and labels share a per-entity latent
 * score, so models trained on them learn something.
 */
#ifndef FEAT_INGEST_DEMO_H
#define FEAT_INGEST_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

typedef struct feat_demo feat_demo_t;

/* cfg borrowed.  NULL with errstr on failure. */
feat_demo_t *feat_demo_start(const feat_config_t *cfg, const char *bootstrap, char *errstr, size_t errlen);
uint64_t feat_demo_sent(const feat_demo_t *d);
void feat_demo_stop(feat_demo_t *d); /* joins and flushes; NULL is fine */

#endif
