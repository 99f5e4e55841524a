#!/usr/bin/env python3
"""The cost of planning (issue 19: --plan with the moment pass within 1.5x
of the plan before it): `onnx-reinit MODEL --plan` of two builds, run in
turn A B A B ... (one warm-up each), per pair the wall-time ratio A/B; the
median and range of the ratios, the median wall and system times of each.

  tools/bench/plan_cost.py --cli build/bin/onnx-reinit --baseline OLD/bin/onnx-reinit \\
      [--pairs 7] MODEL...

OLD is a build of the commit before the moment pass (e.g. `git worktree add
/tmp/old fbd1b6d` and the README's build there)."""
import argparse
import os
import statistics
import subprocess
import sys
import time


def run(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {status}")
    return wall, usage.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--baseline", required=True)
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| model | new wall s (sys) | baseline wall s (sys) | ratio median | range |")
    print("|---|---|---|---|---|")
    for model in args.models:
        a = [args.cli, model, "--plan"]
        b = [args.baseline, model, "--plan"]
        run(a), run(b)  # warm-up: page cache, dynamic loader
        pairs = [(run(a), run(b)) for _ in range(args.pairs)]
        ratios = [x[0] / y[0] for x, y in pairs]
        med = statistics.median
        print(f"| {os.path.basename(model)} | {med(x[0] for x, _ in pairs):.3f} "
              f"({med(x[1] for x, _ in pairs):.3f}) | {med(y[0] for _, y in pairs):.3f} "
              f"({med(y[1] for _, y in pairs):.3f}) | {med(ratios):.2f}x | "
              f"{min(ratios):.2f}-{max(ratios):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
