/* Unit tests for common/textwidth.c.  Hand-picked cases here;
 * tests/unit/test_textwidth.py runs this binary with --dump and compares
 * every code point with Python's unicodedata. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "common/textwidth.h"

static size_t tw(const char *s) { return feat_text_width(s, strlen(s)); }

START_TEST(code_points) {
    ck_assert_int_eq(feat_cp_width('a'), 1);
    ck_assert_int_eq(feat_cp_width(0x00E9), 1);   /* é, precomposed */
    ck_assert_int_eq(feat_cp_width(0x0301), 0);   /* combining acute accent */
    ck_assert_int_eq(feat_cp_width(0x200D), 0);   /* zero width joiner */
    ck_assert_int_eq(feat_cp_width(0x00AD), 1);   /* soft hyphen: shown */
    ck_assert_int_eq(feat_cp_width(0x1F600), 2);  /* 😀 */
    ck_assert_int_eq(feat_cp_width(0x4E2D), 2);   /* 中 */
    ck_assert_int_eq(feat_cp_width(0xAC00), 2);   /* 가 */
    ck_assert_int_eq(feat_cp_width(0x1160), 0);   /* Hangul medial vowel filler */
    ck_assert_int_eq(feat_cp_width(0xFF21), 2);   /* Ａ fullwidth */
    ck_assert_int_eq(feat_cp_width(0xFF71), 1);   /* ｱ halfwidth katakana */
    ck_assert_int_eq(feat_cp_width(0x2764), 1);   /* ❤ text presentation by default */
    ck_assert_int_eq(feat_cp_width(0x0007), 0);   /* BEL */
    ck_assert_int_eq(feat_cp_width(0x20000), 2);  /* CJK extension B */
    ck_assert_int_eq(feat_cp_width(0xD800), 1);   /* a surrogate: not a character */
    ck_assert_int_eq(feat_cp_width(0x110000), 1); /* beyond Unicode */
}
END_TEST

START_TEST(strings) {
    ck_assert_uint_eq(tw(""), 0);
    ck_assert_uint_eq(tw("DE"), 2);
    ck_assert_uint_eq(tw("東京"), 4);
    ck_assert_uint_eq(tw("e\xcc\x81"), 1);                 /* e + combining acute */
    ck_assert_uint_eq(tw("ok 😀"), 5);
    ck_assert_uint_eq(tw("👩\xe2\x80\x8d💻"), 4);          /* ZWJ sequence: not shaped, 2 + 0 + 2 */
    ck_assert_uint_eq(tw("\xff\xfe"), 2);                  /* invalid bytes: one column each */
    ck_assert_uint_eq(tw("\xe4\xb8"), 2);                  /* a cut sequence */
    ck_assert_uint_eq(tw("\xc0\xaf"), 2);                  /* overlong '/' */
    ck_assert_uint_eq(tw("\xed\xa0\x80"), 3);              /* an encoded surrogate */
    ck_assert_uint_eq(feat_text_width("中x", 3), 2);        /* n bounds the read */
}
END_TEST

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--dump")) { /* "cp width" for every code point */
        for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) printf("%x %d\n", (unsigned)cp, feat_cp_width(cp));
        return 0;
    }
    Suite *s = suite_create("textwidth");
    TCase *tc = tcase_create("textwidth");
    tcase_add_test(tc, code_points);
    tcase_add_test(tc, strings);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
