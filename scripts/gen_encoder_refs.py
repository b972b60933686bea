#!/usr/bin/env python3
"""Reference tensors for tests/test_encoder.c, computed by Hugging Face transformers (torch, fp32).

Builds tiny random RobertaForSequenceClassification and BertForSequenceClassification models (2 and 1 labels, one
with the tanh GELU), saves each as a model directory (config.json + model.safetensors) under tests/data/encoder/NAME,
runs one padded batch in eval mode with labels, and writes NAME/ref.safetensors with:
  input_ids, token_type_ids, lengths, labels | targets   the batch (int32 / float32)
  logits, loss, hidden_states (L+1, B, T, H)
  grad.<parameter name>                                   gradients of the head's parameters (the only trainable ones)
  input_embeds_grad (B, T, H)                             d loss / d (word embedding output)

With --minilm DIR (a directory holding all-MiniLM-L6-v2's config.json + model.safetensors or pytorch_model.bin, and
vocab.txt) it also writes tests/data/encoder/minilm_ref.safetensors: 16 GLUE sentences (SST-2 dev) tokenized with the
model's BertTokenizer, their padded ids/lengths and the last hidden states.

Run: /usr/bin/python3 scripts/gen_encoder_refs.py [--minilm DIR]
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "encoder")


def perturb_layernorms(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif "LayerNorm.bias" in name or name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def make_batch(cfg, arch, gen, lengths):
    B, T = len(lengths), max(lengths)
    pad = cfg.pad_token_id
    ids = torch.full((B, T), pad, dtype=torch.long)
    types = torch.zeros((B, T), dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(3, cfg.vocab_size, (n,), generator=gen)
        ids[b, 0] = 0 if arch == "roberta" else 2  # <s> / [CLS]-like
        if arch == "bert":
            cut = n // 2
            types[b, cut:n] = 1
    mask = torch.zeros((B, T), dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    return ids, types, mask


def run_one(name, arch, cfg, lengths, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cls = RobertaForSequenceClassification if arch == "roberta" else BertForSequenceClassification
    model = cls(cfg)
    perturb_layernorms(model, gen)
    model.eval()
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)

    ids, types, mask = make_batch(cfg, arch, gen, lengths)
    B = len(lengths)
    if cfg.num_labels == 1:
        labels = torch.randn(B, generator=gen) * 1.5
    else:
        labels = torch.randint(0, cfg.num_labels, (B,), generator=gen)

    for n_, p in model.named_parameters():
        p.requires_grad_(n_.startswith("classifier") or "pooler" in n_)
    captured = {}

    def hook(mod, inp, out):
        out = out.detach().requires_grad_(True)
        out.retain_grad()
        captured["emb"] = out
        return out

    base = model.roberta if arch == "roberta" else model.bert
    h = base.embeddings.word_embeddings.register_forward_hook(hook)
    kw = dict(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
    if arch == "bert":
        kw["token_type_ids"] = types
    out = model(**kw)
    out.loss.backward()
    h.remove()

    t = {
        "input_ids": ids.to(torch.int32),
        "token_type_ids": types.to(torch.int32),
        "lengths": torch.tensor(lengths, dtype=torch.int32),
        "logits": out.logits.detach().float().contiguous(),
        "loss": out.loss.detach().reshape(1).float(),
        "hidden_states": torch.stack([x.detach() for x in out.hidden_states]).contiguous(),
        "input_embeds_grad": captured["emb"].grad.detach().contiguous(),
    }
    if cfg.num_labels == 1:
        t["targets"] = labels.float()
    else:
        t["labels"] = labels.to(torch.int32)
    for n_, p in model.named_parameters():
        if p.requires_grad:
            key = n_.split(".", 1)[1] if n_.startswith(("roberta.", "bert.")) else n_
            t["grad." + key] = p.grad.detach().contiguous()
    save_file(t, os.path.join(d, "ref.safetensors"))
    print(f"{name}: loss {out.loss.item():.6f}, logits {tuple(out.logits.shape)}, {len(t)} tensors")


def tiny_models():
    common = dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.2)
    rob = dict(vocab_size=64, max_position_embeddings=24, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
               eos_token_id=2, layer_norm_eps=1e-5, num_attention_heads=4, **common)
    run_one("roberta_cls", "roberta",
            RobertaConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_labels=2, **rob),
            [7, 12, 4], 1)
    run_one("roberta_reg", "roberta",
            RobertaConfig(hidden_size=32, num_hidden_layers=3, intermediate_size=48, num_labels=1, **rob),
            [9, 5, 11, 3], 2)
    bert = dict(vocab_size=64, max_position_embeddings=20, type_vocab_size=2, pad_token_id=0, layer_norm_eps=1e-12,
                num_attention_heads=4, **common)
    run_one("bert_cls", "bert",
            BertConfig(hidden_size=48, num_hidden_layers=3, intermediate_size=96, num_labels=2, **bert),
            [6, 10, 3], 3)
    run_one("bert_reg_tanh", "bert",
            BertConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_labels=1, hidden_act="gelu_new",
                       **bert), [8, 2, 5], 4)


def minilm(dirname):
    from transformers import BertModel, BertTokenizer
    model = BertModel.from_pretrained(dirname).eval()
    tok = BertTokenizer.from_pretrained(dirname)
    path = os.path.join(os.path.dirname(OUT), "..", "..", "..", "shared", "data", "glue", "SST-2", "dev.tsv")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t")[0] for line in f][1:]
    sents = [s for s in rows if len(tok.tokenize(s)) <= 14][:16]
    enc = tok(sents, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    lengths = enc["attention_mask"].sum(1).to(torch.int32)
    save_file({"input_ids": enc["input_ids"].to(torch.int32).contiguous(),
               "token_type_ids": enc["token_type_ids"].to(torch.int32).contiguous(),
               "lengths": lengths, "last_hidden_state": out.last_hidden_state.contiguous()},
              os.path.join(OUT, "minilm_ref.safetensors"))
    print(f"minilm: {len(sents)} sentences, T = {enc['input_ids'].shape[1]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", help="directory of all-MiniLM-L6-v2 (config.json, weights, vocab.txt)")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    tiny_models()
    if a.minilm:
        minilm(a.minilm)
