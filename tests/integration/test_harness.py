#!/usr/bin/python3
"""Self-test of harness.py, the helpers every integration test shares; no
featd, no broker, a few seconds.  Above all: an assertion that fails in a
worker thread fails the test.  A plain threading.Thread loses it (shown: a
script whose only failure is in such a thread exits 0), harness.Workers
re-raises it in the test's thread with the worker's traceback (shown: the
same script through Workers exits non-zero and prints the assertion), and so
do run_threads, wait_for(watch=...) and the HTTP receivers (HookServer,
Webhook).  Then the small helpers the tests share: produce (BufferError),
pace, pct, scrape / metric / kafka_positions on a served /metrics,
featd_addrs when featd exits first, bench_rpc_result."""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402


def raises(fn, *words):
    """fn() raises AssertionError whose text holds every word; returns the text."""
    try:
        fn()
    except AssertionError as e:
        text = str(e)
        for w in words:
            assert w in text, f"{w!r} not in the failure:\n{text}"
        return text
    raise AssertionError(f"{fn} did not fail")


def run_script(body):
    """Runs body (Python, harness importable as H) in a fresh interpreter."""
    src = f"import sys\nsys.path.insert(0, {HERE!r})\nimport harness as H\nimport threading\n{body}\n"
    return subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=60)


def test_whole_run():
    # the lost exception this harness exists for: exit 0 despite a failed assert
    lost = run_script("t = threading.Thread(target=lambda: (_ for _ in ()).throw(AssertionError('n == 201')))\n"
                      "t.start(); t.join()")
    assert lost.returncode == 0 and "n == 201" in lost.stderr, lost
    # through Workers: the run fails, naming the worker and its assertion
    body = ("def stream():\n"
            "    n = 200\n"
            "    assert n == 201, f'{n} rows streamed for 201 asked'\n"
            "w = H.Workers()\n"
            "w.start(stream)\n"
            "w.join(10)\n"
            "print('not reached')")
    r = run_script(body)
    assert r.returncode != 0, f"a failed assert in a worker did not fail the run:\n{r.stdout}{r.stderr}"
    assert "not reached" not in r.stdout, r.stdout
    for w in ("worker stream failed", "200 rows streamed for 201 asked", ", in stream", "AssertionError"):
        assert w in r.stderr, f"{w!r} not in stderr:\n{r.stderr}"
    H.log(f"a failed assert in a worker: plain thread exit {lost.returncode}, Workers exit {r.returncode} with the "
          "worker's traceback")


def test_workers():
    stop = threading.Event()
    w = H.Workers(stop)
    w.start(lambda: stop.wait(30), name="waiter")      # ends when the failing worker sets stop

    def fail(x):
        assert x == 2, f"x is {x}"
    w.start(fail, 1)
    t0 = time.time()
    raises(lambda: w.join(20), "worker fail[1] failed", "x is 1", "assert x == 2")
    assert stop.is_set() and time.time() - t0 < 10, "a failure did not stop the other workers"
    # any exception, not only asserts; and the count of the others
    w = H.Workers()
    for i in range(3):
        w.start(lambda i=i: (_ for _ in ()).throw(RuntimeError(f"boom {i}")), name=f"w{i}")
    raises(lambda: w.join(10), "RuntimeError: boom", "and 2 other worker(s) failed too")
    # a worker that never ends is a failure of join, not a hang
    w = H.Workers()
    ev = threading.Event()
    w.start(lambda: ev.wait(30), name="stuck")
    raises(lambda: w.join(0.5), "still running", "stuck")
    ev.set()
    # passing workers pass
    w = H.Workers()
    out = []
    for i in range(4):
        w.start(out.append, i)
    w.join(10)
    assert sorted(out) == [0, 1, 2, 3]
    # run_threads: start and wait, the same re-raise
    raises(lambda: H.run_threads([lambda: None, lambda: [][1]], timeout=10), "IndexError")
    # wait_for(watch=) ends at once when a worker fails, instead of timing out
    w = H.Workers()
    w.start(lambda: (_ for _ in ()).throw(ValueError("early")), name="early")
    t0 = time.time()
    raises(lambda: H.wait_for(lambda: False, 30, "never", interval=0.05, watch=w), "worker early failed", "early")
    assert time.time() - t0 < 5
    raises(lambda: H.wait_for(lambda: False, 0.3, "something", interval=0.05), "timed out after 0.3s waiting for something")
    assert H.wait_for(lambda: 7, 1, "seven") == 7
    H.log("Workers: an assert or any exception is re-raised with its traceback, stops the others; join, "
          "run_threads and wait_for(watch=) all see it")


def post(url, body):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_webhook():
    hook = H.Webhook(fail_first=1)
    try:
        url = hook.url("/hooks")
        assert post(url, b'{"n": 1}') == 503            # the first POST fails and is dropped
        assert post(url, b'{"n": 2}') == 200
        assert hook.posts == [{"n": 2}] and hook.calls == 2, (hook.posts, hook.calls)
        hook.check()
        # a body that is not JSON: the handler's exception fails the test
        try:
            post(url, b"{not json")
        except OSError:
            pass                                          # the connection may just close
        raises(lambda: H.wait_for(lambda: False, 5, "never", interval=0.05, watch=hook),
               "an HTTP handler failed", "JSONDecodeError")
    finally:
        hook.shutdown()
    H.log("Webhook: fail_first answered 503, JSON kept, a bad body fails the test")


class FakeProducer:
    def __init__(self, full):
        self.full, self.sent, self.polls = full, [], 0

    def produce(self, topic, value=None, key=None, **kw):
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.sent.append((topic, value, key, kw))

    def poll(self, t):
        self.polls += 1


METRICS = """# HELP featd_kafka_lag lag
# TYPE featd_kafka_lag gauge
featd_kafka_lag{topic="ev",partition="0"} 0
featd_kafka_lag{topic="ev",partition="1"} 3
featd_kafka_next_offset{topic="ev",partition="0"} 10
featd_kafka_next_offset{topic="ev",partition="1"} 7
featd_rpc_requests_total{method="Get",code="OK"} 5
featd_rpc_requests_total{method="Get",code="INTERNAL"} 1
featd_label_escapes_total{reason="a \\"quoted\\" one"} 2
featd_up 1
"""


def test_small_helpers(args):
    p = FakeProducer(full=3)
    H.produce(p, "t", b"v", "k", on_delivery=print)
    assert p.sent == [("t", b"v", "k", {"on_delivery": print})] and p.polls == 3, (p.sent, p.polls)
    t0 = time.time()
    H.pace(t0, 2, 10.0)                                   # 2 messages at 10/s: due at t0 + 0.2 s
    assert 0.15 < time.time() - t0 < 1.0
    t0 = time.time()
    H.pace(t0 - 5, 2, 10.0)                               # behind: no sleep
    assert time.time() - t0 < 0.1
    assert H.pct([5, 1, 4, 2, 3], 0.5) == 3 and H.pct([5, 1, 4, 2, 3], 0.99) == 5
    assert H.pct([], 0.5, 0.0) == 0.0 and H.pct([], 0.5) != H.pct([], 0.5)   # nan by default
    r = H.bench_rpc_result("client: p50=12.5us p90=20us p99=31.25us mean=14us throughput=70000")
    assert r == {"p50": 12.5, "p90": 20.0, "p99": 31.25, "mean": 14.0, "tput": 70000.0}, r

    import http.server

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = METRICS.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    srv = H.HookServer(Metrics)
    try:
        admin = f"127.0.0.1:{srv.server_address[1]}"
        s = H.scrape(admin)
        assert s[("featd_up", ())] == 1.0
        assert s[("featd_label_escapes_total", (("reason", 'a \\"quoted\\" one'),))] == 2.0, s
        nxt, lags = H.kafka_positions(s)
        assert nxt == {("ev", 0): 10, ("ev", 1): 7} and sorted(lags) == [0.0, 3.0], (nxt, lags)
        assert H.metric(admin, "featd_rpc_requests_total") == 6.0
        assert H.metric(admin, "featd_rpc_requests_total", 'method="Get",code="OK"') == 5.0
        assert H.metric(admin, "featd_nothing") is None
        srv.check()
    finally:
        srv.shutdown()

    # featd_addrs: the file when it appears; featd exiting first ends the wait with its status
    wd = H.Workdir(args, "harness")
    ok = False
    try:
        os.makedirs(wd.file("d"))
        json.dump({"grpc": "127.0.0.1:1", "admin": "127.0.0.1:2"}, open(wd.file("d/featd.addr"), "w"))
        assert H.featd_addrs(wd, timeout=2, data_dir="d")["admin"] == "127.0.0.1:2"
        proc = H.Proc(["sh", "-c", "echo bad config; exit 2"], wd.file("p.log"))
        proc.p.wait(10)
        raises(lambda: H.featd_addrs(wd, timeout=10, proc=proc), "featd exited 2", "bad config")
        ok = True
    finally:
        wd.cleanup(ok)
    H.log("produce, pace, pct, bench_rpc_result, scrape/metric/kafka_positions, featd_addrs: as documented")


def main():
    args = H.parse_args()
    test_whole_run()
    test_workers()
    test_webhook()
    test_small_helpers(args)
    H.log("OK: harness self-test")


if __name__ == "__main__":
    main()
