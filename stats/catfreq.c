/*
 * stats/catfreq.c — pinned exact counters plus Space-Saving top-K, in fixed
 * memory.  See catfreq.h for the contract and the error guarantees.
 *
 * Layout: slots[0, capacity) are Space-Saving counters, the used ones packed
 * at [0, nused) and ordered through a min-heap on count (heap[] holds slot
 * numbers, hkey[] their counts, slot.heap the position); slots[capacity,
 * capacity + npins) are the
 * pinned counters.  index[] is a linear-probing hash table of slot + 1 (0 =
 * empty) keyed by the category hash, deleted with backward shift.
 */
#include "stats/catfreq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats/divergence.h"
#include "stats/stats_util.h"

typedef struct cf_slot {
    uint64_t hash;
    uint64_t count;     /* upper count: guaranteed + overcount */
    uint64_t err;       /* overcount (0 for pins) */
    uint32_t heap;      /* heap position (unpinned) */
    uint32_t pinned;
} cf_slot_t;

struct feat_catfreq {
    uint32_t capacity, max_pins, label_cap;
    uint32_t nused, npins;
    uint32_t tmask;                 /* index size - 1 (a power of two minus 1) */
    uint64_t total;                 /* all weight */
    uint64_t guaranteed;            /* sum of count - err over slots */
    cf_slot_t *slots;               /* capacity + max_pins */
    uint32_t *heap;                 /* capacity: slot numbers */
    uint64_t *hkey;                 /* capacity: their counts, inline for the sift */
    uint32_t *index;                /* tmask + 1 */
    char *labels;                   /* (capacity + max_pins) * label_cap */
    size_t bytes;
};

/* ---------------------------------------------------------------- index */

static inline uint32_t home_of(const feat_catfreq_t *cf, uint64_t h) {
    return (uint32_t)(h ^ (h >> 32)) & cf->tmask;
}

/* table position holding hash, or UINT32_MAX */
static uint32_t index_find(const feat_catfreq_t *cf, uint64_t hash) {
    uint32_t i = home_of(cf, hash);
    while (cf->index[i]) {
        if (cf->slots[cf->index[i] - 1].hash == hash) return i;
        i = (i + 1) & cf->tmask;
    }
    return UINT32_MAX;
}

static void index_insert(feat_catfreq_t *cf, uint64_t hash, uint32_t slot) {
    uint32_t i = home_of(cf, hash);
    while (cf->index[i]) i = (i + 1) & cf->tmask;
    cf->index[i] = slot + 1;
}

static void index_delete_at(feat_catfreq_t *cf, uint32_t i) {
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & cf->tmask;
        if (!cf->index[j]) break;
        uint32_t k = home_of(cf, cf->slots[cf->index[j] - 1].hash);
        /* entry at j may move to i unless its home lies cyclically in (i, j] */
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (stays) continue;
        cf->index[i] = cf->index[j];
        i = j;
    }
    cf->index[i] = 0;
}

/* ----------------------------------------------------------------- heap */

/* hkey[i] mirrors slots[heap[i]].count (contiguous keys make the sift cache
 * friendly); whoever changes a count updates hkey and then sifts */
static inline int heap_less(const feat_catfreq_t *cf, uint32_t a, uint32_t b) {
    return cf->hkey[a] < cf->hkey[b];
}

static inline void heap_swap(feat_catfreq_t *cf, uint32_t a, uint32_t b) {
    uint32_t t = cf->heap[a];
    uint64_t k = cf->hkey[a];
    cf->heap[a] = cf->heap[b];
    cf->hkey[a] = cf->hkey[b];
    cf->heap[b] = t;
    cf->hkey[b] = k;
    cf->slots[cf->heap[a]].heap = a;
    cf->slots[cf->heap[b]].heap = b;
}

static void heap_up(feat_catfreq_t *cf, uint32_t i) {
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(cf, i, p)) return;
        heap_swap(cf, i, p);
        i = p;
    }
}

static void heap_down(feat_catfreq_t *cf, uint32_t i) {
    uint32_t n = cf->nused, moving = cf->heap[i];
    uint64_t key = cf->hkey[i];
    for (;;) {                       /* hole sift: no swaps on the way */
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cf->hkey[c + 1] < cf->hkey[c]) c++;
        if (!(cf->hkey[c] < key)) break;
        cf->heap[i] = cf->heap[c];
        cf->hkey[i] = cf->hkey[c];
        cf->slots[cf->heap[i]].heap = i;
        i = c;
    }
    cf->heap[i] = moving;
    cf->hkey[i] = key;
    cf->slots[moving].heap = i;
}

/* -------------------------------------------------------------- labels */

static char *label_of(const feat_catfreq_t *cf, uint32_t slot) {
    return cf->labels + (size_t)slot * cf->label_cap;
}

static void set_label(feat_catfreq_t *cf, uint32_t slot, const char *s, size_t len) {
    if (cf->label_cap == 0) return;
    char *d = label_of(cf, slot);
    if (!s) len = 0;
    if (len > cf->label_cap - 1) len = cf->label_cap - 1;
    if (len) memcpy(d, s, len);
    d[len] = '\0';
}

/* ------------------------------------------------------------ lifecycle */

feat_catfreq_t *feat_catfreq_new(uint32_t capacity, uint32_t max_pins, uint32_t label_cap,
                                 feat_err_t *err) {
    uint64_t nslots = (uint64_t)capacity + max_pins;
    if (nslots == 0 || nslots > FEAT_CATFREQ_MAX_SLOTS || label_cap > FEAT_CATFREQ_MAX_LABEL) {
        if (err) *err = FEAT_ERR_INVALID;
        return NULL;
    }
    uint32_t tsize = 16;
    while (tsize < 2 * nslots) tsize <<= 1;
    size_t bytes = sizeof(feat_catfreq_t) + nslots * sizeof(cf_slot_t) +
                   (size_t)capacity * (sizeof(uint32_t) + sizeof(uint64_t)) +
                   (size_t)tsize * sizeof(uint32_t) +
                   nslots * (size_t)label_cap;
    feat_catfreq_t *cf = (feat_catfreq_t *)calloc(1, sizeof *cf);
    cf_slot_t *slots = (cf_slot_t *)calloc(nslots, sizeof(cf_slot_t));
    uint32_t *heap = (uint32_t *)calloc(capacity ? capacity : 1, sizeof(uint32_t));
    uint64_t *hkey = (uint64_t *)calloc(capacity ? capacity : 1, sizeof(uint64_t));
    uint32_t *index = (uint32_t *)calloc(tsize, sizeof(uint32_t));
    char *labels = (char *)calloc(label_cap ? nslots * label_cap : 1, 1);
    if (!cf || !slots || !heap || !hkey || !index || !labels) {
        free(cf);
        free(slots);
        free(heap);
        free(hkey);
        free(index);
        free(labels);
        if (err) *err = FEAT_ERR_NOMEM;
        return NULL;
    }
    cf->capacity = capacity;
    cf->max_pins = max_pins;
    cf->label_cap = label_cap;
    cf->tmask = tsize - 1;
    cf->slots = slots;
    cf->heap = heap;
    cf->hkey = hkey;
    cf->index = index;
    cf->labels = labels;
    cf->bytes = bytes;
    if (err) *err = FEAT_OK;
    return cf;
}

void feat_catfreq_destroy(feat_catfreq_t *cf) {
    if (!cf) return;
    free(cf->slots);
    free(cf->heap);
    free(cf->hkey);
    free(cf->index);
    free(cf->labels);
    free(cf);
}

void feat_catfreq_reset(feat_catfreq_t *cf) {
    memset(cf->index, 0, ((size_t)cf->tmask + 1) * sizeof(uint32_t));
    cf->nused = 0;
    cf->total = 0;
    cf->guaranteed = 0;
    for (uint32_t p = 0; p < cf->npins; p++) {
        uint32_t s = cf->capacity + p;
        cf->slots[s].count = 0;
        index_insert(cf, cf->slots[s].hash, s);
    }
}

uint64_t feat_catfreq_hash(const char *s, size_t len) {
    return feat_hash_bytes(s, s ? len : 0);
}

/* removes unpinned slot r (packing [0, nused)); the caller has already taken
 * its data and removed its index entry */
static void remove_unpinned(feat_catfreq_t *cf, uint32_t r) {
    uint32_t pos = cf->slots[r].heap, last = cf->nused - 1;
    /* take it out of the heap */
    if (pos != last) {
        heap_swap(cf, pos, last);
        cf->nused--;
        heap_down(cf, pos);
        heap_up(cf, pos);
    } else {
        cf->nused--;
    }
    /* pack: move slot `last` (the highest used number) into r */
    if (r != last) {
        uint32_t ti = index_find(cf, cf->slots[last].hash);
        cf->slots[r] = cf->slots[last];
        cf->heap[cf->slots[r].heap] = r;
        if (ti != UINT32_MAX) cf->index[ti] = r + 1;
        if (cf->label_cap) memcpy(label_of(cf, r), label_of(cf, last), cf->label_cap);
    }
}

feat_err_t feat_catfreq_pin(feat_catfreq_t *cf, uint64_t hash, const char *label, size_t len) {
    if (!cf) return FEAT_ERR_INVALID;
    uint32_t ti = index_find(cf, hash);
    uint64_t carried = 0;
    char tmp[FEAT_CATFREQ_MAX_LABEL];
    int have_old_label = 0;
    if (ti != UINT32_MAX) {
        uint32_t r = cf->index[ti] - 1;
        if (cf->slots[r].pinned) return FEAT_ERR_EXISTS;
        if (cf->npins == cf->max_pins) return FEAT_ERR_TOO_LARGE;
        carried = cf->slots[r].count - cf->slots[r].err;
        if (!label && cf->label_cap) {
            memcpy(tmp, label_of(cf, r), cf->label_cap);
            have_old_label = 1;
        }
        index_delete_at(cf, ti);
        remove_unpinned(cf, r);
    } else if (cf->npins == cf->max_pins) {
        return FEAT_ERR_TOO_LARGE;
    }
    uint32_t s = cf->capacity + cf->npins++;
    cf->slots[s].hash = hash;
    cf->slots[s].count = carried;
    cf->slots[s].err = 0;
    cf->slots[s].pinned = 1;
    cf->slots[s].heap = 0;
    if (have_old_label) set_label(cf, s, tmp, strlen(tmp));
    else set_label(cf, s, label, len);
    index_insert(cf, hash, s);
    return FEAT_OK;
}

/* ---------------------------------------------------------------- update */

static feat_err_t add_impl(feat_catfreq_t *cf, uint64_t hash, uint64_t w, const char *s,
                           size_t len) {
    if (w == 0) return FEAT_ERR_INVALID;
    if (cf->total > UINT64_MAX - w) return FEAT_ERR_TOO_LARGE;
    uint32_t ti = index_find(cf, hash);
    if (ti != UINT32_MAX) {
        cf_slot_t *sl = &cf->slots[cf->index[ti] - 1];
        if (sl->count > UINT64_MAX - w) return FEAT_ERR_TOO_LARGE;
        sl->count += w;
        cf->guaranteed += w;
        cf->total += w;
        if (!sl->pinned) {
            cf->hkey[sl->heap] = sl->count;
            heap_down(cf, sl->heap);
        }
        return FEAT_OK;
    }
    cf->total += w;
    if (cf->capacity == 0) return FEAT_OK;             /* only pins: weight goes to other */
    if (cf->nused < cf->capacity) {
        uint32_t r = cf->nused++;
        cf_slot_t *sl = &cf->slots[r];
        sl->hash = hash;
        sl->count = w;
        sl->err = 0;
        sl->pinned = 0;
        sl->heap = r;
        cf->heap[r] = r;
        cf->hkey[r] = w;
        heap_up(cf, r);
        index_insert(cf, hash, r);
        set_label(cf, r, s, len);
        cf->guaranteed += w;
        return FEAT_OK;
    }
    /* Space-Saving: replace the minimum */
    uint32_t r = cf->heap[0];
    cf_slot_t *sl = &cf->slots[r];
    uint32_t oi = index_find(cf, sl->hash);
    if (oi != UINT32_MAX) index_delete_at(cf, oi);
    cf->guaranteed -= sl->count - sl->err;
    if (sl->count > UINT64_MAX - w) return FEAT_ERR_TOO_LARGE;
    sl->err = sl->count;
    sl->count += w;
    sl->hash = hash;
    cf->guaranteed += w;
    index_insert(cf, hash, r);
    set_label(cf, r, s, len);
    cf->hkey[0] = sl->count;
    heap_down(cf, 0);
    return FEAT_OK;
}

feat_err_t feat_catfreq_add_hash(feat_catfreq_t *cf, uint64_t hash, uint64_t w) {
    if (!cf) return FEAT_ERR_INVALID;
    return add_impl(cf, hash, w, NULL, 0);
}

feat_err_t feat_catfreq_add(feat_catfreq_t *cf, const char *s, size_t len, uint64_t w) {
    if (!cf || (!s && len)) return FEAT_ERR_INVALID;
    return add_impl(cf, feat_catfreq_hash(s, len), w, s, len);
}

feat_err_t feat_catfreq_merge(feat_catfreq_t *dst, const feat_catfreq_t *src) {
    if (!dst || !src) return FEAT_ERR_INVALID;
    if (dst->total > UINT64_MAX - src->total) return FEAT_ERR_TOO_LARGE;
    uint64_t moved = 0;
    for (uint32_t i = 0; i < feat_catfreq_size(src); i++) {
        feat_catfreq_entry_t e;
        if (feat_catfreq_entry(src, i, &e) != FEAT_OK) continue;
        if (e.pinned) { /* a reference category: exact on both sides when both pinned it */
            feat_err_t rc = feat_catfreq_pin(dst, e.hash, e.label, strlen(e.label));
            if (rc && rc != FEAT_ERR_EXISTS && rc != FEAT_ERR_TOO_LARGE) return rc;
        }
        if (!e.count) continue;
        feat_err_t rc = add_impl(dst, e.hash, e.count, e.label, strlen(e.label));
        if (rc) return rc;
        moved += e.count;
    }
    dst->total += src->total - moved; /* src's other bucket (and overcounts) stays other */
    return FEAT_OK;
}

/* ------------------------------------------------------------- accessors */

uint64_t feat_catfreq_total(const feat_catfreq_t *cf) { return cf->total; }
uint64_t feat_catfreq_other(const feat_catfreq_t *cf) { return cf->total - cf->guaranteed; }
uint32_t feat_catfreq_size(const feat_catfreq_t *cf) { return cf->npins + cf->nused; }
uint32_t feat_catfreq_capacity(const feat_catfreq_t *cf) { return cf->capacity; }
size_t feat_catfreq_footprint(const feat_catfreq_t *cf) { return cf->bytes; }

feat_err_t feat_catfreq_get(const feat_catfreq_t *cf, uint64_t hash, uint64_t *count,
                            uint64_t *overcount) {
    uint32_t ti = index_find(cf, hash);
    if (ti == UINT32_MAX) {
        if (count) *count = 0;
        if (overcount) *overcount = 0;
        return FEAT_ERR_NOT_FOUND;
    }
    const cf_slot_t *sl = &cf->slots[cf->index[ti] - 1];
    if (count) *count = sl->count - sl->err;
    if (overcount) *overcount = sl->err;
    return FEAT_OK;
}

static uint32_t entry_slot(const feat_catfreq_t *cf, uint32_t i) {
    return i < cf->npins ? cf->capacity + i : i - cf->npins;
}

feat_err_t feat_catfreq_entry(const feat_catfreq_t *cf, uint32_t i, feat_catfreq_entry_t *e) {
    if (!cf || !e || i >= cf->npins + cf->nused) return FEAT_ERR_INVALID;
    uint32_t s = entry_slot(cf, i);
    const cf_slot_t *sl = &cf->slots[s];
    e->hash = sl->hash;
    e->count = sl->count - sl->err;
    e->overcount = sl->err;
    e->pinned = (int)sl->pinned;
    e->label = cf->label_cap ? label_of(cf, s) : "";
    return FEAT_OK;
}

/* ------------------------------------------------------------ comparison */

static uint64_t live_count_of(const feat_catfreq_t *live, uint64_t hash) {
    uint64_t c = 0;
    feat_catfreq_get(live, hash, &c, NULL);
    return c;
}

feat_err_t feat_catfreq_align(const feat_catfreq_t *live, const feat_catfreq_t *ref,
                              double *ref_counts, double *live_counts, size_t cap,
                              uint32_t *ncat) {
    if (!live || !ref || !ref_counts || !live_counts || !ncat) return FEAT_ERR_INVALID;
    uint32_t m = feat_catfreq_size(ref);
    if (cap < (size_t)m + 1) return FEAT_ERR_TOO_LARGE;
    uint64_t lsum = 0;
    for (uint32_t i = 0; i < m; i++) {
        const cf_slot_t *sl = &ref->slots[entry_slot(ref, i)];
        uint64_t lc = live_count_of(live, sl->hash);
        ref_counts[i] = (double)(sl->count - sl->err);
        live_counts[i] = (double)lc;
        lsum += lc;
    }
    ref_counts[m] = (double)(ref->total - ref->guaranteed);
    live_counts[m] = (double)(live->total - lsum);
    *ncat = m + 1;
    return FEAT_OK;
}

static double xlogxy(double p, double q) {
    if (p == 0.0) return 0.0;
    return p * log(p / q);
}

/* feeds category (r, l) to the running sums; pass 1 counts, pass 2 sums */
typedef struct cmp_acc {
    double sr, sl, norm, eps;
    double chi2, kl, psi, jl, jr;
    uint32_t used;
} cmp_acc_t;

static void cmp_feed(cmp_acc_t *a, double r, double l, int pass) {
    if (r == 0.0 && l == 0.0) return;
    if (pass == 1) {
        a->used++;
        return;
    }
    double tot = a->sr + a->sl, col = r + l;
    double er = a->sr * col / tot, el = a->sl * col / tot;
    a->chi2 += (r - er) * (r - er) / er + (l - el) * (l - el) / el;
    double pr = (r / a->sr + a->eps) / a->norm, pl = (l / a->sl + a->eps) / a->norm;
    if (pr == 0.0) a->kl = INFINITY;
    else a->kl += xlogxy(pl, pr);
    if (pr != pl) {
        if (pr == 0.0 || pl == 0.0) a->psi = INFINITY;
        else a->psi += (pl - pr) * log(pl / pr);
    }
    double qr = r / a->sr, ql = l / a->sl, m = (qr + ql) / 2.0;
    a->jl += xlogxy(ql, m);
    a->jr += xlogxy(qr, m);
}

feat_err_t feat_catfreq_compare(const feat_catfreq_t *live, const feat_catfreq_t *ref,
                                double eps, feat_catfreq_cmp_t *out) {
    if (!live || !ref || !out || !(eps >= 0.0) || isinf(eps)) return FEAT_ERR_INVALID;
    if (live->total == 0 || ref->total == 0) return FEAT_ERR_STATE;
    cmp_acc_t a;
    memset(&a, 0, sizeof a);
    a.sr = (double)ref->total;
    a.sl = (double)live->total;
    a.eps = eps;
    uint32_t m = feat_catfreq_size(ref);
    uint64_t lsum = 0;
    for (int pass = 1; pass <= 2; pass++) {
        if (pass == 2) a.norm = 1.0 + (double)a.used * eps;
        lsum = 0;
        for (uint32_t i = 0; i < m; i++) {
            const cf_slot_t *sl = &ref->slots[entry_slot(ref, i)];
            uint64_t lc = live_count_of(live, sl->hash);
            lsum += lc;
            cmp_feed(&a, (double)(sl->count - sl->err), (double)lc, pass);
        }
        cmp_feed(&a, (double)(ref->total - ref->guaranteed), (double)(live->total - lsum), pass);
    }
    out->ncat = a.used;
    out->live_unseen = (double)(live->total - lsum) / a.sl;
    out->kl = a.kl < 0.0 ? 0.0 : a.kl;
    out->psi = a.psi;
    double js = (a.jl + a.jr) / 2.0 / log(2.0);
    out->js = js > 0.0 ? sqrt(js) : 0.0;
    if (a.used < 2) {
        out->chi2 = 0.0;
        out->chi2_dof = 0.0;
        out->chi2_pvalue = 1.0;
    } else {
        out->chi2 = a.chi2;
        out->chi2_dof = (double)(a.used - 1);
        out->chi2_pvalue = feat_chi2_sf(a.chi2, out->chi2_dof);
    }
    return FEAT_OK;
}

/* --------------------------------------------------------- serialization */

/* v1 layout, little-endian:
 *   0 "FCAT"  4 u8 version  5 u8 0  6 u16 0
 *   8 u32 capacity  12 u32 max_pins  16 u32 label_cap  20 u32 npins
 *   24 u32 nused    28 u32 0         32 u64 total
 *   40 entries, pins in pin order then unpinned in heap order, each:
 *      u64 hash, u64 count (upper), u64 overcount, u16 label length, label
 *   then u32 CRC-32 of every preceding byte. */
#define CF_HDR 40u
#define CF_ENT 26u

static size_t label_len_of(const feat_catfreq_t *cf, uint32_t slot) {
    return cf->label_cap ? strlen(label_of(cf, slot)) : 0;
}

size_t feat_catfreq_serialized_size(const feat_catfreq_t *cf) {
    size_t n = CF_HDR + 4;
    for (uint32_t p = 0; p < cf->npins; p++) n += CF_ENT + label_len_of(cf, cf->capacity + p);
    for (uint32_t i = 0; i < cf->nused; i++) n += CF_ENT + label_len_of(cf, cf->heap[i]);
    return n;
}

static size_t put_entry(const feat_catfreq_t *cf, unsigned char *p, uint32_t slot) {
    const cf_slot_t *sl = &cf->slots[slot];
    size_t ll = label_len_of(cf, slot);
    feat_put_u64(p, sl->hash);
    feat_put_u64(p + 8, sl->count);
    feat_put_u64(p + 16, sl->err);
    feat_put_u16(p + 24, (uint16_t)ll);
    if (ll) memcpy(p + CF_ENT, label_of(cf, slot), ll);
    return CF_ENT + ll;
}

feat_err_t feat_catfreq_serialize(const feat_catfreq_t *cf, void *buf, size_t cap,
                                  size_t *written) {
    size_t need = feat_catfreq_serialized_size(cf);
    if (written) *written = 0;
    if (!buf || cap < need) return FEAT_ERR_TOO_LARGE;
    unsigned char *p = (unsigned char *)buf;
    memcpy(p, "FCAT", 4);
    p[4] = (unsigned char)FEAT_CATFREQ_FORMAT_VERSION;
    p[5] = 0;
    feat_put_u16(p + 6, 0);
    feat_put_u32(p + 8, cf->capacity);
    feat_put_u32(p + 12, cf->max_pins);
    feat_put_u32(p + 16, cf->label_cap);
    feat_put_u32(p + 20, cf->npins);
    feat_put_u32(p + 24, cf->nused);
    feat_put_u32(p + 28, 0);
    feat_put_u64(p + 32, cf->total);
    size_t off = CF_HDR;
    for (uint32_t i = 0; i < cf->npins; i++) off += put_entry(cf, p + off, cf->capacity + i);
    for (uint32_t i = 0; i < cf->nused; i++) off += put_entry(cf, p + off, cf->heap[i]);
    feat_put_u32(p + off, feat_crc32(0, p, off));
    if (written) *written = need;
    return FEAT_OK;
}

feat_err_t feat_catfreq_deserialize(const void *buf, size_t len, feat_catfreq_t **out) {
    const unsigned char *p = (const unsigned char *)buf;
    if (!out) return FEAT_ERR_INVALID;
    *out = NULL;
    if (!p || len < CF_HDR + 4 || memcmp(p, "FCAT", 4) != 0) return FEAT_ERR_CORRUPT;
    /* CRC first (every version ends with it): damage reads as corruption */
    if (feat_crc32(0, p, len - 4) != feat_get_u32(p + len - 4)) return FEAT_ERR_CORRUPT;
    if (p[4] != FEAT_CATFREQ_FORMAT_VERSION) return FEAT_ERR_UNIMPLEMENTED;
    if (p[5] != 0 || feat_get_u16(p + 6) != 0 || feat_get_u32(p + 28) != 0) return FEAT_ERR_CORRUPT;
    uint32_t capacity = feat_get_u32(p + 8), max_pins = feat_get_u32(p + 12);
    uint32_t label_cap = feat_get_u32(p + 16), npins = feat_get_u32(p + 20);
    uint32_t nused = feat_get_u32(p + 24);
    uint64_t total = feat_get_u64(p + 32);
    uint64_t nslots = (uint64_t)capacity + max_pins;
    if (nslots == 0 || nslots > FEAT_CATFREQ_MAX_SLOTS || label_cap > FEAT_CATFREQ_MAX_LABEL ||
        npins > max_pins || nused > capacity)
        return FEAT_ERR_CORRUPT;
    /* each entry needs CF_ENT bytes: reject counts the blob cannot hold
     * before allocating anything */
    if (((uint64_t)npins + nused) * CF_ENT > len - CF_HDR - 4) return FEAT_ERR_CORRUPT;
    feat_err_t e;
    feat_catfreq_t *cf = feat_catfreq_new(capacity, max_pins, label_cap, &e);
    if (!cf) return e == FEAT_ERR_INVALID ? FEAT_ERR_CORRUPT : e;
    size_t off = CF_HDR, end = len - 4;
    uint64_t guaranteed = 0;
    feat_err_t bad = FEAT_OK;
    for (uint32_t i = 0; i < npins + nused && bad == FEAT_OK; i++) {
        if (end - off < CF_ENT) { bad = FEAT_ERR_CORRUPT; break; }
        uint64_t hash = feat_get_u64(p + off), count = feat_get_u64(p + off + 8);
        uint64_t err = feat_get_u64(p + off + 16);
        size_t ll = feat_get_u16(p + off + 24);
        off += CF_ENT;
        if (ll > end - off || (ll > 0 && ll >= label_cap)) { bad = FEAT_ERR_CORRUPT; break; }
        int pinned = i < npins;
        if (err > count || (pinned && err != 0) || (!pinned && count - err == 0)) {
            bad = FEAT_ERR_CORRUPT;
            break;
        }
        if (memchr(p + off, '\0', ll)) { bad = FEAT_ERR_CORRUPT; break; }
        if (index_find(cf, hash) != UINT32_MAX) { bad = FEAT_ERR_CORRUPT; break; }
        if (guaranteed > UINT64_MAX - (count - err)) { bad = FEAT_ERR_CORRUPT; break; }
        guaranteed += count - err;
        uint32_t s;
        if (pinned) {
            s = capacity + cf->npins++;
        } else {
            s = cf->nused++;
            cf->heap[s] = s;
            cf->hkey[s] = count;
        }
        cf->slots[s].hash = hash;
        cf->slots[s].count = count;
        cf->slots[s].err = err;
        cf->slots[s].pinned = (uint32_t)pinned;
        cf->slots[s].heap = pinned ? 0 : s;
        set_label(cf, s, (const char *)(p + off), ll);
        index_insert(cf, hash, s);
        off += ll;
    }
    if (bad == FEAT_OK && off != end) bad = FEAT_ERR_CORRUPT;
    if (bad == FEAT_OK && guaranteed > total) bad = FEAT_ERR_CORRUPT;
    for (uint32_t i = 1; bad == FEAT_OK && i < cf->nused; i++)
        if (heap_less(cf, i, (i - 1) / 2)) bad = FEAT_ERR_CORRUPT;
    if (bad != FEAT_OK) {
        feat_catfreq_destroy(cf);
        return bad;
    }
    cf->total = total;
    cf->guaranteed = guaranteed;
    *out = cf;
    return FEAT_OK;
}
