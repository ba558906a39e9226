/*
 * admin/http.h — featd's admin HTTP endpoint (libevent evhttp) on the main
 * event loop: /metrics (Prometheus text format), /healthz, /readyz,
 * /v1/status (JSON), /v1/drift (the drift report as JSON, ?table= and
 * ?feature= to narrow it) and /drift (the drift page, HTML).  With [auth]
 * tokens every page but /healthz and /readyz needs a bearer token.
 */
#ifndef FEAT_ADMIN_HTTP_H
#define FEAT_ADMIN_HTTP_H

#include <stddef.h>

#include "common/buf.h"
#include "serve/serve.h"

struct event_base;
typedef struct feat_http feat_http_t;

typedef struct feat_http_conf {
    const char *listen;         /* admin.listen: "host:port"; port 0 picks one (feat_http_port) */
} feat_http_conf_t;

/* Listens on conf->listen (read during the call only).  base (the loop that
 * serves) and serve (what the pages show; its metrics registry is the one
 * /metrics renders, and the server adds featd_admin_http_requests_total and
 * a collector to it) are borrowed for the server's life.  NULL with errstr
 * on failure ("admin.listen: cannot listen on ...").  No thread: it serves
 * while the loop runs; nothing to start or stop. */
feat_http_t *feat_http_new(const feat_http_conf_t *conf, struct event_base *base, feat_serve_t *serve,
                           char *errstr, size_t errlen);
/* The port it listens on (the one picked when conf->listen's port was 0). */
int feat_http_port(const feat_http_t *h);
/* Call from the loop's thread (or after it stopped). */
void feat_http_destroy(feat_http_t *h); /* NULL is fine */

/* One answer of the admin endpoint, built without a socket. */
typedef struct feat_http_reply {
    int code;                   /* HTTP status: 200, 400, 404, 405, 500, 503 */
    const char *reason;         /* static strings */
    const char *ctype;
    const char *allow;          /* "Allow" header value, or NULL */
    feat_buf_t body;            /* owned by the caller: feat_buf_free() */
} feat_http_reply_t;

enum { FEAT_HTTP_GET = 0, FEAT_HTTP_HEAD = 1, FEAT_HTTP_OTHER = 2 };

/* Routes one request: method FEAT_HTTP_*, path (NULL = "/") and the raw
 * query string (NULL = none), as libevent parsed them from the request line.
 * Fills *out (body even for HEAD; the server drops it).  A query parameter
 * that is not valid UTF-8 once percent-decoded is 400, naming the parameter.  Used by the server's
 * callback and by tests/fuzz/fuzz_admin_http.c. */
void feat_http_answer(feat_serve_t *sv, int method, const char *path, const char *query, feat_http_reply_t *out);

/* Writes /v1/status as JSON (shared with featctl --json via the gRPC Status). */
void featd_status_json(feat_serve_t *sv, feat_buf_t *out);

#endif
