#!/usr/bin/env bash
# `make parity`: condlora's tokenizers against Python `tokenizers` over every sentence of ../shared/data/glue (all
# tasks, train and dev, single sentences and truncated pairs), RoBERTa and BERT, plus a sweep of every Unicode code
# point. Needs /usr/bin/python3 with tokenizers + transformers; skips (exit 0) with a message when they are absent.
set -u
cd "$(dirname "$0")/.."
SHARED=${CL_SHARED:-../shared}
PY=${PARITY_PYTHON:-/usr/bin/python3}
if ! "$PY" -c 'import tokenizers, transformers' 2>/dev/null; then
    echo "parity: $PY lacks tokenizers/transformers; skipped"; exit 0
fi
[ -d "$SHARED/data/glue" ] || { echo "parity: $SHARED/data/glue absent; skipped"; exit 0; }
exec "$PY" scripts/tokenizer_parity.py --bin "${CL_BIN:-build/condlora}" --shared "$SHARED" --sweep
