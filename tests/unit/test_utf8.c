/* Unit tests for common/utf8.c: featd's validator agrees with Python's own
 * UTF-8 decoder on every case of tests/unit/utf8_cases.h (made by
 * gen_utf8_cases.py), on the verdict and on where the first bad sequence
 * starts; the JSON tokenizer agrees too and reports the same offset. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "common/utf8.h"
#include "utf8_cases.h"

#define NCASES (sizeof(utf8_cases) / sizeof(utf8_cases[0]))

START_TEST(matches_python) {
    size_t nvalid = 0;
    for (size_t i = 0; i < NCASES; i++) {
        const utf8_case_t *c = &utf8_cases[i];
        /* a malloc'd copy of exactly len bytes, so ASan sees any over-read */
        char *b = malloc(c->len + 1);
        ck_assert_ptr_nonnull(b);
        memcpy(b, c->bytes, c->len);
        size_t want = c->bad < 0 ? c->len : (size_t)c->bad;
        size_t got = feat_utf8_valid_prefix(b, c->len);
        ck_assert_msg(got == want, "case %zu (%zu bytes): first bad byte %zu, Python says %ld", i, c->len, got, c->bad);
        ck_assert_int_eq(feat_utf8_valid(b, c->len), c->bad < 0);
        nvalid += c->bad < 0;
        free(b);
    }
    ck_assert_uint_gt(nvalid, 100);
    ck_assert_uint_gt(NCASES - nvalid, 1000);
}
END_TEST

/* The tokenizer takes a JSON string as valid exactly when Python's decoder
 * takes its bytes, and stops at the first bad byte. */
START_TEST(json_strings_agree) {
    feat_json_tok_t t[4];
    char text[64];
    for (size_t i = 0; i < NCASES; i++) {
        const utf8_case_t *c = &utf8_cases[i];
        int plain = c->len + 2 <= sizeof(text);
        for (size_t k = 0; plain && k < c->len; k++) {
            unsigned char ch = (unsigned char)c->bytes[k];
            if (ch < 0x20 || ch == '"' || ch == '\\') plain = 0;
        }
        if (!plain) continue;
        text[0] = '"';
        memcpy(text + 1, c->bytes, c->len);
        text[c->len + 1] = '"';
        size_t off = 0;
        size_t nt = 0;
        feat_err_t e = feat_json_parse(text, c->len + 2, t, 4, 4, &nt, &off);
        if (c->bad < 0) {
            ck_assert_msg(e == FEAT_OK && nt == 1, "case %zu: valid UTF-8 refused (%d)", i, e);
        } else {
            ck_assert_msg(e == FEAT_ERR_INVALID, "case %zu: invalid UTF-8 accepted", i);
            ck_assert_msg(off == (size_t)c->bad + 1, "case %zu: stopped at %zu, want %ld", i, off, c->bad + 1);
        }
    }
}
END_TEST

/* The ASCII fast path hands over to the slow path wherever the bad byte is. */
START_TEST(fast_path_every_alignment) {
    char b[80];
    for (size_t pos = 0; pos < 64; pos++) {
        for (size_t len = pos + 1; len <= 72; len += 7) {
            memset(b, 'a', sizeof(b));
            b[pos] = (char)0xff;
            ck_assert_uint_eq(feat_utf8_valid_prefix(b, len), pos);
            b[pos] = (char)0xc3;  /* a two-byte sequence, cut at the end or completed */
            if (pos + 1 < len) {
                b[pos + 1] = (char)0xa9;
                ck_assert_uint_eq(feat_utf8_valid_prefix(b, len), len);
            } else {
                ck_assert_uint_eq(feat_utf8_valid_prefix(b, len), pos);
            }
        }
    }
    ck_assert_uint_eq(feat_utf8_valid_prefix(NULL, 0), 0);
    ck_assert_uint_eq(feat_utf8_seq((const unsigned char *)"", 0), 0);
    ck_assert_uint_eq(feat_utf8_seq((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
    ck_assert_uint_eq(feat_utf8_seq((const unsigned char *)"\xf4\x8f\xbf\xbf", 3), 0);
}
END_TEST

/* A \u escape of a lone surrogate is refused, and err_off is its backslash. */
START_TEST(json_lone_surrogate_escapes) {
    feat_json_tok_t t[4];
    static const struct { const char *s; size_t off; } bad[] = {
        {"\"\\ud800\"", 1}, {"\"ab\\udfff\"", 3}, {"\"\\ud800\\u0041\"", 1}, {"\"x\\udbff\\udbff\"", 2},
        {"\"\\ud83d\\ude00\\udc00\"", 13}, {"\"\\ud800", 1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t off = 0;
        ck_assert_int_eq(feat_json_parse(bad[i].s, strlen(bad[i].s), t, 4, 4, NULL, &off), FEAT_ERR_INVALID);
        ck_assert_msg(off == bad[i].off, "%s: stopped at %zu, want %zu", bad[i].s, off, bad[i].off);
    }
    size_t nt = 0;
    ck_assert_int_eq(feat_json_parse("\"\\ud83d\\ude00\"", 14, t, 4, 4, &nt, NULL), FEAT_OK);
    ck_assert_uint_eq(nt, 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("utf8");
    tcase_add_test(tc, matches_python);
    tcase_add_test(tc, json_strings_agree);
    tcase_add_test(tc, fast_path_every_alignment);
    tcase_add_test(tc, json_lone_surrogate_escapes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
