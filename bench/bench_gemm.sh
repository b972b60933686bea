#!/usr/bin/env bash
# The limit (issue 21): this machine's peak measured on registers (vfmadd231ps for fp32, vdpbf16ps for bf16), and a
# roberta-base layer's three GEMM shapes at a training step's rows (batch 16 x 128 = 2048) in condlora's bf16 kernel
# and in OpenBLAS's sgemm (condlora fp32 and PyTorch fp32 both run it), with 1 and 2 threads, median of 7.
# PyTorch's own bf16 matmul (oneDNN) on the same shapes is the peer. Env: N (2048), THREADS ("1 2").
set -u
cd "$(dirname "$0")/.."
make -s build/bench/gemm_peak || exit 1
PY=/usr/bin/python3
for th in ${THREADS:-1 2}; do
    OMP_NUM_THREADS=$th build/bench/gemm_peak "${N:-2048}" "$th"
    $PY - "${N:-2048}" "$th" <<'PYEOF' 2>/dev/null || echo "bench_gemm: PyTorch unavailable at $PY" >&2
import json, sys, time
import torch
n, th = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(th)
for c, oc in ((768, 768), (768, 3072), (3072, 768)):
    out = {"what": "torch_matmul", "threads": th, "N": n, "C": c, "OC": oc}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x, w = torch.randn(n, c, dtype=dt), torch.randn(oc, c, dtype=dt)
        ts = []
        for _ in range(7):
            t0 = time.perf_counter(); torch.nn.functional.linear(x, w); ts.append(time.perf_counter() - t0)
        out[name + "_gflops"] = round(2 * n * c * oc / sorted(ts)[3] / 1e9, 1)
    print(json.dumps(out))
PYEOF
done
