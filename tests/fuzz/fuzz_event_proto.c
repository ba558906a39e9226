/*
 * tests/fuzz/fuzz_event_proto.c — libFuzzer target: protobuf FeatureEvent /
 * LabelEvent values through feat_decode() (ingest/decode.c's zero-copy wire
 * reader plus validation), the entry point the Kafka consumer calls.
 *
 * Input layout: fuzz_decode.h (byte 0 = topic, key, content-type; rest = the
 * value).  Besides the sanitizers and fuzz_check_decoded()'s invariants, an
 * accepted message must also decode with protobuf-c's generated unpacker
 * (an independent implementation of the wire format) to the same table or
 * model, key, time and feature values — unless it holds one of the valid
 * forms protobuf-c alone refuses (pbc_refuses_valid()).
 */
#include "fuzz_decode.h"

#include "featd/v1/event.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_decode_init();
    return 0;
}

/* Valid wire forms protobuf-c's unpacker refuses (protobuf C++ and upb, and
 * feat_decode, accept them): a tag or length prefix written as a zero-padded
 * varint of more than 5 bytes ("8d 8d 8d 8d 8d 00"), and a map entry whose
 * Value appears more than once (protobuf-c fails to merge two occurrences when
 * the first has no oneof member set).  1 if the message, its map entries or
 * their Values hold one; level 0 message, 1 entry, 2 Value. */
static int long_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    int n = 0;
    *v = 0;
    while (*p < end && n < 10) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << (7 * n++);
        if (!(b & 0x80)) return n;
    }
    return -1;
}

/* map_field: the message's map (FeatureEvent.features = 4, LabelEvent.keys = 5);
 * value_msg: its values are Value messages (FeatureEvent) rather than strings. */
static int pbc_refuses_valid(const uint8_t *p, size_t len, int level, unsigned map_field, int value_msg) {
    const uint8_t *end = p + len;
    int values = 0;
    while (p < end) {
        uint64_t tag, l;
        int n = long_varint(&p, end, &tag);
        if (n < 0) return 0;
        if (n > 5) return 1;
        switch (tag & 7) {
        case 0: if (long_varint(&p, end, &l) < 0) return 0; break;
        case 1: if (end - p < 8) return 0; p += 8; break;
        case 5: if (end - p < 4) return 0; p += 4; break;
        case 2:
            n = long_varint(&p, end, &l);
            if (n < 0 || l > (uint64_t)(end - p)) return 0;
            if (n > 5) return 1;
            if (value_msg && level == 1 && tag >> 3 == 2 && ++values > 1) return 1;
            if (((level == 0 && tag >> 3 == map_field) || (value_msg && level == 1 && tag >> 3 == 2)) &&
                pbc_refuses_valid(p, l, level + 1, map_field, value_msg))
                return 1;
            p += l;
            break;
        default: return 0;
        }
    }
    return 0;
}

static int str_is(const char *pbs, const char *s, size_t n) {
    return strlen(pbs) == n && memcmp(pbs, s, n) == 0;
}

static void same_key(const char *pbkey, const feat_decoded_t *o) {
    if (pbkey && *pbkey) FUZZ_CHECK(str_is(pbkey, o->key, o->klen), "key differs from protobuf-c's");
    else FUZZ_CHECK(o->klen == 6 && memcmp(o->key, "kafka1", 6) == 0, "no key in the event but not the Kafka key");
}

static void check_label(const uint8_t *val, size_t vlen, const feat_decoded_t *o) {
    Featd__V1__LabelEvent *ev = featd__v1__label_event__unpack(NULL, vlen, val);
    FUZZ_CHECK(ev != NULL || pbc_refuses_valid(val, vlen, 0, 5, 0), "decoder accepted a LabelEvent protobuf-c refuses");
    if (!ev) return;
    if (ev->model && *ev->model) FUZZ_CHECK(!strcmp(ev->model, fuzz_cfg->models[o->model].name), "model differs");
    same_key(ev->key, o);
    FUZZ_CHECK(ev->ts == o->ts, "ts %lld vs %lld", (long long)ev->ts, (long long)o->ts);
    FUZZ_CHECK(memcmp(&ev->label, &o->label, sizeof(double)) == 0, "label %g vs %g", ev->label, o->label);
    featd__v1__label_event__free_unpacked(ev, NULL);
}

static void check_event(const uint8_t *val, size_t vlen, const feat_decoded_t *o) {
    Featd__V1__FeatureEvent *ev = featd__v1__feature_event__unpack(NULL, vlen, val);
    FUZZ_CHECK(ev != NULL || pbc_refuses_valid(val, vlen, 0, 4, 1),
               "decoder accepted a FeatureEvent protobuf-c refuses");
    if (!ev) return;
    const feat_table_conf_t *t = &fuzz_cfg->tables[o->table];
    if (ev->table && *ev->table) FUZZ_CHECK(!strcmp(ev->table, t->name), "table differs");
    same_key(ev->key, o);
    FUZZ_CHECK(ev->ts == o->ts, "ts %lld vs %lld", (long long)ev->ts, (long long)o->ts);
    FUZZ_CHECK(ev->n_features == o->n, "%zu map entries vs %zu features", ev->n_features, o->n);
    for (size_t i = 0; i < o->n; i++) {
        const Featd__V1__FeatureEvent__FeaturesEntry *fe = ev->features[i];
        const feat_value_t *v = &o->vals[i];
        FUZZ_CHECK(fe->key && !strcmp(fe->key, t->features[o->fidx[i]].name), "feature %zu name differs", i);
        FUZZ_CHECK(fe->value != NULL, "feature %zu accepted without a Value", i);
        const Featd__V1__Value *pv = fe->value;
        /* A Value sent twice in one entry merges (the protobuf spec, and
         * featd, and Python's protobuf: the later message's fields win);
         * protobuf-c 1.4 keeps the last occurrence whole, so it may see no
         * kind where the earlier occurrence set one.  No oracle then. */
        if (pv->kind_case == FEATD__V1__VALUE__KIND__NOT_SET) continue;
        switch (v->type) {
        case FEAT_FT_DOUBLE:
            if (pv->kind_case == FEATD__V1__VALUE__KIND_INT64_VALUE)
                FUZZ_CHECK(v->v.d == (double)pv->int64_value, "feature %zu: int %lld widened to %g", i,
                           (long long)pv->int64_value, v->v.d);
            else
                FUZZ_CHECK(pv->kind_case == FEATD__V1__VALUE__KIND_DOUBLE_VALUE &&
                               memcmp(&pv->double_value, &v->v.d, sizeof(double)) == 0,
                           "feature %zu: double differs", i);
            break;
        case FEAT_FT_INT64:
            FUZZ_CHECK(pv->kind_case == FEATD__V1__VALUE__KIND_INT64_VALUE && pv->int64_value == v->v.i,
                       "feature %zu: int64 differs", i);
            break;
        case FEAT_FT_BOOL:
            FUZZ_CHECK(pv->kind_case == FEATD__V1__VALUE__KIND_BOOL_VALUE && (int)pv->bool_value == v->v.b,
                       "feature %zu: bool differs", i);
            break;
        case FEAT_FT_STRING:
            FUZZ_CHECK(pv->kind_case == FEATD__V1__VALUE__KIND_STRING_VALUE && str_is(pv->string_value, v->v.s, v->slen),
                       "feature %zu: string differs", i);
            break;
        default: FUZZ_CHECK(0, "feature %zu: type %d", i, v->type);
        }
    }
    featd__v1__feature_event__free_unpacked(ev, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t vlen = size - 1;
    uint8_t *val = malloc(vlen ? vlen : 1);
    FUZZ_CHECK(val != NULL, "malloc");
    memcpy(val, data + 1, vlen);
    static feat_decoded_t out;
    const char *topic;
    /* protobuf whatever the first byte is: the header says so (bit 3) or the value
     * does not start with '{'; a '{' without the header is the JSON target's job */
    int rc = fuzz_decode_one((uint8_t)(data[0] | 8), val, vlen, "application/x-protobuf", &topic, &out);
    if (rc == FEAT_DEC_LABEL) check_label(val, vlen, &out);
    else if (rc == FEAT_DEC_EVENT) check_event(val, vlen, &out);
    free(val);
    return 0;
}
