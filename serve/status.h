/*
 * serve/status.h — one snapshot of the daemon's status, read once and
 * rendered three ways: the Status RPC's StatusResponse (feat_status_to_pb,
 * serve/service.c), the /v1/status JSON (that StatusResponse through
 * proto/status_json.h, admin/http.c; `featctl status --json` prints the same
 * rendering of the reply it gets) and the periodic progress log line
 * (feat_status_progress, daemon/main.c).
 *
 * A snapshot reads counters that other threads keep moving (ingest, cache,
 * store), each under that module's own lock; it is consistent per counter,
 * not across counters.  Any thread may take one.
 */
#ifndef FEAT_SERVE_STATUS_H
#define FEAT_SERVE_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"
#include "featd/v1/admin.pb-c.h"
#include "ingest/ingest.h"
#include "serve/cache.h"
#include "serve/serve.h"
#include "store/store.h"

/* What a snapshot reads; everything borrowed. */
typedef struct feat_status_src {
    feat_store_t *st;                    /* NULL: store figures are 0 */
    feat_ingest_t *ingest;               /* NULL: zeros, no partitions (ingest.h) */
    feat_cache_t *cache;                 /* NULL: no cache section */
    const feat_table_conf_t *tables;     /* the declared tables, in config order */
    size_t ntables;
    int64_t started_ms;                  /* wall clock at start, for uptime */
    int ready;                           /* the caller's readiness verdict (featd_ready) */
} feat_status_src_t;

typedef struct feat_status_table {
    const char *name;                    /* borrowed from the table's conf */
    uint64_t events;                     /* applied since start */
    int64_t newest_event_time_ms;        /* 0 = no event applied yet */
    int64_t freshness_ms;                /* now_ms - newest; -1 when none yet */
} feat_status_table_t;

typedef struct feat_daemon_status {
    const char *version;                 /* FEATD_VERSION */
    int64_t now_ms;                      /* when the snapshot was taken (wall clock) */
    int64_t uptime_s;
    int ready;
    feat_ingest_stats_t ingest;          /* counters since start, failure and its error */
    feat_status_table_t *tables;         /* ntables, in config order */
    size_t ntables;
    feat_partition_status_t *partitions; /* the assigned partitions */
    size_t npartitions;
    int has_cache;                       /* cache below is filled */
    feat_cache_stats_t cache;
    uint64_t store_bytes;                /* on disk plus memtables */
    uint64_t history_rows_estimate;      /* RocksDB's key estimates: free to read, */
    uint64_t online_keys_estimate;       /* online counts unmerged versions too */
} feat_daemon_status_t;

/* Fills *out from src.  Arrays are allocated from a (the caller's arena; they
 * live until it is reset or freed).  FEAT_OK, or FEAT_ERR_NOMEM (then *out is
 * incomplete and must not be rendered). */
feat_err_t feat_status_snapshot(const feat_status_src_t *src, feat_arena_t *a, feat_daemon_status_t *out);

/* The running daemon's snapshot: feat_status_snapshot over the handlers'
 * context (what the Status RPC, /v1/status and the progress line show). */
feat_err_t feat_status_of_serve(feat_serve_t *sv, feat_arena_t *a, feat_daemon_status_t *out);

/* Fills *out (initialised here) as the Status RPC's reply.  It points into s
 * and into a, so both must outlive it; do not free_unpacked it.  FEAT_OK or
 * FEAT_ERR_NOMEM. */
feat_err_t feat_status_to_pb(const feat_daemon_status_t *s, feat_arena_t *a, Featd__V1__StatusResponse *out);

/* Appends the /v1/status JSON document (proto/status_json.h) for s.  On
 * allocation failure out->oom is set. */
void feat_status_json_of(const feat_daemon_status_t *s, feat_buf_t *out);

/* Appends the progress log line's text (no newline): the ingest rate given,
 * applied counts, lag over the partitions, gaps, the store's key estimates
 * and the freshness of the newest event over all tables. */
void feat_status_progress(const feat_daemon_status_t *s, double msgs_per_s, feat_buf_t *out);

#endif
