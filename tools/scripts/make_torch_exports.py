#!/usr/bin/python3
"""Exports small PyTorch modules at several opsets, as users' models are.

PyTorch writes many layers as several nodes, and how depends on the opset:
LayerNorm is ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add before opset 17 and
LayerNormalization from 17; Hardswish is x*HardSigmoid(x) before 14; Mish,
SiLU, GroupNorm and hand-written activations are always decomposed. The
files written here are checked in (tests/exports/torch/) and read by
tests/torch_exports_test.cpp, which asserts that every export of one module
gets the same plan. The expected activation of each weight is written in
tests/exports/torch/expected.json by hand, from the module's source below.

Needs Debian's python3-torch (1.13) and python3-onnx; run it again only to
add cases:  /usr/bin/python3 tools/scripts/make_torch_exports.py
"""
import io
import os
import sys

import onnx
import torch
import torch.nn.functional as F
from torch import nn

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "exports", "torch")
OPSETS = [9, 11, 13, 14, 16, 17]


class Swish(nn.Module):
    def __init__(self, beta):
        super().__init__()
        self.beta = beta

    def forward(self, x):
        return x * torch.sigmoid(self.beta * x)


class HardswishByHand(nn.Module):
    def forward(self, x):
        return x * F.relu6(x + 3.0) / 6.0


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.linspace(0.5, 1.5, d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class Mlp(nn.Module):
    """fc -> [norm] -> activation -> head (linear)."""

    def __init__(self, norm, act):
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.norm = norm
        self.act = act
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.act(self.norm(self.fc(x))))


class ConvNet(nn.Module):
    """conv -> [norm] -> activation -> conv (linear)."""

    def __init__(self, norm, act):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = norm
        self.act = act
        self.out = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.out(self.act(self.norm(self.conv(x))))


class Tokens(nn.Module):
    """A transformer-style feed-forward block on [batch, tokens, features]:
    MatMul + Add (PyTorch's Linear on 3-D inputs), LayerNorm, GELU."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(8, 32)
        self.norm = nn.LayerNorm(32)
        self.down = nn.Linear(32, 8)

    def forward(self, x):
        return self.down(F.gelu(self.norm(self.up(x))))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def mlp(norm, act):
    return Mlp(norm, act), torch.randn(2, 8)


def convnet(norm, act):
    return ConvNet(norm, act), torch.randn(1, 3, 8, 8)


# name -> (factory, first opset at which the export works)
CASES = {
    "layernorm_relu": (lambda: mlp(nn.LayerNorm(16), nn.ReLU()), 9),
    "layernorm_gelu": (lambda: mlp(nn.LayerNorm(16), nn.GELU()), 9),
    "rmsnorm_silu": (lambda: mlp(RMSNorm(16), nn.SiLU()), 9),
    "silu": (lambda: mlp(nn.Identity(), nn.SiLU()), 9),
    "swish_beta": (lambda: mlp(nn.Identity(), Swish(1.5)), 9),
    "gelu_sigmoid_approx": (lambda: mlp(nn.Identity(), Swish(1.702)), 9),
    "mish": (lambda: mlp(nn.Identity(), nn.Mish()), 9),
    "hardswish": (lambda: convnet(nn.BatchNorm2d(8), nn.Hardswish()), 9),
    "hardswish_by_hand": (lambda: convnet(nn.Identity(), HardswishByHand()), 9),
    "groupnorm_relu": (lambda: convnet(nn.GroupNorm(2, 8), nn.ReLU()), 9),
    "relu6": (lambda: convnet(nn.BatchNorm2d(8), nn.ReLU6()), 9),
    "leaky_relu": (lambda: mlp(nn.Identity(), nn.LeakyReLU(0.2)), 9),
    "tanh": (lambda: mlp(nn.Identity(), nn.Tanh()), 9),
    "elu": (lambda: mlp(nn.Identity(), nn.ELU()), 9),
    "selu": (lambda: mlp(nn.Identity(), nn.SELU()), 9),
    "softplus": (lambda: mlp(nn.Identity(), nn.Softplus()), 9),
    "hardsigmoid": (lambda: mlp(nn.Identity(), nn.Hardsigmoid()), 9),
    "prelu": (lambda: convnet(nn.BatchNorm2d(8), nn.PReLU(8, init=0.7)), 9),
    "tokens_layernorm_gelu": (lambda: (Tokens(), torch.randn(2, 5, 8)), 9),
    "lstm": (lambda: (Recurrent(), torch.randn(2, 5, 8)), 9),
}


def export(model, example, opset):
    model.eval()
    buf = io.BytesIO()
    torch.onnx.export(model, example, buf, opset_version=opset, input_names=["x"],
                      output_names=["y"], do_constant_folding=False)
    return onnx.load_from_string(buf.getvalue())


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (factory, first) in CASES.items():
        for opset in OPSETS:
            if opset < first:
                continue
            torch.manual_seed(0)
            model, example = factory()
            try:
                proto = export(model, example, opset)
            except Exception as e:  # an op without an export at this opset
                print(f"skip {name} opset {opset}: {str(e).splitlines()[0]}", file=sys.stderr)
                continue
            proto.producer_version = "1.13"  # keep the files stable across builds
            onnx.checker.check_model(proto)
            onnx.save(proto, os.path.join(OUT, f"{name}_opset{opset}.onnx"))
            ops = sorted({n.op_type for n in proto.graph.node})
            print(f"{name} opset {opset}: {' '.join(ops)}")


if __name__ == "__main__":
    main()
