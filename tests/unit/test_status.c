/* Unit tests for serve/status.c and proto/status_json.c: a snapshot without
 * store or ingest, the StatusResponse it becomes (also after a pack and
 * unpack, as featctl receives it), that message as the /v1/status JSON
 * (exact text, escaping, the optional "error" and "cache"), and the progress
 * line (unknown lag, no event yet, lag summed over the partitions that know
 * theirs). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "proto/status_json.h"
#include "serve/status.h"

/* A snapshot as ingest, the cache and the store would fill it. */
static void busy(feat_daemon_status_t *s, feat_status_table_t *t, feat_partition_status_t *p) {
    memset(s, 0, sizeof(*s));
    s->version = "9.8.7";
    s->now_ms = 1700000100000;
    s->uptime_s = 3661;
    s->ready = 1;
    s->ingest.events = 10;
    s->ingest.labels = 4;
    s->ingest.dead_letters = 3;
    s->ingest.skipped = 2;
    s->ingest.batches = 5;
    s->ingest.gap_records = 7;
    s->ingest.dead_by_reason[FEAT_DL_WRONG_TYPE] = 2;
    s->ingest.dead_by_reason[FEAT_DL_UNDECODABLE] = 1;
    s->ingest.failed = 1;
    snprintf(s->ingest.error, sizeof(s->ingest.error), "disk \"full\"\n");
    t[0] = (feat_status_table_t){"user", 9, 1700000000000, 100000};
    t[1] = (feat_status_table_t){"item", 0, 0, -1};
    s->tables = t;
    s->ntables = 2;
    memset(p, 0, 2 * sizeof(*p));
    snprintf(p[0].topic, sizeof(p[0].topic), "ev\\ents");
    p[0].partition = 0;
    p[0].next_offset = 12;
    p[0].high_watermark = 20;
    p[0].lag = 8;
    p[0].gap_records = 7;
    snprintf(p[1].topic, sizeof(p[1].topic), "events");
    p[1].partition = 1;
    p[1].next_offset = 3;
    p[1].high_watermark = -1;
    p[1].lag = -1;
    s->partitions = p;
    s->npartitions = 2;
    s->has_cache = 1;
    s->cache.hits = 3;
    s->cache.misses = 1;
    s->cache.entries = 2;
    s->cache.bytes = 512;
    s->cache.max_bytes = 1024;
    s->store_bytes = 4096;
    s->history_rows_estimate = 11;
    s->online_keys_estimate = 6;
}

static const char BUSY_JSON[] =
    "{\"version\":\"9.8.7\",\"uptime_s\":3661,\"ready\":true,\"ingest\":{\"events\":10,\"labels\":4,"
    "\"dead_letters\":3,\"skipped\":2,\"batches\":5,\"gap_records\":7,\"failed\":true,"
    "\"error\":\"disk \\\"full\\\"\\n\",\"dead_letters_by_reason\":{\"undecodable\":1,\"wrong_type\":2}},"
    "\"tables\":[{\"name\":\"user\",\"events\":9,\"newest_event_time_ms\":1700000000000,\"freshness_ms\":100000},"
    "{\"name\":\"item\",\"events\":0,\"newest_event_time_ms\":0,\"freshness_ms\":-1}],"
    "\"partitions\":[{\"topic\":\"ev\\\\ents\",\"partition\":0,\"next_offset\":12,\"high_watermark\":20,\"lag\":8,"
    "\"gap_records\":7},{\"topic\":\"events\",\"partition\":1,\"next_offset\":3,\"high_watermark\":-1,\"lag\":-1,"
    "\"gap_records\":0}],"
    "\"cache\":{\"hits\":3,\"misses\":1,\"bypasses\":0,\"hit_ratio\":0.7500,\"entries\":2,\"bytes\":512,"
    "\"max_bytes\":1024},\"store_bytes\":4096}\n";

static void assert_json(const feat_buf_t *b) {
    feat_json_tok_t toks[256];
    ck_assert_msg(feat_json_parse(b->data, b->len, toks, 256, 8, NULL, NULL) == FEAT_OK, "not JSON: %.*s", (int)b->len,
                  b->data);
}

START_TEST(json_of_a_busy_daemon) {
    feat_daemon_status_t s;
    feat_status_table_t t[2];
    feat_partition_status_t p[2];
    busy(&s, t, p);
    /* featd: the snapshot's StatusResponse, rendered */
    feat_buf_t direct = FEAT_BUF_INIT;
    feat_status_json_of(&s, &direct);
    ck_assert(!direct.oom);
    ck_assert_int_eq(direct.len, strlen(BUSY_JSON));
    ck_assert_msg(!memcmp(direct.data, BUSY_JSON, direct.len), "%.*s", (int)direct.len, direct.data);
    assert_json(&direct);
    /* featctl: the same message after the wire */
    feat_arena_t a;
    feat_arena_init(&a, 1024);
    Featd__V1__StatusResponse r;
    ck_assert_int_eq(feat_status_to_pb(&s, &a, &r), FEAT_OK);
    size_t n = protobuf_c_message_get_packed_size(&r.base);
    uint8_t *wire = malloc(n);
    protobuf_c_message_pack(&r.base, wire);
    Featd__V1__StatusResponse *got = featd__v1__status_response__unpack(NULL, n, wire);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(got->events_applied, 10);
    ck_assert_int_eq(got->tables[0]->events_applied, 9);
    ck_assert_int_eq(got->n_dead_letters_by_reason, 2);
    feat_buf_t viawire = FEAT_BUF_INIT;
    feat_status_json(got, &viawire);
    ck_assert_int_eq(viawire.len, direct.len);
    ck_assert(!memcmp(viawire.data, direct.data, direct.len));
    featd__v1__status_response__free_unpacked(got, NULL);
    free(wire);
    feat_arena_free(&a);
    feat_buf_free(&viawire);
    feat_buf_free(&direct);
}
END_TEST

START_TEST(json_leaves_out_error_and_cache) {
    feat_daemon_status_t s;
    feat_status_table_t t[2];
    feat_partition_status_t p[2];
    busy(&s, t, p);
    s.ingest.failed = 0;
    s.has_cache = 0;
    memset(s.ingest.dead_by_reason, 0, sizeof(s.ingest.dead_by_reason));
    feat_buf_t b = FEAT_BUF_INIT;
    feat_status_json_of(&s, &b);
    assert_json(&b);
    feat_buf_putc(&b, 0);
    ck_assert_ptr_null(strstr(b.data, "\"error\""));
    ck_assert_ptr_null(strstr(b.data, "\"cache\""));
    ck_assert_ptr_nonnull(strstr(b.data, "\"failed\":false,\"dead_letters_by_reason\":{}},\"tables\""));
    ck_assert_ptr_nonnull(strstr(b.data, "\"gap_records\":0}],\"store_bytes\":4096}\n"));
    feat_buf_free(&b);
}
END_TEST

START_TEST(snapshot_without_store_or_ingest) {
    feat_table_conf_t tables[2] = {{.name = "user"}, {.name = "item"}};
    feat_status_src_t src = {NULL, NULL, NULL, tables, 2, 0, 0};
    feat_arena_t a;
    feat_arena_init(&a, 256);
    feat_daemon_status_t s;
    ck_assert_int_eq(feat_status_snapshot(&src, &a, &s), FEAT_OK);
    ck_assert_str_eq(s.version, FEATD_VERSION);
    ck_assert(s.uptime_s > 0 && !s.ready && !s.has_cache && !s.ingest.failed);
    ck_assert_int_eq(s.ntables, 2);
    ck_assert_str_eq(s.tables[1].name, "item");
    ck_assert_int_eq(s.tables[1].newest_event_time_ms, 0);
    ck_assert_int_eq(s.tables[1].freshness_ms, -1);
    ck_assert_int_eq(s.npartitions, 0);
    ck_assert_int_eq(s.store_bytes, 0);
    feat_buf_t b = FEAT_BUF_INIT;
    feat_status_progress(&s, 0, &b);
    feat_buf_putc(&b, 0);
    ck_assert_str_eq(b.data, "0 msgs/s | applied 0 events, 0 labels, 0 dead letters | lag - over 0 partitions, "
                             "0 lost to gaps | store ~0 history rows, ~0 online keys (RocksDB estimates; online "
                             "counts unmerged versions) | freshness -");
    feat_buf_free(&b);
    feat_arena_free(&a);
}
END_TEST

START_TEST(progress_line) {
    feat_daemon_status_t s;
    feat_status_table_t t[2];
    feat_partition_status_t p[2];
    busy(&s, t, p);
    feat_buf_t b = FEAT_BUF_INIT;
    feat_status_progress(&s, 1234.4, &b);
    feat_buf_putc(&b, 0);
    /* lag: the partition that knows its own (8), the unknown one left out;
     * freshness: the newest event over all tables */
    ck_assert_str_eq(b.data, "1234 msgs/s | applied 10 events, 4 labels, 3 dead letters | lag 8 over 2 partitions, "
                             "7 lost to gaps | store ~11 history rows, ~6 online keys (RocksDB estimates; online "
                             "counts unmerged versions) | freshness 1 m 40 s");
    feat_buf_free(&b);
}
END_TEST

int main(void) {
    Suite *s = suite_create("status");
    TCase *tc = tcase_create("status");
    tcase_add_test(tc, json_of_a_busy_daemon);
    tcase_add_test(tc, json_leaves_out_error_and_cache);
    tcase_add_test(tc, snapshot_without_store_or_ingest);
    tcase_add_test(tc, progress_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
