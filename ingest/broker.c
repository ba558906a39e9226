/* ingest/broker.c — see broker.h. */
#include "ingest/broker.h"
#include "ingest/kconf.h"
#include "common/err.h"
#include "common/log.h"

#include <fcntl.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct feat_broker {
    rd_kafka_t *rk;               /* handle the mock cluster hangs off */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
};

feat_broker_t *feat_broker_new(int nbrokers, char *errstr, size_t errlen) {
    feat_broker_t *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(errstr, errlen, "broker: out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char kerr[256];
    rd_kafka_conf_set(conf, "log.connection.close", "false", kerr, sizeof(kerr));
    b->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr));
    if (!b->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errlen, "embedded broker: %s", kerr);
        free(b);
        return NULL;
    }
    b->mc = rd_kafka_mock_cluster_new(b->rk, nbrokers);
    if (!b->mc) {
        snprintf(errstr, errlen, "embedded broker: cannot start the mock cluster");
        feat_broker_destroy(b);
        return NULL;
    }
    b->bootstraps = strdup(rd_kafka_mock_cluster_bootstraps(b->mc));
    if (!b->bootstraps) {
        snprintf(errstr, errlen, "embedded broker: out of memory");
        feat_broker_destroy(b);
        return NULL;
    }
    feat_log(FEAT_LOG_INFO, "broker", "embedded Kafka broker on %s", b->bootstraps);
    return b;
}

int feat_broker_create_topic(feat_broker_t *b, const char *topic, int partitions) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(b->mc, topic, partitions, 1);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        feat_log(FEAT_LOG_ERROR, "broker", "create topic %s: %s", topic, rd_kafka_err2str(e));
        return FEAT_ERR_KAFKA;
    }
    return FEAT_OK;
}

int feat_broker_create_config_topics(feat_broker_t *b, const feat_config_t *cfg, char *errstr, size_t errlen) {
    for (size_t i = 0; i < cfg->ntables + cfg->nmodels; i++) {
        const char *t = i < cfg->ntables ? cfg->tables[i].topic : cfg->models[i - cfg->ntables].label_topic;
        if (feat_broker_create_topic(b, t, (int)cfg->kafka_partitions)) {
            snprintf(errstr, errlen, "embedded broker: cannot create topic %s", t);
            return FEAT_ERR_KAFKA;
        }
    }
    /* featd's own output topics */
    for (size_t i = 0; i <= cfg->nmodels; i++) {
        const char *t = i < cfg->nmodels ? cfg->models[i].prediction_topic : cfg->drift_alert_topic;
        if (t && *t && feat_broker_create_topic(b, t, (int)cfg->kafka_partitions)) {
            snprintf(errstr, errlen, "embedded broker: cannot create topic %s", t);
            return FEAT_ERR_KAFKA;
        }
    }
    return FEAT_OK;
}

const char *feat_broker_bootstraps(const feat_broker_t *b) { return b->bootstraps; }

int feat_broker_set_down(feat_broker_t *b, int broker_id, int down) {
    rd_kafka_resp_err_t e = down ? rd_kafka_mock_broker_set_down(b->mc, broker_id)
                                 : rd_kafka_mock_broker_set_up(b->mc, broker_id);
    return e ? FEAT_ERR_KAFKA : FEAT_OK;
}

void feat_broker_destroy(feat_broker_t *b) {
    if (!b) return;
    if (b->mc) rd_kafka_mock_cluster_destroy(b->mc);
    if (b->rk) rd_kafka_destroy(b->rk);
    free(b->bootstraps);
    free(b);
}

int feat_write_file_atomic(const char *path, const char *data, size_t len) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return FEAT_ERR_IO;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return FEAT_ERR_IO;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return FEAT_ERR_IO;
    }
    return FEAT_OK;
}
