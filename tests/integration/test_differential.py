#!/usr/bin/python3
"""Differential test: featd against an independent Python reference.

A seeded (printed, reproducible with --seed) adversarial event log for two
tables is produced by a real Kafka client (confluent-kafka) to featd-broker,
several partitions per topic, keyed so that entities spread over partitions.
From the broker's delivery reports (partition, offset of every record) this
script computes, on its own and from the documented rules only, what featd
must hold, and compares featd against it through its public interfaces:

  - GetOnlineFeatures for every entity the log names (and some it never
    names), every feature: value, status (PRESENT / EXPIRED / NOT_FOUND) and
    event time; half way through the log (against the reference of that
    half) and twice at the end (the second time through serve's cache, which
    the second half had to invalidate, with the features named in reverse);
  - GetHistoricalFeatures at many timestamps per entity (before, at, just
    before/after and between event times, at and just past the TTL);
  - featd_dead_letters_total{reason=...} and featd_ingest_events_total{table=...}
    from /metrics;
  - per record (diagnosis): featd-inspect's history rows and dead letters,
    so that each mismatch names the generator case that produced it.

The rules the reference encodes (quoted from the docs where they exist):

  README "Guarantees": "Out-of-order events never overwrite newer values
  online (per feature, greater event time wins; equal times: higher offset,
  then partition) and always land in history."  store/store.h: "per feature,
  the value with the greater (event time, source offset, source partition)
  wins".
  README "Guarantees": "Point in time. ... latest value with ts <= t within
  TTL"; store/store.h feat_pit_read: "the latest value with ts <= as_of and
  as_of - ts <= TTL -> PRESENT.  With report_expired [GetHistoricalFeatures],
  a feature whose latest value at or before as_of is older than the TTL reads
  EXPIRED"; online: "EXPIRED (now - ts > TTL; value kept)".
  proto FeatureValue: "value unset unless status is PRESENT (EXPIRED keeps the
  old value)"; event_time_ms "0 when NOT_FOUND".
  README "Data in": "table/model may be left out when the topic feeds one;
  key may be left out when the Kafka message key is set"; bad input "goes to
  the dead_letters column family ... with ... a reason".  ingest/decode.h
  names the reasons; an integer "key" is kept as its literal text and
  integers widen to double (decode.c).  Events are JSON (RFC 8259): a member
  name written with \\u escapes is the same member.

Rules that came with the outside check's findings (issue 16; their cases are
marked PENDING, and code older than that change fails them):
  - a present-but-empty or non-string "key" (or entity-named field) -> dead
    letter empty_key (not a fall-back to the Kafka message key);
  - a present-but-empty or non-string "table" -> unknown_table;
  - invalid UTF-8 anywhere in key / table / feature name / string value,
    including the Kafka message key when it is used as the entity key, and a
    JSON \\ud800-style lone surrogate escape -> invalid_utf8;
  - absent fields keep their fall-backs (Kafka message key; the topic's single
    table);
  - a value over ingest.max_value_bytes -> oversize, and every normal record
    around it is applied.

featd-broker keeps only the newest 5 MiB of each partition (librdkafka's mock
cluster), so the log goes out in chunks featd applies before the next.

Pass condition: zero mismatches.  Every mismatch is printed (up to --show)
with its case, partition/offset and the PENDING marker where it applies.
--long (ctest -L long, FEATD_LONG=1) produces a much longer log."""
import bisect
import collections
import datetime
import json
import os
import random
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PARTITIONS = 5
MAX_VALUE = 64 * 1024          # --set ingest.max_value_bytes
MAX_STRING = 64 * 1024         # --set ingest.max_string_bytes (so a string just under MAX_VALUE is legal)
MAX_KEY = 512                  # ingest.max_key_bytes default
TTL_MS = 3600_000              # table user: ttl = 1h; table item: no TTL
# Event times: fresh ones in [now - FRESH_SPAN, now - 10 s], ones older than the
# TTL in [now - 6 h, now - OLD_MIN].  Nothing in between, so an online read's
# status does not depend on how long the run takes (checked: < MAX_RUN_MS).
FRESH_SPAN = 30 * 60_000
OLD_MIN = 70 * 60_000
MAX_RUN_MS = 25 * 60_000
CHUNK_BYTES = 3 << 20         # produced at a time (featd-broker keeps 5 MiB a partition)
OVERSIZE_ROUNDS = 12          # adversarial rounds that include the oversize burst (big records)

SCHEMA = {
    "user": {"clicks": "int64", "ctr": "double", "premium": "bool", "country": "string"},
    "item": {"price": "double", "stock": "int64", "active": "bool", "title": "string"},
}
TOPIC = {"user": "user_events", "item": "item_events"}
ENTITY = {"user": "user_id", "item": "item_id"}
TTL = {"user": TTL_MS, "item": 0}

# Reasons whose rule is being changed (see the module docstring).
PENDING_REASONS = {"empty_key", "invalid_utf8"}


def config(wd, bootstrap):
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 1s
[serve]
listen = 127.0.0.1:0
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = false
bootstrap.servers = {bootstrap}
group.id = difftest
session.timeout.ms = 6000
partitions = {PARTITIONS}
[table user]
entity = {ENTITY["user"]}
topic = {TOPIC["user"]}
ttl = 1h
feature.clicks = int64
feature.ctr = double
feature.premium = bool
feature.country = string
[table item]
entity = {ENTITY["item"]}
topic = {TOPIC["item"]}
feature.price = double
feature.stock = int64
feature.active = bool
feature.title = string
"""


# ---- protobuf, by hand (for bytes the generated classes refuse to build) --------------

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_ld(field, b):
    return varint(field << 3 | 2) + varint(len(b)) + b


def pb_value(kind, v):
    """featd.v1.Value with one member set: kind in double/int64/bool/string/none."""
    if kind == "double":
        return b"\x09" + struct.pack("<d", v)
    if kind == "int64":
        return b"\x10" + varint(v)
    if kind == "bool":
        return b"\x18" + varint(1 if v else 0)
    if kind == "string":
        return pb_ld(4, v if isinstance(v, bytes) else v.encode())
    return b""


def pb_event(table=None, key=None, ts=None, feats=()):
    """A FeatureEvent; table/key/names may be bytes (any bytes at all);
    feats: [(name, kind, value)].  None = field absent."""
    def b(s):
        return s if isinstance(s, bytes) else s.encode()
    out = b""
    if table is not None:
        out += pb_ld(1, b(table))
    if key is not None:
        out += pb_ld(2, b(key))
    if ts is not None:
        out += b"\x18" + varint(ts)
    for name, kind, v in feats:
        out += pb_ld(4, pb_ld(1, b(name)) + pb_ld(2, pb_value(kind, v)))
    return out


# ---- the log --------------------------------------------------------------------------

class Msg:
    __slots__ = ("topic", "key", "value", "headers", "partition", "case", "pending", "expect", "pos", "note")

    def __init__(self, topic, key, value, case, expect, headers=None, partition=None, pending=False, note=""):
        self.topic, self.key, self.value, self.headers, self.partition = topic, key, value, headers, partition
        self.case, self.expect, self.pending, self.note = case, expect, pending, note
        self.pos = None  # (partition, offset) once delivered

    def where(self):
        return f"{self.topic}[{self.pos[0]}]@{self.pos[1]}" if self.pos else f"{self.topic}[?]"


def ev(table, key, ts, feats):
    """Expected outcome: an applied event.  feats: {name: value} (typed as the schema)."""
    return ("event", table, key, ts, dict(feats))


def dead(reason):
    return ("dead", reason)


def rfc3339(ts):
    """ts as RFC 3339 with milliseconds: in UTC ("Z" or "+00:00") or at another offset."""
    off = [0, 0, 330, -480, 845][ts % 5]   # minutes east of UTC (+05:30, -08:00, +14:05)
    d = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone(datetime.timedelta(minutes=off)))
    s = d.isoformat(timespec="milliseconds")
    return s.replace("+00:00", "Z") if ts % 5 == 1 else s


def raw_json(obj, raws, ensure_ascii=True):
    """json.dumps(obj) with each placeholder string "@@RAWn@@" replaced by the
    raw bytes raws[n] (which need not be UTF-8 or valid escapes)."""
    out = json.dumps(obj, ensure_ascii=ensure_ascii).encode()
    for i, r in enumerate(raws):
        ph = f"@@RAW{i}@@".encode()
        assert ph in out, ph
        out = out.replace(ph, r)
    return out


class Gen:
    def __init__(self, rnd, now, n_events, adversarial_rounds, pb2):
        self.rnd, self.now, self.pb2 = rnd, now, pb2
        self.n_events, self.rounds = n_events, adversarial_rounds
        self.msgs = []
        self.entities = {"user": [f"u{i}" for i in range(30)] + ["Zürich-東京-1", "😀-u"],
                         "item": [f"i{i}" for i in range(15)] + ["item/with/slashes", "i-" + "x" * 300]}
        self.last = {}          # (table, entity) -> [ts...] applied so far
        self.seq = 0

    # -- values
    def value(self, ftype):
        r = self.rnd
        if ftype == "int64":
            return r.choice([r.randint(-10**12, 10**12), r.randint(-10**12, 10**12), 0, -1, 2**63 - 1, -2**63])
        if ftype == "double":
            return r.choice([r.uniform(-1e6, 1e6), r.random(), -0.0, 0.0, 1e-300, 5e-324, 2.2250738585072014e-308,
                             1.7976931348623157e308, 123456789.125, 0.1])
        if ftype == "bool":
            return r.random() < 0.5
        return r.choice(["DE", "FR", "", "Zürich", "東京", 'a"b\\c', "tab\tnl\n", "😀", "\u2028", "x" * 200,
                         "nul-free \u00ff"])

    def fresh_ts(self):
        return self.now - 10_000 - self.rnd.randrange(FRESH_SPAN - 10_000)

    def old_ts(self):
        return self.now - OLD_MIN - self.rnd.randrange(6 * 3600_000 - OLD_MIN)

    def next_id(self):
        self.seq += 1
        return self.seq

    def add(self, *a, **kw):
        m = Msg(*a, **kw)
        self.msgs.append(m)
        return m

    # -- one well-formed event in one of the encodings
    def encode_event(self, table, key, ts, feats, kafka_key="same", partition=None, case="normal"):
        """Adds a valid event (JSON or protobuf, many shapes).  kafka_key:
        "same" = the entity key, "other" = an unrelated routing key (the
        entity then lands on any partition), "none"."""
        r = self.rnd
        topic = TOPIC[table]
        if kafka_key == "same":
            mkey = key.encode()
        elif kafka_key == "other":
            mkey = f"route-{r.randrange(10**6)}".encode()
        else:
            mkey = None
        headers = None
        if r.random() < 0.45:
            # protobuf: proto3 leaves "" fields off the wire, i.e. absent
            e = self.pb2.FeatureEvent(table=table if r.random() < 0.5 else "", ts=ts)
            body_key = mkey != key.encode() or r.random() < 0.5
            if body_key:
                e.key = key
            for f, v in feats.items():
                t = SCHEMA[table][f]
                setattr(e.features[f], t + "_value", v)
            val = e.SerializeToString()
            if r.random() < 0.5:
                headers = [("content-type", r.choice([b"application/x-protobuf", b"application/protobuf",
                                                      b"application/vnd.google.protobuf"]))]
        else:
            obj = {}
            form = r.random()
            if form < 0.4:
                obj["table"] = table
            if mkey != key.encode() or r.random() < 0.6:
                obj["key" if r.random() < 0.5 else ENTITY[table]] = key
            obj["ts"] = rfc3339(ts) if r.random() < 0.25 else ts
            # some doubles written with more digits than the shortest form
            # (17, 25, 40 significant digits): any literal that reads back
            # to the same double in Python must read back to it in featd
            fe, lits = dict(feats), []
            for f, v in feats.items():
                if SCHEMA[table][f] == "double" and r.random() < 0.3:
                    lit = r.choice(["%.17g", "%.25g", "%.17e", "%.40g"]) % v
                    if struct.pack("<d", float(lit)) == struct.pack("<d", v):
                        fe[f] = f"@@NUM{len(lits)}@@"
                        lits.append(lit.encode())
            obj["features"] = fe
            items = list(obj.items())
            r.shuffle(items)
            val = json.dumps(dict(items), ensure_ascii=r.random() < 0.5,
                             indent=r.choice([None, None, 1])).encode()
            for i, lit in enumerate(lits):
                val = val.replace(b'"@@NUM%d@@"' % i, lit)
            if r.random() < 0.3:
                headers = [("content-type", r.choice([b"application/json", b"application/json; charset=utf-8"]))]
        self.last.setdefault((table, key), []).append(ts)
        return self.add(topic, mkey, val, case, ev(table, key, ts, feats), headers=headers, partition=partition)

    def normal(self):
        r = self.rnd
        table = "user" if r.random() < 0.7 else "item"
        key = r.choice(self.entities[table])
        prev = self.last.get((table, key))
        x = r.random()
        if x < 0.08 and prev:
            ts = max(prev) - r.randrange(1, 20 * 60_000)               # late: older than what came before
            ts = max(ts, self.now - FRESH_SPAN)
            case = "late"
        elif x < 0.14 and prev:
            ts = r.choice(prev)                                           # equal event time
            case = "equal_ts"
        elif x < 0.18:
            ts = self.old_ts()                                            # older than the user TTL
            case = "older_than_ttl"
        else:
            ts = self.fresh_ts()
            case = "normal"
        names = list(SCHEMA[table])
        chosen = r.sample(names, r.randint(1, len(names)))
        feats = {f: self.value(SCHEMA[table][f]) for f in chosen}
        kk = r.choices(["same", "other", "none"], [0.75, 0.2, 0.05])[0]
        m = self.encode_event(table, key, ts, feats, kafka_key=kk, case=case)
        if r.random() < 0.03:                                             # exact duplicate
            self.add(m.topic, m.key, m.value, "duplicate", m.expect, headers=m.headers, partition=m.partition)
        if r.random() < 0.03:
            # the same entity, feature and event time on two partitions: offset, then partition decides
            f = r.choice(names)
            p1, p2 = r.sample(range(PARTITIONS), 2)
            for p in (p1, p2):
                self.encode_event(table, key, ts, {f: self.value(SCHEMA[table][f])}, kafka_key="other",
                                  partition=p, case="equal_ts_cross_partition")

    # -- adversarial cases: each returns after adding its message(s)
    def adversarial(self):
        r = self.rnd
        now = self.now
        n = self.next_id()

        def dl(name):  # an entity key used only by a record that must not be applied
            return f"dl-{name}-{n}"

        def jdump(obj):
            return json.dumps(obj).encode()

        def add_dead(case, topic, key, value, reason, pending=False, headers=None, partition=None):
            self.add(topic, key, value, case, dead(reason), headers=headers, partition=partition, pending=pending)

        ts = self.fresh_ts()
        U, I = TOPIC["user"], TOPIC["item"]

        # ---- keys: absent, empty, non-string
        k = dl("key-empty-kafka-key")
        add_dead("key_empty_with_kafka_key", U, k.encode(), jdump({"key": "", "ts": ts, "features": {"clicks": 1}}),
                 "empty_key", pending=True)
        add_dead("key_empty_no_kafka_key", U, None, jdump({"key": "", "ts": ts, "features": {"clicks": 1}}),
                 "empty_key", pending=True)
        k = dl("entity-field-empty")
        add_dead("entity_field_empty_with_kafka_key", U, k.encode(),
                 jdump({"user_id": "", "ts": ts, "features": {"clicks": 2}}), "empty_key", pending=True)
        k = f"kafka-key-only-{n}"
        self.add(U, k.encode(), jdump({"ts": ts, "features": {"clicks": 3}}), "key_absent_kafka_key",
                 ev("user", k, ts, {"clicks": 3}))
        add_dead("key_absent_no_kafka_key", U, None, jdump({"ts": ts, "features": {"clicks": 4}}), "missing_key")
        k = f"{900000 + n}"
        self.add(U, dl("numeric-key-route").encode(), jdump({"key": int(k), "ts": ts, "features": {"clicks": 5}}),
                 "key_integer", ev("user", k, ts, {"clicks": 5}))
        # present but not a string (an integer key is kept as its text, above)
        for bad in (1.5, True, ["u1"], {"k": "u1"}, None):
            add_dead("key_non_string", U, dl("key-nonstring").encode(),
                     jdump({"key": bad, "ts": ts, "features": {"clicks": 6}}), "empty_key", pending=True)
        add_dead("key_with_nul", U, None, jdump({"key": "u\u00001", "ts": ts, "features": {"clicks": 7}}), "bad_key")
        k = f"max-key-{n}-"
        k += "k" * (MAX_KEY - len(k))
        self.add(U, dl("max-key-route").encode(), jdump({"key": k, "ts": ts, "features": {"clicks": 27}}),
                 "key_at_max_key_bytes", ev("user", k, ts, {"clicks": 27}))
        add_dead("key_over_max_key_bytes", U, dl("max-key-route").encode(),
                 jdump({"key": k + "k", "ts": ts, "features": {"clicks": 28}}), "oversize")
        add_dead("kafka_key_oversize", U, ("K" * (MAX_KEY + 1)).encode(),
                 jdump({"ts": ts, "features": {"clicks": 8}}), "oversize")

        # ---- tables: absent, empty, non-string, wrong
        k = f"table-absent-{n}"
        self.add(I, k.encode(), jdump({"ts": ts, "features": {"stock": 9}}), "table_absent",
                 ev("item", k, ts, {"stock": 9}))
        add_dead("table_empty", U, dl("table-empty").encode(),
                 jdump({"table": "", "ts": ts, "features": {"clicks": 10}}), "unknown_table", pending=True)
        add_dead("table_empty_with_key", U, None,
                 jdump({"table": "", "key": dl("table-empty-2"), "ts": ts, "features": {"clicks": 10}}),
                 "unknown_table", pending=True)
        for bad in (5, True, ["user"], {"name": "user"}):
            add_dead("table_non_string", U, dl("table-nonstring").encode(),
                     jdump({"table": bad, "ts": ts, "features": {"clicks": 11}}), "unknown_table", pending=True)
        add_dead("table_other_topic", U, dl("table-other-topic").encode(),
                 jdump({"table": "item", "ts": ts, "features": {"stock": 12}}), "unknown_table")
        add_dead("table_unknown", I, dl("table-unknown").encode(),
                 jdump({"table": "nope", "ts": ts, "features": {"stock": 12}}), "unknown_table")
        add_dead("model_on_feature_topic", I, dl("model-field").encode(),
                 jdump({"model": "churn", "ts": ts, "features": {"stock": 12}}), "unknown_table")

        # ---- invalid UTF-8 (raw bytes in JSON, lone surrogate escapes, protobuf, Kafka key)
        bad_bytes = r.choice([b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe6\x9d", b"\xf4\x90\x80\x80"])
        kk = dl("utf8").encode()
        add_dead("utf8_json_key", U, kk, raw_json({"key": "@@RAW0@@", "ts": ts, "features": {"clicks": 13}},
                                                   [b"u" + bad_bytes + b"1"]), "invalid_utf8", pending=True)
        add_dead("utf8_json_table", U, kk, raw_json({"table": "@@RAW0@@", "ts": ts, "features": {"clicks": 13}},
                                                     [b"us" + bad_bytes + b"er"]), "invalid_utf8", pending=True)
        add_dead("utf8_json_feature_name", U, kk,
                 raw_json({"ts": ts, "features": {"@@RAW0@@": 13}}, [b"cl" + bad_bytes]), "invalid_utf8",
                 pending=True)
        add_dead("utf8_json_string_value", U, kk,
                 raw_json({"ts": ts, "features": {"country": "@@RAW0@@"}}, [b"D" + bad_bytes + b"E"]),
                 "invalid_utf8", pending=True)
        add_dead("utf8_json_lone_surrogate_value", U, kk,
                 raw_json({"ts": ts, "features": {"country": "@@RAW0@@"}}, [rb"x\ud800y"]), "invalid_utf8",
                 pending=True)
        add_dead("utf8_json_lone_surrogate_key", U, None,
                 raw_json({"key": "@@RAW0@@", "ts": ts, "features": {"clicks": 14}}, [rb"\udc00k"]),
                 "invalid_utf8", pending=True)
        add_dead("utf8_json_lone_surrogate_feature_name", U, kk,
                 raw_json({"ts": ts, "features": {"@@RAW0@@": 14}}, [rb"clicks\ud800"]), "invalid_utf8",
                 pending=True)
        add_dead("utf8_kafka_key_as_entity", U, b"k" + bad_bytes,
                 jdump({"ts": ts, "features": {"clicks": 15}}), "invalid_utf8", pending=True)
        add_dead("utf8_kafka_key_as_entity_pb", I, b"k" + bad_bytes,
                 pb_event(ts=ts, feats=[("stock", "int64", 15)]), "invalid_utf8", pending=True)
        k = f"utf8-kafka-key-unused-{n}"
        self.add(U, b"k" + bad_bytes, jdump({"key": k, "ts": ts, "features": {"clicks": 16}}),
                 "utf8_kafka_key_not_used", ev("user", k, ts, {"clicks": 16}))
        add_dead("utf8_pb_key", I, kk, pb_event(key=b"i" + bad_bytes, ts=ts, feats=[("stock", "int64", 17)]),
                 "invalid_utf8", pending=True)
        add_dead("utf8_pb_table", I, kk, pb_event(table=b"it" + bad_bytes, ts=ts, feats=[("stock", "int64", 17)]),
                 "invalid_utf8", pending=True)
        add_dead("utf8_pb_feature_name", I, kk, pb_event(ts=ts, feats=[(b"st" + bad_bytes, "int64", 17)]),
                 "invalid_utf8", pending=True)
        add_dead("utf8_pb_string_value", I, kk,
                 pb_event(ts=ts, feats=[("title", "string", b"t" + bad_bytes)]), "invalid_utf8", pending=True,
                 headers=[("content-type", b"application/x-protobuf")])

        if n <= OVERSIZE_ROUNDS:
            self.oversize_burst(n, dl)

        # ---- duplicates (exactly the same record twice), JSON and protobuf
        k = f"dup-{n}"
        body = jdump({"key": k, "ts": ts, "features": {"clicks": 18, "country": "dup"}})
        for _ in range(2):
            self.add(U, k.encode(), body, "duplicate_json", ev("user", k, ts, {"clicks": 18, "country": "dup"}))
        body = pb_event(key=k, ts=ts - 1, feats=[("ctr", "double", 0.5)])
        for _ in range(2):
            self.add(U, k.encode(), body, "duplicate_pb", ev("user", k, ts - 1, {"ctr": 0.5}))

        # ---- late events, per feature, and events older than the TTL
        k = f"late-{n}"
        for t, v in ((ts, 1), (ts - 5000, 2), (ts - 1, 3), (ts, 4), (ts - 7000, 5)):
            self.add(U, k.encode(), jdump({"ts": t, "features": {"clicks": v, "ctr": v / 2}}), "late_per_feature",
                     ev("user", k, t, {"clicks": v, "ctr": v / 2}))
        self.add(U, k.encode(), jdump({"ts": ts - 9000, "features": {"premium": True}}), "late_new_feature",
                 ev("user", k, ts - 9000, {"premium": True}))
        k = f"expired-{n}"
        to = self.old_ts()
        self.add(U, k.encode(), jdump({"ts": to, "features": {"clicks": 19, "country": "old"}}), "older_than_ttl_only",
                 ev("user", k, to, {"clicks": 19, "country": "old"}))
        self.add(U, k.encode(), jdump({"ts": to - 60_000, "features": {"ctr": 0.25}}), "older_than_ttl_only",
                 ev("user", k, to - 60_000, {"ctr": 0.25}))
        self.add(U, k.encode(), jdump({"ts": ts, "features": {"premium": False}}), "older_than_ttl_mixed",
                 ev("user", k, ts, {"premium": False}))
        to2 = self.old_ts()
        self.add(U, k.encode(), jdump({"ts": to2, "features": {"premium": True}}), "older_than_ttl_late",
                 ev("user", k, to2, {"premium": True}))
        k = f"old-item-{n}"
        self.add(I, k.encode(), jdump({"ts": to, "features": {"price": 1.5}}), "older_than_ttl_no_ttl_table",
                 ev("item", k, to, {"price": 1.5}))

        # ---- NaN / Inf
        for v in (float("nan"), float("inf"), float("-inf")):
            add_dead("non_finite_pb", U, dl("nonfinite").encode(),
                     pb_event(ts=ts, feats=[("ctr", "double", v)]), "non_finite")
        for lit in (b"1e999", b"-1e999"):
            add_dead("non_finite_json_overflow", U, dl("nonfinite").encode(),
                     b'{"ts": %d, "features": {"ctr": %s}}' % (ts, lit), "non_finite")
        add_dead("nan_literal_json", U, dl("nan-literal").encode(),
                 json.dumps({"ts": ts, "features": {"ctr": float("nan")}}).encode(), "undecodable")

        # ---- wrong types, accepted widening, int64 limits
        for f, bad in (("clicks", 1.5), ("clicks", "3"), ("clicks", 2**63), ("clicks", -2**63 - 1), ("clicks", True),
                       ("premium", 1), ("premium", "true"), ("country", 5), ("country", False), ("ctr", "1.0"),
                       ("ctr", None), ("ctr", {}), ("ctr", [1.0])):
            add_dead("wrong_type_json", U, dl("wrongtype").encode(), jdump({"ts": ts, "features": {f: bad}}),
                     "wrong_type")
        for f, kind, v in (("stock", "double", 1.0), ("title", "int64", 5), ("active", "string", "true"),
                           ("price", "bool", True), ("price", "none", None)):
            add_dead("wrong_type_pb", I, dl("wrongtype-pb").encode(), pb_event(ts=ts, feats=[(f, kind, v)]),
                     "wrong_type")
        k = f"widen-{n}"
        self.add(U, k.encode(), jdump({"ts": ts, "features": {"ctr": 3, "clicks": 2**63 - 1}}),
                 "int_widens_to_double", ev("user", k, ts, {"ctr": 3.0, "clicks": 2**63 - 1}))
        self.add(I, k.encode(), pb_event(ts=ts, feats=[("price", "double", -7.0), ("stock", "int64", -2**63)]),
                 "int64_min_pb", ev("item", k, ts, {"price": -7.0, "stock": -2**63}))

        # ---- unknown / missing / duplicate features
        add_dead("unknown_feature", U, dl("unknown-feature").encode(),
                 jdump({"ts": ts, "features": {"nope": 1}}), "unknown_feature")
        add_dead("unknown_feature_with_known", U, dl("unknown-feature").encode(),
                 jdump({"ts": ts, "features": {"clicks": 1, "nope": 1}}), "unknown_feature")
        add_dead("feature_of_other_table", U, dl("unknown-feature").encode(),
                 jdump({"ts": ts, "features": {"price": 1.0}}), "unknown_feature")
        add_dead("unknown_feature_pb", I, dl("unknown-feature").encode(),
                 pb_event(ts=ts, feats=[("clicks", "int64", 1)]), "unknown_feature")
        add_dead("no_features", U, dl("no-features").encode(), jdump({"ts": ts, "features": {}}), "no_features")
        add_dead("features_absent", U, dl("no-features").encode(), jdump({"ts": ts}), "no_features")
        add_dead("duplicate_feature", U, dl("dup-feature").encode(),
                 b'{"ts": %d, "features": {"clicks": 1, "clicks": 2}}' % ts, "duplicate_feature")

        # ---- timestamps
        add_dead("ts_absent", U, dl("ts").encode(), jdump({"features": {"clicks": 1}}), "missing_timestamp")
        add_dead("ts_null", U, dl("ts").encode(), jdump({"ts": None, "features": {"clicks": 1}}), "missing_timestamp")
        add_dead("ts_absent_pb", I, dl("ts").encode(), pb_event(feats=[("stock", "int64", 1)]), "missing_timestamp")
        add_dead("ts_far_future", U, dl("ts").encode(), jdump({"ts": now + 10 * 86400_000, "features": {"clicks": 1}}),
                 "bad_timestamp")
        add_dead("ts_not_rfc3339", U, dl("ts").encode(), jdump({"ts": "yesterday", "features": {"clicks": 1}}),
                 "bad_timestamp")
        add_dead("ts_fraction", U, dl("ts").encode(), jdump({"ts": ts + 0.5, "features": {"clicks": 1}}),
                 "bad_timestamp")
        for old in (1000, -5, now - 3651 * 86400_000):   # ingest.max_age is 3650d
            add_dead("ts_older_than_max_age", U, dl("ts").encode(), jdump({"ts": old, "features": {"clicks": 1}}),
                     "bad_timestamp")
        k = f"rfc3339-{n}"
        self.add(U, k.encode(), jdump({"ts": rfc3339(ts), "features": {"clicks": 20}}), "ts_rfc3339",
                 ev("user", k, ts, {"clicks": 20}))

        # ---- JSON member names written with escapes are the same members (RFC 8259, 7 and 8.3)
        k = f"escaped-key-member-{n}"
        self.add(U, dl("escaped-key-route").encode(),
                 b'{"\\u006bey": "%s", "ts": %d, "features": {"clicks": 21}}' % (k.encode(), ts),
                 "json_escaped_member_key", ev("user", k, ts, {"clicks": 21}))
        k = f"escaped-entity-member-{n}"
        self.add(U, dl("escaped-entity-route").encode(),
                 b'{"user\\u005fid": "%s", "ts": %d, "features": {"clicks": 22}}' % (k.encode(), ts),
                 "json_escaped_member_entity", ev("user", k, ts, {"clicks": 22}))
        k = f"escaped-ts-member-{n}"
        self.add(U, k.encode(), b'{"\\u0074s": %d, "features": {"clicks": 23}}' % ts,
                 "json_escaped_member_ts", ev("user", k, ts, {"clicks": 23}))
        k = f"escaped-features-member-{n}"
        self.add(U, k.encode(), b'{"ts": %d, "f\\u0065atures": {"clicks": 24}}' % ts,
                 "json_escaped_member_features", ev("user", k, ts, {"clicks": 24}))
        add_dead("json_escaped_member_table", U, dl("escaped-table").encode(),
                 b'{"t\\u0061ble": "nope", "ts": %d, "features": {"clicks": 25}}' % ts, "unknown_table")
        k = f"escaped-feature-name-{n}"
        self.add(U, k.encode(), b'{"ts": %d, "features": {"cl\\u0069cks": 26, "\\u0063ountry": "\\u00fc\\n"}}' % ts,
                 "json_escaped_feature_name", ev("user", k, ts, {"clicks": 26, "country": "\u00fc\n"}))

        # ---- undecodable
        add_dead("truncated_json", U, dl("undecodable").encode(),
                 jdump({"ts": ts, "features": {"clicks": 1}})[:-2], "undecodable")
        add_dead("garbage_bytes", U, dl("undecodable").encode(), b"\xff\xfe\x00\x01garbage", "undecodable")
        add_dead("empty_value", U, dl("undecodable").encode(), b"", "undecodable")
        add_dead("json_array", U, dl("undecodable").encode(), b"[1, 2, 3]", "undecodable",
                 headers=[("content-type", b"application/json")])

    def oversize_burst(self, n, dl):
        """Records over, at and just under ingest.max_value_bytes, among normal ones on one partition."""
        I = TOPIC["item"]

        def jdump(obj):
            return json.dumps(obj).encode()

        def add_dead(case, topic, key, value, reason, partition=None):
            self.add(topic, key, value, case, dead(reason), partition=partition)

        p = n % PARTITIONS
        t0 = self.fresh_ts()
        okey = f"oversize-neighbour-{n}"

        def neighbour(i):
            self.encode_event("item", okey, t0 + i, {"stock": i, "price": float(i)}, kafka_key="same", partition=p,
                              case="oversize_neighbour")

        def padded(size, key, stock):
            """A JSON record of exactly size bytes (whitespace padding)."""
            body = jdump({"key": key, "ts": t0 + 100, "features": {"stock": stock}})
            assert len(body) < size
            return body[:-1] + b" " * (size - len(body)) + b"}"

        neighbour(0)
        add_dead("oversize_json_one_byte", I, okey.encode(), padded(MAX_VALUE + 1, dl("over1"), 1), "oversize",
                 partition=p)
        neighbour(1)
        k = f"at-limit-{n}"
        self.add(I, okey.encode(), padded(MAX_VALUE, k, 2), "value_exactly_at_limit",
                 ev("item", k, t0 + 100, {"stock": 2}), partition=p)
        k = f"under-limit-{n}"
        self.add(I, okey.encode(), padded(MAX_VALUE - 1, k, 3), "value_one_under_limit",
                 ev("item", k, t0 + 100, {"stock": 3}), partition=p)
        add_dead("oversize_json_big_string", I, okey.encode(),
                 jdump({"key": dl("over2"), "ts": t0, "features": {"title": "y" * (2 * MAX_VALUE)}}), "oversize",
                 partition=p)
        neighbour(2)
        add_dead("oversize_pb", I, okey.encode(),
                 pb_event(key=dl("over3"), ts=t0, feats=[("title", "string", "z" * (MAX_VALUE + 10))]), "oversize",
                 partition=p)
        add_dead("oversize_pb_4x", I, okey.encode(),
                 pb_event(key=dl("over4"), ts=t0, feats=[("title", "string", "z" * (4 * MAX_VALUE))]), "oversize",
                 partition=p)
        neighbour(3)
        k = f"big-string-{n}"
        s = "s" * (MAX_VALUE - 200)
        body = jdump({"key": k, "ts": t0 + 5, "features": {"title": s}})
        assert len(body) <= MAX_VALUE
        self.add(I, okey.encode(), body, "big_string_under_limit", ev("item", k, t0 + 5, {"title": s}), partition=p)
        neighbour(4)

    def build(self):
        r = self.rnd
        adv_at = set(r.sample(range(self.n_events), min(self.rounds, self.n_events)))
        for i in range(self.n_events):
            self.normal()
            if i in adv_at:
                self.adversarial()
        return self.msgs


# ---- the reference --------------------------------------------------------------------

def rank(e):
    """The documented winner order: greater event time, then higher Kafka offset, then higher partition."""
    return (e["ts"], e["offset"], e["partition"])


class Reference:
    def __init__(self, msgs):
        self.events = []   # applied events with their source position
        self.dead = collections.Counter()
        self.by_entity = collections.defaultdict(list)
        for m in msgs:
            if m.expect[0] == "event":
                _, table, key, ts, feats = m.expect
                e = {"table": table, "key": key, "ts": ts, "partition": m.pos[0], "offset": m.pos[1],
                     "features": feats, "msg": m}
                self.events.append(e)
                self.by_entity[(table, key)].append(e)
            else:
                self.dead[m.expect[1]] += 1
        self.events_per_table = collections.Counter(e["table"] for e in self.events)
        # per (table, entity, feature): its events in winner order, and their event times
        self.chain = collections.defaultdict(list)
        for e in self.events:
            for f in e["features"]:
                self.chain[(e["table"], e["key"], f)].append(e)
        self.chain_ts = {}
        for k, evs in self.chain.items():
            evs.sort(key=rank)
            self.chain_ts[k] = [e["ts"] for e in evs]

    def value_at(self, table, key, feature, as_of=None):
        """(ts, value, winner) of the latest value of feature with ts <= as_of
        (None: online, the winner of all), or None: the greatest rank() among
        those events, i.e. the last of the sorted chain with ts <= as_of."""
        evs = self.chain.get((table, key, feature))
        if not evs:
            return None
        i = len(evs) if as_of is None else bisect.bisect_right(self.chain_ts[(table, key, feature)], as_of)
        if i == 0:
            return None
        best = evs[i - 1]
        return best["ts"], best["features"][feature], best

    @staticmethod
    def status(table, ts, now):
        ttl = TTL[table]
        return "EXPIRED" if ttl > 0 and now - ts > ttl else "PRESENT"


def same_value(ftype, a, b):
    if ftype == "double":
        return isinstance(b, float) and struct.pack("<d", a) == struct.pack("<d", b)
    if ftype == "bool":
        return isinstance(b, bool) and a == b
    if ftype == "int64":
        return isinstance(b, int) and not isinstance(b, bool) and a == b
    return isinstance(b, str) and a == b


def pbval(fv):
    """A FeatureValue's value on one line."""
    k = fv.value.WhichOneof("kind") if fv.HasField("value") else None
    return f"{k}={short(getattr(fv.value, k))}" if k else "no value"


def short(v, n=60):
    s = repr(v)
    return s if len(s) <= n else s[:n] + f"...({len(s)} chars)"


# ---- metrics --------------------------------------------------------------------------

def series(ms, name):
    return {dict(lab).get("reason") or dict(lab).get("table") or lab: v for (n, lab), v in ms.items() if n == name}


# ---- main -----------------------------------------------------------------------------

class Mismatches:
    """Mismatches, each with the records to blame: given, or (key=) the
    records naming an entity that featd stored wrongly, resolved at the end."""

    def __init__(self):
        self.items = []   # (check, text, msgs, key)

    def add(self, check, text, msgs=(), key=None):
        self.items.append((check, text, list(msgs), key))

    def resolve(self, attribution):
        out = []
        for check, text, msgs, key in self.items:
            if key is not None:
                msgs = attribution(key)
            cases = tuple(sorted({m.case for m in msgs}))
            out.append((check, bool(msgs) and all(m.pending for m in msgs), text, cases))
        return out


def summary(items):
    by = collections.Counter((c, p, cs) for c, p, _, cs in items)
    lines = []
    for (check, pending, cases), n in sorted(by.items(), key=lambda x: (x[0][1], x[0][0], x[0][2])):
        lines.append(f"  {n:6d}  {'PENDING-RULE' if pending else 'OTHER       '}  {check:<22} "
                     f"{', '.join(cases) or '-'}")
    return lines


def main():
    def extra(p):
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--events", type=int, default=3000, help="normal events (adversarial rounds scale with it)")
        p.add_argument("--show", type=int, default=5, help="mismatches printed in full, per check and case")
    args = H.parse_args(extra)
    if args.long and args.events == 3000:
        args.events = 150_000
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    rounds = max(3, args.events // 500)
    H.log(f"seed {seed} (rerun with --seed {seed}); {args.events} normal events, {rounds} adversarial rounds")
    rnd = random.Random(seed)
    wd = H.Workdir(args, "difftest")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import event_pb2, feature_service_pb2 as fs, feature_service_pb2_grpc

    # the hand encoder agrees with the generated one on valid input
    chk = event_pb2.FeatureEvent()
    chk.ParseFromString(pb_event("user", "u1", 123, [("ctr", "double", -0.5), ("clicks", "int64", -3),
                                                     ("premium", "bool", True), ("country", "string", "ü")]))
    assert (chk.table, chk.key, chk.ts, chk.features["ctr"].double_value, chk.features["clicks"].int64_value,
            chk.features["premium"].bool_value, chk.features["country"].string_value) == \
        ("user", "u1", 123, -0.5, -3, True, "ü"), chk

    bcfg = wd.file("broker.ini")
    open(bcfg, "w").write(config(wd, "127.0.0.1:1"))
    broker, bs = H.start_broker(args, wd, bcfg, partitions=PARTITIONS)
    H.log("featd-broker at", bs)
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd, bs))
    featd = H.start_featd(args, wd, cfg, extra=("--set", f"ingest.max_value_bytes={MAX_VALUE}",
                                                "--set", f"ingest.max_string_bytes={MAX_STRING}"))
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        H.wait_assigned(featd, lines=400)
        now = int(time.time() * 1000)
        msgs = Gen(rnd, now, args.events, rounds, event_pb2).build()
        for m in msgs:  # the generator's own invariants
            assert len(m.value) <= MAX_VALUE or m.expect == ("dead", "oversize"), (m.case, len(m.value))
            if m.expect[0] == "event" and TTL[m.expect[1]]:
                age = now - m.expect[3]
                assert age < TTL_MS - MAX_RUN_MS or age > TTL_MS, (m.case, age)  # status cannot flip mid-run
        H.log(f"generated {len(msgs)} records ({sum(m.expect[0] == 'dead' for m in msgs)} must become dead letters)")

        mm = Mismatches()
        # entity key -> the records that name it (as the expected entity, the
        # Kafka key, or a dedicated "...-N" name in the body): the entities to
        # read back, and for a wrong read, the records to blame
        entity_msgs = collections.defaultdict(list)
        for m in msgs:
            named = set(re.findall(rb"[A-Za-z0-9]+(?:-[a-z0-9]+)*-\d+", m.value[:4096]))
            if m.key:
                named.add(m.key)
            if m.expect[0] == "event":
                named.add(m.expect[2].encode())
            for s in named:
                try:
                    entity_msgs[s.decode()].append(m)
                except UnicodeDecodeError:
                    pass
        rec_bad = set()   # records whose per-record check failed

        def rec_mismatch(m, text):
            rec_bad.add(m)
            mm.add("record", text, [m])

        def attribution(key):
            """The records naming key that featd stored wrongly: a wrong read
            with none of them is a serving or ordering bug."""
            return [m for m in entity_msgs.get(key, []) if m in rec_bad]

        ch = grpc.insecure_channel(addrs["grpc"], options=[("grpc.max_receive_message_length", 256 << 20),
                                                           ("grpc.max_send_message_length", 64 << 20)])
        svc = feature_service_pb2_grpc.FeatureServiceStub(ch)
        names = {k for k in entity_msgs if not k.startswith("route-")}
        names |= set(sorted(k for k in entity_msgs if k.startswith("route-"))[:50])  # Kafka keys only, never entities
        names |= {f"never-{i}" for i in range(5)} | {"u999999", "ü-never"}
        names = sorted(k for k in names if k and len(k.encode()) <= MAX_KEY and "\x00" not in k)
        n_online = n_hist = 0
        seen = collections.Counter()   # what the comparisons covered, for the log

        def check_online(ref, what):
            """GetOnlineFeatures for every entity named anywhere (and some
            never named), every feature, against ref."""
            nonlocal n_online
            for table in SCHEMA:
                for i in range(0, len(names), 200):
                    chunk = names[i:i + 200]
                    # the full feature list, or every feature named in reverse order
                    want_feats = [] if "again" not in what else list(reversed(SCHEMA[table]))
                    resp = svc.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table=table, entity_keys=chunk,
                                                                             features=want_feats), timeout=30)
                    t_read = int(time.time() * 1000)
                    assert t_read - now < MAX_RUN_MS, "the run took too long for the TTL margins of the log"
                    feats = list(resp.features)
                    assert set(feats) == set(SCHEMA[table]) and (not want_feats or feats == want_feats), feats
                    assert len(resp.rows) == len(chunk)
                    for key, row in zip(chunk, resp.rows):
                        if row.entity_key != key:
                            mm.add("online " + what, f"{table}/{key!r}: row names entity {row.entity_key!r}")
                        for f, fv in zip(feats, row.values):
                            n_online += 1
                            w = ref.value_at(table, key, f)
                            st = fs.FeatureStatus.Name(fv.status)
                            if w is None:
                                seen["online NOT_FOUND"] += 1
                                if st != "NOT_FOUND" or fv.event_time_ms != 0 or fv.HasField("value"):
                                    mm.add("online " + what, f"{table}/{key!r}.{f}: got {st} ts {fv.event_time_ms} "
                                           f"{pbval(fv)}; want NOT_FOUND", key=key)
                                continue
                            wts, wv, win = w
                            wst = Reference.status(table, wts, t_read)
                            seen["online " + wst] += 1
                            if ref.chain_ts[(table, key, f)].count(wts) > 1:
                                seen["online ties on event time"] += 1
                            gv = getattr(fv.value, SCHEMA[table][f] + "_value") if fv.HasField("value") else None
                            if (st != wst or fv.event_time_ms != wts or fv.value.WhichOneof("kind") !=
                                    SCHEMA[table][f] + "_value" or not same_value(SCHEMA[table][f], wv, gv)):
                                mm.add("online " + what, f"{table}/{key!r}.{f}: got {st} ts {fv.event_time_ms} "
                                       f"{pbval(fv)}; want {wst} ts {wts} {short(wv)} from "
                                       f"{win['msg'].where()} ({win['msg'].case})", key=key)

        prod = H.producer(bs, **{"message.max.bytes": 4 << 20, "enable.idempotence": True})
        errors = []

        def cb_for(m):
            def cb(err, rec):
                if err:
                    errors.append((m.case, err))
                else:
                    m.pos = (rec.partition(), rec.offset())
            return cb

        def caught_up(ends):
            """featd's next offsets (as stored with its data) reached ends, and its lag is 0."""
            nxt, lag = H.kafka_positions(H.scrape(addrs["admin"]))
            return all(nxt.get(k, -1) >= e for k, e in ends.items()) and lag and all(v == 0 for v in lag)

        # featd-broker is librdkafka's mock cluster, which keeps only the newest
        # 5 MiB of each partition and silently deletes older records.  So the log
        # goes out in chunks of at most CHUNK_BYTES, each applied by featd before
        # the next: nothing is deleted before featd has read it.  At half way,
        # online reads must match the reference of the first half (and fill
        # serve's cache, which the second half must then invalidate).
        ends = collections.defaultdict(int)
        half = len(msgs) // 2
        i = 0
        while i < len(msgs):
            j, size = i, 0
            while j < len(msgs) and (j == i or size + len(msgs[j].value) < CHUNK_BYTES) and (i >= half or j < half):
                size += len(msgs[j].value) + len(msgs[j].key or b"")
                j += 1
            for m in msgs[i:j]:
                kw = {}
                if m.headers:
                    kw["headers"] = m.headers
                if m.partition is not None:
                    kw["partition"] = m.partition
                H.produce(prod, m.topic, m.value, m.key, on_delivery=cb_for(m), **kw)
                prod.poll(0)
            assert prod.flush(60) == 0, "producer could not deliver everything"
            assert not errors, errors[:5]
            for m in msgs[i:j]:
                ends[(m.topic, m.pos[0])] = max(ends[(m.topic, m.pos[0])], m.pos[1] + 1)
            H.wait_for(lambda: caught_up(ends), 600 if args.long else 120,
                       "featd to apply every record (featd_kafka_next_offset)", interval=0.2)
            if j == half:
                check_online(Reference(msgs[:half]), "half way")
                H.log(f"compared online reads half way ({half} records)")
            i = j
        assert all(m.pos for m in msgs)
        used = collections.Counter(m.pos[0] for m in msgs)
        H.log(f"produced; records per partition {dict(sorted(used.items()))}")
        assert len(used) >= 4, "entities did not spread over the partitions"
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": bs, "group.id": "difftest-watermarks"})
        lows = {k: c.get_watermark_offsets(TopicPartition(k[0], k[1]), timeout=10)[0] for k in ends}
        c.close()
        H.log(f"low watermarks now (records the broker has deleted since featd applied them): {lows}")
        H.log("featd caught up")
        assert featd.alive(), featd.tail()

        # ---- 3. online, after everything: twice, the second time through serve's cache
        ref = Reference(msgs)
        check_online(ref, "end")
        check_online(ref, "end, again")

        # ---- 1. per record: applied or dead letter, and why (featd-inspect, read-only beside featd)
        dump = H.inspect(args, cfg, "offline", "dead-letters")
        got = {}
        topic_of_table = TOPIC
        for r in dump:
            if r["kind"] == "offline":
                got[(topic_of_table[r["table"]], r["partition"], r["offset"])] = ("event", r)
            elif r["kind"] == "dead_letter":
                got[(r["topic"], r["partition"], r["offset"])] = ("dead", r)
        got_by_msg = {}
        by_pos = {(m.topic, m.pos[0], m.pos[1]): m for m in msgs}
        for pos, m in sorted(by_pos.items(), key=lambda x: x[0]):
            g = got.pop(pos, None)
            if g is not None:
                got_by_msg[m] = g
            want = m.expect
            if g is None:
                rec_mismatch(m, f"{m.where()}: nothing stored; want {want[0]} {short(want[1:], 100)}")
                continue
            if want[0] == "dead":
                if g[0] != "dead":
                    r = g[1]
                    rec_mismatch(m, f"{m.where()}: applied as {r['table']}/{r['key']!r} ts {r['ts']}; "
                           f"want dead letter {want[1]} (value {short(m.value, 80)}, kafka key {short(m.key, 40)})")
                elif g[1]["reason"] != want[1]:
                    rec_mismatch(m, f"{m.where()}: dead letter {g[1]['reason']} ({g[1]['detail']}); want {want[1]} "
                           f"(value {short(m.value, 80)}, kafka key {short(m.key, 40)})")
                continue
            _, table, key, ts, feats = want
            if g[0] != "event":
                rec_mismatch(m, f"{m.where()}: dead letter {g[1]['reason']} ({g[1]['detail']}); want an event "
                       f"{table}/{key!r} ts {ts} (value {short(m.value, 80)})")
                continue
            r = g[1]
            gf = r["features"]
            if (r["table"], r["key"], r["ts"]) != (table, key, ts) or set(gf) != set(feats) or not all(
                    same_value(SCHEMA[table][f], v, gf[f]) for f, v in feats.items()):
                rec_mismatch(m, f"{m.where()}: history row {r['table']}/{r['key']!r} ts {r['ts']} "
                       f"{short(gf, 120)}; want {table}/{key!r} ts {ts} {short(feats, 120)}")
        for pos, g in got.items():
            mm.add("record", f"{pos}: stored ({g[0]}) but never produced: {short(g[1], 200)}")

        # ---- 2. dead letters per reason and events per table, from /metrics
        ms = H.scrape(addrs["admin"])
        got_dead = {k: v for k, v in series(ms, "featd_dead_letters_total").items()}
        for reason in sorted(set(got_dead) | set(ref.dead)):
            g, w = int(got_dead.get(reason, 0)), ref.dead.get(reason, 0)
            if g != w:
                blame = [m for m in rec_bad if m.expect == ("dead", reason) or
                         (got_by_msg.get(m, ("",))[0] == "dead" and got_by_msg[m][1]["reason"] == reason)]
                mm.add("metric_dead_letters", f'featd_dead_letters_total{{reason="{reason}"}} = '
                       f'{g if reason in got_dead else "absent"}; want {w}', blame)
        got_ev = series(ms, "featd_ingest_events_total")
        for table in SCHEMA:
            g, w = int(got_ev.get(table, -1)), ref.events_per_table[table]
            if g != w:
                blame = [m for m in rec_bad if m.expect[0] == "event" and m.expect[1] == table or
                         (got_by_msg.get(m, ("",))[0] == "event" and got_by_msg[m][1]["table"] == table)]
                mm.add("metric_events", f'featd_ingest_events_total{{table="{table}"}} = {g}; want {w}', blame)

        # ---- 4. point in time: many timestamps per entity
        for table in SCHEMA:
            queries = []
            for key in names:
                evs = ref.by_entity.get((table, key), [])
                times = {now, now + 60_000, 1}
                tss = sorted({e["ts"] for e in evs})
                for a, b in zip(tss, tss[1:]):
                    times.add((a + b) // 2)
                for t in tss:
                    times |= {t - 1, t, t + 1}
                    if TTL[table]:
                        times |= {t + TTL[table] - 1, t + TTL[table], t + TTL[table] + 1}
                if not evs:
                    times |= {now - 1000, now - 3 * 3600_000}
                queries += [(key, t) for t in sorted(times) if t > 0]
            for i in range(0, len(queries), 2000):
                chunk = queries[i:i + 2000]
                req = fs.GetHistoricalFeaturesRequest(table=table, rows=[fs.EntityTime(entity_key=k, ts_ms=t)
                                                                         for k, t in chunk])
                rows = list(svc.GetHistoricalFeatures(req, timeout=120))
                if len(rows) != len(chunk):
                    mm.add("historical", f"{table}: {len(rows)} rows for {len(chunk)} requested")
                    continue
                feats = list(rows[0].features)
                assert set(feats) == set(SCHEMA[table]), feats
                for (key, t), row in zip(chunk, rows):
                    if row.entity_key != key or row.ts_ms != t:
                        mm.add("historical", f"{table}: row ({row.entity_key!r}, {row.ts_ms}) answers ({key!r}, {t})")
                        continue
                    for f, fv in zip(feats, row.values):
                        n_hist += 1
                        w = ref.value_at(table, key, f, as_of=t)
                        st = fs.FeatureStatus.Name(fv.status)
                        if w is None:
                            seen["historical NOT_FOUND"] += 1
                            if st != "NOT_FOUND" or fv.event_time_ms != 0 or fv.HasField("value"):
                                mm.add("historical", f"{table}/{key!r}.{f} @ {t}: got {st} ts {fv.event_time_ms} "
                                       f"{pbval(fv)}; want NOT_FOUND", key=key)
                            continue
                        wts, wv, win = w
                        wst = Reference.status(table, wts, t)
                        seen["historical " + wst] += 1
                        gv = getattr(fv.value, SCHEMA[table][f] + "_value") if fv.HasField("value") else None
                        if (st != wst or fv.event_time_ms != wts or fv.value.WhichOneof("kind") !=
                                SCHEMA[table][f] + "_value" or not same_value(SCHEMA[table][f], wv, gv)):
                            mm.add("historical", f"{table}/{key!r}.{f} @ {t} (= ts{t - wts:+d}): got {st} ts "
                                   f"{fv.event_time_ms} {pbval(fv)}; want {wst} ts {wts} {short(wv)} from "
                                   f"{win['msg'].where()} ({win['msg'].case})", key=key)
        ch.close()
        assert featd.alive(), "featd died during the reads:\n" + featd.tail()
        rc = featd.stop()
        if rc != 0:
            mm.add("shutdown", f"featd exited {rc} on SIGTERM")

        H.log(f"compared {len(msgs)} records, {n_online} online values, {n_hist} point-in-time values, "
              f"{len(ref.dead)} dead-letter reasons, {len(SCHEMA)} event counters; wanted: "
              + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
        items = mm.resolve(attribution)
        if items:
            shown = collections.Counter()
            for check, pending, text, cases in sorted(items, key=lambda x: (x[1], x[0], x[3])):
                shown[(check, pending, cases)] += 1
                if shown[(check, pending, cases)] <= args.show:
                    print(f"MISMATCH {'PENDING-RULE ' if pending else 'OTHER '}[{check}] {text}"
                          + (f"  (cases: {', '.join(cases)})" if cases else ""), flush=True)
            pend = sum(1 for _, p, _, _ in items if p)
            print(f"\n{len(items)} mismatches ({pend} only from cases whose rule is PENDING a change, "
                  f"{len(items) - pend} OTHER); by check and case:", flush=True)
            print("\n".join(summary(items)), flush=True)
            print(f"seed {seed}", flush=True)
            raise SystemExit(1)
        H.log(f"OK: zero mismatches (seed {seed})")
        ok = True
    finally:
        if featd.alive():
            featd.kill9()
        broker.stop()
        if not ok:
            print(featd.tail(40))
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
