#!/usr/bin/env python3
"""Predicted against measured: the moment pass's RMS of every weighted
layer's output (the JSON report's predicted_output_rms) beside what ONNX
Runtime measures on the rewritten model (--inspect, N(0, 1) inputs unless
--data), one table per model, the worst layer named (docs/DESIGN.md
section 14; README "Signal propagation").

  tools/bench/signal_predictions.py --cli build/bin/onnx-reinit MODEL... [-- EXTRA CLI ARGS]

Exit status 1 when a layer misses the tolerance: 10%, 20% after max
pooling or attention (layers the report marks so), recurrent layers excepted.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile


def run(cli, model, extra, workdir):
    out = os.path.join(workdir, "out.onnx")
    report = os.path.join(workdir, "report.json")
    cmd = [cli, model, "-o", out, "--report", report, "--inspect", "--json", "-q"] + extra
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    inspect = json.loads(proc.stdout)
    with open(report) as f:
        rep = json.load(f)
    return rep, inspect


def compare(rep, inspect, tolerance):
    predicted = {t["name"]: t for t in rep["tensors"] if t.get("predicted_output_rms")}
    rows = []
    for layer in inspect["rewritten"]["layers"]:
        t = predicted.get(layer["name"])
        if t is None or layer["std"] is None:
            continue
        measured = math.hypot(layer["mean"], layer["std"])
        pred = t["predicted_output_rms"]
        loose = any(w in (t.get("signal_basis") or "") for w in ("max pool", "attention"))
        tol = 2 * tolerance if loose else tolerance
        err = pred / measured - 1 if measured > 0 else math.inf
        rows.append((layer["name"], layer["op"], pred, measured, err, tol))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--tolerance", type=float, default=0.10)
    ap.add_argument("models", nargs="+")
    args, extra = ap.parse_known_args()
    failed = False
    for model in args.models:
        with tempfile.TemporaryDirectory(prefix="signal-pred-") as d:
            try:
                rep, inspect = run(args.cli, model, extra, d)
            except (RuntimeError, json.JSONDecodeError) as e:
                print(f"{model}: not measured: {e}")
                failed = True
                continue
        rows = compare(rep, inspect, args.tolerance)
        if not rows:
            print(f"{model}: no weighted layer measured")
            continue
        worst = max(rows, key=lambda r: abs(r[4]) / r[5])
        bad = [r for r in rows if not abs(r[4]) <= r[5]]
        failed |= bool(bad)
        print(f"\n{os.path.basename(model)}: {len(rows)} layers, worst {worst[0]} "
              f"({worst[4]:+.1%}), {len(bad)} beyond tolerance; policy {rep.get('policy')}")
        print(f"  assumptions: {'; '.join(rep.get('signal', {}).get('assumptions', [])) or 'none'}")
        print(f"  {'layer':<40} {'op':<14} {'predicted':>10} {'measured':>10} {'error':>8}")
        for r in rows:
            mark = "" if abs(r[4]) <= r[5] else "  <-"
            print(f"  {r[0][:40]:<40} {r[1]:<14} {r[2]:>10.4g} {r[3]:>10.4g} {r[4]:>+8.1%}{mark}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
