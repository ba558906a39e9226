/*
 * store/tile.c — see tile.h.
 *
 * One accumulator type (acc_t) serves both paths: the fold decodes a tile's
 * accumulator of one spec, applies the operand's values to it and encodes it
 * again (one spec at a time, its strings pointing into the state or the
 * operand bytes); the window reader decodes each visited tile's accumulator
 * into a scratch acc_t and merges it into the requested feature's running
 * one (whose strings it copies into buffers of its own, since the caller's
 * tile bytes do not outlive feat_agg_add).  Decoding checks every length
 * before it reads, so damaged bytes give FEAT_ERR_CORRUPT, never a read
 * outside them.
 */
#include "store/tile.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "stats/hll.h"
#include "stats/kll.h"
#include "store/row.h"

#define SRC_LEN 20          /* i64 ts | i64 offset | i32 partition */
#define OP_HDR (1 + SRC_LEN)
#define STATE_HDR 3         /* u8 version | u16 nacc */
#define ACC_HDR 9           /* u32 spec id | u8 fn | u32 len */
#define PAY_HDR 16          /* u64 n | i64 max_ts */
#define LAST_N_MAX 100u     /* the config's bound on last_n's N */

/* Internal results of decoding one accumulator. */
enum { DEC_OK = 0, DEC_DROP = 1, DEC_CORRUPT = -1, DEC_NOMEM = -2 };

/* One value with its event's source (last, first, last_n). */
typedef struct item {
    int64_t ts;
    int64_t offset;
    int32_t partition;
    feat_value_t v;         /* strings point into tile bytes or the reader's buffers */
} item_t;

typedef struct acc {
    uint64_t n;             /* values folded; 0 = empty */
    int64_t max_ts;         /* newest event time folded (valid when n > 0) */
    uint8_t type;           /* sum, mean, min, max: FEAT_FT_INT64 or FEAT_FT_DOUBLE */
    int64_t i;              /* sum, min or max of int64 */
    double d;               /* sum, min or max of double; stddev: the mean */
    double m2;              /* stddev: sum of squared deviations */
    item_t one;             /* last, first */
    uint32_t count;         /* last_n: items held, <= N */
    item_t *items;          /* last_n: [LAST_N_MAX], newest first (storage is the caller's) */
    const unsigned char *hll; /* approx_distinct: serialized sketch (fold and tile decode) */
    size_t hll_len;
    feat_kll_t *kll;        /* approx_quantile: owned by whoever decoded or created it */
} acc_t;

/* ---- tile arithmetic ----------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b, r = a % b;
    return r < 0 ? q - 1 : q;
}

int64_t feat_tile_index(int64_t ts, int64_t tile_ms) {
    if (tile_ms < 1) tile_ms = 1;
    int64_t q = ts / tile_ms, r = ts % tile_ms;
    if (r < 0) q--, r += tile_ms;
    if (r != 0) return q;
    return q == INT64_MIN ? INT64_MIN : q - 1; /* ts a multiple of T: it closes tile q - 1 */
}

int64_t feat_tile_window_start(int64_t t, int64_t w, int64_t tile_ms) {
    if (tile_ms < 1) tile_ms = 1;
    int64_t x;
    if (w > 0 && t < INT64_MIN + w) x = INT64_MIN;
    else if (w < 0 && t > INT64_MAX + w) x = INT64_MAX;
    else x = t - w;
    return floor_div(x, tile_ms);
}

/* ---- little helpers -------------------------------------------------------- */

static int item_newer(const item_t *a, const item_t *b) {
    if (a->ts != b->ts) return a->ts > b->ts;
    if (a->offset != b->offset) return a->offset > b->offset;
    return a->partition > b->partition;
}

static void put_u32(feat_buf_t *b, uint32_t v) {
    unsigned char w[4];
    feat_put_le32(w, v);
    feat_buf_append(b, w, 4);
}

static void put_u64(feat_buf_t *b, uint64_t v) {
    unsigned char w[8];
    feat_put_le64(w, v);
    feat_buf_append(b, w, 8);
}

static void put_f64(feat_buf_t *b, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64(b, u);
}

static double get_f64(const unsigned char *p) {
    uint64_t u = feat_get_le64(p);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* u8 type | value (row.h's value bytes). */
static void put_value(feat_buf_t *b, const feat_value_t *v) {
    feat_buf_putc(b, (char)v->type);
    switch (v->type) {
    case FEAT_FT_DOUBLE: put_f64(b, v->v.d); break;
    case FEAT_FT_INT64: put_u64(b, (uint64_t)v->v.i); break;
    case FEAT_FT_BOOL: feat_buf_putc(b, v->v.b ? 1 : 0); break;
    default:
        put_u32(b, v->slen);
        feat_buf_append(b, v->v.s, v->slen);
        break;
    }
}

static int get_value(const unsigned char *p, size_t len, size_t *pos, feat_value_t *v) {
    size_t i = *pos;
    if (i >= len) return -1;
    memset(v, 0, sizeof(*v));
    v->type = p[i++];
    v->status = FEAT_ST_PRESENT;
    switch (v->type) {
    case FEAT_FT_DOUBLE:
    case FEAT_FT_INT64:
        if (len - i < 8) return -1;
        if (v->type == FEAT_FT_DOUBLE) v->v.d = get_f64(p + i);
        else v->v.i = (int64_t)feat_get_le64(p + i);
        i += 8;
        break;
    case FEAT_FT_BOOL:
        if (len - i < 1 || p[i] > 1) return -1;
        v->v.b = p[i++];
        break;
    case FEAT_FT_STRING: {
        if (len - i < 4) return -1;
        uint32_t sl = feat_get_le32(p + i);
        i += 4;
        if (len - i < sl) return -1;
        v->v.s = (const char *)p + i;
        v->slen = sl;
        i += sl;
        break;
    }
    default:
        return -1;
    }
    *pos = i;
    return 0;
}

static void put_item(feat_buf_t *b, const item_t *it) {
    put_u64(b, (uint64_t)it->ts);
    put_u64(b, (uint64_t)it->offset);
    put_u32(b, (uint32_t)it->partition);
    put_value(b, &it->v);
}

static int get_item(const unsigned char *p, size_t len, size_t *pos, item_t *it) {
    size_t i = *pos;
    if (i > len || len - i < SRC_LEN) return -1;
    it->ts = (int64_t)feat_get_le64(p + i);
    it->offset = (int64_t)feat_get_le64(p + i + 8);
    it->partition = (int32_t)feat_get_le32(p + i + 16);
    i += SRC_LEN;
    if (get_value(p, len, &i, &it->v) != 0) return -1;
    *pos = i;
    return 0;
}

/* The declared type of spec j's input, or FEAT_FT_NONE when the spec cannot
 * be computed: an unknown function, an input that is no feature of t, a
 * numeric function over a bool or string (never for a validated config). */
static feat_ftype_t input_type(const feat_table_t *t, size_t j) {
    const feat_agg_spec_t *s = &t->conf->aggs[j];
    if (s->input >= t->conf->nfeatures) return FEAT_FT_NONE;
    feat_ftype_t ty = t->conf->features[s->input].type;
    switch (s->fn) {
    case FEAT_AGG_COUNT:
    case FEAT_AGG_LAST:
    case FEAT_AGG_FIRST:
    case FEAT_AGG_LAST_N:
    case FEAT_AGG_APPROX_DISTINCT:
        return ty >= FEAT_FT_DOUBLE && ty <= FEAT_FT_STRING ? ty : FEAT_FT_NONE;
    case FEAT_AGG_SUM:
    case FEAT_AGG_MEAN:
    case FEAT_AGG_MIN:
    case FEAT_AGG_MAX:
    case FEAT_AGG_STDDEV:
    case FEAT_AGG_APPROX_QUANTILE:
        return ty == FEAT_FT_DOUBLE || ty == FEAT_FT_INT64 ? ty : FEAT_FT_NONE;
    default:
        return FEAT_FT_NONE;
    }
}

static uint32_t last_n_of(const feat_agg_spec_t *s) {
    return s->n < 1 ? 1 : s->n > LAST_N_MAX ? LAST_N_MAX : s->n;
}

static uint64_t value_hash(const feat_value_t *v) {
    unsigned char w[8];
    switch (v->type) {
    case FEAT_FT_DOUBLE: {
        uint64_t u;
        memcpy(&u, &v->v.d, 8);
        feat_put_le64(w, u);
        return feat_fnv1a64(w, 8);
    }
    case FEAT_FT_INT64:
        feat_put_le64(w, (uint64_t)v->v.i);
        return feat_fnv1a64(w, 8);
    case FEAT_FT_BOOL:
        w[0] = v->v.b ? 1 : 0;
        return feat_fnv1a64(w, 1);
    default:
        return feat_fnv1a64(v->v.s, v->slen);
    }
}

/* ---- tile state framing -------------------------------------------------- */

/* Checks the framing of a state (len 0 = empty); *nacc = its accumulators. */
static feat_err_t state_check(const unsigned char *s, size_t len, uint32_t *nacc) {
    *nacc = 0;
    if (len == 0) return FEAT_OK;
    if (len < STATE_HDR || s[0] != FEAT_TILE_V1) return FEAT_ERR_CORRUPT;
    uint32_t n = (uint32_t)s[1] | ((uint32_t)s[2] << 8);
    size_t pos = STATE_HDR;
    for (uint32_t i = 0; i < n; i++) {
        if (len - pos < ACC_HDR) return FEAT_ERR_CORRUPT;
        uint32_t pl = feat_get_le32(s + pos + 5);
        pos += ACC_HDR;
        if (len - pos < pl) return FEAT_ERR_CORRUPT;
        pos += pl;
    }
    if (pos != len) return FEAT_ERR_CORRUPT;
    *nacc = n;
    return FEAT_OK;
}

/* The first accumulator of a checked state with this spec id and function:
 * 1 with *pay, *plen set, or 0. */
static int state_find(const unsigned char *s, size_t len, uint32_t nacc, uint32_t id, uint8_t fn,
                      const unsigned char **pay, size_t *plen) {
    size_t pos = STATE_HDR;
    (void)len;
    for (uint32_t i = 0; i < nacc; i++) {
        uint32_t aid = feat_get_le32(s + pos);
        uint8_t afn = s[pos + 4];
        uint32_t pl = feat_get_le32(s + pos + 5);
        pos += ACC_HDR;
        if (aid == id && afn == fn) {
            *pay = s + pos;
            *plen = pl;
            return 1;
        }
        pos += pl;
    }
    return 0;
}

/* ---- one accumulator: decode, apply, encode ------------------------------- */

/* Decodes the payload of spec s (input type ity) into a (zeroed by the
 * caller; a->items points at LAST_N_MAX items).  DEC_OK, DEC_DROP (empty, or
 * of another input type: the caller treats it as absent), DEC_CORRUPT or
 * DEC_NOMEM.  seed: not used (a decoded sketch carries its RNG state). */
static int acc_decode(const feat_agg_spec_t *s, feat_ftype_t ity, const unsigned char *p, size_t len, acc_t *a) {
    if (len < PAY_HDR) return DEC_CORRUPT;
    a->n = feat_get_le64(p);
    a->max_ts = (int64_t)feat_get_le64(p + 8);
    size_t pos = PAY_HDR;
    int drop = a->n == 0;
    switch (s->fn) {
    case FEAT_AGG_COUNT:
        break;
    case FEAT_AGG_SUM:
    case FEAT_AGG_MEAN:
    case FEAT_AGG_MIN:
    case FEAT_AGG_MAX:
        if (len - pos < 9) return DEC_CORRUPT;
        a->type = p[pos];
        if (a->type == FEAT_FT_INT64) a->i = (int64_t)feat_get_le64(p + pos + 1);
        else if (a->type == FEAT_FT_DOUBLE) a->d = get_f64(p + pos + 1);
        else return DEC_CORRUPT;
        if (a->type != ity) drop = 1;
        pos += 9;
        break;
    case FEAT_AGG_STDDEV:
        if (len - pos < 16) return DEC_CORRUPT;
        a->d = get_f64(p + pos);
        a->m2 = get_f64(p + pos + 8);
        pos += 16;
        break;
    case FEAT_AGG_LAST:
    case FEAT_AGG_FIRST:
        if (get_item(p, len, &pos, &a->one) != 0) return DEC_CORRUPT;
        if (a->one.v.type != ity) drop = 1;
        break;
    case FEAT_AGG_LAST_N: {
        if (len - pos < 2) return DEC_CORRUPT;
        uint32_t c = (uint32_t)p[pos] | ((uint32_t)p[pos + 1] << 8), keep = last_n_of(s);
        pos += 2;
        item_t it, prev;
        for (uint32_t i = 0; i < c; i++) {
            if (get_item(p, len, &pos, &it) != 0) return DEC_CORRUPT;
            if (i > 0 && item_newer(&it, &prev)) return DEC_CORRUPT; /* newest first */
            if (it.v.type != ity) drop = 1;
            if (i < keep) a->items[i] = it;
            prev = it;
        }
        a->count = c < keep ? c : keep;
        break;
    }
    case FEAT_AGG_APPROX_DISTINCT:
        if (feat_hll_check(p + pos, len - pos) != FEAT_OK) return DEC_CORRUPT;
        a->hll = p + pos;
        a->hll_len = len - pos;
        pos = len;
        break;
    case FEAT_AGG_APPROX_QUANTILE: {
        feat_kll_t *k = NULL;
        feat_err_t rc = feat_kll_deserialize(p + pos, len - pos, &k);
        if (rc == FEAT_ERR_NOMEM) return DEC_NOMEM;
        if (rc != FEAT_OK) return DEC_CORRUPT;
        if (feat_kll_k(k) != FEAT_TILE_KLL_K || feat_kll_count(k) != a->n) {
            feat_kll_destroy(k);
            return DEC_CORRUPT;
        }
        a->kll = k;
        pos = len;
        break;
    }
    default:
        return DEC_CORRUPT;
    }
    if (pos != len) return DEC_CORRUPT;
    if (drop) {
        item_t *items = a->items;
        feat_kll_destroy(a->kll);
        memset(a, 0, sizeof(*a));
        a->items = items;
        return DEC_DROP;
    }
    return DEC_OK;
}

/* Scratch for folding approx_distinct: the sketch moves between two buffers. */
typedef struct hll_scratch {
    unsigned char b[2][FEAT_HLL_MAX_BYTES];
    int cur;
} hll_scratch_t;

/* Folds one value (already of the input's type) of the event src into a.
 * FEAT_OK, FEAT_ERR_NOMEM or FEAT_ERR_CORRUPT. */
static feat_err_t acc_apply(const feat_agg_spec_t *s, uint64_t seed, acc_t *a, const item_t *src,
                            hll_scratch_t *hs) {
    const feat_value_t *v = &src->v;
    switch (s->fn) {
    case FEAT_AGG_COUNT:
        break;
    case FEAT_AGG_SUM:
    case FEAT_AGG_MEAN:
        if (a->n == 0) {
            a->type = v->type;
            a->i = 0;
            a->d = 0;
        }
        if (v->type == FEAT_FT_INT64) a->i = (int64_t)((uint64_t)a->i + (uint64_t)v->v.i);
        else a->d += v->v.d;
        break;
    case FEAT_AGG_MIN:
    case FEAT_AGG_MAX: {
        int mx = s->fn == FEAT_AGG_MAX;
        a->type = v->type;
        if (v->type == FEAT_FT_INT64) {
            if (a->n == 0 || (mx ? v->v.i > a->i : v->v.i < a->i)) a->i = v->v.i;
        } else if (a->n == 0 || (mx ? v->v.d > a->d : v->v.d < a->d)) {
            a->d = v->v.d;
        }
        break;
    }
    case FEAT_AGG_STDDEV: {
        double x = v->type == FEAT_FT_INT64 ? (double)v->v.i : v->v.d;
        if (a->n == 0) a->d = a->m2 = 0;
        double delta = x - a->d;
        a->d += delta / (double)(a->n + 1);
        a->m2 += delta * (x - a->d);
        break;
    }
    case FEAT_AGG_LAST:
        if (a->n == 0 || item_newer(src, &a->one)) a->one = *src;
        break;
    case FEAT_AGG_FIRST:
        if (a->n == 0 || item_newer(&a->one, src)) a->one = *src;
        break;
    case FEAT_AGG_LAST_N: {
        uint32_t keep = last_n_of(s), pos = 0;
        while (pos < a->count && !item_newer(src, &a->items[pos])) pos++;
        if (pos >= keep) break;
        uint32_t last = a->count < keep ? a->count : keep - 1;
        memmove(&a->items[pos + 1], &a->items[pos], (last - pos) * sizeof(item_t));
        a->items[pos] = *src;
        if (a->count < keep) a->count++;
        break;
    }
    case FEAT_AGG_APPROX_DISTINCT: {
        size_t olen;
        unsigned char *o = hs->b[hs->cur];
        if (feat_hll_insert(a->hll, a->hll_len, value_hash(v), o, &olen) != FEAT_OK) return FEAT_ERR_CORRUPT;
        a->hll = o;
        a->hll_len = olen;
        hs->cur ^= 1;
        break;
    }
    case FEAT_AGG_APPROX_QUANTILE: {
        if (!a->kll) {
            feat_err_t e;
            a->kll = feat_kll_new(FEAT_TILE_KLL_K, seed, &e);
            if (!a->kll) return FEAT_ERR_NOMEM;
        }
        double x = v->type == FEAT_FT_INT64 ? (double)v->v.i : v->v.d;
        if (feat_kll_update(a->kll, x) != FEAT_OK) return FEAT_OK; /* not counted */
        break;
    }
    default:
        return FEAT_OK;
    }
    a->max_ts = a->n == 0 || src->ts > a->max_ts ? src->ts : a->max_ts;
    a->n++;
    return FEAT_OK;
}

/* Appends spec s's accumulator (u32 id | u8 fn | u32 len | payload). */
static feat_err_t acc_encode(feat_buf_t *b, const feat_agg_spec_t *s, const acc_t *a) {
    size_t at = b->len;
    put_u32(b, s->id);
    feat_buf_putc(b, (char)s->fn);
    put_u32(b, 0); /* the length, patched below */
    put_u64(b, a->n);
    put_u64(b, (uint64_t)a->max_ts);
    switch (s->fn) {
    case FEAT_AGG_SUM:
    case FEAT_AGG_MEAN:
    case FEAT_AGG_MIN:
    case FEAT_AGG_MAX:
        feat_buf_putc(b, (char)a->type);
        if (a->type == FEAT_FT_INT64) put_u64(b, (uint64_t)a->i);
        else put_f64(b, a->d);
        break;
    case FEAT_AGG_STDDEV:
        put_f64(b, a->d);
        put_f64(b, a->m2);
        break;
    case FEAT_AGG_LAST:
    case FEAT_AGG_FIRST:
        put_item(b, &a->one);
        break;
    case FEAT_AGG_LAST_N:
        feat_buf_putc(b, (char)(a->count & 0xff));
        feat_buf_putc(b, (char)(a->count >> 8));
        for (uint32_t i = 0; i < a->count; i++) put_item(b, &a->items[i]);
        break;
    case FEAT_AGG_APPROX_DISTINCT:
        feat_buf_append(b, a->hll, a->hll_len);
        break;
    case FEAT_AGG_APPROX_QUANTILE: {
        size_t sz = feat_kll_serialized_size(a->kll), w = 0;
        if (feat_buf_grow(b, sz) != FEAT_OK) break;
        if (feat_kll_serialize(a->kll, b->data + b->len, sz, &w) != FEAT_OK) {
            b->oom = 1;
            break;
        }
        b->len += w;
        break;
    }
    default:
        break;
    }
    if (b->oom) return FEAT_ERR_NOMEM;
    size_t pl = b->len - at - ACC_HDR;
    if (pl > UINT32_MAX) return FEAT_ERR_TOO_LARGE;
    feat_put_le32((unsigned char *)b->data + at + 5, (uint32_t)pl);
    return FEAT_OK;
}

/* ---- operand and fold -------------------------------------------------------- */

static int is_input(const feat_table_t *t, size_t f) {
    for (size_t j = 0; j < t->conf->naggs; j++)
        if (t->conf->aggs[j].input == f) return 1;
    return 0;
}

/* The name of input feature f, as operands carry it: a 32-bit hash of its
 * name, not its stable id, so the merge operator needs only the config (it
 * may run while the store is still opening, before the ids are loaded).  A
 * feature without a name (hand-built tables in tests) is known by index. */
static uint32_t input_key(const feat_table_conf_t *c, size_t f) {
    const char *n = c->features[f].name;
    return n ? (uint32_t)feat_hash64(n, strlen(n)) : (uint32_t)f;
}

int feat_tile_operand(const feat_table_t *t, int64_t ts, int64_t offset, int32_t partition, const uint16_t *fidx,
                      const feat_value_t *vals, size_t n, feat_buf_t *out) {
    feat_buf_reset(out);
    unsigned char h[OP_HDR];
    h[0] = FEAT_TILE_V1;
    feat_put_le64(h + 1, (uint64_t)ts);
    feat_put_le64(h + 9, (uint64_t)offset);
    feat_put_le32(h + 17, (uint32_t)partition);
    feat_buf_append(out, h, sizeof(h));
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        size_t f = fidx[i];
        if (f >= t->conf->nplain || f >= t->conf->nfeatures || !is_input(t, f)) continue;
        if (vals[i].type != t->conf->features[f].type) continue;
        put_u32(out, input_key(t->conf, f));
        feat_row_put(out, 0, 0, &vals[i], 0, 0, 0);
        any = 1;
    }
    return any;
}

feat_err_t feat_tile_operand_ts(const char *op, size_t oplen, int64_t *ts) {
    if (!op || oplen < OP_HDR || (unsigned char)op[0] != FEAT_TILE_V1) return FEAT_ERR_CORRUPT;
    *ts = (int64_t)feat_get_le64((const unsigned char *)op + 1);
    return FEAT_OK;
}

/* A value the fold applies to a spec of input type ity: of that type, and
 * finite when a double (ingest dead-letters the others). */
static int value_usable(const feat_value_t *v, feat_ftype_t ity) {
    if (v->type != ity) return 0;
    return v->type != FEAT_FT_DOUBLE || isfinite(v->v.d);
}

/* The operand's next entry: u32 input key, then a row entry (row.h) whose
 * id is 0.  FEAT_OK with *has 1 or 0 (the end), or FEAT_ERR_CORRUPT. */
static feat_err_t op_next(const char *op, size_t len, size_t *pos, uint32_t *key, feat_row_entry_t *e, int *has) {
    *has = 0;
    if (*pos == len) return FEAT_OK;
    if (len - *pos < 4) return FEAT_ERR_CORRUPT;
    *key = feat_get_le32((const unsigned char *)op + *pos);
    *pos += 4;
    feat_err_t rc = feat_row_next(op, len, pos, 0, e, has);
    if (rc == FEAT_OK && !*has) rc = FEAT_ERR_CORRUPT;
    return rc;
}

/* 1 if every entry of the operand decodes; src gets its source. */
static int operand_ok(const char *op, size_t oplen, item_t *src) {
    if (feat_tile_operand_ts(op, oplen, &src->ts) != FEAT_OK) return 0;
    src->offset = (int64_t)feat_get_le64((const unsigned char *)op + 9);
    src->partition = (int32_t)feat_get_le32((const unsigned char *)op + 17);
    feat_row_entry_t e;
    int has;
    size_t pos = OP_HDR;
    feat_err_t rc;
    uint32_t key;
    while ((rc = op_next(op, oplen, &pos, &key, &e, &has)) == FEAT_OK && has) {}
    return rc == FEAT_OK;
}

feat_err_t feat_tile_fold(const feat_table_t *t, int64_t k, const char *state, size_t slen, const char *op,
                          size_t oplen, feat_buf_t *out) {
    item_t src;
    if (!operand_ok(op, oplen, &src)) {
        feat_buf_reset(out);
        return FEAT_ERR_CORRUPT;
    }
    return feat_tile_fold_many(t, k, state, slen, &op, &oplen, 1, out);
}

/* One entry of an operand that some spec reads, decoded once per fold
 * (fold_many's scratch): the entries of one input form a list in operand
 * order, so each spec walks only its own input's values. */
typedef struct fent {
    uint32_t op;            /* its operand's index */
    uint32_t next;          /* the next entry of the same input, FENT_END at the end */
    uint32_t slot;          /* its input's slot */
    feat_value_t v;         /* strings point into the operand */
} fent_t;
#define FENT_END UINT32_MAX
#define FOLD_STACK 64       /* scratch held on the stack before malloc */

typedef struct fscratch {
    fent_t ebuf[FOLD_STACK], *e;
    size_t n, cap;
    uint32_t kbuf[FOLD_STACK], *keys;   /* distinct input keys, ascending */
    uint32_t hbuf[2 * FOLD_STACK], *ht; /* per slot: head, tail */
    size_t nkeys;
} fscratch_t;

static void fscratch_free(fscratch_t *f) {
    if (f->e != f->ebuf) free(f->e);
    if (f->keys != f->kbuf) free(f->keys);
    if (f->ht != f->hbuf) free(f->ht);
}

/* The slot of input key k, or -1 when no spec reads it. */
static long fslot(const fscratch_t *f, uint32_t k) {
    size_t lo = 0, hi = f->nkeys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->keys[mid] < k) lo = mid + 1;
        else hi = mid;
    }
    return lo < f->nkeys && f->keys[lo] == k ? (long)lo : -1;
}

/* Decodes every operand once: srcs[i] its source, and (from the operands
 * that decode: one with a bad entry is skipped whole, as the merge operator
 * skips it) the entries of the inputs some spec reads, listed per
 * input in operand order. */
static feat_err_t fold_parse(fscratch_t *f, const feat_table_t *t, const char *const *ops, const size_t *lens,
                             size_t nops, item_t *srcs) {
    const feat_table_conf_t *c = t->conf;
    f->e = f->ebuf;
    f->cap = FOLD_STACK;
    f->n = 0;
    f->keys = c->naggs <= FOLD_STACK ? f->kbuf : malloc(c->naggs * sizeof(uint32_t));
    f->ht = c->naggs <= FOLD_STACK ? f->hbuf : malloc(2 * c->naggs * sizeof(uint32_t));
    f->nkeys = 0;
    if (!f->keys || !f->ht) return FEAT_ERR_NOMEM;
    for (size_t j = 0; j < c->naggs; j++) { /* insertion into the sorted set */
        uint32_t k = input_key(c, c->aggs[j].input);
        size_t i = f->nkeys;
        while (i > 0 && f->keys[i - 1] > k) i--;
        if (i > 0 && f->keys[i - 1] == k) continue;
        memmove(f->keys + i + 1, f->keys + i, (f->nkeys - i) * sizeof(uint32_t));
        f->keys[i] = k;
        f->nkeys++;
    }
    for (size_t u = 0; u < f->nkeys; u++) f->ht[2 * u] = f->ht[2 * u + 1] = FENT_END;
    for (size_t i = 0; i < nops; i++) {
        const char *op = ops[i];
        size_t len = lens[i];
        if (feat_tile_operand_ts(op, len, &srcs[i].ts) != FEAT_OK) continue;
        srcs[i].offset = (int64_t)feat_get_le64((const unsigned char *)op + 9);
        srcs[i].partition = (int32_t)feat_get_le32((const unsigned char *)op + 17);
        size_t first = f->n, pos = OP_HDR;
        feat_row_entry_t e;
        int has;
        uint32_t key;
        feat_err_t rc;
        while ((rc = op_next(op, len, &pos, &key, &e, &has)) == FEAT_OK && has) {
            long s = fslot(f, key);
            if (s < 0) continue;
            if (f->n == f->cap) {
                size_t nc = f->cap * 2;
                fent_t *ne = f->e == f->ebuf ? malloc(nc * sizeof(*ne)) : realloc(f->e, nc * sizeof(*ne));
                if (!ne) return FEAT_ERR_NOMEM;
                if (f->e == f->ebuf) memcpy(ne, f->ebuf, sizeof(f->ebuf));
                f->e = ne;
                f->cap = nc;
            }
            f->e[f->n++] = (fent_t){.op = (uint32_t)i, .next = FENT_END, .slot = (uint32_t)s, .v = e.val};
        }
        if (rc != FEAT_OK) { /* skipped whole */
            f->n = first;
            continue;
        }
        for (size_t x = first; x < f->n; x++) { /* append to its input's list */
            uint32_t *h = &f->ht[2 * f->e[x].slot];
            if (h[0] == FENT_END) h[0] = (uint32_t)x;
            else f->e[h[1]].next = (uint32_t)x;
            h[1] = (uint32_t)x;
        }
    }
    return FEAT_OK;
}

feat_err_t feat_tile_fold_many(const feat_table_t *t, int64_t k, const char *state, size_t slen,
                               const char *const *ops, const size_t *lens, size_t nops, feat_buf_t *out) {
    feat_buf_reset(out);
    const unsigned char *s = (const unsigned char *)state;
    if (!s) slen = 0;
    uint32_t nacc;
    if (state_check(s, slen, &nacc) != FEAT_OK) return FEAT_ERR_CORRUPT;
    if (nops >= FENT_END) return FEAT_ERR_TOO_LARGE;
    item_t srcbuf[16], *srcs = nops <= 16 ? srcbuf : malloc(nops * sizeof(item_t));
    fscratch_t fs;
    memset(&fs, 0, sizeof(fs));
    feat_err_t rc = !srcs ? FEAT_ERR_NOMEM : fold_parse(&fs, t, ops, lens, nops, srcs);
    if (rc != FEAT_OK) {
        fscratch_free(&fs);
        if (srcs != srcbuf) free(srcs);
        return rc;
    }

    item_t items[LAST_N_MAX];
    hll_scratch_t hs;
    hs.cur = 0;
    const feat_table_conf_t *c = t->conf;
    unsigned char h[STATE_HDR] = {FEAT_TILE_V1, 0, 0};
    feat_buf_append(out, h, STATE_HDR);
    uint32_t written = 0;
    for (size_t j = 0; j < c->naggs && rc == FEAT_OK; j++) {
        const feat_agg_spec_t *sp = &c->aggs[j];
        feat_ftype_t ity = input_type(t, j);
        if (ity == FEAT_FT_NONE) continue;
        long slot = fslot(&fs, input_key(c, sp->input));
        const unsigned char *pay = NULL;
        size_t plen = 0;
        acc_t a;
        memset(&a, 0, sizeof(a));
        a.items = items;
        int found = state_find(s, slen, nacc, sp->id, (uint8_t)sp->fn, &pay, &plen);
        if (found) {
            int d = acc_decode(sp, ity, pay, plen, &a);
            if (d == DEC_CORRUPT) rc = FEAT_ERR_CORRUPT;
            else if (d == DEC_NOMEM) rc = FEAT_ERR_NOMEM;
            else if (d == DEC_DROP) found = 0;
            if (rc != FEAT_OK) break;
        }
        /* its input's values in operand order, decoded once and encoded
         * once: the same bytes as folding them one at a time (encoding is
         * lossless) */
        int touched = 0;
        for (uint32_t x = slot < 0 ? FENT_END : fs.ht[2 * slot]; x != FENT_END && rc == FEAT_OK; x = fs.e[x].next) {
            const fent_t *fe = &fs.e[x];
            if (!value_usable(&fe->v, ity)) continue;
            srcs[fe->op].v = fe->v;
            rc = acc_apply(sp, (uint64_t)sp->id ^ (uint64_t)k, &a, &srcs[fe->op], &hs);
            touched = 1;
        }
        if (rc == FEAT_OK && a.n > 0) {
            if (touched) {
                rc = acc_encode(out, sp, &a);
            } else { /* unchanged: the bytes as they were */
                put_u32(out, sp->id);
                feat_buf_putc(out, (char)sp->fn);
                put_u32(out, (uint32_t)plen);
                feat_buf_append(out, pay, plen);
            }
            written++;
        }
        feat_kll_destroy(a.kll);
    }
    fscratch_free(&fs);
    if (srcs != srcbuf) free(srcs);
    if (rc == FEAT_OK && written > UINT16_MAX) rc = FEAT_ERR_TOO_LARGE;
    if (rc == FEAT_OK && out->oom) rc = FEAT_ERR_NOMEM;
    if (rc != FEAT_OK) {
        feat_buf_reset(out);
        return rc;
    }
    out->data[1] = (char)(written & 0xff);
    out->data[2] = (char)(written >> 8);
    return FEAT_OK;
}

/* ---- the window reader ------------------------------------------------------- */

typedef struct rfeat {
    size_t spec;            /* index into conf->aggs */
    feat_ftype_t ity;       /* the input's type */
    int lifetime;           /* reads the lifetime tile only */
    int64_t kfrom, kto;     /* windowed: the level-0 tiles its window covers */
    int nrg;                /* the tiles it reads: whole coarse tiles inside, fine ones at the edges */
    struct { int level; int64_t lo, hi; } rg[8];
    acc_t a;                /* running accumulator (a.hll unused) */
    item_t *items;          /* [LAST_N_MAX], allocated on first use */
    feat_buf_t str[2];      /* strings of a.one / a.items: str[cur] */
    int cur;
    feat_hll_t *hll;        /* approx_distinct, allocated on first use */
    feat_kll_t *kll;        /* approx_quantile, allocated on first use, re-seeded per begin */
} rfeat_t;

struct feat_agg_reader {
    const feat_table_t *t;
    size_t n, cap;
    rfeat_t *f;             /* [cap], the first n in use */
    int64_t kfrom, kto;     /* union of the windowed ranges (kfrom > kto: none) */
    int lifetime;
    item_t titems[LAST_N_MAX]; /* a tile's last_n items, being merged */
    item_t mitems[LAST_N_MAX]; /* the merged list */
    int msrc[LAST_N_MAX];      /* 1 when mitems[i] came from the tile */
    size_t *soff;              /* [cap] finish: string offsets in *strings */
    int64_t *rlo, *rhi;        /* [caprg] feat_agg_ranges' result */
    size_t caprg;
    int oom;                   /* feat_agg_ranges could not grow: finish fails with FEAT_ERR_NOMEM */
};

feat_agg_reader_t *feat_agg_reader_new(void) { return calloc(1, sizeof(feat_agg_reader_t)); }

void feat_agg_reader_destroy(feat_agg_reader_t *r) {
    if (!r) return;
    for (size_t i = 0; i < r->cap; i++) {
        free(r->f[i].items);
        feat_buf_free(&r->f[i].str[0]);
        feat_buf_free(&r->f[i].str[1]);
        free(r->f[i].hll);
        feat_kll_destroy(r->f[i].kll);
    }
    free(r->f);
    free(r->soff);
    free(r->rlo);
    free(r->rhi);
    free(r);
}

int64_t feat_tile_id(int level, int64_t k) { return level ? (int64_t)((uint64_t)k ^ ((uint64_t)level << 58)) : k; }

/* Level-0 tiles per tile of each level (0: level unused). */
static void level_ratios(const feat_table_conf_t *c, int64_t ratio[FEAT_TILE_LEVELS]) {
    int64_t T = c->agg_tile_ms;
    ratio[0] = 1;
    for (int l = 1; l < FEAT_TILE_LEVELS; l++)
        ratio[l] = T > 0 && c->agg_level_ms[l] > 0 && c->agg_level_ms[l] % T == 0 ? c->agg_level_ms[l] / T : 0;
}

int feat_tile_top_level(const feat_table_conf_t *c) {
    int64_t ratio[FEAT_TILE_LEVELS];
    level_ratios(c, ratio);
    int top = 0;
    while (top + 1 < FEAT_TILE_LEVELS && ratio[top + 1] > 0) top++;
    return top;
}

int64_t feat_tile_level_ms(const feat_table_conf_t *c, int level) {
    return level ? c->agg_level_ms[level] : c->agg_tile_ms;
}

int feat_tile_in_block(const feat_table_conf_t *c, int level, int64_t k, int64_t b) {
    int64_t ratio[FEAT_TILE_LEVELS];
    level_ratios(c, ratio);
    int top = feat_tile_top_level(c);
    if (level < 0 || level > top) return 0;
    return floor_div(k, ratio[top] / ratio[level]) == b;
}

/* ---- blocks ------------------------------------------------------------------ */

#define SUB_HDR 13          /* u8 level | i64 k | u32 len */

void feat_block_iter_init(feat_block_iter_t *it, const char *block, size_t len) {
    memset(it, 0, sizeof(*it));
    it->b = block;
    it->len = block ? len : 0;
    it->level = FEAT_TILE_LEVELS; /* before the first tile */
}

int feat_block_iter_next(feat_block_iter_t *it) {
    const unsigned char *p = (const unsigned char *)it->b;
    if (it->pos == 0) {
        if (it->len == 0 || p[0] == FEAT_TILE_V1) return 0; /* empty; a tile of the layout before blocks */
        if (p[0] != FEAT_TILE_BLOCK) return -1;
        it->pos = 1;
    }
    if (it->pos == it->len) return 0;
    if (it->len - it->pos < SUB_HDR) return -1;
    const unsigned char *h = p + it->pos;
    int level = h[0];
    int64_t k = (int64_t)feat_get_le64(h + 1);
    uint32_t len = feat_get_le32(h + 9);
    if (level >= FEAT_TILE_LEVELS || it->len - it->pos - SUB_HDR < len) return -1;
    /* coarsest level first, then k ascending */
    if (it->state && !(level < it->level || (level == it->level && k > it->k))) return -1;
    it->level = level;
    it->k = k;
    it->state = it->b + it->pos + SUB_HDR;
    it->slen = len;
    it->pos += SUB_HDR + len;
    return 1;
}

/* One (tile, operand) pair of a block fold. */
typedef struct bgrp {
    int level;
    int64_t k;
    size_t op;
} bgrp_t;

/* Block order (coarsest level first, k ascending), then write order. */
static int tile_order(int la, int64_t ka, int lb, int64_t kb) {
    if (la != lb) return la > lb ? -1 : 1;
    return ka < kb ? -1 : ka > kb;
}
static int bgrp_cmp(const void *a, const void *b) {
    const bgrp_t *x = a, *y = b;
    int c = tile_order(x->level, x->k, y->level, y->k);
    if (c) return c;
    return x->op < y->op ? -1 : x->op > y->op;
}

static void put_sub(feat_buf_t *out, int level, int64_t k, const char *state, size_t len) {
    unsigned char h[SUB_HDR];
    h[0] = (unsigned char)level;
    feat_put_le64(h + 1, (uint64_t)k);
    feat_put_le32(h + 9, (uint32_t)len);
    feat_buf_append(out, h, SUB_HDR);
    feat_buf_append(out, state, len);
}

feat_err_t feat_tile_block_fold(const feat_table_t *t, int64_t b, const char *block, size_t blen,
                                const char *const *ops, const size_t *lens, size_t nops, feat_buf_t *out) {
    const feat_table_conf_t *c = t->conf;
    feat_buf_reset(out);
    int top = feat_tile_top_level(c);
    int64_t ratio[FEAT_TILE_LEVELS];
    level_ratios(c, ratio);
    if (c->agg_tile_ms <= 0) return FEAT_ERR_CORRUPT;
    size_t cap = nops * (size_t)(top + 1);
    bgrp_t gbuf[48], *g = cap <= 48 ? gbuf : malloc(cap * sizeof(*g));
    const char *obuf[16], **gops = nops <= 16 ? obuf : malloc(nops * sizeof(*gops));
    size_t lbuf[16], *glens = nops <= 16 ? lbuf : malloc(nops * sizeof(*glens));
    feat_buf_t tmp = FEAT_BUF_INIT;
    feat_err_t rc = !g || !gops || !glens ? FEAT_ERR_NOMEM : FEAT_OK;
    size_t ng = 0;
    for (size_t i = 0; rc == FEAT_OK && i < nops; i++) {
        int64_t ts;
        if (feat_tile_operand_ts(ops[i], lens[i], &ts) != FEAT_OK) continue;
        int64_t k0 = feat_tile_index(ts, c->agg_tile_ms);
        if (floor_div(k0, ratio[top]) != b) continue; /* not this block's event */
        for (int l = 0; l <= top; l++) g[ng++] = (bgrp_t){l, floor_div(k0, ratio[l]), i};
    }
    if (ng > 1) qsort(g, ng, sizeof(*g), bgrp_cmp);
    feat_block_iter_t it;
    feat_block_iter_init(&it, block, blen);
    int has = feat_block_iter_next(&it);
    if (has < 0) rc = FEAT_ERR_CORRUPT;
    feat_buf_putc(out, FEAT_TILE_BLOCK);
    size_t gi = 0;
    while (rc == FEAT_OK && (gi < ng || has > 0)) {
        int cmp = !has ? 1 : gi == ng ? -1 : tile_order(it.level, it.k, g[gi].level, g[gi].k);
        if (cmp < 0) { /* a tile no operand touches: its bytes as they were (dropped if foreign) */
            if (feat_tile_in_block(c, it.level, it.k, b)) put_sub(out, it.level, it.k, it.state, it.slen);
            if ((has = feat_block_iter_next(&it)) < 0) rc = FEAT_ERR_CORRUPT;
            continue;
        }
        size_t gj = gi, n = 0;
        for (; gj < ng && g[gj].level == g[gi].level && g[gj].k == g[gi].k; gj++, n++) {
            gops[n] = ops[g[gj].op];
            glens[n] = lens[g[gj].op];
        }
        rc = feat_tile_fold_many(t, feat_tile_id(g[gi].level, g[gi].k), cmp == 0 ? it.state : NULL,
                                 cmp == 0 ? it.slen : 0, gops, glens, n, &tmp);
        if (rc == FEAT_OK && tmp.len > UINT32_MAX) rc = FEAT_ERR_TOO_LARGE;
        if (rc == FEAT_OK) put_sub(out, g[gi].level, g[gi].k, tmp.data, tmp.len);
        if (rc == FEAT_OK && cmp == 0 && (has = feat_block_iter_next(&it)) < 0) rc = FEAT_ERR_CORRUPT;
        gi = gj;
    }
    if (rc == FEAT_OK && out->oom) rc = FEAT_ERR_NOMEM;
    if (g != gbuf) free(g);
    if (gops != obuf) free((void *)gops);
    if (glens != lbuf) free(glens);
    feat_buf_free(&tmp);
    if (rc != FEAT_OK) feat_buf_reset(out);
    return rc;
}

/* Covers level-0 tiles [kf, kt] exactly with the coarsest whole tiles that
 * fit: level l's tiles where they fit, the rest by the level below. */
static void cover(rfeat_t *x, const int64_t ratio[FEAT_TILE_LEVELS], int level, int64_t kf, int64_t kt) {
    if (kf > kt) return;
    while (level > 0 && ratio[level] <= 0) level--;
    int64_t R = ratio[level];
    int64_t a = level ? -floor_div(-kf, R) : kf, b = level ? floor_div(kt + 1, R) - 1 : kt;
    if (a > b) {
        cover(x, ratio, level - 1, kf, kt);
        return;
    }
    if (level) cover(x, ratio, level - 1, kf, a * R - 1);
    if (x->nrg < (int)(sizeof(x->rg) / sizeof(x->rg[0]))) {
        x->rg[x->nrg].level = level;
        x->rg[x->nrg].lo = a;
        x->rg[x->nrg].hi = b;
        x->nrg++;
    }
    if (level) cover(x, ratio, level - 1, (b + 1) * R, kt);
}

feat_err_t feat_agg_begin(feat_agg_reader_t *r, const feat_table_t *t, int64_t as_of, const uint16_t *fidx,
                          size_t n) {
    const feat_table_conf_t *c = t->conf;
    r->t = t;
    r->n = 0;
    r->kfrom = 0;
    r->kto = -1;
    r->lifetime = 0;
    r->oom = 0;
    for (size_t i = 0; i < n; i++) {
        size_t f = fidx[i];
        if (f >= c->nfeatures || c->features[f].agg < 0 || (size_t)c->features[f].agg >= c->naggs ||
            c->features[f].window_ms < 0)
            return FEAT_ERR_INVALID;
        if (input_type(t, (size_t)c->features[f].agg) == FEAT_FT_NONE) return FEAT_ERR_INVALID;
    }
    if (n > r->cap) {
        rfeat_t *nf = realloc(r->f, n * sizeof(*nf));
        if (!nf) return FEAT_ERR_NOMEM;
        memset(nf + r->cap, 0, (n - r->cap) * sizeof(*nf));
        r->f = nf;
        size_t *ns = realloc(r->soff, n * sizeof(*ns));
        if (!ns) {
            /* keep r->f (its new slots are zeroed); only the capacity stays */
            return FEAT_ERR_NOMEM;
        }
        r->soff = ns;
        r->cap = n;
    }
    int have_window = 0;
    for (size_t i = 0; i < n; i++) {
        const feat_feature_conf_t *fc = &c->features[fidx[i]];
        rfeat_t *x = &r->f[i];
        x->spec = (size_t)fc->agg;
        x->ity = input_type(t, x->spec);
        const feat_agg_spec_t *sp = &c->aggs[x->spec];
        memset(&x->a, 0, sizeof(x->a));
        x->cur = 0;
        feat_buf_reset(&x->str[0]);
        feat_buf_reset(&x->str[1]);
        if (sp->fn == FEAT_AGG_LAST_N && !x->items) {
            x->items = malloc(LAST_N_MAX * sizeof(item_t));
            if (!x->items) return FEAT_ERR_NOMEM;
        }
        x->a.items = x->items;
        if (sp->fn == FEAT_AGG_APPROX_DISTINCT) {
            if (!x->hll && !(x->hll = malloc(sizeof(feat_hll_t)))) return FEAT_ERR_NOMEM;
            feat_hll_clear(x->hll);
        }
        if (fc->window_ms == 0) {
            x->lifetime = 1;
            x->kfrom = 0;
            x->kto = -1;
            r->lifetime = 1;
        } else {
            x->lifetime = 0;
            x->kfrom = feat_tile_window_start(as_of, fc->window_ms, c->agg_tile_ms);
            x->kto = feat_tile_index(as_of, c->agg_tile_ms);
            int64_t ratio[FEAT_TILE_LEVELS];
            level_ratios(c, ratio);
            x->nrg = 0;
            cover(x, ratio, FEAT_TILE_LEVELS - 1, x->kfrom, x->kto);
            if (!have_window || x->kfrom < r->kfrom) r->kfrom = x->kfrom;
            if (!have_window || x->kto > r->kto) r->kto = x->kto;
            have_window = 1;
        }
        if (sp->fn == FEAT_AGG_APPROX_QUANTILE) {
            /* coins of its own, a function of the spec and the window only */
            uint64_t seed = feat_splitmix64_mix(((uint64_t)sp->id << 32) ^ (uint64_t)x->kto ^
                                                (x->lifetime ? 0x4c49464554494d45ull : 0));
            if (!x->kll) {
                feat_err_t e;
                if (!(x->kll = feat_kll_new(FEAT_TILE_KLL_K, seed, &e))) return FEAT_ERR_NOMEM;
            } else {
                feat_kll_reset(x->kll);
                feat_kll_seed(x->kll, seed);
            }
        }
        r->n = i + 1;
    }
    r->n = n;
    return FEAT_OK;
}

void feat_agg_range(const feat_agg_reader_t *r, int64_t *kfrom, int64_t *kto, int *lifetime) {
    *kfrom = r->kfrom;
    *kto = r->kto;
    *lifetime = r->lifetime;
}

size_t feat_agg_ranges(feat_agg_reader_t *r, int level, const int64_t **lop, const int64_t **hip) {
    /* room for every feature's ranges: each has at most 8 */
    size_t max = 8 * r->n;
    if (max > r->caprg) {
        int64_t *nl = realloc(r->rlo, max * sizeof(*nl));
        if (nl) r->rlo = nl;
        int64_t *nh = nl ? realloc(r->rhi, max * sizeof(*nh)) : NULL;
        if (nh) r->rhi = nh;
        if (!nl || !nh) { /* out of memory: callers see FEAT_ERR_NOMEM from finish */
            r->oom = 1;
            return 0;
        }
        r->caprg = max;
    }
    int64_t *lo = r->rlo, *hi = r->rhi;
    *lop = lo;
    *hip = hi;
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        const rfeat_t *x = &r->f[i];
        if (x->lifetime) continue;
        for (int g = 0; g < x->nrg; g++) {
            if (x->rg[g].level != level) continue;
            /* insert in order of lo, merging overlapping or adjacent ranges */
            int64_t a = x->rg[g].lo, b = x->rg[g].hi;
            size_t j = 0;
            while (j < n && hi[j] < a - 1) j++;
            if (j < n && lo[j] <= b + 1) {
                if (a < lo[j]) lo[j] = a;
                if (b > hi[j]) hi[j] = b;
                while (j + 1 < n && lo[j + 1] <= hi[j] + 1) { /* swallow the next ones */
                    if (hi[j + 1] > hi[j]) hi[j] = hi[j + 1];
                    memmove(lo + j + 1, lo + j + 2, (n - j - 2) * sizeof(*lo));
                    memmove(hi + j + 1, hi + j + 2, (n - j - 2) * sizeof(*hi));
                    n--;
                }
            } else if (n < max) {
                memmove(lo + j + 1, lo + j, (n - j) * sizeof(*lo));
                memmove(hi + j + 1, hi + j, (n - j) * sizeof(*hi));
                lo[j] = a;
                hi[j] = b;
                n++;
            }
        }
    }
    return n;
}

/* Copies a string into b (reset by the caller) and points v at it, once the
 * caller has made room: the pointer stays valid while b is not grown. */
static void own_string(feat_buf_t *b, feat_value_t *v) {
    if (v->type != FEAT_FT_STRING) return;
    size_t at = b->len;
    feat_buf_append(b, v->v.s, v->slen);
    v->v.s = b->oom ? NULL : b->data + at;
    if (b->oom) v->slen = 0;
}

/* Merges tile accumulator b (strings in tile bytes) into x's running one. */
static feat_err_t reader_merge(feat_agg_reader_t *r, rfeat_t *x, const feat_agg_spec_t *sp, acc_t *b) {
    acc_t *a = &x->a;
    switch (sp->fn) {
    case FEAT_AGG_COUNT:
        break;
    case FEAT_AGG_SUM:
    case FEAT_AGG_MEAN:
        if (a->n == 0) {
            a->type = b->type;
            a->i = b->i;
            a->d = b->d;
        } else if (b->type == FEAT_FT_INT64) {
            a->i = (int64_t)((uint64_t)a->i + (uint64_t)b->i);
        } else {
            a->d += b->d;
        }
        break;
    case FEAT_AGG_MIN:
    case FEAT_AGG_MAX: {
        int mx = sp->fn == FEAT_AGG_MAX;
        if (a->n == 0) {
            a->type = b->type;
            a->i = b->i;
            a->d = b->d;
        } else if (b->type == FEAT_FT_INT64) {
            if (mx ? b->i > a->i : b->i < a->i) a->i = b->i;
        } else if (mx ? b->d > a->d : b->d < a->d) {
            a->d = b->d;
        }
        break;
    }
    case FEAT_AGG_STDDEV:
        if (a->n == 0) {
            a->d = b->d;
            a->m2 = b->m2;
        } else { /* Chan et al. */
            double na = (double)a->n, nb = (double)b->n, nn = na + nb;
            double delta = b->d - a->d;
            a->d = a->d + delta * nb / nn;
            a->m2 = a->m2 + b->m2 + delta * delta * na * nb / nn;
        }
        break;
    case FEAT_AGG_LAST:
    case FEAT_AGG_FIRST: {
        int take = a->n == 0 || (sp->fn == FEAT_AGG_LAST ? item_newer(&b->one, &a->one)
                                                          : item_newer(&a->one, &b->one));
        if (take) {
            feat_buf_reset(&x->str[0]);
            a->one = b->one;
            own_string(&x->str[0], &a->one.v);
            if (x->str[0].oom) return FEAT_ERR_NOMEM;
        }
        break;
    }
    case FEAT_AGG_LAST_N: {
        uint32_t keep = last_n_of(sp), i = 0, j = 0, m = 0;
        size_t bytes = 0;
        while (m < keep && (i < a->count || j < b->count)) {
            int tile = i >= a->count || (j < b->count && item_newer(&b->items[j], &a->items[i]));
            r->mitems[m] = tile ? b->items[j++] : a->items[i++];
            if (r->mitems[m].v.type == FEAT_FT_STRING) bytes += r->mitems[m].v.slen;
            m++;
        }
        feat_buf_t *nb = &x->str[x->cur ^ 1];
        feat_buf_reset(nb);
        if (feat_buf_grow(nb, bytes) != FEAT_OK) return FEAT_ERR_NOMEM;
        for (uint32_t k = 0; k < m; k++) own_string(nb, &r->mitems[k].v);
        memcpy(a->items, r->mitems, m * sizeof(item_t));
        a->count = m;
        x->cur ^= 1;
        break;
    }
    case FEAT_AGG_APPROX_DISTINCT:
        if (feat_hll_merge_bytes(x->hll, b->hll, b->hll_len) != FEAT_OK) return FEAT_ERR_CORRUPT;
        break;
    case FEAT_AGG_APPROX_QUANTILE: {
        feat_err_t rc = feat_kll_merge(x->kll, b->kll);
        if (rc != FEAT_OK) return FEAT_ERR_CORRUPT;
        break;
    }
    default:
        break;
    }
    if (a->n == 0 || b->max_ts > a->max_ts) a->max_ts = b->max_ts;
    a->n += b->n;
    return FEAT_OK;
}

feat_err_t feat_agg_add(feat_agg_reader_t *r, int64_t k, const char *state, size_t len) {
    return feat_agg_add_level(r, 0, k, state, len);
}

/* 1 if feature x reads tile k of level (the lifetime tile: k FEAT_TILE_LIFETIME). */
static int reads_tile(const rfeat_t *x, int level, int64_t k) {
    if (x->lifetime || k == FEAT_TILE_LIFETIME) return x->lifetime && k == FEAT_TILE_LIFETIME;
    for (int g = 0; g < x->nrg; g++)
        if (x->rg[g].level == level && k >= x->rg[g].lo && k <= x->rg[g].hi) return 1;
    return 0;
}

feat_err_t feat_agg_add_level(feat_agg_reader_t *r, int level, int64_t k, const char *state, size_t len) {
    const unsigned char *s = (const unsigned char *)state;
    if (!s) len = 0;
    if (len == 0) return FEAT_OK;
    uint32_t nacc;
    if (state_check(s, len, &nacc) != FEAT_OK) return FEAT_ERR_CORRUPT;
    const feat_table_conf_t *c = r->t->conf;
    for (size_t i = 0; i < r->n; i++) {
        rfeat_t *x = &r->f[i];
        if (!reads_tile(x, level, k)) continue;
        const feat_agg_spec_t *sp = &c->aggs[x->spec];
        const unsigned char *pay;
        size_t plen;
        if (!state_find(s, len, nacc, sp->id, (uint8_t)sp->fn, &pay, &plen)) continue;
        /* acc_decode sets n, max_ts and its function's fields; the rest is
         * zeroed field by field: a memset of the whole struct compiled to a
         * rep stos that took half of this function's time (perf, BENCHMARKS.md) */
        acc_t b;
        b.type = 0;
        b.i = 0;
        b.d = 0;
        b.m2 = 0;
        b.count = 0;
        b.items = r->titems;
        b.hll = NULL;
        b.hll_len = 0;
        b.kll = NULL;
        int d = acc_decode(sp, x->ity, pay, plen, &b);
        if (d == DEC_CORRUPT) return FEAT_ERR_CORRUPT;
        if (d == DEC_NOMEM) return FEAT_ERR_NOMEM;
        if (d == DEC_DROP) continue;
        feat_err_t rc = reader_merge(r, x, sp, &b);
        feat_kll_destroy(b.kll);
        if (rc != FEAT_OK) return rc;
    }
    return FEAT_OK;
}

/* The output type of spec sp over input type ity. */
static feat_ftype_t output_type(const feat_agg_spec_t *sp, feat_ftype_t ity) {
    switch (sp->fn) {
    case FEAT_AGG_COUNT:
    case FEAT_AGG_APPROX_DISTINCT: return FEAT_FT_INT64;
    case FEAT_AGG_MEAN:
    case FEAT_AGG_STDDEV:
    case FEAT_AGG_APPROX_QUANTILE: return FEAT_FT_DOUBLE;
    case FEAT_AGG_LAST_N: return FEAT_FT_STRING;
    default: return ity;
    }
}

/* Appends one value of a last_n list as JSON. */
static void json_value(feat_buf_t *b, const feat_value_t *v) {
    switch (v->type) {
    case FEAT_FT_DOUBLE: feat_buf_printf(b, "%.17g", v->v.d); break;
    case FEAT_FT_INT64: feat_buf_printf(b, "%" PRId64, v->v.i); break;
    case FEAT_FT_BOOL: feat_buf_puts(b, v->v.b ? "true" : "false"); break;
    default: feat_buf_json_str(b, v->v.s, v->slen); break;
    }
}

feat_err_t feat_agg_finish(feat_agg_reader_t *r, feat_value_t *out, feat_buf_t *strings) {
    if (r->oom) return FEAT_ERR_NOMEM; /* some ranges were never read */
    const feat_table_conf_t *c = r->t->conf;
    for (size_t i = 0; i < r->n; i++) {
        rfeat_t *x = &r->f[i];
        const feat_agg_spec_t *sp = &c->aggs[x->spec];
        const acc_t *a = &x->a;
        feat_value_t *v = &out[i];
        memset(v, 0, sizeof(*v));
        v->type = (uint8_t)output_type(sp, x->ity);
        v->status = FEAT_ST_PRESENT;
        v->ts = a->n ? a->max_ts : 0;
        r->soff[i] = SIZE_MAX;
        int present = a->n > 0; /* else the empty window's natural value, or NOT_FOUND */
        switch (sp->fn) {
        case FEAT_AGG_COUNT:
            v->v.i = (int64_t)a->n;
            present = 1;
            break;
        case FEAT_AGG_SUM:
            if (v->type == FEAT_FT_INT64) v->v.i = a->n ? a->i : 0;
            else v->v.d = a->n ? a->d : 0;
            present = 1;
            break;
        case FEAT_AGG_MEAN:
            if (a->n) v->v.d = a->type == FEAT_FT_INT64 ? (double)a->i / (double)a->n : a->d / (double)a->n;
            break;
        case FEAT_AGG_MIN:
        case FEAT_AGG_MAX:
            if (v->type == FEAT_FT_INT64) v->v.i = a->i;
            else v->v.d = a->d;
            break;
        case FEAT_AGG_STDDEV:
            present = a->n >= 2;
            if (present) v->v.d = sqrt((a->m2 > 0 ? a->m2 : 0) / (double)(a->n - 1));
            break;
        case FEAT_AGG_LAST:
        case FEAT_AGG_FIRST:
            if (!a->n) break;
            v->v = a->one.v.v;
            if (v->type == FEAT_FT_STRING) {
                r->soff[i] = strings->len;
                v->slen = a->one.v.slen;
                feat_buf_append(strings, a->one.v.v.s, a->one.v.slen);
            }
            break;
        case FEAT_AGG_LAST_N: {
            size_t at = strings->len;
            feat_buf_putc(strings, '[');
            for (uint32_t k = 0; k < a->count; k++) {
                if (k) feat_buf_putc(strings, ',');
                json_value(strings, &a->items[k].v);
            }
            feat_buf_putc(strings, ']');
            r->soff[i] = at;
            v->slen = (uint32_t)(strings->len - at);
            present = 1;
            break;
        }
        case FEAT_AGG_APPROX_DISTINCT:
            v->v.i = a->n ? (int64_t)llround(feat_hll_estimate(x->hll)) : 0;
            present = 1;
            break;
        case FEAT_AGG_APPROX_QUANTILE:
            if (a->n && feat_kll_quantile(x->kll, sp->q, &v->v.d) != FEAT_OK) present = 0;
            break;
        default:
            present = 0;
            break;
        }
        if (!present) {
            memset(v, 0, sizeof(*v));
            v->type = (uint8_t)output_type(sp, x->ity);
            v->status = FEAT_ST_NOT_FOUND;
            r->soff[i] = SIZE_MAX;
        }
    }
    if (strings->oom) return FEAT_ERR_NOMEM;
    for (size_t i = 0; i < r->n; i++)
        if (r->soff[i] != SIZE_MAX) out[i].v.s = strings->data + r->soff[i];
    return FEAT_OK;
}
