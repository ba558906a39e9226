/*
 * ingest/broker.h — the embedded Kafka-protocol broker (librdkafka's mock
 * cluster) on loopback, for kafka.embedded = true, tests, and the standalone
 * featd-broker process.
 *
 * Limits inherited from the mock cluster (librdkafka 2.0.2): data lives in
 * memory; each partition keeps roughly the newest 5 MiB or 100k message sets
 * and drops older ones, applied or not; finding a fetch's offset walks a
 * partition's sets from the oldest.  featd adds one: a request over
 * FEAT_BROKER_MAX_REQUEST bytes is refused (the connection is closed; the
 * client retries and then fails the record), because a larger message set
 * can make the mock cluster lose it and the next one.
 */
#ifndef FEAT_INGEST_BROKER_H
#define FEAT_INGEST_BROKER_H

#include <stddef.h>

#include "common/config.h"
#include "common/err.h"

typedef struct feat_broker feat_broker_t;

/* The largest request (a producer's batch plus ~100 bytes) the embedded
 * broker reads: 2 MiB, under half of a partition's 5 MiB. */
#define FEAT_BROKER_MAX_REQUEST (2 * 1024 * 1024)

/* Starts nbrokers mock brokers.  NULL with errstr on failure. */
feat_broker_t *feat_broker_new(int nbrokers, char *errstr, size_t errlen);
/* Creates topic with partitions (replication 1).  FEAT_OK or FEAT_ERR_KAFKA. */
feat_err_t feat_broker_create_topic(feat_broker_t *b, const char *topic, int partitions);
/* The topics a configuration names.  Everything is borrowed for the call only. */
typedef struct feat_broker_topics_conf {
    const feat_table_conf_t *tables;  /* [ntables]: each one's source topic */
    size_t ntables;
    const feat_model_conf_t *models;  /* [nmodels]: each one's label_topic, and its prediction_topic when
                                       * not empty */
    size_t nmodels;
    const char *drift_alert_topic;    /* NULL or "" = none */
    int partitions;                   /* of each topic, >= 1 (kafka.partitions) */
    const char *cluster_topic;        /* cluster.topic, made with 1 partition; NULL or "" = none */
    const char *models_topic;         /* cluster.models_topic, made with 1 partition when there are models */
} feat_broker_topics_conf_t;

/* Creates every topic tc names (sources, labels, predictions, drift alerts);
 * one that exists already is fine.  FEAT_OK, or FEAT_ERR_KAFKA with errstr. */
feat_err_t feat_broker_create_topics(feat_broker_t *b, const feat_broker_topics_conf_t *tc, char *errstr,
                                     size_t errlen);
/* "127.0.0.1:port,..."; valid until destroy. */
const char *feat_broker_bootstraps(const feat_broker_t *b);
/* Fault injection for tests: take broker id (1-based) down or up.  FEAT_OK or
 * FEAT_ERR_KAFKA. */
feat_err_t feat_broker_set_down(feat_broker_t *b, int broker_id, int down);
/* Fault injection by command line (featd-broker's control port).  line is
 * one command without its newline; reply receives "ok ..." or "error: ...".
 * Returns FEAT_OK when the command was applied, FEAT_ERR_INVALID otherwise.
 * Commands (BROKER = 1..n or "all"; API = a request name such as Fetch,
 * OffsetCommit, FindCoordinator, JoinGroup, SyncGroup, Heartbeat, Metadata,
 * OffsetFetch, ListOffsets, Produce, LeaveGroup, or its number; ERR = a
 * librdkafka error name such as NOT_LEADER_FOR_PARTITION, or its number):
 *   ping
 *   errors API ERR [COUNT]            next COUNT (1) API requests to any broker fail with ERR
 *   broker-errors BROKER API ERR RTT_MS [COUNT]
 *                                     the same on one broker, each answer delayed RTT_MS
 *   clear API                         forget pushed cluster-wide errors for API
 *   down BROKER | up BROKER           refuse / accept connections (no leader change)
 *   leader TOPIC PARTITION BROKER     move a partition's leader (-1: none)
 *   coordinator group|transaction KEY BROKER
 *   rtt BROKER MS                     delay every answer of BROKER
 * Call from one thread at a time. */
feat_err_t feat_broker_command(feat_broker_t *b, const char *line, char *reply, size_t rlen);
/* Serves feat_broker_command on a loopback TCP port from a thread of its own
 * (then the only caller of feat_broker_command): one command a line, each
 * answered by one line "ok ..." or "error: ...".  The port is written to
 * path as "127.0.0.1:PORT".  No authentication: for tests and fault drills
 * (featd-broker --control-file, featd's kafka.embedded_control_file).
 * feat_broker_destroy stops it.  FEAT_OK (also when already started), or
 * FEAT_ERR_IO (port or file) / FEAT_ERR_NOMEM (thread) with errstr. */
feat_err_t feat_broker_control_start(feat_broker_t *b, const char *path, char *errstr, size_t errlen);
void feat_broker_destroy(feat_broker_t *b); /* NULL is fine */

/* Writes data to path atomically (temp file + rename), mode 0600.  FEAT_OK or
 * FEAT_ERR_IO (path then untouched). */
feat_err_t feat_write_file_atomic(const char *path, const char *data, size_t len);

#endif
