#!/usr/bin/env bash
# condlora search on the tiny model of tests/data/api: the learning rates are a deterministic log-uniform draw from the
# search seed; bad bounds, a zero trial count, an unknown task or method and options the search owns are refused
# (exit 2, named); selection uses the dev metric only (flipping every test label changes no choice and no dev
# metric); and a search killed with SIGKILL continues without re-running finished trials, the unfinished one from its
# checkpoint. Last line: "test_search: N passed, N failed, N skipped".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CL_BIN:-$ROOT/build/condlora}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
A=$ROOT/tests/data/api
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 12; }
TRAIN=(--model "$A/model" --train "$A/train.tsv" --method lora --max-length 32 --batch-size 8 --threads 1)

# 1. the draw
d1=$("$BIN" search --dry-run --trials 200 --search-seed 7 "${TRAIN[@]}")
d2=$("$BIN" search --dry-run --trials 200 --search-seed 7 "${TRAIN[@]}")
d3=$("$BIN" search --dry-run --trials 200 --search-seed 8 "${TRAIN[@]}")
if [ -n "$d1" ] && [ "$d1" = "$d2" ] && [ "$d1" != "$d3" ]; then ok; else ko "same seed, same learning rates"; fi
# inside [5e-5, 5e-3], and log-uniform: about half below the geometric mean 5e-4 (a uniform draw would put 9% there)
if printf '%s\n' "$d1" | awk '{lr = $4; n++; if (lr < 5e-5 || lr > 5e-3) bad++; if (lr < 5e-4) lo++}
    END {exit !(n == 200 && !bad && lo > 70 && lo < 130)}'; then ok
else ko "200 draws in [5e-5, 5e-3], log-uniform (half below 5e-4)" "$(printf '%s\n' "$d1" | head -3)"; fi

# 2. refused, with a usage error naming the problem
refuse() { # refuse WHAT NEEDLE ARGS...
    local what=$1 needle=$2; shift 2
    "$BIN" search --out "$tmp/never" "$@" > /dev/null 2> "$tmp/err"
    local rc=$?
    if [ $rc -eq 2 ] && grep -q -- "$needle" "$tmp/err" && [ ! -e "$tmp/never/trial-1" ]; then ok
    else ko "refused: $what (exit $rc)" "$(cat "$tmp/err")"; fi
}
refuse "lr-min >= lr-max" "not below" --lr-min 1e-3 --lr-max 1e-4 "${TRAIN[@]}"
refuse "lr-min = lr-max" "not below" --lr-min 1e-3 --lr-max 1e-3 "${TRAIN[@]}"
refuse "lr-min 0" "--lr-min" --lr-min 0 "${TRAIN[@]}"
refuse "negative lr-max" "--lr-max" --lr-max -1 "${TRAIN[@]}"
refuse "zero trials" "--trials" --trials 0 "${TRAIN[@]}"
refuse "an unknown task" "--task" --model "$A/model" --task NOPE --data "$tmp"
refuse "an unknown method" "--method" "${TRAIN[@]}" --method nope
refuse "--lr, which the search draws" "--lr" "${TRAIN[@]}" --lr 1e-3
refuse "an option train does not have" "--bogus" "${TRAIN[@]}" --bogus 1
refuse "bad --seeds" "--seeds" --seeds 1,x "${TRAIN[@]}"

# 3. selection on dev only: the same search with every test label flipped chooses the same, with the same dev metrics
awk -F'\t' 'NR == 1 {print; next} {print $1 "\t" (1 - $2)}' "$A/dev.tsv" > "$tmp/flipped.tsv"
S=(--trials 3 --seeds 1,2 --epochs 2 "${TRAIN[@]}")
"$BIN" search --out "$tmp/s_true" "${S[@]}" --test "$A/dev.tsv" > "$tmp/o1" 2> "$tmp/e1"; r1=$?
"$BIN" search --out "$tmp/s_flip" "${S[@]}" --test "$tmp/flipped.tsv" > "$tmp/o2" 2> "$tmp/e2"; r2=$?
if [ $r1 -eq 0 ] && [ $r2 -eq 0 ]; then ok; else ko "two searches ($r1, $r2)" "$(cat "$tmp/e1" "$tmp/e2")"; fi
sel=$(/usr/bin/python3 - "$tmp/s_true/search.json" "$tmp/s_flip/search.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
devs = lambda s: [t["dev"] for t in s["trials"]]
best = max(range(3), key=lambda k: (a["trials"][k]["dev"][a["metric"]], -k))
chosen_lr = a["chosen"]["lr"]
ok = devs(a) == devs(b) and a["chosen"]["lr"] == b["chosen"]["lr"] == a["trials"][best]["lr"]
# the test metric of the flipped file is 1 - the true one's, on every seed: it was read only for the report
ok = ok and all(abs(x["test"]["acc"] + y["test"]["acc"] - 1) < 1e-9 for x, y in zip(a["seeds"], b["seeds"]))
ok = ok and len(a["seeds"]) == 2 and a["seeds"][0]["dir"] == a["trials"][best]["dir"]
print("ok" if ok else f"dev {devs(a)} vs {devs(b)}, chosen {a['chosen']} vs {b['chosen']}, best {best}")
PY
)
if [ "$sel" = ok ]; then ok; else ko "selection by the dev metric, the test labels never used for it" "$sel"; fi
if grep -q "| trial | lr | dev acc" "$tmp/s_true/search.md" && grep -q "Chosen lr" "$tmp/o1"; then ok
else ko "search.md and the printed summary" "$(cat "$tmp/o1")"; fi
refuse_other() {
    "$BIN" search --out "$tmp/s_true" --trials 4 --seeds 1,2 --epochs 2 "${TRAIN[@]}" > /dev/null 2> "$tmp/err"
    if [ $? -eq 2 ] && grep -q "other settings" "$tmp/err"; then ok; else ko "a search dir with other settings" "$(cat "$tmp/err")"; fi
}
refuse_other

# 4. SIGKILL: finished trials are kept, the running one resumes from its checkpoint
K=(--out "$tmp/s_kill" --trials 3 --max-steps 1500 --eval-every 500 --save-every 100 "${TRAIN[@]}")
"$BIN" search "${K[@]}" > /dev/null 2> "$tmp/k1" &
spid=$!
for _ in $(seq 600); do
    grep -q "trial-2 starts" "$tmp/k1" 2>/dev/null && [ -e "$tmp/s_kill/trial-2/checkpoint-"*/COMPLETE ] 2>/dev/null && break
    sleep 0.1
done
kill -9 $spid 2>/dev/null
wait $spid 2>/dev/null
for _ in $(seq 100); do pgrep -f "s_kill/trial-2" > /dev/null || break; sleep 0.1; done
h1=$(md5sum "$tmp/s_kill/trial-1/run.json" 2>/dev/null)
"$BIN" search "${K[@]}" > /dev/null 2> "$tmp/k2"; r=$?
h2=$(md5sum "$tmp/s_kill/trial-1/run.json" 2>/dev/null)
if grep -q "trial-2 starts" "$tmp/k1" && [ $r -eq 0 ] && grep -q "trial-1 (lr .*) already finished" "$tmp/k2" &&
   grep -q "trial-2 resumes" "$tmp/k2" && [ -n "$h1" ] && [ "$h1" = "$h2" ]; then ok
else ko "killed with SIGKILL, then continued (exit $r)" "$(cat "$tmp/k1" "$tmp/k2" | grep search)"; fi
done3=$(/usr/bin/python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(sum(t['status']=='done' for t in s['trials']))" \
        "$tmp/s_kill/search.json" 2>/dev/null)
if [ "$done3" = 3 ]; then ok; else ko "all 3 trials done after the resume ($done3)"; fi

# --deadline: a deadline already past lets the first run start (no estimate yet), then no other; exit 75, resumable
D=(--trials 3 --seeds 1 --threads 1 --method lora --model "$A/model" --train "$A/train.tsv" --dev "$A/dev.tsv"
   --max-length 32 --max-steps 6 --quiet --out "$tmp/s_dead")
"$BIN" search "${D[@]}" --deadline $(( $(date +%s) - 1 )) > /dev/null 2> "$tmp/d1"; r=$?
one=$([ -f "$tmp/s_dead/trial-1/run.json" ] && [ ! -e "$tmp/s_dead/trial-2" ] && echo yes)
"$BIN" search "${D[@]}" > /dev/null 2> "$tmp/d2"; r2=$?
if [ $r -eq 75 ] && [ "$one" = yes ] && grep -q "trial-2 not started" "$tmp/d1" && [ $r2 -eq 0 ] &&
   grep -q "trial-1 (lr .*) already finished" "$tmp/d2"; then ok
else ko "--deadline: one run, exit 75, then continued (exit $r, $r2)" "$(cat "$tmp/d1" "$tmp/d2" | grep search)"; fi
"$BIN" search "${D[@]}" --deadline soon > /dev/null 2> "$tmp/d3"; r=$?
if [ $r -eq 2 ] && grep -q -- "--deadline" "$tmp/d3"; then ok; else ko "--deadline soon: a usage error ($r)" "$(cat "$tmp/d3")"; fi

echo "test_search: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
