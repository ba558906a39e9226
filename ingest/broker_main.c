/*
 * featd-broker — the embedded Kafka-protocol broker as its own process.
 *
 *   featd-broker [--config FILE] [--topic NAME]... [--partitions N]
 *                [--brokers N] [--bootstrap-file PATH] [--control-file PATH]
 *
 * Creates the config's source and label topics (and any --topic), prints the
 * bootstrap servers on stdout and to --bootstrap-file, and runs until SIGTERM
 * or SIGINT.  SIGUSR1 takes every broker down, SIGUSR2 brings them back (for
 * fault tests).  Crash tests use it so that killing featd does not lose the
 * log.
 *
 * --control-file: listen on a loopback TCP port (written to PATH as
 * "127.0.0.1:PORT") for fault-injection commands, one per line, each
 * answered by one line "ok ..." or "error: ..." (the commands are listed in
 * usage() and ingest/broker.h, feat_broker_command).  Loopback only, no
 * authentication: a test tool.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/log.h"
#include "ingest/broker.h"

static volatile sig_atomic_t stop_flag, down_flag, up_flag;
static void on_stop(int s) { (void)s; stop_flag = 1; }
static void on_down(int s) { (void)s; down_flag = 1; }
static void on_up(int s) { (void)s; up_flag = 1; }

static void usage(void) {
    fprintf(stderr,
            "usage: featd-broker [--config FILE] [--topic NAME]... [--partitions N] [--brokers N]\n"
            "                    [--bootstrap-file PATH] [--control-file PATH]\n"
            "--control-file PATH: listen on 127.0.0.1 (port written to PATH as 127.0.0.1:PORT) for\n"
            "fault-injection commands, one a line, each answered \"ok ...\" or \"error: ...\":\n"
            "  ping\n"
            "  errors API ERR [COUNT]              next COUNT requests of API to any broker fail with ERR\n"
            "  broker-errors BROKER API ERR RTT_MS [COUNT]   the same on one broker, answers delayed\n"
            "  clear API                           forget pushed errors of API\n"
            "  down BROKER | up BROKER             refuse / accept connections (BROKER = 1..n or all)\n"
            "  leader TOPIC PARTITION BROKER       move a partition's leader (-1: leaderless)\n"
            "  coordinator group|transaction KEY BROKER\n"
            "  rtt BROKER MS                       delay every answer of BROKER\n"
            "API: Produce Fetch ListOffsets Metadata OffsetCommit OffsetFetch FindCoordinator JoinGroup\n"
            "Heartbeat LeaveGroup SyncGroup (or the ApiKey number); ERR: a librdkafka error name such as\n"
            "NOT_LEADER_FOR_PARTITION, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, REQUEST_TIMED_OUT.\n"
            "SIGUSR1 takes every broker down, SIGUSR2 brings them back.\n");
}

int main(int argc, char **argv) {
    const char *cfg_path = NULL, *bfile = NULL, *cfile = NULL;
    const char *topics[64];
    int ntopics = 0, partitions = -1, nbrokers = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--config") && v) cfg_path = argv[++i];
        else if (!strcmp(a, "--topic") && v && ntopics < 64) topics[ntopics++] = argv[++i];
        else if (!strcmp(a, "--partitions") && v) partitions = atoi(argv[++i]);
        else if (!strcmp(a, "--brokers") && v) nbrokers = atoi(argv[++i]);
        else if (!strcmp(a, "--bootstrap-file") && v) bfile = argv[++i];
        else if (!strcmp(a, "--control-file") && v) cfile = argv[++i];
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(); return 0; }
        else { usage(); return 2; }
    }
    if (nbrokers < 1 || nbrokers > 5 || partitions == 0 || partitions > 256) {
        fprintf(stderr, "featd-broker: --brokers must be 1..5 and --partitions 1..256\n");
        return 2;
    }
    char err[512];
    feat_config_t *cfg = NULL;
    if (cfg_path) {
        cfg = feat_config_load(cfg_path, err, sizeof(err));
        if (!cfg) {
            fprintf(stderr, "featd-broker: config: %s\n", err);
            return 2;
        }
        if (partitions < 0) partitions = (int)cfg->kafka_partitions;
    }
    if (partitions < 0) partitions = 4;
    feat_broker_t *b = feat_broker_new(nbrokers, err, sizeof(err));
    if (!b) {
        fprintf(stderr, "featd-broker: %s\n", err);
        feat_config_free(cfg);
        return 1;
    }
    int rc = 0;
    if (cfg) {
        feat_broker_topics_conf_t tc = {.tables = cfg->tables, .ntables = cfg->ntables, .models = cfg->models,
                                        .nmodels = cfg->nmodels, .drift_alert_topic = cfg->drift_alert_topic,
                                        .partitions = partitions, .cluster_topic = cfg->cluster_topic,
                                        .models_topic = cfg->cluster_models_topic};
        if (feat_broker_create_topics(b, &tc, err, sizeof(err))) {
            fprintf(stderr, "featd-broker: %s\n", err);
            rc = 1;
        }
    }
    for (int i = 0; i < ntopics && !rc; i++)
        if (feat_broker_create_topic(b, topics[i], partitions)) {
            fprintf(stderr, "featd-broker: cannot create topic %s\n", topics[i]);
            rc = 1;
        }
    const char *bs = feat_broker_bootstraps(b);
    if (!rc && bfile && feat_write_file_atomic(bfile, bs, strlen(bs))) {
        fprintf(stderr, "featd-broker: cannot write %s\n", bfile);
        rc = 1;
    }
    if (!rc && cfile && feat_broker_control_start(b, cfile, err, sizeof(err))) {
        fprintf(stderr, "featd-broker: %s\n", err);
        rc = 1;
    }
    if (rc) {
        feat_broker_destroy(b);
        feat_config_free(cfg);
        return rc;
    }
    printf("%s\n", bs);
    fflush(stdout);
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    signal(SIGUSR1, on_down);
    signal(SIGUSR2, on_up);
    while (!stop_flag) {
        struct timespec ts = {0, 50000000L};
        nanosleep(&ts, NULL);
        if (down_flag) {
            down_flag = 0;
            for (int i = 1; i <= nbrokers; i++) feat_broker_set_down(b, i, 1);
            feat_log(FEAT_LOG_WARN, "broker", "all brokers down (SIGUSR1)");
        }
        if (up_flag) {
            up_flag = 0;
            for (int i = 1; i <= nbrokers; i++) feat_broker_set_down(b, i, 0);
            feat_log(FEAT_LOG_WARN, "broker", "all brokers up (SIGUSR2)");
        }
    }
    feat_broker_destroy(b); /* stops the control port */
    feat_config_free(cfg);
    return 0;
}
