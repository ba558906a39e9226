#!/usr/bin/python3
"""tests/integration/drift_divergence.py — KL, PSI and JS as the drift monitor computes them.

Drives featd_stats_cli (stats/tools/stats_cli.c) and recomputes every
answer independently on the same bins (docs/DRIFT.md says what the bins are):

  * KL(live || ref): scipy.stats.entropy(live~, ref~), natural log, where x~
    is x / sum(x) smoothed additively with eps (computed here, not by featd);
  * PSI: numpy, sum((live~ - ref~) * log(live~ / ref~));
  * JS: scipy.spatial.distance.jensenshannon(live, ref, base=2), which is the
    distance (the square root of the divergence), unsmoothed; and its square
    against the divergence in bits from scipy.stats.entropy.

Three paths: the library call the monitor makes (feat_divergences, request
`divs`) and the single functions (`kl`, `psi`, `js`) on random count vectors
with empty bins on either side; the monitor's numeric path end to end
(`binsk`: edges at the quantiles of a KLL sketch of the reference, both
sketches' counts at those edges), whose edges and counts are also checked
exactly against numpy where the sketches hold every value; and categories
(`cat`: reference categories plus an "other" bucket).  Tolerance 1e-9
relative (1e-15 absolute where the value is 0).  The cases are drawn so that
KL(live || ref) and KL(ref || live) differ: a swapped direction fails.

Exit 0 on success, 1 on any mismatch, 77 (skipped) when SciPy is missing.
"""
import argparse
import glob
import os
import subprocess
import sys

try:
    import numpy as np
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import entropy
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

REL, ABS = 1e-9, 1e-15
FAILS = []


def fail(msg):
    FAILS.append(msg)
    if len(FAILS) <= 30:
        print("FAIL:", msg)


def close(got, want):
    if np.isinf(want):
        return got == want
    return abs(got - want) <= max(REL * abs(want), ABS)


def run_cli(cli, requests):
    text = "\n".join(requests) + "\n"
    p = subprocess.run([cli], input=text, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"cli exit {p.returncode}: {p.stdout[-300:]} {p.stderr[-300:]}")
    return p.stdout.split("\n")


def fmt(a):
    return " ".join(repr(float(v)) for v in a)


def smooth(c, eps, nbins=None):
    """(c / sum c + eps) / (1 + B eps), B = number of bins."""
    c = np.asarray(c, float)
    b = len(c) if nbins is None else nbins
    return (c / c.sum() + eps) / (1 + b * eps)


def expected(ref, live, eps):
    """KL(live || ref), PSI, JS distance from SciPy / NumPy on the same bins."""
    r, l = smooth(ref, eps), smooth(live, eps)
    kl = float(entropy(l, r))
    psi = float(np.sum((l - r) * np.log(l / r)))
    js = float(jensenshannon(live, ref, base=2))
    return kl, psi, js


def check_triple(tag, got, ref, live, eps):
    kl, psi, js = expected(ref, live, eps)
    for name, g, w in zip(("kl", "psi", "js"), got, (kl, psi, js)):
        if not close(g, w):
            fail(f"{tag}: {name} {g!r} vs {w!r}")
    # the JS divergence in bits, from the distance featd reports
    pn, qn = np.asarray(live, float) / np.sum(live), np.asarray(ref, float) / np.sum(ref)
    m = (pn + qn) / 2
    jsd = (entropy(pn, m, base=2) + entropy(qn, m, base=2)) / 2
    if not close(got[2] ** 2, jsd) and abs(got[2] ** 2 - jsd) > 1e-14:
        fail(f"{tag}: js^2 {got[2] ** 2!r} vs JSD {jsd!r} bits")
    # a swapped direction would be seen: count the cases where it differs
    return not close(float(entropy(smooth(ref, eps), smooth(live, eps))), kl)


def count_vectors(rng, ncases):
    cases = []
    for t in range(ncases):
        b = int(rng.integers(1, 40))
        ref = rng.integers(0, 60, size=b).astype(float)
        live = (rng.integers(0, 60, size=b) * rng.random(b) ** 2).round()
        if t % 5 == 0:
            ref = rng.random(b)                      # fractions, not counts
        if t % 7 == 0:
            live[: b // 2] = 0                       # a run of empty live bins
        if t % 11 == 0:
            ref[b // 2:] = 0                         # live mass where ref has none
        ref[int(rng.integers(0, b))] += 1
        live[int(rng.integers(0, b))] += 1
        if (ref > 0).all() and (live > 0).all():
            eps = float(rng.choice([1e-4, 1e-3, 0.0]))
        else:
            eps = float(rng.choice([1e-4, 1e-3, 1e-6]))
        cases.append((ref, live, eps))
    # fixed corner cases: one bin, identical, disjoint supports
    cases += [(np.array([5.0]), np.array([3.0]), 1e-4),
              (np.array([1.0, 2, 3]), np.array([2.0, 4, 6]), 1e-4),
              (np.array([4.0, 0, 0]), np.array([0.0, 0, 9]), 1e-4)]
    return cases


def test_vectors(cli, rng):
    cases = count_vectors(rng, 300)
    reqs = []
    for ref, live, eps in cases:
        b = len(ref)
        reqs += [f"divs {eps!r} {b} {fmt(ref)} {fmt(live)}",
                 f"kl {eps!r} {b} {fmt(live)} {fmt(ref)}",
                 f"psi {eps!r} {b} {fmt(ref)} {fmt(live)}",
                 f"js {b} {fmt(live)} {fmt(ref)}"]
    out = run_cli(cli, reqs)
    directional = 0
    for i, (ref, live, eps) in enumerate(cases):
        got = [float(v) for v in out[4 * i].split()]
        tag = f"divs b={len(ref)} eps={eps}"
        directional += check_triple(tag, got, ref, live, eps)
        single = [float(out[4 * i + j]) for j in (1, 2, 3)]
        if single != got:
            fail(f"{tag}: kl/psi/js one by one {single} vs feat_divergences {got}")
    # eps = 0 with an empty reference bin: KL and PSI are +inf, JS finite
    o = run_cli(cli, ["divs 0 3 1 0 1 1 1 1"])[0].split()
    if not (o[0] == "inf" and o[1] == "inf" and close(float(o[2]),
                                                      float(jensenshannon([1, 1, 1], [1, 0, 1], base=2)))):
        fail(f"eps = 0, empty reference bin: {o}")
    print(f"vectors: {len(cases)} (ref, live, eps), KL direction visible in {directional}")
    if directional < len(cases) // 2:
        fail("too few cases where KL(live || ref) != KL(ref || live)")


def inverted_cdf_edges(x, nb):
    xs = np.sort(x)
    edges = []
    for q in np.quantile(xs, np.arange(1, nb) / nb, method="inverted_cdf"):
        if q < xs[-1] and (not edges or edges[-1] != q):
            edges.append(float(q))
    return edges


def sample(rng, kind, n, shift):
    if kind == 0:
        return rng.normal(loc=shift, size=n)
    if kind == 1:
        return rng.integers(0, 6, size=n).astype(float) + round(shift * 3)
    if kind == 2:
        return np.where(rng.random(n) < 0.4, 0.0, rng.exponential(1 + shift, size=n))
    return rng.normal(loc=3 * shift, scale=0.2, size=n)   # narrow: many live values outside ref's bins


def test_numeric_path(cli, rng):
    cases, reqs = [], []
    for t in range(120):
        k = int(rng.choice([100, 200]))
        small = t % 2 == 0                    # n <= k: the sketches hold every value
        nr = int(rng.integers(1, k + 1)) if small else int(rng.choice([2000, 20000, 100000]))
        nl = int(rng.integers(1, k + 1)) if small else int(rng.choice([1000, 10000, 50000]))
        nb = int(rng.choice([2, 3, 5, 10, 20, 100]))
        kind = t % 4
        ref = sample(rng, kind, nr, 0.0)
        live = sample(rng, kind, nl, float(rng.choice([0.0, 0.1, 0.5, 2.0])))
        eps = float(rng.choice([1e-4, 1e-3]))
        cases.append((k, nb, eps, ref, live, small))
        reqs.append(f"binsk {k} {1000 + t} {nb} {eps!r} {nr} {fmt(ref)} {nl} {fmt(live)}")
    out = run_cli(cli, reqs)
    directional, exact = 0, 0
    for i, (k, nb, eps, ref, live, small) in enumerate(cases):
        f = out[4 * i].split()
        edges = [float(v) for v in f[1:]]
        rc = np.array([float(v) for v in out[4 * i + 1].split()])
        lc = np.array([float(v) for v in out[4 * i + 2].split()])
        got = [float(v) for v in out[4 * i + 3].split()]
        tag = f"binsk k={k} nb={nb} nref={len(ref)} nlive={len(live)}"
        if int(f[0]) != len(edges) or len(rc) != len(edges) + 1 or len(lc) != len(edges) + 1:
            fail(f"{tag}: {len(edges)} edges, {len(rc)}/{len(lc)} counts")
            continue
        if rc.sum() != len(ref) or lc.sum() != len(live):
            fail(f"{tag}: counts sum {rc.sum()}/{lc.sum()}")
        if small:
            exact += 1
            want_e = inverted_cdf_edges(ref, nb)
            bins = lambda x: np.bincount(np.searchsorted(np.array(want_e), x, side="left"),
                                         minlength=len(want_e) + 1).astype(float)
            if edges != want_e:
                fail(f"{tag}: edges {edges[:4]} vs numpy {want_e[:4]}")
            elif not (np.array_equal(rc, bins(ref)) and np.array_equal(lc, bins(live))):
                fail(f"{tag}: counts {rc}, {lc} vs numpy {bins(ref)}, {bins(live)}")
        directional += check_triple(tag, got, rc, lc, eps)
    print(f"numeric path: {len(cases)} reference/live pairs ({exact} with edges and counts "
          f"checked exactly), KL direction visible in {directional}")
    if directional < len(cases) // 2:
        fail("numeric path: too few cases where KL(live || ref) != KL(ref || live)")


def test_categories(cli, rng):
    cases, reqs = [], []
    for t in range(60):
        ncat = int(rng.integers(1, 25))
        cats = [f"c{i}" for i in range(ncat)]
        ref = list(rng.choice(cats, size=int(rng.integers(1, 2000)), p=rng.dirichlet(np.ones(ncat))))
        new = [f"new{i}" for i in range(int(rng.integers(0, 3)))]
        live = list(rng.choice(cats + new, size=int(rng.integers(1, 2000)),
                               p=rng.dirichlet(np.ones(ncat + len(new)))))
        cases.append((ref, live))
        reqs.append(f"cat 64 64 32 0.0001 1 {len(ref)} {' '.join(ref)} {len(live)} {' '.join(live)}")
    out = run_cli(cli, reqs)
    directional = 0
    for i, (ref, live) in enumerate(cases):
        f = out[4 * i].split()
        labels = out[4 * i + 1].split()
        rc = np.array([float(v) for v in out[4 * i + 2].split()])
        lc = np.array([float(v) for v in out[4 * i + 3].split()])
        want_r = np.array([ref.count(c) for c in labels] + [0.0])
        want_l = np.array([live.count(c) for c in labels] + [sum(v not in set(ref) for v in live)])
        if not (np.array_equal(rc, want_r) and np.array_equal(lc, want_l)):
            fail(f"categories: aligned counts {rc}, {lc} vs {want_r}, {want_l}")
            continue
        keep = (rc + lc) > 0          # categories empty on both sides are left out
        got = [float(f[4]), float(f[5]), float(f[6])]
        directional += check_triple(f"cat ncat={len(labels)}", got, rc[keep], lc[keep], 1e-4)
    print(f"categories: {len(cases)} comparisons, KL direction visible in {directional}")
    if directional < len(cases) // 2:
        fail("categories: too few cases where KL(live || ref) != KL(ref || live)")


def find_cli(args):
    if args.cli and os.path.exists(args.cli):
        return args.cli
    hits = glob.glob(os.path.join(args.build_dir, "**", "featd_stats_cli"), recursive=True)
    return hits[0] if hits else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", default=".")
    ap.add_argument("--cli", default=None)
    ap.add_argument("--seed", type=int, default=20261204)
    args = ap.parse_args()
    cli = find_cli(args)
    if not cli:
        print("FAIL: featd_stats_cli not built")
        return 1
    rng = np.random.default_rng(args.seed)
    test_vectors(cli, rng)
    test_numeric_path(cli, rng)
    test_categories(cli, rng)
    print(f"{len(FAILS)} failures")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
