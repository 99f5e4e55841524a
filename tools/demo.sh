#!/usr/bin/env bash
# A newcomer's first run: installs only what the command needs, builds only
# the command and its standard plugin (no tests, benchmarks or ONNX
# Runtime: tools/test.sh sets those up), then shows the plan for the shipped
# example model and rewrites it (output and JSON report under build/demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh --tool-only build
mkdir -p build/demo
build/bin/onnx-reinit examples/models/tiny_net.onnx --plan
build/bin/onnx-reinit examples/models/tiny_net.onnx -o build/demo/tiny_net.reinit.onnx \
  --seed 42 --report build/demo/report.json
echo "demo: wrote build/demo/tiny_net.reinit.onnx and build/demo/report.json"
