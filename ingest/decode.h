/*
 * ingest/decode.h — Kafka message → feature event, label, or dead letter.
 *
 * Pure code: no librdkafka, no store.  The consumer hands each message's
 * topic, key, value and content-type header to feat_decode(); the result says
 * what to write.  Every way an input can be wrong maps to one reason code
 * (feat_dl_reason_t) and a one-line detail; nothing in the input can crash it.
 *
 * Formats: protobuf featd.v1.FeatureEvent / LabelEvent, or JSON
 *   {"table": "user", "key": "u42", "ts": 1732406400000, "features": {...}}
 *   {"model": "churn", "key": "u42", "ts": 1732406400000, "label": 1}
 *   {"model": "fraud", "key": "u42", "ts": 1732406400000, "label": 1, "keys": {"merchant_id": "m7"}}
 * chosen by the content-type header (application/json, application/x-protobuf,
 * application/protobuf, application/vnd.google.protobuf), else detected:
 * a value whose first non-blank byte is '{' is JSON, anything else protobuf.
 * The entity key is the event's "key" (or the table's entity name in JSON),
 * else the Kafka message key.  "ts" is milliseconds since the epoch or an
 * RFC 3339 string.  "table"/"model" may be left out when the topic feeds
 * exactly one table/model.
 *
 * Present but empty is not absent.  In JSON, "key": "" (or "key": null, or
 * any value that is neither a string nor an integer) is a dead letter
 * (empty_key), not a fall-back to the Kafka key; "table": "" or a
 * non-string "table" is unknown_table, and "model" likewise unknown_model.
 * In protobuf an empty string and an absent field are the same on the wire
 * (proto3 writes no default), so there an empty table, model or key IS
 * absent: the topic's only table or model, the Kafka message key.
 *
 * Every stored string is valid UTF-8: an entity key (the Kafka message key
 * too, when it is the one used), table, model or feature name or string
 * value that is not is a dead letter, invalid_utf8, in either format; so is
 * JSON text with invalid UTF-8 in a string, or a \u escape of a lone
 * surrogate ("\ud800"), which no UTF-8 text can hold.
 *
 * A label carries one more key for each entity in its model's label_keys:
 * JSON "keys" (an object: entity name → a non-empty string or an integer),
 * protobuf LabelEvent.keys (map<string,string>).  One missing is a dead
 * letter (missing_label_key); an empty one empty_key (JSON "keys" not an
 * object, or a value of another type: wrong_type); each is checked like the
 * entity key (oversize, invalid_utf8, bad_key).  Entities the model does
 * not need are ignored.
 *
 * A feat_decoder_t is owned by one thread; the decoded result points into the
 * message and the decoder's scratch and is valid until the next feat_decode.
 */
#ifndef FEAT_INGEST_DECODE_H
#define FEAT_INGEST_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "store/store.h"

/* Values and names are stable (metrics, dead letters, dashboards): new
 * reasons go at the end, before FEAT_DL_COUNT. */
typedef enum feat_dl_reason {
    FEAT_DL_UNDECODABLE = 0,   /* not JSON / not protobuf */
    FEAT_DL_UNKNOWN_TABLE,     /* also: "table" present but empty or not a string (JSON) */
    FEAT_DL_UNKNOWN_FEATURE,
    FEAT_DL_UNKNOWN_MODEL,     /* also: "model" present but empty or not a string (JSON) */
    FEAT_DL_WRONG_TYPE,
    FEAT_DL_MISSING_KEY,       /* no key in the event and no Kafka message key */
    FEAT_DL_BAD_KEY,           /* key with a NUL byte */
    FEAT_DL_MISSING_TIMESTAMP,
    FEAT_DL_BAD_TIMESTAMP,     /* unparseable or absurd (too old / in the future) */
    FEAT_DL_NON_FINITE,        /* NaN or ±Inf */
    FEAT_DL_OVERSIZE,          /* message, key or string value over its limit */
    FEAT_DL_NO_FEATURES,
    FEAT_DL_DUPLICATE_FEATURE,
    FEAT_DL_EMPTY_KEY,         /* JSON "key" (or its entity-name alias) present but empty, or
                                  neither a string nor an integer */
    FEAT_DL_INVALID_UTF8,      /* a key, table, model or feature name, or string value, or the
                                  JSON text, is not valid UTF-8 (common/utf8.h) */
    FEAT_DL_MISSING_LABEL_KEY, /* a label without one of its model's label_keys in "keys" */
    FEAT_DL_COUNT
} feat_dl_reason_t;

/* Stable short name used in dead letters and metric labels ("unknown_table"). */
const char *feat_dl_reason_name(feat_dl_reason_t r);

typedef enum feat_dec_kind {
    FEAT_DEC_EVENT = 1,
    FEAT_DEC_LABEL = 2,
    FEAT_DEC_DEAD = 3
} feat_dec_kind_t;

typedef struct feat_decoded {
    feat_dec_kind_t kind;
    /* event or label */
    const char *key;            /* entity key, klen bytes, valid UTF-8 without NUL */
    size_t klen;
    int64_t ts;                 /* event time, ms */
    /* event */
    uint32_t table;             /* index into the conf's tables */
    size_t n;                   /* features in this event */
    uint16_t fidx[FEAT_MAX_FEATURES];      /* feature index in the table */
    feat_value_t vals[FEAT_MAX_FEATURES];
    /* label */
    uint32_t model;             /* index into the conf's models */
    double label;
    size_t nx;                  /* the model's nlabel_keys: xkeys[i] is the key of label_keys[i] */
    const char *xkeys[FEAT_MAX_LABEL_KEYS];
    size_t xklens[FEAT_MAX_LABEL_KEYS];
    /* dead letter */
    feat_dl_reason_t reason;
    char detail[256];
} feat_decoded_t;

typedef struct feat_decoder feat_decoder_t;

/* What a decoder needs: the declared tables and models (routing by topic,
 * names, feature types) and the [ingest] limits.  The arrays are borrowed and
 * must outlive the decoder; the struct itself is copied. */
typedef struct feat_decode_conf {
    const feat_table_conf_t *tables; /* [ntables]: each one's topic, name, entity and features */
    size_t ntables;
    const feat_model_conf_t *models; /* [nmodels]: each one's label_topic and name */
    size_t nmodels;
    int64_t max_key;                 /* bytes of an entity key (ingest.max_key_bytes) */
    int64_t max_value;               /* bytes of a message value (ingest.max_value_bytes) */
    int64_t max_string;              /* bytes of a string feature value (ingest.max_string_bytes) */
    int64_t max_future_ms;           /* event time at most this far past now (ingest.max_future) */
    int64_t max_age_ms;              /* event time at most this far before now (ingest.max_age) */
} feat_decode_conf_t;

/* Fills *conf from the config's tables, models and [ingest] limits; the
 * arrays stay cfg's. */
void feat_decode_conf_from_config(const feat_config_t *cfg, feat_decode_conf_t *conf);

/* NULL on allocation failure. */
feat_decoder_t *feat_decoder_new(const feat_decode_conf_t *conf);
void feat_decoder_destroy(feat_decoder_t *d); /* NULL is fine */

/* Decodes one message.  content_type may be NULL (detect).  Always fills
 * out->kind; returns out->kind. */
feat_dec_kind_t feat_decode(feat_decoder_t *d, const char *topic, const void *key, size_t klen, const void *val,
                            size_t vlen, const char *content_type, size_t ctlen, int64_t now_ms,
                            feat_decoded_t *out);


#endif
