#!/usr/bin/python3
"""Predict with tree models and with shadow traffic (issue 13), against Predict with logistic
regression, in one featd and one run.

One featd (embedded broker, serve.cache = 0 so that every call reads RocksDB and runs the model; one
table of 10 double features; 10,000 entities loaded through Kafka) serves three models over the same
10 features:
  lr   logistic regression trained by featd on 10,000 labels
  gb   a 200-tree depth-6 binary:logistic model trained by python3-xgboost on the same rows and
       imported (featctl models import ... --format xgboost-json)
  gbs  the same trees as champion, with shadow = challenger and a second 200x6 model as challenger:
       every Predict is scored again off the reply path
bench_rpc's C client (gRPC core, sequential unary calls, 1 entity per call) alternates the three
inside each round; medians over rounds. Targets: gb p50 <= 1.3x lr; gbs p50 <= 1.1x gb.

  /usr/bin/python3 tests/bench/run_predict_models_bench.py --build-dir build-rel --source-dir . [--rounds 5]
"""
import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as H  # noqa: E402

FEATS = [f"f{i}" for i in range(10)]


def config(wd):
    feats = "".join(f"feature.{f} = double\n" for f in FEATS)
    models = ""
    for name, task, extra in (("lr", "logreg", "epochs = 5\n"), ("gb", "gbdt_classifier", ""),
                              ("gbs", "gbdt_classifier", "shadow = challenger\n")):
        models += f"[model {name}]\ntable = bench\nlabel_topic = {name}_labels\ntask = {task}\npolicy = manual\n{extra}"
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
cache = 0
max_message = 64MiB
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 4
session.timeout.ms = 6000
[table bench]
topic = bench_events
{feats}
{models}"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--long", action="store_true")
    args = ap.parse_args()
    import numpy as np
    import xgboost as xgb
    B = os.path.join(args.build_dir, "tests", "bench_rpc")
    wd = H.Workdir(args, "mbench")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd))
    featd = H.start_featd(args, wd, cfg)
    try:
        addrs = H.featd_addrs(wd)
        admin = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(addrs["grpc"]))
        H.wait_ready(admin)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        prod = H.producer(bs)
        rnd = random.Random(7)
        now = int(time.time() * 1000)
        X, Y = [], []
        for e in range(10000):
            x = [rnd.gauss(0, 1) for _ in range(10)]
            y = 1 if rnd.random() < 1 / (1 + math.exp(-(x[0] * x[1] + x[2] - 0.5 * x[3] ** 2))) else 0
            X.append(x)
            Y.append(y)
            prod.produce("bench_events", key=f"e{e}",
                         value=json.dumps({"ts": now - 60000, "features": dict(zip(FEATS, x))}).encode())
            prod.produce("lr_labels", key=f"e{e}", value=json.dumps({"model": "lr", "key": f"e{e}", "ts": now - 30000,
                                                                     "label": y}).encode())
            prod.poll(0)
        prod.flush(30)
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= 10000, 120, "events")
        H.wait_for(lambda: (H.metric(addrs["admin"], "featd_ingest_labels_total") or 0) >= 10000, 120, "labels")

        def featctl(*a):
            r = H.featctl(args, "--addr", addrs["grpc"], "--timeout", "120", *a, timeout=600)
            assert r.returncode == 0, (a, r.stdout, r.stderr)
            return r
        featctl("retrain", "lr", "--wait")
        X, Y = np.array(X), np.array(Y)
        for seed, models in ((1, ("gb", "gbs")), (2, ("gbs",))):
            b = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "tree_method": "hist",
                           "seed": seed, "subsample": 0.8},
                          xgb.DMatrix(X, label=Y, feature_names=FEATS), 200)
            path = wd.file(f"trees{seed}.json")
            b.save_model(path)
            for m in models:
                featctl("models", "import", m, path, "--format", "xgboost-json")
        vs = {m: {v.version: v.stage for v in admin.ListModels(admin_pb2.ListModelsRequest(model=m), timeout=5).versions}
              for m in ("lr", "gb", "gbs")}
        assert vs["gbs"] == {1: "champion", 2: "challenger"}, vs
        H.log(f"models: {vs}")

        def client(model):
            out = subprocess.run([B, "client", addrs["grpc"], "predict", str(args.calls), "--model", model],
                                 capture_output=True, text=True, timeout=600)
            if out.returncode:
                raise RuntimeError(out.stderr)
            return H.bench_rpc_result(out.stdout)
        for m in ("lr", "gb", "gbs"):   # warm-up
            client(m)
        runs = {m: [] for m in ("lr", "gb", "gbs")}
        shadow0 = H.metric(addrs["admin"], "featd_shadow_predictions_total") or 0
        for r in range(args.rounds):
            order = ["lr", "gb", "gbs"] if r % 2 == 0 else ["gbs", "gb", "lr"]
            for m in order:
                runs[m].append(client(m))
                H.log(f"round {r + 1} {m:4s} " + " ".join(f"{k}={v:.1f}" for k, v in runs[m][-1].items()))
        time.sleep(1)
        shadowed = (H.metric(addrs["admin"], "featd_shadow_predictions_total") or 0) - shadow0
        dropped = H.metric(addrs["admin"], "featd_predictions_dropped_total") or 0
        med = {m: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for m, rs in runs.items()}
        print(json.dumps(med, indent=1))
        print(f"gb / lr   p50 {med['gb']['p50'] / med['lr']['p50']:.3f}  p99 {med['gb']['p99'] / med['lr']['p99']:.3f}")
        print(f"gbs / gb  p50 {med['gbs']['p50'] / med['gb']['p50']:.3f}  p99 {med['gbs']['p99'] / med['gb']['p99']:.3f}")
        print(f"shadow predictions logged after the warm-up: {shadowed:.0f} (gbs calls in the rounds: {args.rounds * args.calls}); "
              f"predictions dropped: {dropped:.0f}")
        assert featd.stop() == 0
    finally:
        if featd.alive():
            featd.kill9()
        wd.cleanup(True)


if __name__ == "__main__":
    main()
