#!/usr/bin/python3
"""Writes small hostile seed models for model_fuzzer into DIR.

Each seed targets one class of bad input: truncated
protobufs, dims that overflow or are negative, data lengths that disagree
with dims, tensors claiming 2^40 elements, hostile external data
references, cyclic graphs, dangling inputs and a 10,000-node chain. The
fuzzer's model directory holds a 64 KiB "weights.bin", so external
references to it reach the offset/length checks. Well-formed layers of
every kind the analysis reads give the structure-aware mutator material.
Usage: make_seeds.py DIR   (needs python3-onnx: /usr/bin/python3)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inits, inputs=("x",), outputs=("y",), opset=13):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def tensor(name, dims, dtype=TensorProto.FLOAT, raw=None, floats=None):
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    if raw is not None:
        t.raw_data = raw
    if floats is not None:
        t.float_data.extend(floats)
    return t


def external(name, dims, location="weights.bin", offset=None, length=None):
    t = tensor(name, dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


def conv(w):
    return model([helper.make_node("Conv", ["x", w.name], ["h"]),
                  helper.make_node("Relu", ["h"], ["y"])], [w])


def ones(name, *dims):
    return numpy_helper.from_array(np.ones(dims, np.float32), name)


def lstm(hidden):
    return model([helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], hidden_size=hidden)],
                 [ones("W", 1, 8, 3), ones("R", 1, 8, 2), ones("B", 1, 16)])


def lstm_gate_reorder():
    # PyTorch's export: gates reordered by Split and Concat before the LSTM.
    nodes = [helper.make_node("Split", ["b"], ["b0", "b1", "b2", "b3"], axis=1),
             helper.make_node("Concat", ["b0", "b3", "b1", "b2"], ["B"], axis=1),
             helper.make_node("Transpose", ["r"], ["R"], perm=[0, 2, 1]),
             helper.make_node("LSTM", ["x", "W", "R", "B"], ["y"], hidden_size=2)]
    return model(nodes, [ones("W", 1, 8, 3), ones("r", 1, 2, 8), ones("b", 1, 16)])


def layers():
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], group=2, strides=[2, 2],
                              kernel_shape=[3, 3]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
             helper.make_node("Clip", ["n", "lo", "hi"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["g"], transB=1),
             helper.make_node("PRelu", ["g", "slope"], ["p"]),
             helper.make_node("LayerNormalization", ["p", "ls", "lb"], ["l"], axis=-1),
             helper.make_node("Slice", ["mw", "st", "en", "ax"], ["mws"]),
             helper.make_node("MatMul", ["l", "mws"], ["mm"]),
             helper.make_node("Gather", ["emb", "mm"], ["y"])]
    inits = [ones("cw", 4, 2, 3, 3), ones("cb", 4), ones("s", 4), ones("bb", 4), ones("m", 4),
             ones("v", 4), numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6, np.float32), "hi"),
             numpy_helper.from_array(np.array([1, -1], np.int64), "shape"),
             ones("gw", 6, 36), ones("gb", 6), ones("slope", 6), ones("ls", 6), ones("lb", 6),
             ones("mw", 6, 8), numpy_helper.from_array(np.array([0], np.int64), "st"),
             numpy_helper.from_array(np.array([4], np.int64), "en"),
             numpy_helper.from_array(np.array([1], np.int64), "ax"), ones("emb", 10, 4)]
    return model(nodes, inits, opset=17)


def if_branches():
    def branch(name, w):
        return helper.make_graph([helper.make_node("MatMul", ["x", w.name], [name + "_y"]),
                                  helper.make_node("Relu", [name + "_y"], [name + "_o"])],
                                 name, [], [helper.make_tensor_value_info(name + "_o",
                                                                          TensorProto.FLOAT,
                                                                          None)], [w])
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=branch("then", ones("tw", 4, 4)),
                              else_branch=branch("else", ones("ew", 4, 4)))]
    return model(nodes, [], inputs=("x", "cond"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {}
    good_w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    good = conv(good_w)
    seeds["good_conv"] = good
    data = good.SerializeToString()
    for i, cut in enumerate((1, 7, len(data) // 3, len(data) // 2, len(data) - 1)):
        seeds[f"truncated_{i}"] = data[:cut]
    seeds["overflow_dims"] = conv(tensor("w", [1 << 32, 1 << 32, 16], raw=b"\0" * 16))
    seeds["overflow_bytes"] = conv(tensor("w", [1 << 31, 1 << 31], raw=b"\0" * 16))
    seeds["overflow_zero_first"] = conv(tensor("w", [0, 1 << 40, 1 << 40], raw=b""))
    seeds["negative_dims"] = conv(tensor("w", [-1, 3, 3, 3], raw=b"\0" * 16))
    seeds["raw_short"] = conv(tensor("w", [4, 3, 3, 3], raw=b"\0" * 10))
    seeds["raw_long"] = conv(tensor("w", [2, 2], raw=b"\0" * 64))
    seeds["float_data_short"] = conv(tensor("w", [4, 4], floats=[1.0] * 3))
    seeds["huge_no_data"] = conv(tensor("w", [1 << 20, 1 << 20]))
    seeds["huge_f16"] = conv(tensor("w", [1 << 20, 1 << 20], TensorProto.FLOAT16, raw=b"\0" * 8))
    seeds["huge_int64"] = conv(tensor("w", [1 << 20, 1 << 20], TensorProto.INT64))
    seeds["undefined_type"] = conv(tensor("w", [1 << 30, 1 << 30, 1 << 30]))
    seeds["ext_ok"] = conv(external("w", [4, 3, 3, 3], offset=0, length=432))
    seeds["ext_huge"] = conv(external("w", [1 << 20, 1 << 20], offset=0, length=16))
    seeds["ext_past_end"] = conv(external("w", [4, 4], offset=65530, length=64))
    seeds["ext_offset_overflow"] = conv(external("w", [4], offset=(1 << 64) - 1, length=16))
    seeds["ext_no_length"] = conv(external("w", [4, 4], offset=100))
    seeds["ext_absolute"] = conv(external("w", [4], location="/dev/zero", length=16))
    seeds["ext_dotdot"] = conv(external("w", [4], location="../../etc/passwd", length=16))
    seeds["ext_proc"] = conv(external("w", [4], location="/proc/self/mem", length=16))
    seeds["ext_bad_number"] = conv(external("w", [4], offset="-5", length="1e3"))
    seeds["ext_missing"] = conv(external("w", [4], location="nope.bin", length=16))
    w = numpy_helper.from_array(np.ones((8, 8), np.float32), "w")
    seeds["cycle"] = model([helper.make_node("MatMul", ["x", "w"], ["a"]),
                            helper.make_node("Add", ["a", "b"], ["c"]),
                            helper.make_node("Relu", ["c"], ["b"]),
                            helper.make_node("Identity", ["b"], ["y"])], [w])
    seeds["self_loop"] = model([helper.make_node("MatMul", ["a", "w"], ["a"]),
                                helper.make_node("Identity", ["a"], ["y"])], [w])
    seeds["missing_inputs"] = model([helper.make_node("Gemm", ["nowhere", "w", "nothing"], ["h"]),
                                     helper.make_node("Tanh", ["ghost"], ["y"])], [w])
    seeds["lstm_odd"] = model([helper.make_node("LSTM", ["x", "w", "w"], ["y"], hidden_size=0)],
                              [w])
    # Well-formed layers of every kind the analysis reads, for the
    # structure-aware mutator (model_mutator.cpp) to bend, plus the
    # hostile attribute values that once crashed it.
    seeds["lstm_good"] = lstm(2)
    seeds["lstm_hidden_2_61"] = lstm(1 << 61)
    seeds["lstm_hidden_2_32"] = lstm(1 << 32)
    seeds["lstm_gate_reorder"] = lstm_gate_reorder()
    seeds["layers"] = layers()
    seeds["conv_group_0"] = model([helper.make_node("Conv", ["x", "w"], ["y"], group=0,
                                                    strides=[0, -1])], [good_w])
    seeds["if_branches"] = if_branches()
    chain = [helper.make_node("MatMul", ["x", "w"], ["t0"])]
    for i in range(10000):
        chain.append(helper.make_node("Relu" if i % 2 else "Identity", [f"t{i}"], [f"t{i + 1}"]))
    chain.append(helper.make_node("Identity", ["t10000"], ["y"]))
    seeds["deep_chain"] = model(chain, [w])
    for name, m in seeds.items():
        with open(os.path.join(out, name + ".onnx"), "wb") as f:
            f.write(m if isinstance(m, bytes) else m.SerializeToString())
    print(f"make_seeds: wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main()
