#!/usr/bin/python3
"""bench/torch_glue.py, the independent PyTorch implementation of issue 17's comparison, against `condlora train` on
the tiny model of tests/data/api: for LoRA (PEFT) and CondLoRA (the released code's form) the same trainable
parameters (adapter and head, counted by each side) and the same numbers of train, dev and test rows and of training tokens (the
rows come from `condlora split`), and metrics that are valid numbers. Runs with /usr/bin/python3; SKIPs cleanly without torch,
transformers, peft or the GLUE files. Last line: "test_torch_glue: N passed, N failed, N skipped"."""
import json
import os
import subprocess
import sys
import tempfile

NAME = "test_torch_glue"
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BIN = os.environ.get("CL_BIN", os.path.join(ROOT, "build", "condlora"))
GLUE = os.environ.get("CONDLORA_DATA", os.path.join(ROOT, "..", "shared", "data", "glue"))
counts = {"passed": 0, "failed": 0, "skipped": 0}


def done():
    print(f"{NAME}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    sys.exit(1 if counts["failed"] else 0)


def check(cond, what, detail=""):
    counts["passed" if cond else "failed"] += 1
    print(("ok   " if cond else f"FAIL {NAME}: ") + what + (f" ({detail})" if detail else ""))


try:
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
except Exception as e:  # noqa: BLE001
    counts["skipped"] += 1
    print(f"SKIP {NAME}: torch / transformers / peft not importable ({e})")
    done()
if not os.path.exists(os.path.join(GLUE, "SST-2", "train.tsv")):
    counts["skipped"] += 1
    print(f"SKIP {NAME}: no GLUE data at {GLUE}")
    done()

model = os.path.join(ROOT, "tests", "data", "api", "model")
common = ["--model", model, "--task", "SST-2", "--data", GLUE, "--max-train", "48", "--max-eval", "24",
          "--max-length", "64", "--epochs", "1", "--lr", "1e-3", "--threads", "1"]
with tempfile.TemporaryDirectory() as tmp:
    for m in ("lora", "condlora"):
        out = os.path.join(tmp, f"{m}.json")
        p = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "torch_glue.py"), *common, "--method", m,
                            "--condlora", BIN, "--out", out], capture_output=True, text=True)
        check(p.returncode == 0 and os.path.exists(out), f"{m}: torch_glue.py runs", p.returncode and p.stderr[-400:])
        q = subprocess.run([BIN, "train", "--method", m, "--preset", "paper", *common, "--quiet",
                            "--out", os.path.join(tmp, m)], capture_output=True, text=True)
        check(q.returncode == 0, f"{m}: condlora train runs", q.returncode and q.stderr[-400:])
        if p.returncode or q.returncode:
            continue
        t = json.load(open(out))
        c = json.load(open(os.path.join(tmp, m, "run.json")))
        tp, cp = t["trainable_parameters"], c["trainable_parameters"]
        check((tp["adapter"], tp["head"]) == (cp["adapter"], cp["head"]),
              f"{m}: the same trainable parameters", f"PyTorch {tp}, condlora {cp}")
        keys = ("train", "dev", "test", "train_tokens")  # the tokens: the same rows, tokenized and truncated alike
        check(tuple(t["data"][k] for k in keys) == tuple(c["data"][k] for k in keys),
              f"{m}: the same rows and training tokens", f"PyTorch {t['data']}, condlora {c['data']}")
        acc = t["result"]["test"]["acc"]
        check(0.0 <= acc <= 1.0 and t["result"]["best_step"] > 0, f"{m}: a test accuracy of the best dev step",
              f"{acc:.3f} at step {t['result']['best_step']}")
done()
