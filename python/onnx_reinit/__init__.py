"""onnx-reinit from Python: fresh, principled initial weights for ONNX models.

The same library as the ``onnx-reinit`` command (docs/DESIGN.md section 15),
in memory: the same arguments give the same bytes.

    import onnx, onnx_reinit
    model = onnx.load("model.onnx")
    fresh = onnx_reinit.reinit(model, seed=1, preset="gpt2")      # an onnx.ModelProto
    for row in onnx_reinit.plan(model):                            # the --plan rows
        print(row)
    w = onnx_reinit.sample("kaiming_normal", (64, 32), seed=1, name="fc.weight")

Errors are exceptions of the library's class, each a subclass of ``Error``
and of the matching built-in (a usage error is a ``ValueError``, a file
that cannot be written an ``OSError``); ``str(e)`` reads like the command's
error line, ``e.where`` names the file, tensor or parameter.
"""
import json as _json
import os as _os
import shutil as _shutil
import tempfile as _tempfile

__all__ = [
    "reinit", "plan", "inspect", "strategies", "describe", "sample", "policy_text",
    "presets_text", "load_plugins", "PlanEntry", "Plan", "Strategy", "Error", "UsageError",
    "ModelError", "ExternalDataError", "IOError", "UnknownStrategyError", "ParamError",
    "StrategyError", "RuleError", "LimitError", "RuntimeUnavailableError", "OnnxRuntimeError",
]


# ---- Errors (the classes of errors.h and runtime.h) -------------------------

class Error(Exception):
    """An error of the library: ``str(e)`` is "<what> (<where>)" like the
    command's error line; ``what`` and ``where`` separately."""

    def __init__(self, what, where=""):
        super().__init__(f"{what} ({where})" if where else what)
        self.what = what
        self.where = where

    def __str__(self):
        return f"{self.what} ({self.where})" if self.where else self.what


class UsageError(Error, ValueError):
    """Bad arguments (the command's exit status 2)."""


class ModelError(Error, ValueError):
    """A model that cannot be parsed or is inconsistent."""


class ExternalDataError(ModelError):
    """External data: missing file, unsafe location, out-of-range offset or length."""


class IOError(Error, OSError):  # noqa: A001 - the library's name for it
    """Reading or writing a file failed."""


class UnknownStrategyError(Error, ValueError):
    """No loaded plugin provides the strategy (the message names the nearest)."""


class ParamError(Error, ValueError):
    """Unknown parameter name, wrong type or out-of-range value."""


class StrategyError(Error, RuntimeError):
    """A strategy refused a tensor or failed while filling it."""


class RuleError(Error, ValueError):
    """A rule (or preset, or expression) that does not parse or does not apply."""


class LimitError(ModelError):
    """A tensor or model beyond the size limits."""


class RuntimeUnavailableError(Error, RuntimeError):
    """Built without ONNX Runtime: no inspection or calibration."""


class OnnxRuntimeError(Error, RuntimeError):
    """ONNX Runtime could not load or run the model."""


from . import _onnx_reinit as _ext  # noqa: E402 - the classes above come first
from ._paths import PLUGIN_DIR as _PLUGIN_DIR  # noqa: E402

__version__ = _ext.__version__
_package_dir = _os.path.dirname(_os.path.abspath(__file__))
_plugin_dirs = []
_plugin_files = []


def _discover():
    here = _os.path.normpath(_os.path.join(_package_dir, _PLUGIN_DIR))
    dirs = ([here] if _os.path.isdir(here) else []) + list(_plugin_dirs)
    return _ext.init(dirs, list(_plugin_files))


_load_errors = _discover()


def load_plugins(*paths):
    """Loads more strategy plugins (files or directories, as --plugin and
    --plugin-dir) for every later call; returns the load errors, each a dict
    with path, kind and message. A file named here that cannot load raises
    ``Error``."""
    for p in paths:
        (_plugin_dirs if _os.path.isdir(p) else _plugin_files).append(_os.fspath(p))
    errors = _discover()
    named = {_os.path.realpath(p) for p in _plugin_files}
    for e in errors:
        if _os.path.realpath(e["path"]) in named and e["kind"] != "duplicate_strategy":
            raise Error(f"cannot load plugin ({e['kind']}): {e['message']}", e["path"])
    return errors


# ---- The registry ------------------------------------------------------------

class Strategy:
    """One strategy of the registry, as ``onnx-reinit --list --json`` lists
    it: name, summary, formula, params (dicts with name, type, default,
    range, choices, help), elementwise, plugin_id, plugin_path. Its
    ``__doc__`` is the text of ``onnx-reinit --describe NAME``."""

    def __init__(self, d):
        self.name = d["name"]
        self.summary = d["summary"]
        self.formula = d["formula"]
        self.params = d["params"]
        self.elementwise = d["elementwise"]
        self.plugin_id = d["plugin"]
        self.plugin_path = d["plugin_path"]
        self.__doc__ = _ext.describe(self.name)

    def __repr__(self):
        params = ", ".join(f"{p['name']}={p['default']}" for p in self.params)
        return f"<Strategy {self.name}({params}): {self.formula}>"


def strategies():
    """Every strategy of the loaded plugins (the standard plugin, those on
    ONNX_REINIT_PLUGIN_PATH and those given to load_plugins), in load order:
    the registry's listing, the same document as ``--list --json``."""
    return [Strategy(d) for d in _json.loads(_ext.list_text(True))["strategies"]]


def describe(name):
    """What ``onnx-reinit --describe NAME`` prints."""
    return _ext.describe(name)


def policy_text():
    """The default policy, one rule per line (``--print-policy``)."""
    return _ext.policy_text()


def presets_text():
    """The presets (``--list-presets``)."""
    return _ext.presets_text()


def sample(strategy, shape, *, seed=0, fan_in=None, fan_out=None, name="", dtype="float32",
           info=None, **params):
    """The values the tool writes for a tensor of this ``shape`` and ``name``
    under ``seed`` with ``strategy(**params)``, as a NumPy array (filled in
    place, no copy). Fans default to PyTorch's rule from the shape (dim 1 x
    receptive field in, dim 0 x receptive field out); ``info`` (a PlanEntry,
    or a dict of its fields) gives everything the analysis knows of the
    tensor (role, fans, activation, gain, matrix view) and the host
    parameters the plan applies after the strategy (``adjustments``: the
    LSTM forget-gate bias), so ``sample(e.strategy, e.shape, seed=s,
    name=e.name, dtype=e.dtype, info=e, **e.params)`` equals that tensor in
    the model ``reinit(model, seed=s)`` writes, byte for byte: the library's
    sampler fills it. ``dtype``: float32, float64, float16, or bfloat16,
    which NumPy lacks: returned as its raw bits, a uint16 array (ONNX's
    BFLOAT16 storage; ``(a.astype(np.uint32) << 16).view(np.float32)``
    gives the values)."""
    fields = {}
    if info is not None:
        fields = dict(info.asdict() if isinstance(info, PlanEntry) else info)
    if fan_in is not None:
        fields["fan_in"] = float(fan_in)
    if fan_out is not None:
        fields["fan_out"] = float(fan_out)
    keep = ("role", "fan_in", "fan_out", "receptive_field", "groups", "gate_count", "activation",
            "activation_param", "gain", "block_count", "block_rows", "block_cols", "adjustments")
    fields = {k: v for k, v in fields.items() if k in keep and v is not None}
    if isinstance(shape, int):
        shape = (shape,)
    return _ext.sample(strategy, [int(d) for d in shape], int(seed), name, dtype, fields,
                       dict(params))


# ---- Models and options ------------------------------------------------------

def _model_argument(model):
    """(bytes or None, path or None) of what the caller gave; a buffer
    (bytes, bytearray, memoryview) is read in place, not copied (so a
    mutable one must not change while the call runs: the GIL is released)."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return model, None
    if isinstance(model, (str, _os.PathLike)):
        return None, _os.fspath(model)
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString(), None
    raise UsageError(f"model: expected an onnx.ModelProto, bytes or a path, got "
                     f"{type(model).__name__}", "model")


def _strings(value, what):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        items = list(value)
    except TypeError:
        raise UsageError(f"{what}: expected a string or a sequence of strings", what) from None
    for v in items:
        if not isinstance(v, str):
            raise UsageError(f"{what}: expected strings, got {type(v).__name__}", what)
    return items


def _maps(maps):
    if isinstance(maps, dict):
        return [f"{k}={v}" for k, v in maps.items()]
    return _strings(maps, "maps")


def _arrays(data):
    """A dict of NumPy arrays (the batch in memory), or a directory (--data)."""
    if data is None:
        return None, {}
    if isinstance(data, (str, _os.PathLike)):
        return _os.fspath(data), {}
    if not isinstance(data, dict):
        raise UsageError("data: expected a dict of NumPy arrays by input name, or a directory",
                         "data")
    import numpy as np
    return None, {str(k): np.ascontiguousarray(v) for k, v in data.items()}


def _options(seed=0, policy=None, preset=None, rules=(), rules_file=None, only=(), skip=(),
             from_=None, maps=(), calibrate=None, data=None, threads=0,
             fan_convention="semantic", quantized="keep", lsuv_tol=None, batch=None,
             input_shapes=None, max_tensor_bytes=None, max_total_bytes=None, output_rms=None):
    if policy is not None and not isinstance(policy, str):
        raise UsageError(f"policy: expected a name or None, got {type(policy).__name__}",
                         "policy")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise UsageError(f"seed: expected an integer in [0, 2^64), got {seed!r}", "seed")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads < 2**32:
        raise UsageError(f"threads: expected an integer in [0, 2^32), got {threads!r}", "threads")
    if fan_convention not in ("semantic", "torch"):
        raise UsageError(f"fan_convention '{fan_convention}': expected semantic or torch",
                         "fan_convention")
    if quantized not in ("keep", "requantize"):
        raise UsageError(f"quantized '{quantized}': expected keep or requantize", "quantized")
    if calibrate not in (None, "", "lsuv"):
        raise UsageError(f"calibrate '{calibrate}': expected lsuv", "calibrate")
    data_dir, arrays = _arrays(data)
    shapes = {}
    for k, v in (input_shapes or {}).items():
        shapes[str(k)] = [int(d) for d in v]
    o = {
        "seed": seed, "threads": threads, "fan_convention": fan_convention,
        "rules": _strings(rules, "rules"), "rules_file": _os.fspath(rules_file or ""),
        "presets": _strings(preset, "preset"), "only": _strings(only, "only"),
        "skip": _strings(skip, "skip"), "requantize": quantized == "requantize",
        "from": _os.fspath(from_ or ""), "maps": _maps(maps), "calibrate": calibrate or "",
        "data_dir": data_dir or "", "data": arrays, "input_shapes": shapes,
        "policy": policy or "",
    }
    if output_rms is not None:
        if isinstance(output_rms, bool) or not isinstance(output_rms, (int, float)) or not output_rms > 0:
            raise UsageError(f"output_rms: expected a positive number, got {output_rms!r}",
                             "output_rms")
        o["output_rms"] = float(output_rms)
    if lsuv_tol is not None:
        o["lsuv_tol"] = float(lsuv_tol)
    if batch is not None:
        o["batch"] = int(batch)
    if max_tensor_bytes is not None:
        o["max_tensor_bytes"] = int(max_tensor_bytes)
    if max_total_bytes is not None:
        o["max_total_bytes"] = int(max_total_bytes)
    return o


# ---- The plan ----------------------------------------------------------------

class PlanEntry:
    """One tensor of the plan: the fields of the JSON plan (``--plan
    --json``: name, dtype, shape, consumer_op, role, fan_in, fan_out,
    activation, gain, strategy, params, action, reason, target_mean,
    target_std, rule, notes, ...) as attributes, plus the analysis' matrix
    view (receptive_field, groups, gate_count, block_count, block_rows,
    block_cols) and the host parameters the plan applies after the strategy
    (adjustments: dicts of name, value and element ranges [begin, end)).
    ``repr`` is the tensor's row of ``--plan``."""

    __slots__ = ("_fields", "_row")

    def __init__(self, fields, row):
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_row", row)

    def __getattr__(self, key):
        try:
            return self._fields[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        raise AttributeError("a PlanEntry is read-only")

    def __dir__(self):
        return list(self._fields)

    def __getitem__(self, key):
        return self._fields[key]

    def keys(self):
        return self._fields.keys()

    def asdict(self):
        return dict(self._fields)

    def __eq__(self, other):
        return isinstance(other, PlanEntry) and self._fields == other._fields

    __hash__ = None

    def __repr__(self):
        return self._row


class Plan(list):
    """The plan: a list of PlanEntry in model order; ``report`` is the JSON
    plan as a dict, ``table`` the text of ``--plan``, ``str(plan)`` too."""

    def __init__(self, entries, report, table):
        super().__init__(entries)
        self.report = report
        self.table = table

    def __str__(self):
        return self.table


def _entries(result):
    report = _json.loads(result["report_json"])
    lines = result["plan_table"].splitlines()
    rows = lines[1:1 + len(report["tensors"])]
    entries = []
    for fields, extra, row in zip(report["tensors"], result["info"], rows):
        fields = dict(fields)
        for k, v in extra.items():
            fields.setdefault(k, v)
        entries.append(PlanEntry(fields, row))
    return Plan(entries, report, result["plan_table"])


def plan(model, **options):
    """The plan ``onnx-reinit MODEL --plan`` shows, as a Plan of PlanEntry
    records. Takes the options of reinit (not the runtime ones)."""
    raw, path = _model_argument(model)
    result = _ext.plan(raw, path, _options(**options))
    return _entries(result)


def _scratch_dir(path):
    """Where reinit writes a model with external data that it returns, to
    read it back at once: memory (/dev/shm) when it has ample room for the
    model, else the temporary directory. Any other model is written into
    memory by the library, no file."""
    size = 0
    if path is not None and _os.path.isfile(path):
        size = _os.path.getsize(path)  # its external data aside: hence the margin
    try:
        st = _os.statvfs("/dev/shm")
        if _os.access("/dev/shm", _os.W_OK) and st.f_bavail * st.f_frsize > 4 * size + (256 << 20):
            return "/dev/shm"
    except OSError:
        pass
    return None


def reinit(model, *, report=False, output=None, external_data=None, in_place=False, **options):
    """Rewrites the model's weights as ``onnx-reinit MODEL -o OUT`` does with
    the same options, and returns the new onnx.ModelProto (with ``output``:
    writes it there, as the command would, and returns None), or with
    ``report=True`` a pair (model or None, the report dict the command's
    ``--report`` writes).

    model: an onnx.ModelProto, its serialized bytes, or a path (external
    data beside it is read, and with ``output`` written, like the command).
    Options: seed, preset (a name or a list), rules (``MATCH=STRATEGY(k=v)``
    texts), rules_file, only, skip, from_ (a pretrained model's path), maps
    (``OLD=NEW`` texts or a dict), calibrate ("lsuv"), data (a dict of
    NumPy arrays by input name, or a --data directory), threads,
    fan_convention, quantized, lsuv_tol, batch, input_shapes (dict),
    max_tensor_bytes, max_total_bytes, policy ("signal", the default, or
    "textbook": ``--policy``), output_rms (``--output-rms``)."""
    raw, path = _model_argument(model)
    opts = _options(**options)
    if in_place:
        if path is None:
            raise UsageError("in_place needs a model given by path", "in_place")
        if output is not None:
            raise UsageError("output and in_place exclude each other", "in_place")
        output = path
    if output is not None:
        result = _ext.reinit(raw, path, opts, _os.fspath(output), external_data or "",
                             bool(in_place), bool(report), "")
        return (None, _json.loads(result["report_json"])) if report else None
    import onnx
    # The library writes the model into a bytes object (no file, no other
    # copy), parsed here once; a model with external data goes through a
    # scratch directory instead, read back with its data.
    work = _tempfile.mkdtemp(prefix="onnx-reinit-", dir=_scratch_dir(path)) \
        if path is not None or external_data else ""
    try:
        result = _ext.reinit(raw, path, opts, "", external_data or "", False, bool(report), work)
        if "model" in result:
            fresh = onnx.ModelProto()
            fresh.ParseFromString(result.pop("model"))
        else:
            fresh = onnx.load(result["path"])
    finally:
        if work:
            _shutil.rmtree(work, ignore_errors=True)
    return (fresh, _json.loads(result["report_json"])) if report else fresh


def inspect(model, data=None, *, seed=0, batch=None, input_shapes=None):
    """Runs the model once in ONNX Runtime on a batch (``data``: a dict of
    NumPy arrays by input name, or a --data directory; None: synthesized
    from ``seed``) and returns the ``--inspect --json`` document as a dict:
    model, batch, inputs, layers (mean, std, activation figures, flags per
    weighted layer), summary."""
    raw, path = _model_argument(model)
    opts = _options(seed=seed, data=data, batch=batch, input_shapes=input_shapes)
    return _json.loads(_ext.inspect(raw, path, opts))
