/*
 * ingest/cluster.c — membership records, the partition -> instance map and
 * the partitioner.  See cluster.h for the contract.
 */
#include "ingest/cluster.h"
#include "ingest/kconf.h"
#include "common/clock.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/worker.h"
#include "featd/v1/admin.pb-c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUBLISH_EVERY_MS 3000   /* a membership record at least this often */
#define METADATA_WAIT_MS 10000  /* for the source topics' partition counts at start */

#define LIVE_MS (4 * PUBLISH_EVERY_MS) /* a member heard from this recently is alive (replica mode's trainer) */
#define SB_MAX 8                       /* standbys a view keeps per partition (cluster.standby_replicas <= 8) */

typedef struct member {
    char *id;
    uint8_t *rec;      /* the packed ClusterMember as read */
    size_t len;
    int64_t offset;    /* of the record in cluster.topic */
    int64_t seen_ms;   /* when its latest record was read (our clock) */
} member_t;

struct feat_cluster_view {
    int refs;                          /* under c->vlock */
    size_t nmembers;
    Featd__V1__ClusterMember **members;  /* unpacked, offset order of their latest record */
    int64_t *offsets;
    int64_t *seen_ms;
    int32_t **owner;                   /* [topic][partition]: member index or -1 */
    uint8_t **restoring;               /* [topic][partition] */
    int16_t **standby;                 /* [topic][partition * SB_MAX + k]: live members that tail it, -1 after */
    int self;                          /* this instance's member index, -1 before its record is back */
    int64_t ref_ms;                    /* the newest record's arrival: a member is live when heard from
                                        * within LIVE_MS of it (a stalled cluster.topic kills nobody) */
};

struct feat_cluster {
    const feat_config_t *cfg;
    feat_cluster_mode_t mode;
    int murmur;                        /* cluster.partitioner = murmur2 */
    char id[256];
    char address[256];
    size_t ntopics;
    char **topics;                     /* distinct source topics: the tables', then the models' label topics */
    int32_t *nparts;                   /* [ntopics] */
    _Atomic uint8_t **local;           /* [ntopics][nparts]: FEAT_PART_* */
    int standbys;                      /* cluster.standby_replicas */
    int64_t max_lag;                   /* cluster.standby_max_lag */
    _Atomic int64_t **lag;             /* [ntopics][nparts]: a standby partition's lag (ingest) */
    _Atomic uint8_t **want;            /* [ntopics][nparts]: tail it as a standby (membership thread) */
    atomic_uint want_gen;
    atomic_int generation;
    _Atomic int64_t self_seen_ms;      /* when our own record last came back: Kafka is in reach */
    size_t *table_topic;               /* [ntables] -> topic index */
    size_t *model_topic;               /* [nmodels] -> topic index of the label topic */
    pthread_mutex_t slock;             /* served */
    Featd__V1__ModelServed *served;    /* [nmodels]: what this instance serves, in its membership record */
    feat_cluster_models_fn *models_fn; /* records of cluster.models_topic */
    void *models_arg;
    int64_t members_end;               /* cluster.topic's end at start: records before it are as old as
                                        * their timestamps say (a killed member's is not live) */
    int64_t models_end;                /* the models topic's end at start: records before it are replayed ... */
    atomic_int replaying;              /* ... compacted: the newest record of each key, in offset order */
    struct mrec_copy { char *key, *val; size_t klen, vlen; int64_t offset; } *replay;
    size_t nreplay, capreplay;
    feat_metric_t **m_misrouted;       /* [ntopics] */
    _Atomic uint64_t misrouted;
    _Atomic int64_t misrouted_logged_ms;
    feat_metric_t *m_members, *m_published;
    rd_kafka_t *prod, *cons;
    pthread_t thr;
    int started;
    atomic_int stop;
    atomic_int dirty;                  /* local state changed: publish */
    pthread_mutex_t vlock;             /* view and its refs */
    feat_cluster_view_t *view;
    member_t *members;                 /* membership thread only */
    size_t nmembers, capmembers;
};

/* ---- partitioner ------------------------------------------------------------------------ */

static int32_t partition_in(const feat_cluster_t *c, size_t t, const char *key, size_t klen) {
    int32_t n = c->nparts[t];
    if (n <= 0) return -1;
    uint32_t h = c->murmur ? feat_murmur2(key, klen) & 0x7fffffffu : feat_crc32(0, key, klen);
    return (int32_t)(h % (uint32_t)n);
}

int32_t feat_cluster_partition_of(const feat_cluster_t *c, size_t table, const char *key, size_t klen) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return -1;
    return partition_in(c, c->table_topic[table], key, klen);
}

int32_t feat_cluster_label_partition(const feat_cluster_t *c, size_t model, const char *key, size_t klen) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return -1;
    return partition_in(c, c->model_topic[model], key, klen);
}

int32_t feat_cluster_label_partitions(const feat_cluster_t *c, size_t model, const char **topic) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return 0;
    if (topic) *topic = c->topics[c->model_topic[model]];
    return c->nparts[c->model_topic[model]];
}

int feat_cluster_label_local(const feat_cluster_t *c, size_t model, int32_t partition) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return FEAT_PART_ACTIVE;
    size_t t = c->model_topic[model];
    if (partition < 0 || partition >= c->nparts[t]) return FEAT_PART_NONE;
    return atomic_load(&c->local[t][partition]);
}

static ssize_t topic_index(const feat_cluster_t *c, const char *topic) {
    for (size_t i = 0; i < c->ntopics; i++)
        if (strcmp(c->topics[i], topic) == 0) return (ssize_t)i;
    return -1;
}

void feat_cluster_set_local(feat_cluster_t *c, const char *topic, int32_t partition, int state) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return;
    ssize_t t = topic_index(c, topic);
    if (t < 0 || partition < 0 || partition >= c->nparts[t]) return;
    if (atomic_exchange(&c->local[t][partition], (uint8_t)state) != state) atomic_store(&c->dirty, 1);
    /* a standby ingest took on its own (a partition it gave up) stays until a plan that knows of it */
    if (state == FEAT_PART_STANDBY) atomic_store(&c->want[t][partition], 1);
}

void feat_cluster_set_standby_lag(feat_cluster_t *c, const char *topic, int32_t partition, int64_t lag) {
    if (!c || c->mode != FEAT_CLUSTER_PARTITIONED) return;
    ssize_t t = topic_index(c, topic);
    if (t >= 0 && partition >= 0 && partition < c->nparts[t]) atomic_store(&c->lag[t][partition], lag);
}

void feat_cluster_set_generation(feat_cluster_t *c, int32_t generation) {
    if (c && atomic_exchange(&c->generation, generation) != generation) atomic_store(&c->dirty, 1);
}

int feat_cluster_standby_replicas(const feat_cluster_t *c) {
    return c && c->mode == FEAT_CLUSTER_PARTITIONED ? c->standbys : 0;
}

size_t feat_cluster_ntopics(const feat_cluster_t *c) {
    return c && c->mode != FEAT_CLUSTER_SINGLE ? c->ntopics : 0;
}

const char *feat_cluster_topic(const feat_cluster_t *c, size_t t, int32_t *nparts) {
    *nparts = c->nparts[t];
    return c->topics[t];
}

int feat_cluster_standby_wanted(const feat_cluster_t *c, size_t t, int32_t p) {
    return c && c->standbys && t < c->ntopics && p >= 0 && p < c->nparts[t] && atomic_load(&c->want[t][p]);
}

unsigned feat_cluster_standby_gen(const feat_cluster_t *c) { return c ? atomic_load(&c->want_gen) : 0; }

void feat_cluster_misrouted(feat_cluster_t *c, size_t table, int32_t got, int32_t want, const char *key,
                            size_t klen) {
    size_t t = c->table_topic[table];
    feat_metric_add(c->m_misrouted[t], 1);
    uint64_t n = atomic_fetch_add(&c->misrouted, 1) + 1;
    int64_t now = feat_now_ms(), last = atomic_load(&c->misrouted_logged_ms);
    if (now - last < 10000 || !atomic_compare_exchange_strong(&c->misrouted_logged_ms, &last, now)) return;
    feat_log(FEAT_LOG_ERROR, "cluster",
             "misrouted: %s[%d] holds key \"%.*s\", which cluster.partitioner = %s puts in partition %d (%llu such "
             "records so far): the producers use another partitioner or key, and lookups of such keys go to the "
             "wrong instance", c->topics[t], got, (int)(klen > 64 ? 64 : klen), key, c->murmur ? "murmur2" : "crc32",
             want, (unsigned long long)n);
}

/* ---- the view --------------------------------------------------------------------------- */

static void view_free(feat_cluster_t *c, feat_cluster_view_t *v) {
    if (!v) return;
    for (size_t i = 0; i < v->nmembers; i++) featd__v1__cluster_member__free_unpacked(v->members[i], NULL);
    for (size_t t = 0; t < c->ntopics && v->owner; t++) free(v->owner[t]);
    for (size_t t = 0; t < c->ntopics && v->restoring; t++) free(v->restoring[t]);
    for (size_t t = 0; t < c->ntopics && v->standby; t++) free(v->standby[t]);
    free(v->owner);
    free(v->restoring);
    free(v->standby);
    free(v->members);
    free(v->offsets);
    free(v->seen_ms);
    free(v);
}

/* Marks topic/partitions of a member's list as claimed by member m of v
 * when its record is newer than the claim already there. */
static void claim(feat_cluster_t *c, feat_cluster_view_t *v, size_t m, Featd__V1__TopicPartitions **tps, size_t n,
                  int restoring, int draining) {
    for (size_t i = 0; i < n; i++) {
        ssize_t t = topic_index(c, tps[i]->topic);
        if (t < 0) continue;
        for (size_t k = 0; k < tps[i]->n_partitions; k++) {
            int32_t p = tps[i]->partitions[k];
            if (p < 0 || p >= c->nparts[t]) continue;
            int32_t o = v->owner[t][p];
            if (o >= 0 && (draining || v->offsets[o] > v->offsets[m])) continue;
            v->owner[t][p] = (int32_t)m;
            v->restoring[t][p] = (uint8_t)restoring;
        }
    }
}

/* Member i of v is alive: this instance, or heard from within LIVE_MS of the newest record. */
static int live(const feat_cluster_view_t *v, size_t i) {
    return (int)i == v->self || v->ref_ms - v->seen_ms[i] <= LIVE_MS;
}

/* Which partitions this instance tails as a standby, from a new view
 * (membership thread): the cluster.standby_replicas instances after a
 * partition's owner in instance_id order, among the live members, are its
 * standbys.  A standby is kept while its partition has no owner or the
 * owner restores (it is what answers meanwhile); a partition this instance
 * holds is never a standby here. */
static void plan_standbys(feat_cluster_t *c, const feat_cluster_view_t *v) {
    if (!c->standbys || v->self < 0) return;
    int *ring = calloc(v->nmembers + 1, sizeof(int));
    if (!ring) return;
    size_t n = 0;
    for (size_t i = 0; i < v->nmembers; i++) { /* the live members, by instance_id */
        if (!live(v, i)) continue;
        size_t k = n++;
        for (; k > 0 && strcmp(v->members[ring[k - 1]]->instance_id, v->members[i]->instance_id) > 0; k--)
            ring[k] = ring[k - 1];
        ring[k] = (int)i;
    }
    int changed = 0;
    for (size_t t = 0; t < c->ntopics; t++)
        for (int32_t p = 0; p < c->nparts[t]; p++) {
            int st = atomic_load(&c->local[t][p]), cur = st == FEAT_PART_STANDBY, want = cur;
            int32_t o = v->owner[t][p];
            if (o == v->self) o = -1; /* our own claim, of a partition given up: a newer one is on its way */
            if (st != FEAT_PART_NONE && st != FEAT_PART_STANDBY) {
                want = 0;
            } else if (o >= 0) {
                size_t at = 0;
                while (at < n && ring[at] != o) at++;
                want = 0;
                for (int k = 1; at < n && k <= c->standbys && (size_t)k < n; k++)
                    want |= ring[(at + (size_t)k) % n] == v->self;
                want |= cur && v->restoring[t][p];
            }
            if (atomic_exchange(&c->want[t][p], (uint8_t)want) != want) changed = 1;
        }
    if (changed) atomic_fetch_add(&c->want_gen, 1);
    free(ring);
}

/* A new view from the members table (membership thread), swapped in. */
static void rebuild(feat_cluster_t *c) {
    feat_cluster_view_t *v = calloc(1, sizeof(*v));
    if (!v) return;
    v->refs = 1;
    v->members = calloc(c->nmembers + 1, sizeof(*v->members));
    v->offsets = calloc(c->nmembers + 1, sizeof(*v->offsets));
    v->seen_ms = calloc(c->nmembers + 1, sizeof(*v->seen_ms));
    v->owner = calloc(c->ntopics, sizeof(*v->owner));
    v->restoring = calloc(c->ntopics, sizeof(*v->restoring));
    v->standby = calloc(c->ntopics, sizeof(*v->standby));
    v->self = -1;
    int ok = v->members && v->offsets && v->seen_ms && v->owner && v->restoring && v->standby;
    for (size_t t = 0; ok && t < c->ntopics; t++) {
        v->owner[t] = malloc((size_t)c->nparts[t] * sizeof(int32_t) + 1);
        v->restoring[t] = calloc((size_t)c->nparts[t] + 1, 1);
        v->standby[t] = malloc(((size_t)c->nparts[t] * SB_MAX + 1) * sizeof(int16_t));
        if (!v->owner[t] || !v->restoring[t] || !v->standby[t]) {
            ok = 0;
            break;
        }
        memset(v->standby[t], 0xff, ((size_t)c->nparts[t] * SB_MAX + 1) * sizeof(int16_t)); /* -1 each */
        for (int32_t p = 0; p < c->nparts[t]; p++) v->owner[t][p] = -1;
    }
    for (size_t i = 0; ok && i < c->nmembers; i++) {
        Featd__V1__ClusterMember *m = featd__v1__cluster_member__unpack(NULL, c->members[i].len, c->members[i].rec);
        if (!m) continue; /* checked when read */
        if (strcmp(m->instance_id, c->id) == 0) v->self = (int)v->nmembers;
        v->members[v->nmembers] = m;
        v->seen_ms[v->nmembers] = c->members[i].seen_ms;
        v->offsets[v->nmembers++] = c->members[i].offset;
        if (c->members[i].seen_ms > v->ref_ms) v->ref_ms = c->members[i].seen_ms;
    }
    for (size_t i = 0; ok && i < v->nmembers; i++) {
        /* not heard from in LIVE_MS (it publishes every PUBLISH_EVERY_MS): killed, or cut off from Kafka,
         * where its session has expired too; its last claims would resurface whenever a newer claim
         * goes away (a graceful leave's tombstone) */
        if (!live(v, i)) continue;
        claim(c, v, i, v->members[i]->active, v->members[i]->n_active, 0, 0);
        claim(c, v, i, v->members[i]->restoring, v->members[i]->n_restoring, 1, 0);
    }
    for (size_t i = 0; ok && i < v->nmembers; i++) /* only where nobody else claims */
        if (live(v, i)) claim(c, v, i, v->members[i]->draining, v->members[i]->n_draining, 0, 1);
    for (size_t i = 0; ok && i < v->nmembers && i <= INT16_MAX; i++) {
        if (!live(v, i)) continue;
        for (size_t k = 0; k < v->members[i]->n_standby; k++) {
            const Featd__V1__TopicPartitions *tp = v->members[i]->standby[k];
            ssize_t t = topic_index(c, tp->topic);
            for (size_t j = 0; t >= 0 && j < tp->n_partitions; j++) {
                int32_t p = tp->partitions[j];
                if (p < 0 || p >= c->nparts[t]) continue;
                int16_t *slot = &v->standby[t][(size_t)p * SB_MAX];
                for (int q = 0; q < SB_MAX; q++)
                    if (slot[q] < 0) { slot[q] = (int16_t)i; break; }
            }
        }
    }
    if (ok) plan_standbys(c, v);
    if (!ok) {
        view_free(c, v);
        feat_log(FEAT_LOG_ERROR, "cluster", "out of memory rebuilding the partition map; keeping the old one");
        return;
    }
    feat_metric_set(c->m_members, (double)v->nmembers);
    pthread_mutex_lock(&c->vlock);
    feat_cluster_view_t *old = c->view;
    c->view = v;
    int drop = old && --old->refs == 0;
    pthread_mutex_unlock(&c->vlock);
    if (drop) view_free(c, old);
}

feat_cluster_view_t *feat_cluster_view_acquire(feat_cluster_t *c) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return NULL;
    pthread_mutex_lock(&c->vlock);
    feat_cluster_view_t *v = c->view;
    if (v) v->refs++;
    pthread_mutex_unlock(&c->vlock);
    return v;
}

void feat_cluster_view_release(feat_cluster_t *c, feat_cluster_view_t *v) {
    if (!v) return;
    pthread_mutex_lock(&c->vlock);
    int drop = --v->refs == 0;
    pthread_mutex_unlock(&c->vlock);
    if (drop) view_free(c, v);
}

/* This instance tails t/p as a standby within cluster.standby_max_lag, and
 * is in reach of Kafka: its own membership record came back lately (the
 * lag is as old as the last fetch, which a cut-off consumer stops making). */
static int standby_ok(const feat_cluster_t *c, size_t t, int32_t p) {
    return atomic_load_explicit(&c->local[t][p], memory_order_acquire) == FEAT_PART_STANDBY &&
           atomic_load_explicit(&c->lag[t][p], memory_order_relaxed) <= c->max_lag &&
           feat_now_ms() - atomic_load_explicit(&c->self_seen_ms, memory_order_relaxed) <= LIVE_MS / 2;
}

/* A live peer of v, other than `not`, that tails t/p as a standby; -1 if none. */
static int standby_peer(const feat_cluster_view_t *v, size_t t, int32_t p, int not) {
    const int16_t *slot = &v->standby[t][(size_t)p * SB_MAX];
    for (int q = 0; q < SB_MAX && slot[q] >= 0; q++)
        if (slot[q] != not && slot[q] != v->self) return slot[q];
    return -1;
}

int feat_cluster_route(const feat_cluster_t *c, const feat_cluster_view_t *v, size_t table, const char *key,
                       size_t klen, int local_only) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return FEAT_ROUTE_LOCAL;
    int32_t p = feat_cluster_partition_of(c, table, key, klen);
    if (p < 0) return FEAT_ROUTE_NONE;
    size_t t = c->table_topic[table];
    int st = atomic_load_explicit(&c->local[t][p], memory_order_acquire);
    if (st == FEAT_PART_ACTIVE || st == FEAT_PART_DRAINING) return FEAT_ROUTE_LOCAL;
    if (local_only) /* a peer asked: its owner, or a standby it chose (which says RESTORING while behind) */
        return st == FEAT_PART_STANDBY ? (standby_ok(c, t, p) ? FEAT_ROUTE_LOCAL : FEAT_ROUTE_RESTORING)
               : st == FEAT_PART_RESTORING ? FEAT_ROUTE_RESTORING : FEAT_ROUTE_NONE;
    if (c->mode == FEAT_CLUSTER_REPLICA || !v) return st == FEAT_PART_RESTORING ? FEAT_ROUTE_RESTORING : FEAT_ROUTE_NONE;
    int32_t o = v->owner[t][p];
    /* a claim of ours that ingest no longer holds is stale: a newer one is on its way */
    if (o == v->self) o = -1;
    if (o >= 0 && !v->restoring[t][p]) return o; /* the owner answers: the freshest values */
    /* nobody answers with what the log holds now: a standby within its bound (KIP-535) */
    if (standby_ok(c, t, p)) return FEAT_ROUTE_LOCAL;
    int s = standby_peer(v, t, p, -1);
    if (s >= 0) return s;
    if (st == FEAT_PART_RESTORING) return FEAT_ROUTE_RESTORING;
    return o >= 0 ? o : FEAT_ROUTE_NONE; /* restoring there: it says so */
}

int feat_cluster_fallback(const feat_cluster_t *c, const feat_cluster_view_t *v, size_t table, const char *key,
                          size_t klen, int failed) {
    if (!c || c->mode != FEAT_CLUSTER_PARTITIONED || !v || !c->standbys) return FEAT_ROUTE_NONE;
    int32_t p = feat_cluster_partition_of(c, table, key, klen);
    if (p < 0) return FEAT_ROUTE_NONE;
    size_t t = c->table_topic[table];
    int st = atomic_load_explicit(&c->local[t][p], memory_order_acquire);
    /* assigned here meanwhile, or a standby here */
    if (st == FEAT_PART_ACTIVE || st == FEAT_PART_DRAINING || standby_ok(c, t, p)) return FEAT_ROUTE_LOCAL;
    int s = standby_peer(v, t, p, failed);
    return s >= 0 ? s : FEAT_ROUTE_NONE;
}

int feat_cluster_trainer(feat_cluster_t *c, size_t model, char *who, size_t cap) {
    if (cap) who[0] = 0;
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return 1;
    if (atomic_load(&c->replaying)) return -1; /* the versions the topic holds are not all here yet */
    size_t t = c->model_topic[model];
    if (c->mode == FEAT_CLUSTER_PARTITIONED) {
        int st = atomic_load(&c->local[t][0]);
        if (st == FEAT_PART_ACTIVE || st == FEAT_PART_RESTORING) return 1;
    }
    feat_cluster_view_t *v = feat_cluster_view_acquire(c);
    int r = -1;
    if (c->mode == FEAT_CLUSTER_PARTITIONED) {
        int32_t o = v ? v->owner[t][0] : -1;
        if (o >= 0 && strcmp(v->members[o]->instance_id, c->id) != 0) {
            r = 0;
            snprintf(who, cap, "%s", v->members[o]->address);
        }
    } else { /* replica: every instance holds everything; the live one with the smallest id trains */
        const char *best = c->id;
        int64_t now = feat_now_ms();
        int self = 0; /* nobody is known before our own record is back: the others' came before it */
        for (size_t i = 0; v && i < v->nmembers; i++) {
            self |= strcmp(v->members[i]->instance_id, c->id) == 0;
            if (now - v->seen_ms[i] <= LIVE_MS && strcmp(v->members[i]->instance_id, best) < 0)
                best = v->members[i]->instance_id;
        }
        r = !self ? -1 : best == c->id;
        if (r == 0) snprintf(who, cap, "%s", best);
    }
    feat_cluster_view_release(c, v);
    return r;
}

int feat_cluster_label_owner(const feat_cluster_t *c, const feat_cluster_view_t *v, size_t model, int32_t partition) {
    if (!c || !v || c->mode != FEAT_CLUSTER_PARTITIONED) return -1;
    size_t t = c->model_topic[model];
    if (partition < 0 || partition >= c->nparts[t]) return -1;
    int32_t o = v->owner[t][partition];
    return o >= 0 && strcmp(v->members[o]->instance_id, c->id) != 0 ? o : -1;
}

int feat_cluster_peer_owns(const feat_cluster_t *c, const feat_cluster_view_t *v, int peer) {
    if (!c || !v || peer < 0 || (size_t)peer >= v->nmembers || !strcmp(v->members[peer]->instance_id, c->id))
        return 0;
    for (size_t t = 0; t < c->ntopics; t++)
        for (int32_t p = 0; p < c->nparts[t]; p++)
            if (v->owner[t][p] == peer) return 1;
    return 0;
}

const char *feat_cluster_peer_address(const feat_cluster_view_t *v, int peer) {
    return v->members[peer]->address;
}

int feat_cluster_npeers(const feat_cluster_view_t *v) { return v ? (int)v->nmembers : 0; }

feat_cluster_mode_t feat_cluster_mode(const feat_cluster_t *c) { return c ? c->mode : FEAT_CLUSTER_SINGLE; }
const char *feat_cluster_instance_id(const feat_cluster_t *c) { return c ? c->id : ""; }

void feat_cluster_group_id(const feat_cluster_t *c, const char *group, char *out, size_t cap) {
    if (c && c->mode == FEAT_CLUSTER_REPLICA) snprintf(out, cap, "%s.%s", group, c->id);
    else snprintf(out, cap, "%s", group);
}

/* ---- membership records -------------------------------------------------------------------- */

/* Our record: the partitions ingest holds, by state. */
static uint8_t *pack_self(feat_cluster_t *c, size_t *len) {
    Featd__V1__ClusterMember m = FEATD__V1__CLUSTER_MEMBER__INIT;
    m.instance_id = c->id;
    m.address = c->address;
    m.mode = (char *)c->cfg->cluster_mode;
    m.updated_ms = feat_now_ms();
    m.generation = atomic_load(&c->generation);
    Featd__V1__TopicPartitions *tp = calloc(4 * c->ntopics + 1, sizeof(*tp));
    Featd__V1__TopicPartitions **act = calloc(c->ntopics + 1, sizeof(*act));
    Featd__V1__TopicPartitions **res = calloc(c->ntopics + 1, sizeof(*res));
    Featd__V1__TopicPartitions **dra = calloc(c->ntopics + 1, sizeof(*dra));
    Featd__V1__TopicPartitions **sby = calloc(c->ntopics + 1, sizeof(*sby));
    Featd__V1__ModelServed **served = calloc(c->cfg->nmodels + 1, sizeof(*served));
    int32_t *parts = NULL;
    size_t total = 0;
    for (size_t t = 0; t < c->ntopics; t++) total += (size_t)c->nparts[t];
    parts = calloc(total + 1, sizeof(*parts)); /* each partition is in one state */
    uint8_t *out = NULL;
    if (!tp || !act || !res || !dra || !sby || !parts || !served) goto done;
    size_t np = 0;
    for (size_t t = 0; t < c->ntopics; t++) {
        for (int s = 0; s < 4; s++) {
            Featd__V1__TopicPartitions *x = &tp[4 * t + (size_t)s];
            featd__v1__topic_partitions__init(x);
            x->topic = c->topics[t];
            x->partitions = parts + np;
            static const int states[4] = {FEAT_PART_ACTIVE, FEAT_PART_RESTORING, FEAT_PART_DRAINING,
                                          FEAT_PART_STANDBY};
            for (int32_t p = 0; p < c->nparts[t] && np < total; p++)
                if (atomic_load(&c->local[t][p]) == states[s]) parts[np++] = p, x->n_partitions++;
            if (!x->n_partitions) continue;
            if (s == 0) act[m.n_active++] = x;
            else if (s == 1) res[m.n_restoring++] = x;
            else if (s == 2) dra[m.n_draining++] = x;
            else sby[m.n_standby++] = x;
        }
    }
    m.active = act;
    m.restoring = res;
    m.draining = dra;
    m.standby = sby;
    pthread_mutex_lock(&c->slock); /* then vlock (in feat_cluster_trainer); nothing takes them the other way */
    for (size_t i = 0; i < c->cfg->nmodels; i++) {
        c->served[i].trainer = feat_cluster_trainer(c, i, NULL, 0) == 1;
        served[m.n_models++] = &c->served[i];
    }
    m.models = served;
    *len = featd__v1__cluster_member__get_packed_size(&m);
    out = malloc(*len + 1);
    if (out) featd__v1__cluster_member__pack(&m, out);
    pthread_mutex_unlock(&c->slock);
done:
    free(tp);
    free(act);
    free(res);
    free(dra);
    free(sby);
    free(parts);
    free(served);
    return out;
}

static void publish(feat_cluster_t *c, int tombstone) {
    size_t len = 0;
    uint8_t *rec = tombstone ? NULL : pack_self(c, &len);
    if (!tombstone && !rec) return;
    rd_kafka_resp_err_t e = rd_kafka_producev(c->prod, RD_KAFKA_V_TOPIC(c->cfg->cluster_topic), RD_KAFKA_V_PARTITION(0),
                                              RD_KAFKA_V_KEY(c->id, strlen(c->id)), RD_KAFKA_V_VALUE(rec, len),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    free(rec);
    if (e) feat_log(FEAT_LOG_WARN, "cluster", "cannot publish membership to %s: %s", c->cfg->cluster_topic,
                    rd_kafka_err2str(e));
    else feat_metric_add(c->m_published, 1);
}

int feat_cluster_record_ok(const void *rec, size_t len, const char *key, size_t klen) {
    Featd__V1__ClusterMember *m = featd__v1__cluster_member__unpack(NULL, len, rec);
    int ok = m && strlen(m->instance_id) == klen && memcmp(m->instance_id, key, klen) == 0 &&
             (*m->address || strcmp(m->mode, "partitioned") != 0) && strlen(m->address) < 256;
    for (size_t i = 0; ok && i < m->n_active + m->n_restoring + m->n_standby; i++) {
        const Featd__V1__TopicPartitions *tp = i < m->n_active                  ? m->active[i]
                                               : i < m->n_active + m->n_restoring ? m->restoring[i - m->n_active]
                                                                                  : m->standby[i - m->n_active - m->n_restoring];
        ok = tp->topic && tp->n_partitions <= 65536;
    }
    if (m) featd__v1__cluster_member__free_unpacked(m, NULL);
    return ok;
}

static ssize_t member_find(feat_cluster_t *c, const char *id, size_t idlen) {
    for (size_t i = 0; i < c->nmembers; i++)
        if (strlen(c->members[i].id) == idlen && memcmp(c->members[i].id, id, idlen) == 0) return (ssize_t)i;
    return -1;
}

/* One record of cluster.topic: 1 when the members table changed. */
static int take_record(feat_cluster_t *c, const rd_kafka_message_t *m) {
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            feat_log(FEAT_LOG_WARN, "cluster", "reading %s: %s", c->cfg->cluster_topic, rd_kafka_message_errstr(m));
        return 0;
    }
    if (!m->key || !m->key_len || m->key_len > 255) return 0;
    ssize_t i = member_find(c, m->key, m->key_len);
    if (!m->payload) { /* tombstone: a graceful leave */
        if (i < 0) return 0;
        free(c->members[i].id);
        free(c->members[i].rec);
        memmove(&c->members[i], &c->members[i + 1], (c->nmembers - (size_t)i - 1) * sizeof(member_t));
        c->nmembers--;
        return 1;
    }
    if (!feat_cluster_record_ok(m->payload, m->len, m->key, m->key_len)) {
        feat_log(FEAT_LOG_WARN, "cluster", "%s@%lld: not a featd membership record; ignored", c->cfg->cluster_topic,
                 (long long)m->offset);
        return 0;
    }
    uint8_t *copy = malloc(m->len + 1);
    if (!copy) return 0;
    memcpy(copy, m->payload, m->len);
    if (i >= 0) {
        /* newest record last: keeps the table in record order */
        member_t keep = c->members[i];
        memmove(&c->members[i], &c->members[i + 1], (c->nmembers - (size_t)i - 1) * sizeof(member_t));
        c->members[c->nmembers - 1] = keep;
        i = (ssize_t)c->nmembers - 1;
        free(c->members[i].rec);
    } else {
        if (c->nmembers == c->capmembers) {
            size_t nc = c->capmembers ? 2 * c->capmembers : 8;
            member_t *nm = realloc(c->members, nc * sizeof(*nm));
            if (!nm) { free(copy); return 0; }
            c->members = nm;
            c->capmembers = nc;
        }
        i = (ssize_t)c->nmembers;
        c->members[i].id = strndup(m->key, m->key_len);
        if (!c->members[i].id) { free(copy); return 0; }
        c->nmembers++;
    }
    c->members[i].rec = copy;
    c->members[i].len = m->len;
    c->members[i].offset = m->offset;
    c->members[i].seen_ms = feat_now_ms();
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    if (m->offset < c->members_end && ts > 0 && ts < c->members[i].seen_ms) c->members[i].seen_ms = ts;
    if (strcmp(c->members[i].id, c->id) == 0) atomic_store(&c->self_seen_ms, c->members[i].seen_ms);
    return 1;
}

/* ---- the models topic: what was there at start is replayed compacted --------------------------- */

static int by_offset(const void *a, const void *b) {
    int64_t x = ((const struct mrec_copy *)a)->offset, y = ((const struct mrec_copy *)b)->offset;
    return x < y ? -1 : x > y;
}

/* The end of the replay: the kept records, in offset order. */
static void replay_flush(feat_cluster_t *c) {
    qsort(c->replay, c->nreplay, sizeof(*c->replay), by_offset);
    for (size_t i = 0; i < c->nreplay; i++) {
        c->models_fn(c->models_arg, c->replay[i].key, c->replay[i].klen, c->replay[i].val, c->replay[i].vlen);
        free(c->replay[i].key);
        free(c->replay[i].val);
    }
    free(c->replay);
    c->replay = NULL;
    c->nreplay = c->capreplay = 0;
    atomic_store(&c->replaying, 0);
    feat_log(FEAT_LOG_INFO, "cluster", "%s read up to offset %lld", c->cfg->cluster_models_topic,
             (long long)c->models_end);
}

/* One record of cluster.models_topic.  Before the end seen at start only
 * the newest record of each key is kept (what compaction leaves), so a
 * restart does not serve every champion the topic ever named on its way to
 * the current one. */
static void take_model(feat_cluster_t *c, const rd_kafka_message_t *m) {
    if (!c->models_fn || !m->key || !m->payload) return;
    if (!atomic_load(&c->replaying)) {
        c->models_fn(c->models_arg, m->key, m->key_len, m->payload, m->len);
        return;
    }
    size_t i;
    for (i = 0; i < c->nreplay; i++)
        if (c->replay[i].klen == m->key_len && memcmp(c->replay[i].key, m->key, m->key_len) == 0) break;
    if (i == c->nreplay && c->nreplay == c->capreplay) {
        size_t nc = c->capreplay ? 2 * c->capreplay : 16;
        struct mrec_copy *r = realloc(c->replay, nc * sizeof(*r));
        if (!r) { /* no room to compact: apply it as it comes */
            c->models_fn(c->models_arg, m->key, m->key_len, m->payload, m->len);
            return;
        }
        c->replay = r;
        c->capreplay = nc;
    }
    char *k = malloc(m->key_len + 1), *v = malloc(m->len + 1);
    if (!k || !v) {
        free(k);
        free(v);
        c->models_fn(c->models_arg, m->key, m->key_len, m->payload, m->len);
        return;
    }
    memcpy(k, m->key, m->key_len);
    memcpy(v, m->payload, m->len);
    if (i < c->nreplay) {
        free(c->replay[i].key);
        free(c->replay[i].val);
    } else {
        c->nreplay++;
    }
    c->replay[i] = (struct mrec_copy){k, v, m->key_len, m->len, m->offset};
    if (m->offset >= c->models_end - 1) replay_flush(c);
}

/* Whether the reader is past the models topic's end seen at start. */
static int replay_done(feat_cluster_t *c) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, c->cfg->cluster_models_topic, 0);
    int done = !rd_kafka_position(c->cons, l) && l->elems[0].offset >= c->models_end;
    rd_kafka_topic_partition_list_destroy(l);
    return done;
}

static void *run(void *arg) {
    feat_cluster_t *c = arg;
    int64_t last_pub = 0;
    while (!atomic_load(&c->stop)) {
        int changed = 0;
        int64_t until = feat_now_ms() + 1000; /* then publish, whatever is still queued */
        for (rd_kafka_message_t *m = rd_kafka_consumer_poll(c->cons, 100); m;) {
            if (!m->err && m->rkt && strcmp(rd_kafka_topic_name(m->rkt), c->cfg->cluster_topic) != 0)
                take_model(c, m);
            else
                changed |= take_record(c, m);
            rd_kafka_message_destroy(m);
            m = feat_now_ms() < until ? rd_kafka_consumer_poll(c->cons, 0) : NULL;
        }
        if (atomic_load(&c->replaying) && replay_done(c)) replay_flush(c);
        if (changed) rebuild(c);
        int64_t now = feat_now_ms();
        if (atomic_exchange(&c->dirty, 0) || now - last_pub >= PUBLISH_EVERY_MS) {
            publish(c, 0);
            last_pub = now;
        }
        rd_kafka_poll(c->prod, 0);
    }
    return NULL;
}

/* ---- models ------------------------------------------------------------------------------- */

void feat_cluster_on_models(feat_cluster_t *c, feat_cluster_models_fn *fn, void *arg) {
    if (!c || c->started) return;
    c->models_fn = fn;
    c->models_arg = arg;
}

feat_err_t feat_cluster_publish_model(feat_cluster_t *c, const void *key, size_t klen, const void *val, size_t vlen) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE) return FEAT_OK;
    rd_kafka_resp_err_t e = rd_kafka_producev(c->prod, RD_KAFKA_V_TOPIC(c->cfg->cluster_models_topic),
                                              RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, klen),
                                              RD_KAFKA_V_VALUE((void *)val, vlen),
                                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e) {
        feat_log(FEAT_LOG_ERROR, "cluster", "cannot publish a model record (%zu bytes) to %s: %s; the other instances "
                 "do not get it", vlen, c->cfg->cluster_models_topic, rd_kafka_err2str(e));
        return FEAT_ERR_KAFKA;
    }
    return FEAT_OK;
}

void feat_cluster_set_served(feat_cluster_t *c, size_t model, uint64_t champion, uint64_t challenger) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE || model >= c->cfg->nmodels) return;
    pthread_mutex_lock(&c->slock);
    Featd__V1__ModelServed *m = &c->served[model];
    int changed = m->champion != champion || m->challenger != challenger;
    m->champion = champion;
    m->challenger = challenger;
    pthread_mutex_unlock(&c->slock);
    if (changed) atomic_store(&c->dirty, 1);
}

/* ---- life ------------------------------------------------------------------------------- */

static const char *cfg_topic(const feat_cluster_t *c) { return c->cfg->cluster_topic; }

/* 1 (errstr set) when topic, named by config key, is not in the cluster. */
static int topic_missing(feat_cluster_t *c, const char *key, const char *topic, char *errstr, size_t errlen) {
    rd_kafka_topic_t *ct = rd_kafka_topic_new(c->prod, topic, NULL);
    const struct rd_kafka_metadata *cmd = NULL;
    rd_kafka_resp_err_t ce = ct ? rd_kafka_metadata(c->prod, 0, ct, &cmd, 5000) : RD_KAFKA_RESP_ERR__NOENT;
    if (!ce && (cmd->topic_cnt != 1 || cmd->topics[0].err || cmd->topics[0].partition_cnt < 1))
        ce = cmd->topic_cnt == 1 && cmd->topics[0].err ? cmd->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (cmd) rd_kafka_metadata_destroy(cmd);
    if (ct) rd_kafka_topic_destroy(ct);
    if (ce)
        snprintf(errstr, errlen, "%s: cannot use topic %s: %s (create it with 1 partition and "
                 "cleanup.policy=compact)", key, topic, rd_kafka_err2str(ce));
    return ce != 0;
}

/* Source topics' partition counts from the broker. */
static feat_err_t read_partitions(feat_cluster_t *c, char *errstr, size_t errlen) {
    int64_t until = feat_now_ms() + METADATA_WAIT_MS;
    for (size_t t = 0; t < c->ntopics; t++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->prod, c->topics[t], NULL);
        if (!rkt) { snprintf(errstr, errlen, "cluster: out of memory"); return FEAT_ERR_NOMEM; }
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e;
        for (;;) {
            e = rd_kafka_metadata(c->prod, 0, rkt, &md, 2000);
            if (!e && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0) {
                c->nparts[t] = md->topics[0].partition_cnt;
                break;
            }
            if (!e && md->topic_cnt == 1) e = md->topics[0].err;
            if (md) rd_kafka_metadata_destroy(md), md = NULL;
            if (feat_now_ms() >= until) break;
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (md) rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        if (c->nparts[t] <= 0) {
            snprintf(errstr, errlen, "cluster: cannot read the partitions of source topic %s: %s", c->topics[t],
                     rd_kafka_err2str(e));
            return FEAT_ERR_KAFKA;
        }
        c->local[t] = calloc((size_t)c->nparts[t], sizeof(**c->local));
        c->want[t] = calloc((size_t)c->nparts[t], sizeof(**c->want));
        c->lag[t] = calloc((size_t)c->nparts[t], sizeof(**c->lag));
        if (!c->local[t] || !c->want[t] || !c->lag[t]) {
            snprintf(errstr, errlen, "cluster: out of memory");
            return FEAT_ERR_NOMEM;
        }
    }
    /* cluster.topic must exist: without it no map ever forms; models_topic: no model would be shared */
    if (topic_missing(c, "cluster.topic", cfg_topic(c), errstr, errlen) ||
        (c->cfg->nmodels && topic_missing(c, "cluster.models_topic", c->cfg->cluster_models_topic, errstr, errlen)))
        return FEAT_ERR_CONFIG;
    const feat_config_t *cfg = c->cfg;
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const feat_model_conf_t *mc = &cfg->models[i];
        /* the trainer reads each label's features where the label is: the same key on one instance */
        size_t lt = c->model_topic[i], mt = lt;
        for (size_t k = 0; k < cfg->ntables; k++)
            if (strcmp(cfg->tables[k].name, mc->table) == 0) mt = c->table_topic[k];
        if (c->mode == FEAT_CLUSTER_PARTITIONED && c->nparts[lt] != c->nparts[mt]) {
            snprintf(errstr, errlen,
                     "model.%s.label_topic: topic %s has %d partitions and table %s's topic %s has %d; a cluster "
                     "needs a model's labels co-partitioned with its table (same partition count and key)",
                     mc->name, c->topics[lt], c->nparts[lt], mc->table, c->topics[mt], c->nparts[mt]);
            return FEAT_ERR_CONFIG;
        }
        /* a model over several tables reads each with one row's keys: the same key must live on one instance */
        for (size_t j = 0; j < mc->nfeatures; j++) {
            const feat_model_feat_t *f = &mc->feats[j];
            if (f->key >= 0) continue; /* read with another entity's key: routed on its own */
            size_t a = c->table_topic[f->table], b = c->table_topic[f->table];
            for (size_t k = 0; k < cfg->ntables; k++)
                if (strcmp(cfg->tables[k].name, mc->table) == 0) a = c->table_topic[k];
            if (c->nparts[a] != c->nparts[b]) {
                snprintf(errstr, errlen,
                         "model.%s.features: tables %s and %s are not co-partitioned (topic %s has %d partitions, %s "
                         "has %d); a cluster needs the source topics of the tables a model joins to have the same "
                         "partition count and key", mc->name, mc->table, cfg->tables[f->table].name, c->topics[a],
                         c->nparts[a], c->topics[b], c->nparts[b]);
                return FEAT_ERR_CONFIG;
            }
        }
    }
    return FEAT_OK;
}

feat_cluster_t *feat_cluster_new(const feat_cluster_conf_t *conf, char *errstr, size_t errlen) {
    const feat_config_t *cfg = conf->cfg;
    feat_cluster_t *c = calloc(1, sizeof(*c));
    if (!c) { snprintf(errstr, errlen, "cluster: out of memory"); return NULL; }
    c->cfg = cfg;
    pthread_mutex_init(&c->vlock, NULL);
    pthread_mutex_init(&c->slock, NULL);
    c->mode = strcmp(cfg->cluster_mode, "replica") == 0       ? FEAT_CLUSTER_REPLICA
              : strcmp(cfg->cluster_mode, "partitioned") == 0 ? FEAT_CLUSTER_PARTITIONED
                                                               : FEAT_CLUSTER_SINGLE;
    c->murmur = strcmp(cfg->cluster_partitioner, "murmur2") == 0;
    c->standbys = (int)cfg->cluster_standby_replicas;
    c->max_lag = cfg->cluster_standby_max_lag;
    atomic_init(&c->generation, -1);
    snprintf(c->address, sizeof(c->address), "%s",
             *cfg->cluster_advertised_address ? cfg->cluster_advertised_address : cfg->cluster_listen);
    snprintf(c->id, sizeof(c->id), "%s",
             *cfg->cluster_instance_id ? cfg->cluster_instance_id : *c->address ? c->address : cfg->serve_listen);
    if (c->mode == FEAT_CLUSTER_SINGLE) return c;

    feat_metrics_t *reg = conf->metrics;
    size_t nt = cfg->ntables + cfg->nmodels + 1;
    c->topics = calloc(nt, sizeof(*c->topics));
    c->nparts = calloc(nt, sizeof(*c->nparts));
    c->local = calloc(nt, sizeof(*c->local));
    c->want = calloc(nt, sizeof(*c->want));
    c->lag = calloc(nt, sizeof(*c->lag));
    c->table_topic = calloc(cfg->ntables + 1, sizeof(*c->table_topic));
    c->model_topic = calloc(cfg->nmodels + 1, sizeof(*c->model_topic));
    c->served = calloc(cfg->nmodels + 1, sizeof(*c->served));
    c->m_misrouted = calloc(nt, sizeof(*c->m_misrouted));
    if (!c->topics || !c->nparts || !c->local || !c->want || !c->lag || !c->table_topic || !c->model_topic || !c->served || !c->m_misrouted) {
        snprintf(errstr, errlen, "cluster: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->ntables; i++) {
        ssize_t t = topic_index(c, cfg->tables[i].topic);
        if (t < 0) {
            t = (ssize_t)c->ntopics++;
            c->topics[t] = cfg->tables[i].topic;
            char labels[300];
            snprintf(labels, sizeof(labels), "topic=\"%s\"", cfg->tables[i].topic); /* topic names need no escape */
            c->m_misrouted[t] = feat_counter(reg, "featd_cluster_misrouted_records_total",
                                             "Records whose entity key cluster.partitioner puts in another partition "
                                             "than the one they arrived on: lookups of those keys are misrouted.",
                                             labels);
        }
        c->table_topic[i] = (size_t)t;
    }
    for (size_t i = 0; i < cfg->nmodels; i++) { /* label topics: their ownership tells who trains and who holds a label */
        ssize_t t = topic_index(c, cfg->models[i].label_topic);
        if (t < 0) {
            t = (ssize_t)c->ntopics++;
            c->topics[t] = cfg->models[i].label_topic;
        }
        c->model_topic[i] = (size_t)t;
        featd__v1__model_served__init(&c->served[i]);
        c->served[i].model = cfg->models[i].name;
    }
    c->m_members = feat_gauge(reg, "featd_cluster_members", "Instances with a membership record in cluster.topic.", NULL);
    c->m_published = feat_counter(reg, "featd_cluster_membership_published_total",
                                  "Membership records this instance published.", NULL);
    c->prod = feat_kafka_new(RD_KAFKA_PRODUCER,
                             &(feat_kafka_conf_t){.props = cfg->kafka, .nprops = cfg->nkafka, .bootstrap = conf->bootstrap,
                                                  .defaults = (const char *const[]){"message.max.bytes", "33554432",
                                                                                    "enable.idempotence", "true", NULL},
                                                  .what = "cluster: producer"},
                             errstr, errlen);
    if (!c->prod) goto fail;
    static const char *const cset[] = {"enable.auto.commit", "false", "enable.partition.eof", "false", NULL};
    c->cons = feat_kafka_new(RD_KAFKA_CONSUMER,
                             &(feat_kafka_conf_t){.props = cfg->kafka, .nprops = cfg->nkafka, .bootstrap = conf->bootstrap,
                                                  .set = cset, .defaults = (const char *const[]){"group.id", "featd", NULL},
                                                  .what = "cluster: reader"},
                             errstr, errlen);
    if (!c->cons) goto fail;
    rd_kafka_poll_set_consumer(c->cons);
    if (read_partitions(c, errstr, errlen)) goto fail;
    return c;
fail:
    feat_cluster_destroy(c);
    return NULL;
}

feat_err_t feat_cluster_start(feat_cluster_t *c, char *errstr, size_t errlen) {
    if (!c || c->mode == FEAT_CLUSTER_SINGLE || c->started) return FEAT_OK;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, c->cfg->cluster_topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (c->cfg->nmodels) /* the registry: every record from the beginning, so every instance holds every version */
        rd_kafka_topic_partition_list_add(l, c->cfg->cluster_models_topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(c->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t lo = 0, hi = 0;
    if (!e && !rd_kafka_query_watermark_offsets(c->cons, c->cfg->cluster_topic, 0, &lo, &hi, 5000))
        c->members_end = hi;
    lo = hi = 0;
    if (!e && c->cfg->nmodels && c->models_fn &&
        !rd_kafka_query_watermark_offsets(c->cons, c->cfg->cluster_models_topic, 0, &lo, &hi, 5000) && hi > lo) {
        c->models_end = hi;
        atomic_store(&c->replaying, 1);
    }
    if (e) {
        snprintf(errstr, errlen, "cluster.topic: cannot read %s: %s", c->cfg->cluster_topic, rd_kafka_err2str(e));
        return FEAT_ERR_KAFKA;
    }
    rebuild(c); /* an empty map until the first records arrive */
    if (feat_worker_start(&c->thr, "cluster", run, c) != FEAT_OK) {
        snprintf(errstr, errlen, "cluster: cannot start thread");
        return FEAT_ERR_NOMEM;
    }
    c->started = 1;
    feat_log(FEAT_LOG_INFO, "cluster", "%s mode: instance %s at %s, partitioner %s, membership in %s",
             c->cfg->cluster_mode, c->id, c->address, c->murmur ? "murmur2" : "crc32", c->cfg->cluster_topic);
    return FEAT_OK;
}

void feat_cluster_stop(feat_cluster_t *c) {
    if (!c || !c->started) return;
    atomic_store(&c->stop, 1);
    feat_worker_join(c->thr);
    c->started = 0;
    publish(c, 1);
    if (rd_kafka_flush(c->prod, 2000))
        feat_log(FEAT_LOG_WARN, "cluster", "the leave record did not reach %s; peers notice when the group does",
                 c->cfg->cluster_topic);
}

void feat_cluster_destroy(feat_cluster_t *c) {
    if (!c) return;
    feat_cluster_stop(c);
    if (c->cons) {
        rd_kafka_consumer_close(c->cons);
        rd_kafka_destroy(c->cons);
    }
    if (c->prod) rd_kafka_destroy(c->prod);
    view_free(c, c->view);
    for (size_t i = 0; i < c->nmembers; i++) {
        free(c->members[i].id);
        free(c->members[i].rec);
    }
    free(c->members);
    for (size_t i = 0; i < c->nreplay; i++) {
        free(c->replay[i].key);
        free(c->replay[i].val);
    }
    free(c->replay);
    for (size_t t = 0; t < c->ntopics && c->local; t++) free((void *)c->local[t]);
    for (size_t t = 0; t < c->ntopics && c->want; t++) free((void *)c->want[t]);
    for (size_t t = 0; t < c->ntopics && c->lag; t++) free((void *)c->lag[t]);
    free((void *)c->local);
    free((void *)c->want);
    free((void *)c->lag);
    free(c->topics);
    free(c->nparts);
    free(c->table_topic);
    free(c->model_topic);
    free(c->served);
    free(c->m_misrouted);
    pthread_mutex_destroy(&c->vlock);
    pthread_mutex_destroy(&c->slock);
    free(c);
}

/* ---- GetCluster ---------------------------------------------------------------------------- */

feat_err_t feat_cluster_pack_map(feat_cluster_t *c, feat_buf_t *out) {
    Featd__V1__ClusterMap map = FEATD__V1__CLUSTER_MAP__INIT;
    map.mode = (char *)(c ? c->cfg->cluster_mode : "single");
    map.instance_id = c ? c->id : (char *)"";
    map.partitioner = (char *)(c && c->mode != FEAT_CLUSTER_SINGLE ? (c->murmur ? "murmur2" : "crc32") : "");
    map.misrouted_records = c ? atomic_load(&c->misrouted) : 0;
    feat_cluster_view_t *v = feat_cluster_view_acquire(c);
    size_t total = 0;
    for (size_t t = 0; v && t < c->ntopics; t++) total += (size_t)c->nparts[t];
    Featd__V1__PartitionOwner *po = calloc(total + 1, sizeof(*po));
    Featd__V1__PartitionOwner **pp = calloc(total + 1, sizeof(*pp));
    unsigned char *owns = v ? calloc(v->nmembers + 1, 1) : NULL;
    Featd__V1__ClusterMember *mc = v ? calloc(v->nmembers + 1, sizeof(*mc)) : NULL;
    Featd__V1__ClusterMember **mp = v ? calloc(v->nmembers + 1, sizeof(*mp)) : NULL;
    char **sb = calloc(total * SB_MAX + 1, sizeof(*sb)), **sbp = sb;
    feat_err_t err = FEAT_OK;
    if (!po || !pp || !sb || (v && (!owns || !mc || !mp))) { err = FEAT_ERR_NOMEM; goto done; }
    for (size_t t = 0; v && t < c->ntopics; t++)
        for (int32_t p = 0; p < c->nparts[t]; p++) {
            Featd__V1__PartitionOwner *o = &po[map.n_partitions];
            featd__v1__partition_owner__init(o);
            o->topic = c->topics[t];
            o->partition = p;
            int32_t m = v->owner[t][p];
            o->instance_id = m >= 0 ? v->members[m]->instance_id : (char *)"";
            o->restoring = m >= 0 && v->restoring[t][p];
            if (m >= 0) owns[m] = 1;
            o->standby = sbp;
            for (int q = 0; q < SB_MAX && v->standby[t][(size_t)p * SB_MAX + q] >= 0; q++)
                o->standby[o->n_standby++] = v->members[v->standby[t][(size_t)p * SB_MAX + q]]->instance_id;
            sbp += o->n_standby;
            pp[map.n_partitions++] = o;
        }
    map.partitions = pp;
    if (v) {
        /* shallow copies: the view is shared with other readers */
        map.n_members = v->nmembers;
        map.members = mp;
        for (size_t i = 0; i < v->nmembers; i++) {
            mc[i] = *v->members[i];
            mc[i].record_offset = v->offsets[i];
            mc[i].self = strcmp(mc[i].instance_id, c->id) == 0;
            mc[i].stale = !owns[i] && (mc[i].n_active || mc[i].n_restoring);
            mp[i] = &mc[i];
        }
    }
    size_t len = featd__v1__cluster_map__get_packed_size(&map);
    if ((err = feat_buf_grow(out, len))) goto done;
    out->len += featd__v1__cluster_map__pack(&map, (uint8_t *)out->data + out->len);
done:
    free(po);
    free(pp);
    free(owns);
    free(mc);
    free(mp);
    free(sb);
    feat_cluster_view_release(c, v);
    return err;
}
