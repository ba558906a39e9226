#!/usr/bin/python3
"""Exact two-sample KS p-value: featd against SciPy, in the same run, on the same data.

For each case (n1, n2, alternative) one sample pair is drawn (normal, the
second shifted by 0.03 so that D is moderate), and both sides compute the
test with method='exact':

  2samp   featd feat_ks_2samp(EXACT) (timed inside featd_stats_cli's
          `kstime`, so no process start or parsing is counted) against
          scipy.stats.ks_2samp(method='exact') (timed here, warnings on);
  pvalue  the p-value step alone on that D: feat_ks_pvalue(EXACT) against
          SciPy's _attempt_exact_2kssamp plus, when it gives up, the
          asymptotic formula ks_2samp then uses (SciPy 1.10.1 private
          functions; the column is left out if they are missing).

Each figure is the median of repeated calls (enough to fill about 0.3 s for
featd and 1 s for SciPy, at least 3).  Exact p-values that SciPy cannot form
(the one-sided count overflows a double past n1 + n2 of about 1030; SciPy
then warns) fall back to the asymptotic formula on both sides: the "method"
column says which produced the p-value, and "agree" that featd's p-value is
within 1e-6 relative of SciPy's and came from the same method.

This is a benchmark, not a test: it asserts nothing about time.  It exits 1
only when the two disagree on a p-value.

  cmake --build build --target featd_stats_cli
  /usr/bin/python3 tests/bench/bench_ks_exact.py --build-dir build [--quick]
"""
import argparse
import glob
import math
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
from scipy import stats

try:
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - another SciPy
    _attempt_exact_2kssamp = None

ALTS = ["two-sided", "less", "greater"]
SIZES = [(100, 100), (1000, 1000), (5000, 5000), (10000, 10000), (20000, 20000),
         (100, 99), (515, 514), (1000, 999), (5000, 4999), (10000, 9999), (20000, 19999),
         (10000, 5000), (10000, 100), (3, 10000)]
QUICK = [(100, 99), (1000, 999), (10000, 9999)]


def find_cli(build_dir):
    hits = glob.glob(os.path.join(build_dir, "**", "featd_stats_cli"), recursive=True)
    return hits[0] if hits else None


def fmt(a):
    return " ".join(repr(float(v)) for v in a)


def featd_time(cli, alt, a, b, reps):
    req = f"kstime {alt} 1 {reps} {len(a)} {len(b)} {fmt(a)} {fmt(b)}\n"
    out = subprocess.run([cli], input=req, capture_output=True, text=True, check=True).stdout
    f = out.split()
    if f[0] == "error":
        raise RuntimeError(out)
    return float(f[0]), float(f[1]), int(f[2]), float(f[3]), float(f[4])


def scipy_2samp(a, b, alt):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = stats.ks_2samp(a, b, alternative=ALTS[alt], method="exact")
    exact = not any("Exact calculation unsuccessful" in str(x.message) for x in w)
    return r, exact


def scipy_pvalue(d, n1, n2, alt):
    """ks_2samp's p-value step for method='exact' (SciPy 1.10.1)."""
    g = math.gcd(n1, n2)
    ok, d, prob = _attempt_exact_2kssamp(n1, n2, g, d, ALTS[alt])
    if ok:
        return prob
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    if alt == 0:
        return stats.kstwo.sf(d, np.round(en))
    z = np.sqrt(en) * d
    return np.exp(-2 * z ** 2 - 2 * z * (m + 2 * n) / np.sqrt(m * n * (m + n)) / 3.0)


def timed(fn, budget, reps_max):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    reps = max(3, min(reps_max, int(budget / max(first, 1e-7))))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), reps


def ms(t):
    return f"{t * 1e3:.4g}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", default=".")
    ap.add_argument("--cli", default=None)
    ap.add_argument("--quick", action="store_true", help="three sizes, one-sided: a smoke run")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cli = args.cli or find_cli(args.build_dir)
    if not cli:
        print("FAIL: featd_stats_cli not built")
        return 1
    warnings.simplefilter("ignore")   # SciPy's fallback warning, in the timed loops
    rng = np.random.default_rng(args.seed)
    sizes = QUICK if args.quick else SIZES
    alts = [2] if args.quick else [2, 1, 0]
    budget_c, budget_s = (0.05, 0.1) if args.quick else (0.3, 1.0)
    print("times in ms, medians; ratio = featd / SciPy")
    print(f"{'n1':>6} {'n2':>6} {'alternative':>11} {'method':>6} {'featd 2samp':>12} "
          f"{'SciPy 2samp':>12} {'ratio':>7} {'featd pvalue':>13} {'SciPy pvalue':>13} "
          f"{'ratio':>7} {'agree':>5}")
    disagree, worst = 0, 0.0
    for alt in alts:
        for n1, n2 in sizes:
            a = rng.normal(size=n1)
            b = rng.normal(loc=0.03, size=n2)
            d, p, meth, t_one, _ = featd_time(cli, alt, a, b, 1)
            reps_c = max(3, min(1000, int(budget_c / max(t_one, 1e-7))))
            _, _, _, tc2, tcp = featd_time(cli, alt, a, b, reps_c)
            r, sp_exact = scipy_2samp(a, b, alt)
            ts2, _ = timed(lambda: stats.ks_2samp(a, b, alternative=ALTS[alt], method="exact"),
                           budget_s, 50)
            tsp = float("nan")
            if _attempt_exact_2kssamp is not None:
                tsp, _ = timed(lambda: scipy_pvalue(r.statistic, n1, n2, alt), budget_s, 50)
            ok = ((meth == 1) == sp_exact and abs(d - r.statistic) <= 1e-12 and
                  abs(p - r.pvalue) <= 1e-6 * abs(r.pvalue) + 1e-300)
            disagree += not ok
            if r.pvalue > 0:
                worst = max(worst, abs(p - r.pvalue) / r.pvalue)
            method = "exact" if meth == 1 else "asymp"
            print(f"{n1:>6} {n2:>6} {ALTS[alt]:>11} {method:>6} {ms(tc2):>12} {ms(ts2):>12} "
                  f"{tc2 / ts2:>7.3f} {ms(tcp):>13} {ms(tsp):>13} {tcp / tsp:>7.3f} "
                  f"{'yes' if ok else 'NO':>5}", flush=True)
    print(f"p-values: worst relative difference {worst:.2e}; {disagree} disagreements")
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
