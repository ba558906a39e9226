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
#include "common/err.h"

typedef struct feat_demo feat_demo_t;

typedef struct feat_demo_conf {
    const feat_table_conf_t *tables;  /* [ntables] written to; borrowed for the producer's life (>= 1) */
    size_t ntables;
    const feat_model_conf_t *models;  /* [nmodels] whose label topics get labels; borrowed */
    size_t nmodels;
    int64_t rate;               /* demo.rate: events per second */
    int64_t entities;           /* demo.entities (>= 1) */
    int64_t shift_after_ms;     /* demo.shift_after: shift one feature after this long; 0 = never */
    const char *shift_feature;  /* demo.shift_feature: "table.feature" or "feature" (the first numeric one
                                 * of that name); borrowed */
    const feat_kv_t *kafka;     /* [nkafka] the [kafka] pass-through properties; read by feat_demo_new only */
    size_t nkafka;
    const char *bootstrap;      /* NULL = the kafka.bootstrap.servers property */
} feat_demo_conf_t;

/* Creates the producers without sending anything.  NULL with errstr on
 * failure (demo.shift_feature naming no numeric feature; a Kafka property
 * librdkafka refuses). */
feat_demo_t *feat_demo_new(const feat_demo_conf_t *conf, char *errstr, size_t errlen);
/* Starts the thread.  FEAT_OK or FEAT_ERR_NOMEM with errstr. */
feat_err_t feat_demo_start(feat_demo_t *d, char *errstr, size_t errlen);
/* Messages handed to librdkafka so far (events, malformed ones, labels); 0 for NULL. */
uint64_t feat_demo_sent(const feat_demo_t *d);
/* Joins the thread and flushes what it produced.  Idempotent; NULL is fine. */
void feat_demo_stop(feat_demo_t *d);
void feat_demo_destroy(feat_demo_t *d); /* stops first; NULL is fine */

#endif
