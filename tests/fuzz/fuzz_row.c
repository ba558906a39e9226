/*
 * tests/fuzz/fuzz_row.c — libFuzzer target: the online row codec and its
 * merge (store/row.c), on bytes as a damaged store could hold them.
 *
 * Input: byte 0 = length of row a (capped by what follows), then a's bytes,
 * then row b's.  Reading either row must stay inside it; a merge must either
 * report FEAT_ERR_CORRUPT or return a version 2 row that reads to the end,
 * whose entries all come from a or b; when a and b are well formed (entry ids
 * strictly increasing) the merge keeps, per id, the newer entry, and merging
 * its result with b again changes nothing.
 */
#include "fuzz_util.h"

#include "store/row.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    return 0;
}

enum { MAXE = 4096 }; /* more than -max_len=4096 bytes can hold */

/* Reads a row; the number of entries, or -1 when it is corrupt.  *sorted:
 * ids strictly increase. */
static int read_row(const char *r, size_t n, feat_row_entry_t *e, int *sorted) {
    size_t pos = 0;
    int k = 0, has;
    feat_err_t rc;
    *sorted = 1;
    while ((rc = feat_row_next(r, n, &pos, 1, &e[k < MAXE ? k : MAXE - 1], &has)) == FEAT_OK && has) {
        FUZZ_CHECK(pos <= n, "read past the row: %zu > %zu", pos, n);
        if (k > 0 && k < MAXE && e[k].id <= e[k - 1].id) *sorted = 0;
        if (k < MAXE) k++;
        else *sorted = 0; /* too many to check: treat as unsorted */
    }
    return rc == FEAT_OK ? k : -1;
}

static int same_entry(const feat_row_entry_t *x, const feat_row_entry_t *y) {
    if (x->id != y->id || x->type != y->type || x->ts != y->ts || x->offset != y->offset ||
        x->partition != y->partition)
        return 0;
    switch (x->type) {
    case FEAT_FT_DOUBLE: return memcmp(&x->val.v.d, &y->val.v.d, 8) == 0;
    case FEAT_FT_INT64: return x->val.v.i == y->val.v.i;
    case FEAT_FT_BOOL: return x->val.v.b == y->val.v.b;
    default: return x->val.slen == y->val.slen && memcmp(x->val.v.s, y->val.v.s, x->val.slen) == 0;
    }
}

static feat_row_entry_t ea[MAXE], eb[MAXE], eo[MAXE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t la = data[0];
    if (la > size - 1) la = size - 1;
    /* copies, so ASan sees reads past either row */
    char *a = malloc(la ? la : 1), *b = malloc(size - 1 - la ? size - 1 - la : 1);
    memcpy(a, data + 1, la);
    size_t lb = size - 1 - la;
    memcpy(b, data + 1 + la, lb);
    int sa, sb, so;
    int na = read_row(a, la, ea, &sa), nb = read_row(b, lb, eb, &sb);
    feat_buf_t out = FEAT_BUF_INIT, again = FEAT_BUF_INIT;
    int rc = feat_row_merge(a, la, b, lb, &out);
    if (na < 0 || nb < 0) {
        FUZZ_CHECK(rc == FEAT_ERR_CORRUPT, "merge of a corrupt row returned %d", rc);
    } else {
        FUZZ_CHECK(rc == FEAT_OK, "merge of two readable rows returned %d", rc);
        FUZZ_CHECK(out.len >= 1 && (unsigned char)out.data[0] == FEAT_ROW_V2, "merge wrote no version 2 row");
        int no = read_row(out.data, out.len, eo, &so);
        FUZZ_CHECK(no >= 0, "the merged row does not read back");
        for (int k = 0; k < no && k < MAXE; k++) {
            int found = 0;
            for (int i = 0; i < na && !found; i++) found = same_entry(&eo[k], &ea[i]);
            for (int i = 0; i < nb && !found; i++) found = same_entry(&eo[k], &eb[i]);
            FUZZ_CHECK(found, "merged entry id %u is in neither row", eo[k].id);
        }
        if (sa && sb && na < MAXE && nb < MAXE) {
            FUZZ_CHECK(so, "merging sorted rows gave unsorted ids");
            int ids = 0; /* distinct ids of a and b */
            for (int i = 0, j = 0; i < na || j < nb; ids++) {
                if (j >= nb || (i < na && ea[i].id < eb[j].id)) i++;
                else if (i >= na || eb[j].id < ea[i].id) j++;
                else { i++; j++; }
            }
            FUZZ_CHECK(no == ids, "merged %d entries, want %d", no, ids);
            for (int k = 0; k < no; k++) {
                for (int i = 0; i < na; i++)
                    if (ea[i].id == eo[k].id) FUZZ_CHECK(!feat_row_newer(&ea[i], &eo[k]), "an older entry of a won");
                for (int i = 0; i < nb; i++)
                    if (eb[i].id == eo[k].id) FUZZ_CHECK(!feat_row_newer(&eb[i], &eo[k]), "an older entry of b won");
            }
            FUZZ_CHECK(feat_row_merge(out.data, out.len, b, lb, &again) == FEAT_OK, "merging again failed");
            FUZZ_CHECK(again.len == out.len && memcmp(again.data, out.data, out.len) == 0,
                       "merging the result with b again changed it");
        }
    }
    feat_buf_free(&out);
    feat_buf_free(&again);
    free(a);
    free(b);
    return 0;
}
