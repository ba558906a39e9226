/*
 * serve/cluster_rpc.c — online reads in a cluster (cluster.mode,
 * ingest/cluster.h) and AdminService.GetCluster.  See
 * featd_svc_online_lookup in svc.h: every online read of the handlers
 * (GetOnlineFeatures by keys or rows, Predict by keys or rows) goes through
 * it, so a key is answered wherever it lives, in request order.
 */
#include "serve/svc.h"
#include "serve/forward.h"
#include "common/clock.h"
#include "common/log.h"
#include "featd/v1/admin.pb-c.h"
#include "ingest/cluster.h"
#include "rpc/client.h"

#include <stdatomic.h>
#include <string.h>

/* A FeatureValue from a peer as a feat_value_t of type want (its strings
 * stay in the call's arena, where the reply was unpacked).  A value of
 * another type than the table's: NOT_FOUND (a peer with another schema). */
static void from_pb(const Featd__V1__FeatureValue *fv, feat_ftype_t want, feat_value_t *v) {
    memset(v, 0, sizeof(*v));
    v->type = (uint8_t)want;
    switch (fv->status) {
    case FEATD__V1__FEATURE_STATUS__PRESENT: v->status = FEAT_ST_PRESENT; break;
    case FEATD__V1__FEATURE_STATUS__EXPIRED: v->status = FEAT_ST_EXPIRED; break;
    case FEATD__V1__FEATURE_STATUS__UNAVAILABLE: v->status = FEAT_ST_UNAVAILABLE; return;
    case FEATD__V1__FEATURE_STATUS__RESTORING: v->status = FEAT_ST_RESTORING; return;
    default: v->status = FEAT_ST_NOT_FOUND; return;
    }
    v->ts = fv->event_time_ms;
    const Featd__V1__Value *x = fv->value;
    if (x && x->kind_case == FEATD__V1__VALUE__KIND_DOUBLE_VALUE && want == FEAT_FT_DOUBLE) v->v.d = x->double_value;
    else if (x && x->kind_case == FEATD__V1__VALUE__KIND_INT64_VALUE && want == FEAT_FT_INT64) v->v.i = x->int64_value;
    else if (x && x->kind_case == FEATD__V1__VALUE__KIND_BOOL_VALUE && want == FEAT_FT_BOOL) v->v.b = x->bool_value;
    else if (x && x->kind_case == FEATD__V1__VALUE__KIND_STRING_VALUE && want == FEAT_FT_STRING) {
        v->v.s = x->string_value;
        v->slen = (uint32_t)strlen(x->string_value);
    } else {
        v->status = FEAT_ST_NOT_FOUND;
        v->ts = 0;
    }
}

/* The GetOnlineFeatures (local_only) asking a peer for keys idx[0..m) of
 * t's features fidx, packed into the call's arena: FEAT_OK or FEAT_ERR_NOMEM.
 * The keys are klens bytes each, not necessarily NUL-terminated (the Redis
 * protocol's point into its input): copied terminated for protobuf-c. */
static feat_err_t peer_request(feat_rpc_call_t *call, const feat_table_t *t, const char *const *keys,
                               const size_t *klens, const uint16_t *fidx, size_t nf, const size_t *idx, size_t m,
                               feat_forward_req_t *r) {
    Featd__V1__GetOnlineFeaturesRequest fr = FEATD__V1__GET_ONLINE_FEATURES_REQUEST__INIT;
    fr.table = t->conf->name;
    fr.n_features = nf;
    fr.features = feat_arena_alloc(call->arena, nf * sizeof(char *) + 1);
    fr.local_only = 1;
    fr.n_entity_keys = m;
    fr.entity_keys = feat_arena_alloc(call->arena, m * sizeof(char *) + 1);
    if (!fr.entity_keys || !fr.features) return FEAT_ERR_NOMEM;
    for (size_t j = 0; j < nf; j++) fr.features[j] = t->conf->features[fidx[j]].name;
    for (size_t i = 0; i < m; i++)
        if (!(fr.entity_keys[i] = feat_arena_strndup(call->arena, keys[idx[i]], klens[idx[i]]))) return FEAT_ERR_NOMEM;
    r->len = featd__v1__get_online_features_request__get_packed_size(&fr);
    uint8_t *bytes = feat_arena_alloc(call->arena, r->len + 1);
    if (!bytes) return FEAT_ERR_NOMEM;
    featd__v1__get_online_features_request__pack(&fr, bytes);
    r->req = bytes;
    r->method = "/featd.v1.FeatureService/GetOnlineFeatures";
    return FEAT_OK;
}

/* A peer's answer (r) for keys idx[0..m) into their rows of vals: FEAT_OK,
 * or an error when it gave no usable answer (then the rows are untouched). */
static feat_err_t peer_answer(feat_rpc_call_t *call, const feat_forward_req_t *r, const feat_table_t *t,
                              const uint16_t *fidx, size_t nf, const size_t *idx, size_t m, feat_value_t *vals) {
    const char *why = r->msg;
    if (r->code == 0) {
        ProtobufCAllocator alloc;
        feat_rpc_pb_allocator(call->arena, &alloc);
        Featd__V1__GetOnlineFeaturesResponse *a =
            featd__v1__get_online_features_response__unpack(&alloc, r->resp.len, (const uint8_t *)r->resp.data);
        int ok = a && a->n_rows == m && a->n_features == nf;
        for (size_t i = 0; ok && i < m; i++) ok = a->rows[i]->n_values == nf;
        if (ok) {
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < nf; j++)
                    from_pb(a->rows[i]->values[j], t->conf->features[fidx[j]].type, &vals[idx[i] * nf + j]);
            return FEAT_OK;
        }
        why = "its answer does not match the request";
    }
    feat_log(FEAT_LOG_DEBUG, "cluster", "asking %s for %zu key(s): %s: %s", r->address, m, feat_grpc_code_name(r->code),
             why);
    return FEAT_ERR_UNAVAILABLE;
}

/* The next owner in route[0..n) (a peer index) not asked yet, from *k on:
 * marks it asked and puts the positions of its keys in idx[0..*m).  -1 when
 * every owner was asked.  Owners come in the order they first appear. */
static int next_owner(const int *route, size_t n, size_t *k, unsigned char *asked, size_t *idx, size_t *m) {
    for (; *k < n; (*k)++) {
        int p = route[*k];
        if (p < 0 || asked[p]) continue;
        asked[p] = 1;
        *m = 0;
        for (size_t i = *k; i < n; i++)
            if (route[i] == p) idx[(*m)++] = i;
        return p;
    }
    return -1;
}

#define ROUTE_DONE (-100) /* answered in an earlier round */

/* nf statuses st for key k. */
static void key_status(const feat_table_t *t, const uint16_t *fidx, size_t nf, size_t k, feat_status_t st,
                       feat_value_t *vals) {
    for (size_t j = 0; j < nf; j++) {
        memset(&vals[k * nf + j], 0, sizeof(feat_value_t));
        vals[k * nf + j].type = (uint8_t)t->conf->features[fidx[j]].type;
        vals[k * nf + j].status = (uint8_t)st;
    }
}

/* One round of a lookup: keys routed FEAT_ROUTE_LOCAL are read here, the
 * other negative routes get their status, and the rest are forwarded, one
 * call per peer, all in flight at once.  The keys of a peer that gave no
 * usable answer are UNAVAILABLE; failed[k] (when not NULL) gets that peer,
 * -1 for every other key.  ls is the caller's, whose strings must outlive
 * the call: NULL in a second round (the first one's values point into the
 * caller's), which reads with a scratch of its own and copies its strings
 * into the call's arena. */
static feat_err_t lookup_round(feat_serve_t *sv, feat_rpc_call_t *call, feat_cluster_view_t *v, const feat_table_t *t,
                               size_t n, const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                               int64_t now, feat_value_t *vals, feat_lookup_scratch_t *ls, const int *route,
                               int *failed) {
    size_t *idx = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    const char **lkeys = feat_arena_alloc(call->arena, n * sizeof(char *) + 1);
    size_t *llens = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    unsigned char *asked = feat_arena_calloc(call->arena, (size_t)feat_cluster_npeers(v) + 1);
    if (!idx || !lkeys || !llens || !asked) return FEAT_ERR_NOMEM;
    size_t nl = 0, npeer = 0;
    for (size_t k = 0; k < n; k++) {
        if (failed) failed[k] = -1;
        if (route[k] == FEAT_ROUTE_LOCAL) {
            idx[nl] = k;
            lkeys[nl] = keys[k];
            llens[nl++] = klens[k];
        } else if (route[k] >= 0) {
            npeer++;
        } else if (route[k] != ROUTE_DONE) {
            key_status(t, fidx, nf, k, route[k] == FEAT_ROUTE_RESTORING ? FEAT_ST_RESTORING : FEAT_ST_UNAVAILABLE,
                       vals);
        }
    }
    feat_err_t err;
    if (nl == n && ls) /* the common case: every key here, read in place */
        return feat_online_lookup(sv->st, sv->cache, t, n, keys, klens, fidx, nf, now, vals, ls);
    if (nl) {
        feat_value_t *lv = feat_arena_alloc(call->arena, nl * nf * sizeof(feat_value_t) + 1);
        if (!lv) return FEAT_ERR_NOMEM;
        feat_lookup_scratch_t own = {0};
        err = feat_online_lookup(sv->st, sv->cache, t, nl, lkeys, llens, fidx, nf, now, lv, ls ? ls : &own);
        for (size_t i = 0; !err && !ls && i < nl * nf; i++) {
            if (lv[i].type != FEAT_FT_STRING || !lv[i].v.s ||
                (lv[i].status != FEAT_ST_PRESENT && lv[i].status != FEAT_ST_EXPIRED))
                continue;
            char *copy = feat_arena_alloc(call->arena, lv[i].slen + 1);
            if (!copy) { err = FEAT_ERR_NOMEM; break; }
            memcpy(copy, lv[i].v.s, lv[i].slen);
            copy[lv[i].slen] = 0;
            lv[i].v.s = copy;
        }
        if (!ls) feat_lookup_scratch_free(&own);
        if (err) return err;
        for (size_t i = 0; i < nl; i++) memcpy(&vals[idx[i] * nf], &lv[i * nf], nf * sizeof(feat_value_t));
    }
    if (!npeer) return FEAT_OK;
    int np = feat_cluster_npeers(v);
    feat_forward_req_t *reqs = feat_arena_calloc(call->arena, (size_t)np * sizeof(*reqs) + 1);
    size_t **pidx = feat_arena_alloc(call->arena, (size_t)np * sizeof(size_t *) + 1);
    size_t *pm = feat_arena_alloc(call->arena, (size_t)np * sizeof(size_t) + 1);
    int *peer = feat_arena_alloc(call->arena, (size_t)np * sizeof(int) + 1);
    size_t nreq = 0, k = 0, m;
    if (!reqs || !pidx || !pm || !peer) return FEAT_ERR_NOMEM;
    for (int p; (p = next_owner(route, n, &k, asked, idx, &m)) >= 0; nreq++) {
        pidx[nreq] = feat_arena_alloc(call->arena, m * sizeof(size_t) + 1);
        if (!pidx[nreq]) return FEAT_ERR_NOMEM;
        memcpy(pidx[nreq], idx, m * sizeof(size_t));
        pm[nreq] = m;
        peer[nreq] = p;
        reqs[nreq].address = feat_cluster_peer_address(v, p);
        if ((err = peer_request(call, t, keys, klens, fidx, nf, idx, m, &reqs[nreq]))) return err;
    }
    feat_forward_calls(sv->forward, reqs, nreq, call->token, call->deadline_ms);
    for (size_t q = 0; q < nreq; q++) {
        feat_err_t pe = peer_answer(call, &reqs[q], t, fidx, nf, pidx[q], pm[q], vals);
        feat_buf_free(&reqs[q].resp);
        for (size_t i = 0; pe && i < pm[q]; i++) {
            key_status(t, fidx, nf, pidx[q][i], FEAT_ST_UNAVAILABLE, vals);
            if (failed) failed[pidx[q][i]] = peer[q];
        }
    }
    return FEAT_OK;
}

feat_err_t featd_svc_online_lookup(feat_serve_t *sv, feat_rpc_call_t *call, const feat_table_t *t, size_t n,
                                   const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                                   int64_t now, feat_value_t *vals, feat_lookup_scratch_t *ls, int local_only) {
    if (feat_cluster_mode(sv->cluster) == FEAT_CLUSTER_SINGLE)
        return feat_online_lookup(sv->st, sv->cache, t, n, keys, klens, fidx, nf, now, vals, ls);
    feat_cluster_view_t *v = feat_cluster_view_acquire(sv->cluster);
    int *route = feat_arena_alloc(call->arena, n * sizeof(int) + 1);
    int *failed = feat_arena_alloc(call->arena, n * sizeof(int) + 1);
    feat_err_t err = FEAT_ERR_NOMEM;
    if (!route || !failed) goto done;
    local_only |= !sv->forward;
    for (size_t k = 0; k < n; k++)
        route[k] = feat_cluster_route(sv->cluster, v, t->index, keys[k], klens[k], local_only);
    if ((err = lookup_round(sv, call, v, t, n, keys, klens, fidx, nf, now, vals, ls, route, failed))) goto done;
    /* the keys of a peer that did not answer (killed, cut off): once more at a standby, if one is in reach */
    size_t again = 0;
    for (size_t k = 0; k < n; k++) {
        route[k] = failed[k] < 0 ? ROUTE_DONE
                                 : feat_cluster_fallback(sv->cluster, v, t->index, keys[k], klens[k], failed[k]);
        again += route[k] >= FEAT_ROUTE_LOCAL;
    }
    if (again) err = lookup_round(sv, call, v, t, n, keys, klens, fidx, nf, now, vals, NULL, route, NULL);
done:
    feat_cluster_view_release(sv->cluster, v);
    return err;
}

/* Collects a peer's HistoricalRow stream into its rows' slots. */
typedef struct hist_collect {
    feat_arena_t *arena;
    const size_t *idx;       /* request rows asked, in order */
    size_t m, got, nf;
    Featd__V1__FeatureValue ***out;
} hist_collect_t;

static int hist_msg(void *arg, const uint8_t *data, size_t len) {
    hist_collect_t *hc = arg;
    ProtobufCAllocator alloc;
    feat_rpc_pb_allocator(hc->arena, &alloc);
    Featd__V1__HistoricalRow *r = featd__v1__historical_row__unpack(&alloc, len, data);
    if (!r || hc->got >= hc->m || r->n_values != hc->nf) return 1; /* not what was asked: stop */
    hc->out[hc->idx[hc->got++]] = r->values;
    return 0;
}

feat_err_t featd_svc_hist_route(feat_serve_t *sv, feat_rpc_call_t *call,
                                const Featd__V1__GetHistoricalFeaturesRequest *req, const feat_table_t *t,
                                const uint16_t *fidx, size_t nf, int **route_out,
                                Featd__V1__FeatureValue ****remote_out) {
    *route_out = NULL;
    *remote_out = NULL;
    if (feat_cluster_mode(sv->cluster) == FEAT_CLUSTER_SINGLE) return FEAT_OK;
    size_t n = req->n_rows;
    feat_cluster_view_t *v = feat_cluster_view_acquire(sv->cluster);
    int *route = feat_arena_alloc(call->arena, n * sizeof(int) + 1);
    size_t *idx = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    Featd__V1__FeatureValue ***remote = feat_arena_calloc(call->arena, n * sizeof(void *) + 1);
    unsigned char *asked = feat_arena_calloc(call->arena, (size_t)feat_cluster_npeers(v) + 1);
    char **names = feat_arena_alloc(call->arena, nf * sizeof(char *) + 1);
    feat_err_t err = FEAT_OK;
    if (!route || !idx || !remote || !asked || !names) {
        err = FEAT_ERR_NOMEM;
        goto done;
    }
    for (size_t j = 0; j < nf; j++) names[j] = t->conf->features[fidx[j]].name;
    for (size_t k = 0; k < n; k++) {
        const char *key = req->rows[k]->entity_key;
        route[k] = feat_cluster_route(sv->cluster, v, t->index, key, strlen(key), sv->peer || !sv->forward);
    }
    size_t k = 0, m;
    for (int p; (p = next_owner(route, n, &k, asked, idx, &m)) >= 0;) {
        Featd__V1__GetHistoricalFeaturesRequest fr = FEATD__V1__GET_HISTORICAL_FEATURES_REQUEST__INIT;
        fr.table = t->conf->name;
        fr.n_features = nf;
        fr.features = names;
        fr.n_rows = m;
        fr.rows = feat_arena_alloc(call->arena, m * sizeof(void *) + 1);
        if (!fr.rows) { err = FEAT_ERR_NOMEM; goto done; }
        for (size_t i = 0; i < m; i++) fr.rows[i] = req->rows[idx[i]];
        size_t len = featd__v1__get_historical_features_request__get_packed_size(&fr);
        uint8_t *bytes = feat_arena_alloc(call->arena, len + 1);
        if (!bytes) { err = FEAT_ERR_NOMEM; goto done; }
        featd__v1__get_historical_features_request__pack(&fr, bytes);
        hist_collect_t hc = {call->arena, idx, m, 0, nf, remote};
        char msg[256] = "";
        int code = feat_forward_stream(sv->forward, feat_cluster_peer_address(v, p),
                                       "/featd.v1.FeatureService/GetHistoricalFeatures", call->token, call->deadline_ms,
                                       bytes, len, hist_msg, &hc, msg, sizeof(msg));
        if (code || hc.got != m) { /* all or nothing per owner: its rows UNAVAILABLE */
            feat_log(FEAT_LOG_DEBUG, "cluster", "asking %s for %zu history row(s): %s: %s", feat_cluster_peer_address(v, p),
                     m, feat_grpc_code_name(code), msg);
            for (size_t i = 0; i < m; i++) remote[idx[i]] = NULL;
        }
    }
    *route_out = route;
    *remote_out = remote;
done:
    feat_cluster_view_release(sv->cluster, v);
    return err;
}

feat_err_t featd_svc_get_cluster(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__GetClusterRequest *req = featd_svc_unpack(call, &featd__v1__get_cluster_request__descriptor, &err);
    if (!req) return err;
    return feat_cluster_pack_map(sv->cluster, resp);
}
