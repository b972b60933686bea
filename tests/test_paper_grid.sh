#!/usr/bin/env bash
# scripts/paper_grid.sh on the tiny model of tests/data/api with RTE cut to 40 examples: every cell's 7 runs
# (5 trials, seeds 2 and 3) are harvested as run.json + metrics.jsonl with no weights; on a "fresh machine" (the run
# directories gone) the harvested runs are restored, so that a search re-runs only what was never harvested; and a
# finished cell is not started again. Needs ../shared/data/glue (skipped without it).
# Last line: "test_paper_grid: N passed, N failed, N skipped".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GLUE=${CONDLORA_DATA:-$ROOT/../shared/data/glue}
if [ ! -f "$GLUE/RTE/train.tsv" ]; then
    echo "test_paper_grid: skipped (no GLUE data at $GLUE)"
    echo "test_paper_grid: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 12; }
G=(--out "$tmp/out" --results "$tmp/res" --model "$ROOT/tests/data/api/model" --data "$GLUE" --workers 2
   --cells "RTE:lora RTE:condlora" --extra "--max-length 64 --max-train 40 --max-eval 20 --epochs 1")
timeout 300 "$ROOT/scripts/paper_grid.sh" "${G[@]}" > "$tmp/log1" 2>&1
for c in RTE-lora RTE-condlora; do
    n=$(ls "$tmp/res/$c"/*.run.json 2>/dev/null | wc -l)
    if [ "$n" = 7 ] && [ -f "$tmp/res/$c/search.json" ]; then ok; else ko "$c: 7 runs and the summary harvested ($n)" "$(cat "$tmp/log1")"; fi
done
if [ -z "$(find "$tmp/res" -name '*.safetensors' -o -name 'checkpoint-*')" ]; then ok; else ko "no weights harvested"; fi
if grep -Eq '"seeds_done":[[:space:]]*3' "$tmp/res/RTE-lora/search.json"; then ok; else ko "RTE-lora: 3 seeds done"; fi
# a fresh machine: the run directories are gone, one harvested run and one summary were never harvested
rm -rf "$tmp/out" "$tmp/res/RTE-lora/search.json" "$tmp/res/RTE-lora/seed-3".*
timeout 300 "$ROOT/scripts/paper_grid.sh" "${G[@]}" > "$tmp/log2" 2>&1
fin=$(grep -c "already finished" "$tmp/out/RTE-lora.err" 2>/dev/null)
st=$(grep -c " starts " "$tmp/out/RTE-lora.err" 2>/dev/null)
if [ "$fin" = 7 ] && [ "$st" = 1 ] && grep -q "seed-3 starts" "$tmp/out/RTE-lora.err"; then ok
else ko "restored runs are skipped, only seed-3 runs again (5 trials and seeds 1, 2 finished: $fin, $st started)" "$(cat "$tmp/log2")"; fi
if [ -f "$tmp/res/RTE-lora/seed-3.run.json" ]; then ok; else ko "seed-3 harvested again"; fi
if [ ! -e "$tmp/out/RTE-condlora.out" ]; then ok; else ko "a finished cell is not searched again"; fi
# long and PyTorch cells: they wait for their search's lr (here: harvested above), then run once and are harvested
L=(--out "$tmp/out" --results "$tmp/res" --model "$ROOT/tests/data/api/model" --data "$GLUE" --workers 1 --long-epochs 3
   --long-patience 1 --extra "--max-length 64 --max-train 40 --max-eval 20 --epochs 1")
if /usr/bin/python3 -c "import torch, transformers, peft" 2> /dev/null; then cells="RTE:condlora-long RTE:torch-condlora"
else cells="RTE:condlora-long"; echo "test_paper_grid: the PyTorch cell is left out (no torch, transformers, peft)"; fi
timeout 300 "$ROOT/scripts/paper_grid.sh" "${L[@]}" --cells "$cells" > "$tmp/log6" 2>&1
lr=$(python3 -c "import json; print(json.load(open('$tmp/res/RTE-condlora/search.json'))['chosen']['lr'])")
if python3 - "$tmp/res/RTE-condlora-long/run.run.json" "$lr" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] in ("done", "stopped_early") and abs(r["options"]["lr"] - float(sys.argv[2])) <= 1e-6 * float(sys.argv[2])
assert r["options"]["epochs"] == 3 and r["options"]["patience"] == 1, r["options"]
PY
then ok; else ko "the long cell: one run at the search's lr, 3 epochs, patience 1" "$(cat "$tmp/log6")"; fi
if [[ $cells == *torch* ]]; then
    n=$(ls "$tmp/res/RTE-torch-condlora"/seed-?.json 2> /dev/null | wc -l)
    if [ "$n" = 3 ] && python3 "$ROOT/scripts/paper_table.py" --results "$tmp" --models res 2> /dev/null | grep -q "^| RTE | CondLoRA |.*released-code CondLoRA"; then ok
    else ko "the PyTorch cell: 3 seeds harvested and tabled ($n)" "$(cat "$tmp/log6")"; fi
fi
# --until: with the time already past, one run starts (nothing measured yet) and the worker stops after it
timeout 120 "$ROOT/scripts/paper_grid.sh" --out "$tmp/u_out" --results "$tmp/u_res" --model "$ROOT/tests/data/api/model" \
    --data "$GLUE" --workers 1 --cells "RTE:lora RTE:condlora" --until "now - 1 second" \
    --extra "--max-length 64 --max-train 40 --max-eval 20 --epochs 1" > "$tmp/log7" 2>&1
n=$(ls "$tmp/u_res"/*/*.run.json 2> /dev/null | wc -l)
if [ "$n" = 1 ] && grep -q "stopped for --until" "$tmp/log7" && [ ! -d "$tmp/u_res/RTE-condlora" ]; then ok
else ko "--until: one run, then the worker stops ($n runs)" "$(cat "$tmp/log7")"; fi
# --until with a bare time of day already past today: tomorrow's (a grid started at 23:00 --until 01:50 runs)
past=$(date -d "1 hour ago" +%H:%M)
dl=$("$ROOT/scripts/paper_grid.sh" --out "$tmp/u_out" --results "$tmp/u_res" --list --until "$past" --cells "RTE:lora" \
    | sed -n 's/^--until: runs end by .* (\([0-9]*\))$/\1/p')
if [ -n "$dl" ] && [ "$dl" -gt "$(date +%s)" ] && [ "$dl" -le $(( $(date +%s) + 86400 )) ]; then ok
else ko "--until $past (already past today) means the next $past" "deadline '$dl', now $(date +%s)"; fi
# a cell whose summary was harvested before any of its runs finished: restoring it makes its directory
mkdir -p "$tmp/res2/RTE-lora" && cp "$tmp/res/RTE-lora/search.json" "$tmp/res2/RTE-lora/search.json"
if "$ROOT/scripts/paper_grid.sh" --restore --out "$tmp/out2" --results "$tmp/res2" --cells RTE:lora > "$tmp/log3" 2>&1 \
    && cmp -s "$tmp/res2/RTE-lora/search.json" "$tmp/out2/RTE-lora/search.json"; then ok
else ko "a summary without finished runs is restored" "$(cat "$tmp/log3")"; fi
# scripts/paper_table.py on the harvest: its own selection and means agree with the C search's search.json, and
# --write then --check round-trips a README block (and --check sees a stale one)
mkdir -p "$tmp/tab" && cp -r "$tmp/res" "$tmp/tab/g"
if python3 - "$ROOT/scripts" "$tmp/tab/g" > "$tmp/log4" 2>&1 <<'PY'
import json, statistics, sys
sys.path.insert(0, sys.argv[1])
import paper_table as pt
for m in ("lora", "condlora"):
    c = pt.Cell(f"{sys.argv[2]}/RTE-{m}", "RTE", m)
    s = json.load(open(f"{sys.argv[2]}/RTE-{m}/search.json"))["chosen"]
    assert c.complete() and not c.problems, (m, c.progress(), c.problems)
    assert abs(c.lr - s["lr"]) <= 1e-6 * s["lr"], (c.lr, s["lr"])  # run.json keeps 10 digits
    assert abs(statistics.mean(c.tests()) - s["test_mean"]) < 1e-9, (c.tests(), s)
print("agree")
PY
then ok; else ko "paper_table.py agrees with search.json" "$(cat "$tmp/log4")"; fi
printf 'x\n<!-- paper_table g begin -->\nold\n<!-- paper_table g end -->\ny\n' > "$tmp/tab/README.md"
T=(python3 "$ROOT/scripts/paper_table.py" --results "$tmp/tab" --models g --readme "$tmp/tab/README.md")
if ! "${T[@]}" --check > /dev/null 2>&1 && "${T[@]}" --write > "$tmp/log5" 2>&1 && "${T[@]}" --check >> "$tmp/log5" 2>&1 \
    && grep -q "| RTE | acc |" "$tmp/tab/README.md" && head -1 "$tmp/tab/README.md" | grep -qx x; then ok
else ko "paper_table.py --write / --check" "$(cat "$tmp/log5" "$tmp/tab/README.md")"; fi
echo "test_paper_grid: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
