#!/usr/bin/python3
"""Generates tests/data/peft/: PEFT adapter directories and PEFT's logits for tests/test_peft.c.

Run: /usr/bin/python3 scripts/gen_peft_refs.py [--mpnet]   (torch 1.13, transformers 4.40, peft 0.10, safetensors;
CPU, deterministic, a few seconds). Without arguments it deletes tests/data/peft and writes everything below;
--mpnet writes only the MPNet outputs (mpnet/, mpnet_lora/, mpnet_o/, refs_mpnet.safetensors), replacing just those
and leaving the rest of tests/data/peft alone. The MPNet part seeds itself, so both ways give the same tensors
(target_modules in adapter_config.json is a Python set that PEFT lists in hash order, which can vary between runs).

Outputs (all written by the real libraries: transformers' save_pretrained(safe_serialization=True) for the base
models, PeftModel.save_pretrained for the adapters):
  bert/            BertForSequenceClassification, hidden 32, 2 layers, 2 heads, FFN 64, the 378-token vocabulary of
                   tests/data/tokenizer/tiny_wordpiece (tokenizer.json copied), 2 labels
  roberta/         RobertaForSequenceClassification of the same sizes (vocab 378, positions 66), 2 labels
  bert_lora/       LoRA r 4, alpha 8, query + value
  bert_pattern/    LoRA r 4, alpha 8, use_rslora, target_modules [query, value, intermediate.dense, output.dense]
                   ("output.dense" also names attention.output.dense as a suffix), rank_pattern
                   {"layer.0.attention.self.value": 2, "intermediate.dense": 6}, alpha_pattern
                   {"layer.1.output.dense": 3, "intermediate.dense": 12}
  bert_regex/      LoRA r 3, alpha 6, target_modules as a regex string: layer 1's key and value only
  bert_layers/     LoRA r 4, alpha 16, [query, key] with layers_to_transform [1]
  bert_adalora/    AdaLoRA init_r 6, target_r 4, alpha 8, query + value (lora_E random, not zero)
  roberta_lora/    LoRA r 4, alpha 8, query, value, attention.output.dense
Every adapter has random (non-zero) A, B (and E) and a perturbed head (modules_to_save "classifier").
  mpnet/           MPNetForSequenceClassification of the same sizes (vocab 378, positions 66, pad 1, 2 labels), its
                   encoder.relative_attention_bias.weight redrawn with std 2 (no tokenizer.json: tiny_wordpiece's
                   specials are BERT's, [PAD] 0, which do not fit MPNet's pad id 1)
  mpnet_lora/      LoRA r 4, alpha 8, target_modules [q, v]
  mpnet_o/         LoRA r 4, alpha 8, target_modules [q, k, v, o] ("o" is the attention output only)
  refs.safetensors
    bert.input_ids, bert.lengths (I32)     a padded batch of 3 sequences (lengths 7, 4, 9), BERT token types 0/1
    bert.token_type_ids (I32)
    roberta.input_ids, roberta.lengths     the same for RoBERTa (pad id 1, no token types)
    logits.<name>                          PEFT's logits (eval mode) for every adapter above, and logits.bert /
                                           logits.roberta for the base models alone
  refs_mpnet.safetensors
    mpnet.input_ids, mpnet.lengths (I32)   a padded batch of 3 sequences (lengths 7, 4, 9; pad id 1, <s> 0 first)
    logits.mpnet, logits.mpnet_lora, logits.mpnet_o
"""
import argparse
import json
import os
import shutil

import torch
from peft import AdaLoraConfig, LoraConfig, PeftModel, TaskType, get_peft_model
from safetensors.torch import save_file
from transformers import (AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification,
                          MPNetConfig, MPNetForSequenceClassification, RobertaConfig, RobertaForSequenceClassification)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "data", "peft")
TOK = os.path.join(ROOT, "tests", "data", "tokenizer", "tiny_wordpiece", "tokenizer.json")


def perturb(model, gen, std=0.1):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + std * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(std * torch.randn(p.shape, generator=gen))


def base_model(arch, gen):
    common = dict(vocab_size=378, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  hidden_act="gelu", initializer_range=0.2, num_labels=2)
    if arch == "bert":
        cfg = BertConfig(max_position_embeddings=64, type_vocab_size=2, pad_token_id=0, **common)
        m = BertForSequenceClassification(cfg)
    elif arch == "mpnet":
        cfg = MPNetConfig(max_position_embeddings=66, pad_token_id=1, bos_token_id=0, eos_token_id=2, **common)
        m = MPNetForSequenceClassification(cfg)
    else:
        cfg = RobertaConfig(max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
                            eos_token_id=2, **common)
        m = RobertaForSequenceClassification(cfg)
    perturb(m, gen)
    if arch == "mpnet":  # a relative-attention bias large enough to matter
        w = m.mpnet.encoder.relative_attention_bias.weight
        with torch.no_grad():
            w.copy_(2.0 * torch.randn(w.shape, generator=gen))
    m.eval()
    d = os.path.join(OUT, arch)
    m.save_pretrained(d, safe_serialization=True)
    if arch == "bert":
        shutil.copy(TOK, os.path.join(d, "tokenizer.json"))
    return d


def batch(arch, gen):
    lengths = [7, 4, 9]
    B, T = len(lengths), max(lengths)
    pad = 0 if arch == "bert" else 1
    ids = torch.full((B, T), pad, dtype=torch.long)
    types = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, T), dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(5, 378, (n,), generator=gen)
        ids[b, 0] = 2 if arch == "bert" else 0
        mask[b, :n] = 1
        if arch == "bert":
            types[b, n // 2:n] = 1
    return ids, types, mask, torch.tensor(lengths, dtype=torch.int32)


def logits_of(model, arch, ids, types, mask):
    with torch.no_grad():
        kw = dict(input_ids=ids, attention_mask=mask)
        if arch == "bert":
            kw["token_type_ids"] = types
        return model(**kw).logits.float().contiguous()


def save_peft(model, d):
    """PeftModel.save_pretrained, keeping only the adapter files (a README.md is made first: PEFT would otherwise
    render a model card, which needs Jinja2)."""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write("---\nlibrary_name: peft\n---\n")
    model.save_pretrained(d, safe_serialization=True)
    for f in os.listdir(d):
        if f not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(d, f))


def make_adapter(name, arch, base_dir, config, gen, data):
    base = AutoModelForSequenceClassification.from_pretrained(base_dir)
    model = get_peft_model(base, config)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif "modules_to_save" in n:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
    model.eval()
    d = os.path.join(OUT, name)
    save_peft(model, d)
    # what PEFT itself reloads from the directory
    again = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base_dir), d)
    again.eval()
    lg = logits_of(again, arch, *data)
    assert torch.allclose(lg, logits_of(model, arch, *data), atol=1e-6), name
    return lg


def fix_base_path(name, arch):
    """the adapter_config.json PEFT wrote names an absolute base path: keep the files machine-independent"""
    p = os.path.join(OUT, name, "adapter_config.json")
    with open(p) as f:
        c = json.load(f)
    c["base_model_name_or_path"] = f"tests/data/peft/{arch}"
    with open(p, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")


def mpnet_part():
    """mpnet/, mpnet_lora/, mpnet_o/ and refs_mpnet.safetensors (replaced; nothing else in OUT is touched)"""
    torch.manual_seed(7)
    gen = torch.Generator().manual_seed(4321)
    for name in ("mpnet", "mpnet_lora", "mpnet_o"):
        if os.path.isdir(os.path.join(OUT, name)):
            shutil.rmtree(os.path.join(OUT, name))
    os.makedirs(OUT, exist_ok=True)
    refs = {}
    base = base_model("mpnet", gen)
    ids, types, mask, lengths = batch("mpnet", gen)
    data = (ids, types, mask)
    refs["mpnet.input_ids"] = ids.to(torch.int32)
    refs["mpnet.lengths"] = lengths
    m = AutoModelForSequenceClassification.from_pretrained(base)
    m.eval()
    refs["logits.mpnet"] = logits_of(m, "mpnet", ids, types, mask)
    seq = TaskType.SEQ_CLS
    adapters = {
        "mpnet_lora": LoraConfig(task_type=seq, r=4, lora_alpha=8, target_modules=["q", "v"]),
        "mpnet_o": LoraConfig(task_type=seq, r=4, lora_alpha=8, target_modules=["q", "k", "v", "o"]),
    }
    for name, cfg in adapters.items():
        refs[f"logits.{name}"] = make_adapter(name, "mpnet", base, cfg, gen, data)
        fix_base_path(name, "mpnet")
    save_file({k: v.contiguous() for k, v in refs.items()}, os.path.join(OUT, "refs_mpnet.safetensors"))
    for k in sorted(refs):
        if k.startswith("logits."):
            print(k, refs[k].tolist())


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    refs = {}
    bert = base_model("bert", gen)
    roberta = base_model("roberta", gen)
    data = {}
    for arch in ("bert", "roberta"):
        ids, types, mask, lengths = batch(arch, gen)
        data[arch] = (ids, types, mask)
        refs[f"{arch}.input_ids"] = ids.to(torch.int32)
        refs[f"{arch}.lengths"] = lengths
        if arch == "bert":
            refs["bert.token_type_ids"] = types.to(torch.int32)
        m = AutoModelForSequenceClassification.from_pretrained(bert if arch == "bert" else roberta)
        m.eval()
        refs[f"logits.{arch}"] = logits_of(m, arch, ids, types, mask)

    seq = TaskType.SEQ_CLS
    adapters = {
        "bert_lora": ("bert", LoraConfig(task_type=seq, r=4, lora_alpha=8, target_modules=["query", "value"])),
        "bert_pattern": ("bert", LoraConfig(task_type=seq, r=4, lora_alpha=8, use_rslora=True,
                                            target_modules=["query", "value", "intermediate.dense", "output.dense"],
                                            rank_pattern={"layer.0.attention.self.value": 2, "intermediate.dense": 6},
                                            alpha_pattern={"layer.1.output.dense": 3, "intermediate.dense": 12})),
        "bert_regex": ("bert", LoraConfig(task_type=seq, r=3, lora_alpha=6,
                                          target_modules=r".*\.layer\.1\.attention\.self\.(key|value)")),
        "bert_layers": ("bert", LoraConfig(task_type=seq, r=4, lora_alpha=16, target_modules=["query", "key"],
                                           layers_to_transform=[1])),
        "bert_adalora": ("bert", AdaLoraConfig(task_type=seq, init_r=6, target_r=4, lora_alpha=8,
                                               target_modules=["query", "value"])),
        "roberta_lora": ("roberta", LoraConfig(task_type=seq, r=4, lora_alpha=8,
                                               target_modules=["query", "value", "attention.output.dense"])),
    }
    for name, (arch, cfg) in adapters.items():
        refs[f"logits.{name}"] = make_adapter(name, arch, bert if arch == "bert" else roberta, cfg, gen, data[arch])
        fix_base_path(name, arch)
    save_file({k: v.contiguous() for k, v in refs.items()}, os.path.join(OUT, "refs.safetensors"))
    for k in sorted(refs):
        if k.startswith("logits."):
            print(k, refs[k].tolist())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpnet", action="store_true", help="write only the MPNet outputs (no rmtree of tests/data/peft)")
    if not ap.parse_args().mpnet:
        main()
    mpnet_part()
