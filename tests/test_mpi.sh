#!/usr/bin/env bash
# Data parallelism over MPI (issue 18) on the tiny model and the toy task of tests/data/api (64 training rows):
# `mpirun -np 2` (1 thread each) against one process at the same global batch, with dropout on
# (the masks must be the single process's): the same losses and dev metrics, the final adapter within 1e-5, for
# LoRA, CondLoRA and SaLoRA, bf16, 3 ranks with an empty shard on a regression task; the search shared by 2 ranks;
# --resume with another world size (2 -> 1 and 1 -> 2) continues as the straight run;
# rank 1 killed (SIGKILL): mpirun ends non-zero within 60 s and the last complete checkpoint resumes; two ranks with
# different options stop with a message naming the difference. SKIP with the reason where mpirun or MPI is absent.
# Last line: "test_mpi: N passed, N failed, N skipped".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CL_BIN:-$ROOT/build/condlora}
D=$ROOT/tests/data/api
skip() { echo "test_mpi: SKIP: $1"; echo "test_mpi: 0 passed, 0 failed, 1 skipped"; exit 0; }
command -v mpirun > /dev/null || skip "no mpirun (apt-get install openmpi-bin libopenmpi-dev)"
"$BIN" --version | grep -q "^MPI: not" && skip "condlora was built without MPI ($("$BIN" --version | tail -1))"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 12; }
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
A=(train --model "$D/model" --train "$D/train.tsv" --dev "$D/dev.tsv" --max-length 32 --max-train 64 --max-eval 40
   --batch-size 8 --eval-every 4 --threads 1 --log-every 1 --quiet)
# compare RUN_A RUN_B: losses (relative 1e-5), dev metrics (equal), final adapter tensors (absolute 1e-5)
compare() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys
def logs(d):
    t, e = [], []
    for line in open(f"{d}/metrics.jsonl"):
        r = json.loads(line)
        (t if r["type"] == "train" else e).append(r)
    return t, e
def tensors(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]
        out[k] = struct.unpack(f"<{(e - s) // 4}f", b[8 + n + s:8 + n + e])
    return out
(ta, ea), (tb, eb) = logs(sys.argv[1]), logs(sys.argv[2])
assert len(ta) == len(tb) > 0, (len(ta), len(tb))
worst = max(abs(x["loss"] - y["loss"]) / max(1e-12, abs(x["loss"])) for x, y in zip(ta, tb))
assert worst < 1e-5, f"losses differ by {worst:.2e} (relative)"
assert [x["lr"] for x in ta] == [x["lr"] for x in tb], "learning rates"
assert [(x["split"], sorted(x["metrics"])) for x in ea] == [(x["split"], sorted(x["metrics"])) for x in eb]
dm = max([abs(x["metrics"][k] - y["metrics"][k]) for x, y in zip(ea, eb) for k in x["metrics"]] + [0])
assert dm < 1e-5, f"dev / test metrics differ by {dm:.2e}"  # classification: equal; a correlation: rounding
A, B = tensors(f"{sys.argv[1]}/final/adapter_model.safetensors"), tensors(f"{sys.argv[2]}/final/adapter_model.safetensors")
assert A.keys() == B.keys()
dw = max(abs(x - y) for k in A for x, y in zip(A[k], B[k]))
assert dw < 1e-5, f"adapter tensors differ by {dw:.2e}"
print(f"losses within {worst:.1e} (relative), adapter within {dw:.1e}, {len(ea)} evaluations within {dm:.1e}")
PY
}
for m in lora condlora salora; do
    "$BIN" "${A[@]}" --method $m --dropout 0.1 --max-steps 16 --out "$tmp/$m-1" > "$tmp/$m-1.log" 2>&1 || ko "$m: one process" "$(cat "$tmp/$m-1.log")"
    "${MPIRUN[@]}" -np 2 "$BIN" "${A[@]}" --method $m --dropout 0.1 --max-steps 16 --out "$tmp/$m-2" > "$tmp/$m-2.log" 2>&1 \
        || ko "$m: mpirun -np 2" "$(cat "$tmp/$m-2.log")"
    if r=$(compare "$tmp/$m-1" "$tmp/$m-2" 2>&1); then ok; echo "  $m np 2 vs 1: $r"; else ko "$m: np 2 = np 1" "$r"; fi
done
# uneven shards (an empty one in the last batch of 2 rows), regression, 3 ranks; and bf16 frozen weights
awk -F'\t' 'NR == 1 {print "sentence\tscore"; next} {printf "%s\t%.2f\n", $1, $2 * 3 + (NR % 7) / 4}' "$D/train.tsv" > "$tmp/reg.tsv"
B=(--method condlora --dropout 0.1 --max-steps 18 --train "$tmp/reg.tsv" --dev "$tmp/reg.tsv" --label-column score
   --problem regression --max-train 66)
"$BIN" "${A[@]}" "${B[@]}" --out "$tmp/sts-1" > "$tmp/sts-1.log" 2>&1 || ko "regression: one process" "$(cat "$tmp/sts-1.log")"
"${MPIRUN[@]}" -np 3 "$BIN" "${A[@]}" "${B[@]}" --out "$tmp/sts-3" > "$tmp/sts-3.log" 2>&1 || ko "regression: np 3" "$(cat "$tmp/sts-3.log")"
if r=$(compare "$tmp/sts-1" "$tmp/sts-3" 2>&1); then ok; echo "  regression condlora np 3 vs 1: $r"; else ko "regression: np 3 = np 1" "$r"; fi
if grep -q avx512_bf16 /proc/cpuinfo; then
    "$BIN" "${A[@]}" --method lora --dropout 0.1 --max-steps 16 --precision bf16 --out "$tmp/bf-1" > "$tmp/bf-1.log" 2>&1 || ko "bf16: one process" "$(cat "$tmp/bf-1.log")"
    "${MPIRUN[@]}" -np 2 "$BIN" "${A[@]}" --method lora --dropout 0.1 --max-steps 16 --precision bf16 --out "$tmp/bf-2" > "$tmp/bf-2.log" 2>&1 \
        || ko "bf16: np 2" "$(cat "$tmp/bf-2.log")"
    if r=$(compare "$tmp/bf-1" "$tmp/bf-2" 2>&1); then ok; echo "  lora bf16 np 2 vs 1: $r"; else ko "bf16: np 2 = np 1" "$r"; fi
fi
if grep -q '"world_size":[[:space:]]*2' "$tmp/lora-2/run.json" && grep -q '"world_size":[[:space:]]*1' "$tmp/lora-1/run.json"; then ok
else ko "run.json world_size"; fi
# --resume with another world size, both ways
"${MPIRUN[@]}" -np 2 "$BIN" "${A[@]}" --method lora --dropout 0.1 --max-steps 16 --save-every 100 --stop-after 7 --out "$tmp/r21" > "$tmp/r21.log" 2>&1
"$BIN" train --resume "$tmp/r21" --quiet > "$tmp/r21b.log" 2>&1 || ko "resume 2 -> 1" "$(cat "$tmp/r21.log" "$tmp/r21b.log")"
if r=$(compare "$tmp/lora-1" "$tmp/r21" 2>&1); then ok; else ko "np 2, stopped at 7, resumed on 1 process = straight" "$r"; fi
"$BIN" "${A[@]}" --method lora --dropout 0.1 --max-steps 16 --save-every 100 --stop-after 9 --out "$tmp/r12" > "$tmp/r12.log" 2>&1
"${MPIRUN[@]}" -np 2 "$BIN" train --resume "$tmp/r12" --quiet > "$tmp/r12b.log" 2>&1 || ko "resume 1 -> 2" "$(cat "$tmp/r12.log" "$tmp/r12b.log")"
if r=$(compare "$tmp/lora-1" "$tmp/r12" 2>&1); then ok; else ko "1 process, stopped at 9, resumed on np 2 = straight" "$r"; fi
# mpirun -np 2 condlora search: the ranks share the runs (each once), the summary equals one process's search
S=(search --trials 4 --seeds 1,2,3 --threads 1 --method lora --model "$D/model" --train "$D/train.tsv" --dev "$D/dev.tsv"
   --max-length 32 --max-train 40 --max-eval 20 --epochs 1 --quiet)
"$BIN" "${S[@]}" --out "$tmp/s1" > /dev/null 2> "$tmp/s1.err" || ko "search: one process" "$(cat "$tmp/s1.err")"
"${MPIRUN[@]}" -np 2 "$BIN" "${S[@]}" --out "$tmp/s2" > "$tmp/s2.out" 2> "$tmp/s2.err" || ko "search: np 2" "$(cat "$tmp/s2.err")"
n=$(grep -c " starts " "$tmp/s2.err")
if [ "$n" = 6 ] && python3 - "$tmp/s1/search.json" "$tmp/s2/search.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
key = lambda s: [(x["run"], x["lr"], x.get("dev"), x.get("test")) for x in s["trials"] + s["seeds"]]
assert key(a) == key(b) and a["chosen"] == b["chosen"], (a["chosen"], b["chosen"])
PY
then ok; else ko "search over 2 ranks: 6 runs once each ($n), the same summary as one process" "$(cat "$tmp/s2.err")"; fi
# different options on the two ranks (MPMD): refused, naming what differs
"${MPIRUN[@]}" -np 1 "$BIN" "${A[@]}" --method lora --lr 1e-3 --max-steps 4 --out "$tmp/mm" : \
    -np 1 "$BIN" "${A[@]}" --method lora --lr 2e-3 --max-steps 4 --out "$tmp/mm" > "$tmp/mm.log" 2>&1; rc=$?
if [ $rc != 0 ] && grep -q "rank 1's the options differ from rank 0's" "$tmp/mm.log"; then ok
else ko "different options on two ranks: an error naming them (exit $rc)" "$(cat "$tmp/mm.log")"; fi
# rank 1 killed: the job ends with an error in bounded time, the last complete checkpoint resumes
"${MPIRUN[@]}" -np 2 "$BIN" "${A[@]}" --method lora --max-train 64 --epochs 400 --save-every 20 --out "$tmp/kill" \
    > "$tmp/kill.log" 2>&1 &
mp=$!
for _ in $(seq 1 200); do ls -d "$tmp/kill"/checkpoint-*/COMPLETE > /dev/null 2>&1 && break; sleep 0.1; done
victim=""
for p in $(pgrep -f "condlora train.*$tmp/kill"); do
    tr '\0' '\n' < /proc/$p/environ 2> /dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
done
t0=$(date +%s)
[ -n "$victim" ] && kill -9 "$victim"
for _ in $(seq 1 600); do kill -0 $mp 2> /dev/null || break; sleep 0.1; done
if kill -0 $mp 2> /dev/null; then kill -9 $mp; rc=timeout; else wait $mp; rc=$?; fi
dt=$(( $(date +%s) - t0 ))
if [ -n "$victim" ] && [ "$rc" != timeout ] && [ "$rc" != 0 ] && [ $dt -le 60 ]; then ok; echo "  rank 1 killed: mpirun exit $rc after ${dt} s"
else ko "killed rank: mpirun ends non-zero within 60 s (victim '$victim', exit $rc, ${dt} s)" "$(cat "$tmp/kill.log")"; fi
last=$(ls -d "$tmp/kill"/checkpoint-* 2> /dev/null | sort -t- -k2 -n | tail -1)
if [ -n "$last" ] && [ -f "$last/COMPLETE" ] && "$BIN" train --resume "$tmp/kill" --stop-after 3 --quiet > "$tmp/kill2.log" 2>&1; then ok
else ko "the last checkpoint after the kill is complete and resumes" "$(ls "$tmp/kill"; cat "$tmp/kill2.log")"; fi
echo "test_mpi: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
