/*
 * serve/rows.c — entity_rows (featd.v1.EntityKeys): one key per entity kind
 * per row, for models and lookups over several tables (svc.h).  A table's
 * features are read once per distinct key: many rows share a merchant.
 * feat_serve_online (serve.h): the same read for the Redis protocol.
 */
#include "common/clock.h"
#include "common/hash.h"
#include "common/utf8.h"
#include "serve/svc.h"

#include <string.h>

feat_err_t featd_svc_row_keys(feat_serve_t *sv, feat_rpc_call_t *call, Featd__V1__EntityKeys *const *rows, size_t n,
                              const char *entity, const char **keys, size_t *klens) {
    for (size_t i = 0; i < n; i++) {
        const char *k = NULL;
        for (size_t e = 0; rows[i] && e < rows[i]->n_keys; e++) /* a map: the last entry wins */
            if (rows[i]->keys[e]->key && !strcmp(rows[i]->keys[e]->key, entity)) k = rows[i]->keys[e]->value;
        if (!k || !*k)
            return ERR(call, FEAT_ERR_INVALID, "entity_rows[%zu]: %s key for entity \"%s\"", i, k ? "empty" : "no",
                       entity);
        size_t l = strlen(k);
        if ((int64_t)l > sv->conf.max_key)
            return ERR(call, FEAT_ERR_INVALID, "entity_rows[%zu]: key of %s is %zu bytes; the limit is %lld", i, entity,
                       l, (long long)sv->conf.max_key);
        keys[i] = k;
        klens[i] = l;
    }
    return FEAT_OK;
}

feat_err_t featd_svc_lookup_rows(feat_serve_t *sv, feat_rpc_call_t *call, const feat_table_t *t, size_t n,
                                 const char *const *keys, const size_t *klens, const uint16_t *fidx,
                                 const size_t *pos, size_t nf, size_t stride, int64_t now, feat_value_t *vals,
                                 feat_lookup_scratch_t *ls, int local_only) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    uint32_t *slots = feat_arena_calloc(call->arena, cap * sizeof(uint32_t));
    size_t *uidx = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);   /* row → distinct key */
    const char **ukeys = feat_arena_alloc(call->arena, n * sizeof(char *) + 1);
    size_t *ulens = feat_arena_alloc(call->arena, n * sizeof(size_t) + 1);
    if (!slots || !uidx || !ukeys || !ulens) return FEAT_ERR_NOMEM;
    size_t nu = 0;
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)feat_hash64(keys[i], klens[i]) & (cap - 1);
        while (slots[h] && !(ulens[slots[h] - 1] == klens[i] && !memcmp(ukeys[slots[h] - 1], keys[i], klens[i])))
            h = (h + 1) & (cap - 1);
        if (!slots[h]) {
            ukeys[nu] = keys[i];
            ulens[nu++] = klens[i];
            slots[h] = (uint32_t)nu;
        }
        uidx[i] = slots[h] - 1;
    }
    feat_value_t *uv = feat_arena_alloc(call->arena, nu * nf * sizeof(feat_value_t) + 1);
    if (!uv) return FEAT_ERR_NOMEM;
    feat_err_t rc = featd_svc_online_lookup(sv, call, t, nu, ukeys, ulens, fidx, nf, now, uv, ls, local_only);
    if (rc) return ERR(call, rc, "online read failed: %s", feat_err_str(rc));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < nf; j++) vals[i * stride + (pos ? pos[j] : j)] = uv[uidx[i] * nf + j];
    return FEAT_OK;
}

feat_err_t feat_serve_online(feat_serve_t *sv, feat_rpc_call_t *call, const feat_table_t *t, size_t n,
                             const char *const *keys, const size_t *klens, const uint16_t *fidx, size_t nf,
                             feat_value_t *vals, feat_lookup_scratch_t *ls) {
    if (n > 1) /* keys may repeat (MGET a a): each distinct one is read once */
        return featd_svc_lookup_rows(sv, call, t, n, keys, klens, fidx, NULL, nf, nf, feat_now_ms(), vals, ls,
                                     sv->peer);
    feat_err_t rc = featd_svc_online_lookup(sv, call, t, n, keys, klens, fidx, nf, feat_now_ms(), vals, ls, sv->peer);
    return rc ? ERR(call, rc, "online read failed: %s", feat_err_str(rc)) : FEAT_OK;
}

int feat_serve_key_ok(const feat_serve_t *sv, const char *key, size_t klen) {
    return klen && (int64_t)klen <= sv->conf.max_key && !memchr(key, 0, klen) && feat_utf8_valid(key, klen);
}
