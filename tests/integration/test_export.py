#!/usr/bin/python3
"""featctl export (issue 14): a model's and a table's point-in-time training set for a time range,
to CSV and JSON Lines, checked against GetHistoricalFeatures for the same keys and times.

Entities get three feature events at known times, labels arrive between them. Then:
  - export --model for a label-time range writes exactly the labels in that range (computed here),
    each with its label and the features as of its label time, equal to GetHistoricalFeatures for
    the same (key, label time); CSV (read back with pandas) and JSON Lines agree;
  - export --table for an event-time range writes every event in the range with the table's
    features as of the event time, equal to GetHistoricalFeatures;
  - on a terminal a progress bar counts rows; bad usage exits 2, an unknown model 1 with a message."""
import csv
import json
import math
import os
import pty
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "export")
    H.gen_protos(args, wd.path)
    import grpc
    import pandas as pd
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
max_history_rows = 100000
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 2
session.timeout.ms = 6000
[table user]
topic = user_events
feature.x = double
feature.n = int64
feature.c = string
feature.b = bool
[model churn]
table = user
label_topic = churn_labels
task = logreg
""")
    featd = H.start_featd(args, wd, cfg)
    ok = False
    B = H.bins(args)
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        ch = grpc.insecure_channel(addrs["grpc"])
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_ready(admin)
        prod = H.producer(bs)
        rnd = random.Random(9)
        base = int(time.time() * 1000) - 3_600_000
        events, labels = [], []
        for i in range(400):
            k = f"u{i}"
            for j in range(3):
                ts = base + j * 600_000 + i * 10
                f = {"x": rnd.gauss(0, 1), "n": rnd.randint(0, 9), "c": rnd.choice(["a", "b,c", 'q"t', "日本"])}
                if j != 1 or i % 5:     # some events lack b: an older value holds
                    f["b"] = rnd.random() < 0.5
                if i % 7 == 0 and j == 2:
                    del f["x"]
                prod.produce("user_events", key=k, value=json.dumps({"key": k, "ts": ts, "features": f}).encode())
                events.append((k, ts))
            for j in range(2):
                lt = base + j * 600_000 + 300_000 + i * 10
                y = rnd.randint(0, 1)
                prod.produce("churn_labels", key=k, value=json.dumps({"model": "churn", "key": k, "ts": lt, "label": y}).encode())
                labels.append((k, lt, y))
            prod.poll(0)
        assert prod.flush(30) == 0
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= 1200, 60, "events")
        H.wait_for(lambda: (H.metric(addrs["admin"], "featd_ingest_labels_total") or 0) >= 800, 60, "labels")

        def featctl(*a, check=True, stderr_tty=False):
            argv = [B["featctl"], "--addr", addrs["grpc"], "--timeout", "60", *a]
            if stderr_tty:
                master, slave = pty.openpty()
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120)
                os.close(slave)
                err = b""
                while True:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    err += chunk
                os.close(master)
                r.stderr = err.decode(errors="replace")
            else:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            if check:
                assert r.returncode == 0, f"featctl {a}: {r.returncode}\n{r.stdout}\n{r.stderr}"
            return r

        def historical(pairs):
            out = {}
            for b in range(0, len(pairs), 500):
                req = fs.GetHistoricalFeaturesRequest(table="user", rows=[fs.EntityTime(entity_key=k, ts_ms=t)
                                                                          for k, t in pairs[b:b + 500]])
                feats = None
                for row in feat.GetHistoricalFeatures(req, timeout=30):
                    feats = feats or list(row.features)
                    vals = {}
                    for f, v in zip(feats, row.values):
                        kind = v.value.WhichOneof("kind") if v.status == fs.PRESENT else None
                        vals[f] = getattr(v.value, kind) if kind else None
                    out[(row.entity_key, row.ts_ms)] = vals
            return out

        def same(a, b):
            if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
                return (a is None or (isinstance(a, float) and math.isnan(a))) and b is None
            return a == b

        # ---- a model's training set, a label-time range ----
        lo, hi = base + 300_000 + 1000, base + 600_000 + 300_000 + 2000
        want = sorted([(k, t, y) for k, t, y in labels if lo <= t <= hi], key=lambda r: (r[1], r[0]))
        r = featctl("export", "--model", "churn", "--from", str(lo), "--to", str(hi), "--out", wd.file("m.csv"),
                    stderr_tty=True)
        assert "export [" in r.stderr and "100%" in r.stderr, r.stderr
        df = pd.read_csv(wd.file("m.csv"), keep_default_na=False, na_values=[""], dtype={"c": str},
                         float_precision="round_trip")   # pandas' fast parser is off by an ulp
        assert list(df.columns) == ["key", "ts", "label", "x", "n", "c", "b"], list(df.columns)
        got = [(row.key, int(row.ts), int(row.label)) for row in df.itertuples()]
        assert sorted(got, key=lambda r: (r[1], r[0])) == want, (len(got), len(want))
        hist = historical([(k, t) for k, t, _ in want])
        bad = 0
        for row in df.to_dict("records"):
            h = hist[(row["key"], int(row["ts"]))]
            cells = {"x": None if pd.isna(row["x"]) else float(row["x"]),
                     "n": None if pd.isna(row["n"]) else int(row["n"]),
                     "c": None if pd.isna(row["c"]) else row["c"],
                     "b": None if pd.isna(row["b"]) else str(row["b"]).lower() == "true"}
            bad += sum(1 for f in ("x", "n", "c", "b") if not same(cells[f], h[f]))
        H.log(f"export --model: {len(df)} rows (labels in range: {len(want)}), {bad} values differ from "
              f"GetHistoricalFeatures")
        assert bad == 0
        r = featctl("export", "--model", "churn", "--from", str(lo), "--to", str(hi), "--format", "jsonl")
        js = [json.loads(line) for line in r.stdout.splitlines()]
        assert [(j["key"], j["ts"], int(j["label"])) for j in js] == got
        for j in js:
            h = hist[(j["key"], j["ts"])]
            assert all(same(j["features"][f], h[f]) for f in ("x", "n", "c", "b")), (j, h)

        # ---- a table's, an event-time range ----
        lo2, hi2 = base + 600_000, base + 600_000 + 2000
        want2 = sorted([(k, t) for k, t in events if lo2 <= t <= hi2])
        r = featctl("export", "--table", "user", "--from", str(lo2), "--to", str(hi2), "--format", "jsonl",
                    "--out", wd.file("t.jsonl"))
        js = [json.loads(line) for line in open(wd.file("t.jsonl"))]
        assert sorted((j["key"], j["ts"]) for j in js) == want2, (len(js), len(want2))
        hist2 = historical(want2)
        assert all(all(same(j["features"][f], hist2[(j["key"], j["ts"])][f]) for f in ("x", "n", "c", "b")) for j in js)
        assert all("label" not in j for j in js)
        H.log(f"export --table: {len(js)} events in range, every value equal to GetHistoricalFeatures")

        # ---- errors ----
        r = featctl("export", "--model", "churn", "--table", "user", check=False)
        assert r.returncode == 2, r
        r = featctl("export", "--model", "nope", check=False)
        assert r.returncode == 1 and "nope" in r.stderr, r
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
