#!/usr/bin/python3
"""Converts a PyTorch checkpoint (pytorch_model.bin, or a sharded pytorch_model.bin.index.json) into
model.safetensors beside it, so that condlora can load the directory.

usage: /usr/bin/python3 scripts/convert_bin_to_safetensors.py DIR_OR_FILE [--out OUT.safetensors] [--force]

Tensors are kept in their dtype (condlora converts F16/BF16/F64 to fp32 on load); tensors sharing storage (tied
weights) are cloned; non-tensor entries are skipped with a message. The output is written to a temporary file and
renamed, so an interrupted run never leaves a truncated model.safetensors. Loads with weights_only=True where the
installed torch supports it (no arbitrary code from the pickle)."""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file


def load_bin(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # very old torch without weights_only
        return torch.load(path, map_location="cpu")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="model directory, pytorch_model.bin or pytorch_model.bin.index.json")
    ap.add_argument("--out", help="output file (default: model.safetensors in the source directory)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing output")
    a = ap.parse_args()

    src = a.src
    if os.path.isdir(src):
        d = src
        for cand in ("pytorch_model.bin", "pytorch_model.bin.index.json"):
            if os.path.exists(os.path.join(d, cand)):
                src = os.path.join(d, cand)
                break
        else:
            sys.exit(f"{d}: no pytorch_model.bin or pytorch_model.bin.index.json")
    if not os.path.exists(src):
        sys.exit(f"{src}: not found")
    d = os.path.dirname(os.path.abspath(src))
    out = a.out or os.path.join(d, "model.safetensors")
    if os.path.exists(out) and not a.force:
        print(f"{out}: already exists (use --force to overwrite)")
        return

    files = [src]
    if src.endswith(".json"):
        with open(src) as f:
            wm = json.load(f).get("weight_map")
        if not isinstance(wm, dict):
            sys.exit(f"{src}: key 'weight_map' missing or not an object")
        files = [os.path.join(d, n) for n in sorted(set(wm.values()))]

    sd = {}
    for fn in files:
        try:
            part = load_bin(fn)
        except Exception as e:  # noqa: BLE001 - report any unpickling error with the file name
            sys.exit(f"{fn}: cannot load: {e}")
        if isinstance(part, dict) and "state_dict" in part and isinstance(part["state_dict"], dict):
            part = part["state_dict"]
        if not isinstance(part, dict):
            sys.exit(f"{fn}: not a state dict")
        for k, v in part.items():
            if not torch.is_tensor(v):
                print(f"{fn}: skipping non-tensor entry '{k}'", file=sys.stderr)
                continue
            if k in sd:
                sys.exit(f"{fn}: tensor '{k}' appears in two shards")
            sd[k] = v.detach().clone().contiguous()  # clone: break shared storage (tied weights)

    tmp = out + f".tmp.{os.getpid()}"
    try:
        save_file(sd, tmp, metadata={"format": "pt"})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    n = sum(v.numel() for v in sd.values())
    print(f"{out}: {len(sd)} tensors, {n} values")


if __name__ == "__main__":
    main()
