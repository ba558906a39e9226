/* serve/lookup.c — see lookup.h. */
#include "serve/lookup.h"

#include <stdlib.h>
#include <string.h>

static feat_err_t reserve(feat_lookup_scratch_t *ls, size_t n) {
    if (n <= ls->capkeys) return FEAT_OK;
    size_t c = ls->capkeys ? ls->capkeys : 16;
    while (c < n) c *= 2;
    size_t *miss = realloc(ls->miss, c * sizeof(*miss));
    if (miss) ls->miss = miss;
    uint64_t *t = realloc(ls->tickets, c * sizeof(*t));
    if (t) ls->tickets = t;
    int *p = realloc(ls->put, c * sizeof(*p));
    if (p) ls->put = p;
    const char **mk = realloc((void *)ls->mkeys, c * sizeof(*mk));
    if (mk) ls->mkeys = mk;
    size_t *ml = realloc(ls->mlens, c * sizeof(*ml));
    if (ml) ls->mlens = ml;
    int *f = realloc(ls->found, c * sizeof(*f));
    if (f) ls->found = f;
    if (!miss || !t || !p || !mk || !ml || !f) return FEAT_ERR_NOMEM;
    ls->capkeys = c;
    return FEAT_OK;
}

feat_err_t feat_online_lookup(feat_store_t *st, feat_cache_t *cache, const feat_table_t *t, size_t n,
                              const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                              int64_t now_ms, feat_value_t *vals, feat_lookup_scratch_t *ls) {
    if (reserve(ls, n)) return FEAT_ERR_NOMEM;
    size_t nmiss = 0;
    for (size_t k = 0; k < n; k++) {
        int r = cache ? feat_cache_get(cache, t, keys[k], klens[k], fidx, nf, now_ms, vals + k * nf, &ls->strings,
                                       &ls->tickets[nmiss])
                      : FEAT_CACHE_BYPASS;
        if (r == FEAT_CACHE_HIT) continue;
        ls->put[nmiss] = r == FEAT_CACHE_MISS;
        ls->mkeys[nmiss] = keys[k];
        ls->mlens[nmiss] = klens[k];
        ls->miss[nmiss++] = k;
    }
    if (ls->strings.oom) return FEAT_ERR_NOMEM;
    /* hits' strings: offsets into ls->strings until now (it may have moved) */
    for (size_t k = 0, m = 0; k < n; k++) {
        if (m < nmiss && ls->miss[m] == k) { m++; continue; }
        feat_cache_fix_strings(vals + k * nf, nf, &ls->strings);
    }
    if (!nmiss) return FEAT_OK;
    if (nmiss > ls->caprows) {
        feat_buf_t *nr = realloc(ls->rows, nmiss * sizeof(*nr));
        if (!nr) return FEAT_ERR_NOMEM;
        memset(nr + ls->caprows, 0, (nmiss - ls->caprows) * sizeof(*nr));
        ls->rows = nr;
        ls->caprows = nmiss;
    }
    ls->nrows = nmiss;
    feat_err_t rc = feat_store_get_rows(st, t, nmiss, ls->mkeys, ls->mlens, ls->rows, ls->found);
    if (rc) return rc;
    for (size_t i = 0; i < nmiss; i++) {
        const char *row = ls->found[i] ? ls->rows[i].data : NULL;
        size_t len = ls->found[i] ? ls->rows[i].len : 0;
        rc = feat_row_decode(t, row, len, fidx, nf, now_ms, vals + ls->miss[i] * nf);
        if (rc) return rc;
        if (cache && ls->put[i]) feat_cache_put(cache, t, ls->mkeys[i], ls->mlens[i], row, len, ls->tickets[i]);
    }
    return FEAT_OK;
}

void feat_lookup_scratch_free(feat_lookup_scratch_t *ls) {
    feat_buf_free(&ls->strings);
    for (size_t i = 0; i < ls->caprows; i++) feat_buf_free(&ls->rows[i]);
    free(ls->rows);
    free(ls->miss);
    free(ls->tickets);
    free(ls->put);
    free((void *)ls->mkeys);
    free(ls->mlens);
    free(ls->found);
    memset(ls, 0, sizeof(*ls));
}
