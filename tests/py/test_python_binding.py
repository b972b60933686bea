#!/usr/bin/python3
"""The Python package (python/condlora, ctypes over libcondlora.so) with Debian's python3 and numpy only: options
listed, train -> Run with progress events, errors as CondloraError with the library's message, evaluate, predict
(numpy) equal to evaluate's accuracy and to `condlora predict`, Tokenizer ids equal to Hugging Face tokenizers'
(tests/data/tokenizer/refs.json), export_peft, Ctrl-C during train (a checkpoint, then resume), and `pip install
./python` into a temporary target. With torch + peft present, PEFT loads the exported adapter with the same logits.
The library: CONDLORA_LIB, else the build directory of CL_BIN. Last line: "test_python_binding: N passed, ...".
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

NAME = "test_python_binding"
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
counts = {"passed": 0, "failed": 0, "skipped": 0}


def check(cond, what, detail=""):
    counts["passed" if cond else "failed"] += 1
    print(("ok   " if cond else "FAIL ") + what + (f" ({detail})" if detail and not cond else ""))
    return cond


def skip(what, why):
    counts["skipped"] += 1
    print(f"SKIP {what}: {why}")


def main():
    try:
        import numpy as np
    except ImportError:
        skip("the Python binding", "no numpy")
        return
    bin_ = os.path.abspath(os.environ.get("CL_BIN", os.path.join(ROOT, "build", "condlora")))
    lib = os.environ.get("CONDLORA_LIB") or os.path.join(os.path.dirname(bin_), "libcondlora.so")
    if not os.path.exists(lib):
        skip("the Python binding", f"no {lib} (make builds it)")
        return
    os.environ["CONDLORA_LIB"] = lib
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import condlora
    check(condlora.__version__ == "0.2.0" and condlora.library_path == lib, "import condlora, __version__",
          condlora.library_path)
    api = os.path.join(ROOT, "tests", "data", "api")
    model_dir = os.path.join(api, "model")
    opts = {o["name"]: o for o in condlora.options()}
    check(len(opts) >= 60 and opts["salora-budget"]["type"] == "float" and opts["salora-budget"]["max"] == 1.0 and
          opts["method"]["choices"] == "lora|condlora|salora|adalora" and opts["batch-size"]["default"] == "16",
          "options(): the table, with types, ranges and defaults")

    tmp = tempfile.mkdtemp(prefix="cl_pybind_")
    try:
        common = dict(model=model_dir, train=os.path.join(api, "train.tsv"), dev=os.path.join(api, "dev.tsv"),
                      method="lora", max_length=32, batch_size=8, max_steps=24, eval_every=8, lr=5e-3, threads=1,
                      log_every=4)
        # errors carry the library's message
        try:
            condlora.train(out=os.path.join(tmp, "bad"), **dict(common, lr="nan"))
            check(False, "train(lr=nan) raises")
        except condlora.CondloraError as e:
            check("--lr" in str(e) and e.status == "EUSAGE", "train(lr=nan): CondloraError naming --lr", str(e))
        try:
            condlora.Model("/nonexistent/model")
            check(False, "Model(missing) raises")
        except condlora.CondloraError as e:
            check("/nonexistent/model" in str(e), "Model(missing directory): the path in the message", str(e))

        events = []
        run = condlora.train(out=os.path.join(tmp, "run"), on_event=events.append, salora_budget=0.6, **common)
        types = [e["type"] for e in events]
        check(run.result["steps"] == 24 and os.path.isfile(os.path.join(run.dir, "best", "adapter_model.safetensors")),
              "train() -> Run with its best/ adapter", str(run.result))
        check(types[0] == "start" and types.count("step") == 6 and types.count("eval") == 3 and
              all(e["message"] for e in events),
              "progress events: start, 6 steps, 3 evaluations, each with its line", str(types))
        acc = run.result["best_dev"].get("acc", 0)
        check(acc > 0.8, "the toy task is learned", f"dev acc {acc}")
        with open(os.path.join(run.dir, "run.json")) as f:
            rj = json.load(f)
        check(rj["options"]["adapter"]["salora_budget"] == 0.6 and rj["options"]["batch_size"] == 8,
              "keyword options reach run.json", str(rj["options"]["adapter"].get("salora_budget")))

        ev = condlora.evaluate(run.dir, "dev", threads=1)
        check(ev["examples"] == 40 and ev["acc"] == acc, "evaluate(run) = the run's best dev accuracy", str(ev))

        texts, gold = [], []
        with open(os.path.join(api, "dev.tsv")) as f:
            for line in f.read().splitlines()[1:]:
                t, g = line.split("\t")
                texts.append(t), gold.append(int(g))
        with condlora.Model(model_dir, adapter=run.dir, threads=1) as m:
            check(m.arch == "bert" and m.num_labels == 2 and m.labels == ["0", "1"] and not m.is_multi_label,
                  "Model accessors", f"{m.arch} {m.num_labels} {m.labels}")
            lg = m.predict(texts, max_length=32)
            check(isinstance(lg, np.ndarray) and lg.shape == (40, 2) and lg.dtype == np.float32,
                  "Model.predict -> numpy (40, 2) float32")
            pacc = float(np.mean((lg[:, 1] > lg[:, 0]) == np.array(gold)))
            check(pacc == acc, "predict's accuracy = evaluate's", f"{pacc} vs {acc}")
            tok = condlora.Tokenizer(model_dir)
            ids, tt = tok.encode(texts[0], max_length=32)
            one = m.logits(np.array([ids]), [len(ids)], type_ids=np.array([tt]))
            check(np.abs(one[0] - lg[0]).max() < 1e-5, "Model.logits on Tokenizer.encode ids = predict")
            tok.close()
        lg2 = condlora.predict(model_dir, texts, adapter=run.dir, max_length=32, threads=1)
        check(np.array_equal(lg, lg2), "condlora.predict() = Model.predict")
        # and the CLI, which uses the same library
        inp = os.path.join(tmp, "dev_text.tsv")
        with open(inp, "w") as f:
            f.write("".join(t + "\n" for t in texts))
        cli = subprocess.run([bin_, "predict", "--model", model_dir, "--adapter", run.dir, "--input", inp,
                              "--max-length", "32", "--threads", "1"], capture_output=True, text=True)
        cl = np.array([[float(x) for x in ln.split("\t")] for ln in cli.stdout.split("\n") if ln])
        check(cli.returncode == 0 and cl.shape == lg.shape and np.abs(cl - lg).max() < 1e-5,
              "condlora predict (CLI) = the binding", cli.stderr[-300:])

        # Hugging Face tokenizers' ids
        refs = json.load(open(os.path.join(ROOT, "tests", "data", "tokenizer", "refs.json")))["cases"]
        wp = condlora.Tokenizer(os.path.join(ROOT, "tests", "data", "tokenizer", "tiny_wordpiece"))
        same = n = 0
        for c in refs:
            a, b = bytes.fromhex(c["a_hex"]), bytes.fromhex(c["b_hex"]) if c["b_hex"] else None
            if b"\0" in a or (b and b"\0" in b):
                continue
            ids, _ = wp.encode(a, b,
                               max_length=c["max_length"] if c["max_length"] > 0 else 1 << 20)
            same += ids == c["tiny_wordpiece"]["ids"]
            n += 1
        check(n > 40 and same == n, "Tokenizer.encode = Hugging Face tokenizers", f"{same} of {n}")

        out = run.export_peft(os.path.join(tmp, "peft"))
        check(all(os.path.isfile(os.path.join(out, f)) for f in ("adapter_model.safetensors", "adapter_config.json",
                                                                   "labels.json")), "Run.export_peft")
        peft_check(out, model_dir, texts, lg, tmp)

        # Ctrl-C during train: a checkpoint, a Run with interrupted = SIGINT; resume finishes it
        def interrupt():
            os.kill(os.getpid(), signal.SIGINT)
        seen = []

        def on_ev(e):
            seen.append(e["type"])
            if e["type"] == "step" and e["step"] == 8:
                threading.Thread(target=interrupt).start()
                import time
                time.sleep(0.2)  # the signal arrives while the run goes on
        r2 = condlora.train(out=os.path.join(tmp, "run_int"), on_event=on_ev, **dict(common, save_every=4))
        ck = [d for d in os.listdir(r2.dir) if d.startswith("checkpoint-")]
        check(r2.interrupted == signal.SIGINT and 8 <= r2.result["steps"] < 24 and ck,
              "Ctrl-C: a checkpoint, then train() returns the interrupted run", f"{r2.result} {ck}")
        r3 = condlora.train(resume=r2.dir, threads=1)
        check(r3.result["steps"] == 24 and not r3.interrupted and r3.result["resumed_from"] >= 8,
              "train(resume=...) finishes it", str(r3.result))

        # pip install ./python (no network: no build isolation, no dependencies)
        target = os.path.join(tmp, "site")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
                              "--target", target, os.path.join(ROOT, "python")], capture_output=True, text=True)
        if pip.returncode != 0 and ("No module named pip" in pip.stderr or "setuptools" in pip.stderr):
            skip("pip install ./python", pip.stderr.strip().splitlines()[-1] if pip.stderr.strip() else "no pip")
        else:
            imp = subprocess.run([sys.executable, "-c", "import condlora, sys; print(condlora.__file__, "
                                  "condlora.__version__)"], capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=target), cwd=tmp)
            check(pip.returncode == 0 and imp.returncode == 0 and imp.stdout.startswith(target),
                  "pip install ./python, then import condlora from it", (pip.stderr + imp.stderr)[-400:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def peft_check(adapter, model_dir, texts, ours, tmp):
    """With torch, transformers and peft: PeftModel.from_pretrained reads the exported adapter, same logits."""
    try:
        import torch
        from peft import PeftModel
        from tokenizers import Tokenizer as HFTok
        from transformers import AutoModelForSequenceClassification
    except Exception as e:  # noqa: BLE001 - any import failure means the optional peer is absent
        skip("PEFT loads the exported adapter", f"{type(e).__name__}: {e}")
        return
    tok = HFTok.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(32)
    enc = [tok.encode(t) for t in texts]
    T = max(len(e.ids) for e in enc)
    ids = torch.tensor([e.ids + [0] * (T - len(e.ids)) for e in enc])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (T - len(e.ids)) for e in enc])
    types = torch.tensor([e.type_ids + [0] * (T - len(e.ids)) for e in enc])
    base = AutoModelForSequenceClassification.from_pretrained(model_dir)
    pm = PeftModel.from_pretrained(base, adapter)
    pm.eval()
    with torch.no_grad():
        theirs = pm(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.numpy()
    d = float(abs(theirs - ours).max())
    check(d < 1e-4, "PEFT loads the exported adapter: same logits as the binding", f"max |diff| {d:.3g}")


if __name__ == "__main__":
    try:
        main()
    except Exception:  # noqa: BLE001 - a crash is a failure with its message, never a missing summary
        import traceback
        traceback.print_exc()
        counts["failed"] += 1
    print(f"{NAME}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    sys.exit(1 if counts["failed"] else 0)
