#!/usr/bin/env bash
# The installed library as a user gets it: `make install PREFIX=TMP`, then examples/train_predict.c built with
# pkg-config alone (PKG_CONFIG_PATH=TMP/lib/pkgconfig) trains LoRA on tests/data/api/train.tsv and predicts with the
# run's adapter; libcondlora.so exports only the public cl_ API of include/condlora.h (nm -D), with a soname; and the
# library's sources neither print, nor install signal handlers, nor set thread counts outside cl_threads_enter/leave.
# Last line: "test_install: N passed, N failed, N skipped".
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(dirname "${CL_BIN:-build/condlora}")
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | tail -n 15; }

# the build being tested (make asan passes its BUILD and OPT through CL_BIN and CL_OPT)
if make -C "$ROOT" --no-print-directory -s BUILD="$BUILD" ${CL_OPT:+OPT="$CL_OPT"} install PREFIX="$tmp/prefix" \
    > "$tmp/install.log" 2>&1; then ok
else ko "make install PREFIX=$tmp/prefix" "$(cat "$tmp/install.log")"; fi
for f in bin/condlora include/condlora.h lib/libcondlora.a lib/libcondlora.so lib/pkgconfig/condlora.pc; do
    if [ -e "$tmp/prefix/$f" ]; then ok; else ko "installed $f"; fi
done
so=$(readlink -f "$tmp/prefix/lib/libcondlora.so")
if readelf -d "$so" 2>/dev/null | grep -q 'SONAME.*libcondlora\.so\.[0-9]'; then ok; else ko "soname of $so"; fi

# only the public prefix, and every exported function declared in the header
syms=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TWDBR]$/ {print $3}')
bad=$(printf '%s\n' "$syms" | grep -v '^cl_' || true)
if [ -n "$syms" ] && [ -z "$bad" ]; then ok; else ko "nm -D: symbols outside cl_" "$bad"; fi
undeclared=""
for s in $syms; do grep -q "\\b$s(" "$ROOT/include/condlora.h" || undeclared="$undeclared $s"; done
if [ -z "$undeclared" ]; then ok; else ko "exported but not in condlora.h:$undeclared"; fi
echo "exported: $(printf '%s\n' "$syms" | wc -l) symbols"

# the example, built with pkg-config only, trains and predicts
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
if cc -std=c11 -Wall -Werror "$ROOT/examples/train_predict.c" $(pkg-config --cflags --libs condlora) -o "$tmp/example" \
    > "$tmp/cc.log" 2>&1; then ok; else ko "cc examples/train_predict.c \$(pkg-config --cflags --libs condlora)" \
    "$(cat "$tmp/cc.log")"; fi
if ldd "$tmp/example" 2>/dev/null | grep -q "$tmp/prefix/lib/libcondlora.so.0"; then ok
else ko "the example links the installed libcondlora.so.0" "$(ldd "$tmp/example" 2>&1)"; fi
out=$("$tmp/example" "$ROOT/tests/data/api/model" "$ROOT/tests/data/api/train.tsv" "$tmp/run" "good good good film" \
      "bad bad bad plot" 2> "$tmp/ex.err")
rc=$?
if [ $rc -eq 0 ] && [ -f "$tmp/run/best/adapter_model.safetensors" ]; then ok
else ko "the example runs (exit $rc)" "$(cat "$tmp/ex.err")"; fi
# it learned the toy task: "good" scores label 1 above label 0, "bad" the reverse
if printf '%s\n' "$out" | awk -F'\t' '/^good/ {g = $3 > $2} /^bad/ {b = $2 > $3} END {exit !(g && b)}'; then ok
else ko "the example's predictions follow the training data" "$out"; fi
# the library itself printed nothing (the example prints only on stdout, what it chose to)
if [ ! -s "$tmp/ex.err" ]; then ok; else ko "the library wrote to stderr" "$(cat "$tmp/ex.err")"; fi

# the library's sources: no printing to the terminal, no signal handlers, thread counts only set in one scoped place
src=$(grep -rnE '\b(stderr|stdout)\b|[^a-z_](printf|puts|perror)\(|\bsignal\(|\bsigaction\(' "$ROOT/src" \
      --include=*.c | grep -v '^\s*\*' || true)
if [ -z "$src" ]; then ok; else ko "src/ prints or handles signals" "$src"; fi
thr=$(grep -rnE 'omp_set_num_threads|openblas_set_num_threads' "$ROOT/src" --include=*.c | grep -v 'src/core/util.c' || true)
if [ -z "$thr" ]; then ok; else ko "src/ sets thread counts outside cl_threads_enter/leave" "$thr"; fi

echo "test_install: $pass passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
