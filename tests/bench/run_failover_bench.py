#!/usr/bin/python3
"""Failover with and without standby replicas (issue 12), measured in one run on this machine.

For cluster.standby_replicas = 0 and then 1, in consumer groups of their own over the same log:

  catch-up   3 featd instances (cluster.mode = partitioned) start on the whole log; the time until
             every entity is answered through a and until every standby is caught up
             (featd_cluster_standby_lag 0), and what tailing each partition twice costs: events
             applied over the three stores and their size
  failover   kill -9 of instance c while a client asks a for c's entities in a loop (50 per call):
             how long c's entities answer UNAVAILABLE or RESTORING (first to last such answer), and
             when every one of them is answered with its value again

featd-broker with 3 brokers and 12 partitions, 120,000 events over 10,000 entities (10 double
features), session.timeout.ms = 6000; everything on this machine.

  /usr/bin/python3 tests/bench/run_failover_bench.py --build-dir build-rel --source-dir . [--rounds 2]
"""
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import run_cluster_bench as CB  # noqa: E402


def run_variant(args, wd, bs, standby, rnd_tag, every):
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    group = f"fo-{rnd_tag}-s{standby}"
    t_start = time.time()
    extra = f"standby_replicas = {standby}\nstandby_max_lag = 0" if standby else ""
    inst = []
    for n in "abc":
        inst.append(CB.start(args, wd, f"{n}-{rnd_tag}-s{standby}", bs, group=group, cluster_extra=extra))
        PROCS.append(inst[-1])
    a = inst[0]
    ch = grpc.insecure_channel(a["addr"]["grpc"])
    fstub = feature_service_pb2_grpc.FeatureServiceStub(ch)
    astub = admin_pb2_grpc.AdminServiceStub(ch)

    def statuses(keys):
        r = fstub.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="bench", entity_keys=keys, features=["f0"]),
                                    timeout=30)
        return [row.values[0].status for row in r.rows]

    def answered():
        for i in range(0, len(every), 500):
            if any(s != fs.PRESENT for s in statuses(every[i:i + 500])):
                return False
        m = astub.GetCluster(admin_pb2.GetClusterRequest(), timeout=5)
        return len({p.instance_id for p in m.partitions}) == 3 and not any(p.restoring for p in m.partitions)

    def standbys_caught_up():
        lags = [v for x in inst for (n, _), v in H.scrape(x["addr"]["admin"]).items() if n == "featd_cluster_standby_lag"]
        return len(lags) == CB.PARTS * standby and all(v == 0 for v in lags)
    H.wait_for(answered, 600, f"standby_replicas = {standby}: every entity answered", interval=0.5)
    catchup = time.time() - t_start
    if standby:
        H.wait_for(standbys_caught_up, 600, "every standby caught up", interval=0.5)
    sb_catchup = time.time() - t_start
    applied = sum(H.metric(x["addr"]["admin"], "featd_ingest_events_total") or 0 for x in inst)
    store = 0
    for x in inst:
        st = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(x["addr"]["grpc"])).Status(admin_pb2.StatusRequest(),
                                                                                             timeout=5)
        store += st.store_bytes
    m = astub.GetCluster(admin_pb2.GetClusterRequest(), timeout=5)
    owner = {p.partition: p.instance_id for p in m.partitions}
    c_name = inst[2]["name"]
    c_keys = [k for k in every if owner[CB_PART[k]] == c_name]
    stop = threading.Event()
    seen = {"bad": [], "calls": 0, "last_ok": 0.0}

    def load():
        r = random.Random(3)
        while not stop.is_set():
            sample = r.sample(c_keys, 50)
            st = statuses(sample)
            now = time.time()
            seen["calls"] += 1
            if all(s == fs.PRESENT for s in st):
                seen["last_ok"] = now
            else:
                seen["bad"].append(now)
    th = threading.Thread(target=load)
    th.start()
    time.sleep(2)
    t_kill = time.time()
    inst[2]["proc"].kill9()

    def recovered():
        m = astub.GetCluster(admin_pb2.GetClusterRequest(), timeout=5)
        return (c_name not in {p.instance_id for p in m.partitions} and all(p.instance_id for p in m.partitions)
                and not any(p.restoring for p in m.partitions) and seen["last_ok"] > time.time() - 0.5)
    H.wait_for(recovered, 120, "c's partitions owned again and answered")
    t_owned = time.time() - t_kill
    time.sleep(1)
    stop.set()
    th.join()
    bad = seen["bad"]
    window = (bad[-1] - bad[0]) if bad else 0.0
    res = {"standby": standby, "answered_s": catchup, "standbys_caught_up_s": sb_catchup, "applied": applied,
           "store_bytes": store, "unanswered_s": window, "bad_calls": len(bad),
           "calls": seen["calls"], "owned_again_s": t_owned,
           "first_bad_s": (bad[0] - t_kill) if bad else None}
    H.log(f"standby_replicas = {standby}: every entity answered {catchup:.1f} s after start, standbys caught up "
          f"at {sb_catchup:.1f} s; {applied:.0f} events applied over the 3 stores, {store / 1e6:.1f} MB of store")
    H.log(f"standby_replicas = {standby}: after the kill c's entities unanswered "
          f"for {window:.2f} s ({len(bad)} of {seen['calls']} calls"
          + (f", from {bad[0] - t_kill:.1f} s" if bad else "") + f"); owned again {t_owned:.1f} s after it")
    for x in inst[:2]:
        x["proc"].stop()
    return res


CB_PART = {}
PROCS = []


def main():
    args, wd, broker, bs = CB.setup("failover-bench", 2)
    ok = False
    try:
        CB_PART.update(CB.produce_log(args, bs)[0])
        every = [f"e{i}" for i in range(args.entities)]
        results = []
        for r in range(args.rounds):
            for standby in (0, 1):
                results.append(run_variant(args, wd, bs, standby, f"r{r}", every))
        print(json.dumps(results))
        ok = True
    finally:
        for p in PROCS:
            if p["proc"].alive():
                p["proc"].kill9()
        broker.stop()
    wd.cleanup(ok)


if __name__ == "__main__":
    main()
