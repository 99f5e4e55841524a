#!/usr/bin/python3
"""Writes a per-channel int8 QDQ model in ONNX Runtime's static-quantization layout.

Usage: /usr/bin/python3 tools/scripts/make_qdq_model.py OUT_DIR

Writes OUT_DIR/qdq_cnn.onnx (the quantized model) and OUT_DIR/qdq_cnn_float.onnx
(the PyTorch export it was made from). The float model is a small
torchvision-style CNN (two 3x3 convolutions with ReLU, global average
pooling, a view to [N, 32], two Linear layers with a ReLU between them),
exported by torch.onnx at opset 13.

ONNX Runtime's Python package is not available here, so the conversion is
written out below. It follows what onnxruntime.quantization.quantize_static
writes with quant_format=QuantFormat.QDQ, per_channel=True,
reduce_range=False, weight_type=QuantType.QInt8,
activation_type=QuantType.QUInt8 (its defaults otherwise):
  - each weight W becomes W_quantized (int8, symmetric: scale =
    max|w| / 127 per output channel, zero point 0), W_scale, W_zero_point and
    a DequantizeLinear W_DequantizeLinear with the channel axis: 0 for Conv,
    0 for Gemm with transB=1 (1 without), 1 for MatMul;
  - each bias B becomes B_quantized (int32) with scale B_quantized_scale =
    input_scale * weight_scale (per channel, float32) and zero point
    B_quantized_zero_point = 0, dequantized with axis 0;
  - each activation x gets x_QuantizeLinear / x_DequantizeLinear (uint8,
    asymmetric, scales x_scale and x_zero_point from the calibrated range,
    which always includes 0); a graph output keeps its name on the last
    DequantizeLinear and its producer writes x_QuantizeLinear_Input;
  - a Relu after a Conv or Gemm is removed (QDQRemovableActivation): the
    layer writes the Relu's output, whose calibrated range starts at 0, so
    its uint8 QuantizeLinear (zero point 0) clamps negatives as the Relu did.
Activation ranges are calibrated (MinMax) from four random batches run
through the float graph with numpy. Deterministic: the same bytes every
run. Files newer than this script are kept.
"""

import os

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

import export_fixture

OPSET = 13


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = self.pool(x).view(-1, 32)
        return self.fc2(torch.relu(self.fc1(x)))


def export_float(path):
    torch.manual_seed(0)
    model = SmallCnn().eval()
    torch.onnx.export(model, torch.randn(1, 3, 16, 16), path, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      do_constant_folding=True)
    return onnx.load(path)


# --- a numpy evaluator for the ops of the export, for calibration ---------

def conv(x, w, b, node):
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    stride = attrs.get("strides", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    m, c, kh, kw = w.shape
    oh = (x.shape[2] - kh) // stride[0] + 1
    ow = (x.shape[3] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], m, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + stride[0] * oh:stride[0], j:j + stride[1] * ow:stride[1]]
            out += np.einsum("nchw,mc->nmhw", patch, w[:, :, i, j])
    return out + (b.reshape(1, -1, 1, 1) if b is not None else 0)


def gemm(a, b, c, node):
    attrs = {a_.name: helper.get_attribute_value(a_) for a_ in node.attribute}
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    out = attrs.get("alpha", 1.0) * a @ b
    return out + attrs.get("beta", 1.0) * c if c is not None else out


def run_float(graph, feeds):
    values = dict(feeds)
    for init in graph.initializer:
        values[init.name] = numpy_helper.to_array(init).astype(np.float64) \
            if init.data_type == TensorProto.FLOAT else numpy_helper.to_array(init)
    for node in graph.node:
        ins = [values[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Conv":
            out = conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, node)
        elif op == "Gemm":
            out = gemm(ins[0], ins[1], ins[2] if len(ins) > 2 else None, node)
        elif op == "Relu":
            out = np.maximum(ins[0], 0)
        elif op == "GlobalAveragePool":
            out = ins[0].mean(axis=(2, 3), keepdims=True)
        elif op == "Reshape":
            out = ins[0].reshape(ins[1])
        elif op == "Flatten":
            out = ins[0].reshape(ins[0].shape[0], -1)
        elif op == "Constant":
            out = numpy_helper.to_array(node.attribute[0].t)
        else:
            raise SystemExit(f"make_qdq_model: no numpy rule for {op}")
        values[node.output[0]] = out
    return values


# --- the QDQ conversion ------------------------------------------------------

def remove_relus(graph):
    """QDQRemovableActivation: a Relu whose input is a Conv/Gemm output used
    only by it is removed; the layer writes the Relu's output."""
    producers = {o: n for n in graph.node for o in n.output}
    uses = {}
    for n in graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    keep = []
    for n in graph.node:
        p = producers.get(n.input[0]) if n.op_type == "Relu" else None
        if p is not None and p.op_type in ("Conv", "Gemm") and uses[n.input[0]] == 1:
            p.output[0] = n.output[0]
            continue
        keep.append(n)
    del graph.node[:]
    graph.node.extend(keep)


def activation_qparams(values):
    rmin = min(float(np.min(v)) for v in values)
    rmax = max(float(np.max(v)) for v in values)
    rmin, rmax = min(rmin, 0.0), max(rmax, 0.0)
    scale = np.float32((rmax - rmin) / 255.0 if rmax > rmin else 1.0)
    zero_point = np.uint8(np.clip(np.rint(-rmin / scale), 0, 255))
    return scale, zero_point


def weight_qparams(w, axis):
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    absmax = np.abs(moved).max(axis=1)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def quantize(float_model, batches):
    model = onnx.ModelProto()
    model.CopyFrom(float_model)
    graph = model.graph
    # Calibrated on the float graph, as ONNX Runtime's calibrator runs the
    # original model: a removed Relu's output keeps its range [0, max].
    calibration = [run_float(graph, {"input": b}) for b in batches]
    remove_relus(graph)
    inits = {i.name: i for i in graph.initializer}
    new_inits, new_nodes, act = [], [], {}
    graph_outputs = {o.name for o in graph.output}

    def add(name, array):
        new_inits.append(numpy_helper.from_array(array, name))

    def activation(name):
        """The DequantizeLinear output that replaces activation `name`."""
        if name in act:
            return act[name]
        scale, zp = activation_qparams([c[name] for c in calibration])
        add(name + "_scale", np.array(scale, dtype=np.float32))
        add(name + "_zero_point", np.array(zp, dtype=np.uint8))
        source = name + "_QuantizeLinear_Input" if name in graph_outputs else name
        deq = name if name in graph_outputs else name + "_DequantizeLinear_Output"
        new_nodes.append(helper.make_node(
            "QuantizeLinear", [source, name + "_scale", name + "_zero_point"],
            [name + "_QuantizeLinear_Output"], name + "_QuantizeLinear"))
        new_nodes.append(helper.make_node(
            "DequantizeLinear",
            [name + "_QuantizeLinear_Output", name + "_scale", name + "_zero_point"], [deq],
            name + "_DequantizeLinear"))
        act[name] = deq
        return deq

    def weight(name, axis):
        w = numpy_helper.to_array(inits[name])
        q, scale = weight_qparams(w, axis)
        add(name + "_quantized", q)
        add(name + "_scale", scale)
        add(name + "_zero_point", np.zeros(scale.shape, dtype=np.int8))
        new_nodes.append(helper.make_node(
            "DequantizeLinear", [name + "_quantized", name + "_scale", name + "_zero_point"],
            [name + "_DequantizeLinear_Output"], name + "_DequantizeLinear", axis=axis))
        return name + "_DequantizeLinear_Output", scale

    def bias(name, input_scale, weight_scale):
        b = numpy_helper.to_array(inits[name])
        scale = (np.float32(input_scale) * weight_scale).astype(np.float32)
        q = np.rint(b / scale).astype(np.int32)
        add(name + "_quantized", q)
        add(name + "_quantized_scale", scale)
        add(name + "_quantized_zero_point", np.zeros(scale.shape, dtype=np.int32))
        new_nodes.append(helper.make_node(
            "DequantizeLinear",
            [name + "_quantized", name + "_quantized_scale", name + "_quantized_zero_point"],
            [name + "_DequantizeLinear_Output"], name + "_DequantizeLinear", axis=0))
        return name + "_DequantizeLinear_Output"

    used_weights = set()
    for node in list(graph.node):
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            if node.op_type in ("GlobalAveragePool", "Reshape", "Flatten"):
                node.input[0] = activation(node.input[0])
            new_nodes.append(node)
            continue
        x = activation(node.input[0])
        if node.op_type == "Conv":
            axis = 0
        elif node.op_type == "Gemm":
            trans_b = [a.i for a in node.attribute if a.name == "transB"]
            axis = 0 if trans_b and trans_b[0] else 1
        else:
            axis = 1
        w_name, b_name = node.input[1], node.input[2] if len(node.input) > 2 else ""
        node.input[1], w_scale = weight(w_name, axis)
        used_weights.add(w_name)
        if b_name:
            input_scale = numpy_helper.to_array(
                next(i for i in new_inits if i.name == node.input[0] + "_scale"))
            node.input[2] = bias(b_name, input_scale, w_scale)
            used_weights.add(b_name)
        node.input[0] = x
        out = node.output[0]
        if out in graph_outputs:
            node.output[0] = out + "_QuantizeLinear_Input"
        new_nodes.append(node)
        # Outputs are quantized too; consumers read the DequantizeLinear
        # (activation() gives them its output).
        activation(out)

    kept = [i for i in graph.initializer if i.name not in used_weights]
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    del graph.node[:]
    graph.node.extend(topological(new_nodes, graph))
    onnx.checker.check_model(model)
    return model


def topological(nodes, graph):
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    out, pending = [], list(nodes)
    while pending:
        progress = False
        for n in list(pending):
            if all(not i or i in ready for i in n.input):
                out.append(n)
                ready.update(n.output)
                pending.remove(n)
                progress = True
        if not progress:
            raise SystemExit("make_qdq_model: the graph has a cycle")
    return out


def export(name, out_dir):
    target = os.path.join(out_dir, f"{name}.onnx")
    if export_fixture.up_to_date(target, __file__):
        return
    float_model = export_float(os.path.join(out_dir, f"{name}_float.onnx"))
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((2, 3, 16, 16)).astype(np.float64) for _ in range(4)]
    model = quantize(float_model, batches)
    model.producer_name = "onnx-reinit make_qdq_model.py (ONNX Runtime QDQ layout)"
    export_fixture.write_whole(target, lambda tmp: onnx.save(model, tmp))


if __name__ == "__main__":
    export_fixture.main(__doc__, {"qdq_cnn": None}, export)
