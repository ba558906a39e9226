/*
 * serve/export.c — AdminService.ExportTrainingSet, behind featctl export:
 * a point-in-time training set for a time range, streamed 512 rows a message.
 *
 * A model's: its labels with from <= label time <= to, each with the model's
 * features as of its label time — the set a retrain trains on
 * (feat_trainset_build; in a cluster the trainer's gathered build, every
 * label partition from its owner).  A table's: every event of the table with
 * from <= event time <= to, each with the table's features as of its event
 * time, read with the point-in-time reader GetHistoricalFeatures uses (in a
 * cluster, the partitions this instance holds).  The set is built on the
 * server before the first message (a model's as for training; a table's as
 * its (entity, time) pairs, the values read a message at a time); the client
 * writes each message as it comes.
 */
#include "common/clock.h"
#include "serve/svc.h"
#include "store/store.h"
#include "train/models.h"
#include "train/trainset.h"

#include <stdlib.h>
#include <string.h>

#define EXPORT_ROWS_PER_MSG 512

static void export_end(void *state);

typedef struct export_state {
    /* a model's set, or a table's (entity, time) pairs */
    feat_trainset_t ts;
    const feat_table_t *t;
    uint16_t *fidx;
    size_t nf;
    feat_pit_reader_t *reader;
    feat_value_t *vals;
    feat_buf_t strings;
    char **keys;                /* table: the pairs (keys malloc'd) */
    int64_t *times;
    size_t n, cap;
    const char *const *names;   /* the features' names */
    size_t at;
    int sent_first;
    int oom;                    /* the scan ran out of memory (it stops; the export fails) */
    feat_arena_t arena;         /* one message's */
    int64_t from, to;
} export_state_t;

static int add_pair(void *arg, const char *key, size_t klen, int64_t ts, int32_t partition, int64_t offset,
                    const feat_value_t *vals, size_t n) {
    (void)partition, (void)offset, (void)vals, (void)n;
    export_state_t *es = arg;
    if (ts < es->from || ts > es->to) return 0;
    if (es->n == es->cap) {
        size_t cap = es->cap ? 2 * es->cap : 1024;
        char **k = realloc(es->keys, cap * sizeof(char *));
        if (k) es->keys = k;
        int64_t *t = realloc(es->times, cap * sizeof(int64_t));
        if (t) es->times = t;
        if (!k || !t) return es->oom = 1;
        es->cap = cap;
    }
    if (!(es->keys[es->n] = strndup(key, klen))) return es->oom = 1;
    es->times[es->n++] = ts;
    return 0;
}

static void *export_begin(feat_rpc_call_t *call, feat_err_t *err) {
    feat_serve_t *sv = call->app;
    Featd__V1__ExportTrainingSetRequest *req =
        featd_svc_unpack(call, &featd__v1__export_training_set_request__descriptor, err);
    if (!req) return NULL;
    int has_model = req->model && *req->model, has_table = req->table && *req->table;
    if (has_model == has_table) {
        *err = ERR(call, FEAT_ERR_INVALID, "give a model or a table");
        return NULL;
    }
    export_state_t *es = feat_arena_calloc(call->arena, sizeof(*es));
    if (!es) {
        *err = FEAT_ERR_NOMEM;
        return NULL;
    }
    es->from = req->from_ms;
    es->to = req->to_ms ? req->to_ms : feat_now_ms();
    if (es->from > es->to) {
        *err = ERR(call, FEAT_ERR_INVALID, "from_ms %lld is after to_ms %lld", (long long)es->from, (long long)es->to);
        return NULL;
    }
    feat_arena_init(&es->arena, 65536);
    if (has_model) {
        const feat_model_conf_t *mc = feat_serve_model(sv, req->model);
        if (!mc) {
            *err = ERR(call, FEAT_ERR_NOT_FOUND, "unknown model \"%.64s\"", req->model);
            feat_arena_free(&es->arena);
            return NULL;
        }
        feat_models_cluster_t cl;
        feat_serve_models_cluster(sv, &cl);
        feat_trainset_cb_t cb = {0};
        *err = cl.build ? cl.build(cl.arg, (uint32_t)(mc - sv->conf.models), es->from, es->to, &cb, &es->ts, call->msg,
                                   sizeof(call->msg))
                        : feat_trainset_build(sv->st, mc, es->from, es->to, &cb, &es->ts, call->msg, sizeof(call->msg));
        if (!*err && cl.build) *err = feat_trainset_sort(&es->ts);
        if (*err) {
            feat_arena_free(&es->arena);
            return NULL;
        }
        es->n = es->ts.n;
        es->nf = es->ts.nf;
        es->names = (const char *const *)mc->features;
        return es;
    }
    es->t = feat_store_table(sv->st, req->table);
    if (!es->t) {
        *err = ERR(call, FEAT_ERR_NOT_FOUND, "unknown table \"%.64s\"", req->table);
        feat_arena_free(&es->arena);
        return NULL;
    }
    const feat_table_conf_t *tc = es->t->conf;
    es->nf = tc->nfeatures;
    es->fidx = malloc((es->nf + 1) * sizeof(uint16_t));
    es->vals = malloc((es->nf + 1) * sizeof(feat_value_t));
    const char **names = feat_arena_alloc(call->arena, (es->nf + 1) * sizeof(char *));
    es->reader = feat_pit_reader_new(sv->st);
    *err = es->fidx && es->vals && names && es->reader ? feat_store_scan_offline(sv->st, es->t, add_pair, es)
                                                       : FEAT_ERR_NOMEM;
    if (!*err && es->oom) *err = FEAT_ERR_NOMEM;
    for (size_t j = 0; j < es->nf && names; j++) es->fidx[j] = (uint16_t)j, names[j] = tc->features[j].name;
    es->names = names;
    if (*err) {
        ERR(call, *err, "reading table %s: %s", tc->name, feat_err_str(*err));
        export_end(es); /* the rpc layer calls end only for a stream that began */
        return NULL;
    }
    return es;
}

static feat_err_t export_next(feat_rpc_call_t *call, void *state, feat_buf_t *out, int *more) {
    export_state_t *es = state;
    *more = 0;
    if (es->sent_first && es->at >= es->n) return FEAT_OK;
    feat_arena_reset(&es->arena);
    feat_arena_t *a = &es->arena;
    Featd__V1__TrainingRows msg = FEATD__V1__TRAINING_ROWS__INIT;
    if (!es->sent_first) {
        msg.features = (char **)es->names;
        msg.n_features = es->nf;
        msg.total_rows = es->n;
        es->sent_first = 1;
    }
    size_t n = es->n - es->at < EXPORT_ROWS_PER_MSG ? es->n - es->at : EXPORT_ROWS_PER_MSG, nf = es->nf;
    Featd__V1__TrainingRow *rows = feat_arena_alloc(a, n * sizeof(*rows) + 1);
    msg.rows = feat_arena_alloc(a, n * sizeof(void *) + 1);
    if (!rows || !msg.rows) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < n; i++, es->at++) {
        Featd__V1__TrainingRow *r = &rows[i];
        featd__v1__training_row__init(r);
        if (!(r->values = feat_arena_alloc(a, nf * sizeof(void *) + 1))) return FEAT_ERR_NOMEM;
        r->n_values = nf;
        if (!es->t) {
            r->entity_key = es->ts.keys[es->at];
            r->ts_ms = es->ts.ts[es->at];
            r->label = es->ts.labels[es->at];
            for (size_t j = 0; j < nf; j++)
                if (!(r->values[j] = featd_svc_raw_pb(a, &es->ts.rows[es->at * nf + j]))) return FEAT_ERR_NOMEM;
        } else {
            r->entity_key = es->keys[es->at];
            r->ts_ms = es->times[es->at];
            feat_err_t rc = feat_pit_read(es->reader, es->t, r->entity_key, strlen(r->entity_key), r->ts_ms, es->fidx,
                                          nf, 1, es->vals, &es->strings);
            if (rc) return ERR(call, rc, "point-in-time read failed for row %zu", es->at);
            for (size_t j = 0; j < nf; j++) {
                feat_raw_t raw = feat_raw_from_value(&es->vals[j]);
                if (!(r->values[j] = featd_svc_raw_pb(a, &raw))) return FEAT_ERR_NOMEM;
            }
        }
        msg.rows[msg.n_rows++] = r;
    }
    if (featd_svc_pack(out, &msg.base) != FEAT_OK) return FEAT_ERR_NOMEM;
    *more = 1;
    return FEAT_OK;
}

static void export_end(void *state) {
    export_state_t *es = state;
    feat_trainset_free(&es->ts);
    for (size_t i = 0; i < es->n && es->keys; i++) free(es->keys[i]);
    free(es->keys);
    free(es->times);
    free(es->fidx);
    free(es->vals);
    feat_buf_free(&es->strings);
    feat_pit_reader_destroy(es->reader);
    feat_arena_free(&es->arena);
}

const feat_stream_ops_t featd_svc_export_ops = {export_begin, export_next, export_end};
