#!/usr/bin/python3
"""Generates tests/data/model/: tiny BERT / RoBERTa checkpoints made with transformers, and reference values
(parameter counts from PyTorch `sum(p.numel())`, tensor checksums as transformers loaded them) in reference.json.

Run: /usr/bin/python3 scripts/gen_model_fixtures.py   (torch, transformers 4.40, safetensors; deterministic)

Fixtures (tests/data/model/<name>/config.json + weights):
  bert_base      BertModel (hidden 32, 2 layers, 4 heads, FFN 37, vocab 100), no prefix, with pooler
  bert_cls       BertForSequenceClassification, 3 labels with id2label, "bert." prefix
  roberta_cls    RobertaForSequenceClassification, 2 labels, "roberta." prefix, no pooler
  roberta_shard  RobertaModel saved sharded (model.safetensors.index.json + 3 shards)
  roberta_f16    RobertaModel (micro size) saved in float16
  bert_bf16      BertModel (micro) saved in bfloat16, with a position_ids buffer (ignored silently)
  bert_gamma     BertModel (micro) with old LayerNorm.gamma/beta names and an MLM head (cls.* -> unexpected)
  bert_unaligned BertModel (micro) written by hand with a 1-byte U8 tensor first: every F32 tensor is unaligned
  broken_missing  (micro) encoder.layer.0.output.dense.weight removed
  broken_shape    (micro) encoder.layer.0.intermediate.dense.weight transposed
  broken_unexpected (micro) an extra tensor "encoder.layer.0.attention.self.rotary.weight"
  broken_head     RobertaForSequenceClassification (micro) without classifier.out_proj.bias
  bin_only        (micro) only pytorch_model.bin (the loader must point at the converter)
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file, load_file
from transformers import (BertConfig, BertModel, BertForSequenceClassification, BertForMaskedLM, RobertaConfig,
                          RobertaModel, RobertaForSequenceClassification, AutoModel,
                          AutoModelForSequenceClassification)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "model")


def bert_cfg(micro=False, **kw):
    if micro:
        return BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=12, max_position_embeddings=16, type_vocab_size=2, **kw)
    return BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=24, type_vocab_size=2, **kw)


def roberta_cfg(micro=False, **kw):
    if micro:
        return RobertaConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=12, max_position_embeddings=18, type_vocab_size=1, pad_token_id=1,
                             **kw)
    return RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=37, max_position_embeddings=26, type_vocab_size=1, pad_token_id=1,
                         hidden_act="gelu_new", **kw)


def perturb(model, seed):
    """Random LayerNorm / bias values so that 1/0 defaults cannot pass a checksum by accident."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "LayerNorm" in n or n.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if n.endswith("weight") else 0.0))


def fresh(d):
    path = os.path.join(ROOT, d)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write_config(path, cfg):
    cfg.to_json_file(os.path.join(path, "config.json"))


def checksum(t):
    x = t.detach().to(torch.float64).reshape(-1).numpy()
    w = (np.arange(x.size) % 7 + 1).astype(np.float64)
    return {"numel": int(x.size), "sum": float(x.sum()), "wsum": float((x * w).sum()),
            "first": [float(v) for v in x[:4]]}


def strip(n):
    for p in ("roberta.", "bert."):
        if n.startswith(p):
            return n[len(p):]
    return n


def reference(path, cls, names):
    """Loads the directory with transformers (as a user would) and records counts and checksums."""
    model = cls.from_pretrained(path).float()
    params = dict(model.named_parameters())
    enc = sum(p.numel() for n, p in params.items() if strip(n).startswith(("embeddings.", "encoder.")))
    ref = {"n_params_total": sum(p.numel() for p in model.parameters()), "n_params_encoder": enc, "tensors": {}}
    for n in names:
        for full in (n, "bert." + n, "roberta." + n):
            if full in params:
                ref["tensors"][n] = checksum(params[full])
    return ref


CHECK = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
         "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.bias",
         "encoder.layer.0.attention.self.query.weight", "encoder.layer.0.attention.self.value.bias",
         "encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.output.dense.weight",
         "encoder.layer.0.attention.output.LayerNorm.weight", "encoder.layer.1.output.LayerNorm.bias",
         "pooler.dense.weight", "classifier.weight", "classifier.bias", "classifier.dense.weight",
         "classifier.out_proj.weight", "classifier.out_proj.bias"]


def write_st_by_hand(path, tensors):
    """A safetensors file with tensors laid out in the given order (name, dtype string, np array)."""
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, dt, arr in tensors:
        b = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    torch.manual_seed(0)
    os.makedirs(ROOT, exist_ok=True)
    refs = {"transformers": transformers.__version__, "torch": torch.__version__, "fixtures": {}}

    # bert_base: BertModel, no prefix, pooler
    p = fresh("bert_base")
    m = BertModel(bert_cfg())
    perturb(m, 1)
    m.save_pretrained(p, safe_serialization=True)
    refs["fixtures"]["bert_base"] = reference(p, BertModel, CHECK)

    # bert_cls: prefix bert., 3 labels with id2label
    p = fresh("bert_cls")
    m = BertForSequenceClassification(bert_cfg(num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"},
                                               label2id={"neg": 0, "neu": 1, "pos": 2}))
    perturb(m, 2)
    m.save_pretrained(p, safe_serialization=True)
    refs["fixtures"]["bert_cls"] = reference(p, BertForSequenceClassification, CHECK)

    # roberta_cls: prefix roberta., RoBERTa head, no pooler
    p = fresh("roberta_cls")
    m = RobertaForSequenceClassification(roberta_cfg(num_labels=2))
    perturb(m, 3)
    m.save_pretrained(p, safe_serialization=True)
    refs["fixtures"]["roberta_cls"] = reference(p, RobertaForSequenceClassification, CHECK)

    # roberta_shard: sharded checkpoint
    p = fresh("roberta_shard")
    m = RobertaModel(roberta_cfg())
    perturb(m, 4)
    m.save_pretrained(p, safe_serialization=True, max_shard_size="30KB")
    assert os.path.exists(os.path.join(p, "model.safetensors.index.json")), "not sharded"
    refs["fixtures"]["roberta_shard"] = reference(p, RobertaModel, CHECK)
    refs["fixtures"]["roberta_shard"]["n_shards"] = len(
        set(json.load(open(os.path.join(p, "model.safetensors.index.json")))["weight_map"].values()))

    # roberta_f16
    p = fresh("roberta_f16")
    m = RobertaModel(roberta_cfg(micro=True))
    perturb(m, 5)
    m.half().save_pretrained(p, safe_serialization=True)
    refs["fixtures"]["roberta_f16"] = reference(p, RobertaModel, CHECK)

    # bert_bf16 with a position_ids buffer
    p = fresh("bert_bf16")
    cfg = bert_cfg(micro=True)
    m = BertModel(cfg)
    perturb(m, 6)
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in m.state_dict().items()}
    sd["embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings).unsqueeze(0)
    save_file(sd, os.path.join(p, "model.safetensors"), metadata={"format": "pt"})
    write_config(p, cfg)
    refs["fixtures"]["bert_bf16"] = reference(p, BertModel, CHECK)

    # bert_gamma: old LayerNorm names and an MLM head
    p = fresh("bert_gamma")
    cfg = bert_cfg(micro=True)
    mlm = BertForMaskedLM(cfg)
    perturb(mlm, 7)
    sd = {}
    for k, v in mlm.state_dict().items():
        if "position_ids" in k or "decoder.weight" in k:  # decoder.weight is tied to word_embeddings
            continue
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        sd[k] = v.clone().contiguous()
    save_file(sd, os.path.join(p, "model.safetensors"), metadata={"format": "pt"})
    write_config(p, cfg)
    ref = reference(p, lambda_model_no_pool(BertModel), CHECK)  # no pooler in an MLM checkpoint
    ref["unexpected"] = sorted(k for k in sd if k.startswith("cls."))
    refs["fixtures"]["bert_gamma"] = ref

    # bert_unaligned: hand-written with a U8 tensor first
    p = fresh("bert_unaligned")
    cfg = bert_cfg(micro=True)
    m = BertModel(cfg, add_pooling_layer=False)
    perturb(m, 8)
    ts = [("aaa.flag", "U8", np.array([7], dtype=np.uint8))]
    ts += [(k, "F32", v.numpy().astype("<f4")) for k, v in sorted(m.state_dict().items()) if "position_ids" not in k]
    write_st_by_hand(os.path.join(p, "model.safetensors"), ts)
    write_config(p, cfg)
    ref = reference(p, lambda_model_no_pool(BertModel), CHECK)
    ref["unexpected"] = ["aaa.flag"]
    refs["fixtures"]["bert_unaligned"] = ref

    # broken ones (micro)
    base = BertModel(bert_cfg(micro=True))
    perturb(base, 9)
    sd0 = {k: v.clone().contiguous() for k, v in base.state_dict().items() if "position_ids" not in k}
    for name, edit in [
        ("broken_missing", lambda sd: sd.pop("encoder.layer.0.output.dense.weight")),
        ("broken_shape", lambda sd: sd.__setitem__("encoder.layer.0.intermediate.dense.weight",
                                                   sd["encoder.layer.0.intermediate.dense.weight"].t().contiguous())),
        ("broken_unexpected", lambda sd: sd.__setitem__("encoder.layer.0.attention.self.rotary.weight",
                                                        torch.ones(4, 2))),
    ]:
        p = fresh(name)
        sd = dict(sd0)
        edit(sd)
        save_file(sd, os.path.join(p, "model.safetensors"), metadata={"format": "pt"})
        write_config(p, bert_cfg(micro=True))
    refs["fixtures"]["broken_unexpected"] = {"unexpected": ["encoder.layer.0.attention.self.rotary.weight"]}

    p = fresh("broken_head")
    m = RobertaForSequenceClassification(roberta_cfg(micro=True, num_labels=2))
    sd = {k: v.clone().contiguous() for k, v in m.state_dict().items() if k != "classifier.out_proj.bias"}
    save_file(sd, os.path.join(p, "model.safetensors"), metadata={"format": "pt"})
    write_config(p, m.config)

    p = fresh("bin_only")
    base.save_pretrained(p, safe_serialization=False)

    with open(os.path.join(ROOT, "reference.json"), "w") as f:
        json.dump(refs, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"wrote {ROOT} ({total} bytes)")


def lambda_model_no_pool(cls):
    class Loader:
        @staticmethod
        def from_pretrained(path):
            return cls.from_pretrained(path, add_pooling_layer=False)
    return Loader


def config_cases():
    """config.json texts and the values transformers' config classes resolve them to (defaults included)."""
    from transformers import AutoConfig
    cases = [
        {"model_type": "bert"},
        {"model_type": "roberta"},
        {"model_type": "xlm-roberta"},
        {"model_type": "camembert", "hidden_size": 64, "num_attention_heads": 8},
        {"architectures": ["RobertaForSequenceClassification"], "model_type": "roberta", "vocab_size": 50265,
         "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
         "hidden_act": "gelu", "max_position_embeddings": 514, "type_vocab_size": 1, "layer_norm_eps": 1e-05,
         "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "hidden_dropout_prob": 0.1,
         "attention_probs_dropout_prob": 0.1, "classifier_dropout": None},
        {"model_type": "bert", "hidden_act": "gelu_new", "layer_norm_eps": 1e-7, "num_labels": 5,
         "classifier_dropout": 0.3, "problem_type": "single_label_classification"},
        {"model_type": "bert", "hidden_act": "relu", "id2label": {"0": "a", "1": "b", "2": "c"},
         "label2id": {"a": 0, "b": 1, "c": 2}, "hidden_dropout_prob": 0.0},
        {"model_type": "roberta", "hidden_act": "gelu_pytorch_tanh", "problem_type": "regression", "num_labels": 1,
         "id2label": {"0": "LABEL_0"}, "pad_token_id": 0, "max_position_embeddings": 130},
    ]
    out = []
    for d in cases:
        c = AutoConfig.for_model(**d)
        named = "num_labels" in d or "id2label" in d
        out.append({"json": json.dumps(d), "expect": {
            "model_type": c.model_type, "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
            "intermediate_size": c.intermediate_size, "hidden_act": c.hidden_act,
            "max_position_embeddings": c.max_position_embeddings, "type_vocab_size": c.type_vocab_size,
            "pad_token_id": c.pad_token_id, "layer_norm_eps": c.layer_norm_eps,
            "hidden_dropout_prob": c.hidden_dropout_prob,
            "attention_probs_dropout_prob": c.attention_probs_dropout_prob,
            "classifier_dropout": c.classifier_dropout, "problem_type": c.problem_type or "",
            "num_labels": c.num_labels if named else 0,
            "id2label": [c.id2label[i] for i in range(c.num_labels)] if "id2label" in d else None}})
    with open(os.path.join(ROOT, "config_cases.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def minilm():
    """Reference values of the real all-MiniLM-L6-v2 (scripts/fetch_model.sh puts it in the cache)."""
    d = os.path.join(os.environ.get("CONDLORA_CACHE", os.path.expanduser("~/.cache/condlora")), "models",
                     "all-MiniLM-L6-v2")
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        print(f"{d}: not there (run scripts/fetch_model.sh); minilm_reference.json not regenerated")
        return
    ref = reference(d, BertModel, CHECK + ["encoder.layer.5.output.dense.weight", "pooler.dense.bias"])
    cfg = json.load(open(os.path.join(d, "config.json")))
    ref.update({"num_hidden_layers": cfg["num_hidden_layers"], "hidden_size": cfg["hidden_size"],
                "n_tensors_file": len(load_file(os.path.join(d, "model.safetensors")))})
    with open(os.path.join(ROOT, "minilm_reference.json"), "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"MiniLM: {ref['n_params_total']} parameters ({ref['n_params_encoder']} embeddings + layers)")


if __name__ == "__main__":
    main()
    config_cases()
    minilm()
