#!/usr/bin/env bash
# Runs every test binary given on the command line (a tests/py/*.py script runs with /usr/bin/python3, or $CL_PYTHON),
# prints each one's result and the grand total as the last line: "N passed, N failed" (N skipped follows).
# Exits non-zero if any check failed or any binary crashed.
set -u
pass=0; fail=0; skip=0; crashed=0
for t in "$@"; do
    if [[ $t == *.py ]]; then # Python tests run with the interpreter that has torch (CL_PYTHON overrides)
        py=${CL_PYTHON:-/usr/bin/python3}
        if [ -x "$py" ]; then out=$("$py" "$t" 2>&1); rc=$?
        else out="SKIP $t: no $py"$'\n'"$(basename "$t" .py): 0 passed, 0 failed, 1 skipped"; rc=0; fi
    else
        out=$("$t" 2>&1); rc=$?
    fi
    line=$(printf '%s\n' "$out" | grep -E '^[^ ]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ] || { [ $rc -ne 0 ] && ! printf '%s' "$line" | grep -q ' [1-9][0-9]* failed'; }; then
        printf '%s\n' "$out" | tail -n 30
        echo "CRASH $t (exit $rc, no summary)"
        crashed=$((crashed + 1)); fail=$((fail + 1)); continue
    fi
    [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -E '^(FAIL|SKIP)' | head -n 40
    [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -E '^SKIP' | head -n 10
    echo "$line"
    p=$(printf '%s' "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(printf '%s' "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + ${s:-0}))
done
echo "${pass} passed, ${fail} failed, ${skip} skipped"
[ $fail -eq 0 ] && [ $crashed -eq 0 ]
