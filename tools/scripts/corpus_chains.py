#!/usr/bin/env python3
"""Prints, for a real model of the corpus, what a person needs to write its
expectations by hand: every weighted layer (Conv, ConvTranspose, Gemm, MatMul
with a constant operand, LSTM) with the chain of nodes that follows it, and
every tensor with a short description of its values. It decides nothing: the
expectation files under tests/corpus/expectations/ are written from reading
this output. Needs the Debian python (/usr/bin/python3) with onnx and numpy.

Usage: /usr/bin/python3 tools/scripts/corpus_chains.py MODEL.onnx [DEPTH]
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN"}


def graphs(g, path=""):
    """(graph_path, graph) pairs, named as onnx-reinit's tensor_ref does."""
    yield path, g
    for i, n in enumerate(g.node):
        node = n.name if n.name else f"#{i}"
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                sub = f"{path}/{node}/{a.name}" if path else f"{node}/{a.name}"
                yield from graphs(a.g, sub)


def describe(arr):
    a = np.asarray(arr)
    if a.size == 0:
        return f"{a.dtype} {list(a.shape)} empty"
    if a.size <= 8:
        return f"{a.dtype} {list(a.shape)} = {a.flatten().tolist()}"
    f = a.astype(np.float64)
    return (f"{a.dtype} {list(a.shape)} mean={f.mean():.4g} std={f.std():.4g} "
            f"min={f.min():.4g} max={f.max():.4g} distinct={len(np.unique(a))}")


def main():
    model = onnx.load(sys.argv[1])
    depth = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    consts = {}   # name -> array, over all graphs (names are unique in practice)
    consumers = {}
    producer = {}
    outputs = set()
    for path, g in graphs(model.graph):
        for t in g.initializer:
            consts[t.name] = (path, "init", numpy_helper.to_array(t))
        for n in g.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        consts[n.output[0]] = (path, "const", numpy_helper.to_array(a.t))
            for i, x in enumerate(n.input):
                consumers.setdefault(x, []).append((path, n, i))
            for o in n.output:
                producer[o] = n
        outputs.update(o.name for o in g.output)

    def operand(name):
        """The constant a value comes from through layout ops, if any."""
        seen = 0
        while name not in consts and name in producer and seen < 6:
            p = producer[name]
            if p.op_type not in {"Identity", "Cast", "Transpose", "Reshape", "Squeeze",
                                 "Unsqueeze", "Flatten", "DequantizeLinear"}:
                return None
            name = p.input[0]
            seen += 1
        return name if name in consts else None

    def node_text(n):
        attrs = []
        for a in n.attribute:
            if a.type in (onnx.AttributeProto.FLOAT, onnx.AttributeProto.INT,
                          onnx.AttributeProto.STRING):
                attrs.append(f"{a.name}={onnx.helper.get_attribute_value(a)}")
            elif a.type == onnx.AttributeProto.INTS:
                attrs.append(f"{a.name}={list(a.ints)}")
        ins = []
        for x in n.input:
            c = operand(x)
            if c is not None and consts[c][2].size <= 4:
                ins.append(f"{x}={consts[c][2].flatten().tolist()}")
            elif c is not None:
                ins.append(f"{x}(const {list(consts[c][2].shape)})")
            else:
                ins.append(x)
        return f"{n.op_type}[{n.name}]({', '.join(ins)}) {' '.join(attrs)}"

    def chain(value, level, indent, seen):
        if value in outputs:
            print(f"{indent}-> graph output {value}")
        if level >= depth:
            return
        for _, n, _ in consumers.get(value, []):
            if id(n) in seen:
                print(f"{indent}(joins {n.op_type}[{n.name}])")
                continue
            seen.add(id(n))
            print(f"{indent}{node_text(n)} -> {list(n.output)}")
            if n.op_type in WEIGHTED or n.op_type in {"Softmax"}:
                continue
            for o in n.output[:1]:
                chain(o, level + 1, indent + "  ", seen)

    print("== weighted layers")
    for path, g in graphs(model.graph):
        for n in g.node:
            if n.op_type not in WEIGHTED:
                continue
            ws = [operand(x) for x in n.input]
            if n.op_type == "MatMul" and all(w is None for w in ws):
                continue
            print(f"\n[{path}] {node_text(n)}")
            for w in ws:
                if w is not None:
                    print(f"    const {w}: {describe(consts[w][2])}")
            chain(n.output[0], 0, "    ", set())
    print("\n== tensors")
    for name, (path, kind, arr) in consts.items():
        users = [f"{n.op_type}#{i}" for _, n, i in consumers.get(name, [])]
        print(f"[{path}] {kind} {name}: {describe(arr)} used by {users}")


if __name__ == "__main__":
    main()
