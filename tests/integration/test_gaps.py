#!/usr/bin/python3
"""Gap test: records the broker deleted before featd applied them are found,
logged and counted exactly, on featd-broker and on the embedded broker; an
oversize record is a dead letter and the records around it are applied.

Both brokers are librdkafka's mock cluster, which keeps at most ~5 MiB (or
100k message sets) per partition and drops the oldest beyond that.  The test
uses that cap to delete records featd has not applied yet:
  1. featd-broker, found at assignment: featd applies 100 records and stops;
     50 more and ~6 MiB of filler are produced, so the log now starts past
     featd's stored offset.  featd restarts: the gap is log start - 100,
     exactly, with an ERROR line naming the range; a second restart does not
     count it again (the stored offset moved past it).
  2. featd-broker, found in the stream: featd runs, its fetches are failed
     through the broker's control port while 30 records and the filler are
     produced; then fetches succeed, the consumer's position is out of range
     and librdkafka resets it to the log start.  The gap is log start -
     featd's offset before the stall.
  3. Embedded broker (in featd's process, its fault-injection port opened by
     kafka.embedded_control_file): the gap of case 2, counted exactly; then
     a 6 MB record is refused by the
     broker (its requests are limited to 2 MiB: a larger message set can
     make librdkafka 2.0.2's mock cluster lose it and the next one), the
     producer is told, and the records before and after it are applied; a
     1.5 MB record (over ingest.max_value_bytes = 1 MiB) is a dead letter
     `oversize` holding the first 65536 bytes of its value, and the record
     after it is applied.
Every check reads the broker's own watermarks for the expected numbers."""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

TOPIC = "gp_events"
FILLER = 60               # records of 100 KiB: 6 MiB, over the mock's 5 MiB per partition


def config(wd, bootstrap, embedded=False):
    kafka = (f"embedded = true\npartitions = 1\nembedded_control_file = {wd.file('embedded.control')}\n" if embedded else
             f"embedded = false\nbootstrap.servers = {bootstrap}\ngroup.id = featd-gaps\n")
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[admin]
listen = 127.0.0.1:0
[serve]
listen = 127.0.0.1:0
[kafka]
{kafka}session.timeout.ms = 6000
[drift]
enabled = false
[table user]
topic = {TOPIC}
feature.n = int64
feature.s = string
"""


def event(i, pad=0):
    body = {"key": f"e{i % 50}", "ts": int(time.time() * 1000), "features": {"n": i}}
    if pad:
        body["features"]["s"] = "x" * pad
    return json.dumps(body).encode()


def produce(bootstrap, records, **extra):
    """Each record in its own message set (flush after each), partition 0."""
    p = H.producer(bootstrap, **{"linger.ms": 0, "message.max.bytes": 20000000, **extra})
    for r in records:
        p.produce(TOPIC, value=r, partition=0)
        p.flush(30)
    assert p.flush(30) == 0


def watermarks(bootstrap):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{time.time()}"})
    try:
        return c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
    finally:
        c.close()


LABELS = f'topic="{TOPIC}",partition="0"'
STARTED = []   # every featd this test starts, killed at the end whatever failed


def start_featd(args, wd, cfg, logname="featd.log"):
    p = H.start_featd(args, wd, cfg, logname=logname)
    STARTED.append(p)
    return p


def next_offset(admin):
    return H.metric(admin, "featd_kafka_next_offset", LABELS)


def gaps(admin):
    g = H.metric(admin, "featd_ingest_gap_records_total", LABELS)
    assert g is not None, "featd_ingest_gap_records_total has no series for the partition"
    return g


def wait_applied(admin, hi, what):
    H.wait_for(lambda: next_offset(admin) == hi, 60, f"featd to apply up to offset {hi} ({what})")


def log_has(proc, text):
    with open(proc.logpath, errors="replace") as f:
        return text in f.read()


def case_assignment(args, wd, bs, cfg):
    feat = start_featd(args, wd, cfg)
    admin = H.featd_addrs(wd)["admin"]
    produce(bs, [event(i) for i in range(100)])
    wait_applied(admin, 100, "first 100")
    assert feat.stop() == 0
    os.remove(wd.file("data/featd.addr"))
    produce(bs, [event(100 + i) for i in range(50)] + [event(150 + i, pad=100 * 1024) for i in range(FILLER)])
    lo, hi = watermarks(bs)
    H.log(f"assignment case: the log now holds {lo}..{hi - 1}; featd stored 100")
    assert lo > 150, f"the filler did not push the log start past the unapplied records: {lo}"
    feat = start_featd(args, wd, cfg, logname="featd2.log")
    admin = H.featd_addrs(wd)["admin"]
    wait_applied(admin, hi, "after the gap")
    got = gaps(admin)
    assert got == lo - 100, f"gap counted {got}, the broker deleted {lo - 100} unapplied records"
    assert log_has(feat, f"gap: {TOPIC}[0] offsets 100..{lo - 1} ({lo - 100} records) were deleted from the log "
                         f"before featd applied them (found at assignment)"), feat.tail()
    import urllib.request
    st = json.loads(urllib.request.urlopen(f"http://{admin}/v1/status", timeout=5).read())
    assert st["ingest"]["gap_records"] == lo - 100, st["ingest"]
    assert [p["gap_records"] for p in st["partitions"] if p["topic"] == TOPIC] == [lo - 100], st["partitions"]
    grpc = H.featd_addrs(wd)["grpc"]
    ctl = [H.bins(args)["featctl"], "--addr", grpc, "status"]
    js = json.loads(subprocess.run(ctl + ["--json"], capture_output=True, check=True).stdout)
    assert js["ingest"]["gap_records"] == lo - 100 and js["partitions"][0]["gap_records"] == lo - 100, js
    human = subprocess.run(ctl, capture_output=True, check=True, text=True).stdout
    assert f"GAPS: {lo - 100} record(s)" in human and f"{TOPIC}[0]: {lo - 100}" in human, human
    assert feat.stop() == 0
    os.remove(wd.file("data/featd.addr"))
    # found once: the stored offset moved past the gap
    feat = start_featd(args, wd, cfg, logname="featd3.log")
    admin = H.featd_addrs(wd)["admin"]
    H.wait_for(lambda: H.metric(admin, "featd_ingest_assigned_partitions") == 1, 60, "assignment")
    wait_applied(admin, hi, "third start")
    assert gaps(admin) == 0, "the same gap was counted again after a restart"
    return feat, admin, hi


def case_stream(bs, ctl, feat, admin, hi0, gaps0=0):
    H.control(ctl, "errors Fetch NOT_LEADER_FOR_PARTITION 5000")
    produce(bs, [event(1000 + i) for i in range(30)] + [event(2000 + i, pad=100 * 1024) for i in range(FILLER)])
    lo, hi = watermarks(bs)
    H.log(f"stream case: featd held {hi0}; the log now holds {lo}..{hi - 1}")
    assert lo > hi0 + 30
    assert next_offset(admin) == hi0, "featd fetched while its fetches were failed"
    H.control(ctl, "clear Fetch")
    wait_applied(admin, hi, "after the stall")
    got = gaps(admin) - gaps0
    assert got == lo - hi0, f"gap counted {got}, the broker deleted {lo - hi0} unapplied records"
    assert log_has(feat, f"gap: {TOPIC}[0] offsets {hi0}..{lo - 1} ({lo - hi0} records) were deleted from the log "
                         f"before featd applied them (the consumer's position was out of range and was reset)"), \
        feat.tail()
    return hi


def case_embedded(args, wd):
    cfg = wd.file("embedded.ini")
    with open(cfg, "w") as f:
        f.write(config(wd, None, embedded=True))
    feat = start_featd(args, wd, cfg, logname="featd-embedded.log")
    admin = H.featd_addrs(wd)["admin"]
    bs = H.wait_for(lambda: open(wd.file("data/kafka.bootstrap")).read().strip(), 20, "kafka.bootstrap")
    ctl = H.wait_for(lambda: os.path.exists(wd.file("embedded.control")) and wd.file("embedded.control"), 20,
                     "the embedded broker's control port")
    produce(bs, [event(1)])
    wait_applied(admin, 1, "record A")
    # a gap in the stream, as on featd-broker: fetches fail while the
    # partition's 5 MiB cap deletes records featd has not applied
    hi = case_stream(bs, ctl, feat, admin, 1)
    H.log("embedded broker: gap found in the stream, counted exactly")
    g = gaps(admin)
    events = H.metric(admin, "featd_ingest_events_total", 'table="user"')
    oversize = H.metric(admin, "featd_dead_letters_total", 'reason="oversize"')  # the filler's strings
    # 6 MB: the embedded broker refuses the request (over its 2 MiB), the
    # client reports the record failed, and nothing else is lost
    failed = []
    p = H.producer(bs, **{"linger.ms": 0, "message.max.bytes": 20000000, "message.timeout.ms": 4000})
    p.produce(TOPIC, value=event(2, pad=6_000_000), partition=0,
              on_delivery=lambda err, msg: failed.append(err) if err else None)
    p.flush(30)
    assert len(failed) == 1, f"the embedded broker took a 6 MB record: {failed}"
    produce(bs, [event(3), event(4)])
    assert watermarks(bs)[1] == hi + 2
    wait_applied(admin, hi + 2, "records after the refused one")
    assert gaps(admin) == g
    assert H.metric(admin, "featd_ingest_events_total", 'table="user"') == events + 2
    # 1.5 MB, over ingest.max_value_bytes (1 MiB) and under the broker's
    # limit: a dead letter holding the value's first 64 KiB; its neighbours
    # are applied
    produce(bs, [event(5, pad=1_500_000), event(6)])
    wait_applied(admin, hi + 4, "records around the 1.5 MB one")
    assert gaps(admin) == g, "a record was lost"
    assert H.metric(admin, "featd_dead_letters_total", 'reason="oversize"') == oversize + 1
    assert H.metric(admin, "featd_ingest_events_total", 'table="user"') == events + 3
    assert feat.stop() == 0
    assert log_has(feat, "embedded broker: 0 record(s) produced to it were never applied"), feat.tail()
    dl = [r for r in H.inspect(args, cfg, "dead-letters") if r["kind"] == "dead_letter" and r["offset"] == hi + 2]
    assert len(dl) == 1 and dl[0]["reason"] == "oversize", dl
    assert len(dl[0]["value_hex"]) == 2 * 65536, len(dl[0]["value_hex"]) // 2
    assert bytes.fromhex(dl[0]["value_hex"]).startswith(b"{\"key\": \"e5\", \"ts\": "), dl[0]["value_hex"][:80]
    assert "truncated to its first 65536 bytes" in dl[0]["detail"], dl[0]["detail"]


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "gaps")
    ok = False
    broker = feat = None
    try:
        cfg = wd.file("featd.ini")
        ctl = wd.file("broker.control")
        bfile = wd.file("broker.bootstrap")
        broker = H.Proc([H.bins(args)["broker"], "--topic", TOPIC, "--partitions", "1", "--bootstrap-file", bfile,
                         "--control-file", ctl], wd.file("broker.log"))
        bs = H.wait_for(lambda: os.path.exists(bfile) and open(bfile).read().strip(), 20, "featd-broker")
        H.wait_for(lambda: os.path.exists(ctl) and open(ctl).read().strip(), 20, "control port")
        with open(cfg, "w") as f:
            f.write(config(wd, bs))
        feat, admin, hi = case_assignment(args, wd, bs, cfg)
        H.log("gap found at assignment: counted exactly, once")
        case_stream(bs, ctl, feat, admin, hi)
        assert feat.stop() == 0
        H.log("gap found in the stream: counted exactly")
        feat = None
        shutil.rmtree(wd.file("data"))
        case_embedded(args, wd)
        H.log("embedded broker: the 6 MB record refused, the 1.5 MB one a dead letter, nothing else lost")
        ok = True
    finally:
        for p in STARTED:
            if p.alive():
                p.kill9()
        if broker:
            broker.stop()
        wd.cleanup(ok)
    print("test_gaps: OK")


if __name__ == "__main__":
    main()
