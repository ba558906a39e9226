/* ingest/broker.c — see broker.h. */
#include "ingest/broker.h"
#include "ingest/kconf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct feat_broker {
    rd_kafka_t *rk;               /* handle the mock cluster hangs off */
    rd_kafka_mock_cluster_t *mc;
    char *bootstraps;
    int nbrokers;
    /* the control port (feat_broker_control_start) */
    pthread_t ctl_thr;
    int ctl_started;
    int ctl_fd;
    char *ctl_path;            /* removed at destroy: no stale address for a later run */
    atomic_int ctl_stop;
};

feat_broker_t *feat_broker_new(int nbrokers, char *errstr, size_t errlen) {
    feat_broker_t *b = calloc(1, sizeof(*b));
    if (!b) {
        snprintf(errstr, errlen, "broker: out of memory");
        return NULL;
    }
    b->ctl_fd = -1;
    /* The mock cluster reads requests up to this handle's
     * receive.message.max.bytes and closes the connection of a client that
     * sends a larger one.  Its partitions keep 5 MiB, and a message set over
     * half of that can make it lose the set and the next one (when it drops
     * the last older set to fit a new one, its log start jumps past the new
     * one).  So the embedded broker refuses produce requests over
     * FEAT_BROKER_MAX_REQUEST, as a real broker refuses a record over its
     * message.max.bytes: the client retries and reports the record failed. */
    char lim[32];
    snprintf(lim, sizeof(lim), "%d", FEAT_BROKER_MAX_REQUEST);
    const char *const set[] = {
        /* this handle only hosts the mock cluster: its notice that it has no
         * bootstrap servers of its own means nothing to an operator */
        "log_level", "4",
        "receive.message.max.bytes", lim,
        NULL};
    b->rk = feat_kafka_new(RD_KAFKA_PRODUCER, &(feat_kafka_conf_t){.set = set, .what = "embedded broker"}, errstr,
                           errlen);
    if (!b->rk) {
        free(b);
        return NULL;
    }
    b->nbrokers = nbrokers;
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

feat_err_t feat_broker_create_topic(feat_broker_t *b, const char *topic, int partitions) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(b->mc, topic, partitions, 1);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        feat_log(FEAT_LOG_ERROR, "broker", "create topic %s: %s", topic, rd_kafka_err2str(e));
        return FEAT_ERR_KAFKA;
    }
    return FEAT_OK;
}

feat_err_t feat_broker_create_topics(feat_broker_t *b, const feat_broker_topics_conf_t *tc, char *errstr,
                                     size_t errlen) {
    for (size_t i = 0; i < tc->ntables + tc->nmodels; i++) {
        const char *t = i < tc->ntables ? tc->tables[i].topic : tc->models[i - tc->ntables].label_topic;
        if (feat_broker_create_topic(b, t, tc->partitions)) {
            snprintf(errstr, errlen, "embedded broker: cannot create topic %s", t);
            return FEAT_ERR_KAFKA;
        }
    }
    /* featd's own output topics */
    for (size_t i = 0; i <= tc->nmodels; i++) {
        const char *t = i < tc->nmodels ? tc->models[i].prediction_topic : tc->drift_alert_topic;
        if (t && *t && feat_broker_create_topic(b, t, tc->partitions)) {
            snprintf(errstr, errlen, "embedded broker: cannot create topic %s", t);
            return FEAT_ERR_KAFKA;
        }
    }
    if (tc->models_topic && *tc->models_topic && tc->nmodels && feat_broker_create_topic(b, tc->models_topic, 1)) {
        snprintf(errstr, errlen, "embedded broker: cannot create topic %s", tc->models_topic);
        return FEAT_ERR_KAFKA;
    }
    if (tc->cluster_topic && *tc->cluster_topic && feat_broker_create_topic(b, tc->cluster_topic, 1)) {
        snprintf(errstr, errlen, "embedded broker: cannot create topic %s", tc->cluster_topic);
        return FEAT_ERR_KAFKA;
    }
    return FEAT_OK;
}

const char *feat_broker_bootstraps(const feat_broker_t *b) { return b->bootstraps; }

feat_err_t feat_broker_set_down(feat_broker_t *b, int broker_id, int down) {
    rd_kafka_resp_err_t e = down ? rd_kafka_mock_broker_set_down(b->mc, broker_id)
                                 : rd_kafka_mock_broker_set_up(b->mc, broker_id);
    return e ? FEAT_ERR_KAFKA : FEAT_OK;
}

/* ---- fault injection by command ------------------------------------------- */

/* Kafka protocol request names (ApiKey numbers from the protocol guide). */
static const struct { const char *name; int16_t key; } api_names[] = {
    {"Produce", 0}, {"Fetch", 1}, {"ListOffsets", 2}, {"Metadata", 3}, {"OffsetCommit", 8},
    {"OffsetFetch", 9}, {"FindCoordinator", 10}, {"JoinGroup", 11}, {"Heartbeat", 12},
    {"LeaveGroup", 13}, {"SyncGroup", 14}, {"ApiVersions", 18}, {"InitProducerId", 22},
};

/* The parsers below: FEAT_OK with *out set, or FEAT_ERR_INVALID. */
static feat_err_t parse_long(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return FEAT_ERR_INVALID;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) return FEAT_ERR_INVALID;
    *out = v;
    return FEAT_OK;
}

static feat_err_t parse_api(const char *s, int16_t *out) {
    for (size_t i = 0; s && i < sizeof(api_names) / sizeof(api_names[0]); i++)
        if (!strcasecmp(s, api_names[i].name)) { *out = api_names[i].key; return FEAT_OK; }
    long v;
    if (parse_long(s, 0, 100, &v)) return FEAT_ERR_INVALID;
    *out = (int16_t)v;
    return FEAT_OK;
}

/* An error name as rd_kafka_err2name prints it (with or without the
 * RD_KAFKA_RESP_ERR_ prefix), or its number. */
static feat_err_t parse_err(const char *s, rd_kafka_resp_err_t *out) {
    if (!s) return FEAT_ERR_INVALID;
    if (!strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18)) s += 18;
    const struct rd_kafka_err_desc *d;
    size_t n;
    rd_kafka_get_err_descs(&d, &n);
    for (size_t i = 0; i < n; i++)
        if (d[i].name && !strcasecmp(s, d[i].name)) { *out = d[i].code; return FEAT_OK; }
    long v;
    if (parse_long(s, -200, 200, &v)) return FEAT_ERR_INVALID;
    *out = (rd_kafka_resp_err_t)v;
    return FEAT_OK;
}

/* BROKER: 1..nbrokers, or "all" (-1). */
static feat_err_t parse_broker(const feat_broker_t *b, const char *s, int32_t *out) {
    if (s && !strcmp(s, "all")) { *out = -1; return FEAT_OK; }
    long v;
    if (parse_long(s, 1, b->nbrokers, &v)) return FEAT_ERR_INVALID;
    *out = (int32_t)v;
    return FEAT_OK;
}

/* Applies fn to one broker or each of them. */
static rd_kafka_resp_err_t each_broker(feat_broker_t *b, int32_t id, int arg,
                                       rd_kafka_resp_err_t (*fn)(feat_broker_t *, int32_t, int)) {
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int32_t i = id < 0 ? 1 : id; i <= (id < 0 ? b->nbrokers : id) && !e; i++) e = fn(b, i, arg);
    return e;
}
static rd_kafka_resp_err_t do_down(feat_broker_t *b, int32_t id, int arg) {
    (void)arg;
    return rd_kafka_mock_broker_set_down(b->mc, id);
}
static rd_kafka_resp_err_t do_up(feat_broker_t *b, int32_t id, int arg) {
    (void)arg;
    return rd_kafka_mock_broker_set_up(b->mc, id);
}
static rd_kafka_resp_err_t do_rtt(feat_broker_t *b, int32_t id, int ms) {
    return rd_kafka_mock_broker_set_rtt(b->mc, id, ms);
}

feat_err_t feat_broker_command(feat_broker_t *b, const char *line, char *reply, size_t rlen) {
    char buf[512], *argv[8], *save = NULL;
    int argc = 0;
    snprintf(buf, sizeof(buf), "%s", line ? line : "");
    for (char *t = strtok_r(buf, " \t\r\n", &save); t && argc < 8; t = strtok_r(NULL, " \t\r\n", &save))
        argv[argc++] = t;
    for (int i = argc; i < 8; i++) argv[i] = NULL;
    const char *cmd = argc ? argv[0] : "";
    int16_t api;
    rd_kafka_resp_err_t err, e = RD_KAFKA_RESP_ERR_NO_ERROR;
    int32_t id;
    long cnt = 1, ms = 0, part;
    if (!strcmp(cmd, "ping") && argc == 1) {
        snprintf(reply, rlen, "ok %d brokers", b->nbrokers);
        return FEAT_OK;
    } else if (!strcmp(cmd, "errors") && (argc == 3 || argc == 4)) {
        if (parse_api(argv[1], &api) || parse_err(argv[2], &err) || (argc == 4 && parse_long(argv[3], 1, 100000, &cnt)))
            goto usage;
        for (long i = 0; i < cnt; i++) rd_kafka_mock_push_request_errors_array(b->mc, api, 1, &err);
    } else if (!strcmp(cmd, "broker-errors") && (argc == 5 || argc == 6)) {
        if (parse_broker(b, argv[1], &id) || id < 0 || parse_api(argv[2], &api) || parse_err(argv[3], &err) ||
            parse_long(argv[4], 0, 600000, &ms) || (argc == 6 && parse_long(argv[5], 1, 100000, &cnt)))
            goto usage;
        for (long i = 0; i < cnt && !e; i++)
            e = rd_kafka_mock_broker_push_request_error_rtts(b->mc, id, api, 1, err, (int)ms);
    } else if (!strcmp(cmd, "clear") && argc == 2) {
        if (parse_api(argv[1], &api)) goto usage;
        rd_kafka_mock_clear_request_errors(b->mc, api);
    } else if ((!strcmp(cmd, "down") || !strcmp(cmd, "up")) && argc == 2) {
        if (parse_broker(b, argv[1], &id)) goto usage;
        e = each_broker(b, id, 0, cmd[0] == 'd' ? do_down : do_up);
    } else if (!strcmp(cmd, "rtt") && argc == 3) {
        if (parse_broker(b, argv[1], &id) || parse_long(argv[2], 0, 600000, &ms)) goto usage;
        e = each_broker(b, id, (int)ms, do_rtt);
    } else if (!strcmp(cmd, "leader") && argc == 4) {
        if (parse_long(argv[2], 0, 1 << 20, &part)) goto usage;
        if (strcmp(argv[3], "-1") && (parse_broker(b, argv[3], &id) || id < 0)) goto usage;
        if (!strcmp(argv[3], "-1")) id = -1;
        e = rd_kafka_mock_partition_set_leader(b->mc, argv[1], (int32_t)part, id);
    } else if (!strcmp(cmd, "coordinator") && argc == 4) {
        if ((strcmp(argv[1], "group") && strcmp(argv[1], "transaction")) || parse_broker(b, argv[3], &id) || id < 0)
            goto usage;
        e = rd_kafka_mock_coordinator_set(b->mc, argv[1], argv[2], id);
    } else {
        goto usage;
    }
    if (e) {
        snprintf(reply, rlen, "error: %s: %s", cmd, rd_kafka_err2str(e));
        return FEAT_ERR_INVALID;
    }
    snprintf(reply, rlen, "ok");
    feat_log(FEAT_LOG_WARN, "broker", "fault: %s", line);
    return FEAT_OK;
usage:
    snprintf(reply, rlen, "error: bad command \"%.200s\" (see featd-broker --help)", line ? line : "");
    return FEAT_ERR_INVALID;
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

/* Reads what a client sent (control thread) and answers each complete line; closes the
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
        if (send(c->fd, reply, rl, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)rl) { /* a slow or gone reader: drop it */
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

/* Waits up to ms for control traffic and handles it (control thread). */
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

static void *ctl_run(void *arg) {
    feat_broker_t *b = arg;
    ctl_client_t cl[CTL_MAX];
    for (int i = 0; i < CTL_MAX; i++) cl[i].fd = -1;
    while (!atomic_load(&b->ctl_stop)) ctl_poll(b, b->ctl_fd, cl, 50);
    for (int i = 0; i < CTL_MAX; i++)
        if (cl[i].fd >= 0) close(cl[i].fd);
    return NULL;
}

feat_err_t feat_broker_control_start(feat_broker_t *b, const char *path, char *errstr, size_t errlen) {
    if (b->ctl_started) return FEAT_OK;
    b->ctl_fd = ctl_listen(path);
    b->ctl_path = strdup(path);
    if (b->ctl_fd < 0) {
        snprintf(errstr, errlen, "broker: cannot open the control port or write %s", path);
        return FEAT_ERR_IO;
    }
    if (feat_worker_start(&b->ctl_thr, "broker:ctl", ctl_run, b) != FEAT_OK) {
        close(b->ctl_fd);
        b->ctl_fd = -1;
        snprintf(errstr, errlen, "broker: cannot start the control thread");
        return FEAT_ERR_NOMEM;
    }
    b->ctl_started = 1;
    feat_log(FEAT_LOG_WARN, "broker", "fault-injection control port open (address in %s): for tests only", path);
    return FEAT_OK;
}

void feat_broker_destroy(feat_broker_t *b) {
    if (!b) return;
    if (b->ctl_started) {
        atomic_store(&b->ctl_stop, 1);
        feat_worker_join(b->ctl_thr);
        close(b->ctl_fd);
        if (b->ctl_path) unlink(b->ctl_path);
    }
    free(b->ctl_path);
    if (b->mc) rd_kafka_mock_cluster_destroy(b->mc);
    if (b->rk) rd_kafka_destroy(b->rk);
    free(b->bootstraps);
    free(b);
}

feat_err_t feat_write_file_atomic(const char *path, const char *data, size_t len) {
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
