/*
 * rpc/client.h — a small blocking gRPC client on the C core, for featctl,
 * the benchmarks and tests.  Requests and replies are protobuf bytes.
 *
 * A client owns one channel and one pluck completion queue; one thread at a
 * time.  Calls return the gRPC status code (GRPC_STATUS_OK = 0; INTERNAL when
 * no call could be made), as an int, not a feat_err_t: it is what the server
 * sent, for featctl to show; they copy the status message into msg.
 */
#ifndef FEAT_RPC_CLIENT_H
#define FEAT_RPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

typedef struct feat_client feat_client_t;

/* target: "host:port".  NULL on failure with errstr.  Plain text. */
feat_client_t *feat_client_new(const char *target, char *errstr, size_t errlen);

/* TLS settings of a client: PEM text (serve/tls.h loads and checks files),
 * borrowed only during feat_client_new_tls (gRPC copies them). */
typedef struct feat_client_tls {
    const char *ca_pem;       /* roots that verify the server; NULL = gRPC's default roots */
    const char *cert_pem;     /* client certificate chain for mutual TLS; NULL = none */
    const char *key_pem;      /* its private key (with cert_pem) */
    const char *server_name;  /* name checked against the server's certificate; NULL = target's host */
} feat_client_tls_t;

/* As feat_client_new; tls NULL = plain text.  A failed handshake shows up
 * as UNAVAILABLE on the first call, not here. */
feat_client_t *feat_client_new_tls(const char *target, const feat_client_tls_t *tls, char *errstr, size_t errlen);
/* Sends "authorization: Bearer <token>" with every call (NULL: none). */
void feat_client_set_token(feat_client_t *c, const char *token);
void feat_client_destroy(feat_client_t *c); /* NULL is fine */

/* One request, one reply into resp; the gRPC status code (see above). */
int feat_client_unary(feat_client_t *c, const char *method, const void *req, size_t len, feat_buf_t *resp,
                      int64_t timeout_ms, char *msg, size_t msglen);

/* feat_client_unary in two halves, so that one thread can have calls on
 * several clients in flight at once: begin sends the request and returns;
 * finish waits for the reply and returns what feat_client_unary would.
 * One call in flight per client; every begin needs its finish.  The calls
 * progress together because gRPC's epoll1 engine (Linux's default) lets
 * any poller drive every connection; under GRPC_POLL_STRATEGY=poll, or on
 * a channel still connecting, a call may wait until its own finish. */
void feat_client_unary_begin(feat_client_t *c, const char *method, const void *req, size_t len, int64_t timeout_ms);
int feat_client_unary_finish(feat_client_t *c, feat_buf_t *resp, char *msg, size_t msglen);

/* Server streaming: fn is called per message (return non-zero to stop). */
typedef int feat_client_msg_fn(void *arg, const uint8_t *data, size_t len);
int feat_client_stream(feat_client_t *c, const char *method, const void *req, size_t len,
                       feat_client_msg_fn *fn, void *arg, int64_t timeout_ms, char *msg, size_t msglen);

/* "OK", "INVALID_ARGUMENT", ... */
const char *feat_grpc_code_name(int code);

#endif
