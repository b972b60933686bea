#!/usr/bin/env bash
# Tokens/s against sequence length (issues 9, 21): a training step (LoRA r = 8 on query, value + trainable head) and
# inference, condlora fp32 and bf16 vs PyTorch + PEFT fp32 (bench/torch_encoder.py, OPENBLAS_CORETYPE=SkylakeX so
# both use OpenBLAS's AVX-512 kernels) and PyTorch's own bf16 (torch.autocast, oneDNN), batch 16, sequence 32 to 512,
# run here one after another ('-' where a run fails, e.g. bf16 on a CPU without AVX512_BF16). Writes
# OUT-train.tsv/.svg and OUT-infer.tsv/.svg (default bench/out/seqlen). Env: CONFIG (roberta-base or a config.json),
# THREADS (2), STEPS (3), SEQS, OUT.
set -u
cd "$(dirname "$0")/.."
BIN=${CL_BIN:-build/condlora}
PY=/usr/bin/python3
CONFIG=${CONFIG:-roberta-base}
TH=${THREADS:-2}
N=${STEPS:-3}
OUT=${OUT:-bench/out/seqlen}
mkdir -p "$(dirname "$OUT")"
field() { sed -nE "s/.*\"$1\": ?([0-9.]+).*/\1/p" | head -n 1; }
for mode in train infer; do
    printf "seq\tcondlora fp32\tcondlora bf16\tpytorch fp32\tpytorch bf16\n" > "$OUT-$mode.tsv"
done
for T in ${SEQS:-32 64 128 256 512}; do
    for mode in train infer; do
        row="$T"
        for prec in fp32 bf16; do
            c=$("$BIN" bench --config "$CONFIG" --mode $mode --method lora --batch 16 --seq "$T" --steps "$N" \
                --threads "$TH" --precision $prec 2>/dev/null | field tokens_per_s)
            row="$row	${c:--}"
        done
        for prec in fp32 bf16; do
            p=$(OPENBLAS_CORETYPE=SkylakeX $PY bench/torch_encoder.py --config "$CONFIG" --mode $mode --method lora \
                --batch 16 --seq "$T" --steps "$N" --threads "$TH" --precision $prec 2>/dev/null | field tokens_per_s)
            row="$row	${p:--}"
        done
        echo "$row" >> "$OUT-$mode.tsv"
        echo "$mode $row" >&2
    done
done
for mode in train infer; do
    $PY bench/plot_lines.py "$OUT-$mode.tsv" "$OUT-$mode.svg" --logx \
        --title "$mode tokens/s vs sequence length ($CONFIG, LoRA, batch 16, $TH threads)" \
        --xlabel "sequence length" --ylabel "tokens/s"
    echo "== $mode"
    column -t -s "$(printf '\t')" "$OUT-$mode.tsv"
    echo "plot: $OUT-$mode.svg"
done
