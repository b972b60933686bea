#!/usr/bin/python3
"""Reference data for tests/test_glue.c: what Python's csv module (tab-separated, quoting=csv.QUOTE_NONE, BOM
stripped by the utf-8-sig codec) reads from each real GLUE file in ../shared/data/glue.

Writes tests/data/glue/refs.json: for each task and file present, the number of data rows, the first and the last
example (text_a, text_b, label id or score, 1-based line, id column), the count of each label id, and the total
UTF-8 byte length of all text_a + text_b (a whole-file check). Label ids follow the Hugging Face `glue` order.
Columns are found by header name (CoLA train/dev: no header, label column 1, sentence column 3).
Run: /usr/bin/python3 scripts/gen_glue_refs.py [GLUE_DIR]   (default ../shared/data/glue; a few seconds)
"""
import csv
import json
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GLUE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data", "glue")
csv.field_size_limit(1 << 30)

# task: (text_a, text_b, label column, label values in id order or None for regression, id column)
TASKS = {
    "CoLA": ("sentence", None, None, ["0", "1"], "index"),
    "SST-2": ("sentence", None, "label", ["0", "1"], "index"),
    "MRPC": ("#1 String", "#2 String", "Quality", ["0", "1"], "index"),
    "STS-B": ("sentence1", "sentence2", "score", None, "index"),
    "QNLI": ("question", "sentence", "label", ["entailment", "not_entailment"], "index"),
    "RTE": ("sentence1", "sentence2", "label", ["entailment", "not_entailment"], "index"),
    "WNLI": ("sentence1", "sentence2", "label", ["0", "1"], "index"),
}


def read(task, fname):
    a_name, b_name, l_name, values, id_name = TASKS[task]
    labelled = fname != "test.tsv"
    with open(os.path.join(GLUE, task, fname), encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task == "CoLA" and labelled:
        header, first_line = None, 1
        ia, ib, il, iid = 3, None, 1, None
    else:
        header, rows, first_line = rows[0], rows[1:], 2
        ia = header.index(a_name)
        ib = header.index(b_name) if b_name else None
        il = header.index(l_name) if labelled else None
        iid = header.index(id_name) if id_name in header else None
    out = []
    for k, r in enumerate(rows):
        ex = {"a": r[ia], "b": r[ib] if ib is not None else None, "line": first_line + k,
              "id": r[iid] if iid is not None else None}
        if labelled and values is None:
            ex["score"] = float(r[il])
        elif labelled:
            ex["label"] = values.index(r[il])
        out.append(ex)
    counts = {}
    for ex in out:
        if "label" in ex:
            counts[str(ex["label"])] = counts.get(str(ex["label"]), 0) + 1
    nbytes = sum(len(ex["a"].encode()) + (len(ex["b"].encode()) if ex["b"] is not None else 0) for ex in out)
    return {"rows": len(out), "first": out[0], "last": out[-1], "label_counts": counts, "text_bytes": nbytes,
            "score_sum": sum(ex.get("score", 0.0) for ex in out)}


def main():
    refs = {}
    for task in TASKS:
        refs[task] = {}
        for fname in ("train.tsv", "dev.tsv", "test.tsv"):
            if os.path.exists(os.path.join(GLUE, task, fname)):
                refs[task][fname] = read(task, fname)
    os.makedirs(os.path.join(ROOT, "tests", "data", "glue"), exist_ok=True)
    with open(os.path.join(ROOT, "tests", "data", "glue", "refs.json"), "w") as f:
        json.dump(refs, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for task, files in refs.items():
        print(task, {k: v["rows"] for k, v in files.items()})


if __name__ == "__main__":
    main()
