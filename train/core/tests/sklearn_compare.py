#!/usr/bin/python3
"""sklearn_compare.py — feattrain against scikit-learn on the same data, the
same time split and the same preprocessing.

Generates time-stamped CSVs (numeric, int64, bool and string columns, missing
values; file rows shuffled so that feattrain must sort by --time-col), runs
feattrain, and checks:
  1. feattrain's preprocessed matrix (--dump-features) equals an independent
     NumPy implementation of the documented preprocessing (train/core/prep.h);
  2. logistic regression: validation AUC within 0.005 of sklearn's
     LogisticRegression with the equivalent L2 (C = 1 / (l2 · n_train));
  3. linear regression: validation RMSE within 1% of sklearn's
     LinearRegression (l2 = 0) and of Ridge (alpha = l2 · n_train).

Usage: sklearn_compare.py --feattrain PATH   (or --build-dir DIR, where
DIR/train/core/feattrain is looked for).  Exit 0 pass, 1 fail, 77 skipped.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.metrics import mean_squared_error, roc_auc_score
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

TOP_K, BUCKETS = 6, 4
CITIES = ["Berlin", "Paris", "Tokyo", "Lima", "Oslo", "Accra", "Quito", "Hanoi", "Perth", "Cusco"]


def fnv1a64(b: bytes) -> int:
    h = 0xCBF29CE484222325
    for c in b:
        h ^= c
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def generate(rng, n, task):
    """Rows as dicts of CSV text, plus the columns' types."""
    ts = rng.permutation(n) * 1000 + 1_700_000_000_000  # distinct times, file order shuffled
    x1 = rng.normal(3.0, 2.0, n)
    x2 = rng.normal(-1.0, 0.5, n)
    x3 = rng.uniform(0, 100, n)
    k = rng.integers(0, 10, n)
    flag = rng.random(n) < 0.3
    # skewed categories: the first few are common, the rest rare, plus unseen-later ones
    p = np.array([0.25, 0.2, 0.15, 0.1, 0.08, 0.07, 0.05, 0.04, 0.03, 0.03])
    city = rng.choice(len(CITIES), n, p=p)
    eff = np.array([0.8, -0.5, 0.3, 0.0, -1.0, 0.6, 1.2, -0.7, 0.4, -0.2])
    z = 0.6 * (x1 - 3) / 2 - 1.1 * (x2 + 1) / 0.5 + 0.01 * (x3 - 50) + 0.15 * (k - 4.5) \
        + 0.7 * flag + eff[city]
    miss2 = rng.random(n) < 0.1
    misscity = rng.random(n) < 0.05
    if task == "binary":
        y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
        ytxt = [str(v) for v in y]
    else:
        y = 10 + 4 * z + rng.normal(0, 1.5, n)
        ytxt = [repr(float(v)) for v in y]
    rows = []
    for i in range(n):
        rows.append({
            "ts": str(ts[i]),
            "x1": repr(float(x1[i])),
            "x2": "" if miss2[i] else repr(float(x2[i])),
            "x3": repr(float(x3[i])),
            "k": str(int(k[i])),
            "flag": "true" if flag[i] else "false",
            "city": "NA" if misscity[i] else CITIES[city[i]],
            "y": ytxt[i],
        })
    types = {"x1": "double", "x2": "double", "x3": "double", "k": "int64", "flag": "bool",
             "city": "string"}
    return rows, types


def preprocess(rows, types, n_train):
    """The documented preprocessing, written independently of the C code."""
    cols = []
    for name in ["x1", "x2", "x3", "k", "flag", "city"]:
        t = types[name]
        vals = [r[name] for r in rows]
        missing = np.array([v in ("", "NA", "NaN", "nan", "null") for v in vals])
        if t != "string":
            x = np.array([0.0 if m else (1.0 if v == "true" else 0.0 if v == "false" else float(v))
                          for v, m in zip(vals, missing)])
            pres = x[:n_train][~missing[:n_train]]
            mean = pres.sum() / len(pres) if len(pres) else 0.0
            std = math.sqrt(((pres - mean) ** 2).sum() / len(pres)) if len(pres) else 1.0
            if not std >= 1e-12 * max(1.0, abs(mean)):
                std = 1.0
            z = np.clip((x - mean) * (1.0 / std), -1e6, 1e6)
            z[missing] = 0.0
            cols.append(z.astype(np.float32))
            if missing[:n_train].any():
                cols.append(missing.astype(np.float32))
        else:
            counts = {}
            for v, m in zip(vals[:n_train], missing[:n_train]):
                if not m:
                    counts[v] = counts.get(v, 0) + 1
            top = sorted(counts, key=lambda s: (-counts[s], s.encode()))[:TOP_K]
            block = np.zeros((len(rows), len(top) + BUCKETS), dtype=np.float32)
            for i, (v, m) in enumerate(zip(vals, missing)):
                if m:
                    continue
                if v in top:
                    block[i, top.index(v)] = 1
                else:
                    block[i, len(top) + fnv1a64(v.encode()) % BUCKETS] = 1
            cols.extend(block.T)
            if missing[:n_train].any():
                cols.append(missing.astype(np.float32))
    return np.column_stack(cols)


def run_feattrain(exe, path, task, extra):
    cmd = [exe, "--csv", path, "--label", "y", "--task", task, "--time-col", "ts",
           "--top-k", str(TOP_K), "--buckets", str(BUCKETS), "--backend", "cpu"] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def case(exe, tmp, rng, task, n, failures):
    rows, types = generate(rng, n, "binary" if task == "logreg" else "regression")
    path = os.path.join(tmp, f"{task}.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    rows.sort(key=lambda r: int(r["ts"]))  # the time order feattrain must use
    n_valid = int(math.floor(n * 0.25))
    n_train = n - n_valid
    y = np.array([float(r["y"]) for r in rows])
    X = preprocess(rows, types, n_train)

    def check(ok, what):
        print(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            failures.append(what)

    dump = os.path.join(tmp, f"{task}.dump.csv")
    if task == "logreg":
        l2 = 1e-4
        res = run_feattrain(exe, path, task, ["--l2", str(l2), "--epochs", "30", "--lr", "0.01",
                                              "--dump-features", dump])
    else:
        l2 = 0.0
        res = run_feattrain(exe, path, task, ["--l2", "0", "--epochs", "30", "--lr", "0.01",
                                              "--dump-features", dump])
    D = np.loadtxt(dump, delimiter=",", skiprows=1, dtype=np.float64)
    check(res["n_train"] == n_train and res["n_valid"] == n_valid,
          f"{task}: split {res['n_train']}/{res['n_valid']} == {n_train}/{n_valid}")
    check(D.shape == (n, X.shape[1] + 1),
          f"{task}: dumped matrix {D.shape} has {X.shape[1]} feature columns + label")
    if D.shape == (n, X.shape[1] + 1):
        diff = np.abs(D[:, :-1] - X.astype(np.float64)).max()
        check(diff <= 1e-6, f"{task}: preprocessing matches the NumPy reimplementation "
                            f"(max |diff| {diff:.2e})")
        check(np.array_equal(D[:, -1], y), f"{task}: labels in time order")
    Xt, Xv, yt, yv = X[:n_train], X[n_train:], y[:n_train], y[n_train:]

    if task == "logreg":
        sk = LogisticRegression(C=1.0 / (l2 * n_train), max_iter=5000, tol=1e-10)
        t0 = time.perf_counter()
        sk.fit(Xt, yt)
        sk_s = time.perf_counter() - t0
        auc_sk = roc_auc_score(yv, sk.predict_proba(Xv)[:, 1])
        auc = res["valid"]["auc"]
        print(f"      featd AUC {auc:.5f}  sklearn AUC {auc_sk:.5f}  "
              f"(featd logloss {res['valid']['logloss']:.5f}, {res['rows_per_second']:.3g} rows/s)")
        print(f"      training time: featd {res['train_seconds'] * 1e3:.1f} ms (30 epochs, {n_train} rows), "
              f"sklearn lbfgs {sk_s * 1e3:.1f} ms")
        check(abs(auc - auc_sk) <= 0.005, f"logreg: |AUC - sklearn AUC| = {abs(auc - auc_sk):.5f} <= 0.005")
    else:
        t0 = time.perf_counter()
        lin = LinearRegression().fit(Xt, yt)
        sk_s = time.perf_counter() - t0
        rmse_sk = math.sqrt(mean_squared_error(yv, lin.predict(Xv)))
        rmse = res["valid"]["rmse"]
        print(f"      featd RMSE {rmse:.5f}  sklearn LinearRegression RMSE {rmse_sk:.5f}")
        print(f"      training time: featd {res['train_seconds'] * 1e3:.1f} ms (30 epochs, {n_train} rows), "
              f"sklearn LinearRegression {sk_s * 1e3:.1f} ms")
        check(abs(rmse - rmse_sk) <= 0.01 * rmse_sk,
              f"linreg: RMSE within 1% of LinearRegression ({100 * abs(rmse - rmse_sk) / rmse_sk:.3f}%)")
        l2 = 0.01
        res2 = run_feattrain(exe, path, task, ["--l2", str(l2), "--epochs", "30", "--lr", "0.01"])
        ridge = Ridge(alpha=l2 * n_train).fit(Xt, yt)
        rmse_r = math.sqrt(mean_squared_error(yv, ridge.predict(Xv)))
        rmse2 = res2["valid"]["rmse"]
        print(f"      featd RMSE {rmse2:.5f} (l2 {l2})  sklearn Ridge RMSE {rmse_r:.5f}")
        check(abs(rmse2 - rmse_r) <= 0.01 * rmse_r,
              f"linreg: RMSE within 1% of Ridge(alpha = l2·n_train) "
              f"({100 * abs(rmse2 - rmse_r) / rmse_r:.3f}%)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--feattrain")
    ap.add_argument("--build-dir")
    ap.add_argument("--source-dir")
    ap.add_argument("--rows", type=int, default=20000)
    a = ap.parse_args()
    exe = a.feattrain
    if not exe and a.build_dir:
        for cand in ("train/core/feattrain", "feattrain"):
            if os.path.exists(os.path.join(a.build_dir, cand)):
                exe = os.path.join(a.build_dir, cand)
    if not exe or not os.path.exists(exe):
        print("FAIL: feattrain not found (pass --feattrain)")
        return 1
    failures = []
    rng = np.random.default_rng(20241124)
    with tempfile.TemporaryDirectory() as tmp:
        case(exe, tmp, rng, "logreg", a.rows, failures)
        case(exe, tmp, rng, "linreg", a.rows, failures)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
