/*
 * admin/alerts.h — drift alerts and reports in their wire forms: the
 * featd.v1.DriftAlert protobuf (Kafka sink), JSON (webhook sink, /v1/drift),
 * and the drift page (self-contained HTML with inline SVG).
 */
#ifndef FEAT_ADMIN_ALERTS_H
#define FEAT_ADMIN_ALERTS_H

#include "common/buf.h"
#include "drift/monitor.h"

void feat_alert_to_pb(const feat_drift_alert_t *a, feat_buf_t *out);
void feat_alert_to_json(const feat_drift_alert_t *a, feat_buf_t *out);
/* A report entry as a JSON object (no trailing newline). */
void feat_drift_entry_json(const feat_drift_entry_t *e, feat_buf_t *out);
/* The whole drift page. */
void feat_drift_page(feat_drift_t *d, const char *version, feat_buf_t *out);

#endif
