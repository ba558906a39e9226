/*
 * bench_rpc — latency and throughput of featd's RPC path against two floors.
 *
 *   bench_rpc tcp-server PORT                 raw TCP echo (one recv, one send)
 *   bench_rpc tcp-client PORT N [BYTES]       sequential ping-pong, prints latency
 *   bench_rpc echo-server PORT [--featd-server [--threads T] [--busy-poll-us U]]
 *        a gRPC echo on the same gRPC core: by default the textbook shape
 *        (one completion queue, one thread, one call armed at a time); with
 *        --featd-server, featd's own server code (serve/grpc_server.c)
 *   bench_rpc client ADDR WHAT N [--concurrency C] [--entities E] [--features F] [--table T]
 *        [--model M] [--names A,B,...] [--keys K1,K2,...]
 *        WHAT = echo | online | predict: unary calls; prints p50/p90/p99/mean and calls/s
 *        online asks for features f0..f(F-1), or for the names given with --names;
 *        entities e0.. (E of them, spread), or the keys given with --keys
 *
 * Each process pins nothing itself: run it under taskset to pin.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "featd/v1/feature_service.pb-c.h"
#include "rpc/client.h"
#include "rpc/rpc.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

static int cmpu(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *lat, size_t n, double secs, int conc) {
    qsort(lat, n, sizeof(uint64_t), cmpu);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += (double)lat[i];
    printf("%s: n=%zu concurrency=%d p50=%.1fus p90=%.1fus p99=%.1fus mean=%.1fus throughput=%.0f/s\n", what, n, conc,
           lat[n / 2] / 1e3, lat[n * 9 / 10] / 1e3, lat[n * 99 / 100] / 1e3, sum / (double)n / 1e3, (double)n / secs);
    fflush(stdout);
}

/* ---- raw TCP ------------------------------------------------------------------ */

static int tcp_server(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 4)) { perror("bind"); return 1; }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        char buf[65536];
        ssize_t n;
        while ((n = recv(c, buf, sizeof(buf), 0)) > 0)
            if (send(c, buf, (size_t)n, 0) != n) break;
        close(c);
    }
}

static int tcp_client(int port, size_t n, size_t bytes) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof(a))) { perror("connect"); return 1; }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char *buf = calloc(1, bytes);
    uint64_t *lat = malloc(n * sizeof(uint64_t));
    for (size_t i = 0; i < n / 10; i++) { /* warm up */
        send(s, buf, bytes, 0);
        size_t got = 0;
        while (got < bytes) got += (size_t)recv(s, buf, bytes - got, 0);
    }
    uint64_t t0 = feat_mono_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t a0 = feat_mono_ns();
        if (send(s, buf, bytes, 0) != (ssize_t)bytes) return 1;
        size_t got = 0;
        while (got < bytes) {
            ssize_t r = recv(s, buf, bytes - got, 0);
            if (r <= 0) return 1;
            got += (size_t)r;
        }
        lat[i] = feat_mono_ns() - a0;
    }
    report("tcp", lat, n, (double)(feat_mono_ns() - t0) / 1e9, 1);
    return 0;
}

/* ---- textbook gRPC echo ------------------------------------------------------- */

static int echo_plain(int port) {
    grpc_init();
    grpc_server *srv = grpc_server_create(NULL, NULL);
    void *m = grpc_server_register_method(srv, "/bench.Echo/Echo", NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv, cq, NULL);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    grpc_server_credentials *cr = grpc_insecure_server_credentials_create();
    if (!grpc_server_add_http2_port(srv, addr, cr)) return 1;
    grpc_server_credentials_release(cr);
    grpc_server_start(srv);
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        grpc_call *call = NULL;
        gpr_timespec deadline;
        grpc_metadata_array md;
        grpc_metadata_array_init(&md);
        grpc_byte_buffer *payload = NULL;
        grpc_server_request_registered_call(srv, m, &call, &deadline, &md, &payload, cq, cq, (void *)1);
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (!ev.success) break;
        int cancelled = 0;
        grpc_op ops[4];
        memset(ops, 0, sizeof(ops));
        ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
        ops[1].op = GRPC_OP_SEND_MESSAGE;
        ops[1].data.send_message.send_message = payload;
        ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
        ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[3].data.recv_close_on_server.cancelled = &cancelled;
        grpc_call_start_batch(call, ops, 4, (void *)2, NULL);
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        grpc_byte_buffer_destroy(payload);
        grpc_metadata_array_destroy(&md);
        grpc_call_unref(call);
    }
    return 0;
}

/* ---- echo on featd's server ---------------------------------------------------- */

static feat_err_t echo_unary(feat_rpc_call_t *call, feat_buf_t *resp) {
    feat_buf_append(resp, call->req, call->req_len);
    return FEAT_OK;
}

static int echo_featd(int port, int threads, int busy_poll_us) {
    static const feat_method_t methods[] = {{"/bench.Echo/Echo", "Echo", echo_unary, NULL, FEAT_RPC_READ}};
    char addr[64], err[256];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    feat_server_conf_t c = {addr, threads, 16, 4 << 20, busy_poll_us, feat_metrics_new(), NULL, NULL, 0};
    feat_server_t *s = feat_server_new(&c, methods, 1, NULL, err, sizeof(err));
    if (!s || feat_server_start(s, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    for (;;) pause();
}

/* ---- client ----------------------------------------------------------------------- */

typedef struct job {
    const char *addr, *method;
    uint8_t *req;
    size_t req_len;
    size_t n;
    uint64_t *lat;
    int failures;
} job_t;

static void *run_job(void *arg) {
    job_t *j = arg;
    char err[256], msg[256];
    feat_client_t *c = feat_client_new(j->addr, err, sizeof(err));
    feat_buf_t resp = FEAT_BUF_INIT;
    for (size_t i = 0; i < j->n / 10 + 10; i++) /* warm up: connect, caches */
        feat_client_unary(c, j->method, j->req, j->req_len, &resp, 10000, msg, sizeof(msg));
    for (size_t i = 0; i < j->n; i++) {
        uint64_t t0 = feat_mono_ns();
        int rc = feat_client_unary(c, j->method, j->req, j->req_len, &resp, 10000, msg, sizeof(msg));
        j->lat[i] = feat_mono_ns() - t0;
        if (rc) {
            if (!j->failures) fprintf(stderr, "call failed: %s: %s\n", feat_grpc_code_name(rc), msg);
            j->failures++;
        }
    }
    feat_buf_free(&resp);
    feat_client_destroy(c);
    return NULL;
}

static int client(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *addr = argv[0], *what = argv[1];
    size_t n = (size_t)atol(argv[2]);
    int conc = 1, entities = 1, features = 10;
    const char *table = "bench", *model = "m", *names = NULL, *keylist = NULL;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--concurrency") && i + 1 < argc) conc = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--entities") && i + 1 < argc) entities = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--features") && i + 1 < argc) features = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--table") && i + 1 < argc) table = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--names") && i + 1 < argc) names = argv[++i];
        else if (!strcmp(argv[i], "--keys") && i + 1 < argc) keylist = argv[++i];
    }
    if (keylist) { /* --keys overrides --entities */
        entities = 1;
        for (const char *p = keylist; *p; p++) entities += *p == ',';
    }
    if (names) { /* --names overrides --features */
        features = 1;
        for (const char *p = names; *p; p++) features += *p == ',';
    }
    char **keys = calloc((size_t)entities, sizeof(char *));
    for (int e = 0; e < entities; e++) {
        if (keylist) {
            size_t l = strcspn(keylist, ",");
            keys[e] = strndup(keylist, l);
            keylist += l + (keylist[l] == ',');
            continue;
        }
        keys[e] = malloc(24);
        snprintf(keys[e], 24, "e%d", e * 37 % 10000);
    }
    uint8_t *req;
    size_t len;
    const char *method;
    if (!strcmp(what, "echo")) {
        method = "/bench.Echo/Echo";
        len = 64;
        req = calloc(1, len);
    } else if (!strcmp(what, "predict")) {
        method = "/featd.v1.FeatureService/Predict";
        Featd__V1__PredictRequest r = FEATD__V1__PREDICT_REQUEST__INIT;
        r.model = (char *)model;
        r.n_entity_keys = (size_t)entities;
        r.entity_keys = keys;
        len = protobuf_c_message_get_packed_size(&r.base);
        req = malloc(len);
        protobuf_c_message_pack(&r.base, req);
    } else {
        method = "/featd.v1.FeatureService/GetOnlineFeatures";
        Featd__V1__GetOnlineFeaturesRequest r = FEATD__V1__GET_ONLINE_FEATURES_REQUEST__INIT;
        r.table = (char *)table;
        r.n_entity_keys = (size_t)entities;
        r.entity_keys = keys;
        r.n_features = (size_t)features;
        r.features = calloc((size_t)features, sizeof(char *));
        const char *np = names;
        for (int f = 0; f < features; f++) {
            if (np) {
                size_t l = strcspn(np, ",");
                r.features[f] = strndup(np, l);
                np += l + (np[l] == ',');
            } else {
                r.features[f] = malloc(16);
                snprintf(r.features[f], 16, "f%d", f);
            }
        }
        len = protobuf_c_message_get_packed_size(&r.base);
        req = malloc(len);
        protobuf_c_message_pack(&r.base, req);
    }
    job_t *jobs = calloc((size_t)conc, sizeof(job_t));
    pthread_t *th = calloc((size_t)conc, sizeof(pthread_t));
    uint64_t *all = malloc(n * (size_t)conc * sizeof(uint64_t));
    uint64_t t0 = feat_mono_ns();
    for (int i = 0; i < conc; i++) {
        jobs[i] = (job_t){addr, method, req, len, n, all + (size_t)i * n, 0};
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    int failures = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(th[i], NULL);
        failures += jobs[i].failures;
    }
    double secs = (double)(feat_mono_ns() - t0) / 1e9;
    char label[128];
    if (!strcmp(what, "online")) snprintf(label, sizeof(label), "online(%dx%d)", entities, features);
    else if (!strcmp(what, "predict")) snprintf(label, sizeof(label), "predict(%s, %d)", model, entities);
    else snprintf(label, sizeof(label), "%s", what);
    report(label, all, n * (size_t)conc, secs, conc);
    if (failures) {
        fprintf(stderr, "%d calls failed\n", failures);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    feat_log_set_level(FEAT_LOG_WARN);
    if (argc >= 3 && !strcmp(argv[1], "tcp-server")) return tcp_server(atoi(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "tcp-client")) return tcp_client(atoi(argv[2]), (size_t)atol(argv[3]), argc > 4 ? (size_t)atol(argv[4]) : 64);
    if (argc >= 3 && !strcmp(argv[1], "echo-server")) {
        int featd = 0, threads = 1, busy = 0;
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--featd-server")) featd = 1;
            else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
            else if (!strcmp(argv[i], "--busy-poll-us") && i + 1 < argc) busy = atoi(argv[++i]);
        }
        return featd ? echo_featd(atoi(argv[2]), threads, busy) : echo_plain(atoi(argv[2]));
    }
    if (argc >= 2 && !strcmp(argv[1], "client")) return client(argc - 2, argv + 2);
    fprintf(stderr, "usage: see the comment at the top of tests/bench/bench_rpc.c\n");
    return 2;
}
