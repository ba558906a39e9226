/* Unit tests for common/metrics.c. */
#include <check.h>
#include <string.h>

#include "common/metrics.h"

static void coll(feat_metrics_emit_t *em, void *arg) {
    (void)arg;
    feat_metrics_emit_family(em, "featd_lag", "Lag.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, "topic=\"t\",partition=\"0\"", 12);
}

START_TEST(render_prometheus_text) {
    feat_metrics_t *r = feat_metrics_new();
    feat_metric_t *c = feat_counter(r, "featd_events_total", "Events.", NULL);
    feat_metric_t *d = feat_counter(r, "featd_dead_letters_total", "Dead letters.", "reason=\"bad_json\"");
    ck_assert_ptr_eq(feat_counter(r, "featd_events_total", "Events.", NULL), c);
    ck_assert_ptr_null(feat_gauge(r, "featd_events_total", "x", NULL)); /* type clash */
    ck_assert_ptr_null(feat_counter(r, "9bad", "x", NULL));
    double b[] = {0.001, 0.01};
    feat_metric_t *h = feat_histogram(r, "featd_rpc_seconds", "Latency.", "method=\"Get\"", b, 2);
    feat_metric_add(c, 3);
    feat_metric_add(d, 1);
    feat_metric_observe(h, 0.0005);
    feat_metric_observe(h, 0.005);
    feat_metric_observe(h, 5);
    ck_assert_uint_eq(feat_metric_count(h), 3);
    feat_metrics_add_collector(r, coll, NULL);
    feat_buf_t out = FEAT_BUF_INIT;
    feat_metrics_render(r, &out);
    feat_buf_putc(&out, 0);
    ck_assert_msg(strstr(out.data, "# TYPE featd_events_total counter\nfeatd_events_total 3\n"), "%s", out.data);
    ck_assert(strstr(out.data, "featd_dead_letters_total{reason=\"bad_json\"} 1\n"));
    ck_assert(strstr(out.data, "featd_rpc_seconds_bucket{method=\"Get\",le=\"0.001\"} 1\n"));
    ck_assert(strstr(out.data, "featd_rpc_seconds_bucket{method=\"Get\",le=\"0.01\"} 2\n"));
    ck_assert(strstr(out.data, "featd_rpc_seconds_bucket{method=\"Get\",le=\"+Inf\"} 3\n"));
    ck_assert(strstr(out.data, "featd_rpc_seconds_count{method=\"Get\"} 3\n"));
    ck_assert(strstr(out.data, "featd_lag{topic=\"t\",partition=\"0\"} 12\n"));
    char esc[32];
    feat_metrics_label_escape("a\"b\\c\nd", esc, sizeof(esc));
    ck_assert_str_eq(esc, "a\\\"b\\\\c\\nd");
    feat_buf_free(&out);
    feat_metrics_destroy(r);
}
END_TEST

int main(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, render_prometheus_text);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
