/*
 * common/buf.h — a growable byte buffer and fixed-width encoders.
 *
 * feat_buf_t owns its bytes (free with feat_buf_free).  Appends grow the
 * buffer geometrically; on allocation failure the buffer is marked failed
 * (b->oom = 1), further appends are ignored, and the owner checks b->oom once
 * at the end instead of after every append.  feat_buf_reset keeps capacity,
 * so a buffer reused per batch stops allocating once warm.
 */
#ifndef FEAT_COMMON_BUF_H
#define FEAT_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"

typedef struct feat_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* 1 after a failed allocation; contents then incomplete */
} feat_buf_t;

#define FEAT_BUF_INIT {NULL, 0, 0, 0}

feat_err_t feat_buf_grow(feat_buf_t *b, size_t extra); /* FEAT_OK or FEAT_ERR_NOMEM (sets oom) */
void feat_buf_free(feat_buf_t *b);
void feat_buf_printf(feat_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void feat_buf_vprintf(feat_buf_t *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal (quotes and escapes included). */
void feat_buf_json_str(feat_buf_t *b, const char *s, size_t len);

static inline void feat_buf_reset(feat_buf_t *b) {
    b->len = 0;
    b->oom = 0;
}

static inline void feat_buf_append(feat_buf_t *b, const void *p, size_t n) {
    if (b->cap - b->len < n && feat_buf_grow(b, n) != 0) return;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

static inline void feat_buf_putc(feat_buf_t *b, char c) {
    if (b->cap == b->len && feat_buf_grow(b, 1) != 0) return;
    b->data[b->len++] = c;
}

static inline void feat_buf_puts(feat_buf_t *b, const char *s) { feat_buf_append(b, s, strlen(s)); }

/* Big-endian encoders: keys sort bytewise in numeric order. */
static inline void feat_put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);  p[3] = (unsigned char)v;
}
static inline void feat_put_be64(unsigned char *p, uint64_t v) {
    feat_put_be32(p, (uint32_t)(v >> 32));
    feat_put_be32(p + 4, (uint32_t)v);
}
static inline uint32_t feat_get_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t feat_get_be64(const unsigned char *p) {
    return ((uint64_t)feat_get_be32(p) << 32) | feat_get_be32(p + 4);
}
/* Signed 64-bit as order-preserving big-endian (sign bit flipped). */
static inline void feat_put_ts(unsigned char *p, int64_t ts) {
    feat_put_be64(p, (uint64_t)ts ^ 0x8000000000000000ull);
}
static inline int64_t feat_get_ts(const unsigned char *p) {
    return (int64_t)(feat_get_be64(p) ^ 0x8000000000000000ull);
}

/* Little-endian encoders for values (host is little-endian on every target,
 * but stored bytes must not depend on that). */
static inline void feat_put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint64_t feat_get_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline void feat_put_le32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t feat_get_le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#endif
