/*
 * admin/api.h — featd's gRPC methods over HTTP/JSON, on a listener of its
 * own (http.listen), for services without gRPC stubs.
 *
 *   POST /v1/FeatureService/GetOnlineFeatures      body: the request as JSON
 *   POST /v1/FeatureService/Predict                 (proto/pbjson.h's mapping)
 *   POST /v1/AdminService/ListModels ...            every method of both services
 *
 * A unary method answers its response message as JSON; a streaming one
 * (GetHistoricalFeatures, ExportTrainingSet) a JSON array of its messages.
 * The same handlers as gRPC run, with the same tokens (Authorization:
 * Bearer, checked against the method's access level), limits and per-value
 * statuses.  An error is {"error": "...", "code": "NOT_FOUND"} with the HTTP
 * status that matches the gRPC code (400 INVALID_ARGUMENT and
 * FAILED_PRECONDITION, 401, 403, 404, 409 ALREADY_EXISTS, 413 a body over
 * http.max_body, 429 RESOURCE_EXHAUSTED, 500, 501, 503 UNAVAILABLE, 504
 * DEADLINE_EXCEEDED).  HTTPS when serve.tls_cert is set, with the same
 * certificate, key and (serve.tls_client_ca) client certificates as gRPC;
 * plain HTTP otherwise (featd warns when the listener is not loopback).
 *
 * Threads: http.threads event loops accept on the one socket; a request is
 * read, handled and answered on one of them, so a slow call (a forward in a
 * cluster, a Push waiting for the broker) holds only its own thread.
 */
#ifndef FEAT_ADMIN_API_H
#define FEAT_ADMIN_API_H

#include <stddef.h>
#include <stdint.h>

#include "serve/serve.h"

typedef struct feat_api feat_api_t;

typedef struct feat_api_conf {
    const char *listen;      /* host:port */
    int threads;             /* 1..64 */
    int64_t max_body;        /* bytes of a request body */
    struct feat_tls_server *tls; /* rpc/tls.h: HTTPS with gRPC's certificate (and client CA); NULL: plain HTTP */
} feat_api_conf_t;

/* Listens and starts the threads.  NULL with errstr ("http.listen: ...") on failure. */
feat_api_t *feat_api_new(const feat_api_conf_t *conf, feat_serve_t *serve, char *errstr, size_t errlen);
int feat_api_port(const feat_api_t *a);
/* Stops the loops (requests in progress finish first), joins.  NULL is fine. */
void feat_api_destroy(feat_api_t *a);

#endif
