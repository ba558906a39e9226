/* admin/http.c — see http.h. */
#include "admin/http.h"
#include "admin/alerts.h"
#include "serve/auth.h"
#include "serve/cache.h"
#include "serve/status.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/utf8.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct feat_http {
    feat_serve_t *sv;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    int port;
    feat_metric_t *requests;
};

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype, const char *body,
                  size_t len) {
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *b = evbuffer_new();
    if (b && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, reason, b);
    if (b) evbuffer_free(b);
}

static void answer(feat_http_reply_t *out, int code, const char *reason, const char *ctype) {
    out->code = code;
    out->reason = reason;
    out->ctype = ctype;
}

static void answer_text(feat_http_reply_t *out, int code, const char *reason, const char *text) {
    answer(out, code, reason, "text/plain");
    feat_buf_puts(&out->body, text);
}

static void answer_json_error(feat_http_reply_t *out, int code, const char *reason, const char *msg) {
    answer(out, code, reason, "application/json");
    feat_buf_reset(&out->body);
    feat_buf_puts(&out->body, "{\"error\":");
    feat_buf_json_str(&out->body, msg, strlen(msg));
    feat_buf_puts(&out->body, "}\n");
}

void featd_status_json(feat_serve_t *sv, feat_buf_t *b) {
    feat_arena_t a;
    feat_arena_init(&a, 4096);
    feat_daemon_status_t s;
    if (feat_status_of_serve(sv, &a, &s) == FEAT_OK) feat_status_json_of(&s, b);
    else b->oom = 1;
    feat_arena_free(&a);
}

typedef struct drift_json_ctx {
    feat_buf_t *b;
    int n;
} drift_json_ctx_t;

static void drift_json_entry(void *arg, const feat_drift_entry_t *e) {
    drift_json_ctx_t *dc = arg;
    if (dc->n++) feat_buf_putc(dc->b, ',');
    feat_drift_entry_json(e, dc->b);
}

void feat_http_answer(feat_serve_t *sv, int method, const char *path, const char *query, feat_http_reply_t *out) {
    memset(out, 0, sizeof(*out));
    feat_buf_t *b = &out->body;
    if (method != FEAT_HTTP_GET && method != FEAT_HTTP_HEAD) {
        out->allow = "GET, HEAD";
        answer_json_error(out, 405, "Method Not Allowed", "only GET and HEAD are served here");
        return;
    }
    if (!path || !*path) path = "/";
    if (!strcmp(path, "/metrics")) {
        feat_metrics_render(sv->metrics, b);
        if (b->oom) answer_json_error(out, 500, "Internal Server Error", "out of memory");
        else answer(out, 200, "OK", "text/plain; version=0.0.4; charset=utf-8");
    } else if (!strcmp(path, "/healthz")) {
        if (!feat_ingest_failed(sv->ingest)) answer_text(out, 200, "OK", "ok\n");
        else answer_text(out, 503, "Service Unavailable", "ingest stopped\n");
    } else if (!strcmp(path, "/readyz")) {
        if (feat_serve_ready(sv)) answer_text(out, 200, "OK", "ready\n");
        else answer_text(out, 503, "Service Unavailable", "not ready\n");
    } else if (!strcmp(path, "/v1/status")) {
        featd_status_json(sv, b);
        answer(out, 200, "OK", "application/json");
    } else if (!strcmp(path, "/v1/drift") || !strcmp(path, "/drift")) {
        if (!sv->drift) {
            answer_json_error(out, 404, "Not Found", "drift monitoring is off (drift.enabled = false)");
        } else if (!strcmp(path, "/drift")) {
            feat_drift_page(sv->drift, FEATD_VERSION, b);
            answer(out, 200, "OK", "text/html; charset=utf-8");
        } else {
            struct evkeyvalq q;
            memset(&q, 0, sizeof(q));
            if (query) evhttp_parse_query_str(query, &q);
            const char *table = query ? evhttp_find_header(&q, "table") : NULL;
            const char *feature = query ? evhttp_find_header(&q, "feature") : NULL;
            /* names are UTF-8; say which parameter is not, without echoing its bytes */
            const char *bad = table && !feat_utf8_valid(table, strlen(table))       ? "table"
                              : feature && !feat_utf8_valid(feature, strlen(feature)) ? "feature"
                                                                                    : NULL;
            if (bad) {
                char msg[96];
                snprintf(msg, sizeof(msg), "query parameter %s is not valid UTF-8", bad);
                answer_json_error(out, 400, "Bad Request", msg);
            } else {
                drift_json_ctx_t dc = {b, 0};
                feat_buf_puts(b, "{\"features\":[");
                feat_drift_report(sv->drift, table, feature, drift_json_entry, &dc);
                feat_buf_puts(b, "]}\n");
                answer(out, 200, "OK", "application/json");
            }
            if (query) evhttp_clear_headers(&q);
        }
    } else {
        answer_json_error(out, 404, "Not Found", "no such page; try /metrics, /healthz, /readyz, /v1/status, /v1/drift, /drift");
    }
    if (b->oom) answer_json_error(out, 500, "Internal Server Error", "out of memory");
}

/* With [auth] token files: /healthz and /readyz stay open (probes carry no
 * token), every other page needs a read token, and any method but GET and
 * HEAD (a write) an admin token.  Refuses with 401 (no or unknown token,
 * WWW-Authenticate: Bearer) or 403 and returns 0; 1 = go on. */
static int http_authorized(feat_http_t *h, struct evhttp_request *req, int method, const char *path) {
    int write = method != FEAT_HTTP_GET && method != FEAT_HTTP_HEAD;
    if (!write && path && (!strcmp(path, "/healthz") || !strcmp(path, "/readyz"))) return 1;
    const char *hv = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    size_t len = 0;
    const char *tok = feat_auth_bearer(hv, &len);
    feat_auth_level_t l = tok ? feat_auth_check(h->sv->auth, tok, len) : FEAT_AUTH_NONE;
    if (l == FEAT_AUTH_ADMIN || (l == FEAT_AUTH_READ && !write)) return 1;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    feat_http_reply_t r;
    memset(&r, 0, sizeof(r));
    if (l == FEAT_AUTH_NONE) {
        evhttp_add_header(oh, "WWW-Authenticate", tok ? "Bearer realm=\"featd\", error=\"invalid_token\""
                                                      : "Bearer realm=\"featd\"");
        answer_json_error(&r, 401, "Unauthorized",
                          tok ? "unknown bearer token" : "send \"Authorization: Bearer TOKEN\" (auth.read_tokens_file)");
    } else {
        evhttp_add_header(oh, "WWW-Authenticate", "Bearer realm=\"featd\", error=\"insufficient_scope\"");
        answer_json_error(&r, 403, "Forbidden", "this needs an admin token (auth.admin_tokens_file)");
    }
    reply(req, r.code, r.reason, r.ctype, r.body.data ? r.body.data : "", r.body.len);
    feat_buf_free(&r.body);
    return 0;
}

static void handle(struct evhttp_request *req, void *arg) {
    feat_http_t *h = arg;
    feat_metric_add(h->requests, 1);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int method = cmd == EVHTTP_REQ_GET ? FEAT_HTTP_GET : cmd == EVHTTP_REQ_HEAD ? FEAT_HTTP_HEAD : FEAT_HTTP_OTHER;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    if (h->sv->auth && !http_authorized(h, req, method, uri ? evhttp_uri_get_path(uri) : NULL)) return;
    feat_http_reply_t r;
    feat_http_answer(h->sv, method, uri ? evhttp_uri_get_path(uri) : NULL, uri ? evhttp_uri_get_query(uri) : NULL, &r);
    if (r.allow) evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", r.allow);
    reply(req, r.code, r.reason, r.ctype, r.body.data ? r.body.data : "", r.body.len);
    feat_buf_free(&r.body);
}

static void collect(feat_metrics_emit_t *em, void *arg) {
    feat_serve_t *sv = arg;
    feat_metrics_emit_family(em, "featd_store_bytes", "RocksDB size on disk plus memtables.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, (double)feat_store_size_bytes(sv->st));
    feat_store_memory_t mem;
    feat_store_memory(sv->st, &mem);
    feat_metrics_emit_family(em, "featd_store_memory_bytes",
                             "Memory RocksDB holds: memtables, block cache (pinned part included), table readers.",
                             FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, "kind=\"memtables\"", (double)mem.memtables);
    feat_metrics_emit_sample(em, "kind=\"block_cache\"", (double)mem.block_cache);
    feat_metrics_emit_sample(em, "kind=\"block_cache_pinned\"", (double)mem.block_cache_pinned);
    feat_metrics_emit_sample(em, "kind=\"table_readers\"", (double)mem.table_readers);
    feat_metrics_emit_family(em, "featd_store_write_delayed_bytes_per_second",
                             "RocksDB's write-stall throttle: the rate writes are held to; 0 = not delayed.",
                             FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, (double)mem.delayed_write_rate);
    feat_metrics_emit_family(em, "featd_store_write_stopped",
                             "1 while RocksDB stops writes until compaction or flush catches up.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, (double)mem.write_stopped);
    feat_metrics_emit_family(em, "featd_uptime_seconds", "Seconds since featd started.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, (double)(feat_now_ms() - sv->started_ms) / 1000.0);
    feat_metrics_emit_family(em, "featd_ready", "1 when the store is open and partitions are assigned.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, feat_serve_ready(sv));
    feat_metrics_emit_family(em, "featd_build_info", "Constant 1, labelled with the version.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, "version=\"" FEATD_VERSION "\"", 1);
}

feat_http_t *feat_http_new(const feat_http_conf_t *conf, struct event_base *base, feat_serve_t *serve,
                           char *errstr, size_t errlen) {
    const char *listen = conf->listen;
    feat_http_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(errstr, errlen, "admin: out of memory");
        return NULL;
    }
    h->sv = serve;
    char host[256];
    const char *colon = strrchr(listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    if (!colon || hl >= sizeof(host)) {
        snprintf(errstr, errlen, "admin.listen: \"%s\" is not host:port", listen);
        free(h);
        return NULL;
    }
    memcpy(host, listen, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    int port = atoi(colon + 1);
    h->http = evhttp_new(base);
    if (!h->http) {
        snprintf(errstr, errlen, "admin: cannot create the HTTP server");
        free(h);
        return NULL;
    }
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(h->http, 16384);
    evhttp_set_max_body_size(h->http, 65536);
    evhttp_set_timeout(h->http, 30);
    evhttp_set_gencb(h->http, handle, h);
    h->sock = evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port);
    if (!h->sock) {
        snprintf(errstr, errlen, "admin.listen: cannot listen on %s", listen);
        evhttp_free(h->http);
        free(h);
        return NULL;
    }
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof(ss);
    evutil_socket_t s = evhttp_bound_socket_get_fd(h->sock);
    if (getsockname(s, (struct sockaddr *)&ss, &sl) == 0)
        h->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    h->requests = feat_counter(serve->metrics, "featd_admin_http_requests_total", "Admin HTTP requests.", NULL);
    feat_metrics_add_collector(serve->metrics, collect, serve);
    feat_log(FEAT_LOG_INFO, "admin", "admin HTTP on %s (port %d): /metrics /healthz /readyz /v1/status", listen, h->port);
    return h;
}

int feat_http_port(const feat_http_t *h) { return h->port; }

void feat_http_destroy(feat_http_t *h) {
    if (!h) return;
    feat_metrics_remove_collector(h->sv->metrics, collect, h->sv);
    evhttp_free(h->http);
    free(h);
}
