/*
 * serve/cluster_train.c — models in a cluster (train/models.h, "in a
 * cluster"; ingest/cluster.h): the hooks the models object calls (who
 * trains, the training set gathered from every owner, the registry's
 * records) and AdminService.GetTrainingRows, which answers a trainer's
 * gather with the rows of the label partitions this instance holds.
 */
#include "serve/svc.h"

#include "common/clock.h"
#include "common/log.h"
#include "featd/v1/admin.pb-c.h"
#include "ingest/cluster.h"
#include "serve/auth.h"
#include "serve/forward.h"
#include "train/models.h"
#include "train/trainset.h"

#include <stdlib.h>
#include <string.h>

#define GATHER_WAIT_MS 120000  /* longest wait for one owner's rows (a stop waits for it too) */
#define ROWS_PER_MSG 512
#define BUILD_TRIES 6          /* a training set missing a partition (a rebalance): tries ... */
#define BUILD_WAIT_MS 3000     /* ... this far apart */

/* ---- this instance's rows ------------------------------------------------------------------ */

/* The label partitions of a model this instance holds, fixed when a build starts. */
typedef struct held {
    const feat_cluster_t *c;
    uint32_t model;
    int32_t n;
    uint8_t *p;                 /* [n] 1: held (ACTIVE) */
} held_t;

static int keep_held(void *arg, const char *key, size_t klen) {
    const held_t *h = arg;
    int32_t p = feat_cluster_label_partition(h->c, h->model, key, klen);
    return p >= 0 && p < h->n && h->p[p];
}

/* out from the labels of the partitions of model this instance holds (h->p,
 * malloc'd, the caller frees it).  A partition that stops being held during
 * the build fails it (FEAT_ERR_UNAVAILABLE): its rows may be incomplete. */
static feat_err_t build_held(feat_serve_t *sv, uint32_t model, int64_t from, int64_t to, const feat_trainset_cb_t *cb0,
                             held_t *h, feat_trainset_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    h->c = sv->cluster;
    h->model = model;
    h->n = feat_cluster_label_partitions(sv->cluster, model, NULL);
    if (!(h->p = calloc((size_t)h->n + 1, 1))) return FEAT_ERR_NOMEM;
    for (int32_t p = 0; p < h->n; p++) h->p[p] = feat_cluster_label_local(sv->cluster, model, p) == FEAT_PART_ACTIVE;
    feat_trainset_cb_t cb = {0};
    if (cb0) cb = *cb0;
    cb.keep = keep_held;
    cb.keep_arg = h;
    feat_err_t rc = feat_trainset_build(sv->st, &sv->conf.models[model], from, to, &cb, out, err, errlen);
    for (int32_t p = 0; !rc && p < h->n; p++) {
        if (h->p[p] && feat_cluster_label_local(sv->cluster, model, p) != FEAT_PART_ACTIVE) {
            snprintf(err, errlen, "label partition %d of model %s moved while its rows were read", p,
                     sv->conf.models[model].name);
            feat_trainset_free(out);
            rc = FEAT_ERR_UNAVAILABLE;
        }
    }
    return rc;
}

/* ---- AdminService.GetTrainingRows ------------------------------------------------------------- */

typedef struct rows_state {
    feat_trainset_t ts;
    held_t h;
    const char *topic;
    size_t at;
    int sent_first;
    feat_arena_t arena;         /* one message's */
} rows_state_t;

static void *rows_begin(feat_rpc_call_t *call, feat_err_t *err) {
    feat_serve_t *sv = call->app;
    Featd__V1__GetTrainingRowsRequest *req =
        featd_svc_unpack(call, &featd__v1__get_training_rows_request__descriptor, err);
    if (!req) return NULL;
    const feat_model_conf_t *mc = req->model && *req->model ? feat_serve_model(sv, req->model) : NULL;
    if (!mc) {
        *err = ERR(call, req->model && *req->model ? FEAT_ERR_NOT_FOUND : FEAT_ERR_INVALID, "unknown model \"%.64s\"",
                   req->model ? req->model : "");
        return NULL;
    }
    if (feat_cluster_mode(sv->cluster) == FEAT_CLUSTER_SINGLE) {
        *err = ERR(call, FEAT_ERR_STATE, "GetTrainingRows is for the instances of a cluster (cluster.mode)");
        return NULL;
    }
    rows_state_t *rs = feat_arena_calloc(call->arena, sizeof(*rs));
    if (!rs) {
        *err = FEAT_ERR_NOMEM;
        return NULL;
    }
    uint32_t model = (uint32_t)(mc - sv->conf.models);
    feat_cluster_label_partitions(sv->cluster, model, &rs->topic);
    *err = build_held(sv, model, req->from_ms, req->to_ms, NULL, &rs->h, &rs->ts, call->msg, sizeof(call->msg));
    if (*err) {
        free(rs->h.p);
        return NULL;
    }
    feat_arena_init(&rs->arena, 65536);
    return rs;
}

Featd__V1__Value *featd_svc_raw_pb(feat_arena_t *a, const feat_raw_t *r) {
    Featd__V1__Value *v = feat_arena_alloc(a, sizeof(*v));
    if (!v) return NULL;
    featd__v1__value__init(v);
    switch (r->type) {
    case FEAT_V_DOUBLE: v->kind_case = FEATD__V1__VALUE__KIND_DOUBLE_VALUE, v->double_value = r->v.f64; break;
    case FEAT_V_INT64: v->kind_case = FEATD__V1__VALUE__KIND_INT64_VALUE, v->int64_value = r->v.i64; break;
    case FEAT_V_BOOL: v->kind_case = FEATD__V1__VALUE__KIND_BOOL_VALUE, v->bool_value = r->v.b != 0; break;
    case FEAT_V_STRING:
        v->kind_case = FEATD__V1__VALUE__KIND_STRING_VALUE;
        if (!(v->string_value = feat_arena_strndup(a, r->v.str, r->len))) return NULL;
        break;
    default: break;
    }
    return v;
}

static feat_err_t rows_next(feat_rpc_call_t *call, void *state, feat_buf_t *out, int *more) {
    (void)call;
    rows_state_t *rs = state;
    *more = 0;
    if (rs->sent_first && rs->at >= rs->ts.n) return FEAT_OK;
    feat_arena_reset(&rs->arena);
    feat_arena_t *a = &rs->arena;
    Featd__V1__TrainingRows msg = FEATD__V1__TRAINING_ROWS__INIT;
    if (!rs->sent_first) {
        msg.label_topic = (char *)rs->topic;
        msg.partitions = feat_arena_alloc(a, (size_t)rs->h.n * sizeof(int32_t) + 1);
        if (!msg.partitions) return FEAT_ERR_NOMEM;
        for (int32_t p = 0; p < rs->h.n; p++)
            if (rs->h.p[p]) msg.partitions[msg.n_partitions++] = p;
        rs->sent_first = 1;
    }
    size_t n = rs->ts.n - rs->at < ROWS_PER_MSG ? rs->ts.n - rs->at : ROWS_PER_MSG, nf = rs->ts.nf;
    Featd__V1__TrainingRow *rows = feat_arena_alloc(a, n * sizeof(*rows) + 1);
    msg.rows = feat_arena_alloc(a, n * sizeof(void *) + 1);
    if (!rows || !msg.rows) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++, rs->at++) {
        Featd__V1__TrainingRow *r = &rows[i];
        featd__v1__training_row__init(r);
        r->entity_key = rs->ts.keys[rs->at];
        r->ts_ms = rs->ts.ts[rs->at];
        r->label = rs->ts.labels[rs->at];
        r->n_values = nf;
        if (!(r->values = feat_arena_alloc(a, nf * sizeof(void *) + 1))) return FEAT_ERR_NOMEM;
        for (size_t j = 0; j < nf; j++)
            if (!(r->values[j] = featd_svc_raw_pb(a, &rs->ts.rows[rs->at * nf + j]))) return FEAT_ERR_NOMEM;
        msg.rows[msg.n_rows++] = r;
    }
    if (featd_svc_pack(out, &msg.base) != FEAT_OK) return FEAT_ERR_NOMEM;
    *more = 1;
    return FEAT_OK;
}

static void rows_end(void *state) {
    rows_state_t *rs = state;
    feat_trainset_free(&rs->ts);
    free(rs->h.p);
    feat_arena_free(&rs->arena);
}

const feat_stream_ops_t featd_svc_training_rows_ops = {rows_begin, rows_next, rows_end};

/* ---- the trainer's gather ---------------------------------------------------------------------- */

typedef struct gather {
    feat_trainset_t *out;
    int32_t n;
    uint8_t *cover;             /* [n] answers that covered the partition */
    int first;                  /* the next message is an answer's first */
    const feat_trainset_cb_t *cb; /* the run's: cancel */
    char why[160];              /* a malformed answer */
} gather_t;

static int gather_msg(void *arg, const uint8_t *data, size_t len) {
    gather_t *g = arg;
    Featd__V1__TrainingRows *m = featd__v1__training_rows__unpack(NULL, len, data);
    if (!m) return snprintf(g->why, sizeof(g->why), "an answer that is not a TrainingRows"), 1;
    if (g->cb && g->cb->cancel && g->cb->cancel(g->cb->arg)) {
        featd__v1__training_rows__free_unpacked(m, NULL);
        return snprintf(g->why, sizeof(g->why), "cancelled"), 1;
    }
    feat_trainset_t *o = g->out;
    int stop = 0;
    if (g->first) {
        g->first = 0;
        for (size_t i = 0; i < m->n_partitions; i++)
            if (m->partitions[i] >= 0 && m->partitions[i] < g->n && g->cover[m->partitions[i]] < 255)
                g->cover[m->partitions[i]]++;
    }
    for (size_t i = 0; i < m->n_rows && !stop; i++) {
        const Featd__V1__TrainingRow *r = m->rows[i];
        if (r->n_values != o->nf) {
            snprintf(g->why, sizeof(g->why), "a row of %zu values for %zu features (another configuration?)",
                     r->n_values, o->nf);
            stop = 1;
            break;
        }
        if (feat_trainset_reserve(o)) {
            snprintf(g->why, sizeof(g->why), "out of memory");
            stop = 1;
            break;
        }
        feat_raw_t *row = o->rows + o->n * o->nf;
        for (size_t j = 0; j < o->nf && !stop; j++) {
            const Featd__V1__Value *v = r->values[j];
            switch (v->kind_case) {
            case FEATD__V1__VALUE__KIND_DOUBLE_VALUE: row[j] = feat_raw_double(v->double_value); break;
            case FEATD__V1__VALUE__KIND_INT64_VALUE: row[j] = feat_raw_int64(v->int64_value); break;
            case FEATD__V1__VALUE__KIND_BOOL_VALUE: row[j] = feat_raw_bool(v->bool_value); break;
            case FEATD__V1__VALUE__KIND_STRING_VALUE: {
                size_t sl = strlen(v->string_value);
                char *s = feat_arena_strndup(&o->arena, v->string_value, sl);
                if (!s) stop = 1;
                else row[j] = feat_raw_string(s, sl);
                break;
            }
            default: row[j] = feat_raw_missing(); o->missing++; break;
            }
        }
        char *key = stop ? NULL : feat_arena_strndup(&o->arena, r->entity_key, strlen(r->entity_key));
        if (!key) {
            snprintf(g->why, sizeof(g->why), "out of memory");
            stop = 1;
            break;
        }
        o->keys[o->n] = key;
        o->labels[o->n] = r->label;
        o->ts[o->n] = r->ts_ms;
        o->n++;
    }
    featd__v1__training_rows__free_unpacked(m, NULL);
    return stop;
}

/* Asks the owner of each label partition of model this instance does not
 * hold (one call per owner) for its rows. */
static feat_err_t ask_owners(feat_serve_t *sv, uint32_t model, int64_t from, int64_t to, gather_t *g, char *err,
                             size_t errlen) {
    feat_cluster_view_t *v = feat_cluster_view_acquire(sv->cluster);
    int np = feat_cluster_npeers(v);
    unsigned char *asked = calloc((size_t)np + 1, 1);
    feat_err_t rc = asked ? FEAT_OK : FEAT_ERR_NOMEM;
    char token[FEAT_TOKEN_MAX + 1];
    feat_auth_admin_token(sv->auth, token, sizeof(token));
    Featd__V1__GetTrainingRowsRequest req = FEATD__V1__GET_TRAINING_ROWS_REQUEST__INIT;
    req.model = (char *)sv->conf.models[model].name;
    req.from_ms = from;
    req.to_ms = to;
    uint8_t bytes[FEAT_MAX_NAME + 64];
    size_t len = featd__v1__get_training_rows_request__pack(&req, bytes);
    for (int32_t p = 0; !rc && p < g->n; p++) {
        int o = g->cover[p] ? -1 : feat_cluster_label_owner(sv->cluster, v, model, p);
        if (o < 0 || asked[o]) continue;
        asked[o] = 1;
        const char *addr = feat_cluster_peer_address(v, o);
        char msg[256] = "";
        g->first = 1;
        int code = sv->forward ? feat_forward_fetch(sv->forward, addr, "/featd.v1.AdminService/GetTrainingRows",
                                                    *token ? token : NULL, GATHER_WAIT_MS, bytes, len, gather_msg, g,
                                                    msg, sizeof(msg))
                               : 14;
        if (code || g->why[0]) {
            snprintf(err, errlen, "gathering the training set: %s answered %s: %s", addr,
                     code ? feat_grpc_code_name(code) : "badly", g->why[0] ? g->why : msg);
            rc = FEAT_ERR_UNAVAILABLE;
        }
    }
    free(asked);
    feat_cluster_view_release(sv->cluster, v);
    return rc;
}

/* One try of the build hook: this instance's rows, then every other owner's. */
static feat_err_t build_once(feat_serve_t *sv, uint32_t model, int64_t from, int64_t to, const feat_trainset_cb_t *cb,
                             feat_trainset_t *out, char *err, size_t errlen) {
    const feat_model_conf_t *mc = &sv->conf.models[model];
    for (size_t j = 0; mc->feats && j < mc->nfeatures; j++) {
        if (mc->feats[j].key < 0 || feat_cluster_mode(sv->cluster) != FEAT_CLUSTER_PARTITIONED) continue;
        /* Predict routes such a read by its own key; a training row would read it here, where it is not */
        snprintf(err, errlen, "model %s reads %s with the label's %s key, whose rows live on other instances: "
                 "training it in a partitioned cluster is not built yet", mc->name, mc->features[j],
                 mc->label_keys[mc->feats[j].key]);
        return FEAT_ERR_STATE;
    }
    held_t h;
    feat_err_t rc = build_held(sv, model, from, to, cb, &h, out, err, errlen);
    if (rc) {
        free(h.p);
        return rc;
    }
    gather_t g = {.out = out, .n = h.n, .cover = h.p, .cb = cb};
    if (feat_cluster_mode(sv->cluster) == FEAT_CLUSTER_PARTITIONED)
        rc = ask_owners(sv, model, from, to, &g, err, errlen);
    /* every partition exactly once: a missing one (restoring, or no owner) or a doubled one (moving) fails */
    char list[128] = "";
    size_t at = 0, bad = 0;
    int32_t first_bad = -1;
    for (int32_t p = 0; !rc && p < h.n; p++) {
        if (g.cover[p] == 1) continue;
        if (first_bad < 0) first_bad = p;
        bad++;
        if (at < sizeof(list) - 16) at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%d", at ? ", " : "", p);
    }
    if (!rc && bad) {
        const char *topic = "";
        feat_cluster_label_partitions(sv->cluster, model, &topic);
        snprintf(err, errlen, "label partition%s %s of %s %s; a training set needs every partition once",
                 bad > 1 ? "s" : "", list, topic,
                 g.cover[first_bad] ? "answered by two instances (a rebalance in progress)"
                                    : "held by no instance that answered (restoring or moving)");
        rc = FEAT_ERR_UNAVAILABLE;
    }
    free(h.p);
    if (rc) feat_trainset_free(out);
    return rc;
}

/* The models' build hook.  A rebalance moves partitions for a few seconds
 * (an eager one revokes everything first): a set that misses a partition
 * or reads one twice is tried again, BUILD_TRIES times, BUILD_WAIT_MS apart. */
static feat_err_t train_build(void *arg, uint32_t model, int64_t from, int64_t to, const feat_trainset_cb_t *cb,
                              feat_trainset_t *out, char *err, size_t errlen) {
    feat_err_t rc = FEAT_ERR_UNAVAILABLE;
    for (int k = 0; k < BUILD_TRIES && rc == FEAT_ERR_UNAVAILABLE; k++) {
        if (k) {
            feat_log(FEAT_LOG_INFO, "models", "%s: %s; trying again in %d s", ((feat_serve_t *)arg)->conf.models[model].name,
                     err, BUILD_WAIT_MS / 1000);
            for (int w = 0; w < BUILD_WAIT_MS / 100; w++) {
                if (cb && cb->cancel && cb->cancel(cb->arg)) return snprintf(err, errlen, "cancelled"), FEAT_ERR_UNAVAILABLE;
                feat_sleep_ms(100);
            }
        }
        rc = build_once(arg, model, from, to, cb, out, err, errlen);
    }
    return rc;
}

static int trainer_hook(void *arg, uint32_t model, char *who, size_t cap) {
    return feat_cluster_trainer(((feat_serve_t *)arg)->cluster, model, who, cap);
}

static feat_err_t publish_hook(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
    return feat_cluster_publish_model(((feat_serve_t *)arg)->cluster, key, klen, val, vlen);
}

static void served_hook(void *arg, uint32_t model, uint64_t champion, uint64_t challenger) {
    feat_cluster_set_served(((feat_serve_t *)arg)->cluster, model, champion, challenger);
}

void feat_serve_models_cluster(feat_serve_t *sv, feat_models_cluster_t *out) {
    memset(out, 0, sizeof(*out));
    if (feat_cluster_mode(sv->cluster) == FEAT_CLUSTER_SINGLE) return;
    out->arg = sv;
    out->self = feat_cluster_instance_id(sv->cluster);
    out->trainer = trainer_hook;
    out->build = train_build;
    out->publish = publish_hook;
    out->served = served_hook;
}

void feat_serve_models_record(void *models, const void *key, size_t klen, const void *val, size_t vlen) {
    char err[256] = "";
    feat_err_t rc = feat_models_import(models, key, klen, val, vlen, err, sizeof(err));
    if (rc == FEAT_ERR_STATE) /* aliases ahead of their version: kept until it arrives */
        feat_log(FEAT_LOG_WARN, "models", "%s", err);
    else if (rc == FEAT_ERR_NOT_FOUND)
        feat_log(FEAT_LOG_INFO, "models", "a record of cluster.models_topic was not applied: %s", err);
    else if (rc)
        feat_log(FEAT_LOG_ERROR, "models", "a record of cluster.models_topic was not applied: %s", err);
}
