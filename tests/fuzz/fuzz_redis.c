/*
 * tests/fuzz/fuzz_redis.c — libFuzzer target: the Redis protocol's commands
 * (admin/redis.c through feat_redis_feed, no socket) on a small daemon
 * (fuzz_daemon.h: table t with entities k0..k199, serve.max_keys 64).
 *
 * Input: a client's bytes.  Checks: no crash or sanitizer finding; the
 * replies are well-formed RESP2/RESP3 (every reply complete, lengths
 * right, errors and simple strings without CR or LF), and there is at most
 * one reply per command the input could hold.
 */
#include "fuzz_daemon.h"

#include "admin/redis.h"

static featd_t *d;
static feat_redis_t *r;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    d = fuzz_daemon();
    feat_redis_conf_t rc = {.listen = NULL, .threads = 0, .max_clients = 1, .max_request = 4096, .timeout_s = 0};
    char err[256];
    r = feat_redis_new(&rc, &d->serve, err, sizeof(err));
    FUZZ_CHECK(r != NULL, "%s", err);
    return 0;
}

/* The end of the reply at b[i], or 0 when it is not one well-formed reply. */
static size_t reply_end(const char *b, size_t n, size_t i, int depth) {
    if (i >= n || depth > 8) return 0;
    const char *nl = memchr(b + i, '\n', n - i);
    if (!nl || nl == b + i || nl[-1] != '\r') return 0;
    size_t line = (size_t)(nl - b) + 1, hl = (size_t)(nl - 1 - (b + i + 1));
    const char *v = b + i + 1;
    for (size_t k = 0; k < hl; k++) FUZZ_CHECK(v[k] != '\r', "CR inside a reply line");
    char t = b[i];
    if (t == '+' || t == '-') return line;
    if (t == '_') return hl == 0 ? line : 0;
    long long x = 0;
    int neg = hl && v[0] == '-';
    if (hl == (size_t)neg || hl > 20) return 0;
    for (size_t k = (size_t)neg; k < hl; k++) {
        if (v[k] < '0' || v[k] > '9') return 0;
        x = x * 10 + (v[k] - '0');
    }
    if (neg) x = -x;
    if (t == ':') return line;
    if (t == '$') {
        if (x == -1) return line;
        if (x < 0 || line + (size_t)x + 2 > n || b[line + x] != '\r' || b[line + x + 1] != '\n') return 0;
        return line + (size_t)x + 2;
    }
    if (t == '*' || t == '%' || t == '~') {
        if (x < 0) return 0;
        size_t j = line;
        for (long long k = 0; k < x * (t == '%' ? 2 : 1); k++)
            if (!(j = reply_end(b, n, j, depth + 1))) return 0;
        return j;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    feat_buf_t out = FEAT_BUF_INIT;
    int rc = feat_redis_feed(r, (const char *)data, size, &out);
    FUZZ_CHECK(rc >= 0, "out of memory");
    size_t replies = 0, lines = 1;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    for (size_t i = 0; i < out.len; replies++) {
        size_t e = reply_end(out.data, out.len, i, 0);
        FUZZ_CHECK(e > i, "malformed reply at %zu: %.*s", i, (int)(out.len - i > 80 ? 80 : out.len - i), out.data + i);
        i = e;
    }
    FUZZ_CHECK(replies <= lines, "%zu replies to %zu lines", replies, lines);
    feat_buf_free(&out);
    return 0;
}
