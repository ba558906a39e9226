/*
 * rpc/server.c — featd's gRPC server on the C core (see rpc.h).
 *
 * Threads: `threads` workers, each with its own completion queue, registered
 * with the server.  Each worker arms `calls_per_method` calls for every method
 * (plus two for unknown methods) on its own queue, so a request is read,
 * handled and answered by the thread that polled it: no hand-off between
 * threads on the request path.  A unary reply goes out in one batch
 * (initial metadata, message, status, receive-close).  Server-streaming calls
 * run a small state machine: one message in flight at a time, the deadline
 * checked between messages, a separate receive-close batch to notice clients
 * that go away.
 *
 * Nothing here polls on a timer: workers block in grpc_completion_queue_next,
 * after polling without blocking for serve.busy_poll_us following each event.
 *
 * Security: conf->tls selects TLS or mutual TLS for the one listener (the PEM
 * files were checked by rpc/tls.c); conf->authorize, when set, sees every
 * call's bearer token (copied from the metadata into the call state, no
 * allocation) before the handler runs.
 */
#include "rpc/rpc.h"
#include "rpc/tls.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/utf8.h"
#include "common/worker.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_REQUEST = 1, T_BATCH, T_CLOSE, T_SHUTDOWN };

typedef struct call_state call_state_t;
typedef struct worker worker_t;

typedef struct ctag {
    call_state_t *cs;
    int kind;
} ctag_t;

struct call_state {
    worker_t *w;
    int midx;                    /* method index; -1 = unknown method */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details;   /* unknown methods only */
    int cancelled;
    ctag_t t_req, t_batch, t_close;
    grpc_byte_buffer *send_bb;
    grpc_slice status_details;
    int have_details;
    int status;                  /* status sent */
    uint64_t start_ns;
    int outstanding;             /* batches not yet completed */
    int final_sent;
    void *sstate;                /* streaming state */
    feat_arena_t sarena;         /* streaming per-call memory */
    feat_rpc_call_t rc;
    char token[512];
    int rearm;                   /* no replacement was armed when the call came: re-arm this one */
    call_state_t *next;          /* in the worker's spare list */
};

typedef struct method_rt {
    void *handle;                /* grpc registered method */
    _Atomic(feat_metric_t *) codes[17];
    feat_metric_t *latency;
} method_rt_t;

struct worker {
    feat_server_t *srv;
    grpc_completion_queue *cq;
    pthread_t thr;
    int started;
    feat_arena_t arena;          /* unary per-call memory */
    feat_buf_t resp;
    call_state_t *spare;         /* finished call states, for the next replacements */
    size_t nspare;
};

struct feat_server {
    feat_server_conf_t conf;
    char *listen;
    const feat_method_t *methods;
    size_t nmethods;
    method_rt_t *rt;
    void *app;
    grpc_server *server;
    worker_t *workers;
    int nworkers;
    int port;
    const char *security;        /* "plain text", "TLS", "mutual TLS" (static) */
    int started;
    atomic_int shutting_down;
    ctag_t shutdown_tag;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int shutdown_done;
    feat_metric_t *unknown_calls;
};

static pthread_once_t grpc_once = PTHREAD_ONCE_INIT;

static void grpc_log_fn(gpr_log_func_args *a) {
    feat_log_level_t l = a->severity == GPR_LOG_SEVERITY_ERROR ? FEAT_LOG_ERROR
                         : a->severity == GPR_LOG_SEVERITY_INFO ? FEAT_LOG_INFO : FEAT_LOG_DEBUG;
    if (l == FEAT_LOG_INFO) l = FEAT_LOG_DEBUG; /* gRPC's info lines are chatty */
    feat_log(l, "grpc", "%s:%d %s", a->file, a->line, a->message);
}

static void grpc_global_init(void) {
    gpr_set_log_function(grpc_log_fn);
    grpc_init();
}

int feat_rpc_status(feat_err_t err) {
    switch (err) {
    case FEAT_OK: return GRPC_STATUS_OK;
    case FEAT_ERR_INVALID: return GRPC_STATUS_INVALID_ARGUMENT;
    case FEAT_ERR_NOT_FOUND: return GRPC_STATUS_NOT_FOUND;
    case FEAT_ERR_NOMEM: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case FEAT_ERR_TOO_LARGE: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case FEAT_ERR_UNAVAILABLE: return GRPC_STATUS_UNAVAILABLE;
    case FEAT_ERR_UNIMPLEMENTED: return GRPC_STATUS_UNIMPLEMENTED;
    case FEAT_ERR_EXISTS: return GRPC_STATUS_ALREADY_EXISTS;
    case FEAT_ERR_TIMEOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
    case FEAT_ERR_PERMISSION: return GRPC_STATUS_PERMISSION_DENIED;
    case FEAT_ERR_UNAUTHENTICATED: return GRPC_STATUS_UNAUTHENTICATED;
    case FEAT_ERR_STATE: return GRPC_STATUS_FAILED_PRECONDITION;
    case FEAT_ERR_CONFIG: return GRPC_STATUS_FAILED_PRECONDITION;
    default: return GRPC_STATUS_INTERNAL; /* IO, CORRUPT, KAFKA, NO_DEVICE */
    }
}

static void *pb_alloc(void *d, size_t n) { return feat_arena_alloc(d, n); }
static void pb_free(void *d, void *p) { (void)d; (void)p; }

void feat_rpc_pb_allocator(feat_arena_t *a, ProtobufCAllocator *out) {
    out->alloc = pb_alloc;
    out->free = pb_free;
    out->allocator_data = a;
}

/* ---- calls ---------------------------------------------------------------------- */

static feat_err_t arm(worker_t *w, call_state_t *cs);

static call_state_t *cs_new(worker_t *w, int midx) {
    call_state_t *cs = calloc(1, sizeof(*cs));
    if (!cs) return NULL;
    cs->w = w;
    cs->midx = midx;
    cs->t_req = (ctag_t){cs, T_REQUEST};
    cs->t_batch = (ctag_t){cs, T_BATCH};
    cs->t_close = (ctag_t){cs, T_CLOSE};
    grpc_metadata_array_init(&cs->md);
    if (midx < 0) grpc_call_details_init(&cs->details);
    feat_arena_init(&cs->sarena, 8192);
    return cs;
}

static void cs_free(call_state_t *cs) {
    grpc_metadata_array_destroy(&cs->md);
    if (cs->midx < 0) grpc_call_details_destroy(&cs->details);
    feat_arena_free(&cs->sarena);
    free(cs);
}

/* A call state for method midx: a spare one, or a new one. */
static call_state_t *cs_take(worker_t *w, int midx) {
    call_state_t *cs = w->spare;
    if (!cs) return cs_new(w, midx);
    w->spare = cs->next;
    w->nspare--;
    cs->next = NULL;
    if (cs->midx < 0 && midx >= 0) grpc_call_details_destroy(&cs->details);
    if (cs->midx >= 0 && midx < 0) grpc_call_details_init(&cs->details);
    cs->midx = midx;
    return cs;
}

static void cs_put(worker_t *w, call_state_t *cs) {
    feat_server_t *s = w->srv;
    if (w->nspare >= s->nmethods * (size_t)s->conf.calls_per_method + 2) {
        cs_free(cs);
        return;
    }
    cs->next = w->spare;
    w->spare = cs;
    w->nspare++;
}

static feat_err_t arm(worker_t *w, call_state_t *cs) {
    feat_server_t *s = w->srv;
    grpc_call_error e;
    if (cs->midx >= 0)
        e = grpc_server_request_registered_call(s->server, s->rt[cs->midx].handle, &cs->call, &cs->deadline,
                                                &cs->md, &cs->payload, w->cq, w->cq, &cs->t_req);
    else
        e = grpc_server_request_call(s->server, &cs->call, &cs->details, &cs->md, w->cq, w->cq, &cs->t_req);
    if (e != GRPC_CALL_OK) {
        feat_log(FEAT_LOG_ERROR, "serve", "arming a call failed: %d", (int)e);
        return FEAT_ERR_STATE;
    }
    return FEAT_OK;
}

static void record(feat_server_t *s, call_state_t *cs) {
    if (cs->midx < 0) {
        feat_metric_add(s->unknown_calls, 1);
        return;
    }
    method_rt_t *rt = &s->rt[cs->midx];
    int code = cs->status >= 0 && cs->status < 17 ? cs->status : 2;
    feat_metric_t *c = atomic_load_explicit(&rt->codes[code], memory_order_acquire);
    if (!c) {
        static const char *const names[17] = {
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
            "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
        char labels[160];
        snprintf(labels, sizeof(labels), "method=\"%s\",code=\"%s\"", s->methods[cs->midx].name, names[code]);
        c = feat_counter(s->conf.metrics, "featd_rpc_requests_total", "gRPC calls finished, by method and status.",
                         labels);
        atomic_store_explicit(&rt->codes[code], c, memory_order_release);
    }
    feat_metric_add(c, 1);
    feat_metric_observe(rt->latency, (double)(feat_mono_ns() - cs->start_ns) / 1e9);
}

/* Ends a call's use of cs: releases the call and re-arms cs (or frees it
 * when shutting down). */
static void finish(call_state_t *cs) {
    worker_t *w = cs->w;
    feat_server_t *s = w->srv;
    record(s, cs);
    if (cs->send_bb) grpc_byte_buffer_destroy(cs->send_bb);
    if (cs->payload) grpc_byte_buffer_destroy(cs->payload);
    if (cs->have_details) grpc_slice_unref(cs->status_details);
    if (cs->sstate && cs->midx >= 0 && s->methods[cs->midx].stream) s->methods[cs->midx].stream->end(cs->sstate);
    cs->send_bb = NULL;
    cs->payload = NULL;
    cs->have_details = 0;
    cs->sstate = NULL;
    feat_arena_reset(&cs->sarena);
    grpc_metadata_array_destroy(&cs->md);
    grpc_metadata_array_init(&cs->md);
    if (cs->midx < 0) {
        grpc_call_details_destroy(&cs->details);
        grpc_call_details_init(&cs->details);
    }
    grpc_call_unref(cs->call);
    cs->call = NULL;
    cs->outstanding = 0;
    cs->final_sent = 0;
    cs->cancelled = 0;
    if (atomic_load(&s->shutting_down)) cs_free(cs);
    else if (!cs->rearm) cs_put(w, cs);
    else if (arm(w, cs) != FEAT_OK) cs_free(cs);
}

/* Sends the final status (and, for unary calls, the message) in one batch. */
static void send_final(call_state_t *cs, int status, const char *msg, const feat_buf_t *resp, int unary) {
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (unary) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        if (status == GRPC_STATUS_OK && resp) {
            grpc_slice sl = grpc_slice_from_copied_buffer(resp->data ? resp->data : "", resp->len);
            cs->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
            grpc_slice_unref(sl);
            ops[n].op = GRPC_OP_SEND_MESSAGE;
            ops[n++].data.send_message.send_message = cs->send_bb;
        }
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)status;
    if (msg && *msg) {
        /* never invalid UTF-8 in grpc-message: clients decode it as UTF-8.  Handlers
         * echo only checked strings, but "%.64s" or a full buffer can cut a
         * character in two, and an unknown method's path is raw client bytes:
         * bytes that start no valid sequence are left out. */
        char clean[512];
        size_t len = strlen(msg), o = 0;
        if (len >= sizeof(clean)) len = sizeof(clean) - 1;
        for (size_t i = 0; i < len;) {
            size_t v = feat_utf8_valid_prefix(msg + i, len - i);
            memcpy(clean + o, msg + i, v);
            o += v;
            i += v + (i + v < len);
        }
        cs->status_details = grpc_slice_from_copied_buffer(clean, o);
        cs->have_details = 1;
        ops[n].data.send_status_from_server.status_details = &cs->status_details;
    }
    n++;
    if (unary) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &cs->cancelled;
    }
    cs->status = status;
    cs->final_sent = 1;
    cs->outstanding++;
    grpc_call_error e = grpc_call_start_batch(cs->call, ops, n, &cs->t_batch, NULL);
    if (e != GRPC_CALL_OK) {
        feat_log(FEAT_LOG_WARN, "serve", "start_batch(final) failed: %d", (int)e);
        cs->outstanding--;
        if (cs->outstanding == 0) finish(cs);
    }
}

static feat_err_t read_payload(call_state_t *cs, feat_arena_t *a, const uint8_t **out, size_t *len) {
    *out = (const uint8_t *)"";
    *len = 0;
    if (!cs->payload) return FEAT_ERR_INVALID;
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, cs->payload)) return FEAT_ERR_INVALID;
    size_t total = grpc_byte_buffer_length(cs->payload);
    uint8_t *buf = feat_arena_alloc(a, total ? total : 1);
    if (!buf) {
        grpc_byte_buffer_reader_destroy(&r);
        return FEAT_ERR_NOMEM;
    }
    size_t off = 0;
    grpc_slice sl;
    while (grpc_byte_buffer_reader_next(&r, &sl)) {
        size_t l = GRPC_SLICE_LENGTH(sl);
        if (off + l <= total) memcpy(buf + off, GRPC_SLICE_START_PTR(sl), l);
        off += l;
        grpc_slice_unref(sl);
    }
    grpc_byte_buffer_reader_destroy(&r);
    *out = buf;
    *len = off < total ? off : total;
    return FEAT_OK;
}

static const char *find_token(call_state_t *cs) {
    for (size_t i = 0; i < cs->md.count; i++) {
        grpc_metadata *m = &cs->md.metadata[i];
        if (grpc_slice_str_cmp(m->key, "authorization") != 0) continue;
        size_t l = GRPC_SLICE_LENGTH(m->value);
        const char *v = (const char *)GRPC_SLICE_START_PTR(m->value);
        if (l > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
            v += 7;
            l -= 7;
        }
        if (l >= sizeof(cs->token)) l = sizeof(cs->token) - 1;
        memcpy(cs->token, v, l);
        cs->token[l] = 0;
        return cs->token;
    }
    return NULL;
}

static int64_t deadline_ms(gpr_timespec d) {
    gpr_timespec r = gpr_convert_clock_type(d, GPR_CLOCK_REALTIME);
    if (r.tv_sec >= INT64_MAX / 1000 - 1) return INT64_MAX;
    return (int64_t)r.tv_sec * 1000 + r.tv_nsec / 1000000;
}

static void stream_step(call_state_t *cs);

static void on_request(call_state_t *cs) {
    worker_t *w = cs->w;
    feat_server_t *s = w->srv;
    cs->start_ns = feat_mono_ns();
    /* Arm a replacement now rather than re-arming cs when the call ends: a
     * call whose client does not read its reply (zero flow-control window)
     * never ends, and calls_per_method of those used to leave the method
     * with no armed call, every other client waiting (test_grpc_abuse.py). */
    cs->rearm = 1;
    if (!atomic_load(&s->shutting_down)) {
        call_state_t *n = cs_take(w, cs->midx);
        if (n && arm(w, n) == FEAT_OK) cs->rearm = 0;
        else if (n) cs_free(n);
    }
    if (cs->midx < 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "unknown method %.*s", (int)GRPC_SLICE_LENGTH(cs->details.method),
                 (const char *)GRPC_SLICE_START_PTR(cs->details.method));
        cs->deadline = cs->details.deadline;
        send_final(cs, GRPC_STATUS_UNIMPLEMENTED, msg, NULL, 1);
        return;
    }
    const feat_method_t *m = &s->methods[cs->midx];
    int unary = m->unary != NULL;
    feat_arena_t *arena = unary ? &w->arena : &cs->sarena;
    feat_rpc_call_t *rc = &cs->rc;
    memset(rc, 0, sizeof(*rc));
    rc->app = s->app;
    rc->arena = arena;
    rc->deadline_ms = deadline_ms(cs->deadline);
    rc->token = find_token(cs);
    if (atomic_load(&s->shutting_down)) {
        send_final(cs, GRPC_STATUS_UNAVAILABLE, "featd is shutting down", NULL, unary);
        return;
    }
    if (s->conf.authorize) {
        feat_err_t a = s->conf.authorize(s->app, m, rc->token, rc->msg, sizeof(rc->msg));
        if (a != FEAT_OK) {
            if (!unary) cs->outstanding = 0;
            send_final(cs, feat_rpc_status(a), rc->msg, NULL, 1);
            return;
        }
    }
    if (feat_now_ms() > rc->deadline_ms) {
        send_final(cs, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline passed before the call started", NULL, 1);
        return;
    }
    feat_err_t err = read_payload(cs, arena, &rc->req, &rc->req_len);
    if (err) {
        send_final(cs, feat_rpc_status(err), "no request message", NULL, 1);
        return;
    }
    if (unary) {
        feat_buf_reset(&w->resp);
        err = m->unary(rc, &w->resp);
        if (!err && w->resp.oom) err = FEAT_ERR_NOMEM;
        if (!err && feat_now_ms() > rc->deadline_ms) {
            err = FEAT_ERR_TIMEOUT;
            snprintf(rc->msg, sizeof(rc->msg), "deadline exceeded while handling the call");
        }
        send_final(cs, feat_rpc_status(err), err ? (rc->msg[0] ? rc->msg : feat_err_str(err)) : NULL, &w->resp, 1);
        feat_arena_reset(&w->arena);
        if (w->resp.cap > (1u << 20)) feat_buf_free(&w->resp); /* do not hold a huge reply buffer */
        return;
    }
    /* server streaming */
    cs->sstate = m->stream->begin(rc, &err);
    if (!cs->sstate) {
        send_final(cs, feat_rpc_status(err ? err : FEAT_ERR_INVALID), rc->msg[0] ? rc->msg : feat_err_str(err), NULL, 1);
        return;
    }
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[0].data.recv_close_on_server.cancelled = &cs->cancelled;
    cs->outstanding++;
    if (grpc_call_start_batch(cs->call, ops, 1, &cs->t_close, NULL) != GRPC_CALL_OK) cs->outstanding--;
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    cs->outstanding++;
    if (grpc_call_start_batch(cs->call, ops, 1, &cs->t_batch, NULL) != GRPC_CALL_OK) {
        cs->outstanding--;
        finish(cs);
    }
}

/* Sends the next streamed message, or the final status. */
static void stream_step(call_state_t *cs) {
    feat_server_t *s = cs->w->srv;
    const feat_method_t *m = &s->methods[cs->midx];
    feat_rpc_call_t *rc = &cs->rc;
    if (cs->cancelled) return; /* the close tag finishes */
    if (feat_now_ms() > rc->deadline_ms) {
        send_final(cs, GRPC_STATUS_DEADLINE_EXCEEDED, "deadline exceeded while streaming", NULL, 0);
        return;
    }
    feat_buf_t out = FEAT_BUF_INIT;
    int more = 0;
    feat_err_t err = m->stream->next(rc, cs->sstate, &out, &more);
    if (!err && more && out.oom) err = FEAT_ERR_NOMEM;
    if (!err && more) {
        if (cs->send_bb) grpc_byte_buffer_destroy(cs->send_bb);
        grpc_slice sl = grpc_slice_new(out.data, out.len, free); /* takes out.data */
        cs->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
        grpc_slice_unref(sl);
        grpc_op op;
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_SEND_MESSAGE;
        op.data.send_message.send_message = cs->send_bb;
        cs->outstanding++;
        if (grpc_call_start_batch(cs->call, &op, 1, &cs->t_batch, NULL) != GRPC_CALL_OK) cs->outstanding--;
        return;
    }
    feat_buf_free(&out);
    if (!err) send_final(cs, GRPC_STATUS_OK, NULL, NULL, 0);
    else send_final(cs, feat_rpc_status(err), rc->msg[0] ? rc->msg : feat_err_str(err), NULL, 0);
}

static void on_event(ctag_t *t, int success) {
    call_state_t *cs = t->cs;
    feat_server_t *s = cs->w->srv;
    switch (t->kind) {
    case T_REQUEST:
        if (!success) { /* the server is shutting down: the armed call never came */
            cs_free(cs);
            return;
        }
        on_request(cs);
        return;
    case T_BATCH: {
        cs->outstanding--;
        int unary = cs->midx < 0 || s->methods[cs->midx].unary != NULL;
        if (unary || cs->final_sent || !success) {
            if (!success && !cs->final_sent) cs->status = GRPC_STATUS_CANCELLED;
            if (cs->outstanding == 0) finish(cs);
            return;
        }
        stream_step(cs);
        if (cs->outstanding == 0) finish(cs);
        return;
    }
    case T_CLOSE:
        cs->outstanding--;
        if (cs->cancelled && !cs->final_sent) cs->status = GRPC_STATUS_CANCELLED;
        if (cs->outstanding == 0) finish(cs);
        return;
    default:
        return;
    }
}

static void *worker_run(void *arg) {
    worker_t *w = arg;
    feat_server_t *s = w->srv;
    /* Busy polling: for busy_poll_us after an event, poll without blocking
     * (yielding the CPU between polls) before sleeping in the kernel.  A
     * request that arrives in that window needs no wake-up of this thread,
     * which on the bench machine costs more than the call itself across
     * cores (BENCHMARKS.md).  An idle server blocks as usual. */
    uint64_t spin_ns = (uint64_t)s->conf.busy_poll_us * 1000;
    uint64_t last = 0;
    for (;;) {
        grpc_event ev;
        ev.type = GRPC_QUEUE_TIMEOUT;
        if (spin_ns) {
            while (feat_mono_ns() - last < spin_ns) {
                ev = grpc_completion_queue_next(w->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
                if (ev.type != GRPC_QUEUE_TIMEOUT) break;
                sched_yield();
            }
        }
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        last = feat_mono_ns();
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type != GRPC_OP_COMPLETE) continue;
        ctag_t *t = ev.tag;
        if (t->kind == T_SHUTDOWN) {
            pthread_mutex_lock(&s->lock);
            s->shutdown_done = 1;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        on_event(t, ev.success);
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

feat_server_t *feat_server_new(const feat_server_conf_t *conf, const feat_method_t *methods, size_t nmethods,
                               void *app, char *errstr, size_t errlen) {
    pthread_once(&grpc_once, grpc_global_init);
    feat_server_t *s = calloc(1, sizeof(*s));
    if (!s) goto nomem;
    s->conf = *conf;
    if (!s->conf.metrics) s->conf.metrics = feat_metrics_global();
    if (s->conf.threads < 1) s->conf.threads = 1;
    if (s->conf.calls_per_method < 1) s->conf.calls_per_method = 1;
    s->listen = strdup(conf->listen);
    s->methods = methods;
    s->nmethods = nmethods;
    s->app = app;
    s->shutdown_tag = (ctag_t){NULL, T_SHUTDOWN};
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->rt = calloc(nmethods, sizeof(method_rt_t));
    s->nworkers = s->conf.threads;
    s->workers = calloc((size_t)s->nworkers, sizeof(worker_t));
    if (!s->listen || !s->rt || !s->workers) goto nomem;
    grpc_arg args[4];
    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)(conf->max_message > INT32_MAX ? INT32_MAX : conf->max_message);
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = args[0].value.integer;
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    /* Calls in flight per connection: a client that stops reading its
     * replies holds each call's reply in memory until it leaves, so one
     * connection may hold at most this many (the HTTP/2 default is no limit). */
    args[3].type = GRPC_ARG_INTEGER;
    args[3].key = GRPC_ARG_MAX_CONCURRENT_STREAMS;
    args[3].value.integer = 256;
    grpc_channel_args ca = {4, args};
    s->server = grpc_server_create(&ca, NULL);
    for (size_t i = 0; i < nmethods; i++) {
        s->rt[i].handle = grpc_server_register_method(s->server, methods[i].path, NULL,
                                                      GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!s->rt[i].handle) {
            snprintf(errstr, errlen, "serve: cannot register %s", methods[i].path);
            feat_server_destroy(s);
            return NULL;
        }
        char labels[128];
        snprintf(labels, sizeof(labels), "method=\"%s\"", methods[i].name);
        s->rt[i].latency = feat_histogram(s->conf.metrics, "featd_rpc_duration_seconds",
                                          "gRPC call latency inside featd, from request to final status.", labels,
                                          feat_latency_buckets, feat_latency_nbuckets);
    }
    s->unknown_calls = feat_counter(s->conf.metrics, "featd_rpc_unknown_method_total", "Calls to methods featd does not serve.", NULL);
    for (int i = 0; i < s->nworkers; i++) {
        worker_t *w = &s->workers[i];
        w->srv = s;
        w->cq = grpc_completion_queue_create_for_next(NULL);
        feat_arena_init(&w->arena, 65536);
        grpc_server_register_completion_queue(s->server, w->cq, NULL);
    }
    grpc_server_credentials *creds;
    const feat_tls_pem_t *tls = conf->tls;
    if (tls && tls->cert && tls->key) {
        /* mutual TLS: gRPC verifies the client's chain against ca during the handshake */
        grpc_ssl_pem_key_cert_pair pair = {tls->key, tls->cert};
        creds = grpc_ssl_server_credentials_create_ex(tls->ca, &pair, 1,
                                                      tls->ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                              : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
                                                      NULL);
        s->security = tls->ca ? "mutual TLS" : "TLS";
    } else {
        creds = grpc_insecure_server_credentials_create();
        s->security = "plain text";
    }
    s->port = creds ? grpc_server_add_http2_port(s->server, conf->listen, creds) : 0;
    if (creds) grpc_server_credentials_release(creds);
    if (s->port <= 0) {
        if (tls)
            snprintf(errstr, errlen, "serve.listen: cannot listen on %s with TLS (address in use? gRPC refused "
                     "serve.tls_cert / serve.tls_key: see the grpc log line above)", conf->listen);
        else
            snprintf(errstr, errlen, "serve.listen: cannot listen on %s", conf->listen);
        feat_server_destroy(s);
        return NULL;
    }
    return s;
nomem:
    snprintf(errstr, errlen, "serve: out of memory");
    feat_server_destroy(s);
    return NULL;
}

feat_err_t feat_server_start(feat_server_t *s, char *errstr, size_t errlen) {
    grpc_server_start(s->server);
    s->started = 1;
    for (int i = 0; i < s->nworkers; i++) {
        worker_t *w = &s->workers[i];
        for (size_t m = 0; m < s->nmethods; m++) {
            for (int k = 0; k < s->conf.calls_per_method; k++) {
                call_state_t *cs = cs_new(w, (int)m);
                if (!cs || arm(w, cs) != FEAT_OK) {
                    if (cs) cs_free(cs);
                    snprintf(errstr, errlen, "serve: cannot arm calls");
                    return FEAT_ERR_NOMEM;
                }
            }
        }
        for (int k = 0; k < 2; k++) {
            call_state_t *cs = cs_new(w, -1);
            if (!cs || arm(w, cs) != FEAT_OK) {
                if (cs) cs_free(cs);
                snprintf(errstr, errlen, "serve: cannot arm calls");
                return FEAT_ERR_NOMEM;
            }
        }
        char name[FEAT_WORKER_NAME_MAX + 1];
        snprintf(name, sizeof(name), "rpc:%d", i);
        if (feat_worker_start(&w->thr, name, worker_run, w) != FEAT_OK) {
            snprintf(errstr, errlen, "serve: cannot start threads");
            return FEAT_ERR_NOMEM;
        }
        w->started = 1;
    }
    feat_log(FEAT_LOG_INFO, "serve", "gRPC on %s (port %d, %s), %d threads", s->listen, s->port, s->security,
             s->nworkers);
    return FEAT_OK;
}

int feat_server_port(const feat_server_t *s) { return s->port; }

void feat_server_stop(feat_server_t *s) {
    if (!s || !s->started) return;
    int64_t grace_ms = s->conf.shutdown_grace_ms;
    atomic_store(&s->shutting_down, 1);
    grpc_server_shutdown_and_notify(s->server, s->workers[0].cq, &s->shutdown_tag);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += grace_ms / 1000;
    until.tv_nsec += (grace_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
    pthread_mutex_lock(&s->lock);
    while (!s->shutdown_done)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &until) != 0) break;
    int done = s->shutdown_done;
    pthread_mutex_unlock(&s->lock);
    if (!done) {
        feat_log(FEAT_LOG_WARN, "serve", "calls still running after %lld ms; cancelling them", (long long)grace_ms);
        grpc_server_cancel_all_calls(s->server);
        pthread_mutex_lock(&s->lock);
        while (!s->shutdown_done) pthread_cond_wait(&s->cond, &s->lock);
        pthread_mutex_unlock(&s->lock);
    }
    for (int i = 0; i < s->nworkers; i++) grpc_completion_queue_shutdown(s->workers[i].cq);
    for (int i = 0; i < s->nworkers; i++)
        if (s->workers[i].started) feat_worker_join(s->workers[i].thr);
    s->started = 0;
}

void feat_server_destroy(feat_server_t *s) {
    if (!s) return;
    feat_server_stop(s);
    if (s->server) grpc_server_destroy(s->server);
    for (int i = 0; s->workers && i < s->nworkers; i++) {
        worker_t *w = &s->workers[i];
        if (w->cq) {
            if (!w->started) {
                grpc_completion_queue_shutdown(w->cq);
                while (grpc_completion_queue_next(w->cq, gpr_inf_past(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
                }
            }
            grpc_completion_queue_destroy(w->cq);
        }
        feat_arena_free(&w->arena);
        feat_buf_free(&w->resp);
        while (w->spare) {
            call_state_t *cs = w->spare;
            w->spare = cs->next;
            cs_free(cs);
        }
    }
    free(s->workers);
    free(s->rt);
    free(s->listen);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}
