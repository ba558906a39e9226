#!/usr/bin/python3
"""Crash test: featd is killed with SIGKILL at random moments while it ingests
a stream of >= 100k events from a broker in another process (featd-broker),
and the broker goes down and comes back once mid-stream.  After a final clean
run, for every partition:
  - every offset 0..n-1 appears exactly once across history, labels and dead
    letters, and nothing else does;
  - the applied count stored with the offset equals n (a message applied twice
    would push it past n even though idempotent keys hide the duplicate);
  - history holds exactly the produced valid events (by sequence number);
  - online equals a replay of history.
Short mode by default; --kills and --events make it longer."""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def config(wd, bootstrap, group):
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 1s
[kafka]
embedded = false
bootstrap.servers = {bootstrap}
group.id = {group}
session.timeout.ms = 6000
partitions = 8
[table user]
topic = crash_events
feature.seq = int64
feature.v = double
feature.tag = string
[model m]
table = user
label_topic = crash_labels
"""


def main():
    def extra(p):
        p.add_argument("--kills", type=int, default=6)
        p.add_argument("--events", type=int, default=120000)
        p.add_argument("--seed", type=int, default=int(time.time()))
    args = H.parse_args(extra)
    H.log(f"seed {args.seed}, {args.kills} kills, {args.events} events")
    rnd = random.Random(args.seed)
    wd = H.Workdir(args, "crash")
    bcfg = wd.file("broker.ini")
    open(bcfg, "w").write(config(wd, "127.0.0.1:1", "x").replace("embedded = false", "embedded = false"))
    broker, bs = H.start_broker(args, wd, bcfg, partitions=8)
    H.log("featd-broker at", bs)
    ok = False
    featd = None
    try:
        # idempotent: retries during the broker outage must not duplicate records in the log
        prod = H.producer(bs, **{"message.timeout.ms": 300000, "queue.buffering.max.messages": 2000000,
                                 "enable.idempotence": True})
        msgs = []      # (topic, kind, seq)
        delivered = {}
        lock = threading.Lock()
        done = threading.Event()

        # spread production over the whole kill schedule (about 4 s a run plus
        # the outage) so every kill lands while featd is ingesting
        duration = args.kills * 4.0 + 12.0

        def produce_all():
            rate = args.events / duration
            t0 = time.time()
            for i in range(args.events):
                r = i % 97
                key = f"e{i % 5000}"
                ts = int(t0 * 1000) - 600000 + (i * 7919) % 500000   # scrambled: out of order
                if r == 13:
                    topic, kind, val = "crash_events", "dead", b"{not json"
                elif r == 29:
                    topic, kind = "crash_labels", "label"
                    val = json.dumps({"ts": ts + i, "label": i % 2}).encode()
                else:
                    topic, kind = "crash_events", "event"
                    val = json.dumps({"ts": ts, "features": {"seq": i, "v": i * 0.5, "tag": f"t{i % 7}"}}).encode()
                idx = len(msgs)
                msgs.append((topic, kind, i))

                def cb(err, m, idx=idx):
                    if err:
                        raise RuntimeError(err)
                    with lock:
                        delivered[idx] = (m.topic(), m.partition(), m.offset())
                H.produce(prod, topic, val, key, on_delivery=cb)
                prod.poll(0)
                H.pace(t0, i, rate)
            prod.flush(120)
            done.set()

        workers = H.Workers()
        workers.start(produce_all)
        cfg = wd.file("featd.ini")
        broker_down_at = args.kills // 2
        busy_runs = []
        for k in range(args.kills + 1):
            workers.check()   # the producer is still sending
            # a fresh group id per run: offsets live in featd's store, so the
            # new member need not wait out the killed one's session
            open(cfg, "w").write(config(wd, bs, f"crash-{k}"))
            featd = H.start_featd(args, wd, cfg, logname=f"featd-{k}.log")
            H.wait_assigned(featd, watch=workers)
            if k == broker_down_at:
                time.sleep(1.0)
                H.log("broker down for 8 s")
                broker.p.send_signal(10)   # SIGUSR1
                time.sleep(8)
                broker.p.send_signal(12)   # SIGUSR2
                H.log("broker up")
            if k == args.kills:
                break
            time.sleep(rnd.uniform(0.2, 2.5))
            assert featd.alive(), "featd died on its own:\n" + featd.tail()
            H.log(f"kill -9 #{k + 1}")
            featd.kill9()
            last = [l for l in featd.tail(400).splitlines() if "progress:" in l]
            # the run's cumulative "applied N events" in its last progress line
            import re
            m = re.search(r"applied (\d+) events", last[-1]) if last else None
            busy = bool(m) and int(m.group(1)) > 0
            busy_runs.append(busy)
            H.log(f"  run {k}: {'ingesting' if busy else 'idle'} when killed")
        assert sum(busy_runs) * 2 >= len(busy_runs), f"most kills landed while featd was idle: {busy_runs}"
        workers.join(600)   # production finished, or its exception is raised here
        assert done.is_set() and len(delivered) == len(msgs), f"only {len(delivered)} of {len(msgs)} delivered"
        # each partition's end is the broker's high watermark (it may hold
        # records re-appended after the last one the producer saw delivered)
        from confluent_kafka import Consumer, TopicPartition
        oracle = Consumer({"bootstrap.servers": bs, "group.id": "crash-oracle", "enable.auto.commit": False})
        parts = {(t, p) for t, p, o in delivered.values()}
        per_part = {k: oracle.get_watermark_offsets(TopicPartition(*k), timeout=10)[1] for k in sorted(parts)}

        H.wait_stored(args, cfg, per_part, 180, "the final run to catch up")
        assert featd.stop() == 0, featd.tail()
        featd = None

        dump = H.inspect(args, cfg)
        seen = {}

        def mark(t, p, o):
            seen.setdefault((t, p), []).append(o)
        hist = [r for r in dump if r["kind"] == "offline"]
        for r in hist:
            mark("crash_events", r["partition"], r["offset"])
        for r in dump:
            if r["kind"] == "label":
                mark("crash_labels", r["partition"], r["offset"])
            elif r["kind"] == "dead_letter":
                mark(r["topic"], r["partition"], r["offset"])
        for k, n in per_part.items():
            offs = sorted(seen.get(k, []))
            if offs != list(range(n)):
                missing = sorted(set(range(n)) - set(offs))
                extra = sorted(set(offs) - set(range(n)))
                rec = [r for r in dump if r["kind"] == "offset" and (r["topic"], r["partition"]) == k]
                raise AssertionError(f"{k}: offsets are not exactly 0..{n - 1} once each ({len(offs)} stored, "
                                     f"{len(set(offs))} distinct; missing {missing[:10]}, extra {extra[:10]}; "
                                     f"offset record {rec})")
        for r in dump:
            if r["kind"] == "offset":
                n = per_part[(r["topic"], r["partition"])]
                assert r["applied"] == n, f"{r}: applied {r['applied']} != {n} messages: applied twice?"
        # The oracle is the log itself, read back by an independent consumer:
        # librdkafka's mock broker can re-append a few records after an outage
        # even for an idempotent producer, and featd must apply what the log
        # holds, each offset once.
        oracle.assign([TopicPartition(t, p, 0) for (t, p) in per_part])
        log_events = {}   # (partition, offset) -> seq
        seen = {k: 0 for k in per_part}
        deadline = time.time() + 120
        while any(seen[k] < n for k, n in per_part.items()) and time.time() < deadline:
            for m in oracle.consume(10000, timeout=1.0):
                if m.error():
                    continue
                seen[(m.topic(), m.partition())] = m.offset() + 1
                if m.topic() == "crash_events":
                    try:
                        log_events[(m.partition(), m.offset())] = json.loads(m.value())["features"]["seq"]
                    except ValueError:
                        pass
        oracle.close()
        assert all(seen[k] >= n for k, n in per_part.items()), f"could not read the whole log back: {seen}"
        got = {(r["partition"], r["offset"]): r["features"]["seq"] for r in hist}
        assert got == log_events, (f"history differs from the log: {len(set(log_events) - set(got))} log records "
                                   f"missing, {len(set(got) - set(log_events))} extra, "
                                   f"{sum(1 for k in got if k in log_events and got[k] != log_events[k])} different")
        produced = {i for (t, kind, i) in msgs if kind == "event"}
        assert produced <= set(log_events.values()), "some produced events are not in the log"
        dups = len(log_events) - len(set(log_events.values()))
        H.log(f"log read back: {len(log_events)} event records ({dups} re-appended by the broker), all in history once")
        want_online = H.replay_online(hist)
        got_online = H.online_from_dump([r for r in dump if r["kind"] == "online"])
        assert got_online == want_online, "online differs from a replay of history"
        H.log(f"OK: {len(msgs)} messages over {len(per_part)} partitions, {args.kills} kills and a broker "
              f"outage: every offset applied exactly once; online equals a replay of history")
        ok = True
    finally:
        if featd and featd.alive():
            featd.kill9()
        broker.stop()
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
