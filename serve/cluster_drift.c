/*
 * serve/cluster_drift.c — drift in a cluster (drift/monitor.h, "a cluster's
 * merged report"): AdminService.GetDriftSketches, which hands this
 * instance's sketches to a peer, and the merged report GetDriftReport gives
 * with cluster set: every owner's last window of each feature merged, judged
 * against the merged references.
 */
#include "serve/svc.h"

#include "common/log.h"
#include "drift/monitor.h"
#include "featd/v1/admin.pb-c.h"
#include "ingest/cluster.h"
#include "serve/forward.h"

#include <stdlib.h>
#include <string.h>

/* ---- AdminService.GetDriftSketches --------------------------------------------------------------- */

typedef struct pack_ctx {
    feat_arena_t *a;
    Featd__V1__DriftSketch **out;
    size_t n, cap;
    int nomem;
} pack_ctx_t;

static char *adup(feat_arena_t *a, const char *s) { return s ? feat_arena_strndup(a, s, strlen(s)) : (char *)""; }

static void *acopy(feat_arena_t *a, const void *p, size_t n) {
    void *q = feat_arena_alloc(a, n + 1);
    if (q && n) memcpy(q, p, n);
    return q;
}

static void pack_sketch(void *arg, const feat_drift_sketch_t *s) {
    pack_ctx_t *pc = arg;
    Featd__V1__DriftSketch **out = featd_svc_room(pc->a, pc->out, pc->n, &pc->cap, 64);
    if (!out) { pc->nomem = 1; return; }
    pc->out = out;
    Featd__V1__DriftSketch *d = feat_arena_alloc(pc->a, sizeof(*d));
    if (!d) { pc->nomem = 1; return; }
    featd__v1__drift_sketch__init(d);
    d->table = adup(pc->a, s->table);
    d->model = adup(pc->a, s->model);
    d->feature = adup(pc->a, s->feature);
    d->categorical = s->categorical != 0;
    d->reference_source = (char *)feat_drift_source_name(s->source);
    d->window.data = acopy(pc->a, s->window, s->wlen);
    d->window.len = s->wlen;
    d->window_size = s->window_n;
    d->reference.data = acopy(pc->a, s->ref, s->rlen);
    d->reference.len = s->rlen;
    d->reference_size = s->ref_n;
    d->window_end_ms = s->window_end_ms;
    if (!d->table || !d->model || !d->feature || !d->window.data || !d->reference.data) { pc->nomem = 1; return; }
    pc->out[pc->n++] = d;
}

feat_err_t featd_svc_drift_sketches(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__GetDriftReportRequest *req =
        featd_svc_unpack(call, &featd__v1__get_drift_report_request__descriptor, &err);
    if (!req) return err;
    if (!sv->drift) return ERR(call, FEAT_ERR_STATE, "drift monitoring is off (drift.enabled = false)");
    pack_ctx_t pc = {call->arena, NULL, 0, 0, 0};
    feat_drift_sketches(sv->drift, req->table, req->feature, pack_sketch, &pc);
    if (pc.nomem) return FEAT_ERR_NOMEM;
    Featd__V1__DriftSketches res = FEATD__V1__DRIFT_SKETCHES__INIT;
    res.n_sketches = pc.n;
    res.sketches = pc.out;
    return featd_svc_pack(resp, &res.base);
}

/* ---- the merged report ------------------------------------------------------------------------------ */

static int source_of(const char *name) {
    for (int s = 0; s <= 3; s++)
        if (!strcmp(name, feat_drift_source_name(s))) return s;
    return FEAT_REF_NONE;
}

/* One sketch as the monitor takes it; it points into the message. */
static feat_drift_sketch_t from_pb(const Featd__V1__DriftSketch *p) {
    return (feat_drift_sketch_t){.table = *p->table ? p->table : NULL, .model = *p->model ? p->model : NULL,
                                 .feature = p->feature, .categorical = p->categorical,
                                 .source = source_of(p->reference_source), .window = p->window.data,
                                 .wlen = p->window.len, .window_n = p->window_size,
                                 .ref = p->reference.len ? p->reference.data : NULL, .rlen = p->reference.len,
                                 .ref_n = p->reference_size, .window_end_ms = p->window_end_ms};
}

static int same_feature(const feat_drift_sketch_t *a, const feat_drift_sketch_t *b) {
    return !strcmp(a->table ? a->table : "", b->table ? b->table : "") &&
           !strcmp(a->table ? "" : a->model ? a->model : "", b->table ? "" : b->model ? b->model : "") &&
           !strcmp(a->feature, b->feature);
}

feat_err_t featd_svc_drift_merged(feat_serve_t *sv, feat_rpc_call_t *call, const Featd__V1__GetDriftReportRequest *req,
                                  feat_drift_report_fn *fn, void *arg) {
    /* this instance's sketches, in the call's arena */
    pack_ctx_t pc = {call->arena, NULL, 0, 0, 0};
    feat_drift_sketches(sv->drift, req->table, req->feature, pack_sketch, &pc);
    if (pc.nomem) return FEAT_ERR_NOMEM;
    /* every other owner's, asked at once */
    feat_cluster_view_t *v = feat_cluster_view_acquire(sv->cluster);
    int np = feat_cluster_npeers(v);
    feat_forward_req_t *reqs = feat_arena_calloc(call->arena, (size_t)np * sizeof(*reqs) + 1);
    size_t nreq = 0;
    feat_err_t err = reqs ? FEAT_OK : FEAT_ERR_NOMEM;
    for (int p = 0; !err && p < np; p++) {
        if (!feat_cluster_peer_owns(sv->cluster, v, p)) continue;
        reqs[nreq].address = feat_arena_strndup(call->arena, feat_cluster_peer_address(v, p),
                                                strlen(feat_cluster_peer_address(v, p)));
        reqs[nreq].method = "/featd.v1.AdminService/GetDriftSketches";
        reqs[nreq].req = call->req;
        reqs[nreq].len = call->req_len;
        if (!reqs[nreq++].address) err = FEAT_ERR_NOMEM;
    }
    feat_cluster_view_release(sv->cluster, v);
    if (err) return err;
    if (nreq && sv->forward) feat_forward_calls(sv->forward, reqs, nreq, call->token, call->deadline_ms);
    for (size_t q = 0; q < nreq && !sv->forward; q++) reqs[q].code = 14; /* UNAVAILABLE: no client to ask with */
    size_t total = pc.n, cap = pc.n;
    ProtobufCAllocator alloc;
    feat_rpc_pb_allocator(call->arena, &alloc);
    Featd__V1__DriftSketches **got = feat_arena_calloc(call->arena, (nreq + 1) * sizeof(void *));
    if (!got) err = FEAT_ERR_NOMEM;
    for (size_t q = 0; !err && q < nreq; q++) {
        if (reqs[q].code == 0)
            got[q] = featd__v1__drift_sketches__unpack(&alloc, reqs[q].resp.len, (const uint8_t *)reqs[q].resp.data);
        if (got[q] && got[q]->n_sketches > pc.n) /* a peer watches what this instance does: no more */
            got[q] = NULL, reqs[q].code = 0, snprintf(reqs[q].msg, sizeof(reqs[q].msg), "more sketches than features");
        if (!got[q])
            feat_log(FEAT_LOG_WARN, "drift", "the merged report leaves out %s: %s %s", reqs[q].address,
                     feat_grpc_code_name(reqs[q].code), reqs[q].msg[0] ? reqs[q].msg : "(not DriftSketches)");
        else
            total += got[q]->n_sketches;
    }
    for (size_t q = 0; q < nreq; q++) feat_buf_free(&reqs[q].resp);
    if (err) return err;
    /* all sketches in one array, then one judgement per feature */
    feat_drift_sketch_t *all = feat_arena_alloc(call->arena, (total + 1) * sizeof(*all));
    unsigned char *done = feat_arena_calloc(call->arena, total + 1);
    feat_drift_sketch_t *group = feat_arena_alloc(call->arena, (total + 1) * sizeof(*group));
    feat_drift_entry_t *e = malloc(sizeof(*e));
    if (!all || !done || !group || !e) {
        free(e);
        return FEAT_ERR_NOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < cap; i++) all[n++] = from_pb(pc.out[i]);
    for (size_t q = 0; q < nreq; q++)
        for (size_t i = 0; got[q] && i < got[q]->n_sketches; i++) all[n++] = from_pb(got[q]->sketches[i]);
    for (size_t i = 0; i < n && !err; i++) {
        if (done[i]) continue;
        size_t m = 0;
        for (size_t j = i; j < n; j++)
            if (!done[j] && same_feature(&all[i], &all[j])) group[m++] = all[j], done[j] = 1;
        feat_err_t rc = feat_drift_judge_merged(sv->drift, group, m, e);
        if (rc == FEAT_ERR_NOMEM) err = rc;
        else if (rc)
            feat_log(FEAT_LOG_WARN, "drift", "merged report: %s.%s: %s",
                     all[i].table ? all[i].table : all[i].model ? all[i].model : "", all[i].feature, feat_err_str(rc));
        else
            fn(arg, e);
    }
    free(e);
    return err;
}
