#!/usr/bin/python3
"""Generates tests/data/adapters/: reference values for the adapter tests, computed by the real peers.

Run: /usr/bin/python3 scripts/gen_adapter_refs.py [--mpnet]   (torch 1.13, transformers 4.40, peft 0.10,
safetensors; deterministic, CPU, a few seconds). Without arguments it writes everything below; --mpnet writes only the
MPNet outputs (tiny_mpnet/, refs_mpnet.safetensors) and leaves tiny_roberta/ and refs.safetensors alone. The MPNet
part seeds itself, so both ways give the same bytes.

Outputs:
  tiny_roberta/           RobertaForSequenceClassification (hidden 16, 2 layers, 2 heads, FFN 24, vocab 50,
                          2 labels), config.json + model.safetensors (transformers save_pretrained)
  refs.safetensors        (all float32 unless noted)
    input_ids, attention_mask, labels (I32)   a batch of 2 x 6 with padding in the second sequence
    base.logits                               the model without adapters (eval mode: no dropout)
    lora.*                                    PEFT LoRA (SEQ_CLS, query+value, r 4, alpha 8) with NON-ZERO B set
                                              explicitly: the PEFT key names of every lora_A / lora_B (values),
                                              lora.logits, lora.loss (cross-entropy mean),
                                              lora.grad.<PEFT key> for every A, B and the head
                                              (base_model.model.classifier.dense.weight ...)
    cond.*                                    CondLoRA written directly in PyTorch (released-code form,
                                              A_l = ThA W^T, B_l = W ThB^T, s = alpha / r), query+value, r 4,
                                              alpha 8, ThA and ThB random (non-zero): cond.theta.<module>.A|B,
                                              cond.logits, cond.loss, cond.grad.<module>.A|B, cond.grad.<head key>
    condp.*                                   same in the paper form (B_l = W^T ThB^T)
    ada.*                                     PEFT AdaLoRA RankAllocator replay: init_r 4, target_r 2, tinit 1,
                                              tfinal 2, deltaT 2, total_step 10 on query+value of the tiny model.
                                              For steps 1..10, parameters and gradients of every lora_A/B/E are set
                                              to random values (ada.s<step>.p.<key>, ada.s<step>.g.<key>), then
                                              AdaLoraModel.update_and_allocate(step) runs; ada.s<step>.E.<key> is
                                              every lora_E afterwards. ada.budget[t] = budget_schedule(t).
    single.*                                  one linear layer (layer 1 value): x (5, 16), R, W, b; PEFT lora.Linear
                                              with the lora.* A, B: y, dx, dA, dB of sum(y * R); CondLoRA code
                                              (single.cond.*) and paper (single.condp.*) forms with cond.theta.value:
                                              y, dx, dThA, dThB
    adamw.*                                   torch.optim.AdamW (lr 1e-2, betas (0.9, 0.999), eps 1e-8,
                                              weight_decay 0.1) for 3 steps on a 37-vector, with
                                              clip_grad_norm_(max_norm 0.5) before each: adamw.p0, adamw.g<k>,
                                              adamw.p<k>, adamw.norm<k>
  tiny_mpnet/             MPNetForSequenceClassification (hidden 16, 2 layers, 2 heads, FFN 24, vocab 50, positions 40,
                          layer_norm_eps 1e-5, dropout 0, 2 labels, LayerNorm affine perturbed), with
                          encoder.relative_attention_bias.weight redrawn with std 2 (so a missing or transposed bias
                          shows), config.json + model.safetensors (save_pretrained)
  refs_mpnet.safetensors  the same key scheme as refs.safetensors for the MPNet counterparts (no ada.*, single.*,
                          adamw.*, which do not depend on the architecture):
    input_ids, attention_mask, labels, lengths (I32)   3 x 22, lengths [22, 6, 13] (right padding with id 1; <s> 0
                                              first, </s> 2 last)
    base.logits
    lora.*                                    PEFT LoRA SEQ_CLS, target_modules ["q", "v"], r 4, alpha 8, non-zero B:
                                              lora.base_model.model.mpnet.encoder.layer.L.attention.attn.{q,v}.lora_{A,B}
                                              .weight, lora.logits, lora.loss, lora.grad.<PEFT key> (A, B and head)
    cond.*, condp.*                           CondLoRA (code / paper form) on q and v, r 4, alpha 8:
                                              cond.theta.{q,v}.A|B, cond.logits, cond.loss, cond.grad.{q,v}.A|B,
                                              cond.grad.base_model.model.classifier.{dense,out_proj}.{weight,bias}
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import MPNetConfig, MPNetForSequenceClassification, RobertaConfig, RobertaForSequenceClassification
from peft import LoraConfig, AdaLoraConfig, get_peft_model, TaskType

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "adapters")


def lora_refs(model, targets, batch, out):
    """PEFT LoRA (SEQ_CLS, r 4, alpha 8) on TARGETS with NON-ZERO A and B: lora.logits, lora.loss, the values of
    every lora_A / lora_B and lora.grad.<PEFT key> of every trainable tensor (head included), into OUT. Returns the
    PeftModel."""
    pm = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, lora_dropout=0.0,
                                          target_modules=targets)).eval()
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_A" in n or "lora_B" in n:
                p.copy_(0.3 * torch.randn_like(p))
    o = pm(**batch)
    o.loss.backward()
    out["lora.logits"] = o.logits.detach()
    out["lora.loss"] = o.loss.detach().reshape(1)
    for n, p in pm.named_parameters():
        if not p.requires_grad:
            continue
        key = n.replace(".default", "").replace(".modules_to_save", "").replace(".original_module", "")
        if "lora_" in n:
            out["lora." + key] = p.detach().clone()
        out["lora.grad." + key] = p.grad.detach().clone()
    return pm


def condlora_refs(m, layers, attn_of, mods, head, r, alpha, paper, batch, out):
    """CondLoRA written directly in PyTorch (released-code form A_l = ThA W^T, B_l = W ThB^T; paper form
    B_l = W^T ThB^T), s = alpha / r, on modules MODS of each layer's attention (attn_of(layer)); the head trainable.
    Writes cond.* (or condp.*) into OUT: logits, loss, theta.<mod>.A|B, grad.<mod>.A|B, grad.<head key>."""
    for p in m.parameters():
        p.requires_grad_(False)
    for n in head:
        m.get_parameter(n).requires_grad_(True)
    d = m.config.hidden_size
    theta = {mod: (torch.nn.Parameter(0.3 * torch.randn(r, d)), torch.nn.Parameter(0.3 * torch.randn(r, d)))
             for mod in mods}
    sc = alpha / r

    def make(lin, mod):
        ThA, ThB = theta[mod]

        def fwd(x):
            W = lin.weight
            A = ThA @ W.T
            Bm = (W.T if paper else W) @ ThB.T
            return F.linear(x, W, lin.bias) + sc * (x @ A.T) @ Bm.T
        return fwd

    for layer in layers:
        for mod in mods:
            lin = getattr(attn_of(layer), mod)
            lin.forward = make(lin, mod)
    o = m(**batch)
    o.loss.backward()
    pre = "condp." if paper else "cond."
    out[pre + "logits"] = o.logits.detach()
    out[pre + "loss"] = o.loss.detach().reshape(1)
    for mod, (ThA, ThB) in theta.items():
        out[pre + "theta.%s.A" % mod] = ThA.detach().clone()
        out[pre + "theta.%s.B" % mod] = ThB.detach().clone()
        out[pre + "grad.%s.A" % mod] = ThA.grad.detach().clone()
        out[pre + "grad.%s.B" % mod] = ThB.grad.detach().clone()
    for n in head:
        out[pre + "grad.base_model.model." + n] = m.get_parameter(n).grad.detach().clone()


def mpnet_refs():
    """tiny_mpnet/ and refs_mpnet.safetensors: base, PEFT LoRA (q, v) and both CondLoRA forms on a tiny MPNet."""
    torch.manual_seed(4321)
    out = {}
    mcfg = MPNetConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                       max_position_embeddings=40, pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=2,
                       hidden_act="gelu", initializer_range=0.2, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5, relative_attention_num_buckets=32)
    m0 = MPNetForSequenceClassification(mcfg).eval()
    with torch.no_grad():
        for n, p in m0.named_parameters():
            if "LayerNorm" in n:
                p.add_(0.1 * torch.randn_like(p))
        w = m0.mpnet.encoder.relative_attention_bias.weight
        w.copy_(2.0 * torch.randn_like(w))
    m0.save_pretrained(os.path.join(OUT, "tiny_mpnet"), safe_serialization=True)
    msd = {k: v.clone() for k, v in m0.state_dict().items()}

    def mfresh():
        m = MPNetForSequenceClassification(mcfg).eval()
        m.load_state_dict(msd)
        return m

    lengths = [22, 6, 13]
    B, T = len(lengths), max(lengths)
    mids = torch.full((B, T), 1, dtype=torch.long)
    mmask = torch.zeros((B, T), dtype=torch.long)
    for b, n in enumerate(lengths):
        mids[b, :n] = torch.randint(3, mcfg.vocab_size, (n,))
        mids[b, 0], mids[b, n - 1] = 0, 2
        mmask[b, :n] = 1
    mlabels = torch.tensor([1, 0, 1], dtype=torch.long)
    out["input_ids"] = mids.to(torch.int32)
    out["attention_mask"] = mmask.to(torch.int32)
    out["labels"] = mlabels.to(torch.int32)
    out["lengths"] = torch.tensor(lengths, dtype=torch.int32)
    with torch.no_grad():
        out["base.logits"] = m0(input_ids=mids, attention_mask=mmask).logits.float()
        zb = mfresh()
        zb.mpnet.encoder.relative_attention_bias.weight.zero_()
        print("tiny_mpnet: max |d base.logits| with the bias zeroed: %.4f (max |logit| %.4f)" % (
            (zb(input_ids=mids, attention_mask=mmask).logits - out["base.logits"]).abs().max().item(),
            out["base.logits"].abs().max().item()))

    # PEFT LoRA, q + v, non-zero B
    lora_refs(mfresh(), ["q", "v"], dict(input_ids=mids, attention_mask=mmask, labels=mlabels), out)

    # CondLoRA in plain PyTorch, q + v
    head = ["classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight",
            "classifier.out_proj.bias"]
    for paper in (False, True):
        m = mfresh()
        condlora_refs(m, m.mpnet.encoder.layer, lambda layer: layer.attention.attn, ("q", "v"), head, 4, 8, paper,
                      dict(input_ids=mids, attention_mask=mmask, labels=mlabels), out)

    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "refs_mpnet.safetensors"))
    print("wrote", len(out), "tensors to", os.path.join(OUT, "refs_mpnet.safetensors"))


_ap = argparse.ArgumentParser()
_ap.add_argument("--mpnet", action="store_true", help="write only tiny_mpnet/ and refs_mpnet.safetensors")
if _ap.parse_args().mpnet:
    os.makedirs(OUT, exist_ok=True)
    mpnet_refs()
    sys.exit(0)
torch.manual_seed(1234)
os.makedirs(OUT, exist_ok=True)
refs = {}

cfg = RobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                    max_position_embeddings=24, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                    num_labels=2, hidden_act="gelu", initializer_range=0.2, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5)
base = RobertaForSequenceClassification(cfg).eval()
with torch.no_grad():  # non-trivial LayerNorm affine parameters
    for n, p in base.named_parameters():
        if "LayerNorm" in n:
            p.add_(0.1 * torch.randn_like(p))
base.save_pretrained(os.path.join(OUT, "tiny_roberta"), safe_serialization=True)
sd0 = {k: v.clone() for k, v in base.state_dict().items()}

ids = torch.tensor([[0, 5, 17, 23, 9, 2], [0, 44, 8, 2, 1, 1]], dtype=torch.long)
mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.long)
labels = torch.tensor([1, 0], dtype=torch.long)
refs["input_ids"] = ids.to(torch.int32)
refs["attention_mask"] = mask.to(torch.int32)
refs["labels"] = labels.to(torch.int32)
with torch.no_grad():
    refs["base.logits"] = base(input_ids=ids, attention_mask=mask).logits.float()

HEAD = ["classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"]


def fresh():
    m = RobertaForSequenceClassification(cfg).eval()
    m.load_state_dict(sd0)
    return m


# ---- PEFT LoRA with non-zero B -------------------------------------------------------------------------------
R, ALPHA = 4, 8
pm = lora_refs(fresh(), ["query", "value"], dict(input_ids=ids, attention_mask=mask, labels=labels), refs)


# ---- CondLoRA in plain PyTorch -------------------------------------------------------------------------------
def condlora(paper):
    m = fresh()
    condlora_refs(m, m.roberta.encoder.layer, lambda layer: layer.attention.self, ("query", "value"), HEAD, R, ALPHA,
                  paper, dict(input_ids=ids, attention_mask=mask, labels=labels), refs)


condlora(False)
condlora(True)

# ---- single linear layer (layer 1 value of the tiny model): PEFT's lora.Linear and the CondLoRA formulas -------
x1, R1 = torch.randn(5, 16), torch.randn(5, 16)
lin = pm.base_model.model.roberta.encoder.layer[1].attention.self.value
refs["single.x"], refs["single.R"] = x1, R1
refs["single.W"] = lin.base_layer.weight.detach().clone()
refs["single.b"] = lin.base_layer.bias.detach().clone()
pm.zero_grad()
xx = x1.clone().requires_grad_(True)
y = lin(xx)
(y * R1).sum().backward()
refs["single.lora.y"], refs["single.lora.dx"] = y.detach(), xx.grad.clone()
refs["single.lora.dA"] = lin.lora_A["default"].weight.grad.clone()
refs["single.lora.dB"] = lin.lora_B["default"].weight.grad.clone()
for paper in (False, True):
    W, b = refs["single.W"], refs["single.b"]
    ThA = refs["cond.theta.value.A"].clone().requires_grad_(True)
    ThB = refs["cond.theta.value.B"].clone().requires_grad_(True)
    xx = x1.clone().requires_grad_(True)
    A = ThA @ W.T
    B = (W.T if paper else W) @ ThB.T
    y = F.linear(xx, W, b) + (ALPHA / R) * (xx @ A.T) @ B.T
    (y * R1).sum().backward()
    pre = "single.condp." if paper else "single.cond."
    refs[pre + "y"], refs[pre + "dx"], refs[pre + "dThA"], refs[pre + "dThB"] = y.detach(), xx.grad, ThA.grad, ThB.grad

# ---- AdaLoRA RankAllocator replay ----------------------------------------------------------------------------
TOTAL = 10
acfg = AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=4, target_r=2, tinit=1, tfinal=2, deltaT=2, beta1=0.85,
                     beta2=0.85, orth_reg_weight=0.5, total_step=TOTAL, lora_alpha=8, lora_dropout=0.0,
                     target_modules=["query", "value"])
am = get_peft_model(fresh(), acfg)
alloc = am.base_model.rankallocator
refs["ada.budget"] = torch.tensor([alloc.budget_schedule(t)[0] for t in range(TOTAL + 1)], dtype=torch.int32)
refs["ada.maskind"] = torch.tensor([int(alloc.budget_schedule(t)[1]) for t in range(TOTAL + 1)], dtype=torch.int32)
names = [n for n, p in am.named_parameters() if "lora_" in n]
for step in range(1, TOTAL + 1):
    with torch.no_grad():
        for n, p in am.named_parameters():
            if "lora_" in n:
                key = n.replace(".default", "")
                if "lora_E" in n:  # keep the masked entries masked, as training would not revive them exactly
                    newp = torch.randn_like(p)
                    newp[p == 0] = 0
                    p.copy_(newp)
                else:
                    p.copy_(torch.randn_like(p))
                p.grad = torch.randn_like(p)
                refs["ada.s%d.p.%s" % (step, key)] = p.detach().clone()
                refs["ada.s%d.g.%s" % (step, key)] = p.grad.detach().clone()
    am.base_model.update_and_allocate(step)
    for n, p in am.named_parameters():
        if "lora_E" in n:
            refs["ada.s%d.E.%s" % (step, n.replace(".default", ""))] = p.detach().clone()

# AdaLoRA orthogonal regulariser value + gradient (AdaLoraModel.forward adds it to the loss)
am.zero_grad()
o = am(input_ids=ids, attention_mask=mask, labels=labels)
with torch.no_grad():
    task = F.cross_entropy(o.logits, labels)
refs["ada.orth"] = (o.loss - task).detach().reshape(1)

# ---- AdamW + clipping ----------------------------------------------------------------------------------------
p = torch.nn.Parameter(torch.randn(37))
refs["adamw.p0"] = p.detach().clone()
opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
for k in range(1, 4):
    p.grad = torch.randn(37) * (0.05 if k == 2 else 1.0)
    refs["adamw.g%d" % k] = p.grad.detach().clone()
    refs["adamw.norm%d" % k] = torch.nn.utils.clip_grad_norm_([p], 0.5).reshape(1).float()
    opt.step()
    refs["adamw.p%d" % k] = p.detach().clone()

save_file({k: v.contiguous() for k, v in refs.items()}, os.path.join(OUT, "refs.safetensors"))
print("wrote", len(refs), "tensors to", OUT)

mpnet_refs()
