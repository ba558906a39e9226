#!/usr/bin/python3
"""Security of featd's network interfaces, end to end with real clients.

A CA, a server certificate (SAN localhost, 127.0.0.1), client certificates and
a second, foreign CA are made with openssl in the work directory now.  The
real featd then serves:
  A: TLS + bearer tokens.  Python grpcio with the CA and a read token reads
     GetOnlineFeatures (the value produced through Kafka comes back) and
     Status; a plain-text connection fails; no token / an unknown token is
     UNAUTHENTICATED; a read token on TriggerRetrain / Promote is
     PERMISSION_DENIED; an admin token may call them.  Admin HTTP: /healthz
     and /readyz open, /metrics and /v1/* 401 (WWW-Authenticate: Bearer)
     without a read token, a write with a read token 403.  featctl does the
     same with --tls-ca/--token-file and with --config ([featctl] keys).
     The HTTP/JSON API (http.listen) is HTTPS with the same certificate:
     urllib with the CA and a read token reads the value, plain HTTP and an
     unknown CA fail, a read token on an admin method is 403.
  B: mutual TLS.  A client certificate from the CA works (grpcio, featctl,
     HTTPS); none, or one from another CA, fails the handshake.
Start-up refusals, each exit 2 with one line naming the key: a non-loopback
serve.listen without TLS (unless serve.plaintext = true, which starts),
missing / non-PEM / mismatched certificate files, bad token files."""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H

READ_TOKEN = "rd-4f0c9a1e7b2d8c3f5a6e"
ADMIN_TOKEN = "adm-9b8a7c6d5e4f3a2b1c0d"
OTHER_TOKEN = "xx-00000000000000000000"


def make_pki(wd):
    H.make_ca(wd, "ca")
    H.make_ca(wd, "otherca")
    H.make_cert(wd, "server", "ca", 10, "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    client_ext = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
    H.make_cert(wd, "client", "ca", 11, client_ext)
    H.make_cert(wd, "intruder", "otherca", 12, client_ext)


def http_client_errors():
    import http.client
    return http.client.HTTPException


def config(wd, name, serve="", extra="", listen="127.0.0.1:0"):
    return f"""
[featd]
data_dir = {wd.file(name + "-data")}
progress_interval = 0
[serve]
listen = {listen}
{serve}
[admin]
listen = 127.0.0.1:0
{extra}
[kafka]
embedded = true
partitions = 1
[drift]
enabled = false
[table user]
topic = user_events
feature.clicks = int64
[model churn]
table = user
label_topic = churn_labels
"""


def start(args, wd, name, text):
    cfg = wd.file(name + ".ini")
    open(cfg, "w").write(text)
    proc = H.start_featd(args, wd, cfg, logname=name + ".log")
    addrs = H.featd_addrs(wd, timeout=60, data_dir=name + "-data", proc=proc)
    # featd.addr is written just before the signal handlers: wait for the start-up line
    H.wait_for(lambda: " running: " in proc.tail(), 30, f"featd {name} running")
    return proc, cfg, addrs


def refused(args, wd, name, text, keys):
    """featd must exit 2 before doing anything, with one 'featd: config:' line naming every key."""
    cfg = wd.file(name + ".ini")
    open(cfg, "w").write(text)
    r = subprocess.run([H.bins(args)["featd"], "--config", cfg], capture_output=True, text=True, timeout=60)
    lines = [l for l in r.stderr.splitlines() if l.startswith("featd: config:")]
    assert r.returncode == 2, f"{name}: exit {r.returncode}, stderr {r.stderr}"
    assert len(lines) == 1, f"{name}: expected one config line: {r.stderr}"
    for k in keys:
        assert k in lines[0], f"{name}: {lines[0]!r} does not name {k}"
    assert not os.path.exists(wd.file(name + "-data")), f"{name}: data_dir created before the refusal"
    return lines[0]


def main():
    args = H.parse_args()
    wd = H.Workdir(args, "security")
    H.gen_protos(args, wd.path)
    import grpc
    from featd.v1 import admin_pb2, admin_pb2_grpc, feature_service_pb2 as fs, feature_service_pb2_grpc
    make_pki(wd)
    pem = {n: open(wd.file(n), "rb").read() for n in
           ("ca.pem", "server.pem", "client.pem", "client.key", "intruder.pem", "intruder.key")}
    open(wd.file("read.tokens"), "w").write(f"# read-only tokens\n\n  {READ_TOKEN}  \n")
    os.chmod(wd.file("read.tokens"), 0o644)  # readable by everyone: featd must warn
    open(wd.file("admin.tokens"), "w").write(f"# operators\n{ADMIN_TOKEN}\n")
    os.chmod(wd.file("admin.tokens"), 0o600)
    open(wd.file("read.token"), "w").write(READ_TOKEN + "\n")
    open(wd.file("admin.token"), "w").write(ADMIN_TOKEN + "\n")
    open(wd.file("other.token"), "w").write(OTHER_TOKEN + "\n")

    def featctl(*argv):
        r = H.featctl(args, *argv)
        return r.returncode, r.stdout, r.stderr

    def code_of(fn, req, token=None, timeout=10):
        md = [("authorization", f"Bearer {token}")] if token else None
        try:
            fn(req, metadata=md, timeout=timeout)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    procs = []
    ok = False
    try:
        # ---------------- A: TLS + tokens ----------------
        tls_a = f"tls_cert = {wd.file('server.pem')}\ntls_key = {wd.file('server.key')}\n"
        auth = (f"[auth]\nread_tokens_file = {wd.file('read.tokens')}\n"
                f"admin_tokens_file = {wd.file('admin.tokens')}\n")
        fctl = f"[featctl]\ntls_ca = {wd.file('ca.pem')}\ntoken_file = {wd.file('read.token')}\n"
        a, cfg_a, addrs = start(args, wd, "a", config(wd, "a", tls_a, auth + fctl + "[http]\nlisten = 127.0.0.1:0\n"))
        procs.append(a)
        ga, ha = addrs["grpc"], addrs["admin"]
        H.log("featd A (TLS + tokens) at", addrs)
        log_a = open(a.logpath).read()
        assert "read.tokens is readable by every user" in log_a, "no warning about a world-readable token file"
        assert "admin.tokens is readable" not in log_a

        ch = grpc.secure_channel(ga, grpc.ssl_channel_credentials(root_certificates=pem["ca.pem"]))
        feat, admin = feature_service_pb2_grpc.FeatureServiceStub(ch), admin_pb2_grpc.AdminServiceStub(ch)
        # a value produced through Kafka comes back over TLS with a read token
        bs = open(wd.file("a-data/kafka.bootstrap")).read().strip()
        prod = H.producer(bs)
        ts = int(time.time() * 1000) - 1000
        prod.produce("user_events", key="u1", value=json.dumps({"key": "u1", "ts": ts, "features": {"clicks": 42}}))
        assert prod.flush(30) == 0
        del prod
        md_read = [("authorization", f"Bearer {READ_TOKEN}")]

        def clicks():
            r = feat.GetOnlineFeatures(fs.GetOnlineFeaturesRequest(table="user", entity_keys=["u1"]),
                                       metadata=md_read, timeout=10)
            v = r.rows[0].values[0]
            return v.status == fs.FeatureStatus.PRESENT and (v.value.int64_value, v.event_time_ms)
        assert H.wait_for(clicks, 30, "u1 online over TLS") == (42, ts)
        st = admin.Status(admin_pb2.StatusRequest(), metadata=md_read, timeout=10)
        assert st.version, st
        H.log("TLS + read token: GetOnlineFeatures and Status OK")

        gof = fs.GetOnlineFeaturesRequest(table="user", entity_keys=["u1"])
        assert code_of(feat.GetOnlineFeatures, gof) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(feat.GetOnlineFeatures, gof, OTHER_TOKEN) == grpc.StatusCode.UNAUTHENTICATED
        assert code_of(admin.Status, admin_pb2.StatusRequest()) == grpc.StatusCode.UNAUTHENTICATED
        retrain = admin_pb2.TriggerRetrainRequest(model="churn", reason="security test")
        promote = admin_pb2.PromoteRequest(model="churn")
        assert code_of(admin.TriggerRetrain, retrain, READ_TOKEN) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(admin.Promote, promote, READ_TOKEN) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(admin.Rollback, admin_pb2.RollbackRequest(model="churn"), READ_TOKEN) == \
            grpc.StatusCode.PERMISSION_DENIED
        assert code_of(admin.TriggerRetrain, retrain, ADMIN_TOKEN) == grpc.StatusCode.OK
        # no challenger yet: refused for that reason, not for the token
        pc = code_of(admin.Promote, promote, ADMIN_TOKEN)
        assert pc not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.OK), pc
        assert code_of(feat.GetOnlineFeatures, gof, ADMIN_TOKEN) == grpc.StatusCode.OK
        # a server-streaming method goes through the same check
        hist = fs.GetHistoricalFeaturesRequest(table="user", rows=[fs.EntityTime(entity_key="u1", ts_ms=ts + 1)])
        assert code_of(lambda r, **kw: list(feat.GetHistoricalFeatures(r, **kw)), hist) == \
            grpc.StatusCode.UNAUTHENTICATED
        rows = list(feat.GetHistoricalFeatures(hist, metadata=md_read, timeout=10))
        assert len(rows) == 1 and rows[0].values[0].value.int64_value == 42, rows
        try:
            admin.Promote(promote, metadata=md_read, timeout=10)
            raise AssertionError("Promote with a read token succeeded")
        except grpc.RpcError as e:
            assert "admin token" in e.details(), e.details()
        H.log("tokens: UNAUTHENTICATED / PERMISSION_DENIED / admin OK")

        # every method of both services, from their descriptors: an admin method refuses a read token
        # (PERMISSION_DENIED); a read method does not refuse it; none takes a call without a token
        admin_methods = {"Promote", "Rollback", "TriggerRetrain", "PinDriftReference", "Backup", "GetTrainingRows",
                         "ImportModel", "Push"}
        read_methods = {"GetOnlineFeatures", "GetHistoricalFeatures", "Predict", "Status", "ListTables", "ListModels",
                        "GetRetrainStatus", "GetDriftReport", "GetCluster", "GetDriftSketches", "ExportTrainingSet"}
        from google.protobuf import message_factory
        checked = 0
        for mod in (admin_pb2, fs):
            for svc in mod.DESCRIPTOR.services_by_name.values():
                for m in svc.methods:
                    assert m.name in admin_methods | read_methods, f"{m.name}: say whether it is an admin method"
                    path = f"/{svc.full_name}/{m.name}"
                    req = message_factory.MessageFactory().GetPrototype(m.input_type)().SerializeToString()
                    call = (ch.unary_stream if m.server_streaming else ch.unary_unary)(
                        path, request_serializer=lambda b: b, response_deserializer=lambda b: b)

                    def invoke(r, call=call, streaming=m.server_streaming, **kw):
                        return list(call(r, **kw)) if streaming else call(r, **kw)
                    assert code_of(invoke, req) == grpc.StatusCode.UNAUTHENTICATED, path
                    got = code_of(invoke, req, READ_TOKEN)
                    if m.name in admin_methods:
                        assert got == grpc.StatusCode.PERMISSION_DENIED, (path, got)
                    else:
                        assert got not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED), \
                            (path, got)
                    checked += 1
        H.log(f"{checked} methods from the descriptors: every admin method refuses a read token")

        # plain text against the TLS port fails (with a valid token)
        plain = grpc.insecure_channel(ga)
        c = code_of(admin_pb2_grpc.AdminServiceStub(plain).Status, admin_pb2.StatusRequest(), READ_TOKEN, timeout=5)
        assert c == grpc.StatusCode.UNAVAILABLE, c
        plain.close()
        # a client that trusts another CA refuses featd's certificate
        wrong = grpc.secure_channel(ga, grpc.ssl_channel_credentials(root_certificates=open(wd.file("otherca.pem"), "rb").read()))
        c = code_of(admin_pb2_grpc.AdminServiceStub(wrong).Status, admin_pb2.StatusRequest(), READ_TOKEN, timeout=5)
        assert c == grpc.StatusCode.UNAVAILABLE, c
        wrong.close()

        # admin HTTP
        def http(path, token=None, method="GET"):
            req = urllib.request.Request(f"http://{ha}{path}", method=method, data=b"{}" if method == "POST" else None)
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, dict(r.headers), r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), e.read().decode()
        assert http("/healthz")[0] == 200
        assert http("/readyz")[0] in (200, 503)
        for path in ("/metrics", "/v1/status", "/v1/drift", "/nonexistent"):
            code, hdrs, _ = http(path)
            assert code == 401, (path, code)
            assert hdrs.get("WWW-Authenticate", "").startswith("Bearer"), (path, hdrs)
            code, hdrs, _ = http(path, OTHER_TOKEN)
            assert code == 401 and "invalid_token" in hdrs.get("WWW-Authenticate", ""), (path, code, hdrs)
        code, _, body = http("/metrics", READ_TOKEN)
        assert code == 200 and "featd_rpc_requests_total" in body, code
        # the refusals above were counted by method and code
        assert 'method="TriggerRetrain",code="PERMISSION_DENIED"' in body
        assert 'method="GetOnlineFeatures",code="UNAUTHENTICATED"' in body
        code, _, body = http("/v1/status", READ_TOKEN)
        assert code == 200 and json.loads(body)["version"], code
        code, hdrs, _ = http("/v1/status", READ_TOKEN, "POST")
        assert code == 403 and "insufficient_scope" in hdrs.get("WWW-Authenticate", ""), (code, hdrs)
        assert http("/v1/status", ADMIN_TOKEN, "POST")[0] == 405  # allowed to write; nothing writes there
        assert http("/metrics", ADMIN_TOKEN)[0] == 200
        H.log("admin HTTP: 200 / 401 / 403 as designed")

        # the HTTP/JSON API: HTTPS with gRPC's certificate
        import ssl

        def api(addr, method, body, token=READ_TOKEN, ctx=None, scheme="https"):
            req = urllib.request.Request(f"{scheme}://{addr}/v1/{method}", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        cafile = ssl.create_default_context(cafile=wd.file("ca.pem"))
        code, body = api(addrs["http"], "FeatureService/GetOnlineFeatures", {"table": "user", "entity_keys": ["u1"]},
                         ctx=cafile)
        assert code == 200 and body["rows"][0]["values"][0]["value"]["int64_value"] == 42, (code, body)
        code, body = api(addrs["http"], "AdminService/TriggerRetrain", {"model": "churn"}, ctx=cafile)
        assert code == 403 and body["code"] == "PERMISSION_DENIED", (code, body)
        for kw in ({"scheme": "http"}, {"ctx": ssl.create_default_context(cafile=wd.file("otherca.pem"))}):
            try:
                api(addrs["http"], "FeatureService/GetOnlineFeatures", {"table": "user", "entity_keys": ["u1"]}, **kw)
                raise AssertionError(f"{kw} reached the HTTPS listener")
            except (urllib.error.URLError, ConnectionError, http_client_errors()) as e:
                H.log(f"HTTP/JSON API refused {list(kw)[0]}: {type(e).__name__}")
        H.log("HTTP/JSON API: HTTPS with the gRPC certificate, tokens as gRPC")

        # featctl
        rc, out, err = featctl("--addr", ga, "--tls-ca", wd.file("ca.pem"), "--token-file", wd.file("read.token"),
                               "--json", "get", "user", "u1")
        assert rc == 0, err
        assert json.loads(out)["rows"][0]["features"]["clicks"]["value"] == 42, out
        rc, out, err = featctl("--addr", ga, "--tls-ca", wd.file("ca.pem"), "status")
        assert rc == 1 and "UNAUTHENTICATED" in err, (rc, err)
        rc, out, err = featctl("--addr", ga, "--token-file", wd.file("read.token"), "status")
        assert rc == 1 and "cannot reach featd" in err, (rc, err)
        rc, out, err = featctl("--addr", ga, "--tls-ca", wd.file("ca.pem"), "--token-file", wd.file("read.token"),
                               "retrain", "churn")
        assert rc == 1 and "PERMISSION_DENIED" in err, (rc, err)
        rc, out, err = featctl("--addr", ga, "--tls-ca", wd.file("ca.pem"), "--token-file", wd.file("admin.token"),
                               "retrain", "churn")
        assert rc == 0, err
        # the certificate names localhost and 127.0.0.1, not featd.example: a name override must be checked
        rc, out, err = featctl("--addr", ga, "--tls-ca", wd.file("ca.pem"), "--tls-server-name", "featd.example",
                               "--token-file", wd.file("read.token"), "status")
        assert rc == 1, (rc, out)
        rc, out, err = featctl("--addr", ga.replace("127.0.0.1", "localhost"), "--tls-ca", wd.file("ca.pem"),
                               "--tls-server-name", "localhost", "--token-file", wd.file("read.token"), "status")
        assert rc == 0, err
        # --config: address from featd.addr, CA and token from [featctl]; a flag beats the file's token
        rc, out, err = featctl("--config", cfg_a, "--json", "status")
        assert rc == 0, err
        assert json.loads(out)["version"], out
        rc, out, err = featctl("--config", cfg_a, "retrain", "churn")
        assert rc == 1 and "PERMISSION_DENIED" in err, (rc, err)
        rc, out, err = featctl("--config", cfg_a, "--token-file", wd.file("admin.token"), "retrain", "churn")
        assert rc == 0, err
        rc, out, err = featctl("--addr", ga, "--tls-ca", wd.file("nope.pem"), "status")
        assert rc == 2 and "--tls-ca" in err, (rc, err)
        H.log("featctl: TLS, tokens, --config")
        ch.close()
        assert a.stop() == 0, a.tail()
        procs.remove(a)

        # ---------------- B: mutual TLS ----------------
        tls_b = tls_a + f"tls_client_ca = {wd.file('ca.pem')}\n"
        b, cfg_b, addrs = start(args, wd, "b", config(wd, "b", tls_b, "[http]\nlisten = 127.0.0.1:0\n"))
        procs.append(b)
        gb = addrs["grpc"]
        H.log("featd B (mutual TLS) at", addrs)
        assert "mutual TLS" in open(b.logpath).read()

        def status_with(creds):
            chan = grpc.secure_channel(gb, creds)
            try:
                return code_of(admin_pb2_grpc.AdminServiceStub(chan).Status, admin_pb2.StatusRequest(), timeout=5)
            finally:
                chan.close()
        good = grpc.ssl_channel_credentials(pem["ca.pem"], pem["client.key"], pem["client.pem"])
        assert status_with(good) == grpc.StatusCode.OK
        assert status_with(grpc.ssl_channel_credentials(pem["ca.pem"])) == grpc.StatusCode.UNAVAILABLE
        foreign = grpc.ssl_channel_credentials(pem["ca.pem"], pem["intruder.key"], pem["intruder.pem"])
        assert status_with(foreign) == grpc.StatusCode.UNAVAILABLE
        rc, out, err = featctl("--addr", gb, "--tls-ca", wd.file("ca.pem"), "--tls-cert", wd.file("client.pem"),
                               "--tls-key", wd.file("client.key"), "status")
        assert rc == 0, err
        rc, out, err = featctl("--addr", gb, "--tls-ca", wd.file("ca.pem"), "status")
        assert rc == 1, (rc, out)
        rc, out, err = featctl("--addr", gb, "--tls-ca", wd.file("ca.pem"), "--tls-cert", wd.file("intruder.pem"),
                               "--tls-key", wd.file("intruder.key"), "status")
        assert rc == 1, (rc, out)
        rc, out, err = featctl("--addr", gb, "--tls-ca", wd.file("ca.pem"), "--tls-cert", wd.file("client.pem"), "status")
        assert rc == 2 and "--tls-key" in err, (rc, err)
        rc, out, err = featctl("--addr", gb, "--tls-ca", wd.file("ca.pem"), "--tls-cert", wd.file("client.pem"),
                               "--tls-key", wd.file("intruder.key"), "status")
        assert rc == 2 and "--tls-key" in err and "does not match" in err, (rc, err)
        mctx = ssl.create_default_context(cafile=wd.file("ca.pem"))
        mctx.load_cert_chain(wd.file("client.pem"), wd.file("client.key"))
        code, body = api(addrs["http"], "AdminService/Status", {}, ctx=mctx)
        assert code == 200 and body["version"], (code, body)
        for cert in (None, "intruder"):
            ctx = ssl.create_default_context(cafile=wd.file("ca.pem"))
            if cert:
                ctx.load_cert_chain(wd.file(cert + ".pem"), wd.file(cert + ".key"))
            try:
                api(addrs["http"], "AdminService/Status", {}, ctx=ctx)
                raise AssertionError(f"HTTPS without a good client certificate ({cert}) was answered")
            except (urllib.error.URLError, ConnectionError, ssl.SSLError, http_client_errors()):
                pass
        H.log("mutual TLS: client certificate required and verified (gRPC, featctl, HTTPS)")
        assert b.stop() == 0, b.tail()
        procs.remove(b)

        # ---------------- start-up refusals ----------------
        line = refused(args, wd, "r-any", config(wd, "r-any", listen="0.0.0.0:0"), ["serve.plaintext", "serve.tls_cert"])
        H.log("refused:", line)
        refused(args, wd, "r-v6", config(wd, "r-v6", listen="[::]:0"), ["serve.plaintext"])
        pt, _, addrs = start(args, wd, "plain", config(wd, "plain", "plaintext = true\n", listen="0.0.0.0:0"))
        procs.append(pt)
        assert "cross the network in clear text" in open(pt.logpath).read()
        c = code_of(admin_pb2_grpc.AdminServiceStub(grpc.insecure_channel(addrs["grpc"].replace("0.0.0.0", "127.0.0.1"))).Status,
                    admin_pb2.StatusRequest())
        assert c == grpc.StatusCode.OK, c
        assert pt.stop() == 0
        procs.remove(pt)
        open(wd.file("garbage.pem"), "w").write("this is not a certificate\n")
        srv = wd.file("server.pem")
        key = wd.file("server.key")
        cases = [
            ("r-nocert", f"tls_cert = {wd.file('missing.pem')}\ntls_key = {key}\n", "", ["serve.tls_cert", "missing.pem"]),
            ("r-badcert", f"tls_cert = {wd.file('garbage.pem')}\ntls_key = {key}\n", "", ["serve.tls_cert"]),
            ("r-keyiscert", f"tls_cert = {srv}\ntls_key = {srv}\n", "", ["serve.tls_key"]),
            ("r-mismatch", f"tls_cert = {srv}\ntls_key = {wd.file('client.key')}\n", "", ["serve.tls_key", "does not match"]),
            ("r-nokey", f"tls_cert = {srv}\n", "", ["serve.tls_key"]),
            ("r-badca", f"tls_cert = {srv}\ntls_key = {key}\ntls_client_ca = {wd.file('garbage.pem')}\n", "",
             ["serve.tls_client_ca"]),
            ("r-caonly", f"tls_client_ca = {wd.file('ca.pem')}\n", "", ["serve.tls_client_ca"]),
            ("r-notokens", "", f"[auth]\nread_tokens_file = {wd.file('missing.tokens')}\n", ["auth.read_tokens_file"]),
        ]
        open(wd.file("short.tokens"), "w").write("# too short\nabc123\n")
        cases.append(("r-short", "", f"[auth]\nadmin_tokens_file = {wd.file('short.tokens')}\n",
                      ["auth.admin_tokens_file", "line 2"]))
        open(wd.file("empty.tokens"), "w").write("# nothing but comments\n\n")
        cases.append(("r-empty", "", f"[auth]\nread_tokens_file = {wd.file('empty.tokens')}\n",
                      ["auth.read_tokens_file", "no token"]))
        open(wd.file("space.tokens"), "w").write(f"{READ_TOKEN} {ADMIN_TOKEN}\n")
        cases.append(("r-space", "", f"[auth]\nread_tokens_file = {wd.file('space.tokens')}\n",
                      ["auth.read_tokens_file", "line 1"]))
        for name, serve, extra, keys in cases:
            line = refused(args, wd, name, config(wd, name, serve, extra), keys)
            assert READ_TOKEN not in line and ADMIN_TOKEN not in line and "abc123" not in line, line
            H.log(f"refused ({name}):", line)
        ok = True
        H.log("PASS")
    finally:
        for p in procs:
            p.kill9()
        wd.cleanup(ok)


if __name__ == "__main__":
    main()
