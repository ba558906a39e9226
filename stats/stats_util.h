/*
 * stats/stats_util.h — internal helpers of the statistics library:
 * little-endian encoding, sorting of doubles, a seedable RNG.  Its hashes
 * and CRC-32 are common/hash.h's (included here).  Not a public interface:
 * only stats sources and their tests include it.  Every function here is
 * pure (no allocation, no global state).
 */
#ifndef FEAT_STATS_STATS_UTIL_H
#define FEAT_STATS_STATS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/hash.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- little-endian encoding (portable: byte by byte) ---- */
static inline void feat_put_u16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
}
static inline void feat_put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void feat_put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static inline void feat_put_f64(unsigned char *p, double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);          /* IEEE-754 binary64 bit pattern */
    feat_put_u64(p, v);
}
static inline uint16_t feat_get_u16(const unsigned char *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t feat_get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline uint64_t feat_get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static inline double feat_get_f64(const unsigned char *p) {
    uint64_t v = feat_get_u64(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* Sorts a[0..n) ascending in place; a must not contain NaN.  No allocation. */
void feat_sort_f64(double *a, size_t n);

/* splitmix64: state advances by a constant; output well mixed. */
static inline uint64_t feat_splitmix64(uint64_t *state) {
    return feat_splitmix64_mix(*state += 0x9E3779B97F4A7C15ull);
}

#ifdef __cplusplus
}
#endif
#endif
