#!/usr/bin/python3
"""FeatureService.Push (issue 14), end to end with grpcio and an independent Kafka reader.

  - 300 valid events pushed in 3 calls (some with ts 0 = the server's now) are all accepted, each
    reply comes after the broker acknowledged them: an independent consumer then finds exactly
    those events on the table's topic (the log is the source of truth), keyed by entity, and
    featd applies each exactly once (events_applied grows by 300, the online values are the
    pushed ones);
  - invalid events in a batch are rejected one by one with the reason a dead letter would carry
    (unknown_table, unknown_feature, wrong_type, empty_key, missing... ), their index, and are not
    produced, while the valid events of the same call are;
  - requests that are wrong as a whole get INVALID_ARGUMENT (no events, more than serve.max_keys);
  - a read token may not push (test_security checks every admin method)."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "push")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, event_pb2, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
max_keys = 200
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 3
session.timeout.ms = 6000
[table user]
topic = user_events
entity = user_id
feature.clicks = int64
feature.score = double
feature.country = string
[table item]
topic = item_events
feature.price = double
""")
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        ch = grpc.insecure_channel(addrs["grpc"])
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_ready(admin)

        def V(**kw):
            return fs.Value(**kw) if hasattr(fs, "Value") else event_pb2.Value(**kw)

        def ev(key, ts=0, table="", **feats):
            e = event_pb2.FeatureEvent(table=table, key=key, ts=ts)
            for k, v in feats.items():
                e.features[k].CopyFrom(v)
            return e

        now = int(time.time() * 1000)
        want = {}
        for c in range(3):
            evs = []
            for i in range(100):
                k = f"u{c * 100 + i}"
                vals = dict(clicks=V(int64_value=c * 100 + i), score=V(double_value=(c * 100 + i) / 7),
                            country=V(string_value=["de", "fr", "日本"][i % 3]))
                evs.append(ev(k, ts=0 if i % 2 else now - 1000 + i, **vals))
                want[k] = (c * 100 + i, (c * 100 + i) / 7, ["de", "fr", "日本"][i % 3])
            t0 = time.time()
            r = feat.Push(fs.PushRequest(table="user", events=evs), timeout=20)
            assert r.accepted == 100 and not r.rejected, r
            H.log(f"push {c}: 100 events accepted (acknowledged) in {1000 * (time.time() - t0):.1f} ms")
        recs = H.read_topic(bs, "user_events", partitions=3)
        got = {}
        for m in recs:
            e = event_pb2.FeatureEvent.FromString(m.value())
            assert m.key().decode() == e.key and e.table == "user" and e.ts > 0, (m.key(), e)
            got[e.key] = got.get(e.key, 0) + 1
        assert got == {k: 1 for k in want}, f"the topic holds {len(recs)} records for {len(got)} keys"
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= 300, 60, "applied")
        time.sleep(1)
        assert admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied == 300, "applied more than once"
        ks = list(want)
        rows = [row for b in (ks[:150], ks[150:]) for row in feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(
            table="user", entity_keys=b, features=["clicks", "score", "country"]), timeout=10).rows]
        for row in rows:
            c, s, co = want[row.entity_key]
            assert all(v.status == fs.PRESENT for v in row.values), row
            assert (row.values[0].value.int64_value, row.values[1].value.double_value,
                    row.values[2].value.string_value) == (c, s, co), row
        H.log("300 pushed events: each once on the topic, applied once, online values as pushed")

        # ---- invalid events: rejected one by one, the rest produced ----
        mixed = [ev("ok1", clicks=V(int64_value=1)),                                 # 0 fine
                 ev("x", table="nope", clicks=V(int64_value=1)),                     # 1 unknown_table
                 ev("x", bogus=V(int64_value=1)),                                    # 2 unknown_feature
                 ev("x", clicks=V(string_value="many")),                             # 3 wrong_type
                 ev("", clicks=V(int64_value=1)),                                    # 4 missing key
                 ev("x", score=V(double_value=float("nan"))),                        # 5 non_finite
                 ev("x"),                                                            # 6 no_features
                 ev("k" * 1000, clicks=V(int64_value=1)),                            # 7 oversize key
                 ev("ok2", table="item", price=V(double_value=9.5)),                 # 8 fine, another table
                 ev("x", ts=1, clicks=V(int64_value=1))]                             # 9 bad_timestamp (1970)
        r = feat.Push(fs.PushRequest(table="user", events=mixed), timeout=20)
        reasons = {x.index: x.reason for x in r.rejected}
        H.log(f"mixed batch: accepted {r.accepted}, rejected {sorted(reasons.items())}")
        assert r.accepted == 2, r
        assert reasons == {1: "unknown_table", 2: "unknown_feature", 3: "wrong_type", 4: "missing_key",
                           5: "non_finite", 6: "no_features", 7: "oversize", 9: "bad_timestamp"}, reasons
        assert all(x.detail for x in r.rejected)
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= 302, 60, "applied")
        keys = {event_pb2.FeatureEvent.FromString(m.value()).key for m in H.read_topic(bs, "user_events", partitions=3)}
        assert "ok1" in keys and "x" not in keys and len(keys) == 301, len(keys)
        assert [event_pb2.FeatureEvent.FromString(m.value()).key for m in H.read_topic(bs, "item_events", partitions=3)] == ["ok2"]

        # ---- wrong as a whole ----
        for req, needle in ((fs.PushRequest(), "events is empty"),
                            (fs.PushRequest(table="user", events=[ev(f"z{i}", clicks=V(int64_value=i)) for i in range(201)]),
                             "serve.max_keys")):
            try:
                feat.Push(req, timeout=10)
                raise AssertionError("accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in e.details(), (e.code(), e.details())
        ok = featd.stop() == 0
        assert ok, "featd did not exit cleanly"
    finally:
        if featd.alive():
            featd.stop()
        if not ok:
            print(featd.tail(60))
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
