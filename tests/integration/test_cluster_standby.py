#!/usr/bin/env python3
"""Standby replicas (cluster.standby_replicas = 1) in a partitioned cluster of three featd processes
against featd-broker with 3 brokers and 12 partitions, producers keying by entity with murmur2.

The expected online value of every key is computed here from what was produced, not by featd.

1. Layout: once the group has settled, every partition has exactly one standby, the instance after its
   owner in instance_id order (a -> b -> c -> a), in every instance's map; every standby catches up
   (featd_cluster_standby_lag 0) and featctl cluster shows the STANDBY column.
2. kill -9 of c under lookup load through a and b, with cluster.standby_max_lag = 0 (a standby answers
   only what the log holds): c's keys are answered with the expected values throughout, never
   UNAVAILABLE or RESTORING, first by c's standby (a) while forwarded calls to c fail, then by their new
   owners (or by a again while a new owner restores).  In test_cluster, without standbys, the same kill
   leaves c's keys unanswered for 11-22 s.  A partition the group hands to its standby needs no restore:
   the standby's store is caught up.  The eager rebalance also moves partitions between a and b; their
   previous owner tails them as a standby from the assignment on, and how long their keys were not
   answered is logged, not asserted (a restore of a few hundred records takes tens of ms, less than a
   membership record takes to travel).
3. After the failover every partition has an owner and a standby again (b's standby is a), and new
   events reach every key.  A graceful stop of b under lookup load through a: every key is answered with
   its expected value throughout, and a takes b's partitions over from its standbys without restoring
   any.  In each store each partition's applied count equals its next offset: a record applied by the
   standby consumer and again by the group's would make it larger.
"""
import json
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import test_cluster as TC  # noqa: E402

STANDBY = "standby_replicas = 1\nstandby_max_lag = 0"


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "cluster-standby")
    H.gen_protos(args, wd.path)
    H.with_brokers(args, wd, TC.config(wd, "broker", "127.0.0.1:1", "single", "x", 1), TC.PARTS, run)


def run(args, wd, bs, procs):
    rnd = random.Random(11)
    prod = H.producer(bs, partitioner="murmur2_random", **{"enable.idempotence": True})
    keys = [f"u{i}" for i in range(900)]
    expected, parts_of = {}, {}
    t0 = int(time.time() * 1000) - 3600_000
    seq = [0]

    def produce(n):
        for _ in range(n):
            i = seq[0]
            seq[0] += 1
            k = keys[rnd.randrange(len(keys))]
            ts = t0 + i * 7
            x = round(rnd.gauss(0, 1), 6)

            def cb(err, m, k=k):
                if err:
                    raise RuntimeError(err)
                parts_of[k] = m.partition()
            H.produce(prod, TC.TOPIC, json.dumps({"ts": ts, "features": {"seq": i, "x": x, "c": "s"}}).encode(), k,
                      on_delivery=cb)
            expected[k] = ((ts, i), (ts, x), (ts, "s"))
            if i % 500 == 0:
                prod.poll(0)
        prod.flush(60)

    def mismatches(inst, ks=None):
        ks = ks or sorted(expected)
        bad = []
        for i in range(0, len(ks), 200):
            got = inst.lookup(ks[i:i + 200])
            bad += [(k, got[k], expected[k]) for k in ks[i:i + 200] if got[k] != expected[k]]
        return bad

    names = ["a", "b", "c"]
    insts = {}
    for n in names:
        insts[n] = TC.Instance(args, wd, n, bs, cluster_extra=STANDBY)
        procs.append(insts[n])
    a, b, c = insts["a"], insts["b"], insts["c"]
    produce(6000)
    for inst in (a, b, c):
        H.wait_for(lambda inst=inst: not mismatches(inst), 120, f"every key correct through {inst.name}")
    H.log(f"6000 events over {len(expected)} keys; every key correct through a, b and c")

    # -- 1. layout ----------------------------------------------------------------------------------------
    def layout(alive):
        """{partition: (owner, [standbys])} once every instance's map agrees and gives each partition
        one standby, the live instance after its owner in instance_id order, caught up."""
        last = [None]

        def read():
            views = []
            for inst in alive:
                m = inst.cluster()
                views.append({p.partition: (p.instance_id, sorted(p.standby), p.restoring)
                              for p in m.partitions if p.topic == TC.TOPIC})
            v = views[0]
            ring = sorted(i.name for i in alive)
            ok = (all(x == v for x in views) and sorted(v) == list(range(TC.PARTS)) and
                  all(o in ring and not r and s == [ring[(ring.index(o) + 1) % len(ring)]] for o, s, r in v.values()))
            lags = [val for inst in alive for (name, _), val in H.scrape(inst.addr["admin"]).items()
                    if name == "featd_cluster_standby_lag"]
            last[0] = (views, lags)
            return v if ok and len(lags) == TC.PARTS and all(x == 0 for x in lags) else None
        try:
            return H.wait_for(read, 90, f"standbys of {[i.name for i in alive]} laid out and caught up", interval=0.5)
        except AssertionError:
            H.log("last seen (maps, standby lags):", last[0])
            raise

    TC.settled_map((a, b, c), "a, b and c agree on the partition map")
    lay = layout((a, b, c))
    H.log("owner -> standby:", {p: f"{o}->{s[0]}" for p, (o, s, _) in sorted(lay.items())})
    js = json.loads(H.featctl(args, "--addr", a.addr["grpc"], "--json", "cluster").stdout)
    sb = {m["instance_id"]: m["standby"] for m in js["members"]}
    assert all(sb.get(n, {}).get(TC.TOPIC) for n in names), sb
    assert all(m["generation"] > 0 for m in js["members"] if not m["stale"]), js["members"]
    out = H.featctl(args, "--addr", a.addr["grpc"], "cluster").stdout
    assert "STANDBY" in out and "GEN" in out, out

    # -- 2. kill -9 of c under lookup load -------------------------------------------------------------------
    c_parts = {p for p, (o, _, _) in lay.items() if o == "c"}
    c_keys = [k for k in sorted(expected) if parts_of[k] in c_parts]
    other = [k for k in sorted(expected) if parts_of[k] not in c_parts]
    assert c_keys and other
    stop = threading.Event()
    seen = {"wrong": [], "c": [], "survivors": [], "calls": 0}
    c_set = set(c_keys)

    def load(inst):
        r = random.Random(inst.name)
        while not stop.is_set():
            sample = r.sample(c_keys, min(60, len(c_keys))) + r.sample(other, 20)
            try:
                got = inst.lookup(sample, timeout=5)
            except Exception as e:  # keys get statuses; a call never fails for an unreachable owner
                seen["wrong"].append(("call failed", inst.name, repr(e)[:200]))
                continue
            now = time.time()
            seen["calls"] += 1
            for k in sample:
                if got[k] == expected[k]:
                    continue
                if all(x in ("UNAVAILABLE", "RESTORING") for x in got[k]):
                    seen["c" if k in c_set else "survivors"].append((now, inst.name, k, got[k][0]))
                else:
                    seen["wrong"].append((inst.name, k, got[k], expected[k]))
    w = H.Workers(stop)
    w.start(load, a, name="load-a")
    w.start(load, b, name="load-b")
    time.sleep(1)
    t_kill = time.time()
    c.proc.kill9()
    H.log("killed c (kill -9)")
    H.wait_for(lambda: {p.instance_id for p in a.cluster().partitions if p.topic == TC.TOPIC} == {"a", "b"} and
               not any(p.restoring for p in a.cluster().partitions), 90, "c's partitions owned by a and b", watch=w)
    time.sleep(2)
    stop.set()
    w.join()
    H.log(f"{seen['calls']} lookups through a and b over {time.time() - t_kill:.1f}s after the kill")
    assert not seen["wrong"], seen["wrong"][:5]
    assert not seen["c"], (f"{len(seen['c'])} statuses, from {seen['c'][0][0] - t_kill:.1f}s to "
                           f"{seen['c'][-1][0] - t_kill:.1f}s after the kill", seen["c"][:5])
    H.log("c's keys were answered with the expected values throughout the failover: no UNAVAILABLE, no RESTORING")
    sv = seen["survivors"]
    H.log("the survivors' keys (the eager rebalance also moves some of their partitions): " +
          (f"{len(sv)} statuses {sorted({x[3] for x in sv})}, from {sv[0][0] - t_kill:.2f}s to "
           f"{sv[-1][0] - t_kill:.2f}s after the kill" if sv else "always answered"))
    fallbacks = (a.metric("featd_cluster_forwarded_calls_total") or 0) + (b.metric("featd_cluster_forwarded_calls_total") or 0)
    assert fallbacks > 0

    # -- 3. after the failover; then a graceful stop of b -------------------------------------------------------
    lay2 = layout((a, b))
    H.log("owner -> standby after the kill:", {p: f"{o}->{s[0]}" for p, (o, s, _) in sorted(lay2.items())})
    produce(1500)
    for inst in (a, b):
        H.wait_for(lambda inst=inst: not mismatches(inst), 90, f"new events through {inst.name}")
    H.log("1500 more events: every key correct through a and b")
    b_parts = {p for p, (o, _, _) in lay2.items() if o == "b"}
    stop.clear()
    seen.update(wrong=[], c=[], survivors=[], calls=0)
    c_set = {k for k in expected if parts_of[k] in b_parts}   # b's keys now play c's part
    c_keys[:] = sorted(c_set)
    other[:] = [k for k in sorted(expected) if k not in c_set]
    w = H.Workers(stop)
    w.start(load, a, name="load-a")
    time.sleep(1)
    t_stop = time.time()
    assert b.proc.stop() == 0, b.proc.tail()
    H.wait_for(lambda: {p.instance_id for p in a.cluster().partitions if p.topic == TC.TOPIC} == {"a"}, 60,
               "a owns every partition", watch=w)
    time.sleep(1)
    stop.set()
    w.join()
    assert not seen["wrong"], seen["wrong"][:5]
    assert not seen["c"] and not seen["survivors"], (seen["c"] + seen["survivors"])[:5]
    H.log(f"b stopped: {seen['calls']} lookups through a over {time.time() - t_stop:.1f}s, every key answered "
          "with its expected value")
    log = open(a.proc.logpath, errors="replace").read()
    took = []
    for mt in re.finditer(re.escape(TC.TOPIC) + r"\[(\d+)\]: the standby here becomes its owner", log):
        p = int(mt.group(1))
        assert f"restoring {TC.TOPIC}[{p}]" not in log[mt.end():], (p, "restored after the takeover")
        took.append(p)
    assert b_parts <= set(took), (sorted(b_parts), took)
    H.log(f"a took b's partitions {sorted(b_parts)} over from its standbys: caught up, nothing restored")
    assert a.proc.stop() == 0, a.proc.tail()
    for inst in (a, b, c):
        for o in H.inspect(args, inst.cfg, "offsets"):
            assert o["applied"] == o["next"], (inst.name, o)
    H.log("every store applied each partition's records once (applied == next offset), standby partitions included")
    return True


if __name__ == "__main__":
    main()
