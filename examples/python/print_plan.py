"""Print what onnx-reinit would do to a model, as records.

    python3 print_plan.py MODEL.onnx [RULE...]
"""
import sys

import onnx_reinit

plan = onnx_reinit.plan(sys.argv[1], rules=sys.argv[2:])
print(plan.table.splitlines()[0])
for entry in plan:
    print(repr(entry))  # a row of `onnx-reinit MODEL --plan`
weights = [e for e in plan if e.role == "weight" and e.action == "planned"]
print(f"{len(weights)} weights planned:",
      ", ".join(f"{e.name} {e.strategy} std={e.target_std}" for e in weights))
