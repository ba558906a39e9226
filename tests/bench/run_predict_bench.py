#!/usr/bin/python3
"""Predict benchmark (issue 5): what a model adds to a feature lookup.

One featd (embedded broker, one table of 10 double features, 10,000 entities
loaded through Kafka, a logreg model over all 10 trained on 10,000 labels),
measured by bench_rpc's C client (gRPC core, sequential unary calls):

  online  GetOnlineFeatures, 1 entity x 10 features and 100 x 10
  predict Predict by entity key, 1 entity and 100 (the same keys)

first with the read-through cache on (steady state: features and scores
cached), then featd restarted on the same data with serve.cache = 0, so every
call reads RocksDB and every Predict runs the model.  Cases alternate inside
each round; medians over rounds.  The ratio predict/online in the same phase
is the model's cost.

  /usr/bin/python3 tests/bench/run_predict_bench.py --build-dir build --source-dir . [--rounds 5]
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


def config(wd, cache):
    feats = "".join(f"feature.f{i} = double\n" for i in range(10))
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
cache = {cache}
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 4
session.timeout.ms = 6000
[table bench]
topic = bench_events
{feats}
[model m]
table = bench
label_topic = m_labels
task = logreg
retrain_after_labels = 10000
epochs = 5
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--long", action="store_true")
    args = ap.parse_args()
    B = os.path.join(args.build_dir, "tests", "bench_rpc")
    wd = H.Workdir(args, "pbench")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd, "64MiB"))
    featd = H.start_featd(args, wd, cfg)
    results = {}
    n = args.calls
    try:
        def connect():
            addrs = H.featd_addrs(wd)
            admin = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(addrs["grpc"]))
            H.wait_ready(admin)
            return addrs, admin

        addrs, admin = connect()
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        prod = H.producer(bs)
        rnd = random.Random(7)
        now = int(time.time() * 1000)
        w = [rnd.gauss(0, 1) for _ in range(10)]
        for e in range(10000):
            x = [rnd.gauss(0, 1) for _ in range(10)]
            prod.produce("bench_events", key=f"e{e}",
                         value=json.dumps({"ts": now - 60000, "features": {f"f{i}": x[i] for i in range(10)}}).encode())
            y = 1 if rnd.random() < 1 / (1 + math.exp(-sum(a * b for a, b in zip(w, x)))) else 0
            prod.produce("m_labels", key=f"e{e}", value=json.dumps({"model": "m", "key": f"e{e}", "ts": now - 30000,
                                                                    "label": y}).encode())
            prod.poll(0)
        prod.flush(30)
        champ = H.wait_for(lambda: [v for v in admin.ListModels(admin_pb2.ListModelsRequest(model="m"), timeout=5).versions
                                    if v.stage == "champion"], 120, "a champion for m")[0]
        H.log(f"m v{champ.version}: validation AUC {champ.validation_metrics.auc:.4f} "
              f"on {champ.train_rows}+{champ.validation_rows} rows")

        def client(argv):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            if out.returncode:
                raise RuntimeError(out.stderr)
            return H.bench_rpc_result(out.stdout)

        def measure(phase, grpc_addr):
            cases = [("online 1x10", [B, "client", grpc_addr, "online", str(n)]),
                     ("predict 1", [B, "client", grpc_addr, "predict", str(n)]),
                     ("online 100x10", [B, "client", grpc_addr, "online", str(n // 4), "--entities", "100"]),
                     ("predict 100", [B, "client", grpc_addr, "predict", str(n // 4), "--entities", "100"]),
                     ("online 1x10 c4", [B, "client", grpc_addr, "online", str(n // 4 + 200), "--concurrency", "4"]),
                     ("predict 1 c4", [B, "client", grpc_addr, "predict", str(n // 4 + 200), "--concurrency", "4"])]
            runs = {name: [] for name, _ in cases}
            for r in range(args.rounds):
                order = cases if r % 2 == 0 else cases[::-1]   # alternate, so drift in the machine hits both
                for name, argv in order:
                    runs[name].append(client(argv))
            for name, rs in runs.items():
                results[(phase, name)] = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
                H.log(f"{phase:8s} {name:16s} " + " ".join(f"{k}={v:.1f}" for k, v in results[(phase, name)].items()))

        measure("cached", addrs["grpc"])
        assert featd.stop() == 0, featd.tail()
        os.remove(wd.file("data/featd.addr"))
        open(cfg, "w").write(config(wd, "0"))
        featd = H.start_featd(args, wd, cfg, logname="featd2.log")
        addrs, admin = connect()
        measure("uncached", addrs["grpc"])
        print(json.dumps({f"{a} | {b}": v for (a, b), v in results.items()}, indent=1))
        for phase in ("cached", "uncached"):
            for o, p in (("online 1x10", "predict 1"), ("online 100x10", "predict 100")):
                a, b = results[(phase, o)], results[(phase, p)]
                print(f"{phase}: {p} / {o}: p50 {b['p50'] / a['p50']:.2f}, p99 {b['p99'] / a['p99']:.2f}")
            a, b = results[(phase, "online 1x10 c4")], results[(phase, "predict 1 c4")]
            print(f"{phase}: concurrency 4 throughput predict/online {b['tput'] / a['tput']:.2f}")
        assert featd.stop() == 0
    finally:
        if featd.alive():
            featd.kill9()
        wd.cleanup(True)


if __name__ == "__main__":
    main()
