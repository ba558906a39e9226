/*
 * admin/http.h — featd's admin HTTP endpoint (libevent evhttp) on the main
 * event loop: /metrics (Prometheus text format), /healthz, /readyz and
 * /v1/status (JSON).  Later issues add /v1/drift and the drift page.
 */
#ifndef FEAT_ADMIN_HTTP_H
#define FEAT_ADMIN_HTTP_H

#include <stddef.h>

#include "common/buf.h"
#include "daemon/daemon.h"

struct event_base;
typedef struct feat_http feat_http_t;

/* Listens on listen ("host:port"; port 0 picks one).  fd borrowed. */
feat_http_t *feat_http_new(struct event_base *base, featd_t *fd, const char *listen, char *errstr, size_t errlen);
int feat_http_port(const feat_http_t *h);
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
void feat_http_answer(featd_t *fd, int method, const char *path, const char *query, feat_http_reply_t *out);

/* Writes /v1/status as JSON (shared with featctl --json via the gRPC Status). */
void featd_status_json(featd_t *fd, feat_buf_t *out);

#endif
