#!/usr/bin/python3
"""Reference values for tests/test_metrics.c, from scikit-learn (Debian python3-sklearn) and scipy.stats.

Writes tests/data/metrics/refs.json: a list of cases, each with the inputs and the reference values:
  kind "cls":  pred, gold (ints), num_classes; accuracy_score, f1_score(pos_label=1, zero_division=0) for binary
               cases, matthews_corrcoef
  kind "reg":  x, y (float64 written with repr, exact round-trip); pearsonr, spearmanr, rankdata(x) (average ties)
  kind "multi": pred, gold (n x K multi-hot, 0/1), num_labels; f1_score(average="micro" / "macro", zero_division=0)
               and accuracy_score (subset accuracy) on the multi-hot rows
Cases: random binary/3-class predictions, degenerate MCC (constant predictions, all correct, all wrong), random
regression, heavy ties (values rounded to 0.5 steps), a monotone non-linear pair, STS-B-like scores in [0, 5].
Run: /usr/bin/python3 scripts/gen_metric_refs.py   (deterministic, seed 20240501)
"""
import json
import os
import warnings

import numpy as np
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
rng = np.random.default_rng(20240501)
warnings.simplefilter("ignore")


def cls_case(name, pred, gold, k):
    pred, gold = [int(v) for v in pred], [int(v) for v in gold]
    c = {"kind": "cls", "name": name, "pred": pred, "gold": gold, "num_classes": k,
         "accuracy": float(accuracy_score(gold, pred)), "mcc": float(matthews_corrcoef(gold, pred))}
    if k == 2:
        c["f1"] = float(f1_score(gold, pred, pos_label=1, zero_division=0))
    return c


def reg_case(name, x, y):
    x, y = [float(v) for v in x], [float(v) for v in y]
    return {"kind": "reg", "name": name, "x": x, "y": y, "pearson": float(stats.pearsonr(x, y)[0]),
            "spearman": float(stats.spearmanr(x, y)[0]), "rank_x": [float(v) for v in stats.rankdata(x)]}


def multi_case(name, pred, gold):
    pred, gold = np.asarray(pred, dtype=int), np.asarray(gold, dtype=int)
    return {"kind": "multi", "name": name, "pred": pred.tolist(), "gold": gold.tolist(), "num_labels": pred.shape[1],
            "f1_micro": float(f1_score(gold, pred, average="micro", zero_division=0)),
            "f1_macro": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "exact_match": float(accuracy_score(gold, pred))}


cases = []
g = rng.integers(0, 2, 200)
cases.append(cls_case("binary_random", rng.integers(0, 2, 200), g, 2))
p = np.where(rng.random(300) < 0.8, g2 := rng.integers(0, 2, 300), 1 - g2)
cases.append(cls_case("binary_80pct", p, g2, 2))
g3 = rng.integers(0, 3, 250)
cases.append(cls_case("three_class", np.where(rng.random(250) < 0.6, g3, rng.integers(0, 3, 250)), g3, 3))
cases.append(cls_case("constant_pred", np.ones(50), rng.integers(0, 2, 50), 2))
cases.append(cls_case("constant_gold_and_pred", np.zeros(20), np.zeros(20), 2))
gp = rng.integers(0, 2, 40)
cases.append(cls_case("all_correct", gp, gp, 2))
cases.append(cls_case("all_wrong", 1 - gp, gp, 2))
cases.append(cls_case("no_positives", np.zeros(30), np.zeros(30), 2))

x = rng.normal(size=500)
cases.append(reg_case("random_corr", x, 0.7 * x + rng.normal(size=500)))
cases.append(reg_case("ties", np.round(rng.normal(size=300) * 2) / 2, np.round(rng.normal(size=300))))
t = rng.random(100) * 4
cases.append(reg_case("monotone_nonlinear", t, np.exp(t)))
s = np.round(rng.random(400) * 25) / 5  # STS-B-like gold in [0, 5], many ties
cases.append(reg_case("stsb_like", s + rng.normal(scale=0.8, size=400), s))
cases.append(reg_case("negative", x[:50], -x[:50] ** 3))

# multi-label: random sets, a label never gold nor predicted (macro-F1 counts it as 0), predictions 85% right per
# (example, label), no predictions at all, every set empty on both sides
gm = (rng.random((120, 5)) < 0.3).astype(int)
cases.append(multi_case("multi_random", (rng.random((120, 5)) < 0.3).astype(int), gm))
flip = rng.random((120, 5)) < 0.15
cases.append(multi_case("multi_85pct", np.where(flip, 1 - gm, gm), gm))
g6 = (rng.random((60, 6)) < 0.4).astype(int)
g6[:, 4] = 0
p6 = np.where(rng.random((60, 6)) < 0.2, 1 - g6, g6)
p6[:, 4] = 0
cases.append(multi_case("multi_absent_label", p6, g6))
cases.append(multi_case("multi_no_predictions", np.zeros((40, 3), dtype=int), (rng.random((40, 3)) < 0.5).astype(int)))
cases.append(multi_case("multi_all_empty", np.zeros((10, 4), dtype=int), np.zeros((10, 4), dtype=int)))

os.makedirs(os.path.join(ROOT, "tests", "data", "metrics"), exist_ok=True)
with open(os.path.join(ROOT, "tests", "data", "metrics", "refs.json"), "w") as f:
    json.dump(cases, f)
    f.write("\n")
for c in cases:
    print(c["name"], {k: c[k] for k in ("accuracy", "f1", "mcc", "pearson", "spearman", "f1_micro", "f1_macro",
                                        "exact_match") if k in c})
