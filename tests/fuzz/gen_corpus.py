#!/usr/bin/python3
"""tests/fuzz/gen_corpus.py — writes the seed corpora of featd's fuzzers into
tests/fuzz/corpus/<target>/ (small valid and near-valid inputs; protobuf is
hand-encoded here, independently of protoc-c).  Run it from anywhere after
changing it; files named regress-* are crash reproducers kept by hand and are
left alone.  Input layouts are described at the top of each fuzz_*.c."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1732406400000


def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(num, wt):
    return varint(num << 3 | wt)


def s(num, text):
    data = text.encode() if isinstance(text, str) else text
    return key(num, 2) + varint(len(data)) + data


def u(num, v):
    return key(num, 0) + varint(v)


def d(num, v):
    return key(num, 1) + struct.pack('<d', v)


def msg(num, body):
    return key(num, 2) + varint(len(body)) + body


def value(kind, v):
    if kind == 'd':
        return d(1, v)
    if kind == 'i':
        return u(2, v)
    if kind == 'b':
        return u(3, 1 if v else 0)
    return s(4, v)


def entry(name, kind, v, num=4):
    """A map<string, Value> entry as field num."""
    return msg(num, s(1, name) + msg(2, value(kind, v)))


def write(target, name, data):
    d_ = os.path.join(HERE, 'corpus', target)
    os.makedirs(d_, exist_ok=True)
    with open(os.path.join(d_, name), 'wb') as f:
        f.write(data.encode() if isinstance(data, str) else data)


def proto_seeds():
    t = 'fuzz_event_proto'
    full = s(1, 'user') + s(2, 'u1') + u(3, NOW) + entry('clicks', 'i', 3) + entry('ctr', 'd', 0.25) + \
        entry('country', 's', 'DE') + entry('premium', 'b', True)
    write(t, 'event-full', b'0' + full)
    write(t, 'event-kafka-key', b'4' + u(3, NOW) + entry('ctr', 'i', 7))  # int widened to double
    write(t, 'event-shared', b'1' + s(1, 'a') + s(2, 'k') + u(3, NOW) + entry('x', 'd', 1.5) + entry('s', 's', 'hi'))
    write(t, 'event-unknown-field', b'0' + s(2, 'u1') + u(3, NOW) + entry('clicks', 'i', 1) + u(9, 5))
    write(t, 'label-churn', b'2' + s(1, 'churn') + s(2, 'u1') + u(3, NOW) + d(4, 1.0))
    write(t, 'label-multi', b'3' + s(1, 'm2') + s(2, 'u2') + u(3, NOW) + d(4, 0.0))
    write(t, 'near-duplicate', b'0' + s(2, 'u1') + u(3, NOW) + entry('clicks', 'i', 1) + entry('clicks', 'i', 2))
    write(t, 'near-wrong-wiretype', b'0' + s(2, 'u1') + u(3, NOW) + msg(4, s(1, 'ctr') + msg(2, u(1, 5))))
    write(t, 'near-truncated', b'0' + full[:-3])
    write(t, 'near-nul-key', b'0' + s(2, b'u\x001') + u(3, NOW) + entry('clicks', 'i', 1))
    write(t, 'near-long-string', b'0' + s(2, 'u1') + u(3, NOW) + entry('country', 's', 'x' * 17))
    write(t, 'near-label-nan', b'2' + s(2, 'u1') + u(3, NOW) + d(4, float('nan')))
    write(t, 'near-bad-utf8-key', b'0' + s(2, b'u\xed\xa0\x80') + u(3, NOW) + entry('clicks', 'i', 1))
    write(t, 'near-bad-utf8-value', b'0' + s(2, 'u1') + u(3, NOW) + entry('country', 's', b'F\xc3'))
    write(t, 'near-empty-key-kafka', b'4' + s(1, '') + s(2, '') + u(3, NOW) + entry('clicks', 'i', 1))


def json_seeds():
    t = 'fuzz_event_json'
    ts = str(NOW)
    write(t, 'event-full', '0{"table":"user","key":"u42","ts":' + ts +
          ',"features":{"clicks":3,"ctr":0.25,"country":"D\\u00c9","premium":true}}')
    write(t, 'event-rfc3339', '4{"ts":"2024-11-24T00:00:00Z","features":{"clicks":1}}')
    write(t, 'event-entity-alias', '8{"user_id":"u7","ts":' + ts + ',"features":{"ctr":1e-3}}')
    write(t, 'event-shared', '1{"table":"a","key":"k","ts":' + ts + ',"features":{"x":-1.5E2,"s":"\\ud83d\\ude00"}}')
    write(t, 'event-numeric-key', '0{"key":12345,"ts":' + ts + ',"features":{"premium":false}}')
    write(t, 'label-churn', '2{"model":"churn","key":"u1","ts":' + ts + ',"label":true}')
    write(t, 'label-multi', '3 {"model":"m1","key":"u1","ts":' + ts + ',"label":0.5}\n')
    write(t, 'near-wrong-type', '0{"key":"u1","ts":' + ts + ',"features":{"clicks":1.5}}')
    write(t, 'near-unterminated', '0{"key":"u1","ts":' + ts + ',"features":{"clicks":1')
    write(t, 'near-not-object', '8[1,2,{"a":null}]')
    write(t, 'near-deep', '0{"features":' + '[' * 20 + ']' * 20 + '}')
    write(t, 'near-bad-escape', '0{"key":"\\ud800","ts":' + ts + ',"features":{"country":"a\\u0000b"}}')
    write(t, 'near-empty-key', '4{"key":"","table":"","ts":' + ts + ',"features":{"clicks":1}}')
    write(t, 'near-bad-utf8', b'4{"ts":' + ts.encode() + b',"features":{"country":"\xc0\xaf"}}')


CONFIG_MIN = """[table user]
topic = user_features
feature.clicks = int64
"""

CONFIG_FULL = """[featd]
data_dir = ./data
log_level = warn
[kafka]
embedded = false
bootstrap.servers = 127.0.0.1:9092
session.timeout.ms = 6000
[serve]
listen = 127.0.0.1:7070
max_keys = 100
cache = 16MiB
[ingest]
max_value_bytes = 64KiB
max_future = 5m
[drift]
window_events = 500
ks = 0.2
alert_topic = featd.alerts
[table user]
entity = user_id
topic = user_features
ttl = 7d
feature.clicks = int64
feature.ctr = double
feature.country = string
feature.premium = bool
drift.ctr.ks = 0.3
drift.country.enabled = false
[model churn]
table = user
label_topic = churn_labels
task = mlp
features = clicks, ctr,country
learning_rate = 0.1,0.01
hidden = 8,16
epochs = 5
policy = auto
promote_margin = 0.002
retrain_every = 10m
quality_floor = 0.6
"""


def config_seeds():
    t = 'fuzz_config'
    write(t, 'minimal.ini', CONFIG_MIN)
    write(t, 'full.ini', CONFIG_FULL)
    write(t, 'override.ini', CONFIG_MIN + "table.user.ttl=1h\n")
    write(t, 'near-dup-key.ini', "[serve]\nmax_keys = 1\nmax_keys = 2\n" + CONFIG_MIN)
    write(t, 'near-unknown-table.ini', CONFIG_MIN + "[model m]\ntable = nope\nlabel_topic = l\n")
    write(t, 'near-bad-values.ini', CONFIG_MIN + "[ingest]\nmax_value_bytes = 1.5QiB\nmax_age = -3d\n")
    write(t, 'near-bad-names.ini', "[table 9x]\ntopic = a b\nfeature.x-y = float\n")
    write(t, 'near-dup-feature.ini', CONFIG_MIN + "feature.ctr = double\nfeature.clicks = double\n")
    write(t, 'near-dup-section.ini', "[store]\nsync = true\n" + CONFIG_MIN + "[store]\nblock_cache = 64MiB\n")
    write(t, 'near-continued.ini', "[kafka]\nembedded = false\nbootstrap.servers = h:1,\n  h:2\n" + CONFIG_MIN)
    # aggregation declarations: every function, parameters, windows, and near misses
    aggs = ("feature.amount = double\nfeature.shop = string\nagg_tile = 1m\n"
            "agg.s = sum(amount) over 10m, 1h, 7d, lifetime\nagg.q = approx_quantile(amount, 0.9) over 1d\n"
            "agg.r = last_n(shop, 5) over 24h\nagg.d = approx_distinct(shop) over 60m\n"
            "agg.m = stddev(amount) over 2h\nagg.f = first(shop) over lifetime\n")
    write(t, 'aggs.ini', CONFIG_MIN + aggs)
    write(t, 'near-aggs.ini', CONFIG_MIN + "feature.amount = double\nagg_max_tiles = 3\n"
          "agg.s = sum(amount) over 5m\nagg.x = median( amount ,) over 90s,,\nagg.y = last_n(amount, 1e9) over\n")


def grpc_seeds():
    t = 'fuzz_grpc_request'

    def w(name, method, body):
        write(t, name, method.encode() + b'\n' + body)
    w('online', 'GetOnlineFeatures', s(1, 't') + s(2, 'k1') + s(2, 'k2') + s(2, 'nobody') + s(3, 'x') + s(3, 'c'))
    w('online-all', 'GetOnlineFeatures', s(1, 't') + s(2, 'k3'))
    w('online-dup-key', 'GetOnlineFeatures', s(1, 't') + s(2, 'k1') + s(2, 'k1'))
    w('online-bad-feature', 'GetOnlineFeatures', s(1, 't') + s(2, 'k1') + s(3, 'zz'))
    w('online-bad-utf8', 'GetOnlineFeatures', s(1, 't') + s(2, 'k1') + s(2, b'k\xff'))
    w('history', 'GetHistoricalFeatures', s(1, 't') + msg(2, s(1, 'k1') + u(2, 3000)) +
      msg(2, s(1, 'k2') + u(2, 500)) + s(3, 'x') + s(3, 'n'))
    w('predict-keys', 'Predict', s(1, 'm') + s(2, 'k1') + s(2, 'k5') + s(2, 'nobody'))
    w('predict-rows', 'Predict', s(1, 'm') + msg(3, s(1, 'r1') + entry('x', 'd', 1.5, 2) + entry('n', 'i', 3, 2) +
                                                  entry('c', 's', 'c1', 2)) + u(6, 1))
    w('predict-row-wrong-type', 'Predict', s(1, 'm') + msg(3, entry('x', 's', 'one', 2)))
    w('predict-version', 'Predict', s(1, 'm') + s(2, 'k1') + u(5, 1))
    w('predict-challenger', 'Predict', s(1, 'm') + s(2, 'k1') + s(4, 'challenger'))
    w('predict-untrained', 'Predict', s(1, 'r') + s(2, 'k1'))
    w('status', 'Status', b'')
    w('list-tables', 'ListTables', b'')
    w('list-models', 'ListModels', s(1, 'm'))
    w('promote', 'Promote', s(1, 'm') + u(2, 1))
    w('rollback', 'Rollback', s(1, 'm'))
    w('retrain', 'TriggerRetrain', s(1, 'r') + s(2, 'fuzz'))
    w('retrain-status', 'GetRetrainStatus', s(1, 'm') + u(2, 1))
    w('drift', 'GetDriftReport', s(1, 't') + s(2, 'x'))
    w('pin', 'PinDriftReference', s(1, 't') + s(2, 'c'))
    w('backup', 'Backup', s(1, '/nonexistent/featd-fuzz-backup'))


def http_seeds():
    t = 'fuzz_admin_http'
    for name, target in [('metrics', 'G/metrics'), ('healthz', 'H/healthz'), ('readyz', 'G/readyz'),
                         ('status', 'G/v1/status'), ('drift-page', 'G/drift'),
                         ('drift-all', 'G/v1/drift'), ('drift-query', 'G/v1/drift?table=t&feature=x'),
                         ('drift-escaped', 'G/v1/drift?table=%74&feature=%22%5C%00x&table=t'),
                         ('not-found', 'G/nope?x=1#frag'), ('post', 'P/v1/status'),
                         ('absolute', 'Ghttp://127.0.0.1:7071/v1/drift?feature=c'),
                         ('drift-bad-utf8', 'G/v1/drift?table=t&feature=x%ed%a0%80')]:
        write(t, name, target)


def utf8_seeds():
    t = 'fuzz_utf8'
    for name, b in [('ascii', b'hello'), ('valid-mixed', 'caf\u00e9 \u20ac \U0001f600 \U0010ffff'.encode()),
                    ('surrogate', b'abcdefgh\xed\xa0\x80ijklmnop'),
                    ('overlong-and-past-max', b'\xc0\xaf\xe0\x80\xaf\xf0\x80\x80\xaf\xf4\x90\x80\x80'),
                    ('truncated', b'abcdefg\xe2\x82')]:
        write(t, name, b)


def row_src(ts, off, part):
    return struct.pack('<qqi', ts, off, part)


def row_entry(fid, kind, v, src=None):
    """An online row entry: kind d/i/b/s; src: its own source (version 2
    sets the 0x80 type flag; version 1 always has one)."""
    t = {'d': 1, 'i': 2, 'b': 3, 's': 4}[kind]
    body = {'d': lambda: struct.pack('<d', v), 'i': lambda: struct.pack('<q', v),
            'b': lambda: bytes([v]), 's': lambda: struct.pack('<I', len(v)) + v}[kind]()
    return struct.pack('<HB', fid, t | (0x80 if src is not None else 0)) + (src or b'') + body


def row_seeds():
    """Pairs of online rows (fuzz_row.c): byte 0 = length of the first."""
    t = 'fuzz_row'
    s1, s2 = row_src(1000, 5, 0), row_src(1000, 7, 1)
    v2a = b'\x02' + s1 + row_entry(1, 'd', 1.5) + row_entry(3, 'i', -4) + row_entry(7, 's', b'abc')
    v2b = b'\x02' + s2 + row_entry(1, 'd', 2.5) + row_entry(2, 'b', 1) + row_entry(7, 's', b'', row_src(900, 1, 2))
    v1a = b'\x01' + b''.join(struct.pack('<HB', i, k) + s1 + b for i, k, b in
                               ((1, 1, struct.pack('<d', 0.5)), (4, 3, b'\x00')))
    for name, a, b in [('v2-v2', v2a, v2b), ('v1-v2', v1a, v2b), ('v2-v1', v2b, v1a), ('empty-v2', b'', v2a),
                       ('v2empty-v1', b'\x02', v1a), ('v2-truncated', v2a, v2b[:30])]:
        write(t, name, bytes([len(a)]) + a + b)


def tile_seeds():
    """A tile state and an operand (fuzz_tile.c): byte 0 = flags (bit 0: the
    lifetime tile), u16 = the state's length, the state, the operand."""
    t = 'fuzz_tile'
    src = lambda ts, off, part: struct.pack('<qqi', ts, off, part)
    op = b'\x01' + src(5, 42, 1) + row_entry(1, 'd', 2.5) + row_entry(2, 's', b'a"b') + \
        row_entry(3, 'i', -7) + row_entry(4, 'b', 1)

    def acc(sid, fn, body, n=2, max_ts=4):
        pay = struct.pack('<Qq', n, max_ts) + body
        return struct.pack('<IBI', sid, fn, len(pay)) + pay

    def item(ts, off, part, kind, v):
        return src(ts, off, part) + row_entry(0, kind, v)[2:]

    hll = b'\x01' + struct.pack('<H', 2) + struct.pack('<II', (7 << 6) | 3, (900 << 6) | 1)
    accs = [acc(1, 1, b''),
            acc(2, 2, b'\x01' + struct.pack('<d', 3.25)),
            acc(3, 2, b'\x02' + struct.pack('<q', 10)),
            acc(5, 4, b'\x02' + struct.pack('<q', -3)),
            acc(7, 6, struct.pack('<dd', 1.5, 0.5)),
            acc(8, 7, item(4, 9, 0, 's', b'zz')),
            acc(10, 9, struct.pack('<H', 2) + item(4, 9, 0, 's', b'zz') + item(3, 1, 0, 's', b'y')),
            acc(11, 10, hll),
            acc(13, 9, struct.pack('<H', 1) + item(4, 9, 0, 'd', 0.125), n=1),
            acc(17, 7, item(4, 9, 0, 'b', 1), n=1),
            acc(999, 1, b'')]  # an undeclared spec: dropped
    state = b'\x01' + struct.pack('<H', len(accs)) + b''.join(accs)
    for name, flags, st, o in [('empty-full', 0, b'', op), ('empty-full-lifetime', 1, b'', op),
                               ('state-full', 0, state, op), ('state-lifetime', 1, state, op),
                               ('state-no-values', 0, state, op[:21]), ('state-truncated-op', 0, state, op[:30]),
                               ('state-cut', 0, state[:-5], op)]:
        write(t, name, bytes([flags]) + struct.pack('<H', len(st)) + st + o)
    # blocks (flags bit 1): u8 0x02 | tiles (u8 level | i64 k | u32 len | state), coarsest first
    sub = lambda lvl, k, st: struct.pack('<BqI', lvl, k, len(st)) + st
    block = b'\x02' + sub(2, 0, state) + sub(1, 0, state) + sub(0, 0, state) + sub(0, 1, state)
    for name, st in [('block-empty', b''), ('block-full', block), ('block-cut', block[:-9]),
                     ('block-out-of-order', b'\x02' + sub(0, 0, state) + sub(2, 0, state)),
                     ('block-foreign', b'\x02' + sub(2, 5, state))]:
        write(t, name, bytes([2]) + struct.pack('<H', len(st)) + st + op)


def resp(*args):
    bs = [a if isinstance(a, bytes) else a.encode() for a in args]
    return b'*%d\r\n' % len(bs) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in bs)


def redis_seeds():
    """fuzz_resp: byte 0 the limits, then a client's bytes; fuzz_redis: a client's bytes (table t, keys k0..k199)."""
    cmds = {
        'hmget': resp('HMGET', 't:k1', 'x', 'n', 'c', 'b', 'x@ts'),
        'hgetall': resp('HGETALL', 't:k2'),
        'get-mget': resp('GET', 't:k3:c') + resp('MGET', 't:k1:x', 't:k1:x', 't:k9:sx', 't:nobody:n'),
        'aggs': resp('HMGET', 't:k4', 'sx', 'lc', 'qn'),
        'hello3': resp('HELLO', '3', 'SETNAME', 'a') + resp('HGETALL', 't:k5') + resp('COMMAND'),
        'conn': resp('PING') + resp('ECHO', 'hi') + resp('CLIENT', 'ID') + resp('SELECT', '0') + resp('QUIT'),
        'errors': resp('SET', 'a', 'b') + resp('FOO') + resp('HGET', 't:k1') + resp('HGETALL', 'u:k1') +
                  resp('GET', 't:k1') + resp('AUTH', 'x'),
        'inline': b'HMGET t:k1 "x" \'n\'\r\nPING\n\r\nhget t:k7 c\n',
        'pipeline': b''.join(resp('HGET', 't:k%d' % i, 'x') for i in range(20)),
        'near-bulk-len': b'*2\r\n$4\r\nECHO\r\n$99999\r\nx\r\n',
        'near-no-dollar': b'*1\r\n!4\r\nPING\r\n',
        'near-partial': resp('HMGET', 't:k1', 'x')[:-4],
        'near-quotes': b'ECHO "a\\x41\\n" \'b\\\'c\' "open\r\n',
    }
    for name, data in cmds.items():
        write('fuzz_resp', name, bytes([0x37]) + data)
        write('fuzz_redis', name, data)


if __name__ == '__main__':
    row_seeds()
    tile_seeds()
    proto_seeds()
    json_seeds()
    config_seeds()
    grpc_seeds()
    http_seeds()
    utf8_seeds()
    redis_seeds()
