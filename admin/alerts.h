/*
 * admin/alerts.h — alerts and drift reports in their wire forms, and the
 * alert bus's sinks (common/alert.h) the daemon subscribes.
 *
 * Encoders: the featd.v1.DriftAlert protobuf (Kafka sink), JSON (webhook
 * sink; a report entry for /v1/drift), and the drift page (self-contained
 * HTML with inline SVG).
 *
 * Sinks run on the publisher's thread (drift's monitor thread, or the thread
 * that applied a label for live-quality alerts) and never block: the log
 * sink writes one line, the metrics sink adds to a counter, the Kafka sink
 * queues in librdkafka, the webhook sink queues for the event loop.  Each
 * takes its state as the bus's arg, owned by the daemon and outliving the
 * bus's publishers.
 */
#ifndef FEAT_ADMIN_ALERTS_H
#define FEAT_ADMIN_ALERTS_H

#include <stdint.h>

#include "common/alert.h"
#include "common/buf.h"
#include "common/metrics.h"
#include "drift/monitor.h"

struct feat_producer;
struct feat_webhook;

void feat_alert_to_pb(const feat_alert_t *a, feat_buf_t *out);
void feat_alert_to_json(const feat_alert_t *a, feat_buf_t *out);
/* A report entry as a JSON object (no trailing newline). */
void feat_drift_entry_json(const feat_drift_entry_t *e, feat_buf_t *out);
/* The whole drift page. */
void feat_drift_page(feat_drift_t *d, const char *version, feat_buf_t *out);

/* ---- sinks ---- */

/* The log sink (arg: a feat_alert_log_t): a WARN line "t.x DRIFTING: ks ..."
 * when a stream starts drifting, an INFO line "t.x recovered after N clean
 * windows ..." when it recovers, under the "drift" component.  Live-quality
 * alerts (a model's feature "quality", no table) are not logged here: train
 * logs them where the window's numbers are known. */
typedef struct feat_alert_log {
    int64_t recovery_windows;   /* drift.recovery_windows, named in the recovery line */
} feat_alert_log_t;
feat_alert_sink_fn feat_alert_log_sink;

/* The metrics sink (arg: a feat_alert_counters_t): every alert adds one to
 * featd_drift_alerts_total{state="drifting"} or {state="recovered"}.
 * feat_alert_counters_init registers both series (metrics NULL = the
 * process-wide registry). */
typedef struct feat_alert_counters {
    feat_metric_t *drifting, *recovered;
} feat_alert_counters_t;
void feat_alert_counters_init(feat_alert_counters_t *c, feat_metrics_t *metrics);
feat_alert_sink_fn feat_alert_metrics_sink;

/* The Kafka sink (arg: a feat_alert_kafka_t): the DriftAlert protobuf to
 * topic, keyed "table.feature" (or "model.feature"); dropped and counted by
 * the producer when its queue is full. */
typedef struct feat_alert_kafka {
    struct feat_producer *producer;  /* borrowed */
    const char *topic;               /* drift.alert_topic; borrowed */
} feat_alert_kafka_t;
feat_alert_sink_fn feat_alert_kafka_sink;

/* The webhook sink (arg: the feat_webhook_t): the alert as JSON, POSTed from
 * the event loop. */
feat_alert_sink_fn feat_alert_webhook_sink;

#endif
