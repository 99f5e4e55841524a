"""List the strategies of every loaded plugin and sample one.

    python3 query_strategies.py [STRATEGY [k=v...]]
"""
import sys

import onnx_reinit

for s in onnx_reinit.strategies():
    params = ", ".join(f"{p['name']}={p['default']}" for p in s.params)
    print(f"{s.name}({params}): {s.formula}")
name = sys.argv[1] if len(sys.argv) > 1 else "kaiming_normal"
params = dict(arg.split("=", 1) for arg in sys.argv[2:])  # text, parsed as the command parses it
print()
print(onnx_reinit.describe(name), end="")
w = onnx_reinit.sample(name, (64, 128), seed=1, name="fc.weight", **params)
print(f"sampled {name} on fc.weight [64, 128], seed 1: mean {w.mean():+.4f} std {w.std():.4f}")
