#!/usr/bin/python3
"""Serving, end to end, with real outside clients: events produced through
Kafka (confluent-kafka) come back exactly from GetOnlineFeatures (Python
grpcio, stubs generated from proto/ now); statuses and event times are right;
GetHistoricalFeatures equals an independent point-in-time computation; every
error in the contract gets its gRPC code and a message naming the offender;
/metrics passes promtool; featctl agrees with gRPC; SIGTERM lets a running
stream finish and refuses new calls."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H

TTL_MS = 3600_000
SCHEMA = {"clicks": "int64", "ctr": "double", "country": "string", "premium": "bool"}


def config(wd):
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 1s
[serve]
listen = 127.0.0.1:0
max_keys = 50
max_message = 64KiB
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 2
session.timeout.ms = 6000
[table user]
entity = user_id
topic = user_events
ttl = 1h
feature.clicks = int64
feature.ctr = double
feature.country = string
feature.premium = bool
[table item]
topic = item_events
feature.price = double
"""


def pbval(fv):
    k = fv.value.WhichOneof("kind")
    return getattr(fv.value, k) if k else None


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "serve")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, event_pb2, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd))
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        H.log("featd at", addrs, "kafka", bs)
        opts = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        ch = grpc.insecure_channel(addrs["grpc"], options=opts)
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)

        # ---- produce a log through Kafka ----
        rnd = random.Random(7)
        now = int(time.time() * 1000)
        events = []   # (key, ts, {feature: value})
        for i in range(1500):
            key = f"u{rnd.randrange(30)}"
            # u25..u29 only have old events: EXPIRED online
            old = int(key[1:]) >= 25
            lo, hi = (now - 3 * 3600_000, now - 2 * 3600_000) if old else (now - 3 * 3600_000, now - 60_000)
            ts = rnd.randrange(lo, hi)
            feats = rnd.sample(list(SCHEMA), rnd.randint(1, 4))
            vals = {}
            for f in feats:
                t = SCHEMA[f]
                vals[f] = (rnd.randint(-10**9, 10**9) if t == "int64" else rnd.uniform(-100, 100) if t == "double"
                           else rnd.choice(["DE", "FR", "Ünïcode", "日本"]) if t == "string" else rnd.random() < 0.5)
            events.append((key, ts, vals))
        prod = H.producer(bs)
        deliv = [None] * len(events)
        for i, (key, ts, vals) in enumerate(events):
            if i % 2:
                ev = event_pb2.FeatureEvent(key=key, ts=ts)
                for f, v in vals.items():
                    t = SCHEMA[f]
                    setattr(ev.features[f], {"int64": "int64_value", "double": "double_value", "string": "string_value",
                                             "bool": "bool_value"}[t], v)
                payload = ev.SerializeToString()
            else:
                payload = json.dumps({"key": key, "ts": ts, "features": vals}).encode()

            def cb(err, m, i=i):
                assert err is None, err
                deliv[i] = (m.partition(), m.offset())
            prod.produce("user_events", value=payload, key=key, on_delivery=cb)
            prod.poll(0)
        prod.produce("item_events", value=json.dumps({"key": "i1", "ts": now - 5000, "features": {"price": 9.5}}).encode())
        assert prod.flush(30) == 0

        counts = {}
        for p, o in deliv:
            counts[p] = max(counts.get(p, 0), o + 1)

        def caught_up():
            try:
                st = admin.Status(admin_pb2.StatusRequest(), timeout=5)
            except grpc.RpcError:
                return False
            nexts = {(p.topic, p.partition): p.next_offset for p in st.partitions}
            return st.ready and all(nexts.get(("user_events", p)) == n for p, n in counts.items()) and \
                sum(t.events_applied for t in st.tables if t.name == "item") == 1
        H.wait_for(caught_up, 60, "featd to apply the log", interval=0.5)

        # ---- independent expectation ----
        rows = [(key, ts, p, o, vals) for (key, ts, vals), (p, o) in zip(events, deliv)]
        keys = sorted({r[0] for r in rows}, key=lambda k: int(k[1:]))
        t_read = int(time.time() * 1000)

        def latest(key, feature, as_of=None):
            best = None
            for k, ts, p, o, vals in rows:
                if k != key or feature not in vals or (as_of is not None and ts > as_of):
                    continue
                if best is None or (ts, o, p) > (best[0], best[1], best[2]):
                    best = (ts, o, p, vals[feature])
            return best

        def check_value(fv, want, ref_time, where):
            if want is None:
                assert fv.status == fs.NOT_FOUND, f"{where}: status {fv.status}, want NOT_FOUND"
                return
            ts, _, _, v = want
            st = fs.EXPIRED if ref_time - ts > TTL_MS else fs.PRESENT
            assert fv.status == st, f"{where}: status {fs.FeatureStatus.Name(fv.status)}, want {fs.FeatureStatus.Name(st)}"
            assert fv.event_time_ms == ts, f"{where}: event time {fv.event_time_ms}, want {ts}"
            assert pbval(fv) == v, f"{where}: value {pbval(fv)!r}, want {v!r}"

        resp = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=keys + ["nobody"]), timeout=10)
        assert list(resp.features) == list(SCHEMA), resp.features
        assert [r.entity_key for r in resp.rows] == keys + ["nobody"]
        nexp = 0
        for r in resp.rows:
            for f, fv in zip(resp.features, r.values):
                want = latest(r.entity_key, f) if r.entity_key != "nobody" else None
                check_value(fv, want, t_read, f"online {r.entity_key}.{f}")
                nexp += fv.status == fs.EXPIRED
        assert nexp > 0, "the log was built to leave some values EXPIRED"
        # a subset of features, in the caller's order, served again (cache hits)
        for _ in range(2):
            resp = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=keys[:5],
                                                                      features=["premium", "clicks"]), timeout=10)
            assert list(resp.features) == ["premium", "clicks"]
            for r in resp.rows:
                for f, fv in zip(resp.features, r.values):
                    check_value(fv, latest(r.entity_key, f), t_read, f"subset {r.entity_key}.{f}")
        H.log(f"GetOnlineFeatures: {len(keys)} entities x {len(SCHEMA)} features match ({nexp} EXPIRED)")

        # ---- GetHistoricalFeatures vs an independent point-in-time join ----
        pairs = [(rnd.choice(keys + ["nobody"]), rnd.randrange(now - 4 * 3600_000, now)) for _ in range(300)]
        req = fs.GetHistoricalFeaturesRequest(table="user", rows=[fs.EntityTime(entity_key=k, ts_ms=t) for k, t in pairs])
        got = list(feat.GetHistoricalFeatures(req, timeout=30))
        assert len(got) == len(pairs)
        assert list(got[0].features) == list(SCHEMA)
        for (k, t), row in zip(pairs, got):
            assert row.entity_key == k and row.ts_ms == t
            for f, fv in zip(SCHEMA, row.values):
                check_value(fv, latest(k, f, as_of=t) if k != "nobody" else None, t, f"history {k}@{t}.{f}")
        H.log(f"GetHistoricalFeatures: {len(pairs)} rows match the independent point-in-time join")

        # ---- the error contract ----
        def expect(code, fn, *words):
            try:
                fn()
            except grpc.RpcError as e:
                assert e.code() == code, f"got {e.code()} ({e.details()}), want {code}"
                for w in words:
                    assert w in (e.details() or ""), f"message {e.details()!r} should name {w!r}"
                return e.details()
            raise AssertionError(f"call succeeded; want {code}")

        G = lambda **kw: lambda: feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(**kw), timeout=10)
        IA = grpc.StatusCode.INVALID_ARGUMENT
        expect(IA, G(table="nosuch", entity_keys=["u1"]), "nosuch")
        expect(IA, G(table="", entity_keys=["u1"]), "table")
        expect(IA, G(table="user", entity_keys=["u1"], features=["bogus"]), "bogus")
        expect(IA, G(table="user", entity_keys=["u1"], features=["ctr", "ctr"]), "ctr")
        expect(IA, G(table="user", entity_keys=[]), "empty")
        expect(IA, G(table="user", entity_keys=["u1", ""]), "empty")
        expect(IA, G(table="user", entity_keys=["u1", "u2", "u1"]), "u1")
        expect(IA, G(table="user", entity_keys=[f"k{i}" for i in range(51)]), "max_keys")
        expect(IA, G(table="user", entity_keys=["a\x00b"]), "NUL")
        expect(grpc.StatusCode.RESOURCE_EXHAUSTED, G(table="user", entity_keys=["x" * 1500 + str(i) for i in range(49)]))
        raw = ch.unary_unary("/featd.v1.FeatureService/GetOnlineFeatures")
        expect(IA, lambda: raw(b"\xff\xff\xff\xff", timeout=5))
        expect(IA, lambda: feat.Predict(fs.PredictRequest(model="m"), timeout=5), "empty")
        expect(grpc.StatusCode.NOT_FOUND, lambda: feat.Predict(fs.PredictRequest(model="m", entity_keys=["u1"]), timeout=5),
               "unknown model")
        expect(grpc.StatusCode.UNIMPLEMENTED, lambda: ch.unary_unary("/featd.v1.Nope/Nothing")(b"", timeout=5), "Nothing")
        H_ = lambda **kw: lambda: list(feat.GetHistoricalFeatures(fs.GetHistoricalFeaturesRequest(**kw), timeout=10))
        expect(IA, H_(table="user", rows=[]), "rows")
        expect(IA, H_(table="nosuch", rows=[fs.EntityTime(entity_key="u1", ts_ms=1)]), "nosuch")
        expect(IA, H_(table="user", rows=[fs.EntityTime(entity_key="", ts_ms=1)]), "empty")
        big = fs.GetHistoricalFeaturesRequest(table="user", rows=[fs.EntityTime(entity_key=f"u{i % 30}", ts_ms=now - i)
                                                                  for i in range(3000)])
        expect(grpc.StatusCode.DEADLINE_EXCEEDED, lambda: list(feat.GetHistoricalFeatures(big, timeout=0.02)))
        H.log("error contract: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNIMPLEMENTED, DEADLINE_EXCEEDED as specified")

        # ---- Status and ListTables ----
        st = admin.Status(admin_pb2.StatusRequest(), timeout=5)
        assert st.version and st.ready and st.uptime_s >= 0
        by = {t.name: t for t in st.tables}
        assert by["user"].events_applied == len(events) and by["item"].events_applied == 1
        assert by["item"].newest_event_time_ms == now - 5000 and by["item"].freshness_ms >= 5000
        assert all(p.lag == 0 for p in st.partitions), st.partitions
        lt = admin.ListTables(admin_pb2.ListTablesRequest(), timeout=5)
        u = [t for t in lt.tables if t.name == "user"][0]
        assert u.entity == "user_id" and u.topic == "user_events" and u.ttl_ms == TTL_MS
        assert [(f.name, f.type) for f in u.features] == list(SCHEMA.items())

        # ---- admin HTTP ----
        base = "http://" + addrs["admin"]
        metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        pt = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
        assert pt.returncode == 0, "promtool: " + pt.stdout + pt.stderr
        for fam in ["featd_rpc_requests_total{method=\"GetOnlineFeatures\",code=\"OK\"}",
                    "featd_rpc_requests_total{method=\"GetOnlineFeatures\",code=\"INVALID_ARGUMENT\"}",
                    "featd_rpc_duration_seconds_bucket{method=\"GetHistoricalFeatures\"",
                    "featd_ingest_events_total{table=\"user\"}", "featd_dead_letters_total{reason=\"wrong_type\"}",
                    "featd_kafka_lag{topic=\"user_events\"", "featd_freshness_seconds{table=\"item\"}",
                    "featd_cache_hit_ratio", "featd_store_bytes", "featd_ingest_batch_write_seconds_bucket"]:
            assert fam in metrics, f"/metrics lacks {fam}"
        hits = [l for l in metrics.splitlines() if l.startswith("featd_cache_requests_total{result=\"hit\"}")]
        assert hits and float(hits[0].split()[-1]) > 0, "repeated lookups should hit the cache"
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
        assert urllib.request.urlopen(base + "/readyz", timeout=5).status == 200
        js = json.loads(urllib.request.urlopen(base + "/v1/status", timeout=5).read())
        assert js["ready"] is True and js["ingest"]["events"] == len(events) + 1
        for path, method, code in [("/nope", "GET", 404), ("/metrics", "POST", 405)]:
            try:
                urllib.request.urlopen(urllib.request.Request(base + path, method=method, data=b"" if method == "POST" else None), timeout=5)
                raise AssertionError(f"{method} {path} succeeded")
            except urllib.error.HTTPError as e:
                assert e.code == code, (path, e.code)
        H.log("admin HTTP: /metrics passes promtool and has every family; /healthz /readyz /v1/status ok")

        # ---- featctl ----
        r = H.featctl(args, "--config", cfg, "--json", "get", "user", *keys[:3], timeout=20)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        for row in doc["rows"]:
            for f, e in row["features"].items():
                want = latest(row["entity"], f)
                if want is None:
                    assert e["status"] == "NOT_FOUND"
                else:
                    assert e["value"] == want[3] and e["event_time_ms"] == want[0], (row["entity"], f, e, want)
        r = H.featctl(args, "--config", cfg, "get", "user", keys[0], timeout=20)
        assert r.returncode == 0 and keys[0] in r.stdout and "clicks" in r.stdout
        # wide characters: columns still line up on the terminal (CJK and emoji
        # take two columns, a combining mark none), whatever featctl's locale
        wide = {"w-東京": "東京都", "w-emoji": "😀🎉", "w-accent": "e\u0301te\u0301", "w-ascii": "plain",
                "w-カナ": "ｶﾅ ﾃｽﾄ".replace(" ", "")}
        for k, v in wide.items():
            prod.produce("user_events", key=k, value=json.dumps({"key": k, "ts": now, "features": {
                "clicks": 1, "ctr": 0.5, "country": v, "premium": True}}).encode())
        assert prod.flush(30) == 0

        def wide_table():
            r = H.featctl(args, "--config", cfg, "get", "user", *wide, timeout=20, text=False,
                          env=dict(os.environ, LC_ALL="C"))
            out = r.stdout.decode()
            return out if r.returncode == 0 and all(v in out for v in wide.values()) else None
        out = H.wait_for(wide_table, 30, "the wide values online")
        lines = out.splitlines()
        want = H.column_starts(lines[0])
        assert len(want) == 5, lines[0]
        for line in lines[1:]:
            assert H.column_starts(line) == want, f"columns do not line up:\n{out}"
        H.log("featctl get: CJK, emoji and combining values line up:\n" + out.rstrip())
        r = H.featctl(args, "--config", cfg, "status", timeout=20)
        dur = r"-?\d+ (y|d|h|m|s|ms)( \d+ (d|h|m|s|ms))?"
        assert r.returncode == 0 and re.search(rf"^featd \S+, up {dur}, ready$", r.stdout, re.M), r.stdout
        fresh = [l.split("  ")[-1].strip() for l in r.stdout.splitlines()[3:]]
        assert fresh and all(re.fullmatch(dur, f) for f in fresh), f"freshness is not a duration:\n{r.stdout}"
        for argv in (["get", "nosuch", "k"], ["get", "user", "a", "a"]):
            r = H.featctl(args, "--config", cfg, *argv, timeout=20)
            assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "INVALID_ARGUMENT" in r.stderr, r
        r = H.featctl(args, "--addr", "127.0.0.1:1", "status", timeout=20)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "cannot reach" in r.stderr, r
        r = H.featctl(args, "--config", cfg, "--json", "history", "user", f"{keys[0]}@{now}",
                           timeout=20)
        assert r.returncode == 0 and json.loads(r.stdout)["rows"][0]["entity"] == keys[0], r
        for argv in (["status"], ["tables"], ["--json", "status"], ["--json", "tables"]):
            r = H.featctl(args, "--config", cfg, *argv, timeout=20)
            assert r.returncode == 0 and r.stdout, (argv, r)
            if "--json" in argv:
                json.loads(r.stdout)
        H.log("featctl: get/history/status/tables agree with gRPC; bad requests and an unreachable daemon exit 1 with one line")

        # ---- shutdown: a running stream finishes, new calls are refused ----
        slow = fs.GetHistoricalFeaturesRequest(table="user", rows=[fs.EntityTime(entity_key=f"u{i % 30}", ts_ms=now - i)
                                                                   for i in range(3000)])
        result = {}

        def stream():
            # a slow reader: flow control keeps the server's stream in flight for ~3 s
            try:
                n = 0
                for _ in feat.GetHistoricalFeatures(slow, timeout=60):
                    n += 1
                    time.sleep(0.001)
                result["n"] = n
            except grpc.RpcError as e:
                result["err"] = e.code()
        workers = H.Workers()
        workers.start(stream)
        time.sleep(0.3)
        featd.p.send_signal(signal.SIGTERM)
        workers.join(60)
        assert result.get("n") == 3000, f"the stream in flight was cut: {result}"
        try:
            admin.Status(admin_pb2.StatusRequest(), timeout=3)
            refused = False
        except grpc.RpcError as e:
            refused = e.code() == grpc.StatusCode.UNAVAILABLE
        assert refused, "a call after shutdown must be UNAVAILABLE"
        assert featd.p.wait(30) == 0, featd.tail()
        H.log("shutdown: the stream in flight finished (3000 rows), new calls got UNAVAILABLE, exit 0")
        ok = True
    finally:
        if featd.alive():
            featd.kill9()
        if not ok:
            print(featd.tail(60))
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
