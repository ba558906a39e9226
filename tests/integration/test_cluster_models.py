#!/usr/bin/env python3
"""Models in a cluster (cluster.mode = partitioned): three featd instances
share one consumer group against featd-broker with 3 brokers; events and
labels are keyed by entity with Java's murmur2 partitioner (confluent-kafka's
partitioner=murmur2_random), 6 partitions each.  A single-mode featd reading
the same log in its own group is the reference.

1. The instance holding partition 0 of the label topic is the trainer (the
   map marks it; featctl cluster shows it).  A retrain asked of another
   instance is forwarded to it, and so is the status of the run.
2. The trainer's training set gathers every owner's rows: the version's
   training + validation rows equal the number of labels produced (counted
   here), and its metrics equal those of the version the single-mode
   reference trains on its own copy of the same log (same rows in the same
   order give the same model: training is seeded).
3. Every instance loads the version from cluster.models_topic: each serves
   it (GetCluster shows the champion per instance), and Predict through
   every instance gives the reference's scores for the same keys.
4. A promote asked of one instance and a rollback asked of another reach
   every instance (the models topic orders them).
5. kill -9 of the trainer: partition 0 moves, the new owner trains and
   numbers the next version after every version it received (no version
   number is used twice); a new instance with an empty store receives the
   whole registry, replayed compacted: one champion change, straight to
   the current champion.

Everything runs with mutual TLS and bearer tokens, between the instances
too: every forwarded lookup, forwarded retrain and the trainer's gather
cross it (each instance's certificate is its client certificate towards
the others).  A read token may not start a retrain through any instance,
and a client without a certificate is refused by the peers' listener.
"""
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

PARTS = 6
NKEYS = 600
EVENTS = "cm_events"
LABELS = "cm_labels"


READ_TOKEN = "rd-cluster-0123456789abcdef"
ADMIN_TOKEN = "adm-cluster-fedcba9876543210"


def config(wd, name, bootstrap, mode, group, port, peer_port=0):
    return f"""
[featd]
data_dir = {wd.file("data-" + name)}
progress_interval = 0
[serve]
listen = 127.0.0.1:{port}
tls_cert = {wd.file("server.pem")}
tls_key = {wd.file("server.key")}
tls_client_ca = {wd.file("ca.pem")}
[auth]
read_tokens_file = {wd.file("read.tokens")}
admin_tokens_file = {wd.file("admin.tokens")}
[admin]
listen = 127.0.0.1:0
[kafka]
embedded = false
bootstrap.servers = {bootstrap}
group.id = {group}
session.timeout.ms = 6000
heartbeat.interval.ms = 500
partitions = {PARTS}
[cluster]
mode = {mode}
listen = {f"127.0.0.1:{peer_port}" if peer_port else ""}
instance_id = {name}
[table user]
topic = {EVENTS}
entity = user_id
ttl = 30d
feature.x = double
feature.n = int64
feature.c = string
[model churn]
table = user
label_topic = {LABELS}
task = logreg
policy = manual
min_rows = 200
epochs = 8
learning_rate = 0.05
device = cpu
"""


class Instance:
    def __init__(self, args, wd, name, bootstrap, mode="partitioned", group="cm"):
        import grpc
        from featd.v1 import admin_pb2_grpc, feature_service_pb2_grpc
        self.name = name
        self.port = H.free_port()
        cfg = wd.file(f"{name}.ini")
        peer = H.free_port() if mode == "partitioned" else 0
        open(cfg, "w").write(config(wd, name, bootstrap, mode, group, self.port, peer))
        self.proc = H.start_featd(args, wd, cfg, logname=f"{name}.log")
        self.addr = H.featd_addrs(wd, data_dir="data-" + name, proc=self.proc)
        self.peer = f"127.0.0.1:{peer}" if peer else None
        pem = {f: open(wd.file(f), "rb").read() for f in ("ca.pem", "client.pem", "client.key")}
        tls = grpc.ssl_channel_credentials(pem["ca.pem"], pem["client.key"], pem["client.pem"])
        self.ch = grpc.secure_channel(self.addr["grpc"], grpc.composite_channel_credentials(
            tls, grpc.access_token_call_credentials(ADMIN_TOKEN)))
        self.read_ch = grpc.secure_channel(self.addr["grpc"], grpc.composite_channel_credentials(
            tls, grpc.access_token_call_credentials(READ_TOKEN)))
        self.fs = feature_service_pb2_grpc.FeatureServiceStub(self.ch)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.ch)
        H.log(f"{name}: {mode} at {self.addr['grpc']}")

    def status(self):
        from featd.v1 import admin_pb2
        return self.admin.Status(admin_pb2.StatusRequest(), timeout=10)

    def cluster(self):
        from featd.v1 import admin_pb2
        return self.admin.GetCluster(admin_pb2.GetClusterRequest(), timeout=10)

    def versions(self):
        from featd.v1 import admin_pb2
        return {v.version: v for v in self.admin.ListModels(admin_pb2.ListModelsRequest(model="churn"),
                                                             timeout=10).versions}

    def champion(self):
        return next((v for v, m in self.versions().items() if m.stage == "champion"), 0)

    def retrain(self):
        from featd.v1 import admin_pb2
        run = self.admin.TriggerRetrain(admin_pb2.TriggerRetrainRequest(model="churn", reason="test"), timeout=10)
        st = H.wait_for(lambda: (lambda s: s if s.state in ("succeeded", "failed") else None)(
            self.admin.GetRetrainStatus(admin_pb2.GetRetrainStatusRequest(model="churn", run_id=run.run_id),
                                        timeout=10)), 120, f"retrain through {self.name}")
        assert st.state == "succeeded", (self.name, st)
        return st.version

    def predict(self, keys):
        from featd.v1 import feature_service_pb2 as fs
        r = self.fs.Predict(fs.PredictRequest(model="churn", entity_keys=keys), timeout=20)
        return r.version, {p.entity_key: (p.score, fs.FeatureStatus.Name(p.status)) for p in r.predictions}


def make_pki(wd):
    """One CA; one certificate every instance serves with and shows to its peers (so serverAuth and
    clientAuth), one for the test's clients; tokens."""
    H.make_ca(wd, "ca")
    H.make_cert(wd, "server", "ca", 10, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n")
    H.make_cert(wd, "client", "ca", 11, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\n")
    for f, tok in (("read.tokens", READ_TOKEN), ("admin.tokens", ADMIN_TOKEN), ("admin.token", ADMIN_TOKEN)):
        open(wd.file(f), "w").write(tok + "\n")
        os.chmod(wd.file(f), 0o600)


def featctl(args, wd, inst, *argv):
    return H.featctl(args, "--addr", inst.addr["grpc"], "--tls-ca", wd.file("ca.pem"), "--tls-cert",
                     wd.file("client.pem"), "--tls-key", wd.file("client.key"), "--token-file",
                     wd.file("admin.token"), *argv)


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "cluster_models")
    H.gen_protos(args, wd.path)
    make_pki(wd)
    H.with_brokers(args, wd, config(wd, "broker", "127.0.0.1:1", "single", "x", 1), PARTS, run)


def caught_up(insts, topics):
    """Every partition of topics is assigned to one of insts and applied to its log end."""
    seen = {}
    for inst in insts:
        for p in inst.status().partitions:
            if p.topic in topics and p.lag == 0 and p.high_watermark >= 0:
                seen[(p.topic, p.partition)] = True
    return len(seen) == len(topics) * PARTS


def run(args, wd, bs, procs):
    rnd = random.Random(11)
    prod = H.producer(bs, partitioner="murmur2_random", **{"enable.idempotence": True})
    t0 = int(time.time() * 1000) - 3600_000
    keys = [f"u{i}" for i in range(NKEYS)]
    nlabels = 0
    for i, k in enumerate(keys):
        x = round(rnd.gauss(0, 1), 6)
        n = rnd.randrange(10)
        c = rnd.choice(["a", "b", "c"])
        ts = t0 + i
        H.produce(prod, EVENTS, json.dumps({"ts": ts, "features": {"x": x, "n": n, "c": c}}).encode(), k)
        for j in range(1 + i % 2):
            z = 1.5 * x + (0.8 if c == "a" else -0.4) + 0.1 * n - 0.3
            label = 1 if rnd.random() < 1 / (1 + math.exp(-z)) else 0
            H.produce(prod, LABELS, json.dumps({"model": "churn", "key": k, "ts": ts + 1000 + 500 * j,
                                                "label": label}).encode(), k)
            nlabels += 1
    prod.flush(60)
    H.log(f"produced {NKEYS} events and {nlabels} labels")

    a = Instance(args, wd, "a", bs)
    b = Instance(args, wd, "b", bs)
    c = Instance(args, wd, "c", bs)
    ref = Instance(args, wd, "ref", bs, mode="single", group="cm-ref")
    procs += [a, b, c, ref]
    insts = (a, b, c)
    H.wait_for(lambda: caught_up(insts, (EVENTS, LABELS)), 120, "a, b and c caught up")
    H.wait_for(lambda: caught_up((ref,), (EVENTS, LABELS)), 120, "ref caught up")

    # -- 1. who trains; a retrain asked of another instance is forwarded ---------------------------
    def trainer_of(inst):
        m = inst.cluster()
        own = {p.partition: p.instance_id for p in m.partitions if p.topic == LABELS}
        marked = [mb.instance_id for mb in m.members for ms in mb.models if ms.model == "churn" and ms.trainer]
        return own.get(0), marked
    H.wait_for(lambda: all(trainer_of(i)[0] and trainer_of(i)[1] == [trainer_of(i)[0]] for i in insts), 30,
               "the map names the trainer")
    tname = trainer_of(a)[0]
    trainer = next(i for i in insts if i.name == tname)
    others = [i for i in insts if i is not trainer]
    H.log(f"{tname} holds partition 0 of {LABELS}: it trains")
    out = featctl(args, wd, others[0], "cluster")
    assert out.returncode == 0 and "MODELS" in out.stdout and "churn v0*" in out.stdout, out
    js = json.loads(featctl(args, wd, others[1], "--json", "cluster").stdout)
    assert [x["instance_id"] for x in js["members"] for m in x["models"] if m["trainer"]] == [tname], js

    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc
    for inst in insts:   # a read token starts no retrain, whichever instance is asked
        try:
            admin_pb2_grpc.AdminServiceStub(inst.read_ch).TriggerRetrain(
                admin_pb2.TriggerRetrainRequest(model="churn"), timeout=10)
            raise AssertionError(f"{inst.name}: a read token started a retrain")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (inst.name, e)
    # the peers' listener wants a client certificate too
    bare = grpc.secure_channel(others[0].peer, grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(open(wd.file("ca.pem"), "rb").read()),
        grpc.access_token_call_credentials(ADMIN_TOKEN)))
    try:
        admin_pb2_grpc.AdminServiceStub(bare).Status(admin_pb2.StatusRequest(), timeout=5)
        raise AssertionError("the peers' listener answered a client without a certificate")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAVAILABLE, e
    bare.close()
    v1 = others[0].retrain()
    assert v1 == 1, v1
    assert "registered" not in others[0].proc.tail(400), others[0].proc.tail(20)
    assert "churn v1 registered" in trainer.proc.tail(400), trainer.proc.tail(50)
    H.log(f"a retrain asked of {others[0].name} ran on {tname}: v1")

    # -- 2. the gathered training set: every label once, the reference's model -----------------------
    rv = ref.retrain()
    assert rv == 1
    mine, theirs = trainer.versions()[1], ref.versions()[1]
    assert mine.train_rows + mine.validation_rows == nlabels, (mine.train_rows, mine.validation_rows, nlabels)
    assert (mine.train_rows, mine.validation_rows) == (theirs.train_rows, theirs.validation_rows)
    def same(x, y):   # (rmse and mae are NaN for a classifier)
        return all(getattr(x, f) == getattr(y, f) or (math.isnan(getattr(x, f)) and math.isnan(getattr(y, f)))
                   for f in ("auc", "log_loss", "accuracy", "rmse", "mae", "rows"))
    assert same(mine.train_metrics, theirs.train_metrics), (mine.train_metrics, theirs.train_metrics)
    assert same(mine.validation_metrics, theirs.validation_metrics)
    assert (mine.data_from_ms, mine.data_to_ms) == (theirs.data_from_ms, theirs.data_to_ms)
    H.log(f"v1 trained on {nlabels} rows from 3 owners = the single-mode model "
          f"(validation AUC {mine.validation_metrics.auc:.4f})")

    # -- 3. every instance serves v1, and scores as the reference -----------------------------------
    def served(inst):
        return {mb.instance_id: ms.champion for mb in inst.cluster().members for ms in mb.models}
    H.wait_for(lambda: all(i.champion() == 1 for i in insts), 30, "v1 champion everywhere")
    H.wait_for(lambda: served(a) == {"a": 1, "b": 1, "c": 1}, 30, "the map shows v1 on every instance")
    sample = random.Random(5).sample(keys, 120)
    rver, want = ref.predict(sample)
    assert rver == 1
    for inst in insts:
        ver, got = inst.predict(sample)
        assert ver == 1, (inst.name, ver)
        bad = [k for k in sample if got[k][1] != "FEATURE_STATUS_UNSPECIFIED" or abs(got[k][0] - want[k][0]) > 1e-12]
        assert not bad, (inst.name, [(k, got[k], want[k]) for k in bad[:3]])
    from featd.v1 import feature_service_pb2 as fs, feature_service_pb2_grpc
    r = feature_service_pb2_grpc.FeatureServiceStub(others[0].read_ch).Predict(
        fs.PredictRequest(model="churn", entity_keys=sample), timeout=20)   # a read token, forwarded as is
    assert {p.entity_key: p.score for p in r.predictions} == {k: want[k][0] for k in sample}
    H.log(f"{len(sample)} keys score identically through a, b, c and the reference (mutual TLS between them)")

    # -- 4. promote on one instance, rollback on another: everywhere -------------------------------
    v2 = trainer.retrain()
    assert v2 == 2
    H.wait_for(lambda: all(2 in i.versions() and i.versions()[2].stage == "challenger" for i in insts), 30,
               "v2 challenger everywhere")
    others[0].admin.Promote(admin_pb2.PromoteRequest(model="churn", version=2), timeout=10)
    H.wait_for(lambda: all(i.champion() == 2 for i in insts), 30, "v2 promoted everywhere")
    others[1].admin.Rollback(admin_pb2.RollbackRequest(model="churn"), timeout=10)
    H.wait_for(lambda: all(i.champion() == 1 for i in insts), 30, "rolled back to v1 everywhere")
    H.wait_for(lambda: served(trainer) == {"a": 1, "b": 1, "c": 1}, 30, "the map shows the rollback")
    H.log(f"promote through {others[0].name} and rollback through {others[1].name} reached every instance")

    # -- 5. the trainer dies: the next owner of partition 0 trains v3; a new instance gets everything ---
    trainer.proc.kill9()
    H.log(f"{tname} killed")
    left = others
    H.wait_for(lambda: all(trainer_of(i)[0] in {o.name for o in left} for i in left), 60,
               "partition 0 of the labels moves")
    names = {o.name for o in left}

    def settled():
        for inst in left:
            ps = [p for p in inst.cluster().partitions if p.topic == LABELS]
            if len(ps) != PARTS or any(p.instance_id not in names or p.restoring for p in ps):
                return False
        return caught_up(left, (EVENTS, LABELS))
    H.wait_for(settled, 120, "the survivors hold every partition")
    v3 = left[0].retrain()
    assert v3 == 3, v3
    H.wait_for(lambda: all(3 in i.versions() for i in left), 30, "v3 everywhere")
    d = Instance(args, wd, "d", bs)
    procs.append(d)
    H.wait_for(lambda: sorted(d.versions()) == [1, 2, 3] and d.champion() == 1, 60, "d receives the registry")
    stages = {v: m.stage for v, m in d.versions().items()}
    assert stages == {v: m.stage for v, m in left[0].versions().items()}, stages
    # the topic held every change (v1 champion, v2 promoted, v1 back): d replayed it compacted and went
    # straight to v1, one champion change, not three
    assert H.metric(d.addr["admin"], "featd_model_swaps_total", token=READ_TOKEN) == 1
    H.log(f"the new trainer numbered v3; d (empty store) holds {stages}")
    for inst in left + [d]:
        assert inst.proc.stop() == 0, inst.proc.tail()
    assert ref.proc.stop() == 0, ref.proc.tail()
    return True


if __name__ == "__main__":
    main()
