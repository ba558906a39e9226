/*
 * tests/fuzz/fuzz_resp.c — libFuzzer target: common/resp.c's request parser
 * (what a Redis client sends redis.listen).
 *
 * Input: byte 0 sets the limits (max_args 1..16, max_bytes 64..4096); the
 * rest is a client's bytes, parsed command after command as admin/redis.c
 * does.  Checks: no crash or sanitizer finding; a command consumes at least
 * one byte and no more than it was given, its arguments lie inside it and
 * are at most max_args; the command re-encoded as a multibulk request parses
 * back to the same arguments; feeding the same bytes one byte at a time
 * reaches the same first answer (the parser is incremental).
 */
#include "fuzz_util.h"

#include "common/resp.h"

#define MAXA 16

typedef struct parsed {
    feat_resp_rc_t rc;
    size_t argc, used;
    char *argv[MAXA];
    size_t argl[MAXA];
} parsed_t;

static void parse(char *buf, size_t len, const feat_resp_limits_t *lim, parsed_t *p) {
    char err[160];
    p->argc = p->used = 0;
    p->rc = feat_resp_parse(buf, len, lim, &p->argc, p->argv, p->argl, &p->used, err, sizeof(err));
    if (p->rc == FEAT_RESP_ERROR) FUZZ_CHECK(!strncmp(err, "Protocol error: ", 16), "%s", err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    feat_resp_limits_t lim = {1 + data[0] % MAXA, 64 + (size_t)(data[0] >> 4) * 256};
    size_t n = size - 1;
    char *buf = malloc(n + 1), *copy = malloc(n + 1);
    FUZZ_CHECK(buf && copy, "malloc");
    memcpy(buf, data + 1, n);
    memcpy(copy, data + 1, n);
    /* byte by byte: the first answer other than "more" must be the whole-input one */
    parsed_t first, step;
    parse(buf, n, &lim, &first);
    for (size_t k = 0; k <= n; k++) {
        memcpy(copy, data + 1, n);
        parse(copy, k, &lim, &step);
        if (step.rc == FEAT_RESP_MORE) continue;
        FUZZ_CHECK(step.rc == first.rc, "at %zu bytes: %d, whole: %d", k, step.rc, first.rc);
        if (step.rc != FEAT_RESP_ERROR) FUZZ_CHECK(step.used == first.used, "used %zu vs %zu", step.used, first.used);
        break;
    }
    memcpy(buf, data + 1, n);
    size_t pos = 0;
    feat_buf_t enc = FEAT_BUF_INIT;
    while (pos < n) {
        parsed_t p, q;
        parse(buf + pos, n - pos, &lim, &p);
        if (p.rc == FEAT_RESP_MORE || p.rc == FEAT_RESP_ERROR) break;
        FUZZ_CHECK(p.used >= 1 && p.used <= n - pos, "used %zu of %zu", p.used, n - pos);
        if (p.rc == FEAT_RESP_CMD) {
            FUZZ_CHECK(p.argc >= 1 && p.argc <= lim.max_args, "argc %zu", p.argc);
            feat_buf_reset(&enc);
            feat_resp_array(&enc, p.argc);
            for (size_t i = 0; i < p.argc; i++) {
                FUZZ_CHECK(p.argv[i] >= buf + pos && p.argv[i] + p.argl[i] <= buf + pos + p.used, "arg %zu outside", i);
                feat_resp_bulk(&enc, p.argv[i], p.argl[i]);
            }
            FUZZ_CHECK(!enc.oom, "oom");
            feat_resp_limits_t big = {MAXA, enc.len + 1};
            parse(enc.data, enc.len, &big, &q);
            FUZZ_CHECK(q.rc == FEAT_RESP_CMD && q.used == enc.len && q.argc == p.argc, "re-encoded: rc %d", q.rc);
            for (size_t i = 0; i < p.argc; i++)
                FUZZ_CHECK(q.argl[i] == p.argl[i] && !memcmp(q.argv[i], p.argv[i], p.argl[i]), "arg %zu differs", i);
        }
        pos += p.used;
    }
    feat_buf_free(&enc);
    free(buf);
    free(copy);
    return 0;
}
