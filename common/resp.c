/* common/resp.c — see resp.h. */
#include "common/resp.h"

#include "common/dtoa.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_MAX 32 /* bytes of a "*N" or "$N" line before its CRLF */

static feat_resp_rc_t fail(char *err, size_t errlen, const char *msg) {
    snprintf(err, errlen, "Protocol error: %s", msg);
    return FEAT_RESP_ERROR;
}

/* The integer of the line at p (up to CR), or -2 when it is not one; *eol the CR. */
static long long line_int(const char *p, const char *end, const char **eol) {
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    *eol = cr;
    if (!cr) return -3; /* incomplete */
    if (cr == p || cr - p > 18) return -2; /* no overflow; Redis's limits are far below */
    int neg = *p == '-';
    long long v = 0;
    for (const char *q = p + neg; q < cr; q++) {
        if (*q < '0' || *q > '9') return -2;
        v = v * 10 + (*q - '0');
    }
    if (neg && cr == p + 1) return -2;
    return neg ? -v : v;
}

static feat_resp_rc_t parse_multibulk(char *buf, size_t len, const feat_resp_limits_t *lim, size_t *argc,
                                      char **argv, size_t *argl, size_t *used, char *err, size_t errlen) {
    const char *end = buf + len, *eol;
    long long n = line_int(buf + 1, end, &eol);
    if (n == -3) return len > HEADER_MAX ? fail(err, errlen, "too big mbulk count string") : FEAT_RESP_MORE;
    if (n == -2 || n > 1024 * 1024) return fail(err, errlen, "invalid multibulk length");
    if (eol + 1 >= end) return FEAT_RESP_MORE;
    if (eol[1] != '\n') return fail(err, errlen, "invalid multibulk length");
    char *p = (char *)eol + 2;
    if (n <= 0) {
        *used = (size_t)(p - buf);
        return FEAT_RESP_EMPTY;
    }
    if ((size_t)n > lim->max_args) {
        snprintf(err, errlen, "Protocol error: %lld arguments, at most %zu", n, lim->max_args);
        return FEAT_RESP_ERROR;
    }
    for (long long i = 0; i < n; i++) {
        if (p >= end) goto more;
        if (*p != '$') {
            char msg[64];
            snprintf(msg, sizeof(msg), "expected '$', got '%c'", *p >= 32 && *p < 127 ? *p : '?');
            return fail(err, errlen, msg);
        }
        long long bl = line_int(p + 1, end, &eol);
        if (bl == -3) {
            if (end - p > HEADER_MAX) return fail(err, errlen, "too big bulk count string");
            goto more;
        }
        if (bl < 0 || (size_t)bl > lim->max_bytes) return fail(err, errlen, "invalid bulk length");
        if (eol + 1 >= end) goto more;
        if (eol[1] != '\n') return fail(err, errlen, "invalid bulk length");
        char *data = (char *)eol + 2;
        if ((size_t)(data - buf) + (size_t)bl + 2 > lim->max_bytes) goto too_big; /* whole or not yet */
        if ((size_t)(end - data) < (size_t)bl + 2) goto more;
        if (data[bl] != '\r' || data[bl + 1] != '\n') return fail(err, errlen, "bulk string not followed by CRLF");
        argv[i] = data;
        argl[i] = (size_t)bl;
        p = data + bl + 2;
    }
    *argc = (size_t)n;
    *used = (size_t)(p - buf);
    return FEAT_RESP_CMD;
more:
    if (len > lim->max_bytes) goto too_big;
    return FEAT_RESP_MORE;
too_big:
    snprintf(err, errlen, "Protocol error: request over %zu bytes", lim->max_bytes);
    return FEAT_RESP_ERROR;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One line's words, unescaped in place (redis-cli's quoting). */
static feat_resp_rc_t parse_inline(char *buf, size_t len, const feat_resp_limits_t *lim, size_t *argc, char **argv,
                                   size_t *argl, size_t *used, char *err, size_t errlen) {
    size_t cap = lim->max_bytes < FEAT_RESP_INLINE_MAX ? lim->max_bytes : FEAT_RESP_INLINE_MAX;
    char *nl = memchr(buf, '\n', len);
    if (!nl) return len > cap ? fail(err, errlen, "too big inline request") : FEAT_RESP_MORE;
    if ((size_t)(nl - buf) > cap) return fail(err, errlen, "too big inline request");
    char *end = nl > buf && nl[-1] == '\r' ? nl - 1 : nl, *p = buf;
    size_t n = 0;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p >= end) break;
        if (n == lim->max_args) {
            snprintf(err, errlen, "Protocol error: more than %zu arguments", lim->max_args);
            return FEAT_RESP_ERROR;
        }
        char *w = p, *o = p;
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            for (;;) {
                if (p >= end) return fail(err, errlen, "unbalanced quotes in request");
                if (*p == q) {
                    p++;
                    break;
                }
                if (*p == '\\' && p + 1 < end) {
                    char c = p[1];
                    if (q == '\'') {
                        *o++ = c == '\'' ? '\'' : '\\';
                        p += c == '\'' ? 2 : 1;
                        continue;
                    }
                    if (c == 'x' && p + 3 < end && hexval(p[2]) >= 0 && hexval(p[3]) >= 0) {
                        *o++ = (char)(hexval(p[2]) * 16 + hexval(p[3]));
                        p += 4;
                        continue;
                    }
                    *o++ = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c == 'b' ? '\b' : c == 'a' ? '\a' : c;
                    p += 2;
                    continue;
                }
                *o++ = *p++;
            }
            if (p < end && *p != ' ' && *p != '\t') return fail(err, errlen, "unbalanced quotes in request");
        } else {
            while (p < end && *p != ' ' && *p != '\t') p++;
            o = p;
        }
        argv[n] = w;
        argl[n++] = (size_t)(o - w);
    }
    *used = (size_t)(nl + 1 - buf);
    *argc = n;
    return n ? FEAT_RESP_CMD : FEAT_RESP_EMPTY;
}

feat_resp_rc_t feat_resp_parse(char *buf, size_t len, const feat_resp_limits_t *lim, size_t *argc, char **argv,
                               size_t *argl, size_t *used, char *err, size_t errlen) {
    if (!len) return FEAT_RESP_MORE;
    if (buf[0] == '*') return parse_multibulk(buf, len, lim, argc, argv, argl, used, err, errlen);
    return parse_inline(buf, len, lim, argc, argv, argl, used, err, errlen);
}

/* ---- replies ------------------------------------------------------------------------------ */

static void header(feat_buf_t *b, char type, long long n) {
    char h[32], *p = h + sizeof(h);
    unsigned long long u = n < 0 ? 0ull - (unsigned long long)n : (unsigned long long)n;
    *--p = '\n';
    *--p = '\r';
    do *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (n < 0) *--p = '-';
    *--p = type;
    feat_buf_append(b, p, (size_t)(h + sizeof(h) - p));
}

void feat_resp_simple(feat_buf_t *b, const char *s) {
    feat_buf_putc(b, '+');
    feat_buf_puts(b, s);
    feat_buf_append(b, "\r\n", 2);
}

void feat_resp_error(feat_buf_t *b, const char *fmt, ...) {
    size_t at = b->len;
    feat_buf_putc(b, '-');
    va_list ap;
    va_start(ap, fmt);
    feat_buf_vprintf(b, fmt, ap);
    va_end(ap);
    if (b->oom) return;
    for (size_t i = at; i < b->len; i++)
        if (b->data[i] == '\r' || b->data[i] == '\n') b->data[i] = ' ';
    feat_buf_append(b, "\r\n", 2);
}

void feat_resp_int(feat_buf_t *b, int64_t v) { header(b, ':', (long long)v); }

void feat_resp_bulk(feat_buf_t *b, const char *s, size_t n) {
    header(b, '$', (long long)n);
    feat_buf_append(b, s, n);
    feat_buf_append(b, "\r\n", 2);
}

void feat_resp_null(feat_buf_t *b, int proto) {
    if (proto >= 3) feat_buf_append(b, "_\r\n", 3);
    else feat_buf_append(b, "$-1\r\n", 5);
}

void feat_resp_array(feat_buf_t *b, size_t n) { header(b, '*', (long long)n); }

void feat_resp_map(feat_buf_t *b, size_t n, int proto) {
    if (proto >= 3) header(b, '%', (long long)n);
    else header(b, '*', 2 * (long long)n);
}

void feat_resp_set(feat_buf_t *b, size_t n, int proto) { header(b, proto >= 3 ? '~' : '*', (long long)n); }

void feat_resp_bulk_double(feat_buf_t *b, double d) {
    char s[FEAT_DTOA_MAX];
    int k = feat_dtoa(d, s);
    feat_resp_bulk(b, s, (size_t)k);
}
