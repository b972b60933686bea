#!/usr/bin/python3
"""Reference data for tests/test_analysis.c (the analysis of CondLoRA, METHODS.md section 3).

Writes into tests/data/analysis/:
  tiny-bert/            a tiny random BERT (hidden 16, 4 layers) saved by transformers (config.json, model.safetensors)
  lora-a/, lora-b/      two LoRA adapters trained by nobody: PEFT 0.10 adapters on tiny-bert (r = 4, query + value)
                        with random non-zero B, saved by PEFT itself (adapter_config.json, adapter_model.safetensors)
  lora-ffn/             a PEFT adapter that also targets intermediate.dense (non-square: must be refused)
  adalora/              a PEFT AdaLoRA adapter (lora_E folded into A; pruned components E_i = 0 dropped)
  ref.json              NumPy (float64) results: LU solves, condition numbers, SVDs, phi values, the conversion
                        matrices C_A = W^-1 A^T, C_B = W^-1 B, C_BA = W^-1 B A and the layer-by-layer phi matrices,
                        and the per-layer LoRA-vs-LoRA similarity (A right, B and BA left singular vectors).
Run: /usr/bin/python3 scripts/gen_analysis_refs.py   (deterministic; takes a few seconds)
"""
import json
import os
import shutil

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import BertConfig, BertForSequenceClassification
from peft import AdaLoraConfig, LoraConfig, get_peft_model

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join("tests", "data", "analysis")  # relative, so adapter_config.json names a relative base path


def phi(X, Y, i, j, side):
    """LoRA paper's normalised subspace similarity, full SVD (as [P1])."""
    if side == "left":
        UX = np.linalg.svd(X, full_matrices=True)[0]
        UY = np.linalg.svd(Y, full_matrices=True)[0]
    else:
        UX = np.linalg.svd(X, full_matrices=True)[2].T
        UY = np.linalg.svd(Y, full_matrices=True)[2].T
    return float(np.linalg.norm(UX[:, :i].T @ UY[:, :j], "fro") ** 2 / min(i, j))


def flat(a):
    return [float(x) for x in np.asarray(a, dtype=np.float64).ravel()]


def make_adapter(base_dir, out_dir, seed, targets, r=4, alpha=8):
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(base_dir)
    cfg = LoraConfig(task_type="SEQ_CLS", r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets)
    pm = get_peft_model(model, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.5)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    pm.save_pretrained(out_dir, safe_serialization=True)
    for f in os.listdir(out_dir):  # keep only what an adapter directory needs
        if f not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(out_dir, f))


def lora_weights(adir, nlayers, modules):
    t = load_file(os.path.join(adir, "adapter_model.safetensors"))
    res = {}
    for m in modules:
        for l in range(nlayers):
            p = f"base_model.model.bert.encoder.layer.{l}.attention.self.{m}"
            res[(m, l)] = (t[p + ".lora_A.weight"].astype(np.float64), t[p + ".lora_B.weight"].astype(np.float64))
    return res


def main():
    os.chdir(ROOT)
    rng = np.random.default_rng(20240314)
    ref = {}

    # --- linalg: LU solve, condition number, SVD, phi on small generic matrices
    W = rng.standard_normal((6, 6))
    Bm = rng.standard_normal((6, 3))
    X = np.linalg.solve(W, Bm)
    M = rng.standard_normal((7, 5))
    P = rng.standard_normal((7, 5))
    Q = rng.standard_normal((7, 5))
    U, S, Vt = np.linalg.svd(M, full_matrices=True)
    cases = []
    for (i, j, side) in [(1, 1, "left"), (2, 3, "left"), (5, 5, "left"), (3, 2, "right"), (5, 5, "right"), (4, 1, "right")]:
        cases.append({"i": i, "j": j, "side": side, "phi": phi(P, Q, i, j, side)})
    ref["linalg"] = {
        "W": flat(W), "B": flat(Bm), "X": flat(X), "cond1": float(np.linalg.cond(W, 1)),
        "M": flat(M), "M_sv": flat(S), "M_U": flat(U), "M_Vt": flat(Vt),
        "P": flat(P), "Q": flat(Q), "phi_cases": cases,
    }

    # --- a tiny BERT and PEFT adapters
    base = os.path.join(OUT, "tiny-bert")
    torch.manual_seed(1)
    cfg = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=24,
                     max_position_embeddings=16, type_vocab_size=2, num_labels=2)
    if os.path.exists(base):
        shutil.rmtree(base)
    BertForSequenceClassification(cfg).save_pretrained(base, safe_serialization=True)
    make_adapter(base, os.path.join(OUT, "lora-a"), 11, ["query", "value"])
    make_adapter(base, os.path.join(OUT, "lora-b"), 12, ["query", "value"])
    make_adapter(base, os.path.join(OUT, "lora-ffn"), 13, ["query", "intermediate.dense"])

    # AdaLoRA (PEFT's own format: lora_A, lora_B, lora_E without ".weight"), some components pruned (E_i = 0)
    torch.manual_seed(14)
    ada_dir = os.path.join(OUT, "adalora")
    pm = get_peft_model(BertForSequenceClassification.from_pretrained(base),
                        AdaLoraConfig(task_type="SEQ_CLS", init_r=4, target_r=2, lora_alpha=8, target_modules=["value"]))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n or "lora_E" in n:
                p.normal_(0.0, 0.5)
            if "layer.1." in n and "lora_E" in n:
                p[2] = 0.0
            if "layer.3." in n and "lora_E" in n:
                p[0] = 0.0
                p[3] = 0.0
    if os.path.exists(ada_dir):
        shutil.rmtree(ada_dir)
    pm.save_pretrained(ada_dir, safe_serialization=True)
    for f in os.listdir(ada_dir):
        if f not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(ada_dir, f))

    bw = load_file(os.path.join(base, "model.safetensors"))
    N, r = cfg.num_hidden_layers, 4
    mods = ["query", "value"]
    la = lora_weights(os.path.join(OUT, "lora-a"), N, mods)
    lb = lora_weights(os.path.join(OUT, "lora-b"), N, mods)
    conv = {"r": r, "layers": N, "modules": {}}
    for m in mods:
        CA, CB, CBA, conds = [], [], [], []
        for l in range(N):
            W0 = bw[f"bert.encoder.layer.{l}.attention.self.{m}.weight"].astype(np.float64)
            A, B = la[(m, l)]
            CA.append(np.linalg.solve(W0, A.T))
            CB.append(np.linalg.solve(W0, B))
            CBA.append(np.linalg.solve(W0, B @ A))
            conds.append(float(np.linalg.cond(W0, 1)))
        ent = {"cond1": conds, "C_A": [flat(c) for c in CA], "C_B": [flat(c) for c in CB],
               "C_BA_layer0": flat(CBA[0])}
        for name, mats in (("A", CA), ("B", CB), ("BA", CBA)):
            ent["phi_" + name] = [[phi(mats[a], mats[b], r, r, "left") for b in range(N)] for a in range(N)]
        # a non-default setting: right singular vectors of C_A, i = 2, j = 3
        ent["phi_A_right_2_3"] = [[phi(CA[a], CA[b], 2, 3, "right") for b in range(N)] for a in range(N)]
        conv["modules"][m] = ent
    ref["conversion"] = conv

    sim = {}
    for m in mods:
        sA, sB, sBA = [], [], []
        for l in range(N):
            A1, B1 = la[(m, l)]
            A2, B2 = lb[(m, l)]
            sA.append(phi(A1, A2, r, r, "right"))
            sB.append(phi(B1, B2, r, r, "left"))
            sBA.append(phi(B1 @ A1, B2 @ A2, r, r, "left"))
        sim[m] = {"A": sA, "B": sB, "BA": sBA}
    ref["similarity"] = sim

    # AdaLoRA: A_eff = diag(E) A restricted to E_i != 0, B restricted to the same columns
    t = load_file(os.path.join(ada_dir, "adapter_model.safetensors"))
    CA, CB, ranks = [], [], []
    for l in range(N):
        p = f"base_model.model.bert.encoder.layer.{l}.attention.self.value"
        A = t[p + ".lora_A"].astype(np.float64)
        B = t[p + ".lora_B"].astype(np.float64)
        E = t[p + ".lora_E"].astype(np.float64).ravel()
        keep = E != 0
        A = (E[:, None] * A)[keep]
        B = B[:, keep]
        W0 = bw[f"bert.encoder.layer.{l}.attention.self.value.weight"].astype(np.float64)
        CA.append(np.linalg.solve(W0, A.T))
        CB.append(np.linalg.solve(W0, B))
        ranks.append(int(keep.sum()))
    ref["adalora"] = {
        "ranks": ranks, "C_A": [flat(c) for c in CA], "C_B": [flat(c) for c in CB],
        "phi_A": [[phi(CA[a], CA[b], ranks[a], ranks[b], "left") for b in range(N)] for a in range(N)],
        "phi_B": [[phi(CB[a], CB[b], ranks[a], ranks[b], "left") for b in range(N)] for a in range(N)],
    }

    with open(os.path.join(OUT, "ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
