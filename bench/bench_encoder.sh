#!/usr/bin/env bash
# Encoder speed: condlora vs PyTorch (bench/torch_encoder.py) on a roberta-base-shaped random model, batch 16 x 128,
# a training step (everything frozen but the head, dropout 0.1) and inference, with 1 and 2 threads, run here in
# one process tree. PyTorch runs with OPENBLAS_CORETYPE unset (as its reference figure was taken); condlora runs
# twice: as users get it (condlora re-executes itself with AVX-512 kernels), and pinned to the machine's exported
# OPENBLAS_CORETYPE (CONDLORA_KEEP_CORETYPE=1) to show what the variable costs. PyTorch also runs a second time
# with OPENBLAS_CORETYPE=SkylakeX (its OpenBLAS then gets the same AVX-512 kernels: the like-for-like ratio).
# condlora also runs with --precision bf16 (AVX512_BF16 CPUs; issue 9's goal: training >= 2.5x and inference >= 2x
# PyTorch fp32, peak RSS <= 0.6x): its tokens/s, ratio to PyTorch and peak RSS are columns 11-13; the last two are
# PyTorch's own bf16 (torch.autocast("cpu", bfloat16): oneDNN, AMX where the CPU has it) and condlora bf16 / it.
# Env: BATCH, SEQ, STEPS (default 16, 128, 5), THREADS (default "1 2"), CONFIG (roberta-base, or a config.json
# such as all-MiniLM-L6-v2's), METHOD (none; lora: LoRA r 8 on query, value in both, PEFT for PyTorch;
# condlora: CondLoRA r 8 on query, value in both, the released code's form in plain PyTorch).
set -u
cd "$(dirname "$0")/.."
BIN=${CL_BIN:-build/condlora}
PY=/usr/bin/python3
B=${BATCH:-16}; T=${SEQ:-128}; N=${STEPS:-5}; CFG=${CONFIG:-roberta-base}; METH=${METHOD:-none}
MACHINE_CT=${OPENBLAS_CORETYPE:-}
field() { sed -nE "s/.*\"$1\": ?([0-9.]+).*/\1/p"; }
have_torch=1
$PY -c "import torch, transformers" 2>/dev/null || { echo "bench_encoder: PyTorch/transformers unavailable at $PY" >&2; have_torch=0; }
printf "%-6s %-3s %10s %10s %10s %7s %10s %7s %10s %10s %10s %7s %10s %10s %7s   (tokens/s; ratios are condlora / torch)\n" \
    mode thr condlora cl_keep_ct torch ratio torch_skx ratio rss_cl_mib rss_pt_mib cl_bf16 ratio rss_bf16 torch_bf16 ratio
for mode in train infer; do
    for th in ${THREADS:-1 2}; do
        cl=$(OMP_NUM_THREADS=$th "$BIN" bench --config "$CFG" --mode $mode --method $METH --batch $B --seq $T \
            --steps $N --threads $th)
        clb=$(OMP_NUM_THREADS=$th "$BIN" bench --config "$CFG" --mode $mode --method $METH --batch $B --seq $T \
            --steps $N --threads $th --precision bf16 2>/dev/null)
        if [ -n "$MACHINE_CT" ]; then
            clk=$(CONDLORA_KEEP_CORETYPE=1 OPENBLAS_CORETYPE=$MACHINE_CT OMP_NUM_THREADS=$th "$BIN" bench \
                --config "$CFG" --mode $mode --method $METH --batch $B --seq $T --steps $N --threads $th)
        else
            clk=""
        fi
        pt=""
        [ $have_torch = 1 ] && pt=$(env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=$th $PY bench/torch_encoder.py \
            --mode $mode --threads $th --batch $B --seq $T --steps $N --config "$CFG" --method $METH 2>/dev/null)
        pts=""
        [ $have_torch = 1 ] && pts=$(OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=$th $PY bench/torch_encoder.py \
            --mode $mode --threads $th --batch $B --seq $T --steps $N --config "$CFG" --method $METH 2>/dev/null)
        ptb=""
        [ $have_torch = 1 ] && ptb=$(env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=$th $PY bench/torch_encoder.py \
            --mode $mode --threads $th --batch $B --seq $T --steps $N --config "$CFG" --method $METH --precision bf16 \
            2>/dev/null)
        echo "# condlora: $cl"
        [ -n "$clk" ] && echo "# condlora (OPENBLAS_CORETYPE=$MACHINE_CT kept): $clk"
        [ -n "$clb" ] && echo "# condlora --precision bf16: $clb"
        [ -n "$pt" ] && echo "# pytorch: $pt"
        [ -n "$pts" ] && echo "# pytorch (OPENBLAS_CORETYPE=SkylakeX): $pts"
        [ -n "$ptb" ] && echo "# pytorch bf16 autocast: $ptb"
        a=$(echo "$cl" | field tokens_per_s); k=$(echo "$clk" | field tokens_per_s)
        p=$(echo "$pt" | field tokens_per_s); ps=$(echo "$pts" | field tokens_per_s)
        ra=$(echo "$cl" | field peak_rss_mib); rp=$(echo "$pt" | field peak_rss_mib)
        bb=$(echo "$clb" | field tokens_per_s); rb=$(echo "$clb" | field peak_rss_mib)
        ratio_b=$( [ -n "$bb" ] && [ -n "$p" ] && awk -v a="$bb" -v p="$p" 'BEGIN{printf "%.2fx", a/p}' || echo "-")
        ratio=$( [ -n "$a" ] && [ -n "$p" ] && awk -v a="$a" -v p="$p" 'BEGIN{printf "%.2fx", a/p}' || echo "-")
        ratio_s=$( [ -n "$a" ] && [ -n "$ps" ] && awk -v a="$a" -v p="$ps" 'BEGIN{printf "%.2fx", a/p}' || echo "-")
        pb=$(echo "$ptb" | field tokens_per_s)
        ratio_pb=$( [ -n "$bb" ] && [ -n "$pb" ] && awk -v a="$bb" -v p="$pb" 'BEGIN{printf "%.2fx", a/p}' || echo "-")
        printf "%-6s %-3s %10s %10s %10s %7s %10s %7s %10s %10s %10s %7s %10s %10s %7s\n" $mode $th "${a:--}" "${k:--}" \
            "${p:--}" "$ratio" "${ps:--}" "$ratio_s" "${ra:--}" "${rp:--}" "${bb:--}" "$ratio_b" "${rb:--}" "${pb:--}" \
            "$ratio_pb"
    done
done
