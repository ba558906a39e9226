#!/usr/bin/python3
"""Tree models in the daemon, end to end (issue 13), with real clients (confluent-kafka, grpcio,
featctl) and python3-xgboost as the outside reference.

Entities' features and labels come through Kafka from a generative model with an interaction
(x·m) that a linear model cannot see, and some entities lack x (missing values). Then:
  - featctl retrain registers a gbdt_classifier version: its metadata names the task and the tree
    parameters, and its validation AUC beats the logistic regression trained on the same labels;
  - a model trained outside featd with python3-xgboost on the same rows is imported with
    featctl models import ... --format xgboost-json, reading four of the model's five features: it
    becomes the challenger, with validation
    metrics featd computed on its own time split, and featd's Predict for held-out entities (some
    without x) equals the booster's predict() on the same values to 1e-6;
  - promote and rollback work on the imported version as on a trained one;
  - bad files and mismatches are refused with a message naming what and register nothing: a
    truncated file, a string feature, an unknown feature, a regression objective for a classifier,
    a feature count that does not match, a format featd does not read;
  - a model with no labels yet takes an imported version as its champion (metrics empty).
Exit 77 (skipped, visibly) when /usr/bin/python3 has no xgboost."""
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:
    print(f"SKIP: {e} (apt install python3-xgboost)")
    sys.exit(77)

NTRAIN, NHOLD = 3000, 400
FEATS = ["x", "n", "m", "b"]


def config(wd):
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
max_message = 16MiB
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 1
session.timeout.ms = 6000
[table user]
topic = user_events
ttl = 1d
feature.x = double
feature.n = int64
feature.m = double
feature.b = bool
feature.c = string
[model risk]
table = user
label_topic = risk_labels
task = gbdt_classifier
features = x,n,m,b,c
policy = manual
min_rows = 200
trees = 150
max_depth = 4
learning_rate = 0.2
early_stopping_rounds = 15
[model lin]
table = user
label_topic = lin_labels
task = logreg
features = x,n,m,b
min_rows = 200
epochs = 20
learning_rate = 0.03
device = cpu
[model fresh]
table = user
label_topic = fresh_labels
task = gbdt_classifier
features = x,n,m,b
[model spend]
table = user
label_topic = spend_labels
task = gbdt_regressor
features = x,n,m,b
min_rows = 1000000
"""


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "trees")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd))
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        ch = grpc.insecure_channel(addrs["grpc"], options=[("grpc.max_send_message_length", 64 << 20)])
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_ready(admin)

        def featctl(*a, check=True):
            r = H.featctl(args, "--addr", addrs["grpc"], "--timeout", "60", *a, timeout=300)
            if check:
                assert r.returncode == 0, f"featctl {a}: {r.returncode}\n{r.stdout}\n{r.stderr}"
            return r

        # ---- data: an interaction, and x missing for one entity in ten ----
        rnd = random.Random(5)
        now = int(time.time() * 1000)
        ents = {}
        for i in range(NTRAIN + NHOLD):
            key = f"u{i}" if i < NTRAIN else f"h{i - NTRAIN}"
            x, n, m, b = rnd.gauss(0, 1), rnd.randint(0, 20), rnd.gauss(0, 1), rnd.random() < 0.3
            z = 2.5 * x * m + 0.08 * (n - 10) - 0.6 * b
            y = 1 if rnd.random() < sigmoid(z) else 0
            e = dict(n=n, m=m, b=b, z=z, y=y, t0=now - 3 * 3600_000 + i * 1000)
            if rnd.random() >= 0.1:
                e["x"] = x
            ents[key] = e
        prod = H.producer(bs)
        for key, e in ents.items():
            feats = {f: e[f] for f in FEATS if f in e}
            feats["c"] = "s"
            prod.produce("user_events", key=key, value=json.dumps({"key": key, "ts": e["t0"], "features": feats}).encode())
            if key.startswith("u"):
                e["lt"] = e["t0"] + 600_000
                for mname, topic in (("risk", "risk_labels"), ("lin", "lin_labels")):
                    prod.produce(topic, key=key, value=json.dumps(
                        {"model": mname, "key": key, "ts": e["lt"], "label": e["y"]}).encode())
            prod.poll(0)
        assert prod.flush(30) == 0
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= len(ents), 60, "events")
        H.wait_for(lambda: (H.metric(addrs["admin"], "featd_ingest_labels_total") or 0) >= 2 * NTRAIN, 60, "labels")

        # ---- trees trained by featd beat logistic regression on the interaction ----
        r = featctl("retrain", "risk", "--wait")
        assert "registered v1" in r.stdout, r.stdout
        featctl("retrain", "lin", "--wait")
        v1 = json.loads(featctl("--json", "models", "risk").stdout)["versions"][0]
        lin = json.loads(featctl("--json", "models", "lin").stdout)["versions"][0]
        assert v1["task"] == "gbdt_classifier" and v1["features"] == FEATS + ["c"], v1  # c: one-hot columns
        assert v1["params"]["trees"] == 150 and v1["params"]["max_depth"] == 4, v1["params"]
        tauc, lauc = v1["validation_metrics"]["auc"], lin["validation_metrics"]["auc"]
        H.log(f"validation AUC: featd trees {tauc:.4f}, featd logreg {lauc:.4f}")
        assert tauc > lauc + 0.1, (tauc, lauc)

        # ---- a model trained elsewhere ----
        train = sorted((e for e in ents.values() if "lt" in e), key=lambda e: e["lt"])
        X = np.array([[e.get("x", np.nan), e["n"], e["m"], float(e["b"])] for e in train])
        y = np.array([e["y"] for e in train])
        booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.1, "tree_method": "hist"},
                            xgb.DMatrix(X, label=y, missing=np.nan, feature_names=FEATS), 120)
        path = wd.file("outside.json")
        booster.save_model(path)
        r = featctl("models", "import", "risk", path, "--format", "xgboost-json")
        assert "registered v2" in r.stdout, r.stdout
        vs = {v["version"]: v for v in json.loads(featctl("--json", "models", "risk").stdout)["versions"]}
        v2 = vs[2]
        assert v2["stage"] == "challenger" and v2["trigger"] == "import", v2
        assert v2["features"] == FEATS and v2["task"] == "gbdt_classifier", v2
        assert "outside.json" in v2["reason"] and "120 trees" in v2["reason"], v2["reason"]
        # featd scored it on its own validation window: the booster's AUC on those rows
        nv = NTRAIN // 4
        pv = booster.predict(xgb.DMatrix(X[-nv:], missing=np.nan, feature_names=FEATS))
        ref_auc = H.auc(list(pv), list(y[-nv:]))
        assert abs(v2["validation_metrics"]["auc"] - ref_auc) < 1e-6, (v2["validation_metrics"], ref_auc)

        hold = [k for k in ents if k.startswith("h")]
        res = feat.Predict(fs.PredictRequest(model="risk", entity_keys=hold, alias="challenger"), timeout=10)
        assert res.version == 2 and len(res.predictions) == len(hold)
        XH = np.array([[ents[k].get("x", np.nan), ents[k]["n"], ents[k]["m"], float(ents[k]["b"])] for k in hold])
        want = booster.predict(xgb.DMatrix(XH, missing=np.nan, feature_names=FEATS))
        got = {p.entity_key: p.score for p in res.predictions}
        worst = max(abs(got[k] - float(w)) for k, w in zip(hold, want))
        nmiss = sum(1 for k in hold if "x" not in ents[k])
        H.log(f"imported model: {len(hold)} held-out entities ({nmiss} without x), max |featd - xgboost| = {worst:.2e}")
        assert nmiss > 10 and worst <= 1e-6, worst

        # ---- it serves, promotes and rolls back like a trained version ----
        featctl("promote", "risk", "2")
        res = feat.Predict(fs.PredictRequest(model="risk", entity_keys=hold[:5]), timeout=10)
        assert res.version == 2, res.version
        featctl("rollback", "risk")
        assert feat.Predict(fs.PredictRequest(model="risk", entity_keys=hold[:5]), timeout=10).version == 1

        # ---- a model with no labels yet takes an import as its first version (no metrics) ----
        r = featctl("models", "import", "fresh", path, "--format", "xgboost-json")
        fv = json.loads(featctl("--json", "models", "fresh").stdout)["versions"]
        assert len(fv) == 1 and fv[0]["stage"] == "champion" and fv[0]["train_rows"] == 0, fv
        res = feat.Predict(fs.PredictRequest(model="fresh", entity_keys=hold), timeout=10)
        assert max(abs(p.score - float(w)) for p, w in zip(res.predictions, want)) <= 1e-6

        # ---- refusals: a message naming what, and nothing registered ----
        def refused(argv, needle, data=None):
            p = path
            if data is not None:
                p = wd.file("bad.json")
                open(p, "w").write(data)
            r = featctl("models", "import", *argv[:1], p, "--format", "xgboost-json", *argv[1:], check=False)
            assert r.returncode != 0 and needle in r.stderr, (argv, needle, r.returncode, r.stderr)
        text = open(path).read()
        refused(["risk"], "not JSON", text[: len(text) // 2])
        refused(["risk", "--features", "x,n,m,c"], "is a string")
        refused(["risk", "--features", "x,n,m,nope"], "not one of model risk's features")
        refused(["risk", "--features", "x,n,m"], "3 features given; the model reads 4")
        refused(["spend"], "classifier")
        r = featctl("models", "import", "risk", path, "--format", "onnx", check=False)
        assert r.returncode == 2 and "xgboost-json" in r.stderr, r.stderr
        try:
            admin.ImportModel(admin_pb2.ImportModelRequest(model="risk", format="xgboost-json", data=b"{}"), timeout=10)
            raise AssertionError("an empty model was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert len(json.loads(featctl("--json", "models", "risk").stdout)["versions"]) == 2

        # ---- the registry on disk is consistent, imports (with or without rows) included ----
        assert featd.stop() == 0, featd.tail()
        audit = subprocess.run([H.bins(args)["inspect"], "--config", cfg, "models"], capture_output=True, text=True)
        lines = [json.loads(l_) for l_ in audit.stdout.splitlines()]
        assert audit.returncode == 0 and all(l_["ok"] for l_ in lines), audit.stdout + audit.stderr
        assert {(l_["model"], l_["version"]) for l_ in lines if l_["kind"] == "model_version"} >= \
            {("risk", 1), ("risk", 2), ("fresh", 1)}, lines
        ok = True
    finally:
        if featd.alive():
            featd.stop()
        if not ok:
            print(featd.tail(60))
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
