/* serve/status.c — see status.h. */
#include "serve/status.h"

#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/timefmt.h"
#include "proto/status_json.h"

feat_err_t feat_status_snapshot(const feat_status_src_t *src, feat_arena_t *a, feat_daemon_status_t *out) {
    memset(out, 0, sizeof(*out));
    out->version = FEATD_VERSION;
    out->now_ms = feat_now_ms();
    out->uptime_s = (out->now_ms - src->started_ms) / 1000;
    out->ready = src->ready;
    feat_ingest_get_stats(src->ingest, &out->ingest);
    out->tables = feat_arena_alloc(a, src->ntables * sizeof(*out->tables));
    if (!out->tables) return FEAT_ERR_NOMEM;
    out->ntables = src->ntables;
    for (size_t i = 0; i < src->ntables; i++) {
        feat_status_table_t *t = &out->tables[i];
        t->name = src->tables[i].name;
        t->newest_event_time_ms = feat_ingest_newest_event(src->ingest, i);
        t->freshness_ms = t->newest_event_time_ms ? out->now_ms - t->newest_event_time_ms : -1;
        t->events = feat_ingest_table_events(src->ingest, i);
    }
    /* the count first; a partition assigned in between is left out */
    size_t cap = feat_ingest_partitions(src->ingest, NULL, 0) + 1;
    out->partitions = feat_arena_alloc(a, cap * sizeof(*out->partitions));
    if (!out->partitions) return FEAT_ERR_NOMEM;
    size_t np = feat_ingest_partitions(src->ingest, out->partitions, cap);
    out->npartitions = np < cap ? np : cap;
    if (src->cache) {
        out->has_cache = 1;
        feat_cache_get_stats(src->cache, &out->cache);
    }
    if (src->st) {
        out->store_bytes = feat_store_size_bytes(src->st);
        out->history_rows_estimate = feat_store_estimate_keys(src->st, FEAT_CF_OFFLINE);
        out->online_keys_estimate = feat_store_estimate_keys(src->st, FEAT_CF_ONLINE);
    }
    return FEAT_OK;
}

feat_err_t feat_status_to_pb(const feat_daemon_status_t *s, feat_arena_t *a, Featd__V1__StatusResponse *out) {
    featd__v1__status_response__init(out);
    out->version = (char *)s->version;
    out->uptime_s = s->uptime_s;
    out->ready = s->ready;
    out->events_applied = s->ingest.events;
    out->labels = s->ingest.labels;
    out->dead_letters = s->ingest.dead_letters;
    out->skipped = s->ingest.skipped;
    out->batches = s->ingest.batches;
    out->gap_records = s->ingest.gap_records;
    out->ingest_failed = s->ingest.failed != 0;
    out->ingest_error = s->ingest.failed ? (char *)s->ingest.error : "";
    out->store_bytes = s->store_bytes;

    size_t nd = 0;
    for (int r = 0; r < FEAT_DL_COUNT; r++) nd += s->ingest.dead_by_reason[r] != 0;
    Featd__V1__DeadLetterCount *dl = feat_arena_alloc(a, nd * sizeof(*dl));
    out->dead_letters_by_reason = feat_arena_alloc(a, nd * sizeof(void *));
    if (!dl || !out->dead_letters_by_reason) return FEAT_ERR_NOMEM;
    for (int r = 0; r < FEAT_DL_COUNT; r++) {
        if (!s->ingest.dead_by_reason[r]) continue;
        Featd__V1__DeadLetterCount *d = &dl[out->n_dead_letters_by_reason];
        featd__v1__dead_letter_count__init(d);
        d->reason = (char *)feat_dl_reason_name((feat_dl_reason_t)r);
        d->count = s->ingest.dead_by_reason[r];
        out->dead_letters_by_reason[out->n_dead_letters_by_reason++] = d;
    }

    Featd__V1__TableStatus *ts = feat_arena_alloc(a, s->ntables * sizeof(*ts));
    out->tables = feat_arena_alloc(a, s->ntables * sizeof(void *));
    if (!ts || !out->tables) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < s->ntables; i++) {
        featd__v1__table_status__init(&ts[i]);
        ts[i].name = (char *)s->tables[i].name;
        ts[i].events_applied = s->tables[i].events;
        ts[i].newest_event_time_ms = s->tables[i].newest_event_time_ms;
        ts[i].freshness_ms = s->tables[i].freshness_ms;
        out->tables[i] = &ts[i];
    }
    out->n_tables = s->ntables;

    Featd__V1__PartitionStatus *ps = feat_arena_alloc(a, s->npartitions * sizeof(*ps));
    out->partitions = feat_arena_alloc(a, s->npartitions * sizeof(void *));
    if (!ps || !out->partitions) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < s->npartitions; i++) {
        const feat_partition_status_t *p = &s->partitions[i];
        featd__v1__partition_status__init(&ps[i]);
        ps[i].topic = (char *)p->topic;
        ps[i].partition = p->partition;
        ps[i].next_offset = p->next_offset;
        ps[i].high_watermark = p->high_watermark;
        ps[i].lag = p->lag;
        ps[i].gap_records = p->gap_records;
        out->partitions[i] = &ps[i];
    }
    out->n_partitions = s->npartitions;

    if (s->has_cache) {
        Featd__V1__CacheStatus *c = feat_arena_alloc(a, sizeof(*c));
        if (!c) return FEAT_ERR_NOMEM;
        featd__v1__cache_status__init(c);
        c->hits = s->cache.hits;
        c->misses = s->cache.misses;
        c->bypasses = s->cache.bypasses;
        c->entries = s->cache.entries;
        c->bytes = s->cache.bytes;
        c->max_bytes = s->cache.max_bytes;
        out->cache = c;
    }
    return FEAT_OK;
}

void feat_status_json_of(const feat_daemon_status_t *s, feat_buf_t *out) {
    feat_arena_t a;
    feat_arena_init(&a, 4096);
    Featd__V1__StatusResponse r;
    if (feat_status_to_pb(s, &a, &r) == FEAT_OK) feat_status_json(&r, out);
    else out->oom = 1;
    feat_arena_free(&a);
}

void feat_status_progress(const feat_daemon_status_t *s, double msgs_per_s, feat_buf_t *out) {
    int64_t lag = 0;
    int lag_known = 0;
    for (size_t i = 0; i < s->npartitions; i++)
        if (s->partitions[i].lag >= 0) {
            lag += s->partitions[i].lag;
            lag_known = 1;
        }
    int64_t newest = 0;
    for (size_t t = 0; t < s->ntables; t++)
        if (s->tables[t].newest_event_time_ms > newest) newest = s->tables[t].newest_event_time_ms;
    char fresh[FEAT_DURATION_MAX] = "-";
    if (newest) feat_format_duration(s->now_ms - newest, fresh, sizeof(fresh));
    char lagbuf[32] = "-";
    if (lag_known) snprintf(lagbuf, sizeof(lagbuf), "%lld", (long long)lag);
    /* Store sizes are RocksDB's key estimates, free to read (an exact count
     * is a scan; `featd-inspect online | wc -l` counts entities).  The
     * online estimate counts every merge operand not yet compacted, so it
     * runs well above the number of entities: the line says so. */
    feat_buf_printf(out,
                    "%.0f msgs/s | applied %llu events, %llu labels, %llu dead letters | lag %s over %zu partitions, "
                    "%llu lost to gaps | "
                    "store ~%llu history rows, ~%llu online keys (RocksDB estimates; online counts unmerged versions) | "
                    "freshness %s",
                    msgs_per_s, (unsigned long long)s->ingest.events, (unsigned long long)s->ingest.labels,
                    (unsigned long long)s->ingest.dead_letters, lagbuf, s->npartitions,
                    (unsigned long long)s->ingest.gap_records, (unsigned long long)s->history_rows_estimate,
                    (unsigned long long)s->online_keys_estimate, fresh);
}

feat_err_t feat_status_of_serve(feat_serve_t *sv, feat_arena_t *a, feat_daemon_status_t *out) {
    feat_status_src_t src = {
        .st = sv->st,
        .ingest = sv->ingest,
        .cache = sv->cache,
        .tables = sv->conf.tables,
        .ntables = sv->conf.ntables,
        .started_ms = sv->started_ms,
        .ready = feat_serve_ready(sv),
    };
    return feat_status_snapshot(&src, a, out);
}
