#!/usr/bin/python3
"""Writes examples/models/tiny_net.onnx, the small model the README demo uses.

A little of everything the analysis knows: Conv + BatchNorm + ReLU, a strided
depthwise Conv, a Gemm head with a decomposed (Erf) GELU, an LSTM, an
embedding, LayerNorm and a Softmax output. Run with Debian's python3-onnx:
    /usr/bin/python3 tools/scripts/make_example_model.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)


def init(name, *shape, dtype=np.float32):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(dtype) * 0.1, name)


inits = [
    init("conv1.weight", 8, 3, 3, 3), init("conv1.bias", 8),
    init("bn1.scale", 8), init("bn1.bias", 8), init("bn1.mean", 8), init("bn1.var", 8),
    init("dw.weight", 8, 1, 3, 3),
    init("fc1.weight", 8, 32), init("fc1.bias", 32),
    init("fc2.weight", 10, 32), init("fc2.bias", 10),
    init("embed.weight", 100, 16),
    init("lstm.W", 1, 64, 16), init("lstm.R", 1, 64, 16), init("lstm.B", 1, 128),
    init("ln.scale", 16), init("ln.bias", 16),
    numpy_helper.from_array(np.array([1.4142135], np.float32), "sqrt2"),
    numpy_helper.from_array(np.array([1.0], np.float32), "one"),
    numpy_helper.from_array(np.array([0.5], np.float32), "half"),
    numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"),
    numpy_helper.from_array(np.array([1], np.int64), "squeeze_axes"),
]
nodes = [
    helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["c1"], pads=[1, 1, 1, 1]),
    helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["b1"]),
    helper.make_node("Relu", ["b1"], ["r1"]),
    helper.make_node("Conv", ["r1", "dw.weight"], ["c2"], group=8, strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["c2"], ["r2"]),
    helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
    helper.make_node("Reshape", ["gap", "flat_shape"], ["flat"]),
    helper.make_node("MatMul", ["flat", "fc1.weight"], ["h1"]),
    helper.make_node("Add", ["h1", "fc1.bias"], ["h1b"]),
    helper.make_node("Div", ["h1b", "sqrt2"], ["g_div"]),
    helper.make_node("Erf", ["g_div"], ["g_erf"]),
    helper.make_node("Add", ["g_erf", "one"], ["g_add"]),
    helper.make_node("Mul", ["h1b", "g_add"], ["g_mul"]),
    helper.make_node("Mul", ["g_mul", "half"], ["gelu"]),
    helper.make_node("Gemm", ["gelu", "fc2.weight", "fc2.bias"], ["logits"], transB=1),
    helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    helper.make_node("Gather", ["embed.weight", "tokens"], ["emb"]),
    helper.make_node("LSTM", ["emb", "lstm.W", "lstm.R", "lstm.B"], ["lstm_y"], hidden_size=16),
    helper.make_node("Squeeze", ["lstm_y", "squeeze_axes"], ["lstm_seq"]),
    helper.make_node("LayerNormalization", ["lstm_seq", "ln.scale", "ln.bias"], ["text_features"], axis=-1),
]
graph = helper.make_graph(
    nodes, "tiny_net",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16]),
     helper.make_tensor_value_info("tokens", TensorProto.INT64, [5, 1])],
    [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10]),
     helper.make_tensor_value_info("text_features", TensorProto.FLOAT, [5, 1, 16])],
    inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="onnx-reinit example")
model.ir_version = 8
onnx.checker.check_model(model)
out = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "models", "tiny_net.onnx")
onnx.save(model, out)
print("wrote", os.path.normpath(out))
