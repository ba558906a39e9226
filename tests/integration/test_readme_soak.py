#!/usr/bin/python3
"""README soak: the README's run command, as written, for --minutes (30 by
default; a long test: skipped unless FEATD_LONG=1), checked from /metrics.

The command (`./build/daemon/featd --config deploy/featd.ini --demo`, the part
of the README's run command after the build) runs in a scratch directory
where build/ and deploy/ link to this tree, so its data_dir (./featd-data)
lands there; it listens on deploy/featd.ini's ports (7070, 7071, 7072, 6380), which must
be free.  Every --interval seconds (0.5) the test reads /metrics, and every
minute the embedded broker's thread (rdk:mock) CPU time from /proc.  It
fails when, at any point after the first minute:
  - the consumer lag exceeds one second of events (the demo's rate),
  - featd_ingest_gap_records_total is above 0 (a record deleted before
    featd applied it),
  - the broker thread used more than --max-broker-core (0.5) of a core over
    a minute,
and at the end when the freshness p99 over the run is 100 ms or more, or
featd did not stop cleanly.  Writes one CSV row per minute to --out
(readme-soak.csv) and prints a summary for BENCHMARKS.md.

  FEATD_LONG=1 /usr/bin/python3 tests/integration/test_readme_soak.py \\
      --build-dir build --source-dir . --long --minutes 120 --out docs/bench
"""
import csv
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def readme_featd_command(source_dir):
    """The featd invocation of the README's run command, as written there."""
    text = open(os.path.join(source_dir, "README.md")).read()
    m = re.search(r"<!-- run-command -->\s*```sh\n(.*?)\n```", text, re.S)
    assert m, "README.md has no run command"
    cmd = m.group(1).split("&&")[-1].strip()
    assert cmd.startswith("./build/daemon/featd "), cmd
    return cmd.split()


def metrics(admin):
    """/metrics as {name: [the value of each series]}."""
    out = {}
    for (name, _), v in H.scrape(admin).items():
        out.setdefault(name, []).append(v)
    return out


def thread_cpu(pid, name):
    """CPU seconds of pid's threads called name (utime + stime)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def main():
    def extra(p):
        p.add_argument("--minutes", type=float, default=30)
        p.add_argument("--interval", type=float, default=0.5)
        p.add_argument("--max-broker-core", type=float, default=0.5)
        p.add_argument("--out", default=None)
    args = H.parse_args(extra)
    wd = H.Workdir(args, "readme-soak")
    os.symlink(os.path.abspath(args.build_dir), wd.file("build"))
    os.symlink(os.path.join(os.path.abspath(args.source_dir), "deploy"), wd.file("deploy"))
    cmd = readme_featd_command(args.source_dir)
    H.log("running", " ".join(cmd), "in", wd.path)
    logf = open(wd.file("featd.log"), "wb")
    p = subprocess.Popen(cmd, cwd=wd.path, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    ok = False
    rows, fresh, lag_s, failures = [], [], [], []
    try:
        admin = "127.0.0.1:7071"
        H.wait_for(lambda: p.poll() is None and os.path.exists(wd.file("featd-data/featd.addr")), 30, "featd.addr")
        rate = None
        t0 = time.time()
        last_min, last_cpu = t0, thread_cpu(p.pid, "rdk:mock")
        last_msgs = None
        while time.time() - t0 < args.minutes * 60:
            assert p.poll() is None, f"featd exited ({p.returncode}) during the soak"
            m = metrics(admin)
            now = time.time()
            msgs = sum(m.get("featd_ingest_events_total", [])) + sum(m.get("featd_ingest_labels_total", [])) + \
                sum(m.get("featd_dead_letters_total", []))
            lag = sum(v for v in m.get("featd_kafka_lag", []) if v >= 0)
            gap = sum(m.get("featd_ingest_gap_records_total", []))
            fr = [v for v in m.get("featd_freshness_seconds", []) if v >= 0]
            if now - t0 >= 60:
                if rate is None:
                    rate = msgs / (now - t0)   # the demo's rate, as featd applied it over the first minute
                    assert rate > 0, "featd applied nothing in the first minute"
                fresh.extend(fr)
                lag_s.append(lag / rate)
                if lag > rate:
                    failures.append(f"{now - t0:.0f}s: lag {lag:.0f} records, over one second of events ({rate:.0f})")
                if gap > 0:
                    failures.append(f"{now - t0:.0f}s: {gap:.0f} records deleted before featd applied them")
            if now - last_min >= 60:
                cpu = thread_cpu(p.pid, "rdk:mock")
                core = (cpu - last_cpu) / (now - last_min)
                rss = int(open(f"/proc/{p.pid}/status").read().split("VmRSS:")[1].split()[0])
                row = {"minute": round((now - t0) / 60, 1), "broker_core": round(core, 3),
                       "msgs_per_s": round((msgs - last_msgs) / (now - last_min), 1) if last_msgs is not None else "",
                       "lag": int(lag), "freshness_ms": round(max(fr) * 1000, 1) if fr else "", "gaps": int(gap),
                       "rss_mib": round(rss / 1024, 1)}
                rows.append(row)
                H.log(row)
                if core > args.max_broker_core:
                    failures.append(f"{now - t0:.0f}s: broker thread at {core:.2f} core over a minute")
                last_min, last_cpu, last_msgs = now, cpu, msgs
            if failures:
                break
            time.sleep(args.interval)
        p.send_signal(2)
        rc = p.wait(60)
        log = open(wd.file("featd.log"), errors="replace").read()
        stop = re.search(r"embedded broker: (\d+) record\(s\) produced to it were never applied", log)
        summary = (f"{args.minutes:g} min: broker thread max {max(r['broker_core'] for r in rows):.3f} core, "
                   f"lag max {max(lag_s, default=float('nan')):.3f} s of events (p99 {H.pct(lag_s, .99):.3f} s), freshness p50 "
                   f"{H.pct(fresh, .5) * 1000:.0f} ms p99 {H.pct(fresh, .99) * 1000:.0f} ms max "
                   f"{max(fresh, default=float('nan')) * 1000:.0f} ms, "
                   f"{rows[-1]['gaps']} gap records, {stop.group(1) if stop else '?'} unapplied at stop, "
                   f"RSS {rows[0]['rss_mib']} -> {rows[-1]['rss_mib']} MiB, exit {rc}") if rows else "no minute completed"
        H.log(summary)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "readme-soak.csv"), "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
                w.writeheader()
                w.writerows(rows)
        assert not failures, "\n".join(failures[:20])
        assert fresh and H.pct(fresh, .99) < 0.1, f"freshness p99 {H.pct(fresh, .99) * 1000:.0f} ms, not under 100 ms"
        assert rc == 0, f"featd exited {rc} on SIGINT"
        assert stop, "featd did not say at stop how many records it never applied"
        ok = True
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        wd.cleanup(ok)
    print("test_readme_soak: OK")


if __name__ == "__main__":
    main()
