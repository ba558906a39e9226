/* common/utf8.c — see utf8.h. */
#include "common/utf8.h"

#include <stdint.h>
#include <string.h>

size_t feat_utf8_seq(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c == 0xe0) { len = 3; lo = 0xa0; }        /* no overlongs below U+0800 */
    else if (c == 0xed) { len = 3; hi = 0x9f; }        /* no surrogates */
    else if (c >= 0xe1 && c <= 0xef) len = 3;
    else if (c == 0xf0) { len = 4; lo = 0x90; }        /* no overlongs below U+10000 */
    else if (c == 0xf4) { len = 4; hi = 0x8f; }        /* nothing above U+10FFFF */
    else if (c >= 0xf1 && c <= 0xf3) len = 4;
    else return 0;                                     /* 0x80..0xc1, 0xf5..0xff */
    if (n < 2 || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if (k >= n || (s[k] & 0xc0) != 0x80) return 0;
    return len;
}

size_t feat_utf8_valid_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path: eight bytes at a time */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        while (i < n && u[i] < 0x80) i++;
        if (i == n) break;
        size_t l = feat_utf8_seq(u + i, n - i);
        if (!l) return i;
        i += l;
    }
    return n;
}
