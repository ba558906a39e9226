/*
 * serve/service.c — featd's gRPC methods: FeatureService and AdminService.
 *
 * Handlers decode requests with protobuf-c into the call's arena, validate
 * them (every error names the offending table, feature or key), read the
 * cache and the store, and encode the reply.  They run on the gRPC worker
 * threads and never block on anything but RocksDB.  The model methods are
 * in serve/models_rpc.c.
 */
#include "serve/auth.h"
#include "serve/cache.h"
#include "ingest/cluster.h"
#include "drift/monitor.h"
#include "serve/lookup.h"
#include "serve/serve.h"
#include "serve/status.h"
#include "rpc/rpc.h"
#include "serve/svc.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/pbwire.h"
#include "common/utf8.h"
#include "featd/v1/admin.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- request validation ------------------------------------------------------- */

/* Puts "name" or "name[idx]" (field's) and a dot before path, which holds the
 * failing field's path below field; cut at cap.  Only on the error path. */
static void path_prepend(char *path, size_t cap, const ProtobufCFieldDescriptor *field, unsigned idx) {
    char seg[96];
    int n = field->label == PROTOBUF_C_LABEL_REPEATED ? snprintf(seg, sizeof(seg), "%s[%u]", field->name, idx)
                                                      : snprintf(seg, sizeof(seg), "%s", field->name);
    size_t sl = n < 0 ? 0 : (size_t)n < sizeof(seg) ? (size_t)n : sizeof(seg) - 1;
    size_t pl = strlen(path), add = sl + (pl ? 1 : 0);
    if (add >= cap) return;
    if (pl + add >= cap) pl = cap - 1 - add; /* keep the head: the outer fields name the place */
    memmove(path + add, path, pl);
    path[pl + add] = 0;
    memcpy(path, seg, sl);
    if (pl) path[sl] = '.';
}

/* Walks message p[0..n) (desc) on the wire.  A string field that is not valid
 * UTF-8 or holds a NUL byte stops the walk: its dotted path ("rows[3].entity_key")
 * goes to path (built only then, while the walk unwinds) and the return is 1
 * (NUL) or 2 (UTF-8, at byte *at).  Bytes the wire reader refuses return 3:
 * protobuf-c's unpack is laxer (it keeps the low 32 bits of a tag varint that
 * is longer), so what the walk cannot see must not reach it.  Messages nested
 * deeper than 8 return 4: what is not checked is not accepted (no request
 * type nests deeper than 3 today). */
static int bad_string(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n, unsigned depth, char *path,
                      size_t cap, size_t *at) {
    feat_pb_t r;
    feat_pb_field_t f;
    unsigned seen[32]; /* occurrences so far of desc->fields[i], for repeated fields' indexes */
    if (n == 0) return 0; /* an empty message may come without a buffer */
    memset(seen, 0, (desc->n_fields < 32 ? desc->n_fields : 32) * sizeof(seen[0]));
    feat_pb_init(&r, p, n);
    while (r.p < r.end) {
        if (!feat_pb_next(&r, &f)) return 3;
        if (f.wt != 2) continue;
        const ProtobufCFieldDescriptor *field = protobuf_c_message_descriptor_get_field(desc, f.num);
        if (!field) continue;
        size_t fi = (size_t)(field - desc->fields);
        unsigned idx = fi < 32 ? seen[fi]++ : 0;
        int bad = 0;
        if (field->type == PROTOBUF_C_TYPE_STRING) {
            size_t v = feat_utf8_valid_prefix((const char *)f.s, f.n);
            if (v < f.n) {
                bad = 2;
                *at = v;
            } else if (memchr(f.s, 0, f.n)) {
                bad = 1;
            }
        } else if (field->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (depth >= 8) return 4;
            bad = bad_string(field->descriptor, f.s, f.n, depth + 1, path, cap, at);
            if (bad == 3 || bad == 4) return bad;
        }
        if (!bad) continue;
        path_prepend(path, cap, field, idx);
        return bad;
    }
    return 0;
}

feat_err_t featd_svc_check_strings(feat_rpc_call_t *call, const ProtobufCMessageDescriptor *desc) {
    char path[128] = "";
    size_t at = 0;
    int bad = bad_string(desc, call->req, call->req_len, 0, path, sizeof(path), &at);
    if (bad == 1) return ERR(call, FEAT_ERR_INVALID, "%s contains a NUL byte", path);
    if (bad == 2) return ERR(call, FEAT_ERR_INVALID, "%s is not valid UTF-8 (at byte %zu)", path, at);
    if (bad == 3) return ERR(call, FEAT_ERR_INVALID, "request is not a valid %s (malformed protobuf)", desc->name);
    if (bad == 4) return ERR(call, FEAT_ERR_INVALID, "request nests messages deeper than 8 levels");
    return FEAT_OK;
}

void *featd_svc_unpack(feat_rpc_call_t *call, const ProtobufCMessageDescriptor *desc, feat_err_t *err) {
    if ((*err = featd_svc_check_strings(call, desc))) return NULL;
    ProtobufCAllocator al;
    feat_rpc_pb_allocator(call->arena, &al);
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &al, call->req_len, call->req);
    if (!m) *err = ERR(call, FEAT_ERR_INVALID, "request is not a %s", desc->short_name);
    return m;
}

const feat_model_conf_t *feat_serve_model(const feat_serve_t *sv, const char *name) {
    for (size_t i = 0; name && i < sv->conf.nmodels; i++)
        if (!strcmp(sv->conf.models[i].name, name)) return &sv->conf.models[i];
    return NULL;
}

static const feat_table_t *resolve_table(feat_serve_t *sv, feat_rpc_call_t *call, const char *name,
                                         feat_err_t *err) {
    if (!name || !*name) {
        *err = ERR(call, FEAT_ERR_INVALID, "table is required");
        return NULL;
    }
    const feat_table_t *t = feat_store_table(sv->st, name);
    if (!t) *err = ERR(call, FEAT_ERR_INVALID, "unknown table \"%.64s\"", name);
    return t;
}

/* Feature indexes for the requested names (all features when none). */
static uint16_t *resolve_features(const feat_table_t *t, feat_rpc_call_t *call, char **names, size_t n,
                                  size_t *nout, feat_err_t *err) {
    const feat_table_conf_t *tc = t->conf;
    size_t cnt = n ? n : tc->nfeatures;
    uint16_t *fidx = feat_arena_alloc(call->arena, cnt * sizeof(uint16_t) + 1);
    unsigned char *seen = feat_arena_calloc(call->arena, tc->nfeatures + 1);
    if (!fidx || !seen) {
        *err = FEAT_ERR_NOMEM;
        return NULL;
    }
    for (size_t i = 0; i < cnt; i++) {
        if (!n) {
            fidx[i] = (uint16_t)i;
            continue;
        }
        int f = feat_table_feature_index(tc, names[i], strlen(names[i]));
        if (f < 0) {
            *err = ERR(call, FEAT_ERR_INVALID, "unknown feature \"%.64s\" in table %s", names[i], tc->name);
            return NULL;
        }
        if (seen[f]) {
            *err = ERR(call, FEAT_ERR_INVALID, "feature \"%s\" requested twice", names[i]);
            return NULL;
        }
        seen[f] = 1;
        fidx[i] = (uint16_t)f;
    }
    *nout = cnt;
    return fidx;
}

feat_err_t featd_svc_check_keys(feat_serve_t *sv, feat_rpc_call_t *call, char **keys, size_t n) {
    if (n == 0) return ERR(call, FEAT_ERR_INVALID, "entity_keys is empty");
    if ((int64_t)n > sv->conf.max_keys)
        return ERR(call, FEAT_ERR_INVALID, "too many entity keys: %zu > serve.max_keys = %lld", n,
                   (long long)sv->conf.max_keys);
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    uint32_t *slots = feat_arena_calloc(call->arena, cap * sizeof(uint32_t));
    if (!slots) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(keys[i]);
        if (l == 0) return ERR(call, FEAT_ERR_INVALID, "entity key %zu is empty", i);
        if ((int64_t)l > sv->conf.max_key)
            return ERR(call, FEAT_ERR_INVALID, "entity key %zu is %zu bytes; the limit is %lld", i, l,
                       (long long)sv->conf.max_key);
        size_t h = (size_t)feat_hash64(keys[i], l) & (cap - 1);
        while (slots[h]) {
            if (strcmp(keys[slots[h] - 1], keys[i]) == 0)
                return ERR(call, FEAT_ERR_INVALID, "duplicate entity key \"%.64s\" (positions %u and %zu)", keys[i],
                           slots[h] - 1, i);
            h = (h + 1) & (cap - 1);
        }
        slots[h] = (uint32_t)i + 1;
    }
    return FEAT_OK;
}

/* ---- values ------------------------------------------------------------------------ */

Featd__V1__FeatureValue *featd_svc_value_pb(feat_arena_t *a, const feat_value_t *v) {
    Featd__V1__FeatureValue *fv = feat_arena_alloc(a, sizeof(*fv));
    if (!fv) return NULL;
    featd__v1__feature_value__init(fv);
    fv->status = v->status == FEAT_ST_PRESENT       ? FEATD__V1__FEATURE_STATUS__PRESENT
                 : v->status == FEAT_ST_EXPIRED     ? FEATD__V1__FEATURE_STATUS__EXPIRED
                 : v->status == FEAT_ST_UNAVAILABLE ? FEATD__V1__FEATURE_STATUS__UNAVAILABLE
                 : v->status == FEAT_ST_RESTORING   ? FEATD__V1__FEATURE_STATUS__RESTORING
                                                    : FEATD__V1__FEATURE_STATUS__NOT_FOUND;
    if (v->status != FEAT_ST_PRESENT && v->status != FEAT_ST_EXPIRED) return fv;
    fv->event_time_ms = v->ts;
    Featd__V1__Value *pv = feat_arena_alloc(a, sizeof(*pv));
    if (!pv) return NULL;
    featd__v1__value__init(pv);
    switch (v->type) {
    case FEAT_FT_DOUBLE: pv->kind_case = FEATD__V1__VALUE__KIND_DOUBLE_VALUE; pv->double_value = v->v.d; break;
    case FEAT_FT_INT64: pv->kind_case = FEATD__V1__VALUE__KIND_INT64_VALUE; pv->int64_value = v->v.i; break;
    case FEAT_FT_BOOL: pv->kind_case = FEATD__V1__VALUE__KIND_BOOL_VALUE; pv->bool_value = v->v.b != 0; break;
    case FEAT_FT_STRING:
        pv->kind_case = FEATD__V1__VALUE__KIND_STRING_VALUE;
        pv->string_value = feat_arena_strndup(a, v->v.s, v->slen);
        if (!pv->string_value) return NULL;
        break;
    default: break;
    }
    fv->value = pv;
    return fv;
}

void *featd_svc_room(feat_arena_t *a, void *old, size_t n, size_t *cap, size_t first) {
    if (n < *cap) return old;
    size_t nc = *cap ? 2 * *cap : first;
    void *room = feat_arena_alloc(a, nc * sizeof(void *));
    if (!room) return NULL;
    if (n) memcpy(room, old, n * sizeof(void *));
    *cap = nc;
    return room;
}

feat_err_t featd_svc_pack(feat_buf_t *out, const ProtobufCMessage *m) {
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n == 0) return FEAT_OK; /* an empty message: out may have no buffer at all */
    if (feat_buf_grow(out, n)) return FEAT_ERR_NOMEM;
    protobuf_c_message_pack(m, (uint8_t *)out->data + out->len);
    out->len += n;
    return FEAT_OK;
}

/* ---- GetOnlineFeatures ----------------------------------------------------------------- */

/* GetOnlineFeatures by entity_rows: features may be TABLE.FEATURE; each
 * table is read with its entity's key from every row. */
static feat_err_t get_online_rows(feat_serve_t *sv, feat_rpc_call_t *call, Featd__V1__GetOnlineFeaturesRequest *req,
                                  feat_buf_t *resp) {
    feat_err_t err = FEAT_OK;
    size_t n = req->n_entity_rows;
    if (req->n_entity_keys) return ERR(call, FEAT_ERR_INVALID, "give entity_keys or entity_rows, not both");
    if ((int64_t)n > sv->conf.max_keys)
        return ERR(call, FEAT_ERR_INVALID, "too many entity rows: %zu > serve.max_keys = %lld", n,
                   (long long)sv->conf.max_keys);
    const feat_table_t *dt = NULL; /* the table unqualified names are in */
    if (req->table && *req->table && !(dt = feat_store_table(sv->st, req->table)))
        return ERR(call, FEAT_ERR_INVALID, "unknown table \"%.64s\"", req->table);
    if (!req->n_features && !dt) return ERR(call, FEAT_ERR_INVALID, "table is required when features is empty");
    size_t nf = req->n_features ? req->n_features : dt->conf->nfeatures;
    const feat_table_t **ft = feat_arena_alloc(call->arena, nf * sizeof(*ft) + 1);
    uint16_t *fi = feat_arena_alloc(call->arena, nf * sizeof(uint16_t) + 1);
    char **names = feat_arena_alloc(call->arena, nf * sizeof(char *) + 1);
    if (!ft || !fi || !names) return FEAT_ERR_NOMEM;
    for (size_t j = 0; j < nf; j++) {
        if (!req->n_features) {
            ft[j] = dt;
            fi[j] = (uint16_t)j;
            names[j] = dt->conf->features[j].name;
            continue;
        }
        const char *name = req->features[j], *dot = strchr(name, '.'), *fname = name;
        ft[j] = dt;
        if (dot) {
            char tn[FEAT_MAX_NAME + 1];
            snprintf(tn, sizeof(tn), "%.*s", (int)(dot - name > FEAT_MAX_NAME ? FEAT_MAX_NAME : dot - name), name);
            if (dot - name > FEAT_MAX_NAME || !(ft[j] = feat_store_table(sv->st, tn)))
                return ERR(call, FEAT_ERR_INVALID, "feature \"%.64s\": unknown table \"%.64s\"", name, tn);
            fname = dot + 1;
        } else if (!dt) {
            return ERR(call, FEAT_ERR_INVALID, "feature \"%.64s\" names no table (set table or write TABLE.FEATURE)",
                       name);
        }
        int f = feat_table_feature_index(ft[j]->conf, fname, strlen(fname));
        if (f < 0)
            return ERR(call, FEAT_ERR_INVALID, "unknown feature \"%.64s\" in table %s", fname, ft[j]->conf->name);
        fi[j] = (uint16_t)f;
        names[j] = req->features[j];
        for (size_t k = 0; k < j; k++)
            if (ft[k] == ft[j] && fi[k] == fi[j])
                return ERR(call, FEAT_ERR_INVALID, "feature \"%s\" requested twice", name);
    }
    const char **keys = feat_arena_alloc(call->arena, n * sizeof(char *) + 1);
    const char **first = feat_arena_alloc(call->arena, n * sizeof(char *) + 1);
    size_t *klens = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    uint16_t *gfidx = feat_arena_alloc(call->arena, nf * sizeof(uint16_t) + 1);
    size_t *gpos = feat_arena_alloc(call->arena, nf * sizeof(size_t) + 1);
    unsigned char *done = feat_arena_calloc(call->arena, nf + 1);
    feat_value_t *vals = feat_arena_alloc(call->arena, n * nf * sizeof(feat_value_t) + 1);
    feat_lookup_scratch_t *ls = feat_arena_calloc(call->arena, (nf + 1) * sizeof(feat_lookup_scratch_t));
    if (!keys || !first || !klens || !gfidx || !gpos || !done || !vals || !ls) return FEAT_ERR_NOMEM;
    /* every row's keys checked first: no read for a request that fails */
    for (size_t j = 0; j < nf && !err; j++) err = featd_svc_row_keys(sv, call, req->entity_rows, n, ft[j]->conf->entity, keys, klens);
    if (!err && nf) err = featd_svc_row_keys(sv, call, req->entity_rows, n, ft[0]->conf->entity, first, klens);
    int64_t now = feat_now_ms();
    size_t ng = 0;
    for (size_t j = 0; j < nf && !err; j++) {
        if (done[j]) continue;
        size_t gn = 0;
        for (size_t k = j; k < nf; k++)
            if (!done[k] && ft[k] == ft[j]) {
                gfidx[gn] = fi[k];
                gpos[gn++] = k;
                done[k] = 1;
            }
        err = featd_svc_row_keys(sv, call, req->entity_rows, n, ft[j]->conf->entity, keys, klens);
        if (!err)
            err = featd_svc_lookup_rows(sv, call, ft[j], n, keys, klens, gfidx, gpos, gn, nf, now, vals, &ls[ng++],
                                        req->local_only || sv->peer);
    }
    Featd__V1__GetOnlineFeaturesResponse res = FEATD__V1__GET_ONLINE_FEATURES_RESPONSE__INIT;
    res.n_features = nf;
    res.features = names;
    res.n_rows = n;
    res.rows = feat_arena_alloc(call->arena, n * sizeof(Featd__V1__EntityRow *) + 1);
    Featd__V1__EntityRow *rows = feat_arena_alloc(call->arena, n * sizeof(Featd__V1__EntityRow) + 1);
    Featd__V1__FeatureValue **fvs = feat_arena_alloc(call->arena, n * nf * sizeof(void *) + 1);
    if (!err && (!res.rows || !rows || !fvs)) err = FEAT_ERR_NOMEM;
    for (size_t k = 0; !err && k < n; k++) {
        featd__v1__entity_row__init(&rows[k]);
        rows[k].entity_key = nf ? (char *)first[k] : (char *)"";
        rows[k].n_values = nf;
        rows[k].values = fvs + k * nf;
        for (size_t j = 0; j < nf; j++)
            if (!(fvs[k * nf + j] = featd_svc_value_pb(call->arena, &vals[k * nf + j]))) err = FEAT_ERR_NOMEM;
        res.rows[k] = &rows[k];
    }
    if (!err) err = featd_svc_pack(resp, &res.base);
    for (size_t g = 0; g < ng; g++) feat_lookup_scratch_free(&ls[g]);
    return err;
}

static feat_err_t get_online(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__GetOnlineFeaturesRequest *req =
        featd_svc_unpack(call, &featd__v1__get_online_features_request__descriptor, &err);
    if (!req) return err;
    if (req->n_entity_rows) return get_online_rows(sv, call, req, resp);
    const feat_table_t *t = resolve_table(sv, call, req->table, &err);
    if (!t) return err;
    size_t nf = 0;
    uint16_t *fidx = resolve_features(t, call, req->features, req->n_features, &nf, &err);
    if (!fidx) return err;
    if ((err = featd_svc_check_keys(sv, call, req->entity_keys, req->n_entity_keys))) return err;
    size_t n = req->n_entity_keys;
    feat_value_t *vals = feat_arena_alloc(call->arena, n * nf * sizeof(feat_value_t) + 1);
    if (!vals) return FEAT_ERR_NOMEM;
    size_t *klens = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    if (!klens) return FEAT_ERR_NOMEM;
    for (size_t k = 0; k < n; k++) klens[k] = strlen(req->entity_keys[k]);
    feat_lookup_scratch_t ls = FEAT_LOOKUP_SCRATCH_INIT;
    err = featd_svc_online_lookup(sv, call, t, n, (const char *const *)req->entity_keys, klens, fidx, nf,
                                  feat_now_ms(), vals, &ls, req->local_only || sv->peer);
    if (err) {
        feat_lookup_scratch_free(&ls);
        return ERR(call, err, "online read failed: %s", feat_err_str(err));
    }
    Featd__V1__GetOnlineFeaturesResponse res = FEATD__V1__GET_ONLINE_FEATURES_RESPONSE__INIT;
    res.n_features = nf;
    res.features = feat_arena_alloc(call->arena, nf * sizeof(char *) + 1);
    res.n_rows = n;
    res.rows = feat_arena_alloc(call->arena, n * sizeof(Featd__V1__EntityRow *) + 1);
    Featd__V1__EntityRow *rows = feat_arena_alloc(call->arena, n * sizeof(Featd__V1__EntityRow) + 1);
    Featd__V1__FeatureValue **fvs = feat_arena_alloc(call->arena, n * nf * sizeof(void *) + 1);
    if (!res.features || !res.rows || !rows || !fvs) err = FEAT_ERR_NOMEM;
    for (size_t j = 0; !err && j < nf; j++) res.features[j] = t->conf->features[fidx[j]].name;
    for (size_t k = 0; !err && k < n; k++) {
        featd__v1__entity_row__init(&rows[k]);
        rows[k].entity_key = req->entity_keys[k];
        rows[k].n_values = nf;
        rows[k].values = fvs + k * nf;
        for (size_t j = 0; j < nf; j++)
            if (!(fvs[k * nf + j] = featd_svc_value_pb(call->arena, &vals[k * nf + j]))) err = FEAT_ERR_NOMEM;
        res.rows[k] = &rows[k];
    }
    if (!err) err = featd_svc_pack(resp, &res.base);
    feat_lookup_scratch_free(&ls);
    return err;
}

/* ---- GetHistoricalFeatures ----------------------------------------------------------------- */

typedef struct hist_state {
    Featd__V1__GetHistoricalFeaturesRequest *req;
    const feat_table_t *t;
    uint16_t *fidx;
    size_t nf;
    size_t i;
    feat_pit_reader_t *reader;
    feat_value_t *vals;
    feat_buf_t strings;
    feat_arena_t row_arena;
    int *route;                          /* partitioned mode: where each row is read (FEAT_ROUTE_*, peer) */
    Featd__V1__FeatureValue ***remote;   /* ... and the values of rows peers answered */
    Featd__V1__FeatureValue *st_value[2]; /* UNAVAILABLE, RESTORING */
} hist_state_t;

static void *hist_begin(feat_rpc_call_t *call, feat_err_t *err) {
    feat_serve_t *sv = call->app;
    Featd__V1__GetHistoricalFeaturesRequest *req =
        featd_svc_unpack(call, &featd__v1__get_historical_features_request__descriptor, err);
    if (!req) return NULL;
    hist_state_t *hs = feat_arena_calloc(call->arena, sizeof(*hs));
    if (!hs) {
        *err = FEAT_ERR_NOMEM;
        return NULL;
    }
    hs->req = req;
    *err = FEAT_OK;
    hs->t = resolve_table(sv, call, req->table, err);
    if (!hs->t) return NULL;
    hs->fidx = resolve_features(hs->t, call, req->features, req->n_features, &hs->nf, err);
    if (!hs->fidx) return NULL;
    if (req->n_rows == 0) {
        *err = ERR(call, FEAT_ERR_INVALID, "rows is empty");
        return NULL;
    }
    if ((int64_t)req->n_rows > sv->conf.max_history_rows) {
        *err = ERR(call, FEAT_ERR_INVALID, "too many rows: %zu > serve.max_history_rows = %lld", req->n_rows,
                   (long long)sv->conf.max_history_rows);
        return NULL;
    }
    for (size_t i = 0; i < req->n_rows; i++) {
        if (!req->rows[i]->entity_key || !*req->rows[i]->entity_key) {
            *err = ERR(call, FEAT_ERR_INVALID, "row %zu has an empty entity key", i);
            return NULL;
        }
    }
    if ((*err = featd_svc_hist_route(sv, call, req, hs->t, hs->fidx, hs->nf, &hs->route, &hs->remote))) return NULL;
    for (int s = 0; s < 2; s++) {
        feat_value_t sv_ = {.status = s ? FEAT_ST_RESTORING : FEAT_ST_UNAVAILABLE};
        if (!(hs->st_value[s] = featd_svc_value_pb(call->arena, &sv_))) {
            *err = FEAT_ERR_NOMEM;
            return NULL;
        }
    }
    hs->vals = feat_arena_alloc(call->arena, hs->nf * sizeof(feat_value_t) + 1);
    hs->reader = feat_pit_reader_new(sv->st);
    if (!hs->vals || !hs->reader) {
        feat_pit_reader_destroy(hs->reader);
        *err = FEAT_ERR_NOMEM;
        return NULL;
    }
    feat_arena_init(&hs->row_arena, 16384);
    return hs;
}

static feat_err_t hist_next(feat_rpc_call_t *call, void *state, feat_buf_t *out, int *more) {
    hist_state_t *hs = state;
    *more = 0;
    if (hs->i >= hs->req->n_rows) return FEAT_OK;
    Featd__V1__EntityTime *et = hs->req->rows[hs->i];
    int route = hs->route ? hs->route[hs->i] : FEAT_ROUTE_LOCAL;
    feat_arena_reset(&hs->row_arena);
    Featd__V1__HistoricalRow row = FEATD__V1__HISTORICAL_ROW__INIT;
    row.entity_key = et->entity_key;
    row.ts_ms = et->ts_ms;
    row.n_values = hs->nf;
    row.values = feat_arena_alloc(&hs->row_arena, hs->nf * sizeof(void *) + 1);
    if (!row.values) return FEAT_ERR_NOMEM;
    if (route == FEAT_ROUTE_LOCAL) {
        feat_err_t rc = feat_pit_read(hs->reader, hs->t, et->entity_key, strlen(et->entity_key), et->ts_ms, hs->fidx,
                                      hs->nf, 1, hs->vals, &hs->strings);
        if (rc) return ERR(call, rc, "point-in-time read failed for row %zu", hs->i);
        for (size_t j = 0; j < hs->nf; j++)
            if (!(row.values[j] = featd_svc_value_pb(&hs->row_arena, &hs->vals[j]))) return FEAT_ERR_NOMEM;
    } else if (route >= 0 && hs->remote[hs->i]) {
        memcpy(row.values, hs->remote[hs->i], hs->nf * sizeof(void *));
    } else {
        for (size_t j = 0; j < hs->nf; j++) row.values[j] = hs->st_value[route == FEAT_ROUTE_RESTORING];
    }
    if (hs->i == 0) {
        row.n_features = hs->nf;
        row.features = feat_arena_alloc(&hs->row_arena, hs->nf * sizeof(char *) + 1);
        if (!row.features) return FEAT_ERR_NOMEM;
        for (size_t j = 0; j < hs->nf; j++) row.features[j] = hs->t->conf->features[hs->fidx[j]].name;
    }
    hs->i++;
    if (featd_svc_pack(out, &row.base) != FEAT_OK) return FEAT_ERR_NOMEM;
    *more = 1;
    return FEAT_OK;
}

static void hist_end(void *state) {
    hist_state_t *hs = state;
    feat_pit_reader_destroy(hs->reader);
    feat_buf_free(&hs->strings);
    feat_arena_free(&hs->row_arena);
}

static const feat_stream_ops_t hist_ops = {hist_begin, hist_next, hist_end};

/* ---- AdminService: Status, ListTables ------------------------------------------------------ */

static feat_err_t status(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    if (!featd_svc_unpack(call, &featd__v1__status_request__descriptor, &err)) return err;
    feat_daemon_status_t s;
    Featd__V1__StatusResponse res;
    if (feat_status_of_serve(sv, call->arena, &s) != FEAT_OK || feat_status_to_pb(&s, call->arena, &res) != FEAT_OK)
        return FEAT_ERR_NOMEM;
    return featd_svc_pack(resp, &res.base);
}

static feat_err_t list_tables(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    if (!featd_svc_unpack(call, &featd__v1__list_tables_request__descriptor, &err)) return err;
    feat_arena_t *a = call->arena;
    Featd__V1__ListTablesResponse res = FEATD__V1__LIST_TABLES_RESPONSE__INIT;
    res.n_tables = sv->conf.ntables;
    res.tables = feat_arena_alloc(a, res.n_tables * sizeof(void *) + 1);
    if (!res.tables) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < res.n_tables; i++) {
        const feat_table_conf_t *tc = &sv->conf.tables[i];
        Featd__V1__TableSchema *ts = feat_arena_alloc(a, sizeof(*ts));
        if (!ts) return FEAT_ERR_NOMEM;
        featd__v1__table_schema__init(ts);
        ts->name = tc->name;
        ts->entity = tc->entity;
        ts->topic = tc->topic;
        ts->ttl_ms = tc->ttl_ms;
        ts->n_features = tc->nfeatures;
        ts->features = feat_arena_alloc(a, tc->nfeatures * sizeof(void *) + 1);
        if (!ts->features) return FEAT_ERR_NOMEM;
        for (size_t f = 0; f < tc->nfeatures; f++) {
            Featd__V1__FeatureSchema *fs = feat_arena_alloc(a, sizeof(*fs));
            if (!fs) return FEAT_ERR_NOMEM;
            featd__v1__feature_schema__init(fs);
            fs->name = tc->features[f].name;
            fs->type = (char *)feat_ftype_name(tc->features[f].type);
            if (feat_feature_is_agg(tc, f)) {
                char d[FEAT_MAX_NAME * 2 + 64];
                feat_agg_describe(tc, f, d, sizeof(d));
                fs->aggregation = feat_arena_strndup(a, d, strlen(d));
                if (!fs->aggregation) return FEAT_ERR_NOMEM;
            }
            ts->features[f] = fs;
        }
        res.tables[i] = ts;
    }
    return featd_svc_pack(resp, &res.base);
}

/* ---- drift ------------------------------------------------------------------------------------- */

typedef struct drift_ctx {
    feat_arena_t *a;
    Featd__V1__FeatureDrift **out;
    size_t n, cap;
    int nomem;
} drift_ctx_t;

static char *dup_or_empty(feat_arena_t *a, const char *s) {
    return s ? feat_arena_strndup(a, s, strlen(s)) : (char *)"";
}

static void drift_entry(void *arg, const feat_drift_entry_t *e) {
    drift_ctx_t *dc = arg;
    Featd__V1__FeatureDrift **out = featd_svc_room(dc->a, dc->out, dc->n, &dc->cap, 64);
    if (!out) { dc->nomem = 1; return; }
    dc->out = out;
    Featd__V1__FeatureDrift *f = feat_arena_alloc(dc->a, sizeof(*f));
    if (!f) { dc->nomem = 1; return; }
    featd__v1__feature_drift__init(f);
    f->table = dup_or_empty(dc->a, e->table);
    f->feature = dup_or_empty(dc->a, e->feature);
    f->model = dup_or_empty(dc->a, e->model);
    f->status = (char *)feat_drift_state_name(e->state);
    f->ks = e->ks;
    f->ks_p_value = e->ks_p;
    f->psi = e->psi;
    f->kl = e->kl;
    f->js = e->js;
    f->chi2 = e->chi2;
    f->chi2_p_value = e->chi2_p;
    f->ks_threshold = e->th_ks;
    f->psi_threshold = e->th_psi;
    f->kl_threshold = e->th_kl;
    f->p_value_threshold = e->th_p;
    f->window_size = e->window_size;
    f->reference_size = e->reference_size;
    f->window_end_ms = e->window_end_ms;
    f->reference_source = (char *)feat_drift_source_name(e->source);
    f->instances = e->instances;
    dc->out[dc->n++] = f;
}

static feat_err_t drift_report(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__GetDriftReportRequest *req =
        featd_svc_unpack(call, &featd__v1__get_drift_report_request__descriptor, &err);
    if (!req) return err;
    if (!sv->drift) return ERR(call, FEAT_ERR_STATE, "drift monitoring is off (drift.enabled = false)");
    if (req->table && *req->table && !feat_store_table(sv->st, req->table) && !feat_serve_model(sv, req->table))
        return ERR(call, FEAT_ERR_INVALID, "unknown table or model \"%.64s\"", req->table);
    drift_ctx_t dc = {call->arena, NULL, 0, 0, 0};
    size_t n;
    if (req->cluster && feat_cluster_mode(sv->cluster) == FEAT_CLUSTER_PARTITIONED && !sv->peer) {
        if ((err = featd_svc_drift_merged(sv, call, req, drift_entry, &dc))) return err;
        n = dc.n;
    } else { /* single and replica modes: this instance saw every partition's values */
        n = feat_drift_report(sv->drift, req->table, req->feature, drift_entry, &dc);
    }
    if (dc.nomem) return FEAT_ERR_NOMEM;
    if (n == 0 && req->feature && *req->feature)
        return ERR(call, FEAT_ERR_INVALID, "unknown feature \"%.64s\"", req->feature);
    Featd__V1__DriftReport res = FEATD__V1__DRIFT_REPORT__INIT;
    res.n_features = dc.n;
    res.features = dc.out;
    return featd_svc_pack(resp, &res.base);
}

static feat_err_t pin_reference(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__PinDriftReferenceRequest *req =
        featd_svc_unpack(call, &featd__v1__pin_drift_reference_request__descriptor, &err);
    if (!req) return err;
    if (!sv->drift) return ERR(call, FEAT_ERR_STATE, "drift monitoring is off (drift.enabled = false)");
    int pinned = 0;
    feat_err_t rc = feat_drift_pin(sv->drift, req->table, req->feature, &pinned);
    if (rc == FEAT_ERR_NOT_FOUND)
        return ERR(call, FEAT_ERR_INVALID, "unknown table \"%.64s\" or feature \"%.64s\"", req->table ? req->table : "",
                   req->feature ? req->feature : "");
    if (rc == FEAT_ERR_STATE) return ERR(call, FEAT_ERR_STATE, "no window has closed yet to pin");
    if (rc) return ERR(call, rc, "pin failed");
    Featd__V1__PinDriftReferenceResponse res = FEATD__V1__PIN_DRIFT_REFERENCE_RESPONSE__INIT;
    res.pinned = (uint32_t)pinned;
    return featd_svc_pack(resp, &res.base);
}

/* Backup: dir becomes a data directory whose db/ is a RocksDB checkpoint of
 * the live store.  Runs on the calling gRPC thread (a flush plus hard links:
 * usually well under a second). */
static feat_err_t backup(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t serr;
    Featd__V1__BackupRequest *req = featd_svc_unpack(call, &featd__v1__backup_request__descriptor, &serr);
    if (!req) return serr;
    const char *dir = req->dir ? req->dir : "";
    if (!*dir) return ERR(call, FEAT_ERR_INVALID, "dir is required");
    if (dir[0] != '/') return ERR(call, FEAT_ERR_INVALID, "dir must be an absolute path on featd's host");
    if (strlen(dir) > 3500) return ERR(call, FEAT_ERR_INVALID, "dir is longer than 3500 bytes");
    feat_metric_t *ok = feat_counter(sv->metrics, "featd_backups_total", "Backups (Backup RPC) by result", "result=\"ok\"");
    feat_metric_t *bad = feat_counter(sv->metrics, "featd_backups_total", "Backups (Backup RPC) by result", "result=\"error\"");
    int64_t t0 = feat_now_ms();
    if (mkdir(dir, 0700) != 0) {
        int e = errno;
        feat_metric_add(bad, 1);
        if (e == EEXIST) return ERR(call, FEAT_ERR_EXISTS, "%.200s already exists (a backup needs a new directory)", dir);
        if (e == ENOENT || e == ENOTDIR)
            return ERR(call, FEAT_ERR_INVALID, "%.200s: the parent directory does not exist", dir);
        return ERR(call, FEAT_ERR_IO, "cannot create %.200s: %s", dir, strerror(e));
    }
    char db[4096], err[512];
    snprintf(db, sizeof(db), "%s/db", dir);
    feat_checkpoint_info_t info;
    feat_err_t rc = feat_store_checkpoint(sv->st, db, &info, err, sizeof(err));
    if (rc) {
        rmdir(dir);
        feat_metric_add(bad, 1);
        feat_log(FEAT_LOG_ERROR, "serve", "backup to %s failed: %s", dir, err);
        return ERR(call, rc, "backup failed: %.200s", err);
    }
    int64_t ms = feat_now_ms() - t0;
    feat_metric_add(ok, 1);
    feat_metric_set(feat_gauge(sv->metrics, "featd_backup_last_success_timestamp_seconds",
                               "Unix time of the last successful backup", NULL),
                    (double)feat_now_ms() / 1000.0);
    feat_log(FEAT_LOG_INFO, "serve", "backup: %s (%llu bytes in %llu files, %llu hard-linked) in %lld ms", dir,
             (unsigned long long)info.bytes, (unsigned long long)info.files, (unsigned long long)info.linked_files,
             (long long)ms);
    Featd__V1__BackupResponse res = FEATD__V1__BACKUP_RESPONSE__INIT;
    res.dir = (char *)dir;
    res.bytes = info.bytes;
    res.files = info.files;
    res.linked_files = info.linked_files;
    res.duration_ms = ms;
    return featd_svc_pack(resp, &res.base);
}

#define FS "/featd.v1.FeatureService/"
#define AS "/featd.v1.AdminService/"

static const feat_method_t methods[] = {
    {FS "GetOnlineFeatures", "GetOnlineFeatures", get_online, NULL, FEAT_RPC_READ},
    {FS "GetHistoricalFeatures", "GetHistoricalFeatures", NULL, &hist_ops, FEAT_RPC_READ},
    {FS "Predict", "Predict", featd_svc_predict, NULL, FEAT_RPC_READ},
    {FS "Push", "Push", featd_svc_push, NULL, FEAT_RPC_ADMIN},
    {AS "Status", "Status", status, NULL, FEAT_RPC_READ},
    {AS "ListTables", "ListTables", list_tables, NULL, FEAT_RPC_READ},
    {AS "ListModels", "ListModels", featd_svc_list_models, NULL, FEAT_RPC_READ},
    {AS "Promote", "Promote", featd_svc_promote, NULL, FEAT_RPC_ADMIN},
    {AS "Rollback", "Rollback", featd_svc_rollback, NULL, FEAT_RPC_ADMIN},
    {AS "TriggerRetrain", "TriggerRetrain", featd_svc_retrain, NULL, FEAT_RPC_ADMIN},
    {AS "GetRetrainStatus", "GetRetrainStatus", featd_svc_retrain_status, NULL, FEAT_RPC_READ},
    {AS "ImportModel", "ImportModel", featd_svc_import_model, NULL, FEAT_RPC_ADMIN},
    {AS "GetDriftReport", "GetDriftReport", drift_report, NULL, FEAT_RPC_READ},
    {AS "PinDriftReference", "PinDriftReference", pin_reference, NULL, FEAT_RPC_ADMIN},
    {AS "Backup", "Backup", backup, NULL, FEAT_RPC_ADMIN},
    {AS "GetCluster", "GetCluster", featd_svc_get_cluster, NULL, FEAT_RPC_READ},
    {AS "GetTrainingRows", "GetTrainingRows", NULL, &featd_svc_training_rows_ops, FEAT_RPC_ADMIN},
    {AS "GetDriftSketches", "GetDriftSketches", featd_svc_drift_sketches, NULL, FEAT_RPC_READ},
    {AS "ExportTrainingSet", "ExportTrainingSet", NULL, &featd_svc_export_ops, FEAT_RPC_READ},
};

const feat_method_t *feat_serve_methods(size_t *n) {
    *n = sizeof(methods) / sizeof(methods[0]);
    return methods;
}

int feat_serve_ready(feat_serve_t *sv) {
    if (!sv->st || !sv->ingest || feat_ingest_failed(sv->ingest) || atomic_load(&sv->shutting_down)) return 0;
    feat_ingest_stats_t s;
    feat_ingest_get_stats(sv->ingest, &s);
    return s.assigned > 0;
}

feat_err_t feat_serve_authorize(void *serve, const feat_method_t *m, const char *token, char *msg, size_t msglen) {
    feat_serve_t *sv = serve;
    feat_auth_level_t l = token ? feat_auth_check(sv->auth, token, strlen(token)) : FEAT_AUTH_NONE;
    if (l == FEAT_AUTH_NONE) {
        snprintf(msg, msglen, token ? "unknown bearer token" : "no bearer token (send \"authorization: Bearer TOKEN\")");
        return FEAT_ERR_UNAUTHENTICATED;
    }
    if (m->access == FEAT_RPC_ADMIN && l != FEAT_AUTH_ADMIN) {
        snprintf(msg, msglen, "%s needs an admin token (auth.admin_tokens_file); this one may only read", m->name);
        return FEAT_ERR_PERMISSION;
    }
    return FEAT_OK;
}
