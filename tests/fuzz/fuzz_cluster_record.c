/*
 * tests/fuzz/fuzz_cluster_record.c — libFuzzer target: the check every
 * record read from cluster.topic goes through (feat_cluster_record_ok,
 * ingest/cluster.c) before featd keeps it and builds its partition map.
 *
 * Input: byte 0 = key length k (mod 64), then k key bytes, then the
 * record's value.  Checks: no crash or sanitizer finding on any input; an
 * accepted record unpacks, names the key as its instance and, for a
 * partitioned member, has an address; a record featd itself would write
 * (the fuzzed fields packed again) is accepted.
 */
#include "fuzz_util.h"

#include "featd/v1/admin.pb-c.h"
#include "ingest/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t k = data[0] % 64;
    if (1 + k > size) return 0;
    const char *key = (const char *)data + 1;
    const uint8_t *rec = data + 1 + k;
    size_t len = size - 1 - k;
    int ok = feat_cluster_record_ok(rec, len, key, k);
    Featd__V1__ClusterMember *m = featd__v1__cluster_member__unpack(NULL, len, rec);
    if (ok) {
        FUZZ_CHECK(m != NULL, "accepted a record that does not unpack");
        FUZZ_CHECK(strlen(m->instance_id) == k && memcmp(m->instance_id, key, k) == 0, "instance id is not the key");
        FUZZ_CHECK(*m->address || strcmp(m->mode, "partitioned") != 0,
                   "accepted a partitioned member's record without an address");
    }
    if (m && k && !memchr(key, 0, k) && (*m->address || strcmp(m->mode, "partitioned") != 0) &&
        strlen(m->address) < 256) {
        /* the same fields as featd writes them (no unknown fields), keyed by the instance id */
        char id[64];
        memcpy(id, key, k);
        id[k] = 0;
        Featd__V1__ClusterMember w = FEATD__V1__CLUSTER_MEMBER__INIT;
        w.instance_id = id;
        w.address = m->address;
        w.mode = m->mode;
        w.updated_ms = m->updated_ms;
        w.n_active = m->n_active;
        w.active = m->active;
        w.n_restoring = m->n_restoring;
        w.restoring = m->restoring;
        int topics_ok = 1;
        for (size_t i = 0; i < m->n_active + m->n_restoring; i++) {
            Featd__V1__TopicPartitions *tp = i < m->n_active ? m->active[i] : m->restoring[i - m->n_active];
            topics_ok &= tp->n_partitions <= 65536 && !tp->base.n_unknown_fields;
        }
        size_t n = featd__v1__cluster_member__get_packed_size(&w);
        uint8_t *out = malloc(n + 1);
        if (out && topics_ok) {
            featd__v1__cluster_member__pack(&w, out);
            FUZZ_CHECK(feat_cluster_record_ok(out, n, id, k), "refused a well-formed record");
        }
        free(out);
    }
    if (m) featd__v1__cluster_member__free_unpacked(m, NULL);
    return 0;
}
