#!/usr/bin/env python3
"""Gradient-boosted trees trained by featd (train/gbdt.c through feat_train, run by feattrain --task
gbdt) against python3-xgboost trained on the same rows with the same parameters and the same time
split (the newest 25% validate, early stopping on them).

Checks, on generated data with interactions and missing values:
  - classification: featd's validation AUC is within 0.005 of xgboost's, and beats featd's logistic
    regression on the same data by more than 0.05 (the data is built so that a linear model cannot
    see the interaction);
  - regression: featd's validation RMSE is within 1% of xgboost's;
  - the model featd trained survives its blob (--model-out) and the kept rounds equal xgboost's
    best_iteration + 1.
With --bench ROWS it prints one BENCHMARKS.md row (training seconds, both sides, and the AUCs)
instead of asserting less than the above.

Exit 77 (skipped, visibly) when /usr/bin/python3 has no xgboost (deploy/install.sh installs it).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--build-dir", required=True)
ap.add_argument("--source-dir", required=True)
ap.add_argument("--bench", type=int, default=0, help="rows: print a benchmark row")
args = ap.parse_args()
try:
    import numpy as np
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score
except ImportError as e:
    print(f"SKIP: {e} (apt install python3-xgboost python3-sklearn)")
    sys.exit(77)

TOOL = os.path.join(args.build_dir, "train", "feattrain")
N = args.bench or 20000
PARAMS = dict(trees=300, depth=5, eta=0.1, l2=1.0, subsample=0.8, mcw=1.0, early=15, seed=3)


def data(seed, n):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    X[:, 4] = rng.integers(0, 5, size=n)
    z = 2.0 * (X[:, 0] * X[:, 1] > 0) - 1 + 1.5 * np.sin(3 * X[:, 2]) + 0.3 * X[:, 4] - 0.5 * (X[:, 3] > 1)
    y_cls = (rng.random(n) < 1 / (1 + np.exp(-2 * z))).astype(int)
    y_reg = 3 * z + rng.normal(scale=0.5, size=n)
    X[rng.random(X.shape) < 0.1] = np.nan
    return X, y_cls, y_reg


def write_csv(path, X, y):
    with open(path, "w") as f:
        f.write(",".join(f"x{j}" for j in range(X.shape[1])) + ",y\n")
        for row, t in zip(X, y):
            f.write(",".join("" if np.isnan(v) else repr(float(v)) for v in row) + f",{t!r}\n")


def featd(path, task, extra=()):
    types = ",".join(f"x{j}=double" for j in range(6))
    cmd = [TOOL, "--csv", path, "--label", "y", "--task", task, "--types", types, *extra]
    if task == "gbdt":
        p = PARAMS
        cmd += ["--trees", str(p["trees"]), "--max-depth", str(p["depth"]), "--lr", str(p["eta"]),
                "--l2", str(p["l2"]), "--subsample", str(p["subsample"]), "--min-child-weight",
                str(p["mcw"]), "--early-stopping", str(p["early"]), "--seed", str(p["seed"])]
        if not extra:
            cmd += ["--mlp-task", "auto"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), wall


def reference(X, y, binary):
    n_valid = int(len(y) * 0.25)
    n_train = len(y) - n_valid
    p = PARAMS
    params = {"objective": "binary:logistic" if binary else "reg:squarederror",
              "eval_metric": "auc" if binary else "rmse", "tree_method": "hist", "nthread": 1,
              "eta": p["eta"], "lambda": p["l2"], "max_depth": p["depth"], "subsample": p["subsample"],
              "min_child_weight": p["mcw"], "seed": p["seed"], "verbosity": 0}
    dtrain = xgb.DMatrix(X[:n_train].astype(np.float32), label=y[:n_train], missing=np.nan)
    dvalid = xgb.DMatrix(X[n_train:].astype(np.float32), label=y[n_train:], missing=np.nan)
    t0 = time.perf_counter()
    b = xgb.train(params, dtrain, p["trees"], evals=[(dvalid, "valid")], early_stopping_rounds=p["early"],
                  verbose_eval=False)
    secs = time.perf_counter() - t0
    pred = b.predict(dvalid, iteration_range=(0, b.best_iteration + 1))
    yv = y[n_train:]
    metric = roc_auc_score(yv, pred) if binary else float(np.sqrt(np.mean((pred - yv) ** 2)))
    return metric, b.best_iteration + 1, secs


fails = []
X, y_cls, y_reg = data(11, N)
with tempfile.TemporaryDirectory() as d:
    cls_csv, reg_csv, blob = os.path.join(d, "cls.csv"), os.path.join(d, "reg.csv"), os.path.join(d, "m.blob")
    write_csv(cls_csv, X, y_cls)
    write_csv(reg_csv, X, y_reg)

    ours, wall = featd(cls_csv, "gbdt", ["--model-out", blob])
    ref_auc, ref_rounds, ref_secs = reference(X, y_cls, True)
    lr, _ = featd(cls_csv, "logreg", ["--epochs", "20", "--lr", "0.05"])
    auc, lr_auc = ours["valid"]["auc"], lr["valid"]["auc"]
    print(f"classification: featd trees AUC {auc:.5f} ({ours['trees_kept']} rounds, {ours['train_seconds']:.3f} s), "
          f"xgboost AUC {ref_auc:.5f} ({ref_rounds} rounds, {ref_secs:.3f} s), featd logreg AUC {lr_auc:.5f}")
    if not abs(auc - ref_auc) <= 0.005:
        fails.append(f"AUC {auc} vs xgboost {ref_auc}: more than 0.005 apart")
    if not auc > lr_auc + 0.05:
        fails.append(f"trees AUC {auc} does not beat logistic regression's {lr_auc} by 0.05")
    if ours["trees_kept"] != ref_rounds:
        fails.append(f"kept {ours['trees_kept']} rounds, xgboost's early stopping kept {ref_rounds}")
    if not os.path.getsize(blob) > 1000:
        fails.append("no model blob written")

    reg, _ = featd(reg_csv, "gbdt", ["--mlp-task", "regression"])
    ref_rmse, _, _ = reference(X, y_reg, False)
    rmse = reg["valid"]["rmse"]
    print(f"regression: featd trees RMSE {rmse:.5f}, xgboost RMSE {ref_rmse:.5f}")
    if not abs(rmse - ref_rmse) <= 0.01 * ref_rmse:
        fails.append(f"RMSE {rmse} vs xgboost {ref_rmse}: more than 1% apart")
    if args.bench:   # three more rounds each, alternating, for the timing: medians
        fs_, rs_ = [ours["train_seconds"]], [ref_secs]
        for r in range(3):
            for side in ((0, 1) if r % 2 else (1, 0)):
                if side == 0:
                    fs_.append(featd(cls_csv, "gbdt", ["--model-out", blob])[0]["train_seconds"])
                else:
                    rs_.append(reference(X, y_cls, True)[2])
        import statistics
        fm, rm = statistics.median(fs_), statistics.median(rs_)
        print(f"featd train_seconds {[round(x, 2) for x in fs_]}, xgboost.train {[round(x, 2) for x in rs_]}")
        print(f"| {N:,} × 6 | {fm:.2f} s ({ours['trees_kept']} rounds) | {rm:.2f} s ({ref_rounds} rounds) | "
              f"{fm / rm:.2f} | {auc:.4f} | {ref_auc:.4f} | {lr_auc:.4f} |")

for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
