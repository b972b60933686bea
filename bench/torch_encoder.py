#!/usr/bin/env python3
"""PyTorch baseline for `condlora bench`: a roberta-base-shaped RobertaForSequenceClassification with random weights
(or the architecture of --config CONFIG.json, e.g. all-MiniLM-L6-v2's BERT), batch B x sequence T, either a
training step with only the classification head trainable (requires_grad False elsewhere, dropout 0.1 active:
forward + loss + backward) -- with --method lora also PEFT LoRA r = alpha = 8 on query, value, as issue 9 measures
-- with --method condlora the released code's CondLoRA (one linear map per module type, shared by all layers,
A_l = linA(W_l).T, B_l = linB(W_l), METHODS.md 2) on query, value, written here in plain PyTorch as the reference
code does -- or inference under torch.no_grad(). Warm-up, then the median of N steps. Prints one JSON line with the same keys
as `condlora bench`.

usage: /usr/bin/python3 bench/torch_encoder.py --mode train|infer --threads K [--batch 16 --seq 128 --steps 5]
                                               [--method none|lora|condlora] [--config roberta-base|CONFIG.json]
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import time

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, RobertaConfig, RobertaForSequenceClassification


class CondLoRALinear(torch.nn.Module):
    """y = base(x) + s (x A^T) B^T with A = lin_a(W).T (r x d) and B = lin_b(W) (d x r) from the frozen W."""

    def __init__(self, base, lin_a, lin_b, scale):
        super().__init__()
        self.base, self.lin_a, self.lin_b, self.scale = base, lin_a, lin_b, scale

    def forward(self, x):
        w = self.base.weight
        return self.base(x) + self.scale * (x @ self.lin_a(w)) @ self.lin_b(w).T


def qv_names(cfg):
    """the query and value projections' attribute names: MPNet calls them q, v"""
    return ("q", "v") if getattr(cfg, "model_type", "") == "mpnet" else ("query", "value")


def add_condlora(model, d, r, alpha, names=("query", "value")):
    maps = {}
    for m in names:
        lin_a, lin_b = torch.nn.Linear(d, r, bias=False), torch.nn.Linear(d, r, bias=False)
        torch.nn.init.zeros_(lin_b.weight)  # ThB = 0 (lin_a keeps nn.Linear's kaiming-uniform a = sqrt 5)
        maps[m] = (lin_a, lin_b)
    model.condlora_maps = torch.nn.ModuleList([x for pair in maps.values() for x in pair])
    for mod in list(model.modules()):
        for m in names:
            child = getattr(mod, m, None)
            if isinstance(child, torch.nn.Linear):
                setattr(mod, m, CondLoRALinear(child, *maps[m], alpha / r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--method", choices=["none", "lora", "condlora"], default="none")
    ap.add_argument("--config", default="roberta-base")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: the forward under torch.autocast('cpu', bfloat16), PyTorch's own bf16 (oneDNN)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.config == "roberta-base":
        cfg = RobertaConfig(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                            layer_norm_eps=1e-5, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                            num_labels=2)
        model = RobertaForSequenceClassification(cfg)
    else:
        cfg = AutoConfig.from_pretrained(a.config, num_labels=2)
        model = AutoModelForSequenceClassification.from_config(cfg)
    for n, p in model.named_parameters():
        p.requires_grad_(n.startswith("classifier"))
    if a.method == "lora":
        from peft import LoraConfig, get_peft_model
        lc = LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=list(qv_names(cfg)), task_type="SEQ_CLS")
        model = get_peft_model(model, lc)
    if a.method == "condlora":
        add_condlora(model, cfg.hidden_size, r=8, alpha=8, names=qv_names(cfg))
    ids = torch.randint(3, cfg.vocab_size, (a.batch, a.seq))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (a.batch,))
    times = []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        ac = torch.autocast("cpu", dtype=torch.bfloat16) if a.precision == "bf16" else contextlib.nullcontext()
        if a.mode == "train":
            model.train()
            with ac:
                out = model(input_ids=ids, attention_mask=mask, labels=labels)
            out.loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            model.eval()
            with torch.no_grad(), ac:
                model(input_ids=ids, attention_mask=mask)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times[a.warmup:])
    print(json.dumps({"bench": "torch_encoder", "mode": a.mode, "method": a.method, "config": a.config, "batch": a.batch, "seq": a.seq, "threads": a.threads, "precision": a.precision,
                      "steps": a.steps, "tokens_per_s": round(a.batch * a.seq / med, 2),
                      "step_s_median": round(med, 5), "step_s_min": round(min(times[a.warmup:]), 5),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "torch": torch.__version__, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "")}))


if __name__ == "__main__":
    main()
