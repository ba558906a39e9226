/*
 * serve/http.h — featd's admin HTTP endpoint (libevent evhttp) on the main
 * event loop: /metrics (Prometheus text format), /healthz, /readyz and
 * /v1/status (JSON).  Later issues add /v1/drift and the drift page.
 */
#ifndef FEAT_SERVE_HTTP_H
#define FEAT_SERVE_HTTP_H

#include <stddef.h>

#include "serve/daemon.h"

struct event_base;
typedef struct feat_http feat_http_t;

/* Listens on listen ("host:port"; port 0 picks one).  fd borrowed. */
feat_http_t *feat_http_new(struct event_base *base, featd_t *fd, const char *listen, char *errstr, size_t errlen);
int feat_http_port(const feat_http_t *h);
void feat_http_destroy(feat_http_t *h); /* NULL is fine */

/* Writes /v1/status as JSON (shared with featctl --json via the gRPC Status). */
void featd_status_json(featd_t *fd, feat_buf_t *out);

#endif
