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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

/* ---- the control port ---------------------------------------------------- */

#define CTL_MAX 8  /* clients at once */

typedef struct ctl_client {
    int fd;        /* -1 = free slot */
    char buf[1024];
    size_t len;
} ctl_client_t;

/* Listens on 127.0.0.1:0 and writes "127.0.0.1:PORT" to path.  -1 on failure. */
static int ctl_listen(const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    char addr[64];
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, CTL_MAX) ||
        getsockname(fd, (struct sockaddr *)&a, &al)) {
        close(fd);
        return -1;
    }
    int n = snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
    if (feat_write_file_atomic(path, addr, (size_t)n)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads what a client sent and answers each complete line; closes the
 * client on EOF, error, or a line longer than its buffer. */
static void ctl_serve(feat_broker_t *b, ctl_client_t *c) {
    ssize_t r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
    if (r <= 0) {
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
        close(c->fd);
        c->fd = -1;
        return;
    }
    c->len += (size_t)r;
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len))) {
        *nl = 0;
        char reply[600];
        feat_broker_command(b, c->buf, reply, sizeof(reply));
        size_t rl = strlen(reply);
        reply[rl++] = '\n';
        if (send(c->fd, reply, rl, MSG_NOSIGNAL) != (ssize_t)rl) { /* a slow or gone reader: drop it */
            close(c->fd);
            c->fd = -1;
            return;
        }
        size_t used = (size_t)(nl - c->buf) + 1;
        memmove(c->buf, nl + 1, c->len - used);
        c->len -= used;
    }
    if (c->len == sizeof(c->buf) - 1) {
        close(c->fd);
        c->fd = -1;
    }
}

/* Waits up to ms for control traffic and handles it. */
static void ctl_poll(feat_broker_t *b, int lfd, ctl_client_t *cl, int ms) {
    struct pollfd p[CTL_MAX + 1];
    int map[CTL_MAX + 1], n = 0;
    if (lfd >= 0) { p[n].fd = lfd; p[n].events = POLLIN; map[n++] = -1; }
    for (int i = 0; i < CTL_MAX; i++)
        if (cl[i].fd >= 0) { p[n].fd = cl[i].fd; p[n].events = POLLIN; map[n++] = i; }
    if (n == 0) {
        struct timespec ts = {0, (long)ms * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    if (poll(p, (nfds_t)n, ms) <= 0) return;
    for (int k = 0; k < n; k++) {
        if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (map[k] >= 0) {
            ctl_serve(b, &cl[map[k]]);
            continue;
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        int slot = -1;
        for (int i = 0; i < CTL_MAX && slot < 0; i++)
            if (cl[i].fd < 0) slot = i;
        if (slot < 0) {
            close(fd);
            continue;
        }
        cl[slot].fd = fd;
        cl[slot].len = 0;
    }
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
        cfg->kafka_partitions = partitions;
        if (feat_broker_create_config_topics(b, cfg, err, sizeof(err))) {
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
    ctl_client_t clients[CTL_MAX];
    for (int i = 0; i < CTL_MAX; i++) clients[i].fd = -1;
    int lfd = -1;
    if (!rc && cfile && (lfd = ctl_listen(cfile)) < 0) {
        fprintf(stderr, "featd-broker: cannot open the control port or write %s\n", cfile);
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
        ctl_poll(b, lfd, clients, 50);
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
    for (int i = 0; i < CTL_MAX; i++)
        if (clients[i].fd >= 0) close(clients[i].fd);
    if (lfd >= 0) close(lfd);
    feat_broker_destroy(b);
    feat_config_free(cfg);
    return 0;
}
