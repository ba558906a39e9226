/*
 * rpc/rpc.h — the boundary between featd's handlers and the gRPC server.
 *
 * Handlers see bytes in, bytes out and feat_err_t; they never see gRPC types.
 * rpc/server.c (the only file that includes gRPC's server headers)
 * registers every method, arms calls on its completion-queue threads, runs
 * handlers on those threads and maps feat_err_t to a gRPC status in one place
 * (feat_rpc_status()).
 */
#ifndef FEAT_RPC_RPC_H
#define FEAT_RPC_RPC_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/metrics.h"

/* What a handler gets for one call. */
typedef struct feat_rpc_call {
    void *app;                  /* the server's app pointer */
    feat_arena_t *arena;        /* per-call memory, reset after the call */
    const uint8_t *req;         /* request message bytes */
    size_t req_len;
    int64_t deadline_ms;        /* wall-clock deadline (ms since epoch); INT64_MAX = none */
    const char *token;          /* "authorization: Bearer X" value X, or NULL */
    char msg[256];              /* error message for the client (set with the error) */
} feat_rpc_call_t;

/* Sets the client's message (printf-style) and evaluates to code, a
 * feat_err_t: `return FEAT_RPC_ERR(call, FEAT_ERR_INVALID, "bad %s", x);`. */
#define FEAT_RPC_ERR(call, code, ...) (snprintf((call)->msg, sizeof((call)->msg), __VA_ARGS__), (feat_err_t)(code))

/* Unary: fill *resp with the response message; return FEAT_OK or an error
 * with call->msg set (feat_rpc_status() turns it into the call's status). */
typedef feat_err_t feat_unary_fn(feat_rpc_call_t *call, feat_buf_t *resp);

/* Server streaming: begin validates and returns state (or NULL with *err and
 * call->msg); next writes one message into *out and sets *more = 1, or sets
 * *more = 0 at the end (nothing written), and returns FEAT_OK, or an error
 * with call->msg (the stream ends with that status); end frees the state. */
typedef struct feat_stream_ops {
    void *(*begin)(feat_rpc_call_t *call, feat_err_t *err);
    feat_err_t (*next)(feat_rpc_call_t *call, void *state, feat_buf_t *out, int *more);
    void (*end)(void *state);
} feat_stream_ops_t;

typedef enum feat_rpc_access {
    FEAT_RPC_READ = 0,          /* lookups, predictions, status: read-only tokens */
    FEAT_RPC_ADMIN = 1          /* retrain, promote, rollback, other writes */
} feat_rpc_access_t;

typedef struct feat_method {
    const char *path;           /* "/featd.v1.FeatureService/GetOnlineFeatures" */
    const char *name;           /* metric label, "GetOnlineFeatures" */
    feat_unary_fn *unary;       /* exactly one of unary / stream */
    const feat_stream_ops_t *stream;
    feat_rpc_access_t access;
} feat_method_t;

typedef struct feat_server feat_server_t;

typedef struct feat_server_conf {
    const char *listen;         /* host:port; port 0 picks one (see feat_server_port) */
    int threads;                /* completion-queue threads */
    int calls_per_method;       /* calls armed per method per thread */
    int64_t max_message;        /* bytes, both directions */
    int64_t busy_poll_us;       /* poll without sleeping this long after each event; 0 = never */
    feat_metrics_t *metrics;    /* NULL = the process-wide registry */
    /* authorization hook (NULL = allow all): FEAT_OK, FEAT_ERR_UNAUTHENTICATED or FEAT_ERR_PERMISSION.
     * Runs on the worker thread for every call, before the handler: keep it cheap, no allocation. */
    feat_err_t (*authorize)(void *app, const feat_method_t *m, const char *token, char *msg, size_t msglen);
    /* TLS (rpc/tls.h; NULL = plain text): cert and key PEM required; ca set = mutual TLS, clients must
     * present a certificate signed by it.  Borrowed only during feat_server_new (gRPC copies it). */
    const struct feat_tls_pem *tls;
    int64_t shutdown_grace_ms;  /* serve.shutdown_grace: how long feat_server_stop lets calls in flight finish */
} feat_server_conf_t;

/* Binds conf->listen (conf copied; its strings borrowed during the call).
 * methods and app are borrowed for the server's life: app is every call's
 * call->app.  NULL with errstr on failure ("serve.listen: cannot listen on
 * ..."). */
feat_server_t *feat_server_new(const feat_server_conf_t *conf, const feat_method_t *methods, size_t nmethods,
                               void *app, char *errstr, size_t errlen);
/* Starts the completion-queue threads.  FEAT_OK or FEAT_ERR_NOMEM with errstr. */
feat_err_t feat_server_start(feat_server_t *s, char *errstr, size_t errlen);
/* The port it listens on (the one picked when conf->listen's port was 0). */
int feat_server_port(const feat_server_t *s);
/* New calls are refused (UNAVAILABLE) from now on; calls in flight finish,
 * or are cancelled after conf->shutdown_grace_ms.  Joins the threads.
 * Idempotent; NULL is fine. */
void feat_server_stop(feat_server_t *s);
void feat_server_destroy(feat_server_t *s); /* stops first; NULL is fine */

/* The one mapping from feat_err_t to a gRPC status code: the int is the
 * numeric grpc_status_code of grpc/status.h (0 = OK), not a feat_err_t. */
int feat_rpc_status(feat_err_t err);

/* A protobuf-c allocator over an arena (free is a no-op). */
struct ProtobufCAllocator;
void feat_rpc_pb_allocator(feat_arena_t *a, struct ProtobufCAllocator *out);

#endif
