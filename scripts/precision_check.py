#!/usr/bin/env python3
"""bf16 against fp32 on the same runs (issue 21, goal 2: dev metrics within 0.3 points). For each cell of a finished
grid search (RESULTS/TASK-METHOD/search.json, run in bf16), trains the chosen learning rate on the same seeds with
--precision fp32 and every other option the same, then prints the paired differences. A run already finished in
OUT is reused; an unfinished one is resumed from its checkpoint. The fp32 runs' run.json are copied into
RESULTS/precision/TASK-METHOD/seed-N.run.json (small; no checkpoints).

With --pair NAME --train-options "...", it runs those train options in both precisions on each seed instead
(RESULTS/precision/NAME/{bf16,fp32}-seed-N.run.json): a budget of your choosing, without a search.

usage: scripts/precision_check.py --results results/minilm --cells RTE:condlora,RTE:lora [--seeds 1,2,3]
                                  [--out runs/precision/minilm] [--threads 1] [--bin build/condlora]
       scripts/precision_check.py --results results/minilm --pair SST-2-condlora-1200 --train-options "--model DIR
                                  --task SST-2 --data GLUE --method condlora --max-steps 1200" [--seeds 1,2,3]
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def finished(run_dir):
    try:
        with open(os.path.join(run_dir, "run.json")) as f:
            return json.load(f).get("status") in ("done", "stopped_early")
    except (OSError, ValueError):
        return False


def fp32_options(train_options):
    opts, out, i = list(train_options), [], 0
    while i < len(opts):
        if opts[i] == "--precision" and i + 1 < len(opts):
            i += 2
            continue
        out.append(opts[i])
        i += 1
    return out + ["--precision", "fp32"]


def train(a, options, run_dir, name):
    """runs condlora train into run_dir (reused when finished, resumed when a checkpoint is there); its run.json"""
    if not finished(run_dir):
        if os.path.exists(os.path.join(run_dir, "run.json")):
            cmd = [a.bin, "train", "--resume", run_dir, "--threads", str(a.threads), "--quiet"]
        else:
            cmd = [a.bin, "train", *options, "--threads", str(a.threads), "--quiet", "--out", run_dir]
        os.makedirs(os.path.dirname(run_dir), exist_ok=True)
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        if subprocess.call(cmd, stdout=sys.stderr) != 0:
            sys.exit(f"precision_check: {name}: the run failed ({run_dir})")
    with open(os.path.join(run_dir, "run.json")) as f:
        return json.load(f)


def keep(a, run_dir, name, file_name):
    dest = os.path.join(a.results, "precision", name)
    os.makedirs(dest, exist_ok=True)
    shutil.copyfile(os.path.join(run_dir, "run.json"), os.path.join(dest, file_name))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True, help="a grid's results folder, e.g. results/minilm")
    ap.add_argument("--cells", help="TASK:METHOD,... (each with a finished search.json)")
    ap.add_argument("--pair", metavar="NAME", help="instead of --cells: run --train-options in both precisions")
    ap.add_argument("--train-options", help="with --pair: condlora train's options (no --precision, --seed, --out)")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--out", help="run directories (default runs/precision/<results folder name>)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "condlora"))
    a = ap.parse_args()
    if bool(a.cells) == bool(a.pair) or bool(a.pair) != bool(a.train_options):
        ap.error("give --cells, or --pair NAME with --train-options")
    out = a.out or os.path.join("runs", "precision", os.path.basename(os.path.normpath(a.results)))
    seeds = [int(s) for s in a.seeds.split(",")]
    rows = []
    pts = lambda m, metric: 100 * m[metric] if m and metric in m else None  # noqa: E731 (no test split: None)
    if a.pair:
        options = shlex.split(a.train_options)
        for seed in seeds:
            got = {}
            for prec in ("bf16", "fp32"):
                run_dir = os.path.join(out, a.pair, f"{prec}-seed-{seed}")
                got[prec] = train(a, options + ["--precision", prec, "--seed", str(seed)], run_dir, a.pair)["result"]
                keep(a, run_dir, a.pair, f"{prec}-seed-{seed}.run.json")
            metric = got["fp32"]["main_metric"]
            rows.append((a.pair, seed, pts(got["bf16"].get("best_dev"), metric),
                         pts(got["fp32"].get("best_dev"), metric), pts(got["bf16"].get("test"), metric),
                         pts(got["fp32"].get("test"), metric)))
    for cell in (a.cells.split(",") if a.cells else []):
        task, method = cell.split(":")
        name = f"{task}-{method}"
        path = os.path.join(a.results, name, "search.json")
        try:
            with open(path) as f:
                search = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit(f"precision_check: {path}: {e}")
        chosen, metric = search.get("chosen") or {}, search["metric"]
        if "lr" not in chosen:
            sys.exit(f"precision_check: {path}: the search has not chosen a learning rate yet")
        bf16 = {s["seed"]: s for s in search.get("seeds", []) if s.get("status") in ("done", "stopped_early")}
        for seed in seeds:
            if seed not in bf16:
                print(f"{name} seed {seed}: no finished bf16 run in {path}, skipped", file=sys.stderr)
                continue
            run_dir = os.path.join(out, name, f"seed-{seed}")
            options = fp32_options(search["settings"]["train_options"]) + ["--lr", repr(chosen["lr"]), "--seed",
                                                                            str(seed)]
            res = train(a, options, run_dir, f"{name} seed {seed}")["result"]
            keep(a, run_dir, name, f"seed-{seed}.run.json")
            rows.append((name, seed, pts(bf16[seed].get("dev"), metric), pts(res.get("best_dev"), metric),
                         pts(bf16[seed].get("test"), metric), pts(res.get("test"), metric)))
    fmt = lambda x, sign="": "-" if x is None else f"{x:{sign}.1f}"  # noqa: E731
    diff = lambda a, b: None if a is None or b is None else b - a  # noqa: E731
    print("| cell | seed | dev bf16 | dev fp32 | dev fp32 - bf16 | test bf16 | test fp32 | test fp32 - bf16 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, seed, db, df, tb, tf in rows:
        print(f"| {name} | {seed} | {fmt(db)} | {fmt(df)} | {fmt(diff(db, df), '+')} | {fmt(tb)} | {fmt(tf)} | "
              f"{fmt(diff(tb, tf), '+')} |")
    for name in dict.fromkeys(r[0] for r in rows):
        parts = []
        for split, i in (("dev", 2), ("test", 4)):
            d = [diff(r[i], r[i + 1]) for r in rows if r[0] == name]
            if d and None not in d:
                sd = f" (sd {statistics.stdev(d):.2f})" if len(d) > 1 else ""
                parts.append(f"{split} fp32 - bf16 {statistics.mean(d):+.2f}{sd}")
        n = sum(r[0] == name for r in rows)
        print(f"{name}: mean {', '.join(parts) or 'no metric'}, over {n} seed(s)")


if __name__ == "__main__":
    main()
