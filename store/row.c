/* store/row.c — see row.h. */
#include "store/row.h"

#include <string.h>

#define SRC_LEN 20         /* i64 ts | i64 offset | i32 partition */
#define OWN_SRC 0x80       /* version 2: this entry carries its own source */

static void get_src(const unsigned char *p, feat_row_entry_t *e) {
    e->ts = (int64_t)feat_get_le64(p);
    e->offset = (int64_t)feat_get_le64(p + 8);
    e->partition = (int32_t)feat_get_le32(p + 16);
}

static void put_src(unsigned char *p, int64_t ts, int64_t offset, int32_t partition) {
    feat_put_le64(p, (uint64_t)ts);
    feat_put_le64(p + 8, (uint64_t)offset);
    feat_put_le32(p + 16, (uint32_t)partition);
}

feat_err_t feat_row_next(const char *row, size_t len, size_t *pos, int online, feat_row_entry_t *e, int *has) {
    const unsigned char *p = (const unsigned char *)row;
    size_t i = *pos;
    *has = 0;
    if (len == 0) return FEAT_OK;
    int v2 = online && p[0] == FEAT_ROW_V2;
    if (i == 0) {
        if (p[0] != FEAT_ROW_V1 && !v2) return FEAT_ERR_CORRUPT;
        i = 1;
        if (v2 && len > 1) {
            if (len < 1 + SRC_LEN) return FEAT_ERR_CORRUPT;
            i += SRC_LEN;
        }
    }
    if (i >= len) return FEAT_OK;
    if (len - i < 3) return FEAT_ERR_CORRUPT;
    e->id = (uint16_t)(p[i] | (p[i + 1] << 8));
    e->type = p[i + 2];
    i += 3;
    if (v2 && !(e->type & OWN_SRC)) {
        get_src(p + 1, e);
    } else if (online) {
        if (v2) e->type &= (uint8_t)~OWN_SRC;
        if (len - i < SRC_LEN) return FEAT_ERR_CORRUPT;
        get_src(p + i, e);
        i += SRC_LEN;
    } else {
        e->ts = 0;
        e->offset = 0;
        e->partition = 0;
    }
    e->val.type = e->type;
    e->val.status = FEAT_ST_PRESENT;
    e->val.ts = e->ts;
    e->val.slen = 0;
    switch (e->type) {
    case FEAT_FT_DOUBLE:
    case FEAT_FT_INT64: {
        if (len - i < 8) return FEAT_ERR_CORRUPT;
        uint64_t u = feat_get_le64(p + i);
        if (e->type == FEAT_FT_DOUBLE) memcpy(&e->val.v.d, &u, 8);
        else e->val.v.i = (int64_t)u;
        i += 8;
        break;
    }
    case FEAT_FT_BOOL:
        if (len - i < 1 || p[i] > 1) return FEAT_ERR_CORRUPT;
        e->val.v.b = p[i];
        i += 1;
        break;
    case FEAT_FT_STRING: {
        if (len - i < 4) return FEAT_ERR_CORRUPT;
        uint32_t sl = feat_get_le32(p + i);
        i += 4;
        if (len - i < sl) return FEAT_ERR_CORRUPT;
        e->val.v.s = row + i;
        e->val.slen = sl;
        i += sl;
        break;
    }
    default:
        return FEAT_ERR_CORRUPT;
    }
    *pos = i;
    *has = 1;
    return FEAT_OK;
}

void feat_row_begin(feat_buf_t *b, int online, int64_t ts, int64_t offset, int32_t partition) {
    if (!online) {
        feat_buf_putc(b, FEAT_ROW_V1);
        return;
    }
    unsigned char h[1 + SRC_LEN];
    h[0] = FEAT_ROW_V2;
    put_src(h + 1, ts, offset, partition);
    feat_buf_append(b, h, sizeof(h));
}

void feat_row_put(feat_buf_t *b, int online, uint16_t id, const feat_value_t *v, int64_t ts,
                  int64_t offset, int32_t partition) {
    unsigned char h[3 + SRC_LEN];
    h[0] = (unsigned char)id;
    h[1] = (unsigned char)(id >> 8);
    h[2] = v->type;
    size_t hl = 3;
    if (online) {
        put_src(h + 3, ts, offset, partition);
        if (b->len == 0 || (unsigned char)b->data[0] != FEAT_ROW_V2) {
            hl += SRC_LEN; /* version 1: every entry has its source */
        } else if (b->len < 1 + SRC_LEN || memcmp(b->data + 1, h + 3, SRC_LEN) != 0) {
            h[2] |= OWN_SRC;
            hl += SRC_LEN;
        }
    }
    feat_buf_append(b, h, hl);
    unsigned char w[8];
    switch (v->type) {
    case FEAT_FT_DOUBLE: {
        uint64_t u;
        memcpy(&u, &v->v.d, 8);
        feat_put_le64(w, u);
        feat_buf_append(b, w, 8);
        break;
    }
    case FEAT_FT_INT64:
        feat_put_le64(w, (uint64_t)v->v.i);
        feat_buf_append(b, w, 8);
        break;
    case FEAT_FT_BOOL:
        feat_buf_putc(b, v->v.b ? 1 : 0);
        break;
    case FEAT_FT_STRING:
        feat_put_le32(w, v->slen);
        feat_buf_append(b, w, 4);
        feat_buf_append(b, v->v.s, v->slen);
        break;
    default:
        break;
    }
}

/* Appends entry e: as a raw copy of its bytes [start, end) when row is
 * version 2 and e uses the row's source, which out shares. */
static void put_entry(feat_buf_t *out, const char *row, size_t start, size_t end, const feat_row_entry_t *e,
                      int same_src) {
    if (same_src && !((unsigned char)row[start + 2] & OWN_SRC)) feat_buf_append(out, row + start, end - start);
    else feat_row_put(out, 1, e->id, &e->val, e->ts, e->offset, e->partition);
}

feat_err_t feat_row_merge(const char *a, size_t alen, const char *b, size_t blen, feat_buf_t *out) {
    feat_buf_reset(out);
    size_t pa = 0, pb = 0;
    feat_row_entry_t ea, eb;
    int ha, hb; /* a, b: an entry in ea, eb */
    feat_err_t ra = feat_row_next(a, alen, &pa, 1, &ea, &ha);
    feat_err_t rb = feat_row_next(b, blen, &pb, 1, &eb, &hb);
    if (ra || rb) return FEAT_ERR_CORRUPT;
    if (!ha && !hb) { /* both empty */
        feat_buf_putc(out, FEAT_ROW_V2);
        return out->oom ? FEAT_ERR_NOMEM : FEAT_OK;
    }
    /* out's source: the newer operand's (b's) when it has entries */
    int a2 = alen > 1 && (unsigned char)a[0] == FEAT_ROW_V2;
    int b2 = blen > 1 && (unsigned char)b[0] == FEAT_ROW_V2;
    if (hb && b2) feat_buf_append(out, b, 1 + SRC_LEN);
    else if (hb) feat_row_begin(out, 1, eb.ts, eb.offset, eb.partition);
    else if (a2) feat_buf_append(out, a, 1 + SRC_LEN);
    else feat_row_begin(out, 1, ea.ts, ea.offset, ea.partition);
    if (out->oom) return FEAT_ERR_NOMEM;
    /* entries of a version 2 input with out's source are copied as they are */
    int a_same = a2 && memcmp(a + 1, out->data + 1, SRC_LEN) == 0;
    int b_same = b2 && memcmp(b + 1, out->data + 1, SRC_LEN) == 0;
    size_t sa = a2 ? 1 + SRC_LEN : 1, sb = b2 ? 1 + SRC_LEN : 1; /* where the current entries start */
    while (ha || hb) {
        if (!hb || (ha && ea.id < eb.id)) {
            put_entry(out, a, sa, pa, &ea, a_same);
            sa = pa;
            ra = feat_row_next(a, alen, &pa, 1, &ea, &ha);
        } else if (!ha || eb.id < ea.id) {
            put_entry(out, b, sb, pb, &eb, b_same);
            sb = pb;
            rb = feat_row_next(b, blen, &pb, 1, &eb, &hb);
        } else {
            if (feat_row_newer(&eb, &ea)) put_entry(out, b, sb, pb, &eb, b_same);
            else put_entry(out, a, sa, pa, &ea, a_same);
            sa = pa;
            sb = pb;
            ra = feat_row_next(a, alen, &pa, 1, &ea, &ha);
            rb = feat_row_next(b, blen, &pb, 1, &eb, &hb);
        }
        if (ra || rb) return FEAT_ERR_CORRUPT;
    }
    return out->oom ? FEAT_ERR_NOMEM : FEAT_OK;
}
