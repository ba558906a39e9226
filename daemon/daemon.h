/*
 * daemon/daemon.h — the running daemon's parts, shared by main, the gRPC
 * server and the admin HTTP server.  Built in main() in dependency order and
 * torn down in reverse (serve → prediction log → ingest → train → drift → store).
 */
#ifndef FEAT_DAEMON_DAEMON_H
#define FEAT_DAEMON_DAEMON_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"
#include "ingest/broker.h"
#include "ingest/demo.h"
#include "ingest/ingest.h"
#include "store/store.h"

struct feat_cache;
struct feat_drift;
struct feat_producer;
struct feat_webhook;
struct feat_server;
struct feat_http;
struct feat_models;
struct feat_predlog;
struct feat_auth;

typedef struct featd {
    feat_config_t *cfg;
    feat_metrics_t *metrics;
    feat_broker_t *broker;       /* embedded mode only */
    char *bootstrap;             /* servers ingest uses */
    feat_store_t *st;
    feat_ingest_t *ingest;
    feat_demo_t *demo;
    struct feat_cache *cache;    /* online row cache (may be disabled: 0 bytes) */
    struct feat_drift *drift;    /* NULL when drift.enabled = false */
    struct feat_webhook *webhook;         /* drift.webhook */
    struct feat_models *models;  /* registry, retrain engine, live quality */
    struct feat_predlog *predlog;         /* served predictions → store, quality, drift, Kafka */
    struct feat_producer *producer;       /* featd's own topics: alerts and predictions (NULL when none) */
    struct feat_server *grpc;
    struct feat_http *http;
    struct feat_auth *auth;      /* bearer tokens ([auth]); NULL = no token files, everything open */
    int64_t started_ms;
    atomic_int shutting_down;
} featd_t;

/* serve/service.c: the gRPC methods featd serves (FeatureService, AdminService). */
struct feat_method;
const struct feat_method *featd_methods(size_t *n);

/* Whether featd is ready to serve: store open and partitions assigned. */
int featd_ready(featd_t *fd);

#endif
