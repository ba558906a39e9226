/*
 * common/hash.h — featd's hashes and its checksum, header-only: FNV-1a 64,
 * two finalizers that spread its bits, and CRC-32.
 *
 * Stored data depends on these values, so they never change: catfreq blobs
 * key categories by feat_hash_bytes; KLL, catfreq and model blobs carry a
 * feat_crc32 of their bytes; a trained model's hash bucket of a category is
 * feat_fnv1a64 mod buckets; reference sketches are seeded by feat_hash64.  Nothing here allocates or keeps
 * state.  Valid C and C++, and needs no library, so train/core (built on its
 * own, and by nvcc) includes it by path without linking common/.
 */
#ifndef FEAT_COMMON_HASH_H
#define FEAT_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* FNV-1a's step over len more bytes, from h (a start below, or the result
 * of an earlier call). */
static inline uint64_t feat_hash64_more(uint64_t h, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;     /* FNV prime */
    }
    return h;
}

/* FNV-1a, 64-bit, as published: ("", 0) = 0xcbf29ce484222325,
 * ("a", 1) = 0xaf63dc4c8601ec8c. */
static inline uint64_t feat_fnv1a64(const void *data, size_t len) {
    return feat_hash64_more(0xcbf29ce484222325ull /* offset basis */, data, len);
}

/* featd's general-purpose 64-bit hash: FNV-1a's step from 1469598103934665603,
 * which is the published offset basis (14695981039346656037) without its
 * last digit.  Kept as it is: KLL sketch seeds, and so stored reference
 * sketches, derive from it.  Not interchangeable with feat_fnv1a64. */
static inline uint64_t feat_hash64(const void *data, size_t len) {
    return feat_hash64_more(1469598103934665603ull, data, len);
}

/* MurmurHash3's 64-bit finalizer: every output bit depends on every input
 * bit, so low bits are usable for sharding and table slots. */
static inline uint64_t feat_hash_mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* splitmix64's finalizer (Stafford's variant 13), the output step of the
 * splitmix64 generator. */
static inline uint64_t feat_splitmix64_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* FNV-1a 64 followed by splitmix64's finalizer: the key of a category in
 * stored catfreq blobs. */
static inline uint64_t feat_hash_bytes(const void *data, size_t len) {
    return feat_splitmix64_mix(feat_fnv1a64(data, len));
}

/* CRC-32 (IEEE 802.3, reflected polynomial 0xedb88320: zlib's crc32()) of
 * len bytes, continuing from crc (start with 0).  A nibble table: 64 bytes
 * of table, two lookups per byte. */
static inline uint32_t feat_crc32(uint32_t crc, const void *data, size_t len) {
    static const uint32_t nibble[16] = {
        0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u, 0x4db26158u, 0x5005713cu,
        0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu, 0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
    };
    const unsigned char *p = (const unsigned char *)data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ nibble[crc & 15u];
        crc = (crc >> 4) ^ nibble[crc & 15u];
    }
    return ~crc;
}

/* Kafka's murmur2 (the Java client's Utils.murmur2, seed 0x9747b28c), the
 * hash of the Java producer's default partitioner and of librdkafka's
 * "murmur2" partitioners: a key's partition is
 * (feat_murmur2(key) & 0x7fffffff) % partitions.  librdkafka's own default
 * ("consistent_random") is feat_crc32(0, key) % partitions. */
static inline uint32_t feat_murmur2(const void *data, size_t len) {
    const uint32_t m = 0x5bd1e995u;
    const unsigned char *p = data;
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len & 3) {
    case 3: h ^= (uint32_t)p[i + 2] << 16; /* fall through */
    case 2: h ^= (uint32_t)p[i + 1] << 8;  /* fall through */
    case 1: h ^= p[i]; h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

#ifdef __cplusplus
}
#endif
#endif
