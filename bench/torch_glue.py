#!/usr/bin/python3
"""Issue 17's independent implementation: one GLUE run of LoRA (Hugging Face PEFT) or CondLoRA (the released code's
form, in plain PyTorch, as bench/torch_encoder.py builds it) on a transformers model, with condlora's paper protocol
on exactly condlora's rows.

- Rows: `condlora split --seed SEED` gives the line numbers of train, held-out dev and test (the official dev file)
  that `condlora train --seed SEED` uses, so both implementations select on the same dev rows and test on the same
  test rows.
- Protocol, as `condlora train --preset paper`: r = alpha = 8 on the query and value projections of every layer,
  adapter dropout 0, the model's own dropout in training, the classification head trained (BERT: pooler + classifier,
  RoBERTa / MPNet: classifier.dense + out_proj), AdamW (0.9, 0.999, 1e-8, weight decay 0), linear warm-up over
  ceil(10%) of the steps then linear decay to 0, batch 16, max length 512 with dynamic padding, truncation
  longest-first, an evaluation on dev at every epoch end (or every 1500 steps when an epoch is longer), the best dev
  checkpoint scored on test. Cross-entropy, or MSE for STS-B.
- CondLoRA: one pair of maps per module type shared by all layers, A_l = (W_l Ta)^T and B_l = W_l Tb with Ta, Tb
  (d x r); Ta starts as nn.Linear's default (kaiming-uniform), Tb = 0, so that the first step is LoRA's.
- --precision bf16 runs the forward under torch.autocast("cpu", bfloat16), PyTorch's own bf16.

Writes one JSON object (options, trainable parameters, best dev metric and step, test metrics, wall time,
examples/s) to --out, atomically, and prints it. The batch order and the initialisation come from torch's generator
seeded with --seed, not condlora's, so single runs differ; compare means over seeds.

usage: /usr/bin/python3 bench/torch_glue.py --model DIR --task TASK --data GLUE_DIR --method lora|condlora --lr LR
          --epochs N [--seed S] [--threads K] [--precision fp32|bf16] [--max-length 512] [--batch-size 16]
          [--max-train N] [--max-eval N] [--condlora BIN] [--out FILE.json]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_encoder import CondLoRALinear  # noqa: E402  (y = base(x) + s (x A^T) B^T, A = Ta(W)^T, B = Tb(W))
from peft_glue import warmup_linear  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# task -> (text columns by header name or, without a header, index; label column; label values; main metric)
TASKS = {
    "CoLA": ((3, None), 1, ["0", "1"], "mcc"),
    "SST-2": (("sentence", None), "label", ["0", "1"], "acc"),
    "MRPC": (("#1 String", "#2 String"), "Quality", ["0", "1"], "acc"),
    "STS-B": (("sentence1", "sentence2"), "score", None, "pearson"),
    "RTE": (("sentence1", "sentence2"), "label", ["entailment", "not_entailment"], "acc"),
    "QNLI": (("question", "sentence"), "label", ["entailment", "not_entailment"], "acc"),
    "WNLI": (("sentence1", "sentence2"), "label", ["0", "1"], "acc"),
}


def read_rows(path, task, lines):
    """The examples at the given 1-based line numbers of a GLUE TSV: (text_a, text_b, label or score)."""
    (ca, cb), cl, values, _ = TASKS[task]
    with open(path, encoding="utf-8-sig") as f:
        all_lines = f.read().split("\n")
    if isinstance(cl, str):
        head = all_lines[0].rstrip("\r").split("\t")
        ia, il = head.index(ca), head.index(cl)
        ib = head.index(cb) if cb else None
    else:
        ia, il, ib = ca, cl, None
    out = []
    for n in lines:
        r = all_lines[n - 1].rstrip("\r").split("\t")
        y = float(r[il]) if values is None else values.index(r[il])
        out.append((r[ia], r[ib] if ib is not None else None, y))
    return out


def rows_of(split, task, data):
    """condlora's split: {"train": [...], "dev": [...], "test": [...]} of examples."""
    return {k: read_rows(split[k]["file"], task, split[k]["lines"]) for k in ("train", "dev", "test")}


def metrics(task, pred, gold):
    pred, gold = np.asarray(pred, dtype=np.float64), np.asarray(gold, dtype=np.float64)
    if TASKS[task][2] is None:
        return {"pearson": float(np.corrcoef(pred, gold)[0, 1]) if pred.std() > 0 else 0.0}
    acc = float((pred == gold).mean())
    tp, tn = float(((pred == 1) & (gold == 1)).sum()), float(((pred == 0) & (gold == 0)).sum())
    fp, fn = float(((pred == 1) & (gold == 0)).sum()), float(((pred == 0) & (gold == 1)).sum())
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    out = {"acc": acc, "mcc": (tp * tn - fp * fn) / den if den > 0 else 0.0}
    if task == "MRPC":
        out["f1"] = 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0
    return out


def targets_of(model):
    """The query / value projections' attribute names: BERT and RoBERTa query/value, MPNet q/v."""
    names = {n.split(".")[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    return ("q", "v") if {"q", "v"} <= names else ("query", "value")


def add_condlora(model, r, alpha, gen):
    d = model.config.hidden_size
    maps = {}
    for m in targets_of(model):
        ta, tb = torch.nn.Linear(d, r, bias=False), torch.nn.Linear(d, r, bias=False)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(d)  # nn.Linear's kaiming-uniform (a = sqrt 5), drawn from our generator
            ta.weight.uniform_(-bound, bound, generator=gen)
            tb.weight.zero_()
        maps[m] = (ta, tb)
    model.condlora_maps = torch.nn.ModuleList([x for pair in maps.values() for x in pair])
    for mod in list(model.modules()):
        for m in maps:
            child = getattr(mod, m, None)
            if isinstance(child, torch.nn.Linear):
                setattr(mod, m, CondLoRALinear(child, *maps[m], alpha / r))
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.condlora_maps.parameters():
        p.requires_grad_(True)


def head_modules(model):
    heads = ["classifier"]
    if getattr(model.config, "model_type", "") == "bert":
        heads.append("pooler")  # BERT's head is pooler + classifier (condlora --train-pooler 1)
    return heads


def encode(tok, part, max_len):
    a = [e[0] for e in part]
    b = [e[1] for e in part] if part[0][1] is not None else None
    return tok(a, b, truncation=True, max_length=max_len, padding=True, return_tensors="pt")


def predict(model, tok, exs, max_len, regression, autocast):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(exs), 32):
            with autocast():
                lg = model(**encode(tok, exs[i:i + 32], max_len)).logits.float()
            out += (lg[:, 0] if regression else lg.argmax(-1)).tolist()
    model.train()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--data", required=True)
    ap.add_argument("--method", required=True, choices=["lora", "condlora"])
    ap.add_argument("--lr", type=float, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--max-train", type=int, default=0, help="only the first N training rows (tests)")
    ap.add_argument("--max-eval", type=int, default=0, help="only the first N dev and test rows (tests)")
    ap.add_argument("--condlora", default=os.path.join(HERE, "..", "build", "condlora"))
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(a.seed)
    torch.manual_seed(a.seed)  # dropout masks

    sp = subprocess.run([a.condlora, "split", "--task", a.task, "--data", a.data, "--seed", str(a.seed)],
                        capture_output=True, text=True)
    if sp.returncode:
        sys.exit(f"torch_glue.py: condlora split failed: {sp.stderr.strip()}")
    split = json.loads(sp.stdout)
    rows = rows_of(split, a.task, a.data)
    train, dev, test = rows["train"], rows["dev"], rows["test"]
    if a.max_train:
        train = train[: a.max_train]
    if a.max_eval:
        dev, test = dev[: a.max_eval], test[: a.max_eval]
    regression = TASKS[a.task][2] is None
    main_metric = TASKS[a.task][3]

    tok = AutoTokenizer.from_pretrained(a.model)
    train_tokens = sum(len(x) for i in range(0, len(train), 256)
                       for x in tok([e[0] for e in train[i:i + 256]],
                                    [e[1] for e in train[i:i + 256]] if train[0][1] is not None else None,
                                    truncation=True, max_length=a.max_length)["input_ids"])
    model = AutoModelForSequenceClassification.from_pretrained(
        a.model, num_labels=1 if regression else len(TASKS[a.task][2]), ignore_mismatched_sizes=True)
    heads = head_modules(model)
    if a.method == "lora":
        from peft import LoraConfig, get_peft_model
        cfg = LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=list(targets_of(model)),
                         task_type="SEQ_CLS", modules_to_save=heads)
        model = get_peft_model(model, cfg)
    else:
        add_condlora(model, 8, 8, gen)
        for n, p in model.named_parameters():
            if any(n.startswith(h + ".") or f".{h}." in n for h in heads):  # bert.pooler.dense too
                p.requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    n_head = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad
                 and any(f"{h}." in n for h in heads))
    n_total = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    nb = math.ceil(len(train) / a.batch_size)
    total = a.epochs * nb
    sched = warmup_linear(opt, total)  # condlora's: warm-up over ceil(10%) of the steps, then linear decay to 0
    eval_every = 1500 if nb >= 1500 else nb
    if a.precision == "bf16":
        def autocast():
            return torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        import contextlib

        def autocast():
            return contextlib.nullcontext()
    loss_fn = torch.nn.MSELoss() if regression else torch.nn.CrossEntropyLoss()

    model.train()
    step, seen, train_s, best, best_step, best_dev, best_state = 0, 0, 0.0, -math.inf, -1, None, None
    t0 = time.time()
    log = []
    for ep in range(a.epochs):
        order = torch.randperm(len(train), generator=gen).tolist()
        for i in range(0, len(order), a.batch_size):
            ts = time.time()
            part = [train[j] for j in order[i:i + a.batch_size]]
            enc = encode(tok, part, a.max_length)
            y = torch.tensor([e[2] for e in part], dtype=torch.float32 if regression else torch.long)
            with autocast():
                lg = model(**enc).logits.float()
            loss = loss_fn(lg[:, 0], y) if regression else loss_fn(lg, y)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            seen += len(part)
            train_s += time.time() - ts
            if step % 50 == 0:
                log.append({"step": step, "loss": round(loss.item(), 6)})
            if step % eval_every == 0 or step == total:
                m = metrics(a.task, predict(model, tok, dev, a.max_length, regression, autocast), [e[2] for e in dev])
                if m[main_metric] > best:
                    best, best_step, best_dev = m[main_metric], step, m
                    best_state = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
                print(f"step {step}/{total} epoch {ep + 1}: dev {main_metric} {m[main_metric]:.4f} "
                      f"(best {best:.4f} at {best_step}), {seen / train_s:.1f} ex/s", file=sys.stderr, flush=True)
    with torch.no_grad():
        named = dict(model.named_parameters())
        for n, v in best_state.items():
            named[n].copy_(v)
    te = metrics(a.task, predict(model, tok, test, a.max_length, regression, autocast), [e[2] for e in test])
    res = {"implementation": "pytorch", "torch": torch.__version__, "task": a.task, "method": a.method,
           "model": os.path.abspath(a.model), "lr": a.lr, "epochs": a.epochs, "seed": a.seed,
           "batch_size": a.batch_size, "max_length": a.max_length, "precision": a.precision, "threads": a.threads,
           "data": {"train": len(train), "dev": len(dev), "test": len(test), "train_tokens": train_tokens},
           "trainable_parameters": {"adapter": n_total - n_head, "head": n_head, "total": n_total},
           "result": {"steps": step, "best_step": best_step, "best_dev": best_dev, "main_metric": main_metric,
                      "test": te, "wall_s": time.time() - t0, "train_s": train_s,
                      "examples_per_s": seen / train_s if train_s else 0.0},
           "losses": log}
    text = json.dumps(res, indent=1)
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(a.out + ".tmp", a.out)
    print(json.dumps({k: res[k] for k in ("task", "method", "lr", "seed")} | {"dev": best_dev, "test": te}))


if __name__ == "__main__":
    main()
