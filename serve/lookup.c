/* serve/lookup.c — see lookup.h. */
#include "serve/lookup.h"

#include <stdint.h>
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

static feat_err_t lookup_plain(feat_store_t *st, feat_cache_t *cache, const feat_table_t *t, size_t n,
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

/* Aggregated features fidx[0..nf) of n keys into vals[k * nf + j], through
 * the cache (an entity's aggregates as of now's tile); their strings live
 * in ls->aggstr. */
static feat_err_t lookup_aggs(feat_store_t *st, feat_cache_t *cache, const feat_table_t *t, size_t n,
                              const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                              int64_t now_ms, feat_value_t *vals, feat_lookup_scratch_t *ls) {
    feat_buf_reset(&ls->aggstr);
    for (size_t k = 0; k < n; k++) {
        feat_value_t *v = vals + k * nf;
        uint64_t ticket = 0;
        int r = cache ? feat_cache_get_aggs(cache, t, keys[k], klens[k], fidx, nf, now_ms, v, &ls->aggstr, &ticket)
                      : FEAT_CACHE_BYPASS;
        if (r == FEAT_CACHE_HIT) continue; /* strings already offsets */
        if (!ls->agg && !(ls->agg = feat_agg_reader_new())) return FEAT_ERR_NOMEM;
        feat_err_t rc = feat_store_get_aggs(st, t, keys[k], klens[k], now_ms, fidx, nf, ls->agg, v, &ls->aggstr);
        if (rc) return rc;
        if (r == FEAT_CACHE_MISS) feat_cache_put_aggs(cache, t, keys[k], klens[k], fidx, nf, now_ms, v, ticket);
        /* the next key's strings may move the buffer: offsets until the end */
        for (size_t j = 0; j < nf; j++)
            if (v[j].status != FEAT_ST_NOT_FOUND && v[j].type == FEAT_FT_STRING)
                v[j].v.s = (const char *)(uintptr_t)(v[j].v.s - ls->aggstr.data);
    }
    if (ls->aggstr.oom) return FEAT_ERR_NOMEM;
    feat_cache_fix_strings(vals, n * nf, &ls->aggstr);
    return FEAT_OK;
}

feat_err_t feat_online_lookup(feat_store_t *st, feat_cache_t *cache, const feat_table_t *t, size_t n,
                              const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                              int64_t now_ms, feat_value_t *vals, feat_lookup_scratch_t *ls) {
    feat_buf_reset(&ls->strings); /* the last read's strings: a scratch kept warm (Redis protocol) must not grow */
    size_t naf = 0;
    if (t->conf->naggs)
        for (size_t j = 0; j < nf; j++) naf += (size_t)feat_feature_is_agg(t->conf, fidx[j]);
    if (!naf) return lookup_plain(st, cache, t, n, keys, klens, fidx, nf, now_ms, vals, ls);
    if (naf == nf) return lookup_aggs(st, cache, t, n, keys, klens, fidx, nf, now_ms, vals, ls);
    /* both kinds: each part into ls->tmp, then interleaved into vals */
    uint16_t pf[FEAT_MAX_FEATURES], af[FEAT_MAX_FEATURES];
    size_t npf = 0, naf2 = 0;
    for (size_t j = 0; j < nf; j++) {
        if (feat_feature_is_agg(t->conf, fidx[j])) af[naf2++] = fidx[j];
        else pf[npf++] = fidx[j];
    }
    if (ls->captmp < n * nf) {
        feat_value_t *nt = realloc(ls->tmp, n * nf * sizeof(*nt));
        if (!nt) return FEAT_ERR_NOMEM;
        ls->tmp = nt;
        ls->captmp = n * nf;
    }
    feat_value_t *pv = ls->tmp, *av = ls->tmp + n * npf;
    feat_err_t rc = lookup_plain(st, cache, t, n, keys, klens, pf, npf, now_ms, pv, ls);
    if (!rc) rc = lookup_aggs(st, cache, t, n, keys, klens, af, naf2, now_ms, av, ls);
    if (rc) return rc;
    for (size_t k = 0; k < n; k++) {
        size_t p = 0, a = 0;
        for (size_t j = 0; j < nf; j++)
            vals[k * nf + j] = feat_feature_is_agg(t->conf, fidx[j]) ? av[k * naf2 + a++] : pv[k * npf + p++];
    }
    return FEAT_OK;
}

void feat_lookup_scratch_free(feat_lookup_scratch_t *ls) {
    feat_agg_reader_destroy(ls->agg);
    feat_buf_free(&ls->aggstr);
    free(ls->tmp);
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
