/*
 * serve/forward.c — the peer client pool.  See forward.h.
 */
#include "serve/forward.h"
#include "common/clock.h"
#include "common/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEERS 256
#define MAX_IDLE 64   /* idle clients kept per peer */

typedef struct peer {
    char *address;
    feat_client_t *idle[MAX_IDLE];
    int nidle;
} peer_t;

struct feat_forward {
    pthread_mutex_t lock;       /* peers and their idle stacks */
    peer_t peers[MAX_PEERS];
    int npeers;
    int64_t timeout_ms;
    char *ca, *cert, *key;      /* PEM; NULL = none */
    int tls;
    feat_metric_t *m_calls[2];  /* ok, failed */
    feat_metric_t *m_seconds;
};

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

feat_forward_t *feat_forward_new(const feat_tls_pem_t *tls, int64_t timeout_ms, feat_metrics_t *metrics) {
    feat_forward_t *f = calloc(1, sizeof(*f));
    if (!f) return NULL;
    pthread_mutex_init(&f->lock, NULL);
    f->timeout_ms = timeout_ms;
    if (tls && tls->cert) {
        f->tls = 1;
        f->ca = dup_or_null(tls->ca);
        /* mutual TLS: peers must show a certificate, and we have ours */
        if (tls->ca) f->cert = dup_or_null(tls->cert), f->key = dup_or_null(tls->key);
    }
    static const char *const res[2] = {"result=\"ok\"", "result=\"failed\""};
    for (int i = 0; i < 2; i++)
        f->m_calls[i] = feat_counter(metrics, "featd_cluster_forwarded_calls_total",
                                     "Lookups forwarded to the instance that owns the keys, by result.", res[i]);
    f->m_seconds = feat_histogram(metrics, "featd_cluster_forward_seconds", "Time of one forwarded call.", NULL,
                                  feat_latency_buckets, feat_latency_nbuckets);
    return f;
}

void feat_forward_destroy(feat_forward_t *f) {
    if (!f) return;
    for (int i = 0; i < f->npeers; i++) {
        for (int k = 0; k < f->peers[i].nidle; k++) feat_client_destroy(f->peers[i].idle[k]);
        free(f->peers[i].address);
    }
    free(f->ca);
    free(f->cert);
    free(f->key);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/* An idle client of address, or NULL (make one); *pi its peer slot or -1. */
static feat_client_t *take(feat_forward_t *f, const char *address, int *pi) {
    feat_client_t *c = NULL;
    *pi = -1;
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < f->npeers; i++)
        if (strcmp(f->peers[i].address, address) == 0) { *pi = i; break; }
    if (*pi < 0 && f->npeers < MAX_PEERS && (f->peers[f->npeers].address = strdup(address))) *pi = f->npeers++;
    if (*pi >= 0 && f->peers[*pi].nidle) c = f->peers[*pi].idle[--f->peers[*pi].nidle];
    pthread_mutex_unlock(&f->lock);
    return c;
}

static void give_back(feat_forward_t *f, int pi, feat_client_t *c) {
    pthread_mutex_lock(&f->lock);
    if (pi >= 0 && f->peers[pi].nidle < MAX_IDLE) {
        f->peers[pi].idle[f->peers[pi].nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&f->lock);
    feat_client_destroy(c);
}

/* The longest wait for a call made now: longest, or less when the
 * caller's deadline is sooner; <= 0 when that has passed. */
static int64_t call_wait(int64_t deadline_ms, int64_t longest) {
    int64_t t0 = feat_now_ms();
    return deadline_ms != INT64_MAX && deadline_ms - t0 < longest ? deadline_ms - t0 : longest;
}

/* A client of address, idle or new, with token set; NULL with msg. */
static feat_client_t *client_of(feat_forward_t *f, const char *address, const char *token, int *pi, char *msg,
                                size_t msglen) {
    feat_client_t *c = take(f, address, pi);
    if (!c) {
        char err[256];
        feat_client_tls_t ct = {.ca_pem = f->ca, .cert_pem = f->cert, .key_pem = f->key};
        c = feat_client_new_tls(address, f->tls ? &ct : NULL, err, sizeof(err));
        if (!c) {
            snprintf(msg, msglen, "%s", err);
            return NULL;
        }
    }
    feat_client_set_token(c, token);
    return c;
}

/* The end of one call: the client back to the pool, the metrics. */
static void done(feat_forward_t *f, feat_client_t *c, int pi, int code, uint64_t n0) {
    if (c) {
        feat_client_set_token(c, NULL);
        give_back(f, pi, c);
    }
    feat_metric_observe(f->m_seconds, (double)(feat_mono_ns() - n0) / 1e9);
    feat_metric_add(f->m_calls[code == 0 ? 0 : 1], 1);
}

void feat_forward_calls(feat_forward_t *f, feat_forward_req_t *reqs, size_t n, const char *token,
                        int64_t deadline_ms) {
    int64_t timeout = call_wait(deadline_ms, f->timeout_ms);
    for (size_t i = 0; i < n; i++) { /* every request on its way ... */
        feat_forward_req_t *r = &reqs[i];
        r->msg[0] = 0;
        r->client = NULL;
        r->started_ns = feat_mono_ns();
        if (timeout <= 0) {
            snprintf(r->msg, sizeof(r->msg), "the caller's deadline passed before %s could be asked", r->address);
            r->code = 4; /* DEADLINE_EXCEEDED */
        } else if (!(r->client = client_of(f, r->address, token, &r->peer, r->msg, sizeof(r->msg)))) {
            r->code = 14; /* UNAVAILABLE */
        } else {
            feat_client_unary_begin(r->client, r->method, r->req, r->len, timeout);
        }
    }
    for (size_t i = 0; i < n; i++) { /* ... then the replies: the time of the slowest, not of their sum */
        feat_forward_req_t *r = &reqs[i];
        if (r->client) r->code = feat_client_unary_finish(r->client, &r->resp, r->msg, sizeof(r->msg));
        done(f, r->client, r->peer, r->code, r->started_ns); /* a fast reply read after a slow one: its time
                                                              * includes the wait (the request's, as seen here) */
        r->client = NULL;
    }
}

int feat_forward_call(feat_forward_t *f, const char *address, const char *method, const char *token,
                      int64_t deadline_ms, const void *req, size_t len, feat_buf_t *resp, char *msg, size_t msglen) {
    feat_forward_req_t r = {.address = address, .method = method, .req = req, .len = len, .resp = *resp};
    feat_forward_calls(f, &r, 1, token, deadline_ms);
    *resp = r.resp;
    snprintf(msg, msglen, "%s", r.msg);
    return r.code;
}

/* A server-streaming call, waiting up to longest. */
static int stream(feat_forward_t *f, const char *address, const char *method, const char *token, int64_t deadline_ms,
                  int64_t longest, const void *req, size_t len, feat_client_msg_fn *fn, void *arg, char *msg,
                  size_t msglen) {
    int64_t timeout = call_wait(deadline_ms, longest);
    if (timeout <= 0) {
        snprintf(msg, msglen, "the caller's deadline passed before %s could be asked", address);
        feat_metric_add(f->m_calls[1], 1);
        return 4; /* DEADLINE_EXCEEDED */
    }
    uint64_t n0 = feat_mono_ns();
    int pi, code = 14; /* UNAVAILABLE */
    feat_client_t *c = client_of(f, address, token, &pi, msg, msglen);
    if (c) code = feat_client_stream(c, method, req, len, fn, arg, timeout, msg, msglen);
    done(f, c, pi, code, n0);
    return code;
}

int feat_forward_stream(feat_forward_t *f, const char *address, const char *method, const char *token,
                        int64_t deadline_ms, const void *req, size_t len, feat_client_msg_fn *fn, void *arg,
                        char *msg, size_t msglen) {
    return stream(f, address, method, token, deadline_ms, f->timeout_ms, req, len, fn, arg, msg, msglen);
}

int feat_forward_fetch(feat_forward_t *f, const char *address, const char *method, const char *token, int64_t wait_ms,
                       const void *req, size_t len, feat_client_msg_fn *fn, void *arg, char *msg, size_t msglen) {
    return stream(f, address, method, token, INT64_MAX, wait_ms, req, len, fn, arg, msg, msglen);
}
