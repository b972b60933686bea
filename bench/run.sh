#!/usr/bin/env bash
# `make bench`: runs every bench/bench_*.sh in turn. Each one runs condlora and its PyTorch / Hugging Face
# baseline on this machine in the same run and prints both figures and their ratio. Not a test: nothing here fails
# on a slow number.
set -u
cd "$(dirname "$0")/.."
bash scripts/setup.sh --python >/dev/null || echo "bench: Python baselines unavailable (setup --python failed)" >&2
status=0
for b in bench/bench_*.sh; do
    [ -e "$b" ] || continue
    echo "=== $b"
    bash "$b" || status=1
done
exit $status
