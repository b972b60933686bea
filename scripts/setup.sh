#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian machine. Called by `make` when the build stamp is missing; safe to
# run again. As root it uses apt-get; otherwise it names the packages to install and fails.
#   scripts/setup.sh           C build dependencies (headers and libraries)
#   scripts/setup.sh --python  also the Python packages used by the reference scripts and the PyTorch baselines
set -eu
pkgs_needed=()
need() { # need HEADER-or-LIB PACKAGE
    [ -e "$1" ] || pkgs_needed+=("$2")
}
need /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h libopenblas-openmp-dev
need /usr/include/lapacke.h liblapacke-dev
need /usr/include/pcre2.h libpcre2-dev
need /usr/include/utf8proc.h libutf8proc-dev
need /usr/include/cjson/cJSON.h libcjson-dev
need /usr/include/png.h libpng-dev
# MPI data parallelism (`mpirun -np N condlora train`, issue 18): the Makefile builds it in when mpicc is there
command -v mpicc >/dev/null || pkgs_needed+=(libopenmpi-dev)
command -v mpirun >/dev/null || pkgs_needed+=(openmpi-bin)
command -v cc >/dev/null || pkgs_needed+=(gcc)
command -v make >/dev/null || pkgs_needed+=(make)
# the tests of the installed library and of the Python binding (tests/test_install.sh, tests/py/test_python_binding.py)
command -v pkg-config >/dev/null || pkgs_needed+=(pkg-config)
/usr/bin/python3 -c "import numpy" 2>/dev/null || pkgs_needed+=(python3-numpy)
/usr/bin/python3 -c "import setuptools" 2>/dev/null || pkgs_needed+=(python3-setuptools)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || pkgs_needed+=(python3-pip)
if [ "${1:-}" = "--fuzz" ] || [ "${1:-}" = "--all" ]; then
    command -v clang >/dev/null || pkgs_needed+=(clang)
    ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || pkgs_needed+=(libclang-rt-14-dev)
fi
if [ "${1:-}" = "--python" ] || [ "${1:-}" = "--all" ]; then
    for m in torch:python3-torch numpy:python3-numpy scipy:python3-scipy yaml:python3-yaml requests:python3-requests \
             psutil:python3-psutil sklearn:python3-sklearn; do
        /usr/bin/python3 -c "import ${m%%:*}" 2>/dev/null || pkgs_needed+=("${m#*:}")
    done
fi
# apt-get, waiting (bounded: CONDLORA_APT_WAIT seconds, default 600) while another apt or dpkg holds its lock, as on
# a fresh cloud machine whose unattended upgrades run at boot; any other failure is reported at once
apt_retry() {
    local waited=0 limit=${CONDLORA_APT_WAIT:-600} log
    log=$(mktemp)
    while true; do
        if apt-get -o DPkg::Lock::Timeout=0 "$@" >"$log" 2>&1; then rm -f "$log"; return 0; fi
        if ! grep -qiE 'could not get lock|unable to lock|is another process using it' "$log"; then
            tail -n 20 "$log" >&2; rm -f "$log"; return 1
        fi
        if [ "$waited" -ge "$limit" ]; then
            echo "setup: apt/dpkg is still locked by another process after ${limit} s; try again when it has" \
                 "finished (or set CONDLORA_APT_WAIT)" >&2
            grep -iE 'lock' "$log" | head -n 2 >&2; rm -f "$log"; return 1
        fi
        [ "$waited" = 0 ] && echo "setup: another apt/dpkg holds its lock; waiting up to ${limit} s ..." >&2
        sleep 5; waited=$((waited + 5))
    done
}
if [ ${#pkgs_needed[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing ${pkgs_needed[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt_retry update -qq
        apt_retry install -y -qq "${pkgs_needed[@]}"
    else
        echo "setup: missing packages: ${pkgs_needed[*]}" >&2
        echo "setup: install them with: sudo apt-get install ${pkgs_needed[*]}" >&2
        exit 1
    fi
fi
if [ "${1:-}" = "--python" ] || [ "${1:-}" = "--all" ]; then
    # Debian's torch 1.13 (CPU, /usr/bin/python3) plus the Hugging Face packages in versions that support it, for the
    # reference scripts and baselines only. --no-deps: Debian's torch calls itself 1.13.0a0, which pip would
    # "upgrade" to a 2 GB CUDA build; every dependency is listed here or comes from Debian above.
    if ! /usr/bin/python3 -c 'import transformers, tokenizers, safetensors, peft, accelerate' 2>/dev/null; then
        echo "setup: installing Python packages for the reference scripts" >&2
        /usr/bin/python3 -m pip install -q --break-system-packages --no-deps \
            "transformers==4.40.2" "tokenizers==0.19.1" "huggingface_hub==0.23.4" "safetensors==0.4.3" \
            "peft==0.10.0" "accelerate==0.30.1" "regex" "tqdm" "filelock" "fsspec" "packaging" >&2
    fi
fi
exit 0
