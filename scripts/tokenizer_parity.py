#!/usr/bin/env python3
"""Tokenizer parity: condlora's tokenizers against Hugging Face `tokenizers` (through transformers' fast tokenizers).

For every sentence of ../shared/data/glue (all tasks, train and dev) this encodes each sentence alone (no
truncation) and, for the pair tasks, each sentence pair with truncation=True, max_length=128, with both the RoBERTa
(byte-level BPE) and BERT (WordPiece, uncased) tokenizers, runs `condlora tokenize` on the same lines and compares
the ids line by line. With all-mpnet-base-v2 in the cache (scripts/fetch_model.sh all-mpnet-base-v2, or --mpnet DIR)
its tokenizer.json (AutoTokenizer, as transformers loads it) is checked the same way, and so is its vocab.txt alone
with tokenizer_config.json (MPNetTokenizer's template, against the same tokenizer.json ids).
--sweep adds lines covering every Unicode scalar value (checks the character classes).
Prints the number of sequences compared and of mismatches; exits 1 on any mismatch.

usage: /usr/bin/python3 scripts/tokenizer_parity.py [--bin build/condlora] [--shared ../shared] [--sweep]
"""
import argparse, os, subprocess, sys, tempfile

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


def glue_rows(glue):
    # (file, columns, has_header): columns is (a,) or (a, b)
    tasks = [("CoLA", (3,), False), ("SST-2", (0,), True), ("MRPC", (3, 4), True), ("STS-B", (7, 8), True),
             ("RTE", (1, 2), True), ("WNLI", (1, 2), True), ("QNLI", (1, 2), True)]
    for task, cols, header in tasks:
        for split in ("train", "dev"):
            path = os.path.join(glue, task, split + ".tsv")
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                lines = f.read().split(b"\n")
            if header:
                lines = lines[1:]
            for ln in lines:
                ln = ln.rstrip(b"\r")
                if not ln:
                    continue
                parts = ln.split(b"\t")
                if len(parts) <= max(cols):
                    continue
                yield task, split, [parts[c] for c in cols]


def sweep_lines():
    cps = [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF) and c not in (0x0A, 0x0D, 0x09)]
    # each code point between letters, digits, punctuation and spaces, 48 per line
    out = []
    for i in range(0, len(cps), 48):
        s = ""
        for c in cps[i:i + 48]:
            ch = chr(c)
            s += "a" + ch + "b 1" + ch + "2 ." + ch + "! " + ch + " "
        out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/condlora")
    ap.add_argument("--shared", default=os.environ.get("CL_SHARED", "../shared"))
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--only", choices=["roberta", "bert", "mpnet", "mpnet_vocab"], help="check one tokenizer")
    ap.add_argument("--mpnet", default=os.path.join(os.environ.get("CONDLORA_CACHE",
                                                                   os.path.expanduser("~/.cache/condlora")),
                                                    "models", "all-mpnet-base-v2"))
    args = ap.parse_args()
    from transformers import AutoTokenizer, BertTokenizerFast, RobertaTokenizerFast
    import transformers
    transformers.logging.set_verbosity_error()
    tokdir = os.path.join(args.shared, "data", "tokenizers")
    toks = {
        "roberta": (RobertaTokenizerFast(vocab_file=os.path.join(tokdir, "roberta-base", "vocab.json"),
                                         merges_file=os.path.join(tokdir, "roberta-base", "merges.txt")),
                    os.path.join(tokdir, "roberta-base")),
        "bert": (BertTokenizerFast(vocab_file=os.path.join(tokdir, "bert-base-uncased", "vocab.txt"),
                                   do_lower_case=True), os.path.join(tokdir, "bert-base-uncased")),
    }
    td_mp = None
    if os.path.isfile(os.path.join(args.mpnet, "tokenizer.json")):
        toks["mpnet"] = (AutoTokenizer.from_pretrained(args.mpnet), args.mpnet)
        # vocab.txt + tokenizer_config.json alone: the same ids expected (MPNetTokenizer's template)
        td_mp = tempfile.TemporaryDirectory()
        for f in ("vocab.txt", "tokenizer_config.json"):
            os.symlink(os.path.join(os.path.abspath(args.mpnet), f), os.path.join(td_mp.name, f))
        toks["mpnet_vocab"] = (toks["mpnet"][0], td_mp.name)
    else:
        print(f"parity: no {args.mpnet}/tokenizer.json (scripts/fetch_model.sh all-mpnet-base-v2); MPNet skipped")
    singles, pairs = [], []
    for task, split, cols in glue_rows(os.path.join(args.shared, "data", "glue")):
        for c in cols:
            singles.append(c)
        if len(cols) == 2:
            pairs.append(cols)
    if args.sweep:
        singles += [s.encode("utf-8", "surrogatepass") for s in sweep_lines()]
    total = bad = 0
    with tempfile.TemporaryDirectory() as td:
        for name, (tok, d) in toks.items():
            if args.only and name != args.only:
                continue
            for kind, items in (("single", singles), ("pair", pairs)):
                if not items:
                    continue
                inp = os.path.join(td, "in.txt")
                with open(inp, "wb") as f:
                    for it in items:
                        f.write((it if kind == "single" else it[0] + b"\t" + it[1]) + b"\n")
                cmd = [args.bin, "tokenize", "--tokenizer", d]
                if kind == "pair":
                    cmd += ["--pair", "--max-length", str(args.max_length)]
                with open(inp, "rb") as f:
                    res = subprocess.run(cmd, stdin=f, stdout=subprocess.PIPE, check=True)
                got = res.stdout.decode().split("\n")[:-1]
                if kind == "single":
                    texts = [t.decode("utf-8", "replace") for t in items]
                    enc = tok(texts)["input_ids"]
                else:
                    enc = tok([a.decode("utf-8", "replace") for a, _ in items],
                              [b.decode("utf-8", "replace") for _, b in items],
                              truncation=True, max_length=args.max_length)["input_ids"]
                n_bad = 0
                if len(got) != len(enc):
                    print(f"{name} {kind}: {len(got)} output lines for {len(enc)} inputs")
                    n_bad += abs(len(got) - len(enc))
                for i, (g, e) in enumerate(zip(got, enc)):
                    if g != " ".join(map(str, e)):
                        n_bad += 1
                        if n_bad <= 5:
                            print(f"MISMATCH {name} {kind} #{i}: {items[i]!r}\n  condlora {g}\n  hf       "
                                  f"{' '.join(map(str, e))}")
                print(f"{name:8s} {kind:6s}: {len(enc)} sequences, {n_bad} mismatches")
                total += len(enc)
                bad += n_bad
    print(f"parity: {total} sequences compared, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
