/*
 * ingest/kconf.h — librdkafka handles for ingest/ (the only module that
 * includes librdkafka's headers).  Every rd_kafka_t featd makes (the
 * consumer, the producers, the demo's producers, the embedded broker's
 * host handle) comes from feat_kafka_new: the same base settings, the same
 * order, the same log routing, the same error text.
 */
#ifndef FEAT_INGEST_KCONF_H
#define FEAT_INGEST_KCONF_H

#include <librdkafka/rdkafka.h>

#include "common/config.h"

/* What a handle needs besides its type; members left zero mean "none". */
typedef struct feat_kafka_conf {
    const feat_kv_t *props;       /* [kafka] pass-through properties, applied in order */
    size_t nprops;
    const char *bootstrap;        /* bootstrap.servers, replacing the props' one; NULL = theirs */
    const char *const *set;       /* name, value, ..., NULL: featd's settings, applied after props (they win) */
    const char *const *defaults;  /* name, value, ..., NULL: applied only where props give name no
                                   * (or an empty) value, so the user's choice wins */
    void *opaque;                 /* rd_kafka_opaque(): the callbacks' last argument */
    void (*log_cb)(const rd_kafka_t *rk, int level, const char *fac, const char *buf); /* NULL = feat_kconf_log */
    void (*dr_msg_cb)(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
    void (*error_cb)(rd_kafka_t *rk, int err, const char *reason, void *opaque);
    void (*rebalance_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque);
    void (*offset_commit_cb)(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                             void *opaque);
    const char *what;             /* prefixes librdkafka's reason when no handle can be made ("demo") */
} feat_kafka_conf_t;

/* Makes a handle of type: log.connection.close=false (quieter; props may
 * override it), then props, bootstrap, set, defaults, the log callback and
 * the callbacks given.  NULL on failure, with errstr "kafka.<name>:
 * <reason>" for a property librdkafka refuses, or "<what>: <reason>". */
rd_kafka_t *feat_kafka_new(rd_kafka_type_t type, const feat_kafka_conf_t *kc, char *errstr, size_t errlen);

/* Checks props against librdkafka without making a handle or connecting.
 * FEAT_OK, or FEAT_ERR_CONFIG with errstr naming the key as above. */
feat_err_t feat_kconf_check(const feat_kv_t *props, size_t nprops, char *errstr, size_t errlen);

/* The log callback every handle gets unless kc->log_cb says otherwise:
 * librdkafka's syslog level to featd's, under the "kafka" component.  For a
 * handle's own callback to forward to. */
void feat_kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
