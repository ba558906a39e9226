/*
 * common/pbwire.h — a minimal reader of the protobuf wire format (header-only).
 *
 * Zero-copy and allocation-free: fields are returned as (number, wire type,
 * varint/fixed value or a slice of the input).  Used where featd must see
 * exact string lengths (protobuf-c hands strings back NUL-terminated, which
 * hides an embedded NUL) or must not allocate.  Groups (wire types 3/4) and
 * malformed input make feat_pb_next() return 0.
 */
#ifndef FEAT_COMMON_PBWIRE_H
#define FEAT_COMMON_PBWIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct feat_pb {
    const unsigned char *p, *end;
} feat_pb_t;

typedef struct feat_pb_field {
    uint32_t num;
    int wt;                  /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    uint64_t u;              /* varint / fixed value */
    const unsigned char *s;  /* length-delimited payload */
    size_t n;
} feat_pb_field_t;

static inline void feat_pb_init(feat_pb_t *r, const void *data, size_t len) {
    r->p = (const unsigned char *)data;
    r->end = r->p + len;
}

/* Reads a varint into *v; 1 on success, 0 on truncated or over-long input. */
static inline int feat_pb_varint(feat_pb_t *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return 0;
        unsigned char b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* Reads the next field; 1 on success, 0 on malformed input. */
static inline int feat_pb_next(feat_pb_t *r, feat_pb_field_t *f) {
    uint64_t tag;
    f->u = 0; /* every member defined whatever the wire type (gcc -O3 checks) */
    f->s = NULL;
    f->n = 0;
    if (!feat_pb_varint(r, &tag)) return 0;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (int)(tag & 7);
    if (f->num == 0 || tag >> 32) return 0;
    switch (f->wt) {
    case 0: return feat_pb_varint(r, &f->u);
    case 1:
        if (r->end - r->p < 8) return 0;
        f->u = 0;
        for (int i = 7; i >= 0; i--) f->u = (f->u << 8) | r->p[i];
        r->p += 8;
        return 1;
    case 5:
        if (r->end - r->p < 4) return 0;
        f->u = (uint64_t)r->p[0] | ((uint64_t)r->p[1] << 8) | ((uint64_t)r->p[2] << 16) | ((uint64_t)r->p[3] << 24);
        r->p += 4;
        return 1;
    case 2: {
        uint64_t len;
        if (!feat_pb_varint(r, &len) || len > (uint64_t)(r->end - r->p)) return 0;
        f->s = r->p;
        f->n = (size_t)len;
        r->p += len;
        return 1;
    }
    default:
        return 0;
    }
}

#endif
