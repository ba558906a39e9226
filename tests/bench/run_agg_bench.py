#!/usr/bin/python3
"""Aggregation serving benchmark (issue 11), baselines in the same run:

  lookup     GetOnlineFeatures of 10 aggregated features over 7d (count, sum,
             mean, min, max of f0..f9; agg_tile 1m, the default) against
             GetOnlineFeatures of the 10 plain features f0..f9 of the same
             table, same entities (bench_rpc client; 1 and 10 entities);
             rounds alternate which goes first
  freshness  produce -> visible while ingesting 20k events/s: an aggregate
             (the probe's count over 7d reaches the probe's sequence number)
             and, alternating probe by probe, a plain feature (f0)

The entities bench_rpc asks for (e0, e37, ... : e * 37 mod 10000) each get an
event every ~15 minutes (jittered) over the 7 days before now: ~670 events,
so a 7d read covers ~670 events.  featd runs with its defaults (serve.cache on:
plain rows are cached, and aggregates until the next tile edge or a write to
the entity); --no-cache turns it off for both.

  /usr/bin/python3 tests/bench/run_agg_bench.py --build-dir build-rel --source-dir . [--rounds 5] [--tile 1h]
  --quick: ctest's smoke pass (a few entities and calls; asserts only that
  the aggregates read back right)
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as H  # noqa: E402

FNS = ["count", "sum", "mean", "min", "max"]
AGGS = [(f"a{i}", FNS[i % 5], f"f{i}") for i in range(10)]          # a0 = count(f0) over 7d, ...
AGG_NAMES = [f"{n}_7d" for n, _, _ in AGGS]
PLAIN_NAMES = [f"f{i}" for i in range(10)]
DAY_MS = 86400 * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--entities", type=int, default=100, help="entities loaded with 7 days of events")
    ap.add_argument("--every-min", type=float, default=15.0, help="mean minutes between an entity's events")
    ap.add_argument("--probes", type=int, default=300, help="freshness probes of each kind")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--tile", default="1m", help="agg_tile (default 1m, featd's default): 7d / tile tiles per read")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.calls, args.entities, args.probes = 1, 200, 10, 20
    B = os.path.join(args.build_dir, "tests", "bench_rpc")
    wd = H.Workdir(args, "aggbench")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    feats = "".join(f"feature.f{i} = double\n" for i in range(10))
    aggs = "".join(f"agg.{n} = {fn}({f}) over 7d\n" for n, fn, f in AGGS)
    open(cfg, "w").write(H.config_head(wd, partitions=8, progress="0",
                                       serve="cache = 0\n" if args.no_cache else "") + f"""
[table bench]
topic = bench_events
agg_tile = {args.tile}
{feats}{aggs}""")
    featd = H.start_featd(args, wd, cfg)
    results = {}
    ok = False
    try:
        addrs = H.featd_addrs(wd, proc=featd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        ch = grpc.insecure_channel(addrs["grpc"])
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        H.wait_ready(admin)
        # 7 days of events for the entities bench_rpc reads, in time order
        rnd = random.Random(11)
        now = int(time.time() * 1000)
        start = now - 7 * DAY_MS
        keys = [f"e{e * 37 % 10000}" for e in range(args.entities)]
        step = args.every_min * 60000
        evs = []
        for k in keys:
            t = start + rnd.uniform(0, step)
            while t < now - 1000:
                evs.append((int(t), k))
                t += rnd.uniform(0.5 * step, 1.5 * step)
        evs.sort()
        expect = {}   # key -> (count, sum of f1) over the 7d window as of about now
        prod = H.producer(bs, **{"linger.ms": 20, "queue.buffering.max.messages": 1000000})
        for ts, k in evs:
            v = {f"f{i}": round(rnd.uniform(0, 1000), 3) for i in range(10)}
            H.produce(prod, "bench_events", key=k, value=json.dumps({"ts": ts, "features": v}).encode())
            c, s = expect.get(k, (0, 0.0))
            expect[k] = (c + 1, s + v["f1"])
            prod.poll(0)
        prod.flush(60)
        H.log(f"produced {len(evs)} events for {len(keys)} entities ({len(evs) / len(keys):.0f} each over 7 days)")
        H.wait_for(lambda: sum(t.events_applied for t in admin.Status(admin_pb2.StatusRequest(), timeout=5).tables)
                   >= len(evs), 300, "events applied")
        # the aggregates read back right (the oldest tile may have slid out by a few events)
        r = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="bench", entity_keys=["e0"],
                                                               features=AGG_NAMES[:2]), timeout=5)
        n, s = r.rows[0].values[0].value.int64_value, r.rows[0].values[1].value.double_value
        assert expect["e0"][0] - 3 <= n <= expect["e0"][0] + 1, (n, expect["e0"])
        assert n != expect["e0"][0] or abs(s - expect["e0"][1]) < 1e-6 * max(1.0, abs(s)), (s, expect["e0"])
        H.log(f"e0: count_7d {n} (produced {expect['e0'][0]}), sum {s:.3f}")

        def client(argv):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            if out.returncode:
                raise RuntimeError(out.stderr)
            return H.bench_rpc_result(out.stdout)

        n = args.calls
        cases = []
        for ents in (1, 10):
            calls = str(n if ents == 1 else n // 4)
            cases.append((f"plain {ents}x10", [B, "client", addrs["grpc"], "online", calls, "--entities", str(ents)]))
            cases.append((f"aggs {ents}x10", [B, "client", addrs["grpc"], "online", calls, "--entities", str(ents),
                                               "--names", ",".join(AGG_NAMES)]))
        runs = {name: [] for name, _ in cases}
        for rd in range(args.rounds):
            for i in range(0, len(cases), 2):
                pair = cases[i:i + 2] if rd % 2 == 0 else cases[i:i + 2][::-1]
                for name, argv in pair:
                    runs[name].append(client(argv))
            H.log(f"round {rd + 1}: " + "; ".join(f"{name} p50={runs[name][-1]['p50']:.1f}us "
                                                  f"p99={runs[name][-1]['p99']:.1f}us" for name, _ in cases))
        for name, _ in cases:
            results[name] = {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]}
            H.log(f"{name:14s} " + " ".join(f"{k}={v:.1f}" for k, v in results[name].items()))

        # freshness: produce -> visible, while ingesting 20k events/s
        stop = threading.Event()
        rate_seen = {}

        def background():
            p = H.producer(bs, **{"linger.ms": 5, "queue.buffering.max.messages": 1000000})
            sent, t0 = 0, time.time()
            while not stop.is_set():
                ts = int(time.time() * 1000)
                for _ in range(200):
                    e = sent % 9999
                    p.produce("bench_events", key=f"e{e}", value=json.dumps({"ts": ts, "features": {"f0": sent}}).encode())
                    sent += 1
                p.poll(0)
                H.pace(t0, sent, 20000.0)
            p.flush(10)
            rate_seen["rate"] = sent / (time.time() - t0)
        workers = H.Workers(stop)   # the background producer's failure ends the run
        workers.start(background)
        time.sleep(2)
        probe = H.producer(bs, **{"linger.ms": 0})
        lat = {"plain": [], "aggregate": []}
        for seq in range(1, 2 * args.probes + 1):
            kind = "plain" if seq % 2 else "aggregate"
            t0 = time.monotonic()
            probe.produce("bench_events", key="probe",
                          value=json.dumps({"ts": int(time.time() * 1000),
                                            "features": {f"f{i}": float(seq) for i in range(10)}}).encode())
            probe.poll(0)
            name = "f0" if kind == "plain" else AGG_NAMES[0]
            while True:
                r = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="bench", entity_keys=["probe"],
                                                                       features=[name]), timeout=5)
                v = r.rows[0].values[0]
                got = v.value.double_value if kind == "plain" else v.value.int64_value
                if v.status == fs.PRESENT and got >= seq:
                    break
                if time.monotonic() - t0 > 5:
                    raise RuntimeError(f"probe {seq} ({kind}) never became visible")
            lat[kind].append((time.monotonic() - t0) * 1000)
            time.sleep(0.02)
        stop.set()
        workers.join(60)
        for kind, l in lat.items():
            l.sort()
            results[f"freshness {kind}"] = {"p50": l[len(l) // 2], "p99": l[len(l) * 99 // 100], "max": l[-1],
                                            "rate": rate_seen["rate"]}
            H.log(f"freshness ({kind}) at {rate_seen['rate']:.0f} events/s: p50={l[len(l) // 2]:.1f}ms "
                  f"p99={l[len(l) * 99 // 100]:.1f}ms max={l[-1]:.1f}ms")
        print(json.dumps(results, indent=1))
        for ents in (1, 10):
            p, a = results[f"plain {ents}x10"], results[f"aggs {ents}x10"]
            print(f"{ents}x10: aggs/plain p50 {a['p50'] / p['p50']:.2f} (target <= 1.5), "
                  f"p99 {a['p99'] / p['p99']:.2f} (target <= 2)")
        fa, fp = results["freshness aggregate"], results["freshness plain"]
        print(f"freshness p99: aggregate {fa['p99']:.1f} ms (target <= 20), plain {fp['p99']:.1f} ms; "
              f"ratio {fa['p99'] / fp['p99']:.2f}")
        assert featd.stop() == 0
        ok = True
    finally:
        if featd.alive():
            featd.kill9()
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
