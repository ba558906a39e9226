#!/usr/bin/python3
"""Online backup and restore: `featctl backup DIR` while featd ingests from a
broker in another process (featd-broker), then a second featd started on the
backup directory.

Checked against the Kafka log itself, read back by an independent consumer:
  - the Backup RPC refuses an existing directory (ALREADY_EXISTS), a missing
    parent and a relative path (INVALID_ARGUMENT);
  - the backup was taken mid-stream (its offsets are past 0 and short of the
    end) and is consistent: for every partition, offsets 0..next-1 appear
    exactly once across its history, labels and dead letters, the applied
    count equals next, its history is exactly the log's events below next, and
    its online table equals a replay of its history;
  - featd restarted on the backup (same consumer group, whose broker-side
    committed offsets are past the backup's) resumes from the backup's
    offsets: at the end every offset of the log is applied exactly once,
    history equals the log, online equals a replay of history, and the
    restored store ends equal to the original one."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PARTS = 4


def config(data_dir, bootstrap):
    return f"""
[featd]
data_dir = {data_dir}
progress_interval = 1s
[serve]
listen = 127.0.0.1:0
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = false
bootstrap.servers = {bootstrap}
group.id = backup-test
session.timeout.ms = 6000
[table user]
topic = bk_events
feature.seq = int64
feature.v = double
feature.tag = string
[model m]
table = user
label_topic = bk_labels
"""


def check_store(dump, log_events, ends, what):
    """dump: a featd-inspect dump; log_events: (partition, offset) -> seq of
    every event record in the log; ends: (topic, partition) -> the offset
    the store must have reached.  Asserts exactly-once application up to
    ends and online == replay(history)."""
    seen = {}
    hist = [r for r in dump if r["kind"] == "offline"]
    for r in hist:
        seen.setdefault(("bk_events", r["partition"]), []).append(r["offset"])
    for r in dump:
        if r["kind"] == "label":
            seen.setdefault(("bk_labels", r["partition"]), []).append(r["offset"])
        elif r["kind"] == "dead_letter":
            seen.setdefault((r["topic"], r["partition"]), []).append(r["offset"])
    offsets = {(r["topic"], r["partition"]): r for r in dump if r["kind"] == "offset"}
    for k, n in ends.items():
        got = sorted(seen.get(k, []))
        assert got == list(range(n)), (f"{what}: {k}: stored offsets are not exactly 0..{n - 1} once each "
                                       f"({len(got)} stored, {len(set(got))} distinct)")
        if n:
            assert offsets[k]["next"] == n and offsets[k]["applied"] == n, f"{what}: offset record {offsets[k]} != {n}"
    want = {k: v for k, v in log_events.items() if k[1] < ends[("bk_events", k[0])]}
    got = {(r["partition"], r["offset"]): r["features"]["seq"] for r in hist}
    assert got == want, (f"{what}: history differs from the log below the stored offsets: "
                         f"{len(set(want) - set(got))} missing, {len(set(got) - set(want))} extra")
    online = H.online_from_dump([r for r in dump if r["kind"] == "online"])
    assert online == H.replay_online(hist), f"{what}: online differs from a replay of its history"
    return online, hist


def main():
    def extra(p):
        p.add_argument("--events", type=int, default=40000)
    args = H.parse_args(extra)
    wd = H.Workdir(args, "backup")
    data = wd.file("data")
    bdir = wd.file("backup1")
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(data, "127.0.0.1:1"))
    broker, bs = H.start_broker(args, wd, cfg, partitions=PARTS)
    open(cfg, "w").write(config(data, bs))
    ok = False
    featd = None
    try:
        prod = H.producer(bs, **{"enable.idempotence": True, "queue.buffering.max.messages": 1000000})
        delivered = []
        lock = threading.Lock()
        done = threading.Event()
        duration = 10.0

        def produce_all():
            t0 = time.time()
            for i in range(args.events):
                key = f"u{i % 3000}"
                ts = int(t0 * 1000) - 600000 + (i * 7919) % 500000   # out of order
                if i % 101 == 17:
                    topic, val = "bk_events", b"{not json"
                elif i % 37 == 5:
                    topic, val = "bk_labels", json.dumps({"ts": ts + 1, "label": i % 2}).encode()
                else:
                    topic = "bk_events"
                    val = json.dumps({"ts": ts, "features": {"seq": i, "v": i * 0.25, "tag": f"t{i % 5}"}}).encode()

                def cb(err, m):
                    if err:
                        raise RuntimeError(err)
                    with lock:
                        delivered.append((m.topic(), m.partition()))
                H.produce(prod, topic, val, key, on_delivery=cb)
                prod.poll(0)
                H.pace(t0, i, args.events / duration)
            prod.flush(120)
            done.set()

        featd = H.start_featd(args, wd, cfg, logname="featd-a.log")
        H.wait_assigned(featd)
        workers = H.Workers()
        workers.start(produce_all)
        H.wait_for(lambda: len(delivered) > args.events // 4, 60, "a quarter of the events", watch=workers)

        # refused targets, then the backup itself, while events keep arriving
        os.makedirs(wd.file("exists"))
        r = H.featctl(args, "--config", cfg, "backup", wd.file("exists"))
        assert r.returncode == 1 and "ALREADY_EXISTS" in r.stderr, r
        r = H.featctl(args, "--config", cfg, "backup", wd.file("no/such/parent"))
        assert r.returncode == 1 and "INVALID_ARGUMENT" in r.stderr, r
        assert not os.path.exists(wd.file("no")), "a refused backup left a directory behind"
        r = H.featctl(args, "--config", cfg, "--json", "backup", bdir)
        assert r.returncode == 0, r
        info = json.loads(r.stdout)
        H.log("backup:", info)
        assert info["dir"] == bdir and info["files"] > 0 and info["bytes"] > 0, info
        assert os.path.isdir(os.path.join(bdir, "db")), "no db/ in the backup"
        assert not done.is_set(), "production ended before the backup: not a backup under load"
        r = H.featctl(args, "--config", cfg, "backup", bdir)
        assert r.returncode == 1 and "ALREADY_EXISTS" in r.stderr, r

        workers.join(120)   # production finished, or its exception is raised here
        assert done.is_set(), "production did not finish"
        from confluent_kafka import Consumer, TopicPartition
        oracle = Consumer({"bootstrap.servers": bs, "group.id": "bk-oracle", "enable.auto.commit": False})
        ends = {}
        for topic in ("bk_events", "bk_labels"):
            for p in range(PARTS):
                ends[(topic, p)] = oracle.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        assert sum(ends.values()) == args.events == len(delivered), (ends, len(delivered))

        produced = {k: n for k, n in ends.items() if n}
        H.wait_stored(args, cfg, produced, 120, "featd to catch up", data_dir=data)
        assert featd.stop() == 0, featd.tail()
        featd = None

        # the log itself, read back independently
        log_events = {}
        for m in H.read_topic(bs, "bk_events", partitions=PARTS):
            try:
                log_events[(m.partition(), m.offset())] = json.loads(m.value())["features"]["seq"]
            except ValueError:
                pass
        oracle.close()

        # 1. the backup on its own: mid-stream and consistent
        bdump = H.inspect(args, cfg, data_dir=bdir)
        bends = {k: 0 for k in ends}
        for r in bdump:
            if r["kind"] == "offset":
                bends[(r["topic"], r["partition"])] = r["next"]
        taken, total = sum(bends.values()), sum(ends.values())
        H.log(f"backup holds {taken} of {total} messages")
        assert 0 < taken < total, f"backup offsets {bends}: not taken mid-stream"
        check_store(bdump, log_events, bends, "backup")

        # 2. the original store at the end
        a_online, a_hist = check_store(H.inspect(args, cfg, data_dir=data), log_events, ends, "original")

        # 3. restore: featd on the backup directory, same consumer group (the
        # broker's committed offsets are past the backup's: resuming from them
        # would skip messages, resuming from 0 would apply some twice)
        grp = Consumer({"bootstrap.servers": bs, "group.id": "backup-test", "enable.auto.commit": False})
        committed = grp.committed([TopicPartition(t, p) for (t, p) in ends], timeout=10)
        grp.close()
        past = [tp for tp in committed if tp.offset > bends[(tp.topic, tp.partition)]]
        assert past, "the group's committed offsets are not past the backup's: the restore check would be weak"
        rcfg = wd.file("restored.ini")
        open(rcfg, "w").write(config(bdir, bs))
        featd = H.start_featd(args, wd, rcfg, logname="featd-b.log")
        H.wait_stored(args, cfg, produced, 120, "the restored featd to catch up", data_dir=bdir)
        assert featd.stop() == 0, featd.tail()
        featd = None
        b_online, b_hist = check_store(H.inspect(args, rcfg, data_dir=bdir), log_events, ends, "restored")
        assert b_online == a_online, "the restored store's online table differs from the original's"
        key = lambda r: (r["partition"], r["offset"])  # noqa: E731
        assert sorted(b_hist, key=key) == sorted(a_hist, key=key), "restored history differs from the original's"
        H.log(f"OK: backup under load held {taken}/{total} messages consistently; featd restored from it "
              f"resumed at its offsets and applied all {total} exactly once; online equals a replay of history")
        ok = True
    finally:
        if featd and featd.alive():
            featd.kill9()
        broker.stop()
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
