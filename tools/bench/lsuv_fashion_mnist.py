#!/usr/bin/python3
"""Why data-driven initialization matters, measured by training.

An 8-block residual CNN without normalization is trained for one epoch of
SGD on Fashion-MNIST, for each seed and learning rate, from three
initializations:

  torch    PyTorch's default init
  default  onnx-reinit's default policy: the torch model is exported to ONNX,
           rewritten with `onnx-reinit MODEL -o OUT --seed S`, and the
           rewritten initializers are loaded back into the torch model
  lsuv     the same with `--calibrate lsuv`, on a batch of real training
           images given to onnx-reinit as x.npy (`--data DIR`)
  fixup    the same with `--preset fixup` (Zhang et al. 2019: each residual
           branch's last layer zero, inner layers scaled down by depth);
           only with --inits

It prints, per cell, the test accuracy (mean, min, max), the runs whose loss
became NaN and the runs that did not learn (test accuracy below 20%), as a
markdown table. Usage (Debian's python with torch, onnx and numpy):

  nice -n 10 /usr/bin/python3 tools/bench/lsuv_fashion_mnist.py \\
      [--build build] [--seeds 5] [--lrs 0.01,0.05] [--train 4000] [--threads 1]
      [--inits torch,default,lsuv]

--train subsamples the 60000 training images (the same subset for every
run): 4000 keeps the 30 runs to a few minutes of CPU on a shared machine.
"""

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lsuv_bench import onnx_weights

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # of the Fashion-MNIST training images


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(kind):
    images = read_idx(f"{kind}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(f"{kind}-labels-idx1-ubyte.gz").astype(np.int64)
    images = (images - MEAN) / STD
    return torch.from_numpy(images[:, None]), torch.from_numpy(labels)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return F.relu(x + self.conv2(F.relu(self.conv1(x))))


class ResidualNet(nn.Module):
    """Stem (stride 2, 28 -> 14), 8 residual blocks at 16 channels, no
    normalization, global average pooling, a linear classifier."""

    def __init__(self, blocks=8, c=16):
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(*[Block(c) for _ in range(blocks)])
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def reinit(model, build, seed, init, calib_batch, work):
    """Rewrites the model's weights with onnx-reinit and loads them back."""
    src = os.path.join(work, "model.onnx")
    out = os.path.join(work, "rewritten.onnx")
    torch.onnx.export(model, calib_batch[:1], src, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=13,
                      do_constant_folding=False)
    cmd = [os.path.join(build, "bin", "onnx-reinit"), src, "-o", out, "--seed", str(seed), "-q"]
    if init == "fixup":
        cmd += ["--preset", "fixup"]
    if init == "lsuv":
        data = os.path.join(work, "data")
        os.makedirs(data, exist_ok=True)
        np.save(os.path.join(data, "x.npy"), calib_batch.numpy())
        cmd += ["--calibrate", "lsuv", "--data", data]
    subprocess.run(cmd, check=True)
    weights = onnx_weights(out)
    state = model.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        sys.exit(f"initializers not found in the rewritten model: {missing}")
    model.load_state_dict({k: torch.from_numpy(weights[k].copy()) for k in state})


def train_one_epoch(model, images, labels, lr, seed, batch=64):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    nan = False
    for i in range(0, len(images), batch):
        idx = order[i:i + batch]
        loss = F.cross_entropy(model(images[idx]), labels[idx])
        if not torch.isfinite(loss):
            nan = True
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return nan


@torch.no_grad()
def accuracy(model, images, labels):
    correct = 0
    for i in range(0, len(images), 1000):
        correct += (model(images[i:i + 1000]).argmax(1) == labels[i:i + 1000]).sum().item()
    return correct / len(images)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--lrs", default="0.01,0.05")
    ap.add_argument("--train", type=int, default=4000, help="training images used (of 60000)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--inits", default="torch,default,lsuv",
                    help="of torch, default, lsuv, fixup (onnx-reinit --preset fixup)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lrs = [float(x) for x in args.lrs.split(",")]

    train_x, train_y = load("train")
    test_x, test_y = load("t10k")
    subset = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(0))[:args.train]
    train_x, train_y = train_x[subset], train_y[subset]
    calib = train_x[:256].contiguous()  # LSUV's batch: real images

    inits = args.inits.split(",")
    unknown = set(inits) - {"torch", "default", "lsuv", "fixup"}
    if unknown:
        sys.exit(f"unknown --inits: {', '.join(sorted(unknown))}")
    results = {(i, lr): [] for i in inits for lr in lrs}
    start = time.process_time()
    with tempfile.TemporaryDirectory() as work:
        for seed in range(args.seeds):
            for lr in lrs:
                for init in inits:
                    torch.manual_seed(seed)
                    model = ResidualNet()
                    if init != "torch":
                        reinit(model, args.build, seed, init, calib, work)
                    nan = train_one_epoch(model, train_x, train_y, lr, seed)
                    acc = accuracy(model, test_x, test_y)
                    results[(init, lr)].append((acc, nan))
                    print(f"seed {seed} lr {lr} {init:8s} accuracy {acc:.4f}"
                          f"{' NaN loss' if nan else ''}", file=sys.stderr, flush=True)
    cpu = time.process_time() - start

    print(f"# Fashion-MNIST, 8-block residual CNN without normalization\n")
    print(f"One epoch of SGD (momentum 0.9, batch 64) on {args.train} of the 60000 training "
          f"images, test accuracy on the 10000 test images; {args.seeds} seeds; torch "
          f"{torch.__version__}, {args.threads} thread(s); {cpu / 60:.1f} min CPU in the "
          f"parent process.\n")
    print("| init | lr | accuracy mean | min | max | NaN runs | not learned (<20%) |")
    print("|---|---|---|---|---|---|---|")
    for init in inits:
        for lr in lrs:
            accs = np.array([a for a, _ in results[(init, lr)]])
            nans = sum(n for _, n in results[(init, lr)])
            stuck = int((accs < 0.2).sum())
            print(f"| {init} | {lr} | {accs.mean():.4f} | {accs.min():.4f} | {accs.max():.4f} "
                  f"| {nans}/{len(accs)} | {stuck}/{len(accs)} |")


if __name__ == "__main__":
    main()
