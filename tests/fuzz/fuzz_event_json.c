/*
 * tests/fuzz/fuzz_event_json.c — libFuzzer target: JSON feature events and
 * labels through feat_decode() (ingest/decode.c), and the tokenizer under it
 * (common/json.c) on its own.
 *
 * Input layout: fuzz_decode.h (byte 0 = topic, key, content-type; rest = the
 * value).  The decoder's results must meet fuzz_check_decoded()'s invariants.
 * The tokenizer's tokens must nest inside the text and each other, every
 * string must unescape to valid UTF-8 that compares equal to itself
 * (feat_json_str_eq), and member lookups and number conversions must not
 * misbehave on any token.
 */
#include "fuzz_decode.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    fuzz_decode_init();
    return 0;
}

static void check_tokens(const char *text, size_t len) {
    enum { NTOKS = 256 };
    static feat_json_tok_t toks[NTOKS];
    static char buf[1 << 16];
    size_t nt = 0;
    if (feat_json_parse(text, len, toks, NTOKS, 24, &nt, NULL) != FEAT_OK) return;
    int n = (int)nt;
    FUZZ_CHECK(n >= 1 && n <= NTOKS, "%d tokens", n);
    FUZZ_CHECK(toks[0].next == (uint32_t)n, "root subtree ends at %u of %d", toks[0].next, n);
    for (int i = 0; i < n; i++) {
        const feat_json_tok_t *t = &toks[i];
        FUZZ_CHECK(t->type >= FEAT_JSON_OBJECT && t->type <= FEAT_JSON_NULL, "token %d type %d", i, t->type);
        FUZZ_CHECK(t->start <= t->end && t->end <= len, "token %d spans [%u, %u) of %zu", i, t->start, t->end, len);
        FUZZ_CHECK(t->next > (uint32_t)i && t->next <= (uint32_t)n, "token %d next %u", i, t->next);
        if (t->type == FEAT_JSON_OBJECT || t->type == FEAT_JSON_ARRAY) {
            /* children: size of them (objects: key + value pairs), inside the brackets */
            uint32_t want = t->type == FEAT_JSON_OBJECT ? 2 * t->size : t->size, got = 0;
            for (uint32_t c = (uint32_t)i + 1; c < t->next; c = toks[c].next, got++) {
                FUZZ_CHECK(toks[c].start >= t->start && toks[c].end <= t->end, "child %u outside token %d", c, i);
                if (t->type == FEAT_JSON_OBJECT && got % 2 == 0)
                    FUZZ_CHECK(toks[c].type == FEAT_JSON_STRING, "object %d key %u is type %d", i, c, toks[c].type);
            }
            FUZZ_CHECK(got == want, "token %d has %u children, size says %u", i, got, want);
            if (t->type == FEAT_JSON_OBJECT) {
                (void)feat_json_obj_get(text, toks, i, "features");
                (void)feat_json_obj_get(text, toks, i, "key");
            }
        } else {
            FUZZ_CHECK(t->next == (uint32_t)i + 1, "scalar token %d has children", i);
        }
        if (t->type == FEAT_JSON_STRING) {
            size_t l = 0;
            feat_err_t e = feat_json_unescape(text, t, buf, sizeof(buf), &l);
            FUZZ_CHECK(e == FEAT_OK && l <= t->end - t->start, "string token %d unescapes to %zu bytes (%d)", i, l, e);
            FUZZ_CHECK(feat_utf8_valid(buf, l), "string token %d unescapes to invalid UTF-8", i);
            FUZZ_CHECK(feat_json_str_eq(text, t, buf, l), "string token %d differs from its unescaping", i);
            if (!t->escaped) FUZZ_CHECK(memcmp(buf, text + t->start, l) == 0, "plain string %d copied wrongly", i);
        } else if (t->type == FEAT_JSON_NUMBER) {
            double d;
            int64_t v;
            if (feat_json_double(text, t, &d) == FEAT_OK) FUZZ_CHECK(isfinite(d), "number %d is %g", i, d);
            if (feat_json_int64(text, t, &v) == FEAT_OK) FUZZ_CHECK(t->integral, "non-integral number %d as int64", i);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t vlen = size - 1;
    uint8_t *val = malloc(vlen ? vlen : 1);
    FUZZ_CHECK(val != NULL, "malloc");
    memcpy(val, data + 1, vlen);
    static feat_decoded_t out;
    const char *topic;
    fuzz_decode_one(data[0], val, vlen, "application/json", &topic, &out);
    check_tokens((const char *)val, vlen);
    free(val);
    return 0;
}
