#!/usr/bin/python3
"""featd's command line: --version, the generated config reference matches
docs/CONFIG.md, and bad configurations stop start-up with exit status 2 and
one line that names the key."""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H

BAD = [
    ("[featd]\nlog_level = chatty\n[table t]\ntopic=x\nfeature.a=int64\n", "featd.log_level"),
    ("[table t]\ntopic=x\nfeature.a=float128\n", "table.t.feature.a"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[kafka]\nenable.auto.commit=true\n", "kafka.enable.auto.commit"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[kafka]\nembedded=false\nbootstrap.servers=h:1\n"
     "session.timeout.ms=banana\n", "kafka.session.timeout.ms"),
    ("[table t]\nfeature.a=int64\n", "table.t.topic"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[kafka]\nembedded=false\nbootstrap.servers=h:1\n[cluster]\nmode=replica\n"
     "instance_id=r1\nstandby_replicas=1\n", "cluster.standby_replicas"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[cluster]\nstandby_replicas=1\n", "cluster.standby_replicas"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[kafka]\nembedded=false\nbootstrap.servers=h:1\n[cluster]\n"
     "mode=partitioned\nlisten=127.0.0.1:7090\nstandby_replicas=9\n", "cluster.standby_replicas"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=nope\nlabel_topic=l\n", "model.m.table"),
    # declared twice: one of the two would be silently lost
    ("[table user]\ntopic=x\nfeature.clicks_1h=int64\nfeature.clicks_1h=int64\n", "table.user.feature.clicks_1h"),
    ("[table user]\ntopic=x\nfeature.clicks_1h=int64\nfeature.clicks_1h=double\n", "table.user.feature.clicks_1h"),
    ("[table t]\ntopic=x\nttl=1d\nfeature.a=int64\nttl=7d\n", "table.t.ttl"),
    ("[serve]\nthreads=2\nthreads=4\n[table t]\ntopic=x\nfeature.a=int64\n", "serve.threads"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[kafka]\nembedded=false\nbootstrap.servers=h:1\n"
     "session.timeout.ms=6000\nsession.timeout.ms=7000\n", "kafka.session.timeout.ms"),
    ("[table user]\ntopic=x\nfeature.a=int64\n[table user]\nfeature.b=int64\n", "[table user]"),
    ("[store]\nsync=true\n[table t]\ntopic=x\nfeature.a=int64\n[store]\nblock_cache=64MiB\n", "[store]"),
    ("[kafka]\nembedded=false\nbootstrap.servers = h:1,\n  h:2\n[table t]\ntopic=x\nfeature.a=int64\n",
     "kafka.bootstrap.servers"),
    ("[table t]\ntopic=x\nfeature.a=str\n", "table.t.feature.a"),
    # trees, shadow, canary, live promotion (issue 13)
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\ntask=gbdt_classifier\nmax_depth=17\n", "model.m.max_depth"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\ntask=gbdt_regressor\ntrees=100,0\n", "model.m.trees"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\ntask=gbdt_classifier\nsubsample=0\n", "model.m.subsample"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\ntask=forest\n", "model.m.task"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\ncanary_percent=101\n", "model.m.canary_percent"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\nshadow=yes\n", "model.m.shadow"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\npromote_on=sometimes\n", "model.m.promote_on"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\npromote_min_labels=5\n", "model.m.promote_min_labels"),
    ("[table t]\ntopic=x\nfeature.a=int64\n[model m]\ntable=t\nlabel_topic=l\ntask=gbdt_classifier\ndevice=gpu\n", "model.m.device"),
]

# --set is applied over the file before validation: (file, --set values, key)
SET_BAD = [
    ("[table t]\nfeature.a=int64\n", ["table.t.topic=bad topic!"], "table.t.topic"),
    ("[table t]\nfeature.a=int64\n", ["table.t.topic=x", "ingest.batch_max=0"], "ingest.batch_max"),
    ("[table t]\nfeature.a=int64\n", ["table.t.topic=x", "kafka.embedded=false"], "kafka.bootstrap.servers"),
    ("[table t]\nfeature.a=int64\n", ["table.t.topic=x", "table.t.topic=y"], "table.t.topic"),
    ("[table t]\nfeature.a=int64\n", ["table.t.topic"], "table.t.topic"),
]


def check_example(args, b):
    """deploy/featd.example.ini is `featd --config-example`, loads as it is, and
    still loads with every commented-out default uncommented (so each default
    it shows is a valid value); --check validates without starting."""
    ex = subprocess.run([b["featd"], "--config-example"], capture_output=True, text=True, check=True).stdout
    path = os.path.join(args.source_dir, "deploy", "featd.example.ini")
    assert ex == open(path).read(), \
        "deploy/featd.example.ini is stale: regenerate with `featd --config-example > deploy/featd.example.ini`"
    r = subprocess.run([b["featd"], "--config", path, "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "valid" in r.stdout, r
    out, section, n = [], "", 0
    for line in ex.splitlines():
        if line.startswith("["):
            section = line
        m = re.match(r"^;([A-Za-z_][A-Za-z0-9_.]*) =( .*)?$", line)
        # the [kafka] pass-through lines are examples for a real cluster, not defaults
        if m and not (section == "[kafka]" and "." in m.group(1)):
            line, n = line[1:], n + 1
        out.append(line)
    assert n > 50, f"only {n} commented-out keys in the example"
    with tempfile.TemporaryDirectory() as d:
        full = os.path.join(d, "full.ini")
        open(full, "w").write("\n".join(out) + "\n")
        r = subprocess.run([b["featd"], "--config", full, "--check"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"the example with its {n} defaults uncommented does not load: {r.stderr}"
        bad = os.path.join(d, "bad.ini")
        open(bad, "w").write(ex.replace(";batch_max = 10000", "batch_max = 0"))
        r = subprocess.run([b["featd"], "--config", bad, "--check"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "ingest.batch_max" in r.stderr, r


def main():
    args = H.parse_args()
    b = H.bins(args)
    v = subprocess.run([b["featd"], "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("featd "), v
    ref = subprocess.run([b["featd"], "--config-reference"], capture_output=True, text=True, check=True).stdout
    doc = open(os.path.join(args.source_dir, "docs", "CONFIG.md")).read()
    assert ref == doc, "docs/CONFIG.md is stale: regenerate with `featd --config-reference > docs/CONFIG.md`"
    check_example(args, b)
    with tempfile.TemporaryDirectory() as d:
        for text, key in BAD:
            path = os.path.join(d, "bad.ini")
            open(path, "w").write(f"[featd]\ndata_dir = {d}/data\n" + text if "[featd]" not in text else text)
            r = subprocess.run([b["featd"], "--config", path], capture_output=True, text=True, timeout=30)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2, f"{key}: exit {r.returncode}, stderr {r.stderr!r}"
            assert len(lines) == 1 and key in lines[0], f"{key}: stderr was {r.stderr!r}"
        for text, sets, key in SET_BAD:
            path = os.path.join(d, "bad.ini")
            open(path, "w").write(f"[featd]\ndata_dir = {d}/data\n" + text)
            argv = [b["featd"], "--config", path] + [a for s in sets for a in ("--set", s)]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2, f"--set {sets}: exit {r.returncode}, stderr {r.stderr!r}"
            assert len(lines) == 1 and key in lines[0], f"--set {sets}: stderr was {r.stderr!r}"
        # a --set may supply a key the file lacks, and beats the file
        path = os.path.join(d, "partial.ini")
        open(path, "w").write(f"[featd]\ndata_dir = {d}/data\n[table t]\nfeature.a=int64\n")
        r = subprocess.run([b["featd"], "--config", path, "--check"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "table.t.topic" in r.stderr, r
        r = subprocess.run([b["featd"], "--config", path, "--check", "--set", "table.t.topic=events",
                            "--set", "featd.data_dir=" + os.path.join(d, "other")],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "valid" in r.stdout, r
        r = subprocess.run([b["featd"], "--config", os.path.join(d, "missing.ini")], capture_output=True, text=True)
        assert r.returncode == 2 and "missing.ini" in r.stderr, r
        r = subprocess.run([b["featd"], "--bogus"], capture_output=True, text=True)
        assert r.returncode == 2, r
        # a store whose feature changed type refuses to start, naming the feature
        good = f"[featd]\ndata_dir = {d}/data2\n[kafka]\nembedded = true\n[table t]\ntopic=x\nfeature.a=int64\n"
        path = os.path.join(d, "good.ini")
        open(path, "w").write(good)
        p = H.Proc([b["featd"], "--config", path], os.path.join(d, "featd.log"))
        # " running: " is the start-up line; a bare "running" also matches the root warning
        H.wait_for(lambda: " running: " in p.tail(), 20, "featd to start")
        assert p.stop() == 0
        assert oct(os.stat(f"{d}/data2").st_mode & 0o777) == "0o700", "data_dir must be created 0700"
        open(path, "w").write(good.replace("feature.a=int64", "feature.a=string"))
        r = subprocess.run([b["featd"], "--config", path], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "table.t.feature.a" in r.stderr, r
    H.log("OK: --version, config reference up to date, bad configs exit 2 naming the key")


if __name__ == "__main__":
    main()
