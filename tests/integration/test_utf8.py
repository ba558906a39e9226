#!/usr/bin/python3
"""Invalid UTF-8 against the real featd, from real clients.

gRPC: every string field of every FeatureService / AdminService request
(nested ones and map entries included) is sent once holding bytes that are
not UTF-8, through a raw channel (grpcio's protobuf refuses to serialize
them: the request is built with a placeholder string, serialized, and the
placeholder's bytes swapped for as many invalid ones).  Each call must fail
with INVALID_ARGUMENT and a message naming the field; featd used to accept
and echo them, and the Python client then failed to parse the reply.  Valid
non-ASCII strings still work, and an error message that cuts a long
non-ASCII name is still UTF-8.

Admin HTTP: /v1/drift's table and feature query parameters, percent-encoded
invalid UTF-8: 400 naming the parameter.

Ingest: JSON and protobuf events with an empty key, an empty table, and
invalid UTF-8 in the key, the Kafka key, a name or a string value are dead
letters with reasons empty_key, unknown_table and invalid_utf8, counted in
/v1/status and /metrics; the good events around them are stored."""
import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PH = "@@BAD@@"                      # 7 bytes, replaced by BAD on the wire
BAD = b"a\xed\xa0\x80z\xffz"        # an encoded surrogate and a 0xff: 7 bytes, not UTF-8


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "utf8")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, event_pb2, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 1
session.timeout.ms = 6000
[table user]
topic = user_events
feature.x = double
feature.c = string
[model m]
table = user
label_topic = m_labels
task = logreg
min_rows = 50
epochs = 5
device = cpu
""")
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        gaddr = addrs["grpc"]
        ch = grpc.insecure_channel(gaddr)
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_ready(admin)
        SC = grpc.StatusCode

        # ---- ingest: good events and bad ones, JSON and protobuf ----
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        prod = H.producer(bs)
        now = int(time.time() * 1000)

        def ev(**kw):
            return json.dumps(dict({"ts": now, "features": {"x": 1.5, "c": "r\u00e9d"}}, **kw), ensure_ascii=False).encode()

        def pb(table="user", key="k", c="red", name="c"):
            e = event_pb2.FeatureEvent(table=table, key=key, ts=now)
            e.features["x"].double_value = 2.5
            e.features[name].string_value = c
            return e.SerializeToString()

        def pb_bad(**kw):
            """pb() with the placeholder in one field, swapped for invalid bytes."""
            b = pb(**kw)
            assert b.count(PH.encode()) == 1
            return b.replace(PH.encode(), BAD)

        sends = [  # (Kafka key, value, reason or None for a good event)
            (b"good1", ev(), None),
            (b"kk", ev(key=""), "empty_key"),
            (b"kk", ev(key=None), "empty_key"),
            (b"kk", ev(table=""), "unknown_table"),
            (b"kk", ev(table=7), "unknown_table"),
            (b"kk", ev(key="a").replace(b'"a"', b'"a\xff"'), "invalid_utf8"),
            (b"kk", ev(key="LONE").replace(b'"LONE"', b'"\\ud800"'), "invalid_utf8"),  # an escaped lone surrogate
            (b"kk", ev().replace("r\u00e9d".encode(), b"r\xe9d"), "invalid_utf8"),
            (b"\xc3(", ev(), "invalid_utf8"),                              # the Kafka key, used as the key
            (b"kk", pb(key="good2"), None),
            (b"\xff", pb(key="good3"), None),                              # Kafka key not used: fine
            (b"kk", pb_bad(key=PH), "invalid_utf8"),
            (b"kk", pb_bad(table=PH), "invalid_utf8"),
            (b"kk", pb_bad(name=PH), "invalid_utf8"),
            (b"kk", pb_bad(c=PH), "invalid_utf8"),
            (b"\xf8\x88\x80\x80\x80", pb(key=""), "invalid_utf8"),         # empty key = absent: the Kafka key
            (b"good4", pb(table="", key=""), None),                        # empty = absent: fall back
        ]
        for k, v, _ in sends:
            prod.produce("user_events", key=k, value=v)
        assert prod.flush(30) == 0
        want = {}
        for _, _, r in sends:
            if r:
                want[r] = want.get(r, 0) + 1
        ngood = sum(1 for s in sends if s[2] is None)

        def status():
            return json.loads(urllib.request.urlopen(f"http://{addrs['admin']}/v1/status", timeout=5).read())

        H.wait_for(lambda: status()["ingest"]["events"] + status()["ingest"]["dead_letters"] >= len(sends), 60,
                   "every event applied or dead-lettered")
        st = status()["ingest"]
        assert st["events"] == ngood, st
        assert st["dead_letters_by_reason"] == want, f"{st['dead_letters_by_reason']} != {want}"
        for r, n in want.items():
            assert H.metric(addrs["admin"], "featd_dead_letters_total", f'reason="{r}"') == n, r
        r = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=["good1", "good2", "good3", "good4"]),
                                   timeout=10)
        for row in r.rows:
            assert all(v.status == fs.PRESENT for v in row.values), row
        H.log(f"ingest: {ngood} good events stored, dead letters {want}")

        # ---- gRPC: invalid UTF-8 in every request string field ----
        raw = grpc.insecure_channel(gaddr)
        FSV, ASV = "/featd.v1.FeatureService/", "/featd.v1.AdminService/"

        def row(key, name="x", sval=None):
            rr = fs.RawRow(entity_key=key)
            if sval is None:
                rr.features[name].double_value = 1.0
            else:
                rr.features[name].string_value = sval
            return rr

        cases = [  # (method, streaming, request with PH in one field, the field's name in the message)
            (FSV + "GetOnlineFeatures", False, fs.GetOnlineFeaturesRequest(table=PH, entity_keys=["k"]), "table"),
            (FSV + "GetOnlineFeatures", False, fs.GetOnlineFeaturesRequest(table="user", entity_keys=["k", PH]),
             "entity_keys[1]"),
            (FSV + "GetOnlineFeatures", False,
             fs.GetOnlineFeaturesRequest(table="user", entity_keys=["k"], features=[PH]), "features[0]"),
            (FSV + "GetHistoricalFeatures", True,
             fs.GetHistoricalFeaturesRequest(table=PH, rows=[fs.EntityTime(entity_key="k", ts_ms=now)]), "table"),
            (FSV + "GetHistoricalFeatures", True,
             fs.GetHistoricalFeaturesRequest(table="user", rows=[fs.EntityTime(entity_key="k", ts_ms=now),
                                                                  fs.EntityTime(entity_key=PH, ts_ms=now)]),
             "rows[1].entity_key"),
            (FSV + "GetHistoricalFeatures", True,
             fs.GetHistoricalFeaturesRequest(table="user", rows=[fs.EntityTime(entity_key="k", ts_ms=now)],
                                             features=["x", PH]), "features[1]"),
            (FSV + "Predict", False, fs.PredictRequest(model=PH, entity_keys=["k"]), "model"),
            (FSV + "Predict", False, fs.PredictRequest(model="m", entity_keys=[PH]), "entity_keys[0]"),
            (FSV + "Predict", False, fs.PredictRequest(model="m", entity_keys=["k"], alias=PH), "alias"),
            (FSV + "Predict", False, fs.PredictRequest(model="m", rows=[row(PH)]), "rows[0].entity_key"),
            (FSV + "Predict", False, fs.PredictRequest(model="m", rows=[row("r"), row("s", name=PH)]),
             "rows[1].features[0].key"),
            (FSV + "Predict", False, fs.PredictRequest(model="m", rows=[row("r", name="c", sval=PH)]),
             "rows[0].features[0].value.string_value"),
            (ASV + "ListModels", False, admin_pb2.ListModelsRequest(model=PH), "model"),
            (ASV + "Promote", False, admin_pb2.PromoteRequest(model=PH), "model"),
            (ASV + "Rollback", False, admin_pb2.RollbackRequest(model=PH), "model"),
            (ASV + "TriggerRetrain", False, admin_pb2.TriggerRetrainRequest(model=PH), "model"),
            (ASV + "TriggerRetrain", False, admin_pb2.TriggerRetrainRequest(model="m", reason=PH), "reason"),
            (ASV + "GetRetrainStatus", False, admin_pb2.GetRetrainStatusRequest(model=PH), "model"),
            (ASV + "GetDriftReport", False, admin_pb2.GetDriftReportRequest(table=PH), "table"),
            (ASV + "GetDriftReport", False, admin_pb2.GetDriftReportRequest(table="user", feature=PH), "feature"),
            (ASV + "PinDriftReference", False, admin_pb2.PinDriftReferenceRequest(table=PH), "table"),
            (ASV + "PinDriftReference", False, admin_pb2.PinDriftReferenceRequest(table="user", feature=PH),
             "feature"),
            (ASV + "Backup", False, admin_pb2.BackupRequest(dir="/tmp/" + PH), "dir"),
        ]
        before = H.metric(addrs["admin"], "featd_rpc_requests_total") or 0
        for path, streaming, req, field in cases:
            wire = req.SerializeToString()
            assert wire.count(PH.encode()) == 1, path
            wire = wire.replace(PH.encode(), BAD)
            fn = (raw.unary_stream if streaming else raw.unary_unary)(path, request_serializer=None,
                                                                      response_deserializer=None)
            try:
                res = fn(wire, timeout=10)
                if streaming:
                    res = list(res)
                raise AssertionError(f"{path} with invalid UTF-8 in {field}: accepted, replied {res!r:.200}")
            except grpc.RpcError as e:
                assert e.code() == SC.INVALID_ARGUMENT, f"{path} {field}: {e.code()} ({e.details()})"
                d = e.details() or ""
                assert d.startswith(field + " ") and "UTF-8" in d, f"{path} {field}: message {d!r}"
        assert not os.path.exists(b"/tmp/" + BAD), "Backup created a directory"
        H.log(f"gRPC: {len(cases)} requests with invalid UTF-8, each INVALID_ARGUMENT naming its field")
        # and a NUL byte is still refused, naming the field
        wire = fs.GetOnlineFeaturesRequest(table="user", entity_keys=["a" + PH]).SerializeToString()
        try:
            raw.unary_unary(FSV + "GetOnlineFeatures")(wire.replace(PH.encode(), b"\x00" * 7), timeout=10)
            raise AssertionError("NUL accepted")
        except grpc.RpcError as e:
            assert e.code() == SC.INVALID_ARGUMENT and e.details() == "entity_keys[0] contains a NUL byte", e.details()

        # a tag varint longer than 32 bits, which protobuf-c truncates and takes, hides nothing
        wire = b"\xf0\xff\xff\xff\x63\x74" + b"\x0a\x07" + BAD + b"\x12\x01k"
        try:
            raw.unary_unary(FSV + "Predict")(wire, timeout=10)
            raise AssertionError("long tag accepted")
        except grpc.RpcError as e:
            assert e.code() == SC.INVALID_ARGUMENT and "malformed" in e.details(), e.details()

        # valid non-ASCII is fine, echoed intact, through the ordinary stubs
        r = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=["\u00e9\U0001f600", "good1"]),
                                   timeout=10)
        assert [x.entity_key for x in r.rows] == ["\u00e9\U0001f600", "good1"], r
        assert r.rows[1].values[1].value.string_value == "r\u00e9d", r.rows[1]
        # an error message that cuts a long non-ASCII name stays UTF-8 (no half character)
        try:
            feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="\u20ac" * 40, entity_keys=["k"]), timeout=10)
            raise AssertionError("unknown table accepted")
        except grpc.RpcError as e:
            d = e.details()
            assert e.code() == SC.INVALID_ARGUMENT and d == 'unknown table "' + "\u20ac" * 21 + '"', \
                f"message not cut on a character: {d!r}"

        # ---- admin HTTP ----
        def http(q):
            try:
                with urllib.request.urlopen(f"http://{addrs['admin']}/v1/drift?{q}", timeout=5) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        for q, field in (("table=%ff", "table"), ("table=us%C0%AFer", "table"), ("feature=%ed%a0%80", "feature"),
                         ("table=user&feature=x%f4%90%80%80", "feature")):
            code, body = http(q)
            assert code == 400 and body == {"error": f"query parameter {field} is not valid UTF-8"}, (q, code, body)
        code, body = http("table=user&feature=%C3%A9")
        assert code == 200 and body == {"features": []}, (code, body)
        code, body = http("table=user")
        assert code == 200 and "features" in body, (code, body)
        H.log("admin HTTP: /v1/drift with invalid UTF-8 in table or feature: 400 naming it")

        assert featd.alive(), featd.tail()
        after = H.metric(addrs["admin"], "featd_rpc_requests_total")
        assert after > before
        rc = featd.stop()
        assert rc == 0, f"featd exit status {rc}:\n{featd.tail()}"
        ok = True
        H.log("PASS")
    finally:
        if os.path.isdir(b"/tmp/" + BAD):
            os.rmdir(b"/tmp/" + BAD)
        if featd.alive():
            featd.kill9()
        wd.cleanup(ok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
