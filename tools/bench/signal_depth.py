#!/usr/bin/env python3
"""Signal through depth, without data (issue 19; README "Signal
propagation"): MLPs of 32, 64 and 128 layers with ReLU, tanh, SELU, GELU
(decomposed, as PyTorch exports it) and SiLU (x * Sigmoid(x)), and residual
networks without normalization (x + W2 relu(W1 relu(x))) of 8, 32 and 100
blocks, each rewritten by onnx-reinit under --policy signal and textbook;
then a NumPy forward pass of the written weights on N(0, 1) rows measures
the RMS of what the output layer reads over the RMS of what the second
layer reads (MLPs), or of the stream before the head over the stream after
the stem (residual networks).

  tools/bench/signal_depth.py --cli build/bin/onnx-reinit [--width 256] [--batch 256]
      [--only "gelu MLP"] [--depths 32,128]

Exit status 1 when a signal-policy ratio is outside [0.5, 2].
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ERF = np.vectorize(math.erf)
ACTS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1.0 + ERF(x / math.sqrt(2.0))),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
}


class builder:
    def __init__(self, width):
        self.width, self.nodes, self.inits = width, [], []
        for name, v in (("sqrt2", math.sqrt(2)), ("one", 1.0), ("half", 0.5)):
            self.inits.append(numpy_helper.from_array(np.array(v, np.float32), name))

    def linear(self, name, x, out=None):
        out = out or self.width
        self.inits.append(numpy_helper.from_array(np.zeros((self.width, out), np.float32), name + ".w"))
        self.inits.append(numpy_helper.from_array(np.zeros(out, np.float32), name + ".b"))
        self.nodes.append(helper.make_node("MatMul", [x, name + ".w"], [name + ".mm"]))
        self.nodes.append(helper.make_node("Add", [name + ".mm", name + ".b"], [name + ".y"]))
        return name + ".y"

    def act(self, kind, x):
        y = x + "." + kind
        n = self.nodes
        if kind == "gelu":
            n += [helper.make_node("Div", [x, "sqrt2"], [y + "d"]), helper.make_node("Erf", [y + "d"], [y + "e"]),
                  helper.make_node("Add", [y + "e", "one"], [y + "a"]), helper.make_node("Mul", [x, y + "a"], [y + "m"]),
                  helper.make_node("Mul", [y + "m", "half"], [y])]
        elif kind == "silu":
            n += [helper.make_node("Sigmoid", [x], [y + "s"]), helper.make_node("Mul", [x, y + "s"], [y])]
        else:
            n.append(helper.make_node({"relu": "Relu", "tanh": "Tanh", "selu": "Selu"}[kind], [x], [y]))
        return y

    def save(self, x, path):
        self.nodes.append(helper.make_node("Softmax", [self.linear("head", x, 10)], ["p"]))
        g = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", self.width])],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 10])], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.save(m, path)


def mlp(path, act, depth, width):
    b = builder(width)
    x = "x"
    for i in range(depth):
        x = b.act(act, b.linear(f"l{i}", x))
    b.save(x, path)


def resnet(path, blocks, width):
    b = builder(width)
    s = b.linear("stem", "x")
    for i in range(blocks):
        h = b.linear(f"b{i}.l2", b.act("relu", b.linear(f"b{i}.l1", b.act("relu", s))))
        b.nodes.append(helper.make_node("Add", [s, h], [f"b{i}.out"]))
        s = f"b{i}.out"
    b.save(s, path)


def weights(path):
    m = onnx.load(path)
    return {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}


def ratio_mlp(w, act, depth, x):
    f = ACTS[act]
    first = None
    for i in range(depth):
        x = f(x @ w[f"l{i}.w"] + w[f"l{i}.b"])
        if first is None:
            first = math.sqrt(np.mean(x * x))
    return math.sqrt(np.mean(x * x)) / first


def ratio_resnet(w, blocks, x):
    s = x @ w["stem.w"] + w["stem.b"]
    first = math.sqrt(np.mean(s * s))
    for i in range(blocks):
        h = np.maximum(s, 0) @ w[f"b{i}.l1.w"] + w[f"b{i}.l1.b"]
        s = s + np.maximum(h, 0) @ w[f"b{i}.l2.w"] + w[f"b{i}.l2.b"]
    return math.sqrt(np.mean(s * s)) / first


def rewrite(cli, src, policy, out):
    subprocess.run([cli, src, "-o", out, "-q", "--policy", policy], check=True)
    return weights(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--only", default="", help="run only the networks whose name contains this")
    ap.add_argument("--depths", default="", help="comma-separated depths to run (default: all)")
    args = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((args.batch, args.width))
    cases = [("mlp", a, d) for a in ACTS for d in (32, 64, 128)] + [("resnet", "relu", d) for d in (8, 32, 100)]
    failed = False
    print(f"| network | depth | signal | textbook |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="signal-depth-") as tmp:
        for kind, act, depth in cases:
            if args.only not in (f"{act} MLP" if kind == "mlp" else "residual"):
                continue
            if args.depths and str(depth) not in args.depths.split(","):
                continue
            src = os.path.join(tmp, "m.onnx")
            (mlp(src, act, depth, args.width) if kind == "mlp" else resnet(src, depth, args.width))
            row = []
            for policy in ("signal", "textbook"):
                w = rewrite(args.cli, src, policy, os.path.join(tmp, policy + ".onnx"))
                with np.errstate(all="ignore"):
                    r = ratio_mlp(w, act, depth, x) if kind == "mlp" else ratio_resnet(w, depth, x)
                row.append(r)
            ok = 0.5 <= row[0] <= 2.0
            failed |= not ok
            name = f"{act} MLP" if kind == "mlp" else "residual, no norm"
            print(f"| {name} | {depth} | {row[0]:.3g}{'' if ok else ' (outside [0.5, 2])'} | {row[1]:.3g} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
