/* Unit tests for common/json.c. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"

/* The number of tokens, or the feat_err_t of a refusal. */
static int parse(const char *s, feat_json_tok_t *t, size_t n) {
    size_t nt = 0;
    feat_err_t e = feat_json_parse(s, strlen(s), t, n, 32, &nt, NULL);
    return e == FEAT_OK ? (int)nt : e;
}

START_TEST(valid_documents) {
    feat_json_tok_t t[64];
    const char *s = "{\"a\": [1, -2.5e3, true, false, null], \"b\\n\": \"x\\u00e9\\ud83d\\ude00\", \"c\": {}}";
    int n = parse(s, t, 64);
    ck_assert_int_eq(n, 12); /* object, 3 keys, array + 5 items, string, {} */
    ck_assert_int_eq(t[0].type, FEAT_JSON_OBJECT);
    ck_assert_int_eq(t[0].size, 3);
    int a = feat_json_obj_get(s, t, 0, "a");
    ck_assert_int_eq(t[a].type, FEAT_JSON_ARRAY);
    ck_assert_int_eq(t[a].size, 5);
    /* containers span their brackets */
    ck_assert_int_eq(t[a].end - t[a].start, (int)strlen("[1, -2.5e3, true, false, null]"));
    ck_assert_int_eq(memcmp(s + t[a].start, "[1, -2.5e3, true, false, null]", t[a].end - t[a].start), 0);
    ck_assert_int_eq(t[0].start, 0);
    ck_assert_int_eq(t[0].end, (int)strlen(s));
    int cobj = feat_json_obj_get(s, t, 0, "c");
    ck_assert_int_eq(t[cobj].end - t[cobj].start, 2);
    double d;
    ck_assert_int_eq(feat_json_double(s, &t[a + 2], &d), 0);
    ck_assert_double_eq(d, -2500.0);
    int64_t i;
    ck_assert_int_eq(feat_json_int64(s, &t[a + 1], &i), 0);
    ck_assert_int_eq(i, 1);
    ck_assert_int_ne(feat_json_int64(s, &t[a + 2], &i), 0); /* not integral */
    int b = feat_json_obj_get(s, t, 0, "b\n");
    ck_assert_int_gt(b, 0);
    char out[32];
    size_t l = 0;
    ck_assert_int_eq(feat_json_unescape(s, &t[b], out, sizeof(out), &l), FEAT_OK);
    ck_assert_uint_eq(l, 1 + 2 + 4);
    ck_assert(memcmp(out, "x\xc3\xa9\xf0\x9f\x98\x80", 7) == 0);
    int c = feat_json_obj_get(s, t, 0, "c");
    ck_assert_int_eq(t[c].type, FEAT_JSON_OBJECT);
    ck_assert_int_eq(feat_json_obj_get(s, t, 0, "zz"), -1);
    ck_assert_int_eq(parse("  7 ", t, 4), 1);
    ck_assert_int_eq(parse("\"\"", t, 4), 1);
}
END_TEST

START_TEST(invalid_documents) {
    static const char *bad[] = {"", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]",
                                "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "\"abc", "\"\\x\"",
                                "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"", "{\"a\":1}x", "{'a':1}",
                                "\"\x01\"", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "NaN", "Infinity",
                                "[1e400]"};
    feat_json_tok_t t[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = parse(bad[i], t, 16);
        if (i == sizeof(bad) / sizeof(bad[0]) - 1) { /* syntactically valid; not finite as a double */
            double d;
            ck_assert_int_eq(n, 2);
            ck_assert_int_ne(feat_json_double(bad[i], &t[1], &d), 0);
            continue;
        }
        ck_assert_msg(n < 0, "accepted bad JSON #%zu: %s", i, bad[i]);
    }
}
END_TEST

START_TEST(limits) {
    feat_json_tok_t t[4];
    ck_assert_int_eq(parse("[1,2,3,4,5]", t, 4), FEAT_ERR_TOO_LARGE);
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    feat_json_tok_t big[128];
    ck_assert_int_eq(feat_json_parse(deep, 200, big, 128, 32, NULL, NULL), FEAT_ERR_TOO_LARGE);
    int64_t i;
    const char *s = "[9223372036854775807, -9223372036854775808, 9223372036854775808]";
    ck_assert_int_eq(parse(s, big, 8), 4);
    ck_assert_int_eq(feat_json_int64(s, &big[1], &i), 0);
    ck_assert_int_eq(i, INT64_MAX);
    ck_assert_int_eq(feat_json_int64(s, &big[2], &i), 0);
    ck_assert_int_eq(i, INT64_MIN);
    ck_assert_int_ne(feat_json_int64(s, &big[3], &i), 0);
}
END_TEST

/* The number fast path must agree bit for bit with strtod. */
START_TEST(doubles_match_strtod) {
    uint64_t st = 12345;
    char lit[64];
    feat_json_tok_t t[2];
    for (int i = 0; i < 200000; i++) {
        st ^= st << 13; st ^= st >> 7; st ^= st << 17;
        int form = (int)(st % 5);
        uint64_t m = (st >> 8) % 1000000000000000ull >> (st % 40);
        int e = (int)((st >> 3) % 60) - 30;
        if (form == 0) snprintf(lit, sizeof(lit), "%llu", (unsigned long long)m);
        else if (form == 1) snprintf(lit, sizeof(lit), "-%llu.%03d", (unsigned long long)m, (int)(st % 1000));
        else if (form == 2) snprintf(lit, sizeof(lit), "%llue%d", (unsigned long long)m, e);
        else if (form == 3) snprintf(lit, sizeof(lit), "0.%06llu", (unsigned long long)(m % 1000000));
        else snprintf(lit, sizeof(lit), "%.17g", (double)m * 1.000001);
        size_t nt = 0;
        ck_assert_int_eq(feat_json_parse(lit, strlen(lit), t, 2, 4, &nt, NULL), FEAT_OK);
        ck_assert_uint_eq(nt, 1);
        double got, want = strtod(lit, NULL);
        ck_assert_int_eq(feat_json_double(lit, &t[0], &got), 0);
        ck_assert_msg(memcmp(&got, &want, sizeof(double)) == 0, "%s: %.17g != %.17g", lit, got, want);
    }
}
END_TEST

/* fuzz_event_json found it: an escaped string longer than 256 bytes once never
 * compared equal, not even to its own unescaping. */
START_TEST(long_escaped_strings_compare) {
    enum { N = 600 };
    static char doc[4 * N + 16], want[N + 1];
    size_t o = 0;
    doc[o++] = '"';
    for (int i = 0; i < N; i++) {
        want[i] = (char)('a' + i % 26);
        if (i % 3 == 0) { doc[o++] = '\\'; doc[o++] = 'u'; o += (size_t)sprintf(doc + o, "%04x", (unsigned)want[i]); }
        else doc[o++] = want[i];
    }
    doc[o++] = '"';
    doc[o] = 0;
    feat_json_tok_t t[2];
    ck_assert_int_eq(parse(doc, t, 2), 1);
    ck_assert_int_eq(t[0].escaped, 1);
    ck_assert(feat_json_str_eq(doc, &t[0], want, N));
    ck_assert(!feat_json_str_eq(doc, &t[0], want, N - 1));       /* a prefix is not equal */
    want[N - 1] ^= 1;
    ck_assert(!feat_json_str_eq(doc, &t[0], want, N));           /* nor is a different last byte */
    want[N - 1] ^= 1;
    want[N] = 'x';
    ck_assert(!feat_json_str_eq(doc, &t[0], want, N + 1));       /* nor a longer string */
    static char out[N];
    size_t l = 0;
    ck_assert_int_eq(feat_json_unescape(doc, &t[0], out, N, &l), FEAT_OK);
    ck_assert_uint_eq(l, N);
    ck_assert(memcmp(out, want, N) == 0);
    ck_assert_int_eq(feat_json_unescape(doc, &t[0], out, N - 1, &l), FEAT_ERR_TOO_LARGE);
}
END_TEST

int main(void) {
    Suite *s = suite_create("json");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, valid_documents);
    tcase_add_test(tc, invalid_documents);
    tcase_add_test(tc, limits);
    tcase_add_test(tc, doubles_match_strtod);
    tcase_add_test(tc, long_escaped_strings_compare);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
