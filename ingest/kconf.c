/* ingest/kconf.c — see kconf.h. */
#include "ingest/kconf.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

void feat_kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    feat_log_level_t l = level <= 3 ? FEAT_LOG_ERROR : level == 4 ? FEAT_LOG_WARN
                         : level <= 6 ? FEAT_LOG_INFO : FEAT_LOG_DEBUG;
    /* One kafka.* section configures featd's consumer and its producers, so
     * librdkafka warns that each client ignores the other's properties:
     * expected, not worth an operator's attention. */
    if (!strcmp(fac, "CONFWARN") && (strstr(buf, "is a consumer property and will be ignored by this producer") ||
                                     strstr(buf, "is a producer property and will be ignored by this consumer")))
        l = FEAT_LOG_DEBUG;
    feat_log(l, "kafka", "%s: %s", fac, buf);
}

void feat_kconf_route_logs(rd_kafka_conf_t *conf) { rd_kafka_conf_set_log_cb(conf, feat_kconf_log); }

int feat_kconf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t errlen) {
    char kerr[256];
    if (rd_kafka_conf_set(conf, name, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errlen, "kafka.%s: %s", name, kerr);
        return FEAT_ERR_CONFIG;
    }
    return FEAT_OK;
}

rd_kafka_conf_t *feat_kconf_new(const feat_config_t *cfg, const char *bootstrap, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, feat_kconf_log);
    /* quieter defaults; the user may override any of them */
    if (feat_kconf_set(conf, "log.connection.close", "false", errstr, errlen)) goto fail;
    for (size_t i = 0; i < cfg->nkafka; i++) {
        if (bootstrap && strcmp(cfg->kafka[i].key, "bootstrap.servers") == 0) continue;
        if (feat_kconf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, errstr, errlen)) goto fail;
    }
    if (bootstrap && feat_kconf_set(conf, "bootstrap.servers", bootstrap, errstr, errlen)) goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
