#!/usr/bin/python3
"""LSUV benchmark: `onnx-reinit --calibrate lsuv` on ResNet-18 against the
same algorithm written in PyTorch, on the same batch and the same starting
weights, in the same run.

ResNet-18 comes from torchvision (random weights, eval mode) with every
BatchNorm folded into its convolution, so it has no normalization left; it
is exported to ONNX and rewritten once with onnx-reinit's default policy
(--seed 1). Then, each measured through onnx-reinit-bench-run (wall time
and peak RSS of the whole process):

  rewrite     onnx-reinit R18 -o OUT --seed 1             (sampling alone)
  rewrite+lsuv  the same with --calibrate lsuv --data DIR  (DIR/x.npy)
  torch lsuv  python3 + torch: load the same rewritten weights into the
              folded torch model and run LSUV (one forward per iteration,
              a layer's first measurement reuses the previous run, as
              onnx-reinit does); its LSUV time alone is measured inside

The rewrite has the same seed and policy as the starting model, so it
reproduces its weights: both sides calibrate the same weights. The report
also compares the per-layer scales the two found and shows `--inspect`'s
last/first std ratio of PyTorch's init, the default policy and LSUV.
PyTorch's BLAS is printed (torch.__config__ and the BLAS library mapped
into the process). Usage:

  nice -n 10 /usr/bin/python3 tools/bench/lsuv_bench.py [--build build] [--runs 3]
      [--batch 8] [--workdir /tmp/onnx-reinit-lsuv-bench] [--threads 1]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def folded_resnet18():
    import torch
    import torchvision
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    m = torchvision.models.resnet18(weights=None).eval()
    m.conv1 = fuse_conv_bn_eval(m.conv1, m.bn1)
    m.bn1 = torch.nn.Identity()
    for layer in [m.layer1, m.layer2, m.layer3, m.layer4]:
        for b in layer:
            b.conv1 = fuse_conv_bn_eval(b.conv1, b.bn1)
            b.bn1 = torch.nn.Identity()
            b.conv2 = fuse_conv_bn_eval(b.conv2, b.bn2)
            b.bn2 = torch.nn.Identity()
            if b.downsample is not None:
                b.downsample = torch.nn.Sequential(fuse_conv_bn_eval(b.downsample[0],
                                                                     b.downsample[1]))
    return m


def onnx_weights(path):
    """The initializers of an ONNX model by name, plus the names the torch
    exporter turned into Identity nodes of an equal initializer (it
    deduplicates equal tensors, such as all-zero biases)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Identity" and n.input[0] in weights:
            weights[n.output[0]] = weights[n.input[0]]
    return weights


def blas_in_use():
    """The BLAS libraries mapped into this process, and torch's build config
    line about BLAS."""
    import torch
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "blas" in path.lower() or "lapack" in path.lower():
                libs.add(os.path.realpath(path))
    config = [l.strip() for l in torch.__config__.show().splitlines() if "BLAS" in l]
    return sorted(libs), config


def torch_child(model_path, batch_path, out_path, tol, threads):
    """The measured PyTorch side: LSUV on the folded ResNet-18."""
    import torch

    torch.set_num_threads(threads)
    model = folded_resnet18()
    weights = onnx_weights(model_path)
    state = model.state_dict()
    model.load_state_dict({k: torch.from_numpy(weights[k].copy()) for k in state})
    x = torch.from_numpy(np.load(batch_path))

    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    outputs, order = {}, []

    # The figures are taken in the hook: torchvision's in-place ReLU would
    # overwrite a kept output tensor (there is no BatchNorm in between).
    def hook(name):
        def f(_module, _inputs, out):
            d = out.double()
            outputs[name] = (bool(torch.isfinite(d).all()), d.std(unbiased=False).item(),
                             d.mean().item())
            if name not in order:
                order.append(name)
        return f

    for n, m in layers:
        m.register_forward_hook(hook(n))
    by_name = dict(layers)
    start = time.perf_counter()
    results = []
    with torch.no_grad():
        model(x)  # also gives the execution (topological) order
        for name in list(order):
            w = by_name[name].weight
            scale, iters = 1.0, 0
            while True:
                finite, s, mean = outputs[name]
                if not finite:
                    sys.exit(f"non-finite activation at {name}")
                if s == 0.0 or s <= 1e-6 * abs(mean) or s < np.finfo(np.float32).tiny:
                    break
                if abs(s - 1.0) <= tol or iters >= 10:
                    break
                w.mul_(1.0 / s)
                scale *= 1.0 / s
                iters += 1
                model(x)
            results.append({"name": name + ".weight", "scale": scale, "iterations": iters,
                            "std": s})
    seconds = time.perf_counter() - start
    libs, config = blas_in_use()
    Path(out_path).write_text(json.dumps({
        "seconds": seconds, "layers": results, "blas_libraries": libs, "blas_config": config,
        "torch": torch.__version__, "threads": torch.get_num_threads()}))


def run_measured(runner, argv):
    proc = subprocess.run([str(runner), *map(str, argv)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"lsuv bench: {' '.join(map(str, argv))} failed ({proc.returncode}):\n"
                 f"{proc.stderr}")
    seconds, rss_kib = proc.stdout.split()
    return float(seconds), int(rss_kib) / 1024.0


def prepare(work, batch):
    import torch
    torch.manual_seed(0)
    model = folded_resnet18()
    src = work / "resnet18_folded.onnx"
    x = torch.randn(batch, 3, 224, 224)
    torch.onnx.export(model, x, src, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    import onnx
    ops = {n.op_type for n in onnx.load(src).graph.node}
    if "BatchNormalization" in ops:
        sys.exit("lsuv bench: BatchNormalization left in the export")
    data = work / "data"
    data.mkdir(exist_ok=True)
    np.save(data / "x.npy", x.numpy())
    return src, data


def inspect_ratio(tool, model, data):
    proc = subprocess.run([str(tool), str(model), "--inspect", "--json", "--data", str(data)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"lsuv bench: --inspect failed:\n{proc.stderr}")
    doc = json.loads(proc.stdout)
    return doc["summary"]["last_first_ratio"], doc["summary"]["flags"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(Path(__file__).resolve().parents[2] / "build"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (ORT uses one)")
    ap.add_argument("--workdir", default="/tmp/onnx-reinit-lsuv-bench")
    ap.add_argument("--torch-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--tol", type=float, default=0.05, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_child:
        torch_child(*args.torch_child, args.tol, args.threads)
        return

    bin_dir = Path(args.build).resolve() / "bin"
    tool, runner = bin_dir / "onnx-reinit", bin_dir / "onnx-reinit-bench-run"
    for p in (tool, runner):
        if not p.exists():
            sys.exit(f"lsuv bench: {p} not found; build onnx-reinit and onnx-reinit-bench-run")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    src, data = prepare(work, args.batch)
    start = work / "resnet18_default.onnx"
    subprocess.run([tool, src, "-o", start, "--seed", "1", "-q"], check=True)

    out, report = work / "out.onnx", work / "report.json"
    child_json = work / "torch_lsuv.json"
    cases = {
        "onnx-reinit rewrite": [tool, start, "-o", out, "--seed", "1", "-q"],
        "onnx-reinit rewrite + --calibrate lsuv": [tool, start, "-o", out, "--seed", "1", "-q",
                                                   "--calibrate", "lsuv", "--data", data,
                                                   "--report", report],
        "PyTorch LSUV (python3 + torch process)": [
            sys.executable, Path(__file__).resolve(), "--torch-child", start, data / "x.npy",
            child_json, "--threads", str(args.threads)],
    }
    times = {k: [] for k in cases}
    rss = {k: 0.0 for k in cases}
    torch_inside = []
    for _ in range(args.runs):  # interleaved rounds
        for k, argv in cases.items():
            s, r = run_measured(runner, argv)
            times[k].append(s)
            rss[k] = max(rss[k], r)
            if k.startswith("PyTorch"):
                torch_inside.append(json.loads(child_json.read_text())["seconds"])
    child = json.loads(child_json.read_text())
    ours = {t["name"]: t for t in json.loads(report.read_text())["tensors"]
            if t.get("lsuv_scale") is not None}

    med = {k: statistics.median(v) for k, v in times.items()}
    lsuv_only = med["onnx-reinit rewrite + --calibrate lsuv"] - med["onnx-reinit rewrite"]
    torch_only = statistics.median(torch_inside)
    lines = ["# LSUV on ResNet-18 (BatchNorm folded): onnx-reinit vs PyTorch", ""]
    lines.append(f"- batch {args.batch}x3x224x224 N(0, 1) (the same x.npy for both), "
                 f"tolerance 0.05, at most 10 scalings per layer; {args.runs} interleaved runs, "
                 f"median wall time, largest peak RSS")
    lines.append(f"- ONNX Runtime: one intra-op thread (onnx-reinit's deterministic sessions); "
                 f"torch {child['torch']}: {child['threads']} thread(s)")
    lines.append(f"- BLAS mapped into the torch process: {', '.join(child['blas_libraries']) or 'none found'}")
    if not any("openblas" in l or "mkl" in l or "blis" in l for l in child["blas_libraries"]):
        lines.append("- WARNING: torch runs on the reference BLAS; install libopenblas0-pthread "
                     "for a fair comparison")
    for c in child["blas_config"]:
        lines.append(f"- torch build: `{c}`")
    lines += ["", "| process | wall s (median) | peak RSS MB |", "|---|---|---|"]
    for k in cases:
        lines.append(f"| {k} | {med[k]:.2f} | {rss[k]:.0f} |")
    lines += ["", f"- LSUV alone: onnx-reinit {lsuv_only:.2f} s (difference of the medians above), "
              f"PyTorch {torch_only:.2f} s (timed inside the process, model loaded); "
              f"ratio onnx-reinit / PyTorch = {lsuv_only / torch_only:.2f}"]
    common = [l for l in child["layers"] if l["name"] in ours]
    rel = [abs(ours[l["name"]]["lsuv_scale"] / l["scale"] - 1) for l in common]
    iters = sum(1 for l in common if ours[l["name"]]["lsuv_iterations"] == l["iterations"])
    lines.append(f"- same algorithm: {len(common)} of {len(child['layers'])} layers in both; "
                 f"largest relative difference of the scales {max(rel):.2e}; same iteration "
                 f"count on {iters} of {len(common)}")
    lines += ["", "| weights | `--inspect` last/first std ratio | flags |", "|---|---|---|"]
    for label, model in [("PyTorch default init", src), ("onnx-reinit default policy", start),
                         ("default policy + LSUV", out)]:
        ratio, flags = inspect_ratio(tool, model, data)
        lines.append(f"| {label} | {ratio:.3g} | {', '.join(flags) or '-'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    (work / "results.md").write_text(text)


if __name__ == "__main__":
    main()
