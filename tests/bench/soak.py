#!/usr/bin/python3
"""Soak: featd under mixed load for a long time, its memory sampled.

featd reads from a separate featd-broker (so featd's RSS is featd's own),
with one table (8 features, 20,000 entities), a logreg model and drift
monitoring on.  For --minutes (default 30), at the same time:

  ingest      feature events at --rate events/s, labels at a tenth of that
  lookups     GetOnlineFeatures of 1-10 random entities, continuously
  predictions Predict of 1-10 random entities, continuously
  retrains    retrain_every = 2m, plus a TriggerRetrain from here after 30 s
              and then every 3 min

Every 5 s: featd's VmRSS and VmHWM (/proc), events applied, calls made.
Writes soak.csv and soak-rss.svg to --out and prints a summary: RSS at
several times, the growth over the second half, errors.  Under ASan
(--build-dir of a -DFEATD_SANITIZE=ON build) a short run ends with featd's
LeakSanitizer verdict: a clean stop (exit 0) means no leak was found.

  /usr/bin/python3 tests/bench/soak.py --build-dir build --source-dir . --minutes 30 --out docs/bench
"""
import json
import math
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as H  # noqa: E402


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def svg_plot(samples, path, title):
    """RSS (MiB) against minutes, as a self-contained SVG."""
    W, Hh, L, R, T, B = 900, 420, 70, 20, 40, 50
    xs = [s["t"] / 60 for s in samples]
    ys = [s["rss"] / 1024 for s in samples]
    xmax = max(xs[-1], 1e-9)
    ymax = max(ys) * 1.15
    step = 10 ** math.floor(math.log10(ymax / 4)) if ymax > 0 else 1
    ystep = next(m * step for m in (1, 2, 5, 10) if ymax / (m * step) <= 6)
    xstep = next(m for m in (1, 2, 5, 10, 15, 30, 60) if xmax / m <= 10)

    def px(x):
        return L + (W - L - R) * x / xmax

    def py(y):
        return Hh - B - (Hh - T - B) * y / ymax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{Hh}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{Hh}" fill="white"/>',
           f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    y = 0.0
    while y <= ymax:
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
        y += ystep
    x = 0
    while x <= xmax + 1e-9:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{T}" y2="{Hh - B}" stroke="#eee"/>')
        out.append(f'<text x="{px(x):.1f}" y="{Hh - B + 16}" text-anchor="middle">{x:g}</text>')
        x += xstep
    out.append(f'<text x="{W / 2}" y="{Hh - 10}" text-anchor="middle">minutes</text>')
    out.append(f'<text x="16" y="{Hh / 2}" text-anchor="middle" transform="rotate(-90 16 {Hh / 2})">RSS (MiB)</text>')
    series = [("rss", "featd RSS", "#1f6feb", 2),
              ("known", "RocksDB memtables + block cache + table readers + featd cache", "#2da44e", 1.5),
              ("memtables", "RocksDB memtables", "#8250df", 1), ("block_cache", "RocksDB block cache", "#cf222e", 1)]
    for i, (key, label, color, width) in enumerate(series):
        vals = [(s["memtables"] + s["block_cache"] + s["table_readers"] + s["cache"]) if key == "known" else s[key]
                for s in samples]
        pts = " ".join(f"{px(a):.1f},{py(b / 1024):.1f}" for a, b in zip(xs, vals))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}"/>')
        out.append(f'<line x1="{L + 10}" x2="{L + 30}" y1="{T + 12 + 16 * i}" y2="{T + 12 + 16 * i}" stroke="{color}" '
                   f'stroke-width="{width}"/><text x="{L + 36}" y="{T + 16 + 16 * i}">{label}</text>')
    for s in samples:
        if s.get("retrain"):
            out.append(f'<line x1="{px(s["t"] / 60):.1f}" x2="{px(s["t"] / 60):.1f}" y1="{T}" y2="{Hh - B}" '
                       f'stroke="#d29922" stroke-dasharray="3,3"/>')
    out.append(f'<text x="{W - R}" y="{Hh - B - 8}" text-anchor="end" fill="#d29922">dashed: a new model version</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    def extra(p):
        p.add_argument("--minutes", type=float, default=30)
        p.add_argument("--rate", type=int, default=2000)
        p.add_argument("--out", default=None)
    args = H.parse_args(extra)
    out_dir = args.out or os.getcwd()
    os.makedirs(out_dir, exist_ok=True)
    wd = H.Workdir(args, "soak")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    feats = "".join(f"feature.f{i} = double\n" for i in range(6)) + "feature.c = string\nfeature.n = int64\n"
    bcfg = wd.file("broker.ini")
    base_cfg = f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = false
bootstrap.servers = BOOTSTRAP
session.timeout.ms = 6000
partitions = 4
[drift]
window_events = 20000
[table t]
topic = soak_events
{feats}
[model m]
table = t
label_topic = soak_labels
task = logreg
policy = auto
retrain_every = 2m
min_rows = 200
epochs = 3
prediction_topic = soak_predictions
quality_floor = 0.55
"""
    open(bcfg, "w").write(base_cfg.replace("BOOTSTRAP", "127.0.0.1:1"))
    broker, bs = H.start_broker(args, wd, bcfg, partitions=4)
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(base_cfg.replace("BOOTSTRAP", bs))
    featd = H.start_featd(args, wd, cfg)
    stop = threading.Event()
    counts = {"events": 0, "labels": 0, "lookups": 0, "predicts": 0, "errors": 0, "triggers": 0}
    errors = []
    lock = threading.Lock()
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        ch = grpc.insecure_channel(addrs["grpc"])
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        H.wait_ready(admin)
        N = 20000
        w = [0.8, -0.5, 0.3, 0.0, 0.6, -0.2]

        def ingest():
            rnd = random.Random(1)
            prod = H.producer(bs, **{"queue.buffering.max.messages": 1000000})
            t0, sent = time.time(), 0
            while not stop.is_set():
                now = int(time.time() * 1000)
                for _ in range(100):
                    k = f"e{rnd.randrange(N)}"
                    x = [rnd.gauss(0, 1) for _ in range(6)]
                    ev = {"ts": now, "features": {**{f"f{i}": x[i] for i in range(6)},
                                                   "c": rnd.choice("abcdefgh"), "n": rnd.randrange(1000)}}
                    prod.produce("soak_events", key=k, value=json.dumps(ev).encode())
                    sent += 1
                    if sent % 10 == 0:   # a label later in time than the features it describes
                        z = sum(a * b for a, b in zip(w, x))
                        y = 1 if rnd.random() < 1 / (1 + math.exp(-z)) else 0
                        prod.produce("soak_labels", key=k, value=json.dumps(
                            {"model": "m", "key": k, "ts": now + 1, "label": y}).encode())
                        with lock:
                            counts["labels"] += 1
                prod.poll(0)
                with lock:
                    counts["events"] += 100
                H.pace(t0, sent, args.rate)
            prod.flush(30)

        def caller(kind):
            rnd = random.Random(hash(kind) & 0xffff)
            while not stop.is_set():
                keys = [f"e{i}" for i in rnd.sample(range(N), rnd.randint(1, 10))]
                try:
                    if kind == "lookups":
                        feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="t", entity_keys=keys), timeout=5)
                    else:
                        feat.Predict(fs.PredictRequest(model="m", entity_keys=keys), timeout=5)
                    with lock:
                        counts[kind] += 1
                except grpc.RpcError as e:
                    # Predict before the first version exists is NOT_FOUND ("no champion yet"): expected
                    if not (kind == "predicts" and "no champion" in (e.details() or "")):
                        with lock:
                            counts["errors"] += 1
                            if len(errors) < 20:
                                errors.append(f"{kind}: {e.code()} {e.details()}")
                    time.sleep(0.05)
                time.sleep(0.002)

        workers = H.Workers(stop)   # a worker's exception ends the soak and is raised
        workers.start(ingest)
        workers.start(caller, "lookups")
        workers.start(caller, "predicts")
        samples = []
        t0 = time.time()
        end = t0 + args.minutes * 60
        next_trigger = t0 + 30
        seen_versions = 0
        while time.time() < end:
            time.sleep(5)
            workers.check()
            if not featd.alive():
                raise AssertionError("featd died during the soak:\n" + featd.tail(40))
            now = time.time()
            if now >= next_trigger:
                try:
                    admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(model="m", reason="soak"), timeout=10)
                    counts["triggers"] += 1
                except grpc.RpcError as e:
                    errors.append(f"trigger: {e.code()} {e.details()}")
                next_trigger = now + 180
            st = admin.Status(admin_pb2.StatusRequest(), timeout=10)
            nver = len(admin.ListModels(admin_pb2.ListModelsRequest(model="m"), timeout=10).versions)
            r = rss_kib(featd.p.pid)
            mem = {k: (H.metric(addrs["admin"], "featd_store_memory_bytes", f'kind="{k}"') or 0) / 1024
                   for k in ("memtables", "block_cache", "table_readers")}
            mem["cache"] = (H.metric(addrs["admin"], "featd_cache_bytes") or 0) / 1024
            with lock:
                c = dict(counts)
            samples.append({"t": now - t0, "rss": r["VmRSS"], "hwm": r["VmHWM"], "applied": st.events_applied,
                            "memtables": mem["memtables"], "block_cache": mem["block_cache"],
                            "table_readers": mem["table_readers"], "cache": mem["cache"],
                            "versions": nver, "retrain": nver > seen_versions and seen_versions > 0, **c})
            seen_versions = nver
            if len(samples) % 12 == 0:
                s = samples[-1]
                H.log(f"{s['t'] / 60:5.1f} min: RSS {s['rss'] / 1024:.1f} MiB (peak {s['hwm'] / 1024:.1f}), "
                      f"applied {s['applied']}, lookups {s['lookups']}, predicts {s['predicts']}, "
                      f"versions {nver}, errors {s['errors']}")
        stop.set()
        workers.join(60)
        code = featd.stop(timeout=120)
        with open(os.path.join(out_dir, "soak.csv"), "w") as f:
            cols = ["t", "rss", "hwm", "memtables", "block_cache", "table_readers", "cache", "applied", "versions", "events", "labels", "lookups", "predicts", "errors"]
            f.write(",".join(cols) + "\n")
            for s in samples:
                f.write(",".join(str(round(s[c], 1) if isinstance(s[c], float) else s[c]) for c in cols) + "\n")
        svg_plot(samples, os.path.join(out_dir, "soak-rss.svg"),
                 f"featd RSS over a {args.minutes:g}-minute soak (ingest {args.rate}/s + lookups + predictions + retrains)")
        half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2]
        n = len(half)
        mx = sum(s["t"] for s in half) / n
        my = sum(s["rss"] for s in half) / n
        slope = sum((s["t"] - mx) * (s["rss"] - my) for s in half) / max(sum((s["t"] - mx) ** 2 for s in half), 1e-9)
        summary = {
            "minutes": args.minutes, "rate": args.rate, "samples": len(samples),
            "rss_mib_at": {f"{q}": round(samples[min(len(samples) - 1, int(len(samples) * q))]["rss"] / 1024, 1)
                           for q in (0.1, 0.25, 0.5, 0.75, 1.0)},
            "rss_mib_max": round(max(s["rss"] for s in samples) / 1024, 1),
            "second_half_growth_mib_per_hour": round(slope * 3600 / 1024, 2),
            "events_applied": samples[-1]["applied"], "lookups": samples[-1]["lookups"],
            "predicts": samples[-1]["predicts"], "versions": samples[-1]["versions"],
            "triggers": counts["triggers"], "errors": samples[-1]["errors"], "first_errors": errors[:5],
            "featd_exit": code,
        }
        print(json.dumps(summary, indent=1))
        assert code == 0, f"featd exited {code} (under ASan: a leak or an error report)\n" + featd.tail(60)
        ok = True
    finally:
        stop.set()
        if featd.alive():
            featd.kill9()
        broker.stop()
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
