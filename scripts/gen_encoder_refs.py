#!/usr/bin/env python3
"""Reference tensors for tests/test_encoder.c, computed by Hugging Face transformers (torch, fp32).

Builds tiny random RobertaForSequenceClassification and BertForSequenceClassification models (2 and 1 labels, one
with the tanh GELU), saves each as a model directory (config.json + model.safetensors) under tests/data/encoder/NAME,
runs one padded batch in eval mode with labels, and writes NAME/ref.safetensors with:
  input_ids, token_type_ids, lengths, labels | targets | multi_targets   the batch (int32 / float32; multi_targets
                                                        (B, num_labels) 0/1 for problem_type multi_label_classification:
                                                        BCEWithLogitsLoss, the mean over B x num_labels)
  logits, loss, hidden_states (L+1, B, T, H)
  grad.<parameter name>                                   gradients of the head's parameters (the only trainable ones)
  input_embeds_grad (B, T, H)                             d loss / d (word embedding output)

MPNet (MPNetForSequenceClassification, the same ref.safetensors contents; token_type_ids all zero for uniformity,
grad keys without the "mpnet." prefix, pad id 1, <s> id 0 first, right padding, hidden_dropout_prob 0.1 = the head's
dropout). encoder.relative_attention_bias.weight is redrawn with std 2 (mpnet_cls) / 1.5 (mpnet_reg), so that a
missing, transposed or reversed bias changes the logits by far more than the test tolerance (the script prints by how
much); the longest sequence has T >= 100, so every log bucket and the clip at 15 are reached:
  mpnet_cls/    hidden 32, 2 layers, 4 heads, FFN 64, vocab 64, max_position_embeddings 130, layer_norm_eps 1e-5,
                2 labels, lengths [105, 9, 37], seed 5
  mpnet_reg/    hidden 24, 2 layers, 3 heads, FFN 48, vocab 64, max_position_embeddings 130, layer_norm_eps default
                (1e-12), 1 label (MSE), lengths [12, 101, 3, 40], seed 6
  mpnet_buckets.safetensors   transformers' MPNetEncoder.relative_position_bucket (num_buckets 32, max_distance 128,
                as compute_position_bias calls it): relative_position (I32, 2049) = key - query = -1024..1024,
                bucket (I32, 2049), and bucket_7x7 (I32, 7 x 7): [i, j] = bucket of (j - i), i the query row, j the
                key column (bucket_7x7[0, 5] = 21, bucket_7x7[5, 0] = 5)

With --minilm DIR (a directory holding all-MiniLM-L6-v2's config.json + model.safetensors or pytorch_model.bin, and
vocab.txt) it also writes tests/data/encoder/minilm_ref.safetensors: 16 GLUE sentences (SST-2 dev) tokenized with the
model's BertTokenizer, their padded ids/lengths and the last hidden states.

With --mpnet DIR (all-mpnet-base-v2: config.json, model.safetensors, tokenizer.json) it also writes
tests/data/encoder/mpnet_ref.safetensors: the first 6 RTE dev sentence pairs of at most 40 tokens (with the specials),
tokenized as pairs (<s> A </s></s> B </s>) by transformers' AutoTokenizer (tokenizer.json), right-padded with id 1:
input_ids, token_type_ids (all zero), lengths (I32) and MPNetModel's last_hidden_state (eval, fp32).

Multi-label heads (problem_type "multi_label_classification"): roberta_multi (4 labels, lengths [8, 3, 11, 6],
seed 7) and mpnet_multi (3 labels, lengths [30, 5, 17], seed 8, bias std 1.5).

--only bert_roberta | mpnet | multi restricts the tiny fixtures to one family (default: all of them).

Run: /usr/bin/python3 scripts/gen_encoder_refs.py [--only bert_roberta|mpnet|multi] [--minilm DIR] [--mpnet DIR]
  (the MPNet fixtures alone: /usr/bin/python3 scripts/gen_encoder_refs.py --only mpnet [--mpnet DIR])
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import (BertConfig, BertForSequenceClassification, MPNetConfig, MPNetForSequenceClassification,
                          RobertaConfig, RobertaForSequenceClassification)
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

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
        ids[b, 0] = 0 if arch in ("roberta", "mpnet") else 2  # <s> / [CLS]-like
        if arch == "bert":
            cut = n // 2
            types[b, cut:n] = 1
    mask = torch.zeros((B, T), dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    return ids, types, mask


def run_one(name, arch, cfg, lengths, seed, bias_std=None):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cls = {"roberta": RobertaForSequenceClassification, "bert": BertForSequenceClassification,
           "mpnet": MPNetForSequenceClassification}[arch]
    model = cls(cfg)
    perturb_layernorms(model, gen)
    if bias_std is not None:  # MPNet: a relative-attention bias large enough to matter
        w = model.mpnet.encoder.relative_attention_bias.weight
        with torch.no_grad():
            w.copy_(bias_std * torch.randn(w.shape, generator=gen))
    model.eval()
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)

    ids, types, mask = make_batch(cfg, arch, gen, lengths)
    B = len(lengths)
    multi = cfg.problem_type == "multi_label_classification"
    if multi:
        labels = (torch.rand(B, cfg.num_labels, generator=gen) < 0.5).float()
    elif cfg.num_labels == 1:
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

    base = getattr(model, arch)  # model.roberta / model.bert / model.mpnet
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
    if multi:
        t["multi_targets"] = labels.contiguous()
    elif cfg.num_labels == 1:
        t["targets"] = labels.float()
    else:
        t["labels"] = labels.to(torch.int32)
    for n_, p in model.named_parameters():
        if p.requires_grad:
            key = n_.split(".", 1)[1] if n_.startswith(("roberta.", "bert.", "mpnet.")) else n_
            t["grad." + key] = p.grad.detach().contiguous()
    save_file(t, os.path.join(d, "ref.safetensors"))
    print(f"{name}: loss {out.loss.item():.6f}, logits {tuple(out.logits.shape)}, {len(t)} tensors")
    if arch == "mpnet":
        bias_sensitivity(name, model, ids, mask, out)


def bias_sensitivity(name, model, ids, mask, out):
    """How far the logits and the last hidden state move when the relative-attention bias is wrong: left out
    (zeroed), transposed (bias[h, j, i], i.e. bucket(i - j) instead of bucket(j - i)), with the bucket index
    reversed (weight row 31 - k for bucket k) or with only the log buckets (|j - i| >= 8) left out ("far 0")."""
    enc = model.mpnet.encoder
    w = enc.relative_attention_bias.weight
    orig_w = w.detach().clone()
    orig_cpb = enc.compute_position_bias
    valid = mask.bool()[:, :, None]
    ref_lg, ref_h = out.logits.detach(), out.hidden_states[-1].detach()

    def variant(label, new_w=None, transpose=False):
        with torch.no_grad():
            if new_w is not None:
                w.copy_(new_w)
            if transpose:
                enc.compute_position_bias = lambda x, *a, **k: orig_cpb(x, *a, **k).transpose(-1, -2).contiguous()
            o = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            w.copy_(orig_w)
            enc.compute_position_bias = orig_cpb
        dl = (o.logits - ref_lg).abs().max().item()
        dh = ((o.hidden_states[-1] - ref_h).abs() * valid).max().item()
        print(f"  {name} bias {label:10s}: max |d logits| {dl:.4f} (max |logit| {ref_lg.abs().max().item():.4f}), "
              f"max |d last hidden| {dh:.4f} (max |h| {(ref_h.abs() * valid).max().item():.4f})")

    variant("zeroed", new_w=torch.zeros_like(orig_w))
    variant("transposed", transpose=True)
    variant("reversed", new_w=orig_w.flip(0))
    far = orig_w.clone()
    far[8:16] = 0
    far[24:32] = 0
    variant("far 0", new_w=far)  # only the log buckets (|j - i| >= 8) left out
    del enc.compute_position_bias  # back to the class method


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


def tiny_mpnet():
    common = dict(vocab_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                  hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.2,
                  relative_attention_num_buckets=32)
    run_one("mpnet_cls", "mpnet",
            MPNetConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, num_labels=2,
                        layer_norm_eps=1e-5, **common), [105, 9, 37], 5, bias_std=2.0)
    run_one("mpnet_reg", "mpnet",
            MPNetConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48, num_labels=1,
                        **common), [12, 101, 3, 40], 6, bias_std=1.5)
    mpnet_buckets()


def tiny_multi():
    common = dict(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, initializer_range=0.2,
                  problem_type="multi_label_classification")
    run_one("roberta_multi", "roberta",
            RobertaConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=64, num_labels=4, vocab_size=64,
                          max_position_embeddings=24, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
                          eos_token_id=2, layer_norm_eps=1e-5, num_attention_heads=4, **common), [8, 3, 11, 6], 7)
    run_one("mpnet_multi", "mpnet",
            MPNetConfig(hidden_size=24, num_hidden_layers=2, num_attention_heads=3, intermediate_size=48, num_labels=3,
                        vocab_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                        hidden_act="gelu", relative_attention_num_buckets=32, **common), [30, 5, 17], 8,
            bias_std=1.5)


def table_bucket(d):
    """MPNET.md's bucket formula (double precision) for relative position d = key - query"""
    import math
    n = -d
    ret = 16 if n < 0 else 0
    n = abs(n)
    return ret + (n if n < 8 else min(15, 8 + int(math.log(n / 8.0) / math.log(128 / 8.0) * 8)))


def mpnet_buckets():
    rel = torch.arange(-1024, 1025, dtype=torch.long)
    bucket = MPNetEncoder.relative_position_bucket(rel, num_buckets=32, max_distance=128)
    T = 7
    ctx = torch.arange(T, dtype=torch.long)[:, None]  # query i (rows)
    mem = torch.arange(T, dtype=torch.long)[None, :]  # key j (columns)
    b7 = MPNetEncoder.relative_position_bucket(mem - ctx, num_buckets=32, max_distance=128)
    assert b7[0, 5].item() == 21 and b7[5, 0].item() == 5, b7
    assert all(table_bucket(int(d)) == int(b) for d, b in zip(rel, bucket)), "MPNET.md table disagrees"
    assert 16 not in bucket.tolist()
    save_file({"relative_position": rel.to(torch.int32).contiguous(), "bucket": bucket.to(torch.int32).contiguous(),
               "bucket_7x7": b7.to(torch.int32).contiguous()}, os.path.join(OUT, "mpnet_buckets.safetensors"))
    print(f"mpnet_buckets: {rel.numel()} relative positions, buckets {sorted(set(bucket.tolist()))}")


def mpnet_real(dirname):
    import csv
    from transformers import AutoTokenizer, MPNetModel
    model = MPNetModel.from_pretrained(dirname).eval()
    tok = AutoTokenizer.from_pretrained(dirname)
    path = os.path.join(os.path.dirname(OUT), "..", "..", "..", "shared", "data", "glue", "RTE", "dev.tsv")
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    pairs = [(r[1], r[2]) for r in rows if len(tok(r[1], r[2])["input_ids"]) <= 40][:6]
    assert len(pairs) == 6, len(pairs)
    enc = tok([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    ids = enc["input_ids"]
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=enc["attention_mask"])
    lengths = enc["attention_mask"].sum(1).to(torch.int32)
    assert (ids[:, 0] == 0).all() and all((ids[b, n:] == 1).all() for b, n in enumerate(lengths.tolist()))
    save_file({"input_ids": ids.to(torch.int32).contiguous(),
               "token_type_ids": torch.zeros_like(ids, dtype=torch.int32),
               "lengths": lengths, "last_hidden_state": out.last_hidden_state.contiguous()},
              os.path.join(OUT, "mpnet_ref.safetensors"))
    print(f"mpnet: {len(pairs)} RTE dev pairs, lengths {lengths.tolist()}, T = {ids.shape[1]}")
    with torch.no_grad():  # how much the relative-attention bias matters here
        model.encoder.relative_attention_bias.weight.zero_()
        nob = model(input_ids=ids, attention_mask=enc["attention_mask"]).last_hidden_state
    valid = enc["attention_mask"].bool()[:, :, None]
    print(f"  bias zeroed: max |d last hidden| {((nob - out.last_hidden_state).abs() * valid).max().item():.4f} "
          f"(max |h| {(out.last_hidden_state.abs() * valid).max().item():.4f})")


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
    ap.add_argument("--only", choices=["bert_roberta", "mpnet", "multi"], help="write only this family's tiny fixtures")
    ap.add_argument("--minilm", help="directory of all-MiniLM-L6-v2 (config.json, weights, vocab.txt)")
    ap.add_argument("--mpnet", help="directory of all-mpnet-base-v2 (config.json, model.safetensors, tokenizer.json)")
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if a.only in (None, "bert_roberta"):
        tiny_models()
    if a.only in (None, "mpnet"):
        tiny_mpnet()
    if a.only in (None, "multi"):
        tiny_multi()
    if a.minilm:
        minilm(a.minilm)
    if a.mpnet:
        mpnet_real(a.mpnet)
