/*
 * common/utf8.h — featd's one UTF-8 validator.
 *
 * Strict UTF-8 (RFC 3629, Unicode table 3-7): no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated
 * sequence.  The verdict, and the offset of the first bad sequence, are
 * Python's bytes.decode('utf-8') (tests/unit/test_utf8.c checks a table made
 * with it; tests/fuzz/fuzz_utf8.c compares with a slow reference decoder).
 *
 * Every string featd stores or echoes passes here first: ingest's keys,
 * table, model and feature names and string values (ingest/decode.c), every
 * string field of a gRPC request (serve/service.c) and the admin HTTP
 * API's query parameters (serve/http.c), and JSON text (common/json.c).
 * Pure: no allocation, no state, any thread.  ASCII runs are checked eight
 * bytes at a time, so the common case costs about a memchr.
 */
#ifndef FEAT_COMMON_UTF8_H
#define FEAT_COMMON_UTF8_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Length of the valid UTF-8 sequence that starts at s[0], or 0 when none
 * does (n == 0, a bad lead byte, a bad or missing continuation byte). */
size_t feat_utf8_seq(const unsigned char *s, size_t n);

/* Offset of the first byte of s[0..n) that does not start a valid
 * sequence: n when all of it is valid UTF-8.  s may be NULL when n is 0. */
size_t feat_utf8_valid_prefix(const char *s, size_t n);

/* 1 if s[0..n) is valid UTF-8, else 0.  The empty string is valid. */
static inline int feat_utf8_valid(const char *s, size_t n) { return feat_utf8_valid_prefix(s, n) == n; }

#ifdef __cplusplus
}
#endif

#endif
