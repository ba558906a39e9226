/*
 * ingest/cluster.h — several featd instances as one service, through Kafka
 * (cluster.mode; docs/OPERATIONS.md, "Running a cluster").
 *
 * Kafka decides who owns what: in partitioned mode the instances share one
 * consumer group and each applies the partitions it is assigned to its own
 * store; in replica mode each has a group of its own and a full copy.  What
 * Kafka does not tell an instance is who owns the other partitions, so each
 * publishes a membership record (featd.v1.ClusterMember: instance id,
 * advertised address, active, restoring and standby partitions, the group
 * generation) to partition 0 of
 * cluster.topic, keyed by instance id, whenever its assignment or restore
 * state changes and every few seconds, and reads everyone's from the
 * beginning.  The partition -> instance map is the newest claim of each
 * partition: records are ordered by their offset in that one partition, so
 * a partition moved by a rebalance belongs to whoever claimed it last, and a
 * killed instance's claims stand only until the new owners publish theirs.
 * A graceful stop publishes a tombstone.
 *
 * A key's partition is the producers' partitioner (cluster.partitioner:
 * murmur2 or crc32) over the entity key and the source topic's partition
 * count, read from the broker at start.  The consumer reports a record whose
 * key hashes elsewhere (featd_cluster_misrouted_records_total).
 *
 * Local state comes from ingest, not from the map: a partition this instance
 * is assigned is RESTORING from assignment until its store holds every record
 * the log held at assignment (the source topic is the changelog), then
 * ACTIVE.  Lookups of a RESTORING partition's keys answer RESTORING, never
 * the possibly stale values the store holds.
 *
 * Threads: the membership thread owns both Kafka handles and rebuilds the
 * view; feat_cluster_set_local is called by ingest's threads; routing is
 * called by gRPC workers (an atomic load per key, a mutex per request for
 * the view's reference).
 */
#ifndef FEAT_INGEST_CLUSTER_H
#define FEAT_INGEST_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"
#include "common/metrics.h"

typedef struct feat_cluster feat_cluster_t;
typedef struct feat_cluster_view feat_cluster_view_t;

typedef enum feat_cluster_mode {
    FEAT_CLUSTER_SINGLE = 0,
    FEAT_CLUSTER_REPLICA = 1,
    FEAT_CLUSTER_PARTITIONED = 2
} feat_cluster_mode_t;

/* A partition's state on this instance. */
enum {
    FEAT_PART_NONE = 0,
    FEAT_PART_RESTORING = 1,
    FEAT_PART_ACTIVE = 2,
    FEAT_PART_DRAINING = 3, /* revoked by an eager rebalance, served until the next assignment;
                             * published as draining: any other claim wins over it */
    FEAT_PART_STANDBY = 4   /* tailed outside the group (cluster.standby_replicas): served only while the
                             * owner cannot answer, within cluster.standby_max_lag */
};

/* Where a key is answered (feat_cluster_route); >= 0: a peer of the view. */
enum { FEAT_ROUTE_LOCAL = -1, FEAT_ROUTE_RESTORING = -2, FEAT_ROUTE_NONE = -3 };

typedef struct feat_cluster_conf {
    const feat_config_t *cfg;   /* [cluster], [kafka] and the tables; borrowed for the cluster's life */
    const char *bootstrap;      /* NULL = kafka.bootstrap.servers */
    feat_metrics_t *metrics;    /* NULL = the process-wide registry */
} feat_cluster_conf_t;

/* Parses cfg's [cluster] section.  In single mode no Kafka handle is made
 * and nothing else here does anything.  Otherwise makes the membership
 * producer and reader and reads every source topic's partition count from
 * the broker (waiting up to 10 s), checking that the tables a model joins
 * are co-partitioned.  NULL with errstr on failure. */
feat_cluster_t *feat_cluster_new(const feat_cluster_conf_t *conf, char *errstr, size_t errlen);
/* Starts the membership thread (not in single mode).  FEAT_OK or an error with errstr. */
feat_err_t feat_cluster_start(feat_cluster_t *c, char *errstr, size_t errlen);
/* Publishes the tombstone (a graceful leave) and stops the thread.  Idempotent. */
void feat_cluster_stop(feat_cluster_t *c);
void feat_cluster_destroy(feat_cluster_t *c); /* stops first; NULL is fine */

feat_cluster_mode_t feat_cluster_mode(const feat_cluster_t *c); /* NULL: single */
const char *feat_cluster_instance_id(const feat_cluster_t *c);
/* kafka.group.id for this instance's consumer: group, or "group.<instance_id>" in replica mode.
 * Written into out (cap bytes). */
void feat_cluster_group_id(const feat_cluster_t *c, const char *group, char *out, size_t cap);

/* The partition of key in table's source topic by cluster.partitioner, or -1
 * when the topic's partition count is unknown (single mode). */
int32_t feat_cluster_partition_of(const feat_cluster_t *c, size_t table, const char *key, size_t klen);
/* For ingest: partition's state on this instance changed (FEAT_PART_*).
 * Topics that are not a table's source are ignored. */
void feat_cluster_set_local(feat_cluster_t *c, const char *topic, int32_t partition, int state);
/* For ingest: n records of table's topic arrived on a partition their key does not hash to. */
void feat_cluster_misrouted(feat_cluster_t *c, size_t table, int32_t got, int32_t want, const char *key,
                            size_t klen);

/* ---- standbys (partitioned mode, cluster.standby_replicas = N) ----
 * The standbys of a partition are the N instances after its owner in
 * instance_id order, among the live members (heard from in the last 12 s
 * of the topic; a dead member's claims do not count either); each
 * instance works out its own share from the map whenever it changes, keeps
 * a standby while the partition has no owner or its owner restores, and
 * publishes what it tails.  Ingest tails them with a consumer outside the
 * group into the same store, so a standby the group assigns the partition
 * to is caught up at once. */

/* cluster.standby_replicas (0 outside partitioned mode). */
int feat_cluster_standby_replicas(const feat_cluster_t *c);
/* The topics the map tracks (the tables' sources, then the label topics): 0 in single mode. */
size_t feat_cluster_ntopics(const feat_cluster_t *c);
/* Topic t's name and partition count (t < feat_cluster_ntopics). */
const char *feat_cluster_topic(const feat_cluster_t *c, size_t t, int32_t *nparts);
/* 1 when this instance should tail partition p of topic t as a standby. */
int feat_cluster_standby_wanted(const feat_cluster_t *c, size_t t, int32_t p);
/* Moves on whenever the wanted set may have changed. */
unsigned feat_cluster_standby_gen(const feat_cluster_t *c);
/* For ingest: a standby partition's lag, records behind the log end its last
 * fetch saw; INT64_MAX when not known (it answers nothing then). */
void feat_cluster_set_standby_lag(feat_cluster_t *c, const char *topic, int32_t partition, int64_t lag);
/* For ingest: the consumer group's generation at the last assignment (-1 unknown), for the membership record. */
void feat_cluster_set_generation(feat_cluster_t *c, int32_t generation);

/* Whether rec (len bytes, the value of a cluster.topic record keyed key)
 * is a membership record featd uses: a featd.v1.ClusterMember whose
 * instance_id is the key, with an address when its mode is partitioned
 * (peers forward there); 1 or 0.  Pure (a fuzz target). */
int feat_cluster_record_ok(const void *rec, size_t len, const char *key, size_t klen);

/* The current map, referenced until release (never NULL when c is not single). */
feat_cluster_view_t *feat_cluster_view_acquire(feat_cluster_t *c);
void feat_cluster_view_release(feat_cluster_t *c, feat_cluster_view_t *v);
/* Where a key of table is answered: FEAT_ROUTE_LOCAL (this instance, caught
 * up, or its standby within cluster.standby_max_lag while no owner answers),
 * FEAT_ROUTE_RESTORING, FEAT_ROUTE_NONE (no reachable claim), or a peer
 * index of v: the owner, else a standby.  local_only (a peer asked): never
 * a peer; this instance's standby answers, within its bound.  Single mode:
 * always FEAT_ROUTE_LOCAL. */
int feat_cluster_route(const feat_cluster_t *c, const feat_cluster_view_t *v, size_t table, const char *key,
                       size_t klen, int local_only);
/* Where to ask again for a key whose route, peer `failed` of v, gave no
 * answer: FEAT_ROUTE_LOCAL (this instance's standby, within its bound),
 * another standby peer heard from lately, or FEAT_ROUTE_NONE. */
int feat_cluster_fallback(const feat_cluster_t *c, const feat_cluster_view_t *v, size_t table, const char *key,
                          size_t klen, int failed);
/* 1 when member peer of v is another instance that owns a partition in v
 * (not a stale record of one that left or died), else 0. */
int feat_cluster_peer_owns(const feat_cluster_t *c, const feat_cluster_view_t *v, int peer);
/* A peer's advertised address ("host:port"), valid while v is held. */
const char *feat_cluster_peer_address(const feat_cluster_view_t *v, int peer);
int feat_cluster_npeers(const feat_cluster_view_t *v);

/* ---- models in a cluster ----
 * Each model's label topic is tracked like a source topic (its partitions'
 * local states and owners are in the map) and must be co-partitioned with
 * the model's table in partitioned mode (checked at start).  The trainer of
 * a model is the instance that holds partition 0 of its label topic
 * (partitioned), or the live instance with the smallest instance_id
 * (replica).  The registry travels through cluster.models_topic, read from
 * the beginning by the membership thread. */

/* The label partition of key for model (an index into cfg->models); -1 in single mode. */
int32_t feat_cluster_label_partition(const feat_cluster_t *c, size_t model, const char *key, size_t klen);
/* The partition count of model's label topic (*topic gets its name); 0 in single mode. */
int32_t feat_cluster_label_partitions(const feat_cluster_t *c, size_t model, const char **topic);
/* FEAT_PART_* of a label partition here (FEAT_PART_ACTIVE in single mode). */
int feat_cluster_label_local(const feat_cluster_t *c, size_t model, int32_t partition);
/* 1 when this instance trains model (always in single mode); 0 when another
 * does (who gets its address, partitioned, or instance id, replica); -1
 * when that is not known yet: partition 0 has no owner, this instance's own
 * membership record has not come back (replica), or cluster.models_topic
 * is still being replayed (a version could be numbered twice). */
int feat_cluster_trainer(feat_cluster_t *c, size_t model, char *who, size_t cap);

/* The peer of v (partitioned mode) that owns label partition p of model:
 * an index of v, or -1 (no owner, or this instance). */
int feat_cluster_label_owner(const feat_cluster_t *c, const feat_cluster_view_t *v, size_t model, int32_t partition);

/* A record of cluster.models_topic (key and value as published), on the
 * membership thread, in the topic's order.  What the topic held at start is
 * replayed compacted first: only the newest record of each key, in offset
 * order (so a restart does not pass through every champion it named). */
typedef void feat_cluster_models_fn(void *arg, const void *key, size_t klen, const void *val, size_t vlen);
/* Sets the reader of cluster.models_topic; before feat_cluster_start. */
void feat_cluster_on_models(feat_cluster_t *c, feat_cluster_models_fn *fn, void *arg);
/* Queues a record for cluster.models_topic (copied).  FEAT_OK (nothing in
 * single mode) or FEAT_ERR_KAFKA, logged. */
feat_err_t feat_cluster_publish_model(feat_cluster_t *c, const void *key, size_t klen, const void *val, size_t vlen);
/* The versions model serves here, for the membership record. */
void feat_cluster_set_served(feat_cluster_t *c, size_t model, uint64_t champion, uint64_t challenger);

/* featd.v1.ClusterMap of what this instance sees, packed into out. */
feat_err_t feat_cluster_pack_map(feat_cluster_t *c, feat_buf_t *out);

#endif
