#!/usr/bin/env python3
"""Several featd processes as one service (cluster.mode), against featd-broker
with 3 brokers and 12 partitions, the producers keying by entity with Java's
murmur2 partitioner (confluent-kafka's partitioner=murmur2_random).

The expected online value of every key is computed here from what was
produced (the event with the greatest time per key and feature), not by featd.

1. Partitioned, scaled 1 -> 3 during ingest: instance A alone while the first
   half of the log is produced, then B and C join while the rest is.  Every
   key looked up through every instance equals the expected value and the
   answer of a single-mode featd that read the same log on its own; the map
   (GetCluster, featctl cluster) gives each of the 12 partitions one owner.
2a. C cut off from the brokers only (an LD_PRELOAD shim, netcut_shim.c) while
   events of every partition keep coming: its partitions move to A and B,
   which then answer the new values; an older value than the log's newest
   (from C, or from A forwarding to C) is seen only until C's session times
   out, and none at all after C reconnects and takes partitions back.
2. kill -9 of C under lookup load through A and B: C's keys answer
   UNAVAILABLE or RESTORING (never a wrong value) for a bounded time, then the
   expected values, while B and A restore C's partitions from the log.  The
   rebalance (Kafka's eager protocol, range assignor) also moves some of A's
   and B's partitions: their keys may show the same statuses, briefly, and
   are never wrong either.
3. A graceful stop of B (3 -> 1 again): A takes every partition.  In every
   store each partition's applied count equals its next offset (the log
   starts at 0 and has no gaps): a record applied twice would make it larger.
4. cluster.mode = single: a second featd in the same group is refused (exit 2,
   one line naming cluster.mode); the running one logs an ERROR and counts it.
5. Replica mode: two replicas answer identically (and as expected); one told
   cluster.partitioner = crc32 counts the murmur2-keyed records as misrouted.
"""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PARTS = 12
NKEYS = 1200
TOPIC = "cu_events"


def config(wd, name, bootstrap, mode, group, port, partitioner="murmur2", peer_port=0, cluster_extra=""):
    return f"""
[featd]
data_dir = {wd.file("data-" + name)}
progress_interval = 2s
[serve]
listen = 127.0.0.1:{port}
[admin]
listen = 127.0.0.1:0
[redis]
listen = 127.0.0.1:0
[kafka]
embedded = false
bootstrap.servers = {bootstrap}
group.id = {group}
session.timeout.ms = 6000
heartbeat.interval.ms = 500
partitions = {PARTS}
[cluster]
mode = {mode}
listen = {f"127.0.0.1:{peer_port}" if peer_port else ""}
instance_id = {name}
partitioner = {partitioner}
{cluster_extra}
[table user]
topic = {TOPIC}
entity = user_id
feature.seq = int64
feature.x = double
feature.c = string
"""


class Instance:
    def __init__(self, args, wd, name, bootstrap, mode="partitioned", group="cu", partitioner="murmur2", env=None,
                 cluster_extra=""):
        import grpc
        from featd.v1 import admin_pb2_grpc, feature_service_pb2_grpc
        self.name = name
        self.port = H.free_port()
        self.cfg = wd.file(f"{name}.ini")
        open(self.cfg, "w").write(config(wd, name, bootstrap, mode, group, self.port, partitioner,
                                         H.free_port() if mode == "partitioned" else 0, cluster_extra))
        self.proc = H.start_featd(args, wd, self.cfg, logname=f"{name}.log", env=env)
        self.addr = H.featd_addrs(wd, data_dir="data-" + name, proc=self.proc)
        self.ch = grpc.insecure_channel(self.addr["grpc"])
        self.fs = feature_service_pb2_grpc.FeatureServiceStub(self.ch)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.ch)
        H.log(f"{name}: {mode} at {self.addr['grpc']}")

    def lookup(self, keys, timeout=10):
        from featd.v1 import feature_service_pb2 as fs
        r = self.fs.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=keys,
                                                                   features=["seq", "x", "c"]), timeout=timeout)
        out = {}
        for row in r.rows:
            vals = []
            for v in row.values:
                st = fs.FeatureStatus.Name(v.status)
                if st == "PRESENT":
                    kind = v.value.WhichOneof("kind")
                    vals.append((v.event_time_ms, getattr(v.value, kind)))
                else:
                    vals.append(st)
            out[row.entity_key] = tuple(vals)
        return out

    def cluster(self):
        from featd.v1 import admin_pb2
        return self.admin.GetCluster(admin_pb2.GetClusterRequest(), timeout=10)

    def metric(self, name, labels=None):
        return H.metric(self.addr["admin"], name, labels)


def settled_map(insts, what):
    """The partition map once the group has settled: every instance tells the same owner for each
    partition, every one of them owns some, none restores or drains, twice a second apart (a map
    read mid-rebalance would put keys in the wrong group)."""
    last = [None]

    def read():
        maps = [i.cluster() for i in insts]
        views = [{p.partition: (p.instance_id, p.restoring) for p in m.partitions if p.topic == TOPIC}
                 for m in maps]
        ok = (all(v == views[0] for v in views) and sorted(views[0]) == list(range(PARTS)) and
              not any(r for _, r in views[0].values()) and
              {o for o, _ in views[0].values()} == {i.name for i in insts} and
              not any(mem.draining for m in maps for mem in m.members if not mem.stale))
        now = {k: o for k, (o, _) in views[0].items()} if ok else None
        same, last[0] = now is not None and now == last[0], now
        if not same:
            time.sleep(1)
        return same
    H.wait_for(read, 90, what)
    return last[0]


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "cluster")
    H.gen_protos(args, wd.path)
    H.with_brokers(args, wd, config(wd, "broker", "127.0.0.1:1", "single", "x", 1), PARTS, run)


def run(args, wd, bs, procs):
    rnd = random.Random(7)
    prod = H.producer(bs, partitioner="murmur2_random", **{"enable.idempotence": True})
    expected = {}           # key -> (ts, seq, x, c) of its newest event
    events = {}             # key -> [(ts, seq, x, c)] in time order
    t0 = int(time.time() * 1000) - 3600_000
    keys = [f"u{i}" for i in range(NKEYS)]
    parts_of = {}
    delivered = [0]
    lock = threading.Lock()

    def produce(n, start):
        for i in range(start, start + n):
            k = keys[rnd.randrange(NKEYS)]
            ts = t0 + i * 7 + rnd.randrange(5)   # increasing per key: no ties to break
            x = round(rnd.gauss(0, 1), 6)
            c = rnd.choice(["a", "b", "ü", ""])

            def cb(err, m, k=k):
                if err:
                    raise RuntimeError(err)
                with lock:
                    parts_of[k] = m.partition()
                    delivered[0] += 1
            H.produce(prod, TOPIC, json.dumps({"ts": ts, "features": {"seq": i, "x": x, "c": c}}).encode(), k,
                      on_delivery=cb)
            expected[k] = (ts, i, x, c)
            events.setdefault(k, []).append((ts, i, x, c))
            if i % 500 == 0:
                prod.poll(0)
        prod.flush(60)

    def expect_row(k):
        ts, seq, x, c = expected[k]
        return ((ts, seq), (ts, x), (ts, c))

    def history(inst, rows):
        from featd.v1 import feature_service_pb2 as fs
        req = fs.GetHistoricalFeaturesRequest(table="user", features=["seq", "x", "c"],
                                              rows=[fs.EntityTime(entity_key=k, ts_ms=t) for k, t in rows])
        out = []
        for r in inst.fs.GetHistoricalFeatures(req, timeout=30):
            vals = []
            for v in r.values:
                st = fs.FeatureStatus.Name(v.status)
                vals.append((v.event_time_ms, getattr(v.value, v.value.WhichOneof("kind")))
                            if st == "PRESENT" else st)
            out.append((r.entity_key, r.ts_ms, tuple(vals)))
        return out

    def expect_at(k, t):
        before = [e for e in events.get(k, []) if e[0] <= t]
        if not before:
            return "NOT_FOUND", "NOT_FOUND", "NOT_FOUND"
        ts, seq, x, c = before[-1]
        return (ts, seq), (ts, x), (ts, c)

    def mismatches(inst, ks=None):
        ks = ks or sorted(expected)
        bad = []
        for i in range(0, len(ks), 200):
            got = inst.lookup(ks[i:i + 200])
            bad += [(k, got[k], expect_row(k)) for k in ks[i:i + 200] if got[k] != expect_row(k)]
        return bad

    # -- 1. scale 1 -> 3 during ingest ---------------------------------------------------------------
    a = Instance(args, wd, "a", bs)
    procs.append(a)
    produce(8000, 0)
    b = Instance(args, wd, "b", bs)
    procs.append(b)
    # c can be cut off from the brokers (and only from them): tests/integration/netcut_shim.c
    cut = wd.file("netcut")
    # (under ASan the preloaded shim comes before ASan's runtime: allowed explicitly)
    asan = ":".join(x for x in (os.environ.get("ASAN_OPTIONS", ""), "verify_asan_link_order=0") if x)
    shim_env = dict(os.environ, LD_PRELOAD=os.path.join(args.build_dir, "tests", "libnetcut_shim.so"),
                    FEATD_NETCUT_TRIGGER=cut, FEATD_NETCUT_PORTS=",".join(a.rsplit(":", 1)[1] for a in bs.split(",")),
                    ASAN_OPTIONS=asan)
    c = Instance(args, wd, "c", bs, env=shim_env)
    procs.append(c)
    produce(8000, 8000)
    assert delivered[0] == 16000, delivered
    H.log(f"produced 16000 events over {len(expected)} keys")
    for inst in (a, b, c):
        H.wait_for(lambda inst=inst: not mismatches(inst), 120, f"every key correct through {inst.name}")
    H.log("every key through a, b and c equals the expected value")
    ref = Instance(args, wd, "ref", bs, mode="single", group="cu-ref")
    procs.append(ref)
    H.wait_for(lambda: not mismatches(ref), 120, "the single-mode reference run")
    ks = sorted(expected)
    for i in range(0, len(ks), 300):
        want = ref.lookup(ks[i:i + 300])
        for inst in (a, b, c):
            assert inst.lookup(ks[i:i + 300]) == want, inst.name
    H.log("a, b and c answer exactly as the single-mode instance")
    # the Redis protocol reads every owner's keys through any instance, as GetOnlineFeatures does
    sample = random.Random(5).sample(ks, 200)
    want = ref.lookup(sample)

    def resp_row(vals):
        out = b"*%d\r\n" % len(vals)
        for v in vals:
            if isinstance(v, str):   # a status: NOT_FOUND (nil)
                out += b"$-1\r\n"
                continue
            x = v[1]
            t = (repr(x)[:-2] if repr(x).endswith(".0") else repr(x)) if isinstance(x, float) else str(x)
            out += b"$%d\r\n%s\r\n" % (len(t.encode()), t.encode())
        return out
    for inst in (a, b, c):
        rc = H.RespConn(inst.addr["redis"])
        rc.send(b"".join(H.resp_encode("HMGET", f"user:{k}", "seq", "x", "c", "x") for k in sample))
        got = rc.replies(len(sample))
        rc.close()
        row = {k: resp_row(list(want[k]) + [want[k][1]]) for k in sample}   # x asked twice: one read, two answers
        bad = [(k, g) for k, g in zip(sample, got) if g != row[k]]
        assert not bad, (inst.name, bad[:3], [row[k] for k, _ in bad[:3]])
    H.log("HMGET over the Redis protocol of 200 keys through a, b and c equals the reference's values")
    # point in time, rows of every owner in one request, through every instance
    hrows = []
    for k in random.Random(3).sample(ks, 300):
        evs = events[k]
        t = random.Random(k).choice(evs)[0] + random.Random(k).choice([-1, 0, 1])
        hrows.append((k, t))
    hrows.append((ks[0], t0 - 10))
    want = [(k, t, expect_at(k, t)) for k, t in hrows]
    for inst in (a, b, c, ref):
        got = history(inst, hrows)
        bad = [(g, w) for g, w in zip(got, want) if g != w]
        assert not bad and len(got) == len(want), (inst.name, bad[:3])
    H.log(f"{len(hrows)} point-in-time rows through a, b, c and ref equal the log's values as of each time")
    assert ref.proc.stop() == 0, ref.proc.tail()   # under ASan: no leak either
    owners = settled_map((a, b, c), "a, b and c agree on the partition map")
    m = a.cluster()
    assert m.misrouted_records == 0, m.misrouted_records
    owned = {n: sum(1 for v in owners.values() if v == n) for n in "abc"}
    H.log("partition map:", owned)
    out = H.featctl(args, "--addr", a.addr["grpc"], "cluster")
    assert out.returncode == 0 and "partitioned" in out.stdout and " b " in out.stdout.replace("\n", " "), out
    js = json.loads(H.featctl(args, "--addr", b.addr["grpc"], "--json", "cluster").stdout)
    assert js["instance_id"] == "b" and {x["instance_id"] for x in js["members"]} >= {"a", "b", "c"}, js
    forwarded = a.metric("featd_cluster_forwarded_calls_total", 'result="ok"')
    assert forwarded and forwarded > 0, forwarded

    # -- 2a. c cut off from the brokers, then back -------------------------------------------------------
    c_keys = [k for k in ks if owners[parts_of[k]] == "c"]
    assert c_keys, "c owns no key"

    def classify(k, v):
        if v == expect_row(k):
            return "correct"
        if all(x in ("UNAVAILABLE", "RESTORING") for x in v):
            return "status"
        older = [((ts, seq), (ts, x), (ts, cc)) for ts, seq, x, cc in events[k][:-1]]
        return "stale" if v in older else "wrong"

    open(cut, "w").close()
    t_cut = time.time()
    H.log("c cut off from the brokers")
    produce(600, 16000)   # new events while c is away (keys of every partition)
    stale_at = []

    def c_serves_nothing_stale(inst, since):
        got = inst.lookup(c_keys[:300])
        for k in c_keys[:300]:
            kind = classify(k, got[k])
            assert kind != "wrong", (inst.name, k, got[k], expect_row(k))
            if kind == "stale":
                stale_at.append(time.time() - since)
        return all(classify(k, got[k]) == "correct" for k in c_keys[:300])
    # c does not know it is cut off until its session times out (session.timeout.ms = 6 s): until
    # then it, and a forwarding to it, may answer with what it holds; never after
    H.wait_for(lambda: (c_serves_nothing_stale(c, t_cut), c_serves_nothing_stale(a, t_cut))[1] and
               not mismatches(a), 90, "c's partitions moved: a serves the new values")
    H.log(f"a serves c's keys with the events produced after the cut {time.time() - t_cut:.1f}s after it")
    deadline = time.time() + 3
    while time.time() < deadline:
        c_serves_nothing_stale(c, t_cut)
        c_serves_nothing_stale(a, t_cut)
    stale_c = max(stale_at) if stale_at else 0.0
    H.log(f"values older than the log's answered until {stale_c:.1f}s after the cut ({len(stale_at)} of them)")
    assert stale_c < 12, stale_at[-5:]
    stale_at.clear()
    os.remove(cut)
    t_back = time.time()
    H.log("c reconnected")
    for inst in (a, b, c):
        H.wait_for(lambda inst=inst: not mismatches(inst), 120, f"every key correct through {inst.name} after c's return")
        c_serves_nothing_stale(inst, t_back)
    assert not stale_at, f"stale values after c's return: {stale_at[:5]}"
    owners = settled_map((a, b, c), "c owns partitions again")
    ks = sorted(expected)
    H.log("after c's return:", {n: sum(1 for v in owners.values() if v == n) for n in "abc"})

    # -- 2. kill -9 of c under lookup load -------------------------------------------------------------
    c_keys = [k for k in ks if owners[parts_of[k]] == "c"]
    assert c_keys, "c owns no key"

    other_keys = [k for k in ks if owners[parts_of[k]] != "c"]
    stop = threading.Event()
    seen = {"wrong": [], "calls": 0}
    windows = {"c": [None, None, set()], "survivors": [None, None, set()]}   # first, last, statuses

    def load(inst):
        while not stop.is_set():
            for group, pool, n in (("c", c_keys, 50), ("survivors", other_keys, 20)):
                sample = random.sample(pool, min(n, len(pool)))
                try:
                    got = inst.lookup(sample, timeout=5)
                except Exception as e:  # keys get statuses; a call never fails for an unreachable owner
                    seen["wrong"].append(("call failed", inst.name, repr(e)[:200]))
                    continue
                now = time.time()
                seen["calls"] += 1
                for k in sample:
                    v = got[k]
                    if v == expect_row(k):
                        continue
                    if all(x in ("UNAVAILABLE", "RESTORING") for x in v):
                        win = windows[group]
                        win[0] = win[0] or now
                        win[1] = now
                        win[2].update(v)
                    else:
                        seen["wrong"].append((inst.name, k, v, expect_row(k)))
    w = H.Workers(stop)
    w.start(load, a, name="load-a")
    w.start(load, b, name="load-b")
    time.sleep(1)
    t_kill = time.time()
    c.proc.kill9()
    H.log("killed c (kill -9)")
    H.wait_for(lambda: not mismatches(a, c_keys) and not mismatches(b, c_keys), 90, "c's keys served again")
    t_back = time.time()
    time.sleep(1)
    stop.set()
    w.join()
    assert not seen["wrong"], seen["wrong"][:5]
    for group, (first, last, sts) in windows.items():
        H.log(f"{group}' keys: " + (f"{sorted(sts)} from {first - t_kill:.1f}s to {last - t_kill:.1f}s after the kill"
                                    if first else "always served"))
    H.log(f"every key correct again {t_back - t_kill:.1f}s after the kill; {seen['calls']} lookups, none wrong")
    assert windows["c"][0], "the kill went unnoticed: no UNAVAILABLE or RESTORING seen"
    assert windows["c"][1] - t_kill < 60, windows["c"]
    assert not windows["survivors"][0] or windows["survivors"][1] - windows["survivors"][0] < 10, windows

    # -- 3. graceful stop of b: a holds everything ------------------------------------------------------
    assert b.proc.stop() == 0
    H.wait_for(lambda: {p.instance_id for p in a.cluster().partitions if p.topic == TOPIC} == {"a"}, 60,
               "a owns every partition")
    H.wait_for(lambda: not mismatches(a), 60, "a serves every key after b left")
    produce(2000, 16600)
    H.wait_for(lambda: not mismatches(a), 60, "a after more events")
    assert a.proc.stop() == 0
    for inst in (a, b, c):
        offs = H.inspect(args, inst.cfg, "offsets")
        for o in offs:
            assert o["applied"] == o["next"], (inst.name, o)
        H.log(f"{inst.name}: " + ", ".join(f"p{o['partition']}:{o['applied']}" for o in offs if o["topic"] == TOPIC))
    H.log("every store applied each partition's records once (applied == next offset)")

    # -- 4. single mode refuses a second consumer in its group ----------------------------------------------
    s1 = Instance(args, wd, "s1", bs, mode="single", group="cu-solo")
    procs.append(s1)
    H.wait_for(lambda: not mismatches(s1), 90, "s1 caught up")
    port = H.free_port()
    cfg2 = wd.file("s2.ini")
    open(cfg2, "w").write(config(wd, "s2", bs, "single", "cu-solo", port))
    s2 = H.start_featd(args, wd, cfg2, logname="s2.log")
    rc = s2.p.wait(120)
    tail = s2.tail(200)
    assert rc == 2, (rc, tail)
    refusal = [l for l in tail.splitlines() if "cluster.mode" in l]
    assert len(refusal) == 1 and "another consumer" in refusal[0], tail
    H.log("s2 refused:", refusal[0].strip()[:200])
    H.wait_for(lambda: (s1.metric("featd_cluster_split_detected_total") or 0) >= 1, 60, "s1 counted the split")
    assert "another consumer joined" in s1.proc.tail(400)
    H.wait_for(lambda: s1.metric("featd_ingest_assigned_partitions") == PARTS, 60, "s1 holds every partition again")
    produce(500, 18600)
    H.wait_for(lambda: not mismatches(s1), 60, "s1 applies new events of every partition")
    assert s1.proc.stop() == 0, s1.proc.tail()

    # -- 5. replicas, and a partitioner mismatch ---------------------------------------------------------
    r1 = Instance(args, wd, "r1", bs, mode="replica", group="cu-rep")
    procs.append(r1)
    r2 = Instance(args, wd, "r2", bs, mode="replica", group="cu-rep", partitioner="crc32")
    procs.append(r2)
    for inst in (r1, r2):
        H.wait_for(lambda inst=inst: not mismatches(inst), 90, f"{inst.name} caught up")
    for i in range(0, len(ks), 300):
        assert r1.lookup(ks[i:i + 300]) == r2.lookup(ks[i:i + 300])
    H.log("two replicas answer identically")
    assert r1.cluster().misrouted_records == 0
    mis = r2.cluster().misrouted_records
    members = {m.instance_id for m in r1.cluster().members}
    assert {"r1", "r2"} <= members, members
    assert mis > 0.5 * 19100, mis    # crc32 agrees with murmur2 on ~1/12 of the keys
    assert (r2.metric("featd_cluster_misrouted_records_total", f'topic="{TOPIC}"') or 0) == mis
    assert "misrouted" in r2.proc.tail(400)
    H.log(f"crc32 replica: {mis} misrouted records detected and logged")
    assert r1.proc.stop() == 0, r1.proc.tail()
    assert r2.proc.stop() == 0, r2.proc.tail()
    return True


if __name__ == "__main__":
    main()
