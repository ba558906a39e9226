/* Unit tests for serve/auth.c: token files (format, errors naming the key,
 * never the token), levels (admin includes read), exact matching (prefixes,
 * extensions, case, over-long tokens) and the Authorization header parser. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "serve/auth.h"
#include "testutil.h"

static char *dir;

static const char *write_file(const char *name, const char *text, int mode) {
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    chmod(p, (mode_t)mode);
    return p;
}

static void setup(void) { dir = tu_tmpdir(); }
static void teardown(void) {
    tu_rmrf(dir);
    free(dir);
}

#define R1 "read-token-0123456789"
#define R2 "read+token/2=ABCDEFGHIJ"
#define A1 "admin-token-abcdefghij"

START_TEST(levels_and_exact_match) {
    const char *rf = write_file("read", "# readers\n\n  " R1 "  \r\n" R2 "\n\t# indented comment\n" A1 "\n", 0600);
    const char *af = write_file("admin", A1 "\n", 0600);
    feat_auth_t *a = NULL;
    char err[512] = "";
    ck_assert_int_eq(feat_auth_load(rf, "auth.read_tokens_file", af, "auth.admin_tokens_file", &a, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(feat_auth_count(a, FEAT_AUTH_READ), 2);  /* A1 is in both: admin */
    ck_assert_int_eq(feat_auth_count(a, FEAT_AUTH_ADMIN), 1);
    ck_assert_int_eq(feat_auth_check(a, R1, strlen(R1)), FEAT_AUTH_READ);
    ck_assert_int_eq(feat_auth_check(a, R2, strlen(R2)), FEAT_AUTH_READ);
    ck_assert_int_eq(feat_auth_check(a, A1, strlen(A1)), FEAT_AUTH_ADMIN);
    /* near misses */
    ck_assert_int_eq(feat_auth_check(a, R1, strlen(R1) - 1), FEAT_AUTH_NONE);        /* prefix */
    ck_assert_int_eq(feat_auth_check(a, R1 "x", strlen(R1) + 1), FEAT_AUTH_NONE);    /* extension */
    ck_assert_int_eq(feat_auth_check(a, "READ-token-0123456789", strlen(R1)), FEAT_AUTH_NONE);
    ck_assert_int_eq(feat_auth_check(a, "read-token-0123456788", strlen(R1)), FEAT_AUTH_NONE);
    char with_nul[32];
    memcpy(with_nul, R1, strlen(R1));
    with_nul[strlen(R1)] = 0;
    with_nul[strlen(R1) + 1] = 0;
    ck_assert_int_eq(feat_auth_check(a, with_nul, strlen(R1) + 1), FEAT_AUTH_NONE); /* trailing NUL is not padding */
    ck_assert_int_eq(feat_auth_check(a, "", 0), FEAT_AUTH_NONE);
    ck_assert_int_eq(feat_auth_check(a, NULL, 0), FEAT_AUTH_NONE);
    char big[FEAT_TOKEN_MAX * 2];
    memset(big, 'a', sizeof(big));
    ck_assert_int_eq(feat_auth_check(a, big, sizeof(big)), FEAT_AUTH_NONE);
    ck_assert_int_eq(feat_auth_check(NULL, R1, strlen(R1)), FEAT_AUTH_NONE);
    feat_auth_destroy(a);
}
END_TEST

START_TEST(longest_token_and_only_admin) {
    char tok[FEAT_TOKEN_MAX + 2];
    memset(tok, 'Z', FEAT_TOKEN_MAX);
    tok[FEAT_TOKEN_MAX] = '\n';
    tok[FEAT_TOKEN_MAX + 1] = 0;
    const char *af = write_file("admin", tok, 0600);
    feat_auth_t *a = NULL;
    char err[512] = "";
    ck_assert_int_eq(feat_auth_load(NULL, "auth.read_tokens_file", af, "auth.admin_tokens_file", &a, err, sizeof(err)), 0);
    ck_assert_int_eq(feat_auth_check(a, tok, FEAT_TOKEN_MAX), FEAT_AUTH_ADMIN);
    ck_assert_int_eq(feat_auth_check(a, tok, FEAT_TOKEN_MAX - 1), FEAT_AUTH_NONE);
    ck_assert_int_eq(feat_auth_count(a, FEAT_AUTH_READ), 0);
    feat_auth_destroy(a);
    /* neither file: authentication off */
    a = (feat_auth_t *)1;
    ck_assert_int_eq(feat_auth_load("", "auth.read_tokens_file", NULL, "auth.admin_tokens_file", &a, err, sizeof(err)), 0);
    ck_assert_ptr_null(a);
}
END_TEST

/* Each bad file: FEAT_ERR_CONFIG, one line naming the key (and line), never the token text. */
START_TEST(bad_files_name_the_key) {
    char longline[FEAT_TOKEN_MAX + 100];
    memset(longline, 'q', sizeof(longline) - 2);
    longline[sizeof(longline) - 2] = '\n';
    longline[sizeof(longline) - 1] = 0;
    const struct { const char *text; const char *want; } cases[] = {
        {"", "holds no token"},
        {"# only a comment\n\n   \n", "holds no token"},
        {"shortsecret\n", "line 1"},
        {"# ok\nvalid-token-0123456789\nsecret with spaces inside\n", "line 3"},
        {"secret\"quote-0123456789\n", "line 1"},
        {longline, "line 1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = write_file("bad", cases[i].text, 0600);
        feat_auth_t *a = NULL;
        char err[512] = "";
        ck_assert_int_eq(feat_auth_load(p, "auth.read_tokens_file", NULL, "x", &a, err, sizeof(err)), FEAT_ERR_CONFIG);
        ck_assert_ptr_null(a);
        ck_assert_msg(strstr(err, "auth.read_tokens_file") == err, "case %zu: %s", i, err);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s lacks %s", i, err, cases[i].want);
        ck_assert_msg(strchr(err, '\n') == NULL, "case %zu: not one line", i);
        ck_assert_msg(strstr(err, "secret") == NULL && strstr(err, "qqqq") == NULL, "case %zu leaks: %s", i, err);
    }
    feat_auth_t *a = NULL;
    char err[512] = "";
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/none", dir);
    ck_assert_int_eq(feat_auth_load(NULL, "r", missing, "auth.admin_tokens_file", &a, err, sizeof(err)), FEAT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "auth.admin_tokens_file") && strstr(err, missing), "%s", err);
    ck_assert_int_eq(feat_auth_load(dir, "auth.read_tokens_file", NULL, "x", &a, err, sizeof(err)), FEAT_ERR_CONFIG);
    ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
}
END_TEST

START_TEST(bearer_header) {
    size_t len = 0;
    const char *t = feat_auth_bearer("Bearer abc", &len);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(len, 3);
    ck_assert_int_eq(memcmp(t, "abc", 3), 0);
    t = feat_auth_bearer("  bearer   xyz-1  ", &len);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(len, 5);
    ck_assert_int_eq(memcmp(t, "xyz-1", 5), 0);
    ck_assert_ptr_null(feat_auth_bearer("Basic dXNlcjpwYXNz", &len));
    ck_assert_ptr_null(feat_auth_bearer("Bearer", &len));
    ck_assert_ptr_null(feat_auth_bearer("Bearer   ", &len));
    ck_assert_ptr_null(feat_auth_bearer("Bearerabc", &len));
    ck_assert_ptr_null(feat_auth_bearer(NULL, &len));
}
END_TEST

int main(void) {
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, levels_and_exact_match);
    tcase_add_test(tc, longest_token_and_only_admin);
    tcase_add_test(tc, bad_files_name_the_key);
    tcase_add_test(tc, bearer_header);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
