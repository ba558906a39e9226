/*
 * proto/status_json.h — featd's status as JSON: the one rendering of a
 * StatusResponse that /v1/status (admin/http.c) and `featctl status --json`
 * both print, so the two have the same keys and values.
 *
 *   {"version":"0.1.0","uptime_s":12,"ready":true,
 *    "ingest":{"events":N,"labels":N,"dead_letters":N,"skipped":N,"batches":N,
 *              "gap_records":N,"failed":false[,"error":"..."],
 *              "dead_letters_by_reason":{"wrong_type":N,...}},
 *    "tables":[{"name":"user","events":N,"newest_event_time_ms":T,"freshness_ms":D}],
 *    "partitions":[{"topic":"t","partition":0,"next_offset":O,"high_watermark":H,
 *                   "lag":L,"gap_records":N}],
 *    ["cache":{"hits":N,"misses":N,"bypasses":N,"hit_ratio":0.5000,"entries":N,
 *              "bytes":N,"max_bytes":N},]
 *    "store_bytes":N}
 *
 * "error" appears only when ingest failed, "cache" only when the message has
 * one; docs/OPERATIONS.md says what each key means.
 */
#ifndef FEAT_PROTO_STATUS_JSON_H
#define FEAT_PROTO_STATUS_JSON_H

#include "common/buf.h"
#include "featd/v1/admin.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Appends r as one JSON object and a newline to out.  Strings are escaped;
 * NULL strings print as "".  Allocation failure sets out->oom (common/buf.h). */
void feat_status_json(const Featd__V1__StatusResponse *r, feat_buf_t *out);

#ifdef __cplusplus
}
#endif

#endif
