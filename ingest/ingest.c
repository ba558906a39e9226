/*
 * ingest/ingest.c — the consumer thread.  See ingest.h for the contract.
 *
 * Thread model: one ingest thread owns the rd_kafka_t handle, the decoder,
 * the write batch and the partition table's offsets; rebalance callbacks run
 * on it (from inside poll), so no batch is ever in flight during a
 * rebalance.  Other threads read partition status under `lock` and counters
 * through atomics.
 */
#include "ingest/ingest.h"
#include "ingest/cluster.h"
#include "ingest/kconf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pstate {
    char *topic;
    int32_t partition;
    int assigned;
    int64_t next;      /* next offset the store holds; -1 = none yet (lock) */
    uint64_t applied;  /* messages applied from this partition, ever (lock) */
    int64_t pending;   /* next offset after the batches built so far (ingest thread) */
    uint64_t pending_applied;
    int touched;       /* by the batch being built (ingest thread) */
    uint64_t gap;      /* records deleted from the log before featd applied them, this run (lock) */
    int64_t restore_to; /* cluster: the log end at assignment, while the store is below it; 0 = caught up (lock) */
    int64_t restore_from, restore_ms;
    int64_t draining_ms; /* cluster: revoked by an eager rebalance at this time, still served until the
                          * assignment that follows says whether it stays (ingest thread) */
    int standby;       /* cluster: tailed by the standby consumer (ingest thread) */
} pstate_t;

/* A built batch on its way to the store, with what to publish once it commits. */
typedef struct touched {
    size_t part;       /* index into parts */
    int64_t next;
    uint64_t applied;
} touched_t;

typedef struct batch {
    feat_wb_t *wb;
    size_t nmsgs;
    uint64_t n_ev, n_lab, n_dead;
    uint64_t dead_by[FEAT_DL_COUNT];
    uint64_t *tev;     /* per table */
    int64_t *newest;   /* per table */
    touched_t *touched;
    size_t ntouched, captouched;
} batch_t;

struct feat_ingest {
    feat_ingest_conf_t conf;   /* a copy; what it points to is the caller's */
    feat_store_t *st;
    feat_metrics_t *metrics;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    rd_kafka_t *sb;            /* cluster.standby_replicas: a consumer outside the group for standby partitions */
    rd_kafka_queue_t *sbq;
    unsigned sb_gen;           /* feat_cluster_standby_gen acted on (ingest thread) */
    int64_t sb_plan_ms, sb_lag_ms;
    int nstandby;              /* partitions the standby consumer tails (ingest thread) */
    atomic_int session_lost;   /* the group session expired: standbys answer nothing until the next assignment */
    feat_decoder_t *dec;
    feat_decoded_t *d;
    batch_t bufs[2];           /* one being built, one being written */
    int cur;                   /* index of the one being built */
    pthread_t writer;
    int writer_started;
    pthread_mutex_t wlock;     /* guards inflight and writer_stop */
    pthread_cond_t wcond;
    batch_t *inflight;         /* handed to the writer, not yet committed */
    int writer_stop;
    rd_kafka_message_t **msgs;
    size_t batch_max;
    pthread_t thr;
    int started;
    atomic_int stop;
    atomic_int failed;
    char error[256];           /* guarded by lock */
    pthread_mutex_t lock;      /* parts, error */
    pstate_t *parts;
    size_t nparts, capparts;
    size_t last_ps;            /* lookup cache (ingest thread only) */
    char **topics;
    size_t ntopics;
    const feat_table_t **tables;
    _Atomic int64_t *newest;   /* per table */
    _Atomic uint64_t *tevents; /* per table */
    _Atomic uint64_t events, labels, dead, skipped, batches, gap_total;
    _Atomic uint64_t dead_by[FEAT_DL_COUNT];
    atomic_int assigned;
    atomic_int refused;        /* cluster.mode = single met another consumer in its group */
    int ever_whole;            /* single mode: once held every partition (ingest thread) */
    int64_t restore_check_ms;  /* ingest thread */
    feat_metric_t *m_split;
    feat_metric_t **m_events;  /* per table */
    feat_metric_t **m_late;    /* per table: events too late to aggregate */
    feat_metric_t **m_labels;  /* per model */
    feat_metric_t *m_dead[FEAT_DL_COUNT];
    feat_metric_t *m_batches, *m_skipped, *m_batch_sec, *m_batch_size;
    feat_metric_t *m_rebalance[3];  /* assign, revoke, error */
    feat_ingest_observer_fn *observer;
    void *observer_arg;
    feat_ingest_label_fn *label_observer;
    void *label_observer_arg;
    int64_t last_commit_ms;
    int64_t unapplied_at_stop; /* set by feat_ingest_stop; -1 unknown */
    pthread_mutex_t rlock;     /* resets, nresets: a leaf lock */
    struct { char topic[256]; int32_t partition; } resets[64]; /* offset resets not yet taken */
    size_t nresets;
    atomic_int nresets_pending; /* nresets, read without rlock on the hot path */
};

/* ---- partition table -------------------------------------------------------- */

static pstate_t *ps_find(feat_ingest_t *ing, const char *topic, int32_t partition) {
    if (ing->last_ps < ing->nparts) {
        pstate_t *p = &ing->parts[ing->last_ps];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) return p;
    }
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            ing->last_ps = i;
            return p;
        }
    }
    return NULL;
}

/* Adds or refreshes a partition, reading its next offset from the store.
 * Caller holds ing->lock. */
static pstate_t *ps_load(feat_ingest_t *ing, const char *topic, int32_t partition) {
    pstate_t *p = ps_find(ing, topic, partition);
    if (!p) {
        if (ing->nparts == ing->capparts) {
            size_t nc = ing->capparts ? ing->capparts * 2 : 16;
            pstate_t *np = realloc(ing->parts, nc * sizeof(*np));
            if (!np) return NULL;
            ing->parts = np;
            ing->capparts = nc;
        }
        p = &ing->parts[ing->nparts];
        memset(p, 0, sizeof(*p));
        p->topic = strdup(topic);
        if (!p->topic) return NULL;
        p->partition = partition;
        ing->nparts++;
    }
    int64_t next;
    uint64_t applied = 0;
    int rc = feat_store_get_offset(ing->st, topic, partition, &next, &applied);
    p->next = rc == FEAT_OK ? next : -1;
    p->applied = rc == FEAT_OK ? applied : 0;
    p->pending = p->next;
    p->pending_applied = p->applied;
    p->touched = 0;
    return p;
}

static void drain(feat_ingest_t *ing);
static void fatal(feat_ingest_t *ing, const char *what);

/* featd_kafka_errors_total{code}: one series per librdkafka error name,
 * registered on first use (errors are rare; registration takes a lock). */
static void count_kafka_error(feat_ingest_t *ing, rd_kafka_resp_err_t err) {
    char labels[96];
    snprintf(labels, sizeof(labels), "code=\"%s\"", rd_kafka_err2name(err));
    feat_metric_add(feat_counter(ing->metrics, "featd_kafka_errors_total",
                                 "Errors reported by the Kafka client (client errors, consume errors, failed lag "
                                 "commits), by librdkafka error name.", labels), 1);
}

/* Records [from, to) of p's log were deleted before featd applied them: a
 * gap.  Logged as an ERROR with the range and counted per partition
 * (featd_ingest_gap_records_total).  why names the place it was seen;
 * locked says whether the caller holds ing->lock. */
static void count_gap(feat_ingest_t *ing, pstate_t *p, int64_t from, int64_t to, const char *why, int locked) {
    if (to <= from) return;
    if (!locked) pthread_mutex_lock(&ing->lock);
    p->gap += (uint64_t)(to - from);
    if (!locked) pthread_mutex_unlock(&ing->lock);
    atomic_fetch_add(&ing->gap_total, (uint64_t)(to - from));
    feat_log(FEAT_LOG_ERROR, "ingest",
             "gap: %s[%d] offsets %lld..%lld (%lld records) were deleted from the log before featd applied them "
             "(%s): retention, the embedded broker's size cap, or a recreated topic; resuming at %lld",
             p->topic, p->partition, (long long)from, (long long)to - 1, (long long)(to - from), why, (long long)to);
}

/* ---- offset resets ----------------------------------------------------------
 *
 * When a fetch position is out of range (the broker deleted what featd was
 * about to read: retention, the embedded broker's cap), librdkafka moves it
 * per auto.offset.reset and says so only in a WARNING log line ("T [P]:
 * offset reset (at offset X, broker B) to ..."), from its own thread.  It
 * also drops what it had fetched for the partition and not yet handed over.
 * So after such a reset, the offsets between featd's next offset and the
 * first message that follows were never applied: a gap.  Offsets skipped
 * without a reset (transaction markers, aborted transactions, compaction)
 * are not gaps, and cost nothing to tell apart.  The log callback records
 * the partition here (rlock, a leaf lock); the ingest thread takes it at the
 * partition's next message. */

/* Called on librdkafka's threads: records "T [P]: offset reset (at offset"
 * lines, then logs as every client does. */
static void consumer_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    feat_ingest_t *ing = rd_kafka_opaque(rk);
    const char *p = ing && !strcmp(fac, "OFFSET") ? strstr(buf, "]: offset reset (at offset ") : NULL;
    if (p) {
        /* "... TOPIC [PART]: offset reset": the partition back to " [", the topic back to a space or '[' */
        const char *lb = p;
        while (lb > buf && lb[-1] != '[') lb--;
        const char *te = lb > buf + 1 ? lb - 2 : NULL; /* the space before '[' */
        const char *ts = te;
        while (ts && ts > buf && ts[-1] != ' ') ts--;
        if (te && *te == ' ' && te > ts && (size_t)(te - ts) < sizeof(ing->resets[0].topic)) {
            pthread_mutex_lock(&ing->rlock);
            if (ing->nresets < sizeof(ing->resets) / sizeof(ing->resets[0])) {
                snprintf(ing->resets[ing->nresets].topic, sizeof(ing->resets[0].topic), "%.*s", (int)(te - ts), ts);
                ing->resets[ing->nresets].partition = (int32_t)strtol(lb, NULL, 10);
                atomic_store(&ing->nresets_pending, (int)++ing->nresets);
            }
            pthread_mutex_unlock(&ing->rlock);
        }
    }
    feat_kconf_log(rk, level, fac, buf);
}

/* Takes (and forgets) a reset recorded for p: 1 if there was one.  Ingest thread. */
static int take_reset(feat_ingest_t *ing, const pstate_t *p) {
    int found = 0;
    pthread_mutex_lock(&ing->rlock);
    for (size_t i = 0; i < ing->nresets;) {
        if (ing->resets[i].partition == p->partition && !strcmp(ing->resets[i].topic, p->topic)) {
            ing->resets[i] = ing->resets[--ing->nresets];
            found = 1;
        } else {
            i++;
        }
    }
    atomic_store(&ing->nresets_pending, (int)ing->nresets);
    pthread_mutex_unlock(&ing->rlock);
    return found;
}

/* Writes p's next offset forward to `next` on its own, so that a gap found at
 * assignment is not found (and counted) again at the next start when no
 * record of the partition was applied in between. */
static void store_offset(feat_ingest_t *ing, pstate_t *p, int64_t next) {
    feat_wb_t *wb = feat_wb_new(ing->st);
    char err[256];
    err[0] = 0;
    if (wb && feat_wb_set_offset(wb, p->topic, p->partition, next, p->applied) == FEAT_OK &&
        feat_store_write(ing->st, wb, err, sizeof(err)) == FEAT_OK) {
        p->next = next;
    } else {
        feat_log(FEAT_LOG_ERROR, "ingest", "%s[%d]: cannot store the offset past the gap (%s); the next start counts "
                 "it again", p->topic, p->partition, err[0] ? err : "out of memory");
    }
    feat_wb_destroy(wb);
}

#define DRAIN_MAX_MS 10000 /* a revoked partition is served at most this long without an assignment */

static void standby_handoff(feat_ingest_t *ing, pstate_t *p, rd_kafka_topic_partition_list_t *l);
static void standby_resync(feat_ingest_t *ing);
static void log_check(feat_ingest_t *ing, rd_kafka_t *rk, pstate_t *p);

/* The assignment after an eager revoke: revoked partitions it does not hold
 * again are no longer served (those it holds go through restore_begin);
 * with standbys, each is tailed as one at once, caught up, while its new
 * owner restores.  parts NULL: every draining partition older than
 * DRAIN_MAX_MS.  Caller holds ing->lock. */
static void drain_end(feat_ingest_t *ing, const rd_kafka_topic_partition_list_t *parts) {
    int64_t now = feat_now_ms();
    rd_kafka_topic_partition_list_t *handoff = ing->sb ? rd_kafka_topic_partition_list_new(8) : NULL;
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (!p->draining_ms || (!parts && now - p->draining_ms < DRAIN_MAX_MS)) continue;
        int kept = 0;
        for (int k = 0; parts && k < parts->cnt; k++)
            kept |= parts->elems[k].partition == p->partition && strcmp(parts->elems[k].topic, p->topic) == 0;
        p->draining_ms = 0;
        if (!kept && handoff) standby_handoff(ing, p, handoff);
        else if (!kept) feat_cluster_set_local(ing->conf.cluster, p->topic, p->partition, FEAT_PART_NONE);
    }
    if (handoff && handoff->cnt) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(ing->sb, handoff);
        if (e) {
            feat_log(FEAT_LOG_ERROR, "ingest", "standby: assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            standby_resync(ing);
        } else {
            feat_log(FEAT_LOG_INFO, "ingest", "standby: tailing %d partition(s) this instance gave up", handoff->cnt);
        }
    }
    if (handoff) rd_kafka_topic_partition_list_destroy(handoff);
}

/* Cluster modes: a partition just assigned is RESTORING until the store
 * holds what the log held now (its end); ACTIVE at once when it already
 * does.  Caller holds ing->lock. */
static void restore_begin(feat_ingest_t *ing, rd_kafka_t *rk, pstate_t *p) {
    if (feat_cluster_mode(ing->conf.cluster) == FEAT_CLUSTER_SINGLE) return;
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t qe = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, 5000);
    int64_t from = p->pending >= 0 ? p->pending : (lo > 0 ? lo : 0);
    if (qe == RD_KAFKA_RESP_ERR_NO_ERROR && hi <= from) {
        p->restore_to = 0;
        feat_cluster_set_local(ing->conf.cluster, p->topic, p->partition, FEAT_PART_ACTIVE);
        return;
    }
    /* unknown end (-1): restoring until a fetch tells the log end (restore_progress) */
    p->restore_to = qe == RD_KAFKA_RESP_ERR_NO_ERROR ? hi : -1;
    p->restore_from = from;
    p->restore_ms = feat_now_ms();
    feat_cluster_set_local(ing->conf.cluster, p->topic, p->partition, FEAT_PART_RESTORING);
    if (p->restore_to > 0)
        feat_log(FEAT_LOG_INFO, "ingest", "restoring %s[%d]: replaying offsets %lld..%lld before serving its keys",
                 p->topic, p->partition, (long long)from, (long long)p->restore_to - 1);
    else
        feat_log(FEAT_LOG_WARN, "ingest", "restoring %s[%d] from offset %lld: the log end is unknown (%s); its keys "
                 "answer RESTORING until a fetch tells it", p->topic, p->partition, (long long)from, rd_kafka_err2str(qe));
}

/* p's store reached `next`: the end of its restore?  Caller holds ing->lock. */
static void restore_progress(feat_ingest_t *ing, pstate_t *p, int64_t next) {
    if (!p->restore_to) return;
    if (p->restore_to < 0) { /* the end was unknown at assignment: the last fetch's high watermark */
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(ing->rk, p->topic, p->partition, &lo, &hi) || hi < 0) return;
        if (next < hi) {
            p->restore_to = hi;
            return;
        }
    } else if (next < p->restore_to) {
        return;
    }
    int64_t ms = feat_now_ms() - p->restore_ms;
    feat_log(FEAT_LOG_INFO, "ingest", "restored %s[%d]: %lld records in %lld ms; serving its keys", p->topic,
             p->partition, (long long)(next - p->restore_from), (long long)ms);
    p->restore_to = 0;
    feat_cluster_set_local(ing->conf.cluster, p->topic, p->partition, FEAT_PART_ACTIVE);
}

/* cluster.mode = single: does this instance hold every partition of its
 * topics?  A rebalance completes only once every member of the group has
 * rejoined or timed out, so an assignment that lacks partitions means
 * another live consumer in the group.  At the first assignment that is a
 * refusal (0: stop, exit 2); later (another consumer joined a running
 * featd) an ERROR and featd_cluster_split_detected_total.  Ingest thread. */
static int single_check(feat_ingest_t *ing, rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *parts) {
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) return 1; /* cannot tell */
    int total = 0, held = 0;
    for (size_t i = 0; i < ing->ntopics; i++)
        for (int k = 0; k < md->topic_cnt; k++)
            if (!md->topics[k].err && strcmp(md->topics[k].topic, ing->topics[i]) == 0)
                total += md->topics[k].partition_cnt;
    rd_kafka_metadata_destroy(md);
    pthread_mutex_lock(&ing->lock);
    for (size_t i = 0; i < ing->nparts; i++) held += ing->parts[i].assigned;
    pthread_mutex_unlock(&ing->lock);
    (void)parts;
    if (total == 0 || held >= total) {
        ing->ever_whole = 1;
        return 1;
    }
    char group[256] = "featd";
    size_t glen = sizeof(group);
    rd_kafka_conf_get(rd_kafka_conf(rk), "group.id", group, &glen);
    if (!ing->ever_whole) {
        char msg[sizeof(ing->error)];
        snprintf(msg, sizeof(msg),
                 "cluster.mode: single, but another consumer shares group.id \"%.32s\" (assigned %d of %d "
                 "partitions); set cluster.mode = partitioned or replica, or another kafka.group.id",
                 group, held, total);
        atomic_store(&ing->refused, 1);
        fatal(ing, msg);
        return 0;
    }
    feat_metric_add(ing->m_split, 1);
    feat_log(FEAT_LOG_ERROR, "ingest",
             "another consumer joined group.id \"%s\": this instance now holds %d of %d partitions and answers "
             "NOT_FOUND for the rest; stop the other consumer or set cluster.mode = partitioned", group, held, total);
    return 1;
}

/* ---- standbys (cluster.standby_replicas, ingest/cluster.h) ----------------------------
 *
 * The partitions the map gives this instance as standbys are tailed by a
 * second consumer that is assigned them outside the group, into the same
 * store with the same stored offsets, on this thread and through the same
 * batches.  A partition has one reader at a time: before the group's
 * consumer is given one the standby consumer lets it go, and a record
 * either consumer still hands over for a partition the other reads now is
 * dropped.  Whoever reads it next starts at the offset the store holds, so
 * a standby the group assigns is caught up at once, and nothing is applied
 * twice. */

/* Records behind the log end the standby consumer's last fetch saw;
 * INT64_MAX when not known (no fetch yet, or the group session expired:
 * this instance may be cut off).  Caller holds ing->lock. */
static int64_t standby_lag(feat_ingest_t *ing, const pstate_t *p) {
    int64_t lo = -1, hi = -1;
    if (atomic_load(&ing->session_lost)) return INT64_MAX;
    /* before its first fetch: what the group's consumer last saw, for a partition it just gave up */
    if ((rd_kafka_get_watermark_offsets(ing->sb, p->topic, p->partition, &lo, &hi) || hi < 0) &&
        (rd_kafka_get_watermark_offsets(ing->rk, p->topic, p->partition, &lo, &hi) || hi < 0))
        return INT64_MAX;
    int64_t next = p->next >= 0 ? p->next : (lo > 0 ? lo : 0);
    return hi > next ? hi - next : 0;
}

/* p, no longer assigned, becomes a standby, added to l (to be assigned to
 * the standby consumer), from the offset its store holds.  Caller holds
 * ing->lock, writer drained. */
static void standby_handoff(feat_ingest_t *ing, pstate_t *p, rd_kafka_topic_partition_list_t *l) {
    p->standby = 1;
    ing->nstandby++;
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
        p->pending >= 0 ? p->pending : RD_KAFKA_OFFSET_BEGINNING;
    feat_cluster_set_standby_lag(ing->conf.cluster, p->topic, p->partition, standby_lag(ing, p));
    feat_cluster_set_local(ing->conf.cluster, p->topic, p->partition, FEAT_PART_STANDBY);
}

/* After an incremental (un)assign of the standby consumer failed: its
 * whole assignment is set again from the partition table, each from the
 * offset after the batches built; failing that, no standbys at all (none
 * answers from a partition nobody reads).  Caller holds ing->lock. */
static void standby_resync(feat_ingest_t *ing) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(ing->nstandby + 1);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (p->standby)
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
                p->pending >= 0 ? p->pending : RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(ing->sb, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (!e) return;
    feat_log(FEAT_LOG_ERROR, "ingest", "standby: cannot set the standby consumer's assignment (%s): no standbys here",
             rd_kafka_err2str(e));
    rd_kafka_assign(ing->sb, NULL);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (!p->standby) continue;
        p->standby = 0;
        feat_cluster_set_local(ing->conf.cluster, p->topic, p->partition, FEAT_PART_NONE);
    }
    ing->nstandby = 0;
}

/* The group assigned parts: those tailed as standbys leave the standby
 * consumer first.  Ingest thread, writer drained. */
static void standby_take(feat_ingest_t *ing, const rd_kafka_topic_partition_list_t *parts) {
    if (!ing->sb || !ing->nstandby) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt + 1);
    pthread_mutex_lock(&ing->lock);
    for (int i = 0; i < parts->cnt; i++) {
        pstate_t *p = ps_find(ing, parts->elems[i].topic, parts->elems[i].partition);
        if (!p || !p->standby) continue;
        p->standby = 0;
        ing->nstandby--;
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        feat_log(FEAT_LOG_INFO, "ingest", "%s[%d]: the standby here becomes its owner at offset %lld", p->topic,
                 p->partition, (long long)p->pending);
    }
    pthread_mutex_unlock(&ing->lock);
    rd_kafka_error_t *e = l->cnt ? rd_kafka_incremental_unassign(ing->sb, l) : NULL;
    if (e) {
        feat_log(FEAT_LOG_ERROR, "ingest", "standby: unassign: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        pthread_mutex_lock(&ing->lock);
        standby_resync(ing);
        pthread_mutex_unlock(&ing->lock);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Tails what the map wants tailed and lets go of the rest; refreshes the
 * standbys' lag.  Ingest thread, between batches. */
static void standby_tick(feat_ingest_t *ing, int64_t now) {
    feat_cluster_t *c = ing->conf.cluster;
    ing->sb_lag_ms = now;
    unsigned gen = feat_cluster_standby_gen(c);
    if (gen != ing->sb_gen || now - ing->sb_plan_ms >= 1000) {
        ing->sb_gen = gen;
        ing->sb_plan_ms = now;
        rd_kafka_topic_partition_list_t *add = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_t *rm = rd_kafka_topic_partition_list_new(8);
        int drained = 0;
        for (size_t t = 0; t < feat_cluster_ntopics(c); t++) {
            int32_t np;
            const char *topic = feat_cluster_topic(c, t, &np);
            for (int32_t k = 0; k < np; k++) {
                int want = feat_cluster_standby_wanted(c, t, k);
                pthread_mutex_lock(&ing->lock);
                pstate_t *p = ps_find(ing, topic, k);
                int has = p && p->standby, busy = p && (p->assigned || p->draining_ms);
                if (want && !has && !busy) {
                    if (!drained) { /* the stored offsets must include every batch built */
                        pthread_mutex_unlock(&ing->lock);
                        drain(ing);
                        drained = 1;
                        pthread_mutex_lock(&ing->lock);
                    }
                    if ((p = ps_load(ing, topic, k))) {
                        log_check(ing, ing->sb, p);
                        standby_handoff(ing, p, add);
                    }
                } else if (!want && has) {
                    p->standby = 0;
                    ing->nstandby--;
                    rd_kafka_topic_partition_list_add(rm, topic, k);
                }
                pthread_mutex_unlock(&ing->lock);
            }
        }
        for (int i = 0; i < rm->cnt; i++)
            feat_cluster_set_local(c, rm->elems[i].topic, rm->elems[i].partition, FEAT_PART_NONE);
        rd_kafka_error_t *e = rm->cnt ? rd_kafka_incremental_unassign(ing->sb, rm) : NULL;
        if (!e && add->cnt) e = rd_kafka_incremental_assign(ing->sb, add);
        if (e) {
            feat_log(FEAT_LOG_ERROR, "ingest", "standby: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            pthread_mutex_lock(&ing->lock);
            standby_resync(ing);
            pthread_mutex_unlock(&ing->lock);
        } else if (add->cnt || rm->cnt) {
            feat_log(FEAT_LOG_INFO, "ingest", "standby: tailing %d partition(s) more, %d fewer; %d in all", add->cnt,
                     rm->cnt, ing->nstandby);
        }
        rd_kafka_topic_partition_list_destroy(add);
        rd_kafka_topic_partition_list_destroy(rm);
    }
    pthread_mutex_lock(&ing->lock);
    for (size_t i = 0; i < ing->nparts; i++)
        if (ing->parts[i].standby)
            feat_cluster_set_standby_lag(c, ing->parts[i].topic, ing->parts[i].partition,
                                         standby_lag(ing, &ing->parts[i]));
    pthread_mutex_unlock(&ing->lock);
}

/* The consumer group's generation: librdkafka has no getter, but its
 * serialized group metadata (for transactions) is "CGMDv2:" and then the
 * generation as a host-order int32.  -1 when that is not what it wrote. */
static int32_t group_generation(rd_kafka_t *rk) {
    rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(rk);
    void *buf = NULL;
    size_t len = 0;
    int32_t gen = -1;
    rd_kafka_error_t *e = md ? rd_kafka_consumer_group_metadata_write(md, &buf, &len) : NULL;
    if (e) rd_kafka_error_destroy(e);
    else if (buf && len >= 7 + sizeof(gen) && memcmp(buf, "CGMDv2:", 7) == 0) memcpy(&gen, (char *)buf + 7, sizeof(gen));
    if (buf) rd_kafka_mem_free(rk, buf);
    if (md) rd_kafka_consumer_group_metadata_destroy(md);
    return gen;
}

/* Before p is read from its stored offset (ps_load just ran): a stored
 * offset past the end of the log means the log was recreated (topic
 * deleted, or a broker that lost its data): every offset we hold for it
 * names a record that no longer exists, so the new log is read from its
 * beginning.  A log that starts past it lost records before featd applied
 * them: a gap, and reading resumes at the oldest one left (the consumer
 * would otherwise reset per auto.offset.reset).  Caller holds ing->lock. */
static void log_check(feat_ingest_t *ing, rd_kafka_t *rk, pstate_t *p) {
    if (p->next <= 0) return;
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t qe = rd_kafka_query_watermark_offsets(rk, p->topic, p->partition, &lo, &hi, 5000);
    if (qe == RD_KAFKA_RESP_ERR_NO_ERROR && hi >= 0 && p->next > hi) {
        feat_log(FEAT_LOG_WARN, "ingest",
                 "%s[%d]: stored offset %lld is past the log end %lld; the log was recreated, reading it from the "
                 "beginning", p->topic, p->partition, (long long)p->next, (long long)hi);
        feat_store_clear_offset(ing->st, p->topic, p->partition);
        p->next = p->pending = -1;
        p->applied = p->pending_applied = 0;
    } else if (qe == RD_KAFKA_RESP_ERR_NO_ERROR && lo > p->next) {
        count_gap(ing, p, p->next, lo, "found at assignment", 1);
        store_offset(ing, p, lo);
        p->pending = lo;
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque) {
    feat_ingest_t *ing = opaque;
    int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    /* offsets read from the store below must include every batch built */
    drain(ing);
    feat_metric_add(ing->m_rebalance[err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS   ? 0
                                     : err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ? 1 : 2], 1);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        atomic_store(&ing->session_lost, 0);
        feat_cluster_set_generation(ing->conf.cluster, group_generation(rk));
        standby_take(ing, parts);
        pthread_mutex_lock(&ing->lock);
        drain_end(ing, parts);
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &parts->elems[i];
            pstate_t *p = ps_load(ing, tp->topic, tp->partition);
            if (!p) continue;
            p->assigned = 1;
            log_check(ing, rk, p);
            restore_begin(ing, rk, p);
            /* resume from the store, not from the broker's committed offset */
            tp->offset = p->pending >= 0 ? p->pending : RD_KAFKA_OFFSET_BEGINNING;
            feat_log(FEAT_LOG_INFO, "ingest", "assigned %s[%d] from offset %lld%s", tp->topic, tp->partition,
                     (long long)(p->next >= 0 ? p->next : 0), p->next >= 0 ? " (stored)" : " (beginning)");
        }
        pthread_mutex_unlock(&ing->lock);
        if (feat_cluster_mode(ing->conf.cluster) == FEAT_CLUSTER_SINGLE && !single_check(ing, rk, parts)) {
            /* refused: assign nothing; the daemon stops */
            pthread_mutex_lock(&ing->lock);
            for (int i = 0; i < parts->cnt; i++) {
                pstate_t *p = ps_find(ing, parts->elems[i].topic, parts->elems[i].partition);
                if (p) p->assigned = 0;
            }
            pthread_mutex_unlock(&ing->lock);
            atomic_store(&ing->assigned, 0);
            return;
        }
        rd_kafka_error_t *e = NULL;
        rd_kafka_resp_err_t ae = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (coop) e = rd_kafka_incremental_assign(rk, parts);
        else ae = rd_kafka_assign(rk, parts);
        if (e) {
            feat_log(FEAT_LOG_ERROR, "ingest", "assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        } else if (ae) {
            feat_log(FEAT_LOG_ERROR, "ingest", "assign: %s", rd_kafka_err2str(ae));
        }
    } else {
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            feat_log(FEAT_LOG_WARN, "ingest", "rebalance error: %s", rd_kafka_err2str(err));
        else
            feat_log(FEAT_LOG_INFO, "ingest", "%s %d partition(s) (%s protocol)",
                     rd_kafka_assignment_lost(rk) ? "lost" : "revoked", parts->cnt, coop ? "cooperative" : "eager");
        /* The eager protocol revokes every partition at each rebalance and
         * assigns the new set when it completes; meanwhile nobody applies
         * them, so what this store holds is as fresh as any answer can be:
         * a revoked partition is still served until that assignment (or
         * DRAIN_MAX_MS).  A lost assignment (our session expired: another
         * instance may be applying it already) or a cooperative revoke (it
         * moves now) stops serving at once. */
        int drain = !coop && !rd_kafka_assignment_lost(rk) && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS;
        int64_t now = feat_now_ms();
        pthread_mutex_lock(&ing->lock);
        if (rd_kafka_assignment_lost(rk) && ing->sb) { /* perhaps cut off: the standbys' lag is not known */
            atomic_store(&ing->session_lost, 1);
            for (size_t i = 0; i < ing->nparts; i++)
                if (ing->parts[i].standby)
                    feat_cluster_set_standby_lag(ing->conf.cluster, ing->parts[i].topic, ing->parts[i].partition,
                                                 INT64_MAX);
        }
        for (int i = 0; i < parts->cnt; i++) {
            pstate_t *p = ps_find(ing, parts->elems[i].topic, parts->elems[i].partition);
            if (p) {
                p->assigned = 0;
                p->draining_ms = drain && !p->restore_to ? now : 0;
                p->restore_to = 0;
            }
            feat_cluster_set_local(ing->conf.cluster, parts->elems[i].topic, parts->elems[i].partition,
                                   p && p->draining_ms ? FEAT_PART_DRAINING : FEAT_PART_NONE);
        }
        pthread_mutex_unlock(&ing->lock);
        if (coop) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e) rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
    int n = 0;
    pthread_mutex_lock(&ing->lock);
    for (size_t i = 0; i < ing->nparts; i++) n += ing->parts[i].assigned;
    pthread_mutex_unlock(&ing->lock);
    atomic_store(&ing->assigned, n);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk;
    feat_ingest_t *ing = opaque;
    count_kafka_error(ing, (rd_kafka_resp_err_t)err);
    feat_log(err == RD_KAFKA_RESP_ERR__FATAL ? FEAT_LOG_ERROR : FEAT_LOG_WARN, "ingest", "kafka: %s: %s",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets, void *opaque) {
    (void)rk; (void)offsets;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) count_kafka_error(opaque, err);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        feat_log(FEAT_LOG_DEBUG, "ingest", "lag commit: %s (offsets are kept in the store; this only affects lag reporting)",
                 rd_kafka_err2str(err));
}

/* ---- metrics ------------------------------------------------------------------ */

static void collect(feat_metrics_emit_t *em, void *arg) {
    feat_ingest_t *ing = arg;
    char labels[320], esc[200];
    pthread_mutex_lock(&ing->lock);
    feat_metrics_emit_family(em, "featd_kafka_lag", "Messages between the broker's high watermark and the next offset featd will apply.", FEAT_METRIC_GAUGE);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (!p->assigned) continue;
        int64_t lo = -1, hi = -1;
        rd_kafka_get_watermark_offsets(ing->rk, p->topic, p->partition, &lo, &hi);
        int64_t next = p->next >= 0 ? p->next : (lo >= 0 ? lo : 0);
        feat_metrics_label_escape(p->topic, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"", esc, p->partition);
        feat_metrics_emit_sample(em, labels, hi >= 0 ? (double)(hi > next ? hi - next : 0) : -1);
    }
    feat_metrics_emit_family(em, "featd_kafka_next_offset", "Next offset featd will apply, as stored with the data.", FEAT_METRIC_GAUGE);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (!p->assigned) continue;
        feat_metrics_label_escape(p->topic, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"", esc, p->partition);
        feat_metrics_emit_sample(em, labels, (double)(p->next >= 0 ? p->next : 0));
    }
    if (ing->sb) {
        feat_metrics_emit_family(em, "featd_cluster_standby_lag",
                                 "Standby partitions: records behind the log end the standby consumer's last fetch "
                                 "saw (-1: not known, answers nothing).", FEAT_METRIC_GAUGE);
        for (size_t i = 0; i < ing->nparts; i++) {
            pstate_t *p = &ing->parts[i];
            if (!p->standby) continue;
            int64_t lag = standby_lag(ing, p);
            feat_metrics_label_escape(p->topic, esc, sizeof(esc));
            snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"", esc, p->partition);
            feat_metrics_emit_sample(em, labels, lag == INT64_MAX ? -1 : (double)lag);
        }
    }
    feat_metrics_emit_family(em, "featd_ingest_gap_records_total",
                             "Records deleted from the log (retention, the embedded broker's cap, a recreated topic) "
                             "before featd applied them, since start.", FEAT_METRIC_COUNTER);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        feat_metrics_label_escape(p->topic, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "topic=\"%s\",partition=\"%d\"", esc, p->partition);
        feat_metrics_emit_sample(em, labels, (double)p->gap);
    }
    pthread_mutex_unlock(&ing->lock);
    feat_metrics_emit_family(em, "featd_ingest_assigned_partitions", "Partitions assigned to the consumer.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, atomic_load(&ing->assigned));
    feat_metrics_emit_family(em, "featd_freshness_seconds", "Now minus the newest applied event time, per table.", FEAT_METRIC_GAUGE);
    int64_t now = feat_now_ms();
    for (size_t t = 0; t < ing->conf.decode.ntables; t++) {
        int64_t newest = atomic_load(&ing->newest[t]);
        feat_metrics_label_escape(ing->conf.decode.tables[t].name, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "table=\"%s\"", esc);
        feat_metrics_emit_sample(em, labels, newest ? (double)(now - newest) / 1000.0 : -1);
    }
    feat_metrics_emit_family(em, "featd_ingest_failed", "1 after a fatal store error stopped ingest.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, atomic_load(&ing->failed));
}

/* ---- lifecycle ------------------------------------------------------------------ */

void feat_ingest_set_observer(feat_ingest_t *ing, feat_ingest_observer_fn *fn, void *arg) {
    ing->observer = fn;
    ing->observer_arg = arg;
}

void feat_ingest_set_label_observer(feat_ingest_t *ing, feat_ingest_label_fn *fn, void *arg) {
    ing->label_observer = fn;
    ing->label_observer_arg = arg;
}

static int add_topic(feat_ingest_t *ing, const char *t) {
    for (size_t i = 0; i < ing->ntopics; i++)
        if (strcmp(ing->topics[i], t) == 0) return FEAT_OK;
    ing->topics[ing->ntopics++] = (char *)t;
    return FEAT_OK;
}

int feat_ingest_check_config(const feat_ingest_conf_t *conf, char *errstr, size_t errlen) {
    return feat_kconf_check(conf->kafka, conf->nkafka, errstr, errlen);
}

feat_ingest_t *feat_ingest_new(const feat_ingest_conf_t *conf, feat_store_t *st, char *errstr, size_t errlen) {
    const feat_decode_conf_t *dc = &conf->decode;
    feat_ingest_t *ing = calloc(1, sizeof(*ing));
    if (!ing) goto nomem;
    ing->conf = *conf;
    ing->st = st;
    ing->metrics = conf->metrics ? conf->metrics : feat_metrics_global();
    pthread_mutex_init(&ing->lock, NULL);
    pthread_mutex_init(&ing->rlock, NULL);
    ing->batch_max = (size_t)conf->batch_max;
    ing->msgs = calloc(ing->batch_max, sizeof(*ing->msgs));
    ing->dec = feat_decoder_new(dc);
    ing->d = malloc(sizeof(*ing->d));
    pthread_mutex_init(&ing->wlock, NULL);
    pthread_cond_init(&ing->wcond, NULL);
    for (int i = 0; i < 2; i++) {
        ing->bufs[i].wb = feat_wb_new(st);
        ing->bufs[i].tev = calloc(dc->ntables + 1, sizeof(uint64_t));
        ing->bufs[i].newest = calloc(dc->ntables + 1, sizeof(int64_t));
        if (!ing->bufs[i].wb || !ing->bufs[i].tev || !ing->bufs[i].newest) goto nomem;
    }
    ing->topics = calloc(dc->ntables + dc->nmodels + 1, sizeof(char *));
    ing->tables = calloc(dc->ntables + 1, sizeof(*ing->tables));
    ing->newest = calloc(dc->ntables + 1, sizeof(*ing->newest));
    ing->tevents = calloc(dc->ntables + 1, sizeof(*ing->tevents));
    ing->m_events = calloc(dc->ntables + 1, sizeof(*ing->m_events));
    ing->m_late = calloc(dc->ntables + 1, sizeof(*ing->m_late));
    ing->m_labels = calloc(dc->nmodels + 1, sizeof(*ing->m_labels));
    if (!ing->msgs || !ing->dec || !ing->d || !ing->topics || !ing->tables || !ing->newest ||
        !ing->tevents || !ing->m_events || !ing->m_late || !ing->m_labels)
        goto nomem;
    char labels[200], esc[160];
    for (size_t i = 0; i < dc->ntables; i++) {
        ing->tables[i] = feat_store_table(st, dc->tables[i].name);
        add_topic(ing, dc->tables[i].topic);
        feat_metrics_label_escape(dc->tables[i].name, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "table=\"%s\"", esc);
        ing->m_events[i] = feat_counter(ing->metrics, "featd_ingest_events_total", "Feature events applied.", labels);
        if (dc->tables[i].naggs)
            ing->m_late[i] = feat_counter(ing->metrics, "featd_agg_late_events_total",
                                          "Events whose Kafka timestamp is more than table.agg_lateness after their "
                                          "event time: applied and kept in history, not aggregated.", labels);
    }
    for (size_t i = 0; i < dc->nmodels; i++) {
        add_topic(ing, dc->models[i].label_topic);
        feat_metrics_label_escape(dc->models[i].name, esc, sizeof(esc));
        snprintf(labels, sizeof(labels), "model=\"%s\"", esc);
        ing->m_labels[i] = feat_counter(ing->metrics, "featd_ingest_labels_total", "Label events applied.", labels);
    }
    for (int r = 0; r < FEAT_DL_COUNT; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", feat_dl_reason_name((feat_dl_reason_t)r));
        ing->m_dead[r] = feat_counter(ing->metrics, "featd_dead_letters_total",
                                      "Messages stored as dead letters, by reason.", labels);
    }
    ing->m_split = feat_counter(ing->metrics, "featd_cluster_split_detected_total",
                                "cluster.mode = single: rebalances that left this instance without some partitions "
                                "(another consumer in its group).", NULL);
    ing->m_batches = feat_counter(ing->metrics, "featd_ingest_batches_total", "Write batches committed.", NULL);
    ing->m_skipped = feat_counter(ing->metrics, "featd_ingest_skipped_total",
                                  "Redelivered messages skipped because the store already holds them.", NULL);
    static const char *const rebalance_events[3] = {"assign", "revoke", "error"};
    for (int i = 0; i < 3; i++) {
        snprintf(labels, sizeof(labels), "event=\"%s\"", rebalance_events[i]);
        ing->m_rebalance[i] = feat_counter(ing->metrics, "featd_kafka_rebalances_total",
                                           "Consumer group rebalance callbacks, by event.", labels);
    }
    ing->m_batch_sec = feat_histogram(ing->metrics, "featd_ingest_batch_write_seconds",
                                      "Time to commit one write batch to RocksDB.", NULL, feat_latency_buckets,
                                      feat_latency_nbuckets);
    static const double sizes[] = {1, 10, 100, 1000, 10000, 100000};
    ing->m_batch_size = feat_histogram(ing->metrics, "featd_ingest_batch_messages", "Messages per write batch.",
                                       NULL, sizes, 6);

    /* featd owns offsets: these are not user-settable (the allow-list refuses them) */
    /* replica mode: a group of its own (cluster.h); the user's group.id is its prefix */
    const char *group = "featd";
    for (size_t i = 0; i < conf->nkafka; i++)
        if (strcmp(conf->kafka[i].key, "group.id") == 0 && *conf->kafka[i].value) group = conf->kafka[i].value;
    char gid[512];
    feat_cluster_group_id(conf->cluster, group, gid, sizeof(gid));
    const char *const owned[] = {"enable.auto.commit", "false", "enable.auto.offset.store", "false",
                                 "enable.partition.eof", "false", "group.id", gid, NULL};
    /* defaults a user may override in [kafka] */
    static const char *const defaults[] = {
        "group.id", "featd",
        "fetch.wait.max.ms", "10", /* freshness */
        /* Once the prefetch queue holds queued.min.messages, librdkafka 2.0 stops
         * fetching and looks again only after a fixed 1 s (the backoff that 2.2
         * made configurable as fetch.queue.backoff.ms; librdkafka #2879).  With
         * the default 100,000 a catching-up featd drained that in 0.2-0.3 s and
         * then waited, idle, for the rest of the second: a third of the time in
         * tests/bench/bench_ingest.  So the queue is sized to hold more than a
         * second of featd's fastest ingest; queued.max.messages.kbytes (64 MiB by
         * default) still bounds its memory. */
        "queued.min.messages", "1000000",
        /* A position out of range (retention deleted records featd had not yet
         * applied) resumes at the oldest record left: librdkafka's default,
         * "latest", would skip every record still in the log as well.  Records
         * below the stored offsets are skipped, so this never applies one twice. */
        "auto.offset.reset", "earliest",
        NULL};
    ing->rk = feat_kafka_new(RD_KAFKA_CONSUMER,
                             &(feat_kafka_conf_t){.props = conf->kafka, .nprops = conf->nkafka,
                                                  .bootstrap = conf->bootstrap, .set = owned, .defaults = defaults,
                                                  .opaque = ing, .log_cb = consumer_log_cb,
                                                  .rebalance_cb = rebalance_cb, .error_cb = error_cb,
                                                  .offset_commit_cb = commit_cb,
                                                  .what = "kafka: cannot create consumer"},
                             errstr, errlen);
    if (!ing->rk) goto fail;
    rd_kafka_poll_set_consumer(ing->rk);
    ing->q = rd_kafka_queue_get_consumer(ing->rk);
    if (feat_cluster_standby_replicas(conf->cluster) > 0) {
        /* assigned only, never subscribed: a group.id of its own that it never joins or commits to */
        char sgid[sizeof(gid) + 16];
        snprintf(sgid, sizeof(sgid), "%s.standby", gid);
        const char *const sowned[] = {"enable.auto.commit", "false", "enable.auto.offset.store", "false",
                                      "enable.partition.eof", "false", "group.id", sgid, NULL};
        /* its prefetch is bounded lower than the group consumer's: standbys matter less than owners */
        static const char *const sdefaults[] = {"fetch.wait.max.ms", "10", "queued.min.messages", "100000",
                                                "queued.max.messages.kbytes", "16384", "auto.offset.reset",
                                                "earliest", NULL};
        ing->sb = feat_kafka_new(RD_KAFKA_CONSUMER,
                                 &(feat_kafka_conf_t){.props = conf->kafka, .nprops = conf->nkafka,
                                                      .bootstrap = conf->bootstrap, .set = sowned, .defaults = sdefaults,
                                                      .opaque = ing, .log_cb = consumer_log_cb, .error_cb = error_cb,
                                                      .what = "kafka: cannot create the standby consumer"},
                                 errstr, errlen);
        if (!ing->sb) goto fail;
        rd_kafka_poll_set_consumer(ing->sb);
        ing->sbq = rd_kafka_queue_get_consumer(ing->sb);
    }
    feat_metrics_add_collector(ing->metrics, collect, ing);
    return ing;
nomem:
    snprintf(errstr, errlen, "ingest: out of memory");
fail:
    feat_ingest_destroy(ing);
    return NULL;
}

/* ---- the batch ------------------------------------------------------------------- */

static void fatal(feat_ingest_t *ing, const char *what) {
    pthread_mutex_lock(&ing->lock);
    snprintf(ing->error, sizeof(ing->error), "%.*s", (int)sizeof(ing->error) - 1, what); /* truncated on purpose */
    pthread_mutex_unlock(&ing->lock);
    atomic_store(&ing->failed, 1);
    feat_log(FEAT_LOG_ERROR, "ingest", "stopping ingest: %s", what);
}

static void batch_reset(feat_ingest_t *ing, batch_t *b) {
    feat_wb_clear(b->wb);
    b->nmsgs = 0;
    b->n_ev = b->n_lab = b->n_dead = 0;
    memset(b->dead_by, 0, sizeof(b->dead_by));
    memset(b->tev, 0, ing->conf.decode.ntables * sizeof(*b->tev));
    memset(b->newest, 0, ing->conf.decode.ntables * sizeof(*b->newest));
    b->ntouched = 0;
}

/* Publishes a committed batch: stored offsets, counters, freshness. */
static void publish(feat_ingest_t *ing, batch_t *b) {
    pthread_mutex_lock(&ing->lock);
    for (size_t i = 0; i < b->ntouched; i++) {
        pstate_t *p = &ing->parts[b->touched[i].part];
        p->next = b->touched[i].next;
        p->applied = b->touched[i].applied;
        restore_progress(ing, p, p->next);
    }
    pthread_mutex_unlock(&ing->lock);
    for (size_t t = 0; t < ing->conf.decode.ntables; t++) {
        if (!b->tev[t]) continue;
        atomic_fetch_add(&ing->tevents[t], b->tev[t]);
        feat_metric_add(ing->m_events[t], b->tev[t]);
        int64_t cur = atomic_load(&ing->newest[t]);
        while (b->newest[t] > cur && !atomic_compare_exchange_weak(&ing->newest[t], &cur, b->newest[t])) {
        }
    }
    for (int r = 0; r < FEAT_DL_COUNT; r++) {
        if (!b->dead_by[r]) continue;
        atomic_fetch_add(&ing->dead_by[r], b->dead_by[r]);
        feat_metric_add(ing->m_dead[r], b->dead_by[r]);
    }
    atomic_fetch_add(&ing->events, b->n_ev);
    atomic_fetch_add(&ing->labels, b->n_lab);
    atomic_fetch_add(&ing->dead, b->n_dead);
    atomic_fetch_add(&ing->batches, 1);
    feat_metric_add(ing->m_batches, 1);
    feat_metric_observe(ing->m_batch_size, (double)b->nmsgs);
}

/* The writer thread: commits one batch at a time, in the order built. */
static void *writer_run(void *arg) {
    feat_ingest_t *ing = arg;
    pthread_mutex_lock(&ing->wlock);
    for (;;) {
        while (!ing->inflight && !ing->writer_stop) pthread_cond_wait(&ing->wcond, &ing->wlock);
        if (!ing->inflight) break;
        batch_t *b = ing->inflight;
        pthread_mutex_unlock(&ing->wlock);
        char err[256];
        uint64_t t0 = feat_mono_ns();
        int rc = atomic_load(&ing->failed) ? -1 : feat_store_write(ing->st, b->wb, err, sizeof(err));
        if (rc == FEAT_OK) {
            feat_metric_observe(ing->m_batch_sec, (double)(feat_mono_ns() - t0) / 1e9);
            publish(ing, b);
        } else if (!atomic_load(&ing->failed)) {
            char what[300];
            snprintf(what, sizeof(what), "store write failed: %s", err);
            fatal(ing, what);
        }
        pthread_mutex_lock(&ing->wlock);
        ing->inflight = NULL;
        pthread_cond_broadcast(&ing->wcond);
    }
    pthread_mutex_unlock(&ing->wlock);
    return NULL;
}

/* Waits until the writer holds no batch. */
static void drain(feat_ingest_t *ing) {
    pthread_mutex_lock(&ing->wlock);
    while (ing->inflight) pthread_cond_wait(&ing->wcond, &ing->wlock);
    pthread_mutex_unlock(&ing->wlock);
}

static int touch(batch_t *b, size_t part) {
    if (b->ntouched == b->captouched) {
        size_t nc = b->captouched ? b->captouched * 2 : 16;
        touched_t *nt = realloc(b->touched, nc * sizeof(*nt));
        if (!nt) return FEAT_ERR_NOMEM;
        b->touched = nt;
        b->captouched = nc;
    }
    b->touched[b->ntouched].part = part;
    b->ntouched++;
    return FEAT_OK;
}

/* Decodes msgs (from the standby consumer when standby) into the batch
 * being built.  Runs on the ingest thread while the writer may be
 * committing the previous batch. */
static int build_batch(feat_ingest_t *ing, batch_t *b, rd_kafka_message_t **msgs, size_t n, int standby) {
    feat_decoded_t *d = ing->d;
    const feat_decode_conf_t *dc = &ing->conf.decode;
    int64_t now = feat_now_ms();
    uint64_t n_skip = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                count_kafka_error(ing, m->err);
                feat_log(FEAT_LOG_WARN, "ingest", "consume: %s", rd_kafka_message_errstr(m));
            }
            continue;
        }
        const char *topic = rd_kafka_topic_name(m->rkt);
        pstate_t *ps = ps_find(ing, topic, m->partition);
        if (!ps) {
            /* a partition we were not told about: its stored offset must be
             * current before we read it */
            drain(ing);
            pthread_mutex_lock(&ing->lock);
            ps = ps_load(ing, topic, m->partition);
            pthread_mutex_unlock(&ing->lock);
            if (!ps) { fatal(ing, "out of memory"); return -1; }
        }
        if (ps->standby != standby) continue; /* the other consumer reads it now */
        if (ps->pending >= 0 && m->offset < ps->pending) { /* already applied or in flight */
            n_skip++;
            continue;
        }
        if (atomic_load_explicit(&ing->nresets_pending, memory_order_relaxed) && take_reset(ing, ps) &&
            ps->pending >= 0 && m->offset > ps->pending)
            count_gap(ing, ps, ps->pending, m->offset, "the consumer's position was out of range and was reset", 0);
        const void *ct = NULL;
        size_t ctlen = 0;
        rd_kafka_headers_t *hdrs = NULL;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_header_get_last(hdrs, "content-type", &ct, &ctlen);
        int kind = feat_decode(ing->dec, topic, m->key, m->key_len, m->payload, m->len, ct, ctlen, now, d);
        int rc = FEAT_OK;
        if (kind == FEAT_DEC_EVENT) {
            if (ing->conf.cluster && !standby) {
                int32_t want = feat_cluster_partition_of(ing->conf.cluster, d->table, d->key, d->klen);
                if (want >= 0 && want != m->partition)
                    feat_cluster_misrouted(ing->conf.cluster, d->table, m->partition, want, d->key, d->klen);
            }
            /* lateness is judged against the record's own timestamp, so a
             * replay decides the same way */
            const feat_table_conf_t *tc = ing->tables[d->table]->conf;
            int64_t kts = tc->agg_lateness_ms > 0 ? rd_kafka_message_timestamp(m, NULL) : -1;
            if (kts >= 0 && tc->naggs && kts - d->ts > tc->agg_lateness_ms) {
                rc = feat_wb_put_late_event(b->wb, ing->tables[d->table], d->key, d->klen, d->ts, m->partition,
                                            m->offset, d->fidx, d->vals, d->n);
                feat_metric_add(ing->m_late[d->table], 1);
            } else {
                rc = feat_wb_put_event(b->wb, ing->tables[d->table], d->key, d->klen, d->ts, m->partition,
                                       m->offset, d->fidx, d->vals, d->n);
            }
            b->n_ev++;
            b->tev[d->table]++;
            if (d->ts > b->newest[d->table]) b->newest[d->table] = d->ts;
            if (ing->observer && !standby) /* drift windows are the owner's */
                ing->observer(ing->observer_arg, d->table, d->key, d->klen, d->ts, d->fidx, d->vals, d->n);
        } else if (kind == FEAT_DEC_LABEL) {
            rc = feat_wb_put_label_keys(b->wb, dc->models[d->model].name, d->key, d->klen, d->ts, d->label,
                                        (const char *const *)dc->models[d->model].label_keys, d->xkeys, d->xklens,
                                        d->nx, m->partition, m->offset);
            b->n_lab++;
            feat_metric_add(ing->m_labels[d->model], 1);
            if (ing->label_observer && !standby)
                ing->label_observer(ing->label_observer_arg, d->model, d->key, d->klen, d->ts, d->label);
        } else {
            size_t vlen = m->payload ? m->len : 0;
            if (vlen > FEAT_DL_RAW_MAX) { /* an oversize record: keep its head */
                size_t dl = strlen(d->detail);
                snprintf(d->detail + dl, sizeof(d->detail) - dl, " (raw value truncated to its first %d bytes)",
                         FEAT_DL_RAW_MAX);
                vlen = FEAT_DL_RAW_MAX;
            }
            rc = feat_wb_put_dead_letter(b->wb, topic, m->partition, m->offset, feat_dl_reason_name(d->reason),
                                         d->detail, m->key, m->key ? m->key_len : 0, m->payload, vlen, now);
            b->n_dead++;
            b->dead_by[d->reason]++;
            feat_log(FEAT_LOG_DEBUG, "ingest", "dead letter %s[%d]@%lld: %s: %s", topic, m->partition,
                     (long long)m->offset, feat_dl_reason_name(d->reason), d->detail);
        }
        if (rc) { fatal(ing, "out of memory building a write batch"); return -1; }
        if (!ps->touched) {
            ps->touched = 1;
            if (touch(b, (size_t)(ps - ing->parts))) { fatal(ing, "out of memory"); return -1; }
        }
        ps->pending = m->offset + 1;
        ps->pending_applied++;
        b->nmsgs++;
    }
    if (n_skip) {
        atomic_fetch_add(&ing->skipped, n_skip);
        feat_metric_add(ing->m_skipped, n_skip);
    }
    return 0;
}

/* Each partition the batch touched gets its next offset written with it. */
static int batch_offsets(feat_ingest_t *ing, batch_t *b) {
    for (size_t i = 0; i < b->ntouched; i++) {
        pstate_t *p = &ing->parts[b->touched[i].part];
        p->touched = 0;
        b->touched[i].next = p->pending;
        b->touched[i].applied = p->pending_applied;
        if (feat_wb_set_offset(b->wb, p->topic, p->partition, p->pending, p->pending_applied)) {
            fatal(ing, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Hands the built batch to the writer (after it finished the previous one)
 * and switches to the other buffer. */
static int submit(feat_ingest_t *ing) {
    batch_t *b = &ing->bufs[ing->cur];
    if (b->ntouched == 0) return 0; /* nothing to write (all skipped or errors) */
    if (batch_offsets(ing, b)) return -1;
    feat_wb_seal(b->wb);          /* while the writer still commits the previous batch */
    pthread_mutex_lock(&ing->wlock);
    while (ing->inflight) pthread_cond_wait(&ing->wcond, &ing->wlock);
    ing->inflight = b;
    pthread_cond_broadcast(&ing->wcond);
    pthread_mutex_unlock(&ing->wlock);
    ing->cur ^= 1;
    batch_reset(ing, &ing->bufs[ing->cur]); /* the writer finished it before taking b */
    return 0;
}

/* Commits our stored positions to the broker, asynchronously: lag only. */
static void lag_commit(feat_ingest_t *ing) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ing->nparts + 1);
    pthread_mutex_lock(&ing->lock);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (p->assigned && p->next >= 0)
            rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->next;
    }
    pthread_mutex_unlock(&ing->lock);
    if (l->cnt) rd_kafka_commit(ing->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

/* A restoring partition whose log ends with offsets that hold no record
 * (transaction markers) never sees its store reach the end: with nothing
 * left to fetch, the consumer's position says it is there. */
static void restore_idle(feat_ingest_t *ing, int64_t now) {
    ing->restore_check_ms = now;
    pthread_mutex_lock(&ing->lock);
    drain_end(ing, NULL);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (!p->assigned || p->restore_to <= 0 || p->next < 0) continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        if (rd_kafka_position(ing->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].offset >= p->restore_to &&
            p->next == p->pending)
            restore_progress(ing, p, l->elems[0].offset);
        rd_kafka_topic_partition_list_destroy(l);
    }
    pthread_mutex_unlock(&ing->lock);
}

static void *run(void *arg) {
    feat_ingest_t *ing = arg;
    while (!atomic_load(&ing->stop) && !atomic_load(&ing->failed)) {
        /* with standbys, the group's consumer waits less: the standby consumer is read in between */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ing->rk, ing->sb ? 10 : 100);
        int64_t now = feat_now_ms();
        if (now - ing->last_commit_ms >= ing->conf.commit_ms) {
            ing->last_commit_ms = now;
            lag_commit(ing);
        }
        if (now - ing->restore_check_ms >= 1000) restore_idle(ing, now);
        if (ing->sb && now - ing->sb_lag_ms >= 100) standby_tick(ing, now);
        int rc = 0;
        if (m) {
            ing->msgs[0] = m;
            size_t n = 1;
            if (ing->batch_max > 1) {
                ssize_t k = rd_kafka_consume_batch_queue(ing->q, 0, ing->msgs + 1, ing->batch_max - 1);
                if (k > 0) n += (size_t)k;
            }
            rc = build_batch(ing, &ing->bufs[ing->cur], ing->msgs, n, 0);
            for (size_t i = 0; i < n; i++) rd_kafka_message_destroy(ing->msgs[i]);
        }
        if (!rc && ing->sb) {
            ssize_t k = rd_kafka_consume_batch_queue(ing->sbq, 0, ing->msgs, ing->batch_max);
            if (k > 0) {
                rc = build_batch(ing, &ing->bufs[ing->cur], ing->msgs, (size_t)k, 1);
                for (ssize_t i = 0; i < k; i++) rd_kafka_message_destroy(ing->msgs[i]);
            }
        }
        if (rc || submit(ing)) break;
    }
    drain(ing);
    if (!atomic_load(&ing->failed)) lag_commit(ing);
    return NULL;
}

int feat_ingest_start(feat_ingest_t *ing, char *errstr, size_t errlen) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)ing->ntopics);
    for (size_t i = 0; i < ing->ntopics; i++)
        rd_kafka_topic_partition_list_add(l, ing->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(ing->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(errstr, errlen, "kafka: subscribe: %s", rd_kafka_err2str(e));
        return FEAT_ERR_KAFKA;
    }
    ing->last_commit_ms = feat_now_ms();
    if (feat_worker_start(&ing->writer, "ingest:write", writer_run, ing) != FEAT_OK) {
        snprintf(errstr, errlen, "ingest: cannot start the writer thread");
        return FEAT_ERR_NOMEM;
    }
    ing->writer_started = 1;
    if (feat_worker_start(&ing->thr, "ingest:consume", run, ing) != FEAT_OK) {
        snprintf(errstr, errlen, "ingest: cannot start thread");
        return FEAT_ERR_NOMEM;
    }
    ing->started = 1;
    feat_log(FEAT_LOG_INFO, "ingest", "consuming %zu topic(s)", ing->ntopics);
    return FEAT_OK;
}

static void stop_writer(feat_ingest_t *ing) {
    if (!ing->writer_started) return;
    pthread_mutex_lock(&ing->wlock);
    ing->writer_stop = 1;
    pthread_cond_broadcast(&ing->wcond);
    pthread_mutex_unlock(&ing->wlock);
    feat_worker_join(ing->writer);
    ing->writer_started = 0;
}

void feat_ingest_stop(feat_ingest_t *ing) {
    if (!ing) return;
    if (!ing->started) {
        stop_writer(ing);
        return;
    }
    atomic_store(&ing->stop, 1);
    feat_worker_join(ing->thr);
    ing->started = 0;
    /* what the broker holds beyond what the store applied, for the stop's
     * log line (the embedded broker loses it with the process), from the
     * high watermarks the last fetches brought: asking the broker could wait
     * on one that is gone (librdkafka 2.0 does not enforce that timeout) */
    int64_t left = 0;
    pthread_mutex_lock(&ing->lock);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        int64_t lo = -1, hi = -1;
        if (!p->assigned) continue;
        if (rd_kafka_get_watermark_offsets(ing->rk, p->topic, p->partition, &lo, &hi) || hi < 0) {
            left = -1;
            break;
        }
        int64_t next = p->next >= 0 ? p->next : hi;
        if (hi > next) left += hi - next;
    }
    pthread_mutex_unlock(&ing->lock);
    ing->unapplied_at_stop = left;
    /* close runs the revoke callback on this thread; no batch is in flight */
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(ing->rk);
    if (e) feat_log(FEAT_LOG_WARN, "ingest", "consumer close: %s", rd_kafka_err2str(e));
    if (ing->sb && (e = rd_kafka_consumer_close(ing->sb)))
        feat_log(FEAT_LOG_WARN, "ingest", "standby consumer close: %s", rd_kafka_err2str(e));
    stop_writer(ing);
}

void feat_ingest_destroy(feat_ingest_t *ing) {
    if (!ing) return;
    feat_ingest_stop(ing);
    feat_metrics_remove_collector(ing->metrics, collect, ing);
    if (ing->q) rd_kafka_queue_destroy(ing->q);
    if (ing->rk) rd_kafka_destroy(ing->rk);
    if (ing->sbq) rd_kafka_queue_destroy(ing->sbq);
    if (ing->sb) rd_kafka_destroy(ing->sb);
    feat_decoder_destroy(ing->dec);
    for (int i = 0; i < 2; i++) {
        feat_wb_destroy(ing->bufs[i].wb);
        free(ing->bufs[i].tev);
        free(ing->bufs[i].newest);
        free(ing->bufs[i].touched);
    }
    pthread_mutex_destroy(&ing->wlock);
    pthread_cond_destroy(&ing->wcond);
    for (size_t i = 0; i < ing->nparts; i++) free(ing->parts[i].topic);
    free(ing->parts);
    free(ing->msgs);
    free(ing->d);
    free(ing->topics);
    free(ing->tables);
    free((void *)ing->newest);
    free((void *)ing->tevents);
    free(ing->m_events);
    free(ing->m_late);
    free(ing->m_labels);
    pthread_mutex_destroy(&ing->lock);
    pthread_mutex_destroy(&ing->rlock);
    free(ing);
}

/* ---- status -------------------------------------------------------------------------- */

void feat_ingest_get_stats(feat_ingest_t *ing, feat_ingest_stats_t *out) {
    memset(out, 0, sizeof(*out));
    if (!ing) return;
    out->events = atomic_load(&ing->events);
    out->labels = atomic_load(&ing->labels);
    out->dead_letters = atomic_load(&ing->dead);
    out->skipped = atomic_load(&ing->skipped);
    out->batches = atomic_load(&ing->batches);
    out->gap_records = atomic_load(&ing->gap_total);
    for (int r = 0; r < FEAT_DL_COUNT; r++) out->dead_by_reason[r] = atomic_load(&ing->dead_by[r]);
    out->assigned = atomic_load(&ing->assigned);
    out->failed = atomic_load(&ing->failed);
    pthread_mutex_lock(&ing->lock);
    snprintf(out->error, sizeof(out->error), "%s", ing->error);
    pthread_mutex_unlock(&ing->lock);
}

int feat_ingest_failed(feat_ingest_t *ing) { return ing ? atomic_load(&ing->failed) : 0; }
int feat_ingest_refused(feat_ingest_t *ing) { return ing ? atomic_load(&ing->refused) : 0; }

int64_t feat_ingest_unapplied_at_stop(const feat_ingest_t *ing) { return ing ? ing->unapplied_at_stop : 0; }

size_t feat_ingest_partitions(feat_ingest_t *ing, feat_partition_status_t *out, size_t max) {
    size_t n = 0;
    if (!ing) return 0;
    pthread_mutex_lock(&ing->lock);
    for (size_t i = 0; i < ing->nparts; i++) {
        pstate_t *p = &ing->parts[i];
        if (!p->assigned) continue;
        if (n < max) {
            feat_partition_status_t *s = &out[n];
            snprintf(s->topic, sizeof(s->topic), "%s", p->topic);
            s->partition = p->partition;
            int64_t lo = -1, hi = -1;
            rd_kafka_get_watermark_offsets(ing->rk, p->topic, p->partition, &lo, &hi);
            s->next_offset = p->next >= 0 ? p->next : (lo >= 0 ? lo : 0);
            s->high_watermark = hi;
            s->lag = hi >= 0 ? (hi > s->next_offset ? hi - s->next_offset : 0) : -1;
            s->gap_records = p->gap;
        }
        n++;
    }
    pthread_mutex_unlock(&ing->lock);
    return n;
}

int64_t feat_ingest_newest_event(feat_ingest_t *ing, size_t table) {
    return ing && table < ing->conf.decode.ntables ? atomic_load(&ing->newest[table]) : 0;
}

uint64_t feat_ingest_table_events(feat_ingest_t *ing, size_t table) {
    return ing && table < ing->conf.decode.ntables ? atomic_load(&ing->tevents[table]) : 0;
}
