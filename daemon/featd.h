/*
 * daemon/featd.h — featd's composition: the one place that builds the whole
 * daemon from a loaded config, and tears it down.  daemon/main.c and the
 * fuzz harness (tests/fuzz/fuzz_daemon.h) both use it.
 *
 * featd_open() builds, in dependency order:
 *   1. the checks of what the config names — kafka.* properties, serve.tls_*
 *      files, [auth] token files — before anything is created (then a
 *      warning when running as root);
 *   2. featd.data_dir (mode 0700), the embedded broker (kafka.embedded);
 *   3. the store, the row cache (its write hook on the store);
 *   4. the producer of featd's own topics, the alert bus and its sinks (log,
 *      metrics, Kafka topic, webhook), drift monitoring;
 *   5. the model registry, then the retrain sink; drift starts (the registry
 *      has handed it its champions' references), the prediction log starts;
 *   6. the cluster's membership (ingest/cluster.h), not started yet;
 *   7. the serve context; in a cluster the registry's hooks into it (who
 *      trains, the gathered training set, cluster.models_topic) and the
 *      cluster's reader of that topic;
 *   8. the cluster's membership thread, ingest (observers: drift, labels to
 *      the registry), the demo producer; then the training engine starts;
 *   9. the gRPC server, the admin HTTP server, and data_dir/featd.addr
 *      naming their ports.
 * On failure what was built is torn down as featd_close() does.
 *
 * featd_close() stops and frees in reverse: the gRPC server (calls in flight
 * get serve.shutdown_grace), admin HTTP, the demo producer, the prediction
 * log (writes what serving logged), ingest (finishes its batch; logs what the
 * broker held beyond it), the training engine (cancels a run in progress),
 * the cluster's membership (the leave record), drift (judges the windows already closed), the registry, the producer
 * (flushes), the webhook, the alert bus, the cache, the store, the embedded
 * broker, the TLS material and the tokens.  Nothing publishes an alert once
 * drift and the engine have stopped, so every sink outlives its callers.
 *
 * Alerting is part of drift monitoring: with drift.enabled = false no sink
 * is subscribed and live-quality alerts go nowhere, as [drift]'s keys
 * (alert_topic, webhook, retrain_on_drift) configure them.
 *
 * Threads: call both from the thread that runs the event loop (base);
 * featd_close after the loop has stopped, before base is freed.
 */
#ifndef FEAT_DAEMON_FEATD_H
#define FEAT_DAEMON_FEATD_H

#include <stddef.h>
#include <stdint.h>

#include "admin/alerts.h"
#include "admin/api.h"
#include "admin/redis.h"
#include "admin/http.h"
#include "admin/webhook.h"
#include "common/alert.h"
#include "common/config.h"
#include "common/err.h"
#include "common/metrics.h"
#include "drift/monitor.h"
#include "ingest/broker.h"
#include "ingest/cluster.h"
#include "ingest/decode.h"
#include "ingest/demo.h"
#include "ingest/ingest.h"
#include "ingest/producer.h"
#include "rpc/rpc.h"
#include "rpc/tls.h"
#include "serve/auth.h"
#include "serve/cache.h"
#include "serve/forward.h"
#include "serve/predlog.h"
#include "serve/serve.h"
#include "store/store.h"
#include "train/models.h"

/* featd_opts_t.flags: parts a caller leaves out (the fuzz harness leaves out
 * all three; the daemon none). */
enum {
    FEATD_NO_KAFKA = 1 << 0,     /* no embedded broker, no ingest consumer, no demo producer, no producer of
                                  * featd's own topics: nothing that talks to Kafka (Status shows no ingest) */
    FEATD_NO_LISTENERS = 1 << 1, /* no gRPC server, no admin HTTP server, no featd.addr */
    FEATD_NO_PREDLOG = 1 << 2    /* served predictions are not logged (nor fed to quality and drift) */
};

typedef struct featd_opts {
    unsigned flags;             /* FEATD_NO_* */
    feat_metrics_t *metrics;    /* NULL = the process-wide registry (/metrics renders it) */
    struct event_base *base;    /* the loop admin HTTP and the webhook run on; borrowed, created after
                                 * evthread_use_pthreads() (the webhook is fed from other threads).
                                 * NULL only with FEATD_NO_LISTENERS and no drift.webhook. */
} featd_opts_t;

/* The running daemon.  featd_open fills it and featd_close frees it; the
 * caller may read the members (main's tick and progress line, the fuzz
 * harness) but never changes them.  A part a flag, the config or the
 * drift.enabled switch leaves out is NULL. */
typedef struct featd {
    const feat_config_t *cfg;   /* borrowed: outlives the daemon */
    unsigned flags;
    feat_metrics_t *metrics;    /* never NULL */
    struct event_base *base;    /* borrowed */
    feat_broker_t *broker;      /* kafka.embedded */
    char *bootstrap;            /* the embedded broker's address; NULL = kafka.bootstrap.servers */
    feat_store_t *st;
    feat_cache_t *cache;        /* serve.cache > 0 */
    feat_producer_t *producer;  /* drift.alert_topic or a model's prediction_topic */
    feat_producer_t *push;      /* FeatureService.Push's events (any Kafka) */
    feat_api_t *api;            /* http.listen: the HTTP/JSON API */
    feat_redis_t *redis;        /* redis.listen: online reads over the Redis protocol */
    feat_decode_conf_t decode;  /* Push checks events as ingest does */
    feat_alert_bus_t *alerts;   /* drift and live quality publish, the sinks below receive */
    feat_alert_log_t alert_log;           /* the sinks' state */
    feat_alert_counters_t alert_counters;
    feat_alert_kafka_t alert_kafka;
    feat_webhook_t *webhook;    /* drift.webhook */
    feat_drift_t *drift;        /* drift.enabled */
    feat_models_t *models;      /* registry, retrain engine, live quality */
    feat_predlog_t *predlog;    /* served predictions → store, quality, drift, Kafka */
    feat_ingest_t *ingest;
    feat_cluster_t *cluster;    /* cluster.mode (single: routes every key here, makes no Kafka handle) */
    feat_forward_t *forward;    /* partitioned mode: calls to peers */
    feat_demo_t *demo;          /* demo.enabled (featd --demo) */
    feat_auth_t *auth;          /* [auth] token files; NULL = everything open */
    feat_tls_pem_t tls;         /* serve.tls_*, until the gRPC server has its copy */
    feat_tls_server_t *http_tls; /* serve.tls_* for the HTTP/JSON API (HTTPS); NULL: plain HTTP */
    feat_serve_t serve;         /* what the handlers and admin HTTP read */
    feat_server_t *grpc;
    feat_serve_t peer_serve;    /* partitioned mode: the context of cluster.listen (peer = 1) */
    feat_server_t *peer_grpc;   /* cluster.listen */
    feat_http_t *http;
} featd_t;

/* Checks what cfg names without creating anything: every kafka.* property
 * against librdkafka, the serve.tls_* files, the [auth] token files; warns
 * (log) about listeners in plain text off loopback.  FEAT_OK, or
 * FEAT_ERR_CONFIG with errstr "config: <key>: <why>".  featd --check runs it;
 * featd_open runs it first. */
feat_err_t featd_check(const feat_config_t *cfg, char *errstr, size_t errlen);

/* Builds and starts the daemon (see the top of this file).  cfg is borrowed
 * and must outlive it; opts may be NULL (all zero).  On success *out is the
 * daemon and FEAT_OK; on failure *out is NULL, nothing is left running, and
 * errstr holds one line:
 *   FEAT_ERR_CONFIG  the config is refused: "config: <key>: ...", or
 *                    "store: table.<t>.feature.<f>: type changed ..."
 *                    (featd exits 2);
 *   anything else    a runtime failure: data_dir, broker, store I/O, a
 *                    listener that cannot bind (featd exits 1). */
feat_err_t featd_open(const feat_config_t *cfg, const featd_opts_t *opts, featd_t **out, char *errstr,
                      size_t errlen);

/* Stops and frees everything (see the top of this file).  NULL is fine. */
void featd_close(featd_t *d);

#endif
