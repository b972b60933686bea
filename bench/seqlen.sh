#!/usr/bin/env bash
# Tokens/s against sequence length (issue 9): a training step (LoRA r = 8 on query, value + trainable head) and
# inference, condlora vs PyTorch + PEFT (bench/torch_encoder.py, OPENBLAS_CORETYPE=SkylakeX so both use OpenBLAS's
# AVX-512 kernels), batch 16, sequence 32 to 512, run here one after another. Writes OUT.tsv and OUT.svg (default
# bench/out/seqlen). Env: CONFIG (roberta-base or a config.json), THREADS (2), STEPS (3), SEQS, OUT.
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
printf "seq\tcondlora train\tpytorch train\tcondlora infer\tpytorch infer\n" > "$OUT.tsv"
for T in ${SEQS:-32 64 128 256 512}; do
    row="$T"
    for mode in train infer; do
        c=$("$BIN" bench --config "$CONFIG" --mode $mode --method lora --batch 16 --seq "$T" --steps "$N" \
            --threads "$TH" | field tokens_per_s)
        p=$(OPENBLAS_CORETYPE=SkylakeX $PY bench/torch_encoder.py --config "$CONFIG" --mode $mode --method lora \
            --batch 16 --seq "$T" --steps "$N" --threads "$TH" 2>/dev/null | field tokens_per_s)
        row="$row	${c:--}	${p:--}"
    done
    # columns: seq, condlora train, pytorch train, condlora infer, pytorch infer
    echo "$row" | awk -F'\t' '{print $1"\t"$2"\t"$3"\t"$4"\t"$5}' >> "$OUT.tsv"
    echo "$row" >&2
done
$PY bench/plot_lines.py "$OUT.tsv" "$OUT.svg" --logx --title "tokens/s vs sequence length ($CONFIG, batch 16, $TH threads)" \
    --xlabel "sequence length" --ylabel "tokens/s"
column -t -s "$(printf '\t')" "$OUT.tsv"
echo "plot: $OUT.svg"
