/*
 * ingest/decode.c — see decode.h.
 *
 * The protobuf path is a small zero-copy reader of the wire format for
 * FeatureEvent and LabelEvent (field numbers from proto/featd/v1/event.proto);
 * it allocates nothing and sees string lengths exactly, so a NUL inside a
 * key is caught rather than truncated.  tests/unit/test_decode.c checks it
 * against protobuf-c's generated packer.
 */
#include "ingest/decode.h"
#include "common/json.h"
#include "common/pbwire.h"
#include "common/timefmt.h"
#include "common/utf8.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[FEAT_DL_COUNT] = {
    "undecodable", "unknown_table", "unknown_feature", "unknown_model", "wrong_type",
    "missing_key", "bad_key", "missing_timestamp", "bad_timestamp", "non_finite",
    "oversize", "no_features", "duplicate_feature", "empty_key", "invalid_utf8", "missing_label_key"};

const char *feat_dl_reason_name(feat_dl_reason_t r) {
    return (unsigned)r < FEAT_DL_COUNT ? reason_names[r] : "unknown";
}

typedef struct route {
    const char *topic;
    uint32_t tables[8];   /* tables fed by this topic (first 8; more is refused at start) */
    size_t ntables;
    uint32_t models[8];
    size_t nmodels;
} route_t;

/* A raw (not yet typed) feature from either format. */
typedef struct raw_feat {
    const char *name;
    size_t nlen;
    int kind;             /* RAW_* */
    int escaped_name;
    union { double d; int64_t i; int b; struct { const char *p; size_t n; } s; } v;
    int json_tok;         /* JSON: value token index */
} raw_feat_t;

enum { RAW_NONE = 0, RAW_DOUBLE, RAW_INT, RAW_BOOL, RAW_STRING, RAW_JSON };

struct feat_decoder {
    feat_decode_conf_t conf;  /* a copy; its arrays are the caller's */
    route_t *routes;
    size_t nroutes;
    feat_json_tok_t *toks;
    size_t ntoks;
    raw_feat_t *raw;
    size_t nraw_cap;
    feat_buf_t scratch;   /* unescaped strings; capacity reserved per message */
};

void feat_decode_conf_from_config(const feat_config_t *cfg, feat_decode_conf_t *conf) {
    *conf = (feat_decode_conf_t){
        .tables = cfg->tables, .ntables = cfg->ntables, .models = cfg->models, .nmodels = cfg->nmodels,
        .max_key = cfg->ingest_max_key, .max_value = cfg->ingest_max_value, .max_string = cfg->ingest_max_string,
        .max_future_ms = cfg->ingest_max_future_ms, .max_age_ms = cfg->ingest_max_age_ms,
    };
}

feat_decoder_t *feat_decoder_new(const feat_decode_conf_t *conf) {
    feat_decoder_t *d = calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->conf = *conf;
    size_t maxr = conf->ntables + conf->nmodels;
    d->routes = calloc(maxr ? maxr : 1, sizeof(route_t));
    d->nraw_cap = FEAT_MAX_FEATURES + 1;
    d->raw = calloc(d->nraw_cap, sizeof(raw_feat_t));
    d->ntoks = 2 * (FEAT_MAX_FEATURES + 1) + 64;
    d->toks = calloc(d->ntoks, sizeof(feat_json_tok_t));
    if (!d->routes || !d->raw || !d->toks) {
        feat_decoder_destroy(d);
        return NULL;
    }
    for (size_t i = 0; i < conf->ntables + conf->nmodels; i++) {
        int is_table = i < conf->ntables;
        const char *topic = is_table ? conf->tables[i].topic : conf->models[i - conf->ntables].label_topic;
        route_t *r = NULL;
        for (size_t k = 0; k < d->nroutes; k++)
            if (strcmp(d->routes[k].topic, topic) == 0) r = &d->routes[k];
        if (!r) {
            r = &d->routes[d->nroutes++];
            r->topic = topic;
        }
        if (is_table && r->ntables < 8) r->tables[r->ntables++] = (uint32_t)i;
        if (!is_table && r->nmodels < 8) r->models[r->nmodels++] = (uint32_t)(i - conf->ntables);
    }
    return d;
}

void feat_decoder_destroy(feat_decoder_t *d) {
    if (!d) return;
    free(d->routes);
    free(d->raw);
    free(d->toks);
    feat_buf_free(&d->scratch);
    free(d);
}

/* Makes out a dead letter for reason r, fmt its detail; returns FEAT_DEC_DEAD.
 * pb_parse, json_parse, check_key, check_ts, bad_name and type_feature return
 * 0 to go on, or 1 once they made out a dead letter this way. */
static feat_dec_kind_t dead(feat_decoded_t *out, feat_dl_reason_t r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static feat_dec_kind_t dead(feat_decoded_t *out, feat_dl_reason_t r, const char *fmt, ...) {
    out->kind = FEAT_DEC_DEAD;
    out->reason = r;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
    va_end(ap);
    return FEAT_DEC_DEAD;
}

/* printable, bounded rendering of input bytes for details */
static const char *show(const char *s, size_t n, char *buf, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"') buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    if (n && o + 5 >= cap && cap > 4) memcpy(buf + cap - 4, "...", 4);
    else buf[o] = 0;
    return buf;
}

/* ---- protobuf wire reader: common/pbwire.h ---- */

typedef feat_pb_t pb_t;
typedef feat_pb_field_t pb_field_t;
#define pb_next feat_pb_next

typedef struct msg_fields {
    const char *name; size_t nlen; int has_name;   /* table or model */
    const char *key; size_t klen; int has_key;
    int64_t ts; int has_ts;
    double label; int has_label;
    size_t nfeat;                 /* events: features in d->raw */
    size_t nxkeys;                /* labels: "keys" entries in d->raw (name = entity, RAW_STRING or RAW_NONE) */
} msg_fields_t;

/* Parses a Value message into rf (1; 0 when it does not decode).  A Value that appears again in the same
 * entry merges into the earlier one (protobuf's rule for a repeated message
 * field): a later oneof member replaces the earlier, an empty one keeps it. */
static int pb_value(const unsigned char *s, size_t n, raw_feat_t *rf) {
    pb_t r;
    feat_pb_init(&r, s, n);
    pb_field_t f;
    while (r.p < r.end) {
        if (!pb_next(&r, &f)) return 0;
        if (f.num == 1 && f.wt == 1) { rf->kind = RAW_DOUBLE; memcpy(&rf->v.d, &f.u, 8); }
        else if (f.num == 2 && f.wt == 0) { rf->kind = RAW_INT; rf->v.i = (int64_t)f.u; }
        else if (f.num == 3 && f.wt == 0) { rf->kind = RAW_BOOL; rf->v.b = f.u != 0; }
        else if (f.num == 4 && f.wt == 2) { rf->kind = RAW_STRING; rf->v.s.p = (const char *)f.s; rf->v.s.n = f.n; }
        else if (f.num <= 4) return 0; /* known field, wrong wire type */
    }
    return 1;
}

/* 0 with m filled, or 1 when out is a dead letter (undecodable, oversize). */
static int pb_parse(feat_decoder_t *d, const void *val, size_t vlen, int label, msg_fields_t *m,
                    feat_decoded_t *out) {
    pb_t r;
    feat_pb_init(&r, val, vlen);
    pb_field_t f;
    memset(m, 0, sizeof(*m));
    while (r.p < r.end) {
        if (!pb_next(&r, &f)) {
            dead(out, FEAT_DL_UNDECODABLE, "not a valid protobuf %s (or JSON) message", label ? "LabelEvent" : "FeatureEvent");
            return 1;
        }
        if (f.num == 1 && f.wt == 2) { m->name = (const char *)f.s; m->nlen = f.n; m->has_name = f.n > 0; }
        else if (f.num == 2 && f.wt == 2) { m->key = (const char *)f.s; m->klen = f.n; m->has_key = f.n > 0; }
        else if (f.num == 3 && f.wt == 0) { m->ts = (int64_t)f.u; m->has_ts = f.u != 0; }
        else if (label && f.num == 4 && f.wt == 1) { memcpy(&m->label, &f.u, 8); m->has_label = 1; }
        else if (label && f.num == 5 && f.wt == 2) { /* keys: map<string, string> */
            if (m->nxkeys >= d->nraw_cap) {
                dead(out, FEAT_DL_OVERSIZE, "more than %d entries in \"keys\"", FEAT_MAX_FEATURES);
                return 1;
            }
            raw_feat_t *rf = &d->raw[m->nxkeys++];
            memset(rf, 0, sizeof(*rf));
            rf->name = "";
            rf->kind = RAW_STRING;
            rf->v.s.p = "";
            pb_t e;
            feat_pb_init(&e, f.s, f.n);
            pb_field_t ef;
            while (e.p < e.end) {
                if (!pb_next(&e, &ef) || (ef.num <= 2 && ef.wt != 2)) {
                    dead(out, FEAT_DL_UNDECODABLE, "malformed keys map entry");
                    return 1;
                }
                if (ef.num == 1) { rf->name = (const char *)ef.s; rf->nlen = ef.n; }
                else if (ef.num == 2) { rf->v.s.p = (const char *)ef.s; rf->v.s.n = ef.n; }
            }
        }
        else if (!label && f.num == 4 && f.wt == 2) {
            if (m->nfeat >= d->nraw_cap) {
                dead(out, FEAT_DL_OVERSIZE, "more than %d features in one event", FEAT_MAX_FEATURES);
                return 1;
            }
            raw_feat_t *rf = &d->raw[m->nfeat++];
            memset(rf, 0, sizeof(*rf));
            pb_t e;
            feat_pb_init(&e, f.s, f.n);
            pb_field_t ef;
            int has_val = 0;
            while (e.p < e.end) {
                if (!pb_next(&e, &ef)) {
                    dead(out, FEAT_DL_UNDECODABLE, "malformed features map entry");
                    return 1;
                }
                if (ef.num == 1 && ef.wt == 2) { rf->name = (const char *)ef.s; rf->nlen = ef.n; }
                else if (ef.num == 2 && ef.wt == 2) {
                    if (!pb_value(ef.s, ef.n, rf)) {
                        dead(out, FEAT_DL_UNDECODABLE, "malformed Value in features map");
                        return 1;
                    }
                    has_val = 1;
                } else if (ef.num <= 2) {
                    dead(out, FEAT_DL_UNDECODABLE, "malformed features map entry");
                    return 1;
                }
            }
            if (!has_val) rf->kind = RAW_NONE;
            if (!rf->name) { rf->name = ""; rf->nlen = 0; }
        } else if (f.num <= 4 || (label && f.num == 5)) {
            dead(out, FEAT_DL_UNDECODABLE, "field %u has the wrong wire type", f.num);
            return 1;
        }
        /* unknown fields are skipped (forward compatibility) */
    }
    return 0;
}

/* ---- JSON reader --------------------------------------------------------------- */

/* Resolves a JSON string token to bytes (unescaping into scratch): 1, or 0
 * with *s = "" when the unescaped bytes do not fit. */
static int json_str(feat_decoder_t *d, const char *text, const feat_json_tok_t *t, const char **s, size_t *n) {
    if (!t->escaped) {
        *s = text + t->start;
        *n = t->end - t->start;
        return 1;
    }
    /* capacity was reserved for the whole message: pointers stay valid */
    size_t room = d->scratch.cap - d->scratch.len;
    size_t l;
    if (feat_json_unescape(text, t, d->scratch.data + d->scratch.len, room, &l) != FEAT_OK) {
        *s = ""; /* callers may still name the value in a dead letter */
        *n = 0;
        return 0;
    }
    *s = d->scratch.data + d->scratch.len;
    *n = l;
    d->scratch.len += l;
    return 1;
}

static int json_parse(feat_decoder_t *d, const char *text, size_t vlen, int label, const char *entity_alt,
                      msg_fields_t *m, feat_decoded_t *out) {
    memset(m, 0, sizeof(*m));
    size_t eoff = 0;
    feat_err_t jerr = feat_json_parse(text, vlen, d->toks, d->ntoks, 16, NULL, &eoff);
    if (jerr == FEAT_ERR_TOO_LARGE) {
        dead(out, FEAT_DL_OVERSIZE, "JSON too large or too deeply nested (more than %d features?)", FEAT_MAX_FEATURES);
        return 1;
    }
    if (jerr != FEAT_OK) {
        /* feat_json_parse stops on the first byte of an invalid UTF-8 sequence, or on the
         * backslash of a lone surrogate's escape (json.h) */
        const unsigned char *u = (const unsigned char *)text;
        if (eoff < vlen && u[eoff] >= 0x80 && !feat_utf8_seq(u + eoff, vlen - eoff)) {
            dead(out, FEAT_DL_INVALID_UTF8, "JSON text is not valid UTF-8 at byte %zu", eoff);
            return 1;
        }
        if (eoff + 6 <= vlen && u[eoff] == '\\' && u[eoff + 1] == 'u') {
            unsigned v = 0;
            int hex = 1;
            for (int k = 2; k < 6; k++) {
                int c = u[eoff + k] | 0x20;
                if (c >= '0' && c <= '9') v = v * 16 + (unsigned)(c - '0');
                else if (c >= 'a' && c <= 'f') v = v * 16 + (unsigned)(c - 'a' + 10);
                else hex = 0;
            }
            if (hex && v >= 0xd800 && v <= 0xdfff) {
                dead(out, FEAT_DL_INVALID_UTF8, "JSON string escapes a lone surrogate (\\u%04x) at byte %zu: not valid UTF-8",
                     v, eoff);
                return 1;
            }
        }
        dead(out, FEAT_DL_UNDECODABLE, "invalid JSON at byte %zu", eoff);
        return 1;
    }
    feat_json_tok_t *t = d->toks;
    if (t[0].type != FEAT_JSON_OBJECT) {
        dead(out, FEAT_DL_UNDECODABLE, "JSON event is not an object");
        return 1;
    }
    feat_buf_reset(&d->scratch);
    if (feat_buf_grow(&d->scratch, vlen + 1) != FEAT_OK) {
        dead(out, FEAT_DL_OVERSIZE, "out of memory decoding");
        return 1;
    }
    uint32_t i = 1;
    int features_tok = -1;
    for (uint32_t k = 0; k < t[0].size; k++) {
        feat_json_tok_t *kt = &t[i], *vt = &t[i + 1];
        const char *kname = text + kt->start;
        size_t kl = kt->end - kt->start;
#define KEY_IS(lit) feat_json_str_eq(text, kt, lit, sizeof(lit) - 1)
        if (KEY_IS("table") || KEY_IS("model")) {
            if ((label != 0) != KEY_IS("model")) {
                /* "table" on a label topic or "model" on a feature topic: say so */
                dead(out, label ? FEAT_DL_UNKNOWN_MODEL : FEAT_DL_UNKNOWN_TABLE,
                     "\"%.*s\" given on a %s topic", (int)kl, kname, label ? "label" : "feature");
                return 1;
            }
            /* present means given: empty or not a string names no table (model) */
            const char *what = label ? "model" : "table";
            feat_dl_reason_t r = label ? FEAT_DL_UNKNOWN_MODEL : FEAT_DL_UNKNOWN_TABLE;
            if (vt->type != FEAT_JSON_STRING) return dead(out, r, "\"%s\" must be a string naming a %s", what, what), 1;
            if (!json_str(d, text, vt, &m->name, &m->nlen)) return dead(out, FEAT_DL_OVERSIZE, "%s name too long", what), 1;
            if (m->nlen == 0) return dead(out, r, "\"%s\" is empty (leave it out to use the topic's only %s)", what, what), 1;
            m->has_name = 1;
        } else if (KEY_IS("key") || (entity_alt && feat_json_str_eq(text, kt, entity_alt, strlen(entity_alt)))) {
            /* present means given: an empty or non-string key is not the Kafka key's cue */
            if (vt->type == FEAT_JSON_STRING) {
                if (!json_str(d, text, vt, &m->key, &m->klen)) return dead(out, FEAT_DL_OVERSIZE, "key too long"), 1;
                if (m->klen == 0)
                    return dead(out, FEAT_DL_EMPTY_KEY, "\"%.*s\" is empty (leave it out to use the Kafka message key)",
                                (int)kl, kname), 1;
            } else if (vt->type == FEAT_JSON_NUMBER && vt->integral) {
                /* numeric ids are common; keep their literal text */
                m->key = text + vt->start;
                m->klen = vt->end - vt->start;
            } else {
                return dead(out, FEAT_DL_EMPTY_KEY, "\"%.*s\" must be a non-empty string or an integer", (int)kl, kname), 1;
            }
            m->has_key = 1;
        } else if (KEY_IS("ts")) {
            if (vt->type == FEAT_JSON_NUMBER) {
                if (feat_json_int64(text, vt, &m->ts) != FEAT_OK) {
                    dead(out, FEAT_DL_BAD_TIMESTAMP, "\"ts\" must be integer milliseconds since the epoch");
                    return 1;
                }
            } else if (vt->type == FEAT_JSON_STRING) {
                const char *s;
                size_t n;
                if (!json_str(d, text, vt, &s, &n) || feat_parse_rfc3339(s, n, &m->ts) != FEAT_OK) {
                    char b[64];
                    dead(out, FEAT_DL_BAD_TIMESTAMP, "\"ts\" \"%s\" is not RFC 3339", show(s, n, b, sizeof(b)));
                    return 1;
                }
            } else if (vt->type == FEAT_JSON_NULL) {
                dead(out, FEAT_DL_MISSING_TIMESTAMP, "\"ts\" is null");
                return 1;
            } else {
                dead(out, FEAT_DL_BAD_TIMESTAMP, "\"ts\" must be a number or an RFC 3339 string");
                return 1;
            }
            m->has_ts = 1;
        } else if (!label && KEY_IS("features")) {
            if (vt->type != FEAT_JSON_OBJECT) {
                dead(out, FEAT_DL_WRONG_TYPE, "\"features\" must be an object");
                return 1;
            }
            features_tok = (int)(i + 1);
        } else if (label && KEY_IS("keys")) {
            if (vt->type != FEAT_JSON_OBJECT) {
                dead(out, FEAT_DL_WRONG_TYPE, "\"keys\" must be an object (entity name to key)");
                return 1;
            }
            uint32_t j = i + 2;
            for (uint32_t e = 0; e < vt->size; e++) {
                if (m->nxkeys >= d->nraw_cap) {
                    dead(out, FEAT_DL_OVERSIZE, "more than %d entries in \"keys\"", FEAT_MAX_FEATURES);
                    return 1;
                }
                raw_feat_t *rf = &d->raw[m->nxkeys++];
                memset(rf, 0, sizeof(*rf));
                const feat_json_tok_t *ev = &t[j + 1];
                if (!json_str(d, text, &t[j], &rf->name, &rf->nlen)) return dead(out, FEAT_DL_OVERSIZE, "entity name too long"), 1;
                if (ev->type == FEAT_JSON_STRING) {
                    rf->kind = RAW_STRING;
                    if (!json_str(d, text, ev, &rf->v.s.p, &rf->v.s.n)) return dead(out, FEAT_DL_OVERSIZE, "key too long"), 1;
                } else if (ev->type == FEAT_JSON_NUMBER && ev->integral) {
                    rf->kind = RAW_STRING; /* numeric ids keep their literal text, as "key" */
                    rf->v.s.p = text + ev->start;
                    rf->v.s.n = ev->end - ev->start;
                } else {
                    rf->kind = RAW_NONE;
                }
                j = t[j + 1].next;
            }
        } else if (label && KEY_IS("label")) {
            if (vt->type == FEAT_JSON_TRUE || vt->type == FEAT_JSON_FALSE) {
                m->label = vt->type == FEAT_JSON_TRUE;
            } else if (vt->type != FEAT_JSON_NUMBER) {
                dead(out, FEAT_DL_WRONG_TYPE, "\"label\" must be a number or a boolean");
                return 1;
            } else if (feat_json_double(text, vt, &m->label) != FEAT_OK) {
                dead(out, FEAT_DL_NON_FINITE, "\"label\" is not a finite number");
                return 1;
            }
            m->has_label = 1;
        }
#undef KEY_IS
        i = t[i + 1].next;
    }
    if (features_tok >= 0) {
        feat_json_tok_t *ft = &t[features_tok];
        uint32_t j = (uint32_t)features_tok + 1;
        for (uint32_t k = 0; k < ft->size; k++) {
            if (m->nfeat >= d->nraw_cap) {
                dead(out, FEAT_DL_OVERSIZE, "more than %d features in one event", FEAT_MAX_FEATURES);
                return 1;
            }
            raw_feat_t *rf = &d->raw[m->nfeat++];
            memset(rf, 0, sizeof(*rf));
            if (!json_str(d, text, &t[j], &rf->name, &rf->nlen)) return dead(out, FEAT_DL_OVERSIZE, "feature name too long"), 1;
            rf->kind = RAW_JSON;
            rf->json_tok = (int)(j + 1);
            j = t[j + 1].next;
        }
    }
    return 0;
}

/* ---- typing and validation ---------------------------------------------------- */

/* from_kafka: the key is the Kafka message key (the event named none). */
static int check_key(feat_decoder_t *d, const char *key, size_t klen, int from_kafka, feat_decoded_t *out) {
    if (!key || klen == 0) return dead(out, FEAT_DL_MISSING_KEY, "no entity key (set \"key\" or the Kafka message key)"), 1;
    const char *src = from_kafka ? " (the Kafka message key)" : "";
    if ((int64_t)klen > d->conf.max_key)
        return dead(out, FEAT_DL_OVERSIZE, "entity key%s is %zu bytes; ingest.max_key_bytes is %lld", src, klen,
                    (long long)d->conf.max_key), 1;
    size_t bad = feat_utf8_valid_prefix(key, klen);
    if (bad < klen) return dead(out, FEAT_DL_INVALID_UTF8, "entity key%s is not valid UTF-8 at byte %zu", src, bad), 1;
    if (memchr(key, 0, klen)) return dead(out, FEAT_DL_BAD_KEY, "entity key%s has a NUL byte", src), 1;
    return 0;
}

/* A table, model or feature name that matched nothing: invalid_utf8 when it
 * is not UTF-8 (configured names all are, so a match needs no check). */
static int bad_name(feat_decoded_t *out, const char *what, const char *name, size_t n) {
    size_t bad = feat_utf8_valid_prefix(name, n);
    if (bad == n) return 0;
    char sb[80];
    dead(out, FEAT_DL_INVALID_UTF8, "%s name \"%s\" is not valid UTF-8 at byte %zu", what, show(name, n, sb, sizeof(sb)),
         bad);
    return 1;
}

/* Fills out->xkeys with the label's key of each of mc's label_keys (the last
 * "keys" entry naming it); 1 when out is a dead letter. */
static int label_keys(feat_decoder_t *d, const feat_model_conf_t *mc, const msg_fields_t *m, feat_decoded_t *out) {
    out->nx = 0;
    for (size_t k = 0; k < mc->nlabel_keys; k++) {
        const char *ent = mc->label_keys[k];
        size_t el = strlen(ent);
        const raw_feat_t *rf = NULL;
        for (size_t i = 0; i < m->nxkeys; i++)
            if (d->raw[i].nlen == el && memcmp(d->raw[i].name, ent, el) == 0) rf = &d->raw[i];
        if (!rf)
            return dead(out, FEAT_DL_MISSING_LABEL_KEY, "no key for entity %s in \"keys\" (model %s's label_keys)", ent,
                        mc->name), 1;
        if (rf->kind != RAW_STRING)
            return dead(out, FEAT_DL_WRONG_TYPE, "keys.%s must be a non-empty string or an integer", ent), 1;
        const char *key = rf->v.s.p;
        size_t klen = rf->v.s.n;
        if (klen == 0) return dead(out, FEAT_DL_EMPTY_KEY, "keys.%s is empty", ent), 1;
        if ((int64_t)klen > d->conf.max_key)
            return dead(out, FEAT_DL_OVERSIZE, "keys.%s is %zu bytes; ingest.max_key_bytes is %lld", ent, klen,
                        (long long)d->conf.max_key), 1;
        size_t bad = feat_utf8_valid_prefix(key, klen);
        if (bad < klen) return dead(out, FEAT_DL_INVALID_UTF8, "keys.%s is not valid UTF-8 at byte %zu", ent, bad), 1;
        if (memchr(key, 0, klen)) return dead(out, FEAT_DL_BAD_KEY, "keys.%s has a NUL byte", ent), 1;
        out->xkeys[k] = key;
        out->xklens[k] = klen;
        out->nx = k + 1;
    }
    return 0;
}

static int check_ts(feat_decoder_t *d, const msg_fields_t *m, int64_t now, feat_decoded_t *out) {
    if (!m->has_ts) return dead(out, FEAT_DL_MISSING_TIMESTAMP, "no event time (\"ts\")"), 1;
    if (m->ts > now + d->conf.max_future_ms)
        return dead(out, FEAT_DL_BAD_TIMESTAMP, "event time %lld is more than ingest.max_future ahead of now",
                    (long long)m->ts), 1;
    if (m->ts < now - d->conf.max_age_ms)
        return dead(out, FEAT_DL_BAD_TIMESTAMP, "event time %lld is older than ingest.max_age", (long long)m->ts), 1;
    return 0;
}

/* Types raw feature rf as feature f of table t into *v. */
static int type_feature(feat_decoder_t *d, const char *text, const feat_table_conf_t *t, int f,
                        const raw_feat_t *rf, feat_value_t *v, feat_decoded_t *out) {
    feat_ftype_t want = t->features[f].type;
    const char *fname = t->features[f].name;
    memset(v, 0, sizeof(*v));
    v->type = (uint8_t)want;
    int kind = rf->kind;
    double dv = 0;
    int64_t iv = 0;
    const char *sp = NULL;
    size_t sn = 0;
    const char *got = "nothing";
    if (kind == RAW_JSON) {
        const feat_json_tok_t *vt = &d->toks[rf->json_tok];
        switch (vt->type) {
        case FEAT_JSON_NUMBER:
            got = "a number";
            if (want == FEAT_FT_DOUBLE) {
                if (feat_json_double(text, vt, &dv) != FEAT_OK)
                    return dead(out, FEAT_DL_NON_FINITE, "feature %s is not a finite number", fname), 1;
                kind = RAW_DOUBLE;
            } else if (want == FEAT_FT_INT64) {
                if (feat_json_int64(text, vt, &iv) != FEAT_OK)
                    return dead(out, FEAT_DL_WRONG_TYPE, "feature %s of table %s is int64, got a non-integer or out-of-range number",
                                fname, t->name), 1;
                kind = RAW_INT;
            } else {
                kind = RAW_NONE;
            }
            break;
        case FEAT_JSON_STRING:
            got = "a string";
            if (!json_str(d, text, vt, &sp, &sn)) return dead(out, FEAT_DL_OVERSIZE, "string too long"), 1;
            kind = RAW_STRING;
            break;
        case FEAT_JSON_TRUE:
        case FEAT_JSON_FALSE:
            got = "a boolean";
            kind = RAW_BOOL;
            iv = vt->type == FEAT_JSON_TRUE;
            break;
        case FEAT_JSON_NULL: got = "null"; kind = RAW_NONE; break;
        case FEAT_JSON_OBJECT: got = "an object"; kind = RAW_NONE; break;
        default: got = "an array"; kind = RAW_NONE; break;
        }
    } else {
        switch (kind) {
        case RAW_DOUBLE: got = "double_value"; dv = rf->v.d; break;
        case RAW_INT: got = "int64_value"; iv = rf->v.i; break;
        case RAW_BOOL: got = "bool_value"; iv = rf->v.b; break;
        case RAW_STRING: got = "string_value"; sp = rf->v.s.p; sn = rf->v.s.n; break;
        default: got = "no value"; break;
        }
    }
    switch (want) {
    case FEAT_FT_DOUBLE:
        if (kind == RAW_INT) dv = (double)iv; /* integers widen to double */
        else if (kind != RAW_DOUBLE) break;
        if (!isfinite(dv)) return dead(out, FEAT_DL_NON_FINITE, "feature %s is %s", fname, isnan(dv) ? "NaN" : "infinite"), 1;
        v->v.d = dv;
        return 0;
    case FEAT_FT_INT64:
        if (kind != RAW_INT) break;
        v->v.i = iv;
        return 0;
    case FEAT_FT_BOOL:
        if (kind != RAW_BOOL) break;
        v->v.b = (int)iv;
        return 0;
    case FEAT_FT_STRING:
        if (kind != RAW_STRING) break;
        if ((int64_t)sn > d->conf.max_string)
            return dead(out, FEAT_DL_OVERSIZE, "feature %s is a %zu-byte string; ingest.max_string_bytes is %lld",
                        fname, sn, (long long)d->conf.max_string), 1;
        size_t bad = feat_utf8_valid_prefix(sp, sn);
        if (bad < sn) return dead(out, FEAT_DL_INVALID_UTF8, "feature %s is not valid UTF-8 at byte %zu", fname, bad), 1;
        if (memchr(sp, 0, sn)) return dead(out, FEAT_DL_UNDECODABLE, "feature %s contains a NUL byte", fname), 1;
        v->v.s = sp;
        v->slen = (uint32_t)sn;
        return 0;
    default:
        break;
    }
    return dead(out, FEAT_DL_WRONG_TYPE, "feature %s of table %s is %s, got %s", fname, t->name,
                feat_ftype_name(want), got), 1;
}

/* The index of feature name in t: producers usually send an event's
 * features in the order the table declares them, so the one after prev is
 * tried before the scan. */
static int feature_after(const feat_table_conf_t *t, int prev, const char *name, size_t len) {
    size_t h = (size_t)(prev + 1);
    if (h < t->nfeatures) {
        const char *fn = t->features[h].name;
        if (strnlen(fn, len + 1) == len && memcmp(fn, name, len) == 0) return (int)h;
    }
    return feat_table_feature_index(t, name, len);
}

static const route_t *find_route(feat_decoder_t *d, const char *topic) {
    for (size_t i = 0; i < d->nroutes; i++)
        if (strcmp(d->routes[i].topic, topic) == 0) return &d->routes[i];
    return NULL;
}

static int is_json(const char *v, size_t n, const char *ct, size_t ctlen) {
    if (ct && ctlen) {
        if (ctlen >= 16 && strncmp(ct, "application/json", 16) == 0) return 1;
        if ((ctlen >= 22 && strncmp(ct, "application/x-protobuf", 22) == 0) ||
            (ctlen >= 20 && strncmp(ct, "application/protobuf", 20) == 0) ||
            (ctlen >= 31 && strncmp(ct, "application/vnd.google.protobuf", 31) == 0))
            return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        return c == '{';
    }
    return 0;
}

feat_dec_kind_t feat_decode(feat_decoder_t *d, const char *topic, const void *key, size_t klen, const void *val,
                            size_t vlen, const char *ct, size_t ctlen, int64_t now_ms, feat_decoded_t *out) {
    out->kind = FEAT_DEC_DEAD;
    out->n = 0;
    out->detail[0] = 0;
    const route_t *r = find_route(d, topic);
    if (!r) return dead(out, FEAT_DL_UNKNOWN_TABLE, "topic %s feeds no table or model", topic);
    if ((int64_t)vlen > d->conf.max_value)
        return dead(out, FEAT_DL_OVERSIZE, "message is %zu bytes; ingest.max_value_bytes is %lld", vlen,
                    (long long)d->conf.max_value);
    if (!val || vlen == 0) return dead(out, FEAT_DL_UNDECODABLE, "empty message value");
    int label = r->ntables == 0;
    int json = is_json(val, vlen, ct, ctlen);
    msg_fields_t m;
    const char *entity_alt = (!label && r->ntables == 1) ? d->conf.tables[r->tables[0]].entity : NULL;
    if (entity_alt && strcmp(entity_alt, "key") == 0) entity_alt = NULL;
    if (json ? json_parse(d, val, vlen, label, entity_alt, &m, out)
             : pb_parse(d, val, vlen, label, &m, out))
        return FEAT_DEC_DEAD;
    /* the event's key when it names one (never empty here: JSON refused an empty
     * one, protobuf's empty is absent), else the Kafka message key */
    const char *ekey = m.has_key ? m.key : key;
    size_t eklen = m.has_key ? m.klen : klen;
    char sb[80];
    if (label) {
        uint32_t mi;
        if (m.has_name) {
            size_t k;
            for (k = 0; k < r->nmodels; k++) {
                const char *mn = d->conf.models[r->models[k]].name;
                if (strlen(mn) == m.nlen && memcmp(mn, m.name, m.nlen) == 0) break;
            }
            if (k == r->nmodels && bad_name(out, "model", m.name, m.nlen)) return FEAT_DEC_DEAD;
            if (k == r->nmodels)
                return dead(out, FEAT_DL_UNKNOWN_MODEL, "no model \"%s\" takes labels from topic %s",
                            show(m.name, m.nlen, sb, sizeof(sb)), topic);
            mi = r->models[k];
        } else if (r->nmodels == 1) {
            mi = r->models[0];
        } else {
            return dead(out, FEAT_DL_UNKNOWN_MODEL, "topic %s feeds several models; set \"model\"", topic);
        }
        if (check_key(d, ekey, eklen, !m.has_key, out) || check_ts(d, &m, now_ms, out)) return FEAT_DEC_DEAD;
        if (!m.has_label) return dead(out, FEAT_DL_WRONG_TYPE, "no \"label\"");
        if (!isfinite(m.label)) return dead(out, FEAT_DL_NON_FINITE, "label is not finite");
        if (label_keys(d, &d->conf.models[mi], &m, out)) return FEAT_DEC_DEAD;
        out->kind = FEAT_DEC_LABEL;
        out->model = mi;
        out->key = ekey;
        out->klen = eklen;
        out->ts = m.ts;
        out->label = m.label;
        return FEAT_DEC_LABEL;
    }
    uint32_t ti;
    if (m.has_name) {
        size_t k;
        for (k = 0; k < r->ntables; k++) {
            const char *tn = d->conf.tables[r->tables[k]].name;
            if (strlen(tn) == m.nlen && memcmp(tn, m.name, m.nlen) == 0) break;
        }
        if (k == r->ntables && bad_name(out, "table", m.name, m.nlen)) return FEAT_DEC_DEAD;
        if (k == r->ntables)
            return dead(out, FEAT_DL_UNKNOWN_TABLE, "no table \"%s\" is fed by topic %s",
                        show(m.name, m.nlen, sb, sizeof(sb)), topic);
        ti = r->tables[k];
    } else if (r->ntables == 1) {
        ti = r->tables[0];
    } else {
        return dead(out, FEAT_DL_UNKNOWN_TABLE, "topic %s feeds several tables; set \"table\"", topic);
    }
    if (check_key(d, ekey, eklen, !m.has_key, out) || check_ts(d, &m, now_ms, out)) return FEAT_DEC_DEAD;
    if (m.nfeat == 0) return dead(out, FEAT_DL_NO_FEATURES, "event has no features");
    const feat_table_conf_t *t = &d->conf.tables[ti];
    /* seen[] marks features already set, to refuse duplicates */
    unsigned char seen[FEAT_MAX_FEATURES];
    memset(seen, 0, t->nfeatures);
    int f = -1;
    for (size_t k = 0; k < m.nfeat; k++) {
        const raw_feat_t *rf = &d->raw[k];
        f = feature_after(t, f, rf->name, rf->nlen);
        if (f < 0 && bad_name(out, "feature", rf->name, rf->nlen)) return FEAT_DEC_DEAD;
        if (f < 0)
            return dead(out, FEAT_DL_UNKNOWN_FEATURE, "table %s has no feature \"%s\"", t->name,
                        show(rf->name, rf->nlen, sb, sizeof(sb)));
        if (feat_feature_is_agg(t, (size_t)f))
            return dead(out, FEAT_DL_UNKNOWN_FEATURE, "feature %s of table %s is an aggregation featd computes; "
                        "an event cannot set it", t->features[f].name, t->name);
        if (seen[f]) return dead(out, FEAT_DL_DUPLICATE_FEATURE, "feature %s appears twice", t->features[f].name);
        seen[f] = 1;
        if (type_feature(d, val, t, f, rf, &out->vals[k], out)) return FEAT_DEC_DEAD;
        out->fidx[k] = (uint16_t)f;
    }
    out->kind = FEAT_DEC_EVENT;
    out->table = ti;
    out->key = ekey;
    out->klen = eklen;
    out->ts = m.ts;
    out->n = m.nfeat;
    return FEAT_DEC_EVENT;
}
