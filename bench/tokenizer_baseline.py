#!/usr/bin/env python3
"""Baseline for bench/bench_tokenizer.sh: Hugging Face `tokenizers` batch-encoding all SST-2 train sentences on one
thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false), RoBERTa and BERT, best of 3. Prints one line per kind:
`<kind> <seconds> <sentences> <tokens>`."""
import os, sys, time
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from transformers import BertTokenizerFast, RobertaTokenizerFast
import transformers
transformers.logging.set_verbosity_error()
shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
td = os.path.join(shared, "data", "tokenizers")
with open(os.path.join(shared, "data", "glue", "SST-2", "train.tsv"), "rb") as f:
    lines = f.read().decode("utf-8").split("\n")[1:]
sents = [l.split("\t")[0] for l in lines if l]
toks = {"roberta": RobertaTokenizerFast(vocab_file=os.path.join(td, "roberta-base", "vocab.json"),
                                        merges_file=os.path.join(td, "roberta-base", "merges.txt")),
        "bert": BertTokenizerFast(vocab_file=os.path.join(td, "bert-base-uncased", "vocab.txt"))}
for name, tok in toks.items():
    be = tok.backend_tokenizer
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        encs = be.encode_batch(sents)
        best = min(best, time.perf_counter() - t0)
    print(f"{name} {best:.4f} {len(sents)} {sum(len(e.ids) for e in encs)}")
