#!/usr/bin/python3
"""The HTTP/JSON API against gRPC for the same calls, in one featd and one run (issue 14).

One featd (embedded broker; one table of 10 double features; 10,000 entities loaded through
Kafka; a logreg model over them; serve.cache on), two python clients in this process, each
sequential on one connection: grpcio (unary calls on one channel) and http.client (keep-alive
POSTs of JSON to http.listen). Each round times --calls calls of each case, alternating the
order; medians of p50 / p99 over rounds, in microseconds, and HTTP/gRPC ratios.

  /usr/bin/python3 tests/bench/run_http_bench.py --build-dir build-rel --source-dir . [--rounds 5]
"""
import argparse
import http.client
import json
import math
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as H  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--long", action="store_true")
    args = ap.parse_args()
    wd = H.Workdir(args, "hbench")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    feats = "".join(f"feature.f{i} = double\n" for i in range(10))
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
epochs = 5
""")
    featd = H.start_featd(args, wd, cfg)
    try:
        addrs = H.featd_addrs(wd)
        ch = grpc.insecure_channel(addrs["grpc"])
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        H.wait_ready(admin)
        prod = H.producer(open(wd.file("data/kafka.bootstrap")).read().strip())
        rnd = random.Random(7)
        now = int(time.time() * 1000)
        for e in range(10000):
            x = [rnd.gauss(0, 1) for _ in range(10)]
            prod.produce("bench_events", key=f"e{e}", value=json.dumps({"ts": now - 60000, "features": {f"f{i}": x[i] for i in range(10)}}).encode())
            y = 1 if rnd.random() < 1 / (1 + math.exp(-x[0])) else 0
            prod.produce("m_labels", key=f"e{e}", value=json.dumps({"model": "m", "key": f"e{e}", "ts": now - 30000, "label": y}).encode())
            prod.poll(0)
        prod.flush(30)
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= 10000, 120, "events")
        admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(model="m"), timeout=10)
        H.wait_for(lambda: admin.ListModels(admin_pb2.ListModelsRequest(model="m"), timeout=5).versions, 120, "a model")
        host, port = addrs["http"].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)

        def http_call(path, body):
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, (r.status, data)
            return data
        keys = [f"e{(i * 37) % 10000}" for i in range(args.calls)]
        cases = {
            "grpc online 1x10": lambda k: feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="bench", entity_keys=[k]), timeout=10),
            "http online 1x10": lambda k: http_call("/v1/FeatureService/GetOnlineFeatures", json.dumps({"table": "bench", "entity_keys": [k]})),
            "grpc predict 1": lambda k: feat.Predict(fs.PredictRequest(model="m", entity_keys=[k]), timeout=10),
            "http predict 1": lambda k: http_call("/v1/FeatureService/Predict", json.dumps({"model": "m", "entity_keys": [k]})),
        }
        for fn in cases.values():   # warm-up
            for k in keys[:200]:
                fn(k)
        res = {c: [] for c in cases}
        for r in range(args.rounds):
            for c in (list(cases) if r % 2 == 0 else list(cases)[::-1]):
                lat = []
                for k in keys:
                    t0 = time.perf_counter_ns()
                    cases[c](k)
                    lat.append((time.perf_counter_ns() - t0) / 1000)
                lat.sort()
                res[c].append((lat[len(lat) // 2], lat[int(len(lat) * 0.99)]))
                H.log(f"round {r + 1} {c:18s} p50 {res[c][-1][0]:.1f} µs  p99 {res[c][-1][1]:.1f} µs")
        med = {c: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for c, v in res.items()}
        print("| call | gRPC p50 / p99 µs | HTTP/JSON p50 / p99 µs | HTTP / gRPC p50, p99 |")
        print("|---|---|---|---|")
        for name in ("online 1x10", "predict 1"):
            g, h = med[f"grpc {name}"], med[f"http {name}"]
            print(f"| {name} | {g[0]:.1f} / {g[1]:.1f} | {h[0]:.1f} / {h[1]:.1f} | {h[0] / g[0]:.2f}, {h[1] / g[1]:.2f} |")
        assert featd.stop() == 0
    finally:
        if featd.alive():
            featd.kill9()
        wd.cleanup(True)


if __name__ == "__main__":
    main()
