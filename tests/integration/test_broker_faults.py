#!/usr/bin/python3
"""Broker fault test: featd ingests from a 3-broker featd-broker while a
producer keeps sending a known event log, and the broker's control port
(--control-file) injects, one after another:
  - Fetch errors (NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT),
  - OffsetCommit errors (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, REQUEST_TIMED_OUT),
  - the group coordinator moving, with FindCoordinator answering
    COORDINATOR_NOT_AVAILABLE, then JoinGroup answering
    COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR / REQUEST_TIMED_OUT,
  - every partition leader moving to another broker,
  - every broker down for --outage seconds (20 by default).
Checks: featd never exits and ingests again after each fault; afterwards
consumer lag (featd's /metrics) returns to 0; every (topic, partition,
offset) is applied exactly once, history is exactly the log, online equals a
replay of history (featd-inspect, as test_crash.py); the faults show in
/metrics (featd_kafka_errors_total{code}, featd_kafka_rebalances_total)."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

EVENTS, LABELS = "bf_events", "bf_labels"
GROUP = "featd-faults"
PARTITIONS = 6


def config(wd, bootstrap, kafka_debug=""):
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 2s
log_level = {"debug" if kafka_debug else "info"}
[admin]
listen = 127.0.0.1:0
[serve]
listen = 127.0.0.1:0
[kafka]
embedded = false
bootstrap.servers = {bootstrap}
group.id = {GROUP}
session.timeout.ms = 6000
{"debug = " + kafka_debug if kafka_debug else ""}
partitions = {PARTITIONS}
[table user]
topic = {EVENTS}
feature.seq = int64
feature.v = double
feature.tag = string
[model m]
table = user
label_topic = {LABELS}
"""


class Producer:
    """Sends a known event log at a steady rate until stopped; every message
    must be delivered (idempotent, long timeout: the outage must not lose or
    duplicate anything on the producer's side)."""

    def __init__(self, bootstrap, rate):
        self.p = H.producer(bootstrap, **{"message.timeout.ms": 600000, "enable.idempotence": True})
        self.rate = rate
        self.sent = 0
        self.delivered = 0
        self.failed = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.workers = H.Workers()
        self.workers.start(self.run)

    def run(self):
        t0 = time.time()
        i = 0
        while not self.stop.is_set():
            r = i % 61
            key = f"e{i % 3000}"
            ts = int(t0 * 1000) - 600000 + (i * 7919) % 500000   # scrambled: out of order
            if r == 13:
                topic, val = EVENTS, b"{not json"
            elif r == 29:
                topic, val = LABELS, json.dumps({"ts": ts + i, "label": i % 2}).encode()
            else:
                topic = EVENTS
                val = json.dumps({"ts": ts, "features": {"seq": i, "v": i * 0.5, "tag": f"t{i % 7}"}}).encode()

            def cb(err, m):
                with self.lock:
                    if err:
                        self.failed.append(str(err))
                    else:
                        self.delivered += 1
            H.produce(self.p, topic, val, key, on_delivery=cb)
            i += 1
            self.sent = i
            self.p.poll(0)
            H.pace(t0, i, self.rate)

    def finish(self, timeout):
        self.stop.set()
        self.workers.join(60)
        left = self.p.flush(timeout)
        assert left == 0 and not self.failed, f"{left} messages undelivered, failures {self.failed[:5]}"
        assert self.delivered == self.sent, f"{self.delivered} of {self.sent} delivered"


def main():
    def extra(p):
        p.add_argument("--outage", type=float, default=20.0, help="seconds with every broker down")
        p.add_argument("--rate", type=float, default=300.0, help="messages per second")
        p.add_argument("--rounds", type=int, default=1, help="times to run the whole fault sequence")
        p.add_argument("--kafka-debug", default="", help="librdkafka debug contexts for featd (e.g. cgrp,fetch)")
    args = H.parse_args(extra)
    wd = H.Workdir(args, "broker-faults")
    bcfg = wd.file("broker.ini")
    open(bcfg, "w").write(config(wd, "127.0.0.1:1"))
    ctl = wd.file("broker.control")
    bfile = wd.file("broker.bootstrap")
    broker = H.Proc([H.bins(args)["broker"], "--config", bcfg, "--brokers", "3", "--bootstrap-file", bfile,
                     "--control-file", ctl], wd.file("broker.log"))
    bs = H.wait_for(lambda: os.path.exists(bfile) and os.path.exists(ctl) and open(bfile).read().strip(), 20,
                    "featd-broker")
    H.log("featd-broker at", bs, "control", open(ctl).read().strip())
    assert H.control(ctl, "ping") == ["ok 3 brokers"]
    ok = False
    featd = None
    prod = None
    try:
        cfg = wd.file("featd.ini")
        open(cfg, "w").write(config(wd, bs, args.kafka_debug))
        featd = H.start_featd(args, wd, cfg)
        admin = H.featd_addrs(wd)["admin"]
        H.wait_assigned(featd)
        prod = Producer(bs, args.rate)

        def m(name, labels=None):
            return H.metric(admin, name, labels) or 0.0

        def applied():
            return m("featd_ingest_events_total") + m("featd_ingest_labels_total") + m("featd_dead_letters_total")

        def alive():
            assert featd.alive(), "featd exited:\n" + featd.tail()

        def ingests_again(what, timeout=60):
            """featd applies new messages after the fault (the producer keeps sending)."""
            alive()
            start = applied()
            H.wait_for(lambda: alive() or applied() >= start + args.rate, timeout, f"ingest to resume after {what}")
            alive()
            H.log(f"  ingesting again after {what}: {int(applied())} applied, errors "
                  f"{int(m('featd_kafka_errors_total'))}, rebalances {int(m('featd_kafka_rebalances_total'))}")

        ingests_again("start")
        leader_of = {p: 1 + p % 3 for p in range(PARTITIONS)}   # where we put them (set below)
        for t in (EVENTS, LABELS):
            H.control(ctl, *[f"leader {t} {p} {leader_of[p]}" for p in range(PARTITIONS)])
        for rnd in range(args.rounds):
            H.log(f"round {rnd + 1}: Fetch errors")
            # NOT_LEADER_FOR_PARTITION is handled inside librdkafka (metadata
            # refresh, no trace for featd); REQUEST_TIMED_OUT reaches featd as
            # consume errors
            t0 = m("featd_kafka_errors_total", 'code="REQUEST_TIMED_OUT"')
            H.control(ctl, "errors Fetch NOT_LEADER_FOR_PARTITION 10", "errors Fetch REQUEST_TIMED_OUT 5")
            H.wait_for(lambda: alive() or m("featd_kafka_errors_total", 'code="REQUEST_TIMED_OUT"') > t0, 30,
                       "Fetch errors to show in featd_kafka_errors_total")
            ingests_again("Fetch errors")

            H.log("OffsetCommit errors")
            # librdkafka retries the coordinator errors itself (re-querying the
            # coordinator); the timed-out commit reaches featd's commit callback
            t0 = m("featd_kafka_errors_total", 'code="REQUEST_TIMED_OUT"')
            H.control(ctl, "errors OffsetCommit COORDINATOR_NOT_AVAILABLE 3", "errors OffsetCommit NOT_COORDINATOR 2",
                      "errors OffsetCommit REQUEST_TIMED_OUT 1")
            H.wait_for(lambda: alive() or m("featd_kafka_errors_total", 'code="REQUEST_TIMED_OUT"') > t0, 30,
                       "the failed lag commit to show in featd_kafka_errors_total")
            ingests_again("OffsetCommit errors")

            H.log("coordinator moves; FindCoordinator and JoinGroup fail for a while")
            # a heartbeat answered NOT_COORDINATOR sends the consumer looking
            # for the coordinator (FindCoordinator fails 4 times, then names
            # the new one); the next answers UNKNOWN_MEMBER_ID, so it rejoins
            # through 4 failing JoinGroups
            r0 = m("featd_kafka_rebalances_total", 'event="assign"')
            H.control(ctl, "errors FindCoordinator COORDINATOR_NOT_AVAILABLE 4",
                      "errors JoinGroup COORDINATOR_NOT_AVAILABLE 2", "errors JoinGroup NOT_COORDINATOR 1",
                      "errors JoinGroup REQUEST_TIMED_OUT 1",
                      f"coordinator group {GROUP} {2 + rnd % 2}",
                      "errors Heartbeat NOT_COORDINATOR 1", "errors Heartbeat UNKNOWN_MEMBER_ID 1")
            H.wait_for(lambda: alive() or m("featd_kafka_rebalances_total", 'event="assign"') > r0, 90,
                       "the group to rejoin on the new coordinator")
            ingests_again("coordinator move")

            H.log("partition leaders move")
            for p in range(PARTITIONS):
                leader_of[p] = 1 + leader_of[p] % 3
            for t in (EVENTS, LABELS):
                H.control(ctl, *[f"leader {t} {p} {leader_of[p]}" for p in range(PARTITIONS)])
            ingests_again("leader moves")

            H.log(f"every broker down for {args.outage:.0f} s")
            e0 = m("featd_kafka_errors_total")
            H.control(ctl, "down all")
            end = time.time() + args.outage
            while time.time() < end:
                alive()
                time.sleep(1)
            H.control(ctl, "up all")
            H.log("brokers up")
            assert m("featd_kafka_errors_total") > e0, "the outage left no trace in featd_kafka_errors_total"
            ingests_again("the outage", timeout=120)

        H.log("stopping the producer")
        prod.finish(180)

        from confluent_kafka import Consumer, TopicPartition
        oc = Consumer({"bootstrap.servers": bs, "group.id": "bf-wm", "enable.auto.commit": False})
        hw = {(t, p): oc.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
              for t in (EVENTS, LABELS) for p in range(PARTITIONS)}
        oc.close()

        def lag_zero():
            alive()
            nxt, lags = H.kafka_positions(H.scrape(admin))
            return len(lags) == len(hw) and all(x == 0 for x in lags) and nxt == hw
        H.wait_for(lag_zero, 120, "featd_kafka_lag to return to 0 on every partition", interval=1.0)
        H.log(f"lag 0 on {len(hw)} partitions; {sum(hw.values())} messages in the log")

        # the faults are visible in /metrics
        samples = H.scrape(admin)
        errs = {dict(l)["code"]: v for (n, l), v in samples.items() if n == "featd_kafka_errors_total"}
        rebal = {dict(l)["event"]: v for (n, l), v in samples.items() if n == "featd_kafka_rebalances_total"}
        H.log("featd_kafka_errors_total:", errs)
        H.log("featd_kafka_rebalances_total:", rebal)
        assert any(errs.get(c, 0) > 0 for c in ("_TRANSPORT", "_ALL_BROKERS_DOWN")), f"the outage is not counted: {errs}"
        assert rebal.get("assign", 0) >= 2, f"rejoining the group is not counted: {rebal}"
        assert m("featd_ingest_failed") == 0

        alive()
        assert featd.stop() == 0, featd.tail()
        featd = None
        per_part, log_events = H.check_store_against_log(args, cfg, bs, (EVENTS, LABELS), EVENTS)
        produced = {i for i in range(prod.sent) if i % 61 not in (13, 29)}
        assert produced <= set(log_events.values()), \
            f"{len(produced - set(log_events.values()))} produced events are not in the log"
        dups = len(log_events) - len(set(log_events.values()))
        H.log(f"OK: {prod.sent} messages produced, {sum(per_part.values())} in the log ({dups} event records "
              f"re-appended by the broker) over {len(per_part)} partitions; every offset applied exactly once, "
              f"history is the log, online equals a replay of history")
        ok = True
    finally:
        if prod:
            prod.stop.set()
        if featd and featd.alive():
            featd.kill9()
        broker.stop()
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
