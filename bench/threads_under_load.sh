#!/usr/bin/env bash
# Training throughput with 2 threads, idle and beside two busy processes (`yes`, one per core of a 2-core machine),
# with libgomp's own default (idle threads spin 300,000 times before sleeping: GOMP_SPINCOUNT=300000), shorter spins
# (GOMP_SPINCOUNT=10000, condlora's default before 2026-12-07; 1000) and condlora's default OMP_WAIT_POLICY=passive
# (set by the condlora command unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is given). all-MiniLM-L6-v2's shape (random weights), LoRA, batch 16 x 64.
# Each figure: the median of REPS bench runs of STEPS steps. Prints a Markdown table.
# usage: bench/threads_under_load.sh [REPS (3)] [STEPS (6)]
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
STEPS=${2:-6}
BIN=${CL_BIN:-build/condlora}
CFG=$(mktemp)
trap 'rm -f "$CFG"; kill $(jobs -p) 2>/dev/null || true' EXIT
cat > "$CFG" <<'JSON'
{"model_type":"bert","vocab_size":30522,"hidden_size":384,"num_hidden_layers":6,"num_attention_heads":12,
 "intermediate_size":1536,"max_position_embeddings":512,"type_vocab_size":2,"hidden_act":"gelu"}
JSON
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
one() { # one ENV...: median tokens/s
    for _ in $(seq "$REPS"); do
        env "$@" "$BIN" bench --config "$CFG" --method lora --batch 16 --seq 64 --steps "$STEPS" --threads 2 |
            sed -E 's/.*"tokens_per_s":([0-9.]+).*/\1/'
    done | median
}
declare -A R
settings=("libgomp default (GOMP_SPINCOUNT=300000)|GOMP_SPINCOUNT=300000"
          "GOMP_SPINCOUNT=10000|GOMP_SPINCOUNT=10000"
          "GOMP_SPINCOUNT=1000|GOMP_SPINCOUNT=1000"
          "OMP_WAIT_POLICY=passive|OMP_WAIT_POLICY=passive")
for load in idle busy; do
    if [ $load = busy ]; then yes > /dev/null & yes > /dev/null & sleep 1; fi
    for s in "${settings[@]}"; do R["$load|${s%%|*}"]=$(one "${s#*|}"); done
    if [ $load = busy ]; then kill $(jobs -p) 2>/dev/null; wait 2>/dev/null || true; fi
done
echo "| setting | idle, tokens/s | beside 2 busy processes, tokens/s |"
echo "|---|---|---|"
for s in "${settings[@]}"; do n=${s%%|*}; echo "| $n | ${R["idle|$n"]} | ${R["busy|$n"]} |"; done
