#!/usr/bin/env bash
# Tokenizer speed: encoding all SST-2 train sentences (67,349), single thread, condlora vs Hugging Face `tokenizers`
# batch encode on one thread (bench/tokenizer_baseline.py), RoBERTa (byte-level BPE) and BERT (WordPiece).
# condlora's figure is `condlora tokenize` over the file minus a run that only loads the tokenizer, best of 3,
# output to /dev/null (ids are formatted and written, which the Python figure does not include).
set -u
cd "$(dirname "$0")/.."
SHARED=${CL_SHARED:-../shared}
BIN=${CL_BIN:-build/condlora}
SST=$SHARED/data/glue/SST-2/train.tsv
[ -f "$SST" ] || { echo "bench_tokenizer: $SST absent, skipped"; exit 0; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tail -n +2 "$SST" | cut -f1 > "$tmp/sst2.txt"
: > "$tmp/empty.txt"
n=$(wc -l < "$tmp/sst2.txt")
best() { # best wall time of 3 runs of "$@"
    local b=
    for i in 1 2 3; do
        local t0=$(date +%s.%N); "$@" > /dev/null; local t1=$(date +%s.%N)
        b=$(echo "$t1 - $t0" | bc -l | awk -v b="$b" '{ if (b == "" || $1 < b) print $1; else print b }')
    done
    echo "$b"
}
py=""
if /usr/bin/python3 -c 'import tokenizers, transformers' 2>/dev/null; then
    py=$(/usr/bin/python3 bench/tokenizer_baseline.py "$SHARED")
else
    echo "bench_tokenizer: Python tokenizers unavailable, condlora figures only"
fi
for kind in roberta bert; do
    dir=$SHARED/data/tokenizers/$([ $kind = roberta ] && echo roberta-base || echo bert-base-uncased)
    run() { OMP_NUM_THREADS=1 "$BIN" tokenize --tokenizer "$dir" < "$1"; }
    tl=$(best run "$tmp/empty.txt"); tt=$(best run "$tmp/sst2.txt")
    c=$(echo "$tt - $tl" | bc -l)
    line="tokenize $kind: condlora $(printf '%.3f' "$c") s (load $(printf '%.3f' "$tl") s) for $n sentences"
    h=$(printf '%s\n' "$py" | awk -v k=$kind '$1 == k { print $2 }')
    if [ -n "$h" ]; then
        line="$line; HF tokenizers 1 thread $(printf '%.3f' "$h") s; speedup $(echo "$h / $c" | bc -l | xargs printf '%.2f')x"
    fi
    echo "$line"
done
