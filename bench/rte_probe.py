#!/usr/bin/python3
"""How much RTE signal does an encoder carry? Issue 6's check of all-MiniLM-L6-v2 (PyTorch + transformers).

1. Frozen features, logistic regression (sklearn, C = 0.1 / 1 / 10), trained on the whole RTE train file and scored
   on the official dev file (the paper protocol's test set):
   - cross-encoded pair ([CLS] a [SEP] b [SEP]): the pooler output, the [CLS] vector, the masked mean;
   - siamese, as sentence-transformers uses the model: u, v = L2-normalised masked means of each sentence encoded
     alone, features [u, v, |u - v|, u * v, u.v].
2. With --lora-epochs N: LoRA (r = alpha = 8 on query,value, PEFT) trained through that siamese head (linear on
   [u, v, |u - v|, u * v]), AdamW at --lr with 10% warm-up and linear decay, batch 16, the paper protocol split
   (numpy's shuffle with --seed, 10% held out); prints held-out and test accuracy after each epoch.

usage: /usr/bin/python3 bench/rte_probe.py --model DIR --data GLUE_DIR [--lora-epochs N] [--lr X] [--seed S]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peft_glue import paper_split, read_tsv, warmup_linear  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--lora-epochs", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tok = AutoTokenizer.from_pretrained(args.model)
    enc = AutoModel.from_pretrained(args.model)
    H = enc.config.hidden_size
    train = read_tsv(os.path.join(args.data, "RTE", "train.tsv"), "RTE")
    test = read_tsv(os.path.join(args.data, "RTE", "dev.tsv"), "RTE")

    def embed(texts):
        e = tok(texts, truncation=True, max_length=args.max_length, padding=True, return_tensors="pt")
        h = enc(**e).last_hidden_state
        mk = e["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * mk).sum(1) / mk.sum(1), dim=-1)

    def siamese(exs):
        u = embed([x[0] for x in exs])
        v = embed([x[1] for x in exs])
        return torch.cat([u, v, (u - v).abs(), u * v], -1)

    if args.lora_epochs == 0:
        from sklearn.linear_model import LogisticRegression
        enc.eval()
        with torch.no_grad():
            def feats(exs):
                sia, cross = [], []
                for i in range(0, len(exs), 64):
                    p = exs[i:i + 64]
                    f = siamese(p)
                    sia.append(torch.cat([f, f[:, 3 * H:].sum(1, keepdim=True)], -1))
                    e = tok([x[0] for x in p], [x[1] for x in p], truncation=True, max_length=args.max_length,
                            padding=True, return_tensors="pt")
                    o = enc(**e)
                    mk = e["attention_mask"].unsqueeze(-1).float()
                    cross.append(torch.cat([o.pooler_output, o.last_hidden_state[:, 0],
                                            (o.last_hidden_state * mk).sum(1) / mk.sum(1)], -1))
                return torch.cat(sia).numpy(), torch.cat(cross).numpy()
            Str, Ctr = feats(train)
            Ste, Cte = feats(test)
        ytr = np.array([x[2] for x in train])
        yte = np.array([x[2] for x in test])
        out = {"majority": round(max(yte.mean(), 1 - yte.mean()), 4)}
        for name, a, b in [("siamese", Str, Ste), ("cross_pooler", Ctr[:, :H], Cte[:, :H]),
                           ("cross_cls", Ctr[:, H:2 * H], Cte[:, H:2 * H]), ("cross_mean", Ctr[:, 2 * H:], Cte[:, 2 * H:])]:
            for C in (0.1, 1.0, 10.0):
                clf = LogisticRegression(C=C, max_iter=3000).fit(a, ytr)
                out[f"{name}_C{C:g}"] = round(clf.score(b, yte), 4)
        print(json.dumps(out))
        return

    from peft import LoraConfig, get_peft_model
    rng = np.random.default_rng(args.seed)
    dev, train = paper_split(train, rng)
    enc = get_peft_model(enc, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"]))
    head = torch.nn.Linear(4 * H, 2)
    params = [p for p in list(enc.parameters()) + list(head.parameters()) if p.requires_grad]
    steps = args.lora_epochs * math.ceil(len(train) / 16)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    sched = warmup_linear(opt, steps)

    def accuracy(exs):
        enc.eval()
        ok = 0
        with torch.no_grad():
            for i in range(0, len(exs), 64):
                p = exs[i:i + 64]
                ok += (head(siamese(p)).argmax(-1) == torch.tensor([x[2] for x in p])).sum().item()
        enc.train()
        return ok / len(exs)

    t0 = time.time()
    for ep in range(args.lora_epochs):
        order = rng.permutation(len(train))
        for i in range(0, len(order), 16):
            p = [train[j] for j in order[i:i + 16]]
            loss = torch.nn.functional.cross_entropy(head(siamese(p)), torch.tensor([x[2] for x in p]))
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
        print(json.dumps({"epoch": ep + 1, "heldout_acc": round(accuracy(dev), 4), "test_acc": round(accuracy(test), 4),
                          "wall_s": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
