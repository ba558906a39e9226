/*
 * store/row.h — byte formats of online and offline rows (internal to store/,
 * exposed for unit tests and the fuzzers).
 *
 * Online row, version 2 (store schema_version 2; CHANGELOG): 0x02, then, when
 * the row has entries, the row's source  i64 ts | i64 offset | i32 partition,
 * then entries sorted by feature id:
 *   u16 id | u8 type | value                       (the row's source), or
 *   u16 id | u8 type|0x80 | i64 ts | i64 offset | i32 partition | value
 * An event's operand has one source for all its features: 21 + 11 bytes a
 * double feature instead of version 1's 1 + 31 (the WAL, memtables, flushes
 * and compactions carry every byte of it).
 * Online row, version 1 (still read, never written): 0x01, then entries
 * sorted by feature id:  u16 id | u8 type | i64 ts | i64 offset | i32 partition | value
 * Offline row, version 1: 0x01, then entries: u16 id | u8 type | value
 * (the same bytes as the entries of an online row, version 2, that use the
 * row's source: an event's history row and online operand share them).
 * value: double/int64 = 8 bytes; bool = 1 byte; string = u32 length + bytes.
 * All integers little-endian.
 */
#ifndef FEAT_STORE_ROW_H
#define FEAT_STORE_ROW_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "store/store.h"

#define FEAT_ROW_V1 0x01
#define FEAT_ROW_V2 0x02 /* online rows only */

/* A decoded entry; s points into the row bytes. */
typedef struct feat_row_entry {
    uint16_t id;
    uint8_t type;
    int64_t ts;
    int64_t offset;
    int32_t partition;
    feat_value_t val;
} feat_row_entry_t;

/* Iterates entries of an online (online = 1) or offline row: *pos starts at
 * 0 and moves past each entry read.  FEAT_OK with *has = 1 and *e filled,
 * FEAT_OK with *has = 0 at the end of the row, or FEAT_ERR_CORRUPT on
 * malformed bytes (*has = 0).  The loop:
 *   while ((rc = feat_row_next(row, len, &pos, 1, &e, &has)) == FEAT_OK && has) ...
 *   if (rc) ... */
feat_err_t feat_row_next(const char *row, size_t len, size_t *pos, int online, feat_row_entry_t *e, int *has);

/* Starts a row in b (which must be empty): an online row (version 2) whose
 * source is (ts, offset, partition), or an offline row (version 1). */
void feat_row_begin(feat_buf_t *b, int online, int64_t ts, int64_t offset, int32_t partition);

/* Appends one entry to the row begun in b: entries of an online row go in
 * feature id order; one whose source differs from the row's carries its own. */
void feat_row_put(feat_buf_t *b, int online, uint16_t id, const feat_value_t *v, int64_t ts,
                  int64_t offset, int32_t partition);

/* 1 if entry a beats b: greater (ts, offset, partition). */
static inline int feat_row_newer(const feat_row_entry_t *a, const feat_row_entry_t *b) {
    if (a->ts != b->ts) return a->ts > b->ts;
    if (a->offset != b->offset) return a->offset > b->offset;
    return a->partition > b->partition;
}

/* Merges two online rows (either version) into out (reset first) as a
 * version 2 row: per id, the newer entry.  FEAT_OK, FEAT_ERR_CORRUPT or
 * FEAT_ERR_NOMEM. */
feat_err_t feat_row_merge(const char *a, size_t alen, const char *b, size_t blen, feat_buf_t *out);

#endif
