#!/usr/bin/python3
"""An independent reference for featd's streaming window aggregations (issue 11).

Written from the contract (the aggregation spec: docs/ARCHITECTURE.md
"Aggregations", common/config.h's feat_agg_fn_t comments, store/tile.h), not
from featd's code: given the produced events (entity, event time, Kafka
partition and offset, Kafka timestamp, field values) and a table's agg.NAME
declarations, it computes every aggregated feature as of any (entity, t) in
plain Python, and says whether a value featd returned is acceptable.

The rules it encodes:

  Windows.  T = agg_tile.  The value of window W as of t is the function over
  the events with floor_T(t - W) < ts <= t, floor_T(x) = floor(x / T) * T
  (exactly (t - W, t] when t - W is a multiple of T, else at most one tile of
  extra old events).  lifetime = every event with ts <= t.
  Inputs.  An aggregation over field f sees the events that carry f; an event
  without f does not count for count(f) either.
  Lateness.  With agg_lateness = L > 0 an event whose Kafka timestamp minus
  its event time exceeds L (strictly) is never aggregated.  L = 0: every
  event is.
  Order (last, first, last_n): (event time, Kafka offset, partition),
  greatest = newest.
  Empty window: count, sum, approx_distinct -> 0 and last_n -> "[]",
  PRESENT with event_time_ms 0; mean, min, max, last, first, approx_quantile
  -> NOT_FOUND (event_time_ms 0, no value); stddev NOT_FOUND with fewer than 2
  values.  A PRESENT value's event_time_ms is the newest event time included.
  Output types: count -> int64; sum: int64 -> int64, double -> double;
  mean, stddev (sample, n - 1), approx_quantile -> double; min, max, last,
  first -> the input's type; last_n -> string; approx_distinct -> int64.
  last_n(f, N): a JSON array of the N newest values, newest first (compared
  parsed: strings as JSON strings, numbers as numbers, bools true/false).

  Comparisons (check()):
    exact      count, int64 sum, min, max, last, first, last_n: equal (doubles
               bit for bit);
    float      double sum, mean (both kinds of input), stddev: relative 1e-9
               against an exactly rounded computation (math.fsum; stddev by
               two passes with fsum), plus an absolute floor of 1e-12 x the
               largest |value| in the window (a stddev of equal values is 0
               or a rounding crumb);
    distinct   approx_distinct (HyperLogLog p = 12, m = 4096 registers):
               |est - exact| <= max(2, 0.05 x exact, 4 sqrt(lam) + 2),
               lam = exact^2 / (2 m), exact = distinct values (doubles by
               their bits, as featd hashes the 8 bytes).  The last term: at
               small cardinalities (linear counting) the error is the number
               of register collisions minus its mean, about Poisson(lam);
               at n = 60, 3 or 4 collisions happen about 1% of the time (an
               estimate of 55 for 58 values is a correct HLL), which 5%
               alone would reject.  Above a few hundred values 5% is wider
               (about 4 to 5 standard errors of linear counting);
    quantile   approx_quantile(f, q) (KLL k = 200) over n values.  The
               definition (stats/kll.h feat_kll_quantile, "inverted CDF"):
               q = 0 -> min, q = 1 -> max, else the ceil(q n)-th smallest
               value, where q n is computed in double precision and reduced
               by 4 x DBL_EPSILON x q n first (so q n within rounding of an
               integer i picks the i-th smallest).  n <= 200: the sketch
               never compacted, so the value must be exactly that order
               statistic.  n > 200: the value must be one of the window's
               values and its rank range [#(< v) + 1, #(<= v)] must come
               within 0.02 n + 1 of q n.
"""
import bisect
import json
import math
import re
import struct

UNITS = [("d", 86400_000), ("h", 3600_000), ("m", 60_000), ("s", 1000), ("ms", 1)]
UNIT_MS = dict(UNITS)
FUNCS = {"count", "sum", "mean", "min", "max", "stddev", "last", "first", "last_n", "approx_distinct",
         "approx_quantile"}
DBL_EPSILON = 2.220446049250313e-16
KLL_EXACT_MAX = 200


def parse_duration(s):
    """"10m", "24h", "90s", "500ms", "7d" -> milliseconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d)\s*", s)
    if not m:
        raise ValueError(f"bad duration {s!r}")
    return int(m[1]) * UNIT_MS[m[2]]


def window_suffix(ms):
    """The canonical suffix: the largest unit that divides the window; 0 = lifetime."""
    if ms == 0:
        return "lifetime"
    for u, n in UNITS:
        if ms % n == 0:
            return f"{ms // n}{u}"
    raise AssertionError(ms)


def floor_div(a, b):
    return a // b   # Python's // floors, negative a included


class Agg:
    """One aggregated feature: NAME_SUFFIX = fn(field[, param]) over window_ms (0 = lifetime)."""
    __slots__ = ("name", "fn", "field", "ftype", "param", "window_ms")

    def __init__(self, name, fn, field, ftype, param, window_ms):
        self.name, self.fn, self.field, self.ftype, self.param, self.window_ms = \
            name, fn, field, ftype, param, window_ms

    def out_type(self):
        """The Value member featd must set: int64 / double / bool / string."""
        f = self.fn
        if f in ("count", "approx_distinct"):
            return "int64"
        if f == "sum":
            return "int64" if self.ftype == "int64" else "double"
        if f in ("mean", "stddev", "approx_quantile"):
            return "double"
        if f == "last_n":
            return "string"
        return self.ftype   # min, max, last, first

    def __repr__(self):
        p = "" if self.param is None else f", {self.param}"
        return f"{self.name} = {self.fn}({self.field}{p}) over {window_suffix(self.window_ms)}"


def parse_decl(name, text, plain_types):
    """agg.NAME = TEXT ("sum(amount) over 10m, 1h, lifetime") -> [Agg] (one per window)."""
    m = re.fullmatch(r"\s*(\w+)\s*\(\s*(\w+)\s*(?:,\s*([^)]*?))?\s*\)\s+over\s+(.+?)\s*", text)
    if not m:
        raise ValueError(f"agg.{name}: cannot parse {text!r}")
    fn, field, param, windows = m[1], m[2], m[3], m[4]
    assert fn in FUNCS, fn
    assert field in plain_types, field
    if fn == "last_n":
        param = int(param)
    elif fn == "approx_quantile":
        param = float(param)
    else:
        assert param is None, text
    out = []
    for w in windows.split(","):
        w = w.strip()
        ms = 0 if w == "lifetime" else parse_duration(w)
        out.append(Agg(f"{name}_{window_suffix(ms)}", fn, field, plain_types[field], param, ms))
    return out


def parse_decls(decls, plain_types):
    """decls: [(name, text)] in file order -> [Agg] in featd's feature order."""
    out = []
    for name, text in decls:
        out += parse_decl(name, text, plain_types)
    return out


class Event:
    """One produced event.  values: {field: value} (Python int / float / bool / str)."""
    __slots__ = ("entity", "ts", "partition", "offset", "kafka_ts", "values", "tag")

    def __init__(self, entity, ts, partition, offset, values, kafka_ts=None, tag=""):
        self.entity, self.ts, self.partition, self.offset = entity, ts, partition, offset
        self.values, self.kafka_ts, self.tag = values, kafka_ts, tag

    def order(self):
        return (self.ts, self.offset, self.partition)

    def __repr__(self):
        return (f"Event({self.entity!r}, ts={self.ts}, p{self.partition}@{self.offset}, kafka_ts={self.kafka_ts}, "
                f"{self.values}{', ' + self.tag if self.tag else ''})")


def dbits(x):
    return struct.pack("<d", x)


class Expected:
    """What featd must answer for one (entity, feature, t)."""
    __slots__ = ("agg", "status", "value", "event_time", "mode", "values", "events")

    def __init__(self, agg, status, value, event_time, mode, values, events):
        self.agg, self.status, self.value, self.event_time = agg, status, value, event_time
        self.mode, self.values, self.events = mode, values, events

    def key(self):
        """The included events (for "the same window" comparisons)."""
        return tuple((e.partition, e.offset) for e in self.events)

    def __repr__(self):
        v = self.value
        return f"{self.status} ts={self.event_time} {self.agg.out_type()}={v!r} (n={len(self.events)})"


def kll_exact_quantile(sorted_vals, q):
    """stats/kll.h's feat_kll_quantile on an exact (never compacted) sketch."""
    n = len(sorted_vals)
    if q == 0.0:
        return sorted_vals[0]
    if q == 1.0:
        return sorted_vals[-1]
    target = q * float(n)
    target -= 4.0 * DBL_EPSILON * target
    k = max(1, math.ceil(target))
    return sorted_vals[min(n, k) - 1]


def kll_target(n, q):
    return q * n


def stddev(vals):
    n = len(vals)
    mean = math.fsum(vals) / n
    return math.sqrt(math.fsum((x - mean) ** 2 for x in vals) / (n - 1))


class Reference:
    def __init__(self, events, aggs, tile_ms, lateness_ms=0):
        """events: [Event] (delivered: partition and offset known); aggs: [Agg]."""
        self.aggs = {a.name: a for a in aggs}
        self.tile_ms = tile_ms
        self.lateness_ms = lateness_ms
        self.late = [e for e in events if self.is_late(e)]
        fields = {a.field for a in aggs}
        # (entity, field) -> events carrying field, not late, in (ts, offset, partition) order
        self.chains = {}
        self.chain_ts = {}
        for e in events:
            if self.is_late(e):
                continue
            for f in fields:
                if f in e.values:
                    self.chains.setdefault((e.entity, f), []).append(e)
        for k, evs in self.chains.items():
            evs.sort(key=Event.order)
            self.chain_ts[k] = [e.ts for e in evs]

    def is_late(self, e):
        return self.lateness_ms > 0 and e.kafka_ts is not None and e.kafka_ts - e.ts > self.lateness_ms

    def window(self, entity, agg, t, online=False):
        """The events agg sees as of t, oldest first.  online: as an online
        read at time t sees them (docs/ARCHITECTURE.md "Aggregations"):
        an event already ingested counts even if its event time is ahead
        of t, in a window when it falls in t's tile (tiles after it are
        not read) and always in the lifetime."""
        key = (entity, agg.field)
        evs = self.chains.get(key)
        if not evs:
            return []
        tss = self.chain_ts[key]
        if online:
            hi = len(tss) if agg.window_ms == 0 else bisect.bisect_right(
                tss, (floor_div(t - 1, self.tile_ms) + 1) * self.tile_ms)
        else:
            hi = bisect.bisect_right(tss, t)
        if agg.window_ms == 0:
            lo = 0
        else:
            lo = bisect.bisect_right(tss, floor_div(t - agg.window_ms, self.tile_ms) * self.tile_ms)
        return evs[lo:hi] if lo < hi else []

    def expect(self, entity, name, t, online=False):
        agg = self.aggs[name]
        evs = self.window(entity, agg, t, online)
        vals = [e.values[agg.field] for e in evs]
        n = len(vals)
        fn = agg.fn
        newest = evs[-1].ts if evs else 0   # sorted by (ts, ...): the last has the greatest ts

        def present(v, mode="exact", values=None):
            return Expected(agg, "PRESENT", v, newest, mode, values, evs)

        def empty(v):
            return Expected(agg, "PRESENT", v, 0, "exact", None, evs)

        def notfound():
            return Expected(agg, "NOT_FOUND", None, 0, "exact", None, evs)

        if fn == "count":
            return present(n) if n else empty(0)
        if fn == "sum":
            if not n:
                return empty(0 if agg.ftype == "int64" else 0.0)
            if agg.ftype == "int64":
                return present(sum(vals))
            return present(math.fsum(vals), "float", vals)
        if fn == "approx_distinct":
            if not n:
                return empty(0)
            ids = {dbits(v) if isinstance(v, float) else (type(v).__name__, v) for v in vals}
            return present(len(ids), "distinct", vals)
        if fn == "last_n":
            if not n:
                return empty([])
            return present([e.values[agg.field] for e in reversed(evs[-agg.param:])], "last_n")
        if not n:
            return notfound()
        if fn == "mean":
            s = sum(vals) / n if agg.ftype == "int64" else math.fsum(vals) / n
            return present(s, "float", [float(v) for v in vals])
        if fn == "min":
            return present(min(vals))
        if fn == "max":
            return present(max(vals))
        if fn == "last":
            return present(vals[-1])
        if fn == "first":
            return present(vals[0])
        if fn == "stddev":
            if n < 2:
                return notfound()
            return present(stddev([float(v) for v in vals]), "float", [float(v) for v in vals])
        if fn == "approx_quantile":
            s = sorted(float(v) for v in vals)
            return present(kll_exact_quantile(s, agg.param), "quantile", s)
        raise AssertionError(fn)


def hll_tolerance(n, m=4096):
    lam = n * n / (2.0 * m)
    return max(2.0, 0.05 * n, 4.0 * math.sqrt(lam) + 2.0)


def same_scalar(ftype, want, got):
    if ftype == "double":
        return isinstance(got, float) and dbits(float(want)) == dbits(got)
    if ftype == "int64":
        return isinstance(got, int) and not isinstance(got, bool) and got == want
    if ftype == "bool":
        return isinstance(got, bool) and got == want
    return isinstance(got, str) and got == want


def check(exp, status, kind, value, event_time):
    """None when featd's answer (status name, Value member name without
    "_value" or None, the value, event_time_ms) is acceptable for exp, else
    a one-line reason."""
    agg = exp.agg
    if status != exp.status:
        return f"status {status}, want {exp.status}"
    if event_time != exp.event_time:
        return f"event_time_ms {event_time}, want {exp.event_time}"
    if exp.status == "NOT_FOUND":
        return None if kind is None else f"NOT_FOUND carries a value ({kind})"
    ot = agg.out_type()
    if kind != ot:
        return f"value kind {kind}, want {ot}"
    mode = exp.mode
    if mode == "exact":
        if agg.fn == "last_n":
            mode = "last_n"
        elif not same_scalar(ot, exp.value, value):
            return f"value {value!r}, want {exp.value!r}"
        else:
            return None
    if mode == "last_n":
        try:
            got = json.loads(value)
        except ValueError as e:
            return f"last_n is not JSON ({e}): {value!r}"
        want = exp.value
        if not isinstance(got, list) or len(got) != len(want):
            return f"last_n {value!r}, want {want!r}"
        for g, w in zip(got, want):
            if agg.ftype == "double":
                ok = isinstance(g, (int, float)) and not isinstance(g, bool) and dbits(float(g)) == dbits(w)
            else:
                ok = same_scalar(agg.ftype, w, g)
            if not ok:
                return f"last_n {value!r}, want {want!r}"
        return None
    if mode == "float":
        floor = 1e-12 * max(abs(v) for v in exp.values)
        if not isinstance(value, float) or not abs(value - exp.value) <= 1e-9 * abs(exp.value) + floor:
            return f"value {value!r}, want {exp.value!r} (rel 1e-9)"
        return None
    if mode == "distinct":
        tol = hll_tolerance(exp.value)
        if not abs(value - exp.value) <= tol:
            return f"approx_distinct {value}, exact {exp.value} (bound {tol:.1f}: max(2, 5%, 4 sqrt(n^2/8192) + 2))"
        return None
    if mode == "quantile":
        s = exp.values
        n = len(s)
        if n <= KLL_EXACT_MAX:
            if dbits(value) != dbits(exp.value):
                return f"approx_quantile {value!r}, want exactly {exp.value!r} (n = {n} <= {KLL_EXACT_MAX})"
            return None
        lt = bisect.bisect_left(s, value)
        le = bisect.bisect_right(s, value)
        if le == lt:
            return f"approx_quantile {value!r} is not a value of the window (n = {n})"
        target, tol = agg.param * n, 0.02 * n + 1
        if le < target - tol or lt + 1 > target + tol:
            return (f"approx_quantile {value!r} has rank {lt + 1}..{le} of {n}, want {target:.1f} +- {tol:.1f} "
                    f"(exact {exp.value!r})")
        return None
    raise AssertionError(mode)


# ---- self-test: hand-computed cases ---------------------------------------------------

def _selftest():
    M = 60_000
    assert window_suffix(parse_duration("24h")) == "1d"
    assert window_suffix(parse_duration("90s")) == "90s"
    assert window_suffix(parse_duration("60m")) == "1h"
    assert window_suffix(parse_duration("120s")) == "2m"
    assert window_suffix(parse_duration("1500ms")) == "1500ms"
    assert window_suffix(parse_duration("2880m")) == "2d"
    plain = {"amount": "double", "items": "int64", "merchant": "string", "flag": "bool"}
    aggs = parse_decls([
        ("cnt", "count(amount) over 10m, 60m, lifetime"),
        ("spend", "sum(amount) over 10m"),
        ("isum", "sum(items) over 10m"),
        ("avg", "mean(amount) over 10m"),
        ("lo", "min(items) over 10m"),
        ("hi", "max(amount) over 10m"),
        ("sd", "stddev(amount) over 10m"),
        ("lastm", "last(merchant) over 10m, lifetime"),
        ("firstm", "first(merchant) over 10m"),
        ("rec", "last_n(merchant, 2) over 10m"),
        ("recf", "last_n(flag, 3) over lifetime"),
        ("nd", "approx_distinct(merchant) over 10m"),
        ("p50", "approx_quantile(amount, 0.5) over lifetime"),
        ("p90", "approx_quantile(amount, 0.9) over lifetime"),
    ], plain)
    names = [a.name for a in aggs]
    assert names[:3] == ["cnt_10m", "cnt_1h", "cnt_lifetime"], names
    assert parse_decl("p", "approx_quantile(amount, 0.9) over 1d", plain)[0].param == 0.9
    out = {a.name: a.out_type() for a in aggs}
    assert out == {"cnt_10m": "int64", "cnt_1h": "int64", "cnt_lifetime": "int64", "spend_10m": "double",
                   "isum_10m": "int64", "avg_10m": "double", "lo_10m": "int64", "hi_10m": "double",
                   "sd_10m": "double", "lastm_10m": "string", "lastm_lifetime": "string", "firstm_10m": "string",
                   "rec_10m": "string", "recf_lifetime": "string", "nd_10m": "int64", "p50_lifetime": "double",
                   "p90_lifetime": "double"}, out
    base = 1000 * M   # a tile boundary (T = 1m)
    evs = [
        # ts on the boundary base: in tile (base - T, base]
        Event("a", base, 0, 0, {"amount": 1.0, "items": 3, "merchant": "x", "flag": True}),
        Event("a", base + 30_000, 0, 1, {"amount": 2.5, "items": -1, "merchant": "y"}),
        Event("a", base + 30_000, 0, 2, {"amount": 4.0, "merchant": "x", "flag": False}),  # same ts: offset decides
        Event("a", base + 5 * M + 1, 0, 3, {"items": 7, "merchant": "z"}),
        Event("a", base + 3 * 3600_000, 0, 4, {"amount": 10.0}),
        Event("b", base + 1, 1, 0, {"merchant": "m1"}),
        Event("b", base + 1, 0, 9, {"merchant": "m0"}),   # equal ts, higher offset wins over partition
        Event("b", base + 1, 2, 9, {"merchant": "m2"}),   # equal ts and offset: higher partition wins
    ]
    r = Reference(evs, aggs, M)

    def e(ent, name, t):
        return r.expect(ent, name, t)
    # before anything
    x = e("a", "cnt_10m", base - 1)
    assert (x.status, x.value, x.event_time) == ("PRESENT", 0, 0)
    assert e("a", "avg_10m", base - 1).status == "NOT_FOUND"
    assert (e("a", "rec_10m", base - 1).value, e("a", "rec_10m", base - 1).status) == ([], "PRESENT")
    assert e("a", "spend_10m", base - 1).value == 0.0 and e("a", "nd_10m", base - 1).value == 0
    # t = base: only the first event
    x = e("a", "cnt_10m", base)
    assert (x.value, x.event_time) == (1, base)
    assert e("a", "sd_10m", base).status == "NOT_FOUND"   # one value
    # t = base + 10m exactly: t - W = base (a boundary): (base, base + 10m] excludes the event at base
    t = base + 10 * M
    assert e("a", "cnt_10m", t).value == 2 and e("a", "cnt_1h", t).value == 3
    assert e("a", "spend_10m", t).value == 6.5
    assert e("a", "isum_10m", t).value == 6 and e("a", "lo_10m", t).value == -1
    assert e("a", "hi_10m", t).value == 4.0 and e("a", "avg_10m", t).value == 3.25
    assert abs(e("a", "sd_10m", t).value - math.sqrt(((2.5 - 3.25) ** 2 + (4.0 - 3.25) ** 2) / 1)) < 1e-15
    assert e("a", "lastm_10m", t).value == "z" and e("a", "firstm_10m", t).value == "y"
    assert e("a", "rec_10m", t).value == ["z", "x"]
    assert e("a", "nd_10m", t).value == 3
    assert e("a", "cnt_10m", t).event_time == base + 30_000
    assert e("a", "lastm_10m", t).event_time == base + 5 * M + 1
    # t = base + 10m - 1: t - W = base - 1, floor_T = base - T: the event at base is in (base - T, t]
    assert e("a", "cnt_10m", t - 1).value == 3
    # t = base + 10m + 29_999: floor_T(t - W) = base: still both events at base + 30 s; at + 30 000 still
    assert e("a", "cnt_10m", base + 10 * M + 30_000).value == 2
    # t = base + 11m: floor_T(t - W) = base + 1m > base + 30 s: they are gone
    assert e("a", "cnt_10m", base + 11 * M).value == 0
    assert e("a", "cnt_10m", base + 11 * M).event_time == 0
    assert e("a", "firstm_10m", base + 11 * M).value == "z"   # merchant window: event at 5m+1 still in
    assert e("a", "firstm_10m", base + 16 * M).status == "NOT_FOUND"
    # a gap longer than the window, then one event
    x = e("a", "cnt_10m", base + 3 * 3600_000)
    assert (x.value, x.event_time) == (1, base + 3 * 3600_000)
    assert e("a", "cnt_lifetime", base + 3 * 3600_000).value == 4
    assert e("a", "lastm_lifetime", base + 4 * 3600_000).value == "z"
    assert e("a", "recf_lifetime", base + 4 * 3600_000).value == [False, True]
    assert e("a", "recf_lifetime", base + 4 * 3600_000).event_time == base + 30_000
    # order: equal ts -> offset -> partition
    assert e("b", "lastm_lifetime", base + 1).value == "m2"
    # m0 (p0@9) and m2 (p2@9) tie on offset; m1 is p1@0: oldest
    assert e("b", "firstm_10m", base + 1).value == "m1"
    assert e("b", "rec_10m", base + 1).value == ["m2", "m0"]
    # quantiles (exact: n <= 200): amounts 1, 2.5, 4, 10
    t = base + 4 * 3600_000
    assert e("a", "p50_lifetime", t).value == 2.5      # ceil(0.5 * 4) = 2nd
    assert e("a", "p90_lifetime", t).value == 10.0     # ceil(3.6) = 4th
    assert kll_exact_quantile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9) == 9.0  # 0.9*10 -> 9th
    assert kll_exact_quantile([1.0, 2.0, 3.0], 0.0) == 1.0 and kll_exact_quantile([1.0, 2.0, 3.0], 1.0) == 3.0
    assert kll_exact_quantile([5.0], 0.01) == 5.0
    assert kll_exact_quantile([float(i) for i in range(1, 101)], 0.07) == 7.0   # 0.07*100 = 7.000000000000001

    # check(): acceptance
    x = e("a", "spend_10m", base + 10 * M)
    assert check(x, "PRESENT", "double", 6.5, base + 30_000) is None
    assert check(x, "PRESENT", "double", 6.5 * (1 + 1e-12), base + 30_000) is None
    assert check(x, "PRESENT", "double", 6.5 * (1 + 1e-8), base + 30_000) is not None
    assert check(x, "PRESENT", "double", 6.5, base) is not None                 # wrong event time
    assert check(x, "PRESENT", "int64", 6, base + 30_000) is not None          # wrong kind
    x = e("a", "rec_10m", base + 10 * M)
    assert check(x, "PRESENT", "string", '["z", "x"]', base + 5 * M + 1) is None
    assert check(x, "PRESENT", "string", '["z","x"]', base + 5 * M + 1) is None
    assert check(x, "PRESENT", "string", '["x","z"]', base + 5 * M + 1) is not None
    x = e("a", "rec_10m", base - 1)
    assert check(x, "PRESENT", "string", "[]", 0) is None
    assert check(x, "NOT_FOUND", None, None, 0) is not None
    x = e("a", "avg_10m", base - 1)
    assert check(x, "NOT_FOUND", None, None, 0) is None
    assert check(x, "PRESENT", "double", 0.0, 0) is not None
    x = e("a", "cnt_10m", base + 11 * M)
    assert check(x, "PRESENT", "int64", 0, 0) is None and check(x, "PRESENT", "int64", 0, 1) is not None
    # last_n of doubles: %.17g text parses to the same bits; ints print without a point
    ld = parse_decl("ra", "last_n(amount, 5) over lifetime", plain)[0]
    r2 = Reference([Event("c", 5, 0, 0, {"amount": 0.1}), Event("c", 6, 0, 1, {"amount": 3.0})], [ld], M)
    x = r2.expect("c", "ra_lifetime", 10)
    assert check(x, "PRESENT", "string", "[3,0.10000000000000001]", 6) is None
    assert check(x, "PRESENT", "string", "[3,0.1000000000000001]", 6) is not None
    # approx_distinct bound; doubles distinct by bits
    ad = parse_decl("d", "approx_distinct(amount) over lifetime", plain)[0]
    big = [Event("d", i + 1, 0, i, {"amount": float(i % 1000)}) for i in range(3000)]
    r3 = Reference(big, [ad], M)
    x = r3.expect("d", "d_lifetime", 10**9)
    assert x.value == 1000
    assert abs(55 - 58) <= hll_tolerance(58) and abs(61 - 65) <= hll_tolerance(65)   # seen: a correct HLL
    assert hll_tolerance(1000) == 50.0 and 4.6 < hll_tolerance(60) < 4.7 and 2.4 < hll_tolerance(10) < 2.5
    assert check(x, "PRESENT", "int64", 1049, 3000) is None and check(x, "PRESENT", "int64", 1051, 3000) is not None
    x = Reference(big[:3], [ad], M).expect("d", "d_lifetime", 10**9)
    assert check(x, "PRESENT", "int64", 5, 3) is None and check(x, "PRESENT", "int64", 6, 3) is not None
    # approx_quantile: exact for n <= 200, by rank beyond
    aq = parse_decl("q", "approx_quantile(amount, 0.5) over lifetime", plain)[0]
    x = Reference(big[:200], [aq], M).expect("d", "q_lifetime", 10**9)
    assert x.value == 99.0   # 0..199: the 100th smallest
    assert check(x, "PRESENT", "double", 99.0, 200) is None
    assert check(x, "PRESENT", "double", 100.0, 200) is not None
    x = Reference(big[:1000], [aq], M).expect("d", "q_lifetime", 10**9)   # 0..999
    assert x.value == 499.0
    assert check(x, "PRESENT", "double", 515.0, 1000) is None    # rank 516 within 500 +- 21
    assert check(x, "PRESENT", "double", 525.0, 1000) is not None
    assert check(x, "PRESENT", "double", 499.5, 1000) is not None  # not a value of the window
    # lateness: kafka_ts - ts > L excluded; = L kept; L = 0: nothing excluded
    la = parse_decl("n", "count(amount) over lifetime", plain)[0]
    lev = [Event("l", 1000, 0, 0, {"amount": 1.0}, kafka_ts=1000 + 3600_000),
           Event("l", 2000, 0, 1, {"amount": 1.0}, kafka_ts=2000 + 3600_001),
           Event("l", 3000, 0, 2, {"amount": 1.0}, kafka_ts=0)]
    assert Reference(lev, [la], M, lateness_ms=3600_000).expect("l", "n_lifetime", 10**9).value == 2
    assert len(Reference(lev, [la], M, lateness_ms=3600_000).late) == 1
    assert Reference(lev, [la], M, lateness_ms=0).expect("l", "n_lifetime", 10**9).value == 3
    # stddev of equal values, and a sum that loses bits in naive order
    sd = parse_decl("s", "stddev(amount) over lifetime", plain)[0]
    x = Reference([Event("s", i + 1, 0, i, {"amount": 0.1}) for i in range(7)], [sd], M).expect("s", "s_lifetime", 99)
    assert x.value == 0.0 and check(x, "PRESENT", "double", 1.3e-17, 7) is None
    sm = parse_decl("t", "sum(amount) over lifetime", plain)[0]
    x = Reference([Event("t", i + 1, 0, i, {"amount": 0.1}) for i in range(10)], [sm], M).expect("t", "t_lifetime", 99)
    assert x.value == 1.0 and check(x, "PRESENT", "double", 0.9999999999999999, 10) is None
    # negative event times floor correctly (floor division)
    assert floor_div(-1, M) == -1 and floor_div(-M, M) == -1 and floor_div(0, M) == 0
    print("aggref self-test: OK")


if __name__ == "__main__":
    _selftest()
