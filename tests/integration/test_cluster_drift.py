#!/usr/bin/env python3
"""Drift in a cluster (cluster.mode = partitioned): each instance judges the
windows of its own partitions; GetDriftReport with cluster set (featctl drift
--cluster) merges every instance's last window and reference of a feature
into one sketch each and judges the merge.

Three instances share a 6-partition topic.  Each gets exactly 200 events
(its first-N reference, drift.reference_events = 200), then exactly 200 more
(one window, drift.window_events = 200): keys are chosen by Java's murmur2
partitioner (computed here and checked against confluent-kafka's
murmur2_random) so that each instance's share is known.  Instance c's second
batch is shifted.  Then:
- each instance's own report: c drifts, a and b do not;
- the merged report, asked of a: window 600 and reference 600 values from 3
  instances, and its KS statistic equals SciPy's two-sample KS of all 600
  reference values against all 600 window values (drift.sketch_k = 2048 keeps
  every value: the sketches are exact);
- the categorical feature's merged window also holds all 600 values.
(drift.psi = 0.5: PSI over 10 bins of 200 values is noisy near the default.)
"""
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PARTS = 6
TOPIC = "cd_events"
N = 200


def murmur2(data):
    """Kafka's (Java client's) murmur2 of bytes, as an unsigned 32-bit int."""
    m, r, h = 0x5bd1e995, 24, (0x9747b28c ^ len(data)) & 0xffffffff
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = data[4 * n4:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def partition_of(key):
    return (murmur2(key.encode()) & 0x7fffffff) % PARTS


def config(wd, name, bootstrap, port, peer_port):
    return f"""
[featd]
data_dir = {wd.file("data-" + name)}
progress_interval = 0
[serve]
listen = 127.0.0.1:{port}
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = false
bootstrap.servers = {bootstrap}
group.id = cd
session.timeout.ms = 6000
heartbeat.interval.ms = 500
partitions = {PARTS}
[cluster]
mode = partitioned
listen = 127.0.0.1:{peer_port}
instance_id = {name}
[drift]
window_events = {N}
reference_events = {N}
min_window = 50
sketch_k = 2048
psi = 0.5
[table user]
topic = {TOPIC}
entity = user_id
feature.x = double
feature.c = string
"""


class Instance:
    def __init__(self, args, wd, name, bootstrap):
        import grpc
        from featd.v1 import admin_pb2_grpc
        self.name = name
        cfg = wd.file(f"{name}.ini")
        open(cfg, "w").write(config(wd, name, bootstrap, H.free_port(), H.free_port()))
        self.proc = H.start_featd(args, wd, cfg, logname=f"{name}.log")
        self.addr = H.featd_addrs(wd, data_dir="data-" + name, proc=self.proc)
        self.admin = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(self.addr["grpc"]))

    def drift(self, cluster=False):
        from featd.v1 import admin_pb2
        r = self.admin.GetDriftReport(admin_pb2.GetDriftReportRequest(table="user", cluster=cluster), timeout=20)
        return {f.feature: f for f in r.features}


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "cluster_drift")
    H.gen_protos(args, wd.path)
    broker = config(wd, "broker", "127.0.0.1:1", 1, 2).replace("mode = partitioned", "mode = single")
    H.with_brokers(args, wd, broker, PARTS, run)


def run(args, wd, bs, procs):
    from scipy import stats
    insts = [Instance(args, wd, n, bs) for n in "abc"]
    procs += insts

    from featd.v1 import admin_pb2

    def owners():
        m = insts[0].admin.GetCluster(admin_pb2.GetClusterRequest(), timeout=10)
        return {p.partition: p.instance_id for p in m.partitions
                if p.topic == TOPIC and p.instance_id and not p.restoring}
    H.wait_for(lambda: len(owners()) == PARTS and set(owners().values()) == {"a", "b", "c"}, 60,
               "every partition owned, by a, b and c")
    time.sleep(3)   # one more membership round: the assignment is settled
    own = owners()
    H.log("partitions:", own)
    keys = {n: [] for n in "abc"}
    for i in range(100000):
        k = f"u{i}"
        keys[own[partition_of(k)]].append(k)
        if all(len(v) >= 2 * N for v in keys.values()):
            break
    rnd = random.Random(3)
    prod = H.producer(bs, partitioner="murmur2_random")
    parts = {}

    def produce(name, values, ts0):
        for j, x in enumerate(values):
            k = keys[name][j]

            def cb(err, m, k=k):
                assert err is None, err
                parts[k] = m.partition()
            c = "ab"[j % 2] if x < 1.5 else "z"
            H.produce(prod, TOPIC, json.dumps({"ts": ts0 + j, "features": {"x": x, "c": c}}).encode(), k,
                      on_delivery=cb)
        prod.flush(30)
    t0 = int(time.time() * 1000) - 600_000
    ref = {n: [round(rnd.gauss(0, 1), 6) for _ in range(N)] for n in "abc"}
    win = {n: [round(rnd.gauss(2.0 if n == "c" else 0, 1), 6) for _ in range(N)] for n in "abc"}
    for n in "abc":
        produce(n, ref[n], t0)
    bad = [k for k, p in parts.items() if p != partition_of(k)]
    assert not bad, f"murmur2 here disagrees with the producer's for {bad[:5]}"
    for inst in insts:
        H.wait_for(lambda inst=inst: inst.drift()["x"].reference_size == N, 60, f"{inst.name}: reference of {N}")
    for n in "abc":
        produce(n, win[n], t0 + 10_000)
    for inst in insts:
        H.wait_for(lambda inst=inst: inst.drift()["x"].window_size == N, 60, f"{inst.name}: one window of {N}")
    own_reports = {inst.name: inst.drift()["x"] for inst in insts}
    assert own_reports["c"].status == "drifting", own_reports["c"]
    assert own_reports["a"].status == "ok" and own_reports["b"].status == "ok", own_reports
    assert all(r.instances == 0 for r in own_reports.values())
    H.log("each instance's own windows: c drifts, a and b do not")

    merged = insts[0].drift(cluster=True)
    x = merged["x"]
    assert (x.instances, x.window_size, x.reference_size) == (3, 3 * N, 3 * N), x
    want = stats.ks_2samp(ref["a"] + ref["b"] + ref["c"], win["a"] + win["b"] + win["c"]).statistic
    assert abs(x.ks - want) < 1e-9, (x.ks, want)
    assert x.reference_source == "first_n", x
    c = merged["c"]
    assert (c.instances, c.window_size, c.reference_size) == (3, 3 * N, 3 * N), c
    H.log(f"merged through a: KS {x.ks:.6f} over {x.window_size} values = SciPy's; status {x.status}")
    out = H.featctl(args, "--addr", insts[1].addr["grpc"], "--json", "drift", "--cluster", "user")
    assert out.returncode == 0, out
    js = {f["feature"]: f for f in json.loads(out.stdout)["features"]}
    assert js["x"]["instances"] == 3 and abs(js["x"]["ks"] - want) < 1e-5, js
    for inst in insts:
        assert inst.proc.stop() == 0, inst.proc.tail()
    return True


if __name__ == "__main__":
    main()
