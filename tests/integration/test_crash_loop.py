#!/usr/bin/python3
"""Crash loop during ingest, serving and retraining.

featd ingests features and labels from a broker in another process
(featd-broker) while client threads call GetOnlineFeatures and Predict
without pause and model m retrains on a schedule, after every few hundred
labels and whenever the test asks (AdminService.TriggerRetrain).  featd is
killed with SIGKILL at random moments, some right after a retrain was
triggered, and restarted on the same data directory each time.

  - after every kill the registry on disk is consistent
    (`featd-inspect models` exits 0: no half-written version, aliases name
    existing versions, the next version is above them all);
  - after every restart featd serves again: Status is ready, a
    GetOnlineFeatures and (once a champion exists) a Predict succeed, and
    the client threads count successes again;
  - at the end: every (topic, partition, offset) was applied exactly once
    (history, labels and dead letters together, and the applied count stored
    with each offset), history holds exactly the produced events, online
    equals a replay of history, versions are numbered 1..N without gaps or
    duplicates, and every version's blob loads (Predict pinned to it).

Short by default (CI: 20 kills); --long (FEATD_LONG=1) and --kills for more."""
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PARTS = 4
NKEYS = 400


def config(wd, bootstrap, group, retrain=True):
    auto = "retrain_every = 3s\nretrain_after_labels = 300\n" if retrain else ""
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
group.id = {group}
session.timeout.ms = 6000
partitions = {PARTS}
[table user]
topic = cl_events
feature.seq = int64
feature.x = double
feature.c = string
agg_tile = 1m
agg.n = count(seq) over 10m, lifetime
agg.xs = sum(x) over 10m, lifetime
agg.cs = approx_distinct(c) over lifetime
[model m]
table = user
label_topic = cl_labels
task = logreg
features = x,c
min_rows = 50
epochs = 1500
learning_rate = 0.01,0.03,0.1
{auto}device = cpu
"""


def main():
    def extra(p):
        p.add_argument("--kills", type=int, default=20)
        p.add_argument("--rate", type=float, default=300.0, help="events per second")
        p.add_argument("--seed", type=int, default=int(time.time()))
    args = H.parse_args(extra)
    H.log(f"seed {args.seed}, {args.kills} kills")
    rnd = random.Random(args.seed)
    wd = H.Workdir(args, "crash-loop")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    B = H.bins(args)
    bcfg = wd.file("broker.ini")
    open(bcfg, "w").write(config(wd, "127.0.0.1:1", "x"))
    broker, bs = H.start_broker(args, wd, bcfg, partitions=PARTS)
    H.log("featd-broker at", bs)
    ok = False
    featd = None
    stop = threading.Event()
    try:
        prod = H.producer(bs, **{"message.timeout.ms": 300000, "enable.idempotence": True})
        msgs = []            # (kind, i)
        delivered = {}
        lock = threading.Lock()
        done = threading.Event()
        t0_ms = int(time.time() * 1000) - 3600_000

        def produce_all():
            i = 0
            t0 = time.time()
            while not stop.is_set():
                key = f"e{i % NKEYS}"
                x = random.Random(i).gauss(0, 1)
                ts = t0_ms + i * 10
                out = []
                if i % 101 == 50:
                    out.append(("cl_events", "dead", b"{not json"))
                else:
                    out.append(("cl_events", "event", json.dumps(
                        {"ts": ts, "features": {"seq": i, "x": x, "c": "ab"[i % 2]}}).encode()))
                if i % 3 == 0:   # a label 5 ms after the features it follows, y depending on x
                    y = 1 if x + random.Random(-i).gauss(0, 0.7) > 0 else 0
                    out.append(("cl_labels", "label", json.dumps({"ts": ts + 5, "label": y}).encode()))
                for topic, kind, val in out:
                    idx = len(msgs)
                    msgs.append((kind, i))

                    def cb(err, m, idx=idx):
                        if err:
                            raise RuntimeError(err)
                        with lock:
                            delivered[idx] = (m.topic(), m.partition(), m.offset())
                    H.produce(prod, topic, val, key, on_delivery=cb)
                prod.poll(0)
                i += 1
                H.pace(t0, i, args.rate)
            prod.flush(120)
            done.set()

        # the producer and the clients: an exception in any of them fails the test
        workers = H.Workers(stop)
        workers.start(produce_all)

        # ---- clients: GetOnlineFeatures and Predict without pause; errors expected while featd is down ----
        cur = {"gen": -1, "addr": None}
        succ = {}    # gen -> [online ok, predict ok, errors]

        def client(kind):
            gen, ch, stub = None, None, None
            r = random.Random(kind)
            while not stop.is_set():
                g, addr = cur["gen"], cur["addr"]
                if g != gen:
                    if ch:
                        ch.close()
                    gen, ch = g, (grpc.insecure_channel(addr) if addr else None)
                    stub = feature_service_pb2_grpc.FeatureServiceStub(ch) if ch else None
                if not stub:
                    time.sleep(0.05)
                    continue
                keys = r.sample([f"e{j}" for j in range(NKEYS)], 5)
                try:
                    if kind == "online":
                        stub.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=keys), timeout=2)
                    else:
                        stub.Predict(fs.PredictRequest(model="m", entity_keys=keys), timeout=2)
                    with lock:
                        succ.setdefault(gen, [0, 0, 0])[0 if kind == "online" else 1] += 1
                except grpc.RpcError:
                    with lock:
                        succ.setdefault(gen, [0, 0, 0])[2] += 1
                    time.sleep(0.05)
            if ch:
                ch.close()
        for k in ("online", "predict"):
            workers.start(client, k)

        cfg = wd.file("featd.ini")
        afile = wd.file("data/featd.addr")
        kills_training = 0      # GetRetrainStatus said "running" just before the kill
        kills_training_log = 0  # the log had a run requested and not yet registered or failed
        kills_after_trigger = 0
        audits = []
        admin = feat = ch = None

        def connect():
            nonlocal ch, feat, admin
            addrs = H.featd_addrs(wd, timeout=60)
            if ch:
                ch.close()
            ch = grpc.insecure_channel(addrs["grpc"])
            feat = feature_service_pb2_grpc.FeatureServiceStub(ch)
            admin = admin_pb2_grpc.AdminServiceStub(ch)
            return addrs

        def status_ready():
            try:
                return admin.Status(admin_pb2.StatusRequest(), timeout=2).ready
            except grpc.RpcError:
                return False

        def champion():
            try:
                vs = admin.ListModels(admin_pb2.ListModelsRequest(model="m"), timeout=5).versions
            except grpc.RpcError:
                return None
            return next((v.version for v in vs if v.stage == "champion"), 0)

        def succeeds(fn):
            try:
                fn()
                return True
            except grpc.RpcError:
                return False

        for k in range(args.kills + 1):
            workers.check()   # the producer and the clients are still running
            # the final run retrains only when asked, so that the checks see a registry at rest
            open(cfg, "w").write(config(wd, bs, f"crash-loop-{k}", retrain=k < args.kills))
            if os.path.exists(afile):
                os.unlink(afile)
            featd = H.start_featd(args, wd, cfg, logname=f"featd-{k}.log")
            addrs = connect()
            H.wait_for(status_ready, 60, f"run {k}: Status ready")
            H.wait_for(lambda: succeeds(lambda: feat.GetOnlineFeatures(
                fs.GetOnlineFeaturesRequest(table="user", entity_keys=["e1", "e2"]), timeout=5)), 30,
                f"run {k}: a GetOnlineFeatures")
            champ = H.wait_for(lambda: champion() is not None and [champion()], 30, f"run {k}: ListModels")[0]
            if champ:
                r = H.wait_for(lambda: succeeds(lambda: feat.Predict(fs.PredictRequest(
                    model="m", entity_keys=["e1", "e2"]), timeout=5)), 30, f"run {k}: a Predict")
                assert r
            with lock:
                cur["gen"], cur["addr"] = k, addrs["grpc"]
            if k == args.kills:
                break
            triggered = rnd.random() < 0.5
            if triggered:
                try:
                    rr = admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(model="m", reason="crash loop"), timeout=5)
                    kills_after_trigger += 1
                    if rnd.random() < 0.5:   # into the training itself; else while it reads the training set
                        end = time.time() + 5
                        while time.time() < end:
                            st = admin.GetRetrainStatus(admin_pb2.GetRetrainStatusRequest(model="m", run_id=rr.run_id),
                                                        timeout=2)
                            if st.phase == "training":
                                break
                            if st.state in ("succeeded", "failed"):   # it had joined a run that just ended
                                rr = admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(
                                    model="m", reason="crash loop"), timeout=5)
                            time.sleep(0.005)
                except grpc.RpcError as e:
                    H.log(f"  TriggerRetrain failed: {e.code()} {e.details()}")
                time.sleep(rnd.uniform(0.0, 0.2))
            else:
                time.sleep(rnd.uniform(0.3, 2.0))
            assert featd.alive(), "featd died on its own:\n" + featd.tail()
            try:
                st = admin.GetRetrainStatus(admin_pb2.GetRetrainStatusRequest(model="m"), timeout=1)
                running = st.state == "running"
                phase = st.phase
            except grpc.RpcError:
                running, phase = False, "-"
            featd.kill9()
            text = open(featd.logpath, errors="replace").read()
            requested = len(re.findall(r"m: retrain requested", text))
            finished = len(re.findall(r"m v\d+ registered as|m: training run \d+ failed", text))
            in_log = requested > finished
            kills_training += running
            kills_training_log += in_log
            # the registry on disk after the kill, before anything repairs it
            r = subprocess.run([B["inspect"], "--config", cfg, "models"], capture_output=True, text=True)
            assert r.returncode == 0, f"after kill {k + 1}: featd-inspect models exit {r.returncode}\n{r.stdout}\n{r.stderr}"
            nver = sum(1 for l in r.stdout.splitlines() if '"kind":"model_version"' in l)
            audits.append(nver)
            with lock:
                s = succ.get(k, [0, 0, 0])
            H.log(f"kill -9 #{k + 1}{' after TriggerRetrain' if triggered else ''}: training "
                  f"{'running (' + phase + ')' if running else 'not running'}, log {'in a run' if in_log else 'idle'}; "
                  f"champion v{champ}, {nver} version(s) on disk; clients {s[0]} lookups + {s[1]} predictions ok")

        # ---- the final run: catch up, then check ----
        stop.set()
        workers.join(130)
        assert done.is_set() and len(delivered) == len(msgs), f"only {len(delivered)} of {len(msgs)} delivered"
        from confluent_kafka import Consumer, TopicPartition
        oracle = Consumer({"bootstrap.servers": bs, "group.id": "crash-loop-oracle", "enable.auto.commit": False})
        parts = {(t, p) for t, p, o in delivered.values()}
        per_part = {kp: oracle.get_watermark_offsets(TopicPartition(*kp), timeout=10)[1] for kp in sorted(parts)}
        oracle.close()

        # librdkafka's mock broker answers a Fetch with one message set per
        # partition ("FIXME: Multiple messageSets ?" in rdkafka_mock_handlers.c),
        # and this producer's sets hold a message or two, so a backlog drains
        # at a few hundred to a few thousand messages/s whatever featd does: a
        # long loop (150 kills) leaves ~100k behind.  Wait in proportion.
        backlog = sum(per_part.values()) - sum(n for kp, n in H.stored_offsets(args, cfg).items() if kp in per_part)
        H.wait_stored(args, cfg, per_part, 120 + max(backlog, 0) / 200, f"the final run to catch up ({backlog} behind)")
        # let a retrain run on everything, then check every version
        rr = admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(model="m", reason="final"), timeout=5)
        H.wait_for(lambda: admin.GetRetrainStatus(admin_pb2.GetRetrainStatusRequest(
            model="m", run_id=rr.run_id), timeout=5).state in ("succeeded", "failed"), 120, "the final run")
        vs = admin.ListModels(admin_pb2.ListModelsRequest(model="m"), timeout=5).versions
        nums = sorted(v.version for v in vs)
        assert nums == list(range(1, len(nums) + 1)), f"versions are not 1..N once each: {nums}"
        assert len([v for v in vs if v.stage == "champion"]) == 1, [(v.version, v.stage) for v in vs]
        for v in nums:
            r = feat.Predict(fs.PredictRequest(model="m", version=v, entity_keys=["e1", "e2", "e3"]), timeout=10)
            assert r.version == v and len(r.predictions) == 3, (v, r)
            assert all(0.0 <= p.score <= 1.0 for p in r.predictions), r
        H.log(f"{len(nums)} versions, numbered 1..{len(nums)}; a Predict pinned to each one works")
        # aggregations after the kills equal a replay of the produced events: a
        # record applied twice (or lost) changes a count; online (tiles) and
        # point in time (history) must agree exactly
        per_key = {}
        for kind, i in msgs:
            if kind == "event":
                per_key.setdefault(f"e{i % NKEYS}", []).append((t0_ms + i * 10, random.Random(i).gauss(0, 1)))
        keys = sorted(per_key)
        aggf = ["n_lifetime", "xs_lifetime", "cs_lifetime", "n_10m", "xs_10m"]
        on = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=keys, features=aggf),
                                    timeout=30)
        t_end = max(ts for evs in per_key.values() for ts, _ in evs)
        at = t_end - 7 * 60_000 - 123        # a window that ends inside the stream, off the tile edges
        edge = (at - 600_000) // 60_000 * 60_000
        hist_rows = list(feat.GetHistoricalFeatures(fs.GetHistoricalFeaturesRequest(
            table="user", rows=[fs.EntityTime(entity_key=k, ts_ms=at) for k in keys], features=aggf), timeout=60))
        far = list(feat.GetHistoricalFeatures(fs.GetHistoricalFeaturesRequest(
            table="user", rows=[fs.EntityTime(entity_key=k, ts_ms=t_end + 1) for k in keys],
            features=aggf[:3]), timeout=60))
        for k, row, hrow, frow in zip(keys, on.rows, hist_rows, far):
            evs = per_key[k]
            n, xs = len(evs), sum(x for _, x in evs)
            got = row.values
            assert got[0].value.int64_value == n, f"{k}: online n_lifetime {got[0].value.int64_value} != {n} events"
            assert abs(got[1].value.double_value - xs) <= 1e-9 * max(1.0, abs(xs)), (k, got[1], xs)
            assert got[2].value.int64_value == len({"ab"[i % 2] for (kind, i) in msgs
                                                     if kind == "event" and f"e{i % NKEYS}" == k}), (k, got[2])
            # point in time after the last event = the online lifetime values, bit for bit
            for j in range(3):
                assert frow.values[j].SerializeToString() == got[j].SerializeToString(), (k, aggf[j], frow, got)
            win = [(ts, x) for ts, x in evs if edge < ts <= at]
            assert hrow.values[3].value.int64_value == len(win), (k, "n_10m", hrow.values[3], len(win))
            assert abs(hrow.values[4].value.double_value - sum(x for _, x in win)) <= 1e-9 * max(
                1.0, abs(sum(x for _, x in win))), (k, "xs_10m", hrow.values[4])
        H.log(f"aggregations of {len(keys)} entities equal a replay: lifetime counts {sum(map(len, per_key.values()))} "
              f"events in all; online lifetime = point in time after the last event, to the bit; 10m windows as of "
              f"a past time match")
        assert featd.stop() == 0, featd.tail()
        featd = None

        r = subprocess.run([B["inspect"], "--config", cfg, "models"], capture_output=True, text=True)
        assert r.returncode == 0, f"featd-inspect models exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        disk = sorted(l["version"] for l in lines if l["kind"] == "model_version")
        assert disk == nums, (disk, nums)
        assert all(l["ok"] for l in lines), [l for l in lines if not l["ok"]]
        al = [l for l in lines if l["kind"] == "model_aliases"]
        assert len(al) == 1 and al[0]["champion"] in nums and al[0]["next"] == len(nums) + 1, al

        dump = H.inspect(args, cfg)
        seen = {}
        hist = [r for r in dump if r["kind"] == "offline"]
        for r in hist:
            seen.setdefault(("cl_events", r["partition"]), []).append(r["offset"])
        for r in dump:
            if r["kind"] == "label":
                seen.setdefault(("cl_labels", r["partition"]), []).append(r["offset"])
            elif r["kind"] == "dead_letter":
                seen.setdefault((r["topic"], r["partition"]), []).append(r["offset"])
        for kp, n in per_part.items():
            offs = sorted(seen.get(kp, []))
            if offs != list(range(n)):
                missing = sorted(set(range(n)) - set(offs))
                extra_ = sorted(set(offs) - set(range(n)))
                raise AssertionError(f"{kp}: offsets are not exactly 0..{n - 1} once each ({len(offs)} stored, "
                                     f"{len(set(offs))} distinct; missing {missing[:10]}, extra {extra_[:10]})")
        for r in dump:
            if r["kind"] == "offset":
                n = per_part[(r["topic"], r["partition"])]
                assert r["applied"] == n, f"{r}: applied {r['applied']} != {n} messages: applied twice?"
        produced = sorted(i for kind, i in msgs if kind == "event")
        got = sorted(r["features"]["seq"] for r in hist)
        assert got == produced, f"history has {len(got)} events, {len(produced)} produced"
        nlabels = sum(1 for kind, _ in msgs if kind == "label")
        assert sum(1 for r in dump if r["kind"] == "label") == nlabels
        want_online = H.replay_online(hist)
        got_online = H.online_from_dump([r for r in dump if r["kind"] == "online"])
        assert got_online == want_online, "online differs from a replay of history"
        total = {g: v for g, v in succ.items()}
        runs_served = sum(1 for g in range(args.kills + 1) if total.get(g, [0, 0, 0])[0] > 0)
        # the clients switch to a run after the checks above passed: short runs may end before they call
        assert runs_served * 2 >= args.kills + 1, f"the clients were served in only {runs_served} runs: {total}"
        H.log(f"clients: {sum(v[0] for v in total.values())} lookups and {sum(v[1] for v in total.values())} "
              f"predictions succeeded, {sum(v[2] for v in total.values())} failed (featd down); lookups "
              f"succeeded in {runs_served} of {args.kills + 1} runs")
        H.log(f"OK: {len(msgs)} messages over {len(per_part)} partitions, {args.kills} kills "
              f"({kills_after_trigger} right after a TriggerRetrain; {kills_training} while GetRetrainStatus said "
              f"running, {kills_training_log} while the log showed a run requested and not finished): every offset "
              f"applied exactly once, online equals a replay of history, registry consistent after every kill, "
              f"{len(nums)} versions without gaps, each loads")
        ok = True
    finally:
        stop.set()
        if featd and featd.alive():
            featd.kill9()
        broker.stop()
        wd.cleanup(ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
