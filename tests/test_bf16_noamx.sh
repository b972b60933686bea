#!/usr/bin/env bash
# On a CPU with AMX, build/tests/test_bf16 runs its products on tiles; this runs the same tests once more with
# CONDLORA_NO_AMX=1, so that the AVX-512 kernel stays checked on such machines too (skipped where there is no AMX:
# the plain run already covers that path). Last line: "test_bf16_noamx: N passed, N failed, N skipped".
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=${BUILD:-$ROOT/build}/tests/test_bf16
if ! grep -q " amx_bf16" /proc/cpuinfo 2>/dev/null; then
    echo "test_bf16_noamx: SKIP: no AMX on this CPU (test_bf16 itself runs the AVX-512 kernel)"
    echo "test_bf16_noamx: 0 passed, 0 failed, 1 skipped"
    exit 0
fi
out=$(CONDLORA_NO_AMX=1 "$T" 2>&1); rc=$?
printf '%s\n' "$out" | grep -v "^ok " | grep -v "passed, .* failed" || true
last=$(printf '%s\n' "$out" | tail -1)
p=$(sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped.*/\1 \2 \3/' <<< "$last")
read -r np nf ns <<< "$p"
echo "test_bf16_noamx: ${np:-0} passed, ${nf:-1} failed, ${ns:-0} skipped"
[ "$rc" = 0 ]
