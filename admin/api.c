/* admin/api.c — see api.h. */
#include "admin/api.h"
#include "admin/loop.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/arena.h"
#include "common/clock.h"
#include "common/log.h"
#include "featd/v1/admin.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"
#include "proto/pbjson.h"
#include "rpc/rpc.h"
#include "rpc/tls.h"
#include "serve/auth.h"

#define CALL_TIMEOUT_MS 30000
#define MAX_ANSWER (64u << 20)    /* bytes of JSON one streaming call may answer */

typedef struct api_loop {
    feat_loop_t ev;              /* loop.h: its base, thread and stop event */
    struct feat_api *api;
    struct evhttp *http;
} api_loop_t;

struct feat_api {
    feat_serve_t *sv;
    int fd, port, n;
    api_loop_t *loops;
    feat_metric_t *m_requests, *m_errors;
};

/* gRPC's code names and the HTTP status each maps to (grpc-gateway's table). */
static const struct { const char *name; int http; } CODES[] = {
    {"OK", 200}, {"CANCELLED", 499}, {"UNKNOWN", 500}, {"INVALID_ARGUMENT", 400}, {"DEADLINE_EXCEEDED", 504},
    {"NOT_FOUND", 404}, {"ALREADY_EXISTS", 409}, {"PERMISSION_DENIED", 403}, {"RESOURCE_EXHAUSTED", 429},
    {"FAILED_PRECONDITION", 400}, {"ABORTED", 409}, {"OUT_OF_RANGE", 400}, {"UNIMPLEMENTED", 501},
    {"INTERNAL", 500}, {"UNAVAILABLE", 503}, {"DATA_LOSS", 500}, {"UNAUTHENTICATED", 401},
};

static const char *reason_of(int http) {
    switch (http) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 429: return "Too Many Requests";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return http >= 500 ? "Internal Server Error" : "Error";
    }
}

static void send_json(struct evhttp_request *req, int code, const char *body, size_t len) {
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *b = evbuffer_new();
    if (b) evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, reason_of(code), b);
    if (b) evbuffer_free(b);
}

/* An error with gRPC code grpc (an index into CODES) and msg. */
static void send_error(feat_api_t *a, struct evhttp_request *req, int grpc, const char *msg) {
    feat_buf_t b = FEAT_BUF_INIT;
    feat_buf_puts(&b, "{\"error\":");
    feat_buf_json_str(&b, msg, strlen(msg));
    feat_buf_printf(&b, ",\"code\":\"%s\"}\n", CODES[grpc].name);
    if (grpc == 16) evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer realm=\"featd\"");
    send_json(req, b.oom ? 500 : CODES[grpc].http, b.data ? b.data : "", b.len);
    feat_buf_free(&b);
    feat_metric_add(a->m_errors, 1);
}

/* The method behind path "/v1/SERVICE/METHOD" and its messages' descriptors. */
static const feat_method_t *route(const char *path, const ProtobufCMessageDescriptor **in,
                                  const ProtobufCMessageDescriptor **out) {
    static const ProtobufCServiceDescriptor *const services[] = {&featd__v1__feature_service__descriptor,
                                                                 &featd__v1__admin_service__descriptor};
    if (strncmp(path, "/v1/", 4)) return NULL;
    const char *svc = path + 4, *slash = strchr(svc, '/');
    if (!slash) return NULL;
    for (size_t s = 0; s < 2; s++) {
        const ProtobufCServiceDescriptor *sd = services[s];
        if (strlen(sd->short_name) != (size_t)(slash - svc) || strncmp(sd->short_name, svc, (size_t)(slash - svc)))
            continue;
        const ProtobufCMethodDescriptor *md = protobuf_c_service_descriptor_get_method_by_name(sd, slash + 1);
        if (!md) return NULL;
        char full[160];
        snprintf(full, sizeof(full), "/%s/%s", sd->name, md->name);
        size_t n;
        const feat_method_t *ms = feat_serve_methods(&n);
        for (size_t i = 0; i < n; i++)
            if (!strcmp(ms[i].path, full)) {
                *in = md->input;
                *out = md->output;
                return &ms[i];
            }
    }
    return NULL;
}

static void handle(struct evhttp_request *req, void *arg) {
    api_loop_t *loop = arg;
    feat_api_t *a = loop->api;
    feat_serve_t *sv = a->sv;
    feat_metric_add(a->m_requests, 1);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const ProtobufCMessageDescriptor *in = NULL, *out = NULL;
    const feat_method_t *m = path ? route(path, &in, &out) : NULL;
    if (!m) {
        send_error(a, req, 5, "no such method: POST /v1/FeatureService/<method> or /v1/AdminService/<method>");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        feat_buf_t b = FEAT_BUF_INIT;
        feat_buf_puts(&b, "{\"error\":\"use POST with the request as JSON\",\"code\":\"INVALID_ARGUMENT\"}\n");
        send_json(req, 405, b.data, b.len);
        feat_buf_free(&b);
        return;
    }
    if (atomic_load(&sv->shutting_down)) {
        send_error(a, req, 14, "featd is shutting down");
        return;
    }
    const char *hv = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    size_t tlen = 0;
    const char *tok = feat_auth_bearer(hv, &tlen);
    char *token = tok ? strndup(tok, tlen) : NULL;
    char msg[256] = "";
    feat_err_t rc = tok && !token ? FEAT_ERR_NOMEM : sv->auth ? feat_serve_authorize(sv, m, token, msg, sizeof(msg)) : FEAT_OK;
    if (rc) {
        send_error(a, req, feat_rpc_status(rc), msg[0] ? msg : feat_err_str(rc));
        free(token);
        return;
    }
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(body);
    const char *text = blen ? (const char *)evbuffer_pullup(body, -1) : "{}";
    feat_buf_t pb = FEAT_BUF_INIT, js = FEAT_BUF_INIT, resp = FEAT_BUF_INIT;
    rc = text ? feat_pbjson_to_pb(in, text, blen ? blen : 2, &pb, msg, sizeof(msg)) : FEAT_ERR_NOMEM;
    if (rc) {
        if (rc == FEAT_ERR_TOO_LARGE && !msg[0]) snprintf(msg, sizeof(msg), "request too large");
        send_error(a, req, rc == FEAT_ERR_NOMEM ? 13 : rc == FEAT_ERR_TOO_LARGE ? 8 : 3, msg[0] ? msg : feat_err_str(rc));
        feat_buf_free(&pb);
        free(token);
        return;
    }
    feat_arena_t arena;
    feat_arena_init(&arena, 65536);
    feat_rpc_call_t call = {.app = sv, .arena = &arena, .req = (const uint8_t *)(pb.data ? pb.data : ""),
                            .req_len = pb.len, .deadline_ms = feat_now_ms() + CALL_TIMEOUT_MS,
                            .token = token};
    if (m->unary) {
        rc = m->unary(&call, &resp);
        if (!rc) rc = feat_pbjson_from_pb(out, (const uint8_t *)resp.data, resp.len, &js);
    } else {
        void *st = m->stream->begin(&call, &rc);
        if (st) {
            feat_buf_putc(&js, '[');
            for (int more = 1, first = 1; !rc && more; first = 0) {
                feat_buf_reset(&resp);
                rc = m->stream->next(&call, st, &resp, &more);
                if (!rc && more) {
                    if (!first) feat_buf_putc(&js, ',');
                    rc = feat_pbjson_from_pb(out, (const uint8_t *)resp.data, resp.len, &js);
                }
                if (!rc && more && js.len > MAX_ANSWER) /* the whole answer is one JSON array in memory */
                    rc = FEAT_RPC_ERR(&call, FEAT_ERR_TOO_LARGE,
                                      "the answer is over %u MiB; use gRPC's stream (featctl export)", MAX_ANSWER >> 20);
                if (!rc && more && feat_now_ms() > call.deadline_ms)
                    rc = FEAT_RPC_ERR(&call, FEAT_ERR_TIMEOUT, "the call ran past its %d s", CALL_TIMEOUT_MS / 1000);
            }
            feat_buf_puts(&js, "]");
            m->stream->end(st);
        } else if (!rc) {
            rc = FEAT_ERR_INVALID; /* as the gRPC server does */
        }
    }
    if (!rc && js.oom) rc = FEAT_ERR_NOMEM;
    if (rc) {
        send_error(a, req, feat_rpc_status(rc), call.msg[0] ? call.msg : feat_err_str(rc));
    } else {
        feat_buf_putc(&js, '\n');
        send_json(req, 200, js.data, js.len);
    }
    feat_arena_free(&arena);
    feat_buf_free(&pb);
    feat_buf_free(&js);
    feat_buf_free(&resp);
    free(token);
}

/* evhttp's connection factory under TLS: each connection a TLS session of
 * the server context (its socket is set by evhttp). */
static struct bufferevent *tls_bev(struct event_base *base, void *arg) {
    void *ssl = feat_tls_server_session(arg);
    return ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
               : NULL;
}

feat_api_t *feat_api_new(const feat_api_conf_t *conf, feat_serve_t *serve, char *errstr, size_t errlen) {
    feat_api_t *a = calloc(1, sizeof(*a));
    if (!a || !(a->loops = calloc((size_t)conf->threads, sizeof(api_loop_t)))) {
        free(a);
        snprintf(errstr, errlen, "http: out of memory");
        return NULL;
    }
    a->sv = serve;
    a->fd = feat_listen_tcp(conf->listen, "http.listen", &a->port, errstr, errlen);
    if (a->fd < 0) {
        free(a->loops);
        free(a);
        return NULL;
    }
    a->m_requests = feat_counter(serve->metrics, "featd_http_api_requests_total", "HTTP/JSON API requests.", NULL);
    a->m_errors = feat_counter(serve->metrics, "featd_http_api_errors_total", "HTTP/JSON API requests answered with an error.", NULL);
    for (int i = 0; i < conf->threads; i++) {
        api_loop_t *l = &a->loops[i];
        l->api = a;
        int fd = -1; /* each loop's listener closes its own copy of the socket when freed */
        if (feat_loop_open(&l->ev) || !(l->http = evhttp_new(l->ev.base)) || (fd = dup(a->fd)) < 0 ||
            evhttp_accept_socket(l->http, fd) != 0) {
            if (fd >= 0) close(fd);
            snprintf(errstr, errlen, "http: cannot start its event loops");
            a->n = i + 1;
            feat_api_destroy(a);
            return NULL;
        }
        evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                                EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
        evhttp_set_max_headers_size(l->http, 16384);
        evhttp_set_max_body_size(l->http, (ev_ssize_t)conf->max_body);
        evhttp_set_timeout(l->http, 60);
        evhttp_set_gencb(l->http, handle, l);
        if (conf->tls) evhttp_set_bevcb(l->http, tls_bev, conf->tls);
        a->n = i + 1;
        if (feat_loop_start(&l->ev, "http")) {
            snprintf(errstr, errlen, "http: cannot start a thread");
            feat_api_destroy(a);
            return NULL;
        }
    }
    feat_log(FEAT_LOG_INFO, "http", "HTTP/JSON API on %s (port %d, %d threads, %s): POST /v1/FeatureService/..., "
             "/v1/AdminService/...", conf->listen, a->port, conf->threads, conf->tls ? "HTTPS" : "plain HTTP");
    return a;
}

int feat_api_port(const feat_api_t *a) { return a ? a->port : 0; }

void feat_api_destroy(feat_api_t *a) {
    if (!a) return;
    for (int i = 0; i < a->n; i++) feat_loop_stop(&a->loops[i].ev);
    for (int i = 0; i < a->n; i++) {
        api_loop_t *l = &a->loops[i];
        feat_loop_join(&l->ev);
        if (l->http) evhttp_free(l->http);
        feat_loop_free(&l->ev);
    }
    if (a->fd >= 0) close(a->fd);
    free(a->loops);
    free(a);
}
