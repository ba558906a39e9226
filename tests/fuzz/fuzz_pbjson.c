/*
 * tests/fuzz/fuzz_pbjson.c — libFuzzer target: proto/pbjson, JSON to a
 * featd.v1 message and back (what HTTP/JSON clients send).
 *
 * Input: byte 0 picks the message type, the rest is the JSON text.  Checks:
 * no crash or sanitizer finding on any input; an accepted text's message,
 * rendered as JSON, is valid JSON that parses back to the same protobuf
 * bytes (the rendering and the parser agree).
 */
#include "fuzz_util.h"

#include "featd/v1/admin.pb-c.h"
#include "featd/v1/event.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"
#include "proto/pbjson.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &featd__v1__predict_request__descriptor, &featd__v1__get_online_features_request__descriptor,
    &featd__v1__get_historical_features_request__descriptor, &featd__v1__push_request__descriptor,
    &featd__v1__import_model_request__descriptor, &featd__v1__label_event__descriptor,
    &featd__v1__model_version__descriptor, &featd__v1__cluster_map__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const ProtobufCMessageDescriptor *d = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    feat_buf_t pb = FEAT_BUF_INIT, js = FEAT_BUF_INIT, pb2 = FEAT_BUF_INIT;
    char err[256];
    if (feat_pbjson_to_pb(d, (const char *)data + 1, size - 1, &pb, err, sizeof(err)) == FEAT_OK) {
        FUZZ_CHECK(feat_pbjson_from_pb(d, (const uint8_t *)pb.data, pb.len, &js) == FEAT_OK, "its own bytes");
        FUZZ_CHECK(fuzz_json_valid(js.data, js.len), "rendering is not JSON: %.*s", (int)js.len, js.data);
        FUZZ_CHECK(feat_pbjson_to_pb(d, js.data, js.len, &pb2, err, sizeof(err)) == FEAT_OK, "re-parse: %s", err);
        FUZZ_CHECK(pb.len == pb2.len && !memcmp(pb.data, pb2.data, pb.len), "round trip changed the message");
    }
    feat_buf_free(&pb);
    feat_buf_free(&js);
    feat_buf_free(&pb2);
    return 0;
}
