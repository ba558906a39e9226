/*
 * serve/svc.h — what featd's gRPC handler files share (internal to serve/).
 * service.c holds FeatureService's lookups and the admin methods;
 * models_rpc.c holds Predict and the model registry methods.  Every handler
 * starts the same way: call->app is the feat_serve_t (serve.h), and
 * featd_svc_unpack() checks and decodes the request.
 */
#ifndef FEAT_SERVE_SVC_H
#define FEAT_SERVE_SVC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/err.h"
#include "drift/monitor.h"
#include "featd/v1/admin.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"
#include "rpc/rpc.h"
#include "serve/lookup.h"
#include "serve/serve.h"
#include "train/core/types.h"

/* Sets the client's message and evaluates to code (rpc.h's FEAT_RPC_ERR). */
#define ERR FEAT_RPC_ERR

/* Checks every string field of the request (call->req, a desc message),
 * nested messages and map entries included, before protobuf-c unpacks it:
 * one that is not valid UTF-8 (common/utf8.h; proto3 requires it, and a
 * client such as Python's cannot parse a reply that echoes it) or holds a NUL
 * byte (protobuf-c would cut the string there) gives FEAT_ERR_INVALID with
 * call->msg naming the field, "entity_keys[2] is not valid UTF-8 (at byte 5)".
 * The bytes themselves are never echoed.  Bytes common/pbwire.h cannot read
 * are FEAT_ERR_INVALID too (protobuf-c would take some of them, unchecked). */
feat_err_t featd_svc_check_strings(feat_rpc_call_t *call, const ProtobufCMessageDescriptor *desc);
/* The request as a desc message: its strings checked (featd_svc_check_strings),
 * then unpacked by protobuf-c into call->arena (freed with it).  NULL with
 * *err set and call->msg naming the problem: the string check's, or
 * FEAT_ERR_INVALID "request is not a <ShortName>" when protobuf-c refuses
 * the bytes.  The caller casts the result to the generated type of desc. */
void *featd_svc_unpack(feat_rpc_call_t *call, const ProtobufCMessageDescriptor *desc, feat_err_t *err);
/* Entity keys: present, non-empty, within ingest.max_key, unique, at most
 * serve.max_keys.  FEAT_OK, FEAT_ERR_INVALID with call->msg naming the key,
 * or FEAT_ERR_NOMEM. */
feat_err_t featd_svc_check_keys(feat_serve_t *sv, feat_rpc_call_t *call, char **keys, size_t n);
/* entity_rows (rows.c): the key of entity in each of rows[0..n) into
 * keys/klens (pointing into the request).  FEAT_OK, or FEAT_ERR_INVALID with
 * call->msg naming the row and the entity ("entity_rows[2]: no key for entity
 * \"merchant_id\""). */
feat_err_t featd_svc_row_keys(feat_serve_t *sv, feat_rpc_call_t *call, Featd__V1__EntityKeys *const *rows, size_t n,
                              const char *entity, const char **keys, size_t *klens);
/* featd_svc_online_lookup of table t for keys that may repeat (each
 * distinct key is read once): row i's feature fidx[j] goes to
 * vals[i * stride + pos[j]] (pos NULL: j).  Strings point into ls or the
 * call's arena.  FEAT_OK, FEAT_ERR_NOMEM, or the read's error with call->msg
 * set. */
feat_err_t featd_svc_lookup_rows(feat_serve_t *sv, feat_rpc_call_t *call, const feat_table_t *t, size_t n,
                                 const char *const *keys, const size_t *klens, const uint16_t *fidx,
                                 const size_t *pos, size_t nf, size_t stride, int64_t now, feat_value_t *vals,
                                 feat_lookup_scratch_t *ls, int local_only);
/* cluster_rpc.c: feat_online_lookup wherever the keys live.  Single mode:
 * feat_online_lookup itself.  In a cluster (ingest/cluster.h) each key is
 * read here when this instance serves its partition, gets
 * FEAT_ST_RESTORING while it restores it, FEAT_ST_UNAVAILABLE when no
 * reachable instance owns it (or local_only: the caller is a peer), and is
 * otherwise asked of its owner: one GetOnlineFeatures per owner, with the
 * call's token and deadline and local_only set.  Strings of values read here
 * point into ls, of values from peers into the call's arena.  FEAT_OK,
 * FEAT_ERR_NOMEM, or the local read's error. */
feat_err_t featd_svc_online_lookup(feat_serve_t *sv, feat_rpc_call_t *call, const feat_table_t *t, size_t n,
                                   const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                                   int64_t now, feat_value_t *vals, feat_lookup_scratch_t *ls, int local_only);
/* A reply's repeated field filled one element at a time: when n == *cap,
 * a copy of old's n pointers in room for twice as many (first) in the
 * arena a, with *cap updated; else old itself.  NULL when out of memory. */
void *featd_svc_room(feat_arena_t *a, void *old, size_t n, size_t *cap, size_t first);
/* Appends m's encoding to out.  FEAT_OK or FEAT_ERR_NOMEM. */
feat_err_t featd_svc_pack(feat_buf_t *out, const ProtobufCMessage *m);
/* A read value as a FeatureValue in the call's arena (NULL: out of memory). */
Featd__V1__FeatureValue *featd_svc_value_pb(feat_arena_t *a, const feat_value_t *v);
/* cluster_rpc.c: GetHistoricalFeatures in a cluster.  *route gets
 * each row's FEAT_ROUTE_* (or peer index), and *remote the values of rows a
 * peer answered (one streaming call per owner, fetched now; NULL for a row
 * whose owner did not answer: UNAVAILABLE).  Replica mode routes without
 * forwarding (RESTORING while a partition restores).  Both NULL in single
 * mode (every row is read here).  FEAT_OK or FEAT_ERR_NOMEM. */
feat_err_t featd_svc_hist_route(feat_serve_t *sv, feat_rpc_call_t *call,
                                const Featd__V1__GetHistoricalFeaturesRequest *req, const feat_table_t *t,
                                const uint16_t *fidx, size_t nf, int **route, Featd__V1__FeatureValue ****remote);
/* cluster_train.c: AdminService.GetTrainingRows. */
extern const feat_stream_ops_t featd_svc_training_rows_ops;
/* cluster_drift.c: AdminService.GetDriftSketches, and GetDriftReport's
 * merged report (cluster set, partitioned mode): every owner's sketches of
 * each feature merged and judged here (feat_drift_judge_merged), one entry
 * per feature through fn (its instances says how many were merged; an owner
 * that does not answer is left out, with a warning).  FEAT_OK or
 * FEAT_ERR_NOMEM. */
feat_err_t featd_svc_drift_sketches(feat_rpc_call_t *call, feat_buf_t *resp);
feat_err_t featd_svc_drift_merged(feat_serve_t *sv, feat_rpc_call_t *call, const Featd__V1__GetDriftReportRequest *req,
                                  feat_drift_report_fn *fn, void *arg);
/* AdminService.GetCluster. */
feat_err_t featd_svc_get_cluster(feat_rpc_call_t *call, feat_buf_t *resp);

/* The model methods' handlers (feat_unary_fn, rpc/rpc.h), in models_rpc.c. */
feat_err_t featd_svc_predict(feat_rpc_call_t *call, feat_buf_t *resp);
feat_err_t featd_svc_list_models(feat_rpc_call_t *call, feat_buf_t *resp);
feat_err_t featd_svc_promote(feat_rpc_call_t *call, feat_buf_t *resp);
feat_err_t featd_svc_rollback(feat_rpc_call_t *call, feat_buf_t *resp);
feat_err_t featd_svc_retrain(feat_rpc_call_t *call, feat_buf_t *resp);
feat_err_t featd_svc_retrain_status(feat_rpc_call_t *call, feat_buf_t *resp);
feat_err_t featd_svc_import_model(feat_rpc_call_t *call, feat_buf_t *resp);

/* A training value as a Value (no kind set: missing), in a (cluster_train.c). */
Featd__V1__Value *featd_svc_raw_pb(feat_arena_t *a, const feat_raw_t *r);

/* AdminService.ExportTrainingSet (export.c). */
extern const feat_stream_ops_t featd_svc_export_ops;

/* FeatureService.Push (push.c). */
feat_err_t featd_svc_push(feat_rpc_call_t *call, feat_buf_t *resp);

#endif
