#!/usr/bin/env bash
# scripts/precision_check.py on a tiny bf16 search (tests/data/api): it trains the search's chosen learning rate on
# the search's seeds in fp32 with every other option the same, copies the fp32 run.json beside the search, prints
# the paired table, and reuses finished runs when run again. Skipped where the CPU lacks AVX512_BF16.
# Last line: "test_precision_check: N passed, N failed, N skipped".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CL_BIN:-$ROOT/build/condlora}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
A=$ROOT/tests/data/api
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 12; }
end() { echo "test_precision_check: $pass passed, $fail failed, $skip skipped"; [ $fail = 0 ]; exit; }
if ! "$BIN" bench --config "$A/model/config.json" --mode infer --steps 1 --warmup 0 --batch 1 --seq 8 \
    --precision bf16 > /dev/null 2>&1; then
    echo "SKIP precision_check: no AVX512_BF16 here"; skip=1; end
fi
"$BIN" search --out "$tmp/res/RTE-lora" --trials 2 --seeds 1,2 --model "$A/model" --train "$A/train.tsv" \
    --method lora --max-length 32 --batch-size 8 --threads 1 --epochs 1 --precision bf16 --quiet > "$tmp/s.log" 2>&1 \
    || { ko "the bf16 search" "$(cat "$tmp/s.log")"; end; }
/usr/bin/python3 "$ROOT/scripts/precision_check.py" --results "$tmp/res" --cells RTE:lora --seeds 1,2 \
    --out "$tmp/runs" --bin "$BIN" > "$tmp/p.out" 2> "$tmp/p.err" || ko "precision_check exits 0" "$(cat "$tmp/p.err")"
if /usr/bin/python3 - "$tmp" <<'PY'
import json, sys
t = sys.argv[1]
s = json.load(open(f"{t}/res/RTE-lora/search.json"))
for seed in (1, 2):
    r = json.load(open(f"{t}/res/precision/RTE-lora/seed-{seed}.run.json"))
    o = r["options"]
    assert o["precision"] == "fp32" and o["seed"] == seed, o
    assert abs(o["lr"] - s["chosen"]["lr"]) <= 1e-7 * s["chosen"]["lr"], (o["lr"], s["chosen"]["lr"])
    assert o["epochs"] == 1 and o["max_length"] == 32 and o["batch_size"] == 8 and o["adapter"]["method"] == "lora"
PY
then ok; else ko "the fp32 runs: the chosen lr, each seed, every other option the same"; fi
if grep -q "^| RTE-lora | 2 |" "$tmp/p.out" && grep -q "^RTE-lora: mean dev fp32 - bf16 .* over 2 seed(s)" "$tmp/p.out"; then ok
else ko "the paired table" "$(cat "$tmp/p.out")"; fi
/usr/bin/python3 "$ROOT/scripts/precision_check.py" --results "$tmp/res" --cells RTE:lora --seeds 1,2 \
    --out "$tmp/runs" --bin "$BIN" > "$tmp/p2.out" 2> "$tmp/p2.err"
if ! grep -q "^+ " "$tmp/p2.err" && cmp -s "$tmp/p.out" "$tmp/p2.out"; then ok
else ko "run again: finished runs reused" "$(cat "$tmp/p2.err")"; fi
/usr/bin/python3 "$ROOT/scripts/precision_check.py" --results "$tmp/res" --cells RTE:condlora --out "$tmp/runs" \
    --bin "$BIN" > /dev/null 2> "$tmp/e.err"
if [ $? -ne 0 ] && grep -q "RTE-condlora/search.json" "$tmp/e.err"; then ok
else ko "a cell without a search: named, non-zero exit" "$(cat "$tmp/e.err")"; fi
# --pair: given train options, run in both precisions on each seed
/usr/bin/python3 "$ROOT/scripts/precision_check.py" --results "$tmp/res" --pair tiny --seeds 3 --out "$tmp/runs" \
    --bin "$BIN" --train-options "--model $A/model --train $A/train.tsv --method lora --max-length 32 --batch-size 8
    --epochs 1 --lr 1e-3" > "$tmp/q.out" 2> "$tmp/q.err" || ko "--pair exits 0" "$(cat "$tmp/q.err")"
if /usr/bin/python3 - "$tmp" <<'PY'
import json, sys
t = sys.argv[1]
o = {p: json.load(open(f"{t}/res/precision/tiny/{p}-seed-3.run.json"))["options"] for p in ("bf16", "fp32")}
assert o["bf16"]["precision"] == "bf16" and o["fp32"]["precision"] == "fp32", o
for k in ("seed", "lr", "epochs", "max_length", "batch_size"):
    assert o["bf16"][k] == o["fp32"][k], k
assert o["fp32"]["seed"] == 3 and o["fp32"]["lr"] == 1e-3
PY
then ok; else ko "--pair: a bf16 and an fp32 run, the same options and seed" "$(cat "$tmp/q.err")"; fi
if grep -q "^| tiny | 3 |" "$tmp/q.out"; then ok; else ko "--pair: the table" "$(cat "$tmp/q.out")"; fi
/usr/bin/python3 "$ROOT/scripts/precision_check.py" --results "$tmp/res" > /dev/null 2> "$tmp/u.err"
if [ $? = 2 ] && grep -q -- "--cells, or --pair" "$tmp/u.err"; then ok; else ko "neither --cells nor --pair: usage error" "$(cat "$tmp/u.err")"; fi
end
