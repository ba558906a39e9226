/* serve/client.c — see client.h. */
#include "rpc/client.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct call {
    grpc_call *call;
    grpc_metadata md[1];
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *send;
    char auth[600];
} call_t;

struct feat_client {
    grpc_channel *ch;
    grpc_completion_queue *cq;
    char *token;
    call_t pending;             /* the unary call between begin and finish */
    grpc_byte_buffer *reply;
    int inflight;               /* 1: begun; 2: begun, and gRPC never started it */
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static void quiet_log(gpr_log_func_args *a) { (void)a; }
static void init_once(void) {
    gpr_set_log_function(quiet_log);
    grpc_init();
}

const char *feat_grpc_code_name(int code) {
    static const char *const names[17] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    return code >= 0 && code < 17 ? names[code] : "UNKNOWN";
}

feat_client_t *feat_client_new(const char *target, char *errstr, size_t errlen) {
    return feat_client_new_tls(target, NULL, errstr, errlen);
}

feat_client_t *feat_client_new_tls(const char *target, const feat_client_tls_t *tls, char *errstr, size_t errlen) {
    pthread_once(&once, init_once);
    feat_client_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    grpc_arg args[3];
    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = 256 << 20;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = 256 << 20;
    grpc_channel_args ca = {2, args};
    grpc_channel_credentials *creds;
    if (tls) {
        grpc_ssl_pem_key_cert_pair pair = {tls->key_pem, tls->cert_pem};
        creds = grpc_ssl_credentials_create_ex(tls->ca_pem, tls->cert_pem && tls->key_pem ? &pair : NULL, NULL, NULL);
        if (tls->server_name && *tls->server_name) {
            args[2].type = GRPC_ARG_STRING;
            args[2].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
            args[2].value.string = (char *)tls->server_name;
            ca.num_args = 3;
        }
    } else {
        creds = grpc_insecure_credentials_create();
    }
    c->ch = creds ? grpc_channel_create(target, creds, &ca) : NULL;
    if (creds) grpc_channel_credentials_release(creds);
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    if (!c->ch || !c->cq) {
        snprintf(errstr, errlen, "cannot create a channel to %s", target);
        feat_client_destroy(c);
        return NULL;
    }
    return c;
}

void feat_client_set_token(feat_client_t *c, const char *token) {
    free(c->token);
    c->token = token ? strdup(token) : NULL;
}

void feat_client_destroy(feat_client_t *c) {
    if (!c) return;
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        grpc_completion_queue_destroy(c->cq);
    }
    if (c->ch) grpc_channel_destroy(c->ch);
    free(c->token);
    free(c);
}

static void copy_msg(grpc_slice details, char *msg, size_t msglen) {
    if (!msg || !msglen) return;
    size_t l = GRPC_SLICE_LENGTH(details);
    if (l >= msglen) l = msglen - 1;
    memcpy(msg, GRPC_SLICE_START_PTR(details), l);
    msg[l] = 0;
}

static void bb_to_buf(grpc_byte_buffer *bb, feat_buf_t *out) {
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb)) return;
    grpc_slice s;
    while (grpc_byte_buffer_reader_next(&r, &s)) {
        feat_buf_append(out, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
        grpc_slice_unref(s);
    }
    grpc_byte_buffer_reader_destroy(&r);
}

/* Creates the call: 0, or -1 when gRPC made none (then nothing to end). */
static int start(feat_client_t *c, call_t *k, const char *method, const void *req, size_t len, int64_t timeout_ms) {
    memset(k, 0, sizeof(*k));
    gpr_timespec deadline = timeout_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                          gpr_time_from_millis(timeout_ms, GPR_TIMESPAN))
                                           : gpr_inf_future(GPR_CLOCK_REALTIME);
    k->call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, grpc_slice_from_static_string(method),
                                       NULL, deadline, NULL);
    if (!k->call) return -1;
    grpc_metadata_array_init(&k->init_md);
    grpc_metadata_array_init(&k->trail_md);
    grpc_slice s = grpc_slice_from_copied_buffer(req, len);
    k->send = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return 0;
}

static void end(call_t *k) {
    grpc_metadata_array_destroy(&k->init_md);
    grpc_metadata_array_destroy(&k->trail_md);
    grpc_slice_unref(k->details);
    if (k->send) grpc_byte_buffer_destroy(k->send);
    if (k->call) grpc_call_unref(k->call);
}

static size_t fill_send_ops(feat_client_t *c, call_t *k, grpc_op *ops) {
    size_t n = 0;
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->token) {
        snprintf(k->auth, sizeof(k->auth), "Bearer %s", c->token);
        k->md[0].key = grpc_slice_from_static_string("authorization");
        k->md[0].value = grpc_slice_from_static_string(k->auth);
        ops[n].data.send_initial_metadata.count = 1;
        ops[n].data.send_initial_metadata.metadata = k->md;
    }
    n++;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = k->send;
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &k->init_md;
    return n;
}

void feat_client_unary_begin(feat_client_t *c, const char *method, const void *req, size_t len, int64_t timeout_ms) {
    call_t *k = &c->pending;
    c->reply = NULL;
    if (start(c, k, method, req, len, timeout_ms)) {
        c->inflight = 3; /* no call at all */
        return;
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    size_t n = fill_send_ops(c, k, ops);
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &c->reply;
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &k->trail_md;
    ops[n].data.recv_status_on_client.status = &k->status;
    ops[n++].data.recv_status_on_client.status_details = &k->details;
    c->inflight = grpc_call_start_batch(k->call, ops, n, k, NULL) == GRPC_CALL_OK ? 1 : 2;
}

int feat_client_unary_finish(feat_client_t *c, feat_buf_t *resp, char *msg, size_t msglen) {
    call_t *k = &c->pending;
    if (msg && msglen) msg[0] = 0;
    int rc = GRPC_STATUS_INTERNAL;
    if (!c->inflight) return rc; /* no begin: nothing to wait for */
    if (c->inflight == 3) {
        if (msg) snprintf(msg, msglen, "cannot create the call");
        c->inflight = 0;
        return rc;
    }
    if (c->inflight == 1) {
        grpc_completion_queue_pluck(c->cq, k, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        rc = k->status;
        copy_msg(k->details, msg, msglen);
        feat_buf_reset(resp);
        if (c->reply) bb_to_buf(c->reply, resp);
    }
    if (c->reply) grpc_byte_buffer_destroy(c->reply);
    c->reply = NULL;
    c->inflight = 0;
    end(k);
    return rc;
}

int feat_client_unary(feat_client_t *c, const char *method, const void *req, size_t len, feat_buf_t *resp,
                      int64_t timeout_ms, char *msg, size_t msglen) {
    feat_client_unary_begin(c, method, req, len, timeout_ms);
    return feat_client_unary_finish(c, resp, msg, msglen);
}

int feat_client_stream(feat_client_t *c, const char *method, const void *req, size_t len,
                       feat_client_msg_fn *fn, void *arg, int64_t timeout_ms, char *msg, size_t msglen) {
    call_t k;
    if (msg && msglen) msg[0] = 0;
    if (start(c, &k, method, req, len, timeout_ms)) {
        if (msg) snprintf(msg, msglen, "cannot create the call");
        return GRPC_STATUS_INTERNAL;
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    size_t n = fill_send_ops(c, &k, ops);
    int rc = GRPC_STATUS_INTERNAL;
    if (grpc_call_start_batch(k.call, ops, n, &k, NULL) != GRPC_CALL_OK) goto out;
    grpc_completion_queue_pluck(c->cq, &k, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    feat_buf_t b = FEAT_BUF_INIT;
    int stopped = 0;
    for (;;) {
        grpc_byte_buffer *rbb = NULL;
        grpc_op op;
        memset(&op, 0, sizeof(op));
        op.op = GRPC_OP_RECV_MESSAGE;
        op.data.recv_message.recv_message = &rbb;
        if (grpc_call_start_batch(k.call, &op, 1, &k, NULL) != GRPC_CALL_OK) break;
        grpc_completion_queue_pluck(c->cq, &k, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (!rbb) break;
        feat_buf_reset(&b);
        bb_to_buf(rbb, &b);
        grpc_byte_buffer_destroy(rbb);
        if (fn(arg, (const uint8_t *)b.data, b.len)) {
            stopped = 1;
            grpc_call_cancel(k.call, NULL);
            break;
        }
    }
    feat_buf_free(&b);
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &k.trail_md;
    ops[0].data.recv_status_on_client.status = &k.status;
    ops[0].data.recv_status_on_client.status_details = &k.details;
    if (grpc_call_start_batch(k.call, ops, 1, &k, NULL) == GRPC_CALL_OK) {
        grpc_completion_queue_pluck(c->cq, &k, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        rc = stopped ? GRPC_STATUS_OK : k.status;
        copy_msg(k.details, msg, msglen);
    }
out:
    end(&k);
    return rc;
}
