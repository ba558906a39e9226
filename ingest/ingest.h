/*
 * ingest/ingest.h — the Kafka consumer that applies feature events and labels
 * to the store exactly once.
 *
 * One thread consumes every configured source topic and label topic with a
 * librdkafka consumer group (enable.auto.commit=false).  Each poll batch
 * becomes one store write holding the online merges, history rows, labels,
 * dead letters and the next offset of every partition it touched.  On
 * assignment the consumer seeks to the offsets stored in RocksDB (or the
 * beginning when none), never the broker's committed ones; offsets are
 * committed to the broker asynchronously, for lag monitoring only.  A message
 * below a partition's stored next offset is skipped.  So after any crash
 * every record is applied exactly once.
 *
 * A gap is a record featd never applied and never dead-lettered because the
 * broker deleted it first (retention, the embedded broker's size cap, a
 * recreated topic).  featd finds one at assignment (the log starts past the
 * stored offset) and in the stream (the consumer's position fell out of
 * range and librdkafka reset it per auto.offset.reset: the offsets between
 * featd's next one and the first message after the reset were never
 * applied); each logs an ERROR with the offset range and adds to
 * featd_ingest_gap_records_total{topic,partition}.  Offsets the broker skips
 * without a reset (transaction markers, compaction) are not gaps.  A topic
 * recreated while featd runs is not detected (librdkafka 2.0 has no topic
 * ids); at assignment, a log that ends below the stored offset is read anew.
 *
 * A failed store write stops ingest (feat_ingest_failed() turns true with the
 * error); the daemon then shuts down cleanly rather than skipping data.
 */
#ifndef FEAT_INGEST_INGEST_H
#define FEAT_INGEST_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/metrics.h"
#include "ingest/decode.h"
#include "store/store.h"

typedef struct feat_ingest feat_ingest_t;

/* A dead letter keeps at most this many bytes of its record's value (an
 * oversize record, over ingest.max_value_bytes, keeps its head); the detail
 * says when it was cut. */
#define FEAT_DL_RAW_MAX 65536

/* What the consumer needs.  The struct is copied; decode's arrays are
 * borrowed and must outlive the consumer; kafka and bootstrap are read
 * during feat_ingest_new only. */
typedef struct feat_ingest_conf {
    feat_decode_conf_t decode;  /* tables and models for its decoder, which ingest reads too: the topics it
                                 * subscribes (tables' topic, models' label_topic), names for metric labels
                                 * and label rows; and the decoder's [ingest] limits */
    const feat_kv_t *kafka;     /* [kafka] pass-through properties for librdkafka, applied in order */
    size_t nkafka;
    const char *bootstrap;      /* bootstrap servers; NULL = the kafka.bootstrap.servers property */
    int64_t batch_max;          /* messages per store write, >= 1 (ingest.batch_max) */
    int64_t commit_ms;          /* interval of the broker's lag-only offset commits (ingest.commit_interval) */
    feat_metrics_t *metrics;    /* NULL = the process-wide registry */
    struct feat_cluster *cluster; /* ingest/cluster.h; NULL = single mode.  Ingest reports each source
                                 * partition's state to it, checks records' keys against its
                                 * partitioner, and takes the consumer group from it (replica mode) */
} feat_ingest_conf_t;

/* Called on the consumer thread for every event as it joins a batch (a
 * batch that then fails to commit stops ingest, so observers see at most
 * what the store holds plus one batch).  vals/fidx as in feat_decoded_t;
 * valid during the call only. */
typedef void feat_ingest_observer_fn(void *arg, uint32_t table, const char *key, size_t klen, int64_t ts,
                                     const uint16_t *fidx, const feat_value_t *vals, size_t n);
/* The same for every label (model = index into conf->decode.models). */
typedef void feat_ingest_label_fn(void *arg, uint32_t model, const char *key, size_t klen, int64_t ts,
                                  double label);

/* Checks every property in conf->kafka against librdkafka without
 * connecting, so bad values stop start-up before anything runs; reads no
 * other member.  FEAT_OK or FEAT_ERR_CONFIG with errstr naming the key. */
int feat_ingest_check_config(const feat_ingest_conf_t *conf, char *errstr, size_t errlen);

/* Creates the consumer (validating kafka.* properties: errstr names the key).
 * st is borrowed and must outlive the consumer. */
feat_ingest_t *feat_ingest_new(const feat_ingest_conf_t *conf, feat_store_t *st, char *errstr, size_t errlen);
/* Set before start. */
void feat_ingest_set_observer(feat_ingest_t *ing, feat_ingest_observer_fn *fn, void *arg);
void feat_ingest_set_label_observer(feat_ingest_t *ing, feat_ingest_label_fn *fn, void *arg);
int feat_ingest_start(feat_ingest_t *ing, char *errstr, size_t errlen);
/* Finishes the batch in flight (committed or not applied at all), closes the
 * consumer and joins the thread.  Idempotent. */
void feat_ingest_stop(feat_ingest_t *ing);
void feat_ingest_destroy(feat_ingest_t *ing); /* stops first; NULL is fine */

typedef struct feat_ingest_stats {
    uint64_t events;            /* feature events applied */
    uint64_t labels;
    uint64_t dead_letters;
    uint64_t skipped;           /* redelivered below the stored offset */
    uint64_t batches;
    uint64_t gap_records;       /* records deleted before featd applied them, since start */
    uint64_t dead_by_reason[FEAT_DL_COUNT];
    int assigned;               /* partitions assigned now */
    int failed;                 /* 1 after a fatal store error */
    char error[256];
} feat_ingest_stats_t;

/* The status accessors below take NULL (no ingest: zeros, not failed, no partitions). */
void feat_ingest_get_stats(feat_ingest_t *ing, feat_ingest_stats_t *out);
int feat_ingest_failed(feat_ingest_t *ing);
/* 1 when ingest stopped because cluster.mode = single found another
 * consumer in its group at its first assignment (the daemon exits 2 with
 * the stats' error line); 0 otherwise. */
int feat_ingest_refused(feat_ingest_t *ing);
/* After feat_ingest_stop: records the broker held beyond what the store had
 * applied when ingest stopped (the lag at stop), over the assigned
 * partitions; -1 when the broker could not be asked, 0 before a stop. */
int64_t feat_ingest_unapplied_at_stop(const feat_ingest_t *ing);

typedef struct feat_partition_status {
    char topic[128];
    int32_t partition;
    int64_t next_offset;        /* next offset to apply (what the store holds) */
    int64_t high_watermark;     /* -1 unknown */
    int64_t lag;                /* -1 unknown */
    uint64_t gap_records;       /* records deleted before featd applied them, since start */
} feat_partition_status_t;

/* Copies up to max assigned partitions; returns how many there are. */
size_t feat_ingest_partitions(feat_ingest_t *ing, feat_partition_status_t *out, size_t max);
/* Newest applied event time of table i (ms; 0 = none yet) and its event count. */
int64_t feat_ingest_newest_event(feat_ingest_t *ing, size_t table);
uint64_t feat_ingest_table_events(feat_ingest_t *ing, size_t table);

#endif
