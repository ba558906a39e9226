/* store/row.c — see row.h. */
#include "store/row.h"

#include <string.h>

int feat_row_next(const char *row, size_t len, size_t *pos, int online, feat_row_entry_t *e) {
    const unsigned char *p = (const unsigned char *)row;
    size_t i = *pos;
    if (i == 0) {
        if (len == 0) return 0;
        if (p[0] != FEAT_ROW_V1) return FEAT_ERR_CORRUPT;
        i = 1;
    }
    if (i >= len) return 0;
    size_t hdr = online ? 23 : 3;
    if (len - i < hdr) return FEAT_ERR_CORRUPT;
    e->id = (uint16_t)(p[i] | (p[i + 1] << 8));
    e->type = p[i + 2];
    if (online) {
        e->ts = (int64_t)feat_get_le64(p + i + 3);
        e->offset = (int64_t)feat_get_le64(p + i + 11);
        e->partition = (int32_t)feat_get_le32(p + i + 19);
    } else {
        e->ts = 0;
        e->offset = 0;
        e->partition = 0;
    }
    i += hdr;
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
    return 1;
}

void feat_row_put(feat_buf_t *b, int online, uint16_t id, const feat_value_t *v, int64_t ts,
                  int64_t offset, int32_t partition) {
    unsigned char h[23];
    h[0] = (unsigned char)id;
    h[1] = (unsigned char)(id >> 8);
    h[2] = v->type;
    size_t hl = 3;
    if (online) {
        feat_put_le64(h + 3, (uint64_t)ts);
        feat_put_le64(h + 11, (uint64_t)offset);
        feat_put_le32(h + 19, (uint32_t)partition);
        hl = 23;
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

/* Appends the raw bytes of the entry that ended at `end` and began at `start`. */
static void copy_entry(feat_buf_t *out, const char *row, size_t start, size_t end) {
    feat_buf_append(out, row + start, end - start);
}

int feat_row_merge(const char *a, size_t alen, const char *b, size_t blen, feat_buf_t *out) {
    feat_buf_reset(out);
    feat_buf_putc(out, FEAT_ROW_V1);
    size_t pa = 0, pb = 0, sa = 0, sb = 0;
    feat_row_entry_t ea, eb;
    int ha = feat_row_next(a, alen, &pa, 1, &ea);
    int hb = feat_row_next(b, blen, &pb, 1, &eb);
    sa = alen ? 1 : 0;
    sb = blen ? 1 : 0;
    while (ha == 1 || hb == 1) {
        if (ha < 0 || hb < 0) return FEAT_ERR_CORRUPT;
        if (hb != 1 || (ha == 1 && ea.id < eb.id)) {
            copy_entry(out, a, sa, pa);
            sa = pa;
            ha = feat_row_next(a, alen, &pa, 1, &ea);
        } else if (ha != 1 || eb.id < ea.id) {
            copy_entry(out, b, sb, pb);
            sb = pb;
            hb = feat_row_next(b, blen, &pb, 1, &eb);
        } else {
            if (feat_row_newer(&eb, &ea)) copy_entry(out, b, sb, pb);
            else copy_entry(out, a, sa, pa);
            sa = pa;
            sb = pb;
            ha = feat_row_next(a, alen, &pa, 1, &ea);
            hb = feat_row_next(b, blen, &pb, 1, &eb);
        }
    }
    if (ha < 0 || hb < 0) return FEAT_ERR_CORRUPT;
    return out->oom ? FEAT_ERR_NOMEM : FEAT_OK;
}
