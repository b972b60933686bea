#!/usr/bin/python3
"""Reference files for tests/test_safetensors.c, written and read by the Python `safetensors` package.

Run from the repository root with Debian's interpreter (it has numpy, torch and safetensors):

    /usr/bin/python3 scripts/gen_safetensors_refs.py

It writes into tests/data/safetensors/:
  py_mixed.safetensors + py_mixed.json   every dtype numpy has (F32 F64 F16 I8..I64 U8..U64 BOOL), a 0-d scalar,
                                         empty tensors, one metadata key; the JSON holds each tensor's dtype, shape
                                         and raw little-endian bytes (hex) and, for float dtypes, numpy's float32
                                         conversion as uint32 bit patterns.
  py_meta.safetensors + py_meta.json     awkward names and several metadata entries (quotes, backslashes, control
                                         characters, non-ASCII), order-independent.
  py_bf16.safetensors + py_bf16.json     BF16 (via torch) with torch's float32 conversion.
  f16_all.safetensors                    "h": all 65,536 F16 bit patterns, "f": numpy's float32 conversion of them.
  bad/*.safetensors + bad/index.json     malformed files, each with the problem our message must name and whether
                                         the Python package rejects it too.
  c_written.safetensors + c_written_pyread.json
                                         when build/tests/test_safetensors exists: the C writer's file (made with
                                         `test_safetensors --emit PATH`) and what Python's safe_open read from it
                                         (dtype, shape, raw bytes of every tensor, metadata, file length and CRC-32).
It also seeds fuzz/corpus/fuzz_safetensors/ with the small good files and some malformed ones.
"""
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file as pt_save_file

OUT = "tests/data/safetensors"
CORPUS = "fuzz/corpus/fuzz_safetensors"


def describe_np(arrs, metadata, path):
    """What Python reads back from PATH (via safe_open), as the JSON the C test compares against."""
    out = {"tensors": {}, "metadata": {}}
    with safe_open(path, framework="numpy") as f:
        out["metadata"] = f.metadata() or {}
        for k in f.keys():
            a = f.get_tensor(k)
            assert a.dtype == arrs[k].dtype and a.shape == arrs[k].shape and a.tobytes() == arrs[k].tobytes(), k
            d = {"dtype": f.get_slice(k).get_dtype(), "shape": list(a.shape), "hex": a.tobytes().hex()}
            if a.dtype.kind == "f":
                d["f32_bits"] = [int(x) for x in a.astype(np.float32).reshape(-1).view(np.uint32)]
            out["tensors"][k] = d
    return out


def gen_mixed():
    rng = np.random.default_rng(1234)
    f16_special = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, np.inf, -np.inf, np.nan, 6e-8, 3e-5, 1e-4, 0.333],
                           dtype=np.float16)
    arrs = {
        "weight": rng.standard_normal((2, 3)).astype(np.float32),
        "double": rng.standard_normal((5,)).astype(np.float64),
        "half": f16_special,
        "i8": np.array([-128, -1, 0, 1, 127], dtype=np.int8),
        "i16": np.array([-32768, 12345, 32767], dtype=np.int16),
        "i32": np.array([[-(2 ** 31), 7], [42, 2 ** 31 - 1]], dtype=np.int32),
        "i64": np.array([-(2 ** 63), -1, 2 ** 53 + 1, 2 ** 63 - 1], dtype=np.int64),
        "u8": np.arange(7, dtype=np.uint8) * 37,
        "u16": np.array([0, 65535, 258], dtype=np.uint16),
        "u32": np.array([0, 2 ** 32 - 1], dtype=np.uint32),
        "u64": np.array([2 ** 64 - 1, 1], dtype=np.uint64),
        "mask": np.array([[True, False, True], [False, False, True]]),
        "scalar": np.array(3.25, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "empty_i64": np.zeros((4, 0), dtype=np.int64),
        "a.b.c.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    }
    meta = {"format": "pt"}
    path = f"{OUT}/py_mixed.safetensors"
    np_save_file(arrs, path, metadata=meta)
    with open(f"{OUT}/py_mixed.json", "w") as f:
        json.dump(describe_np(arrs, meta, path), f, indent=0)


def gen_meta():
    arrs = {
        'quote"name': np.array([1.5], dtype=np.float32),
        "back\\slash": np.array([2], dtype=np.int32),
        "ünïcödé.权重": np.array([3, 4], dtype=np.uint8),
        "tab\tnew\nline": np.array([[1.0]], dtype=np.float64),
        "": np.array([7], dtype=np.int16),
    }
    meta = {"format": "pt", "quote": 'he said "hi"', "path": "C:\\dir\\file", "ctl": "a\tb\nc\x01d",
            "unicode": "日本語 ✓", "empty": ""}
    path = f"{OUT}/py_meta.safetensors"
    np_save_file(arrs, path, metadata=meta)
    with open(f"{OUT}/py_meta.json", "w") as f:
        json.dump(describe_np(arrs, meta, path), f, indent=0, ensure_ascii=True)


def gen_bf16():
    bits = torch.tensor([0x0000, 0x8000, 0x3F80, 0xC020, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x0001, 0x8001, 0x007F,
                         0x0080, 0x7F7F, 0x4049, 0x3EAB], dtype=torch.int32).to(torch.int16)
    t = bits.view(torch.bfloat16).reshape(3, 5).clone()
    path = f"{OUT}/py_bf16.safetensors"
    pt_save_file({"bf": t, "f": torch.arange(3, dtype=torch.float32)}, path, metadata={"format": "pt"})
    out = {"tensors": {}, "metadata": {}}
    with safe_open(path, framework="pt") as f:
        out["metadata"] = f.metadata()
        for k in f.keys():
            a = f.get_tensor(k)
            raw = a.view(torch.int16).numpy().tobytes() if a.dtype == torch.bfloat16 else a.numpy().tobytes()
            out["tensors"][k] = {"dtype": f.get_slice(k).get_dtype(), "shape": list(a.shape), "hex": raw.hex(),
                                 "f32_bits": [int(x) for x in a.float().reshape(-1).numpy().view(np.uint32)]}
    with open(f"{OUT}/py_bf16.json", "w") as f:
        json.dump(out, f, indent=0)


def gen_f16_all():
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    np_save_file({"h": h, "f": h.astype(np.float32)}, f"{OUT}/f16_all.safetensors")


# --------------------------------------------------------------------------------------------------------------
def raw(header, data=b"", n=None, pad=True, extra=b""):
    """A safetensors file from a header (dict -> compact JSON, or bytes as they are)."""
    hb = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad and len(hb) % 8:
        hb += b" " * (8 - len(hb) % 8)
    return struct.pack("<Q", len(hb) if n is None else n) + hb + data + extra


def T(dtype, shape, offs):
    return {"dtype": dtype, "shape": shape, "data_offsets": offs}


def bad_cases():
    good = {"a": T("F32", [2], [0, 8])}
    g = raw(good, b"\0" * 8)
    hdr = lambda s: raw(s.encode() if isinstance(s, str) else s, b"\0" * 8)
    return [
        ("empty_file", b"", "too small"),
        ("short_length", b"\x10\0\0\0\0", "too small"),
        ("n_2pow63", struct.pack("<Q", 2 ** 63), "exceeds the 100,000,000-byte limit"),
        ("n_over_limit", struct.pack("<Q", 100_000_001) + b"{}      ", "exceeds the 100,000,000-byte limit"),
        ("n_larger_than_file", raw(good, b"\0" * 8, n=4096), "truncated file"),
        ("truncated_data", g[:-3], "truncated data"),
        ("trailing_bytes", g + b"xyz", "trailing bytes"),
        ("invalid_utf8", hdr(b'{"a\xff":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'), "not valid UTF-8"),
        ("overlong_utf8", hdr(b'{"a\xc0\xaf":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'), "not valid UTF-8"),
        ("utf8_surrogate", hdr(b'{"a\xed\xa0\x80":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
         "not valid UTF-8"),
        ("invalid_json", hdr('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'), "invalid JSON"),
        ("json_not_object", hdr('[1,2]'), "not a JSON object"),
        ("json_trailing_garbage", hdr('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x'),
         "trailing characters"),
        ("empty_header", raw(b"", b"", pad=False), "header is empty"),
        ("unknown_dtype", raw({"a": T("F33", [2], [0, 8])}, b"\0" * 8), "unknown dtype"),
        ("dtype_not_string", raw({"a": T(32, [2], [0, 8])}, b"\0" * 8), "dtype is not a string"),
        ("missing_shape", raw({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, b"\0" * 8), "missing field 'shape'"),
        ("missing_offsets", raw({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), "missing field 'data_offsets'"),
        ("negative_shape", raw({"a": T("F32", [-2], [0, 8])}, b"\0" * 8), "negative number"),
        ("negative_offset", raw({"a": T("F32", [2], [-8, 0])}, b"\0" * 8), "negative number"),
        ("fractional_shape", hdr('{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}'), "fractional number"),
        ("exponent_offset", hdr('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}'), "exponent"),
        ("number_over_u64", hdr('{"a":{"dtype":"F32","shape":[18446744073709551617],"data_offsets":[0,8]}}'),
         "larger than 2^64-1"),
        ("leading_zero", hdr('{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}'), "leading zero"),
        ("shape_product_overflow", raw({"a": T("F32", [2 ** 32, 2 ** 32], [0, 8])}, b"\0" * 8),
         "product of the shape overflows"),
        ("byte_size_overflow", raw({"a": T("F32", [2 ** 62, 2], [0, 8])}, b"\0" * 8), "byte size"),
        ("size_dtype_mismatch", raw({"a": T("F64", [2], [0, 8])}, b"\0" * 8), "size mismatch"),
        ("end_before_begin", raw({"a": T("F32", [0], [8, 0])}, b"\0" * 8), "END < BEGIN"),
        ("overlapping_offsets", raw({"a": T("F32", [2], [0, 8]), "b": T("F32", [1], [4, 8])}, b"\0" * 8),
         "overlap"),
        ("gapped_offsets", raw({"a": T("F32", [1], [0, 4]), "b": T("F32", [1], [8, 12])}, b"\0" * 12), "gap"),
        ("offsets_not_from_zero", raw({"a": T("F32", [1], [4, 8])}, b"\0" * 8), "gap"),
        ("duplicate_name", hdr('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                               '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'), "duplicate tensor name"),
        ("duplicate_field", hdr('{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
         "duplicate field"),
        ("metadata_not_string", raw({"__metadata__": {"k": 1}, **good}, b"\0" * 8), "__metadata__ value"),
        ("metadata_not_object", raw({"__metadata__": ["k"], **good}, b"\0" * 8), "__metadata__ is not an object"),
        ("duplicate_metadata_key", hdr('{"__metadata__":{"k":"1","k":"2"},"a":{"dtype":"F32","shape":[2],'
                                       '"data_offsets":[0,8]}}'), "duplicate __metadata__ key"),
        ("offsets_three", raw({"a": T("F32", [2], [0, 4, 8])}, b"\0" * 8), "data_offsets must be an array"),
        ("entry_not_object", raw({"a": [1, 2]}, b""), "entry is not an object"),
        ("too_many_dims", raw({"a": T("F32", [1] * 9, [0, 4])}, b"\0" * 4), "dimensions"),
        ("control_char_in_string", hdr(b'{"a\x01":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
         "control character"),
        ("lone_surrogate_escape", hdr('{"a\\ud800":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
         "surrogate"),
        ("nul_in_header", hdr(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}\0'), "trailing characters"),
        ("nul_in_object", hdr(b'{"a":{"dtype":"F32",\0"shape":[2],"data_offsets":[0,8]}}'), "expected a string key"),
    ]


def gen_bad():
    os.makedirs(f"{OUT}/bad", exist_ok=True)
    for f in os.listdir(f"{OUT}/bad"):
        os.remove(f"{OUT}/bad/{f}")
    index = []
    for i, (name, data, expect) in enumerate(bad_cases()):
        fn = f"{i:02d}_{name}.safetensors"
        with open(f"{OUT}/bad/{fn}", "wb") as f:
            f.write(data)
        try:
            np_load_file(f"{OUT}/bad/{fn}")
            py = "accepted"
        except Exception as e:  # the package raises SafetensorError, OSError or ValueError
            py = f"{type(e).__name__}: {e}"[:200]
        index.append({"file": fn, "expect": expect, "python": py})
    with open(f"{OUT}/bad/index.json", "w") as f:
        json.dump(index, f, indent=1)
    return index


def verify_c_written():
    exe = "build/tests/test_safetensors"
    if not os.path.exists(exe):
        print(f"{exe} not built: skipping the C-writer verdict (run `make build/tests/test_safetensors` first)")
        return
    path = f"{OUT}/c_written.safetensors"
    subprocess.run([exe, "--emit", path], check=True)
    out = {"tensors": {}}
    with safe_open(path, framework="numpy") as f:
        out["metadata"] = f.metadata() or {}
        keys = list(f.keys())
        dtypes = {k: f.get_slice(k).get_dtype() for k in keys}
    with safe_open(path, framework="pt") as fp, safe_open(path, framework="numpy") as fn:
        for k in keys:
            if dtypes[k] == "BF16":
                a = fp.get_tensor(k)
                rawb, shape = a.view(torch.int16).numpy().tobytes(), list(a.shape)
            else:
                a = fn.get_tensor(k)
                rawb, shape = a.tobytes(), list(a.shape)
            out["tensors"][k] = {"dtype": dtypes[k], "shape": shape, "hex": rawb.hex()}
    blob = open(path, "rb").read()
    out["file_len"] = len(blob)
    out["crc32"] = zlib.crc32(blob)
    n = struct.unpack("<Q", blob[:8])[0]
    out["header_len"] = n
    # the order of the data (by offset), to check the writer's tensor order (dtype descending, then name)
    hdr = json.loads(blob[8:8 + n])
    out["offset_order"] = sorted((k for k in hdr if k != "__metadata__"), key=lambda k: hdr[k]["data_offsets"][0])
    with open(f"{OUT}/c_written_pyread.json", "w") as f:
        json.dump(out, f, indent=0)
    print(f"verified {path}: {len(keys)} tensors, {len(out['metadata'])} metadata entries")


def seed_corpus(index):
    os.makedirs(CORPUS, exist_ok=True)
    for fn in ["py_mixed.safetensors", "py_meta.safetensors", "py_bf16.safetensors"]:
        with open(f"{OUT}/{fn}", "rb") as s, open(f"{CORPUS}/{fn}", "wb") as d:
            d.write(s.read())
    for e in index:
        if os.path.getsize(f"{OUT}/bad/{e['file']}") <= 4096:
            with open(f"{OUT}/bad/{e['file']}", "rb") as s, open(f"{CORPUS}/bad_{e['file']}", "wb") as d:
                d.write(s.read())


def main():
    os.makedirs(OUT, exist_ok=True)
    gen_mixed()
    gen_meta()
    gen_bf16()
    gen_f16_all()
    index = gen_bad()
    seed_corpus(index)
    verify_c_written()
    acc = [e["file"] for e in index if e["python"] == "accepted"]
    print(f"{len(index)} malformed files; the Python package accepts {len(acc)} of them: {acc}")


if __name__ == "__main__":
    sys.exit(main())
