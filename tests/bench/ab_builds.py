#!/usr/bin/python3
"""Two builds of featd, old and new, measured in the same run: the ingest,
serving and predict benchmarks, alternating old/new each round so that the
machine's drift hits both alike.  For a refactoring that must not move them.

  /usr/bin/python3 tests/bench/ab_builds.py --old-source ../featd-old --old-build ../featd-old/build-rel \
      --new-source . --new-build build-rel [--rounds 3] [--out ab.json]

Each tree runs its own scripts against its own binaries (tests/bench/bench_ingest,
tests/bench/run_serve_bench.py, tests/bench/run_predict_bench.py).  Prints, per
measurement, the median over rounds for old and new and new/old.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("FAIL: %s exited %d\n%s" % (" ".join(cmd), p.returncode, p.stdout[-3000:]))
    return p.stdout


def last_json(out):
    """The last top-level JSON object a bench script printed."""
    end = out.rfind("\n}")
    start = out.rfind("\n{", 0, end)
    return json.loads(out[start + 1:end + 2])


def ingest(src, build, events):
    out = run([os.path.join(build, "tests", "bench_ingest"), "--rounds", "1", "--events", str(events)], src)
    m = re.search(r"raw consume ([\d.]+) msg/s \| raw store write ([\d.]+) rows/s \| featd ingest ([\d.]+) events/s", out)
    if not m:
        sys.exit("FAIL: bench_ingest output:\n" + out[-2000:])
    consume, store, featd = map(float, m.groups())
    return {"ingest | featd events/s": featd, "ingest | featd / raw store write": featd / store}


def script(name, src, build, calls):
    out = run(["/usr/bin/python3", os.path.join(src, "tests", "bench", name), "--build-dir", build,
               "--source-dir", src, "--rounds", "1", "--calls", str(calls)], src)
    res = {}
    for k, v in last_json(out).items():
        for stat in ("p50", "p99", "tput"):
            if stat in v:
                res["%s | %s %s" % (name.replace("run_", "").replace("_bench.py", ""), k, stat)] = v[stat]
    return res


def main():
    ap = argparse.ArgumentParser()
    for w in ("old", "new"):
        ap.add_argument("--%s-source" % w, required=True)
        ap.add_argument("--%s-build" % w, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--events", type=int, default=400000)
    ap.add_argument("--calls", type=int, default=4000)
    ap.add_argument("--only", default="ingest,serve,predict")
    ap.add_argument("--out")
    a = ap.parse_args()
    trees = {w: (os.path.abspath(getattr(a, w + "_source")), os.path.abspath(getattr(a, w + "_build")))
             for w in ("old", "new")}
    only = a.only.split(",")
    samples = {"old": {}, "new": {}}
    for r in range(a.rounds):
        order = ("old", "new") if r % 2 == 0 else ("new", "old")
        for w in order:
            src, build = trees[w]
            res = {}
            if "ingest" in only:
                res.update(ingest(src, build, a.events))
            if "serve" in only:
                res.update(script("run_serve_bench.py", src, build, a.calls))
            if "predict" in only:
                res.update(script("run_predict_bench.py", src, build, a.calls))
            for k, v in res.items():
                samples[w].setdefault(k, []).append(v)
            print("round %d %s: %d measurements" % (r + 1, w, len(res)), flush=True)
    rows = []
    print("\n%-62s %12s %12s %8s" % ("measurement (median of %d rounds)" % a.rounds, "old", "new", "new/old"))
    for k in sorted(samples["new"]):
        if k not in samples["old"]:
            continue
        o, n = statistics.median(samples["old"][k]), statistics.median(samples["new"][k])
        rows.append({"measurement": k, "old": samples["old"][k], "new": samples["new"][k]})
        print("%-62s %12.2f %12.2f %8.2f" % (k, o, n, n / o if o else float("nan")))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
