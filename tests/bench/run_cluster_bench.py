#!/usr/bin/python3
"""Cluster benchmark (issue 12), measured in one run on this machine:

  local      GetOnlineFeatures of 1 entity x 10 features owned by the instance asked
  forwarded  the same for an entity another instance owns (one extra hop to its cluster.listen)
  spread     100 entities spread over the 3 owners, against 100 entities all owned by the one asked
  restore    a new instance alone in a group of its own restores all 12 partitions from the log
             (records/s and MB/s of log replayed), and its store and memory per entity

3 featd instances (cluster.mode = partitioned) and featd-broker with 3 brokers and 12 partitions,
all on this machine; bench_rpc is the client (C, one channel, sequential calls).

  /usr/bin/python3 tests/bench/run_cluster_bench.py --build-dir build-rel --source-dir . [--rounds 3]
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as H  # noqa: E402

PARTS = 12
TOPIC = "cb_events"


def config(wd, name, bs, group, port, peer_port, cluster_extra=""):
    feats = "".join(f"feature.f{i} = double\n" for i in range(10))
    return f"""
[featd]
data_dir = {wd.file("data-" + name)}
progress_interval = 5s
[serve]
listen = 127.0.0.1:{port}
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = false
bootstrap.servers = {bs}
group.id = {group}
session.timeout.ms = 6000
partitions = {PARTS}
[cluster]
mode = partitioned
instance_id = {name}
listen = 127.0.0.1:{peer_port}
{cluster_extra}
[drift]
enabled = false
[table bench]
topic = {TOPIC}
entity = id
{feats}"""


def start(args, wd, name, bs, group="cb", cluster_extra=""):
    port = H.free_port()
    cfg = wd.file(name + ".ini")
    open(cfg, "w").write(config(wd, name, bs, group, port, H.free_port(), cluster_extra))
    p = H.start_featd(args, wd, cfg, logname=name + ".log")
    addr = H.featd_addrs(wd, data_dir="data-" + name, proc=p)
    return {"name": name, "proc": p, "addr": addr, "cfg": cfg}


def bench(args, addr, keys, n):
    b = os.path.join(args.build_dir, "tests", "bench_rpc")
    out = subprocess.run([b, "client", addr, "online", str(n), "--table", "bench", "--keys", ",".join(keys)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return H.bench_rpc_result(out.stdout.strip().splitlines()[-1])


def setup(name, rounds, extra=()):
    """The cluster benchmarks' common start: arguments, a work directory, featd-broker with 3 brokers
    and PARTS partitions.  extra: (flag, type, default) more arguments."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--entities", type=int, default=10000)
    ap.add_argument("--events", type=int, default=120000)
    ap.add_argument("--keep", action="store_true")
    for flag, typ, default in extra:
        ap.add_argument(flag, type=typ, default=default)
    args = ap.parse_args()
    wd = H.Workdir(args, name)
    H.gen_protos(args, wd.path)
    bcfg = wd.file("broker.ini")
    open(bcfg, "w").write(config(wd, "broker", "127.0.0.1:1", "x", 1, 2))
    broker, bs = H.start_broker(args, wd, bcfg, partitions=PARTS, brokers=3)
    return args, wd, broker, bs


def produce_log(args, bs):
    """args.events events over args.entities entities (10 double features), keyed with murmur2:
    returns ({entity: partition}, [bytes per partition])."""
    prod = H.producer(bs, partitioner="murmur2_random", **{"enable.idempotence": True})
    part_of, part_bytes = {}, [0] * PARTS
    rnd = random.Random(1)
    t0 = int(time.time() * 1000) - 86400_000

    def cb(err, m):
        if err:
            raise RuntimeError(err)
        part_of[m.key().decode()] = m.partition()
        part_bytes[m.partition()] += len(m.key()) + len(m.value())
    for i in range(args.events):
        k = f"e{i % args.entities}"
        v = json.dumps({"ts": t0 + i, "features": {f"f{j}": round(rnd.random(), 6) for j in range(10)}})
        H.produce(prod, TOPIC, v.encode(), k, on_delivery=cb)
        if i % 1000 == 0:
            prod.poll(0)
    prod.flush(120)
    H.log(f"produced {args.events} events over {args.entities} entities, {sum(part_bytes) / 1e6:.1f} MB")
    return part_of, part_bytes


def main():
    args, wd, broker, bs = setup("cluster-bench", 3, [("--calls", int, 5000)])
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    procs = []
    try:
        part_of, part_bytes = produce_log(args, bs)
        inst = [start(args, wd, n, bs) for n in "abc"]
        procs += inst
        ch = grpc.insecure_channel(inst[0]["addr"]["grpc"])
        fstub = feature_service_pb2_grpc.FeatureServiceStub(ch)
        astub = admin_pb2_grpc.AdminServiceStub(ch)
        every = [f"e{i}" for i in range(args.entities)]

        def all_present():
            for i in range(0, len(every), 500):
                r = fstub.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="bench", entity_keys=every[i:i + 500],
                                                                        features=["f0"]), timeout=30)
                if any(v.status != fs.PRESENT for row in r.rows for v in row.values):
                    return False
            m = astub.GetCluster(admin_pb2.GetClusterRequest(), timeout=5)
            return len({p.instance_id for p in m.partitions}) == 3 and all(p.instance_id for p in m.partitions)
        H.wait_for(all_present, 300, "every entity present through a, three owners")
        m = astub.GetCluster(admin_pb2.GetClusterRequest(), timeout=5)
        owner = {p.partition: p.instance_id for p in m.partitions}
        by_owner = {n: [k for k in every if owner[part_of[k]] == n] for n in "abc"}
        H.log("entities per owner:", {n: len(v) for n, v in by_owner.items()})
        local_key, fwd_key = by_owner["a"][0], by_owner["b"][0]
        spread = [by_owner["abc"[i % 3]][i] for i in range(100)]
        local100 = by_owner["a"][:100]
        addr = inst[0]["addr"]["grpc"]
        res = {"local": [], "forwarded": [], "local100": [], "spread100": []}
        for r in range(args.rounds):
            res["local"].append(bench(args, addr, [local_key], args.calls))
            res["forwarded"].append(bench(args, addr, [fwd_key], args.calls))
            res["local100"].append(bench(args, addr, local100, args.calls // 5))
            res["spread100"].append(bench(args, addr, spread, args.calls // 5))
            H.log(f"round {r + 1}: " + "; ".join(f"{k} p50 {v[-1]['p50']:.0f} us p99 {v[-1]['p99']:.0f} us"
                                                 for k, v in res.items()))
        for r in range(args.rounds):
            H.log(f"round {r + 1} ratios: forwarded/local p50 {res['forwarded'][r]['p50'] / res['local'][r]['p50']:.2f} "
                  f"p99 {res['forwarded'][r]['p99'] / res['local'][r]['p99']:.2f}; spread100/local100 p50 "
                  f"{res['spread100'][r]['p50'] / res['local100'][r]['p50']:.2f} "
                  f"p99 {res['spread100'][r]['p99'] / res['local100'][r]['p99']:.2f}")
        for p in inst:
            p["proc"].stop()
        # restore: a new instance alone in its own group replays all 12 partitions
        d = start(args, wd, "d", bs, group="cb-restore")
        procs.append(d)
        log = d["proc"].logpath
        H.wait_for(lambda: len(re.findall(r"restored cb_events\[\d+\]", open(log).read())) == PARTS, 600,
                   "d restored every partition")
        text = open(log).read()
        ts = lambda line: time.mktime(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")) + float(line[19:23])
        starts = [ts(l) for l in text.splitlines() if "restoring cb_events" in l]
        ends = [ts(l) for l in text.splitlines() if "restored cb_events" in l]
        recs = sum(int(x) for x in re.findall(r"restored cb_events\[\d+\]: (\d+) records", text))
        secs = max(ends) - min(starts)
        mb = sum(part_bytes) / 1e6
        H.log(f"restore: {recs} records ({mb:.1f} MB of log) in {secs:.2f} s: {recs / secs:.0f} records/s, "
              f"{mb / secs:.1f} MB/s")
        ch2 = grpc.insecure_channel(d["addr"]["grpc"])
        st = admin_pb2_grpc.AdminServiceStub(ch2).Status(admin_pb2.StatusRequest(), timeout=5)
        rss = int(re.search(r"VmRSS:\s+(\d+)", open(f"/proc/{d['proc'].p.pid}/status").read())[1]) * 1024
        H.log(f"d: store {st.store_bytes / 1e6:.1f} MB for {args.entities} entities and {recs} events "
              f"({st.store_bytes / args.entities:.0f} B/entity, {st.store_bytes / recs:.0f} B/event); RSS "
              f"{rss / 1e6:.0f} MB")
        d["proc"].stop()
        ok = True
    finally:
        for p in procs:
            if p["proc"].alive():
                p["proc"].kill9()
        broker.stop()
    wd.cleanup(ok)


if __name__ == "__main__":
    main()
