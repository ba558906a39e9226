/* admin/webhook.c — see webhook.h. */
#include "admin/webhook.h"
#include "common/err.h"
#include "common/log.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct body {
    char *data;
    size_t len;
} body_t;

struct feat_webhook {
    struct event_base *base;
    struct evhttp_connection *conn;
    struct event *wake;      /* activated by post() from any thread */
    struct event *retry;     /* backoff timer */
    char *host, *path, *hosthdr;
    int port;
    pthread_mutex_t lock;    /* guards the queue and the counters */
    body_t *q;
    size_t cap, head, n;
    int in_flight, waiting;
    int64_t backoff_ms;
    uint64_t delivered, dropped, failures;
    feat_metric_t *m_ok, *m_fail, *m_drop;
};

static void send_next(feat_webhook_t *w);

static void done_cb(struct evhttp_request *req, void *arg) {
    feat_webhook_t *w = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    pthread_mutex_lock(&w->lock);
    w->in_flight = 0;
    if (code >= 200 && code < 300) {
        free(w->q[w->head].data);
        w->head = (w->head + 1) % w->cap;
        w->n--;
        w->delivered++;
        w->backoff_ms = 0;
        pthread_mutex_unlock(&w->lock);
        feat_metric_add(w->m_ok, 1);
        send_next(w);
        return;
    }
    w->failures++;
    w->backoff_ms = w->backoff_ms ? w->backoff_ms * 2 : 500;
    if (w->backoff_ms > 30000) w->backoff_ms = 30000;
    int64_t b = w->backoff_ms;
    w->waiting = 1;
    pthread_mutex_unlock(&w->lock);
    feat_metric_add(w->m_fail, 1);
    feat_log(FEAT_LOG_WARN, "webhook", "POST http://%s:%d%s failed (%s %d); retrying in %lld ms", w->host, w->port,
             w->path, code ? "HTTP" : "no reply", code, (long long)b);
    struct timeval tv = {(time_t)(b / 1000), (suseconds_t)((b % 1000) * 1000)};
    evtimer_add(w->retry, &tv);
}

/* On the loop thread. */
static void send_next(feat_webhook_t *w) {
    pthread_mutex_lock(&w->lock);
    if (w->in_flight || w->waiting || w->n == 0) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    body_t b = w->q[w->head];
    w->in_flight = 1;
    pthread_mutex_unlock(&w->lock);
    struct evhttp_request *req = evhttp_request_new(done_cb, w);
    if (!req) {
        done_cb(NULL, w);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", w->hosthdr);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "User-Agent", "featd/" FEATD_VERSION);
    evbuffer_add(evhttp_request_get_output_buffer(req), b.data, b.len);
    if (evhttp_make_request(w->conn, req, EVHTTP_REQ_POST, w->path) != 0) done_cb(NULL, w);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    send_next(arg);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd; (void)what;
    feat_webhook_t *w = arg;
    pthread_mutex_lock(&w->lock);
    w->waiting = 0;
    pthread_mutex_unlock(&w->lock);
    send_next(w);
}

feat_webhook_t *feat_webhook_new(const feat_webhook_conf_t *conf, struct event_base *base, feat_metrics_t *metrics,
                                 char *errstr, size_t errlen) {
    const char *url = conf->url;
    feat_metrics_t *m = metrics ? metrics : feat_metrics_global();
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u || !evhttp_uri_get_host(u) || !evhttp_uri_get_scheme(u) || strcmp(evhttp_uri_get_scheme(u), "http")) {
        snprintf(errstr, errlen, "drift.webhook: \"%s\" is not an http:// URL", url);
        if (u) evhttp_uri_free(u);
        return NULL;
    }
    feat_webhook_t *w = calloc(1, sizeof(*w));
    if (!w) {
        evhttp_uri_free(u);
        snprintf(errstr, errlen, "webhook: out of memory");
        return NULL;
    }
    w->base = base;
    w->host = strdup(evhttp_uri_get_host(u));
    w->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    const char *path = evhttp_uri_get_path(u);
    const char *query = evhttp_uri_get_query(u);
    size_t pl = strlen(path && *path ? path : "/") + (query ? strlen(query) + 1 : 0) + 1;
    w->path = malloc(pl);
    if (w->path) snprintf(w->path, pl, "%s%s%s", path && *path ? path : "/", query ? "?" : "", query ? query : "");
    w->hosthdr = malloc(strlen(w->host) + 8);
    if (w->hosthdr) sprintf(w->hosthdr, "%s:%d", w->host, w->port);
    evhttp_uri_free(u);
    pthread_mutex_init(&w->lock, NULL);
    w->cap = conf->queue_max ? conf->queue_max : 1;
    w->q = calloc(w->cap, sizeof(body_t));
    w->conn = evhttp_connection_base_new(base, NULL, w->host, (unsigned short)w->port);
    w->wake = event_new(base, -1, 0, on_wake, w);
    w->retry = evtimer_new(base, on_retry, w);
    if (!w->host || !w->path || !w->hosthdr || !w->q || !w->conn || !w->wake || !w->retry) {
        feat_webhook_destroy(w);
        snprintf(errstr, errlen, "webhook: out of memory");
        return NULL;
    }
    evhttp_connection_set_timeout(w->conn, 10);
    w->m_ok = feat_counter(m, "featd_webhook_posts_total", "Webhook POSTs by result.", "result=\"delivered\"");
    w->m_fail = feat_counter(m, "featd_webhook_posts_total", "Webhook POSTs by result.", "result=\"failed\"");
    w->m_drop = feat_counter(m, "featd_webhook_posts_total", "Webhook POSTs by result.", "result=\"dropped\"");
    feat_log(FEAT_LOG_INFO, "webhook", "drift alerts go to %s", url);
    return w;
}

void feat_webhook_post(feat_webhook_t *w, const char *body, size_t len) {
    char *copy = malloc(len ? len : 1);
    if (!copy) return;
    memcpy(copy, body, len);
    pthread_mutex_lock(&w->lock);
    if (w->n == w->cap) { /* drop the oldest, unless it is being sent */
        size_t victim = w->in_flight && w->n > 1 ? (w->head + 1) % w->cap : w->head;
        if (!w->in_flight || w->n > 1) {
            free(w->q[victim].data);
            if (victim == w->head) {
                w->head = (w->head + 1) % w->cap;
            } else { /* close the gap after the head */
                for (size_t i = victim; i != (w->head + w->n - 1) % w->cap; i = (i + 1) % w->cap)
                    w->q[i] = w->q[(i + 1) % w->cap];
            }
            w->n--;
        }
        w->dropped++;
        feat_metric_add(w->m_drop, 1);
    }
    if (w->n < w->cap) {
        w->q[(w->head + w->n) % w->cap] = (body_t){copy, len};
        w->n++;
    } else {
        free(copy);
    }
    pthread_mutex_unlock(&w->lock);
    event_active(w->wake, 0, 0);
}

void feat_webhook_counts(feat_webhook_t *w, uint64_t *delivered, uint64_t *dropped, uint64_t *failures) {
    pthread_mutex_lock(&w->lock);
    *delivered = w->delivered;
    *dropped = w->dropped;
    *failures = w->failures;
    pthread_mutex_unlock(&w->lock);
}

void feat_webhook_destroy(feat_webhook_t *w) {
    if (!w) return;
    if (w->conn) evhttp_connection_free(w->conn);
    if (w->wake) event_free(w->wake);
    if (w->retry) event_free(w->retry);
    for (size_t i = 0; w->q && i < w->n; i++) free(w->q[(w->head + i) % w->cap].data);
    free(w->q);
    free(w->host);
    free(w->path);
    free(w->hosthdr);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
