/*
 * serve/forward.h — calls to other featd instances of a cluster
 * (cluster.mode = partitioned): a pool of blocking gRPC clients per peer
 * address, shared by the gRPC workers.
 *
 * A worker takes an idle client of the peer (or makes one), makes one call
 * with the caller's bearer token and a deadline no later than the caller's,
 * and puts the client back.  Between peers the transport is the server's:
 * plain text, or TLS verified with serve.tls_client_ca and, when that is set
 * (mutual TLS), the server's own certificate as the client's.
 */
#ifndef FEAT_SERVE_FORWARD_H
#define FEAT_SERVE_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/metrics.h"
#include "rpc/client.h"
#include "rpc/tls.h"

typedef struct feat_forward feat_forward_t;

/* tls: the server's PEMs (copied), NULL = plain text.  timeout_ms: the
 * longest wait for one call (cluster.forward_timeout). */
feat_forward_t *feat_forward_new(const feat_tls_pem_t *tls, int64_t timeout_ms, feat_metrics_t *metrics);
void feat_forward_destroy(feat_forward_t *f); /* NULL is fine */

/* One unary call to the peer at address: the gRPC status code (0 = OK) with
 * the reply in *resp, else msg says why.  deadline_ms: the caller's
 * (INT64_MAX = none); token: forwarded as is (NULL = none).  Thread-safe. */
int feat_forward_call(feat_forward_t *f, const char *address, const char *method, const char *token,
                      int64_t deadline_ms, const void *req, size_t len, feat_buf_t *resp, char *msg, size_t msglen);

/* One of several unary calls made at once (feat_forward_calls). */
typedef struct feat_forward_req {
    const char *address;        /* the peer */
    const char *method;
    const void *req;
    size_t len;
    feat_buf_t resp;            /* the reply; the caller frees it */
    int code;                   /* the gRPC status code (0 = OK) ... */
    char msg[256];              /* ... and why, when not OK */
    feat_client_t *client;      /* feat_forward_calls' own */
    int peer;
    uint64_t started_ns;
} feat_forward_req_t;

/* Makes the n calls of reqs at once (a client of each peer sends its
 * request before any reply is awaited), with the caller's token and
 * deadline as feat_forward_call does: they take as long as the slowest,
 * not as their sum.  Fills each one's resp, code and msg.  Thread-safe. */
void feat_forward_calls(feat_forward_t *f, feat_forward_req_t *reqs, size_t n, const char *token,
                        int64_t deadline_ms);

/* The same for a server-streaming method: fn gets each message (rpc/client.h). */
int feat_forward_stream(feat_forward_t *f, const char *address, const char *method, const char *token,
                        int64_t deadline_ms, const void *req, size_t len, feat_client_msg_fn *fn, void *arg,
                        char *msg, size_t msglen);

/* A server-streaming call this instance makes on its own behalf (the
 * trainer gathering a training set): waits up to wait_ms, not
 * cluster.forward_timeout. */
int feat_forward_fetch(feat_forward_t *f, const char *address, const char *method, const char *token, int64_t wait_ms,
                       const void *req, size_t len, feat_client_msg_fn *fn, void *arg, char *msg, size_t msglen);

#endif
