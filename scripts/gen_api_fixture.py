#!/usr/bin/python3
"""tests/data/api/: the small model the public-API tests (tests/test_install.sh, python/tests) train and predict with.

  model/    BertForSequenceClassification made by transformers 4.40 (hidden 32, 2 layers, 4 heads, FFN 64, 64
            positions, 2 labels), vocabulary = tests/data/tokenizer/tiny_wordpiece (378 WordPiece tokens, whose
            tokenizer.json is copied beside it); the attention and FFN weights drawn with std 0.2 instead of 0.02 so
            that the toy task below is learnable in a few dozen steps
  train.tsv 200 rows "sentence<TAB>label": mostly "good" (label 1) or "bad" (label 0) among filler words; dev.tsv
            40 more
Run: /usr/bin/python3 scripts/gen_api_fixture.py   (deterministic, seed 20261207)
"""
import json
import os
import random
import shutil

import torch
from transformers import BertConfig, BertForSequenceClassification

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "data", "api")
TOK = os.path.join(ROOT, "tests", "data", "tokenizer", "tiny_wordpiece", "tokenizer.json")

torch.manual_seed(20261207)
vocab = json.load(open(TOK))["model"]["vocab"]
cfg = BertConfig(vocab_size=max(vocab.values()) + 1, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=64, max_position_embeddings=64, num_labels=2, initializer_range=0.2,
                 id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1})
model = BertForSequenceClassification(cfg)
d = os.path.join(OUT, "model")
shutil.rmtree(d, ignore_errors=True)
model.save_pretrained(d, safe_serialization=True)
shutil.copy(TOK, os.path.join(d, "tokenizer.json"))

rng = random.Random(20261207)
words = ["the", "a", "movie", "film", "was", "is", "very", "plot", "actor", "fun", "slow", "long", "story", "ok",
         "and"]
for name, n in (("train.tsv", 200), ("dev.tsv", 40)):
    with open(os.path.join(OUT, name), "w") as f:
        f.write("sentence\tlabel\n")
        for _ in range(n):
            lab = rng.randrange(2)
            toks = [("good" if lab else "bad") if rng.random() < 0.7 else rng.choice(words)
                    for _ in range(3 + rng.randrange(6))]
            f.write(" ".join(toks) + f"\t{lab}\n")
print("wrote", OUT, sum(p.numel() for p in model.parameters()), "parameters")
