#!/usr/bin/env python3
"""proto/pbjson (featd.v1 messages as JSON and back, the mapping HTTP/JSON clients use) against
python's google.protobuf.json_format, on 400 random messages of 16 featd.v1 types.

  - to JSON: featd's rendering of each message equals json_format.MessageToDict(message,
    including_default_value_fields=True, preserving_proto_field_name=True), with int64s as numbers
    (pbjson.h's one deliberate difference);
  - to protobuf: json_format.MessageToJson of the message, in lowerCamelCase and in snake_case,
    parsed by featd, gives back the same message;
  - refusals: not JSON, an unknown field, a string for an integer, an integer out of range, a bad
    enum name, bad base64, two members of a oneof, nesting too deep: exit 2 with the field's path.
Exit 77 (skipped) without python3-grpc-tools to generate the python classes."""
import argparse
import base64
import json
import math
import os
import random
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--build-dir", required=True)
ap.add_argument("--source-dir", required=True)
args = ap.parse_args()
TOOL = os.path.join(args.build_dir, "tests", "pbjson_tool")
gen = tempfile.mkdtemp()
proto = os.path.join(args.source_dir, "proto")
try:
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}", f"--python_out={gen}",
                    *[os.path.join(proto, "featd", "v1", f) for f in ("event.proto", "feature_service.proto", "admin.proto")]],
                   check=True, capture_output=True)
except (subprocess.CalledProcessError, FileNotFoundError) as e:
    print(f"SKIP: cannot generate python classes ({e})")
    sys.exit(77)
sys.path.insert(0, gen)
from google.protobuf import json_format  # noqa: E402
from google.protobuf.descriptor import FieldDescriptor as FD  # noqa: E402
from featd.v1 import admin_pb2, event_pb2, feature_service_pb2 as fs  # noqa: E402

TYPES = [fs.PredictRequest, fs.PredictResponse, fs.GetOnlineFeaturesRequest, fs.GetOnlineFeaturesResponse,
         fs.GetHistoricalFeaturesRequest, fs.HistoricalRow, fs.PushRequest, fs.PushResponse, event_pb2.FeatureEvent,
         event_pb2.LabelEvent, admin_pb2.ImportModelRequest, admin_pb2.ModelVersion, admin_pb2.StatusResponse,
         admin_pb2.DriftReport, admin_pb2.ClusterMap, admin_pb2.TrainingRows]
rnd = random.Random(13)
STRS = ["", "u1", "日本", 'q"uote', "back\\slash", "tab\there", "\u2028", "é" * 5, "x" * 40]


def scalar(fd):
    t = fd.type
    if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return rnd.choice([0, 1, -1, 2**53, -(2**62), 2**63 - 1, rnd.randrange(-10**12, 10**12)])
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return rnd.choice([0, 1, 2**64 - 1, rnd.randrange(10**15)])
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return rnd.choice([0, -1, 2**31 - 1, -(2**31), rnd.randrange(-1000, 1000)])
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return rnd.choice([0, 2**32 - 1, rnd.randrange(1000)])
    if t == FD.TYPE_DOUBLE:
        # (no -0.0: protobuf-c, like proto3, leaves a zero out of the encoding, and python keeps its sign)
        return rnd.choice([0.0, 1.5, 1e-300, -3.25e200, rnd.gauss(0, 1e6), math.inf, -math.inf, math.nan])
    if t == FD.TYPE_FLOAT:
        return rnd.choice([0.0, 1.5, -2.25])
    if t == FD.TYPE_BOOL:
        return rnd.random() < 0.5
    if t == FD.TYPE_STRING:
        return rnd.choice(STRS)
    if t == FD.TYPE_BYTES:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 12)))
    if t == FD.TYPE_ENUM:
        return rnd.choice(fd.enum_type.values).number
    raise ValueError(t)


def fill(m, depth=0):
    oneofs_done = set()
    for fd in m.DESCRIPTOR.fields:
        if fd.containing_oneof is not None:
            if fd.containing_oneof.name in oneofs_done or rnd.random() < 0.4:
                continue
            oneofs_done.add(fd.containing_oneof.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vt = fd.message_type.fields_by_name["value"]
            for _ in range(rnd.randrange(0, 3)):
                k = scalar(fd.message_type.fields_by_name["key"])
                if vt.message_type is not None:
                    if depth < 3:
                        fill(getattr(m, fd.name)[k], depth + 1)
                else:
                    getattr(m, fd.name)[k] = scalar(vt)
        elif fd.label == FD.LABEL_REPEATED:
            for _ in range(rnd.randrange(0, 3)):
                if fd.message_type is not None:
                    if depth < 3:
                        fill(getattr(m, fd.name).add(), depth + 1)
                else:
                    getattr(m, fd.name).append(scalar(fd))
        elif fd.message_type is not None:
            if depth < 3 and rnd.random() < 0.7:
                fill(getattr(m, fd.name), depth + 1)
                getattr(m, fd.name).SetInParent()
        elif rnd.random() < 0.8 or fd.containing_oneof is not None:
            setattr(m, fd.name, scalar(fd))
    return m


def normalize(d, desc):
    """MessageToDict's output with int64s as numbers and float("nan") for "NaN"."""
    out = {}
    for k, v in d.items():
        fd = desc.fields_by_name[k]
        def one(x, f=fd):
            if f.message_type is not None:
                return normalize(x, f.message_type)
            if f.type in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64, FD.TYPE_UINT64, FD.TYPE_FIXED64):
                return int(x)
            return x
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vt = fd.message_type.fields_by_name["value"]
            out[k] = {kk: (normalize(vv, vt.message_type) if vt.message_type is not None else one(vv, vt))
                      for kk, vv in v.items()}
        elif fd.label == FD.LABEL_REPEATED:
            out[k] = [one(x) for x in v]
        else:
            out[k] = one(v)
    return out


def same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (float, int)) and not isinstance(b, bool):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) == type(b) or (isinstance(a, int) and isinstance(b, float) and a == b)


def tool(direction, typ, data):
    return subprocess.run([TOOL, direction, typ], input=data, capture_output=True, timeout=30)


fails = []
n = 0
for T in TYPES:
    for _ in range(25):
        m = fill(T())
        n += 1
        r = tool("to-json", T.DESCRIPTOR.name, m.SerializeToString())
        if r.returncode:
            fails.append(f"{T.DESCRIPTOR.name} to-json: {r.stderr.decode()}")
            continue
        got = json.loads(r.stdout)
        want = normalize(json_format.MessageToDict(m, including_default_value_fields=True,
                                                   preserving_proto_field_name=True), T.DESCRIPTOR)
        if not same(want, got):
            fails.append(f"{T.DESCRIPTOR.name} to-json:\n  featd  {got}\n  python {want}")
        for snake in (False, True):
            text = json_format.MessageToJson(m, preserving_proto_field_name=snake).encode()
            r = tool("to-pb", T.DESCRIPTOR.name, text)
            back = T()
            if r.returncode:
                fails.append(f"{T.DESCRIPTOR.name} to-pb ({'snake' if snake else 'camel'}): {r.stderr.decode()}")
                continue
            back.ParseFromString(r.stdout)
            # python's own encoding of both (NaN != NaN, so not ==; map keys sorted)
            if back.SerializeToString(deterministic=True) != m.SerializeToString(deterministic=True):
                fails.append(f"{T.DESCRIPTOR.name} to-pb round trip ({'snake' if snake else 'camel'}):\n  {text[:300]}")
print(f"{n} random messages of {len(TYPES)} types: to JSON and back")

BAD = [("PredictRequest", "{", "not JSON"),
       ("PredictRequest", '{"modell": "m"}', "modell"),
       ("PredictRequest", '{"version": "x1"}', "version"),
       ("PredictRequest", '{"version": -1}', "version"),
       ("PredictRequest", '{"version": " -1"}', "version"),
       ("PredictRequest", '{"version": "+5"}', "version"),
       ("HistoricalRow", '{"ts_ms": " 5"}', "ts_ms"),
       ("PredictRequest", '{"entity_keys": "k"}', "entity_keys"),
       ("PredictRequest", '{"entity_keys": ["a", 3]}', "entity_keys[1]"),
       ("PredictRequest", '{"batch": "yes"}', "batch"),
       ("PushRequest", '{"events": [{"features": {"x": {"double_value": 1, "int64_value": 2}}}]}', "events[0].features.x"),
       ("PushRequest", '{"events": [{"ts": 1e3}]}', "events[0].ts"),
       ("HistoricalRow", '{"values": [{"status": "SOMETIMES"}]}', "values[0].status"),
       ("ImportModelRequest", '{"data": "***"}', "data"),
       ("PredictRequest", '{"model": "a\\u0000b"}', "model"),
       ("ClusterMap", '{"members": ' + "[" * 40 + "]" * 40 + "}", "deep")]
for typ, text, needle in BAD:
    r = tool("to-pb", typ, text.encode())
    err = r.stderr.decode()
    if r.returncode != 2 or needle not in err:
        fails.append(f"{typ} {text[:60]!r}: exit {r.returncode}, {err.strip()!r} (want {needle!r})")
print(f"{len(BAD)} refusals checked")
for f in fails[:20]:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
