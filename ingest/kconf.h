/*
 * ingest/kconf.h — librdkafka helpers private to ingest/ (the only module
 * that includes librdkafka's headers).
 */
#ifndef FEAT_INGEST_KCONF_H
#define FEAT_INGEST_KCONF_H

#include <librdkafka/rdkafka.h>

#include "common/config.h"

/* Builds a librdkafka conf: bootstrap (NULL = from the config), the
 * pass-through kafka.* properties, and featd's log routing.  NULL with
 * errstr naming the failing key ("kafka.session.timeout.ms: ..."). */
rd_kafka_conf_t *feat_kconf_new(const feat_config_t *cfg, const char *bootstrap, char *errstr, size_t errlen);

/* Routes a conf's librdkafka log lines into featd's log. */
void feat_kconf_route_logs(rd_kafka_conf_t *conf);
/* The log callback feat_kconf_new installs: librdkafka's syslog level to
 * featd's, under the "kafka" component.  For a client's own callback to
 * forward to. */
void feat_kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* Sets one property; on failure writes "kafka.<name>: <reason>" to errstr. */
int feat_kconf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t errlen);

#endif
