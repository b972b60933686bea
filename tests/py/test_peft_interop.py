#!/usr/bin/python3
"""End-to-end PEFT interoperability of the condlora CLI, against PyTorch + transformers + PEFT (run by tests/run.sh
with /usr/bin/python3; SKIPs cleanly when torch, transformers, peft or tokenizers are missing).

In a temporary directory: a tiny random BERT (hidden 32, 2 layers, the 378-token WordPiece vocabulary of
tests/data/tokenizer) and tiny GLUE-format SST-2 and STS-B data. Then:
  1. `condlora train` a few steps with --method lora, condlora, salora, adalora (and lora on STS-B); RUN/best is loaded by
     PeftModel.from_pretrained on AutoModelForSequenceClassification of the same base directory, and PEFT's logits
     on the dev sentences must equal `condlora predict --adapter RUN` (max |diff| <= 1e-4); a run with
     --train-pooler 1 lists "pooler" in modules_to_save, saves a pooler that moved, and PEFT gives the same logits;
  2. a PEFT LoRA adapter trained a few AdamW steps in Python (query, value, intermediate.dense with a rank_pattern,
     modules_to_save pooler) and saved by PeftModel.save_pretrained: `condlora predict --adapter` reproduces PEFT's logits;
  3. `condlora merge`: AutoModelForSequenceClassification.from_pretrained(OUT) loads every tensor (no missing or
     unexpected keys) and gives the same logits; the STS-B merge is a regression model;
  4. `condlora predict --format glue --task ...` writes GLUE submission files;
  5. MPNet: a tiny random MPNetForSequenceClassification (relative-attention bias scaled to std 2) with a WordPiece
     tokenizer.json in all-mpnet-base-v2's form (RobertaProcessing, <s> <pad> </s> <unk>): `condlora train` LoRA and
     CondLoRA runs whose adapter_config.json names PEFT's MPNet modules (["q", "v"]), loaded by PEFT with the same
     logits as `condlora predict --adapter`, and `condlora merge` writing an MPNetForSequenceClassification that
     transformers loads (no missing or unexpected keys) with the same logits;
  6. multi-label own data (JSON Lines lists of tags): the run's adapter in PEFT, its merge read by transformers as a
     problem_type multi_label_classification model with the run's label names and the same logits, and
     `condlora predict --format labels` giving transformers' sigmoid probabilities and the set above 0.5.
CL_BIN names the condlora binary (default build/condlora). CL_PEFT_MINILM=1 uses the real all-MiniLM-L6-v2 from
~/.cache/condlora/models/all-MiniLM-L6-v2 (when present) instead of the tiny model. The last line of the output is
"test_peft_interop: N passed, N failed, N skipped".
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import warnings

NAME = "test_peft_interop"
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOL = 1e-4
counts = {"passed": 0, "failed": 0, "skipped": 0}
worst = {}
reported = set()


def summary():
    print(f"{NAME}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    sys.exit(1 if counts["failed"] else 0)


def check(cond, what, detail=""):
    if cond:
        counts["passed"] += 1
        print(f"ok   {what}" + (f" ({detail})" if detail else ""))
    else:
        counts["failed"] += 1
        print(f"FAIL {NAME}: {what}" + (f": {detail}" if detail else ""))
    return cond


def skip(what, why):
    counts["skipped"] += 1
    print(f"SKIP {NAME}: {what}: {why}")


try:
    warnings.filterwarnings("ignore")
    import torch
    import transformers
    import peft
    from tokenizers import Tokenizer
    from safetensors import safe_open
except Exception as e:  # noqa: BLE001 - any import failure means "not available here"
    skip("all", f"torch / transformers / peft / tokenizers not importable ({e})")
    summary()

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

transformers.logging.set_verbosity_error()
BIN = os.environ.get("CL_BIN", os.path.join(ROOT, "build", "condlora"))
if not os.path.isabs(BIN):
    BIN = os.path.join(ROOT, BIN)
if not os.access(BIN, os.X_OK):
    skip("all", f"{BIN} is not built")
    summary()

WORDS = ["the", "a", "movie", "film", "was", "is", "very", "plot", "actor", "fun", "slow", "long", "story", "ok",
         "and"]


def sentence(rng, lab):
    n = 3 + rng.randrange(6)
    return " ".join((("good" if lab else "bad") if rng.random() < 0.7 else rng.choice(WORDS)) for _ in range(n))


def write_glue(root):
    rng = random.Random(5)
    d = os.path.join(root, "SST-2")
    os.makedirs(d)
    for split, n in (("train", 64), ("dev", 16)):
        with open(os.path.join(d, f"{split}.tsv"), "w") as f:
            f.write("sentence\tlabel\n")
            for _ in range(n):
                lab = rng.randrange(2)
                f.write(f"{sentence(rng, lab)}\t{lab}\n")
    with open(os.path.join(d, "test.tsv"), "w") as f:
        f.write("index\tsentence\n")
        for i in range(8):
            f.write(f"{i}\t{sentence(rng, rng.randrange(2))}\n")
    d = os.path.join(root, "STS-B")
    os.makedirs(d)
    hdr = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    for split, n in (("train", 48), ("dev", 12)):
        with open(os.path.join(d, f"{split}.tsv"), "w") as f:
            f.write(hdr)
            for i in range(n):
                a, b = sentence(rng, rng.randrange(2)), sentence(rng, rng.randrange(2))
                f.write(f"{i}\tg\tf\t2012\t{i}\ts\ts\t{a}\t{b}\t{rng.uniform(0, 5):.3f}\n")
    with open(os.path.join(d, "test.tsv"), "w") as f:
        f.write(hdr.replace("\tscore", ""))
        for i in range(6):
            f.write(f"{i}\tg\tf\t2012\t{i}\ts\ts\t{sentence(rng, 1)}\t{sentence(rng, 0)}\n")


def make_base(tmp):
    minilm = os.path.expanduser("~/.cache/condlora/models/all-MiniLM-L6-v2")
    if os.environ.get("CL_PEFT_MINILM") == "1" and os.path.isfile(os.path.join(minilm, "config.json")):
        print(f"base model: {minilm}")
        return minilm
    torch.manual_seed(3)
    cfg = BertConfig(vocab_size=378, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64, type_vocab_size=2, pad_token_id=0, initializer_range=0.2,
                     num_labels=2)
    d = os.path.join(tmp, "base")
    BertForSequenceClassification(cfg).save_pretrained(d, safe_serialization=True)
    shutil.copy(os.path.join(ROOT, "tests", "data", "tokenizer", "tiny_wordpiece", "tokenizer.json"), d)
    return d


def make_mpnet_base(tmp):
    """A tiny MPNetForSequenceClassification and a tokenizer.json as all-mpnet-base-v2's (WordPiece + BertNormalizer +
    BertPreTokenizer + RobertaProcessing, <s>=0 <pad>=1 </s>=2 <unk>=3)."""
    from tokenizers import models, normalizers, pre_tokenizers, processors
    from transformers import MPNetConfig, MPNetForSequenceClassification
    vocab = ["<s>", "<pad>", "</s>", "<unk>"] + sorted(set(WORDS + ["good", "bad"])) + ["[UNK]"]
    tk = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    torch.manual_seed(4)
    cfg = MPNetConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=66, pad_token_id=1, initializer_range=0.2,
                      num_labels=2, layer_norm_eps=1e-5)
    m = MPNetForSequenceClassification(cfg)
    with torch.no_grad():
        m.mpnet.encoder.relative_attention_bias.weight.normal_(0.0, 2.0)
    d = os.path.join(tmp, "mpnet_base")
    m.save_pretrained(d, safe_serialization=True)
    tk.save(os.path.join(d, "tokenizer.json"))
    return d


def encode_mpnet(tok, texts):
    encs = [tok.encode(a) for a in texts]
    T = max(len(e.ids) for e in encs)
    ids = torch.ones((len(encs), T), dtype=torch.long)  # <pad> = 1
    mask = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        ids[i, :len(e.ids)] = torch.tensor(e.ids)
        mask[i, :len(e.ids)] = 1
    return dict(input_ids=ids, attention_mask=mask)


def run(args, what):
    p = subprocess.run([BIN] + args, capture_output=True, text=True)
    if p.returncode != 0:
        check(False, what, f"exit {p.returncode}: {p.stderr.strip()[-600:]}")
        return None
    return p.stdout


def read_tsv_column(path, col):
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    return [r[col] for r in rows]


def encode(tok, texts, pairs=None, max_len=64):
    encs = [tok.encode(a, b) if pairs else tok.encode(a) for a, b in zip(texts, pairs or texts)]
    T = max(len(e.ids) for e in encs)
    ids = torch.zeros((len(encs), T), dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(encs):
        n = min(len(e.ids), max_len)
        ids[i, :n] = torch.tensor(e.ids[:n])
        types[i, :n] = torch.tensor(e.type_ids[:n])
        mask[i, :n] = 1
    return dict(input_ids=ids, token_type_ids=types, attention_mask=mask)


def logits_of(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).logits.float()


def parse_logits(text):
    return torch.tensor([[float(x) for x in line.split("\t")] for line in text.strip().split("\n")])


def compare(tag, ours, theirs):
    if ours is None or theirs is None:
        return check(False, tag, "no logits")
    if ours.shape != theirs.shape:
        return check(False, tag, f"shapes {tuple(ours.shape)} vs {tuple(theirs.shape)}")
    d = (ours - theirs).abs().max().item()
    worst[tag] = d
    return check(d <= TOL, tag, f"max |diff| {d:.3g}")


def peft_model(base_dir, adapter_dir, num_labels, tmp):
    """PeftModel.from_pretrained(AutoModelForSequenceClassification(base), adapter_dir). A configuration in condlora's
    format from before cl_peft_write_config (a "condlora" key, which PEFT 0.10 refuses) is reported as a skip and
    read from a sanitised copy (rank_pattern from the tensors' shapes)."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    src = adapter_dir
    if "condlora" in cfg:
        if adapter_dir not in reported:
            reported.add(adapter_dir)
            skip(f"PEFT loads {adapter_dir} as written",
                 "adapter_config.json has the pre-cl_peft_write_config 'condlora' key (runio.c not switched yet)")
        src = os.path.join(tmp, "sanitised", os.path.basename(os.path.dirname(adapter_dir)))
        os.makedirs(src, exist_ok=True)
        shutil.copy(os.path.join(adapter_dir, "adapter_model.safetensors"), src)
        cfg.pop("condlora")
        ranks = {}
        with safe_open(os.path.join(adapter_dir, "adapter_model.safetensors"), "pt") as f:
            for k in f.keys():
                if k.endswith("lora_A.weight"):
                    ranks[k.split("base_model.model.bert.")[-1].rsplit(".lora_A", 1)[0]] = f.get_slice(k).get_shape()[0]
        if cfg["peft_type"] == "LORA":
            cfg["rank_pattern"] = {k: v for k, v in ranks.items() if v != cfg["r"]}
        with open(os.path.join(src, "adapter_config.json"), "w") as f:
            json.dump(cfg, f)
    base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=num_labels,
                                                              ignore_mismatched_sizes=True)
    return PeftModel.from_pretrained(base, src)


def save_peft(model, d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "README.md"), "w") as f:  # else PEFT renders a model card (needs Jinja2)
        f.write("---\nlibrary_name: peft\n---\n")
    model.save_pretrained(d, safe_serialization=True)


def main():
    tmp = tempfile.mkdtemp(prefix="cl_peft_interop_")
    try:
        glue = os.path.join(tmp, "glue")
        write_glue(glue)
        base = make_base(tmp)
        tok = Tokenizer.from_file(os.path.join(base, "tokenizer.json"))
        tok.no_truncation()
        tok.no_padding()
        sst_dev = os.path.join(glue, "SST-2", "dev.tsv")
        sst_test = os.path.join(glue, "SST-2", "test.tsv")
        sts_dev = os.path.join(glue, "STS-B", "dev.tsv")
        sst_batch = encode(tok, read_tsv_column(sst_dev, 0))
        sts_batch = encode(tok, read_tsv_column(sts_dev, 7), read_tsv_column(sts_dev, 8))
        common = ["--model", base, "--data", glue, "--protocol", "glue", "--max-steps", "6", "--batch-size", "8",
                  "--max-length", "32", "--threads", "1", "--lr", "2e-2", "--eval-every", "3", "--quiet",
                  "--targets", "query,value,intermediate.dense"]

        # 1. condlora runs read by PEFT
        runs = {}
        for method, task in (("lora", "SST-2"), ("condlora", "SST-2"), ("salora", "SST-2"), ("adalora", "SST-2"),
                             ("lora", "STS-B")):
            out = os.path.join(tmp, f"run_{method}_{task}")
            args = ["train", "--task", task, "--method", method, "--out", out] + common
            if method == "condlora":  # square targets only
                args[args.index("query,value,intermediate.dense")] = "query,value"
            if run(args, f"condlora train --method {method} ({task})") is None:
                continue
            runs[(method, task)] = out
            with safe_open(os.path.join(out, "best", "adapter_model.safetensors"), "pt") as f:
                mb = max(f.get_tensor(k).abs().max().item() for k in f.keys() if "lora_B" in k)
                plain = not any("lora_E" in k for k in f.keys())
            # AdaLoRA's B starts random, so its check is that it is exported as plain LoRA (E folded into A)
            check(mb > 1e-3 and plain, f"{method} run ({task}): the adapter moved from B = 0, plain LoRA tensors",
                  f"max |B| {mb:.3g}, lora_E absent: {plain}")
            nl = 1 if task == "STS-B" else 2
            batch, dev = (sts_batch, sts_dev) if task == "STS-B" else (sst_batch, sst_dev)
            theirs = logits_of(peft_model(base, os.path.join(out, "best"), nl, tmp), batch)
            cols = ["--text-columns", "7,8"] if task == "STS-B" else ["--text-columns", "0"]
            ours = run(["predict", "--model", base, "--adapter", out, "--input", dev, "--skip-header"] + cols,
                       f"predict --adapter {method} run")
            compare(f"{method} run ({task}): condlora predict --adapter vs PEFT", ours and parse_logits(ours), theirs)
            # the same through the task's column names
            ours = run(["predict", "--model", base, "--adapter", out, "--input", dev, "--task", task],
                       f"predict --task {task}")
            compare(f"{method} run ({task}): predict --task reads the dev file by column name",
                    ours and parse_logits(ours), theirs)

        # 1b. a BERT head trained with its pooler (--train-pooler 1): modules_to_save lists "pooler", PEFT loads it
        out = os.path.join(tmp, "run_lora_pooler")
        if run(["train", "--task", "SST-2", "--method", "lora", "--out", out, "--train-pooler", "1"] + common,
               "condlora train --train-pooler 1") is not None:
            best = os.path.join(out, "best")
            with open(os.path.join(best, "adapter_config.json")) as f:
                mts = json.load(f).get("modules_to_save") or []
            check("pooler" in mts and "classifier" in mts, "--train-pooler 1: modules_to_save lists pooler",
                  f"modules_to_save {mts}")
            with safe_open(os.path.join(best, "adapter_model.safetensors"), "pt") as f:
                pw = f.get_tensor("base_model.model.bert.pooler.dense.weight") \
                    if "base_model.model.bert.pooler.dense.weight" in f.keys() else None
            pm = peft_model(base, best, 2, tmp)
            w0 = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2).bert.pooler.dense.weight
            check(pw is not None and (pw - w0).abs().max().item() > 1e-4,
                  "--train-pooler 1: the saved pooler moved from the base model's",
                  "no pooler tensor" if pw is None else f"max |diff| {(pw - w0).abs().max().item():.3g}")
            theirs = logits_of(pm, sst_batch)
            ours = run(["predict", "--model", base, "--adapter", out, "--input", sst_dev, "--skip-header"],
                       "predict --adapter (pooler run)")
            compare("--train-pooler 1 run: condlora predict --adapter vs PEFT", ours and parse_logits(ours), theirs)

        # 2. a PEFT adapter trained in Python, read by condlora
        torch.manual_seed(11)
        model = get_peft_model(AutoModelForSequenceClassification.from_pretrained(base, num_labels=2),
                               LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8,
                                          target_modules=["query", "value", "intermediate.dense"],
                                          rank_pattern={"layer.1.attention.self.query": 2},
                                          modules_to_save=["pooler"]))
        train = os.path.join(glue, "SST-2", "train.tsv")
        tb = encode(tok, read_tsv_column(train, 0))
        labels = torch.tensor([int(x) for x in read_tsv_column(train, 1)])
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        model.train()
        for step in range(5):
            sl = slice(8 * step, 8 * step + 8)
            loss = model(**{k: v[sl] for k, v in tb.items()}, labels=labels[sl]).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        pdir = os.path.join(tmp, "peft_trained")
        save_peft(model, pdir)
        theirs_py = logits_of(model, sst_batch)
        nonzero = max(p.abs().max().item() for n, p in model.named_parameters() if "lora_B" in n)
        check(nonzero > 0, "the Python-trained adapter has non-zero B", f"max |B| {nonzero:.3g}")
        ours = run(["predict", "--model", base, "--adapter", pdir, "--input", sst_dev, "--skip-header"],
                   "predict --adapter (PEFT-trained)")
        compare("PEFT-trained adapter: condlora predict --adapter vs PEFT", ours and parse_logits(ours), theirs_py)

        # 2b. adapters written by cl_peft_write_config with per-module ranks (SaLoRA: rank_pattern, a rank-0 module
        # left out of a regex target_modules), made by tests/test_peft.c, read by PEFT
        tbin = os.path.join(os.path.dirname(BIN), "tests", "test_peft")  # the build of CL_BIN
        if os.access(tbin, os.X_OK):
            exp = os.path.join(tmp, "c_export")
            env = dict(os.environ, CL_PEFT_EXPORT_DIR=exp)
            env.pop("CL_BIN", None)
            subprocess.run([tbin], cwd=ROOT, env=env, capture_output=True)
            with safe_open(os.path.join(ROOT, "tests", "data", "peft", "refs.safetensors"), "pt") as f:
                ids, lens, types = (f.get_tensor(k).long() for k in ("bert.input_ids", "bert.lengths",
                                                                      "bert.token_type_ids"))
            mask = (torch.arange(ids.shape[1])[None, :] < lens[:, None]).long()
            ids_tsv = os.path.join(tmp, "ids.tsv")
            # MPNet: PEFT's names (q, v, output.dense as a list; SaLoRA's rank_pattern keyed attention.attn.v)
            with safe_open(os.path.join(ROOT, "tests", "data", "peft", "refs_mpnet.safetensors"), "pt") as f:
                mids, mlens = (f.get_tensor(k).long() for k in ("mpnet.input_ids", "mpnet.lengths"))
            for arch, ids_, lens_, types_, names in (
                    ("bert", ids, lens, types * 0, ("rt_lora", "rt_salora", "rt_salora_zero", "rt_lora_layer1")),
                    ("mpnet", mids, mlens, None, ("rt_mpnet_lora", "rt_mpnet_salora"))):
                mask = (torch.arange(ids_.shape[1])[None, :] < lens_[:, None]).long()
                with open(ids_tsv, "w") as f:
                    for r in range(ids_.shape[0]):
                        f.write(" ".join(str(int(x)) for x in ids_[r, :int(lens_[r])]) + "\n")
                fixture = os.path.join(ROOT, "tests", "data", "peft", arch)
                kw = {} if types_ is None else {"token_type_ids": types_}
                for t in names:
                    adir = os.path.join(exp, t)
                    if not os.path.isfile(os.path.join(adir, "adapter_config.json")):
                        check(False, f"{t}: written by build/tests/test_peft")
                        continue
                    pm = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(fixture), adir)
                    pm.eval()
                    with torch.no_grad():
                        theirs = pm(input_ids=ids_, attention_mask=mask, **kw).logits
                    ours = run(["predict", "--model", fixture, "--adapter", adir, "--input", ids_tsv, "--ids"], t)
                    compare(f"cl_peft_write_config {t}: PEFT loads it, same logits", ours and parse_logits(ours),
                            theirs)
        else:
            skip("cl_peft_write_config adapters in PEFT", f"{tbin} is not built")

        # 3. merge, read by transformers alone
        merges = [("peft_trained", pdir, sst_batch, theirs_py, 2)]
        for (method, task), out in runs.items():
            nl = 1 if task == "STS-B" else 2
            batch = sts_batch if task == "STS-B" else sst_batch
            merges.append((f"{method}_{task}", out, batch, logits_of(peft_model(base, os.path.join(out, "best"), nl,
                                                                                tmp), batch), nl))
        for tag, adir, batch, theirs, nl in merges:
            mdir = os.path.join(tmp, f"merged_{tag}")
            if run(["merge", "--model", base, "--adapter", adir, "--out", mdir], f"merge {tag}") is None:
                continue
            m, info = AutoModelForSequenceClassification.from_pretrained(mdir, output_loading_info=True)
            check(not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"],
                  f"merged {tag}: transformers loads every tensor", str(info))
            compare(f"merged {tag}: transformers' logits vs PEFT", logits_of(m, batch), theirs)
            check(m.config.num_labels == nl and (nl > 1 or m.config.problem_type == "regression"),
                  f"merged {tag}: config num_labels {m.config.num_labels}, problem_type {m.config.problem_type}")
            check(os.path.isfile(os.path.join(mdir, "tokenizer.json")), f"merged {tag}: tokenizer.json copied")

        # 4. GLUE submission files
        if ("lora", "SST-2") in runs:
            out = run(["predict", "--model", base, "--adapter", runs[("lora", "SST-2")], "--input", sst_test, "--task",
                       "sst2", "--format", "glue"], "predict --format glue (SST-2)")
            if out is not None:
                lines = out.strip().split("\n")
                test_batch = encode(tok, read_tsv_column(sst_test, 1))
                pm = peft_model(base, os.path.join(runs[("lora", "SST-2")], "best"), 2, tmp)
                want = [str(i) + "\t" + str(int(x)) for i, x in enumerate(logits_of(pm, test_batch).argmax(-1))]
                check(lines[0] == "index\tprediction" and lines[1:] == want, "SST-2 GLUE submission file",
                      f"{lines[:3]} vs {want[:2]}")
        if ("lora", "STS-B") in runs:
            sts_test = os.path.join(glue, "STS-B", "test.tsv")
            out = run(["predict", "--model", base, "--adapter", runs[("lora", "STS-B")], "--input", sts_test, "--task",
                       "STS-B", "--format", "glue"], "predict --format glue (STS-B)")
            if out is not None:
                lines = out.strip().split("\n")
                ok = lines[0] == "index\tprediction" and len(lines) == 7
                ok = ok and all(ln.split("\t")[0] == str(i) and float(ln.split("\t")[1]) == float(ln.split("\t")[1])
                                for i, ln in enumerate(lines[1:]))
                check(ok, "STS-B GLUE submission file (scores)", str(lines[:3]))

        # 5. MPNet: condlora's runs in PEFT, condlora's merge in transformers
        mbase = make_mpnet_base(tmp)
        mtok = Tokenizer.from_file(os.path.join(mbase, "tokenizer.json"))
        mtok.no_truncation()
        mtok.no_padding()
        mbatch = encode_mpnet(mtok, read_tsv_column(sst_dev, 0))
        mcommon = [a if a != base else mbase for a in common]
        mcommon[mcommon.index("query,value,intermediate.dense")] = "query,value"
        for method in ("lora", "condlora"):
            out = os.path.join(tmp, f"run_mpnet_{method}")
            if run(["train", "--task", "SST-2", "--method", method, "--out", out] + mcommon,
                   f"condlora train --method {method} (MPNet)") is None:
                continue
            best = os.path.join(out, "best")
            with open(os.path.join(best, "adapter_config.json")) as f:
                tm = json.load(f).get("target_modules")
            check(sorted(tm) == ["q", "v"], f"MPNet {method} run: target_modules are PEFT's MPNet names", str(tm))
            pm = peft_model(mbase, best, 2, tmp)
            theirs = logits_of(pm, mbatch)
            ours = run(["predict", "--model", mbase, "--adapter", out, "--input", sst_dev, "--skip-header"],
                       f"predict --adapter (MPNet {method})")
            compare(f"MPNet {method} run: condlora predict --adapter vs PEFT", ours and parse_logits(ours), theirs)
            mdir = os.path.join(tmp, f"merged_mpnet_{method}")
            if run(["merge", "--model", mbase, "--adapter", out, "--out", mdir], f"merge MPNet {method}") is None:
                continue
            m, info = AutoModelForSequenceClassification.from_pretrained(mdir, output_loading_info=True)
            check(type(m).__name__ == "MPNetForSequenceClassification" and not info["missing_keys"] and
                  not info["unexpected_keys"] and not info["mismatched_keys"],
                  f"merged MPNet {method}: transformers loads an MPNetForSequenceClassification, every tensor",
                  f"{type(m).__name__} {info}")
            compare(f"merged MPNet {method}: transformers' logits vs PEFT", logits_of(m, mbatch), theirs)

        # 6. multi-label own data (JSON Lines lists): the run in PEFT, the merge in transformers as a
        # multi_label_classification model, predict --format labels = sigmoid of transformers' logits
        ml = os.path.join(tmp, "multi.jsonl")
        train_rows = [r.split("\t") for r in open(os.path.join(glue, "SST-2", "train.tsv")).read().splitlines()[1:]]
        with open(ml, "w") as f:
            for text, lab in train_rows:
                tags = (["pos"] if lab == "1" else []) + (["film"] if "actor" in text or "story" in text else [])
                f.write(json.dumps({"text": text, "tags": tags}) + "\n")
        out = os.path.join(tmp, "run_multi")
        if run(["train", "--model", base, "--train", ml, "--text-columns", "text", "--label-column", "tags",
                "--method", "lora", "--out", out, "--max-steps", "6", "--batch-size", "8", "--max-length", "32",
                "--threads", "1", "--lr", "2e-2", "--eval-every", "3", "--quiet"], "condlora train (multi-label)"):
            texts = [json.loads(x)["text"] for x in open(ml).read().splitlines()][:16]
            mlb = encode(tok, texts)
            theirs = logits_of(peft_model(base, os.path.join(out, "best"), 2, tmp), mlb)
            ml16 = os.path.join(tmp, "multi16.jsonl")
            with open(ml16, "w") as f:
                f.write("".join(x + "\n" for x in open(ml).read().splitlines()[:16]))
            ours = run(["predict", "--model", base, "--adapter", out, "--input", ml16, "--text-columns", "text"],
                       "predict --adapter (multi-label)")
            compare("multi-label run: condlora predict --adapter vs PEFT", ours and parse_logits(ours), theirs)
            mdir = os.path.join(tmp, "merged_multi")
            if run(["merge", "--model", base, "--adapter", out, "--out", mdir], "merge (multi-label)") is not None:
                m, info = AutoModelForSequenceClassification.from_pretrained(mdir, output_loading_info=True)
                check(m.config.problem_type == "multi_label_classification" and
                      m.config.id2label == {0: "film", 1: "pos"} and not info["missing_keys"],
                      "merged multi-label: transformers reads problem_type multi_label_classification and the labels",
                      f"{m.config.problem_type} {m.config.id2label} {info}")
                compare("merged multi-label: transformers' logits vs PEFT", logits_of(m, mlb), theirs)
                lab = run(["predict", "--model", mdir, "--input", ml16, "--text-columns", "text", "--format",
                           "labels"], "predict --format labels (merged multi-label)")
                if lab is not None:
                    lines = lab.strip("\n").split("\n")
                    probs = torch.tensor([[float(x) for x in ln.split("\t")[2:]] for ln in lines[1:]])
                    sig = torch.sigmoid(theirs)
                    sets = [ln.split("\t")[1] for ln in lines[1:]]
                    want = [",".join(n for j, n in enumerate(("film", "pos")) if sig[i, j] > 0.5) for i in range(16)]
                    check(lines[0] == "index\tlabels\tfilm\tpos" and (probs - sig).abs().max().item() < 1e-5 and
                          sets == want, "multi-label predict --format labels: sigmoid of transformers' logits, "
                          "the set above 0.5", f"{lines[:3]} vs {sig[:2]}")
    finally:
        if not os.environ.get("CL_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
    if worst:
        print("max |condlora - PEFT/transformers| logit difference: %.3g (%s)" % (max(worst.values()),
                                                                                 max(worst, key=worst.get)))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - a crash is a failure with its message, never a missing summary
        import traceback
        traceback.print_exc()
        check(False, "no exception", repr(e))
    summary()
