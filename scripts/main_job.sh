#!/usr/bin/env bash
# The main job: build condlora (make installs the build dependencies), fetch the model (scripts/fetch_model.sh) and
# fine-tune CondLoRA on a GLUE task; --compare-lora also trains LoRA with the same settings and prints both metrics
# side by side. The default model, all-mpnet-base-v2 (roberta-base's shape: the paper's scale, CondLoRA's 24,576
# adapter parameters), takes about 20 minutes per method in fp32 on 2 cores; --model all-MiniLM-L6-v2 a few.
#
# usage: scripts/main_job.sh [--model NAME|DIR] [--compare-lora] [--data DIR] [--task NAME] [--steps N] [--out DIR]
#                            [--threads K] [--overwrite]
#   --model NAME  all-mpnet-base-v2 (default) or all-MiniLM-L6-v2, fetched into the cache; or a model directory
#   --data DIR    GLUE root holding TASK/ (default ../shared/data/glue beside the checkout)
#   --task NAME   default SST-2 (short sentences: many examples per second on a CPU)
#   --steps N     optimizer steps (default 1200 = 19,200 examples at batch 16)
#   --out DIR     where the runs go (default runs/); an existing run there is replaced only with --overwrite
# Extra settings: lr 5e-4, batch 16, max length 128, warm-up 0.1, r = alpha = 8 on query,value, paper protocol
# (dev = 10% of train for model selection, the official dev file as test), dev evaluated every 400 steps on its
# first 2,000 examples.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
compare=0
overwrite=()
DATA=${CONDLORA_DATA:-$here/../shared/data/glue}
TASK=SST-2
STEPS=1200
OUT=runs
THREADS=$(nproc 2>/dev/null || echo 2)
MODEL_NAME=all-mpnet-base-v2
value() { # value OPTION ARGS...: the option's argument, or a usage error
    if [ $# -lt 2 ] || [ -z "$2" ] || [ "${2#--}" != "$2" ]; then
        echo "main_job.sh: option $1 needs a value" >&2
        exit 2
    fi
}
while [ $# -gt 0 ]; do
    case "$1" in
    --compare-lora) compare=1 ;;
    --overwrite) overwrite=(--overwrite) ;;
    --model) value "$@"; MODEL_NAME=$2; shift ;;
    --data) value "$@"; DATA=$2; shift ;;
    --task) value "$@"; TASK=$2; shift ;;
    --steps) value "$@"; STEPS=$2; shift ;;
    --out) value "$@"; OUT=$2; shift ;;
    --threads) value "$@"; THREADS=$2; shift ;;
    -h|--help) sed -n 2,16p "$0"; exit 0 ;;
    *) echo "main_job.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ ! -d "$DATA" ] || { [ ! -f "$DATA/$TASK/train.tsv" ] && [ ! -f "$DATA/train.tsv" ]; }; then
    cat >&2 <<EOF
main_job.sh: no GLUE data for $TASK under $DATA.
  The GLUE TSV files are expected as DIR/TASK/{train,dev,test}.tsv (e.g. ../shared/data/glue/SST-2/train.tsv).
  Download them from GLUE's official locations (needs the internet) with
    scripts/download_glue.py glue
  then run: scripts/main_job.sh --data glue
EOF
    exit 1
fi

make -s
case "$MODEL_NAME" in
all-MiniLM-L6-v2|all-mpnet-base-v2)
    scripts/fetch_model.sh "$MODEL_NAME"
    MODEL=${CONDLORA_CACHE:-$HOME/.cache/condlora}/models/$MODEL_NAME ;;
*)
    [ -f "$MODEL_NAME/config.json" ] || { echo "main_job.sh: --model $MODEL_NAME: not all-MiniLM-L6-v2, all-mpnet-base-v2 or a model directory (config.json)" >&2; exit 2; }
    MODEL=$MODEL_NAME ;;
esac

methods=condlora
[ $compare = 1 ] && methods="condlora lora"
for m in $methods; do
    if [ -f "$OUT/$TASK-$m/run.json" ] && [ ${#overwrite[@]} = 0 ]; then
        echo "main_job.sh: $OUT/$TASK-$m already holds a run; add --overwrite to replace it, or --out DIR" >&2
        exit 2
    fi
done
mkdir -p "$OUT"
for m in $methods; do
    echo "== training $m on $TASK with $(basename "$MODEL") ($STEPS steps, $THREADS threads)"
    build/condlora train --model "$MODEL" --task "$TASK" --data "$DATA" --method "$m" --out "$OUT/$TASK-$m" \
        --max-steps "$STEPS" --eval-every 400 --max-eval 2000 --lr 5e-4 --batch-size 16 --max-length 128 \
        --threads "$THREADS" --seed 1 --log-every 50 "${overwrite[@]}" | tee "$OUT/$TASK-$m.summary"
done

echo
printf '%-10s %-34s %s\n' method "dev (best checkpoint) / test" run
for m in $methods; do
    # the summary table's lines: "dev N STEP name value ..." and "test ..."
    d=$(awk '$1 == "dev" {for (i = 4; i <= NF; i++) printf "%s ", $i}' "$OUT/$TASK-$m.summary")
    t=$(awk '$1 == "test" {for (i = 4; i <= NF; i++) printf "%s ", $i}' "$OUT/$TASK-$m.summary")
    printf '%-10s dev %-14s test %-14s %s\n' "$m" "$d" "$t" "$OUT/$TASK-$m"
done
