"""The PyTorch bridge: initialize a torch.nn.Module with onnx-reinit.

    import torch, torchvision, onnx_reinit.torch
    net = torchvision.models.resnet18()
    report = onnx_reinit.torch.init_(net, torch.randn(2, 3, 224, 224), seed=1)
    assert not report["torch"]["unmapped"]

init_ exports the module with torch.onnx (training mode, no constant
folding, so every initializer is named by its state_dict key), rewrites
the exported model with the library exactly as ``onnx-reinit`` would
rewrite that file, and copies the new values into the module's parameters
and buffers in place (docs/DESIGN.md section 15). Tied parameters are one
tensor, so they stay tied. Every parameter the export does not name is
listed in the report, and warned about, never silently left alone.
"""
import io as _io
import warnings as _warnings

import numpy as _np
import torch as _torch

import onnx_reinit as _ori

__all__ = ["export", "init_", "named_tensors"]


def export(module, example_inputs, *, opset_version=None):
    """The module as init_ exports it: serialized ONNX bytes (training
    mode, no constant folding, initializers named by state_dict key).
    Writing these bytes to a file and running ``onnx-reinit`` on it gives
    the values init_ copies into the module."""
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    buffer = _io.BytesIO()
    kwargs = {}
    if opset_version is not None:
        kwargs["opset_version"] = opset_version
    # Tracing runs the module in training mode, which moves BatchNorm's
    # running statistics: they are put back as they were.
    buffers = [(b, b.detach().clone()) for b in module.buffers()]
    try:
        with _torch.no_grad():
            _torch.onnx.export(module, example_inputs, buffer,
                               training=_torch.onnx.TrainingMode.TRAINING,
                               do_constant_folding=False, export_params=True,
                               keep_initializers_as_inputs=False, **kwargs)
    finally:
        with _torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    return buffer.getvalue()


def named_tensors(module, kind="_parameters"):
    """(name, tensor) of every parameter (kind "_parameters") or buffer
    ("_buffers"), a tied one under each of its names (what state_dict
    lists; torch 1.13's named_parameters lists a tied tensor once)."""
    for prefix, m in module.named_modules(remove_duplicate=False):
        for name, t in getattr(m, kind).items():
            if t is not None:
                yield (f"{prefix}.{name}" if prefix else name), t


def _tensors_by_name(module):
    """{name: tensor} of every parameter and buffer, tied names included,
    and the tie groups (names sharing one tensor) of parameters."""
    by_name = {}
    groups = {}
    for name, p in named_tensors(module):
        by_name[name] = p
        groups.setdefault(id(p), []).append(name)
    buffers = dict(named_tensors(module, "_buffers"))
    ties = [names for names in groups.values() if len(names) > 1]
    return by_name, buffers, ties


def _copy(target, array, name):
    value = _torch.from_numpy(_np.ascontiguousarray(array))
    if tuple(value.shape) != tuple(target.shape):
        raise _ori.ModelError(f"the rewritten tensor has shape {list(value.shape)}, the module's "
                              f"{list(target.shape)}", name)
    with _torch.no_grad():
        target.copy_(value.to(dtype=target.dtype, device=target.device))


def _numpy(v):
    return v.detach().cpu().numpy() if isinstance(v, _torch.Tensor) else v


def _batch(data, exported):
    """The batch for calibrate: a dict by graph input name as is; a tensor
    or a tuple of them (like example_inputs) by the export's inputs in
    order; a path (a --data directory) as is."""
    if data is None or isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        return data
    if isinstance(data, dict):
        return {k: _numpy(v) for k, v in data.items()}
    import onnx
    model = onnx.load_from_string(exported)
    initializers = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers]
    values = data if isinstance(data, (tuple, list)) else (data,)
    if len(values) != len(names):
        raise _ori.UsageError(f"data: {len(values)} arrays for the export's {len(names)} inputs "
                              f"({', '.join(names)})", "data")
    return {n: _numpy(v) for n, v in zip(names, values)}


def init_(module, example_inputs, *, seed=0, policy=None, preset=None, rules=(), calibrate=None,
          data=None, opset_version=None, **options):
    """Initializes ``module`` in place as ``onnx-reinit`` initializes its
    ONNX export, and returns the report (the dict ``--report`` writes) with
    a ``torch`` entry: ``mapped`` (state_dict name -> exported tensor name,
    tied names each listed), ``unmapped`` (parameters the export does not
    name: left as they were, and warned about), ``unmapped_buffers``,
    ``ties`` (groups of names sharing one parameter, kept tied).

    example_inputs: a tensor or a tuple, as torch.onnx.export takes them.
    Options as onnx_reinit.reinit: seed, policy, preset, rules, calibrate
    ("lsuv"; ``data`` is its batch: a tensor or tuple of tensors like
    example_inputs, or a dict of arrays or tensors by the export's input
    names; None synthesizes one as the command does), and the others by
    keyword."""
    import onnx
    from onnx import numpy_helper

    exported = export(module, example_inputs, opset_version=opset_version)
    data = _batch(data, exported)
    fresh, report = _ori.reinit(exported, seed=seed, policy=policy, preset=preset, rules=rules,
                                calibrate=calibrate, data=data, report=True, **options)
    written = {t.name: t for t in fresh.graph.initializer}

    params, buffers, ties = _tensors_by_name(module)
    mapped, unmapped, unmapped_buffers = {}, [], []
    copied = set()
    for name, tensor in list(params.items()) + list(buffers.items()):
        if name not in written:
            continue
        mapped[name] = name
        if id(tensor) not in copied:
            _copy(tensor, numpy_helper.to_array(written[name]), name)
            copied.add(id(tensor))
    # A tied parameter is exported once, under one of its names: the
    # others are mapped through it.
    for group in ties:
        hit = next((n for n in group if n in written), None)
        for n in group:
            if hit is not None:
                mapped[n] = hit
    for name, tensor in params.items():
        if name not in mapped:
            unmapped.append(name)
    for name in buffers:
        if name not in mapped:
            unmapped_buffers.append(name)
    if unmapped:
        _warnings.warn(f"onnx_reinit.torch.init_: {len(unmapped)} parameters are not in the "
                       f"export and were left as they were: {', '.join(unmapped)}",
                       stacklevel=2)
    report["torch"] = {"mapped": mapped, "unmapped": unmapped,
                       "unmapped_buffers": unmapped_buffers, "ties": ties}
    return report
