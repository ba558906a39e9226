/*
 * tests/fuzz/fuzz_utf8.c — libFuzzer target: featd's UTF-8 validator
 * (common/utf8.c) against a slow reference decoder written from the
 * definition (decode each code point, then refuse overlongs, surrogates and
 * anything above U+10FFFF), and the JSON tokenizer's string rule against both.
 *
 * Input: any bytes.  Checks: feat_utf8_valid_prefix() equals the
 * reference's first bad offset (so the ASCII fast path, at every alignment
 * the input gives, hands over correctly); feat_utf8_seq() agrees with the
 * reference at every offset; a valid input re-encoded from its code points is
 * the same bytes; the input in quotes (when it holds no '"', '\\' or control
 * byte) is a JSON string exactly when it is valid, and a refused one stops at
 * the first bad byte.
 */
#include "fuzz_util.h"

#include "common/err.h"

/* Length of the sequence at s[0..n) and its code point, or 0. */
static size_t ref_seq(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) { *cp = c; return 1; }
    if ((c & 0xe0) == 0xc0) { len = 2; v = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { len = 3; v = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (len > n) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return len;
}

static size_t encode(uint32_t cp, unsigned char *o) {
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xc0 | cp >> 6); o[1] = (unsigned char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12); o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18); o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f)); o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a copy of exactly size bytes (ASan sees any over-read) */
    unsigned char *s = malloc(size ? size : 1);
    unsigned char *re = malloc(size + 4);
    FUZZ_CHECK(s != NULL && re != NULL, "malloc");
    memcpy(s, data, size);
    size_t ref = size, o = 0;
    for (size_t i = 0; i < size;) {
        uint32_t cp = 0;
        size_t l = ref_seq(s + i, size - i, &cp);
        if (!l) { ref = i; break; }
        o += encode(cp, re + o);
        i += l;
    }
    size_t got = feat_utf8_valid_prefix((const char *)s, size);
    FUZZ_CHECK(got == ref, "first bad byte %zu, reference says %zu (of %zu)", got, ref, size);
    FUZZ_CHECK(feat_utf8_valid((const char *)s, size) == (ref == size), "verdict");
    if (ref == size) FUZZ_CHECK(o == size && memcmp(re, s, size) == 0, "valid input does not re-encode to itself");
    for (size_t i = 0; i < size; i++) {
        uint32_t cp;
        size_t want = ref_seq(s + i, size - i, &cp);
        FUZZ_CHECK(feat_utf8_seq(s + i, size - i) == want, "sequence at %zu", i);
    }
    int plain = size + 2 <= 4096;
    for (size_t i = 0; plain && i < size; i++)
        if (s[i] < 0x20 || s[i] == '"' || s[i] == '\\') plain = 0;
    if (plain) {
        char *text = malloc(size + 2);
        FUZZ_CHECK(text != NULL, "malloc");
        text[0] = '"';
        memcpy(text + 1, s, size);
        text[size + 1] = '"';
        feat_json_tok_t t[2];
        size_t off = 0;
        size_t nt = 0;
        feat_err_t e = feat_json_parse(text, size + 2, t, 2, 4, &nt, &off);
        if (ref == size)
            FUZZ_CHECK(e == FEAT_OK && nt == 1, "valid UTF-8 refused as a JSON string (%d)", e);
        else
            FUZZ_CHECK(e == FEAT_ERR_INVALID && off == ref + 1, "JSON: %d at %zu, want refusal at %zu", e, off, ref + 1);
        free(text);
    }
    free(re);
    free(s);
    return 0;
}
