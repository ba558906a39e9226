/* common/json.c — see json.h.  Recursive descent with an explicit depth cap. */
#include "common/json.h"
#include "common/err.h"
#include "common/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct jp {
    const char *s;
    size_t len, pos;
    feat_json_tok_t *toks;
    size_t ntoks, ntok;
    unsigned max_depth;
    feat_err_t err;       /* set when a step fails */
} jp_t;

/* new_tok and the parse_* steps return the index of the token they made, or
 * -1 with p->err set (FEAT_ERR_TOO_LARGE or FEAT_ERR_INVALID). */

static void skip_ws(jp_t *p) {
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int new_tok(jp_t *p, int type) {
    if (p->ntok >= p->ntoks) {
        p->err = FEAT_ERR_TOO_LARGE;
        return -1;
    }
    feat_json_tok_t *t = &p->toks[p->ntok];
    memset(t, 0, sizeof(*t));
    t->type = (uint8_t)type;
    t->start = (uint32_t)p->pos;
    return (int)p->ntok++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int parse_string(jp_t *p, int as_tok) {
    /* p->pos at the opening quote */
    p->pos++;
    int ti = -1;
    if (as_tok) {
        ti = new_tok(p, FEAT_JSON_STRING);
        if (ti < 0) return -1;
    }
    size_t start = p->pos;
    int escaped = 0;
    const unsigned char *u = (const unsigned char *)p->s;
    while (p->pos < p->len) {
        unsigned char c = u[p->pos];
        if (c == '"') {
            if (ti >= 0) {
                p->toks[ti].start = (uint32_t)start;
                p->toks[ti].end = (uint32_t)p->pos;
                p->toks[ti].escaped = (uint8_t)escaped;
                p->toks[ti].next = (uint32_t)p->ntok;
            }
            p->pos++;
            return ti;
        }
        if (c < 0x20) break;
        if (c == '\\') {
            escaped = 1;
            if (++p->pos >= p->len) break;
            char e = p->s[p->pos];
            if (e == 'u') {
                size_t esc = p->pos - 1; /* the backslash: where a lone surrogate is reported */
                if (p->pos + 4 >= p->len) break;
                int v = 0;
                for (int k = 1; k <= 4; k++) {
                    int h = hexval(p->s[p->pos + k]);
                    if (h < 0) { p->err = FEAT_ERR_INVALID; return -1; }
                    v = v * 16 + h;
                }
                p->pos += 5;
                if (v >= 0xd800 && v <= 0xdbff) { /* needs a low surrogate */
                    if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                        p->pos = esc;
                        break;
                    }
                    int lo = 0;
                    for (int k = 2; k <= 5; k++) {
                        int h = hexval(p->s[p->pos + k]);
                        if (h < 0) { p->err = FEAT_ERR_INVALID; return -1; }
                        lo = lo * 16 + h;
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        p->pos = esc;
                        break;
                    }
                    p->pos += 6;
                } else if (v >= 0xdc00 && v <= 0xdfff) {
                    p->pos = esc;
                    break;
                }
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) break;
            p->pos++;
            continue;
        }
        if (c < 0x80) { p->pos++; continue; }
        size_t l = feat_utf8_seq(u + p->pos, p->len - p->pos);
        if (!l) break; /* p->pos stays on the bad sequence: see feat_json_parse's err_off */
        p->pos += l;
    }
    p->err = FEAT_ERR_INVALID;
    return -1;
}

static int parse_number(jp_t *p) {
    int ti = new_tok(p, FEAT_JSON_NUMBER);
    if (ti < 0) return -1;
    size_t i = p->pos;
    const char *s = p->s;
    int integral = 1;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len) goto bad;
    if (s[i] == '0') i++;
    else if (s[i] >= '1' && s[i] <= '9') { while (i < p->len && s[i] >= '0' && s[i] <= '9') i++; }
    else goto bad;
    if (i < p->len && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') goto bad;
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') goto bad;
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    p->toks[ti].start = (uint32_t)p->pos;
    p->toks[ti].end = (uint32_t)i;
    p->toks[ti].integral = (uint8_t)integral;
    p->toks[ti].next = (uint32_t)p->ntok;
    p->pos = i;
    return ti;
bad:
    p->pos = i;
    p->err = FEAT_ERR_INVALID;
    return -1;
}

static int parse_value(jp_t *p, unsigned depth);

static int parse_container(jp_t *p, unsigned depth, int is_obj) {
    if (depth >= p->max_depth) {
        p->err = FEAT_ERR_TOO_LARGE;
        return -1;
    }
    int ti = new_tok(p, is_obj ? FEAT_JSON_OBJECT : FEAT_JSON_ARRAY);
    if (ti < 0) return -1;
    char close = is_obj ? '}' : ']';
    p->pos++;
    skip_ws(p);
    uint32_t n = 0;
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->toks[ti].end = (uint32_t)p->pos;
        p->toks[ti].next = (uint32_t)p->ntok;
        return ti;
    }
    for (;;) {
        skip_ws(p);
        if (is_obj) {
            if (p->pos >= p->len || p->s[p->pos] != '"') { p->err = FEAT_ERR_INVALID; return -1; }
            if (parse_string(p, 1) < 0) return -1;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') { p->err = FEAT_ERR_INVALID; return -1; }
            p->pos++;
            skip_ws(p);
        }
        if (parse_value(p, depth + 1) < 0) return -1;
        n++;
        skip_ws(p);
        if (p->pos >= p->len) { p->err = FEAT_ERR_INVALID; return -1; }
        char c = p->s[p->pos];
        if (c == ',') { p->pos++; continue; }
        if (c == close) { p->pos++; break; }
        p->err = FEAT_ERR_INVALID;
        return -1;
    }
    p->toks[ti].size = n;
    p->toks[ti].end = (uint32_t)p->pos;
    p->toks[ti].next = (uint32_t)p->ntok;
    return ti;
}

static int parse_lit(jp_t *p, const char *lit, int type) {
    size_t n = strlen(lit);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, lit, n) != 0) {
        p->err = FEAT_ERR_INVALID;
        return -1;
    }
    int ti = new_tok(p, type);
    if (ti < 0) return -1;
    p->pos += n;
    p->toks[ti].end = (uint32_t)p->pos;
    p->toks[ti].next = (uint32_t)p->ntok;
    return ti;
}

static int parse_value(jp_t *p, unsigned depth) {
    skip_ws(p);
    if (p->pos >= p->len) { p->err = FEAT_ERR_INVALID; return -1; }
    switch (p->s[p->pos]) {
    case '{': return parse_container(p, depth, 1);
    case '[': return parse_container(p, depth, 0);
    case '"': return parse_string(p, 1);
    case 't': return parse_lit(p, "true", FEAT_JSON_TRUE);
    case 'f': return parse_lit(p, "false", FEAT_JSON_FALSE);
    case 'n': return parse_lit(p, "null", FEAT_JSON_NULL);
    default: return parse_number(p);
    }
}

feat_err_t feat_json_parse(const char *text, size_t len, feat_json_tok_t *toks, size_t ntoks,
                           unsigned max_depth, size_t *ntok, size_t *err_off) {
    jp_t p = {text, len, 0, toks, ntoks, 0, max_depth ? max_depth : 1, FEAT_OK};
    if (len >= UINT32_MAX) {
        if (err_off) *err_off = 0;
        return FEAT_ERR_TOO_LARGE;
    }
    if (parse_value(&p, 0) < 0) {
        if (err_off) *err_off = p.pos;
        return p.err ? p.err : FEAT_ERR_INVALID;
    }
    skip_ws(&p);
    if (p.pos != len) {
        if (err_off) *err_off = p.pos;
        return FEAT_ERR_INVALID;
    }
    if (ntok) *ntok = p.ntok;
    return FEAT_OK;
}

/* Decodes the character at text[*i] of a validated string token into b (1-4
 * UTF-8 bytes), advancing *i past it (and past its escape); returns the count. */
static size_t next_char(const char *text, uint32_t *i, unsigned char b[4]) {
    char c = text[*i];
    if (c != '\\') {
        b[0] = (unsigned char)c;
        (*i)++;
        return 1;
    }
    char e = text[*i + 1];
    *i += 2;
    uint32_t cp;
    switch (e) {
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u': {
        cp = 0;
        for (int k = 0; k < 4; k++) cp = cp * 16 + (uint32_t)hexval(text[*i + k]);
        *i += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) { /* validated by the parser */
            uint32_t lo = 0;
            for (int k = 2; k < 6; k++) lo = lo * 16 + (uint32_t)hexval(text[*i + k]);
            *i += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        break;
    }
    default: cp = (unsigned char)e; break;
    }
    if (cp < 0x80) { b[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { b[0] = (unsigned char)(0xc0 | (cp >> 6)); b[1] = (unsigned char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | (cp >> 12)); b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    b[0] = (unsigned char)(0xf0 | (cp >> 18)); b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)); b[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

feat_err_t feat_json_unescape(const char *text, const feat_json_tok_t *t, char *out, size_t cap, size_t *len) {
    size_t o = 0;
    unsigned char b[4];
    for (uint32_t i = t->start; i < t->end;) {
        size_t n = next_char(text, &i, b);
        if (o + n > cap) return FEAT_ERR_TOO_LARGE;
        memcpy(out + o, b, n);
        o += n;
    }
    *len = o;
    return FEAT_OK;
}

/* Compares as it unescapes: no buffer, so no length limit. */
int feat_json_str_eq(const char *text, const feat_json_tok_t *t, const char *s, size_t n) {
    if (t->type != FEAT_JSON_STRING) return 0;
    if (!t->escaped) return (size_t)(t->end - t->start) == n && memcmp(text + t->start, s, n) == 0;
    size_t o = 0;
    unsigned char b[4];
    for (uint32_t i = t->start; i < t->end;) {
        size_t k = next_char(text, &i, b);
        if (o + k > n || memcmp(s + o, b, k) != 0) return 0;
        o += k;
    }
    return o == n;
}

int feat_json_obj_get(const char *text, const feat_json_tok_t *toks, int obj, const char *key) {
    if (obj < 0 || toks[obj].type != FEAT_JSON_OBJECT) return -1;
    size_t kl = strlen(key);
    uint32_t i = (uint32_t)obj + 1;
    for (uint32_t m = 0; m < toks[obj].size; m++) {
        const feat_json_tok_t *k = &toks[i];
        uint32_t v = i + 1;
        if (feat_json_str_eq(text, k, key, kl)) return (int)v;
        i = toks[v].next;
    }
    return -1;
}

/* Clinger's fast path: a literal whose digits fit in 2^53 and whose decimal
 * exponent is within +-22 is m * 10^e with both factors exact doubles, so one
 * IEEE multiply or divide gives the correctly rounded result strtod would.
 * Returns 1 and sets *out, or 0 to fall back to strtod. */
static int fast_double(const char *s, size_t n, double *out) {
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') { neg = 1; i = 1; }
    uint64_t m = 0;
    int digits = 0, scale = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (m || s[i] != '0') digits++;
        if (digits > 15) return 0;
        m = m * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (m || s[i] != '0') digits++;
            if (digits > 15) return 0;
            m = m * 10 + (uint64_t)(s[i] - '0');
            scale--;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0, e = 0;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (e > 1000) return 0;
            e = e * 10 + (s[i] - '0');
        }
        scale += eneg ? -e : e;
    }
    if (i != n || scale < -22 || scale > 22) return 0;
    double d = (double)m; /* exact: m < 10^15 < 2^53 */
    d = scale >= 0 ? d * p10[scale] : d / p10[-scale];
    *out = neg ? -d : d;
    return 1;
}

feat_err_t feat_json_double(const char *text, const feat_json_tok_t *t, double *out) {
    if (t->type != FEAT_JSON_NUMBER) return FEAT_ERR_INVALID;
    if (fast_double(text + t->start, t->end - t->start, out)) return FEAT_OK;
    char tmp[64];
    size_t n = t->end - t->start;
    if (n >= sizeof(tmp)) {
        /* Long literals are legal JSON; parse from a heap copy. */
        char *h = malloc(n + 1);
        if (!h) return FEAT_ERR_NOMEM;
        memcpy(h, text + t->start, n);
        h[n] = 0;
        errno = 0;
        double v = strtod(h, NULL);
        int e = errno;
        free(h);
        if (e == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL)) return FEAT_ERR_INVALID;
        *out = v;
        return isfinite(v) ? FEAT_OK : FEAT_ERR_INVALID;
    }
    memcpy(tmp, text + t->start, n);
    tmp[n] = 0;
    errno = 0;
    double v = strtod(tmp, NULL);
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL)) return FEAT_ERR_INVALID;
    if (!isfinite(v)) return FEAT_ERR_INVALID;
    *out = v;
    return FEAT_OK;
}

feat_err_t feat_json_int64(const char *text, const feat_json_tok_t *t, int64_t *out) {
    if (t->type != FEAT_JSON_NUMBER || !t->integral) return FEAT_ERR_INVALID;
    const char *s = text + t->start;
    size_t n = t->end - t->start;
    int neg = 0;
    size_t i = 0;
    if (s[0] == '-') { neg = 1; i = 1; }
    uint64_t v = 0;
    uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (lim - d) / 10) return FEAT_ERR_INVALID;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return FEAT_OK;
}
