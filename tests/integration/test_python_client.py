#!/usr/bin/python3
"""The Python client (clients/python, issue 14) against the real daemon, under /usr/bin/python3 with
Debian's python3-grpcio and python3-pandas; stubs generated at build time (build/clients/python).

  - get_online_features (refs and a whole table; rows and a DataFrame) returns the values this test
    sent, None where featd has none, and the statuses with with_status;
  - get_historical_features returns, for each (entity, time) of a DataFrame, the value a reference
    computed here from the event history says was current then (Feast's point-in-time join);
  - predict equals Predict through raw grpc; retrain reports progress and returns the version the
    registry lists; promote/rollback; import_model with a python3-xgboost model (when installed);
  - push: accepted and rejected (with dead-letter reasons) events;
  - errors are typed and carry featd's message: NotFound, InvalidArgument, PermissionDenied (a read
    token calling an admin method), Unauthenticated (no token);
  - docs/PYTHON.md: every python block runs, in order, and prints what it shows."""
import json
import math
import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

READ, ADMIN = "rd-7c1e9a4b2f6d8e0a3b5c", "adm-2b4d6f8a0c1e3a5b7d9f"


def main():
    args = H.parse_args()
    sys.path.insert(0, os.path.join(args.build_dir, "clients", "python"))
    try:
        import pandas as pd
        import featd
    except ImportError as e:
        print(f"SKIP: {e} (the client is built when /usr/bin/python3 has grpc_tools; pandas: python3-pandas)")
        return 77
    wd = H.Workdir(args, "pyclient")
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
[auth]
read_tokens_file = {wd.file("read.tokens")}
admin_tokens_file = {wd.file("admin.tokens")}
[kafka]
embedded = true
partitions = 2
session.timeout.ms = 6000
[drift]
window_events = 200
reference_events = 200
[table user]
topic = user_events
entity = user_id
ttl = 30d
feature.clicks = int64
feature.country = string
feature.amount = double
[model churn]
table = user
label_topic = churn_labels
task = logreg
features = clicks,country,amount
min_rows = 100
policy = manual
""")
    featd_proc = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        store = featd.Client(addrs["grpc"], token=ADMIN)
        H.wait_for(lambda: store.status()["ready"], 60, "ready")
        prod = H.producer(bs)
        rnd = random.Random(4)
        now = int(time.time() * 1000)
        hist = {}   # key -> [(ts, {feature: value})]
        for i in range(400):
            k = f"u{i}"
            for j in range(3):
                ts = now - 3 * 3600_000 + j * 3600_000 + i
                f = {"clicks": rnd.randint(0, 50), "amount": round(rnd.uniform(0, 100), 3)}
                if j == 0 or i % 3:
                    f["country"] = rnd.choice(["de", "fr", "us"])
                prod.produce("user_events", key=k, value=json.dumps({"user_id": k, "ts": ts, "features": f}).encode())
                hist.setdefault(k, []).append((ts, f))
            y = 1 if rnd.random() < 1 / (1 + math.exp(-(hist[k][-1][1]["clicks"] - 25) / 8)) else 0
            prod.produce("churn_labels", key=k, value=json.dumps({"model": "churn", "key": k, "ts": now - 60_000, "label": y}).encode())
        assert prod.flush(30) == 0
        H.wait_for(lambda: store.status().get("events_applied", 0) >= 1200, 60, "events")
        H.wait_for(lambda: (H.metric(addrs["admin"], "featd_ingest_labels_total", token=READ) or 0) >= 400, 60, "labels")

        def asof(k, t):
            out = {}
            for ts, f in hist.get(k, []):
                if ts <= t:
                    out.update(f)
            return out

        # ---- online ----
        keys = [f"u{i}" for i in range(0, 400, 7)] + ["nobody"]
        rows = store.get_online_features(["user:clicks", "user:country"], keys)
        for r in rows:
            want = asof(r["entity_key"], now)
            assert r["clicks"] == want.get("clicks") and r["country"] == want.get("country"), (r, want)
        df = store.get_online_features("user", keys, as_frame=True, with_status=True)
        assert list(df.columns[:4]) == ["entity_key", "clicks", "clicks__status", "clicks__event_time_ms"], list(df.columns)
        assert df.iloc[-1]["clicks__status"] == "NOT_FOUND" and pd.isna(df.iloc[-1]["amount"])   # NaN in a frame
        assert abs(df.iloc[0]["amount"] - asof(keys[0], now)["amount"]) == 0

        # ---- point in time ----
        pit = pd.DataFrame({"user_id": [f"u{rnd.randrange(400)}" for _ in range(300)] + ["nobody"],
                            "event_timestamp": [pd.Timestamp(now - rnd.randrange(4 * 3600_000), unit="ms", tz="UTC")
                                                for _ in range(300)] + [pd.Timestamp.now(tz="UTC")],
                            "label": list(range(301))})
        got = store.get_historical_features(pit, ["user:clicks", "user:country", "user:amount"])
        assert list(got.columns) == ["user_id", "event_timestamp", "label", "clicks", "country", "amount"]
        bad = 0
        for r in got.itertuples():
            want = asof(r.user_id, int(r.event_timestamp.value // 1_000_000))
            bad += (r.clicks != want.get("clicks")) + (r.country != want.get("country")) + (r.amount != want.get("amount"))
        H.log(f"get_historical_features: 301 rows, {bad} values differ from the reference point-in-time join")
        assert bad == 0

        # ---- models ----
        phases = []
        v = store.retrain("churn", progress=lambda ph, p: phases.append((ph, p)))
        assert v == 1 and phases[-1] == ("done", 1.0), (v, phases[-3:])   # a short run may show only its end
        ms = store.models("churn")
        assert ms[0]["version"] == 1 and ms[0]["stage"] == "champion" and "learning_rate" in ms[0]["params"], ms[0]
        preds = store.predict("churn", keys[:20])
        import grpc
        H.gen_protos(args, wd.path)
        from featd.v1 import feature_service_pb2 as fs, feature_service_pb2_grpc
        raw = feature_service_pb2_grpc.FeatureServiceStub(grpc.insecure_channel(addrs["grpc"])).Predict(
            fs.PredictRequest(model="churn", entity_keys=keys[:20]), metadata=[("authorization", f"Bearer {READ}")])
        assert [(p.entity_key, p.score, p.version) for p in preds] == \
            [(p.entity_key, p.score, raw.version) for p in raw.predictions]
        assert store.retrain("churn") == 2 and store.promote("churn") == 2 and store.rollback("churn") == 1
        try:
            import numpy as np
            import xgboost as xgb
            X = np.array([[asof(f"u{i}", now)["clicks"], asof(f"u{i}", now)["amount"]] for i in range(400)])
            b = xgb.train({"objective": "binary:logistic", "max_depth": 3}, xgb.DMatrix(X, label=X[:, 0] > 25,
                                                                                         feature_names=["clicks", "amount"]), 20)
            b.save_model(wd.file("m.json"))
            assert store.import_model("churn", wd.file("m.json")) == 3
            p3 = store.predict("churn", keys[:5], version=3)
            want = b.predict(xgb.DMatrix(X[[int(k[1:]) for k in keys[:5]]], feature_names=["clicks", "amount"]))
            assert max(abs(p.score - float(w)) for p, w in zip(p3, want)) <= 1e-6
        except ImportError:
            H.log("python3-xgboost missing: import_model not tried")

        # ---- push ----
        res = store.push("user", pd.DataFrame([{"user_id": "p1", "clicks": 5, "country": "de", "amount": float("nan")},
                                               {"user_id": "p2", "clicks": 1, "bogus": 1.0}]))
        assert res.accepted == 1 and res.rejected == [(1, "unknown_feature", res.rejected[0][2])], res
        H.wait_for(lambda: store.get_online_features("user:clicks", ["p1"])[0]["clicks"] == 5, 30, "pushed p1")

        # ---- errors ----
        def raises(cls, fn, needle):
            try:
                fn()
            except cls as e:
                assert needle in str(e) and isinstance(e, featd.FeatdError), (cls, str(e))
                return e
            raise AssertionError(f"{cls.__name__} not raised")
        e = raises(featd.NotFound, lambda: store.predict("nope", ["u1"]), "nope")
        assert e.code == "NOT_FOUND" and e.method == "Predict"
        raises(featd.InvalidArgument, lambda: store.predict("churn", ["u1"], alias="best"), "alias")
        reader = featd.Client(addrs["grpc"], token=READ)
        raises(featd.PermissionDenied, lambda: reader.retrain("churn"), "admin token")
        assert reader.get_online_features("user:clicks", ["u1"])[0]["clicks"] == asof("u1", now)["clicks"]
        raises(featd.Unauthenticated, lambda: featd.Client(addrs["grpc"]).status(), "token")

        # ---- docs/PYTHON.md, block by block ----
        doc = open(os.path.join(args.source_dir, "docs", "PYTHON.md")).read()
        blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
        ns = {"address": addrs["grpc"], "admin_token": ADMIN}
        for i, code in enumerate(blocks):
            exec(compile(code, f"docs/PYTHON.md block {i + 1}", "exec"), ns)
        H.log(f"docs/PYTHON.md: {len(blocks)} blocks ran")
        assert len(blocks) >= 6
        ok = featd_proc.stop() == 0
        assert ok
    finally:
        if featd_proc.alive():
            featd_proc.stop()
        if not ok:
            print(featd_proc.tail(60))
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
