#!/usr/bin/env python3
"""The tree runtime (train/core/trees.c) and the XGBoost JSON reader (train/xgb_json.c) against
python3-xgboost itself: models trained here with xgboost, saved with Booster.save_model, read by
featd (tests/unit/xgb_score.c) and scored on 10,000 rows with missing values; featd's predictions
must equal xgboost's predict() to 1e-6.

Models: binary:logistic with 200 trees of depth 6 (the issue's size) on data with interactions;
reg:squarederror; binary:logitraw; a random forest (num_parallel_tree = 8, subsampled). Then the files
featd must refuse, each with exit 2 and a message naming what: truncated, not JSON, multi-class, dart,
gblinear, an unknown objective, a split on a feature past num_feature, a child index out of range, a
node reached twice (a cycle), and categorical splits.

Exit 77 (skipped, visibly) when /usr/bin/python3 has no xgboost (deploy/install.sh installs it).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--build-dir", required=True)
ap.add_argument("--source-dir", required=True)
args = ap.parse_args()
try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:
    print(f"SKIP: {e} (apt install python3-xgboost)")
    sys.exit(77)

TOOL = os.path.join(args.build_dir, "tests", "xgb_score")
NROWS = 10000


def data(rng, n, nf=8, missing=0.15):
    X = rng.normal(size=(n, nf))
    X[:, 3] = np.round(X[:, 3] * 2) / 2           # ties at thresholds
    logit = 1.5 * X[:, 0] * X[:, 1] - X[:, 2] + np.sin(2 * X[:, 3]) + 0.5 * (X[:, 4] > 0.3)
    y_cls = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    y_reg = logit + rng.normal(scale=0.3, size=n)
    X[rng.random(X.shape) < missing] = np.nan
    return X, y_cls, y_reg


def featd_scores(model_path, X):
    csv = "\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in row) for row in X) + "\n"
    out = subprocess.run([TOOL, model_path], input=csv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    return lines[0], np.array([float(x) for x in lines[1:]])


def check(name, params, rounds, X, y, Xt, names=None):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{name}.json")
        dtrain = xgb.DMatrix(X, label=y, missing=np.nan, feature_names=names)
        b = xgb.train(params, dtrain, rounds)
        b.save_model(path)
        want = b.predict(xgb.DMatrix(Xt, missing=np.nan, feature_names=names))
        head, got = featd_scores(path, Xt)
        assert len(got) == len(want), (len(got), len(want))
        diff = np.abs(got - want.astype(np.float64))
        print(f"{name}: {head}; max |featd - xgboost| = {diff.max():.3g} over {len(got)} rows "
              f"({int(np.isnan(Xt).any(axis=1).sum())} with a missing value)")
        assert diff.max() <= 1e-6, (name, diff.max(), np.argmax(diff))
        assert f"trees {rounds * params.get('num_parallel_tree', 1)} " in head, head
        if names:
            assert head.endswith("names " + ",".join(names)), head
        return path, open(path).read()


def refused(label, text, expect):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bad.json")
        open(path, "w").write(text)
        out = subprocess.run([TOOL, path], input="", capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, (label, out.returncode, out.stdout, out.stderr)
        msg = out.stderr.strip()
        assert expect in msg, (label, msg)
        print(f"refused {label}: {msg}")


def main():
    rng = np.random.default_rng(42)
    X, yc, yr = data(rng, 20000)
    Xt, _, _ = data(np.random.default_rng(7), NROWS)
    names = [f"f{i}" for i in range(X.shape[1])]
    _, good = check("binary:logistic 200x6", {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1,
                                              "tree_method": "hist", "nthread": 2}, 200, X, yc, Xt, names)
    check("reg:squarederror", {"objective": "reg:squarederror", "max_depth": 5, "eta": 0.2, "nthread": 2}, 80,
          X, yr, Xt)
    check("binary:logitraw", {"objective": "binary:logitraw", "max_depth": 4, "eta": 0.3, "nthread": 2}, 40,
          X, yc, Xt)
    # exact with gamma prunes: the saved arrays keep the deleted nodes, unreachable
    check("pruned (exact, gamma = 2)", {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "gamma": 2.0,
                                        "tree_method": "exact", "nthread": 2}, 30, X[:4000], yc[:4000], Xt)
    check("random forest", {"objective": "binary:logistic", "max_depth": 6, "eta": 1.0, "num_parallel_tree": 8,
                            "subsample": 0.7, "colsample_bynode": 0.6, "nthread": 2}, 1, X, yc, Xt)

    j = json.loads(good)
    refused("truncated", good[: len(good) // 2], "not JSON")
    refused("not JSON", "tree = 1\n", "not JSON")
    refused("empty object", "{}", "no \"learner\"")
    small = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 2, "nthread": 2},
                      xgb.DMatrix(X[:500], label=(yc[:500] + (X[:500, 0] > 0)).astype(int)), 2)
    with tempfile.TemporaryDirectory() as d:
        small.save_model(os.path.join(d, "m.json"))
        refused("multi-class", open(os.path.join(d, "m.json")).read(), "classes")
        xgb.train({"booster": "dart", "objective": "binary:logistic", "max_depth": 2, "nthread": 2},
                  xgb.DMatrix(X[:500], label=yc[:500]), 2).save_model(os.path.join(d, "d.json"))
        refused("dart", open(os.path.join(d, "d.json")).read(), "gbtree")
        xgb.train({"booster": "gblinear", "objective": "binary:logistic", "nthread": 2},
                  xgb.DMatrix(X[:500], label=yc[:500]), 2).save_model(os.path.join(d, "l.json"))
        refused("gblinear", open(os.path.join(d, "l.json")).read(), "gbtree")

    def mutate(fn):
        m = json.loads(good)
        fn(m)
        return json.dumps(m)
    tree0 = lambda m: m["learner"]["gradient_booster"]["model"]["trees"][0]  # noqa: E731
    refused("unknown objective", mutate(lambda m: m["learner"]["objective"].update(name="reg:gamma")), "reg:gamma")
    refused("feature past num_feature",
            mutate(lambda m: tree0(m)["split_indices"].__setitem__(0, 99)), "out of range")
    refused("child out of range", mutate(lambda m: tree0(m)["left_children"].__setitem__(0, 10 ** 6)), "out of range")
    def cycle(m):  # a split below the root whose children are the root and node 1
        i = next(i for i, c in enumerate(tree0(m)["left_children"]) if c > 0 and i > 0)
        tree0(m)["left_children"][i], tree0(m)["right_children"][i] = 0, 1
    refused("a cycle", mutate(cycle), "reached twice")
    refused("categorical split", mutate(lambda m: tree0(m)["split_type"].__setitem__(0, 1)), "categorical")
    refused("arrays of different lengths", mutate(lambda m: tree0(m)["default_left"].pop()), "elements")
    refused("a key given twice", good.replace('"base_score":', '"base_score":"1E-1","base_score":', 1), "twice")
    refused("a right child that is not left + 1", mutate(lambda m: tree0(m)["right_children"].__setitem__(
        0, tree0(m)["right_children"][0] + 1) if tree0(m)["right_children"][0] + 1 < len(tree0(m)["right_children"])
        else None), "out of range")
    refused("logitraw saved before 1.4", mutate(lambda m: (m["learner"]["objective"].update(name="binary:logitraw"),
                                                           m.update(version=[1, 3, 3]))), "before 1.4")
    refused("a base score that is no probability",
            mutate(lambda m: m["learner"]["learner_model_param"].update(base_score="2")), "probability")
    print("OK: featd scores equal xgboost's to 1e-6; malformed and unsupported models refused")


if __name__ == "__main__":
    main()
