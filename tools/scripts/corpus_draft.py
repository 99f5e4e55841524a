#!/usr/bin/env python3
"""Drafts an expectation file for a corpus model (tests/corpus/expectations/)
by walking the graph independently of onnx-reinit, with docs/DESIGN.md section 6
semantics as a person reads them: from each weighted layer's output through
bias/residual Add, norms (also the decomposed LayerNorm), pooling, Dropout
and layout ops to the first nonlinearity, recognising decomposed activations
(x*Sigmoid(x), x*Clip(x+3,0,6)/6, x*HardSigmoid(x), Max(x,a*x), Min(Max(x,0),6)).
Every step it took is written as a comment beside the entry, and anything it
could not decide is marked `REVIEW`: the draft is read and corrected by hand
against tools/scripts/corpus_chains.py before it is checked in.

Usage: /usr/bin/python3 tools/scripts/corpus_draft.py MODEL.onnx [fixed-weight-name ...]
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

from corpus_chains import graphs  # subgraph paths named as tensor_ref does

WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN"}
LAYOUT = {"Identity", "Cast", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
          "Dropout", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
NORMS = {"BatchNormalization", "LayerNormalization", "InstanceNormalization",
         "GroupNormalization"}
SIMPLE = {"Relu": "relu", "PRelu": "prelu", "Elu": "elu", "Selu": "selu", "Gelu": "gelu",
          "Sigmoid": "sigmoid", "HardSigmoid": "hardsigmoid", "Tanh": "tanh",
          "Softplus": "softplus", "Mish": "mish", "HardSwish": "hardswish"}


def main():
    model = onnx.load(sys.argv[1])
    fixed_weights = set(sys.argv[2:])
    consts, where, producer = {}, {}, {}
    consumers = {}  # (graph path, value) -> nodes of that graph
    outputs = set()
    for path, g in graphs(model.graph):
        for t in g.initializer:
            consts[t.name] = numpy_helper.to_array(t)
            where[t.name] = path
        for n in g.node:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        consts[n.output[0]] = numpy_helper.to_array(a.t)
                        where[n.output[0]] = path
            for x in n.input:
                consumers.setdefault((path, x), []).append(n)
            for o in n.output:
                producer[o] = n
        outputs.update((path, o.name) for o in g.output)

    def source(name):
        for _ in range(6):
            if name in consts:
                return name
            p = producer.get(name)
            if p is None or p.op_type not in {"Identity", "Cast", "Transpose", "Reshape",
                                              "Squeeze", "Unsqueeze", "Flatten"}:
                return None
            name = p.input[0]
        return name if name in consts else None

    def scalar(name):
        s = source(name) if name else None
        if s is None or consts[s].size != 1:
            return None
        return float(consts[s].flatten()[0])

    def other(n, v):
        return [x for x in n.input if x != v]

    def attr(n, key, default=None):
        for a in n.attribute:
            if a.name == key:
                return onnx.helper.get_attribute_value(a)
        return default

    learned = {}  # tensor -> what

    def walk(path, v, steps, depth=0):
        """(activation, steps) from value v onwards."""
        if depth > 40:
            return "REVIEW", steps + ["too deep"]
        if (path, v) in outputs:
            return "linear", steps + ["graph output"]
        cons = consumers.get((path, v), [])
        ops = {n.op_type for n in cons}
        if not cons:
            return "REVIEW", steps + ["no consumer"]
        def multiplies_input(n):
            """Whether n's output feeds a Mul by v (the gate of x * f(x))."""
            return any(m.op_type == "Mul" and v in m.input
                       for m in consumers.get((path, n.output[0]), []))

        def consumers_of(n, op):
            return [c for c in consumers.get((path, n.output[0]), []) if c.op_type == op]

        # x * Sigmoid(x), also as x * Sigmoid(1.0 * x)
        for s in cons:
            if s.op_type == "Mul" and scalar(other(s, v)[0]) == 1.0:
                if any(multiplies_input(g) for g in consumers_of(s, "Sigmoid")):
                    return "silu", steps + ["x*Sigmoid(1*x)"]
            if s.op_type == "Sigmoid" and multiplies_input(s):
                return "silu", steps + ["x*Sigmoid(x)"]
            if s.op_type == "HardSigmoid" and multiplies_input(s):
                return "hardswish", steps + [
                    f"x*HardSigmoid(x) alpha={attr(s, 'alpha', 0.2):.4g} "
                    f"beta={attr(s, 'beta', 0.5):.4g}"]
            if s.op_type == "Add" and scalar(other(s, v)[0]) == 3.0:
                if any(multiplies_input(c) for c in consumers_of(s, "Clip")):
                    return "hardswish", steps + ["x*Clip(x+3,0,6)/6"]
            if s.op_type == "Mul" and len(cons) == 2:
                a = scalar(other(s, v)[0])
                for m in consumers.get((path, s.output[0]), []):
                    if m.op_type == "Max" and v in m.input:
                        return "leaky_relu", steps + [f"Max(x,{a:.4g}*x)"]
            if s.op_type == "ReduceMean" and "Sub" in ops:
                sub = [n for n in cons if n.op_type == "Sub"][0]
                div = [n for n in consumers.get((path, sub.output[0]), [])
                       if n.op_type == "Div"]
                if div:
                    out = div[0].output[0]
                    nxt = consumers.get((path, out), [])
                    if len(nxt) == 1 and nxt[0].op_type == "Mul" and source(other(nxt[0], out)[0]):
                        learned[source(other(nxt[0], out)[0])] = "norm_scale (decomposed LN)"
                        out = nxt[0].output[0]
                        nxt = consumers.get((path, out), [])
                        if (len(nxt) == 1 and nxt[0].op_type == "Add"
                                and source(other(nxt[0], out)[0])):
                            learned[source(other(nxt[0], out)[0])] = "norm_bias (decomposed LN)"
                            out = nxt[0].output[0]
                    return walk(path, out, steps + ["decomposed LayerNorm"], depth + 1)
        if len(cons) > 1:
            # Shape computations and squeeze-excitation side branches (global
            # pooling into a gate that multiplies x back) are not the path.
            main = [n for n in cons if n.op_type not in {"Shape", "GlobalAveragePool",
                                                          "ReduceMean"}]
            if len(main) == 1:
                cons = main
        if len(cons) > 1:
            results = [walk(path, n.output[0], steps + [f"fork:{n.op_type}"], depth + 1)
                       if n.op_type not in WEIGHTED | {"Softmax"} else ("linear", [n.op_type])
                       for n in cons]
            kinds = {r[0] for r in results}
            if len(kinds) == 1:
                return results[0][0], steps + [f"fork into {sorted(ops)}, all agree"]
            return "REVIEW", steps + [f"fork: {[(n.op_type, r[0]) for n, r in zip(cons, results)]}"]
        n = cons[0]
        op = n.op_type
        if op in WEIGHTED or op == "Softmax":
            return "linear", steps + [op]
        if op in SIMPLE:
            return SIMPLE[op], steps + [op]
        if op == "LeakyRelu":
            return "leaky_relu", steps + [f"LeakyRelu({attr(n, 'alpha', 0.01):.4g})"]
        if op == "Clip":
            lo = scalar(n.input[1]) if len(n.input) > 1 else attr(n, "min")
            hi = scalar(n.input[2]) if len(n.input) > 2 else attr(n, "max")
            if lo == 0 and hi == 6:
                return "relu6", steps + ["Clip(0,6)"]
            if lo == 0:
                return "relu", steps + [f"Clip(0,{hi})"]
            return "REVIEW", steps + [f"Clip({lo},{hi})"]
        if op == "Max" and scalar(other(n, v)[0]) == 0:
            for m in consumers.get((path, n.output[0]), []):
                if m.op_type == "Min" and scalar(other(m, n.output[0])[0]) == 6:
                    return "relu6", steps + ["Min(Max(x,0),6)"]
            return "relu", steps + ["Max(x,0)"]
        if op == "Add":
            kind = "bias Add" if source(other(n, v)[0]) else "residual Add"
            return walk(path, n.output[0], steps + [kind], depth + 1)
        if op == "Mul":
            o = other(n, v)[0]
            c = source(o)
            if c is not None:
                if consts[c].size <= 1 or consts[c].ndim <= 3:
                    learned.setdefault(c, "affine scale")
                    nxt = consumers.get((path, n.output[0]), [])
                    if len(nxt) == 1 and nxt[0].op_type == "Add" and source(
                            other(nxt[0], n.output[0])[0]):
                        learned.setdefault(source(other(nxt[0], n.output[0])[0]), "affine bias")
                    return walk(path, n.output[0], steps + [f"scale Mul({c})"], depth + 1)
            elif o in producer and producer[o].op_type in {"Sigmoid", "HardSigmoid"}:
                return walk(path, n.output[0], steps + ["gate Mul"], depth + 1)
            return "REVIEW", steps + ["stops at Mul"]
        if op in {"Resize", "Concat", "Pad", "Slice", "Split"}:
            return walk(path, n.output[0], steps + [op], depth + 1)
        if op in NORMS or op in LAYOUT:
            return walk(path, n.output[0], steps + [op], depth + 1)
        return "REVIEW", steps + [f"stops at {op}"]

    print(f"# {sys.argv[1].split('/')[-1]}: draft, to be read and corrected by hand")
    print("weights:")
    for path, g in graphs(model.graph):
        for n in g.node:
            if n.op_type not in WEIGHTED:
                continue
            srcs = [source(x) if x else None for x in n.input]
            if n.op_type == "MatMul" and all(s is None for s in srcs):
                continue
            if n.op_type == "LSTM":
                for s, what in zip(srcs[1:4], ["W", "R", "B"]):
                    if s:
                        learned[s] = f"LSTM {what}"
                for s in srcs[1:3]:
                    if s and s not in fixed_weights:
                        print(f"  - {{tensor: \"{s}\", graph: \"{where[s]}\", op: LSTM, "
                              f"activation: tanh}}  # cell activation")
                continue
            slot = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}[n.op_type]
            if n.op_type == "MatMul" and srcs[1] is None:
                slot = 0
            w = srcs[slot]
            if w is None:
                print(f"  # REVIEW {n.op_type}[{n.name}] weight is not a constant")
                continue
            if len(n.input) > 2 and srcs[2]:
                learned[srcs[2]] = "bias"
            act, steps = walk(path, n.output[0], [])
            if w in fixed_weights:
                print(f"  # {w}: fixed constant in the weight slot of {n.op_type}[{n.name}]")
                continue
            learned[w] = "weight"
            print(f"  - {{tensor: \"{w}\", graph: \"{where[w]}\", op: {n.op_type}, "
                  f"activation: {act}}}  # {' > '.join(steps)}")
    for path, g in graphs(model.graph):
        for n in g.node:
            if n.op_type in NORMS:
                for x in n.input[1:]:
                    if source(x):
                        learned[source(x)] = n.op_type
            if n.op_type == "PRelu" and source(n.input[1]):
                learned[source(n.input[1])] = "prelu slope"
    print("fixed:")
    for name, arr in consts.items():
        if name in learned or arr.dtype.kind != "f" or name in fixed_weights and False:
            continue
        a = arr.flatten()
        desc = (f"{a.tolist()}" if a.size <= 6 else
                f"{list(arr.shape)} min={a.min():.4g} max={a.max():.4g}")
        users = sorted({n.op_type for (p, x), ns in consumers.items() if x == name for n in ns})
        print(f"  - {{tensor: \"{name}\", graph: \"{where[name]}\", "
              f"what: \"{'/'.join(users)} operand {desc}\"}}")


if __name__ == "__main__":
    main()
