#!/usr/bin/python3
"""tests/integration/drift_stats.py — the drift statistics core against SciPy / NumPy.

Drives featd_stats_cli (stats/tools/stats_cli.c) with random data and
compares every answer with an independent computation:

  * two-sample KS: scipy.stats.ks_2samp(method='auto') over hundreds of sample
    pairs (sizes 1 .. 20000, equal and unequal, across the 10000 exact/asymp
    switch, continuous and with ties); statistic within 1e-12, p-value within
    1e-6 relative; one-sided method='exact' at all sizes, with the same
    exact-vs-fallback decision; also the exact->asymp fallback, kstwo.sf and
    smirnov;
  * bins at reference quantiles and bin counts (integer arithmetic, numpy);
  * KL, PSI, JS against NumPy formulas, JS against scipy's jensenshannon;
  * chi-square (scipy.stats.chi2_contingency, chisquare, chi2.sf,
    special.gammainc/gammaincc);
  * the KLL sketch: uniform rank error within its reported bound over many
    randomized trials (sizes to 10^6), merges, quantiles, the serialized
    format parsed here independently (layout and CRC-32);
  * KS from two sketches within the reported error bound of SciPy's D, p-value
    at the true sizes;
  * category frequencies compared with a reference: chi-square, KL, PSI, JS on
    exact counts, unseen categories counted.

Exit 0 on success, 1 on any mismatch, 77 (skipped) when SciPy is missing.
"""
import argparse
import glob
import math
import os
import struct
import subprocess
import sys
import time
import warnings
import zlib

try:
    import numpy as np
    from scipy import special, stats
    from scipy.spatial.distance import jensenshannon
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

warnings.simplefilter("ignore")  # ks_2samp warns on its exact->asymp fallback

FAILS = []


def fail(msg):
    FAILS.append(msg)
    if len(FAILS) <= 30:
        print("FAIL:", msg)


def rel_ok(got, want, rel, abs_tol=0.0):
    if math.isnan(want):
        return math.isnan(got)
    if math.isinf(want):
        return got == want
    return abs(got - want) <= max(rel * abs(want), abs_tol)


class Cli:
    def __init__(self, path):
        self.path = path

    def run(self, requests):
        """Sends all requests in one process; returns stdout lines."""
        text = "\n".join(requests) + "\n"
        p = subprocess.run([self.path], input=text, capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"cli exit {p.returncode}: {p.stdout[-300:]} {p.stderr[-300:]}")
        return p.stdout.split("\n")


def fmt(a):
    return " ".join(repr(float(v)) for v in a)


# --------------------------------------------------------------------- KS

def sample_pair(rng, n1, n2):
    kind = rng.integers(0, 4)
    if kind == 0:  # continuous, maybe shifted
        return rng.normal(size=n1), rng.normal(loc=rng.choice([0.0, 0.02, 0.1, 0.5]), size=n2), "cont"
    if kind == 1:  # heavy ties: small integer support
        k = int(rng.integers(2, 8))
        return (rng.integers(0, k, size=n1).astype(float),
                rng.integers(0, k + int(rng.integers(0, 2)), size=n2).astype(float), "ties")
    if kind == 2:  # rounded continuous: moderate ties
        return (np.round(rng.exponential(size=n1), 1),
                np.round(rng.exponential(scale=rng.choice([1.0, 1.1]), size=n2), 1), "round")
    # mixture with a point mass, different scales
    a = np.where(rng.random(n1) < 0.3, 0.0, rng.normal(size=n1))
    b = np.where(rng.random(n2) < rng.choice([0.3, 0.35]), 0.0, rng.normal(scale=1.2, size=n2))
    return a, b, "mixed"


def test_ks_samples(cli, rng, ncases):
    sizes = [1, 2, 3, 4, 5, 7, 10, 16, 25, 50, 99, 100, 101, 256, 500, 1000, 2500,
             5000, 9999, 10000, 10001, 12000, 15000, 20000]
    cases = []
    while len(cases) < ncases:
        r = rng.random()
        if r < 0.35:
            n1 = int(rng.choice(sizes))
            n2 = int(rng.choice(sizes))
        elif r < 0.55:
            n1 = n2 = int(rng.choice(sizes + [int(rng.integers(1, 3000))]))
        elif r < 0.8:
            n1, n2 = (int(v) for v in rng.integers(1, 3000, size=2))
        else:
            n1 = int(rng.integers(1, 50))
            n2 = int(rng.integers(10001, 20001))  # asymp with small en
            if rng.random() < 0.5:
                n1, n2 = n2, n1
        a, b, kind = sample_pair(rng, n1, n2)
        # one-sided for sizes where SciPy's own exact path counting is fast
        alt = int(rng.choice([0, 1, 2])) if max(n1, n2) <= 400 or max(n1, n2) > 10000 else 0
        cases.append((a, b, alt, kind))
    reqs = [f"ks2 {alt} 0 {len(a)} {len(b)} {fmt(a)} {fmt(b)}" for a, b, alt, _ in cases]
    t0 = time.time()
    out = cli.run(reqs)
    t_c = time.time() - t0
    alts = ["two-sided", "less", "greater"]
    worst_p = 0.0
    crossed = {"exact": 0, "asymp": 0}
    for (a, b, alt, kind), line in zip(cases, out):
        r = stats.ks_2samp(a, b, alternative=alts[alt], method="auto")
        f = line.split()
        d, p, loc, sign, meth = float(f[0]), float(f[1]), float(f[2]), int(f[3]), int(f[4])
        crossed["exact" if meth == 1 else "asymp"] += 1
        tag = f"ks2 n1={len(a)} n2={len(b)} alt={alts[alt]} {kind}"
        if abs(d - r.statistic) > 1e-12:
            fail(f"{tag}: D {d!r} vs scipy {r.statistic!r}")
        if not rel_ok(p, r.pvalue, 1e-6, 1e-300):
            fail(f"{tag}: p {p!r} vs scipy {r.pvalue!r}")
        elif r.pvalue > 1e-300:
            worst_p = max(worst_p, abs(p - r.pvalue) / r.pvalue)
        if loc != r.statistic_location or sign != r.statistic_sign:
            fail(f"{tag}: location/sign {loc},{sign} vs {r.statistic_location},{r.statistic_sign}")
    print(f"ks_2samp: {len(cases)} pairs, worst p rel err {worst_p:.2e}, "
          f"methods {crossed}, C {t_c:.1f}s")
    if crossed["exact"] < 50 or crossed["asymp"] < 50:
        fail(f"ks_2samp: too few cases on one side of the switch: {crossed}")


def test_ks_one_sided_exact(cli, rng, ncases):
    """One-sided, method='exact', at every size (test_ks_samples keeps
    one-sided to small and ASYMP sizes): p-value and the exact-vs-fallback
    decision, which SciPy announces with a warning.  Sizes cluster at the
    edge n1 + n2 of about 1030 where C(n1+n2, n1) overflows a double."""
    sizes = [1, 2, 3, 7, 50, 257, 499, 500, 510, 514, 515, 516, 520, 1000, 2500, 5000,
             9999, 10000, 10001, 20000]
    cases = []
    for t in range(ncases):
        r = rng.random()
        if r < 0.4:
            n1, n2 = int(rng.choice(sizes)), int(rng.choice(sizes))
        elif r < 0.7:
            n1, n2 = (int(v) for v in rng.integers(1, 1100, size=2))
        else:
            n1, n2 = int(rng.integers(490, 540)), int(rng.integers(480, 545))
        a, b, kind = sample_pair(rng, n1, n2)
        cases.append((a, b, int(rng.choice([1, 2])), kind))
    reqs = [f"ks2 {alt} 1 {len(a)} {len(b)} {fmt(a)} {fmt(b)}" for a, b, alt, _ in cases]
    t0 = time.time()
    out = cli.run(reqs)
    t_c = time.time() - t0
    alts = ["two-sided", "less", "greater"]
    worst, nexact, t_s = 0.0, 0, 0.0
    for (a, b, alt, kind), line in zip(cases, out):
        t1 = time.time()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            r = stats.ks_2samp(a, b, alternative=alts[alt], method="exact")
        t_s += time.time() - t1
        scipy_exact = not any("Exact calculation unsuccessful" in str(x.message) for x in w)
        f = line.split()
        d, p, meth = float(f[0]), float(f[1]), int(f[4])
        tag = f"ks2 exact n1={len(a)} n2={len(b)} alt={alts[alt]} {kind}"
        nexact += meth == 1
        if (meth == 1) != scipy_exact:
            fail(f"{tag}: method {meth}, scipy exact={scipy_exact}")
        if abs(d - r.statistic) > 1e-12 or not rel_ok(p, r.pvalue, 1e-6, 1e-300):
            fail(f"{tag}: D, p {d!r}, {p!r} vs scipy {r.statistic!r}, {r.pvalue!r}")
        elif r.pvalue > 1e-300:
            worst = max(worst, abs(p - r.pvalue) / r.pvalue)
    print(f"ks_2samp one-sided exact: {len(cases)} pairs ({nexact} exact, the rest fell back "
          f"as SciPy did), worst p rel err {worst:.2e}, C {t_c:.1f}s, SciPy {t_s:.1f}s")
    if nexact < ncases // 4 or nexact > ncases - ncases // 4:
        fail(f"one-sided exact: {nexact} of {ncases} exact; want both sides of the overflow edge")


def test_ks_fallback_and_dists(cli, rng):
    # equal sizes where SciPy's exact square method exceeds 1 and falls back
    reqs, cases = [], []
    for n in range(2, 80):
        a = np.arange(n, dtype=float)
        b = a + 0.5  # D = 1/n, the classic fallback case
        cases.append((a, b))
        reqs.append(f"ks2 0 0 {n} {n} {fmt(a)} {fmt(b)}")
    out = cli.run(reqs)
    nfall = 0
    for (a, b), line in zip(cases, out):
        f = line.split()
        r = stats.ks_2samp(a, b)
        nfall += int(f[4]) == 2
        if abs(float(f[0]) - r.statistic) > 1e-12 or not rel_ok(float(f[1]), r.pvalue, 1e-6):
            fail(f"fallback n={len(a)}: {f[:2]} vs {r.statistic}, {r.pvalue}")
    if nfall == 0:
        fail("no exact->asymp fallback exercised")
    # kstwo.sf across all branches of Simard & L'Ecuyer, smirnov
    qs = []
    for n in list(range(1, 160, 3)) + [200, 500, 1000, 4999, 10000, 99999, 100001, 10**6, 10**7]:
        xs = np.concatenate([rng.random(8), rng.random(8) * 2.5 / math.sqrt(n),
                             [0.5 / n, 1.0 / n, 0.75 / n, 0.5, 0.51]])
        qs += [(n, float(x)) for x in xs if 0 <= x <= 1]
    out = cli.run([f"kstwo {n} {x!r}" for n, x in qs] + [f"smirnov {n} {x!r}" for n, x in qs])
    zs = [float(z) for z in np.concatenate([rng.random(60) * 3, [0.0406, 0.05, 0.3, 0.82, 0.8201, 1.0, 5.0, 20.0]])]
    outz = cli.run([f"kolmog {z!r}" for z in zs])
    for z, o in zip(zs, outz):
        want = special.kolmogorov(z)
        if not rel_ok(float(o), want, 1e-12, 1e-300):
            fail(f"kolmogorov({z!r}) = {o} vs scipy {want!r}")
    # the LIMIT p-value is kstwobign.sf(sqrt(en) D) for any sizes
    reqs = []
    lim = []
    for t in range(100):
        n1, n2 = (int(v) for v in rng.integers(1, 10**7, size=2))
        d = float(rng.random() * 0.2)
        lim.append((d, n1, n2))
        reqs.append(f"kspv 0 3 {d!r} {n1} {n2}")
    for (d, n1, n2), o in zip(lim, cli.run(reqs)):
        p = float(o.split()[0])
        want = stats.kstwobign.sf(math.sqrt(n1 * n2 / (n1 + n2)) * d)
        if not rel_ok(p, want, 1e-10, 1e-300) or o.split()[2] != "3":
            fail(f"LIMIT p-value d={d} n1={n1} n2={n2}: {o} vs {want!r}")
    worst = 0.0
    for i, (n, x) in enumerate(qs):
        for want, got, name in ((stats.kstwo.sf(x, n), float(out[i]), "kstwo"),
                                (special.smirnov(n, x), float(out[len(qs) + i]), "smirnov")):
            if want < 1e-300 and got < 1e-300:
                continue
            if not rel_ok(got, want, 1e-9):
                fail(f"{name}({n}, {x!r}) = {got!r}, scipy {want!r}")
            worst = max(worst, abs(got - want) / want)
    print(f"kstwo/smirnov: {2 * len(qs)} values, worst rel err {worst:.2e}; kolmogorov/LIMIT ok; "
          f"fallback cases {nfall}")


# ------------------------------------------------------------ bins, divergences

def test_bins(cli, rng):
    reqs, cases = [], []
    for t in range(60):
        n = int(rng.integers(1, 3000))
        nb = int(rng.choice([2, 3, 4, 5, 10, 20, 100]))
        x = rng.normal(size=n) if t % 3 else rng.integers(0, int(rng.integers(1, 6)), size=n).astype(float)
        y = rng.normal(size=int(rng.integers(1, 2000))) * 1.2
        cases.append((x, y, nb))
        reqs.append(f"edges {nb} {n} {fmt(x)}")
    out = cli.run(reqs)
    reqs2, counted = [], []
    for (x, y, nb), line in zip(cases, out):
        f = line.split()
        edges = [float(v) for v in f[1:]]
        xs = np.sort(x)
        n = len(xs)
        want = []
        for i in range(1, nb):
            e = xs[-(-i * n // nb) - 1]  # ceil(i n / nb) - 1, exact integers
            if e < xs[-1] and (not want or want[-1] != e):
                want.append(e)
        if edges != want:
            fail(f"edges n={n} nb={nb}: {edges[:5]} vs {want[:5]}")
        reqs2.append(f"counts {len(edges)} {fmt(edges)} {len(y)} {fmt(y)}")
        counted.append((edges, y))
    out2 = cli.run(reqs2)
    for (edges, y), line in zip(counted, out2):
        got = [float(v) for v in line.split()]
        want = np.bincount(np.searchsorted(np.array(edges), y, side="left"),
                           minlength=len(edges) + 1).astype(float).tolist()
        if got != want:
            fail(f"counts: {got} vs {want}")
    print(f"bins: {len(cases)} references, edges and counts exact")


def smooth(c, eps):
    p = np.asarray(c, float) / np.sum(c)
    return (p + eps) / (1 + len(p) * eps)


def test_divergences(cli, rng):
    reqs, cases = [], []
    for t in range(200):
        b = int(rng.integers(1, 30))
        p = rng.integers(0, 50, size=b).astype(float)
        q = rng.integers(0, 50, size=b).astype(float)
        if t % 4 == 0:
            p = rng.random(b)  # proportions, not counts
        p[int(rng.integers(0, b))] += 1  # non-empty
        q[int(rng.integers(0, b))] += 1
        eps = float(rng.choice([1e-4, 1e-3, 0.0])) if (p > 0).all() and (q > 0).all() else 1e-4
        cases.append((p, q, eps))
        reqs += [f"kl {eps!r} {b} {fmt(p)} {fmt(q)}", f"psi {eps!r} {b} {fmt(q)} {fmt(p)}",
                 f"js {b} {fmt(p)} {fmt(q)}"]
    out = cli.run(reqs)
    for i, (p, q, eps) in enumerate(cases):
        kl, psi, js = (float(out[3 * i + j]) for j in range(3))
        ps, qs = smooth(p, eps), smooth(q, eps)
        want_kl = float(np.sum(special.rel_entr(ps, qs)))
        want_psi = float(np.sum((ps - qs) * np.log(ps / qs)))
        want_js = float(jensenshannon(p, q, base=2))
        pn, qn = p / p.sum(), q / q.sum()
        m = (pn + qn) / 2
        want_js2 = math.sqrt(max(0.0, (np.sum(special.rel_entr(pn, m)) +
                                       np.sum(special.rel_entr(qn, m))) / 2 / math.log(2)))
        for name, got, want in (("kl", kl, want_kl), ("psi", psi, want_psi),
                                ("js", js, want_js), ("js-numpy", js, want_js2)):
            if not rel_ok(got, want, 1e-9, 1e-12):
                fail(f"{name} b={len(p)} eps={eps}: {got!r} vs {want!r}")
    print(f"divergences: {len(cases)} KL/PSI/JS triples")


def test_chi2(cli, rng):
    reqs, cases = [], []
    for t in range(150):
        k = int(rng.integers(1, 40))
        r = rng.integers(0, 200, size=k).astype(float)
        l = rng.integers(0, 200, size=k).astype(float)
        if t % 5 == 0:
            l[int(rng.integers(0, k))] = 0
            r[int(rng.integers(0, k))] = 0
        r[0] += 1
        l[-1] += 1
        cases.append((r, l))
        reqs.append(f"chi2h {k} {fmt(r)} {fmt(l)}")
        reqs.append(f"chi2g 0.0001 {k} {fmt(l)} {fmt(r)}")
    out = cli.run(reqs)
    for i, (r, l) in enumerate(cases):
        st, p, dof, ncat = (float(v) for v in out[2 * i].split())
        keep = (r + l) > 0
        if keep.sum() >= 2:
            want = stats.chi2_contingency(np.array([r[keep], l[keep]]), correction=False)
            ws, wp, wd = want[0], want[1], want[2]
        else:
            ws, wp, wd = 0.0, 1.0, 0
        if not (rel_ok(st, ws, 1e-10, 1e-12) and rel_ok(p, wp, 1e-6, 1e-300) and dof == wd):
            fail(f"chi2 homogeneity k={len(r)}: {st}, {p}, {dof} vs {ws}, {wp}, {wd}")
        st, p, dof, ncat = (float(v) for v in out[2 * i + 1].split())
        e = l.sum() * smooth(r, 1e-4)
        ws, wp = stats.chisquare(l, e)
        if len(r) == 1:
            wp = 1.0  # SciPy: NaN for 0 degrees of freedom; featd documents p = 1
        if not (rel_ok(st, ws, 1e-10) and rel_ok(p, wp, 1e-6, 1e-300)):
            fail(f"chi2 gof k={len(r)}: {st}, {p} vs {ws}, {wp}")
    # the incomplete gamma directly, including tails and large a
    qs = []
    for a in [0.5, 1, 1.5, 2.5, 7, 30, 100, 1000, 1e4, 1e5]:
        for x in [a * f for f in (1e-3, 0.1, 0.5, 0.9, 1.0, 1.1, 2, 5)] + [1e-6, 50, 700]:
            qs.append((a, x))
    out = cli.run([f"gammaq {a!r} {x!r}" for a, x in qs] + [f"gammap {a!r} {x!r}" for a, x in qs]
                  + [f"chi2sf {2 * x!r} {2 * a!r}" for a, x in qs])
    worst = 0.0
    for i, (a, x) in enumerate(qs):
        for got, want, name in ((float(out[i]), special.gammaincc(a, x), "Q"),
                                (float(out[len(qs) + i]), special.gammainc(a, x), "P"),
                                (float(out[2 * len(qs) + i]), stats.chi2.sf(2 * x, 2 * a), "chi2sf")):
            if want < 1e-300 and got < 1e-300:
                continue
            if not rel_ok(got, want, 1e-8):
                fail(f"{name}({a}, {x}) = {got!r} vs {want!r}")
            worst = max(worst, abs(got - want) / want)
    print(f"chi-square: {len(cases)} tables x 2 tests; incomplete gamma worst rel {worst:.1e}")


# ------------------------------------------------------------------- sketches

def parse_view(lines, i):
    """Parses one 'kll' answer starting at lines[i]; returns (summary, values,
    weights, next index)."""
    s = lines[i].split()
    summary = dict(n=int(s[0]), min=float(s[1]), max=float(s[2]), retained=int(s[3]),
                   levels=int(s[4]), V=float(s[5]), bound=float(s[6]), apriori=float(s[7]))
    m = int(lines[i + 1])
    vals = np.empty(m)
    wts = np.empty(m, dtype=np.int64)
    for j in range(m):
        v, w = lines[i + 2 + j].split()
        vals[j], wts[j] = float(v), int(w)
    return summary, vals, wts, i + 2 + m


def sup_rank_error(data_sorted, vals, wts):
    """sup_y |F^(y) - F(y)|: both step functions change only at data values."""
    n = len(data_sorted)
    ys = np.unique(data_sorted)
    true = np.searchsorted(data_sorted, ys, side="right")
    cum = np.concatenate([[0], np.cumsum(wts)])
    est = cum[np.searchsorted(vals, ys, side="right")]
    return float(np.max(np.abs(est - true))) / n


def test_kll_bound(cli, rng, ntrials):
    delta = 0.01
    trials, reqs = [], []
    for t in range(ntrials):
        k = int(rng.choice([16, 50, 100, 200, 400]))
        n = int(rng.choice([100, 1000, 10000, 50000, 200000]))
        if t < 6:
            n = 1000000 if t < 3 else 300000
        kind = t % 3
        x = (rng.normal(size=n) if kind == 0 else
             rng.integers(0, 50, size=n).astype(float) if kind == 1 else
             np.sort(rng.random(n)))  # adversarial-ish order: sorted input
        trials.append((k, x))
        reqs.append(f"kll {k} {1000 + t} {delta} {n} {fmt(x)}")
    out = cli.run(reqs)
    i, viol, ratio, worst_rel = 0, 0, [], 0.0
    for k, x in trials:
        summ, vals, wts, i = parse_view(out, i)
        xs = np.sort(x)
        n = len(xs)
        if summ["n"] != n or int(wts.sum()) != n or summ["min"] != xs[0] or summ["max"] != xs[-1]:
            fail(f"kll k={k} n={n}: count/weights/min/max wrong {summ}")
        if np.any(np.diff(vals) < 0):
            fail(f"kll k={k} n={n}: view not sorted")
        err = sup_rank_error(xs, vals, wts)
        if err > summ["bound"]:
            viol += 1
        if summ["V"] > 48.0 / 7.0 * n * n / (k * k):
            fail(f"kll k={k} n={n}: V {summ['V']} above its a priori limit")
        if summ["bound"] > 0:
            ratio.append(err / summ["bound"])
        elif err != 0:
            fail(f"kll k={k} n={n}: exact sketch with error {err}")
        if k == 200:
            worst_rel = max(worst_rel, err)
    # The bound holds with probability >= 1 - delta per trial; allow a few.
    allowed = max(2, int(3 * delta * len(trials)))
    if viol > allowed:
        fail(f"kll bound violated in {viol} of {len(trials)} trials (allowed {allowed})")
    print(f"kll: {len(trials)} trials, bound violations {viol}, error/bound "
          f"mean {np.mean(ratio):.2f} max {np.max(ratio):.2f}; worst sup error at k=200 "
          f"{worst_rel:.4f}")


def test_kll_merge_quantiles(cli, rng):
    reqs, cases = [], []
    for t in range(12):
        parts = [rng.normal(loc=rng.normal(), size=int(rng.integers(1, 40000))) for _ in range(int(rng.integers(2, 9)))]
        cases.append(parts)
        reqs.append(f"kllmerge 100 {t * 31} 0.01 {len(parts)} " +
                    " ".join(f"{len(p)} {fmt(p)}" for p in parts))
    out = cli.run(reqs)
    i = 0
    for parts in cases:
        summ, vals, wts, i = parse_view(out, i)
        xs = np.sort(np.concatenate(parts))
        if summ["n"] != len(xs) or int(wts.sum()) != len(xs):
            fail(f"merge: count {summ['n']} vs {len(xs)}")
        err = sup_rank_error(xs, vals, wts)
        if err > summ["bound"]:
            fail(f"merge of {len(parts)} parts (n={len(xs)}): error {err} > bound {summ['bound']}")
    # quantiles: rank of the answer within the bound; exact for small n
    reqs, cases = [], []
    for t in range(20):
        n = int(rng.choice([5, 150, 5000, 80000]))
        x = rng.normal(size=n) if t % 2 else rng.integers(0, 20, size=n).astype(float)
        q = np.concatenate([[0.0, 1.0], rng.random(20), np.arange(1, 10) / 10])
        cases.append((x, q))
        reqs.append(f"kllq 200 {t} {n} {fmt(x)} {len(q)} {fmt(q)}")
        reqs.append(f"kll 200 {t} 0.01 {n} {fmt(x)}")
    out = cli.run(reqs)
    i = 0
    for x, q in cases:
        got = np.array([float(v) for v in out[i].split()])
        summ, _, _, i = parse_view(out, i + 1)
        xs = np.sort(x)
        n = len(xs)
        lo = np.searchsorted(xs, got, side="left") / n   # F(v-)
        hi = np.searchsorted(xs, got, side="right") / n  # F(v)
        b = summ["bound"] + 1e-12
        bad = (hi < q - b) | (lo > q + b)
        if np.any(bad):
            fail(f"quantiles n={n}: {got[bad][:3]} for q={q[bad][:3]} (bound {b})")
        if n <= 200:  # exact: the inverted-CDF quantile
            want = np.quantile(xs, q, method="inverted_cdf")
            if not np.array_equal(got, want):
                fail(f"exact quantiles n={n}: {got} vs {want}")
    print("kll: merges and quantiles within bounds")


def test_kll_blob(cli, rng):
    """Parses the documented v1 layout independently."""
    for n, k in ((0, 8), (50, 200), (100000, 64)):
        x = rng.normal(size=n)
        out = cli.run([f"kllser {k} 5 {n} {fmt(x)}"])
        blob = bytes.fromhex(out[0])
        if blob[:4] != b"FKLL" or blob[4] != 1 or blob[5] != 8:
            fail(f"blob header {blob[:8]!r}")
            continue
        kk, H = struct.unpack_from("<H", blob, 6)[0], blob[8]
        ret, nn = struct.unpack_from("<I", blob, 12)[0], struct.unpack_from("<Q", blob, 16)[0]
        mn, mx, V = struct.unpack_from("<3d", blob, 24)
        sizes = struct.unpack_from(f"<{H}I", blob, 56)
        items = struct.unpack_from(f"<{ret}d", blob, 56 + 4 * H)
        crc = struct.unpack_from("<I", blob, len(blob) - 4)[0]
        ok = (kk == k and nn == n and sum(sizes) == ret and
              len(blob) == 56 + 4 * H + 8 * ret + 4 and crc == zlib.crc32(blob[:-4]) and
              sum(s << h for h, s in enumerate(sizes)) == n)
        if n:
            ok = ok and mn == x.min() and mx == x.max() and all(mn <= v <= mx for v in items)
            pos = sizes[0]
            for h in range(1, H):
                lvl = items[pos:pos + sizes[h]]
                ok = ok and list(lvl) == sorted(lvl)
                pos += sizes[h]
        if not ok:
            fail(f"blob n={n} k={k}: layout check failed (k={kk} H={H} ret={ret} n={nn})")
    print("kll: serialized layout and CRC-32 verified")


def test_sketch_ks(cli, rng, ntrials):
    reqs, cases = [], []
    for t in range(ntrials):
        n1 = int(rng.choice([500, 5000, 20000, 100000]))
        n2 = int(rng.choice([300, 8000, 30000, 60000]))
        k = int(rng.choice([100, 200, 400]))
        a = rng.normal(size=n1)
        b = rng.normal(loc=rng.choice([0.0, 0.03, 0.2]), size=n2)
        if t % 4 == 3:
            a, b = np.round(a, 1), np.round(b, 1)
        cases.append((k, a, b))
        reqs.append(f"ksk {k} {77 * t} 0.01 0 0 {n1} {fmt(a)} {n2} {fmt(b)}")
    out = cli.run(reqs)
    viol, ratio = 0, []
    for (k, a, b), line in zip(cases, out):
        f = line.split()
        d, p, bound = float(f[0]), float(f[1]), float(f[5])
        n1, n2 = int(f[6]), int(f[7])
        r = stats.ks_2samp(a, b)
        if n1 != len(a) or n2 != len(b):
            fail(f"sketch ks: sizes {n1},{n2}")
        if abs(d - r.statistic) > bound:
            viol += 1
        ratio.append(abs(d - r.statistic) / bound if bound > 0 else 0.0)
        # p-value of the sketch statistic at the true sizes, as SciPy would
        if max(n1, n2) > 10000:
            m, n = sorted([float(n1), float(n2)], reverse=True)
            want = float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))
            if not rel_ok(p, want, 1e-6, 1e-300):
                fail(f"sketch ks p {p} vs kstwo.sf {want}")
    if viol > max(1, int(0.03 * len(cases))):
        fail(f"sketch KS bound violated in {viol} of {len(cases)}")
    print(f"sketch KS: {len(cases)} pairs, bound violations {viol}, "
          f"|D_sketch - D| / bound mean {np.mean(ratio):.2f} max {np.max(ratio):.2f}")


# ----------------------------------------------------------------- categories

def test_categories(cli, rng):
    reqs, cases = [], []
    for t in range(40):
        ncat = int(rng.integers(1, 30))
        cats = [f"c{i}" for i in range(ncat)]
        pr = rng.dirichlet(np.ones(ncat))
        ref = list(rng.choice(cats, size=int(rng.integers(1, 3000)), p=pr))
        # live: shifted weights plus categories the reference never saw
        new = [f"new{i}" for i in range(int(rng.integers(0, 4)))]
        pl = rng.dirichlet(np.ones(ncat + len(new)))
        live = list(rng.choice(cats + new, size=int(rng.integers(1, 3000)), p=pl))
        cases.append((ref, live))
        reqs.append(f"cat 64 64 32 0.0001 1 {len(ref)} {' '.join(ref)} {len(live)} {' '.join(live)}")
    out = cli.run(reqs)
    i = 0
    for ref, live in cases:
        f = out[i].split()
        labels = out[i + 1].split()
        rc = np.array([float(v) for v in out[i + 2].split()])
        lc = np.array([float(v) for v in out[i + 3].split()])
        i += 4
        # exact counts computed here
        ref_cats = sorted(set(ref))
        want_r = np.array([ref.count(c) for c in labels] + [0.0])
        want_l = np.array([live.count(c) for c in labels] + [sum(1 for v in live if v not in ref_cats)])
        if sorted(labels) != ref_cats or not np.array_equal(rc, want_r) or not np.array_equal(lc, want_l):
            fail(f"categories: aligned counts {rc}, {lc} vs {want_r}, {want_l}")
            continue
        keep = (want_r + want_l) > 0
        r, l = want_r[keep], want_l[keep]
        ncat, chi2, p, dof, kl, psi, js, unseen = int(f[0]), *map(float, f[1:])
        if keep.sum() >= 2:
            ws, wp, wd = stats.chi2_contingency(np.array([r, l]), correction=False)[:3]
        else:
            ws, wp, wd = 0.0, 1.0, 0
        ps, ls = smooth(r, 1e-4), smooth(l, 1e-4)
        want_kl = float(np.sum(special.rel_entr(ls, ps)))
        want_psi = float(np.sum((ls - ps) * np.log(ls / ps)))
        want_js = float(jensenshannon(r, l, base=2))
        checks = (ncat == keep.sum() and dof == wd and rel_ok(chi2, ws, 1e-10, 1e-12)
                  and rel_ok(p, wp, 1e-6, 1e-300) and rel_ok(kl, want_kl, 1e-9, 1e-12)
                  and rel_ok(psi, want_psi, 1e-9, 1e-12) and rel_ok(js, want_js, 1e-9, 1e-12)
                  and rel_ok(unseen, want_l[-1] / len(live), 1e-12, 1e-15))
        if not checks:
            fail(f"categories compare: {f} vs chi2 {ws} p {wp} dof {wd} kl {want_kl} "
                 f"psi {want_psi} js {want_js}")
    print(f"categories: {len(cases)} reference/live comparisons (unseen categories counted)")


# ------------------------------------------------------------------------ main

def find_cli(args):
    if args.cli and os.path.exists(args.cli):
        return args.cli
    for pat in ("featd_stats_cli", "tests/featd_stats_cli", "**/featd_stats_cli"):
        hits = glob.glob(os.path.join(args.build_dir, pat), recursive=True)
        if hits:
            return hits[0]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", default=".")
    ap.add_argument("--cli", default=None)
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--quick", action="store_true", help="fewer random cases")
    args = ap.parse_args()
    path = find_cli(args)
    if not path:
        print("FAIL: featd_stats_cli not built")
        return 1
    cli = Cli(path)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    scale = 0.25 if args.quick else 1.0
    test_ks_samples(cli, rng, int(600 * scale))
    test_ks_fallback_and_dists(cli, rng)
    test_ks_one_sided_exact(cli, np.random.default_rng(args.seed + 1), int(160 * scale))
    test_bins(cli, rng)
    test_divergences(cli, rng)
    test_chi2(cli, rng)
    test_kll_bound(cli, rng, int(150 * scale))
    test_kll_merge_quantiles(cli, rng)
    test_kll_blob(cli, rng)
    test_sketch_ks(cli, rng, int(60 * scale))
    test_categories(cli, rng)
    print(f"total {time.time() - t0:.1f}s, {len(FAILS)} failures")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
