"""Rewrite the weights of an onnx.ModelProto in memory.

    python3 rewrite_model.py MODEL.onnx OUT.onnx [SEED]
"""
import sys

import onnx

import onnx_reinit

model = onnx.load(sys.argv[1])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
fresh, report = onnx_reinit.reinit(model, seed=seed, report=True)
onnx.save(fresh, sys.argv[2])
rewritten = [t for t in report["tensors"] if t["action"] == "rewritten"]
for t in rewritten:
    print(f"{t['name']:24} {t['strategy']:16} std {t['achieved_std']:.4f}")
print(f"wrote {sys.argv[2]} (seed {seed}): {len(rewritten)} of {len(report['tensors'])} "
      "tensors rewritten")
