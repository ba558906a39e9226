/*
 * tests/fuzz/fuzz_models_record.c — libFuzzer target: the decoder of
 * cluster.models_topic records (feat_models_record_ok, train/registry.c),
 * which every instance of a cluster runs on what the topic holds before it
 * applies a version or a model's aliases (feat_models_import).
 *
 * Input: byte 0 = key length k (mod 64), then k key bytes, then the
 * record's value.  Checks: no crash or sanitizer finding on any input; an
 * accepted record's key is a version's ("v" NUL model NUL version) or a
 * model's aliases' ("a" NUL model); an aliases record as featd writes it,
 * with the fuzzed bytes as its origin and versions, is accepted.
 */
#include "fuzz_util.h"

#include "train/models.h"

static void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t k = data[0] % 64;
    if (1 + k > size) return 0;
    const uint8_t *key = data + 1, *val = data + 1 + k;
    size_t len = size - 1 - k;
    if (feat_models_record_ok(key, k, val, len))
        FUZZ_CHECK(k >= 3 && (key[0] == 'v' || key[0] == 'a') && key[1] == 0, "accepted a record with another key");
    /* featd's own aliases record: 1 | origin | seq | aliases (1 | champion | challenger | next | 0 history) */
    uint8_t rec[1 + 1 + 64 + 8 + 33];
    size_t ol = len < 64 ? len : 64, n = 0;
    rec[n++] = 1;
    rec[n++] = (uint8_t)ol;
    memcpy(rec + n, val, ol);
    n += ol;
    put64(rec + n, (uint64_t)size), n += 8;
    rec[n++] = 1;
    put64(rec + n, (uint64_t)k), n += 8;
    put64(rec + n, (uint64_t)len), n += 8;
    put64(rec + n, (uint64_t)size + 1), n += 8;
    put64(rec + n, 0), n += 8;
    FUZZ_CHECK(feat_models_record_ok("a\0m", 3, rec, n), "refused a well-formed aliases record");
    return 0;
}
