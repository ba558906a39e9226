#!/usr/bin/python3
"""The HTTP/JSON API (http.listen, issue 14) against the same calls over gRPC, with python's
http.client and grpcio, and with curl as the README shows it.

  - GetOnlineFeatures, Predict, ListModels: the JSON answer equals the gRPC response rendered by
    google.protobuf.json_format (int64s as numbers), per-value statuses (PRESENT, NOT_FOUND) included;
  - GetHistoricalFeatures (a stream): a JSON array of the rows gRPC streams;
  - Push: accepted events reach the table, rejected ones carry their dead-letter reason;
  - errors: {"error", "code"} with the matching HTTP status: 404 for an unknown model or method,
    400 naming the field for a bad body, 401 without a token (WWW-Authenticate), 403 for a read
    token on an admin method, 405 for GET, 413 for a body over http.max_body;
  - the README's curl examples run as written (address and token substituted)."""
import http.client
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

READ, ADMIN = "rd-5e7a9c1b3d5f7a9c1e3b", "adm-8c6a4e2d0b9f7e5d3c1a"


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "httpapi")
    H.gen_protos(args, wd.path)
    import grpc
    from google.protobuf import json_format
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    open(wd.file("read.tokens"), "w").write(READ + "\n")
    open(wd.file("admin.tokens"), "w").write(ADMIN + "\n")
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
[admin]
listen = 127.0.0.1:0
[http]
listen = 127.0.0.1:0
max_body = 65536
[auth]
read_tokens_file = {wd.file("read.tokens")}
admin_tokens_file = {wd.file("admin.tokens")}
[kafka]
embedded = true
partitions = 2
session.timeout.ms = 6000
[table user]
topic = user_events
entity = user_id
feature.clicks = int64
feature.country = string
feature.amount = double
[model churn]
table = user
label_topic = churn_labels
task = logreg
min_rows = 50
""")
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        assert "http" in addrs, addrs
        hhost, hport = addrs["http"].rsplit(":", 1)
        meta = [("authorization", f"Bearer {ADMIN}")]
        ch = grpc.insecure_channel(addrs["grpc"])
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), metadata=meta, timeout=5).ready, 60, "ready")
        conn = http.client.HTTPConnection(hhost, int(hport), timeout=30)

        def post(path, body, token=ADMIN, raw=None, method="POST"):
            hdr = {"Content-Type": "application/json"}
            if token:
                hdr["Authorization"] = f"Bearer {token}"
            conn.request(method, path, body=raw if raw is not None else json.dumps(body), headers=hdr)
            r = conn.getresponse()
            data = r.read()
            return r.status, json.loads(data) if data else None, r

        def as_json(msg):
            d = json_format.MessageToDict(msg, including_default_value_fields=True, preserving_proto_field_name=True)
            return json.loads(json.dumps(d), parse_int=int)

        def ints(x, desc):  # MessageToDict writes int64s as strings; featd as numbers
            from google.protobuf.descriptor import FieldDescriptor as FD
            if isinstance(x, dict):
                out = {}
                for k, v in x.items():
                    fd = desc.fields_by_name.get(k)
                    if fd is None:
                        out[k] = v
                    elif fd.message_type is not None and fd.message_type.GetOptions().map_entry:
                        vt = fd.message_type.fields_by_name["value"]
                        out[k] = {kk: ints(vv, vt.message_type) if vt.message_type else vv for kk, vv in v.items()}
                    elif fd.message_type is not None:
                        out[k] = [ints(e, fd.message_type) for e in v] if isinstance(v, list) else ints(v, fd.message_type)
                    elif fd.type in (FD.TYPE_INT64, FD.TYPE_UINT64, FD.TYPE_SINT64):
                        out[k] = [int(e) for e in v] if isinstance(v, list) else int(v)
                    else:
                        out[k] = v
                return out
            return x

        # ---- data, a model ----
        prod = H.producer(open(wd.file("data/kafka.bootstrap")).read().strip())
        now = int(time.time() * 1000)
        for i in range(200):
            k = f"u{i}"
            prod.produce("user_events", key=k, value=json.dumps(
                {"user_id": k, "ts": now - 60_000 + i, "features": {"clicks": i % 17, "country": ["de", "fr"][i % 2],
                                                                   "amount": i / 3}}).encode())
            prod.produce("churn_labels", key=k, value=json.dumps(
                {"model": "churn", "key": k, "ts": now - 30_000, "label": int(i % 17 > 8)}).encode())
        assert prod.flush(30) == 0
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), metadata=meta, timeout=5).events_applied >= 200, 60, "events")
        H.wait_for(lambda: (H.metric(addrs["admin"], "featd_ingest_labels_total", token=READ) or 0) >= 200, 60, "labels")
        code, body, _ = post("/v1/AdminService/TriggerRetrain", {"model": "churn", "reason": "http"})
        assert code == 200 and body["run_id"] >= 1, (code, body)
        H.wait_for(lambda: [v for v in admin.ListModels(admin_pb2.ListModelsRequest(model="churn"), metadata=meta,
                                                         timeout=5).versions], 60, "v1")

        # ---- the same answers as gRPC ----
        keys = ["u1", "u2", "nobody"]
        req = {"table": "user", "entity_keys": keys, "features": ["clicks", "country", "amount"]}
        code, got, _ = post("/v1/FeatureService/GetOnlineFeatures", req)
        want = feat.GetOnlineFeatures(json_format.ParseDict(req, fs.GetOnlineFeaturesRequest()), metadata=meta, timeout=10)
        assert code == 200 and got == ints(as_json(want), fs.GetOnlineFeaturesResponse.DESCRIPTOR), (got, as_json(want))
        assert got["rows"][0]["values"][0]["status"] == "PRESENT" and got["rows"][2]["values"][0]["status"] == "NOT_FOUND"
        assert got["rows"][0]["values"][0]["value"] == {"int64_value": 1}, got["rows"][0]
        code, got, _ = post("/v1/FeatureService/Predict", {"model": "churn", "entityKeys": keys})   # camelCase too
        want = feat.Predict(fs.PredictRequest(model="churn", entity_keys=keys), metadata=meta, timeout=10)
        assert code == 200 and got == ints(as_json(want), fs.PredictResponse.DESCRIPTOR), (got, as_json(want))
        hreq = {"table": "user", "rows": [{"entity_key": "u3", "ts_ms": now}, {"entity_key": "u3", "ts_ms": now - 3_600_000}]}
        code, got, _ = post("/v1/FeatureService/GetHistoricalFeatures", hreq)
        want = list(feat.GetHistoricalFeatures(json_format.ParseDict(hreq, fs.GetHistoricalFeaturesRequest()),
                                               metadata=meta, timeout=10))
        assert code == 200 and got == [ints(as_json(w), fs.HistoricalRow.DESCRIPTOR) for w in want], (got, want)
        code, got, _ = post("/v1/AdminService/ListModels", {"model": "churn"}, token=READ)
        assert code == 200 and got["versions"][0]["version"] == 1 and got["versions"][0]["stage"] == "champion"
        code, got, _ = post("/v1/FeatureService/Push", {"table": "user", "events": [
            {"key": "h1", "features": {"clicks": {"int64_value": 7}}},
            {"key": "h2", "features": {"clicks": {"string_value": "seven"}}}]})
        assert code == 200 and got["accepted"] == 1 and got["rejected"][0]["reason"] == "wrong_type", got
        H.wait_for(lambda: post("/v1/FeatureService/GetOnlineFeatures", {"table": "user", "entity_keys": ["h1"]})[1]
                   ["rows"][0]["values"][0].get("value") == {"int64_value": 7}, 30, "pushed h1")

        # ---- errors ----
        code, got, _ = post("/v1/FeatureService/Predict", {"model": "nope", "entity_keys": ["u1"]})
        assert code == 404 and got["code"] == "NOT_FOUND" and "nope" in got["error"], (code, got)
        code, got, _ = post("/v1/FeatureService/Predict", {"model": "churn", "entity_keys": "u1"})
        assert code == 400 and got["code"] == "INVALID_ARGUMENT" and "entity_keys" in got["error"], (code, got)
        code, got, _ = post("/v1/FeatureService/Predict", None, raw="{not json")
        assert code == 400 and "not JSON" in got["error"], (code, got)
        code, got, r = post("/v1/FeatureService/Predict", {"model": "churn"}, token=None)
        assert code == 401 and got["code"] == "UNAUTHENTICATED" and r.getheader("WWW-Authenticate"), (code, got)
        code, got, _ = post("/v1/AdminService/TriggerRetrain", {"model": "churn"}, token=READ)
        assert code == 403 and got["code"] == "PERMISSION_DENIED", (code, got)
        code, got, r = post("/v1/FeatureService/Predict", None, raw="", method="GET")
        assert code == 405 and r.getheader("Allow") == "POST", code
        code, got, _ = post("/v1/FeatureService/NoSuchMethod", {})
        assert code == 404, code
        conn.request("POST", "/v1/FeatureService/Predict", body=b"{" + b" " * 70000 + b"}",
                     headers={"Authorization": f"Bearer {ADMIN}"})
        r = conn.getresponse()
        r.read()
        assert r.status == 413, r.status
        conn.close()

        # ---- the README's curl examples ----
        readme = open(os.path.join(args.source_dir, "README.md")).read()
        sect = readme[readme.index("## HTTP/JSON"):]
        sect = sect[:sect.index("\n## ", 4)]
        block = re.findall(r"```sh\n(.*?)```", sect, re.S)[0]
        lines = [l_ for l_ in block.replace("\\\n", " ").splitlines() if l_.strip() and not l_.startswith("#")]
        assert len(lines) >= 3, lines
        for line in lines:
            cmd = line.replace("localhost:7072", addrs["http"])
            r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60,
                               env=dict(os.environ, FEATD_TOKEN=ADMIN))
            assert r.returncode == 0, (cmd, r.stdout, r.stderr)
            out = json.loads(r.stdout)
            assert "error" not in out, (cmd, out)
            H.log(f"README: {line.strip()[:70]}... -> {r.stdout.strip()[:90]}")
        ok = featd.stop() == 0
        assert ok
    finally:
        if featd.alive():
            featd.stop()
        if not ok:
            print(featd.tail(60))
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
