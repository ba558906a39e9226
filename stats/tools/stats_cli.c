/*
 * stats/tools/stats_cli.c — featd_stats_cli: exposes the drift
 * statistics library to the Python integration tests
 * (tests/integration/drift_stats.py).  Not installed, not an interface.
 *
 * Reads whitespace-separated requests from stdin until EOF and answers each
 * on stdout, numbers printed with %.17g (exact round trip).  Requests:
 *   ks2 ALT METHOD n1 n2 x1... x2...      -> D p location sign method
 *   kspv ALT METHOD d n1 n2               -> p d_used method
 *   kstwo n x | smirnov n x | kolmog z    -> sf
 *   kll K SEED DELTA n x...               -> summary line, m, m lines "v w"
 *   kllmerge K SEED DELTA parts (n x...)* -> as kll, for the merged sketch
 *   kllq K SEED n x... nq q...            -> nq quantiles
 *   ksk K SEED DELTA ALT METHOD n1 x1... n2 x2...
 *                                         -> D p location sign method bound n1 n2
 *   edges NB n x... | edgesk K SEED NB n x...   -> ne e...
 *   counts ne e... n x... | countsk K SEED ne e... n x...   -> counts...
 *   kl EPS B p... q... | psi EPS B r... l... | js B p... q...   -> value
 *   divs EPS B ref... live...             -> kl psi js (feat_divergences)
 *   binsk K SEED NB EPS nref ref... nlive live...
 *       -> the monitor's numeric path: edges at the quantiles of a sketch of
 *          ref (seed SEED), counts of both sketches (live: SEED + 1) at
 *          those edges, then feat_divergences; four lines: "ne e...",
 *          ref counts, live counts, "kl psi js"
 *   chi2h B r... l... | chi2g EPS B obs... ref...   -> stat p dof ncat
 *   chi2sf x dof | gammap a x | gammaq a x          -> value
 *   cat CAP PINS LABELCAP EPS PIN nref s... nlive s...
 *       -> ncat chi2 p dof kl psi js unseen; then aligned ref and live counts
 *   kllser K SEED n x...                  -> hex blob
 *   kstime ALT METHOD REPS n1 n2 x1... x2...
 *       -> D p method t_2samp t_pvalue: as ks2, plus the median wall time
 *          in seconds over REPS (1..1000) calls of feat_ks_2samp and of
 *          feat_ks_pvalue on its D (for tests/bench/bench_ks_exact.py)
 * ALT: 0 two-sided, 1 less, 2 greater.  METHOD: 0 auto, 1 exact, 2 asymp,
 * 3 limit.
 * Exit status 0; a malformed request prints "error ..." and exits 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stats/catfreq.h"
#include "stats/divergence.h"
#include "stats/kll.h"
#include "stats/ks.h"

static char tok[1 << 16];

static int next_token(void) {
    int c;
    size_t n = 0;
    do {
        c = getchar();
        if (c == EOF) return 0;
    } while (c == ' ' || c == '\n' || c == '\t' || c == '\r');
    while (c != EOF && c != ' ' && c != '\n' && c != '\t' && c != '\r') {
        if (n + 1 < sizeof tok) tok[n++] = (char)c;
        c = getchar();
    }
    tok[n] = '\0';
    return 1;
}

static void die(const char *what) {
    printf("error %s\n", what);
    fflush(stdout);
    exit(2);
}

static double rd(void) {
    if (!next_token()) die("eof");
    char *end;
    errno = 0;
    double v = strtod(tok, &end);
    if (*end) die("number");
    return v;
}

static unsigned long long ru(void) {
    if (!next_token()) die("eof");
    char *end;
    unsigned long long v = strtoull(tok, &end, 10);
    if (*end) die("integer");
    return v;
}

static double *alloc_d(size_t n) {
    double *v = (double *)malloc((n ? n : 1) * sizeof(double));
    if (!v) die("nomem");
    return v;
}

static double *rdv(size_t n) {
    double *v = alloc_d(n);
    for (size_t i = 0; i < n; i++) v[i] = rd();
    return v;
}

static void check(feat_err_t e) {
    if (e != FEAT_OK) {
        printf("error %s\n", feat_err_str(e));
        fflush(stdout);
        exit(2);
    }
}

static feat_kll_t *sketch_of(uint32_t k, uint64_t seed, const double *x, size_t n) {
    feat_err_t e;
    feat_kll_t *s = feat_kll_new(k, seed, &e);
    check(e);
    for (size_t i = 0; i < n; i++) check(feat_kll_update(s, x[i]));
    return s;
}

static void print_kll(feat_kll_t *s, double delta) {
    printf("%llu %.17g %.17g %u %u %.17g %.17g %.17g\n", (unsigned long long)feat_kll_count(s),
           feat_kll_min(s), feat_kll_max(s), feat_kll_retained(s), feat_kll_num_levels(s),
           feat_kll_variance_sum(s), feat_kll_rank_error(s, delta),
           feat_kll_rank_error_apriori(feat_kll_k(s), delta));
    printf("%u\n", feat_kll_retained(s));
    feat_kll_iter_t it;
    feat_kll_iter_begin(s, &it);
    double v;
    uint64_t w;
    while (feat_kll_iter_next(&it, &v, &w)) printf("%.17g %llu\n", v, (unsigned long long)w);
}

static void print_vec(const double *v, size_t n) {
    for (size_t i = 0; i < n; i++) printf(i ? " %.17g" : "%.17g", v[i]);
    printf("\n");
}

static void cmd_ks2(void) {
    int alt = (int)ru(), method = (int)ru();
    size_t n1 = ru(), n2 = ru();
    double *a = rdv(n1), *b = rdv(n2);
    feat_ks_result_t r;
    check(feat_ks_2samp(a, n1, b, n2, (feat_ks_alt_t)alt, (feat_ks_method_t)method, &r));
    printf("%.17g %.17g %.17g %d %d\n", r.statistic, r.pvalue, r.location, r.sign, (int)r.method);
    free(a);
    free(b);
}

static void cmd_kspv(void) {
    int alt = (int)ru(), method = (int)ru();
    double d = rd();
    uint64_t n1 = ru(), n2 = ru();
    double p, du;
    feat_ks_method_t mu;
    check(feat_ks_pvalue(d, n1, n2, (feat_ks_alt_t)alt, (feat_ks_method_t)method, &p, &du, &mu));
    printf("%.17g %.17g %d\n", p, du, (int)mu);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b);

static double median_of(double *t, size_t n) {
    qsort(t, n, sizeof(double), cmp_d);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void cmd_kstime(void) {
    int alt = (int)ru(), method = (int)ru();
    size_t reps = ru(), n1 = ru(), n2 = ru();
    if (reps < 1 || reps > 1000) die("reps");
    double *a = rdv(n1), *b = rdv(n2), t2[1000], tp[1000];
    feat_ks_result_t r;
    for (size_t i = 0; i < reps; i++) {
        double t0 = now_s();
        check(feat_ks_2samp(a, n1, b, n2, (feat_ks_alt_t)alt, (feat_ks_method_t)method, &r));
        t2[i] = now_s() - t0;
    }
    for (size_t i = 0; i < reps; i++) {
        double p, t0 = now_s();
        check(feat_ks_pvalue(r.statistic, n1, n2, (feat_ks_alt_t)alt, (feat_ks_method_t)method,
                             &p, NULL, NULL));
        tp[i] = now_s() - t0;
    }
    printf("%.17g %.17g %d %.9g %.9g\n", r.statistic, r.pvalue, (int)r.method,
           median_of(t2, reps), median_of(tp, reps));
    free(a);
    free(b);
}

static void cmd_kll(int merge) {
    uint32_t k = (uint32_t)ru();
    uint64_t seed = ru();
    double delta = rd();
    size_t parts = merge ? ru() : 1;
    feat_kll_t *acc = NULL;
    for (size_t p = 0; p < parts; p++) {
        size_t n = ru();
        double *x = rdv(n);
        feat_kll_t *s = sketch_of(k, seed + p, x, n);
        free(x);
        if (!acc) {
            acc = s;
        } else {
            check(feat_kll_merge(acc, s));
            feat_kll_destroy(s);
        }
    }
    print_kll(acc, delta);
    feat_kll_destroy(acc);
}

static void cmd_kllq(void) {
    uint32_t k = (uint32_t)ru();
    uint64_t seed = ru();
    size_t n = ru();
    double *x = rdv(n);
    feat_kll_t *s = sketch_of(k, seed, x, n);
    size_t nq = ru();
    double *q = rdv(nq), *out = alloc_d(nq);
    for (size_t i = 0; i < nq; i++) check(feat_kll_quantile(s, q[i], &out[i]));
    print_vec(out, nq);
    free(x);
    free(q);
    free(out);
    feat_kll_destroy(s);
}

static void cmd_ksk(void) {
    uint32_t k = (uint32_t)ru();
    uint64_t seed = ru();
    double delta = rd();
    int alt = (int)ru(), method = (int)ru();
    size_t n1 = ru();
    double *a = rdv(n1);
    size_t n2 = ru();
    double *b = rdv(n2);
    feat_kll_t *s1 = sketch_of(k, seed, a, n1), *s2 = sketch_of(k, seed + 1, b, n2);
    feat_ks_sketch_result_t r;
    check(feat_ks_kll(s1, s2, (feat_ks_alt_t)alt, (feat_ks_method_t)method, delta, &r));
    printf("%.17g %.17g %.17g %d %d %.17g %llu %llu\n", r.statistic, r.pvalue, r.location, r.sign,
           (int)r.method, r.error_bound, (unsigned long long)r.n1, (unsigned long long)r.n2);
    free(a);
    free(b);
    feat_kll_destroy(s1);
    feat_kll_destroy(s2);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void cmd_edges(int sketch) {
    uint32_t k = 0;
    uint64_t seed = 0;
    if (sketch) {
        k = (uint32_t)ru();
        seed = ru();
    }
    uint32_t nb = (uint32_t)ru();
    size_t n = ru();
    double *x = rdv(n);
    double edges[FEAT_BINS_MAX];
    uint32_t ne = 0;
    if (sketch) {
        feat_kll_t *s = sketch_of(k, seed, x, n);
        check(feat_bins_edges_kll(s, nb, edges, &ne));
        feat_kll_destroy(s);
    } else {
        qsort(x, n, sizeof(double), cmp_d);
        check(feat_bins_edges_sorted(x, n, nb, edges, &ne));
    }
    printf("%u", ne);
    for (uint32_t i = 0; i < ne; i++) printf(" %.17g", edges[i]);
    printf("\n");
    free(x);
}

static void cmd_counts(int sketch) {
    uint32_t k = 0;
    uint64_t seed = 0;
    if (sketch) {
        k = (uint32_t)ru();
        seed = ru();
    }
    uint32_t ne = (uint32_t)ru();
    double *e = rdv(ne);
    size_t n = ru();
    double *x = rdv(n);
    double counts[FEAT_BINS_MAX + 1];
    if (sketch) {
        feat_kll_t *s = sketch_of(k, seed, x, n);
        check(feat_bins_count_kll(s, e, ne, counts));
        feat_kll_destroy(s);
    } else {
        check(feat_bins_count_sample(x, n, e, ne, counts));
    }
    print_vec(counts, ne + 1);
    free(e);
    free(x);
}

static void cmd_div(const char *which) {
    double eps = 0.0;
    if (strcmp(which, "js") != 0) eps = rd();
    size_t b = ru();
    double *p = rdv(b), *q = rdv(b), v = 0.0;
    if (!strcmp(which, "kl")) check(feat_kl_divergence(p, q, b, eps, &v));
    else if (!strcmp(which, "psi")) check(feat_psi(p, q, b, eps, &v));
    else check(feat_js_distance(p, q, b, &v));
    printf("%.17g\n", v);
    free(p);
    free(q);
}

static void print_divs(const double *ref, const double *live, size_t b, double eps) {
    feat_divergences_t dv;
    check(feat_divergences(ref, live, b, eps, &dv));
    printf("%.17g %.17g %.17g\n", dv.kl, dv.psi, dv.js);
}

static void cmd_divs(void) {
    double eps = rd();
    size_t b = ru();
    double *ref = rdv(b), *live = rdv(b);
    print_divs(ref, live, b, eps);
    free(ref);
    free(live);
}

static void cmd_binsk(void) {
    uint32_t k = (uint32_t)ru();
    uint64_t seed = ru();
    uint32_t nb = (uint32_t)ru();
    double eps = rd();
    size_t nr = ru();
    double *r = rdv(nr);
    size_t nl = ru();
    double *l = rdv(nl);
    feat_kll_t *sr = sketch_of(k, seed, r, nr), *sl = sketch_of(k, seed + 1, l, nl);
    double edges[FEAT_BINS_MAX], rc[FEAT_BINS_MAX + 1], lc[FEAT_BINS_MAX + 1];
    uint32_t ne = 0;
    check(feat_bins_edges_kll(sr, nb, edges, &ne));
    check(feat_bins_count_kll(sr, edges, ne, rc));
    check(feat_bins_count_kll(sl, edges, ne, lc));
    printf("%u", ne);
    for (uint32_t i = 0; i < ne; i++) printf(" %.17g", edges[i]);
    printf("\n");
    print_vec(rc, ne + 1);
    print_vec(lc, ne + 1);
    print_divs(rc, lc, ne + 1, eps);
    free(r);
    free(l);
    feat_kll_destroy(sr);
    feat_kll_destroy(sl);
}

static void cmd_chi2(int gof) {
    double eps = gof ? rd() : 0.0;
    size_t b = ru();
    double *p = rdv(b), *q = rdv(b);
    feat_chi2_result_t r;
    if (gof) check(feat_chi2_gof(p, q, b, eps, &r));
    else check(feat_chi2_homogeneity(p, q, b, &r));
    printf("%.17g %.17g %.17g %u\n", r.statistic, r.pvalue, r.dof, r.ncat);
    free(p);
    free(q);
}

static void add_strings(feat_catfreq_t *cf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!next_token()) die("eof");
        check(feat_catfreq_add(cf, tok, strlen(tok), 1));
    }
}

static void cmd_cat(void) {
    uint32_t cap = (uint32_t)ru(), pins = (uint32_t)ru(), lcap = (uint32_t)ru();
    double eps = rd();
    int pin = (int)ru();
    feat_err_t e;
    feat_catfreq_t *ref = feat_catfreq_new(cap, 0, lcap, &e);
    check(e);
    feat_catfreq_t *live = feat_catfreq_new(cap, pins, lcap, &e);
    check(e);
    add_strings(ref, ru());
    if (pin) {
        for (uint32_t i = 0; i < feat_catfreq_size(ref); i++) {
            feat_catfreq_entry_t en;
            check(feat_catfreq_entry(ref, i, &en));
            feat_err_t pe = feat_catfreq_pin(live, en.hash, en.label, strlen(en.label));
            if (pe != FEAT_OK && pe != FEAT_ERR_TOO_LARGE) check(pe);
        }
    }
    add_strings(live, ru());
    feat_catfreq_cmp_t c;
    check(feat_catfreq_compare(live, ref, eps, &c));
    printf("%u %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n", c.ncat, c.chi2, c.chi2_pvalue,
           c.chi2_dof, c.kl, c.psi, c.js, c.live_unseen);
    size_t m = (size_t)feat_catfreq_size(ref) + 1;
    double *rc = alloc_d(m), *lc = alloc_d(m);
    uint32_t nc;
    check(feat_catfreq_align(live, ref, rc, lc, m, &nc));
    /* labels of the reference categories, then the two count vectors */
    for (uint32_t i = 0; i + 1 < nc; i++) {
        feat_catfreq_entry_t en;
        check(feat_catfreq_entry(ref, i, &en));
        printf(i ? " %s" : "%s", en.label[0] ? en.label : "?");
    }
    printf("\n");
    print_vec(rc, nc);
    print_vec(lc, nc);
    free(rc);
    free(lc);
    feat_catfreq_destroy(ref);
    feat_catfreq_destroy(live);
}

static void cmd_kllser(void) {
    uint32_t k = (uint32_t)ru();
    uint64_t seed = ru();
    size_t n = ru();
    double *x = rdv(n);
    feat_kll_t *s = sketch_of(k, seed, x, n);
    size_t sz = feat_kll_serialized_size(s), w;
    unsigned char *buf = (unsigned char *)malloc(sz);
    if (!buf) die("nomem");
    check(feat_kll_serialize(s, buf, sz, &w));
    for (size_t i = 0; i < w; i++) printf("%02x", buf[i]);
    printf("\n");
    free(buf);
    free(x);
    feat_kll_destroy(s);
}

int main(void) {
    while (next_token()) {
        char cmd[32];
        size_t tl = strlen(tok);
        if (tl >= sizeof cmd) die("command");
        memcpy(cmd, tok, tl + 1);
        if (!strcmp(cmd, "ks2")) cmd_ks2();
        else if (!strcmp(cmd, "kspv")) cmd_kspv();
        else if (!strcmp(cmd, "kstwo")) { uint64_t n = ru(); double x = rd(); printf("%.17g\n", feat_ks_kstwo_sf(n, x)); }
        else if (!strcmp(cmd, "kolmog")) { double z = rd(); printf("%.17g\n", feat_ks_kolmogorov_sf(z)); }
        else if (!strcmp(cmd, "smirnov")) { uint64_t n = ru(); double x = rd(); printf("%.17g\n", feat_ks_smirnov_sf(n, x)); }
        else if (!strcmp(cmd, "kll")) cmd_kll(0);
        else if (!strcmp(cmd, "kllmerge")) cmd_kll(1);
        else if (!strcmp(cmd, "kllq")) cmd_kllq();
        else if (!strcmp(cmd, "ksk")) cmd_ksk();
        else if (!strcmp(cmd, "edges")) cmd_edges(0);
        else if (!strcmp(cmd, "edgesk")) cmd_edges(1);
        else if (!strcmp(cmd, "counts")) cmd_counts(0);
        else if (!strcmp(cmd, "countsk")) cmd_counts(1);
        else if (!strcmp(cmd, "kl") || !strcmp(cmd, "psi") || !strcmp(cmd, "js")) cmd_div(cmd);
        else if (!strcmp(cmd, "chi2h")) cmd_chi2(0);
        else if (!strcmp(cmd, "chi2g")) cmd_chi2(1);
        else if (!strcmp(cmd, "chi2sf")) { double x = rd(), d = rd(); printf("%.17g\n", feat_chi2_sf(x, d)); }
        else if (!strcmp(cmd, "gammap")) { double a = rd(), x = rd(); printf("%.17g\n", feat_gamma_p(a, x)); }
        else if (!strcmp(cmd, "gammaq")) { double a = rd(), x = rd(); printf("%.17g\n", feat_gamma_q(a, x)); }
        else if (!strcmp(cmd, "cat")) cmd_cat();
        else if (!strcmp(cmd, "kllser")) cmd_kllser();
        else if (!strcmp(cmd, "kstime")) cmd_kstime();
        else if (!strcmp(cmd, "divs")) cmd_divs();
        else if (!strcmp(cmd, "binsk")) cmd_binsk();
        else die("command");
    }
    fflush(stdout);
    return 0;
}
