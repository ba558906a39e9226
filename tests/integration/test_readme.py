#!/usr/bin/python3
"""README.md's commands work as written on the demo's data.

The ```sh blocks of the sections "What you see", "Serving", "Drift" and
"Models" (every block that talks to the demo's featd) are read from README.md (not copied here,
so the test follows the README) and run line by line, as a new user would,
in a directory laid out like the repository: deploy/featd.ini (a copy of
the real one), build/ (the build directory) and ./featd-data, with featd
started there as the README's run command does (--config deploy/featd.ini
--demo).  Only what a shared test machine needs changes: both listeners on
free ports (featctl finds gRPC through featd-data/featd.addr; the curl
command's localhost:7071 becomes the admin port featd picked) and
retrain_after_labels lowered so the first model trains in seconds, not a
minute (no command depends on it).

Each command must exit 0 and print values: no NOT_FOUND, a `get` row with
every feature present for every key asked, a `predict` score with no missing
feature.  A command writing to Kafka (kcat -P) prints nothing and is checked
by its exit status; a later read that depends on it is retried until featd
has applied the record (at most 30 s).  The log's progress line also has the
fields the README's sample shows."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H

ENV = dict(os.environ)
ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(?!\s)")


def section(readme, title):
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert m, f"README.md has no section '## {title}'"
    return m.group(1)


def sh_blocks(text):
    """Each ```sh block as its command lines (blank and comment lines dropped)."""
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
    return [[l for l in b.splitlines() if l.strip() and not l.lstrip().startswith("#")] for b in blocks]


def check_output(cmd, out):
    """'' when cmd's output holds values, else what is wrong with it."""
    lines = [l for l in out.splitlines() if l.strip()]
    if not lines:
        return "printed nothing"
    if "NOT_FOUND" in out:
        return "printed NOT_FOUND"
    words = cmd.split("#")[0].split()
    if "featctl" in cmd and "get" in words:
        keys = words[words.index("get") + 2:]
        keys = keys[:next((i for i, w in enumerate(keys) if w.startswith("--")), len(keys))]
        rows = {l.split()[0]: l.split()[1:] for l in lines[1:] if not l.startswith("*")}
        for k in keys:
            if k not in rows:
                return f"no row for key {k}"
            if "-" in rows[k] or len(rows[k]) != len(lines[0].split()) - 1:
                return f"key {k} lacks a feature: {rows[k]}"
    if "featctl" in cmd and "predict" in words:
        keys = words[words.index("predict") + 2:]
        keys = keys[:next((i for i, w in enumerate(keys) if w.startswith("--")), len(keys))]
        rows = {l.split()[0]: l.split()[1:] for l in lines[2:]}
        for k in keys:
            if k not in rows:
                return f"no score for key {k}"
            score, missing = rows[k]
            if not 0.0 <= float(score) <= 1.0 or missing != "0":
                return f"key {k}: score {score}, {missing} missing features"
    return ""


def run_block(wd, block, admin):
    assigns = []
    for line in block:
        cmd = line.replace("localhost:7071", admin).replace("127.0.0.1:7071", admin)
        m = ASSIGN.match(cmd)
        script = "\n".join(assigns + [cmd] + ([f'printf %s "${m.group(1)}"'] if m else []))
        # commands that write (to Kafka, to a file) print nothing: their exit status says
        writes = re.search(r"\bkcat\b.*\s-P\b|\s>\s|\s--out\s", cmd) is not None
        deadline, why = time.time() + 30, ""
        while True:
            r = subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=wd, capture_output=True, text=True,
                               timeout=120, env=ENV)
            why = (f"exit status {r.returncode}: {r.stderr.strip()}" if r.returncode
                   else "" if writes else check_output(cmd, r.stdout))
            if not why or writes or time.time() > deadline:
                break
            time.sleep(1)
        assert not why, f"README command `{line}` {why}\nstdout:\n{r.stdout[-2000:]}"
        H.log(f"ok: {line}" + ("" if writes else f"  ({len(r.stdout.splitlines())} lines)"))
        if m:
            assigns.append(cmd)


def progress_shape(line):
    """A progress line with its numbers and freshness taken out."""
    line = line[line.index("progress:"):]
    line = re.sub(r"freshness .*$", "freshness", line)
    return re.sub(r"~?-?\d+(\.\d+)?", "N", line)


def main():
    args = H.parse_args()
    readme = open(os.path.join(args.source_dir, "README.md")).read()
    seen = section(readme, "What you see")
    blocks = sh_blocks(seen)
    assert blocks and sum(len(b) for b in blocks) >= 4, f"few commands under 'What you see': {blocks}"
    for title in ("Serving", "Drift", "Models"):
        more = sh_blocks(section(readme, title))
        assert more, f"no commands under '{title}'"
        blocks += more
    sample = [l for l in seen.splitlines() if "progress:" in l]
    assert sample, "the README shows no progress line"

    wd = H.Workdir(args, "readme")
    ok = False
    featd = None
    try:
        os.makedirs(wd.file("deploy"))
        shutil.copy(os.path.join(args.source_dir, "deploy", "featd.ini"), wd.file("deploy/featd.ini"))
        os.symlink(os.path.abspath(args.build_dir), wd.file("build"))
        # the later sections call featctl as installed (cmake --install): on PATH
        ENV["PATH"] = os.path.dirname(os.path.abspath(H.bins(args)["featctl"])) + os.pathsep + ENV["PATH"]
        featd = H.Proc([os.path.abspath(H.bins(args)["featd"]), "--config", "deploy/featd.ini", "--demo",
                        "--set", "serve.listen=127.0.0.1:0", "--set", "admin.listen=127.0.0.1:0",
                        "--set", "http.listen=127.0.0.1:0", "--set", "redis.listen=127.0.0.1:0",
                        "--set", "model.churn.retrain_after_labels=2000"], wd.file("featd.log"), cwd=wd.path)
        addrs = H.featd_addrs(wd, data_dir="featd-data")
        H.wait_for(lambda: featd.alive() and "registered as champion" in featd.tail(400) or not featd.alive(),
                   120, "the demo's first model")
        assert featd.alive(), f"featd exited:\n{featd.tail()}"
        H.log("featd is up with a champion; running", sum(len(b) for b in blocks), "README commands")
        for b in blocks:
            run_block(wd.path, b, addrs["admin"])
        got = [l for l in featd.tail(400).splitlines() if "progress:" in l]
        assert got, "featd logged no progress line"
        assert progress_shape(got[-1]) == progress_shape(sample[0]), \
            f"the progress line differs from the README's sample:\n  {got[-1]}\n  {sample[0]}"
        # the Redis-protocol examples, against the demo's entities (each prints values, no nil)
        sect = readme[readme.index("## Redis protocol"):]
        sect = sect[:sect.index("\n## ", 4)]
        block = re.findall(r"```sh\n(.*?)```", sect, re.S)[0]
        lines = [l_.split("#")[0].strip() for l_ in block.splitlines() if l_.startswith("redis-cli")]
        assert len(lines) >= 3, lines
        for line in lines:
            cmd = line.replace("-p 6380", "-p " + addrs["redis"].rsplit(":", 1)[1])
            r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)
            out = r.stdout.rstrip("\n")
            assert r.returncode == 0 and out and "ERR" not in out, (cmd, r.stdout, r.stderr)
            assert all(v.strip() for v in out.split("\n")), (cmd, out)
            H.log(f"README: {line[:60]} -> {' | '.join(out.split(chr(10)))[:90]}")
        rc = featd.stop()
        assert rc == 0, f"featd exited {rc}:\n{featd.tail()}"
        ok = True
        H.log("every README command against the demo works on the demo's data")
    finally:
        if featd and featd.alive():
            featd.kill9()
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
