#!/usr/bin/env python3
"""Rebuilds the README's tables of issue 17's experiment from the committed run summaries in results/MODEL/.

results/MODEL/TASK-METHOD/ holds what scripts/paper_grid.sh harvested from one `condlora search`: trial-1..5 (the
5-trial learning-rate search on seed 1) and seed-2, seed-3 (the chosen learning rate on more seeds), each as
NAME.run.json + NAME.metrics.jsonl, and search.json. From those files alone this script
  - selects the trial again (the best held-out dev metric, the first on a tie, as `condlora search` does) and checks
    that search.json and the seed runs agree with it;
  - gives the test metric (the official GLUE dev file under the paper protocol) of the chosen learning rate as mean
    ± sample sd (n - 1) over seeds 1-3, beside the paper's Table 2 (RoBERTa-base, 100 epochs) and the majority-class
    baseline (scripts/glue_table.py; it needs the GLUE files, else it is left out);
  - counts the trainable parameters, the wall time and the examples/s of every method;
  - for SaLoRA: the learned rank of every layer and module (result.ranks of run.json, the evaluation gates of the
    best checkpoint), as a table and as an SVG heat map (results/MODEL/salora_ranks.svg), and the training-time
    overhead against LoRA on the same task (examples/s over all of both cells' runs);
  - states, per task, whether CondLoRA is within 1 point of LoRA.
Cells still running are shown with their progress. Standard library only.

usage: scripts/paper_table.py [--results results] [--models mpnet,minilm] [--data GLUE_DIR]
                              [--readme README.md --write | --check]
  without --write/--check: print the Markdown of every model
  --write: replace each model's block in the README (between `<!-- paper_table MODEL begin -->` and `end`)
  --check: exit 1 if the README's blocks differ from what the results give
"""
import argparse
import glob
import json
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from glue_table import baseline  # noqa: E402  (the majority-class baseline, shared with the MiniLM grid)

HERE = os.path.dirname(os.path.abspath(__file__))
ORDER = ["CoLA", "SST-2", "MRPC", "STS-B", "RTE"]
METHODS = ["lora", "condlora", "salora"]
NAMES = {"lora": "LoRA", "condlora": "CondLoRA", "salora": "SaLoRA"}
METRIC = {"acc": "acc", "mcc": "MCC", "pearson": "Pearson"}
# [P1] Table 2 (RoBERTa-base, r = 8 on query and value, 60-100 epochs; GLUE validation as test), METHODS.md 4
PAPER = {"CoLA": (61.2, 61.1), "SST-2": (93.7, 93.8), "MRPC": (86.2, 86.6), "STS-B": (89.3, 90.3),
         "RTE": (74.3, 74.2)}
PAPER_LR = {"CoLA": (4.862585643e-4, 6.02555587379099e-4), "SST-2": (2.53267522217202e-4, 4.1369967560273e-4),
            "MRPC": (8.36641968785768e-5, 1.91170236576257e-4), "STS-B": (1.61048057994754e-3, 1.64898943982061e-4),
            "RTE": (7.70943216980477e-5, 1.61750047409374e-4)}
MODELS = {
    "mpnet": ("all-mpnet-base-v2", "MPNet, 12 layers, hidden 768: roberta-base's shape"),
    "minilm": ("all-MiniLM-L6-v2", "BERT, 6 layers, hidden 384"),
}
TRIALS, SEEDS = 5, 3


def finished(r):
    return r is not None and r.get("status") in ("done", "stopped_early") and "test" in r.get("result", {})


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Cell:
    """One (task, method): its harvested runs, the selection redone from them, the seeds of the chosen lr."""

    def __init__(self, d, task, method):
        self.task, self.method, self.dir = task, method, d
        self.runs = {}
        for p in glob.glob(os.path.join(d, "*.run.json")):
            r = load(p)
            if finished(r):
                self.runs[os.path.basename(p)[: -len(".run.json")]] = r
        self.search = load(os.path.join(d, "search.json"))
        self.trials = [self.runs.get(f"trial-{k}") for k in range(1, TRIALS + 1)]
        self.main = next((r["result"]["main_metric"] for r in self.runs.values()), None)
        self.chosen = None  # index of the chosen trial
        self.problems = []
        if all(self.trials):
            best = -1
            for k, r in enumerate(self.trials):
                v = r["result"]["best_dev"].get(self.main)
                if v is not None and math.isfinite(v) and (best < 0 or v > self.trials[best]["result"]["best_dev"][self.main]):
                    best = k
            self.chosen = best if best >= 0 else None
        self.seed_runs = []
        if self.chosen is not None:
            lr = self.trials[self.chosen]["options"]["lr"]
            self.seed_runs = [self.trials[self.chosen]]
            for s in range(2, SEEDS + 1):
                r = self.runs.get(f"seed-{s}")
                if r is None:
                    continue
                if abs(r["options"]["lr"] - lr) > 1e-6 * lr or int(r["options"]["seed"]) != s:
                    self.problems.append(f"seed-{s} ran lr {r['options']['lr']:.6g} seed {r['options']['seed']}")
                    continue
                self.seed_runs.append(r)
            ch = (self.search or {}).get("chosen")
            if ch and abs(ch["lr"] - lr) > 1e-6 * lr:
                self.problems.append(f"search.json chose lr {ch['lr']:.6g}, the trials' dev metrics give {lr:.6g}")

    @property
    def lr(self):
        return self.trials[self.chosen]["options"]["lr"] if self.chosen is not None else None

    def tests(self, metric=None):
        m = metric or self.main
        return [r["result"]["test"][m] for r in self.seed_runs if r["result"]["test"].get(m) is not None]

    def progress(self):
        t = sum(1 for r in self.trials if r)
        return f"{t}/{TRIALS} trials" if t < TRIALS else f"{len(self.seed_runs)}/{SEEDS} seeds"

    def complete(self):
        return self.chosen is not None and len(self.seed_runs) == SEEDS

    def all_runs(self):
        return list(self.runs.values())


def pm(xs, digits=1):
    if not xs:
        return "-"
    m = 100 * statistics.mean(xs)
    if len(xs) < 2:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {100 * statistics.stdev(xs):.{digits}f}"


def mean100(xs):
    return 100 * statistics.mean(xs) if xs else None


def heat_svg(title, rows, L, r_full):
    """rows: [(label, [rank or None per layer])] -> an SVG heat map (white 0 .. dark blue r_full), numbers inside."""
    cw, ch, left, top = 34, 26, 170, 44
    w, h = left + cw * L + 20, top + ch * len(rows) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">{title}</text>']
    for l in range(L):
        out.append(f'<text x="{left + cw * l + cw / 2}" y="{top - 6}" text-anchor="middle">{l}</text>')
    for i, (label, vals) in enumerate(rows):
        y = top + ch * i
        out.append(f'<text x="{left - 8}" y="{y + ch / 2 + 4}" text-anchor="end">{label}</text>')
        for l, v in enumerate(vals):
            x = left + cw * l
            if v is None:
                out.append(f'<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="#eeeeee" stroke="white"/>')
                continue
            t = max(0.0, min(1.0, v / r_full))
            rgb = tuple(int(round(a + (b - a) * t)) for a, b in zip((255, 255, 255), (8, 48, 107)))
            out.append(f'<rect x="{x}" y="{y}" width="{cw}" height="{ch}" fill="rgb{rgb}" stroke="white"/>')
            col = "white" if t > 0.55 else "black"
            out.append(f'<text x="{x + cw / 2}" y="{y + ch / 2 + 4}" text-anchor="middle" fill="{col}">{v:.3g}</text>')
    out.append(f'<text x="{left}" y="{h - 12}">layer; cell = learned rank (of {r_full}), mean over seeds</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def model_block(res_dir, key, data):
    name, shape = MODELS.get(key, (key, ""))
    cells = {(t, m): Cell(os.path.join(res_dir, f"{t}-{m}"), t, m) for t in ORDER for m in METHODS}
    out = []
    say = out.append
    any_runs = [c for c in cells.values() if c.runs]
    if not any_runs:
        say(f"No run of the grid on {name} has finished yet.")
        return "\n".join(out) + "\n", None
    ex = next(iter(any_runs[0].runs.values()))
    o = ex["options"]
    say(f"Generated by `scripts/paper_table.py` from `results/{key}/` ({name}: {shape}). Protocol: `--preset paper`, "
        f"r = alpha = {o['adapter']['r']} on {o['adapter']['target_modules']}, the head trained, "
        f"{o['precision']} frozen weights, batch {o['batch_size']}; a 5-trial search (log-uniform lr in [5e-5, 5e-3], "
        "search seed 1, selection on the held-out 10% of train), then the chosen lr on seeds 1-3; test = the official "
        "GLUE dev file; mean ± sd (n - 1) over the seeds, in points. Budget: "
        + ", ".join(sorted({budget_of(c) for c in any_runs})) + " (the paper: 100, SST-2 60).")
    say("")
    say("| task | metric | LoRA | lr | CondLoRA | lr | CondLoRA - LoRA | paper LoRA / CondLoRA | majority |")
    say("|---|---|---|---|---|---|---|---|---|")
    readings = []
    for t in ORDER:
        lo, co = cells[(t, "lora")], cells[(t, "condlora")]
        if not (lo.runs or co.runs):
            continue
        main = lo.main or co.main
        base = baseline(data, t) if data else None
        bcell = f"{100 * base[main]:.1f}" if base and main in base and t != "STS-B" else "-"
        row = [t, METRIC.get(main, main)]
        for c in (lo, co):
            row.append(pm(c.tests()) + ("" if c.complete() else f" ({c.progress()})") if c.seed_runs else c.progress())
            row.append(f"{c.lr:.2e}" if c.lr else "-")
        d = None
        if lo.complete() and co.complete():
            d = mean100(co.tests()) - mean100(lo.tests())
            sd = math.hypot(statistics.stdev(co.tests()), statistics.stdev(lo.tests())) * 100 / math.sqrt(SEEDS)
            row.append(f"{d:+.1f}")
            if abs(d) <= 1:
                readings.append(f"{t}: CondLoRA within 1 point of LoRA ({d:+.1f}; the difference's standard error "
                                f"{sd:.1f}).")
            else:
                readings.append(f"{t}: CondLoRA {'trails' if d < 0 else 'leads'} LoRA by {abs(d):.1f} points "
                                f"(standard error {sd:.1f}); the paper: {PAPER[t][1] - PAPER[t][0]:+.1f}.")
        else:
            row.append("-")
        row.append(f"{PAPER[t][0]} / {PAPER[t][1]}")
        row.append(bcell)
        say("| " + " | ".join(row) + " |")
        for c in (lo, co):
            if base and main in base and c.complete() and t != "STS-B":
                worst = min(c.tests()) * 100 - base[main] * 100
                readings.append(f"{t} {NAMES[c.method]}: every seed {'above' if worst > 0 else 'NOT above'} the "
                                f"majority class (worst seed {worst:+.1f}).")
    say("")
    # trainable parameters, cost
    say("| method | trainable: adapter + head (+ gates) | examples/s per core (mean over runs) | runs finished |")
    say("|---|---|---|---|")
    for m in METHODS:
        rs = [r for t in ORDER for r in cells[(t, m)].all_runs()]
        if not rs:
            continue
        tp = rs[0]["trainable_parameters"]
        gate = f" + {int(tp['gate'])}" if tp.get("gate") else ""
        eps = ", ".join(f"{t} {statistics.mean(r['result']['examples_per_s'] for r in cells[(t, m)].all_runs()):.1f}"
                        for t in ORDER if cells[(t, m)].runs)
        say(f"| {NAMES[m]} | {int(tp['adapter']):,} + {int(tp['head']):,}{gate} | {eps} | {len(rs)} |")
    say("")
    if readings:
        say("Reading (generated from the numbers above):")
        for x in readings:
            say(f"- {x}")
        say("")
    for (t, m), c in cells.items():
        for p in c.problems:
            say(f"- **inconsistent** {t}-{m}: {p}")
    # the searches: every trial's lr and dev metric
    say("<details><summary>The searches: every trial's learning rate and best held-out dev metric</summary>")
    say("")
    say("| cell | trial 1 | trial 2 | trial 3 | trial 4 | trial 5 | chosen | paper's lr |")
    say("|---|---|---|---|---|---|---|---|")
    for t in ORDER:
        for m in METHODS:
            c = cells[(t, m)]
            if not c.runs:
                continue
            tr = []
            for k, r in enumerate(c.trials):
                if r is None:
                    tr.append("…")
                    continue
                v = 100 * r["result"]["best_dev"][c.main]
                s = f"{r['options']['lr']:.2e}: {v:.1f}"
                tr.append(f"**{s}**" if k == c.chosen else s)
            plr = PAPER_LR[t][0 if m == "lora" else 1] if m in ("lora", "condlora") else None
            say(f"| {t} {NAMES[m]} | " + " | ".join(tr) + f" | {('trial %d' % (c.chosen + 1)) if c.chosen is not None else '-'} "
                f"| {f'{plr:.2e}' if plr else '-'} |")
    say("")
    say("</details>")
    say("")
    long_section(res_dir, cells, say)
    torch_section(res_dir, cells, say)
    svg = salora_section(cells, key, say)
    return "\n".join(out) + "\n", svg


def long_section(res_dir, cells, say):
    """TASK-METHOD-long: one long run (seed 1) at the search's lr, with early stopping: when it peaked."""
    rows = []
    for t in ORDER:
        for m in METHODS:
            r = load(os.path.join(res_dir, f"{t}-{m}-long", "run.run.json"))
            if not finished(r):
                continue
            res, o = r["result"], r["options"]
            main = res["main_metric"]
            nb = math.ceil(r["data"]["train"] / o["batch_size"])
            ep_best = res["best_step"] / nb
            c, lo = cells[(t, m)], cells[(t, "lora")]
            short = c.trials[c.chosen]["result"]["test"].get(main) if c.chosen is not None else None
            rows.append(f"| {t} | {NAMES[m]} | {o['lr']:.2e} | {res['epochs_run']} of {int(o['epochs'])}"
                        f"{' (stopped early)' if res['stopped_early'] else ''} | {ep_best:.1f} "
                        f"| {100 * res['test'][main]:.1f} | {f'{100 * short:.1f}' if short is not None else '-'} "
                        f"| {pm(lo.tests()) if lo.seed_runs else '-'} | {res['wall_s'] / 3600:.2f} h |")
    if not rows:
        return
    say("Long runs (seed 1 at the searched lr, the same protocol with more epochs and early stopping):")
    say("")
    say("| task | method | lr | epochs run | best dev at epoch | test | test, the search's budget (seed 1) "
        "| LoRA, the search's budget (seeds 1-3) | wall |")
    say("|---|---|---|---|---|---|---|---|---|")
    for x in rows:
        say(x)
    say("")


def torch_section(res_dir, cells, say):
    """TASK-torch-METHOD: bench/torch_glue.py (PyTorch) at the same lr, budget and rows as condlora's seeds."""
    rows = []
    for t in ORDER:
        for m in ("lora", "condlora"):
            d = os.path.join(res_dir, f"{t}-torch-{m}")
            runs = [load(os.path.join(d, f"seed-{k}.json")) for k in range(1, SEEDS + 1)]
            runs = [r for r in runs if r]
            if not runs:
                continue
            main = runs[0]["result"]["main_metric"]
            xs = [r["result"]["test"][main] for r in runs]
            c = cells[(t, m)]
            ys = c.tests(main)
            dd = f"{mean100(ys) - mean100(xs):+.1f}" if ys and len(xs) == SEEDS else "-"
            eps = statistics.mean(r["result"]["examples_per_s"] for r in runs)
            impl = "PEFT LoRA" if m == "lora" else "released-code CondLoRA"
            rows.append(f"| {t} | {NAMES[m]} | {pm(ys) if ys else '-'} | {pm(xs)}"
                        f"{'' if len(xs) == SEEDS else f' ({len(xs)}/{SEEDS} seeds)'} ({impl}, torch "
                        f"{runs[0]['torch']}, {runs[0]['precision']}) | {dd} | {runs[0]['lr']:.2e} | {eps:.1f} |")
    if not rows:
        return
    say("The same runs in an independent implementation (bench/torch_glue.py: PyTorch + transformers on condlora's "
        "rows, the searched lr, the same budget and seeds; initialisation and batch order from torch's generator):")
    say("")
    say("| task | method | condlora | PyTorch | condlora - PyTorch | lr | PyTorch examples/s |")
    say("|---|---|---|---|---|---|---|")
    for x in rows:
        say(x)
    say("")


def budget_of(c):
    o = next(iter(c.runs.values()))["options"]
    if o.get("max_steps", 0) > 0:
        return f"{c.task} {int(o['max_steps'])} steps"
    n = int(o["epochs"])
    return f"{c.task} {n} epoch{'s' if n != 1 else ''}"


def salora_section(cells, key, say):
    sal = [cells[(t, "salora")] for t in ORDER if cells[(t, "salora")].runs]
    if not sal:
        return None
    b = next(iter(sal[0].runs.values()))["options"]["adapter"]["salora_budget"]
    say(f"SaLoRA (the same protocol and search; the rank budget: {b:g} of the total rank kept at the end, "
        f"`--salora-budget {b:g}`):")
    say("")
    say("| task | SaLoRA | LoRA | SaLoRA - LoRA | ranks kept (mean over seeds) | time per example vs LoRA |")
    say("|---|---|---|---|---|---|")
    rows, L, r_full = [], 0, 8
    for c in sal:
        lo = cells[(c.task, "lora")]
        d = f"{mean100(c.tests()) - mean100(lo.tests()):+.1f}" if c.complete() and lo.complete() else "-"
        kept = [r["result"]["ranks"] for r in c.seed_runs if "ranks" in r["result"]]
        kcell = (f"{statistics.mean(k['kept'] for k in kept):.1f} of {int(kept[0]['full'])}" if kept else "-")
        ov = "-"
        if lo.runs:
            e_s = statistics.mean(r["result"]["examples_per_s"] for r in c.all_runs())
            e_l = statistics.mean(r["result"]["examples_per_s"] for r in lo.all_runs())
            ov = f"{e_l / e_s:.2f}x"
        sc = pm(c.tests()) + ("" if c.complete() else f" ({c.progress()})") if c.seed_runs else c.progress()
        say(f"| {c.task} | {sc} | {pm(lo.tests()) if lo.seed_runs else '-'} | {d} | {kcell} | {ov} |")
        if kept:
            for mod in ("query", "value"):
                per = [k.get(mod) for k in kept if k.get(mod)]
                if not per:
                    continue
                L = len(per[0])
                vals = [None if any(p[l] is None for p in per) else statistics.mean(p[l] for p in per) for l in range(L)]
                rows.append((f"{c.task} {mod}", vals))
            r_full = int(c.seed_runs[0]["options"]["adapter"]["r"])
    say("")
    if not rows:
        return None
    say(f"Learned rank per layer (mean over seeds; {r_full} = all components kept); heat map: "
        f"[`results/{key}/salora_ranks.svg`](results/{key}/salora_ranks.svg).")
    say("")
    say("| task, module | " + " | ".join(str(l) for l in range(L)) + " |")
    say("|---|" + "---|" * L)
    for label, vals in rows:
        say(f"| {label} | " + " | ".join("-" if v is None else f"{v:.3g}" for v in vals) + " |")
    say("")
    return heat_svg(f"SaLoRA learned ranks, {MODELS.get(key, (key,))[0]}", rows, L, r_full)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(HERE, "..", "results"))
    ap.add_argument("--models", default="mpnet,minilm")
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "glue"))
    ap.add_argument("--readme", default=os.path.join(HERE, "..", "README.md"))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true")
    g.add_argument("--check", action="store_true")
    a = ap.parse_args()
    data = a.data if os.path.isdir(a.data) else None
    if data is None:
        print(f"paper_table.py: no GLUE data at {a.data}: the majority baselines are left out", file=sys.stderr)
    blocks = {}
    for key in a.models.split(","):
        d = os.path.join(a.results, key)
        if not os.path.isdir(d):
            print(f"paper_table.py: no results folder {d}", file=sys.stderr)
            return 2
        md, svg = model_block(d, key, data)
        blocks[key] = (md, svg, os.path.join(d, "salora_ranks.svg"))
    if not (a.write or a.check):
        for key, (md, _, _) in blocks.items():
            print(f"## {key}\n\n{md}")
        return 0
    with open(a.readme, encoding="utf-8") as f:
        text = f.read()
    new, stale = text, []
    for key, (md, svg, svg_path) in blocks.items():
        b, e = f"<!-- paper_table {key} begin -->\n", f"<!-- paper_table {key} end -->"
        i, j = new.find(b), new.find(e)
        if i < 0 or j < i:
            print(f"paper_table.py: {a.readme} has no block `{b.strip()}` ... `{e}`", file=sys.stderr)
            return 2
        new = new[: i + len(b)] + md + new[j:]
        if svg is not None:
            old = open(svg_path).read() if os.path.exists(svg_path) else None
            if old != svg:
                stale.append(svg_path)
                if a.write:
                    with open(svg_path + ".tmp", "w") as f:
                        f.write(svg)
                    os.replace(svg_path + ".tmp", svg_path)
    if new != text:
        stale.append(a.readme)
        if a.write:
            with open(a.readme + ".tmp", "w", encoding="utf-8") as f:
                f.write(new)
            os.replace(a.readme + ".tmp", a.readme)
    if a.check and stale:
        print("paper_table.py: out of date (run scripts/paper_table.py --write): " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("updated: " + ", ".join(os.path.relpath(x) for x in stale)) if a.write and stale else "up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
