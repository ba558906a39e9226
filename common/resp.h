/*
 * common/resp.h — the Redis serialization protocol (RESP2 and RESP3): a
 * request parsed in place, replies appended to a buffer.  Pure code, no I/O
 * (admin/redis.c owns the sockets; tests/fuzz/fuzz_resp.c drives the parser).
 *
 * A request is what redis-cli and every client library send, an array of
 * bulk strings ("*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n"), or an inline command, one
 * line of words separated by spaces ("PING hi\r\n", what telnet sends; quotes
 * as in redis-cli: "a b" and 'a b' are one word, \n \xHH escapes in double
 * quotes).  The parser never copies a bulk argument: argv points into the
 * input (an inline command's words are unescaped in place, so the input must
 * be writable).  Arguments are not NUL-terminated; use argl.
 */
#ifndef FEAT_COMMON_RESP_H
#define FEAT_COMMON_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define FEAT_RESP_INLINE_MAX (64u << 10) /* bytes of an inline command line, as Redis (or max_bytes, if less) */

typedef struct feat_resp_limits {
    size_t max_args;     /* arguments of one command */
    size_t max_bytes;    /* bytes of one whole command (headers and arguments) */
} feat_resp_limits_t;

typedef enum feat_resp_rc {
    FEAT_RESP_MORE = 0,   /* incomplete: read more and call again with the same start */
    FEAT_RESP_CMD = 1,    /* a command: argc/argv/argl set, *used bytes consumed */
    FEAT_RESP_EMPTY = 2,  /* an empty line or array ("*0", "\r\n"): skip *used bytes */
    FEAT_RESP_ERROR = -1  /* a protocol error: err holds Redis's text; answer it and close */
} feat_resp_rc_t;

/* Parses one request at buf[0..len).  argv/argl have room for lim->max_args.
 * A request over a limit, a malformed length or a bulk string without its
 * CRLF is FEAT_RESP_ERROR ("Protocol error: invalid bulk length"); a request
 * still incomplete but already over lim->max_bytes too. */
feat_resp_rc_t feat_resp_parse(char *buf, size_t len, const feat_resp_limits_t *lim, size_t *argc, char **argv,
                               size_t *argl, size_t *used, char *err, size_t errlen);

/* Replies.  proto is 2 or 3: where RESP3 has a type of its own (null, map,
 * double) RESP2 gets its usual stand-in (null bulk, flat array, bulk). */
void feat_resp_simple(feat_buf_t *b, const char *s);             /* +s */
void feat_resp_error(feat_buf_t *b, const char *fmt, ...)        /* -fmt (CR and LF become spaces) */
    __attribute__((format(printf, 2, 3)));
void feat_resp_int(feat_buf_t *b, int64_t v);                    /* :v */
void feat_resp_bulk(feat_buf_t *b, const char *s, size_t n);     /* $n s */
void feat_resp_null(feat_buf_t *b, int proto);                   /* $-1 or _ */
void feat_resp_array(feat_buf_t *b, size_t n);                   /* *n, then n replies */
void feat_resp_map(feat_buf_t *b, size_t n, int proto);          /* %n or *2n, then n key-value pairs */
void feat_resp_set(feat_buf_t *b, size_t n, int proto);          /* ~n or *n */
/* d as common/dtoa.h writes it (the shortest decimal that reads back as d:
 * "0.1", "12.5", "5", "1e+300", "inf", "nan"), as a bulk string. */
void feat_resp_bulk_double(feat_buf_t *b, double d);

#endif
