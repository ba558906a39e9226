/* proto/pbjson.c — see pbjson.h. */
#include "proto/pbjson.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"
#include "common/json.h"
#include "common/utf8.h"

#define MAX_TEXT (16u << 20)
#define MAX_ELEMENTS 1000000u    /* of one repeated field or map */
#define MEMBER(type, msg, off) (*(type *)((char *)(msg) + (off)))

/* ---- base64 ----------------------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_put(feat_buf_t *b, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < n ? B64[v >> 6 & 63] : '=', i + 2 < n ? B64[v & 63] : '='};
        feat_buf_append(b, q, 4);
    }
}

static int b64_val(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* s[0..n) (standard or URL alphabet, padding optional) into out (n bytes at least); -1 if not base64. */
static long b64_get(const char *s, size_t n, uint8_t *out) {
    while (n && s[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(s[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)o;
}

/* ---- rendering -------------------------------------------------------------------------------- */

static int is_map(const ProtobufCFieldDescriptor *f) {
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return 0;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t nl = strlen(d->name);
    return d->n_fields == 2 && nl > 5 && !strcmp(d->name + nl - 5, "Entry") && !strcmp(d->fields[0].name, "key") &&
           !strcmp(d->fields[1].name, "value");
}

static void put_double(feat_buf_t *b, double d) {
    if (isnan(d)) feat_buf_puts(b, "\"NaN\"");
    else if (isinf(d)) feat_buf_puts(b, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else feat_buf_printf(b, "%.17g", d);
}

/* One value of field f at p (a pointer to the value's storage). */
static void put_value(feat_buf_t *b, const ProtobufCFieldDescriptor *f, const void *p) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        feat_buf_printf(b, "%d", *(const int32_t *)p); break;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: feat_buf_printf(b, "%u", *(const uint32_t *)p); break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        feat_buf_printf(b, "%lld", (long long)*(const int64_t *)p); break;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        feat_buf_printf(b, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case PROTOBUF_C_TYPE_FLOAT: put_double(b, *(const float *)p); break;
    case PROTOBUF_C_TYPE_DOUBLE: put_double(b, *(const double *)p); break;
    case PROTOBUF_C_TYPE_BOOL: feat_buf_puts(b, *(const protobuf_c_boolean *)p ? "true" : "false"); break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        if (ev) feat_buf_printf(b, "\"%s\"", ev->name);
        else feat_buf_printf(b, "%d", *(const int *)p);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        feat_buf_json_str(b, s ? s : "", s ? strlen(s) : 0);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *d = p;
        feat_buf_putc(b, '"');
        b64_put(b, d->data, d->len);
        feat_buf_putc(b, '"');
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        if (m) feat_pbjson_render(m, b);
        else feat_buf_puts(b, "null");
        break;
    }
    }
}

static size_t elem_size(const ProtobufCFieldDescriptor *f) {
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM: return sizeof(int);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    default: return 4;
    }
}

void feat_pbjson_render(const ProtobufCMessage *m, feat_buf_t *b) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    int first = 1;
    feat_buf_putc(b, '{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = (const char *)m + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (MEMBER(uint32_t, m, f->quantifier_offset) != f->id) continue;
        } else if (f->label != PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                   !*(ProtobufCMessage *const *)p) {
            continue;   /* a message field not set */
        }
        feat_buf_printf(b, "%s\"%s\":", first ? "" : ",", f->name);
        first = 0;
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            put_value(b, f, p);
            continue;
        }
        size_t n = MEMBER(size_t, m, f->quantifier_offset);
        const char *arr = *(char *const *)p;
        if (is_map(f)) {
            const ProtobufCMessageDescriptor *ed = f->descriptor;
            feat_buf_putc(b, '{');
            for (size_t k = 0; k < n; k++) {
                const ProtobufCMessage *e = ((ProtobufCMessage *const *)arr)[k];
                const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
                if (k) feat_buf_putc(b, ',');
                if (kf->type == PROTOBUF_C_TYPE_STRING) {
                    put_value(b, kf, (const char *)e + kf->offset);
                } else {
                    feat_buf_putc(b, '"');
                    put_value(b, kf, (const char *)e + kf->offset);
                    feat_buf_putc(b, '"');
                }
                feat_buf_putc(b, ':');
                put_value(b, vf, (const char *)e + vf->offset);
            }
            feat_buf_putc(b, '}');
            continue;
        }
        feat_buf_putc(b, '[');
        for (size_t k = 0; k < n; k++) {
            if (k) feat_buf_putc(b, ',');
            put_value(b, f, arr + k * elem_size(f));
        }
        feat_buf_putc(b, ']');
    }
    feat_buf_putc(b, '}');
}

feat_err_t feat_pbjson_from_pb(const ProtobufCMessageDescriptor *desc, const uint8_t *pb, size_t len, feat_buf_t *out) {
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, pb);
    if (!m) return FEAT_ERR_CORRUPT;
    feat_pbjson_render(m, out);
    protobuf_c_message_free_unpacked(m, NULL);
    return out->oom ? FEAT_ERR_NOMEM : FEAT_OK;
}

/* ---- parsing ---------------------------------------------------------------------------------- */

typedef struct parse {
    const char *text;
    const feat_json_tok_t *t;
    feat_arena_t *a;
    char *err;
    size_t errlen;
    char path[256];          /* where we are: "rows[3].ts_ms" */
    int nomem;
} parse_t;

static feat_err_t fail(parse_t *p, const char *fmt, ...) {
    if (!p->err || !p->errlen) return FEAT_ERR_INVALID;
    va_list ap;
    va_start(ap, fmt);
    char what[160];
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%s%s%s", p->path, p->path[0] ? ": " : "", what);
    return FEAT_ERR_INVALID;
}

/* The token's string (unescaped, NUL-terminated, in the arena), or NULL with *rc. */
static char *tok_str(parse_t *p, int i, size_t *n, feat_err_t *rc) {
    const feat_json_tok_t *t = &p->t[i];
    size_t cap = t->end - t->start + 1, len = 0;
    char *s = feat_arena_alloc(p->a, cap);
    if (!s) {
        *rc = FEAT_ERR_NOMEM;
        return NULL;
    }
    if (feat_json_unescape(p->text, t, s, cap, &len) != FEAT_OK) {
        *rc = fail(p, "bad string");
        return NULL;
    }
    s[len] = 0;
    if (memchr(s, 0, len)) {
        *rc = fail(p, "a string holds a NUL byte");
        return NULL;
    }
    if (n) *n = len;
    return s;
}

/* A field of d named name (snake_case, or lowerCamelCase). */
static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessageDescriptor *d, const char *name) {
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
    if (f) return f;
    for (unsigned i = 0; i < d->n_fields; i++) { /* lowerCamelCase: entity_keys as entityKeys */
        const char *s = d->fields[i].name, *c = name;
        for (; *s && *c; s++, c++) {
            if (*s == '_' && s[1] && *c == s[1] - 32 && s[1] >= 'a' && s[1] <= 'z') s++;
            else if (*s != *c) break;
        }
        if (!*s && !*c) return &d->fields[i];
    }
    return NULL;
}

static feat_err_t parse_message(parse_t *p, const ProtobufCMessageDescriptor *d, int i, ProtobufCMessage **out,
                                int depth);

static feat_err_t parse_int(parse_t *p, int i, int is_unsigned, int64_t lo, int64_t hi, uint64_t uhi, void *dst,
                            size_t size) {
    const feat_json_tok_t *t = &p->t[i];
    char buf[32];
    size_t n = t->end - t->start;
    if ((t->type != FEAT_JSON_NUMBER && t->type != FEAT_JSON_STRING) || n == 0 || n >= sizeof(buf) || t->escaped)
        return fail(p, "not an integer");
    memcpy(buf, p->text + t->start, n);
    buf[n] = 0;
    if (!(buf[0] >= '0' && buf[0] <= '9') && !(buf[0] == '-' && !is_unsigned)) /* strtoll takes blanks and '+' */
        return fail(p, is_unsigned ? "not an unsigned integer" : "not an integer");
    char *end;
    errno = 0;
    if (is_unsigned) {
        if (buf[0] == '-') return fail(p, "not an unsigned integer");
        unsigned long long v = strtoull(buf, &end, 10);
        if (errno || *end || v > uhi) return fail(p, "not an unsigned integer in range");
        if (size == 8) *(uint64_t *)dst = v;
        else *(uint32_t *)dst = (uint32_t)v;
    } else {
        long long v = strtoll(buf, &end, 10);
        if (errno || *end || v < lo || v > hi) return fail(p, "not an integer in range");
        if (size == 8) *(int64_t *)dst = v;
        else *(int32_t *)dst = (int32_t)v;
    }
    return FEAT_OK;
}

/* One value (token i) of field f into dst (its storage). */
static feat_err_t parse_value(parse_t *p, const ProtobufCFieldDescriptor *f, int i, void *dst, int depth) {
    const feat_json_tok_t *t = &p->t[i];
    feat_err_t rc = FEAT_OK;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        return parse_int(p, i, 0, INT32_MIN, INT32_MAX, 0, dst, 4);
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: return parse_int(p, i, 1, 0, 0, UINT32_MAX, dst, 4);
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        return parse_int(p, i, 0, INT64_MIN, INT64_MAX, 0, dst, 8);
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: return parse_int(p, i, 1, 0, 0, UINT64_MAX, dst, 8);
    case PROTOBUF_C_TYPE_FLOAT: case PROTOBUF_C_TYPE_DOUBLE: {
        double v;
        if (t->type == FEAT_JSON_STRING) {
            if (feat_json_str_eq(p->text, t, "NaN", 3)) v = NAN;
            else if (feat_json_str_eq(p->text, t, "Infinity", 8)) v = INFINITY;
            else if (feat_json_str_eq(p->text, t, "-Infinity", 9)) v = -INFINITY;
            else return fail(p, "not a number");
        } else if (t->type != FEAT_JSON_NUMBER || feat_json_double(p->text, t, &v) != FEAT_OK) {
            return fail(p, "not a number");
        }
        if (f->type == PROTOBUF_C_TYPE_FLOAT) *(float *)dst = (float)v;
        else *(double *)dst = v;
        return FEAT_OK;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (t->type != FEAT_JSON_TRUE && t->type != FEAT_JSON_FALSE) return fail(p, "not true or false");
        *(protobuf_c_boolean *)dst = t->type == FEAT_JSON_TRUE;
        return FEAT_OK;
    case PROTOBUF_C_TYPE_ENUM: {
        if (t->type == FEAT_JSON_NUMBER) {
            int32_t v;
            if ((rc = parse_int(p, i, 0, INT32_MIN, INT32_MAX, 0, &v, 4))) return rc;
            *(int *)dst = v;
            return FEAT_OK;
        }
        if (t->type != FEAT_JSON_STRING) return fail(p, "not an enum value's name");
        char *s = tok_str(p, i, NULL, &rc);
        if (!s) return rc;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, s);
        if (!ev) return fail(p, "\"%.40s\" is not a value of %s", s, ((const ProtobufCEnumDescriptor *)f->descriptor)->name);
        *(int *)dst = ev->value;
        return FEAT_OK;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (t->type != FEAT_JSON_STRING) return fail(p, "not a string");
        char *s = tok_str(p, i, NULL, &rc);
        if (!s) return rc;
        *(char **)dst = s;
        return FEAT_OK;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        if (t->type != FEAT_JSON_STRING || t->escaped) return fail(p, "not a base64 string");
        size_t n = t->end - t->start;
        uint8_t *bytes = feat_arena_alloc(p->a, n + 1);
        if (!bytes) return FEAT_ERR_NOMEM;
        long got = b64_get(p->text + t->start, n, bytes);
        if (got < 0) return fail(p, "not base64");
        ((ProtobufCBinaryData *)dst)->data = bytes;
        ((ProtobufCBinaryData *)dst)->len = (size_t)got;
        return FEAT_OK;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return parse_message(p, f->descriptor, i, (ProtobufCMessage **)dst, depth + 1);
    }
    return fail(p, "unsupported field type");
}

/* Appends to p->path; returns the old length to restore. */
static size_t path_push(parse_t *p, const char *fmt, const char *s, size_t k) {
    size_t at = strlen(p->path);
    if (at < sizeof(p->path) - 1) snprintf(p->path + at, sizeof(p->path) - at, fmt, s, k);
    return at;
}

static feat_err_t parse_field(parse_t *p, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, int v, int depth) {
    const feat_json_tok_t *t = &p->t[v];
    char *base = (char *)m;
    if (t->type == FEAT_JSON_NULL) return FEAT_OK; /* not set */
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        feat_err_t rc = parse_value(p, f, v, base + f->offset, depth);
        if (!rc && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
            if (*which && *which != f->id) return fail(p, "a second member of a oneof");
            *which = f->id;
        } else if (!rc && f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                   f->type != PROTOBUF_C_TYPE_STRING && f->quantifier_offset) {
            MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
        }
        return rc;
    }
    size_t es = elem_size(f);
    if (is_map(f)) {
        if (t->type != FEAT_JSON_OBJECT) return fail(p, "not an object");
        if (t->size > MAX_ELEMENTS) return fail(p, "more than %u entries", MAX_ELEMENTS);
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        if (ed->fields[0].type != PROTOBUF_C_TYPE_STRING) return fail(p, "a map whose keys are not strings");
        ProtobufCMessage **arr = feat_arena_calloc(p->a, (t->size + 1) * sizeof(*arr));
        if (!arr) return FEAT_ERR_NOMEM;
        int k = v + 1;
        for (uint32_t e = 0; e < t->size; e++) {
            ProtobufCMessage *em = feat_arena_calloc(p->a, ed->sizeof_message);
            if (!em) return FEAT_ERR_NOMEM;
            protobuf_c_message_init(ed, em);
            feat_err_t rc;
            size_t klen;
            char *key = tok_str(p, k, &klen, &rc);
            if (!key) return rc;
            size_t at = path_push(p, ".%s", key, 0);
            const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
            if (kf->type == PROTOBUF_C_TYPE_STRING) {
                MEMBER(char *, em, kf->offset) = key;
                rc = FEAT_OK;
            } else {
                rc = parse_int(p, k, 0, INT64_MIN, INT64_MAX, 0, (char *)em + kf->offset, elem_size(kf));
            }
            if (!rc) rc = parse_field(p, em, vf, p->t[k].next, depth + 1);
            if (rc) return rc;
            p->path[at] = 0;
            arr[e] = em;
            k = p->t[p->t[k].next].next;
        }
        MEMBER(size_t, m, f->quantifier_offset) = t->size;
        MEMBER(ProtobufCMessage **, m, f->offset) = arr;
        return FEAT_OK;
    }
    if (t->type != FEAT_JSON_ARRAY) return fail(p, "not an array");
    if (t->size > MAX_ELEMENTS) return fail(p, "more than %u elements", MAX_ELEMENTS);
    char *arr = feat_arena_calloc(p->a, (t->size + 1) * es);
    if (!arr) return FEAT_ERR_NOMEM;
    int k = v + 1;
    for (uint32_t e = 0; e < t->size; e++) {
        size_t at = path_push(p, "%s[%zu]", "", e);
        if (p->t[k].type == FEAT_JSON_NULL) return fail(p, "null in an array");
        feat_err_t rc = parse_value(p, f, k, arr + e * es, depth);
        if (rc) return rc;
        p->path[at] = 0;
        k = p->t[k].next;
    }
    MEMBER(size_t, m, f->quantifier_offset) = t->size;
    MEMBER(char *, m, f->offset) = arr;
    return FEAT_OK;
}

static feat_err_t parse_message(parse_t *p, const ProtobufCMessageDescriptor *d, int i, ProtobufCMessage **out,
                                int depth) {
    const feat_json_tok_t *t = &p->t[i];
    if (depth > FEAT_PBJSON_MAX_DEPTH) return FEAT_ERR_TOO_LARGE;
    if (t->type != FEAT_JSON_OBJECT) return fail(p, "not an object");
    ProtobufCMessage *m = feat_arena_calloc(p->a, d->sizeof_message);
    if (!m) return FEAT_ERR_NOMEM;
    protobuf_c_message_init(d, m);
    int k = i + 1;
    for (uint32_t e = 0; e < t->size; e++) {
        feat_err_t rc;
        char *name = tok_str(p, k, NULL, &rc);
        if (!name) return rc;
        const ProtobufCFieldDescriptor *f = field_named(d, name);
        size_t at = path_push(p, strlen(p->path) ? ".%s" : "%s", name, 0);
        if (!f) return fail(p, "no such field in %s", d->name);
        if ((rc = parse_field(p, m, f, p->t[k].next, depth))) return rc;
        p->path[at] = 0;
        k = p->t[p->t[k].next].next;
    }
    *out = m;
    return FEAT_OK;
}

feat_err_t feat_pbjson_to_pb(const ProtobufCMessageDescriptor *desc, const char *json, size_t len, feat_buf_t *out,
                             char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    if (len > MAX_TEXT) return FEAT_ERR_TOO_LARGE;
    /* tokens as the text needs them: start small, double up to the most any text of len can need */
    size_t most = len / 2 + 16, ntoks = most < 4096 ? most : 4096, ntok = 0, off = 0;
    feat_json_tok_t *toks = NULL;
    feat_err_t rc;
    for (;;) {
        free(toks);
        if (!(toks = malloc(ntoks * sizeof(*toks)))) return FEAT_ERR_NOMEM;
        rc = feat_json_parse(json, len, toks, ntoks, FEAT_PBJSON_MAX_DEPTH * 2 + 2, &ntok, &off);
        if (rc != FEAT_ERR_TOO_LARGE || ntoks == most) break;
        ntoks = ntoks > most / 2 ? most : ntoks * 2;
    }
    if (rc) {
        if (err && errlen) snprintf(err, errlen, "%s at byte %zu", rc == FEAT_ERR_TOO_LARGE ? "nested too deep" : "not JSON", off);
        free(toks);
        return rc == FEAT_ERR_TOO_LARGE ? FEAT_ERR_TOO_LARGE : FEAT_ERR_INVALID;
    }
    feat_arena_t a;
    feat_arena_init(&a, 4096);
    parse_t p = {json, toks, &a, err, errlen, "", 0};
    ProtobufCMessage *m = NULL;
    rc = parse_message(&p, desc, 0, &m, 0);
    if (rc == FEAT_ERR_TOO_LARGE && err && errlen) snprintf(err, errlen, "nested deeper than %d", FEAT_PBJSON_MAX_DEPTH);
    if (!rc) {
        size_t n = protobuf_c_message_get_packed_size(m), at = out->len;
        if (feat_buf_grow(out, n + 1) != FEAT_OK) rc = FEAT_ERR_NOMEM;
        else out->len = at + protobuf_c_message_pack(m, (uint8_t *)out->data + at);
    }
    feat_arena_free(&a);
    free(toks);
    return rc;
}
