/*
 * tests/fuzz/fuzz_decode.h — what fuzz_event_proto and fuzz_event_json share:
 * the decoder's config (tables and models sharing and owning topics, small
 * limits so the oversize paths are reachable), the input layout, and the
 * invariants every decoded result must meet.
 *
 * Input: byte 0 picks the message's surroundings, the rest is the Kafka value.
 *   bits 0-1  topic: user_events (one table), shared (two tables),
 *             churn_labels (one model), multi (two models)
 *   bit 2     the Kafka message key "kafka1" is set
 *   bit 3     the content-type header is set (the target's own format)
 * Seed files start with '0'..'?' so JSON seeds stay text.
 */
#ifndef FEAT_TESTS_FUZZ_DECODE_H
#define FEAT_TESTS_FUZZ_DECODE_H

#include <math.h>

#include "fuzz_util.h"
#include "ingest/decode.h"

#define FUZZ_NOW 1732406400000LL

static const char *const fuzz_decode_cfg_text =
    "[table user]\n"
    "entity = user_id\n"
    "topic = user_events\n"
    "feature.clicks = int64\n"
    "feature.ctr = double\n"
    "feature.country = string\n"
    "feature.premium = bool\n"
    "[table a]\ntopic = shared\nfeature.x = double\nfeature.s = string\n"
    "[table b]\ntopic = shared\nfeature.x = double\n"
    "[model churn]\ntable = user\nlabel_topic = churn_labels\n"
    "[model m1]\ntable = user\nlabel_topic = multi\n"
    "[model m2]\ntable = user\nlabel_topic = multi\n"
    "[ingest]\nmax_string_bytes = 16\nmax_key_bytes = 8\nmax_value_bytes = 4KiB\n"
    "max_future = 1h\nmax_age = 3650d\n";

static const char *const fuzz_topics[4] = {"user_events", "shared", "churn_labels", "multi"};

static feat_config_t *fuzz_cfg;
static feat_decoder_t *fuzz_dec;

static inline void fuzz_decode_init(void) {
    char err[256];
    fuzz_cfg = feat_config_parse(fuzz_decode_cfg_text, strlen(fuzz_decode_cfg_text), err, sizeof(err));
    FUZZ_CHECK(fuzz_cfg != NULL, "%s", err);
    feat_decode_conf_t dc;
    feat_decode_conf_from_config(fuzz_cfg, &dc);
    fuzz_dec = feat_decoder_new(&dc);
    FUZZ_CHECK(fuzz_dec != NULL, "decoder");
}

static inline int fuzz_valid_str(const char *s, size_t n) {
    return s && !memchr(s, 0, n) && feat_utf8_valid(s, n);
}

/* What any result of feat_decode must satisfy, whatever the input. */
static inline void fuzz_check_decoded(const char *topic, int rc, const feat_decoded_t *o) {
    const feat_config_t *c = fuzz_cfg;
    FUZZ_CHECK(rc == (int)o->kind, "return %d, kind %d", rc, (int)o->kind);
    if (o->kind == FEAT_DEC_DEAD) {
        FUZZ_CHECK((unsigned)o->reason < FEAT_DL_COUNT, "reason %d", (int)o->reason);
        FUZZ_CHECK(memchr(o->detail, 0, sizeof(o->detail)) != NULL, "detail not terminated");
        FUZZ_CHECK(o->detail[0] != 0, "dead letter %s without a detail", feat_dl_reason_name(o->reason));
        return;
    }
    FUZZ_CHECK(o->kind == FEAT_DEC_EVENT || o->kind == FEAT_DEC_LABEL, "kind %d", (int)o->kind);
    FUZZ_CHECK(o->klen >= 1 && (int64_t)o->klen <= c->ingest_max_key, "key length %zu", o->klen);
    FUZZ_CHECK(fuzz_valid_str(o->key, o->klen), "key not valid UTF-8 without NUL");
    FUZZ_CHECK(o->ts != 0 && o->ts <= FUZZ_NOW + c->ingest_max_future_ms && o->ts >= FUZZ_NOW - c->ingest_max_age_ms,
               "ts %lld", (long long)o->ts);
    if (o->kind == FEAT_DEC_LABEL) {
        FUZZ_CHECK(o->model < c->nmodels, "model %u", o->model);
        FUZZ_CHECK(strcmp(c->models[o->model].label_topic, topic) == 0, "model %s not fed by %s",
                   c->models[o->model].name, topic);
        FUZZ_CHECK(isfinite(o->label), "label %g", o->label);
        return;
    }
    FUZZ_CHECK(o->table < c->ntables, "table %u", o->table);
    const feat_table_conf_t *t = &c->tables[o->table];
    FUZZ_CHECK(strcmp(t->topic, topic) == 0, "table %s not fed by %s", t->name, topic);
    FUZZ_CHECK(o->n >= 1 && o->n <= t->nfeatures, "n %zu", o->n);
    for (size_t i = 0; i < o->n; i++) {
        FUZZ_CHECK(o->fidx[i] < t->nfeatures, "fidx %u", o->fidx[i]);
        for (size_t j = 0; j < i; j++) FUZZ_CHECK(o->fidx[j] != o->fidx[i], "feature %u twice", o->fidx[i]);
        const feat_value_t *v = &o->vals[i];
        FUZZ_CHECK(v->type == t->features[o->fidx[i]].type, "value type %d", v->type);
        if (v->type == FEAT_FT_DOUBLE) FUZZ_CHECK(isfinite(v->v.d), "double %g", v->v.d);
        if (v->type == FEAT_FT_BOOL) FUZZ_CHECK(v->v.b == 0 || v->v.b == 1, "bool %d", v->v.b);
        if (v->type == FEAT_FT_STRING) {
            FUZZ_CHECK((int64_t)v->slen <= c->ingest_max_string, "string length %u", v->slen);
            FUZZ_CHECK(v->slen == 0 || fuzz_valid_str(v->v.s, v->slen), "string not valid UTF-8 without NUL");
        }
    }
}

/* Decodes value val[0..vlen) (a malloc'd copy of the input after byte 0, so
 * ASan sees any over-read) in the surroundings sel picks; checks the result. */
static inline int fuzz_decode_one(uint8_t sel, const uint8_t *val, size_t vlen, const char *ctype,
                                  const char **topic, feat_decoded_t *out) {
    *topic = fuzz_topics[sel & 3];
    const char *key = (sel & 4) ? "kafka1" : NULL;
    const char *ct = (sel & 8) ? ctype : NULL;
    int rc = feat_decode(fuzz_dec, *topic, key, key ? strlen(key) : 0, vlen ? val : NULL, vlen, ct,
                         ct ? strlen(ct) : 0, FUZZ_NOW, out);
    fuzz_check_decoded(*topic, rc, out);
    return rc;
}

#endif
