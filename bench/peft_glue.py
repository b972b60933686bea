#!/usr/bin/python3
"""The same LoRA run as `condlora train`, through Hugging Face PEFT + transformers (issue 6's comparison).

Same model directory, data, hyper-parameters and protocol as condlora's defaults: r = alpha = 8 on query,value,
dropout 0, AdamW (0.9, 0.999, 1e-8, wd 0), linear warm-up over ceil(10%) of the steps then linear decay, batch 16,
max length 128, dynamic padding, the paper protocol (train shuffled with the seed, first round(10%) as dev for model
selection, the official dev file as test). The shuffle uses numpy's generator, not condlora's, so the dev rows differ
(the sizes and procedure are the same). Prints one JSON line with the best dev accuracy, the test accuracy of that
checkpoint, wall time and training examples/s (time in training steps only, as condlora's run.json counts it).

usage: /usr/bin/python3 bench/peft_glue.py --model DIR --task SST-2|RTE --data GLUE_DIR [--steps N] [--lr LR]
                                           [--seed S] [--eval-every N] [--max-eval N] [--threads K]
                                           [--train-pooler 0|1] [--targets query,value] [--full]

--full fine-tunes every weight of the model instead (no PEFT; the same loop, schedule and protocol): the ceiling a
task reaches on this model, against which an adapter's result can be read (issue 6, RTE).
"""
import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

TASKS = {  # columns by header name, label values in Hugging Face's order
    "SST-2": ("sentence", None, "label", ["0", "1"]),
    "RTE": ("sentence1", "sentence2", "label", ["entailment", "not_entailment"]),
    "MRPC": ("#1 String", "#2 String", "Quality", ["0", "1"]),
    "WNLI": ("sentence1", "sentence2", "label", ["0", "1"]),
}


def read_tsv(path, task):
    a_col, b_col, l_col, labels = TASKS[task]
    with open(path, encoding="utf-8-sig") as f:
        rows = [line.rstrip("\n").rstrip("\r").split("\t") for line in f if line.strip()]
    head = rows[0]
    ia, il = head.index(a_col), head.index(l_col)
    ib = head.index(b_col) if b_col else None
    out = []
    for r in rows[1:]:
        out.append((r[ia], r[ib] if ib is not None else None, labels.index(r[il])))
    return out


def paper_split(train, rng):
    """The paper protocol: train shuffled with rng, the first round(10%) held out for model selection -> (dev, rest)."""
    perm = rng.permutation(len(train))
    n_dev = int(math.floor(len(train) * 0.1 + 0.5))
    return [train[i] for i in perm[:n_dev]], [train[i] for i in perm[n_dev:]]


def warmup_linear(opt, steps, ratio=0.1):
    """condlora's schedule: linear warm-up over ceil(ratio * steps) steps, then linear decay to 0 at `steps`."""
    warm = math.ceil(ratio * steps)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / max(1, warm) if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))


def batches(tok, exs, idx, bs, max_len, pad="longest"):
    for i in range(0, len(idx), bs):
        part = [exs[j] for j in idx[i:i + bs]]
        a = [e[0] for e in part]
        b = [e[1] for e in part] if part[0][1] is not None else None
        enc = tok(a, b, truncation=True, max_length=max_len,
                  padding="max_length" if pad == "max" else True, return_tensors="pt")
        yield enc, torch.tensor([e[2] for e in part])


def accuracy(model, tok, exs, bs, max_len):
    model.eval()
    correct = 0
    with torch.no_grad():
        for enc, y in batches(tok, exs, list(range(len(exs))), 64, max_len):
            correct += (model(**enc).logits.argmax(-1) == y).sum().item()
    model.train()
    return correct / max(1, len(exs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--max-eval", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--train-pooler", type=int, choices=[0, 1], default=0,
                    help="1: modules_to_save also 'pooler' (BERT's pooler.dense, as condlora train --train-pooler 1)")
    ap.add_argument("--pad", choices=["longest", "max"], default="longest",
                    help="longest: dynamic padding (each batch to its longest member); max: every input padded to "
                         "--max-length, as the paper's reference code does with 512")
    ap.add_argument("--targets", default=None,
                    help="LoRA target modules, comma-separated (default: the query and value projections: query,value;"
                         " MPNet's q,v)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: the training forward under torch.autocast('cpu', bfloat16), PyTorch's own bf16")
    ap.add_argument("--full", action="store_true",
                    help="full fine-tuning: every weight trains (the pooler too), no adapter; --targets is ignored")
    ap.add_argument("--speed-only", action="store_true",
                    help="no evaluation at all: only the training steps' examples/s (issue 9's protocol comparison)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    train = read_tsv(os.path.join(args.data, args.task, "train.tsv"), args.task)
    test = read_tsv(os.path.join(args.data, args.task, "dev.tsv"), args.task)
    dev, train = paper_split(train, rng)
    dev = dev[: args.max_eval]

    tok = AutoTokenizer.from_pretrained(args.model)
    base = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=len(TASKS[args.task][3]))
    if args.targets is None:
        args.targets = "q,v" if base.config.model_type == "mpnet" else "query,value"
    cfg = LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=args.targets.split(","), task_type="SEQ_CLS",
                     modules_to_save=["classifier", "pooler"] if args.train_pooler else None)
    model = base if args.full else get_peft_model(base, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = warmup_linear(opt, args.steps)

    model.train()
    step, seen, best, best_state = 0, 0, -1.0, None
    t0 = time.time()
    eval_s = 0.0
    epoch = 0
    while step < args.steps:
        order = rng.permutation(len(train)).tolist()
        for enc, y in batches(tok, train, order, args.batch_size, args.max_length, args.pad):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                loss = model(**enc, labels=y).loss
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            seen += len(y)
            if not args.speed_only and (step % args.eval_every == 0 or step == args.steps):
                te = time.time()
                acc = accuracy(model, tok, dev, 64, args.max_length)
                eval_s += time.time() - te
                if acc > best:
                    best = acc
                    best_state = copy.deepcopy({k: v for k, v in model.state_dict().items() if args.full or "lora" in k
                                                or "classifier" in k or "pooler" in k})
            if step >= args.steps:
                break
        epoch += 1
    wall = time.time() - t0
    test_acc = float("nan")
    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
        test_acc = accuracy(model, tok, test, 64, args.max_length)
    print(json.dumps({"bench": "peft_glue", "task": args.task, "seed": args.seed, "steps": step, "lr": args.lr,
                      "trainable": n_train, "dev_best_acc": round(best, 4), "test_acc": round(test_acc, 4),
                      "wall_s": round(wall, 1), "train_s": round(wall - eval_s, 1),
                      "train_examples_per_s": round(seen / (wall - eval_s), 1), "threads": args.threads,
                      "pad": args.pad, "precision": args.precision, "max_length": args.max_length,
                      "train_pooler": args.train_pooler,
                      "mode": "full" if args.full else "lora:" + args.targets,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
