/*
 * tests/unit/pbjson_tool.c — proto/pbjson for test_pbjson.py:
 *   pbjson_tool to-json TYPE   stdin: the message's protobuf bytes; stdout: its JSON
 *   pbjson_tool to-pb TYPE     stdin: JSON; stdout: the protobuf bytes (exit 2 and the
 *                              error on stderr when refused)
 * TYPE: a featd.v1 message name (PredictRequest, ...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "featd/v1/admin.pb-c.h"
#include "featd/v1/event.pb-c.h"
#include "featd/v1/feature_service.pb-c.h"
#include "proto/pbjson.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &featd__v1__predict_request__descriptor, &featd__v1__predict_response__descriptor,
    &featd__v1__get_online_features_request__descriptor, &featd__v1__get_online_features_response__descriptor,
    &featd__v1__get_historical_features_request__descriptor, &featd__v1__historical_row__descriptor,
    &featd__v1__push_request__descriptor, &featd__v1__push_response__descriptor,
    &featd__v1__feature_event__descriptor, &featd__v1__label_event__descriptor,
    &featd__v1__import_model_request__descriptor, &featd__v1__model_version__descriptor,
    &featd__v1__status_response__descriptor, &featd__v1__drift_report__descriptor,
    &featd__v1__cluster_map__descriptor, &featd__v1__training_rows__descriptor,
};

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    const ProtobufCMessageDescriptor *d = NULL;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (!strcmp(types[i]->short_name, argv[2])) d = types[i];
    if (!d) {
        fprintf(stderr, "unknown type %s\n", argv[2]);
        return 2;
    }
    feat_buf_t in = FEAT_BUF_INIT, out = FEAT_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) feat_buf_append(&in, chunk, n);
    feat_err_t rc;
    char err[256] = "";
    if (!strcmp(argv[1], "to-json")) rc = feat_pbjson_from_pb(d, (const uint8_t *)in.data, in.len, &out);
    else rc = feat_pbjson_to_pb(d, in.data ? in.data : "", in.len, &out, err, sizeof(err));
    if (rc) fprintf(stderr, "%s: %s\n", feat_err_str(rc), err);
    else fwrite(out.data, 1, out.len, stdout);
    feat_buf_free(&in);
    feat_buf_free(&out);
    return rc ? 2 : 0;
}
