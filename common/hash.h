/* common/hash.h — small, stable hashes (header-only). */
#ifndef FEAT_COMMON_HASH_H
#define FEAT_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64-bit: stable across builds and machines (used in stored data). */
static inline uint64_t feat_hash64(const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Continues a hash with more bytes (h from a previous call). */
static inline uint64_t feat_hash64_more(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Final avalanche so low bits are usable for sharding. */
static inline uint64_t feat_hash_mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

#endif
