#!/usr/bin/env python3
"""Downloads the GLUE tasks' TSV files from their official locations into DIR/TASK/{train,dev,test}.tsv, the layout
`condlora train --data DIR` reads (standard library only; needs the internet).

The task archives are the ones the GLUE authors publish (https://dl.fbaipublicfiles.com/glue/data/TASK.zip). MRPC
is distributed as Microsoft's two text files plus the list of pairs GLUE holds out as dev: train.tsv and dev.tsv
are the training file split by that list, and test.tsv the test file with an index column instead of the label.

usage: scripts/download_glue.py [--tasks CoLA,SST-2,...] DIR        (default: every task)
"""
import argparse
import io
import os
import sys
import urllib.error
import urllib.request
import zipfile

BASE = "https://dl.fbaipublicfiles.com/glue/data/"
ARCHIVES = {"CoLA": "CoLA.zip", "SST-2": "SST-2.zip", "QQP": "QQP-clean.zip", "STS-B": "STS-B.zip",
            "MNLI": "MNLI.zip", "QNLI": "QNLIv2.zip", "RTE": "RTE.zip", "WNLI": "WNLI.zip"}
MRPC_TRAIN = "https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_train.txt"
MRPC_TEST = "https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_test.txt"
MRPC_DEV_IDS = ("https://firebasestorage.googleapis.com/v0/b/mtl-sentence-representations.appspot.com/o/"
                "data%2Fmrpc_dev_ids.tsv?alt=media&token=ec5c0836-31d5-48f4-b431-7480817f1adc")
TASKS = ["CoLA", "SST-2", "MRPC", "QQP", "STS-B", "MNLI", "QNLI", "RTE", "WNLI"]


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.read()
    except (urllib.error.URLError, OSError) as e:
        sys.exit(f"download_glue: cannot download {url}: {e}\n"
                 "  (no internet here? copy the GLUE TSV files as DIR/TASK/{train,dev,test}.tsv by hand)")


def unzip_task(task, dest):
    data = fetch(BASE + ARCHIVES[task])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            if name.endswith("/"):
                continue
            parts = name.split("/")
            # archives hold TASK/file (QNLI's folder is QNLI, QQP's QQP); keep the files under DIR/TASK
            rel = os.path.join(*parts[1:]) if len(parts) > 1 else parts[0]
            out = os.path.join(dest, task, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out + ".part", "wb") as f:
                f.write(src.read())
            os.replace(out + ".part", out)


def mrpc(dest):
    train = fetch(MRPC_TRAIN).decode("utf-8-sig").splitlines()
    test = fetch(MRPC_TEST).decode("utf-8-sig").splitlines()
    dev_ids = {tuple(l.split("\t")[:2]) for l in fetch(MRPC_DEV_IDS).decode("utf-8").splitlines() if l.strip()}
    d = os.path.join(dest, "MRPC")
    os.makedirs(d, exist_ok=True)
    header = train[0]
    tr, dv = [header], [header]
    for line in train[1:]:
        f = line.split("\t")
        if len(f) < 5:
            continue
        (dv if (f[1], f[2]) in dev_ids else tr).append(line)
    te = ["index\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    for i, line in enumerate(test[1:]):
        f = line.split("\t")
        if len(f) >= 5:
            te.append("\t".join([str(i)] + f[1:5]))
    for name, rows in (("train.tsv", tr), ("dev.tsv", dv), ("test.tsv", te)):
        with open(os.path.join(d, name + ".part"), "w", encoding="utf-8") as f:
            f.write("\n".join(rows) + "\n")
        os.replace(os.path.join(d, name + ".part"), os.path.join(d, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tasks", default=",".join(TASKS))
    a = ap.parse_args()
    for t in [x.strip() for x in a.tasks.split(",") if x.strip()]:
        if t not in TASKS:
            sys.exit(f"download_glue: unknown task '{t}' (one of {', '.join(TASKS)})")
        print(f"downloading {t} ...", file=sys.stderr)
        if t == "MRPC":
            mrpc(a.dir)
        else:
            unzip_task(t, a.dir)
    print(f"done: {a.dir}", file=sys.stderr)


if __name__ == "__main__":
    main()
