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

/* Sets one property; on failure writes "kafka.<name>: <reason>" to errstr. */
static feat_err_t kset(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr, size_t errlen) {
    char kerr[256];
    if (rd_kafka_conf_set(conf, name, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errlen, "kafka.%s: %s", name, kerr);
        return FEAT_ERR_CONFIG;
    }
    return FEAT_OK;
}

/* 1 when props give name a non-empty value (the last one given counts, as
 * it does for librdkafka). */
static int user_set(const feat_kv_t *props, size_t n, const char *name) {
    const char *v = NULL;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(props[i].key, name)) v = props[i].value;
    return v && *v;
}

/* The conf of kc up to its callbacks: NULL (errstr set) when librdkafka
 * refuses a property. */
static rd_kafka_conf_t *conf_new(const feat_kafka_conf_t *kc, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kc->log_cb ? kc->log_cb : feat_kconf_log);
    /* quieter defaults; the user may override any of them */
    if (kset(conf, "log.connection.close", "false", errstr, errlen)) goto fail;
    for (size_t i = 0; i < kc->nprops; i++) {
        if (kc->bootstrap && strcmp(kc->props[i].key, "bootstrap.servers") == 0) continue;
        if (kset(conf, kc->props[i].key, kc->props[i].value, errstr, errlen)) goto fail;
    }
    if (kc->bootstrap && kset(conf, "bootstrap.servers", kc->bootstrap, errstr, errlen)) goto fail;
    for (const char *const *p = kc->set; p && p[0]; p += 2)
        if (kset(conf, p[0], p[1], errstr, errlen)) goto fail;
    for (const char *const *p = kc->defaults; p && p[0]; p += 2)
        if (!user_set(kc->props, kc->nprops, p[0]) && kset(conf, p[0], p[1], errstr, errlen)) goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

feat_err_t feat_kconf_check(const feat_kv_t *props, size_t nprops, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = conf_new(&(feat_kafka_conf_t){.props = props, .nprops = nprops}, errstr, errlen);
    if (!conf) return FEAT_ERR_CONFIG;
    rd_kafka_conf_destroy(conf);
    return FEAT_OK;
}

rd_kafka_t *feat_kafka_new(rd_kafka_type_t type, const feat_kafka_conf_t *kc, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = conf_new(kc, errstr, errlen);
    if (!conf) return NULL;
    if (kc->opaque) rd_kafka_conf_set_opaque(conf, kc->opaque);
    if (kc->dr_msg_cb) rd_kafka_conf_set_dr_msg_cb(conf, kc->dr_msg_cb);
    if (kc->error_cb) rd_kafka_conf_set_error_cb(conf, kc->error_cb);
    if (kc->rebalance_cb) rd_kafka_conf_set_rebalance_cb(conf, kc->rebalance_cb);
    if (kc->offset_commit_cb) rd_kafka_conf_set_offset_commit_cb(conf, kc->offset_commit_cb);
    char kerr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, kerr, sizeof(kerr)); /* takes conf on success */
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errlen, "%s: %s", kc->what ? kc->what : "kafka", kerr);
    }
    return rk;
}
