/*
 * common/arena.h — a bump allocator for per-request memory.
 *
 * feat_arena_alloc() hands out 16-byte-aligned memory from blocks; nothing is
 * freed individually.  feat_arena_reset() makes all of it reusable and keeps
 * the first block (and drops the rest), so a per-thread arena stops touching
 * malloc once warm.  Not thread-safe: one owner at a time.
 */
#ifndef FEAT_COMMON_ARENA_H
#define FEAT_COMMON_ARENA_H

#include <stddef.h>

typedef struct feat_arena_block feat_arena_block_t;

typedef struct feat_arena {
    feat_arena_block_t *head;   /* current block; older blocks chained behind */
    size_t block_size;          /* default size of new blocks */
    size_t used;                /* bytes handed out since the last reset */
} feat_arena_t;

void feat_arena_init(feat_arena_t *a, size_t block_size);
/* NULL on allocation failure.  n == 0 returns a valid unique pointer. */
void *feat_arena_alloc(feat_arena_t *a, size_t n);
void *feat_arena_calloc(feat_arena_t *a, size_t n);
char *feat_arena_strndup(feat_arena_t *a, const char *s, size_t n);
void feat_arena_reset(feat_arena_t *a);
void feat_arena_free(feat_arena_t *a);

#endif
