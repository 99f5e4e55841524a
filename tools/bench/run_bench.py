#!/usr/bin/python3
"""The onnx-reinit benchmark, driven by tools/bench/run.sh.

Generates the synthetic models (onnx-reinit-bench-model) once, then times, in
interleaved rounds so that noise from other load hits every tool alike:
cp of the model files, the python baseline (python_baseline.py) and
onnx-reinit, each figure the median over the rounds, with every run's peak
RSS from wait4(). Then orthogonal on one layer's four matrices against
torch.nn.init.orthogonal_ (torch_orthogonal.py), and the raw sampling
throughput from onnx-reinit-bench-sampling (Google Benchmark) beside numpy's
generator, measured in this same process. Prints a markdown report and writes it to
WORKDIR/results.md.

Runs under Debian's /usr/bin/python3 so that numpy and onnx are the
python3-numpy / python3-onnx packages the baseline uses.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

# The speed and memory targets, verbatim; reported, never adjusted.
TARGET_NORMAL_1T = 300e6  # normal float32 samples/s on one core
# End to end, inline and external models alike (issue 12, which tightened
# the earlier 2x cp, 512 MB and 5x-python-inline targets): at most 1.3x
# cp + fsync of the same files, at least 8x faster than python, peak RSS at
# most 64 MB whatever the model size.
TARGET_E2E_VS_CP_FSYNC = 1.3
TARGET_E2E_VS_PY = 8.0
TARGET_E2E_RSS_MB = 64.0
TARGET_TRUNCATED_VS_NORMAL = 0.7  # truncated normal at least 0.7x normal's throughput
TARGET_ORTHOGONAL_VS_TORCH = 2.0  # orthogonal within 2x of torch's orthogonal_

# One transformer layer's four matrices, the orthogonal comparison's shapes.
ORTHOGONAL_SHAPES = [(1024, 3072), (1024, 1024), (1024, 4096), (4096, 1024)]
TRUNCATED_RULE = "role:weight=truncated_normal(std=0.02)"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(
        prog="tools/bench/run.sh",
        description="onnx-reinit benchmark: end-to-end vs cp and python, and raw sampling "
        "throughput vs numpy.")
    p.add_argument("--quick", action="store_true",
                   help="3 runs per figure instead of 5 and shorter sampling runs")
    p.add_argument("--runs", type=int, help="runs per figure (default 5, --quick 3)")
    p.add_argument("--build", default=str(REPO / "build"),
                   help="build directory holding bin/ (default: build/)")
    p.add_argument("--workdir", default=os.environ.get("ONNX_REINIT_BENCH_DIR",
                                                       "/tmp/onnx-reinit-bench"),
                   help="models, outputs and results.md "
                   "(default $ONNX_REINIT_BENCH_DIR or /tmp/onnx-reinit-bench)")
    p.add_argument("--inline-mb", type=float, default=100, help="inline model size (default 100)")
    p.add_argument("--big-mb", type=float, default=1200,
                   help="external-data model size (default 1200)")
    p.add_argument("--skip-e2e", action="store_true", help="only the sampling throughput")
    p.add_argument("--skip-sampling", action="store_true", help="no sampling throughput")
    p.add_argument("--skip-orthogonal", action="store_true",
                   help="no orthogonal comparison with torch")
    p.add_argument("--lsuv", action="store_true",
                   help="also LSUV on ResNet-18 against PyTorch (lsuv_bench.py; needs "
                   "python3-torch and python3-torchvision)")
    args = p.parse_args()
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


# ---------------------------------------------------------------------------
# Running and measuring one command.

def run_measured(runner, argv):
    """Runs argv through onnx-reinit-bench-run, returns (seconds, peak RSS in
    MB). The runner forks from a small process: a child forked from this
    python would carry python's peak RSS across exec."""
    proc = subprocess.run([str(runner), *map(str, argv)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stderr}")
    seconds, rss_kib = proc.stdout.split()
    return float(seconds), int(rss_kib) / 1024.0


def model_files(model):
    """The model file and its external data files (every file beside it that
    starts with its name, which is how the generator names them)."""
    return [model] + sorted(p for p in model.parent.glob(model.name + ".*")
                            if p.is_file())


def files_size(paths):
    return sum(p.stat().st_size for p in paths)


def warm_page_cache(paths):
    # Every tool then reads from the page cache, as cp's own later runs do.
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


# ---------------------------------------------------------------------------
# End-to-end cases.

class case:
    def __init__(self, tool, make_argv):
        self.tool = tool
        self.make_argv = make_argv  # out_dir -> argv
        self.seconds = []
        self.rss_mb = []


def ensure_model(gen, path, mb, hidden, external):
    if path.exists():
        return
    argv = [str(gen), str(path), "--mb", str(mb), "--hidden", str(hidden)]
    if external:
        argv += ["--external-data", path.name + ".data"]
    log(f"bench: generating {path.name} ({mb:g} MB)")
    subprocess.run(argv, check=True)


TRUNCATED_TOOL = "onnx-reinit, weights truncated_normal"
ONLY_GLOB = "layers.0.*"
ONLY_TOOL = f"onnx-reinit --only {ONLY_GLOB}"


def e2e_cases(model, external, bin_dir, py):
    files = model_files(model)
    cases = [
        case("cp", lambda out: ["cp", *map(str, files), str(out)]),
        # onnx-reinit fsyncs what it writes (save_model), plain cp does not:
        # this row shows what durability costs at the disk bound.
        case("cp + fsync", lambda out: [
            "sh", "-c", 'cp "$@" "$0" && cd "$0" && sync -- *', str(out), *map(str, files)]),
    ]
    if external:
        cases.append(case("python baseline", lambda out: [
            py, str(HERE / "python_baseline.py"), str(model), str(out / "py.onnx"),
            "--external-data", "py.onnx.data"]))
        cases.append(case("onnx-reinit", lambda out: [
            str(bin_dir / "onnx-reinit"), str(model), "-o", str(out / "out.onnx"), "-q"]))
        cases.append(case("onnx-reinit --external-data", lambda out: [
            str(bin_dir / "onnx-reinit"), str(model), "-o", str(out / "out.onnx"), "-q",
            "--external-data", "out.data"]))
    else:
        cases.append(case("python baseline", lambda out: [
            py, str(HERE / "python_baseline.py"), str(model), str(out / "py.onnx")]))
        cases.append(case("onnx-reinit", lambda out: [
            str(bin_dir / "onnx-reinit"), str(model), "-o", str(out / "out.onnx"), "-q"]))
    # One layer rewritten, the rest kept: kept tensors should cost neither
    # time nor memory (the writer copies them by the kernel).
    cases.append(case(ONLY_TOOL, lambda out: [
        str(bin_dir / "onnx-reinit"), str(model), "-o", str(out / "out.onnx"), "-q",
        "--only", ONLY_GLOB]))
    # Every weight truncated: beside the default policy (normal-family), the
    # same run.
    cases.append(case(TRUNCATED_TOOL, lambda out: [
        str(bin_dir / "onnx-reinit"), str(model), "-o", str(out / "out.onnx"), "-q",
        "--rule", TRUNCATED_RULE]))
    return cases


def run_e2e(label, model, external, args, bin_dir, py, out_root):
    files = model_files(model)
    warm_page_cache(files)
    cases = e2e_cases(model, external, bin_dir, py)
    for r in range(args.runs):
        for c in cases:
            out = out_root / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            # Flush the previous run's writeback now, untimed, so it is not
            # charged to this run.
            os.sync()
            seconds, rss = run_measured(bin_dir / "onnx-reinit-bench-run", c.make_argv(out))
            c.seconds.append(seconds)
            c.rss_mb.append(rss)
            log(f"bench: {label} run {r + 1}/{args.runs} {c.tool:28s} {seconds:7.2f} s "
                f"{rss:7.0f} MB")
            # Delete before the next sync: dirty pages of a deleted file are
            # dropped, not written.
            shutil.rmtree(out, ignore_errors=True)
    return {"label": label, "bytes": files_size(files), "cases": cases}


# ---------------------------------------------------------------------------
# Sampling throughput.

def run_sampling(args, bin_dir):
    exe = bin_dir / "onnx-reinit-bench-sampling"
    argv = [str(exe), "--benchmark_format=json",
            f"--benchmark_repetitions={args.runs}",
            f"--benchmark_min_time={0.2 if args.quick else 0.5}"]
    log("bench: sampling throughput (Google Benchmark)")
    out = subprocess.run(argv, check=True, stdout=subprocess.PIPE).stdout
    # With one repetition Google Benchmark reports no aggregates: take the
    # median of whatever repetitions there are ourselves.
    rates = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("run_type", "iteration") == "iteration":
            name = b.get("run_name", b["name"]).removesuffix("/real_time")
            rates.setdefault(name, []).append(b["items_per_second"])
    return {name: statistics.median(r) for name, r in rates.items()}


def numpy_throughput(runs):
    """numpy's default generator (PCG64; ziggurat normals), float32, one
    thread, samples/s: median of `runs` fills of a 64 MB buffer, the same size
    as the C++ benchmark's."""
    n = 1 << 24
    rng = np.random.default_rng(0)
    buf = np.empty(n, dtype=np.float32)
    out = {}
    for name, fill in [("normal", lambda: rng.standard_normal(dtype=np.float32, out=buf)),
                       ("uniform", lambda: rng.random(dtype=np.float32, out=buf))]:
        fill()  # first touch of the buffer, untimed
        times = []
        for _ in range(max(runs, 3)):
            t0 = time.perf_counter()
            fill()
            times.append(time.perf_counter() - t0)
        out[name] = n / statistics.median(times)
    return out


# ---------------------------------------------------------------------------
# Report.

def machine_lines(bin_dir):
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    version = subprocess.run([str(bin_dir / "onnx-reinit"), "--version"], stdout=subprocess.PIPE,
                             text=True).stdout.strip()
    import onnx  # the baseline's onnx, for the record
    return [
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, "
        f"{mem_gb:.0f} GiB RAM, Linux {platform.release()}",
        f"- {version}; python {platform.python_version()}, numpy {np.__version__}, "
        f"onnx {onnx.__version__}",
    ]


def mark(ok):
    return "met" if ok else "NOT met"


def e2e_table(results):
    lines = ["| model | size | tool | median s | × cp | speedup vs python | peak RSS MB |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for res in results:
        cases = {c.tool: c for c in res["cases"]}
        cp = statistics.median(cases["cp"].seconds)
        py = statistics.median(cases["python baseline"].seconds)
        for c in res["cases"]:
            med = statistics.median(c.seconds)
            lines.append(f"| {res['label']} | {res['bytes'] / 1e6:.0f} MB | {c.tool} | {med:.2f} | "
                         f"{med / cp:.2f} | {py / med:.2f} | {max(c.rss_mb):.0f} |")
    return lines


def sampling_table(results, numpy_rates):
    lines = ["| sampler | samples/s | vs numpy float32 (1 thread) | vs onnx-reinit normal "
             "(same type and threads) |", "|---|---:|---:|---:|"]
    for name, rate in sorted(results.items()):
        dist, threads = name.split("/", 1)
        kind, dtype = dist.rsplit("_", 1)
        vs_numpy = (f"{rate / numpy_rates[kind]:.2f}×"
                    if dtype == "f32" and kind in numpy_rates else "—")
        normal = results.get(f"normal_{dtype}/{threads}")
        vs_normal = f"{rate / normal:.2f}×" if normal else "—"
        lines.append(f"| onnx-reinit {name} | {rate / 1e6:.0f} M/s | {vs_numpy} | {vs_normal} |")
    lines.append(f"| numpy standard_normal(dtype=float32) | {numpy_rates['normal'] / 1e6:.0f} M/s"
                 " | 1.00× | — |")
    lines.append(f"| numpy random(dtype=float32) | {numpy_rates['uniform'] / 1e6:.0f} M/s"
                 " | 1.00× | — |")
    return lines


# ---------------------------------------------------------------------------
# Orthogonal against torch.nn.init.orthogonal_.

def ensure_layer_model(path):
    """A model holding ORTHOGONAL_SHAPES as the weights of a MatMul chain,
    written with the baseline's python3-onnx."""
    if path.exists():
        return
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    chain = [(1024, 1024), (1024, 4096), (4096, 1024), (1024, 3072)]
    assert sorted(chain) == sorted(ORTHOGONAL_SHAPES)
    inits, nodes, prev = [], [], "x"
    for i, shape in enumerate(chain):
        name = f"layer.w{i}"
        inits.append(numpy_helper.from_array(np.zeros(shape, np.float32), name))
        nodes.append(helper.make_node("MatMul", [prev, name], [f"h{i}"]))
        prev = f"h{i}"
    graph = helper.make_graph(
        nodes, "layer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1024])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, chain[-1][1]])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def run_torch_orthogonal(py):
    """(whole-process seconds, the script's JSON report) or None without torch."""
    argv = [py, str(HERE / "torch_orthogonal.py"), *(f"{r}x{c}" for r, c in ORTHOGONAL_SHAPES)]
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    whole = time.perf_counter() - start
    if proc.returncode != 0:
        log(f"bench: torch orthogonal_ failed, skipped:\n{proc.stderr}")
        return None
    return whole, json.loads(proc.stdout)


def run_orthogonal(args, bin_dir, py, models, out_root):
    model = models / "layer_orthogonal.onnx"
    ensure_layer_model(model)
    warm_page_cache([model])
    times = {"orthogonal": [], "normal": [], "torch": [], "torch_process": []}
    report = None
    for r in range(args.runs):
        for rule in ["orthogonal", "normal"]:
            out = out_root / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            os.sync()
            seconds, _ = run_measured(bin_dir / "onnx-reinit-bench-run", [
                bin_dir / "onnx-reinit", model, "-o", out / "out.onnx", "-q", "--rule",
                f"*={rule}"])
            times[rule].append(seconds)
            shutil.rmtree(out, ignore_errors=True)
        result = run_torch_orthogonal(py)
        if result is not None:
            times["torch_process"].append(result[0])
            times["torch"].append(result[1]["seconds"])
            report = result[1]
        log(f"bench: orthogonal run {r + 1}/{args.runs}: onnx-reinit {times['orthogonal'][-1]:.2f} s"
            + (f", torch orthogonal_ {times['torch'][-1]:.2f} s" if result else ""))
    return {"times": {k: statistics.median(v) for k, v in times.items() if v}, "torch": report}


def blas_text(report):
    if not report:
        return "torch not available"
    blas = report.get("openblas")
    if blas:
        return (f"torch {report['torch']} with {blas['config']} (core {blas['core']}, "
                f"{blas['threads']} threads), {blas['library']}")
    return f"torch {report['torch']} with {', '.join(report['libraries']) or 'no BLAS library'}"


def orthogonal_table(res):
    t = res["times"]
    shapes = ", ".join(f"{r}×{c}" for r, c in ORTHOGONAL_SHAPES)
    lines = [f"Shapes {shapes} (float32); {blas_text(res['torch'])}.", "",
             "| work | median s | onnx-reinit orthogonal ÷ this |", "|---|---:|---:|"]
    rows = [("onnx-reinit `*=orthogonal`, whole process", t["orthogonal"]),
            ("onnx-reinit `*=normal` on the same model, whole process", t["normal"])]
    if "torch" in t:
        rows += [("torch `orthogonal_`, the four calls in process", t["torch"]),
                 ("torch, the whole python process", t["torch_process"])]
    for label, seconds in rows:
        lines.append(f"| {label} | {seconds:.2f} | {t['orthogonal'] / seconds:.2f}× |")
    return lines


def target_lines(e2e, sampling, orthogonal):
    lines = []
    for dtype, label in [("f32", "float32"), ("f64", "float64")]:
        for threads in ["1_thread", "all_threads"]:
            normal = sampling.get(f"normal_{dtype}/{threads}")
            truncated = sampling.get(f"truncated_normal_{dtype}/{threads}")
            if normal and truncated:
                ratio = truncated / normal
                lines.append(f"- truncated normal {label} ≥ 0.7× {label} normal's throughput "
                             f"({threads}): {ratio:.2f}× — "
                             f"{mark(ratio >= TARGET_TRUNCATED_VS_NORMAL)}")
    for res in e2e:
        cases = {c.tool: c for c in res["cases"]}
        ratio = (statistics.median(cases["onnx-reinit"].seconds) /
                 statistics.median(cases[TRUNCATED_TOOL].seconds))
        lines.append(f"- {res['label']}, every weight truncated_normal ≥ 0.7× the default "
                     f"policy's throughput: {ratio:.2f}× — "
                     f"{mark(ratio >= TARGET_TRUNCATED_VS_NORMAL)}")
    if orthogonal and "torch" in orthogonal["times"]:
        t = orthogonal["times"]
        ratio = t["orthogonal"] / t["torch"]
        lines.append(f"- orthogonal within 2× of torch `orthogonal_` (onnx-reinit's whole process "
                     f"against torch's calls alone): {ratio:.2f}× — "
                     f"{mark(ratio <= TARGET_ORTHOGONAL_VS_TORCH)}")
    if sampling:
        one = sampling.get("normal_f32/1_thread")
        if one is not None:
            lines.append(f"- normal float32 on one core ≥ 300 M/s: {one / 1e6:.0f} M/s — "
                         f"{mark(one >= TARGET_NORMAL_1T)}")
        allt = sampling.get("normal_f32/all_threads")
        if one and allt:
            lines.append(f"- normal float32 scaling with cores: all threads "
                         f"{allt / 1e6:.0f} M/s = {allt / one:.2f}× one thread on "
                         f"{len(os.sched_getaffinity(0))} CPUs (no number given; reported)")
    for res in e2e:
        cases = {c.tool: c for c in res["cases"]}
        cp_fsync = statistics.median(cases["cp + fsync"].seconds)
        py = statistics.median(cases["python baseline"].seconds)
        for tool, c in cases.items():
            if not tool.startswith("onnx-reinit") or tool == TRUNCATED_TOOL:
                continue
            med = statistics.median(c.seconds)
            rss = max(c.rss_mb)
            parts = [f"≤ 1.3× cp + fsync: {med / cp_fsync:.2f}× — "
                     f"{mark(med / cp_fsync <= TARGET_E2E_VS_CP_FSYNC)}"]
            # The python script rewrites every weight; --only is held to the
            # copy's time and the memory bound, not to that.
            if tool != ONLY_TOOL:
                parts.append(f"≥ 8× faster than python: {py / med:.2f}× — "
                             f"{mark(py / med >= TARGET_E2E_VS_PY)}")
            parts.append(f"peak RSS ≤ 64 MB: {rss:.0f} MB — {mark(rss <= TARGET_E2E_RSS_MB)}")
            lines.append(f"- {res['label']}, `{tool}`: " + "; ".join(parts))
    return lines


def main():
    args = parse_args()
    build = Path(args.build).resolve()
    bin_dir = build / "bin"
    work = Path(args.workdir).resolve()
    needed = ["onnx-reinit", "onnx-reinit-bench-model", "onnx-reinit-bench-run"]
    if not args.skip_sampling:
        needed.append("onnx-reinit-bench-sampling")
    missing = [n for n in needed if not (bin_dir / n).exists()]
    if missing:
        sys.exit(f"bench: {', '.join(missing)} not found in {bin_dir}; build first "
                 f"(tools/setup.sh, or ninja -C {build})")
    py = "/usr/bin/python3"  # Debian's, with python3-onnx and python3-numpy

    models = work / "models"
    out_root = work / "runs"
    models.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out_root, ignore_errors=True)

    e2e = []
    if not args.skip_e2e:
        free = shutil.disk_usage(work).free
        need = args.big_mb * 1e6 * 2.2
        if free < need:
            log(f"bench: warning: {free / 1e9:.1f} GB free in {work}, about "
                f"{need / 1e9:.1f} GB needed")
        inline = models / f"inline_{args.inline_mb:g}mb.onnx"
        big = models / f"big_{args.big_mb:g}mb.onnx"
        ensure_model(bin_dir / "onnx-reinit-bench-model", inline, args.inline_mb, 1024, False)
        ensure_model(bin_dir / "onnx-reinit-bench-model", big, args.big_mb, 2048, True)
        for label, model, external in [(f"inline {args.inline_mb:g} MB", inline, False),
                                       (f"external data {args.big_mb:g} MB", big, True)]:
            res = run_e2e(label, model, external, args, bin_dir, py, out_root)
            res["external"] = external
            e2e.append(res)
        shutil.rmtree(out_root, ignore_errors=True)

    orthogonal = None
    if not args.skip_orthogonal:
        orthogonal = run_orthogonal(args, bin_dir, py, models, out_root)
        shutil.rmtree(out_root, ignore_errors=True)

    sampling, numpy_rates = {}, {}
    if not args.skip_sampling:
        sampling = run_sampling(args, bin_dir)
        log("bench: numpy throughput")
        numpy_rates = numpy_throughput(args.runs)

    report = ["# onnx-reinit benchmark", ""]
    report += machine_lines(bin_dir)
    report.append(f"- {args.runs} runs per figure, median; peak RSS is the largest of the runs; "
                  f"warm page cache; outputs deleted and `sync` between runs (untimed)")
    report.append("")
    if e2e:
        report += ["## End to end", ""] + e2e_table(e2e) + [""]
    if sampling:
        report += ["## Sampling throughput (64 MB buffer, median)", ""]
        report += sampling_table(sampling, numpy_rates) + [""]
    if orthogonal:
        report += ["## Orthogonal against torch.nn.init.orthogonal_ (median)", ""]
        report += orthogonal_table(orthogonal) + [""]
    report += ["## Targets", ""] + target_lines(e2e, sampling, orthogonal) + [""]
    if args.lsuv:
        log("bench: LSUV on ResNet-18 (lsuv_bench.py)")
        lsuv = subprocess.run([py, str(Path(__file__).resolve().parent / "lsuv_bench.py"),
                               "--build", str(build), "--runs", str(args.runs),
                               "--workdir", str(work / "lsuv")],
                              stdout=subprocess.PIPE, text=True, check=True)
        report += ["#" + lsuv.stdout]
    text = "\n".join(report)
    print(text)
    (work / "results.md").write_text(text)
    log(f"bench: written to {work / 'results.md'}")


if __name__ == "__main__":
    main()
