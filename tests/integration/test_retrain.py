#!/usr/bin/python3
"""Retrain triggers and live model quality, end to end through the daemon.

  - labels: model q retrains by itself after retrain_after_labels new labels;
  - schedule: model s retrains every retrain_every;
  - live quality: predictions served by q, joined with labels that arrive
    later, give featd_model_quality equal to the AUC the test computes from
    the scores it was served and the labels it sent; falling under
    quality_floor raises an alert (webhook, feature "quality");
  - drift: shifting a feature q reads raises a drift alert that asks for a
    retrain (drift.retrain_on_drift), and q gets a version whose trigger is
    drift and whose reason names the feature."""
import json
import math
import os
import random
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "retrain")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    hook = H.Webhook()   # a handler's exception fails the test (hook.check())
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
window_events = 500
reference_events = 500
retrain_on_drift = true
webhook = {hook.url("/alerts")}
[table t]
topic = t_events
feature.x = double
feature.c = string
[model q]
table = t
label_topic = q_labels
task = logreg
min_rows = 100
epochs = 5
retrain_after_labels = 800
quality_window = 200
quality_floor = 0.95
device = cpu
[model s]
table = t
label_topic = s_labels
task = linreg
min_rows = 100
epochs = 5
retrain_every = 3s
device = cpu
""")
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        ch = grpc.insecure_channel(addrs["grpc"])
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_ready(admin)
        prod = H.producer(bs)
        rnd = random.Random(5)
        now = int(time.time() * 1000)
        truth = {}

        def entity(key, ts, shift=0.0):
            x = rnd.gauss(shift, 1)
            c = rnd.choice("ab")
            truth[key] = (x, c)
            prod.produce("t_events", key=key, value=json.dumps({"key": key, "ts": ts, "features": {"x": x, "c": c}}).encode())
            return x, c

        def versions(model):
            return list(admin.ListModels(admin_pb2.ListModelsRequest(model=model), timeout=5).versions)

        # ---- labels and schedule ----
        for i in range(1000):
            key = f"e{i}"
            x, c = entity(key, now - 600_000 + i)
            y = 1 if rnd.random() < 1 / (1 + math.exp(-2 * x)) else 0
            lt = now - 300_000 + i
            prod.produce("q_labels", key=key, value=json.dumps({"model": "q", "key": key, "ts": lt, "label": y}).encode())
            prod.produce("s_labels", key=key, value=json.dumps(
                {"model": "s", "key": key, "ts": lt, "label": 2 * x + (c == "a")}).encode())
        prod.flush(30)
        vq = H.wait_for(lambda: versions("q"), 60, "q retrained by labels")
        assert vq[0].trigger == "labels" and vq[0].reason == "800 new labels", vq[0]
        assert vq[0].stage == "champion"
        H.log(f"labels: q v{vq[0].version} trained on {vq[0].train_rows + vq[0].validation_rows} rows "
              f"(trigger {vq[0].trigger}: {vq[0].reason})")
        vs = H.wait_for(lambda: [v for v in versions("s") if v.trigger == "schedule"], 30, "s retrained by schedule")
        H.log(f"schedule: s v{vs[-1].version} (trigger {vs[-1].trigger}); "
              f"s has {len(versions('s'))} version(s) so far")
        two = H.wait_for(lambda: len([v for v in versions("s") if v.trigger == "schedule"]) >= 2, 30,
                         "a second scheduled run")
        assert two

        # ---- live quality: served scores joined with later labels ----
        keys = [f"p{i}" for i in range(300)]
        for k in keys:
            entity(k, int(time.time() * 1000))
        prod.flush(30)
        H.wait_for(lambda: all(r.values[0].status == fs.PRESENT for r in feat.GetOnlineFeatures(
            fs.GetOnlineFeaturesRequest(table="t", entity_keys=keys), timeout=5).rows), 30, "p* applied")
        res = feat.Predict(fs.PredictRequest(model="q", entity_keys=keys), timeout=10)
        served = {p.entity_key: p.score for p in res.predictions}
        H.wait_for(lambda: H.metric(addrs["admin"], "featd_predictions_logged_total") == len(keys), 30, "logged")
        ys = []
        lt = int(time.time() * 1000) + 1000
        for k in keys:   # a label only loosely related to x: live AUC well under the floor
            x, _ = truth[k]
            y = 1 if rnd.random() < 1 / (1 + math.exp(-0.3 * x)) else 0
            ys.append(y)
            prod.produce("q_labels", key=k, value=json.dumps({"model": "q", "key": k, "ts": lt, "label": y}).encode())
        prod.flush(30)
        try:
            H.wait_for(lambda: H.metric(addrs["admin"], "featd_model_quality_pairs_total", 'model="q"') == len(keys), 30,
                       "pairs joined")
        except AssertionError:
            print([l_ for l_ in urllib.request.urlopen(f"http://{addrs['admin']}/metrics").read().decode().splitlines()
                   if "quality" in l_])
            raise
        want = H.auc([served[k] for k in keys[-200:]], ys[-200:])   # the window: the last 200 pairs
        got = H.metric(addrs["admin"], "featd_model_quality", 'model="q",metric="auc"')
        H.log(f"live AUC {got:.6f}; computed from served scores and sent labels {want:.6f}")
        assert abs(got - want) < 1e-9, (got, want)
        qa = H.wait_for(lambda: [a for a in hook.posts if a.get("feature") == "quality"], 30, "quality alert", watch=hook)
        assert qa[0]["model"] == "q" and qa[0]["state"] == "DRIFTING" and qa[0]["statistic"] == "auc", qa[0]
        H.log(f"quality alert: {qa[0]}")

        # ---- drift asks for a retrain ----
        base = int(time.time() * 1000)
        for i in range(2000):
            entity(f"d{i}", base + i, shift=3.0)
        prod.flush(30)
        da = H.wait_for(lambda: [a for a in hook.posts if a.get("table") == "t" and a.get("feature") == "x"
                                 and a.get("state") == "DRIFTING"], 60, "drift alert on t.x", watch=hook)
        assert da[0]["retrain_requested"], da[0]
        vd = H.wait_for(lambda: [v for v in versions("q") if v.trigger == "drift" and "t.x" in v.reason], 60,
                        "q retrained on drift")
        H.log(f"drift: alert {da[0]['statistic']}={da[0]['value']:.3f} → q v{vd[0].version} ({vd[0].reason})")
        assert not [v for v in versions("s") if v.trigger == "drift" and "t.x" not in v.reason]
        hook.check()
        ok = featd.stop() == 0
        assert ok, "featd did not exit cleanly"
    finally:
        if featd.alive():
            featd.stop()
        if not ok:
            print(featd.tail(60))
        hook.shutdown()
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
