/*
 * common/alert.h — the alert bus: one path for every alert featd raises.
 *
 * Publishers (drift's windows, train's live model quality) describe an alert
 * as plain data and publish it; the daemon subscribes the sinks at start-up
 * (Kafka topic, webhook, log, metrics, retrain request).  The bus knows no
 * sink and no publisher, so neither depends on the other.
 *
 * Threads: subscribe before the first publish (the daemon wires the bus
 * before it starts any publisher); publish from any thread.  Sinks run on the
 * publisher's thread, in subscription order, and must not block: queue and
 * return.  The alert and its strings are valid only during the call.
 */
#ifndef FEAT_COMMON_ALERT_H
#define FEAT_COMMON_ALERT_H

#include <stdint.h>

#include "common/err.h"

/* An alert as plain data; sinks encode it (DriftAlert protobuf, JSON, a log
 * line, a counter). */
typedef struct feat_alert {
    char id[48];               /* unique: table.feature.window-number */
    int64_t time_ms;           /* when the window closed */
    int drifting;              /* 1 = started drifting, 0 = recovered */
    const char *table;         /* NULL for a model's predictions or quality */
    const char *feature;       /* or "prediction", or a quality metric's name */
    const char *model;         /* model whose reference was used, or NULL */
    const char *statistic;     /* "ks", "kl", "psi", "chi2", "js", or a quality metric */
    double value, threshold, p_value;
    double ks, psi, kl;
    uint64_t window_size, reference_size;
    int retrain_requested;     /* the alert asks for a retrain of model */
} feat_alert_t;

/* Called on the publisher's thread; must not block. */
typedef void feat_alert_sink_fn(void *arg, const feat_alert_t *a);

typedef struct feat_alert_bus feat_alert_bus_t;

#define FEAT_ALERT_MAX_SINKS 8

feat_alert_bus_t *feat_alert_bus_new(void); /* NULL only when out of memory */
void feat_alert_bus_destroy(feat_alert_bus_t *bus); /* NULL is fine */

/* Adds a sink; name ("kafka", "webhook", "log", "metrics", "retrain") is for
 * logs.  FEAT_ERR_TOO_LARGE past FEAT_ALERT_MAX_SINKS. */
feat_err_t feat_alert_subscribe(feat_alert_bus_t *bus, const char *name, feat_alert_sink_fn *fn, void *arg);

/* Hands a to every sink in subscription order.  bus NULL: dropped (a module
 * built without a bus, as in unit tests). */
void feat_alert_publish(feat_alert_bus_t *bus, const feat_alert_t *a);

/* Alerts published so far (for tests and status). */
uint64_t feat_alert_count(const feat_alert_bus_t *bus);

#endif
