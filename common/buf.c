/* common/buf.c — see buf.h. */
#include "common/buf.h"
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>

feat_err_t feat_buf_grow(feat_buf_t *b, size_t extra) {
    if (b->oom) return FEAT_ERR_NOMEM;
    if (b->cap - b->len >= extra) return FEAT_OK;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want) {
        if (cap > SIZE_MAX / 2) { b->oom = 1; return FEAT_ERR_NOMEM; }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return FEAT_ERR_NOMEM;
    }
    b->data = p;
    b->cap = cap;
    return FEAT_OK;
}

void feat_buf_free(feat_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void feat_buf_vprintf(feat_buf_t *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        feat_buf_append(b, tmp, (size_t)n);
    } else if (feat_buf_grow(b, (size_t)n + 1) == FEAT_OK) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void feat_buf_printf(feat_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    feat_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void feat_buf_json_str(feat_buf_t *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    feat_buf_putc(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': feat_buf_append(b, "\\\"", 2); break;
        case '\\': feat_buf_append(b, "\\\\", 2); break;
        case '\n': feat_buf_append(b, "\\n", 2); break;
        case '\r': feat_buf_append(b, "\\r", 2); break;
        case '\t': feat_buf_append(b, "\\t", 2); break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                feat_buf_append(b, e, 6);
            } else {
                feat_buf_putc(b, (char)c);
            }
        }
    }
    feat_buf_putc(b, '"');
}
