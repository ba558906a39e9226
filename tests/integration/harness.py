"""Shared helpers for featd's integration tests and benchmark scripts: start
the real binaries, talk to them with real clients (confluent-kafka, grpcio),
read the store with featd-inspect, wait for featd, run worker threads whose
failures fail the test, receive webhooks.  A helper that a second test needs
moves here rather than being copied; test_harness.py tests them.  Runs under
Debian's /usr/bin/python3."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback


def parse_args(extra=None):
    p = argparse.ArgumentParser()
    p.add_argument("--build-dir", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--long", action="store_true", help="a long run: skipped (exit 77) unless FEATD_LONG=1")
    if extra:
        extra(p)
    a = p.parse_args()
    if a.long and os.environ.get("FEATD_LONG") != "1":
        print("SKIPPED: long test; run with FEATD_LONG=1 (ctest -L long)", flush=True)
        sys.exit(77)
    return a


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class Workdir:
    def __init__(self, args, name):
        self.path = tempfile.mkdtemp(prefix=f"featd-{name}-")
        self.keep = args.keep

    def file(self, name):
        return os.path.join(self.path, name)

    def cleanup(self, ok):
        if ok and not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            log("work directory kept:", self.path)


def bins(args):
    b = args.build_dir
    return {
        "featd": os.path.join(b, "daemon", "featd"),
        "featctl": os.path.join(b, "featctl", "featctl"),
        "broker": os.path.join(b, "ingest", "featd-broker"),
        "inspect": os.path.join(b, "tools", "featd-inspect"),
    }


class Proc:
    """A child process with its output in a log file."""

    def __init__(self, argv, logpath, env=None, cwd=None):
        self.logpath = logpath
        self.logf = open(logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True)

    def alive(self):
        return self.p.poll() is None

    def kill9(self):
        if self.alive():
            self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit status."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f"process did not stop within {timeout}s; log {self.logpath}")

    def tail(self, n=40):
        self.logf.flush()
        with open(self.logpath, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode(errors="replace")


def wait_for(pred, timeout, what, interval=0.2, watch=None):
    """Polls pred until it returns something true (returned).  With watch
    (a Workers or a HookServer), a failure in one of its threads ends the
    wait at once, re-raised."""
    end = time.time() + timeout
    while time.time() < end:
        if watch:
            watch.check()
        v = pred()
        if v:
            return v
        time.sleep(interval)
    if watch:
        watch.check()
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Workers:
    """Threads whose failures fail the test.  An exception in a plain
    threading.Thread (an assert, an RpcError, a delivery callback raising in
    poll()) is printed to stderr and lost: the test carries on and passes.
    Here each worker's exception is kept, `stop` (a threading.Event, if
    given) is set so the other workers end early, and check() / join()
    re-raise the first one in the test's thread, naming the worker and
    carrying its traceback.  Threads are daemons, so a hung worker cannot
    keep a failed test alive."""

    def __init__(self, stop=None):
        self.stop = stop
        self.threads = []
        self.errors = []          # (worker name, exception, formatted traceback)
        self._lock = threading.Lock()

    def start(self, fn, *args, name=None):
        """Runs fn(*args) in a new thread; returns the thread."""
        name = name or f"{getattr(fn, '__name__', 'worker')}{list(args) if args else ''}"

        def body():
            try:
                fn(*args)
            except BaseException as e:  # noqa: B902 - every failure must reach the test
                with self._lock:
                    self.errors.append((name, e, traceback.format_exc()))
                if self.stop is not None:
                    self.stop.set()
        t = threading.Thread(target=body, name=name, daemon=True)
        self.threads.append(t)
        t.start()
        return t

    def check(self):
        """Raises the first worker failure so far, if any."""
        with self._lock:
            errs = list(self.errors)
        if errs:
            name, e, tb = errs[0]
            more = f" (and {len(errs) - 1} other worker(s) failed too)" if len(errs) > 1 else ""
            raise AssertionError(f"worker {name} failed{more}:\n{tb}") from e

    def join(self, timeout=60):
        """Waits for every worker (timeout seconds in all), then re-raises the
        first failure; a worker still running then is a failure too."""
        end = time.time() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.time()))
        self.check()
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            raise AssertionError(f"worker(s) still running after {timeout}s: {alive}")


def char_width(ch):
    """Terminal columns of one character, from unicodedata (independent of
    featd's common/textwidth.c): controls, combining marks and format
    characters but U+00AD 0; East Asian Wide/Fullwidth 2; else 1."""
    import unicodedata
    cp = ord(ch)
    if 0xD800 <= cp <= 0xDFFF:
        return 1
    cat = unicodedata.category(ch)
    if cat == "Cc" or cat in ("Mn", "Me") or (cat == "Cf" and cp != 0xAD) or 0x1160 <= cp <= 0x11FF:
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def column_starts(line):
    """Display columns at which each whitespace-separated field of line starts."""
    starts, col, prev_space = [], 0, True
    for ch in line:
        if ch == " ":
            prev_space = True
        else:
            if prev_space:
                starts.append(col)
            prev_space = False
        col += char_width(ch)
    return starts


def run_threads(fns, timeout=600, stop=None):
    """Runs each callable of fns in its own thread, waits for all of them and
    re-raises the first worker exception (see Workers)."""
    w = Workers(stop)
    for f in fns:
        w.start(f)
    w.join(timeout)


class HookServer:
    """A local HTTP server (http.server.ThreadingHTTPServer with handler) on
    a free port, serving from a daemon thread.  An exception in a handler is
    kept in errors, not just printed: check() re-raises the first."""

    def __init__(self, handler):
        import http.server
        outer = self
        self.errors = []

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                outer.errors.append(traceback.format_exc())

        self.server = Server(("127.0.0.1", 0), handler)
        self.server_address = self.server.server_address
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self):
        if self.errors:
            raise AssertionError(f"an HTTP handler failed ({len(self.errors)} in all):\n{self.errors[0]}")

    def shutdown(self):
        self.server.shutdown()


class Webhook(HookServer):
    """A webhook receiver: a HookServer that keeps the JSON body of every
    POST in posts (answered 200) and counts the POSTs in calls.  The first
    fail_first POSTs are answered 503 and their bodies dropped, so the
    sender must retry.  A body that is not JSON fails the test (check())."""

    def __init__(self, fail_first=0):
        import http.server
        outer = self
        self.posts = []
        self.calls = 0
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    outer.calls += 1
                    fail = outer.calls <= fail_first
                if fail:
                    self.send_response(503)
                    self.end_headers()
                    return
                post = json.loads(body)
                with lock:
                    outer.posts.append(post)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass
        super().__init__(Handler)

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


def start_broker(args, wd, config, partitions=None, brokers=None):
    bfile = wd.file("broker.bootstrap")
    argv = [bins(args)["broker"], "--config", config, "--bootstrap-file", bfile]
    if partitions:
        argv += ["--partitions", str(partitions)]
    if brokers:
        argv += ["--brokers", str(brokers)]
    proc = Proc(argv, wd.file("broker.log"))
    bs = wait_for(lambda: os.path.exists(bfile) and open(bfile).read().strip(), 20, "featd-broker")
    return proc, bs


def with_brokers(args, wd, broker_config, partitions, run, brokers=3):
    """The frame of the cluster tests: featd-broker (brokers, partitions) started from the config text
    broker_config, then run(args, wd, bootstrap, procs); whatever happens, every instance run left in
    procs (objects with .proc) is killed, the broker stopped and wd cleaned (kept on failure).  Exits 1
    unless run returned True."""
    bcfg = wd.file("broker.ini")
    open(bcfg, "w").write(broker_config)
    broker, bs = start_broker(args, wd, bcfg, partitions=partitions, brokers=brokers)
    log(f"featd-broker ({brokers} brokers) at", bs)
    procs = []
    ok = False
    try:
        ok = run(args, wd, bs, procs)
    finally:
        for p in procs:
            if p.proc.alive():
                p.proc.kill9()
        broker.stop()
        wd.cleanup(ok)
    if not ok:
        sys.exit(1)


def config_head(wd, bootstrap=None, group=None, partitions=1, progress="1s", serve="", kafka=""):
    """The [featd], [serve], [admin] and [kafka] sections most tests start their
    config with: data in wd's data/, listeners on free ports, the embedded
    broker (bootstrap None) or an external one, session.timeout.ms 6000 (quick
    recovery); serve and kafka: extra lines for those sections."""
    broker = ("embedded = true\n" if bootstrap is None else
              f"embedded = false\nbootstrap.servers = {bootstrap}\n")
    return (f"[featd]\ndata_dir = {wd.file('data')}\nprogress_interval = {progress}\n"
            f"[serve]\nlisten = 127.0.0.1:0\n{serve}"
            f"[admin]\nlisten = 127.0.0.1:0\n"
            f"[kafka]\n{broker}" + (f"group.id = {group}\n" if group else "") +
            f"session.timeout.ms = 6000\npartitions = {partitions}\n{kafka}")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (for configs that must name their port)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_featd(args, wd, config, extra=(), logname="featd.log", env=None):
    return Proc([bins(args)["featd"], "--config", config, *extra], wd.file(logname), env=env)


def featd_addrs(wd, timeout=30, data_dir="data", proc=None):
    """featd's listeners ({"grpc": ..., "admin": ...}), from <data_dir>/featd.addr
    once featd has written it (data_dir relative to the work dir; data/ unless
    the test's config says otherwise).  With proc (a Proc), featd exiting
    first ends the wait with its exit status and log."""
    afile = os.path.join(wd.path, data_dir, "featd.addr")

    def addr_file():
        if os.path.exists(afile):
            return open(afile).read()
        if proc is not None and not proc.alive():
            raise AssertionError(f"featd exited {proc.p.returncode} before writing {afile}:\n{proc.tail()}")
        return None
    return json.loads(wait_for(addr_file, timeout, "featd.addr"))


def wait_ready(admin, timeout=30):
    """Waits until featd's Status RPC says ready (admin: an AdminServiceStub;
    gen_protos must have run)."""
    from featd.v1 import admin_pb2
    wait_for(lambda: admin.Status(admin_pb2.StatusRequest(), timeout=5).ready, timeout, "ready")


def wait_assigned(featd, timeout=60, lines=200, watch=None):
    """Waits until featd's log (its last `lines` lines) shows a partition assignment."""
    wait_for(lambda: "assigned" in featd.tail(lines), timeout, "partition assignment", watch=watch)


def stored_offsets(args, config, data_dir=None):
    """{(topic, partition): next offset} as featd stored them (featd-inspect offsets)."""
    return {(r["topic"], r["partition"]): r["next"] for r in inspect(args, config, "offsets", data_dir=data_dir)}


def wait_stored(args, config, ends, timeout, what, proc=None, open_may_race=False, data_dir=None, interval=1.0):
    """Waits until featd has stored every partition of ends ({(topic,
    partition): offset}) up to exactly that next offset.  proc: featd must
    stay alive meanwhile.  open_may_race: a featd-inspect that fails (its
    read-only open can race featd's own open and WAL recovery) is retried,
    not a failure."""
    def done():
        if proc is not None:
            assert proc.alive(), proc.tail()
        try:
            offs = stored_offsets(args, config, data_dir)
        except subprocess.CalledProcessError as e:
            if not open_may_race:
                raise
            log("    featd-inspect (retrying):", e.stderr.decode(errors="replace").strip()[:300])
            return False
        return all(offs.get(k) == n for k, n in ends.items())
    wait_for(done, timeout, what, interval=interval)


def inspect(args, config, *sections, data_dir=None):
    """featd-inspect's JSON lines (the sections named, or all), as dicts;
    data_dir overrides the config's."""
    argv = [bins(args)["inspect"], "--config", config] + (["--data-dir", data_dir] if data_dir else [])
    out = subprocess.run([*argv, *sections], capture_output=True, check=True)
    # split on "\n" only: str.splitlines() also splits at U+2028, U+0085 and other
    # characters a JSON string may hold unescaped
    return [json.loads(l) for l in out.stdout.decode().split("\n") if l.strip()]


def featctl(args, *argv, timeout=60, text=True, env=None):
    """Runs featctl with argv; returns the CompletedProcess (output captured)."""
    return subprocess.run([bins(args)["featctl"], *argv], capture_output=True, text=text, timeout=timeout, env=env)


def producer(bootstrap, **extra):
    from confluent_kafka import Producer
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "log.connection.close": False}
    conf.update(extra)
    return Producer(conf)


def produce(prod, topic, value, key=None, **kw):
    """prod.produce(), polling while librdkafka's local queue is full
    (BufferError) instead of failing."""
    while True:
        try:
            prod.produce(topic, value=value, key=key, **kw)
            return
        except BufferError:
            prod.poll(0.05)


def pace(t0, sent, rate):
    """Sleeps until sent messages at rate per second since t0 (time.time())
    are due: a producer that calls it after each message keeps to rate."""
    ahead = sent / rate - (time.time() - t0)
    if ahead > 0:
        time.sleep(ahead)


def bench_rpc_result(line):
    """bench_rpc's result line as {"p50", "p90", "p99", "mean" (microseconds), "tput" (calls/s)}."""
    m = re.search(r"p50=([\d.]+)us p90=([\d.]+)us p99=([\d.]+)us mean=([\d.]+)us throughput=(\d+)", line)
    if not m:
        raise RuntimeError("bench output: " + line)
    return {"p50": float(m[1]), "p90": float(m[2]), "p99": float(m[3]), "mean": float(m[4]), "tput": float(m[5])}


def openssl(wd, *args):
    r = subprocess.run(["openssl", *args], cwd=wd.path, capture_output=True, text=True)
    assert r.returncode == 0, f"openssl {' '.join(args)}: {r.stderr}"


def make_ca(wd, name):
    """A test CA: wd/NAME.pem and NAME.key (EC P-256, 2 days)."""
    openssl(wd, "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=featd test {name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_cert(wd, name, ca, serial, ext):
    """wd/NAME.pem and NAME.key signed by ca, with the X.509 extensions ext (openssl -extfile text)."""
    openssl(wd, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
    open(wd.file(f"{name}.ext"), "w").write(ext)
    openssl(wd, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-set_serial", str(serial), "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext")
    os.chmod(wd.file(f"{name}.key"), 0o600)


def gen_protos(args, outdir):
    """Generates Python protobuf + gRPC stubs from proto/ (at test time)."""
    proto = os.path.join(args.source_dir, "proto")
    files = [os.path.join(proto, "featd", "v1", f) for f in ("event.proto", "feature_service.proto", "admin.proto")]
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{proto}", f"--python_out={outdir}",
                    f"--grpc_python_out={outdir}", *files], check=True)
    sys.path.insert(0, outdir)


def replay_online(history):
    """Online state computed independently from history rows: per (table, key,
    feature) the value of the row with the greatest (ts, offset, partition)."""
    best = {}
    for r in history:
        for f, v in r["features"].items():
            k = (r["table"], r["key"], f)
            rank = (r["ts"], r["offset"], r["partition"])
            if k not in best or rank > best[k][0]:
                best[k] = (rank, v)
    return {k: (rank[0], v) for k, (rank, v) in best.items()}


def online_from_dump(rows):
    out = {}
    for r in rows:
        for f, e in r["features"].items():
            out[(r["table"], r["key"], f)] = (e["ts"], e["value"])
    return out


PROM_LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(admin_addr):
    """Every sample of /metrics: {(name, ((label, value), ...) sorted): value}."""
    import urllib.request
    text = urllib.request.urlopen(f"http://{admin_addr}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name, _, lab = series.partition("{")
        out[(name, tuple(sorted(PROM_LABEL_RE.findall(lab))))] = float(value)
    return out


def kafka_positions(samples):
    """From scrape()'s samples: ({(topic, partition): featd_kafka_next_offset},
    [featd_kafka_lag of each partition])."""
    nxt = {(dict(l)["topic"], int(dict(l)["partition"])): v for (n, l), v in samples.items()
           if n == "featd_kafka_next_offset"}
    return nxt, [v for (n, l), v in samples.items() if n == "featd_kafka_lag"]


def pct(vals, q, empty=float("nan")):
    """The q quantile of vals (the value at rank int(q * n) of the sorted
    values); empty when there are none."""
    s = sorted(vals)
    return s[min(len(s) - 1, int(q * len(s)))] if s else empty


def metric(admin_addr, name, labels=None, token=None):
    """One sample of /metrics (sum over series when labels is None), or None.  token: a bearer token
    (when [auth] is on)."""
    import urllib.request
    req = urllib.request.Request(f"http://{admin_addr}/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        base, _, lab = series.partition("{")
        if base != name:
            continue
        if labels is not None and lab.rstrip("}") != labels:
            continue
        total += float(value)
        found = True
    return total if found else None


def read_topic(bootstrap, topic, partitions=1, idle_s=1.5):
    """Every message of topic, read from the beginning by an independent consumer."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{topic}-{time.time()}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out, idle = [], 0.0
    while idle < idle_s:
        ms = c.consume(500, timeout=0.5)
        idle = idle + 0.5 if not ms else 0.0
        out.extend(m for m in ms if not m.error())
    c.close()
    return out


def auc(scores, labels):
    """Rank AUC (Mann-Whitney, ties one half), computed here, independent of featd."""
    pairs = sorted(zip(scores, labels))
    n1 = sum(1 for _, y in pairs if y == 1)
    n0 = len(pairs) - n1
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        r = (i + 1 + j) / 2.0  # average rank of the tie group
        rank_sum += r * sum(1 for k in range(i, j) if pairs[k][1] == 1)
        i = j
    return (rank_sum - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def control(ctl_file, *commands):
    """Sends fault-injection commands to featd-broker's control port
    (--control-file); returns the replies, raising on "error: ..."."""
    import socket
    host, _, port = open(ctl_file).read().strip().rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        f = s.makefile("rw")
        out = []
        for c in commands:
            f.write(c + "\n")
            f.flush()
            r = f.readline().strip()
            if not r.startswith("ok"):
                raise AssertionError(f"featd-broker control {c!r}: {r!r}")
            out.append(r)
        return out


def check_store_against_log(args, config, bootstrap, topics, event_topic):
    """The exactly-once audit of test_crash.py, for a stopped featd: with the
    log as the oracle (read back by an independent consumer), every offset of
    every partition of topics is stored exactly once (history, labels or dead
    letters), each partition's applied count equals its length, history holds
    exactly the log's valid events of event_topic (records carry
    features.seq), and online equals a replay of history.  Returns
    (per-partition lengths, {(partition, offset): seq} of the log's events)."""
    from confluent_kafka import Consumer, TopicPartition
    oracle = Consumer({"bootstrap.servers": bootstrap, "group.id": f"oracle-{time.time()}",
                       "enable.auto.commit": False})
    try:
        per_part = {}
        for t in topics:
            md = oracle.list_topics(t, timeout=10).topics[t]
            for p in md.partitions:
                per_part[(t, p)] = oracle.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
        dump = inspect(args, config)
        seen = {}
        hist = [r for r in dump if r["kind"] == "offline"]
        for r in hist:
            seen.setdefault((event_topic, r["partition"]), []).append(r["offset"])
        for r in dump:
            if r["kind"] == "label":
                k = next(t for t in topics if t != event_topic)
                seen.setdefault((k, r["partition"]), []).append(r["offset"])
            elif r["kind"] == "dead_letter":
                seen.setdefault((r["topic"], r["partition"]), []).append(r["offset"])
        for k, n in per_part.items():
            offs = sorted(seen.get(k, []))
            if offs != list(range(n)):
                missing = sorted(set(range(n)) - set(offs))
                extra = sorted(set(offs) - set(range(n)))
                raise AssertionError(f"{k}: offsets are not exactly 0..{n - 1} once each ({len(offs)} stored, "
                                     f"{len(set(offs))} distinct; missing {missing[:10]}, extra {extra[:10]})")
        for r in dump:
            if r["kind"] == "offset" and (r["topic"], r["partition"]) in per_part:
                n = per_part[(r["topic"], r["partition"])]
                assert r["applied"] == n, f"{r}: applied {r['applied']} != {n} messages: applied twice?"
        oracle.assign([TopicPartition(t, p, 0) for (t, p) in per_part])
        log_events = {}
        got_to = {k: 0 for k in per_part}
        deadline = time.time() + 120
        while any(got_to[k] < n for k, n in per_part.items()) and time.time() < deadline:
            for m in oracle.consume(10000, timeout=1.0):
                if m.error():
                    continue
                got_to[(m.topic(), m.partition())] = m.offset() + 1
                if m.topic() == event_topic:
                    try:
                        log_events[(m.partition(), m.offset())] = json.loads(m.value())["features"]["seq"]
                    except ValueError:
                        pass
        assert all(got_to[k] >= n for k, n in per_part.items()), f"could not read the whole log back: {got_to}"
    finally:
        oracle.close()
    got = {(r["partition"], r["offset"]): r["features"]["seq"] for r in hist}
    assert got == log_events, (f"history differs from the log: {len(set(log_events) - set(got))} log records "
                               f"missing, {len(set(got) - set(log_events))} extra, "
                               f"{sum(1 for k in got if k in log_events and got[k] != log_events[k])} different")
    want_online = replay_online(hist)
    got_online = online_from_dump([r for r in dump if r["kind"] == "online"])
    assert got_online == want_online, "online differs from a replay of history"
    return per_part, log_events


# ---- the Redis protocol (redis.listen), raw: replies as bytes, for byte-for-byte comparisons ----

def resp_encode(*args):
    """A command as a RESP multibulk request (str or bytes arguments)."""
    bs = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(bs) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in bs)


def resp_reply_end(b, i=0):
    """The end of the RESP2/RESP3 reply starting at b[i], or -1 while it is incomplete."""
    nl = b.find(b"\r\n", i)
    if nl < 0:
        return -1
    t, v = b[i:i + 1], b[i + 1:nl]
    if t in (b"+", b"-", b":", b"_", b",", b"#"):
        return nl + 2
    if t == b"$":
        n = int(v)
        return nl + 2 if n < 0 else (nl + 4 + n if len(b) >= nl + 4 + n else -1)
    if t in (b"*", b"%", b"~"):
        j = nl + 2
        for _ in range(max(int(v), 0) * (2 if t == b"%" else 1)):
            j = resp_reply_end(b, j)
            if j < 0:
                return -1
        return j
    raise ValueError(f"not a RESP reply: {b[i:i + 40]!r}")


class RespConn:
    """One client connection; cmd() sends a command and returns its raw reply."""

    def __init__(self, addr, timeout=30):
        host, port = addr.rsplit(":", 1) if isinstance(addr, str) else addr
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def replies(self, n):
        """The next n replies, raw."""
        out = []
        while len(out) < n:
            e = resp_reply_end(self.buf) if self.buf else -1
            if e >= 0:
                out.append(self.buf[:e])
                self.buf = self.buf[e:]
                continue
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError(f"closed after {len(out)} of {n} replies; left {self.buf[:80]!r}")
            self.buf += chunk
        return out

    def cmd(self, *args):
        self.send(resp_encode(*args))
        return self.replies(1)[0]

    def closed(self, timeout=5):
        """True when the server closes the connection (after what it sent)."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()
