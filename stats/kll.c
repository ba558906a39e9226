/*
 * stats/kll.c — KLL quantile sketch with all memory allocated at creation.
 * See kll.h for the contract and the error bound.
 *
 * Layout.  One array items[0..phys).  Levels are packed against the end:
 * level h occupies items[lv[h] .. lv[h+1]), lv[H] == phys, and the free space
 * is items[0 .. lv[0]).  Level 0 grows downwards (update writes
 * items[--lv[0]]) and is unsorted unless sorted0 is set; levels >= 1 are
 * always sorted.  An item at level h stands for 2^h values.
 *
 * Capacity of a level d steps below the top: cap_d = max(8, round(k (2/3)^d)),
 * computed with integers so that every platform agrees.  The logical capacity
 * with H levels is C(H) = cap_0 + ... + cap_{H-1} (prefix sums in capsum[]);
 * phys = C(FEAT_KLL_MAX_LEVELS) is enough for any H, so no level is ever
 * reallocated.  Invariant after every public call: retained <= C(H).
 */
#include "stats/kll.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats/stats_util.h"

#define KLL_MIN_WIDTH 8u
#define KLL_MAXL FEAT_KLL_MAX_LEVELS

struct feat_kll {
    uint32_t k;                      /* top-level capacity, 8..65535 */
    uint32_t nlevels;                /* H, 1..KLL_MAXL */
    uint32_t phys;                   /* physical item slots */
    uint32_t cap_now;                /* C(H) */
    int sorted0;                     /* level 0 currently sorted */
    uint64_t rng;                    /* splitmix64 state */
    uint64_t n;                      /* values summarised (exact) */
    double minv, maxv;               /* exact; +inf / -inf when empty */
    double vsum;                     /* sum of 4^h over compactions */
    uint32_t capd[KLL_MAXL];         /* cap by depth below the top */
    uint32_t capsum[KLL_MAXL + 1];   /* capsum[H] = C(H) */
    uint32_t lv[KLL_MAXL + 1];       /* level boundaries */
    double *items;                   /* phys slots, same allocation */
};

/* ---------------------------------------------------------------- capacity */

static uint32_t cap_at_depth(uint32_t k, uint32_t depth) {
    if (depth > 30) return KLL_MIN_WIDTH;            /* k (2/3)^31 < 1 */
    uint64_t pow3 = 1;
    for (uint32_t i = 0; i < depth; i++) pow3 *= 3;
    uint64_t num = (uint64_t)k << (depth + 1);       /* 2 k 2^d < 2^48 */
    uint64_t c = (num / pow3 + 1) / 2;               /* round(k (2/3)^d) */
    return c < KLL_MIN_WIDTH ? KLL_MIN_WIDTH : (uint32_t)c;
}

static void init_caps(uint32_t k, uint32_t *capd, uint32_t *capsum) {
    capsum[0] = 0;
    for (uint32_t d = 0; d < KLL_MAXL; d++) {
        capd[d] = cap_at_depth(k, d);
        capsum[d + 1] = capsum[d] + capd[d];
    }
}

size_t feat_kll_footprint_for_k(uint32_t k) {
    if (k < FEAT_KLL_K_MIN || k > FEAT_KLL_K_MAX) return 0;
    size_t phys = 0;
    for (uint32_t d = 0; d < KLL_MAXL; d++) phys += cap_at_depth(k, d);
    return sizeof(struct feat_kll) + phys * sizeof(double);
}

static inline uint32_t level_cap(const feat_kll_t *s, uint32_t h) {
    return s->capd[s->nlevels - 1 - h];
}

static inline uint32_t retained(const feat_kll_t *s) {
    return s->phys - s->lv[0];
}

/* --------------------------------------------------------------- lifecycle */

static void clear_levels(feat_kll_t *s) {
    s->nlevels = 1;
    s->lv[0] = s->lv[1] = s->phys;
    s->cap_now = s->capsum[1];
    s->sorted0 = 1;
    s->n = 0;
    s->minv = INFINITY;
    s->maxv = -INFINITY;
    s->vsum = 0.0;
}

feat_kll_t *feat_kll_new(uint32_t k, uint64_t seed, feat_err_t *err) {
    if (k < FEAT_KLL_K_MIN || k > FEAT_KLL_K_MAX) {
        if (err) *err = FEAT_ERR_INVALID;
        return NULL;
    }
    size_t bytes = feat_kll_footprint_for_k(k);
    feat_kll_t *s = (feat_kll_t *)malloc(bytes);
    if (!s) {
        if (err) *err = FEAT_ERR_NOMEM;
        return NULL;
    }
    memset(s, 0, sizeof *s);
    s->k = k;
    init_caps(k, s->capd, s->capsum);
    s->phys = s->capsum[KLL_MAXL];
    s->items = (double *)(void *)(s + 1);
    s->rng = seed;
    clear_levels(s);
    if (err) *err = FEAT_OK;
    return s;
}

void feat_kll_destroy(feat_kll_t *s) {
    free(s);
}

void feat_kll_reset(feat_kll_t *s) {
    clear_levels(s);
}

void feat_kll_seed(feat_kll_t *s, uint64_t seed) {
    s->rng = seed;
}

/* ------------------------------------------------------------- compaction */

/* One draw per compaction (compactions are rare: a bit per about k/3
 * values), not bits buffered from one draw: the generator's state is then
 * all there is, so a sketch serialized and read back continues exactly as
 * the original would (aggregation tiles fold in any grouping and must give
 * the same bytes). */
static inline uint32_t random_bit(feat_kll_t *s) {
    return (uint32_t)(feat_splitmix64(&s->rng) >> 63);
}

static void add_top_level(feat_kll_t *s) {
    uint32_t H = s->nlevels;
    s->lv[H + 1] = s->lv[H];
    s->nlevels = H + 1;
    s->cap_now = s->capsum[H + 1];
}

/* Halves level h (h < H-1) into level h+1.  If level h holds an odd number of
 * items its smallest stays behind.  The kept half (odd or even positions, by a
 * fair coin) is merged into the sorted level h+1 in place, and the levels
 * below h move up into the space freed.
 *
 * Why the bound in kll.h holds.  Fix a query y.  Before the compaction the
 * level contributes r * 2^h to R^(y), r = number of its (compacted) items
 * <= y.  After, it contributes 2^(h+1) times the number of kept items <= y:
 * exactly r 2^h when r is even, and (r +- 1) 2^h with probability 1/2 each
 * when r is odd.  So each compaction adds a zero-mean error bounded by 2^h
 * given the past, and the error of R^(y) is a martingale with those
 * increments: Azuma–Hoeffding gives P(|err| >= t) <= 2 exp(-t^2/(2V)),
 * V = sum of 4^h.  Which compactions happen depends only on how many items
 * arrive (and merges), never on values or coins, so V is a fixed number.
 * A priori bound on V for one stream of n values: every compaction at level h
 * consumes at least cap_h - 1 >= (7/8) cap_h items (cap_h >= 8), and at most
 * n / 2^h items ever reach level h, so there are at most
 * (8/7) n / (2^h cap_h) compactions there and V <= (8/7) n sum_h 2^h / cap_h
 * over the levels that were ever compacted — all but the top one, H-1.  With
 * cap_h >= k (2/3)^(H-1-h) that sum is at most
 * (2^(H-1)/k) sum_{j>=1} (3/4)^j = 3 * 2^(H-1) / k.  The top level exists
 * only because level H-2 once held k items of weight 2^(H-2), so
 * 2^(H-1) <= 2n/k.  Hence V <= (48/7) n^2 / k^2.  (Measured: V is about
 * 0.5-0.65 n^2/k^2, so the bound computed from the actual V is what
 * feat_kll_rank_error() reports.) */
static void compact_level(feat_kll_t *s, uint32_t h) {
    double *A = s->items;
    uint32_t b = s->lv[h], e1 = s->lv[h + 1], e2 = s->lv[h + 2];
    uint32_t sz = e1 - b;
    if (h == 0 && !s->sorted0) feat_sort_f64(A + b, sz);
    uint32_t odd = sz & 1u;
    uint32_t a = b + odd;
    uint32_t half = (sz - odd) / 2;
    uint32_t off = random_bit(s);
    for (uint32_t i = 0; i < half; i++) A[a + i] = A[a + 2 * i + off];
    /* Merge X = A[a, a+half) with Y = A[e1, e2) into A[a+half, e2), front
     * to back.  The target begins half slots before Y (the consumed second
     * half of level h), so with cx items of X placed the write position is
     * j - (half - cx) <= j: no unread item of Y is overwritten, and X lies
     * wholly before the target. */
    uint32_t i = a, iend = a + half, j = e1, w = a + half;
    while (i < iend && j < e2) {       /* branch-free step: the comparison
                                        * is a coin flip on random data */
        double xi = A[i], yj = A[j];
        uint32_t take_y = yj < xi;
        A[w++] = take_y ? yj : xi;
        j += take_y;
        i += 1u - take_y;
    }
    while (i < iend) A[w++] = A[i++];
    /* move levels 0..h (items[lv[0], a)) up by half */
    uint32_t lo = s->lv[0];
    if (a > lo) memmove(A + lo + half, A + lo, (size_t)(a - lo) * sizeof(double));
    for (uint32_t l = 0; l <= h; l++) s->lv[l] += half;
    s->lv[h + 1] = a + half;
    if (h == 0) s->sorted0 = 1;        /* at most one item left */
    s->vsum += h < 32 ? (double)(UINT64_C(1) << (2 * h)) : ldexp(1.0, 2 * (int)h);
}

/* Compacts the lowest level at or over its capacity, adding a level first
 * when that is the top one.  Precondition: retained >= C(H), so such a level
 * exists.  Frees at least 4 slots.  FEAT_ERR_TOO_LARGE when the top level is
 * full and no level can be added. */
static feat_err_t kll_compress(feat_kll_t *s) {
    uint32_t H = s->nlevels, h;
    for (h = 0; h < H; h++)
        if (s->lv[h + 1] - s->lv[h] >= level_cap(s, h)) break;
    if (h == H) return FEAT_ERR_STATE;   /* unreachable while retained >= C(H);
                                          * keeps the callers' loops finite */
    if (h == H - 1) {
        if (H == KLL_MAXL) return FEAT_ERR_TOO_LARGE;
        add_top_level(s);
    }
    compact_level(s, h);
    return FEAT_OK;
}

/* ------------------------------------------------------------------ update */

feat_err_t feat_kll_update(feat_kll_t *s, double x) {
    if (x != x) return FEAT_ERR_INVALID;
    if (retained(s) >= s->cap_now) {
        feat_err_t e = kll_compress(s);
        if (e != FEAT_OK) return e;
    }
    s->items[--s->lv[0]] = x;
    s->sorted0 = 0;
    if (x < s->minv) s->minv = x;
    if (x > s->maxv) s->maxv = x;
    s->n++;
    return FEAT_OK;
}

/* Inserts cnt sorted values of weight 2^h into level h (h < H, cnt <= free
 * slots): the levels below h move down by cnt, then the values are merged
 * into level h in place, front to back. */
static void insert_sorted(feat_kll_t *s, uint32_t h, const double *x, uint32_t cnt) {
    double *A = s->items;
    uint32_t lo = s->lv[0], old = s->lv[h];
    if (old > lo) memmove(A + lo - cnt, A + lo, (size_t)(old - lo) * sizeof(double));
    for (uint32_t l = 0; l <= h; l++) s->lv[l] -= cnt;
    uint32_t w = s->lv[h], j = old, e = s->lv[h + 1], i = 0;
    while (i < cnt && j < e) {
        if (x[i] <= A[j]) A[w++] = x[i++];
        else A[w++] = A[j++];
    }
    while (i < cnt) A[w++] = x[i++];
}

feat_err_t feat_kll_merge(feat_kll_t *dst, const feat_kll_t *src) {
    if (!dst || !src || dst == src || dst->k != src->k) return FEAT_ERR_INVALID;
    if (src->n == 0) return FEAT_OK;
    if (dst->n > UINT64_MAX - src->n) return FEAT_ERR_TOO_LARGE;
    feat_err_t e;
    /* level 0: plain appends (dst's level 0 is unsorted anyway) */
    for (uint32_t p = src->lv[0]; p < src->lv[1]; p++) {
        if (retained(dst) >= dst->phys && (e = kll_compress(dst)) != FEAT_OK) return e;
        dst->items[--dst->lv[0]] = src->items[p];
        dst->sorted0 = 0;
    }
    for (uint32_t h = 1; h < src->nlevels; h++) {
        const double *x = src->items + src->lv[h];
        uint32_t left = src->lv[h + 1] - src->lv[h];
        if (left == 0) continue;
        while (dst->nlevels <= h) add_top_level(dst);
        while (left > 0) {
            uint32_t room = dst->phys - retained(dst);
            if (room == 0) {
                if ((e = kll_compress(dst)) != FEAT_OK) return e;
                continue;
            }
            uint32_t c = left < room ? left : room;
            insert_sorted(dst, h, x, c);
            x += c;
            left -= c;
        }
    }
    dst->n += src->n;
    if (src->minv < dst->minv) dst->minv = src->minv;
    if (src->maxv > dst->maxv) dst->maxv = src->maxv;
    dst->vsum += src->vsum;
    while (retained(dst) > dst->cap_now)
        if ((e = kll_compress(dst)) != FEAT_OK) return e;
    return FEAT_OK;
}

/* --------------------------------------------------------------- accessors */

uint64_t feat_kll_count(const feat_kll_t *s) { return s->n; }
double feat_kll_min(const feat_kll_t *s) { return s->n ? s->minv : NAN; }
double feat_kll_max(const feat_kll_t *s) { return s->n ? s->maxv : NAN; }
uint32_t feat_kll_k(const feat_kll_t *s) { return s->k; }
int feat_kll_is_empty(const feat_kll_t *s) { return s->n == 0; }
uint32_t feat_kll_retained(const feat_kll_t *s) { return retained(s); }
uint32_t feat_kll_num_levels(const feat_kll_t *s) { return s->nlevels; }
size_t feat_kll_footprint(const feat_kll_t *s) { return feat_kll_footprint_for_k(s->k); }
double feat_kll_variance_sum(const feat_kll_t *s) { return s->vsum; }

/* number of a[0..n) (sorted) that are <= y (inclusive) or < y */
static uint32_t count_sorted(const double *a, uint32_t n, double y, int inclusive) {
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int below = inclusive ? (a[mid] <= y) : (a[mid] < y);
        if (below) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

uint64_t feat_kll_rank(const feat_kll_t *s, double y, int inclusive) {
    if (s->n == 0 || y != y) return 0;
    const double *A = s->items;
    uint64_t r = 0;
    uint32_t b = s->lv[0], e = s->lv[1];
    if (s->sorted0) {
        r = count_sorted(A + b, e - b, y, inclusive);
    } else if (inclusive) {
        for (uint32_t p = b; p < e; p++) r += (A[p] <= y);
    } else {
        for (uint32_t p = b; p < e; p++) r += (A[p] < y);
    }
    for (uint32_t h = 1; h < s->nlevels; h++) {
        uint32_t c = count_sorted(A + s->lv[h], s->lv[h + 1] - s->lv[h], y, inclusive);
        r += (uint64_t)c << h;
    }
    return r;
}

double feat_kll_cdf(const feat_kll_t *s, double y) {
    if (s->n == 0) return NAN;
    return (double)feat_kll_rank(s, y, 1) / (double)s->n;
}

/* ---------------------------------------------------------- sorted access */

/* A k-way merge of the sorted levels through a binary min-heap of runs keyed
 * by their next item: O(log H) per item. */
static inline double iter_head(const feat_kll_iter_t *it, uint32_t run) {
    return it->items[it->pos[run]];
}

static void iter_sift(feat_kll_iter_t *it, uint32_t i) {
    uint32_t n = it->nheap, r = it->heap[i];
    double v = iter_head(it, r);
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && iter_head(it, it->heap[c + 1]) < iter_head(it, it->heap[c])) c++;
        if (!(iter_head(it, it->heap[c]) < v)) break;
        it->heap[i] = it->heap[c];
        i = c;
    }
    it->heap[i] = r;
}

void feat_kll_iter_begin(feat_kll_t *s, feat_kll_iter_t *it) {
    if (!s->sorted0) {
        feat_sort_f64(s->items + s->lv[0], s->lv[1] - s->lv[0]);
        s->sorted0 = 1;
    }
    it->items = s->items;
    it->nheap = 0;
    for (uint32_t h = 0; h < s->nlevels; h++) {
        if (s->lv[h + 1] == s->lv[h]) continue;
        it->pos[h] = s->lv[h];
        it->end[h] = s->lv[h + 1];
        it->weight[h] = (uint64_t)1 << h;
        it->heap[it->nheap++] = h;
    }
    for (uint32_t i = it->nheap / 2; i-- > 0;) iter_sift(it, i);
}

int feat_kll_iter_next(feat_kll_iter_t *it, double *value, uint64_t *weight) {
    if (it->nheap == 0) return 0;
    uint32_t r = it->heap[0];
    *value = iter_head(it, r);
    *weight = it->weight[r];
    if (++it->pos[r] == it->end[r]) {
        it->heap[0] = it->heap[--it->nheap];
        if (it->nheap == 0) return 1;
    }
    iter_sift(it, 0);
    return 1;
}

feat_err_t feat_kll_quantile(feat_kll_t *s, double q, double *out) {
    if (!(q >= 0.0 && q <= 1.0)) return FEAT_ERR_INVALID;
    if (s->n == 0) return FEAT_ERR_STATE;
    if (q == 0.0) { *out = s->minv; return FEAT_OK; }
    if (q == 1.0) { *out = s->maxv; return FEAT_OK; }
    /* q n rounded: a target within rounding error of an integer is that
     * integer, so q = i/n picks the i-th smallest value exactly */
    double target = q * (double)s->n;
    target -= 4.0 * DBL_EPSILON * target;
    feat_kll_iter_t it;
    feat_kll_iter_begin(s, &it);
    double v = s->maxv;
    uint64_t w, cum = 0;
    while (feat_kll_iter_next(&it, &v, &w)) {
        cum += w;
        if ((double)cum >= target) break;
    }
    *out = v;
    return FEAT_OK;
}

/* ------------------------------------------------------------ error bound */

double feat_kll_rank_error_apriori(uint32_t k, double delta) {
    if (!(delta > 0.0 && delta < 1.0) || k < FEAT_KLL_K_MIN || k > FEAT_KLL_K_MAX) return NAN;
    return sqrt(2.0 * (48.0 / 7.0) * log(2.0 / delta)) / (double)k;
}

double feat_kll_rank_error(const feat_kll_t *s, double delta) {
    if (!(delta > 0.0 && delta < 1.0) || s->n == 0) return NAN;
    if (s->vsum == 0.0) return 0.0;
    double n = (double)s->n, best = 1.0;
    /* min over M of sqrt(2 V ln(4M/delta))/n + 1/M, M on a 5% geometric grid;
     * M beyond 4n cannot help (the first term is at least about 1/n) */
    for (double M = 1.0; M <= 4.0 * n; M = floor(M * 1.05) + 1.0) {
        double e = sqrt(2.0 * s->vsum * log(4.0 * M / delta)) / n + 1.0 / M;
        if (e < best) best = e;
    }
    return best;
}

/* ---------------------------------------------------------- serialization */

/* v1 layout, little-endian:
 *   0  "FKLL"        4  u8 version     5  u8 min width (8)   6  u16 k
 *   8  u8 levels H   9  u8 0           10 u16 0              12 u32 retained
 *   16 u64 n         24 f64 min        32 f64 max            40 f64 V
 *   48 u64 rng state
 *   56 u32 size of level h, h = 0..H-1
 *   then f64 items, level 0 first (ascending within levels >= 1)
 *   then u32 CRC-32 of every preceding byte. */
#define KLL_HDR 56u

size_t feat_kll_serialized_size(const feat_kll_t *s) {
    return KLL_HDR + 4u * s->nlevels + 8u * (size_t)retained(s) + 4u;
}

feat_err_t feat_kll_serialize(const feat_kll_t *s, void *buf, size_t cap, size_t *written) {
    size_t need = feat_kll_serialized_size(s);
    if (written) *written = 0;
    if (!buf || cap < need) return FEAT_ERR_TOO_LARGE;
    unsigned char *p = (unsigned char *)buf;
    memcpy(p, "FKLL", 4);
    p[4] = (unsigned char)FEAT_KLL_FORMAT_VERSION;
    p[5] = (unsigned char)KLL_MIN_WIDTH;
    feat_put_u16(p + 6, (uint16_t)s->k);
    p[8] = (unsigned char)s->nlevels;
    p[9] = 0;
    feat_put_u16(p + 10, 0);
    feat_put_u32(p + 12, retained(s));
    feat_put_u64(p + 16, s->n);
    feat_put_f64(p + 24, s->n ? s->minv : 0.0);
    feat_put_f64(p + 32, s->n ? s->maxv : 0.0);
    feat_put_f64(p + 40, s->vsum);
    feat_put_u64(p + 48, s->rng);
    size_t off = KLL_HDR;
    for (uint32_t h = 0; h < s->nlevels; h++, off += 4)
        feat_put_u32(p + off, s->lv[h + 1] - s->lv[h]);
    for (uint32_t i = s->lv[0]; i < s->phys; i++, off += 8)
        feat_put_f64(p + off, s->items[i]);
    feat_put_u32(p + off, feat_crc32(0, p, off));
    if (written) *written = need;
    return FEAT_OK;
}

feat_err_t feat_kll_deserialize(const void *buf, size_t len, feat_kll_t **out) {
    const unsigned char *p = (const unsigned char *)buf;
    if (!out) return FEAT_ERR_INVALID;
    *out = NULL;
    if (!p || len < KLL_HDR + 8u || memcmp(p, "FKLL", 4) != 0) return FEAT_ERR_CORRUPT;
    /* every version ends with the CRC-32 of the preceding bytes: check it
     * first, so damage always reads as corruption */
    if (feat_crc32(0, p, len - 4) != feat_get_u32(p + len - 4)) return FEAT_ERR_CORRUPT;
    if (p[4] != FEAT_KLL_FORMAT_VERSION) return FEAT_ERR_UNIMPLEMENTED;
    uint32_t k = feat_get_u16(p + 6), H = p[8], ret = feat_get_u32(p + 12);
    if (p[5] != KLL_MIN_WIDTH || p[9] != 0 || feat_get_u16(p + 10) != 0) return FEAT_ERR_CORRUPT;
    if (k < FEAT_KLL_K_MIN || H < 1 || H > KLL_MAXL) return FEAT_ERR_CORRUPT;
    uint32_t capd[KLL_MAXL], capsum[KLL_MAXL + 1];
    init_caps(k, capd, capsum);
    if (ret > capsum[H]) return FEAT_ERR_CORRUPT;
    size_t need = KLL_HDR + 4u * H + 8u * (size_t)ret + 4u;
    if (len != need) return FEAT_ERR_CORRUPT;

    uint64_t n = feat_get_u64(p + 16);
    double minv = feat_get_f64(p + 24), maxv = feat_get_f64(p + 32);
    double vsum = feat_get_f64(p + 40);
    if (!(vsum >= 0.0) || isinf(vsum)) return FEAT_ERR_CORRUPT;
    if ((n == 0) != (ret == 0)) return FEAT_ERR_CORRUPT;
    if (n > 0 && !(minv <= maxv)) return FEAT_ERR_CORRUPT;     /* also NaN */
    /* level sizes: sum to ret, weights sum exactly to n */
    uint32_t sizes[KLL_MAXL];
    uint64_t total = 0, wsum = 0;
    for (uint32_t h = 0; h < H; h++) {
        sizes[h] = feat_get_u32(p + KLL_HDR + 4u * h);
        total += sizes[h];
        if (total > ret) return FEAT_ERR_CORRUPT;
        if (sizes[h] != 0 && h > 0 && (uint64_t)sizes[h] > ((UINT64_MAX - wsum) >> h))
            return FEAT_ERR_CORRUPT;
        wsum += (uint64_t)sizes[h] << h;
    }
    if (total != ret || wsum != n) return FEAT_ERR_CORRUPT;
    if (vsum == 0.0 && (H != 1 || ret != n)) return FEAT_ERR_CORRUPT;
    /* items: no NaN, within [min, max], levels >= 1 sorted */
    const unsigned char *ip = p + KLL_HDR + 4u * H;
    uint32_t idx = 0;
    int saw_min = 0, saw_max = 0;
    for (uint32_t h = 0; h < H; h++) {
        double prev = -INFINITY;
        for (uint32_t i = 0; i < sizes[h]; i++, idx++) {
            double v = feat_get_f64(ip + 8u * idx);
            if (!(v >= minv && v <= maxv)) return FEAT_ERR_CORRUPT;
            if (h > 0 && v < prev) return FEAT_ERR_CORRUPT;
            saw_min |= (v == minv);
            saw_max |= (v == maxv);
            prev = v;
        }
    }
    /* an exact sketch holds its min and max */
    if (vsum == 0.0 && n > 0 && !(saw_min && saw_max)) return FEAT_ERR_CORRUPT;

    feat_err_t e;
    feat_kll_t *s = feat_kll_new(k, 0, &e);
    if (!s) return e == FEAT_ERR_INVALID ? FEAT_ERR_CORRUPT : e;
    s->nlevels = H;
    s->cap_now = s->capsum[H];
    s->lv[H] = s->phys;
    for (uint32_t h = H; h-- > 0;) s->lv[h] = s->lv[h + 1] - sizes[h];
    for (uint32_t i = 0; i < ret; i++) s->items[s->lv[0] + i] = feat_get_f64(ip + 8u * i);
    s->sorted0 = 0;
    s->n = n;
    s->minv = n ? minv : INFINITY;
    s->maxv = n ? maxv : -INFINITY;
    s->vsum = vsum;
    s->rng = feat_get_u64(p + 48);
    *out = s;
    return FEAT_OK;
}
