#!/usr/bin/env bash
# Issue 17's experiment: the paper's learning-rate search (`condlora search`: 5 trials log-uniform in [5e-5, 5e-3]
# on seed 1, selection on the held-out 10% dev split, then the chosen lr on seeds 1-3) for each (task, method) cell,
# under the paper protocol (--preset paper: max length 512, r = alpha = 8 on query,value, head trained, warm-up 10%,
# batch 16, evaluation every epoch or 1500 steps) with a budget of epochs that fits 2 cores (budget() below) and
# bf16 frozen weights.
#
# Resumable at three levels, because a machine may be replaced between working days:
#   - a cell's search resumes its unfinished run from the newest checkpoint (the same machine);
#   - every finished run is harvested (run.json + metrics.jsonl, no weights) into RESULTS/CELL/, which is committed;
#   - on a fresh machine the harvested runs are restored into OUT/CELL/ first, so the search skips them.
# Cells are taken from the ordered list by --workers W loops (flock per cell: two invocations never run one cell
# twice), each trial with --threads 1, at the given nice level so that interactive work on the machine comes first.
# Three kinds of cell, TASK:KIND:
#   TASK:METHOD          the search (7 runs: trial-1..5, seed-2, seed-3)
#   TASK:METHOD-long     one long run at the search's chosen lr, seed 1: --long-epochs (30) with early stopping after
#                        --long-patience (10) evaluations without improvement: how many epochs the method needs
#   TASK:torch-METHOD    the independent implementation (bench/torch_glue.py: PEFT LoRA, the released code's CondLoRA
#                        in PyTorch) at the search's chosen lr and budget on condlora's rows, seeds 1-3, PyTorch's
#                        own bf16 (autocast) when --precision is bf16; harvested as seed-S.json
# A long or torch cell waits (the worker passes it by) until its search has chosen a learning rate.
#
# usage: scripts/paper_grid.sh [--out runs/paper/mpnet] [--results results/mpnet] [--model DIR] [--data GLUE_DIR]
#            [--cells "RTE:lora RTE:condlora ..."] [--workers 2] [--nice 10] [--extra "TRAIN OPTIONS"]
#            [--long-epochs 30] [--long-patience 10] [--until TIME]
#            [--harvest] [--restore] [--list] [--stop]
#   --harvest / --restore  only copy finished runs OUT -> RESULTS / RESULTS -> OUT, then exit
#   --list                 print each cell's state (finished runs of 7: 5 trials, seeds 2 and 3)
#   --stop                 stop a running grid: every trial checkpoints, every finished run is harvested
#   --until TIME           start no run that would end after TIME (`date -d` syntax, e.g. 16:50; a bare time of day
#                          already past means tomorrow's): a machine that is
#                          replaced loses its runs in progress, so the last minutes are better left idle; a worker
#                          whose next run would not fit stops
# `touch OUT/stop` makes the workers stop after their current cell.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ARGS=("$@") # for the re-exec as a process-group leader below
OUT=runs/paper/mpnet
RESULTS=$here/results/mpnet
DATA=${CONDLORA_DATA:-$here/../shared/data/glue}
MODEL=${CONDLORA_CACHE:-$HOME/.cache/condlora}/models/all-mpnet-base-v2
CELLS="RTE:lora RTE:condlora MRPC:lora MRPC:condlora STS-B:lora STS-B:condlora CoLA:lora CoLA:condlora
       RTE:salora MRPC:salora STS-B:salora SST-2:lora SST-2:condlora
       RTE:condlora-long MRPC:condlora-long STS-B:condlora-long CoLA:condlora-long
       RTE:torch-lora RTE:torch-condlora MRPC:torch-lora MRPC:torch-condlora"
LONG_EPOCHS=30
LONG_PATIENCE=10
DEADLINE=""
WORKERS=2
NICE=10
MODE=run
PRECISION=bf16
EXTRA="" # more train options for every cell (after the budget)
while [ $# -gt 0 ]; do
    case "$1" in
    --out) OUT=$2; shift ;;
    --results) RESULTS=$2; shift ;;
    --model) MODEL=$2; shift ;;
    --data) DATA=$2; shift ;;
    --cells) CELLS=$2; shift ;;
    --workers) WORKERS=$2; shift ;;
    --nice) NICE=$2; shift ;;
    --precision) PRECISION=$2; shift ;;
    --extra) EXTRA=$2; shift ;;
    --long-epochs) LONG_EPOCHS=$2; shift ;;
    --long-patience) LONG_PATIENCE=$2; shift ;;
    --until) DEADLINE=$(date -d "$2" +%s) || { echo "paper_grid.sh: --until: '$2' is not a time" >&2; exit 2; }
        # a bare time of day already past today means tomorrow's (01:50 said at 23:00); a date given stays as it is
        if [ "$DEADLINE" -le "$(date +%s)" ] && [[ $2 =~ ^[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?$ ]]; then
            DEADLINE=$(date -d "tomorrow $2" +%s)
        fi
        shift ;;
    --harvest) MODE=harvest ;;
    --restore) MODE=restore ;;
    --list) MODE=list ;;
    --stop) MODE=stop ;;
    -h|--help) sed -n "2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}" "$0"; exit 0 ;;
    *) echo "paper_grid.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

budget() { # the epochs of one task (the same for every method); the paper's are 100 (SST-2 60)
    case "$1" in
    SST-2) echo "--epochs 2" ;;
    *) echo "--epochs 10" ;;
    esac
}

finished() { [ -f "$1" ] && grep -Eq '"status":[[:space:]]*"(done|stopped_early)"' "$1"; }

put() { cp "$1" "$2.tmp" && mv "$2.tmp" "$2"; } # a copy that is whole or absent, never half-written

harvest_cell() { # OUT/CELL -> RESULTS/CELL: finished runs' run.json and metrics.jsonl, the search summary
    local cell=$1 src=$OUT/$1 dst=$RESULTS/$1 d name
    [ -d "$src" ] || return 0
    mkdir -p "$dst"
    for d in "$src"/trial-* "$src"/seed-* "$src"/run; do
        [ -d "$d" ] || continue
        name=$(basename "$d")
        finished "$d/run.json" || continue
        cmp -s "$d/run.json" "$dst/$name.run.json" 2>/dev/null && continue
        put "$d/metrics.jsonl" "$dst/$name.metrics.jsonl"
        put "$d/run.json" "$dst/$name.run.json" # last: a run.json in RESULTS means both files are whole
        echo "harvested $cell/$name"
    done
    for f in search.json search.md "$src"/seed-?.json; do
        f=$(basename "$f")
        [ -f "$src/$f" ] && ! cmp -s "$src/$f" "$dst/$f" && put "$src/$f" "$dst/$f" && case $f in seed-*) echo "harvested $cell/$f" ;; esac
    done
    return 0
}

restore_cell() { # RESULTS/CELL -> OUT/CELL: a finished run the search will skip
    local cell=$1 src=$RESULTS/$1 dst=$OUT/$1 f name
    [ -d "$src" ] || return 0
    for f in "$src"/*.run.json; do
        [ -f "$f" ] || continue
        name=$(basename "$f" .run.json)
        finished "$dst/$name/run.json" && continue
        rm -rf "${dst:?}/$name"
        mkdir -p "$dst/$name"
        cp "$f" "$dst/$name/run.json"
        [ -f "$src/$name.metrics.jsonl" ] && cp "$src/$name.metrics.jsonl" "$dst/$name/metrics.jsonl"
        echo "restored $cell/$name"
    done
    [ -f "$src/search.json" ] && [ ! -f "$dst/search.json" ] && mkdir -p "$dst" && cp "$src/search.json" "$dst/search.json"
    return 0
}

kind_of() { case ${1##*:} in *-long) echo long ;; torch-*) echo torch ;; *) echo search ;; esac; }
base_method() { local m=${1##*:}; m=${m%-long}; echo "${m#torch-}"; }

chosen_lr() { # TASK METHOD [wall]: the learning rate the harvested search chose (empty until its 5 trials are in),
               # or with "wall" that trial's wall time in seconds
    python3 - "$here/scripts" "$RESULTS/$1-$2" "$1" "$2" "${3:-}" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import paper_table
c = paper_table.Cell(sys.argv[2], sys.argv[3], sys.argv[4])
if sys.argv[5] == "wall":
    print(int(c.trials[c.chosen]["result"]["wall_s"]) if c.lr else "")
else:
    print(repr(c.lr) if c.lr else "")
PY
}

fits() { # SECONDS: 0 when a run of that length ends before the deadline (always without --until)
    [ -z "$DEADLINE" ] || [ $(( $(date +%s) + $1 )) -le "$DEADLINE" ]
}

cell_done() { # CELL-NAME KIND
    case $2 in
    search) [ -f "$RESULTS/$1/search.json" ] && grep -Eq '"seeds_done":[[:space:]]*3' "$RESULTS/$1/search.json" ;;
    long) finished "$RESULTS/$1/run.run.json" ;;
    torch) [ -f "$RESULTS/$1/seed-1.json" ] && [ -f "$RESULTS/$1/seed-2.json" ] && [ -f "$RESULTS/$1/seed-3.json" ] ;;
    esac
}

cell_cmd() { # the search command of one cell
    local task=${1%%:*} method=${1##*:}
    # shellcheck disable=SC2046
    echo "$BIN" search --out "$OUT/$task-$method" --trials 5 --search-seed 1 --seeds 1,2,3 --threads 1 \
        --method "$method" --preset paper --model "$MODEL" --task "$task" --data "$DATA" \
        --precision "$PRECISION" --log-every 50 $(budget "$task") $EXTRA ${DEADLINE:+--deadline $DEADLINE}
}

cell_names() { for c in $CELLS; do echo "${c%%:*}-${c##*:}"; done; }

case "$MODE" in
stop)
    pid=$(cat "$OUT/grid.pid" 2>/dev/null || true)
    # a pid file left by a killed grid may name another process now
    if [ -z "$pid" ] || ! ps -o cmd= -p "$pid" | grep -q paper_grid.sh; then
        echo "paper_grid.sh: no grid running on $OUT" >&2; exit 1
    fi
    kill -TERM -- "-$(cat "$OUT/grid.pid")" && echo "stopping the grid on $OUT (its trials checkpoint first)"
    exit 0 ;;
harvest) for c in $(cell_names); do harvest_cell "$c"; done; exit 0 ;;
restore) for c in $(cell_names); do restore_cell "$c"; done; exit 0 ;;
list)
    [ -z "${DEADLINE:-}" ] || echo "--until: runs end by $(date -u -d "@$DEADLINE" +%FT%TZ) ($DEADLINE)"
    for c in $CELLS; do
        k=$(kind_of "$c") name=${c%%:*}-${c##*:}
        n=$(ls "$RESULTS/$name"/*.run.json "$RESULTS/$name"/seed-?.json 2>/dev/null | wc -l || true)
        r=$(ls -d "$OUT/$name"/trial-* "$OUT/$name"/seed-* "$OUT/$name"/run 2>/dev/null | wc -l || true)
        printf '%-22s %-6s harvested %d/%d, %d here\n' "$name" "$k" "$n" "$(case $k in search) echo 7 ;; long) echo 1 ;; *) echo 3 ;; esac)" "$r"
    done
    exit 0 ;;
esac

[ -f "$MODEL/config.json" ] || { echo "paper_grid.sh: no model at $MODEL (scripts/fetch_model.sh all-mpnet-base-v2)" >&2; exit 1; }
[ -d "$DATA" ] || { echo "paper_grid.sh: no GLUE data at $DATA" >&2; exit 1; }
mkdir -p "$OUT/bin" "$RESULTS"
# one grid per OUT; it runs as its own process group, so that --stop reaches every search and trial
exec 8>"$OUT/bin/.grid"
flock -n 8 || { echo "paper_grid.sh: a grid is already running on $OUT (paper_grid.sh --stop --out $OUT)" >&2; exit 1; }
if [ "$(ps -o pgid= $$ | tr -d ' ')" != "$$" ]; then exec 8>&-; exec setsid "$0" "${ARGS[@]}"; fi
echo $$ >"$OUT/grid.pid"
make -s -C "$here"
# a frozen copy of the binary (the search runs its trials with its own executable): rebuilding while the grid runs
# changes nothing under it; the library is linked in statically
cmp -s "$here/build/condlora" "$OUT/bin/condlora" || put "$here/build/condlora" "$OUT/bin/condlora"
BIN=$OUT/bin/condlora
for c in $(cell_names); do restore_cell "$c"; done

torch_extra() { # the options of --extra that bench/torch_glue.py shares with train (size limits, the budget)
    local a=($EXTRA) i out=()
    for ((i = 0; i < ${#a[@]}; i++)); do
        case ${a[i]} in --max-length|--max-train|--max-eval|--epochs) out+=("${a[i]}" "${a[i+1]}"); i=$((i + 1)) ;; esac
    done
    echo "${out[@]}"
}

worker() { # takes the next cell nobody holds and is ready, runs it to the end, harvests it
    local w=$1 c name rc ran
    trap - TERM INT
    while true; do # passes over the list until one runs nothing and nobody else runs anything
    ran=0
    for c in $CELLS; do
        name=${c%%:*}-${c##*:}
        local kind task=${c%%:*} m lr
        kind=$(kind_of "$c")
        cell_done "$name" "$kind" && continue
        m=$(base_method "$c")
        lr=""
        if [ "$kind" != search ]; then
            lr=$(chosen_lr "$task" "$m")
            [ -n "$lr" ] || continue # its search has not chosen yet: later
            if [ -n "$DEADLINE" ]; then # a trial's wall time as the measure: 3x for a long run of 30 epochs
                local wall est
                wall=$(chosen_lr "$task" "$m" wall)
                est=$wall
                [ "$kind" = long ] && est=$(( wall * LONG_EPOCHS / $(budget "$task" | awk '{print $2}') ))
                fits "$est" || { echo "[worker $w] $name: would not end by --until ($(( est / 60 )) min)"; continue; }
            fi
        fi
        exec 9>"$OUT/$name.lock"
        if ! flock -n 9; then exec 9>&-; continue; fi
        rc=0
        mkdir -p "$OUT/$name"
        case $kind in
        search)
            echo "[worker $w] $(date -u +%FT%TZ) $name: $(cell_cmd "$c")"
            # shellcheck disable=SC2046
            nice -n "$NICE" $(cell_cmd "$c") >"$OUT/$name.out" 2>>"$OUT/$name.err" || rc=$?
            if [ $rc = 75 ]; then # --until: the next run of this cell would not fit, nor would others here
                echo "[worker $w] $(date -u +%FT%TZ) $name: stopped for --until"
                harvest_cell "$name"
                exec 9>&-
                return 0
            fi ;;
        long)
            local d=$OUT/$name/run
            echo "[worker $w] $(date -u +%FT%TZ) $name: lr $lr, $LONG_EPOCHS epochs, patience $LONG_PATIENCE"
            if [ -f "$d/run.json" ] && ls -d "$d"/checkpoint-* >/dev/null 2>&1; then
                nice -n "$NICE" "$BIN" train --resume "$d" --threads 1 >"$OUT/$name.out" 2>>"$OUT/$name.err" || rc=$?
            else
                # shellcheck disable=SC2046
                nice -n "$NICE" "$BIN" train --method "$m" --preset paper --model "$MODEL" --task "$task" --data "$DATA" \
                    --precision "$PRECISION" --log-every 50 $EXTRA --lr "$lr" --seed 1 --epochs "$LONG_EPOCHS" \
                    --patience "$LONG_PATIENCE" --threads 1 --save-every 200 --save-limit 1 --overwrite --out "$d" \
                    >"$OUT/$name.out" 2>>"$OUT/$name.err" || rc=$?
            fi ;;
        torch)
            local s ep
            ep=$(budget "$task" | awk '{print $2}')
            local te
            te=$(torch_extra | grep -o -- "--epochs [0-9]*" | tail -1 | awk '{print $2}' || true)
            [ -n "$te" ] && ep=$te
            for s in 1 2 3; do
                [ -f "$RESULTS/$name/seed-$s.json" ] && continue
                echo "[worker $w] $(date -u +%FT%TZ) $name: seed $s, lr $lr, $ep epochs (PyTorch)"
                # shellcheck disable=SC2046
                nice -n "$NICE" /usr/bin/python3 "$here/bench/torch_glue.py" --model "$MODEL" --task "$task" --data "$DATA" \
                    --method "$m" --lr "$lr" --epochs "$ep" --seed "$s" --threads 1 --precision "$PRECISION" \
                    --condlora "$BIN" $(torch_extra) --out "$OUT/$name/seed-$s.json" >>"$OUT/$name.out" \
                    2>>"$OUT/$name.err" || { rc=$?; break; }
                harvest_cell "$name"
            done ;;
        esac
        echo "[worker $w] $(date -u +%FT%TZ) $name: $([ $rc = 0 ] && echo done || echo "stopped (exit $rc), see $OUT/$name.err")"
        harvest_cell "$name"
        exec 9>&-
        ran=1
        [ -f "$OUT/stop" ] && return 0
    done
    [ $ran = 1 ] && continue
    busy=0 # another worker holds a cell: a long or torch cell may become ready when it finishes
    for l in "$OUT"/*.lock; do
        [ -e "$l" ] || continue
        if ! flock -n "$l" true; then busy=1; break; fi
    done
    [ $busy = 1 ] || return 0
    sleep 20
    done
}

STOP=0
trap 'STOP=1' TERM INT
pids=()
for ((w = 1; w <= WORKERS; w++)); do worker "$w" & pids+=($!); sleep 1; done
alive() { local p; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
# harvest as runs finish, so that a stop loses at most the runs in progress
while alive && [ $STOP = 0 ]; do
    sleep 60 & wait $! || true
    for c in $(cell_names); do harvest_cell "$c"; done
done
# stopped: the searches checkpoint their trials and write their summaries; wait for them, then harvest
while pgrep -g $$ -f "condlora (search|train)|torch_glue" >/dev/null; do sleep 1; done
for c in $(cell_names); do harvest_cell "$c"; done
rm -f "$OUT/grid.pid"
