/* serve/cache.c — see cache.h. */
#include "serve/cache.h"
#include "common/hash.h"
#include "store/row.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define PEND_SLOTS 512   /* counting filter of pending entities per shard */

/* One decoded feature value of a cached row. */
typedef struct cval {
    int64_t ts;
    union { double d; int64_t i; int b; } v;
    uint32_t soff, slen;   /* string bytes, relative to the entry's blob */
    uint8_t type;
    uint8_t present;
    uint8_t known;                 /* aggregate entries: computed (a row entry knows every value) */
} cval_t;

#define SCORES 4

typedef struct cscore {
    uint64_t version;              /* 0 = empty slot */
    uint32_t model;
    uint32_t missing;
    double score;
    int64_t valid_until;           /* ms: the first of its inputs' TTL expiries */
} cscore_t;

/* Entry kinds: an entity's decoded row, and its aggregated features as of
 * one tile (both keyed by (table, entity), hashed alike: same shard, same
 * pending mark, dropped together by a write). */
enum { KIND_ROW = 0, KIND_AGGS = 1 };

typedef struct entry {
    struct entry *chain;           /* hash bucket */
    struct entry *prev, *next;     /* LRU, most recent at head */
    uint64_t hash;
    const feat_table_t *table;
    uint32_t klen;
    uint32_t nf;                   /* = table's feature count */
    int kind;
    int64_t b0, b1;                /* KIND_AGGS: the read time's tile pair (agg_bucket) */
    cscore_t scores[SCORES];       /* predictions computed from this row */
    size_t size;                   /* bytes charged */
    /* key bytes, then nf cval_t (aligned), then string bytes */
    char data[];
} entry_t;

typedef struct shard {
    pthread_mutex_t lock;
    entry_t **buckets;
    size_t nbuckets, count;
    entry_t *head, *tail;
    size_t bytes, max_bytes;
    uint64_t epoch;                /* bumped whenever a write touches the shard */
    uint32_t pend[PEND_SLOTS];
    uint64_t hits, misses, bypasses, evictions, invalidations;
    uint64_t score_hits, score_misses;
    uint64_t agg_hits, agg_misses, agg_bypasses;
} shard_t;

struct feat_cache {
    shard_t *shards;
    size_t nshards;                /* power of two */
    size_t max_bytes;
    feat_metrics_t *metrics;
};

static uint64_t key_hash(const feat_table_t *t, const char *key, size_t klen) {
    uint64_t h = feat_hash64(&t->index, sizeof(t->index));
    return feat_hash_mix(feat_hash64_more(h, key, klen));
}

static inline char *ekey(entry_t *e) { return e->data; }
static inline cval_t *evals(entry_t *e) {
    size_t off = (e->klen + 7) & ~(size_t)7;
    return (cval_t *)(void *)(e->data + off);
}
static inline char *eblob(entry_t *e) { return (char *)(evals(e) + e->nf); }

static void collect(feat_metrics_emit_t *em, void *arg);

feat_cache_t *feat_cache_new(const feat_cache_conf_t *conf, feat_metrics_t *metrics, char *errstr, size_t errlen) {
    feat_cache_t *c = calloc(1, sizeof(*c));
    if (!c) goto nomem;
    size_t n = 1;
    while (n < conf->nshards && n < 4096) n <<= 1;
    c->nshards = n;
    c->max_bytes = conf->max_bytes;
    c->shards = calloc(n, sizeof(shard_t));
    if (!c->shards) {
        free(c);
        goto nomem;
    }
    for (size_t i = 0; i < n; i++) {
        shard_t *s = &c->shards[i];
        pthread_mutex_init(&s->lock, NULL);
        s->nbuckets = 64;
        s->buckets = calloc(s->nbuckets, sizeof(entry_t *));
        s->max_bytes = conf->max_bytes / n;
        if (!s->buckets) {
            feat_cache_destroy(c);
            goto nomem;
        }
    }
    c->metrics = metrics ? metrics : feat_metrics_global();
    feat_metrics_add_collector(c->metrics, collect, c);
    return c;
nomem:
    snprintf(errstr, errlen, "serve.cache: cannot allocate the cache");
    return NULL;
}

void feat_cache_destroy(feat_cache_t *c) {
    if (!c) return;
    if (c->metrics) feat_metrics_remove_collector(c->metrics, collect, c);
    for (size_t i = 0; c->shards && i < c->nshards; i++) {
        shard_t *s = &c->shards[i];
        for (entry_t *e = s->head, *n; e; e = n) {
            n = e->next;
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(c->shards);
    free(c);
}

static inline shard_t *shard_of(feat_cache_t *c, uint64_t h) { return &c->shards[h & (c->nshards - 1)]; }
static inline uint32_t pend_slot(uint64_t h) { return (uint32_t)((h >> 32) % PEND_SLOTS); }

static entry_t **find_slot(shard_t *s, uint64_t h, const feat_table_t *t, const char *key, size_t klen, int kind) {
    entry_t **pp = &s->buckets[(h >> 16) & (s->nbuckets - 1)];
    for (; *pp; pp = &(*pp)->chain) {
        entry_t *e = *pp;
        if (e->hash == h && e->table == t && e->kind == kind && e->klen == klen && memcmp(ekey(e), key, klen) == 0)
            return pp;
    }
    return pp;
}

static void lru_unlink(shard_t *s, entry_t *e) {
    if (e->prev) e->prev->next = e->next; else s->head = e->next;
    if (e->next) e->next->prev = e->prev; else s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(shard_t *s, entry_t *e) {
    e->prev = NULL;
    e->next = s->head;
    if (s->head) s->head->prev = e;
    s->head = e;
    if (!s->tail) s->tail = e;
}

static void remove_entry(shard_t *s, entry_t **pp) {
    entry_t *e = *pp;
    *pp = e->chain;
    lru_unlink(s, e);
    s->bytes -= e->size;
    s->count--;
    free(e);
}

static void grow(shard_t *s) {
    size_t nb = s->nbuckets * 2;
    entry_t **b = calloc(nb, sizeof(entry_t *));
    if (!b) return; /* stay at the current size */
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (entry_t *e = s->buckets[i], *n; e; e = n) {
            n = e->chain;
            entry_t **pp = &b[(e->hash >> 16) & (nb - 1)];
            e->chain = *pp;
            *pp = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

/* Fills the header of a new entry of size bytes (values zeroed: unknown). */
static void entry_init(entry_t *e, uint64_t h, const feat_table_t *t, const char *key, size_t klen, int kind,
                       size_t size) {
    e->hash = h;
    e->table = t;
    e->klen = (uint32_t)klen;
    e->nf = (uint32_t)t->conf->nfeatures;
    e->kind = kind;
    e->b0 = e->b1 = 0;
    e->size = size;
    e->chain = e->prev = e->next = NULL;
    memset(e->scores, 0, sizeof(e->scores));
    memcpy(ekey(e), key, klen);
    memset(evals(e), 0, e->nf * sizeof(cval_t));
}

/* Puts e in the shard (under its lock), replacing an entry of the same key
 * and kind, evicting from the LRU tail to stay within the budget. */
static void insert_entry(shard_t *s, entry_t *e) {
    entry_t **pp = find_slot(s, e->hash, e->table, ekey(e), e->klen, e->kind);
    if (*pp) remove_entry(s, pp); /* another reader got there first; ours is as fresh */
    pp = find_slot(s, e->hash, e->table, ekey(e), e->klen, e->kind);
    e->chain = *pp;
    *pp = e;
    lru_push(s, e);
    s->bytes += e->size;
    s->count++;
    while (s->bytes > s->max_bytes && s->tail && s->tail != e) {
        entry_t *victim = s->tail;
        remove_entry(s, find_slot(s, victim->hash, victim->table, ekey(victim), victim->klen, victim->kind));
        s->evictions++;
    }
    if (s->count > s->nbuckets) grow(s);
}

/* Copies value v of an entry out (strings as offsets into *strings). */
static void copy_out(const cval_t *v, const char *blob, feat_ftype_t type, int64_t ttl, int64_t now_ms,
                     feat_value_t *o, feat_buf_t *strings) {
    o->type = (uint8_t)type;
    if (!v->present) {
        o->status = FEAT_ST_NOT_FOUND;
        o->ts = 0;
        o->slen = 0;
        o->v.i = 0;
        return;
    }
    o->status = (ttl > 0 && now_ms - v->ts > ttl) ? FEAT_ST_EXPIRED : FEAT_ST_PRESENT;
    o->ts = v->ts;
    o->slen = v->slen;
    if (v->type == FEAT_FT_STRING) {
        o->v.s = (const char *)(uintptr_t)strings->len; /* an offset: see feat_cache_fix_strings() */
        feat_buf_append(strings, blob + v->soff, v->slen);
    } else {
        o->v.i = v->v.i;
    }
}

int feat_cache_get(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen,
                   const uint16_t *fidx, size_t n, int64_t now_ms, feat_value_t *out,
                   feat_buf_t *strings, uint64_t *ticket) {
    uint64_t h = key_hash(t, key, klen);
    shard_t *s = shard_of(c, h);
    pthread_mutex_lock(&s->lock);
    if (s->pend[pend_slot(h)]) {
        s->bypasses++;
        pthread_mutex_unlock(&s->lock);
        return FEAT_CACHE_BYPASS;
    }
    entry_t *e = c->max_bytes ? *find_slot(s, h, t, key, klen, KIND_ROW) : NULL;
    if (!e) {
        s->misses++;
        *ticket = s->epoch;
        pthread_mutex_unlock(&s->lock);
        return FEAT_CACHE_MISS;
    }
    s->hits++;
    if (s->head != e) {
        lru_unlink(s, e);
        lru_push(s, e);
    }
    const cval_t *cv = evals(e);
    for (size_t i = 0; i < n; i++)
        copy_out(&cv[fidx[i]], eblob(e), t->conf->features[fidx[i]].type, t->conf->ttl_ms, now_ms, &out[i], strings);
    pthread_mutex_unlock(&s->lock);
    return FEAT_CACHE_HIT;
}

/* The tile pair that fixes an aggregate read's answer (see cache.h). */
static void agg_bucket(const feat_table_t *t, int64_t now_ms, int64_t *b0, int64_t *b1) {
    int64_t T = t->conf->agg_tile_ms > 0 ? t->conf->agg_tile_ms : 1;
    *b0 = now_ms / T - (now_ms % T < 0);
    int64_t m = now_ms == INT64_MIN ? now_ms : now_ms - 1;
    *b1 = m / T - (m % T < 0);
}

int feat_cache_get_aggs(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen,
                        const uint16_t *fidx, size_t n, int64_t now_ms, feat_value_t *out,
                        feat_buf_t *strings, uint64_t *ticket) {
    uint64_t h = key_hash(t, key, klen);
    shard_t *s = shard_of(c, h);
    int64_t b0, b1;
    agg_bucket(t, now_ms, &b0, &b1);
    pthread_mutex_lock(&s->lock);
    if (s->pend[pend_slot(h)]) {
        s->agg_bypasses++;
        pthread_mutex_unlock(&s->lock);
        return FEAT_CACHE_BYPASS;
    }
    entry_t *e = c->max_bytes ? *find_slot(s, h, t, key, klen, KIND_AGGS) : NULL;
    int hit = e && e->b0 == b0 && e->b1 == b1;
    for (size_t i = 0; hit && i < n; i++) hit = evals(e)[fidx[i]].known;
    if (!hit) {
        s->agg_misses++;
        *ticket = s->epoch;
        pthread_mutex_unlock(&s->lock);
        return FEAT_CACHE_MISS;
    }
    s->agg_hits++;
    if (s->head != e) {
        lru_unlink(s, e);
        lru_push(s, e);
    }
    const cval_t *cv = evals(e);
    for (size_t i = 0; i < n; i++) {
        const cval_t *v = &cv[fidx[i]];
        copy_out(v, eblob(e), (feat_ftype_t)v->type, 0, now_ms, &out[i], strings);
    }
    pthread_mutex_unlock(&s->lock);
    return FEAT_CACHE_HIT;
}

void feat_cache_put_aggs(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen,
                         const uint16_t *fidx, size_t n, int64_t now_ms, const feat_value_t *vals,
                         uint64_t ticket) {
    if (!c->max_bytes) return;
    uint64_t h = key_hash(t, key, klen);
    shard_t *s = shard_of(c, h);
    int64_t b0, b1;
    agg_bucket(t, now_ms, &b0, &b1);
    size_t nf = t->conf->nfeatures;
    size_t sbytes = 0;
    for (size_t i = 0; i < n; i++)
        if (vals[i].status != FEAT_ST_NOT_FOUND && vals[i].type == FEAT_FT_STRING) sbytes += vals[i].slen;
    pthread_mutex_lock(&s->lock);
    if (s->epoch != ticket || s->pend[pend_slot(h)]) { /* a write raced the read */
        pthread_mutex_unlock(&s->lock);
        return;
    }
    /* values of the same tile another read already cached are kept */
    entry_t **pp = find_slot(s, h, t, key, klen, KIND_AGGS);
    entry_t *old = *pp && (*pp)->b0 == b0 && (*pp)->b1 == b1 ? *pp : NULL;
    size_t obytes = 0;
    for (size_t f = 0; old && f < nf; f++)
        if (evals(old)[f].known && evals(old)[f].type == FEAT_FT_STRING) obytes += evals(old)[f].slen;
    size_t size = sizeof(entry_t) + ((klen + 7) & ~(size_t)7) + nf * sizeof(cval_t) + sbytes + obytes;
    entry_t *e = size > s->max_bytes / 4 ? NULL : malloc(size); /* never let one entry flush a shard */
    if (!e) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    entry_init(e, h, t, key, klen, KIND_AGGS, size);
    e->b0 = b0;
    e->b1 = b1;
    cval_t *cv = evals(e);
    char *blob = eblob(e);
    uint32_t so = 0;
    for (size_t f = 0; old && f < nf; f++) {
        const cval_t *ov = &evals(old)[f];
        if (!ov->known) continue;
        cv[f] = *ov;
        if (ov->type == FEAT_FT_STRING && ov->present && ov->slen) {
            memcpy(blob + so, eblob(old) + ov->soff, ov->slen);
            cv[f].soff = so;
            so += ov->slen;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const feat_value_t *v = &vals[i];
        cval_t *cvv = &cv[fidx[i]];
        memset(cvv, 0, sizeof(*cvv));
        cvv->known = 1;
        cvv->type = v->type;
        if (v->status == FEAT_ST_NOT_FOUND) continue;
        cvv->present = 1;
        cvv->ts = v->ts;
        if (v->type == FEAT_FT_STRING) {
            if (v->slen) memcpy(blob + so, v->v.s, v->slen);
            cvv->soff = so;
            cvv->slen = v->slen;
            so += v->slen;
        } else {
            cvv->v.i = v->v.i;
        }
    }
    insert_entry(s, e);
    pthread_mutex_unlock(&s->lock);
}

void feat_cache_fix_strings(feat_value_t *vals, size_t n, const feat_buf_t *strings) {
    for (size_t i = 0; i < n; i++)
        if (vals[i].status != FEAT_ST_NOT_FOUND && vals[i].type == FEAT_FT_STRING)
            vals[i].v.s = strings->oom ? "" : strings->data + (uintptr_t)vals[i].v.s;
}

void feat_cache_put(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen,
                    const char *row, size_t len, uint64_t ticket) {
    if (!c->max_bytes) return;
    uint32_t nf = (uint32_t)t->conf->nfeatures;
    /* size the entry: key, values, string bytes */
    size_t sbytes = 0;
    size_t pos = 0;
    feat_row_entry_t re;
    int has; /* a row that does not decode is cached as far as it does */
    while (row && feat_row_next(row, len, &pos, 1, &re, &has) == FEAT_OK && has)
        if (re.type == FEAT_FT_STRING) sbytes += re.val.slen;
    size_t koff = (klen + 7) & ~(size_t)7;
    size_t size = sizeof(entry_t) + koff + nf * sizeof(cval_t) + sbytes;
    uint64_t h = key_hash(t, key, klen);
    shard_t *s = shard_of(c, h);
    if (size > s->max_bytes / 4) return; /* never let one row flush a shard */
    entry_t *e = malloc(size);
    if (!e) return;
    entry_init(e, h, t, key, klen, KIND_ROW, size);
    cval_t *cv = evals(e);
    char *blob = eblob(e);
    uint32_t so = 0;
    pos = 0;
    while (row && feat_row_next(row, len, &pos, 1, &re, &has) == FEAT_OK && has) {
        if (re.id > t->max_id || t->index_of_id[re.id] < 0) continue;
        cval_t *v = &cv[t->index_of_id[re.id]];
        v->present = 1;
        v->known = 1;
        v->type = re.type;
        v->ts = re.ts;
        if (re.type == FEAT_FT_STRING) {
            memcpy(blob + so, re.val.v.s, re.val.slen);
            v->soff = so;
            v->slen = re.val.slen;
            so += re.val.slen;
        } else {
            v->v.i = re.val.v.i;
        }
    }
    pthread_mutex_lock(&s->lock);
    if (s->epoch != ticket || s->pend[pend_slot(h)]) { /* a write raced the read */
        pthread_mutex_unlock(&s->lock);
        free(e);
        return;
    }
    insert_entry(s, e);
    pthread_mutex_unlock(&s->lock);
}

int feat_cache_get_score(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen, uint32_t model,
                         uint64_t version, int64_t now_ms, double *score, uint32_t *missing, uint64_t *ticket) {
    uint64_t h = key_hash(t, key, klen);
    shard_t *s = shard_of(c, h);
    int r = FEAT_CACHE_MISS;
    pthread_mutex_lock(&s->lock);
    if (s->pend[pend_slot(h)]) {
        r = FEAT_CACHE_BYPASS;
    } else {
        *ticket = s->epoch;
        entry_t *e = c->max_bytes ? *find_slot(s, h, t, key, klen, KIND_ROW) : NULL;
        for (int i = 0; e && i < SCORES; i++) {
            const cscore_t *cs = &e->scores[i];
            if (cs->version == version && cs->model == model && now_ms < cs->valid_until) {
                *score = cs->score;
                *missing = cs->missing;
                r = FEAT_CACHE_HIT;
                break;
            }
        }
    }
    if (r == FEAT_CACHE_HIT) s->score_hits++;
    else s->score_misses++;
    pthread_mutex_unlock(&s->lock);
    return r;
}

void feat_cache_put_score(feat_cache_t *c, const feat_table_t *t, const char *key, size_t klen, uint32_t model,
                          uint64_t version, double score, uint32_t missing, int64_t valid_until, uint64_t ticket) {
    if (!c->max_bytes || !version) return;
    uint64_t h = key_hash(t, key, klen);
    shard_t *s = shard_of(c, h);
    pthread_mutex_lock(&s->lock);
    entry_t *e = s->epoch != ticket || s->pend[pend_slot(h)] ? NULL : *find_slot(s, h, t, key, klen, KIND_ROW);
    if (e) {
        int slot = -1;
        for (int i = 0; i < SCORES && slot < 0; i++)
            if (e->scores[i].model == model || !e->scores[i].version) slot = i;
        if (slot < 0) slot = (int)(model % SCORES);
        e->scores[slot] = (cscore_t){version, model, missing, score, valid_until};
    }
    pthread_mutex_unlock(&s->lock);
}

void feat_cache_write_hook(void *arg, const feat_wb_t *wb, int phase) {
    feat_cache_t *c = arg;
    size_t n = feat_wb_online_count(wb);
    for (size_t i = 0; i < n; i++) {
        const feat_table_t *t;
        const char *key;
        size_t klen;
        feat_wb_online_at(wb, i, &t, &key, &klen);
        uint64_t h = key_hash(t, key, klen);
        shard_t *s = shard_of(c, h);
        pthread_mutex_lock(&s->lock);
        if (phase == 0) {
            s->pend[pend_slot(h)]++;
            s->epoch++;
            for (int kind = KIND_ROW; kind <= KIND_AGGS; kind++) {
                entry_t **pp = find_slot(s, h, t, key, klen, kind);
                if (*pp) {
                    remove_entry(s, pp);
                    s->invalidations++;
                }
            }
        } else if (s->pend[pend_slot(h)]) {
            s->pend[pend_slot(h)]--;
        }
        pthread_mutex_unlock(&s->lock);
    }
}

void feat_cache_get_stats(feat_cache_t *c, feat_cache_stats_t *st) {
    memset(st, 0, sizeof(*st));
    st->max_bytes = c->max_bytes;
    for (size_t i = 0; i < c->nshards; i++) {
        shard_t *s = &c->shards[i];
        pthread_mutex_lock(&s->lock);
        st->hits += s->hits;
        st->misses += s->misses;
        st->bypasses += s->bypasses;
        st->evictions += s->evictions;
        st->invalidations += s->invalidations;
        st->score_hits += s->score_hits;
        st->score_misses += s->score_misses;
        st->agg_hits += s->agg_hits;
        st->agg_misses += s->agg_misses;
        st->agg_bypasses += s->agg_bypasses;
        st->entries += s->count;
        st->bytes += s->bytes;
        pthread_mutex_unlock(&s->lock);
    }
}

static void collect(feat_metrics_emit_t *em, void *arg) {
    feat_cache_stats_t s;
    feat_cache_get_stats(arg, &s);
    feat_metrics_emit_family(em, "featd_cache_requests_total", "Online row cache lookups by result.", FEAT_METRIC_COUNTER);
    feat_metrics_emit_sample(em, "result=\"hit\"", (double)s.hits);
    feat_metrics_emit_sample(em, "result=\"miss\"", (double)s.misses);
    feat_metrics_emit_sample(em, "result=\"bypass\"", (double)s.bypasses);
    feat_metrics_emit_family(em, "featd_cache_hit_ratio", "Hits over all cache lookups since start.", FEAT_METRIC_GAUGE);
    uint64_t all = s.hits + s.misses + s.bypasses;
    feat_metrics_emit_sample(em, NULL, all ? (double)s.hits / (double)all : 0);
    feat_metrics_emit_family(em, "featd_cache_score_requests_total",
                             "Predict score lookups in the cache by result (a miss computes the score).", FEAT_METRIC_COUNTER);
    feat_metrics_emit_sample(em, "result=\"hit\"", (double)s.score_hits);
    feat_metrics_emit_sample(em, "result=\"miss\"", (double)s.score_misses);
    feat_metrics_emit_family(em, "featd_cache_agg_requests_total",
                             "Aggregated feature lookups in the cache by result (a miss reads the tiles).",
                             FEAT_METRIC_COUNTER);
    feat_metrics_emit_sample(em, "result=\"hit\"", (double)s.agg_hits);
    feat_metrics_emit_sample(em, "result=\"miss\"", (double)s.agg_misses);
    feat_metrics_emit_sample(em, "result=\"bypass\"", (double)s.agg_bypasses);
    feat_metrics_emit_family(em, "featd_cache_bytes", "Bytes held by the online row cache.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, (double)s.bytes);
    feat_metrics_emit_family(em, "featd_cache_entries", "Rows held by the online row cache.", FEAT_METRIC_GAUGE);
    feat_metrics_emit_sample(em, NULL, (double)s.entries);
    feat_metrics_emit_family(em, "featd_cache_evictions_total", "Rows evicted to stay within serve.cache.", FEAT_METRIC_COUNTER);
    feat_metrics_emit_sample(em, NULL, (double)s.evictions);
    feat_metrics_emit_family(em, "featd_cache_invalidations_total", "Cached rows dropped because ingest wrote them.", FEAT_METRIC_COUNTER);
    feat_metrics_emit_sample(em, NULL, (double)s.invalidations);
}
