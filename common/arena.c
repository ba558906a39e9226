/* common/arena.c — see arena.h. */
#include "common/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct feat_arena_block {
    feat_arena_block_t *next;
    size_t size;   /* usable bytes after the header */
    size_t off;
    /* data follows, 16-byte aligned */
};

#define HDR ((sizeof(feat_arena_block_t) + 15) & ~(size_t)15)

void feat_arena_init(feat_arena_t *a, size_t block_size) {
    a->head = NULL;
    a->block_size = block_size ? block_size : 16384;
    a->used = 0;
}

void *feat_arena_alloc(feat_arena_t *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    feat_arena_block_t *b = a->head;
    if (!b || b->size - b->off < n) {
        size_t sz = n > a->block_size ? n : a->block_size;
        if (sz > SIZE_MAX - HDR) return NULL;
        feat_arena_block_t *nb = malloc(HDR + sz);
        if (!nb) return NULL;
        nb->size = sz;
        nb->off = 0;
        nb->next = b;
        a->head = b = nb;
    }
    void *p = (char *)b + HDR + b->off;
    b->off += n;
    a->used += n;
    return p;
}

void *feat_arena_calloc(feat_arena_t *a, size_t n) {
    void *p = feat_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

char *feat_arena_strndup(feat_arena_t *a, const char *s, size_t n) {
    char *p = feat_arena_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n); /* s may be NULL when n is 0 (an empty string value) */
    p[n] = 0;
    return p;
}

void feat_arena_reset(feat_arena_t *a) {
    feat_arena_block_t *b = a->head;
    if (!b) return;
    /* keep the oldest block (normally the default-sized one) */
    while (b->next) {
        feat_arena_block_t *n = b->next;
        free(b);
        b = n;
    }
    b->off = 0;
    a->head = b;
    a->used = 0;
}

void feat_arena_free(feat_arena_t *a) {
    feat_arena_block_t *b = a->head;
    while (b) {
        feat_arena_block_t *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
    a->used = 0;
}
