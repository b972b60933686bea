#!/usr/bin/env bash
# condlora split: the paper protocol's rows as train uses them. On the real GLUE files (skipped without them): train
# and dev partition the data lines of train.tsv, dev holds round(10%) of them, test is every data line of dev.tsv in
# order, the same seed gives the same rows and another seed others, the counts equal a training run's run.json;
# glue protocol: the official files. Bad input: exit 2 for usage, 1 naming the missing file.
# Last line: "test_split: N passed, N failed, N skipped".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CL_BIN:-$ROOT/build/condlora}
GLUE=${CONDLORA_DATA:-$ROOT/../shared/data/glue}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 8; }
# usage and missing files need no data
"$BIN" split --task NOPE --data "$tmp" 2> "$tmp/e1"; rc=$?
if [ $rc = 2 ] && grep -q "NOPE" "$tmp/e1"; then ok; else ko "unknown task: exit 2 naming it ($rc)" "$(cat "$tmp/e1")"; fi
"$BIN" split --task RTE --data "$tmp/none" 2> "$tmp/e2"; rc=$?
if [ $rc = 1 ] && grep -q "$tmp/none/RTE/train.tsv" "$tmp/e2"; then ok; else ko "missing file: exit 1 naming it ($rc)" "$(cat "$tmp/e2")"; fi
"$BIN" split --task RTE --data "$tmp" --seed x 2> "$tmp/e3"; rc=$?
if [ $rc = 2 ] && grep -q -- "--seed" "$tmp/e3"; then ok; else ko "bad seed: exit 2 ($rc)" "$(cat "$tmp/e3")"; fi
"$BIN" split --task RTE --data "$tmp/none" --out "$tmp/o.json" 2> /dev/null
if [ ! -e "$tmp/o.json" ] && [ ! -e "$tmp/o.json.tmp" ]; then ok; else ko "a failed split writes no file"; fi
if [ ! -f "$GLUE/RTE/train.tsv" ]; then
    echo "test_split: the GLUE checks skipped (no GLUE data at $GLUE)"
    echo "test_split: $pass passed, $fail failed, 1 skipped"
    [ $fail -eq 0 ]; exit
fi
for t in RTE CoLA; do
    "$BIN" split --task $t --data "$GLUE" --seed 1 --out "$tmp/$t.1.json" && "$BIN" split --task $t --data "$GLUE" --seed 1 > "$tmp/$t.1b.json" \
        && "$BIN" split --task $t --data "$GLUE" --seed 2 > "$tmp/$t.2.json" && "$BIN" split --task $t --data "$GLUE" --protocol glue > "$tmp/$t.g.json" \
        || ko "$t: split runs"
    if python3 - "$GLUE/$t" "$tmp/$t" <<'PY' > "$tmp/py.log" 2>&1
import json, sys
d, p = sys.argv[1], sys.argv[2]
s1, s1b, s2, g = (json.load(open(f"{p}.{k}.json")) for k in ("1", "1b", "2", "g"))
header = 0 if d.endswith("CoLA") else 1
def data_lines(f):
    with open(f, encoding="utf-8-sig") as h:
        return [i + 1 for i, line in enumerate(h) if i >= header and line.strip()]
tr, dv = data_lines(f"{d}/train.tsv"), data_lines(f"{d}/dev.tsv")
a, b = s1["train"]["lines"], s1["dev"]["lines"]
assert sorted(a + b) == tr, "train + dev is not a partition of train.tsv's data lines"
assert len(b) == len(tr) // 10 + (len(tr) % 10 >= 5), (len(b), len(tr))
assert s1["test"]["lines"] == dv and s1["test"]["file"].endswith("dev.tsv"), "test is not dev.tsv in order"
assert s1 == s1b, "the same seed gave other rows"
assert s2["dev"]["lines"] != b and sorted(s2["dev"]["lines"] + s2["train"]["lines"]) == tr, "seed 2"
assert g["train"]["lines"] == tr and g["dev"]["lines"] == dv and "test" not in g, "glue protocol"
assert all(s1[k]["n"] == len(s1[k]["lines"]) for k in ("train", "dev", "test"))
print("ok")
PY
    then ok; else ko "$t: the rows of the splits" "$(cat "$tmp/py.log")"; fi
done
# the counts a training run reports are the split's
"$BIN" train --model "$ROOT/tests/data/api/model" --task RTE --data "$GLUE" --max-length 16 --max-steps 1 --threads 1 \
    --out "$tmp/run" --quiet > /dev/null 2> "$tmp/e4" || ko "train" "$(cat "$tmp/e4")"
if python3 -c "
import json, sys
r, s = json.load(open('$tmp/run/run.json'))['data'], json.load(open('$tmp/RTE.1.json'))
sys.exit(0 if (r['train'], r['dev'], r['test']) == (s['train']['n'], s['dev']['n'], s['test']['n']) else 1)"
then ok; else ko "the split's counts equal run.json's"; fi
echo "test_split: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
