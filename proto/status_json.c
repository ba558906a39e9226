/* proto/status_json.c — see status_json.h. */
#include "proto/status_json.h"

#include <string.h>

static void str(feat_buf_t *b, const char *s) {
    if (!s) s = "";
    feat_buf_json_str(b, s, strlen(s));
}

void feat_status_json(const Featd__V1__StatusResponse *r, feat_buf_t *b) {
    feat_buf_puts(b, "{\"version\":");
    str(b, r->version);
    feat_buf_printf(b, ",\"uptime_s\":%lld,\"ready\":%s,\"ingest\":{\"events\":%llu,\"labels\":%llu,"
                       "\"dead_letters\":%llu,\"skipped\":%llu,\"batches\":%llu,\"gap_records\":%llu,\"failed\":%s",
                    (long long)r->uptime_s, r->ready ? "true" : "false", (unsigned long long)r->events_applied,
                    (unsigned long long)r->labels, (unsigned long long)r->dead_letters,
                    (unsigned long long)r->skipped, (unsigned long long)r->batches,
                    (unsigned long long)r->gap_records, r->ingest_failed ? "true" : "false");
    if (r->ingest_failed) {
        feat_buf_puts(b, ",\"error\":");
        str(b, r->ingest_error);
    }
    feat_buf_puts(b, ",\"dead_letters_by_reason\":{");
    for (size_t i = 0; i < r->n_dead_letters_by_reason; i++) {
        const Featd__V1__DeadLetterCount *d = r->dead_letters_by_reason[i];
        if (i) feat_buf_putc(b, ',');
        str(b, d->reason);
        feat_buf_printf(b, ":%llu", (unsigned long long)d->count);
    }
    feat_buf_puts(b, "}},\"tables\":[");
    for (size_t i = 0; i < r->n_tables; i++) {
        const Featd__V1__TableStatus *t = r->tables[i];
        feat_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        str(b, t->name);
        feat_buf_printf(b, ",\"events\":%llu,\"newest_event_time_ms\":%lld,\"freshness_ms\":%lld}",
                        (unsigned long long)t->events_applied, (long long)t->newest_event_time_ms,
                        (long long)t->freshness_ms);
    }
    feat_buf_puts(b, "],\"partitions\":[");
    for (size_t i = 0; i < r->n_partitions; i++) {
        const Featd__V1__PartitionStatus *p = r->partitions[i];
        feat_buf_puts(b, i ? ",{\"topic\":" : "{\"topic\":");
        str(b, p->topic);
        feat_buf_printf(b, ",\"partition\":%d,\"next_offset\":%lld,\"high_watermark\":%lld,\"lag\":%lld,"
                           "\"gap_records\":%llu}",
                        p->partition, (long long)p->next_offset, (long long)p->high_watermark, (long long)p->lag,
                        (unsigned long long)p->gap_records);
    }
    feat_buf_putc(b, ']');
    if (r->cache) {
        const Featd__V1__CacheStatus *c = r->cache;
        uint64_t all = c->hits + c->misses + c->bypasses;
        feat_buf_printf(b, ",\"cache\":{\"hits\":%llu,\"misses\":%llu,\"bypasses\":%llu,\"hit_ratio\":%.4f,"
                           "\"entries\":%llu,\"bytes\":%llu,\"max_bytes\":%llu}",
                        (unsigned long long)c->hits, (unsigned long long)c->misses, (unsigned long long)c->bypasses,
                        all ? (double)c->hits / (double)all : 0.0, (unsigned long long)c->entries,
                        (unsigned long long)c->bytes, (unsigned long long)c->max_bytes);
    }
    feat_buf_printf(b, ",\"store_bytes\":%llu}\n", (unsigned long long)r->store_bytes);
}
