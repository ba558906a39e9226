/*
 * stats/ks_dist.c — distributions of the one-sample Kolmogorov–Smirnov
 * statistics, used for the asymptotic two-sample p-value.
 *
 *   feat_ks_kstwo_sf(n, x)   = scipy.stats.kstwo.sf(x, n)  (_ksstats._kolmogn)
 *   feat_ks_smirnov_sf(n, x) = scipy.special.smirnov(n, x) (cephes kolmogorov.c)
 *   feat_ks_kolmogorov_sf(z) = scipy.special.kolmogorov(z)  (cephes kolmogorov.c)
 *
 * Ported from SciPy 1.10.1 (scipy/stats/_ksstats.py and
 * scipy/special/cephes/kolmogorov.c), following Simard & L'Ecuyer (2011) in
 * choosing between the Durbin matrix (Marsaglia–Tsang–Wang), Pomeranz, the
 * Pelz–Good expansion, the exact Smirnov sum and the Ruben–Gambino formulas.
 * Where SciPy uses double-double arithmetic (the Smirnov sum), this port sums
 * the same terms in log space in long double, which is as precise for the
 * p-values ks_2samp needs (relative error below 1e-11 in tests).
 */
#include "stats/ks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KS_E128 128
#define KS_SQRT2PI 2.5066282746310002     /* np.sqrt(2*np.pi) */
#define KS_LOG_2PI 1.8378770664093453     /* np.log(2*np.pi) */
#define KS_MIN_LOG (-708)
#define KS_SQRT3 1.7320508075688772
#define KS_PI 3.141592653589793
#define KS_PI2 (KS_PI * KS_PI)
#define KS_PI4 (KS_PI2 * KS_PI2)              /* np.pi ** 4 */
#define KS_PI6 (KS_PI4 * KS_PI2)
#define CEPHES_MINLOG (-7.451332191019412076235E2)   /* log(2^-1075) */
#define SMIRNOV_MAX_COMPUTE_N 1000000

static double clip01(double p) {
    if (p < 0.0) return 0.0;
    if (p > 1.0) return 1.0;
    return p;                           /* NaN stays NaN */
}

/* ------------------------------------------------- Kolmogorov's limit */

/* P(K >= z), cephes _kolmogorov().sf: the theta series in exp(-pi^2/(8z^2))
 * for z <= 0.82, the alternating series in exp(-2 z^2) above; three or four
 * terms reach double precision in each range. */
double feat_ks_kolmogorov_sf(double z) {
    if (z != z) return NAN;
    if (z <= 0) return 1.0;
    if (z <= KS_PI / sqrt(746.0 * 8)) return 1.0;   /* first term underflows */
    double P = 1.0, sf;
    if (z <= 0.82) {
        double w = sqrt(2 * KS_PI) / z;
        double logu8 = -KS_PI * KS_PI / (z * z);
        double u = exp(logu8 / 8);
        if (u == 0) {
            P = exp(logu8 / 8 + log(w));
        } else {
            double u8 = exp(logu8), u8cub = pow(u8, 3);
            P = 1 + u8cub * P;
            P = 1 + u8 * u8 * P;
            P = 1 + u8 * P;
            P = w * u * P;
        }
        sf = 1 - P;
    } else {
        double v = exp(-2 * z * z), vsq = v * v, v3 = pow(v, 3);
        P = 1 - v3 * v3 * v * P;
        P = 1 - v3 * vsq * P;
        P = 1 - v3 * P;
        sf = 2 * v * P;
    }
    return clip01(sf);
}

/* ------------------------------------------------------------ Smirnov D+ */

/* P(D_n^+ >= x), cephes smirnov() (SciPy >= 1.2 algorithm). */
double feat_ks_smirnov_sf(uint64_t n64, double x) {
    if (!(n64 > 0 && x >= 0.0 && x <= 1.0) || n64 > INT32_MAX) return NAN;
    int n = (int)n64;
    if (n == 1) return 1.0 - x;
    if (x == 0.0) return 1.0;
    if (x == 1.0) return 0.0;

    /* n x = nxfl + alpha exactly (fma gives the rounding error of n*x) */
    double nx = (double)n * x;
    double lo = fma((double)n, x, -nx);
    double fl = floor(nx);
    double alpha = (nx - fl) + lo;
    if (alpha < 0.0) { fl -= 1.0; alpha += 1.0; }
    if (alpha >= 1.0) { fl += 1.0; alpha -= 1.0; }
    int nxfl = (int)fl;
    int n1mxfl = n - nxfl - (alpha == 0.0 ? 0 : 1);
    int n1mxceil = n - nxfl;
    if (alpha == 0.0) {
        n1mxfl -= 1;
        n1mxceil += 1;
    }
    double sf;
    if (nxfl == 0 || (nxfl == 1 && alpha == 0.0)) {          /* x <= 1/n */
        long double t = expl((long double)(n - 1) * log1pl((long double)x));
        double cdf = (double)((long double)x * t);
        return clip01(1.0 - cdf);
    }
    if (-2.0 * n * x * x < CEPHES_MINLOG) return 0.0;
    if (nxfl >= n - 1) {                                      /* x >= 1 - 1/n */
        sf = (double)expl((long double)n * log1pl(-(long double)x));
        return clip01(sf);
    }
    if (n > SMIRNOV_MAX_COMPUTE_N) {
        double logp = -pow(6.0 * n * x + 1, 2) / 18.0 / n;
        if (logp < -M_LN2) sf = exp(logp);
        else sf = 1.0 - (-expm1(logp));
        return clip01(sf);
    }
    int n_upper = n - n1mxceil + 1;
    int use_upper = (n_upper <= 1 && x < 0.5) ||
                    (n >= 10 && n_upper <= 3 && x <= 0.5 / sqrt((double)n));
    long double N = (long double)n, A = (long double)alpha;
    if (use_upper) {
        /* cdf = x * sum_{v=n}^{n1mxceil} C(n,v) (x+v/n)^(v-1) (1-x-v/n)^(n-v);
         * few terms, alternating in sign */
        long double sum = 0.0L, logc = 0.0L;   /* log C(n, v) */
        for (int v = n; v >= n1mxceil; v--) {
            long double t1 = ((long double)(nxfl + v) + A) / N;      /* x + v/n */
            long double t2 = ((long double)(n - nxfl - v) - A) / N;  /* 1-x-v/n */
            long double term = expl(logc) * powl(t1, (long double)(v - 1)) *
                               powl(t2, (long double)(n - v));
            sum += term;
            logc += logl((long double)v / (long double)(n - v + 1));
        }
        double cdf = (double)((long double)x * sum);
        return clip01(1.0 - cdf);
    }
    /* sf = x * sum_{v=0}^{n1mxfl} C(n,v) (x+v/n)^(v-1) (1-x-v/n)^(n-v),
     * all terms positive: sum the exponentials of their logs.  The logs are
     * taken in double (the sum needs O(n) terms; this is where the time
     * goes) from the integer forms (nxfl + v + alpha)/n and
     * (n - nxfl - v - alpha)/n, which do not cancel; products and sums are
     * carried in long double.  Relative error per term about
     * 1e-16 * (n log n), below 1e-9 for n <= 1e6. */
    long double sum = 0.0L, logc = 0.0L;
    int nterms = n1mxfl + 1, vmid = n / 2;
    double dn = (double)n;
    for (int v = 0; v < nterms; v++) {
        double a1 = ((double)(nxfl + v) + alpha) / dn;        /* x + v/n */
        double a2 = ((double)(n - nxfl - v) - alpha) / dn;    /* 1 - x - v/n */
        double l2 = a2 > 0.5 ? log1p(-a1) : log(a2);
        long double lt = logc + (long double)(v - 1) * log(a1) + (long double)(n - v) * l2;
        long double term = (long double)exp((double)lt);
        sum += term;
        if (term != 0.0L) {
            if (4.0L * (nterms - v) * term < (long double)2.220446049250313e-16 * sum &&
                v != nterms - 1)
                break;
        } else if (v > vmid) {
            break;
        }
        logc += (long double)log((double)(n - v) / (double)(v + 1));
    }
    sf = (double)((long double)x * sum);
    return clip01(sf);
}

/* ---------------------------------------------- Durbin matrix (MTW 2003) */

static void matmul(const double *a, const double *b, double *c, int m) {
    for (int i = 0; i < m; i++) {
        double *ci = c + (size_t)i * m;
        for (int j = 0; j < m; j++) ci[j] = 0.0;
        for (int l = 0; l < m; l++) {
            double ail = a[(size_t)i * m + l];
            if (ail == 0.0) continue;
            const double *bl = b + (size_t)l * m;
            for (int j = 0; j < m; j++) ci[j] += ail * bl[j];
        }
    }
}

/* P(D_n <= d), _kolmogn_DMTW(cdf=True).  Returns NaN if allocation fails. */
static double kolmogn_dmtw_cdf(int n, double d) {
    if (d >= 1.0) return 1.0;
    double nd = n * d;
    if (nd <= 0.5) return 0.0;
    int k = (int)ceil(nd);
    double h = k - nd;
    int m = 2 * k - 1;
    size_t mm = (size_t)m * m;
    double *buf = (double *)malloc((4 * mm + 2 * (size_t)m) * sizeof(double));
    if (!buf) return NAN;
    double *H = buf, *P = buf + mm, *T = buf + 2 * mm, *H2 = buf + 3 * mm;
    double *v = buf + 4 * mm, *w = v + m;

    double fac = 1.0;
    for (int j = 1; j <= m; j++) {
        w[j - 1] = fac;
        fac /= j;
        v[j - 1] = (1.0 - pow(h, j)) * fac;
    }
    double tt = pow(fmax(2 * h - 1.0, 0), m) - 2 * pow(h, m);
    v[m - 1] = (1.0 + tt) * fac;
    memset(H, 0, mm * sizeof(double));
    for (int i = 1; i < m; i++)
        for (int r = i - 1; r < m; r++) H[(size_t)r * m + i] = w[r - (i - 1)];
    for (int r = 0; r < m; r++) H[(size_t)r * m] = v[r];
    for (int c = 0; c < m; c++) H[(size_t)(m - 1) * m + c] = v[m - 1 - c];

    memset(P, 0, mm * sizeof(double));
    for (int i = 0; i < m; i++) P[(size_t)i * m + i] = 1.0;
    int nn = n, expnt = 0, hexpnt = 0;
    while (nn > 0) {
        if (nn % 2) {
            matmul(P, H, T, m);
            memcpy(P, T, mm * sizeof(double));
            expnt += hexpnt;
        }
        matmul(H, H, H2, m);
        memcpy(H, H2, mm * sizeof(double));
        hexpnt *= 2;
        if (fabs(H[(size_t)(k - 1) * m + (k - 1)]) > ldexp(1.0, KS_E128)) {
            for (size_t i = 0; i < mm; i++) H[i] = ldexp(H[i], -KS_E128);
            hexpnt += KS_E128;
        }
        nn /= 2;
    }
    double p = P[(size_t)(k - 1) * m + (k - 1)];
    free(buf);
    for (int i = 1; i <= n; i++) {
        p = i * p / n;
        if (fabs(p) < ldexp(1.0, -KS_E128)) {
            p = ldexp(p, KS_E128);
            expnt -= KS_E128;
        }
    }
    if (expnt != 0) p = ldexp(p, expnt);
    return clip01(p);
}

/* ------------------------------------------------- Pomeranz (1974), n <= 140 */

static void pomeranz_j1j2(int i, int n, int ll, int ceilf, int roundf, int *pj1, int *pj2) {
    int j1, j2;
    if (i == 0) {
        j1 = -ll - ceilf - 1;
        j2 = ll + ceilf - 1;
    } else {
        int ip1div2 = (i + 1) / 2, ip1mod2 = (i + 1) % 2;
        if (ip1mod2 == 0) {
            if (ip1div2 == n + 1) {
                j1 = n - ll - ceilf - 1;
                j2 = n + ll + ceilf - 1;
            } else {
                j1 = ip1div2 - 1 - ll - roundf - 1;
                j2 = ip1div2 + ll - 1 + ceilf - 1;
            }
        } else {
            j1 = ip1div2 - 1 - ll - 1;
            j2 = ip1div2 + ll + roundf - 1;
        }
    }
    *pj1 = j1 + 2 > 0 ? j1 + 2 : 0;
    *pj2 = j2 < n ? j2 : n;
}

#define POM_MAXN 140
#define POM_NP (2 * (POM_MAXN + 2))

/* P(D_n <= x), _kolmogn_Pomeranz(cdf=True); n <= 140. */
static double kolmogn_pomeranz_cdf(int n, double x) {
    double t = n * x;
    int ll = (int)floor(t);
    double f = 1.0 * (t - ll);
    double g = fmin(f, 1.0 - f);
    int ceilf = f > 0 ? 1 : 0, roundf = f > 0.5 ? 1 : 0;
    int npwrs = 2 * (ll + 1);
    if (npwrs > POM_NP) return NAN;
    double gpower[POM_NP], twogpower[POM_NP], onem2gpower[POM_NP];
    double Va[POM_NP], Vb[POM_NP];
    gpower[0] = twogpower[0] = onem2gpower[0] = 1.0;
    int expnt = 0;
    double g_over_n = g / n, two_g_over_n = 2 * g / n, one_minus_two_g_over_n = (1 - 2 * g) / n;
    for (int m = 1; m < npwrs; m++) {
        gpower[m] = gpower[m - 1] * g_over_n / m;
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m;
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m;
    }
    double *V0 = Va, *V1 = Vb;
    memset(Va, 0, sizeof Va);
    memset(Vb, 0, sizeof Vb);
    V1[0] = 1.0;
    int V0s = 0, V1s = 0, j1, j2;
    pomeranz_j1j2(0, n, ll, ceilf, roundf, &j1, &j2);
    for (int i = 1; i < 2 * n + 2; i++) {
        int k1 = j1;
        double *tmp = V0; V0 = V1; V1 = tmp;
        int ts = V0s; V0s = V1s; V1s = ts;
        for (int q = 0; q < npwrs; q++) V1[q] = 0.0;
        pomeranz_j1j2(i, n, ll, ceilf, roundf, &j1, &j2);
        const double *pw;
        if (i == 1 || i == 2 * n + 1) pw = gpower;
        else pw = (i % 2) ? twogpower : onem2gpower;
        int ln2 = j2 - k1 + 1;
        if (ln2 > 0) {
            /* conv = np.convolve(V0[k1-V0s : k1-V0s+ln2], pw[:ln2]) */
            int a0 = k1 - V0s;
            int alen = ln2;
            if (a0 + alen > npwrs) alen = npwrs - a0;
            if (a0 < 0 || alen < 0) return NAN;
            int conv_start = j1 - k1, conv_len = j2 - j1 + 1;
            int full = alen + ln2 - 1;
            for (int c = 0; c < conv_len; c++) {
                int idx = conv_start + c;
                double acc = 0.0;
                if (idx >= 0 && idx < full) {
                    int plo = idx - (ln2 - 1) > 0 ? idx - (ln2 - 1) : 0;
                    int phi = idx < alen - 1 ? idx : alen - 1;
                    for (int p = plo; p <= phi; p++) acc += V0[a0 + p] * pw[idx - p];
                }
                V1[c] = acc;
            }
            double mx = 0.0;
            for (int q = 0; q < npwrs; q++) if (V1[q] > mx) mx = V1[q];
            if (mx > 0 && mx < ldexp(1.0, -KS_E128)) {
                for (int q = 0; q < npwrs; q++) V1[q] = ldexp(V1[q], KS_E128);
                expnt -= KS_E128;
            }
            V1s = V0s + j1 - k1;
        }
    }
    int ai = n - V1s;
    if (ai < 0 || ai >= npwrs) return NAN;
    double ans = V1[ai];
    for (int m = 1; m <= n; m++) {
        if (fabs(ans) > ldexp(1.0, KS_E128)) {
            ans = ldexp(ans, -KS_E128);
            expnt += KS_E128;
        }
        ans *= m;
    }
    if (expnt != 0) ans = ldexp(ans, expnt);
    return clip01(ans);
}

/* ------------------------------------------------------- Pelz–Good (1976) */

static const double stirling_coeffs[8] = {
    -2.955065359477124183e-2, 6.4102564102564102564e-3,
    -1.9175269175269175269e-3, 8.4175084175084175084e-4,
    -5.952380952380952381e-4, 7.9365079365079365079e-4,
    -2.7777777777777777778e-3, 8.3333333333333333333e-2};

static double log_nfactorial_div_n_pow_n(double n) {
    double rn = 1.0 / n, x = rn / n, p = 0.0;
    for (int i = 0; i < 8; i++) p = p * x + stirling_coeffs[i];
    return log(n) / 2 - n + KS_LOG_2PI / 2 + rn * p;
}

/* P(D_n <= x) approximated, _kolmogn_PelzGood(cdf=True). */
static double kolmogn_pelzgood_cdf(double n, double x) {
    if (x <= 0.0) return 0.0;
    if (x >= 1.0) return 1.0;
    double z = sqrt(n) * x;
    double z2 = z * z, z3 = z * z * z, z4 = z2 * z2, z6 = z4 * z2;
    double qlog = -KS_PI2 / 8 / z2;
    if (qlog < KS_MIN_LOG) return 0.0;
    double q = exp(qlog);
    double k1a = -z2, k1b = KS_PI2 / 4;
    double k2a = 6 * z6 + 2 * z4;
    double k2b = (2 * z4 - 5 * z2) * KS_PI2 / 4;
    double k2c = KS_PI4 * (1 - 2 * z2) / 16;
    double k3d = KS_PI6 * (5 - 30 * z2) / 64;
    double k3c = KS_PI4 * (-60 * z2 + 212 * z4) / 16;
    double k3b = KS_PI2 * (135 * z4 - 96 * z6) / 4;
    double k3a = -30 * z6 - 90 * pow(z, 8);
    double K[4] = {0, 0, 0, 0};
    int maxk = (int)ceil(16 * z / KS_PI);
    for (int k = maxk; k > 0; k--) {
        double m = 2 * k - 1, m2 = m * m, m4 = m2 * m2, m6 = m4 * m2;
        double qp = pow(q, 8 * k);
        double c[4] = {1.0, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4,
                       k3a + k3b * m2 + k3c * m4 + k3d * m6};
        for (int i = 0; i < 4; i++) K[i] = K[i] * qp + c[i];
    }
    for (int i = 0; i < 4; i++) K[i] = K[i] * q * KS_SQRT2PI;
    K[0] /= z;
    K[1] /= 6 * z4;
    K[2] /= 72 * pow(z, 7);
    K[3] /= 6480 * pow(z, 10);
    q = exp(-KS_PI2 / 2 / z2);
    double sqrt3z = KS_SQRT3 * z, k2extra = 0.0, k3extra = 0.0;
    for (int k = maxk; k > 0; k--) {
        double ks2 = (double)k * k;
        double qp = pow(q, ks2);
        double kspi = KS_PI * k;
        k2extra += ks2 * qp;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ks2 * qp;
    }
    k2extra *= KS_PI2 * KS_SQRT2PI / (-36 * z3);
    k3extra *= KS_PI2 * KS_SQRT2PI / (216 * z6);
    K[2] += k2extra;
    K[3] += k3extra;
    for (int i = 1; i < 4; i++) K[i] /= pow(n, i / 2.0);
    return K[0] + K[1] + K[2] + K[3];
}

/* --------------------------------------------------- Simard & L'Ecuyer */

/* _kolmogn(n, x, cdf=False) */
static double kolmogn_sf(uint64_t n64, double x) {
    if (x >= 1.0) return 0.0;
    if (x <= 0.0) return 1.0;
    double n = (double)n64;
    double t = n * x;
    if (t <= 1.0) {
        if (t <= 0.5) return 1.0;
        double prob;
        if (n64 <= 140) {
            prob = 1.0;
            for (uint64_t i = 1; i <= n64; i++) prob *= (double)i * (1.0 / n) * (2 * t - 1);
        } else {
            prob = exp(log_nfactorial_div_n_pow_n(n) + n * log(2 * t - 1));
        }
        return clip01(1.0 - prob);
    }
    if (t >= n - 1) return clip01(2 * pow(1.0 - x, n));
    if (x >= 0.5) return clip01(2 * feat_ks_smirnov_sf(n64, x));
    double nxsquared = t * x;
    if (n64 <= 140) {
        if (nxsquared <= 0.754693) return clip01(1.0 - kolmogn_dmtw_cdf((int)n64, x));
        if (nxsquared <= 4) return clip01(1.0 - kolmogn_pomeranz_cdf((int)n64, x));
        return clip01(2 * feat_ks_smirnov_sf(n64, x));
    }
    if (nxsquared >= 370.0) return 0.0;
    if (nxsquared >= 2.2) return clip01(2 * feat_ks_smirnov_sf(n64, x));
    double cdfprob;
    if (n64 <= 100000 && n * pow(x, 1.5) <= 1.4) cdfprob = kolmogn_dmtw_cdf((int)n64, x);
    else cdfprob = kolmogn_pelzgood_cdf(n, x);
    return clip01(1.0 - clip01(cdfprob));
}

double feat_ks_kstwo_sf(uint64_t n, double x) {
    if (n == 0 || x != x) return NAN;
    double a = 0.5 / (double)n;
    if (x <= a) return 1.0;
    if (x >= 1.0) return 0.0;
    return kolmogn_sf(n, x);
}
