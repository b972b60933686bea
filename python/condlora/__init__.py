"""condlora: LoRA, CondLoRA, SaLoRA and AdaLoRA fine-tuning of transformer encoders, through ctypes over
libcondlora.so (include/condlora.h is the contract; the structures below mirror it field by field).

    run = condlora.train(model=DIR, train="data.csv", text_columns="text", method="lora", out="runs/x")
    logits = condlora.predict(DIR, ["some text"], adapter=run.dir)      # numpy array (n, num_labels)

Errors raise CondloraError carrying the library's message and status.
"""
import ctypes
import ctypes.util
import os
import signal
import subprocess

import numpy as np

__version__ = "0.2.0"
__all__ = ["CondloraError", "Model", "Tokenizer", "Run", "train", "predict", "evaluate", "export_peft", "options",
           "library_path", "__version__"]


# ---- the library ------------------------------------------------------------------------------------------------
def _find_library():
    env = os.environ.get("CONDLORA_LIB")
    if env:
        return env
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libcondlora.so")
    if os.path.exists(here):
        return here
    try:
        libdir = subprocess.run(["pkg-config", "--variable=libdir", "condlora"], capture_output=True, text=True,
                                check=True).stdout.strip()
        cand = os.path.join(libdir, "libcondlora.so")
        if os.path.exists(cand):
            return cand
    except (OSError, subprocess.CalledProcessError):
        pass
    found = ctypes.util.find_library("condlora")
    if found:
        return found
    raise ImportError("condlora: libcondlora.so not found; set CONDLORA_LIB to its path, or install the library "
                      "(make install PREFIX=...) so that pkg-config or the system's library path finds it")


library_path = _find_library()
_lib = ctypes.CDLL(library_path)


class CondloraError(RuntimeError):
    """A failure reported by libcondlora: .status (cl_status name) and the message naming the file and place."""

    def __init__(self, message, status=0):
        super().__init__(message)
        self.status = status


_STATUS = {1: "EINVAL", 2: "EIO", 3: "EFORMAT", 4: "ESHAPE", 5: "ENOMEM", 6: "EMISSING", 7: "EUNSUP", 8: "EUSAGE"}


def _raise(what=None):
    msg = _lib.cl_last_error().decode("utf-8", "replace")
    st = _lib.cl_last_status()
    raise CondloraError(f"{what}: {msg}" if what and not msg else msg or f"{what} failed", _STATUS.get(st, st))


def _b(s):
    return None if s is None else os.fsencode(os.path.expanduser(s)) if isinstance(s, (str, os.PathLike)) else s


class _Metric(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_double)]


class _MetricSet(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int), ("m", _Metric * 8), ("main", ctypes.c_double)]

    def to_dict(self):
        return {self.m[i].name.decode(): self.m[i].value for i in range(self.n)}


class _ModelParams(ctypes.Structure):
    _fields_ = [("adapter", ctypes.c_char_p), ("bf16", ctypes.c_int), ("threads", ctypes.c_int)]


class _OptionInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("key", ctypes.c_char_p), ("type", ctypes.c_int), ("default", ctypes.c_char_p),
                ("min", ctypes.c_double), ("max", ctypes.c_double), ("choices", ctypes.c_char_p),
                ("group", ctypes.c_char_p), ("help", ctypes.c_char_p), ("resumable", ctypes.c_int)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("step", ctypes.c_int64), ("total", ctypes.c_int64), ("epoch", ctypes.c_int),
                ("epochs", ctypes.c_int), ("loss", ctypes.c_double), ("lr", ctypes.c_double),
                ("tokens_per_s", ctypes.c_double), ("examples_per_s", ctypes.c_double), ("eta_s", ctypes.c_double),
                ("metrics", ctypes.POINTER(_MetricSet)), ("improved", ctypes.c_int), ("best", ctypes.c_double),
                ("best_step", ctypes.c_int64), ("split", ctypes.c_char_p), ("done", ctypes.c_size_t),
                ("n", ctypes.c_size_t), ("path", ctypes.c_char_p), ("message", ctypes.c_char_p)]


_EVENT_FN = ctypes.CFUNCTYPE(None, ctypes.POINTER(_Event), ctypes.c_void_p)


class _Callbacks(ctypes.Structure):
    _fields_ = [("on_event", _EVENT_FN), ("user", ctypes.c_void_p), ("cancel", ctypes.POINTER(ctypes.c_int))]


class _Result(ctypes.Structure):
    _fields_ = [("steps", ctypes.c_int64), ("epochs_run", ctypes.c_int), ("stopped_early", ctypes.c_int),
                ("best_step", ctypes.c_int64), ("best_dev", _MetricSet), ("test", _MetricSet),
                ("have_test", ctypes.c_int), ("final_loss", ctypes.c_double), ("wall_s", ctypes.c_double),
                ("train_s", ctypes.c_double), ("examples_per_s", ctypes.c_double), ("tokens_per_s", ctypes.c_double),
                ("n_adapter", ctypes.c_uint64), ("n_head", ctypes.c_uint64), ("n_gate", ctypes.c_uint64),
                ("n_train", ctypes.c_size_t), ("n_dev", ctypes.c_size_t), ("n_test", ctypes.c_size_t),
                ("interrupted", ctypes.c_int), ("paused", ctypes.c_int), ("resumed_from", ctypes.c_int64)]


class _EvalParams(ctypes.Structure):
    _fields_ = [("model_dir", ctypes.c_char_p), ("data_dir", ctypes.c_char_p), ("threads", ctypes.c_int),
                ("precision", ctypes.c_int), ("on_event", _EVENT_FN), ("user", ctypes.c_void_p)]


def _sig(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)


_P, _I32P, _F32P = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_float)
_sig("cl_version", ctypes.c_char_p)
_sig("cl_last_error", ctypes.c_char_p)
_sig("cl_last_status", ctypes.c_int)
_sig("cl_model_open", _P, ctypes.c_char_p, ctypes.POINTER(_ModelParams))
_sig("cl_model_close", None, _P)
for _n in ("cl_model_hidden_size", "cl_model_num_layers", "cl_model_max_length", "cl_model_num_labels",
           "cl_model_is_multi_label", "cl_model_pad_id", "cl_model_type_vocab_size"):
    _sig(_n, ctypes.c_int, _P)
_sig("cl_model_arch_name", ctypes.c_char_p, _P)
_sig("cl_model_label_name", ctypes.c_char_p, _P, ctypes.c_int)
_sig("cl_model_logits", ctypes.c_int, _P, _I32P, _I32P, _I32P, ctypes.c_int, ctypes.c_int, _F32P)
_sig("cl_predict", ctypes.c_int, _P, _P, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
     ctypes.c_size_t, ctypes.c_int, _F32P)
_sig("cl_tokenizer_open", _P, ctypes.c_char_p)
_sig("cl_tokenizer_close", None, _P)
_sig("cl_tokenize", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, _I32P, _I32P, ctypes.c_int)
_sig("cl_option_count", ctypes.c_size_t)
_sig("cl_option_at", ctypes.c_int, ctypes.c_size_t, ctypes.POINTER(_OptionInfo))
_sig("cl_train_params_new", _P)
_sig("cl_train_params_free", None, _P)
_sig("cl_train_params_set", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_char_p)
_sig("cl_train_params_get", ctypes.c_int, _P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t)
_sig("cl_train", _P, _P, ctypes.POINTER(_Callbacks))
_sig("cl_run_free", None, _P)
_sig("cl_run_dir", ctypes.c_char_p, _P)
_sig("cl_run_result", ctypes.POINTER(_Result), _P)
_sig("cl_eval", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_EvalParams),
     ctypes.POINTER(_MetricSet), ctypes.POINTER(ctypes.c_size_t))
_sig("cl_export_peft", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p)

if _lib.cl_version().decode() != __version__:
    raise ImportError(f"condlora {__version__}: {library_path} is version {_lib.cl_version().decode()}")

_TYPES = ["string", "path", "int", "float", "bool", "flag", "choice"]


def options():
    """Every training option: name (as the CLI spells it), key (run.json's and the keyword argument's), type,
    default, min/max, choices, group, help."""
    out = []
    for i in range(_lib.cl_option_count()):
        o = _OptionInfo()
        if _lib.cl_option_at(i, ctypes.byref(o)):
            _raise()
        d = {k: getattr(o, k) for k, _ in _OptionInfo._fields_}
        for k in ("name", "key", "default", "choices", "group", "help"):
            d[k] = d[k].decode() if d[k] is not None else None
        d["type"], d["resumable"] = _TYPES[o.type], bool(o.resumable)
        out.append(d)
    return out


# ---- models and tokenizers --------------------------------------------------------------------------------------
class Tokenizer:
    """A Hugging Face tokenizer directory (tokenizer.json, or vocab.txt / vocab.json + merges.txt); ids equal
    Hugging Face tokenizers'."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._h = _lib.cl_tokenizer_open(_b(path))
        if not self._h:
            _raise()

    def encode(self, text, pair=None, max_length=512):
        """(ids, type_ids) of TEXT, or of the pair (TEXT, PAIR) (str, or bytes taken as they are), with the special
        tokens."""
        cap = max(8, max_length if max_length > 0 else 512)
        ids, types = (ctypes.c_int32 * cap)(), (ctypes.c_int32 * cap)()
        enc = (lambda x: x if isinstance(x, bytes) else x.encode())
        n = _lib.cl_tokenize(self._h, enc(text), enc(pair) if pair is not None else None, max_length, ids, types,
                             cap)
        if n < 0:
            _raise()
        n = min(n, cap)
        return list(ids[:n]), list(types[:n])

    def close(self):
        if getattr(self, "_h", None):
            _lib.cl_tokenizer_close(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Model:
    """An encoder with its classification head, optionally with a PEFT adapter (a PEFT directory or a condlora run)
    applied. .logits(ids, lengths) and .predict(texts) give numpy arrays (n, num_labels)."""

    def __init__(self, path, adapter=None, bf16=False, threads=0):
        self.path, self.adapter = os.fspath(path), adapter
        p = _ModelParams(_b(adapter), int(bool(bf16)), int(threads))
        self._h = _lib.cl_model_open(_b(path), ctypes.byref(p))
        if not self._h:
            _raise()
        self.arch = _lib.cl_model_arch_name(self._h).decode()
        self.hidden_size = _lib.cl_model_hidden_size(self._h)
        self.num_layers = _lib.cl_model_num_layers(self._h)
        self.max_length = _lib.cl_model_max_length(self._h)
        self.num_labels = _lib.cl_model_num_labels(self._h)
        self.is_multi_label = bool(_lib.cl_model_is_multi_label(self._h))
        self.labels = [_lib.cl_model_label_name(self._h, i).decode() for i in range(self.num_labels)]
        self.pad_id = _lib.cl_model_pad_id(self._h)
        self._tok = None

    def logits(self, ids, lengths=None, type_ids=None):
        """Logits of a padded batch: IDS (B, T) int, LENGTHS (B,) the real tokens of each row (default: all)."""
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int32))
        if ids.ndim != 2:
            raise ValueError("ids must be a (B, T) array")
        B, T = ids.shape
        lengths = np.ascontiguousarray(np.full(B, T, np.int32) if lengths is None else np.asarray(lengths, np.int32))
        types = None if type_ids is None else np.ascontiguousarray(np.asarray(type_ids, dtype=np.int32))
        out = np.empty((B, self.num_labels), dtype=np.float32)
        rc = _lib.cl_model_logits(self._h, ids.ctypes.data_as(_I32P),
                                  types.ctypes.data_as(_I32P) if types is not None else None,
                                  lengths.ctypes.data_as(_I32P), B, T, out.ctypes.data_as(_F32P))
        if rc:
            _raise()
        return out

    def predict(self, texts, pairs=None, tokenizer=None, max_length=0):
        """Logits (n, num_labels) of TEXTS (or of the pairs TEXTS[i], PAIRS[i]) tokenized with TOKENIZER (default:
        the model directory's)."""
        if isinstance(texts, str):
            texts = [texts]
        tok = tokenizer or self._tok or Tokenizer(self.path)
        if tokenizer is None:
            self._tok = tok
        n = len(texts)
        a = (ctypes.c_char_p * n)(*[t.encode() for t in texts])
        b = (ctypes.c_char_p * n)(*[p.encode() if p is not None else None for p in pairs]) if pairs else None
        out = np.empty((n, self.num_labels), dtype=np.float32)
        if _lib.cl_predict(self._h, tok._h, a, b, n, max_length, out.ctypes.data_as(_F32P)):
            _raise()
        return out

    def close(self):
        if getattr(self, "_h", None):
            _lib.cl_model_close(self._h)
            self._h = None

    __del__ = close

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- training -----------------------------------------------------------------------------------------------------
def _event_dict(e):
    d = {k: getattr(e, k) for k in ("type", "step", "total", "epoch", "epochs", "loss", "lr", "tokens_per_s",
                                     "examples_per_s", "eta_s", "improved", "best", "best_step", "done", "n")}
    d["type"] = ["start", "step", "eval", "checkpoint", "progress", "note"][e.type]
    d["message"] = e.message.decode("utf-8", "replace") if e.message else ""
    d["split"] = e.split.decode() if e.split else None
    d["path"] = e.path.decode() if e.path else None
    d["metrics"] = e.metrics.contents.to_dict() if e.metrics else None
    return d


def _callbacks(on_event, cancel):
    """ctypes callbacks: the user's function per event, and Ctrl-C (Python's KeyboardInterrupt, raised when the
    callback's Python code runs) turned into the library's cancel flag: the run checkpoints and returns."""
    def cb(ev, _user):
        try:
            if on_event is not None:
                on_event(_event_dict(ev.contents))
        except KeyboardInterrupt:
            cancel.value = int(signal.SIGINT)
    fn = _EVENT_FN(cb)
    return fn, _Callbacks(fn, None, ctypes.pointer(cancel))


class Run:
    """A training run directory: .dir, .result (steps, best_step, best_dev, test, interrupted, paused, rates)."""

    def __init__(self, directory, result=None):
        self.dir = os.fspath(directory)
        self.result = result or {}

    @property
    def interrupted(self):
        return self.result.get("interrupted", 0)

    @property
    def model_dir(self):
        import json
        with open(os.path.join(self.dir, "run.json")) as f:
            return json.load(f)["options"]["model_dir"]

    def evaluate(self, split="dev", **kw):
        return evaluate(self.dir, split, **kw)

    def export_peft(self, out_dir):
        export_peft(self.dir, out_dir)
        return out_dir

    def model(self, **kw):
        """The run's base model with the run's best adapter applied."""
        return Model(self.model_dir, adapter=self.dir, **kw)

    def __repr__(self):
        return f"Run({self.dir!r}, best_dev={self.result.get('best_dev')})"


def train(model=None, out=None, on_event=None, resume=None, **options):
    """Trains (or, with resume=RUN_DIR, continues) a run, as `condlora train`. Every option of
    `condlora train --help` is a keyword argument, '-' written '_': method="lora", train="data.csv", r=8,
    salora_budget=0.5, max_steps=100, quiet=True, ... (method and task are applied first). on_event(dict) receives
    the progress events (type "start" | "step" | "eval" | "checkpoint" | "progress" | "note", with the line
    `condlora train` prints as "message"). Returns a Run; Ctrl-C writes a checkpoint and returns a Run whose
    interrupted is SIGINT."""
    p = _lib.cl_train_params_new()
    if not p:
        _raise()
    try:
        items = []
        if model is not None:
            items.append(("model", model))
        if out is not None:
            items.append(("out", out))
        if resume is not None:
            items.append(("resume", resume))
        first = [(k, options.pop(k)) for k in ("method", "task") if k in options]
        for k, v in first + items + list(options.items()):
            if v is None or v is False and k in ("quiet", "overwrite"):
                continue
            if isinstance(v, bool):
                v = "1" if v else "0"
            elif isinstance(v, (list, tuple)):
                v = ",".join(str(x) for x in v)
            elif isinstance(v, os.PathLike) or (isinstance(v, str) and k in ("model", "out", "resume", "train",
                                                                             "dev", "test", "data", "tokenizer")):
                v = os.path.expanduser(os.fspath(v))
            name = k.replace("_", "-")
            if _lib.cl_train_params_set(p, name.encode(), str(v).encode()):
                _raise()
        cancel = ctypes.c_int(0)
        fn, cbs = _callbacks(on_event, cancel)
        r = _lib.cl_train(p, ctypes.byref(cbs))
        if not r:
            _raise()
        res = r and _lib.cl_run_result(r).contents
        result = {k: getattr(res, k) for k, _ in _Result._fields_ if k not in ("best_dev", "test")}
        result["best_dev"] = res.best_dev.to_dict()
        result["best_dev_main"] = res.best_dev.main
        result["test"] = res.test.to_dict() if res.have_test else None
        run = Run(_lib.cl_run_dir(r).decode(), result)
        _lib.cl_run_free(r)
        del fn
        return run
    finally:
        _lib.cl_train_params_free(p)


def evaluate(run, split="dev", model_dir=None, data_dir=None, threads=0, precision=None, on_event=None):
    """Metrics of RUN (a run directory, or RUN/best, RUN/final, RUN/checkpoint-N) on SPLIT: a dict, with
    "examples" and "main"."""
    cancel = ctypes.c_int(0)
    fn, _ = _callbacks(on_event, cancel)
    prec = -1 if precision is None else {"fp32": 0, "bf16": 1}.get(precision, precision)
    ep = _EvalParams(_b(model_dir), _b(data_dir), int(threads), int(prec), fn, None)
    ms, n = _MetricSet(), ctypes.c_size_t(0)
    if _lib.cl_eval(_b(run), split.encode(), ctypes.byref(ep), ctypes.byref(ms), ctypes.byref(n)):
        _raise()
    d = ms.to_dict()
    d["main"], d["examples"] = ms.main, n.value
    return d


def predict(model, texts, adapter=None, pairs=None, tokenizer=None, max_length=0, bf16=False, threads=0):
    """Logits (n, num_labels) of TEXTS with the model directory MODEL (and ADAPTER: a PEFT directory or a run)."""
    with Model(model, adapter=adapter, bf16=bf16, threads=threads) as m:
        tok = Tokenizer(tokenizer) if tokenizer else None
        try:
            return m.predict(texts, pairs=pairs, tokenizer=tok, max_length=max_length)
        finally:
            if tok:
                tok.close()
            if m._tok:
                m._tok.close()


def export_peft(run, out_dir):
    """Copies the PEFT adapter of RUN (its best/, a checkpoint or a PEFT directory) to OUT_DIR:
    adapter_model.safetensors, adapter_config.json, labels.json."""
    if _lib.cl_export_peft(_b(run), _b(out_dir)):
        _raise()
    return out_dir
