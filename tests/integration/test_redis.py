#!/usr/bin/python3
"""The Redis protocol (redis.listen, issue 14) against Redis itself, gRPC, redis-cli and redis-py.

One featd (embedded broker, [auth] tokens, redis.max_clients = 8) with table `user` (int64,
string, double, bool features; some entities lack some features) and table `sess` (ttl 1m: an
old event reads EXPIRED). The expected values come from GetOnlineFeatures over gRPC, rendered
as redis.h documents (doubles as Python's repr without ".0", bools 1/0, nil for NOT_FOUND and
EXPIRED). A redis-server (Debian's Redis 7, requirepass = the read token) is loaded with the
same hashes and strings, and both servers get the same command bytes:

  - HMGET, HGET, HGETALL, GET, MGET over RESP2 and RESP3 (HELLO 3): the same reply bytes;
  - PING, ECHO, QUIT, an unknown command, wrong arity, NOAUTH before AUTH, WRONGPASS, HELLO
    without AUTH: the same reply bytes (Redis's texts);
  - featd-only: FEATURE@ts is the event time; the admin token authenticates too; writes are
    READONLY; unknown tables and features are errors; MGET over serve.max_keys is refused;
  - inline commands (telnet's), 5,000 pipelined commands in one write, answered in order;
  - limits: the 9th client gets "-ERR max number of clients reached" and is closed; a bulk over
    redis.max_request is a protocol error that closes the connection;
  - redis-cli (RESP2 and -3) and redis-py (pipelines, typed errors) read the same values;
  - /metrics counts commands, errors and refused clients.
"""
import json
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

READ, ADMIN = "rd-5e7a9c1b3d5f7a9c1e3b", "adm-8c6a4e2d0b9f7e5d3c1a"
FEATS = ["clicks", "country", "amount", "premium"]


def fmt(fv):
    """A gRPC FeatureValue as redis.h says featd writes it: bytes, or None for nil."""
    if fv.status != 1:  # PRESENT (featd.v1.FeatureStatus)
        return None
    v = fv.value
    kind = v.WhichOneof("kind")
    if kind == "double_value":
        s = repr(v.double_value)
        return (s[:-2] if s.endswith(".0") else s).encode()
    if kind == "int64_value":
        return str(v.int64_value).encode()
    if kind == "bool_value":
        return b"1" if v.bool_value else b"0"
    return v.string_value.encode()


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "redis")
    H.gen_protos(args, wd.path)
    import grpc
    import redis as redis_py
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    open(wd.file("read.tokens"), "w").write(READ + "\n")
    open(wd.file("admin.tokens"), "w").write(ADMIN + "\n")
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
max_keys = 100
[admin]
listen = 127.0.0.1:0
[redis]
listen = 127.0.0.1:0
max_clients = 8
max_request = 65536
[auth]
read_tokens_file = {wd.file("read.tokens")}
admin_tokens_file = {wd.file("admin.tokens")}
[kafka]
embedded = true
partitions = 2
session.timeout.ms = 6000
[table user]
topic = user_events
entity = user_id
feature.clicks = int64
feature.country = string
feature.amount = double
feature.premium = bool
[table sess]
topic = sess_events
ttl = 1m
feature.pages = int64
""")
    rport = H.free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--requirepass", READ, "--dir", wd.path],
                             stdout=open(wd.file("redis.log"), "w"), stderr=subprocess.STDOUT)
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        assert "redis" in addrs, addrs
        faddr, raddr = addrs["redis"], f"127.0.0.1:{rport}"
        meta = [("authorization", f"Bearer {ADMIN}")]
        ch = grpc.insecure_channel(addrs["grpc"])
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), metadata=meta, timeout=5).ready, 60, "ready")

        # ---- data: 120 users (odd ones without country, every 7th without amount), two sessions ----
        prod = H.producer(open(wd.file("data/kafka.bootstrap")).read().strip())
        now = int(time.time() * 1000)
        amounts = [0.1, 1 / 3, -2.5, 5.0, 1e-7, 1.5e16, 123456.789, -0.0, 2.0 ** 60, math.pi]
        for i in range(120):
            f = {"clicks": (2 ** 53 + 1) if i == 3 else i * 7 - 50, "premium": i % 3 == 0}
            if i % 2 == 0:
                f["country"] = ["de", "fr", "Zürich €", "東京"][i % 4]
            if i % 7:
                f["amount"] = amounts[i % 10] * (1 + i)
            prod.produce("user_events", key=f"u{i}", value=json.dumps(
                {"user_id": f"u{i}", "ts": now - 60_000 + i, "features": f}).encode())
        prod.produce("sess_events", key="fresh", value=json.dumps({"ts": now, "features": {"pages": 3}}).encode())
        prod.produce("sess_events", key="old", value=json.dumps({"ts": now - 300_000, "features": {"pages": 9}}).encode())
        prod.flush(30)
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), metadata=meta, timeout=5).events_applied >= 122, 60,
                   "events")

        # ---- expectations from gRPC ----
        users = [f"u{i}" for i in range(120)] + ["nobody"]
        want, ts = {}, {}
        for at in range(0, len(users), 50):
            res = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=users[at:at + 50],
                                                                     features=FEATS), metadata=meta, timeout=10)
            for row in res.rows:
                want[row.entity_key] = {f: fmt(v) for f, v in zip(res.features, row.values)}
                ts[row.entity_key] = {f: str(v.event_time_ms).encode() if v.status == 1 else None
                                      for f, v in zip(res.features, row.values)}
        sres = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="sess", entity_keys=["fresh", "old"]),
                                      metadata=meta, timeout=10)
        assert [r.values[0].status for r in sres.rows] == [fs.PRESENT, fs.EXPIRED], sres
        want["sess:fresh"], want["sess:old"] = b"3", None
        assert want["u3"]["clicks"] == b"9007199254740993" and want["u1"]["country"] is None, want["u1"]
        assert want["u0"]["country"] == b"de" and want["u2"]["country"] == "Zürich €".encode()

        # ---- the same data into redis-server ----
        rc = redis_py.Redis(port=rport, password=READ)
        H.wait_for(lambda: rc.ping(), 30, "redis-server")
        for u in users:
            m = {f: v for f, v in want[u].items() if v is not None}
            if m:
                rc.hset(f"user:{u}", mapping=m)
            for f, v in m.items():
                rc.set(f"user:{u}:{f}", v)
        rc.set("sess:fresh:pages", b"3")

        f, r = H.RespConn(faddr), H.RespConn(raddr)

        def same(*cmd, conns=None):
            a, b = [c.cmd(*cmd) for c in (conns or (f, r))]
            assert a == b, f"{cmd}: featd {a[:300]!r}, redis {b[:300]!r}"
            return a

        # ---- before AUTH ----
        same("HMGET", "user:u0", "clicks")          # NOAUTH
        same("HELLO", "3")                           # NOAUTH HELLO must be called with ...
        same("AUTH", "not-a-token-at-all-really")  # WRONGPASS
        same("AUTH", "default", "not-a-token-at-all-really")
        same("QUIT", conns=(H.RespConn(faddr), H.RespConn(raddr)))
        assert same("AUTH", READ) == b"+OK\r\n"

        # ---- values: RESP2, then RESP3 ----
        for proto in (2, 3):
            if proto == 3:
                hf, hr = f.cmd("HELLO", "3"), r.cmd("HELLO", "3")
                assert hf.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nfeatd\r\n") and b"$5\r\nproto\r\n:3\r\n" in hf, hf
                assert hr.startswith(b"%7\r\n"), hr
            for u in users:
                same("HMGET", f"user:{u}", *FEATS)
                same("HMGET", f"user:{u}", "amount", "clicks", "amount")
                same("HGETALL", f"user:{u}")
                same("HGET", f"user:{u}", "country")
                same("GET", f"user:{u}:amount")
            same("MGET", *[f"user:{u}:{x}" for u in users[::7] for x in ("country", "clicks")], "sess:fresh:pages")
            same("GET", "sess:fresh:pages")
            assert f.cmd("GET", "sess:old:pages") == (b"$-1\r\n" if proto == 2 else b"_\r\n")  # EXPIRED: nil
            assert f.cmd("HGETALL", "sess:old") == (b"*0\r\n" if proto == 2 else b"%0\r\n")
            same("PING")
            same("PING", "héllo")
            same("ECHO", "x\r\ny")
            same("FOO", "a", "b")
            same("HGET", "user:u1")
            same("GET")
            for bad in (("SELECT", "abc"), ("CLIENT", "FOO"), ("CLIENT", "ID", "x"),
                        ("COMMAND", "FOO"), ("HELLO", "4"), ("HELLO", "abc"), ("HELLO", "-1"),
                        ("HELLO", str(proto), "BOGUS"), ("AUTH", "a", "b", "c")):
                same(*bad)
            same("CLIENT", "SETNAME", "")
            same("CLIENT", "GETNAME")
        # the values themselves, decoded, against gRPC (not only against redis-server)
        for u in users[:40]:
            got = f.cmd("HMGET", f"user:{u}", *FEATS)
            exp = b"*4\r\n" + b"".join(b"_\r\n" if v is None else b"$%d\r\n%s\r\n" % (len(v), v)
                                       for v in (want[u][x] for x in FEATS))
            assert got == exp, (u, got, exp)
        f.cmd("HELLO", "2"), r.cmd("HELLO", "2")

        # ---- featd only ----
        for u in ("u0", "u5", "nobody"):
            got = f.cmd("HMGET", f"user:{u}", "clicks@ts", "country@ts")
            exp = b"*2\r\n" + b"".join(b"$-1\r\n" if v is None else b"$%d\r\n%s\r\n" % (len(v), v)
                                       for v in (ts[u]["clicks"], ts[u]["country"]))
            assert got == exp, (u, got, exp)
        assert f.cmd("GET", "user:u0:clicks@ts") == b"$%d\r\n%s\r\n" % (len(ts["u0"]["clicks"]), ts["u0"]["clicks"])
        assert f.cmd("SET", "user:u0:clicks", "1").startswith(b"-READONLY "), "write"
        assert f.cmd("HSET", "user:u0", "clicks", "1").startswith(b"-READONLY ")
        assert f.cmd("HGETALL", "nope:u0") == b"-ERR unknown table 'nope'\r\n"
        assert f.cmd("HMGET", "user:u0", "clicks", "nope") == b"-ERR unknown feature 'nope' of table user\r\n"
        assert f.cmd("HGETALL", "user").startswith(b"-ERR key 'user' is not TABLE:ENTITY")
        assert f.cmd("GET", "user:u0").startswith(b"-ERR key 'user:u0' is not TABLE:ENTITY:FEATURE")
        assert f.cmd("HGETALL", "user:").startswith(b"-ERR key 'user:': the entity key is empty")
        assert f.cmd("HGETALL", b"user:\xff\xfe").startswith(b"-ERR key ")
        assert f.cmd("MGET", *[f"user:u{i}:clicks" for i in range(101)]).startswith(b"-ERR 101 keys; serve.max_keys")
        assert f.cmd("SELECT", "0") == b"+OK\r\n" and f.cmd("SELECT", "1").startswith(b"-ERR DB index")
        assert f.cmd("CLIENT", "SETNAME", "svc-a") == b"+OK\r\n" and f.cmd("CLIENT", "GETNAME") == b"$5\r\nsvc-a\r\n"
        assert f.cmd("COMMAND", "COUNT") == b":13\r\n"
        assert f.cmd("COMMAND", "INFO", "hmget", "nope").startswith(b"*2\r\n*10\r\n$5\r\nhmget\r\n:-3\r\n")
        a = H.RespConn(faddr)
        assert a.cmd("AUTH", ADMIN) == b"+OK\r\n" and a.cmd("HGET", "user:u0", "country") == b"$2\r\nde\r\n"
        a.close()
        h = H.RespConn(faddr)
        hello = h.cmd("HELLO", "3", "AUTH", "default", READ, "SETNAME", "x")
        assert hello.startswith(b"%7\r\n") and h.cmd("CLIENT", "GETNAME") == b"$1\r\nx\r\n", hello
        h.close()

        # ---- inline commands, pipelining ----
        f.send(b'HMGET user:u0 clicks "country" \'amount\'\r\nPING\r\n\r\nhget user:u2 country\n')
        got = f.replies(3)
        assert got[0] == same("HMGET", "user:u0", "clicks", "country", "amount") and got[1] == b"+PONG\r\n", got
        assert got[2] == b"$%d\r\n%s\r\n" % (len(want["u2"]["country"]), want["u2"]["country"]), got
        batch = b"".join(H.resp_encode("HGET", f"user:u{i % 120}", "clicks") for i in range(5000))
        f.send(batch)
        for i, rep in enumerate(f.replies(5000)):
            v = want[f"u{i % 120}"]["clicks"]
            assert rep == b"$%d\r\n%s\r\n" % (len(v), v), (i, rep)

        # ---- limits ----
        admin_addr = addrs["admin"]
        H.wait_for(lambda: H.metric(admin_addr, "featd_redis_clients", token=ADMIN) == 1, 10, "closed clients gone")
        conns = [H.RespConn(faddr) for _ in range(6)]  # with f and nothing else: 7 of 8
        for c in conns:
            assert c.cmd("AUTH", READ) == b"+OK\r\n"
        eighth = H.RespConn(faddr)
        assert eighth.cmd("PING").startswith(b"-NOAUTH")
        ninth = H.RespConn(faddr)
        ninth.send(H.resp_encode("PING"))
        assert ninth.closed() and ninth.buf == b"-ERR max number of clients reached\r\n", ninth.buf
        eighth.close()
        H.wait_for(lambda: H.RespConn(faddr).cmd("AUTH", READ) == b"+OK\r\n", 10, "a slot after a client left",
                   interval=0.2)
        for c in conns:
            c.close()
        big = H.RespConn(faddr)
        big.send(b"*2\r\n$4\r\nECHO\r\n$100000\r\n" + b"x" * 100000 + b"\r\n")
        assert big.closed() and big.buf == b"-ERR Protocol error: invalid bulk length\r\n", big.buf[:200]
        bad = H.RespConn(faddr)
        bad.send(b"*1\r\n!4\r\nPING\r\n")
        assert bad.closed() and bad.buf == b"-ERR Protocol error: expected '$', got '!'\r\n", bad.buf

        # ---- redis-cli and redis-py ----
        host, port = faddr.rsplit(":", 1)
        cli = ["redis-cli", "-h", host, "-p", port, "--no-auth-warning", "-a", READ]
        out = subprocess.run(cli + ["HMGET", "user:u2", *FEATS], capture_output=True, check=True, timeout=30).stdout
        assert out.split(b"\n")[:4] == [want["u2"][x] or b"" for x in FEATS], out
        out = subprocess.run(cli + ["-3", "HGETALL", "user:u4"], capture_output=True, check=True, timeout=30).stdout
        assert out.split(b"\n")[:-1] == [b"%s %s" % (x.encode(), want["u4"][x]) for x in FEATS if want["u4"][x]], out
        out = subprocess.run(cli + ["SET", "a", "b"], capture_output=True, timeout=30).stdout
        assert out.startswith(b"READONLY"), out
        rp = redis_py.Redis(host=host, port=int(port), password=READ)
        assert rp.hgetall("user:u6") == {x.encode(): v for x, v in want["u6"].items() if v is not None}
        assert rp.hmget("user:u9", FEATS) == [want["u9"][x] for x in FEATS]
        assert rp.mget(["user:u0:country", "user:u1:country"]) == [b"de", None]
        p = rp.pipeline(transaction=False)
        for i in range(1000):
            p.hget(f"user:u{i % 120}", "amount")
        assert p.execute() == [want[f"u{i % 120}"]["amount"] for i in range(1000)]
        for call, exc, text in ((lambda: rp.set("a", "b"), redis_py.exceptions.ReadOnlyError, "featd serves reads only"),
                                (lambda: rp.hgetall("nope:x"), redis_py.exceptions.ResponseError, "unknown table 'nope'")):
            try:
                call()
                raise AssertionError("no error")
            except exc as e:
                assert text in str(e), e
        try:
            redis_py.Redis(host=host, port=int(port), password="wrong-token-wrong-token").ping()
            raise AssertionError("a wrong token was accepted")
        except (redis_py.exceptions.AuthenticationError, redis_py.exceptions.ResponseError) as e:
            assert "WRONGPASS" in str(e), e

        # ---- metrics ----
        assert H.metric(admin_addr, "featd_redis_rejected_clients_total", token=ADMIN) >= 1
        assert H.metric(admin_addr, "featd_redis_commands_total", token=ADMIN) > 7000
        assert H.metric(admin_addr, "featd_redis_errors_total", token=ADMIN) >= 20
        f.close()
        r.close()
        assert featd.stop() == 0
        ok = True
        H.log("redis protocol: same bytes as Redis 7 for every read and error compared; limits, clients OK")
    finally:
        if featd.alive():
            featd.kill9()
        redis.terminate()
        redis.wait(10)
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
