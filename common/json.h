/*
 * common/json.h — strict, allocation-free JSON (RFC 8259) tokenizer.
 *
 * feat_json_parse() validates the whole text and fills a caller-provided token
 * array in document order.  Nothing is copied or allocated: tokens point into
 * the caller's text, which must stay alive while tokens are used.
 *   object: size = number of members; its members follow as (key, value) pairs
 *   array:  size = number of elements
 *   object, array: [start, end) spans the brackets (the value's whole text)
 *   string: [start, end) excludes the quotes; escaped = 1 when it holds '\'
 *   number: [start, end) is the literal; integral = 1 when it has no '.'/'e'
 * Every token's `next` is the index just past its subtree, so siblings are
 * reached without walking children.
 */
#ifndef FEAT_COMMON_JSON_H
#define FEAT_COMMON_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef enum feat_json_type {
    FEAT_JSON_OBJECT = 1,
    FEAT_JSON_ARRAY,
    FEAT_JSON_STRING,
    FEAT_JSON_NUMBER,
    FEAT_JSON_TRUE,
    FEAT_JSON_FALSE,
    FEAT_JSON_NULL
} feat_json_type_t;

typedef struct feat_json_tok {
    uint8_t type;      /* feat_json_type_t */
    uint8_t escaped;   /* string holds escapes: use feat_json_unescape */
    uint8_t integral;  /* number without fraction or exponent */
    uint32_t start;    /* byte offset of first content byte */
    uint32_t end;      /* byte offset one past the last content byte */
    uint32_t size;     /* members (object) or elements (array) */
    uint32_t next;     /* index of the token after this one's subtree */
} feat_json_tok_t;

/* Parses text[0..len) into toks.  FEAT_OK with *ntok (if not NULL) set to
 * the number of tokens used (>= 1), FEAT_ERR_INVALID for malformed text, or
 * FEAT_ERR_TOO_LARGE when it needs more than ntoks tokens, nests deeper than
 * max_depth, or len >= 2^32.  On error, *err_off (if not NULL) receives the
 * byte offset where parsing stopped: for a string that is not valid UTF-8
 * (common/utf8.h), the first byte of the bad sequence; for a \u escape of a
 * lone surrogate (RFC 8259 allows it, but no UTF-8 text can hold it, so it is
 * refused), its backslash. */
feat_err_t feat_json_parse(const char *text, size_t len, feat_json_tok_t *toks, size_t ntoks,
                           unsigned max_depth, size_t *ntok, size_t *err_off);

/* Index of the value of member `key` in object token obj, or -1 when obj is
 * not an object or has no such member.  Keys with escapes are compared after
 * unescaping. */
int feat_json_obj_get(const char *text, const feat_json_tok_t *toks, int obj, const char *key);

/* 1 if string token t equals s (length n) after unescaping, else 0. */
int feat_json_str_eq(const char *text, const feat_json_tok_t *t, const char *s, size_t n);

/* Unescapes string token t into out (cap bytes).  FEAT_OK with *len set to
 * the bytes written, or FEAT_ERR_TOO_LARGE when they do not fit.  Output is
 * UTF-8, not terminated. */
feat_err_t feat_json_unescape(const char *text, const feat_json_tok_t *t, char *out, size_t cap, size_t *len);

/* Number token → double (FEAT_ERR_INVALID if out of range / not finite;
 * FEAT_ERR_NOMEM when a literal of 64 bytes or more cannot be copied). */
feat_err_t feat_json_double(const char *text, const feat_json_tok_t *t, double *out);
/* Integral number token → int64 (FEAT_ERR_INVALID if not integral or overflows). */
feat_err_t feat_json_int64(const char *text, const feat_json_tok_t *t, int64_t *out);

#endif
