/* Unit tests for common/timefmt.c: durations for people to read.  The cases
 * are computed here from their parts (years, days, ...), and a property
 * check parses every output back and checks it is the input truncated to
 * its second unit. */
#include <check.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/timefmt.h"

#define S 1000LL
#define M (60 * S)
#define H (60 * M)
#define D (24 * H)
#define Y (365 * D)

START_TEST(durations) {
    static const struct { int64_t ms; const char *want; } cases[] = {
        {0, "0 ms"},
        {1, "1 ms"},
        {23, "23 ms"},
        {999, "999 ms"},
        {S, "1 s"},
        {S + 500, "1 s 500 ms"},
        {59 * S + 999, "59 s 999 ms"},
        {M, "1 m"},
        {3 * M + 12 * S, "3 m 12 s"},
        {3 * M + 12 * S + 999, "3 m 12 s"},        /* truncated, not rounded */
        {H, "1 h"},
        {H + 59 * S, "1 h"},                        /* the third unit is dropped */
        {5 * H + 7 * M, "5 h 7 m"},
        {D - 1, "23 h 59 m"},
        {D, "1 d"},
        {6 * D + 23 * H + 59 * M, "6 d 23 h"},
        {364 * D, "364 d"},
        {Y, "1 y"},
        {2 * Y + 10 * D + 11 * H, "2 y 10 d"},
        {63970716214LL, "2 y 10 d"},                /* the freshness the issue quoted */
        {-1500, "-1 s 500 ms"},                     /* an event time in the future */
        {-(3 * M), "-3 m"},
        {INT64_MAX, "292471208 y 247 d"},
        {INT64_MIN, "-292471208 y 247 d"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[FEAT_DURATION_MAX];
        ck_assert_ptr_eq(feat_format_duration(cases[i].ms, out, sizeof(out)), out);
        ck_assert_msg(!strcmp(out, cases[i].want), "%" PRId64 " ms: got \"%s\", want \"%s\"", cases[i].ms, out,
                      cases[i].want);
    }
}
END_TEST

START_TEST(small_buffers_stay_terminated) {
    char out[6];
    feat_format_duration(3 * M + 12 * S, out, sizeof(out));
    ck_assert_str_eq(out, "3 m 1");
    ck_assert_ptr_eq(feat_format_duration(5, NULL, 0), NULL);
}
END_TEST

static int64_t unit_ms(const char *u) {
    return !strcmp(u, "y") ? Y : !strcmp(u, "d") ? D : !strcmp(u, "h") ? H : !strcmp(u, "m") ? M
           : !strcmp(u, "s") ? S : !strcmp(u, "ms") ? 1 : -1;
}

/* Parsed back, an output is the input truncated to its second unit: the
 * first count is at least 1, the second below one first unit. */
START_TEST(outputs_parse_back) {
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int64_t ms = (int64_t)((x >> 1) >> (x % 60)); /* all magnitudes */
        char out[FEAT_DURATION_MAX], u1[4] = "", u2[4] = "";
        long long a = 0, b = 0;
        feat_format_duration(ms, out, sizeof(out));
        int n = sscanf(out, "%lld %3s %lld %3s", &a, u1, &b, u2);
        ck_assert_msg(n == 2 || n == 4, "%s", out);
        int64_t f = unit_ms(u1), s = n == 4 ? unit_ms(u2) : 0;
        ck_assert_msg(f > 0 && (n == 2 || (s > 0 && s < f && b >= 1 && b * s < f)), "%" PRId64 ": %s", ms, out);
        ck_assert_msg(a >= 1 || (ms == 0 && f == 1), "%" PRId64 ": %s", ms, out);
        int64_t v = a * f + b * s;
        /* the next unit down: the smallest step the output drops */
        int64_t step = n == 4 ? s : (f == Y ? D : f == D ? H : f == H ? M : f == M ? S : 1);
        ck_assert_msg(v <= ms && ms - v < step, "%" PRId64 ": %s", ms, out);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("timefmt");
    TCase *tc = tcase_create("timefmt");
    tcase_add_test(tc, durations);
    tcase_add_test(tc, small_buffers_stay_terminated);
    tcase_add_test(tc, outputs_parse_back);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
