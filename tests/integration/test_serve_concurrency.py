#!/usr/bin/python3
"""Many clients reading while ingest writes.  A producer writes version v of
20 entities (value v, event time increasing with v) through Kafka while eight
grpcio threads look them up, two stream GetHistoricalFeatures and one polls
Status.  Checks: no call fails; no read returns an older version than a read
of the same entity that finished before it started (no stale read after a
commit was visible); featd exits 0 (under the ASan build, that also means no
leak)."""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H


def main():
    def extra(p):
        p.add_argument("--seconds", type=float, default=12.0)
    args = H.parse_args(extra)
    wd = H.Workdir(args, "conc")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(f"""
[featd]
data_dir = {wd.file("data")}
[serve]
listen = 127.0.0.1:0
threads = 2
cache = 1MiB
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 4
session.timeout.ms = 6000
[table t]
topic = versions
feature.v = int64
""")
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        ch = grpc.insecure_channel(addrs["grpc"])
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_ready(admin)
        keys = [f"e{i}" for i in range(20)]
        stop = threading.Event()
        errors = []
        reads = []    # (start, end, key, version)
        lock = threading.Lock()
        base = int(time.time() * 1000) - 600_000

        def produce():
            prod = H.producer(bs)
            v = 0
            while not stop.is_set():
                v += 1
                for k in keys:
                    prod.produce("versions", key=k, value=json.dumps({"ts": base + v, "features": {"v": v}}).encode())
                prod.poll(0)
                time.sleep(0.002)
            prod.flush(10)

        def read(seed):
            stub = feature_service_pb2_grpc.FeatureServiceStub(grpc.insecure_channel(addrs["grpc"]))
            rnd = random.Random(seed)
            mine = []
            while not stop.is_set():
                sel = rnd.sample(keys, rnd.randint(1, 8))
                t0 = time.monotonic()
                try:
                    r = stub.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="t", entity_keys=sel), timeout=10)
                except grpc.RpcError as e:
                    errors.append(f"GetOnlineFeatures: {e.code()} {e.details()}")
                    return
                t1 = time.monotonic()
                for row in r.rows:
                    fv = row.values[0]
                    mine.append((t0, t1, row.entity_key, fv.value.int64_value if fv.status == fs.PRESENT else 0))
            with lock:
                reads.extend(mine)

        def stream(seed):
            stub = feature_service_pb2_grpc.FeatureServiceStub(grpc.insecure_channel(addrs["grpc"]))
            rnd = random.Random(seed)
            while not stop.is_set():
                req = fs.GetHistoricalFeaturesRequest(table="t", rows=[
                    fs.EntityTime(entity_key=rnd.choice(keys), ts_ms=base + rnd.randrange(0, 5000)) for _ in range(200)])
                try:
                    n = sum(1 for _ in stub.GetHistoricalFeatures(req, timeout=20))
                    assert n == 200, f"{n} rows streamed for 200 asked"
                except grpc.RpcError as e:
                    errors.append(f"GetHistoricalFeatures: {e.code()} {e.details()}")
                    return

        def status():
            while not stop.is_set():
                try:
                    admin.Status(admin_pb2.StatusRequest(), timeout=10)
                except grpc.RpcError as e:
                    errors.append(f"Status: {e.code()} {e.details()}")
                    return
                time.sleep(0.05)

        workers = H.Workers(stop)
        workers.start(produce)
        for i in range(8):
            workers.start(read, i)
        for i in range(2):
            workers.start(stream, 100 + i)
        workers.start(status)
        stop.wait(args.seconds)   # a failing worker sets stop: no need to sit out the run
        stop.set()
        workers.join(60)          # re-raises a worker's exception (an assert included)
        assert not errors, errors[:5]
        # global check: sweep reads by start time, keeping for each key the
        # highest version among reads that ended before this read started
        ends = sorted(reads, key=lambda r: r[1])
        end_times = [r[1] for r in ends]
        best = {}
        j = 0
        stale = 0
        for s0, s1, k, v in sorted(reads, key=lambda r: r[0]):
            while j < len(ends) and end_times[j] < s0:
                e = ends[j]
                best[e[2]] = max(best.get(e[2], 0), e[3])
                j += 1
            if v < best.get(k, 0):
                stale += 1
        top = max(r[3] for r in reads)
        assert stale == 0, f"{stale} stale reads out of {len(reads)}"
        assert top > 50, f"ingest barely progressed (top version {top})"
        assert featd.stop() == 0, featd.tail()
        H.log(f"OK: {len(reads)} reads of 20 entities while versions advanced to {top}: no error, no stale read, exit 0")
        ok = True
    finally:
        if featd.alive():
            featd.kill9()
        if not ok:
            print(featd.tail(40))
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
