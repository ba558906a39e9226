#!/usr/bin/python3
"""Tree scoring benchmark (issue 13): trains a 200-tree depth-6 binary:logistic model with
python3-xgboost on 20,000 rows of 20 features (15% missing), writes 20,000 other rows, and runs
bench_trees: featd's runtime against libxgboost's in-place prediction, 1 and 100 rows per call.

  /usr/bin/python3 tests/bench/run_trees_bench.py --build-dir build-rel [--rounds 3]
"""
import argparse
import os
import subprocess
import tempfile

import numpy as np
import xgboost as xgb

ap = argparse.ArgumentParser()
ap.add_argument("--build-dir", required=True)
ap.add_argument("--rounds", type=int, default=3)
args = ap.parse_args()
rng = np.random.default_rng(1)
nf = 20


def rows(n):
    X = rng.normal(size=(n, nf))
    logit = X[:, 0] * X[:, 1] - X[:, 2] + np.sin(X[:, 3]) + (X[:, 4] > 0.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    X[rng.random(X.shape) < 0.15] = np.nan
    return X, y


X, y = rows(20000)
Xt, _ = rows(20000)
b = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": 2}, xgb.DMatrix(X, label=y), 200)
with tempfile.TemporaryDirectory() as d:
    b.save_model(os.path.join(d, "m.json"))
    np.ascontiguousarray(Xt, dtype=np.float64).tofile(os.path.join(d, "rows.f64"))
    subprocess.run([os.path.join(args.build_dir, "tests", "bench_trees"), os.path.join(d, "m.json"),
                    os.path.join(d, "rows.f64"), str(nf), str(args.rounds)], check=True)
