#!/usr/bin/python3
"""Drift monitoring end to end.  A producer writes a table's events through
Kafka: a reference, then 20 windows of stationary data (no alert may be
raised), then one feature shifted by one standard deviation (an alert for that
feature only must reach the Kafka alert topic and an HTTP webhook within one
window; the webhook fails the first POST, so the alert must arrive by retry),
then the original distribution again (a recovery event must follow).  Reports
are checked over gRPC, /v1/drift, featctl and /metrics, and the drift page is
rendered by headless Chromium."""
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

WINDOW = 1000
REF = 2000


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "drift")
    H.gen_protos(args, wd.path)
    import grpc
    from confluent_kafka import Consumer, TopicPartition
    from featd.v1 import admin_pb2, admin_pb2_grpc, event_pb2
    hook = H.Webhook(fail_first=1)   # the first delivery attempt fails; a handler's exception fails the test
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 1
session.timeout.ms = 6000
[drift]
window_events = {WINDOW}
reference_events = {REF}
alert_topic = drift_alerts
webhook = {hook.url("/hooks/drift")}
[table t]
topic = t_events
feature.x = double
feature.y = double
feature.c = string
feature.b = bool
""")
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        admin = admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(addrs["grpc"]))
        H.wait_ready(admin)
        rnd = random.Random(42)
        prod = H.producer(bs)
        sent = [0]

        def send(n, x_mean):
            ts = int(time.time() * 1000)
            for _ in range(n):
                i = sent[0]
                sent[0] += 1
                ev = {"ts": ts, "features": {"x": rnd.gauss(x_mean, 1.0), "y": rnd.gauss(5.0, 2.0),
                                             "c": rnd.choices("abc", weights=[5, 3, 2])[0], "b": rnd.random() < 0.3}}
                prod.produce("t_events", key=f"k{i % 500}", value=json.dumps(ev).encode())
                prod.poll(0)
            prod.flush(30)

        def report():
            return {f.feature: f for f in admin.GetDriftReport(admin_pb2.GetDriftReportRequest(table="t"), timeout=5).features}

        def windows_judged(n):
            def ok_():
                js = json.loads(urllib.request.urlopen(f"http://{addrs['admin']}/v1/drift?table=t&feature=x", timeout=5).read())
                return js["features"] and js["features"][0]["windows"] >= n
            H.wait_for(ok_, 60, f"{n} windows judged", interval=0.05)

        def feed(nwin, x_mean):
            # One window at a time: the monitor judges a burst of at most three
            # queued windows at their exact size (more make the live window grow,
            # counted as delayed), and this test numbers windows exactly.
            for _ in range(nwin):
                send(WINDOW, x_mean)
                windows_judged((sent[0] - REF) // WINDOW)

        def alerts_on_topic():
            c = Consumer({"bootstrap.servers": bs, "group.id": f"t{time.time()}", "enable.auto.commit": False})
            c.assign([TopicPartition("drift_alerts", 0, 0)])
            out, idle = [], 0
            while idle < 3:
                ms = c.consume(100, timeout=0.5)
                idle = idle + 1 if not ms else 0
                for m in ms:
                    if not m.error():
                        hdr = dict(m.headers() or [])
                        assert hdr.get("content-type") == b"application/x-protobuf", hdr
                        a = event_pb2.DriftAlert()
                        a.ParseFromString(m.value())
                        out.append(a)
            c.close()
            return out

        # ---- reference, then 20 stationary windows: no alert ----
        send(REF, 0.0)
        feed(20, 0.0)
        r = report()
        assert set(r) == {"x", "y", "c", "b"}, r.keys()
        for f, e in r.items():
            assert e.status == "ok", f"{f} is {e.status} after stationary data"
            assert e.reference_source == "first_n" and e.reference_size == REF, (f, e.reference_source, e.reference_size)
        time.sleep(1.5)
        assert not alerts_on_topic(), "stationary data raised an alert on Kafka"
        assert hook.calls == 0, "stationary data raised an alert at the webhook"
        H.log("20 stationary windows: every feature ok, no alert anywhere")

        # ---- shift x by one standard deviation ----
        feed(3, 1.0)
        r = report()
        assert r["x"].status == "drifting", r["x"]
        assert r["x"].ks > 0.2 and r["x"].ks_p_value < 1e-6, r["x"]
        for f in ("y", "c", "b"):
            assert r[f].status == "ok", f"{f} is {r[f].status}: only x shifted"
        got = H.wait_for(lambda: [a for a in alerts_on_topic() if a.state == event_pb2.DriftAlert.DRIFTING], 20,
                         "the alert on the Kafka topic")
        assert len(got) == 1 and got[0].table == "t" and got[0].feature == "x", got
        a = got[0]
        window_no = int(a.id.rsplit(".", 1)[1])
        assert window_no == 21, f"alert in window {window_no}; the shift began in window 21"
        assert a.statistic in ("ks", "kl", "psi") and a.value >= a.threshold and a.window_size == WINDOW
        assert a.reference_size == REF and a.ks > 0.2
        H.wait_for(lambda: any(p["state"] == "DRIFTING" for p in hook.posts), 30, "the alert at the webhook (retried)",
                   watch=hook)
        wp = [p for p in hook.posts if p["state"] == "DRIFTING"]
        assert len(wp) == 1 and wp[0]["feature"] == "x" and wp[0]["table"] == "t" and wp[0]["id"] == a.id, wp
        assert hook.calls >= 2, "the first POST failed, so a retry must have happened"
        H.log(f"shift: one alert for t.x in window {window_no} on Kafka and (after a retry) at the webhook; "
              f"KS {a.ks:.3f}, PSI {a.psi:.3f}")

        # ---- reports while drifting ----
        metrics = urllib.request.urlopen(f"http://{addrs['admin']}/metrics", timeout=5).read().decode()
        assert 'featd_drift_state{table="t",feature="x"} 2' in metrics
        assert 'featd_drift_state{table="t",feature="y"} 1' in metrics
        assert 'featd_drift_alerts_total{state="drifting"} 1' in metrics
        assert 'featd_webhook_posts_total{result="failed"} 1' in metrics
        assert 'featd_drift_windows_delayed_total 0' in metrics, "a paced producer must not delay windows"
        pt = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
        assert pt.returncode == 0, pt.stdout + pt.stderr
        out = H.featctl(args, "--config", cfg, "--json", "drift", "t", timeout=20)
        assert out.returncode == 0, out.stderr
        st = {f["feature"]: f["status"] for f in json.loads(out.stdout)["features"]}
        assert st == {"x": "drifting", "y": "ok", "c": "ok", "b": "ok"}, st
        out = H.featctl(args, "--config", cfg, "drift", timeout=20)
        assert out.returncode == 0 and "drifting" in out.stdout, out
        out = H.featctl(args, "--config", cfg, "drift", "nosuch", timeout=20)
        assert out.returncode == 1 and "INVALID_ARGUMENT" in out.stderr, out
        js = json.loads(urllib.request.urlopen(f"http://{addrs['admin']}/v1/drift", timeout=5).read())
        x = [f for f in js["features"] if f["feature"] == "x"][0]
        assert x["status"] == "drifting" and len(x["history"]) == 23 and x["history"][-1]["drift"] is True
        assert len(x["histogram"]["bins"]) >= 5 and abs(sum(b["reference"] for b in x["histogram"]["bins"]) - 1) < 1e-6
        c = [f for f in js["features"] if f["feature"] == "c"][0]
        assert c["kind"] == "categorical" and {b["label"] for b in c["histogram"]["bins"]} >= {"a", "b", "c"}

        # ---- the drift page, rendered by headless Chromium ----
        page = urllib.request.urlopen(f"http://{addrs['admin']}/drift", timeout=5).read().decode()
        assert "http://" not in page and "https://" not in page and "<script" not in page, "the page must be self-contained"
        shot = wd.file("drift.png")
        prof = tempfile.mkdtemp(prefix="chrome-")
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={prof}", "--window-size=1200,1800"]
        url = f"http://{addrs['admin']}/drift"
        r1 = subprocess.run(["chromium", *flags, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
        assert os.path.exists(shot) and os.path.getsize(shot) > 10000, f"no screenshot: {r1.stderr[-500:]}"
        with open(shot, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        dom = subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
        for needle in ['data-feature="t.x"', 'class="feature drifting"', 'class="hist"', 'class="trend"',
                       'class="threshold"', 'class="drift-point"', 'id="summary"', "4 monitored, 1 drifting"]:
            assert needle in dom, f"the rendered page lacks {needle}"
        assert dom.count("<svg") == 8, f"expected two charts per feature, got {dom.count('<svg')}"
        if args.keep:
            H.log("screenshot:", shot)
        H.log(f"drift page rendered by Chromium ({os.path.getsize(shot)} byte PNG; 4 features, 8 SVG charts)")

        # ---- back to the reference distribution: recovery ----
        feed(3, 0.0)
        assert report()["x"].status == "ok"
        rec = H.wait_for(lambda: [a for a in alerts_on_topic() if a.state == event_pb2.DriftAlert.RECOVERED], 20,
                         "the recovery event on Kafka")
        assert len(rec) == 1 and rec[0].feature == "x" and int(rec[0].id.rsplit(".", 1)[1]) == 25, rec
        H.wait_for(lambda: any(p["state"] == "RECOVERED" for p in hook.posts), 30, "the recovery at the webhook",
                   watch=hook)
        assert len(alerts_on_topic()) == 2, "one alert and one recovery, no storm"

        # ---- pinning a reference ----
        pr = admin.PinDriftReference(admin_pb2.PinDriftReferenceRequest(table="t", feature="y"), timeout=5)
        assert pr.pinned == 1
        H.wait_for(lambda: report()["y"].reference_source == "pinned", 10, "the pinned reference")
        try:
            admin.PinDriftReference(admin_pb2.PinDriftReferenceRequest(table="t", feature="nope"), timeout=5)
            raise AssertionError("pinning an unknown feature succeeded")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "nope" in e.details()
        H.log("recovery after 2 clean windows (window 25) on Kafka and at the webhook; pin works")
        assert featd.stop() == 0, featd.tail()
        hook.check()
        ok = True
    finally:
        hook.shutdown()
        if featd.alive():
            featd.kill9()
        if not ok:
            print(featd.tail(40))
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
