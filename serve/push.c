/*
 * serve/push.c — FeatureService.Push: feature events from a service that
 * does not speak Kafka.
 *
 * Each event is encoded as the featd.v1.FeatureEvent ingest would read from
 * its table's topic and checked with ingest's own decoder (the same dead-
 * letter reasons, limits and UTF-8 rules); a valid one is produced to the
 * topic, keyed by its entity key, with the cluster's partitioner.  The reply
 * comes once the broker acknowledged every produced event, or the call's
 * deadline (at most PUSH_WAIT_MS) passed.  featd applies them when its
 * consumer reads them back, like any other producer's: the log stays the one
 * source of truth, so exactly once, replay and the cluster's routing hold
 * unchanged.
 */
#include "common/clock.h"
#include "featd/v1/feature_service.pb-c.h"
#include "ingest/decode.h"
#include "ingest/producer.h"
#include "serve/svc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUSH_WAIT_MS 10000

/* The table an event names (or the request's), as an index into the decode configuration; -1 when none. */
static long table_of(const feat_decode_conf_t *dc, const char *name) {
    for (size_t t = 0; name && *name && t < dc->ntables; t++)
        if (!strcmp(dc->tables[t].name, name)) return (long)t;
    return -1;
}

static feat_err_t reject(feat_rpc_call_t *call, Featd__V1__PushResponse *res, size_t *cap, uint32_t index,
                         const char *reason, const char *detail) {
    Featd__V1__PushRejected **r = featd_svc_room(call->arena, res->rejected, res->n_rejected, cap, 8);
    Featd__V1__PushRejected *x = feat_arena_alloc(call->arena, sizeof(*x));
    if (!r || !x) return FEAT_ERR_NOMEM;
    featd__v1__push_rejected__init(x);
    x->index = index;
    x->reason = (char *)reason;
    x->detail = feat_arena_strndup(call->arena, detail, strlen(detail));
    res->rejected = r;
    r[res->n_rejected++] = x;
    return x->detail ? FEAT_OK : FEAT_ERR_NOMEM;
}

feat_err_t featd_svc_push(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_serve_t *sv = call->app;
    feat_err_t err;
    Featd__V1__PushRequest *req = featd_svc_unpack(call, &featd__v1__push_request__descriptor, &err);
    if (!req) return err;
    size_t n = req->n_events;
    if (!n) return ERR(call, FEAT_ERR_INVALID, "events is empty");
    if ((int64_t)n > sv->conf.max_keys)
        return ERR(call, FEAT_ERR_INVALID, "too many events: %zu > serve.max_keys = %lld", n, (long long)sv->conf.max_keys);
    if (!sv->push || !sv->decode) return ERR(call, FEAT_ERR_UNAVAILABLE, "Push needs Kafka, and featd runs without it");
    const feat_decode_conf_t *dc = sv->decode;
    feat_decoder_t *dec = feat_decoder_new(dc);
    feat_decoded_t *d = malloc(sizeof(*d));
    const char **topics = feat_arena_alloc(call->arena, n * sizeof(char *));
    const char **keys = feat_arena_alloc(call->arena, n * sizeof(char *));
    size_t *klens = feat_arena_alloc(call->arena, n * sizeof(size_t)), *vlens = feat_arena_alloc(call->arena, n * sizeof(size_t));
    const void **vals = feat_arena_alloc(call->arena, n * sizeof(void *));
    uint32_t *index = feat_arena_alloc(call->arena, n * sizeof(uint32_t));
    feat_err_t *results = feat_arena_alloc(call->arena, n * sizeof(feat_err_t));
    const char **why = feat_arena_alloc(call->arena, n * sizeof(char *));
    Featd__V1__PushResponse res = FEATD__V1__PUSH_RESPONSE__INIT;
    size_t cap = 0, m = 0;
    int64_t now = feat_now_ms();
    err = dec && d && topics && keys && klens && vlens && vals && index && results && why ? FEAT_OK : FEAT_ERR_NOMEM;
    for (size_t i = 0; !err && i < n; i++) {
        Featd__V1__FeatureEvent ev = *req->events[i];
        long t = table_of(dc, ev.table && *ev.table ? ev.table : req->table);
        if (t < 0) {
            char detail[200];
            snprintf(detail, sizeof(detail), "no table \"%.64s\"", ev.table && *ev.table ? ev.table : req->table);
            err = reject(call, &res, &cap, (uint32_t)i, feat_dl_reason_name(FEAT_DL_UNKNOWN_TABLE), detail);
            continue;
        }
        ev.table = (char *)dc->tables[t].name;
        if (!ev.ts) ev.ts = now;
        size_t len = protobuf_c_message_get_packed_size(&ev.base);
        uint8_t *buf = feat_arena_alloc(call->arena, len + 1);
        if (!buf) {
            err = FEAT_ERR_NOMEM;
            break;
        }
        protobuf_c_message_pack(&ev.base, buf);
        const char *topic = dc->tables[t].topic, *ct = "application/x-protobuf";
        if (feat_decode(dec, topic, NULL, 0, buf, len, ct, strlen(ct), now, d) != FEAT_DEC_EVENT) {
            err = reject(call, &res, &cap, (uint32_t)i, feat_dl_reason_name(d->reason), d->detail);
            continue;
        }
        topics[m] = topic;
        keys[m] = feat_arena_strndup(call->arena, d->key, d->klen); /* d's key points into buf or dec */
        klens[m] = d->klen;
        vals[m] = buf;
        vlens[m] = len;
        index[m++] = (uint32_t)i;
        if (!keys[m - 1]) err = FEAT_ERR_NOMEM;
    }
    feat_decoder_destroy(dec);
    free(d);
    if (!err && m) {
        int64_t left = call->deadline_ms > 0 ? call->deadline_ms - feat_now_ms() : PUSH_WAIT_MS;
        int wait = left < 0 ? 0 : left > PUSH_WAIT_MS ? PUSH_WAIT_MS : (int)left;
        feat_producer_send_wait(sv->push, m, topics, keys, klens, vals, vlens, "application/x-protobuf", wait, results,
                                why);
        for (size_t j = 0; !err && j < m; j++) {
            if (results[j] == FEAT_OK) {
                res.accepted++;
                continue;
            }
            char detail[200];
            snprintf(detail, sizeof(detail), "produced to %s, but %s", topics[j],
                     results[j] == FEAT_ERR_TIMEOUT ? "the broker did not acknowledge it before the deadline (it may "
                                                      "still arrive)"
                                                    : why[j]);
            err = reject(call, &res, &cap, index[j], "not_acknowledged", detail);
        }
    }
    if (err) return ERR(call, err, "Push failed: %s", feat_err_str(err));
    return featd_svc_pack(resp, &res.base);
}
