/* common/metrics.c — see metrics.h. */
#include "common/metrics.h"
#include "common/err.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double feat_latency_buckets[] = {0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001,
                                       0.002,   0.005,  0.01,   0.025,  0.05,   0.1,     0.25,
                                       0.5,     1.0,    2.5,    10.0};
const size_t feat_latency_nbuckets = sizeof(feat_latency_buckets) / sizeof(feat_latency_buckets[0]);

struct feat_metric {
    struct feat_metric *next;
    struct family *fam;
    char *labels;
    _Atomic uint64_t v;       /* counter value, or gauge/sum as double bits */
    _Atomic uint64_t count;   /* histogram observations */
    _Atomic uint64_t *buckets;/* histogram: nbounds + 1 cumulative-later counts */
};

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    feat_metric_type_t type;
    double *bounds;
    size_t nbounds;
    feat_metric_t *series;
} family_t;

typedef struct collector {
    struct collector *next;
    feat_metrics_collect_fn *fn;
    void *arg;
} collector_t;

struct feat_metrics {
    pthread_mutex_t lock;
    family_t *fams;
    collector_t *collectors;
};

struct feat_metrics_emit {
    feat_buf_t *out;
    const char *name;
    feat_metric_type_t type;
};

static uint64_t dbits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static double bitsd(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

feat_metrics_t *feat_metrics_new(void) {
    feat_metrics_t *r = calloc(1, sizeof(*r));
    if (r) pthread_mutex_init(&r->lock, NULL);
    return r;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static feat_metrics_t *global_reg;
static void global_init(void) { global_reg = feat_metrics_new(); }

feat_metrics_t *feat_metrics_global(void) {
    pthread_once(&global_once, global_init);
    return global_reg;
}

void feat_metrics_destroy(feat_metrics_t *r) {
    if (!r) return;
    for (family_t *f = r->fams, *fn; f; f = fn) {
        fn = f->next;
        for (feat_metric_t *m = f->series, *mn; m; m = mn) {
            mn = m->next;
            free(m->labels);
            free(m->buckets);
            free(m);
        }
        free(f->name);
        free(f->help);
        free(f->bounds);
        free(f);
    }
    for (collector_t *c = r->collectors, *cn; c; c = cn) {
        cn = c->next;
        free(c);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static int name_ok(const char *n) {
    if (!n || !*n) return 0;
    for (const char *p = n; *p; p++) {
        int c = (unsigned char)*p;
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
        if (!alpha && !(p != n && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

static feat_metric_t *reg_series(feat_metrics_t *r, const char *name, const char *help,
                                 const char *labels, feat_metric_type_t type,
                                 const double *bounds, size_t nbounds) {
    if (!r || !name_ok(name)) return NULL;
    if (!labels) labels = "";
    feat_metric_t *res = NULL;
    pthread_mutex_lock(&r->lock);
    family_t *f = r->fams;
    while (f && strcmp(f->name, name) != 0) f = f->next;
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f) goto out;
        f->name = strdup(name);
        f->help = strdup(help ? help : "");
        f->type = type;
        if (nbounds) {
            f->bounds = malloc(nbounds * sizeof(double));
            if (f->bounds) memcpy(f->bounds, bounds, nbounds * sizeof(double));
            f->nbounds = nbounds;
        }
        if (!f->name || !f->help || (nbounds && !f->bounds)) {
            free(f->name); free(f->help); free(f->bounds); free(f);
            goto out;
        }
        f->next = r->fams;
        r->fams = f;
    } else if (f->type != type) {
        goto out;
    }
    for (feat_metric_t *m = f->series; m; m = m->next)
        if (strcmp(m->labels, labels) == 0) { res = m; goto out; }
    feat_metric_t *m = calloc(1, sizeof(*m));
    if (!m) goto out;
    m->labels = strdup(labels);
    if (type == FEAT_METRIC_HISTOGRAM) m->buckets = calloc(f->nbounds + 1, sizeof(*m->buckets));
    if (!m->labels || (type == FEAT_METRIC_HISTOGRAM && !m->buckets)) {
        free(m->labels); free(m->buckets); free(m);
        goto out;
    }
    m->fam = f;
    atomic_init(&m->v, type == FEAT_METRIC_COUNTER ? 0 : dbits(0.0));
    /* append to keep registration order among a family's series */
    feat_metric_t **pp = &f->series;
    while (*pp) pp = &(*pp)->next;
    *pp = m;
    res = m;
out:
    pthread_mutex_unlock(&r->lock);
    return res;
}

feat_metric_t *feat_counter(feat_metrics_t *r, const char *name, const char *help, const char *labels) {
    return reg_series(r, name, help, labels, FEAT_METRIC_COUNTER, NULL, 0);
}
feat_metric_t *feat_gauge(feat_metrics_t *r, const char *name, const char *help, const char *labels) {
    return reg_series(r, name, help, labels, FEAT_METRIC_GAUGE, NULL, 0);
}
feat_metric_t *feat_histogram(feat_metrics_t *r, const char *name, const char *help,
                              const char *labels, const double *bounds, size_t nbounds) {
    for (size_t i = 1; i < nbounds; i++)
        if (!(bounds[i] > bounds[i - 1])) return NULL;
    return reg_series(r, name, help, labels, FEAT_METRIC_HISTOGRAM, bounds, nbounds);
}

void feat_metric_add(feat_metric_t *m, uint64_t n) {
    if (m) atomic_fetch_add_explicit(&m->v, n, memory_order_relaxed);
}

void feat_metric_set(feat_metric_t *m, double v) {
    if (m) atomic_store_explicit(&m->v, dbits(v), memory_order_relaxed);
}

static void atomic_add_double(_Atomic uint64_t *a, double d) {
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, dbits(bitsd(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void feat_metric_gauge_add(feat_metric_t *m, double d) {
    if (m) atomic_add_double(&m->v, d);
}

void feat_metric_observe(feat_metric_t *m, double v) {
    if (!m || !m->buckets) return;
    const family_t *f = m->fam;
    size_t lo = 0, hi = f->nbounds; /* first bound >= v, or nbounds (+Inf) */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->bounds[mid] >= v) hi = mid; else lo = mid + 1;
    }
    atomic_fetch_add_explicit(&m->buckets[lo], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    atomic_add_double(&m->v, v);
}

uint64_t feat_metric_count(const feat_metric_t *m) {
    if (!m) return 0;
    if (m->fam->type == FEAT_METRIC_HISTOGRAM)
        return atomic_load_explicit(&((feat_metric_t *)m)->count, memory_order_relaxed);
    if (m->fam->type == FEAT_METRIC_COUNTER)
        return atomic_load_explicit(&((feat_metric_t *)m)->v, memory_order_relaxed);
    return (uint64_t)bitsd(atomic_load_explicit(&((feat_metric_t *)m)->v, memory_order_relaxed));
}

double feat_metric_value(const feat_metric_t *m) {
    if (!m) return 0;
    uint64_t v = atomic_load_explicit(&((feat_metric_t *)m)->v, memory_order_relaxed);
    return m->fam->type == FEAT_METRIC_COUNTER ? (double)v : bitsd(v);
}

double feat_metric_quantile(const feat_metric_t *m, double q) {
    if (!m || !m->buckets) return NAN;
    const family_t *f = m->fam;
    uint64_t total = 0;
    for (size_t i = 0; i <= f->nbounds; i++) total += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
    if (!total) return NAN;
    double rank = q * (double)total, cum = 0;
    for (size_t i = 0; i <= f->nbounds; i++) {
        double c = (double)atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        if (cum + c >= rank && c > 0) {
            if (i == f->nbounds) return f->bounds[f->nbounds - 1];
            double lo = i ? f->bounds[i - 1] : 0, hi = f->bounds[i];
            return lo + (hi - lo) * (rank - cum) / c;
        }
        cum += c;
    }
    return f->nbounds ? f->bounds[f->nbounds - 1] : NAN;
}

feat_err_t feat_metrics_add_collector(feat_metrics_t *r, feat_metrics_collect_fn *fn, void *arg) {
    collector_t *c = calloc(1, sizeof(*c));
    if (!c) return FEAT_ERR_NOMEM;
    c->fn = fn;
    c->arg = arg;
    pthread_mutex_lock(&r->lock);
    collector_t **pp = &r->collectors;
    while (*pp) pp = &(*pp)->next;
    *pp = c;
    pthread_mutex_unlock(&r->lock);
    return FEAT_OK;
}

void feat_metrics_remove_collector(feat_metrics_t *r, feat_metrics_collect_fn *fn, void *arg) {
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    for (collector_t **pp = &r->collectors; *pp; pp = &(*pp)->next) {
        if ((*pp)->fn == fn && (*pp)->arg == arg) {
            collector_t *c = *pp;
            *pp = c->next;
            free(c);
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
}

static const char *type_name(feat_metric_type_t t) {
    return t == FEAT_METRIC_COUNTER ? "counter" : t == FEAT_METRIC_GAUGE ? "gauge" : "histogram";
}

static void put_help(feat_buf_t *b, const char *name, const char *help, feat_metric_type_t t) {
    feat_buf_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\') feat_buf_puts(b, "\\\\");
        else if (*p == '\n') feat_buf_puts(b, "\\n");
        else feat_buf_putc(b, *p);
    }
    feat_buf_printf(b, "\n# TYPE %s %s\n", name, type_name(t));
}

static void put_value(feat_buf_t *b, double v) {
    if (isnan(v)) feat_buf_puts(b, "NaN");
    else if (isinf(v)) feat_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(int64_t)v && fabs(v) < 9e15) feat_buf_printf(b, "%lld", (long long)v);
    else feat_buf_printf(b, "%.17g", v);
}

static void put_sample(feat_buf_t *b, const char *name, const char *suffix, const char *labels,
                       const char *extra, double v) {
    feat_buf_puts(b, name);
    feat_buf_puts(b, suffix);
    int has_l = labels && *labels, has_e = extra && *extra;
    if (has_l || has_e) {
        feat_buf_putc(b, '{');
        if (has_l) feat_buf_puts(b, labels);
        if (has_l && has_e) feat_buf_putc(b, ',');
        if (has_e) feat_buf_puts(b, extra);
        feat_buf_putc(b, '}');
    }
    feat_buf_putc(b, ' ');
    put_value(b, v);
    feat_buf_putc(b, '\n');
}

static int fam_cmp(const void *a, const void *b) {
    return strcmp((*(family_t *const *)a)->name, (*(family_t *const *)b)->name);
}

void feat_metrics_render(feat_metrics_t *r, feat_buf_t *b) {
    pthread_mutex_lock(&r->lock);
    size_t n = 0;
    for (family_t *f = r->fams; f; f = f->next) n++;
    family_t **arr = n ? malloc(n * sizeof(*arr)) : NULL;
    size_t i = 0;
    if (arr) for (family_t *f = r->fams; f; f = f->next) arr[i++] = f;
    if (arr) qsort(arr, n, sizeof(*arr), fam_cmp);
    for (i = 0; arr && i < n; i++) {
        family_t *f = arr[i];
        put_help(b, f->name, f->help, f->type);
        for (feat_metric_t *m = f->series; m; m = m->next) {
            if (f->type != FEAT_METRIC_HISTOGRAM) {
                put_sample(b, f->name, "", m->labels, NULL, feat_metric_value(m));
                continue;
            }
            uint64_t cum = 0;
            char le[64];
            for (size_t k = 0; k <= f->nbounds; k++) {
                cum += atomic_load_explicit(&m->buckets[k], memory_order_relaxed);
                if (k < f->nbounds) snprintf(le, sizeof(le), "le=\"%.17g\"", f->bounds[k]);
                else snprintf(le, sizeof(le), "le=\"+Inf\"");
                put_sample(b, f->name, "_bucket", m->labels, le, (double)cum);
            }
            put_sample(b, f->name, "_sum", m->labels, NULL, feat_metric_value(m));
            /* count equals the +Inf bucket, read once above, so they agree */
            put_sample(b, f->name, "_count", m->labels, NULL, (double)cum);
        }
    }
    free(arr);
    feat_metrics_emit_t em = {b, NULL, FEAT_METRIC_GAUGE};
    for (collector_t *c = r->collectors; c; c = c->next) c->fn(&em, c->arg);
    pthread_mutex_unlock(&r->lock);
}

void feat_metrics_emit_family(feat_metrics_emit_t *em, const char *name, const char *help,
                              feat_metric_type_t type) {
    em->name = name;
    em->type = type;
    put_help(em->out, name, help ? help : "", type);
}

void feat_metrics_emit_sample(feat_metrics_emit_t *em, const char *labels, double value) {
    if (em->name) put_sample(em->out, em->name, "", labels, NULL, value);
}

void feat_metrics_label_escape(const char *in, char *out, size_t cap) {
    size_t o = 0;
    if (!cap) return;
    for (; *in && o + 2 < cap; in++) {
        if (*in == '\\' || *in == '"') { out[o++] = '\\'; out[o++] = *in; }
        else if (*in == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
        else out[o++] = *in;
    }
    out[o] = 0;
}
