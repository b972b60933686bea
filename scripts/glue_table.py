#!/usr/bin/env python3
"""Summarises a directory of `condlora train` runs (scripts/glue_grid.sh) as a Markdown table.

For every (task, method): the number of seeds, mean and sample standard deviation (n - 1) of each metric on the test
split (under the paper protocol, the official dev file), wall time and training examples/s; beside them the
majority-class baseline (the most frequent label of train.tsv predicted for every row of dev.tsv; for STS-B the
mean-prediction baseline, whose correlations are undefined and shown as 0), and the CondLoRA - LoRA difference of
the means. Standard library only.

usage: scripts/glue_table.py [--data GLUE_DIR] RUNS_DIR [RUNS_DIR ...]
"""
import argparse
import collections
import glob
import json
import math
import os
import statistics
import sys

# task -> (has header, label column (index, negative = from the end), metric names in condlora's order)
TASKS = {
    "CoLA": (False, 1, ["mcc"]),
    "SST-2": (True, -1, ["acc"]),
    "MRPC": (True, 0, ["acc", "f1"]),
    "STS-B": (True, -1, ["pearson", "spearman"]),
    "RTE": (True, -1, ["acc"]),
    "WNLI": (True, -1, ["acc"]),
    "QNLI": (True, -1, ["acc"]),
}


def labels(path, task):
    header, col, _ = TASKS[task]
    with open(path, encoding="utf-8-sig") as f:
        rows = [line.rstrip("\r\n").split("\t") for line in f if line.strip()]
    if header:
        rows = rows[1:]
    return [r[col] for r in rows]


def baseline(data, task):
    """Metrics of the constant prediction on the official dev file (None when the files are missing)."""
    tr, dv = os.path.join(data, task, "train.tsv"), os.path.join(data, task, "dev.tsv")
    if not (os.path.exists(tr) and os.path.exists(dv)):
        return None
    if task == "STS-B":
        return {"pearson": 0.0, "spearman": 0.0}
    maj = collections.Counter(labels(tr, task)).most_common(1)[0][0]
    gold = labels(dv, task)
    acc = sum(g == maj for g in gold) / len(gold)
    out = {"acc": acc, "mcc": 0.0}
    if task == "MRPC":  # F1 of class 1; the constant prediction is class `maj`
        p = sum(g == "1" for g in gold) / len(gold)
        out["f1"] = 2 * p / (1 + p) if maj == "1" else 0.0
    return out


def fmt(xs):
    if not xs:
        return "-"
    m = statistics.mean(xs)
    if len(xs) < 2:
        return f"{100 * m:.2f}"
    return f"{100 * m:.2f} ± {100 * statistics.stdev(xs):.2f}"


def settings(o):
    """The options that differ between grids: budget, lr, precision, whether BERT's pooler was trained."""
    budget = f"{int(o['max_steps'])} steps" if o.get("max_steps", 0) > 0 else f"{int(o['epochs'])} ep"
    out = [budget, f"lr {o['lr']:.2g}", o.get("precision", "fp32")]
    if o.get("train_pooler"):
        out.append("pooler")
    return ", ".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "glue"))
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    groups = collections.defaultdict(list)
    for d in a.runs:
        for p in sorted(glob.glob(os.path.join(d, "*", "run.json"))):
            with open(p) as f:
                r = json.load(f)
            if r.get("status") not in ("done", "stopped_early") or "test" not in r.get("result", {}):
                continue
            o = r["options"]
            groups[(o["task"], o["adapter"]["method"])].append(r)
    if not groups:
        print("no finished runs under " + " ".join(a.runs), file=sys.stderr)
        return 1
    order = list(TASKS)
    print("| task | method | seeds | test metric (mean ± sd, %) | majority / mean baseline | wall s (mean) "
          "| train ex/s (mean) | threads | trainable (adapter + head) | settings |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    means = {}
    for (task, method) in sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1])):
        rs = groups[(task, method)]
        names = TASKS.get(task, (None, None, list(rs[0]["result"]["test"])))[2]
        cells, base = [], baseline(a.data, task) or {}
        for n in names:
            xs = [r["result"]["test"][n] for r in rs if r["result"]["test"].get(n) is not None]
            cells.append(f"{n} {fmt(xs)}")
            if xs:
                means[(task, method, n)] = statistics.mean(xs)
        bcell = ", ".join(f"{n} {100 * base[n]:.2f}" for n in names if n in base) or "-"
        wall = statistics.mean(r["result"]["wall_s"] for r in rs)
        exs = statistics.mean(r["result"]["examples_per_s"] for r in rs)
        tp = rs[0]["trainable_parameters"]
        seeds = ",".join(str(int(r["options"]["seed"])) for r in rs)
        sets = " / ".join(sorted({settings(r["options"]) for r in rs}))  # more than one: a mixed group, shown
        print(f"| {task} | {method} | {seeds} | {'; '.join(cells)} | {bcell} | {wall:.0f} | {exs:.1f} "
              f"| {rs[0]['options']['threads']} | {int(tp['adapter'])} + {int(tp['head'])} | {sets} |")
    print()
    print("per seed (seed: first metric):")
    for (task, method) in sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1])):
        rs = sorted(groups[(task, method)], key=lambda r: r["options"]["seed"])
        n = TASKS.get(task, (None, None, [None]))[2][0] or next(iter(rs[0]["result"]["test"]))
        vals = ", ".join(f"{int(r['options']['seed'])}: {100 * r['result']['test'][n]:.2f}" for r in rs
                         if r["result"]["test"].get(n) is not None)
        print(f"  {task} {method} {n}: {vals}")
    print()
    print("worst seed - baseline (points; > 0: every seed beat the baseline):")
    for (task, method) in sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1])):
        rs = groups[(task, method)]
        base = baseline(a.data, task) or {}
        for n in TASKS.get(task, (None, None, []))[2]:
            xs = [r["result"]["test"][n] for r in rs if r["result"]["test"].get(n) is not None]
            if xs and n in base:
                print(f"  {task} {method} {n}: {100 * (min(xs) - base[n]):+.2f}")
    print()
    print("CondLoRA - LoRA (difference of the means, points):")
    for task in order:
        for n in TASKS[task][2]:
            if (task, "condlora", n) in means and (task, "lora", n) in means:
                d = 100 * (means[(task, "condlora", n)] - means[(task, "lora", n)])
                print(f"  {task} {n}: {d:+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
