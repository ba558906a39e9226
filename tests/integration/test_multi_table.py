#!/usr/bin/python3
"""A model over two tables keyed by different entities, end to end.

Tables user (entity user_id: x) and merchant (entity merchant_id: risk);
model fraud reads x and merchant.risk, its labels carry merchant_id in
"keys".  Each merchant's risk changes over time, and every label's value is
2 x + 3 risk as of the label's time (computed here from the produced events),
so only a training set that joins the merchant table point in time at the
label's time, with the label's merchant, can be fitted by linear regression;
the current risks (rewritten after every label) would not fit.  Then:
  - the registered version names the features "x" and "merchant.risk";
  - Predict with entity_rows equals Predict by raw rows holding the values
    this script knows are current for that user and merchant;
  - GetOnlineFeatures with entity_rows and table-qualified features returns
    those values, rows aligned, entity_key the first feature's table's key;
  - entity_keys alone, or a row without merchant_id, is INVALID_ARGUMENT
    naming merchant_id;
  - featctl predict --keys gives the same scores;
  - a label without merchant_id is a dead letter (missing_label_key)."""
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

NU, NM, NHOLD = 400, 20, 40


def config(wd):
    return H.config_head(wd, progress="0") + f"""
[table user]
entity = user_id
topic = user_events
feature.x = double
[table merchant]
entity = merchant_id
topic = merchant_events
feature.risk = double
[model fraud]
table = user
label_topic = fraud_labels
task = linreg
features = x, merchant.risk
label_keys = merchant_id
min_rows = 100
epochs = 300
batch_size = 32
learning_rate = 0.05
l2 = 0
device = cpu
"""


def pit(history, t):
    """The latest value with event time <= t, or None (history: [(ts, v)])."""
    best = None
    for ts, v in history:
        if ts <= t and (best is None or ts >= best[0]):
            best = (ts, v)
    return best[1] if best else None


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "multi_table")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    cfg = wd.file("featd.ini")
    open(cfg, "w").write(config(wd))
    featd = H.start_featd(args, wd, cfg)
    ok = False
    try:
        addrs = H.featd_addrs(wd)
        bs = open(wd.file("data/kafka.bootstrap")).read().strip()
        ch = grpc.insecure_channel(addrs["grpc"])
        feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        H.wait_ready(admin)

        def featctl(*a):
            r = H.featctl(args, "--addr", addrs["grpc"], "--timeout", "30", *a, timeout=300)
            assert r.returncode == 0, f"featctl {a}: {r.returncode}\n{r.stdout}\n{r.stderr}"
            return r

        rnd = random.Random(5)
        now = int(time.time() * 1000)
        base = now - 4 * 3600_000
        prod = H.producer(bs)
        # merchants: a new risk every 10 minutes over 3 hours
        mhist = {}
        for j in range(NM):
            mk = f"m{j}"
            mhist[mk] = []
            for s in range(18):
                ts = base + s * 600_000 + j
                r = rnd.uniform(-1, 1)
                mhist[mk].append((ts, r))
                prod.produce("merchant_events", key=mk, value=json.dumps(
                    {"merchant_id": mk, "ts": ts, "features": {"risk": r}}).encode())
        # users and their labels, each with a merchant, at times across those 3 hours
        users, labels = {}, []
        for i in range(NU + NHOLD):
            uk = f"u{i}" if i < NU else f"h{i - NU}"
            x = rnd.gauss(0, 1)
            ut = base + rnd.randint(0, 600_000)
            users[uk] = (ut, x)
            prod.produce("user_events", key=uk, value=json.dumps(
                {"user_id": uk, "ts": ut, "features": {"x": x}}).encode())
            if i < NU:
                mk = f"m{rnd.randrange(NM)}"
                lt = base + 700_000 + rnd.randint(0, 9_500_000)
                y = 2 * x + 3 * pit(mhist[mk], lt)
                labels.append((uk, mk, lt, y))
                prod.produce("fraud_labels", key=uk, value=json.dumps(
                    {"model": "fraud", "key": uk, "ts": lt, "label": y, "keys": {"merchant_id": mk}}).encode())
        # after every label: each merchant's current risk moves far away
        for j in range(NM):
            mk = f"m{j}"
            ts = base + 3 * 3600_000 + 600_000 + j
            r = 50 + rnd.uniform(0, 10)
            mhist[mk].append((ts, r))
            prod.produce("merchant_events", key=mk, value=json.dumps(
                {"merchant_id": mk, "ts": ts, "features": {"risk": r}}).encode())
        # a label without merchant_id: a dead letter
        prod.produce("fraud_labels", key="u0", value=json.dumps(
            {"model": "fraud", "key": "u0", "ts": base + 800_000, "label": 1.0}).encode())
        assert prod.flush(30) == 0
        n_events = NM * 19 + NU + NHOLD
        H.wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).events_applied >= n_events, 60,
                   "events applied")
        H.wait_for(lambda: (H.metric(addrs["admin"], "featd_ingest_labels_total") or 0) >= NU, 60, "labels applied")
        H.wait_for(lambda: (H.metric(addrs["admin"], "featd_dead_letters_total", 'reason="missing_label_key"') or 0)
                   >= 1, 30, "the label without merchant_id dead-lettered")
        assert H.metric(addrs["admin"], "featd_dead_letters_total", 'reason="missing_label_key"') == 1
        assert H.metric(addrs["admin"], "featd_ingest_labels_total") == NU
        H.log(f"{n_events} events, {NU} labels applied; the label without merchant_id is a dead letter")

        # ---- training: the merchant table joined point in time at each label's time ----
        r = featctl("retrain", "fraud", "--wait")
        assert "registered v1" in r.stdout, r.stdout
        v1 = json.loads(featctl("--json", "models", "fraud").stdout)["versions"][0]
        assert v1["features"] == ["x", "merchant.risk"] and v1["table"] == "user", v1
        assert v1["train_rows"] + v1["validation_rows"] == NU, v1
        rmse = v1["validation_metrics"]["rmse"]
        ys = [lab[3] for lab in labels]
        sd = math.sqrt(sum((y - sum(ys) / len(ys)) ** 2 for y in ys) / len(ys))
        # what a join with the current risks would have to explain: 3 x the gap to the PIT value
        gap = math.sqrt(sum((3 * (mhist[mk][-1][1] - pit(mhist[mk], lt))) ** 2 for _, mk, lt, _ in labels) / NU)
        H.log(f"validation RMSE {rmse:.4f}; labels' sd {sd:.3f}; a join at the wrong time would be off by ~{gap:.1f}")
        assert rmse < 0.1 * sd and gap > 100 * rmse, (rmse, sd, gap)

        # ---- serving: each table's online value with its own key ----
        IA = grpc.StatusCode.INVALID_ARGUMENT

        def expect(code, fn, needle):
            try:
                fn()
            except grpc.RpcError as e:
                assert e.code() == code and needle in e.details(), (e.code(), e.details())
                return
            raise AssertionError(f"call succeeded, want {code}")

        hold = [f"h{i}" for i in range(NHOLD)]
        pairs = [(uk, f"m{rnd.randrange(NM)}") for uk in hold]
        pairs.append((hold[0], "m1"))  # the same user with another merchant: a row of its own
        pairs.append((hold[0], "m2"))
        rows = [fs.EntityKeys(keys={"user_id": u, "merchant_id": m}) for u, m in pairs]
        res = feat.Predict(fs.PredictRequest(model="fraud", entity_rows=rows), timeout=10)
        assert res.version == 1 and len(res.predictions) == len(pairs)
        raw = []
        for u, m in pairs:
            rr = fs.RawRow(entity_key=u)
            rr.features["x"].double_value = users[u][1]
            rr.features["merchant.risk"].double_value = mhist[m][-1][1]
            raw.append(rr)
        want = feat.Predict(fs.PredictRequest(model="fraud", rows=raw, batch=True), timeout=10)
        for (u, m), p, w in zip(pairs, res.predictions, want.predictions):
            assert p.entity_key == u and p.missing_features == 0, (u, m, p)
            assert p.score == w.score, (u, m, p.score, w.score)
            assert abs(p.score - (2 * users[u][1] + 3 * mhist[m][-1][1])) < 0.5, (u, m, p.score)
        assert res.predictions[-1].score != res.predictions[-2].score
        H.log(f"Predict by entity_rows equals raw-row Predict on both tables' current values ({len(pairs)} rows)")
        # featctl predict --keys: one row per --keys, the same scores
        pj = json.loads(featctl("--json", "predict", "fraud", "--keys", f"user_id={pairs[0][0]},merchant_id={pairs[0][1]}",
                                "--keys", f"merchant_id={pairs[1][1]},user_id={pairs[1][0]}").stdout)
        assert [p_["entity_key"] for p_ in pj["predictions"]] == [pairs[0][0], pairs[1][0]], pj
        assert [p_["score"] for p_ in pj["predictions"]] == [p_.score for p_ in res.predictions[:2]], pj
        # an unknown merchant: its feature is missing (imputed), the user's is read
        p = feat.Predict(fs.PredictRequest(model="fraud", entity_rows=[
            fs.EntityKeys(keys={"user_id": "h1", "merchant_id": "nobody"})]), timeout=10).predictions[0]
        assert p.missing_features == 1, p

        got = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(
            features=["merchant.risk", "user.x"], entity_rows=rows[:5]), timeout=10)
        assert list(got.features) == ["merchant.risk", "user.x"] and len(got.rows) == 5, got
        for (u, m), row in zip(pairs[:5], got.rows):
            assert row.entity_key == m, (row.entity_key, m)
            assert [v.status for v in row.values] == [fs.PRESENT, fs.PRESENT], row
            assert row.values[0].value.double_value == mhist[m][-1][1], (m, row)
            assert row.values[1].value.double_value == users[u][1], (u, row)
        got = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(
            table="user", features=["x", "merchant.risk"], entity_rows=rows[:2]), timeout=10)
        assert got.rows[1].entity_key == pairs[1][0] and got.rows[1].values[1].value.double_value == mhist[pairs[1][1]][-1][1]

        expect(IA, lambda: feat.Predict(fs.PredictRequest(model="fraud", entity_keys=["h1"]), timeout=10), "merchant_id")
        expect(IA, lambda: feat.Predict(fs.PredictRequest(model="fraud", entity_rows=[
            fs.EntityKeys(keys={"user_id": "h1"})]), timeout=10), "merchant_id")
        expect(IA, lambda: feat.Predict(fs.PredictRequest(model="fraud", entity_rows=[
            fs.EntityKeys(keys={"merchant_id": "m1"})]), timeout=10), "user_id")
        expect(IA, lambda: feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(
            features=["user.x", "merchant.risk"], entity_rows=[fs.EntityKeys(keys={"user_id": "h1"})]), timeout=10),
            "merchant_id")
        expect(IA, lambda: feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(
            features=["x"], entity_rows=rows[:1]), timeout=10), "names no table")
        H.log("missing entity keys are INVALID_ARGUMENT naming the entity")
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
