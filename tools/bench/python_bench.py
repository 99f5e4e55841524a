#!/usr/bin/python3
"""The Python module against the command on the bench's inline model
(issue 20: reinit on the 100 MB inline model takes at most 1.2x the
command's time on the same file).

    /usr/bin/python3 tools/bench/python_bench.py [--build build] [--runs 5]
        [--workdir /tmp/onnx-reinit-bench] [--inline-mb 100] [--model FILE]

The model is the one tools/bench/run.sh makes (onnx-reinit-bench-model,
hidden 1024; built with ONNX_REINIT_BUILD_BENCH=ON), or --model. In
interleaved rounds, each in a fresh process, it times:
  - cli:          onnx-reinit MODEL -o OUT -q (the whole process);
  - py path->file: onnx_reinit.reinit(MODEL, output=OUT), timed around the call;
  - py path->proto: onnx_reinit.reinit(MODEL) returning an onnx.ModelProto;
  - py path->/dev/shm->onnx.load: the same through a file in /dev/shm read
    back by onnx.load, as the module did before the library wrote models
    into memory (the baseline of that change);
  - py proto->proto: onnx_reinit.reinit(onnx.load(MODEL)), the call only;
  - protobuf serialize+parse: the same ModelProto serialized and parsed back
    by Python's protobuf, no library: the floor under proto->proto (a
    ModelProto crosses as bytes, both ways);
and prints each row's median wall time with its range, its median system
time, its ratio to the command's run of the same round (median and range of
the pairs) and the target, with the load average. Runs delete the output and
sync between runs, untimed, as run_bench.py does.
"""
import argparse
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]

CHILD = r"""
import resource, sys, time
import onnx, onnx_reinit
mode, model, out = sys.argv[1:4]
if mode in ("proto", "floor"):
    m = onnx.load(model)
def call():
    if mode == "floor":
        onnx.ModelProto().ParseFromString(m.SerializeToString())
    elif mode == "shm":
        import os, tempfile
        d = tempfile.mkdtemp(dir="/dev/shm")
        onnx_reinit.reinit(model, output=d + "/m.onnx")
        onnx.load(d + "/m.onnx")
        os.unlink(d + "/m.onnx")
        os.rmdir(d)
    elif mode == "proto":
        onnx_reinit.reinit(m)
    elif mode == "path-proto":
        onnx_reinit.reinit(model)
    else:
        onnx_reinit.reinit(model, output=out)
r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
call()
t, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
print(t, r1.ru_stime - r0.ru_stime)
"""


def timed_cli(cli, model, out):
    """(wall, system) seconds of the whole command process."""
    r0, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([str(cli), str(model), "-o", str(out), "-q"], check=True)
    t, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    return t, r1.ru_stime - r0.ru_stime


def timed_python(build, mode, model, out):
    """(wall, system) seconds of the call alone, in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(build / "python"))
    r = subprocess.run([sys.executable, "-c", CHILD, mode, str(model), str(out)], check=True,
                       env=env, capture_output=True, text=True)
    wall, system = r.stdout.strip().splitlines()[-1].split()
    return float(wall), float(system)


def clean(out):
    for p in out.parent.glob(out.name + "*"):
        p.unlink()
    subprocess.run(["sync"], check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", type=pathlib.Path, default=ROOT / "build")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--workdir", type=pathlib.Path,
                   default=pathlib.Path(os.environ.get("ONNX_REINIT_BENCH_DIR",
                                                       "/tmp/onnx-reinit-bench")))
    p.add_argument("--inline-mb", type=float, default=100)
    p.add_argument("--model", type=pathlib.Path, help="a model instead of the bench's")
    args = p.parse_args()
    build = args.build.resolve()
    cli = build / "bin" / "onnx-reinit"
    model = args.model
    if model is None:
        model = args.workdir / "models" / f"inline_{args.inline_mb:g}mb.onnx"
        if not model.exists():
            gen = build / "bin" / "onnx-reinit-bench-model"
            if not gen.exists():
                sys.exit(f"python_bench: no {model} and no {gen} to make it "
                         "(configure with -DONNX_REINIT_BUILD_BENCH=ON, or pass --model)")
            model.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([str(gen), str(model), "--mb", str(args.inline_mb), "--hidden", "1024"],
                           check=True)
    out = args.workdir / "python_bench_out.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = {"cli": [], "py path->file": [], "py path->proto": [],
            "py path->/dev/shm->onnx.load": [], "py proto->proto": [],
            "protobuf serialize+parse": []}
    modes = {"py path->file": "file", "py path->proto": "path-proto",
             "py path->/dev/shm->onnx.load": "shm", "py proto->proto": "proto",
             "protobuf serialize+parse": "floor"}
    timed_cli(cli, model, out)  # warm the page cache
    clean(out)
    # Alternated rounds: each round runs every row once, so each Python row
    # pairs with the command's run of the same round (ratios pair by pair).
    for _ in range(args.runs):
        for name in rows:
            rows[name].append(timed_cli(cli, model, out) if name == "cli"
                              else timed_python(build, modes[name], model, out))
            clean(out)
    size = model.stat().st_size / 2**20
    print(f"{model.name} ({size:.0f} MB), {args.runs} alternated rounds, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| | median s (min-max) | sys s median | x cli: median of pairs (min-max) | target |")
    print("|---|---|---|---|---|")
    cli_walls = [w for w, _ in rows["cli"]]
    for name, runs in rows.items():
        walls = [w for w, _ in runs]
        system = statistics.median(s for _, s in runs)
        line = (f"| {name} | {statistics.median(walls):.3f} ({min(walls):.3f}-{max(walls):.3f}) "
                f"| {system:.3f} |")
        if name == "cli":
            print(line + " 1 | |")
            continue
        ratios = [w / c for w, c in zip(walls, cli_walls)]
        ratio = statistics.median(ratios)
        target = ("" if name.startswith("protobuf") or "shm" in name
                  else "<= 1.2x: met" if ratio <= 1.2 else "<= 1.2x: NOT met")
        print(line + f" {ratio:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | {target} |")


if __name__ == "__main__":
    main()
