#!/usr/bin/python3
"""Exports the residual reference models the residual tests read.

Usage: /usr/bin/python3 tools/scripts/export_reference_models.py OUT_DIR [NAME ...]

Writes OUT_DIR/<name>_train.onnx (BatchNorm kept, exported in training mode)
and OUT_DIR/<name>_eval.onnx (eval mode with constant folding: PyTorch folds
BatchNorm into the convolutions) for:
  resnet18, resnet50, mobilenet_v2   torchvision 0.14 at their real widths
                                     (random weights: structure is what is tested)
  vit                                torchvision's VisionTransformer class with
                                     4 layers, hidden 64, on 32x32 images (vit_b_16
                                     has the same block structure, 12 layers, 86 M
                                     parameters)
  gpt                                a nanoGPT-style decoder written here: 4 blocks,
                                     pre-LayerNorm, fused qkv, GELU MLP, causal mask
  gpt_split                          the same with separate q, k, v projections
  encoder_split                      the same without the causal mask: a pre-LayerNorm
                                     encoder (BERT-style) with separate q, k, v
Needs PyTorch 1.13 and torchvision 0.14 (Debian: python3-torch,
python3-torchvision). The models are generated at test time, not checked in; files newer than
this script are kept.
"""

import math
import os

import torch
import torch.nn as nn
import torchvision

import export_fixture


class CausalSelfAttention(nn.Module):
    """nanoGPT's attention; split=True gives separate q, k, v projections
    (as in fairseq and torchscale), causal=False drops the mask."""

    def __init__(self, n_embd, n_head, block_size, split=False, causal=True):
        super().__init__()
        self.split, self.causal = split, causal
        if split:
            self.q_proj = nn.Linear(n_embd, n_embd)
            self.k_proj = nn.Linear(n_embd, n_embd)
            self.v_proj = nn.Linear(n_embd, n_embd)
        else:
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size))
                             .view(1, 1, block_size, block_size))

    def forward(self, x):
        b, t, c = x.shape
        if self.split:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        else:
            q, k, v = self.c_attn(x).split(c, dim=2)
        hs = c // self.n_head
        q = q.view(b, t, self.n_head, hs).transpose(1, 2)
        k = k.view(b, t, self.n_head, hs).transpose(1, 2)
        v = v.view(b, t, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        if self.causal:
            att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        y = torch.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size, **attention):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, **attention)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab=100, block_size=16, n_layer=4, n_embd=32, n_head=4, **attention):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head, block_size, **attention) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, idx):
        t = idx.shape[1]
        pos = torch.arange(0, t, dtype=torch.long).unsqueeze(0)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def vit():
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=4,
                                                num_heads=4, hidden_dim=64, mlp_dim=128,
                                                num_classes=10)


# name -> (factory, example input, opset)
MODELS = {
    "resnet18": (lambda: torchvision.models.resnet18(), lambda: torch.randn(1, 3, 224, 224), 13),
    "resnet50": (lambda: torchvision.models.resnet50(), lambda: torch.randn(1, 3, 224, 224), 13),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(),
                     lambda: torch.randn(1, 3, 224, 224), 13),
    "vit": (vit, lambda: torch.randn(1, 3, 32, 32), 14),
    "gpt": (GPT, lambda: torch.randint(0, 100, (1, 16)), 14),
    "gpt_split": (lambda: GPT(split=True), lambda: torch.randint(0, 100, (1, 16)), 14),
    "encoder_split": (lambda: GPT(split=True, causal=False),
                      lambda: torch.randint(0, 100, (1, 16)), 14),
}


def export(name, out_dir):
    factory, example, opset = MODELS[name]
    for form in ("train", "eval"):
        path = os.path.join(out_dir, f"{name}_{form}.onnx")
        if export_fixture.up_to_date(path, __file__):
            continue
        torch.manual_seed(0)
        model = factory()

        def write(tmp):
            if form == "train":
                model.train()
                torch.onnx.export(model, example(), tmp, opset_version=opset, input_names=["x"],
                                  output_names=["y"], training=torch.onnx.TrainingMode.TRAINING,
                                  do_constant_folding=False)
            else:
                model.eval()
                torch.onnx.export(model, example(), tmp, opset_version=opset, input_names=["x"],
                                  output_names=["y"], do_constant_folding=True)

        export_fixture.write_whole(path, write)


if __name__ == "__main__":
    export_fixture.main(__doc__, MODELS, export)
