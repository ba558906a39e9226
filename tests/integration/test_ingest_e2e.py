#!/usr/bin/python3
"""End to end: an outside producer (confluent-kafka) writes a generated event
log -- JSON and protobuf, out-of-order and equal-time events, labels, and
malformed messages of every class -- to featd's embedded broker.  The online
and offline tables, labels and dead letters featd stores must equal what this
script computes independently from the same log and the broker's delivery
reports (partition, offset)."""
import datetime
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H

N_EVENTS = 4000
N_LABELS = 300


def config(wd):
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 1s
[kafka]
embedded = true
partitions = 3
session.timeout.ms = 6000
[ingest]
max_string_bytes = 64
[table user]
entity = user_id
topic = user_events
feature.clicks = int64
feature.ctr = double
feature.country = string
feature.premium = bool
[table item]
topic = item_events
feature.price = double
[model churn]
table = user
label_topic = churn_labels
"""


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "e2e")
    H.gen_protos(args, wd.path)
    from featd.v1 import event_pb2
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd))
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        bfile = wd.file("data/kafka.bootstrap")
        bs = H.wait_for(lambda: os.path.exists(bfile) and open(bfile).read().strip(), 20, "kafka.bootstrap")
        H.log("embedded broker at", bs)
        rnd = random.Random(20261124)
        now = int(time.time() * 1000)
        base = now - 3600_000
        schema = {"user": {"clicks": "int64", "ctr": "double", "country": "string", "premium": "bool"},
                  "item": {"price": "double"}}
        topic_of = {"user": "user_events", "item": "item_events"}
        last_ts = {}
        msgs = []  # (topic, key, value bytes, headers, expect) ; expect = ("event", row) | ("dead", reason) | ("label", row)

        def value_of(t):
            if t == "int64":
                return rnd.randint(-10**12, 10**12)
            if t == "double":
                return rnd.choice([rnd.uniform(-1e6, 1e6), rnd.random(), -0.0, 1e-300, 123456789.125])
            if t == "string":
                return rnd.choice(["DE", "FR", "US", "Zürich", "東京", "a\"b\\c", ""])
            return rnd.random() < 0.5

        for i in range(N_EVENTS):
            table = "user" if rnd.random() < 0.8 else "item"
            key = f"u{rnd.randrange(50)}" if table == "user" else f"i{rnd.randrange(20)}"
            ts = base + i * 700 + rnd.randrange(500)
            r = rnd.random()
            if r < 0.10:
                ts -= rnd.randrange(1, 600_000)          # out of order
            elif r < 0.16 and (table, key) in last_ts:
                ts = last_ts[(table, key)]               # equal time: offset decides
            last_ts[(table, key)] = ts
            feats = list(schema[table])
            chosen = rnd.sample(feats, rnd.randint(1, len(feats)))
            values = {f: value_of(schema[table][f]) for f in chosen}
            topic = topic_of[table]
            bad = rnd.random()
            if bad < 0.06:
                kind = rnd.choice(["undecodable_json", "undecodable_bytes", "unknown_feature", "wrong_type",
                                   "missing_key", "missing_timestamp", "non_finite", "oversize", "unknown_table",
                                   "bad_timestamp"])
                obj = {"table": table, "ts": ts, "features": {f: v for f, v in values.items()}}
                mkey = key
                if kind == "undecodable_json":
                    val = json.dumps(obj)[:-3].encode()
                    reason = "undecodable"
                elif kind == "undecodable_bytes":
                    val = b"\xff\xfe\x00\x01garbage"
                    reason = "undecodable"
                elif kind == "unknown_feature":
                    obj["features"]["nonexistent"] = 1
                    val, reason = json.dumps(obj).encode(), "unknown_feature"
                elif kind == "wrong_type":
                    obj["features"][feats[0]] = {"nested": True}
                    val, reason = json.dumps(obj).encode(), "wrong_type"
                elif kind == "missing_key":
                    mkey = None
                    val, reason = json.dumps(obj).encode(), "missing_key"
                elif kind == "missing_timestamp":
                    del obj["ts"]
                    val, reason = json.dumps(obj).encode(), "missing_timestamp"
                elif kind == "bad_timestamp":
                    obj["ts"] = now + 10 * 86400_000
                    val, reason = json.dumps(obj).encode(), "bad_timestamp"
                elif kind == "non_finite":
                    ev = event_pb2.FeatureEvent(table=table, key=key, ts=ts)
                    ev.features["ctr" if table == "user" else "price"].double_value = float("nan")
                    val, reason = ev.SerializeToString(), "non_finite"
                elif kind == "oversize":
                    if table == "user":
                        obj["features"]["country"] = "x" * 65
                    else:
                        obj["features"] = {"price": 1.0}
                        mkey = "k" * 600
                    val, reason = json.dumps(obj).encode(), "oversize"
                else:
                    obj["table"] = "nope"
                    val, reason = json.dumps(obj).encode(), "unknown_table"
                msgs.append((topic, mkey, val, None, ("dead", reason)))
                continue
            row = {"table": table, "key": key, "ts": ts, "features": values}
            if rnd.random() < 0.5:
                ev = event_pb2.FeatureEvent(table=table if rnd.random() < 0.5 else "", key=key, ts=ts)
                for f, v in values.items():
                    t = schema[table][f]
                    if t == "int64":
                        ev.features[f].int64_value = v
                    elif t == "double":
                        ev.features[f].double_value = v
                    elif t == "string":
                        ev.features[f].string_value = v
                    else:
                        ev.features[f].bool_value = v
                hdrs = [("content-type", b"application/x-protobuf")] if rnd.random() < 0.5 else None
                msgs.append((topic, key, ev.SerializeToString(), hdrs, ("event", row)))
            else:
                obj = {"features": values}
                form = rnd.random()
                if form < 0.3:
                    obj["table"] = table
                if table == "user" and form < 0.5:
                    obj["user_id"] = key
                elif form < 0.7:
                    obj["key"] = key
                if rnd.random() < 0.3:
                    obj["ts"] = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).isoformat(
                        timespec="milliseconds")
                else:
                    obj["ts"] = ts
                msgs.append((topic, key, json.dumps(obj, ensure_ascii=rnd.random() < 0.5).encode(), None,
                             ("event", row)))
        used_label_keys = set()
        for i in range(N_LABELS):
            key = f"u{rnd.randrange(50)}"
            ts = base + rnd.randrange(3_000_000)
            if (key, ts) in used_label_keys:
                continue
            used_label_keys.add((key, ts))
            label = float(rnd.random() < 0.3)
            if i % 100 == 7:
                msgs.append(("churn_labels", key, json.dumps({"ts": ts, "label": "yes"}).encode(), None,
                             ("dead", "wrong_type")))
                continue
            msgs.append(("churn_labels", key, json.dumps({"model": "churn", "ts": ts, "label": label}).encode(), None,
                         ("label", {"model": "churn", "key": key, "ts": ts, "label": label})))

        prod = H.producer(bs)
        delivered = [None] * len(msgs)
        errors = []

        def cb_for(i):
            def cb(err, m):
                if err:
                    errors.append(err)
                else:
                    delivered[i] = (m.topic(), m.partition(), m.offset())
            return cb

        for i, (topic, key, val, hdrs, _) in enumerate(msgs):
            kw = {"headers": hdrs} if hdrs else {}
            H.produce(prod, topic, val, key, on_delivery=cb_for(i), **kw)
            prod.poll(0)
        assert prod.flush(30) == 0, "producer could not deliver everything"
        assert not errors, errors
        H.log(f"produced {len(msgs)} messages")

        expect_hist, expect_labels, expect_dead = [], [], {}
        per_part = {}
        for (topic, key, val, hdrs, (kind, x)), (t, p, o) in zip(msgs, delivered):
            per_part[(t, p)] = per_part.get((t, p), 0) + 1
            if kind == "event":
                r = dict(x)
                r["partition"], r["offset"] = p, o
                expect_hist.append(r)
            elif kind == "label":
                expect_labels.append(x)
            else:
                expect_dead[(t, p, o)] = x

        H.wait_stored(args, cfg, per_part, 90, "featd to apply every message")
        assert featd.stop() == 0, "featd did not exit 0 on SIGTERM:\n" + featd.tail()

        dump = H.inspect(args, cfg)
        online = [r for r in dump if r["kind"] == "online"]
        offline = [r for r in dump if r["kind"] == "offline"]
        labels = [r for r in dump if r["kind"] == "label"]
        dead = [r for r in dump if r["kind"] == "dead_letter"]
        offsets = [r for r in dump if r["kind"] == "offset"]

        def norm(v):
            return repr(v) if isinstance(v, float) else v

        def hkey(r):
            return (r["table"], r["key"], r["ts"], r["partition"], r["offset"],
                    tuple(sorted((f, norm(v)) for f, v in r["features"].items())))
        got_h, want_h = sorted(map(hkey, offline)), sorted(map(hkey, expect_hist))
        assert len(got_h) == len(want_h), f"history rows: got {len(got_h)}, want {len(want_h)}"
        assert got_h == want_h, "history differs: first mismatch " + str(next(
            (a, b) for a, b in zip(got_h, want_h) if a != b))
        want_online = H.replay_online(expect_hist)
        got_online = H.online_from_dump(online)
        assert set(got_online) == set(want_online), "online keys differ"
        for k, (ts, v) in want_online.items():
            g = got_online[k]
            assert g[0] == ts and norm(g[1]) == norm(v), f"online {k}: got {g}, want {(ts, v)}"
        gl = sorted((r["model"], r["key"], r["ts"], r["label"]) for r in labels)
        wl = sorted((r["model"], r["key"], r["ts"], r["label"]) for r in expect_labels)
        assert gl == wl, f"labels differ ({len(gl)} vs {len(wl)})"
        gd = {(r["topic"], r["partition"], r["offset"]): r["reason"] for r in dead}
        assert set(gd) == set(expect_dead), f"dead letter positions differ: {len(gd)} vs {len(expect_dead)}"
        for k, reason in expect_dead.items():
            assert gd[k] == reason, f"dead letter {k}: reason {gd[k]}, want {reason}"
        for r in offsets:
            n = per_part[(r["topic"], r["partition"])]
            assert r["next"] == n and r["applied"] == n, f"offset record {r}, want next = applied = {n}"
        reasons = sorted(set(expect_dead.values()))
        H.log(f"OK: {len(want_h)} history rows, {len(want_online)} online values, {len(wl)} labels, "
              f"{len(gd)} dead letters ({', '.join(reasons)}) match the independent computation")
        ok = True
    finally:
        if featd.alive():
            featd.kill9()
        if not ok:
            print(featd.tail(60))
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
