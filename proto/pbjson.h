/*
 * proto/pbjson.h — featd.v1 messages as JSON and back, for any message
 * type, driven by protobuf-c's descriptors: the mapping HTTP/JSON clients
 * use (the proto3 JSON mapping, with the choices below).
 *
 *   field names   the .proto's (snake_case) in output; snake_case or
 *                 lowerCamelCase accepted in input
 *   int64/uint64  JSON numbers in output (featd's are times and counts,
 *                 within 2^53); numbers or decimal strings in input
 *   int32/uint32  numbers; double/float numbers, or "NaN", "Infinity",
 *                 "-Infinity"; bool true/false; string as is (valid UTF-8
 *                 without NUL, as every featd string field)
 *   bytes         base64 (standard alphabet, padding optional in input)
 *   enum          the value's name ("PRESENT"); a number is accepted in input
 *   message       an object; map<K,V> an object with K's text as keys;
 *                 repeated an array; oneof: the one member that is set
 *   defaults      output holds every scalar and repeated field (a default
 *                 too) and every message field that is set; input may leave
 *                 any field out, and null means "not set"
 *   unknown keys  refused in input (a misspelt field is an error, not a
 *                 silent default)
 *
 * Nothing here trusts the input: depth, sizes and types are checked, and a
 * JSON text that does not fit the message gets FEAT_ERR_INVALID with a
 * message naming the field ("rows[3].ts_ms: not an integer").
 */
#ifndef FEAT_PROTO_PBJSON_H
#define FEAT_PROTO_PBJSON_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/err.h"

#define FEAT_PBJSON_MAX_DEPTH 16   /* nested messages/arrays in input */

/* Parses json[0..len) as a desc message and appends its protobuf encoding
 * to out.  FEAT_OK, FEAT_ERR_INVALID (err says where and what),
 * FEAT_ERR_TOO_LARGE (over 16 MiB of text, or deeper than
 * FEAT_PBJSON_MAX_DEPTH), FEAT_ERR_NOMEM. */
feat_err_t feat_pbjson_to_pb(const ProtobufCMessageDescriptor *desc, const char *json, size_t len, feat_buf_t *out,
                             char *err, size_t errlen);

/* Decodes pb[0..len) as a desc message and appends it as one JSON object to
 * out.  FEAT_OK, FEAT_ERR_CORRUPT (not a desc message), FEAT_ERR_NOMEM. */
feat_err_t feat_pbjson_from_pb(const ProtobufCMessageDescriptor *desc, const uint8_t *pb, size_t len, feat_buf_t *out);

/* Appends an unpacked message m as JSON (the same rendering). */
void feat_pbjson_render(const ProtobufCMessage *m, feat_buf_t *out);

#endif
