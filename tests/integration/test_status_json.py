#!/usr/bin/python3
"""Status JSON: /v1/status and `featctl status --json` are one rendering
(proto/status_json.c) of one snapshot (serve/status.c), so on a quiet featd
they have the same keys and the same values.

featd runs on its embedded broker with two tables; ten good events and two
dead letters (undecodable, wrong_type) are produced and nothing else, then
the test waits until the counters stop moving.  It reads /v1/status,
then `featctl status --json`, then /v1/status again, parses each with
Python's json module and checks:
  - the three documents have exactly the same key paths, and those are the
    key set docs/OPERATIONS.md lists (every key, the optional "cache" too);
  - every value featctl printed equals /v1/status's, except the two that
    move with the clock (uptime_s, tables[].freshness_ms) and store_bytes
    (RocksDB may flush in between), which lie between the two /v1/status
    readings;
  - the values are the ones produced: events per table, dead letters by
    reason, the partitions' offsets."""
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

# docs/OPERATIONS.md, "Status": the key paths of /v1/status and featctl status --json
# ([] = every element of a list, {} = a reason name)
KEYS = {
    "version", "uptime_s", "ready", "ingest", "ingest.events", "ingest.labels", "ingest.dead_letters",
    "ingest.skipped", "ingest.batches", "ingest.gap_records", "ingest.failed", "ingest.dead_letters_by_reason",
    "ingest.dead_letters_by_reason.{}", "tables", "tables[].name", "tables[].events",
    "tables[].newest_event_time_ms", "tables[].freshness_ms", "partitions", "partitions[].topic",
    "partitions[].partition", "partitions[].next_offset", "partitions[].high_watermark", "partitions[].lag",
    "partitions[].gap_records", "cache", "cache.hits", "cache.misses", "cache.bypasses", "cache.hit_ratio",
    "cache.entries", "cache.bytes", "cache.max_bytes", "store_bytes",
}
MOVING = {"uptime_s", "freshness_ms", "store_bytes"}


def config(wd):
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[admin]
listen = 127.0.0.1:0
[serve]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 2
[drift]
enabled = false
[table user]
topic = st_user
feature.clicks = int64
feature.country = string
[table item]
topic = st_item
feature.price = double
"""


def paths(doc, prefix=""):
    """The document's key paths: "a.b", "list[].key", "reasons.{}"."""
    out = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            p = (prefix + "." if prefix else "") + ("{}" if prefix.endswith("by_reason") else k)
            out.add(p)
            out |= paths(v, p)
    elif isinstance(doc, list):
        for v in doc:
            out |= paths(v, prefix + "[]")
    return out


def compare(before, ctl, after, where="$"):
    """ctl equals before and after, or lies between them where the value moves."""
    assert type(ctl) is type(before) is type(after), f"{where}: types {before!r} {ctl!r} {after!r}"
    if isinstance(ctl, dict):
        assert ctl.keys() == before.keys() == after.keys(), f"{where}: keys {sorted(before)} {sorted(ctl)}"
        for k in ctl:
            compare(before[k], ctl[k], after[k], f"{where}.{k}")
    elif isinstance(ctl, list):
        assert len(ctl) == len(before) == len(after), f"{where}: lengths"
        for i, (b, c, a) in enumerate(zip(before, ctl, after)):
            compare(b, c, a, f"{where}[{i}]")
    elif where.rsplit(".", 1)[-1] in MOVING:
        assert min(before, after) <= ctl <= max(before, after), f"{where}: {ctl} not within {before}..{after}"
    else:
        assert before == ctl == after, f"{where}: /v1/status {before!r}, featctl {ctl!r}, /v1/status {after!r}"


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "status-json")
    cfg = wd.file("featd.ini")
    with open(cfg, "w") as f:
        f.write(config(wd))
    ok = False
    feat = H.start_featd(args, wd, cfg)
    try:
        addrs = H.featd_addrs(wd)

        def status():
            return json.loads(urllib.request.urlopen(f"http://{addrs['admin']}/v1/status", timeout=5).read())

        def featctl():
            r = subprocess.run([H.bins(args)["featctl"], "--addr", addrs["grpc"], "status", "--json"],
                               capture_output=True, text=True, timeout=20)
            assert r.returncode == 0, r
            return json.loads(r.stdout)

        H.wait_for(lambda: status()["ready"], 60, "featd ready")
        bs = H.wait_for(lambda: open(wd.file("data/kafka.bootstrap")).read().strip(), 20, "kafka.bootstrap")
        now = int(time.time() * 1000)
        p = H.producer(bs)
        for i in range(7):
            p.produce("st_user", value=json.dumps({"key": f"u{i}", "ts": now - i, "features": {
                "clicks": i, "country": "東京"}}).encode())
        for i in range(3):
            p.produce("st_item", value=json.dumps({"key": f"i{i}", "ts": now - 10 * i,
                                                   "features": {"price": 1.5}}).encode())
        p.produce("st_user", value=b"not json")
        p.produce("st_user", value=json.dumps({"key": "u9", "ts": now, "features": {"clicks": "x"}}).encode())
        assert p.flush(30) == 0
        want_dl = {"undecodable": 1, "wrong_type": 1}
        H.wait_for(lambda: status()["ingest"]["events"] == 10 and status()["ingest"]["dead_letters"] == 2, 60,
                   "every event applied or dead-lettered")

        def quiet():  # the counters no longer move: no commit or lag update is still on its way
            a = status()
            time.sleep(1.5)
            b = status()
            def strip(d):
                return {k: v for k, v in d.items() if k not in ("uptime_s", "tables", "store_bytes")}
            return strip(a) == strip(b) and all(p["lag"] == 0 for p in b["partitions"])
        H.wait_for(quiet, 60, "a quiet featd")

        before, ctl, after = status(), featctl(), status()
        for name, doc in (("/v1/status", before), ("featctl status --json", ctl), ("/v1/status", after)):
            got = paths(doc)
            assert got == KEYS, f"{name}: keys not documented {sorted(got - KEYS)}, missing {sorted(KEYS - got)}"
        compare(before, ctl, after)
        assert ctl["ready"] is True and ctl["ingest"]["failed"] is False
        assert ctl["ingest"]["events"] == 10 and ctl["ingest"]["dead_letters"] == 2, ctl["ingest"]
        assert ctl["ingest"]["dead_letters_by_reason"] == want_dl, ctl["ingest"]
        assert {t["name"]: t["events"] for t in ctl["tables"]} == {"user": 7, "item": 3}, ctl["tables"]
        assert {t["name"]: t["newest_event_time_ms"] for t in ctl["tables"]} == {"user": now, "item": now}
        assert sorted((q["topic"], q["partition"]) for q in ctl["partitions"]) == \
            [("st_item", 0), ("st_item", 1), ("st_user", 0), ("st_user", 1)], ctl["partitions"]
        assert sum(q["next_offset"] for q in ctl["partitions"] if q["topic"] == "st_user") == 9, ctl["partitions"]
        H.log("/v1/status and featctl status --json: the same " + str(len(KEYS)) + " keys and the same values")
        assert feat.stop() == 0, feat.tail()
        ok = True
    finally:
        if feat.alive():
            feat.kill9()
        if not ok:
            H.log(feat.tail())
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
