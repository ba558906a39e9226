/* stats/hll.c — HyperLogLog, p = 12; see hll.h for the format and the bound. */
#include "stats/hll.h"

#include <math.h>
#include <string.h>

#include "stats/stats_util.h"

#define SPARSE_HDR 3u   /* u8 form | u16 count */

/* Register and value of one hash. */
static void hll_split(uint64_t hash, uint32_t *idx, uint8_t *rho) {
    uint64_t x = feat_splitmix64_mix(hash);
    *idx = (uint32_t)(x >> (64 - FEAT_HLL_P));
    uint64_t w = x << FEAT_HLL_P;             /* the other 52 bits, at the top */
    uint8_t r = 1;
    while (r < FEAT_HLL_MAX_RHO && !(w & 0x8000000000000000ull)) {
        w <<= 1;
        r++;
    }
    *rho = r;
}

void feat_hll_clear(feat_hll_t *h) { memset(h->reg, 0, sizeof(h->reg)); }

void feat_hll_add(feat_hll_t *h, uint64_t hash) {
    uint32_t idx;
    uint8_t rho;
    hll_split(hash, &idx, &rho);
    if (h->reg[idx] < rho) h->reg[idx] = rho;
}

void feat_hll_merge(feat_hll_t *dst, const feat_hll_t *src) {
    for (uint32_t j = 0; j < FEAT_HLL_M; j++)
        if (dst->reg[j] < src->reg[j]) dst->reg[j] = src->reg[j];
}

double feat_hll_estimate(const feat_hll_t *h) {
    double sum = 0;
    uint32_t zeros = 0;
    for (uint32_t j = 0; j < FEAT_HLL_M; j++) {
        sum += ldexp(1.0, -(int)h->reg[j]);
        zeros += h->reg[j] == 0;
    }
    if (zeros == FEAT_HLL_M) return 0;
    const double m = FEAT_HLL_M;
    if (zeros > 0) {
        double lc = m * log(m / zeros);
        if (lc <= 2.75 * m) return lc;
    }
    return 0.7213 / (1 + 1.079 / m) * m * m / sum;
}

/* Checks the bytes; *sparse = 1 and *count for the sparse form. */
static feat_err_t hll_parse(const unsigned char *p, size_t len, int *sparse, uint32_t *count) {
    *sparse = 1;
    *count = 0;
    if (len == 0) return FEAT_OK;
    if (p[0] == FEAT_HLL_DENSE) {
        if (len != FEAT_HLL_MAX_BYTES) return FEAT_ERR_CORRUPT;
        for (size_t j = 1; j < len; j++)
            if (p[j] > FEAT_HLL_MAX_RHO) return FEAT_ERR_CORRUPT;
        *sparse = 0;
        return FEAT_OK;
    }
    if (p[0] != FEAT_HLL_SPARSE || len < SPARSE_HDR) return FEAT_ERR_CORRUPT;
    uint32_t c = feat_get_u16(p + 1);
    if (c > FEAT_HLL_SPARSE_MAX || len != SPARSE_HDR + 4 * (size_t)c) return FEAT_ERR_CORRUPT;
    uint32_t prev = 0;
    for (uint32_t i = 0; i < c; i++) {
        uint32_t e = feat_get_u32(p + SPARSE_HDR + 4 * i);
        uint32_t idx = e >> 6, rho = e & 63;
        if (idx >= FEAT_HLL_M || rho == 0 || rho > FEAT_HLL_MAX_RHO) return FEAT_ERR_CORRUPT;
        if (i > 0 && idx <= prev) return FEAT_ERR_CORRUPT;
        prev = idx;
    }
    *count = c;
    return FEAT_OK;
}

feat_err_t feat_hll_check(const void *buf, size_t len) {
    int sparse;
    uint32_t count;
    return hll_parse((const unsigned char *)buf, len, &sparse, &count);
}

feat_err_t feat_hll_merge_bytes(feat_hll_t *dst, const void *buf, size_t len) {
    const unsigned char *p = (const unsigned char *)buf;
    int sparse;
    uint32_t count;
    if (hll_parse(p, len, &sparse, &count) != FEAT_OK) return FEAT_ERR_CORRUPT;
    if (!sparse) {
        for (uint32_t j = 0; j < FEAT_HLL_M; j++)
            if (dst->reg[j] < p[1 + j]) dst->reg[j] = p[1 + j];
        return FEAT_OK;
    }
    for (uint32_t i = 0; i < count; i++) {
        uint32_t e = feat_get_u32(p + SPARSE_HDR + 4 * i);
        uint8_t rho = (uint8_t)(e & 63);
        if (dst->reg[e >> 6] < rho) dst->reg[e >> 6] = rho;
    }
    return FEAT_OK;
}

size_t feat_hll_serialize(const feat_hll_t *h, void *buf) {
    unsigned char *p = (unsigned char *)buf;
    uint32_t nz = 0;
    for (uint32_t j = 0; j < FEAT_HLL_M; j++) nz += h->reg[j] != 0;
    if (nz > FEAT_HLL_SPARSE_MAX) {
        p[0] = FEAT_HLL_DENSE;
        memcpy(p + 1, h->reg, FEAT_HLL_M);
        return FEAT_HLL_MAX_BYTES;
    }
    p[0] = FEAT_HLL_SPARSE;
    feat_put_u16(p + 1, (uint16_t)nz);
    size_t o = SPARSE_HDR;
    for (uint32_t j = 0; j < FEAT_HLL_M; j++) {
        if (!h->reg[j]) continue;
        feat_put_u32(p + o, (j << 6) | h->reg[j]);
        o += 4;
    }
    return o;
}

feat_err_t feat_hll_insert(const void *in, size_t inlen, uint64_t hash, void *out, size_t *outlen) {
    const unsigned char *p = (const unsigned char *)in;
    unsigned char *q = (unsigned char *)out;
    int sparse;
    uint32_t count;
    *outlen = 0;
    if (hll_parse(p, inlen, &sparse, &count) != FEAT_OK) return FEAT_ERR_CORRUPT;
    uint32_t idx;
    uint8_t rho;
    hll_split(hash, &idx, &rho);
    if (!sparse) {
        memcpy(q, p, FEAT_HLL_MAX_BYTES);
        if (q[1 + idx] < rho) q[1 + idx] = rho;
        *outlen = FEAT_HLL_MAX_BYTES;
        return FEAT_OK;
    }
    /* binary search for the first entry with register >= idx */
    uint32_t lo = 0, hi = count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((feat_get_u32(p + SPARSE_HDR + 4 * mid) >> 6) < idx) lo = mid + 1;
        else hi = mid;
    }
    int found = lo < count && (feat_get_u32(p + SPARSE_HDR + 4 * lo) >> 6) == idx;
    if (!found && count == FEAT_HLL_SPARSE_MAX) { /* one more would be larger than dense */
        feat_hll_t h;
        feat_hll_clear(&h);
        (void)feat_hll_merge_bytes(&h, p, inlen);
        if (h.reg[idx] < rho) h.reg[idx] = rho;
        *outlen = feat_hll_serialize(&h, q);
        return FEAT_OK;
    }
    q[0] = FEAT_HLL_SPARSE;
    feat_put_u16(q + 1, (uint16_t)(count + !found));
    if (lo) memcpy(q + SPARSE_HDR, p + SPARSE_HDR, 4 * (size_t)lo);
    uint32_t cur = found ? feat_get_u32(p + SPARSE_HDR + 4 * lo) & 63 : 0;
    feat_put_u32(q + SPARSE_HDR + 4 * (size_t)lo, (idx << 6) | (cur > rho ? cur : rho));
    uint32_t rest = count - lo - (uint32_t)found;
    if (rest)
        memcpy(q + SPARSE_HDR + 4 * ((size_t)lo + 1), p + SPARSE_HDR + 4 * ((size_t)lo + found), 4 * (size_t)rest);
    *outlen = SPARSE_HDR + 4 * ((size_t)count + !found);
    return FEAT_OK;
}
