/* Unit tests for ingest/decode.c: every valid form is accepted, every class
 * of bad input becomes a dead letter with the right reason.  Protobuf inputs
 * are built with protobuf-c's generated packer, an encoder independent of the
 * decoder under test. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "featd/v1/event.pb-c.h"
#include "common/timefmt.h"
#include "ingest/decode.h"

static const char *cfg_text =
    "[table user]\n"
    "entity = user_id\n"
    "topic = user_events\n"
    "feature.clicks = int64\n"
    "feature.ctr = double\n"
    "feature.country = string\n"
    "feature.premium = bool\n"
    "[table a]\ntopic = shared\nfeature.x = double\n"
    "[table b]\ntopic = shared\nfeature.x = double\n"
    "[model churn]\ntable = user\nlabel_topic = churn_labels\n"
    "[model m1]\ntable = user\nlabel_topic = multi\n"
    "[model m2]\ntable = user\nlabel_topic = multi\n"
    "[table merchant]\nentity = merchant_id\ntopic = merchant_events\nfeature.risk = double\n"
    "[table shop]\nentity = shop_id\ntopic = shop_events\nfeature.size = int64\n"
    "[model fraud]\ntable = user\nlabel_topic = fraud_labels\nfeatures = clicks, merchant.risk, shop.size\n"
    "label_keys = merchant_id, shop_id\n"
    "[ingest]\nmax_string_bytes = 16\nmax_key_bytes = 8\nmax_value_bytes = 4KiB\n";

#define NOW 1732406400000LL

static feat_config_t *cfg;
static feat_decoder_t *dec;
static feat_decoded_t out;

static void setup(void) {
    char err[256];
    cfg = feat_config_parse(cfg_text, strlen(cfg_text), err, sizeof(err));
    ck_assert_msg(cfg != NULL, "%s", err);
    feat_decode_conf_t dc;
    feat_decode_conf_from_config(cfg, &dc);
    dec = feat_decoder_new(&dc);
    ck_assert_ptr_nonnull(dec);
}

static void teardown(void) {
    feat_decoder_destroy(dec);
    feat_config_free(cfg);
}

static int dj(const char *topic, const char *key, const char *json) {
    return feat_decode(dec, topic, key, key ? strlen(key) : 0, json, strlen(json), NULL, 0, NOW, &out);
}

static int find(const char *fname) {
    const feat_table_conf_t *t = &cfg->tables[out.table];
    for (size_t i = 0; i < out.n; i++)
        if (strcmp(t->features[out.fidx[i]].name, fname) == 0) return (int)i;
    return -1;
}

START_TEST(json_full_event) {
    ck_assert_int_eq(dj("user_events", NULL,
                        "{\"table\":\"user\",\"key\":\"u42\",\"ts\":1732406400000,"
                        "\"features\":{\"clicks\":3,\"ctr\":0.25,\"country\":\"D\\u00c9\",\"premium\":true}}"),
                     FEAT_DEC_EVENT);
    ck_assert_int_eq(out.table, 0);
    ck_assert_int_eq(out.klen, 3);
    ck_assert(memcmp(out.key, "u42", 3) == 0);
    ck_assert_int_eq(out.ts, NOW);
    ck_assert_int_eq(out.n, 4);
    ck_assert_int_eq(out.vals[find("clicks")].v.i, 3);
    ck_assert_double_eq(out.vals[find("ctr")].v.d, 0.25);
    int c = find("country");
    ck_assert_int_eq(out.vals[c].slen, 3);
    ck_assert(memcmp(out.vals[c].v.s, "D\xc3\x89", 3) == 0);
    ck_assert_int_eq(out.vals[find("premium")].v.b, 1);
}
END_TEST

START_TEST(json_short_forms) {
    /* table omitted (topic feeds one table), key from the Kafka message key */
    ck_assert_int_eq(dj("user_events", "kafkakey", "{\"ts\":1732406400000,\"features\":{\"clicks\":1}}"), FEAT_DEC_EVENT);
    ck_assert_int_eq(out.klen, 8);
    ck_assert(memcmp(out.key, "kafkakey", 8) == 0);
    /* the event's key wins over the Kafka key; entity name as the field */
    ck_assert_int_eq(dj("user_events", "kafkakey", "{\"user_id\":\"u7\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}"), FEAT_DEC_EVENT);
    ck_assert(out.klen == 2 && memcmp(out.key, "u7", 2) == 0);
    /* numeric key; RFC 3339 time; integer widened to double */
    ck_assert_int_eq(dj("user_events", NULL, "{\"key\":123,\"ts\":\"2024-11-24T00:00:00.5+01:00\",\"features\":{\"ctr\":2}}"), FEAT_DEC_EVENT);
    ck_assert(out.klen == 3 && memcmp(out.key, "123", 3) == 0);
    ck_assert_int_eq(out.ts, NOW - 3600000 + 500);
    ck_assert_double_eq(out.vals[0].v.d, 2.0);
    /* unknown top-level fields are ignored; whitespace everywhere */
    ck_assert_int_eq(dj("user_events", "k", " {\n\"extra\": [1, {\"z\": null}], \"ts\" : 1732406400000 , \"features\" : { \"premium\" : false } } "), FEAT_DEC_EVENT);
    ck_assert_int_eq(out.vals[0].v.b, 0);
    /* a shared topic with the table named */
    ck_assert_int_eq(dj("shared", "k", "{\"table\":\"b\",\"ts\":1732406400000,\"features\":{\"x\":1.5}}"), FEAT_DEC_EVENT);
    ck_assert_int_eq(out.table, 2);
}
END_TEST

START_TEST(json_escaped_member_names) {
    /* a member name written with \u escapes is the same member (RFC 8259, section 8.3) */
    ck_assert_int_eq(dj("user_events", "kafkakey",
                        "{\"\\u006bey\":\"u9\",\"\\u0074s\":1732406400000,\"f\\u0065atures\":{\"cl\\u0069cks\":1}}"),
                     FEAT_DEC_EVENT);
    ck_assert(out.klen == 2 && memcmp(out.key, "u9", 2) == 0);
    ck_assert_int_eq(out.ts, NOW);
    ck_assert_int_eq(out.vals[find("clicks")].v.i, 1);
    ck_assert_int_eq(dj("user_events", "k", "{\"t\\u0061ble\":\"nope\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}"),
                     FEAT_DEC_DEAD);
    ck_assert_int_eq(out.reason, FEAT_DL_UNKNOWN_TABLE);
    ck_assert_int_eq(dj("churn_labels", "k", "{\"m\\u006fdel\":\"nope\",\"ts\":1732406400000,\"l\\u0061bel\":1}"),
                     FEAT_DEC_DEAD);
    ck_assert_int_eq(out.reason, FEAT_DL_UNKNOWN_MODEL);
    ck_assert_int_eq(dj("churn_labels", "k", "{\"ts\":1732406400000,\"l\\u0061bel\":1}"), FEAT_DEC_LABEL);
}
END_TEST

START_TEST(json_labels) {
    ck_assert_int_eq(dj("churn_labels", NULL, "{\"model\":\"churn\",\"key\":\"u42\",\"ts\":1732406400000,\"label\":1}"), FEAT_DEC_LABEL);
    ck_assert_int_eq(out.model, 0);
    ck_assert_double_eq(out.label, 1.0);
    ck_assert_int_eq(dj("churn_labels", "u1", "{\"ts\":1732406400000,\"label\":false}"), FEAT_DEC_LABEL);
    ck_assert_double_eq(out.label, 0.0);
    ck_assert_int_eq(dj("multi", "u1", "{\"model\":\"m2\",\"ts\":1732406400000,\"label\":0.5}"), FEAT_DEC_LABEL);
    ck_assert_int_eq(out.model, 2);
}
END_TEST

static size_t pack_event(const char *table, const char *key, int64_t ts, int nf, const char **names,
                         Featd__V1__Value *vals, uint8_t *buf) {
    Featd__V1__FeatureEvent ev = FEATD__V1__FEATURE_EVENT__INIT;
    Featd__V1__FeatureEvent__FeaturesEntry ents[8], *ptrs[8];
    ev.table = (char *)table;
    ev.key = (char *)key;
    ev.ts = ts;
    for (int i = 0; i < nf; i++) {
        featd__v1__feature_event__features_entry__init(&ents[i]);
        ents[i].key = (char *)names[i];
        ents[i].value = &vals[i];
        ptrs[i] = &ents[i];
    }
    ev.n_features = (size_t)nf;
    ev.features = ptrs;
    return featd__v1__feature_event__pack(&ev, buf);
}

START_TEST(protobuf_event_and_label) {
    uint8_t buf[512];
    Featd__V1__Value v[4];
    for (int i = 0; i < 4; i++) featd__v1__value__init(&v[i]);
    v[0].kind_case = FEATD__V1__VALUE__KIND_INT64_VALUE; v[0].int64_value = -7;
    v[1].kind_case = FEATD__V1__VALUE__KIND_DOUBLE_VALUE; v[1].double_value = 1e-300;
    v[2].kind_case = FEATD__V1__VALUE__KIND_STRING_VALUE; v[2].string_value = "FR";
    v[3].kind_case = FEATD__V1__VALUE__KIND_BOOL_VALUE; v[3].bool_value = 1;
    const char *names[4] = {"clicks", "ctr", "country", "premium"};
    size_t n = pack_event("user", "u9", NOW, 4, names, v, buf);
    ck_assert_int_eq(feat_decode(dec, "user_events", NULL, 0, buf, n, NULL, 0, NOW, &out), FEAT_DEC_EVENT);
    ck_assert_int_eq(out.n, 4);
    ck_assert(out.klen == 2 && memcmp(out.key, "u9", 2) == 0);
    ck_assert_int_eq(out.vals[find("clicks")].v.i, -7);
    ck_assert_double_eq(out.vals[find("ctr")].v.d, 1e-300);
    ck_assert(memcmp(out.vals[find("country")].v.s, "FR", 2) == 0);
    ck_assert_int_eq(out.vals[find("premium")].v.b, 1);
    /* explicit content-type; table and key left empty */
    n = pack_event("", "", NOW, 1, names, v, buf);
    ck_assert_int_eq(feat_decode(dec, "user_events", "mk", 2, buf, n, "application/x-protobuf", 22, NOW, &out), FEAT_DEC_EVENT);
    ck_assert(out.klen == 2 && memcmp(out.key, "mk", 2) == 0);
    Featd__V1__LabelEvent le = FEATD__V1__LABEL_EVENT__INIT;
    le.model = "churn"; le.key = "u1"; le.ts = NOW; le.label = 0.75;
    n = featd__v1__label_event__pack(&le, buf);
    ck_assert_int_eq(feat_decode(dec, "churn_labels", NULL, 0, buf, n, NULL, 0, NOW, &out), FEAT_DEC_LABEL);
    ck_assert_double_eq(out.label, 0.75);
}
END_TEST

/* Each case: topic, Kafka key, value (JSON text, or NULL + protobuf case id), expected reason. */
typedef struct bad_case { const char *topic; const char *key; const char *json; feat_dl_reason_t want; } bad_case_t;
static const bad_case_t bad[] = {
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"clicks\":1}", FEAT_DL_UNDECODABLE},
    {"user_events", "k", "[1,2,3]", FEAT_DL_UNDECODABLE},
    {"user_events", "k", "\x08\x96\x01\xff\xff", FEAT_DL_UNDECODABLE},  /* truncated protobuf */
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"country\":\"\xc3\x28\"}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "k", "{\"table\":\"item\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_UNKNOWN_TABLE},
    {"shared", "k", "{\"ts\":1732406400000,\"features\":{\"x\":1}}", FEAT_DL_UNKNOWN_TABLE},
    {"nowhere", "k", "{\"ts\":1732406400000,\"features\":{\"x\":1}}", FEAT_DL_UNKNOWN_TABLE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"clicks\":1,\"bogus\":2}}", FEAT_DL_UNKNOWN_FEATURE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"clicks\":\"3\"}}", FEAT_DL_WRONG_TYPE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"clicks\":3.5}}", FEAT_DL_WRONG_TYPE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"clicks\":99999999999999999999}}", FEAT_DL_WRONG_TYPE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"premium\":1}}", FEAT_DL_WRONG_TYPE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"ctr\":null}}", FEAT_DL_WRONG_TYPE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"country\":[\"x\"]}}", FEAT_DL_WRONG_TYPE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":[1]}", FEAT_DL_WRONG_TYPE},
    {"user_events", NULL, "{\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_MISSING_KEY},
    {"user_events", "", "{\"key\":\"\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_EMPTY_KEY},
    {"user_events", "", "{\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_MISSING_KEY},
    /* present but empty (or not a string) is bad input, not a cue to fall back */
    {"user_events", "kk", "{\"key\":\"\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_EMPTY_KEY},
    {"user_events", "kk", "{\"user_id\":\"\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_EMPTY_KEY},
    {"user_events", "kk", "{\"key\":null,\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_EMPTY_KEY},
    {"user_events", "kk", "{\"key\":true,\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_EMPTY_KEY},
    {"user_events", "kk", "{\"key\":1.5,\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_EMPTY_KEY},
    {"user_events", "kk", "{\"user_id\":{},\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_EMPTY_KEY},
    {"churn_labels", "kk", "{\"key\":\"\",\"ts\":1732406400000,\"label\":1}", FEAT_DL_EMPTY_KEY},
    {"user_events", "kk", "{\"table\":\"\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_UNKNOWN_TABLE},
    {"user_events", "kk", "{\"table\":5,\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_UNKNOWN_TABLE},
    {"user_events", "kk", "{\"table\":null,\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_UNKNOWN_TABLE},
    {"churn_labels", "kk", "{\"model\":\"\",\"ts\":1732406400000,\"label\":1}", FEAT_DL_UNKNOWN_MODEL},
    {"churn_labels", "kk", "{\"model\":[\"churn\"],\"ts\":1732406400000,\"label\":1}", FEAT_DL_UNKNOWN_MODEL},
    /* invalid UTF-8, raw or escaped, wherever a string is stored; the Kafka key when it is the key */
    {"user_events", "kk", "{\"key\":\"\xff\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"table\":\"us\xc0\xaf" "er\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_INVALID_UTF8},
    {"churn_labels", "kk", "{\"model\":\"\xed\xa0\x80\",\"ts\":1732406400000,\"label\":1}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"ts\":1732406400000,\"features\":{\"\xf4\x90\x80\x80\":1}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"ts\":1732406400000,\"features\":{\"country\":\"\xe2\x82\"}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"key\":\"\\ud800\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"key\":\"a\\uDBFF\\u0041\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"ts\":1732406400000,\"features\":{\"country\":\"\\udc00\"}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"ts\":1732406400000,\"features\":{\"\\ud83d\":1}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"ts\":1732406400000,\"junk\":\"\x80\",\"features\":{\"clicks\":1}}", FEAT_DL_INVALID_UTF8},
    {"user_events", "\xff", "{\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_INVALID_UTF8},
    {"churn_labels", "a\xc3", "{\"ts\":1732406400000,\"label\":1}", FEAT_DL_INVALID_UTF8},
    {"user_events", "kk", "{\"key\":\"\\uzzzz\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_UNDECODABLE},
    {"user_events", NULL, "{\"key\":\"a\\u0000b\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_BAD_KEY},
    {"user_events", "k", "{\"features\":{\"clicks\":1}}", FEAT_DL_MISSING_TIMESTAMP},
    {"user_events", "k", "{\"ts\":null,\"features\":{\"clicks\":1}}", FEAT_DL_MISSING_TIMESTAMP},
    {"user_events", "k", "{\"ts\":\"yesterday\",\"features\":{\"clicks\":1}}", FEAT_DL_BAD_TIMESTAMP},
    {"user_events", "k", "{\"ts\":1.5,\"features\":{\"clicks\":1}}", FEAT_DL_BAD_TIMESTAMP},
    {"user_events", "k", "{\"ts\":99999999999999,\"features\":{\"clicks\":1}}", FEAT_DL_BAD_TIMESTAMP},  /* year 5138 */
    {"user_events", "k", "{\"ts\":-5,\"features\":{\"clicks\":1}}", FEAT_DL_BAD_TIMESTAMP},
    {"user_events", "k", "{\"ts\":\"2024-02-30T00:00:00Z\",\"features\":{\"clicks\":1}}", FEAT_DL_BAD_TIMESTAMP},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"ctr\":1e999}}", FEAT_DL_NON_FINITE},
    {"churn_labels", "k", "{\"ts\":1732406400000,\"label\":-1e999}", FEAT_DL_NON_FINITE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"country\":\"0123456789abcdefX\"}}", FEAT_DL_OVERSIZE},
    {"user_events", "123456789", "{\"ts\":1732406400000,\"features\":{\"clicks\":1}}", FEAT_DL_OVERSIZE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{}}", FEAT_DL_NO_FEATURES},
    {"user_events", "k", "{\"ts\":1732406400000}", FEAT_DL_NO_FEATURES},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"clicks\":1,\"clicks\":2}}", FEAT_DL_DUPLICATE_FEATURE},
    {"churn_labels", "k", "{\"model\":\"nope\",\"ts\":1732406400000,\"label\":1}", FEAT_DL_UNKNOWN_MODEL},
    {"multi", "k", "{\"ts\":1732406400000,\"label\":1}", FEAT_DL_UNKNOWN_MODEL},
    {"churn_labels", "k", "{\"ts\":1732406400000,\"label\":\"yes\"}", FEAT_DL_WRONG_TYPE},
    {"churn_labels", "k", "{\"ts\":1732406400000}", FEAT_DL_WRONG_TYPE},
    {"user_events", "k", "", FEAT_DL_UNDECODABLE},
    {"user_events", "k", "{\"ts\":1732406400000,\"features\":{\"country\":\"a\\u0000b\"}}", FEAT_DL_UNDECODABLE},
};

START_TEST(bad_inputs_become_dead_letters) {
    const bad_case_t *c = &bad[_i];
    int k = dj(c->topic, c->key, c->json);
    ck_assert_msg(k == FEAT_DEC_DEAD, "case %d accepted", _i);
    ck_assert_msg(out.reason == c->want, "case %d: reason %s (%s), want %s", _i, feat_dl_reason_name(out.reason),
                  out.detail, feat_dl_reason_name(c->want));
    ck_assert_msg(out.detail[0] != 0, "case %d: no detail", _i);
}
END_TEST

START_TEST(protobuf_bad_inputs) {
    uint8_t buf[512];
    Featd__V1__Value v;
    featd__v1__value__init(&v);
    const char *name[1] = {"ctr"};
    /* NaN and infinity in a double_value */
    v.kind_case = FEATD__V1__VALUE__KIND_DOUBLE_VALUE;
    v.double_value = NAN;
    size_t n = pack_event("user", "k", NOW, 1, name, &v, buf);
    ck_assert_int_eq(feat_decode(dec, "user_events", NULL, 0, buf, n, NULL, 0, NOW, &out), FEAT_DEC_DEAD);
    ck_assert_int_eq(out.reason, FEAT_DL_NON_FINITE);
    v.double_value = -INFINITY;
    n = pack_event("user", "k", NOW, 1, name, &v, buf);
    ck_assert_int_eq(feat_decode(dec, "user_events", NULL, 0, buf, n, NULL, 0, NOW, &out), FEAT_DEC_DEAD);
    ck_assert_int_eq(out.reason, FEAT_DL_NON_FINITE);
    /* a value with no oneof set */
    v.kind_case = FEATD__V1__VALUE__KIND__NOT_SET;
    n = pack_event("user", "k", NOW, 1, name, &v, buf);
    ck_assert_int_eq(feat_decode(dec, "user_events", NULL, 0, buf, n, NULL, 0, NOW, &out), FEAT_DEC_DEAD);
    ck_assert_int_eq(out.reason, FEAT_DL_WRONG_TYPE);
    /* ts missing (proto3 zero) */
    v.kind_case = FEATD__V1__VALUE__KIND_DOUBLE_VALUE;
    v.double_value = 1;
    n = pack_event("user", "k", 0, 1, name, &v, buf);
    ck_assert_int_eq(feat_decode(dec, "user_events", NULL, 0, buf, n, NULL, 0, NOW, &out), FEAT_DEC_DEAD);
    ck_assert_int_eq(out.reason, FEAT_DL_MISSING_TIMESTAMP);
    /* a NUL inside the key (hand-built: protobuf-c cannot pack it): field 2, len 3, "a\0b" */
    static const uint8_t nulkey[] = {0x12, 0x03, 'a', 0x00, 'b', 0x18, 0x80, 0xa8, 0xdf, 0xdb, 0xb5, 0x32,
                                     0x22, 0x10, 0x0a, 0x03, 'c', 't', 'r', 0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
    ck_assert_int_eq(feat_decode(dec, "user_events", NULL, 0, nulkey, sizeof(nulkey), "application/protobuf", 20, NOW, &out), FEAT_DEC_DEAD);
    ck_assert_msg(out.reason == FEAT_DL_BAD_KEY, "%s: %s", feat_dl_reason_name(out.reason), out.detail);
    /* the same bytes with a clean key decode */
    uint8_t ok[sizeof(nulkey)];
    memcpy(ok, nulkey, sizeof(ok));
    ok[3] = 'x';
    ck_assert_int_eq(feat_decode(dec, "user_events", NULL, 0, ok, sizeof(ok), NULL, 0, NOW, &out), FEAT_DEC_EVENT);
    ck_assert_int_eq(out.ts, NOW);
    ck_assert_double_eq(out.vals[0].v.d, 1.0);
    /* every truncation of a valid message is rejected or decodes to a subset, never crashes */
    for (size_t cut = 1; cut < sizeof(ok); cut++)
        feat_decode(dec, "user_events", NULL, 0, ok, cut, NULL, 0, NOW, &out);
}
END_TEST

/* Hand-built wire forms no packer writes but protobuf allows (fuzz_event_proto
 * found both; protobuf-c's unpacker refuses them, protobuf C++ and upb do not):
 * a map entry whose Value appears more than once merges them, and a field tag
 * written as a zero-padded 6-byte varint is still that tag. */
START_TEST(protobuf_value_merge_and_padded_tags) {
    /* ts = NOW (field 3), then entry "ctr" (field 4) with Values A, B, ... appended */
    static const uint8_t head[] = {0x18, 0x80, 0xa8, 0xdf, 0xdb, 0xb5, 0x32};
    static const uint8_t v25[] = {0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0x04, 0x40}; /* Value{double 2.5} */
    static const uint8_t v40[] = {0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0x10, 0x40}; /* Value{double 4.0} */
    static const uint8_t empty[] = {0x12, 0x00};                                     /* Value{} */
    const struct { const uint8_t *a, *b; size_t na, nb; double want; } cases[] = {
        {v25, empty, sizeof(v25), sizeof(empty), 2.5}, /* an empty Value later keeps the value */
        {empty, v25, sizeof(empty), sizeof(v25), 2.5},
        {v25, v40, sizeof(v25), sizeof(v40), 4.0},     /* a later member replaces it */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint8_t msg[64];
        size_t n = 0;
        memcpy(msg, head, sizeof(head));
        n += sizeof(head);
        msg[n++] = 0x22;
        msg[n++] = (uint8_t)(5 + cases[c].na + cases[c].nb);
        memcpy(msg + n, "\x0a\x03" "ctr", 5);
        n += 5;
        memcpy(msg + n, cases[c].a, cases[c].na);
        n += cases[c].na;
        memcpy(msg + n, cases[c].b, cases[c].nb);
        n += cases[c].nb;
        ck_assert_int_eq(feat_decode(dec, "user_events", "k", 1, msg, n, NULL, 0, NOW, &out), FEAT_DEC_EVENT);
        ck_assert_int_eq(out.n, 1);
        ck_assert_double_eq(out.vals[0].v.d, cases[c].want);
    }
    /* only empty Values: no value, a dead letter */
    static const uint8_t none[] = {0x18, 0x80, 0xa8, 0xdf, 0xdb, 0xb5, 0x32, 0x22, 0x09, 0x0a, 0x03, 'c', 't', 'r',
                                   0x12, 0x00, 0x12, 0x00};
    ck_assert_int_eq(feat_decode(dec, "user_events", "k", 1, none, sizeof(none), NULL, 0, NOW, &out), FEAT_DEC_DEAD);
    ck_assert_int_eq(out.reason, FEAT_DL_WRONG_TYPE);
    /* ts written with a padded 6-byte tag (0x98 0x80 0x80 0x80 0x80 0x00 = field 3, varint) */
    static const uint8_t padded[] = {0x98, 0x80, 0x80, 0x80, 0x80, 0x00, 0x80, 0xa8, 0xdf, 0xdb, 0xb5, 0x32,
                                     0x22, 0x10, 0x0a, 0x03, 'c', 't', 'r', 0x12, 0x09, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f};
    ck_assert_int_eq(feat_decode(dec, "user_events", "k", 1, padded, sizeof(padded), NULL, 0, NOW, &out), FEAT_DEC_EVENT);
    ck_assert_int_eq(out.ts, NOW);
    ck_assert_double_eq(out.vals[0].v.d, 1.0);
}
END_TEST

/* Absent fields keep their fall-backs: the Kafka key, the topic's only table or model. */
START_TEST(absent_fields_fall_back) {
    ck_assert_int_eq(dj("user_events", "kk", "{\"ts\":1732406400000,\"features\":{\"clicks\":1}}"), FEAT_DEC_EVENT);
    ck_assert(out.klen == 2 && memcmp(out.key, "kk", 2) == 0);
    ck_assert_int_eq(out.table, 0);
    ck_assert_int_eq(dj("churn_labels", "kk", "{\"ts\":1732406400000,\"label\":1}"), FEAT_DEC_LABEL);
    ck_assert(out.klen == 2 && memcmp(out.key, "kk", 2) == 0);
    ck_assert_int_eq(out.model, 0);
    /* a Kafka key that is not UTF-8 does not matter when the event names its key */
    ck_assert_int_eq(dj("user_events", "\xff", "{\"key\":\"u1\",\"ts\":1732406400000,\"features\":{\"clicks\":1}}"), FEAT_DEC_EVENT);
    ck_assert(out.klen == 2 && memcmp(out.key, "u1", 2) == 0);
    /* valid multi-byte UTF-8 and escaped surrogate pairs are fine everywhere */
    ck_assert_int_eq(dj("user_events", NULL, "{\"key\":\"\\ud83d\\ude00\xe2\x82\xac\",\"ts\":1732406400000,"
                                             "\"features\":{\"country\":\"\xf0\x9f\x98\x80\"}}"), FEAT_DEC_EVENT);
    ck_assert(out.klen == 7 && memcmp(out.key, "\xf0\x9f\x98\x80\xe2\x82\xac", 7) == 0);
}
END_TEST

static int pd(const char *topic, const char *kafka_key, const uint8_t *buf, size_t n) {
    return feat_decode(dec, topic, kafka_key, kafka_key ? strlen(kafka_key) : 0, buf, n, "application/protobuf", 20, NOW, &out);
}

#define ASSERT_DEAD(call, want)                                                                              \
    do {                                                                                                     \
        ck_assert_int_eq((call), FEAT_DEC_DEAD);                                                             \
        ck_assert_msg(out.reason == (want), "reason %s (%s), want %s", feat_dl_reason_name(out.reason), out.detail, \
                      feat_dl_reason_name(want));                                                            \
    } while (0)

/* protobuf: invalid UTF-8 in every stored string is invalid_utf8; an empty
 * string is the same as an absent field (proto3), so it falls back. */
START_TEST(protobuf_utf8_and_empty) {
    uint8_t buf[512];
    Featd__V1__Value v[1];
    featd__v1__value__init(&v[0]);
    v[0].kind_case = FEATD__V1__VALUE__KIND_STRING_VALUE;
    v[0].string_value = "FR";
    const char *country[1] = {"country"};
    size_t n = pack_event("user", "\xff", NOW, 1, country, v, buf);
    ASSERT_DEAD(pd("user_events", NULL, buf, n), FEAT_DL_INVALID_UTF8);
    n = pack_event("us\xe9r", "k", NOW, 1, country, v, buf);
    ASSERT_DEAD(pd("user_events", NULL, buf, n), FEAT_DL_INVALID_UTF8);
    const char *badname[1] = {"countr\xc0\xb9"};
    n = pack_event("user", "k", NOW, 1, badname, v, buf);
    ASSERT_DEAD(pd("user_events", NULL, buf, n), FEAT_DL_INVALID_UTF8);
    v[0].string_value = "F\xed\xbf\xbf";
    n = pack_event("user", "k", NOW, 1, country, v, buf);
    ASSERT_DEAD(pd("user_events", NULL, buf, n), FEAT_DL_INVALID_UTF8);
    /* the Kafka key, used because the event's key is empty (absent) */
    v[0].string_value = "FR";
    n = pack_event("", "", NOW, 1, country, v, buf);
    ASSERT_DEAD(pd("user_events", "\xf8\x88\x80\x80\x80", buf, n), FEAT_DL_INVALID_UTF8);
    ck_assert_int_eq(pd("user_events", "k\xc3\xa9", buf, n), FEAT_DEC_EVENT);
    ck_assert(out.klen == 3 && memcmp(out.key, "k\xc3\xa9", 3) == 0);
    ck_assert_int_eq(out.table, 0);
    Featd__V1__LabelEvent le = FEATD__V1__LABEL_EVENT__INIT;
    le.model = "ch\x80urn"; le.key = "u1"; le.ts = NOW; le.label = 1;
    n = featd__v1__label_event__pack(&le, buf);
    ASSERT_DEAD(pd("churn_labels", NULL, buf, n), FEAT_DL_INVALID_UTF8);
    le.model = ""; le.key = "";
    n = featd__v1__label_event__pack(&le, buf);
    ck_assert_int_eq(pd("churn_labels", "u2", buf, n), FEAT_DEC_LABEL);
    ck_assert(out.klen == 2 && memcmp(out.key, "u2", 2) == 0 && out.model == 0);
    ASSERT_DEAD(pd("churn_labels", NULL, buf, n), FEAT_DL_MISSING_KEY);
    /* empty strings written explicitly on the wire (packers leave them out; others may not):
     * table "" (0a 00), key "" (12 00), ts, "clicks" = 1 */
    static const uint8_t explicit_empty[] = {0x0a, 0x00, 0x12, 0x00, 0x18, 0x80, 0xa8, 0xdf, 0xdb, 0xb5, 0x32,
                                             0x22, 0x0c, 0x0a, 0x06, 'c', 'l', 'i', 'c', 'k', 's', 0x12, 0x02, 0x10, 0x01};
    ck_assert_int_eq(pd("user_events", "kk", explicit_empty, sizeof(explicit_empty)), FEAT_DEC_EVENT);
    ck_assert(out.klen == 2 && memcmp(out.key, "kk", 2) == 0 && out.table == 0 && out.vals[0].v.i == 1);
    ASSERT_DEAD(pd("user_events", NULL, explicit_empty, sizeof(explicit_empty)), FEAT_DL_MISSING_KEY);
    ASSERT_DEAD(pd("shared", "kk", explicit_empty, sizeof(explicit_empty)), FEAT_DL_UNKNOWN_TABLE);
}
END_TEST

START_TEST(reason_names_are_stable) {
    /* metric labels and stored dead letters use these: existing ones never change */
    static const char *const names[] = {"undecodable", "unknown_table", "unknown_feature", "unknown_model",
                                        "wrong_type", "missing_key", "bad_key", "missing_timestamp", "bad_timestamp",
                                        "non_finite", "oversize", "no_features", "duplicate_feature", "empty_key",
                                        "invalid_utf8", "missing_label_key"};
    ck_assert_int_eq(FEAT_DL_COUNT, sizeof(names) / sizeof(names[0]));
    for (int r = 0; r < FEAT_DL_COUNT; r++) ck_assert_str_eq(feat_dl_reason_name((feat_dl_reason_t)r), names[r]);
    ck_assert_str_eq(feat_dl_reason_name(FEAT_DL_EMPTY_KEY), "empty_key");
    ck_assert_str_eq(feat_dl_reason_name(FEAT_DL_INVALID_UTF8), "invalid_utf8");
}
END_TEST

/* Labels of a model over several tables carry a key per label_keys entity,
 * returned in label_keys order whatever order the label gives them. */
START_TEST(labels_with_keys) {
    ck_assert_int_eq(dj("fraud_labels", NULL,
                        "{\"model\":\"fraud\",\"key\":\"u1\",\"ts\":1732406400000,\"label\":1,"
                        "\"keys\":{\"shop_id\":17,\"merchant_id\":\"m\\u00e9\",\"other\":\"ignored\"}}"),
                     FEAT_DEC_LABEL);
    ck_assert_int_eq(out.nx, 2);
    ck_assert(out.xklens[0] == 3 && memcmp(out.xkeys[0], "m\xc3\xa9", 3) == 0);
    ck_assert(out.xklens[1] == 2 && memcmp(out.xkeys[1], "17", 2) == 0);
    ck_assert(out.klen == 2 && memcmp(out.key, "u1", 2) == 0);
    /* a model without label_keys: nothing extra, "keys" ignored */
    ck_assert_int_eq(dj("churn_labels", NULL, "{\"key\":\"u1\",\"ts\":1732406400000,\"label\":0,\"keys\":{\"a\":\"b\"}}"),
                     FEAT_DEC_LABEL);
    ck_assert_int_eq(out.nx, 0);
    /* missing, empty, wrong type, oversize (max_key_bytes = 8), NUL, not an object */
    ASSERT_DEAD(dj("fraud_labels", NULL, "{\"key\":\"u1\",\"ts\":1732406400000,\"label\":1,\"keys\":{\"shop_id\":\"s\"}}"),
                FEAT_DL_MISSING_LABEL_KEY);
    ck_assert_ptr_nonnull(strstr(out.detail, "merchant_id"));
    ASSERT_DEAD(dj("fraud_labels", NULL, "{\"key\":\"u1\",\"ts\":1732406400000,\"label\":1}"), FEAT_DL_MISSING_LABEL_KEY);
    ck_assert_str_eq(feat_dl_reason_name(out.reason), "missing_label_key");
    ASSERT_DEAD(dj("fraud_labels", NULL,
                   "{\"key\":\"u1\",\"ts\":1732406400000,\"label\":1,\"keys\":{\"shop_id\":\"s\",\"merchant_id\":\"\"}}"),
                FEAT_DL_EMPTY_KEY);
    ASSERT_DEAD(dj("fraud_labels", NULL,
                   "{\"key\":\"u1\",\"ts\":1732406400000,\"label\":1,\"keys\":{\"shop_id\":\"s\",\"merchant_id\":null}}"),
                FEAT_DL_WRONG_TYPE);
    ASSERT_DEAD(dj("fraud_labels", NULL,
                   "{\"key\":\"u1\",\"ts\":1732406400000,\"label\":1,\"keys\":{\"shop_id\":\"s\",\"merchant_id\":\"123456789\"}}"),
                FEAT_DL_OVERSIZE);
    ASSERT_DEAD(dj("fraud_labels", NULL,
                   "{\"key\":\"u1\",\"ts\":1732406400000,\"label\":1,\"keys\":{\"shop_id\":\"s\",\"merchant_id\":\"a\\u0000\"}}"),
                FEAT_DL_BAD_KEY);
    ASSERT_DEAD(dj("fraud_labels", NULL, "{\"key\":\"u1\",\"ts\":1732406400000,\"label\":1,\"keys\":[\"m\"]}"),
                FEAT_DL_WRONG_TYPE);

    /* protobuf LabelEvent.keys, packed by protobuf-c */
    uint8_t buf[512];
    Featd__V1__LabelEvent le = FEATD__V1__LABEL_EVENT__INIT;
    Featd__V1__LabelEvent__KeysEntry e1 = FEATD__V1__LABEL_EVENT__KEYS_ENTRY__INIT, e2 = e1;
    Featd__V1__LabelEvent__KeysEntry *ents[2] = {&e1, &e2};
    e1.key = "merchant_id"; e1.value = "m7";
    e2.key = "shop_id"; e2.value = "s9";
    le.model = "fraud"; le.key = "u2"; le.ts = NOW; le.label = 1;
    le.n_keys = 2; le.keys = ents;
    size_t n = featd__v1__label_event__pack(&le, buf);
    ck_assert_int_eq(pd("fraud_labels", NULL, buf, n), FEAT_DEC_LABEL);
    ck_assert_int_eq(out.nx, 2);
    ck_assert(out.xklens[0] == 2 && memcmp(out.xkeys[0], "m7", 2) == 0);
    ck_assert(out.xklens[1] == 2 && memcmp(out.xkeys[1], "s9", 2) == 0);
    le.n_keys = 1; /* no shop_id */
    n = featd__v1__label_event__pack(&le, buf);
    ASSERT_DEAD(pd("fraud_labels", NULL, buf, n), FEAT_DL_MISSING_LABEL_KEY);
    ck_assert_ptr_nonnull(strstr(out.detail, "shop_id"));
    le.n_keys = 2;
    e2.value = "s\xff";
    n = featd__v1__label_event__pack(&le, buf);
    ASSERT_DEAD(pd("fraud_labels", NULL, buf, n), FEAT_DL_INVALID_UTF8);
}
END_TEST

START_TEST(oversize_message) {
    char big[5000];
    memset(big, ' ', sizeof(big));
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = 0;
    ck_assert_int_eq(dj("user_events", "k", big), FEAT_DEC_DEAD);
    ck_assert_int_eq(out.reason, FEAT_DL_OVERSIZE);
}
END_TEST

START_TEST(rfc3339) {
    int64_t ms;
    ck_assert_int_eq(feat_parse_rfc3339("1970-01-01T00:00:00Z", 20, &ms), 0);
    ck_assert_int_eq(ms, 0);
    ck_assert_int_eq(feat_parse_rfc3339("2024-11-24T00:00:00Z", 20, &ms), 0);
    ck_assert_int_eq(ms, NOW);
    ck_assert_int_eq(feat_parse_rfc3339("2000-02-29T12:34:56.789-02:30", 29, &ms), 0);
    ck_assert_int_eq(ms, 951827696789LL + 9000000LL);
    ck_assert_int_ne(feat_parse_rfc3339("2023-02-29T00:00:00Z", 20, &ms), 0);
    ck_assert_int_ne(feat_parse_rfc3339("2024-11-24T00:00:00", 19, &ms), 0);
    ck_assert_int_ne(feat_parse_rfc3339("2024-13-01T00:00:00Z", 20, &ms), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("decode");
    TCase *tc = tcase_create("decode");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, json_full_event);
    tcase_add_test(tc, json_short_forms);
    tcase_add_test(tc, json_escaped_member_names);
    tcase_add_test(tc, json_labels);
    tcase_add_test(tc, protobuf_event_and_label);
    tcase_add_loop_test(tc, bad_inputs_become_dead_letters, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, protobuf_bad_inputs);
    tcase_add_test(tc, protobuf_value_merge_and_padded_tags);
    tcase_add_test(tc, absent_fields_fall_back);
    tcase_add_test(tc, protobuf_utf8_and_empty);
    tcase_add_test(tc, reason_names_are_stable);
    tcase_add_test(tc, labels_with_keys);
    tcase_add_test(tc, oversize_message);
    tcase_add_test(tc, rfc3339);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
