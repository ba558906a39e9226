#!/usr/bin/python3
"""Models end to end, with real clients (confluent-kafka, grpcio, featctl).

Entities' features and labels come from a known generative model through
Kafka.  After each label the producer also writes a "leak" feature equal to
the label: a point-in-time-correct training set never sees it, so the
validation AUC must stay near the Bayes AUC of the true model rather than
jump to 1.  Then:
  - featctl retrain --wait shows a progress bar and registers v1 (champion);
  - Predict by keys scores held-out entities with an AUC near the Bayes AUC,
    and equals Predict by raw rows built from GetOnlineFeatures; linear
    regression's RMSE is near the noise; the MLP learns too;
  - scores are cached and a feature write invalidates them;
  - v2 becomes the challenger; promote/rollback via featctl; under load from
    four threads, 20 swaps fail no request and every reply's scores are
    exactly those of the version it names;
  - repeated TriggerRetrain calls coalesce (while a run is in progress);
  - featctl score as of a past time equals Predict on the values the test
    itself knows were current then;
  - every served prediction is logged (metric, store, Kafka topic);
  - the error contract; a long training run blocks neither serving nor
    ingest, and SIGTERM cancels it."""
import csv
import json
import math
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

FEATS = ["x", "n", "c", "b", "leak"]
CEFF = {"a": 0.8, "b": 0.0, "c": -0.5, "d": 0.2}
NTRAIN, NHOLD = 3000, 500


def config(wd):
    return f"""
[featd]
data_dir = {wd.file("data")}
progress_interval = 0
[serve]
listen = 127.0.0.1:0
max_keys = 1000
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = true
partitions = 1
session.timeout.ms = 6000
[table user]
topic = user_events
ttl = 1d
feature.x = double
feature.n = int64
feature.c = string
feature.b = bool
feature.leak = double
[model churn]
table = user
label_topic = churn_labels
task = logreg
policy = manual
min_rows = 200
epochs = 10
learning_rate = 0.03
device = cpu
prediction_topic = churn_predictions
[model spend]
table = user
label_topic = spend_labels
task = linreg
features = x,n,c,b
min_rows = 200
epochs = 20
learning_rate = 0.03
device = cpu
[model deep]
table = user
label_topic = deep_labels
task = mlp
features = x,n,c,b
hidden = 16
epochs = 20
learning_rate = 0.01
min_rows = 200
device = cpu
[model slow]
table = user
label_topic = slow_labels
task = mlp
features = x,n,c,b
hidden = 128
epochs = 100000
batch_size = 16
min_rows = 200
device = cpu
[model tiny]
table = user
label_topic = tiny_labels
task = logreg
min_rows = 1000000
"""


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "models")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd))
    featd = H.start_featd(args, wd, cfg)
    B = H.bins(args)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        ch = grpc.insecure_channel(addrs["grpc"])
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_ready(admin)

        def featctl(*a, check=True):
            r = H.featctl(args, "--addr", addrs["grpc"], "--timeout", "30", *a, timeout=300)
            if check:
                assert r.returncode == 0, f"featctl {a}: {r.returncode}\n{r.stdout}\n{r.stderr}"
            return r

        # ---- the data: a known generative model ----
        rnd = random.Random(11)
        now = int(time.time() * 1000)
        ents = {}
        for i in range(NTRAIN + NHOLD):
            key = f"u{i}" if i < NTRAIN else f"h{i - NTRAIN}"
            x, n = rnd.gauss(0, 1), rnd.randint(0, 20)
            c, b = rnd.choices("abcd", weights=[4, 3, 2, 1])[0], rnd.random() < 0.3
            z = 1.5 * x + 0.1 * (n - 10) + CEFF[c] - 0.7 * b
            y = 1 if rnd.random() < sigmoid(z) else 0
            r = 3 * x + 0.2 * n + 2 * CEFF[c] - b + rnd.gauss(0, 0.5)
            t0 = now - 3 * 3600_000 + i * 1000
            ents[key] = dict(x=x, n=n, c=c, b=b, leak=rnd.gauss(0, 1), z=z, y=y, r=r, t0=t0)
        prod = H.producer(bs)
        for key, e in ents.items():
            prod.produce("user_events", key=key, value=json.dumps(
                {"key": key, "ts": e["t0"], "features": {f: e[f] for f in FEATS}}).encode())
            if key.startswith("u"):   # training entities: labels ten minutes later, then the leak
                lt = e["t0"] + 600_000
                e["lt"] = lt
                for m, topic, v in (("churn", "churn_labels", e["y"]), ("spend", "spend_labels", e["r"]),
                                    ("deep", "deep_labels", e["y"]), ("slow", "slow_labels", e["y"])):
                    prod.produce(topic, key=key, value=json.dumps({"model": m, "key": key, "ts": lt, "label": v}).encode())
                prod.produce("user_events", key=key, value=json.dumps(
                    {"key": key, "ts": lt + 600_000, "features": {"leak": 10.0 * e["y"]}}).encode())
            prod.poll(0)
        assert prod.flush(30) == 0
        n_events = len(ents) + NTRAIN
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= n_events, 60,
                   "events applied")
        H.wait_for(lambda: (H.metric(addrs["admin"], "featd_ingest_labels_total") or 0) >= 4 * NTRAIN, 60, "labels applied")
        H.log(f"{n_events} events and {4 * NTRAIN} labels applied")

        # ---- errors before any version exists ----
        IA, NF, FP = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION

        def expect(code, fn, needle=""):
            try:
                fn()
            except grpc.RpcError as e:
                assert e.code() == code, f"got {e.code()} ({e.details()}), want {code}"
                assert needle in e.details(), f"message {e.details()!r} lacks {needle!r}"
                return
            raise AssertionError(f"call succeeded, want {code}")

        P = lambda **kw: lambda: feat.Predict(fs.PredictRequest(**kw), timeout=10)  # noqa: E731
        expect(NF, P(model="churn", entity_keys=["h1"]), "featctl retrain churn")
        expect(NF, P(model="nope", entity_keys=["h1"]), "nope")
        expect(IA, P(entity_keys=["h1"]), "model is required")
        r = featctl("retrain", "tiny", "--wait", check=False)
        assert r.returncode == 1 and "model.tiny.min_rows" in r.stderr, (r.returncode, r.stderr)

        # ---- v1 through featctl, with a progress bar ----
        r = featctl("retrain", "churn", "--wait", "--reason", "first")
        assert "registered v1" in r.stdout, r.stdout
        assert "100% done" in r.stderr and "[######" in r.stderr, r.stderr
        mv = json.loads(featctl("--json", "models", "churn").stdout)["versions"]
        assert len(mv) == 1 and mv[0]["version"] == 1 and mv[0]["stage"] == "champion", mv
        v1 = mv[0]
        assert v1["trigger"] == "operator" and v1["features"] == FEATS and v1["table"] == "user", v1
        assert v1["train_rows"] + v1["validation_rows"] == NTRAIN and v1["validation_rows"] == NTRAIN // 4, v1
        lts = sorted(e["lt"] for e in ents.values() if "lt" in e)
        assert v1["data_from_ms"] == lts[0] and v1["data_to_ms"] == lts[-1], v1
        assert {"learning_rate", "l2", "epochs"} <= set(v1["params"]), v1["params"]
        for k in ("auc", "log_loss", "accuracy"):
            assert k in v1["validation_metrics"], v1
        # point in time: the leak (written after each label) was never seen
        valid = [e for e in ents.values() if "lt" in e and e["lt"] >= lts[NTRAIN - NTRAIN // 4]]
        bayes_valid = H.auc([e["z"] for e in valid], [e["y"] for e in valid])
        vauc = v1["validation_metrics"]["auc"]
        H.log(f"v1 validation AUC {vauc:.4f}; Bayes AUC on the same rows {bayes_valid:.4f}")
        assert vauc < 0.97 and abs(vauc - bayes_valid) < 0.04, (vauc, bayes_valid)

        # ---- Predict by keys: quality on held-out entities ----
        hold = [k for k in ents if k.startswith("h")]
        res = feat.Predict(fs.PredictRequest(model="churn", entity_keys=hold), timeout=10)
        served = len(hold)
        assert res.version == 1 and res.model == "churn" and len(res.predictions) == len(hold)
        score1 = {p.entity_key: p.score for p in res.predictions}
        assert all(p.missing_features == 0 for p in res.predictions)
        hauc = H.auc([score1[k] for k in hold], [ents[k]["y"] for k in hold])
        bayes_hold = H.auc([ents[k]["z"] for k in hold], [ents[k]["y"] for k in hold])
        H.log(f"held-out AUC {hauc:.4f}, Bayes {bayes_hold:.4f}")
        assert hauc > bayes_hold - 0.03, (hauc, bayes_hold)

        # ... and equals Predict by raw rows built from GetOnlineFeatures
        def raw_rows(keys):
            got = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=keys, features=FEATS),
                                         timeout=10)
            rows = []
            for row in got.rows:
                rr = fs.RawRow(entity_key=row.entity_key)
                for f, fv in zip(got.features, row.values):
                    if fv.status == fs.PRESENT:
                        rr.features[f].CopyFrom(fv.value)
                rows.append(rr)
            return rows
        rawres = feat.Predict(fs.PredictRequest(model="churn", rows=raw_rows(hold), batch=True), timeout=10)
        for p in rawres.predictions:
            assert abs(p.score - score1[p.entity_key]) < 1e-12, (p.entity_key, p.score, score1[p.entity_key])
        # an unknown entity: every feature missing, imputed; same as an empty raw row
        nob = feat.Predict(fs.PredictRequest(model="churn", entity_keys=["nobody"]), timeout=10).predictions[0]
        served += 1
        empty = feat.Predict(fs.PredictRequest(model="churn", rows=[fs.RawRow()], batch=True), timeout=10).predictions[0]
        assert nob.missing_features == 5 and empty.missing_features == 5 and nob.score == empty.score, (nob, empty)

        # ---- the score cache: hits, then a write invalidates ----
        hits0 = H.metric(addrs["admin"], "featd_cache_score_requests_total", 'result="hit"') or 0
        again = feat.Predict(fs.PredictRequest(model="churn", entity_keys=hold[:100]), timeout=10)
        served += 100
        assert all(p.score == score1[p.entity_key] for p in again.predictions)
        hits1 = H.metric(addrs["admin"], "featd_cache_score_requests_total", 'result="hit"')
        assert hits1 - hits0 >= 90, (hits0, hits1)
        prod.produce("user_events", key="h0", value=json.dumps(
            {"key": "h0", "ts": int(time.time() * 1000), "features": {"x": 4.0}}).encode())
        prod.flush(10)
        H.wait_for(lambda: feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=["h0"],
                                                                              features=["x"]), timeout=5)
                   .rows[0].values[0].value.double_value == 4.0, 30, "h0 updated")
        ents["h0"]["x_new"] = 4.0
        new = feat.Predict(fs.PredictRequest(model="churn", entity_keys=["h0"]), timeout=10).predictions[0].score
        served += 1
        want = feat.Predict(fs.PredictRequest(model="churn", rows=raw_rows(["h0"]), batch=True), timeout=10)
        assert new == want.predictions[0].score and new != score1["h0"], (new, want, score1["h0"])
        H.log("Predict equals raw-row Predict on online values; cached scores invalidated by a write")

        # ---- regression and MLP ----
        featctl("retrain", "spend", "--wait")
        featctl("retrain", "deep", "--wait")
        sp = feat.Predict(fs.PredictRequest(model="spend", entity_keys=hold[1:]), timeout=10)
        served += len(hold) - 1
        rmse = math.sqrt(sum((p.score - ents[p.entity_key]["r"]) ** 2 for p in sp.predictions) / len(sp.predictions))
        dp = feat.Predict(fs.PredictRequest(model="deep", entity_keys=hold[1:]), timeout=10)
        served += len(hold) - 1
        dauc = H.auc([p.score for p in dp.predictions], [ents[p.entity_key]["y"] for p in dp.predictions])
        H.log(f"linreg held-out RMSE {rmse:.4f} (noise 0.5); MLP held-out AUC {dauc:.4f}")
        assert rmse < 0.6, rmse
        assert dauc > bayes_hold - 0.04, (dauc, bayes_hold)

        # ---- v2 (on 500 more labels): challenger; promote, rollback ----
        labels0 = H.metric(addrs["admin"], "featd_ingest_labels_total")
        for i in range(500):
            key, x = f"v{i}", rnd.gauss(0, 1)
            t0 = now - 3600_000 + i * 1000
            y = 1 if rnd.random() < sigmoid(1.5 * x) else 0
            prod.produce("user_events", key=key, value=json.dumps({"key": key, "ts": t0, "features": {"x": x}}).encode())
            prod.produce("churn_labels", key=key, value=json.dumps(
                {"model": "churn", "key": key, "ts": t0 + 1000, "label": y}).encode())
        prod.flush(30)
        H.wait_for(lambda: H.metric(addrs["admin"], "featd_ingest_labels_total") >= labels0 + 500, 30, "v2's labels")
        r = featctl("retrain", "churn", "--wait")
        assert "registered v2" in r.stdout, r.stdout
        mv = {v["version"]: v for v in json.loads(featctl("models", "churn", "--json").stdout)["versions"]}
        assert mv[1]["stage"] == "champion" and mv[2]["stage"] == "challenger", mv
        pc = json.loads(featctl("--json", "predict", "churn", "h1", "h2", "--alias", "challenger").stdout)
        assert pc["version"] == 2, pc
        served += 2
        r = featctl("rollback", "churn", check=False)
        assert r.returncode == 1 and "FAILED_PRECONDITION" in r.stderr, r.stderr
        r = featctl("promote", "churn")
        assert "v2 is the champion" in r.stdout, r.stdout
        assert feat.Predict(fs.PredictRequest(model="churn", entity_keys=["h1"]), timeout=10).version == 2
        served += 1
        r = featctl("rollback", "churn")
        assert "v1 is the champion" in r.stdout, r.stdout
        expect(NF, P(model="churn", entity_keys=["h1"], version=9), "no version 9")
        expect(IA, P(model="churn", entity_keys=["h1"], alias="best"), "alias")
        expect(FP, lambda: admin.Promote(admin_pb2.PromoteRequest(model="spend"), timeout=5), "no challenger")

        # ---- swaps under load: no failed request, no mixed versions ----
        keys = hold[:8]
        base = {}
        for v in (1, 2):
            pr = feat.Predict(fs.PredictRequest(model="churn", entity_keys=keys, version=v), timeout=10)
            served += len(keys)
            base[v] = {p.entity_key: p.score for p in pr.predictions}
        assert base[1] != base[2]
        stop, errors, seen, calls = threading.Event(), [], {1: 0, 2: 0}, [0]
        lock = threading.Lock()

        def load():
            stub = feature_service_pb2_grpc.FeatureServiceStub(grpc.insecure_channel(addrs["grpc"]))
            while not stop.is_set():
                try:
                    pr = stub.Predict(fs.PredictRequest(model="churn", entity_keys=keys), timeout=10)
                except grpc.RpcError as e:
                    with lock:
                        errors.append(f"{e.code()}: {e.details()}")
                    continue
                mixed = [p.entity_key for p in pr.predictions if p.score != base[pr.version][p.entity_key]]
                with lock:
                    calls[0] += 1
                    seen[pr.version] += 1
                    if mixed:
                        errors.append(f"v{pr.version} reply with other scores for {mixed[:3]}")
                time.sleep(0.005)  # keep the logged predictions within the mock broker's log limit
        workers = H.Workers(stop)
        for _ in range(4):
            workers.start(load)
        time.sleep(0.3)
        for _ in range(10):
            admin.Promote(admin_pb2.PromoteRequest(model="churn", version=2), timeout=5)
            time.sleep(0.05)
            admin.Rollback(admin_pb2.RollbackRequest(model="churn"), timeout=5)
            time.sleep(0.05)
        time.sleep(0.2)
        stop.set()
        workers.join(60)
        served += calls[0] * len(keys)
        H.log(f"20 swaps under load: {calls[0]} Predict calls, versions seen {seen}, errors {len(errors)}")
        assert not errors, errors[:5]
        assert seen[1] > 0 and seen[2] > 0, seen

        # ---- a third version (coalescing is checked on the slow model below:
        # a churn run can finish before a second call arrives) ----
        t1 = admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(model="churn", reason="a"), timeout=5)
        st = H.wait_for(lambda: (lambda s: s if s.state in ("succeeded", "failed") else None)(
            admin.GetRetrainStatus(admin_pb2.GetRetrainStatusRequest(model="churn", run_id=t1.run_id), timeout=5)),
            120, "the third churn run")
        assert st.state == "succeeded" and st.version == 3 and st.progress == 1.0, st
        expect(NF, lambda: admin.GetRetrainStatus(admin_pb2.GetRetrainStatusRequest(model="churn", run_id=999), timeout=5))

        # ---- featctl score as of a past time ----
        t_past = now - 3600_000 // 2   # every entity's first event is older; h0's update is newer
        prod.produce("user_events", key="late", value=json.dumps(
            {"key": "late", "ts": int(time.time() * 1000), "features": {"x": 1.0}}).encode())
        prod.flush(10)
        H.wait_for(lambda: feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=["late"]),
                                                  timeout=5).rows[0].values[0].status == fs.PRESENT, 30, "late")
        score_keys = hold[:300] + ["late"]
        kf = wd.file("keys.txt")
        open(kf, "w").write("\n".join(score_keys[100:]) + "\n")
        out = wd.file("scores.csv")
        r = featctl("score", "churn", "--at", str(t_past), "--version", "1", "--out", out, "--keys-file", kf,
                    "--chunk", "64", *score_keys[:100])
        rows = list(csv.DictReader(open(out)))
        assert [r_["entity_key"] for r_ in rows] == score_keys, "CSV rows are not in key order"
        expect_rows = []
        for k in score_keys:
            rr = fs.RawRow(entity_key=k)
            if k != "late":  # the values the test wrote at t0 (h0's update and the leak are later)
                e = ents[k]
                rr.features["x"].double_value = e["x"]
                rr.features["n"].int64_value = e["n"]
                rr.features["c"].string_value = e["c"]
                rr.features["b"].bool_value = e["b"]
                rr.features["leak"].double_value = e["leak"]
            expect_rows.append(rr)
        want = feat.Predict(fs.PredictRequest(model="churn", version=1, rows=expect_rows, batch=True), timeout=10)
        for row, p in zip(rows, want.predictions):
            assert abs(float(row["score"]) - p.score) < 1e-12, (row, p)
            assert int(row["missing_features"]) == p.missing_features and row["version"] == "1", (row, p)
            assert int(row["as_of_ms"]) == t_past
        assert rows[-1]["missing_features"] == "5"
        assert float(rows[0]["score"]) == score1["h0"]  # h0 as it was before the update
        H.log(f"featctl score: {len(rows)} rows as of {t_past} equal Predict on the values known then")

        # ---- the prediction log ----
        H.wait_for(lambda: H.metric(addrs["admin"], "featd_predictions_logged_total") == served, 30,
                   f"{served} predictions logged")
        churn_served = served - 2 * (len(hold) - 1)
        msgs = H.read_topic(bs, "churn_predictions")
        assert len(msgs) == churn_served, (len(msgs), churn_served)
        m0 = json.loads(msgs[0].value())
        assert m0["model"] == "churn" and m0["version"] == 1 and m0["key"] == hold[0] and abs(m0["score"] - score1[hold[0]]) < 1e-15, m0
        assert H.metric(addrs["admin"], "featd_predictions_dropped_total") == 0

        # ---- a long run blocks neither serving nor ingest; SIGTERM cancels it ----
        s1 = admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(model="slow", reason="a"), timeout=5)
        s2 = admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(model="slow", reason="b"), timeout=5)
        assert not s1.coalesced and s2.coalesced and s1.run_id == s2.run_id, (s1, s2)
        H.wait_for(lambda: admin.GetRetrainStatus(admin_pb2.GetRetrainStatusRequest(model="slow"), timeout=5).phase
                   == "training", 60, "slow run training")
        applied0 = admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied
        for i in range(500):
            prod.produce("user_events", key=f"w{i}", value=json.dumps({"key": f"w{i}", "ts": now, "features": {"x": 1.5}}).encode())
        prod.flush(10)
        t0 = time.time()
        for i in range(200):
            feat.Predict(fs.PredictRequest(model="churn", entity_keys=keys[:10]), timeout=5)
            feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=keys[:10]), timeout=5)
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= applied0 + 500, 30,
                   "ingest during training")
        st = admin.GetRetrainStatus(admin_pb2.GetRetrainStatusRequest(model="slow"), timeout=5)
        assert st.state == "running", f"the slow run finished too soon to show anything: {st}"
        H.log(f"during a training run: 400 calls and 500 events applied in {time.time() - t0:.2f}s, run still "
              f"{st.state} at {st.progress:.0%}")
        t0 = time.time()
        code = featd.stop(timeout=30)
        assert code == 0, code
        H.log(f"SIGTERM stopped featd with a training run in progress in {time.time() - t0:.2f}s")

        # ---- the store: registry consistent, logged predictions exact ----
        audit = subprocess.run([B["inspect"], "--config", cfg, "models"], capture_output=True, text=True)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        lines = [json.loads(l_) for l_ in audit.stdout.splitlines()]
        churn = [l_ for l_ in lines if l_["model"] == "churn" and l_["kind"] == "model_version"]
        assert [l_["version"] for l_ in churn] == [1, 2, 3] and all(l_["ok"] for l_ in lines), lines
        assert not [l_ for l_ in lines if l_["model"] == "slow"], "the cancelled run registered a version"
        preds = [p for p in H.inspect(args, cfg, "predictions") if p["model"] == "churn"]
        logged = {(p["key"], p["version"]): p["score"] for p in preds}
        for k in hold[1:100]:
            assert logged.get((k, 1)) == score1[k], (k, logged.get((k, 1)), score1[k])
        ok = True
    finally:
        if featd.alive():
            featd.stop()
        if not ok:
            print(featd.tail(60))
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
