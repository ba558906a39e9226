/*
 * tests/fuzz/fuzz_grpc_request.c — libFuzzer target: every gRPC method featd
 * serves (feat_serve_methods(), serve/service.c and serve/models_rpc.c)
 * called with fuzzed request bytes, exactly as rpc/server.c calls them: a
 * feat_rpc_call_t with a per-call arena, the handler's own protobuf-c unpack
 * and validation, then the store, cache, models and drift monitor of a small
 * daemon (fuzz_daemon.h).
 *
 * Input: "MethodName\n" followed by the request message; without a known
 * name, byte 0 picks the method (modulo their number) and the rest is the
 * request.  Checks beyond the sanitizers: the request is also unpacked with
 * protobuf-c's default allocator (the arena hides small overruns from ASan);
 * a handler returns FEAT_OK with a response that unpacks as the method's
 * declared output type, or a known negative feat_err_t with a message for
 * the client; a stream yields at most max_history_rows rows, each a valid
 * HistoricalRow.  Nothing featd sends back is invalid UTF-8: every string
 * field of every reply (walked on the wire by its descriptor), and every
 * error message but for a character that "%.64s" cut in two (the server
 * drops those bytes before they leave, rpc/server.c).
 *
 * Backup (it creates the directory the request names, anywhere on the host)
 * gets only the unpack of its request: its handler is not called.
 */
#include "fuzz_daemon.h"

#include "featd/v1/admin.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"
#include "common/pbwire.h"
#include "rpc/rpc.h"

static featd_t *d;
static const feat_method_t *methods;
static size_t nmethods;
static feat_arena_t arena;
static int verbose; /* FUZZ_VERBOSE=1: one line per call (what the seeds reach) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    d = fuzz_daemon();
    methods = feat_serve_methods(&nmethods);
    FUZZ_CHECK(nmethods > 0, "no methods");
    feat_arena_init(&arena, 16384);
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    return 0;
}

/* The method's input and output types, from the generated service descriptors. */
static const ProtobufCMethodDescriptor *describe(const feat_method_t *m) {
    static const ProtobufCServiceDescriptor *const services[] = {&featd__v1__feature_service__descriptor,
                                                                &featd__v1__admin_service__descriptor};
    for (size_t s = 0; s < 2; s++) {
        size_t nl = strlen(services[s]->name);
        if (strncmp(m->path + 1, services[s]->name, nl) == 0 && m->path[1 + nl] == '/') {
            const ProtobufCMethodDescriptor *md =
                protobuf_c_service_descriptor_get_method_by_name(services[s], m->path + 2 + nl);
            if (md) return md;
        }
    }
    FUZZ_CHECK(0, "method %s is not in the .proto services", m->path);
    return NULL;
}

/* The name of the first string field of message p[0..n) (desc) that is not
 * valid UTF-8, or NULL.  Independent of serve/service.c's request check. */
static const char *bad_utf8_field(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t n, int depth) {
    feat_pb_t r;
    feat_pb_field_t f;
    if (n == 0) return NULL; /* an empty reply may have no buffer at all */
    feat_pb_init(&r, p, n);
    while (r.p < r.end && feat_pb_next(&r, &f)) {
        const ProtobufCFieldDescriptor *field = protobuf_c_message_descriptor_get_field(desc, f.num);
        if (!field || f.wt != 2) continue;
        if (field->type == PROTOBUF_C_TYPE_STRING && !feat_utf8_valid((const char *)f.s, f.n)) return field->name;
        if (field->type == PROTOBUF_C_TYPE_MESSAGE && depth < 8) {
            const char *b = bad_utf8_field(field->descriptor, f.s, f.n, depth + 1);
            if (b) return b;
        }
    }
    return NULL;
}

static void check_error(const feat_method_t *m, const feat_rpc_call_t *call, feat_err_t rc) {
    if (verbose) fprintf(stderr, "%s: %s: %s\n", m->name, feat_err_str(rc), call->msg);
    FUZZ_CHECK(rc < 0 && strcmp(feat_err_str(rc), "unknown error") != 0, "%s returned %d", m->name, rc);
    FUZZ_CHECK(memchr(call->msg, 0, sizeof(call->msg)) != NULL, "%s: message not terminated", m->name);
    if (rc != FEAT_ERR_NOMEM) FUZZ_CHECK(call->msg[0] != 0, "%s failed (%s) without a message", m->name, feat_err_str(rc));
    /* bytes starting no valid sequence: at most one character cut by a precision or a full buffer */
    size_t len = strlen(call->msg), skipped = 0;
    for (size_t i = 0; i < len;) {
        size_t v = feat_utf8_valid_prefix(call->msg + i, len - i);
        i += v;
        if (i < len) i++, skipped++;
    }
    FUZZ_CHECK(skipped <= 3, "%s: message holds %zu bytes of invalid UTF-8: %s", m->name, skipped, call->msg);
}

static void check_reply(const feat_method_t *m, const ProtobufCMessageDescriptor *out, const feat_buf_t *resp) {
    ProtobufCMessage *r = protobuf_c_message_unpack(out, NULL, resp->len, (const uint8_t *)resp->data);
    if (verbose) fprintf(stderr, "%s: ok, %zu bytes\n", m->name, resp->len);
    FUZZ_CHECK(r != NULL, "%s: the reply is not a %s", m->name, out->name);
    const char *bad = bad_utf8_field(out, (const uint8_t *)resp->data, resp->len, 0);
    FUZZ_CHECK(bad == NULL, "%s: reply field %s is not valid UTF-8", m->name, bad);
    if (out == &featd__v1__predict_response__descriptor) {
        const Featd__V1__PredictResponse *p = (const Featd__V1__PredictResponse *)r;
        FUZZ_CHECK(p->n_predictions >= 1 && (int64_t)p->n_predictions <= d->cfg->serve_max_keys, "%zu predictions",
                   p->n_predictions);
        for (size_t i = 0; i < p->n_predictions; i++)
            FUZZ_CHECK(isfinite(p->predictions[i]->score), "prediction %zu is %g", i, p->predictions[i]->score);
    }
    protobuf_c_message_free_unpacked(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const feat_method_t *m = NULL;
    size_t skip = 1;
    const uint8_t *nl = memchr(data, '\n', size < 40 ? size : 40);
    if (nl) {
        for (size_t i = 0; i < nmethods && !m; i++)
            if (strlen(methods[i].name) == (size_t)(nl - data) && memcmp(methods[i].name, data, (size_t)(nl - data)) == 0)
                m = &methods[i];
        if (m) skip = (size_t)(nl - data) + 1;
    }
    if (!m) m = &methods[data[0] % nmethods];
    const ProtobufCMethodDescriptor *md = describe(m);
    size_t len = size - skip;
    uint8_t *req = malloc(len ? len : 1); /* its own allocation: ASan sees over-reads */
    FUZZ_CHECK(req != NULL, "malloc");
    memcpy(req, data + skip, len);

    ProtobufCMessage *plain = protobuf_c_message_unpack(md->input, NULL, len, req);
    if (plain) protobuf_c_message_free_unpacked(plain, NULL);

    if (strcmp(m->name, "Backup") != 0) {
        feat_rpc_call_t call;
        memset(&call, 0, sizeof(call));
        call.app = &d->serve;
        call.arena = &arena;
        call.req = req;
        call.req_len = len;
        call.deadline_ms = INT64_MAX;
        feat_buf_t resp = FEAT_BUF_INIT;
        if (m->unary) {
            feat_err_t rc = m->unary(&call, &resp);
            if (rc == FEAT_OK) check_reply(m, md->output, &resp);
            else check_error(m, &call, rc);
        } else {
            feat_err_t err = FEAT_OK;
            void *st = m->stream->begin(&call, &err);
            if (!st) {
                check_error(m, &call, err);
            } else {
                int more = 0, rows = 0;
                feat_err_t rc;
                while ((rc = m->stream->next(&call, st, &resp, &more)) == FEAT_OK && more) {
                    FUZZ_CHECK(++rows <= d->cfg->serve_max_history_rows, "%s: more rows than allowed", m->name);
                    check_reply(m, md->output, &resp);
                    feat_buf_reset(&resp);
                }
                if (rc != FEAT_OK) check_error(m, &call, rc);
                m->stream->end(st);
            }
        }
        feat_buf_free(&resp);
        feat_arena_reset(&arena);
    }
    free(req);
    return 0;
}
