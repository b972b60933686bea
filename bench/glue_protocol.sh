#!/usr/bin/env bash
# Issue 9's GLUE-protocol speed comparison: training examples/s of CondLoRA under `--preset paper` (max length 512,
# each batch padded to its longest member, batches drawn from length buckets) against the same fine-tuning through
# PyTorch + PEFT (bench/peft_glue.py, LoRA r = 8 on query,value: the adapter arithmetic is negligible next to the
# frozen encoder, so this is the reference setup's cost) with every input padded to 512 as the paper's reference
# code does, and with dynamic padding. Same model, data, batch size and thread count, run here one after another.
# Only training steps are timed (no evaluation). Env: TASKS ("SST-2 RTE"), STEPS (40), THREADS (2), MODEL, DATA,
# PRECISION (fp32; bf16: condlora --precision bf16 against PyTorch's torch.autocast bf16).
set -u
cd "$(dirname "$0")/.."
BIN=${CL_BIN:-build/condlora}
PY=/usr/bin/python3
STEPS=${STEPS:-40}
PREC=${PRECISION:-fp32}
TH=${THREADS:-2}
MODEL=${MODEL:-${CONDLORA_CACHE:-$HOME/.cache/condlora}/models/all-MiniLM-L6-v2}
DATA=${DATA:-../shared/data/glue}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
field() { sed -nE "s/.*\"$1\": ?([0-9.]+).*/\1/p" | head -n 1; }
$PY -c "import torch, transformers, peft" 2>/dev/null || { echo "glue_protocol: PyTorch/PEFT unavailable at $PY" >&2; exit 1; }
printf "%-6s %-4s %-6s %14s %14s %8s %14s %8s\n" task thr steps condlora peft_pad512 ratio peft_dynamic ratio
for task in ${TASKS:-SST-2 RTE}; do
    "$BIN" train --model "$MODEL" --task "$task" --data "$DATA" --method condlora --preset paper \
        --max-steps "$STEPS" --max-eval 16 --threads "$TH" --precision "$PREC" --quiet --out "$OUT/$task" \
        > /dev/null || exit 1
    cl=$(tr -d ' \t\n' < "$OUT/$task/run.json" | field examples_per_s | awk '{printf "%.1f", $1}')
    p512=$(OPENBLAS_CORETYPE=SkylakeX $PY bench/peft_glue.py --model "$MODEL" --task "$task" --data "$DATA" \
        --steps "$STEPS" --max-length 512 --pad max --speed-only --threads "$TH" --precision "$PREC" 2>/dev/null \
        | field train_examples_per_s)
    pdyn=$(OPENBLAS_CORETYPE=SkylakeX $PY bench/peft_glue.py --model "$MODEL" --task "$task" --data "$DATA" \
        --steps "$STEPS" --max-length 512 --pad longest --speed-only --threads "$TH" --precision "$PREC" 2>/dev/null \
        | field train_examples_per_s)
    r1=$(awk -v a="$cl" -v b="$p512" 'BEGIN{if (b > 0) printf "%.1fx", a/b; else print "-"}')
    r2=$(awk -v a="$cl" -v b="$pdyn" 'BEGIN{if (b > 0) printf "%.1fx", a/b; else print "-"}')
    printf "%-6s %-4s %-6s %14s %14s %8s %14s %8s\n" "$task" "$TH" "$STEPS" "$cl" "${p512:--}" "$r1" "${pdyn:--}" "$r2"
done
echo "(training examples/s, $PREC; ratios are condlora / PyTorch + PEFT; PyTorch with OPENBLAS_CORETYPE=SkylakeX)"
