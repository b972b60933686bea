#!/usr/bin/env bash
# Data parallelism on this machine (issue 18): training throughput of one process with 1 and 2 threads against
# `mpirun -np 2` with 1 thread per rank, LoRA and CondLoRA at roberta-base's shape (all-mpnet-base-v2 on RTE, batch
# 16, max length 128, bf16 frozen weights, the same batches in every configuration), STEPS steps each (run.json's
# training-steps-only rate, so the first step's set-up counts in all alike). Then a model of N nodes from these
# numbers: the step's compute against a ring all-reduce of the gradient buffer (run.json data_parallel:
# 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency) at 10 and 100 Gbit/s, for a fixed global batch of 16 (each
# node takes 16 / N rows: strong scaling) and for 16 rows per node (weak scaling). Prints Markdown; writes the model's
# table and plot to OUT (default bench/out/mpi_scaling.{tsv,svg}).
# Run it on an idle machine: every process here competes for the same 2 cores.
# usage: bench/mpi_scaling.sh [STEPS (8)] [OUT_PREFIX]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-8}
OUTP=${2:-bench/out/mpi_scaling}
BIN=${CL_BIN:-build/condlora}
MODEL=${CONDLORA_MODEL:-${CONDLORA_CACHE:-$HOME/.cache/condlora}/models/all-mpnet-base-v2}
GLUE=${CONDLORA_DATA:-../shared/data/glue}
command -v mpirun > /dev/null || { echo "mpi_scaling.sh: no mpirun (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 1; }
"$BIN" --version | grep -q "^MPI: not" && { echo "mpi_scaling.sh: $BIN was built without MPI" >&2; exit 1; }
[ -f "$MODEL/config.json" ] || { echo "mpi_scaling.sh: no model at $MODEL (scripts/fetch_model.sh all-mpnet-base-v2)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$OUTP")"
A=(train --model "$MODEL" --task RTE --data "$GLUE" --preset paper --max-length 128 --max-steps "$STEPS" --max-eval 16
   --precision bf16 --save-every 0 --quiet)
declare -A TPS
for m in lora condlora; do
    "$BIN" "${A[@]}" --method $m --threads 1 --out "$tmp/$m-1x1" > /dev/null
    "$BIN" "${A[@]}" --method $m --threads 2 --out "$tmp/$m-1x2" > /dev/null
    mpirun --allow-run-as-root --oversubscribe -np 2 "$BIN" "${A[@]}" --method $m --threads 1 --out "$tmp/$m-2x1" > /dev/null
done
python3 - "$tmp" "$OUTP" "$STEPS" <<'PY'
import json, math, subprocess, sys
tmp, outp, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
R = {}
for m in ("lora", "condlora"):
    for c in ("1x1", "1x2", "2x1"):
        R[m, c] = json.load(open(f"{tmp}/{m}-{c}/run.json"))
print(f"Measured: all-mpnet-base-v2, RTE, batch 16, max length 128, bf16, {steps} steps; training steps only.\n")
print("| method | 1 process x 1 thread | 1 process x 2 threads | 2 ranks x 1 thread | 2 ranks / 2 threads "
      "| scaling efficiency (2 ranks / (2 x 1 thread)) | all-reduced per step | all-reduce + wait, mean |")
print("|---|---|---|---|---|---|---|---|")
model = {}
for m in ("lora", "condlora"):
    t = {c: R[m, c]["result"]["tokens_per_s"] for c in ("1x1", "1x2", "2x1")}
    dp = R[m, "2x1"]["data_parallel"]
    tp = R[m, "2x1"]["trainable_parameters"]
    eff = t["2x1"] / (2 * t["1x1"])
    print(f"| {m} | {t['1x1']:.0f} tok/s | {t['1x2']:.0f} | {t['2x1']:.0f} | {t['2x1'] / t['1x2']:.2f}x | "
          f"{100 * eff:.0f}% | {dp['allreduce_bytes_per_step'] / 1e6:.2f} MB ({int(tp['adapter']):,} adapter + "
          f"{int(tp['head']):,} head floats) | {1e3 * dp['allreduce_s_mean']:.1f} ms |")
    # the model's inputs: one node = this machine with 2 threads, its step time at batch 16
    ex = R[m, "1x2"]["result"]["examples_per_s"]
    model[m] = (16.0 / ex, dp["allreduce_bytes_per_step"], int(tp["adapter"]) * 4)
print()
nets = {"10 Gbit/s": (10e9 / 8, 30e-6), "100 Gbit/s": (100e9 / 8, 5e-6)}
Ns = [1, 2, 4, 8, 16, 32, 64]
def ring(nbytes, n, bw, lat):
    return 0.0 if n == 1 else 2 * (n - 1) / n * nbytes / bw + 2 * (n - 1) * lat
cols, rows = [], {n: [] for n in Ns}
print("Model (one node = this machine, 2 threads; ring all-reduce; latency 30 us at 10 Gbit/s, 5 us at 100 Gbit/s):")
print("speed-up over one node with a global batch of 16 (16 / N rows per node, up to N = 16; the compute of a node is\n"
      "taken as linear in its rows, which small shards do not quite reach), and with 16 rows per node.\n")
print("| method, network | all-reduce | " + " | ".join(f"N={n}" for n in Ns) + " |")
print("|---|---|" + "---|" * len(Ns))
for m in ("lora", "condlora"):
    T, nb, nad = model[m]
    for net, (bw, lat) in nets.items():
        for what, b in (("adapter + head", nb), ("adapter only", nad)):
            strong = [T / (T / n + ring(b, n, bw, lat)) if n <= 16 else None for n in Ns]  # >= 1 row per node
            weak = [n * T / (T + ring(b, n, bw, lat)) for n in Ns]
            name = f"{m} {net} ({what})"
            cols.append(name)
            for n, s in zip(Ns, strong):
                rows[n].append(s)
            print(f"| {name}, batch 16 | {b / 1e6:.2f} MB | " + " | ".join("-" if s is None else f"{s:.1f}x"
                                                                          for s in strong) + " |")
            print(f"| {name}, 16 per node | | " + " | ".join(f"{s:.1f}x" for s in weak) + " |")
with open(outp + ".tsv", "w") as f:
    f.write("N\t" + "\t".join(cols) + "\n")
    for n in Ns:
        f.write(f"{n}\t" + "\t".join("-" if s is None else f"{s:.4f}" for s in rows[n]) + "\n")
subprocess.run([sys.executable, "bench/plot_lines.py", outp + ".tsv", outp + ".svg", "--logx", "--title",
                "Modelled speed-up, global batch 16 (strong scaling)", "--xlabel", "nodes", "--ylabel",
                "speed-up over one node"], check=True)
print(f"\nstep time of one node: LoRA {model['lora'][0]:.2f} s, CondLoRA {model['condlora'][0]:.2f} s; "
      f"plot: {outp}.svg")
PY
