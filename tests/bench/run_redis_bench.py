#!/usr/bin/python3
"""featd's Redis protocol against Redis itself, driven by redis-benchmark, in one run (issue 14).

One featd (embedded broker; one table `bench` of 10 double features f0..f9; 10,000 entities
"000000000000".."000000009999" loaded through Kafka; serve.cache on; redis.listen) and one
redis-server (Debian's Redis 7, no persistence) holding the same 10,000 hashes bench:<entity>
with the same fields, written as featd renders them. Before timing, the script checks that both
answer the same bytes to HMGET, HGETALL and GET of 200 keys. Then redis-benchmark (one process,
keys from -r 10000, so __rand_int__ is a 12-digit entity) drives each server in turn, alternating
which goes first, at concurrency 1, 4 and 16 for each command; the medians over rounds of
requests per second and p50/p99 latency are printed as a Markdown table with featd/Redis ratios.
Targets (issue 14): throughput >= 0.8x Redis, p99 <= 1.5x Redis.

  /usr/bin/python3 tests/bench/run_redis_bench.py --build-dir build-rel --source-dir . [--rounds 3]
"""
import argparse
import csv
import io
import json
import os
import random
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as H  # noqa: E402

N_ENT = 10000
FIELDS = [f"f{i}" for i in range(10)]


def bench(port, c, n, cmd):
    out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(c), "-n", str(n),
                          "-r", str(N_ENT), "--csv", *cmd], capture_output=True, text=True, timeout=600)
    rows = list(csv.reader(io.StringIO(out.stdout)))
    if len(rows) < 2:
        raise RuntimeError(f"redis-benchmark: {out.stdout} {out.stderr}")
    h, v = rows[0], rows[1]
    d = dict(zip(h, v))
    return float(d["rps"]), float(d["p50_latency_ms"]) * 1000, float(d["p99_latency_ms"]) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=100000, help="per redis-benchmark run at concurrency > 1")
    ap.add_argument("--threads", type=int, default=1, help="redis.threads")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--long", action="store_true")
    args = ap.parse_args()
    wd = H.Workdir(args, "rbench")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc
    feats = "".join(f"feature.{f} = double\n" for f in FIELDS)
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
[admin]
listen = 127.0.0.1:0
[redis]
listen = 127.0.0.1:0
threads = {args.threads}
[kafka]
embedded = true
partitions = 4
session.timeout.ms = 6000
[table bench]
topic = bench_events
{feats}
""")
    rport = H.free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--protected-mode", "no", "--dir", wd.path],
                             stdout=open(wd.file("redis.log"), "w"), stderr=subprocess.STDOUT)
    featd = H.start_featd(args, wd, cfg)
    try:
        addrs = H.featd_addrs(wd)
        fport = int(addrs["redis"].rsplit(":", 1)[1])
        admin = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(addrs["grpc"]))
        H.wait_ready(admin)
        import redis as redis_py
        rc = redis_py.Redis(port=rport)
        H.wait_for(lambda: rc.ping(), 30, "redis-server")
        prod = H.producer(open(wd.file("data/kafka.bootstrap")).read().strip())
        rnd = random.Random(7)
        now = int(time.time() * 1000)
        pipe = rc.pipeline(transaction=False)
        for e in range(N_ENT):
            key = f"{e:012d}"
            x = {f: rnd.gauss(0, 1) for f in FIELDS}
            prod.produce("bench_events", key=key, value=json.dumps({"ts": now - 60000, "features": x}).encode())
            prod.poll(0)
            pipe.hset(f"bench:{key}", mapping={f: repr(v) for f, v in x.items()})
            for f, v in x.items():
                pipe.set(f"bench:{key}:{f}", repr(v))
            if e % 500 == 499:
                pipe.execute()
        pipe.execute()
        prod.flush(30)
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= N_ENT, 120, "events")
        # the same bytes from both, or the comparison means nothing
        fs, rs = H.RespConn(("127.0.0.1", fport)), H.RespConn(("127.0.0.1", rport))
        for e in random.Random(3).sample(range(N_ENT), 200):
            k = f"bench:{e:012d}"
            for cmd in (["HMGET", k, *FIELDS], ["HGETALL", k], ["GET", k + ":f3"]):
                a, b = fs.cmd(*cmd), rs.cmd(*cmd)
                assert a == b, (cmd, a, b)
        fs.close()
        rs.close()
        H.log("featd and redis-server answer the same bytes for 200 keys x 3 commands")
        cases = {"HMGET 10 fields": ["HMGET", "bench:__rand_int__", *FIELDS],
                 "HGETALL": ["HGETALL", "bench:__rand_int__"],
                 "GET 1 feature": ["GET", "bench:__rand_int__:f3"]}
        servers = {"featd": fport, "redis": rport}
        res = {}
        for name, cmd in cases.items():   # warm-up: every entity into featd's cache, both servers' pages
            for port in servers.values():
                bench(port, 4, 20000, cmd)
        if os.environ.get("FEATD_BENCH_PERF"):  # a profile of featd under HMGET at 16 clients, then stop
            pr = subprocess.Popen(["perf", "record", "-g", "-p", str(featd.p.pid), "-o", os.environ["FEATD_BENCH_PERF"],
                                   "--", "sleep", "8"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            bench(fport, 16, 400000, cases["HMGET 10 fields"])
            pr.wait()
            assert featd.stop() == 0
            return
        for r in range(args.rounds):
            for name, cmd in cases.items():
                for c in (1, 4, 16):
                    n = args.requests // 4 if c == 1 else args.requests
                    order = list(servers) if (r + c) % 2 == 0 else list(servers)[::-1]
                    for s in order:
                        m = bench(servers[s], c, n, cmd)
                        res.setdefault((name, c, s), []).append(m)
                        H.log(f"round {r + 1} {name:16s} c={c:2d} {s:5s} {m[0]:9.0f} req/s  p50 {m[1]:6.0f} µs  "
                              f"p99 {m[2]:6.0f} µs")
        med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in res.items()}
        print("| command | clients | Redis req/s | featd req/s | featd/Redis req/s | Redis p50 / p99 µs | "
              "featd p50 / p99 µs | featd/Redis p99 |")
        print("|---|---|---|---|---|---|---|---|")
        worst_t, worst_p = 9.0, 0.0
        for name in cases:
            for c in (1, 4, 16):
                rd, fd = med[(name, c, "redis")], med[(name, c, "featd")]
                t, p = fd[0] / rd[0], fd[2] / rd[2]
                worst_t, worst_p = min(worst_t, t), max(worst_p, p)
                print(f"| {name} | {c} | {rd[0]:.0f} | {fd[0]:.0f} | {t:.2f} | {rd[1]:.0f} / {rd[2]:.0f} | "
                      f"{fd[1]:.0f} / {fd[2]:.0f} | {p:.2f} |")
        print(f"\nworst: throughput {worst_t:.2f}x Redis (target >= 0.8), p99 {worst_p:.2f}x Redis (target <= 1.5)")
        assert featd.stop() == 0
    finally:
        if featd.alive():
            featd.kill9()
        redis.terminate()
        redis.wait(10)
        wd.cleanup(True)


if __name__ == "__main__":
    main()
