#!/usr/bin/python3
"""Disk trouble: featd's data_dir lives on a small tmpfs this test mounts
(it runs as root in CI, where chmod would not stop featd; a mount really
refuses the writes).  In turn:
  (a1) read-only at start, empty: the tmpfs mounted ro → featd exits
       non-zero with one line naming "Read-only file system";
  (b)  full during ingest: a producer sends large events until the tmpfs is
       full → featd stops by itself with exit status 1 and an error line
       naming "No space left on device";
  (b2) full at start: a filler file takes the space (b) left, featd is
       started again on the store → non-zero exit, one line naming the
       problem;
  (c)  space freed (filler removed, the tmpfs grown): featd opens the same store and catches
       up; every offset is applied exactly once, history is exactly the log,
       online equals a replay of history (as test_crash.py);
  (a2) read-only at start with that store (remounted ro) → non-zero exit with
       one clear line; remounted rw, the store still passes the same audit.
Skips (exit 77) when this machine does not let the test mount a tmpfs."""
import errno
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

EVENTS = "disk_events"
PARTITIONS = 8   # keeps each partition well under the mock broker's ~5 MiB retention


def config(wd, bootstrap, data_dir):
    return f"""
[featd]
data_dir = {data_dir}
progress_interval = 1s
[admin]
listen = 127.0.0.1:0
[serve]
listen = 127.0.0.1:0
[store]
write_buffer = 1MiB
[kafka]
embedded = false
bootstrap.servers = {bootstrap}
group.id = disk-test
session.timeout.ms = 6000
partitions = {PARTITIONS}
[table user]
topic = {EVENTS}
feature.seq = int64
feature.v = double
feature.tag = string
"""


def sh(*argv):
    return subprocess.run(argv, capture_output=True, text=True)


def error_lines(text, what):
    """Lines of featd's output that report the problem: its one-line
    start-up errors ("featd: ...") and ERROR lines, naming what."""
    return [l for l in text.splitlines() if what in l and (l.startswith("featd: ") or " ERROR " in l)]


def fill(path):
    """Write path until the file system has no block left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (1 << 16, 1 << 12):
            buf = b"\0" * chunk
            try:
                while True:
                    os.write(fd, buf)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)


def run_to_exit(args, wd, cfg, logname, timeout=60):
    p = H.start_featd(args, wd, cfg, logname=logname)
    try:
        rc = p.p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill9()
        raise AssertionError(f"featd kept running on a broken data_dir:\n{p.tail()}")
    return rc, open(p.logpath, errors="replace").read()


def main():
    args = H.parse_args()
    if os.geteuid() != 0:
        print("SKIPPED: test_disk mounts a tmpfs as featd's data_dir and needs root (CI runs as root)", flush=True)
        sys.exit(77)
    wd = H.Workdir(args, "disk")
    mnt = wd.file("mnt")
    os.mkdir(mnt)
    r = sh("mount", "-t", "tmpfs", "-o", "size=1m", "featd-test", mnt)
    if r.returncode != 0:
        print(f"SKIPPED: cannot mount a tmpfs here ({r.stderr.strip()}); test_disk needs it to fill or "
              "write-protect featd's data_dir honestly", flush=True)
        wd.cleanup(True)
        sys.exit(77)
    sh("umount", mnt)
    mounted = False

    def mount(opts):
        nonlocal mounted
        r = sh("mount", "-t", "tmpfs", "-o", opts, "featd-test", mnt)
        assert r.returncode == 0, r.stderr
        mounted = True

    def remount(opts):
        r = sh("mount", "-o", "remount," + opts, mnt)
        assert r.returncode == 0, r.stderr

    bcfg = wd.file("broker.ini")
    open(bcfg, "w").write(config(wd, "127.0.0.1:1", wd.file("unused")))
    broker, bs = H.start_broker(args, wd, bcfg, partitions=PARTITIONS)
    H.log("featd-broker at", bs)
    ok = False
    featd = None
    data = os.path.join(mnt, "data")
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd, bs, data))
    try:
        # (a1) read-only at start, nothing there yet: featd cannot even create data_dir
        mount("size=64m,ro")
        for d, name in ((data, "a missing data_dir"), (mnt, "an existing empty data_dir")):
            c = wd.file("featd-ro.ini")
            open(c, "w").write(config(wd, bs, d))
            rc, out = run_to_exit(args, wd, c, f"featd-a1-{len(d)}.log")
            lines = error_lines(out, "Read-only file system")
            H.log(f"(a1) read-only, {name}: exit {rc}: {lines}")
            assert rc != 0, out
            assert len(lines) == 1, f"want one line naming the problem:\n{out}"
        sh("umount", mnt)
        mounted = False

        # (b) full during ingest
        mount("size=12m")
        featd = H.start_featd(args, wd, cfg, logname="featd-b.log")
        H.wait_assigned(featd)
        prod = H.producer(bs, **{"enable.idempotence": True, "queue.buffering.max.messages": 1000000})
        sent = 0
        pad = "x" * 1000
        t0 = time.time()
        while featd.alive() and time.time() - t0 < 120:
            for _ in range(500):
                i = sent
                val = json.dumps({"ts": int(t0 * 1000) + (i * 7919) % 100000,
                                  "features": {"seq": i, "v": i * 0.5, "tag": f"{i % 7}{pad}"}}).encode()
                H.produce(prod, EVENTS, val, f"e{i % 2000}")
                sent += 1
            prod.poll(0)
            time.sleep(0.05)
        assert prod.flush(60) == 0
        rc = featd.p.wait(60)
        out = open(featd.logpath, errors="replace").read()
        featd = None
        lines = error_lines(out, "No space left on device")
        H.log(f"(b) full during ingest after {sent} events: exit {rc}: {lines[:3]}")
        assert rc == 1, f"want exit status 1, got {rc}:\n{out[-3000:]}"
        assert lines, f"no error line names the full disk:\n{out[-3000:]}"
        assert not re.search(r"(Segmentation|Aborted|core dumped|assert)", out), out[-3000:]
        df = os.statvfs(mnt)
        H.log(f"    tmpfs: {df.f_bavail * df.f_frsize // 1024} KiB free")

        # (b2) full at start: the store is there, the disk still full.  What
        # (b) left free depends on how far featd got before a write failed
        # (a slow machine leaves megabytes, enough to apply the rest of the
        # log), so a filler file takes every block that is left.
        before = sorted(os.listdir(os.path.join(data, "db")))
        filler = os.path.join(mnt, "filler")
        fill(filler)
        H.log(f"    filler: {os.path.getsize(filler) // 1024} KiB; tmpfs: "
              f"{os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize // 1024} KiB free")
        rc, out = run_to_exit(args, wd, cfg, "featd-b2.log")
        lines = error_lines(out, "No space left on device")
        H.log(f"(b2) full at start: exit {rc}: {lines[:3]}")
        assert rc != 0, out[-3000:]
        assert lines, f"no line names the full disk:\n{out[-3000:]}"

        # (c) space freed: the same store opens and catches up exactly once
        os.unlink(filler)
        remount("size=512m")
        featd = H.start_featd(args, wd, cfg, logname="featd-c.log")
        from confluent_kafka import Consumer, TopicPartition
        oc = Consumer({"bootstrap.servers": bs, "group.id": "disk-wm", "enable.auto.commit": False})
        hw = {(EVENTS, p): oc.get_watermark_offsets(TopicPartition(EVENTS, p), timeout=10)[1]
              for p in range(PARTITIONS)}
        oc.close()

        H.wait_stored(args, cfg, hw, 120, "featd to catch up after space was freed", proc=featd, open_may_race=True)
        assert featd.stop() == 0, featd.tail()
        featd = None
        per_part, log_events = H.check_store_against_log(args, cfg, bs, (EVENTS,), EVENTS)
        assert set(range(sent)) <= set(log_events.values()), "produced events missing from the log"
        H.log(f"(c) after freeing space: {sum(per_part.values())} records in {len(per_part)} partitions, each "
              f"applied exactly once; history is the log; online equals a replay of history (store was "
              f"{len(before)} files when full)")

        # (a2) read-only at start with an existing store
        remount("ro")
        rc, out = run_to_exit(args, wd, cfg, "featd-a2.log")
        lines = error_lines(out, "Read-only file system")
        H.log(f"(a2) read-only, existing store: exit {rc}: {lines}")
        assert rc != 0, out
        assert len(lines) == 1, f"want one line naming the problem:\n{out}"
        remount("rw")
        H.check_store_against_log(args, cfg, bs, (EVENTS,), EVENTS)
        H.log("OK: read-only and full data_dir stop featd with a clear line; the store stays whole")
        ok = True
    finally:
        if featd and featd.alive():
            featd.kill9()
        broker.stop()
        if mounted:
            sh("umount", "-l", mnt)
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
