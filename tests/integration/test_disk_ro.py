#!/usr/bin/python3
"""Disk trouble, part two: data_dir turns read-only while featd ingests.

Linux will not remount a file system read-only while files on it are open
for writing, and featd always has its WAL open, so the test stages it with
tests/integration/erofs_shim.c (LD_PRELOAD): once a trigger file exists,
every write, sync, create, rename or removal under featd's data_dir fails
with EROFS, as on a file system remounted read-only.  Checks:
  - featd, ingesting, stops by itself with exit status 1 and an error line
    naming "Read-only file system" (no abort, no hang);
  - started again on the same store (writable again), it opens it, catches
    up, and every offset is applied exactly once, history is exactly the log
    and online equals a replay of history (as test_crash.py)."""
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from test_disk import EVENTS, PARTITIONS, config, error_lines  # noqa: E402


def main():
    args = H.parse_args()
    shim = os.path.join(args.build_dir, "tests", "liberofs_shim.so")
    assert os.path.exists(shim), f"{shim} is not built"
    wd = H.Workdir(args, "disk-ro")
    bcfg = wd.file("broker.ini")
    open(bcfg, "w").write(config(wd, "127.0.0.1:1", wd.file("unused")))
    broker, bs = H.start_broker(args, wd, bcfg, partitions=PARTITIONS)
    data = os.path.realpath(wd.path) + "/data"
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd, bs, data))
    trigger = wd.file("erofs-now")
    env = dict(os.environ, LD_PRELOAD=shim, FEATD_EROFS_DIR=data, FEATD_EROFS_TRIGGER=trigger)
    featd = None
    ok = False
    stop = threading.Event()
    sent = [0]

    def produce():
        prod = H.producer(bs, **{"enable.idempotence": True, "queue.buffering.max.messages": 1000000})
        t0 = int(time.time() * 1000)
        while not stop.is_set():
            for _ in range(200):
                i = sent[0]
                prod.produce(EVENTS, key=f"e{i % 500}", value=json.dumps(
                    {"ts": t0 + (i * 7919) % 100000, "features": {"seq": i, "v": i * 0.5, "tag": f"t{i % 7}"}}).encode())
                sent[0] += 1
            prod.poll(0)
            time.sleep(0.02)
        assert prod.flush(60) == 0

    try:
        featd = H.start_featd(args, wd, cfg, logname="featd-ro.log", env=env)
        workers = H.Workers()
        workers.start(produce)
        H.wait_assigned(featd, watch=workers)
        H.wait_for(lambda: sent[0] > 20000, 60, "20k events produced", watch=workers)
        time.sleep(1)
        open(trigger, "w").close()
        H.log(f"data_dir read-only from now on ({sent[0]} events produced so far)")
        try:
            rc = featd.p.wait(60)
        except Exception:
            raise AssertionError("featd kept running on a read-only data_dir:\n" + featd.tail())
        stop.set()
        workers.join(90)
        out = open(featd.logpath, errors="replace").read()
        featd = None
        lines = error_lines(out, "Read-only file system")
        H.log(f"featd stopped: exit {rc}: {lines[:2]}")
        assert rc == 1, f"want exit status 1, got {rc}:\n{out[-3000:]}"
        assert lines, f"no error line names the read-only file system:\n{out[-3000:]}"
        assert not re.search(r"(Segmentation|Aborted|core dumped|assert)", out), out[-3000:]

        # writable again: the same store opens and catches up exactly once
        featd = H.start_featd(args, wd, cfg, logname="featd-rw.log")
        from confluent_kafka import Consumer, TopicPartition
        oc = Consumer({"bootstrap.servers": bs, "group.id": "ro-wm", "enable.auto.commit": False})
        hw = {(EVENTS, p): oc.get_watermark_offsets(TopicPartition(EVENTS, p), timeout=10)[1] for p in range(PARTITIONS)}
        oc.close()
        H.wait_stored(args, cfg, hw, 120, "featd to catch up on the writable store", proc=featd, open_may_race=True)
        assert featd.stop() == 0, featd.tail()
        featd = None
        per_part, log_events = H.check_store_against_log(args, cfg, bs, (EVENTS,), EVENTS)
        assert sum(per_part.values()) == sum(hw.values())
        assert set(range(sent[0])) <= set(log_events.values()), "produced events missing from the log"
        H.log(f"after the read-only spell: {sum(per_part.values())} records in {len(per_part)} partitions, each "
              "applied exactly once; history is the log; online equals a replay of history")
        ok = True
    finally:
        stop.set()
        if featd and featd.alive():
            featd.kill9()
        broker.stop()
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
